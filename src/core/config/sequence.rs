//! `7000,8000:udp,9000:tcp`: the port-sequence syntax shared by `Sequence`
//! and one-time-sequences files.

use std::fmt;

use super::{Sequence, Step, MAX_SEQUENCE_LEN};
use crate::core::knock::Proto;

/// Why a sequence text is not valid. Displays as the "what is wrong" part of
/// a config message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceError {
    Empty,
    TooMany(usize),
    NotANumber(String),
    PortOutOfRange(String),
    UnknownProtocol(String),
}

impl fmt::Display for SequenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SequenceError::Empty => f.write_str("empty sequence"),
            SequenceError::TooMany(n) => write!(
                f,
                "{n} ports in the sequence; at most {MAX_SEQUENCE_LEN} are allowed"
            ),
            SequenceError::NotANumber(p) if p.is_empty() => {
                f.write_str("empty port (two commas in a row, or a trailing comma?)")
            }
            SequenceError::NotANumber(p) => write!(f, "port \"{p}\" is not a number"),
            SequenceError::PortOutOfRange(p) => {
                write!(f, "port {p} is out of range (1-65535)")
            }
            SequenceError::UnknownProtocol(p) => {
                write!(f, "unknown protocol \"{p}\" (expected tcp or udp)")
            }
        }
    }
}

/// Parses `port[:proto],...`. Whitespace around ports and protocols is
/// ignored, protocols are case-insensitive and default to tcp.
///
/// Unlike knockd 0.8 (which uses `atoi`), `7000,abc` and `70000` are errors,
/// never port 0 or a wrapped port.
pub fn parse_sequence(text: &str) -> Result<Sequence, SequenceError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(SequenceError::Empty);
    }
    let items: Vec<&str> = text.split(',').collect();
    if items.len() > MAX_SEQUENCE_LEN {
        return Err(SequenceError::TooMany(items.len()));
    }
    let mut steps = Vec::with_capacity(items.len());
    for item in items {
        let (port, proto) = match item.split_once(':') {
            Some((port, proto)) => (port.trim(), Some(proto.trim())),
            None => (item.trim(), None),
        };
        let port = parse_port(port)?;
        let proto = match proto {
            None => Proto::Tcp,
            Some(p) if p.eq_ignore_ascii_case("tcp") => Proto::Tcp,
            Some(p) if p.eq_ignore_ascii_case("udp") => Proto::Udp,
            Some(p) => return Err(SequenceError::UnknownProtocol(p.to_string())),
        };
        steps.push(Step { port, proto });
    }
    // 1..=32 steps: `text` is not empty and the count was checked above.
    Ok(Sequence(steps))
}

fn parse_port(text: &str) -> Result<u16, SequenceError> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SequenceError::NotANumber(text.to_string()));
    }
    match digits.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(SequenceError::PortOutOfRange(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(text: &str) -> Vec<(u16, Proto)> {
        parse_sequence(text)
            .unwrap()
            .steps()
            .iter()
            .map(|s| (s.port, s.proto))
            .collect()
    }

    #[test]
    fn protocol_defaults_to_tcp_and_is_case_insensitive() {
        assert_eq!(
            steps("7000, 8000:UDP ,9000:Tcp"),
            vec![(7000, Proto::Tcp), (8000, Proto::Udp), (9000, Proto::Tcp)]
        );
    }

    #[test]
    fn single_port_and_limits() {
        assert_eq!(steps("1"), vec![(1, Proto::Tcp)]);
        assert_eq!(steps("65535:udp"), vec![(65535, Proto::Udp)]);
        let max = vec!["1000"; 32].join(",");
        assert_eq!(parse_sequence(&max).unwrap().len(), 32);
        let over = vec!["1000"; 33].join(",");
        assert_eq!(parse_sequence(&over), Err(SequenceError::TooMany(33)));
    }

    #[test]
    fn rejects_what_knockd_silently_turns_into_port_zero() {
        assert_eq!(
            parse_sequence("7000,abc"),
            Err(SequenceError::NotANumber("abc".into()))
        );
        assert_eq!(
            parse_sequence("7000,,8000"),
            Err(SequenceError::NotANumber("".into()))
        );
        assert_eq!(
            parse_sequence("0"),
            Err(SequenceError::PortOutOfRange("0".into()))
        );
        assert_eq!(
            parse_sequence("-5"),
            Err(SequenceError::NotANumber("-5".into()))
        );
        assert_eq!(
            parse_sequence("70000"),
            Err(SequenceError::PortOutOfRange("70000".into()))
        );
        assert_eq!(
            parse_sequence("99999999999999999999"),
            Err(SequenceError::PortOutOfRange("99999999999999999999".into()))
        );
        assert_eq!(
            parse_sequence("7000:icmp"),
            Err(SequenceError::UnknownProtocol("icmp".into()))
        );
        assert_eq!(parse_sequence("  "), Err(SequenceError::Empty));
    }

    #[test]
    fn messages_read_well() {
        assert_eq!(
            SequenceError::PortOutOfRange("70000".into()).to_string(),
            "port 70000 is out of range (1-65535)"
        );
        assert_eq!(
            SequenceError::UnknownProtocol("icmp".into()).to_string(),
            "unknown protocol \"icmp\" (expected tcp or udp)"
        );
    }
}
