//! Abuse on synthetic time, with exact counts: floods of NACKs and keyframe
//! requests from one receiver cost the publisher nothing beyond the
//! router's budgets; an unadmitted source is never answered (a bad join
//! only with no more bytes than it sent); ICE checks for unknown ufrags and
//! DTLS before a check keep no state; oversize and truncated datagrams of
//! every kind are dropped and counted; an SSRC claimed by two participants
//! is refused and never forwarded.

use std::ops::Range;
use std::sync::Arc;

use corecast_proto::ice::{Check, Role as IceRole, Username};

use super::webrtc::Peer;
use super::*;
use crate::retransmit::{BUDGET_BURST, BUDGET_MIN_PPS, RESEND_GAP};

/// The publisher's video SSRC (pid 1 at addr 0) and the receiver's (pid 2 at addr 1).
const PUB: u32 = 101;
const RECV: u32 = 201;
const MS: Duration = Duration::from_millis(1);

fn two(h: &mut H) {
    h.join(addr(0), call(1), 1, PUB);
    h.join(addr(1), call(1), 2, RECV);
}

/// The publisher's packets `seqs`, 10 ms apart (100 packets/s), the last one now.
fn publish(h: &mut H, seqs: Range<u16>) {
    for s in seqs {
        h.now += MS * 10;
        h.input(addr(0), rtp(PUB, s));
    }
    h.take();
}

fn nack(seqs: &[u16]) -> Vec<u8> {
    let seqs: Vec<SeqNo> = seqs.iter().map(|&s| SeqNo(s)).collect();
    rtcp::write_compound(&[RtcpPacket::Nack(rtcp::Nack::from_lost(Ssrc(RECV), Ssrc(PUB), &seqs))]).unwrap()
}

/// The RTCP packets in `t` sent to `to`.
fn rtcp_to(t: &[Transmit], to: SocketAddr) -> Vec<RtcpPacket> {
    t.iter()
        .filter(|t| t.destination == to && classify(&t.contents) == Kind::Rtcp)
        .flat_map(|t| rtcp::parse_compound(&t.contents).unwrap())
        .collect()
}

/// The sequence numbers NACKed in `t` to `to`.
fn nacked_to(t: &[Transmit], to: SocketAddr) -> Vec<u16> {
    let lost = |p: RtcpPacket| match p {
        RtcpPacket::Nack(n) => n.lost().map(|s| s.0).collect(),
        _ => vec![],
    };
    rtcp_to(t, to).into_iter().flat_map(lost).collect()
}

/// Floods the publisher with `n` NACKs from the receiver, 1 ms apart, each
/// for `seq(k)`; returns what reached the publisher and every transmit.
fn flood_nacks(h: &mut H, n: u16, seq: impl Fn(u16) -> u16) -> (Vec<u16>, Vec<Transmit>) {
    let mut all = Vec::new();
    for k in 0..n {
        h.now += MS;
        h.input(addr(1), nack(&[seq(k)]));
        all.extend(h.take());
    }
    (nacked_to(&all, addr(0)), all)
}

#[test]
fn a_nack_flood_for_one_buffered_packet_costs_the_publisher_nothing() {
    let mut h = H::with(retransmitting());
    two(&mut h);
    publish(&mut h, 1..51);
    // 1000 NACKs for packet 50 within its second in the buffer.
    let (upstream, t) = flood_nacks(&mut h, 1000, |_| 50);
    let s = *h.r.stats();
    assert!(upstream.is_empty(), "the publisher was asked for {upstream:?}");
    // Resent once per RESEND_GAP (at 1, 101, ..., 901 ms), all to the receiver.
    let resent = t.iter().filter(|t| t.destination == addr(1) && classify(&t.contents) == Kind::Rtp).count();
    assert_eq!(RESEND_GAP, MS * 100);
    assert_eq!((resent, s.retransmitted, s.nack_answered), (10, 10, 1000));
    assert_eq!((s.nacks, s.nack_throttled), (0, 0));
    assert!(t.iter().all(|t| t.destination == addr(1)));
}

