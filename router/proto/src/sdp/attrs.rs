//! Typed attribute values: each parses from the text after `a=<name>:`
//! ([`std::str::FromStr`]) and writes it back ([`std::fmt::Display`]).

use std::fmt;
use std::str::FromStr;

use super::model::Attribute;
use super::SdpError;

fn num<T: FromStr>(name: &'static str, whole: &str, s: &str) -> Result<T, SdpError> {
    // `u8::from_str` takes a leading `+`; SDP numbers are plain digits.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SdpError::bad(name, whole));
    }
    s.parse().map_err(|_| SdpError::bad(name, whole))
}

fn token(name: &'static str, whole: &str, s: Option<&str>) -> Result<String, SdpError> {
    match s {
        Some(t) if !t.is_empty() => Ok(t.to_string()),
        _ => Err(SdpError::bad(name, whole)),
    }
}

/// Media direction (RFC 8866 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `sendrecv`.
    SendRecv,
    /// `sendonly`.
    SendOnly,
    /// `recvonly`.
    RecvOnly,
    /// `inactive`.
    Inactive,
}

impl Direction {
    /// From the attribute name.
    pub fn from_name(s: &str) -> Option<Direction> {
        match s {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
    /// Whether the side with this direction sends.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
    /// Whether the side with this direction receives.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
    /// The property attribute.
    pub fn to_attribute(self) -> Attribute {
        Attribute::flag(self.as_str())
    }
}

/// `a=setup` (RFC 4145, RFC 8842).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setup {
    /// `actpass`: the offerer lets the answerer choose.
    ActPass,
    /// `active`: opens the DTLS connection (DTLS client).
    Active,
    /// `passive`: waits for it (DTLS server).
    Passive,
    /// `holdconn`.
    HoldConn,
}

impl FromStr for Setup {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<Setup, SdpError> {
        match s {
            "actpass" => Ok(Setup::ActPass),
            "active" => Ok(Setup::Active),
            "passive" => Ok(Setup::Passive),
            "holdconn" => Ok(Setup::HoldConn),
            _ => Err(SdpError::bad("setup", s)),
        }
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setup::ActPass => "actpass",
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::HoldConn => "holdconn",
        })
    }
}

/// `a=fingerprint:<hash-func> <XX:XX:...>` (RFC 8122).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hash function, lower-cased (`sha-256`).
    pub algorithm: String,
    /// The digest.
    pub bytes: Vec<u8>,
}

impl Fingerprint {
    /// A SHA-256 fingerprint.
    pub fn sha256(digest: [u8; 32]) -> Fingerprint {
        Fingerprint { algorithm: "sha-256".into(), bytes: digest.to_vec() }
    }
}

impl FromStr for Fingerprint {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<Fingerprint, SdpError> {
        let mut it = s.split_ascii_whitespace();
        let algorithm = token("fingerprint", s, it.next())?.to_ascii_lowercase();
        let hex = token("fingerprint", s, it.next())?;
        if it.next().is_some() || hex.len() > 3 * 64 {
            return Err(SdpError::bad("fingerprint", s));
        }
        let mut bytes = Vec::new();
        for pair in hex.split(':') {
            if pair.len() != 2 {
                return Err(SdpError::bad("fingerprint", s));
            }
            bytes.push(u8::from_str_radix(pair, 16).map_err(|_| SdpError::bad("fingerprint", s))?);
        }
        Ok(Fingerprint { algorithm, bytes })
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.algorithm)?;
        for (i, b) in self.bytes.iter().enumerate() {
            write!(f, "{}{b:02X}", if i == 0 { ' ' } else { ':' })?;
        }
        Ok(())
    }
}

/// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written (`opus`, `VP8`, `rtx`).
    pub codec: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channels (audio), when written.
    pub channels: Option<u16>,
}

impl FromStr for RtpMap {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<RtpMap, SdpError> {
        let (pt, rest) = s.split_once(' ').ok_or_else(|| SdpError::bad("rtpmap", s))?;
        let pt: u8 = num("rtpmap", s, pt)?;
        let mut parts = rest.trim().split('/');
        let codec = token("rtpmap", s, parts.next())?;
        let clock_rate = num("rtpmap", s, parts.next().unwrap_or(""))?;
        let channels = parts.next().map(|c| num("rtpmap", s, c)).transpose()?;
        if pt > 127 || parts.next().is_some() || codec.contains(char::is_whitespace) {
            return Err(SdpError::bad("rtpmap", s));
        }
        Ok(RtpMap { pt, codec, clock_rate, channels })
    }
}

impl fmt::Display for RtpMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.pt, self.codec, self.clock_rate)?;
        if let Some(c) = self.channels {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

/// `a=fmtp:<pt> <params>`; `params` is kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// Payload type.
    pub pt: u8,
    /// The parameters (`minptime=10;useinbandfec=1`).
    pub params: String,
}

