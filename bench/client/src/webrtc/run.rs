//! What `corecast-client whip` and `whep` do once connected: publish paced
//! synthetic audio (Opus payload type, 50 packets/s) and video (AV1 payload
//! type, frames of equal packets), or receive and verify what arrives.
//!
//! Payload layout: send time (µs since the Unix epoch, 8 bytes), then bytes
//! `(i + seq) as u8`: a receiver checks every byte after decryption.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use corecast_proto::rtp::RtpPacket;
use corecast_proto::{MediaTime, Pt, SeqNo, Ssrc};

use super::sdp::{AV1_PT, OPUS_PT};
use super::udp::UdpPeer;

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct SendPlan {
    /// How long.
    pub duration: Duration,
    /// Video frames per second (0: audio only).
    pub fps: u32,
    /// Packets per video frame.
    pub packets_per_frame: u16,
    /// Video payload size in bytes.
    pub video_payload: usize,
    /// Audio and video SSRCs (as offered).
    pub ssrcs: (u32, u32),
}

/// What was sent.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SentReport {
    /// Audio packets.
    pub audio: u64,
    /// Video packets.
    pub video: u64,
}

/// What was received.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReceivedReport {
    /// Packets per SSRC.
    pub packets: BTreeMap<u32, u64>,
    /// Packets whose payload is not the pattern.
    pub corrupt: u64,
    /// SRTP packets that did not authenticate (or replays).
    pub rejected: u64,
    /// Median one-way latency, µs (same host clock only).
    pub p50_latency_us: u64,
    /// The SRTP profile.
    pub profile: String,
}

fn payload(seq: u16, len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len.max(8)).map(|i| (i as u16).wrapping_add(seq) as u8).collect();
    p[..8].copy_from_slice(&crate::now_us().to_be_bytes());
    p
}

/// Whether `p` is the pattern for `seq`; its send time.
fn check(seq: u16, p: &[u8]) -> Option<u64> {
    if p.len() < 8 || !p.iter().enumerate().skip(8).all(|(i, b)| *b == (i as u16).wrapping_add(seq) as u8) {
        return None;
    }
    Some(u64::from_be_bytes(p[..8].try_into().ok()?))
}

/// Publishes until `plan.duration` is over (consent kept on the way).
pub fn publish(udp: &mut UdpPeer, plan: &SendPlan) -> anyhow::Result<SentReport> {
    let t0 = Instant::now();
    let mut r = SentReport::default();
    let (mut aseq, mut vseq) = (0u16, 0u16);
    let audio_every = Duration::from_millis(20);
    let video_every = if plan.fps == 0 { Duration::MAX } else { Duration::from_secs(1) / plan.fps };
    let (mut next_audio, mut next_video) = (t0, t0);
    while t0.elapsed() < plan.duration {
        let now = Instant::now();
        if now >= next_audio {
            let p = RtpPacket {
                pt: Pt(OPUS_PT),
                seq: SeqNo(aseq),
                timestamp: MediaTime((r.audio as u32).wrapping_mul(960)),
                ssrc: Ssrc(plan.ssrcs.0),
                payload: payload(aseq, 80),
                ..Default::default()
            };
            udp.send_rtp(&p.to_vec()?)?;
            aseq = aseq.wrapping_add(1);
            r.audio += 1;
            next_audio += audio_every;
        }
        if now >= next_video {
            let frame = (r.video / u64::from(plan.packets_per_frame.max(1))) as u32;
            for i in 0..plan.packets_per_frame.max(1) {
                let p = RtpPacket {
                    marker: i + 1 == plan.packets_per_frame.max(1),
                    pt: Pt(AV1_PT),
                    seq: SeqNo(vseq),
                    timestamp: MediaTime(frame.wrapping_mul(3000)),
                    ssrc: Ssrc(plan.ssrcs.1),
                    payload: payload(vseq, plan.video_payload),
                    ..Default::default()
                };
                udp.send_rtp(&p.to_vec()?)?;
                vseq = vseq.wrapping_add(1);
                r.video += 1;
            }
            next_video += video_every;
        }
        let wake = next_audio.min(next_video);
        // Read what the router sends meanwhile (ICE answers, SRTCP feedback).
        let _ = udp.recv_until(wake.max(Instant::now() + Duration::from_millis(1)))?;
    }
    Ok(r)
}

/// Receives until `duration` is over, checking every payload.
pub fn receive(udp: &mut UdpPeer, duration: Duration) -> anyhow::Result<ReceivedReport> {
    let deadline = Instant::now() + duration;
    let mut r = ReceivedReport::default();
    let mut lat = Vec::new();
    while let Some(plain) = udp.recv_rtp(deadline)? {
        let Ok(p) = RtpPacket::parse(&plain) else {
            r.corrupt += 1;
            continue;
        };
        *r.packets.entry(p.ssrc.0).or_default() += 1;
        match check(p.seq.0, &p.payload) {
            Some(sent) => lat.push(crate::now_us().saturating_sub(sent)),
            None => r.corrupt += 1,
        }
    }
    lat.sort_unstable();
    r.p50_latency_us = lat.get(lat.len() / 2).copied().unwrap_or(0);
    r.rejected = udp.peer.stats().srtp_rejected;
    r.profile = udp.peer.profile().map(|p| format!("{p:?}")).unwrap_or_default();
    Ok(r)
}
