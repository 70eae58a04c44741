//! The end-to-end suite's scenarios (see `common`) against the `xdp` backend:
//! the router on one end of a veth pair in a network namespace of its own,
//! the clients in another, the router's XDP program native on veth (copy
//! mode). Needs root; with `CORECAST_REQUIRE_XDP=1` (`make test`) a machine
//! where that cannot be set up fails the tests rather than skipping them.
//!
//! Each test checks that the datagrams really went through AF_XDP (the
//! backend's counters), not only through its kernel socket.

use std::net::{IpAddr, SocketAddr};

use corecast_core::RouterConfig;
use corecast_router::server::RouterServer;

mod common;
use common::netns::{veth_or_skip, VethPair, CLIENT_IP, ROUTER_IP};
use common::*;

fn start_xdp(pair: &VethPair, workers: usize, core: RouterConfig) -> RouterServer {
    let listen = SocketAddr::new(IpAddr::V4(ROUTER_IP), 0);
    let server = pair.in_router(|| start_on(listen, "xdp", workers, core));
    assert_eq!(server.backend(), "xdp");
    server
}

/// Asserts at least `recv_min` datagrams came in and `sent_min` went out
/// through AF_XDP (a few sends may go through the kernel: one per
/// destination every `CONFIRM_EVERY`, so that the kernel confirms its neighbour).
fn assert_bypassed(server: &RouterServer, recv_min: u64, sent_min: u64) {
    let stats = server.stats();
    let recv: u64 = stats.iter().map(|s| s.io.xdp_recv_datagrams).sum();
    let sent: u64 = stats.iter().map(|s| s.io.xdp_sent_datagrams).sum();
    let io: Vec<_> = stats.iter().map(|s| s.io).collect();
    eprintln!("AF_XDP carried {recv} datagrams in, {sent} out; per worker: {io:?}");
    assert!(recv >= recv_min && sent >= sent_min, "AF_XDP carried {recv} in, {sent} out: {io:?}");
}

#[test]
fn four_participants_receive_exactly_the_others_packets_over_xdp() {
    let Some(pair) = veth_or_skip("exact", 1) else { return };
    let server = start_xdp(&pair, 1, RouterConfig::default());
    pair.in_clients(|| exact_call_on(&server, "xdp", false));
    assert_bypassed(&server, 4 * 1000, 11_900);
    server.stop();
}

#[test]
fn bad_actors_get_nothing_forwarded_over_xdp() {
    let Some(pair) = veth_or_skip("bad", 1) else { return };
    let server = start_xdp(&pair, 1, RouterConfig::default());
    pair.in_clients(|| bad_actors_get_nothing(&server, "xdp", IpAddr::V4(CLIENT_IP)));
    assert_bypassed(&server, 2 * 200, 380);
    server.stop();
}

#[test]
fn call_spread_over_two_workers_is_exact_over_xdp() {
    // Two queues: one AF_XDP socket per worker.
    let Some(pair) = veth_or_skip("spread", 2) else { return };
    let core = RouterConfig { max_receivers_per_worker: 2, ..Default::default() };
    let server = start_xdp(&pair, 2, core);
    pair.in_clients(|| exact_call_on(&server, "xdp", true));
    // Which veth queue a client's datagrams arrive on follows its socket's
    // random flow hash: a worker's port on the other worker's queue reaches
    // it through its kernel socket (on a NIC, steer ports to queues). So only
    // the sending side is certain to be AF_XDP here.
    assert_bypassed(&server, 0, 11_900);
    server.stop();
}

