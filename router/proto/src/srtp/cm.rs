//! AES_CM_128_HMAC_SHA1_80 for SRTP and SRTCP (RFC 3711).
//!
//! - SRTP: the payload (after header, CSRCs and extension, padding
//!   included) is encrypted with AES-128 in counter mode, IV =
//!   `(salt << 16) XOR (SSRC << 64) XOR (index << 16)` (§4.1.1); the tag is
//!   HMAC-SHA1 over `header || ciphertext || ROC`, truncated to 80 bits
//!   (§4.2), appended.
//! - SRTCP: everything after the first 8 bytes is encrypted with the SRTCP
//!   index in place of the packet index; then the `E|index` word is
//!   appended, and the tag is HMAC-SHA1 over `packet || E|index` (§3.4).
//!
//! Counter mode runs in place in the output buffer and HMAC contexts are
//! cloned from a precomputed key (aws-lc's HMAC state is inline): no
//! allocation per packet.

use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use bytes::BytesMut;

use super::kdf::{Kdf, Label};
use super::SrtpError;

/// The truncated HMAC-SHA1 tag length (80 bits).
pub(crate) const TAG_LEN: usize = 10;

/// One direction's AES-CM/HMAC-SHA1 session keys for SRTP and SRTCP.
pub(crate) struct Cm {
    rtp_key: EncryptingKey,
    rtp_auth: hmac::Key,
    rtp_salt: [u8; 14],
    rtcp_key: EncryptingKey,
    rtcp_auth: hmac::Key,
    rtcp_salt: [u8; 14],
}

pub(crate) fn ctr_key(key: &[u8]) -> Result<EncryptingKey, SrtpError> {
    UnboundCipherKey::new(&AES_128, key).and_then(EncryptingKey::ctr).map_err(|_| SrtpError::KeyLength)
}

/// The §4.1.1 counter-mode IV for `ssrc` and packet (or SRTCP) index.
#[inline]
pub(crate) fn iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (b, x) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= x;
    }
    for (b, x) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..8]) {
        *b ^= x;
    }
    iv
}

/// XORs the AES-CM keystream for `iv` into `data`.
#[inline]
pub(crate) fn apply_keystream(key: &EncryptingKey, iv: [u8; 16], data: &mut [u8]) -> Result<(), SrtpError> {
    if data.is_empty() {
        return Ok(());
    }
    key.less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(iv)))
        .map(|_| ())
        .map_err(|_| SrtpError::Crypto)
}

/// HMAC-SHA1 of `a || b`, truncated.
#[inline]
fn tag(key: &hmac::Key, a: &[u8], b: &[u8]) -> [u8; TAG_LEN] {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(a);
    ctx.update(b);
    let full = ctx.sign();
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&full.as_ref()[..TAG_LEN]);
    t
}

