//! Last-N: a receiver that asks for the video of the call's `n` most active
//! speakers gets only theirs (the rest paused, not sent), the stage follows
//! who speaks (with a keyframe request for a stream that comes back), and
//! the dominant speaker is told: an event, and an RTCP APP `SPKR` list to
//! the Last-N receiver.

use super::*;

/// Audio with an RFC 6464 level (extension id 1), from publisher `pid`.
fn audio(pid: u64, seq: u16, dbov: u8) -> Vec<u8> {
    let extensions = vec![(1u8, vec![0x80 | dbov])];
    RtpPacket {
        pt: Pt(111),
        seq: SeqNo(seq),
        ssrc: Ssrc(pid as u32 * 100),
        payload: vec![7; 40],
        extensions,
        ..Default::default()
    }
    .to_vec()
    .unwrap()
}

/// Publishers 1..=6 (audio pid*100, video pid*100+1) at addr(pid); a
/// receiver 50 at addr(50) that asks for Last-N = `n`.
fn six_speakers(h: &mut H, n: u8) {
    for pid in 1..=6u64 {
        h.join_av(addr(pid as u16), pid);
    }
    let token = h.token(call(1), 50, Role::Subscriber);
    h.session(
        addr(50),
        SessionMessage::Join { txid: [1; 12], token, ssrcs: vec![], quality: Quality::Hd, srtp: false },
    );
    h.session(addr(50), SessionMessage::LastN { txid: [2; 12], n });
    h.take();
}

/// `frames` × 20 ms of audio at `levels` (by publisher) and one video packet
/// from every publisher; returns the video SSRCs receiver 50 got in the last
/// frame, the audio SSRCs it got then, and everything else sent meanwhile.
fn talk(h: &mut H, seq: &mut u16, frames: usize, levels: [u8; 6]) -> (Vec<u32>, Vec<u32>, Vec<Transmit>) {
    let mut other = Vec::new();
    let (mut video, mut audio_got) = (vec![], vec![]);
    for _ in 0..frames {
        *seq = seq.wrapping_add(1);
        for pid in 1..=6u64 {
            h.input(addr(pid as u16), self::audio(pid, *seq, levels[pid as usize - 1]));
            h.input(addr(pid as u16), rtp(pid as u32 * 100 + 1, *seq));
        }
        h.advance(Duration::from_millis(20));
        (video, audio_got) = (vec![], vec![]);
        for t in h.take() {
            match (t.destination == addr(50), classify(&t.contents)) {
                (true, Kind::Rtp) => {
                    let ssrc = RtpHeader::parse(&t.contents).unwrap().ssrc.0;
                    if ssrc % 100 == 1 {
                        video.push(ssrc)
                    } else {
                        audio_got.push(ssrc)
                    }
                }
                _ => other.push(t),
            }
        }
    }
    video.sort();
    audio_got.sort();
    (video, audio_got, other)
}

/// The stages receiver 50 was told (RTCP APP `SPKR`), in order.
fn stages(sent: &[Transmit]) -> Vec<Vec<u32>> {
    sent.iter()
        .filter(|t| t.destination == addr(50) && classify(&t.contents) == Kind::Rtcp)
        .flat_map(|t| rtcp::parse_compound(&t.contents).unwrap())
        .filter_map(|p| match p {
            RtcpPacket::App(a) => corecast_proto::session::speakers::parse(&a),
            _ => None,
        })
        .map(|l| l.iter().map(|s| s.0).collect())
        .collect()
}

fn dominant(h: &H) -> Vec<u64> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::DominantSpeaker { participant, .. } => Some(participant.0),
            _ => None,
        })
        .collect()
}

fn plis_to(sent: &[Transmit], pid: u16) -> usize {
    sent.iter()
        .filter(|t| t.destination == addr(pid) && classify(&t.contents) == Kind::Rtcp)
        .flat_map(|t| rtcp::parse_compound(&t.contents).unwrap())
        .filter(|p| matches!(p, RtcpPacket::Pli(_)))
        .count()
}

