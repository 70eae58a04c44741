//! What the benchmarks measure with, shared by `fanout` and `codec`: CPU time
//! of threads, CPUs and the whole process from `/proc`, the process's
//! resident memory, percentiles of latency samples, and [`Measured`], the
//! wall time, CPU time and latencies every measured run has.

use std::fs;

use crate::sys;

/// One measured run: how long it took, the CPU time it cost, and its
/// latency samples (sorted ascending; `T` is the unit the bench records).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured<T> {
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// CPU seconds of whatever was measured (threads, CPUs or the process).
    pub cpu_s: f64,
    /// Latency samples, sorted ascending.
    pub latency: Vec<T>,
}

impl<T: Copy + Into<f64>> Measured<T> {
    /// CPU time over wall time: the cores kept busy.
    pub fn cores(&self) -> f64 {
        self.cpu_s / self.wall_s.max(1e-9)
    }

    /// `count` per second of wall time.
    pub fn per_wall_s(&self, count: u64) -> f64 {
        count as f64 / self.wall_s.max(1e-9)
    }

    /// `count` per second of CPU time ("per core").
    pub fn per_cpu_s(&self, count: u64) -> f64 {
        count as f64 / self.cpu_s.max(1e-9)
    }

    /// The `p` quantile of the latency samples (see [`percentile`]).
    pub fn latency_at(&self, p: f64) -> f64 {
        percentile(&self.latency, p)
    }
}

/// Nearest-rank `p` quantile (`p` in 0..=1) of `sorted` (ascending); 0 for
/// no samples.
pub fn percentile<T: Copy + Into<f64>>(sorted: &[T], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].into()
}

// ---- CPU time ----

/// CPU time of thread `tid` of this process in seconds (schedstat, ns).
pub fn thread_cpu_s(tid: i32) -> Option<f64> {
    schedstat_s(&format!("/proc/self/task/{tid}/schedstat"))
}

/// CPU time of the calling thread in seconds (`/proc/thread-self/schedstat`).
pub fn current_thread_cpu_s() -> Option<f64> {
    schedstat_s("/proc/thread-self/schedstat")
}

/// The time on CPU a `schedstat` file gives (its first field, ns), in seconds.
fn schedstat_s(path: &str) -> Option<f64> {
    let s = fs::read_to_string(path).ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// Summed CPU time of threads `tids` of this process in seconds (threads
/// that are gone count nothing).
pub fn threads_cpu_s(tids: &[i32]) -> f64 {
    tids.iter().filter_map(|&t| thread_cpu_s(t)).sum()
}

/// CPU time of the whole process (all threads, also exited ones) in seconds.
pub fn process_cpu_s() -> Option<f64> {
    let s = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces): state is field 3.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / sys::clock_ticks_per_s())
}

/// Busy time of `cpus` in seconds from `/proc/stat` (user, nice, system, irq
/// and softirq: everything those CPUs did, the kernel's network work done
/// outside the measured threads' system calls included). `None` without `cpus`.
pub fn cpus_busy_s(cpus: &[usize]) -> Option<f64> {
    if cpus.is_empty() {
        return None;
    }
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let hz = sys::clock_ticks_per_s();
    let mut total = 0u64;
    for &c in cpus {
        let line = stat.lines().find(|l| l.split_whitespace().next() == Some(&format!("cpu{c}")))?;
        let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal ...
        total += [0, 1, 2, 5, 6].iter().filter_map(|&i| v.get(i)).sum::<u64>();
    }
    Some(total as f64 / hz)
}

// ---- memory ----

/// A `Vm*` line of `/proc/self/status` in KiB.
pub fn status_kb(key: &str) -> Option<u64> {
    let s = fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// Resets VmHWM to the current resident set (Linux ≥ 4.0).
pub fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

// ---- pinning ----

/// Pins the calling thread to `cpus` (nothing if empty); says so on stderr
/// if that fails (`who` names the bench).
pub fn pin_current(who: &str, cpus: &[usize]) {
    if let Err(e) = sys::pin_current_thread(cpus) {
        eprintln!("{who}: could not pin a thread to CPUs {cpus:?}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile::<f64>(&[], 0.5), 0.0);
    }

    #[test]
    fn measured_rates() {
        let m = Measured { wall_s: 2.0, cpu_s: 0.5, latency: vec![10u32, 20, 30, 40] };
        assert_eq!(m.cores(), 0.25);
        assert_eq!(m.per_wall_s(100), 50.0);
        assert_eq!(m.per_cpu_s(100), 200.0);
        assert_eq!((m.latency_at(0.5), m.latency_at(1.0), m.latency_at(0.0)), (20.0, 40.0, 10.0));
    }

    #[test]
    fn proc_readings() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(20) {}
        assert!(current_thread_cpu_s().unwrap() > 0.0);
        assert!(process_cpu_s().unwrap() > 0.0);
        assert!(threads_cpu_s(&[sys::gettid()]) > 0.0);
        assert_eq!(threads_cpu_s(&[-1]), 0.0);
        assert!(cpus_busy_s(&[0]).unwrap() > 0.0);
        assert_eq!(cpus_busy_s(&[]), None);
        assert!(status_kb("VmRSS").unwrap() > 0);
    }
}
