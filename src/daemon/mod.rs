//! The shell: carries out what the core decides.
//!
//! It owns every file, process, socket, clock and signal of the daemon:
//! capture (pcap and its BPF filter), the poll loop, the command runner,
//! the journal and one-time files, the operator log, host-name lookups,
//! signals, netlink, the pid file, detaching, systemd notification and the
//! `knockd` command line. No rule of the SPEC lives here: where a decision
//! is needed, it asks [`crate::core`].

pub mod capture;
pub mod cli;
pub mod clock;
pub mod config_file;
pub mod detach;
pub mod effects;
pub mod fanout;
pub mod fds;
pub mod file_error;
pub mod filter_check;
pub mod footprint;
pub mod frames;
pub mod interfaces;
pub mod journal;
pub mod journald;
pub mod lookup;
pub mod netif;
pub mod netwatch;
pub mod nft;
pub mod nft_doors;
pub mod notify;
pub mod onetime_file;
pub mod oplog;
pub mod output;
pub mod packet_socket;
pub mod pcap_file;
pub mod pidfile;
pub mod privdrop;
pub mod recover;
pub mod replay;
pub mod routes;
pub mod run;
pub mod runner;
pub mod safe_file;
pub mod settings;
pub mod signals;
pub mod sockopt;
pub mod users;
pub mod waiter;
