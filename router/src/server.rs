//! Starts the workers and gives the rest of the process a handle on them.
//!
//! Call placement: each worker has its own UDP port (base port + index), and a
//! call lives on worker `hash(call id) % workers` ([`Placement::worker_for`]).
//! We chose distinct ports over one `SO_REUSEPORT` group because the kernel's
//! reuseport hash spreads by *source address*, which would scatter one call's
//! participants over all workers; steering by call would need a BPF program
//! that parses our join message. With distinct ports, the calls service tells
//! the client the right port at join time ([`RouterServer::address_for`]); a
//! client that joins on the wrong port is redirected (STUN 300 Try Alternate),
//! so even a client that only knows the base port ends up in the right place.
//! No state is shared between workers and the packet path takes no lock.

use std::net::{IpAddr, SocketAddr};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use corecast_core::webrtc::{DtlsIdentity, IceCredentials, WebRtcLeg};
use corecast_core::{CallSnapshot, Command, LegPreferences, LegRefusal, Placement, Router, RouterConfig};
use corecast_proto::token::{CallId, ParticipantId, VerifyingKey};
use corecast_proto::{MediaKind, Ssrc};
use crossbeam_channel::{bounded, Receiver, Sender};

use crate::net::{BackendKind, BackendOptions};
pub use crate::worker::ServerEvent;
use crate::worker::{self, PipeLinks, WorkerCommand, WorkerStats};

/// What [`RouterServer::start`] needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address of worker 0; worker `i` binds port `+ i` (port 0: any free port each).
    pub listen: SocketAddr,
    /// Address to advertise in redirects when `listen` is a wildcard.
    pub advertise_ip: Option<IpAddr>,
    /// Number of workers (threads, one per core).
    pub workers: usize,
    /// Pin worker `i` to `cpus[i % cpus.len()]` (empty: no pinning).
    pub cpus: Vec<usize>,
    /// `auto`, `basic`, `mmsg` or `uring` (the `CORECAST_BACKEND` variable overrides it).
    pub backend: String,
    /// The core's tunables (placement is filled in here).
    pub core: RouterConfig,
    /// Key that verifies join tokens.
    pub public_key: VerifyingKey,
    /// Socket backend options (GSO, GRO, batch size, buffers); the
    /// `CORECAST_GSO` / `CORECAST_GRO` variables still override them.
    pub io: BackendOptions,
}

struct WorkerHandle {
    commands: Sender<WorkerCommand>,
    thread: std::sync::Mutex<Option<JoinHandle<std::io::Result<()>>>>,
}

/// A running router: its workers and their addresses.
pub struct RouterServer {
    workers: Vec<WorkerHandle>,
    /// Per worker, the addresses a WebRTC answer offers as host candidates:
    /// the worker's address, or with a wildcard bind every interface address.
    candidates: Vec<Vec<SocketAddr>>,
    dtls: Option<Arc<DtlsIdentity>>,
    addresses: Vec<SocketAddr>,
    backend: &'static str,
    events: Receiver<ServerEvent>,
}

impl std::fmt::Debug for RouterServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterServer").field("addresses", &self.addresses).field("backend", &self.backend).finish()
    }
}