#[test]
fn a_nack_flood_for_many_buffered_packets_is_resent_at_the_receivers_budget() {
    let mut h = H::with(retransmitting());
    two(&mut h);
    publish(&mut h, 1..51);
    // The publisher goes on at 100 packets/s; each ms the receiver NACKs one of the last 50.
    let mut latest = 50u16;
    let mut all = Vec::new();
    for k in 0..1000u16 {
        h.now += MS;
        if k % 10 == 9 {
            latest += 1;
            h.input(addr(0), rtp(PUB, latest));
        }
        h.input(addr(1), nack(&[latest - k % 50]));
        all.extend(h.take());
    }
    let s = *h.r.stats();
    assert!(nacked_to(&all, addr(0)).is_empty(), "the publisher was asked for nothing");
    // A token bucket: BUDGET_BURST at once, then BUDGET_MIN_PPS a second
    // (the stream's rate is not measured yet: the floor).
    let most = (BUDGET_BURST + BUDGET_MIN_PPS) as u64;
    eprintln!("{s:?}");
    assert!(s.retransmitted >= BUDGET_BURST as u64 && s.retransmitted <= most, "{}", s.retransmitted);
    assert_eq!(s.nack_answered, 1000);
    assert!(s.retransmit_refused >= 1000 - most - 100, "{}", s.retransmit_refused);
    assert_eq!((s.nacks, s.nack_throttled), (0, 0));
}

#[test]
fn a_nack_flood_for_packets_the_buffer_lacks_reaches_the_publisher_only_at_the_budget() {
    let mut h = H::with(retransmitting());
    two(&mut h);
    publish(&mut h, 1..51);
    // One number never sent, 1000 times: passed on once per RESEND_GAP, as a
    // receiver that retries every 100 ms would have it.
    let (upstream, _) = flood_nacks(&mut h, 1000, |_| 30_000);
    assert_eq!(upstream, vec![30_000; 10]);
    assert_eq!((h.r.stats().nacks, h.r.stats().nack_throttled), (10, 990));
    // 1000 different numbers the buffer lacks: at most the budget's burst and refill.
    h.now += Duration::from_secs(5); // the bucket fills up again
    let (upstream, _) = flood_nacks(&mut h, 1000, |k| 40_000 + k);
    let most = (BUDGET_BURST + BUDGET_MIN_PPS) as usize;
    assert!(upstream.len() >= BUDGET_BURST as usize && upstream.len() <= most, "{}", upstream.len());
    let s = *h.r.stats();
    assert_eq!(s.nacks, 10 + upstream.len() as u64, "one NACK message per number passed on");
    assert_eq!(s.nack_throttled, 990 + 1000 - upstream.len() as u64);
    // With retransmission off every NACK goes on, at the same budget.
    let mut h = H::with(RouterConfig { retransmission: false, ..RouterConfig::default() });
    two(&mut h);
    publish(&mut h, 1..51);
    let (upstream, _) = flood_nacks(&mut h, 1000, |_| 50);
    assert_eq!(upstream, vec![50; 10]);
}

#[test]
fn a_pli_and_fir_flood_asks_the_publisher_for_one_keyframe_per_interval() {
    let mut h = H::with(retransmitting());
    two(&mut h);
    let interval = h.r.config().keyframe_request_interval;
    assert_eq!(interval, MS * 300);
    let pli =
        rtcp::write_compound(&[RtcpPacket::Pli(rtcp::Pli { sender_ssrc: Ssrc(RECV), media_ssrc: Ssrc(PUB) })]).unwrap();
    let fir = |n: u8| {
        let fir = rtcp::Fir { sender_ssrc: Ssrc(RECV), entries: vec![(Ssrc(PUB), n)] };
        rtcp::write_compound(&[RtcpPacket::Fir(fir)]).unwrap()
    };
    // 1000 requests in 1 s (PLI and FIR in turn) while the publisher sends
    // 100 packets/s (a held-back request may go with a packet).
    let mut all = Vec::new();
    for k in 0..1000u16 {
        h.now += MS;
        if k % 10 == 0 {
            h.input(addr(0), rtp(PUB, k / 10));
        }
        let req = if k % 2 == 0 { pli.clone() } else { fir(k as u8) };
        h.input(addr(1), req);
        all.extend(h.take());
    }
    let asked = rtcp_to(&all, addr(0)).into_iter().filter(|p| matches!(p, RtcpPacket::Pli(_) | RtcpPacket::Fir(_)));
    // At 1, 301, 601 and 901 ms: 1 + 1 s / 300 ms.
    assert_eq!(asked.count(), 4);
    // The first from the receiver; the other three held back, then sent
    // with the publisher's next packet (300, 600, 900 ms) just before the
    // receiver's next request: every one of the receiver's 999 others is throttled.
    let s = *h.r.stats();
    assert_eq!((s.keyframe_requests, s.dropped_keyframe_throttled), (4, 999));
}

