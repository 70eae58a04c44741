//! Retransmission on synthetic time: receivers that NACK their gaps are
//! answered from the router's retransmission buffer, gaps on a publisher's
//! uplink are NACKed by the router once for every receiver, and duplicates
//! stop at the router.

use std::collections::BTreeMap;

use super::net::{LinkConfig, Sim, Stream};
use super::*;

const VIDEO: u32 = 101;

fn clean() -> LinkConfig {
    LinkConfig::default()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A publisher (pid 1) of 100 packets/s of video for 10 s, numbered across
/// the wrap (65 000 on), over `up`; `receivers` subscribers (pids 2, ...)
/// that NACK their gaps, over `down` (each seeded apart).
fn call(up: LinkConfig, down: LinkConfig, receivers: usize, nacks: bool, seed: u64) -> Sim {
    call_with(retransmitting(), up, down, receivers, nacks, seed)
}

/// [`call`] with the router's `config`.
fn call_with(config: RouterConfig, up: LinkConfig, down: LinkConfig, receivers: usize, nacks: bool, seed: u64) -> Sim {
    let mut sim = Sim::new(config, seed);
    let mut video = Stream::video(VIDEO, 100, 1000).starting_at(65_000);
    video.until = Some(sim.now + secs(10));
    sim.add(1, Role::Publisher, vec![video], up, clean());
    for k in 0..receivers {
        let r = sim.add(2 + k as u64, Role::Subscriber, vec![], clean(), down.clone());
        sim.clients[r].nacks = nacks;
    }
    // The media, then time for the last repairs.
    sim.run_for(secs(11));
    sim
}

/// Distinct video packets a client got, and how many arrived twice.
fn unique_and_twice(sim: &Sim, c: usize) -> (usize, usize) {
    let rx = &sim.clients[c].rx[&VIDEO];
    let mut seqs: Vec<u16> = rx.arrivals.iter().map(|a| a.1).collect();
    seqs.sort_unstable();
    seqs.dedup();
    (seqs.len(), rx.arrivals.len() - seqs.len())
}

#[test]
fn a_lossy_downlink_is_repaired_from_the_buffer_without_the_publisher() {
    let sim = call(clean(), LinkConfig { loss: 0.05, ..clean() }, 1, true, 21);
    let sent = sim.clients[0].streams[0].sent as usize;
    assert!(sent >= 990, "{sent}");
    let lost = sim.clients[1].down.stats.lost_rtp as usize;
    let (unique, twice) = unique_and_twice(&sim, 1);
    let s = *sim.router.stats();
    eprintln!("downlink: sent {sent}, lost on the link {lost}, got {unique} (twice {twice}), {s:?}");
    assert!(lost >= 30, "the link lost {lost}");
    assert!(unique * 1000 >= sent * 995, "got {unique} of {sent}");
    // On this seed: every one of the 58 losses repaired, once.
    assert_eq!((sent, lost, unique, twice), (998, 58, 998, 0));
    assert_eq!((s.nack_answered, s.retransmitted), (58, 58));
    assert!(sim.clients[0].nacked.is_empty(), "the publisher was asked for nothing");
    assert_eq!(s.nacks, 0);
    assert_eq!(s.nacks_upstream, 0);
    assert_eq!(s.nack_missed, 0);
    assert!(s.nack_answered >= 30 && s.retransmitted >= 30);
    assert_eq!(s.retransmit_refused, 0);
}

#[test]
fn with_retransmission_off_receivers_nacks_go_to_the_publisher_as_before() {
    assert!(RouterConfig::default().retransmission, "on by default");
    let config = RouterConfig { retransmission: false, ..RouterConfig::default() };
    let sim = call_with(config, clean(), LinkConfig { loss: 0.05, ..clean() }, 1, true, 21);
    let s = *sim.router.stats();
    let lost = sim.clients[1].down.stats.lost_rtp;
    assert!(lost >= 30, "the link lost {lost}");
    assert_eq!((s.nack_answered, s.retransmitted, s.nacks_upstream, s.duplicates_dropped), (0, 0, 0, 0));
    assert!(s.nacks > 0, "the receiver's NACKs were passed on");
    assert!(!sim.clients[0].nacked.is_empty(), "the publisher was asked");
}

#[test]
fn a_lossy_uplink_is_nacked_once_for_every_receiver() {
    let sim = call(LinkConfig { loss: 0.05, ..clean() }, clean(), 3, true, 22);
    let sent = sim.clients[0].streams[0].sent as usize;
    let lost: Vec<u16> = sim.clients[0].up.lost_seqs.iter().filter(|l| l.0 == VIDEO).map(|l| l.1).collect();
    let s = *sim.router.stats();
    for r in 1..=3 {
        let (unique, twice) = unique_and_twice(&sim, r);
        eprintln!("receiver {r}: got {unique} of {sent} (twice {twice})");
        assert!(unique * 1000 >= sent * 995, "receiver {r} got {unique} of {sent}");
        assert_eq!(twice, 0);
    }
    eprintln!("uplink lost {} video packets ({:?}), {s:?}", lost.len(), sim.clients[0].up.stats);
    assert!(lost.len() >= 30);
    // One NACK per loss: a number is asked for again only when its resend was lost too.
    let count = |v: &mut dyn Iterator<Item = u16>| {
        let mut m = BTreeMap::new();
        for q in v {
            *m.entry(q).or_insert(0u32) += 1;
        }
        m
    };
    let asked = count(&mut sim.clients[0].nacked.iter().filter(|n| n.0 == VIDEO).map(|n| n.1));
    let losses = count(&mut lost.iter().copied());
    assert_eq!(asked, losses);
    assert!(losses.values().any(|&n| n > 1), "a resend was lost too, and asked for again");
    eprintln!("distinct numbers lost {}", losses.len());
    assert_eq!(s.nacks, 0, "no receiver's NACK went on to the publisher");
    // On this seed: 60 losses (2 of them resends) in 57 NACKs (numbers due together share one).
    assert_eq!(losses.len(), 58);
    assert_eq!((lost.len(), sim.clients[0].nacked.len(), s.nacks_upstream), (60, 60, 57));
    // Receivers' NACKs: answered by the router's resends on their way, or held back while it asks itself.
    assert_eq!((s.retransmitted, s.nack_answered, s.nack_missed), (0, 168, 6));
}

#[test]
fn reordered_and_duplicated_packets_reach_receivers_once() {
    let wobbly = LinkConfig { reorder: 0.05, duplicate: 0.05, jitter: Duration::from_millis(5), ..clean() };
    let sim = call(wobbly, clean(), 2, false, 23);
    let sent = sim.clients[0].streams[0].sent as usize;
    let s = *sim.router.stats();
    let up = sim.clients[0].up.stats;
    for r in 1..=2 {
        let (unique, twice) = unique_and_twice(&sim, r);
        assert_eq!((unique, twice), (sent, 0), "receiver {r}");
        assert!(sim.clients[r].rx[&VIDEO].late > 10, "reordering still reaches receivers");
    }
    eprintln!("{up:?} {s:?}");
    assert!(up.duplicated >= 30);
    // Every link duplicate, and every resend of a packet that was only late
    // (the router NACKs a gap after 15 ms; the link holds a reordered packet 30 ms).
    assert!(s.duplicates_dropped >= up.duplicated, "{} < {}", s.duplicates_dropped, up.duplicated);
    assert_eq!((up.duplicated, s.nacks_upstream, s.duplicates_dropped), (48, 50, 98));
}

/// A receiver that NACKs more than its budget gets the first 40 (the
/// burst), the rest are refused and counted; the same numbers again
/// within 100 ms are not resent; two seconds later they are too old to
/// keep: the publisher is asked for them, at the same budget (the burst
/// again), which then refills.
#[test]
fn the_budget_caps_one_receivers_retransmissions() {
    let mut h = H::with(retransmitting());
    h.join(addr(0), super::call(1), 1, VIDEO);
    let tok = h.token(super::call(1), 2, Role::Subscriber);
    assert!(matches!(h.join_with(addr(1), tok, vec![]), SessionMessage::JoinAck { .. }));
    for seq in 0..100u16 {
        h.input(addr(0), rtp(VIDEO, seq));
    }
    h.take();
    let lost: Vec<SeqNo> = (20..80).map(SeqNo).collect();
    let nack = rtcp::write_compound(&[RtcpPacket::Nack(rtcp::Nack::from_lost(Ssrc(7), Ssrc(VIDEO), &lost))]).unwrap();
    h.input(addr(1), nack.clone());
    let t = h.take();
    let seqs: Vec<u16> = t.iter().map(|t| RtpHeader::parse(&t.contents).unwrap().seq.0).collect();
    assert_eq!(seqs, (20..60).collect::<Vec<_>>(), "the burst, in order; nothing to the publisher");
    let s = *h.r.stats();
    assert_eq!((s.nack_answered, s.retransmitted, s.retransmit_refused, s.nacks), (60, 40, 20, 0));
    h.now += Duration::from_millis(50);
    h.input(addr(1), nack.clone());
    assert_eq!(h.take().len(), 1, "resent ones are not resent within 100 ms; one token refilled");
    // Two seconds later those packets are too old to keep: the NACK goes to the publisher.
    h.now += Duration::from_secs(2);
    h.input(addr(1), nack);
    let t = h.take();
    assert_eq!((t.len(), t[0].destination, h.r.stats().nack_missed, h.r.stats().nacks), (1, addr(0), 60, 1));
    let asked = match &rtcp::parse_compound(&t[0].contents).unwrap()[..] {
        [RtcpPacket::Nack(n)] => n.lost().map(|s| s.0).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(asked, (20..60).collect::<Vec<_>>(), "the burst; the rest is throttled");
    assert_eq!(h.r.stats().nack_throttled, 20);
    // Newer packets, two seconds on: the budget has refilled to the burst.
    h.now += Duration::from_secs(2);
    for seq in 100..200u16 {
        h.input(addr(0), rtp(VIDEO, seq));
    }
    h.take();
    let lost: Vec<SeqNo> = (120..180).map(SeqNo).collect();
    h.input(
        addr(1),
        rtcp::write_compound(&[RtcpPacket::Nack(rtcp::Nack::from_lost(Ssrc(7), Ssrc(VIDEO), &lost))]).unwrap(),
    );
    assert_eq!(h.take().len(), 40, "refilled to the burst");
}
