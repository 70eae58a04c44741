//! The offer a browser would send (built on the `corecast_proto::sdp`
//! model, not from a text template) and what the client reads back from the
//! router's answer.
//!
//! The offer: one BUNDLE group of an audio (Opus 111) and a video (AV1 45)
//! m-line, `rtcp-mux`, `rtcp-rsize`, one ICE ufrag/pwd, the SHA-256
//! fingerprint of the client's DTLS certificate, `setup:actpass`, the `mid`,
//! audio-level and transport-cc header extensions, and either `sendonly`
//! with `a=msid` and `a=ssrc` lines (WHIP) or `recvonly` (WHEP).

use std::net::SocketAddr;

use corecast_proto::sdp::{
    Attribute, Attributes, Connection, Direction, ExtMap, Fingerprint, Fmtp, Group, MediaDescription, MediaKind, Msid,
    Origin, RtcpFb, RtcpFbPt, RtpMap, SessionDescription, Setup, SsrcAttr, Timing,
};

/// Opus's payload type in the offer.
pub const OPUS_PT: u8 = 111;
/// AV1's payload type in the offer (the native client's number for AV1).
pub const AV1_PT: u8 = 45;
/// Header extension ids offered (one id space for the BUNDLE group).
pub const EXT_AUDIO_LEVEL: u16 = 1;
/// Transport-wide sequence numbers.
pub const EXT_TRANSPORT_CC: u16 = 3;
/// `sdes:mid`.
pub const EXT_MID: u16 = 4;

const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
const TRANSPORT_CC_URI: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// What to offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferParams {
    /// The client's ICE username fragment.
    pub ice_ufrag: String,
    /// The client's ICE password.
    pub ice_pwd: String,
    /// SHA-256 of the client's DTLS certificate.
    pub fingerprint: [u8; 32],
    /// `Some((audio SSRC, video SSRC))`: publish (`sendonly`, WHIP); `None`:
    /// receive (`recvonly`, WHEP).
    pub publish: Option<(u32, u32)>,
    /// RTCP CNAME and MediaStream id of the published tracks.
    pub cname: String,
}

