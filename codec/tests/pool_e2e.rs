//! The SD path end to end, over real sockets: a router, the codec pool, four
//! publishers sending real AV1 test patterns of distinct colours, one SD
//! receiver and two HD receivers.
//!
//! - the SD receiver gets the composite (and no raw video), which dav1d
//!   decodes to 640x360 frames, at least 90% of the frames sent, each grid
//!   cell's mean colour matching its publisher's;
//! - the HD receivers get every publisher's packets byte for byte;
//! - when the SD receiver leaves, the pool leaves the call.
//!
//! The test plays the calls service: on the router's `MixerDemand` event it
//! hands the pool a mixer token signed with the development key.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{rtp_of, start_router};
use corecast_client::client::ssrcs_for;
use corecast_client::Client;
use corecast_codec::av1::Depacketizer;
use corecast_codec::compose::grid_cells;
use corecast_codec::pattern::{participant_colour, TestPattern};
use corecast_codec::pool::mixer_ssrc;
use corecast_codec::{CodecPool, Decoder, EncodedFrame, Encoder, EncoderConfig, MixRequest, PoolConfig, PoolEvent};
use corecast_core::Event;
use corecast_proto::demux::{classify, Kind};
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};
use corecast_proto::{SeqNo, Ssrc};

const FRAMES: usize = 60;
const FPS: u64 = 30;
const MIXER_PID: u64 = 900;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn token_for(call: CallId, pid: u64, role: Role) -> Vec<u8> {
    let claims = Claims { call_id: call, participant_id: ParticipantId(pid), role, expires_at_ms: now_ms() + 600_000 };
    token::sign(&token::dev_signing_key(), &claims).to_vec()
}

/// The RTP packets of one publisher's whole stream, frame by frame.
fn publisher_stream(index: usize, ssrc: Ssrc) -> Vec<Vec<Vec<u8>>> {
    let (w, h) = (320, 180);
    let mut pattern = TestPattern::new(w, h, participant_colour(index));
    let cfg = EncoderConfig { width: w, height: h, bitrate_kbps: 300, keyint: 30, ..Default::default() };
    let mut enc = Encoder::new(&cfg).unwrap();
    let mut units: Vec<EncodedFrame> = Vec::new();
    for i in 0..FRAMES {
        enc.send_frame(pattern.next_frame(), i as i64, false).unwrap();
        while let Some(u) = enc.poll_frame(true).unwrap() {
            units.push(u);
        }
    }
    units.extend(enc.finish().unwrap());
    assert_eq!(units.len(), FRAMES);
    let mut seq = SeqNo(1000 * index as u16);
    units.iter().enumerate().map(|(f, u)| rtp_of(ssrc, &mut seq, f as u32 * 3000, &u.data, 1100)).collect()
}

/// Collects every RTP packet arriving on `socket` until `stop`.
/// What `c` receives (opened from SRTP), until `stop`.
/// The value of one sample of a Prometheus text scrape (`name{labels}` exactly as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn collect(c: &Client, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    let (socket, mut opener) = (c.socket().try_clone().unwrap(), c.opener());
    std::thread::spawn(move || {
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = vec![0u8; 2048];
        let mut got = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                match opener.open(&buf[..n]) {
                    Some(p) if classify(p) == Kind::Rtp => got.push(p.to_vec()),
                    _ => {}
                }
            }
        }
        got
    })
}

