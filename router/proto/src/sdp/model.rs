//! The parsed SDP: session and media sections, and typed accessors for the
//! attributes WebRTC uses.

use super::attrs::{
    Direction, ExtMap, Fingerprint, Fmtp, Group, Msid, Rid, RtcpFb, RtpMap, Setup, Simulcast, SsrcAttr, SsrcGroup,
};
use super::candidate::Candidate;

/// A session description: the session section and its media sections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription {
    /// `v=` (always 0).
    pub version: u32,
    /// `o=`.
    pub origin: Origin,
    /// `s=`.
    pub session_name: String,
    /// `t=` (the first one).
    pub timing: Timing,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// Session-level `b=` lines.
    pub bandwidth: Vec<Bandwidth>,
    /// Session-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// Other session-level lines (`i=`, `u=`, `e=`, `p=`, `r=`, `z=`, `k=`,
    /// unknown letters, further `t=`), kept in order and written after `s=`.
    pub other: Vec<(char, String)>,
    /// The `m=` sections, in order.
    pub media: Vec<MediaDescription>,
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username (`-` when none).
    pub username: String,
    /// Session id.
    pub session_id: u64,
    /// Session version.
    pub session_version: u64,
    /// Network type (`IN`).
    pub net_type: String,
    /// Address type (`IP4`, `IP6`).
    pub addr_type: String,
    /// Unicast address.
    pub address: String,
}

impl Default for Origin {
    fn default() -> Origin {
        Origin {
            username: "-".into(),
            session_id: 0,
            session_version: 0,
            net_type: "IN".into(),
            addr_type: "IP4".into(),
            address: "127.0.0.1".into(),
        }
    }
}

/// `t=<start> <stop>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// Start time (0: unbounded).
    pub start: u64,
    /// Stop time (0: unbounded).
    pub stop: u64,
}

/// `c=<nettype> <addrtype> <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Network type (`IN`).
    pub net_type: String,
    /// Address type (`IP4`, `IP6`).
    pub addr_type: String,
    /// Address (with `/ttl` or `/n` suffixes kept as written).
    pub address: String,
}

/// `b=<bwtype>:<bandwidth>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// Type (`AS`, `TIAS`, `CT`, ...).
    pub bw_type: String,
    /// Value (kbit/s for `AS`, bit/s for `TIAS`).
    pub bandwidth: u64,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `application`, ...
    pub kind: MediaKind,
    /// Port (0: rejected or bundle-only).
    pub port: u16,
    /// The `/<n>` number of ports, when written.
    pub port_count: Option<u16>,
    /// Transport protocol (`UDP/TLS/RTP/SAVPF`, `UDP/DTLS/SCTP`, ...).
    pub protocol: String,
    /// Formats (RTP payload types as text, or `webrtc-datachannel`).
    pub formats: Vec<String>,
    /// Media-level `c=`.
    pub connection: Option<Connection>,
    /// Media-level `b=` lines.
    pub bandwidth: Vec<Bandwidth>,
    /// Media-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// Other media-level lines (`i=`, `k=`, unknown letters), kept in order
    /// and written after `m=`.
    pub other: Vec<(char, String)>,
}

/// The media type of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `application` (data channels).
    Application,
    /// Anything else, as written.
    Other(String),
}

