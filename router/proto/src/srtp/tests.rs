//! Behaviour tests: DTLS key split, round trips for both profiles and both
//! roles, replay and tampering (no state change), rollover, stream cap,
//! garbage inputs, and the `srtp_seal_rate` micro benchmark (ignored).

use bytes::BytesMut;
use proptest::prelude::*;

use super::replay::estimate_rtp_index;
use super::*;
use crate::rtp::{RtpHeader, RtpPacket};
use crate::{Pt, SeqNo, Ssrc};

const PROFILES: [SrtpProfile; 3] = SrtpProfile::ALL;

#[test]
fn profile_names_round_trip() {
    for p in PROFILES {
        assert_eq!(SrtpProfile::from_name(p.name()), Some(p));
        assert_eq!(SrtpProfile::from_name(&format!("srtp_{}", p.name().to_lowercase())), Some(p));
        assert_eq!(SrtpProfile::from_dtls_id(p.dtls_id()), Some(p));
    }
    assert_eq!(SrtpProfile::from_name("aescm"), Some(SrtpProfile::Aes128CmHmacSha1_80));
    assert_eq!(SrtpProfile::from_name("aes128gcm"), Some(SrtpProfile::AeadAes128Gcm));
    assert_eq!(SrtpProfile::from_name("AES128_CM_SHA1_32"), None);
    assert_eq!(SrtpProfile::from_name(""), None);
}

fn material(profile: SrtpProfile) -> Vec<u8> {
    let len = 2 * (profile.master_key_len() + profile.master_salt_len());
    (0..len).map(|i| (i as u8).wrapping_mul(37).wrapping_add(11)).collect()
}

/// `(sender, receiver)`: the DTLS client's sending context and the DTLS
/// server's receiving one (or the reverse).
fn pair(profile: SrtpProfile, client_sends: bool) -> (SrtpContext, SrtpContext) {
    let m = material(profile);
    let (client_ours, client_theirs) = keys_from_dtls(profile, &m, false).unwrap();
    let (server_ours, server_theirs) = keys_from_dtls(profile, &m, true).unwrap();
    assert_eq!(client_ours, server_theirs);
    assert_eq!(server_ours, client_theirs);
    if client_sends {
        (SrtpContext::new(&client_ours).unwrap(), SrtpContext::new(&server_theirs).unwrap())
    } else {
        (SrtpContext::new(&server_ours).unwrap(), SrtpContext::new(&client_theirs).unwrap())
    }
}

/// An RTP packet with `csrcs`, optionally a one-byte-header extension
/// (two elements), and `pad` padding bytes (0 for none).
fn rtp(seq: u16, ssrc: u32, csrcs: &[u32], ext: bool, payload: &[u8], pad: u8) -> Vec<u8> {
    let mut p = vec![0x80 | (csrcs.len() as u8), 96];
    if pad > 0 {
        p[0] |= 0x20;
    }
    if ext {
        p[0] |= 0x10;
    }
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    for c in csrcs {
        p.extend_from_slice(&c.to_be_bytes());
    }
    if ext {
        // audio level (id 1, 1 byte) and a 3-byte element (id 2), padded.
        p.extend_from_slice(&[0xBE, 0xDE, 0, 2, 0x10, 0x85, 0x22, 1, 2, 3, 0, 0]);
    }
    p.extend_from_slice(payload);
    if pad > 0 {
        p.extend(std::iter::repeat_n(0, usize::from(pad) - 1));
        p.push(pad);
    }
    p
}

fn simple(seq: u16) -> Vec<u8> {
    rtp(seq, 0x1234_5678, &[], false, b"hello srtp", 0)
}

/// A compound RTCP packet: an SR with no report blocks and an SDES CNAME.
fn rtcp(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0, 0, 5, 0, 0, 1, 0]);
    p.extend_from_slice(&[0x81, 202, 0, 3]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[1, 3, b'a', b'b', b'c', 0, 0, 0]);
    p
}

fn protect(ctx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    ctx.protect_rtp(plain, &mut out).unwrap();
    out.to_vec()
}

fn unprotect(ctx: &mut SrtpContext, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut out = BytesMut::new();
    let r = ctx.unprotect_rtp(packet, &mut out);
    if r.is_err() {
        assert!(out.is_empty(), "output written on error");
    }
    r.map(|()| out.to_vec())
}

