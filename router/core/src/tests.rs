//! Core unit tests, driven with synthetic time.

use super::*;
use corecast_proto::rtcp::{self, RtcpPacket};
use corecast_proto::rtp::RtpPacket;
use corecast_proto::session::{self, SessionMessage};
use corecast_proto::token::{Claims, SigningKey};
use corecast_proto::{Pt, SeqNo};
use proptest::prelude::*;

const EPOCH_MS: u64 = 1_700_000_000_000;

struct H {
    r: Router,
    now: Instant,
    key: SigningKey,
    transmits: Vec<Transmit>,
    events: Vec<Event>,
}

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + i))
}

fn call(n: u8) -> CallId {
    CallId([n; 16])
}

impl H {
    fn new() -> H {
        H::with(RouterConfig::default())
    }
    fn with(cfg: RouterConfig) -> H {
        let key = token::dev_signing_key();
        let now = Instant::now();
        H { r: Router::new(cfg, key.verifying_key(), now, EPOCH_MS), now, key, transmits: vec![], events: vec![] }
    }
    fn token(&self, c: CallId, pid: u64, role: Role) -> Vec<u8> {
        let claims = Claims { call_id: c, participant_id: ParticipantId(pid), role, expires_at_ms: EPOCH_MS + 60_000 };
        token::sign(&self.key, &claims).to_vec()
    }
    fn input(&mut self, source: SocketAddr, b: Vec<u8>) {
        self.r.handle_input(self.now, Input::Receive { source, contents: Bytes::from(b) });
        self.drain();
    }
    fn drain(&mut self) {
        loop {
            match self.r.poll_output() {
                Output::Transmit(t) => self.transmits.push(t),
                Output::Relay(r) => panic!("single worker relayed {r:?}"),
                Output::Event(e) => self.events.push(e),
                Output::Timeout(_) => break,
            }
        }
    }
    fn take(&mut self) -> Vec<Transmit> {
        std::mem::take(&mut self.transmits)
    }
    fn join_with(&mut self, a: SocketAddr, tok: Vec<u8>, ssrcs: Vec<(Ssrc, MediaKind)>) -> SessionMessage {
        let m = SessionMessage::Join { txid: [9; 12], token: tok, ssrcs, quality: Quality::Hd };
        self.input(a, m.to_vec());
        let t = self.take();
        assert_eq!(t.len(), 1, "one reply to a join");
        assert_eq!(t[0].destination, a);
        SessionMessage::parse(&t[0].contents).unwrap()
    }
    fn join(&mut self, a: SocketAddr, c: CallId, pid: u64, ssrc: u32) {
        let tok = self.token(c, pid, Role::Publisher);
        let reply = self.join_with(a, tok, vec![(Ssrc(ssrc), MediaKind::Video)]);
        assert!(matches!(reply, SessionMessage::JoinAck { participant, .. } if participant == pid), "{reply:?}");
    }
    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.r.handle_input(self.now, Input::Timeout);
        self.drain();
    }
}

fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    RtpPacket { pt: Pt(96), seq: SeqNo(seq), ssrc: Ssrc(ssrc), payload: vec![seq as u8; 100], ..Default::default() }
        .to_vec()
        .unwrap()
}

#[test]
fn four_participants_each_get_the_other_three() {
    let mut h = H::new();
    for i in 0..4u16 {
        h.join(addr(i), call(1), i as u64 + 1, 100 + i as u32);
    }
    assert_eq!(h.r.participant_count(), 4);
    for seq in 0..50u16 {
        for i in 0..4u16 {
            let pkt = rtp(100 + i as u32, seq);
            h.input(addr(i), pkt.clone());
            let t = h.take();
            assert_eq!(t.len(), 3);
            let mut dests: Vec<_> = t.iter().map(|t| t.destination).collect();
            dests.sort();
            let mut want: Vec<_> = (0..4).filter(|&j| j != i).map(addr).collect();
            want.sort();
            assert_eq!(dests, want);
            assert!(t.iter().all(|t| t.contents[..] == pkt[..]));
        }
    }
    assert_eq!(h.r.stats().forwarded_rtp, 50 * 4 * 3);
    assert_eq!(h.r.stats().dropped(), 0);
}

#[test]
fn calls_are_isolated() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    h.join(addr(1), call(1), 2, 101);
    h.join(addr(2), call(2), 3, 102);
    h.input(addr(0), rtp(100, 1));
    let t = h.take();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].destination, addr(1));
}

#[test]
fn unadmitted_forged_expired_spoofing_and_malformed_get_nothing_forwarded() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    h.join(addr(1), call(1), 2, 101);
    // Unadmitted sender.
    h.input(addr(9), rtp(555, 1));
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_unadmitted, 1);
    // Forged token (other key).
    let other = SigningKey::from_bytes(&[1; 32]);
    let forged = token::sign(
        &other,
        &Claims { call_id: call(1), participant_id: ParticipantId(7), role: Role::Publisher, expires_at_ms: u64::MAX },
    );
    let reply = h.join_with(addr(7), forged.to_vec(), vec![]);
    assert!(matches!(reply, SessionMessage::JoinError { code: JoinErrorCode::Unauthorized, .. }));
    h.input(addr(7), rtp(777, 1));
    assert!(h.take().is_empty());
    // Expired token.
    let expired = token::sign(
        &h.key,
        &Claims { call_id: call(1), participant_id: ParticipantId(8), role: Role::Publisher, expires_at_ms: EPOCH_MS },
    );
    let reply = h.join_with(addr(8), expired.to_vec(), vec![]);
    assert!(
        matches!(reply, SessionMessage::JoinError { code: JoinErrorCode::Unauthorized, ref reason, .. } if reason.contains("expired"))
    );
    h.input(addr(8), rtp(888, 1));
    assert!(h.take().is_empty());
    // Spoofing another's SSRC.
    h.input(addr(1), rtp(100, 1));
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_ssrc_not_owned, 1);
    // Malformed bytes from an admitted sender.
    h.input(addr(0), vec![0x80, 96, 1]);
    h.input(addr(0), vec![0xff; 40]);
    h.input(addr(0), vec![0x8f, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100]);
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_malformed, 3);
    assert_eq!(h.r.stats().dropped_bad_token, 2);
    // The call goes on.
    h.input(addr(0), rtp(100, 2));
    assert_eq!(h.take().len(), 1);
    h.input(addr(1), rtp(101, 2));
    assert_eq!(h.take().len(), 1);
}

