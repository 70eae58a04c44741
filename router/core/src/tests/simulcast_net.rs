//! Simulcast over the simulated network (`net`): a receiver whose link is
//! capped below the top layer moves down, without losing what it gets, and
//! back up once the cap lifts; what it gets stays one continuous stream.
//!
//! The receiver's estimate here is its REMB, set to what its link carries
//! (as a receiver-side estimator would report it): this tests the router's
//! side, choosing and switching layers; estimating from transport-wide
//! feedback is `bwe`'s to test.

use std::time::{Duration, Instant};

use corecast_proto::token::Role;
use corecast_proto::Ssrc;

use super::net::{LinkConfig, Sim, Stream};
use crate::RouterConfig;

/// Layers of 100, 300 and 1 000 kbit/s (10, 30 and 100 packets/s of 1 250
/// bytes) under group 101, and audio.
fn layers() -> Vec<Stream> {
    vec![
        Stream::audio(100, 30),
        Stream::vp8_video(101, 10, 1250),
        Stream::vp8_video(102, 30, 1250),
        Stream::vp8_video(103, 100, 1250),
    ]
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Packets of `ssrc` that reached client `c` in `[from, from + 1 s)`.
fn per_second(sim: &Sim, c: usize, ssrc: u32, from: Instant) -> usize {
    sim.clients[c]
        .rx
        .get(&ssrc)
        .map_or(0, |r| r.arrivals.iter().filter(|(t, _)| *t >= from && *t < from + ms(1000)).count())
}

#[test]
fn a_capped_receiver_moves_down_a_layer_within_2_s_and_back_up_within_5_s_of_the_lift() {
    let mut sim = Sim::new(RouterConfig::default(), 3);
    let link = LinkConfig { delay: ms(20), ..Default::default() };
    let p = sim.add(1, Role::Publisher, layers(), link.clone(), link.clone());
    sim.clients[p].simulcast = [101, 102, 103].map(Ssrc).to_vec();
    // The receiver sends audio of its own (so it acts every 20 ms, as a client does).
    let r = sim.add(2, Role::Publisher, vec![Stream::audio(200, 90)], link.clone(), link);
    sim.clients[r].nacks = true;
    let t0 = sim.now;
    sim.run_for(ms(4000));
    assert!((95..=105).contains(&per_second(&sim, r, 101, t0 + ms(3000))), "the top layer (100/s) at first");

    // (It started on the first layer heard and moved up as the others came: their first packets are keyframes.)
    let started = sim.router.stats().layer_switches;
    // The receiver's link drops to 500 kbit/s, and its estimate with it.
    let cap = sim.now;
    sim.clients[r].down.cfg.rate_bps = Some(500_000);
    sim.clients[r].down.cfg.queue = ms(200);
    sim.clients[r].remb = Some(450_000);
    sim.run_for(ms(6000));
    assert_eq!(sim.router.stats().layer_switches, started + 1, "one move down");
    for s in 1..6 {
        let got = per_second(&sim, r, 101, cap + ms(1000 * s));
        assert!((27..=33).contains(&got), "the middle layer (30/s) from 1 s after the cap on: {got} in second {s}");
    }
    let queue_drops = sim.clients[r].down.stats.queue_drops;

    // The cap lifts and the estimate goes up: back to the top layer within 5 s.
    let lift = sim.now;
    sim.clients[r].down.cfg.rate_bps = None;
    sim.clients[r].remb = Some(3_000_000);
    sim.run_for(ms(6000));
    assert_eq!(sim.router.stats().layer_switches, started + 2, "one move up");
    for s in 1..6 {
        let got = per_second(&sim, r, 101, lift + ms(1000 * s));
        assert!((95..=105).contains(&got), "the top layer again from 1 s after the lift on: {got} in second {s}");
    }

    // One continuous stream: only the group's SSRC, nothing missing for good, nothing twice.
    let rx = &sim.clients[r].rx;
    assert!(!rx.contains_key(&102) && !rx.contains_key(&103), "no layer under its own SSRC");
    let g = &rx[&101];
    let loss = g.lost() as f64 / (g.packets as f64 + g.lost() as f64);
    assert!(loss <= 0.01, "loss {loss:.4} ({} lost of {}; {queue_drops} queue drops)", g.lost(), g.packets);
    let mut seqs: Vec<u16> = g.arrivals.iter().map(|a| a.1).collect();
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "no packet delivered twice");
    let keyframes: u64 = sim.clients[p].streams.iter().map(|s| s.keyframes).sum();
    assert!(keyframes <= 8, "keyframes only where a receiver moved: {keyframes}");
}
