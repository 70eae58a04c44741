//! The load: a paced sender of synthetic RTP frames, a receiver timing every
//! packet by the kernel's receive timestamp, where their threads run, and
//! one run of the load through a forwarder with the forwarder's CPU time.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use corecast_router::net::mmsg::MmsgBackend;
use corecast_router::net::msghdr::RecvMsgs;
use corecast_router::net::sock::{self, SocketOptions};
use corecast_router::net::xdp::veth;
use corecast_router::net::{BackendOptions, IoBackend, IoStats};

use super::forwarders::{start_corecast, start_forwarder, FanoutTable};
use super::report::Figures;
use super::{FanoutArgs, Forwarder};
use crate::measure::{cpus_busy_s, pin_current, threads_cpu_s, Measured};
use crate::sys;

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`, the clock of the
/// kernel's receive timestamps).
pub(super) fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// What the clients received.
#[derive(Debug, Default)]
struct Received {
    /// Media packets (RTCP from the router is not counted).
    count: u64,
    /// Send call → kernel receive timestamp, per packet, µs.
    fwd_lat_us: Vec<u32>,
    /// Send call → read by the receiving thread, per packet, µs.
    app_lat_us: Vec<u32>,
    /// Packets that came without a kernel timestamp (timed on receipt).
    untimestamped: u64,
}

/// Largest number of latency samples kept per run.
const MAX_LATENCY_SAMPLES: usize = 8 << 20;

/// Receives on every client socket until `stop`, with GRO (so the router's
/// GSO sends arrive whole) and `SO_TIMESTAMPNS`: each packet's forwarding
/// latency ends at the kernel's receive timestamp, so it does not include
/// the time this thread waits for a CPU it shares with the sender.
fn receive_load(sockets: &[UdpSocket], stop: &AtomicBool) -> io::Result<Received> {
    const BATCH: usize = 16;
    const SLOT: usize = 1 << 16;
    const CMSG: usize = sock::TIMESTAMP_CMSG_SPACE + sock::RECV_CMSG_SPACE;
    for s in sockets {
        sock::enable_gro(s.as_raw_fd());
        sock::enable_rx_timestamps(s.as_raw_fd());
    }
    let mut pfds: Vec<libc::pollfd> =
        sockets.iter().map(|s| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let mut msgs = RecvMsgs::<CMSG>::new(BATCH, SLOT, false);
    let mut rx = Received {
        fwd_lat_us: Vec::with_capacity(1 << 20),
        app_lat_us: Vec::with_capacity(1 << 20),
        ..Default::default()
    };
    while !stop.load(Ordering::Relaxed) {
        if !matches!(sys::poll(&mut pfds, 20), Ok(r) if r > 0) {
            continue;
        }
        for (p, socket) in pfds.iter_mut().zip(sockets) {
            if p.revents == 0 {
                continue;
            }
            p.revents = 0;
            loop {
                let n = match msgs.recv(socket.as_fd(), libc::MSG_DONTWAIT) {
                    Ok(n) if n > 0 => n,
                    _ => break,
                };
                let now = unix_ns();
                for i in 0..n {
                    let meta = msgs.meta(i);
                    let data = msgs.payload(i);
                    let len = data.len();
                    let stamp = meta.timestamp.map(|t| t.as_nanos() as u64);
                    for c in data.chunks(meta.gro_segment.unwrap_or(len).max(1)) {
                        // Media only: RTCP from the router (reports, feedback) is not counted.
                        if c.len() < 24 || c[0] != MAGIC || c[1] != PT {
                            continue;
                        }
                        rx.count += 1;
                        let sent = u64::from_be_bytes(c[12..20].try_into().unwrap_or([0; 8]));
                        if stamp.is_none() {
                            rx.untimestamped += 1;
                        }
                        if rx.fwd_lat_us.len() < MAX_LATENCY_SAMPLES {
                            let us = |t: u64| (t.saturating_sub(sent) / 1000).min(u64::from(u32::MAX)) as u32;
                            rx.fwd_lat_us.push(us(stamp.unwrap_or(now)));
                            rx.app_lat_us.push(us(now));
                        }
                    }
                }
                if n < BATCH {
                    break;
                }
            }
        }
    }
    Ok(rx)
}

const MAGIC: u8 = 0x80;
/// The payload type of the load (dynamic video).
const PT: u8 = 96;
/// Payload layout: [0] 0x80 (RTP v2), [1] payload type, [2..4] seq, [4..8]
/// RTP timestamp, [8..12] sender id (as SSRC), [12..20] send time (ns since
/// the Unix epoch), [20..24] frame.
fn fill_packet(buf: &mut [u8], sender: u32, seq: u16, frame: u32, sent_ns: u64) {
    buf[0] = MAGIC;
    buf[1] = PT;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&frame.wrapping_mul(3000).to_be_bytes());
    buf[8..12].copy_from_slice(&sender.to_be_bytes());
    buf[12..20].copy_from_slice(&sent_ns.to_be_bytes());
    buf[20..24].copy_from_slice(&frame.to_be_bytes());
}

/// Where threads run: forwarder thread `i` on `router[i]`, the load
/// generator's threads on `generator` (empty: wherever the kernel likes).
#[derive(Debug, Clone, Default)]
pub(super) struct Placement {
    pub router: Vec<usize>,
    pub generator: Vec<usize>,
}

impl Placement {
    pub(super) fn new(args: &FanoutArgs) -> Placement {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        if !args.pin || n <= args.router_cores {
            return Placement::default();
        }
        Placement { router: (0..args.router_cores).collect(), generator: (args.router_cores..n).collect() }
    }
}

/// Runs the load once through `fwd`.
pub(super) fn run_one(args: &FanoutArgs, fwd: Forwarder) -> anyhow::Result<Figures> {
    // The sender runs on this thread: on the load generator's CPUs.
    let place = Placement::new(args);
    pin_current("fanout", &place.generator);
    let n_clients = args.calls * args.participants;
    let client_opts = BackendOptions {
        socket: SocketOptions { recv_buffer: 4 << 20, send_buffer: 4 << 20, ..Default::default() },
        batch: 4,
        gso: false,
        ..Default::default()
    };
    let mut sockets = Vec::with_capacity(n_clients);
    let mut addrs = Vec::with_capacity(n_clients);
    // Over veth (`--backend xdp`) the clients' sockets live in the clients'
    // namespace and the router in its own; loopback otherwise.
    let (client_ip, router_ip) = match &args.veth {
        Some(_) => (IpAddr::V4(veth::CLIENT_IP), IpAddr::V4(veth::ROUTER_IP)),
        None => (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 1])),
    };
    let in_clients = |f: &mut (dyn FnMut() -> io::Result<()> + Send)| match &args.veth {
        Some(v) => v.in_clients(f),
        None => f(),
    };
    in_clients(&mut || {
        for _ in 0..n_clients {
            let s = sock::bind(SocketAddr::new(client_ip, 0), &client_opts.socket)?;
            addrs.push(s.local_addr()?);
            sockets.push(s);
        }
        Ok(())
    })?;
    let calls: Vec<Vec<SocketAddr>> = addrs.chunks(args.participants).map(|c| c.to_vec()).collect();
    let table = Arc::new(FanoutTable::new(&calls));
    let stop_fwd = Arc::new(AtomicBool::new(false));
    let (mut corecast, mut handles) = (None, Vec::new());
    let (dests, ssrcs, tids) = match fwd {
        Forwarder::Corecast { kind, gso, retransmission } => {
            let start = || {
                start_corecast(
                    SocketAddr::new(router_ip, 0),
                    (kind, gso, retransmission),
                    args.router_cores,
                    args.participants,
                    &sockets,
                    &place.router,
                )
            };
            let (c, tids) = match &args.veth {
                Some(v) => v.in_router(start)?,
                None => start()?,
            };
            let r = (c.dests.clone(), c.ssrcs.clone(), tids);
            corecast = Some(c);
            r
        }
        _ => {
            let (router, tids, h) = start_forwarder(fwd, args.router_cores, &table, &stop_fwd, &place.router)?;
            handles = h;
            (vec![router; n_clients], (0..n_clients as u32).collect(), tids)
        }
    };
    // Each client: one socket; the receiver reads it raw (GRO and kernel
    // receive timestamps on), the sender a clone (plain sendmmsg).
    let mut tx_backends = Vec::with_capacity(n_clients);
    for s in &sockets {
        let clone = s.try_clone()?;
        let gso = args.sender_gso;
        tx_backends.push(MmsgBackend::new(clone, &BackendOptions { gro: false, gso, ..client_opts.clone() })?);
    }
    let stop_rx = Arc::new(AtomicBool::new(false));
    let rx_stop = Arc::clone(&stop_rx);
    let gen_cpus = place.generator.clone();
    let receiver = std::thread::spawn(move || -> io::Result<Received> {
        pin_current("fanout", &gen_cpus);
        receive_load(&sockets, &rx_stop)
    });

    // Sender: paced frames, participants' phases spread over the frame interval.
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.fps.max(1)));
    let duration = Duration::from_secs_f64(args.duration.clamp(0.2, 30.0));
    let frames = (duration.as_secs_f64() * f64::from(args.fps)).ceil() as u64;
    let size = args.packet_size.max(32);
    let cpu0 = threads_cpu_s(&tids);
    let busy0 = cpus_busy_s(&place.router);
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut seqs = vec![0u16; n_clients];
    let mut buf = vec![0u8; size];
    'frames: for f in 0..frames {
        for (c, tx) in tx_backends.iter_mut().enumerate() {
            if args.senders_per_call > 0 && c % args.participants >= args.senders_per_call {
                continue;
            }
            let at = t0 + interval * f as u32 + interval.mul_f64(c as f64 / n_clients as f64);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if t0.elapsed() > duration + Duration::from_secs(2) {
                break 'frames; // the machine is too slow for this load: stop, the loss shows it
            }
            let ns = unix_ns();
            for _ in 0..args.packets_per_frame {
                fill_packet(&mut buf, ssrcs[c], seqs[c], f as u32, ns);
                seqs[c] = seqs[c].wrapping_add(1);
                tx.queue(dests[c], Bytes::copy_from_slice(&buf));
            }
            tx.flush()?;
            sent += args.packets_per_frame as u64;
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    // Drain: let queued packets arrive, then read CPU while the threads live.
    std::thread::sleep(Duration::from_millis(300));
    let cpu1 = threads_cpu_s(&tids);
    let busy1 = cpus_busy_s(&place.router);
    stop_fwd.store(true, Ordering::Relaxed);
    let mut io = IoStats::default();
    let mut note = String::new();
    if let Some(c) = corecast.take() {
        for w in c.server.stats() {
            add_io(&mut io, &w.io);
            let dropped = w.router.dropped();
            if dropped > 0 {
                note.push_str(&format!("router dropped {dropped}; "));
            }
        }
        c.server.stop();
    }
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => add_io(&mut io, &s),
            Ok(Err(e)) => note = format!("forwarder error: {e}"),
            Err(_) => note = "forwarder panicked".into(),
        }
    }
    stop_rx.store(true, Ordering::Relaxed);
    let mut rx = receiver.join().map_err(|_| anyhow::anyhow!("receiver panicked"))?.context("receiving the load")?;
    rx.fwd_lat_us.sort_unstable();
    rx.app_lat_us.sort_unstable();
    if rx.untimestamped > 0 {
        note.push_str(&format!("{} packets without a kernel timestamp (timed on receipt); ", rx.untimestamped));
    }
    let tx_errors: u64 = tx_backends.iter().map(|b| b.stats().send_errors).sum();
    if tx_errors > 0 {
        note.push_str(&format!("load generator send errors: {tx_errors}; "));
    }
    Ok(Figures {
        label: fwd.label(),
        sent,
        expected: sent * (args.participants.saturating_sub(1)) as u64,
        received: rx.count,
        run: Measured {
            wall_s: wall,
            // Pinned, the router's CPUs do nothing else: their whole busy time
            // (softirq work outside the router's threads included) is its cost.
            cpu_s: match (busy0, busy1) {
                (Some(a), Some(b)) => (b - a).max(cpu1 - cpu0),
                _ => cpu1 - cpu0,
            },
            latency: rx.fwd_lat_us,
        },
        thread_cpu_s: cpu1 - cpu0,
        cpu_from: if busy0.is_some() { "pinned router CPUs (/proc/stat)" } else { "router threads (schedstat)" },
        app_lat_us: rx.app_lat_us,
        io,
        note,
    })
}

pub(super) fn add_io(sum: &mut IoStats, s: &IoStats) {
    sum.send_calls += s.send_calls;
    sum.sent_datagrams += s.sent_datagrams;
    sum.gso_sends += s.gso_sends;
    sum.gso_fallbacks += s.gso_fallbacks;
    sum.send_errors += s.send_errors;
    sum.recv_drops += s.recv_drops;
    sum.recv_datagrams += s.recv_datagrams;
    sum.xdp_recv_datagrams += s.xdp_recv_datagrams;
    sum.xdp_sent_datagrams += s.xdp_sent_datagrams;
}
