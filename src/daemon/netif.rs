//! The addresses of the capture interfaces: a knock counts when it is
//! addressed to one of them (all of them, v4 and v6, not just the first as
//! knockd 0.8 on some paths).

use std::collections::BTreeSet;
use std::net::IpAddr;

/// The pseudo-interface that captures on every interface (Linux cooked
/// capture); its addresses are every interface's.
pub const ANY: &str = "any";

/// Every address of the named interfaces (`any`: of all interfaces), sorted
/// and without duplicates. IPv6 is left out with `only_v4` (`-4`).
///
/// An interface that does not exist, or has no address yet, contributes
/// nothing; the caller decides whether that is an error.
pub fn addresses(interfaces: &[String], only_v4: bool) -> std::io::Result<Vec<IpAddr>> {
    let all = interfaces.iter().any(|i| i == ANY);
    let mut out = BTreeSet::new();
    for ifa in nix::ifaddrs::getifaddrs()? {
        if !all && !interfaces.contains(&ifa.interface_name) {
            continue;
        }
        let Some(addr) = ifa.address else { continue };
        let ip = if let Some(v4) = addr.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        if only_v4 && ip.is_ipv6() {
            continue;
        }
        out.insert(ip);
    }
    Ok(out.into_iter().collect())
}

/// Whether the interface exists and is administratively up (`any` always
/// is). libpcap refuses to capture on a down interface; the daemon waits
/// for it to come up instead of failing.
pub fn is_up(name: &str) -> bool {
    if name == ANY {
        return true;
    }
    nix::ifaddrs::getifaddrs().is_ok_and(|mut all| {
        all.any(|ifa| {
            ifa.interface_name == name && ifa.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_its_addresses() {
        let lo = addresses(&["lo".to_string()], false).unwrap();
        assert!(lo.contains(&"127.0.0.1".parse().unwrap()), "{lo:?}");
        let v4 = addresses(&["lo".to_string()], true).unwrap();
        assert!(v4.iter().all(IpAddr::is_ipv4));
    }

    #[test]
    fn loopback_is_up_and_unknown_interfaces_are_not() {
        assert!(is_up("lo"));
        assert!(is_up(ANY));
        assert!(!is_up("no-such-if0"));
    }

    #[test]
    fn any_covers_loopback_and_unknown_interfaces_have_none() {
        let any = addresses(&[ANY.to_string()], false).unwrap();
        assert!(any.contains(&"127.0.0.1".parse().unwrap()));
        assert!(addresses(&["no-such-if0".to_string()], false)
            .unwrap()
            .is_empty());
    }
}
