//! The audio half of the per-call mixer (RFC 3550 §7.1 "mixer"): sans-IO.
//!
//! Inputs: the Opus RTP packets of the call's audio sources, as the router
//! forwards them to the mixer participant (it forwards the loudest speakers,
//! the same streams its native SD receivers hear, see the router's
//! `PROTOCOL.md`), and time. Output ([`AudioMixer::poll_rtp`]): one 48 kHz
//! mono Opus stream in 20 ms frames with its own SSRC, the mixed sources
//! listed as CSRCs and, when configured, the mix's own RFC 6464 audio level.
//!
//! The mixer never reads the clock: the driver passes `now` with every input
//! and calls [`AudioMixer::handle_timeout`] at [`AudioMixer::poll_timeout`].
//!
//! Per source: a small reorder buffer ([`crate::audio_jitter`]), one Opus
//! decoder (each packet is decoded once), and a FIFO of decoded samples. A
//! source starts to play [`AudioMixConfig::jitter_delay`] after its first
//! packet (and again after it ran dry), so packets reordered or delayed by
//! up to that much are still in time. A missing packet is rebuilt from the
//! next packet's in-band FEC when that is already here, otherwise concealed
//! by the decoder (PLC); a packet that arrives after its turn is dropped.
//!
//! Every 20 ms (the output clock starts with the first packet and stops when
//! no source is left): each playing source gives one frame; the
//! [`AudioMixConfig::max_mixed`] loudest (a level meter per source that
//! rises at once and falls by 1.5 dB per frame, with [`HYSTERESIS_DB`] head
//! start for those already mixed) are summed; a limiter scales a sum that
//! would clip (gain ramped over the frame, then clamped), and the frame is
//! encoded. Without any playing source nothing is sent; the RTP timestamp
//! still advances with the clock and the next packet carries the marker bit
//! (RFC 3551 §4.1, start of a talkspurt).
//!
//! Errors never panic: malformed Opus, packets that are not Opus, late and
//! duplicate packets, encoder failures and missed output slots are counted
//! in [`AudioMixStats`]. Per packet nothing is allocated but the outgoing
//! RTP packet itself: payloads, samples and the encoder's output live in
//! buffers kept from one packet to the next.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use corecast_proto::rtp::RtpHeader;
use corecast_proto::{MediaTime, Pt, SeqNo, Ssrc};

use crate::audio_jitter::{JitterBuffer, Next, Push};
use crate::CodecError;

/// Output and decoding sample rate.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame (mono).
pub const FRAME: usize = 960;
/// Duration of one output frame.
pub const FRAME_TIME: Duration = Duration::from_millis(20);
/// Head start (dB) of a source that is already in the mix.
pub const HYSTERESIS_DB: f32 = 6.0;
/// The most samples one Opus packet decodes to (120 ms).
const MAX_PACKET_SAMPLES: usize = 5760;
/// Output frames made up at once when `handle_timeout` comes late; beyond,
/// frames are skipped (counted).
const MAX_CATCH_UP: u32 = 5;
/// How fast a source's level meter falls, dB per frame.
const RELEASE_DB: f32 = 1.5;
/// The level meter's floor (RFC 6464: 127 is silence).
const SILENCE_DB: f32 = -127.0;

/// Audio mixer settings.
#[derive(Debug, Clone)]
pub struct AudioMixConfig {
    /// SSRC of the mixed stream.
    pub ssrc: Ssrc,
    /// Payload type of the mixed stream (Opus).
    pub pt: Pt,
    /// Payload types of incoming audio (besides the static 0..=23), as the
    /// router takes them: packets of these types never reach the video path.
    pub audio_payload_types: Vec<u8>,
    /// Which of them are Opus (the rest are counted and ignored).
    pub opus_payload_types: Vec<u8>,
    /// Encoder bitrate, bits/s.
    pub bitrate_bps: i32,
    /// Most sources mixed at once.
    pub max_mixed: usize,
    /// Most sources followed at once (beyond, new ones are ignored and counted).
    pub max_sources: usize,
    /// A source plays this long after its first packet (the reorder window).
    pub jitter_delay: Duration,
    /// A source silent for this long is dropped.
    pub source_timeout: Duration,
    /// RFC 8285 id for the mix's RFC 6464 audio level (0: none).
    pub level_ext_id: u8,
    /// First RTP sequence number.
    pub initial_seq: SeqNo,
    /// RTP timestamp of the first output frame.
    pub initial_timestamp: MediaTime,
}

