//! The codec pool's counters per worker ([`PoolStats`]) and their Prometheus text
//! (`GET /metrics` of `corecast-codec`, served by [`crate::admin`]).
//!
//! Counters cover every call a worker mixed since it started (the calls it still mixes and
//! those it let go); `corecast_codec_composites` is the number of calls being mixed now.

use std::fmt;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::TypedMetric;
use prometheus_client::registry::{Registry, Unit};

use crate::mixer::MixerStats;

/// The `Content-Type` of [`render`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Counters of one pool worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    /// Calls being mixed now (one composite each).
    pub composites: u64,
    /// Calls the worker started mixing (joined).
    pub calls_mixed: u64,
    /// RTP packets of the sources handled.
    pub rtp_in: u64,
    /// Source pictures decoded.
    pub frames_decoded: u64,
    /// Composite frames encoded.
    pub frames_encoded: u64,
    /// Decoded source pictures replaced before a composite showed them.
    pub frames_replaced: u64,
    /// Composite frame slots skipped because the worker fell behind.
    pub frames_skipped: u64,
    /// Source units that failed to decode.
    pub decode_errors: u64,
    /// Source units of sources not shown, left undecoded.
    pub units_skipped: u64,
    /// Composite keyframes forced by requests.
    pub keyframes_forced: u64,
    /// Keyframe requests sent to sources.
    pub keyframe_requests: u64,
    /// RTP packets produced (composite and mixed audio).
    pub rtp_out: u64,
    /// Payload bytes produced.
    pub bytes_out: u64,
    /// Datagrams to the router that could not be sent.
    pub send_drops: u64,
    /// Time spent handling source packets: depacketizing and decoding.
    pub decode_time: Duration,
    /// Time spent producing composites: composing, encoding, packetizing.
    pub encode_time: Duration,
}

impl PoolStats {
    /// Adds one call's mixer counters (and its socket's drops).
    pub fn add_call(&mut self, m: &MixerStats, send_drops: u64) {
        self.rtp_in += m.rtp_in;
        self.frames_decoded += m.decoded;
        self.frames_encoded += m.composites;
        self.frames_replaced += m.source_frames_dropped;
        self.frames_skipped += m.output_frames_skipped;
        self.decode_errors += m.decode_errors;
        self.units_skipped += m.units_skipped;
        self.keyframes_forced += m.keyframes_forced;
        self.keyframe_requests += m.keyframe_requests;
        self.rtp_out += m.rtp_out;
        self.bytes_out += m.bytes_out;
        self.send_drops += send_drops;
    }
}

type Count = fn(&PoolStats) -> u64;

/// Counters: name (without `_total`), help, value.
const COUNTERS: &[(&str, &str, Count)] = &[
    ("corecast_codec_calls_mixed", "Calls the worker joined as their mixer", |s| s.calls_mixed),
    ("corecast_codec_rtp_in", "Source RTP packets handled", |s| s.rtp_in),
    ("corecast_codec_frames_decoded", "Source pictures decoded", |s| s.frames_decoded),
    ("corecast_codec_frames_encoded", "Composite frames encoded", |s| s.frames_encoded),
    ("corecast_codec_decode_errors", "Source units that failed to decode", |s| s.decode_errors),
    ("corecast_codec_units_skipped", "Source units of sources not shown, left undecoded", |s| s.units_skipped),
    ("corecast_codec_keyframes_forced", "Composite keyframes forced by PLI/FIR", |s| s.keyframes_forced),
    ("corecast_codec_keyframe_requests", "Keyframe requests sent to sources", |s| s.keyframe_requests),
    ("corecast_codec_rtp_out", "RTP packets produced (composite and mixed audio)", |s| s.rtp_out),
    ("corecast_codec_bytes_out", "RTP payload bytes produced", |s| s.bytes_out),
    ("corecast_codec_send_drops", "Datagrams to the router that could not be sent", |s| s.send_drops),
];

/// Why frames were dropped (`corecast_codec_frames_dropped_total{reason}`).
const DROPS: &[(&str, Count)] = &[
    // A decoded source picture replaced by the next before any composite showed it.
    ("replaced", |s| s.frames_replaced),
    // A composite frame slot missed: the worker came late (overload).
    ("skipped", |s| s.frames_skipped),
];

