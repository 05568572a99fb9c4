//! Harness for the privileged end-to-end tests: a knockd under test
//! (optionally inside a network namespace), network namespaces joined by a
//! veth pair, bounded external commands, and the root check.
//!
//! Everything a test creates is owned by a guard that cleans up on `Drop`,
//! so a failing assertion still kills the daemon and deletes the
//! namespaces. Nothing here sleeps for long: waits poll with a deadline.

// Each test file uses a different part of the harness.
#![allow(dead_code)]

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub mod json;

/// The daemon under test.
pub const KNOCKD: &str = env!("CARGO_BIN_EXE_knockd");

/// The knockd the daemon tests start: this build's, or the one named by
/// `KNOCKD_BIN` (to run today's tests against an older build and show
/// what they catch).
pub fn knockd_bin() -> String {
    std::env::var("KNOCKD_BIN").unwrap_or_else(|_| KNOCKD.to_string())
}

/// Debian's knock client (package `knockd`), the reference knocker.
pub const KNOCK: &str = "/usr/bin/knock";

/// How long a single expected log line or file may take to appear. Generous
/// for a loaded 2-core CI box; a passing test never waits this long.
pub const WAIT: Duration = Duration::from_secs(10);

/// Poll interval for log lines, files and child exit.
const POLL: Duration = Duration::from_millis(10);

/// Fails the test at once, with what to do, unless it runs as root. Called
/// first by every privileged test, so `--include-ignored` as a normal user
/// fails clearly instead of hanging or failing deep inside a helper.
pub fn require_root(what: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root ({what}); run the privileged tests as root: \
         `make test`, or `sudo -E cargo test --test live -- --include-ignored`"
    );
}

/// Fails the test unless Debian's `knock` client is installed.
pub fn require_knock_client() {
    assert!(
        Path::new(KNOCK).exists(),
        "{KNOCK} not found: install Debian's knockd package (scripts/deps.sh test)"
    );
}

/// Runs `cmd` to completion, killing it after `limit`; panics if it cannot
/// start or runs over.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{desc} did not finish within {limit:?}");
            }
            Err(e) => panic!("waiting for {desc}: {e}"),
        }
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("collecting the output of {desc}: {e}"))
}

/// Runs `prog args` (bounded to 10 s) and panics with its stderr unless it
/// succeeds.
pub fn run_ok(prog: &str, args: &[&str]) -> Output {
    let out = run_bounded(Command::new(prog).args(args), Duration::from_secs(10));
    assert!(
        out.status.success(),
        "{prog} {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out
}

/// Runs Debian's `knock` with `args`, in `netns` if given, and checks it
/// succeeded. Each hit is sent before it returns.
pub fn knock(netns: Option<&Netns>, args: &[&str]) {
    match netns {
        Some(ns) => {
            ns.exec(KNOCK, args);
        }
        None => {
            run_ok(KNOCK, args);
        }
    }
}

/// The names of the files in `dir` that start with `prefix`, sorted.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read test dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Splits an operator log line `[YYYY-MM-DD HH:MM] message` into its
/// message, panicking if the stamp is not in knockd's format.
pub fn message_of(line: &str) -> &str {
    let bytes = line.as_bytes();
    let ok = bytes.len() >= 19
        && bytes[0] == b'['
        && bytes[17] == b']'
        && bytes[18] == b' '
        && line[1..17].char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == ' ',
            13 => c == ':',
            _ => c.is_ascii_digit(),
        });
    assert!(ok, "not a `[YYYY-MM-DD HH:MM] message` log line: {line:?}");
    &line[19..]
}

/// A knockd started by a test, with stdout, stderr and the log file in the
/// test's directory. Dropping it kills the daemon if still running (a
/// passing test stops it with [`Daemon::stop`] instead).
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
    /// The log is in `LogFormat = json`: each line is read as JSON and its
    /// `message` taken (strictly: a line that is not JSON fails the test).
    json: bool,
}

/// Whether a daemon started with `args` and `config` logs JSON lines.
fn logs_json(args: &[&str], config: &str) -> bool {
    let cli = args.windows(2).any(|w| w == ["--log-format", "json"])
        || args.contains(&"--log-format=json");
    let conf = config.lines().any(|l| {
        let l = l.trim().to_ascii_lowercase();
        l.starts_with("logformat") && l.split('=').nth(1).map(str::trim) == Some("json")
    });
    cli || conf
}

/// The message of one log line: the text after the stamp, or a JSON
/// line's `message`.
pub fn message_in(line: &str, json: bool) -> String {
    if !json {
        return message_of(line).to_string();
    }
    let v = json::parse(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line:?}"));
    v.str("message")
        .unwrap_or_else(|| panic!("no \"message\" string: {line:?}"))
        .to_string()
}

