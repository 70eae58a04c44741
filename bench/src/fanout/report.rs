//! The figures of one configuration and how they are reported: the table,
//! the JSON and the `--report` files.

use serde_json::{json, Value};

use corecast_router::net::IoStats;

use super::FanoutArgs;
use crate::measure::{percentile, Measured};

/// Figures of one configuration.
#[derive(Debug, Clone, Default)]
pub(super) struct Figures {
    pub label: String,
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    /// Wall time; router CPU time the per-core figure uses; forwarding
    /// latency in µs: from the load generator's send call to the kernel's
    /// receive timestamp on the client socket (sorted).
    pub run: Measured<u32>,
    /// CPU time of the router's threads alone (schedstat).
    pub thread_cpu_s: f64,
    /// Where `run.cpu_s` comes from.
    pub cpu_from: &'static str,
    /// The same latency up to the receiving thread reading the packet
    /// (sorted): adds the load generator's own scheduling on the shared CPUs.
    pub app_lat_us: Vec<u32>,
    pub io: IoStats,
    pub note: String,
}

impl Figures {
    pub fn egress_pps(&self) -> f64 {
        self.run.per_wall_s(self.received)
    }
    pub fn pps_per_core(&self) -> f64 {
        self.run.per_cpu_s(self.received)
    }
    /// pps/core as a multiple of `base`'s.
    pub fn ratio_to(&self, base: &Figures) -> f64 {
        self.pps_per_core() / base.pps_per_core().max(1e-9)
    }
    pub fn loss(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            1.0 - (self.received as f64 / self.expected as f64).min(1.0)
        }
    }
    pub fn pct(&self, p: f64) -> f64 {
        self.run.latency_at(p)
    }
    fn to_json(&self) -> Value {
        json!({
            "label": self.label,
            "egress_pps": self.egress_pps(),
            "egress_pps_per_core": self.pps_per_core(),
            "router_cpu_s": self.run.cpu_s,
            "router_cpu_util": self.run.cores(),
            "router_thread_cpu_s": self.thread_cpu_s,
            "router_cpu_from": self.cpu_from,
            "sent": self.sent,
            "expected": self.expected,
            "received": self.received,
            "loss": self.loss(),
            "p50_latency_us": self.pct(0.50),
            "p99_latency_us": self.pct(0.99),
            "max_latency_us": self.pct(1.0),
            "p50_app_latency_us": percentile(&self.app_lat_us, 0.50),
            "p99_app_latency_us": percentile(&self.app_lat_us, 0.99),
            "send_calls": self.io.send_calls,
            "gso_sends": self.io.gso_sends,
            "gso_fallbacks": self.io.gso_fallbacks,
            "send_errors": self.io.send_errors,
            "recv_drops": self.io.recv_drops,
            "note": self.note,
        })
    }
}

pub(super) fn print_table(rows: &[&Figures], ideal: Option<&Figures>, to_stderr: bool) {
    let mut s = String::new();
    s.push_str(&format!(
        "{:<16} {:>11} {:>14} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
        "forwarder", "egress pps", "pps/core(cpu)", "vs ideal", "cpu", "loss", "p50 us", "p99 us", "gso sends"
    ));
    for m in rows {
        let ratio = ideal.map(|i| m.ratio_to(i));
        s.push_str(&format!(
            "{:<16} {:>11.0} {:>14.0} {:>8} {:>7.0}% {:>8.3}% {:>9.0} {:>9.0} {:>9}{}\n",
            m.label,
            m.egress_pps(),
            m.pps_per_core(),
            ratio.map_or("-".to_string(), |r| format!("{r:.2}x")),
            100.0 * m.run.cores(),
            100.0 * m.loss(),
            m.pct(0.5),
            m.pct(0.99),
            m.io.gso_sends,
            if m.note.is_empty() { String::new() } else { format!("  ({})", m.note) },
        ));
    }
    if to_stderr {
        eprint!("{s}");
    } else {
        print!("{s}");
    }
}

