//! End-to-end tests of the socket backends over loopback. Every backend runs the
//! same suite; io_uring tests are skipped (with a note) where the kernel lacks it.
//!
//! Rates are modest, socket buffers large and every wait bounded, so these do
//! not flake on a loaded 2-core machine.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_router::net::{
    self, basic::BasicBackend, mmsg::MmsgBackend, sock, uring::UringBackend, BackendKind, BackendOptions, Datagram,
    IoBackend,
};

const KINDS: [BackendKind; 3] = [BackendKind::Basic, BackendKind::Mmsg, BackendKind::Uring];
const WAIT: Duration = Duration::from_secs(5);

fn uring_ok() -> bool {
    match net::uring::probe() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("io_uring unavailable here, skipping its cases: {e}");
            false
        }
    }
}

/// Builds a backend of `kind` directly (no environment overrides).
fn make(kind: BackendKind, addr: &str, opts: &BackendOptions) -> Option<Box<dyn IoBackend>> {
    let addr: SocketAddr = addr.parse().unwrap();
    let s = sock::bind(addr, &opts.socket).unwrap();
    Some(match kind {
        BackendKind::Basic => Box::new(BasicBackend::new(s).unwrap()),
        BackendKind::Mmsg | BackendKind::Auto => Box::new(MmsgBackend::new(s, opts).unwrap()),
        BackendKind::Uring => {
            if !uring_ok() {
                return None;
            }
            Box::new(UringBackend::new(s, opts).unwrap())
        }
        // Needs an Ethernet interface's address: covered by e2e_xdp.rs over veth.
        BackendKind::Xdp => return None,
    })
}

/// A plain client socket with a large receive buffer.
fn client(addr: &str) -> UdpSocket {
    let s = sock::bind(addr.parse().unwrap(), &sock::SocketOptions::default()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    s
}

/// Reads `n` datagrams (or until WAIT passes).
fn read_n(s: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + WAIT;
    while got.len() < n && Instant::now() < deadline {
        if let Ok((len, _)) = s.recv_from(&mut buf) {
            got.push(buf[..len].to_vec());
        }
    }
    got
}

/// Receives through the backend until `n` datagrams arrived (or WAIT passes).
fn recv_n(b: &mut dyn IoBackend, n: usize) -> Vec<Datagram> {
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    while out.len() < n && Instant::now() < deadline {
        b.recv(Some(Duration::from_millis(100)), &mut out).unwrap();
    }
    out
}

/// Datagram `i` of stream `stream`, `len` bytes, content derived from both.
fn payload(stream: u8, i: usize, len: usize) -> Bytes {
    let mut v = vec![0u8; len];
    for (k, b) in v.iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(31) ^ stream.wrapping_mul(7) ^ (i as u8);
    }
    if len >= 3 {
        v[0] = stream;
        v[1..3].copy_from_slice(&(i as u16).to_be_bytes());
    }
    Bytes::from(v)
}

/// Queues the streams interleaved (as fan-out does), flushes, and checks that
/// each receiver got its stream complete, in order, byte for byte.
fn fanout_case(kind: BackendKind, opts: &BackendOptions, sizes: &[usize]) -> Option<net::IoStats> {
    let mut b = make(kind, "127.0.0.1:0", opts)?;
    let receivers: Vec<UdpSocket> = (0..3).map(|_| client("127.0.0.1:0")).collect();
    let mut sent: Vec<Vec<Bytes>> = vec![Vec::new(); receivers.len()];
    for (i, &len) in sizes.iter().enumerate() {
        for (r, s) in receivers.iter().enumerate() {
            let p = payload(r as u8, i, len);
            sent[r].push(p.clone());
            b.queue(s.local_addr().unwrap(), p);
        }
    }
    b.flush().unwrap();
    for (r, s) in receivers.iter().enumerate() {
        let got = read_n(s, sent[r].len());
        assert_eq!(got.len(), sent[r].len(), "{kind:?}: receiver {r} got {} of {}", got.len(), sent[r].len());
        for (i, (g, w)) in got.iter().zip(&sent[r]).enumerate() {
            assert_eq!(&g[..], &w[..], "{kind:?}: receiver {r} datagram {i} differs");
        }
    }
    let st = b.stats();
    let total = (sizes.len() * receivers.len()) as u64;
    assert_eq!(st.sent_datagrams, total, "{kind:?}: {st:?}");
    assert_eq!(st.send_errors, 0, "{kind:?}: {st:?}");
    Some(st)
}

