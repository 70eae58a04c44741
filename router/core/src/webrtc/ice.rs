//! ICE-lite (RFC 8445 §2.5) for one WebRTC leg: the router answers the
//! peer's connectivity checks and never sends its own.
//!
//! - A check is accepted only with the router's password (MESSAGE-INTEGRITY)
//!   and the peer's ufrag in USERNAME; its source address then becomes a
//!   *valid* address of the leg (media from it is accepted).
//! - USE-CANDIDATE nominates the address: media to the peer goes there.
//!   Before any nomination, to the address validated last.
//! - A new address is followed only after such a check: a packet from an
//!   address that passed none is dropped by the router's address lookup.
//! - Consent (RFC 7675): the peer's checks are its consent; a leg that got no
//!   valid check for the consent timeout is closed by the router's sweep.

use std::net::SocketAddr;
use std::time::Instant;

/// How many addresses one leg keeps valid at once (a browser checks from
/// each of its interfaces; the oldest is forgotten beyond this).
pub(crate) const MAX_VALID: usize = 4;

/// The ICE credentials of a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCredentials {
    /// The router's ufrag (what the peer's checks name first in USERNAME).
    pub local_ufrag: String,
    /// The router's password (the MESSAGE-INTEGRITY key of the peer's checks).
    pub local_pwd: String,
    /// The peer's ufrag (the second part of USERNAME).
    pub remote_ufrag: String,
}

/// The ICE-lite state of one leg.
#[derive(Debug)]
pub(crate) struct IceLite {
    pub creds: IceCredentials,
    /// Addresses that passed a check, with the time of their last check.
    valid: Vec<(SocketAddr, Instant)>,
    nominated: Option<SocketAddr>,
    /// The last valid check from any address.
    pub last_consent: Option<Instant>,
}

/// What a valid check changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The source was not valid before.
    pub new_address: bool,
    /// An address dropped to make room (the router forgets its mapping).
    pub forgotten: Option<SocketAddr>,
}

impl IceLite {
    pub fn new(creds: IceCredentials) -> IceLite {
        IceLite { creds, valid: Vec::with_capacity(2), nominated: None, last_consent: None }
    }

    /// Records a check from `source` that passed integrity.
    pub fn on_valid_check(&mut self, now: Instant, source: SocketAddr, use_candidate: bool) -> Checked {
        self.last_consent = Some(now);
        let mut checked = Checked { new_address: false, forgotten: None };
        match self.valid.iter_mut().find(|(a, _)| *a == source) {
            Some(v) => v.1 = now,
            None => {
                if self.valid.len() >= MAX_VALID {
                    // Forget the address checked least recently (never the nominated one).
                    let oldest = self
                        .valid
                        .iter()
                        .enumerate()
                        .filter(|(_, (a, _))| Some(*a) != self.nominated)
                        .min_by_key(|(_, (_, t))| *t)
                        .map(|(i, _)| i);
                    if let Some(i) = oldest {
                        checked.forgotten = Some(self.valid.swap_remove(i).0);
                    }
                }
                self.valid.push((source, now));
                checked.new_address = true;
            }
        }
        if use_candidate {
            self.nominated = Some(source);
        }
        checked
    }

    /// Where media to the peer goes: the nominated address, else the one
    /// checked last.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.nominated.or_else(|| self.valid.iter().max_by_key(|(_, t)| *t).map(|(a, _)| *a))
    }

    /// Every valid address (the router maps each to the leg).
    pub fn valid_addresses(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.valid.iter().map(|(a, _)| *a)
    }

    /// Whether the peer's consent expired: no valid check for `timeout`
    /// since the last one (or since the leg opened, for a leg never checked,
    /// with `pending` as its limit).
    pub fn expired(&self, now: Instant, timeout: std::time::Duration, pending: Instant) -> bool {
        match self.last_consent {
            Some(t) => now.saturating_duration_since(t) >= timeout,
            None => now >= pending,
        }
    }

    /// New credentials on both sides (ICE restart, RFC 8445 §9): checks
    /// must use them from now on; the valid addresses stay until the peer's
    /// consent on them lapses.
    pub fn restart(&mut self, creds: IceCredentials) {
        self.creds = creds;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn creds() -> IceCredentials {
        IceCredentials { local_ufrag: "r".into(), local_pwd: "p".into(), remote_ufrag: "c".into() }
    }

    #[test]
    fn nomination_picks_the_remote_and_consent_expires() {
        let t0 = Instant::now();
        let mut ice = IceLite::new(creds());
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(ice.remote(), None);
        assert!(ice.on_valid_check(t0, a, false).new_address);
        assert_eq!(ice.remote(), Some(a));
        ice.on_valid_check(t0 + Duration::from_millis(5), b, true);
        ice.on_valid_check(t0 + Duration::from_millis(9), a, false);
        assert_eq!(ice.remote(), Some(b), "the nominated pair wins over a later check");
        let thirty = Duration::from_secs(30);
        assert!(!ice.expired(t0 + Duration::from_secs(29), thirty, t0));
        assert!(ice.expired(t0 + Duration::from_secs(31), thirty, t0));
    }

    #[test]
    fn valid_addresses_are_bounded_and_keep_the_nominated_one() {
        let t0 = Instant::now();
        let mut ice = IceLite::new(creds());
        let nominated: SocketAddr = "127.0.0.1:1".parse().unwrap();
        ice.on_valid_check(t0, nominated, true);
        let mut forgotten = Vec::new();
        for i in 2..10u16 {
            let a = SocketAddr::from(([10, 0, 0, 1], i));
            if let Some(f) = ice.on_valid_check(t0 + Duration::from_millis(u64::from(i)), a, false).forgotten {
                forgotten.push(f);
            }
        }
        assert_eq!(ice.valid_addresses().count(), MAX_VALID);
        assert!(ice.valid_addresses().any(|a| a == nominated));
        assert!(!forgotten.contains(&nominated));
        assert_eq!(forgotten.len(), 8 + 1 - MAX_VALID);
    }

    #[test]
    fn a_leg_never_checked_expires_at_its_pending_limit() {
        let t0 = Instant::now();
        let ice = IceLite::new(creds());
        let limit = t0 + Duration::from_secs(10);
        assert!(!ice.expired(t0 + Duration::from_secs(9), Duration::from_secs(30), limit));
        assert!(ice.expired(limit, Duration::from_secs(30), limit));
    }
}
