//! RTCP compound parser: never panics; parsed packets re-serialize and parse equal.
#![no_main]
use corecast_proto::rtcp::{parse_compound, write_compound};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pkts) = parse_compound(data) else { return };
    if let Ok(b) = write_compound(&pkts) {
        assert_eq!(parse_compound(&b).expect("re-serialized compound parses"), pkts);
    }
});
