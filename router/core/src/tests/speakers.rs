//! The loudest speakers: SD receivers' audio and the mixer's list.

use super::*;

/// An audio packet carrying an RFC 6464 level (extension id 1, voice activity set).
fn audio(ssrc: u32, seq: u16, dbov: Option<u8>) -> Vec<u8> {
    let extensions = dbov.map(|l| vec![(1u8, vec![0x80 | l])]).unwrap_or_default();
    RtpPacket { pt: Pt(111), seq: SeqNo(seq), ssrc: Ssrc(ssrc), payload: vec![7; 40], extensions, ..Default::default() }
        .to_vec()
        .unwrap()
}

/// Publishers 1..=`speakers` at addr(pid), audio SSRC pid*100; an SD
/// subscriber 50 at addr(50) and an HD subscriber 51 at addr(51).
fn speakers_call(h: &mut H, speakers: u64) {
    for pid in 1..=speakers {
        let tok = h.token(call(1), pid, Role::Publisher);
        let r = h.join_with(addr(pid as u16), tok, vec![(Ssrc(pid as u32 * 100), MediaKind::Audio)]);
        assert!(matches!(r, SessionMessage::JoinAck { .. }));
    }
    for (pid, quality) in [(50u64, Quality::Sd), (51, Quality::Hd)] {
        let token = h.token(call(1), pid, Role::Subscriber);
        h.session(addr(pid as u16), SessionMessage::Join { txid: [1; 12], token, ssrcs: vec![], quality, srtp: false });
    }
    h.take();
}

struct Talk {
    seq: u16,
}

impl Talk {
    /// 20 ms of audio from every speaker at the given levels (`None`: no
    /// level extension); returns the SSRCs each receiver got (sorted) and the
    /// sequence numbers the SD receiver got, per SSRC.
    fn frame(&mut self, h: &mut H, levels: &[(u64, Option<u8>)]) -> (Vec<u32>, Vec<u32>, Vec<(u32, u16)>) {
        self.seq = self.seq.wrapping_add(1);
        for &(pid, level) in levels {
            h.input(addr(pid as u16), audio(pid as u32 * 100, self.seq, level));
        }
        h.now += Duration::from_millis(20);
        h.r.handle_input(h.now, Input::Timeout);
        h.drain();
        let (mut sd, mut hd, mut sd_seq) = (vec![], vec![], vec![]);
        let (rtp, other): (Vec<Transmit>, Vec<Transmit>) =
            h.take().into_iter().partition(|t| classify(&t.contents) == Kind::Rtp);
        h.transmits = other; // left for the caller (RTCP to the mixer)
        for t in &rtp {
            let p = RtpHeader::parse(&t.contents).unwrap();
            if t.destination == addr(50) {
                sd.push(p.ssrc.0);
                sd_seq.push((p.ssrc.0, p.seq.0));
            } else if t.destination == addr(51) {
                hd.push(p.ssrc.0);
            }
        }
        sd.sort();
        hd.sort();
        (sd, hd, sd_seq)
    }

    /// `n` frames; returns what the last one delivered.
    fn frames(&mut self, h: &mut H, n: usize, levels: &[(u64, Option<u8>)]) -> (Vec<u32>, Vec<u32>, Vec<(u32, u16)>) {
        let mut last = Default::default();
        for _ in 0..n {
            last = self.frame(h, levels);
        }
        last
    }
}

fn active_speakers(h: &H) -> Vec<Vec<u32>> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::ActiveSpeakers { ssrcs, .. } => Some(ssrcs.iter().map(|s| s.0).collect()),
            _ => None,
        })
        .collect()
}

#[test]
fn sd_receivers_hear_the_three_loudest_speakers_and_hd_receivers_hear_everyone() {
    let mut h = H::new();
    speakers_call(&mut h, 5);
    let mut talk = Talk { seq: 100 };
    let levels = [(1, Some(40)), (2, Some(10)), (3, Some(90)), (4, Some(25)), (5, Some(70))];
    // Before the first ranking (200 ms) every stream reaches everyone.
    let (sd, hd, _) = talk.frame(&mut h, &levels);
    assert_eq!(sd, vec![100, 200, 300, 400, 500]);
    assert_eq!(hd, sd);
    let (sd, hd, _) = talk.frames(&mut h, 15, &levels);
    assert_eq!(sd, vec![100, 200, 400], "the three loudest: -10, -25 and -40 dBov");
    assert_eq!(hd, vec![100, 200, 300, 400, 500]);
    assert_eq!(active_speakers(&h), vec![vec![200, 400, 100]], "loudest first, announced once");
    // The snapshot shows who is heard and how loud.
    let snap = &h.r.snapshot()[0];
    let of = |pid: u64| snap.participants.iter().find(|p| p.participant == ParticipantId(pid)).unwrap();
    assert_eq!(of(2).loudness, Some(127 - 10));
    assert!(of(2).sd_audible && !of(3).sd_audible);
    assert_eq!((of(50).loudness, of(50).sd_audible), (None, false));
    // Two streams held back from one receiver for at least the last 5 frames.
    assert!(h.r.stats().sd_audio_withheld >= 2 * 5);
}

