//! Join tokens.
//!
//! The calls service signs a token per join with its Ed25519 key; the router
//! holds only the public key, so a router cannot mint tokens. The token binds
//! the call, the participant, the role and an expiry.
//!
//! Binary layout (all integers big-endian), 98 bytes:
//!
//! ```text
//!  0      1                 17                25     26                34
//!  +------+-----------------+-----------------+------+-----------------+----------------+
//!  | ver  | call id (16)    | participant (8) | role | expires_at (8)  | signature (64) |
//!  +------+-----------------+-----------------+------+-----------------+----------------+
//! ```
//!
//! `ver` is 1. `expires_at` is Unix time in milliseconds. The signature is
//! Ed25519 over `"corecast-join-v1" || bytes[0..34]`. Over HTTP and on the
//! command line the token travels as unpadded base64url (131 characters); in
//! the UDP join message it travels as the raw 98 bytes.

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, Verifier as _};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// Length of an encoded token in bytes.
pub const TOKEN_LEN: usize = 98;
const BODY_LEN: usize = 34;
const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"corecast-join-v1";

/// A call's identifier (a UUID's 16 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CallId(pub [u8; 16]);

impl CallId {
    /// Parses the canonical hyphenated UUID form or 32 hex digits.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let hexs: String = s.chars().filter(|c| *c != '-').collect();
        let mut out = [0u8; 16];
        if hexs.len() != 32 {
            return Err(TokenError::BadCallId);
        }
        hex::decode_to_slice(&hexs, &mut out).map_err(|_| TokenError::BadCallId)?;
        Ok(CallId(out))
    }
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = hex::encode(self.0);
        write!(f, "{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }
}

impl std::fmt::Debug for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CallId({self})")
    }
}

/// A participant's identifier within the system (assigned by the calls service).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ParticipantId(pub u64);

impl std::fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a participant may do in a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends media and receives everyone else's.
    Publisher,
    /// Receives only; anything it sends but RTCP is dropped.
    Subscriber,
    /// The codec pool: receives the sources, sends the SD composite.
    Mixer,
}

impl Role {
    /// Wire code of the role.
    pub fn code(self) -> u8 {
        match self {
            Role::Publisher => 1,
            Role::Subscriber => 2,
            Role::Mixer => 3,
        }
    }
    /// Role from its wire code.
    pub fn from_code(c: u8) -> Option<Role> {
        match c {
            1 => Some(Role::Publisher),
            2 => Some(Role::Subscriber),
            3 => Some(Role::Mixer),
            _ => None,
        }
    }
    /// Lower-case name (`publisher`, `subscriber`, `mixer`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Subscriber => "subscriber",
            Role::Mixer => "mixer",
        }
    }
    /// Role from its lower-case name.
    pub fn from_name(s: &str) -> Option<Role> {
        match s {
            "publisher" => Some(Role::Publisher),
            "subscriber" => Some(Role::Subscriber),
            "mixer" => Some(Role::Mixer),
            _ => None,
        }
    }
}

/// The claims a join token carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The call the participant may join.
    pub call_id: CallId,
    /// The participant's identity.
    pub participant_id: ParticipantId,
    /// What the participant may do.
    pub role: Role,
    /// Expiry, Unix time in milliseconds.
    pub expires_at_ms: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not 98 bytes, or not base64url.
    #[error("token is malformed")]
    Malformed,
    /// Version byte is not 1.
    #[error("token version is not supported")]
    Version,
    /// The role byte is unknown.
    #[error("token role is unknown")]
    Role,
    /// The signature does not verify against the router's key.
    #[error("token signature is invalid")]
    Signature,
    /// The token expired.
    #[error("token has expired")]
    Expired,
    /// A call id string is not a UUID.
    #[error("call id is not a UUID")]
    BadCallId,
}

fn body(c: &Claims) -> [u8; BODY_LEN] {
    let mut b = [0u8; BODY_LEN];
    b[0] = VERSION;
    b[1..17].copy_from_slice(&c.call_id.0);
    b[17..25].copy_from_slice(&c.participant_id.0.to_be_bytes());
    b[25] = c.role.code();
    b[26..34].copy_from_slice(&c.expires_at_ms.to_be_bytes());
    b
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + body.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(body);
    m
}

/// Signs claims into the 98-byte binary token.
pub fn sign(key: &SigningKey, claims: &Claims) -> [u8; TOKEN_LEN] {
    let b = body(claims);
    let sig = key.sign(&signed_message(&b));
    let mut out = [0u8; TOKEN_LEN];
    out[..BODY_LEN].copy_from_slice(&b);
    out[BODY_LEN..].copy_from_slice(&sig.to_bytes());
    out
}

/// Signs claims into the base64url text form.
pub fn sign_text(key: &SigningKey, claims: &Claims) -> String {
    encode_text(&sign(key, claims))
}

/// Encodes a binary token as unpadded base64url.
pub fn encode_text(token: &[u8; TOKEN_LEN]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
}

