//! Attempt table tests: the layout the docs promise, the index's SWAR
//! matching, source keys, slot reuse, list order, the eviction policy, the
//! memory bound, and the index against a model under churn.

use super::index::{match_byte, match_free, Group, DELETED, EMPTY, GROUP};
use super::*;
use std::collections::HashMap;
use std::net::Ipv4Addr;

fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0xC633_6400 + n)) // 198.51.100.0 + n
}

fn t(ms: u64) -> Timestamp {
    Timestamp::from_nanos(ms * 1_000_000)
}

fn find(a: &Attempts, src: IpAddr, door: u16) -> Option<SlotId> {
    a.find(&a.source(&src), door).ok()
}

fn insert(a: &mut Attempts, src: IpAddr, door: u16, at: Timestamp) -> Insert {
    match a.find(&a.source(&src), door) {
        Ok(_) => panic!("already there"),
        Err(v) => a.insert(v, at, 0),
    }
}

#[test]
fn layout_is_what_the_docs_promise() {
    assert_eq!(size_of::<Attempt>(), 32);
    assert_eq!(size_of::<Links>(), 16);
    assert_eq!(size_of::<Group>(), 64);
}

#[test]
fn swar_matching_is_exact() {
    let mut ctrl = [0u8; GROUP];
    for (i, c) in ctrl.iter_mut().enumerate() {
        *c = [0x00, 0x01, 0x80, 0x7F, EMPTY, DELETED, 0xFD][i % 7];
    }
    let w = u128::from_le_bytes(ctrl);
    for byte in [0x00, 0x01, 0x80, 0x7F, EMPTY, DELETED, 0xFD, 0x42] {
        let m = match_byte(w, byte);
        for (i, &c) in ctrl.iter().enumerate() {
            assert_eq!(
                m >> (i * 8 + 7) & 1 == 1,
                c == byte,
                "byte {byte:#x} at {i}"
            );
        }
    }
    let free = match_free(w);
    for (i, &c) in ctrl.iter().enumerate() {
        assert_eq!(free >> (i * 8 + 7) & 1 == 1, c >= DELETED, "free at {i}");
    }
}

#[test]
fn v4_and_v4_mapped_v6_are_different_sources() {
    let v4: IpAddr = "192.0.2.1".parse().unwrap();
    let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
    let mut a = Attempts::new(1, 10);
    insert(&mut a, v4, 0, t(0));
    assert_eq!(find(&a, mapped, 0), None);
    insert(&mut a, mapped, 0, t(1));
    assert_eq!(a.get(find(&a, v4, 0).unwrap()).src(), v4);
    assert_eq!(a.get(find(&a, mapped, 0).unwrap()).src(), mapped);
}

#[test]
fn insert_find_remove_reuses_slots() {
    let mut a = Attempts::new(2, 10);
    assert!(matches!(insert(&mut a, ip(1), 0, t(0)), Insert::Added));
    assert!(matches!(insert(&mut a, ip(1), 1, t(1)), Insert::Added));
    let id = find(&a, ip(1), 0).unwrap();
    assert_eq!(a.get(id).door, 0);
    assert_eq!(find(&a, ip(2), 0), None);
    a.remove(id);
    assert_eq!(find(&a, ip(1), 0), None);
    assert_eq!(a.len(), 1);
    insert(&mut a, ip(3), 0, t(2));
    assert_eq!(find(&a, ip(3), 0), Some(id), "freed slot is reused");
}

#[test]
fn door_list_is_in_start_order_and_restart_moves_to_back() {
    let mut a = Attempts::new(1, 10);
    for n in 0..3 {
        insert(&mut a, ip(n), 0, t(n as u64));
    }
    assert_eq!(a.get(a.oldest(0).unwrap()).src(), ip(0));
    let first = find(&a, ip(0), 0).unwrap();
    a.restart(first, t(10), 0);
    assert_eq!(a.get(a.oldest(0).unwrap()).src(), ip(1));
    a.clear_door(0);
    assert_eq!(a.len(), 0);
    assert_eq!(a.oldest(0), None);
}

