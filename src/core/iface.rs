//! Which interface the daemon captures on, and why: `-i`, else
//! `Interface`, else knockd's `eth0` when it exists, else the interface of
//! the default route (IPv4, else IPv6), followed when the route moves.
//!
//! knockd 0.8 waits for `eth0` when nothing names an interface, which on
//! machines with predictable names (`ens3`, `enp0s3`) never comes. This
//! module owns the rule and the log lines it explains itself with; the
//! shell only reports what the system looks like ([`System`]: whether
//! `eth0` exists, the default routes) at start and after each link or
//! route change. It must not look at the system itself.
//!
//! Once chosen, `eth0` stays (as in knockd, it is waited for if it goes
//! away); so does an interface named by `-i` or `Interface`. A default
//! route's interface is followed to wherever the default route moves, and
//! kept while there is none (a DHCP renewal or a link flap takes the route
//! away for a moment; the uplink is still the best guess). With neither
//! `eth0` nor a default route at start, `eth0` is waited for as in knockd
//! and the first default route to appear is followed, whichever comes
//! first.

use std::fmt;

use super::service::Notice;

/// The interface knockd 0.8 captures on when nothing names one.
pub const ETH0: &str = "eth0";

/// One default route of the main routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    /// The interface its packets leave by.
    pub ifname: String,
    /// Its metric (`ip route`'s `metric`): the lowest wins.
    pub metric: u32,
    /// Its interface has no carrier (`linkdown`): such a route is taken
    /// only when no other is there.
    pub linkdown: bool,
}

/// What the system looks like, as the shell read it just now.
#[derive(Debug, Clone, Copy, Default)]
pub struct System<'a> {
    /// Whether an interface named `eth0` exists.
    pub eth0_exists: bool,
    /// The IPv4 default routes, in the kernel's order.
    pub v4: &'a [DefaultRoute],
    /// The IPv6 default routes, in the kernel's order.
    pub v6: &'a [DefaultRoute],
}

/// The address family of a default route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// The interfaces captured on, and why: what `--check` prints and what
/// decides whether a route change moves the capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Named by `-i` (waited for if missing, never moved).
    Cli(Vec<String>),
    /// Named by the config's `Interface` (as `-i`).
    Config(Vec<String>),
    /// Nothing named one and `eth0` exists: knockd's default, kept.
    Eth0,
    /// Nothing named one and there is no `eth0`: the default route's
    /// interface, followed when the route moves.
    DefaultRoute { ifname: String, family: Family },
    /// Nothing named one, no `eth0`, no default route: `eth0` is waited
    /// for, and the first default route to appear is followed.
    Waiting,
}

/// The interface of the best default route: IPv4 before IPv6, a route
/// with carrier before one without, then the lowest metric, then the
/// kernel's order.
pub fn best_route<'a>(sys: &System<'a>) -> Option<(&'a str, Family)> {
    let v4 = sys.v4.iter().map(|r| (r, Family::V4));
    let v6 = sys.v6.iter().map(|r| (r, Family::V6));
    v4.chain(v6)
        .min_by_key(|(r, family)| (r.linkdown, *family == Family::V6, r.metric))
        .map(|(r, family)| (r.ifname.as_str(), family))
}

/// The choice at start: `-i` (`cli`) wins over `Interface` (`config`),
/// which wins over `eth0` if it exists, then the default route's
/// interface; with none of these, [`Choice::Waiting`].
pub fn choose(cli: &[String], config: &[String], sys: &System<'_>) -> Choice {
    if !cli.is_empty() {
        return Choice::Cli(cli.to_vec());
    }
    if !config.is_empty() {
        return Choice::Config(config.to_vec());
    }
    if sys.eth0_exists {
        return Choice::Eth0;
    }
    match best_route(sys) {
        Some((ifname, family)) => Choice::DefaultRoute {
            ifname: ifname.to_string(),
            family,
        },
        None => Choice::Waiting,
    }
}

