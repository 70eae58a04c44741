//! A veth pair between two network namespaces made for the occasion, for the
//! `xdp` backend's tests (router/tests/e2e_xdp.rs) and `corecast-bench fanout
//! --backend xdp`: the router's end in one namespace, the clients' in the
//! other. Needs root (`ip netns`). Names start with `ccx` and carry the
//! process id, so that concurrent runs do not collide.

use std::io;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The router's address on its end.
pub const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 1);
/// The clients' address on theirs.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 2);

/// Two namespaces joined by a veth pair; both removed on drop.
#[derive(Debug)]
pub struct VethPair {
    /// The router's namespace.
    pub router_ns: String,
    /// The clients' namespace.
    pub client_ns: String,
    /// The router's interface.
    pub router_if: String,
    /// The clients' interface.
    pub client_if: String,
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("ip {}: {e}", args.join(" "))))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

impl VethPair {
    /// Creates `ccx_r_<tag>_<pid>` and `ccx_c_<tag>_<pid>` joined by a veth
    /// pair with `queues` queues each way, addresses up.
    pub fn create(tag: &str, queues: u32) -> io::Result<VethPair> {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let p = VethPair {
            router_ns: format!("ccx_r_{tag}_{pid}_{n}"),
            client_ns: format!("ccx_c_{tag}_{pid}_{n}"),
            router_if: format!("ccxr{:x}{n}", pid & 0xffff),
            client_if: format!("ccxc{:x}{n}", pid & 0xffff),
        };
        let client_if = p.client_if.clone();
        let q = queues.to_string();
        // Removed by Drop from here on, whatever fails next.
        ip(&["netns", "add", &p.router_ns])?;
        ip(&["netns", "add", &p.client_ns])?;
        #[rustfmt::skip]
        ip(&["-n", &p.router_ns, "link", "add", &p.router_if, "numtxqueues", &q, "numrxqueues", &q, "type", "veth",
             "peer", "name", &client_if, "netns", &p.client_ns, "numtxqueues", &q, "numrxqueues", &q])?;
        ip(&["-n", &p.router_ns, "addr", "add", &format!("{ROUTER_IP}/24"), "dev", &p.router_if])?;
        ip(&["-n", &p.client_ns, "addr", "add", &format!("{CLIENT_IP}/24"), "dev", &client_if])?;
        ip(&["-n", &p.router_ns, "link", "set", &p.router_if, "up"])?;
        ip(&["-n", &p.client_ns, "link", "set", &client_if, "up"])?;
        ip(&["-n", &p.router_ns, "link", "set", "lo", "up"])?;
        ip(&["-n", &p.client_ns, "link", "set", "lo", "up"])?;
        Ok(p)
    }

    /// Runs `f` on a thread inside the router's namespace (threads it starts
    /// and sockets it opens live there too).
    pub fn in_router<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.router_ns, f)
    }

    /// Runs `f` on a thread inside the clients' namespace.
    pub fn in_clients<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.client_ns, f)
    }
}

/// Runs `f` on a new thread that has joined namespace `ns` first (a
/// namespace is per thread: threads `f` starts and sockets it opens live
/// there too; sockets keep their namespace whichever thread uses them).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(format!("/var/run/netns/{ns}"))
                .unwrap_or_else(|e| panic!("network namespace {ns}: {e}"));
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("joining network namespace {ns}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it (and so its peer).
        let _ = ip(&["netns", "del", &self.router_ns]);
        let _ = ip(&["netns", "del", &self.client_ns]);
    }
}