fn gso_here() -> bool {
    let s = client("127.0.0.1:0");
    use std::os::fd::AsRawFd;
    sock::probe_gso(s.as_raw_fd())
}

#[test]
fn gso_grouping_equal_sizes_in_order() {
    // Three frames of 8 equal packets (the last of each frame shorter).
    let mut sizes = Vec::new();
    for _ in 0..3 {
        sizes.extend([1200; 7]);
        sizes.push(700);
    }
    for kind in KINDS {
        let Some(st) = fanout_case(kind, &BackendOptions::default(), &sizes) else { continue };
        if kind != BackendKind::Basic && gso_here() {
            // Each receiver's 24 datagrams make 3 runs (7 x 1200 + 700 each).
            assert_eq!(st.gso_sends, 9, "{kind:?}: {st:?}");
            assert_eq!(st.gso_fallbacks, 0, "{kind:?}: {st:?}");
        }
    }
}

#[test]
fn mixed_sizes_grouped_or_not() {
    let mut seed = 12345u32;
    let sizes: Vec<usize> = (0..150)
        .map(|i| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            match i % 10 {
                0..=5 => 1000,
                6 => 1 + (seed >> 16) as usize % 1400,
                7 => 9000,
                8 => 3,
                _ => 1000 + (seed >> 20) as usize % 2,
            }
        })
        .collect();
    for kind in KINDS {
        for gso in [true, false] {
            let opts = BackendOptions { gso, ..Default::default() };
            let Some(st) = fanout_case(kind, &opts, &sizes) else { continue };
            if !gso {
                assert_eq!(st.gso_sends, 0, "{kind:?}");
            }
        }
    }
}

#[test]
fn refused_gso_falls_back_to_plain_sends() {
    if !gso_here() {
        eprintln!("no UDP GSO here; skipping");
        return;
    }
    let sizes = [1200; 20];
    for kind in [BackendKind::Mmsg, BackendKind::Uring] {
        let opts = BackendOptions { fail_gso_sends: 2, ..Default::default() };
        let Some(st) = fanout_case(kind, &opts, &sizes) else { continue };
        // Two GSO sends were refused and retried plain; GSO then backs off, so
        // the third receiver's run goes plain as well (or as GSO on a fast machine
        // where the back-off has not started: either way nothing is lost).
        assert_eq!(st.gso_fallbacks, 2, "{kind:?}: {st:?}");
        assert!(st.gso_sends <= 1, "{kind:?}: {st:?}");
    }
}

#[test]
fn gro_super_datagrams_are_split() {
    // A GSO sender (mmsg backend) sends 11 segments in one send to each kind of
    // receiver; GRO receivers get one super-datagram and must split it.
    let lens: Vec<usize> = (0..11).map(|i| if i == 10 { 500 } else { 1000 }).collect();
    for kind in KINDS {
        let Some(mut rx) = make(kind, "127.0.0.1:0", &BackendOptions::default()) else { continue };
        let mut tx = make(BackendKind::Mmsg, "127.0.0.1:0", &BackendOptions::default()).unwrap();
        let want: Vec<Bytes> = lens.iter().enumerate().map(|(i, &l)| payload(9, i, l)).collect();
        for p in &want {
            tx.queue(rx.local_addr(), p.clone());
        }
        tx.flush().unwrap();
        let got = recv_n(rx.as_mut(), want.len());
        assert_eq!(got.len(), want.len(), "{kind:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.contents, *w, "{kind:?}");
            assert_eq!(g.source, tx.local_addr(), "{kind:?}");
        }
        let st = rx.stats();
        assert_eq!(st.recv_datagrams, 11, "{kind:?}: {st:?}");
        if kind == BackendKind::Uring && gso_here() {
            // One completion carried the whole run.
            assert!(st.recv_calls < st.recv_datagrams, "{kind:?}: {st:?}");
        }
    }
}