impl Default for AudioMixConfig {
    fn default() -> Self {
        AudioMixConfig {
            ssrc: Ssrc(0x6175_6478),
            pt: Pt(111),
            audio_payload_types: vec![111, 109, 110],
            opus_payload_types: vec![111, 109],
            bitrate_bps: 32_000,
            max_mixed: 3,
            max_sources: 32,
            jitter_delay: Duration::from_millis(40),
            source_timeout: Duration::from_secs(5),
            level_ext_id: 1,
            initial_seq: SeqNo(0),
            initial_timestamp: MediaTime(0),
        }
    }
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AudioMixStats {
    /// Audio RTP packets handled.
    pub rtp_in: u64,
    /// Audio packets of a payload type that is not Opus (ignored).
    pub not_opus: u64,
    /// Packets of new sources beyond `max_sources` (ignored).
    pub sources_refused: u64,
    /// Packets that came after their turn (dropped).
    pub late: u64,
    /// Packets received twice (dropped).
    pub duplicates: u64,
    /// Sources whose sequence numbers jumped (buffer started over).
    pub resets: u64,
    /// Packets decoded.
    pub decoded: u64,
    /// Lost packets decoded from the next packet's in-band FEC (the decoder
    /// conceals when that packet carries none).
    pub fec_recovered: u64,
    /// Lost or undecodable packets concealed by the decoder (PLC).
    pub concealed: u64,
    /// Packets that failed to decode (malformed Opus).
    pub decode_errors: u64,
    /// Times a playing source ran dry (it waits `jitter_delay` again).
    pub underruns: u64,
    /// Frames mixed and encoded.
    pub frames_out: u64,
    /// Output frames skipped because `handle_timeout` came late (overload).
    pub frames_skipped: u64,
    /// Frames the encoder failed on.
    pub encode_errors: u64,
    /// RTP packets produced.
    pub rtp_out: u64,
    /// Payload bytes produced.
    pub bytes_out: u64,
}

struct Source {
    ssrc: Ssrc,
    decoder: opus::Decoder,
    jitter: JitterBuffer,
    /// Decoded samples not yet mixed, oldest first.
    pcm: Vec<i16>,
    playing: bool,
    /// First packet since the source last ran dry.
    primed_at: Option<Instant>,
    last_active: Instant,
    /// Samples of the last packet: how much a loss conceals.
    last_samples: usize,
    /// This tick's frame, when `has_frame`.
    frame: Vec<i16>,
    has_frame: bool,
    /// Smoothed level, dBov.
    level_db: f32,
    mixed: bool,
}

/// The per-call audio mixer. See the module docs for the contract.
pub struct AudioMixer {
    cfg: AudioMixConfig,
    sources: Vec<Source>,
    encoder: opus::Encoder,
    next_tick: Option<Instant>,
    last_tick: Option<Instant>,
    /// RTP timestamp of the frame of `next_tick`.
    ts: u32,
    seq: SeqNo,
    /// The last tick sent a frame (the next one after a pause has the marker).
    talking: bool,
    mixed: Vec<Ssrc>,
    scratch: Vec<i16>,
    acc: Vec<i32>,
    mix: Vec<i16>,
    encoded: Vec<u8>,
    order: Vec<usize>,
    gain: f32,
    out: VecDeque<Vec<u8>>,
    stats: AudioMixStats,
}

impl std::fmt::Debug for AudioMixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioMixer")
            .field("ssrc", &self.cfg.ssrc)
            .field("sources", &self.sources())
            .field("mixed", &self.mixed)
            .field("stats", &self.stats)
            .finish()
    }
}

fn opus_error(e: opus::Error) -> CodecError {
    CodecError::Opus(e.to_string())
}

