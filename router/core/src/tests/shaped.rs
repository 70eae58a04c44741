//! A browser receiver behind the link the browser test shapes
//! (`tests/browser/simulcast-e2e.mjs`): `tc tbf` lets 300 kbit/s of what the
//! router sends it through with a 16 kB bucket and 100 ms of latency (a
//! queue of 100 ms at the rate plus the bucket, about 20 kB: half a second
//! of waiting when full), a GSO send as one; nftables drops 5% of what comes
//! out, at the browser's input. The publisher sends three VP8
//! simulcast layers (150, 350 and 1 400 kbit/s at 30 fps) and audio; the
//! browser numbers what arrives (transport-cc feedback every 50 ms), NACKs
//! gaps, asks for a keyframe when it has decoded nothing for a while, and
//! decodes a frame once all its packets are there and its reference is
//! decoded (or it is a keyframe). The test's measure is the done-when's:
//! the longest time without a new decoded frame from the moment the link is
//! shaped, the move down to the low layer included. Synthetic time, 1 ms steps.

use std::collections::{BTreeMap, VecDeque};

use corecast_proto::rtcp::TwccRecorder;

use super::net::Rng;
use super::webrtc::{identity, Peer};
use super::*;

/// The simulcast layers' SSRCs (low to high), and the audio's.
const LAYERS: [u32; 3] = [21, 22, 23];
const AUDIO: u32 = 20;
/// The layers' rates, kbit/s (what Chromium sent in the browser test: 159, 356, 1 383).
const KBPS: [u64; 3] = [150, 350, 1400];
/// A keyframe is this many times a frame's usual size.
const KEY_SIZE: usize = 4;
/// Payload bytes per packet at most.
const MTU_PAYLOAD: usize = 1100;
/// The browser's payload types: VP8 and its RTX (its audio is Opus, 111).
const VP8_PT: u8 = 96;
const RTX_PT: u8 = 97;
/// Most datagrams one GSO send carries (the router's backends: 64).
const GSO_SEGMENTS: usize = 64;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `tc qdisc ... tbf rate R burst B latency L`: a token bucket of `B`
/// bytes filling at `R`, in front of a FIFO that holds at most `R·L + B`
/// bytes (what `tc` makes of the latency); a packet that does not fit is
/// dropped.
struct Tbf {
    bytes_per_s: f64,
    burst: f64,
    limit: usize,
    /// Tokens when the last packet left, and when that was.
    tokens: f64,
    last: Instant,
    /// Queued packets: when each leaves, and its size.
    queue: VecDeque<(Instant, usize)>,
}

impl Tbf {
    fn new(now: Instant, rate_bps: u64, burst: usize, latency: Duration) -> Tbf {
        let bytes_per_s = rate_bps as f64 / 8.0;
        let limit = (bytes_per_s * latency.as_secs_f64()) as usize + burst;
        Tbf { bytes_per_s, burst: burst as f64, limit, tokens: burst as f64, last: now, queue: VecDeque::new() }
    }

    /// When a packet of `size` bytes handed over at `now` leaves, or `None`: dropped.
    fn send(&mut self, now: Instant, size: usize) -> Option<Instant> {
        while self.queue.front().is_some_and(|(at, _)| *at <= now) {
            self.queue.pop_front();
        }
        if self.queue.iter().map(|q| q.1).sum::<usize>() + size > self.limit {
            return None;
        }
        let start = now.max(self.last);
        let tokens = (self.tokens + start.duration_since(self.last).as_secs_f64() * self.bytes_per_s).min(self.burst);
        let wait = ((size as f64 - tokens) / self.bytes_per_s).max(0.0);
        let leaves = start + Duration::from_secs_f64(wait);
        self.tokens = tokens + wait * self.bytes_per_s - size as f64;
        self.last = leaves;
        self.queue.push_back((leaves, size));
        Some(leaves)
    }
}

/// A frame's packets as the browser collects them.
#[derive(Default)]
struct Frame {
    /// The publisher's frame number.
    n: u32,
    count: u8,
    have: u32,
    key: bool,
}

/// The browser: a receiving WebRTC peer with Chromium's receive side in
/// outline.
struct Browser {
    peer: Peer,
    rec: TwccRecorder,
    /// Extended sequence number of the newest video packet.
    highest: Option<u64>,
    got: std::collections::HashSet<u64>,
    /// Missing packets: when last NACKed and how often.
    nack: BTreeMap<u64, (Option<Instant>, u8)>,
    /// Frames by RTP timestamp (as the browser got it) and layer.
    frames: BTreeMap<(u32, u8), Frame>,
    /// The last frame decoded: its timestamp, and its frame number and layer as sent.
    last_decoded: Option<(u32, u32, u8)>,
    /// When each frame was decoded, and its layer.
    decoded: Vec<(Instant, u8)>,
    last_pli: Option<Instant>,
    plis: u32,
    nacked: u32,
}

