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

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use corecast_core::webrtc::{rtx_ssrc, Codec, IceCredentials, LegExtensions, LegMedia, WebRtcLeg};
use corecast_core::LegRefusal;
use corecast_proto::sdp::{self, AnswerConfig, Mode, NegotiatedMedia, SendTrack, SessionDescription};
use corecast_proto::session::Quality;
use corecast_proto::token::{CallId, ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};

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
    /// A subscriber's frame-rate cap (1..=60, WHEP `?max_fps=`): of video
    /// with temporal layers it gets only the layers that fit. `None`: every frame.
    pub max_fps: Option<u8>,
    /// A subscriber's requested size (pixels high, WHEP `?max_height=`): of
    /// a simulcast source it gets the best layer at most this high.
    pub max_height: Option<u16>,
    /// A subscriber's Last-N (WHEP `?last_n=`): the video it watches is
    /// paused while its publisher is not among the call's `n` most active speakers.
    pub last_n: Option<u8>,
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

/// How long a leg may wait for its first ICE check when the calls service
/// gives no deadline.
const DEFAULT_PENDING: Duration = Duration::from_secs(20);

impl crate::server::RouterServer {
    /// Opens a WebRTC leg for `offer` and returns the answer.
    pub fn open_webrtc(&self, offer: WebRtcOffer) -> Result<WebRtcAnswer, WebRtcRefusal> {
        let identity = self.dtls_identity().ok_or_else(|| WebRtcRefusal::Unsupported("WebRTC is off".into()))?;
        let sdp = SessionDescription::parse(&offer.offer).map_err(|e| WebRtcRefusal::Malformed(e.to_string()))?;
        let worker = self.worker_for(&offer.call);
        let mode = match (offer.role, offer.subscribe) {
            (Role::Subscriber, Subscribe::Participant(p)) => {
                // The calls service checked that `p` is in the call; a participant
                // that has not reached the router yet has no known streams: the
                // answer names none and the browser demultiplexes by `mid`.
                let streams = self.streams_of(worker, offer.call, p).unwrap_or_default();
                Mode::Subscribe(send_tracks(p, &streams))
            }
            (Role::Subscriber, Subscribe::Composite) => Mode::Subscribe(composite_tracks()),
            (Role::Publisher, Subscribe::Nothing) => Mode::Publish,
            _ => {
                return Err(WebRtcRefusal::Unsupported("a publisher receives nothing; a subscriber names what".into()))
            }
        };
        let (ufrag, pwd) = (random_ice_chars(8), random_ice_chars(24));
        let mut cfg = AnswerConfig::new(
            ufrag.clone(),
            pwd.clone(),
            identity.fingerprint(),
            self.host_candidates(worker).to_vec(),
            mode,
        );
        // A viewer of one participant takes the codec it publishes first (the
        // router forwards, it does not transcode: an answer in another codec
        // would get no video); the router's own order after it.
        if let (Role::Subscriber, Subscribe::Participant(p)) = (offer.role, offer.subscribe) {
            if let Some(first) = self.video_codec_of(worker, offer.call, p).and_then(sdp_codec) {
                cfg.video_codecs.retain(|c| *c != first);
                cfg.video_codecs.insert(0, first);
            }
        }
        let answer = sdp::answer(&sdp, &cfg).map_err(|e| WebRtcRefusal::Unsupported(e.to_string()))?;
        let n = &answer.negotiated;
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let wait = match offer.expires_unix_ms.checked_sub(now_ms) {
            Some(ms) if ms > 0 => Duration::from_millis(ms).min(Duration::from_secs(60)),
            _ => DEFAULT_PENDING,
        };
        let leg = WebRtcLeg {
            call: offer.call,
            participant: offer.participant,
            role: offer.role,
            ice: IceCredentials { local_ufrag: ufrag.clone(), local_pwd: pwd, remote_ufrag: n.remote_ufrag.clone() },
            remote_fingerprint: n.remote_fingerprint.1.clone(),
            media: n.media.iter().map(leg_media).collect(),
            extensions: LegExtensions {
                mid: n.extensions.mid,
                audio_level: n.extensions.audio_level,
                transport_cc: n.extensions.transport_cc,
                rid: n.extensions.rid,
                repaired_rid: n.extensions.repaired_rid,
                dependency_descriptor: n.extensions.dependency_descriptor,
                allow_mixed: n.extensions.allow_mixed,
            },
            subscribe: match offer.subscribe {
                Subscribe::Participant(p) => Some(p),
                _ => None,
            },
            quality: if offer.subscribe == Subscribe::Composite { Quality::Sd } else { Quality::Hd },
            max_fps: offer.max_fps,
            max_height: offer.max_height,
            last_n: offer.last_n,
            pending_until: Instant::now() + wait,
        };
        self.open_leg(worker, leg).map_err(|r| match r {
            LegRefusal::CallFull => WebRtcRefusal::CallFull,
            LegRefusal::CallEnded => WebRtcRefusal::NotFound,
            other => WebRtcRefusal::Unsupported(other.to_string()),
        })?;
        tracing::info!(call = %offer.call, participant = offer.participant.0, role = ?offer.role, session = %ufrag, "WebRTC leg opened");
        Ok(WebRtcAnswer { answer: answer.sdp.to_sdp(), session: ufrag })
    }