#[test]
fn a_new_loud_speaker_takes_the_quietest_slot_and_its_stream_continues_without_a_gap() {
    let mut h = H::new();
    speakers_call(&mut h, 4);
    let mut talk = Talk { seq: 0 };
    let quiet = [(1, Some(20)), (2, Some(30)), (3, Some(40)), (4, Some(100))];
    let mut last_before = None;
    for _ in 0..20 {
        let (sd, _, seqs) = talk.frame(&mut h, &quiet);
        last_before = seqs.iter().rev().find(|(s, _)| *s == 400).map(|(_, q)| *q).or(last_before);
        assert!(sd.len() == 3 || sd.len() == 4);
    }
    assert_eq!(talk.frame(&mut h, &quiet).0, vec![100, 200, 300]);
    let last_before = last_before.expect("stream 400 was heard before the first ranking");
    // Speaker 4 starts talking loudly; it is heard within two ranking windows.
    let loud = [(1, Some(20)), (2, Some(30)), (3, Some(40)), (4, Some(5))];
    let mut heard_after = None;
    for i in 0..30 {
        let (sd, _, seqs) = talk.frame(&mut h, &loud);
        if sd.contains(&400) {
            // The SD receiver's copy of stream 400 goes on from where it stopped.
            let (_, first) = seqs.iter().copied().find(|(s, _)| *s == 400).unwrap();
            assert_eq!(first, last_before.wrapping_add(1), "stream 400 resumes where it stopped");
            heard_after = Some(i);
            break;
        }
    }
    let heard_after = heard_after.expect("the new speaker is heard");
    assert!(heard_after <= 20, "heard after {heard_after} frames");
    let (sd, hd, _) = talk.frames(&mut h, 5, &loud);
    assert_eq!(sd, vec![100, 200, 400], "the quietest speaker (-40 dBov) gave way");
    assert_eq!(hd, vec![100, 200, 300, 400]);
    let mut last = active_speakers(&h).last().unwrap().clone();
    last.sort();
    assert_eq!(last, vec![100, 200, 400]);
}

#[test]
fn sequence_numbers_to_an_sd_receiver_have_no_gap_across_a_pause() {
    let mut h = H::new();
    speakers_call(&mut h, 4);
    let mut talk = Talk { seq: 65_500 };
    let mut got: Vec<u16> = Vec::new();
    let mut run = |h: &mut H, n: usize, level4: u8| {
        let levels = [(1, Some(20)), (2, Some(30)), (3, Some(40)), (4, Some(level4))];
        for _ in 0..n {
            let (_, _, seqs) = talk.frame(h, &levels);
            got.extend(seqs.iter().filter(|(s, _)| *s == 400).map(|(_, q)| *q));
        }
    };
    run(&mut h, 20, 100); // silent: paused after the first window
    run(&mut h, 40, 0); // loud: resumed
    run(&mut h, 40, 127); // silent again: paused
    run(&mut h, 40, 0); // resumed again, across the 16-bit wrap
    assert!(got.len() > 40);
    for w in got.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "SD receiver sees stream 400 without gaps: {got:?}");
    }
}

#[test]
fn close_speakers_do_not_trade_places_every_window() {
    let mut h = H::new();
    speakers_call(&mut h, 4);
    let mut talk = Talk { seq: 0 };
    talk.frames(&mut h, 30, &[(1, Some(20)), (2, Some(22)), (3, Some(24)), (4, Some(27))]);
    h.events.clear();
    // Speaker 4 gets 4 dB louder than speaker 3: within the head start, no change.
    let (sd, _, _) = talk.frames(&mut h, 50, &[(1, Some(20)), (2, Some(22)), (3, Some(24)), (4, Some(20))]);
    assert_eq!(sd, vec![100, 200, 300]);
    assert!(active_speakers(&h).is_empty());
    // Clearly louder (more than the head start): it takes over.
    let (sd, _, _) = talk.frames(&mut h, 50, &[(1, Some(20)), (2, Some(22)), (3, Some(24)), (4, Some(10))]);
    assert_eq!(sd, vec![100, 200, 400]);
}

