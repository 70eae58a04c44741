//! Session-message parser: never panics; parsed messages round-trip.
#![no_main]
use corecast_proto::session::{SessionMessage, StunMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = StunMessage::parse(data) {
        let _ = m.to_vec();
    }
    let Ok(m) = SessionMessage::parse(data) else { return };
    assert_eq!(SessionMessage::parse(&m.to_vec()).expect("round trip"), m);
});
