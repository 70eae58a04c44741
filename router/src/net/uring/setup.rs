//! Setting up io_uring: probing the kernel for what the backend needs, and
//! creating the ring with the best task-run mode the kernel has.

use std::io;
use std::sync::OnceLock;

use io_uring::{opcode, IoUring, Probe};

use super::bufring::BufRing;
use super::BGID;

/// Checks that this kernel has what the backend needs: `RECVMSG` and `SENDMSG`
/// opcodes, provided-buffer rings (5.19) and multishot `recvmsg` (6.0), and the
/// `EXT_ARG` enter feature for receive timeouts.
///
/// The result is computed once per process, on a short-lived helper thread:
/// the thread that creates (or closes) a ring gets io_uring task work
/// notifications, which interrupt its timed blocking calls with EINTR; the
/// caller must not be that thread.
pub fn probe() -> io::Result<()> {
    static PROBED: OnceLock<Result<(), String>> = OnceLock::new();
    PROBED
        .get_or_init(|| on_helper_thread(probe_here).map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| io::Error::new(io::ErrorKind::Unsupported, e))
}

/// Runs `f` on a new thread and waits for it. Rings are created there so that
/// neither the caller (often a test or the server's main thread) nor the
/// helper keeps io_uring task state; the worker that drives the ring is the
/// only thread the kernel then notifies.
pub(super) fn on_helper_thread<T: Send>(f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(f).join().unwrap_or_else(|_| Err(io::Error::other("io_uring setup thread panicked")))
    })
}

fn probe_here() -> io::Result<()> {
    let unsupported = |what: &str| io::Error::new(io::ErrorKind::Unsupported, format!("io_uring lacks {what}"));
    let (major, minor) = kernel_version().ok_or_else(|| unsupported("a readable kernel version"))?;
    if (major, minor) < (6, 0) {
        return Err(unsupported("multishot recvmsg (kernel < 6.0)"));
    }
    let ring: IoUring = IoUring::new(8)?;
    if !ring.params().is_feature_ext_arg() {
        return Err(unsupported("IORING_FEAT_EXT_ARG"));
    }
    let mut p = Probe::new();
    ring.submitter().register_probe(&mut p)?;
    for (code, name) in [(opcode::RecvMsg::CODE, "RECVMSG"), (opcode::SendMsg::CODE, "SENDMSG")] {
        if !p.is_supported(code) {
            return Err(unsupported(name));
        }
    }
    let br = BufRing::new(1, 64)?;
    // SAFETY: `br`'s ring memory is valid for 1 entry and outlives the
    // registration (unregistered just below, before `br` drops).
    unsafe { ring.submitter().register_buf_ring_with_flags(br.ring_addr(), 1, BGID, 0) }?;
    ring.submitter().unregister_buf_ring(BGID)?;
    Ok(())
}

/// Creates the ring: SINGLE_ISSUER + DEFER_TASKRUN (created disabled, enabled by
/// the worker's first call) where the kernel has them (6.1), else COOP_TASKRUN
/// (5.19), else the default setup. Returns the ring, whether it must be
/// enabled, and the setup's name.
pub(super) fn build_ring(entries: u32, cq: u32) -> io::Result<(IoUring, bool, &'static str)> {
    match IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_r_disabled()
        .setup_cqsize(cq)
        .build(entries)
    {
        Ok(r) => return Ok((r, true, "SINGLE_ISSUER|DEFER_TASKRUN")),
        Err(e) => tracing::info!(error = %e, "io_uring SINGLE_ISSUER/DEFER_TASKRUN unavailable"),
    }
    match IoUring::builder().setup_coop_taskrun().setup_cqsize(cq).build(entries) {
        Ok(r) => Ok((r, false, "COOP_TASKRUN")),
        Err(_) => Ok((IoUring::builder().setup_cqsize(cq).build(entries)?, false, "default")),
    }
}

fn kernel_version() -> Option<(u32, u32)> {
    let s = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut it = s.trim().split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}
