//! The soak's verdict: the checks against their bounds, the table printed
//! at the end, and the report files (`--report DIR`: Markdown and JSON).

use serde::Serialize;

use super::churn::Tally;
use super::probe::Sample;
use super::system::StopReport;
use crate::report::{md_header, md_table};

/// The bounds a soak is held to.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Bounds {
    /// Resident-set growth allowed to the router from the start sample
    /// (after warm-up) to the end sample (still under load), MiB.
    pub router_rss_growth_mib: f64,
    /// ... and to the control plane.
    pub control_rss_growth_mib: f64,
    /// Open file descriptors the router may gain between the same samples.
    pub router_fd_growth: u64,
    /// ... and the control plane (its store pools and HTTP connections come and go).
    pub control_fd_growth: u64,
    /// Failed operations (and, apart, participants timed out) allowed: one, plus this fraction of the joins.
    pub error_fraction: f64,
}

/// One check and whether it held.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked.
    pub what: String,
    /// What was measured, against what bound.
    pub measured: String,
    /// It held.
    pub ok: bool,
}

fn check(what: &str, ok: bool, measured: String) -> Check {
    Check { what: what.into(), measured, ok }
}

/// Everything a soak run found.
#[derive(Debug, Clone, Serialize)]
pub struct SoakResult {
    /// The command line.
    pub command: String,
    /// Seconds of churn, and of warm-up within them.
    pub seconds: f64,
    /// Warm-up seconds (the start sample is taken after them).
    pub warmup_seconds: f64,
    /// Which stores.
    pub stores: String,
    /// Calls side by side, participants per call.
    pub calls: usize,
    /// Participants per call.
    pub participants: usize,
    /// The bounds.
    pub bounds: Bounds,
    /// Before the churn (system idle, router registered).
    pub initial: Sample,
    /// After warm-up, under load.
    pub start: Sample,
    /// At the end of the churn, under load.
    pub end: Sample,
    /// After everyone left and every call ended.
    pub drained: Sample,
    /// Largest resident sets seen over the run, KiB (router, control).
    pub peak_rss_kib: (u64, u64),
    /// Every sample (one each `--sample-seconds`).
    pub samples: Vec<Sample>,
    /// What the churn did.
    pub tally: Tally,
    /// The first failed operations, word for word.
    pub errors: Vec<String>,
    /// How the services stopped.
    pub stop: Option<StopReport>,
    /// The checks.
    pub checks: Vec<Check>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn growth(a: u64, b: u64) -> i64 {
    b as i64 - a as i64
}

/// Checks the run against `bounds`; returns the checks.
pub fn checks(r: &SoakResult) -> Vec<Check> {
    let b = &r.bounds;
    let t = &r.tally;
    let mut v = Vec::new();
    for (name, start, end, allowed_mib) in [
        ("router", &r.start.router, &r.end.router, b.router_rss_growth_mib),
        ("control", &r.start.control, &r.end.control, b.control_rss_growth_mib),
    ] {
        let allowed = allowed_mib * 1024.0;
        let g = growth(start.rss_kib, end.rss_kib);
        v.push(check(
            &format!("{name} RSS growth after warm-up"),
            (g as f64) <= allowed,
            format!(
                "{:.1} → {:.1} MiB ({:+.1} MiB; bound {:.1} MiB)",
                mib(start.rss_kib),
                mib(end.rss_kib),
                g as f64 / 1024.0,
                allowed / 1024.0
            ),
        ));
        let fd_bound = if name == "router" { b.router_fd_growth } else { b.control_fd_growth };
        let g = growth(start.fds, end.fds);
        v.push(check(
            &format!("{name} open fds growth after warm-up"),
            g <= fd_bound as i64,
            format!("{} → {} ({g:+}; bound +{fd_bound})", start.fds, end.fds),
        ));
    }
    let d = &r.drained.stats;
    let i = &r.initial.stats;
    v.push(check(
        "router empty after the churn",
        d.participants == 0 && d.calls == 0,
        format!("{} participants, {} calls", d.participants, d.calls),
    ));
    v.push(check(
        "retransmission buffers held under load, freed after",
        r.end.stats.retransmit_buffers > 0 && d.retransmit_buffers == 0 && d.retransmit_bytes == 0,
        format!(
            "{} buffers ({} KiB) at the end, {} ({} KiB) drained",
            r.end.stats.retransmit_buffers,
            r.end.stats.retransmit_bytes / 1024,
            d.retransmit_buffers,
            d.retransmit_bytes / 1024
        ),
    ));
    let joins = d.joins - i.joins;
    let leaves = d.leaves - i.leaves;
    v.push(check(
        "router joins = the churn's joins = router leaves",
        joins == t.native_joins && leaves == joins,
        format!("router joins {joins}, churn's joins {}, router leaves {leaves}", t.native_joins),
    ));
    // A slip a busy CI host may make (a lost leave, a slow store) is tolerated
    // once, and at most at `error_fraction` of the joins.
    let slips = 1 + (b.error_fraction * t.http_joins as f64) as u64;
    let timeouts = d.timeouts - i.timeouts;
    v.push(check(
        "participants timed out (a leave that did not reach the router)",
        timeouts <= slips,
        format!("{timeouts} (bound {slips})"),
    ));
    v.push(check(
        "calls started = calls ended",
        t.calls_started == t.calls_ended && t.calls_started > 0,
        format!("{} started, {} ended", t.calls_started, t.calls_ended),
    ));
    v.push(check(
        "media flowed, nothing corrupt",
        t.received > 0 && t.corrupt == 0,
        format!("{} sent, {} received, {} corrupt", t.sent, t.received, t.corrupt),
    ));
    let malformed = d.dropped_malformed - i.dropped_malformed;
    v.push(check("no malformed datagram at the router", malformed == 0, format!("{malformed}")));
    v.push(check(
        "failed operations",
        t.errors <= slips,
        format!(
            "{} in {} joins (bound {slips}: 1 + {:.1}% of the joins)",
            t.errors,
            t.http_joins,
            b.error_fraction * 100.0
        ),
    ));
    if let Some(stop) = &r.stop {
        for s in &stop.services {
            v.push(check(
                &format!("{} ran throughout and stopped cleanly on SIGINT", s.service),
                s.clean && !s.before_stop,
                s.status.clone(),
            ));
        }
        v.push(check("no panic in the services' logs", stop.panics.is_empty(), format!("{} lines", stop.panics.len())));
    }
    v
}

/// The samples table: initial, start, end, drained.
fn samples_table(r: &SoakResult) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let headers = vec![
        "sample",
        "t s",
        "router RSS MiB",
        "router fds",
        "router threads",
        "control RSS MiB",
        "control fds",
        "participants",
        "calls",
        "rtx buffers",
        "rtx buffer KiB",
        "joins",
        "leaves",
        "timeouts",
        "dropped",
    ];
    let row = |name: &str, s: &Sample| {
        vec![
            name.to_string(),
            format!("{:.0}", s.at_s),
            format!("{:.1}", mib(s.router.rss_kib)),
            s.router.fds.to_string(),
            s.router.threads.to_string(),
            format!("{:.1}", mib(s.control.rss_kib)),
            s.control.fds.to_string(),
            s.stats.participants.to_string(),
            s.stats.calls.to_string(),
            s.stats.retransmit_buffers.to_string(),
            format!("{:.0}", s.stats.retransmit_bytes as f64 / 1024.0),
            s.stats.joins.to_string(),
            s.stats.leaves.to_string(),
            s.stats.timeouts.to_string(),
            s.stats.dropped.to_string(),
        ]
    };
    let rows = vec![
        row("initial (idle)", &r.initial),
        row("start (after warm-up)", &r.start),
        row("end (under load)", &r.end),
        row("drained", &r.drained),
    ];
    (headers, rows)
}