impl Daemon {
    /// Writes `config` (mode 0600) into `dir`, starts `knockd ARGS -c CONF
    /// -g LOG` (inside `netns` when given) and waits until it logs
    /// `starting up, listening on`. Unless the config names one, the
    /// daemon journals to `dir/state`: daemons running side by side must
    /// not share (and so lock each other out of) the default state file.
    pub fn start(dir: &Path, netns: Option<&Netns>, args: &[&str], config: &str) -> Daemon {
        let launch = match netns {
            Some(ns) => Launch::Netns(ns),
            None => Launch::Direct,
        };
        Daemon::launch(dir, launch, args, config)
    }

    /// [`Daemon::start`] with any way of launching knockd.
    pub fn launch(dir: &Path, launch: Launch<'_>, args: &[&str], config: &str) -> Daemon {
        let conf = write_config(dir, config);
        let log = dir.join("knockd.log");
        let stdout = dir.join("knockd.stdout");
        let stderr = dir.join("knockd.stderr");
        let mut cmd = match launch {
            // `ip netns exec` execs knockd itself, so the child's pid is
            // knockd's and SIGTERM reaches it directly.
            Launch::Netns(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.name(), &knockd_bin()]);
                c
            }
            // The wrapper must exec knockd, for the same reason.
            Launch::Wrapped(prefix) => {
                let mut c = Command::new(&prefix[0]);
                c.args(&prefix[1..]).arg(knockd_bin());
                c
            }
            Launch::Direct => Command::new(knockd_bin()),
        };
        cmd.args(args)
            .arg("-c")
            .arg(&conf)
            .arg("-g")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("create stdout file"))
            .stderr(fs::File::create(&stderr).expect("create stderr file"));
        let starts = |msgs: &[String]| {
            msgs.iter()
                .filter(|m| m.starts_with("starting up, listening on "))
                .count()
        };
        // A restart in the same directory appends to the same log: count
        // the startup lines before the daemon can write its own.
        let text = fs::read_to_string(&log).unwrap_or_default();
        let json = logs_json(args, config);
        let earlier: Vec<String> = text.lines().map(|l| message_in(l, json)).collect();
        let before = starts(&earlier);
        let child = cmd.spawn().expect("spawn knockd");
        let mut d = Daemon {
            child: Some(child),
            log,
            stdout,
            stderr,
            json,
        };
        d.wait_until("the startup line", WAIT, |msgs| starts(msgs) > before);
        d
    }

    pub fn pid(&self) -> Pid {
        let child = self.child.as_ref().expect("daemon running");
        Pid::from_raw(child.id() as i32)
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap_or_else(|e| panic!("send {sig} to knockd: {e}"));
    }

    /// The log file's path.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The messages of the latest run in this directory: from its last
    /// `starting up` line on.
    pub fn this_run(&self) -> Vec<String> {
        this_run(&self.messages())
    }

    /// Every message in the log so far (stamps checked and stripped).
    pub fn messages(&self) -> Vec<String> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().map(|l| message_in(l, self.json)).collect()
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until `done` holds for the log's messages. Fails early, with
    /// the daemon's stderr, if the daemon exits meanwhile.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let msgs = self.messages();
            if done(&msgs) {
                return msgs;
            }
            if let Some(status) = self.exited() {
                panic!(
                    "knockd exited ({status}) while waiting for {what}\nlog:\n{}\nstderr:\n{}",
                    msgs.join("\n"),
                    self.stderr()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "no {what} in the log within {timeout:?}\nlog:\n{}\nstderr:\n{}",
                    msgs.join("\n"),
                    self.stderr()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the log has the message `msg` exactly (stamp aside).
    pub fn wait_for_line(&mut self, msg: &str, timeout: Duration) -> Vec<String> {
        self.wait_until(&format!("line {msg:?}"), timeout, |msgs| {
            msgs.iter().any(|m| m == msg)
        })
    }

    /// Waits until the file `path` (a command's marker) exists and returns
    /// its contents; fails early if the daemon exits, and with the log if
    /// the file never comes.
    pub fn wait_for_file(&mut self, path: &Path) -> String {
        let name = path.display().to_string();
        self.wait_until(&format!("marker {name}"), WAIT, |_| path.exists());
        fs::read_to_string(path).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        child.try_wait().expect("poll knockd")
    }

    /// Sends SIGTERM and waits (at most 15 s) for the exit. Returns as
    /// soon as the exit is seen, so a test can check what existed at that
    /// moment; checks nothing itself.
    pub fn terminate(mut self) -> Terminated {
        let pid = self.pid();
        let sent = Instant::now();
        kill(pid, Signal::SIGTERM).expect("SIGTERM knockd");
        // Shutdown waits up to 10 s for commands in flight.
        let deadline = sent + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = self.exited() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "knockd did not exit within 15 s of SIGTERM\nlog:\n{}",
                self.messages().join("\n")
            );
            std::thread::sleep(POLL);
        };
        let elapsed = sent.elapsed();
        self.child = None;
        Terminated {
            status,
            elapsed,
            msgs: self.messages(),
            stderr: self.stderr(),
        }
    }

    /// Stops the daemon with SIGTERM and checks a clean exit: status 0,
    /// `shutting down` as the last message, no panic on stderr. Returns
    /// the log's messages.
    pub fn stop(self) -> Vec<String> {
        self.terminate().assert_clean()
    }

    /// Waits (at most `timeout`) for the daemon to exit by itself and
    /// returns how, with the log's messages.
    pub fn wait_exit(mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                self.child = None;
                return (status, self.messages());
            }
            assert!(
                Instant::now() < deadline,
                "knockd did not exit within {timeout:?}\nlog:\n{}",
                self.messages().join("\n")
            );
            std::thread::sleep(POLL);
        }
    }

    /// Kills the daemon with SIGKILL (a crash: nothing runs at exit) and
    /// returns the log's messages.
    pub fn kill9(mut self) -> Vec<String> {
        let mut child = self.child.take().expect("daemon running");
        child.kill().expect("SIGKILL knockd");
        let status = child.wait().expect("wait for knockd");
        assert_eq!(status.signal(), Some(9), "knockd ended with {status}");
        self.messages()
    }
}

