//! Host to one address, once.
//!
//! knockd 0.8's client calls `getaddrinfo` again for every port, so a name
//! with several addresses (or round-robin DNS, or A and AAAA records) can
//! spread one knock sequence over different addresses and families, and
//! the server sees an incomplete sequence from each. Here the host is
//! resolved once, and every hit and the `--connect` connection use that one
//! address. This module must not open sockets.

use std::io;
use std::net::{IpAddr, ToSocketAddrs};

use super::Family;

/// Why a host has no usable address. Displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The resolver failed (unknown name, no network, ...).
    #[error("cannot resolve host \"{host}\": {}", gai_reason(source))]
    Lookup { host: String, source: io::Error },
    /// The name resolved, but not to the family asked for (`-4`/`-6`).
    #[error("host \"{host}\" has no {family} address")]
    NoAddress { host: String, family: Family },
}

/// std prefixes `gai_strerror`'s text with this; our message names the host
/// instead.
fn gai_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.strip_prefix("failed to lookup address information: ") {
        Some(reason) => reason.to_string(),
        None => text,
    }
}

/// The first address of `host` in `family`, in the resolver's preference
/// order (RFC 6724 / gai.conf), as `getaddrinfo` returns them.
pub fn resolve(host: &str, family: Family) -> Result<IpAddr, ResolveError> {
    let addrs = (host, 0u16)
        .to_socket_addrs()
        .map_err(|source| ResolveError::Lookup {
            host: host.to_string(),
            source,
        })?;
    pick(addrs.map(|a| a.ip()), family).ok_or_else(|| ResolveError::NoAddress {
        host: host.to_string(),
        family,
    })
}

fn pick(mut addrs: impl Iterator<Item = IpAddr>, family: Family) -> Option<IpAddr> {
    addrs.find(|a| match family {
        Family::Any => true,
        Family::V4 => a.is_ipv4(),
        Family::V6 => a.is_ipv6(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_resolve_to_themselves() {
        assert_eq!(
            resolve("127.0.0.1", Family::Any).ok(),
            Some([127, 0, 0, 1].into())
        );
        assert_eq!(
            resolve("::1", Family::V6).ok(),
            Some(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST))
        );
    }

    #[test]
    fn family_filter_keeps_resolver_order() {
        let v4: IpAddr = "192.0.2.1".parse().expect("v4");
        let v6: IpAddr = "2001:db8::1".parse().expect("v6");
        let both = [v6, v4];
        assert_eq!(pick(both.into_iter(), Family::Any), Some(v6));
        assert_eq!(pick(both.into_iter(), Family::V4), Some(v4));
        assert_eq!(pick(both.into_iter(), Family::V6), Some(v6));
        assert_eq!(pick([v4].into_iter(), Family::V6), None);
    }

    #[test]
    fn wrong_family_for_a_literal_is_a_clear_error() {
        let e = resolve("127.0.0.1", Family::V6).expect_err("v4 literal with -6");
        assert_eq!(e.to_string(), "host \"127.0.0.1\" has no IPv6 address");
        let e = resolve("::1", Family::V4).expect_err("v6 literal with -4");
        assert_eq!(e.to_string(), "host \"::1\" has no IPv4 address");
    }

    #[test]
    fn lookup_failure_is_one_line_without_std_prefix() {
        // Built by hand: a real failed lookup would query the network's
        // resolver (tests/client/ does that inside an empty namespace).
        let e = ResolveError::Lookup {
            host: "nosuch".into(),
            source: io::Error::other(
                "failed to lookup address information: Name or service not known",
            ),
        };
        assert_eq!(
            e.to_string(),
            "cannot resolve host \"nosuch\": Name or service not known"
        );
    }
}
