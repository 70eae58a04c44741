//! The routing core under arbitrary datagram sequences from four sources (two admitted by a
//! valid join first, two not) with time passing: it never panics; a datagram from a source
//! that is not admitted (per the router's own join/leave events) never causes a transmit to
//! anyone but that source, unless it admitted the source (a replayed valid join); forwarded RTP
//! comes only from an admitted sender and carries an SSRC it owns; the counters add up
//! (rx datagrams and bytes = what was fed, tx datagrams = transmits polled, joins and leaves =
//! their events, joins - leaves = participants present = admitted addresses, forwarded <= tx,
//! drops <= rx).
#![no_main]
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_proto::join_key::JoinSecret;
use corecast_core::{Event, Input, Output, Router, RouterConfig};
use corecast_proto::demux::{classify, Kind};
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::{Quality, SessionMessage};
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};
use libfuzzer_sys::fuzz_target;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 20_000 + (i % 4) as u16))
}

/// What the router's outputs say: admitted addresses (to participant ids), transmits, joins, leaves.
#[derive(Default)]
struct Track {
    admitted: HashMap<SocketAddr, u64>,
    tx: u64,
    joined: u64,
    left: u64,
}

impl Track {
    fn note(&mut self, o: &Output) {
        match o {
            Output::Transmit(_) => self.tx += 1,
            Output::Event(Event::ParticipantJoined { participant, source, .. }) => {
                self.joined += 1;
                self.admitted.retain(|_, p| *p != participant.0);
                self.admitted.insert(*source, participant.0);
            }
            Output::Event(Event::ParticipantLeft { participant, .. }) => {
                self.left += 1;
                self.admitted.retain(|_, p| *p != participant.0);
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let key = token::dev_signing_key();
    let start = Instant::now();
    // Plain legs: the fuzzer cannot seal SRTP, so its packets would stop at authentication.
    let cfg = RouterConfig { join_secret: Some(JoinSecret::dev()), plain_native_media: true, ..RouterConfig::default() };
    let mut r = Router::new(cfg, key.verifying_key(), start, 1_000);
    let (mut setup, mut setup_bytes) = (Vec::new(), 0u64);
    for pid in 0..2u8 {
        let claims = Claims {
            call_id: CallId([1; 16]),
            participant_id: ParticipantId(pid as u64),
            role: Role::Publisher,
            expires_at_ms: u64::MAX,
        };
        let tok = token::sign(&key, &claims);
        let join = SessionMessage::Join {
            txid: [0; 12],
            token: tok.to_vec(),
            ssrcs: vec![(Ssrc(100 + pid as u32), MediaKind::Video)],
            quality: Quality::Hd, srtp: false
        };
        let join = join.to_signed_vec(&JoinSecret::dev().key_for(&tok));
        setup_bytes += join.len() as u64;
        r.handle_input(start, Input::Receive { source: addr(pid), contents: Bytes::from(join) });
        loop {
            match r.poll_output() {
                Output::Timeout(_) => break,
                o => setup.push(o),
            }
        }
    }
    // Who is admitted (from the router's own events), and what its counters must say.
    let mut k = Track::default();
    for o in std::mem::take(&mut setup) {
        k.note(&o);
    }
    assert_eq!(k.admitted.len(), 2, "both setup joins admitted");
    let (mut rx, mut rx_bytes) = (2u64, setup_bytes);
    // Input: [from, time step, len, bytes...]*
    let mut rest = data;
    let mut now = start;
    while rest.len() >= 3 {
        let (from, step, len) = (rest[0], rest[1], rest[2] as usize);
        rest = &rest[3..];
        let len = len.min(rest.len());
        let (pkt, tail) = rest.split_at(len);
        rest = tail;
        now += Duration::from_millis(step as u64 * 10);
        let source = addr(from);
        let was_admitted = k.admitted.get(&source).copied();
        r.handle_input(now, Input::Receive { source, contents: Bytes::copy_from_slice(pkt) });
        (rx, rx_bytes) = (rx + 1, rx_bytes + pkt.len() as u64);
        let mut outs = Vec::new();
        loop {
            match r.poll_output() {
                Output::Timeout(_) => break,
                o => outs.push(o),
            }
        }
        let admitted_now =
            outs.iter().any(|o| matches!(o, Output::Event(Event::ParticipantJoined { source: s, .. }) if *s == source));
        for o in &outs {
            k.note(o);
            let Output::Transmit(t) = o else { continue };
            if was_admitted.is_none() && !admitted_now {
                assert_eq!(t.destination, source, "an unadmitted source caused a transmit to someone else");
            }
            if was_admitted.is_none() && t.destination == source {
                assert!(t.contents.len() <= pkt.len(), "an unadmitted source was sent more than it sent");
            }
            if classify(&t.contents) == Kind::Rtp {
                let h = RtpHeader::parse(&t.contents).expect("only valid RTP is forwarded");
                let pid = was_admitted.expect("forwarded RTP for an unadmitted sender");
                assert_eq!(h.ssrc, Ssrc(100 + pid as u32), "forwarded an SSRC the sender does not own");
            }
        }
        r.handle_input(now, Input::Timeout);
        loop {
            match r.poll_output() {
                Output::Timeout(_) => break,
                o => k.note(&o),
            }
        }
        let s = *r.stats();
        assert_eq!((s.rx_datagrams, s.rx_bytes), (rx, rx_bytes), "receive counters");
        assert_eq!(s.tx_datagrams, k.tx, "tx_datagrams counts the transmits");
        assert_eq!((s.joins, s.leaves), (k.joined, k.left), "joins and leaves count the events");
        let present: usize = r.snapshot().iter().map(|c| c.participants.len()).sum();
        assert_eq!(s.joins - s.leaves, present as u64, "joins - leaves = participants present");
        assert_eq!(present, k.admitted.len(), "the admitted addresses are the participants");
        assert!(s.forwarded_rtp + s.forwarded_rtcp <= s.tx_datagrams);
        assert!(s.dropped() <= s.rx_datagrams, "at most one drop per datagram");
    }
});
