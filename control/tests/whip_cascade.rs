//! Cascaded WHIP/WHEP (#16 item 2): WebRTC legs are placed like native joins. With two real
//! routers registered with the calls service: a call starts on one (its home), a native
//! client joins there, the home drains; then a WHIP publisher (the reference client's WebRTC
//! peer: ICE, DTLS-SRTP) and a WHEP viewer of the native client are placed on the other
//! router, linked to the home. The native client gets the publisher's packets and the viewer
//! the native client's, byte for byte; PATCH and DELETE reach the leaf; after the DELETEs the
//! store and the leaf drop both legs and the leaf's link closes. A composite viewer stays on
//! the home (the codec pool's mixer is there). By region: a WHIP publisher
//! from region B's address goes to B's router; when that router dies, its leg leaves the
//! store and the home drops its link; when the home dies, the call moves on and the legs on its
//! leaves are dropped. On the embedded stores, and on PostgreSQL + Redis +
//! Tarantool when `CORECAST_TEST_*` is set.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::live_router::{self, LiveRouter};
use common::*;
use corecast_client::webrtc::sdp::{AV1_PT, OPUS_PT};
use corecast_client::webrtc::{http, PeerConfig, UdpPeer, WebRtcPeer};
use corecast_client::Client;
use corecast_proto::join_key::JoinKey;
use corecast_proto::rtp::RtpPacket;
use corecast_proto::session::Quality;
use corecast_proto::token;
use corecast_proto::{MediaTime, Pt, SeqNo, Ssrc};
use corecast_router::server::RouterServer;
use serde_json::json;

const SECRET: &str = "test-router-secret";
const AUDIO: u32 = 0xA1A1;
const VIDEO: u32 = 0xB1B1;
/// Packets each side sends (at 200 per second).
const N: u16 = 60;

const FRAGMENT: &str = "a=ice-ufrag:Zx9q\r\na=ice-pwd:0123456789abcdefghijklmn\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n";

fn cascade_links(server: &RouterServer) -> usize {
    server.stats().iter().map(|w| w.cascade_links).sum()
}

fn packet(i: u16, ssrcs: (u32, u32)) -> RtpPacket {
    let audio = i.is_multiple_of(5);
    RtpPacket {
        pt: Pt(if audio { OPUS_PT } else { AV1_PT }),
        seq: SeqNo(i),
        timestamp: MediaTime(u32::from(i) * 3000),
        ssrc: Ssrc(if audio { ssrcs.0 } else { ssrcs.1 }),
        payload: (0..if audio { 80 } else { 1100 }).map(|b: u32| (b as u16 ^ i.wrapping_mul(31)) as u8).collect(),
        ..Default::default()
    }
}

/// A WebRTC leg opened through the calls service (`path`: `whip` or `whep?participant=…`),
/// connected (ICE, DTLS-SRTP); its session resource and participant id.
fn webrtc_leg(calls: &str, call: &str, path: &str, session: &str, publish: bool) -> (UdpPeer, String, u64) {
    let ssrcs = publish.then_some((AUDIO, VIDEO));
    let mut peer = WebRtcPeer::new(PeerConfig { publish: ssrcs, cname: "t".into(), srtp_profiles: vec![] }).unwrap();
    let url = format!("{}/v1/calls/{call}/{path}", calls.trim_end_matches('/'));
    let answer = http::post_offer(&url, session, &peer.offer()).expect("201");
    peer.accept_answer(&answer.sdp, Instant::now()).expect("a usable answer");
    let mut udp = UdpPeer::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap(), peer);
    udp.connect(Duration::from_secs(15)).expect("ICE and DTLS complete");
    (udp, answer.location.expect("Location"), answer.participant_id.expect("X-Participant-Id"))
}

async fn live_in(s: &Svc, regions: &[&str], n: usize) -> bool {
    let url = format!("{}/v1/routers", s.calls);
    eventually(Duration::from_secs(10), || async {
        let r = s.get(url.clone(), Some(SECRET)).await;
        let ours = |x: &&serde_json::Value| x["live"] == json!(true) && regions.iter().any(|g| x["region"] == json!(g));
        r.body["routers"].as_array().map(|v| v.iter().filter(ours).count()) == Some(n)
    })
    .await
}

