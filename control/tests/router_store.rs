//! The router registry's contract ([`RouterStore`]), run unchanged on the memory backend and
//! (when `CORECAST_TEST_TARANTOOL` is set by `control/scripts/test-with-servers.sh`) on
//! Tarantool through two separate clients, as two calls instances would use it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use corecast_control::stores::memory::MemoryCallStore;
use corecast_control::stores::memory_routers::MemoryRouterStore;
use corecast_control::stores::tarantool::TarantoolCallStore;
use corecast_control::stores::tarantool_routers::TarantoolRouterStore;
use corecast_control::stores::*;
use corecast_control::tarantool::{Tarantool, TarantoolUrl};
use uuid::Uuid;

const TTL: Duration = Duration::from_secs(30);

fn reg(id: &str, region: &str, load: f64) -> RouterRegistration {
    RouterRegistration {
        id: id.into(),
        address: format!("127.0.0.1:{}", 40000 + id.len()),
        cores: 1,
        load,
        admin: format!("http://{id}.example:9"),
        workers: vec![],
        region: region.into(),
        reserve: false,
    }
}

fn reserve(id: &str, region: &str, load: f64) -> RouterRegistration {
    RouterRegistration { reserve: true, ..reg(id, region, load) }
}

fn new_call() -> NewCall {
    NewCall { id: Uuid::new_v4(), owner: 7, created_at: 1 }
}

/// `a` and `b` are two handles on one registry (two calls instances); `calls` reads the call
/// store placement writes to.
async fn router_store_contract(a: &dyn RouterStore, b: &dyn RouterStore, calls: &dyn CallStore) {
    // Other tests share a real store: everything here lives in a region of its own.
    let region = format!("c-{}", uniq());
    let (x, y, z) = (format!("{region}-x"), format!("{region}-y"), format!("{region}-z"));
    let fallback = RouterRef { id: "default".into(), address: "127.0.0.1:40000".into(), admin: "http://d:9".into() };
    let placement =
        Placement { region: region.clone(), ttl: TTL, fallback: fallback.clone(), reserve_on: 0.8, reserve_off: 0.6 };

    // No router: the fallback, and the call is stored on it.
    let c = new_call();
    assert_eq!(a.place_call(&c, &placement).await.unwrap(), None);
    assert_eq!(calls.get(c.id).await.unwrap().unwrap().router, fallback);

    // A registration is fresh once, whichever handle receives the next heartbeat.
    assert!(a.heartbeat(&reg(&x, &region, 0.0), TTL).await.unwrap());
    assert!(!b.heartbeat(&reg(&x, &region, 0.0), TTL).await.unwrap());
    assert!(b.heartbeat(&reg(&y, &region, 0.0), TTL).await.unwrap());
    assert!(a.heartbeat(&reg(&z, "elsewhere", 0.0), TTL).await.unwrap());

    // Equal load: placements through either handle alternate (the count is shared), and
    // each call is stored on the router it was placed on; other regions are never chosen.
    let mut got = Vec::new();
    for i in 0..6 {
        let s = if i % 2 == 0 { a } else { b };
        let c = new_call();
        let st = s.place_call(&c, &placement).await.unwrap().expect("a registered router");
        assert_eq!(calls.get(c.id).await.unwrap().unwrap().router.id, st.reg.id);
        assert_eq!(calls.get(c.id).await.unwrap().unwrap().router.address, st.reg.address);
        got.push(st.reg.id);
    }
    assert_eq!(got, [&x, &y, &x, &y, &x, &y].map(String::clone), "shared placement counts");
    let sx = b.get(&x, TTL).await.unwrap().unwrap();
    assert_eq!((sx.placed, sx.live, sx.draining), (3, true, false));
    assert_eq!(sx.reg, reg(&x, &region, 0.0), "what the router reported");

    // A failed placement (the call id exists) counts nothing and stores nothing new.
    let dup = NewCall { id: c.id, owner: 8, created_at: 2 };
    assert!(a.place_call(&dup, &placement).await.is_err());
    assert_eq!(calls.get(c.id).await.unwrap().unwrap().owner, 7);
    let after = a.get(&x, TTL).await.unwrap().unwrap().placed + a.get(&y, TTL).await.unwrap().unwrap().placed;
    assert_eq!(after, 6, "the failed placement was not counted");

    // A heartbeat resets the count and carries the load: the least loaded wins.
    let mut busy = reg(&y, &region, 0.9);
    busy.workers = vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()];
    assert!(!a.heartbeat(&busy, TTL).await.unwrap());
    let sy = b.get(&y, TTL).await.unwrap().unwrap();
    assert_eq!((sy.placed, sy.reg.load, sy.reg.workers.len()), (0, 0.9, 2));
    assert_eq!(b.place_call(&new_call(), &placement).await.unwrap().unwrap().reg.id, x);

    // Draining (through one handle): the other places nothing there; heartbeats keep the flag.
    assert!(a.set_draining(&x, true, None, TTL).await.unwrap().unwrap().draining);
    assert!(!b.heartbeat(&reg(&x, &region, 0.0), TTL).await.unwrap());
    for _ in 0..3 {
        assert_eq!(b.place_call(&new_call(), &placement).await.unwrap().unwrap().reg.id, y);
    }
    assert!(b.get(&x, TTL).await.unwrap().unwrap().draining);
    assert_eq!(a.set_draining("no-such-router", true, None, TTL).await.unwrap(), None);
    assert!(!b.set_draining(&x, false, None, TTL).await.unwrap().unwrap().draining);

    // A drain deadline (through one handle) is kept in the store: the other sees it, a
    // heartbeat keeps it, it falls due by the store's clock, and undraining clears it.
    let s = a.set_draining(&x, true, Some(Duration::from_millis(300)), TTL).await.unwrap().unwrap();
    assert!(s.draining && s.drain_deadline.is_some() && !s.drain_due, "{s:?}");
    assert!(!b.heartbeat(&reg(&x, &region, 0.0), TTL).await.unwrap());
    let seen = b.get(&x, TTL).await.unwrap().unwrap();
    assert_eq!((seen.drain_deadline, seen.drain_due), (s.drain_deadline, false), "{seen:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(b.get(&x, TTL).await.unwrap().unwrap().drain_due, "due after the deadline");
    let cleared = b.set_draining(&x, false, None, TTL).await.unwrap().unwrap();
    assert_eq!((cleared.draining, cleared.drain_deadline, cleared.drain_due), (false, None, false));
    let no_deadline = a.set_draining(&x, true, None, TTL).await.unwrap().unwrap();
    assert_eq!((no_deadline.drain_deadline, no_deadline.drain_due), (None, false), "a drain without a deadline");
    assert!(!b.set_draining(&x, false, Some(Duration::from_secs(5)), TTL).await.unwrap().unwrap().drain_due);
    assert_eq!(a.get(&x, TTL).await.unwrap().unwrap().drain_deadline, None, "no deadline without draining");
    assert_eq!(a.place_call(&new_call(), &placement).await.unwrap().unwrap().reg.id, x);

    // Listing: both handles see every router.
    for s in [a, b] {
        let ids: Vec<String> = s.list(TTL).await.unwrap().into_iter().map(|r| r.reg.id).collect();
        assert!([&x, &y, &z].iter().all(|id| ids.contains(id)), "{ids:?}");
    }

    // Expiry by the store's clock: silent longer than the time-to-live, not chosen; the
    // next heartbeat is fresh again.
    let short = Placement { ttl: Duration::from_millis(300), ..placement.clone() };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(a.place_call(&new_call(), &short).await.unwrap(), None);
    assert!(!b.get(&x, short.ttl).await.unwrap().unwrap().live);
    assert!(b.get(&x, short.ttl).await.unwrap().unwrap().last_seen_ms_ago >= 300);
    assert!(b.heartbeat(&reg(&x, &region, 0.0), short.ttl).await.unwrap());
    assert_eq!(a.place_call(&new_call(), &short).await.unwrap().unwrap().reg.id, x);
}

