//! The audio mixer on synthetic time: Opus-encoded sine tones in (as the
//! router forwards speakers' audio), one mixed Opus stream out, decoded and
//! measured per frequency. No sockets, no sleeping: `now` is a base instant
//! plus simulated milliseconds.

use std::time::{Duration, Instant};

use corecast_codec::audio_mix::{FRAME, SAMPLE_RATE};
use corecast_codec::{AudioMixConfig, AudioMixer, Mixer, MixerConfig, MixerOutput};
use corecast_proto::rtp::{RtpHeader, RtpPacket};
use corecast_proto::{MediaTime, Pt, SeqNo, Ssrc};

const MIX_SSRC: Ssrc = Ssrc(0x6100_0009);

/// A speaker: a sine tone, Opus-encoded in 20 ms packets.
struct Tone {
    ssrc: Ssrc,
    freq: f64,
    amp: f64,
    enc: opus::Encoder,
    n: u64,
    seq: u16,
}

impl Tone {
    fn new(ssrc: u32, freq: f64, amp: f64) -> Tone {
        let mut enc = opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip).unwrap();
        enc.set_bitrate(opus::Bitrate::Bits(48_000)).unwrap();
        Tone { ssrc: Ssrc(ssrc), freq, amp, enc, n: 0, seq: 1000 + ssrc as u16 * 7 }
    }

    /// The next 20 ms packet.
    fn packet(&mut self) -> Vec<u8> {
        let pcm: Vec<i16> = (0..FRAME as u64)
            .map(|i| {
                let t = (self.n + i) as f64 / f64::from(SAMPLE_RATE);
                (self.amp * (2.0 * std::f64::consts::PI * self.freq * t).sin()) as i16
            })
            .collect();
        let mut buf = vec![0u8; 1500];
        let len = self.enc.encode(&pcm, &mut buf).unwrap();
        buf.truncate(len);
        let p = RtpPacket {
            pt: Pt(111),
            seq: SeqNo(self.seq),
            timestamp: MediaTime(self.n as u32),
            ssrc: self.ssrc,
            extensions: vec![(1, vec![0x20])],
            payload: buf,
            ..Default::default()
        };
        self.n += FRAME as u64;
        self.seq = self.seq.wrapping_add(1);
        p.to_vec().unwrap()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn mixer() -> AudioMixer {
    AudioMixer::new(AudioMixConfig { ssrc: MIX_SSRC, ..AudioMixConfig::default() }).unwrap()
}

/// Delivers `arrivals` (time since `t0`, packet) and runs the mixer's timers
/// until `until`; returns the mixed stream's packets.
fn run(m: &mut AudioMixer, t0: Instant, mut arrivals: Vec<(Duration, Vec<u8>)>, until: Duration) -> Vec<Vec<u8>> {
    arrivals.sort_by_key(|a| a.0);
    let mut arrivals = arrivals.into_iter().peekable();
    let mut out = Vec::new();
    loop {
        let arrival = arrivals.peek().map(|a| t0 + a.0);
        let timeout = m.poll_timeout();
        let next = match (arrival, timeout) {
            (Some(a), Some(t)) => a.min(t),
            (a, t) => match a.or(t) {
                Some(x) => x,
                None => break,
            },
        };
        if next > t0 + until {
            break;
        }
        if arrival == Some(next) {
            let (_, p) = arrivals.next().unwrap();
            let h = RtpHeader::parse(&p).unwrap();
            m.handle_rtp(next, &h, &p);
        } else {
            m.handle_timeout(next);
        }
        while let Some(p) = m.poll_rtp() {
            out.push(p);
        }
    }
    out
}

/// Every source sends one packet per 20 ms from `t0`, `jitter(k)` late.
fn schedule(tones: &mut [Tone], frames: u64, jitter: impl Fn(usize, u64) -> Option<u64>) -> Vec<(Duration, Vec<u8>)> {
    let mut v = Vec::new();
    for k in 0..frames {
        for (i, t) in tones.iter_mut().enumerate() {
            let p = t.packet();
            if let Some(late) = jitter(i, k) {
                v.push((ms(20 * k + late), p));
            }
        }
    }
    v
}

/// Decodes the mixed stream (in order, as sent).
fn decode(packets: &[Vec<u8>]) -> Vec<i16> {
    let mut dec = opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).unwrap();
    let mut pcm = Vec::new();
    let mut buf = vec![0i16; 5760];
    for p in packets {
        let h = RtpHeader::parse(p).unwrap();
        let n = dec.decode(h.payload(p), &mut buf, false).unwrap();
        pcm.extend_from_slice(&buf[..n]);
    }
    pcm
}

