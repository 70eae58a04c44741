//! The sources: test patterns encoded with SVT-AV1 (in a child process,
//! cached by every encoding parameter) and packetized into RTP before the
//! measured run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context as _};
use corecast_codec::av1::Packetizer;
use corecast_codec::pattern::{participant_colour, TestPattern};
use corecast_codec::{EncodedFrame, Encoder, EncoderConfig};
use corecast_proto::rtp::RtpPacket;
use corecast_proto::{MediaTime, Pt, SeqNo, Ssrc};

use super::RunConfig;

/// SVT-AV1 preset of the pre-encoded sources.
const SOURCE_PRESET: u8 = 12;
/// Largest RTP payload of the sources (as a client sends).
const SOURCE_MAX_PAYLOAD: usize = 1200;
/// Bumped when the cache file format or the source encoding changes.
const CACHE_VERSION: u32 = 1;
const CACHE_MAGIC: &[u8; 8] = b"CCBENC\0\x01";

/// One source's pre-packetized stream: the RTP packets of every frame.
#[derive(Debug)]
pub(super) struct SourceStream {
    pub frames: Vec<Vec<Vec<u8>>>,
    pub payload_bytes: u64,
}

pub(super) fn default_cache_dir() -> PathBuf {
    std::env::temp_dir().join("corecast-bench-codec")
}

fn cache_path(dir: &Path, cfg: &RunConfig, index: usize) -> PathBuf {
    let (w, h) = (cfg.input.width, cfg.input.height);
    dir.join(format!(
        "v{CACHE_VERSION}-{w}x{h}-{}fps-{}f-{}k-p{SOURCE_PRESET}-ki{}-c{index}.av1s",
        cfg.fps,
        cfg.frames(),
        cfg.input.bitrate_kbps(),
        cfg.keyint()
    ))
}

pub(super) fn read_cache(path: &Path, frames: usize) -> Option<Vec<EncodedFrame>> {
    let b = fs::read(path).ok()?;
    let rest = b.strip_prefix(CACHE_MAGIC)?;
    let (n, mut rest) = rest.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*n) as usize != frames {
        return None;
    }
    let mut out = Vec::with_capacity(frames);
    for pts in 0..frames {
        let (&key, r) = rest.split_first()?;
        let (len, r) = r.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if r.len() < len || len == 0 {
            return None;
        }
        out.push(EncodedFrame { data: r[..len].to_vec(), pts: pts as i64, keyframe: key != 0 });
        rest = &r[len..];
    }
    rest.is_empty().then_some(out)
}

pub(super) fn write_cache(path: &Path, units: &[EncodedFrame]) -> std::io::Result<()> {
    let mut b = Vec::with_capacity(units.iter().map(|u| u.data.len() + 5).sum::<usize>() + 12);
    b.extend_from_slice(CACHE_MAGIC);
    b.extend_from_slice(&(units.len() as u32).to_le_bytes());
    for u in units {
        b.push(u8::from(u.keyframe));
        b.extend_from_slice(&(u.data.len() as u32).to_le_bytes());
        b.extend_from_slice(&u.data);
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, &b)?;
    fs::rename(&tmp, path)
}

/// Encodes `frames` frames of source `index`'s test pattern.
fn encode_source(cfg: &RunConfig, index: usize) -> anyhow::Result<Vec<EncodedFrame>> {
    let (w, h) = (cfg.input.width, cfg.input.height);
    let frames = cfg.frames();
    let mut pattern = TestPattern::new(w, h, participant_colour(index));
    let mut enc = Encoder::new(&EncoderConfig {
        width: w,
        height: h,
        fps: cfg.fps,
        bitrate_kbps: cfg.input.bitrate_kbps(),
        preset: SOURCE_PRESET,
        keyint: cfg.keyint(),
        threads: 1,
        extra: Vec::new(),
    })
    .context("source encoder")?;
    let mut units = Vec::with_capacity(frames);
    for i in 0..frames {
        enc.send_frame(pattern.next_frame(), i as i64, false)?;
        while let Some(u) = enc.poll_frame(true)? {
            units.push(u);
        }
    }
    units.extend(enc.finish()?);
    if units.len() != frames || units.iter().any(|u| u.data.is_empty()) || !units[0].keyframe {
        bail!("source {index}: encoder gave {} units for {frames} frames", units.len());
    }
    Ok(units)
}

