//! WebRTC legs (WHIP/WHEP): what the calls service asks the router for over
//! the admin API, and what the router answers.
//!
//! The calls service authenticates the person, allocates the participant and
//! forwards the browser's SDP offer here (`POST {admin}/v1/calls/{id}/webrtc`);
//! the router parses it, builds the answer (ICE-lite, DTLS setup:passive, its
//! certificate's fingerprint, a host candidate per address the call's worker
//! listens on) and tells the call's worker to expect the leg. Only the calls
//! service can make the router admit a WebRTC leg: the admin API needs the
//! router secret.

use corecast_proto::token::{CallId, ParticipantId, Role};

/// What a WebRTC leg receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribe {
    /// Nothing (a WHIP publisher).
    Nothing,
    /// One participant's audio and video (WHEP `?participant=`).
    Participant(ParticipantId),
    /// The call's SD composite and mixed audio (WHEP `?view=composite`).
    Composite,
}

/// An offer the calls service forwards.
#[derive(Debug, Clone)]
pub struct WebRtcOffer {
    /// The call.
    pub call: CallId,
    /// The participant the calls service allocated for this leg.
    pub participant: ParticipantId,
    /// Publisher (WHIP) or subscriber (WHEP).
    pub role: Role,
    /// What the leg receives.
    pub subscribe: Subscribe,
    /// The SDP offer text.
    pub offer: String,
    /// Wall-clock ms after which a leg that passed no ICE check is dropped.
    pub expires_unix_ms: u64,
}

/// The router's answer.
#[derive(Debug, Clone)]
pub struct WebRtcAnswer {
    /// The SDP answer text.
    pub answer: String,
    /// The session's id (the router's ICE ufrag): names it in PATCH.
    pub session: String,
}

/// Why the router refused an offer or a patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebRtcRefusal {
    /// The offer or fragment does not parse (HTTP 400), with what is wrong.
    Malformed(String),
    /// It parses but the router cannot serve it (HTTP 406 / 422), naming what is missing.
    Unsupported(String),
    /// No such session (HTTP 404).
    NotFound,
    /// The call is full (HTTP 409 / 403 as the native join's "call full").
    CallFull,
}

impl std::fmt::Display for WebRtcRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebRtcRefusal::Malformed(m) => write!(f, "malformed: {m}"),
            WebRtcRefusal::Unsupported(m) => write!(f, "unsupported: {m}"),
            WebRtcRefusal::NotFound => f.write_str("no such session"),
            WebRtcRefusal::CallFull => f.write_str("call full"),
        }
    }
}

impl crate::server::RouterServer {
    /// Opens a WebRTC leg for `offer` and returns the answer.
    pub fn open_webrtc(&self, offer: WebRtcOffer) -> Result<WebRtcAnswer, WebRtcRefusal> {
        let _ = offer;
        Err(WebRtcRefusal::Unsupported("WebRTC legs are not built yet".into()))
    }

    /// Applies a WHIP/WHEP PATCH body (`application/trickle-ice-sdpfrag`) to a
    /// session: trickled candidates (`Ok(None)`), or an ICE restart (new
    /// ufrag/pwd; `Ok(Some(fragment))` with the router's new credentials).
    pub fn patch_webrtc(&self, call: CallId, session: &str, fragment: &str) -> Result<Option<String>, WebRtcRefusal> {
        let _ = (call, session, fragment);
        Err(WebRtcRefusal::NotFound)
    }
}
