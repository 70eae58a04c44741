//! What the answer takes from one offered media section: the codec (and its
//! RTX), the RTCP feedback, the header extensions and the offerer's SSRCs.

use super::answer::{Codec, Extensions, Feedback, RemoteSsrc, VideoCodec};
use super::attrs::{Fmtp, RtcpFb, RtcpFbPt, RtpMap};
use super::model::{Attributes, MediaDescription, MediaKind, SessionDescription};

/// The header extensions the router reads or writes, by URI.
pub(crate) const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
pub(crate) const RID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
pub(crate) const REPAIRED_RID: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
pub(crate) const AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
pub(crate) const TRANSPORT_CC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
pub(crate) const ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
pub(crate) const DEPENDENCY_DESCRIPTOR: &str =
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";

/// Every supported URI, in the order the answer writes them.
pub(crate) const SUPPORTED_EXTENSIONS: [&str; 7] =
    [MID, RID, REPAIRED_RID, AUDIO_LEVEL, TRANSPORT_CC, ABS_SEND_TIME, DEPENDENCY_DESCRIPTOR];

impl Extensions {
    /// The id slot for `uri`, if the router supports it.
    pub(crate) fn slot(&mut self, uri: &str) -> Option<&mut Option<u8>> {
        Some(match uri {
            MID => &mut self.mid,
            RID => &mut self.rid,
            REPAIRED_RID => &mut self.repaired_rid,
            AUDIO_LEVEL => &mut self.audio_level,
            TRANSPORT_CC => &mut self.transport_cc,
            ABS_SEND_TIME => &mut self.abs_send_time,
            DEPENDENCY_DESCRIPTOR => &mut self.dependency_descriptor,
            _ => return None,
        })
    }
}

/// The payload format chosen for a media section.
#[derive(Debug, Clone)]
pub(crate) struct Chosen {
    pub codec: Codec,
    pub rtpmap: RtpMap,
    pub fmtp: Option<Fmtp>,
    pub rtx: Option<(RtpMap, Option<Fmtp>)>,
    /// Audio: RED (RFC 2198) carrying the chosen Opus (`red/48000/2`,
    /// `a=fmtp:<red> <opus>/<opus>`), when offered.
    pub red: Option<(RtpMap, Option<Fmtp>)>,
    /// The accepted feedback, as the answer writes it (offer order).
    pub feedback: Vec<RtcpFb>,
}

/// The offered payload types of `m` that are listed on its `m=` line.
fn offered(m: &MediaDescription) -> Vec<RtpMap> {
    let mut listed = [false; 128];
    for pt in m.formats.iter().filter_map(|f| f.parse::<u8>().ok()) {
        if let Some(l) = listed.get_mut(usize::from(pt)) {
            *l = true;
        }
    }
    m.rtpmaps().into_iter().filter(|r| listed.get(usize::from(r.pt)) == Some(&true)).collect()
}

fn h264_rank(f: Option<&Fmtp>) -> u8 {
    let pm1 = f.and_then(|f| f.get("packetization-mode")) == Some("1");
    let baseline = f.and_then(|f| f.get("profile-level-id")).is_some_and(|p| p.eq_ignore_ascii_case("42e01f"));
    match (pm1, baseline) {
        (true, true) => 0,
        (true, false) => 1,
        _ => 2,
    }
}