#[test]
fn gro_off_receives_segments_individually() {
    let opts = BackendOptions { gro: false, ..Default::default() };
    for kind in [BackendKind::Mmsg, BackendKind::Uring] {
        let Some(mut rx) = make(kind, "127.0.0.1:0", &opts) else { continue };
        let mut tx = make(BackendKind::Mmsg, "127.0.0.1:0", &BackendOptions::default()).unwrap();
        for i in 0..5 {
            tx.queue(rx.local_addr(), payload(1, i, 800));
        }
        tx.flush().unwrap();
        let got = recv_n(rx.as_mut(), 5);
        assert_eq!(got.len(), 5, "{kind:?}");
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g.contents, payload(1, i, 800), "{kind:?}");
        }
    }
}

#[test]
fn buffer_ring_exhaustion_is_counted_and_survived() {
    if !uring_ok() {
        return;
    }
    let opts = BackendOptions { ring_buffers: 4, gro: false, ..Default::default() };
    let mut rx = make(BackendKind::Uring, "127.0.0.1:0", &opts).unwrap();
    // Arm the receive, then let far more datagrams arrive than the ring holds.
    let mut out = Vec::new();
    assert_eq!(rx.recv(Some(Duration::from_millis(1)), &mut out).unwrap(), 0);
    let tx = client("127.0.0.1:0");
    let n = 200;
    for i in 0..n {
        tx.send_to(&payload(2, i, 300), rx.local_addr()).unwrap();
    }
    let got = recv_n(rx.as_mut(), n);
    let st = rx.stats();
    assert!(st.recv_ring_exhausted >= 1, "{st:?}");
    // The socket buffer held what the ring could not: everything arrives, in order.
    assert_eq!(got.len(), n, "{st:?}");
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.contents, payload(2, i, 300));
    }
    // And it keeps working afterwards.
    tx.send_to(b"again", rx.local_addr()).unwrap();
    let more = recv_n(rx.as_mut(), 1);
    assert_eq!(more.len(), 1);
    assert_eq!(&more[0].contents[..], b"again");
}

#[test]
fn recv_times_out_with_nothing() {
    for kind in KINDS {
        let Some(mut b) = make(kind, "127.0.0.1:0", &BackendOptions::default()) else { continue };
        let mut out = Vec::new();
        let t = Instant::now();
        assert_eq!(b.recv(Some(Duration::from_millis(30)), &mut out).unwrap(), 0, "{kind:?}");
        let el = t.elapsed();
        assert!(el >= Duration::from_millis(25) && el < Duration::from_secs(3), "{kind:?}: {el:?}");
    }
}