#[test]
fn an_unadmitted_flood_gets_no_reply_and_changes_nothing() {
    let mut h = H::with(retransmitting());
    two(&mut h);
    publish(&mut h, 1..11);
    let (snapshot, participants, before) = (h.r.snapshot(), h.r.participant_count(), *h.r.stats());
    let events = h.events.len();
    let rtcp_of = |p: RtcpPacket| rtcp::write_compound(&[p]).unwrap();
    let session = |m: SessionMessage| m.to_vec();
    let mut kinds: Vec<Vec<u8>> = vec![
        rtp(PUB, 11),
        rtp(999, 1),
        rtcp_of(RtcpPacket::Pli(rtcp::Pli { sender_ssrc: Ssrc(RECV), media_ssrc: Ssrc(PUB) })),
        nack(&[5, 6, 7]),
        rtcp_of(RtcpPacket::SenderReport(rtcp::SenderReport { ssrc: Ssrc(PUB), ..Default::default() })),
        rtcp_of(RtcpPacket::Bye(rtcp::Bye { ssrcs: vec![Ssrc(PUB)], reason: None })),
        rr(RECV, PUB, 255),
        session(SessionMessage::Keepalive { txid: [1; 12] }),
        session(SessionMessage::Leave { txid: [2; 12] }),
        session(SessionMessage::Quality { txid: [3; 12], quality: Quality::Sd }),
        session(SessionMessage::LastN { txid: [4; 12], n: 1 }),
        // Messages only a router sends.
        session(SessionMessage::CallEnded { txid: [5; 12] }),
        session(SessionMessage::JoinAck { txid: [6; 12], mapped: addr(0), participant: 1, timeout_ms: 1 }),
        // DTLS-shaped, and garbage in every other range of the first byte.
        vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 1, 0, 0, 0],
        vec![0, 1, 0, 4, 0x21, 0x12],
        vec![64; 40],
        vec![0xff; 40],
        vec![4; 100],
        vec![],
    ];
    kinds.push(vec![0x80; 1]);
    let mut sent = 0u64;
    for round in 0..100u16 {
        for k in &kinds {
            h.now += MS;
            h.input(addr(100 + round % 10), k.clone());
            sent += 1;
        }
    }
    let s = *h.r.stats();
    assert!(h.take().is_empty(), "nothing is sent to anyone");
    assert_eq!(s.tx_datagrams, before.tx_datagrams);
    assert_eq!(s.dropped() - before.dropped(), sent, "every datagram dropped and counted once: {s:?}");
    assert_eq!(s.dropped_unadmitted - before.dropped_unadmitted, 100 * 12, "media, RTCP, indications, DTLS");
    assert_eq!(s.dropped_malformed - before.dropped_malformed, 100 * 8, "router-only messages and garbage");
    assert_eq!((h.r.snapshot(), h.r.participant_count(), h.events.len()), (snapshot, participants, events));
    assert!(h.r.by_addr.len() == 2 && h.r.webrtc_addrs.is_empty());
}

#[test]
fn a_join_with_a_bad_token_is_answered_with_no_more_bytes_than_it_sent() {
    let mut h = H::new();
    two(&mut h);
    let valid = h.token(call(1), 7, Role::Publisher);
    let mut forged = valid.clone();
    forged[50] ^= 1;
    let claims = Claims {
        call_id: call(1),
        participant_id: ParticipantId(8),
        role: Role::Publisher,
        expires_at_ms: EPOCH_MS - 1,
    };
    let expired = token::sign(&h.key, &claims).to_vec();
    let tokens: Vec<(Vec<u8>, bool)> = vec![
        (forged, true),
        (expired, true),
        (valid[..97].to_vec(), true),
        ([valid.clone(), valid.clone(), valid.clone()].concat(), true),
        // Shorter than any error reply: not answered at all.
        (vec![], false),
        (vec![1], false),
        (vec![1; 8], false),
    ];
    let before = *h.r.stats();
    for (i, (tok, answered)) in tokens.iter().enumerate() {
        let join = SessionMessage::Join {
            txid: [i as u8; 12],
            token: tok.clone(),
            ssrcs: vec![],
            quality: Quality::Hd,
            srtp: false,
        };
        let req = join.to_vec();
        h.input(addr(50), req.clone());
        let t = h.take();
        assert_eq!(t.len(), usize::from(*answered), "token of {} bytes: {t:?}", tok.len());
        for r in &t {
            assert!(r.contents.len() <= req.len(), "{} bytes answered with {}", req.len(), r.contents.len());
            let m = SessionMessage::parse(&r.contents).unwrap();
            assert!(matches!(m, SessionMessage::JoinError { code: JoinErrorCode::Unauthorized, .. }), "{m:?}");
        }
    }
    let s = *h.r.stats();
    assert_eq!(s.dropped_bad_token - before.dropped_bad_token, tokens.len() as u64);
    assert_eq!(s.replies_withheld - before.replies_withheld, 3);
    assert_eq!(h.r.participant_count(), 2);
}

