//! How the cost of WebRTC receivers scales with the number of legs: the
//! shape of the fan-out bench (groups of one WebRTC publisher and four
//! receivers, 8 packets per frame from each publisher in turn), on
//! synthetic time, native receivers against WebRTC (SRTP) receivers.
//! A measurement, not a check: `cargo test -p corecast-core --release
//! webrtc_cost_by_legs -- --ignored --nocapture`.

use super::webrtc::{identity, video, Peer, VIDEO_SSRC};
use super::*;

/// Receivers per group, as in the bench.
const RECEIVERS: u16 = 4;
/// Packets per frame from one publisher (`SCALE_PER_FRAME` overrides 8).
fn per_frame() -> usize {
    std::env::var("SCALE_PER_FRAME").ok().and_then(|v| v.parse().ok()).unwrap_or(8)
}
/// Ingress packets per measurement, whatever the number of groups
/// (`SCALE_PACKETS` overrides it, e.g. for a profile).
fn packets() -> usize {
    std::env::var("SCALE_PACKETS").ok().and_then(|v| v.parse().ok()).unwrap_or(24_000)
}

/// Builds `groups` calls of one WebRTC publisher and [`RECEIVERS`]
/// receivers (WebRTC or native), then forwards [`packets`] packets, frames
/// interleaved across publishers; ns per egress packet.
fn run(groups: u16, webrtc: bool) -> f64 {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    let mut pubs = Vec::new();
    for g in 0..groups {
        let c = CallId([(g % 256) as u8, (g / 256) as u8, 0xCC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let base = 1 + g * (RECEIVERS + 1);
        pubs.push(Peer::join(&mut h, base, c, 1, true, None));
        for i in 1..=RECEIVERS {
            if webrtc {
                Peer::join(&mut h, base + i, c, 1 + u64::from(i), false, None);
            } else {
                let tok = h.token(c, 1 + u64::from(i), Role::Subscriber);
                h.join_with(addr(base + i), tok, vec![]);
            }
        }
    }
    let per_frame = per_frame();
    let frames = packets() / per_frame / pubs.len();
    let mut input = Vec::with_capacity(frames * per_frame * pubs.len());
    for f in 0..frames {
        for p in pubs.iter_mut() {
            for k in 0..per_frame {
                let seq = (f * per_frame + k) as u16;
                input.push((p.addr, Bytes::from(p.seal(&video(VIDEO_SSRC, seq, 35)))));
            }
        }
    }
    h.drain();
    h.take();
    let ingress = input.len();
    perf_control("enable");
    let (sent, ns) = forward_timed(&mut h, input);
    perf_control("disable");
    assert!(sent >= RECEIVERS as usize * ingress, "{sent} egress packets for {ingress} in");
    ns
}

/// Profiles only the forwarding: under `perf record -D -1
/// --control=fifo:CTL`, with `SCALE_PERF_CTL=CTL`.
/// Feeds `input` to the router, drains every output, and returns the
/// transmits and the wall time per transmit, ns.
pub(super) fn forward_timed(h: &mut H, input: Vec<(SocketAddr, Bytes)>) -> (usize, f64) {
    let t = Instant::now();
    let mut sent = 0usize;
    for (source, contents) in input {
        h.r.handle_input(h.now, Input::Receive { source, contents });
        loop {
            match h.r.poll_output() {
                Output::Transmit(_) => sent += 1,
                Output::Timeout(_) => break,
                _ => {}
            }
        }
    }
    (sent, t.elapsed().as_nanos() as f64 / sent as f64)
}

fn perf_control(command: &str) {
    if let Ok(path) = std::env::var("SCALE_PERF_CTL") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(path).expect("perf control fifo");
        writeln!(f, "{command}").expect("perf control");
    }
}

#[test]
#[ignore = "a measurement, not a check"]
fn webrtc_cost_by_legs() {
    // `SCALE_GROUPS=100 SCALE_ONLY=webrtc`: one shape, one kind (a profile).
    let only = std::env::var("SCALE_ONLY").ok();
    let groups: Vec<u16> = match std::env::var("SCALE_GROUPS") {
        Ok(v) => v.split(',').filter_map(|g| g.trim().parse().ok()).collect(),
        Err(_) => vec![1, 10, 100],
    };
    if let Some(kind) = &only {
        for &g in &groups {
            let ns = run(g, kind == "webrtc");
            println!("{g:>3} groups, {kind} receivers: {ns:.0} ns per egress packet");
        }
        return;
    }
    // Runs interleaved, the best of three kept: a loaded machine only adds.
    let mut best = vec![(f64::MAX, f64::MAX); groups.len()];
    for rep in 0..3 {
        for (&g, best) in groups.iter().zip(best.iter_mut()) {
            let (native, webrtc) = (run(g, false), run(g, true));
            println!("{g:>3} groups run {rep}: native {native:.0} ns, WebRTC {webrtc:.0} ns");
            *best = (best.0.min(native), best.1.min(webrtc));
        }
    }
    for (g, (native, webrtc)) in groups.iter().zip(best) {
        println!(
            "{g:>3} groups ({:>3} receivers), best of 3, per egress packet: native {native:.0} ns, WebRTC {webrtc:.0} ns, added {:.0} ns",
            g * RECEIVERS,
            webrtc - native
        );
    }
}
