//! The mixer with real AV1 sources: four coloured test patterns in, one
//! 640x360 composite out, decoded and checked cell by cell.

mod common;

use std::time::{Duration, Instant};

use common::rtp_of;
use corecast_codec::av1::Depacketizer;
use corecast_codec::compose::grid_cells;
use corecast_codec::pattern::{participant_colour, TestPattern};
use corecast_codec::{Decoder, EncodedFrame, Encoder, EncoderConfig, Mixer, MixerConfig, MixerEvent, MixerOutput};
use corecast_proto::rtcp::{self, RtcpPacket};
use corecast_proto::rtp::{RtpHeader, RtpPacket};
use corecast_proto::{Pt, SeqNo, Ssrc};

const FRAMES: usize = 12;

fn encode_source(colour: (u8, u8, u8), frames: usize) -> Vec<EncodedFrame> {
    let (w, h) = (160, 90);
    let mut p = TestPattern::new(w, h, colour);
    let mut enc =
        Encoder::new(&EncoderConfig { width: w, height: h, bitrate_kbps: 200, ..Default::default() }).unwrap();
    let mut units = Vec::new();
    for i in 0..frames {
        enc.send_frame(p.next_frame(), i as i64, false).unwrap();
        while let Some(u) = enc.poll_frame(true).unwrap() {
            units.push(u);
        }
    }
    units.extend(enc.finish().unwrap());
    units
}

struct Receiver {
    depack: Depacketizer,
    decoder: Decoder,
    pictures: Vec<(bool, corecast_codec::Picture)>,
}

impl Receiver {
    fn new() -> Receiver {
        Receiver { depack: Depacketizer::new(), decoder: Decoder::new().unwrap(), pictures: Vec::new() }
    }
    fn handle(&mut self, pkt: &[u8]) {
        let h = RtpHeader::parse(pkt).unwrap();
        self.depack.handle_packet(h.seq, h.timestamp, h.marker, h.payload(pkt));
        while let Some(tu) = self.depack.poll_frame() {
            let key = tu.keyframe;
            if let Some(p) = self.decoder.decode(tu.data, 0).unwrap() {
                self.pictures.push((key, p));
            }
        }
    }
}

#[test]
#[allow(clippy::needless_range_loop)] // frame f of every source s: units[s][f]
fn four_sources_composite_decodes_with_cell_colours() {
    let ssrcs: Vec<Ssrc> = (0..4).map(|i| Ssrc(1000 + i)).collect();
    let colours: Vec<_> = (0..4).map(participant_colour).collect();
    let units: Vec<Vec<EncodedFrame>> = colours.iter().map(|&c| encode_source(c, FRAMES)).collect();

    let cfg = MixerConfig::default();
    let mixer_ssrc = cfg.ssrc;
    let mut mixer = Mixer::new(cfg).unwrap();
    let mut rx = Receiver::new();
    let mut seqs = [SeqNo(100); 4];
    let t0 = Instant::now();
    let mut key_requests = Vec::new();
    let mut events = Vec::new();
    let mut forced_at = None;
    let mut last_csrcs = Vec::new();
    for f in 0..FRAMES {
        let now = t0 + Duration::from_millis(33 * f as u64);
        for s in 0..4 {
            // Sources are a few ms apart, as on a real network.
            let at = now + Duration::from_millis(2 * s as u64);
            for pkt in rtp_of(ssrcs[s], &mut seqs[s], f as u32 * 3000, &units[s][f].data, 1000) {
                mixer.handle_rtp(at, &pkt);
            }
        }
        if f == 8 {
            // An SD receiver asks for a keyframe of the composite.
            let pli =
                rtcp::write_compound(&[RtcpPacket::Pli(rtcp::Pli { sender_ssrc: Ssrc(7), media_ssrc: mixer_ssrc })])
                    .unwrap();
            mixer.handle_rtcp(now, &pli);
            forced_at = Some(rx.pictures.len());
        }
        mixer.handle_timeout(now + Duration::from_millis(20));
        while let Some(o) = mixer.poll_output() {
            match o {
                MixerOutput::Rtp(p) => {
                    let h = RtpHeader::parse(&p).unwrap();
                    assert_eq!(h.ssrc, mixer_ssrc);
                    assert!(p.len() <= 1200 + 12 + 4 * 4);
                    last_csrcs = h.csrcs(&p).collect::<Vec<_>>();
                    rx.handle(&p);
                }
                MixerOutput::KeyframeRequest(s) => key_requests.push(s),
                MixerOutput::Event(e) => events.push(e),
            }
        }
    }
    // Sources are contributing sources (CSRC) of the composite.
    assert_eq!(last_csrcs, ssrcs);
    // Each source was asked for a keyframe when the mixer started decoding it.
    key_requests.sort();
    assert_eq!(key_requests, ssrcs);
    assert!(events.contains(&MixerEvent::SourceAdded(ssrcs[3])));
    assert!(events.contains(&MixerEvent::KeyframeForced));
    let stats = mixer.stats();
    assert_eq!(stats.decoded, (4 * FRAMES) as u64);
    assert_eq!(stats.keyframes_forced, 1);

    // The encoder holds one picture, so all but the last composite are out.
    assert!(rx.pictures.len() >= FRAMES - 2, "{} composites decoded", rx.pictures.len());
    assert!(rx.pictures[0].0, "first composite is a keyframe");
    let forced_at = forced_at.unwrap();
    // The encoder holds one picture and restarts for a forced key frame: the
    // key frame is among the next three composites (≈100 ms at 30 fps).
    assert!(rx.pictures[forced_at..].iter().take(3).any(|(k, _)| *k), "PLI forced a keyframe");
    assert_eq!(rx.pictures.iter().filter(|(k, _)| *k).count(), 2);

    let cells = grid_cells(4, 640, 360);
    // The first composites show the sources known so far; from the third on, all four.
    for (n, (_, pic)) in rx.pictures.iter().enumerate().skip(2) {
        assert_eq!((pic.width(), pic.height()), (640, 360));
        let v = pic.view();
        for (cell, c) in cells.iter().zip(&colours) {
            // Inner part of the cell, away from edges.
            let (y, u, vv) = v.mean_yuv(cell.x + 16, cell.y + 16, cell.w - 32, cell.h - 32);
            let d = (y - f64::from(c.0)).abs().max((u - f64::from(c.1)).abs()).max((vv - f64::from(c.2)).abs());
            // The moving square is 1/64 of the cell area in luma.
            assert!(d < 16.0, "composite {n}, cell {cell:?}: got ({y:.0},{u:.0},{vv:.0}) want {c:?}");
        }
    }
}

