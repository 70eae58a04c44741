//! SRTP and SRTCP (RFC 3711, RFC 7714) for the router's WebRTC legs.
//!
//! DTLS-SRTP (RFC 5764) hands over keying material; [`keys_from_dtls`]
//! splits it into the key this side sends with and the key the peer sends
//! with, and each becomes an [`SrtpContext`]: one direction of one SRTP
//! session, covering every SSRC of the leg. The hot path is
//! [`SrtpContext::protect_rtp`] / [`SrtpContext::unprotect_rtp`] (and the
//! RTCP pair), which append to a caller-owned [`BytesMut`] and allocate
//! nothing once the caller has reserved room.
//!
//! Two profiles: [`SrtpProfile::AeadAes128Gcm`] (RFC 7714, what browsers
//! prefer) and [`SrtpProfile::Aes128CmHmacSha1_80`] (RFC 3711's default).
//! The ciphers are aws-lc-rs's (AES-GCM, AES-CTR, HMAC-SHA1); this module
//! only lays out IVs, AAD and tags around them.
//!
//! Per SSRC a context keeps the highest packet index and a 128-packet replay
//! window for SRTP (the rollover counter is estimated per RFC 3711 §3.3.1)
//! and for SRTCP (31-bit index). State is created and advanced only after a
//! packet authenticates; a context tracks at most [`MAX_STREAMS`] SSRCs.
//! The sending side keeps the same window and refuses to reuse an index
//! (a repeated GCM nonce would leak the authentication key), so a packet
//! must be protected once; resend the protected bytes instead.
//!
//! Layout: this file the API and packet framing; `kdf` the RFC 3711 §4.3
//! key derivation; `gcm` and `cm` the two transforms; `replay` index
//! estimation, replay windows and the per-SSRC table; `tests` the RFC
//! vectors and behaviour tests.

mod cm;
mod gcm;
mod kdf;
pub mod native;
mod replay;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

use bytes::BytesMut;

pub(crate) use replay::ReplayWindow;
use replay::{estimate_rtp_index, StreamTable};

/// How many SSRCs one context tracks before refusing new ones.
pub const MAX_STREAMS: usize = 64;

/// The largest SRTCP index (31 bits).
const MAX_RTCP_INDEX: u64 = 0x7fff_ffff;

/// Why a packet could not be protected or unprotected, or a key not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// Not a well-formed (S)RTP/(S)RTCP packet: too short, wrong version,
    /// or a CSRC list or header extension running past the end.
    #[error("malformed SRTP/SRTCP packet")]
    Malformed,
    /// The authentication tag does not match.
    #[error("SRTP authentication failed")]
    Auth,
    /// The packet index was already used, or is older than the replay window.
    #[error("SRTP packet replayed or too old")]
    Replay,
    /// Key material of the wrong length for the profile.
    #[error("SRTP key material has the wrong length")]
    KeyLength,
    /// The context already tracks [`MAX_STREAMS`] SSRCs.
    #[error("too many SSRCs in one SRTP context")]
    TooManyStreams,
    /// The SRTCP index space (2^31) or SRTP index space (2^48) of an SSRC is
    /// used up: the session must be rekeyed.
    #[error("SRTP index space exhausted")]
    Exhausted,
    /// The cipher library reported an unexpected failure.
    #[error("SRTP cipher failure")]
    Crypto,
}

/// An SRTP protection profile (RFC 5764 §4.1.2, RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// `SRTP_AEAD_AES_128_GCM` (0x0007): AES-128-GCM, 16-byte tag.
    AeadAes128Gcm,
    /// `SRTP_AEAD_AES_256_GCM` (0x0008): AES-256-GCM, 16-byte tag.
    AeadAes256Gcm,
    /// `SRTP_AES128_CM_HMAC_SHA1_80` (0x0001): AES-128 counter mode and an
    /// 80-bit HMAC-SHA1 tag.
    Aes128CmHmacSha1_80,
}

