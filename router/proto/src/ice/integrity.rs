//! MESSAGE-INTEGRITY (RFC 8489 §14.5, HMAC-SHA1 with the short-term key)
//! and FINGERPRINT (§14.7, CRC-32 XOR 0x5354554e).

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use super::{attr, IceError};
use crate::session::{Frame, HEADER_LEN};

/// What FINGERPRINT's CRC-32 is XORed with ("STUN").
pub(crate) const FINGERPRINT_XOR: u32 = 0x5354_554e;
/// MESSAGE-INTEGRITY value length.
pub(crate) const MI_LEN: usize = 20;
/// FINGERPRINT value length.
pub(crate) const FP_LEN: usize = 4;

/// The HMAC over `msg[..mi_offset]` (the message up to the
/// MESSAGE-INTEGRITY attribute at `mi_offset`), with the header's length
/// field taken as if the message ended right after MESSAGE-INTEGRITY.
fn mac(key: &[u8], msg: &[u8], mi_offset: usize) -> Hmac<Sha1> {
    // HMAC takes keys of any length (longer ones are hashed): this cannot fail.
    let mut m = <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    let len = (mi_offset + 4 + MI_LEN - HEADER_LEN) as u16;
    m.update(&msg[..2]);
    m.update(&len.to_be_bytes());
    m.update(&msg[4..mi_offset]);
    m
}

/// The MESSAGE-INTEGRITY value for a message whose attribute goes at the
/// end of `msg` (`msg` is the message so far, header included).
pub(crate) fn integrity(key: &[u8], msg: &[u8]) -> [u8; MI_LEN] {
    let mut tag = [0u8; MI_LEN];
    tag.copy_from_slice(&mac(key, msg, msg.len()).finalize().into_bytes());
    tag
}

/// Checks (in constant time) the MESSAGE-INTEGRITY attribute at
/// `mi_offset` of `msg`, whose value the caller has checked is 20 bytes.
pub(crate) fn check_integrity(key: &[u8], msg: &[u8], mi_offset: usize) -> Result<(), IceError> {
    let tag = &msg[mi_offset + 4..mi_offset + 4 + MI_LEN];
    mac(key, msg, mi_offset).verify_slice(tag).map_err(|_| IceError::IntegrityMismatch)
}

/// The FINGERPRINT value for a message whose FINGERPRINT attribute goes at
/// the end of `msg`, whose length field already counts it.
pub(crate) fn fingerprint(msg: &[u8]) -> u32 {
    crc32fast::hash(msg) ^ FINGERPRINT_XOR
}

/// Checks the FINGERPRINT attribute at `fp_offset` of `msg` (the last
/// attribute, value checked to be 4 bytes).
pub(crate) fn check_fingerprint(msg: &[u8], fp_offset: usize) -> Result<(), IceError> {
    let v = &msg[fp_offset + 4..fp_offset + 4 + FP_LEN];
    if u32::from_be_bytes([v[0], v[1], v[2], v[3]]) == fingerprint(&msg[..fp_offset]) {
        Ok(())
    } else {
        Err(IceError::FingerprintMismatch)
    }
}

/// Verifies any STUN message (request or response) that carries
/// MESSAGE-INTEGRITY keyed with `key` and a final FINGERPRINT: what a
/// client does with a Binding response. Attributes after
/// MESSAGE-INTEGRITY other than FINGERPRINT are ignored, as RFC 8489 §14.5
/// says; any attribute after FINGERPRINT is an error.
pub fn verify_message(msg: &[u8], key: &[u8]) -> Result<(), IceError> {
    let f = Frame::parse(msg)?;
    let (mut mi, mut fp) = (None, None);
    for a in f.attrs() {
        let a = a?;
        if fp.is_some() {
            return Err(IceError::AfterFingerprint(a.ty));
        }
        match a.ty {
            attr::FINGERPRINT if a.value.len() != FP_LEN => return Err(IceError::Malformed(a.ty)),
            attr::FINGERPRINT => fp = Some(a.offset),
            attr::MESSAGE_INTEGRITY if mi.is_none() && a.value.len() != MI_LEN => {
                return Err(IceError::Malformed(a.ty))
            }
            attr::MESSAGE_INTEGRITY if mi.is_none() => mi = Some(a.offset),
            _ => {}
        }
    }
    let fp = fp.ok_or(IceError::MissingFingerprint)?;
    let mi = mi.ok_or(IceError::MissingIntegrity)?;
    check_fingerprint(msg, fp)?;
    check_integrity(key, msg, mi)
}
