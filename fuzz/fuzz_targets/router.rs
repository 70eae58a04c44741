//! The routing core under arbitrary traffic from admitted and unadmitted
//! addresses: it never panics, and it never forwards RTP that the sender
//! does not own.
#![no_main]
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_core::{Input, Output, Router, RouterConfig};
use corecast_proto::demux::{classify, Kind};
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::{Quality, SessionMessage};
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};
use libfuzzer_sys::fuzz_target;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 20_000 + (i % 4) as u16))
}

fuzz_target!(|data: &[u8]| {
    let key = token::dev_signing_key();
    let start = Instant::now();
    let mut r = Router::new(RouterConfig::default(), key.verifying_key(), start, 1_000);
    for pid in 0..2u8 {
        let claims = Claims {
            call_id: CallId([1; 16]),
            participant_id: ParticipantId(pid as u64),
            role: Role::Publisher,
            expires_at_ms: u64::MAX,
        };
        let join = SessionMessage::Join {
            txid: [0; 12],
            token: token::sign(&key, &claims).to_vec(),
            ssrcs: vec![(Ssrc(100 + pid as u32), MediaKind::Video)],
            quality: Quality::Hd,
        };
        r.handle_input(start, Input::Receive { source: addr(pid), contents: Bytes::from(join.to_vec()) });
        while !matches!(r.poll_output(), Output::Timeout(_)) {}
    }
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
        r.handle_input(now, Input::Receive { source: addr(from), contents: Bytes::copy_from_slice(pkt) });
        r.handle_input(now, Input::Timeout);
        loop {
            match r.poll_output() {
                Output::Transmit(t) => {
                    if classify(&t.contents) == Kind::Rtp {
                        let h = RtpHeader::parse(&t.contents).expect("only valid RTP is forwarded");
                        assert!(from % 4 < 2, "forwarded for an unadmitted sender");
                        assert_eq!(h.ssrc, Ssrc(100 + (from % 4) as u32), "forwarded an SSRC the sender does not own");
                    }
                }
                Output::Timeout(_) => break,
                _ => {}
            }
        }
    }
});