impl Fmtp {
    /// The `key=value` pairs of [`Fmtp::params`] (keys as written).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.split(';').filter_map(|p| {
            let p = p.trim();
            if p.is_empty() {
                None
            } else {
                Some(p.split_once('=').map_or((p, ""), |(k, v)| (k.trim(), v.trim())))
            }
        })
    }
    /// The value of parameter `key` (ASCII case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
    }
}

impl FromStr for Fmtp {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<Fmtp, SdpError> {
        let (pt, params) = s.split_once(' ').unwrap_or((s, ""));
        let pt: u8 = num("fmtp", s, pt)?;
        if pt > 127 {
            return Err(SdpError::bad("fmtp", s));
        }
        Ok(Fmtp { pt, params: params.trim().to_string() })
    }
}

impl fmt::Display for Fmtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.pt, self.params)
    }
}

/// The payload type an `a=rtcp-fb` applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RtcpFbPt {
    /// `*`: every payload type of the section.
    All,
    /// One payload type.
    Pt(u8),
}

/// `a=rtcp-fb:<pt|*> <type> [<subtype>]` (RFC 4585 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RtcpFb {
    /// Which payload type.
    pub pt: RtcpFbPt,
    /// `nack`, `ccm`, `transport-cc`, `goog-remb`, ...
    pub fb_type: String,
    /// `pli`, `fir`, ... (the rest of the line).
    pub subtype: Option<String>,
}

impl FromStr for RtcpFb {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<RtcpFb, SdpError> {
        let mut it = s.splitn(3, ' ');
        let pt = match it.next() {
            Some("*") => RtcpFbPt::All,
            Some(p) => RtcpFbPt::Pt(num("rtcp-fb", s, p)?),
            None => return Err(SdpError::bad("rtcp-fb", s)),
        };
        let fb_type = token("rtcp-fb", s, it.next())?;
        let subtype = it.next().map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        Ok(RtcpFb { pt, fb_type, subtype })
    }
}

impl fmt::Display for RtcpFb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pt {
            RtcpFbPt::All => f.write_str("*")?,
            RtcpFbPt::Pt(p) => write!(f, "{p}")?,
        }
        write!(f, " {}", self.fb_type)?;
        if let Some(st) = &self.subtype {
            write!(f, " {st}")?;
        }
        Ok(())
    }
}

/// `a=extmap:<id>[/<direction>] <uri> [<attributes>]` (RFC 8285 §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtMap {
    /// Local identifier (1-14 one-byte, 1-255 two-byte).
    pub id: u16,
    /// Direction, when written.
    pub direction: Option<Direction>,
    /// The extension's URI.
    pub uri: String,
    /// Extension attributes, when written.
    pub attributes: Option<String>,
}

impl FromStr for ExtMap {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<ExtMap, SdpError> {
        let mut it = s.splitn(3, ' ');
        let head = it.next().unwrap_or("");
        let (id, direction) = match head.split_once('/') {
            Some((id, d)) => (id, Some(Direction::from_name(d).ok_or_else(|| SdpError::bad("extmap", s))?)),
            None => (head, None),
        };
        let id: u16 = num("extmap", s, id)?;
        let uri = token("extmap", s, it.next())?;
        let attributes = it.next().map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        if id == 0 || id > 4095 {
            return Err(SdpError::bad("extmap", s));
        }
        Ok(ExtMap { id, direction, uri, attributes })
    }
}

impl fmt::Display for ExtMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)?;
        if let Some(d) = self.direction {
            write!(f, "/{}", d.as_str())?;
        }
        write!(f, " {}", self.uri)?;
        if let Some(a) = &self.attributes {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// `a=ssrc:<ssrc> <attribute>[:<value>]` (RFC 5576).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrcAttr {
    /// The SSRC.
    pub ssrc: u32,
    /// `cname`, `msid`, ...
    pub attribute: String,
    /// Its value.
    pub value: Option<String>,
}

impl FromStr for SsrcAttr {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<SsrcAttr, SdpError> {
        let (ssrc, rest) = s.split_once(' ').ok_or_else(|| SdpError::bad("ssrc", s))?;
        let ssrc = num("ssrc", s, ssrc)?;
        let (attribute, value) = match rest.split_once(':') {
            Some((a, v)) => (a, Some(v.to_string())),
            None => (rest, None),
        };
        Ok(SsrcAttr { ssrc, attribute: token("ssrc", s, Some(attribute))?, value })
    }
}

impl fmt::Display for SsrcAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.ssrc, self.attribute)?;
        if let Some(v) = &self.value {
            write!(f, ":{v}")?;
        }
        Ok(())
    }
}

/// `a=ssrc-group:<semantics> <ssrc>...` (RFC 5576 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrcGroup {
    /// `FID` (RTX), `SIM`, `FEC-FR`, ...
    pub semantics: String,
    /// The SSRCs, in order (for `FID`: primary, then retransmission).
    pub ssrcs: Vec<u32>,
}