/// A video packet (AV1's payload type; 0..=23 are audio) with a junk
/// payload from source `i`: enough to register the source, nothing decodes.
fn send_junk(mixer: &mut Mixer, at: Instant, i: u32, seq: u16) {
    let p = RtpPacket { pt: Pt(45), ssrc: Ssrc(i), seq: SeqNo(seq), payload: vec![0x10, 0x00], ..Default::default() };
    mixer.handle_rtp(at, &p.to_vec().unwrap());
}

#[test]
fn layout_keeps_nine_active_sources_and_does_not_flicker() {
    let mut mixer = Mixer::new(MixerConfig::default()).unwrap();
    let t0 = Instant::now();
    let send = |mixer: &mut Mixer, i: u32, seq: u16, at: Duration| send_junk(mixer, t0 + at, i, seq);
    for i in 0..12u32 {
        send(&mut mixer, i, 1, Duration::from_millis(u64::from(i)));
    }
    assert_eq!(mixer.sources().len(), 12);
    // All twelve active: the first nine to join, and every packet leaves it so.
    assert_eq!(mixer.layout(), (0..9).map(Ssrc).collect::<Vec<_>>());
    for round in 0..3u16 {
        for i in 0..12u32 {
            send(&mut mixer, i, 2 + round, Duration::from_millis(100 + 33 * u64::from(round) + u64::from(i)));
            assert_eq!(mixer.layout(), (0..9).map(Ssrc).collect::<Vec<_>>());
        }
    }
    // Sources 0, 1 and 2 stop sending: after the activity window the others take their cells.
    for i in 3..12u32 {
        send(&mut mixer, i, 9, Duration::from_secs(3) + Duration::from_millis(u64::from(i)));
    }
    assert_eq!(mixer.layout(), (3..12).map(Ssrc).collect::<Vec<_>>());
    // Source 0 sends again: it is back, in its join position; the last joined gives way.
    send(&mut mixer, 0, 10, Duration::from_millis(3100));
    let layout = mixer.layout();
    assert_eq!(layout[0], Ssrc(0));
    assert!(!layout.contains(&Ssrc(11)));
    // Silent sources time out.
    mixer.handle_timeout(t0 + Duration::from_secs(60));
    assert!(mixer.sources().is_empty());
}