async fn participants(s: &Svc, call: &str, token: &str) -> Vec<u64> {
    let r = s.get(format!("{}/v1/calls/{call}", s.calls), Some(token)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["participants"].as_array().unwrap().iter().map(|p| p["participant_id"].as_u64().unwrap()).collect()
}

async fn holds(r: &LiveRouter, call: &str) -> Vec<u64> {
    r.holds(call).await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_legs_go_to_a_leaf_when_the_home_drains_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    drain_flow(cfg, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_legs_go_to_a_leaf_when_the_home_drains_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let name = "whip_and_whep_legs_go_to_a_leaf_when_the_home_drains_real_servers";
    let Some(cfg) = real_servers_config(dir.path(), name) else { return };
    drain_flow(cfg, dir).await;
}

async fn drain_flow(cfg: corecast_control::config::Config, dir: tempfile::TempDir) {
    let region = cfg.calls.region.clone();
    let s = start_with(cfg, dir).await;
    let routers = [
        live_router::start(&s.calls, &region, "w", Duration::from_millis(200)).await,
        live_router::start(&s.calls, &region, "w", Duration::from_millis(200)).await,
    ];
    assert!(live_in(&s, &[&region], 2).await, "both routers registered");
    let (_, owner) = s.user().await;
    let (_, guest) = s.user().await;
    let call = s.start_call(&owner).await;

    // The owner joins natively, on the home; the home drains.
    let j = s.join(&call, &owner).await;
    assert_eq!(j.status, 200, "{:?}", j.body);
    let addr = j.body["router"].as_str().unwrap().to_owned();
    let home = routers.iter().position(|r| r.address() == addr).expect("a router of the test");
    let leaf = 1 - home;
    let native_pid = j.body["participant_id"].as_u64().unwrap();
    let tok = token::decode_text(j.body["token"].as_str().unwrap()).unwrap();
    let key = JoinKey::from_text(j.body["join_key"].as_str().unwrap()).unwrap();
    let native = tokio::task::spawn_blocking(move || {
        Client::join(addr.parse().unwrap(), &tok, &key, native_pid, Quality::Hd).expect("admitted")
    })
    .await
    .unwrap();
    let rb = s.http.patch(format!("{}/v1/routers/{}", s.calls, routers[home].id)).json(&json!({"draining": true}));
    assert_eq!(send(rb.bearer_auth(SECRET)).await.status, 200);

    // A WHIP publisher and a WHEP viewer of the native client: both on the leaf.
    let (calls, c, g) = (s.calls.clone(), call.clone(), guest.clone());
    let t0 = Instant::now();
    let (publisher, pub_loc, pub_pid) =
        tokio::task::spawn_blocking(move || webrtc_leg(&calls, &c, "whip", &g, true)).await.unwrap();
    eprintln!("WHIP on the leaf (link set up, offer answered, ICE + DTLS): {:?}", t0.elapsed());
    let (calls, c, g) = (s.calls.clone(), call.clone(), guest.clone());
    let watch = format!("whep?participant={native_pid}");
    let (viewer, view_loc, view_pid) =
        tokio::task::spawn_blocking(move || webrtc_leg(&calls, &c, &watch, &g, false)).await.unwrap();
    let mut on_leaf = holds(&routers[leaf], &call).await;
    on_leaf.sort();
    let mut want = vec![pub_pid, view_pid];
    want.sort();
    assert_eq!(on_leaf, want, "both legs on the leaf");
    assert_eq!(holds(&routers[home], &call).await, vec![native_pid], "the home holds the native client only");
    assert_eq!(cascade_links(&routers[home].server), 1, "the leaf is linked to the home");
    assert_eq!(participants(&s, &call, &owner).await, vec![native_pid, pub_pid, view_pid]);
    // The composite stays on the home: the codec pool's mixer joins the call there.
    let offer =
        WebRtcPeer::new(PeerConfig { publish: None, cname: "t".into(), srtp_profiles: vec![] }).unwrap().offer();
    let rb = s.http.post(format!("{}/v1/calls/{call}/whep?view=composite", s.calls)).bearer_auth(&guest);
    let r = send(rb.header("content-type", "application/sdp").body(offer)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let composite_pid: u64 = r.headers["x-participant-id"].to_str().unwrap().parse().unwrap();
    let composite_loc = r.headers["location"].to_str().unwrap().to_owned();
    let mut on_home = holds(&routers[home], &call).await;
    on_home.sort();
    let mut want = vec![native_pid, composite_pid];
    want.sort();
    assert_eq!(on_home, want, "a composite viewer on the draining home");
    assert_eq!(s.delete(format!("{}{composite_loc}", s.calls), Some(&guest)).await.status, 200);

    // Media both ways across the link.
    let (from_native, to_native) =
        tokio::task::spawn_blocking(move || exchange(native, publisher, viewer)).await.unwrap();
    let (n_audio, n_video) = corecast_client::client::ssrcs_for(native_pid);
    assert_eq!(
        from_native.len(),
        usize::from(N),
        "the leaf's WHEP viewer gets every packet of the home's native client"
    );
    for ((ssrc, seq), (pt, payload)) in &from_native {
        assert_eq!(payload, &packet(*seq, (n_audio.0, n_video.0)).payload, "{ssrc:#x}/{seq}");
        assert_eq!(pt.0, if *ssrc == n_audio.0 { OPUS_PT } else { AV1_PT });
    }
    assert_eq!(
        to_native.len(),
        usize::from(N),
        "the home's native client gets every packet of the leaf's WHIP publisher"
    );
    for ((ssrc, seq), payload) in &to_native {
        assert_eq!(payload, &packet(*seq, (AUDIO, VIDEO)).payload, "{ssrc:#x}/{seq}");
    }

    // PATCH reaches the leaf (the home knows no such session: it would answer 404): new ICE
    // credentials are an ICE restart, answered with the leaf's own.
    let rb = s.http.patch(format!("{}{pub_loc}", s.calls)).bearer_auth(&guest).header("if-match", "*");
    let r = send(rb.header("content-type", "application/trickle-ice-sdpfrag").body(FRAGMENT)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body.as_str().is_some_and(|f| f.contains("a=ice-ufrag:")), "{:?}", r.body);
    // The leaf drops the viewer itself (here told through its admin API): its event reaches
    // calls, which takes it from the leaf that holds the leg and drops the participant.
    let url = format!("{}/v1/calls/{call}/participants/{view_pid}", routers[leaf].admin);
    assert_eq!(send(s.http.delete(url).bearer_auth(SECRET)).await.status, 204);
    let dropped = eventually(Duration::from_secs(10), || async {
        participants(&s, &call, &owner).await == vec![native_pid, pub_pid]
    })
    .await;
    assert!(dropped, "the leaf's event about its leg reached the store");
    assert_eq!(s.delete(format!("{}{view_loc}", s.calls), Some(&guest)).await.status, 404, "already gone");
    // DELETE: the store and the leaf drop the publisher; the empty leaf closes its link.
    assert_eq!(s.delete(format!("{}{pub_loc}", s.calls), Some(&guest)).await.status, 200);
    assert_eq!(participants(&s, &call, &owner).await, vec![native_pid], "the store dropped both legs");
    let (hs, ls) = (routers[home].server.clone(), routers[leaf].server.clone());
    let unlinked = eventually(Duration::from_secs(10), || {
        let (hs, ls) = (hs.clone(), ls.clone());
        let c = call.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let leaf_empty = ls.snapshot().iter().all(|x| x.call.to_string() != c || x.participants.is_empty());
                leaf_empty && cascade_links(&ls) == 0 && cascade_links(&hs) == 0
            })
            .await
            .unwrap()
        }
    })
    .await;
    assert!(unlinked, "the leaf dropped both legs and its link");
    assert_eq!(holds(&routers[home], &call).await, vec![native_pid]);
    for r in routers {
        r.server.shutdown();
    }
    s.shutdown().await;
}

