//! One client at a time, with the real binary: while one `rustupdate` holds the lock in the data
//! directory (an install reading a slow pipe, a daemon cycle waiting for its server, or a `flock`
//! taken by this test), every other writer exits 2 naming the holder and writes nothing, while
//! `status` and `show-artifact` still work; a holder killed with SIGKILL leaves no stale lock; the
//! daemon lets go of the lock between polls.

use crate::rig::{Rig, image};
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const BOARD: &str = "test-board";
/// `client/src/sys/lock.rs`'s `LOCK_FILE`, in the data directory.
const LOCK_FILE: &str = "lock";
const WAIT: Duration = Duration::from_secs(30);
/// The exit code of a command refused because another one holds the lock.
const BUSY: i32 = 2;

fn spawn(rig: &Rig, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_rustupdate"))
        .arg("-c")
        .arg(rig.config_path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until the lock file names `pid` running `command` (the holder writes it just after it
/// took the lock).
fn wait_for_holder(rig: &Rig, pid: u32, command: &str) {
    let line = format!("{pid} {command}\n");
    let deadline = Instant::now() + WAIT;
    while std::fs::read_to_string(rig.data_dir().join(LOCK_FILE)).ok() != Some(line.clone()) {
        assert!(Instant::now() < deadline, "pid {pid} never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a refused writer must leave alone.
fn device_snapshot(rig: &Rig) -> (String, Vec<u8>, Vec<u8>, String) {
    let env = format!("{:?}", rig.env());
    (
        rig.state_text(),
        rig.slot_bytes('a'),
        rig.slot_bytes('b'),
        env,
    )
}

#[test]
fn writers_are_refused_while_an_install_holds_the_lock_and_a_killed_holder_is_taken_over() {
    let rig = Rig::new();
    let artifact = rig.artifact("2.0", &image(2), &[&rig.key], BOARD, None);
    let artifact = artifact.to_str().unwrap();
    // A record on the device, so that "nothing written" covers the state file too.
    let garbage = rig.file("garbage.rua", b"not an artifact at all");
    assert_eq!(rig.client(&["install", garbage.to_str().unwrap()]).code, 4);
    assert!(rig.state_text().contains("rejected"));

    // The holder: an install reading its artifact from a pipe that never delivers.
    let mut holder = spawn(&rig, &["install", "-"]);
    let pid = holder.id();
    wait_for_holder(&rig, pid, "install");
    let before = device_snapshot(&rig);
    let refusal = format!("another rustupdate is running: pid {pid} (install)");
    for args in [
        &["install", artifact][..],
        &["install", "--reboot", artifact],
        &["commit"],
        &["rollback"],
        &["guard"],
    ] {
        let out = rig.client(args);
        assert_eq!(out.code, BUSY, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(&refusal), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains(&rig.data_dir().join(LOCK_FILE).display().to_string()),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(device_snapshot(&rig) == before, "a refused writer wrote");
    assert!(!rig.reboot_requested());
    // Readers do not take the lock.
    let status = rig.status();
    assert_eq!(status["last-result"]["result"], "rejected");
    let show = rig.client(&["show-artifact", artifact]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(device_snapshot(&rig) == before);

    // Killed without a chance to clean up: the lock goes with the process.
    holder.kill().unwrap();
    let killed = holder.wait().unwrap();
    assert_eq!(killed.code(), None, "the holder was not killed: {killed}");
    assert_eq!(
        std::fs::read_to_string(rig.data_dir().join(LOCK_FILE)).unwrap(),
        format!("{pid} install\n"),
        "the dead holder's line stays until the next taker"
    );
    let out = rig.client(&["install", artifact]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(rig.slot_holds('b', &image(2)));
    let line = std::fs::read_to_string(rig.data_dir().join(LOCK_FILE)).unwrap();
    assert!(
        line.ends_with(" install\n") && !line.starts_with(&format!("{pid} ")),
        "{line:?}"
    );
}

/// The lock is a plain `flock` on the file: any holder counts (here this test process), and
/// `check-update` does not even poll the server while it is held.
#[test]
fn check_update_is_refused_while_another_process_holds_the_flock() {
    let rig = Rig::new();
    // Nothing listens there: a poll would fail with "polling the server".
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    with_server(&rig, &format!("http://127.0.0.1:{port}"));
    let lock = take_flock(&rig.data_dir(), "test-holder");
    let out = rig.client(&["check-update"]);
    assert_eq!(out.code, BUSY, "{}", out.stderr);
    let refusal = format!(
        "another rustupdate is running: pid {} (test-holder)",
        std::process::id()
    );
    assert!(out.stderr.contains(&refusal), "{}", out.stderr);
    assert!(!out.stderr.contains("polling"), "{}", out.stderr);
    drop(lock);
    let out = rig.client(&["check-update"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("polling the server"), "{}", out.stderr);
}

/// The daemon holds the lock through a cycle (here: a poll the server does not answer yet) and
/// lets go of it while it waits for the next poll, so a person can install by hand.
#[test]
fn daemon_holds_the_lock_during_a_cycle_and_releases_it_between_polls() {
    let rig = Rig::new();
    let artifact = rig.artifact("2.0", &image(2), &[&rig.key], BOARD, None);
    let artifact = artifact.to_str().unwrap();
    let server = HeldServer::start();
    with_server(&rig, &server.url);
    let mut daemon = spawn(&rig, &["daemon"]);
    let pid = daemon.id();
    wait_for_holder(&rig, pid, "daemon");
    server.wait_for_requests(1);

    // Mid-cycle: refused, nothing written.
    let before = device_snapshot(&rig);
    let out = rig.client(&["install", artifact]);
    assert_eq!(out.code, BUSY, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "another rustupdate is running: pid {pid} (daemon)"
        )),
        "{}",
        out.stderr
    );
    assert!(device_snapshot(&rig) == before, "a refused install wrote");

    // The server answers (500): the cycle ends and the daemon waits 2 s before the next poll.
    server.release.send(()).unwrap();
    server.wait_for_answers(1);
    std::thread::sleep(Duration::from_millis(100));
    let out = rig.client(&["install", artifact]);
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(rig.slot_holds('b', &image(2)));
}

fn with_server(rig: &Rig, url: &str) {
    let mut config = std::fs::read_to_string(rig.config_path()).unwrap();
    config += &format!(
        "[server]\nurl = \"{url}\"\ncontroller-id = \"dev-lock\"\n\
         allow-insecure-http = true\npoll-interval-secs = 1\nmax-backoff-secs = 8\n"
    );
    std::fs::write(rig.config_path(), config).unwrap();
}

/// Takes the `flock` on the lock file as another program would, and writes its holder line.
fn take_flock(data_dir: &Path, command: &str) -> File {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(data_dir.join(LOCK_FILE))
        .unwrap();
    file.try_lock().unwrap();
    file.set_len(0).unwrap();
    writeln!(file, "{} {command}", std::process::id()).unwrap();
    file
}

/// A server that holds its first request until `release`, then answers every request with 500.
struct HeldServer {
    url: String,
    release: mpsc::Sender<()>,
    requests: Arc<AtomicUsize>,
    answers: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Drop for HeldServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl HeldServer {
    fn start() -> HeldServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (release, released) = mpsc::channel();
        let requests = Arc::new(AtomicUsize::new(0));
        let answers = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, answered, stopped) = (requests.clone(), answers.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = true;
            while !stopped.load(Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                if held {
                    let _ = released.recv_timeout(WAIT);
                    held = false;
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                answered.fetch_add(1, Ordering::SeqCst);
            }
        });
        HeldServer {
            url,
            release,
            requests,
            answers,
            stop,
        }
    }

    fn wait_for_requests(&self, n: usize) {
        wait_until(|| self.requests.load(Ordering::SeqCst) >= n, "requests");
    }

    fn wait_for_answers(&self, n: usize) {
        wait_until(|| self.answers.load(Ordering::SeqCst) >= n, "answers");
    }
}

fn wait_until(done: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
