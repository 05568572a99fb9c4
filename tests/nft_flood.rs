//! A single-knock `Nft_Set` door under a spoofed flood: `hping3 --flood
//! --rand-source` at its port from a neighbouring namespace, while its
//! owner knocks from their own address. The owner must be in the set
//! within a second, the admin's elements untouched, and the daemon's CPU
//! and memory bounded.
//!
//! Root only (namespaces, nftables, hping3). Bounded: hping3 runs under
//! `timeout` with a packet count, and is killed when the test ends.

mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use knockd::daemon::nft::{Nft, SetRef};
use support::{require_root, test_dir, Daemon, VethPair, CLI_V4, SRV_IF, SRV_V4};

const WHY: &str = "network namespaces, nftables and hping3";

/// The flood: killed (by its pid) if the test ends first.
struct Flood(Child);

impl Drop for Flood {
    fn drop(&mut self) {
        // SIGTERM, which `timeout` (the child: `ip netns exec` execs it)
        // passes on to hping3; a SIGKILL would orphan hping3.
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

/// Packets the interface received so far.
fn rx_packets(net: &VethPair) -> u64 {
    let path = format!("/sys/class/net/{SRV_IF}/statistics/rx_packets");
    let out = net.server.exec("cat", &[&path]);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("rx_packets")
}

/// The daemon's CPU time so far (user + system) and its resident memory.
fn usage(pid: i32) -> (Duration, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime), counted from the state (field 3).
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    (Duration::from_millis(ticks * 1000 / hz), rss_kib)
}

#[test]
#[ignore = "needs root: network namespaces, nftables and hping3"]
fn a_single_knock_nft_door_admits_its_owner_during_a_spoofed_flood() {
    require_root(WHY);
    assert!(
        Command::new("hping3").arg("--version").output().is_ok(),
        "hping3 not found: install it (scripts/deps.sh test)"
    );
    let net = VethPair::new("nflood");
    // A small set, so the flood fills it within a second or two and the
    // owner's addition must make room.
    let size = 1024;
    for cmd in [
        "add table inet t".to_string(),
        format!("add set inet t s {{ type ipv4_addr; flags timeout; size {size}; }}"),
        // The admin's: one for good, one for an hour.
        "add element inet t s { 192.0.2.200 }".to_string(),
        "add element inet t s { 192.0.2.201 timeout 1h }".to_string(),
    ] {
        net.server.exec("nft", &[&cmd]);
    }
    let set: SetRef = "inet t s".parse().expect("set");
    let mut nft = net.server.enter(Nft::open).expect("netlink");
    let dir = test_dir();
    let conf = "[door]\n\tSequence = 7000:udp\n\tNft_Set = inet t s\n\tCmd_Timeout = 30\n";
    let daemon = Daemon::start(dir.path(), Some(&net.server), &["-i", SRV_IF], conf);
    let pid = daemon.pid().as_raw();
    let (cpu_idle, rss_idle) = usage(pid);

    let rx0 = rx_packets(&net);
    let t0 = Instant::now();
    let flood = Flood(
        Command::new("ip")
            .args(["netns", "exec", net.client.name(), "timeout", "10"])
            .args(["hping3", "--udp", "--flood", "--rand-source", "-p", "7000"])
            .args(["-c", "3000000", &SRV_V4.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hping3"),
    );
    // Let the flood fill the set.
    let deadline = Instant::now() + Duration::from_secs(3);
    let full = loop {
        let n = nft.elements(&set).expect("elements").len();
        if n >= size || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (cpu_a, _) = usage(pid);
    let at_a = Instant::now();

    // The owner knocks, every 100 ms as a client retrying would, until in.
    let owner = IpAddr::V4(CLI_V4);
    let sock = net
        .client
        .enter(|| UdpSocket::bind(SocketAddr::new(owner, 0)))
        .expect("bind");
    let door = SocketAddr::new(IpAddr::V4(SRV_V4), 7000);
    let first = Instant::now();
    let mut knocks = 0;
    let mut last = None;
    let admitted = loop {
        if last.is_none_or(|t: Instant| t.elapsed() >= Duration::from_millis(100)) {
            sock.send_to(b"knock", door).expect("knock");
            knocks += 1;
            last = Some(Instant::now());
        }
        let elems = nft.elements(&set).expect("elements");
        if elems.iter().any(|(a, _)| *a == owner) {
            break Some(first.elapsed());
        }
        if first.elapsed() > Duration::from_secs(3) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(Duration::from_millis(500));
    let (cpu_b, rss) = usage(pid);
    let window = at_a.elapsed();
    let rx = rx_packets(&net) - rx0;
    let rate = rx as f64 / t0.elapsed().as_secs_f64();
    let cpu = (cpu_b - cpu_a).as_secs_f64() / window.as_secs_f64() * 100.0;
    let elems = nft.elements(&set).expect("elements");
    drop(flood);
    println!(
        "flood {rate:.0} pkt/s; owner admitted after {admitted:?} ({knocks} knock(s)); \
         daemon CPU {cpu:.1}% during the flood, RSS {rss} KiB (idle: {rss_idle} KiB, \
         {cpu_idle:?} CPU at start); set: {} elements",
        elems.len()
    );
    let msgs = daemon.stop();
    let admitted = admitted.unwrap_or_else(|| {
        panic!(
            "the owner was not admitted within 3 s; last log lines:\n{:#?}",
            &msgs[msgs.len().saturating_sub(8)..]
        )
    });
    assert!(
        admitted < Duration::from_secs(1),
        "admitted after {admitted:?}"
    );
    assert_eq!(full, size, "the flood did not fill the set");
    // The admin's elements are untouched: the permanent one still has no
    // timeout.
    let find = |a: &str| {
        let a: IpAddr = a.parse().expect("addr");
        elems.iter().find(|(e, _)| *e == a).map(|(_, t)| *t)
    };
    assert_eq!(find("192.0.2.200"), Some(None), "admin's permanent element");
    assert!(
        find("192.0.2.201").is_some_and(|t| t.is_some_and(|t| t > Duration::from_secs(3000))),
        "admin's element with a timeout"
    );
    // Bounded: well under a core while every packet of the flood is read,
    // and memory within a few MiB of idle.
    assert!(cpu < 100.0, "daemon CPU {cpu:.1}%");
    assert!(rss < rss_idle + 64 * 1024, "daemon RSS {rss} KiB");
}
