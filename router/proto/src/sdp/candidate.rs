//! ICE candidates as SDP writes them (RFC 8839 §5.1):
//! `a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> [raddr <a>] [rport <p>] [<name> <value>]...`.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use super::SdpError;

/// One `a=candidate` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Foundation (1-32 ice-chars).
    pub foundation: String,
    /// Component id (1: RTP, 2: RTCP).
    pub component: u16,
    /// Transport (`udp`, `tcp`), as written.
    pub transport: String,
    /// Priority.
    pub priority: u32,
    /// Connection address: an IP address or an mDNS name (`<uuid>.local`).
    pub address: String,
    /// Port.
    pub port: u16,
    /// Candidate type (`host`, `srflx`, `prflx`, `relay`).
    pub typ: String,
    /// `raddr`, when written.
    pub related_address: Option<String>,
    /// `rport`, when written.
    pub related_port: Option<u16>,
    /// Further `<name> <value>` pairs (`generation 0`, `tcptype active`, ...).
    pub extensions: Vec<(String, String)>,
}

impl Candidate {
    /// A UDP host candidate for component 1 (RTP, rtcp-mux) at `addr`, with
    /// the RFC 8445 §5.1.2.1 priority for `local_preference`.
    pub fn host_udp(foundation: &str, addr: SocketAddr, local_preference: u16) -> Candidate {
        Candidate {
            foundation: foundation.to_string(),
            component: 1,
            transport: "udp".into(),
            priority: Candidate::priority(126, local_preference, 1),
            address: addr.ip().to_string(),
            port: addr.port(),
            typ: "host".into(),
            related_address: None,
            related_port: None,
            extensions: Vec::new(),
        }
    }

    /// RFC 8445 §5.1.2.1: `2^24 * type pref + 2^8 * local pref + (256 - component)`.
    pub fn priority(type_preference: u8, local_preference: u16, component: u8) -> u32 {
        (u32::from(type_preference) << 24) | (u32::from(local_preference) << 8) | (256 - u32::from(component))
    }

    /// The address as a socket address, when it is an IP (not an mDNS name).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.address.parse().ok().map(|ip| SocketAddr::new(ip, self.port))
    }
}

fn num<T: FromStr>(whole: &str, s: Option<&str>) -> Result<T, SdpError> {
    match s {
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map_err(|_| SdpError::bad("candidate", whole))
        }
        _ => Err(SdpError::bad("candidate", whole)),
    }
}

impl FromStr for Candidate {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<Candidate, SdpError> {
        let bad = || SdpError::bad("candidate", s);
        let mut it = s.split_ascii_whitespace();
        let foundation = it.next().filter(|f| f.len() <= 32).ok_or_else(bad)?.to_string();
        let component = num(s, it.next())?;
        let transport = it.next().ok_or_else(bad)?.to_string();
        let priority = num(s, it.next())?;
        let address = it.next().ok_or_else(bad)?.to_string();
        let port = num(s, it.next())?;
        if it.next() != Some("typ") {
            return Err(bad());
        }
        let typ = it.next().ok_or_else(bad)?.to_string();
        let mut c = Candidate {
            foundation,
            component,
            transport,
            priority,
            address,
            port,
            typ,
            related_address: None,
            related_port: None,
            extensions: Vec::new(),
        };
        while let Some(name) = it.next() {
            let value = it.next().ok_or_else(bad)?;
            match name {
                "raddr" if c.related_address.is_none() => c.related_address = Some(value.to_string()),
                "rport" if c.related_port.is_none() => c.related_port = Some(num(s, Some(value))?),
                _ => c.extensions.push((name.to_string(), value.to_string())),
            }
        }
        Ok(c)
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {} typ {}",
            self.foundation, self.component, self.transport, self.priority, self.address, self.port, self.typ
        )?;
        if let Some(a) = &self.related_address {
            write!(f, " raddr {a}")?;
        }
        if let Some(p) = self.related_port {
            write!(f, " rport {p}")?;
        }
        for (k, v) in &self.extensions {
            write!(f, " {k} {v}")?;
        }
        Ok(())
    }
}