impl AudioMixer {
    /// Creates a mixer (and its encoder).
    pub fn new(cfg: AudioMixConfig) -> Result<AudioMixer, CodecError> {
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip).map_err(opus_error)?;
        encoder.set_bitrate(opus::Bitrate::Bits(cfg.bitrate_bps)).map_err(opus_error)?;
        Ok(AudioMixer {
            sources: Vec::new(),
            encoder,
            next_tick: None,
            last_tick: None,
            ts: cfg.initial_timestamp.0,
            seq: cfg.initial_seq,
            talking: false,
            mixed: Vec::new(),
            scratch: vec![0; MAX_PACKET_SAMPLES],
            acc: vec![0; FRAME],
            mix: vec![0; FRAME],
            encoded: vec![0; 1500],
            order: Vec::new(),
            gain: 1.0,
            out: VecDeque::new(),
            stats: AudioMixStats::default(),
            cfg,
        })
    }

    // ---- getters ----

    /// Counters.
    pub fn stats(&self) -> AudioMixStats {
        self.stats
    }

    /// SSRC of the mixed stream.
    pub fn ssrc(&self) -> Ssrc {
        self.cfg.ssrc
    }

    /// Whether a packet of payload type `pt` is audio (it belongs here, not
    /// to the video mixer).
    pub fn is_audio(&self, pt: Pt) -> bool {
        pt.0 <= 23 || self.cfg.audio_payload_types.contains(&pt.0) || self.cfg.opus_payload_types.contains(&pt.0)
    }

    /// SSRCs of the sources followed, in arrival order.
    pub fn sources(&self) -> Vec<Ssrc> {
        self.sources.iter().map(|s| s.ssrc).collect()
    }

    /// The sources in the last frame sent (its CSRCs), loudest first.
    pub fn mixed(&self) -> &[Ssrc] {
        &self.mixed
    }

    // ---- inputs ----

    /// Handles one audio RTP packet (`h` parsed from `packet`).
    pub fn handle_rtp(&mut self, now: Instant, h: &RtpHeader, packet: &[u8]) {
        if h.ssrc == self.cfg.ssrc {
            return;
        }
        self.stats.rtp_in += 1;
        if !self.cfg.opus_payload_types.contains(&h.pt.0) {
            self.stats.not_opus += 1;
            return;
        }
        if h.payload(packet).is_empty() {
            // Not an Opus packet (RFC 6716 §3.1: at least the TOC byte); concealed as lost.
            self.stats.decode_errors += 1;
            return;
        }
        let i = match self.sources.iter().position(|s| s.ssrc == h.ssrc) {
            Some(i) => i,
            None => {
                if self.sources.len() >= self.cfg.max_sources {
                    self.stats.sources_refused += 1;
                    return;
                }
                let Ok(decoder) = opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono) else {
                    self.stats.sources_refused += 1;
                    return;
                };
                self.sources.push(Source {
                    ssrc: h.ssrc,
                    decoder,
                    jitter: JitterBuffer::new(),
                    pcm: Vec::with_capacity(MAX_PACKET_SAMPLES + FRAME),
                    playing: false,
                    primed_at: None,
                    last_active: now,
                    last_samples: FRAME,
                    frame: vec![0; FRAME],
                    has_frame: false,
                    level_db: SILENCE_DB,
                    mixed: false,
                });
                self.sources.len() - 1
            }
        };
        let src = &mut self.sources[i];
        src.last_active = now;
        match src.jitter.push(h.seq.0, h.payload(packet)) {
            Push::Stored => {}
            Push::Late => return self.stats.late += 1,
            Push::Duplicate => return self.stats.duplicates += 1,
            Push::Reset => {
                self.stats.resets += 1;
                src.playing = false;
                src.primed_at = None;
                src.pcm.clear();
            }
        }
        if !src.playing && src.primed_at.is_none() {
            src.primed_at = Some(now);
        }
        if self.next_tick.is_none() {
            self.start_clock(now + self.cfg.jitter_delay);
        }
    }

    /// Stops following a source (its participant left).
    pub fn remove_source(&mut self, ssrc: Ssrc) {
        self.sources.retain(|s| s.ssrc != ssrc);
    }

    /// Does what is due at `now`: drops silent sources and makes every
    /// output frame whose time has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        let timeout = self.cfg.source_timeout;
        self.sources.retain(|s| now.saturating_duration_since(s.last_active) <= timeout);
        while let Some(t) = self.next_tick.filter(|&t| t <= now) {
            let behind = (now.saturating_duration_since(t).as_nanos() / FRAME_TIME.as_nanos()) as u32;
            // Far behind: pull the sources' frames without encoding them.
            self.tick(t, behind < MAX_CATCH_UP);
            self.last_tick = Some(t);
            self.next_tick = (!self.sources.is_empty()).then_some(t + FRAME_TIME);
        }
    }

    // ---- outputs ----

    /// When [`AudioMixer::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_tick
    }

    /// The next RTP packet of the mixed stream.
    pub fn poll_rtp(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    // ---- internals ----

    /// Starts the output clock at `at`; the RTP timestamp covers the pause.
    fn start_clock(&mut self, at: Instant) {
        if let Some(last) = self.last_tick {
            let paused = at.saturating_duration_since(last + FRAME_TIME);
            let frames = (paused.as_nanos() / FRAME_TIME.as_nanos()) as u32;
            self.ts = self.ts.wrapping_add(frames.wrapping_mul(FRAME as u32));
        }
        self.next_tick = Some(at);
    }

    /// One 20 ms output slot at `t`.
    fn tick(&mut self, t: Instant, encode: bool) {
        let ts = self.ts;
        self.ts = self.ts.wrapping_add(FRAME as u32);
        for src in &mut self.sources {
            src.has_frame = false;
            if !src.playing && src.primed_at.is_some_and(|p| t >= p + self.cfg.jitter_delay) {
                src.playing = true;
            }
            if src.playing {
                pull_frame(src, &mut self.scratch, &mut self.stats);
            }
            let db = if src.has_frame { frame_dbov(&src.frame) } else { SILENCE_DB };
            src.level_db = db.max(src.level_db - RELEASE_DB);
        }
        if !encode {
            self.stats.frames_skipped += 1;
            self.talking = false;
            return;
        }
        // The loudest playing sources, those already mixed with a head start.
        self.order.clear();
        self.order.extend((0..self.sources.len()).filter(|&i| self.sources[i].has_frame));
        let score = |s: &Source| s.level_db + if s.mixed { HYSTERESIS_DB } else { 0.0 };
        let sources = &self.sources;
        self.order.sort_unstable_by(|&a, &b| {
            score(&sources[b]).total_cmp(&score(&sources[a])).then(sources[a].ssrc.0.cmp(&sources[b].ssrc.0))
        });
        self.order.truncate(self.cfg.max_mixed.max(1));
        for (i, s) in self.sources.iter_mut().enumerate() {
            s.mixed = self.order.contains(&i);
        }
        if self.order.is_empty() {
            self.talking = false;
            return;
        }
        self.mixed.clear();
        self.mixed.extend(self.order.iter().map(|&i| self.sources[i].ssrc));
        self.acc.fill(0);
        for &i in &self.order {
            for (a, &x) in self.acc.iter_mut().zip(&self.sources[i].frame) {
                *a += i32::from(x);
            }
        }
        self.gain = limit(&self.acc, self.gain, &mut self.mix);
        let n = match self.encoder.encode(&self.mix, &mut self.encoded) {
            Ok(n) => n,
            Err(_) => {
                self.stats.encode_errors += 1;
                return;
            }
        };
        self.stats.frames_out += 1;
        let level = (-frame_dbov(&self.mix)).clamp(0.0, 127.0) as u8;
        let marker = !std::mem::replace(&mut self.talking, true);
        let packet = self.packet(marker, ts, level, n);
        self.stats.rtp_out += 1;
        self.stats.bytes_out += n as u64;
        self.out.push_back(packet);
    }

    /// The RTP packet of one encoded frame (`n` bytes in `self.encoded`).
    fn packet(&mut self, marker: bool, ts: u32, level: u8, n: usize) -> Vec<u8> {
        let csrcs = &self.mixed[..self.mixed.len().min(15)];
        let ext = (1..=14).contains(&self.cfg.level_ext_id);
        let mut p = Vec::with_capacity(12 + 4 * csrcs.len() + 8 + n);
        p.push(0x80 | if ext { 0x10 } else { 0 } | csrcs.len() as u8);
        p.push(if marker { 0x80 } else { 0 } | (self.cfg.pt.0 & 0x7f));
        p.extend_from_slice(&self.seq.0.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&self.cfg.ssrc.0.to_be_bytes());
        for c in csrcs {
            p.extend_from_slice(&c.0.to_be_bytes());
        }
        if ext {
            // RFC 8285 one-byte form, one element: RFC 6464 level, V set above -60 dBov.
            let vad = if level < 60 { 0x80 } else { 0 };
            p.extend_from_slice(&[0xBE, 0xDE, 0, 1, self.cfg.level_ext_id << 4, vad | level, 0, 0]);
        }
        p.extend_from_slice(&self.encoded[..n]);
        self.seq = self.seq.next();
        p
    }
}

