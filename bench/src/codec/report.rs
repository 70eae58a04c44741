//! The figures of one run and how they are reported: the table, the JSON
//! and the `--report` files.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use corecast_codec::MixerConfig;
use serde_json::{json, Value};

use super::{Layout, RunConfig};
use crate::measure::Measured;

/// The target for a 2x2 composite of 720p30 inputs.
const TARGET_CORES: f64 = 0.8;
const TARGET_RSS_MB: f64 = 64.0;
const TARGET_LATENCY_P50_MS: f64 = 50.0;

/// Figures of one run.
#[derive(Debug, Clone)]
pub(super) struct Figures {
    pub cfg: RunConfig,
    pub frames_expected: usize,
    /// Wall time, CPU time of the whole process, added latency in ms (sorted).
    pub run: Measured<f64>,
    pub driver_cpu_s: f64,
    pub composites: u64,
    pub output_frames_skipped: u64,
    pub decoded: u64,
    pub source_frames_dropped: u64,
    pub decode_errors: u64,
    pub keyframe_requests: u64,
    pub rtp_in: u64,
    pub rtp_out: u64,
    pub bytes_out: u64,
    pub input_kbps: f64,
    pub rss_mb: f64,
    pub process_rss_mb: f64,
    pub peak_rss_from: &'static str,
}

impl Figures {
    fn cores(&self) -> f64 {
        self.run.cores()
    }
    fn driver_cores(&self) -> f64 {
        self.driver_cpu_s / self.run.wall_s.max(1e-9)
    }
    fn cpu_ms_per_frame(&self) -> f64 {
        self.run.cpu_s * 1000.0 / (self.composites.max(1) as f64)
    }
    fn latency(&self, p: f64) -> f64 {
        self.run.latency_at(p)
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

    pub fn to_json(&self) -> Value {
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
            "wall_s": round3(self.run.wall_s),
            "cpu_s": round3(self.run.cpu_s),
            "cores_per_composite": round3(self.cores()),
            "driver_thread_cores": round3(self.driver_cores()),
            "cpu_ms_per_frame": round3(self.cpu_ms_per_frame()),
            "added_latency_ms_p50": round3(self.latency(0.5)),
            "added_latency_ms_p99": round3(self.latency(0.99)),
            "added_latency_ms_max": round3(self.latency(1.0)),
            "latency_samples": self.run.latency.len(),
            "rss_mb": round3(self.rss_mb),
            "process_rss_mb": round3(self.process_rss_mb),
            "peak_rss_from": self.peak_rss_from,
            "bitrate_kbps": round3(self.bitrate_kbps()),
            "input_bitrate_kbps": round3(self.input_kbps),
        });
        let points: Vec<Value> = crate::plot::percentile_points(&self.run.latency, 12)
            .iter()
            .map(|&(p, ms)| json!([p, round3(ms)]))
            .collect();
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

/// Prints the table of `rows` (as [`Figures::to_json`] gives them).
pub(super) fn print_table(rows: &[Value]) {
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

/// Writes the `--report` files and says where.
pub(super) fn report_files(dir: &Path, rows: &[Value], json: &Value) -> anyhow::Result<()> {
    let files = write_report(dir, rows, json)?;
    eprintln!("report: {}", files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    Ok(())
}

/// The `--report` files: Markdown, JSON and plots.
pub(super) fn write_report(dir: &Path, rows: &[Value], json: &Value) -> anyhow::Result<Vec<PathBuf>> {
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
