//! The codec pool: worker threads that each own some calls' [`Mixer`]s and
//! move their packets to and from the router.
//!
//! For every call it mixes, the pool joins the router as a `mixer`
//! participant (a join token with role mixer, from the calls service) on a
//! socket of its own, declaring the composite's SSRC and the mixed audio's.
//! From then on the router forwards the call's video and its loudest
//! speakers' audio to that socket; the pool feeds them to the call's mixer
//! and sends back what the mixer produces: the composite RTP and the mixed
//! audio RTP (which the router forwards to SD receivers only) and PLIs for
//! sources whose keyframe it needs. PLI/FIR from SD receivers for the composite SSRC reach the mixer
//! the same way and force a composite keyframe.
//!
//! A call is owned by one worker (`hash(call) % workers`); workers may be
//! pinned to cores away from the router's. A worker never blocks on the
//! router: sockets are non-blocking, a full socket buffer drops the packet
//! (counted), and a mixer that falls behind skips output frames (counted and
//! reported by [`PoolEvent::Overload`]). Joins run on a short-lived thread so
//! that a slow router does not stall the other calls of the worker.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use corecast_proto::demux::{classify, Kind};
use corecast_proto::join_key::JoinKey;
use corecast_proto::session::{self, join_reply, JoinErrorCode, JoinReply, Quality, SessionMessage};
use corecast_proto::srtp::native::{NativeSrtp, Opener};
use corecast_proto::token::CallId;
use corecast_proto::{MediaKind, Ssrc};
use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};

use crate::metrics::PoolStats;
use crate::mixer::{Mixer, MixerConfig, MixerEvent, MixerOutput, MixerStats};
use crate::CodecError;

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Worker threads.
    pub workers: usize,
    /// Pin worker `i` to `cpus[i % cpus.len()]` (empty: no pinning).
    pub cpus: Vec<usize>,
    /// Settings of every call's mixer (the SSRC is set per call).
    pub mixer: MixerConfig,
    /// How often to send a keepalive to the router.
    pub keepalive: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig { workers: 1, cpus: Vec::new(), mixer: MixerConfig::default(), keepalive: Duration::from_secs(2) }
    }
}

/// What the pool needs to mix one call: where the call's router worker is
/// and a join token with role `mixer` for it.
#[derive(Debug, Clone)]
pub struct MixRequest {
    /// The call.
    pub call: CallId,
    /// The router address that owns the call (a wrong worker redirects).
    pub router: SocketAddr,
    /// Join token (raw bytes) with role mixer.
    pub token: Vec<u8>,
    /// The token's join key (from the same grant): signs the join and
    /// every session message.
    pub key: JoinKey,
    /// The participant id in the token.
    pub participant: u64,
}

/// Something the pool reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolEvent {
    /// The pool joined the call and mixes it.
    Joined {
        /// The call.
        call: CallId,
        /// SSRC of the composite.
        ssrc: Ssrc,
    },
    /// The router did not admit the mixer.
    JoinFailed {
        /// The call.
        call: CallId,
        /// Why.
        error: String,
    },
    /// The pool stopped mixing the call (asked to, or the router let it go).
    Left {
        /// The call.
        call: CallId,
    },
    /// The call's mixer skipped output frames: the worker is overloaded.
    Overload {
        /// The call.
        call: CallId,
        /// Frames skipped.
        skipped: u32,
    },
}

/// Counters of one mixed call.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CallMixStats {
    /// The call (text form).
    pub call: String,
    /// The mixer's counters.
    pub mixer: MixerStats,
    /// Sources in the layout.
    pub sources: usize,
    /// Datagrams the socket could not take (dropped).
    pub send_drops: u64,
}

enum Command {
    Mix(MixRequest),
    Adopt(Box<CallMix>),
    Stop(CallId),
    Stats(Sender<Vec<CallMixStats>>),
    Totals(Sender<PoolStats>),
    Shutdown,
}

/// A worker's thread, until the pool is shut down.
type WorkerThread = Mutex<Option<JoinHandle<()>>>;

/// The running pool.
pub struct CodecPool {
    /// Each worker's commands and thread (taken at shutdown).
    workers: Vec<(Sender<Command>, WorkerThread)>,
    events: Receiver<PoolEvent>,
}

impl std::fmt::Debug for CodecPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodecPool").field("workers", &self.workers.len()).finish()
    }
}