impl MediaKind {
    /// From the `m=` token.
    pub fn from_token(s: &str) -> MediaKind {
        match s {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "application" => MediaKind::Application,
            other => MediaKind::Other(other.to_string()),
        }
    }
    /// The `m=` token.
    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Application => "application",
            MediaKind::Other(s) => s,
        }
    }
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `a=<name>` or `a=<name>:<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The name (before the first `:`).
    pub name: String,
    /// The value (after the first `:`), `None` for a property attribute.
    pub value: Option<String>,
}

impl Attribute {
    /// A property attribute (`a=rtcp-mux`).
    pub fn flag(name: &str) -> Attribute {
        Attribute { name: name.to_string(), value: None }
    }
    /// A value attribute (`a=mid:0`).
    pub fn new(name: &str, value: impl std::fmt::Display) -> Attribute {
        Attribute { name: name.to_string(), value: Some(value.to_string()) }
    }
}

/// Typed access to a section's attributes; implemented for the session
/// section, for media sections and for plain attribute slices.
///
/// Single-valued accessors give the first attribute of that name; list
/// accessors skip values that do not parse (the raw attribute stays in
/// [`Attributes::attributes`]). Session-level values that WebRTC lets stand
/// for every media section (ICE credentials, fingerprint, setup) are merged
/// by [`SessionDescription::media_ice_ufrag`] and its siblings.
pub trait Attributes {
    /// The attributes, in order.
    fn attributes(&self) -> &[Attribute];

    /// The first attribute named `name`.
    fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes().iter().find(|a| a.name == name)
    }
    /// Whether an attribute named `name` is present.
    fn has_attribute(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }
    /// The value of the first attribute named `name` (`""` for a property attribute).
    fn attribute_value(&self, name: &str) -> Option<&str> {
        self.attribute(name).map(|a| a.value.as_deref().unwrap_or(""))
    }
    /// The values of every attribute named `name`.
    fn attribute_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes().iter().filter(move |a| a.name == name).map(|a| a.value.as_deref().unwrap_or(""))
    }
    /// `a=mid`.
    fn mid(&self) -> Option<&str> {
        self.attribute_value("mid")
    }
    /// The first of `a=sendrecv`/`sendonly`/`recvonly`/`inactive`.
    fn direction(&self) -> Option<Direction> {
        self.attributes().iter().find_map(|a| if a.value.is_none() { Direction::from_name(&a.name) } else { None })
    }
    /// `a=ice-ufrag`.
    fn ice_ufrag(&self) -> Option<&str> {
        self.attribute_value("ice-ufrag")
    }
    /// `a=ice-pwd`.
    fn ice_pwd(&self) -> Option<&str> {
        self.attribute_value("ice-pwd")
    }
    /// The `a=ice-options` tokens (`trickle`, `ice2`, ...).
    fn ice_options(&self) -> Vec<&str> {
        self.attribute_values("ice-options").flat_map(|v| v.split_ascii_whitespace()).collect()
    }
    /// `a=ice-lite`.
    fn ice_lite(&self) -> bool {
        self.has_attribute("ice-lite")
    }
    /// The `a=fingerprint` values that parse.
    fn fingerprints(&self) -> Vec<Fingerprint> {
        self.attribute_values("fingerprint").filter_map(|v| v.parse().ok()).collect()
    }
    /// `a=setup`, if it parses.
    fn setup(&self) -> Option<Setup> {
        self.attribute_value("setup").and_then(|v| v.parse().ok())
    }
    /// `a=rtcp-mux`.
    fn rtcp_mux(&self) -> bool {
        self.has_attribute("rtcp-mux")
    }
    /// `a=rtcp-rsize`.
    fn rtcp_rsize(&self) -> bool {
        self.has_attribute("rtcp-rsize")
    }
    /// The `a=rtpmap` values that parse.
    fn rtpmaps(&self) -> Vec<RtpMap> {
        self.attribute_values("rtpmap").filter_map(|v| v.parse().ok()).collect()
    }
    /// The `a=fmtp` values that parse.
    fn fmtps(&self) -> Vec<Fmtp> {
        self.attribute_values("fmtp").filter_map(|v| v.parse().ok()).collect()
    }
    /// The `a=fmtp` for payload type `pt`.
    fn fmtp(&self, pt: u8) -> Option<Fmtp> {
        self.fmtps().into_iter().find(|f| f.pt == pt)
    }
    /// The `a=rtcp-fb` values that parse.
    fn rtcp_fbs(&self) -> Vec<RtcpFb> {
        self.attribute_values("rtcp-fb").filter_map(|v| v.parse().ok()).collect()
    }
    /// The `a=extmap` values that parse.
    fn extmaps(&self) -> Vec<ExtMap> {
        self.attribute_values("extmap").filter_map(|v| v.parse().ok()).collect()
    }
    /// The `a=ssrc` values that parse.
    fn ssrcs(&self) -> Vec<SsrcAttr> {
        self.attribute_values("ssrc").filter_map(|v| v.parse().ok()).collect()
    }
    /// The `a=ssrc-group` values that parse.
    fn ssrc_groups(&self) -> Vec<SsrcGroup> {
        self.attribute_values("ssrc-group").filter_map(|v| v.parse().ok()).collect()
    }
    /// The first `a=msid`, if it parses.
    fn msid(&self) -> Option<Msid> {
        self.attribute_value("msid").and_then(|v| v.parse().ok())
    }
    /// The `a=rid` values that parse.
    fn rids(&self) -> Vec<Rid> {
        self.attribute_values("rid").filter_map(|v| v.parse().ok()).collect()
    }
    /// `a=simulcast`, if it parses.
    fn simulcast(&self) -> Option<Simulcast> {
        self.attribute_value("simulcast").and_then(|v| v.parse().ok())
    }
    /// The `a=group` values that parse.
    fn groups(&self) -> Vec<Group> {
        self.attribute_values("group").filter_map(|v| v.parse().ok()).collect()
    }
    /// The mids of the first `a=group:BUNDLE`.
    fn bundle(&self) -> Option<Vec<String>> {
        self.groups().into_iter().find(|g| g.semantics == "BUNDLE").map(|g| g.mids)
    }
    /// The `a=candidate` values that parse.
    fn candidates(&self) -> Vec<Candidate> {
        self.attribute_values("candidate").filter_map(|v| v.parse().ok()).collect()
    }
    /// `a=end-of-candidates`.
    fn end_of_candidates(&self) -> bool {
        self.has_attribute("end-of-candidates")
    }
}

impl Attributes for [Attribute] {
    fn attributes(&self) -> &[Attribute] {
        self
    }
}

impl Attributes for SessionDescription {
    fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }
}

impl Attributes for MediaDescription {
    fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }
}

impl SessionDescription {
    /// `m`'s ICE ufrag: media-level, else session-level.
    pub fn media_ice_ufrag<'a>(&'a self, m: &'a MediaDescription) -> Option<&'a str> {
        m.ice_ufrag().or_else(|| self.ice_ufrag())
    }
    /// `m`'s ICE password: media-level, else session-level.
    pub fn media_ice_pwd<'a>(&'a self, m: &'a MediaDescription) -> Option<&'a str> {
        m.ice_pwd().or_else(|| self.ice_pwd())
    }
    /// `m`'s fingerprints: media-level, else session-level.
    pub fn media_fingerprints(&self, m: &MediaDescription) -> Vec<Fingerprint> {
        if m.has_attribute("fingerprint") {
            m.fingerprints()
        } else {
            self.fingerprints()
        }
    }
    /// `m`'s DTLS role: media-level, else session-level.
    pub fn media_setup(&self, m: &MediaDescription) -> Option<Setup> {
        if m.has_attribute("setup") {
            m.setup()
        } else {
            self.setup()
        }
    }
    /// `m`'s direction: media-level, else session-level, else `sendrecv`.
    pub fn media_direction(&self, m: &MediaDescription) -> Direction {
        m.direction().or_else(|| self.direction()).unwrap_or(Direction::SendRecv)
    }
    /// `m`'s extmaps: media-level and session-level.
    pub fn media_extmaps(&self, m: &MediaDescription) -> Vec<ExtMap> {
        let mut v = self.extmaps();
        v.extend(m.extmaps());
        v
    }
}