/// The native client and the publisher each send [`N`] packets; what the viewer got of the
/// native client's and the native client of the publisher's, by (SSRC, sequence number).
#[allow(clippy::type_complexity)]
fn exchange(
    native: Client,
    mut publisher: UdpPeer,
    mut viewer: UdpPeer,
) -> (BTreeMap<(u32, u16), (Pt, Vec<u8>)>, BTreeMap<(u32, u16), Vec<u8>>) {
    let (n_audio, n_video) = native.ssrcs();
    native.socket().set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    // The legs' announcements cross the link before any media.
    std::thread::sleep(Duration::from_millis(300));
    std::thread::scope(|s| {
        let rx = s.spawn(|| viewer.collect_rtp(usize::from(N), Instant::now() + Duration::from_secs(20)).unwrap());
        let native_rx =
            s.spawn(|| native.collect_rtp(&[AUDIO, VIDEO], usize::from(N), Instant::now() + Duration::from_secs(20)));
        for i in 0..N {
            native.send_packet(&packet(i, (n_audio.0, n_video.0)).to_vec().unwrap()).unwrap();
            publisher.send_rtp(&packet(i, (AUDIO, VIDEO)).to_vec().unwrap()).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        (rx.join().unwrap(), native_rx.join().unwrap())
    })
}

/// By region, and failover of a leaf: a WHIP publisher from region B's address range is placed
/// on B's router (linked to the home in region A); B's router falls silent: the sweeper drops
/// the leg from the store and the home closes its link to B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_leg_from_another_region_goes_to_its_router_and_leaves_the_store_when_it_dies_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    region_flow(cfg, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_leg_from_another_region_goes_to_its_router_and_leaves_the_store_when_it_dies_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let name = "a_whip_leg_from_another_region_goes_to_its_router_and_leaves_the_store_when_it_dies_real_servers";
    let Some(cfg) = real_servers_config(dir.path(), name) else { return };
    region_flow(cfg, dir).await;
}

