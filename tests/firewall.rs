//! The firewall examples end to end. For each config in `examples/` that
//! can run here, a server namespace gets the example's own setup lines (a
//! default-DROP ruleset) and a TCP service on port 22; a client namespace
//! across a veth pair then checks, with our `knock` and with Debian's:
//! before the knock a connection fails, after it the connection works,
//! after `Cmd_Timeout` it fails again. The native nftables door is also
//! checked with the daemon killed by SIGKILL right after the open: the
//! kernel still closes it on time.
//!
//! The only edits made to an example: `/etc/knockd/` points into the
//! test's directory, and `Cmd_Timeout` (and `Cooldown`) are shortened to
//! keep the test quick.
//! ufw and firewalld are `--check`ed only (tests/examples.rs): ufw keeps
//! its state in /etc/ufw, shared with the host, and firewalld needs a
//! system D-Bus and its daemon.
//!
//! Root only (`#[ignore]`d otherwise).

mod support;

use std::fs;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{
    require_knock_client, require_root, run_bounded, test_dir, Daemon, Netns, VethPair, CLI_V4,
    CLI_V6, SRV_IF, SRV_V4, SRV_V6,
};

const OUR_KNOCK: &str = env!("CARGO_BIN_EXE_knock");
const DEBIAN_KNOCK: &str = "/usr/bin/knock";
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

/// The shortened `Cmd_Timeout`, in seconds.
const OPEN_SECS: u64 = 3;

/// How long a connection attempt through DROP may take before it counts as
/// failed.
const CONNECT: Duration = Duration::from_millis(600);

/// The example's setup: its comment lines `#   $ COMMAND`.
fn setup_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#   $ "))
        .map(str::to_string)
        .collect()
}

/// An example brought up in a fresh server/client pair: its setup run in
/// the server namespace (from the repository root, with `/etc/knockd/`
/// moved into `dir`), a listener on port 22, and knockd running the
/// example with a short `Cmd_Timeout`.
struct Bench {
    net: VethPair,
    daemon: Option<Daemon>,
    dir: tempfile::TempDir,
    _listeners: Vec<TcpListener>,
}

impl Bench {
    fn up(example: &str) -> Bench {
        let dir = test_dir();
        let etc = format!("{}/", dir.path().display());
        let text = fs::read_to_string(Path::new(EXAMPLES).join(example)).expect("read example");
        let text = text.replace("/etc/knockd/", &etc);
        // Tests run in parallel, some on the same example.
        static BENCHES: AtomicUsize = AtomicUsize::new(0);
        let n = BENCHES.fetch_add(1, Ordering::Relaxed);
        let net = VethPair::new(&format!("fw{n}"));
        for line in setup_lines(&text) {
            let out = run_bounded(
                Command::new("ip")
                    .args(["netns", "exec", net.server.name(), "sh", "-c", &line])
                    .current_dir(env!("CARGO_MANIFEST_DIR")),
                Duration::from_secs(20),
            );
            assert!(
                out.status.success(),
                "{example} setup `{line}`: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let listeners = net.server.enter(|| {
            let v4 = TcpListener::bind((SRV_V4, 22)).expect("listen on 192.0.2.1:22");
            let v6 = TcpListener::bind((SRV_V6, 22)).expect("listen on [2001:db8::1]:22");
            vec![v4, v6]
        });
        let config = shorten_cmd_timeout(&text);
        let daemon = Daemon::start(dir.path(), Some(&net.server), &["-i", SRV_IF], &config);
        Bench {
            net,
            daemon: Some(daemon),
            dir,
            _listeners: listeners,
        }
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("knockd running")
    }

    /// Stops knockd cleanly (SIGTERM, exit 0).
    fn stop(mut self) {
        self.daemon.take().expect("knockd running").stop();
    }

    /// Whether a new connection from the client to the server's port 22
    /// over `family` gets through.
    fn connects(&self, v6: bool) -> bool {
        let to: SocketAddr = if v6 {
            (SRV_V6, 22).into()
        } else {
            (SRV_V4, 22).into()
        };
        self.net
            .client
            .enter(|| TcpStream::connect_timeout(&to, CONNECT).is_ok())
    }