/// The worker loop's shape: clients send to the backend, which fans each
/// datagram out to the other clients; everyone must get everything in order.
#[test]
fn end_to_end_forwarding_loop() {
    for kind in KINDS {
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let Some(mut b) = make(kind, addr, &BackendOptions::default()) else { continue };
            let client_addr = if addr.starts_with('[') { "[::1]:0" } else { "127.0.0.1:0" };
            let clients: Vec<UdpSocket> = (0..4).map(|_| client(client_addr)).collect();
            let addrs: Vec<SocketAddr> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
            let per_client = 60;
            let mut batch = Vec::new();
            let mut forwarded = 0;
            let deadline = Instant::now() + WAIT;
            for round in 0..per_client {
                for (c, s) in clients.iter().enumerate() {
                    s.send_to(&payload(c as u8, round, 600 + (round % 3) * 300), b.local_addr()).unwrap();
                }
                // Forward what arrived (at least this round's datagrams).
                while forwarded < (round + 1) * clients.len() && Instant::now() < deadline {
                    batch.clear();
                    b.recv(Some(Duration::from_millis(50)), &mut batch).unwrap();
                    for d in batch.drain(..) {
                        for a in &addrs {
                            if *a != d.source {
                                b.queue(*a, d.contents.clone());
                            }
                        }
                        forwarded += 1;
                    }
                    b.flush().unwrap();
                }
            }
            assert_eq!(forwarded, per_client * clients.len(), "{kind:?} {addr}");
            for (c, s) in clients.iter().enumerate() {
                let got = read_n(s, per_client * (clients.len() - 1));
                assert_eq!(got.len(), per_client * (clients.len() - 1), "{kind:?} {addr}: client {c}");
                // Per source, in order.
                let mut next = vec![0usize; clients.len()];
                for g in &got {
                    let src = g[0] as usize;
                    assert_ne!(src, c);
                    let want = payload(src as u8, next[src], 600 + (next[src] % 3) * 300);
                    assert_eq!(&g[..], &want[..], "{kind:?} {addr}: client {c} from {src}");
                    next[src] += 1;
                }
            }
            let st = b.stats();
            assert_eq!(st.send_errors, 0, "{kind:?} {addr}: {st:?}");
            assert_eq!(st.recv_drops, 0, "{kind:?} {addr}: {st:?}");
        }
    }
}

#[test]
fn backend_kind_parses() {
    assert_eq!("mmsg".parse::<BackendKind>().unwrap(), BackendKind::Mmsg);
    assert_eq!("URING".parse::<BackendKind>().unwrap(), BackendKind::Uring);
    assert_eq!("basic".parse::<BackendKind>().unwrap(), BackendKind::Basic);
    assert_eq!("auto".parse::<BackendKind>().unwrap(), BackendKind::Auto);
    assert!("dpdk".parse::<BackendKind>().is_err());
}

#[test]
fn open_picks_a_working_backend() {
    // `open` honours CORECAST_BACKEND; whatever it picks must forward.
    let mut b = net::open(BackendKind::Auto, "127.0.0.1:0".parse().unwrap(), &BackendOptions::default()).unwrap();
    let c = client("127.0.0.1:0");
    c.send_to(b"ping", b.local_addr()).unwrap();
    let got = recv_n(b.as_mut(), 1);
    assert_eq!(got.len(), 1);
    b.queue(got[0].source, got[0].contents.clone());
    b.flush().unwrap();
    assert_eq!(read_n(&c, 1), vec![b"ping".to_vec()]);
}

/// Dropping an io_uring backend with its receive armed and sends done must
/// not crash or leak (the kernel is told to stop first).
#[test]
fn uring_drop_while_armed() {
    if !uring_ok() {
        return;
    }
    for _ in 0..3 {
        let mut b = make(BackendKind::Uring, "127.0.0.1:0", &BackendOptions::default()).unwrap();
        let mut out = Vec::new();
        b.recv(Some(Duration::from_millis(1)), &mut out).unwrap();
        let c = client("127.0.0.1:0");
        b.queue(c.local_addr().unwrap(), Bytes::from_static(b"x"));
        b.flush().unwrap();
        drop(b);
        assert_eq!(read_n(&c, 1).len(), 1);
    }
}

/// A backend built on one thread and driven on another (as the router does).
#[test]
fn backends_move_to_worker_threads() {
    for kind in KINDS {
        let Some(mut b) = make(kind, "127.0.0.1:0", &BackendOptions::default()) else { continue };
        let c = client("127.0.0.1:0");
        let dst = c.local_addr().unwrap();
        std::thread::spawn(move || {
            b.queue(dst, Bytes::from_static(b"from a worker"));
            b.flush().unwrap();
            let mut out = Vec::new();
            b.recv(Some(Duration::from_millis(1)), &mut out).unwrap();
        })
        .join()
        .unwrap();
        assert_eq!(read_n(&c, 1), vec![b"from a worker".to_vec()], "{kind:?}");
    }
}