#[test]
fn learned_ssrcs_cannot_be_stolen() {
    let mut h = H::new();
    for i in 0..2u16 {
        let tok = h.token(call(1), i as u64 + 1, Role::Publisher);
        assert!(matches!(h.join_with(addr(i), tok, vec![]), SessionMessage::JoinAck { .. }));
    }
    h.input(addr(0), rtp(100, 1));
    assert_eq!(h.take().len(), 1);
    assert!(h.events.contains(&Event::ProducerAdded { call: call(1), participant: ParticipantId(1), ssrc: Ssrc(100) }));
    h.input(addr(1), rtp(100, 2));
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_ssrc_not_owned, 1);
}

#[test]
fn declared_ssrc_in_use_is_refused() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    let tok = h.token(call(1), 2, Role::Publisher);
    let reply = h.join_with(addr(1), tok, vec![(Ssrc(100), MediaKind::Video)]);
    assert!(matches!(reply, SessionMessage::JoinError { code: JoinErrorCode::Forbidden, .. }));
}

#[test]
fn subscriber_receives_but_cannot_publish() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    let tok = h.token(call(1), 2, Role::Subscriber);
    assert!(matches!(h.join_with(addr(1), tok, vec![]), SessionMessage::JoinAck { .. }));
    h.input(addr(1), rtp(200, 1));
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_not_publisher, 1);
    h.input(addr(0), rtp(100, 1));
    assert_eq!(h.take()[0].destination, addr(1));
}

#[test]
fn join_is_idempotent_and_follows_address_changes() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    h.join(addr(0), call(1), 1, 100); // retransmitted join
    assert_eq!(h.r.participant_count(), 1);
    h.join(addr(1), call(1), 2, 101);
    // Participant 1 reconnects from a new port with a fresh token.
    let tok = h.token(call(1), 1, Role::Publisher);
    assert!(matches!(h.join_with(addr(5), tok, vec![(Ssrc(100), MediaKind::Video)]), SessionMessage::JoinAck { .. }));
    assert_eq!(h.r.participant_count(), 2);
    h.input(addr(1), rtp(101, 1));
    assert_eq!(h.take()[0].destination, addr(5));
    h.input(addr(0), rtp(100, 1));
    assert!(h.take().is_empty(), "old address is no longer admitted");
}

#[test]
fn call_cap_gives_call_full() {
    let mut h = H::with(RouterConfig { max_participants_per_call: 2, ..Default::default() });
    h.join(addr(0), call(1), 1, 100);
    h.join(addr(1), call(1), 2, 101);
    let tok = h.token(call(1), 3, Role::Publisher);
    let r = h.join_with(addr(2), tok, vec![]);
    assert!(matches!(r, SessionMessage::JoinError { code: JoinErrorCode::CallFull, .. }));
}

#[test]
fn silence_timeout_with_synthetic_time() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    h.join(addr(1), call(1), 2, 101);
    h.events.clear();
    for _ in 0..20 {
        h.advance(Duration::from_secs(1));
        h.input(addr(0), SessionMessage::Keepalive { txid: [0; 12] }.to_vec());
    }
    assert_eq!(h.r.participant_count(), 1);
    assert_eq!(
        h.events,
        vec![Event::ParticipantLeft { call: call(1), participant: ParticipantId(2), reason: LeaveReason::Timeout }]
    );
    h.advance(Duration::from_secs(16));
    assert_eq!(h.r.participant_count(), 0);
    assert_eq!(h.r.call_count(), 0);
    assert!(h.events.contains(&Event::CallClosed(call(1))));
}

#[test]
fn timeout_output_is_the_next_deadline() {
    // The speaker ranking comes before the sweep ...
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    match h.r.poll_output() {
        Output::Timeout(t) => assert_eq!(t, h.now + RouterConfig::default().audio_rank_interval),
        o => panic!("{o:?}"),
    }
    // ... and without it the sweep is the only deadline.
    let mut h = H::with(RouterConfig { audio_level_ext_id: 0, ..RouterConfig::default() });
    h.join(addr(0), call(1), 1, 100);
    match h.r.poll_output() {
        Output::Timeout(t) => assert_eq!(t, h.now + RouterConfig::default().sweep_interval),
        o => panic!("{o:?}"),
    }
}

#[test]
fn leave_and_end_call() {
    let mut h = H::new();
    for i in 0..3u16 {
        h.join(addr(i), call(1), i as u64 + 1, 100 + i as u32);
    }
    h.input(addr(2), SessionMessage::Leave { txid: [0; 12] }.to_vec());
    assert_eq!(h.r.participant_count(), 2);
    h.events.clear();
    h.r.handle_input(h.now, Input::Command(Command::EndCall(call(1))));
    h.drain();
    let t = h.take();
    assert_eq!(t.len(), 2);
    assert!(t.iter().all(|t| matches!(SessionMessage::parse(&t.contents), Ok(SessionMessage::CallEnded { .. }))));
    assert_eq!(h.r.call_count(), 0);
    assert!(h.events.contains(&Event::CallClosed(call(1))));
    // A token for the ended call no longer admits anyone.
    let tok = h.token(call(1), 1, Role::Publisher);
    assert!(matches!(
        h.join_with(addr(0), tok, vec![]),
        SessionMessage::JoinError { code: JoinErrorCode::Forbidden, .. }
    ));
}

