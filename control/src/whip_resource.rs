//! WHIP/WHEP session resources without server-side state.
//!
//! A session's `Location` is `/v1/calls/{call}/sessions/{resource}` where `resource` is
//! `{participant id}.{base64url(router session)}.{tag}` and `tag` is the first 16 bytes of
//! HMAC-SHA256 over the call id, the participant id and the router session, keyed by a key
//! derived from the calls service's signing seed (every calls instance shares it, since they
//! all sign join tokens). Any calls instance, also after a restart, can therefore tell which
//! participant and router session a resource names without storing anything, and a client
//! cannot point a PATCH at another participant's router session. Who may use the resource is
//! checked against the participant record in the call store (its `user_id`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use corecast_proto::token::SigningKey;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// What a session resource names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionResource {
    /// The participant the WHIP/WHEP request allocated.
    pub participant_id: u64,
    /// The router's session id (its ICE ufrag).
    pub session: String,
}

/// The key that tags session resources.
#[derive(Clone)]
pub struct ResourceKey([u8; 32]);

impl std::fmt::Debug for ResourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResourceKey(..)")
    }
}

const TAG_LEN: usize = 16;
/// Router session ids longer than this are refused (ICE ufrags are at most 256 characters).
const MAX_SESSION: usize = 256;

impl ResourceKey {
    /// Derives the key from the join-token signing key (a different purpose, a different key).
    pub fn from_signing_key(k: &SigningKey) -> Self {
        let mut h = Sha256::new();
        h.update(b"corecast-whip-resource-key-v1");
        h.update(k.to_bytes());
        ResourceKey(h.finalize().into())
    }

    fn tag(&self, call: Uuid, participant_id: u64, session: &str) -> [u8; TAG_LEN] {
        let mut msg = Vec::with_capacity(16 + 8 + session.len());
        msg.extend_from_slice(call.as_bytes());
        msg.extend_from_slice(&participant_id.to_be_bytes());
        msg.extend_from_slice(session.as_bytes());
        let full = hmac_sha256(&self.0, &msg);
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&full[..TAG_LEN]);
        out
    }

    /// The resource name (the last path segment) of a session.
    pub fn encode(&self, call: Uuid, participant_id: u64, session: &str) -> String {
        format!(
            "{participant_id}.{}.{}",
            URL_SAFE_NO_PAD.encode(session.as_bytes()),
            URL_SAFE_NO_PAD.encode(self.tag(call, participant_id, session))
        )
    }

    /// Reads a resource name of `call`; `None` when it is malformed or its tag is not ours.
    pub fn decode(&self, call: Uuid, resource: &str) -> Option<SessionResource> {
        let mut parts = resource.split('.');
        let (pid, session, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || session.len() > MAX_SESSION * 4 / 3 + 4 {
            return None;
        }
        let participant_id: u64 = pid.parse().ok()?;
        let session = String::from_utf8(URL_SAFE_NO_PAD.decode(session).ok()?).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let want = self.tag(call, participant_id, &session);
        let same = tag.len() == TAG_LEN && tag.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        same.then_some(SessionResource { participant_id, session })
    }
}

/// HMAC-SHA256 (RFC 2104) with a 32-byte key.
fn hmac_sha256(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(key);
    let pad = |b: u8| k.map(|x| x ^ b);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(msg).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_1() {
        // RFC 4231 test case 1 with the key zero-padded to 32 bytes is the same HMAC
        // (keys shorter than the block are zero-padded by HMAC itself).
        let mut key = [0u8; 32];
        key[..20].copy_from_slice(&[0x0b; 20]);
        assert_eq!(
            hex::encode(hmac_sha256(&key, b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn resources_round_trip_and_resist_tampering() {
        let k = ResourceKey::from_signing_key(&corecast_proto::token::dev_signing_key());
        let call = Uuid::new_v4();
        let r = k.encode(call, 42, "ab+/cd");
        assert!(!r.contains('/') && !r.contains('+'), "{r}");
        assert_eq!(k.decode(call, &r), Some(SessionResource { participant_id: 42, session: "ab+/cd".into() }));
        assert_eq!(k.decode(Uuid::new_v4(), &r), None, "another call");
        let other = r.replacen("42.", "43.", 1);
        assert_eq!(k.decode(call, &other), None, "another participant");
        let forged = format!("42.{}.{}", URL_SAFE_NO_PAD.encode("xyz"), r.rsplit('.').next().unwrap());
        assert_eq!(k.decode(call, &forged), None, "another session");
        let k2 = ResourceKey::from_signing_key(&SigningKey::from_bytes(&[1; 32]));
        assert_eq!(k2.decode(call, &r), None, "another key");
        for junk in ["", "1", "1.2", "x.YWI.AAAA", "1.YWI.AAAA.extra"] {
            assert_eq!(k.decode(call, junk), None, "{junk}");
        }
    }
}
