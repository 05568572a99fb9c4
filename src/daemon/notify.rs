//! systemd readiness (`Type=notify`): a datagram to `$NOTIFY_SOCKET` saying
//! READY, RELOADING or STOPPING, so `systemctl start` returns once knocks
//! are really being captured. A few lines instead of a crate, as ntpd-rs
//! does; without `$NOTIFY_SOCKET` every call is a no-op.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `READY=1`) to the service manager, if there is one.
/// Failures are ignored: readiness is a courtesy, never a reason to stop.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let _ = if let Some(name) = bytes.strip_prefix(b"@") {
        abstract_send(&sock, name, state)
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(&path))
    };
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_send(sock: &UnixDatagram, name: &[u8], state: &str) -> std::io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(state.as_bytes(), &addr)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_send(_: &UnixDatagram, _: &[u8], _: &str) -> std::io::Result<usize> {
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // Only this test sets the variable in this process.
        std::env::set_var("NOTIFY_SOCKET", &path);
        notify("READY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
