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

// ---------------------------------------------------------------------------
// No `-i`, no `Interface`, no eth0: the default route's interface, followed.

/// The lines of `msgs` about the choice of interface, for the transcript.
fn interface_lines(msgs: &[String]) -> Vec<String> {
    msgs.iter()
        .filter(|m| {
            m.starts_with("starting up")
                || m.contains("default route")
                || m.starts_with("listening on")
                || m.starts_with("addresses of")
                || m.starts_with("interface ")
        })
        .cloned()
        .collect()
}

/// The `interface: ...` line of `knockd --check` run in `ns` on `config`.
fn check_interface(ns: &Netns, dir: &Path, config: &str) -> String {
    let conf = write_config(dir, config);
    let out = ns.exec(KNOCKD, &["--check", "-c", &d(&conf)]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("interface: "))
        .unwrap_or_else(|| panic!("no interface line in:\n{text}"))
        .to_string()
}

#[test]
#[ignore = "needs root: network namespaces and live capture"]
fn without_an_interface_the_default_route_is_listened_on_and_followed() {
    require_root("network namespaces and live capture");
    require_knock_client();
    // Our namespace's only interfaces besides lo are named like a modern
    // machine's, never eth0; the peer namespace is the next hop.
    let srv = Netns::new("route-s");
    let cli = Netns::new("route-c");
    Veth {
        a: (&srv, "uplink0", "02:00:00:00:04:01", "192.0.2.2/24"),
        b: (&cli, "kd-up0", "02:00:00:00:04:02", "192.0.2.1/24"),
    }
    .create();
    srv.ip(&["route", "add", "default", "via", "192.0.2.1"]);
    let dir = test_dir();
    let p = d(dir.path());
    let conf = door(
        "door",
        [7491, 7492, 7493],
        &format!("\tStart_Command = touch {p}/opened-%IP%\n"),
    );
    assert_eq!(
        check_interface(&srv, dir.path(), &conf),
        "interface: uplink0 (default route; no -i, no Interface, no eth0)"
    );
    let mut daemon = Daemon::start(dir.path(), Some(&srv), &[], &conf);
    daemon.wait_for_line(
        "no interface configured and no eth0: listening on uplink0 (default route)",
        WAIT,
    );
    knock(Some(&cli), &["192.0.2.2", "7491", "7492", "7493"]);
    daemon.wait_for_file(&dir.path().join("opened-192.0.2.1"));

    // The default route moves to a second uplink: the capture follows.
    Veth {
        a: (&srv, "uplink1", "02:00:00:00:05:01", "198.51.100.2/24"),
        b: (&cli, "kd-up1", "02:00:00:00:05:02", "198.51.100.1/24"),
    }
    .create();
    srv.ip(&[
        "route",
        "replace",
        "default",
        "via",
        "198.51.100.1",
        "dev",
        "uplink1",
    ]);
    daemon.wait_for_line(
        "default route moved from uplink0 to uplink1: following it",
        WAIT,
    );
    daemon.wait_until("the addresses of uplink1", WAIT, |msgs| {
        msgs.iter()
            .any(|m| m.starts_with("addresses of uplink1: ") && m.contains("198.51.100.2"))
    });
    knock(Some(&cli), &["198.51.100.2", "7491", "7492", "7493"]);
    daemon.wait_for_file(&dir.path().join("opened-198.51.100.1"));
    let msgs = daemon.stop();
    eprintln!("default-interface transcript:\n{}", msgs.join("\n"));

    let mut wanted = lines(&[
        "starting up, listening on uplink0",
        "no interface configured and no eth0: listening on uplink0 (default route)",
    ]);
    wanted.extend(opened(
        "192.0.2.1",
        "door",
        3,
        &format!("touch {p}/opened-192.0.2.1"),
    ));
    wanted.extend(lines(&[
        "default route moved from uplink0 to uplink1: following it",
        "listening on uplink1",
        "addresses of uplink1: *",
    ]));
    wanted.extend(opened(
        "198.51.100.1",
        "door",
        3,
        &format!("touch {p}/opened-198.51.100.1"),
    ));
    assert_in_order(&msgs, &wanted);
    assert!(
        !msgs.iter().any(|m| m.contains("eth0 does not exist")),
        "waited for eth0:\n{}",
        msgs.join("\n")
    );
}

