//! The router's answer to a browser's offer (JSEP, RFC 8829 §5.3): ICE-lite,
//! DTLS `setup:passive`, everything BUNDLEd on one transport, one codec per
//! media section, and the [`Negotiated`] parameters the router runs the leg
//! with.
//!
//! Media sections the router cannot serve (data channels, unknown kinds, no
//! common codec, not RTP/SAVPF, outside the offer's BUNDLE group) are
//! rejected in place (port 0). An offer with nothing the router can serve,
//! or without what WebRTC makes mandatory, gets an [`AnswerError`] that
//! names what is wrong (the WHIP/WHEP endpoint's 4xx text).

use std::net::SocketAddr;

use super::attrs::{Direction, Fingerprint, Group, Msid, Rid, RidDirection, Setup, Simulcast, SsrcAttr, SsrcGroup};
use super::candidate::Candidate;
use super::model::{
    Attribute, Attributes, Connection, MediaDescription, MediaKind, Origin, SessionDescription, Timing,
};
use super::negotiate::{choose, extensions, remote_ssrcs, Chosen};

/// A video codec the router forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// AV1 (`AV1/90000`).
    Av1,
    /// VP8 (`VP8/90000`).
    Vp8,
    /// H.264 (`H264/90000`), packetization-mode=1 and profile-level-id 42e01f preferred.
    H264,
}

impl VideoCodec {
    /// The router's default preference.
    pub const DEFAULT_PREFERENCE: [VideoCodec; 3] = [VideoCodec::Av1, VideoCodec::Vp8, VideoCodec::H264];
}

/// A negotiated codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Opus 48000/2.
    Opus,
    /// AV1.
    Av1,
    /// VP8.
    Vp8,
    /// H.264.
    H264,
}

/// A track the router sends a WHEP subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendTrack {
    /// [`MediaKind::Audio`] or [`MediaKind::Video`].
    pub kind: MediaKind,
    /// The SSRC the router sends it with (0: not known yet; no `a=ssrc` line).
    pub ssrc: u32,
    /// The RTX SSRC, if the router retransmits on its own SSRC.
    pub rtx_ssrc: Option<u32>,
    /// RTCP CNAME (the sending participant's).
    pub cname: String,
    /// The MediaStream id (`a=msid` first part).
    pub stream_id: String,
    /// The track id (`a=msid` second part).
    pub track_id: String,
}

/// Publisher or subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// WHIP: the peer sends, the router answers `recvonly`.
    Publish,
    /// WHEP: the router sends these tracks and answers `sendonly`.
    Subscribe(Vec<SendTrack>),
}

/// What the router answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerConfig {
    /// The router's ICE username fragment for this leg (4-256 ice-chars).
    pub ice_ufrag: String,
    /// The router's ICE password for this leg (22-256 ice-chars).
    pub ice_pwd: String,
    /// SHA-256 of the router's DTLS certificate.
    pub fingerprint_sha256: [u8; 32],
    /// Host candidates: one per address the router listens on (udp, component 1).
    pub candidates: Vec<SocketAddr>,
    /// Publish or subscribe.
    pub mode: Mode,
    /// Video codecs in the router's order of preference.
    pub video_codecs: Vec<VideoCodec>,
}

impl AnswerConfig {
    /// A config with the default video codec preference.
    pub fn new(
        ice_ufrag: impl Into<String>,
        ice_pwd: impl Into<String>,
        fingerprint_sha256: [u8; 32],
        candidates: Vec<SocketAddr>,
        mode: Mode,
    ) -> AnswerConfig {
        AnswerConfig {
            ice_ufrag: ice_ufrag.into(),
            ice_pwd: ice_pwd.into(),
            fingerprint_sha256,
            candidates,
            mode,
            video_codecs: VideoCodec::DEFAULT_PREFERENCE.to_vec(),
        }
    }
}

/// The answer and what it negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer SDP ([`SessionDescription::to_sdp`] for the text).
    pub sdp: SessionDescription,
    /// The parameters of the leg.
    pub negotiated: Negotiated,
}