#[test]
fn ice_checks_for_unknown_ufrags_and_dtls_before_a_check_keep_no_state() {
    let mut h = H::new();
    h.r.set_dtls_identity(super::webrtc::identity());
    let c = call(4);
    let config = (dimpl::Config::builder().build().unwrap(), Quality::Hd);
    let mut peer = Peer::open_with(&mut h, 1, c, 1, true, None, config);
    let (legs, participants, snapshot) = (h.r.by_ufrag.len(), h.r.participant_count(), h.r.snapshot());
    let check = |local: &str, pwd: &str, txid: u8| {
        let mut b = Vec::new();
        let username = Username { local, remote: "p1" };
        Check { txid: [txid; 12], username, priority: 1, role: IceRole::Controlling(7), use_candidate: true }
            .write(&mut b, pwd.as_bytes());
        b
    };
    let hello = {
        let cert = dimpl::certificate::generate_self_signed_certificate().unwrap();
        let mut dtls = dimpl::Dtls::new_auto(Arc::new(dimpl::Config::builder().build().unwrap()), cert, h.now);
        dtls.set_active(true);
        let mut buf = vec![0u8; 4096];
        match dtls.poll_output(&mut buf) {
            dimpl::Output::Packet(p) => p.to_vec(),
            o => panic!("no ClientHello: {o:?}"),
        }
    };
    // From 100 addresses: unknown ufrags, the leg's ufrag with a wrong
    // password, and ClientHellos, 10 of each an address.
    for a in 0..100u16 {
        for k in 0..10u8 {
            h.now += MS;
            h.input(addr(200 + a), check(&format!("nobody{k}"), "whatever-password-xxxxxx", k));
            h.input(addr(200 + a), check("r1uf", "not-the-routers-password", k));
            h.input(addr(200 + a), hello.clone());
        }
    }
    assert!(h.take().is_empty(), "no answer to anyone");
    let s = *h.r.stats();
    assert_eq!((s.dropped_ice_refused, s.dropped_unadmitted, s.ice_checks), (2000, 1000, 0));
    assert!(h.r.webrtc_addrs.is_empty() && h.r.by_addr.is_empty(), "no address is remembered");
    assert_eq!((h.r.by_ufrag.len(), h.r.participant_count(), h.r.snapshot()), (legs, participants, snapshot));
    // The leg itself is unharmed: its peer checks and handshakes.
    peer.connect_ice(&mut h);
    peer.handshake(&mut h);
    assert_eq!(h.r.webrtc_addrs.len(), 1);
}

/// `b` with its 16-bit big-endian field at `at` replaced by `v`.
fn with_u16(mut b: Vec<u8>, at: usize, v: u16) -> Vec<u8> {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
    b
}

