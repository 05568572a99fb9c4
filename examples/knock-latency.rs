//! Knock → command latency: how long a running knockd takes from the last
//! packet of a knock to its start command's `execve`, against spawning the
//! same command directly, so what is left is the daemon's own share
//! (SPEC §9: at most 0.3 ms median).
//!
//! As root: `cargo run --release --example knock-latency -- [--knockd PATH]
//! [--runs N] [--state-dir DIR] [--each]`. It starts `knockd -i lo` with
//! one door (TCP SYNs to 7001, 7002, 7003; a stop command, so every opening
//! is journaled and synced before its start runs), then N times, in turn:
//! - knocks from a new source (127.0.0.x, frames written on `lo` as
//!   tests/support's injector does), noting the time just before the last
//!   packet, and the time the kernel reports knockd's child `execve`d;
//! - spawns the same `/bin/sh -c COMMAND` itself (std's spawn) and notes
//!   the same.
//!
//! The times of `execve` come from the kernel's process events (the proc
//! connector, CLOCK_MONOTONIC), not from the command noting when it ran: on
//! a loaded machine starting a shell and a program varies by milliseconds,
//! which would drown what is measured here. The state file lives in a fresh
//! directory under /tmp unless `--state-dir` names another (the journal
//! sync costs what that file system makes it cost; on tmpfs, nothing).
//! Prints the median and p99 of each path, in µs, and the daemon's share.

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;

/// The door's ports, in order.
const PORTS: [u16; 3] = [7001, 7002, 7003];
/// How long one knock or spawn may take before the run fails.
const LIMIT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match measure(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("knock-latency: {e}");
            ExitCode::FAILURE
        }
    }
}

/// CLOCK_MONOTONIC in ns: the clock of the kernel's process events.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

