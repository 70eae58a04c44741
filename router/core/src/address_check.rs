//! Native joins that cannot be hijacked: an admitted participant moves to a
//! new address only after a check from there proves it holds the join key
//! (as ICE consent does, RFC 7675), and a token whose participant left or
//! was removed admits nobody again.
//!
//! A join, a keepalive, a leave, a quality or a Last-N message counts only
//! when it is signed with the token's join key (`membership`). A join seen
//! on the wire and replayed is signed, so it cannot be trusted to move
//! anyone: from a new address it only makes the router send a [`Check`]
//! there (no larger than the join: no amplification), whose transaction id
//! nobody without the key can predict; the move happens on a signed
//! [`CheckReply`] with that id, from that address, within
//! [`CHECK_TIMEOUT`].
//!
//! [`Check`]: SessionMessage::Check
//! [`CheckReply`]: SessionMessage::CheckReply

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_proto::session::{self, JoinErrorCode, SessionMessage};
use corecast_proto::token::{CallId, ParticipantId};

use crate::membership::Join;
use crate::stats::DropReason;
use crate::transport::{Move, Transport};
use crate::Router;

/// How long a check waits for its answer.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

impl Router {
    /// Whether `contents` (a session message from native participant `pid`
    /// of `call`) is signed with its join key.
    pub(crate) fn signed_by(&self, call: CallId, pid: ParticipantId, contents: &[u8]) -> bool {
        let Some(c) = self.calls.get(&call) else { return false };
        let Some(i) = c.index_of(pid) else { return false };
        match &c.participants[i].transport {
            Transport::Udp(u) => session::verify(contents, u.key.as_bytes()).is_ok(),
            Transport::WebRtc(_) => false,
        }
    }

    /// A signed join for a participant admitted at another address: sends
    /// a check to the join's address (again for a repeated join: the
    /// latest check counts).
    pub(crate) fn check_new_address(&mut self, now: Instant, j: &Join) {
        let Some(call) = self.calls.get_mut(&j.call) else { return };
        let Some(i) = call.index_of(j.participant) else { return };
        let Transport::Udp(u) = &mut call.participants[i].transport else {
            return self.join_error(j.source, j.txid, JoinErrorCode::Forbidden, "participant is on a WebRTC leg");
        };
        let nonce = format!("{}|{:?}", j.source, now.saturating_duration_since(self.epoch).as_nanos());
        let check = j.key.check_txid(nonce.as_bytes());
        if let Some(old) = u.moving.replace(Move { to: j.source, check, join_txid: j.txid, until: now + CHECK_TIMEOUT })
        {
            self.checking.remove(&old.to);
        }
        let msg = SessionMessage::Check { txid: check }.to_signed_vec(&u.key);
        self.checking.insert(j.source, (j.call, j.participant));
        self.out.stats.address_checks += 1;
        self.out.transmit(j.source, Bytes::from(msg));
    }

    /// A client's answer to a check: moves its participant to `source` if
    /// it answers the latest check sent there, in time, signed.
    pub(crate) fn handle_check_reply(&mut self, now: Instant, source: SocketAddr, txid: [u8; 12], contents: &[u8]) {
        let Some(&(call_id, pid)) = self.checking.get(&source) else {
            return self.out.drop_packet(DropReason::Unadmitted);
        };
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(i) = call.index_of(pid) else { return };
        let p = &mut call.participants[i];
        let Transport::Udp(u) = &mut p.transport else { return };
        let Some(m) = u.moving.as_ref().filter(|m| m.to == source && m.check == txid && now < m.until) else {
            return self.out.drop_packet(DropReason::Unadmitted);
        };
        if session::verify(contents, u.key.as_bytes()).is_err() {
            return self.out.drop_packet(DropReason::BadIntegrity);
        }
        let join_txid = m.join_txid;
        let old = std::mem::replace(&mut u.remote, source);
        if u.srtp.is_some() {
            self.srtp_addrs.remove(&old);
            self.srtp_addrs.insert(source);
        }
        u.moving = None;
        p.last_seen = now;
        self.checking.remove(&source);
        self.by_addr.remove(&old);
        self.by_addr.insert(source, (call_id, pid));
        self.out.stats.address_moves += 1;
        // The answer proved the key from this address: the JoinAck may be
        // longer than it (the no-amplification limit is for strangers).
        self.out.end_reply_limit();
        self.join_ack(source, join_txid, pid);
    }

    /// Forgets checks nobody answered in time and revocations of tokens
    /// that have expired anyway.
    pub(crate) fn sweep_checks(&mut self, now: Instant) {
        let calls = &mut self.calls;
        self.checking.retain(|addr, (call, pid)| {
            let Some(c) = calls.get_mut(call) else { return false };
            let Some(i) = c.index_of(*pid) else { return false };
            let Transport::Udp(u) = &mut c.participants[i].transport else { return false };
            let live = u.moving.as_ref().is_some_and(|m| m.to == *addr && now < m.until);
            if !live && u.moving.as_ref().is_some_and(|m| m.to == *addr) {
                u.moving = None;
            }
            live
        });
        let now_ms = self.unix_ms(now);
        self.revoked.retain(|_, expires_ms| *expires_ms > now_ms);
    }
}
