//! `--sweep`: the loss onset of one forwarder.

use serde_json::{json, Value};

use super::load::run_one;
use super::{FanoutArgs, Forwarder};

/// The loss onset search: from `start` fps up ×1.5 a step (at most 8) until
/// `lossy(fps)` says a rate loses, then three bisection steps at most
/// between the last clean and the first lossy rate. Returns (highest clean
/// rate, lowest lossy rate), either `None` when the search did not see one.
pub(super) fn find_onset(
    start: u32,
    lossy: &mut impl FnMut(u32) -> anyhow::Result<bool>,
) -> anyhow::Result<(Option<u32>, Option<u32>)> {
    let mut fps = f64::from(start.max(1));
    let mut clean: Option<u32> = None;
    let mut onset: Option<u32> = None;
    for _ in 0..8 {
        let f = fps.round() as u32;
        if lossy(f)? {
            onset = Some(f);
            break;
        }
        clean = Some(f);
        fps *= 1.5;
    }
    if let (Some(mut good), Some(mut bad)) = (clean, onset) {
        for _ in 0..3 {
            let mid = (good + bad) / 2;
            if mid == good || mid == bad {
                break;
            }
            if lossy(mid)? {
                bad = mid;
            } else {
                good = mid;
            }
        }
        return Ok((Some(good), Some(bad)));
    }
    Ok((clean, onset))
}

/// Raises the frame rate until `fwd` loses more than 0.1% (the loss onset),
/// narrows the onset down by bisecting between the last clean and the first
/// lossy rate (three more runs at most), then runs at 80% of the onset rate.
/// Returns every step (in rate order) and that run.
pub(super) fn sweep(args: &FanoutArgs, fwd: Forwarder) -> anyhow::Result<Value> {
    let mut steps = Vec::new();
    let offered = |a: &FanoutArgs| {
        (a.calls * a.participants * a.packets_per_frame * (a.participants - 1)) as f64 * f64::from(a.fps)
    };
    let mut step = |fps: u32| -> anyhow::Result<bool> {
        let a = FanoutArgs { fps, ..args.clone() };
        let m = run_one(&a, fwd)?;
        eprintln!(
            "sweep {}: {} fps -> {:.0} pps out, loss {:.3}%, p99 {:.0} us",
            m.label,
            a.fps,
            m.egress_pps(),
            100.0 * m.loss(),
            m.pct(0.99)
        );
        steps.push(json!({"fps": a.fps, "offered_egress_pps": offered(&a), "egress_pps": m.egress_pps(),
            "loss": m.loss(), "p99_latency_us": m.pct(0.99)}));
        Ok(m.loss() > 0.001)
    };
    let (clean, onset) = find_onset(args.fps, &mut step)?;
    steps.sort_by_key(|s| s["fps"].as_u64());
    let onset = onset.map(|f| (f, offered(&FanoutArgs { fps: f, ..args.clone() })));
    let at80 = match onset {
        Some((onset_fps, _)) => {
            let a = FanoutArgs { fps: ((f64::from(onset_fps) * 0.8).round() as u32).max(1), ..args.clone() };
            let m = run_one(&a, fwd)?;
            eprintln!(
                "sweep {}: at 80% of the onset ({} fps): {:.0} pps out, loss {:.3}%, p99 {:.0} us",
                m.label,
                a.fps,
                m.egress_pps(),
                100.0 * m.loss(),
                m.pct(0.99)
            );
            json!({"fps": a.fps, "egress_pps": m.egress_pps(), "loss": m.loss(), "p99_latency_us": m.pct(0.99)})
        }
        None => Value::Null,
    };
    Ok(json!({
        "backend": fwd.label(),
        "steps": steps,
        "loss_onset_fps": onset.map(|o| o.0),
        "highest_clean_fps": clean,
        "loss_onset_offered_egress_pps": onset.map(|o| o.1),
        "at_80_percent": at80,
    }))
}
