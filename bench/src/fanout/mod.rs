//! `corecast-bench fanout`: forwarding cost per router core.
//!
//! A load generator sends paced synthetic RTP frames (several equal-size
//! packets per frame) from every participant of every call over loopback;
//! the forwarder under test sends each packet to the call's other
//! participants; receivers count loss and one-way latency from a send
//! timestamp in the payload. The latency ends at the kernel's receive
//! timestamp on the client socket (`SO_TIMESTAMPNS`), so it is the
//! forwarding latency and leaves out how long the bench's receiving thread
//! waits for a CPU; `p99_app_latency_us` is the same up to that thread's
//! read. The forwarder's threads' CPU time comes from
//! `/proc/self/task/<tid>/schedstat`, so the headline figure is
//! **egress packets per second of router CPU** ("per core"), which does not
//! depend on how busy the load generator keeps the shared machine.
//!
//! The same load runs, in the same invocation, through:
//! - **corecast itself**: a [`RouterServer`](corecast_router::server::RouterServer) with its sans-IO core and worker
//!   loop on each socket backend (every client joins with a signed token and
//!   sends RTP with its own SSRC, exactly as a real client does);
//! - with `--backend-loops`, the bare socket backends driven by
//!   [`forward_with_backend`](forwarders::forward_with_backend) (a trivial fan-out loop with no core): the
//!   difference to the row above is what the core costs;
//! - an *ideal forwarder*: the simplest `recvmmsg`/`sendmmsg` loop with no
//!   logic beyond the fan-out table, and its GSO variant (one `UDP_SEGMENT`
//!   send per receiver per batch): the kernel's ceiling;
//! - a *naive forwarder*: tokio `recv_from`/`send_to`.
//!
//! Results are printed as ratios to the ideal (plain mmsg) forwarder; `--json`
//! prints them as JSON on stdout (the table then goes to stderr): the first
//! router run's figures at the top level, every run under `runs`.
//!
//! `--sweep` finds the loss onset of the first router configuration by
//! raising the frame rate ×1.5 a step and bisecting between the last clean
//! and the first lossy rate, then runs at 80% of that rate (JSON `sweep`).
//!
//! With `--pin` the forwarder's threads are pinned to CPUs 0..`--router-cores`
//! and the load generator's to the CPUs after them, so that the two do not
//! preempt each other (on 2 vCPUs the generator then limits the load); the
//! forwarder's CPU time is then its CPUs' whole busy time (`/proc/stat`:
//! the loopback softirq work the kernel defers to `ksoftirqd` included),
//! or its threads' time if that is larger.
//!
//! On loopback the receiving socket's kernel work runs in the sender's system
//! call, so each forwarder's CPU includes delivering to the clients' sockets
//! (the clients receive with GRO so GSO sends stay whole); absolute figures
//! are for comparing forwarders on one machine.
//!
//! Parts: [`forwarders`] (what forwards the load), [`load`] (sending,
//! receiving and timing the load, one measured run), [`report`] (the
//! figures, the table, JSON and report files), [`sweep`](mod@sweep) (the loss onset),
//! [`srtp`] (`--transport srtp`: the same load over WebRTC legs, DTLS-SRTP, and
//! the crypto library's seal time);
//! CPU time and percentiles come from [`crate::measure`].

mod forwarders;
mod load;
mod report;
mod srtp;
mod sweep;
#[cfg(test)]
mod tests;

use anyhow::bail;
use corecast_router::net::uring;
use corecast_router::net::BackendKind;

use self::load::run_one;
use self::report::{print_table, report_json, write_report, Figures};
use self::sweep::sweep;

