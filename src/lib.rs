//! knockd-rs: a port-knock daemon, a drop-in replacement for knockd 0.8.
//!
//! Three layers, innermost first; an inner one never imports an outer one:
//! - [`core`]: every decision of the product, pure and synchronous. Text
//!   and bytes in, typed values out; inputs carry their time and outputs
//!   are effects as data. No files, processes, clocks, threads or sockets.
//! - [`daemon`]: the shell around it that carries effects out: capture,
//!   the poll loop, commands, journal, log, signals, netlink, lifecycle and
//!   the `knockd` command line.
//! - [`client`]: the `knock` binary's library; it uses only [`core`] (the
//!   knock vocabulary, and the rotating-sequence derivation it shares with
//!   the daemon).

pub mod client;
pub mod core;
pub mod daemon;
