//! Knock → command latency: how long a running knockd takes from the last
//! packet of a knock to its start command's `execve`, against spawning the
//! same command directly, so what is left is the daemon's own share
//! (SPEC §9: at most 0.3 ms median).
//!
//! As root: `cargo run --release --example knock-latency -- [--knockd PATH]
//! [--runs N] [--state-dir DIR]`. It starts `knockd -i lo` with one door
//! (TCP SYNs to 7001, 7002, 7003; a stop command, so every opening is
//! journaled and synced before its start runs), then N times, alternately:
//! - knocks from a new source (127.0.0.x, frames written on `lo` as
//!   tests/support's injector does), noting the time just before the last
//!   packet, and reads the time the start command noted when it began;
//! - spawns the same `/bin/sh -c COMMAND` itself and reads the same.
//!
//! The command is this program again (`stamp FILE`), which appends
//! CLOCK_REALTIME to FILE first thing: both paths pay the same shell and
//! program start, so the difference of the medians is the daemon's: the
//! capture wake-up, its processing, the log line, the journal sync and its
//! way of spawning. The state file lives in a fresh directory under /tmp
//! unless `--state-dir` names another (the journal sync costs what that
//! file system makes it cost). Prints the median and p99 of each, in µs.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etherparse::PacketBuilder;

/// The door's ports, in order.
const PORTS: [u16; 3] = [7001, 7002, 7003];
/// How long one knock or spawn may take before the run fails.
const LIMIT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, file, ..] = args.as_slice() {
        if mode == "stamp" {
            return stamp(Path::new(file));
        }
    }
    match measure(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("knock-latency: {e}");
            ExitCode::FAILURE
        }
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// The door's command: notes when it began.
fn stamp(file: &Path) -> ExitCode {
    let t = now_ns();
    let written = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(file)
        .and_then(|mut f| f.write_all(format!("{t}\n").as_bytes()));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

struct Options {
    knockd: PathBuf,
    runs: usize,
    state_dir: Option<PathBuf>,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        knockd: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/knockd")),
        runs: 50,
        state_dir: None,
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
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn measure(args: &[String]) -> Result<(), String> {
    let o = options(args)?;
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root (capture and injection on lo)".into());
    }
    if !o.knockd.exists() {
        return Err(format!(
            "{} not found: cargo build --release, or --knockd PATH",
            o.knockd.display()
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let state = match &o.state_dir {
        Some(d) => d.join(format!("knock-latency-{}.state", std::process::id())),
        None => dir.path().join("state"),
    };
    let stamps = dir.path().join("stamps");
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let command = format!("{} stamp {}", exe.display(), stamps.display());
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

    let mut daemon = Daemon::start(&o.knockd, &config, &log)?;
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
            let sent = now_ns();
            inject.send(last)?;
            via_daemon.push(wait_stamp(&stamps, 2 * i + 1)? - sent);
            // Let the command end and be reaped before the direct spawn.
            std::thread::sleep(Duration::from_millis(20));
            let ip = format!("127.0.0.{}", 10 + i);
            let start = now_ns();
            let mut child = Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("{command} {ip}"))
                .stdin(Stdio::null())
                .spawn()
                .map_err(|e| format!("spawning /bin/sh: {e}"))?;
            direct.push(wait_stamp(&stamps, 2 * i + 2)? - start);
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok::<(), String>(())
    })();
    daemon.stop();
    if o.state_dir.is_some() {
        let _ = fs::remove_file(&state);
        let _ = fs::remove_file(state.with_extension("state.lock"));
    }
    result?;
    let (d, s) = (summary(&mut via_daemon), summary(&mut direct));
    println!("knock -> execve, {} knocks, state file {}", o.runs, state.display());
    println!("  via knockd:   median {:7.1} us  p99 {:7.1} us", d.0, d.1);
    println!("  direct spawn: median {:7.1} us  p99 {:7.1} us", s.0, s.1);
    println!("  knockd's share (difference of medians): {:.1} us", d.0 - s.0);
    Ok(())
}

/// Median and p99, in µs.
fn summary(ns: &mut [u128]) -> (f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| ns[((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len()) - 1];
    let median = if ns.len() % 2 == 0 {
        (ns[ns.len() / 2 - 1] + ns[ns.len() / 2]) as f64 / 2.0
    } else {
        ns[ns.len() / 2] as f64
    };
    (median / 1e3, at(0.99) as f64 / 1e3)
}

/// The time the `n`-th stamp noted, waiting for it.
fn wait_stamp(file: &Path, n: usize) -> Result<u128, String> {
    let until = Instant::now() + LIMIT;
    loop {
        let text = fs::read_to_string(file).unwrap_or_default();
        if let Some(line) = text.lines().nth(n - 1) {
            return line.parse().map_err(|_| format!("bad stamp {line:?}"));
        }
        if Instant::now() > until {
            return Err(format!("stamp {n} did not come within {LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(1));
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
        let err = |what: &str| format!("{what} a packet socket on lo: {}", std::io::Error::last_os_error());
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
            return Err(format!("sending on lo: {}", std::io::Error::last_os_error()));
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
