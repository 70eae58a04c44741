//! SDP text to [`SessionDescription`]: lenient with unknown lines and
//! attributes (kept), strict with structure and numbers, bounded by
//! [`limits`](super::limits).

use std::str::FromStr;

use super::limits::{MAX_ATTRIBUTES, MAX_LINE_BYTES, MAX_MEDIA, MAX_SDP_BYTES};
use super::model::{Attribute, Bandwidth, Connection, MediaDescription, MediaKind, Origin, SessionDescription, Timing};
use super::SdpError;

impl SessionDescription {
    /// Parses SDP text (`\r\n` or `\n` line endings).
    pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        if text.len() > MAX_SDP_BYTES {
            return Err(SdpError::TooLarge(text.len()));
        }
        Parser::default().run(text)
    }

    /// Parses SDP bytes (an HTTP body): the size is checked before the UTF-8.
    pub fn parse_bytes(bytes: &[u8]) -> Result<SessionDescription, SdpError> {
        if bytes.len() > MAX_SDP_BYTES {
            return Err(SdpError::TooLarge(bytes.len()));
        }
        SessionDescription::parse(std::str::from_utf8(bytes).map_err(|_| SdpError::NotText)?)
    }
}

impl FromStr for SessionDescription {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<SessionDescription, SdpError> {
        SessionDescription::parse(s)
    }
}

#[derive(Default)]
struct Parser {
    sdp: SessionDescription,
    seen_version: bool,
    seen: [bool; 3], // o, s, t
    session_attrs: usize,
    media_attrs: usize,
}

fn malformed(line: usize, reason: impl Into<String>) -> SdpError {
    SdpError::Malformed { line, reason: reason.into() }
}

fn number<T: FromStr>(line: usize, what: &str, s: &str) -> Result<T, SdpError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(line, format!("{what} is not a number")));
    }
    s.parse().map_err(|_| malformed(line, format!("{what} is out of range")))
}

impl Parser {
    fn run(mut self, text: &str) -> Result<SessionDescription, SdpError> {
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.len() > MAX_LINE_BYTES {
                return Err(SdpError::LineTooLong { line: n, len: line.len() });
            }
            if line.is_empty() {
                continue;
            }
            if line.chars().any(|c| (c.is_control() && c != '\t') || c == '\u{feff}') {
                if !self.seen_version {
                    return Err(SdpError::NoVersion);
                }
                return Err(malformed(n, "control character in line"));
            }
            let b = line.as_bytes();
            if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_alphabetic() {
                if !self.seen_version {
                    return Err(SdpError::NoVersion);
                }
                return Err(malformed(n, "not a <type>=<value> line"));
            }
            let (kind, value) = (char::from(b[0]), &line[2..]);
            if !self.seen_version {
                if kind != 'v' || value != "0" {
                    return Err(SdpError::NoVersion);
                }
                self.seen_version = true;
                continue;
            }
            self.line(n, kind, value)?;
        }
        if !self.seen_version {
            return Err(SdpError::NoVersion);
        }
        for (seen, c) in self.seen.iter().zip(['o', 's', 't']) {
            if !seen {
                return Err(SdpError::MissingLine(c));
            }
        }
        Ok(self.sdp)
    }

    fn line(&mut self, n: usize, kind: char, value: &str) -> Result<(), SdpError> {
        if kind == 'm' {
            if self.sdp.media.len() >= MAX_MEDIA {
                return Err(SdpError::TooManyMedia);
            }
            self.sdp.media.push(media_line(n, value)?);
            self.media_attrs = 0;
            return Ok(());
        }
        if let Some(m) = self.sdp.media.last_mut() {
            match kind {
                'c' if m.connection.is_none() => m.connection = Some(connection(n, value)?),
                'c' => return Err(malformed(n, "second c= in a media section")),
                'b' => m.bandwidth.push(bandwidth(n, value)?),
                'a' => {
                    self.media_attrs += 1;
                    if self.media_attrs > MAX_ATTRIBUTES {
                        return Err(SdpError::TooManyAttributes { line: n });
                    }
                    m.attributes.push(attribute(n, value)?);
                }
                'v' | 'o' | 's' | 't' => return Err(malformed(n, format!("{kind}= in a media section"))),
                _ => m.other.push((kind, value.to_string())),
            }
            return Ok(());
        }
        let sdp = &mut self.sdp;
        match kind {
            'v' => return Err(malformed(n, "second v= line")),
            'o' if !self.seen[0] => {
                sdp.origin = origin(n, value)?;
                self.seen[0] = true;
            }
            's' if !self.seen[1] => {
                sdp.session_name = value.to_string();
                self.seen[1] = true;
            }
            't' if !self.seen[2] => {
                sdp.timing = timing(n, value)?;
                self.seen[2] = true;
            }
            'o' | 's' => return Err(malformed(n, format!("second {kind}= line"))),
            't' => {
                timing(n, value)?;
                sdp.other.push((kind, value.to_string()));
            }
            'c' if sdp.connection.is_none() => sdp.connection = Some(connection(n, value)?),
            'c' => return Err(malformed(n, "second session c= line")),
            'b' => sdp.bandwidth.push(bandwidth(n, value)?),
            'a' => {
                self.session_attrs += 1;
                if self.session_attrs > MAX_ATTRIBUTES {
                    return Err(SdpError::TooManyAttributes { line: n });
                }
                sdp.attributes.push(attribute(n, value)?);
            }
            _ => sdp.other.push((kind, value.to_string())),
        }
        Ok(())
    }
}

