//! Tests of the per-receiver rewrite (`media`).

use super::*;
use corecast_proto::rtp::RtpPacket;
use corecast_proto::{MediaTime, Pt, SeqNo};

fn leg() -> LegFormat {
    LegFormat::new(
        vec![
            LegMedia {
                mid: "0".into(),
                kind: MediaKind::Audio,
                codec: Codec::Opus,
                payload_type: 111,
                rtx_payload_type: None,
                red_payload_type: None,
                receives: false,
                sends: true,
                remote_ssrcs: vec![],
                remote_rtx: vec![],
                rids: vec![],
            },
            LegMedia {
                mid: "video".into(),
                kind: MediaKind::Video,
                codec: Codec::Av1,
                payload_type: 39,
                rtx_payload_type: Some(40),
                red_payload_type: None,
                receives: false,
                sends: true,
                remote_ssrcs: vec![],
                remote_rtx: vec![],
                rids: vec![],
            },
        ],
        LegExtensions { mid: Some(9), audio_level: Some(3), transport_cc: Some(5), ..Default::default() },
    )
}

fn packet(pt: u8, ext: Vec<(u8, Vec<u8>)>) -> Vec<u8> {
    RtpPacket {
        marker: true,
        pt: Pt(pt),
        seq: SeqNo(7),
        timestamp: MediaTime(9000),
        ssrc: Ssrc(0x1234),
        csrcs: vec![Ssrc(5)],
        extensions: ext,
        payload: vec![1, 2, 3, 4, 5],
        padding: 0,
    }
    .to_vec()
    .unwrap()
}

#[test]
fn video_gets_the_receivers_payload_type_and_mid_only() {
    let p = packet(45, vec![(1, vec![0x85]), (4, vec![1, 2, 3])]);
    let h = RtpHeader::parse(&p).unwrap();
    let mut out = BytesMut::new();
    let src = Source { codec: Codec::Av1, kind: MediaKind::Video, audio_level: 1, dd: 0 };
    assert!(leg().rewrite(&p, &h, src, None, &mut out));
    let q = RtpPacket::parse(&out).unwrap();
    assert_eq!(q.pt, Pt(39));
    assert!(q.marker);
    assert_eq!((q.seq, q.timestamp, q.ssrc, q.csrcs.clone()), (SeqNo(7), MediaTime(9000), Ssrc(0x1234), vec![Ssrc(5)]));
    assert_eq!(q.extensions, vec![(9, b"video".to_vec())]);
    assert_eq!(q.payload, vec![1, 2, 3, 4, 5]);
}

#[test]
fn audio_keeps_its_level_under_the_receivers_id() {
    let p = packet(111, vec![(1, vec![0x85])]);
    let h = RtpHeader::parse(&p).unwrap();
    let mut out = BytesMut::new();
    let src = Source { codec: Codec::Opus, kind: MediaKind::Audio, audio_level: 1, dd: 0 };
    assert!(leg().rewrite(&p, &h, src, None, &mut out));
    let q = RtpPacket::parse(&out).unwrap();
    assert_eq!(q.extensions, vec![(9, b"0".to_vec()), (3, vec![0x85])]);
}

#[test]
fn a_codec_the_leg_did_not_negotiate_is_not_sent() {
    let p = packet(96, vec![]);
    let h = RtpHeader::parse(&p).unwrap();
    let src = Source { codec: Codec::Vp8, kind: MediaKind::Video, audio_level: 0, dd: 0 };
    assert!(!leg().rewrite(&p, &h, src, None, &mut BytesMut::new()));
}

#[test]
fn no_extensions_without_mid_or_level() {
    let mut l = leg();
    l.extensions = LegExtensions::default();
    let p = packet(45, vec![(1, vec![0x85])]);
    let h = RtpHeader::parse(&p).unwrap();
    let mut out = BytesMut::new();
    let src = Source { codec: Codec::Rtx, kind: MediaKind::Video, audio_level: 1, dd: 0 };
    assert!(l.rewrite(&p, &h, src, None, &mut out));
    let q = RtpPacket::parse(&out).unwrap();
    assert_eq!((q.pt, q.extensions.len()), (Pt(40), 0));
}

