//! Transport-wide congestion control feedback: vectors, round trips,
//! malformed input, and the recorder.

use super::*;
use crate::ids::SeqNo;
use proptest::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn fb(base: u16, reference_time: i32, fb_count: u8, deltas: Vec<Option<i16>>) -> TransportFeedback {
    TransportFeedback {
        sender_ssrc: Ssrc(1),
        media_ssrc: Ssrc(2),
        base_seq: SeqNo(base),
        reference_time,
        fb_count,
        deltas,
    }
}

fn write(t: &TransportFeedback) -> Vec<u8> {
    let mut out = Vec::new();
    RtcpPacket::TransportFeedback(t.clone()).write_to(&mut out).unwrap();
    out
}

fn parse(b: &[u8]) -> Result<TransportFeedback, RtcpError> {
    match parse_one(b)? {
        (RtcpPacket::TransportFeedback(t), n) if n == b.len() => Ok(t),
        other => panic!("not one transport feedback: {other:?}"),
    }
}

/// Parses, checks the model, and checks the writer gives the same bytes back.
fn vector(b: &[u8], want: &TransportFeedback) {
    assert_eq!(parse(b).as_ref(), Ok(want));
    assert_eq!(write(want), b);
}

/// A Chrome feedback packet as Wireshark dissects it, from the test data of
/// olivermichel/webrtc-analysis (`test/include/data.h`, `twcc_pkt1`): one
/// run-length chunk of 9 small deltas, then RFC 3550 padding (P bit, count 1).
#[test]
fn chrome_capture_vector() {
    let b = [
        0xaf, 0xcd, 0x00, 0x07, 0x00, 0x00, 0x00, 0x01, 0xdd, 0x58, 0x6e, 0xb6, 0x00, 0x01, 0x00, 0x09, 0x5e, 0x91,
        0x10, 0x00, 0x20, 0x09, 0x1c, 0x0c, 0x2c, 0x38, 0x00, 0x04, 0x00, 0x08, 0x18, 0x01,
    ];
    let mut want = fb(1, 6_197_520, 0, [0x1c, 0x0c, 0x2c, 0x38, 0, 4, 0, 8, 0x18].map(Some).to_vec());
    want.media_ssrc = Ssrc(0xdd58_6eb6);
    vector(&b, &want);
    // 7 ms after the reference time, then 3 ms after that.
    let t0 = 6_197_520 * 64_000;
    let a: Vec<_> = want.arrivals().take(2).collect();
    assert_eq!(a, vec![(SeqNo(1), Some(t0 + 7_000)), (SeqNo(2), Some(t0 + 10_000))]);
}

/// Packets from pion/rtcp's `transport_layer_cc_test.go`, as ported to
/// webrtc-rs/webrtc (`crates/rtcp/src/transport_layer_cc/transport_layer_cc_test.rs`,
/// `test_transport_layer_cc_unmarshal`, "example1" and "example4").
#[test]
fn pion_vectors() {
    let ex1 = [
        0xaf, 0xcd, 0x0, 0x5, 0xfa, 0x17, 0xfa, 0x17, 0x43, 0x3, 0x2f, 0xa0, 0x0, 0x99, 0x0, 0x1, 0x3d, 0xe8, 0x2,
        0x17, 0x20, 0x1, 0x94, 0x1,
    ];
    let mut want = fb(153, 4_057_090, 23, vec![Some(148)]); // 37 ms
    want.sender_ssrc = Ssrc(4_195_875_351);
    want.media_ssrc = Ssrc(1_124_282_272);
    vector(&ex1, &want);

    let ex4 = [
        0xaf, 0xcd, 0x0, 0x7, 0xfa, 0x17, 0xfa, 0x17, 0x19, 0x3d, 0xd8, 0xbb, 0x0, 0x4, 0x0, 0x7, 0x10, 0x63, 0x6e,
        0x1, 0x20, 0x7, 0x4c, 0x24, 0x24, 0x10, 0xc, 0xc, 0x10, 0x0, 0x0, 0x3,
    ];
    // 19, 9, 9, 4, 3, 3 and 4 ms.
    let mut want = fb(4, 1_074_030, 1, [76, 36, 36, 16, 12, 12, 16].map(Some).to_vec());
    want.sender_ssrc = Ssrc(4_195_875_351);
    want.media_ssrc = Ssrc(423_483_579);
    vector(&ex4, &want);
}

