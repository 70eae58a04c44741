//! Encode → packetize → depacketize → decode round trips (small sizes).

use corecast_codec::av1::{Depacketizer, Packetizer};
use corecast_codec::pattern::{participant_colour, TestPattern};
use corecast_codec::{Decoder, EncodedFrame, Encoder, EncoderConfig, I420Frame};
use corecast_proto::frame_size::{av1_frame_size, FrameSize};
use corecast_proto::{MediaTime, SeqNo};

fn small_encoder(w: usize, h: usize) -> Encoder {
    Encoder::new(&EncoderConfig { width: w, height: h, bitrate_kbps: 300, preset: 12, ..Default::default() })
        .expect("encoder")
}

/// Encodes `frames`, forcing key frames where `force(i)`; returns the units in order.
fn encode_all(enc: &mut Encoder, frames: &[I420Frame], force: impl Fn(usize) -> bool) -> Vec<EncodedFrame> {
    let mut units = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        enc.send_frame(f, i as i64, force(i)).expect("send");
        while let Some(u) = enc.poll_frame(true).expect("poll") {
            units.push(u);
        }
    }
    units.extend(enc.finish().expect("finish"));
    units
}

#[test]
fn pattern_survives_rtp_round_trip() {
    let (w, h) = (192, 108);
    let mut pattern = TestPattern::new(w, h, participant_colour(2));
    let frames: Vec<I420Frame> = (0..10).map(|_| pattern.next_frame().clone()).collect();
    let mut enc = small_encoder(w, h);
    let units = encode_all(&mut enc, &frames, |_| false);
    assert_eq!(units.len(), 10);

    let pk = Packetizer::new(300).unwrap();
    let mut dep = Depacketizer::new();
    let mut dec = Decoder::new().unwrap();
    let mut seq = SeqNo(65530);
    let mut payloads = Vec::new();
    for (i, e) in units.into_iter().enumerate() {
        assert_eq!(e.pts, i as i64);
        assert_eq!(e.keyframe, i == 0, "unit {i}");
        payloads.clear();
        let n = pk.packetize(&e.data, &mut payloads).unwrap();
        assert!(n >= 1);
        // What the router reads for a receiver's requested size: the real
        // sequence header in a keyframe's first packet, nothing elsewhere.
        let size = payloads.iter().map(|p| av1_frame_size(p)).collect::<Vec<_>>();
        let want = (i == 0).then_some(FrameSize { width: w as u16, height: h as u16 });
        assert_eq!(size[0], want, "unit {i}");
        assert!(size[1..].iter().all(Option::is_none), "unit {i}");
        for (j, p) in payloads.iter().enumerate() {
            dep.handle_packet(seq, MediaTime(i as u32 * 3000), j + 1 == n, p);
            seq = seq.next();
        }
        let tu = dep.poll_frame().expect("complete unit");
        assert_eq!(tu.keyframe, i == 0);
        let pic = dec.decode(tu.data, i as i64).expect("decode").expect("picture");
        assert_eq!((pic.width(), pic.height()), (w, h));
        let got = pic.view().mean_yuv(0, 0, w, h);
        let want = frames[i].view().mean_yuv(0, 0, w, h);
        assert!(
            (got.0 - want.0).abs() < 6.0 && (got.1 - want.1).abs() < 6.0 && (got.2 - want.2).abs() < 6.0,
            "{i}: {got:?} vs {want:?}"
        );
    }
    assert_eq!(dep.stats().frames, 10);
}

#[test]
fn forced_keyframe_restarts_cleanly() {
    let (w, h) = (128, 72);
    let mut pattern = TestPattern::new(w, h, participant_colour(0));
    let frames: Vec<I420Frame> = (0..6).map(|_| pattern.next_frame().clone()).collect();
    let mut enc = small_encoder(w, h);
    let units = encode_all(&mut enc, &frames, |i| i == 4);
    assert_eq!(units.len(), 6);
    let keys: Vec<bool> = units.iter().map(|u| u.keyframe).collect();
    assert_eq!(keys, [true, false, false, false, true, false]);
    assert!(corecast_codec::av1::starts_sequence(&units[4].data));
    // One decoder decodes the whole stream across the restart.
    let mut dec = Decoder::new().unwrap();
    for (i, u) in units.into_iter().enumerate() {
        assert!(dec.decode(u.data, i as i64).unwrap().is_some(), "unit {i}");
    }
}