fn checks_table(r: &SoakResult) -> Vec<Vec<String>> {
    r.checks
        .iter()
        .map(|c| vec![c.what.clone(), c.measured.clone(), if c.ok { "ok" } else { "FAILED" }.into()])
        .collect()
}

fn tally_line(r: &SoakResult) -> String {
    let t = &r.tally;
    format!(
        "{} calls started / {} ended; {} logins; joins {} at calls, {} at the router; leaves {} at the router, {} at calls ({} already gone); {} packets sent, {} received, {} corrupt; {} failed operations",
        t.calls_started,
        t.calls_ended,
        t.logins,
        t.http_joins,
        t.native_joins,
        t.native_leaves,
        t.http_leaves,
        t.http_leaves_gone,
        t.sent,
        t.received,
        t.corrupt,
        t.errors
    )
}

/// Prints the tables to stdout.
pub fn print(r: &SoakResult) {
    let (headers, rows) = samples_table(r);
    println!(
        "soak: {:.0} s of churn ({:.0} s warm-up), {} calls x {} participants, stores: {}",
        r.seconds, r.warmup_seconds, r.calls, r.participants, r.stores
    );
    print!("{}", md_table(&headers, &rows));
    println!("peak RSS: router {:.1} MiB, control {:.1} MiB", mib(r.peak_rss_kib.0), mib(r.peak_rss_kib.1));
    println!("{}", tally_line(r));
    print!("{}", md_table(&["check", "measured", ""], &checks_table(r)));
    for e in &r.errors {
        println!("  error: {e}");
    }
    if let Some(s) = &r.stop {
        for p in &s.panics {
            println!("  panic: {p}");
        }
    }
}