#[test]
fn pli_goes_to_the_producer_and_is_throttled() {
    let mut h = H::new();
    for i in 0..3u16 {
        h.join(addr(i), call(1), i as u64 + 1, 100 + i as u32);
    }
    let pli = |from: u32| {
        rtcp::write_compound(&[RtcpPacket::Pli(rtcp::Pli { sender_ssrc: Ssrc(from), media_ssrc: Ssrc(100) })]).unwrap()
    };
    h.input(addr(1), pli(101));
    let t = h.take();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].destination, addr(0));
    h.input(addr(2), pli(102)); // within the throttle interval
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_keyframe_throttled, 1);
    h.now += Duration::from_millis(400);
    h.input(addr(2), pli(102));
    assert_eq!(h.take().len(), 1);
    // FIR too.
    h.now += Duration::from_millis(400);
    let fir =
        rtcp::write_compound(&[RtcpPacket::Fir(rtcp::Fir { sender_ssrc: Ssrc(101), entries: vec![(Ssrc(100), 1)] })])
            .unwrap();
    h.input(addr(1), fir);
    assert_eq!(h.take()[0].destination, addr(0));
}

#[test]
fn nack_goes_to_the_producer_and_sr_to_everyone() {
    let mut h = H::new();
    for i in 0..3u16 {
        h.join(addr(i), call(1), i as u64 + 1, 100 + i as u32);
    }
    let nack = rtcp::Nack::from_lost(Ssrc(101), Ssrc(100), &[SeqNo(5), SeqNo(6)]);
    h.input(addr(1), rtcp::write_compound(&[RtcpPacket::Nack(nack.clone())]).unwrap());
    let t = h.take();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].destination, addr(0));
    assert_eq!(rtcp::parse_compound(&t[0].contents).unwrap(), vec![RtcpPacket::Nack(nack)]);
    let sr = RtcpPacket::SenderReport(rtcp::SenderReport { ssrc: Ssrc(100), ntp_time: 5, ..Default::default() });
    h.input(addr(0), rtcp::write_compound(std::slice::from_ref(&sr)).unwrap());
    assert_eq!(h.take().len(), 2);
    // An SR about someone else's SSRC is not forwarded.
    let fake = RtcpPacket::SenderReport(rtcp::SenderReport { ssrc: Ssrc(101), ..Default::default() });
    h.input(addr(0), rtcp::write_compound(&[fake]).unwrap());
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_rtcp_unroutable, 1);
}

#[test]
fn receiver_reports_are_kept_and_routed() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    h.join(addr(1), call(1), 2, 101);
    let rr = RtcpPacket::ReceiverReport(rtcp::ReceiverReport {
        ssrc: Ssrc(101),
        reports: vec![rtcp::ReportBlock { ssrc: Ssrc(100), fraction_lost: 64, ..Default::default() }],
    });
    h.input(addr(1), rtcp::write_compound(&[rr]).unwrap());
    assert_eq!(h.take()[0].destination, addr(0));
    let snap = h.r.snapshot();
    let p = snap[0].participants.iter().find(|p| p.participant == ParticipantId(2)).unwrap();
    assert_eq!(p.reported_loss_fraction, 64);
}

#[test]
fn placement_spreads_calls_evenly() {
    for workers in [2usize, 3, 4] {
        let mut count = vec![0usize; workers];
        for i in 0..4000u32 {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_le_bytes());
            count[Placement::worker_for(&CallId(id), workers)] += 1;
        }
        let even = 4000 / workers;
        assert!(count.iter().all(|&c| c > even * 8 / 10 && c < even * 12 / 10), "{workers}: {count:?}");
    }
}

#[test]
fn placement_redirects_to_the_owning_worker() {
    let addrs = vec![addr(100), addr(101)];
    let c = (0u8..=255).map(call).find(|c| Placement::worker_for(c, 2) == 1).unwrap();
    let mut h =
        H::with(RouterConfig { placement: Placement { index: 0, addresses: addrs.clone() }, ..Default::default() });
    let tok = h.token(c, 1, Role::Publisher);
    match h.join_with(addr(0), tok, vec![]) {
        SessionMessage::JoinError { code: JoinErrorCode::TryAlternate, alternate, .. } => {
            assert_eq!(alternate, Some(addrs[1]))
        }
        m => panic!("{m:?}"),
    }
    assert_eq!(h.r.participant_count(), 0);
}

#[test]
fn mixer_output_goes_to_sd_receivers_only() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    let tok = h.token(call(1), 2, Role::Subscriber);
    let m = SessionMessage::Join { txid: [1; 12], token: tok, ssrcs: vec![], quality: Quality::Sd };
    h.input(addr(1), m.to_vec());
    h.take();
    let tok = h.token(call(1), 3, Role::Mixer);
    assert!(matches!(h.join_with(addr(2), tok, vec![(Ssrc(900), MediaKind::Video)]), SessionMessage::JoinAck { .. }));
    h.input(addr(2), rtp(900, 1));
    let t = h.take();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].destination, addr(1));
}

