//! The sans-IO peer: offer, answer, ICE checks, the DTLS handshake, then
//! SRTP/SRTCP both ways and consent, driven by datagrams and time.
//!
//! ```text
//! new → offer() → [HTTP: WHIP/WHEP, or RouterServer::open_webrtc] → accept_answer()
//!     → poll_transmit()/handle_datagram()/handle_timeout() until connected()
//!     → protect_rtp()/unprotect() for media, handle_timeout() for consent
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use corecast_proto::demux::{classify, Kind};
use corecast_proto::srtp::{SrtpError, SrtpProfile};

use super::dtls::{DtlsClient, DtlsError, Identity, SrtpKeys};
use super::ice::IceAgent;
use super::sdp::{offer, read_answer, AnswerError, OfferParams, RemoteParams};

/// Why a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The answer is not usable.
    #[error(transparent)]
    Answer(#[from] AnswerError),
    /// DTLS failed.
    #[error(transparent)]
    Dtls(#[from] DtlsError),
    /// SRTP refused a packet.
    #[error("SRTP: {0}")]
    Srtp(#[from] SrtpError),
    /// Called out of order.
    #[error("{0}")]
    State(&'static str),
}

/// What the peer publishes: `Some((audio SSRC, video SSRC))` (WHIP), or
/// nothing (`None`, WHEP).
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Publish these SSRCs, or receive.
    pub publish: Option<(u32, u32)>,
    /// RTCP CNAME / MediaStream id.
    pub cname: String,
    /// The SRTP profiles to offer in DTLS, best first (empty: all of them, as
    /// a browser does; one profile forces it).
    pub srtp_profiles: Vec<SrtpProfile>,
}

/// A datagram from the router, decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Nothing for the application (ICE, DTLS, or dropped).
    Nothing,
    /// An RTP packet (plain).
    Rtp(Vec<u8>),
    /// An RTCP compound (plain).
    Rtcp(Vec<u8>),
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// ICE checks sent.
    pub checks_sent: u64,
    /// Their success responses.
    pub check_responses: u64,
    /// SRTP/SRTCP packets that did not authenticate or were replays.
    pub srtp_rejected: u64,
    /// Datagrams of no known kind.
    pub unknown: u64,
}

/// One WebRTC session with the router.
#[derive(Debug)]
pub struct WebRtcPeer {
    identity: Identity,
    ice_ufrag: String,
    ice_pwd: String,
    config: PeerConfig,
    remote: Option<RemoteParams>,
    ice: Option<IceAgent>,
    dtls: Option<DtlsClient>,
    dtls_next: Option<Instant>,
    srtp: Option<SrtpKeys>,
    out: VecDeque<Vec<u8>>,
    stats: PeerStats,
}

/// ICE characters (RFC 8839 ice-char) for the ufrag and password.
fn ice_chars(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::thread_rng();
    (0..n).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

impl WebRtcPeer {
    /// A peer with a new certificate and ICE credentials.
    pub fn new(config: PeerConfig) -> Result<WebRtcPeer, PeerError> {
        Ok(WebRtcPeer {
            identity: Identity::generate()?,
            ice_ufrag: ice_chars(8),
            ice_pwd: ice_chars(24),
            config,
            remote: None,
            ice: None,
            dtls: None,
            dtls_next: None,
            srtp: None,
            out: VecDeque::new(),
            stats: PeerStats::default(),
        })
    }

    /// The SDP offer text (`application/sdp`).
    pub fn offer(&self) -> String {
        offer(&OfferParams {
            ice_ufrag: self.ice_ufrag.clone(),
            ice_pwd: self.ice_pwd.clone(),
            fingerprint: self.identity.fingerprint(),
            publish: self.config.publish,
            cname: self.config.cname.clone(),
        })
        .to_sdp()
    }

    /// Takes the router's answer; ICE checks start at `now`.
    pub fn accept_answer(&mut self, answer: &str, now: Instant) -> Result<(), PeerError> {
        if self.remote.is_some() {
            return Err(PeerError::State("the answer was already taken"));
        }
        let r = read_answer(answer)?;
        self.ice = Some(IceAgent::new(&self.ice_ufrag, &r.ice_ufrag, &r.ice_pwd, now));
        self.dtls = Some(DtlsClient::new(&self.identity, r.fingerprint.clone(), &self.config.srtp_profiles, now)?);
        self.remote = Some(r);
        Ok(())
    }

    /// What the answer said (after [`WebRtcPeer::accept_answer`]).
    pub fn remote(&self) -> Option<&RemoteParams> {
        self.remote.as_ref()
    }

    /// Where every datagram goes: the answer's candidate.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote.as_ref().map(|r| r.candidate)
    }

    /// Whether ICE is nominated and SRTP keyed.
    pub fn connected(&self) -> bool {
        self.srtp.is_some()
    }

    /// The negotiated SRTP profile.
    pub fn profile(&self) -> Option<SrtpProfile> {
        self.srtp.as_ref().map(|s| s.profile)
    }

    /// Counters.
    pub fn stats(&self) -> PeerStats {
        let mut s = self.stats;
        if let Some(ice) = &self.ice {
            s.checks_sent = ice.checks_sent;
            s.check_responses = ice.responses;
        }
        s
    }

    /// The next datagram to send to [`WebRtcPeer::remote_addr`].
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// When [`WebRtcPeer::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ice = self.ice.as_ref().map(IceAgent::next_timeout);
        let dtls = if self.srtp.is_none() { self.dtls_next } else { None };
        match (ice, dtls) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Checks, consent, DTLS start and retransmissions due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), PeerError> {
        let Some(ice) = self.ice.as_mut() else { return Ok(()) };
        if let Some(check) = ice.poll_check(now) {
            self.out.push_back(check);
        }
        // DTLS only once a check was answered (the router drops it before).
        if ice.nominated() && self.srtp.is_none() {
            if let Some(dtls) = self.dtls.as_mut() {
                let mut send = Vec::new();
                self.dtls_next = dtls.handle_timeout(now, &mut send)?;
                self.out.extend(send);
                self.take_keys();
            }
        }
        Ok(())
    }

    fn take_keys(&mut self) {
        if let Some(k) = self.dtls.as_mut().and_then(DtlsClient::take_keys) {
            self.srtp = Some(k);
        }
    }

    /// Handles a datagram from the router.
    pub fn handle_datagram(&mut self, now: Instant, d: &[u8]) -> Result<Incoming, PeerError> {
        match classify(d) {
            Kind::Stun => {
                let first = self.ice.as_ref().is_some_and(|i| !i.nominated());
                if self.ice.as_mut().is_some_and(|i| i.on_stun(now, d)) && first {
                    // Nominated: the DTLS handshake starts now.
                    self.handle_timeout(now)?;
                }
                Ok(Incoming::Nothing)
            }
            Kind::Dtls => {
                if let Some(dtls) = self.dtls.as_mut() {
                    let mut send = Vec::new();
                    dtls.handle_packet(now, d, &mut send)?;
                    self.out.extend(send);
                    self.take_keys();
                }
                Ok(Incoming::Nothing)
            }
            Kind::Rtp | Kind::Rtcp => {
                let mut out = BytesMut::with_capacity(d.len());
                let rtcp = classify(d) == Kind::Rtcp;
                match self.unprotect(d, rtcp, &mut out) {
                    Ok(()) if rtcp => Ok(Incoming::Rtcp(out.to_vec())),
                    Ok(()) => Ok(Incoming::Rtp(out.to_vec())),
                    Err(PeerError::Srtp(_)) => {
                        self.stats.srtp_rejected += 1;
                        Ok(Incoming::Nothing)
                    }
                    Err(e) => Err(e),
                }
            }
            Kind::Unknown => {
                self.stats.unknown += 1;
                Ok(Incoming::Nothing)
            }
        }
    }

    /// Seals an RTP packet, appending the SRTP packet to `out`.
    pub fn protect_rtp(&mut self, plain: &[u8], out: &mut BytesMut) -> Result<(), PeerError> {
        let s = self.srtp.as_mut().ok_or(PeerError::State("SRTP is not keyed yet"))?;
        Ok(s.tx.protect_rtp(plain, out)?)
    }

    /// Seals an RTCP compound, appending the SRTCP packet to `out`.
    pub fn protect_rtcp(&mut self, plain: &[u8], out: &mut BytesMut) -> Result<(), PeerError> {
        let s = self.srtp.as_mut().ok_or(PeerError::State("SRTP is not keyed yet"))?;
        Ok(s.tx.protect_rtcp(plain, out)?)
    }

    /// Opens an SRTP (`rtcp`: SRTCP) packet from the router into `out`.
    pub fn unprotect(&mut self, packet: &[u8], rtcp: bool, out: &mut BytesMut) -> Result<(), PeerError> {
        let s = self.srtp.as_mut().ok_or(PeerError::State("SRTP is not keyed yet"))?;
        if rtcp {
            s.rx.unprotect_rtcp(packet, out)?;
        } else {
            s.rx.unprotect_rtp(packet, out)?;
        }
        Ok(())
    }
}
