//! Two workers of one router sharing a spread call through pipe transports,
//! under arbitrary datagrams and arbitrary pipe messages (media and control,
//! in any order): neither core panics, and no RTP a sender does not own is
//! ever transmitted to a participant.
#![no_main]
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_proto::join_key::JoinSecret;
use corecast_core::webrtc::{Codec, SenderFormat};
use corecast_core::{Input, Layer, Output, PipeMessage, Placement, Router, RouterConfig};
use corecast_proto::demux::{classify, Kind};
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::{Quality, SessionMessage};
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};
use libfuzzer_sys::fuzz_target;

/// The codecs a fuzzed sender format names.
const CODECS: [Codec; 5] = [Codec::Opus, Codec::Av1, Codec::Vp8, Codec::H264, Codec::Rtx];

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 21_000 + (i % 4) as u16))
}

fn call() -> CallId {
    (0u8..=255).map(|b| CallId([b; 16])).find(|c| Placement::worker_for(c, 2) == 0).expect("a call on worker 0")
}

/// Feeds `input` to worker `w` and everything it pipes on to the other, in order.
fn run(w: &mut [Router; 2], now: Instant, worker: usize, input: Input) {
    let mut work = VecDeque::from([(worker, input)]);
    while let Some((i, inp)) = work.pop_front() {
        w[i].handle_input(now, inp);
        loop {
            match w[i].poll_output() {
                Output::Transmit(t) => {
                    if classify(&t.contents) == Kind::Rtp {
                        let h = RtpHeader::parse(&t.contents).expect("only valid RTP is forwarded");
                        // Participants 1 and 2 own SSRCs 100 and 200 (see below); fuzzed
                        // pipe producers may announce others, but never these two.
                        assert!(h.ssrc.0 != 100 || t.destination != addr(1), "echoed to its sender");
                        assert!(h.ssrc.0 != 200 || t.destination != addr(2), "echoed to its sender");
                    }
                }
                Output::Pipe(p) => {
                    work.push_back((p.worker, Input::Pipe { from_worker: i, call: p.call, message: p.message }))
                }
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let key = token::dev_signing_key();
    let start = Instant::now();
    let addrs = vec![addr(100), addr(101)];
    let mk = |i| {
        let cfg = RouterConfig {
            max_receivers_per_worker: 1,
            placement: Placement { index: i, addresses: addrs.clone() },
            join_secret: Some(JoinSecret::dev()),
            // Plain legs: the fuzzer cannot seal SRTP, so its packets would stop at authentication.
            plain_native_media: true,
            ..Default::default()
        };
        Router::new(cfg, key.verifying_key(), start, 1_000)
    };
    let mut w = [mk(0), mk(1)];
    let c = call();
    // Participant 1 on worker 0, participant 2 spread to worker 1.
    for (pid, at) in [(1u64, 0usize), (2, 0), (2, 1)] {
        let claims =
            Claims { call_id: c, participant_id: ParticipantId(pid), role: Role::Publisher, expires_at_ms: u64::MAX };
        let tok = token::sign(&key, &claims);
        let join = SessionMessage::Join {
            txid: [0; 12],
            token: tok.to_vec(),
            ssrcs: vec![(Ssrc(pid as u32 * 100), MediaKind::Video)],
            quality: Quality::Hd, srtp: false
        };
        let join = join.to_signed_vec(&JoinSecret::dev().key_for(&tok));
        run(&mut w, start, at, Input::Receive { source: addr(pid as u8), contents: Bytes::from(join) });
    }
    // Input: [op, arg, len, bytes...]*
    let mut rest = data;
    let mut now = start;
    while rest.len() >= 3 {
        let (op, arg, len) = (rest[0], rest[1], rest[2] as usize);
        rest = &rest[3..];
        let len = len.min(rest.len());
        let (pkt, tail) = rest.split_at(len);
        rest = tail;
        now += Duration::from_millis((op >> 4) as u64 * 50);
        let worker = (arg & 1) as usize;
        let pid = ParticipantId((arg >> 1) as u64 % 4);
        let input = match op & 0x0f {
            0..=5 => Input::Receive { source: addr(arg), contents: Bytes::copy_from_slice(pkt) },
            6 | 7 => Input::Pipe {
                from_worker: 1 - worker,
                call: c,
                message: PipeMessage::Media(Bytes::copy_from_slice(pkt)),
            },
            8 => {
                let ssrc = pkt.first().map_or(0, |&b| b as u32);
                // Sometimes a simulcast layer of a group the fuzzer names (any index).
                let layer = match pkt.get(1..3) {
                    Some(&[g, i]) if g & 1 == 1 => Some(Layer { group: Ssrc(u32::from(g >> 1)), index: i }),
                    _ => None,
                };
                // Sometimes its sender's format, as the fuzzer writes it: extension
                // ids, then payload type and codec pairs.
                let format = match pkt.get(3..6) {
                    Some(&[flag, audio_level, dependency_descriptor]) if flag & 1 == 1 => {
                        let codecs = pkt[6..].chunks_exact(2).map(|c| (c[0], CODECS[usize::from(c[1]) % CODECS.len()]));
                        Some(Arc::new(SenderFormat { codecs: codecs.collect(), audio_level, dependency_descriptor }))
                    }
                    _ => None,
                };
                let message = PipeMessage::Producer {
                    participant: pid,
                    role: Role::Publisher,
                    ssrc: Ssrc(ssrc),
                    kind: MediaKind::Video,
                    layer,
                    format,
                };
                Input::Pipe { from_worker: 1 - worker, call: c, message }
            }
            9 => Input::Pipe { from_worker: 1 - worker, call: c, message: PipeMessage::Left(pid) },
            10 => Input::Pipe { from_worker: 1 - worker, call: c, message: PipeMessage::Grant(pid) },
            11 => Input::Pipe { from_worker: 1 - worker, call: c, message: PipeMessage::Joined(pid) },
            12 => Input::Pipe { from_worker: 1 - worker, call: c, message: PipeMessage::Open },
            13 => Input::Pipe { from_worker: 1 - worker, call: c, message: PipeMessage::Close },
            _ => Input::Timeout,
        };
        run(&mut w, now, worker, input);
        run(&mut w, now, worker, Input::Timeout);
    }
});
