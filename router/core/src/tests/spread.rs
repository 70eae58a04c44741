//! Placement of calls on workers, and calls spread over two workers through pipes.

use super::*;

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

/// Two workers of one router, wired the way the driver wires them: pipe
/// outputs go to the other worker as `Input::Pipe`, in order.
struct Pair {
    w: Vec<Router>,
    now: Instant,
    key: SigningKey,
    delivered: Vec<(SocketAddr, Bytes)>,
    events: Vec<Event>,
    /// The token each address joined with.
    tokens: std::collections::HashMap<SocketAddr, Vec<u8>>,
}

impl Pair {
    fn new(budget: usize) -> Pair {
        Pair::with(RouterConfig { max_receivers_per_worker: budget, ..Default::default() })
    }

    /// Two workers with `cfg` (placement filled in).
    fn with(cfg: RouterConfig) -> Pair {
        let key = token::dev_signing_key();
        let now = Instant::now();
        let addrs = vec![addr(500), addr(501)];
        let w = (0..2)
            .map(|i| {
                let cfg = RouterConfig { placement: Placement { index: i, addresses: addrs.clone() }, ..cfg.clone() };
                Router::new(super::keyed(cfg), key.verifying_key(), now, EPOCH_MS)
            })
            .collect();
        Pair { w, now, key, delivered: vec![], events: vec![], tokens: Default::default() }
    }

    /// A session message from `source`, signed with the key of the token
    /// it joined with (a join: its own).
    fn session(&mut self, worker: usize, source: SocketAddr, m: SessionMessage) {
        if let SessionMessage::Join { token, .. } = &m {
            self.tokens.insert(source, token.clone());
        }
        let tok = self.tokens.get(&source).cloned().unwrap_or_default();
        self.input(worker, source, super::signed(&m, &tok));
    }

    fn input(&mut self, worker: usize, source: SocketAddr, b: Vec<u8>) {
        self.feed(worker, Input::Receive { source, contents: Bytes::from(b) });
    }

    fn feed(&mut self, worker: usize, input: Input) {
        let mut work = std::collections::VecDeque::from([(worker, input)]);
        while let Some((i, inp)) = work.pop_front() {
            self.w[i].handle_input(self.now, inp);
            loop {
                match self.w[i].poll_output() {
                    Output::Transmit(t) => self.delivered.push((t.destination, t.contents)),
                    Output::Pipe(p) => {
                        work.push_back((p.worker, Input::Pipe { from_worker: i, call: p.call, message: p.message }))
                    }
                    Output::Event(e) => self.events.push(e),
                    Output::Timeout(_) => break,
                }
            }
        }
    }

    /// Joins through worker 0 and follows redirects; returns the worker that admitted.
    fn join(&mut self, c: CallId, pid: u64, a: SocketAddr) -> usize {
        self.try_join(c, pid, Role::Publisher, a, 0).unwrap_or_else(|e| panic!("join of {pid} refused: {e:?}"))
    }

    /// Joins through worker `at` and follows redirects: the worker that
    /// admitted, or the refusal.
    fn try_join(
        &mut self,
        c: CallId,
        pid: u64,
        role: Role,
        a: SocketAddr,
        mut at: usize,
    ) -> Result<usize, JoinErrorCode> {
        let claims = Claims { call_id: c, participant_id: ParticipantId(pid), role, expires_at_ms: EPOCH_MS + 60_000 };
        let tok = token::sign(&self.key, &claims).to_vec();
        for _ in 0..3 {
            let m = SessionMessage::Join {
                txid: [1; 12],
                token: tok.clone(),
                ssrcs: vec![(Ssrc(pid as u32 * 10), MediaKind::Video)],
                quality: Quality::Hd,
                srtp: false,
            };
            self.session(at, a, m);
            let (_, reply) = self.delivered.pop().unwrap();
            match SessionMessage::parse(&reply).unwrap() {
                SessionMessage::JoinAck { .. } => return Ok(at),
                SessionMessage::JoinError { code: JoinErrorCode::TryAlternate, alternate: Some(alt), .. } => {
                    at = if alt == addr(500) { 0 } else { 1 };
                }
                SessionMessage::JoinError { code, .. } => return Err(code),
                m => panic!("{m:?}"),
            }
        }
        panic!("too many redirects");
    }

    /// Moves time on and lets both workers' timers run.
    fn advance(&mut self, d: Duration) {
        self.now += d;
        for i in 0..2 {
            self.feed(i, Input::Timeout);
        }
    }

