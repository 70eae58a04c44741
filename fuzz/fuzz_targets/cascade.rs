//! A leaf router's share of a cascaded call (one local participant, a link
//! to the call's home router) under arbitrary pipe datagrams from the home
//! and from strangers, arbitrary datagrams from the participant, link
//! commands and time: the core never panics; a pipe datagram the parser
//! takes encodes back to the same message; a stranger's pipe datagram gets
//! nothing sent anywhere; everything sent to the home parses; the
//! participant never gets its own RTP back.
#![no_main]
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_core::{cascade_encode, cascade_parse, Command, Input, Output, PipeMessage, Router, RouterConfig};
use corecast_proto::demux::{classify, Kind};
use corecast_proto::join_key::JoinSecret;
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::{Quality, SessionMessage};
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};
use libfuzzer_sys::fuzz_target;

const CALL: CallId = CallId([7; 16]);

fn home() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 5000))
}

fn stranger() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 9], 5000))
}

fn participant() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 21_001))
}

/// Feeds `input` and checks what comes out; returns how many datagrams went out.
fn run(r: &mut Router, now: Instant, input: Input) -> usize {
    r.handle_input(now, input);
    let mut sent = 0;
    loop {
        match r.poll_output() {
            Output::Transmit(t) => {
                sent += 1;
                if t.destination == home() {
                    assert!(cascade_parse(&t.contents).is_ok(), "the router sends well-formed pipe datagrams");
                }
                if t.destination == participant() && classify(&t.contents) == Kind::Rtp {
                    let h = RtpHeader::parse(&t.contents).expect("only valid RTP is forwarded");
                    assert!(h.ssrc.0 != 100, "echoed to its sender");
                }
            }
            Output::Pipe(p) => panic!("one worker piped {p:?}"),
            Output::Event(_) => {}
            Output::Timeout(_) => break,
        }
    }
    sent
}

fuzz_target!(|data: &[u8]| {
    let key = token::dev_signing_key();
    let start = Instant::now();
    let cfg = RouterConfig { join_secret: Some(JoinSecret::dev()), plain_native_media: true, ..Default::default() };
    let mut r = Router::new(cfg, key.verifying_key(), start, 1_000);
    run(&mut r, start, Input::Command(Command::OpenPipe { call: CALL, peer: home(), uplink: true }));
    let claims =
        Claims { call_id: CALL, participant_id: ParticipantId(1), role: Role::Publisher, expires_at_ms: u64::MAX };
    let tok = token::sign(&key, &claims);
    let join = SessionMessage::Join {
        txid: [0; 12],
        token: tok.to_vec(),
        ssrcs: vec![(Ssrc(100), MediaKind::Video)],
        quality: Quality::Hd,
        srtp: false,
    };
    let join = join.to_signed_vec(&JoinSecret::dev().key_for(&tok));
    run(&mut r, start, Input::Receive { source: participant(), contents: Bytes::from(join) });
    // Input: [op, len, bytes...]*
    let mut rest = data;
    let mut now = start;
    while rest.len() >= 2 {
        let (op, len) = (rest[0], rest[1] as usize);
        rest = &rest[2..];
        let len = len.min(rest.len());
        let (body, tail) = rest.split_at(len);
        rest = tail;
        now += Duration::from_millis((op >> 4) as u64 * 100);
        // A pipe datagram: the header, then the fuzzer's type and body.
        let framed = || {
            let mut b = vec![0xCC, 0x10 | body.first().map_or(1, |t| t & 0x0F)];
            b.extend_from_slice(&CALL.0);
            b.extend_from_slice(body.get(1..).unwrap_or_default());
            Bytes::from(b)
        };
        match op & 0x0F {
            0..=4 => {
                let b = framed();
                if let Ok((call, m)) = cascade_parse(&b) {
                    let again = cascade_encode(call, &m);
                    if let PipeMessage::Grant(_) | PipeMessage::Joined(_) = m {
                        unreachable!("never on the wire");
                    }
                    let again = again.expect("every wire message encodes");
                    assert_eq!(cascade_parse(&again), Ok((call, m)), "round trip");
                }
                run(&mut r, now, Input::Receive { source: home(), contents: b });
            }
            5 | 6 => {
                let sent = run(&mut r, now, Input::Receive { source: stranger(), contents: framed() });
                assert_eq!(sent, 0, "a stranger's pipe datagram changes nothing");
            }
            7 => {
                run(&mut r, now, Input::Receive { source: home(), contents: Bytes::copy_from_slice(body) });
            }
            8..=10 => {
                run(&mut r, now, Input::Receive { source: participant(), contents: Bytes::copy_from_slice(body) });
            }
            11 => {
                run(&mut r, now, Input::Command(Command::OpenPipe { call: CALL, peer: home(), uplink: true }));
            }
            12 => {
                run(&mut r, now, Input::Command(Command::ClosePipe { call: CALL, peer: home() }));
            }
            13 => {
                run(&mut r, now, Input::Command(Command::RemoveParticipant(CALL, ParticipantId(1))));
            }
            _ => {
                run(&mut r, now, Input::Timeout);
            }
        }
    }
});