    /// Applies a WHIP/WHEP PATCH body (`application/trickle-ice-sdpfrag`) to a
    /// session: trickled candidates (`Ok(None)`), or an ICE restart (new
    /// ufrag/pwd; `Ok(Some(fragment))` with the router's new credentials).
    ///
    /// The router is ICE-lite and answered with all its candidates: trickled
    /// candidates of the peer need nothing (its checks reach the router from
    /// them). A fragment with a new ufrag (and password) is an ICE restart:
    /// the router takes new credentials too and answers them; DTLS and SRTP
    /// carry on.
    pub fn patch_webrtc(&self, call: CallId, session: &str, fragment: &str) -> Result<Option<String>, WebRtcRefusal> {
        if session.is_empty() || session.len() > 64 {
            return Err(WebRtcRefusal::NotFound);
        }
        let worker = self.worker_for(&call);
        let remote = self.remote_ufrag(worker, session).ok_or(WebRtcRefusal::NotFound)?;
        let attr = |name: &str| fragment.lines().find_map(|l| l.trim().strip_prefix(name)).map(str::trim);
        let Some(ufrag) = attr("a=ice-ufrag:").filter(|u| *u != remote) else {
            // Trickled candidates: the peer's checks from them reach the router.
            return Ok(None);
        };
        // An ICE restart (RFC 9725 §4.4.2): new credentials on both sides.
        if ufrag.is_empty() || ufrag.len() > 256 || attr("a=ice-pwd:").is_none_or(|p| p.len() < 22) {
            return Err(WebRtcRefusal::Malformed("an ICE restart needs a=ice-ufrag and a=ice-pwd (22+ chars)".into()));
        }
        let creds = IceCredentials {
            local_ufrag: random_ice_chars(8),
            local_pwd: random_ice_chars(24),
            remote_ufrag: ufrag.into(),
        };
        let answer = format!("a=ice-lite\r\na=ice-ufrag:{}\r\na=ice-pwd:{}\r\n", creds.local_ufrag, creds.local_pwd);
        if !self.restart_ice(worker, session, creds) {
            return Err(WebRtcRefusal::NotFound);
        }
        Ok(Some(answer))
    }
}

/// What the router announces it sends to a WHEP leg: the publisher's first
/// audio and first video stream (SSRC 0 when not known yet: the browser
/// demultiplexes by `mid`), and the video's RTX SSRC.
fn send_tracks(publisher: ParticipantId, streams: &[(Ssrc, MediaKind)]) -> Vec<SendTrack> {
    let stream_id = format!("corecast-{}", publisher.0);
    [(sdp::MediaKind::Audio, MediaKind::Audio), (sdp::MediaKind::Video, MediaKind::Video)]
        .into_iter()
        .map(|(kind, k)| {
            let ssrc = streams.iter().find(|(_, sk)| *sk == k).map_or(0, |(s, _)| s.0);
            SendTrack {
                ssrc,
                // Where the router retransmits the video (the answer names it only where the leg negotiated RTX).
                rtx_ssrc: (k == MediaKind::Video && ssrc != 0).then(|| rtx_ssrc(ssrc)),
                cname: stream_id.clone(),
                track_id: format!("{stream_id}-{}", if k == MediaKind::Audio { "audio" } else { "video" }),
                stream_id: stream_id.clone(),
                kind,
            }
        })
        .collect()
}

/// What the router announces it sends to a composite view: the mixer's
/// mixed audio on the audio m-line and its composite on the video m-line,
/// as one media stream. No SSRCs: the mixer that joins later (or again,
/// with new SSRCs) is demultiplexed by `mid`, which every packet to the leg
/// carries (`webrtc::media`); the leg gets no other audio once the call has
/// a mixer (`fanout`), so one stream plays on the m-line.
fn composite_tracks() -> Vec<SendTrack> {
    let stream_id = "corecast-composite".to_string();
    [(sdp::MediaKind::Audio, "mix"), (sdp::MediaKind::Video, "composite")]
        .into_iter()
        .map(|(kind, track)| SendTrack {
            ssrc: 0,
            rtx_ssrc: None,
            cname: stream_id.clone(),
            track_id: format!("{stream_id}-{track}"),
            stream_id: stream_id.clone(),
            kind,
        })
        .collect()
}

/// The SDP side's name of a codec the router forwards (video only).
fn sdp_codec(c: Codec) -> Option<sdp::VideoCodec> {
    match c {
        Codec::Av1 => Some(sdp::VideoCodec::Av1),
        Codec::Vp8 => Some(sdp::VideoCodec::Vp8),
        Codec::H264 => Some(sdp::VideoCodec::H264),
        Codec::Opus | Codec::Rtx => None,
    }
}

