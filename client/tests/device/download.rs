//! Installing from a real HTTP server on loopback that misbehaves: drops the connection mid-stream
//! (the client resumes with a Range request), answers 500, or sends a short body and cannot resume.
//! The active slot is never touched and a trial never starts on a partial image.

use crate::rig::{Rig, image};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
enum Behaviour {
    /// First connection sends this many bytes and closes; later ones honour Range.
    DropOnceAt(usize),
    Always500,
    /// Every connection announces the full length, sends this many bytes, closes, ignores Range.
    ShortWithoutResume(usize),
}

struct Server {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

/// Serves `body` on 127.0.0.1 for at most `max_connections` connections or 60 seconds.
fn serve(body: Vec<u8>, behaviour: Behaviour, max_connections: usize) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/update.rua", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut served = 0;
        while served < max_connections && Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => {
                    served += 1;
                    let _ = handle(stream, &body, behaviour, served, &seen);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    Server { url, requests }
}

fn handle(
    mut stream: TcpStream,
    body: &[u8],
    behaviour: Behaviour,
    connection: usize,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") && request.len() < 8192 {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        request.push(byte[0]);
    }
    let request = String::from_utf8_lossy(&request).to_string();
    let range_start = request
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("range: bytes=")
                .map(|r| r.trim_end_matches('-').trim().to_string())
        })
        .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
    seen.lock().unwrap().push(request);
    match behaviour {
        Behaviour::Always500 => stream.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ),
        Behaviour::ShortWithoutResume(n) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body[..n])
        }
        Behaviour::DropOnceAt(n) if connection == 1 => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body[..n])
        }
        Behaviour::DropOnceAt(_) => {
            let start = range_start.unwrap_or(0);
            let rest = &body[start..];
            if start > 0 {
                write!(
                    stream,
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\n",
                    body.len() - 1,
                    body.len()
                )?;
            } else {
                write!(stream, "HTTP/1.1 200 OK\r\n")?;
            }
            write!(
                stream,
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                rest.len()
            )?;
            stream.write_all(rest)
        }
    }
}

#[test]
fn dropped_connection_is_resumed_with_a_range_request() {
    let rig = Rig::new();
    let artifact =
        std::fs::read(rig.artifact("v2", &image(2), &[&rig.key], "test-board", None)).unwrap();
    let server = serve(
        artifact.clone(),
        Behaviour::DropOnceAt(artifact.len() / 2),
        3,
    );
    let out = rig.client(&["install", &server.url]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("resuming"), "{}", out.stderr);
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1]
            .to_ascii_lowercase()
            .contains(&format!("range: bytes={}-", artifact.len() / 2)),
        "{}",
        requests[1]
    );
    assert!(rig.slot_holds('b', &image(2)));
    assert_eq!(rig.env()["upgrade_available"], "1");
}

#[test]
fn server_error_fails_cleanly() {
    let rig = Rig::new();
    let before = rig.slot_bytes('b');
    let server = serve(Vec::new(), Behaviour::Always500, 10);
    let out = rig.client(&["install", &server.url]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("500"), "{}", out.stderr);
    assert!(rig.slot_bytes('b') == before, "nothing was written");
    assert_eq!(rig.env()["upgrade_available"], "0");
    assert!(rig.slot_holds('a', &image(1)));
}

#[test]
fn short_body_without_resume_never_starts_a_trial() {
    let rig = Rig::new();
    let artifact =
        std::fs::read(rig.artifact("v2", &image(2), &[&rig.key], "test-board", None)).unwrap();
    let server = serve(
        artifact.clone(),
        Behaviour::ShortWithoutResume(artifact.len() * 2 / 3),
        10,
    );
    let out = rig.client(&["install", &server.url]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("does not resume"), "{}", out.stderr);
    assert_eq!(rig.env()["upgrade_available"], "0");
    assert_eq!(rig.env()["rustupdate_slot"], "a");
    let status = rig.status();
    assert_eq!(status["last-result"]["result"], "failed");
    assert!(status["pending"].is_null());
    assert_eq!(rig.boot(), 'a');
}