/// Amplitude of the `freq` component of `pcm` (Goertzel, a Hann window).
fn amplitude(pcm: &[i16], freq: f64) -> f64 {
    let n = pcm.len() as f64;
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(SAMPLE_RATE);
    let (mut re, mut im) = (0.0, 0.0);
    for (i, &x) in pcm.iter().enumerate() {
        let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n).cos();
        re += f64::from(x) * hann * (w * i as f64).cos();
        im -= f64::from(x) * hann * (w * i as f64).sin();
    }
    // The Hann window halves a tone's sum.
    4.0 * (re * re + im * im).sqrt() / n
}

/// The packets' headers are one stream: the mixer's SSRC, Opus, sequence
/// numbers and timestamps advancing by one 20 ms frame.
fn check_one_stream(packets: &[Vec<u8>]) {
    for w in packets.windows(2) {
        let (a, b) = (RtpPacket::parse(&w[0]).unwrap(), RtpPacket::parse(&w[1]).unwrap());
        assert_eq!((a.ssrc, a.pt), (MIX_SSRC, Pt(111)));
        assert_eq!(b.seq, a.seq.next());
        assert_eq!(b.timestamp.0.wrapping_sub(a.timestamp.0), FRAME as u32, "one frame apart");
        assert!(!b.marker, "no talkspurt starts while everyone talks");
    }
}

#[test]
fn two_tones_are_mixed_into_one_stream() {
    let t0 = Instant::now();
    let mut tones = [Tone::new(1, 440.0, 6000.0), Tone::new(2, 1000.0, 6000.0)];
    // The second speaker's packets arrive 0..15 ms late (network jitter).
    let arrivals = schedule(&mut tones, 50, |i, k| Some(if i == 1 { (k * 7) % 16 } else { 0 }));
    let mut m = mixer();
    let out = run(&mut m, t0, arrivals, ms(1100));
    assert!((48..=51).contains(&out.len()), "one packet per 20 ms: {}", out.len());
    check_one_stream(&out);
    let first = RtpPacket::parse(&out[0]).unwrap();
    assert!(first.marker, "the first packet starts a talkspurt");
    let last = RtpPacket::parse(&out[out.len() - 2]).unwrap();
    let mut csrcs = last.csrcs.clone();
    csrcs.sort();
    assert_eq!(csrcs, vec![Ssrc(1), Ssrc(2)], "CSRCs name the mixed speakers");
    assert_eq!(last.extensions.len(), 1, "the mix's audio level");
    assert!(last.extensions[0].1[0] & 0x7f < 40, "a loud mix: {:?}", last.extensions);

    let pcm = decode(&out);
    let steady = &pcm[10 * FRAME..45 * FRAME];
    let (a440, a1000, a2500) = (amplitude(steady, 440.0), amplitude(steady, 1000.0), amplitude(steady, 2500.0));
    assert!(a440 > 3000.0 && a1000 > 3000.0, "both tones: {a440:.0} {a1000:.0}");
    assert!(a2500 < 300.0, "nothing else: {a2500:.0}");
    let s = m.stats();
    assert_eq!((s.rtp_in, s.decoded, s.late, s.concealed, s.decode_errors), (100, 100, 0, 0, 0), "{s:?}");
    assert_eq!(s.frames_out, out.len() as u64);
}

