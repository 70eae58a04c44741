//! The estimator over a simulated bottleneck, on synthetic time: a sender
//! that sends media at the estimate (as an encoder following it would) and
//! the probes the estimator asks for, through a FIFO queue draining at C
//! bits/s (drop-tail at 400 ms of queueing) with 20 ms of base delay each
//! way; the receiver's feedback is written by the same `TwccRecorder` the
//! router's own legs use, parsed back from the wire, and fed to the
//! estimator through the leg's `SendHistory`. Deterministic: no randomness.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use corecast_proto::rtcp::{parse_compound, RtcpPacket, TransportFeedback, TwccRecorder};

use super::*;

const BASE_DELAY_US: i64 = 20_000;
const MAX_QUEUE_US: i64 = 400_000;
const MEDIA_PACKET: usize = 1200;
/// What the receiver's layers would take: above every link here.
const TARGET_BPS: u64 = 4_000_000;

/// A FIFO bottleneck.
struct Link {
    capacity_bps: u64,
    free_at_us: i64,
    /// Every `n`th packet is lost on the way (0: none).
    lose_every: u64,
    count: u64,
    /// A policer's bucket (`tc tbf`'s burst), bytes: what fits passes at
    /// once (0: a plain FIFO).
    bucket: f64,
    tokens: f64,
    tokens_at_us: i64,
    /// The longest a packet queues before it is dropped (tail drop), µs.
    max_queue_us: i64,
}

impl Link {
    /// A packet entering at `at_us`: its arrival, or `None` when dropped.
    fn send(&mut self, at_us: i64, size: usize) -> Option<i64> {
        self.count += 1;
        if self.bucket > 0.0 {
            return self.police(at_us, size);
        }
        let start = at_us.max(self.free_at_us);
        if start - at_us > self.max_queue_us {
            return None;
        }
        self.free_at_us = start + (size as i64 * 8_000_000) / self.capacity_bps as i64;
        if self.lose_every > 0 && self.count.is_multiple_of(self.lose_every) {
            return None;
        }
        Some(self.free_at_us + BASE_DELAY_US)
    }
}

impl Link {
    /// A token bucket filled at the capacity: a packet leaves once the
    /// tokens cover it, in order.
    fn police(&mut self, at_us: i64, size: usize) -> Option<i64> {
        let t = at_us.max(self.free_at_us);
        let tokens = (self.tokens + (t - self.tokens_at_us) as f64 * self.capacity_bps as f64 / 8e6).min(self.bucket);
        let wait_us =
            if tokens >= size as f64 { 0 } else { ((size as f64 - tokens) * 8e6 / self.capacity_bps as f64) as i64 };
        let leave = t + wait_us;
        if leave - at_us > self.max_queue_us {
            return None;
        }
        self.tokens = (tokens - size as f64).max(0.0);
        self.tokens_at_us = leave;
        self.free_at_us = leave;
        if self.lose_every > 0 && self.count.is_multiple_of(self.lose_every) {
            return None;
        }
        Some(leave + BASE_DELAY_US)
    }
}

struct Sim {
    t0: Instant,
    now_us: i64,
    bwe: Bwe,
    history: SendHistory,
    link: Link,
    in_flight: VecDeque<(i64, u16)>,
    recorder: TwccRecorder,
    feedback: VecDeque<(i64, TransportFeedback)>,
    media_credit_bits: f64,
    probes: VecDeque<(i64, usize, ClusterId)>,
    probes_sent: u32,
    /// Media is sent at the estimate up to this (what the receiver's layer takes).
    media_cap_bps: u64,
}

impl Sim {
    fn new(capacity_bps: u64) -> Sim {
        Sim {
            t0: Instant::now(),
            now_us: 0,
            bwe: Bwe::new(),
            history: SendHistory::new(),
            link: Link {
                capacity_bps,
                free_at_us: 0,
                lose_every: 0,
                count: 0,
                bucket: 0.0,
                tokens: 0.0,
                tokens_at_us: 0,
                max_queue_us: MAX_QUEUE_US,
            },
            in_flight: VecDeque::new(),
            recorder: TwccRecorder::new(),
            feedback: VecDeque::new(),
            media_credit_bits: 0.0,
            probes: VecDeque::new(),
            probes_sent: 0,
            media_cap_bps: u64::MAX,
        }
    }

