//! The AV1 RTP depacketizer (the codec pool's input from the network: `codec/src/av1`, compiled
//! in from its source, since the codec crate links SVT-AV1 and dav1d) fed arbitrary payload
//! sequences with arbitrary sequence numbers, timestamps and marker bits: it never panics; its
//! counters add up (`packets + late_packets` = payloads fed, `frames` = units given out); every
//! unit starts with a temporal delimiter and is a well-formed sized-OBU stream; the first unit,
//! and the first after any loss, is a keyframe (a decoder can start there).
#![no_main]
#[allow(dead_code, unused_imports)]
#[path = "../../codec/src/av1/mod.rs"]
mod av1;

use av1::{obus, Depacketizer, TEMPORAL_DELIMITER};
use corecast_proto::{MediaTime, SeqNo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = Depacketizer::new();
    let (mut seq, mut ts) = (SeqNo(65_530), MediaTime(0));
    let (mut fed, mut frames, mut need_key) = (0u64, 0u64, true);
    // Packets: [flags, ts step, len, payload...]*; flags: bit 0 marker, bits 1..=3 the sequence
    // step (0: a duplicate), bit 4 a step backwards (reordering).
    let mut rest = data;
    while rest.len() >= 3 {
        let (flags, ts_step, len) = (rest[0], rest[1], rest[2] as usize);
        let len = len.min(rest.len() - 3);
        let payload = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let step = u16::from((flags >> 1) & 7);
        seq = SeqNo(if flags & 0x10 != 0 { seq.0.wrapping_sub(step) } else { seq.0.wrapping_add(step) });
        ts = MediaTime(ts.0.wrapping_add(u32::from(ts_step) * 3000));
        let lost_before = d.stats().lost_packets;
        d.handle_packet(seq, ts, flags & 1 != 0, payload);
        fed += 1;
        if d.stats().lost_packets != lost_before {
            need_key = true;
        }
        while let Some(f) = d.poll_frame() {
            frames += 1;
            assert!(f.data.starts_with(&TEMPORAL_DELIMITER), "a unit starts with a temporal delimiter");
            assert!(obus(&f.data).all(|o| o.is_ok()), "a unit is a well-formed OBU stream");
            if need_key {
                assert!(f.keyframe, "the first unit after a start or a loss is a keyframe");
                need_key = false;
            }
        }
        let _ = d.poll_keyframe_request();
    }
    let s = d.stats();
    assert_eq!(s.packets + s.late_packets, fed, "every payload is counted once");
    assert_eq!(s.frames, frames, "frames counts the units given out");
});