async fn region_flow(mut cfg: corecast_control::config::Config, dir: tempfile::TempDir) {
    let (a, b) = (format!("a-{}", uniq()), format!("b-{}", uniq()));
    let table = dir.path().join("regions.conf");
    std::fs::write(&table, format!("10.1.0.0/16 {a};\n10.2.0.0/16 {b};\n")).unwrap();
    cfg.calls.region = a.clone();
    cfg.calls.regions_file = Some(table);
    cfg.calls.trust_forwarded_for = true;
    cfg.router.dead_after_ms = Some(1500);
    let s = start_with(cfg, dir).await;
    let beat = Duration::from_millis(200);
    let routers =
        [live_router::start(&s.calls, &a, "ra", beat).await, live_router::start(&s.calls, &b, "rb", beat).await];
    assert!(live_in(&s, &[&a, &b], 2).await, "both routers registered");
    let (_, owner) = s.user().await;
    let (_, far) = s.user().await;
    let call = s.start_call(&owner).await;
    assert_eq!(s.join(&call, &owner).await.body["router"], json!(routers[0].address()), "the home is region A's");

    let rb = s
        .http
        .post(format!("{}/v1/calls/{call}/whip", s.calls))
        .bearer_auth(&far)
        .header("x-forwarded-for", "10.2.9.9")
        .header("content-type", "application/sdp");
    let offer = WebRtcPeer::new(PeerConfig { publish: Some((AUDIO, VIDEO)), cname: "t".into(), srtp_profiles: vec![] })
        .unwrap()
        .offer();
    let r = send(rb.body(offer)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let pid: u64 = r.headers["x-participant-id"].to_str().unwrap().parse().unwrap();
    assert_eq!(holds(&routers[1], &call).await, vec![pid], "region B's leg on region B's router");
    assert_eq!(cascade_links(&routers[0].server), 1, "linked to the home");
    assert_eq!(participants(&s, &call, &owner).await.len(), 2);

    // B's router falls silent (its link to calls stops; its media socket stays).
    routers[1].link.abort();
    let home = routers[0].server.clone();
    let cleaned = eventually(Duration::from_secs(15), || {
        let (s, call, owner, home) = (&s, call.clone(), owner.clone(), home.clone());
        async move {
            let ps = participants(s, &call, &owner).await;
            let links = tokio::task::spawn_blocking(move || cascade_links(&home)).await.unwrap();
            !ps.contains(&pid) && links == 0
        }
    })
    .await;
    assert!(cleaned, "the dead leaf's leg left the store and the home dropped its link");
    assert_eq!(participants(&s, &call, &owner).await.len(), 1, "the native participant stays");
    for r in routers {
        r.server.shutdown();
    }
    s.shutdown().await;
}

/// The home dies with a WHIP leg on a leaf: the call moves to a third router, and the leg,
/// linked to the dead home only, leaves the store and its leaf (whose link then closes); the
/// page would post its offer again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_home_dies_its_leaves_legs_are_dropped_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    home_dies_flow(cfg, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_home_dies_its_leaves_legs_are_dropped_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let name = "when_the_home_dies_its_leaves_legs_are_dropped_real_servers";
    let Some(cfg) = real_servers_config(dir.path(), name) else { return };
    home_dies_flow(cfg, dir).await;
}