    /// A link policed at `capacity_bps` with a 16 kB bucket (as the browser test's `tc tbf`).
    fn policed(capacity_bps: u64) -> Sim {
        let mut sim = Sim::new(capacity_bps);
        sim.link.bucket = 16_000.0;
        sim.link.tokens = 16_000.0;
        sim
    }

    fn at(&self, us: i64) -> Instant {
        self.t0 + Duration::from_micros(us as u64)
    }

    fn send(&mut self, at_us: i64, size: usize, cluster: ClusterId) {
        let seq = self.history.next_seq();
        self.history.on_sent(self.at(at_us), size, cluster);
        if let Some(arrival) = self.link.send(at_us, size) {
            self.in_flight.push_back((arrival, seq.0));
        }
    }

    /// One millisecond.
    fn step(&mut self) {
        let now = self.now_us;
        while let Some(&(arrival, seq)) = self.in_flight.front().filter(|(a, _)| *a <= now) {
            self.in_flight.pop_front();
            self.recorder.record(seq, self.at(arrival));
        }
        let mut buf = Vec::new();
        if self.recorder.poll_feedback(self.at(now), 1, 2, &mut buf) {
            for p in parse_compound(&buf).expect("the recorder's feedback parses") {
                if let RtcpPacket::TransportFeedback(f) = p {
                    self.feedback.push_back((now + BASE_DELAY_US, f));
                }
            }
        }
        while let Some((_, f)) = self.feedback.front().filter(|(due, _)| *due <= now).cloned() {
            self.feedback.pop_front();
            self.bwe.on_feedback(self.at(now), &mut self.history, &f);
        }
        if self.probes.is_empty() {
            if let Some(c) = self.bwe.wants_probe(self.at(now), TARGET_BPS) {
                let n = (c.bytes.div_ceil(MEDIA_PACKET) as u32).max(c.min_packets);
                let size = (c.bytes / n as usize).max(100);
                let spacing = (size as i64 * 8_000_000) / c.bitrate_bps as i64;
                for i in 0..n {
                    self.probes.push_back((now + i64::from(i) * spacing, size, c.id));
                }
                self.bwe.probe_sent(c.id, n);
                self.probes_sent += 1;
            }
        }
        self.media_credit_bits += self.bwe.estimate_bps().min(self.media_cap_bps) as f64 / 1000.0;
        while self.media_credit_bits >= (MEDIA_PACKET * 8) as f64 {
            self.media_credit_bits -= (MEDIA_PACKET * 8) as f64;
            self.send(now, MEDIA_PACKET, 0);
        }
        while let Some(&(at, size, id)) = self.probes.front().filter(|(at, _, _)| *at < now + 1000) {
            self.probes.pop_front();
            self.send(at, size, id);
        }
        self.now_us += 1000;
    }

    /// Runs `ms` milliseconds; the estimate every 100 ms.
    fn run(&mut self, ms: u32) -> Vec<u64> {
        let mut samples = Vec::new();
        for i in 0..ms {
            self.step();
            if i % 100 == 99 {
                samples.push(self.bwe.estimate_bps());
            }
        }
        samples
    }
}

fn within(samples: &[u64], lo: f64, hi: f64, c: u64) -> bool {
    samples.iter().all(|&s| s as f64 >= lo * c as f64 && s as f64 <= hi * c as f64)
}

#[test]
fn converges_to_a_300_kbit_link() {
    let c = 300_000;
    let mut sim = Sim::new(c);
    sim.run(3000);
    let steady = sim.run(7000);
    assert!(within(&steady, 0.7, 1.1, c), "{steady:?}");
}

