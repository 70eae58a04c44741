use super::obu::{is_sent, OBU_EXTENSION_BIT, OBU_HAS_SIZE_BIT};
use super::*;
use corecast_proto::{MediaTime, SeqNo};
use proptest::prelude::*;

/// Sized OBU header byte for a type.
fn hs(t: u8) -> u8 {
    (t << 3) | OBU_HAS_SIZE_BIT
}
/// Element (unsized) OBU header byte for a type.
fn he(t: u8) -> u8 {
    t << 3
}

fn sized(t: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![hs(t)];
    write_leb128(payload.len() as u64, &mut v);
    v.extend_from_slice(payload);
    v
}

/// A key frame OBU payload: show_existing_frame=0, frame_type=KEY (0).
fn key_payload(n: usize) -> Vec<u8> {
    let mut p = vec![0x10; n];
    p[0] = 0x10;
    p
}

/// An inter frame OBU payload: show_existing_frame=0, frame_type=INTER (1).
fn inter_payload(n: usize) -> Vec<u8> {
    let mut p = vec![0x55; n];
    p[0] = 0x30;
    p
}

fn key_tu(n: usize) -> Vec<u8> {
    let mut tu = TEMPORAL_DELIMITER.to_vec();
    tu.extend(sized(OBU_SEQUENCE_HEADER, &[0, 0, 0, 0x0a, 0x0b]));
    tu.extend(sized(OBU_FRAME, &key_payload(n)));
    tu
}

fn inter_tu(n: usize) -> Vec<u8> {
    let mut tu = TEMPORAL_DELIMITER.to_vec();
    tu.extend(sized(OBU_FRAME, &inter_payload(n)));
    tu
}

fn feed(d: &mut Depacketizer, seq: &mut u16, ts: u32, payloads: &[Vec<u8>]) {
    for (i, p) in payloads.iter().enumerate() {
        d.handle_packet(SeqNo(*seq), MediaTime(ts), i + 1 == payloads.len(), p);
        *seq = seq.wrapping_add(1);
    }
}

#[test]
fn leb128_vectors() {
    for (v, bytes) in [
        (0u64, &[0x00u8][..]),
        (1, &[0x01]),
        (127, &[0x7f]),
        (128, &[0x80, 0x01]),
        (300, &[0xac, 0x02]),
        (16384, &[0x80, 0x80, 0x01]),
    ] {
        let mut out = Vec::new();
        write_leb128(v, &mut out);
        assert_eq!(out, bytes, "{v}");
        assert_eq!(leb128_len(v), bytes.len());
        assert_eq!(read_leb128(bytes), Ok((v, bytes.len())));
    }
    // Non-minimal encodings are valid (AV1 spec §4.10.5).
    assert_eq!(read_leb128(&[0x85, 0x80, 0x00]), Ok((5, 3)));
    assert_eq!(read_leb128(&[0x80, 0x80]), Err(Av1Error::Leb128));
    assert_eq!(read_leb128(&[0x80; 9]), Err(Av1Error::Leb128));
}

/// RTP spec §4.4/§4.5: one packet, W=2, N=1: a sequence header element
/// with a length field, then a frame element taking the rest. The
/// temporal delimiter is not sent; size fields are removed.
#[test]
fn packetize_single_packet_vector() {
    let tu = key_tu(4);
    let mut out = Vec::new();
    assert_eq!(Packetizer::new(1200).unwrap().packetize(&tu, &mut out), Ok(1));
    let expected = vec![
        0b0010_1000, // Z=0 Y=0 W=2 N=1
        6,           // element 1 length
        he(OBU_SEQUENCE_HEADER),
        0,
        0,
        0,
        0x0a,
        0x0b,
        he(OBU_FRAME), // element 2: the rest of the packet
        0x10,
        0x10,
        0x10,
        0x10,
    ];
    assert_eq!(out, vec![expected]);
}

/// RTP spec §4.4: an OBU fragmented over three packets: Y=1 on the
/// first, Z=1 Y=1 on the middle, Z=1 on the last; W=1 everywhere.
#[test]
fn packetize_fragment_vector() {
    let mut tu = TEMPORAL_DELIMITER.to_vec();
    tu.extend(sized(OBU_FRAME, &inter_payload(20)));
    let mut out = Vec::new();
    assert_eq!(Packetizer::new(8).unwrap().packetize(&tu, &mut out), Ok(3));
    // 21 element bytes, 7 per packet (W=1: the only element has no length field).
    assert_eq!(out[0][0], 0b0101_0000);
    assert_eq!(out[1][0], 0b1101_0000);
    assert_eq!(out[2][0], 0b1001_0000);
    for p in &out {
        assert_eq!(p.len(), 8);
    }
    let mut elem = Vec::new();
    for p in &out {
        elem.extend_from_slice(&p[1..]);
    }
    // W=1: no length fields at all.
    assert_eq!(elem[0], he(OBU_FRAME));
    assert_eq!(&elem[1..], &inter_payload(20)[..]);
}