proptest! {
    /// Whatever arrives, from admitted or unadmitted addresses, the router
    /// never panics and only forwards valid RTP whose SSRC the sender owns.
    #[test]
    fn random_traffic_never_forwards_what_it_should_not(
        pkts in proptest::collection::vec((0u16..4, proptest::collection::vec(any::<u8>(), 0..64), any::<bool>()), 1..100)
    ) {
        let mut h = H::new();
        h.join(addr(0), call(1), 1, 100);
        h.join(addr(1), call(1), 2, 101);
        for (from, mut bytes, make_rtp) in pkts {
            if make_rtp && bytes.len() >= 12 {
                bytes[0] = 0x80;
                bytes[1] &= 0x7f;
            }
            h.input(addr(from), bytes.clone());
            for t in h.take() {
                if let Ok(hdr) = RtpHeader::parse(&t.contents) {
                    if classify(&t.contents) == Kind::Rtp {
                        prop_assert!(from < 2);
                        prop_assert_eq!(hdr.ssrc, Ssrc(100 + from as u32));
                    }
                }
            }
        }
    }
}

fn rtp_pt(ssrc: u32, seq: u16, pt: u8) -> Vec<u8> {
    RtpPacket { pt: Pt(pt), seq: SeqNo(seq), ssrc: Ssrc(ssrc), payload: vec![1; 50], ..Default::default() }
        .to_vec()
        .unwrap()
}

/// Publisher 1 (audio 100, video 101) at addr 0; HD receiver 2 at addr 1
/// (audio 200, video 201); receiver 3 at addr 2 (audio 300, video 301).
fn sd_call(h: &mut H, mixer: bool) {
    for (i, pid) in [(0u16, 1u64), (1, 2), (2, 3)] {
        let tok = h.token(call(1), pid, Role::Publisher);
        let base = pid as u32 * 100;
        let r = h.join_with(addr(i), tok, vec![(Ssrc(base), MediaKind::Audio), (Ssrc(base + 1), MediaKind::Video)]);
        assert!(matches!(r, SessionMessage::JoinAck { .. }));
    }
    if mixer {
        let tok = h.token(call(1), 9, Role::Mixer);
        assert!(matches!(
            h.join_with(addr(9), tok, vec![(Ssrc(900), MediaKind::Video)]),
            SessionMessage::JoinAck { .. }
        ));
    }
}

fn rr(from: u32, about: u32, fraction_lost: u8) -> Vec<u8> {
    rtcp::write_compound(&[RtcpPacket::ReceiverReport(rtcp::ReceiverReport {
        ssrc: Ssrc(from),
        reports: vec![rtcp::ReportBlock { ssrc: Ssrc(about), fraction_lost, ..Default::default() }],
    })])
    .unwrap()
}

fn dests(t: &[Transmit]) -> Vec<SocketAddr> {
    let mut d: Vec<_> = t.iter().filter(|t| classify(&t.contents) == Kind::Rtp).map(|t| t.destination).collect();
    d.sort();
    d
}

#[test]
fn sd_receiver_gets_composite_and_audio_hd_receivers_are_unaffected() {
    let mut h = H::new();
    sd_call(&mut h, true);
    h.events.clear();
    h.input(addr(2), SessionMessage::Quality { txid: [0; 12], quality: Quality::Sd }.to_vec());
    assert!(h.events.contains(&Event::MixerDemand { call: call(1), needed: true }));
    h.take();
    // Publisher video: HD receiver and mixer get it, SD receiver does not.
    h.input(addr(0), rtp_pt(101, 1, 96));
    assert_eq!(dests(&h.take()), vec![addr(1), addr(9)]);
    // Publisher audio: every human receiver, not the mixer.
    h.input(addr(0), rtp_pt(100, 1, 111));
    assert_eq!(dests(&h.take()), vec![addr(1), addr(2)]);
    // The composite: SD receiver only.
    h.input(addr(9), rtp_pt(900, 1, 96));
    assert_eq!(dests(&h.take()), vec![addr(2)]);
    // Leaving removes the demand.
    h.events.clear();
    h.input(addr(2), SessionMessage::Leave { txid: [0; 12] }.to_vec());
    assert!(h.events.contains(&Event::MixerDemand { call: call(1), needed: false }));
    // ... and the mixer is told to go.
    assert!(h.events.contains(&Event::ParticipantLeft {
        call: call(1),
        participant: ParticipantId(9),
        reason: LeaveReason::Removed
    }));
    let t = h.take();
    assert!(t.iter().any(|t| t.destination == addr(9)
        && matches!(SessionMessage::parse(&t.contents), Ok(SessionMessage::CallEnded { .. }))));
    assert_eq!(h.r.snapshot()[0].participants.len(), 2);
}

#[test]
fn without_a_mixer_sd_receivers_keep_raw_video() {
    let mut h = H::new();
    sd_call(&mut h, false);
    h.input(addr(2), SessionMessage::Quality { txid: [0; 12], quality: Quality::Sd }.to_vec());
    h.take();
    h.input(addr(0), rtp_pt(101, 1, 96));
    assert_eq!(dests(&h.take()), vec![addr(1), addr(2)]);
}