/// RTP header extension ids (one id space for the BUNDLE group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extensions {
    /// `urn:ietf:params:rtp-hdrext:sdes:mid`.
    pub mid: Option<u8>,
    /// `urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id`.
    pub rid: Option<u8>,
    /// `urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id`.
    pub repaired_rid: Option<u8>,
    /// `urn:ietf:params:rtp-hdrext:ssrc-audio-level`.
    pub audio_level: Option<u8>,
    /// Transport-wide congestion control (draft-holmer-rmcat-transport-wide-cc-extensions-01).
    pub transport_cc: Option<u8>,
    /// `http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time`.
    pub abs_send_time: Option<u8>,
    /// The Dependency Descriptor (AV1 RTP payload format, appendix A): a
    /// video frame's layers, read without the payload (`crate::dd`).
    pub dependency_descriptor: Option<u8>,
    /// The offer has `a=extmap-allow-mixed` (RFC 8285 §6), and so the
    /// answer: packets to the peer may use the two-byte header form, which
    /// a Dependency Descriptor longer than 16 bytes (one with its template
    /// structure) needs.
    pub allow_mixed: bool,
}

/// The RTCP feedback negotiated for a media section's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Feedback {
    /// Generic NACK (`nack`).
    pub nack: bool,
    /// Picture loss indication (`nack pli`).
    pub pli: bool,
    /// Full intra request (`ccm fir`).
    pub fir: bool,
    /// Transport-wide CC feedback (`transport-cc`).
    pub transport_cc: bool,
    /// REMB (`goog-remb`).
    pub remb: bool,
}

/// An SSRC the offerer announced (`a=ssrc`, `a=ssrc-group:FID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSsrc {
    /// The primary (media) SSRC.
    pub ssrc: u32,
    /// Its retransmission SSRC, from `a=ssrc-group:FID <ssrc> <rtx>`.
    pub rtx: Option<u32>,
    /// Its `cname`, when announced.
    pub cname: Option<String>,
}

/// One accepted media section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// Its mid.
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// The router's direction (as in the answer).
    pub direction: Direction,
    /// The codec.
    pub codec: Codec,
    /// Its payload type.
    pub payload_type: u8,
    /// Its clock rate.
    pub clock_rate: u32,
    /// The RTX payload type, when negotiated.
    pub rtx_payload_type: Option<u8>,
    /// Audio the router sends: the RED (RFC 2198) payload type, when
    /// negotiated (offered, and the router sends on the section).
    pub red_payload_type: Option<u8>,
    /// The RTCP feedback.
    pub feedback: Feedback,
    /// The offerer's SSRCs in this section (primaries, each with its RTX).
    pub remote_ssrcs: Vec<RemoteSsrc>,
    /// The simulcast RTP stream ids the offerer sends (`a=rid:<id> send`).
    pub rids: Vec<String>,
    /// The track the router sends here (subscribe mode); `rtx_ssrc` is
    /// cleared when RTX was not negotiated.
    pub send: Option<SendTrack>,
}

/// The parameters of a WebRTC leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The offerer's ICE ufrag.
    pub remote_ufrag: String,
    /// The offerer's ICE password.
    pub remote_pwd: String,
    /// The offerer's DTLS certificate fingerprint (`("sha-256", digest)`).
    pub remote_fingerprint: (String, Vec<u8>),
    /// The accepted media sections, in order.
    pub media: Vec<NegotiatedMedia>,
    /// Header extension ids.
    pub extensions: Extensions,
    /// Reduced-size RTCP (RFC 5506), when every accepted section offered it.
    pub rtcp_rsize: bool,
}