/// Depacketizer on hand-built payloads in the spec's layouts: W=0 with
/// all lengths, an OBU kept with its size field (allowed for senders),
/// and a fragmented OBU.
#[test]
fn depacketize_hand_built() {
    let sh = [he(OBU_SEQUENCE_HEADER), 1, 2, 3];
    let fr = [he(OBU_FRAME), 0x10, 0xaa, 0xbb, 0xcc];
    // Packet 1: Y=1 W=0 N=1: [len sh][sh][len frag][frame part 1].
    let mut p1 = vec![0b0100_1000, sh.len() as u8];
    p1.extend_from_slice(&sh);
    p1.push(3);
    p1.extend_from_slice(&fr[..3]);
    // Packet 2: Z=1 W=2: [len][frame part 2][metadata OBU with its size field kept].
    let mut p2 = vec![0b1010_0000, 2];
    p2.extend_from_slice(&fr[3..]);
    p2.extend(sized(OBU_METADATA, &[9, 9]));
    let mut d = Depacketizer::new();
    assert!(d.poll_keyframe_request(), "stream start asks for a keyframe");
    let mut seq = 65535;
    feed(&mut d, &mut seq, 1000, &[p1, p2]);
    let f = d.poll_frame().expect("frame");
    let mut expected = TEMPORAL_DELIMITER.to_vec();
    expected.extend(sized(OBU_SEQUENCE_HEADER, &[1, 2, 3]));
    expected.extend(sized(OBU_FRAME, &[0x10, 0xaa, 0xbb, 0xcc]));
    expected.extend(sized(OBU_METADATA, &[9, 9]));
    assert_eq!(f, Av1Frame { timestamp: MediaTime(1000), data: expected, keyframe: true });
    assert!(d.poll_frame().is_none());
    assert!(!d.waiting_for_keyframe());
    assert!(!d.poll_keyframe_request());
}

#[test]
fn loss_requests_keyframe_and_skips_until_one() {
    let p = Packetizer::new(100).unwrap();
    let mut d = Depacketizer::new();
    let _ = d.poll_keyframe_request();
    let mut seq = 10;
    let mut out = Vec::new();
    p.packetize(&inter_tu(50), &mut out).unwrap();
    feed(&mut d, &mut seq, 0, &out);
    assert!(d.poll_frame().is_none(), "inter frame before any keyframe is skipped");
    assert_eq!(d.stats().skipped_frames, 1);

    out.clear();
    p.packetize(&key_tu(300), &mut out).unwrap();
    assert!(out.len() >= 3);
    assert_eq!(out[0][0] & AGG_N, AGG_N);
    assert!(out[1..].iter().all(|p| p[0] & AGG_N == 0));
    feed(&mut d, &mut seq, 3000, &out);
    let f = d.poll_frame().unwrap();
    assert!(f.keyframe);
    assert_eq!(f.data, key_tu(300));

    // Lose the middle packet of an inter frame.
    out.clear();
    p.packetize(&inter_tu(300), &mut out).unwrap();
    out.remove(1);
    let s0 = seq;
    for (i, pl) in out.iter().enumerate() {
        let s = if i == 0 { s0 } else { s0.wrapping_add(i as u16 + 1) };
        d.handle_packet(SeqNo(s), MediaTime(6000), i + 1 == out.len(), pl);
    }
    seq = s0.wrapping_add(out.len() as u16 + 1);
    assert!(d.poll_frame().is_none());
    assert!(d.poll_keyframe_request());
    assert!(d.waiting_for_keyframe());
    assert_eq!(d.stats().lost_packets, 1);
    assert_eq!(d.stats().corrupt_frames, 1);

    // A following complete inter frame is still skipped.
    out.clear();
    p.packetize(&inter_tu(30), &mut out).unwrap();
    feed(&mut d, &mut seq, 9000, &out);
    assert!(d.poll_frame().is_none());

    // A keyframe right after a gap is kept (N=1 marks its start).
    out.clear();
    p.packetize(&key_tu(30), &mut out).unwrap();
    seq = seq.wrapping_add(5);
    feed(&mut d, &mut seq, 12000, &out);
    assert!(d.poll_frame().unwrap().keyframe);
    assert!(!d.waiting_for_keyframe());
}

#[test]
fn late_and_duplicate_packets_are_ignored() {
    let p = Packetizer::new(1200).unwrap();
    let mut d = Depacketizer::new();
    let mut out = Vec::new();
    p.packetize(&key_tu(10), &mut out).unwrap();
    d.handle_packet(SeqNo(5), MediaTime(1), true, &out[0]);
    d.handle_packet(SeqNo(5), MediaTime(1), true, &out[0]);
    d.handle_packet(SeqNo(4), MediaTime(1), true, &out[0]);
    assert_eq!(d.stats().late_packets, 2);
    assert!(d.poll_frame().is_some());
    assert!(d.poll_frame().is_none());
}

