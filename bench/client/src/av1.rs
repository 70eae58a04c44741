//! Real AV1 media for the client: a moving test pattern encoded live with
//! SVT-AV1 (a colour per participant; keyframes on PLI/FIR), or the frames
//! of an IVF file; and, on the receiving side, every AV1 stream saved as an
//! IVF file of its own (`ssrc-XXXXXXXX.ivf`), for `dav1d -i FILE` or ffplay.
//!
//! Packets follow the AOM AV1 RTP payload format ([`corecast_codec::av1`]),
//! payload type 45, 90 kHz timestamps.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use corecast_codec::av1::{Depacketizer, Packetizer};
use corecast_codec::pattern::{participant_colour, TestPattern};
use corecast_codec::{Encoder, EncoderConfig};
use corecast_proto::demux::{classify, Kind};
use corecast_proto::join_key::JoinKey;
use corecast_proto::rtcp::{self, RtcpPacket};
use corecast_proto::rtp::{RtpHeader, RtpPacket};
use corecast_proto::session::SessionMessage;
use corecast_proto::{MediaTime, Pt, SeqNo, Ssrc};

use crate::client::{Client, SendReport};
use corecast_proto::srtp::native::Opener;

/// Payload type of AV1 video.
pub const AV1_PT: Pt = Pt(45);

/// Where the AV1 frames come from.
#[derive(Debug)]
pub enum Av1Source {
    /// A moving test pattern, encoded live.
    Pattern {
        /// The pattern.
        pattern: TestPattern,
        /// Its encoder.
        encoder: Box<Encoder>,
        /// Pictures sent so far.
        frames: i64,
    },
    /// Temporal units read from an IVF file, looped.
    Ivf {
        /// The units.
        units: Vec<Vec<u8>>,
        /// Next one.
        next: usize,
    },
}

impl Av1Source {
    /// A test pattern of `width`x`height` in participant `index`'s colour.
    pub fn pattern(
        width: usize,
        height: usize,
        fps: u32,
        index: usize,
    ) -> Result<Av1Source, corecast_codec::CodecError> {
        let kbps = ((width * height) as u64 * u64::from(fps) / 1500).clamp(100, 4000) as u32;
        let cfg = EncoderConfig { width, height, fps, bitrate_kbps: kbps, keyint: fps * 4, ..Default::default() };
        Ok(Av1Source::Pattern {
            pattern: TestPattern::new(width, height, participant_colour(index)),
            encoder: Box::new(Encoder::new(&cfg)?),
            frames: 0,
        })
    }

    /// The frames of an IVF file.
    pub fn ivf(path: &Path) -> io::Result<Av1Source> {
        let units = read_ivf(path)?;
        if units.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "IVF file has no frames"));
        }
        Ok(Av1Source::Ivf { units, next: 0 })
    }

    /// The next temporal unit (`key`: make it a keyframe, if the source can).
    pub fn next_unit(&mut self, key: bool) -> Option<Vec<u8>> {
        match self {
            Av1Source::Pattern { pattern, encoder, frames } => {
                encoder.send_frame(pattern.next_frame(), *frames, key).ok()?;
                *frames += 1;
                // The encoder holds one picture: the unit of the previous one comes out now.
                encoder.poll_frame(true).ok().flatten().map(|f| f.data)
            }
            Av1Source::Ivf { units, next } => {
                let u = units[*next % units.len()].clone();
                *next += 1;
                Some(u)
            }
        }
    }
}

