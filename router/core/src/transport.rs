//! Transports: the legs over which a participant reaches the router.
//!
//! Per-leg work lives here: today the native UDP transport only addresses
//! datagrams; the WebRTC transport adds ICE consent, DTLS-SRTP sealing, RTCP
//! reports and congestion feedback for its peer. Links between workers (and
//! later between routers) are [`PipeTransport`](crate::pipe::PipeTransport)s,
//! owned by the call rather than by a participant.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::outbox::Outbox;

/// How the router reaches one participant.
#[derive(Debug, Clone)]
pub(crate) enum Transport {
    /// corecast's native transport: admitted by a signed join (a STUN-framed
    /// session message), then plain RTP/RTCP on the router's UDP port.
    Udp(UdpTransport),
}

/// The native UDP leg: the peer's address, learned from its join.
#[derive(Debug, Clone)]
pub(crate) struct UdpTransport {
    pub remote: SocketAddr,
}

impl Transport {
    pub fn udp(remote: SocketAddr) -> Transport {
        Transport::Udp(UdpTransport { remote })
    }

    /// The peer's address (what the router sends to and admits from).
    #[inline]
    pub fn remote(&self) -> SocketAddr {
        match self {
            Transport::Udp(u) => u.remote,
        }
    }

    /// Follows the peer to a new address (NAT rebinding, reconnect).
    pub fn set_remote(&mut self, remote: SocketAddr) {
        match self {
            Transport::Udp(u) => u.remote = remote,
        }
    }

    /// Sends one RTP or RTCP packet (or a session message) to the peer.
    #[inline]
    pub fn send(&self, out: &mut Outbox, contents: Bytes) {
        match self {
            Transport::Udp(u) => out.transmit(u.remote, contents),
        }
    }
}