/// Builds the offer.
pub fn offer(p: &OfferParams) -> SessionDescription {
    let mut sdp = SessionDescription {
        origin: Origin { session_id: u64::from(rand::random::<u32>()), session_version: 2, ..Origin::default() },
        session_name: "-".into(),
        timing: Timing::default(),
        ..SessionDescription::default()
    };
    sdp.attributes
        .push(Attribute::new("group", Group { semantics: "BUNDLE".into(), mids: vec!["0".into(), "1".into()] }));
    sdp.attributes.push(Attribute::flag("extmap-allow-mixed"));
    let stream = format!("{}-stream", p.cname);
    sdp.attributes.push(Attribute::new("msid-semantic", format!(" WMS {stream}")));
    let lines = [
        (
            MediaKind::Audio,
            "0",
            OPUS_PT,
            RtpMap { pt: OPUS_PT, codec: "opus".into(), clock_rate: 48_000, channels: Some(2) },
        ),
        (MediaKind::Video, "1", AV1_PT, RtpMap { pt: AV1_PT, codec: "AV1".into(), clock_rate: 90_000, channels: None }),
    ];
    for (i, (kind, mid, pt, rtpmap)) in lines.into_iter().enumerate() {
        let mut m = MediaDescription {
            kind: kind.clone(),
            port: 9,
            port_count: None,
            protocol: "UDP/TLS/RTP/SAVPF".into(),
            formats: vec![pt.to_string()],
            connection: Some(Connection { net_type: "IN".into(), addr_type: "IP4".into(), address: "0.0.0.0".into() }),
            bandwidth: Vec::new(),
            attributes: Vec::new(),
            other: Vec::new(),
        };
        let a = &mut m.attributes;
        a.push(Attribute::new("rtcp", "9 IN IP4 0.0.0.0"));
        a.push(Attribute::new("ice-ufrag", &p.ice_ufrag));
        a.push(Attribute::new("ice-pwd", &p.ice_pwd));
        a.push(Attribute::new("ice-options", "trickle"));
        a.push(Attribute::new("fingerprint", Fingerprint::sha256(p.fingerprint)));
        a.push(Attribute::new("setup", Setup::ActPass));
        a.push(Attribute::new("mid", mid));
        let ext = |id: u16, uri: &str| {
            Attribute::new("extmap", ExtMap { id, direction: None, uri: uri.into(), attributes: None })
        };
        if kind == MediaKind::Audio {
            a.push(ext(EXT_AUDIO_LEVEL, AUDIO_LEVEL_URI));
        }
        a.push(ext(EXT_TRANSPORT_CC, TRANSPORT_CC_URI));
        a.push(ext(EXT_MID, MID_URI));
        let direction = if p.publish.is_some() { Direction::SendOnly } else { Direction::RecvOnly };
        a.push(direction.to_attribute());
        let track = format!("{}-{}", p.cname, if i == 0 { "audio" } else { "video" });
        if p.publish.is_some() {
            a.push(Attribute::new("msid", Msid { stream_id: stream.clone(), track_id: Some(track.clone()) }));
        }
        a.push(Attribute::flag("rtcp-mux"));
        a.push(Attribute::flag("rtcp-rsize"));
        a.push(Attribute::new("rtpmap", rtpmap));
        let fb = |t: &str, s: Option<&str>| {
            Attribute::new(
                "rtcp-fb",
                RtcpFb { pt: RtcpFbPt::Pt(pt), fb_type: t.into(), subtype: s.map(str::to_string) },
            )
        };
        a.push(fb("transport-cc", None));
        if kind == MediaKind::Audio {
            a.push(Attribute::new("fmtp", Fmtp { pt, params: "minptime=10;useinbandfec=1".into() }));
        } else {
            for (t, s) in [("goog-remb", None), ("ccm", Some("fir")), ("nack", None), ("nack", Some("pli"))] {
                a.push(fb(t, s));
            }
            a.push(Attribute::new("fmtp", Fmtp { pt, params: "level-idx=5;profile=0;tier=0".into() }));
        }
        if let Some((audio, video)) = p.publish {
            let ssrc = if i == 0 { audio } else { video };
            a.push(Attribute::new("ssrc", SsrcAttr { ssrc, attribute: "cname".into(), value: Some(p.cname.clone()) }));
            a.push(Attribute::new(
                "ssrc",
                SsrcAttr { ssrc, attribute: "msid".into(), value: Some(format!("{stream} {track}")) },
            ));
        }
        sdp.media.push(m);
    }
    sdp
}

/// What the client needs from the router's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteParams {
    /// The router's ICE ufrag.
    pub ice_ufrag: String,
    /// The router's ICE password.
    pub ice_pwd: String,
    /// Where to send checks and media: the answer's first UDP candidate.
    pub candidate: SocketAddr,
    /// SHA-256 of the router's DTLS certificate.
    pub fingerprint: Vec<u8>,
    /// `(mid, payload type)` of each accepted m-line.
    pub media: Vec<(String, MediaKind, u8)>,
}

/// Why an answer is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// It does not parse.
    #[error("the answer does not parse: {0}")]
    Malformed(String),
    /// It lacks something the client needs.
    #[error("the answer has no {0}")]
    Missing(&'static str),
    /// The router must be the DTLS server.
    #[error("the answer's a=setup is {0}, not passive")]
    Setup(String),
}

