//! What a soak samples: each service's resident set, open file descriptors
//! and threads from `/proc/<pid>`, and the router's gauges and counters from
//! its admin API (`GET /v1/stats`, summed over workers).

use std::fs;

use serde::Serialize;

/// One process, from `/proc/<pid>`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcSample {
    /// Resident set (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Open file descriptors (entries of `/proc/<pid>/fd`).
    pub fds: u64,
    /// Threads (`Threads`).
    pub threads: u64,
}

/// A `key:` line of `/proc/<pid>/status` as a number (the `kB` unit dropped).
fn status_field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples process `pid`; `None` once it is gone.
pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(ProcSample {
        rss_kib: status_field(&status, "VmRSS")?,
        fds,
        threads: status_field(&status, "Threads").unwrap_or(0),
    })
}

/// The router's state and counters, summed over its workers.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RouterSample {
    /// Live calls (gauge).
    pub calls: u64,
    /// Admitted participants (gauge).
    pub participants: u64,
    /// Video producers holding a retransmission buffer (gauge).
    pub retransmit_buffers: u64,
    /// Bytes those buffers hold (gauge).
    pub retransmit_bytes: u64,
    /// Participants admitted.
    pub joins: u64,
    /// Joins refused.
    pub joins_refused: u64,
    /// Participants removed, for any reason.
    pub leaves: u64,
    /// ... of them for silence.
    pub timeouts: u64,
    /// RTP packets forwarded (one per receiver).
    pub forwarded_rtp: u64,
    /// Datagrams received.
    pub rx_datagrams: u64,
    /// Datagrams dropped, every reason.
    pub dropped: u64,
    /// ... of them malformed.
    pub dropped_malformed: u64,
    /// ... from an address no join admitted (a leaver's last packets land here).
    pub dropped_unadmitted: u64,
    /// Sends the socket refused.
    pub send_errors: u64,
}

fn u(v: &serde_json::Value, path: &[&str]) -> u64 {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(serde_json::Value::as_u64).unwrap_or(0)
}

/// Sums `/v1/stats`' workers.
pub fn router_sample(stats: &serde_json::Value) -> RouterSample {
    let mut s = RouterSample::default();
    for w in stats.get("workers").and_then(|w| w.as_array()).into_iter().flatten() {
        s.calls += u(w, &["calls"]);
        s.participants += u(w, &["participants"]);
        s.retransmit_buffers += u(w, &["buffers", "retransmit_buffers"]);
        s.retransmit_bytes += u(w, &["buffers", "retransmit_bytes"]);
        s.joins += u(w, &["joins"]);
        s.joins_refused += u(w, &["joins_refused"]);
        s.leaves += u(w, &["leaves"]);
        s.timeouts += u(w, &["timeouts"]);
        s.forwarded_rtp += u(w, &["forwarded_rtp"]);
        s.rx_datagrams += u(w, &["rx_datagrams"]);
        s.dropped +=
            w.get("dropped").and_then(|d| d.as_object()).map_or(0, |d| d.values().filter_map(|x| x.as_u64()).sum());
        s.dropped_malformed += u(w, &["dropped", "malformed"]);
        s.dropped_unadmitted += u(w, &["dropped", "unadmitted"]);
        s.send_errors += u(w, &["io", "send_errors"]);
    }
    s
}

/// One sample of the whole system.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    /// Seconds since the churn started.
    pub at_s: f64,
    /// The router process.
    pub router: ProcSample,
    /// The control-plane process.
    pub control: ProcSample,
    /// The router's admin API.
    pub stats: RouterSample,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = proc_sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0 && s.fds >= 3 && s.threads >= 1, "{s:?}");
    }

    #[test]
    fn sums_workers() {
        let v = serde_json::json!({ "workers": [
            { "calls": 1, "participants": 3, "joins": 5, "leaves": 2,
              "buffers": { "retransmit_buffers": 3, "retransmit_bytes": 100 },
              "dropped": { "malformed": 1, "unadmitted": 4 }, "io": { "send_errors": 0 } },
            { "calls": 2, "participants": 1, "joins": 1, "leaves": 0,
              "buffers": { "retransmit_buffers": 1, "retransmit_bytes": 50 },
              "dropped": { "malformed": 0, "unadmitted": 1 }, "io": { "send_errors": 2 } },
        ]});
        let s = router_sample(&v);
        assert_eq!((s.calls, s.participants, s.joins, s.leaves), (3, 4, 6, 2));
        assert_eq!((s.retransmit_buffers, s.retransmit_bytes), (4, 150));
        assert_eq!((s.dropped, s.dropped_malformed, s.dropped_unadmitted, s.send_errors), (6, 1, 5, 2));
    }
}