fn unprotect_c(ctx: &mut SrtpContext, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut out = BytesMut::new();
    let r = ctx.unprotect_rtcp(packet, &mut out);
    if r.is_err() {
        assert!(out.is_empty(), "output written on error");
    }
    r.map(|()| out.to_vec())
}

#[test]
fn contexts_can_move_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SrtpContext>();
    assert_send_sync::<SrtpKey>();
}

#[test]
fn profile_constants() {
    let gcm = SrtpProfile::AeadAes128Gcm;
    let cm = SrtpProfile::Aes128CmHmacSha1_80;
    assert_eq!((gcm.master_key_len(), gcm.master_salt_len()), (16, 12));
    assert_eq!((cm.master_key_len(), cm.master_salt_len()), (16, 14));
    assert_eq!((gcm.rtp_overhead(), gcm.rtcp_overhead()), (16, 20));
    assert_eq!((cm.rtp_overhead(), cm.rtcp_overhead()), (10, 14));
    assert_eq!((gcm.dtls_id(), cm.dtls_id()), (0x0007, 0x0001));
    for p in PROFILES {
        assert_eq!(SrtpProfile::from_dtls_id(p.dtls_id()), Some(p));
    }
    // SRTP_AEAD_AES_256_GCM is {0x00, 0x08} (RFC 7714 §14.2).
    let gcm256 = SrtpProfile::AeadAes256Gcm;
    assert_eq!((gcm256.master_key_len(), gcm256.master_salt_len()), (32, 12));
    assert_eq!((gcm256.rtp_overhead(), gcm256.rtcp_overhead()), (16, 20));
    assert_eq!(SrtpProfile::from_dtls_id(0x0008), Some(gcm256));
    assert_eq!(SrtpProfile::from_dtls_id(0x0002), None);
    assert_eq!(SrtpProfile::from_dtls_id(0x0009), None);
}

#[test]
fn dtls_material_split() {
    let cm = SrtpProfile::Aes128CmHmacSha1_80;
    let m: Vec<u8> = (0..60).collect();
    let (ours, theirs) = keys_from_dtls(cm, &m, true).unwrap();
    assert_eq!(ours.master_key, (16..32).collect::<Vec<u8>>());
    assert_eq!(ours.master_salt, (46..60).collect::<Vec<u8>>());
    assert_eq!(theirs.master_key, (0..16).collect::<Vec<u8>>());
    assert_eq!(theirs.master_salt, (32..46).collect::<Vec<u8>>());
    let (ours, _) = keys_from_dtls(cm, &m, false).unwrap();
    assert_eq!(ours.master_key, (0..16).collect::<Vec<u8>>());
    let gcm = SrtpProfile::AeadAes128Gcm;
    let m: Vec<u8> = (0..56).collect();
    let (ours, theirs) = keys_from_dtls(gcm, &m, true).unwrap();
    assert_eq!(ours.master_salt, (44..56).collect::<Vec<u8>>());
    assert_eq!(theirs.master_salt, (32..44).collect::<Vec<u8>>());
    assert_eq!(keys_from_dtls(gcm, &m[..55], true).err(), Some(SrtpError::KeyLength));
    assert_eq!(keys_from_dtls(cm, &m, true).err(), Some(SrtpError::KeyLength));
    assert!(!format!("{ours:?}").contains("master_key"), "Debug leaks key bytes");
}

#[test]
fn new_rejects_wrong_key_lengths() {
    for profile in PROFILES {
        let ok = SrtpKey {
            profile,
            master_key: vec![1; profile.master_key_len()],
            master_salt: vec![2; profile.master_salt_len()],
        };
        assert!(SrtpContext::new(&ok).is_ok());
        let mut bad = ok.clone();
        bad.master_key.push(0);
        assert_eq!(SrtpContext::new(&bad).err(), Some(SrtpError::KeyLength));
        let mut bad = ok.clone();
        bad.master_salt.pop();
        assert_eq!(SrtpContext::new(&bad).err(), Some(SrtpError::KeyLength));
    }
}