#[test]
fn converges_to_a_2500_kbit_link_by_probing() {
    let c = 2_500_000;
    let mut sim = Sim::new(c);
    let start = sim.run(4000);
    assert!(sim.probes_sent >= 2, "start-up probes: {}", sim.probes_sent);
    let steady = sim.run(6000);
    assert!(within(&steady, 0.7, 1.1, c), "start {start:?} then {steady:?}");
}

#[test]
fn follows_the_capacity_down_and_back_up() {
    let (high, low) = (2_500_000, 1_000_000);
    let mut sim = Sim::new(high);
    sim.run(6000);
    assert!(sim.bwe.estimate_bps() as f64 >= 0.7 * high as f64);
    sim.link.capacity_bps = low;
    let down = sim.run(2000);
    assert!(*down.last().unwrap() < low, "below the new capacity within 2 s: {down:?}");
    let settled = sim.run(4000);
    assert!(within(&settled, 0.5, 1.1, low), "{settled:?}");
    sim.link.capacity_bps = high;
    let up = sim.run(10_000);
    let first = up.iter().position(|&s| s as f64 >= 0.7 * high as f64);
    assert!(first.is_some_and(|i| i <= 80), "back up within 8 s: {up:?}");
    assert!(within(&up[up.len() - 10..], 0.7, 1.1, high), "{up:?}");
}

#[test]
fn heavy_loss_lowers_the_estimate() {
    let mut sim = Sim::new(5_000_000);
    sim.link.lose_every = 5; // 20%: the link itself is fast, loss alone must act
    let s = sim.run(8000);
    assert!(sim.bwe.loss() > 0.15, "{}", sim.bwe.loss());
    // Whatever the start-up probes found, 20% loss brings it down, and no probe lifts it again.
    let peak = *s.iter().max().unwrap();
    assert!(*s.last().unwrap() < START_BPS, "{s:?}");
    assert!(s[s.len() - 30..].windows(2).all(|w| w[1] <= w[0]), "{s:?}");
    assert!(peak > START_BPS);
}

#[test]
fn a_policed_link_losing_5_percent_is_not_probed_above_itself() {
    // 300 kbit/s policed with a 16 kB bucket (which passes a short probe at
    // once) and 5% random loss: media at the estimate brings it to the link,
    // then the receiver gets a 160 kbit/s layer.
    let c = 300_000;
    let mut sim = Sim::policed(c);
    sim.link.lose_every = 20;
    sim.run(6000);
    sim.media_cap_bps = 160_000;
    let probes = sim.probes_sent;
    let s = sim.run(20_000);
    // With loss in the hold band no probe goes, and the estimate never
    // rises to where the next layer (about 380 kbit/s) would be chosen.
    assert_eq!(sim.probes_sent, probes, "no probe while losing 5%");
    assert!(s.iter().all(|&e| e < 330_000), "{s:?}");
    assert!(sim.bwe.loss() >= 0.04, "{}", sim.bwe.loss());
}

#[test]
fn probes_back_off_while_the_link_takes_their_rises_back() {
    // No random loss: each probe passes the bucket, the rise it brings
    // overuses the link once media follows it; the periodic probes back off.
    let c = 300_000;
    let mut sim = Sim::policed(c);
    sim.run(10_000);
    let probes = sim.probes_sent;
    let s = sim.run(60_000);
    let later = sim.probes_sent - probes;
    assert!(sim.bwe.probes.interval() > probe::PROBE_INTERVAL, "{:?}", sim.bwe.probes.interval());
    assert!(later < 20, "{later} probes in 60 s (every 3 s would be 20)");
    // Most of the time the estimate is near the link, not above it.
    let above = s.iter().filter(|&&e| e > c * 13 / 10).count();
    assert!(above * 10 <= s.len(), "{above} of {} samples above 1.3 × the link: {s:?}", s.len());
}

