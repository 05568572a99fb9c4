//! Checks that a capture filter compiles, without privileges or an interface.
//!
//! The filter *text* is a pure function of the doors and lives in
//! [`crate::core::filter`]; compiling it needs libpcap, which the core must
//! not touch, so the check lives here in the shell. It must only compile
//! against a dead handle, never open a live capture or install a filter
//! (that is [`super::capture`]), so that `--check`-style callers and tests
//! can run it unprivileged.

#[cfg(test)]
mod tests;

/// Why a filter could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("cannot compile capture filter for link type {linktype:?}: {source}")]
pub struct CompileError {
    pub linktype: pcap::Linktype,
    #[source]
    pub source: pcap::Error,
}

/// Compiles `filter` (optimized, as the capture does) for `linktype` on a
/// dead handle: lets `--check`-style callers and tests verify a filter
/// without privileges or an interface.
///
/// `linktype` is what pcap reports for a capture (a DLT). The one exception
/// accepted is [`pcap::Linktype::RAW`] (101, the savefile number for raw IP):
/// `pcap_compile` on a handle opened with it fails ("unknown data link type
/// 101"), so it is compiled as DLT_RAW (12), which is what pcap reports for
/// such captures, live or from a file.
pub fn compile_check(filter: &str, linktype: pcap::Linktype) -> Result<(), CompileError> {
    let err = |source| CompileError { linktype, source };
    let dlt = if linktype == pcap::Linktype::RAW {
        pcap::Linktype(DLT_RAW)
    } else {
        linktype
    };
    let cap = pcap::Capture::dead(dlt).map_err(err)?;
    cap.compile(filter, true).map_err(err)?;
    Ok(())
}

/// DLT_RAW on Linux and most systems (OpenBSD: 14).
const DLT_RAW: i32 = 12;