impl Browser {
    fn ext(&self, seq: u16) -> u64 {
        match self.highest {
            None => (1 << 20) | u64::from(seq),
            Some(h) => h.saturating_add_signed(i64::from(SeqNo(h as u16).delta(SeqNo(seq)))),
        }
    }

    /// A datagram from the router arrived.
    fn arrive(&mut self, now: Instant, b: &[u8]) {
        if classify(b) != Kind::Rtp {
            return; // (RTCP: sender reports)
        }
        let q = self.peer.open_rtp(b);
        if let Some((_, d)) = q.extensions.iter().find(|(id, _)| *id == 3) {
            self.rec.record(u16::from_be_bytes([d[0], d[1]]), now);
        }
        let (seq, payload) = match q.pt.0 {
            VP8_PT => (q.seq.0, &q.payload[..]),
            RTX_PT if q.payload.len() > 2 => (u16::from_be_bytes([q.payload[0], q.payload[1]]), &q.payload[2..]),
            _ => return, // audio, probes
        };
        let ext = self.ext(seq);
        if !self.got.insert(ext) {
            return;
        }
        self.nack.remove(&ext);
        match self.highest {
            Some(h) if ext > h => {
                for missing in h + 1..ext {
                    self.nack.insert(missing, (None, 0));
                }
                self.highest = Some(ext);
            }
            None => self.highest = Some(ext),
            _ => {}
        }
        let (k, n, i, count) =
            (payload[2], u32::from(u16::from_be_bytes([payload[3], payload[4]])), payload[5], payload[6]);
        // (The test runs well inside the timestamps' first wrap.)
        let ts = q.timestamp.0;
        if self.last_decoded.is_some_and(|(d, _, _)| ts <= d) {
            return; // not after the last frame decoded: dropped, as a decoder does
        }
        let f = self.frames.entry((ts, k)).or_default();
        f.n = n;
        f.count = count;
        f.have |= 1 << i;
        f.key |= i == 0 && payload[1] & 1 == 0;
        self.decode(now);
    }

    /// Decodes what can be: complete frames in order, each a keyframe or
    /// the next frame of the layer decoded last.
    fn decode(&mut self, now: Instant) {
        loop {
            let next = self.frames.iter().find(|((_, k), f)| {
                f.count > 0
                    && f.have.count_ones() == u32::from(f.count)
                    && (f.key || self.last_decoded.is_some_and(|(_, n, l)| (n + 1, l) == (f.n, *k)))
            });
            let Some((&(ts, k), f)) = next else { return };
            self.last_decoded = Some((ts, f.n, k));
            self.decoded.push((now, k));
            self.frames.retain(|(t, _), _| *t > ts);
        }
    }

    /// What the browser sends now: transport-cc feedback, NACKs, a PLI.
    fn poll(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut fb = Vec::new();
        if self.rec.poll_feedback(now, 0xB0B, LAYERS[0], &mut fb) {
            out.push(self.peer.seal_rtcp(&fb));
        }
        // NACK each missing packet at once, again every 100 ms, 10 times at most.
        let due: Vec<u64> = self
            .nack
            .iter()
            .filter(|(_, (at, tries))| *tries < 10 && at.is_none_or(|t| now.saturating_duration_since(t) >= ms(100)))
            .map(|(s, _)| *s)
            .collect();
        if !due.is_empty() {
            let seqs: Vec<SeqNo> = due.iter().map(|s| SeqNo(*s as u16)).collect();
            for s in &due {
                let e = self.nack.get_mut(s).unwrap();
                *e = (Some(now), e.1 + 1);
            }
            self.nacked += due.len() as u32;
            let nack = rtcp::Nack::from_lost(Ssrc(0xB0B), Ssrc(LAYERS[0]), &seqs);
            out.push(self.peer.seal_rtcp(&rtcp::write_compound(&[RtcpPacket::Nack(nack)]).unwrap()));
        }
        // Nothing decoded for 500 ms although packets come: a keyframe request, at most every 500 ms.
        let since = self.decoded.last().map(|d| d.0);
        let stalled = since.is_some_and(|t| now.saturating_duration_since(t) >= ms(500));
        if stalled
            && !self.frames.is_empty()
            && self.last_pli.is_none_or(|t| now.saturating_duration_since(t) >= ms(500))
        {
            self.last_pli = Some(now);
            self.plis += 1;
            let pli = RtcpPacket::Pli(rtcp::Pli { sender_ssrc: Ssrc(0xB0B), media_ssrc: Ssrc(LAYERS[0]) });
            out.push(self.peer.seal_rtcp(&rtcp::write_compound(&[pli]).unwrap()));
        }
        out
    }