#[test]
fn heavy_loss_moves_a_receiver_to_sd_and_back_with_hysteresis_and_no_sequence_gap() {
    let mut h = H::new();
    sd_call(&mut h, true);
    let mut seq = 1000u16;
    let mut send_video = |h: &mut H| {
        seq = seq.wrapping_add(1);
        h.input(addr(0), rtp_pt(101, seq, 96));
        h.take()
    };
    for _ in 0..5 {
        send_video(&mut h);
    }
    h.events.clear();
    // One bad report is not enough; in-band loss changes nothing.
    h.input(addr(2), rr(300, 101, 60));
    h.input(addr(2), rr(300, 101, 15));
    h.input(addr(2), rr(300, 101, 60));
    assert!(h.events.iter().all(|e| !matches!(e, Event::QualityChanged { .. })));
    h.input(addr(2), rr(300, 101, 60));
    assert!(h.events.contains(&Event::QualityChanged {
        call: call(1),
        participant: ParticipantId(3),
        quality: Quality::Sd
    }));
    assert!(h.events.contains(&Event::MixerDemand { call: call(1), needed: true }));
    // Moving to SD asks the mixer for a keyframe of the composite.
    let t = h.take();
    assert!(t.iter().any(|t| t.destination == addr(9) && classify(&t.contents) == Kind::Rtcp));
    // While on SD, raw video skips this receiver (sequence numbers run on).
    for _ in 0..20 {
        let t = send_video(&mut h);
        assert_eq!(dests(&t), vec![addr(1), addr(9)]);
    }
    // Loss stops: back to HD only after `hd_recovery` of good reports.
    h.events.clear();
    for _ in 0..9 {
        h.now += Duration::from_secs(1);
        h.input(addr(2), rr(300, 900, 0));
    }
    assert!(h.events.iter().all(|e| !matches!(e, Event::QualityChanged { .. })));
    h.now += Duration::from_secs(2);
    h.input(addr(2), rr(300, 900, 0));
    assert!(h.events.contains(&Event::QualityChanged {
        call: call(1),
        participant: ParticipantId(3),
        quality: Quality::Hd
    }));
    assert!(h.events.contains(&Event::MixerDemand { call: call(1), needed: false }));
    // Raw video resumes with the next sequence number the receiver expects,
    // and the producer is asked for a keyframe.
    h.take();
    let t = send_video(&mut h);
    let to_r = t.iter().find(|t| t.destination == addr(2)).expect("raw video resumes");
    assert_eq!(RtpHeader::parse(&to_r.contents).unwrap().seq, SeqNo(1006));
    let to_hd = t.iter().find(|t| t.destination == addr(1)).unwrap();
    assert_eq!(RtpHeader::parse(&to_hd.contents).unwrap().seq, SeqNo(1026), "HD receivers see the real numbers");
    assert!(t.iter().any(|t| t.destination == addr(0) && classify(&t.contents) == Kind::Rtcp), "PLI to the producer");
    let t = send_video(&mut h);
    let to_r = t.iter().find(|t| t.destination == addr(2)).unwrap();
    assert_eq!(RtpHeader::parse(&to_r.contents).unwrap().seq, SeqNo(1007));
    // A NACK for a shifted number reaches the producer as the real number.
    let nack = rtcp::Nack::from_lost(Ssrc(300), Ssrc(101), &[SeqNo(1007)]);
    h.input(addr(2), rtcp::write_compound(&[RtcpPacket::Nack(nack)]).unwrap());
    let t = h.take();
    let RtcpPacket::Nack(n) = &rtcp::parse_compound(&t[0].contents).unwrap()[0] else { panic!() };
    assert_eq!(n.lost().collect::<Vec<_>>(), vec![SeqNo(1027)]);
}

#[test]
fn explicit_sd_is_not_undone_by_good_reports() {
    let mut h = H::new();
    sd_call(&mut h, true);
    h.input(addr(2), SessionMessage::Quality { txid: [0; 12], quality: Quality::Sd }.to_vec());
    h.events.clear();
    for _ in 0..30 {
        h.now += Duration::from_secs(1);
        h.input(addr(2), rr(300, 900, 0));
    }
    assert!(h.events.iter().all(|e| !matches!(e, Event::QualityChanged { .. })));
}

#[test]
fn low_bandwidth_estimate_moves_to_sd() {
    let mut h = H::new();
    sd_call(&mut h, true);
    for s in 0..100u16 {
        h.input(addr(0), rtp_pt(101, s, 96)); // 100 x 62 bytes
    }
    h.advance(Duration::from_millis(500)); // rates are measured at the sweep
    h.events.clear();
    let remb = |bps| {
        rtcp::write_compound(&[RtcpPacket::Remb(rtcp::Remb {
            sender_ssrc: Ssrc(300),
            bitrate_bps: bps,
            ssrcs: vec![],
        })])
        .unwrap()
    };
    h.input(addr(2), remb(1_000_000));
    h.input(addr(2), remb(1_000_000));
    assert!(h.events.is_empty(), "enough bandwidth: stays HD");
    h.input(addr(2), remb(10_000));
    h.input(addr(2), remb(10_000));
    assert!(h.events.contains(&Event::QualityChanged {
        call: call(1),
        participant: ParticipantId(3),
        quality: Quality::Sd
    }));
}

/// Two workers of one router, wired the way the driver wires them: relay
/// outputs go to the other worker as `Input::Relayed`, relay events become
/// `AttachRelay` / `DetachRelay` commands.
struct Pair {
    w: Vec<Router>,
    now: Instant,
    key: SigningKey,
    delivered: Vec<(SocketAddr, Bytes)>,
    events: Vec<Event>,
}

impl Pair {
    fn new(budget: usize) -> Pair {
        let key = token::dev_signing_key();
        let now = Instant::now();
        let addrs = vec![addr(500), addr(501)];
        let w = (0..2)
            .map(|i| {
                let cfg = RouterConfig {
                    max_receivers_per_worker: budget,
                    placement: Placement { index: i, addresses: addrs.clone() },
                    ..Default::default()
                };
                Router::new(cfg, key.verifying_key(), now, EPOCH_MS)
            })
            .collect();
        Pair { w, now, key, delivered: vec![], events: vec![] }
    }

    fn input(&mut self, worker: usize, source: SocketAddr, b: Vec<u8>) {
        let mut work = vec![(worker, Input::Receive { source, contents: Bytes::from(b) })];
        while let Some((i, inp)) = work.pop() {
            self.w[i].handle_input(self.now, inp);
            loop {
                match self.w[i].poll_output() {
                    Output::Transmit(t) => self.delivered.push((t.destination, t.contents)),
                    Output::Relay(r) => work
                        .insert(0, (r.worker, Input::Relayed { from_worker: i, call: r.call, contents: r.contents })),
                    Output::Event(Event::RelayNeeded { call, worker }) => {
                        work.insert(0, (worker, Input::Command(Command::AttachRelay { call, worker: i })))
                    }
                    Output::Event(Event::RelayClosed { call, worker }) => {
                        work.insert(0, (worker, Input::Command(Command::DetachRelay { call, worker: i })))
                    }
                    Output::Event(e) => self.events.push(e),
                    Output::Timeout(_) => break,
                }
            }
        }
    }

