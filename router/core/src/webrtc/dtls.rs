//! DTLS-SRTP (RFC 5764) for one WebRTC leg, over `dimpl` (a sans-IO DTLS
//! 1.2/1.3 library): the router is always the DTLS server (`setup:passive`),
//! verifies the peer's certificate against the fingerprint its SDP carried,
//! and takes the SRTP keys from the handshake's exporter.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use corecast_proto::srtp::SrtpProfile;

/// The SRTP profiles the router accepts, best first (RFC 5764 §4.1.1: the
/// server picks): AEAD_AES_128_GCM (RFC 7714) is the cheapest per forwarded
/// packet (one seal per receiver: 500 ns of 1200 bytes here against 540 ns
/// for AES-256-GCM and 1170 ns for AES-CM with HMAC-SHA1), AES-256-GCM next,
/// and AES128_CM_SHA1_80 for a peer that has no AEAD profile.
pub const ROUTER_SRTP_PREFERENCE: [dimpl::SrtpProfile; 3] =
    [dimpl::SrtpProfile::AEAD_AES_128_GCM, dimpl::SrtpProfile::AEAD_AES_256_GCM, dimpl::SrtpProfile::AES128_CM_SHA1_80];

/// The router's DTLS identity: one self-signed ECDSA P-256 certificate,
/// shared by every leg of every worker (its fingerprint goes in the answers).
pub struct DtlsIdentity {
    certificate: dimpl::DtlsCertificate,
    config: Arc<dimpl::Config>,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for DtlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsIdentity").field("fingerprint", &fingerprint_text(&self.fingerprint)).finish()
    }
}

impl DtlsIdentity {
    /// A new certificate (reads the wall clock for its validity and the
    /// system's random numbers: call it from the driver, at start-up).
    pub fn generate() -> Result<DtlsIdentity, String> {
        let certificate =
            dimpl::certificate::generate_self_signed_certificate().map_err(|e| format!("DTLS certificate: {e}"))?;
        let config = dimpl::Config::builder()
            .mtu(1200)
            .require_client_certificate(true)
            .srtp_profiles(&ROUTER_SRTP_PREFERENCE)
            .build()
            .map_err(|e| format!("DTLS configuration: {e}"))?;
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(&certificate.fingerprint());
        Ok(DtlsIdentity { certificate, config: Arc::new(config), fingerprint })
    }

    /// SHA-256 of the certificate (DER), for `a=fingerprint:sha-256`.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The fingerprint as SDP writes it: `AB:CD:…`.
    pub fn fingerprint_text(&self) -> String {
        fingerprint_text(&self.fingerprint)
    }
}

fn fingerprint_text(fp: &[u8]) -> String {
    let mut s = String::with_capacity(fp.len() * 3);
    for (i, b) in fp.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// The SRTP master keys a finished handshake exported.
#[derive(Debug)]
pub(crate) struct Exported {
    pub profile: SrtpProfile,
    pub material: Vec<u8>,
}

/// Why a handshake failed (the leg is closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DtlsFailure {
    /// The library refused (fatal for the connection).
    Protocol(String),
    /// The peer's certificate does not match the SDP fingerprint.
    Fingerprint,
    /// The handshake chose an SRTP profile the router does not do, or none.
    Profile,
}

/// One leg's DTLS server. `dimpl`'s state (kilobytes) is boxed: inline
/// it would spread the leg's fast-path fields (ICE address, SRTP context,
/// format) over a dozen cache lines of the [`super::WebRtcTransport`].
pub(crate) struct DtlsSession {
    dtls: Box<dimpl::Dtls>,
    remote_fingerprint: Vec<u8>,
    peer_verified: bool,
    pub connected: bool,
    buf: Vec<u8>,
}

impl std::fmt::Debug for DtlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsSession").field("connected", &self.connected).finish()
    }
}

impl DtlsSession {
    pub fn new(identity: &DtlsIdentity, remote_fingerprint: Vec<u8>, now: Instant) -> DtlsSession {
        let dtls = Box::new(dimpl::Dtls::new_auto(identity.config.clone(), identity.certificate.clone(), now));
        DtlsSession { dtls, remote_fingerprint, peer_verified: false, connected: false, buf: vec![0; 2048] }
    }

    /// Feeds one DTLS datagram; appends the records to send to `send` and
    /// returns the SRTP keys when the handshake completes with them.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        packet: &[u8],
        send: &mut Vec<Bytes>,
    ) -> Result<Option<Exported>, DtlsFailure> {
        self.dtls.handle_timeout(now).map_err(|e| DtlsFailure::Protocol(e.to_string()))?;
        self.dtls.handle_packet(packet).map_err(|e| DtlsFailure::Protocol(e.to_string()))?;
        self.drain(send)
    }

    /// Retransmissions and the handshake deadline.
    pub fn handle_timeout(&mut self, now: Instant, send: &mut Vec<Bytes>) -> Result<Option<Exported>, DtlsFailure> {
        self.dtls.handle_timeout(now).map_err(|e| DtlsFailure::Protocol(e.to_string()))?;
        self.drain(send)
    }

    fn drain(&mut self, send: &mut Vec<Bytes>) -> Result<Option<Exported>, DtlsFailure> {
        let mut exported = None;
        loop {
            match self.dtls.poll_output(&mut self.buf) {
                dimpl::Output::Packet(p) => send.push(Bytes::copy_from_slice(p)),
                dimpl::Output::BufferTooSmall { needed } => {
                    let n = needed.min(1 << 16);
                    if n <= self.buf.len() {
                        return Err(DtlsFailure::Protocol("DTLS record larger than 64 KiB".into()));
                    }
                    self.buf.resize(n, 0);
                }
                dimpl::Output::Timeout(_) => break,
                dimpl::Output::Connected => self.connected = true,
                dimpl::Output::PeerCert(der) => {
                    let fp = dimpl::certificate::calculate_fingerprint(der);
                    if fp != self.remote_fingerprint {
                        return Err(DtlsFailure::Fingerprint);
                    }
                    self.peer_verified = true;
                }
                dimpl::Output::KeyingMaterial(km, profile) => {
                    if !self.peer_verified {
                        return Err(DtlsFailure::Fingerprint);
                    }
                    let profile = match profile {
                        dimpl::SrtpProfile::AEAD_AES_128_GCM => SrtpProfile::AeadAes128Gcm,
                        dimpl::SrtpProfile::AES128_CM_SHA1_80 => SrtpProfile::Aes128CmHmacSha1_80,
                        dimpl::SrtpProfile::AEAD_AES_256_GCM => SrtpProfile::AeadAes256Gcm,
                        _ => return Err(DtlsFailure::Profile),
                    };
                    exported = Some(Exported { profile, material: km.to_vec() });
                }
                // Nothing but media runs over this transport: data channels are not offered.
                dimpl::Output::ApplicationData(_) | dimpl::Output::CloseNotify => {}
                _ => {}
            }
        }
        Ok(exported)
    }
}
