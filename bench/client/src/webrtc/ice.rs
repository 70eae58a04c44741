//! The client's side of ICE against an ICE-lite router: a full agent in the
//! controlling role with a single candidate pair (the answer's host
//! candidate), so it only sends checks: with USE-CANDIDATE until the first
//! success response nominates the pair, then one every
//! [`CONSENT_INTERVAL`] to keep consent (RFC 7675).

use std::time::{Duration, Instant};

use corecast_proto::ice::{verify_message, Check, Role, Username};

/// How often a check is resent until the pair is nominated.
pub const CHECK_RETRY: Duration = Duration::from_millis(100);
/// How often consent is refreshed once connected (the router closes a leg
/// 30 s after the last check).
pub const CONSENT_INTERVAL: Duration = Duration::from_secs(5);

/// STUN Binding success response.
const SUCCESS: [u8; 2] = [0x01, 0x01];

/// The checks of one session.
#[derive(Debug)]
pub struct IceAgent {
    local_ufrag: String,
    remote_ufrag: String,
    remote_pwd: String,
    tie_breaker: u64,
    /// The transaction of the outstanding check.
    txid: [u8; 12],
    /// When the next check is due.
    next: Instant,
    nominated: bool,
    /// Checks sent and success responses received.
    pub checks_sent: u64,
    /// Success responses matched to a check.
    pub responses: u64,
}

impl IceAgent {
    /// An agent whose first check is due at `now`.
    pub fn new(local_ufrag: &str, remote_ufrag: &str, remote_pwd: &str, now: Instant) -> IceAgent {
        IceAgent {
            local_ufrag: local_ufrag.into(),
            remote_ufrag: remote_ufrag.into(),
            remote_pwd: remote_pwd.into(),
            tie_breaker: rand::random(),
            txid: [0; 12],
            next: now,
            nominated: false,
            checks_sent: 0,
            responses: 0,
        }
    }

    /// Whether a check was answered (the pair is nominated).
    pub fn nominated(&self) -> bool {
        self.nominated
    }

    /// When [`IceAgent::poll_check`] has something to send.
    pub fn next_timeout(&self) -> Instant {
        self.next
    }

    /// The check due at `now`, if any.
    pub fn poll_check(&mut self, now: Instant) -> Option<Vec<u8>> {
        if now < self.next {
            return None;
        }
        self.txid = rand::random();
        let mut out = Vec::with_capacity(128);
        Check {
            txid: self.txid,
            username: Username { local: &self.remote_ufrag, remote: &self.local_ufrag },
            // Host candidate, local preference 65535, component 1.
            priority: (126 << 24) | (65_535 << 8) | 255,
            role: Role::Controlling(self.tie_breaker),
            use_candidate: true,
        }
        .write(&mut out, self.remote_pwd.as_bytes());
        self.checks_sent += 1;
        self.next = now + if self.nominated { CONSENT_INTERVAL } else { CHECK_RETRY };
        Some(out)
    }

    /// Handles a STUN datagram from the router: `true` if it is the success
    /// response to the outstanding check (authenticated with the router's password).
    pub fn on_stun(&mut self, now: Instant, msg: &[u8]) -> bool {
        if msg.len() < 20 || msg[..2] != SUCCESS || msg[8..20] != self.txid {
            return false;
        }
        if verify_message(msg, self.remote_pwd.as_bytes()).is_err() {
            return false;
        }
        self.responses += 1;
        if !self.nominated {
            self.nominated = true;
            self.next = now + CONSENT_INTERVAL;
        }
        true
    }
}