#[test]
fn rtp_round_trip_with_csrcs_extension_and_padding() {
    for profile in PROFILES {
        for client_sends in [true, false] {
            let (mut tx, mut rx) = pair(profile, client_sends);
            let plain = rtp(1000, 0xdead_beef, &[7, 8], true, b"payload bytes", 4);
            let hdr_len = 12 + 8 + 12;
            let mut out = BytesMut::from(&b"prefix"[..]);
            tx.protect_rtp(&plain, &mut out).unwrap();
            assert_eq!(&out[..6], b"prefix", "protect appends");
            let protected = &out[6..];
            assert_eq!(protected.len(), plain.len() + profile.rtp_overhead());
            assert_eq!(protected[..hdr_len], plain[..hdr_len], "header in clear");
            assert_ne!(protected[hdr_len..plain.len()], plain[hdr_len..], "payload encrypted");
            let mut back = BytesMut::from(&b"xy"[..]);
            rx.unprotect_rtp(protected, &mut back).unwrap();
            assert_eq!(&back[..2], b"xy", "unprotect appends");
            assert_eq!(back[2..], plain[..]);
            let h = RtpHeader::parse(&back[2..]).unwrap();
            assert_eq!((h.csrc_count, h.padding, h.payload_len), (2, 4, 13));
            // The other direction's key does not open it.
            let (_, mut wrong) = pair(profile, !client_sends);
            assert_eq!(unprotect(&mut wrong, protected), Err(SrtpError::Auth));
        }
    }
}

#[test]
fn rtcp_round_trip_and_index() {
    for profile in PROFILES {
        for client_sends in [true, false] {
            let (mut tx, mut rx) = pair(profile, client_sends);
            let plain = rtcp(0x0102_0304);
            for index in 0u32..3 {
                let mut out = BytesMut::new();
                tx.protect_rtcp(&plain, &mut out).unwrap();
                assert_eq!(out.len(), plain.len() + profile.rtcp_overhead());
                assert_eq!(out[..8], plain[..8]);
                assert_ne!(out[8..plain.len()], plain[8..]);
                let word_at = match profile {
                    SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => out.len() - 4,
                    SrtpProfile::Aes128CmHmacSha1_80 => plain.len(),
                };
                assert_eq!(out[word_at..word_at + 4], (0x8000_0000 | index).to_be_bytes());
                assert_eq!(unprotect_c(&mut rx, &out).unwrap(), plain);
                assert_eq!(unprotect_c(&mut rx, &out), Err(SrtpError::Replay));
            }
        }
    }
}

#[test]
fn replay_and_window() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile, true);
        let packets: Vec<Vec<u8>> = (0..300u16).map(|s| protect(&mut tx, &simple(s))).collect();
        // In order, skipping 10 and 150.
        for (i, p) in packets.iter().enumerate().take(200) {
            if i != 10 && i != 150 {
                assert!(unprotect(&mut rx, p).is_ok(), "{i}");
            }
        }
        assert_eq!(unprotect(&mut rx, &packets[199]), Err(SrtpError::Replay));
        assert_eq!(unprotect(&mut rx, &packets[72]), Err(SrtpError::Replay));
        // 50 behind the newest: still in the window, once.
        assert!(unprotect(&mut rx, &packets[150]).is_ok());
        assert_eq!(unprotect(&mut rx, &packets[150]), Err(SrtpError::Replay));
        // 189 behind: too old, though never seen.
        assert_eq!(unprotect(&mut rx, &packets[10]), Err(SrtpError::Replay));
        // Exactly 127 behind is the oldest accepted.
        for p in &packets[200..=290] {
            assert!(unprotect(&mut rx, p).is_ok());
        }
        assert_eq!(unprotect(&mut rx, &packets[163]), Err(SrtpError::Replay));
        assert!(unprotect(&mut rx, &packets[291]).is_ok());
    }
}

#[test]
fn sender_refuses_to_reuse_an_index() {
    for profile in PROFILES {
        let (mut tx, _) = pair(profile, true);
        protect(&mut tx, &simple(5));
        let mut out = BytesMut::new();
        assert_eq!(tx.protect_rtp(&simple(5), &mut out), Err(SrtpError::Replay));
        assert!(out.is_empty());
        protect(&mut tx, &simple(4)); // reordered but new: fine
    }
}

