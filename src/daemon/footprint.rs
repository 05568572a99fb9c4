//! What the daemon gives back to the system once it has started.
//!
//! Start-up runs code and allocates memory that the running daemon never
//! needs again: parsing the command line and the config, checking nft
//! sets, opening the journal, compiling the capture filter. Left alone,
//! that code stays mapped and that memory stays in the heap for as long as
//! the daemon runs, which on a quiet host is most of what it holds. So at
//! the end of start-up:
//!
//! - the heap's free memory is returned (`malloc_trim`);
//! - the daemon's own code and read-only data are unmapped from it
//!   (`MADV_DONTNEED`). They stay in the page cache, which keeps or
//!   reclaims them like any cached file; the pages a knock needs are
//!   mapped back the first time it comes, the rest never.
//!
//! Unmapping loses nothing only where every page is still a clean copy of
//! the file, so only mappings without a single private page are touched:
//! not the relocated read-only data (written by the dynamic linker), not
//! code a debugger has put a breakpoint in. (`MADV_PAGEOUT` would be safe
//! on any page, but skips pages of large page-cache folios, leaving half
//! the code mapped.)
//!
//! Shared libraries are left alone: other processes map most of them, and
//! they are not ours to evict.

use std::path::Path;

/// Returns start-up's memory and code pages to the system (see the module
/// docs). Failures are only logged at debug level: the daemon works the
/// same, it just holds more.
pub fn release_startup_memory() {
    trim_heap();
    let paged = std::env::current_exe().and_then(|exe| page_out_mappings_of(&exe));
    if let Err(e) = paged {
        tracing::debug!(%e, "executable not paged out");
    }
}

fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap memory to the system; it
    // touches no allocated block.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Unmaps every mapping of the file `exe` in this process that is not
/// writable and holds no private page.
fn page_out_mappings_of(exe: &Path) -> std::io::Result<()> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    for (start, end) in clean_read_only_mappings(&smaps, exe) {
        let Some(addr) = std::ptr::NonNull::new(start as *mut libc::c_void) else {
            continue;
        };
        // SAFETY: the range is a whole mapping of this process, as the
        // kernel listed it: a private mapping of `exe`, not writable, with
        // no private page. Unmapping its pages changes no contents: the
        // next access maps the same page of the file again.
        let r = unsafe { libc::madvise(addr.as_ptr(), end - start, libc::MADV_DONTNEED) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The address ranges of `smaps` (the format of `/proc/self/smaps`) that
/// map the file `exe` without write permission and with `Anonymous: 0 kB`
/// (no page written since it was mapped).
fn clean_read_only_mappings(smaps: &str, exe: &Path) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    // The mapping being read, if it is a candidate.
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let first = line.split(' ').next().unwrap_or("");
        if first.ends_with(':') {
            if let Some(kb) = line.strip_prefix("Anonymous:") {
                let anonymous = kb.trim().trim_end_matches("kB").trim();
                if let Some(range) = current.take().filter(|_| anonymous == "0") {
                    found.push(range);
                }
            }
            continue;
        }
        current = mapping_of(line, exe);
    }
    found
}

/// The range of a maps header line if it maps `exe` without write
/// permission: "start-end perms offset dev inode   path".
fn mapping_of(line: &str, exe: &Path) -> Option<(usize, usize)> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?;
    let path = fields.nth(3)?.trim_start();
    if perms.as_bytes().get(1) != Some(&b'-') || Path::new(path) != exe {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    (end > start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(header: &str, anonymous_kb: u32) -> String {
        format!("{header}\nSize:               4 kB\nRss:                4 kB\nAnonymous:      {anonymous_kb} kB\nVmFlags: rd mr mw me\n")
    }

    #[test]
    fn only_clean_unwritable_mappings_of_the_executable_are_unmapped() {
        let smaps = [
            entry("55d0c5a00000-55d0c5a97000 r--p 00000000 fd:01 1234   /usr/sbin/knockd", 0),
            entry("55d0c5a97000-55d0c5c9e000 r-xp 00097000 fd:01 1234   /usr/sbin/knockd", 0),
            // Relocated read-only data: written once, so private pages.
            entry("55d0c5c9e000-55d0c5caf000 r--p 0029e000 fd:01 1234   /usr/sbin/knockd", 72),
            entry("55d0c5caf000-55d0c5cb1000 rw-p 002af000 fd:01 1234   /usr/sbin/knockd", 0),
            entry("55d0c6000000-55d0c6021000 rw-p 00000000 00:00 0      [heap]", 132),
            entry("7f0000000000-7f0000028000 r--p 00000000 fd:01 99     /usr/lib/x86_64-linux-gnu/libc.so.6", 0),
            entry("7f00001a0000-7f00001a1000 r--p 00000000 fd:01 77     /usr/sbin/knockd-other", 0),
            entry("7f00001b0000-7f00001b1000 r--p 00000000 fd:01 77     /usr/sbin/knockd two", 0),
        ]
        .concat();
        let got = clean_read_only_mappings(&smaps, Path::new("/usr/sbin/knockd"));
        assert_eq!(
            got,
            vec![
                (0x55d0c5a00000, 0x55d0c5a97000),
                (0x55d0c5a97000, 0x55d0c5c9e000),
            ]
        );
        let spaced = clean_read_only_mappings(&smaps, Path::new("/usr/sbin/knockd two"));
        assert_eq!(spaced, vec![(0x7f00001b0000, 0x7f00001b1000)]);
    }

    /// Resident kilobytes of the mappings of `exe`, from smaps.
    fn resident_kb(exe: &Path) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let exe = exe.to_str().unwrap();
        let mut ours = false;
        let mut kb = 0;
        for line in smaps.lines() {
            if line
                .split(' ')
                .next()
                .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
            {
                ours = line.ends_with(exe);
            } else if let Some(rss) = line.strip_prefix("Rss:").filter(|_| ours) {
                kb += rss.trim().trim_end_matches(" kB").parse::<u64>().unwrap();
            }
        }
        kb
    }

    #[test]
    fn unmapping_the_running_executable_shrinks_it_and_it_runs_on() {
        let exe = std::env::current_exe().unwrap();
        let before = resident_kb(&exe);
        page_out_mappings_of(&exe).unwrap();
        let after = resident_kb(&exe);
        assert!(before > 0, "the test binary is not resident at all?");
        assert!(
            after < before / 2,
            "{after} kB resident after, {before} kB before"
        );
        // Its code and constants are still there.
        assert_eq!(format!("{:?}", Some(42)), "Some(42)");
    }
}
