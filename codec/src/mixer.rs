//! The per-call mixer (RFC 3550 §7.1 "mixer"): sans-IO.
//!
//! Inputs: the AV1 RTP packets of the call's video sources (as the router
//! forwards them to the mixer participant), RTCP feedback from SD
//! receivers, and time. Outputs ([`Mixer::poll_output`]): the RTP packets of
//! one composite AV1 stream (640x360 by default, own SSRC, sources listed
//! as CSRCs), keyframe requests for sources (to send as PLI), and events.
//!
//! The mixer never reads the clock and never sleeps: the driver passes
//! `now` with every input and calls [`Mixer::handle_timeout`] at
//! [`Mixer::poll_timeout`]. The only waiting is inside the encoder, for the
//! picture just sent (a few ms at 640x360).
//!
//! Per source: depacketize ([`crate::av1::Depacketizer`]), decode
//! every unit once (dav1d), keep the newest picture. A composite is made as
//! soon as every shown source has a new picture (at most at twice the frame
//! rate); a source that is late is waited for at most half a frame interval
//! after the first new picture, so the composite follows the sources' own
//! timing instead of a fixed grid that could lag them by a whole frame.
//! Without any new picture a composite is still made once a second (and at
//! once when a keyframe is asked for), so new receivers can start. It shows
//! at most nine sources, in join order (a cell does not move while its source
//! stays shown): with more, the nine loudest speakers as the router reports
//! them (RTCP APP `SPKR`, from RFC 6464 audio levels), then sources that sent
//! in the last [`ACTIVE_WINDOW`], earliest joined first. Sources not shown
//! are not decoded; one that is shown again asks for a keyframe (PLI) and
//! starts from it.
//!
//! Audio packets (by payload type, as the router tells audio from video) go
//! to the call's [`AudioMixer`] (`audio_mix`): the loudest speakers mixed
//! into one Opus stream with its own SSRC ([`MixerConfig::audio`]), whose
//! packets come out of [`Mixer::poll_output`] with the composite's.
//!
//! Overload never blocks the caller: a source picture replaced before it was
//! shown, an output slot missed because `handle_timeout` came late, and a
//! unit that failed to decode are each counted in [`MixerStats`] and
//! reported as a [`MixerEvent`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use corecast_proto::rtcp::{self, RtcpPacket};
use corecast_proto::rtp::{RtpHeader, RtpPacket};
use corecast_proto::session::speakers;
use corecast_proto::{MediaTime, SeqNo, Ssrc};

use crate::audio_mix::AudioMixer;
use crate::av1::{Depacketizer, Packetizer};
use crate::compose::{Compositor, MAX_CELLS};
use crate::decode::{Decoder, Picture};
pub use crate::mixer_api::{MixerConfig, MixerEvent, MixerOutput, MixerStats};
use crate::svt::{Encoder, EncoderConfig};
use crate::CodecError;

/// With more than nine sources, a source that sent within this long of the
/// newest packet counts as active.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Source {
    ssrc: Ssrc,
    order: u64,
    depack: Depacketizer,
    decoder: Decoder,
    picture: Option<Picture>,
    /// Arrival of the picture if no composite has shown it yet.
    fresh: Option<Instant>,
    last_active: Instant,
    last_pli: Option<Instant>,
    /// Not shown: its units are not decoded (decoder flushed, picture
    /// dropped); shown again, it restarts at a keyframe it asks for.
    parked: bool,
}

#[derive(Debug)]
struct InFlight {
    rtp_ts: MediaTime,
    csrcs: Vec<Ssrc>,
    arrivals: Vec<Instant>,
}