impl Client {
    /// Sends AV1 video from `source` at `fps` for `duration` (paced; frames
    /// split into packets of at most 1200 bytes). A keyframe is made when
    /// `keyframe_wanted` is set (by [`Client::start_recording_av1`] on a
    /// PLI/FIR for this client's video SSRC).
    pub fn send_av1(
        &self,
        source: &mut Av1Source,
        fps: u32,
        duration: Duration,
        keyframe_wanted: &AtomicBool,
    ) -> SendReport {
        let mut rep = SendReport::default();
        let Ok(pk) = Packetizer::new(1200) else { return rep };
        let every = Duration::from_secs(1) / fps.max(1);
        let start = Instant::now();
        let mut seq = SeqNo(rand::random());
        let mut payloads = Vec::new();
        let ssrc = self.ssrcs().1;
        let mut f = 0u32;
        while start.elapsed() < duration {
            let key = keyframe_wanted.swap(false, Ordering::Relaxed);
            if let Some(tu) = source.next_unit(key) {
                payloads.clear();
                let n = pk.packetize(&tu, &mut payloads).unwrap_or(0);
                let ts = MediaTime(f.wrapping_mul(90_000 / fps.max(1)));
                for (i, payload) in payloads.drain(..).enumerate() {
                    let p = RtpPacket {
                        marker: i + 1 == n,
                        pt: AV1_PT,
                        seq,
                        timestamp: ts,
                        ssrc,
                        payload,
                        ..Default::default()
                    };
                    seq = seq.next();
                    if let Ok(b) = p.to_vec() {
                        match self.send_packet(&b) {
                            Ok(_) => rep.sent += 1,
                            Err(_) => rep.send_errors += 1,
                        }
                    }
                }
            }
            f += 1;
            let next = start + every * f;
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        rep
    }

    /// Starts a thread that saves every AV1 stream it receives as
    /// `dir/ssrc-XXXXXXXX.ivf`, sets `keyframe_wanted` on a PLI/FIR for this
    /// client's video SSRC, and keeps the client alive with keepalives.
    pub fn start_recording_av1(&self, dir: &Path, keyframe_wanted: Arc<AtomicBool>) -> io::Result<RecordHandle> {
        std::fs::create_dir_all(dir)?;
        let socket = self.socket().try_clone()?;
        let (router, dir, own) = (self.router(), dir.to_path_buf(), self.ssrcs().1);
        let (key, opener) = (self.key().clone(), self.opener());
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            record_loop(&socket, Session { router, key, opener }, &dir, own, &s, &keyframe_wanted)
        });
        Ok(RecordHandle { stop, thread: Some(thread) })
    }
}

/// A running recorder.
#[derive(Debug)]
pub struct RecordHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<Vec<SavedStream>>>>,
}

/// One saved stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SavedStream {
    /// Its SSRC.
    pub ssrc: u32,
    /// The IVF file.
    pub path: PathBuf,
    /// Temporal units written.
    pub frames: u64,
    /// Keyframes among them.
    pub keyframes: u64,
}

impl RecordHandle {
    /// Stops, closes the files and returns what was saved.
    pub fn finish(mut self) -> io::Result<Vec<SavedStream>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map_or(Ok(Vec::new()), |t| t.join().unwrap_or_else(|_| Err(io::Error::other("recorder panicked"))))
    }
}

impl Drop for RecordHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Stream {
    depack: Depacketizer,
    out: IvfWriter,
    saved: SavedStream,
}

/// A recorder's side of the leg: where keepalives go, signed with what,
/// and how the router's packets are opened.
struct Session {
    router: SocketAddr,
    key: JoinKey,
    opener: Opener,
}

