//! Writes the fuzz targets' seed corpus (`fuzz/corpus/<target>/`) from the messages and vectors
//! the tests use: `cargo test -p corecast-proto --test fuzz_seeds -- --ignored`. The files are
//! committed; this regenerates them (deterministically: the development key signs the tokens).

use std::path::{Path, PathBuf};

use corecast_proto::join_key::{JoinKey, JoinSecret};
use corecast_proto::rtp::RtpPacket;
use corecast_proto::session::{Quality, SessionMessage};
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};
use corecast_proto::{MediaKind, MediaTime, Pt, SeqNo, Ssrc};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn rtp(ssrc: u32, seq: u16, exts: Vec<(u8, Vec<u8>)>, payload: &[u8]) -> Vec<u8> {
    RtpPacket {
        marker: true,
        pt: Pt(96),
        seq: SeqNo(seq),
        timestamp: MediaTime(90_000),
        ssrc: Ssrc(ssrc),
        csrcs: vec![],
        extensions: exts,
        payload: payload.to_vec(),
        padding: 0,
    }
    .to_vec()
    .unwrap()
}

/// RTCP by hand (RFC 3550 §6.4, RFC 4585 §6.2/6.3): SR, RR, PLI, NACK, and a compound.
fn rtcp() -> Vec<(&'static str, Vec<u8>)> {
    let sr = hex("80c800060000006400000001000000020000bb80000000010000000a");
    let rr = hex("81c900070000006500000064000000000000000100000000000000000000000000000000");
    let pli = hex("81ce00020000006500000064");
    let nack = hex("81cd0003000000650000006400070003");
    let mut compound = rr.clone();
    compound.extend_from_slice(&pli);
    compound.extend_from_slice(&nack);
    vec![("sr", sr), ("rr", rr), ("pli", pli), ("nack", nack), ("compound", compound)]
}

/// RFC 5769 §2.1's Binding request (password "VOkJxbRl1RmTxUk/WvJxBt").
fn rfc5769_request() -> Vec<u8> {
    hex(concat!(
        "000100582112a442b7e7a701bc34d686fa87dfae",
        "802200105354554e207465737420636c69656e74",
        "002400046e0001ff",
        "80290008932ff9b151263b36",
        "000600096576746a3a68367659202020",
        "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2",
        "80280004e57a3bcf",
    ))
}

fn join(pid: u64) -> Vec<u8> {
    let claims = Claims {
        call_id: CallId([1; 16]),
        participant_id: ParticipantId(pid),
        role: Role::Publisher,
        expires_at_ms: u64::MAX,
    };
    let tok = token::sign(&token::dev_signing_key(), &claims);
    SessionMessage::Join {
        txid: [7; 12],
        token: tok.to_vec(),
        ssrcs: vec![(Ssrc(100 + pid as u32), MediaKind::Video)],
        quality: Quality::Hd,
        srtp: false,
    }
    .to_signed_vec(&key_of(pid))
}

/// The join key of participant `pid`'s token in [`join`] (the fuzz targets'
/// routers use the development join secret).
fn key_of(pid: u64) -> JoinKey {
    let claims = Claims {
        call_id: CallId([1; 16]),
        participant_id: ParticipantId(pid),
        role: Role::Publisher,
        expires_at_ms: u64::MAX,
    };
    JoinSecret::dev().key_for(&token::sign(&token::dev_signing_key(), &claims))
}

/// The router and pipes targets' framing: `[from, time step, len, bytes]`.
fn frame(out: &mut Vec<u8>, from: u8, step: u8, pkt: &[u8]) {
    let n = pkt.len().min(255);
    out.extend_from_slice(&[from, step, n as u8]);
    out.extend_from_slice(&pkt[..n]);
}

/// An AV1 temporal unit as the packetizer sends it: a sequence header and a small frame OBU.
const SEQ_HEADER_OBU: [u8; 12] = [0x0a, 0x0a, 0x00, 0x00, 0x00, 0x02, 0xaf, 0xff, 0x9b, 0x5f, 0x30, 0x08];
const FRAME_OBU: [u8; 8] = [0x32, 0x06, 0x10, 0x00, 0x00, 0x00, 0x01, 0x80];

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(name), bytes).unwrap();
}

