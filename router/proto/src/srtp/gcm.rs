//! AEAD_AES_128_GCM and AEAD_AES_256_GCM for SRTP and SRTCP (RFC 7714).
//!
//! - SRTP (§8): the header (fixed part, CSRCs and extension) is the AAD, the
//!   payload (padding included) is encrypted, the 16-byte tag follows it.
//!   IV = `00 00 || SSRC || ROC || SEQ` XOR the 12-byte session salt (§8.1).
//! - SRTCP (§9): the first 8 bytes plus the `E || SRTCP index` word are the
//!   AAD, the rest is encrypted; the packet is `header || ciphertext || tag
//!   || E|index`. IV = `00 00 || SSRC || 00 00 || 0 || index` XOR the salt
//!   (§9.1). With E clear (§9.3) nothing is encrypted and the whole packet
//!   plus the index word is the AAD.
//!
//! Everything runs in place in the caller's output buffer: no allocation.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use bytes::BytesMut;

use super::kdf::{Kdf, Label};
use super::SrtpError;

/// The GCM authentication tag length.
pub(crate) const TAG_LEN: usize = 16;

/// One direction's GCM session keys for SRTP and SRTCP.
pub(crate) struct Gcm {
    rtp_key: LessSafeKey,
    rtp_salt: [u8; 12],
    rtcp_key: LessSafeKey,
    rtcp_salt: [u8; 12],
}

fn aead_key(kdf: &Kdf, label: Label) -> Result<LessSafeKey, SrtpError> {
    let mut k = [0u8; 32];
    let k = &mut k[..kdf.key_len];
    kdf.derive(label, k)?;
    let algorithm = if k.len() == 32 { &AES_256_GCM } else { &AES_128_GCM };
    let key = UnboundKey::new(algorithm, k).map_err(|_| SrtpError::KeyLength)?;
    Ok(LessSafeKey::new(key))
}

impl Gcm {
    /// Derives the session keys from the master key and salt.
    pub(crate) fn new(kdf: &Kdf) -> Result<Gcm, SrtpError> {
        let mut rtp_salt = [0u8; 12];
        let mut rtcp_salt = [0u8; 12];
        kdf.derive(Label::RtpSalt, &mut rtp_salt)?;
        kdf.derive(Label::RtcpSalt, &mut rtcp_salt)?;
        Ok(Gcm {
            rtp_key: aead_key(kdf, Label::RtpEncryption)?,
            rtp_salt,
            rtcp_key: aead_key(kdf, Label::RtcpEncryption)?,
            rtcp_salt,
        })
    }

    /// Session keys given directly (the RFC 7714 vectors are stated so): a
    /// 16-byte key is AES-128-GCM, a 32-byte one AES-256-GCM; any other
    /// length panics.
    #[cfg(test)]
    pub(crate) fn from_session_keys(key: &[u8], salt: &[u8; 12]) -> Gcm {
        let algorithm = match key.len() {
            16 => &AES_128_GCM,
            32 => &AES_256_GCM,
            n => panic!("GCM session key of {n} bytes"),
        };
        let k = || LessSafeKey::new(UnboundKey::new(algorithm, key).expect("16- or 32-byte key"));
        Gcm { rtp_key: k(), rtp_salt: *salt, rtcp_key: k(), rtcp_salt: *salt }
    }