    /// Joins through worker 0 and follows redirects; returns the worker that admitted.
    fn join(&mut self, c: CallId, pid: u64, a: SocketAddr) -> usize {
        let claims = Claims {
            call_id: c,
            participant_id: ParticipantId(pid),
            role: Role::Publisher,
            expires_at_ms: EPOCH_MS + 60_000,
        };
        let tok = token::sign(&self.key, &claims).to_vec();
        let mut at = 0;
        for _ in 0..3 {
            let m = SessionMessage::Join {
                txid: [1; 12],
                token: tok.clone(),
                ssrcs: vec![(Ssrc(pid as u32 * 10), MediaKind::Video)],
                quality: Quality::Hd,
            };
            self.input(at, a, m.to_vec());
            let (_, reply) = self.delivered.pop().unwrap();
            match SessionMessage::parse(&reply).unwrap() {
                SessionMessage::JoinAck { .. } => return at,
                SessionMessage::JoinError { code: JoinErrorCode::TryAlternate, alternate: Some(alt), .. } => {
                    at = if alt == addr(500) { 0 } else { 1 };
                }
                m => panic!("{m:?}"),
            }
        }
        panic!("too many redirects");
    }
}

#[test]
fn a_large_call_spreads_over_two_workers_and_everyone_gets_everything_once() {
    let mut p = Pair::new(2);
    let c = (0u8..=255).map(call).find(|c| Placement::worker_for(c, 2) == 0).unwrap();
    let placed: Vec<usize> = (1..=5u64).map(|pid| p.join(c, pid, addr(pid as u16))).collect();
    assert_eq!(placed, vec![0, 0, 1, 1, 1], "two on the owner, the rest spread");
    assert_eq!(p.w[0].participant_count() + p.w[1].participant_count(), 5);
    for seq in 0..10u16 {
        for pid in 1..=5u64 {
            p.delivered.clear();
            let worker = placed[pid as usize - 1];
            p.input(worker, addr(pid as u16), rtp(pid as u32 * 10, seq));
            let mut got: Vec<SocketAddr> = p.delivered.iter().map(|(a, _)| *a).collect();
            got.sort();
            let want: Vec<SocketAddr> = (1..=5u16).filter(|&q| q as u64 != pid).map(addr).collect();
            assert_eq!(got, want, "packet from {pid}");
        }
    }
    // A keyframe request from a receiver on worker 1 reaches a producer on worker 0.
    p.delivered.clear();
    let pli =
        rtcp::write_compound(&[RtcpPacket::Pli(rtcp::Pli { sender_ssrc: Ssrc(30), media_ssrc: Ssrc(10) })]).unwrap();
    p.input(1, addr(3), pli);
    assert_eq!(p.delivered.iter().map(|(a, _)| *a).collect::<Vec<_>>(), vec![addr(1)]);
    // Everyone on worker 1 leaves: its share closes and the owner drops the link.
    for pid in 3..=5u16 {
        p.input(1, addr(pid), SessionMessage::Leave { txid: [0; 12] }.to_vec());
    }
    assert_eq!(p.w[1].call_count(), 0);
    p.delivered.clear();
    p.input(0, addr(1), rtp(10, 99));
    assert_eq!(p.delivered.iter().map(|(a, _)| *a).collect::<Vec<_>>(), vec![addr(2)]);
    assert_eq!(p.w[0].snapshot()[0].participants.len(), 2);
    // Ending the call on both workers leaves nothing behind.
    for i in 0..2 {
        p.w[i].handle_input(p.now, Input::Command(Command::EndCall(c)));
    }
    assert_eq!(p.w[0].call_count() + p.w[1].call_count(), 0);
}

/// An audio packet carrying an RFC 6464 level (extension id 1, voice activity set).
fn audio(ssrc: u32, seq: u16, dbov: Option<u8>) -> Vec<u8> {
    let extensions = dbov.map(|l| vec![(1u8, vec![0x80 | l])]).unwrap_or_default();
    RtpPacket { pt: Pt(111), seq: SeqNo(seq), ssrc: Ssrc(ssrc), payload: vec![7; 40], extensions, ..Default::default() }
        .to_vec()
        .unwrap()
}

/// Publishers 1..=`speakers` at addr(pid), audio SSRC pid*100; an SD
/// subscriber 50 at addr(50) and an HD subscriber 51 at addr(51).
fn speakers_call(h: &mut H, speakers: u64) {
    for pid in 1..=speakers {
        let tok = h.token(call(1), pid, Role::Publisher);
        let r = h.join_with(addr(pid as u16), tok, vec![(Ssrc(pid as u32 * 100), MediaKind::Audio)]);
        assert!(matches!(r, SessionMessage::JoinAck { .. }));
    }
    for (pid, quality) in [(50u64, Quality::Sd), (51, Quality::Hd)] {
        let token = h.token(call(1), pid, Role::Subscriber);
        h.input(addr(pid as u16), SessionMessage::Join { txid: [1; 12], token, ssrcs: vec![], quality }.to_vec());
    }
    h.take();
}

struct Talk {
    seq: u16,
}

