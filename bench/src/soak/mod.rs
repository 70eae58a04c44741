//! `corecast-bench soak`: calls with constant join/leave churn through the
//! control plane and the router for minutes, sampling each service's
//! resident set and open file descriptors and the router's buffers and
//! counters, then checking that nothing grew beyond a stated bound, that
//! everyone who joined left, and that no service panicked or died.
//!
//! - `system`: starts and stops the stores, the control plane and the router;
//! - `churn`: the users, calls, joins, media and leaves;
//! - `probe`: `/proc` and the router's admin API;
//! - `report`: the checks, the table and the report files.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use corecast_client::ControlClient;

mod churn;
mod probe;
mod report;
mod system;

use churn::{Churn, ChurnPlan, Urls};
use probe::Sample;
use report::{Bounds, SoakResult};
use system::{Stores, System, SystemOptions};

/// Options of `soak`.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// Minutes of churn.
    #[arg(long, conflicts_with = "seconds")]
    minutes: Option<u64>,
    /// Seconds of churn (for short runs; default 60 when neither is given).
    #[arg(long)]
    seconds: Option<u64>,
    /// Seconds of warm-up before the start sample (default: a quarter of the
    /// run, at least 10 and at most 120).
    #[arg(long)]
    warmup_seconds: Option<u64>,
    /// Calls side by side.
    #[arg(long, default_value_t = 4)]
    calls: usize,
    /// Participants per call (each sends and receives).
    #[arg(long, default_value_t = 3)]
    participants: usize,
    /// Video frames per second per publisher, one packet each (audio: 50 packets/s).
    #[arg(long, default_value_t = 10)]
    video_fps: u32,
    /// Video packet size, bytes.
    #[arg(long, default_value_t = 1000)]
    video_packet_size: usize,
    /// Seconds a participant stays in a call, at least.
    #[arg(long, default_value_t = 3)]
    min_stay: u64,
    /// ... and at most.
    #[arg(long, default_value_t = 8)]
    max_stay: u64,
    /// The control plane's stores.
    #[arg(long, value_enum, default_value = "real")]
    stores: Stores,
    /// Where `corecast-control` and `corecast-router` are (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The stores' start/stop script (`--stores real` without `CORECAST_TEST_*`).
    #[arg(long, default_value = "control/scripts/servers.sh")]
    servers_script: PathBuf,
    /// Seconds between samples.
    #[arg(long, default_value_t = 5)]
    sample_seconds: u64,
    /// RSS growth allowed to the router after warm-up, MiB. Default: the
    /// retransmission buffers of every publisher the churn can have at once
    /// (512 slots of a video packet each), a working set the warm-up need not
    /// have reached, plus 2 MiB (8.2 MiB for 4 calls of 3 with 1000-byte packets).
    #[arg(long)]
    max_router_rss_growth_mib: Option<f64>,
    /// RSS growth allowed to the control plane after warm-up, MiB: each
    /// login hashes with argon2id in a 19 MiB block, at most one per CPU at
    /// once, and the allocator may keep a block per thread that ran one, so
    /// the first logins on a new thread add 19 MiB that stays (measured: +19.1
    /// MiB in a 20 s run, then flat for 30 minutes). Two such steps and 10 MiB.
    #[arg(long, default_value_t = 48.0)]
    max_control_rss_growth_mib: f64,
    /// Open file descriptors the router may gain after warm-up.
    #[arg(long, default_value_t = 8)]
    max_router_fd_growth: u64,
    /// Open file descriptors the control plane may gain after warm-up.
    #[arg(long, default_value_t = 32)]
    max_control_fd_growth: u64,
    /// Failed operations (and, apart, participants timed out) allowed: one, plus
    /// this fraction of the joins tried.
    #[arg(long, default_value_t = 0.01)]
    max_error_fraction: f64,
    /// Write soak.md and soak.json into this directory.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print the result as JSON instead of the tables.
    #[arg(long)]
    json: bool,
    /// Keep the scratch directory (services' logs, the stores' files).
    #[arg(long)]
    keep: bool,
}