async fn home_dies_flow(mut cfg: corecast_control::config::Config, dir: tempfile::TempDir) {
    cfg.router.dead_after_ms = Some(1500);
    let region = cfg.calls.region.clone();
    let s = start_with(cfg, dir).await;
    let beat = Duration::from_millis(200);
    let mut routers = Vec::new();
    for _ in 0..3 {
        routers.push(live_router::start(&s.calls, &region, "h", beat).await);
    }
    assert!(live_in(&s, &[&region], 3).await, "three routers registered");
    let (_, owner) = s.user().await;
    let (_, guest) = s.user().await;
    let call = s.start_call(&owner).await;
    let j = s.join(&call, &owner).await;
    let home = routers.iter().position(|r| json!(r.address()) == j.body["router"]).expect("a router of the test");
    let patch = |id: String, draining: bool| {
        let rb = s.http.patch(format!("{}/v1/routers/{id}", s.calls)).json(&json!({ "draining": draining }));
        async move { assert_eq!(send(rb.bearer_auth(SECRET)).await.status, 200) }
    };
    patch(routers[home].id.clone(), true).await;
    let rb = s.http.post(format!("{}/v1/calls/{call}/whip", s.calls)).bearer_auth(&guest);
    let offer = WebRtcPeer::new(PeerConfig { publish: Some((AUDIO, VIDEO)), cname: "t".into(), srtp_profiles: vec![] })
        .unwrap()
        .offer();
    let r = send(rb.header("content-type", "application/sdp").body(offer)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let pid: u64 = r.headers["x-participant-id"].to_str().unwrap().parse().unwrap();
    let mut leaf = None;
    for (i, r) in routers.iter().enumerate() {
        if holds(r, &call).await.contains(&pid) {
            leaf = Some(i);
        }
    }
    let leaf = leaf.expect("the leg on a router");
    assert_ne!(leaf, home);
    // The leaf drains (the call cannot move onto it); the home falls silent.
    patch(routers[leaf].id.clone(), true).await;
    routers[home].link.abort();
    let third = 3 - home - leaf;
    let leaf_srv = routers[leaf].server.clone();
    let moved = eventually(Duration::from_secs(15), || {
        let (s, call, owner, leaf_srv) = (&s, call.clone(), owner.clone(), leaf_srv.clone());
        let third_addr = json!(routers[third].address());
        async move {
            let r = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await;
            let ps = participants(s, &call, &owner).await;
            let on_third = r.body["router"] == third_addr;
            let leaf_empty = tokio::task::spawn_blocking(move || {
                leaf_srv.stats().iter().map(|w| w.participants).sum::<usize>() == 0 && cascade_links(&leaf_srv) == 0
            })
            .await
            .unwrap();
            on_third && !ps.contains(&pid) && leaf_empty
        }
    })
    .await;
    assert!(
        moved,
        "the call moved to the third router; the leaf's leg left the store and the leaf, which dropped its link"
    );
    for r in routers {
        r.server.shutdown();
    }
    s.shutdown().await;
}