/// How a daemon stopped by [`Daemon::terminate`] ended.
pub struct Terminated {
    pub status: ExitStatus,
    /// From SIGTERM to the exit.
    pub elapsed: Duration,
    pub msgs: Vec<String>,
    pub stderr: String,
}

impl Terminated {
    /// Status 0, `shutting down` last, no panic; returns the messages.
    pub fn assert_clean(self) -> Vec<String> {
        let Terminated {
            status,
            msgs,
            stderr,
            ..
        } = self;
        assert!(
            status.success(),
            "knockd exited with {status} (signal {:?}) after SIGTERM\nstderr:\n{stderr}\nlog:\n{}",
            status.signal(),
            msgs.join("\n")
        );
        assert!(!stderr.contains("panicked"), "knockd panicked:\n{stderr}");
        assert_eq!(
            msgs.last().map(String::as_str),
            Some("shutting down"),
            "log:\n{}",
            msgs.join("\n")
        );
        msgs
    }
}

/// How [`Daemon::launch`] starts knockd.
pub enum Launch<'a> {
    Direct,
    /// `ip netns exec NS knockd ...`
    Netns(&'a Netns),
    /// `PREFIX... knockd ...`; the prefix must exec knockd.
    Wrapped(Vec<String>),
}

/// Writes `config` (mode 0600) to `dir/knockd.conf` and returns its path.
/// Unless the config names a `StateFile`, one in `dir` is added (to the
/// config's `[options]` section if it has one).
pub fn write_config(dir: &Path, config: &str) -> PathBuf {
    let conf = dir.join("knockd.conf");
    let config = if config.to_ascii_lowercase().contains("statefile") {
        config.to_string()
    } else {
        let line = format!("\tStateFile = {}\n", dir.join("state").display());
        match config.find("[options]\n") {
            Some(at) => {
                let end = at + "[options]\n".len();
                format!("{}{line}{}", &config[..end], &config[end..])
            }
            None => format!("[options]\n{line}{config}"),
        }
    };
    fs::write(&conf, config).expect("write config");
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).expect("chmod config");
    conf
}

/// The messages from the last `starting up` line on (a restart appends to
/// the same log).
pub fn this_run(msgs: &[String]) -> Vec<String> {
    let start = msgs
        .iter()
        .rposition(|m| m.starts_with("starting up, listening on "))
        .unwrap_or(0);
    msgs[start..].to_vec()
}

/// Polls `done` until it holds, failing with `what` (and `context()`)
/// after `timeout`.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    context: impl Fn() -> String,
    done: impl Fn() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "no {what} within {timeout:?}\n{}",
            context()
        );
        std::thread::sleep(POLL);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The messages about knocks and commands: without the startup line, the