/// pion's "example3" (same source): large deltas in run-length chunks, which
/// the writer packs in one 2-bit vector instead. The packet sets the P bit
/// without padding (RFC 3550 padding ends in a non-zero count), so the
/// feedback control information is parsed alone.
#[test]
fn pion_large_deltas_in_run_length_chunks() {
    let fci = [
        0x1, 0x74, 0x0, 0x6, 0x45, 0xb1, 0x5a, 0x40, 0x40, 0x2, 0x20, 0x04, 0x1f, 0xfe, 0x1f, 0x9a, 0xd0, 0x0, 0xd0,
        0x0,
    ];
    let t = TransportFeedback::parse(Ssrc(1), Ssrc(2), &fci).unwrap();
    assert_eq!(t, fb(372, 4_567_386, 64, [8190, 8090, 208, 0, 208, 0].map(Some).to_vec()));
    let b = write(&t);
    assert_eq!(&b[20..22], &[0xe9, 0x54]); // 2-bit vector: large, large, small x 4
    assert_eq!(parse(&b), Ok(t));
}

/// pion's "example2" (same source) uses status 3 ("received without delta"),
/// reserved in -01 and rejected by libwebrtc: malformed here too.
#[test]
fn reserved_status_is_malformed() {
    let ex2 = [
        0xaf, 0xcd, 0x0, 0x6, 0xfa, 0x17, 0xfa, 0x17, 0x19, 0x3d, 0xd8, 0xbb, 0x1, 0x74, 0x0, 0xe, 0x45, 0xb1, 0x5a,
        0x40, 0xd8, 0x0, 0xf0, 0xff, 0xd0, 0x0, 0x0, 0x3,
    ];
    assert_eq!(parse_compound(&ex2), Err(RtcpError::Malformed));
    // Run-length chunk of status 3.
    let fci = [0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x01, 0, 0];
    assert_eq!(TransportFeedback::parse(Ssrc(1), Ssrc(2), &fci), Err(RtcpError::Malformed));
}

/// Derived by hand from the draft: the 1-bit status vector of §3.1.4
/// (`1|0|0 1 1 1 1 1 0 0 0 1 1 1 0 0` = 0x9F1C) across a sequence number
/// wrap, with a negative reference time, and RFC 3550 padding of 2 bytes.
#[test]
fn draft_one_bit_vector() {
    let b = [
        0xaf, 0xcd, 0x00, 0x07, 0, 0, 0, 1, 0, 0, 0, 2, // header, SSRCs
        0xff, 0xfe, 0x00, 0x0e, // base 65534, 14 statuses
        0xff, 0xff, 0xff, 0x05, // reference time -1 (x 64 ms), feedback count 5
        0x9f, 0x1c, // 1-bit vector
        0x04, 0x00, 0xff, 0x01, 0x02, 0x64, 0x00, 0x08, // 8 small deltas
        0x00, 0x02, // padding
    ];
    let s = |d| Some(d);
    let want =
        fb(0xfffe, -1, 5, vec![None, s(4), s(0), s(255), s(1), s(2), None, None, None, s(100), s(0), s(8), None, None]);
    vector(&b, &want);
    let a: Vec<_> = want.arrivals().take(3).collect();
    assert_eq!(a, vec![(SeqNo(0xfffe), None), (SeqNo(0xffff), Some(-63_000)), (SeqNo(0), Some(-63_000))]);
}

