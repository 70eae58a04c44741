//! A simulated network for the core's tests, faster than real time.
//!
//! Simulated clients join a [`Router`] and exchange media through links
//! with configurable loss (random, and bursts as a Gilbert–Elliott chain),
//! reordering, duplication, delay, jitter and a bandwidth cap with a
//! drop-tail queue, all on synthetic time (in the spirit of str0m's `netem`
//! and quinn-proto's test `Pair`). Each client has an uplink (to the router)
//! and a downlink (from it). Receivers compute RFC 3550 receiver reports
//! from what really reached them (§A.3: fraction lost per interval) and send
//! them once a second, so the router's quality decisions are driven by
//! packets really dropped on a link. Everything is seeded: a run is
//! reproducible to the packet.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_proto::demux::{classify, Kind};
use corecast_proto::ids::SeqExtender;
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role, SigningKey};
use corecast_proto::SeqNo;

use crate::{Event, Input, Output, Router, RouterConfig};

mod client;
mod stream;
pub use client::Client;
pub use stream::{Stream, NTP_START};

/// A small deterministic generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

/// Gilbert–Elliott bursts: per packet, the chance to enter the bad state
/// (where every packet is lost) and to leave it. Mean burst: 1/`leave`
/// packets; long-run loss: enter/(enter+leave).
#[derive(Debug, Clone, Copy)]
pub struct Burst {
    pub enter: f64,
    pub leave: f64,
}

/// What a link does to packets.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Independent random loss, per packet.
    pub loss: f64,
    pub burst: Option<Burst>,
    /// Chance that a packet is held back by `reorder_delay` (arrives after later ones).
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// Chance that a packet arrives twice.
    pub duplicate: f64,
    /// One-way delay, plus uniform jitter in [0, `jitter`).
    pub delay: Duration,
    pub jitter: Duration,
    /// Bandwidth cap, bits/s; packets that would wait longer than `queue` are dropped.
    pub rate_bps: Option<u64>,
    pub queue: Duration,
    /// A known loss pattern: every `drop_every`-th RTP packet is lost (0: none).
    pub drop_every: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            loss: 0.0,
            burst: None,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(30),
            duplicate: 0.0,
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            rate_bps: None,
            queue: Duration::from_millis(100),
            drop_every: 0,
        }
    }
}

/// What happened on a link.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkStats {
    pub sent: u64,
    pub lost: u64,
    /// Of `lost`, RTP packets.
    pub lost_rtp: u64,
    pub queue_drops: u64,
    pub duplicated: u64,
    pub delivered: u64,
}

/// One direction of one client's connection.
#[derive(Debug)]
pub struct Link {
    pub cfg: LinkConfig,
    rng: Rng,
    bad: bool,
    rtp_sent: u64,
    busy_until: Option<Instant>,
    flight: BinaryHeap<Reverse<(Instant, u64, Bytes)>>,
    order: u64,
    pub stats: LinkStats,
    /// The RTP packets lost (SSRC, sequence number), in order (a
    /// retransmission lost again is there again).
    pub lost_seqs: Vec<(u32, u16)>,
}

impl Link {
    pub fn new(cfg: LinkConfig, seed: u64) -> Link {
        Link {
            cfg,
            rng: Rng::new(seed),
            bad: false,
            rtp_sent: 0,
            busy_until: None,
            flight: BinaryHeap::new(),
            order: 0,
            stats: LinkStats::default(),
            lost_seqs: Vec::new(),
        }
    }

