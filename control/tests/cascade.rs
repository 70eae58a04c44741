//! Cascading (#16 item 2) with three real routers registered with the calls service: a
//! call starts on one (its home); once the home is draining, joins go to another router,
//! which the calls service links to the home before answering. Five participants on three
//! routers: each gets every other's packets byte for byte, and the routers' `/metrics`
//! count each packet once per link of the star. A leaf whose last participant leaves drops
//! its link; the end of the call on its home ends it on the leaves. On the embedded stores,
//! and on PostgreSQL + Redis + Tarantool when `CORECAST_TEST_*` is set. And by region: a
//! participant from another region joins on a router of its region, linked to the home.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::live_router::{self, LiveRouter};
use common::*;
use corecast_client::{Client, MediaPlan, RecvReport, SendReport};
use corecast_proto::join_key::JoinKey;
use corecast_proto::session::Quality;
use corecast_proto::token;
use corecast_router::server::RouterServer;
use serde_json::json;

const SECRET: &str = "test-router-secret";

async fn start_router(calls_url: &str, region: &str) -> LiveRouter {
    live_router::start(calls_url, region, "c", Duration::from_millis(200)).await
}

/// RTP packets on the link from a router to `peer`, as its `/metrics` count them
/// (`out`: sent to it, else received from it).
fn link_rtp(text: &str, peer: &str, out: bool) -> f64 {
    let dir = if out { "out" } else { "in" };
    let labels = format!("{{worker=\"0\",peer=\"{peer}\"}}");
    sample(text, &format!("corecast_link_media_{dir}_total{labels}")).unwrap_or(0.0)
        - sample(text, &format!("corecast_link_rtcp_{dir}_total{labels}")).unwrap_or(0.0)
}