/// Derived by hand: a 2-bit vector (`11|01 10 00 10 01 00 00` = 0xD890) with
/// negative and above-255 deltas in two bytes; 28 bytes, no padding.
#[test]
fn two_bit_vector() {
    let b = [
        0x8f, 0xcd, 0x00, 0x06, 0, 0, 0, 1, 0, 0, 0, 2, 0x00, 0x0a, 0x00, 0x05, 0, 0, 0, 0, 0xd8, 0x90, 0x01, 0xff,
        0xff, 0x01, 0x2c, 0x00,
    ];
    vector(&b, &fb(10, 0, 0, vec![Some(1), Some(-1), None, Some(300), Some(0)]));
}

/// Runs longer than 13 bits split; a symbol after a long run ends it.
#[test]
fn long_runs() {
    let mut deltas = vec![None; 9000];
    deltas.push(Some(1));
    let t = fb(0, 0, 0, deltas);
    let b = write(&t);
    assert_eq!(&b[20..26], &[0x1f, 0xff, 0x03, 0x29, 0x20, 0x01]);
    assert_eq!(&b[26..], &[0x01, 0x01]); // the delta, one byte of padding
    assert_eq!(b[0], 0xaf);
    assert_eq!(parse(&b), Ok(t));
}

/// The chunk choice follows libwebrtc: 14 statuses without large deltas in
/// one 1-bit vector, 7 with one in a 2-bit vector, runs as runs.
#[test]
fn chunk_choice() {
    let chunks = |deltas: Vec<Option<i16>>| {
        let b = write(&fb(0, 0, 0, deltas.clone()));
        let n = deltas.iter().flatten().map(|d| if (0..=255).contains(d) { 1 } else { 2 }).sum::<usize>();
        let pad = if b[0] & 0x20 != 0 { b[b.len() - 1] as usize } else { 0 };
        let chunk_bytes = b.len() - 20 - n - pad;
        b[20..20 + chunk_bytes].chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect::<Vec<_>>()
    };
    let alt: Vec<_> = (0..14).map(|i| (i % 2 == 0).then_some(3)).collect();
    assert_eq!(chunks(alt), vec![0xaaaa]);
    let mut mixed = vec![Some(-5)];
    mixed.extend(std::iter::repeat_n(Some(7), 20));
    // A 2-bit vector of 7 (large, then 6 small), then a run of 14 small.
    assert_eq!(chunks(mixed), vec![0xe555, 0x200e]);
    assert_eq!(chunks(vec![Some(1000); 3]), vec![0x4003]);
    // 10 small then a large: the run of 10 ends, the large one is a run of 1.
    let mut tail = vec![Some(1); 10];
    tail.push(Some(-1));
    assert_eq!(chunks(tail), vec![0x200a, 0x4001]);
    // Not all the same: 2-bit vector of the first 7, then the last 4.
    let mut tail = vec![Some(1), None, Some(1), Some(1), Some(1), Some(1), Some(1), Some(1), Some(1), Some(1)];
    tail.push(Some(-1));
    assert_eq!(chunks(tail), vec![0xd155, 0xd580]);
}

#[test]
fn writer_range_errors() {
    let mut out = vec![9];
    for bad in [fb(0, 0, 0, vec![]), fb(0, 1 << 23, 0, vec![None]), fb(0, -(1 << 23) - 1, 0, vec![None])] {
        assert_eq!(RtcpPacket::TransportFeedback(bad).write_to(&mut out), Err(RtcpError::Range));
    }
    assert_eq!(out, vec![9]);
    let big = fb(0, 0, 0, vec![Some(-1); 65_536]);
    assert_eq!(RtcpPacket::TransportFeedback(big).write_to(&mut out), Err(RtcpError::Range));
    assert_eq!(out, vec![9]);
    // The extremes fit.
    for t in [
        fb(0, TWCC_REFERENCE_TIME_MIN, 255, vec![Some(i16::MIN)]),
        fb(0, TWCC_REFERENCE_TIME_MAX, 0, vec![Some(i16::MAX)]),
    ] {
        assert_eq!(parse(&write(&t)), Ok(t));
    }
}