    pub fn send(&mut self, now: Instant, b: Bytes) {
        self.stats.sent += 1;
        if let Some(burst) = self.cfg.burst {
            let flip = if self.bad { burst.leave } else { burst.enter };
            if self.rng.chance(flip) {
                self.bad = !self.bad;
            }
        }
        let rtp = classify(&b) == Kind::Rtp;
        self.rtp_sent += u64::from(rtp);
        let pattern = rtp && self.cfg.drop_every > 0 && self.rtp_sent.is_multiple_of(self.cfg.drop_every);
        if pattern || self.bad || self.rng.chance(self.cfg.loss) {
            self.stats.lost += 1;
            if let (Kind::Rtp, Ok(h)) = (classify(&b), RtpHeader::parse(&b)) {
                self.stats.lost_rtp += 1;
                self.lost_seqs.push((h.ssrc.0, h.seq.0));
            }
            return;
        }
        let mut depart = now;
        if let Some(rate) = self.cfg.rate_bps {
            let start = self.busy_until.map_or(now, |b| b.max(now));
            if start - now > self.cfg.queue {
                self.stats.queue_drops += 1;
                return;
            }
            depart = start + Duration::from_secs_f64(b.len() as f64 * 8.0 / rate as f64);
            self.busy_until = Some(depart);
        }
        let mut at = depart + self.cfg.delay + self.cfg.jitter.mul_f64(self.rng.unit());
        if self.rng.chance(self.cfg.reorder) {
            at += self.cfg.reorder_delay;
        }
        if self.rng.chance(self.cfg.duplicate) {
            self.stats.duplicated += 1;
            self.push(at + Duration::from_micros(1), b.clone());
        }
        self.push(at, b);
    }

    fn push(&mut self, at: Instant, b: Bytes) {
        self.order += 1;
        self.flight.push(Reverse((at, self.order, b)));
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.flight.peek().map(|r| r.0 .0)
    }

    pub fn pop_due(&mut self, now: Instant) -> Option<Bytes> {
        if self.next_due()? > now {
            return None;
        }
        self.stats.delivered += 1;
        self.flight.pop().map(|r| r.0 .2)
    }
}

/// What one client received of one SSRC (RFC 3550 §A.3 bookkeeping).
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub packets: u64,
    pub(super) ext: SeqExtender,
    base: Option<u64>,
    expected_prior: u64,
    received_prior: u64,
    /// Arrivals with a lower number than one already seen.
    pub late: u64,
    /// Sequence numbers in arrival order, with the instant.
    pub arrivals: Vec<(Instant, u16)>,
}

impl Received {
    pub(super) fn on_packet(&mut self, now: Instant, seq: SeqNo) {
        let before = self.ext.highest();
        let e = self.ext.extend(seq);
        self.base.get_or_insert(e);
        if before.is_some_and(|h| e < h) {
            self.late += 1;
        }
        self.packets += 1;
        self.arrivals.push((now, seq.0));
    }

    /// Expected minus received since the first packet (§A.3 cumulative loss).
    pub fn lost(&self) -> i64 {
        match (self.base, self.ext.highest()) {
            (Some(b), Some(h)) => (h - b + 1) as i64 - self.packets as i64,
            _ => 0,
        }
    }

    /// Fraction lost since the last report, in 1/256 (§A.3).
    pub(super) fn fraction(&mut self) -> u8 {
        let (Some(b), Some(h)) = (self.base, self.ext.highest()) else { return 0 };
        let expected = h - b + 1;
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.packets - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.packets;
        let lost = expected_interval as i64 - received_interval as i64;
        if expected_interval == 0 || lost <= 0 {
            0
        } else {
            ((lost << 8) / expected_interval as i64).min(255) as u8
        }
    }
}

/// A router and its clients on synthetic time.
#[derive(Debug)]
pub struct Sim {
    pub now: Instant,
    pub router: Router,
    pub clients: Vec<Client>,
    /// Every event the router emitted, with when.
    pub events: Vec<(Instant, Event)>,
    deadline: Instant,
    key: SigningKey,
    call: CallId,
    seed: u64,
    pub report_every: Duration,
    /// When the simulation started (the clients' wallclock origin).
    pub t0: Instant,
}

const EPOCH_MS: u64 = 1_700_000_000_000;