#[test]
fn oversize_and_truncated_datagrams_are_dropped_and_counted() {
    let mut h = H::with(retransmitting());
    two(&mut h);
    let sized = |len: usize| {
        RtpPacket { pt: Pt(96), seq: SeqNo(1), ssrc: Ssrc(PUB), payload: vec![7; len - 12], ..Default::default() }
            .to_vec()
            .unwrap()
    };
    // The longest datagram the router takes is forwarded; one byte more is not.
    h.input(addr(0), sized(crate::MAX_DATAGRAM));
    assert_eq!(dests(&h.take()), vec![addr(1)]);
    let header_only = RtpPacket { pt: Pt(96), seq: SeqNo(2), ssrc: Ssrc(PUB), ..Default::default() }.to_vec().unwrap();
    let pli =
        rtcp::write_compound(&[RtcpPacket::Pli(rtcp::Pli { sender_ssrc: Ssrc(RECV), media_ssrc: Ssrc(PUB) })]).unwrap();
    let keepalive = SessionMessage::Keepalive { txid: [1; 12] }.to_vec();
    let quality = SessionMessage::Quality { txid: [1; 12], quality: Quality::Sd }.to_vec();
    let mut padded = header_only.clone();
    padded[0] |= 0x20; // padding, whose count (the last byte) is more than the packet
    padded.extend_from_slice(&[0, 0, 0, 200]);
    let bad: Vec<(&str, SocketAddr, Vec<u8>)> = vec![
        ("RTP one byte over", addr(0), sized(crate::MAX_DATAGRAM + 1)),
        ("RTP of 65535 bytes", addr(0), sized(65_535)),
        ("RTP header cut at 11", addr(0), header_only[..11].to_vec()),
        ("RTP header cut at 2", addr(0), header_only[..2].to_vec()),
        ("RTP first byte only", addr(0), header_only[..1].to_vec()),
        ("RTP with 15 CSRCs it lacks", addr(0), [vec![header_only[0] | 0x0f], header_only[1..].to_vec()].concat()),
        ("RTP with an extension it lacks", addr(0), [vec![header_only[0] | 0x10], header_only[1..].to_vec()].concat()),
        ("RTP with padding longer than itself", addr(0), padded),
        ("RTCP length says more", addr(1), with_u16(pli.clone(), 2, 10)),
        ("RTCP length says less", addr(1), with_u16(pli.clone(), 2, 1)),
        ("RTCP cut in its header", addr(1), pli[..3].to_vec()),
        ("RTCP with a stray byte", addr(1), [pli.clone(), vec![0]].concat()),
        ("RTCP oversize", addr(1), [pli.clone(), vec![0; 4096]].concat()),
        ("STUN length says more", addr(1), with_u16(keepalive.clone(), 2, 100)),
        ("STUN length not a multiple of 4", addr(1), with_u16(quality.clone(), 2, 7)),
        ("STUN cut in its header", addr(1), keepalive[..19].to_vec()),
        ("STUN attribute longer than the message", addr(1), with_u16(quality.clone(), 22, 200)),
        ("STUN oversize", addr(1), [keepalive.clone(), vec![0; 4096]].concat()),
        ("empty", addr(1), vec![]),
    ];
    for (what, from, b) in bad {
        let before = *h.r.stats();
        h.input(from, b);
        let s = *h.r.stats();
        assert!(h.take().is_empty(), "{what}: sent something");
        assert_eq!(s.dropped() - before.dropped(), 1, "{what}: one drop");
        assert_eq!(s.dropped_malformed - before.dropped_malformed, 1, "{what}: as malformed");
    }
    // The two are still in the call.
    assert_eq!(h.r.participant_count(), 2);
    h.input(addr(0), rtp(PUB, 3));
    assert_eq!(dests(&h.take()), vec![addr(1)]);
}

#[test]
fn an_ssrc_claimed_by_two_participants_is_refused_and_never_forwarded() {
    let mut h = H::new();
    two(&mut h);
    let joined = h.r.stats().joins;
    // Declared in a Join: refused with 403, whoever asks.
    for (pid, ssrcs) in [(3u64, vec![PUB]), (4, vec![300, RECV]), (5, vec![500, 500])] {
        let tok = h.token(call(1), pid, Role::Publisher);
        let ssrcs = ssrcs.into_iter().map(|s| (Ssrc(s), MediaKind::Video)).collect();
        let reply = h.join_with(addr(pid as u16), tok, ssrcs);
        assert!(matches!(reply, SessionMessage::JoinError { code: JoinErrorCode::Forbidden, .. }), "{reply:?}");
    }
    assert_eq!(h.r.stats().joins, joined);
    // Claimed by sending: the receiver sends with the publisher's SSRC, and
    // a participant that declared none (it learns its SSRCs) tries too.
    let tok = h.token(call(1), 6, Role::Publisher);
    assert!(matches!(h.join_with(addr(6), tok, vec![]), SessionMessage::JoinAck { .. }));
    h.input(addr(0), rtp(PUB, 1));
    assert_eq!(dests(&h.take()), vec![addr(1), addr(6)]);
    let before = h.r.stats().dropped_ssrc_not_owned;
    for seq in 2..12 {
        h.input(addr(1), rtp(PUB, seq));
        h.input(addr(6), rtp(PUB, seq));
        h.input(addr(6), rtp(RECV, seq));
    }
    assert!(dests(&h.take()).is_empty(), "never forwarded");
    assert_eq!(h.r.stats().dropped_ssrc_not_owned - before, 30);
    // Its own new SSRC it claims; then that one is taken for everyone else.
    h.input(addr(6), rtp(600, 1));
    assert_eq!(dests(&h.take()), vec![addr(0), addr(1)]);
    h.input(addr(1), rtp(600, 2));
    assert!(h.take().is_empty());
    // RTCP about someone else's SSRC: a BYE does not end the publisher's stream, an SR is not kept.
    let bye = rtcp::write_compound(&[RtcpPacket::Bye(rtcp::Bye { ssrcs: vec![Ssrc(PUB)], reason: None })]).unwrap();
    h.input(addr(6), bye);
    assert!(h.take().is_empty());
    h.input(addr(0), rtp(PUB, 12));
    assert_eq!(dests(&h.take()), vec![addr(1), addr(6)], "still the publisher's");
    assert_eq!(h.r.stats().dropped_ssrc_not_owned - before, 31);
}