impl Talk {
    /// 20 ms of audio from every speaker at the given levels (`None`: no
    /// level extension); returns the SSRCs each receiver got (sorted) and the
    /// sequence numbers the SD receiver got, per SSRC.
    fn frame(&mut self, h: &mut H, levels: &[(u64, Option<u8>)]) -> (Vec<u32>, Vec<u32>, Vec<(u32, u16)>) {
        self.seq = self.seq.wrapping_add(1);
        for &(pid, level) in levels {
            h.input(addr(pid as u16), audio(pid as u32 * 100, self.seq, level));
        }
        h.now += Duration::from_millis(20);
        h.r.handle_input(h.now, Input::Timeout);
        h.drain();
        let (mut sd, mut hd, mut sd_seq) = (vec![], vec![], vec![]);
        let (rtp, other): (Vec<Transmit>, Vec<Transmit>) =
            h.take().into_iter().partition(|t| classify(&t.contents) == Kind::Rtp);
        h.transmits = other; // left for the caller (RTCP to the mixer)
        for t in &rtp {
            let p = RtpHeader::parse(&t.contents).unwrap();
            if t.destination == addr(50) {
                sd.push(p.ssrc.0);
                sd_seq.push((p.ssrc.0, p.seq.0));
            } else if t.destination == addr(51) {
                hd.push(p.ssrc.0);
            }
        }
        sd.sort();
        hd.sort();
        (sd, hd, sd_seq)
    }

    /// `n` frames; returns what the last one delivered.
    fn frames(&mut self, h: &mut H, n: usize, levels: &[(u64, Option<u8>)]) -> (Vec<u32>, Vec<u32>, Vec<(u32, u16)>) {
        let mut last = Default::default();
        for _ in 0..n {
            last = self.frame(h, levels);
        }
        last
    }
}

fn active_speakers(h: &H) -> Vec<Vec<u32>> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::ActiveSpeakers { ssrcs, .. } => Some(ssrcs.iter().map(|s| s.0).collect()),
            _ => None,
        })
        .collect()
}

#[test]
fn sd_receivers_hear_the_three_loudest_speakers_and_hd_receivers_hear_everyone() {
    let mut h = H::new();
    speakers_call(&mut h, 5);
    let mut talk = Talk { seq: 100 };
    let levels = [(1, Some(40)), (2, Some(10)), (3, Some(90)), (4, Some(25)), (5, Some(70))];
    // Before the first ranking (200 ms) every stream reaches everyone.
    let (sd, hd, _) = talk.frame(&mut h, &levels);
    assert_eq!(sd, vec![100, 200, 300, 400, 500]);
    assert_eq!(hd, sd);
    let (sd, hd, _) = talk.frames(&mut h, 15, &levels);
    assert_eq!(sd, vec![100, 200, 400], "the three loudest: -10, -25 and -40 dBov");
    assert_eq!(hd, vec![100, 200, 300, 400, 500]);
    assert_eq!(active_speakers(&h), vec![vec![200, 400, 100]], "loudest first, announced once");
    // The snapshot shows who is heard and how loud.
    let snap = &h.r.snapshot()[0];
    let of = |pid: u64| snap.participants.iter().find(|p| p.participant == ParticipantId(pid)).unwrap();
    assert_eq!(of(2).loudness, Some(127 - 10));
    assert!(of(2).sd_audible && !of(3).sd_audible);
    assert_eq!((of(50).loudness, of(50).sd_audible), (None, false));
    // Two streams held back from one receiver for at least the last 5 frames.
    assert!(h.r.stats().sd_audio_withheld >= 2 * 5);
}

#[test]
fn a_new_loud_speaker_takes_the_quietest_slot_and_its_stream_continues_without_a_gap() {
    let mut h = H::new();
    speakers_call(&mut h, 4);
    let mut talk = Talk { seq: 0 };
    let quiet = [(1, Some(20)), (2, Some(30)), (3, Some(40)), (4, Some(100))];
    let mut last_before = None;
    for _ in 0..20 {
        let (sd, _, seqs) = talk.frame(&mut h, &quiet);
        last_before = seqs.iter().rev().find(|(s, _)| *s == 400).map(|(_, q)| *q).or(last_before);
        assert!(sd.len() == 3 || sd.len() == 4);
    }
    assert_eq!(talk.frame(&mut h, &quiet).0, vec![100, 200, 300]);
    let last_before = last_before.expect("stream 400 was heard before the first ranking");
    // Speaker 4 starts talking loudly; it is heard within two ranking windows.
    let loud = [(1, Some(20)), (2, Some(30)), (3, Some(40)), (4, Some(5))];
    let mut heard_after = None;
    for i in 0..30 {
        let (sd, _, seqs) = talk.frame(&mut h, &loud);
        if sd.contains(&400) {
            // The SD receiver's copy of stream 400 goes on from where it stopped.
            let (_, first) = seqs.iter().copied().find(|(s, _)| *s == 400).unwrap();
            assert_eq!(first, last_before.wrapping_add(1), "stream 400 resumes where it stopped");
            heard_after = Some(i);
            break;
        }
    }
    let heard_after = heard_after.expect("the new speaker is heard");
    assert!(heard_after <= 20, "heard after {heard_after} frames");
    let (sd, hd, _) = talk.frames(&mut h, 5, &loud);
    assert_eq!(sd, vec![100, 200, 400], "the quietest speaker (-40 dBov) gave way");
    assert_eq!(hd, vec![100, 200, 300, 400]);
    let mut last = active_speakers(&h).last().unwrap().clone();
    last.sort();
    assert_eq!(last, vec![100, 200, 400]);
}