impl CodecPool {
    /// Starts the workers.
    pub fn start(cfg: PoolConfig) -> io::Result<CodecPool> {
        let n = cfg.workers.max(1);
        let (ev_tx, ev_rx) = bounded(4096);
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = bounded::<Command>(1024);
            let cfg = cfg.clone();
            let (ev, me) = (ev_tx.clone(), tx.clone());
            let cpu = (!cfg.cpus.is_empty()).then(|| cfg.cpus[i % cfg.cpus.len()]);
            let t = std::thread::Builder::new().name(format!("corecast-mix{i}")).spawn(move || {
                if let Some(cpu) = cpu {
                    pin_to(cpu);
                }
                PoolWorker { cfg, commands: rx, me, events: ev, calls: HashMap::new(), totals: PoolStats::default() }
                    .run();
            })?;
            workers.push((tx, Mutex::new(Some(t))));
        }
        Ok(CodecPool { workers, events: ev_rx })
    }

    fn worker_for(&self, call: &CallId) -> &Sender<Command> {
        let h = call.0.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
        &self.workers[(h % self.workers.len() as u64) as usize].0
    }

    /// Starts mixing a call (joins the router as its mixer).
    pub fn mix(&self, req: MixRequest) {
        let _ = self.worker_for(&req.call).send(Command::Mix(req));
    }

    /// Stops mixing a call and leaves it at the router.
    pub fn stop(&self, call: CallId) {
        let _ = self.worker_for(&call).send(Command::Stop(call));
    }

    /// Events from every worker.
    pub fn events(&self) -> &Receiver<PoolEvent> {
        &self.events
    }

    /// Counters of every mixed call.
    pub fn stats(&self) -> Vec<CallMixStats> {
        let mut all = Vec::new();
        for (w, _) in &self.workers {
            let (tx, rx) = bounded(1);
            if w.send(Command::Stats(tx)).is_ok() {
                if let Ok(v) = rx.recv_timeout(Duration::from_secs(2)) {
                    all.extend(v);
                }
            }
        }
        all
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Each worker's counters since it started ([`PoolStats`]), from the workers that
    /// answered within 2 s: all of them ([`workers`](Self::workers)) when the pool can take
    /// work.
    pub fn worker_stats(&self) -> Vec<PoolStats> {
        let mut all = Vec::new();
        for (w, t) in &self.workers {
            if t.lock().map_or(true, |t| t.as_ref().is_none_or(|t| t.is_finished())) {
                continue;
            }
            let (tx, rx) = bounded(1);
            if w.send(Command::Totals(tx)).is_ok() {
                if let Ok(s) = rx.recv_timeout(Duration::from_secs(2)) {
                    all.push(s);
                }
            }
        }
        all
    }

    /// Leaves every call and stops the workers (usable through an `Arc`).
    pub fn shutdown(&self) {
        for (w, _) in &self.workers {
            let _ = w.send(Command::Shutdown);
        }
        for (_, t) in &self.workers {
            let t = t.lock().ok().and_then(|mut t| t.take());
            if let Some(t) = t {
                let _ = t.join();
            }
        }
    }
}

impl Drop for CodecPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One mixed call: its socket at the router and its mixer.
struct CallMix {
    call: CallId,
    socket: UdpSocket,
    router: SocketAddr,
    mixer: Mixer,
    last_keepalive: Instant,
    send_drops: u64,
    key: JoinKey,
    /// The leg's SRTP, keyed from `key`: the mixer's media and RTCP are
    /// sealed, the router's opened.
    srtp: NativeSrtp,
    opener: Opener,
}

impl CallMix {
    /// Sends a session message as it is, media and RTCP sealed.
    fn send(&mut self, b: &[u8]) {
        let sealed;
        let b = match classify(b) {
            Kind::Rtp | Kind::Rtcp => match self.srtp.seal(b) {
                Some(s) => {
                    sealed = s;
                    &sealed[..]
                }
                None => {
                    self.send_drops += 1;
                    return;
                }
            },
            _ => b,
        };
        if self.socket.send_to(b, self.router).is_err() {
            self.send_drops += 1;
        }
    }
}

struct PoolWorker {
    cfg: PoolConfig,
    commands: Receiver<Command>,
    me: Sender<Command>,
    events: Sender<PoolEvent>,
    calls: HashMap<CallId, CallMix>,
    /// Counters of the calls let go, the calls joined, and the time spent decoding and
    /// encoding (the live calls' counters are added on request).
    totals: PoolStats,
}

/// Longest sleep between two looks at the sockets: bounds the added latency.
const MAX_SLEEP: Duration = Duration::from_millis(2);

