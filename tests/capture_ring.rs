//! Privileged test of the capture ring: a capture starts with a small
//! kernel ring and moves to a large one when a flood comes, without losing,
//! repeating or reordering a packet in the move (core::ring decides when,
//! daemon::fanout makes the move exact). That is libpcap's reader, which
//! the daemon uses where a packet socket cannot be (`any`, link layers
//! other than Ethernet) or with `KNOCKD_CAPTURE=libpcap`; the same flood is
//! also read from the packet socket the daemon uses on `lo`.
//!
//! Needs root, so `#[ignore]`d; each test runs in a network namespace of
//! its own, injecting on that namespace's `lo`. They never run at once:
//! a capture socket opened by one would be inherited by the `ip netns exec`
//! the other forks (a test process does not mark its sockets close-on-exec
//! the way the daemon does), and a socket held open elsewhere stays in its
//! fanout group after it is dropped.

mod support;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use knockd::core::knock::Timestamp;
use knockd::core::ring::{CALM_BYTES, FLOOD_BYTES, SOCKET};
use knockd::core::wire;
use knockd::daemon::capture::{LiveCapture, BATCH, SOCKET_QUEUE_BYTES};
use support::{actions, require_root, test_dir, Daemon, Flags, Injector, Launch, Netns};

/// Held by each test for its whole run.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spoofed SYNs to the door's first port, one per source.
const FLOOD: u32 = 8000;
/// Packets per burst, then a pause: about 10k packets a second, which a
/// daemon on a busy machine reads as fast as they come, so the small ring
/// never overflows and every packet must be accounted for.
const BURST: u32 = 10;
const PAUSE: Duration = Duration::from_millis(1);
/// The real knocker, and where among the flood its three steps go: the
/// first long before the ring grows (1024 packets within a second make a
/// flood), the last long after.
const KNOCKER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const STEPS: [(u32, u16); 3] = [(200, 7801), (4000, 7802), (7800, 7803)];

/// The n-th flood source, in 198.18.0.0/15 (RFC 2544, benchmarking).
fn flood_src(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xC612_0000 + n)
}

fn d(dir: &Path) -> String {
    dir.to_str().expect("utf-8 temp dir").to_string()
}

#[test]
#[ignore = "needs root: network namespace, packet injection and live capture"]
fn a_flood_grows_the_capture_ring_and_a_knock_across_the_move_opens_once() {
    flood_with_a_knock(Reader::Libpcap);
}

/// The same flood on a capture that starts on a packet socket (the default
/// on `lo`) and moves from it to the ring.
#[test]
#[ignore = "needs root: network namespace, packet injection and live capture"]
fn a_flood_moves_a_socket_capture_to_a_ring_and_a_knock_across_the_move_opens_once() {
    flood_with_a_knock(Reader::Socket);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// libpcap's ring (`KNOCKD_CAPTURE=libpcap`).
    Libpcap,
    Socket,
}

fn flood_with_a_knock(reader: Reader) {
    require_root("network namespace, packet injection and live capture");
    let _alone = one_at_a_time();
    let dir = test_dir();
    let p = d(dir.path());
    let ns = Netns::new("ring");
    // Every stage line logged, so each packet shows up exactly once.
    let conf = format!(
        "[options]\n\tLogRate = 0\n\tMaxLogLines = 0\n\
         [ring]\n\tSequence = 7801,7802,7803\n\tSeq_Timeout = 20\n\tTCPFlags = syn\n\
         \tStart_Command = touch {p}/opened-%IP%\n"
    );
    let mut launch = vec!["ip", "netns", "exec", ns.name(), "env"];
    if reader == Reader::Libpcap {
        launch.push("KNOCKD_CAPTURE=libpcap");
    }
    let launch = Launch::Wrapped(launch.into_iter().map(String::from).collect());
    let mut daemon = Daemon::launch(dir.path(), launch, &["-i", "lo"], &conf);
    ns.enter(|| {
        let mut inj = Injector::lo();
        let begin = Instant::now();
        for n in 0..FLOOD {
            if let Some(&(_, port)) = STEPS.iter().find(|(at, _)| *at == n) {
                inj.tcp_from(KNOCKER, port, Flags::Syn);
            }
            inj.tcp_from(flood_src(n), 7801, Flags::Syn);
            if n % BURST == BURST - 1 {
                std::thread::sleep(PAUSE);
            }
            assert!(
                begin.elapsed() < Duration::from_secs(30),
                "injection too slow"
            );
        }
    });
    daemon.wait_for_file(&dir.path().join(format!("opened-{KNOCKER}")));
    daemon.wait_until("every flood packet", Duration::from_secs(30), |msgs| {
        msgs.iter().filter(|m| m.starts_with("198.18.")).count() >= FLOOD as usize
    });
    let msgs = daemon.stop();
    let acts = actions(&msgs);
    let log = || msgs.join("\n");

    // Each spoofed source seen exactly once: nothing lost, nothing twice.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for m in &acts {
        if let Some(src) = m.strip_suffix(": ring: Stage 1") {
            *seen.entry(src).or_default() += 1;
        }
    }
    for n in 0..FLOOD {
        let src = flood_src(n).to_string();
        assert_eq!(seen.get(src.as_str()), Some(&1), "{src}:\n{}", log());
    }

    // The ring grew once, while the real knock was under way, and the
    // knock opened once.
    let at = |line: &str| {
        acts.iter()
            .position(|m| m == line)
            .unwrap_or_else(|| panic!("no {line:?} in:\n{}", log()))
    };
    let grown: Vec<usize> = (0..acts.len())
        .filter(|&i| acts[i].starts_with("lo: capture buffer grown to 16 MiB ("))
        .collect();
    let first = at(&format!("{KNOCKER}: ring: Stage 1"));
    let open = at(&format!("{KNOCKER}: ring: OPEN SESAME"));
    assert_eq!(grown.len(), 1, "{}", log());
    assert!(first < grown[0] && grown[0] < open, "{}", log());
    assert_eq!(
        acts.iter().filter(|m| m.contains("OPEN SESAME")).count(),
        1,
        "{}",
        log()
    );
    assert!(
        !acts.iter().any(|m| m.contains("already open")),
        "{}",
        log()
    );

    // The kernel dropped nothing, and the counters span both rings.
    let stats = msgs
        .iter()
        .find(|m| m.starts_with("lo: ") && m.contains(" packets received, "))
        .unwrap_or_else(|| panic!("no capture statistics in:\n{}", log()));
    let received: u64 = stats["lo: ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stats}"));
    // Loopback shows each packet once where the kernel can leave out the
    // sent copy (recent kernels), twice on older ones.
    let sent = u64::from(FLOOD) + 3;
    assert!(received == sent || received == 2 * sent, "{stats}");
    assert!(stats.contains(" 0 dropped by the kernel"), "{stats}");
}

