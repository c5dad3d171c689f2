//! Raw HTTP exchanges over TCP, for requests a client library would not send (half-sent, idle,
//! with a `Host` of our choosing, with `..` in the path).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What a raw exchange got: the status line's code, the body, and how long it took.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
}

/// Writes `bytes` on a new connection (without closing our side) and reads one response, for at
/// most `wait`. `None` if the server closed the connection or stayed silent without answering.
pub fn raw(addr: &str, bytes: &[u8], wait: Duration) -> Option<Raw> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(bytes).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(head_end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..head_end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= head_end + 4 + length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                let body = String::from_utf8_lossy(&got[head_end + 4..head_end + 4 + length]);
                return Some(Raw {
                    status,
                    body: body.to_string(),
                    elapsed: started.elapsed(),
                });
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Whether the server closes a connection on which `bytes` were sent, within `wait`.
pub fn closed_within(addr: &str, bytes: &[u8], wait: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(bytes).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(_) => return Some(started.elapsed()),
        }
    }
}
