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
//!
//! Parts: [`sources`] (encoding, caching and packetizing the sources),
//! [`drive`] (the measured run), [`report`] (the figures, the table, JSON and
//! report files); CPU time, memory and percentiles come from
//! [`crate::measure`].

mod drive;
mod report;
mod sources;
#[cfg(test)]
mod tests;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use corecast_codec::MixerConfig;
use serde_json::{json, Value};

use self::drive::run_one;
use self::report::{print_table, report_files};
use self::sources::{default_cache_dir, encode_sources, missing_in};

/// Longest measured run in seconds.
const MAX_SECONDS: f64 = 30.0;

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