impl SrtpProfile {
    /// Master key length in bytes.
    pub fn master_key_len(self) -> usize {
        match self {
            SrtpProfile::AeadAes256Gcm => 32,
            _ => 16,
        }
    }

    /// Master salt length in bytes.
    pub fn master_salt_len(self) -> usize {
        match self {
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => 12,
            SrtpProfile::Aes128CmHmacSha1_80 => 14,
        }
    }

    /// Bytes [`SrtpContext::protect_rtp`] adds to a packet (the tag).
    pub fn rtp_overhead(self) -> usize {
        self.tag_len()
    }

    /// Bytes [`SrtpContext::protect_rtcp`] adds to a packet (tag and the
    /// 4-byte `E|SRTCP index` word).
    pub fn rtcp_overhead(self) -> usize {
        self.tag_len() + 4
    }

    /// The profile of a DTLS `use_srtp` protection profile id, if supported.
    pub fn from_dtls_id(id: u16) -> Option<SrtpProfile> {
        match id {
            0x0001 => Some(SrtpProfile::Aes128CmHmacSha1_80),
            0x0007 => Some(SrtpProfile::AeadAes128Gcm),
            0x0008 => Some(SrtpProfile::AeadAes256Gcm),
            _ => None,
        }
    }

    /// The DTLS `use_srtp` protection profile id.
    pub fn dtls_id(self) -> u16 {
        match self {
            SrtpProfile::AeadAes128Gcm => 0x0007,
            SrtpProfile::AeadAes256Gcm => 0x0008,
            SrtpProfile::Aes128CmHmacSha1_80 => 0x0001,
        }
    }

    /// Every profile, in the order the router prefers them.
    pub const ALL: [SrtpProfile; 3] =
        [SrtpProfile::AeadAes128Gcm, SrtpProfile::AeadAes256Gcm, SrtpProfile::Aes128CmHmacSha1_80];

    /// The name RFC 5764 and RFC 7714 give the DTLS profile, without the
    /// `SRTP_` prefix: `AEAD_AES_128_GCM`, `AEAD_AES_256_GCM`, `AES128_CM_HMAC_SHA1_80`.
    pub fn name(self) -> &'static str {
        match self {
            SrtpProfile::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpProfile::AeadAes256Gcm => "AEAD_AES_256_GCM",
            SrtpProfile::Aes128CmHmacSha1_80 => "AES128_CM_HMAC_SHA1_80",
        }
    }

    /// The profile named `name` ([`SrtpProfile::name`], with or without the
    /// `SRTP_` prefix, any case; also the short forms `aes128gcm`,
    /// `aes256gcm` and `aescm`).
    pub fn from_name(name: &str) -> Option<SrtpProfile> {
        let n = name.trim().to_ascii_uppercase();
        let n = n.strip_prefix("SRTP_").unwrap_or(&n);
        match n {
            "AEAD_AES_128_GCM" | "AES128GCM" => Some(SrtpProfile::AeadAes128Gcm),
            "AEAD_AES_256_GCM" | "AES256GCM" => Some(SrtpProfile::AeadAes256Gcm),
            "AES128_CM_HMAC_SHA1_80" | "AES128_CM_SHA1_80" | "AES_CM_128_HMAC_SHA1_80" | "AESCM" => {
                Some(SrtpProfile::Aes128CmHmacSha1_80)
            }
            _ => None,
        }
    }

    fn tag_len(self) -> usize {
        match self {
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => gcm::TAG_LEN,
            SrtpProfile::Aes128CmHmacSha1_80 => cm::TAG_LEN,
        }
    }
}

/// A master key and salt for one direction.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    /// The protection profile.
    pub profile: SrtpProfile,
    /// Master key ([`SrtpProfile::master_key_len`] bytes).
    pub master_key: Vec<u8>,
    /// Master salt ([`SrtpProfile::master_salt_len`] bytes).
    pub master_salt: Vec<u8>,
}