    /// The longest time between two decoded frames within `[from, to)`
    /// (from `from` itself), and when it began.
    fn longest_gap(&self, from: Instant, to: Instant) -> (Duration, Instant) {
        let mut prev = from;
        let mut worst = (Duration::ZERO, from);
        for &(t, _) in self.decoded.iter().filter(|(t, _)| *t > from && *t < to) {
            if t - prev > worst.0 {
                worst = (t - prev, prev);
            }
            prev = t;
        }
        if to - prev > worst.0 {
            worst = (to - prev, prev);
        }
        worst
    }

    /// The layers decoded within `[from, to)`, each with its count.
    fn layers(&self, from: Instant, to: Instant) -> [usize; 3] {
        let mut n = [0; 3];
        for &(_, k) in self.decoded.iter().filter(|(t, _)| *t >= from && *t < to) {
            n[usize::from(k)] += 1;
        }
        n
    }
}

/// The publisher, the router, the shaped link and the browser.
struct Scene {
    h: H,
    b: Browser,
    rng: Rng,
    /// The browser reads what arrived at most this many ms late (0: at once).
    busy: u64,
    next_read: Instant,
    /// Shaping on the router → browser direction (`None`: the plain link).
    tbf: Option<Tbf>,
    loss: f64,
    /// Datagrams on their way to the browser, by arrival.
    flight: VecDeque<(Instant, Bytes)>,
    frame: u32,
    seqs: [u16; 4],
    key_due: [bool; 3],
    next_frame: Instant,
    next_audio: Instant,
    keyframes_sent: [u32; 3],
    /// When the router asked for keyframes.
    key_requests: Vec<(Instant, u32)>,
}

impl Scene {
    fn new(seed: u64) -> Scene {
        let mut h = H::with(retransmitting());
        h.r.set_dtls_identity(identity());
        let tok = h.token(call(50), 1, Role::Publisher);
        let mut ssrcs: Vec<_> = LAYERS.iter().map(|s| (Ssrc(*s), MediaKind::Video)).collect();
        ssrcs.push((Ssrc(AUDIO), MediaKind::Audio));
        assert!(matches!(h.join_with(addr(1), tok, ssrcs), SessionMessage::JoinAck { .. }));
        h.session(addr(1), SessionMessage::Simulcast { txid: [1; 12], layers: LAYERS.map(Ssrc).to_vec() });
        let vp8_line = |leg: &mut crate::webrtc::WebRtcLeg| {
            leg.media[1].codec = crate::webrtc::Codec::Vp8;
            leg.media[1].payload_type = VP8_PT;
            leg.media[1].rtx_payload_type = Some(RTX_PT);
        };
        let config = dimpl::Config::builder().build().unwrap();
        let mut peer = Peer::open_edited(&mut h, 2, (call(50), 2, false, None), config, vp8_line);
        peer.connect_ice(&mut h);
        peer.handshake(&mut h);
        h.take();
        let now = h.now;
        let b = Browser {
            peer,
            rec: TwccRecorder::new(),
            highest: None,
            got: Default::default(),
            nack: BTreeMap::new(),
            frames: BTreeMap::new(),
            last_decoded: None,
            decoded: Vec::new(),
            last_pli: None,
            plis: 0,
            nacked: 0,
        };
        Scene {
            h,
            b,
            rng: Rng::new(seed),
            busy: 0,
            next_read: now,
            tbf: None,
            loss: 0.0,
            flight: VecDeque::new(),
            frame: 0,
            seqs: [0; 4],
            key_due: [true; 3],
            next_frame: now,
            next_audio: now,
            keyframes_sent: [0; 3],
            key_requests: Vec::new(),
        }
    }

