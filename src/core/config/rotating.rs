//! The `Sequence_*` directives of a rotating door, gathered while its
//! section is read and checked together at its end.

use std::path::PathBuf;

use super::{SecretSource, SequenceSource};
use crate::core::knock::Proto;
use crate::core::rotate::{Rotation, Secret};

/// Default `Sequence_Period`, in seconds.
pub const DEFAULT_PERIOD: u64 = 30;
/// Default `Sequence_Skew`: the previous and next period are accepted too,
/// for clocks a little apart and knocks that cross a boundary.
pub const DEFAULT_SKEW: u8 = 1;
/// Longest `Sequence_Period`: a day; longer is no rotation. The client
/// takes the same bound.
pub const MAX_PERIOD: u64 = 86_400;

/// Whether `upper` (a key in upper case) is one of these directives.
pub fn is_rotating_key(upper: &str) -> bool {
    matches!(
        upper,
        "SEQUENCE_SECRET_FILE"
            | "SEQUENCE_SECRET_DIR"
            | "SEQUENCE_SECRET"
            | "SEQUENCE_LENGTH"
            | "SEQUENCE_PORTS"
            | "SEQUENCE_PROTOCOLS"
            | "SEQUENCE_PERIOD"
            | "SEQUENCE_SKEW"
    )
}

/// What a door's section said so far.
#[derive(Default)]
pub struct RotatingBuilder {
    /// Line of the first of these directives, for messages about the door.
    pub first_line: Option<usize>,
    secret: Option<SecretSource>,
    length: Option<u8>,
    ports: Option<(u16, u16)>,
    protocols: Option<Vec<Proto>>,
    period: Option<u64>,
    skew: Option<u8>,
}

impl RotatingBuilder {
    /// Takes one directive (`upper` is its key in upper case, `key` as
    /// written); `Err` is what is wrong with its value.
    pub fn directive(
        &mut self,
        number: usize,
        upper: &str,
        key: &str,
        value: &str,
    ) -> Result<(), String> {
        self.first_line.get_or_insert(number);
        match upper {
            "SEQUENCE_SECRET_FILE" | "SEQUENCE_SECRET" | "SEQUENCE_SECRET_DIR"
                if self.secret.is_some() =>
            {
                Err(
                    "a door has one Sequence_Secret, Sequence_Secret_File or Sequence_Secret_Dir"
                        .into(),
                )
            }
            "SEQUENCE_SECRET_DIR" => {
                self.secret = Some(SecretSource::Dir {
                    path: PathBuf::from(value),
                    line: number,
                    key: key.to_string(),
                    users: None,
                });
                Ok(())
            }
            "SEQUENCE_SECRET_FILE" => {
                self.secret = Some(SecretSource::File {
                    path: PathBuf::from(value),
                    line: number,
                    key: key.to_string(),
                    secret: None,
                });
                Ok(())
            }
            "SEQUENCE_SECRET" => {
                let secret = Secret::from_base32(value).map_err(|e| e.to_string())?;
                self.secret = Some(SecretSource::Inline(secret));
                Ok(())
            }
            "SEQUENCE_LENGTH" => {
                self.length = Some(number_in(value, 1, 32)? as u8);
                Ok(())
            }
            "SEQUENCE_PORTS" => {
                let (a, b) = value
                    .split_once('-')
                    .ok_or_else(|| format!("\"{value}\" is not a port range (FIRST-LAST)"))?;
                let first = number_in(a.trim(), 1, 65535)? as u16;
                let last = number_in(b.trim(), 1, 65535)? as u16;
                if first > last {
                    return Err(format!("\"{value}\": the first port is above the last"));
                }
                self.ports = Some((first, last));
                Ok(())
            }
            "SEQUENCE_PROTOCOLS" => {
                let protocols = value
                    .split(',')
                    .map(|p| match p.trim().to_ascii_lowercase().as_str() {
                        "tcp" => Ok(Proto::Tcp),
                        "udp" => Ok(Proto::Udp),
                        other => Err(format!(
                            "unknown protocol \"{other}\" (expected tcp or udp)"
                        )),
                    })
                    .collect::<Result<Vec<Proto>, String>>()?;
                self.protocols = Some(protocols);
                Ok(())
            }
            "SEQUENCE_PERIOD" => {
                self.period = Some(number_in(value, 1, MAX_PERIOD)?);
                Ok(())
            }
            "SEQUENCE_SKEW" => {
                let max = u64::from(crate::core::rotate::MAX_SKEW);
                self.skew = Some(number_in(value, 0, max)? as u8);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether the door has users (`Sequence_Secret_Dir`): `%USER%` names
    /// one only there.
    pub fn has_users(&self) -> bool {
        matches!(self.secret, Some(SecretSource::Dir { .. }))
    }

    /// The door's sequence source, or what is missing or inconsistent.
    pub fn finish(self, door: &str) -> Result<SequenceSource, String> {
        let secret = self.secret.ok_or_else(|| {
            format!("door [{door}] has Sequence_* directives but no Sequence_Secret, Sequence_Secret_File or Sequence_Secret_Dir")
        })?;
        let (first, last) = self
            .ports
            .ok_or_else(|| format!("door [{door}] has no Sequence_Ports (FIRST-LAST)"))?;
        let length = self
            .length
            .ok_or_else(|| format!("door [{door}] has no Sequence_Length"))?;
        let rotation = Rotation {
            length,
            first,
            last,
            protocols: self.protocols.unwrap_or_else(|| vec![Proto::Tcp]),
            period: self.period.unwrap_or(DEFAULT_PERIOD),
            skew: self.skew.unwrap_or(DEFAULT_SKEW),
        };
        rotation.validate().map_err(|e| e.to_string())?;
        Ok(SequenceSource::Rotating { secret, rotation })
    }
}

fn number_in(value: &str, min: u64, max: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "\"{value}\" is not a whole number from {min} to {max}"
        )),
    }
}