#[test]
fn last_n_two_in_a_six_speaker_call_gets_only_the_two_loudest_videos() {
    let mut h = H::new();
    six_speakers(&mut h, 2);
    let mut seq = 0u16;
    // 1 and 2 speak, the others are near silence.
    let (_, _, sent) = talk(&mut h, &mut seq, 15, [10, 20, 80, 80, 80, 80]);
    let (video, audio, _) = talk(&mut h, &mut seq, 10, [10, 20, 80, 80, 80, 80]);
    assert_eq!(video, vec![101, 201], "only the two loudest speakers' video");
    assert_eq!(audio, vec![100, 200, 300, 400, 500, 600], "audio is not thinned");
    assert_eq!(stages(&sent)[0][..2], [101, 201], "told the stage, loudest first");
    assert_eq!(dominant(&h), vec![1]);
    let withheld = h.r.stats().last_n_withheld;
    assert!(withheld >= 4 * 10, "the four others' video, every frame: {withheld}");
    // 5 starts speaking, 1 stops: 5 is on the stage (its video comes back
    // with a keyframe request), 1 is off; 2 stays.
    let (_, _, sent) = talk(&mut h, &mut seq, 25, [90, 20, 80, 80, 5, 80]);
    let (video, _, _) = talk(&mut h, &mut seq, 5, [90, 20, 80, 80, 5, 80]);
    assert_eq!(video, vec![201, 501]);
    let d = dominant(&h);
    assert_eq!((d.first(), d.last()), (Some(&1), Some(&5)), "{d:?}");
    assert!(stages(&sent).iter().any(|s| s[..2] == [501, 201]), "{:?}", stages(&sent));
    assert!(plis_to(&sent, 5) >= 1, "5's video resumed: a keyframe request");
    // Last-N 0: everyone's video again.
    h.session(addr(50), SessionMessage::LastN { txid: [3; 12], n: 0 });
    let (video, _, _) = talk(&mut h, &mut seq, 2, [90, 20, 80, 80, 5, 80]);
    assert_eq!(video, vec![101, 201, 301, 401, 501, 601]);
}

/// A receiver whose stream of a speaker was paused and resumed sees one
/// stream with no gap in its sequence numbers.
#[test]
fn a_speaker_back_on_stage_continues_without_a_gap() {
    let mut h = H::new();
    six_speakers(&mut h, 1);
    let mut seq = 0u16;
    talk(&mut h, &mut seq, 15, [10, 80, 80, 80, 80, 80]);
    let mut got = Vec::new();
    for levels in [[10, 80, 80, 80, 80, 80], [90, 5, 80, 80, 80, 80], [5, 90, 80, 80, 80, 80]] {
        for _ in 0..25 {
            seq = seq.wrapping_add(1);
            for pid in 1..=6u64 {
                h.input(addr(pid as u16), audio(pid, seq, levels[pid as usize - 1]));
                h.input(addr(pid as u16), rtp(pid as u32 * 100 + 1, seq));
            }
            h.advance(Duration::from_millis(20));
            for t in h.take().iter().filter(|t| t.destination == addr(50) && classify(&t.contents) == Kind::Rtp) {
                let p = RtpHeader::parse(&t.contents).unwrap();
                if p.ssrc.0 == 101 {
                    got.push(p.seq.0);
                }
            }
        }
    }
    assert!(got.len() > 20, "{got:?}");
    assert!(got.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "contiguous: {got:?}");
    let d = dominant(&h);
    assert_eq!((d.first(), d.last()), (Some(&1), Some(&1)), "{d:?}");
    assert!(d.contains(&2), "{d:?}");
}

