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
//! Each table is measured twice: in batches of 64 knocks through
//! `Engine::handle_knocks`, actions drained after each batch (what the
//! daemon's capture loop does, and what the targets are about), and one
//! knock at a time through `Engine::handle_knock`, actions drained after
//! each (the cost without look-ahead prefetching).
//!
//! Read the two together: the look-ahead costs about 10 ns of work per knock
//! at every size, which buys nothing while the table fits in cache, so at 1k
//! sources the one-at-a-time path is the faster one; it pays off from about
//! 100k sources up. `--batch-only`, `--one-only`, `--only WORKLOAD` and
//! `--size N` narrow the run for profiling.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use knockd::core::config::{Config, Door, Options, Sequence, Step};
use knockd::core::engine::{Engine, LocalAddrs};
use knockd::core::knock::{Knock, Proto, TcpFlags, Timestamp};

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
    while let Some(a) = e.poll_accepting() {
        black_box(&a);
        n += 1;
    }
    n
}

/// Knocks in batches as the daemon feeds them: `batch` 1 is one
/// `handle_knock` at a time.
struct Feeder {
    batch: usize,
    buf: Vec<Knock>,
}

impl Feeder {
    fn new(batch: usize) -> Self {
        Feeder {
            batch,
            buf: Vec::with_capacity(batch),
        }
    }

    #[inline]
    fn push(&mut self, e: &mut Engine, k: Knock) {
        if self.batch == 1 {
            e.handle_knock(&k);
            drain(e);
            return;
        }
        self.buf.push(k);
        if self.buf.len() == self.batch {
            self.flush(e);
        }
    }

    fn flush(&mut self, e: &mut Engine) {
        let mut rest = self.buf.as_slice();
        while !rest.is_empty() {
            let handled = e.handle_knocks(rest);
            rest = &rest[handled..];
            drain(e);
        }
        self.buf.clear();
    }
}

/// Fills the table with `n` sources at stage 1.
fn prefilled(n: usize) -> (Engine, u64) {
    let mut e = engine(n);
    let mut f = Feeder::new(64);
    for i in 0..n as u64 {
        f.push(&mut e, knock(i, source(i), 7000));
    }
    f.flush(&mut e);
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

/// Sends every tracked source one knock per pass, in a scattered order,
/// until [`KNOCKS`] have been sent; `port_of(pass)` picks the pass's port.
/// Returns knocks per second.
fn scattered(
    e: &mut Engine,
    t: &mut u64,
    n: usize,
    batch: usize,
    port_of: impl Fn(u64) -> u16,
) -> f64 {
    let mut f = Feeder::new(batch);
    let n = n as u64;
    let stride = scatter_stride(n);
    let start = Instant::now();
    let mut sent = 0;
    let mut pass = 0;
    while sent < KNOCKS {
        let port = port_of(pass);
        for i in 0..n {
            *t += 1;
            f.push(e, knock(*t, source((i * stride) % n), port));
        }
        sent += n;
        pass += 1;
    }
    f.flush(e);
    sent as f64 / start.elapsed().as_secs_f64()
}

/// Knocks per second while tracked sources progress: a pass sending every
/// source its second step (stage 1 → 2), then a pass sending the first
/// step again (restart → 1), in a scattered order.
fn progress(n: usize, batch: usize) -> f64 {
    let (mut e, mut t) = prefilled(n);
    let rate = scattered(&mut e, &mut t, n, batch, |pass| {
        if pass % 2 == 0 {
            8000
        } else {
            7000
        }
    });
    assert_eq!(e.tracked_attempts(), n);
    rate
}

/// Knocks per second of retransmitted steps: every source is moved to
/// stage 2 first, then keeps resending its second step, which the engine
/// ignores (at stage 1 a repeated first port would restart instead).
/// Lookups only: the floor set by memory latency.
fn repeat(n: usize, batch: usize) -> f64 {
    let (mut e, mut t) = prefilled(n);
    for i in 0..n as u64 {
        t += 1;
        e.handle_knock(&knock(t, source(i), 8000));
        drain(&mut e);
    }
    let before = e.stats();
    let rate = scattered(&mut e, &mut t, n, batch, |_| 8000);
    assert_eq!(e.tracked_attempts(), n);
    assert_eq!(
        e.stats().opened,
        before.opened,
        "retransmits must not advance"
    );
    rate
}

/// Knocks per second from never-seen sources into a full table.
fn flood(n: usize, batch: usize) -> f64 {
    let (mut e, mut t) = prefilled(n);
    let mut f = Feeder::new(batch);
    let first_new = t;
    let start = Instant::now();
    for i in 0..KNOCKS {
        t += 1;
        f.push(&mut e, knock(t, source(first_new + i), 7000));
    }
    f.flush(&mut e);
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(e.tracked_attempts(), n);
    assert!(e.stats().evicted >= KNOCKS);
    KNOCKS as f64 / secs
}

fn table(batch: usize) {
    if batch == 1 {
        println!("one knock at a time (handle_knock), M knocks/s");
    } else {
        println!("batches of {batch} (handle_knocks), M knocks/s");
    }
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10}",
        "sources", "progress", "repeat", "flood", "table MiB"
    );
    let mut rows = Vec::new();
    // `--only WORKLOAD` skips the others (reported as 0), for profiling.
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    let wants = |w: &str| only.as_deref().is_none_or(|o| o == w);
    // `--size N` measures that table size alone.
    let size: Option<usize> = std::env::args()
        .skip_while(|a| a != "--size")
        .nth(1)
        .and_then(|n| n.parse().ok());
    for n in SIZES.into_iter().filter(|&n| size.is_none_or(|s| s == n)) {
        let p = if wants("progress") {
            progress(n, batch)
        } else {
            0.0
        };
        let f = if wants("flood") { flood(n, batch) } else { 0.0 };
        let r = if wants("repeat") {
            repeat(n, batch)
        } else {
            0.0
        };
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
    let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
        return;
    };
    println!(
        "slowdown {}→{} sources: progress {:.2}x, repeat {:.2}x, flood {:.2}x",
        SIZES[0],
        SIZES[SIZES.len() - 1],
        first.0 / last.0,
        first.1 / last.1,
        first.2 / last.2
    );
}

fn main() {
    // `cargo test` runs benches with --test-ish flags when asked to; only
    // `cargo bench` (which passes --bench) measures.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("engine throughput, one core, {KNOCKS} knocks per cell");
    let has = |flag: &str| std::env::args().any(|a| a == flag);
    if !has("--one-only") {
        table(64);
    }
    if !has("--batch-only") {
        println!();
        table(1);
    }
}
