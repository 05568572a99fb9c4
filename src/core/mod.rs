//! The pure core: every rule of the product, with no IO.
//!
//! What lives here takes text, bytes, knocks and an explicit `now`, and
//! returns typed values and effects as data; it never reads a clock, opens
//! a file or socket, spawns a process or a thread. That is what lets every
//! rule run as a fast deterministic test in virtual time, and a replayed
//! capture get exactly the decisions the live daemon made.
//!
//! - [`knock`]: the shared vocabulary (a knock, protocols, flags, time);
//! - [`cidr`]: address ranges for a door's `Allow` and `Deny`;
//! - [`config`]: knockd.conf text to typed doors, with `file:line` errors;
//! - [`wire`]: captured bytes and a link type to a [`knock::Knock`];
//! - [`filter`]: the BPF filter text for the doors;
//! - [`iface`]: which interface to capture on when none is named;
//! - [`engine`]: the per-source sequence state machine;
//! - [`service`]: every other decision of the daemon around the engine;
//! - [`ratelimit`]: flood-proof log volume;
//! - [`ring`]: how large a capture's kernel ring should be, and when;
//! - [`rotate`]: rotating sequences derived from a secret and the time;
//! - [`sysexits`]: the exit codes both binaries share.
//!
//! `unsafe` is denied here; the one exception is the engine's attempt
//! table hint module (cache prefetch and huge pages), which is documented
//! where it is.
#![deny(unsafe_code)]

pub mod cidr;
pub mod config;
pub mod engine;
pub mod filter;
pub mod iface;
pub mod knock;
pub mod ratelimit;
pub mod ring;
pub mod rotate;
pub mod service;
pub mod sysexits;
pub mod wire;
