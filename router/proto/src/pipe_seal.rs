//! Sealing of router-to-router pipe datagrams (cascading, PROTOCOL.md §6).
//!
//! The calls service draws a fresh 32-byte [`PipeKey`] (a CSPRNG) for every
//! link it opens and hands it to both routers in the link-open request over
//! the admin API (router-secret authenticated). Each end derives, with
//! HKDF-SHA256 (RFC 5869), one AES-256-GCM key per direction (info
//! `corecast-pipe-v2 home to leaf` / `leaf to home`: the call's home is the
//! end opened without `uplink`) and a 4-byte key id both ends agree on (info
//! `corecast-pipe-v2 key id`), which travels in the header so that a
//! receiver holding two keys of a link (a re-open gave a new one) picks the
//! right one.
//!
//! A datagram is `header || ciphertext || tag`: the header is the AAD and
//! ends with the 8-byte send counter; the 96-bit nonce is four zero bytes
//! then the counter. A [`PipeSealer`] hands every counter out once (a key is
//! never used with the same nonce twice; the counter space, 2^64, is never
//! used up in practice and sealing stops if it were); a [`PipeOpener`]
//! keeps a 128-datagram sliding replay window (RFC 3711 §3.3.2, as SRTP's)
//! and changes it only once a datagram authenticated. The cipher is
//! aws-lc-rs's; this module only lays out nonces and AAD.

use std::cell::Cell;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::hkdf::{KeyType, Salt, HKDF_SHA256};
use bytes::BytesMut;

use crate::srtp::ReplayWindow;

/// Length of a link key.
pub const PIPE_KEY_LEN: usize = 32;
/// Length of the authentication tag after the ciphertext.
pub const PIPE_TAG_LEN: usize = 16;
/// Length of the send counter (the header's last bytes).
pub const PIPE_COUNTER_LEN: usize = 8;

const SALT: &[u8] = b"corecast-pipe-v2";
const HOME_TO_LEAF: &[u8] = b"corecast-pipe-v2 home to leaf";
const LEAF_TO_HOME: &[u8] = b"corecast-pipe-v2 leaf to home";
const KEY_ID: &[u8] = b"corecast-pipe-v2 key id";

/// A link's key, as the calls service drew it. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct PipeKey([u8; PIPE_KEY_LEN]);

impl std::fmt::Debug for PipeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PipeKey(..)")
    }
}

impl PipeKey {
    /// A key from its bytes.
    pub fn new(bytes: [u8; PIPE_KEY_LEN]) -> PipeKey {
        PipeKey(bytes)
    }

    /// A key from its hex text (64 digits, as the admin API carries it).
    pub fn from_hex(s: &str) -> Option<PipeKey> {
        let mut b = [0u8; PIPE_KEY_LEN];
        hex::decode_to_slice(s, &mut b).ok()?;
        Some(PipeKey(b))
    }

    /// The key as hex text.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The 4-byte id of this key (both ends derive the same; it reveals nothing of the key).
    pub fn id(&self) -> u32 {
        let mut id = [0u8; 4];
        self.derive(KEY_ID, &mut id);
        u32::from_be_bytes(id)
    }

    fn derive(&self, info: &[u8], out: &mut [u8]) {
        struct Len(usize);
        impl KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        let prk = Salt::new(HKDF_SHA256, SALT).extract(&self.0);
        // Lengths of 4 and 32 bytes are far within HKDF-SHA256's 8160.
        let info = [info];
        if let Ok(okm) = prk.expand(&info, Len(out.len())) {
            let _ = okm.fill(out);
        }
    }

    fn aead_key(&self, info: &[u8]) -> LessSafeKey {
        let mut k = [0u8; 32];
        self.derive(info, &mut k);
        // 32 bytes is AES-256-GCM's key length: never refused.
        let key = UnboundKey::new(&AES_256_GCM, &k).unwrap_or_else(|_| unreachable!("a 32-byte AES-256 key"));
        LessSafeKey::new(key)
    }

    /// This end's keys: `home` says whether this end is the call's home (the
    /// end opened without `uplink`); the far end must be the other.
    pub fn keys(&self, home: bool) -> LinkKeys {
        let (tx, rx) = if home { (HOME_TO_LEAF, LEAF_TO_HOME) } else { (LEAF_TO_HOME, HOME_TO_LEAF) };
        LinkKeys {
            id: self.id(),
            sealer: PipeSealer { key: self.aead_key(tx), next: Cell::new(0) },
            opener: PipeOpener { key: self.aead_key(rx), window: None },
        }
    }
}