/// The JSON report: the first router run's figures at the top level (with
/// every reference), and every router run under `runs`.
pub(super) fn report_json(args: &FanoutArgs, fanout: usize, results: &[Figures], refs: &[Figures]) -> Value {
    let ideal = refs.first();
    let ratio = |m: &Figures| ideal.map(|i| m.ratio_to(i));
    let references: serde_json::Map<String, Value> = refs
        .iter()
        .map(|m| {
            let mut v = m.to_json();
            if let (Some(r), Some(o)) = (ratio(m), v.as_object_mut()) {
                o.insert("ratio_to_ideal".into(), json!(r));
            }
            (m.label.clone(), v)
        })
        .collect();
    let run_json = |m: &Figures| {
        let mut v = m.to_json();
        if let Some(o) = v.as_object_mut() {
            o.insert("backend".into(), json!(m.label));
            o.insert("router_cores".into(), json!(args.router_cores));
            o.insert("fanout".into(), json!(fanout));
            o.insert("calls".into(), json!(args.calls));
            o.insert("participants".into(), json!(args.participants));
            o.insert("fps".into(), json!(args.fps));
            o.insert("packets_per_frame".into(), json!(args.packets_per_frame));
            o.insert("packet_size".into(), json!(args.packet_size));
            o.insert("duration_s".into(), json!(args.duration));
            o.insert("pinned".into(), json!(args.pin));
            o.insert("sender_gso".into(), json!(args.sender_gso));
            if let Some(r) = ratio(m) {
                o.insert("ratio_to_ideal".into(), json!(r));
            }
            if let Some(g) = refs.iter().find(|r| r.label == "ideal-mmsg+gso") {
                o.insert("ratio_to_ideal_gso".into(), json!(m.ratio_to(g)));
            }
        }
        v
    };
    let mut top = results.first().map(run_json).unwrap_or_else(|| json!({}));
    if let Some(o) = top.as_object_mut() {
        o.insert("references".into(), Value::Object(references));
        o.insert("runs".into(), Value::Array(results.iter().map(run_json).collect()));
    }
    top
}

