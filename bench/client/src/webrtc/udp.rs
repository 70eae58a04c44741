//! A thin blocking UDP driver for [`WebRtcPeer`]: one socket, every
//! datagram to and from the answer's candidate; time from [`Instant::now`].

use std::collections::BTreeMap;
use std::io;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::BytesMut;
use corecast_proto::rtp::RtpPacket;
use corecast_proto::Pt;

use super::peer::{Incoming, WebRtcPeer};

/// RTP packets by (SSRC, sequence number): payload type and payload ([`UdpPeer::collect_rtp`]).
pub type Collected = BTreeMap<(u32, u16), (Pt, Vec<u8>)>;

/// A peer on a UDP socket.
#[derive(Debug)]
pub struct UdpPeer {
    /// The sans-IO peer.
    pub peer: WebRtcPeer,
    socket: UdpSocket,
    buf: Vec<u8>,
    sealed: BytesMut,
}

impl UdpPeer {
    /// Drives `peer` (which took its answer) on `socket`.
    pub fn new(socket: UdpSocket, peer: WebRtcPeer) -> UdpPeer {
        UdpPeer { peer, socket, buf: vec![0; 65_536], sealed: BytesMut::with_capacity(2048) }
    }

    /// The socket.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Sends what the peer has queued.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        let to = self.peer.remote_addr().context("no answer taken")?;
        while let Some(d) = self.peer.poll_transmit() {
            self.socket.send_to(&d, to)?;
        }
        Ok(())
    }

    /// Checks, handshakes, until SRTP is keyed (or `timeout`).
    pub fn connect(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.peer.connected() {
            let now = Instant::now();
            if now >= deadline {
                bail!("WebRTC: not connected after {timeout:?} (stats {:?})", self.peer.stats());
            }
            self.peer.handle_timeout(now)?;
            self.flush()?;
            let wait = self.peer.poll_timeout().unwrap_or(deadline).min(deadline);
            self.recv_until(wait)?;
        }
        self.flush()
    }

    /// Timers due now (consent checks), then sends.
    pub fn tick(&mut self) -> anyhow::Result<()> {
        self.peer.handle_timeout(Instant::now())?;
        self.flush()
    }

    /// Seals and sends an RTP packet (and whatever else is due).
    pub fn send_rtp(&mut self, plain: &[u8]) -> anyhow::Result<()> {
        let to = self.peer.remote_addr().context("no answer taken")?;
        self.sealed.clear();
        self.peer.protect_rtp(plain, &mut self.sealed)?;
        self.socket.send_to(&self.sealed, to)?;
        self.tick()
    }

    /// Seals and sends an RTCP compound.
    pub fn send_rtcp(&mut self, plain: &[u8]) -> anyhow::Result<()> {
        let to = self.peer.remote_addr().context("no answer taken")?;
        self.sealed.clear();
        self.peer.protect_rtcp(plain, &mut self.sealed)?;
        self.socket.send_to(&self.sealed, to)?;
        Ok(())
    }

    /// Receives one datagram before `deadline` (the peer's timers run too);
    /// `None` on timeout.
    pub fn recv_until(&mut self, deadline: Instant) -> anyhow::Result<Option<Incoming>> {
        let now = Instant::now();
        let wait = deadline.saturating_duration_since(now).max(Duration::from_millis(1));
        self.socket.set_read_timeout(Some(wait))?;
        match self.socket.recv_from(&mut self.buf) {
            Ok((n, from)) => {
                if Some(from) != self.peer.remote_addr() {
                    return Ok(Some(Incoming::Nothing));
                }
                let r = self.peer.handle_datagram(Instant::now(), &self.buf[..n])?;
                self.flush()?;
                Ok(Some(r))
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                self.tick()?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Receives the next RTP packet (plain) before `deadline`, keeping
    /// consent meanwhile; RTCP is skipped.
    pub fn recv_rtp(&mut self, deadline: Instant) -> anyhow::Result<Option<Vec<u8>>> {
        while Instant::now() < deadline {
            if let Some(Incoming::Rtp(p)) = self.recv_until(deadline)? {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    /// RTP packets received until `n` distinct (SSRC, sequence number) pairs
    /// have arrived or `deadline` passes: each one's payload type and payload.
    pub fn collect_rtp(&mut self, n: usize, deadline: Instant) -> anyhow::Result<Collected> {
        let mut got = BTreeMap::new();
        while got.len() < n {
            let Some(plain) = self.recv_rtp(deadline)? else { break };
            let p = RtpPacket::parse(&plain).context("a received packet is not RTP")?;
            got.insert((p.ssrc.0, p.seq.0), (p.pt, p.payload));
        }
        Ok(got)
    }
}
