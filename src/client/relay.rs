//! `--connect`: one TCP connection, relayed to and from stdin/stdout, which
//! is what ssh's `ProxyCommand` expects of its command.
//!
//! Two directions, two threads, plain blocking I/O:
//! - stdin → socket on a helper thread; stdin's EOF becomes
//!   `shutdown(Write)`, so the server sees the end of input and can still
//!   answer;
//! - socket → stdout on the caller's thread; the server closing ends the
//!   relay (a helper still blocked on stdin is simply left behind: the
//!   process exits).
//!
//! Nothing but the server's bytes is ever written to the output: messages
//! are the caller's business, and go to stderr. This module must not knock
//! or resolve.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// Buffer per direction; ssh's packets fit many times over.
const CHUNK: usize = 64 * 1024;

/// A relay that ended badly.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading from the server failed (reset, timeout from the kernel).
    #[error("relay: reading from the server: {0}")]
    FromServer(#[source] io::Error),
    /// Writing to the server failed before our input ended.
    #[error("relay: writing to the server: {0}")]
    ToServer(#[source] io::Error),
    /// Reading our input (stdin) failed.
    #[error("relay: reading stdin: {0}")]
    Input(#[source] io::Error),
    /// Writing our output (stdout) failed, other than its reader going away.
    #[error("relay: writing stdout: {0}")]
    Output(#[source] io::Error),
}

/// One connection attempt to `addr`, giving up after `timeout`.
pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    // Interactive traffic (ssh keystrokes): do not batch small writes.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// True for failures worth another knock: the door was not open yet.
/// Refused (a REJECT rule or nothing listening yet), timed out (a DROP
/// rule), and host unreachable (REJECT with an ICMP admin-prohibited).
pub fn is_retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::TimedOut | io::ErrorKind::HostUnreachable
    )
}

/// Relays `input` → `stream` and `stream` → `output` until the server
/// closes its side. Returns when every byte the server sent has been
/// written to `output`, or when `output`'s reader has gone away (ssh
/// exited): both are normal ends.
pub fn relay<R, W>(stream: TcpStream, input: R, mut output: W) -> Result<(), RelayError>
where
    R: Read + Send + 'static,
    W: Write,
{
    let upstream = stream.try_clone().map_err(RelayError::ToServer)?;
    let pump = std::thread::Builder::new()
        .name("stdin-to-server".into())
        .spawn(move || pump_input(input, upstream))
        .map_err(RelayError::Input)?;

    let result = pump_output(&stream, &mut output);
    // If our input already ended badly, that is the more useful report.
    if pump.is_finished() {
        if let Ok(Err(e)) = pump.join() {
            if result.is_ok() {
                return Err(e);
            }
        }
    }
    result
}

/// stdin → server; EOF (or a failed read) half-closes the connection.
fn pump_input<R: Read>(mut input: R, mut upstream: TcpStream) -> Result<(), RelayError> {
    let mut buf = vec![0u8; CHUNK];
    let result = loop {
        match input.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = upstream.write_all(&buf[..n]) {
                    // The server is gone; the output side reports how.
                    break match e.kind() {
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Ok(()),
                        _ => Err(RelayError::ToServer(e)),
                    };
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(RelayError::Input(e)),
        }
    };
    let _ = upstream.shutdown(Shutdown::Write);
    result
}

/// server → stdout until the server closes.
fn pump_output<W: Write>(mut stream: &TcpStream, output: &mut W) -> Result<(), RelayError> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(RelayError::FromServer(e)),
        };
        if let Err(e) = output.write_all(&buf[..n]).and_then(|()| output.flush()) {
            return match e.kind() {
                io::ErrorKind::BrokenPipe => Ok(()),
                _ => Err(RelayError::Output(e)),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};

    /// An echo server that, after the client half-closes, adds a trailer:
    /// proof that the relay keeps reading after stdin's EOF.
    fn echo_then_trailer() -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                let n = conn.read(&mut buf).expect("server read");
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                conn.write_all(&buf[..n]).expect("echo");
            }
            conn.write_all(b"bye\n").expect("trailer");
            seen
        });
        (addr, server)
    }

    #[test]
    fn relays_both_ways_and_half_closes_on_input_eof() {
        let (addr, server) = echo_then_trailer();
        let stream = connect(addr, Duration::from_secs(5)).expect("connect");
        let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut output = Vec::new();
        relay(stream, io::Cursor::new(input.clone()), &mut output).expect("relay");
        assert_eq!(server.join().expect("server"), input);
        assert_eq!(output.len(), input.len() + 4);
        assert_eq!(&output[..input.len()], &input[..]);
        assert_eq!(&output[input.len()..], b"bye\n");
    }

    #[test]
    fn server_closing_first_ends_the_relay_with_input_still_open() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            conn.write_all(b"SSH-2.0-test\r\n").expect("banner");
        });
        // An input that never ends: the relay must still return.
        struct Forever;
        impl Read for Forever {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                std::thread::sleep(Duration::from_secs(3600));
                Ok(0)
            }
        }
        let stream = connect(addr, Duration::from_secs(5)).expect("connect");
        let mut output = Vec::new();
        relay(stream, Forever, &mut output).expect("relay");
        server.join().expect("server");
        assert_eq!(output, b"SSH-2.0-test\r\n");
    }

    #[test]
    fn output_reader_gone_is_a_normal_end() {
        let (addr, _server) = echo_then_trailer();
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let stream = connect(addr, Duration::from_secs(5)).expect("connect");
        relay(stream, io::Cursor::new(b"x".to_vec()), Closed).expect("relay");
    }

    #[test]
    fn refused_and_timed_out_are_retryable_others_not() {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let e = connect((Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(5))
            .expect_err("nothing listens");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert!(is_retryable(&e));
        assert!(is_retryable(&io::ErrorKind::TimedOut.into()));
        assert!(is_retryable(&io::Error::from_raw_os_error(
            libc::EHOSTUNREACH
        )));
        assert!(!is_retryable(&io::Error::from_raw_os_error(
            libc::ENETUNREACH
        )));
        assert!(!is_retryable(&io::ErrorKind::PermissionDenied.into()));
    }
}
