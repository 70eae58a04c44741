//! What a receiver saw.

use std::collections::BTreeMap;

use serde::Serialize;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl Latency {
    /// Percentiles of a sample (sorted in place).
    pub fn from_samples(s: &mut [u32]) -> Latency {
        if s.is_empty() {
            return Latency::default();
        }
        s.sort_unstable();
        let at = |q: f64| s[((s.len() as f64 - 1.0) * q).round() as usize] as u64;
        Latency { p50_us: at(0.50), p99_us: at(0.99), max_us: *s.last().unwrap_or(&0) as u64 }
    }
}

/// Counters of one receiver.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecvReport {
    /// Datagrams received (any kind).
    pub datagrams: u64,
    /// Verified RTP packets, duplicates included.
    pub received: u64,
    /// Distinct verified RTP packets.
    pub unique: u64,
    /// Packets seen more than once.
    pub duplicates: u64,
    /// Packets that arrived after a later one of the same stream.
    pub reordered: u64,
    /// RTP packets that failed verification.
    pub corrupt: u64,
    /// RTCP compounds received.
    pub rtcp: u64,
    /// Session messages received.
    pub session: u64,
    /// Whether the router said the call ended.
    pub call_ended: bool,
    /// The router's latest speakers list (sent to Last-N receivers when who
    /// is on the stage, or first on it, changes): the video SSRCs of the
    /// call's most active speakers, the dominant speaker first.
    pub speakers: Vec<u32>,
    /// Speakers lists received.
    pub speaker_updates: u64,
    /// Distinct packets per sending participant.
    pub per_sender: BTreeMap<u64, u64>,
    /// Latency of verified packets.
    pub latency: Latency,
    /// Raw packets received, when recording was asked for.
    #[serde(skip)]
    pub recorded: Vec<Vec<u8>>,
    /// Latency samples (µs), for merging percentiles over receivers.
    #[serde(skip)]
    pub samples: Vec<u32>,
}

impl RecvReport {
    /// The packets receiver `i` of a call should have got (what every other sender in
    /// `sent` recorded) and what it recorded, each sorted: equal when it got exactly the
    /// others' packets, byte for byte, in whatever order they came.
    pub fn others_and_got<'a>(
        &'a self,
        sent: &'a [crate::SendReport],
        i: usize,
    ) -> (Vec<&'a Vec<u8>>, Vec<&'a Vec<u8>>) {
        let mut want: Vec<&Vec<u8>> =
            sent.iter().enumerate().filter(|(j, _)| *j != i).flat_map(|(_, s)| &s.recorded).collect();
        let mut got: Vec<&Vec<u8>> = self.recorded.iter().collect();
        want.sort();
        got.sort();
        (want, got)
    }
}
