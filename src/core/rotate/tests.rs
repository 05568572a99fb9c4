//! The published test vectors (checked against an independent Python
//! implementation of the README's text, `scripts/rotate-reference.py`) and
//! the properties the derivation promises.

use super::*;

const SECRET_A: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const SECRET_B: &str = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U";

fn rotation(first: u16, last: u16, length: u8, protocols: &[Proto], period: u64) -> Rotation {
    Rotation {
        length,
        first,
        last,
        protocols: protocols.to_vec(),
        period,
        skew: 1,
    }
}

fn derive(secret: &str, door: &str, r: &Rotation, unix: u64) -> (u64, String) {
    let s = Secret::from_base32(secret).unwrap();
    let counter = r.counter(unix);
    (counter, sequence(&s, door, r, counter).to_string())
}

use Proto::{Tcp, Udp};

/// The README's table; any client that reproduces it derives what the
/// daemon expects.
#[test]
fn published_test_vectors() {
    let ssh = rotation(10000, 10999, 5, &[Tcp], 30);
    let cases = [
        (
            SECRET_A,
            "ssh",
            &ssh,
            1_700_000_000,
            56_666_666,
            "10759:tcp,10995:tcp,10648:tcp,10389:tcp,10822:tcp",
        ),
        (
            SECRET_A,
            "ssh",
            &ssh,
            1_700_000_009,
            56_666_666,
            "10759:tcp,10995:tcp,10648:tcp,10389:tcp,10822:tcp",
        ),
        (
            SECRET_A,
            "ssh",
            &ssh,
            1_700_000_010,
            56_666_667,
            "10846:tcp,10066:tcp,10484:tcp,10876:tcp,10800:tcp",
        ),
        (
            SECRET_A,
            "web",
            &ssh,
            1_700_000_000,
            56_666_666,
            "10883:tcp,10239:tcp,10902:tcp,10251:tcp,10749:tcp",
        ),
    ];
    for (secret, door, r, unix, counter, want) in cases {
        assert_eq!(
            derive(secret, door, r, unix),
            (counter, want.to_string()),
            "{door} at {unix}"
        );
    }
    let mixed = rotation(1, 65535, 8, &[Tcp, Udp, Tcp, Udp, Tcp, Udp, Tcp, Udp], 60);
    assert_eq!(
        derive(SECRET_B, "openSSH", &mixed, 1_800_000_000),
        (
            30_000_000,
            "38005:tcp,8340:udp,28852:tcp,64074:udp,33158:tcp,22691:udp,26499:tcp,62752:udp".into()
        )
    );
    // Every port of a 5-port range, each once.
    let tiny = rotation(7000, 7004, 5, &[Udp], 3600);
    assert_eq!(
        derive(SECRET_B, "tiny", &tiny, 0),
        (0, "7000:udp,7004:udp,7001:udp,7002:udp,7003:udp".into())
    );
}

#[test]
fn no_port_twice_in_a_sequence() {
    let s = Secret::from_base32(SECRET_A).unwrap();
    // A small range makes collisions likely, so the rule is exercised.
    let r = rotation(2000, 2009, 10, &[Tcp], 30);
    for counter in 0..2000 {
        let seq = sequence(&s, "d", &r, counter);
        let mut ports: Vec<u16> = seq.steps().iter().map(|st| st.port).collect();
        assert_eq!(ports.len(), 10);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 10, "counter {counter}: {seq}");
        assert!(ports.iter().all(|p| (2000..=2009).contains(p)));
    }
}

/// Ports are spread evenly over the range: over many periods each of 20
/// buckets of a 1000-port range gets its share within 15% (a modulo-biased
/// or broken stream would not).
#[test]
fn ports_are_uniform_over_many_periods() {
    let s = Secret::from_base32(SECRET_B).unwrap();
    let r = rotation(10000, 10999, 5, &[Tcp], 30);
    let mut buckets = [0u32; 20];
    let periods = 20_000;
    for counter in 0..periods {
        for st in sequence(&s, "ssh", &r, counter).steps() {
            buckets[((st.port - 10000) / 50) as usize] += 1;
        }
    }
    let expected = (periods * 5) as f64 / 20.0;
    for (i, b) in buckets.iter().enumerate() {
        let off = (*b as f64 - expected).abs() / expected;
        assert!(off < 0.15, "bucket {i}: {b} vs {expected}");
    }
}

#[test]
fn periods_doors_and_secrets_each_change_the_sequence() {
    let a = Secret::from_base32(SECRET_A).unwrap();
    let b = Secret::from_base32(SECRET_B).unwrap();
    let r = rotation(1, 65535, 6, &[Tcp], 30);
    let base = sequence(&a, "ssh", &r, 7);
    assert_ne!(base, sequence(&a, "ssh", &r, 8));
    assert_ne!(base, sequence(&a, "ssH", &r, 7));
    assert_ne!(base, sequence(&b, "ssh", &r, 7));
    assert_eq!(base, sequence(&a, "ssh", &r, 7), "deterministic");
}

#[test]
fn counters_at_period_edges() {
    let r = rotation(1, 2, 1, &[Tcp], 30);
    assert_eq!(r.counter(0), 0);
    assert_eq!(r.counter(29), 0);
    assert_eq!(r.counter(30), 1);
    assert_eq!(r.counter(u64::MAX), u64::MAX / 30);
}

#[test]
fn secrets_are_base32_of_16_to_64_bytes_and_never_printed() {
    let s = Secret::from_base32("gezd gnbv gy3t qojq\ngezdgnbvgy3tqojq==\n").unwrap();
    assert_eq!(s.to_base32(), SECRET_A);
    assert_eq!(format!("{s:?}"), "Secret(20 bytes)");
    assert_eq!(
        Secret::from_base32("not base32!"),
        Err(SecretError::NotBase32)
    );
    assert_eq!(
        Secret::from_base32("GEZDGNBV"),
        Err(SecretError::TooShort(5))
    );
    let long = data_encoding::BASE32_NOPAD.encode(&[7u8; 65]);
    assert_eq!(Secret::from_base32(&long), Err(SecretError::TooLong(65)));
}

#[test]
fn rotations_are_validated() {
    let ok = rotation(10000, 10999, 5, &[Tcp], 30);
    assert_eq!(ok.validate(), Ok(()));
    let bad = |f: &dyn Fn(&mut Rotation)| {
        let mut r = ok.clone();
        f(&mut r);
        r.validate().unwrap_err().to_string()
    };
    assert_eq!(
        bad(&|r| r.length = 33),
        "Sequence_Length 33 is out of range (1-32)"
    );
    assert_eq!(
        bad(&|r| {
            r.first = 7000;
            r.last = 7003;
        }),
        "Sequence_Length 5 is more than the 4 ports of Sequence_Ports (no port repeats)"
    );
    assert_eq!(
        bad(&|r| r.protocols = vec![Tcp, Udp]),
        "Sequence_Protocols names 2 protocols for 5 steps (give one, or one per step)"
    );
    assert_eq!(
        bad(&|r| r.period = 0),
        "Sequence_Period must be at least 1 second"
    );
    assert_eq!(
        bad(&|r| r.skew = 4),
        "Sequence_Skew 4 is out of range (0-3)"
    );
}