/// Encodes sources `missing` in parallel on every core into `dir` (every
/// encoder is gone when this returns).
pub(super) fn encode_sources(cfg: &RunConfig, missing: &[usize], dir: &Path) -> anyhow::Result<()> {
    let start = Instant::now();
    eprintln!(
        "codec: encoding {} source(s) of {}x{}, {} frames each at {} fps (SVT-AV1 preset {SOURCE_PRESET}, {} kbit/s)...",
        missing.len(),
        cfg.input.width,
        cfg.input.height,
        cfg.frames(),
        cfg.fps,
        cfg.input.bitrate_kbps()
    );
    let workers = std::thread::available_parallelism().map_or(1, |p| p.get()).min(missing.len());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, anyhow::Result<Vec<EncodedFrame>>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = missing.get(k) else { break };
                let r = encode_source(cfg, i);
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                eprintln!(
                    "codec:   source {} encoded ({d}/{}, {:.1} s)",
                    i + 1,
                    missing.len(),
                    start.elapsed().as_secs_f64()
                );
                results.lock().unwrap_or_else(|e| e.into_inner()).push((i, r));
            });
        }
    });
    for (i, r) in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let path = cache_path(dir, cfg, i);
        write_cache(&path, &r?).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// Sources `0..n` of `cfg` missing from `dir`.
pub(super) fn missing_in(dir: &Path, cfg: &RunConfig, n: usize) -> Vec<usize> {
    (0..n).filter(|&i| read_cache(&cache_path(dir, cfg, i), cfg.frames()).is_none()).collect()
}

/// Runs this binary as `codec --encode-only` to fill `dir`.
fn encode_in_child(cfg: &RunConfig, dir: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("own executable")?;
    let status = Command::new(exe)
        .arg("codec")
        .arg("--encode-only")
        .args(["--layout", &cfg.layout.to_string(), "--input", &cfg.input.to_string()])
        .args(["--fps", &cfg.fps.to_string(), "--seconds", &cfg.seconds.to_string()])
        .arg("--cache-dir")
        .arg(dir)
        .stdout(Stdio::null())
        .status()
        .context("start the encoding process")?;
    if !status.success() {
        bail!("the encoding process failed: {status}");
    }
    Ok(())
}

/// Encoded units of sources `0..n`: from `cfg.streams_dir` where present,
/// the rest encoded (in a child process if `cfg.encode_in_child`).
fn encoded_sources(cfg: &RunConfig, n: usize) -> anyhow::Result<Vec<Vec<EncodedFrame>>> {
    let dir = cfg.streams_dir.as_path();
    let missing = missing_in(dir, cfg, n);
    if missing.len() < n {
        eprintln!("codec: {} of {n} {} source stream(s) from {}", n - missing.len(), cfg.input, dir.display());
    }
    if !missing.is_empty() {
        if cfg.encode_in_child {
            encode_in_child(cfg, dir)?;
        } else {
            encode_sources(cfg, &missing, dir)?;
        }
    }
    (0..n)
        .map(|i| {
            let path = cache_path(dir, cfg, i);
            read_cache(&path, cfg.frames()).with_context(|| format!("source stream {} missing", path.display()))
        })
        .collect()
}

fn source_ssrc(index: usize) -> Ssrc {
    Ssrc(0x5352_4300 + index as u32)
}

/// RTP packets of every frame of source `index`.
fn packetize(cfg: &RunConfig, index: usize, units: &[EncodedFrame]) -> anyhow::Result<SourceStream> {
    let packetizer = Packetizer::new(SOURCE_MAX_PAYLOAD)?;
    let ssrc = source_ssrc(index);
    let mut seq = SeqNo(1000 * index as u16);
    let mut frames = Vec::with_capacity(units.len());
    let mut payload_bytes = 0;
    let mut payloads = Vec::new();
    for (f, unit) in units.iter().enumerate() {
        payloads.clear();
        let n = packetizer.packetize(&unit.data, &mut payloads)?;
        let ts = MediaTime((f as u64 * 90_000 / u64::from(cfg.fps)) as u32);
        let mut pkts = Vec::with_capacity(n);
        for (i, payload) in payloads.drain(..).enumerate() {
            payload_bytes += payload.len() as u64;
            let p =
                RtpPacket { marker: i + 1 == n, pt: Pt(45), seq, timestamp: ts, ssrc, payload, ..Default::default() };
            seq = seq.next();
            pkts.push(p.to_vec()?);
        }
        frames.push(pkts);
    }
    Ok(SourceStream { frames, payload_bytes })
}

/// Pre-encoded, packetized sources `0..n`.
pub(super) fn prepare_sources(cfg: &RunConfig, n: usize) -> anyhow::Result<Vec<SourceStream>> {
    let units = encoded_sources(cfg, n)?;
    units.iter().enumerate().map(|(i, u)| packetize(cfg, i, u)).collect()
}
