//! `corecast-bench codec`: what one SD composite costs the codec pool.
//!
//! One [`Mixer`] (the per-call media core of the codec pool: dav1d decode
//! of every source, grid composite, SVT-AV1 encode of the 640x360 result,
//! AV1 RTP packetization) is driven in real time, paced by the wall clock at
//! `--fps`, with 4 (`--layout 2x2`) or 9 (`--layout 3x3`) AV1 sources of
//! 1280x720 or 640x360 (`--input 720p|360p`).
//!
//! The sources are coloured, moving [`TestPattern`]s encoded with SVT-AV1
//! (preset 12, CBR 1500 kbit/s at 720p and 500 at 360p, a key frame every
//! two seconds) and packetized into RTP **before** the measured run, so the
//! figures cover the pool alone. The encoding runs in a child process
//! (`corecast-bench codec --encode-only`), so the measuring process never
//! held an encoder whose freed memory the mixer could reuse unseen. Encoded
//! streams are cached in `$TMPDIR/corecast-bench-codec/`, keyed by every
//! encoding parameter (`--no-cache`: a private directory, removed at the end).
//!
//! In the measured run one thread feeds, at every frame slot, each source's
//! packets for that frame to [`Mixer::handle_rtp`], calls
//! [`Mixer::handle_timeout`] when [`Mixer::poll_timeout`] is due, and drains
//! the outputs. Measured:
//!
//! - **`cores_per_composite`**: CPU time of the whole process during the run
//!   (`/proc/self/stat`: the driving thread, which decodes and composes, and
//!   the SVT-AV1 encoder's own threads, which encode) over wall time. Nothing
//!   else runs in the process meanwhile (the pre-encoders are gone).
//!   `driver_thread_cores` is the driving thread alone
//!   (`/proc/thread-self/schedstat`); `cpu_ms_per_frame` is the CPU time per
//!   composite frame produced.
//! - **`added_latency_ms_p50/p99`**: for every source picture shown, the
//!   time from its frame slot (the instant the source "sent" it: all sources
//!   send at the slot, so a frame also waits while the mixer decodes the
//!   sources before it) to the end of the mixer call that handed out the
//!   composite packets first showing it ([`Mixer::drain_latencies`] plus the
//!   duration of that call). The SVT-AV1 encoder holds one picture, so this
//!   includes one frame interval.
//! - **`rss_mb`**: the peak resident set during the run (VmHWM, reset through
//!   `/proc/self/clear_refs` just before the mixer is created, or the largest
//!   VmRSS sampled every 250 ms where that is not allowed) minus the resident
//!   set at that point: the pool's memory for one composite.
//!   `process_rss_mb` is the whole process's peak during the run (it also
//!   holds the pre-encoded streams).
//!
//! A table goes to stderr; `--json` prints one JSON object on stdout. `--all`
//! measures 2x2 and 3x3 of 720p and 360p inputs, each in a process of its
//! own (so no run reuses memory another freed), and prints `{"runs": [...]}`.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use corecast_codec::pattern::{participant_colour, TestPattern};
use corecast_codec::{EncodedFrame, Encoder, EncoderConfig, Mixer, MixerConfig};
use corecast_proto::av1::Packetizer;
use corecast_proto::rtp::RtpPacket;
use corecast_proto::{MediaTime, Pt, SeqNo, Ssrc};
use serde_json::{json, Value};

/// Longest measured run in seconds.
const MAX_SECONDS: f64 = 30.0;
/// SVT-AV1 preset of the pre-encoded sources.
const SOURCE_PRESET: u8 = 12;
/// Largest RTP payload of the sources (as a client sends).
const SOURCE_MAX_PAYLOAD: usize = 1200;
/// Bumped when the cache file format or the source encoding changes.
const CACHE_VERSION: u32 = 1;
const CACHE_MAGIC: &[u8; 8] = b"CCBENC\0\x01";
/// The target for a 2x2 composite of 720p30 inputs.
const TARGET_CORES: f64 = 0.8;
const TARGET_RSS_MB: f64 = 64.0;
const TARGET_LATENCY_P50_MS: f64 = 50.0;