impl FromStr for SsrcGroup {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<SsrcGroup, SdpError> {
        let mut it = s.split_ascii_whitespace();
        let semantics = token("ssrc-group", s, it.next())?;
        let ssrcs = it.map(|x| num("ssrc-group", s, x)).collect::<Result<Vec<u32>, _>>()?;
        Ok(SsrcGroup { semantics, ssrcs })
    }
}

impl fmt::Display for SsrcGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.semantics)?;
        for s in &self.ssrcs {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}

/// `a=msid:<stream id> [<track id>]` (RFC 8830).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msid {
    /// The MediaStream id (`-` for none).
    pub stream_id: String,
    /// The track id, when written.
    pub track_id: Option<String>,
}

impl FromStr for Msid {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<Msid, SdpError> {
        let mut it = s.split_ascii_whitespace();
        let stream_id = token("msid", s, it.next())?;
        let track_id = it.next().map(str::to_string);
        if it.next().is_some() {
            return Err(SdpError::bad("msid", s));
        }
        Ok(Msid { stream_id, track_id })
    }
}

impl fmt::Display for Msid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.stream_id)?;
        if let Some(t) = &self.track_id {
            write!(f, " {t}")?;
        }
        Ok(())
    }
}

/// The direction of an `a=rid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RidDirection {
    /// `send`.
    Send,
    /// `recv`.
    Recv,
}

/// `a=rid:<id> <send|recv> [<restrictions>]` (RFC 8851).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rid {
    /// The RTP stream id.
    pub id: String,
    /// Direction.
    pub direction: RidDirection,
    /// Restrictions (`pt=96;max-width=1280`), as written.
    pub restrictions: Option<String>,
}

impl FromStr for Rid {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<Rid, SdpError> {
        let mut it = s.splitn(3, ' ');
        let id = token("rid", s, it.next())?;
        let direction = match it.next() {
            Some("send") => RidDirection::Send,
            Some("recv") => RidDirection::Recv,
            _ => return Err(SdpError::bad("rid", s)),
        };
        let restrictions = it.next().map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        Ok(Rid { id, direction, restrictions })
    }
}

impl fmt::Display for Rid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = match self.direction {
            RidDirection::Send => "send",
            RidDirection::Recv => "recv",
        };
        write!(f, "{} {d}", self.id)?;
        if let Some(r) = &self.restrictions {
            write!(f, " {r}")?;
        }
        Ok(())
    }
}

/// `a=simulcast:[send <list>] [recv <list>]` (RFC 8853). A list is
/// `;`-separated streams, each `,`-separated alternatives; a `~` prefix
/// (paused) is kept on the id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Simulcast {
    /// The streams the writer sends.
    pub send: Vec<Vec<String>>,
    /// The streams the writer receives.
    pub recv: Vec<Vec<String>>,
}

fn sim_list(name: &'static str, whole: &str, s: &str) -> Result<Vec<Vec<String>>, SdpError> {
    s.split(';')
        .map(|alts| {
            let v: Vec<String> = alts.split(',').map(str::to_string).collect();
            if v.iter().any(|r| r.trim_start_matches('~').is_empty()) {
                Err(SdpError::bad(name, whole))
            } else {
                Ok(v)
            }
        })
        .collect()
}

impl FromStr for Simulcast {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<Simulcast, SdpError> {
        let mut out = Simulcast::default();
        let mut it = s.split_ascii_whitespace();
        while let Some(dir) = it.next() {
            let list = sim_list("simulcast", s, it.next().unwrap_or(""))?;
            match dir {
                "send" if out.send.is_empty() => out.send = list,
                "recv" if out.recv.is_empty() => out.recv = list,
                _ => return Err(SdpError::bad("simulcast", s)),
            }
        }
        if out.send.is_empty() && out.recv.is_empty() {
            return Err(SdpError::bad("simulcast", s));
        }
        Ok(out)
    }
}

impl fmt::Display for Simulcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |l: &Vec<Vec<String>>| l.iter().map(|a| a.join(",")).collect::<Vec<_>>().join(";");
        let mut parts = Vec::new();
        if !self.send.is_empty() {
            parts.push(format!("send {}", join(&self.send)));
        }
        if !self.recv.is_empty() {
            parts.push(format!("recv {}", join(&self.recv)));
        }
        f.write_str(&parts.join(" "))
    }
}

/// `a=group:<semantics> <mid>...` (RFC 5888).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// `BUNDLE`, `LS`, ...
    pub semantics: String,
    /// The mids.
    pub mids: Vec<String>,
}

impl FromStr for Group {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<Group, SdpError> {
        let mut it = s.split_ascii_whitespace();
        let semantics = token("group", s, it.next())?;
        Ok(Group { semantics, mids: it.map(str::to_string).collect() })
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.semantics)?;
        for m in &self.mids {
            write!(f, " {m}")?;
        }
        Ok(())
    }
}
