//! Native legs over SRTP keyed from the join key: what goes out is sealed
//! per receiver, what comes in is opened and checked, resends go as RTX.

use bytes::BytesMut;
use corecast_proto::srtp::SrtpContext;

use super::*;
use crate::srtp_pair::NATIVE_RTX_PT;

/// A native client's SRTP: what it seals with, what it opens with.
struct ClientSrtp {
    tx: SrtpContext,
    rx: SrtpContext,
}

impl ClientSrtp {
    fn of(key: &JoinKey) -> ClientSrtp {
        let (up, down) = key.native_srtp_keys();
        ClientSrtp { tx: SrtpContext::new(&up).unwrap(), rx: SrtpContext::new(&down).unwrap() }
    }
    fn seal_rtp(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        self.tx.protect_rtp(plain, &mut out).unwrap();
        out.to_vec()
    }
    fn seal_rtcp(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        self.tx.protect_rtcp(plain, &mut out).unwrap();
        out.to_vec()
    }
    fn open(&mut self, sealed: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        match classify(sealed) {
            Kind::Rtp => self.rx.unprotect_rtp(sealed, &mut out).expect("SRTP opens"),
            _ => self.rx.unprotect_rtcp(sealed, &mut out).expect("SRTCP opens"),
        }
        out.to_vec()
    }
}

/// A router that takes SRTP only; publisher 1 (video 101) at addr 0 and
/// publisher 2 (video 201) at addr 1, both over SRTP.
fn srtp_call() -> (H, ClientSrtp, ClientSrtp) {
    let mut h = H::with(retransmitting());
    h.r.config.plain_native_media = false;
    let mut clients = Vec::new();
    for (a, pid) in [(addr(0), 1u64), (addr(1), 2)] {
        let token = h.token(call(1), pid, Role::Publisher);
        let ssrcs = vec![(Ssrc(pid as u32 * 100 + 1), MediaKind::Video)];
        h.session(a, SessionMessage::Join { txid: [1; 12], token, ssrcs, quality: Quality::Hd, srtp: true });
        assert!(matches!(SessionMessage::parse(&h.take()[0].contents), Ok(SessionMessage::JoinAck { .. })));
        clients.push(ClientSrtp::of(&h.keys[&a]));
    }
    let b = clients.pop().unwrap();
    (h, clients.pop().unwrap(), b)
}

#[test]
fn a_plain_join_is_refused_where_the_router_takes_srtp_only() {
    let mut h = H::new();
    h.r.config.plain_native_media = false;
    let tok = h.token(call(1), 1, Role::Publisher);
    let r = h.join_with(addr(0), tok, vec![]);
    assert!(matches!(r, SessionMessage::JoinError { code: JoinErrorCode::Forbidden, .. }), "{r:?}");
}

#[test]
fn media_is_sealed_for_each_receiver_and_opened_from_each_sender() {
    let (mut h, mut a, mut b) = srtp_call();
    let plain = rtp(101, 7);
    h.input(addr(0), a.seal_rtp(&plain));
    let t = h.take();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].destination, addr(1));
    assert_ne!(&t[0].contents[..], &plain[..], "not sent in the clear");
    assert_eq!(b.open(&t[0].contents), plain, "B opens exactly what A sent");
    // Plain RTP, a tampered packet and a replay from an SRTP participant are dropped.
    h.input(addr(0), rtp(101, 8));
    let mut bad = a.seal_rtp(&rtp(101, 9));
    let n = bad.len();
    bad[n - 1] ^= 1;
    h.input(addr(0), bad);
    let again = a.seal_rtp(&rtp(101, 10));
    h.input(addr(0), again.clone());
    assert_eq!(h.take().len(), 1);
    h.input(addr(0), again);
    assert!(h.take().is_empty());
    let s = *h.r.stats();
    assert_eq!((s.dropped_srtp_auth, s.dropped_srtp_replay), (2, 1));
}

#[test]
fn rtcp_goes_both_ways_as_srtcp() {
    let (mut h, mut a, mut b) = srtp_call();
    h.input(addr(0), a.seal_rtp(&rtp(101, 1)));
    h.take();
    // B asks for a keyframe: A gets the request sealed with its own keys.
    let pli =
        rtcp::write_compound(&[RtcpPacket::Pli(rtcp::Pli { sender_ssrc: Ssrc(201), media_ssrc: Ssrc(101) })]).unwrap();
    h.input(addr(1), b.seal_rtcp(&pli));
    let t = h.take();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].destination, addr(0));
    let opened = a.open(&t[0].contents);
    assert!(matches!(&rtcp::parse_compound(&opened).unwrap()[..], [RtcpPacket::Pli(p)] if p.media_ssrc == Ssrc(101)));
    // The router's own receiver reports reach A sealed too.
    for _ in 0..25 {
        h.advance(Duration::from_millis(100));
    }
    let to_a: Vec<_> = h.take().into_iter().filter(|t| t.destination == addr(0)).collect();
    assert!(!to_a.is_empty());
    for t in to_a {
        assert_eq!(classify(&t.contents), Kind::Rtcp);
        let opened = a.open(&t.contents);
        assert!(rtcp::parse_compound(&opened).unwrap().iter().any(|p| matches!(p, RtcpPacket::ReceiverReport(_))));
    }
}

#[test]
fn a_nack_on_an_srtp_leg_is_answered_as_rtx() {
    let (mut h, mut a, mut b) = srtp_call();
    for seq in 0..10u16 {
        h.input(addr(0), a.seal_rtp(&rtp(101, seq)));
    }
    for t in h.take() {
        b.open(&t.contents);
    }
    let nack = rtcp::Nack::from_lost(Ssrc(201), Ssrc(101), &[SeqNo(3), SeqNo(4)]);
    h.input(addr(1), b.seal_rtcp(&rtcp::write_compound(&[RtcpPacket::Nack(nack)]).unwrap()));
    let t = h.take();
    assert_eq!(t.len(), 2, "both answered from the buffer, nothing to the publisher");
    let rtx_ssrc = crate::webrtc::rtx_ssrc(101);
    for (i, t) in t.iter().enumerate() {
        assert_eq!(t.destination, addr(1));
        let p = b.open(&t.contents);
        let rh = RtpHeader::parse(&p).unwrap();
        assert_eq!((rh.ssrc.0, rh.pt.0), (rtx_ssrc, NATIVE_RTX_PT));
        let first = rtx_ssrc as u16 & 0x7FFF;
        assert_eq!(rh.seq.0, first.wrapping_add(i as u16), "the RTX stream's own numbers");
        let payload = &p[rh.payload_offset..rh.payload_offset + rh.payload_len];
        let osn = u16::from_be_bytes([payload[0], payload[1]]);
        assert_eq!(osn, 3 + i as u16);
        let original = rtp(101, osn);
        let oh = RtpHeader::parse(&original).unwrap();
        assert_eq!(&payload[2..], &original[oh.payload_offset..oh.payload_offset + oh.payload_len]);
    }
    assert_eq!(h.r.stats().nacks, 0);
}