#[test]
fn malformed_fci() {
    let p = |fci: &[u8]| TransportFeedback::parse(Ssrc(1), Ssrc(2), fci);
    assert_eq!(p(&[0, 0, 0, 1, 0, 0, 0]), Err(RtcpError::Malformed)); // short header
    assert_eq!(p(&[0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0x01, 5, 0]), Err(RtcpError::Malformed)); // no statuses
    assert_eq!(p(&[0, 0, 0, 20, 0, 0, 0, 0, 0x00, 0x0a]), Err(RtcpError::Malformed)); // 20 statuses, chunks for 10
    assert_eq!(p(&[0, 0, 0, 3, 0, 0, 0, 0, 0x20, 0x03, 1, 2]), Err(RtcpError::Malformed)); // 3 deltas, 2 there
    assert_eq!(p(&[0, 0, 0, 1, 0, 0, 0, 0, 0x40, 0x01, 1]), Err(RtcpError::Malformed)); // large delta cut
    assert_eq!(p(&[0, 0, 0, 1, 0, 0, 0, 0, 0x20, 0x01, 1, 0, 0, 0, 0, 0]), Err(RtcpError::Malformed)); // junk
    assert_eq!(p(&[0, 0, 0, 1, 0, 0, 0, 0, 0x20, 0x01, 1, 0, 0, 0]).map(|t| t.deltas), Ok(vec![Some(1)]));
    // In a compound, a malformed feedback fails the datagram like any known packet.
    assert_eq!(parse_compound(&[0x8f, 0xcd, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0]), Err(RtcpError::Malformed));
}

/// Where the meaningful bytes of a written packet end (padding excluded).
fn meaningful_len(b: &[u8]) -> usize {
    if b[0] & 0x20 != 0 {
        b.len() - b[b.len() - 1] as usize
    } else {
        b.len()
    }
}

/// Every truncation of a valid packet is an error, never a panic: of the
/// datagram (framing), and of the feedback control information alone.
fn check_truncations(t: &TransportFeedback) {
    let b = write(t);
    for n in 0..b.len() {
        assert!(parse_one(&b[..n]).is_err(), "datagram cut at {n}");
    }
    let fci = &b[12..meaningful_len(&b)];
    for n in 0..fci.len() {
        assert!(TransportFeedback::parse(Ssrc(1), Ssrc(2), &fci[..n]).is_err(), "FCI cut at {n}");
    }
    assert_eq!(TransportFeedback::parse(t.sender_ssrc, t.media_ssrc, fci).as_ref(), Ok(t));
}

#[test]
fn truncations() {
    check_truncations(&fb(0xfffe, -1, 5, vec![None, Some(4), Some(-300), None, Some(1)]));
    check_truncations(&fb(7, 3, 0, vec![Some(2); 40]));
}

fn arb_deltas() -> impl Strategy<Value = Vec<Option<i16>>> {
    let entry = prop_oneof![
        3 => Just(None),
        6 => (0i16..=255).prop_map(Some),
        1 => any::<i16>().prop_map(Some),
        1 => (-64i16..0).prop_map(Some),
    ];
    proptest::collection::vec((entry, prop_oneof![4 => Just(1usize), 1 => 2usize..40]), 1..120)
        .prop_map(|runs| runs.into_iter().flat_map(|(e, n)| std::iter::repeat_n(e, n)).collect())
}

fn arb_feedback() -> impl Strategy<Value = TransportFeedback> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
        TWCC_REFERENCE_TIME_MIN..=TWCC_REFERENCE_TIME_MAX,
        any::<u8>(),
        arb_deltas(),
    )
        .prop_map(|(s, m, base, r, c, deltas)| TransportFeedback {
            sender_ssrc: Ssrc(s),
            media_ssrc: Ssrc(m),
            base_seq: SeqNo(base),
            reference_time: r,
            fb_count: c,
            deltas,
        })
}