#[test]
fn a_flood_of_first_steps_never_evicts_progress() {
    let mut a = Attempts::new(1, 4);
    insert(&mut a, ip(0), 0, t(0));
    let keep = find(&a, ip(0), 0).unwrap();
    a.advance(keep); // stage 2: protected
    for n in 1..1000 {
        match insert(&mut a, ip(n), 0, t(n as u64)) {
            Insert::Evicted { src, .. } => assert_ne!(src, ip(0)),
            Insert::Added => assert!(n < 4),
            Insert::Refused => panic!("young attempts were there to evict"),
        }
        assert!(a.len() <= 4);
    }
    assert_eq!(find(&a, ip(0), 0), Some(keep));
    assert_eq!(a.get(keep).stage, 2);
}

#[test]
fn refuses_new_attempts_when_all_have_progress() {
    let mut a = Attempts::new(2, 2);
    insert(&mut a, ip(0), 0, t(5));
    insert(&mut a, ip(1), 1, t(3));
    for n in 0..2 {
        let id = find(&a, ip(n), n as u16).unwrap();
        a.advance(id);
    }
    assert!(matches!(insert(&mut a, ip(9), 0, t(9)), Insert::Refused));
    assert_eq!(a.len(), 2);
    assert_eq!(find(&a, ip(9), 0), None);
    // Once one finishes, there is room again.
    a.remove(find(&a, ip(0), 0).unwrap());
    assert!(matches!(insert(&mut a, ip(9), 0, t(9)), Insert::Added));
}

#[test]
fn memory_is_bounded_by_the_cap() {
    let cap = 100_000;
    let mut a = Attempts::new(1, cap);
    for n in 0..3 * cap as u32 {
        insert(&mut a, ip(n), 0, t(u64::from(n)));
    }
    assert_eq!(a.len(), cap);
    assert_eq!(a.slots.capacity(), cap);
    // 48 bytes of slot and links, 8 of index, per attempt.
    assert!(a.memory_bytes() <= cap * 57, "{}", a.memory_bytes());
}

/// Churn through a small index (growth, full groups, tombstones and
/// rebuilds) against a plain map, and check the lists stay in order.
#[test]
fn index_agrees_with_a_model_under_churn() {
    let cap = 300;
    let mut a = Attempts::new(3, cap);
    let mut model: HashMap<(IpAddr, u16), (u8, Timestamp)> = HashMap::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut saw_tombs, mut swept) = (false, false);
    for step in 0..200_000u64 {
        let r = next();
        let src = ip((r % 700) as u32);
        let door = ((r >> 20) % 3) as u16;
        let now = t(step);
        match (find(&a, src, door), model.get(&(src, door)).copied()) {
            (Some(id), Some((stage, start))) => {
                let at = a.get(id);
                assert_eq!((at.stage, at.start, at.src()), (stage, start, src));
                match (r >> 40) % 3 {
                    0 => {
                        a.remove(id);
                        model.remove(&(src, door));
                    }
                    1 => {
                        a.advance(id);
                        model.insert((src, door), (stage + 1, start));
                    }
                    _ => {
                        a.restart(id, now, 0);
                        model.insert((src, door), (1, now));
                    }
                }
            }
            (None, None) => match insert(&mut a, src, door, now) {
                Insert::Added => {
                    model.insert((src, door), (1, now));
                }
                Insert::Evicted { src: s, door: d } => {
                    // The oldest stage-1 attempt, whatever its door.
                    let oldest = model.values().filter(|e| e.0 == 1).map(|e| e.1).min();
                    let gone = model.remove(&(s, d));
                    assert_eq!(gone.map(|e| e.0), Some(1));
                    assert_eq!(gone.map(|e| e.1), oldest);
                    model.insert((src, door), (1, now));
                }
                Insert::Refused => {
                    assert!(model.values().all(|e| e.0 >= 2));
                }
            },
            (found, expected) => panic!("step {step}: {found:?} vs {expected:?}"),
        }
        assert_eq!(a.len(), model.len());
        assert_eq!(a.index.items, a.len());
        saw_tombs |= a.index.tombs > 0;
        swept |= saw_tombs && a.index.tombs == 0;
        if step % 1000 == 0 {
            for d in 0..3 {
                let mut id = a.by_door[d as usize].head;
                let mut last = Timestamp::ZERO;
                let mut n = 0;
                while id != NIL {
                    let at = a.get(id);
                    assert!(at.start >= last, "door list out of order");
                    last = at.start;
                    n += 1;
                    id = a.links[id as usize].dl_next;
                }
                assert_eq!(n, model.keys().filter(|k| k.1 == d).count());
            }
        }
    }
    assert!(saw_tombs && swept, "tombstones never made or swept");
    assert!(a.memory_bytes() <= cap * 57 + 64 * 8);
}
