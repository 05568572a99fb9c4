//! Waiting for the run loop's descriptors with epoll.
//!
//! `poll(2)` registers every descriptor again on every call and removes it
//! after; at a paced flood, where every packet is a wake-up of its own,
//! that was a microsecond a packet. An epoll set keeps its registrations,
//! so a wake-up costs the descriptors that are ready and no more. The set
//! follows the loop's descriptors as captures come and go: each is
//! registered with the serial number of the capture it belongs to, so a
//! capture reopened under the number of a closed one (which the kernel
//! dropped from the set when it closed) is registered again.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::poll::PollTimeout;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

/// What a ready descriptor is, as the loop tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// The capture of interface slot N.
    Capture(usize),
    /// The signal self-pipe.
    Signals,
    /// Link and address changes.
    Netlink,
    /// Host-name lookups done (`-l`).
    Lookup,
}

impl Token {
    fn to_u64(self) -> u64 {
        match self {
            Token::Capture(i) => i as u64,
            Token::Signals => u64::MAX,
            Token::Netlink => u64::MAX - 1,
            Token::Lookup => u64::MAX - 2,
        }
    }

    fn from_u64(v: u64) -> Token {
        match v {
            u64::MAX => Token::Signals,
            x if x == u64::MAX - 1 => Token::Netlink,
            x if x == u64::MAX - 2 => Token::Lookup,
            i => Token::Capture(usize::try_from(i).unwrap_or(usize::MAX)),
        }
    }
}

/// One descriptor to wait for: what it is, the descriptor, and the serial
/// number of what owns it (0 for those that live as long as the daemon).
pub type Wanted<'a> = (Token, BorrowedFd<'a>, u64);

/// An epoll set and what is registered in it.
pub struct Waiter {
    epoll: Epoll,
    registered: Vec<(Token, RawFd, u64)>,
    events: Vec<EpollEvent>,
    ready: Vec<Token>,
}

impl Waiter {
    pub fn new() -> nix::Result<Self> {
        Ok(Waiter {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            registered: Vec::new(),
            events: vec![EpollEvent::empty(); 8],
            ready: Vec::new(),
        })
    }

    /// Whether the set already holds exactly `wanted` (checked each turn,
    /// without allocating).
    pub fn matches<'a>(&self, wanted: impl Iterator<Item = Wanted<'a>>) -> bool {
        let mut n = 0;
        for (t, fd, serial) in wanted {
            if self.registered.get(n) != Some(&(t, fd.as_raw_fd(), serial)) {
                return false;
            }
            n += 1;
        }
        n == self.registered.len()
    }

    /// Makes the set hold exactly `wanted`, in its order.
    pub fn sync(&mut self, wanted: &[Wanted<'_>]) -> nix::Result<()> {
        let now: Vec<(Token, RawFd, u64)> = wanted
            .iter()
            .map(|&(t, fd, s)| (t, fd.as_raw_fd(), s))
            .collect();
        // What is no longer wanted goes first. Its descriptor may already
        // be closed (the kernel then dropped it from the set) or even be
        // the number of something else now: either way there is nothing
        // to remove, and anything wanted under that number is added below.
        for old in &self.registered {
            if !now.contains(old) {
                // By number: the descriptor is not ours to borrow any more.
                // SAFETY: epoll_ctl only looks the number up; DEL reads no
                // event (null is allowed since Linux 2.6.9).
                let _ = unsafe {
                    libc::epoll_ctl(
                        self.epoll.0.as_raw_fd(),
                        libc::EPOLL_CTL_DEL,
                        old.1,
                        std::ptr::null_mut(),
                    )
                };
            }
        }
        for &(t, fd, serial) in wanted {
            let entry = (t, fd.as_raw_fd(), serial);
            if self.registered.contains(&entry) {
                continue;
            }
            let event = EpollEvent::new(EpollFlags::EPOLLIN, t.to_u64());
            match self.epoll.add(fd, event) {
                Err(nix::Error::EEXIST) => self.epoll.modify(fd, &mut event.clone())?,
                other => other?,
            }
        }
        self.registered = now;
        if self.events.len() < self.registered.len() {
            self.events
                .resize(self.registered.len(), EpollEvent::empty());
        }
        Ok(())
    }

    /// Waits until a descriptor is ready or `timeout` passes; the ready
    /// ones are then [`Waiter::ready`].
    pub fn wait(&mut self, timeout: PollTimeout) -> nix::Result<()> {
        self.ready.clear();
        let n = self.epoll.wait(&mut self.events, timeout)?;
        self.ready
            .extend(self.events[..n].iter().map(|e| Token::from_u64(e.data())));
        Ok(())
    }

    /// What the last wait found ready.
    pub fn ready(&self) -> &[Token] {
        &self.ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn wait_now(w: &mut Waiter) -> Vec<Token> {
        w.wait(PollTimeout::ZERO).unwrap();
        w.ready().to_vec()
    }

    #[test]
    fn ready_descriptors_are_reported_by_token_until_read() {
        let mut w = Waiter::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        let (_c, d) = UnixStream::pair().unwrap();
        let wanted = [
            (Token::Capture(2), b.as_fd(), 7),
            (Token::Signals, d.as_fd(), 0),
        ];
        assert!(!w.matches(wanted.iter().copied()));
        w.sync(&wanted).unwrap();
        assert!(w.matches(wanted.iter().copied()));
        assert!(wait_now(&mut w).is_empty());
        a.write_all(b"x").unwrap();
        // Level-triggered, like poll: reported again while unread.
        assert_eq!(wait_now(&mut w), vec![Token::Capture(2)]);
        assert_eq!(wait_now(&mut w), vec![Token::Capture(2)]);
    }

    #[test]
    fn a_descriptor_reopened_under_the_same_number_is_registered_again() {
        let mut w = Waiter::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        w.sync(&[(Token::Capture(0), b.as_fd(), 1)]).unwrap();
        // What the kernel does when the capture under this number closes;
        // a new capture then opens under the same number (not done for
        // real here: other tests' threads could take the number first).
        w.epoll.delete(b.as_fd()).unwrap();
        let wanted = [(Token::Capture(0), b.as_fd(), 2)];
        // Same number, another serial: not what is registered.
        assert!(!w.matches(wanted.iter().copied()));
        w.sync(&wanted).unwrap();
        a.write_all(b"x").unwrap();
        assert_eq!(wait_now(&mut w), vec![Token::Capture(0)]);
        // And gone when no longer wanted.
        w.sync(&[]).unwrap();
        assert!(wait_now(&mut w).is_empty());
    }

    #[test]
    fn tokens_survive_the_round_trip() {
        for t in [
            Token::Capture(0),
            Token::Capture(5),
            Token::Signals,
            Token::Netlink,
            Token::Lookup,
        ] {
            assert_eq!(Token::from_u64(t.to_u64()), t);
        }
    }
}