/// The per-call mixer. See the module docs for the contract.
#[derive(Debug)]
pub struct Mixer {
    cfg: MixerConfig,
    interval: Duration,
    sources: Vec<Source>,
    next_order: u64,
    /// Who speaks, loudest first (video SSRCs), as the router last said.
    speakers: Vec<Ssrc>,
    compositor: Compositor,
    encoder: Encoder,
    audio: AudioMixer,
    packetizer: Packetizer,
    start: Option<Instant>,
    next_output: Option<Instant>,
    last_output: Option<Instant>,
    keyframe_wanted: bool,
    last_forced: Option<Instant>,
    frames_sent: i64,
    in_flight: VecDeque<InFlight>,
    seq: SeqNo,
    out: VecDeque<MixerOutput>,
    stats: MixerStats,
    latencies: Vec<Duration>,
    payloads: Vec<Vec<u8>>,
}

/// Most latency samples kept between [`Mixer::drain_latencies`] calls.
const MAX_LATENCY_SAMPLES: usize = 100_000;

impl Mixer {
    /// Creates a mixer (and its encoder).
    pub fn new(cfg: MixerConfig) -> Result<Mixer, CodecError> {
        if cfg.fps == 0 {
            return Err(CodecError::Unsupported("fps must be positive"));
        }
        let encoder = Encoder::new(&EncoderConfig {
            width: cfg.width,
            height: cfg.height,
            fps: cfg.fps,
            bitrate_kbps: cfg.bitrate_kbps,
            preset: cfg.preset,
            keyint: cfg.fps * 10,
            threads: cfg.encoder_threads,
            extra: Vec::new(),
        })?;
        let packetizer = Packetizer::new(cfg.max_payload)?;
        let audio = AudioMixer::new(cfg.audio.clone())?;
        Ok(Mixer {
            audio,
            interval: Duration::from_secs(1) / cfg.fps,
            sources: Vec::new(),
            next_order: 0,
            speakers: Vec::new(),
            compositor: Compositor::new(cfg.width, cfg.height),
            encoder,
            packetizer,
            start: None,
            next_output: None,
            last_output: None,
            keyframe_wanted: false,
            last_forced: None,
            frames_sent: 0,
            in_flight: VecDeque::new(),
            seq: cfg.initial_seq,
            out: VecDeque::new(),
            stats: MixerStats::default(),
            latencies: Vec::new(),
            payloads: Vec::new(),
            cfg,
        })
    }

    // ---- getters ----

    /// Counters.
    pub fn stats(&self) -> MixerStats {
        MixerStats { audio: self.audio.stats(), ..self.stats }
    }

    /// SSRC of the composite stream.
    pub fn ssrc(&self) -> Ssrc {
        self.cfg.ssrc
    }

    /// The mixed audio.
    pub fn audio(&self) -> &AudioMixer {
        &self.audio
    }

    /// SSRCs of the sources the mixer knows, in join order.
    pub fn sources(&self) -> Vec<Ssrc> {
        self.sources.iter().map(|s| s.ssrc).collect()
    }

    /// The sources shown, in cell order (see the module docs for which).
    pub fn layout(&self) -> Vec<Ssrc> {
        self.shown().into_iter().map(|i| self.sources[i].ssrc).collect()
    }

    /// The composite frame as last drawn.
    pub fn last_composite(&self) -> &crate::frame::I420Frame {
        self.compositor.frame()
    }

    /// Takes the added-latency samples collected so far: for every source
    /// picture shown, the time from the arrival of its last packet to the
    /// output of the composite packets that first show it.
    pub fn drain_latencies(&mut self) -> Vec<Duration> {
        std::mem::take(&mut self.latencies)
    }

    /// An RTCP PLI asking `source` for a keyframe, sent by the mixer.
    pub fn pli_for(&self, source: Ssrc) -> Vec<u8> {
        let pli = RtcpPacket::Pli(rtcp::Pli { sender_ssrc: self.cfg.ssrc, media_ssrc: source });
        rtcp::write_compound(&[pli]).unwrap_or_default()
    }

    // ---- inputs ----

