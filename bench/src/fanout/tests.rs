//! Tests of the fan-out benchmark.

use std::net::SocketAddr;

use corecast_proto::srtp::SrtpProfile;
use corecast_router::net::BackendKind;
use serde_json::{json, Value};

use super::forwarders::FanoutTable;
use super::load::run_one;
use super::report::{report_json, write_report, Figures};
use super::sweep::find_onset;
use super::{FanoutArgs, Forwarder};
use crate::measure::Measured;

#[test]
fn table_lookup() {
    let a = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let t = FanoutTable::new(&[vec![a(1), a(2)], vec![a(3), a(4), a(5)]]);
    let (me, members) = t.lookup(&a(4)).unwrap();
    assert_eq!(t.addr(me), a(4));
    assert_eq!(members.iter().map(|&m| t.addr(m)).collect::<Vec<_>>(), vec![a(3), a(4), a(5)]);
    assert!(t.lookup(&a(9)).is_none());
}

#[test]
fn onset_search_brackets_the_threshold() {
    let run = |threshold: u32| {
        let mut tried = Vec::new();
        let r = find_onset(30, &mut |f| {
            tried.push(f);
            Ok(f >= threshold)
        })
        .unwrap();
        (r, tried)
    };
    // Steps 30, 45, 68, 101, 152, 228; then bisection between 152 and 228.
    let ((clean, onset), tried) = run(200);
    assert_eq!(&tried[..6], &[30, 45, 68, 101, 152, 228]);
    assert_eq!(tried.len(), 9);
    let (c, o) = (clean.unwrap(), onset.unwrap());
    assert!(c < 200 && o >= 200 && o - c <= 10, "{c}..{o}");
    // Lossy from the start: no clean rate; never lossy: no onset.
    assert_eq!(run(1).0, (None, Some(30)));
    assert_eq!(run(u32::MAX).0, (Some(513), None));
    assert_eq!(run(u32::MAX).1.len(), 8);
}

#[test]
fn report_has_tables_plots_and_json() {
    let args = FanoutArgs { calls: 2, participants: 3, fps: 20, packets_per_frame: 3, ..tiny_args() };
    let m = |label: &str, received: u64, cpu_s: f64| Figures {
        label: label.into(),
        sent: 100,
        expected: received,
        received,
        run: Measured { wall_s: 1.0, cpu_s, latency: (50..250).collect() },
        thread_cpu_s: cpu_s,
        cpu_from: "router threads (schedstat)",
        app_lat_us: (60..260).collect(),
        ..Default::default()
    };
    let rows = [m("corecast-mmsg+gso", 1000, 0.002), m("ideal-mmsg", 1000, 0.01), m("ideal-mmsg+gso", 1000, 0.0015)];
    let refs: Vec<&Figures> = rows.iter().collect();
    let mut v = report_json(&args, 2, &rows[..1], &rows[1..]);
    let step = |fps: u32, loss: f64| json!({"fps": fps, "egress_pps": 1000.0, "loss": loss, "p99_latency_us": 300.0});
    v.as_object_mut().unwrap().insert(
        "sweep".into(),
        json!({"backend": "corecast-mmsg+gso", "steps": [step(20, 0.0), step(30, 0.01)],
               "loss_onset_offered_egress_pps": 540.0, "at_80_percent": step(24, 0.0)}),
    );
    let dir = std::env::temp_dir().join(format!("corecast-report-{}", std::process::id()));
    let files = write_report(&dir, &args, &refs, &v).unwrap();
    let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        ["pps_per_core.svg", "latency.svg", "sweep_throughput.svg", "sweep_latency.svg", "fanout.json", "fanout.md"]
    );
    let md = std::fs::read_to_string(dir.join("fanout.md")).unwrap();
    assert!(md.contains("| corecast-mmsg+gso | 1000 | 500000 | 5.00x | 0.75x |"), "{md}");
    assert!(
        md.contains("Loss starts at 540 pps offered out. At 80% of that rate (24 fps): 1000 pps out, loss 0.000%"),
        "{md}"
    );
    for f in names.iter().filter(|n| n.ends_with(".svg")) {
        let svg = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(
            svg.starts_with("<svg")
                && svg.ends_with("</svg>\n")
                && svg.contains("<polyline") | svg.contains("class=\"bar\""),
            "{f}"
        );
    }
    let back: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("fanout.json")).unwrap()).unwrap();
    assert_eq!(back["backend"], "corecast-mmsg+gso");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The tests that start a router find its worker threads by their names, so
/// two routers starting at once would take each other's: one at a time.
fn one_router_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ROUTER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ROUTER.lock().unwrap_or_else(|e| e.into_inner())
}

fn tiny_args() -> FanoutArgs {
    FanoutArgs {
        calls: 2,
        participants: 3,
        fanout: None,
        fps: 20,
        packets_per_frame: 3,
        packet_size: 200,
        router_cores: 1,
        backend: "mmsg".into(),
        backend_loops: false,
        no_gso: false,
        duration: 0.3,
        no_references: false,
        retransmission_row: false,
        json: false,
        pin: false,
        sweep: false,
        report: None,
        sender_gso: false,
        transport: "plain".into(),
        srtp_profiles: vec![SrtpProfile::AeadAes128Gcm],
        senders_per_call: 0,
        veth: None,
    }
}