impl std::fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKey").field("profile", &self.profile).finish_non_exhaustive()
    }
}

/// Splits the DTLS exporter output (`EXTRACTOR-dtls_srtp`, `2 * (key +
/// salt)` bytes) as RFC 5764 §4.2 lays it out — client key, server key,
/// client salt, server salt — into `(ours, theirs)`: the key this side
/// protects with and the key it unprotects the peer's packets with.
pub fn keys_from_dtls(
    profile: SrtpProfile,
    material: &[u8],
    we_are_dtls_server: bool,
) -> Result<(SrtpKey, SrtpKey), SrtpError> {
    let k = profile.master_key_len();
    let s = profile.master_salt_len();
    if material.len() != 2 * (k + s) {
        return Err(SrtpError::KeyLength);
    }
    let key = |key_at: usize, salt_at: usize| SrtpKey {
        profile,
        master_key: material[key_at..key_at + k].to_vec(),
        master_salt: material[salt_at..salt_at + s].to_vec(),
    };
    let client = key(0, 2 * k);
    let server = key(k, 2 * k + s);
    Ok(if we_are_dtls_server { (server, client) } else { (client, server) })
}

/// The session keys of one profile.
enum Transform {
    Gcm(gcm::Gcm),
    /// Boxed: the AES keys and HMAC states are about 3.5 kB inline.
    Cm(Box<cm::Cm>),
}

/// One direction of one SRTP session: session keys plus per-SSRC rollover
/// counters, SRTCP indices and replay windows (RFC 3711 §3.2).
pub struct SrtpContext {
    profile: SrtpProfile,
    transform: Transform,
    streams: StreamTable,
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

/// The length of an RTP header with its CSRCs and extension, checked
/// against `p` (RFC 3550 §5.1, §5.3.1).
#[inline]
fn rtp_header_len(p: &[u8]) -> Result<usize, SrtpError> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let mut len = 12 + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let ext = p.get(len..len + 4).ok_or(SrtpError::Malformed)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    if len > p.len() {
        return Err(SrtpError::Malformed);
    }
    Ok(len)
}

#[inline]
fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