/// Flips each bit position of a byte in turn; every variant fails and
/// leaves the receiver as it was, so the genuine packet still opens.
#[test]
fn tampering_anywhere_is_rejected_without_state_change() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile, true);
        let first = protect(&mut tx, &rtp(9, 77, &[1], true, b"first", 0));
        let plain = rtp(10, 77, &[1], true, b"some payload", 3);
        let genuine = protect(&mut tx, &plain);
        unprotect(&mut rx, &first).unwrap();
        let state = *rx.streams.get(77).unwrap();
        let hdr_len = 12 + 4 + 12;
        for i in 0..genuine.len() {
            for bit in [0x01u8, 0x10, 0x80] {
                let mut bad = genuine.clone();
                bad[i] ^= bit;
                let r = unprotect(&mut rx, &bad);
                if i >= hdr_len {
                    assert_eq!(r, Err(SrtpError::Auth), "{profile:?} byte {i}");
                } else {
                    assert!(r.is_err(), "{profile:?} header byte {i}");
                }
                assert_eq!(*rx.streams.get(77).unwrap(), state);
                assert_eq!(rx.streams.len(), 1);
            }
        }
        assert_eq!(unprotect(&mut rx, &genuine).unwrap(), plain);
        // RTCP too.
        let rplain = rtcp(77);
        let genuine = {
            let mut out = BytesMut::new();
            tx.protect_rtcp(&rplain, &mut out).unwrap();
            out.to_vec()
        };
        for i in 0..genuine.len() {
            let mut bad = genuine.clone();
            bad[i] ^= 0x04;
            assert!(unprotect_c(&mut rx, &bad).is_err(), "{profile:?} rtcp byte {i}");
            assert_eq!(rx.streams.get(77).unwrap().rtcp, None);
        }
        assert_eq!(unprotect_c(&mut rx, &genuine).unwrap(), rplain);
    }
}

#[test]
fn rollover_counter_follows_sequence_wrap() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile, true);
        let seqs: Vec<u16> = (65530..=65535).chain(0..=5).collect();
        let packets: Vec<_> = seqs.iter().map(|&s| protect(&mut tx, &simple(s))).collect();
        assert_eq!(tx.rollover_counter(0x1234_5678), Some(1));
        for (p, &s) in packets.iter().zip(&seqs) {
            assert_eq!(unprotect(&mut rx, p).unwrap(), simple(s));
        }
        assert_eq!(rx.rollover_counter(0x1234_5678), Some(1));

        // Reordered across the wrap (libsrtp's rollover test order).
        let (mut tx, mut rx) = pair(profile, false);
        let seqs = [65534u16, 65535, 0, 1, 2];
        let packets: Vec<_> = seqs.iter().map(|&s| protect(&mut tx, &simple(s))).collect();
        for i in [0, 2, 4, 3, 1] {
            assert_eq!(unprotect(&mut rx, &packets[i]).unwrap(), simple(seqs[i]), "{i}");
        }
        assert_eq!(rx.rollover_counter(0x1234_5678), Some(1));
        // A packet encrypted under ROC 1 does not open under ROC 0.
        let (mut tx2, mut rx2) = pair(profile, false);
        protect(&mut tx2, &simple(65535));
        let late = protect(&mut tx2, &simple(3));
        assert_eq!(unprotect(&mut rx2, &late), Err(SrtpError::Auth));
        assert_eq!(rx2.streams.len(), 0);
    }
}

#[test]
fn index_estimation() {
    assert_eq!(estimate_rtp_index(65535, 0), Some(65536));
    assert_eq!(estimate_rtp_index(65536, 65535), Some(65535));
    assert_eq!(estimate_rtp_index(5, 65530), None);
    assert_eq!(estimate_rtp_index(0x1_0005, 65530), Some(65530));
    assert_eq!(estimate_rtp_index(100, 100 + 32767), Some(100 + 32767));
    assert_eq!(estimate_rtp_index(40000, 40000 - 32768), Some(40000 - 32768));
    assert_eq!(estimate_rtp_index((1 << 48) - 1, 0), None);
}

