//! ICE-lite STUN: the Binding request parser and the verifiers never panic;
//! responses written for what parses verify with the key they were written with.
#![no_main]
use corecast_proto::ice::{verify_message, BindingRequest, BindingResponse, ErrorCode};
use libfuzzer_sys::fuzz_target;

const PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";

fuzz_target!(|data: &[u8]| {
    let _ = verify_message(data, PASSWORD);
    let Ok(r) = BindingRequest::parse(data) else { return };
    let _ = r.verify(PASSWORD);
    let mut out = Vec::new();
    BindingResponse::new(r.txid).success(&mut out, "192.0.2.1:32853".parse().unwrap(), PASSWORD);
    verify_message(&out, PASSWORD).expect("our success response verifies");
    out.clear();
    BindingResponse::new(r.txid).error(&mut out, ErrorCode::RoleConflict, Some(PASSWORD));
    verify_message(&out, PASSWORD).expect("our error response verifies");
});