/// `--backend xdp`'s runs: the AF_XDP router, mmsg and mmsg+gso over one
/// veth pair between two network namespaces; every row delivers everything.
/// Needs root: skipped without, unless `CORECAST_REQUIRE_XDP=1` (`make unit`).
#[test]
fn tiny_runs_over_veth_with_the_xdp_backend() {
    let _one = one_router_at_a_time();
    let pair = match corecast_router::net::xdp::veth::VethPair::create("tiny", 1) {
        Ok(p) => p,
        Err(e) if std::env::var("CORECAST_REQUIRE_XDP").as_deref() != Ok("1") => {
            eprintln!("SKIP: no network namespaces here ({e})");
            return;
        }
        Err(e) => panic!("no veth pair for the xdp bench: {e}"),
    };
    let args = FanoutArgs { veth: Some(std::sync::Arc::new(pair)), ..tiny_args() };
    for (kind, gso) in [(BackendKind::Xdp, false), (BackendKind::Mmsg, false), (BackendKind::Mmsg, true)] {
        let f = run_one(&args, Forwarder::Corecast { kind, gso, retransmission: true }).unwrap();
        assert_eq!(f.received, f.expected, "{}: {}", f.label, f.note);
        if kind == BackendKind::Xdp {
            assert!(f.io.xdp_sent_datagrams > 0 && f.io.xdp_recv_datagrams > 0, "{:?}", f.io);
        }
    }
}

#[test]
fn tiny_run_through_every_forwarder() {
    let _one = one_router_at_a_time();
    let args = tiny_args();
    for f in [
        Forwarder::Corecast { kind: BackendKind::Mmsg, gso: true, retransmission: true },
        Forwarder::Router { kind: BackendKind::Mmsg, gso: true },
        Forwarder::Ideal { gso: false },
        Forwarder::Ideal { gso: true },
        Forwarder::Naive,
    ] {
        let m = run_one(&args, f).unwrap();
        assert!(m.sent > 0);
        assert_eq!(m.received, m.expected, "{f:?}: {m:?}");
        // Every packet is timed, by the kernel's receive timestamp.
        assert_eq!(m.run.latency.len() as u64, m.received, "{f:?}");
        assert_eq!(m.app_lat_us.len() as u64, m.received, "{f:?}");
        assert!(!m.note.contains("kernel timestamp"), "{f:?}: {}", m.note);
        assert_eq!(m.cpu_from, "router threads (schedstat)");
    }
    // Pinned (where there is a CPU to spare), the router CPUs' busy time is the cost.
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        let pinned = FanoutArgs { pin: true, ..args };
        let m =
            run_one(&pinned, Forwarder::Corecast { kind: BackendKind::Mmsg, gso: true, retransmission: true }).unwrap();
        assert_eq!(m.received, m.expected, "{m:?}");
        assert_eq!(m.cpu_from, "pinned router CPUs (/proc/stat)");
        assert!(m.run.cpu_s >= m.thread_cpu_s);
    }
    // A generator that sends each frame as one GSO send: every packet still arrives once.
    let gso = FanoutArgs { sender_gso: true, ..tiny_args() };
    for f in [
        Forwarder::Corecast { kind: BackendKind::Mmsg, gso: true, retransmission: true },
        Forwarder::Ideal { gso: true },
    ] {
        let m = run_one(&gso, f).unwrap();
        assert!(m.sent > 0);
        assert_eq!(m.received, m.expected, "{f:?} with a GSO sender: {m:?}");
    }
}

#[test]
fn tiny_srtp_run_seals_and_opens_every_packet_with_each_profile() {
    let _one = one_router_at_a_time();
    let args = FanoutArgs { calls: 1, transport: "srtp".into(), ..tiny_args() };
    for want in SrtpProfile::ALL {
        let (m, profile) =
            super::srtp::run_srtp(&args, (BackendKind::Mmsg, true, true), want, want.name().into()).unwrap();
        assert!(m.sent > 0);
        assert_eq!(m.received, m.expected, "{want:?}: {m:?}");
        assert!(!m.note.contains("did not open"), "{}", m.note);
        assert_eq!(m.run.latency.len() as u64, m.received);
        // The peers offer only `want`, so the router has to take it.
        assert_eq!(profile, Some(want));
    }
    let t = std::time::Duration::from_millis(5);
    assert!(super::srtp::library_seal_ns(&aws_lc_rs::aead::AES_128_GCM, 1188, t) > 0.0);
    assert!(super::srtp::srtp_seal_ns(SrtpProfile::AeadAes128Gcm, 1200, t) > 0.0);
}

#[test]
fn tiny_run_with_one_sender_per_call_delivers_its_fanout() {
    let _one = one_router_at_a_time();
    // The SRTP rows' plain baseline: one publisher, `participants - 1` receivers.
    let args = FanoutArgs { senders_per_call: 1, ..tiny_args() };
    let m = run_one(&args, Forwarder::Corecast { kind: BackendKind::Mmsg, gso: true, retransmission: true }).unwrap();
    let per_frame = (args.calls * args.packets_per_frame) as u64;
    assert!(m.sent > 0 && m.sent.is_multiple_of(per_frame), "only the first participant of each call sends: {m:?}");
    assert_eq!(m.received, m.expected, "{m:?}");
}

#[test]
fn tiny_run_with_the_retransmission_buffer_off_delivers_everything() {
    let _one = one_router_at_a_time();
    // The row that shows what the buffer costs: the same router with `retransmission: false`.
    let f = Forwarder::Corecast { kind: BackendKind::Mmsg, gso: true, retransmission: false };
    assert_eq!(f.label(), "corecast-mmsg+gso no-retransmission");
    let m = run_one(&tiny_args(), f).unwrap();
    assert!(m.sent > 0, "{m:?}");
    assert_eq!(m.received, m.expected, "{m:?}");
}