#[test]
fn uring_setup_is_reported() {
    if !uring_ok() {
        return;
    }
    let opts = BackendOptions::default();
    let b = UringBackend::new(sock::bind("127.0.0.1:0".parse().unwrap(), &opts.socket).unwrap(), &opts).unwrap();
    eprintln!("io_uring setup: {} (gro {}, gso {})", b.setup(), b.gro(), b.gso());
    assert!(!b.setup().is_empty());
}

/// One flush far larger than the io_uring queues and the `sendmmsg` limit.
#[test]
fn large_flush_delivers_everything() {
    let receivers: Vec<UdpSocket> = (0..40).map(|_| client("127.0.0.1:0")).collect();
    for kind in KINDS {
        for gso in [false, true] {
            let opts = BackendOptions { gso, ..Default::default() };
            let Some(mut b) = make(kind, "127.0.0.1:0", &opts) else { continue };
            for i in 0..100 {
                for (r, s) in receivers.iter().enumerate() {
                    b.queue(s.local_addr().unwrap(), payload(r as u8, i, 200));
                }
            }
            b.flush().unwrap();
            for (r, s) in receivers.iter().enumerate() {
                let got = read_n(s, 100);
                assert_eq!(got.len(), 100, "{kind:?} gso {gso}: receiver {r}");
                for (i, g) in got.iter().enumerate() {
                    assert_eq!(&g[..], &payload(r as u8, i, 200)[..], "{kind:?} gso {gso}");
                }
            }
            assert_eq!(b.stats().sent_datagrams, 4000, "{kind:?} gso {gso}: {:?}", b.stats());
        }
    }
}

/// A real refusal: with `SO_NO_CHECK` set the kernel rejects every GSO send
/// (EINVAL). The backend must fall back to plain sends, count it, lose nothing.
#[test]
fn kernel_refused_gso_falls_back() {
    use std::os::fd::AsRawFd;
    if !gso_here() {
        eprintln!("no UDP GSO here; skipping");
        return;
    }
    let opts = BackendOptions::default();
    for kind in [BackendKind::Mmsg, BackendKind::Uring] {
        let s = sock::bind("127.0.0.1:0".parse().unwrap(), &opts.socket).unwrap();
        sock::setsockopt_int(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_NO_CHECK, 1).unwrap();
        let mut b: Box<dyn IoBackend> = match kind {
            BackendKind::Uring if !uring_ok() => continue,
            BackendKind::Uring => Box::new(UringBackend::new(s, &opts).unwrap()),
            _ => Box::new(MmsgBackend::new(s, &opts).unwrap()),
        };
        let rx = client("127.0.0.1:0");
        let want: Vec<Bytes> = (0..10).map(|i| payload(4, i, 1000)).collect();
        for p in &want {
            b.queue(rx.local_addr().unwrap(), p.clone());
        }
        b.flush().unwrap();
        let got = read_n(&rx, want.len());
        assert_eq!(got.len(), want.len(), "{kind:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(&g[..], &w[..], "{kind:?}");
        }
        let st = b.stats();
        assert_eq!(st.gso_fallbacks, 1, "{kind:?}: {st:?}");
        assert_eq!(st.gso_sends, 0, "{kind:?}: {st:?}");
        assert_eq!(st.sent_datagrams, 10, "{kind:?}: {st:?}");
        // GSO is now backed off: the next flush goes plain without another refusal.
        for p in &want {
            b.queue(rx.local_addr().unwrap(), p.clone());
        }
        b.flush().unwrap();
        assert_eq!(read_n(&rx, want.len()).len(), want.len(), "{kind:?}");
        assert_eq!(b.stats().gso_fallbacks, 1, "{kind:?}: {:?}", b.stats());
    }
}