impl Cm {
    /// Derives the session keys from the master key and salt.
    pub(crate) fn new(kdf: &Kdf) -> Result<Cm, SrtpError> {
        let mut k = [0u8; 16];
        let mut a = [0u8; 20];
        let mut rtp_salt = [0u8; 14];
        let mut rtcp_salt = [0u8; 14];
        kdf.derive(Label::RtpEncryption, &mut k)?;
        let rtp_key = ctr_key(&k)?;
        kdf.derive(Label::RtpAuth, &mut a)?;
        let rtp_auth = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &a);
        kdf.derive(Label::RtpSalt, &mut rtp_salt)?;
        kdf.derive(Label::RtcpEncryption, &mut k)?;
        let rtcp_key = ctr_key(&k)?;
        kdf.derive(Label::RtcpAuth, &mut a)?;
        let rtcp_auth = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &a);
        kdf.derive(Label::RtcpSalt, &mut rtcp_salt)?;
        Ok(Cm { rtp_key, rtp_auth, rtp_salt, rtcp_key, rtcp_auth, rtcp_salt })
    }

    /// Encrypts the RTP packet at `out[start..]` (header `hdr_len` bytes)
    /// and appends the tag.
    #[inline]
    pub(crate) fn seal_rtp(
        &self,
        out: &mut BytesMut,
        start: usize,
        hdr_len: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<(), SrtpError> {
        let packet = out.get_mut(start..).ok_or(SrtpError::Malformed)?;
        let payload = packet.get_mut(hdr_len..).ok_or(SrtpError::Malformed)?;
        apply_keystream(&self.rtp_key, iv(&self.rtp_salt, ssrc, index), payload)?;
        let roc = ((index >> 16) as u32).to_be_bytes();
        let t = tag(&self.rtp_auth, &out[start..], &roc);
        out.extend_from_slice(&t);
        Ok(())
    }

    /// Checks and decrypts the SRTP `packet` (header `hdr_len` bytes),
    /// appending the RTP packet to `out`; `out` is unchanged on error.
    #[inline]
    pub(crate) fn open_rtp(
        &self,
        packet: &[u8],
        hdr_len: usize,
        ssrc: u32,
        index: u64,
        out: &mut BytesMut,
    ) -> Result<(), SrtpError> {
        let body_end = packet.len().checked_sub(TAG_LEN).ok_or(SrtpError::Malformed)?;
        if body_end < hdr_len {
            return Err(SrtpError::Malformed);
        }
        let (body, received) = packet.split_at(body_end);
        let roc = ((index >> 16) as u32).to_be_bytes();
        let expected = tag(&self.rtp_auth, body, &roc);
        verify_slices_are_equal(&expected, received).map_err(|_| SrtpError::Auth)?;
        let start = out.len();
        out.extend_from_slice(body);
        let payload = &mut out[start + hdr_len..];
        if let Err(e) = apply_keystream(&self.rtp_key, iv(&self.rtp_salt, ssrc, index), payload) {
            out.truncate(start);
            return Err(e);
        }
        Ok(())
    }

    /// Encrypts the RTCP packet at `out[start..]` with SRTCP index `index`
    /// and appends the `E|index` word and the tag.
    #[inline]
    pub(crate) fn seal_rtcp(&self, out: &mut BytesMut, start: usize, ssrc: u32, index: u32) -> Result<(), SrtpError> {
        let packet = out.get_mut(start..).ok_or(SrtpError::Malformed)?;
        let body = packet.get_mut(8..).ok_or(SrtpError::Malformed)?;
        apply_keystream(&self.rtcp_key, iv(&self.rtcp_salt, ssrc, u64::from(index)), body)?;
        out.extend_from_slice(&(0x8000_0000 | index).to_be_bytes());
        let t = tag(&self.rtcp_auth, &out[start..], &[]);
        out.extend_from_slice(&t);
        Ok(())
    }

    /// Checks (and if `encrypted`, decrypts) the SRTCP `packet`, laid out
    /// as `RTCP || E|index || tag`, appending the RTCP packet to `out`;
    /// `out` is unchanged on error.
    pub(crate) fn open_rtcp(
        &self,
        packet: &[u8],
        ssrc: u32,
        index: u32,
        encrypted: bool,
        out: &mut BytesMut,
    ) -> Result<(), SrtpError> {
        let tag_at = packet.len().checked_sub(TAG_LEN).ok_or(SrtpError::Malformed)?;
        let word_at = tag_at.checked_sub(4).ok_or(SrtpError::Malformed)?;
        if word_at < 8 {
            return Err(SrtpError::Malformed);
        }
        let (authenticated, received) = packet.split_at(tag_at);
        let expected = tag(&self.rtcp_auth, authenticated, &[]);
        verify_slices_are_equal(&expected, received).map_err(|_| SrtpError::Auth)?;
        let start = out.len();
        out.extend_from_slice(&packet[..word_at]);
        if encrypted {
            let body = &mut out[start + 8..];
            let iv = iv(&self.rtcp_salt, ssrc, u64::from(index));
            if let Err(e) = apply_keystream(&self.rtcp_key, iv, body) {
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }
}
