//! RTX (RFC 4588) on WebRTC legs, on synthetic time: a browser's NACK is
//! answered from the router's retransmission buffer as RTX on the router's
//! RTX SSRC for the stream; a browser publisher's gap is NACKed by the
//! router (SRTCP) and its RTX answer goes on as the packet it repairs.

use bytes::BytesMut;

use super::webrtc::{identity, video, Peer, VIDEO_RTX_SSRC, VIDEO_SSRC};
use super::*;
use crate::webrtc::WebRtcLeg;

/// Sends `nack` from peer `b` (SRTCP).
pub(super) fn send_nack(h: &mut H, b: &mut Peer, nack: &rtcp::Nack) {
    let mut out = BytesMut::new();
    b.tx.as_mut()
        .unwrap()
        .protect_rtcp(&rtcp::write_compound(&[RtcpPacket::Nack(nack.clone())]).unwrap(), &mut out)
        .unwrap();
    h.input(b.addr, out.to_vec());
}

/// A browser's NACK is answered from the retransmission buffer as RTX
/// (RFC 4588): the same packet again would reuse its SRTP index, so it goes
/// on the stream's RTX SSRC with the RTX payload type the leg negotiated,
/// the original number in front of the payload, the RTX stream's own
/// numbers. Nothing goes to the publisher.
#[test]
fn a_browsers_nack_is_answered_as_rtx_from_the_buffer() {
    let mut h = H::with(retransmitting());
    h.r.set_dtls_identity(identity());
    let c = call(2);
    h.join(addr(1), c, 1, 0x1111);
    let mut b = Peer::join(&mut h, 2, c, 2, false, None);
    for seq in 5..9 {
        h.input(addr(1), video(0x1111, seq, 45));
    }
    h.take();
    let nack = rtcp::Nack::from_lost(Ssrc(0x2), Ssrc(0x1111), &[SeqNo(6)]);
    let mut rtx_seqs = Vec::new();
    for round in 0..2 {
        send_nack(&mut h, &mut b, &nack);
        let t = h.take();
        assert_eq!(t.len(), 1, "round {round}: one RTX packet, nothing upstream");
        assert_eq!(t[0].destination, b.addr);
        let q = b.open_rtp(&t[0].contents);
        assert_eq!((q.pt, q.ssrc), (Pt(36), Ssrc(crate::webrtc::rtx_ssrc(0x1111))));
        assert_eq!(&q.payload[..2], &6u16.to_be_bytes(), "the original sequence number");
        assert_eq!(
            &q.payload[2..],
            &video(0x1111, 6, 45)[..][RtpHeader::parse(&video(0x1111, 6, 45)).unwrap().payload_offset..]
        );
        assert_eq!(q.extensions[0], (9, b"1".to_vec()), "the leg's mid");
        assert_eq!(q.extensions[1].0, 3, "the router's transport-wide number");
        rtx_seqs.push(q.seq.0);
        // A repeat within a round trip is the same request: wait past it.
        h.now += crate::retransmit::RESEND_GAP;
    }
    assert_eq!(rtx_seqs[1], rtx_seqs[0].wrapping_add(1), "the RTX stream's own numbers");
    let s = h.r.stats();
    assert_eq!((s.retransmitted, s.nack_answered, s.nacks, s.srtp_seal_failed), (2, 2, 0, 0));
}

/// A browser that negotiated no RTX cannot be answered from the buffer:
/// its NACK goes to the publisher as before, and nothing is resent to it.
#[test]
fn a_browser_without_rtx_has_its_nack_go_to_the_publisher() {
    let mut h = H::with(retransmitting());
    h.r.set_dtls_identity(identity());
    let c = call(2);
    h.join(addr(1), c, 1, 0x1111);
    let no_rtx = |leg: &mut WebRtcLeg| leg.media.iter_mut().for_each(|m| m.rtx_payload_type = None);
    let config = dimpl::Config::builder().build().unwrap();
    let mut b = Peer::open_edited(&mut h, 2, (c, 2, false, None), config, no_rtx);
    b.connect_ice(&mut h);
    b.handshake(&mut h);
    for seq in 5..9 {
        h.input(addr(1), video(0x1111, seq, 45));
    }
    h.take();
    let nack = rtcp::Nack::from_lost(Ssrc(0x2), Ssrc(0x1111), &[SeqNo(6)]);
    send_nack(&mut h, &mut b, &nack);
    let t = h.take();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].destination, addr(1));
    assert_eq!(rtcp::parse_compound(&t[0].contents).unwrap(), vec![RtcpPacket::Nack(nack)]);
    let s = h.r.stats();
    assert_eq!((s.retransmitted, s.nack_answered, s.nacks, s.srtp_seal_failed), (0, 0, 1, 0));
}