/// One scrape's worth of worker counters.
#[derive(Debug)]
struct Workers(Vec<PoolStats>);

impl Workers {
    fn per_worker<M: EncodeMetric + TypedMetric>(
        &self,
        enc: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        value: impl Fn(&PoolStats) -> M,
    ) -> fmt::Result {
        let mut m = enc.encode_descriptor(name, help, unit, M::TYPE)?;
        for (i, s) in self.0.iter().enumerate() {
            value(s).encode(m.encode_family(&[("worker", i)])?)?;
        }
        Ok(())
    }
}

impl Collector for Workers {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        enc.encode_descriptor(
            "corecast_codec_workers",
            "Workers that answered this scrape",
            None,
            ConstGauge::<u64>::TYPE,
        )
        .and_then(|m| ConstGauge::new(self.0.len() as u64).encode(m))?;
        self.per_worker(
            &mut enc,
            "corecast_codec_composites",
            "Calls being mixed now (one composite each)",
            None,
            |s| ConstGauge::new(s.composites),
        )?;
        for &(name, help, value) in COUNTERS {
            self.per_worker(&mut enc, name, help, None, |s| ConstCounter::new(value(s)))?;
        }
        let mut m = enc.encode_descriptor(
            "corecast_codec_frames_dropped",
            "Frames dropped, by reason (replaced: a decoded source picture never shown; skipped: a composite slot missed)",
            None,
            ConstCounter::<u64>::TYPE,
        )?;
        for (i, s) in self.0.iter().enumerate() {
            for &(reason, value) in DROPS {
                let labels = [("worker", i.to_string()), ("reason", reason.to_owned())];
                ConstCounter::new(value(s)).encode(m.encode_family(&labels)?)?;
            }
        }
        self.per_worker(
            &mut enc,
            "corecast_codec_decode",
            "Time spent handling source packets (depacketize and decode)",
            Some(&Unit::Seconds),
            |s| ConstCounter::new(s.decode_time.as_secs_f64()),
        )?;
        self.per_worker(
            &mut enc,
            "corecast_codec_encode",
            "Time spent producing composites (compose, encode and packetize)",
            Some(&Unit::Seconds),
            |s| ConstCounter::new(s.encode_time.as_secs_f64()),
        )?;
        Ok(())
    }
}

/// The workers' counters in the Prometheus text format (version 0.0.4).
pub fn render(workers: Vec<PoolStats>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Workers(workers)));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_add_up_and_every_family_is_described() {
        let mut s = PoolStats::default();
        let m = MixerStats {
            decoded: 10,
            composites: 4,
            source_frames_dropped: 1,
            output_frames_skipped: 2,
            ..Default::default()
        };
        s.add_call(&m, 3);
        s.add_call(&m, 0);
        s.composites = 1;
        s.decode_time = Duration::from_millis(250);
        let text = render(vec![s]);
        assert!(text.contains("# TYPE corecast_codec_frames_decoded_total counter\n"), "{text}");
        assert!(text.contains("corecast_codec_frames_decoded_total{worker=\"0\"} 20\n"), "{text}");
        assert!(text.contains("corecast_codec_frames_encoded_total{worker=\"0\"} 8\n"), "{text}");
        assert!(text.contains("corecast_codec_frames_dropped_total{worker=\"0\",reason=\"replaced\"} 2\n"), "{text}");
        assert!(text.contains("corecast_codec_frames_dropped_total{worker=\"0\",reason=\"skipped\"} 4\n"), "{text}");
        assert!(text.contains("corecast_codec_send_drops_total{worker=\"0\"} 3\n"), "{text}");
        assert!(text.contains("corecast_codec_decode_seconds_total{worker=\"0\"} 0.25\n"), "{text}");
        assert!(text.contains("# TYPE corecast_codec_composites gauge\n"), "{text}");
        assert!(text.contains("corecast_codec_composites{worker=\"0\"} 1\n"), "{text}");
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(helps, text.lines().filter(|l| l.starts_with("# TYPE ")).count());
    }
}