/// The flood sources (as numbers, see [`flood_src`]) of everything waiting
/// in `cap`, in the order read.
fn drain(cap: &mut LiveCapture) -> Vec<u32> {
    let link = cap.link();
    let mut got = Vec::new();
    loop {
        let n = cap
            .read_batch(|data, len| {
                let packet = wire::parse(link, data, len, Timestamp::ZERO).expect("a knock");
                if let std::net::IpAddr::V4(src) = packet.knock.src {
                    got.push(u32::from(src) - 0xC612_0000);
                }
            })
            .expect("read");
        if n < BATCH {
            return got;
        }
    }
}

/// Sends SYNs from flood sources `range` to port 7811.
fn inject(inj: &mut Injector, range: std::ops::Range<u32>) {
    for n in range {
        inj.tcp_from(flood_src(n), 7811, Flags::Syn);
    }
}

/// Sends the next `count` SYNs after `sent`, and counts them.
fn send(inj: &mut Injector, sent: &mut u32, count: u32) {
    inject(inj, *sent..*sent + count);
    *sent += count;
}

/// The move itself, at the capture level and without timing luck: packets
/// left unread in the old ring at the hand-over, packets sent while the
/// new capture opens (which it must not keep) and after it. Every packet is
/// read exactly once, the old ring's before the new one's; then the ring
/// moves back, as after a calm.
#[test]
#[ignore = "needs root: network namespace, packet injection and live capture"]
fn a_capture_moves_to_another_ring_without_a_gap_or_a_copy() {
    moves_without_a_gap_or_a_copy(CALM_BYTES);
}

/// The same moves from a packet socket to the ring and back.
#[test]
#[ignore = "needs root: network namespace, packet injection and live capture"]
fn a_socket_capture_moves_to_a_ring_and_back_without_a_gap_or_a_copy() {
    moves_without_a_gap_or_a_copy(SOCKET);
}

fn moves_without_a_gap_or_a_copy(calm: usize) {
    require_root("network namespace, packet injection and live capture");
    let _alone = one_at_a_time();
    let ns = Netns::new("ringmv");
    ns.enter(|| {
        const FILTER: &str = "tcp dst port 7811";
        let mut old = if calm == SOCKET {
            LiveCapture::open_socket("lo", SOCKET_QUEUE_BYTES)
                .expect("open lo")
                .expect("lo suits a packet socket")
        } else {
            LiveCapture::open("lo", calm).expect("open lo")
        };
        assert_eq!(old.is_socket(), calm == SOCKET);
        old.set_filter(FILTER).expect("filter");
        assert!(old.resizable(), "this kernel has no unique fanout groups");
        let mut inj = Injector::lo();
        let mut seen = Vec::new();
        for (from, to) in [(calm, FLOOD_BYTES), (FLOOD_BYTES, calm)] {
            assert_eq!(old.ring_bytes(), from);
            let base = seen.len() as u32;
            let mut sent = base;
            send(&mut inj, &mut sent, 300);
            let opening = old.open_sibling(to, FILTER).expect("open a sibling");
            // While it opens, so that packets reach it before it joins.
            let begin = Instant::now();
            while !opening.is_done() {
                assert!(begin.elapsed() < Duration::from_secs(10), "opening hangs");
                send(&mut inj, &mut sent, 10);
                std::thread::sleep(Duration::from_micros(200));
            }
            let mut next = opening.finish(FILTER).expect("opened");
            assert_eq!(next.ring_bytes(), to);
            send(&mut inj, &mut sent, 300);
            let handed = sent;
            old.hand_over(&next).expect("hand over");
            send(&mut inj, &mut sent, 300);
            let before = drain(&mut old);
            let after = drain(&mut next);
            drop(old);
            next.settle();
            assert!(next.resizable());
            let mut all = before.clone();
            all.extend(&after);
            let want: Vec<u32> = (base..sent).collect();
            assert_eq!(all, want, "old ring {before:?}\nnew ring {after:?}");
            // Nothing sent before the hand-over reached the new ring, and
            // what was sent after did.
            assert!(
                before.len() >= (handed - base) as usize,
                "old ring {before:?}"
            );
            assert_eq!(after.last(), Some(&(sent - 1)), "new ring {after:?}");
            seen.extend(all);
            old = next;
        }
        // The settled capture still receives everything.
        let base = seen.len() as u32;
        inject(&mut inj, base..base + 100);
        assert_eq!(drain(&mut old), (base..base + 100).collect::<Vec<_>>());
    });
}