fn fields(value: &str) -> Vec<&str> {
    value.split_ascii_whitespace().collect()
}

fn origin(n: usize, value: &str) -> Result<Origin, SdpError> {
    let f = fields(value);
    let [username, id, version, net_type, addr_type, address] = f[..] else {
        return Err(malformed(n, "o= needs 6 fields"));
    };
    Ok(Origin {
        username: username.to_string(),
        session_id: number(n, "o= session id", id)?,
        session_version: number(n, "o= session version", version)?,
        net_type: net_type.to_string(),
        addr_type: addr_type.to_string(),
        address: address.to_string(),
    })
}

fn timing(n: usize, value: &str) -> Result<Timing, SdpError> {
    let f = fields(value);
    let [start, stop] = f[..] else {
        return Err(malformed(n, "t= needs 2 fields"));
    };
    Ok(Timing { start: number(n, "t= start", start)?, stop: number(n, "t= stop", stop)? })
}

fn connection(n: usize, value: &str) -> Result<Connection, SdpError> {
    let f = fields(value);
    let [net_type, addr_type, address] = f[..] else {
        return Err(malformed(n, "c= needs 3 fields"));
    };
    Ok(Connection { net_type: net_type.into(), addr_type: addr_type.into(), address: address.into() })
}

fn bandwidth(n: usize, value: &str) -> Result<Bandwidth, SdpError> {
    let (t, v) = value.split_once(':').ok_or_else(|| malformed(n, "b= needs <type>:<value>"))?;
    if t.is_empty() || t.contains(char::is_whitespace) {
        return Err(malformed(n, "b= type is empty"));
    }
    Ok(Bandwidth { bw_type: t.to_string(), bandwidth: number(n, "b= value", v)? })
}

fn attribute(n: usize, value: &str) -> Result<Attribute, SdpError> {
    let (name, value) = match value.split_once(':') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (value, None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(malformed(n, "a= has no attribute name"));
    }
    Ok(Attribute { name: name.to_string(), value })
}

fn media_line(n: usize, value: &str) -> Result<MediaDescription, SdpError> {
    let f = fields(value);
    if f.len() < 4 {
        return Err(malformed(n, "m= needs <media> <port> <proto> <fmt>..."));
    }
    let (port, port_count) = match f[1].split_once('/') {
        Some((p, c)) => (p, Some(number(n, "m= port count", c)?)),
        None => (f[1], None),
    };
    Ok(MediaDescription {
        kind: MediaKind::from_token(f[0]),
        port: number(n, "m= port", port)?,
        port_count,
        protocol: f[2].to_string(),
        formats: f[3..].iter().map(|s| s.to_string()).collect(),
        connection: None,
        bandwidth: Vec::new(),
        attributes: Vec::new(),
        other: Vec::new(),
    })
}
