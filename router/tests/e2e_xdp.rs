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

/// Stats of every worker, then asserts most media went through AF_XDP both ways.
fn assert_bypassed(server: &RouterServer, at_least: u64) {
    let stats = server.stats();
    let recv: u64 = stats.iter().map(|s| s.io.xdp_recv_datagrams).sum();
    let sent: u64 = stats.iter().map(|s| s.io.xdp_sent_datagrams).sum();
    let io: Vec<_> = stats.iter().map(|s| s.io).collect();
    eprintln!("AF_XDP carried {recv} datagrams in, {sent} out; per worker: {io:?}");
    assert!(recv >= at_least && sent >= at_least, "AF_XDP carried {recv} in, {sent} out: {io:?}");
}

#[test]
fn four_participants_receive_exactly_the_others_packets_over_xdp() {
    let Some(pair) = veth_or_skip("exact", 1) else { return };
    let server = start_xdp(&pair, 1, RouterConfig::default());
    pair.in_clients(|| exact_call_on(&server, "xdp", false));
    assert_bypassed(&server, 4 * 1000);
    server.stop();
}

#[test]
fn bad_actors_get_nothing_forwarded_over_xdp() {
    let Some(pair) = veth_or_skip("bad", 1) else { return };
    let server = start_xdp(&pair, 1, RouterConfig::default());
    pair.in_clients(|| bad_actors_get_nothing(&server, "xdp", IpAddr::V4(CLIENT_IP)));
    assert_bypassed(&server, 2 * 200);
    server.stop();
}

#[test]
fn call_spread_over_two_workers_is_exact_over_xdp() {
    // Two queues: one AF_XDP socket per worker.
    let Some(pair) = veth_or_skip("spread", 2) else { return };
    let core = RouterConfig { max_receivers_per_worker: 2, ..Default::default() };
    let server = start_xdp(&pair, 2, core);
    pair.in_clients(|| exact_call_on(&server, "xdp", true));
    assert_bypassed(&server, 1000);
    server.stop();
}
