//! The measured run: one mixer driven in real time by the pre-packetized
//! sources, with the process's CPU time, the driving thread's, the added
//! latency of every source picture shown and the peak resident memory.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use corecast_codec::{Mixer, MixerConfig};

use super::report::Figures;
use super::sources::{prepare_sources, SourceStream};
use super::RunConfig;
use crate::measure::{current_thread_cpu_s, process_cpu_s, reset_peak_rss, status_kb, Measured};

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
fn drive(cfg: &RunConfig, sources: &[SourceStream]) -> anyhow::Result<Figures> {
    let frames = cfg.frames();
    let interval = cfg.interval();
    let mixer_cfg = MixerConfig { fps: cfg.fps, preset: cfg.preset, ..MixerConfig::default() };

    let hwm_reset = reset_peak_rss();
    let rss_base_kb = status_kb("VmRSS").unwrap_or(0);
    let mut rss_sampled_kb = rss_base_kb;
    let mut mixer = Mixer::new(mixer_cfg).context("mixer")?;
    let mut col = Collected { latencies_ms: Vec::with_capacity(frames * sources.len()) };

    let cpu0 = process_cpu_s().context("/proc/self/stat")?;
    let thread0 = current_thread_cpu_s().unwrap_or(0.0);
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
    let driver_cpu_s = current_thread_cpu_s().unwrap_or(0.0) - thread0;
    rss_sampled_kb = rss_sampled_kb.max(status_kb("VmRSS").unwrap_or(0));
    let (peak_kb, peak_rss_from) = match status_kb("VmHWM") {
        Some(hwm) if hwm_reset => (hwm.max(rss_sampled_kb), "VmHWM"),
        _ => (rss_sampled_kb, "VmRSS samples"),
    };
    let stats = mixer.stats();
    drop(mixer);

    let input_bytes: u64 = sources.iter().map(|s| s.payload_bytes).sum();
    let mut latency = col.latencies_ms;
    latency.sort_by(f64::total_cmp);
    Ok(Figures {
        cfg: cfg.clone(),
        frames_expected: frames,
        run: Measured { wall_s, cpu_s, latency },
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
        rss_mb: peak_kb.saturating_sub(rss_base_kb) as f64 / 1024.0,
        process_rss_mb: peak_kb as f64 / 1024.0,
        peak_rss_from,
    })
}

/// Measures `cfg` with the first sources of `sources`, on a thread of its own.
fn measure(cfg: &RunConfig, sources: &[SourceStream]) -> anyhow::Result<Figures> {
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
pub(super) fn run_one(cfg: &RunConfig) -> anyhow::Result<Figures> {
    let sources = prepare_sources(cfg, cfg.layout.sources())?;
    measure(cfg, &sources)
}
