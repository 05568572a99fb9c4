//! Engine throughput with 1k, 100k and 1M tracked sources, on one core.
//!
//! `cargo bench --bench engine` prints a table of knocks per second for two
//! workloads and the slowdown from the smallest to the largest table:
//! - progress: tracked sources move through their sequence (a hash hit, an
//!   advance or a restart, and a Stage line each);
//! - repeat: tracked sources retransmit the step they matched (lookups
//!   only: the floor set by memory latency);
//! - flood: never-seen spoofed sources hit the first port of a full table
//!   (a miss, an insert and an eviction each), the shape of an attack.
//!
//! Actions are drained after every knock, as the daemon's loop does.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use knockd::config::{Config, Door, Options, Sequence, Step};
use knockd::engine::{Engine, LocalAddrs};
use knockd::knock::{Knock, Proto, TcpFlags, Timestamp};

const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
const KNOCKS: u64 = 4_000_000;

fn step(port: u16) -> Step {
    Step {
        port,
        proto: Proto::Tcp,
    }
}

fn engine(cap: usize) -> Engine {
    let mut door = Door::new(
        "bench",
        Sequence::new(vec![step(7000), step(8000), step(9000)]).expect("valid"),
    );
    door.seq_timeout = Duration::from_secs(1_000_000);
    door.start_command = Some("true".into());
    let config = Config {
        options: Options {
            max_attempts: cap,
            ..Options::default()
        },
        doors: vec![door],
    };
    Engine::new(&config, LocalAddrs::Any)
}

/// Source number `n`, scattered over the address space.
fn source(n: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from((n.wrapping_mul(0x9E37_79B9) as u32) | 1))
}

fn knock(at: u64, src: IpAddr, port: u16) -> Knock {
    Knock {
        at: Timestamp::from_nanos(at),
        src,
        dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        proto: Proto::Tcp,
        dst_port: port,
        tcp_flags: TcpFlags::SYN,
    }
}

fn drain(e: &mut Engine) -> u64 {
    let mut n = 0;
    while let Some(a) = e.poll_action() {
        black_box(&a);
        n += 1;
    }
    n
}

/// Fills the table with `n` sources at stage 1.
fn prefilled(n: usize) -> (Engine, u64) {
    let mut e = engine(n);
    for i in 0..n as u64 {
        e.handle_knock(&knock(i, source(i), 7000));
        drain(&mut e);
    }
    assert_eq!(e.tracked_attempts(), n);
    (e, n as u64)
}

/// A stride coprime with `n` and far from 1, so `i * stride % n` visits
/// every source once in an order unrelated to insertion (slab) order.
fn scatter_stride(n: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let mut s = (0x9E37_79B1 % n).max(n / 3 + 1);
    while gcd(s, n) != 1 {
        s += 1;
    }
    s
}

/// Knocks per second while tracked sources progress: a pass sending every
/// source its second step (stage 1 → 2), then a pass sending the first
/// step again (restart → 1), in a scattered order.
fn progress(n: usize) -> f64 {
    let (mut e, mut t) = prefilled(n);
    let n = n as u64;
    let stride = scatter_stride(n);
    let start = Instant::now();
    let mut sent = 0;
    let mut pass = 0;
    while sent < KNOCKS {
        let port = if pass % 2 == 0 { 8000 } else { 7000 };
        for i in 0..n {
            let idx = (i * stride) % n;
            t += 1;
            e.handle_knock(&knock(t, source(idx), port));
            drain(&mut e);
        }
        sent += n;
        pass += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(e.tracked_attempts(), n as usize);
    sent as f64 / secs
}

/// Knocks per second of retransmitted first steps: lookups only.
fn repeat(n: usize) -> f64 {
    let (mut e, mut t) = prefilled(n);
    let n = n as u64;
    let stride = scatter_stride(n);
    let start = Instant::now();
    let mut sent = 0;
    while sent < KNOCKS {
        for i in 0..n {
            t += 1;
            e.handle_knock(&knock(t, source((i * stride) % n), 7000));
            drain(&mut e);
        }
        sent += n;
    }
    sent as f64 / start.elapsed().as_secs_f64()
}

/// Knocks per second from never-seen sources into a full table.
fn flood(n: usize) -> f64 {
    let (mut e, mut t) = prefilled(n);
    let first_new = t;
    let start = Instant::now();
    for i in 0..KNOCKS {
        t += 1;
        e.handle_knock(&knock(t, source(first_new + i), 7000));
        drain(&mut e);
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(e.tracked_attempts(), n);
    assert!(e.stats().evicted >= KNOCKS);
    KNOCKS as f64 / secs
}

fn main() {
    // `cargo test` runs benches with --test-ish flags when asked to; only
    // `cargo bench` (which passes --bench) measures.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("engine throughput, one core, {KNOCKS} knocks per cell (M knocks/s)");
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10}",
        "sources", "progress", "repeat", "flood", "table MiB"
    );
    let mut rows = Vec::new();
    for n in SIZES {
        let p = progress(n);
        let f = flood(n);
        let r = repeat(n);
        let mib = prefilled(n).0.attempt_table_bytes() as f64 / (1 << 20) as f64;
        println!(
            "{:>10} {:>10.2} {:>10.2} {:>10.2} {:>10.1}",
            n,
            p / 1e6,
            r / 1e6,
            f / 1e6,
            mib
        );
        rows.push((p, r, f));
    }
    let (first, last) = (rows[0], rows[rows.len() - 1]);
    println!(
        "slowdown {}→{} sources: progress {:.2}x, repeat {:.2}x, flood {:.2}x",
        SIZES[0],
        SIZES[SIZES.len() - 1],
        first.0 / last.0,
        first.1 / last.1,
        first.2 / last.2
    );
}
