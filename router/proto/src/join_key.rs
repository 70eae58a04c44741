//! Per-join keys: what a native join proves it holds, besides its token.
//!
//! The calls service and the routers share a secret (the router secret).
//! For every token it signs, the calls service derives the token's *join
//! key*, `HMAC-SHA256(secret, "corecast-join-key-v1" || token)`, and hands
//! it to the client with the token over HTTP(S) only. The router derives
//! the same key from the token it is shown, so it keeps nothing per token.
//! The client signs every session message it sends with the key (STUN
//! MESSAGE-INTEGRITY, [`crate::session::sign`]), as ICE short-term
//! credentials do: a token seen on the wire is of no use without its key.

use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::Engine as _;

use crate::srtp::{SrtpKey, SrtpProfile};
use crate::token::DEV_ROUTER_SECRET;

/// Length of a join key.
pub const JOIN_KEY_LEN: usize = 32;
const DOMAIN: &[u8] = b"corecast-join-key-v1";
const CHECK_DOMAIN: &[u8] = b"corecast-check-v1";
const SRTP_CLIENT: &[u8] = b"corecast-srtp-v1 client";
const SRTP_ROUTER: &[u8] = b"corecast-srtp-v1 router";

/// The SRTP profile of native legs (RFC 7714): AES-GCM, which the
/// router's cores run with AES-NI and CLMUL.
pub const NATIVE_SRTP_PROFILE: SrtpProfile = SrtpProfile::AeadAes128Gcm;

/// The secret the calls service and the routers derive join keys from.
#[derive(Clone)]
pub struct JoinSecret(Arc<hmac::Key>);

impl std::fmt::Debug for JoinSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinSecret(..)")
    }
}

impl JoinSecret {
    /// A secret from its bytes (the router secret's text, as shared).
    pub fn new(secret: &[u8]) -> JoinSecret {
        JoinSecret(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }

    /// The public development secret ([`DEV_ROUTER_SECRET`]): tests, and
    /// the services with `--insecure-dev-keys` only.
    pub fn dev() -> JoinSecret {
        JoinSecret::new(DEV_ROUTER_SECRET.as_bytes())
    }

    /// The join key of `token` (its raw bytes).
    pub fn key_for(&self, token: &[u8]) -> JoinKey {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(DOMAIN);
        ctx.update(token);
        let mut k = [0u8; JOIN_KEY_LEN];
        k.copy_from_slice(ctx.sign().as_ref());
        JoinKey(k)
    }
}

/// One token's join key (see the module documentation). Its `Debug` does
/// not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinKey([u8; JOIN_KEY_LEN]);

impl std::fmt::Debug for JoinKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinKey(..)")
    }
}

/// Why text is not a join key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a join key is 43 characters of unpadded base64url (32 bytes)")]
pub struct BadJoinKey;

impl JoinKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(b: [u8; JOIN_KEY_LEN]) -> JoinKey {
        JoinKey(b)
    }

    /// The raw key (the MESSAGE-INTEGRITY key).
    pub fn as_bytes(&self) -> &[u8; JOIN_KEY_LEN] {
        &self.0
    }

    /// Unpadded base64url, as it travels over HTTP and on command lines.
    pub fn to_text(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Parses [`to_text`](Self::to_text)'s form.
    pub fn from_text(s: &str) -> Result<JoinKey, BadJoinKey> {
        let v = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| BadJoinKey)?;
        Ok(JoinKey(v.try_into().map_err(|_| BadJoinKey)?))
    }

    /// The SRTP master keys of a native leg that joined with this key:
    /// `(client → router, router → client)`, AEAD_AES_128_GCM, each
    /// `HMAC-SHA256(join key, "corecast-srtp-v1 client" | "… router")`
    /// cut into a 16-byte master key and a 12-byte master salt. Keying by
    /// the control plane (as SDES, RFC 4568, does over signalling) keeps a
    /// native join at one round trip and puts the key only on the HTTPS
    /// reply; unlike DTLS-SRTP it has no forward secrecy (see PROTOCOL.md).
    pub fn native_srtp_keys(&self) -> (SrtpKey, SrtpKey) {
        let k = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let derive = |label: &[u8]| {
            let t = hmac::sign(&k, label);
            let t = t.as_ref();
            let (kl, sl) = (NATIVE_SRTP_PROFILE.master_key_len(), NATIVE_SRTP_PROFILE.master_salt_len());
            SrtpKey { profile: NATIVE_SRTP_PROFILE, master_key: t[..kl].to_vec(), master_salt: t[kl..kl + sl].to_vec() }
        };
        (derive(SRTP_CLIENT), derive(SRTP_ROUTER))
    }

    /// The transaction id of an address check the router sends, from a
    /// nonce of its own (its clock and the new address): nobody without
    /// the key can predict it, so an old answer cannot be replayed.
    pub fn check_txid(&self, nonce: &[u8]) -> [u8; 12] {
        let k = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut ctx = hmac::Context::with_key(&k);
        ctx.update(CHECK_DOMAIN);
        ctx.update(nonce);
        let mut t = [0u8; 12];
        t.copy_from_slice(&ctx.sign().as_ref()[..12]);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_per_token_and_secret_and_roundtrip_as_text() {
        let s = JoinSecret::dev();
        let a = s.key_for(&[1; 98]);
        assert_eq!(a, s.key_for(&[1; 98]));
        assert_ne!(a, s.key_for(&[2; 98]));
        assert_ne!(a, JoinSecret::new(b"other").key_for(&[1; 98]));
        let text = a.to_text();
        assert_eq!(text.len(), 43);
        assert_eq!(JoinKey::from_text(&text), Ok(a.clone()));
        assert_eq!(JoinKey::from_text("short"), Err(BadJoinKey));
        assert_eq!(JoinKey::from_text("!!"), Err(BadJoinKey));
        assert_eq!(format!("{a:?}"), "JoinKey(..)");
        assert_ne!(a.check_txid(b"1"), a.check_txid(b"2"));
        let (up, down) = a.native_srtp_keys();
        assert_ne!(up, down);
        assert_eq!((up.master_key.len(), up.master_salt.len()), (16, 12));
        assert_ne!(up, s.key_for(&[2; 98]).native_srtp_keys().0);
    }

    #[test]
    fn derivation_is_hmac_sha256_of_the_domain_and_token() {
        // Pinned so that the calls service and the routers (and any other
        // implementation) agree: HMAC-SHA256("k", "corecast-join-key-v1" || "t").
        let k = JoinSecret::new(b"k").key_for(b"t");
        let expect = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"k"), b"corecast-join-key-v1t");
        assert_eq!(k.as_bytes().as_slice(), expect.as_ref());
    }
}