/// closing capture statistics and `shutting down`, which tests check apart.
pub fn actions(msgs: &[String]) -> Vec<String> {
    msgs.iter()
        .filter(|m| {
            !m.starts_with("starting up, listening on ")
                && !m.contains(" packets received, ")
                && m.as_str() != "shutting down"
        })
        .cloned()
        .collect()
}

/// A network namespace named after the test and this process, so tests
/// running in parallel (and concurrent runs) never share one. Deleted on
/// drop, which also destroys the interfaces inside it.
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("kd-{tag}-{}", std::process::id());
        // A leftover from a crashed run with a recycled pid.
        let _ = run_bounded(
            Command::new("ip").args(["netns", "del", &name]),
            Duration::from_secs(10),
        );
        run_ok("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NS ARGS`, which must succeed.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend(args);
        run_ok("ip", &full)
    }

    /// `ip netns exec NS PROG ARGS`, which must succeed.
    pub fn exec(&self, prog: &str, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", self.name.as_str(), prog];
        full.extend(args);
        run_ok("ip", &full)
    }

    /// IPv4 input dropped by default, as a knockd admin has it, except
    /// loopback and connections already accepted (so a rule a door's
    /// command inserts for a knocker lets its connection through).
    pub fn default_drop_v4(&self) {
        self.exec("iptables", &["-P", "INPUT", "DROP"]);
        self.exec("iptables", &["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"]);
        let established = "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT";
        self.exec("iptables", &established.split(' ').collect::<Vec<_>>());
    }

    /// Runs `f` on a thread that has joined this namespace, so sockets it
    /// creates live there. Network namespaces may be entered per thread;
    /// the test's own thread never changes namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                use std::os::fd::AsRawFd;
                // SAFETY: setns on a valid namespace fd only changes the
                // calling thread's network namespace.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run_bounded(
            Command::new("ip").args(["netns", "del", &self.name]),
            Duration::from_secs(10),
        );
    }
}

/// The server end's interface name (inside its namespace, so fixed).
pub const SRV_IF: &str = "kd-srv0";
pub const CLI_IF: &str = "kd-cli0";
pub const SRV_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const CLI_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub const SRV_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const CLI_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const SRV_MAC: &str = "02:00:00:00:00:01";
const CLI_MAC: &str = "02:00:00:00:00:02";

/// A server and a client namespace joined by a veth pair: the server end
/// has 192.0.2.1/24 and 2001:db8::1/64, the client end .2 and ::2.
/// Neighbours are permanent entries and IPv6 addresses skip DAD, so the
/// first packet of a test goes out at once, with no ARP or ND in the way.
pub struct VethPair {
    pub server: Netns,
    pub client: Netns,
}

impl VethPair {
    pub fn new(tag: &str) -> VethPair {
        let server = Netns::new(&format!("{tag}-s"));
        let client = Netns::new(&format!("{tag}-c"));
        // Both ends are created directly in their namespaces, so the fixed
        // interface names never meet in the host's namespace.
        run_ok(
            "ip",
            &[
                "link",
                "add",
                SRV_IF,
                "netns",
                &server.name,
                "address",
                SRV_MAC,
                "type",
                "veth",
                "peer",
                "name",
                CLI_IF,
                "netns",
                &client.name,
                "address",
                CLI_MAC,
            ],
        );
        let ends = [
            (&server, SRV_IF, SRV_V4, SRV_V6, CLI_V4, CLI_V6, CLI_MAC),
            (&client, CLI_IF, CLI_V4, CLI_V6, SRV_V4, SRV_V6, SRV_MAC),
        ];
        for (ns, ifname, v4, v6, peer4, peer6, peer_mac) in ends {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"]);
            for peer in [IpAddr::V4(peer4), IpAddr::V6(peer6)] {
                ns.ip(&[
                    "neigh",
                    "replace",
                    &peer.to_string(),
                    "lladdr",
                    peer_mac,
                    "dev",
                    ifname,
                    "nud",
                    "permanent",
                ]);
            }
            ns.ip(&["link", "set", ifname, "up"]);
        }
        let pair = VethPair { server, client };
        for (ns, ifname) in [(&pair.server, SRV_IF), (&pair.client, CLI_IF)] {
            wait_link_up(ns, ifname);
        }
        pair
    }
}

/// Waits until the veth end has carrier (both ends up).
pub fn wait_link_up(ns: &Netns, ifname: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = ns.ip(&["-o", "link", "show", "dev", ifname]);
        if String::from_utf8_lossy(&out.stdout).contains("LOWER_UP") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ifname} in {} has no carrier within {WAIT:?}",
            ns.name
        );
        std::thread::sleep(POLL);
    }
}

/// A private directory for one test's config, log and marker files.
pub fn test_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("knockd-live-")
        .tempdir()
        .expect("temp dir")
}

