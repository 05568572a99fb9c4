//! Root-only: network namespaces (interoperability with knockd 0.8 and Debian's knock, --connect through a firewall).

use super::*;

// ---------------------------------------------------------------------------
// Root-only: network namespaces

fn sh(script: &str) -> Output {
    run_bounded(
        Command::new("sh").args(["-c", script]),
        b"",
        Duration::from_secs(20),
    )
}

fn sh_ok(script: &str) {
    let o = sh(script);
    assert!(o.status.success(), "{script}: {}", text(&o.stderr));
}

/// A network namespace with `lo` up, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    /// `kc-<tag>-<pid>`: unique per test and per test process.
    fn new(tag: &str) -> Netns {
        let name = format!("kc-{tag}-{}", std::process::id());
        // A leftover from a killed run of this very pid cannot exist, but a
        // stale name would make `add` fail confusingly: clear it first.
        let _ = sh(&format!("ip netns del {name} 2>/dev/null"));
        sh_ok(&format!(
            "ip netns add {name} && ip -n {name} link set lo up"
        ));
        Netns { name }
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    fn sh(&self, script: &str) {
        sh_ok(&format!("ip netns exec {} sh -c '{script}'", self.name));
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&format!("ip netns del {}", self.name));
    }
}

/// Server and client namespaces joined by a veth pair:
/// server 192.0.2.1 / 2001:db8::1 on `kv-s`, client 192.0.2.2 / 2001:db8::2.
fn server_and_client(tag: &str) -> (Netns, Netns) {
    let srv = Netns::new(&format!("{tag}-s"));
    let cli = Netns::new(&format!("{tag}-c"));
    sh_ok(&format!(
        "ip -n {s} link add kv-s type veth peer name kv-c netns {c} && \
         ip -n {s} addr add 192.0.2.1/24 dev kv-s && \
         ip -n {s} addr add 2001:db8::1/64 dev kv-s nodad && \
         ip -n {c} addr add 192.0.2.2/24 dev kv-c && \
         ip -n {c} addr add 2001:db8::2/64 dev kv-c nodad && \
         ip -n {s} link set kv-s up && ip -n {c} link set kv-c up",
        s = srv.name,
        c = cli.name
    ));
    (srv, cli)
}

/// Which daemon guards the door.
#[derive(Clone, Copy, Debug)]
enum Daemon {
    Knockd08,
    Ours,
}

/// A daemon running in a namespace; killed (its pid) on drop.
struct RunningDaemon {
    child: Child,
    log: PathBuf,
}

