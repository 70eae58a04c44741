//! First-byte demultiplexing of one UDP port (RFC 7983 §7).

/// What a datagram is, by its first byte (and, for RTP vs RTCP, its second).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 0..=3: STUN, which carries corecast session messages.
    Stun,
    /// 20..=63: DTLS (reserved for WebRTC).
    Dtls,
    /// 128..=191 with a second byte that is not an RTCP packet type.
    Rtp,
    /// 128..=191 with a second byte in 192..=223 (RFC 5761 §4).
    Rtcp,
    /// Anything else, including empty datagrams.
    Unknown,
}

/// Classifies a datagram.
pub fn classify(b: &[u8]) -> Kind {
    match b.first() {
        Some(0..=3) => Kind::Stun,
        Some(20..=63) => Kind::Dtls,
        Some(128..=191) => match b.get(1) {
            Some(192..=223) => Kind::Rtcp,
            Some(_) => Kind::Rtp,
            None => Kind::Unknown,
        },
        _ => Kind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn kinds() {
        assert_eq!(classify(&[]), Kind::Unknown);
        assert_eq!(classify(&[0, 1]), Kind::Stun);
        assert_eq!(classify(&[22, 0]), Kind::Dtls);
        assert_eq!(classify(&[0x80, 96]), Kind::Rtp);
        assert_eq!(classify(&[0x80, 0xE0]), Kind::Rtp); // marker + PT 96
        assert_eq!(classify(&[0x81, 200]), Kind::Rtcp);
        assert_eq!(classify(&[0x80]), Kind::Unknown);
        assert_eq!(classify(&[64]), Kind::Unknown);
    }
}
