//! The veth pair of the `xdp` tests (see `corecast_router::net::xdp::veth`)
//! and whether a machine without one fails or skips them: with
//! `CORECAST_REQUIRE_XDP=1` (`make unit`, so `make test`) it fails; otherwise
//! (a developer's `cargo test` without root) the test says why and returns.

#[allow(unused_imports)] // e2e.rs uses none of it
pub use corecast_router::net::xdp::veth::{VethPair, CLIENT_IP, ROUTER_IP};

/// Whether a missing veth/XDP set-up fails the test.
pub fn required() -> bool {
    std::env::var("CORECAST_REQUIRE_XDP").is_ok_and(|v| v == "1")
}

/// [`VethPair::create`], or `None` after saying why when XDP tests are not required.
pub fn veth_or_skip(tag: &str, queues: u32) -> Option<VethPair> {
    match VethPair::create(tag, queues) {
        Ok(p) => Some(p),
        Err(e) if !required() => {
            eprintln!("SKIP: no network namespaces here ({e}); CORECAST_REQUIRE_XDP=1 makes this a failure");
            None
        }
        Err(e) => panic!("cannot set up the veth pair for the xdp tests: {e}"),
    }
}
