//! The check every proposed opening passes before the service decides on
//! it. The engine that proposes runs on attacker-chosen bytes; once it runs
//! in a process of its own without root (issue 16's sensor), a proposal is
//! a message from a process that may be compromised. So the service trusts
//! nothing in it: it checks the proposal against its own copy of the doors
//! and their live sequences, the addresses that count as ours and the time,
//! and drops what no honest engine could have proposed. At worst a forged
//! proposal then opens a configured door, for some address, within the
//! door's bounds: never another command, file or time.

use std::time::Duration;

use super::Service;
use crate::core::config::SequenceSource;
use crate::core::engine::Opening;
use crate::core::knock::Timestamp;

/// How far ahead of the service's clock a proposal may be stamped: inputs
/// of one read share a time, so any gap is a forgery.
const FUTURE_SLACK: Duration = Duration::from_millis(1);

/// Why a proposal was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forged {
    /// No such door in the running config.
    UnknownDoor,
    /// The door accepts no sequence now (a one-time door used up or
    /// waiting for its next line).
    NotLive,
    /// No live sequence of the door has that index, or its period is not
    /// the one named (or a fixed door named a period).
    Variant,
    /// The source and destination are of different families, or IPv6
    /// under `-4`.
    Family,
    /// The source cannot be a host (unspecified, multicast, broadcast,
    /// reserved, an IPv4-mapped form).
    Source,
    /// The destination is neither the door's `Target` nor one of ours.
    Destination,
    /// The protocol is not that of the sequence's last step.
    Protocol,
    /// The door's `Allow`/`Deny` keep the source out.
    Acl,
    /// Stamped after the service's clock.
    Future,
}

impl Forged {
    /// The reason, for the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Forged::UnknownDoor => "unknown door",
            Forged::NotLive => "door accepts no sequence now",
            Forged::Variant => "no such sequence or period",
            Forged::Family => "address family",
            Forged::Source => "source cannot be a host",
            Forged::Destination => "destination not ours",
            Forged::Protocol => "protocol of the last step",
            Forged::Acl => "source outside Allow/Deny",
            Forged::Future => "stamped in the future",
        }
    }
}

impl Service {
    /// Whether `o` is a proposal an honest engine could have made now.
    pub(super) fn validate(&self, o: &Opening, now: Timestamp) -> Result<(), Forged> {
        let door = self.engine.door(o.door).ok_or(Forged::UnknownDoor)?;
        let live = self.engine.variants(o.door);
        if live.is_empty() {
            return Err(Forged::NotLive);
        }
        let v = live.get(o.variant as usize).ok_or(Forged::Variant)?;
        let rotating = matches!(door.sequence, SequenceSource::Rotating { .. });
        let period_ok = match (rotating, o.period) {
            (true, Some(p)) => p == v.label && self.rotating.accepts(o.door, p),
            (false, None) => true,
            _ => false,
        };
        if !period_ok {
            return Err(Forged::Variant);
        }
        if o.src.is_ipv6() != o.dst.is_ipv6() || (self.settings.only_v4 && o.src.is_ipv6()) {
            return Err(Forged::Family);
        }
        let mapped = match o.src {
            std::net::IpAddr::V6(a) => a.to_ipv4_mapped().is_some(),
            std::net::IpAddr::V4(_) => false,
        };
        if mapped || !crate::core::wire::is_host(o.src) {
            return Err(Forged::Source);
        }
        let ours = match (door.target, &self.local) {
            (Some(target), _) => target == o.dst,
            (None, Some(local)) => local.contains(&o.dst),
            (None, None) => true,
        };
        if !ours {
            return Err(Forged::Destination);
        }
        if v.sequence.steps().last().map(|s| s.proto) != Some(o.proto) {
            return Err(Forged::Protocol);
        }
        if !door.admits(o.src) {
            return Err(Forged::Acl);
        }
        if o.at > now + FUTURE_SLACK {
            return Err(Forged::Future);
        }
        Ok(())
    }
}

/// Dropped proposals are logged with their reason the first time in a
/// minute, then counted and summed up: a compromised sensor cannot flood
/// the log.
#[derive(Default)]
pub(super) struct DroppedLog {
    report_at: Option<Timestamp>,
    more: u64,
    /// Every proposal dropped since start (for `-D` and tests).
    pub total: u64,
}

