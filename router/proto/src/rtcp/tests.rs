use super::*;
use crate::ids::SeqNo;
use proptest::prelude::*;

/// A receiver report with one block, byte for byte per RFC 3550 §6.4.2.
#[test]
fn rr_vector() {
    let b = [
        0x81, 0xC9, 0x00, 0x07, // V=2 RC=1 PT=201 len=7
        0x00, 0x00, 0x00, 0x01, // reporter
        0x00, 0x00, 0x00, 0x02, // source
        0x40, 0xFF, 0xFF, 0xFE, // fraction 64/256, cumulative -2
        0x00, 0x01, 0x00, 0x10, // ext highest seq
        0x00, 0x00, 0x00, 0x20, // jitter
        0x11, 0x22, 0x33, 0x44, // LSR
        0x00, 0x00, 0x80, 0x00, // DLSR 0.5 s
    ];
    let p = parse_compound(&b).unwrap();
    let RtcpPacket::ReceiverReport(rr) = &p[0] else { panic!() };
    assert_eq!(rr.ssrc, Ssrc(1));
    assert_eq!(rr.reports[0].fraction_lost, 64);
    assert_eq!(rr.reports[0].cumulative_lost, -2);
    assert_eq!(rr.reports[0].ext_highest_seq, 0x10010);
    assert_eq!(write_compound(&p).unwrap(), b);
}

/// PLI and NACK vectors per RFC 4585 §6.
#[test]
fn feedback_vectors() {
    let pli = [0x81, 0xCE, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2];
    assert_eq!(parse_compound(&pli).unwrap(), vec![RtcpPacket::Pli(Pli { sender_ssrc: Ssrc(1), media_ssrc: Ssrc(2) })]);
    let nack = [0x81, 0xCD, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 2, 0x00, 0x64, 0x00, 0x05];
    let p = parse_compound(&nack).unwrap();
    let RtcpPacket::Nack(n) = &p[0] else { panic!() };
    assert_eq!(n.lost().map(|s| s.0).collect::<Vec<_>>(), vec![100, 101, 103]);
    let fir = [0x84, 0xCE, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 7, 0, 0, 0];
    assert_eq!(
        parse_compound(&fir).unwrap(),
        vec![RtcpPacket::Fir(Fir { sender_ssrc: Ssrc(1), entries: vec![(Ssrc(9), 7)] })]
    );
}

#[test]
fn remb_vector() {
    // 1,000,000 bps = mantissa 250000 exp 2 ; 1 SSRC
    let r = RtcpPacket::Remb(Remb { sender_ssrc: Ssrc(1), bitrate_bps: 1_000_000, ssrcs: vec![Ssrc(5)] });
    let b = write_compound(std::slice::from_ref(&r)).unwrap();
    assert_eq!(&b[12..16], b"REMB");
    assert_eq!(parse_compound(&b).unwrap(), vec![r]);
}

#[test]
fn remb_past_u64_reads_as_the_largest_it_writes() {
    // Exponent 50 on a full mantissa is past 2^64 (found by the rtcp fuzz target: it read as
    // u64::MAX, which wrote back as 0x3ffff << 46 and so parsed unequal).
    let mut b =
        write_compound(&[RtcpPacket::Remb(Remb { sender_ssrc: Ssrc(1), bitrate_bps: 1, ssrcs: vec![] })]).unwrap();
    b[17] = (50 << 2) | 3;
    b[18] = 0xff;
    b[19] = 0xff;
    let p = parse_compound(&b).unwrap();
    let RtcpPacket::Remb(r) = &p[0] else { panic!("{p:?}") };
    assert_eq!(r.bitrate_bps, 0x3_ffff << 46);
    assert_eq!(parse_compound(&write_compound(&p).unwrap()).unwrap(), p);
}

#[test]
fn unknown_is_skipped_not_fatal() {
    let mut b = write_compound(&[RtcpPacket::Pli(Pli::default())]).unwrap();
    b.extend_from_slice(&[0x80, 210, 0, 1, 1, 2, 3, 4]); // unknown PT 210
    b.extend_from_slice(&write_compound(&[RtcpPacket::Bye(Bye { ssrcs: vec![Ssrc(3)], reason: None })]).unwrap());
    let p = parse_compound(&b).unwrap();
    assert_eq!(p.len(), 3);
    assert!(matches!(p[1], RtcpPacket::Unknown { pt: 210, .. }));
}

#[test]
fn malformed() {
    assert_eq!(parse_compound(&[]), Err(RtcpError::Truncated));
    assert_eq!(parse_compound(&[0x81, 0xC9, 0x00, 0x07, 0, 0]), Err(RtcpError::Truncated));
    assert_eq!(parse_compound(&[0x41, 0xC9, 0x00, 0x00]), Err(RtcpError::Version));
    // RR claims 2 blocks but has room for none
    assert_eq!(parse_compound(&[0x82, 0xC9, 0x00, 0x01, 0, 0, 0, 1]), Err(RtcpError::Malformed));
    // SDES item overruns
    assert_eq!(parse_compound(&[0x81, 0xCA, 0x00, 0x02, 0, 0, 0, 1, 1, 9, 0, 0]), Err(RtcpError::Malformed));
}

