//! The client's real AV1: a live-encoded test pattern through a router,
//! saved by a receiver as IVF, which dav1d decodes to the sender's colour;
//! a PLI from the receiver makes the sender's next frame a keyframe.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use corecast_client::av1::{read_ivf, Av1Source};
use corecast_client::Client;
use corecast_codec::pattern::participant_colour;
use corecast_codec::Decoder;
use corecast_proto::rtcp::{self, RtcpPacket};
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};

#[test]
fn av1_pattern_is_saved_as_ivf_that_decodes_and_pli_brings_a_keyframe() {
    let server = common::start_router();
    let call = CallId(rand::random());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let join = |pid: u64| {
        let c = Claims {
            call_id: call,
            participant_id: ParticipantId(pid),
            role: Role::Publisher,
            expires_at_ms: now + 60_000,
        };
        Client::join_dev(server.addresses()[0], &token::sign(&token::dev_signing_key(), &c), pid, Quality::Hd).unwrap()
    };
    let (sender, receiver) = (join(1), join(2));
    let dir = std::env::temp_dir().join(format!("corecast-av1-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let key = Arc::new(AtomicBool::new(false));
    let sender_rec = sender.start_recording_av1(&dir.join("sender"), key.clone()).unwrap();
    let rec = receiver.start_recording_av1(&dir.join("receiver"), Arc::new(AtomicBool::new(false))).unwrap();

    let (fps, frames) = (15u32, 30u32);
    let mut src = Av1Source::pattern(320, 180, fps, 2).unwrap();
    let pli = rtcp::write_compound(&[RtcpPacket::Pli(rtcp::Pli {
        sender_ssrc: receiver.ssrcs().1,
        media_ssrc: sender.ssrcs().1,
    })])
    .unwrap();
    let sent = std::thread::scope(|s| {
        let h = s.spawn(|| sender.send_av1(&mut src, fps, Duration::from_millis(u64::from(frames) * 1000 / 15), &key));
        // Mid-stream the receiver asks for a keyframe; the router routes the PLI to the sender.
        std::thread::sleep(Duration::from_millis(1200));
        receiver.send_packet(&pli).unwrap();
        h.join().unwrap()
    });
    assert!(sent.sent > 0);
    std::thread::sleep(Duration::from_millis(500));
    let saved = rec.finish().unwrap();
    drop(sender_rec);
    assert_eq!(saved.len(), 1, "one stream: the sender's video");
    let s = &saved[0];
    assert_eq!(s.ssrc, sender.ssrcs().1 .0);
    // The encoder holds one picture: all but the last frame come out.
    assert!(s.frames * 10 >= u64::from(frames - 1) * 9, "{} frames saved of {frames}", s.frames);
    assert!(s.keyframes >= 2, "the first frame and the one after the PLI are keyframes ({})", s.keyframes);

    let units = read_ivf(&s.path).unwrap();
    assert_eq!(units.len() as u64, s.frames);
    let mut dec = Decoder::new().unwrap();
    let want = participant_colour(2);
    let mut decoded = 0;
    for u in units {
        if let Some(p) = dec.decode(u, 0).unwrap() {
            decoded += 1;
            assert_eq!((p.width(), p.height()), (320, 180));
            // The whole picture: the moving square is a small part of it.
            let (y, cb, cr) = p.view().mean_yuv(0, 0, 320, 180);
            let d =
                (y - f64::from(want.0)).abs().max((cb - f64::from(want.1)).abs()).max((cr - f64::from(want.2)).abs());
            assert!(d < 16.0, "frame colour ({y:.0},{cb:.0},{cr:.0}) want {want:?}");
        }
    }
    assert_eq!(decoded as u64, s.frames, "every saved frame decodes");
    let _ = std::fs::remove_dir_all(&dir);
    server.stop();
}