/// Picks the codec for `m` (Opus for audio; the first of `prefs` offered for
/// video), its RTX and its feedback. `None`: nothing in common.
pub(crate) fn choose(m: &MediaDescription, prefs: &[VideoCodec]) -> Option<Chosen> {
    let maps = offered(m);
    let fmtps = m.fmtps();
    let fmtp_of = |pt: u8| fmtps.iter().find(|f| f.pt == pt).cloned();
    let (codec, rtpmap) = match m.kind {
        MediaKind::Audio => {
            let r = maps
                .iter()
                .find(|r| r.codec.eq_ignore_ascii_case("opus") && r.clock_rate == 48_000 && r.channels == Some(2))?;
            (Codec::Opus, r.clone())
        }
        MediaKind::Video => prefs.iter().find_map(|p| {
            let name = match p {
                VideoCodec::Av1 => "AV1",
                VideoCodec::Vp8 => "VP8",
                VideoCodec::H264 => "H264",
            };
            let cands = maps.iter().filter(|r| r.codec.eq_ignore_ascii_case(name) && r.clock_rate == 90_000);
            let r = cands.min_by_key(|r| if *p == VideoCodec::H264 { h264_rank(fmtp_of(r.pt).as_ref()) } else { 0 })?;
            let codec = match p {
                VideoCodec::Av1 => Codec::Av1,
                VideoCodec::Vp8 => Codec::Vp8,
                VideoCodec::H264 => Codec::H264,
            };
            Some((codec, r.clone()))
        })?,
        _ => return None,
    };
    let pt = rtpmap.pt;
    let rtx = maps
        .iter()
        .find(|r| {
            r.codec.eq_ignore_ascii_case("rtx")
                && r.clock_rate == rtpmap.clock_rate
                && fmtp_of(r.pt).and_then(|f| f.get("apt").map(|a| a == pt.to_string())).unwrap_or(false)
        })
        .map(|r| (r.clone(), fmtp_of(r.pt)));
    let red = (codec == Codec::Opus)
        .then(|| {
            maps.iter().find(|r| {
                let opus_only = format!("{pt}/{pt}");
                r.codec.eq_ignore_ascii_case("red")
                    && r.clock_rate == 48_000
                    && fmtp_of(r.pt).is_some_and(|f| f.params.trim() == opus_only)
            })
        })
        .flatten()
        .map(|r| (r.clone(), fmtp_of(r.pt)));
    let mut feedback: Vec<RtcpFb> = Vec::new();
    for fb in m.rtcp_fbs() {
        if fb.pt != RtcpFbPt::Pt(pt) && fb.pt != RtcpFbPt::All {
            continue;
        }
        let ok = matches!(
            (fb.fb_type.as_str(), fb.subtype.as_deref()),
            ("nack", None)
                | ("nack", Some("pli"))
                | ("ccm", Some("fir"))
                | ("transport-cc", None)
                | ("goog-remb", None)
        );
        let fb = RtcpFb { pt: RtcpFbPt::Pt(pt), ..fb };
        if ok && !feedback.contains(&fb) {
            feedback.push(fb);
        }
    }
    Some(Chosen { codec, fmtp: fmtp_of(pt), rtpmap, rtx, red, feedback })
}

impl Feedback {
    /// From the accepted `a=rtcp-fb` lines.
    pub(crate) fn from_lines(lines: &[RtcpFb]) -> Feedback {
        let has = |t: &str, s: Option<&str>| lines.iter().any(|f| f.fb_type == t && f.subtype.as_deref() == s);
        Feedback {
            nack: has("nack", None),
            pli: has("nack", Some("pli")),
            fir: has("ccm", Some("fir")),
            transport_cc: has("transport-cc", None),
            remb: has("goog-remb", None),
        }
    }
}

/// The supported extensions `m` offers, as `(id, uri)` (ids 1-255).
pub(crate) fn extensions(offer: &SessionDescription, m: &MediaDescription) -> Vec<(u8, &'static str)> {
    let maps = offer.media_extmaps(m);
    SUPPORTED_EXTENSIONS
        .iter()
        .filter_map(|uri| {
            let e = maps.iter().find(|e| e.uri == *uri)?;
            Some((u8::try_from(e.id).ok()?, *uri))
        })
        .collect()
}

/// The offerer's SSRCs in `m`: the primaries in order of appearance, each
/// with its RTX SSRC (from `a=ssrc-group:FID`) and cname.
pub(crate) fn remote_ssrcs(m: &MediaDescription) -> Vec<RemoteSsrc> {
    let attrs = m.ssrcs();
    let fid: Vec<(u32, u32)> = m
        .ssrc_groups()
        .into_iter()
        .filter(|g| g.semantics == "FID" && g.ssrcs.len() == 2)
        .map(|g| (g.ssrcs[0], g.ssrcs[1]))
        .collect();
    let mut order: Vec<u32> = Vec::new();
    for s in attrs.iter().map(|a| a.ssrc).chain(fid.iter().map(|f| f.0)) {
        if !order.contains(&s) && !fid.iter().any(|f| f.1 == s) {
            order.push(s);
        }
    }
    order
        .into_iter()
        .map(|ssrc| RemoteSsrc {
            ssrc,
            rtx: fid.iter().find(|f| f.0 == ssrc).map(|f| f.1),
            cname: attrs.iter().find(|a| a.ssrc == ssrc && a.attribute == "cname").and_then(|a| a.value.clone()),
        })
        .collect()
}
