//! The SRTP key derivation function (RFC 3711 §4.3): the AES-CM PRF keyed
//! with the master key, run over the master salt XOR the label. RFC 7714 §11
//! uses the same PRF for the AEAD profiles with their 12-byte salt (the
//! salt is zero-padded on the right to the 14 bytes §4.3.1 assumes, as
//! libsrtp does).
//!
//! The key derivation rate is 0 (DTLS-SRTP never rekeys by rate), so the
//! `index DIV kdr` term is 0 and each session key is derived once.

use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128, AES_256};
use aws_lc_rs::iv::FixedLength;

use super::SrtpError;

/// The labels of RFC 3711 §4.3.2 and §4.3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Label {
    /// SRTP encryption key.
    RtpEncryption = 0x00,
    /// SRTP authentication key.
    RtpAuth = 0x01,
    /// SRTP salting key.
    RtpSalt = 0x02,
    /// SRTCP encryption key.
    RtcpEncryption = 0x03,
    /// SRTCP authentication key.
    RtcpAuth = 0x04,
    /// SRTCP salting key.
    RtcpSalt = 0x05,
}

/// The AES-CM PRF keyed with one master key.
pub(crate) struct Kdf {
    key: EncryptingKey,
    salt: [u8; 14],
    /// The master key's length: the session encryption keys have the same
    /// (RFC 6188 §3 for AES-256: the AES-256-CM PRF).
    pub(crate) key_len: usize,
}

impl Kdf {
    /// A PRF for a 16- or 32-byte master key and a master salt of at most 14 bytes.
    pub(crate) fn new(master_key: &[u8], master_salt: &[u8]) -> Result<Kdf, SrtpError> {
        let algorithm = match master_key.len() {
            16 => &AES_128,
            32 => &AES_256,
            _ => return Err(SrtpError::KeyLength),
        };
        if master_salt.len() > 14 {
            return Err(SrtpError::KeyLength);
        }
        let mut salt = [0u8; 14];
        salt[..master_salt.len()].copy_from_slice(master_salt);
        let key = UnboundCipherKey::new(algorithm, master_key)
            .and_then(EncryptingKey::ctr)
            .map_err(|_| SrtpError::KeyLength)?;
        Ok(Kdf { key, salt, key_len: master_key.len() })
    }

    /// Fills `out` with the session key of `label` (§4.3.1 with r = 0):
    /// the AES-CM keystream with IV `(salt XOR label << 48) << 16`.
    pub(crate) fn derive(&self, label: Label, out: &mut [u8]) -> Result<(), SrtpError> {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        iv[7] ^= label as u8;
        out.fill(0);
        let context = EncryptionContext::Iv128(FixedLength::from(iv));
        self.key.less_safe_encrypt(out, context).map(|_| ()).map_err(|_| SrtpError::Crypto)
    }
}