#[test]
fn a_retransmission_goes_as_rtx_with_the_original_number_in_front() {
    let p = packet(45, vec![(1, vec![0x85])]);
    let h = RtpHeader::parse(&p).unwrap();
    let src = Source { codec: Codec::Av1, kind: MediaKind::Video, audio_level: 0, dd: 0 };
    assert!(leg().has_rtx(Codec::Av1));
    let mut out = BytesMut::from(&b"before"[..]);
    assert!(leg().rewrite_rtx(&p, &h, src, rtx_ssrc(0x1234), 500, None, &mut out));
    assert_eq!(&out[..6], b"before", "appended");
    let q = RtpPacket::parse(&out[6..]).unwrap();
    assert_eq!((q.pt, q.seq, q.ssrc, q.marker), (Pt(40), SeqNo(500), Ssrc(rtx_ssrc(0x1234)), true));
    assert_eq!((q.timestamp, q.csrcs.clone()), (MediaTime(9000), vec![Ssrc(5)]));
    assert_eq!(q.extensions, vec![(9, b"video".to_vec())]);
    assert_eq!(q.payload, vec![0, 7, 1, 2, 3, 4, 5], "OSN 7, then the payload");
    assert_ne!(rtx_ssrc(0x1234), 0x1234);
    // Audio has no RTX line; a leg without RTX for the codec sends none.
    let opus = Source { codec: Codec::Opus, kind: MediaKind::Audio, audio_level: 0, dd: 0 };
    assert!(!leg().rewrite_rtx(&p, &h, opus, 1, 1, None, &mut BytesMut::new()));
    let mut l = leg();
    l = LegFormat::new(
        l.media.iter().cloned().map(|m| LegMedia { rtx_payload_type: None, ..m }).collect(),
        l.extensions,
    );
    assert!(!l.has_rtx(Codec::Av1));
    let mut out = BytesMut::new();
    assert!(!l.rewrite_rtx(&p, &h, src, 1, 1, None, &mut out));
    assert!(out.is_empty());
}

#[test]
fn red_carries_the_previous_payload_then_this_one() {
    let mut media = leg().media;
    media[0].red_payload_type = Some(63);
    let l = LegFormat::new(media, leg().extensions);
    assert!(l.has_red() && !leg().has_red());
    let p = packet(111, vec![(1, vec![0x85])]);
    let h = RtpHeader::parse(&p).unwrap();
    let opus = Source { codec: Codec::Opus, kind: MediaKind::Audio, audio_level: 1, dd: 0 };
    let mut out = BytesMut::new();
    assert!(l.rewrite_red(&p, &h, opus, &[9, 9, 9], 960, None, &mut out));
    let q = RtpPacket::parse(&out).unwrap();
    assert_eq!((q.pt, q.seq, q.timestamp, q.marker), (Pt(63), SeqNo(7), MediaTime(9000), true));
    assert_eq!(q.extensions, vec![(9, b"0".to_vec()), (3, vec![0x85])], "mid and level as for plain audio");
    // F=1 pt 111, offset 960, length 3; F=0 pt 111; the redundant bytes; the primary's.
    let word = (960u32 << 10) | 3;
    let mut want = vec![0x80 | 111];
    want.extend_from_slice(&word.to_be_bytes()[1..]);
    want.extend_from_slice(&[111, 9, 9, 9, 1, 2, 3, 4, 5]);
    assert_eq!(q.payload, want);
    // Too far back, too long, or no RED on the leg: not sent as RED (nothing written).
    for (prev, offset) in [(vec![1; 3], 1 << 14), (vec![1; 1024], 960), (vec![1; 3], 0)] {
        let mut out = BytesMut::new();
        assert!(!l.rewrite_red(&p, &h, opus, &prev, offset, None, &mut out));
        assert!(out.is_empty());
    }
    assert!(!leg().rewrite_red(&p, &h, opus, &[1], 960, None, &mut BytesMut::new()));
}