/// Decodes `src`'s packets in order until it has a frame, and takes it.
fn pull_frame(src: &mut Source, scratch: &mut [i16], stats: &mut AudioMixStats) {
    while src.pcm.len() < FRAME {
        // A loss is filled with as many samples as the packet before it had.
        let lost = src.last_samples.min(scratch.len());
        let n = match src.jitter.pop() {
            Next::Packet(p) => match src.decoder.decode(p, scratch, false) {
                Ok(n) => {
                    stats.decoded += 1;
                    src.last_samples = n.clamp(FRAME / 8, MAX_PACKET_SAMPLES);
                    n
                }
                Err(_) => {
                    stats.decode_errors += 1;
                    conceal(&mut src.decoder, &mut scratch[..lost], stats)
                }
            },
            Next::Lost { fec: Some(next) } => match src.decoder.decode(next, &mut scratch[..lost], true) {
                Ok(n) => {
                    stats.fec_recovered += 1;
                    n
                }
                Err(_) => conceal(&mut src.decoder, &mut scratch[..lost], stats),
            },
            Next::Lost { fec: None } => conceal(&mut src.decoder, &mut scratch[..lost], stats),
            Next::Empty => break,
        };
        src.pcm.extend_from_slice(&scratch[..n.min(scratch.len())]);
    }
    if src.pcm.len() >= FRAME {
        src.frame.copy_from_slice(&src.pcm[..FRAME]);
        src.pcm.drain(..FRAME);
    } else {
        // Ran dry: what is left, then silence; wait for the next packets.
        let k = src.pcm.len();
        src.frame[..k].copy_from_slice(&src.pcm);
        src.frame[k..].fill(0);
        src.pcm.clear();
        src.playing = false;
        src.primed_at = None;
        stats.underruns += 1;
        if k == 0 {
            return;
        }
    }
    src.has_frame = true;
}