fn cascade_links(server: &RouterServer) -> usize {
    server.stats().iter().map(|w| w.cascade_links).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_spans_three_routers_exactly_when_its_home_drains_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    flow(cfg, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_spans_three_routers_exactly_when_its_home_drains_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let name = "a_call_spans_three_routers_exactly_when_its_home_drains_real_servers";
    let Some(cfg) = real_servers_config(dir.path(), name) else { return };
    flow(cfg, dir).await;
}

async fn flow(mut cfg: corecast_control::config::Config, dir: tempfile::TempDir) {
    cfg.calls.max_participants = 16;
    let region = cfg.calls.region.clone();
    let s = start_with(cfg, dir).await;
    let routers: Vec<LiveRouter> = start_routers(&s.calls, &region).await;
    let url = format!("{}/v1/routers", s.calls);
    let all_live = eventually(Duration::from_secs(10), || async {
        let r = s.get(url.clone(), Some(SECRET)).await;
        let ours = |r: &&serde_json::Value| r["live"] == json!(true) && r["region"] == json!(region);
        let live = r.body["routers"].as_array().map(|a| a.iter().filter(ours).count());
        live == Some(3)
    })
    .await;
    assert!(all_live, "three routers registered");
    let drain = |id: String| {
        let rb = s.http.patch(format!("{url}/{id}")).json(&json!({"draining": true})).bearer_auth(SECRET);
        async move { assert_eq!(send(rb).await.status, 200) }
    };

    let mut users = Vec::new();
    for _ in 0..5 {
        users.push(s.user().await.1);
    }
    let call = s.start_call(&users[0]).await;
    let addr_of = |r: &LiveRouter| r.server.addresses()[0].to_string();
    let by_addr = |a: &str| routers.iter().position(|r| addr_of(r) == a).expect("a router of the test");
    let mut grants = Vec::new();
    let join = |t: String| {
        let (s, call) = (&s, call.clone());
        async move {
            let resp = s.join(&call, &t).await;
            assert_eq!(resp.status, 200, "{:?}", resp.body);
            let grant = (
                resp.body["router"].as_str().unwrap().to_owned(),
                resp.body["participant_id"].as_u64().unwrap(),
                token::decode_text(resp.body["token"].as_str().unwrap()).unwrap(),
                JoinKey::from_text(resp.body["join_key"].as_str().unwrap()).unwrap(),
            );
            grant
        }
    };
    // Two on the home; the home drains: the next on a second router; that one drains:
    // the last two on the third.
    grants.push(join(users[0].clone()).await);
    grants.push(join(users[1].clone()).await);
    let home = by_addr(&grants[0].0);
    assert_eq!(by_addr(&grants[1].0), home);
    drain(routers[home].id.clone()).await;
    grants.push(join(users[2].clone()).await);
    let second = by_addr(&grants[2].0);
    assert_ne!(second, home, "a join for a draining home goes to another router");
    drain(routers[second].id.clone()).await;
    grants.push(join(users[3].clone()).await);
    grants.push(join(users[4].clone()).await);
    let third = by_addr(&grants[3].0);
    assert_eq!(by_addr(&grants[4].0), third);
    assert!(third != home && third != second);
    assert_eq!(cascade_links(&routers[home].server), 2, "the home is linked to both leaves");
    let placed: Vec<usize> = grants.iter().map(|g| by_addr(&g.0)).collect();

    let per_client = 300u64;
    let (sent, reports, clients) = tokio::task::spawn_blocking(move || exchange(&grants, per_client)).await.unwrap();
    for (i, rep) in reports.iter().enumerate() {
        let (want, got) = rep.others_and_got(&sent, i);
        assert_eq!(got.len() as u64, 4 * per_client, "participant {i} (router {})", placed[i]);
        assert!(got == want, "participant {i}: the others' packets byte for byte");
        assert_eq!((rep.duplicates, rep.corrupt), (0, 0));
    }

    // Each packet crossed each link of the star once, from the routers' own metrics.
    let m: Vec<String> = scrape_all(&s, &routers).await;
    let (h, a, b) = (addr_of(&routers[home]), addr_of(&routers[second]), addr_of(&routers[third]));
    let n = per_client as f64;
    assert_eq!(link_rtp(&m[second], &h, true), n, "the second router's one publisher to the home");
    assert_eq!(link_rtp(&m[third], &h, true), 2.0 * n, "the third's two");
    assert_eq!(link_rtp(&m[home], &a, false), n);
    assert_eq!(link_rtp(&m[home], &b, false), 2.0 * n);
    assert_eq!(link_rtp(&m[home], &a, true), 4.0 * n, "the home's two and the third's two to the second");
    assert_eq!(link_rtp(&m[home], &b, true), 3.0 * n, "the home's two and the second's one to the third");
    assert_eq!(link_rtp(&m[second], &b, true) + link_rtp(&m[third], &a, true), 0.0, "leaves are not linked");

    // The second router's only participant leaves: its link closes, the home keeps one.
    let clients = Arc::new(clients);
    clients[2].leave().unwrap();
    let home_srv = routers[home].server.clone();
    let second_srv = routers[second].server.clone();
    let unlinked =
        eventually(Duration::from_secs(10), || {
            let (hs, ss) = (home_srv.clone(), second_srv.clone());
            async move {
                tokio::task::spawn_blocking(move || cascade_links(&ss) == 0 && cascade_links(&hs) == 1).await.unwrap()
            }
        })
        .await;
    assert!(unlinked, "an empty leaf drops its link");

    // A participant of the third router leaves through the calls service: the home is told,
    // and the third router, told by the home over their link, drops it at once.
    let left = s.post(format!("{}/v1/calls/{call}/leave", s.calls), Some(&users[4]), json!({})).await;
    assert_eq!(left.status, 200, "{:?}", left.body);
    let third_srv = routers[third].server.clone();
    let dropped = eventually(Duration::from_secs(10), || {
        let ts = third_srv.clone();
        async move {
            tokio::task::spawn_blocking(move || ts.stats().iter().map(|w| w.participants).sum::<usize>() == 1)
                .await
                .unwrap()
        }
    })
    .await;
    assert!(dropped, "a leave through calls reaches the leaf that holds the participant");

    // The call ends (on its home): the third router's share ends too.
    assert_eq!(s.delete(format!("{}/v1/calls/{call}", s.calls), Some(&users[0])).await.status, 204);
    let srvs: Vec<_> = routers.iter().map(|r| r.server.clone()).collect();
    let ended = eventually(Duration::from_secs(10), || {
        let srvs = srvs.clone();
        async move { tokio::task::spawn_blocking(move || srvs.iter().all(|s| s.snapshot().is_empty())).await.unwrap() }
    })
    .await;
    assert!(ended, "every router dropped the call");
    drop(clients);
    for r in routers {
        r.server.shutdown();
    }
    s.shutdown().await;
}

async fn start_routers(calls: &str, region: &str) -> Vec<LiveRouter> {
    let mut v = Vec::new();
    for _ in 0..3 {
        v.push(start_router(calls, region).await);
    }
    v
}

async fn scrape_all(s: &Svc, routers: &[LiveRouter]) -> Vec<String> {
    let mut v = Vec::new();
    for r in routers {
        v.push(scrape(&s.http, &r.admin).await);
    }
    v
}

/// By region: a call homed in region A; a participant whose address the operator's table
/// puts in region B joins on B's router, linked to the home; one from A joins on the home.
/// Both get each other's packets byte for byte over the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_from_another_region_joins_on_a_router_of_its_region() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    let (a, b) = (format!("a-{}", uniq()), format!("b-{}", uniq()));
    let table = dir.path().join("regions.conf");
    std::fs::write(&table, format!("10.1.0.0/16 {a};\n10.2.0.0/16 {b};\n")).unwrap();
    cfg.calls.region = a.clone();
    cfg.calls.regions_file = Some(table);
    cfg.calls.trust_forwarded_for = true;
    let s = start_with(cfg, dir).await;
    let routers = vec![start_router(&s.calls, &a).await, start_router(&s.calls, &b).await];
    let url = format!("{}/v1/routers", s.calls);
    let both_live = eventually(Duration::from_secs(10), || async {
        let r = s.get(url.clone(), Some(SECRET)).await;
        let ours =
            |x: &&serde_json::Value| x["live"] == json!(true) && (x["region"] == json!(a) || x["region"] == json!(b));
        r.body["routers"].as_array().map(|v| v.iter().filter(ours).count()) == Some(2)
    })
    .await;
    assert!(both_live, "both routers registered");
    let (_, owner) = s.user().await;
    let (_, far) = s.user().await;
    let call = s.start_call(&owner).await;
    let join = |t: String, from: &'static str| {
        let rb =
            s.http.post(format!("{}/v1/calls/{call}/join", s.calls)).bearer_auth(t).header("x-forwarded-for", from);
        async move {
            let resp = send(rb.json(&json!({}))).await;
            assert_eq!(resp.status, 200, "{:?}", resp.body);
            (
                resp.body["router"].as_str().unwrap().to_owned(),
                resp.body["participant_id"].as_u64().unwrap(),
                token::decode_text(resp.body["token"].as_str().unwrap()).unwrap(),
                JoinKey::from_text(resp.body["join_key"].as_str().unwrap()).unwrap(),
            )
        }
    };
    let near = join(owner.clone(), "10.1.4.4").await;
    let away = join(far.clone(), "10.2.9.9").await;
    let addr_of = |r: &LiveRouter| r.server.addresses()[0].to_string();
    assert_eq!(near.0, addr_of(&routers[0]), "region A's participant on the home (region A)");
    assert_eq!(away.0, addr_of(&routers[1]), "region B's participant on region B's router");
    assert_eq!(cascade_links(&routers[0].server), 1, "the two routers linked");

    let per_client = 100u64;
    let grants = [near, away];
    let (sent, reports, _) = tokio::task::spawn_blocking(move || exchange(&grants, per_client)).await.unwrap();
    for (i, rep) in reports.iter().enumerate() {
        let (want, got) = rep.others_and_got(&sent, i);
        assert!(got == want, "participant {i}: the other's packets byte for byte ({} of {})", got.len(), want.len());
    }
    for r in routers {
        r.server.shutdown();
    }
    s.shutdown().await;
}