/// Reserve routers: used only while the regular pool's load is past the threshold, released
/// below the lower one (hysteresis), the state shared by both handles.
async fn reserve_contract(a: &dyn RouterStore, b: &dyn RouterStore) {
    let region = format!("c-{}", uniq());
    let (x, v) = (format!("{region}-x"), format!("{region}-v"));
    let fallback = RouterRef { id: "default".into(), address: "127.0.0.1:40000".into(), admin: "http://d:9".into() };
    let p = Placement { region: region.clone(), ttl: TTL, fallback, reserve_on: 0.7, reserve_off: 0.4 };
    assert!(a.heartbeat(&reg(&x, &region, 0.5), TTL).await.unwrap());
    assert!(b.heartbeat(&reserve(&v, &region, 0.0), TTL).await.unwrap());
    assert!(b.get(&v, TTL).await.unwrap().unwrap().reg.reserve);
    let on = |s: Option<RouterStatus>| s.map(|s| s.reg.id).unwrap_or_default();

    // Below the threshold: the regular router, though the idle reserve scores lower.
    assert_eq!(on(a.place_call(&new_call(), &p).await.unwrap()), x);
    assert!(!b.reserves_in_use(&region).await.unwrap());
    // Past it: the reserves come into use (the least loaded of all wins).
    assert!(!b.heartbeat(&reg(&x, &region, 0.75), TTL).await.unwrap());
    assert_eq!(on(b.place_call(&new_call(), &p).await.unwrap()), v);
    assert!(a.reserves_in_use(&region).await.unwrap());
    // Between the thresholds: still in use.
    assert!(!a.heartbeat(&reg(&x, &region, 0.5), TTL).await.unwrap());
    assert_eq!(on(a.place_call(&new_call(), &p).await.unwrap()), v);
    assert!(b.reserves_in_use(&region).await.unwrap());
    // Below the lower one: released.
    assert!(!a.heartbeat(&reg(&x, &region, 0.3), TTL).await.unwrap());
    assert_eq!(on(b.place_call(&new_call(), &p).await.unwrap()), x);
    assert!(!a.reserves_in_use(&region).await.unwrap());
    // No regular router live (drained): the reserves take the calls.
    a.set_draining(&x, true, None, TTL).await.unwrap();
    assert_eq!(on(b.place_call(&new_call(), &p).await.unwrap()), v);
    assert!(a.reserves_in_use(&region).await.unwrap());
    a.set_draining(&x, false, None, TTL).await.unwrap();
    assert_eq!(on(b.place_call(&new_call(), &p).await.unwrap()), x, "pool at 0.3: released again");
}