#[test]
#[ignore = "needs root: network namespaces and live capture"]
fn without_an_interface_or_a_default_route_the_first_default_route_is_followed() {
    require_root("network namespaces and live capture");
    require_knock_client();
    let srv = Netns::new("noroute-s");
    let cli = Netns::new("noroute-c");
    Veth {
        a: (&srv, "uplink0", "02:00:00:00:06:01", "192.0.2.2/24"),
        b: (&cli, "kd-up0", "02:00:00:00:06:02", "192.0.2.1/24"),
    }
    .create();
    let dir = test_dir();
    let p = d(dir.path());
    let conf = door(
        "door",
        [7494, 7495, 7496],
        &format!("\tStart_Command = touch {p}/opened-%IP%\n"),
    );
    assert_eq!(
        check_interface(&srv, dir.path(), &conf),
        "interface: eth0 when it appears, or the interface of the first default route \
         (no -i, no Interface, no eth0, no default route)"
    );
    let mut daemon = Daemon::start(dir.path(), Some(&srv), &[], &conf);
    daemon.wait_for_line(
        "no interface configured, no eth0 and no default route: waiting for eth0 or a default route",
        WAIT,
    );
    srv.ip(&["route", "add", "default", "via", "192.0.2.1"]);
    daemon.wait_for_line("default route appeared on uplink0: following it", WAIT);
    daemon.wait_for_line("listening on uplink0", WAIT);
    daemon.wait_until("the addresses of uplink0", WAIT, |msgs| {
        msgs.iter()
            .any(|m| m.starts_with("addresses of uplink0: ") && m.contains("192.0.2.2"))
    });
    knock(Some(&cli), &["192.0.2.2", "7494", "7495", "7496"]);
    daemon.wait_for_file(&dir.path().join("opened-192.0.2.1"));
    let msgs = daemon.stop();
    eprintln!(
        "no-default-route transcript:\n{}",
        interface_lines(&msgs).join("\n")
    );
    let no_route =
        "no interface configured, no eth0 and no default route: waiting for eth0 or a default route";
    assert_eq!(count(&msgs, no_route), 1, "{}", msgs.join("\n"));
}

#[test]
#[ignore = "needs root: network namespaces and live capture"]
fn an_explicit_eth0_is_waited_for_even_with_a_default_route() {
    require_root("network namespaces and live capture");
    let srv = Netns::new("eth0-s");
    let cli = Netns::new("eth0-c");
    Veth {
        a: (&srv, "uplink0", "02:00:00:00:07:01", "192.0.2.2/24"),
        b: (&cli, "kd-up0", "02:00:00:00:07:02", "192.0.2.1/24"),
    }
    .create();
    srv.ip(&["route", "add", "default", "via", "192.0.2.1"]);
    let dir = test_dir();
    let conf = door("door", [7497, 7498, 7499], "");
    let mut daemon = Daemon::start(dir.path(), Some(&srv), &["-i", "eth0"], &conf);
    daemon.wait_for_line("interface eth0 does not exist (yet); waiting for it", WAIT);
    // A route change is no reason to move an interface given by name.
    srv.ip(&["route", "del", "default"]);
    srv.ip(&["route", "add", "default", "via", "192.0.2.1"]);
    std::thread::sleep(Duration::from_millis(300));
    let msgs = daemon.stop();
    assert_eq!(msgs[0], "starting up, listening on eth0");
    assert!(
        !msgs.iter().any(|m| m.contains("default route")),
        "{}",
        msgs.join("\n")
    );
}

#[test]
#[ignore = "needs root: network namespaces and live capture"]
fn without_an_interface_or_a_default_route_an_eth0_that_appears_is_kept() {
    require_root("network namespaces and live capture");
    require_knock_client();
    let srv = Netns::new("lateeth0-s");
    let cli = Netns::new("lateeth0-c");
    let dir = test_dir();
    let p = d(dir.path());
    let conf = door(
        "door",
        [7501, 7502, 7503],
        &format!("\tStart_Command = touch {p}/opened-%IP%\n"),
    );
    let mut daemon = Daemon::start(dir.path(), Some(&srv), &[], &conf);
    daemon.wait_for_line(
        "no interface configured, no eth0 and no default route: waiting for eth0 or a default route",
        WAIT,
    );
    Veth {
        a: (&srv, "eth0", "02:00:00:00:08:01", "192.0.2.2/24"),
        b: (&cli, "kd-e0", "02:00:00:00:08:02", "192.0.2.1/24"),
    }
    .create();
    daemon.wait_for_line("listening on eth0", WAIT);
    // From now on eth0 is knockd's default and stays: a default route on
    // another interface does not move the capture.
    Veth {
        a: (&srv, "uplink1", "02:00:00:00:09:01", "198.51.100.2/24"),
        b: (&cli, "kd-up1", "02:00:00:00:09:02", "198.51.100.1/24"),
    }
    .create();
    srv.ip(&["route", "add", "default", "via", "198.51.100.1"]);
    daemon.wait_until("the addresses of eth0", WAIT, |msgs| {
        msgs.iter()
            .any(|m| m.starts_with("addresses of eth0: ") && m.contains("192.0.2.2"))
    });
    settle();
    knock(Some(&cli), &["192.0.2.2", "7501", "7502", "7503"]);
    daemon.wait_for_file(&dir.path().join("opened-192.0.2.1"));
    let msgs = daemon.stop();
    assert!(
        !msgs.iter().any(|m| m.starts_with("default route")),
        "{}",
        msgs.join("\n")
    );
}