/// Why the router cannot answer an offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The offer lacks something WebRTC makes mandatory (named).
    #[error("offer has no {0}")]
    Missing(&'static str),
    /// The offer's DTLS role is `passive`: the router is always passive.
    #[error("offer has a=setup:passive; the router is DTLS passive, offer actpass or active")]
    SetupPassive,
    /// The offer's DTLS role is neither `actpass` nor `active`.
    #[error("offer has a=setup:{0}; expected actpass or active")]
    Setup(String),
    /// The offerer is ICE-lite too.
    #[error("offer is ICE-lite; the router is ICE-lite, the peer must be a full ICE agent")]
    IceLite,
    /// No audio or video section the router can serve.
    #[error("offer has no audio or video m-line the router can serve (Opus audio; AV1, VP8 or H264 video; UDP/TLS/RTP/SAVPF; in the BUNDLE group)")]
    NoMedia,
    /// Several sections accepted but no BUNDLE group offered.
    #[error("offer has several media sections but no a=group:BUNDLE; the router uses one transport")]
    NoBundle,
    /// A mid the RTP MID header extension cannot carry (1-16 visible ASCII characters).
    #[error("offer has a=mid:{0}; a mid must be 1-16 visible ASCII characters")]
    BadMid(String),
    /// Two sections share a mid.
    #[error("offer has two m-lines with a=mid:{0}")]
    DuplicateMid(String),
    /// Header extension ids that disagree across the BUNDLE group.
    #[error("offer's a=extmap ids conflict across the BUNDLE group: {0}")]
    ExtensionConflict(String),
    /// A publish (WHIP) offer in which nothing is sent.
    #[error("publish offer sends no media (no sendonly or sendrecv audio/video m-line)")]
    NothingToReceive,
    /// The router's own config is unusable (a bug, not the peer's fault).
    #[error("answer config: {0}")]
    Config(&'static str),
}

fn ice_chars(s: &str, min: usize) -> bool {
    (min..=256).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn sdp_token(s: &str) -> bool {
    (1..=255).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

fn check_config(cfg: &AnswerConfig) -> Result<(), AnswerError> {
    if !ice_chars(&cfg.ice_ufrag, 4) {
        return Err(AnswerError::Config("ice_ufrag must be 4-256 ice-chars"));
    }
    if !ice_chars(&cfg.ice_pwd, 22) {
        return Err(AnswerError::Config("ice_pwd must be 22-256 ice-chars"));
    }
    if cfg.candidates.is_empty() {
        return Err(AnswerError::Config("no candidates"));
    }
    if let Mode::Subscribe(tracks) = &cfg.mode {
        for t in tracks {
            if !matches!(t.kind, MediaKind::Audio | MediaKind::Video) {
                return Err(AnswerError::Config("a send track must be audio or video"));
            }
            if !(sdp_token(&t.cname) && sdp_token(&t.stream_id) && sdp_token(&t.track_id)) {
                return Err(AnswerError::Config("send track cname/stream_id/track_id must be 1-255 visible ASCII"));
            }
        }
    }
    Ok(())
}

/// The transport the BUNDLE group runs on, from the offer.
struct Transport {
    ufrag: String,
    pwd: String,
    fingerprint: Fingerprint,
}

fn transport(offer: &SessionDescription, m: &MediaDescription) -> Result<Transport, AnswerError> {
    let ufrag = offer.media_ice_ufrag(m).filter(|u| !u.is_empty()).ok_or(AnswerError::Missing("a=ice-ufrag"))?;
    let pwd = offer.media_ice_pwd(m).filter(|p| !p.is_empty()).ok_or(AnswerError::Missing("a=ice-pwd"))?;
    let fingerprint = offer
        .media_fingerprints(m)
        .into_iter()
        .find(|f| f.algorithm == "sha-256" && f.bytes.len() == 32)
        .ok_or(AnswerError::Missing("a=fingerprint with a sha-256 digest"))?;
    let has_setup = m.has_attribute("setup") || offer.has_attribute("setup");
    match offer.media_setup(m) {
        Some(Setup::ActPass | Setup::Active) => {}
        Some(Setup::Passive) => return Err(AnswerError::SetupPassive),
        Some(Setup::HoldConn) => return Err(AnswerError::Setup("holdconn".into())),
        None if has_setup => {
            let v = m.attribute_value("setup").or_else(|| offer.attribute_value("setup")).unwrap_or("");
            return Err(AnswerError::Setup(v.chars().take(32).collect()));
        }
        None => return Err(AnswerError::Missing("a=setup")),
    }
    if !m.rtcp_mux() {
        return Err(AnswerError::Missing("a=rtcp-mux (RTP and RTCP must share a port)"));
    }
    Ok(Transport { ufrag: ufrag.into(), pwd: pwd.into(), fingerprint })
}

/// An accepted section before the answer is written.
struct Accepted {
    index: usize,
    chosen: Chosen,
    media: NegotiatedMedia,
    exts: Vec<(u8, &'static str)>,
    rids: Vec<Rid>,
    simulcast: Option<Simulcast>,
}

fn rtp_protocol(p: &str) -> bool {
    matches!(p, "UDP/TLS/RTP/SAVPF" | "UDP/TLS/RTP/SAVP" | "RTP/SAVPF")
}

/// Answers `offer` as the router (see the module docs).
pub fn answer(offer: &SessionDescription, cfg: &AnswerConfig) -> Result<Answer, AnswerError> {
    check_config(cfg)?;
    if offer.ice_lite() {
        return Err(AnswerError::IceLite);
    }
    let bundle = offer.bundle();
    let allow_mixed =
        offer.has_attribute("extmap-allow-mixed") || offer.media.iter().any(|m| m.has_attribute("extmap-allow-mixed"));
    let mut tracks: Vec<Option<&SendTrack>> = match &cfg.mode {
        Mode::Publish => Vec::new(),
        Mode::Subscribe(t) => t.iter().map(Some).collect(),
    };
    let mut mids: Vec<&str> = Vec::new();
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut transport_of: Option<Transport> = None;
    for (index, m) in offer.media.iter().enumerate() {
        if let Some(mid) = m.mid() {
            if mids.contains(&mid) {
                return Err(AnswerError::DuplicateMid(mid.chars().take(32).collect()));
            }
            mids.push(mid);
        }
        let av = matches!(m.kind, MediaKind::Audio | MediaKind::Video);
        let live = m.port != 0 || m.has_attribute("bundle-only");
        if !av || !live || !rtp_protocol(&m.protocol) {
            continue;
        }
        let mid = m.mid().ok_or(AnswerError::Missing("a=mid on an audio/video m-line"))?;
        if !(1..=16).contains(&mid.len()) || !sdp_token(mid) {
            return Err(AnswerError::BadMid(mid.chars().take(32).collect()));
        }
        if bundle.as_ref().is_some_and(|b| !b.iter().any(|x| x == mid)) {
            continue;
        }
        let Some(chosen) = choose(m, &cfg.video_codecs) else { continue };
        let t = transport(offer, m)?;
        transport_of.get_or_insert(t);
        let offered = offer.media_direction(m);
        let (direction, send) = match &cfg.mode {
            Mode::Publish => (if offered.sends() { Direction::RecvOnly } else { Direction::Inactive }, None),
            Mode::Subscribe(_) => {
                let slot = offered.receives().then(|| tracks.iter_mut().find(|t| t.is_some_and(|t| t.kind == m.kind)));
                match slot.flatten().and_then(Option::take) {
                    Some(t) => {
                        let mut t = t.clone();
                        if chosen.rtx.is_none() {
                            t.rtx_ssrc = None;
                        }
                        (Direction::SendOnly, Some(t))
                    }
                    None => (Direction::Inactive, None),
                }
            }
        };
        let publish = matches!(cfg.mode, Mode::Publish);
        let rids: Vec<Rid> = if publish {
            m.rids().into_iter().filter(|r| r.direction == RidDirection::Send).collect()
        } else {
            Vec::new()
        };
        let simulcast = m.simulcast().filter(|s| publish && !s.send.is_empty() && !rids.is_empty());
        let media = NegotiatedMedia {
            mid: mid.to_string(),
            kind: m.kind.clone(),
            direction,
            codec: chosen.codec,
            payload_type: chosen.rtpmap.pt,
            clock_rate: chosen.rtpmap.clock_rate,
            rtx_payload_type: chosen.rtx.as_ref().map(|r| r.0.pt),
            red_payload_type: if send.is_some() { chosen.red.as_ref().map(|r| r.0.pt) } else { None },
            feedback: Feedback::from_lines(&chosen.feedback),
            remote_ssrcs: remote_ssrcs(m),
            rids: rids.iter().map(|r| r.id.clone()).collect(),
            send,
        };
        // The router reads the Dependency Descriptor of what it receives and
        // forwards the publisher's to a subscriber that offered it, with
        // the two-byte header form a descriptor with its template structure
        // needs (over 16 bytes): without `extmap-allow-mixed` it is not taken.
        let mut exts = extensions(offer, m);
        if !publish && !allow_mixed {
            exts.retain(|(_, uri)| *uri != super::negotiate::DEPENDENCY_DESCRIPTOR);
        }
        accepted.push(Accepted { index, exts, chosen, media, rids, simulcast });
    }
    let transport = transport_of.ok_or(AnswerError::NoMedia)?;
    if bundle.is_none() && accepted.len() > 1 {
        return Err(AnswerError::NoBundle);
    }
    if matches!(cfg.mode, Mode::Publish) && accepted.iter().all(|a| a.media.direction == Direction::Inactive) {
        return Err(AnswerError::NothingToReceive);
    }
    let mut extensions = merge_extensions(&accepted)?;
    extensions.allow_mixed = allow_mixed;
    let rtcp_rsize = accepted.iter().all(|a| offer.media[a.index].rtcp_rsize());
    let sdp = write_answer(offer, cfg, &accepted, bundle.is_some(), allow_mixed);
    let negotiated = Negotiated {
        remote_ufrag: transport.ufrag,
        remote_pwd: transport.pwd,
        remote_fingerprint: (transport.fingerprint.algorithm, transport.fingerprint.bytes),
        media: accepted.into_iter().map(|a| a.media).collect(),
        extensions,
        rtcp_rsize,
    };
    Ok(Answer { sdp, negotiated })
}

fn merge_extensions(accepted: &[Accepted]) -> Result<Extensions, AnswerError> {
    let mut ext = Extensions::default();
    let mut by_id: Vec<(u8, &str)> = Vec::new();
    for (id, uri) in accepted.iter().flat_map(|a| a.exts.iter().copied()) {
        if let Some((_, other)) = by_id.iter().find(|(i, u)| *i == id && *u != uri) {
            return Err(AnswerError::ExtensionConflict(format!("id {id} is both {other} and {uri}")));
        }
        by_id.push((id, uri));
        if let Some(slot) = ext.slot(uri) {
            match *slot {
                Some(prev) if prev != id => {
                    return Err(AnswerError::ExtensionConflict(format!("{uri} has ids {prev} and {id}")));
                }
                _ => *slot = Some(id),
            }
        }
    }
    Ok(ext)
}

fn session_id(ufrag: &str) -> u64 {
    // FNV-1a: stable, and below 2^62 as JSEP asks.
    ufrag.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)) >> 2
}

fn connection_for(addr: Option<&SocketAddr>) -> Connection {
    let (t, a) = match addr {
        Some(SocketAddr::V6(a)) => ("IP6", a.ip().to_string()),
        Some(SocketAddr::V4(a)) => ("IP4", a.ip().to_string()),
        None => ("IP4", "0.0.0.0".to_string()),
    };
    Connection { net_type: "IN".into(), addr_type: t.into(), address: a }
}

fn write_answer(
    offer: &SessionDescription,
    cfg: &AnswerConfig,
    accepted: &[Accepted],
    bundle: bool,
    allow_mixed: bool,
) -> SessionDescription {
    let mut sdp = SessionDescription {
        version: 0,
        origin: Origin { session_id: session_id(&cfg.ice_ufrag), session_version: 1, ..Origin::default() },
        session_name: "-".into(),
        timing: Timing::default(),
        ..SessionDescription::default()
    };
    sdp.attributes.push(Attribute::flag("ice-lite"));
    if bundle {
        let mids = accepted.iter().map(|a| a.media.mid.clone()).collect();
        sdp.attributes.push(Attribute::new("group", Group { semantics: "BUNDLE".into(), mids }));
    }
    if allow_mixed {
        sdp.attributes.push(Attribute::flag("extmap-allow-mixed"));
    }
    let candidates: Vec<Candidate> = cfg
        .candidates
        .iter()
        .enumerate()
        .map(|(i, a)| Candidate::host_udp(&(i + 1).to_string(), *a, u16::MAX.saturating_sub(i as u16)))
        .collect();
    for (index, m) in offer.media.iter().enumerate() {
        let section = match accepted.iter().find(|a| a.index == index) {
            Some(a) => accepted_section(m, a, cfg, &candidates),
            None => MediaDescription {
                kind: m.kind.clone(),
                port: 0,
                port_count: None,
                protocol: m.protocol.clone(),
                formats: m.formats.clone(),
                connection: Some(connection_for(None)),
                bandwidth: Vec::new(),
                attributes: m.mid().map(|mid| Attribute::new("mid", mid)).into_iter().collect(),
                other: Vec::new(),
            },
        };
        sdp.media.push(section);
    }
    sdp
}

fn accepted_section(m: &MediaDescription, a: &Accepted, cfg: &AnswerConfig, cands: &[Candidate]) -> MediaDescription {
    let c = &a.chosen;
    let mut formats = vec![c.rtpmap.pt.to_string()];
    let mut at = vec![
        Attribute::new("mid", &a.media.mid),
        a.media.direction.to_attribute(),
        Attribute::new("ice-ufrag", &cfg.ice_ufrag),
        Attribute::new("ice-pwd", &cfg.ice_pwd),
        Attribute::new("fingerprint", Fingerprint::sha256(cfg.fingerprint_sha256)),
        Attribute::new("setup", Setup::Passive),
        Attribute::flag("rtcp-mux"),
    ];
    if m.rtcp_rsize() {
        at.push(Attribute::flag("rtcp-rsize"));
    }
    at.extend(a.exts.iter().map(|(id, uri)| Attribute::new("extmap", format!("{id} {uri}"))));
    if let Some(t) = &a.media.send {
        at.push(Attribute::new("msid", Msid { stream_id: t.stream_id.clone(), track_id: Some(t.track_id.clone()) }));
    }
    at.push(Attribute::new("rtpmap", &c.rtpmap));
    at.extend(c.feedback.iter().map(|f| Attribute::new("rtcp-fb", f)));
    at.extend(c.fmtp.iter().map(|f| Attribute::new("fmtp", f)));
    // RTX, and RED where the router sends audio (after the codec: a browser
    // sends the first one it knows, and publishers' RED is not read).
    let red = c.red.as_ref().filter(|_| a.media.red_payload_type.is_some());
    for (map, fmtp) in c.rtx.iter().chain(red) {
        formats.push(map.pt.to_string());
        at.push(Attribute::new("rtpmap", map));
        at.extend(fmtp.iter().map(|f| Attribute::new("fmtp", f)));
    }
    for r in &a.rids {
        at.push(Attribute::new("rid", Rid { id: r.id.clone(), direction: RidDirection::Recv, restrictions: None }));
    }
    if let Some(s) = &a.simulcast {
        at.push(Attribute::new("simulcast", Simulcast { send: Vec::new(), recv: s.send.clone() }));
    }
    if let Some(t) = &a.media.send {
        let msid = format!("{} {}", t.stream_id, t.track_id);
        // SSRC 0: not known yet (the receiver demultiplexes by `mid`).
        let ssrcs: Vec<u32> = std::iter::once(t.ssrc).chain(t.rtx_ssrc).filter(|s| *s != 0).collect();
        if ssrcs.len() == 2 {
            at.push(Attribute::new("ssrc-group", SsrcGroup { semantics: "FID".into(), ssrcs: ssrcs.clone() }));
        }
        for s in ssrcs {
            for (attribute, value) in [("cname", &t.cname), ("msid", &msid)] {
                let v = SsrcAttr { ssrc: s, attribute: attribute.into(), value: Some(value.clone()) };
                at.push(Attribute::new("ssrc", v));
            }
        }
    }
    at.extend(cands.iter().map(|c| Attribute::new("candidate", c)));
    at.push(Attribute::flag("end-of-candidates"));
    MediaDescription {
        kind: m.kind.clone(),
        port: cfg.candidates.first().map_or(9, |c| c.port()),
        port_count: None,
        protocol: m.protocol.clone(),
        formats,
        connection: Some(connection_for(cfg.candidates.first())),
        bandwidth: Vec::new(),
        attributes: at,
        other: Vec::new(),
    }
}
