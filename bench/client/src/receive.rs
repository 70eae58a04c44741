//! A participant's verifying receiver: a thread on the participant's socket that opens,
//! checks and counts what the router sends it (media with its probes, RTCP, session
//! messages), answers the router's address checks and sends keepalives.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use corecast_proto::demux::{classify, Kind};
use corecast_proto::ids::SeqExtender;
use corecast_proto::join_key::JoinKey;
use corecast_proto::rtcp::{self, RtcpPacket};
use corecast_proto::session::{self, SessionMessage};
use corecast_proto::srtp::native::Opener;

use crate::media;
use crate::report::{Latency, RecvReport};

/// What a running receiver has seen so far.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    received: AtomicU64,
    /// When the last datagram arrived (`crate::now_us`; 0: none yet).
    last_datagram_us: AtomicU64,
    /// The router said the call ended (a signed notice).
    call_ended: AtomicBool,
}

/// A running receiver.
#[derive(Debug)]
pub struct ReceiveHandle {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) progress: Arc<Progress>,
    pub(crate) thread: Option<JoinHandle<RecvReport>>,
}

impl ReceiveHandle {
    /// Verified packets so far (duplicates included).
    pub fn received(&self) -> u64 {
        self.progress.received.load(Ordering::Relaxed)
    }

    /// How long since the router's last datagram (media, RTCP or session message); `None`
    /// before the first.
    pub fn silent_for(&self) -> Option<Duration> {
        match self.progress.last_datagram_us.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Duration::from_micros(crate::now_us().saturating_sub(t))),
        }
    }

    /// Whether the router said the call ended (for this participant: the call may have moved
    /// to another router; ask the calls service).
    pub fn call_ended(&self) -> bool {
        self.progress.call_ended.load(Ordering::Relaxed)
    }

    /// Waits until `received() >= n` or `timeout` passes; true if reached.
    pub fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.received() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.received() >= n
    }

    /// Stops the receiver and returns what it saw.
    pub fn finish(mut self) -> RecvReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default()
    }
}

impl Drop for ReceiveHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct StreamState {
    ext: SeqExtender,
    seen: HashSet<u64>,
}

/// Answers a router's address check in `datagram` (signed with `key`, or
/// ignored), with a signed reply.
pub(crate) fn answer_check(socket: &UdpSocket, router: SocketAddr, datagram: &[u8], key: &JoinKey) {
    if let Ok(SessionMessage::Check { txid }) = SessionMessage::parse(datagram) {
        if session::verify(datagram, key.as_bytes()).is_ok() {
            let _ = socket.send_to(&SessionMessage::CheckReply { txid }.to_signed_vec(key), router);
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn receive_loop(
    socket: &UdpSocket,
    router: SocketAddr,
    key: &JoinKey,
    mut opener: Opener,
    stop: &AtomicBool,
    progress: &Progress,
    record: bool,
    keepalive_every: Duration,
) -> RecvReport {
    let mut rep = RecvReport::default();
    let mut streams: HashMap<u32, StreamState> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    let _ = socket.set_read_timeout(Some(Duration::from_millis(50)));
    let mut next_keepalive = Instant::now() + keepalive_every;
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_keepalive {
            let _ = socket.send_to(&SessionMessage::Keepalive { txid: rand::random() }.to_signed_vec(key), router);
            next_keepalive += keepalive_every;
        }
        let n = match socket.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(_) => continue,
        };
        rep.datagrams += 1;
        progress.last_datagram_us.store(crate::now_us(), Ordering::Relaxed);
        let Some(b) = opener.open(&buf[..n]) else {
            rep.corrupt += 1;
            continue;
        };
        match classify(b) {
            Kind::Rtp => match media::verify(b) {
                Ok((h, probe)) => {
                    let lat = crate::now_us().saturating_sub(probe.sent_us);
                    rep.samples.push(lat.min(u32::MAX as u64) as u32);
                    rep.received += 1;
                    progress.received.fetch_add(1, Ordering::Relaxed);
                    let st = streams.entry(h.ssrc.0).or_default();
                    let before = st.ext.highest();
                    let e = st.ext.extend(h.seq);
                    if before.is_some_and(|hi| e < hi) {
                        rep.reordered += 1;
                    }
                    if st.seen.insert(e) {
                        rep.unique += 1;
                        *rep.per_sender.entry(probe.sender).or_default() += 1;
                    } else {
                        rep.duplicates += 1;
                    }
                    if record {
                        rep.recorded.push(b.to_vec());
                    }
                }
                Err(_) => rep.corrupt += 1,
            },
            Kind::Rtcp => {
                rep.rtcp += 1;
                // The router's speakers list (Last-N): the stage, the dominant speaker first.
                let packets = rtcp::parse_compound(b).into_iter().flatten();
                for list in packets.filter_map(|p| match p {
                    RtcpPacket::App(a) => session::speakers::parse(&a),
                    _ => None,
                }) {
                    rep.speakers = list.iter().map(|s| s.0).collect();
                    rep.speaker_updates += 1;
                }
            }
            Kind::Stun => {
                rep.session += 1;
                // Only the router's notice, signed with this participant's key, ends the call.
                if let Ok(SessionMessage::CallEnded { .. }) = SessionMessage::parse(b) {
                    rep.call_ended |= session::verify(b, key.as_bytes()).is_ok();
                    progress.call_ended.store(rep.call_ended, Ordering::Relaxed);
                }
                answer_check(socket, router, b, key);
            }
            _ => rep.corrupt += 1,
        }
    }
    let mut s = rep.samples.clone();
    rep.latency = Latency::from_samples(&mut s);
    rep
}