    /// Where a packet from `from` (admitted on `worker`) was delivered.
    fn send(&mut self, worker: usize, from: SocketAddr, pkt: Vec<u8>) -> Vec<SocketAddr> {
        self.delivered.clear();
        self.input(worker, from, pkt);
        let mut got: Vec<SocketAddr> = self.delivered.iter().map(|(a, _)| *a).collect();
        got.sort();
        got
    }
}

/// A call the first of two workers owns.
fn call_on_worker_0() -> CallId {
    (0u8..=255).map(call).find(|c| Placement::worker_for(c, 2) == 0).unwrap()
}

#[test]
fn with_the_default_config_a_call_larger_than_one_workers_budget_spreads_and_the_cap_holds_across_workers() {
    // The default config, with only the worker count changed (two workers).
    let mut p = Pair::with(RouterConfig::default());
    let budget = RouterConfig::default().max_receivers_per_worker;
    let cap = RouterConfig::default().max_participants_per_call;
    assert!(budget < cap, "a full call does not fit on one worker by default");
    let c = call_on_worker_0();
    let placed: Vec<usize> = (1..=cap as u64).map(|pid| p.join(c, pid, addr(pid as u16))).collect();
    assert_eq!(placed.iter().filter(|&&w| w == 0).count(), budget);
    assert_eq!(placed.iter().filter(|&&w| w == 1).count(), cap - budget);
    assert_eq!(p.w[0].participant_count() + p.w[1].participant_count(), cap);
    // The 101st join is refused, whichever worker it reaches first.
    let extra = cap as u64 + 1;
    assert_eq!(p.try_join(c, extra, Role::Publisher, addr(900), 0), Err(JoinErrorCode::CallFull));
    assert_eq!(p.try_join(c, extra, Role::Publisher, addr(900), 1), Err(JoinErrorCode::CallFull));
    // Everyone gets everyone's media once, across the pipe.
    let everyone_but = |pid: u64| -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = (1..=cap as u16).filter(|&q| q as u64 != pid).map(addr).collect();
        v.sort();
        v
    };
    assert_eq!(p.send(0, addr(1), rtp(10, 1)), everyone_but(1));
    assert_eq!(p.send(1, addr(cap as u16), rtp(cap as u32 * 10, 1)), everyone_but(cap as u64));
    // One leaves on the second worker: its seat frees up for the next join.
    p.session(1, addr(cap as u16), SessionMessage::Leave { txid: [0; 12] });
    assert_eq!(p.try_join(c, extra, Role::Publisher, addr(900), 0), Ok(1));
}

#[test]
fn a_seat_whose_participant_never_follows_the_redirect_frees_up() {
    let mut p =
        Pair::with(RouterConfig { max_receivers_per_worker: 1, max_participants_per_call: 2, ..Default::default() });
    let c = call_on_worker_0();
    p.join(c, 1, addr(1));
    // Participant 2 is redirected (a seat is reserved on worker 1) but never arrives there.
    let tok = token::sign(
        &p.key,
        &Claims {
            call_id: c,
            participant_id: ParticipantId(2),
            role: Role::Publisher,
            expires_at_ms: EPOCH_MS + 60_000,
        },
    );
    let join =
        SessionMessage::Join { txid: [1; 12], token: tok.to_vec(), ssrcs: vec![], quality: Quality::Hd, srtp: false };
    p.session(0, addr(2), join);
    assert!(matches!(
        SessionMessage::parse(&p.delivered.pop().unwrap().1),
        Ok(SessionMessage::JoinError { code: JoinErrorCode::TryAlternate, .. })
    ));
    assert_eq!(p.try_join(c, 3, Role::Publisher, addr(3), 0), Err(JoinErrorCode::CallFull), "the seat is held");
    p.advance(RouterConfig::default().spread_grant_timeout + Duration::from_secs(1));
    assert_eq!(p.try_join(c, 3, Role::Publisher, addr(3), 0), Ok(1), "the seat expired");
    // Worker 1 never admits the participant whose grant expired.
    assert_eq!(p.try_join(c, 2, Role::Publisher, addr(2), 1), Err(JoinErrorCode::CallFull));
}

#[test]
fn a_mixer_on_another_worker_reaches_only_the_sd_receivers() {
    let mut p = Pair::new(2);
    let c = call_on_worker_0();
    p.join(c, 1, addr(1));
    p.join(c, 2, addr(2));
    p.session(0, addr(2), SessionMessage::Quality { txid: [0; 12], quality: Quality::Sd });
    assert_eq!(p.try_join(c, 9, Role::Mixer, addr(9), 0), Ok(1), "the mixer lands on worker 1");
    // The composite (the mixer's SSRC 90) goes to the SD receiver only;
    // raw video goes to the HD receiver and the mixer, not to the SD receiver.
    assert_eq!(p.send(1, addr(9), rtp(90, 1)), vec![addr(2)]);
    assert_eq!(p.send(0, addr(1), rtp(10, 1)), vec![addr(9)]);
    assert_eq!(p.send(0, addr(2), rtp(20, 1)), vec![addr(1), addr(9)]);
}