/// One end's keys of one link under one [`PipeKey`].
#[derive(Debug)]
pub struct LinkKeys {
    /// The key's id (in every datagram's header).
    pub id: u32,
    /// What this end seals with.
    pub sealer: PipeSealer,
    /// What this end opens the far end's datagrams with.
    pub opener: PipeOpener,
}

/// Why a pipe datagram was not sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PipeSealError {
    /// Shorter than a header and a tag.
    #[error("pipe datagram too short")]
    Truncated,
    /// The tag does not match (tampered, another key, garbage).
    #[error("pipe datagram failed authentication")]
    Auth,
    /// Its counter was seen before, or is older than the replay window.
    #[error("pipe datagram replayed or too old")]
    Replayed,
    /// The send counter space is used up (never in practice).
    #[error("pipe send counter exhausted")]
    Exhausted,
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// One direction's sealing key and its send counter.
pub struct PipeSealer {
    key: LessSafeKey,
    /// The next counter to use (a `Cell`: sealing takes `&self`, so a link
    /// can be sealed for while the call holding it is borrowed elsewhere).
    next: Cell<u64>,
}

impl PipeSealer {
    /// Seals the datagram at `out[start..]` in place, whose first
    /// `header_len` bytes are the header ending with the counter's 8 bytes:
    /// the next counter is written there, the rest is encrypted, the tag
    /// appended. `out` is unchanged on error.
    pub fn seal(&self, out: &mut BytesMut, start: usize, header_len: usize) -> Result<u64, PipeSealError> {
        let counter = self.next.get();
        if counter == u64::MAX || header_len < PIPE_COUNTER_LEN {
            return Err(PipeSealError::Exhausted);
        }
        let packet = out.get_mut(start..).ok_or(PipeSealError::Truncated)?;
        let (header, body) = packet.split_at_mut_checked(header_len).ok_or(PipeSealError::Truncated)?;
        header[header_len - PIPE_COUNTER_LEN..].copy_from_slice(&counter.to_be_bytes());
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(counter), Aad::from(&*header), body)
            .map_err(|_| PipeSealError::Exhausted)?;
        self.next.set(counter + 1);
        out.extend_from_slice(tag.as_ref());
        Ok(counter)
    }

    /// How many datagrams were sealed.
    pub fn sealed(&self) -> u64 {
        self.next.get()
    }
}

impl std::fmt::Debug for PipeSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeSealer").field("sealed", &self.next.get()).finish_non_exhaustive()
    }
}

/// One direction's opening key and its replay window.
pub struct PipeOpener {
    key: LessSafeKey,
    window: Option<ReplayWindow>,
}

impl std::fmt::Debug for PipeOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeOpener").field("window", &self.window).finish_non_exhaustive()
    }
}