/// A veth pair from `a` (end `a_if`, MAC `a_mac`) to `b` (`b_if`,
/// `b_mac`), created directly in the namespaces, with `a_addr` and
/// `b_addr` (CIDR, IPv4) and permanent neighbour entries for each other;
/// both ends up, carrier waited for.
pub struct Veth<'a> {
    pub a: (&'a Netns, &'a str, &'a str, &'a str),
    pub b: (&'a Netns, &'a str, &'a str, &'a str),
}

impl Veth<'_> {
    pub fn create(&self) {
        let (an, aif, amac, _) = self.a;
        let (bn, bif, bmac, _) = self.b;
        run_ok(
            "ip",
            &[
                "link",
                "add",
                aif,
                "netns",
                an.name(),
                "address",
                amac,
                "type",
                "veth",
                "peer",
                "name",
                bif,
                "netns",
                bn.name(),
                "address",
                bmac,
            ],
        );
        for ((ns, ifname, _, cidr), (_, _, peer_mac, peer_cidr)) in
            [(self.a, self.b), (self.b, self.a)]
        {
            ns.ip(&["addr", "add", cidr, "dev", ifname]);
            let peer = peer_cidr.split('/').next().expect("address");
            ns.ip(&[
                "neigh",
                "replace",
                peer,
                "lladdr",
                peer_mac,
                "dev",
                ifname,
                "nud",
                "permanent",
            ]);
        }
        for (ns, ifname, _, _) in [self.a, self.b] {
            ns.ip(&["link", "set", ifname, "up"]);
        }
        for (ns, ifname, _, _) in [self.a, self.b] {
            wait_link_up(ns, ifname);
        }
    }
}

/// TCP flags of a crafted packet.
#[derive(Clone, Copy)]
pub enum Flags {
    Syn,
    SynAck,
    Ack,
}

/// Writes hand-built Ethernet frames onto `lo` (DLT_EN10MB, zero MACs),
/// which every capture on `lo` then sees as received packets.
pub struct Injector {
    cap: pcap::Capture<pcap::Active>,
    sport: u16,
}

impl Injector {
    pub fn lo() -> Injector {
        let cap = pcap::Capture::from_device("lo")
            .and_then(|c| c.open())
            .expect("open lo for injection");
        Injector { cap, sport: 40000 }
    }

    /// A TCP packet from `127.0.0.<src>` to 127.0.0.1:`dport`.
    pub fn tcp(&mut self, src: u8, dport: u16, flags: Flags) {
        self.tcp_from(Ipv4Addr::new(127, 0, 0, src), dport, flags);
        // One at a time: a frame is through the loopback path before the
        // next, so captures see them in this order.
        std::thread::sleep(Duration::from_millis(2));
    }

    /// A TCP packet from `src` to 127.0.0.1:`dport`, sent at once.
    pub fn tcp_from(&mut self, src: Ipv4Addr, dport: u16, flags: Flags) {
        self.sport = self.sport.wrapping_add(1).max(40000);
        let b = PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4(src.octets(), [127, 0, 0, 1], 64)
            .tcp(self.sport, dport, 1000, 1024);
        let b = match flags {
            Flags::Syn => b.syn(),
            Flags::SynAck => b.syn().ack(1),
            Flags::Ack => b.ack(1),
        };
        let mut frame = Vec::with_capacity(b.size(0));
        b.write(&mut frame, &[]).expect("build frame");
        self.cap.sendpacket(frame).expect("inject frame on lo");
    }

    /// A SYN knock from `127.0.0.<src>` on each of `ports`.
    pub fn knock(&mut self, src: u8, ports: &[u16]) {
        for &port in ports {
            self.tcp(src, port, Flags::Syn);
        }
    }

    /// A SYN knock from `src` on each of `ports`, 2 ms apart.
    pub fn knock_from(&mut self, src: Ipv4Addr, ports: &[u16]) {
        for &port in ports {
            self.tcp_from(src, port, Flags::Syn);
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Kills a process group (a command the daemon left running) on drop.
pub struct GroupGuard(pub Pid);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(-self.0.as_raw()), Signal::SIGKILL);
    }
}

/// (pid, ppid, pgid, comm) of every process, from /proc.
pub fn processes() -> Vec<(i32, i32, i32, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let rest: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        if let (Some(ppid), Some(pgrp)) = (rest.get(1), rest.get(2)) {
            if let (Ok(ppid), Ok(pgrp)) = (ppid.parse(), pgrp.parse()) {
                out.push((pid, ppid, pgrp, comm));
            }
        }
    }
    out
}