#[test]
fn a_large_call_spreads_over_two_workers_and_everyone_gets_everything_once() {
    let mut p = Pair::new(2);
    let c = call_on_worker_0();
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
        p.session(1, addr(pid), SessionMessage::Leave { txid: [0; 12] });
    }
    assert_eq!(p.w[1].call_count(), 0);
    p.delivered.clear();
    p.input(0, addr(1), rtp(10, 99));
    assert_eq!(p.delivered.iter().map(|(a, _)| *a).collect::<Vec<_>>(), vec![addr(2)]);
    assert_eq!(p.w[0].snapshot()[0].participants.len(), 2);
    // Ending the call on both workers leaves nothing behind.
    for i in 0..2 {
        p.feed(i, Input::Command(Command::EndCall(c)));
    }
    assert_eq!(p.w[0].call_count() + p.w[1].call_count(), 0);
}

#[test]
fn a_webrtc_publishers_streams_are_announced_to_the_other_workers_share() {
    use crate::webrtc::{Codec, DtlsIdentity, IceCredentials, LegExtensions, LegMedia, WebRtcLeg};
    let mut p = Pair::new(1);
    let c = call_on_worker_0();
    p.join(c, 1, addr(1));
    assert_eq!(p.join(c, 2, addr(2)), 1, "the second participant is spread to worker 1");
    p.w[0].set_dtls_identity(std::sync::Arc::new(DtlsIdentity::generate().unwrap()));
    let leg = WebRtcLeg {
        call: c,
        participant: ParticipantId(3),
        role: Role::Publisher,
        ice: IceCredentials {
            local_ufrag: "r".into(),
            local_pwd: "router-password-xxxxxxxx".into(),
            remote_ufrag: "p".into(),
        },
        remote_fingerprint: vec![0; 32],
        media: vec![LegMedia {
            mid: "0".into(),
            kind: MediaKind::Video,
            codec: Codec::Av1,
            payload_type: 45,
            rtx_payload_type: None,
            red_payload_type: None,
            receives: true,
            sends: false,
            remote_ssrcs: vec![Ssrc(0x3030)],
            remote_rtx: vec![],
            rids: vec![],
        }],
        extensions: LegExtensions::default(),
        subscribe: None,
        quality: Quality::Hd,
        max_fps: None,
        max_height: None,
        last_n: None,
        pending_until: p.now + Duration::from_secs(10),
    };
    p.w[0].open_webrtc(p.now, leg).unwrap();
    let mut announced = Vec::new();
    loop {
        match p.w[0].poll_output() {
            Output::Pipe(s) => announced.push((s.worker, s.message)),
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    assert!(
        announced.iter().any(|(w, m)| *w == 1
            && matches!(m, crate::PipeMessage::Producer { ssrc, kind: MediaKind::Video, .. } if *ssrc == Ssrc(0x3030))),
        "{announced:?}"
    );
}

/// A publisher's SR crosses the pipe (not to participants): the other
/// worker's receivers get that worker's own SRs, in the publisher's clock.
#[test]
fn a_receiver_on_the_other_worker_gets_that_workers_sr_in_the_publishers_clock() {
    let mut p = Pair::new(1);
    let c = call_on_worker_0();
    assert_eq!(p.join(c, 1, addr(1)), 0);
    assert_eq!(p.join(c, 2, addr(2)), 1);
    let ntp = 0xE000_0000_0000_0000u64;
    let sr = rtcp::SenderReport { ssrc: Ssrc(10), ntp_time: ntp, rtp_time: 1_000, ..Default::default() };
    let sr = rtcp::write_compound(&[RtcpPacket::SenderReport(sr)]).unwrap();
    assert!(p.send(0, addr(1), sr).is_empty(), "kept on both workers, forwarded to no participant");
    assert_eq!(p.send(0, addr(1), rtp(10, 1)), vec![addr(2)]);
    p.delivered.clear();
    p.advance(Duration::from_millis(100));
    p.advance(Duration::from_secs(1));
    let rtcp_to = |a: SocketAddr| -> Vec<RtcpPacket> {
        let mine = p.delivered.iter().filter(|(d, b)| *d == a && classify(b) == Kind::Rtcp);
        mine.flat_map(|(_, b)| rtcp::parse_compound(b).unwrap()).collect()
    };
    let srs: Vec<_> = rtcp_to(addr(2))
        .into_iter()
        .filter_map(|p| if let RtcpPacket::SenderReport(sr) = p { Some(sr) } else { None })
        .collect();
    assert_eq!(srs.len(), 1);
    // 1.1 s after the publisher's SR: its NTP and RTP (90 kHz) times moved on by that.
    let elapsed = Duration::from_millis(1100);
    assert_eq!(srs[0].ntp_time, ntp + ((elapsed.as_nanos() << 32) / 1_000_000_000) as u64);
    assert_eq!((srs[0].ssrc, srs[0].rtp_time, srs[0].packet_count), (Ssrc(10), 1_000 + 99_000, 1));
    // The publisher's worker reports to it on what it received.
    let rrs: Vec<_> = rtcp_to(addr(1))
        .into_iter()
        .filter_map(|p| if let RtcpPacket::ReceiverReport(rr) = p { Some(rr) } else { None })
        .collect();
    assert_eq!(rrs.len(), 1);
    assert_eq!((rrs[0].ssrc, rrs[0].reports[0].last_sr), (crate::ROUTER_SSRC, (ntp >> 16) as u32));
}

/// A VP8 packet of simulcast layer `k` of publisher 1 (SSRC 10 + k), its
/// layer in the payload's third byte, `size` bytes, a keyframe or not.
fn layer_packet(k: u8, seq: u16, key: bool) -> Vec<u8> {
    let mut payload = vec![k; 100 + 400 * usize::from(k)];
    payload[..2].copy_from_slice(&[0x10, u8::from(!key)]);
    let pkt = corecast_proto::rtp::RtpPacket {
        pt: corecast_proto::Pt(96),
        seq: SeqNo(seq),
        ssrc: Ssrc(10 + u32::from(k)),
        payload,
        ..Default::default()
    };
    pkt.to_vec().unwrap()
}

#[test]
fn a_simulcast_source_reaches_the_other_workers_receivers_as_one_layer_and_their_plis_come_back() {
    let mut p = Pair::new(2);
    let c = call_on_worker_0();
    let placed: Vec<usize> = (1..=4u64).map(|pid| p.join(c, pid, addr(pid as u16))).collect();
    assert_eq!(placed, vec![0, 0, 1, 1]);
    // Publisher 1 (video 10) adds layers 11 and 12.
    p.session(0, addr(1), SessionMessage::Simulcast { txid: [2; 12], layers: vec![Ssrc(10), Ssrc(11), Ssrc(12)] });
    let layers_to = |p: &Pair, to: SocketAddr| -> Vec<(u32, u8)> {
        p.delivered
            .iter()
            .filter(|(a, b)| *a == to && classify(b) == Kind::Rtp)
            .map(|(_, b)| {
                let h = RtpHeader::parse(b).unwrap();
                (h.ssrc.0, h.payload(b)[2])
            })
            .collect()
    };
    p.delivered.clear();
    for seq in 0..10u16 {
        for k in (0..3u8).rev() {
            p.input(0, addr(1), layer_packet(k, seq, seq == 0));
        }
    }
    for to in [addr(2), addr(3), addr(4)] {
        assert_eq!(layers_to(&p, to), vec![(10, 2); 10], "the top layer only, under 10, on both workers");
    }
    // Receiver 3 (worker 1) sends a low estimate: its worker asks worker 0's publisher for the low layer's keyframe.
    p.advance(Duration::from_millis(500));
    p.delivered.clear();
    let remb = RtcpPacket::Remb(rtcp::Remb { sender_ssrc: Ssrc(30), bitrate_bps: 10_000, ssrcs: vec![] });
    p.input(1, addr(3), rtcp::write_compound(&[remb]).unwrap());
    p.input(0, addr(1), layer_packet(2, 10, false));
    p.input(0, addr(1), layer_packet(0, 10, false));
    let plis: Vec<u32> = p
        .delivered
        .iter()
        .filter(|(a, b)| *a == addr(1) && classify(b) == Kind::Rtcp)
        .flat_map(|(_, b)| rtcp::parse_compound(b).unwrap())
        .filter_map(|r| if let RtcpPacket::Pli(pli) = r { Some(pli.media_ssrc.0) } else { None })
        .collect();
    assert_eq!(plis, vec![10], "a keyframe of the lowest layer (10), asked across the pipe");
    p.delivered.clear();
    p.input(0, addr(1), layer_packet(2, 11, false));
    p.input(0, addr(1), layer_packet(0, 11, true));
    // (Its estimate is far below the top layer: that stops at once.)
    assert_eq!(layers_to(&p, addr(3)), vec![(10, 0)], "the low layer from its keyframe on");
    assert_eq!(layers_to(&p, addr(4)), vec![(10, 2)], "the other receiver keeps the top layer");
}
