//! Loopback micro-benchmark of the socket backends over the GSO × GRO
//! combinations: one backend sends frames (8 equal 1200-byte datagrams to
//! each of 4 receivers per flush), four others receive them. Prints
//! datagrams per second of sender and receiver thread CPU, for mmsg and, where
//! the kernel has what it needs, io_uring.
//!
//! A `harness = false` bench (see `router/Cargo.toml`): its own `main` runs
//! in one of two sizes.
//! - `cargo bench -p corecast-router --bench net_gso_gro` (cargo passes
//!   `--bench`): 5000 frames (160 000 datagrams) per combination, for the
//!   figures; lost datagrams are reported, not fatal.
//! - Run without `--bench`, as `cargo test --bench net_gso_gro` (or
//!   `cargo test --benches`) runs it in the test profile: 50 frames (1600
//!   datagrams) per combination, paced after every frame, a few seconds in
//!   all; it panics if a receiver does not get every datagram. `make unit`
//!   (part of `make test`, the CI run) runs this size.
#![deny(unsafe_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_router::net::{mmsg::MmsgBackend, sock, uring, uring::UringBackend, BackendOptions, IoBackend};
use nix::time::{clock_gettime, ClockId};

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

fn make(uring: bool, opts: &BackendOptions) -> Box<dyn IoBackend> {
    let s = sock::bind("127.0.0.1:0".parse().unwrap(), &opts.socket).unwrap();
    if uring {
        Box::new(UringBackend::new(s, opts).unwrap())
    } else {
        Box::new(MmsgBackend::new(s, opts).unwrap())
    }
}

/// Sends `frames` frames through one combination and prints the figures;
/// with `check`, panics unless every datagram arrived.
fn run(uring: bool, gso: bool, gro: bool, frames: usize, check: bool) {
    let opts = BackendOptions { gso, gro, ..Default::default() };
    let receivers: Vec<Box<dyn IoBackend>> = (0..4).map(|_| make(uring, &opts)).collect();
    let dests: Vec<SocketAddr> = receivers.iter().map(|r| r.local_addr()).collect();
    let total = frames * 8;
    let rx = std::thread::spawn(move || {
        let mut receivers = receivers;
        let cpu0 = thread_cpu();
        let mut got = vec![0usize; receivers.len()];
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.iter().any(|&g| g < total) && Instant::now() < deadline {
            for (i, r) in receivers.iter_mut().enumerate() {
                out.clear();
                got[i] += r.recv(Some(Duration::ZERO), &mut out).unwrap();
            }
        }
        (got.iter().sum::<usize>(), thread_cpu() - cpu0)
    });
    let mut tx = make(uring, &opts);
    let payload = Bytes::from(vec![0x80u8; 1200]);
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    for f in 0..frames {
        for d in &dests {
            for _ in 0..8 {
                tx.queue(*d, payload.clone());
            }
        }
        tx.flush().unwrap();
        // Pace so the receivers keep up (no loss, bounded buffers): lightly
        // at full size, after every frame in the check.
        if check || f % 16 == 15 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let tx_cpu = thread_cpu() - cpu0;
    let (received, rx_cpu) = rx.join().unwrap();
    let sent = total * dests.len();
    let per_s = |cpu: Duration| sent as f64 / cpu.as_secs_f64().max(1e-9);
    println!(
        "{:<6} gso {:<5} gro {:<5}: {sent} datagrams in {:>6.1} ms, received {received}; sender {:>9.0}/s CPU, receiver {:>9.0}/s CPU, gso sends {}",
        if uring { "uring" } else { "mmsg" },
        gso,
        gro,
        t0.elapsed().as_secs_f64() * 1e3,
        per_s(tx_cpu),
        per_s(rx_cpu),
        tx.stats().gso_sends,
    );
    if check {
        assert_eq!(received, sent, "{} gso {gso} gro {gro}: datagrams lost", if uring { "uring" } else { "mmsg" });
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --bench` does not.
    let full = std::env::args().any(|a| a == "--bench");
    let frames = if full { 5000 } else { 50 };
    let t0 = Instant::now();
    let uring_ok = uring::probe().is_ok();
    for uring in [false, true] {
        if uring && !uring_ok {
            println!("io_uring unavailable here; skipping its rows");
            continue;
        }
        for gso in [false, true] {
            for gro in [false, true] {
                run(uring, gso, gro, frames, !full);
            }
        }
    }
    println!("{} size done in {:.1} s", if full { "full" } else { "tiny (check)" }, t0.elapsed().as_secs_f64());
}