proptest! {
    #[test]
    fn roundtrip(t in arb_feedback()) {
        let b = write(&t);
        prop_assert_eq!(b.len() % 4, 0);
        prop_assert_eq!(b[0] & 0x1f, 15);
        // The size the recorder plans with is exact.
        let mut size = twcc::FeedbackSizer::new();
        for &d in &t.deltas {
            prop_assert_eq!(size.size_with(d), { size.add(d); size.size() });
        }
        prop_assert_eq!(size.size(), b.len());
        let back = parse(&b).unwrap();
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(write(&back), b);
        // In a compound with other packets.
        let pkts = vec![RtcpPacket::Pli(Pli::default()), RtcpPacket::TransportFeedback(t), RtcpPacket::Pli(Pli::default())];
        prop_assert_eq!(parse_compound(&write_compound(&pkts).unwrap()).unwrap(), pkts);
    }

    #[test]
    fn truncated_never_parse(t in arb_feedback()) {
        check_truncations(&t);
    }

    #[test]
    fn garbage_never_panics(count in 0u16..64, chunks_and_deltas in proptest::collection::vec(any::<u8>(), 0..80)) {
        let mut fci = vec![0, 1];
        fci.extend_from_slice(&count.to_be_bytes());
        fci.extend_from_slice(&[0x80, 0, 0, 1]);
        fci.extend_from_slice(&chunks_and_deltas);
        if let Ok(t) = TransportFeedback::parse(Ssrc(1), Ssrc(2), &fci) {
            prop_assert_eq!(t.deltas.len(), count as usize);
            prop_assert_eq!(parse(&write(&t)), Ok(t));
        }
    }
}

// ---- the recorder ----

/// Every feedback packet in a poll's output, each checked to re-encode to the same bytes.
fn feedbacks(out: &[u8]) -> Vec<TransportFeedback> {
    let pkts = parse_compound(out).unwrap();
    pkts.into_iter()
        .map(|p| {
            let RtcpPacket::TransportFeedback(t) = p else { panic!("{p:?}") };
            assert!(write(&t).len() <= TWCC_MAX_FEEDBACK_BYTES);
            t
        })
        .collect()
}

fn poll(r: &mut TwccRecorder, now: Instant) -> Vec<TransportFeedback> {
    let mut out = Vec::new();
    if !r.poll_feedback(now, 1, 2, &mut out) {
        assert!(out.is_empty());
        return Vec::new();
    }
    assert!(out.len() <= TWCC_MAX_FEEDBACK_BYTES);
    feedbacks(&out)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn recorder_basic_loss_and_deadlines() {
    let t0 = Instant::now();
    let mut r = TwccRecorder::new();
    assert_eq!(r.next_deadline(), None);
    assert!(poll(&mut r, t0 + ms(1000)).is_empty());
    for (seq, at) in [(100u16, 0u64), (101, 1), (103, 3), (104, 70)] {
        r.record(seq, t0 + ms(at));
    }
    // Due at the first arrival (no feedback yet); a poll before it writes nothing.
    assert_eq!(r.next_deadline(), Some(t0));
    let f = poll(&mut r, t0 + ms(80));
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].base_seq, f[0].fb_count, f[0].reference_time), (SeqNo(100), 0, 0));
    let at: Vec<_> = f[0].arrivals().map(|(s, a)| (s.0, a)).collect();
    assert_eq!(at, vec![(100, Some(0)), (101, Some(1000)), (102, None), (103, Some(3000)), (104, Some(70_000))]);
    assert_eq!(f[0].deltas[4], Some(268)); // 67 ms: a large delta
    assert_eq!(r.next_deadline(), None);
    assert!(poll(&mut r, t0 + ms(90)).is_empty());
    // Next one due 50 ms after the last feedback.
    r.record(105, t0 + ms(90));
    r.record(105, t0 + ms(95)); // duplicate: ignored
    assert_eq!(r.next_deadline(), Some(t0 + ms(130)));
    assert!(poll(&mut r, t0 + ms(129)).is_empty());
    let f = poll(&mut r, t0 + ms(130));
    assert_eq!(f[0].fb_count, 1);
    assert_eq!(f[0].arrivals().map(|(s, a)| (s.0, a)).collect::<Vec<_>>(), vec![(105, Some(90_000))]);
    // A quiet period: the next arrival is due at once.
    r.record(106, t0 + ms(400));
    assert_eq!(r.next_deadline(), Some(t0 + ms(400)));
}

