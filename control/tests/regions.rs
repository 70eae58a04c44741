//! Geographic placement (#16 item 6): a call starts in the region of the client that
//! starts it, by the operator's table of address ranges (`calls.regions_file`, the body
//! of nginx's `geo` block in `tuning/nginx/corecast.conf`), or in a region the start
//! names; a region without a live router falls back to the instance's own. On the
//! embedded stores, and on PostgreSQL + Redis + Tarantool when `CORECAST_TEST_*` is set.

mod common;

use common::*;
use corecast_control::config::Config;
use serde_json::{json, Value};

const SECRET: &str = "test-router-secret";

async fn region_flow(mut cfg: Config, dir: tempfile::TempDir) {
    // Regions of their own: a shared Tarantool holds other tests' routers.
    let (home, a, b, empty) = (cfg.calls.region.clone(), format!("a-{}", uniq()), format!("b-{}", uniq()), uniq());
    let table = dir.path().join("regions.conf");
    std::fs::write(
        &table,
        format!("# test ranges\n10.1.0.0/16 {a};\n10.2.0.0/16 {b};\n10.2.7.0/24 {a}; # more specific\n10.9.0.0/16 e{empty};\n"),
    )
    .unwrap();
    cfg.calls.regions_file = Some(table);
    cfg.calls.trust_forwarded_for = true;
    let s = start_with(cfg, dir).await;
    let url = format!("{}/v1/routers", s.calls);
    for (id, port, region) in [(format!("ra-{}", uniq()), 41301, &a), (format!("rb-{}", uniq()), 41302, &b)]
        .into_iter()
        .chain([(format!("rh-{}", uniq()), 41303, &home)])
    {
        let reg = json!({"id": id, "address": format!("127.0.0.1:{port}"), "cores": 1, "load": 0.1,
                         "admin": "http://127.0.0.1:9", "region": region});
        assert_eq!(s.post(url.clone(), Some(SECRET), reg).await.status, 200);
    }
    let (_, owner) = s.user().await;
    let start = |from: &'static str, body: Value| {
        let rb = s.http.post(format!("{}/v1/calls", s.calls)).bearer_auth(&owner).header("x-forwarded-for", from);
        async move { send(rb.json(&body)).await }
    };
    let router = |r: &Resp| r.body["router"].as_str().unwrap_or_default().to_owned();
    // By the client's address: the most specific range.
    assert_eq!(router(&start("10.1.2.3", json!({})).await), "127.0.0.1:41301", "10.1/16: region a");
    assert_eq!(router(&start("10.2.3.4, 192.0.2.1", json!({})).await), "127.0.0.1:41302", "10.2/16: region b");
    assert_eq!(router(&start("10.2.7.9", json!({})).await), "127.0.0.1:41301", "10.2.7/24: a again");
    // No range, or a region with no live router: this instance's region.
    assert_eq!(router(&start("192.0.2.5", json!({})).await), "127.0.0.1:41303");
    assert_eq!(router(&start("10.9.0.1", json!({})).await), "127.0.0.1:41303", "its region has no router");
    // A region named by the start wins over the address.
    assert_eq!(router(&start("10.1.2.3", json!({"region": b})).await), "127.0.0.1:41302");
    let r = start("10.1.2.3", json!({"region": "no spaces"})).await;
    assert_eq!((r.status, r.field()), (422, "region"), "{:?}", r.body);
    let r = start("10.1.2.3", json!({"regoin": "a"})).await;
    assert_eq!(r.status, 422, "unknown fields are refused: {:?}", r.body);
    s.shutdown().await;
}

#[tokio::test]
async fn a_call_starts_in_its_clients_region_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.calls.region = format!("h-{}", uniq());
    region_flow(cfg, dir).await;
}

#[tokio::test]
async fn a_call_starts_in_its_clients_region_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cfg) = real_servers_config(dir.path(), "a_call_starts_in_its_clients_region_real_servers") else {
        return;
    };
    region_flow(cfg, dir).await;
}

#[test]
fn a_malformed_regions_file_stops_the_service_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    let table = dir.path().join("regions.conf");
    std::fs::write(&table, "10.1.0.0/16 a;\n10.2.0.0/33 b;\n").unwrap();
    cfg.calls.regions_file = Some(table);
    let sessions = corecast_control::run::session_store(&cfg).unwrap();
    let Err(e) = corecast_control::run::calls_state(&cfg, sessions) else { panic!("a malformed table is refused") };
    assert!(e.to_string().contains("line 2"), "{e}");
}