#[test]
fn missing_marker_ends_unit_on_timestamp_change() {
    let p = Packetizer::new(1200).unwrap();
    let mut d = Depacketizer::new();
    let mut out = Vec::new();
    p.packetize(&key_tu(10), &mut out).unwrap();
    d.handle_packet(SeqNo(1), MediaTime(0), false, &out[0]);
    assert!(d.poll_frame().is_none());
    out.clear();
    p.packetize(&inter_tu(10), &mut out).unwrap();
    d.handle_packet(SeqNo(2), MediaTime(3000), true, &out[0]);
    assert_eq!(d.poll_frame().unwrap().timestamp, MediaTime(0));
    assert_eq!(d.poll_frame().unwrap().timestamp, MediaTime(3000));
}

#[test]
fn packetizer_rejects_tiny_mtu_and_bad_input() {
    assert_eq!(Packetizer::new(3).unwrap_err(), Av1Error::MtuTooSmall);
    let p = Packetizer::new(100).unwrap();
    let mut out = Vec::new();
    assert_eq!(p.packetize(&[0x32, 10, 1], &mut out), Err(Av1Error::Truncated));
    assert_eq!(p.packetize(&[0x80], &mut out), Err(Av1Error::ForbiddenBit));
    assert_eq!(p.packetize(&TEMPORAL_DELIMITER, &mut out), Ok(0));
    assert!(out.is_empty());
}

#[derive(Debug, Clone)]
struct TestObu {
    t: u8,
    ext: Option<u8>,
    payload: Vec<u8>,
    sized: bool,
}

fn arb_obu() -> impl Strategy<Value = TestObu> {
    (
        prop::sample::select(vec![
            OBU_SEQUENCE_HEADER,
            OBU_TEMPORAL_DELIMITER,
            OBU_FRAME_HEADER,
            OBU_TILE_GROUP,
            OBU_METADATA,
            OBU_FRAME,
            OBU_PADDING,
        ]),
        prop::option::of(any::<u8>()),
        prop::collection::vec(any::<u8>(), 0..2500),
        any::<bool>(),
    )
        .prop_map(|(t, ext, payload, sized)| TestObu { t, ext, payload, sized })
}

fn build(obus: &[TestObu]) -> (Vec<u8>, Vec<u8>) {
    let mut tu = Vec::new();
    let mut expected = TEMPORAL_DELIMITER.to_vec();
    for (i, o) in obus.iter().enumerate() {
        let last = i + 1 == obus.len();
        let header = (o.t << 3) | if o.ext.is_some() { OBU_EXTENSION_BIT } else { 0 };
        let obu = Obu { header, extension: o.ext, payload: &o.payload };
        if last && !o.sized {
            obu.write_element(&mut tu);
        } else {
            obu.write_sized(&mut tu);
        }
        if is_sent(o.t) {
            obu.write_sized(&mut expected);
        }
    }
    (tu, expected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn round_trip(
        mut obus in prop::collection::vec(arb_obu(), 1..6),
        mtu in MIN_PAYLOAD..1500usize,
        seq0 in any::<u16>(),
        ts in any::<u32>(),
    ) {
        // Start with a keyframe so the depacketizer gives the unit out.
        obus.insert(0, TestObu { t: OBU_SEQUENCE_HEADER, ext: None, payload: vec![1, 2], sized: true });
        obus.insert(1, TestObu { t: OBU_FRAME, ext: None, payload: key_payload(7), sized: true });
        let (tu, expected) = build(&obus);
        let p = Packetizer::new(mtu).unwrap();
        let mut out = Vec::new();
        let n = p.packetize(&tu, &mut out).unwrap();
        prop_assert_eq!(n, out.len());
        prop_assert!(out.iter().all(|p| p.len() <= mtu && p.len() > 1));
        prop_assert_eq!(out[0][0] & AGG_N, AGG_N);
        let mut d = Depacketizer::new();
        let mut seq = seq0;
        feed(&mut d, &mut seq, ts, &out);
        let f = d.poll_frame().expect("frame");
        prop_assert!(f.keyframe);
        prop_assert_eq!(f.timestamp, MediaTime(ts));
        prop_assert_eq!(f.data, expected);
        prop_assert!(d.poll_frame().is_none());
        prop_assert_eq!(d.stats().malformed, 0);
    }

    #[test]
    fn depacketizer_never_panics(
        pkts in prop::collection::vec(
            (any::<u16>(), any::<u32>(), any::<bool>(), prop::collection::vec(any::<u8>(), 0..64)),
            0..20,
        ),
    ) {
        let mut d = Depacketizer::new();
        for (seq, ts, m, p) in pkts {
            d.handle_packet(SeqNo(seq), MediaTime(ts), m, &p);
            while let Some(f) = d.poll_frame() {
                // Whatever comes out parses as a low-overhead stream.
                prop_assert!(obus(&f.data).all(|o| o.is_ok()));
            }
        }
    }
}