/// The SSRC of an RTCP packet (its first 8 bytes checked).
#[inline]
fn rtcp_ssrc(p: &[u8]) -> Result<u32, SrtpError> {
    if p.len() < 8 || p[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    Ok(u32_at(p, 4))
}

impl SrtpContext {
    /// Derives the session keys of `key` (RFC 3711 §4.3, key derivation
    /// rate 0).
    pub fn new(key: &SrtpKey) -> Result<SrtpContext, SrtpError> {
        let profile = key.profile;
        if key.master_key.len() != profile.master_key_len() || key.master_salt.len() != profile.master_salt_len() {
            return Err(SrtpError::KeyLength);
        }
        let kdf = kdf::Kdf::new(&key.master_key, &key.master_salt)?;
        let transform = match profile {
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => Transform::Gcm(gcm::Gcm::new(&kdf)?),
            SrtpProfile::Aes128CmHmacSha1_80 => Transform::Cm(Box::new(cm::Cm::new(&kdf)?)),
        };
        Ok(SrtpContext { profile, transform, streams: StreamTable::new(MAX_STREAMS) })
    }

    /// A GCM context with session keys given directly (RFC 7714 vectors):
    /// AEAD_AES_128_GCM for a 16-byte key, AEAD_AES_256_GCM for a 32-byte
    /// one (other lengths panic).
    #[cfg(test)]
    pub(crate) fn from_gcm_session_keys(key: &[u8], salt: &[u8; 12]) -> SrtpContext {
        let profile = if key.len() == 32 { SrtpProfile::AeadAes256Gcm } else { SrtpProfile::AeadAes128Gcm };
        SrtpContext {
            profile,
            transform: Transform::Gcm(gcm::Gcm::from_session_keys(key, salt)),
            streams: StreamTable::new(MAX_STREAMS),
        }
    }

    /// The profile this context protects with.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// The rollover counter of `ssrc`'s SRTP stream (the highest index sent
    /// or received, shifted), if the stream is known.
    pub fn rollover_counter(&self, ssrc: u32) -> Option<u32> {
        let window = self.streams.get(ssrc)?.rtp?;
        Some((window.highest() >> 16) as u32)
    }

    /// Appends the protected form of the RTP packet `plain` to `out`: the
    /// header (CSRCs and extension included) as is, the payload encrypted,
    /// then the tag. On error `out` is unchanged.
    ///
    /// The packet index continues the SSRC's stream (the ROC advances when
    /// the sequence number wraps); an index already used, or more than 128
    /// behind the newest, is refused with [`SrtpError::Replay`].
    pub fn protect_rtp(&mut self, plain: &[u8], out: &mut BytesMut) -> Result<(), SrtpError> {
        out.reserve(plain.len() + self.profile.rtp_overhead());
        let start = out.len();
        out.extend_from_slice(plain);
        self.protect_rtp_in_place(out, start)
    }

    /// Protects the plain RTP packet already written at `out[start..]` in
    /// place (the tag is appended): what a sender that builds its packet in
    /// the output buffer uses to save a copy. On error `out` is truncated
    /// to `start`.
    pub fn protect_rtp_in_place(&mut self, out: &mut BytesMut, start: usize) -> Result<(), SrtpError> {
        let r = self.seal_rtp_at(out, start);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn seal_rtp_at(&mut self, out: &mut BytesMut, start: usize) -> Result<(), SrtpError> {
        let plain = out.get(start..).ok_or(SrtpError::Malformed)?;
        let hdr_len = rtp_header_len(plain)?;
        let seq = u16::from_be_bytes([plain[2], plain[3]]);
        let ssrc = u32_at(plain, 8);
        let index = self.next_rtp_index(ssrc, seq, true)?;
        out.reserve(self.profile.rtp_overhead());
        match &self.transform {
            Transform::Gcm(t) => t.seal_rtp(out, start, hdr_len, ssrc, index),
            Transform::Cm(t) => t.seal_rtp(out, start, hdr_len, ssrc, index),
        }?;
        self.accept_rtp(ssrc, index)
    }

    /// Checks and decrypts the SRTP `packet`, appending the RTP packet to
    /// `out`. Replayed ([`SrtpError::Replay`]) and unauthenticated
    /// ([`SrtpError::Auth`]) packets change nothing: the rollover counter
    /// and replay window advance only once a packet authenticates. On error
    /// `out` is unchanged.
    pub fn unprotect_rtp(&mut self, packet: &[u8], out: &mut BytesMut) -> Result<(), SrtpError> {
        let hdr_len = rtp_header_len(packet)?;
        if packet.len() < hdr_len + self.profile.tag_len() {
            return Err(SrtpError::Malformed);
        }
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = u32_at(packet, 8);
        let index = self.next_rtp_index(ssrc, seq, false)?;
        let start = out.len();
        match &self.transform {
            Transform::Gcm(t) => t.open_rtp(packet, hdr_len, ssrc, index, out)?,
            Transform::Cm(t) => t.open_rtp(packet, hdr_len, ssrc, index, out)?,
        }
        if let Err(e) = self.accept_rtp(ssrc, index) {
            out.truncate(start);
            return Err(e);
        }
        Ok(())
    }

    /// Appends the SRTCP form of the (compound) RTCP packet `plain` to
    /// `out`: the first 8 bytes as is, the rest encrypted, the E flag set,
    /// the SSRC's next 31-bit SRTCP index and the tag. On error `out` is
    /// unchanged.
    pub fn protect_rtcp(&mut self, plain: &[u8], out: &mut BytesMut) -> Result<(), SrtpError> {
        let ssrc = rtcp_ssrc(plain)?;
        let index = match self.streams.get(ssrc).and_then(|s| s.rtcp) {
            Some(window) => window.highest() + 1,
            None if self.streams.has_room_for(ssrc) => 0,
            None => return Err(SrtpError::TooManyStreams),
        };
        if index > MAX_RTCP_INDEX {
            return Err(SrtpError::Exhausted);
        }
        out.reserve(plain.len() + self.profile.rtcp_overhead());
        let start = out.len();
        out.extend_from_slice(plain);
        let sealed = match &self.transform {
            Transform::Gcm(t) => t.seal_rtcp(out, start, ssrc, index as u32),
            Transform::Cm(t) => t.seal_rtcp(out, start, ssrc, index as u32),
        };
        if let Err(e) = sealed.and_then(|()| self.accept_rtcp(ssrc, index)) {
            out.truncate(start);
            return Err(e);
        }
        Ok(())
    }

    /// Checks and decrypts the SRTCP `packet` (an unencrypted one, E flag
    /// clear, is only checked), appending the RTCP packet to `out`. Replays
    /// of an SRTCP index and unauthenticated packets change nothing. On
    /// error `out` is unchanged.
    pub fn unprotect_rtcp(&mut self, packet: &[u8], out: &mut BytesMut) -> Result<(), SrtpError> {
        let ssrc = rtcp_ssrc(packet)?;
        let tag_len = self.profile.tag_len();
        if packet.len() < 8 + 4 + tag_len {
            return Err(SrtpError::Malformed);
        }
        let word_at = match self.profile {
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => packet.len() - 4,
            SrtpProfile::Aes128CmHmacSha1_80 => packet.len() - 4 - tag_len,
        };
        let word = u32_at(packet, word_at);
        let encrypted = word & 0x8000_0000 != 0;
        let index = word & 0x7fff_ffff;
        if let Some(window) = self.streams.get(ssrc).and_then(|s| s.rtcp) {
            window.check(u64::from(index))?;
        }
        let start = out.len();
        match &self.transform {
            Transform::Gcm(t) => t.open_rtcp(packet, ssrc, index, encrypted, out)?,
            Transform::Cm(t) => t.open_rtcp(packet, ssrc, index, encrypted, out)?,
        }
        if let Err(e) = self.accept_rtcp(ssrc, u64::from(index)) {
            out.truncate(start);
            return Err(e);
        }
        Ok(())
    }

    /// The packet index of `seq` in `ssrc`'s stream, checked against the
    /// replay window (a new stream starts at ROC 0). With `need_room`, a
    /// new SSRC the table has no room for is refused up front.
    #[inline]
    fn next_rtp_index(&self, ssrc: u32, seq: u16, need_room: bool) -> Result<u64, SrtpError> {
        match self.streams.get(ssrc).and_then(|s| s.rtp) {
            Some(window) => {
                let index = estimate_rtp_index(window.highest(), seq).ok_or(SrtpError::Replay)?;
                window.check(index)?;
                Ok(index)
            }
            None if !need_room || self.streams.has_room_for(ssrc) => Ok(u64::from(seq)),
            None => Err(SrtpError::TooManyStreams),
        }
    }

    #[inline]
    fn accept_rtp(&mut self, ssrc: u32, index: u64) -> Result<(), SrtpError> {
        let state = self.streams.get_or_insert(ssrc)?;
        match &mut state.rtp {
            Some(window) => window.accept(index),
            None => state.rtp = Some(ReplayWindow::starting_at(index)),
        }
        Ok(())
    }

    #[inline]
    fn accept_rtcp(&mut self, ssrc: u32, index: u64) -> Result<(), SrtpError> {
        let state = self.streams.get_or_insert(ssrc)?;
        match &mut state.rtcp {
            Some(window) => window.accept(index),
            None => state.rtcp = Some(ReplayWindow::starting_at(index)),
        }
        Ok(())
    }
}
