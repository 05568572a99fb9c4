//! Rotating knock sequences: the ports of a door derived from a secret and
//! the time, so a sequence sniffed once is worth one period at most (and,
//! with replay refusal, nothing).
//!
//! The derivation is the interface between the daemon and every client
//! (ours, a script, a phone app), so it is specified exactly here and in
//! the README, with test vectors:
//!
//! ```text
//! counter = floor(unix_time / period)
//! msg     = "knockd-rs rotating sequence v1" || 0x00 || door name (UTF-8)
//!           || 0x00 || counter (8 bytes, big-endian)
//! block_j = HMAC-SHA256(key = secret, msg || j (4 bytes, big-endian)),
//!           j = 0, 1, 2, ...
//! stream  = block_0 || block_1 || ...  read 4 bytes at a time, big-endian
//! n       = last - first + 1           (the port range, inclusive)
//! step k  : take the next value v of the stream; if v >= 2^32 - (2^32 mod n)
//!           take another (no modulo bias); port = first + (v mod n); if
//!           that port is already in the sequence, take another (no port
//!           twice); protocol = protocols[k], or protocols[0] for all steps.
//! ```
//!
//! Pure: no clock is read here; the caller says which counter.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::core::config::{Sequence, Step, MAX_SEQUENCE_LEN};
use crate::core::knock::Proto;

/// The label every derivation starts with: a new version of the scheme gets
/// a new label, so two versions can never agree by accident.
pub const LABEL: &[u8] = b"knockd-rs rotating sequence v1";

/// Shortest secret accepted: 128 bits.
pub const MIN_SECRET_BYTES: usize = 16;
/// Longest secret accepted.
pub const MAX_SECRET_BYTES: usize = 64;
/// Bytes of a secret made by `knock --gen-secret`: 256 bits.
pub const GENERATED_SECRET_BYTES: usize = 32;
/// Largest `Sequence_Skew`: periods accepted on either side of the current
/// one.
pub const MAX_SKEW: u8 = 3;

/// A door's secret. Never printed: its `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// Why a secret's text is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("not base32 (letters A-Z and digits 2-7)")]
    NotBase32,
    #[error(
        "{0} bytes is too short (at least {MIN_SECRET_BYTES}); make one with knock --gen-secret"
    )]
    TooShort(usize),
    #[error("{0} bytes is too long (at most {MAX_SECRET_BYTES})")]
    TooLong(usize),
}

impl Secret {
    /// A secret from its bytes (length checked).
    pub fn new(bytes: Vec<u8>) -> Result<Secret, SecretError> {
        match bytes.len() {
            n if n < MIN_SECRET_BYTES => Err(SecretError::TooShort(n)),
            n if n > MAX_SECRET_BYTES => Err(SecretError::TooLong(n)),
            _ => Ok(Secret(bytes)),
        }
    }

    /// A secret from base32 text (RFC 4648; case, spaces, newlines and `=`
    /// padding ignored), as in a secret file or `Sequence_Secret`.
    pub fn from_base32(text: &str) -> Result<Secret, SecretError> {
        let clean: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '=')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bytes = data_encoding::BASE32_NOPAD
            .decode(clean.as_bytes())
            .map_err(|_| SecretError::NotBase32)?;
        Secret::new(bytes)
    }

    /// The secret as base32 text, for writing a secret file.
    pub fn to_base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }
}

/// How a door's sequence rotates (everything but the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Steps per sequence, 1 ..= 32, at most the number of ports.
    pub length: u8,
    /// The port range, inclusive.
    pub first: u16,
    pub last: u16,
    /// One protocol for every step, or one per step.
    pub protocols: Vec<Proto>,
    /// Seconds per period.
    pub period: u64,
    /// Periods accepted on either side of the current one.
    pub skew: u8,
}

/// Why a rotation is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    #[error("Sequence_Length {0} is out of range (1-{MAX_SEQUENCE_LEN})")]
    Length(u8),
    #[error("Sequence_Length {length} is more than the {ports} ports of Sequence_Ports (no port repeats)")]
    MorePortsThanRange { length: u8, ports: u32 },
    #[error(
        "Sequence_Protocols names {given} protocols for {length} steps (give one, or one per step)"
    )]
    Protocols { given: usize, length: u8 },
    #[error("Sequence_Period must be at least 1 second")]
    Period,
    #[error("Sequence_Skew {0} is out of range (0-{MAX_SKEW})")]
    Skew(u8),
}

/// The fewest sequences a door should leave a guesser per opening: below
/// this a scan of the port range (a few packets per try) opens the door in
/// hours or less.
pub const WEAK_BELOW: u128 = 1 << 32;

