//! RTP parser: never panics; what parses re-serializes to an equal packet.
#![no_main]
use corecast_proto::rtp::{RtpHeader, RtpPacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(h) = RtpHeader::parse(data) else { return };
    assert_eq!(h.payload_offset + h.payload_len + h.padding as usize, data.len());
    let _ = h.csrcs(data).count();
    let Ok(p) = RtpPacket::parse(data) else { return };
    // Extensions whose profile is neither one- nor two-byte are not kept, so
    // only packets without them must round-trip exactly.
    if h.ext_profile.is_none() {
        let again = RtpPacket::parse(&p.to_vec().expect("a parsed packet serializes")).expect("and parses");
        assert_eq!(again, p);
    }
});