/// Failover and drain deadlines: a call moves off a router to the least-loaded other live, not
/// draining router of the region (regular before reserve), once: of two handles racing, one
/// moves it and the other is told where it went; participants stay.
async fn move_contract(a: &dyn RouterStore, b: &dyn RouterStore, calls: &dyn CallStore) {
    let region = format!("c-{}", uniq());
    let (x, y, w, v) = (format!("{region}-x"), format!("{region}-y"), format!("{region}-w"), format!("{region}-v"));
    let fallback = RouterRef { id: "default".into(), address: "127.0.0.1:40000".into(), admin: "http://d:9".into() };
    let p = Placement { region: region.clone(), ttl: TTL, fallback, reserve_on: 0.8, reserve_off: 0.6 };
    assert!(a.heartbeat(&reg(&x, &region, 0.0), TTL).await.unwrap());
    let c = new_call();
    assert_eq!(a.place_call(&c, &p).await.unwrap().unwrap().reg.id, x);
    let joined = Participant::new(11, 7, "publisher", 1);
    calls.join(c.id, &joined, 8).await.unwrap();
    // Nowhere to go: it stays.
    assert_eq!(a.move_call(c.id, &x, &region, TTL).await.unwrap(), Moved::Nowhere);
    assert_eq!(calls.get(c.id).await.unwrap().unwrap().router.id, x);
    // A reserve only when no regular router is there; a draining one never.
    assert!(b.heartbeat(&reserve(&v, &region, 0.0), TTL).await.unwrap());
    assert!(b.heartbeat(&reg(&w, &region, 0.0), TTL).await.unwrap());
    a.set_draining(&w, true, None, TTL).await.unwrap();
    assert!(b.heartbeat(&reg(&y, &region, 0.5), TTL).await.unwrap());
    let placed_before = b.get(&y, TTL).await.unwrap().unwrap().placed;
    let (ra, rb) = tokio::join!(a.move_call(c.id, &x, &region, TTL), b.move_call(c.id, &x, &region, TTL));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let to = |m: &Moved| match m {
        Moved::Moved(r) | Moved::Already(r) => r.id.clone(),
        Moved::Nowhere => String::new(),
    };
    assert_eq!((to(&ra), to(&rb)), (y.clone(), y.clone()), "{ra:?} {rb:?}");
    assert_eq!([&ra, &rb].iter().filter(|m| matches!(m, Moved::Moved(_))).count(), 1, "one mover: {ra:?} {rb:?}");
    let call = calls.get(c.id).await.unwrap().unwrap();
    assert_eq!((call.router.id.clone(), call.participants), (y.clone(), vec![joined]));
    assert_eq!(b.get(&y, TTL).await.unwrap().unwrap().placed, placed_before + 1, "the move is counted");
    // Off a router it is no longer on: told where it is, nothing moves.
    assert_eq!(a.move_call(c.id, &x, &region, TTL).await.unwrap(), Moved::Already(call.router));
    assert!(matches!(a.move_call(Uuid::new_v4(), &x, &region, TTL).await, Err(CallError::NotFound)));
    // Only a reserve left (the regular one drained): it takes the call.
    a.set_draining(&x, true, None, TTL).await.unwrap();
    assert_eq!(to(&b.move_call(c.id, &y, &region, TTL).await.unwrap()), v);
}

#[tokio::test]
async fn memory_router_store() {
    let calls = Arc::new(MemoryCallStore::new());
    let s = MemoryRouterStore::new(calls.clone());
    router_store_contract(&s, &s, calls.as_ref()).await;
    reserve_contract(&s, &s).await;
    move_contract(&s, &s, calls.as_ref()).await;
}

#[tokio::test]
async fn tarantool_router_store() {
    let Some(url) = real_servers().tarantool else { return skip("tarantool_router_store", "CORECAST_TEST_TARANTOOL") };
    let url = TarantoolUrl::parse(&url).unwrap();
    let (t1, t2) = (Tarantool::new(&url), Tarantool::new(&url));
    t1.wait_ready(Duration::from_secs(10)).await.unwrap();
    let a = TarantoolRouterStore::new(t1.clone());
    let b = TarantoolRouterStore::new(t2);
    router_store_contract(&a, &b, &TarantoolCallStore::new(t1.clone())).await;
    reserve_contract(&a, &b).await;
    move_contract(&a, &b, &TarantoolCallStore::new(t1)).await;
}