impl DroppedLog {
    /// Counts one; true when it is to be logged on its own.
    pub fn note(&mut self, now: Timestamp) -> bool {
        self.total += 1;
        if self.report_at.is_none() {
            self.report_at = Some(now + super::caps::WINDOW);
            return true;
        }
        self.more += 1;
        false
    }

    /// When the summary of the minute is due.
    pub fn next_report(&self) -> Option<Timestamp> {
        self.report_at
    }

    /// The count to report if the minute ended by `now` (zero: none).
    pub fn report(&mut self, now: Timestamp) -> Option<u64> {
        if self.report_at.is_some_and(|t| t <= now) {
            self.report_at = None;
            return Some(std::mem::take(&mut self.more));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::path::{Path, PathBuf};

    use super::Forged;
    use crate::core::config::parse_str;
    use crate::core::engine::{DoorId, LocalAddrs, Opening};
    use crate::core::knock::{Proto, Timestamp};
    use crate::core::service::{Effect, Mode, Notice, Service, Settings};

    const T: u64 = 1_700_000_000;
    /// Period 56666666's sequence of the README's test vector.
    const P0: [u16; 5] = [10759, 10995, 10648, 10389, 10822];

    fn service() -> Service {
        let text = "[fixed]\n\tsequence = 7000,8000:udp\n\tcommand = open %IP%\n\
                    [acl]\n\tsequence = 9000\n\tdeny = 10.0.0.0/8\n\tcommand = acl %IP%\n\
                    [ssh]\n\tsequence_secret = GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\
                    \tsequence_ports = 10000-10999\n\tsequence_length = 5\n\
                    \tsequence_period = 30\n\tcommand = rot %IP%\n\
                    [tgt]\n\tsequence = 9100\n\ttarget = 203.0.113.9\n\tcommand = tgt %IP%\n";
        let (config, _) = parse_str(text, Path::new("k.conf")).expect("config");
        let settings = Settings {
            mode: Mode::Replay,
            dry_run: false,
            only_v4: false,
            config_path: PathBuf::from("k.conf"),
            interfaces: vec!["eth0".into()],
            interfaces_from_cli: false,
            log_file: None,
            log_file_from_cli: false,
            log_format: crate::core::config::LogFormat::Text,
            log_format_from_cli: false,
            state_file: PathBuf::from("/var/lib/knockd/state"),
            wall_offset: 0,
        };
        let local = LocalAddrs::List(vec![
            "192.0.2.1".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ]);
        let mut s = Service::new(&config, settings, local, at(0));
        while s.poll_effect().is_some() {}
        s
    }

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_nanos((T * 1000 + ms) * 1_000_000)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// An honest proposal for door `door` (0 fixed, 1 acl, 2 rot, 3 tgt).
    fn honest(door: u16) -> Opening {
        Opening {
            id: 1,
            door: DoorId(door),
            src: ip("198.51.100.7"),
            dst: if door == 3 {
                ip("203.0.113.9")
            } else {
                ip("192.0.2.1")
            },
            proto: if door == 0 { Proto::Udp } else { Proto::Tcp },
            variant: 0,
            period: (door == 2).then_some(T / 30),
            at: at(0),
        }
    }

    /// What handling `o` logged and ran.
    fn outcome(s: &mut Service, o: Opening) -> Vec<String> {
        s.handle_proposal(o, at(0));
        let mut out = Vec::new();
        while let Some(e) = s.poll_effect() {
            match e {
                Effect::Log(n) => out.push(n.to_string()),
                Effect::Run { command, .. } => out.push(format!("run {command}")),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn honest_proposals_open() {
        let mut s = service();
        for door in 0..4 {
            let out = outcome(&mut s, honest(door));
            assert!(
                out.iter().any(|l| l.ends_with("OPEN SESAME")),
                "{door}: {out:?}"
            );
            assert!(out.iter().any(|l| l.starts_with("run ")), "{door}: {out:?}");
        }
        assert_eq!(s.dropped_proposals(), 0);
        // The rotating door's sequence is the test vector's.
        let live = s.engine.variants(DoorId(2));
        let ports: Vec<u16> = live[0].sequence.steps().iter().map(|s| s.port).collect();
        assert_eq!(ports, P0);
    }

    #[test]
    fn every_kind_of_forged_proposal_is_dropped_and_counted() {
        let cases: Vec<(Forged, Opening)> = vec![
            (
                Forged::UnknownDoor,
                Opening {
                    door: DoorId(9),
                    ..honest(0)
                },
            ),
            (
                Forged::Variant,
                Opening {
                    variant: 5,
                    ..honest(0)
                },
            ),
            (
                Forged::Variant,
                Opening {
                    period: Some(1),
                    ..honest(0)
                },
            ),
            // A stale and a future period of the rotating door.
            (
                Forged::Variant,
                Opening {
                    period: Some(T / 30 - 5),
                    ..honest(2)
                },
            ),
            (
                Forged::Variant,
                Opening {
                    period: Some(T / 30 + 5),
                    ..honest(2)
                },
            ),
            (
                Forged::Variant,
                Opening {
                    period: None,
                    ..honest(2)
                },
            ),
            (
                Forged::Family,
                Opening {
                    src: ip("2001:db8::7"),
                    ..honest(0)
                },
            ),
            (
                Forged::Source,
                Opening {
                    src: ip("0.0.0.0"),
                    ..honest(0)
                },
            ),
            (
                Forged::Source,
                Opening {
                    src: ip("224.0.0.1"),
                    ..honest(0)
                },
            ),
            (
                Forged::Source,
                Opening {
                    src: ip("255.255.255.255"),
                    ..honest(0)
                },
            ),
            (
                Forged::Source,
                Opening {
                    src: ip("::ffff:198.51.100.7"),
                    dst: ip("2001:db8::1"),
                    ..honest(0)
                },
            ),
            (
                Forged::Destination,
                Opening {
                    dst: ip("192.0.2.99"),
                    ..honest(0)
                },
            ),
            (
                Forged::Destination,
                Opening {
                    dst: ip("192.0.2.1"),
                    ..honest(3)
                },
            ),
            (
                Forged::Protocol,
                Opening {
                    proto: Proto::Tcp,
                    ..honest(0)
                },
            ),
            (
                Forged::Acl,
                Opening {
                    src: ip("10.1.2.3"),
                    ..honest(1)
                },
            ),
            (
                Forged::Future,
                Opening {
                    at: at(5_000),
                    ..honest(0)
                },
            ),
        ];
        let n = cases.len() as u64;
        let mut s = service();
        for (i, (reason, o)) in cases.into_iter().enumerate() {
            let out = outcome(&mut s, o);
            assert!(
                !out.iter()
                    .any(|l| l.contains("OPEN SESAME") || l.starts_with("run ")),
                "{reason:?}: {out:?}"
            );
            assert_eq!(s.validate(&o, at(0)), Err(reason), "case {i}");
            // The first of the minute is said with its reason; the rest
            // are counted.
            if i == 0 {
                assert_eq!(out.len(), 1, "{out:?}");
                assert!(out[0].contains(reason.as_str()), "{out:?}");
            } else {
                assert!(out.is_empty(), "{reason:?}: {out:?}");
            }
        }
        assert_eq!(s.dropped_proposals(), n);
        // Summed up once the minute is over.
        s.handle_timeout(at(61_000));
        let mut lines = Vec::new();
        while let Some(e) = s.poll_effect() {
            if let Effect::Log(n @ Notice::ProposalsDroppedMore { .. }) = e {
                lines.push(n.to_string());
            }
        }
        assert_eq!(
            lines,
            vec![format!(
                "{} more proposed opening(s) dropped in the last minute",
                n - 1
            )]
        );
    }

    #[test]
    fn a_used_door_accepts_no_proposal() {
        // A replay through the sensor's seam is refused like a knock's.
        let mut s = service();
        assert!(outcome(&mut s, honest(2))
            .iter()
            .any(|l| l.ends_with("OPEN SESAME")));
        let again = outcome(
            &mut s,
            Opening {
                src: ip("203.0.113.50"),
                ..honest(2)
            },
        );
        assert_eq!(
            again,
            vec!["203.0.113.50: ssh: replayed sequence refused".to_string()]
        );
    }
}