/// The choice after a link or route change, from `current` (the same
/// value when nothing moves). Only [`Choice::DefaultRoute`] and
/// [`Choice::Waiting`] ever change; see the module docs.
pub fn follow(current: &Choice, sys: &System<'_>) -> Choice {
    match current {
        Choice::Cli(_) | Choice::Config(_) | Choice::Eth0 => current.clone(),
        Choice::Waiting if sys.eth0_exists => Choice::Eth0,
        Choice::Waiting | Choice::DefaultRoute { .. } => match best_route(sys) {
            Some((ifname, family)) => Choice::DefaultRoute {
                ifname: ifname.to_string(),
                family,
            },
            // No default route now: keep the one last seen (or keep
            // waiting).
            None => current.clone(),
        },
    }
}

/// The log line for a move from `from` to `to`, when the capture moves to
/// another interface because of the default route (`eth0` appearing while
/// waited for needs none: `listening on eth0` says it).
pub fn move_notice(from: &Choice, to: &Choice) -> Option<Notice> {
    let Choice::DefaultRoute { ifname: to, .. } = to else {
        return None;
    };
    match from {
        Choice::DefaultRoute { ifname: from, .. } if from == to => None,
        Choice::DefaultRoute { ifname: from, .. } => Some(Notice::DefaultRouteMoved {
            from: Some(from.clone()),
            to: to.clone(),
        }),
        Choice::Waiting => Some(Notice::DefaultRouteMoved {
            from: None,
            to: to.clone(),
        }),
        _ => None,
    }
}

impl Choice {
    /// The interfaces to capture on (waited for while missing).
    pub fn interfaces(&self) -> Vec<String> {
        match self {
            Choice::Cli(names) | Choice::Config(names) => names.clone(),
            Choice::Eth0 | Choice::Waiting => vec![ETH0.to_string()],
            Choice::DefaultRoute { ifname, .. } => vec![ifname.clone()],
        }
    }

    /// Whether link and route changes can move the capture: the shell
    /// then watches default routes and calls [`follow`].
    pub fn follows_routes(&self) -> bool {
        matches!(self, Choice::DefaultRoute { .. } | Choice::Waiting)
    }

    /// The start-up line saying why the interface is not the one knockd
    /// would use: only when nothing named one and there is no `eth0`.
    pub fn startup_notice(&self) -> Option<Notice> {
        match self {
            Choice::DefaultRoute { ifname, family } => Some(Notice::DefaultInterface {
                name: ifname.clone(),
                v6: *family == Family::V6,
            }),
            Choice::Waiting => Some(Notice::NoDefaultInterface),
            _ => None,
        }
    }
}