/// Options of `corecast-bench fanout`.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// Concurrent calls.
    #[arg(long, default_value_t = 20)]
    pub calls: usize,
    /// Participants per call (each receives the other participants' packets).
    #[arg(long, default_value_t = 5)]
    pub participants: usize,
    /// Receivers of each packet (sets `--participants` to this + 1).
    #[arg(long)]
    pub fanout: Option<usize>,
    /// Frames per second each participant sends.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Packets per frame (equal size, as a paced client splits a frame).
    #[arg(long, default_value_t = 8)]
    pub packets_per_frame: usize,
    /// Packet size in bytes (at least 32).
    #[arg(long, default_value_t = 1200)]
    pub packet_size: usize,
    /// Forwarder threads (one socket each, SO_REUSEPORT on one address).
    #[arg(long, default_value_t = 1)]
    pub router_cores: usize,
    /// Router backend: auto, basic, mmsg, uring, or all (mmsg, mmsg+gso, uring, uring+gso);
    /// or xdp: the AF_XDP backend, then mmsg and mmsg+gso, all three over the same veth
    /// pair between two network namespaces the bench makes (root; the router in one, the
    /// load in the other; the reference forwarders, which run on loopback, are left out).
    #[arg(long, default_value = "all")]
    pub backend: String,
    /// Also run the bare socket backends under a trivial fan-out loop (no core).
    #[arg(long)]
    pub backend_loops: bool,
    /// Do not use UDP GSO in the router backends (ignored for `all`).
    #[arg(long)]
    pub no_gso: bool,
    /// Seconds of load per configuration (at most 30).
    #[arg(long, alias = "seconds", default_value_t = 3.0)]
    pub duration: f64,
    /// Skip the ideal and naive reference forwarders.
    #[arg(long)]
    pub no_references: bool,
    /// Also run each corecast configuration with its retransmission buffer off
    /// (`RouterConfig.retransmission`, on by default), in the same invocation:
    /// what the buffer costs.
    #[arg(long)]
    pub retransmission_row: bool,
    /// Print JSON on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Pin the forwarder's threads to CPUs 0..router-cores and the load
    /// generator's to the CPUs after them (when there are more CPUs than
    /// router cores), as the latency target assumes; router CPU time
    /// is then the router CPUs' whole busy time from `/proc/stat`. Off by
    /// default: on a 2-vCPU machine one CPU cannot offer more than about
    /// 350k packets/s out, so for throughput the generator, not the router,
    /// limits (unless with `--sender-gso`).
    #[arg(long)]
    pub pin: bool,
    /// Also find where loss starts for the first router configuration (frame
    /// rate raised ×1.5 a step, at most 8 steps, until loss exceeds 0.1%, then
    /// narrowed down by bisection, at most 3 more steps), then run it at 80%
    /// of that rate.
    #[arg(long)]
    pub sweep: bool,
    /// Also write a report into this directory: `fanout.md` (the command,
    /// the host, the tables), `fanout.json`, and SVG plots of packets/s per
    /// core, latency by percentile and, with `--sweep`, delivered against
    /// offered rate and p99 against delivered rate.
    #[arg(long, value_name = "DIR")]
    pub report: Option<std::path::PathBuf>,
    /// The load generator sends each frame as one UDP GSO send (instead of
    /// one datagram per packet), so one generator CPU offers several times
    /// more. On loopback the forwarder then receives a frame as one
    /// coalesced datagram (GRO) or as its segments, as a NIC with GRO
    /// would deliver a burst of one client's packets; for finding loss
    /// onsets beyond what per-datagram sending can offer.
    #[arg(long)]
    pub sender_gso: bool,
    /// `plain`: RTP over the native transport only; `srtp`: also the same
    /// load over WebRTC legs (ICE, DTLS, SRTP; legs opened in-process with
    /// `RouterServer::open_webrtc`, no HTTP) through each router
    /// configuration, with the time SRTP adds per packet beside the crypto
    /// library's own seal time.
    #[arg(long, default_value = "plain", value_parser = ["plain", "srtp"])]
    pub transport: String,
    /// With `--transport srtp`: the SRTP profiles to run, one row each (the
    /// bench's peers offer only that profile): `aes128gcm` (AEAD_AES_128_GCM,
    /// what the router prefers), `aes256gcm`, `aescm` (AES128_CM_HMAC_SHA1_80).
    #[arg(long, value_delimiter = ',', default_value = "aes128gcm,aescm", value_parser = parse_profile)]
    pub srtp_profiles: Vec<corecast_proto::srtp::SrtpProfile>,
    /// Only the first this many participants of each call send (0: all).
    /// The SRTP rows' plain baseline uses 1: calls of one publisher and
    /// `fanout` receivers of one stream each, the shape of the SRTP groups.
    #[arg(skip)]
    pub senders_per_call: usize,
    /// `--backend xdp`: the veth pair every run goes over (the router's end
    /// in one namespace, the load generator's in the other).
    #[arg(skip)]
    pub veth: Option<std::sync::Arc<corecast_router::net::xdp::veth::VethPair>>,
}

fn parse_profile(s: &str) -> Result<corecast_proto::srtp::SrtpProfile, String> {
    corecast_proto::srtp::SrtpProfile::from_name(s)
        .ok_or_else(|| format!("unknown SRTP profile {s:?} (aes128gcm, aes256gcm or aescm)"))
}

/// What forwards the load in one configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forwarder {
    /// The real router (core + worker loop) on a backend.
    Corecast {
        kind: BackendKind,
        gso: bool,
        /// The router's retransmission buffer on (the default).
        retransmission: bool,
    },
    /// A bare backend under [`forward_with_backend`].
    Router {
        kind: BackendKind,
        gso: bool,
    },
    Ideal {
        gso: bool,
    },
    Naive,
}