#[test]
fn recorder_reordering_wrap_and_late_packets() {
    let t0 = Instant::now();
    let mut r = TwccRecorder::new();
    r.record(65534, t0);
    r.record(0, t0 + ms(1));
    r.record(65535, t0 + ms(2)); // reordered across the wrap
    r.record(2, t0 + ms(3));
    let f = poll(&mut r, t0 + ms(3));
    let at: Vec<_> = f[0].arrivals().map(|(s, a)| (s.0, a)).collect();
    assert_eq!(at, vec![(65534, Some(0)), (65535, Some(2000)), (0, Some(1000)), (1, None), (2, Some(3000))]);
    assert_eq!(f[0].deltas[2], Some(-4)); // negative: large
                                          // 1 arrives after being reported missing: the next feedback starts at it.
    r.record(1, t0 + ms(10));
    r.record(3, t0 + ms(11));
    let f = poll(&mut r, t0 + ms(60));
    assert_eq!(f.len(), 1);
    let at: Vec<_> = f[0].arrivals().map(|(s, a)| (s.0, a)).collect();
    assert_eq!(at, vec![(1, Some(10_000)), (2, Some(3000)), (3, Some(11_000))]);
    // Packets before the first one recorded are reported too.
    let mut r = TwccRecorder::new();
    r.record(10, t0);
    r.record(8, t0 + ms(1));
    let at: Vec<_> = poll(&mut r, t0 + ms(1))[0].arrivals().map(|(s, a)| (s.0, a)).collect();
    assert_eq!(at, vec![(8, Some(1000)), (9, None), (10, Some(0))]);
}

/// Gaps beyond what a 16-bit delta holds (8.19 s) split the feedback.
#[test]
fn recorder_large_gaps() {
    let t0 = Instant::now();
    let mut r = TwccRecorder::new();
    r.record(1, t0);
    r.record(2, t0 + ms(9_000));
    r.record(3, t0 + ms(9_001));
    r.record(4, t0); // 9 s back in time
    let f = poll(&mut r, t0 + ms(9_001));
    assert_eq!(f.len(), 3);
    let all: Vec<_> = f.iter().flat_map(|t| t.arrivals().map(|(s, a)| (s.0, a)).collect::<Vec<_>>()).collect();
    assert_eq!(all, vec![(1, Some(0)), (2, Some(9_000_000)), (3, Some(9_001_000)), (4, Some(0))]);
    assert_eq!(f.iter().map(|t| t.fb_count).collect::<Vec<_>>(), vec![0, 1, 2]);
}

/// Many packets: each poll writes at most TWCC_MAX_FEEDBACK_BYTES, the rest is due at once.
#[test]
fn recorder_size_limit() {
    let t0 = Instant::now();
    let mut r = TwccRecorder::new();
    for i in 0..3000u16 {
        r.record(i, t0 + Duration::from_micros(u64::from(i) * 10));
    }
    let mut seen = Vec::new();
    let now = t0 + ms(30);
    for _ in 0..10 {
        let f = poll(&mut r, now);
        if f.is_empty() {
            break;
        }
        for t in &f {
            seen.extend(t.arrivals().map(|(s, a)| (s.0, a.unwrap())));
        }
        assert!(r.next_deadline().is_none_or(|d| d == now));
    }
    assert_eq!(r.next_deadline(), None);
    assert_eq!(seen.len(), 3000);
    for (i, (s, a)) in seen.into_iter().enumerate() {
        assert_eq!(s, i as u16);
        // 10 µs steps rounded to 250 µs ticks, without drift.
        assert!((a - i as i64 * 10).abs() <= 125, "{i}: {a}");
    }
}