#[test]
fn nack_from_lost_packs_bitmask() {
    let seqs: Vec<SeqNo> = [65534u16, 65535, 0, 3, 40].iter().map(|&s| SeqNo(s)).collect();
    let n = Nack::from_lost(Ssrc(1), Ssrc(2), &seqs);
    assert_eq!(n.pairs.len(), 2);
    assert_eq!(n.lost().collect::<Vec<_>>(), seqs);
}

fn arb_block() -> impl Strategy<Value = ReportBlock> + Clone {
    (any::<u32>(), any::<u8>(), -0x80_0000i32..=0x7f_ffff, any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>())
        .prop_map(|(s, f, c, h, j, l, d)| ReportBlock {
            ssrc: Ssrc(s),
            fraction_lost: f,
            cumulative_lost: c,
            ext_highest_seq: h,
            jitter: j,
            last_sr: l,
            delay_since_last_sr: d,
        })
}

fn arb_packet() -> impl Strategy<Value = RtcpPacket> {
    let ssrc = any::<u32>().prop_map(Ssrc);
    let blocks = proptest::collection::vec(arb_block(), 0..4);
    prop_oneof![
        (ssrc.clone(), any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>(), blocks.clone()).prop_map(
            |(ssrc, ntp_time, rtp_time, packet_count, octet_count, reports)| RtcpPacket::SenderReport(SenderReport {
                ssrc,
                ntp_time,
                rtp_time,
                packet_count,
                octet_count,
                reports
            })
        ),
        (ssrc.clone(), blocks).prop_map(|(ssrc, reports)| RtcpPacket::ReceiverReport(ReceiverReport { ssrc, reports })),
        proptest::collection::vec(
            (ssrc.clone(), proptest::collection::vec((1u8..=8, proptest::collection::vec(any::<u8>(), 0..20)), 0..3))
                .prop_map(|(ssrc, items)| SdesChunk { ssrc, items }),
            0..3
        )
        .prop_map(RtcpPacket::Sdes),
        (
            proptest::collection::vec(ssrc.clone(), 0..4),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 1..30))
        )
            .prop_map(|(ssrcs, reason)| RtcpPacket::Bye(Bye { ssrcs, reason })),
        (0u8..32, ssrc.clone(), any::<[u8; 4]>(), proptest::collection::vec(any::<[u8; 4]>(), 0..4))
            .prop_map(|(subtype, ssrc, name, d)| RtcpPacket::App(App { subtype, ssrc, name, data: d.concat() })),
        (ssrc.clone(), ssrc.clone(), proptest::collection::vec((any::<u16>(), any::<u16>()), 0..5)).prop_map(
            |(a, b, p)| {
                RtcpPacket::Nack(Nack {
                    sender_ssrc: a,
                    media_ssrc: b,
                    pairs: p.into_iter().map(|(x, y)| (SeqNo(x), y)).collect(),
                })
            }
        ),
        (ssrc.clone(), ssrc.clone()).prop_map(|(a, b)| RtcpPacket::Pli(Pli { sender_ssrc: a, media_ssrc: b })),
        (ssrc.clone(), proptest::collection::vec((ssrc.clone(), any::<u8>()), 0..4))
            .prop_map(|(a, entries)| RtcpPacket::Fir(Fir { sender_ssrc: a, entries })),
        (
            ssrc.clone(),
            ssrc.clone(),
            any::<u16>(),
            TWCC_REFERENCE_TIME_MIN..=TWCC_REFERENCE_TIME_MAX,
            any::<u8>(),
            proptest::collection::vec(proptest::option::of(any::<i16>()), 1..40)
        )
            .prop_map(|(a, b, base, reference_time, fb_count, deltas)| {
                RtcpPacket::TransportFeedback(TransportFeedback {
                    sender_ssrc: a,
                    media_ssrc: b,
                    base_seq: SeqNo(base),
                    reference_time,
                    fb_count,
                    deltas,
                })
            }),
        (ssrc.clone(), any::<u64>(), proptest::collection::vec(ssrc, 0..4)).prop_map(|(a, bps, ssrcs)| {
            RtcpPacket::Remb(Remb { sender_ssrc: a, bitrate_bps: remb_representable(bps >> 2), ssrcs })
        }),
    ]
}

proptest! {
    #[test]
    fn compound_roundtrip(pkts in proptest::collection::vec(arb_packet(), 1..5)) {
        let b = write_compound(&pkts).unwrap();
        prop_assert_eq!(crate::demux::classify(&b), crate::demux::Kind::Rtcp);
        prop_assert_eq!(parse_compound(&b).unwrap(), pkts);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_compound(&b);
    }

    #[test]
    fn valid_header_garbage_body_never_panics(count in 0u8..32, ty in 200u8..=206, body in proptest::collection::vec(any::<u8>(), 0..40)) {
        let words = body.len() / 4;
        let mut b = vec![0x80 | count, ty, 0, words as u8];
        b.extend_from_slice(&body[..words * 4]);
        let _ = parse_compound(&b);
    }
}