impl PipeOpener {
    /// Checks and decrypts `packet` (header `header_len` bytes, ending with
    /// the counter), appending `header || plaintext` to `out`; on error
    /// `out` and the replay window are unchanged. Returns the counter.
    pub fn open(&mut self, packet: &[u8], header_len: usize, out: &mut BytesMut) -> Result<u64, PipeSealError> {
        if header_len < PIPE_COUNTER_LEN || packet.len() < header_len + PIPE_TAG_LEN {
            return Err(PipeSealError::Truncated);
        }
        let mut c = [0u8; PIPE_COUNTER_LEN];
        c.copy_from_slice(&packet[header_len - PIPE_COUNTER_LEN..header_len]);
        let counter = u64::from_be_bytes(c);
        if let Some(w) = &self.window {
            w.check(counter).map_err(|_| PipeSealError::Replayed)?;
        }
        let (body, tag) = packet.split_at(packet.len() - PIPE_TAG_LEN);
        let start = out.len();
        out.extend_from_slice(body);
        let (header, text) = out[start..].split_at_mut(header_len);
        if self.key.open_in_place_separate_tag(nonce(counter), Aad::from(&*header), tag, text).is_err() {
            out.truncate(start);
            return Err(PipeSealError::Auth);
        }
        match &mut self.window {
            Some(w) => w.accept(counter),
            None => self.window = Some(ReplayWindow::starting_at(counter)),
        }
        Ok(counter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: usize = 12;

    fn datagram(sealer: &PipeSealer, body: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.extend_from_slice(&[0xAB; HEADER]);
        out.extend_from_slice(body);
        sealer.seal(&mut out, 0, HEADER).unwrap();
        out.to_vec()
    }

    #[test]
    fn both_ends_agree_and_directions_differ() {
        let key = PipeKey::new([3; 32]);
        let home = key.keys(true);
        let mut leaf = key.keys(false);
        assert_eq!(home.id, leaf.id);
        assert_ne!(PipeKey::new([4; 32]).id(), home.id);
        let d = datagram(&home.sealer, b"hello leaf");
        let mut out = BytesMut::new();
        assert_eq!(leaf.opener.open(&d, HEADER, &mut out), Ok(0));
        assert_eq!(&out[HEADER..], b"hello leaf");
        // The home cannot open its own direction (a reflected datagram).
        let mut home = home;
        assert_eq!(home.opener.open(&d, HEADER, &mut BytesMut::new()), Err(PipeSealError::Auth));
        // The same text sealed the other way is other bytes.
        let back = datagram(&leaf.sealer, b"hello leaf");
        assert_ne!(back[HEADER..], d[HEADER..]);
    }

    #[test]
    fn tampered_replayed_truncated_and_foreign_are_refused() {
        let key = PipeKey::new([9; 32]);
        let home = key.keys(true);
        let mut leaf = key.keys(false);
        let d = datagram(&home.sealer, &[1; 100]);
        for i in 0..d.len() {
            let mut t = d.clone();
            t[i] ^= 0x01;
            let mut out = BytesMut::from(&b"kept"[..]);
            assert!(leaf.opener.open(&t, HEADER, &mut out).is_err(), "byte {i} flipped");
            assert_eq!(&out[..], b"kept", "nothing appended");
        }
        for n in 0..d.len() {
            assert!(leaf.opener.open(&d[..n], HEADER, &mut BytesMut::new()).is_err(), "truncated to {n}");
        }
        let foreign = PipeKey::new([10; 32]).keys(true);
        let f = datagram(&foreign.sealer, &[1; 100]);
        assert_eq!(leaf.opener.open(&f, HEADER, &mut BytesMut::new()), Err(PipeSealError::Auth));
        // Nothing above moved the window: the genuine datagram opens once.
        assert_eq!(leaf.opener.open(&d, HEADER, &mut BytesMut::new()), Ok(0));
        assert_eq!(leaf.opener.open(&d, HEADER, &mut BytesMut::new()), Err(PipeSealError::Replayed));
    }

    #[test]
    fn counters_never_repeat_and_reordering_within_the_window_is_taken() {
        let key = PipeKey::new([5; 32]);
        let home = key.keys(true);
        let mut leaf = key.keys(false);
        let all: Vec<Vec<u8>> = (0..10_000).map(|_| datagram(&home.sealer, b"x")).collect();
        let mut seen = std::collections::HashSet::new();
        for d in &all {
            let c = u64::from_be_bytes(d[HEADER - 8..HEADER].try_into().unwrap());
            assert!(seen.insert(c), "counter {c} reused");
        }
        assert_eq!(home.sealer.sealed(), 10_000);
        // Reordered: 1 before 0, then 200 jumps ahead; 0 and 1 are then too old.
        assert_eq!(leaf.opener.open(&all[1], HEADER, &mut BytesMut::new()), Ok(1));
        assert_eq!(leaf.opener.open(&all[0], HEADER, &mut BytesMut::new()), Ok(0));
        assert_eq!(leaf.opener.open(&all[200], HEADER, &mut BytesMut::new()), Ok(200));
        assert_eq!(leaf.opener.open(&all[73], HEADER, &mut BytesMut::new()), Ok(73));
        assert_eq!(leaf.opener.open(&all[72], HEADER, &mut BytesMut::new()), Err(PipeSealError::Replayed));
    }

    #[test]
    fn hex_round_trip_and_debug_hides_the_key() {
        let key = PipeKey::new([0x5A; 32]);
        assert_eq!(PipeKey::from_hex(&key.to_hex()), Some(key.clone()));
        assert_eq!(PipeKey::from_hex("5a"), None);
        assert_eq!(PipeKey::from_hex(&"zz".repeat(32)), None);
        assert!(!format!("{key:?} {:?}", key.keys(true)).to_lowercase().contains("5a5a"));
    }
}