/// What calls answered a join: the router's address, the participant, its token and join key.
type Grant = (String, u64, [u8; token::TOKEN_LEN], JoinKey);

/// The grants joined as native clients: each sends `per_client` packets and waits for
/// everyone else's. What each sent and received, and the clients (still in the call).
fn exchange(grants: &[Grant], per_client: u64) -> (Vec<SendReport>, Vec<RecvReport>, Vec<Client>) {
    let clients: Vec<Client> = grants
        .iter()
        .map(|(a, pid, tok, key)| Client::join(a.parse().unwrap(), tok, key, *pid, Quality::Hd).expect("admitted"))
        .collect();
    // The last joins' announcements cross before any media.
    std::thread::sleep(Duration::from_millis(300));
    let rx: Vec<_> = clients.iter().map(|c| c.start_receiving(true)).collect();
    let plan = MediaPlan { video_fps: 50, max_packets: Some(per_client), ..Default::default() };
    let sent: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = clients.iter().map(|c| sc.spawn(|| c.send_media(&plan, true))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let others = (grants.len() as u64 - 1) * per_client;
    for h in &rx {
        h.wait_for(others, Duration::from_secs(20));
    }
    std::thread::sleep(Duration::from_millis(300)); // would-be duplicates
    let reps: Vec<_> = rx.into_iter().map(|h| h.finish()).collect();
    (sent, reps, clients)
}
