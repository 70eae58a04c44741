//! Keyframe requests: one throttle per producer, used both for requests
//! that receivers send (PLI/FIR routed by `rtcp_route`) and for those the
//! router originates (a consumer that resumes, a receiver that moves to SD),
//! so N receivers asking at once never make a producer send N keyframes.

use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_proto::rtcp::{Pli, RtcpPacket};
use corecast_proto::token::CallId;
use corecast_proto::Ssrc;

use crate::{Router, ROUTER_SSRC};

/// When a producer was last asked for a keyframe, and whether a request
/// held back by the throttle still waits.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KeyframeThrottle {
    last: Option<Instant>,
    pending: bool,
}

impl KeyframeThrottle {
    /// Whether a request may go now (at most one per `interval`); records it
    /// if so. A request held back is not forgotten: [`due`](Self::due) says
    /// when it may go (a receiver that joined just after the last keyframe
    /// must not wait for its own next request, which may be seconds away).
    pub fn allow(&mut self, now: Instant, interval: Duration) -> bool {
        if self.last.is_some_and(|t| now.saturating_duration_since(t) < interval) {
            self.pending = true;
            return false;
        }
        self.last = Some(now);
        self.pending = false;
        true
    }

    /// A keyframe came: a request held back is answered already.
    #[inline]
    pub fn on_keyframe(&mut self) {
        self.pending = false;
    }

    /// A held-back request may go now.
    #[inline]
    pub fn due(&self, now: Instant, interval: Duration) -> bool {
        self.pending && self.last.is_none_or(|t| now.saturating_duration_since(t) >= interval)
    }
}

impl Router {
    /// Sends a router-originated PLI to the producer of `ssrc` (throttled),
    /// wherever it is: on a local participant's transport or across a pipe.
    pub(crate) fn request_keyframe(&mut self, now: Instant, call_id: CallId, ssrc: Ssrc) {
        let interval = self.config.keyframe_request_interval;
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(owner) = call.owner_endpoint(ssrc) else { return };
        let Some(p) = call.producer_mut(ssrc) else { return };
        if !p.keyframe.allow(now, interval) {
            return;
        }
        let pli = RtcpPacket::Pli(Pli { sender_ssrc: ROUTER_SSRC, media_ssrc: ssrc });
        if let Ok(b) = corecast_proto::rtcp::write_compound(&[pli]) {
            self.out.stats.keyframe_requests += 1;
            call.send_to(&mut self.out, owner, Bytes::from(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_request_per_interval() {
        let t0 = Instant::now();
        let i = Duration::from_millis(300);
        let mut k = KeyframeThrottle::default();
        assert!(k.allow(t0, i));
        assert!(!k.allow(t0 + Duration::from_millis(299), i));
        assert!(k.allow(t0 + i, i));
        assert!(!k.allow(t0 + i, i));
    }

    #[test]
    fn a_held_back_request_comes_due_after_the_interval() {
        let t0 = Instant::now();
        let i = Duration::from_millis(300);
        let mut k = KeyframeThrottle::default();
        assert!(!k.due(t0, i));
        assert!(k.allow(t0, i));
        assert!(!k.allow(t0 + Duration::from_millis(10), i));
        assert!(!k.due(t0 + Duration::from_millis(299), i));
        assert!(k.due(t0 + i, i));
        assert!(k.allow(t0 + i, i));
        assert!(!k.due(t0 + i * 3, i), "sent: nothing waits any more");
    }
}