#[test]
fn a_peers_rtx_is_unwrapped_into_the_packet_it_repairs() {
    let mut media = leg().media;
    media[1].receives = true;
    media[1].remote_rtx = vec![(Ssrc(0x1234), Ssrc(0x5678))];
    let l = LegFormat::new(media, LegExtensions::default());
    let rtx = |payload: Vec<u8>, padding: u8| {
        RtpPacket {
            marker: true,
            pt: Pt(40),
            seq: SeqNo(900),
            timestamp: MediaTime(9000),
            ssrc: Ssrc(0x5678),
            csrcs: vec![],
            extensions: vec![(3, vec![0, 7])],
            payload,
            padding,
        }
        .to_vec()
        .unwrap()
    };
    let p = rtx(vec![0x01, 0x02, 9, 8, 7], 4);
    let RtxIn::Repair(v) = l.unwrap_rtx(&p, &RtpHeader::parse(&p).unwrap()) else { panic!("not unwrapped") };
    let q = RtpPacket::parse(&v).unwrap();
    assert_eq!((q.pt, q.seq, q.ssrc, q.marker, q.padding), (Pt(39), SeqNo(0x0102), Ssrc(0x1234), true, 0));
    assert_eq!((q.timestamp, q.payload.clone()), (MediaTime(9000), vec![9, 8, 7]));
    assert_eq!(q.extensions, vec![(3, vec![0, 7])], "the header extensions kept (transport-wide number)");
    let probe = rtx(vec![], 200);
    assert_eq!(l.unwrap_rtx(&probe, &RtpHeader::parse(&probe).unwrap()), RtxIn::Probe);
    let short = rtx(vec![1, 2], 0);
    assert_eq!(l.unwrap_rtx(&short, &RtpHeader::parse(&short).unwrap()), RtxIn::Probe);
    // Another SSRC, or the media payload type: not RTX.
    let media_pkt = packet(39, vec![]);
    assert_eq!(l.unwrap_rtx(&media_pkt, &RtpHeader::parse(&media_pkt).unwrap()), RtxIn::NotRtx);
    let mut other = rtx(vec![1, 2, 3], 0);
    other[8..12].copy_from_slice(&0x9999u32.to_be_bytes());
    assert_eq!(l.unwrap_rtx(&other, &RtpHeader::parse(&other).unwrap()), RtxIn::NotRtx);
}

#[test]
fn lines_past_those_kept_inline_and_long_mids_read_as_negotiated() {
    let line = |mid: &str, kind, codec, payload_type| LegMedia {
        mid: mid.into(),
        kind,
        codec,
        payload_type,
        rtx_payload_type: None,
        red_payload_type: None,
        receives: false,
        sends: true,
        remote_ssrcs: vec![],
        remote_rtx: vec![],
        rids: vec![],
    };
    let mut media: Vec<_> = (0..SEND_LINES).map(|i| line("a", MediaKind::Audio, Codec::Opus, 100 + i as u8)).collect();
    media.push(line("vp8-line", MediaKind::Video, Codec::Vp8, 96));
    media.push(line("a-mid-of-seventeen", MediaKind::Video, Codec::H264, 102));
    let l = LegFormat::new(media, LegExtensions { mid: Some(9), ..Default::default() });
    let p = packet(45, vec![]);
    let h = RtpHeader::parse(&p).unwrap();
    let mut out = BytesMut::new();
    assert!(l.rewrite(
        &p,
        &h,
        Source { codec: Codec::Vp8, kind: MediaKind::Video, audio_level: 0, dd: 0 },
        None,
        &mut out
    ));
    let q = RtpPacket::parse(&out).unwrap();
    assert_eq!((q.pt, q.extensions.clone()), (Pt(96), vec![(9, b"vp8-line".to_vec())]));
    // A mid longer than 16 bytes does not fit the extension: none is written.
    let mut out = BytesMut::new();
    assert!(l.rewrite(
        &p,
        &h,
        Source { codec: Codec::H264, kind: MediaKind::Video, audio_level: 0, dd: 0 },
        None,
        &mut out
    ));
    let q = RtpPacket::parse(&out).unwrap();
    assert_eq!((q.pt, q.extensions.len()), (Pt(102), 0));
    // The first audio line of the first four, as before.
    let mut out = BytesMut::new();
    assert!(l.rewrite(
        &p,
        &h,
        Source { codec: Codec::Opus, kind: MediaKind::Audio, audio_level: 0, dd: 0 },
        None,
        &mut out
    ));
    assert_eq!(RtpPacket::parse(&out).unwrap().pt, Pt(100));
}