fn leg_media(m: &NegotiatedMedia) -> LegMedia {
    LegMedia {
        mid: m.mid.clone(),
        kind: if m.kind == sdp::MediaKind::Audio { MediaKind::Audio } else { MediaKind::Video },
        codec: match m.codec {
            sdp::Codec::Opus => Codec::Opus,
            sdp::Codec::Av1 => Codec::Av1,
            sdp::Codec::Vp8 => Codec::Vp8,
            sdp::Codec::H264 => Codec::H264,
        },
        payload_type: m.payload_type,
        rtx_payload_type: m.rtx_payload_type,
        red_payload_type: m.red_payload_type,
        receives: m.direction.receives(),
        sends: m.direction.sends(),
        // RTX streams are the publisher's too (their packets are accepted, not sent to browsers).
        remote_ssrcs: m.remote_ssrcs.iter().flat_map(|r| std::iter::once(r.ssrc).chain(r.rtx)).map(Ssrc).collect(),
        remote_rtx: m.remote_ssrcs.iter().filter_map(|r| Some((Ssrc(r.ssrc), Ssrc(r.rtx?)))).collect(),
        rids: m.rids.clone(),
    }
}

/// ICE ufrag/pwd characters (RFC 8839 ice-char: ALPHA / DIGIT / "+" / "/").
fn random_ice_chars(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..n).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A browser's WHEP offer for the composite: the answer sends the mix on
    /// its audio m-line (Opus) and the composite on its video m-line, one
    /// media stream, and names no SSRC (the browser demultiplexes by MID).
    #[test]
    fn a_composite_answer_carries_the_mix_on_its_audio_line() {
        for fixture in ["chromium-whep-offer.sdp", "firefox-whep-offer.sdp"] {
            let path = format!("{}/proto/tests/fixtures/sdp/{fixture}", env!("CARGO_MANIFEST_DIR"));
            let offer = SessionDescription::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
            let cfg = AnswerConfig::new(
                "ufrag123",
                "aPasswordOf24CharsXXXXXX",
                [7; 32],
                vec!["127.0.0.1:40000".parse().unwrap()],
                Mode::Subscribe(composite_tracks()),
            );
            let answer = sdp::answer(&offer, &cfg).unwrap();
            let audio: Vec<_> = answer.negotiated.media.iter().filter(|m| m.kind == sdp::MediaKind::Audio).collect();
            assert_eq!(audio.len(), 1, "{fixture}: one audio m-line");
            assert_eq!(audio[0].codec, sdp::Codec::Opus, "{fixture}");
            assert!(audio[0].direction.sends() && !audio[0].direction.receives(), "{fixture}: sendonly");
            let text = answer.sdp.to_sdp();
            assert!(text.contains("a=msid:corecast-composite corecast-composite-mix"), "{fixture}: {text}");
            assert!(text.contains("a=msid:corecast-composite corecast-composite-composite"), "{fixture}");
            assert!(!text.contains("a=ssrc:"), "{fixture}: no SSRC named");
            assert!(answer.negotiated.extensions.mid.is_some(), "{fixture}: MID to demultiplex by");
        }
    }

    /// A WHEP answer for a participant whose streams are known names its
    /// video's RTX SSRC (the one the router retransmits on) in an FID group,
    /// where the browser offered RTX; an unknown stream names none.
    #[test]
    fn a_whep_answer_names_the_videos_rtx_ssrc() {
        let path = format!("{}/proto/tests/fixtures/sdp/chromium-whep-offer.sdp", env!("CARGO_MANIFEST_DIR"));
        let offer = SessionDescription::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        let answer = |streams: &[(Ssrc, MediaKind)]| {
            let mode = Mode::Subscribe(send_tracks(ParticipantId(4), streams));
            let candidates = vec!["127.0.0.1:40000".parse().unwrap()];
            let cfg = AnswerConfig::new("ufrag123", "aPasswordOf24CharsXXXXXX", [7; 32], candidates, mode);
            sdp::answer(&offer, &cfg).unwrap().sdp.to_sdp()
        };
        let text = answer(&[(Ssrc(0xA1), MediaKind::Audio), (Ssrc(0xB1), MediaKind::Video)]);
        let rtx = rtx_ssrc(0xB1);
        assert!(text.contains(&format!("a=ssrc-group:FID {} {rtx}", 0xB1)), "{text}");
        assert!(text.contains(&format!("a=ssrc:{rtx} cname:corecast-4")), "{text}");
        assert!(!text.contains(&format!("a=ssrc-group:FID {}", 0xA1)), "no RTX for audio");
        assert!(!answer(&[]).contains("a=ssrc"), "streams not known yet: no SSRC named");
    }
}