    /// Handles one RTP packet of a source (any SSRC but the mixer's own):
    /// audio goes to the audio mixer. Malformed packets are ignored.
    pub fn handle_rtp(&mut self, now: Instant, packet: &[u8]) {
        let Ok(h) = RtpHeader::parse(packet) else { return };
        if h.ssrc == self.cfg.ssrc {
            return;
        }
        if self.audio.is_audio(h.pt) {
            return self.audio.handle_rtp(now, &h, packet);
        }
        self.start.get_or_insert(now);
        self.stats.rtp_in += 1;
        let idx = match self.sources.iter().position(|s| s.ssrc == h.ssrc) {
            Some(i) => i,
            None => {
                let Ok(decoder) = Decoder::new() else { return };
                self.sources.push(Source {
                    ssrc: h.ssrc,
                    order: self.next_order,
                    depack: Depacketizer::new(),
                    decoder,
                    picture: None,
                    fresh: None,
                    last_active: now,
                    last_pli: None,
                    parked: false,
                    // A new source needs a keyframe; its depacketizer asks for it.
                });
                self.next_order += 1;
                self.out.push_back(MixerOutput::Event(MixerEvent::SourceAdded(h.ssrc)));
                self.sources.len() - 1
            }
        };
        self.sources[idx].last_active = now;
        let shown = self.sources.len() <= MAX_CELLS || self.shown().contains(&idx);
        let src = &mut self.sources[idx];
        if !shown {
            // Not in the composite: no decoding, no keyframe requests.
            if !src.parked {
                src.parked = true;
                src.picture = None;
                src.fresh = None;
                src.decoder.flush();
            }
            src.depack.handle_packet(h.seq, h.timestamp, h.marker, h.payload(packet));
            while src.depack.poll_frame().is_some() {
                self.stats.units_skipped += 1;
            }
            let _ = src.depack.poll_keyframe_request();
            return self.schedule(now);
        }
        if std::mem::take(&mut src.parked) {
            src.depack.request_keyframe(); // the decoder restarts at a keyframe
        }
        src.depack.handle_packet(h.seq, h.timestamp, h.marker, h.payload(packet));
        while let Some(unit) = src.depack.poll_frame() {
            match src.decoder.decode(unit.data, i64::from(unit.timestamp.0)) {
                Ok(Some(pic)) => {
                    self.stats.decoded += 1;
                    if src.fresh.is_some() {
                        self.stats.source_frames_dropped += 1;
                        self.out.push_back(MixerOutput::Event(MixerEvent::SourceFrameDropped(src.ssrc)));
                    }
                    src.picture = Some(pic);
                    src.fresh = Some(now);
                }
                Ok(None) => {}
                Err(e) => {
                    self.stats.decode_errors += 1;
                    src.decoder.flush();
                    src.depack.request_keyframe();
                    self.out.push_back(MixerOutput::Event(MixerEvent::DecodeError {
                        ssrc: src.ssrc,
                        error: e.to_string(),
                    }));
                }
            }
        }
        if src.depack.poll_keyframe_request() {
            src.last_pli = Some(now);
            self.stats.keyframe_requests += 1;
            self.out.push_back(MixerOutput::KeyframeRequest(src.ssrc));
        }
        self.schedule(now);
    }

    /// Handles an RTCP compound: PLI or FIR for the composite SSRC (from SD
    /// receivers) force a composite keyframe; the router's speakers list
    /// (APP `SPKR`) decides who is shown when there are more than nine
    /// sources. Other packets are ignored.
    pub fn handle_rtcp(&mut self, now: Instant, packet: &[u8]) {
        let Ok(pkts) = rtcp::parse_compound(packet) else { return };
        for p in pkts {
            match p {
                RtcpPacket::Pli(p) if p.media_ssrc == self.cfg.ssrc => self.request_keyframe(now),
                RtcpPacket::Fir(f) if f.entries.iter().any(|(s, _)| *s == self.cfg.ssrc) => self.request_keyframe(now),
                RtcpPacket::App(a) => {
                    if let Some(list) = speakers::parse(&a) {
                        self.speakers = list;
                    }
                }
                _ => {}
            }
        }
    }

