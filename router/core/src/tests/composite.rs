//! The SD composite's audio on synthetic time: a WHEP composite view
//! (WebRTC, SD) hears only the mixer's mix, on its audio m-line; a native SD
//! receiver hears the loudest speakers' own streams; the mixer hears the
//! loudest speakers and its mix is never ranked as one.

use super::webrtc::{identity, video, Peer};
use super::*;

/// An audio packet with its RFC 6464 level (id 1) and `csrcs`.
fn audio(ssrc: u32, seq: u16, dbov: u8, csrcs: Vec<Ssrc>) -> Vec<u8> {
    let payload = vec![0x78, seq as u8, 1, 2];
    let p = RtpPacket { pt: Pt(111), seq: SeqNo(seq), ssrc: Ssrc(ssrc), csrcs, payload, ..Default::default() };
    RtpPacket { extensions: vec![(1, vec![dbov])], ..p }.to_vec().unwrap()
}

#[test]
fn a_composite_view_hears_the_mix_and_native_sd_receivers_the_loudest_speaker() {
    let mut h = H::with(RouterConfig { sd_audio_streams: 1, ..RouterConfig::default() });
    h.r.set_dtls_identity(identity());
    let c = call(13);
    for (i, pid) in [(1u16, 1u64), (2, 2)] {
        let tok = h.token(c, pid, Role::Publisher);
        let base = pid as u32 * 0x100;
        let ssrcs = vec![(Ssrc(base), MediaKind::Audio), (Ssrc(base + 1), MediaKind::Video)];
        assert!(matches!(h.join_with(addr(i), tok, ssrcs), SessionMessage::JoinAck { .. }));
    }
    // A native SD receiver, and a browser's composite view (WHEP ?view=composite).
    let tok = h.token(c, 4, Role::Subscriber);
    h.session(
        addr(4),
        SessionMessage::Join { txid: [4; 12], token: tok, ssrcs: vec![], quality: Quality::Sd, srtp: false },
    );
    h.take();
    let config = dimpl::Config::builder().build().unwrap();
    let mut v = Peer::open_with(&mut h, 3, c, 3, false, None, (config, Quality::Sd));
    v.connect_ice(&mut h);
    v.handshake(&mut h);
    let tok = h.token(c, 9, Role::Mixer);
    let ssrcs = vec![(Ssrc(0x900), MediaKind::Video), (Ssrc(0x901), MediaKind::Audio)];
    assert!(matches!(h.join_with(addr(9), tok, ssrcs), SessionMessage::JoinAck { .. }));
    h.take();
    // Speaker 1 is loud, speaker 2 quiet; the mix is louder than both but is no speaker.
    for seq in 0..5u16 {
        h.input(addr(1), audio(0x100, seq, 10, vec![]));
        h.input(addr(2), audio(0x200, seq, 60, vec![]));
        h.input(addr(9), audio(0x901, seq, 0, vec![Ssrc(0x100)]));
    }
    h.advance(Duration::from_millis(250));
    h.take();
    let mixed_before = h.r.stats().sd_audio_mixed;

    // The loudest speaker: HD receivers, the native SD receiver and the mixer; not the view.
    h.input(addr(1), audio(0x100, 5, 10, vec![]));
    assert_eq!(dests(&h.take()), vec![addr(2), addr(4), addr(9)]);
    // The quiet one: HD receivers only.
    h.input(addr(2), audio(0x200, 5, 60, vec![]));
    assert_eq!(dests(&h.take()), vec![addr(1)]);
    assert_eq!(h.r.stats().sd_audio_mixed - mixed_before, 2, "the view hears neither");
    // The mix: the view only, on its audio m-line (its payload type, mid and level id), CSRCs kept.
    h.input(addr(9), audio(0x901, 5, 0, vec![Ssrc(0x100)]));
    let t = h.take();
    assert_eq!(dests(&t), vec![v.addr]);
    let q = v.open_rtp(&t[0].contents);
    assert_eq!((q.ssrc, q.pt, q.seq, q.csrcs.clone()), (Ssrc(0x901), Pt(111), SeqNo(5), vec![Ssrc(0x100)]));
    assert_eq!(q.extensions[..2], [(9, b"0".to_vec()), (1, vec![0])]);
    assert_eq!(q.extensions[2].0, 3, "the router's transport-wide number");
    // The composite: every SD receiver, the view on its video m-line.
    h.input(addr(9), video(0x900, 1, 45));
    let t = h.take();
    assert_eq!(dests(&t), vec![v.addr, addr(4)]);
    let q = v.open_rtp(&t.iter().find(|t| t.destination == v.addr).unwrap().contents);
    assert_eq!((q.ssrc, q.pt), (Ssrc(0x900), Pt(35)));
    // Raw video: HD receivers and the mixer.
    h.input(addr(1), video(0x101, 1, 45));
    assert_eq!(dests(&h.take()), vec![addr(2), addr(9)]);
}