fn record_loop(
    socket: &UdpSocket,
    mut session: Session,
    dir: &Path,
    own: Ssrc,
    stop: &AtomicBool,
    keyframe_wanted: &AtomicBool,
) -> io::Result<Vec<SavedStream>> {
    let mut streams: HashMap<Ssrc, Stream> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut next_keepalive = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_keepalive {
            let ka = SessionMessage::Keepalive { txid: rand::random() }.to_signed_vec(&session.key);
            let _ = socket.send_to(&ka, session.router);
            next_keepalive += Duration::from_secs(1);
        }
        let Ok((n, _)) = socket.recv_from(&mut buf) else { continue };
        let Some(b) = session.opener.open(&buf[..n]) else { continue };
        match classify(b) {
            Kind::Rtp => {
                let Ok(h) = RtpHeader::parse(b) else { continue };
                if h.pt != AV1_PT {
                    continue;
                }
                let st = match streams.entry(h.ssrc) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        let path = dir.join(format!("ssrc-{:08x}.ivf", h.ssrc.0));
                        let out = IvfWriter::create(&path, 640, 360, 90_000)?;
                        let saved = SavedStream { ssrc: h.ssrc.0, path, frames: 0, keyframes: 0 };
                        v.insert(Stream { depack: Depacketizer::new(), out, saved })
                    }
                };
                st.depack.handle_packet(h.seq, h.timestamp, h.marker, h.payload(b));
                while let Some(tu) = st.depack.poll_frame() {
                    st.out.write_frame(&tu.data, u64::from(tu.timestamp.0))?;
                    st.saved.frames += 1;
                    st.saved.keyframes += u64::from(tu.keyframe);
                }
            }
            Kind::Rtcp => {
                for p in rtcp::parse_compound(b).unwrap_or_default() {
                    let wanted = match p {
                        RtcpPacket::Pli(p) => p.media_ssrc == own,
                        RtcpPacket::Fir(f) => f.entries.iter().any(|(s, _)| *s == own),
                        _ => false,
                    };
                    if wanted {
                        keyframe_wanted.store(true, Ordering::Relaxed);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (_, mut s) in streams {
        s.out.finish()?;
        out.push(s.saved);
    }
    out.sort_by_key(|s| s.ssrc);
    Ok(out)
}

/// Writes an IVF file (32-byte file header, 12-byte frame headers).
#[derive(Debug)]
pub struct IvfWriter {
    file: BufWriter<File>,
    frames: u32,
}

impl IvfWriter {
    /// Creates `path` for an AV1 stream of nominal `width`x`height`, timestamps in 1/`timebase` s.
    pub fn create(path: &Path, width: u16, height: u16, timebase: u32) -> io::Result<IvfWriter> {
        let mut file = BufWriter::new(File::create(path)?);
        file.write_all(&ivf_header(width, height, timebase, 0))?;
        Ok(IvfWriter { file, frames: 0 })
    }

    /// Appends one temporal unit.
    pub fn write_frame(&mut self, data: &[u8], pts: u64) -> io::Result<()> {
        self.file.write_all(&(data.len() as u32).to_le_bytes())?;
        self.file.write_all(&pts.to_le_bytes())?;
        self.file.write_all(data)?;
        self.frames += 1;
        Ok(())
    }

    /// Writes the frame count into the header and flushes.
    pub fn finish(&mut self) -> io::Result<()> {
        use std::io::{Seek, SeekFrom};
        self.file.flush()?;
        let f = self.file.get_mut();
        f.seek(SeekFrom::Start(24))?;
        f.write_all(&self.frames.to_le_bytes())?;
        f.seek(SeekFrom::End(0))?;
        f.flush()
    }
}

fn ivf_header(width: u16, height: u16, timebase: u32, frames: u32) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0..4].copy_from_slice(b"DKIF");
    h[6..8].copy_from_slice(&32u16.to_le_bytes());
    h[8..12].copy_from_slice(b"AV01");
    h[12..14].copy_from_slice(&width.to_le_bytes());
    h[14..16].copy_from_slice(&height.to_le_bytes());
    h[16..20].copy_from_slice(&timebase.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[24..28].copy_from_slice(&frames.to_le_bytes());
    h
}

/// Reads every frame of an IVF file; a malformed file is a clear error.
pub fn read_ivf(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut b = Vec::new();
    File::open(path)?.read_to_end(&mut b)?;
    parse_ivf(&b)
}

/// Parses IVF bytes into frames (the reader lives with the AV1 payload format).
pub use corecast_codec::av1::parse_ivf;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ivf_round_trip_and_bad_files() {
        let dir = std::env::temp_dir().join(format!("corecast-ivf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.ivf");
        let mut w = IvfWriter::create(&path, 640, 360, 90_000).unwrap();
        w.write_frame(&[1, 2, 3], 0).unwrap();
        w.write_frame(&[4; 100], 3000).unwrap();
        w.finish().unwrap();
        let b = std::fs::read(&path).unwrap();
        assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), 2);
        assert_eq!(read_ivf(&path).unwrap(), vec![vec![1, 2, 3], vec![4; 100]]);
        assert!(parse_ivf(b"nope").is_err());
        assert!(parse_ivf(&b[..b.len() - 1]).is_err(), "truncated frame");
        let mut vp8 = b.clone();
        vp8[8..12].copy_from_slice(b"VP80");
        assert!(parse_ivf(&vp8).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