/// Dropped on a thread other than the one that drove it: must not hang or
/// crash (with SINGLE_ISSUER the ring refuses the other thread, so the
/// backend keeps its buffers alive rather than free them under the kernel).
#[test]
fn uring_dropped_on_another_thread() {
    if !uring_ok() {
        return;
    }
    let mut b = make(BackendKind::Uring, "127.0.0.1:0", &BackendOptions::default()).unwrap();
    let b = std::thread::spawn(move || {
        let mut out = Vec::new();
        b.recv(Some(Duration::from_millis(1)), &mut out).unwrap();
        b
    })
    .join()
    .unwrap();
    let t = Instant::now();
    drop(b);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn auto_choice_follows_gso() {
    // Environment overrides would change the choice; this test only checks the default policy.
    if std::env::var_os("CORECAST_BACKEND").is_some() || std::env::var_os("CORECAST_GSO").is_some() {
        return;
    }
    let a: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let b = net::open(BackendKind::Auto, a, &BackendOptions::default()).unwrap();
    if gso_here() {
        assert_eq!(b.name(), "mmsg", "{}", b.describe());
    }
    let b = net::open(BackendKind::Auto, a, &BackendOptions { gso: false, ..Default::default() }).unwrap();
    let want = if net::uring::probe().is_ok() { "uring" } else { "mmsg" };
    assert_eq!(b.name(), want, "{}", b.describe());
}

/// A datagram larger than the receive buffer is dropped and counted; the
/// datagrams around it arrive intact.
#[test]
fn oversized_datagram_is_dropped_and_counted() {
    let opts = BackendOptions { gro: false, max_datagram: 2048, ..Default::default() };
    for kind in [BackendKind::Mmsg, BackendKind::Uring] {
        let Some(mut rx) = make(kind, "127.0.0.1:0", &opts) else { continue };
        let tx = client("127.0.0.1:0");
        tx.send_to(&payload(5, 0, 500), rx.local_addr()).unwrap();
        tx.send_to(&payload(5, 1, 3000), rx.local_addr()).unwrap();
        tx.send_to(&payload(5, 2, 500), rx.local_addr()).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + WAIT;
        while got.len() < 2 && Instant::now() < deadline {
            rx.recv(Some(Duration::from_millis(50)), &mut got).unwrap();
        }
        assert_eq!(got.len(), 2, "{kind:?}");
        assert_eq!(got[0].contents, payload(5, 0, 500), "{kind:?}");
        assert_eq!(got[1].contents, payload(5, 2, 500), "{kind:?}");
        assert_eq!(rx.stats().recv_drops, 1, "{kind:?}: {:?}", rx.stats());
    }
}

/// A worker whose timers are always due polls with a zero timeout: datagrams
/// must still arrive (io_uring with DEFER_TASKRUN only posts them on an enter).
#[test]
fn zero_timeout_polling_receives() {
    for kind in KINDS {
        let Some(mut b) = make(kind, "127.0.0.1:0", &BackendOptions::default()) else { continue };
        let c = client("127.0.0.1:0");
        let mut out = Vec::new();
        b.recv(Some(Duration::ZERO), &mut out).unwrap();
        for i in 0..5 {
            c.send_to(&payload(6, i, 100), b.local_addr()).unwrap();
        }
        let deadline = Instant::now() + WAIT;
        while out.len() < 5 && Instant::now() < deadline {
            b.recv(Some(Duration::ZERO), &mut out).unwrap();
        }
        assert_eq!(out.len(), 5, "{kind:?}");
    }
}

#[test]
fn xdp_refuses_loopback_wildcard_and_ipv6_addresses_with_the_reason() {
    for a in ["127.0.0.1:0", "0.0.0.0:0", "[::1]:0"] {
        let s = sock::bind(a.parse().unwrap(), &sock::SocketOptions::default()).unwrap();
        let e = corecast_router::net::xdp::XdpBackend::new(s, &BackendOptions::default()).unwrap_err();
        assert!(e.to_string().contains("IPv4 address of an Ethernet interface"), "{a}: {e}");
    }
}