#[test]
fn only_the_loudest_three_are_mixed() {
    let t0 = Instant::now();
    let mut tones = [
        Tone::new(1, 400.0, 400.0), // the quietest
        Tone::new(2, 700.0, 8000.0),
        Tone::new(3, 1100.0, 4000.0),
        Tone::new(4, 1700.0, 2000.0),
    ];
    let arrivals = schedule(&mut tones, 40, |_, _| Some(0));
    let mut m = mixer();
    let out = run(&mut m, t0, arrivals, ms(900));
    check_one_stream(&out);
    let last = RtpPacket::parse(&out[out.len() - 2]).unwrap();
    assert_eq!(last.csrcs, vec![Ssrc(2), Ssrc(3), Ssrc(4)], "the three loudest, loudest first");
    assert_eq!(m.mixed(), &[Ssrc(2), Ssrc(3), Ssrc(4)]);
    let pcm = decode(&out);
    let steady = &pcm[10 * FRAME..35 * FRAME];
    for (f, want) in [(700.0, 8000.0), (1100.0, 4000.0), (1700.0, 2000.0)] {
        let a = amplitude(steady, f);
        assert!(a > want * 0.5, "{f} Hz: {a:.0}");
    }
    let quiet = amplitude(steady, 400.0);
    assert!(quiet < 100.0, "the fourth speaker is not mixed: {quiet:.0}");
    assert_eq!(m.sources().len(), 4, "every source is decoded, once");
}

#[test]
fn lost_late_and_reordered_packets_keep_the_stream_going() {
    let t0 = Instant::now();
    let mut tones = [Tone::new(1, 440.0, 6000.0)];
    let arrivals = schedule(&mut tones, 50, |_, k| match k {
        10 => None,      // lost
        20 => Some(100), // 100 ms late: after its turn
        30 => Some(25),  // swapped with 31, still in time
        _ => Some(0),
    });
    let mut m = mixer();
    let out = run(&mut m, t0, arrivals, ms(1100));
    check_one_stream(&out);
    assert!(out.len() >= 48, "{}", out.len());
    let s = m.stats();
    assert_eq!(s.late, 1, "{s:?}");
    assert_eq!(s.decoded, 48, "{s:?}");
    assert_eq!(s.fec_recovered + s.concealed, 2, "the two missing frames are filled: {s:?}");
    let pcm = decode(&out);
    let a = amplitude(&pcm[5 * FRAME..45 * FRAME], 440.0);
    assert!(a > 4000.0, "the tone carries on through the gaps: {a:.0}");
}

#[test]
fn malformed_opus_is_counted_and_concealed() {
    let t0 = Instant::now();
    let mut tones = [Tone::new(1, 440.0, 6000.0)];
    let mut arrivals = schedule(&mut tones, 30, |_, _| Some(0));
    let bad = |p: &[u8], payload: &[u8]| {
        let mut q = RtpPacket::parse(p).unwrap();
        q.payload = payload.to_vec();
        q.to_vec().unwrap()
    };
    // Code 3 with a frame count of 0 (RFC 6716 §3.2.5: invalid), and an empty payload.
    arrivals[5].1 = bad(&arrivals[5].1, &[0x03, 0x00]);
    arrivals[8].1 = bad(&arrivals[8].1, &[]);
    let mut m = mixer();
    let out = run(&mut m, t0, arrivals, ms(700));
    check_one_stream(&out);
    let s = m.stats();
    assert_eq!(s.decode_errors, 2, "{s:?}");
    assert_eq!(s.decoded, 28, "{s:?}");
    assert_eq!(s.concealed + s.fec_recovered, 2, "both filled in: {s:?}");
}