/// Samples the system now (`at`: seconds since the churn started).
fn sample(sys: &System, http: &reqwest::blocking::Client, at: f64) -> Sample {
    let stats = system::get(http, &format!("{}/v1/stats", sys.admin), Some(&sys.secret))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|v| probe::router_sample(&v))
        .unwrap_or_default();
    Sample {
        at_s: at,
        router: probe::proc_sample(sys.router.pid()).unwrap_or_default(),
        control: probe::proc_sample(sys.control.pid()).unwrap_or_default(),
        stats,
    }
}

pub fn run(a: SoakArgs) -> anyhow::Result<()> {
    let seconds = a.minutes.map(|m| m * 60).or(a.seconds).unwrap_or(60);
    anyhow::ensure!(seconds >= 20, "a soak needs at least 20 seconds");
    anyhow::ensure!(a.calls >= 1 && a.participants >= 2, "at least 1 call of 2 participants");
    anyhow::ensure!(a.min_stay >= 1 && a.max_stay >= a.min_stay, "--min-stay ≥ 1 and ≤ --max-stay");
    let warmup = a.warmup_seconds.unwrap_or((seconds / 4).clamp(10, 120));
    anyhow::ensure!(warmup + 5 < seconds, "the warm-up must end before the run");
    let bin_dir = match &a.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().context("no directory of this binary")?.to_path_buf(),
    };
    let dir = std::env::temp_dir().join(format!("corecast-soak-{}-{:08x}", std::process::id(), rand::random::<u32>()));
    let say = |m: String| {
        if !a.json {
            eprintln!("soak: {m}");
        }
    };
    say(format!("starting the system in {} (stores: {:?})", dir.display(), a.stores));
    let mut sys = System::start(&SystemOptions {
        bin_dir,
        dir: dir.clone(),
        stores: a.stores,
        servers_script: a.servers_script.clone(),
    })?;
    let result = soak(&a, &mut sys, seconds, warmup, &say);
    let stop = sys.stop();
    let mut r = result?;
    r.stop = Some(stop);
    r.checks = report::checks(&r);
    if a.keep || r.checks.iter().any(|c| !c.ok) {
        say(format!("logs kept in {}", dir.display()));
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        report::print(&r);
    }
    if let Some(d) = &a.report {
        for p in crate::report::write_all(d, &report::files(&r)?)? {
            say(format!("wrote {}", p.display()));
        }
    }
    let failed: Vec<_> = r.checks.iter().filter(|c| !c.ok).map(|c| c.what.as_str()).collect();
    anyhow::ensure!(failed.is_empty(), "soak checks failed: {}", failed.join("; "));
    Ok(())
}