impl PoolWorker {
    fn run(&mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => {
                        for (_, c) in self.calls.drain() {
                            let leave = SessionMessage::Leave { txid: rand::random() }.to_signed_vec(&c.key);
                            let _ = c.socket.send_to(&leave, c.router);
                        }
                        return;
                    }
                    Ok(c) => self.command(c),
                    Err(TryRecvError::Empty) => break,
                }
            }
            let mut busy = false;
            let now = Instant::now();
            let mut gone = Vec::new();
            for c in self.calls.values_mut() {
                loop {
                    match c.socket.recv_from(&mut buf) {
                        Ok((n, from)) if from == c.router => {
                            busy = true;
                            let now = Instant::now();
                            let Some(p) = c.opener.open(&buf[..n]) else { continue };
                            match classify(p) {
                                Kind::Rtp => {
                                    let started = Instant::now();
                                    c.mixer.handle_rtp(now, p);
                                    self.totals.decode_time += started.elapsed();
                                }
                                Kind::Rtcp => c.mixer.handle_rtcp(now, p),
                                Kind::Stun => {
                                    // The router let the mixer go (the last SD receiver left, or the
                                    // call ended): its notice is signed with the mixer's key.
                                    if let Ok(SessionMessage::CallEnded { .. }) = SessionMessage::parse(p) {
                                        if session::verify(p, c.key.as_bytes()).is_ok() {
                                            gone.push(c.call);
                                        }
                                    }
                                }
                                _ => {}
                            }
                            drain(c, &self.events);
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                if c.mixer.poll_timeout().is_none_or(|t| now >= t) {
                    let started = Instant::now();
                    c.mixer.handle_timeout(now);
                    self.totals.encode_time += started.elapsed();
                    drain(c, &self.events);
                }
                if now.saturating_duration_since(c.last_keepalive) >= self.cfg.keepalive {
                    c.last_keepalive = now;
                    let ka = SessionMessage::Keepalive { txid: rand::random() }.to_signed_vec(&c.key);
                    c.send(&ka);
                }
            }
            for call in gone {
                if let Some(c) = self.calls.remove(&call) {
                    self.totals.add_call(&c.mixer.stats(), c.send_drops);
                }
                let _ = self.events.try_send(PoolEvent::Left { call });
            }
            if !busy {
                let next = self.calls.values().filter_map(|c| c.mixer.poll_timeout()).min();
                let sleep = next.map_or(MAX_SLEEP, |t| t.saturating_duration_since(Instant::now()).min(MAX_SLEEP));
                match self.commands.recv_timeout(sleep) {
                    Ok(Command::Shutdown) => {
                        let _ = self.me.send(Command::Shutdown);
                    }
                    Ok(c) => self.command(c),
                    Err(_) => {}
                }
            }
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Mix(req) => {
                if self.calls.contains_key(&req.call) {
                    return;
                }
                let (me, events, mixer_cfg) = (self.me.clone(), self.events.clone(), self.cfg.mixer.clone());
                // Join (and encoder start-up) off the worker: neither may stall other calls.
                std::thread::spawn(move || match join_as_mixer(&req, mixer_cfg) {
                    Ok(mix) => {
                        let _ = me.send(Command::Adopt(Box::new(mix)));
                    }
                    Err(e) => {
                        tracing::warn!(call = %req.call, error = %e, "mixer join failed");
                        let _ = events.try_send(PoolEvent::JoinFailed { call: req.call, error: e.to_string() });
                    }
                });
            }
            Command::Adopt(mix) => {
                let (call, ssrc) = (mix.call, mix.mixer.ssrc());
                tracing::info!(%call, ssrc = ssrc.0, router = %mix.router, "mixing call");
                self.calls.insert(call, *mix);
                self.totals.calls_mixed += 1;
                let _ = self.events.try_send(PoolEvent::Joined { call, ssrc });
            }
            Command::Stop(call) => {
                if let Some(mut c) = self.calls.remove(&call) {
                    let leave = SessionMessage::Leave { txid: rand::random() }.to_signed_vec(&c.key);
                    c.send(&leave);
                    self.totals.add_call(&c.mixer.stats(), c.send_drops);
                    let _ = self.events.try_send(PoolEvent::Left { call });
                }
            }
            Command::Stats(reply) => {
                let v = self
                    .calls
                    .values()
                    .map(|c| CallMixStats {
                        call: c.call.to_string(),
                        mixer: c.mixer.stats(),
                        sources: c.mixer.layout().len(),
                        send_drops: c.send_drops,
                    })
                    .collect();
                let _ = reply.send(v);
            }
            Command::Totals(reply) => {
                let mut t = self.totals;
                for c in self.calls.values() {
                    t.add_call(&c.mixer.stats(), c.send_drops);
                }
                t.composites = self.calls.len() as u64;
                let _ = reply.send(t);
            }
            Command::Shutdown => {}
        }
    }
}