impl RouterServer {
    /// Binds every worker's socket, then starts the workers.
    pub fn start(cfg: ServerConfig) -> std::io::Result<RouterServer> {
        let n = cfg.workers.max(1);
        let kind: BackendKind = cfg.backend.parse()?;
        let opts = cfg.io.clone();
        let mut backends = Vec::with_capacity(n);
        for i in 0..n {
            let mut a = cfg.listen;
            if a.port() != 0 {
                a.set_port(a.port() + i as u16);
            }
            backends.push(crate::net::open(kind, a, &opts)?);
        }
        let mut addresses: Vec<SocketAddr> = backends.iter().map(|b| b.local_addr()).collect();
        for a in &mut addresses {
            if a.ip().is_unspecified() {
                a.set_ip(cfg.advertise_ip.unwrap_or(IpAddr::from([127, 0, 0, 1])));
            }
        }
        // Where workers send each other wake datagrams: their own addresses,
        // with a wildcard bind reached over loopback.
        let wake_addrs: Vec<SocketAddr> = backends
            .iter()
            .map(|b| {
                let mut a = b.local_addr();
                if a.ip().is_unspecified() {
                    a.set_ip(if a.is_ipv4() {
                        IpAddr::from([127, 0, 0, 1])
                    } else {
                        IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
                    });
                }
                a
            })
            .collect();
        let channels: Vec<_> = (0..n).map(|_| bounded::<WorkerCommand>(4096)).collect();
        let mut links = if n > 1 { PipeLinks::build(n, &wake_addrs) } else { Vec::new() };
        links.reverse();
        let mut channels = channels;
        channels.reverse();
        let (ev_tx, ev_rx) = bounded(65_536);
        let epoch = Instant::now();
        let epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        // One DTLS certificate for every WebRTC leg of every worker (its
        // fingerprint goes in each answer). Without one, WebRTC is refused.
        let dtls = match DtlsIdentity::generate() {
            Ok(id) => Some(Arc::new(id)),
            Err(e) => {
                tracing::error!(error = %e, "no DTLS certificate: WebRTC legs will be refused");
                None
            }
        };
        let mut workers = Vec::with_capacity(n);
        let mut backend_name = "";
        for (i, backend) in backends.into_iter().enumerate() {
            backend_name = backend.name();
            let mut core = cfg.core.clone();
            core.placement = Placement { index: i, addresses: if n > 1 { addresses.clone() } else { Vec::new() } };
            let mut router = Router::new(core, cfg.public_key, epoch, epoch_ms);
            if let Some(id) = &dtls {
                router.set_dtls_identity(id.clone());
            }
            let (tx, rx) = channels.pop().expect("one channel per worker");
            let pipes = links.pop().unwrap_or_default();
            let ev = ev_tx.clone();
            let cpu = (!cfg.cpus.is_empty()).then(|| cfg.cpus[i % cfg.cpus.len()]);
            let thread = std::thread::Builder::new().name(format!("corecast-w{i}")).spawn(move || {
                if let Some(cpu) = cpu {
                    pin_to(cpu);
                }
                let r = worker::run(i, backend, router, rx, ev, pipes);
                if let Err(e) = &r {
                    tracing::error!(worker = i, error = %e, "worker stopped on a socket error");
                }
                r
            })?;
            workers.push(WorkerHandle { commands: tx, thread: std::sync::Mutex::new(Some(thread)) });
        }
        tracing::info!(workers = n, backend = backend_name, addresses = ?addresses, "router started");
        let candidates = addresses.iter().map(|a| host_candidates(cfg.listen, cfg.advertise_ip, *a)).collect();
        Ok(RouterServer { workers, candidates, dtls, addresses, backend: backend_name, events: ev_rx })
    }

    /// Every worker's address, in index order.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// Name of the backend the workers run on.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The address of the worker a call is placed on.
    pub fn address_for(&self, call: &CallId) -> SocketAddr {
        self.addresses[Placement::worker_for(call, self.addresses.len())]
    }

    /// The router's DTLS identity (`None`: WebRTC is off).
    pub fn dtls_identity(&self) -> Option<&DtlsIdentity> {
        self.dtls.as_deref()
    }

    /// The host candidates of worker `w` (what a WebRTC answer lists).
    pub fn host_candidates(&self, w: usize) -> &[SocketAddr] {
        &self.candidates[w]
    }

    /// The index of the worker a call is placed on.
    pub fn worker_for(&self, call: &CallId) -> usize {
        Placement::worker_for(call, self.addresses.len())
    }

    /// The streams (SSRC, kind) a participant produces on worker `w`.
    pub fn streams_of(&self, w: usize, call: CallId, participant: ParticipantId) -> Option<Vec<(Ssrc, MediaKind)>> {
        self.ask(w, |tx| WorkerCommand::Streams(call, participant, tx)).flatten()
    }

    /// The video codec `participant` publishes on worker `w`, if known.
    pub fn video_codec_of(
        &self,
        w: usize,
        call: CallId,
        participant: ParticipantId,
    ) -> Option<corecast_core::webrtc::Codec> {
        self.ask(w, |tx| WorkerCommand::VideoCodec(call, participant, tx)).flatten()
    }

    /// Sends worker `w` a request and waits (2 s at most) for its reply.
    fn ask<T>(&self, w: usize, request: impl FnOnce(Sender<T>) -> WorkerCommand) -> Option<T> {
        ask(&self.workers[w], request)
    }

    /// The peer's ICE ufrag of the WebRTC session `local_ufrag` on worker `w`.
    pub fn remote_ufrag(&self, w: usize, local_ufrag: &str) -> Option<String> {
        self.ask(w, |tx| WorkerCommand::RemoteUfrag(local_ufrag.to_owned(), tx)).flatten()
    }

    /// ICE restart of the WebRTC session `session` on worker `w`.
    pub fn restart_ice(&self, w: usize, session: &str, creds: IceCredentials) -> bool {
        self.ask(w, |tx| WorkerCommand::RestartIce(session.to_owned(), creds, tx)).unwrap_or(false)
    }

    /// New preferences of the WebRTC session `session` of `call`
    /// (`Router::set_leg_preferences`); `false`: no such session.
    pub fn set_leg_preferences(&self, call: &CallId, session: &str, prefs: LegPreferences) -> bool {
        let w = self.worker_for(call);
        self.ask(w, |tx| WorkerCommand::Preferences(session.to_owned(), prefs, tx)).unwrap_or(false)
    }