#[test]
fn sequence_numbers_to_an_sd_receiver_have_no_gap_across_a_pause() {
    let mut h = H::new();
    speakers_call(&mut h, 4);
    let mut talk = Talk { seq: 65_500 };
    let mut got: Vec<u16> = Vec::new();
    let mut run = |h: &mut H, n: usize, level4: u8| {
        let levels = [(1, Some(20)), (2, Some(30)), (3, Some(40)), (4, Some(level4))];
        for _ in 0..n {
            let (_, _, seqs) = talk.frame(h, &levels);
            got.extend(seqs.iter().filter(|(s, _)| *s == 400).map(|(_, q)| *q));
        }
    };
    run(&mut h, 20, 100); // silent: paused after the first window
    run(&mut h, 40, 0); // loud: resumed
    run(&mut h, 40, 127); // silent again: paused
    run(&mut h, 40, 0); // resumed again, across the 16-bit wrap
    assert!(got.len() > 40);
    for w in got.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "SD receiver sees stream 400 without gaps: {got:?}");
    }
}

#[test]
fn close_speakers_do_not_trade_places_every_window() {
    let mut h = H::new();
    speakers_call(&mut h, 4);
    let mut talk = Talk { seq: 0 };
    talk.frames(&mut h, 30, &[(1, Some(20)), (2, Some(22)), (3, Some(24)), (4, Some(27))]);
    h.events.clear();
    // Speaker 4 gets 4 dB louder than speaker 3: within the head start, no change.
    let (sd, _, _) = talk.frames(&mut h, 50, &[(1, Some(20)), (2, Some(22)), (3, Some(24)), (4, Some(20))]);
    assert_eq!(sd, vec![100, 200, 300]);
    assert!(active_speakers(&h).is_empty());
    // Clearly louder (more than the head start): it takes over.
    let (sd, _, _) = talk.frames(&mut h, 50, &[(1, Some(20)), (2, Some(22)), (3, Some(24)), (4, Some(10))]);
    assert_eq!(sd, vec![100, 200, 400]);
}

#[test]
fn streams_without_levels_and_small_calls_are_always_heard() {
    let mut h = H::new();
    speakers_call(&mut h, 5);
    let mut talk = Talk { seq: 0 };
    // Speaker 5 sends no level (and speaker 4 a malformed extension): both
    // are forwarded; the three loudest of the ranked ones are too.
    let levels = [(1, Some(40)), (2, Some(10)), (3, Some(90)), (4, Some(80)), (5, None)];
    let (sd, _, _) = talk.frames(&mut h, 20, &levels);
    assert_eq!(sd, vec![100, 200, 400, 500]);
    let mut bad = audio(400, 999, None);
    bad[0] |= 0x10; // claims an extension block that is not there
    h.input(addr(4), bad);
    // A call with no more speakers than slots forwards everything, announces nothing.
    let mut h = H::new();
    speakers_call(&mut h, 3);
    let (sd, _, _) = talk.frames(&mut h, 20, &[(1, Some(40)), (2, Some(10)), (3, Some(127))]);
    assert_eq!(sd, vec![100, 200, 300]);
    assert!(active_speakers(&h).is_empty());
    // sd_audio_streams = 0: SD receivers hear every speaker.
    let mut h = H::with(RouterConfig { sd_audio_streams: 0, ..RouterConfig::default() });
    speakers_call(&mut h, 5);
    let (sd, _, _) = talk.frames(&mut h, 20, &levels);
    assert_eq!(sd, vec![100, 200, 300, 400, 500]);
}

/// The speakers lists (video SSRCs) the mixer at addr(9) was sent.
fn speakers_to_mixer(t: &[Transmit]) -> Vec<Vec<u32>> {
    t.iter()
        .filter(|t| t.destination == addr(9) && classify(&t.contents) == Kind::Rtcp)
        .flat_map(|t| rtcp::parse_compound(&t.contents).unwrap())
        .filter_map(|p| match p {
            RtcpPacket::App(a) => Some(session::speakers::parse(&a).unwrap().iter().map(|s| s.0).collect()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_mixer_is_told_who_speaks_loudest_first_only_when_it_changes() {
    let mut h = H::new();
    // Publishers 1..=4: audio pid*100, video pid*100+1.
    for pid in 1..=4u64 {
        let tok = h.token(call(1), pid, Role::Publisher);
        let base = pid as u32 * 100;
        let r = h.join_with(
            addr(pid as u16),
            tok,
            vec![(Ssrc(base), MediaKind::Audio), (Ssrc(base + 1), MediaKind::Video)],
        );
        assert!(matches!(r, SessionMessage::JoinAck { .. }));
    }
    let mut talk = Talk { seq: 0 };
    let levels = [(1, Some(60)), (2, Some(20)), (3, Some(40)), (4, Some(100))];
    talk.frames(&mut h, 20, &levels);
    // No mixer yet: nothing to tell.
    let tok = h.token(call(1), 9, Role::Mixer);
    assert!(matches!(h.join_with(addr(9), tok, vec![(Ssrc(900), MediaKind::Video)]), SessionMessage::JoinAck { .. }));
    let mut sent = Vec::new();
    for _ in 0..30 {
        talk.frame(&mut h, &levels);
        sent.extend(speakers_to_mixer(&h.transmits));
        h.take();
    }
    assert_eq!(sent, vec![vec![201, 301, 101, 401]], "once, loudest first, as video SSRCs");
    // Speaker 4 starts talking loudest: a new list, with 4 first.
    let levels = [(1, Some(60)), (2, Some(20)), (3, Some(40)), (4, Some(5))];
    let mut sent = Vec::new();
    for _ in 0..30 {
        talk.frame(&mut h, &levels);
        sent.extend(speakers_to_mixer(&h.transmits));
        h.take();
    }
    assert_eq!(sent.last().unwrap()[0], 401);
    assert!(sent.len() <= 2, "{sent:?}");
    // Nobody but the router can send one: an APP from a participant is dropped, not forwarded.
    let forged = rtcp::write_compound(&[RtcpPacket::App(session::speakers::app(Ssrc(100), &[Ssrc(101)]))]).unwrap();
    h.input(addr(1), forged);
    assert!(speakers_to_mixer(&h.take()).is_empty());
}