/// The report files: `soak.md` and `soak.json`.
pub fn files(r: &SoakResult) -> anyhow::Result<Vec<(String, String)>> {
    let (headers, rows) = samples_table(r);
    let mut md = md_header("corecast-bench soak");
    md.push_str(&format!(
        "- {:.0} s of churn ({:.0} s warm-up), {} calls x {} participants; stores: {}\n\n",
        r.seconds, r.warmup_seconds, r.calls, r.participants, r.stores
    ));
    md.push_str(&md_table(&headers, &rows));
    md.push_str(&format!(
        "\nPeak RSS: router {:.1} MiB, control {:.1} MiB.\n\n{}.\n\n",
        mib(r.peak_rss_kib.0),
        mib(r.peak_rss_kib.1),
        tally_line(r)
    ));
    md.push_str(&md_table(&["check", "measured", ""], &checks_table(r)));
    let series: Vec<Vec<String>> = r
        .samples
        .iter()
        .map(|s| {
            vec![
                format!("{:.0}", s.at_s),
                format!("{:.1}", mib(s.router.rss_kib)),
                s.router.fds.to_string(),
                format!("{:.1}", mib(s.control.rss_kib)),
                s.control.fds.to_string(),
                s.stats.participants.to_string(),
                format!("{:.0}", s.stats.retransmit_bytes as f64 / 1024.0),
            ]
        })
        .collect();
    md.push_str("\n## Samples\n\n");
    md.push_str(&md_table(
        &["t s", "router RSS MiB", "router fds", "control RSS MiB", "control fds", "participants", "rtx buffer KiB"],
        &series,
    ));
    Ok(vec![("soak.md".into(), md), ("soak.json".into(), serde_json::to_string_pretty(r)?)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::probe::{ProcSample, RouterSample};

    fn sample(rss_kib: u64, fds: u64, participants: u64, joins: u64, leaves: u64, rtx: u64) -> Sample {
        let p = ProcSample { rss_kib, fds, threads: 4 };
        Sample {
            at_s: 0.0,
            router: p,
            control: p,
            stats: RouterSample {
                participants,
                calls: participants.min(1),
                joins,
                leaves,
                retransmit_buffers: rtx,
                retransmit_bytes: rtx * 1000,
                ..Default::default()
            },
        }
    }

    fn result(end_rss_kib: u64, drained_participants: u64) -> SoakResult {
        let tally = Tally {
            calls_started: 3,
            calls_ended: 3,
            native_joins: 9,
            http_joins: 9,
            sent: 10,
            received: 20,
            ..Default::default()
        };
        SoakResult {
            command: String::new(),
            seconds: 60.0,
            warmup_seconds: 15.0,
            stores: String::new(),
            calls: 1,
            participants: 3,
            bounds: Bounds {
                router_rss_growth_mib: 8.0,
                control_rss_growth_mib: 48.0,
                router_fd_growth: 8,
                control_fd_growth: 32,
                error_fraction: 0.01,
            },
            initial: sample(10_000, 10, 0, 0, 0, 0),
            start: sample(20_000, 16, 3, 3, 0, 3),
            end: sample(end_rss_kib, 17, 3, 6, 3, 3),
            drained: sample(end_rss_kib, 16, drained_participants, 9, 9 - drained_participants, 0),
            peak_rss_kib: (end_rss_kib, end_rss_kib),
            samples: Vec::new(),
            tally,
            errors: Vec::new(),
            stop: None,
            checks: Vec::new(),
        }
    }

    #[test]
    fn a_steady_run_passes_every_check() {
        let c = checks(&result(21_000, 0));
        assert!(c.iter().all(|c| c.ok), "{c:#?}");
    }

    #[test]
    fn growth_and_leftovers_fail() {
        let failed = |r: &SoakResult| checks(r).into_iter().filter(|c| !c.ok).map(|c| c.what).collect::<Vec<_>>();
        let f = failed(&result(20_000 + 9 * 1024, 0));
        assert_eq!(f, ["router RSS growth after warm-up"]);
        let f = failed(&result(21_000, 1));
        assert!(f.contains(&"router empty after the churn".to_string()), "{f:?}");
        assert!(f.contains(&"router joins = the churn's joins = router leaves".to_string()), "{f:?}");
    }
}
