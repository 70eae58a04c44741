//! A WebRTC client peer, what a browser does against the router's WHIP/WHEP
//! legs: an SDP offer, ICE checks (full agent, controlling, USE-CANDIDATE)
//! to the answer's candidate, the DTLS client handshake (`dimpl`, the
//! router's certificate checked against the answer's fingerprint), SRTP and
//! SRTCP both ways, and consent (a check every 5 s).
//!
//! - `sdp`: the offer (built on the `corecast_proto::sdp` model) and the
//!   answer's ICE credentials, candidate and fingerprint;
//! - `ice`: the checks and consent;
//! - `dtls`: the DTLS client, the profile mapping and the SRTP keys;
//! - `peer`: [`WebRtcPeer`], the sans-IO session tying them together;
//! - `udp`: [`UdpPeer`], a thin blocking driver on one UDP socket;
//! - `http`: WHIP/WHEP over HTTP (`POST` the offer, `201` with the answer);
//! - `run`: what `corecast-client whip`/`whep` send and check.
//!
//! The SRTP profile: the peer offers [`PeerConfig::srtp_profiles`] (all by
//! default, as a browser), the router picks (AEAD_AES_128_GCM first); see
//! [`dtls`].

pub mod dtls;
pub mod http;
pub mod ice;
pub mod peer;
pub mod run;
pub mod sdp;
pub mod udp;

pub use peer::{Incoming, PeerConfig, PeerError, PeerStats, WebRtcPeer};
pub use udp::UdpPeer;