/// The backend alone over veth (MTU 1000): the first datagram to a
/// neighbour the kernel has not resolved goes through the kernel socket (which
/// sends the ARP request), later ones are framed by the router; a datagram
/// longer than the MTU allows goes through the kernel (fragmented) and arrives
/// whole; fragments from the client reach the backend through its kernel
/// socket, whole datagrams through AF_XDP.
#[test]
fn neighbours_and_the_mtu_over_xdp() {
    use std::net::UdpSocket;
    use std::time::Duration;

    use bytes::Bytes;
    use corecast_router::net::{self, BackendKind, BackendOptions};

    let Some(pair) = veth_or_skip("mtu", 1) else { return };
    for (ns, end) in [(&pair.router_ns, &pair.router_if), (&pair.client_ns, &pair.client_if)] {
        let ok = std::process::Command::new("ip").args(["-n", ns, "link", "set", "dev", end, "mtu", "1000"]).status();
        assert!(ok.is_ok_and(|s| s.success()), "setting the MTU");
    }
    let listen = SocketAddr::new(IpAddr::V4(ROUTER_IP), 0);
    let mut backend = pair.in_router(|| net::open(BackendKind::Xdp, listen, &BackendOptions::default()).unwrap());
    let router = backend.local_addr();
    let client = pair.in_clients(|| UdpSocket::bind((CLIENT_IP, 0)).unwrap());
    client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let to_client = client.local_addr().unwrap();
    let mut buf = [0u8; 2048];
    let mut out = Vec::new();
    let mut send = |backend: &mut Box<dyn net::IoBackend>, len: usize, fill: u8| {
        backend.queue(to_client, Bytes::from(vec![fill; len]));
        backend.flush().unwrap();
        let (n, from) = client.recv_from(&mut buf).expect("the client receives");
        assert_eq!((n, from), (len, router));
        assert!(buf[..n].iter().all(|&b| b == fill));
        backend.stats().xdp_sent_datagrams
    };
    // 1. Unknown neighbour: through the kernel, which resolves it.
    assert_eq!(send(&mut backend, 100, 1), 0, "the first datagram goes through the kernel");
    std::thread::sleep(Duration::from_millis(200));
    // 2. Now framed by the router.
    assert_eq!(send(&mut backend, 100, 2), 1, "the second is framed for the resolved neighbour");
    // 3. Longer than the MTU allows (1000 - 28 bytes): the kernel fragments it.
    assert_eq!(send(&mut backend, 1200, 3), 1, "an oversize datagram is not framed");
    assert_eq!(send(&mut backend, 972, 4), 2, "exactly the MTU is framed");
    // 4. The client's datagrams: whole ones through AF_XDP, fragments through the kernel.
    for (len, via_xdp) in [(500usize, 1u64), (1500, 1)] {
        client.send_to(&vec![9u8; len], router).unwrap();
        out.clear();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while out.is_empty() && std::time::Instant::now() < deadline {
            backend.recv(Some(Duration::from_millis(50)), &mut out).unwrap();
        }
        assert_eq!(out.len(), 1, "{len} bytes arrive");
        assert_eq!((out[0].source, out[0].contents.len()), (to_client, len));
        assert_eq!(backend.stats().xdp_recv_datagrams, via_xdp, "{len} bytes");
    }
    assert_eq!(backend.stats().recv_datagrams, 2);
}

/// A `corecast_xdp` program attached the old way (netlink, as `ip link` does;
/// it outlives its process) is detached when the backend starts; any other
/// program is left alone and the start fails saying so. The backend's own
/// program goes with the backend.
#[test]
fn a_stale_corecast_program_is_replaced_and_a_foreign_one_refused() {
    use corecast_router::net::{self, BackendKind, BackendOptions};

    let Some(pair) = veth_or_skip("stale", 1) else { return };
    let dir = tempfile::tempdir().unwrap();
    let ip = |args: &[&str]| {
        let out = std::process::Command::new("ip").args(["-n", &pair.router_ns]).args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let attached = || ip(&["-d", "link", "show", "dev", &pair.router_if]).contains("prog/xdp");
    let listen = SocketAddr::new(IpAddr::V4(ROUTER_IP), 0);
    for (name, stale) in [("corecast_xdp", true), ("someone_elses", false)] {
        let c = dir.path().join(format!("{name}.c"));
        let o = dir.path().join(format!("{name}.o"));
        std::fs::write(
            &c,
            format!(
                "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n\
                 SEC(\"xdp\") int {name}(struct xdp_md *c) {{ return XDP_PASS; }}\n\
                 char L[] SEC(\"license\") = \"GPL\";\n"
            ),
        )
        .unwrap();
        let arch = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
        let st = std::process::Command::new("clang")
            .args(["-O2", "-target", "bpf", &arch, "-c"])
            .arg(&c)
            .arg("-o")
            .arg(&o)
            .status()
            .unwrap();
        assert!(st.success(), "clang");
        ip(&["link", "set", "dev", &pair.router_if, "xdpdrv", "obj", o.to_str().unwrap(), "sec", "xdp"]);
        assert!(attached());
        let r = pair.in_router(|| net::open(BackendKind::Xdp, listen, &BackendOptions::default()));
        if stale {
            let backend = r.expect("the stale program is replaced");
            drop(backend);
            assert!(!attached(), "the backend's program goes with it");
        } else {
            let e = r.err().expect("a foreign program is not replaced").to_string();
            assert!(e.contains("another XDP program is attached"), "{e}");
            assert!(attached(), "the foreign program stays");
            ip(&["link", "set", "dev", &pair.router_if, "xdp", "off"]);
        }
    }
}