    /// Makes the next composite a keyframe (requests closer together than
    /// `min_keyframe_interval` are served by one keyframe).
    pub fn request_keyframe(&mut self, now: Instant) {
        self.keyframe_wanted = true;
        self.schedule(now);
    }

    /// Removes a source (participant left).
    pub fn remove_source(&mut self, ssrc: Ssrc) {
        self.audio.remove_source(ssrc);
        if let Some(i) = self.sources.iter().position(|s| s.ssrc == ssrc) {
            self.sources.remove(i);
            self.out.push_back(MixerOutput::Event(MixerEvent::SourceRemoved(ssrc)));
        }
    }

    /// Does what is due at `now`: repeats keyframe requests, drops silent
    /// sources, produces the composite when its slot has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.audio.handle_timeout(now);
        let timeout = self.cfg.source_timeout;
        let mut i = 0;
        while i < self.sources.len() {
            if now.saturating_duration_since(self.sources[i].last_active) > timeout {
                let s = self.sources.remove(i);
                self.out.push_back(MixerOutput::Event(MixerEvent::SourceRemoved(s.ssrc)));
            } else {
                i += 1;
            }
        }
        for s in &mut self.sources {
            if !s.parked
                && s.depack.waiting_for_keyframe()
                && s.last_pli.is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.pli_interval)
            {
                s.last_pli = Some(now);
                self.stats.keyframe_requests += 1;
                self.out.push_back(MixerOutput::KeyframeRequest(s.ssrc));
            }
        }
        if let Some(due) = self.next_output {
            let skipped = (now.saturating_duration_since(due).as_nanos() / self.interval.as_nanos()) as u32;
            if skipped > 0 {
                self.stats.output_frames_skipped += u64::from(skipped);
                self.out.push_back(MixerOutput::Event(MixerEvent::OutputFramesSkipped(skipped)));
            }
        }
        self.schedule(now);
    }

    // ---- outputs ----

    /// When [`Mixer::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pli = self
            .sources
            .iter()
            .filter(|s| !s.parked && s.depack.waiting_for_keyframe())
            .filter_map(|s| s.last_pli.map(|t| t + self.cfg.pli_interval))
            .min();
        [self.next_output, pli, self.audio.poll_timeout()].into_iter().flatten().min()
    }

    /// The next output, in order.
    pub fn poll_output(&mut self) -> Option<MixerOutput> {
        self.out.pop_front().or_else(|| self.audio.poll_rtp().map(MixerOutput::Rtp))
    }

    // ---- internals ----

    /// Indices of the shown sources: the nine loudest speakers, then sources
    /// active within [`ACTIVE_WINDOW`] of the newest activity, earliest
    /// joined first (not the very latest packet, which would change the
    /// layout with every packet when all sources send), in join order.
    fn shown(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.sources.len()).collect();
        if idx.len() > MAX_CELLS {
            let rank = |i: usize| self.speakers.iter().position(|&s| s == self.sources[i].ssrc).unwrap_or(usize::MAX);
            let newest = self.sources.iter().map(|s| s.last_active).max();
            let idle = |i: usize| {
                newest.is_none_or(|n| n.saturating_duration_since(self.sources[i].last_active) >= ACTIVE_WINDOW)
            };
            idx.sort_by_key(|&i| (rank(i), idle(i), self.sources[i].order));
            idx.truncate(MAX_CELLS);
        }
        idx.sort_by_key(|&i| self.sources[i].order);
        idx
    }

    fn all_fresh(&self, shown: &[usize]) -> bool {
        !shown.is_empty() && shown.iter().all(|&i| self.sources[i].fresh.is_some())
    }

    /// Makes the composite if it is due at `now`, and records when the next
    /// one is due (`next_output`). See the module docs for the rule.
    fn schedule(&mut self, now: Instant) {
        let due = self.due(now);
        // Only an output changes what is due next.
        self.next_output = if due.is_some_and(|d| d <= now) {
            self.output(now);
            self.due(now)
        } else {
            due
        };
    }

    /// When the next composite is due; `None` with nothing to show.
    fn due(&self, now: Instant) -> Option<Instant> {
        let shown = self.shown();
        if !shown.iter().any(|&i| self.sources[i].picture.is_some()) {
            return None;
        }
        let half = self.interval / 2;
        // Never more than twice the frame rate.
        let earliest = self.last_output.map_or(now, |t| t + half);
        let oldest_fresh = shown.iter().filter_map(|&i| self.sources[i].fresh).min();
        Some(if self.all_fresh(&shown) || (self.keyframe_wanted && oldest_fresh.is_none()) {
            earliest
        } else if let Some(first) = oldest_fresh {
            // Wait for the late sources, but not for long.
            earliest.max(first + half)
        } else {
            // Nothing new: a refresh once a second.
            self.last_output.map_or(now, |t| t + Duration::from_secs(1))
        })
    }

    fn output(&mut self, now: Instant) {
        let shown = self.shown();
        if shown.is_empty() {
            return;
        }
        let start = *self.start.get_or_insert(now);
        let views: Vec<_> = shown.iter().map(|&i| self.sources[i].picture.as_ref().map(|p| p.view())).collect();
        let frame = self.compositor.compose(&views);
        let mut arrivals = Vec::new();
        for &i in &shown {
            if let Some(t) = self.sources[i].fresh.take() {
                arrivals.push(t);
            }
        }
        let csrcs: Vec<Ssrc> = shown.iter().take(15).map(|&i| self.sources[i].ssrc).collect();
        let force = self.keyframe_wanted
            && self.last_forced.is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.min_keyframe_interval);
        let elapsed = now.saturating_duration_since(start);
        let rtp_ts = MediaTime(self.cfg.initial_timestamp.0.wrapping_add((elapsed.as_micros() * 9 / 100) as u32));
        if let Err(e) = self.encoder.send_frame(frame, self.frames_sent, force && self.frames_sent > 0) {
            tracing::warn!(error = %e, "composite encode failed");
            return;
        }
        if force {
            self.keyframe_wanted = false;
            self.last_forced = Some(now);
            self.stats.keyframes_forced += 1;
            self.out.push_back(MixerOutput::Event(MixerEvent::KeyframeForced));
        }
        self.frames_sent += 1;
        self.stats.composites += 1;
        self.in_flight.push_back(InFlight { rtp_ts, csrcs, arrivals });
        self.last_output = Some(now);
        self.next_output = None;

        loop {
            match self.encoder.poll_frame(true) {
                Ok(Some(unit)) => {
                    let Some(meta) = self.in_flight.pop_front() else { break };
                    self.send_unit(now, &unit.data, meta);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "composite encoder poll failed");
                    break;
                }
            }
        }
    }

    fn send_unit(&mut self, now: Instant, data: &[u8], meta: InFlight) {
        self.payloads.clear();
        let n = match self.packetizer.packetize(data, &mut self.payloads) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "composite packetize failed");
                return;
            }
        };
        for (i, payload) in self.payloads.drain(..).enumerate() {
            let pkt = RtpPacket {
                marker: i + 1 == n,
                pt: self.cfg.pt,
                seq: self.seq,
                timestamp: meta.rtp_ts,
                ssrc: self.cfg.ssrc,
                csrcs: meta.csrcs.clone(),
                extensions: Vec::new(),
                payload,
                padding: 0,
            };
            self.seq = self.seq.next();
            if let Ok(b) = pkt.to_vec() {
                self.stats.rtp_out += 1;
                self.stats.bytes_out += pkt.payload.len() as u64;
                self.out.push_back(MixerOutput::Rtp(b));
            }
        }
        if self.latencies.len() < MAX_LATENCY_SAMPLES {
            self.latencies.extend(meta.arrivals.iter().map(|&t| now.saturating_duration_since(t)));
        }
    }
}