    /// One frame of every layer from the publisher.
    fn publish_frame(&mut self) {
        let n = self.frame;
        self.frame += 1;
        for k in 0..3 {
            let key = std::mem::take(&mut self.key_due[k]);
            self.keyframes_sent[k] += u32::from(key);
            let size = (KBPS[k] * 1000 / 8 / 30) as usize * if key { KEY_SIZE } else { 1 };
            let count = size.div_ceil(MTU_PAYLOAD);
            for i in 0..count {
                let mut payload = vec![0u8; MTU_PAYLOAD.min(size - i * MTU_PAYLOAD).max(8)];
                payload[0] = if i == 0 { 0x10 } else { 0x00 }; // S: a frame's first packet
                payload[1] = if key { 0x00 } else { 0x01 }; // P=0: a keyframe
                payload[2] = k as u8;
                payload[3..5].copy_from_slice(&(n as u16).to_be_bytes());
                payload[5] = i as u8;
                payload[6] = count as u8;
                let p = RtpPacket {
                    pt: Pt(VP8_PT),
                    seq: SeqNo(self.seqs[k]),
                    ssrc: Ssrc(LAYERS[k]),
                    timestamp: corecast_proto::MediaTime(3000 * n),
                    marker: i + 1 == count,
                    payload,
                    ..Default::default()
                };
                self.seqs[k] = self.seqs[k].wrapping_add(1);
                self.h.input(addr(1), p.to_vec().unwrap());
            }
        }
    }

    fn publish_audio(&mut self) {
        let p = RtpPacket {
            pt: Pt(111),
            seq: SeqNo(self.seqs[3]),
            ssrc: Ssrc(AUDIO),
            timestamp: corecast_proto::MediaTime(960 * u32::from(self.seqs[3])),
            payload: vec![0x55; 100],
            ..Default::default()
        };
        self.seqs[3] = self.seqs[3].wrapping_add(1);
        self.h.input(addr(1), p.to_vec().unwrap());
    }

    /// The router's sends: the browser's through the link, the publisher's keyframe requests.
    ///
    /// What one flush sends the browser goes out as the router's backend
    /// sends it: runs of datagrams of one size (the last may be shorter) as
    /// one GSO send, which the shaper queues and lets out as one (so a run's
    /// datagrams arrive together); nftables drops at the browser's input,
    /// after the shaper.
    fn route(&mut self) {
        let now = self.h.now;
        let mut run: Vec<Bytes> = Vec::new();
        for t in self.h.take() {
            if t.destination == self.b.peer.addr {
                let joins = match (run.first(), run.last()) {
                    (Some(first), Some(last)) => {
                        last.len() == first.len() && t.contents.len() <= first.len() && run.len() < GSO_SEGMENTS
                    }
                    _ => true,
                };
                if !joins {
                    self.link(now, std::mem::take(&mut run));
                }
                run.push(t.contents);
            } else if t.destination == addr(1) && classify(&t.contents) == Kind::Rtcp {
                for p in rtcp::parse_compound(&t.contents).unwrap_or_default() {
                    let asked = match p {
                        RtcpPacket::Pli(p) => vec![p.media_ssrc.0],
                        RtcpPacket::Fir(f) => f.entries.iter().map(|e| e.0 .0).collect(),
                        _ => vec![],
                    };
                    for s in asked {
                        if let Some(k) = LAYERS.iter().position(|l| *l == s) {
                            self.key_due[k] = true;
                            self.key_requests.push((now, s));
                        }
                    }
                }
            }
        }
        if !run.is_empty() {
            self.link(now, run);
        }
    }

    /// One send of `run` (a GSO run) to the browser: through the shaper as
    /// one, each datagram then dropped with the link's loss.
    fn link(&mut self, now: Instant, run: Vec<Bytes>) {
        let size: usize = run.iter().map(|b| b.len() + 28).sum();
        if run.len() > 1 && self.tbf.as_ref().is_some_and(|tbf| size as f64 > tbf.burst) {
            // tbf cuts a send larger than its bucket into its datagrams.
            for b in run {
                self.link(now, vec![b]);
            }
            return;
        }
        let at = match self.tbf.as_mut() {
            Some(tbf) => match tbf.send(now, size) {
                Some(at) => at + ms(1),
                None => return,
            },
            None => now + ms(1),
        };
        for b in run {
            if self.rng.chance(self.loss) {
                continue;
            }
            let i = self.flight.partition_point(|(a, _)| *a <= at);
            self.flight.insert(i, (at, b));
        }
    }

