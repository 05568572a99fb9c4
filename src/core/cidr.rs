//! Address ranges in CIDR notation, for a door's `Allow` and `Deny` lists.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address range: `198.51.100.0/24`, `2001:db8::/32`, or a bare address
/// (all of its bits). IPv4 ranges hold only IPv4 addresses, IPv6 ranges
/// only IPv6 ones. An IPv4-mapped address or range (`::ffff:10.0.0.0/104`)
/// is its IPv4 form, as knockers' addresses are: one host, one spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in the range; `::ffff:a.b.c.d` is `a.b.c.d`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("\"{s}\" is not an address or an address/prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("\"{s}\": the prefix must be 0 to {max}")),
            },
        };
        Ok(match addr {
            IpAddr::V6(a) if prefix >= 96 => match a.to_ipv4_mapped() {
                Some(v4) => Cidr {
                    addr: IpAddr::V4(v4),
                    prefix: prefix - 96,
                },
                None => Cidr { addr, prefix },
            },
            _ => Cidr { addr, prefix },
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A comma- or space-separated list of ranges.
pub fn parse_list(text: &str) -> Result<Vec<Cidr>, String> {
    let list: Vec<Cidr> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if list.is_empty() {
        return Err("no address range".into());
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_their_addresses_and_no_others() {
        let net: Cidr = "198.51.100.0/24".parse().unwrap();
        assert!(net.contains(ip("198.51.100.0")));
        assert!(net.contains(ip("198.51.100.255")));
        assert!(!net.contains(ip("198.51.101.0")));
        assert!(
            !net.contains(ip("2001:db8::c633:6401")),
            "families never mix"
        );
        // ... but a mapped address is IPv4 (issue 19: it slipped past Deny).
        assert!(net.contains(ip("::ffff:198.51.100.1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let host: Cidr = "203.0.113.9".parse().unwrap();
        assert_eq!(host.to_string(), "203.0.113.9/32");
        assert!(host.contains(ip("203.0.113.9")) && !host.contains(ip("203.0.113.8")));
        assert!("::/0".parse::<Cidr>().unwrap().contains(ip("2001:db8::1")));
    }

    #[test]
    fn mapped_addresses_are_their_ipv4_form() {
        let deny: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(deny.contains(ip("::ffff:10.0.0.1")));
        assert!(!deny.contains(ip("::ffff:11.0.0.1")));
        let mapped: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        assert!(mapped.contains(ip("10.1.2.3")));
        assert_eq!(
            "::ffff:192.0.2.7".parse::<Cidr>().unwrap().to_string(),
            "192.0.2.7/32"
        );
        // Wider than the mapped block: an IPv6 range like any other.
        let wide: Cidr = "::ffff:0:0/95".parse().unwrap();
        assert!(!wide.contains(ip("10.0.0.1")));
    }

    #[test]
    fn bad_ranges_say_why() {
        assert_eq!(
            "198.51.100.0/33".parse::<Cidr>().unwrap_err(),
            "\"198.51.100.0/33\": the prefix must be 0 to 32"
        );
        assert_eq!(
            "example.com".parse::<Cidr>().unwrap_err(),
            "\"example.com\" is not an address or an address/prefix"
        );
        assert_eq!(
            parse_list("198.51.100.0/24, 2001:db8::/32").unwrap().len(),
            2
        );
        assert_eq!(parse_list(" , ").unwrap_err(), "no address range");
    }
}
