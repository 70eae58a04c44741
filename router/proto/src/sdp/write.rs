//! [`SessionDescription`] to SDP text, `\r\n` line endings, in RFC 8866 §5
//! order (unknown lines after `t=` at session level and after `m=` in a
//! media section, so that what parses re-parses equal).

use std::fmt::{self, Write};

use super::model::{Attribute, Bandwidth, Connection, MediaDescription, SessionDescription};

impl SessionDescription {
    /// The SDP text.
    pub fn to_sdp(&self) -> String {
        self.to_string()
    }
}

fn connection(f: &mut impl Write, c: &Option<Connection>) -> fmt::Result {
    if let Some(c) = c {
        write!(f, "c={} {} {}\r\n", c.net_type, c.addr_type, c.address)?;
    }
    Ok(())
}

fn bandwidth(f: &mut impl Write, b: &[Bandwidth]) -> fmt::Result {
    b.iter().try_for_each(|b| write!(f, "b={}:{}\r\n", b.bw_type, b.bandwidth))
}

fn attributes(f: &mut impl Write, a: &[Attribute]) -> fmt::Result {
    a.iter().try_for_each(|a| match &a.value {
        Some(v) => write!(f, "a={}:{v}\r\n", a.name),
        None => write!(f, "a={}\r\n", a.name),
    })
}

fn others(f: &mut impl Write, o: &[(char, String)]) -> fmt::Result {
    o.iter().try_for_each(|(k, v)| write!(f, "{k}={v}\r\n"))
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(f, "v={}\r\n", self.version)?;
        write!(
            f,
            "o={} {} {} {} {} {}\r\n",
            o.username, o.session_id, o.session_version, o.net_type, o.addr_type, o.address
        )?;
        write!(f, "s={}\r\n", self.session_name)?;
        connection(f, &self.connection)?;
        bandwidth(f, &self.bandwidth)?;
        write!(f, "t={} {}\r\n", self.timing.start, self.timing.stop)?;
        others(f, &self.other)?;
        attributes(f, &self.attributes)?;
        self.media.iter().try_for_each(|m| write!(f, "{m}"))
    }
}

impl fmt::Display for MediaDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.kind, self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.protocol)?;
        for fmt in &self.formats {
            write!(f, " {fmt}")?;
        }
        f.write_str("\r\n")?;
        others(f, &self.other)?;
        connection(f, &self.connection)?;
        bandwidth(f, &self.bandwidth)?;
        attributes(f, &self.attributes)
    }
}