#[test]
fn stream_cap() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile, true);
        let packets: Vec<_> = (0..=MAX_STREAMS as u32)
            .map(|ssrc| {
                let mut out = BytesMut::new();
                let r = tx.protect_rtp(&rtp(1, ssrc, &[], false, b"x", 0), &mut out);
                (r, out.to_vec())
            })
            .collect();
        assert!(packets[..MAX_STREAMS].iter().all(|(r, _)| r.is_ok()));
        assert_eq!(packets[MAX_STREAMS].0, Err(SrtpError::TooManyStreams));
        assert!(packets[MAX_STREAMS].1.is_empty());
        let mut out = BytesMut::new();
        assert_eq!(tx.protect_rtcp(&rtcp(999), &mut out), Err(SrtpError::TooManyStreams));
        for (_, p) in &packets[..MAX_STREAMS] {
            unprotect(&mut rx, p).unwrap();
        }
        // The 65th SSRC, genuinely protected by another sender.
        let (mut tx2, _) = pair(profile, true);
        let extra = protect(&mut tx2, &rtp(1, 4242, &[], false, b"x", 0));
        assert_eq!(unprotect(&mut rx, &extra), Err(SrtpError::TooManyStreams));
        assert_eq!(rx.streams.len(), MAX_STREAMS);
    }
}

#[test]
fn srtcp_index_exhaustion() {
    for profile in PROFILES {
        let (mut tx, _) = pair(profile, true);
        let mut out = BytesMut::new();
        tx.protect_rtcp(&rtcp(5), &mut out).unwrap();
        tx.streams.get_or_insert(5).unwrap().rtcp = Some(replay::ReplayWindow::starting_at(MAX_RTCP_INDEX));
        out.clear();
        assert_eq!(tx.protect_rtcp(&rtcp(5), &mut out), Err(SrtpError::Exhausted));
        assert!(out.is_empty());
    }
}

/// A small xorshift generator, so the garbage is reproducible.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn garbage_and_truncations_never_panic() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile, true);
        for len in 0..=64usize {
            let mut inputs = vec![vec![0u8; len], vec![0xff; len]];
            for seed in 0..16u64 {
                let mut g = garbage(seed * 1000 + len as u64, len);
                if let Some(b) = g.first_mut() {
                    *b = 0x80 | (*b & 0x3f); // version 2, so parsing goes deeper
                }
                inputs.push(g);
            }
            for input in &inputs {
                let mut out = BytesMut::new();
                assert!(rx.unprotect_rtp(input, &mut out).is_err());
                assert!(rx.unprotect_rtcp(input, &mut out).is_err());
                assert!(out.is_empty());
                let _ = tx.protect_rtp(input, &mut out);
                let _ = tx.protect_rtcp(input, &mut out);
            }
        }
        // Every truncation of genuine packets (garbage filled tx's table).
        let (mut tx, mut rx) = pair(profile, true);
        let p = protect(&mut tx, &rtp(3, 9, &[1, 2], true, b"abc", 2));
        let mut c = BytesMut::new();
        tx.protect_rtcp(&rtcp(9), &mut c).unwrap();
        for cut in 0..p.len() {
            assert!(unprotect(&mut rx, &p[..cut]).is_err(), "{cut}");
        }
        for cut in 0..c.len() {
            assert!(unprotect_c(&mut rx, &c[..cut]).is_err(), "{cut}");
        }
        assert!(unprotect(&mut rx, &p).is_ok());
        assert!(unprotect_c(&mut rx, &c).is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_unprotect(bytes in proptest::collection::vec(any::<u8>(), 0..300), gcm: bool) {
        let profile = if gcm { PROFILES[0] } else { PROFILES[1] };
        let (_, mut rx) = pair(profile, true);
        let mut out = BytesMut::new();
        prop_assert!(rx.unprotect_rtp(&bytes, &mut out).is_err());
        prop_assert!(rx.unprotect_rtcp(&bytes, &mut out).is_err());
        prop_assert!(out.is_empty());
    }

    #[test]
    fn arbitrary_packets_round_trip(
        seq in any::<u16>(),
        ssrc in any::<u32>(),
        csrcs in proptest::collection::vec(any::<u32>(), 0..15),
        ext in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..1300),
        pad in 0u8..8,
        gcm: bool,
    ) {
        let profile = if gcm { PROFILES[0] } else { PROFILES[1] };
        let (mut tx, mut rx) = pair(profile, gcm);
        let plain = rtp(seq, ssrc, &csrcs, ext, &payload, pad);
        let protected = protect(&mut tx, &plain);
        prop_assert_eq!(unprotect(&mut rx, &protected).unwrap(), plain);
    }
}

