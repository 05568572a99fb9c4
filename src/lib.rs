//! knockd-rs: a port-knock daemon, a drop-in replacement for knockd 0.8.
//!
//! Layers, innermost first; an inner layer never imports an outer one:
//! - [`knock`]: the shared vocabulary (a knock, protocols, flags, time);
//! - [`config`]: knockd.conf text to typed doors, with line-numbered errors;
//! - [`wire`]: captured bytes and a link type to a [`knock::Knock`];
//! - [`engine`]: doors, knocks and `now` to actions and the next deadline;
//! - the shell: capture, commands, logging, signals, lifecycle and CLI.
//!
//! [`client`] is the `knock` binary's library; it uses only [`knock`].

pub mod capture;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod detach;
pub mod engine;
pub mod filter;
pub mod journal;
pub mod knock;
pub mod lookup;
pub mod netif;
pub mod netwatch;
pub mod notify;
pub mod onetime_file;
pub mod oplog;
pub mod pidfile;
pub mod ratelimit;
pub mod runner;
pub mod signals;
pub mod sysexits;
pub mod wire;