/// Options of `corecast-bench codec`.
#[derive(Debug, Clone, clap::Args)]
pub struct CodecArgs {
    /// Composite layout: 2x2 (4 sources) or 3x3 (9 sources).
    #[arg(long, value_enum, default_value_t = Layout::Grid2x2)]
    pub layout: Layout,
    /// Size of the source streams: 720p (1280x720) or 360p (640x360).
    #[arg(long, default_value = "720p")]
    pub input: InputSize,
    /// Frames per second of the sources and of the composite.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Seconds of the measured run (at most 30).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// SVT-AV1 preset of the composite encoder (default: the mixer's default).
    #[arg(long)]
    pub preset: Option<u8>,
    /// Run 2x2 and 3x3 of 720p and 360p inputs, one after the other.
    #[arg(long)]
    pub all: bool,
    /// Encode the sources again and do not write the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Directory of the encoded source streams (default: the cache).
    #[arg(long, hide = true)]
    pub cache_dir: Option<PathBuf>,
    /// Only encode the missing source streams into the cache directory (the
    /// child process that keeps encoders out of the measuring process).
    #[arg(long, hide = true)]
    pub encode_only: bool,
    /// Print the figures as JSON on stdout (the table still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Also write a report into this directory: `codec.md` (the command, the
    /// host, the table against the targets), `codec.json`, and SVG plots of
    /// cores and memory per composite and added latency by percentile.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

/// Grid of the composite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// Four sources.
    #[value(name = "2x2")]
    Grid2x2,
    /// Nine sources.
    #[value(name = "3x3")]
    Grid3x3,
}

impl Layout {
    fn sources(self) -> usize {
        match self {
            Layout::Grid2x2 => 4,
            Layout::Grid3x3 => 9,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Grid2x2 => "2x2",
            Layout::Grid3x3 => "3x3",
        })
    }
}

/// Size of the source streams: `720p`, `360p`, or `WxH` (even, at least 64x64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSize {
    name: String,
    width: usize,
    height: usize,
}

impl InputSize {
    /// Source bitrate: 1500 kbit/s at 720p, 500 at 360p, by area otherwise.
    fn bitrate_kbps(&self) -> u32 {
        match (self.width, self.height) {
            (1280, 720) => 1500,
            (640, 360) => 500,
            (w, h) => ((1500 * w * h) / (1280 * 720)).max(100) as u32,
        }
    }
}

impl FromStr for InputSize {
    type Err = String;

    fn from_str(s: &str) -> Result<InputSize, String> {
        let (width, height) = match s {
            "720p" => (1280, 720),
            "360p" => (640, 360),
            other => {
                let parsed = other.split_once('x').and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
                match parsed {
                    Some((w, h)) if w >= 64 && h >= 64 && w % 2 == 0 && h % 2 == 0 && w <= 4096 && h <= 2304 => (w, h),
                    _ => {
                        return Err(format!("expected 720p, 360p or WxH (even, 64..=4096 x 64..=2304), got {other:?}"))
                    }
                }
            }
        };
        Ok(InputSize { name: s.to_string(), width, height })
    }
}

impl fmt::Display for InputSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// One measured configuration.
#[derive(Debug, Clone)]
struct RunConfig {
    layout: Layout,
    input: InputSize,
    fps: u32,
    seconds: f64,
    preset: u8,
    /// Where the encoded streams are read and written.
    streams_dir: PathBuf,
    /// Encode missing streams in a child process (this binary, `--encode-only`).
    encode_in_child: bool,
}

impl RunConfig {
    fn frames(&self) -> usize {
        ((f64::from(self.fps) * self.seconds).round() as usize).max(1)
    }
    fn interval(&self) -> Duration {
        Duration::from_secs(1) / self.fps
    }
    fn keyint(&self) -> u32 {
        self.fps * 2
    }
}

/// One source's pre-packetized stream: the RTP packets of every frame.
#[derive(Debug)]
struct SourceStream {
    frames: Vec<Vec<Vec<u8>>>,
    payload_bytes: u64,
}