impl RunningDaemon {
    /// Starts `daemon` on `iface` inside `ns` with `door` as its only door,
    /// and waits until its capture is open (the `starting up` log line).
    fn start(daemon: Daemon, ns: &Netns, iface: &str, dir: &Path, door: &str) -> RunningDaemon {
        use std::os::unix::fs::PermissionsExt;
        let log = dir.join("knockd.log");
        let conf = dir.join("knockd.conf");
        std::fs::write(
            &conf,
            format!("[options]\n\tlogfile = {}\n\n{door}", log.display()),
        )
        .expect("write config");
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let program = match daemon {
            Daemon::Knockd08 => KNOCKD_08,
            Daemon::Ours => KNOCKD,
        };
        let child = ns
            .cmd(program)
            .args(["-i", iface, "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let d = RunningDaemon { child, log };
        d.wait_for_log("starting up", Duration::from_secs(10));
        d
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.log_text();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the daemon log within {limit:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which client knocks.
#[derive(Clone, Copy, Debug)]
enum Client {
    Ours,
    Debian,
}

impl Client {
    fn program(self) -> &'static str {
        match self {
            Client::Ours => KNOCK,
            Client::Debian => DEBIAN_KNOCK,
        }
    }
}

/// `client` knocks 7000, 8000:udp, 9000 on `host` from `client_ns`; the
/// door's command leaves a marker file named after the knocker. Returns the
/// client's stdout and the daemon's log.
fn door_opens(
    daemon: Daemon,
    client: Client,
    srv: &Netns,
    client_ns: &Netns,
    iface: &str,
    host: &str,
    expect_src: &str,
) -> (String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let marker = dir.path().join("opened");
    let door = format!(
        "[lab]\n\tsequence = 7000,8000:udp,9000\n\tseq_timeout = 10\n\ttcpflags = syn\n\
         \tcommand = echo %IP% > {}\n",
        marker.display()
    );
    let d = RunningDaemon::start(daemon, srv, iface, dir.path(), &door);
    let o = run_bounded(
        client_ns
            .cmd(client.program())
            .args(["-v", host, "7000", "8000:udp", "9000"]),
        b"",
        Duration::from_secs(20),
    );
    assert_eq!(code(&o), 0, "{client:?}: {o:?}");
    let log = d.wait_for_log("OPEN SESAME", Duration::from_secs(10));
    assert!(
        log.contains(&format!("{expect_src}: lab: OPEN SESAME")),
        "{log}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "command did not run:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let opened = std::fs::read_to_string(&marker).expect("marker");
    assert_eq!(opened.trim(), expect_src);
    let stdout = text(&o.stdout);
    println!("--- {client:?} knock -> {daemon:?}\n{stdout}{log}");
    (stdout, log)
}

fn verbose_lines(host: &str) -> String {
    format!("hitting tcp {host}:7000\nhitting udp {host}:8000\nhitting tcp {host}:9000\n")
}

#[test]
#[ignore = "needs root: network namespaces and knockd 0.8 (/usr/sbin/knockd)"]
fn our_knock_opens_a_knockd_08_door() {
    let (srv, cli) = server_and_client("o08");
    let (out, _) = door_opens(
        Daemon::Knockd08,
        Client::Ours,
        &srv,
        &cli,
        "kv-s",
        "192.0.2.1",
        "192.0.2.2",
    );
    assert_eq!(out, verbose_lines("192.0.2.1"));
}

#[test]
#[ignore = "needs root: network namespaces and knockd 0.8 (/usr/sbin/knockd)"]
fn our_knock_opens_a_knockd_08_door_over_ipv6_loopback() {
    let ns = Netns::new("o08v6");
    let (out, _) = door_opens(Daemon::Knockd08, Client::Ours, &ns, &ns, "lo", "::1", "::1");
    assert_eq!(out, verbose_lines("::1"));
}

#[test]
#[ignore = "needs root: network namespaces and Debian's knock (/usr/bin/knock)"]
fn debian_knock_opens_our_door() {
    let (srv, cli) = server_and_client("deb");
    let (out, _) = door_opens(
        Daemon::Ours,
        Client::Debian,
        &srv,
        &cli,
        "kv-s",
        "192.0.2.1",
        "192.0.2.2",
    );
    // Our verbose text is knockd's, byte for byte.
    assert_eq!(out, verbose_lines("192.0.2.1"));
}

#[test]
#[ignore = "needs root: network namespaces and Debian's knock (/usr/bin/knock)"]
fn debian_knock_opens_our_door_over_ipv6_loopback() {
    let ns = Netns::new("debv6");
    let (out, _) = door_opens(Daemon::Ours, Client::Debian, &ns, &ns, "lo", "::1", "::1");
    assert_eq!(out, verbose_lines("::1"));
}

#[test]
#[ignore = "needs root: network namespaces (an empty one, so no DNS query leaves)"]
fn an_unresolvable_host_is_one_line_and_68() {
    let ns = Netns::new("dns");
    let o = run_bounded(
        ns.cmd(KNOCK).args(["no-such-host.invalid", "7000"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(code(&o), EX_NOHOST, "{o:?}");
    let err = text(&o.stderr);
    assert!(
        err.starts_with("knock: cannot resolve host \"no-such-host.invalid\": "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Counts SYNs on `lo` while our knock hits three ports per family whose
/// SYNs are dropped on arrival (so no RST ends the attempt): a socket left
/// in SYN_SENT would retransmit after 1 s. Exactly one SYN per hit.
#[test]
#[ignore = "needs root: network namespaces, iptables, tcpdump"]
fn a_tcp_hit_is_exactly_one_syn() {
    let ns = Netns::new("syn");
    ns.sh("iptables -A INPUT -p tcp --dport 7000:7002 -j DROP && \
         ip6tables -A INPUT -p tcp --dport 7000:7002 -j DROP");
    let mut dump = ns
        .cmd("tcpdump")
        .args([
            "-i",
            "lo",
            "-nn",
            "-l",
            "-U",
            "tcp[tcpflags] & tcp-syn != 0 or ip6",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    struct KillOnDrop(Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = dump.stdout.take().expect("stdout");
    let stderr = dump.stderr.take().expect("stderr");
    let dump = KillOnDrop(dump);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("tcpdump did not start listening");
    let lines = drain(stdout);

    for host in ["127.0.0.1", "::1"] {
        let o = run_bounded(
            ns.cmd(KNOCK).args([host, "7000", "7001", "7002"]),
            b"",
            Duration::from_secs(20),
        );
        assert_eq!(code(&o), 0, "{o:?}");
    }
    // The first retransmission would come 1 s after its SYN.
    std::thread::sleep(Duration::from_millis(2500));
    drop(dump);
    let captured = text(&lines.join().expect("tcpdump output"));
    println!("--- tcpdump -i lo (SYNs)\n{captured}");
    let syns: Vec<&str> = captured
        .lines()
        .filter(|l| l.contains("Flags [S]"))
        .collect();
    for host in ["127.0.0.1", "::1"] {
        for port in 7000..=7002 {
            let to_port = format!("> {host}.{port}:");
            let n = syns.iter().filter(|l| l.contains(&to_port)).count();
            assert_eq!(n, 1, "SYNs to {host}.{port}:\n{captured}");
        }
    }
    assert_eq!(syns.len(), 6, "{captured}");
}

/// Moves the calling thread into the namespace at `path`; sockets it opens
/// afterwards live there. Only this thread moves.
fn enter_netns(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).expect("open netns");
    // SAFETY: setns on a valid namespace fd affects only the calling thread
    // (a thread spawned for this purpose); no memory is shared with the call.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// The ProxyCommand scenario. The server namespace drops TCP to port 2222
/// until knockd 0.8's door command deletes that rule; an echo server
/// listens there. The client's first knock loses its 8000 hit (a client-side
/// OUTPUT rule drops the first SYN to 8000 only: the daemon's capture would
/// see a packet dropped on the server's INPUT), so the first connection
/// times out; `--retry` knocks again, the door opens, and a conversation is
/// relayed through stdin/stdout.
#[test]
#[ignore = "needs root: network namespaces, iptables/nft and knockd 0.8"]
fn connect_with_retry_gets_through_after_a_lost_knock() {
    let (srv, cli) = server_and_client("px");
    srv.sh("iptables -A INPUT -p tcp --dport 2222 -j DROP");
    // numgen counts evaluations of this rule, which only SYNs to 8000
    // reach: the first one (0) is dropped, later ones pass.
    cli.sh(
        "nft add table inet kc && \
         nft \"add chain inet kc out { type filter hook output priority 0; }\" && \
         nft add rule inet kc out tcp dport 8000 tcp flags syn numgen inc mod 1000 == 0 counter drop",
    );

    let listener = {
        let path = srv.path();
        std::thread::spawn(move || {
            enter_netns(&path);
            TcpListener::bind((Ipv4Addr::new(192, 0, 2, 1), 2222)).expect("bind in server ns")
        })
        .join()
        .expect("listener thread")
    };
    let server = std::thread::spawn(move || serve_echo(listener));

    let dir = tempfile::tempdir().expect("temp dir");
    let door = "[ssh]\n\tsequence = 7000,8000,9000\n\tseq_timeout = 5\n\ttcpflags = syn\n\
                \tcommand = /usr/sbin/iptables -D INPUT -p tcp --dport 2222 -j DROP\n";
    let d = RunningDaemon::start(Daemon::Knockd08, &srv, "kv-s", dir.path(), door);

    let start = Instant::now();
    let o = run_bounded(
        cli.cmd(KNOCK).args([
            "--connect",
            "2222",
            "--retry",
            "3",
            "--timeout",
            "2",
            "192.0.2.1",
            "7000",
            "8000",
            "9000",
        ]),
        b"SSH-2.0-OpenSSH_test\r\nuname\n",
        Duration::from_secs(30),
    );
    let took = start.elapsed();
    let log = d.log_text();
    println!(
        "--- knock --connect (took {took:?})\nstdout:\n{}stderr:\n{}knockd 0.8 log:\n{log}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(code(&o), 0, "{o:?}\n{log}");
    assert_eq!(
        text(&o.stdout),
        expected_conversation(&["SSH-2.0-OpenSSH_test", "uname"])
    );
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("knock: cannot connect to 192.0.2.1:2222: ")
            && err.contains("knocking again in 0.5s (retry 1 of 3)"),
        "{err}"
    );
    assert_eq!(log.matches("OPEN SESAME").count(), 1, "{log}");
    assert_eq!(
        server.join().expect("server"),
        ["SSH-2.0-OpenSSH_test", "uname"]
    );
    // The rule dropped exactly the first knock's 8000.
    let counter = run_bounded(
        cli.cmd("nft").args(["list", "chain", "inet", "kc", "out"]),
        b"",
        Duration::from_secs(10),
    );
    assert!(
        text(&counter.stdout).contains("counter packets 1 "),
        "{}",
        text(&counter.stdout)
    );
}
