//! The client's DTLS (RFC 5764 DTLS-SRTP) over `dimpl`: the DTLS client
//! (`setup:active` against the router's `passive`), with its own
//! self-signed certificate (its fingerprint goes in the offer); verifies the
//! router's certificate against the answer's fingerprint before it takes
//! the SRTP keys from the exporter.
//!
//! The SRTP profile: the client offers the profiles it is given, in that
//! order (a browser offers all of them); the router picks by its own
//! preference (AEAD_AES_128_GCM first). Offering one profile forces it, which
//! the bench uses to measure each; [`DtlsClient::profile`] tells what was
//! negotiated.

use std::sync::Arc;
use std::time::Instant;

use corecast_proto::srtp::{keys_from_dtls, SrtpContext, SrtpProfile};

/// The client's certificate.
#[derive(Clone)]
pub struct Identity {
    certificate: dimpl::DtlsCertificate,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh self-signed certificate.
    pub fn generate() -> Result<Identity, DtlsError> {
        let certificate = dimpl::certificate::generate_self_signed_certificate()
            .map_err(|e| DtlsError::Protocol(format!("certificate: {e}")))?;
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(&certificate.fingerprint());
        Ok(Identity { certificate, fingerprint })
    }

    /// SHA-256 of the certificate (DER).
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }
}

/// Why the handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtlsError {
    /// The library refused.
    #[error("DTLS: {0}")]
    Protocol(String),
    /// The router's certificate does not match the answer's fingerprint.
    #[error("the router's DTLS certificate does not match the answer's fingerprint")]
    Fingerprint,
    /// A profile the SRTP layer does not do, or keys before the certificate.
    #[error("DTLS exported no usable SRTP keys: {0}")]
    Keys(String),
}

/// SRTP both ways, as the handshake keyed it.
#[derive(Debug)]
pub struct SrtpKeys {
    /// The negotiated profile.
    pub profile: SrtpProfile,
    /// Protects what the client sends.
    pub tx: SrtpContext,
    /// Unprotects what the router sends.
    pub rx: SrtpContext,
}

/// `dimpl`'s profile as the SRTP layer names it.
pub fn map_profile(p: dimpl::SrtpProfile) -> Option<SrtpProfile> {
    match p {
        dimpl::SrtpProfile::AEAD_AES_128_GCM => Some(SrtpProfile::AeadAes128Gcm),
        dimpl::SrtpProfile::AEAD_AES_256_GCM => Some(SrtpProfile::AeadAes256Gcm),
        dimpl::SrtpProfile::AES128_CM_SHA1_80 => Some(SrtpProfile::Aes128CmHmacSha1_80),
        _ => None,
    }
}

/// The SRTP layer's profile as `dimpl` names it.
pub fn dimpl_profile(p: SrtpProfile) -> dimpl::SrtpProfile {
    match p {
        SrtpProfile::AeadAes128Gcm => dimpl::SrtpProfile::AEAD_AES_128_GCM,
        SrtpProfile::AeadAes256Gcm => dimpl::SrtpProfile::AEAD_AES_256_GCM,
        SrtpProfile::Aes128CmHmacSha1_80 => dimpl::SrtpProfile::AES128_CM_SHA1_80,
    }
}

/// One session's DTLS client.
pub struct DtlsClient {
    dtls: dimpl::Dtls,
    remote_fingerprint: Vec<u8>,
    verified: bool,
    keys: Option<SrtpKeys>,
    profile: Option<SrtpProfile>,
    next: Option<Instant>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for DtlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsClient").field("verified", &self.verified).field("profile", &self.profile).finish()
    }
}

impl DtlsClient {
    /// A client that will verify the router against `remote_fingerprint`.
    /// It offers `profiles` (best first; empty: every profile corecast does).
    pub fn new(
        identity: &Identity,
        remote_fingerprint: Vec<u8>,
        profiles: &[SrtpProfile],
        now: Instant,
    ) -> Result<DtlsClient, DtlsError> {
        let offer: Vec<dimpl::SrtpProfile> = if profiles.is_empty() {
            dimpl::SrtpProfile::ALL.to_vec()
        } else {
            profiles.iter().map(|p| dimpl_profile(*p)).collect()
        };
        let config = dimpl::Config::builder()
            .mtu(1200)
            .srtp_profiles(&offer)
            .build()
            .map_err(|e| DtlsError::Protocol(e.to_string()))?;
        let mut dtls = dimpl::Dtls::new_auto(Arc::new(config), identity.certificate.clone(), now);
        dtls.set_active(true);
        Ok(DtlsClient {
            dtls,
            remote_fingerprint,
            verified: false,
            keys: None,
            profile: None,
            next: None,
            buf: vec![0; 2048],
        })
    }

    /// The negotiated SRTP profile, once keyed.
    pub fn profile(&self) -> Option<SrtpProfile> {
        self.profile
    }

    /// The SRTP keys, once (the caller keeps them).
    pub fn take_keys(&mut self) -> Option<SrtpKeys> {
        self.keys.take()
    }

    /// Feeds a DTLS datagram from the router; appends what to send to `send`.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8], send: &mut Vec<Vec<u8>>) -> Result<(), DtlsError> {
        self.dtls.handle_timeout(now).map_err(|e| DtlsError::Protocol(e.to_string()))?;
        self.dtls.handle_packet(packet).map_err(|e| DtlsError::Protocol(e.to_string()))?;
        self.drain(send)
    }

    /// Starts the handshake or retransmits; returns when to call again.
    pub fn handle_timeout(&mut self, now: Instant, send: &mut Vec<Vec<u8>>) -> Result<Option<Instant>, DtlsError> {
        self.dtls.handle_timeout(now).map_err(|e| DtlsError::Protocol(e.to_string()))?;
        self.drain(send)?;
        Ok(self.next)
    }

    fn drain(&mut self, send: &mut Vec<Vec<u8>>) -> Result<(), DtlsError> {
        loop {
            match self.dtls.poll_output(&mut self.buf) {
                dimpl::Output::Packet(p) => send.push(p.to_vec()),
                dimpl::Output::BufferTooSmall { needed } => {
                    if needed > 1 << 16 || needed <= self.buf.len() {
                        return Err(DtlsError::Protocol("DTLS record larger than 64 KiB".into()));
                    }
                    self.buf.resize(needed, 0);
                }
                dimpl::Output::Timeout(t) => {
                    self.next = Some(t);
                    return Ok(());
                }
                dimpl::Output::PeerCert(der) => {
                    if dimpl::certificate::calculate_fingerprint(der) != self.remote_fingerprint {
                        return Err(DtlsError::Fingerprint);
                    }
                    self.verified = true;
                }
                dimpl::Output::KeyingMaterial(km, profile) => {
                    if !self.verified {
                        return Err(DtlsError::Fingerprint);
                    }
                    let profile = map_profile(profile).ok_or_else(|| DtlsError::Keys(format!("{profile:?}")))?;
                    let (ours, theirs) =
                        keys_from_dtls(profile, &km, false).map_err(|e| DtlsError::Keys(e.to_string()))?;
                    let tx = SrtpContext::new(&ours).map_err(|e| DtlsError::Keys(e.to_string()))?;
                    let rx = SrtpContext::new(&theirs).map_err(|e| DtlsError::Keys(e.to_string()))?;
                    self.profile = Some(profile);
                    self.keys = Some(SrtpKeys { profile, tx, rx });
                }
                _ => {}
            }
        }
    }
}
