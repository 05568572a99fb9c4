//! Exit codes from sysexits.h, shared by `knockd` and `knock`, so scripts
//! and service managers can tell a typo in a config from a missing
//! interface without parsing messages.

/// The command line was wrong.
pub const EX_USAGE: u8 = 64;
/// An input file is missing (a capture to replay, the client's doors file).
pub const EX_NOINPUT: u8 = 66;
/// A host name does not resolve (in the family asked).
pub const EX_NOHOST: u8 = 68;
/// Something needed is not available: an interface that cannot be captured,
/// a knock that could not be sent, a door still shut after every retry.
pub const EX_UNAVAILABLE: u8 = 69;
/// The system refused something (a socket, signal handlers, poll).
pub const EX_OSERR: u8 = 71;
/// An output file (log, state file, pid file) cannot be created.
pub const EX_CANTCREAT: u8 = 73;
/// Input/output failed midway (the client's `--connect` relay).
pub const EX_IOERR: u8 = 74;
/// Try again later: another instance holds the pid or state file.
pub const EX_TEMPFAIL: u8 = 75;
/// A config file (knockd.conf, the doors file) is wrong.
pub const EX_CONFIG: u8 = 78;