    /// Hands a WebRTC leg to worker `w` and waits for its verdict.
    pub fn open_leg(&self, w: usize, leg: WebRtcLeg) -> Result<(), LegRefusal> {
        self.ask(w, |tx| WorkerCommand::OpenWebRtc(Box::new(leg), tx))
            .unwrap_or(Err(LegRefusal::Conflict("the worker did not answer")))
    }

    /// Events from every worker (joins, leaves, timeouts, calls opening and closing).
    pub fn events(&self) -> &Receiver<ServerEvent> {
        &self.events
    }

    /// Sends a command to every worker: a call spread over several workers
    /// has a share (and participants) on each, which the router does not
    /// track centrally; workers without a share of [`Command::call`] ignore it.
    pub fn command(&self, cmd: Command) {
        for w in &self.workers {
            let _ = w.commands.send(WorkerCommand::Core(cmd.clone()));
        }
    }

    /// Ends a call: its participants are dropped at once (on every worker
    /// its share may be spread over).
    pub fn end_call(&self, call: CallId) {
        for w in &self.workers {
            let _ = w.commands.send(WorkerCommand::Core(Command::EndCall(call)));
        }
    }

    /// Snapshot of every call on every worker.
    pub fn snapshot(&self) -> Vec<CallSnapshot> {
        let mut all = Vec::new();
        for w in &self.workers {
            if let Some(v) = ask(w, WorkerCommand::Snapshot) {
                all.extend(v);
            }
        }
        all
    }

    /// Counters of every worker.
    pub fn stats(&self) -> Vec<WorkerStats> {
        let mut all = Vec::new();
        for w in &self.workers {
            if let Some(s) = ask(w, WorkerCommand::Stats) {
                all.push(s);
            }
        }
        all
    }

    /// Workers whose loop runs and that answer a request (within 2 s each):
    /// all of them ([`addresses`](Self::addresses)`.len()`) when the router is ready.
    pub fn workers_answering(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| w.thread.lock().ok().is_some_and(|t| t.as_ref().is_some_and(|t| !t.is_finished())))
            .filter(|w| ask(w, WorkerCommand::Stats).is_some())
            .count()
    }

    /// Stops every worker and waits for them.
    pub fn stop(self) {
        self.shutdown();
    }

    /// Stops every worker and waits for them (usable through an `Arc`).
    pub fn shutdown(&self) {
        for w in &self.workers {
            let _ = w.commands.send(WorkerCommand::Stop);
        }
        for w in &self.workers {
            let t = w.thread.lock().ok().and_then(|mut g| g.take());
            if let Some(t) = t {
                let _ = t.join();
            }
        }
    }
}

impl Drop for RouterServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sends one worker a request and waits (2 s at most) for its reply.
fn ask<T>(w: &WorkerHandle, request: impl FnOnce(Sender<T>) -> WorkerCommand) -> Option<T> {
    let (tx, rx) = bounded(1);
    w.commands.send(request(tx)).ok()?;
    rx.recv_timeout(std::time::Duration::from_secs(2)).ok()
}

fn pin_to(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    match set.set(cpu).and_then(|_| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)) {
        Ok(()) => tracing::debug!(cpu, "worker pinned"),
        Err(e) => tracing::warn!(cpu, error = %e, "could not pin worker"),
    }
}

/// A worker's host candidates: with a specific bind address (or an
/// advertised one), that address; with a wildcard bind, every address of the
/// machine's interfaces of the bind's family (loopback last), on the
/// worker's port.
fn host_candidates(listen: SocketAddr, advertise: Option<IpAddr>, worker: SocketAddr) -> Vec<SocketAddr> {
    if !listen.ip().is_unspecified() || advertise.is_some() {
        return vec![worker];
    }
    let mut v: Vec<SocketAddr> = match nix::ifaddrs::getifaddrs() {
        Ok(ifs) => ifs
            .filter_map(|i| i.address)
            .filter_map(|a| match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                (Some(v4), _) if listen.is_ipv4() => Some(IpAddr::from(v4.ip())),
                (_, Some(v6)) if listen.is_ipv6() && !v6.ip().is_unicast_link_local() => Some(IpAddr::from(v6.ip())),
                _ => None,
            })
            .map(|ip| SocketAddr::new(ip, worker.port()))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list interface addresses: one host candidate only");
            Vec::new()
        }
    };
    v.sort_by_key(|a| a.ip().is_loopback());
    v.dedup();
    if v.is_empty() {
        v.push(worker);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_bind_offers_every_interface_address_with_loopback_last() {
        let worker: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:40000".parse().unwrap();
        let v = host_candidates(any, None, worker);
        assert!(v.iter().all(|a| a.port() == 40001 && a.is_ipv4()), "{v:?}");
        assert!(v.contains(&worker), "loopback is among them: {v:?}");
        assert!(v.last().unwrap().ip().is_loopback(), "{v:?}");
        let one: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(host_candidates(one, None, worker), vec![worker]);
        assert_eq!(host_candidates(any, Some("192.0.2.7".parse().unwrap()), worker), vec![worker]);
    }
}