/// Figures of one run.
#[derive(Debug, Clone)]
struct Measured {
    cfg: RunConfig,
    frames_expected: usize,
    wall_s: f64,
    cpu_s: f64,
    driver_cpu_s: f64,
    composites: u64,
    output_frames_skipped: u64,
    decoded: u64,
    source_frames_dropped: u64,
    decode_errors: u64,
    keyframe_requests: u64,
    rtp_in: u64,
    rtp_out: u64,
    bytes_out: u64,
    input_kbps: f64,
    latencies_ms: Vec<f64>,
    rss_mb: f64,
    process_rss_mb: f64,
    peak_rss_from: &'static str,
}

impl Measured {
    fn cores(&self) -> f64 {
        self.cpu_s / self.wall_s.max(1e-9)
    }
    fn driver_cores(&self) -> f64 {
        self.driver_cpu_s / self.wall_s.max(1e-9)
    }
    fn cpu_ms_per_frame(&self) -> f64 {
        self.cpu_s * 1000.0 / (self.composites.max(1) as f64)
    }
    fn latency(&self, p: f64) -> f64 {
        percentile(&self.latencies_ms, p)
    }
    fn bitrate_kbps(&self) -> f64 {
        self.bytes_out as f64 * 8.0 / self.cfg.seconds / 1000.0
    }
    /// The target (only judged for 2x2 of 720p at 30 fps).
    fn target_met(&self) -> Option<bool> {
        (self.cfg.layout == Layout::Grid2x2 && self.cfg.input.name == "720p" && self.cfg.fps == 30).then(|| {
            self.cores() <= TARGET_CORES && self.rss_mb <= TARGET_RSS_MB && self.latency(0.5) <= TARGET_LATENCY_P50_MS
        })
    }

