//! A participant: one UDP socket, a join, a paced sender and a verifying receiver.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corecast_proto::demux::{classify, Kind};
use corecast_proto::join_key::{JoinKey, JoinSecret};
use corecast_proto::rtp::RtpPacket;
use corecast_proto::session::{join_reply, JoinErrorCode, JoinReply, Quality, SessionMessage};
use corecast_proto::token::{self, Role};
use corecast_proto::{MediaKind, MediaTime, Pt, SeqNo, Ssrc};

use crate::media::{self, Probe};
pub use crate::receive::ReceiveHandle;
use crate::receive::{answer_check, receive_loop, Progress};
use corecast_proto::srtp::native::{NativeSrtp, Opener};

/// Why a join failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket trouble.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// The router refused the join.
    #[error("join refused: {code:?}: {reason}")]
    Refused {
        /// Code.
        code: JoinErrorCode,
        /// Reason the router gave.
        reason: String,
    },
    /// No answer after every retry.
    #[error("no answer from the router at {0}")]
    NoAnswer(SocketAddr),
}

/// What to send.
#[derive(Debug, Clone)]
pub struct MediaPlan {
    /// Send an audio stream (50 packets/s of `audio_packet_size` bytes).
    pub audio: bool,
    /// Audio packet size in bytes.
    pub audio_packet_size: usize,
    /// RFC 6464 level every audio packet carries, dBov (0 loudest ..= 127
    /// silence; `None`: no level extension).
    pub audio_level: Option<u8>,
    /// Video frames per second (0: no video).
    pub video_fps: u32,
    /// Packets per video frame (equal-sized).
    pub video_packets_per_frame: u16,
    /// Video packet size in bytes (≤ 1200).
    pub video_packet_size: usize,
    /// How long to send.
    pub duration: Duration,
    /// Stop after this many packets in all (if set).
    pub max_packets: Option<u64>,
}

impl Default for MediaPlan {
    fn default() -> Self {
        MediaPlan {
            audio: true,
            audio_packet_size: 160,
            audio_level: Some(30),
            video_fps: 30,
            video_packets_per_frame: 4,
            video_packet_size: 1200,
            duration: Duration::from_secs(5),
            max_packets: None,
        }
    }
}

/// What a sender sent.
#[derive(Debug, Clone, Default)]
pub struct SendReport {
    /// Packets sent.
    pub sent: u64,
    /// Packets the socket refused (counted, not retried).
    pub send_errors: u64,
    /// Raw packets sent, when recording was asked for.
    pub recorded: Vec<Vec<u8>>,
}

/// A joined participant.
#[derive(Debug)]
pub struct Client {
    socket: Arc<UdpSocket>,
    router: SocketAddr,
    participant: u64,
    audio_ssrc: Ssrc,
    video_ssrc: Ssrc,
    sends: bool,
    timeout_ms: u32,
    /// The join key every session message is signed with.
    key: JoinKey,
    /// SRTP keyed from it (`None`: a plain leg).
    srtp: Option<Arc<NativeSrtp>>,
    /// The next audio and video sequence numbers (random at the join; see
    /// [`Client::continue_sequences`]).
    seqs: std::sync::Mutex<(SeqNo, SeqNo)>,
}

fn too_many_redirects() -> ClientError {
    ClientError::Refused { code: JoinErrorCode::TryAlternate, reason: "redirected more than 3 times".into() }
}

/// SSRCs derived from the participant id, so that tests can predict them.
pub fn ssrcs_for(participant: u64) -> (Ssrc, Ssrc) {
    let base = (participant as u32).wrapping_mul(2).wrapping_add(0x1000);
    (Ssrc(base), Ssrc(base.wrapping_add(1)))
}

/// Opens a UDP socket on `bind` with large buffers.
pub fn open_socket(bind: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if bind.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&bind.into())?;
    Ok(s.into())
}

impl Client {
    /// [`join`](Self::join) a router configured with the public development
    /// join secret (tests and local runs with `--insecure-dev-keys`): the
    /// key is derived here instead of coming from the calls service.
    pub fn join_dev(
        router: SocketAddr,
        token: &[u8],
        participant_hint: u64,
        quality: Quality,
    ) -> Result<Client, ClientError> {
        Self::join(router, token, &JoinSecret::dev().key_for(token), participant_hint, quality)
    }

