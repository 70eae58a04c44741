//! A leaf router's share of a cascaded call (one local participant, a link
//! to the call's home router) under arbitrary pipe datagrams from the home
//! (sealed with the link's key, and also tampered, replayed or unsealed)
//! and from strangers, arbitrary datagrams from the participant, link
//! commands and time: the core never panics; a sealed pipe datagram that
//! opens and parses seals back to the same message; a stranger's pipe
//! datagram, a replayed one and a tampered one get nothing sent anywhere;
//! everything sent to the home opens with the home's key (and never under a
//! repeated counter); the participant never gets its own RTP back.
#![no_main]
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytes::BytesMut;
use corecast_core::{
    cascade_open, cascade_seal, Command, Input, Output, PipeMessage, Router, RouterConfig, PIPE_HEADER,
};
use corecast_proto::demux::{classify, Kind};
use corecast_proto::join_key::JoinSecret;
use corecast_proto::pipe_seal::{LinkKeys, PipeKey};
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

/// The link's key of generation `g` (the calls service draws a new one at each opening).
fn key(g: u8) -> PipeKey {
    PipeKey::new([g; 32])
}

/// Feeds `input` and checks what comes out (what the home gets opens with
/// one of `home_rx`, the home's keys of every opening); returns how many
/// datagrams went out.
fn run(r: &mut Router, home_rx: &mut [LinkKeys], now: Instant, input: Input) -> usize {
    r.handle_input(now, input);
    let mut sent = 0;
    loop {
        match r.poll_output() {
            Output::Transmit(t) => {
                sent += 1;
                if t.destination == home() {
                    let id = t.contents.get(18..22).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    let keys = home_rx.iter_mut().find(|k| k.id == id).expect("under a key the link was given");
                    let opened = cascade_open(keys, &t.contents);
                    assert!(opened.is_ok(), "the router seals what it sends with the link's key: {opened:?}");
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
    // The home's end of the link: what it seals with, what it opens with.
    let mut g = 0u8;
    let mut home_tx = self::key(g).keys(true);
    let mut home_rx = vec![self::key(g).keys(true)];
    let open = |g: u8| Input::Command(Command::OpenPipe { call: CALL, peer: home(), uplink: true, key: self::key(g) });
    run(&mut r, &mut home_rx, start, open(g));
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
    run(&mut r, &mut home_rx, start, Input::Receive { source: participant(), contents: Bytes::from(join) });
    let mut last_sealed: Option<Bytes> = None;
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
        // A pipe datagram: the header, then the fuzzer's type and body, sealed
        // with the home's key (as the home would send it), or left unsealed.
        let framed = |sealed: bool| {
            let mut b = BytesMut::new();
            b.extend_from_slice(&[0xCC, 0x20 | body.first().map_or(1, |t| t & 0x0F)]);
            b.extend_from_slice(&CALL.0);
            b.extend_from_slice(&home_tx.id.to_be_bytes());
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(body.get(1..).unwrap_or_default());
            if sealed {
                home_tx.sealer.seal(&mut b, 0, PIPE_HEADER).expect("counter space");
            } else {
                b.extend_from_slice(&[0; 16]);
            }
            b.freeze()
        };
        match op & 0x0F {
            0..=3 => {
                let b = framed(true);
                // What the router will open: the same message, sealed again, round-trips.
                let mut mirror = self::key(g).keys(false);
                if let Ok((call, m)) = cascade_open(&mut mirror, &b) {
                    if let PipeMessage::Grant(_) | PipeMessage::Joined(_) = m {
                        unreachable!("never on the wire");
                    }
                    let again = cascade_seal(&self::key(g).keys(true), call, &m).expect("every wire message seals");
                    assert_eq!(cascade_open(&mut self::key(g).keys(false), &again), Ok((call, m)), "round trip");
                }
                last_sealed = Some(b.clone());
                run(&mut r, &mut home_rx, now, Input::Receive { source: home(), contents: b });
            }
            4 => {
                // Unsealed, tampered (a byte the fuzzer picks flipped) or replayed: refused, nothing sent.
                let b = match (&last_sealed, body.first()) {
                    (Some(s), Some(&at)) if at & 1 == 1 => {
                        let mut t = s.to_vec();
                        let i = usize::from(at >> 1) % t.len();
                        t[i] ^= 0x20;
                        Bytes::from(t)
                    }
                    (Some(s), Some(_)) => s.clone(),
                    _ => framed(false),
                };
                let sent = run(&mut r, &mut home_rx, now, Input::Receive { source: home(), contents: b });
                assert_eq!(sent, 0, "an unauthentic or replayed pipe datagram changes nothing");
            }
            5 | 6 => {
                let sent =
                    run(&mut r, &mut home_rx, now, Input::Receive { source: stranger(), contents: framed(true) });
                assert_eq!(sent, 0, "a stranger's pipe datagram changes nothing");
            }
            7 => {
                run(
                    &mut r,
                    &mut home_rx,
                    now,
                    Input::Receive { source: home(), contents: Bytes::copy_from_slice(body) },
                );
            }
            8..=10 => {
                run(
                    &mut r,
                    &mut home_rx,
                    now,
                    Input::Receive { source: participant(), contents: Bytes::copy_from_slice(body) },
                );
            }
            11 => {
                // Opened again, with a new key (never an old key from counter 0).
                g = g.wrapping_add(1);
                if home_rx.iter().all(|k| k.id != self::key(g).id()) {
                    home_tx = self::key(g).keys(true);
                    home_rx.push(self::key(g).keys(true));
                    run(&mut r, &mut home_rx, now, open(g));
                }
            }
            12 => {
                run(&mut r, &mut home_rx, now, Input::Command(Command::ClosePipe { call: CALL, peer: home() }));
            }
            13 => {
                run(&mut r, &mut home_rx, now, Input::Command(Command::RemoveParticipant(CALL, ParticipantId(1))));
            }
            _ => {
                run(&mut r, &mut home_rx, now, Input::Timeout);
            }
        }
    }
});
