//! Temporal layer ids of VP8 and AV1 payloads: never panic; a VP8 TID is
//! 2 bits, an AV1 temporal_id 3 bits.
#![no_main]
use corecast_proto::temporal::{av1_temporal_id, vp8_temporal_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(vp8_temporal_id(data).is_none_or(|t| t <= 3));
    assert!(av1_temporal_id(data).is_none_or(|t| t <= 7));
});