impl Sim {
    pub fn new(cfg: RouterConfig, seed: u64) -> Sim {
        let key = token::dev_signing_key();
        let now = Instant::now();
        let router = Router::new(super::keyed(cfg), key.verifying_key(), now, EPOCH_MS);
        Sim {
            now,
            router,
            clients: Vec::new(),
            events: Vec::new(),
            deadline: now,
            key,
            call: CallId([42; 16]),
            seed,
            report_every: Duration::from_secs(1),
            t0: now,
        }
    }

    /// Adds a client (it joins by itself, retrying until answered); returns its index.
    pub fn add(&mut self, pid: u64, role: Role, streams: Vec<Stream>, up: LinkConfig, down: LinkConfig) -> usize {
        let i = self.clients.len();
        let claims = Claims {
            call_id: self.call,
            participant_id: ParticipantId(pid),
            role,
            expires_at_ms: EPOCH_MS + 3_600_000,
        };
        let seed = self.seed.wrapping_mul(1000).wrapping_add(i as u64 * 2);
        self.clients.push(Client {
            addr: SocketAddr::from(([10, 0, 0, 1 + i as u8], 5000)),
            pid: ParticipantId(pid),
            token: token::sign(&self.key, &claims).to_vec(),
            quality: Quality::Hd,
            up: Link::new(up, seed),
            down: Link::new(down, seed + 1),
            streams,
            joined: false,
            next_join: self.now,
            // Reports spread over the second, as real clients' are.
            next_report: self.now + Duration::from_millis(1000 + 97 * i as u64),
            rx: BTreeMap::new(),
            reports: Vec::new(),
            plis: Vec::new(),
            keyframes_in: Vec::new(),
            nacked: Vec::new(),
            nacks: false,
            resends: true,
            simulcast: Vec::new(),
            remb: None,
            remb_sent: None,
            declares: true,
            missing: BTreeMap::new(),
            t0: self.t0,
            srs_in: Vec::new(),
            rrs_in: Vec::new(),
            last_sr: BTreeMap::new(),
            last_rrtr: None,
        });
        i
    }

    /// Runs until `now + d`.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = self.next_instant();
            if next > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            self.step();
        }
    }

    fn next_instant(&self) -> Instant {
        let mut t = self.deadline;
        for c in &self.clients {
            t = t.min(c.next_action());
            for l in [&c.up, &c.down] {
                if let Some(d) = l.next_due() {
                    t = t.min(d);
                }
            }
        }
        t
    }

    fn step(&mut self) {
        let now = self.now;
        if now >= self.deadline {
            self.feed(Input::Timeout);
        }
        for i in 0..self.clients.len() {
            while let Some(b) = self.clients[i].up.pop_due(now) {
                let source = self.clients[i].addr;
                self.feed(Input::Receive { source, contents: b });
            }
            let c = &mut self.clients[i];
            while let Some(b) = c.down.pop_due(now) {
                c.receive(now, &b);
            }
            if now >= c.next_action() {
                c.act(now, self.report_every);
            }
        }
    }

    fn feed(&mut self, input: Input) {
        self.router.handle_input(self.now, input);
        loop {
            match self.router.poll_output() {
                Output::Transmit(t) => {
                    if let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.destination) {
                        c.down.send(self.now, t.contents);
                    }
                }
                Output::Pipe(p) => panic!("one worker piped {p:?}"),
                Output::Event(e) => self.events.push((self.now, e)),
                Output::Timeout(t) => {
                    self.deadline = t;
                    return;
                }
            }
        }
    }

    /// When participant `pid` switched to `q`, in order.
    pub fn switches(&self, pid: u64, q: Quality) -> Vec<Instant> {
        self.events
            .iter()
            .filter(|(_, e)| {
                matches!(e, Event::QualityChanged { participant, quality, .. }
                    if participant.0 == pid && *quality == q)
            })
            .map(|(t, _)| *t)
            .collect()
    }
}