#[test]
fn with_more_than_nine_sources_the_loudest_speakers_are_shown() {
    use corecast_proto::rtcp::{write_compound, App, RtcpPacket};
    use corecast_proto::session::speakers;
    let mut mixer = Mixer::new(MixerConfig::default()).unwrap();
    let t0 = Instant::now();
    let send = |mixer: &mut Mixer, i: u32, seq: u16, at: Duration| send_junk(mixer, t0 + at, i, seq);
    for i in 0..12u32 {
        send(&mut mixer, i, 1, Duration::from_millis(u64::from(i)));
    }
    assert_eq!(mixer.layout(), (0..9).map(Ssrc).collect::<Vec<_>>());
    // The router says 11, 10 and 9 speak (loudest first) and names someone who
    // is not a source: those three are shown, then the first active ones to
    // join, all in join order.
    let spkr = |list: &[u32]| {
        let ssrcs: Vec<Ssrc> = list.iter().map(|&s| Ssrc(s)).collect();
        write_compound(&[RtcpPacket::App(speakers::app(Ssrc(0x4343_5254), &ssrcs))]).unwrap()
    };
    mixer.handle_rtcp(t0 + Duration::from_millis(20), &spkr(&[11, 10, 77, 9]));
    let with_speakers = [0, 1, 2, 3, 4, 5, 9, 10, 11].map(Ssrc).to_vec();
    assert_eq!(mixer.layout(), with_speakers);
    // Video alone does not push a speaker out, even after the speaker's own video stopped.
    for i in 0..9u32 {
        send(&mut mixer, i, 2, Duration::from_secs(5) + Duration::from_millis(u64::from(i)));
    }
    assert_eq!(mixer.layout(), with_speakers);
    // An APP packet that is not a speakers list changes nothing.
    let junk = App { subtype: 1, name: *b"SPKR", data: vec![0, 0, 0, 5], ..Default::default() };
    let junk = write_compound(&[RtcpPacket::App(junk)]).unwrap();
    mixer.handle_rtcp(t0 + Duration::from_millis(80), &junk);
    assert_eq!(mixer.layout(), with_speakers);
    // With the list emptied, activity decides again: 9, 10 and 11 are idle now.
    mixer.handle_rtcp(t0 + Duration::from_millis(90), &spkr(&[]));
    assert_eq!(mixer.layout(), (0..9).map(Ssrc).collect::<Vec<_>>());
}

#[test]
fn sources_not_shown_are_not_decoded_until_shown_again_from_a_keyframe() {
    use corecast_proto::rtcp::{write_compound, RtcpPacket};
    use corecast_proto::session::speakers;
    let units = encode_source(participant_colour(0), 6);
    assert!(units[0].keyframe && !units[1].keyframe);
    let mut mixer = Mixer::new(MixerConfig::default()).unwrap();
    let t0 = Instant::now();
    let mut seqs = [SeqNo(1); 10];
    let mut requests = Vec::new();
    let mut feed = |mixer: &mut Mixer, s: usize, unit: usize, frame: u32| -> Vec<u32> {
        let at = t0 + Duration::from_millis(33 * u64::from(frame) + s as u64);
        for pkt in rtp_of(Ssrc(s as u32), &mut seqs[s], frame * 3000, &units[unit].data, 1000) {
            mixer.handle_rtp(at, &pkt);
        }
        let mut asked = Vec::new();
        while let Some(o) = mixer.poll_output() {
            if let MixerOutput::KeyframeRequest(ssrc) = o {
                asked.push(ssrc.0);
            }
        }
        asked
    };
    // Ten sources send the same stream; the tenth to join is not shown.
    for f in 0..6u32 {
        for s in 0..10 {
            requests.extend(feed(&mut mixer, s, f as usize, f));
        }
    }
    assert_eq!(mixer.layout(), (0..9).map(Ssrc).collect::<Vec<_>>());
    let st = mixer.stats();
    assert_eq!(st.decoded, 9 * 6, "only the shown sources are decoded");
    assert_eq!(st.units_skipped, 6);
    assert!(!requests.contains(&9), "no keyframe request for a source not shown: {requests:?}");
    // The router says source 9 speaks: it is shown (source 8 gives way) and
    // asks for a keyframe at its next packet; until it comes nothing decodes.
    let spkr = write_compound(&[RtcpPacket::App(speakers::app(Ssrc(1), &[Ssrc(9)]))]).unwrap();
    mixer.handle_rtcp(t0 + Duration::from_millis(200), &spkr);
    assert!(mixer.layout().contains(&Ssrc(9)) && !mixer.layout().contains(&Ssrc(8)));
    let before = mixer.stats();
    requests.extend(feed(&mut mixer, 9, 1, 6)); // a delta frame: dropped while waiting for the keyframe
    assert!(requests.contains(&9));
    assert_eq!(mixer.stats().decoded, before.decoded);
    requests.extend(feed(&mut mixer, 9, 0, 7)); // the keyframe
    assert_eq!(mixer.stats().decoded, before.decoded + 1);
    // Source 8, no longer shown, is skipped.
    requests.extend(feed(&mut mixer, 8, 1, 7));
    assert_eq!(mixer.stats().decoded, before.decoded + 1);
    assert_eq!(mixer.stats().units_skipped, before.units_skipped + 1);
}