    fn rtp_nonce(&self, ssrc: u32, index: u64) -> Nonce {
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..12].copy_from_slice(&index.to_be_bytes()[2..8]);
        for (b, s) in iv.iter_mut().zip(self.rtp_salt) {
            *b ^= s;
        }
        Nonce::assume_unique_for_key(iv)
    }

    fn rtcp_nonce(&self, ssrc: u32, index: u32) -> Nonce {
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[8..12].copy_from_slice(&(index & 0x7fff_ffff).to_be_bytes());
        for (b, s) in iv.iter_mut().zip(self.rtcp_salt) {
            *b ^= s;
        }
        Nonce::assume_unique_for_key(iv)
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
        let nonce = self.rtp_nonce(ssrc, index);
        let packet = out.get_mut(start..).ok_or(SrtpError::Malformed)?;
        let (header, payload) = packet.split_at_mut_checked(hdr_len).ok_or(SrtpError::Malformed)?;
        let tag = self
            .rtp_key
            .seal_in_place_separate_tag(nonce, Aad::from(&*header), payload)
            .map_err(|_| SrtpError::Crypto)?;
        out.extend_from_slice(tag.as_ref());
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
        let (body, tag) = packet.split_at(body_end);
        let header = body.get(..hdr_len).ok_or(SrtpError::Malformed)?;
        let nonce = self.rtp_nonce(ssrc, index);
        let start = out.len();
        out.extend_from_slice(body);
        let opened =
            self.rtp_key.open_in_place_separate_tag(nonce, Aad::from(header), tag, &mut out[start + hdr_len..]);
        if opened.is_err() {
            out.truncate(start);
            return Err(SrtpError::Auth);
        }
        Ok(())
    }

    /// Encrypts the RTCP packet at `out[start..]` with SRTCP index `index`
    /// and appends the tag and the `E|index` word.
    #[inline]
    pub(crate) fn seal_rtcp(&self, out: &mut BytesMut, start: usize, ssrc: u32, index: u32) -> Result<(), SrtpError> {
        let word = (0x8000_0000 | index).to_be_bytes();
        let nonce = self.rtcp_nonce(ssrc, index);
        let packet = out.get_mut(start..).ok_or(SrtpError::Malformed)?;
        let (header, body) = packet.split_at_mut_checked(8).ok_or(SrtpError::Malformed)?;
        let mut aad = [0u8; 12];
        aad[..8].copy_from_slice(header);
        aad[8..].copy_from_slice(&word);
        let tag =
            self.rtcp_key.seal_in_place_separate_tag(nonce, Aad::from(aad), body).map_err(|_| SrtpError::Crypto)?;
        out.extend_from_slice(tag.as_ref());
        out.extend_from_slice(&word);
        Ok(())
    }

    /// Checks (and if `encrypted`, decrypts) the SRTCP `packet` whose
    /// `E|index` word is its last 4 bytes, appending the RTCP packet to
    /// `out`; `out` is unchanged on error.
    pub(crate) fn open_rtcp(
        &self,
        packet: &[u8],
        ssrc: u32,
        index: u32,
        encrypted: bool,
        out: &mut BytesMut,
    ) -> Result<(), SrtpError> {
        let word_at = packet.len().checked_sub(4).ok_or(SrtpError::Malformed)?;
        let tag_at = word_at.checked_sub(TAG_LEN).ok_or(SrtpError::Malformed)?;
        if tag_at < 8 {
            return Err(SrtpError::Malformed);
        }
        let word = &packet[word_at..];
        let tag = &packet[tag_at..word_at];
        let body = &packet[..tag_at];
        let nonce = self.rtcp_nonce(ssrc, index);
        let start = out.len();
        let opened = if encrypted {
            let mut aad = [0u8; 12];
            aad[..8].copy_from_slice(&body[..8]);
            aad[8..].copy_from_slice(word);
            out.extend_from_slice(body);
            self.rtcp_key.open_in_place_separate_tag(nonce, Aad::from(aad), tag, &mut out[start + 8..]).map(|_| ())
        } else {
            // §9.3: the whole packet and the index word are the AAD, the
            // plaintext is empty. The AAD is built where the output goes.
            out.extend_from_slice(body);
            out.extend_from_slice(word);
            let result =
                self.rtcp_key.open_in_place_separate_tag(nonce, Aad::from(&out[start..]), tag, &mut []).map(|_| ());
            out.truncate(start + body.len());
            result
        };
        if opened.is_err() {
            out.truncate(start);
            return Err(SrtpError::Auth);
        }
        Ok(())
    }
}
