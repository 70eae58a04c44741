//! Transport-wide congestion control feedback: the parser never panics and
//! what parses re-serializes to bytes that parse equal; the recorder, driven
//! by the same bytes read as (sequence number, time step, poll) records, never
//! panics and only writes feedback that parses, within its size limit.
#![no_main]
use std::time::{Duration, Instant};

use corecast_proto::rtcp::{parse_compound, parse_one, RtcpPacket, TwccRecorder, TWCC_MAX_FEEDBACK_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((p @ RtcpPacket::TransportFeedback(_), _)) = parse_one(data) {
        let mut out = Vec::new();
        if p.write_to(&mut out).is_ok() {
            assert_eq!(parse_one(&out).expect("re-serialized feedback parses").0, p);
        }
    }

    // Records of 5 bytes: sequence number, signed time step in 100 µs, flags.
    let base = Instant::now() + Duration::from_secs(1 << 24);
    let mut us: i64 = 0;
    let mut clock: i64 = 0;
    let at = |us: i64| {
        let d = Duration::from_micros(us.unsigned_abs());
        if us >= 0 {
            base + d
        } else {
            base - d
        }
    };
    let mut r = TwccRecorder::new();
    let mut out = Vec::new();
    for rec in data.chunks_exact(5) {
        let seq = u16::from_be_bytes([rec[0], rec[1]]);
        us += i64::from(i16::from_be_bytes([rec[2], rec[3]])) * 100;
        clock = clock.max(us);
        r.record(seq, at(us));
        if rec[4] & 1 != 0 || r.next_deadline().is_some_and(|d| d <= at(clock)) {
            out.clear();
            if r.poll_feedback(at(clock), 1, 2, &mut out) {
                assert!(out.len() <= TWCC_MAX_FEEDBACK_BYTES);
                let pkts = parse_compound(&out).expect("our feedback parses");
                assert!(pkts.iter().all(|p| matches!(p, RtcpPacket::TransportFeedback(_))));
            } else {
                assert!(out.is_empty());
            }
        }
    }
});