/// Fills a lost packet's samples (`out`) by the decoder's concealment
/// (silence if even that fails). Returns the samples written.
fn conceal(decoder: &mut opus::Decoder, out: &mut [i16], stats: &mut AudioMixStats) -> usize {
    stats.concealed += 1;
    decoder.decode(&[], out, false).unwrap_or_else(|_| {
        out.fill(0);
        out.len()
    })
}

/// The frame's power relative to a full-scale square wave, dBov (≤ 0).
fn frame_dbov(frame: &[i16]) -> f32 {
    let energy: f64 = frame.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    let mean = energy / frame.len().max(1) as f64 / (32768.0 * 32768.0);
    if mean <= 1e-13 {
        SILENCE_DB
    } else {
        ((10.0 * mean.log10()) as f32).max(SILENCE_DB)
    }
}

/// Writes the sum `acc` to `out` without wrapping: a sum that would clip is
/// scaled down at once (the gain ramps over the frame from `gain` to the
/// new one) and recovers by 10% of the way to unity per frame; whatever
/// still exceeds the range is clamped. Returns the gain at the frame's end.
fn limit(acc: &[i32], gain: f32, out: &mut [i16]) -> f32 {
    let peak = acc.iter().map(|&x| x.unsigned_abs()).max().unwrap_or(0) as f32;
    let target = if peak > 32767.0 { 32767.0 / peak } else { 1.0 };
    let end = target.min(gain + (1.0 - gain) * 0.1);
    let step = (end - gain) / acc.len().max(1) as f32;
    for (i, (o, &x)) in out.iter_mut().zip(acc).enumerate() {
        let g = gain + step * (i + 1) as f32;
        *o = (x as f32 * g).round().clamp(-32768.0, 32767.0) as i16;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sum_that_would_clip_is_scaled_not_wrapped() {
        let acc = vec![60_000i32, -60_000, 30_000, 0];
        let mut out = vec![0i16; 4];
        let g = limit(&acc, 1.0, &mut out);
        assert!((g - 32767.0 / 60_000.0).abs() < 1e-6);
        assert!(out[0] > 16_000 && out[1] < -16_000, "{out:?}: signs kept, nothing wrapped");
        assert_eq!(out[3], 0);
        // The next frame, quiet again, recovers the gain slowly.
        let g2 = limit(&[1000, -1000], g, &mut out[..2]);
        assert!(g2 > g && g2 < 1.0);
    }

    #[test]
    fn a_quiet_sum_passes_unchanged() {
        let acc = vec![12_000i32, -7, 32_767, -32_767];
        let mut out = vec![0i16; 4];
        assert_eq!(limit(&acc, 1.0, &mut out), 1.0);
        assert_eq!(out, vec![12_000, -7, 32_767, -32_767]);
    }

    #[test]
    fn levels_in_dbov() {
        assert_eq!(frame_dbov(&[0; FRAME]), SILENCE_DB);
        let full = vec![i16::MAX; FRAME];
        assert!(frame_dbov(&full).abs() < 0.01);
        let half: Vec<i16> = vec![16_384; FRAME];
        assert!((frame_dbov(&half) + 6.02).abs() < 0.05);
    }
}
