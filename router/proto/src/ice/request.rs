//! A peer's Binding request (an ICE connectivity check), borrowed from its
//! datagram.

use super::integrity::{check_fingerprint, check_integrity, FP_LEN, MI_LEN};
use super::response::finish;
use super::{attr, IceError, BINDING, MAX_USERNAME};
use crate::session::{put_attr, put_header, Class, Frame};

/// USERNAME of a connectivity check, split at its first colon: the
/// receiver's (our) ufrag first, then the sender's (RFC 8445 §7.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Username<'a> {
    /// Our ufrag: which session the check is for.
    pub local: &'a str,
    /// The peer's ufrag.
    pub remote: &'a str,
}

impl<'a> Username<'a> {
    fn parse(v: &'a [u8]) -> Result<Self, IceError> {
        if v.len() > MAX_USERNAME {
            return Err(IceError::Malformed(attr::USERNAME));
        }
        let s = std::str::from_utf8(v).map_err(|_| IceError::BadUsername)?;
        match s.split_once(':') {
            Some((local, remote)) if !local.is_empty() && !remote.is_empty() => Ok(Username { local, remote }),
            _ => Err(IceError::BadUsername),
        }
    }
}

/// The role the sender of a check claims, with its tie-breaker (RFC 8445 §7.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// ICE-CONTROLLING.
    Controlling(u64),
    /// ICE-CONTROLLED.
    Controlled(u64),
}

/// A parsed STUN Binding request. Parsing checks structure only;
/// [`verify`](Self::verify) checks FINGERPRINT and MESSAGE-INTEGRITY.
///
/// Of an attribute that appears more than once, the first counts.
/// Attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored
/// (RFC 8489 §14.5), as are unknown comprehension-optional ones and
/// MESSAGE-INTEGRITY-SHA256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingRequest<'a> {
    /// Transaction id, for the response.
    pub txid: [u8; 12],
    /// USERNAME.
    pub username: Username<'a>,
    /// PRIORITY.
    pub priority: Option<u32>,
    /// USE-CANDIDATE present.
    pub use_candidate: bool,
    /// ICE-CONTROLLING or ICE-CONTROLLED.
    pub role: Option<Role>,
    msg: &'a [u8],
    integrity: Option<usize>,
    fingerprint: Option<usize>,
}

fn be_u32(t: u16, v: &[u8]) -> Result<u32, IceError> {
    v.try_into().map(u32::from_be_bytes).map_err(|_| IceError::Malformed(t))
}

fn be_u64(t: u16, v: &[u8]) -> Result<u64, IceError> {
    v.try_into().map(u64::from_be_bytes).map_err(|_| IceError::Malformed(t))
}

impl<'a> BindingRequest<'a> {
    /// Parses one datagram as a Binding request.
    pub fn parse(b: &'a [u8]) -> Result<Self, IceError> {
        let f = Frame::parse(b)?;
        if f.class != Class::Request || f.method != BINDING {
            return Err(IceError::NotBindingRequest);
        }
        let mut username = None;
        let (mut priority, mut use_candidate) = (None, false);
        let (mut controlling, mut controlled) = (None, None);
        let (mut integrity, mut fingerprint) = (None, None);
        for a in f.attrs() {
            let a = a?;
            if fingerprint.is_some() {
                return Err(IceError::AfterFingerprint(a.ty));
            }
            if a.ty == attr::FINGERPRINT {
                if a.value.len() != FP_LEN {
                    return Err(IceError::Malformed(a.ty));
                }
                fingerprint = Some(a.offset);
                continue;
            }
            if integrity.is_some() {
                continue;
            }
            match a.ty {
                attr::USERNAME if username.is_none() => username = Some(Username::parse(a.value)?),
                attr::MESSAGE_INTEGRITY => {
                    if a.value.len() != MI_LEN {
                        return Err(IceError::Malformed(a.ty));
                    }
                    integrity = Some(a.offset);
                }
                attr::PRIORITY if priority.is_none() => priority = Some(be_u32(a.ty, a.value)?),
                attr::USE_CANDIDATE if !a.value.is_empty() => return Err(IceError::Malformed(a.ty)),
                attr::USE_CANDIDATE => use_candidate = true,
                attr::ICE_CONTROLLING if controlling.is_none() => controlling = Some(be_u64(a.ty, a.value)?),
                attr::ICE_CONTROLLED if controlled.is_none() => controlled = Some(be_u64(a.ty, a.value)?),
                attr::USERNAME
                | attr::PRIORITY
                | attr::ICE_CONTROLLING
                | attr::ICE_CONTROLLED
                | attr::MESSAGE_INTEGRITY_SHA256 => {}
                t if t < 0x8000 => return Err(IceError::UnknownRequired(t)),
                _ => {}
            }
        }
        let role = match (controlling, controlled) {
            (Some(_), Some(_)) => return Err(IceError::BothRoles),
            (Some(t), None) => Some(Role::Controlling(t)),
            (None, Some(t)) => Some(Role::Controlled(t)),
            (None, None) => None,
        };
        Ok(BindingRequest {
            txid: f.txid,
            username: username.ok_or(IceError::MissingUsername)?,
            priority,
            use_candidate,
            role,
            msg: b,
            integrity,
            fingerprint,
        })
    }