#[test]
#[ignore = "writes fuzz/corpus; run with --ignored to regenerate it"]
fn write_fuzz_seeds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let audio_level = vec![(1u8, vec![0x80 | 30])];
    let two_byte = vec![(1u8, vec![]), (200u8, vec![1, 2, 3])];
    let plain = rtp(100, 1, vec![], b"payload");
    let one = rtp(100, 2, audio_level.clone(), b"opus");
    let two = rtp(101, 3, two_byte, b"video");
    for t in ["rtp", "rtp_ext"] {
        write(&dir, t, "plain", &plain);
        write(&dir, t, "one-byte-ext", &one);
        write(&dir, t, "two-byte-ext", &two);
    }
    for (name, b) in rtcp() {
        write(&dir, "rtcp", name, &b);
        if name == "compound" || name == "nack" {
            write(&dir, "twcc", name, &b);
        }
    }
    write(&dir, "ice", "rfc5769-request", &rfc5769_request());
    write(&dir, "session", "join", &join(0));
    write(&dir, "session", "keepalive", &SessionMessage::Keepalive { txid: [1; 12] }.to_vec());
    write(&dir, "session", "quality-sd", &SessionMessage::Quality { txid: [2; 12], quality: Quality::Sd }.to_vec());
    write(&dir, "session", "rfc5769-request", &rfc5769_request());
    write(&dir, "session", "check", &SessionMessage::Check { txid: [3; 12] }.to_signed_vec(&key_of(0)));
    write(&dir, "session", "check-reply", &SessionMessage::CheckReply { txid: [3; 12] }.to_signed_vec(&key_of(0)));
    let claims = Claims {
        call_id: CallId([1; 16]),
        participant_id: ParticipantId(1),
        role: Role::Subscriber,
        expires_at_ms: 1 << 40,
    };
    let tok = token::sign(&token::dev_signing_key(), &claims);
    write(&dir, "token", "signed", &tok);
    write(&dir, "token", "signed-text", token::encode_text(&tok).as_bytes());

    // The routing core: media from both admitted senders, RTCP, a keepalive, a stranger.
    let mut r = Vec::new();
    frame(&mut r, 0, 1, &rtp(100, 1, vec![], b"frame"));
    frame(&mut r, 1, 1, &rtp(101, 1, audio_level.clone(), b"frame"));
    frame(&mut r, 1, 2, &rtcp()[2].1);
    frame(&mut r, 0, 0, &SessionMessage::Keepalive { txid: [1; 12] }.to_signed_vec(&key_of(0)));
    frame(&mut r, 2, 1, &rtp(100, 2, vec![], b"stranger"));
    frame(&mut r, 3, 1, &join(1));
    write(&dir, "router", "media-rtcp-stranger", &r);
    write(&dir, "pipes", "media-rtcp-stranger", &r);

    for f in
        ["chromium-whip-offer.sdp", "chromium-whep-offer.sdp", "firefox-whip-offer.sdp", "chromium-whip-av1-offer.sdp"]
    {
        let b = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sdp").join(f)).unwrap();
        write(&dir, "sdp", f, &b);
    }
    // Packets the SRTP target protects and unprotects; VP8 / AV1 payload heads for temporal.
    write(&dir, "srtp", "rtp", &plain);
    write(&dir, "srtp", "rtcp", &rtcp()[4].1);
    write(&dir, "temporal", "vp8-tl1", &[0x90, 0xe0, 0x80, 0x01, 0x00, 0x60, 0x00]);
    write(&dir, "temporal", "av1-ext-tid2", &[0x18, 0x0a, 0x34, 0x40, 0x00]);

    // DTLS: a record header (handshake, DTLS 1.2) with a truncated ClientHello, then one
    // record per datagram as the target frames them.
    let ch = hex("16fefd0000000000000000002d010000210000000000000021fefd000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f000002c02b0100");
    write(&dir, "dtls", "client-hello", &[&[ch.len() as u8][..], &ch].concat());

    // AV1: payloads framed as the target reads them ([flags, ts step, len, payload]):
    // a keyframe unit in one packet (N=1, W=2), then one split over two packets (Y, then Z).
    let mut unit = vec![0x28];
    unit.push(SEQ_HEADER_OBU.len() as u8);
    unit.extend_from_slice(&SEQ_HEADER_OBU);
    unit.extend_from_slice(&FRAME_OBU);
    let mut a = Vec::new();
    a.extend_from_slice(&[0x03, 1, unit.len() as u8]);
    a.extend_from_slice(&unit);
    let first = [&[0x50u8, 5][..], &FRAME_OBU[..5]].concat();
    let second = [&[0x90u8][..], &FRAME_OBU[5..]].concat();
    a.extend_from_slice(&[0x02, 1, first.len() as u8]);
    a.extend_from_slice(&first);
    a.extend_from_slice(&[0x03, 0, second.len() as u8]);
    a.extend_from_slice(&second);
    write(&dir, "av1", "key-then-fragmented", &a);

    // IVF: a header and two frames.
    let mut ivf = b"DKIF\0\0\x20\0AV01".to_vec();
    ivf.extend_from_slice(&[0x80, 0x02, 0x68, 0x01, 0x5f, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    for (i, f) in [&[0x12u8, 0x00][..], &unit[1..]].iter().enumerate() {
        ivf.extend_from_slice(&(f.len() as u32).to_le_bytes());
        ivf.extend_from_slice(&(i as u64).to_le_bytes());
        ivf.extend_from_slice(f);
    }
    write(&dir, "ivf", "two-frames", &ivf);
}