    fn run(&mut self, d: Duration) {
        let end = self.h.now + d;
        while self.h.now < end {
            self.h.now += ms(1);
            let now = self.h.now;
            self.h.r.handle_input(now, Input::Timeout);
            self.h.drain();
            if now >= self.next_frame {
                self.next_frame += Duration::from_micros(33_333);
                self.publish_frame();
            }
            if now >= self.next_audio {
                self.next_audio += ms(20);
                self.publish_audio();
            }
            self.route();
            // A busy browser reads its socket in batches (`busy`: up to that
            // many ms apart), so arrivals a batch holds read as simultaneous.
            if self.busy == 0 || now >= self.next_read {
                self.next_read = now + ms(1 + self.rng.next_u64() % self.busy.max(1));
                while self.flight.front().is_some_and(|(at, _)| *at <= now) {
                    let (_, b) = self.flight.pop_front().unwrap();
                    self.b.arrive(now, &b);
                }
            }
            for p in self.b.poll(now) {
                self.h.input(self.b.peer.addr, p);
            }
            self.route();
        }
    }

    fn shape(&mut self) {
        self.tbf = Some(Tbf::new(self.h.now, 300_000, 16_000, ms(100)));
        self.loss = 0.05;
    }

    /// `tc qdisc del`: what the tbf held is gone, what left it arrives.
    fn unshape(&mut self) {
        let now = self.h.now;
        if let Some(tbf) = self.tbf.take() {
            let queued: Vec<Instant> = tbf.queue.iter().filter(|q| q.0 > now).map(|q| q.0 + ms(1)).collect();
            self.flight.retain(|(at, _)| !queued.contains(at));
        }
        self.loss = 0.0;
    }
}

#[test]
fn a_browser_behind_a_shaped_link_keeps_decoding_on_the_low_layer_and_climbs_back() {
    for seed in 1..=6 {
        shaped_and_lifted(seed, 0);
        // A busy browser, whose arrival times come in clumps.
        shaped_and_lifted(seed, 8);
    }
}

fn shaped_and_lifted(seed: u64, busy: u64) {
    let mut s = Scene::new(seed);
    s.busy = busy;
    s.run(ms(6000));
    let t0 = s.h.now;
    let top = s.b.layers(t0 - ms(1000), t0);
    assert!(top[2] >= 28 && top[0] == 0 && top[1] == 0, "the top layer at first: {top:?}");

    s.shape();
    let switches = s.h.r.stats().layer_switches;
    s.run(ms(10_000));
    let shaped = s.h.now;
    let (gap, at) = s.b.longest_gap(t0, shaped);
    let low = s.b.layers(t0 + ms(2000), shaped);
    eprintln!(
        "seed {seed}, busy {busy}: shaped: longest gap {gap:?} from {:?} after the shaping; decoded by layer from 2 s on {low:?}; \
         keyframe requests {:?}; layer switches +{}; browser NACKed {}, PLIs {}; estimate {:?}",
        at - t0,
        s.key_requests.iter().filter(|r| r.0 >= t0).map(|r| (r.0 - t0, r.1)).collect::<Vec<_>>(),
        s.h.r.stats().layer_switches - switches,
        s.b.nacked,
        s.b.plis,
        s.h.r.calls[&call(50)].participants[1].estimate(),
    );
    assert!(gap < ms(1000), "no freeze over 1 s: {gap:?} from {:?} after the shaping", at - t0);
    // Straight down to the low layer: no step through the middle one (a
    // second keyframe, a second freeze).
    let asked: Vec<u32> = s.key_requests.iter().filter(|r| r.0 >= t0).map(|r| r.1).collect();
    assert!(asked.iter().all(|&l| l == LAYERS[0]), "keyframes asked while shaped, by layer: {asked:?}");
    assert!(low[0] >= 200 && low[1] == 0 && low[2] == 0, "on the low layer from 2 s on: {low:?}");

    s.unshape();
    s.run(ms(9000));
    let back = s.b.decoded.iter().find(|d| d.0 > shaped && d.1 == 2).map(|d| d.0 - shaped);
    let switches = s.h.r.stats().layer_switches - switches;
    let last = s.b.layers(s.h.now - ms(2000), s.h.now);
    eprintln!("seed {seed}, busy {busy}: unshaped: top layer again after {back:?}; {switches} switches in all; the last 2 s by layer {last:?}");
    // The router probes only a link it has seen clean for 8 loss intervals
    // of 20 packets: 2 s or so with the audio numbered (unnumbered, the low
    // layer's 30 packets a second alone took 3.4-6 s).
    assert!(back.is_some_and(|b| b <= ms(5000)), "the top layer within 5 s of the lift: {back:?}");
    assert!(switches <= 3, "no moving up and down: {switches} switches");
    let (gap, at) = s.b.longest_gap(shaped, s.h.now);
    assert!(gap < ms(1000), "no freeze climbing back: {gap:?} from {:?}", at - shaped);
}
