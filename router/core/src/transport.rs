//! Transports: the legs over which a participant reaches the router.
//!
//! Per-leg work lives here: the native UDP transport only addresses
//! datagrams; the WebRTC transport ([`crate::webrtc`]) adds ICE consent,
//! DTLS-SRTP sealing and the per-receiver header rewrite. Links between
//! workers (and later between routers) are
//! [`PipeTransport`](crate::pipe::PipeTransport)s, owned by the call rather
//! than by a participant.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use corecast_proto::join_key::JoinKey;
use corecast_proto::rtp::RtpHeader;

use corecast_proto::demux::{classify, Kind};

use crate::outbox::Outbox;
use crate::srtp_pair::{rtx_slot, write_rtx, SrtpPair, NATIVE_RTX_PT};
use crate::webrtc::rtx_ssrc;
use crate::webrtc::{Source, WebRtcTransport};

/// How the router reaches one participant.
#[derive(Debug)]
pub(crate) enum Transport {
    /// corecast's native transport: admitted by a signed join (a STUN-framed
    /// session message), then plain RTP/RTCP on the router's UDP port.
    Udp(UdpTransport),
    /// A browser or standard WebRTC tool: ICE-lite, DTLS-SRTP, BUNDLE.
    WebRtc(Box<WebRtcTransport>),
}

/// The native UDP leg: the peer's address, learned from its join, and the
/// key its session messages are signed with.
#[derive(Debug)]
pub(crate) struct UdpTransport {
    pub remote: SocketAddr,
    /// The join key of the token it joined with.
    pub key: JoinKey,
    /// When that token expires (Unix ms): how long a revocation is kept.
    pub token_expires_ms: u64,
    /// A move to a new address, waiting for the peer's answer to a check
    /// from there (see `address_check`).
    pub moving: Option<Move>,
    /// SRTP both ways, keyed from the join key (`None`: plain RTP, only
    /// where the router's config allows it).
    pub srtp: Option<Box<SrtpPair>>,
    /// The next sequence number of each RTX stream resent on this leg
    /// (SRTP legs resend as RTX: see [`NATIVE_RTX_PT`]).
    pub rtx_seqs: Vec<(u32, u16)>,
}

/// A native leg's pending address change.
#[derive(Debug, Clone)]
pub(crate) struct Move {
    /// The address the join came from.
    pub to: SocketAddr,
    /// The check's transaction id (unpredictable without the key).
    pub check: [u8; 12],
    /// The join's transaction id, for the JoinAck once the check passes.
    pub join_txid: [u8; 12],
    /// The check is void after this.
    pub until: Instant,
}

/// The address of a WebRTC leg no check has reached yet.
pub(crate) const NOWHERE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

impl Transport {
    /// A native leg; with `srtp`, its SRTP keys come from `key`.
    pub fn udp(remote: SocketAddr, key: JoinKey, token_expires_ms: u64, srtp: bool) -> Transport {
        let srtp = if srtp {
            let (client, router) = key.native_srtp_keys();
            SrtpPair::new(&router, &client).ok().map(Box::new)
        } else {
            None
        };
        Transport::Udp(UdpTransport { remote, key, token_expires_ms, moving: None, srtp, rtx_seqs: Vec::new() })
    }

    /// The peer's address (what the router sends to).
    #[inline]
    pub fn remote(&self) -> SocketAddr {
        match self {
            Transport::Udp(u) => u.remote,
            Transport::WebRtc(w) => w.ice.remote().unwrap_or(NOWHERE),
        }
    }

    /// Sends one RTCP compound (or, to a native peer, a session message).
    #[inline]
    pub fn send(&mut self, out: &mut Outbox, contents: Bytes) {
        match self {
            Transport::Udp(UdpTransport { remote, srtp: Some(srtp), .. }) if classify(&contents) == Kind::Rtcp => {
                srtp.send_rtcp(out, *remote, &contents)
            }
            Transport::Udp(u) => out.transmit(u.remote, contents),
            Transport::WebRtc(w) => w.send_rtcp(out, &contents),
        }
    }

    /// Sends one forwarded RTP packet (`h` its parsed header, `src` what it
    /// carries); whether it went out.
    #[inline]
    pub fn send_rtp(&mut self, out: &mut Outbox, contents: Bytes, h: &RtpHeader, src: Option<Source>) -> bool {
        match self {
            Transport::Udp(UdpTransport { remote, srtp: Some(srtp), .. }) => {
                srtp.seal_and_send(out, *remote, |arena| {
                    arena.extend_from_slice(&contents);
                    true
                }) == Some(true)
            }
            Transport::Udp(u) => {
                out.transmit(u.remote, contents);
                true
            }
            Transport::WebRtc(w) => match src {
                Some(src) => w.send_rtp(out, &contents, h, src),
                None => {
                    out.stats.webrtc_not_ready += 1;
                    false
                }
            },
        }
    }

    /// Whether the router answers this leg's NACKs for `src` itself: a
    /// native leg gets the packet again, a WebRTC leg that negotiated RTX
    /// gets it as RTX; other WebRTC legs' NACKs go to the publisher.
    #[inline]
    pub fn takes_resends(&self, src: Option<Source>) -> bool {
        match self {
            Transport::Udp(_) => true,
            Transport::WebRtc(w) => w.takes_rtx(src),
        }
    }

    /// Resends one packet from the retransmission buffer (see
    /// [`Transport::takes_resends`]); `false` if it could not go.
    #[inline]
    pub fn resend(&mut self, out: &mut Outbox, contents: Bytes, h: &RtpHeader, src: Option<Source>) -> bool {
        match (self, src) {
            (Transport::Udp(UdpTransport { remote, srtp: Some(srtp), rtx_seqs, .. }), _) => {
                // As RTX: sealing the packet again under its first index would reuse a nonce.
                let ssrc = rtx_ssrc(h.ssrc.0);
                let i = rtx_slot(rtx_seqs, ssrc);
                let seq = rtx_seqs[i].1;
                let sent = srtp
                    .seal_and_send(out, *remote, |arena| write_rtx(&contents, h, NATIVE_RTX_PT, seq, ssrc, arena))
                    == Some(true);
                if sent {
                    rtx_seqs[i].1 = seq.wrapping_add(1);
                }
                sent
            }
            (Transport::Udp(u), _) => {
                out.transmit(u.remote, contents);
                true
            }
            (Transport::WebRtc(w), Some(src)) => w.send_rtx(out, &contents, h, src),
            (Transport::WebRtc(_), None) => false,
        }
    }
}
