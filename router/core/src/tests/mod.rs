//! Core unit tests, driven with synthetic time, by topic; `net` is a
//! simulated network (links with loss, bursts, reordering, duplication,
//! delay, jitter and a bandwidth cap) and `scenarios` run calls over it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_proto::demux::{classify, Kind};
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::{JoinErrorCode, Quality};
use corecast_proto::token::{self, CallId, ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};

use crate::{Command, Event, Input, LeaveReason, Output, Placement, Router, RouterConfig, Transmit};
use corecast_proto::join_key::{JoinKey, JoinSecret};
use corecast_proto::rtcp::{self, RtcpPacket};
use corecast_proto::rtp::RtpPacket;
use corecast_proto::session::SessionMessage;
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
    /// The join key each address joined with (what [`H::session`] signs with).
    keys: std::collections::HashMap<SocketAddr, JoinKey>,
}

/// `m` as a client sends it: signed with the join key of `tok` (test
/// routers use the development join secret, [`keyed`]).
fn signed(m: &SessionMessage, tok: &[u8]) -> Vec<u8> {
    m.to_signed_vec(&JoinSecret::dev().key_for(tok))
}

/// `cfg` with the development join secret (unless it has one), taking
/// plain native media (the tests' clients send plain RTP; `native_srtp`
/// tests SRTP legs with `plain_native_media` off).
fn keyed(cfg: RouterConfig) -> RouterConfig {
    RouterConfig {
        join_secret: cfg.join_secret.clone().or_else(|| Some(JoinSecret::dev())),
        plain_native_media: true,
        ..cfg
    }
}

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + i))
}

fn call(n: u8) -> CallId {
    CallId([n; 16])
}

/// The default configuration, with the retransmission buffer on as it is by default.
fn retransmitting() -> RouterConfig {
    RouterConfig { retransmission: true, ..RouterConfig::default() }
}

impl H {
    fn new() -> H {
        H::with(RouterConfig::default())
    }
    fn with(cfg: RouterConfig) -> H {
        let key = token::dev_signing_key();
        let now = Instant::now();
        let r = Router::new(keyed(cfg), key.verifying_key(), now, EPOCH_MS);
        H { r, now, key, transmits: vec![], events: vec![], keys: Default::default() }
    }
    /// Sends a session message from `a`, signed as a client signs it: a
    /// join with its token's key (remembered for `a`), anything else with
    /// the key `a` joined with (a zero key if it did not).
    fn session(&mut self, a: SocketAddr, m: SessionMessage) {
        let key = match &m {
            SessionMessage::Join { token, .. } => {
                let k = JoinSecret::dev().key_for(token);
                self.keys.insert(a, k.clone());
                k
            }
            _ => self.keys.get(&a).cloned().unwrap_or_else(|| JoinKey::from_bytes([0; 32])),
        };
        self.input(a, m.to_signed_vec(&key));
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
                Output::Pipe(p) => panic!("single worker piped {p:?}"),
                Output::Event(e) => self.events.push(e),
                Output::Timeout(_) => break,
            }
        }
    }
    fn take(&mut self) -> Vec<Transmit> {
        std::mem::take(&mut self.transmits)
    }
    fn join_with(&mut self, a: SocketAddr, tok: Vec<u8>, ssrcs: Vec<(Ssrc, MediaKind)>) -> SessionMessage {
        self.session(a, SessionMessage::Join { txid: [9; 12], token: tok, ssrcs, quality: Quality::Hd, srtp: false });
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
    /// Publisher `pid` of `call(1)` at `a` with audio SSRC pid*100 and video pid*100+1.
    fn join_av(&mut self, a: SocketAddr, pid: u64) {
        let tok = self.token(call(1), pid, Role::Publisher);
        let base = pid as u32 * 100;
        let r = self.join_with(a, tok, vec![(Ssrc(base), MediaKind::Audio), (Ssrc(base + 1), MediaKind::Video)]);
        assert!(matches!(r, SessionMessage::JoinAck { .. }), "{r:?}");
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

fn rtp_pt(ssrc: u32, seq: u16, pt: u8) -> Vec<u8> {
    RtpPacket { pt: Pt(pt), seq: SeqNo(seq), ssrc: Ssrc(ssrc), payload: vec![1; 50], ..Default::default() }
        .to_vec()
        .unwrap()
}

/// Publisher 1 (audio 100, video 101) at addr 0; HD receiver 2 at addr 1
/// (audio 200, video 201); receiver 3 at addr 2 (audio 300, video 301).
fn sd_call(h: &mut H, mixer: bool) {
    for (i, pid) in [(0u16, 1u64), (1, 2), (2, 3)] {
        h.join_av(addr(i), pid);
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

mod abuse;
mod admission;
mod bwe;
mod cascade;
mod composite;
mod framerate;
mod hijack;
mod last_n;
mod native_srtp;
mod net;
mod overload;
mod pacing;
mod picture_ids;
mod pipe_format;
mod quality;
mod red;
mod reports;
mod requested_size;
mod retransmit;
mod rtcp_routing;
mod scenarios;
mod shaped;
mod simulcast;
mod simulcast_net;
mod speakers;
mod spread;
mod svc;
mod webrtc;
mod webrtc_rtx;
mod webrtc_scale;
mod webrtc_simulcast;