/// `--check`'s account: the interface(s) and why, e.g.
/// `ens3 (default route; no -i, no Interface, no eth0)`.
impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::Cli(names) => write!(f, "{} (-i)", names.join(",")),
            Choice::Config(names) => write!(f, "{} (Interface)", names.join(",")),
            Choice::Eth0 => write!(f, "{ETH0} (knockd's default; no -i, no Interface)"),
            Choice::DefaultRoute { ifname, family } => write!(
                f,
                "{ifname} ({}default route; no -i, no Interface, no {ETH0})",
                if *family == Family::V6 { "IPv6 " } else { "" }
            ),
            Choice::Waiting => write!(
                f,
                "{ETH0} when it appears, or the interface of the first default route \
                 (no -i, no Interface, no {ETH0}, no default route)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(ifname: &str, metric: u32) -> DefaultRoute {
        DefaultRoute {
            ifname: ifname.into(),
            metric,
            linkdown: false,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn via(ifname: &str) -> Choice {
        Choice::DefaultRoute {
            ifname: ifname.into(),
            family: Family::V4,
        }
    }

    #[test]
    fn the_command_line_wins_over_everything() {
        let v4 = [route("ens3", 100)];
        let sys = System {
            eth0_exists: true,
            v4: &v4,
            v6: &[],
        };
        let c = choose(&names(&["eth0"]), &names(&["wg0"]), &sys);
        assert_eq!(c, Choice::Cli(names(&["eth0"])));
        assert_eq!(c.interfaces(), ["eth0"]);
        assert!(!c.follows_routes());
        assert_eq!(c.startup_notice(), None);
        assert_eq!(c.to_string(), "eth0 (-i)");
    }

    #[test]
    fn an_explicit_eth0_is_waited_for_even_with_a_default_route() {
        let v4 = [route("ens3", 100)];
        let sys = System {
            eth0_exists: false,
            v4: &v4,
            v6: &[],
        };
        let cli = choose(&names(&["eth0"]), &[], &sys);
        assert_eq!(cli.interfaces(), ["eth0"]);
        assert_eq!(follow(&cli, &sys), cli);
        let conf = choose(&[], &names(&["eth0"]), &sys);
        assert_eq!(conf, Choice::Config(names(&["eth0"])));
        assert_eq!(follow(&conf, &sys), conf);
        assert_eq!(conf.to_string(), "eth0 (Interface)");
    }

    #[test]
    fn the_config_wins_over_eth0_and_routes() {
        let v4 = [route("ens3", 100)];
        let sys = System {
            eth0_exists: true,
            v4: &v4,
            v6: &[],
        };
        let c = choose(&[], &names(&["lo", "wg0"]), &sys);
        assert_eq!(c.interfaces(), ["lo", "wg0"]);
        assert_eq!(c.to_string(), "lo,wg0 (Interface)");
    }

    #[test]
    fn an_existing_eth0_is_knockds_default_and_stays() {
        let v4 = [route("ens3", 100)];
        let sys = System {
            eth0_exists: true,
            v4: &v4,
            v6: &[],
        };
        let c = choose(&[], &[], &sys);
        assert_eq!(c, Choice::Eth0);
        assert_eq!(c.interfaces(), ["eth0"]);
        assert_eq!(c.startup_notice(), None);
        // eth0 going away is waited for, as knockd does.
        let gone = System {
            eth0_exists: false,
            ..sys
        };
        assert_eq!(follow(&c, &gone), Choice::Eth0);
        assert_eq!(
            c.to_string(),
            "eth0 (knockd's default; no -i, no Interface)"
        );
    }

    #[test]
    fn without_eth0_the_ipv4_default_route_is_chosen() {
        let v4 = [route("ens3", 100)];
        let v6 = [route("ens4", 1)];
        let sys = System {
            eth0_exists: false,
            v4: &v4,
            v6: &v6,
        };
        let c = choose(&[], &[], &sys);
        assert_eq!(c, via("ens3"));
        assert_eq!(c.interfaces(), ["ens3"]);
        assert!(c.follows_routes());
        assert_eq!(
            c.startup_notice().map(|n| n.to_string()).as_deref(),
            Some("no interface configured and no eth0: listening on ens3 (default route)")
        );
        assert_eq!(
            c.to_string(),
            "ens3 (default route; no -i, no Interface, no eth0)"
        );
    }

    #[test]
    fn without_an_ipv4_default_route_the_ipv6_one_is_chosen() {
        let v6 = [route("enp0s3", 1024)];
        let sys = System {
            eth0_exists: false,
            v4: &[],
            v6: &v6,
        };
        let c = choose(&[], &[], &sys);
        assert_eq!(
            c,
            Choice::DefaultRoute {
                ifname: "enp0s3".into(),
                family: Family::V6
            }
        );
        assert_eq!(
            c.startup_notice().map(|n| n.to_string()).as_deref(),
            Some("no interface configured and no eth0: listening on enp0s3 (IPv6 default route)")
        );
        assert_eq!(
            c.to_string(),
            "enp0s3 (IPv6 default route; no -i, no Interface, no eth0)"
        );
    }

    #[test]
    fn the_lowest_metric_with_carrier_wins() {
        let v4 = [
            DefaultRoute {
                ifname: "enp1s0".into(),
                metric: 100,
                linkdown: true,
            },
            route("wlp2s0", 600),
            route("wwan0", 700),
        ];
        let sys = System {
            eth0_exists: false,
            v4: &v4,
            v6: &[],
        };
        assert_eq!(best_route(&sys), Some(("wlp2s0", Family::V4)));
        let tie = [route("a0", 5), route("b0", 5)];
        let sys = System { v4: &tie, ..sys };
        assert_eq!(best_route(&sys), Some(("a0", Family::V4)), "kernel order");
        // A usable IPv6 route beats an IPv4 route without carrier.
        let down = [DefaultRoute {
            ifname: "enp1s0".into(),
            metric: 0,
            linkdown: true,
        }];
        let v6 = [route("wlp2s0", 600)];
        let sys = System {
            eth0_exists: false,
            v4: &down,
            v6: &v6,
        };
        assert_eq!(best_route(&sys), Some(("wlp2s0", Family::V6)));
        // Only routes without carrier: still better than nothing.
        let sys = System { v6: &[], ..sys };
        assert_eq!(best_route(&sys), Some(("enp1s0", Family::V4)));
    }

    #[test]
    fn the_default_route_is_followed_when_it_moves() {
        let before = [route("uplink0", 0)];
        let sys = System {
            eth0_exists: false,
            v4: &before,
            v6: &[],
        };
        let c = choose(&[], &[], &sys);
        assert_eq!(follow(&c, &sys), c, "nothing moved");
        assert_eq!(move_notice(&c, &c), None);
        let after = [route("uplink1", 0)];
        let moved = follow(&c, &System { v4: &after, ..sys });
        assert_eq!(moved, via("uplink1"));
        assert_eq!(
            move_notice(&c, &moved).map(|n| n.to_string()).as_deref(),
            Some("default route moved from uplink0 to uplink1: following it")
        );
    }

    #[test]
    fn a_default_route_that_goes_away_is_kept_until_another_appears() {
        let v4 = [route("ens3", 0)];
        let sys = System {
            eth0_exists: false,
            v4: &v4,
            v6: &[],
        };
        let c = choose(&[], &[], &sys);
        let none = System { v4: &[], ..sys };
        assert_eq!(follow(&c, &none), c);
        // Nor does an eth0 that appears later take it over.
        let eth0 = System {
            eth0_exists: true,
            ..none
        };
        assert_eq!(follow(&c, &eth0), c);
    }

    #[test]
    fn with_no_eth0_and_no_route_eth0_or_the_first_route_is_taken() {
        let nothing = System::default();
        let c = choose(&[], &[], &nothing);
        assert_eq!(c, Choice::Waiting);
        assert_eq!(c.interfaces(), ["eth0"]);
        assert!(c.follows_routes());
        assert_eq!(
            c.startup_notice().map(|n| n.to_string()).as_deref(),
            Some(
                "no interface configured, no eth0 and no default route: \
                 waiting for eth0 or a default route"
            )
        );
        assert_eq!(
            c.to_string(),
            "eth0 when it appears, or the interface of the first default route \
             (no -i, no Interface, no eth0, no default route)"
        );
        assert_eq!(follow(&c, &nothing), Choice::Waiting);
        // A route first: followed from then on.
        let v4 = [route("ens3", 0)];
        let routed = follow(&c, &System { v4: &v4, ..nothing });
        assert_eq!(routed, via("ens3"));
        assert_eq!(
            move_notice(&c, &routed).map(|n| n.to_string()).as_deref(),
            Some("default route appeared on ens3: following it")
        );
        // eth0 first: knockd's default, kept even when a route comes.
        let eth0 = follow(
            &c,
            &System {
                eth0_exists: true,
                v4: &v4,
                v6: &[],
            },
        );
        assert_eq!(eth0, Choice::Eth0);
        assert_eq!(move_notice(&c, &eth0), None);
        assert!(!eth0.follows_routes());
    }

    #[test]
    fn a_route_changing_family_on_the_same_interface_is_no_move() {
        let v4 = [route("ens3", 0)];
        let v6 = [route("ens3", 0)];
        let c = choose(
            &[],
            &[],
            &System {
                eth0_exists: false,
                v4: &v4,
                v6: &v6,
            },
        );
        let next = follow(
            &c,
            &System {
                eth0_exists: false,
                v4: &[],
                v6: &v6,
            },
        );
        assert_eq!(next.interfaces(), c.interfaces());
        assert_eq!(move_notice(&c, &next), None);
    }
}
