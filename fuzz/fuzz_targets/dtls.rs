//! The first-byte demux (RFC 7983) and the DTLS server the router runs for WebRTC legs
//! (`dimpl`, configured as `corecast_core::webrtc`'s DtlsIdentity does: MTU 1200, client
//! certificate required, the router's SRTP profiles) fed arbitrary datagram sequences:
//! `classify` agrees with the RFC's ranges; the server never panics, everything it sends is a
//! DTLS record (first byte 20..=63) of at most the MTU, and it never reports a finished
//! handshake, keys or application data (the input cannot know the server's fresh randoms).
#![no_main]
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use corecast_proto::demux::{classify, Kind};
use libfuzzer_sys::fuzz_target;

fn identity() -> &'static (dimpl::DtlsCertificate, Arc<dimpl::Config>) {
    static ID: OnceLock<(dimpl::DtlsCertificate, Arc<dimpl::Config>)> = OnceLock::new();
    ID.get_or_init(|| {
        let cert = dimpl::certificate::generate_self_signed_certificate().expect("certificate");
        let config = dimpl::Config::builder()
            .mtu(1200)
            .require_client_certificate(true)
            .srtp_profiles(&[
                dimpl::SrtpProfile::AEAD_AES_128_GCM,
                dimpl::SrtpProfile::AEAD_AES_256_GCM,
                dimpl::SrtpProfile::AES128_CM_SHA1_80,
            ])
            .build()
            .expect("config");
        (cert, Arc::new(config))
    })
}

fn check_kind(b: &[u8]) {
    let k = classify(b);
    let expected = match (b.first(), b.get(1)) {
        (Some(0..=3), _) => Kind::Stun,
        (Some(20..=63), _) => Kind::Dtls,
        (Some(128..=191), Some(192..=223)) => Kind::Rtcp,
        (Some(128..=191), Some(_)) => Kind::Rtp,
        _ => Kind::Unknown,
    };
    assert_eq!(k, expected);
}

fuzz_target!(|data: &[u8]| {
    check_kind(data);
    let (cert, config) = identity();
    let mut now = Instant::now();
    let mut dtls = dimpl::Dtls::new_auto(config.clone(), cert.clone(), now);
    let mut buf = vec![0u8; 2048];
    // Datagrams from the input: [len, bytes...]*; the router hands dimpl only what classifies
    // as DTLS, so do the same (the rest still goes through classify).
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = (n as usize).min(tail.len());
        let (pkt, tail) = tail.split_at(n);
        rest = tail;
        check_kind(pkt);
        now += Duration::from_millis(50);
        if dtls.handle_timeout(now).is_err() {
            return;
        }
        if classify(pkt) != Kind::Dtls || dtls.handle_packet(pkt).is_err() {
            continue;
        }
        loop {
            match dtls.poll_output(&mut buf) {
                dimpl::Output::Packet(p) => {
                    assert_eq!(classify(p), Kind::Dtls, "the server sends DTLS records only");
                    assert!(p.len() <= 1200, "datagram of {} bytes over the MTU", p.len());
                }
                dimpl::Output::BufferTooSmall { needed } => {
                    assert!(needed <= 1 << 16);
                    buf.resize(needed, 0);
                }
                dimpl::Output::Timeout(_) => break,
                dimpl::Output::Connected => panic!("handshake finished from fuzz input"),
                dimpl::Output::KeyingMaterial(..) => panic!("keys exported from fuzz input"),
                dimpl::Output::ApplicationData(_) => panic!("application data before a handshake"),
                _ => {}
            }
        }
    }
});