    /// `client` knocks `ports` on the server from the client namespace.
    fn knock(&self, client: &str, v6: bool, ports: &[String]) {
        let host = if v6 {
            SRV_V6.to_string()
        } else {
            SRV_V4.to_string()
        };
        let mut args = vec![
            "netns".to_string(),
            "exec".into(),
            self.net.client.name().into(),
            client.into(),
        ];
        if v6 {
            args.push("-6".into());
        }
        args.push(host);
        args.extend(ports.iter().cloned());
        let out = run_bounded(Command::new("ip").args(&args), Duration::from_secs(15));
        assert!(
            out.status.success(),
            "{client} {ports:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The number of `OPEN SESAME` lines logged for `src` so far.
    fn opens(&self, src: IpAddr) -> usize {
        let prefix = format!("{src}: ");
        self.daemon()
            .messages()
            .iter()
            .filter(|m| m.starts_with(&prefix) && m.contains("OPEN SESAME"))
            .count()
    }

    /// Before/after/expired with `client`: returns how long the door
    /// stayed open (from the knock until new connections fail again).
    fn cycle(&mut self, client: &str, v6: bool, ports: &[String]) -> Duration {
        let src: IpAddr = if v6 { CLI_V6.into() } else { CLI_V4.into() };
        assert!(
            !self.connects(v6),
            "{client}: port 22 open before the knock"
        );
        let opened = self.opens(src);
        let knocked = Instant::now();
        self.knock(client, v6, ports);
        wait_until(Duration::from_secs(10), "the OPEN SESAME line", || {
            self.opens(src) > opened
        });
        wait_until(Duration::from_secs(5), "port 22 to open", || {
            self.connects(v6)
        });
        let limit = Duration::from_secs(OPEN_SECS + 10);
        wait_until(limit, "port 22 to close again", || !self.connects(v6));
        let open_for = knocked.elapsed();
        assert!(
            open_for >= Duration::from_secs(OPEN_SECS) - CONNECT,
            "{client}: closed after {open_for:?}, before Cmd_Timeout"
        );
        open_for
    }
}

/// `Cmd_Timeout = N` becomes [`OPEN_SECS`], and a `Cooldown` 1 s (so the
/// next client's knock, after the door closed, is not cooled down);
/// `timeout 30` in an ipset setup stays (the add passes its own timeout).
fn shorten_cmd_timeout(text: &str) -> String {
    text.lines()
        .map(|l| {
            let key = l.trim_start().to_ascii_lowercase();
            if key.starts_with("cmd_timeout") {
                format!("\tCmd_Timeout = {OPEN_SECS}")
            } else if key.starts_with("cooldown") {
                "\tCooldown = 1".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "no {what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ports(list: &str) -> Vec<String> {
    list.split(',').map(str::to_string).collect()
}

/// Runs the before/after/expired check for `example` with both clients
/// (IPv4), and with ours over IPv6 when `v6`.
fn check_example(example: &str, sequence: &str, v6: bool) {
    require_root("the firewall example tests");
    require_knock_client();
    let mut bench = Bench::up(example);
    let seq = ports(sequence);
    for client in [OUR_KNOCK, DEBIAN_KNOCK] {
        let open_for = bench.cycle(client, false, &seq);
        eprintln!("{example}: {client} (IPv4): open for {open_for:.1?}");
    }
    if v6 {
        let open_for = bench.cycle(OUR_KNOCK, true, &seq);
        eprintln!("{example}: {OUR_KNOCK} (IPv6): open for {open_for:.1?}");
    }
    bench.stop();
}

#[test]
#[ignore = "needs root: namespaces and iptables"]
fn iptables_example_opens_and_closes() {
    check_example("iptables.conf", "7000,8000,9000", true);
}

#[test]
#[ignore = "needs root: namespaces, ipset and iptables"]
fn ipset_example_opens_and_closes() {
    check_example("ipset.conf", "7200,8200,9200", false);
}

#[test]
#[ignore = "needs root: namespaces and iptables"]
fn single_knock_example_opens_and_closes() {
    check_example("single-knock.conf", "1000", false);
}

#[test]
#[ignore = "needs root: namespaces and nftables"]
fn nftables_set_example_opens_and_closes() {
    check_example("nftables-set.conf", "7100,8100,9100", true);
}

/// `nft list set inet knockd NAME` in the server namespace.
fn list_set(ns: &Netns, name: &str) -> String {
    let out = ns.exec("nft", &["list", "set", "inet", "knockd", name]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The element line of a set listing (`elements = { ... }`), or "".
fn elements(listing: &str) -> String {
    listing
        .lines()
        .find(|l| l.trim_start().starts_with("elements"))
        .map(|l| l.trim().to_string())
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root: namespaces and nftables"]
fn an_nft_door_closes_on_time_after_the_daemon_is_killed() {
    require_root("the firewall example tests");
    let mut bench = Bench::up("nftables-set.conf");
    let seq = ports("7100,8100,9100");
    assert!(!bench.connects(false), "port 22 open before the knock");
    assert_eq!(elements(&list_set(&bench.net.server, "ssh4")), "");
    let knocked = Instant::now();
    bench.knock(OUR_KNOCK, false, &seq);
    wait_until(Duration::from_secs(10), "the OPEN SESAME line", || {
        bench.opens(CLI_V4.into()) > 0
    });
    let listing = list_set(&bench.net.server, "ssh4");
    eprintln!(
        "{:>5.1?} after the knock: {}",
        knocked.elapsed(),
        elements(&listing)
    );
    let line = elements(&listing);
    assert!(
        line.contains(&format!("{CLI_V4} timeout {OPEN_SECS}s expires")),
        "element with its timeout: {listing}"
    );
    let msgs = bench.daemon.take().expect("knockd running").kill9();
    eprintln!(
        "killed knockd with SIGKILL; its last line: {:?}",
        msgs.last()
    );
    assert!(bench.connects(false), "port 22 open after the knock");
    // The set as `nft list set` shows it, every half second or so.
    let mut shown = Instant::now();
    wait_until(
        Duration::from_secs(OPEN_SECS + 5),
        "the element to expire",
        || {
            let e = elements(&list_set(&bench.net.server, "ssh4"));
            if e.is_empty() || shown.elapsed() >= Duration::from_millis(500) {
                shown = Instant::now();
                let e = if e.is_empty() { "(no elements)" } else { &e };
                eprintln!("{:>5.1?} after the knock: {e}", knocked.elapsed());
            }
            e.is_empty()
        },
    );
    let gone = knocked.elapsed();
    assert!(
        gone >= Duration::from_secs(OPEN_SECS) - Duration::from_millis(100),
        "element gone after {gone:?}, before its timeout"
    );
    assert!(
        !bench.connects(false),
        "port 22 still open after the timeout"
    );
}

#[test]
#[ignore = "needs root: namespaces and iptables"]
fn one_time_example_uses_each_sequence_once() {
    require_root("the firewall example tests");
    require_knock_client();
    let mut bench = Bench::up("one-time.conf");
    let file = bench.dir.path().join("ssh.seq");
    let text = fs::read_to_string(&file).expect("generated sequences");
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 100, "the generator's count");
    let first = ports(lines[0]);
    bench.cycle(OUR_KNOCK, false, &first);
    // Used up: the same knock again opens nothing.
    let opened = bench.opens(CLI_V4.into());
    bench.knock(DEBIAN_KNOCK, false, &first);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        bench.opens(CLI_V4.into()),
        opened,
        "a used sequence opened again"
    );
    assert!(!bench.connects(false), "a used sequence opened port 22");
    bench.cycle(DEBIAN_KNOCK, false, &ports(lines[1]));
    let marked = fs::read_to_string(&file).unwrap();
    assert!(
        marked.lines().take(2).all(|l| l.starts_with('#')),
        "used lines are marked: {marked}"
    );
    bench.stop();
}

#[test]
#[ignore = "needs root: namespaces and nftables"]
fn a_missing_nft_set_stops_the_start_and_a_reload_says_how_to_create_it() {
    require_root("the firewall example tests");
    let ns = Netns::new("nftmiss");
    let dir = test_dir();
    let door =
        "[ssh]\n\tSequence = 7100\n\tNft_Set = inet knockd ssh4\n\tNft_Set_6 = ip6 knockd ssh6\n";
    let conf = support::write_config(dir.path(), door);
    let out = run_bounded(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                ns.name(),
                &support::knockd_bin(),
                "-i",
                "lo",
                "-c",
            ])
            .arg(&conf)
            .arg("-g")
            .arg(dir.path().join("knockd.log")),
        Duration::from_secs(15),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(78), "EX_CONFIG");
    assert_eq!(
        stderr.lines().last().unwrap_or_default(),
        format!(
            "knockd: {}:3: Nft_Set: nft set inet knockd ssh4 does not exist, nor does its table; \
             create them with: nft add table inet knockd && nft add set inet knockd ssh4 \
             '{{ type ipv4_addr; flags timeout; }}' (and 1 more nft set problem(s))",
            conf.display()
        )
    );
    // With the sets there it starts; a reload naming a missing set keeps
    // the running config (and says why).
    ns.exec("nft", &["add", "table", "inet", "knockd"]);
    ns.exec(
        "nft",
        &[
            "add",
            "set",
            "inet",
            "knockd",
            "ssh4",
            "{ type ipv4_addr; flags timeout; }",
        ],
    );
    ns.exec("nft", &["add", "table", "ip6", "knockd"]);
    ns.exec(
        "nft",
        &[
            "add",
            "set",
            "ip6",
            "knockd",
            "ssh6",
            "{ type ipv6_addr; flags timeout; }",
        ],
    );
    let mut daemon = Daemon::start(dir.path(), Some(&ns), &["-i", "lo"], door);
    support::write_config(dir.path(), &format!("{door}\tNft_Set = inet knockd nope\n"));
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let msgs = daemon.wait_for_line(
        &format!(
            "{}: 1 error(s); keeping the running configuration",
            conf.display()
        ),
        Duration::from_secs(10),
    );
    assert!(
        msgs.iter().any(|m| m.starts_with(&format!("config error: {}:3: Nft_Set: nft set inet knockd nope does not exist; create it with: nft add set inet knockd nope", conf.display()))),
        "{msgs:#?}"
    );
    daemon.stop();
}