#[test]
fn streams_without_levels_and_small_calls_are_always_heard() {
    let mut h = H::new();
    speakers_call(&mut h, 5);
    let mut talk = Talk { seq: 0 };
    // Speaker 5 sends no level (and speaker 4 a malformed extension): both
    // are forwarded; the three loudest of the ranked ones are too.
    let levels = [(1, Some(40)), (2, Some(10)), (3, Some(90)), (4, Some(80)), (5, None)];
    let (sd, _, _) = talk.frames(&mut h, 20, &levels);
    assert_eq!(sd, vec![100, 200, 400, 500]);
    let mut bad = audio(400, 999, None);
    bad[0] |= 0x10; // claims an extension block that is not there
    h.input(addr(4), bad);
    // A call with no more speakers than slots forwards everything, announces nothing.
    let mut h = H::new();
    speakers_call(&mut h, 3);
    let (sd, _, _) = talk.frames(&mut h, 20, &[(1, Some(40)), (2, Some(10)), (3, Some(127))]);
    assert_eq!(sd, vec![100, 200, 300]);
    assert!(active_speakers(&h).is_empty());
    // sd_audio_streams = 0: SD receivers hear every speaker.
    let mut h = H::with(RouterConfig { sd_audio_streams: 0, ..RouterConfig::default() });
    speakers_call(&mut h, 5);
    let (sd, _, _) = talk.frames(&mut h, 20, &levels);
    assert_eq!(sd, vec![100, 200, 300, 400, 500]);
}

/// The speakers lists (video SSRCs) the mixer at addr(9) was sent.
fn speakers_to_mixer(t: &[Transmit]) -> Vec<Vec<u32>> {
    t.iter()
        .filter(|t| t.destination == addr(9) && classify(&t.contents) == Kind::Rtcp)
        .flat_map(|t| rtcp::parse_compound(&t.contents).unwrap())
        .filter_map(|p| match p {
            RtcpPacket::App(a) => {
                Some(corecast_proto::session::speakers::parse(&a).unwrap().iter().map(|s| s.0).collect())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_mixer_is_told_who_speaks_loudest_first_only_when_it_changes() {
    let mut h = H::new();
    // Publishers 1..=4: audio pid*100, video pid*100+1.
    for pid in 1..=4u64 {
        h.join_av(addr(pid as u16), pid);
    }
    let mut talk = Talk { seq: 0 };
    let levels = [(1, Some(60)), (2, Some(20)), (3, Some(40)), (4, Some(100))];
    talk.frames(&mut h, 20, &levels);
    // No mixer yet: nothing to tell.
    let tok = h.token(call(1), 9, Role::Mixer);
    assert!(matches!(h.join_with(addr(9), tok, vec![(Ssrc(900), MediaKind::Video)]), SessionMessage::JoinAck { .. }));
    let mut sent = Vec::new();
    for _ in 0..30 {
        talk.frame(&mut h, &levels);
        sent.extend(speakers_to_mixer(&h.transmits));
        h.take();
    }
    assert_eq!(sent, vec![vec![201, 301, 101, 401]], "once, loudest first, as video SSRCs");
    // Speaker 4 starts talking loudest: a new list, with 4 first.
    let levels = [(1, Some(60)), (2, Some(20)), (3, Some(40)), (4, Some(5))];
    let mut sent = Vec::new();
    for _ in 0..30 {
        talk.frame(&mut h, &levels);
        sent.extend(speakers_to_mixer(&h.transmits));
        h.take();
    }
    assert_eq!(sent.last().unwrap()[0], 401);
    assert!(sent.len() <= 2, "{sent:?}");
    // Nobody but the router can send one: an APP from a participant is dropped, not forwarded.
    let forged =
        rtcp::write_compound(&[RtcpPacket::App(corecast_proto::session::speakers::app(Ssrc(100), &[Ssrc(101)]))])
            .unwrap();
    h.input(addr(1), forged);
    assert!(speakers_to_mixer(&h.take()).is_empty());
}