    fn to_json(&self) -> Value {
        let mixer = MixerConfig { fps: self.cfg.fps, preset: self.cfg.preset, ..MixerConfig::default() };
        let mut v = json!({
            "layout": self.cfg.layout.to_string(),
            "input": self.cfg.input.to_string(),
            "input_width": self.cfg.input.width,
            "input_height": self.cfg.input.height,
            "sources": self.cfg.layout.sources(),
            "fps": self.cfg.fps,
            "seconds": self.cfg.seconds,
            "preset": self.cfg.preset,
            "output_width": mixer.width,
            "output_height": mixer.height,
            "output_target_kbps": mixer.bitrate_kbps,
            "frames_expected": self.frames_expected,
            "composites": self.composites,
            "output_frames_skipped": self.output_frames_skipped,
            "decoded": self.decoded,
            "source_frames_dropped": self.source_frames_dropped,
            "decode_errors": self.decode_errors,
            "keyframe_requests": self.keyframe_requests,
            "rtp_in": self.rtp_in,
            "rtp_out": self.rtp_out,
            "wall_s": round3(self.wall_s),
            "cpu_s": round3(self.cpu_s),
            "cores_per_composite": round3(self.cores()),
            "driver_thread_cores": round3(self.driver_cores()),
            "cpu_ms_per_frame": round3(self.cpu_ms_per_frame()),
            "added_latency_ms_p50": round3(self.latency(0.5)),
            "added_latency_ms_p99": round3(self.latency(0.99)),
            "added_latency_ms_max": round3(self.latency(1.0)),
            "latency_samples": self.latencies_ms.len(),
            "rss_mb": round3(self.rss_mb),
            "process_rss_mb": round3(self.process_rss_mb),
            "peak_rss_from": self.peak_rss_from,
            "bitrate_kbps": round3(self.bitrate_kbps()),
            "input_bitrate_kbps": round3(self.input_kbps),
        });
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let points: Vec<Value> =
            crate::plot::percentile_points(&sorted, 12).iter().map(|&(p, ms)| json!([p, round3(ms)])).collect();
        if let Some(o) = v.as_object_mut() {
            o.insert("latency_percentiles_ms".into(), Value::Array(points));
        }
        if let (Some(met), Some(o)) = (self.target_met(), v.as_object_mut()) {
            o.insert(
                "target".into(),
                json!({
                    "cores_per_composite": TARGET_CORES,
                    "rss_mb": TARGET_RSS_MB,
                    "added_latency_ms_p50": TARGET_LATENCY_P50_MS,
                    "met": met,
                }),
            );
        }
        v
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Nearest-rank percentile of `v` (`p` in 0..=1); 0 for no samples.
fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = (p * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

// ---- /proc readings ----

/// CPU time of the whole process (all threads, also exited ones) in seconds.
fn process_cpu_s() -> Option<f64> {
    let s = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces): state is field 3.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // USER_HZ: 100 on every Linux architecture's user ABI.
    Some((utime + stime) as f64 / 100.0)
}

/// CPU time of the calling thread in seconds (schedstat, ns).
fn thread_cpu_s() -> Option<f64> {
    let s = fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(s.split_whitespace().next()?.parse::<u64>().ok()? as f64 / 1e9)
}

/// A `Vm*` line of `/proc/self/status` in KiB.
fn status_kb(key: &str) -> Option<u64> {
    let s = fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// Resets VmHWM to the current resident set (Linux ≥ 4.0).
fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

// ---- sources ----

fn default_cache_dir() -> PathBuf {
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

fn read_cache(path: &Path, frames: usize) -> Option<Vec<EncodedFrame>> {
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

fn write_cache(path: &Path, units: &[EncodedFrame]) -> std::io::Result<()> {
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
fn encode_sources(cfg: &RunConfig, missing: &[usize], dir: &Path) -> anyhow::Result<()> {
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
fn missing_in(dir: &Path, cfg: &RunConfig, n: usize) -> Vec<usize> {
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
fn prepare_sources(cfg: &RunConfig, n: usize) -> anyhow::Result<Vec<SourceStream>> {
    let units = encoded_sources(cfg, n)?;
    units.iter().enumerate().map(|(i, u)| packetize(cfg, i, u)).collect()
}

// ---- the measured run ----

/// State of the driving loop besides the mixer.
#[derive(Debug, Default)]
struct Collected {
    latencies_ms: Vec<f64>,
}

impl Collected {
    /// After a mixer call given `now` returned at `done`: takes its outputs
    /// and latency samples (measured by the mixer up to `now`, so the
    /// call's own duration is added).
    fn after_call(&mut self, mixer: &mut Mixer, now: Instant, done: Instant) {
        let extra = done.saturating_duration_since(now);
        for l in mixer.drain_latencies() {
            self.latencies_ms.push((l + extra).as_secs_f64() * 1000.0);
        }
        // Composite packets would go to the router; keyframe requests cannot
        // be served by pre-encoded sources (they start with a key frame and
        // repeat it every two seconds); events are counted in the stats.
        while mixer.poll_output().is_some() {}
    }
}

/// Drives one mixer in real time with `sources` (on the calling thread).
fn drive(cfg: &RunConfig, sources: &[SourceStream]) -> anyhow::Result<Measured> {
    let frames = cfg.frames();
    let interval = cfg.interval();
    let mixer_cfg = MixerConfig { fps: cfg.fps, preset: cfg.preset, ..MixerConfig::default() };

    let hwm_reset = reset_peak_rss();
    let rss_base_kb = status_kb("VmRSS").unwrap_or(0);
    let mut rss_sampled_kb = rss_base_kb;
    let mut mixer = Mixer::new(mixer_cfg).context("mixer")?;
    let mut col = Collected { latencies_ms: Vec::with_capacity(frames * sources.len()) };

    let cpu0 = process_cpu_s().context("/proc/self/stat")?;
    let thread0 = thread_cpu_s().unwrap_or(0.0);
    let t0 = Instant::now();
    let end = t0 + interval * frames as u32;
    let mut next_sample = t0;
    let mut last_now = t0;
    let mut f = 0;
    loop {
        let now = Instant::now();
        if now >= next_sample {
            rss_sampled_kb = rss_sampled_kb.max(status_kb("VmRSS").unwrap_or(0));
            next_sample = now + Duration::from_millis(250);
        }
        let slot = (f < frames).then(|| t0 + interval * f as u32);
        if let Some(slot) = slot.filter(|&s| now >= s) {
            // Every source sent frame `f` at its slot; the mixer takes the
            // packets one after the other (time never goes back for it).
            let arrival = slot.max(last_now);
            for src in sources {
                for pkt in &src.frames[f] {
                    mixer.handle_rtp(arrival, pkt);
                    col.after_call(&mut mixer, arrival, Instant::now());
                }
            }
            last_now = arrival;
            f += 1;
            continue;
        }
        if mixer.poll_timeout().is_some_and(|t| now >= t) {
            mixer.handle_timeout(now);
            col.after_call(&mut mixer, now, Instant::now());
            last_now = now;
            continue;
        }
        if f >= frames && now >= end {
            break;
        }
        let wake =
            [slot, mixer.poll_timeout(), Some(end), Some(next_sample)].into_iter().flatten().min().unwrap_or(end);
        std::thread::sleep(wake.saturating_duration_since(now));
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu_s = process_cpu_s().context("/proc/self/stat")? - cpu0;
    let driver_cpu_s = thread_cpu_s().unwrap_or(0.0) - thread0;
    rss_sampled_kb = rss_sampled_kb.max(status_kb("VmRSS").unwrap_or(0));
    let (peak_kb, peak_rss_from) = match status_kb("VmHWM") {
        Some(hwm) if hwm_reset => (hwm.max(rss_sampled_kb), "VmHWM"),
        _ => (rss_sampled_kb, "VmRSS samples"),
    };
    let stats = mixer.stats();
    drop(mixer);

    let input_bytes: u64 = sources.iter().map(|s| s.payload_bytes).sum();
    Ok(Measured {
        cfg: cfg.clone(),
        frames_expected: frames,
        wall_s,
        cpu_s,
        driver_cpu_s,
        composites: stats.composites,
        output_frames_skipped: stats.output_frames_skipped,
        decoded: stats.decoded,
        source_frames_dropped: stats.source_frames_dropped,
        decode_errors: stats.decode_errors,
        keyframe_requests: stats.keyframe_requests,
        rtp_in: stats.rtp_in,
        rtp_out: stats.rtp_out,
        bytes_out: stats.bytes_out,
        input_kbps: input_bytes as f64 * 8.0 / cfg.seconds / 1000.0 / sources.len().max(1) as f64,
        latencies_ms: col.latencies_ms,
        rss_mb: peak_kb.saturating_sub(rss_base_kb) as f64 / 1024.0,
        process_rss_mb: peak_kb as f64 / 1024.0,
        peak_rss_from,
    })
}

/// Measures `cfg` with the first sources of `sources`, on a thread of its own.
fn measure(cfg: &RunConfig, sources: &[SourceStream]) -> anyhow::Result<Measured> {
    let n = cfg.layout.sources();
    if sources.len() < n {
        bail!("{} sources for a {} layout", sources.len(), cfg.layout);
    }
    eprintln!(
        "codec: measuring {} composite of {} sources ({}), {} fps, {:.1} s, preset {}...",
        cfg.layout, n, cfg.input, cfg.fps, cfg.seconds, cfg.preset
    );
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("codec-mixer".into())
            .spawn_scoped(s, || drive(cfg, &sources[..n]))
            .context("spawn the mixer thread")?
            .join()
            .map_err(|_| anyhow::anyhow!("the mixer thread panicked"))?
    })
}

/// Pre-encodes and measures one configuration.
fn run_one(cfg: &RunConfig) -> anyhow::Result<Measured> {
    let sources = prepare_sources(cfg, cfg.layout.sources())?;
    measure(cfg, &sources)
}

/// Prints the table of `rows` (as [`Measured::to_json`] gives them).
fn print_table(rows: &[Value]) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "{:<6} {:<7} {:>4} {:>5} {:>6} {:>11} {:>7} {:>6} {:>6} {:>9} {:>7} {:>7} {:>6} {:>7} {:>5}",
        "layout",
        "input",
        "fps",
        "secs",
        "preset",
        "composites",
        "skipped",
        "cores",
        "driver",
        "cpu ms/fr",
        "lat p50",
        "lat p99",
        "rss MB",
        "proc MB",
        "kbps"
    );
    let (f, t) = (crate::report::num, crate::report::text);
    for v in rows {
        let frames = format!("{}/{}", t(v, "composites"), t(v, "frames_expected"));
        let _ = writeln!(
            e,
            "{:<6} {:<7} {:>4} {:>5.1} {:>6} {:>11} {:>7} {:>6.3} {:>6.3} {:>9.2} {:>7.1} {:>7.1} {:>6.1} {:>7.1} {:>5.0}",
            t(v, "layout"),
            t(v, "input"),
            t(v, "fps"),
            f(v, "seconds"),
            t(v, "preset"),
            frames,
            t(v, "output_frames_skipped"),
            f(v, "cores_per_composite"),
            f(v, "driver_thread_cores"),
            f(v, "cpu_ms_per_frame"),
            f(v, "added_latency_ms_p50"),
            f(v, "added_latency_ms_p99"),
            f(v, "rss_mb"),
            f(v, "process_rss_mb"),
            f(v, "bitrate_kbps")
        );
    }
    for v in rows {
        if let Some(met) = v["target"]["met"].as_bool() {
            let _ = writeln!(
                e,
                "target (2x2 of 720p30: <= {TARGET_CORES} core, <= {TARGET_RSS_MB} MB, <= {TARGET_LATENCY_P50_MS} ms p50): {}",
                if met { "met" } else { "NOT met" }
            );
        }
    }
}

/// Removes a private stream directory when dropped.
#[derive(Debug)]
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `cfg` in a child process (this binary) and returns its JSON.
fn run_in_child(cfg: &RunConfig, dir: &Path) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("own executable")?;
    let out = Command::new(exe)
        .arg("codec")
        .args(["--layout", &cfg.layout.to_string(), "--input", &cfg.input.to_string()])
        .args(["--fps", &cfg.fps.to_string(), "--seconds", &cfg.seconds.to_string()])
        .args(["--preset", &cfg.preset.to_string(), "--json", "--cache-dir"])
        .arg(dir)
        .stderr(Stdio::inherit())
        .output()
        .context("start the measuring process")?;
    if !out.status.success() {
        bail!("{} {}: the measuring process failed: {}", cfg.layout, cfg.input, out.status);
    }
    serde_json::from_slice(&out.stdout).context("JSON of the measuring process")
}

/// Runs the codec benchmark.
pub fn run(args: CodecArgs) -> anyhow::Result<()> {
    if args.fps == 0 || args.fps > 120 {
        bail!("--fps must be 1..=120");
    }
    if !args.seconds.is_finite() || args.seconds <= 0.0 {
        bail!("--seconds must be positive");
    }
    let seconds = if args.seconds > MAX_SECONDS {
        eprintln!("codec: --seconds clamped to {MAX_SECONDS}");
        MAX_SECONDS
    } else {
        args.seconds
    };
    let preset = args.preset.unwrap_or(MixerConfig::default().preset);
    // With --no-cache the streams live in a private directory, removed at the end.
    let (dir, _remove) = match (&args.cache_dir, args.no_cache) {
        (Some(d), _) => (d.clone(), None),
        (None, false) => (default_cache_dir(), None),
        (None, true) => {
            let d = std::env::temp_dir().join(format!("corecast-bench-codec-run-{}", std::process::id()));
            (d.clone(), Some(RemoveDir(d)))
        }
    };
    let base = RunConfig {
        layout: args.layout,
        input: args.input.clone(),
        fps: args.fps,
        seconds,
        preset,
        streams_dir: dir.clone(),
        encode_in_child: true,
    };
    if args.encode_only {
        let missing = missing_in(&dir, &base, base.layout.sources());
        if !missing.is_empty() {
            encode_sources(&base, &missing, &dir)?;
        }
        return Ok(());
    }
    if !args.all {
        let v = run_one(&base)?.to_json();
        print_table(std::slice::from_ref(&v));
        if let Some(dir) = &args.report {
            report_files(dir, std::slice::from_ref(&v), &v)?;
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    for input in ["720p", "360p"] {
        for layout in [Layout::Grid2x2, Layout::Grid3x3] {
            let cfg = RunConfig { layout, input: input.parse().map_err(anyhow::Error::msg)?, ..base.clone() };
            rows.push(run_in_child(&cfg, &dir)?);
        }
    }
    eprintln!();
    print_table(&rows);
    let all = json!({ "runs": rows });
    if let Some(dir) = &args.report {
        report_files(dir, &rows, &all)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(())
}

/// Writes the `--report` files and says where.
fn report_files(dir: &Path, rows: &[Value], json: &Value) -> anyhow::Result<()> {
    let files = write_report(dir, rows, json)?;
    eprintln!("report: {}", files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    Ok(())
}

/// The `--report` files: Markdown, JSON and plots.
fn write_report(dir: &Path, rows: &[Value], json: &Value) -> anyhow::Result<Vec<PathBuf>> {
    use crate::plot::{self, Axis, Bar, Series};
    use crate::report;
    let (f, t) = (crate::report::num, crate::report::text);
    let name = |v: &Value| format!("{} of {} ({} fps)", t(v, "layout"), t(v, "input"), t(v, "fps"));
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|v| {
            vec![
                t(v, "layout"),
                t(v, "input"),
                t(v, "fps"),
                t(v, "preset"),
                format!("{}/{}", t(v, "composites"), t(v, "frames_expected")),
                t(v, "output_frames_skipped"),
                format!("{:.2}", f(v, "cores_per_composite")),
                format!("{:.2}", f(v, "driver_thread_cores")),
                format!("{:.1}", f(v, "cpu_ms_per_frame")),
                format!("{:.1} / {:.1}", f(v, "added_latency_ms_p50"), f(v, "added_latency_ms_p99")),
                format!("{:.1}", f(v, "rss_mb")),
                format!("{:.0}", f(v, "bitrate_kbps")),
                match v["target"]["met"].as_bool() {
                    Some(true) => "met".into(),
                    Some(false) => "**not met**".into(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    let mut md = report::md_header("corecast-bench codec");
    md.push_str(&format!(
        "- target (2x2 of 720p30): <= {TARGET_CORES} core, <= {TARGET_RSS_MB} MB, <= {TARGET_LATENCY_P50_MS} ms added latency at p50\n\n"
    ));
    md.push_str(&report::md_table(
        &[
            "layout",
            "input",
            "fps",
            "preset",
            "composites",
            "skipped",
            "cores",
            "driver",
            "cpu ms/frame",
            "latency p50 / p99 ms",
            "rss MB",
            "kbit/s",
            "target",
        ],
        &table,
    ));
    md.push_str("\n![cores per composite](cores.svg)\n\n![memory per composite](memory.svg)\n\n![added latency by percentile](latency.svg)\n");
    let bars = |k: &str, target: f64| -> Vec<Bar> {
        rows.iter()
            .map(|v| Bar {
                label: name(v),
                value: f(v, k),
                note: if v["target"].is_object() { format!("(target <= {target})") } else { String::new() },
            })
            .collect()
    };
    let latency: Vec<Series> = rows
        .iter()
        .map(|v| Series {
            label: name(v),
            points: v["latency_percentiles_ms"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?))).collect())
                .unwrap_or_default(),
        })
        .collect();
    let files = vec![
        (
            "cores.svg".to_string(),
            plot::bar_chart(
                "CPU per composite",
                "cores (process CPU time / wall time)",
                &bars("cores_per_composite", TARGET_CORES),
            ),
        ),
        (
            "memory.svg".to_string(),
            plot::bar_chart("Memory per composite", "peak RSS added by the mixer (MB)", &bars("rss_mb", TARGET_RSS_MB)),
        ),
        (
            "latency.svg".to_string(),
            plot::line_chart(
                "Added latency by percentile",
                &Axis::nines("percentile"),
                &Axis::linear("source frame to composite out (ms)"),
                &latency,
            ),
        ),
        ("codec.json".to_string(), serde_json::to_string_pretty(json)? + "\n"),
        ("codec.md".to_string(), md),
    ];
    report::write_all(dir, &files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_sizes_parse() {
        let i: InputSize = "720p".parse().unwrap();
        assert_eq!((i.width, i.height, i.bitrate_kbps()), (1280, 720, 1500));
        let i: InputSize = "360p".parse().unwrap();
        assert_eq!((i.width, i.height, i.bitrate_kbps()), (640, 360, 500));
        let i: InputSize = "160x90".parse().unwrap();
        assert_eq!((i.width, i.height, i.bitrate_kbps()), (160, 90, 100));
        for bad in ["1080", "161x90", "32x32", "x", "0x0"] {
            assert!(bad.parse::<InputSize>().is_err(), "{bad}");
        }
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn report_has_the_table_and_plots() {
        let row = |layout: &str, met: Option<bool>| {
            let mut v = json!({"layout": layout, "input": "720p", "fps": 30, "preset": 12, "composites": 150,
                "frames_expected": 150, "output_frames_skipped": 0, "cores_per_composite": 0.39,
                "driver_thread_cores": 0.2, "cpu_ms_per_frame": 12.9, "added_latency_ms_p50": 45.0,
                "added_latency_ms_p99": 56.5, "rss_mb": 92.0, "bitrate_kbps": 370.0,
                "latency_percentiles_ms": [[0.0, 30.0], [0.9, 50.0], [0.99, 56.5]]});
            if let Some(m) = met {
                v["target"] = json!({"met": m});
            }
            v
        };
        let rows = vec![row("2x2", Some(false)), row("3x3", None)];
        let dir = std::env::temp_dir().join(format!("corecast-codec-report-{}", std::process::id()));
        let files = write_report(&dir, &rows, &json!({ "runs": rows })).unwrap();
        assert_eq!(files.len(), 5);
        let md = fs::read_to_string(dir.join("codec.md")).unwrap();
        assert!(
            md.contains(
                "| 2x2 | 720p | 30 | 12 | 150/150 | 0 | 0.39 | 0.20 | 12.9 | 45.0 / 56.5 | 92.0 | 370 | **not met** |"
            ),
            "{md}"
        );
        assert!(md.contains("| 3x3 | 720p |") && md.ends_with("(latency.svg)\n"));
        let latency = fs::read_to_string(dir.join("latency.svg")).unwrap();
        assert_eq!(latency.matches("<polyline").count(), 2);
        assert!(fs::read_to_string(dir.join("memory.svg")).unwrap().contains("(target &lt;= 64)"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cache_round_trip() {
        let units: Vec<EncodedFrame> =
            (0..3).map(|i| EncodedFrame { data: vec![i as u8 + 1; 10 + i], pts: i as i64, keyframe: i == 0 }).collect();
        let path = std::env::temp_dir().join(format!("corecast-bench-codec-test-{}.av1s", std::process::id()));
        write_cache(&path, &units).unwrap();
        assert_eq!(read_cache(&path, 3), Some(units));
        assert_eq!(read_cache(&path, 4), None);
        let _ = fs::remove_file(&path);
    }

    #[test]
    fn tiny_codec_run_end_to_end() {
        // The streams are encoded in this process into a private directory, then read back.
        let dir = std::env::temp_dir().join(format!("corecast-bench-codec-test-dir-{}", std::process::id()));
        let _remove = RemoveDir(dir.clone());
        let cfg = RunConfig {
            layout: Layout::Grid2x2,
            input: "160x90".parse().unwrap(),
            fps: 10,
            seconds: 0.5,
            preset: MixerConfig::default().preset,
            streams_dir: dir.clone(),
            encode_in_child: false,
        };
        let m = run_one(&cfg).unwrap();
        assert!(missing_in(&dir, &cfg, 4).is_empty());
        assert!(m.composites > 0, "{m:?}");
        assert_eq!(m.frames_expected, 5);
        assert_eq!(m.decoded, 20, "{m:?}");
        assert!(!m.latencies_ms.is_empty());
        let v = m.to_json();
        for key in [
            "cores_per_composite",
            "cpu_ms_per_frame",
            "added_latency_ms_p50",
            "added_latency_ms_p99",
            "rss_mb",
            "process_rss_mb",
            "composites",
            "frames_expected",
            "output_frames_skipped",
            "decoded",
            "bitrate_kbps",
            "layout",
            "input",
            "fps",
            "seconds",
            "preset",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert_eq!(v["layout"], "2x2");
        assert!(v["cores_per_composite"].as_f64().unwrap() > 0.0);
        assert!(v["added_latency_ms_p50"].as_f64().unwrap() > 0.0);
    }
}