/// Reads the router's answer.
pub fn read_answer(text: &str) -> Result<RemoteParams, AnswerError> {
    let sdp = SessionDescription::parse(text).map_err(|e| AnswerError::Malformed(e.to_string()))?;
    let m = sdp.media.iter().find(|m| m.port != 0).ok_or(AnswerError::Missing("accepted m-line"))?;
    let ice_ufrag = sdp.media_ice_ufrag(m).ok_or(AnswerError::Missing("a=ice-ufrag"))?.to_string();
    let ice_pwd = sdp.media_ice_pwd(m).ok_or(AnswerError::Missing("a=ice-pwd"))?.to_string();
    let fingerprint = sdp
        .media_fingerprints(m)
        .into_iter()
        .find(|f| f.algorithm == "sha-256")
        .ok_or(AnswerError::Missing("a=fingerprint:sha-256"))?
        .bytes;
    match sdp.media_setup(m) {
        Some(Setup::Passive) => {}
        Some(s) => return Err(AnswerError::Setup(s.to_string())),
        None => return Err(AnswerError::Missing("a=setup")),
    }
    let candidate = sdp
        .media
        .iter()
        .flat_map(|m| m.candidates())
        .chain(sdp.candidates())
        .filter(|c| c.transport.eq_ignore_ascii_case("udp"))
        .find_map(|c| c.socket_addr())
        .ok_or(AnswerError::Missing("UDP candidate"))?;
    let media = sdp
        .media
        .iter()
        .filter(|m| m.port != 0)
        .filter_map(|m| {
            let pt = m.formats.first()?.parse().ok()?;
            Some((m.mid()?.to_string(), m.kind.clone(), pt))
        })
        .collect();
    Ok(RemoteParams { ice_ufrag, ice_pwd, candidate, fingerprint, media })
}

#[cfg(test)]
mod tests {
    use corecast_proto::sdp::{answer, AnswerConfig, Mode};

    use super::*;

    fn params(publish: bool) -> OfferParams {
        OfferParams {
            ice_ufrag: "cli1".into(),
            ice_pwd: "clientpasswordclientpassword".into(),
            fingerprint: [9; 32],
            publish: publish.then_some((0xA0, 0xB0)),
            cname: "corecast-client".into(),
        }
    }

    #[test]
    fn the_router_accepts_the_offer_and_the_client_reads_its_answer() {
        let o = offer(&params(true));
        let text = o.to_sdp();
        let parsed = SessionDescription::parse(&text).unwrap();
        assert_eq!(parsed, o, "the offer round-trips through text");
        let cfg = AnswerConfig::new(
            "rtr1",
            "routerpasswordrouterpassword",
            [7; 32],
            vec!["127.0.0.1:4000".parse().unwrap()],
            Mode::Publish,
        );
        let a = answer(&parsed, &cfg).unwrap();
        let n = &a.negotiated;
        assert_eq!((n.remote_ufrag.as_str(), n.remote_fingerprint.1.as_slice()), ("cli1", &[9u8; 32][..]));
        assert_eq!(n.media.len(), 2);
        assert_eq!(n.media[1].payload_type, AV1_PT);
        assert_eq!(n.media[0].remote_ssrcs[0].ssrc, 0xA0);
        assert_eq!((n.extensions.mid, n.extensions.transport_cc), (Some(EXT_MID as u8), Some(EXT_TRANSPORT_CC as u8)));
        let r = read_answer(&a.sdp.to_sdp()).unwrap();
        assert_eq!(r.ice_ufrag, "rtr1");
        assert_eq!(r.fingerprint, vec![7; 32]);
        assert_eq!(r.candidate, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(r.media, vec![("0".into(), MediaKind::Audio, OPUS_PT), ("1".into(), MediaKind::Video, AV1_PT)]);
    }

    #[test]
    fn a_receive_offer_is_recvonly_without_ssrcs() {
        let o = offer(&params(false));
        assert!(o.media.iter().all(|m| m.direction() == Some(Direction::RecvOnly) && m.ssrcs().is_empty()));
        assert_eq!(o.bundle(), Some(vec!["0".to_string(), "1".to_string()]));
    }
}