#[test]
fn recorder_memory_is_bounded() {
    let t0 = Instant::now();
    let mut r = TwccRecorder::new();
    // Never polled: bounded by the number of sequence numbers.
    for i in 0..100_000u32 {
        r.record(i as u16, t0 + Duration::from_micros(u64::from(i)));
    }
    assert!(r.history_len() <= TWCC_MAX_HISTORY_PACKETS);
    // A jump far ahead forgets what is behind it.
    r.record(40_000, t0 + ms(200));
    assert!(r.history_len() <= TWCC_MAX_HISTORY_PACKETS);
    let mut out = Vec::new();
    let mut polls = 0;
    while r.poll_feedback(t0 + ms(200), 1, 2, &mut out) {
        polls += 1;
        assert!(polls < 100);
    }
    // Polled regularly: reported packets older than TWCC_HISTORY are forgotten.
    for i in 0..2000u64 {
        let now = t0 + ms(1000 + i);
        r.record((i % 65536) as u16 ^ 0x8000, now);
        r.poll_feedback(now, 1, 2, &mut out);
    }
    assert!(r.history_len() <= 600, "{}", r.history_len());
}

/// Checks each arrival reported against the first arrival of that sequence
/// number (in µs after the first packet recorded, the recorder's epoch).
fn check_reported(
    f: Vec<TransportFeedback>,
    first: &HashMap<u16, (i64, i64)>,
    reported: &mut HashMap<u16, i64>,
) -> Result<(), TestCaseError> {
    for t in f {
        for (s, a) in t.arrivals() {
            if let Some(a) = a {
                let want = first[&s.0].1;
                prop_assert!((a - want).abs() <= 125, "seq {} at {} want {}", s.0, a, want);
                reported.insert(s.0, a);
            }
        }
    }
    Ok(())
}

/// One step of a random arrival pattern: sequence number step, time step in µs, poll or not.
fn arb_step() -> impl Strategy<Value = (i16, i64, bool)> {
    let seq = prop_oneof![12 => Just(1i16), 2 => 2i16..20, 2 => -10i16..0, 1 => Just(0)];
    let time = prop_oneof![10 => 0i64..20_000, 2 => 64_000i64..10_000_000, 1 => -5_000i64..0];
    (seq, time, proptest::bool::weighted(0.2))
}

proptest! {
    /// Random arrivals (loss, reordering, duplicates, wrap, large and negative
    /// time steps): every feedback parses, every reported arrival is the first
    /// arrival of that packet to within half a tick, every packet that was the
    /// highest when it arrived is reported received, and nothing stays due.
    #[test]
    fn recorder_random_patterns(start in any::<u16>(), steps in proptest::collection::vec(arb_step(), 1..200)) {
        let t0 = Instant::now() + Duration::from_secs(1000);
        let at = |us: i64| if us >= 0 { t0 + Duration::from_micros(us as u64) } else { t0 - Duration::from_micros(-us as u64) };
        let mut r = TwccRecorder::new();
        let (mut seq, mut us, mut clock) = (i64::from(start), 0i64, 0i64);
        // Sequence number -> (first arrival, µs after the very first packet).
        let mut first: HashMap<u16, (i64, i64)> = HashMap::new();
        let mut epoch = None;
        let mut in_order = Vec::new();
        let mut highest = i64::MIN;
        let mut reported: HashMap<u16, i64> = HashMap::new();
        for (ds, dt, p) in steps {
            seq += i64::from(ds);
            us += dt;
            clock = clock.max(us);
            let s = seq as u16;
            let e = *epoch.get_or_insert(us);
            first.entry(s).or_insert((us, us - e));
            if seq > highest {
                highest = seq;
                in_order.push(s);
            }
            r.record(s, at(us));
            if p || r.next_deadline().is_some_and(|d| d <= at(clock)) {
                check_reported(poll(&mut r, at(clock)), &first, &mut reported)?;
            }
        }
        for _ in 0..200 {
            let Some(d) = r.next_deadline() else { break };
            let now = d.max(at(clock));
            check_reported(poll(&mut r, now), &first, &mut reported)?;
        }
        prop_assert_eq!(r.next_deadline(), None);
        for s in in_order {
            prop_assert!(reported.contains_key(&s), "seq {} never reported", s);
        }
    }
}