fn wait_event(pool: &CodecPool, what: impl Fn(&PoolEvent) -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match pool.events().recv_timeout(left) {
            Ok(e) if what(&e) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

#[test]
#[allow(clippy::needless_range_loop)] // frame f of every publisher p: streams[p][f]
fn sd_receiver_gets_the_composite_hd_receivers_get_every_packet() {
    let server = start_router();
    let router = server.addresses()[0];
    let pool = Arc::new(CodecPool::start(PoolConfig::default()).unwrap());
    let admin = corecast_codec::admin::spawn("127.0.0.1:0".parse().unwrap(), pool.clone()).unwrap();
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let get = |path: &str| {
        let r = http.get(format!("http://{admin}{path}")).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(get("/healthz").0, 200);
    let (status, body) = get("/readyz");
    assert_eq!(status, 200, "{body}");
    let call = CallId(rand::random());

    // Streams are encoded before anything is measured.
    let pids: Vec<u64> = (1..=4).collect();
    let streams: Vec<_> = pids.iter().enumerate().map(|(i, &p)| publisher_stream(i, ssrcs_for(p).1)).collect();

    let publishers: Vec<Client> = pids
        .iter()
        .map(|&p| Client::join_dev(router, &token_for(call, p, Role::Publisher), p, Quality::Hd).unwrap())
        .collect();
    let hd: Vec<Client> = [11, 12]
        .iter()
        .map(|&p| Client::join_dev(router, &token_for(call, p, Role::Publisher), p, Quality::Hd).unwrap())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let hd_rx: Vec<_> = hd.iter().map(|c| collect(c, stop.clone())).collect();

    // The SD receiver's join creates mixer demand; the "calls service" answers it.
    let sd = Client::join_dev(router, &token_for(call, 20, Role::Publisher), 20, Quality::Sd).unwrap();
    let sd_rx = collect(&sd, stop.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut demanded = false;
    while !demanded && Instant::now() < deadline {
        if let Ok(e) = server.events().recv_timeout(Duration::from_millis(100)) {
            demanded = matches!(e.event, Event::MixerDemand { call: c, needed: true } if c == call);
        }
    }
    assert!(demanded, "an SD receiver creates mixer demand");
    let token = token_for(call, MIXER_PID, Role::Mixer);
    let key = corecast_proto::join_key::JoinSecret::dev().key_for(&token);
    pool.mix(MixRequest { call, router, token, key, participant: MIXER_PID });
    assert!(wait_event(&pool, |e| matches!(e, PoolEvent::Joined { .. }), Duration::from_secs(10)), "the pool joins");

    // Publishers send, paced, in a fixed order (the layout follows first arrival).
    let t0 = Instant::now();
    for f in 0..FRAMES {
        let at = t0 + Duration::from_millis(f as u64 * 1000 / FPS);
        if let Some(d) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        for (p, c) in publishers.iter().enumerate() {
            for pkt in &streams[p][f] {
                c.send_packet(pkt).unwrap();
            }
            if f == 0 {
                std::thread::sleep(Duration::from_millis(3));
            }
        }
    }
    // Let the last packets and composites arrive.
    let sent: usize = streams.iter().map(|s| s.iter().map(Vec::len).sum::<usize>()).sum();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let fwd = server.stats().iter().map(|w| w.router.tx_datagrams).sum::<u64>();
        if fwd >= 3 * sent as u64 {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);

    // HD receivers: every publisher's packets, byte for byte, and no composite.
    for h in hd_rx {
        let got = h.join().unwrap();
        let mut by_ssrc: HashMap<Ssrc, Vec<Vec<u8>>> = HashMap::new();
        for p in got {
            by_ssrc.entry(RtpHeader::parse(&p).unwrap().ssrc).or_default().push(p);
        }
        assert!(!by_ssrc.contains_key(&mixer_ssrc(MIXER_PID)), "HD receivers get no composite");
        for (i, &p) in pids.iter().enumerate() {
            let want: Vec<Vec<u8>> = streams[i].concat();
            let got = by_ssrc.remove(&ssrcs_for(p).1).unwrap_or_default();
            assert_eq!(got.len(), want.len(), "publisher {p}: packet count");
            assert!(got == want, "publisher {p}: packets differ");
        }
    }

    // SD receiver: only the composite; decode it and check every cell.
    let got = sd_rx.join().unwrap();
    let composite = mixer_ssrc(MIXER_PID);
    let raw = got.iter().filter(|p| RtpHeader::parse(p).unwrap().ssrc != composite).count();
    assert_eq!(raw, 0, "an SD receiver gets the composite instead of raw video");
    let last = got.last().expect("the SD receiver got the composite");
    let csrcs: Vec<Ssrc> = RtpHeader::parse(last).unwrap().csrcs(last).collect();
    assert_eq!(csrcs, pids.iter().map(|&p| ssrcs_for(p).1).collect::<Vec<_>>(), "sources are the CSRCs");
    let mut depack = Depacketizer::new();
    let mut dec = Decoder::new().unwrap();
    let mut pictures = Vec::new();
    for p in &got {
        let h = RtpHeader::parse(p).unwrap();
        depack.handle_packet(h.seq, h.timestamp, h.marker, h.payload(p));
        while let Some(tu) = depack.poll_frame() {
            if let Some(pic) = dec.decode(tu.data, 0).unwrap() {
                pictures.push(pic);
            }
        }
    }
    assert!(pictures.len() * 10 >= FRAMES * 9, "{} composite frames decoded of {FRAMES} sent", pictures.len());
    let cells = grid_cells(4, 640, 360);
    // From the 10th composite on every source is shown.
    for (n, pic) in pictures.iter().enumerate().skip(10) {
        assert_eq!((pic.width(), pic.height()), (640, 360));
        let v = pic.view();
        for (i, cell) in cells.iter().enumerate() {
            let c = participant_colour(i);
            let (y, u, vv) = v.mean_yuv(cell.x + 16, cell.y + 16, cell.w - 32, cell.h - 32);
            let d = (y - f64::from(c.0)).abs().max((u - f64::from(c.1)).abs()).max((vv - f64::from(c.2)).abs());
            assert!(d < 16.0, "composite {n}, cell {i}: got ({y:.0},{u:.0},{vv:.0}) want {c:?}");
        }
    }

    // The pool's scrape: one composite, every source packet the router forwarded to it
    // handled, every source frame decoded, at least the composites the receiver decoded.
    let (status, text) = get("/metrics");
    assert_eq!(status, 200);
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} missing: {text}"));
    assert_eq!(value("corecast_codec_composites{worker=\"0\"}"), 1.0);
    assert_eq!(value("corecast_codec_calls_mixed_total{worker=\"0\"}"), 1.0);
    assert_eq!(value("corecast_codec_rtp_in_total{worker=\"0\"}"), sent as f64, "{text}");
    assert_eq!(value("corecast_codec_frames_decoded_total{worker=\"0\"}"), (pids.len() * FRAMES) as f64, "{text}");
    let encoded = value("corecast_codec_frames_encoded_total{worker=\"0\"}");
    assert!(encoded >= pictures.len() as f64, "{encoded} encoded, {} decoded by the receiver", pictures.len());
    assert!(value("corecast_codec_rtp_out_total{worker=\"0\"}") >= got.len() as f64, "{text}");
    assert!(value("corecast_codec_decode_seconds_total{worker=\"0\"}") > 0.0, "{text}");
    assert!(value("corecast_codec_encode_seconds_total{worker=\"0\"}") > 0.0, "{text}");
    assert_eq!(value("corecast_codec_decode_errors_total{worker=\"0\"}"), 0.0, "{text}");

    // The SD receiver leaves: the router lets the mixer go, and the pool leaves.
    sd.leave().unwrap();
    assert!(wait_event(&pool, |e| matches!(e, PoolEvent::Left { .. }), Duration::from_secs(10)), "the pool leaves");
    // The call's counters outlive it; no composite is made any more.
    let (_, text) = get("/metrics");
    assert_eq!(sample(&text, "corecast_codec_composites{worker=\"0\"}"), Some(0.0), "{text}");
    let after = sample(&text, "corecast_codec_frames_encoded_total{worker=\"0\"}").unwrap_or_default();
    assert!(after >= encoded, "{after} < {encoded}: counters went back");
    let snap = server.snapshot();
    let mixers = snap.iter().flat_map(|c| &c.participants).filter(|p| p.role == Role::Mixer).count();
    assert_eq!(mixers, 0, "no mixer left in the call");
    pool.shutdown();
    drop(publishers);
    drop(hd);
    server.stop();
}