/// `cargo test -p corecast-proto --release srtp_seal_rate -- --ignored --nocapture`
///
/// The three loops run interleaved for several rounds and the best round of
/// each counts, so a busy machine skews them alike.
#[test]
#[ignore]
fn srtp_seal_rate() {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
    use std::hint::black_box;
    use std::time::Instant;

    const N: u32 = 100_000;
    const ROUNDS: usize = 7;

    // (a) raw aws-lc-rs AES-128-GCM over the 1188-byte payload.
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7; 16]).unwrap());
    let header = [0x80u8; 12];
    let mut payload = vec![0x5au8; 1188];
    let mut raw_seal = |round: u32| {
        for i in 0..N {
            let mut nonce = [9u8; 12];
            nonce[4..8].copy_from_slice(&round.to_be_bytes());
            nonce[8..].copy_from_slice(&i.to_be_bytes());
            let nonce = Nonce::assume_unique_for_key(nonce);
            let tag = key.seal_in_place_separate_tag(nonce, Aad::from(&header), &mut payload).unwrap();
            black_box(tag.as_ref()[0]);
        }
    };
    // (b), (c) protect_rtp of 1200-byte packets, sequence numbers running on.
    let protect_loop = |profile: SrtpProfile| {
        let (mut tx, _) = pair(profile, true);
        let mut plain = rtp(0, 0x1111_2222, &[], false, &[0x5a; 1188], 0);
        assert_eq!(plain.len(), 1200);
        let mut out = BytesMut::with_capacity(2048);
        let mut seq = 0u16;
        move || {
            for _ in 0..N {
                seq = seq.wrapping_add(1);
                plain[2..4].copy_from_slice(&seq.to_be_bytes());
                out.clear();
                tx.protect_rtp(&plain, &mut out).unwrap();
                black_box(out[20]);
            }
        }
    };
    let mut gcm = protect_loop(SrtpProfile::AeadAes128Gcm);
    let mut cm = protect_loop(SrtpProfile::Aes128CmHmacSha1_80);

    let mut best = [0f64; 3];
    for round in 0..ROUNDS {
        let timed = |f: &mut dyn FnMut()| {
            let start = Instant::now();
            f();
            f64::from(N) / start.elapsed().as_secs_f64()
        };
        let rates = [timed(&mut || raw_seal(round as u32)), timed(&mut gcm), timed(&mut cm)];
        for (b, r) in best.iter_mut().zip(rates) {
            *b = b.max(r);
        }
    }
    let [raw, gcm, cm] = best;
    println!("1200-byte RTP packets, one core, best of {ROUNDS} rounds of {N}:");
    println!("  (a) aws-lc-rs AES-128-GCM seal, 1188 B: {raw:>10.0} packets/s");
    println!("  (b) protect_rtp AEAD_AES_128_GCM:       {gcm:>10.0} packets/s ({:.2}x the raw seal time)", raw / gcm);
    println!("  (c) protect_rtp AES_CM_HMAC_SHA1_80:    {cm:>10.0} packets/s ({:.2}x the raw seal time)", raw / cm);
}

#[test]
fn protecting_in_place_equals_protecting_a_copy() {
    for profile in PROFILES {
        let key = SrtpKey {
            profile,
            master_key: vec![7; profile.master_key_len()],
            master_salt: vec![9; profile.master_salt_len()],
        };
        let (mut a, mut b) = (SrtpContext::new(&key).unwrap(), SrtpContext::new(&key).unwrap());
        let plain =
            RtpPacket { pt: Pt(45), seq: SeqNo(3), ssrc: Ssrc(77), payload: vec![5; 300], ..Default::default() }
                .to_vec()
                .unwrap();
        let mut copied = BytesMut::new();
        a.protect_rtp(&plain, &mut copied).unwrap();
        let mut in_place = BytesMut::from(&b"prefix"[..]);
        in_place.extend_from_slice(&plain);
        b.protect_rtp_in_place(&mut in_place, 6).unwrap();
        assert_eq!(&in_place[6..], &copied[..], "{profile:?}");
        // Errors leave the buffer as it was before the packet.
        let mut short = BytesMut::from(&b"prefix\x80"[..]);
        assert!(b.protect_rtp_in_place(&mut short, 6).is_err());
        assert_eq!(&short[..], b"prefix");
    }
}