/// Without any Last-N receiver the dominant speaker is still followed (the
/// calls service tells browsers), and nobody gets a stage list; a call in
/// which nobody is heard has none.
#[test]
fn the_dominant_speaker_is_told_without_last_n_and_only_once_someone_is_heard() {
    let mut h = H::new();
    six_speakers(&mut h, 0);
    let mut seq = 0u16;
    let (video, _, sent) = talk(&mut h, &mut seq, 15, [127; 6]);
    assert_eq!(video, vec![101, 201, 301, 401, 501, 601], "everyone's video");
    assert_eq!(dominant(&h), Vec::<u64>::new(), "silence: no dominant speaker");
    assert!(stages(&sent).is_empty());
    let (_, _, sent) = talk(&mut h, &mut seq, 15, [80, 80, 15, 80, 80, 80]);
    assert_eq!(dominant(&h), vec![3]);
    let (_, _, more) = talk(&mut h, &mut seq, 30, [80, 80, 80, 80, 80, 10]);
    assert_eq!(dominant(&h), vec![3, 6]);
    assert!(stages(&sent).is_empty() && stages(&more).is_empty(), "no Last-N receiver, no stage list");
}

/// A WHEP leg with Last-N (`?last_n=`): the video of the participant it
/// watches is paused while that participant is off the call's stage of
/// `n`, and comes back (with a keyframe request) when it is on it. Its
/// audio is not thinned.
#[test]
fn a_webrtc_leg_with_last_n_gets_the_video_it_watches_only_on_stage() {
    use super::webrtc::{identity, Peer};
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    six_speakers(&mut h, 0);
    // Viewer 60 watches participant 3, Last-N 1.
    let config = dimpl::Config::builder().build().unwrap();
    let mut v = Peer::open_edited(&mut h, 60, (call(1), 60, false, Some(3)), config, |leg| leg.last_n = Some(1));
    v.connect_ice(&mut h);
    v.handshake(&mut h);
    h.take();
    // What the viewer got over `frames` × 20 ms at `levels`: (video, audio) packets.
    let mut seq = 0u16;
    let mut watch = |h: &mut H, frames: usize, levels: [u8; 6]| -> ((usize, usize), Vec<Transmit>) {
        let mut got = (0, 0);
        let mut other = Vec::new();
        for _ in 0..frames {
            seq = seq.wrapping_add(1);
            for pid in 1..=6u64 {
                h.input(addr(pid as u16), self::audio(pid, seq, levels[pid as usize - 1]));
                // Native AV1 (45): what the browser's leg negotiated.
                h.input(addr(pid as u16), rtp_pt(pid as u32 * 100 + 1, seq, 45));
            }
            h.advance(Duration::from_millis(20));
            for t in h.take() {
                if t.destination == v.addr && classify(&t.contents) == Kind::Rtp {
                    let p = v.open_rtp(&t.contents);
                    if p.payload.len() == 40 {
                        got.1 += 1; // the audio helper's payload
                    } else {
                        got.0 += 1;
                    }
                } else {
                    other.push(t);
                }
            }
        }
        (got, other)
    };
    // 1 speaks, 3 is near silence: 3's video paused, its audio not.
    watch(&mut h, 15, [10, 80, 80, 80, 80, 80]);
    let ((video, audio), _) = watch(&mut h, 10, [10, 80, 80, 80, 80, 80]);
    assert_eq!((video, audio), (0, 10), "off stage: audio only");
    let snapshot = h.r.snapshot();
    let leg = snapshot[0].participants.iter().find(|p| p.participant == ParticipantId(60)).unwrap();
    assert_eq!(leg.last_n, Some(1));
    // 3 speaks up: its video comes back, with a keyframe request to it.
    let (_, sent) = watch(&mut h, 25, [80, 80, 5, 80, 80, 80]);
    let ((video, audio), _) = watch(&mut h, 10, [80, 80, 5, 80, 80, 80]);
    assert_eq!((video, audio), (10, 10), "on stage: video and audio");
    assert!(plis_to(&sent, 3) >= 1, "3's video resumed: a keyframe request");
}
