//! Regions by client address (#16 item 6): the operator's GeoIP-style table, which
//! places a new call in the region of the participant who starts it.
//!
//! The table is the body of an nginx `geo` block, so that one file serves both nginx
//! (routing control traffic to the nearest region: `geo $corecast_region { include FILE; }`
//! in `tuning/nginx/corecast.conf`) and the calls service (`calls.regions_file`):
//!
//! ```text
//! # address range        region
//! 10.1.0.0/16            eu-west;
//! 10.2.0.0/16            us-east;
//! 2001:db8:a::/48        eu-west;
//! 192.0.2.7              us-east;   # one address
//! default                eu-west;   # optional: addresses no range matches
//! ```
//!
//! One entry a line: a CIDR range (IPv4 or IPv6) or a single address, then the region,
//! then an optional `;`; `#` starts a comment. The most specific range that holds an
//! address wins (as in nginx). A line that is none of this is refused with its number,
//! so a typo stops the service at start rather than misplacing calls.

use std::net::IpAddr;

/// A parsed region table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionTable {
    /// (network address, prefix length, region), most specific first.
    ranges: Vec<(IpAddr, u8, String)>,
    /// The region of addresses no range holds.
    default: Option<String>,
}

/// Why a table was refused: the line (1-based) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("regions table line {line}: {reason}")]
pub struct TableError {
    /// The line, counted from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The most characters a region name may have (as a router's registration).
pub const MAX_REGION_LEN: usize = 64;

/// Whether `s` may name a region: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn valid_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_REGION_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl RegionTable {
    /// Parses a table (see the module's documentation).
    pub fn parse(text: &str) -> Result<RegionTable, TableError> {
        let mut t = RegionTable::default();
        for (i, raw) in text.lines().enumerate() {
            let err = |reason: String| TableError { line: i + 1, reason };
            let line = raw.split('#').next().unwrap_or("").trim();
            let line = line.strip_suffix(';').unwrap_or(line).trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(what), Some(region), None) = (words.next(), words.next(), words.next()) else {
                return Err(err(format!("expected `RANGE REGION;`, got {line:?}")));
            };
            if !valid_region(region) {
                return Err(err(format!("{region:?} is not a region name (1-64 of a-z, 0-9, -, _, .)")));
            }
            if what == "default" {
                if t.default.is_some() {
                    return Err(err("a second default".into()));
                }
                t.default = Some(region.to_owned());
                continue;
            }
            let (net, len) = parse_range(what).map_err(err)?;
            if t.ranges.iter().any(|r| r.0 == net && r.1 == len) {
                return Err(err(format!("{what} is listed twice")));
            }
            t.ranges.push((net, len, region.to_owned()));
        }
        // Most specific first, so that the first range holding an address is the answer.
        t.ranges.sort_by_key(|r| std::cmp::Reverse(r.1));
        Ok(t)
    }

    /// The region of `ip`: the most specific range holding it, else the table's default.
    /// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is looked up as IPv4.
    pub fn region_of(&self, ip: IpAddr) -> Option<&str> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.ranges.iter().find(|(net, len, _)| holds(*net, *len, ip)).map(|r| r.2.as_str()).or(self.default.as_deref())
    }

    /// How many ranges it has.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether it has no range and no default.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.default.is_none()
    }
}

/// `a.b.c.d/n`, `x::/n` or a single address (its full length).
fn parse_range(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| format!("{s:?} is not an address or CIDR range"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| format!("{s:?}: bad prefix length"))?,
    };
    if masked(ip, len) != bits(ip) {
        return Err(format!("{s:?} has bits set past its prefix length"));
    }
    Ok((ip, len))
}

/// The address as a 128-bit number (IPv4 in the low 32 bits).
fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address's first `len` bits, the rest cleared.
fn masked(ip: IpAddr, len: u8) -> u128 {
    let width = if ip.is_ipv4() { 32 } else { 128 };
    let keep = u32::from(len.min(width));
    if keep == 0 {
        return 0;
    }
    let mask = (u128::MAX >> (128 - keep)) << (u32::from(width) - keep);
    bits(ip) & mask
}

/// Whether the range `net/len` holds `ip` (of the same family).
fn holds(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    net.is_ipv4() == ip.is_ipv4() && masked(ip, len) == masked(net, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_most_specific_range_wins_then_the_default() {
        let t = RegionTable::parse(
            "# ranges\n10.0.0.0/8 core;\n10.1.0.0/16   eu-west ; # Europe\n\n10.1.2.3 special\n\
             2001:db8:a::/48 eu-west;\ndefault us-east;\n0.0.0.0/0 anywhere-v4;\n",
        )
        .unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t.region_of(ip("10.1.9.9")), Some("eu-west"));
        assert_eq!(t.region_of(ip("10.1.2.3")), Some("special"));
        assert_eq!(t.region_of(ip("10.200.0.1")), Some("core"));
        assert_eq!(t.region_of(ip("192.0.2.1")), Some("anywhere-v4"));
        assert_eq!(t.region_of(ip("::ffff:10.1.9.9")), Some("eu-west"), "IPv4 written as IPv6");
        assert_eq!(t.region_of(ip("2001:db8:a:1::5")), Some("eu-west"));
        assert_eq!(t.region_of(ip("2001:db8:b::5")), Some("us-east"), "no IPv6 range: the default");
        let no_default = RegionTable::parse("10.1.0.0/16 a").unwrap();
        assert_eq!(no_default.region_of(ip("10.2.0.1")), None);
        assert!(RegionTable::parse("# nothing\n").unwrap().is_empty());
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        for (text, line, what) in [
            ("10.1.0.0/16 a;\n10.1.0.0/33 b;", 2, "prefix"),
            ("10.1.0.1/16 a;", 1, "past its prefix"),
            ("10.1.0.0/16;", 1, "expected"),
            ("10.1.0.0/16 a b;", 1, "expected"),
            ("nonsense a;", 1, "not an address"),
            ("10.1.0.0/16 a;\n\n10.1.0.0/16 b;", 3, "twice"),
            ("default a;\ndefault b;", 2, "second default"),
            ("10.1.0.0/16 eu/west;", 1, "region name"),
            ("2001:db8::/129 a;", 1, "prefix"),
        ] {
            let e = RegionTable::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(what), "{text:?}: {e}");
        }
    }

    #[test]
    fn region_names() {
        assert!(valid_region("eu-west-1") && valid_region("a") && valid_region("us_east.2"));
        assert!(!valid_region("") && !valid_region("eu west") && !valid_region(&"x".repeat(65)));
    }
}