impl Forwarder {
    fn label(&self) -> String {
        let backend = |kind: &BackendKind, gso: bool| {
            let k = kind.name();
            if gso && *kind != BackendKind::Basic {
                format!("{k}+gso")
            } else {
                k.to_string()
            }
        };
        match self {
            Forwarder::Corecast { kind, gso, retransmission: true } => format!("corecast-{}", backend(kind, *gso)),
            Forwarder::Corecast { kind, gso, retransmission: false } => {
                format!("corecast-{} no-retransmission", backend(kind, *gso))
            }
            Forwarder::Router { kind, gso } => format!("loop-{}", backend(kind, *gso)),
            Forwarder::Ideal { gso: false } => "ideal-mmsg".into(),
            Forwarder::Ideal { gso: true } => "ideal-mmsg+gso".into(),
            Forwarder::Naive => "naive-tokio".into(),
        }
    }
}

/// Runs the fan-out benchmark.
pub fn run(mut args: FanoutArgs) -> anyhow::Result<()> {
    if let Some(f) = args.fanout {
        args.participants = f + 1;
    }
    if args.participants < 2 || args.calls == 0 {
        bail!("need at least one call of two participants");
    }
    if args.router_cores == 0 || args.router_cores > 64 {
        bail!("--router-cores must be 1..=64");
    }
    let uring_ok = uring::probe().map_err(|e| eprintln!("io_uring unavailable, skipping it: {e}")).is_ok();
    let kinds: Vec<(BackendKind, bool)> = match args.backend.as_str() {
        "xdp" => {
            if args.transport != "plain" {
                bail!("--backend xdp runs the plain transport only");
            }
            let pair = corecast_router::net::xdp::veth::VethPair::create("bench", args.router_cores as u32)
                .map_err(|e| anyhow::anyhow!("--backend xdp needs a veth pair between network namespaces: {e}"))?;
            eprintln!(
                "fanout: over veth {} (namespace {}) <-> namespace {}",
                pair.router_if, pair.router_ns, pair.client_ns
            );
            args.veth = Some(std::sync::Arc::new(pair));
            args.no_references = true;
            vec![(BackendKind::Xdp, false), (BackendKind::Mmsg, false), (BackendKind::Mmsg, true)]
        }
        "all" => {
            let mut k = vec![(BackendKind::Mmsg, false), (BackendKind::Mmsg, true)];
            if uring_ok {
                k.extend([(BackendKind::Uring, false), (BackendKind::Uring, true)]);
            }
            k
        }
        other => {
            let kind: BackendKind = other.parse()?;
            // Auto as `net::open` decides it: mmsg with GSO, io_uring without.
            let kind = match kind {
                BackendKind::Auto if args.no_gso && uring_ok => BackendKind::Uring,
                BackendKind::Auto => BackendKind::Mmsg,
                k => k,
            };
            if kind == BackendKind::Uring && !uring_ok {
                bail!("io_uring is not available here");
            }
            vec![(kind, !args.no_gso)]
        }
    };
    let mut routers: Vec<Forwarder> =
        kinds.iter().map(|&(kind, gso)| Forwarder::Corecast { kind, gso, retransmission: true }).collect();
    if args.retransmission_row {
        routers.extend(kinds.iter().map(|&(kind, gso)| Forwarder::Corecast { kind, gso, retransmission: false }));
    }
    if args.backend_loops {
        routers.extend(kinds.iter().map(|&(kind, gso)| Forwarder::Router { kind, gso }));
    }
    let fanout = args.participants - 1;
    let clients = args.calls * args.participants;
    let ingress = clients as f64 * f64::from(args.fps) * args.packets_per_frame as f64;
    eprintln!(
        "fanout: {} calls x {} participants ({} clients), {} fps x {} packets of {} B: {:.0} pps in, {:.0} pps out; {} router core(s), {:.1} s each",
        args.calls,
        args.participants,
        clients,
        args.fps,
        args.packets_per_frame,
        args.packet_size,
        ingress,
        ingress * fanout as f64,
        args.router_cores,
        args.duration
    );
    // References first, then the router: paired in one run on the same machine state.
    let mut refs = Vec::new();
    if !args.no_references {
        for f in [Forwarder::Ideal { gso: false }, Forwarder::Ideal { gso: true }, Forwarder::Naive] {
            refs.push(run_one(&args, f)?);
        }
    }
    let sweep = match (args.sweep, routers.first()) {
        (true, Some(&f)) => Some(sweep(&args, f)?),
        _ => None,
    };
    let mut results = Vec::new();
    for &f in &routers {
        results.push(run_one(&args, f)?);
    }
    let srtp_json = if args.transport == "srtp" { Some(run_srtp_rows(&args, &routers, &mut results)?) } else { None };
    let ideal = refs.first();
    let rows: Vec<&Figures> = results.iter().chain(refs.iter()).collect();
    print_table(&rows, ideal, args.json);
    let mut v = report_json(&args, fanout, &results, &refs);
    if let (Some(sw), Some(o)) = (sweep, v.as_object_mut()) {
        o.insert("sweep".into(), sw);
    }
    if let (Some(s), Some(o)) = (srtp_json, v.as_object_mut()) {
        o.insert("srtp".into(), s);
    }
    if let Some(dir) = &args.report {
        let files = write_report(dir, &args, &rows, &v)?;
        eprintln!("report: {}", files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}

/// The SRTP runs (one per router configuration, after the plain ones, whose
/// rows they are paired with), the library's seal times, and the summary:
/// the time SRTP adds per packet, `1/pps_srtp - 1/pps_plain` per core.
fn run_srtp_rows(
    args: &FanoutArgs,
    routers: &[Forwarder],
    results: &mut Vec<Figures>,
) -> anyhow::Result<serde_json::Value> {
    use std::time::Duration;
    let budget = Duration::from_millis(300);
    // The payload of a packet of --packet-size bytes with a 12-byte RTP header.
    let payload = args.packet_size.max(32) - 12;
    let seal128 = srtp::library_seal_ns(&aws_lc_rs::aead::AES_128_GCM, payload, budget);
    let seal256 = srtp::library_seal_ns(&aws_lc_rs::aead::AES_256_GCM, payload, budget);
    let srtp_layer: Vec<(String, f64)> = corecast_proto::srtp::SrtpProfile::ALL
        .into_iter()
        .map(|p| (p.name().to_string(), srtp::srtp_seal_ns(p, args.packet_size.max(32), budget)))
        .collect();
    // What one seal costs in the library, per profile: aws-lc's AEAD seal
    // for GCM; for AES-CM (cipher and HMAC-SHA1, no one-call library
    // primitive) corecast's whole protect_rtp, an upper bound.
    let library_seal = |p: corecast_proto::srtp::SrtpProfile| match p {
        corecast_proto::srtp::SrtpProfile::AeadAes128Gcm => seal128,
        corecast_proto::srtp::SrtpProfile::AeadAes256Gcm => seal256,
        other => srtp_layer.iter().find(|(n, _)| n == other.name()).map_or(f64::NAN, |(_, t)| *t),
    };
    // The plain baseline of the SRTP rows has their shape: one sender and
    // `fanout` receivers of one stream each per call (the SRTP groups), so
    // the difference is what SRTP adds and not a different load.
    let shaped = FanoutArgs { calls: args.calls * args.participants, senders_per_call: 1, ..args.clone() };
    let mut rows = Vec::new();
    for f in routers {
        let Forwarder::Corecast { kind, gso, retransmission } = *f else { continue };
        let short = f.label().trim_start_matches("corecast-").to_string();
        let mut plain = run_one(&shaped, *f)?;
        plain.label = format!("{short} plain 1→{}", args.participants - 1);
        let a = plain.pps_per_core();
        results.push(plain);
        for &want in &args.srtp_profiles {
            let label = format!("{short} srtp {}", want.name());
            let (fig, profile) = srtp::run_srtp(args, (kind, gso, retransmission), want, label)?;
            if profile != Some(want) {
                anyhow::bail!("srtp: asked for {}, the legs negotiated {profile:?}", want.name());
            }
            let b = fig.pps_per_core();
            let added_ns = if a > 0.0 && b > 0.0 { 1e9 / b - 1e9 / a } else { f64::NAN };
            let seal = library_seal(want);
            eprintln!(
                "srtp {} {}: {b:.0} egress pps/core vs plain {a:.0} (same shape): +{added_ns:.0} ns per packet = {:.2}x the library's seal of {payload} B ({seal:.0} ns)",
                f.label(),
                want.name(),
                added_ns / seal,
            );
            rows.push(serde_json::json!({
                "router": f.label(),
                "profile": want.name(),
                "plain_pps_per_core": a,
                "srtp_pps_per_core": b,
                "srtp_loss": fig.loss(),
                "added_ns_per_packet": added_ns,
                "library_seal_ns": seal,
                "added_vs_library_seal": added_ns / seal,
            }));
            results.push(fig);
        }
    }
    eprintln!(
        "aws-lc-rs seal_in_place_separate_tag of {payload} B on one core: AES-128-GCM {seal128:.0} ns, AES-256-GCM {seal256:.0} ns; corecast SrtpContext::protect_rtp of {} B: {}",
        args.packet_size.max(32),
        srtp_layer.iter().map(|(n, t)| format!("{n} {t:.0} ns")).collect::<Vec<_>>().join(", ")
    );
    Ok(serde_json::json!({
        "payload_bytes": payload,
        "aws_lc_aes128gcm_seal_ns": seal128,
        "aws_lc_aes256gcm_seal_ns": seal256,
        "srtp_protect_rtp_ns": srtp_layer.into_iter().map(|(n, t)| (n, serde_json::json!(t))).collect::<serde_json::Map<_, _>>(),
        "runs": rows,
    }))
}
