//! Frame-rate caps (`max_fps`) on synthetic time: a publisher sends video
//! with temporal layers (the L1T3 pattern T0 T2 T1 T2 at 30 fps, VP8 and
//! AV1 payloads) and receivers with and without a cap get exactly the
//! frames their cap allows, whole, with sequence numbers that have no gap,
//! and no keyframe request comes of it.

use std::collections::BTreeMap;

use super::webrtc::{identity, Peer};
use super::*;

const AUDIO: u32 = 100;
const VIDEO: u32 = 101;
/// The native client's payload types (`RouterConfig::native_format`).
const PT_VP8: u8 = 96;
const PT_AV1: u8 = 45;
const PT_OPUS: u8 = 111;
/// Packets per video frame.
const PER_FRAME: usize = 3;
/// Frames sent: 4 s at 30 fps.
const FRAMES: u32 = 120;
/// 90 kHz ticks per frame at 30 fps.
const TICKS: u32 = 3000;

/// The L1T3 pattern's layer of frame `i`.
fn l1t3(i: u32) -> u8 {
    [0, 2, 1, 2][(i % 4) as usize]
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Payload {
    /// VP8 with the T bit (every packet says its layer).
    Vp8,
    /// VP8 without temporal layers (no X byte).
    Vp8Plain,
    /// AV1: the first packet of a frame starts its OBU (extension header
    /// above T0, none for T0, as libaom writes); the others continue it (Z = 1).
    Av1,
    /// AV1 without extension headers: one layer.
    Av1Plain,
}

impl Payload {
    fn pt(self) -> u8 {
        match self {
            Payload::Vp8 | Payload::Vp8Plain => PT_VP8,
            Payload::Av1 | Payload::Av1Plain => PT_AV1,
        }
    }

    /// Packet `k` of a frame of layer `tid` (picture id `pic`).
    fn bytes(self, tid: u8, k: usize, pic: u8) -> Vec<u8> {
        let first = k == 0;
        let last = k + 1 == PER_FRAME;
        let mut b = match self {
            // X, S on the first packet; I, L, T; 7-bit picture id; TL0PICIDX; TID|Y|KEYIDX.
            Payload::Vp8 => vec![0x80 | if first { 0x10 } else { 0 }, 0xE0, pic & 0x7f, 0, (tid << 6) | 0x20],
            Payload::Vp8Plain => vec![if first { 0x10 } else { 0 }],
            Payload::Av1 | Payload::Av1Plain => {
                let z = if first { 0 } else { 0x80 };
                let y = if last { 0 } else { 0x40 };
                let mut v = vec![z | y | 0x10]; // W = 1
                if first {
                    match (self, tid) {
                        (Payload::Av1, t) if t > 0 => v.extend_from_slice(&[(6 << 3) | 0x04, t << 5]),
                        _ => v.push(6 << 3),
                    }
                }
                v
            }
        };
        b.resize(b.len() + 200, pic);
        b
    }
}

/// A call: publisher 1 (audio 100, video 101) at addr 0 and subscribers
/// with the given caps at addr 1, 2, ... (pids 2, 3, ...).
fn capped_call(h: &mut H, caps: &[Option<u8>]) {
    let tok = h.token(call(1), 1, Role::Publisher);
    let r = h.join_with(addr(0), tok, vec![(Ssrc(AUDIO), MediaKind::Audio), (Ssrc(VIDEO), MediaKind::Video)]);
    assert!(matches!(r, SessionMessage::JoinAck { .. }), "{r:?}");
    for (i, cap) in caps.iter().enumerate() {
        let pid = 2 + i as u64;
        let tok = h.token(call(1), pid, Role::Subscriber);
        assert!(matches!(h.join_with(addr(1 + i as u16), tok, vec![]), SessionMessage::JoinAck { .. }));
        set_cap(h, pid, *cap);
    }
}

/// Sets a receiver's cap (what a WHEP leg's `max_fps` sets).
fn set_cap(h: &mut H, pid: u64, cap: Option<u8>) {
    let c = h.r.calls.get_mut(&call(1)).unwrap();
    let i = c.index_of(ParticipantId(pid)).unwrap();
    c.participants[i].max_fps = cap;
}

/// What the publisher sent: frame timestamp → layer.
type Sent = BTreeMap<u32, u8>;

/// Sends frames `from..to` (plus an audio packet per frame), one every 33 ms.
fn send_frames(h: &mut H, p: Payload, from: u32, to: u32, sent: &mut Sent) {
    for f in from..to {
        let ts = 5000u32.wrapping_add(f * TICKS);
        let tid = if matches!(p, Payload::Vp8Plain | Payload::Av1Plain) { 0 } else { l1t3(f) };
        sent.insert(ts, tid);
        for k in 0..PER_FRAME {
            let pkt = RtpPacket {
                marker: k + 1 == PER_FRAME,
                pt: Pt(p.pt()),
                seq: SeqNo(60_000u16.wrapping_add((f as usize * PER_FRAME + k) as u16)),
                timestamp: corecast_proto::MediaTime(ts),
                ssrc: Ssrc(VIDEO),
                payload: p.bytes(tid, k, f as u8),
                ..Default::default()
            };
            h.input(addr(0), pkt.to_vec().unwrap());
        }
        let audio = RtpPacket {
            pt: Pt(PT_OPUS),
            seq: SeqNo(f as u16),
            timestamp: corecast_proto::MediaTime(f * 1600),
            ssrc: Ssrc(AUDIO),
            payload: vec![0xF8, 1, 2, 3],
            ..Default::default()
        };
        h.input(addr(0), audio.to_vec().unwrap());
        h.advance(Duration::from_micros(33_333));
    }
}

/// What one receiver got of the video: every packet's (seq, timestamp,
/// marker), in order, and how many audio packets.
struct Got {
    video: Vec<(SeqNo, u32, bool)>,
    audio: usize,
}

fn got(t: &[Transmit], to: SocketAddr) -> Got {
    let mut g = Got { video: vec![], audio: 0 };
    for t in t.iter().filter(|t| t.destination == to && classify(&t.contents) == Kind::Rtp) {
        let h = RtpHeader::parse(&t.contents).unwrap();
        if h.ssrc == Ssrc(VIDEO) {
            g.video.push((h.seq, h.timestamp.0, h.marker));
        } else {
            g.audio += 1;
        }
    }
    g
}

impl Got {
    /// Checks that the sequence numbers have no gap and every frame is
    /// whole, and returns the frames (timestamps) in order.
    fn frames(&self) -> Vec<u32> {
        for w in self.video.windows(2) {
            assert_eq!(w[1].0, w[0].0.next(), "a gap in the sequence numbers at {w:?}");
        }
        let mut frames = Vec::new();
        for chunk in self.video.chunks(PER_FRAME) {
            assert_eq!(chunk.len(), PER_FRAME, "a frame cut short: {chunk:?}");
            assert!(chunk.iter().all(|p| p.1 == chunk[0].1), "packets of different frames mixed: {chunk:?}");
            assert!(chunk[PER_FRAME - 1].2, "the frame's last packet has the marker");
            frames.push(chunk[0].1);
        }
        frames
    }

    /// Frames per layer: [T0, T1, T2].
    fn layers(&self, sent: &Sent) -> [usize; 3] {
        let mut n = [0; 3];
        for ts in self.frames() {
            n[usize::from(sent[&ts])] += 1;
        }
        n
    }
}

/// Frames of each layer among `0..n` of the L1T3 pattern.
fn pattern(from: u32, to: u32) -> [usize; 3] {
    let mut n = [0; 3];
    for f in from..to {
        n[usize::from(l1t3(f))] += 1;
    }
    n
}

fn no_keyframe_requests(h: &H, t: &[Transmit]) {
    assert_eq!(h.r.stats().keyframe_requests, 0, "no keyframe request");
    // The router's own receiver reports (and their RRTRs) are all the publisher gets.
    let requests = t
        .iter()
        .filter(|t| t.destination == addr(0) && classify(&t.contents) == Kind::Rtcp)
        .flat_map(|t| rtcp::parse_compound(&t.contents).unwrap())
        .filter(|p| !matches!(p, RtcpPacket::ReceiverReport(r) if r.ssrc == crate::ROUTER_SSRC))
        .filter(|p| !matches!(p, RtcpPacket::ExtendedReport(x) if x.ssrc == crate::ROUTER_SSRC))
        .count();
    assert_eq!(requests, 0, "nothing but reports sent to the publisher");
}

/// Receivers capped at 8 and 16 frames/s, one uncapped, one capped at 60
/// (above the stream's 30).
fn thins_l1t3(p: Payload) {
    let mut h = H::new();
    capped_call(&mut h, &[Some(8), Some(16), None, Some(60)]);
    h.take();
    let mut sent = Sent::new();
    send_frames(&mut h, p, 0, FRAMES, &mut sent);
    let t = h.take();

    // The rates are known from frame 32 on (the first T0 frame a second
    // of media after frame 0); before that a capped receiver gets T0 only.
    let before = pattern(0, 32);
    let after = pattern(32, FRAMES);
    assert_eq!((before, after), ([8, 8, 16], [22, 22, 44]));

    let eight = got(&t, addr(1));
    assert_eq!(eight.layers(&sent), [30, 0, 0], "max_fps 8: T0 only (7.5 frames/s)");
    let sixteen = got(&t, addr(2));
    assert_eq!(sixteen.layers(&sent), [30, 22, 0], "max_fps 16: T0 and, once measured, T1 (15 frames/s)");
    let all = got(&t, addr(3));
    assert_eq!(all.layers(&sent), [30, 30, 60], "no cap: everything");
    let sixty = got(&t, addr(4));
    assert_eq!(sixty.layers(&sent), [before[0] + after[0], after[1], after[2]], "max_fps 60: everything once measured");

    // The uncapped receiver's packets are the publisher's, numbers untouched.
    assert_eq!(all.video.first().unwrap().0, SeqNo(60_000));
    assert_eq!(all.video.len(), FRAMES as usize * PER_FRAME);
    // Audio is never thinned.
    for g in [&eight, &sixteen, &all, &sixty] {
        assert_eq!(g.audio, FRAMES as usize);
    }
    // Every capped receiver's first packet is the publisher's first one (frame 0 is T0).
    for g in [&eight, &sixteen, &sixty] {
        assert_eq!(g.video.first().unwrap().0, SeqNo(60_000));
    }
    let dropped = (FRAMES as usize - 30) + (FRAMES as usize - 52) + (FRAMES as usize - 96);
    assert_eq!(h.r.stats().frame_rate_dropped, (dropped * PER_FRAME) as u64);
    no_keyframe_requests(&h, &t);
}

#[test]
fn vp8_l1t3_is_thinned_to_each_receivers_cap() {
    thins_l1t3(Payload::Vp8);
}

#[test]
fn av1_l1t3_is_thinned_to_each_receivers_cap() {
    thins_l1t3(Payload::Av1);
}

#[test]
fn a_stream_without_temporal_layers_is_forwarded_whole() {
    for p in [Payload::Vp8Plain, Payload::Av1Plain] {
        let mut h = H::new();
        capped_call(&mut h, &[Some(8), None]);
        h.take();
        let mut sent = Sent::new();
        send_frames(&mut h, p, 0, FRAMES, &mut sent);
        let t = h.take();
        assert_eq!(got(&t, addr(1)).layers(&sent), [FRAMES as usize, 0, 0], "{p:?}: all base layer, all sent");
        assert_eq!(got(&t, addr(2)).layers(&sent), [FRAMES as usize, 0, 0]);
        assert_eq!(h.r.stats().frame_rate_dropped, 0);
        no_keyframe_requests(&h, &t);
    }
}

#[test]
fn a_higher_cap_takes_effect_at_the_next_t0_frame_and_a_lower_one_at_once() {
    let mut h = H::new();
    capped_call(&mut h, &[Some(8)]);
    let mut sent = Sent::new();
    send_frames(&mut h, Payload::Av1, 0, 41, &mut sent);
    // Up at frame 41 (a T2 frame): frames 41 (T2), 42 (T1), 43 (T2) still
    // go unsent, then everything from the T0 frame 44 on.
    set_cap(&mut h, 2, Some(30));
    send_frames(&mut h, Payload::Av1, 41, 61, &mut sent);
    // Down at frame 61 (T2): not sent, nor any frame above T0 from then on.
    set_cap(&mut h, 2, Some(8));
    send_frames(&mut h, Payload::Av1, 61, 81, &mut sent);
    let t = h.take();
    let frames: Vec<u32> = got(&t, addr(1)).frames().iter().map(|ts| (ts - 5000) / TICKS).collect();
    let want: Vec<u32> = (0..41).filter(|f| f % 4 == 0).chain(44..61).chain((61..81).filter(|f| f % 4 == 0)).collect();
    assert_eq!(frames, want);
    no_keyframe_requests(&h, &t);
}

#[test]
fn skipped_frames_shift_the_sequence_without_pausing_the_stream() {
    let mut h = H::new();
    capped_call(&mut h, &[Some(8)]);
    let mut sent = Sent::new();
    send_frames(&mut h, Payload::Vp8, 0, 40, &mut sent);
    let c = h.r.calls.get_mut(&call(1)).unwrap();
    let i = c.index_of(ParticipantId(2)).unwrap();
    let consumer = *c.participants[i].consumers.get(Ssrc(VIDEO)).unwrap();
    assert!(!consumer.paused, "skipping frames does not pause the stream");
    assert_eq!(consumer.offset, 0u16.wrapping_sub((30 * PER_FRAME) as u16), "30 frames of 40 skipped");
}

/// A browser (WHEP leg) capped at 8 frames/s watching a native AV1
/// publisher: only T0, sealed for the leg with gap-free numbers.
#[test]
fn a_whep_leg_with_max_fps_gets_the_base_layer_only() {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    capped_call(&mut h, &[]);
    let mut b =
        Peer::open_edited(&mut h, 5, (call(1), 7, false, Some(1)), dimpl::Config::builder().build().unwrap(), |leg| {
            leg.max_fps = Some(8)
        });
    b.connect_ice(&mut h);
    b.handshake(&mut h);
    h.take();
    let snap = &h.r.snapshot()[0];
    let leg = snap.participants.iter().find(|p| p.participant == ParticipantId(7)).unwrap();
    assert_eq!(leg.max_fps, Some(8), "the admin API shows the cap");
    let requests = h.r.stats().keyframe_requests;
    let mut sent = Sent::new();
    send_frames(&mut h, Payload::Av1, 0, FRAMES, &mut sent);
    let t = h.take();
    let mut video = Vec::new();
    let to = b.addr;
    for t in t.iter().filter(|t| t.destination == to && classify(&t.contents) == Kind::Rtp) {
        let q = b.open_rtp(&t.contents);
        if q.pt == Pt(35) {
            video.push((q.seq, q.timestamp.0, q.marker));
        }
    }
    let g = Got { video, audio: 0 };
    assert_eq!(g.layers(&sent), [30, 0, 0]);
    assert_eq!(h.r.stats().frame_rate_dropped, 90 * PER_FRAME as u64);
    assert_eq!(h.r.stats().keyframe_requests, requests, "no keyframe request from the thinning");
}

#[test]
fn a_publisher_legs_max_fps_is_ignored() {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    Peer::open_edited(&mut h, 5, (call(1), 7, true, None), dimpl::Config::builder().build().unwrap(), |leg| {
        leg.max_fps = Some(8)
    });
    let c = h.r.calls.get(&call(1)).unwrap();
    assert_eq!(c.participants[c.index_of(ParticipantId(7)).unwrap()].max_fps, None);
}

/// A capped receiver NACKs numbers it saw: the router resends the packets
/// it sent under those numbers (mapped back with the offset each was sent
/// with, not only the current one), renumbered as the receiver saw them,
/// and asks the publisher for nothing.
#[test]
fn a_capped_receivers_nack_gets_the_packets_it_saw_back() {
    let mut h = H::with(retransmitting());
    capped_call(&mut h, &[Some(8)]);
    h.take();
    let mut sent = Sent::new();
    send_frames(&mut h, Payload::Vp8, 0, 60, &mut sent);
    let t = h.take();
    let eight = got(&t, addr(1));
    assert_eq!(eight.layers(&sent), [15, 0, 0]);
    // What the receiver got: its number → (timestamp, the bytes' payload).
    let seen: Vec<(SeqNo, Vec<u8>)> = t
        .iter()
        .filter(|t| t.destination == addr(1) && classify(&t.contents) == Kind::Rtp)
        .filter_map(|t| {
            let h = RtpHeader::parse(&t.contents).ok()?;
            (h.ssrc == Ssrc(VIDEO)).then(|| (h.seq, t.contents[h.payload_offset..].to_vec()))
        })
        .collect();
    // The first packet of the frame two kept frames back (sent with an older offset), and the last one sent.
    let picks = [seen[seen.len() - 1 - 2 * PER_FRAME - 2].clone(), seen[seen.len() - 1].clone()];
    let offset_now = h.r.calls[&call(1)].participants[1].consumers.get(Ssrc(VIDEO)).unwrap().offset;
    assert_ne!(offset_now, 0, "the receiver's numbers are shifted");
    let nack = rtcp::Nack::from_lost(Ssrc(0x5000), Ssrc(VIDEO), &[picks[0].0, picks[1].0]);
    h.input(addr(1), rtcp::write_compound(&[RtcpPacket::Nack(nack)]).unwrap());
    let t = h.take();
    assert!(t.iter().all(|t| t.destination == addr(1)), "nothing to the publisher: {t:?}");
    let back: Vec<(SeqNo, Vec<u8>)> = t
        .iter()
        .map(|t| {
            let h = RtpHeader::parse(&t.contents).unwrap();
            (h.seq, t.contents[h.payload_offset..].to_vec())
        })
        .collect();
    assert_eq!(back, picks.to_vec(), "the same packets, as the receiver saw them");
    let s = h.r.stats();
    assert_eq!((s.retransmitted, s.nack_answered, s.nack_missed, s.nacks), (2, 2, 0, 0));
}

/// The router's SRs to a capped receiver (its numbers shift over skipped
/// frames) and to an uncapped one: both in the publisher's clock, audio and
/// video alike, each counting the packets and octets that receiver got.
#[test]
fn srs_keep_the_publishers_clock_and_count_what_each_receiver_got() {
    let mut h = H::new();
    capped_call(&mut h, &[Some(8), None]);
    h.take();
    let ntp = 0xE000_0000_0000_0000u64;
    // The publisher's SRs, at the instant of its first frame: video at RTP 5000, audio at 0.
    for (ssrc, rtp_time) in [(VIDEO, 5_000), (AUDIO, 0)] {
        let sr = rtcp::SenderReport { ssrc: Ssrc(ssrc), ntp_time: ntp, rtp_time, ..Default::default() };
        h.input(addr(0), rtcp::write_compound(&[RtcpPacket::SenderReport(sr)]).unwrap());
    }
    let mut sent = Sent::new();
    send_frames(&mut h, Payload::Vp8, 0, FRAMES, &mut sent);
    let t = h.take();
    let mut last_video_count = Vec::new();
    for to in [addr(1), addr(2)] {
        // (packets, payload octets) so far, video and audio.
        let (mut video, mut audio) = ((0u32, 0u32), (0u32, 0u32));
        let mut srs = 0;
        for t in t.iter().filter(|t| t.destination == to) {
            if classify(&t.contents) == Kind::Rtp {
                let h = RtpHeader::parse(&t.contents).unwrap();
                let c = if h.ssrc == Ssrc(VIDEO) { &mut video } else { &mut audio };
                *c = (c.0 + 1, c.1 + h.payload_len as u32);
                continue;
            }
            for p in rtcp::parse_compound(&t.contents).unwrap() {
                let RtcpPacket::SenderReport(sr) = p else { continue };
                let (count, rate, base) =
                    if sr.ssrc == Ssrc(VIDEO) { (video, 90_000, 5_000) } else { (audio, 48_000, 0) };
                assert_eq!((sr.packet_count, sr.octet_count), count, "{to}: {sr:?}");
                // On the publisher's clock: RTP = base + (NTP − its SR's NTP) · rate.
                let since_ns = (u128::from(sr.ntp_time - ntp) * 1_000_000_000) >> 32;
                let want = base + (since_ns * rate / 1_000_000_000) as u32;
                assert!((sr.rtp_time.wrapping_sub(want) as i32).abs() <= 1, "{to}: {} vs {want}", sr.rtp_time);
                srs += 1;
                if sr.ssrc == Ssrc(VIDEO) {
                    last_video_count.push((to, sr.packet_count));
                }
            }
        }
        assert_eq!(srs, 6, "{to}: audio and video, every second for 4 s from a second after the join");
    }
    // The capped receiver got a quarter of the frames (T0 only), and its SRs said so.
    let last = |a| last_video_count.iter().rev().find(|c| c.0 == a).unwrap().1;
    assert!(last(addr(1)) * 3 < last(addr(2)), "{last_video_count:?}");
}
