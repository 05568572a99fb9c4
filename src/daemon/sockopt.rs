//! `setsockopt(2)` for any plain option value, so the capture modules
//! state what they set rather than how.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Sets `option` at `level` on `fd` to `val`, which the kernel copies
/// during the call (a value with pointers inside, such as a BPF program,
/// must keep what they point at alive until then).
pub fn set<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    option: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: the kernel reads `size_of::<T>()` bytes from `val`, a live
    // reference to a value of that size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            option,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Values the kernel may fill in with any bytes and still leave valid:
/// integers and C structs of them, nothing else (sealed to this list).
pub trait Plain: Copy + private::Sealed {}

mod private {
    pub trait Sealed {}
    impl Sealed for u32 {}
    impl Sealed for libc::tpacket_stats {}
}

impl Plain for u32 {}
impl Plain for libc::tpacket_stats {}

/// Reads `option` at `level` on `fd`: a plain value the kernel fills in,
/// starting from `val`.
pub fn get<T: Plain>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    option: libc::c_int,
    mut val: T,
) -> io::Result<T> {
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `val`, a live,
    // properly aligned value of that size, which any bytes leave valid
    // (`Plain`).
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            option,
            (&raw mut val).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(val)
}