/// Decodes the base64url text form into the binary token.
pub fn decode_text(s: &str) -> Result<[u8; TOKEN_LEN], TokenError> {
    let v = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| TokenError::Malformed)?;
    v.try_into().map_err(|_| TokenError::Malformed)
}

/// Reads the claims without checking the signature or expiry.
pub fn peek(token: &[u8]) -> Result<Claims, TokenError> {
    if token.len() != TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    if token[0] != VERSION {
        return Err(TokenError::Version);
    }
    let mut call = [0u8; 16];
    call.copy_from_slice(&token[1..17]);
    let pid = u64::from_be_bytes(token[17..25].try_into().map_err(|_| TokenError::Malformed)?);
    let role = Role::from_code(token[25]).ok_or(TokenError::Role)?;
    let exp = u64::from_be_bytes(token[26..34].try_into().map_err(|_| TokenError::Malformed)?);
    Ok(Claims { call_id: CallId(call), participant_id: ParticipantId(pid), role, expires_at_ms: exp })
}

/// Verifies a binary token: layout, signature, and expiry against `now_ms`
/// (Unix milliseconds, supplied by the caller: this crate reads no clock).
pub fn verify(key: &VerifyingKey, token: &[u8], now_ms: u64) -> Result<Claims, TokenError> {
    let claims = peek(token)?;
    let sig_bytes: [u8; 64] = token[BODY_LEN..].try_into().map_err(|_| TokenError::Malformed)?;
    let sig = Signature::from_bytes(&sig_bytes);
    key.verify(&signed_message(&token[..BODY_LEN]), &sig).map_err(|_| TokenError::Signature)?;
    if claims.expires_at_ms <= now_ms {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Parses a signing key from 64 hex digits (its 32-byte seed).
pub fn signing_key_from_hex(s: &str) -> Result<SigningKey, TokenError> {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut seed).map_err(|_| TokenError::Malformed)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Parses a verifying (public) key from 64 hex digits.
pub fn verifying_key_from_hex(s: &str) -> Result<VerifyingKey, TokenError> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut b).map_err(|_| TokenError::Malformed)?;
    VerifyingKey::from_bytes(&b).map_err(|_| TokenError::Malformed)
}

/// A fixed development key. Never use it in production: anyone can mint
/// tokens with it. Tests use it; the services only with `--insecure-dev-keys`
/// (and then on loopback addresses only).
pub fn dev_signing_key() -> SigningKey {
    SigningKey::from_bytes(&[0x42; 32])
}

/// The public development router secret (routers, the codec pool and the calls service
/// share a router secret). The services accept it only with `--insecure-dev-keys`, and then
/// on loopback addresses only.
pub const DEV_ROUTER_SECRET: &str = "corecast-dev-router-secret";

/// Generates a fresh signing key.
pub fn generate_signing_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claims() -> Claims {
        Claims {
            call_id: CallId([7; 16]),
            participant_id: ParticipantId(99),
            role: Role::Publisher,
            expires_at_ms: 1_000_000,
        }
    }

    #[test]
    fn sign_verify_roundtrip() {
        let k = dev_signing_key();
        let t = sign(&k, &claims());
        assert_eq!(t.len(), TOKEN_LEN);
        assert_eq!(verify(&k.verifying_key(), &t, 999_999), Ok(claims()));
        let text = sign_text(&k, &claims());
        assert_eq!(text.len(), 131);
        assert_eq!(decode_text(&text).unwrap(), t);
    }

    #[test]
    fn expired_forged_and_malformed_are_refused() {
        let k = dev_signing_key();
        let t = sign(&k, &claims());
        assert_eq!(verify(&k.verifying_key(), &t, 1_000_000), Err(TokenError::Expired));
        let other = SigningKey::from_bytes(&[1; 32]);
        assert_eq!(verify(&other.verifying_key(), &t, 0), Err(TokenError::Signature));
        let mut tampered = t;
        tampered[20] ^= 1;
        assert_eq!(verify(&k.verifying_key(), &tampered, 0), Err(TokenError::Signature));
        assert_eq!(verify(&k.verifying_key(), &t[..97], 0), Err(TokenError::Malformed));
        let mut badver = t;
        badver[0] = 2;
        assert_eq!(verify(&k.verifying_key(), &badver, 0), Err(TokenError::Version));
        assert_eq!(decode_text("!!"), Err(TokenError::Malformed));
    }

    #[test]
    fn call_id_text_roundtrip() {
        let c = CallId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
        assert_eq!(c.to_string(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
        assert!(CallId::parse("nope").is_err());
    }

    proptest! {
        #[test]
        fn roundtrip_any_claims(call in any::<[u8;16]>(), pid in any::<u64>(), role in 1u8..=3, exp in 1u64..) {
            let c = Claims { call_id: CallId(call), participant_id: ParticipantId(pid), role: Role::from_code(role).unwrap(), expires_at_ms: exp };
            let k = dev_signing_key();
            let t = sign(&k, &c);
            prop_assert_eq!(verify(&k.verifying_key(), &t, exp - 1), Ok(c));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = verify(&dev_signing_key().verifying_key(), &b, 0);
            let _ = peek(&b);
        }
    }
}