    /// The whole request.
    pub fn bytes(&self) -> &'a [u8] {
        self.msg
    }

    /// Checks FINGERPRINT (required for ICE, RFC 8445 §7.2.2).
    pub fn verify_fingerprint(&self) -> Result<(), IceError> {
        check_fingerprint(self.msg, self.fingerprint.ok_or(IceError::MissingFingerprint)?)
    }

    /// Checks MESSAGE-INTEGRITY against `password` (the short-term key is
    /// the password's bytes), over the message up to MESSAGE-INTEGRITY with
    /// the length field counting up to its end (RFC 8489 §14.5).
    pub fn verify_integrity(&self, password: &[u8]) -> Result<(), IceError> {
        check_integrity(password, self.msg, self.integrity.ok_or(IceError::MissingIntegrity)?)
    }

    /// Checks FINGERPRINT, then MESSAGE-INTEGRITY against `password`.
    pub fn verify(&self, password: &[u8]) -> Result<(), IceError> {
        self.verify_fingerprint()?;
        self.verify_integrity(password)
    }
}

/// A connectivity check to send (what a full agent, or a test client,
/// writes): the counterpart of [`BindingRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check<'a> {
    /// Transaction id.
    pub txid: [u8; 12],
    /// USERNAME, `local` being the receiver's ufrag. `local:remote` longer
    /// than [`MAX_USERNAME`] is cut there (and will not parse).
    pub username: Username<'a>,
    /// PRIORITY.
    pub priority: u32,
    /// ICE-CONTROLLING or ICE-CONTROLLED.
    pub role: Role,
    /// USE-CANDIDATE.
    pub use_candidate: bool,
}

impl Check<'_> {
    /// Appends the request to `out` (attributes in RFC 5769 §2.1's order),
    /// with MESSAGE-INTEGRITY keyed with the receiver's `password` and
    /// FINGERPRINT.
    pub fn write(&self, out: &mut Vec<u8>, password: &[u8]) {
        let start = out.len();
        put_header(out, Class::Request, BINDING, &self.txid);
        let (u, r) = (self.username.local.as_bytes(), self.username.remote.as_bytes());
        put_attr(out, start, attr::PRIORITY, &self.priority.to_be_bytes());
        match self.role {
            Role::Controlling(t) => put_attr(out, start, attr::ICE_CONTROLLING, &t.to_be_bytes()),
            Role::Controlled(t) => put_attr(out, start, attr::ICE_CONTROLLED, &t.to_be_bytes()),
        }
        if self.use_candidate {
            put_attr(out, start, attr::USE_CANDIDATE, &[]);
        }
        let mut v = [0u8; MAX_USERNAME];
        let mut n = 0;
        for (d, s) in v.iter_mut().zip(u.iter().chain(b":").chain(r)) {
            *d = *s;
            n += 1;
        }
        put_attr(out, start, attr::USERNAME, &v[..n]);
        finish(out, start, Some(password));
    }
}
