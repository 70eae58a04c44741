//! Helpers shared by the codec crate's integration tests.
#![allow(dead_code)] // each test binary uses a part

use corecast_codec::av1::Packetizer;
use corecast_core::RouterConfig;
use corecast_proto::rtp::RtpPacket;
use corecast_proto::{MediaTime, Pt, SeqNo, Ssrc};
use corecast_router::server::{RouterServer, ServerConfig};

/// The RTP packets (AV1, payload type 45) of one temporal unit, at most
/// `max_payload` bytes of payload each; `seq` advances.
pub fn rtp_of(ssrc: Ssrc, seq: &mut SeqNo, ts: u32, unit: &[u8], max_payload: usize) -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    let n = Packetizer::new(max_payload).unwrap().packetize(unit, &mut payloads).unwrap();
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, payload)| {
            let p = RtpPacket {
                marker: i + 1 == n,
                pt: Pt(45),
                seq: *seq,
                timestamp: MediaTime(ts),
                ssrc,
                payload,
                ..Default::default()
            };
            *seq = seq.next();
            p.to_vec().unwrap()
        })
        .collect()
}

/// A one-worker router on a free loopback port that accepts development-key tokens.
pub fn start_router() -> RouterServer {
    RouterServer::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        advertise_ip: None,
        workers: 1,
        cpus: vec![],
        backend: "auto".into(),
        core: RouterConfig { join_secret: Some(corecast_proto::join_key::JoinSecret::dev()), ..Default::default() },
        public_key: corecast_proto::token::dev_signing_key().verifying_key(),
        io: Default::default(),
    })
    .unwrap()
}
