//! SRTP/SRTCP: unprotecting arbitrary bytes never panics, never succeeds
//! (that would be a forgery) and leaves the output untouched; whatever
//! protects as RTP or RTCP unprotects, with the peer's key, to the same bytes.
#![no_main]
use bytes::BytesMut;
use corecast_proto::srtp::{keys_from_dtls, SrtpContext, SrtpProfile};
use libfuzzer_sys::fuzz_target;

fn pair(profile: SrtpProfile) -> (SrtpContext, SrtpContext) {
    let len = 2 * (profile.master_key_len() + profile.master_salt_len());
    let material: Vec<u8> = (0..len as u8).collect();
    let (ours, _) = keys_from_dtls(profile, &material, true).expect("material length");
    let (_, theirs) = keys_from_dtls(profile, &material, false).expect("material length");
    (
        SrtpContext::new(&ours).expect("key"),
        SrtpContext::new(&theirs).expect("key"),
    )
}

fuzz_target!(|data: &[u8]| {
    for profile in [SrtpProfile::AeadAes128Gcm, SrtpProfile::Aes128CmHmacSha1_80] {
        let (mut tx, mut rx) = pair(profile);
        let mut out = BytesMut::new();
        assert!(rx.unprotect_rtp(data, &mut out).is_err(), "forged SRTP");
        assert!(rx.unprotect_rtcp(data, &mut out).is_err(), "forged SRTCP");
        assert!(out.is_empty());

        if tx.protect_rtp(data, &mut out).is_ok() {
            let mut back = BytesMut::new();
            rx.unprotect_rtp(&out, &mut back).expect("own SRTP unprotects");
            assert_eq!(&back[..], data);
        }
        out.clear();
        if tx.protect_rtcp(data, &mut out).is_ok() {
            let mut back = BytesMut::new();
            rx.unprotect_rtcp(&out, &mut back).expect("own SRTCP unprotects");
            assert_eq!(&back[..], data);
        }
    }
});
