//! Small helpers: clock, random identifiers, bearer tokens.

use base64::Engine as _;
use rand::RngCore as _;

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A fresh 256-bit random session token, unpadded base64url (43 characters).
///
/// It never begins with `-`, so that it can follow an option on a command line
/// (`--session TOKEN`) without being taken for an option itself: a draw whose
/// first character would be `-` (1 in 64) is drawn again.
pub fn session_token() -> String {
    let mut b = [0u8; 32];
    loop {
        rand::rngs::OsRng.fill_bytes(&mut b);
        // The first character encodes the top 6 bits of the first byte; 62 is `-`.
        if b[0] >> 2 != 62 {
            return base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        }
    }
}

/// Whether a string has the shape of a session token (so junk never reaches the store).
pub fn is_token_shaped(s: &str) -> bool {
    s.len() == 43 && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// A fresh participant id: random, non-zero, below 2^53 (exact in JSON numbers and Lua).
pub fn participant_id() -> u64 {
    loop {
        let v = rand::rngs::OsRng.next_u64() & ((1u64 << 53) - 1);
        if v != 0 {
            return v;
        }
    }
}

/// The bearer token of an `Authorization` header value, if any.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// The client's address: the first `X-Forwarded-For` entry when `trust_forwarded_for`
/// (behind nginx, which sets it) and it parses, else the connection's peer (0.0.0.0 when
/// the server recorded none).
pub fn client_ip(
    trust_forwarded_for: bool,
    headers: &axum::http::HeaderMap,
    ext: &axum::http::Extensions,
) -> std::net::IpAddr {
    if trust_forwarded_for {
        let fwd = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        if let Some(ip) = fwd.and_then(|v| v.split(',').next()).and_then(|s| s.trim().parse().ok()) {
            return ip;
        }
    }
    ext.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_ids() {
        let t = session_token();
        assert!(is_token_shaped(&t));
        assert_ne!(t, session_token());
        assert!(!is_token_shaped("short"));
        for _ in 0..1000 {
            let p = participant_id();
            assert!(p != 0 && p < (1 << 53));
        }
    }

    #[test]
    fn session_tokens_never_begin_with_a_hyphen() {
        // Without the redraw, 1 in 64 would: 10,000 draws would miss that with odds of e^-157.
        let mut first = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let t = session_token();
            assert!(is_token_shaped(&t), "{t}");
            assert!(!t.starts_with('-'), "{t}");
            first.insert(t.as_bytes()[0]);
        }
        // Every other first character still occurs (63 of them): the tokens stay uniform otherwise.
        assert_eq!(first.len(), 63);
    }

    #[test]
    fn bearer_parsing() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
