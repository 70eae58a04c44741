//! Token decoding and verification: never panics, never accepts a forgery.
#![no_main]
use corecast_proto::token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = token::dev_signing_key().verifying_key();
    // Arbitrary bytes are (almost surely) not signed by the dev key.
    if let Ok(c) = token::verify(&key, data, 0) {
        assert_eq!(token::sign(&token::dev_signing_key(), &c).as_slice(), data);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = token::decode_text(s);
        let _ = token::CallId::parse(s);
    }
});