/// The `--report` files: Markdown, JSON and plots.
pub(super) fn write_report(
    dir: &std::path::Path,
    args: &FanoutArgs,
    rows: &[&Figures],
    json: &Value,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use crate::plot::{self, Axis, Bar, Series};
    use crate::report;
    let fanout = args.participants - 1;
    let clients = args.calls * args.participants;
    let offered_out = |fps: f64| (clients * args.packets_per_frame * fanout) as f64 * fps;
    let ideal = rows.iter().find(|m| m.label == "ideal-mmsg");
    let ideal_gso = rows.iter().find(|m| m.label == "ideal-mmsg+gso");
    let ratio = |m: &Figures, r: Option<&&Figures>| r.map_or("-".to_string(), |r| format!("{:.2}x", m.ratio_to(r)));
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|m| {
            vec![
                m.label.clone(),
                format!("{:.0}", m.egress_pps()),
                format!("{:.0}", m.pps_per_core()),
                ratio(m, ideal),
                ratio(m, ideal_gso),
                format!("{:.0}%", 100.0 * m.run.cores()),
                format!("{:.3}%", 100.0 * m.loss()),
                format!("{:.0}", m.pct(0.5)),
                format!("{:.0}", m.pct(0.99)),
                format!("{:.0}", m.pct(1.0)),
                m.io.gso_sends.to_string(),
                m.note.clone(),
            ]
        })
        .collect();
    let mut md = report::md_header("corecast-bench fanout");
    md.push_str(&format!(
        "- load: {} calls x {} participants ({clients} clients), {} fps x {} packets of {} B: {:.0} pps out; {} router core(s){}, {:.1} s per row\n",
        args.calls,
        args.participants,
        args.fps,
        args.packets_per_frame,
        args.packet_size,
        offered_out(f64::from(args.fps)),
        args.router_cores,
        match (args.pin, args.sender_gso) {
            (true, true) => ", pinned, generator sends GSO",
            (true, false) => ", pinned",
            (false, true) => ", generator sends GSO",
            (false, false) => "",
        },
        args.duration
    ));
    md.push_str(&format!(
        "- router CPU: {}; latency: send call to the client socket's kernel receive timestamp\n\n",
        rows.first().map_or("-", |m| m.cpu_from)
    ));
    md.push_str(&report::md_table(
        &[
            "forwarder",
            "egress pps",
            "pps/core",
            "x ideal mmsg",
            "x ideal GSO",
            "router CPU",
            "loss",
            "p50 us",
            "p99 us",
            "max us",
            "GSO sends",
            "note",
        ],
        &table,
    ));
    md.push_str("\n![egress packets/s per router core](pps_per_core.svg)\n\n![latency by percentile](latency.svg)\n");
    let bars: Vec<Bar> = rows
        .iter()
        .map(|m| Bar { label: m.label.clone(), value: m.pps_per_core(), note: format!("({} ideal)", ratio(m, ideal)) })
        .collect();
    let mut files = vec![
        (
            "pps_per_core.svg".to_string(),
            plot::bar_chart("Egress packets/s per router core", "packets/s of router CPU", &bars),
        ),
        (
            "latency.svg".to_string(),
            plot::line_chart(
                "Forwarding latency by percentile",
                &Axis::nines("percentile"),
                &Axis::log("latency (us)"),
                &rows
                    .iter()
                    .map(|m| Series { label: m.label.clone(), points: plot::percentile_points(&m.run.latency, 12) })
                    .collect::<Vec<_>>(),
            ),
        ),
    ];
    if let Some(steps) = json.pointer("/sweep/steps").and_then(Value::as_array) {
        let label = json.pointer("/sweep/backend").and_then(Value::as_str).unwrap_or("router").to_string();
        let f = report::num;
        let sweep_rows: Vec<Vec<String>> = steps
            .iter()
            .map(|s| {
                vec![
                    format!("{:.0}", f(s, "fps")),
                    format!("{:.0}", offered_out(f(s, "fps"))),
                    format!("{:.0}", f(s, "egress_pps")),
                    format!("{:.3}%", 100.0 * f(s, "loss")),
                    format!("{:.0}", f(s, "p99_latency_us")),
                ]
            })
            .collect();
        md.push_str(&format!("\n## Sweep ({label})\n\n"));
        md.push_str(&report::md_table(&["fps", "offered pps out", "egress pps", "loss", "p99 us"], &sweep_rows));
        if let Some(o) = json.pointer("/sweep/loss_onset_offered_egress_pps").and_then(Value::as_f64) {
            md.push_str(&format!("\nLoss starts at {o:.0} pps offered out."));
            if let Some(c) = json.pointer("/sweep/highest_clean_fps").and_then(Value::as_f64) {
                md.push_str(&format!(" The highest rate without loss: {:.0} pps ({c:.0} fps).", offered_out(c)));
            }
            if let Some(at) = json.pointer("/sweep/at_80_percent").filter(|v| !v.is_null()) {
                md.push_str(&format!(
                    " At 80% of that rate ({:.0} fps): {:.0} pps out, loss {:.3}%, p99 {:.0} us.",
                    f(at, "fps"),
                    f(at, "egress_pps"),
                    100.0 * f(at, "loss"),
                    f(at, "p99_latency_us")
                ));
            }
            md.push('\n');
        } else {
            md.push_str("\nNo loss onset within the sweep (where delivered stops following offered, the load generator is the limit).\n");
        }
        md.push_str(
            "\n![delivered against offered rate](sweep_throughput.svg)\n\n![p99 against delivered rate](sweep_latency.svg)\n",
        );
        let target: Vec<(f64, f64)> =
            steps.iter().map(|s| (offered_out(f(s, "fps")), offered_out(f(s, "fps")))).collect();
        let delivered: Vec<(f64, f64)> = steps.iter().map(|s| (offered_out(f(s, "fps")), f(s, "egress_pps"))).collect();
        let p99: Vec<(f64, f64)> = steps.iter().map(|s| (f(s, "egress_pps"), f(s, "p99_latency_us"))).collect();
        files.push((
            "sweep_throughput.svg".into(),
            plot::line_chart(
                "Delivered against offered load",
                &Axis::linear("offered egress packets/s"),
                &Axis::linear("delivered egress packets/s"),
                &[
                    Series { label: label.clone(), points: delivered },
                    Series { label: "offered".into(), points: target },
                ],
            ),
        ));
        files.push((
            "sweep_latency.svg".into(),
            plot::line_chart(
                "p99 latency against delivered load",
                &Axis::linear("delivered egress packets/s"),
                &Axis::log("p99 latency (us)"),
                &[Series { label, points: p99 }],
            ),
        ));
    }
    files.push(("fanout.json".into(), serde_json::to_string_pretty(json)? + "\n"));
    files.push(("fanout.md".into(), md));
    report::write_all(dir, &files)
}