/// A browser publisher's lost packet: the router NACKs it (SRTCP, once,
/// from its own SSRC), the browser answers with RTX on the RTX SSRC its
/// offer grouped with the stream, and the router forwards the packet it
/// repairs (original number, SSRC and payload type) to a native receiver,
/// once. A padding-only RTX probe goes nowhere.
#[test]
fn a_browser_publishers_gap_is_nacked_and_its_rtx_repairs_it() {
    let mut h = H::with(retransmitting());
    h.r.set_dtls_identity(identity());
    let c = call(3);
    let mut p = Peer::join(&mut h, 1, c, 1, true, None);
    h.join(addr(2), c, 2, 0x2222);
    h.take();
    for seq in [10u16, 11, 13, 14] {
        let sealed = p.seal(&video(VIDEO_SSRC, seq, 35));
        h.input(p.addr, sealed);
    }
    let got: Vec<u16> = h
        .take()
        .iter()
        .filter(|t| t.destination == addr(2))
        .map(|t| RtpHeader::parse(&t.contents).unwrap().seq.0)
        .collect();
    assert_eq!(got, vec![10, 11, 13, 14]);
    // After the reorder wait the router asks the publisher for 12.
    h.advance(Duration::from_millis(20));
    let to_pub: Vec<_> = h.take().into_iter().filter(|t| t.destination == p.addr).collect();
    let nacks: Vec<_> = to_pub
        .iter()
        .filter_map(|t| {
            let mut plain = BytesMut::new();
            p.rx.as_mut().unwrap().unprotect_rtcp(&t.contents, &mut plain).ok()?;
            rtcp::parse_compound(&plain).ok()
        })
        .flatten()
        .filter_map(|r| match r {
            RtcpPacket::Nack(n) => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(nacks.len(), 1, "one NACK over SRTCP: {to_pub:?}");
    assert_eq!(nacks[0].media_ssrc, Ssrc(VIDEO_SSRC));
    assert_eq!(nacks[0].lost().collect::<Vec<_>>(), vec![SeqNo(12)]);
    // The browser answers with RTX: its own RTX payload type (36), SSRC and numbers.
    let original = video(VIDEO_SSRC, 12, 35);
    let h12 = RtpHeader::parse(&original).unwrap();
    let mut rtx_payload = 12u16.to_be_bytes().to_vec();
    rtx_payload.extend_from_slice(h12.payload(&original));
    let rtx = RtpPacket {
        pt: Pt(36),
        seq: SeqNo(500),
        ssrc: Ssrc(VIDEO_RTX_SSRC),
        extensions: vec![(3, vec![0, 12])],
        payload: rtx_payload,
        ..Default::default()
    };
    let sealed = p.seal(&rtx.to_vec().unwrap());
    h.input(p.addr, sealed);
    let t = h.take();
    let to_native: Vec<_> = t.iter().filter(|t| t.destination == addr(2)).collect();
    assert_eq!(to_native.len(), 1, "the repair, once");
    let q = RtpPacket::parse(&to_native[0].contents).unwrap();
    assert_eq!((q.seq, q.ssrc, q.pt), (SeqNo(12), Ssrc(VIDEO_SSRC), Pt(35)));
    assert_eq!(q.payload, h12.payload(&original), "the original payload");
    // The same repair again is a duplicate; a padding-only probe goes nowhere.
    let again = p.seal(&RtpPacket { seq: SeqNo(501), ..rtx.clone() }.to_vec().unwrap());
    h.input(p.addr, again);
    let probe = RtpPacket { seq: SeqNo(502), payload: vec![], padding: 200, ..rtx };
    let probe = p.seal(&probe.to_vec().unwrap());
    h.input(p.addr, probe);
    assert!(h.take().iter().all(|t| t.destination != addr(2)), "nothing more to the receiver");
    let s = h.r.stats();
    assert_eq!((s.nacks_upstream, s.rtx_received, s.duplicates_dropped), (1, 3, 1));
    // No further NACK for 12: it arrived.
    h.advance(Duration::from_millis(300));
    assert_eq!(h.r.stats().nacks_upstream, 1, "12 arrived: not asked for again");
}
