//! The few system calls the bench makes that have no safe wrapper in its
//! dependencies, wrapped as safe functions. The only module of the bench with
//! `unsafe` code (batched socket I/O goes through
//! [`corecast_router::net::msghdr`]).

use std::io;
use std::mem;

/// Id of the calling thread (as in `/proc/self/task/<tid>`).
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// Clock ticks per second of the CPU times in `/proc` (`USER_HZ`).
pub fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions; an unknown name returns -1.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    hz.max(1) as f64
}

/// Pins the calling thread to `cpus` (nothing if empty).
pub fn pin_current_thread(cpus: &[usize]) -> io::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    for &c in cpus {
        if c >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("CPU {c} is beyond CPU_SETSIZE")));
        }
        // SAFETY: `set` is a valid cpu_set_t and `c` is below CPU_SETSIZE (checked above).
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size given; pid 0 is the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `poll(2)` on `fds` for at most `timeout_ms` (negative: no limit); returns
/// how many have events (0 on timeout).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a live, writable array of pollfds of the length given;
    // the kernel writes only their `revents`.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Sends SIGINT to process `pid` (a child the bench started).
pub fn interrupt(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill has no memory preconditions; a pid that is gone yields ESRCH.
    if unsafe { libc::kill(pid, libc::SIGINT) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_work() {
        assert!(gettid() > 0);
        assert!(clock_ticks_per_s() >= 1.0);
        assert!(pin_current_thread(&[]).is_ok());
        assert!(pin_current_thread(&[1 << 20]).is_err());
        assert_eq!(poll(&mut [], 0).unwrap(), 0);
    }
}