#[test]
fn garbage_never_panics() {
    let t0 = Instant::now();
    let mut m = mixer();
    let mut x: u32 = 0x1234_5678;
    let mut arrivals = Vec::new();
    for k in 0..200u64 {
        let len = (k % 40) as usize;
        let payload: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let seq = if k % 17 == 0 { x as u16 } else { k as u16 };
        let p =
            RtpPacket { pt: Pt(111), seq: SeqNo(seq), ssrc: Ssrc(1 + (k % 3) as u32), payload, ..Default::default() };
        arrivals.push((ms(k * 5), p.to_vec().unwrap()));
    }
    let out = run(&mut m, t0, arrivals, ms(2000));
    let s = m.stats();
    assert_eq!(s.rtp_in, 200);
    assert_eq!(s.frames_out, out.len() as u64);
}

#[test]
fn a_pause_moves_the_timestamp_on_and_marks_the_talkspurt() {
    let t0 = Instant::now();
    let mut tone = Tone::new(1, 440.0, 6000.0);
    let mut arrivals = Vec::new();
    for k in 0..10 {
        arrivals.push((ms(20 * k), tone.packet()));
    }
    // One second without packets (DTX or a muted microphone), then more.
    for k in 60..70 {
        arrivals.push((ms(20 * k), tone.packet()));
    }
    let mut m = mixer();
    let out: Vec<RtpPacket> =
        run(&mut m, t0, arrivals, ms(1600)).iter().map(|p| RtpPacket::parse(p).unwrap()).collect();
    let resumed = out.iter().position(|p| p.marker && p.seq != out[0].seq).expect("a second talkspurt");
    assert!((10..=11).contains(&resumed), "{resumed}");
    let (a, b) = (&out[resumed - 1], &out[resumed]);
    assert_eq!(b.seq, a.seq.next(), "sequence numbers have no gap");
    let gap = b.timestamp.0.wrapping_sub(a.timestamp.0);
    assert!(gap % FRAME as u32 == 0 && (45_000..=52_000).contains(&gap), "about one second of timestamps: {gap}");
    assert_eq!(m.stats().underruns, 2, "after each talkspurt");
}

#[test]
fn a_silent_source_is_dropped_and_the_clock_stops() {
    let t0 = Instant::now();
    let mut tone = Tone::new(1, 440.0, 6000.0);
    let arrivals = (0..5).map(|k| (ms(20 * k), tone.packet())).collect();
    let mut m = AudioMixer::new(AudioMixConfig {
        ssrc: MIX_SSRC,
        source_timeout: Duration::from_secs(1),
        ..AudioMixConfig::default()
    })
    .unwrap();
    run(&mut m, t0, arrivals, ms(3000));
    assert!(m.sources().is_empty());
    assert_eq!(m.poll_timeout(), None, "no source, no timer");
}

#[test]
fn the_call_mixer_sends_audio_to_its_audio_mixer() {
    let t0 = Instant::now();
    let cfg =
        MixerConfig { audio: AudioMixConfig { ssrc: MIX_SSRC, ..AudioMixConfig::default() }, ..MixerConfig::default() };
    let mut m = Mixer::new(cfg).unwrap();
    let mut tone = Tone::new(1, 440.0, 6000.0);
    let mut audio_out = 0u64;
    for k in 0..25u64 {
        let now = t0 + ms(20 * k);
        m.handle_rtp(now, &tone.packet());
        if m.poll_timeout().is_some_and(|t| t <= now) {
            m.handle_timeout(now);
        }
        while let Some(o) = m.poll_output() {
            if let MixerOutput::Rtp(p) = o {
                assert_eq!(RtpHeader::parse(&p).unwrap().ssrc, MIX_SSRC);
                audio_out += 1;
            }
        }
    }
    assert!(m.sources().is_empty(), "audio is no video source");
    assert!(audio_out >= 20, "{audio_out}");
    assert_eq!((m.stats().audio.rtp_in, m.stats().audio.frames_out), (25, audio_out));
    assert_eq!(m.stats().rtp_in, 0, "nothing reached the video path");
}