struct Options {
    knockd: PathBuf,
    runs: usize,
    state_dir: Option<PathBuf>,
    /// Print every measurement (ns).
    each: bool,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        knockd: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/release/knockd"
        )),
        runs: 50,
        state_dir: None,
        each: false,
    };
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        o.knockd = Path::new(&dir).join("release/knockd");
    }
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--knockd" => o.knockd = PathBuf::from(value()?),
            "--runs" => {
                o.runs = value()?
                    .parse()
                    .ok()
                    .filter(|n| (1..=200).contains(n))
                    .ok_or("--runs takes a number from 1 to 200")?
            }
            "--state-dir" => o.state_dir = Some(PathBuf::from(value()?)),
            "--each" => o.each = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn measure(args: &[String]) -> Result<(), String> {
    let o = options(args)?;
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root (capture and injection on lo, process events)".into());
    }
    if !o.knockd.exists() {
        return Err(format!(
            "{} not found: cargo build --release, or --knockd PATH",
            o.knockd.display()
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    // A directory of its own: knockd refuses a state file others could
    // replace (such as one directly in /dev/shm).
    let state_dir = match &o.state_dir {
        Some(d) => {
            let own = d.join(format!("knock-latency-{}", std::process::id()));
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&own)
                .map_err(|e| format!("creating {}: {e}", own.display()))?;
            own
        }
        None => dir.path().to_path_buf(),
    };
    let state = state_dir.join("state");
    let command = "/bin/true";
    let config = dir.path().join("knockd.conf");
    let log = dir.path().join("knockd.log");
    fs::write(
        &config,
        format!(
            "[options]\n\tLogFile = {}\n\tStateFile = {}\n\tMaxOpensPerMinute = 1000\n\
             [latency]\n\tsequence = {}\n\tseq_timeout = 5\n\ttcpflags = syn\n\
             \tstart_command = {command} %IP%\n\tstop_command = true\n\tcmd_timeout = 3600\n",
            log.display(),
            state.display(),
            PORTS.map(|p| p.to_string()).join(","),
        ),
    )
    .and_then(|()| fs::set_permissions(&config, fs::Permissions::from_mode(0o600)))
    .map_err(|e| format!("writing the config: {e}"))?;

    let mut execs = ExecWatch::open()?;
    let mut daemon = Daemon::start(&o.knockd, &config, &log)?;
    let daemon_pid = daemon.pid();
    let own_pid = std::process::id();
    let mut inject = Injector::lo()?;
    let (mut via_daemon, mut direct) = (Vec::new(), Vec::new());
    let result = (|| {
        for i in 0..o.runs {
            let src = [127, 0, 0, 10 + i as u8];
            for port in &PORTS[..PORTS.len() - 1] {
                inject.syn(src, *port)?;
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(Duration::from_millis(5));
            let last = syn_frame(src, PORTS[PORTS.len() - 1])?;
            let sent = monotonic_ns();
            inject.send(last)?;
            let execve = execs.exec_by(daemon_pid, sent, &[daemon_pid, own_pid])?;
            if o.each {
                println!("knock {i}: sent {sent} execve {execve}");
            }
            via_daemon.push(execve - sent);
            // Let the command end and be reaped before the direct spawn.
            std::thread::sleep(Duration::from_millis(20));
            let start = monotonic_ns();
            let mut child = Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("{command} 127.0.0.{}", 10 + i))
                .stdin(Stdio::null())
                .spawn()
                .map_err(|e| format!("spawning /bin/sh: {e}"))?;
            let execve = execs.exec_by(own_pid, start, &[daemon_pid, own_pid])?;
            if o.each {
                println!("spawn {i}: spawned {start} execve {execve}");
            }
            direct.push(execve - start);
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok::<(), String>(())
    })();
    daemon.stop();
    if o.state_dir.is_some() {
        let _ = fs::remove_dir_all(&state_dir);
    }
    result?;
    // Each knock and the spawn after it ran under the same load: the
    // median of their differences is steadier than the difference of the
    // medians on a busy machine.
    let mut paired: Vec<f64> = via_daemon
        .iter()
        .zip(&direct)
        .map(|(d, s)| *d as f64 - *s as f64)
        .collect();
    paired.sort_by(f64::total_cmp);
    let (d, s) = (summary(&mut via_daemon), summary(&mut direct));
    println!(
        "knock -> execve, {} knocks, state file {}",
        o.runs,
        state.display()
    );
    println!("  via knockd:   median {:7.1} us  p99 {:7.1} us", d.0, d.1);
    println!("  direct spawn: median {:7.1} us  p99 {:7.1} us", s.0, s.1);
    println!(
        "  knockd's share (difference of medians): {:.1} us",
        d.0 - s.0
    );
    println!(
        "  knockd's share (median of paired differences): {:.1} us",
        median(&paired) / 1e3
    );
    Ok(())
}

/// Median and p99, in µs.
fn summary(ns: &mut [u64]) -> (f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| ns[((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len()) - 1];
    let sorted: Vec<f64> = ns.iter().map(|n| *n as f64).collect();
    (median(&sorted) / 1e3, at(0.99) as f64 / 1e3)
}

/// The median of sorted values.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 0 {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    } else {
        sorted[n / 2]
    }
}

/// The kernel's process events (the proc connector): when the children of
/// the processes watched `execve`, in CLOCK_MONOTONIC.
struct ExecWatch {
    sock: OwnedFd,
    /// Children not yet exec'd, by pid: their parent.
    forked: HashMap<u32, u32>,
    /// First exec of each watched child, in order: (parent, time).
    execs: Vec<(u32, u64)>,
}

/// Netlink and connector numbers from linux/connector.h and cn_proc.h.
const NETLINK_CONNECTOR: i32 = 11;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_EVENT_FORK: u32 = 1;
const PROC_EVENT_EXEC: u32 = 2;
/// Where a proc_event starts in a message: nlmsghdr (16), cn_msg (20).
const EVENT: usize = 36;

impl ExecWatch {
    fn open() -> Result<ExecWatch, String> {
        let err =
            |what: &str| format!("{what} process events: {}", std::io::Error::last_os_error());
        // SAFETY: plain socket(2); the descriptor is owned just below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_CONNECTOR,
            )
        };
        if fd < 0 {
            return Err(err("opening"));
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        // Every process's events arrive here: room for a busy machine's.
        let size: libc::c_int = 8 << 20;
        // SAFETY: an int option of the size given.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                4,
            )
        };
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: a timeval option of the size given.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        // SAFETY: a zeroed sockaddr_nl is valid; the fields are set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = CN_IDX_PROC;
        // SAFETY: `addr` is a sockaddr_nl of the size given.
        let r = unsafe {
            libc::bind(
                fd,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r != 0 {
            return Err(err("binding"));
        }
        // nlmsghdr, cn_msg, then the operation.
        let mut msg = Vec::new();
        msg.extend_from_slice(&40u32.to_ne_bytes());
        msg.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&std::process::id().to_ne_bytes());
        for v in [CN_IDX_PROC, CN_VAL_PROC, 0, 0] {
            msg.extend_from_slice(&v.to_ne_bytes());
        }
        msg.extend_from_slice(&4u16.to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
        // SAFETY: the message's bytes, on our netlink socket.
        if unsafe { libc::send(fd, msg.as_ptr().cast(), msg.len(), 0) } < 0 {
            return Err(err("subscribing to"));
        }
        Ok(ExecWatch {
            sock,
            forked: HashMap::new(),
            execs: Vec::new(),
        })
    }

    /// When a child of `parent` first exec'd at or after `after`; children
    /// of every process in `watched` are followed meanwhile.
    fn exec_by(&mut self, parent: u32, after: u64, watched: &[u32]) -> Result<u64, String> {
        let until = Instant::now() + LIMIT;
        loop {
            self.execs.retain(|(_, t)| *t >= after);
            if let Some(i) = self.execs.iter().position(|(p, _)| *p == parent) {
                return Ok(self.execs.remove(i).1);
            }
            if Instant::now() > until {
                return Err(format!("no exec by a child of {parent} within {LIMIT:?}"));
            }
            let mut buf = [0u8; 4096];
            // SAFETY: reads into a buffer we own, of the size given.
            let n =
                unsafe { libc::recv(self.sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < EVENT as isize + 32 {
                continue;
            }
            let u32_at =
                |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
            let at = u64::from(u32_at(EVENT + 8)) | (u64::from(u32_at(EVENT + 12)) << 32);
            match u32_at(EVENT) {
                PROC_EVENT_FORK => {
                    let (parent_tgid, child_pid, child_tgid) =
                        (u32_at(EVENT + 20), u32_at(EVENT + 24), u32_at(EVENT + 28));
                    // A new process (not a thread) of a watched one.
                    if child_pid == child_tgid && watched.contains(&parent_tgid) {
                        self.forked.insert(child_pid, parent_tgid);
                    }
                }
                PROC_EVENT_EXEC => {
                    if let Some(parent) = self.forked.remove(&u32_at(EVENT + 16)) {
                        self.execs.push((parent, at));
                    }
                }
                _ => {}
            }
        }
    }
}

/// The knockd under measurement, stopped (and its stops run) on drop.
struct Daemon(Option<Child>);

impl Daemon {
    fn start(knockd: &Path, config: &Path, log: &Path) -> Result<Daemon, String> {
        let child = Command::new(knockd)
            .args(["-i", "lo", "-c"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", knockd.display()))?;
        let mut daemon = Daemon(Some(child));
        let until = Instant::now() + LIMIT;
        while !fs::read_to_string(log).is_ok_and(|t| t.contains("starting up")) {
            if Instant::now() > until {
                daemon.stop();
                return Err("knockd did not start (see its stderr)".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(daemon)
    }

    fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    fn stop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let until = Instant::now() + Duration::from_secs(15);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes SYN frames on `lo`, which every capture there sees as received:
/// a raw packet socket, not libpcap, so that this program (the door's
/// command too) links nothing but libc and starts fast.
struct Injector(std::os::fd::OwnedFd);

impl Injector {
    fn lo() -> Result<Injector, String> {
        use std::os::fd::FromRawFd;
        let err = |what: &str| {
            format!(
                "{what} a packet socket on lo: {}",
                std::io::Error::last_os_error()
            )
        };
        // SAFETY: plain socket(2); the descriptor is owned just below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(err("opening"));
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: a zeroed sockaddr_ll is valid; the fields are set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        // SAFETY: a NUL-terminated interface name.
        addr.sll_ifindex = unsafe { libc::if_nametoindex(c"lo".as_ptr()) } as i32;
        // SAFETY: `addr` is a sockaddr_ll of the size given.
        let r = unsafe {
            libc::bind(
                fd,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r != 0 {
            return Err(err("binding"));
        }
        Ok(Injector(sock))
    }

    fn syn(&mut self, src: [u8; 4], dport: u16) -> Result<(), String> {
        self.send(syn_frame(src, dport)?)
    }

    fn send(&mut self, frame: Vec<u8>) -> Result<(), String> {
        use std::os::fd::AsRawFd;
        // SAFETY: the frame's bytes, on a socket bound to lo.
        let n = unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(format!(
                "sending on lo: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }
}

/// A TCP SYN from `src` to 127.0.0.1:`dport`, as an Ethernet frame.
fn syn_frame(src: [u8; 4], dport: u16) -> Result<Vec<u8>, String> {
    let b = PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv4(src, [127, 0, 0, 1], 64)
        .tcp(40000, dport, 1000, 1024)
        .syn();
    let mut frame = Vec::with_capacity(b.size(0));
    b.write(&mut frame, &[])
        .map_err(|e| format!("building a frame: {e}"))?;
    Ok(frame)
}