impl Rotation {
    /// How many different sequences the rotation can derive: the ports
    /// taken `length` at a time, in order, none twice (`n!/(n-length)!`).
    /// Capped at [`WEAK_BELOW`] times the accepted periods, enough to
    /// decide [`Rotation::tries`] without overflow (32 steps of 65535
    /// ports would need 512 bits).
    pub fn sequences(&self) -> u128 {
        let ports = u128::from(self.last.saturating_sub(self.first)) + 1;
        let cap = WEAK_BELOW * self.accepted_periods();
        let mut n: u128 = 1;
        for i in 0..u128::from(self.length) {
            n = n.saturating_mul(ports.saturating_sub(i));
            if n >= cap {
                return cap;
            }
        }
        n
    }

    /// Periods whose sequence opens at any one time: the current one and
    /// `skew` on either side.
    pub fn accepted_periods(&self) -> u128 {
        2 * u128::from(self.skew) + 1
    }

    /// About how many sequences a guesser must try per opening: the
    /// sequences over the periods accepted at once (rounded up). Under
    /// [`WEAK_BELOW`] the config check warns.
    pub fn tries(&self) -> u128 {
        self.sequences().div_ceil(self.accepted_periods())
    }

    /// Checks what the parser cannot check one directive at a time.
    pub fn validate(&self) -> Result<(), RotationError> {
        if self.length == 0 || self.length as usize > MAX_SEQUENCE_LEN {
            return Err(RotationError::Length(self.length));
        }
        let ports = u32::from(self.last) - u32::from(self.first) + 1;
        if u32::from(self.length) > ports {
            return Err(RotationError::MorePortsThanRange {
                length: self.length,
                ports,
            });
        }
        let given = self.protocols.len();
        if given != 1 && given != self.length as usize {
            return Err(RotationError::Protocols {
                given,
                length: self.length,
            });
        }
        if self.period == 0 {
            return Err(RotationError::Period);
        }
        if self.skew > MAX_SKEW {
            return Err(RotationError::Skew(self.skew));
        }
        Ok(())
    }

    /// The period counter of Unix time `unix_secs`.
    pub fn counter(&self, unix_secs: u64) -> u64 {
        unix_secs / self.period.max(1)
    }

    /// The protocol of step `k`.
    fn protocol(&self, k: usize) -> Proto {
        self.protocols
            .get(k)
            .or(self.protocols.first())
            .copied()
            .unwrap_or(Proto::Tcp)
    }
}

/// The HMAC-SHA256 byte stream of the spec, four bytes at a time.
struct Stream {
    mac: Hmac<Sha256>,
    block: [u8; 32],
    used: usize,
    next_block: u32,
}

impl Stream {
    fn new(secret: &Secret, door: &str, counter: u64) -> Stream {
        // new_from_slice accepts any key length for HMAC.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(LABEL);
        mac.update(&[0]);
        mac.update(door.as_bytes());
        mac.update(&[0]);
        mac.update(&counter.to_be_bytes());
        Stream {
            mac,
            block: [0; 32],
            used: 32,
            next_block: 0,
        }
    }

    fn next_u32(&mut self) -> u32 {
        if self.used == 32 {
            let mut m = self.mac.clone();
            m.update(&self.next_block.to_be_bytes());
            self.block.copy_from_slice(&m.finalize().into_bytes());
            self.next_block = self.next_block.wrapping_add(1);
            self.used = 0;
        }
        let b = &self.block[self.used..self.used + 4];
        self.used += 4;
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

/// The sequence of `door` for period `counter`. The rotation must be valid
/// ([`Rotation::validate`]); an invalid one gives a shorter sequence rather
/// than a panic.
pub fn sequence(secret: &Secret, door: &str, rotation: &Rotation, counter: u64) -> Sequence {
    let n = u64::from(rotation.last.max(rotation.first) - rotation.first) + 1;
    // The largest multiple of n that fits in 2^32: values at or above it
    // would favour low ports.
    let limit = (1u64 << 32) - (1u64 << 32) % n;
    let length = (rotation.length as usize)
        .min(MAX_SEQUENCE_LEN)
        .min(n as usize)
        .max(1);
    let mut stream = Stream::new(secret, door, counter);
    let mut steps: Vec<Step> = Vec::with_capacity(length);
    while steps.len() < length {
        let v = u64::from(stream.next_u32());
        if v >= limit {
            continue;
        }
        let port = rotation.first + (v % n) as u16;
        if steps.iter().any(|s| s.port == port) {
            continue;
        }
        let proto = rotation.protocol(steps.len());
        steps.push(Step { port, proto });
    }
    Sequence::new(steps).unwrap_or_else(|| unreachable!("1 ..= 32 steps"))
}

#[cfg(test)]
mod tests;