    /// Joins with `token` (raw 98 bytes) and its join `key` (both from the
    /// calls service's join reply), declaring `ssrcs_for(participant)`,
    /// or no SSRC at all when the token's role is subscriber (the router
    /// refuses a subscriber that declares any; such a client only receives,
    /// see [`sends`](Self::sends)).
    /// Follows a 300 redirect to another worker. Retries 5 times, 400 ms apart.
    /// Every session message is signed with `key`; a check from the router
    /// (when this participant was admitted from another address) is answered.
    pub fn join(
        router: SocketAddr,
        token: &[u8],
        key: &JoinKey,
        participant_hint: u64,
        quality: Quality,
    ) -> Result<Client, ClientError> {
        let bind: SocketAddr = if router.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
        let socket = open_socket(bind)?;
        Self::join_on(socket, router, token, key, participant_hint, quality)
    }

    /// [`join`](Self::join) on a socket of the caller's.
    pub fn join_on(
        socket: UdpSocket,
        router: SocketAddr,
        token: &[u8],
        key: &JoinKey,
        participant_hint: u64,
        quality: Quality,
    ) -> Result<Client, ClientError> {
        Self::join_with(socket, router, token, key, participant_hint, quality, true)
    }

    /// [`join_on`](Self::join_on), with media over SRTP (`srtp`, keyed
    /// from `key`) or plain RTP (only where the router's config allows it:
    /// the bench's plain runs).
    pub fn join_with(
        socket: UdpSocket,
        mut router: SocketAddr,
        token: &[u8],
        key: &JoinKey,
        participant_hint: u64,
        quality: Quality,
        srtp: bool,
    ) -> Result<Client, ClientError> {
        let (a, v) = ssrcs_for(participant_hint);
        let sends = !token::peek(token).is_ok_and(|c| c.role == Role::Subscriber);
        let ssrcs = if sends { vec![(a, MediaKind::Audio), (v, MediaKind::Video)] } else { Vec::new() };
        socket.set_read_timeout(Some(Duration::from_millis(400)))?;
        let mut buf = vec![0u8; 2048];
        let mut redirects = 0;
        let mut tries = 0;
        while tries < 5 {
            tries += 1;
            let txid: [u8; 12] = rand::random();
            let join = SessionMessage::Join { txid, token: token.to_vec(), ssrcs: ssrcs.clone(), quality, srtp };
            socket.send_to(&join.to_signed_vec(key), router)?;
            let deadline = Instant::now() + Duration::from_millis(400);
            while Instant::now() < deadline {
                let (n, from) = match socket.recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                    Err(e) => return Err(e.into()),
                };
                if from != router || classify(&buf[..n]) != Kind::Stun {
                    continue;
                }
                answer_check(&socket, router, &buf[..n], key);
                match join_reply(&buf[..n], &txid) {
                    Some(JoinReply::Admitted { participant, timeout_ms }) => {
                        return Ok(Client {
                            socket: Arc::new(socket),
                            router,
                            participant,
                            audio_ssrc: a,
                            video_ssrc: v,
                            sends,
                            timeout_ms,
                            key: key.clone(),
                            srtp: srtp.then(|| Arc::new(NativeSrtp::new(key))),
                            seqs: std::sync::Mutex::new((SeqNo(rand::random()), SeqNo(rand::random()))),
                        });
                    }
                    Some(JoinReply::Redirect(alt)) if redirects < 3 => {
                        redirects += 1;
                        router = alt;
                        tries = 0;
                        break;
                    }
                    Some(JoinReply::Redirect(_)) => return Err(too_many_redirects()),
                    Some(JoinReply::Refused { code, reason }) => return Err(ClientError::Refused { code, reason }),
                    None => continue,
                }
            }
        }
        Err(ClientError::NoAnswer(router))
    }

    /// The participant id the router admitted.
    pub fn participant(&self) -> u64 {
        self.participant
    }

    /// The router address (after any redirect).
    pub fn router(&self) -> SocketAddr {
        self.router
    }

    /// The SSRCs this client sends (audio, video); a subscriber declared them
    /// not and sends nothing.
    pub fn ssrcs(&self) -> (Ssrc, Ssrc) {
        (self.audio_ssrc, self.video_ssrc)
    }

    /// Whether this client sends media: false when it joined as a subscriber
    /// (receive only), whose [`send_media`](Self::send_media) sends nothing.
    pub fn sends(&self) -> bool {
        self.sends
    }

    /// The socket (for tests that send hand-made datagrams).
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Sends a session message, signed with the join key.
    fn send_session(&self, m: SessionMessage) -> io::Result<()> {
        self.socket.send_to(&m.to_signed_vec(&self.key), self.router).map(|_| ())
    }

    /// Sends a keepalive.
    pub fn keepalive(&self) -> io::Result<()> {
        self.send_session(SessionMessage::Keepalive { txid: rand::random() })
    }

    /// Asks the router for HD or SD.
    pub fn set_quality(&self, quality: Quality) -> io::Result<()> {
        self.send_session(SessionMessage::Quality { txid: rand::random(), quality })
    }

    /// Asks for the video of the call's `n` most active speakers only (Last-N; 0: everyone's).
    pub fn set_last_n(&self, n: u8) -> io::Result<()> {
        self.send_session(SessionMessage::LastN { txid: rand::random(), n })
    }

    /// Asks for no video taller than `height` pixels where a source has a
    /// smaller layer (0: no limit; else 16..=4320, which the router checks).
    pub fn set_max_height(&self, height: u16) -> io::Result<()> {
        self.send_session(SessionMessage::MaxHeight { txid: rand::random(), height })
    }

    /// Declares video streams it sends (declared at the join, or sent) as
    /// simulcast layers of one source, lowest quality first (2 to 4): each
    /// receiver then gets one of them under the first SSRC (router/PROTOCOL.md §2).
    pub fn declare_simulcast(&self, layers: &[Ssrc]) -> io::Result<()> {
        self.send_session(SessionMessage::Simulcast { txid: rand::random(), layers: layers.to_vec() })
    }

    /// Leaves the call.
    pub fn leave(&self) -> io::Result<()> {
        self.send_session(SessionMessage::Leave { txid: rand::random() })
    }

    /// The join key (for tests that send hand-made session messages).
    pub fn key(&self) -> &JoinKey {
        &self.key
    }

    /// Sends an RTP packet or RTCP compound to the router, sealed on an
    /// SRTP leg.
    pub fn send_packet(&self, plain: &[u8]) -> io::Result<usize> {
        match &self.srtp {
            Some(s) => match s.seal(plain) {
                Some(sealed) => self.socket.send_to(&sealed, self.router),
                None => Err(io::Error::other("SRTP refused to seal the packet")),
            },
            None => self.socket.send_to(plain, self.router),
        }
    }

    /// What a receiving thread opens the router's packets with.
    pub fn opener(&self) -> Opener {
        self.srtp.as_ref().map_or_else(Opener::plain, |s| s.opener())
    }

    /// The router's RTP packets of streams `ssrcs` received until `n`
    /// distinct (SSRC, sequence number) pairs have arrived or `deadline`
    /// passes, opened: each one's payload (anything else is skipped).
    pub fn collect_rtp(&self, ssrcs: &[u32], n: usize, deadline: Instant) -> BTreeMap<(u32, u16), Vec<u8>> {
        let mut got = BTreeMap::new();
        let mut buf = vec![0u8; 2048];
        let mut opener = self.opener();
        while got.len() < n && Instant::now() < deadline {
            let Ok((len, _)) = self.socket.recv_from(&mut buf) else { continue };
            let Some(plain) = opener.open(&buf[..len]) else { continue };
            if let Ok(p) = RtpPacket::parse(plain) {
                if ssrcs.contains(&p.ssrc.0) {
                    got.insert((p.ssrc.0, p.seq.0), p.payload);
                }
            }
        }
        got
    }

    /// Starts a thread that receives and verifies until [`ReceiveHandle::finish`].
    /// It also sends a keepalive every third of the router's silence timeout.
    pub fn start_receiving(&self, record: bool) -> ReceiveHandle {
        let socket = self.socket.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let (s, p) = (stop.clone(), progress.clone());
        let router = self.router;
        let keepalive_every = Duration::from_millis((self.timeout_ms as u64 / 3).clamp(100, 5000));
        let (key, opener) = (self.key.clone(), self.opener());
        let thread =
            std::thread::spawn(move || receive_loop(&socket, router, &key, opener, &s, &p, record, keepalive_every));
        ReceiveHandle { stop, progress, thread: Some(thread) }
    }

    /// Sends media per `plan`, paced, on the calling thread. A subscriber
    /// sends nothing and returns at once.
    pub fn send_media(&self, plan: &MediaPlan, record: bool) -> SendReport {
        self.send_media_while(plan, record, &|| true)
    }

    /// [`send_media`](Self::send_media), stopping early once `go_on` returns false (asked
    /// before every packet time, at least every 20 ms with audio).
    pub fn send_media_while(&self, plan: &MediaPlan, record: bool, go_on: &dyn Fn() -> bool) -> SendReport {
        let mut rep = SendReport::default();
        if !self.sends {
            return rep;
        }
        let start = Instant::now();
        let end = start + plan.duration;
        let audio_every = Duration::from_millis(20);
        let video_every = if plan.video_fps > 0 { Duration::from_secs(1) / plan.video_fps } else { Duration::MAX };
        let (mut next_audio, mut next_video) = (start, start);
        let (mut aseq, mut vseq) = *self.seqs.lock().unwrap_or_else(|e| e.into_inner());
        let (mut aframe, mut vframe) = (0u32, 0u32);
        let mut buf = Vec::with_capacity(1500);
        let limit = plan.max_packets.unwrap_or(u64::MAX);
        loop {
            let now = Instant::now();
            if now >= end || rep.sent >= limit || !go_on() {
                break;
            }
            if plan.audio && now >= next_audio {
                let probe = Probe {
                    sender: self.participant,
                    ssrc: self.audio_ssrc,
                    frame: aframe,
                    index: 0,
                    count: 1,
                    sent_us: crate::now_us(),
                };
                buf.clear();
                let ts = MediaTime(aframe.wrapping_mul(960));
                if media::build(&probe, Pt(111), aseq, ts, true, plan.audio_packet_size, plan.audio_level, &mut buf)
                    .is_ok()
                {
                    self.send(&buf, record, &mut rep);
                }
                aseq = aseq.next();
                aframe += 1;
                next_audio += audio_every;
            }
            if plan.video_fps > 0 && now >= next_video {
                let n = plan.video_packets_per_frame.max(1);
                for i in 0..n {
                    if rep.sent >= limit {
                        break;
                    }
                    let probe = Probe {
                        sender: self.participant,
                        ssrc: self.video_ssrc,
                        frame: vframe,
                        index: i,
                        count: n,
                        sent_us: crate::now_us(),
                    };
                    buf.clear();
                    let ts = MediaTime(vframe.wrapping_mul(90_000 / plan.video_fps.max(1)));
                    if media::build(&probe, Pt(96), vseq, ts, i + 1 == n, plan.video_packet_size, None, &mut buf)
                        .is_ok()
                    {
                        self.send(&buf, record, &mut rep);
                    }
                    vseq = vseq.next();
                }
                vframe += 1;
                next_video += video_every;
            }
            let next = if plan.audio { next_audio } else { end };
            let next = if plan.video_fps > 0 { next.min(next_video) } else { next };
            let now = Instant::now();
            if next > now {
                std::thread::sleep((next - now).min(end.saturating_duration_since(now)).min(Duration::from_millis(50)));
            }
        }
        *self.seqs.lock().unwrap_or_else(|e| e.into_inner()) = (aseq, vseq);
        rep
    }

    /// Sends on from where `before` (this participant's previous leg, on a
    /// router it left) stopped: the same SSRCs go on with the next sequence
    /// numbers. A router refuses to seal a packet index it has already used
    /// towards a receiver (SRTP: a keystream never twice), so a stream that
    /// restarted its numbers below where receivers' contexts are would not
    /// be forwarded until it passed them.
    pub fn continue_sequences(&self, before: &Client) {
        let seqs = *before.seqs.lock().unwrap_or_else(|e| e.into_inner());
        *self.seqs.lock().unwrap_or_else(|e| e.into_inner()) = seqs;
    }

    fn send(&self, b: &[u8], record: bool, rep: &mut SendReport) {
        match self.send_packet(b) {
            Ok(_) => {
                rep.sent += 1;
                if record {
                    rep.recorded.push(b.to_vec());
                }
            }
            Err(_) => rep.send_errors += 1,
        }
    }
}