/// The run proper, on a started system (stopped by the caller whatever happens).
fn soak(a: &SoakArgs, sys: &mut System, seconds: u64, warmup: u64, say: &dyn Fn(String)) -> anyhow::Result<SoakResult> {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let ctl = ControlClient::new();
    let pool = churn::register_pool(&ctl, &sys.auth, a.calls * a.participants)?;
    let session = churn::login(&ctl, &sys.auth, &pool[0])?;
    churn::wait_for_placement(&ctl, &sys.calls, &session, sys.router_addr, Duration::from_secs(30))?;
    let urls = Urls { auth: sys.auth.clone(), calls: sys.calls.clone() };
    let initial = sample(sys, &http, 0.0);
    say(format!(
        "{} calls x {} participants for {seconds} s ({warmup} s warm-up); router {}, calls {}",
        a.calls, a.participants, sys.router_addr, sys.calls
    ));
    let started = Instant::now();
    let plan = ChurnPlan {
        calls: a.calls,
        participants: a.participants,
        video_fps: a.video_fps,
        video_packet_size: a.video_packet_size,
        stay: (Duration::from_secs(a.min_stay), Duration::from_secs(a.max_stay)),
        stagger: Duration::from_millis(300),
        until: started + Duration::from_secs(seconds),
    };
    let churn = Churn::default();
    let stop = AtomicBool::new(false);
    let mut samples = vec![initial];
    let (mut start, mut end) = (None, None);
    let mut exited = Vec::new();
    std::thread::scope(|s| {
        let worker = s.spawn(|| churn::run(&plan, &urls, &pool, &churn, &stop));
        let every = Duration::from_secs(a.sample_seconds.max(1));
        let mut next = started + every;
        while !worker.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            exited = sys.exited();
            if !exited.is_empty() {
                stop.store(true, Ordering::Relaxed);
                continue;
            }
            let t = started.elapsed().as_secs_f64();
            if start.is_none() && t >= warmup as f64 {
                start = Some(sample(sys, &http, t));
                samples.push(start.unwrap_or_default());
            } else if end.is_none() && Instant::now() >= plan.until {
                end = Some(sample(sys, &http, t));
                samples.push(end.unwrap_or_default());
            } else if Instant::now() >= next {
                let x = sample(sys, &http, t);
                samples.push(x);
                if !a.json && end.is_none() {
                    let tl = churn.tally();
                    eprintln!(
                        "soak: t={t:>5.0}s router {:.1} MiB {} fds, control {:.1} MiB {} fds; {} in calls; {} joins, {} errors",
                        x.router.rss_kib as f64 / 1024.0,
                        x.router.fds,
                        x.control.rss_kib as f64 / 1024.0,
                        x.control.fds,
                        x.stats.participants,
                        tl.native_joins,
                        tl.errors
                    );
                }
            }
            while next <= Instant::now() {
                next += every;
            }
        }
    });
    anyhow::ensure!(exited.is_empty(), "services exited during the soak: {exited:?}");
    let start = start.context("the run ended before the warm-up")?;
    // The churn can finish while a sample is being taken (a slow one, on a loaded machine)
    // and the loop then ends before its end sample: taken now, as the churn has just ended.
    let end = match end {
        Some(end) => end,
        None => {
            let end = sample(sys, &http, started.elapsed().as_secs_f64());
            samples.push(end);
            end
        }
    };
    // Everyone has left; the router lets go of calls and participants at
    // once (at worst a lost leave times one out: 15 s of silence).
    let limit = Instant::now() + Duration::from_secs(25);
    let mut drained = sample(sys, &http, started.elapsed().as_secs_f64());
    while (drained.stats.participants > 0 || drained.stats.calls > 0) && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(250));
        drained = sample(sys, &http, started.elapsed().as_secs_f64());
    }
    samples.push(drained);
    let peak = |f: fn(&Sample) -> u64| samples.iter().map(f).max().unwrap_or(0);
    Ok(SoakResult {
        command: crate::report::command_line(),
        seconds: plan.until.saturating_duration_since(started).as_secs_f64(),
        warmup_seconds: warmup as f64,
        stores: sys.stores.clone(),
        calls: a.calls,
        participants: a.participants,
        bounds: Bounds {
            router_rss_growth_mib: a.max_router_rss_growth_mib.unwrap_or_else(|| {
                let publishers = (a.calls * a.participants) as f64;
                2.0 + publishers * 512.0 * (a.video_packet_size + 64) as f64 / (1024.0 * 1024.0)
            }),
            control_rss_growth_mib: a.max_control_rss_growth_mib,
            router_fd_growth: a.max_router_fd_growth,
            control_fd_growth: a.max_control_fd_growth,
            error_fraction: a.max_error_fraction,
        },
        initial,
        start,
        end,
        drained,
        peak_rss_kib: (peak(|s| s.router.rss_kib), peak(|s| s.control.rss_kib)),
        samples,
        tally: churn.tally(),
        errors: churn.errors(),
        stop: None,
        checks: Vec::new(),
    })
}