/// Moves a mixer's outputs to the router.
fn drain(c: &mut CallMix, events: &Sender<PoolEvent>) {
    while let Some(o) = c.mixer.poll_output() {
        match o {
            MixerOutput::Rtp(p) => c.send(&p),
            MixerOutput::KeyframeRequest(ssrc) => {
                let pli = c.mixer.pli_for(ssrc);
                c.send(&pli);
            }
            MixerOutput::Event(MixerEvent::OutputFramesSkipped(skipped)) => {
                let _ = events.try_send(PoolEvent::Overload { call: c.call, skipped });
            }
            MixerOutput::Event(e) => tracing::debug!(call = %c.call, event = ?e, "mixer"),
        }
    }
}

/// The composite SSRC of a mixer participant (distinct per participant id).
pub fn mixer_ssrc(participant: u64) -> Ssrc {
    Ssrc(0x6d00_0000 | (participant as u32 & 0x00ff_ffff))
}

/// The mixed audio's SSRC of a mixer participant (distinct per participant id).
pub fn mixer_audio_ssrc(participant: u64) -> Ssrc {
    Ssrc(0x6100_0000 | (participant as u32 & 0x00ff_ffff))
}

/// Why joining as a mixer failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Socket trouble.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// The router refused.
    #[error("router refused the mixer: {code:?}: {reason}")]
    Refused {
        /// Code.
        code: JoinErrorCode,
        /// Reason.
        reason: String,
    },
    /// No answer after every retry.
    #[error("no answer from the router at {0}")]
    NoAnswer(SocketAddr),
    /// The mixer could not start.
    #[error("mixer: {0}")]
    Codec(#[from] CodecError),
}

/// Joins `req.router` with the mixer token on a new socket (following a
/// redirect to the call's worker) and creates the call's mixer.
fn join_as_mixer(req: &MixRequest, mut mixer_cfg: MixerConfig) -> Result<CallMix, JoinError> {
    let ssrc = mixer_ssrc(req.participant);
    mixer_cfg.ssrc = ssrc;
    mixer_cfg.audio.ssrc = mixer_audio_ssrc(req.participant);
    let mixer = Mixer::new(mixer_cfg)?;
    let bind: SocketAddr = if req.router.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
    let socket = UdpSocket::bind(bind)?;
    socket.set_read_timeout(Some(Duration::from_millis(300)))?;
    let mut router = req.router;
    let mut buf = vec![0u8; 2048];
    let (mut tries, mut redirects) = (0, 0);
    while tries < 6 {
        tries += 1;
        let txid: [u8; 12] = rand::random();
        let join = SessionMessage::Join {
            txid,
            token: req.token.clone(),
            ssrcs: vec![(ssrc, MediaKind::Video), (mixer_audio_ssrc(req.participant), MediaKind::Audio)],
            quality: Quality::Hd,
            srtp: true,
        };
        socket.send_to(&join.to_signed_vec(&req.key), router)?;
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            let (n, from) = match socket.recv_from(&mut buf) {
                Ok(x) => x,
                Err(_) => break,
            };
            if from != router || classify(&buf[..n]) != Kind::Stun {
                continue;
            }
            match join_reply(&buf[..n], &txid) {
                Some(JoinReply::Admitted { .. }) => {
                    socket.set_nonblocking(true)?;
                    let last_keepalive = Instant::now();
                    let (key, srtp) = (req.key.clone(), NativeSrtp::new(&req.key));
                    let opener = srtp.opener();
                    let send_drops = 0;
                    return Ok(CallMix {
                        call: req.call,
                        socket,
                        router,
                        mixer,
                        last_keepalive,
                        send_drops,
                        key,
                        srtp,
                        opener,
                    });
                }
                Some(JoinReply::Redirect(alt)) if redirects < 3 => {
                    redirects += 1;
                    router = alt;
                    tries = 0;
                    break;
                }
                Some(JoinReply::Redirect(_)) => {
                    let reason = "redirected more than 3 times".into();
                    return Err(JoinError::Refused { code: JoinErrorCode::TryAlternate, reason });
                }
                Some(JoinReply::Refused { code, reason }) => return Err(JoinError::Refused { code, reason }),
                None => continue,
            }
        }
    }
    Err(JoinError::NoAnswer(router))
}

fn pin_to(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    match set.set(cpu).and_then(|_| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)) {
        Ok(()) => tracing::debug!(cpu, "codec worker pinned"),
        Err(e) => tracing::warn!(cpu, error = %e, "could not pin codec worker"),
    }
}