#[test]
fn a_transport_wide_number_is_stamped_when_given_and_negotiated() {
    let p = packet(45, vec![(1, vec![0x85])]);
    let h = RtpHeader::parse(&p).unwrap();
    let src = Source { codec: Codec::Av1, kind: MediaKind::Video, audio_level: 0, dd: 0 };
    let mut out = BytesMut::new();
    assert!(leg().rewrite(&p, &h, src, Some(0x1234), &mut out));
    let q = RtpPacket::parse(&out).unwrap();
    assert_eq!(q.extensions, vec![(9, b"video".to_vec()), (5, vec![0x12, 0x34])]);
    assert_eq!(q.payload, vec![1, 2, 3, 4, 5]);
    // RTX and RED carry it too.
    let mut out = BytesMut::new();
    assert!(leg().rewrite_rtx(&p, &h, src, 77, 3, Some(9), &mut out));
    let q = RtpPacket::parse(&out).unwrap();
    assert_eq!((q.extensions[1].clone(), q.payload.clone()), ((5, vec![0, 9]), vec![0, 7, 1, 2, 3, 4, 5]));
    let mut media = leg().media;
    media[0].red_payload_type = Some(63);
    let l = LegFormat::new(media, leg().extensions);
    let opus = Source { codec: Codec::Opus, kind: MediaKind::Audio, audio_level: 1, dd: 0 };
    let a = packet(111, vec![(1, vec![0x85])]);
    let mut out = BytesMut::new();
    assert!(l.rewrite_red(&a, &RtpHeader::parse(&a).unwrap(), opus, &[9], 960, Some(10), &mut out));
    let q = RtpPacket::parse(&out).unwrap();
    assert_eq!(q.extensions, vec![(9, b"0".to_vec()), (3, vec![0x85]), (5, vec![0, 10])]);
    // A leg that did not negotiate transport-cc gets none.
    let mut l = leg();
    l.extensions.transport_cc = None;
    let mut out = BytesMut::new();
    assert!(l.rewrite(&p, &h, src, Some(1), &mut out));
    assert_eq!(RtpPacket::parse(&out).unwrap().extensions, vec![(9, b"video".to_vec())]);
}

#[test]
fn a_probe_is_padding_only_rtx() {
    let mut out = BytesMut::new();
    assert!(leg().write_padding(Codec::Av1, 0x77, 12, 9000, Some(300), 200, &mut out));
    let q = RtpPacket::parse(&out).unwrap();
    assert_eq!((q.pt, q.seq, q.ssrc, q.timestamp), (Pt(40), SeqNo(12), Ssrc(0x77), MediaTime(9000)));
    assert_eq!(q.extensions, vec![(9, b"video".to_vec()), (5, 300u16.to_be_bytes().to_vec())]);
    assert_eq!((q.padding, q.payload.len()), (200, 0));
    // The peer side reads it as a probe (padding only).
    let h = RtpHeader::parse(&out).unwrap();
    assert_eq!(h.payload(&out).len(), 0);
    // No RTX for audio, or no padding: nothing written.
    assert!(!leg().write_padding(Codec::Opus, 1, 1, 1, None, 200, &mut out));
    assert!(!leg().write_padding(Codec::Av1, 1, 1, 1, None, 0, &mut out));
    assert_eq!(out.len(), 12 + 4 + 12 + 200);
}

/// The publisher's Dependency Descriptor goes to a leg that negotiated it:
/// a short one in the one-byte form, one with its template structure (over
/// 16 bytes) in the two-byte form where the leg allows it, and not at all
/// where it does not (the one-byte form cannot carry it).
#[test]
fn the_dependency_descriptor_is_forwarded_in_the_form_it_needs() {
    let src = Source { codec: Codec::Av1, kind: MediaKind::Video, audio_level: 0, dd: 12 };
    let (short, long) = (vec![0xC0, 0, 7], (0..40u8).collect::<Vec<u8>>());
    for (allow_mixed, dd, want) in
        [(false, &short, Some(&short)), (true, &short, Some(&short)), (true, &long, Some(&long)), (false, &long, None)]
    {
        let mut l = leg();
        l.extensions.dependency_descriptor = Some(11);
        l.extensions.allow_mixed = allow_mixed;
        let p = packet(45, vec![(12, dd.clone())]);
        let h = RtpHeader::parse(&p).unwrap();
        let mut out = BytesMut::new();
        assert!(l.rewrite(&p, &h, src, Some(0x0102), &mut out));
        let q = RtpPacket::parse(&out).unwrap();
        let two = u16::from_be_bytes([out[16], out[17]]) == 0x1000;
        assert_eq!(two, want.is_some_and(|d| d.len() > 16), "the header form");
        assert_eq!(q.extensions.iter().find(|e| e.0 == 11).map(|e| &e.1), want);
        assert_eq!(q.extensions[..2], [(9, b"video".to_vec()), (5, vec![1, 2])]);
        assert_eq!(q.payload, vec![1, 2, 3, 4, 5]);
    }
    // A leg that did not negotiate it gets none.
    let p = packet(45, vec![(12, short.clone())]);
    let mut out = BytesMut::new();
    assert!(leg().rewrite(&p, &RtpHeader::parse(&p).unwrap(), src, None, &mut out));
    assert_eq!(RtpPacket::parse(&out).unwrap().extensions, vec![(9, b"video".to_vec())]);
}
