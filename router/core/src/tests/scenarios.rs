//! Calls over the simulated network (`net`): loss, bursts, a bandwidth cap,
//! reordering and duplication on real links, and the router's answers to the
//! reports the receivers compute from what reached them.

use std::time::{Duration, Instant};

use corecast_proto::session::Quality;
use corecast_proto::token::Role;

use super::net::{Burst, Link, LinkConfig, Sim, Stream};
use crate::{Event, RouterConfig};

fn clean() -> LinkConfig {
    LinkConfig::default()
}

fn lossy(loss: f64) -> LinkConfig {
    LinkConfig { loss, ..Default::default() }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Publisher `pid`: audio (SSRC pid*100, 50 packets/s) and video (pid*100+1,
/// 100 packets/s of 1000 bytes, 800 kbit/s).
fn av(pid: u64, level: u8) -> Vec<Stream> {
    let base = pid as u32 * 100;
    vec![Stream::audio(base, level), Stream::video(base + 1, 100, 1000)]
}

/// The mixer's composite: 30 packets/s of 1000 bytes.
fn composite() -> Vec<Stream> {
    vec![Stream::video(900, 30, 1000)]
}

#[test]
fn the_link_model_loses_caps_delays_reorders_and_duplicates_as_configured() {
    let t0 = Instant::now();
    let run = |cfg: LinkConfig, n: u64, every: Duration| {
        let mut l = Link::new(cfg, 7);
        let mut delivered = Vec::new();
        for i in 0..n {
            let now = t0 + every * i as u32;
            l.send(now, bytes::Bytes::from(vec![i as u8; 1000]));
            while let Some(b) = l.pop_due(now) {
                delivered.push((now, b));
            }
        }
        while let Some(b) = l.pop_due(t0 + secs(3600)) {
            delivered.push((t0 + secs(3600), b));
        }
        (l.stats, delivered)
    };
    let ms = Duration::from_millis(1);
    let (s, _) = run(lossy(0.05), 100_000, ms);
    assert!((4_500..=5_500).contains(&s.lost), "random loss 5%: {s:?}");
    let (s, _) = run(LinkConfig { burst: Some(Burst { enter: 0.05, leave: 0.25 }), ..clean() }, 100_000, ms);
    assert!((14_000..=19_500).contains(&s.lost), "bursts: long-run 1/6: {s:?}");
    // 1000-byte packets every ms = 8 Mbit/s offered into a 4 Mbit/s cap: half is dropped.
    let (s, _) = run(LinkConfig { rate_bps: Some(4_000_000), ..clean() }, 10_000, ms);
    assert!((4_800..=5_200).contains(&s.queue_drops), "{s:?}");
    let (s, d) = run(LinkConfig { duplicate: 0.1, reorder: 0.1, jitter: ms * 5, ..clean() }, 10_000, ms);
    assert!((900..=1_100).contains(&s.duplicated), "{s:?}");
    assert_eq!(d.len() as u64, 10_000 + s.duplicated);
    let out_of_order = d.windows(2).filter(|w| w[1].1[0] < w[0].1[0] && w[0].1[0] != 255).count();
    assert!(out_of_order > 500, "reordered: {out_of_order}");
}

#[test]
fn a_60_second_call_with_5_percent_loss_on_one_receivers_link_runs_fast_and_stays_hd() {
    let wall = Instant::now();
    let mut sim = Sim::new(RouterConfig::default(), 1);
    sim.add(1, Role::Publisher, av(1, 30), clean(), clean());
    sim.add(2, Role::Publisher, av(2, 40), clean(), clean());
    sim.add(3, Role::Publisher, av(3, 50), clean(), clean());
    let r = sim.add(4, Role::Subscriber, vec![], clean(), lossy(0.05));
    sim.run_for(secs(60));
    let elapsed = wall.elapsed();
    assert!(elapsed < secs(2), "60 simulated seconds took {elapsed:?}");

    let receiver = &sim.clients[r];
    assert!(receiver.joined);
    // It got about 95% of each stream, and reported about 5% (13/256).
    for pid in 1..=3u32 {
        for ssrc in [pid * 100, pid * 100 + 1] {
            let got = receiver.rx[&ssrc].packets as f64;
            let sent = sim.clients[pid as usize - 1].streams.iter().find(|s| s.ssrc.0 == ssrc).unwrap().sent as f64;
            assert!((0.93..=0.97).contains(&(got / sent)), "{ssrc}: {got} of {sent}");
        }
    }
    assert!(receiver.reports.len() >= 58);
    let fractions: Vec<f64> =
        receiver.reports.iter().skip(1).flat_map(|r| r.1.iter().map(|&f| f as f64 / 256.0)).collect();
    let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
    assert!((0.04..=0.06).contains(&mean), "mean reported loss {mean}");
    // Below the SD threshold (≈10%): no switch; the other receivers lose nothing.
    assert!(sim.switches(4, Quality::Sd).is_empty());
    for c in &sim.clients[..3] {
        assert!(c.rx.values().all(|rx| rx.lost() == 0), "publisher {:?} lost packets", c.pid);
    }
    assert_eq!(sim.router.stats().dropped(), 0);
}

/// Three publishers, a mixer, and publisher 3 whose downlink is `down`.
fn sd_sim(seed: u64, down: LinkConfig) -> Sim {
    let mut sim = Sim::new(RouterConfig::default(), seed);
    sim.add(1, Role::Publisher, av(1, 30), clean(), clean());
    sim.add(2, Role::Publisher, av(2, 40), clean(), clean());
    sim.add(3, Role::Publisher, av(3, 50), clean(), down);
    sim.add(9, Role::Mixer, composite(), clean(), clean());
    sim
}

#[test]
fn loss_on_a_receivers_link_moves_it_to_sd_and_back_without_a_sequence_gap() {
    let mut sim = sd_sim(2, lossy(0.2));
    sim.run_for(secs(20));
    let to_sd = sim.switches(3, Quality::Sd);
    assert_eq!(to_sd.len(), 1, "one switch to SD while loss lasts");
    let start = sim.events[0].0;
    assert!(to_sd[0] - start <= secs(4), "SD after two bad reports: {:?}", to_sd[0] - start);
    assert!(sim.events.iter().any(|(_, e)| matches!(e, Event::MixerDemand { needed: true, .. })));
    // While on SD: the composite and everyone's audio, no raw video.
    let c = &sim.clients[2];
    let raw_after_switch =
        |ssrc: u32| c.rx[&ssrc].arrivals.iter().filter(|a| a.0 > to_sd[0] + Duration::from_millis(100)).count();
    assert_eq!(raw_after_switch(101), 0);
    assert_eq!(raw_after_switch(201), 0);
    assert!(raw_after_switch(900) > 300, "the composite");
    assert!(raw_after_switch(100) > 500, "audio");
    let lost_before = c.rx[&101].lost();

    // The loss stops: back to HD after `hd_recovery` (10 s) of good reports.
    sim.clients[2].down.cfg.loss = 0.0;
    let clean_from = sim.now;
    sim.run_for(secs(20));
    let to_hd = sim.switches(3, Quality::Hd);
    assert_eq!(to_hd.len(), 1);
    let waited = to_hd[0] - clean_from;
    assert!(waited >= secs(10) && waited <= secs(13), "HD after {waited:?}");
    assert_eq!(sim.switches(3, Quality::Sd).len(), 1, "no flapping");
    // Raw video resumed with the next number the receiver expected: the
    // pause added no loss to its accounting, and the publisher got a PLI.
    let c = &sim.clients[2];
    let resumed = c.rx[&101].arrivals.iter().filter(|a| a.0 > to_hd[0]).count();
    assert!(resumed > 600, "raw video again: {resumed}");
    // Packets the link lost just before the pause show only once the stream
    // resumes (nothing higher had arrived): those are the link's, not a gap.
    let last_before = c.rx[&101].arrivals.iter().filter(|a| a.0 < to_hd[0]).map(|a| a.1).next_back().unwrap();
    let trailing = c.down.lost_seqs.iter().filter(|l| l.0 == 101 && l.1.wrapping_sub(last_before) as i16 > 0).count();
    assert_eq!(c.rx[&101].lost(), lost_before + trailing as i64, "no sequence gap across the pause");
    assert!(sim.clients[0].plis.iter().any(|&t| t >= to_hd[0]), "keyframe request on resume");
    assert!(c.reports.iter().rev().take(5).all(|r| r.1.iter().all(|&f| f == 0)));
}

#[test]
fn loss_bursts_move_a_receiver_to_sd() {
    // Bursts of 4 packets on average, one packet in six lost in the long run.
    let mut sim = sd_sim(3, LinkConfig { burst: Some(Burst { enter: 0.05, leave: 0.25 }), ..clean() });
    sim.run_for(secs(10));
    assert_eq!(sim.switches(3, Quality::Sd).len(), 1);
    assert!(sim.clients[2].down.stats.lost > 200);
}

#[test]
fn a_bandwidth_cap_below_hd_moves_to_sd_and_lifting_it_brings_hd_back() {
    // HD needs 2 x 840 kbit/s of the other publishers (plus the mixer's
    // nothing: its composite goes to SD receivers only); the link carries 1 Mbit/s.
    let mut sim = sd_sim(4, LinkConfig { rate_bps: Some(1_000_000), ..clean() });
    sim.run_for(secs(8));
    let to_sd = sim.switches(3, Quality::Sd);
    assert_eq!(to_sd.len(), 1, "the queue overflows: loss, then SD");
    assert!(sim.clients[2].down.stats.queue_drops > 100);
    // On SD the link carries the composite and audio (≈ 360 kbit/s) without loss.
    let drops = sim.clients[2].down.stats.queue_drops;
    sim.run_for(secs(5));
    assert!(sim.clients[2].down.stats.queue_drops - drops < 10, "SD fits the link");
    sim.clients[2].down.cfg.rate_bps = Some(10_000_000);
    sim.run_for(secs(15));
    assert_eq!(sim.switches(3, Quality::Hd).len(), 1);
    sim.run_for(secs(10));
    assert_eq!(sim.switches(3, Quality::Sd).len(), 1, "stays HD on the wide link");
}

#[test]
fn reordered_and_duplicated_packets_all_arrive_and_forwarding_keeps_their_order() {
    let wobbly = LinkConfig { jitter: Duration::from_millis(15), reorder: 0.05, duplicate: 0.05, ..clean() };
    let mut sim = Sim::new(super::retransmitting(), 5);
    sim.add(1, Role::Publisher, av(1, 30), wobbly, clean());
    let r = sim.add(2, Role::Subscriber, vec![], clean(), clean());
    sim.run_for(secs(10));
    let sent = sim.clients[0].streams[1].sent;
    let got = &sim.clients[r].rx[&101];
    let mut unique: Vec<u16> = got.arrivals.iter().map(|a| a.1).collect();
    unique.sort_unstable();
    unique.dedup();
    // Everything the publisher sent until the last 100 ms reached the receiver.
    assert!(unique.len() as u64 >= sent - 10, "{} of {sent}", unique.len());
    // Duplicates of the video stop at the router (its retransmission buffer
    // has the number already); the audio's are forwarded as received.
    assert_eq!(got.packets, unique.len() as u64, "no video packet twice");
    assert!(sim.router.stats().duplicates_dropped > 0);
    let audio = &sim.clients[r].rx[&100];
    assert!(audio.packets > audio.arrivals.iter().map(|a| a.1).collect::<std::collections::BTreeSet<_>>().len() as u64);
    assert!(got.late > 20, "reordering is forwarded as received: {}", got.late);
    assert_eq!(sim.router.stats().dropped(), 0);
}

/// 20% loss in bursts (4 packets on average) on the uplink of a publisher
/// that does not retransmit: the router NACKs each loss, gives up after its
/// tries, and asks a keyframe for at once, so the receiver decodes again
/// one round trip and a frame after that request instead of at the
/// publisher's next periodic keyframe (it sends none of its own here).
#[test]
fn burst_loss_the_router_cannot_repair_brings_a_keyframe_within_a_round_trip_and_a_frame() {
    let mut sim = Sim::new(RouterConfig::default(), 11);
    let ms = Duration::from_millis;
    let link = LinkConfig { delay: ms(20), ..clean() };
    let bursty = LinkConfig { burst: Some(Burst { enter: 0.05, leave: 0.25 }), ..link.clone() };
    // 30 frames/s, one packet each.
    let p = sim.add(1, Role::Publisher, vec![Stream::vp8_video(101, 30, 1000)], bursty, link.clone());
    sim.clients[p].resends = false;
    let r = sim.add(2, Role::Publisher, vec![Stream::audio(200, 90)], link.clone(), link);
    sim.run_for(secs(30));
    let stats = *sim.router.stats();
    let rx = &sim.clients[r].rx[&101];
    // Every number the receiver never got, and when the next one it did get arrived.
    let mut got: Vec<(u16, Instant)> = rx.arrivals.iter().map(|&(t, s)| (s, t)).collect();
    got.sort_by_key(|g| g.0);
    got.dedup_by_key(|g| g.0);
    let (first, last) = (got[0].0, got[got.len() - 1].0);
    let mut freezes = Vec::new();
    for seq in first..last {
        if got.binary_search_by_key(&seq, |g| g.0).is_ok() {
            continue;
        }
        let after = got.iter().find(|g| g.0 > seq).map(|g| g.1).unwrap();
        if after + secs(1) > sim.now {
            continue; // too near the end to tell
        }
        // Decodable again at the first keyframe numbered after the loss.
        let key = sim.clients[r].keyframes_in.iter().find(|k| k.1 == 101 && k.2 > seq).map(|k| k.0);
        let key = key.unwrap_or_else(|| panic!("no keyframe after the loss of {seq}"));
        freezes.push(key.saturating_duration_since(after));
    }
    let plis = &sim.clients[p].plis;
    assert!(freezes.len() >= 20, "unrepaired losses happened: {}", freezes.len());
    assert!(plis.len() >= 10 && stats.keyframes_for_loss >= 10, "keyframe requests reached the publisher: {plis:?}");
    // From each request leaving the router (20 ms before it reached the
    // publisher) to the keyframe at the receiver: the publisher's round trip
    // (40 ms), its next frame (33 ms) and the receiver's 20 ms, unless the
    // keyframe itself was lost on the way (20%: then the next request's).
    let bound = ms(40) + ms(34) + ms(20) + ms(2);
    let latencies: Vec<Duration> = plis
        .iter()
        .filter_map(|&t| {
            let key = sim.clients[r].keyframes_in.iter().find(|k| k.1 == 101 && k.0 >= t)?;
            Some(key.0 - (t - ms(20)))
        })
        .collect();
    let prompt = latencies.iter().filter(|l| **l <= bound).count();
    assert!(prompt * 10 >= latencies.len() * 7, "{prompt} of {} keyframes within {bound:?}", latencies.len());
    // Every freeze ends: the router's tries (3 NACKs 100 ms apart: the
    // publisher's RTT is unknown, it sends no reports), then a round trip and
    // a frame; twice that when the keyframe is lost too.
    let worst = freezes.iter().max().unwrap();
    assert!(*worst <= ms(1500), "the longest freeze: {worst:?} ({} freezes)", freezes.len());
}
