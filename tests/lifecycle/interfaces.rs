//! Interfaces: several at once, late, down and up, new addresses.

use super::*;

// ---------------------------------------------------------------------------
// 11. Interfaces: several at once, late, down and up, new addresses.

#[test]
#[ignore = "needs root: network namespaces and live capture"]
fn two_interfaces_at_once() {
    require_root("network namespaces and live capture");
    require_knock_client();
    let srv = Netns::new("two-s");
    let cli = Netns::new("two-c");
    Veth {
        a: (&srv, "kd-a", "02:00:00:00:01:01", "198.51.100.1/24"),
        b: (&cli, "kd-ca", "02:00:00:00:01:02", "198.51.100.2/24"),
    }
    .create();
    Veth {
        a: (&srv, "kd-b", "02:00:00:00:02:01", "203.0.113.1/24"),
        b: (&cli, "kd-cb", "02:00:00:00:02:02", "203.0.113.2/24"),
    }
    .create();
    let dir = test_dir();
    let p = d(dir.path());
    let conf = door(
        "door",
        [7471, 7472, 7473],
        &format!("\tStart_Command = touch {p}/opened-%IP%\n"),
    );
    let mut daemon = Daemon::start(dir.path(), Some(&srv), &["-i", "kd-a", "-i", "kd-b"], &conf);
    knock(Some(&cli), &["198.51.100.1", "7471", "7472", "7473"]);
    daemon.wait_for_file(&dir.path().join("opened-198.51.100.2"));
    knock(Some(&cli), &["203.0.113.1", "7471", "7472", "7473"]);
    daemon.wait_for_file(&dir.path().join("opened-203.0.113.2"));
    let msgs = daemon.stop();
    assert_eq!(msgs[0], "starting up, listening on kd-a,kd-b");
    let mut expected = Vec::new();
    for ip in ["198.51.100.2", "203.0.113.2"] {
        expected.extend(opened(ip, "door", 3, &format!("touch {p}/opened-{ip}")));
    }
    assert_eq!(actions(&msgs), expected);
}

/// Checks that `wanted` occur in `msgs` in this order (other lines may
/// come between). An entry ending in `*` matches by prefix, one starting
/// with `*` by suffix.
fn assert_in_order(msgs: &[String], wanted: &[String]) {
    let mut it = msgs.iter();
    for w in wanted {
        let hit = |m: &String| {
            if let Some(prefix) = w.strip_suffix('*') {
                m.starts_with(prefix)
            } else if let Some(suffix) = w.strip_prefix('*') {
                m.ends_with(suffix)
            } else {
                m == w
            }
        };
        assert!(
            it.any(hit),
            "{w:?} missing (or out of order) in:\n{}",
            msgs.join("\n")
        );
    }
}

#[test]
#[ignore = "needs root: network namespaces and live capture"]
fn an_interface_that_comes_late_goes_down_and_changes_address() {
    require_root("network namespaces and live capture");
    require_knock_client();
    let srv = Netns::new("late-s");
    let cli = Netns::new("late-c");
    let dir = test_dir();
    let p = d(dir.path());
    let conf = door(
        "door",
        [7481, 7482, 7483],
        &format!("\tStart_Command = touch {p}/opened-%IP%\n"),
    );
    let mut daemon = Daemon::start(dir.path(), Some(&srv), &["-i", "kd-late"], &conf);
    daemon.wait_for_line(
        "interface kd-late does not exist (yet); waiting for it",
        WAIT,
    );
    std::thread::sleep(Duration::from_secs(2));
    Veth {
        a: (&srv, "kd-late", "02:00:00:00:03:01", "192.0.2.1/24"),
        b: (&cli, "kd-clate", "02:00:00:00:03:02", "192.0.2.2/24"),
    }
    .create();
    daemon.wait_for_line("listening on kd-late", WAIT);
    let open_line = "192.0.2.2: door: OPEN SESAME";
    let opens = |n: usize| move |msgs: &[String]| count(msgs, open_line) == n;
    knock(Some(&cli), &["192.0.2.1", "7481", "7482", "7483"]);
    daemon.wait_until("the first knock", WAIT, opens(1));

    // Down and up again. The capture survives a down interface (the
    // kernel keeps the packet socket bound to it), so there is nothing to
    // reopen.
    srv.ip(&["link", "set", "kd-late", "down"]);
    std::thread::sleep(Duration::from_millis(300));
    srv.ip(&["link", "set", "kd-late", "up"]);
    support::wait_link_up(&srv, "kd-late");
    support::wait_link_up(&cli, "kd-clate");
    knock(Some(&cli), &["192.0.2.1", "7481", "7482", "7483"]);
    daemon.wait_until("the knock after down/up", WAIT, opens(2));

    // A new address: knocks to it count, knocks to the old one do not.
    srv.ip(&["addr", "del", "192.0.2.1/24", "dev", "kd-late"]);
    srv.ip(&["addr", "add", "192.0.2.11/24", "dev", "kd-late"]);
    daemon.wait_until("the new address", WAIT, |msgs| {
        msgs.iter().any(|m| {
            m.starts_with("addresses of kd-late: ")
                && m.split(' ').any(|a| a == "192.0.2.11")
                && !m.split(' ').any(|a| a == "192.0.2.1")
        })
    });
    settle();
    knock(Some(&cli), &["192.0.2.1", "7481", "7482", "7483"]);
    knock(Some(&cli), &["192.0.2.11", "7481", "7482", "7483"]);
    daemon.wait_until("the knock to the new address", WAIT, opens(3));
    let msgs = daemon.stop();

    let cmd = format!("touch {p}/opened-192.0.2.2");
    let mut wanted = lines(&[
        "starting up, listening on kd-late",
        "interface kd-late does not exist (yet); waiting for it",
        "listening on kd-late",
    ]);
    wanted.extend(opened("192.0.2.2", "door", 3, &cmd));
    wanted.extend(opened("192.0.2.2", "door", 3, &cmd));
    wanted.push("addresses of kd-late: *".into());
    wanted.extend(opened("192.0.2.2", "door", 3, &cmd));
    assert_in_order(&msgs, &wanted);
    // Exactly three knocks counted: the one to the old address did nothing.
    let knock_lines: Vec<&String> = msgs
        .iter()
        .filter(|m| m.starts_with("192.0.2.2: "))
        .collect();
    assert_eq!(knock_lines.len(), 12, "log:\n{}", msgs.join("\n"));
}