#[test]
fn the_estimate_is_offered_once_settled_once_a_second_and_at_once_when_it_drops() {
    let mut sim = Sim::new(2_500_000);
    let t = |ms: u64| sim.t0 + Duration::from_millis(ms);
    let (t1, t2, t3) = (t(1000), t(2500), t(2600));
    sim.run(1000);
    assert!(!sim.bwe.settled() && !sim.bwe.signal_due(t1), "not before it settles");
    sim.run(1500);
    assert!(sim.bwe.settled());
    assert!(sim.bwe.signal_due(t2));
    assert!(!sim.bwe.signal_due(t3), "not twice within a second");
    // The capacity falls: the drop is offered as soon as it shows.
    sim.link.capacity_bps = 500_000;
    let mut offered = None;
    for ms in 0..1000u64 {
        sim.step();
        if sim.bwe.signal_due(sim.t0 + Duration::from_millis(2600 + ms)) {
            offered = Some(ms);
            break;
        }
    }
    assert!(offered.is_some_and(|ms| ms < 900), "{offered:?}");
}

proptest::proptest! {
    /// Whatever a receiver puts in its feedback (numbers never sent, times
    /// anywhere, lies about the same packet), nothing panics and the
    /// estimate stays within its bounds.
    #[test]
    fn any_feedback_leaves_the_estimate_bounded(
        msgs in proptest::collection::vec(
            (proptest::prelude::any::<u16>(), proptest::prelude::any::<i32>(),
             proptest::collection::vec(proptest::option::of(proptest::prelude::any::<i16>()), 1..300)),
            1..20,
        )
    ) {
        let t0 = Instant::now();
        let mut history = SendHistory::new();
        let mut bwe = Bwe::new();
        for i in 0..500u64 {
            history.on_sent(t0 + Duration::from_millis(i), 1200, (i % 3) as ClusterId);
        }
        for (k, (base, reference_time, deltas)) in msgs.into_iter().enumerate() {
            let fb = TransportFeedback {
                base_seq: corecast_proto::SeqNo(base % 600),
                reference_time,
                deltas,
                ..Default::default()
            };
            let now = t0 + Duration::from_millis(500 + 50 * k as u64);
            let _ = bwe.wants_probe(now, 5_000_000);
            let e = bwe.on_feedback(now, &mut history, &fb);
            proptest::prop_assert!((MIN_BPS..=MAX_BPS).contains(&e));
        }
    }
}

#[test]
fn a_link_policed_to_a_fifth_of_the_layer_is_followed_down_at_once() {
    // The browser test's shaping: an HD layer (1.5 Mbit/s) on a clean link,
    // then `tc tbf` at 300 kbit/s (16 kB bucket, 100 ms of queue) and 5%
    // loss. The queue overflows ~230 ms later; the first feedback that
    // reports it cuts the estimate to what gets through, not a second later
    // after loss intervals halve it step by step, and the packets lost from
    // the queue it had already filled do not cut it again.
    let mut sim = Sim::new(2_500_000);
    sim.media_cap_bps = 1_500_000;
    sim.run(8000);
    assert!(sim.bwe.estimate_bps() > 1_500_000, "{}", sim.bwe.estimate_bps());
    sim.link.capacity_bps = 300_000;
    sim.link.bucket = 16_000.0;
    sim.link.tokens = 16_000.0;
    sim.link.tokens_at_us = sim.now_us;
    sim.link.lose_every = 20;
    sim.link.max_queue_us = 100_000;
    let mut s = Vec::new();
    let mut drains = Vec::new();
    for ms in 0..3000 {
        sim.step();
        drains.extend(sim.bwe.take_drain());
        if ms % 100 == 99 {
            s.push(sim.bwe.estimate_bps());
        }
    }
    // The fall says how long the queue it came from takes to drain (the
    // leg holds its video that long): about the link's 100 ms of queue,
    // once for the delay-based fall and once for the overflow cut at most.
    assert!((1..=2).contains(&drains.len()), "{drains:?}");
    assert!(drains.iter().all(|d| (Duration::from_millis(60)..=Duration::from_millis(110)).contains(d)), "{drains:?}");
    let below = s.iter().position(|&e| e < 400_000);
    assert!(below.is_some_and(|i| i < 5), "below 400 kbit/s within 500 ms: {s:?}");
    assert!(s[5..].iter().all(|&e| (200_000..330_000).contains(&e)), "near the link after: {s:?}");
}
