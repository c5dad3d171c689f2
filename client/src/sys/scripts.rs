//! Health checks and hooks: executables in a directory, run in name order, each with a timeout,
//! their output logged line by line up to a cap.
//!
//! Environment given to every script: `RUSTUPDATE_EVENT` (hooks; `health` for health checks),
//! `RUSTUPDATE_TRANSACTION`, `RUSTUPDATE_BOOTED_SLOT`, `RUSTUPDATE_TARGET_SLOT`,
//! `RUSTUPDATE_VERSION`, `RUSTUPDATE_PREVIOUS_VERSION` (empty when unknown). Hooks also get the
//! event as their first argument. Exit code 0 means success; anything else, or a timeout, is a
//! failure (see docs/client.md for what a failure does at each event).

use rustupdate_core::hooks::{Context, HookError, HookEvent};
use rustupdate_core::seams::{HealthChecks, Hooks};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Most output logged per script and stream; the rest is read and dropped.
pub const MAX_LOGGED_OUTPUT: usize = 16 * 1024;
/// Most of a failed script's last output lines quoted in the failure reason (it travels to the
/// fleet server in the final feedback).
const OUTPUT_TAIL: usize = 300;
/// How often a running script is polled for exit.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub struct ScriptDir {
    pub dir: PathBuf,
    pub timeout: Duration,
}

impl ScriptDir {
    /// Executable regular files, sorted by name; hidden files are skipped. A missing directory
    /// means no scripts.
    pub fn scripts(&self) -> std::io::Result<Vec<PathBuf>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        let mut scripts: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter(|e| {
                e.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .map(|e| e.path())
            .collect();
        scripts.sort();
        Ok(scripts)
    }

    fn run_all(&self, event: &str, context: &Context, with_arg: bool) -> Result<(), HookError> {
        let scripts = self.scripts().map_err(|err| HookError::CouldNotRun {
            event: event.into(),
            script: self.dir.display().to_string(),
            reason: err.to_string(),
        })?;
        for script in scripts {
            run_script(&script, event, context, with_arg, self.timeout)?;
        }
        Ok(())
    }
}

impl HealthChecks for ScriptDir {
    fn run(&mut self, context: &Context) -> Result<(), HookError> {
        self.run_all("health", context, false)
    }
}

impl Hooks for ScriptDir {
    fn run(&mut self, event: HookEvent, context: &Context) -> Result<(), HookError> {
        self.run_all(event.name(), context, true)
    }
}

fn run_script(
    script: &Path,
    event: &str,
    context: &Context,
    with_arg: bool,
    timeout: Duration,
) -> Result<(), HookError> {
    let name = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let could_not_run = |reason: String| HookError::CouldNotRun {
        event: event.into(),
        script: name.clone(),
        reason,
    };
    let mut command = Command::new(script);
    if with_arg {
        command.arg(event);
    }
    command
        .env("RUSTUPDATE_EVENT", event)
        .env("RUSTUPDATE_TRANSACTION", &context.transaction)
        .env("RUSTUPDATE_BOOTED_SLOT", context.booted_slot.as_str())
        .env("RUSTUPDATE_TARGET_SLOT", context.target_slot.as_str())
        .env("RUSTUPDATE_VERSION", &context.version)
        .env(
            "RUSTUPDATE_PREVIOUS_VERSION",
            context.previous_version.as_deref().unwrap_or(""),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group, so a timeout kills the script and everything it started.
        .process_group(0);
    log::info!("running {event} script {name}");
    let mut child = command
        .spawn()
        .map_err(|err| could_not_run(format!("cannot start: {err}")))?;
    let (done_tx, done_rx) = mpsc::channel();
    for (stream, reader) in [
        (
            "stdout",
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
        (
            "stderr",
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
    ] {
        if let Some(reader) = reader {
            let (name, done_tx) = (name.clone(), done_tx.clone());
            std::thread::spawn(move || {
                let tail = log_lines(&name, stream, reader);
                let _ = done_tx.send((stream, tail));
            });
        }
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(POLL),
            Err(err) => return Err(could_not_run(err.to_string())),
        }
    };
    let Some(status) = status else {
        kill_group(child.id());
        let _ = child.wait();
        return Err(HookError::TimedOut {
            event: event.into(),
            script: name,
            after: timeout,
        });
    };
    // Wait (bounded) for the output threads; a background child holding the pipe open must not
    // hang the client.
    let mut output = String::new();
    for _ in 0..2 {
        // stderr says why more often than stdout: it goes first.
        if let Ok((stream, tail)) = done_rx.recv_timeout(Duration::from_secs(2))
            && !tail.is_empty()
        {
            output = match (stream, output.is_empty()) {
                (_, true) => tail,
                ("stderr", false) => format!("{tail} | {output}"),
                _ => format!("{output} | {tail}"),
            };
        }
    }
    if status.success() {
        Ok(())
    } else {
        Err(HookError::Failed {
            event: event.into(),
            script: name,
            status: status.to_string(),
            output,
        })
    }
}

/// Logs a script's output line by line (up to [`MAX_LOGGED_OUTPUT`]) and returns its last lines
/// (up to [`OUTPUT_TAIL`] bytes), which go into the reason of a failure.
fn log_lines(name: &str, stream: &str, reader: Box<dyn Read + Send>) -> String {
    let mut tail = std::collections::VecDeque::<String>::new();
    let mut tail_len = 0usize;
    let mut logged = 0usize;
    let mut dropped = 0usize;
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        // A line is read in bounded pieces: a script printing megabytes without newlines cannot
        // make the client allocate them.
        match (&mut reader)
            .take(MAX_LOGGED_OUTPUT as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(n) if logged + n <= MAX_LOGGED_OUTPUT => {
                logged += n;
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                log::info!("[{name} {stream}] {text}");
                if !text.is_empty() {
                    tail_len += text.len();
                    tail.push_back(text);
                    while tail_len > OUTPUT_TAIL && tail.len() > 1 {
                        tail_len -= tail.pop_front().map_or(0, |l| l.len());
                    }
                }
            }
            Ok(n) => dropped += n,
        }
    }
    if dropped > 0 {
        log::warn!("[{name} {stream}] {dropped} more bytes of output not logged");
    }
    let mut text = Vec::from(tail).join(" | ");
    if text.len() > OUTPUT_TAIL {
        let cut = (0..=OUTPUT_TAIL)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
    }
    text
}

#[allow(unsafe_code)]
fn kill_group(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid addresses the process
    // group we created for this child with process_group(0).
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// What a one-off program (inventory, consent) said: its exit code (`None` when killed by a
/// signal) and up to `max_output` bytes of its standard output.
#[derive(Debug)]
pub struct Captured {
    pub code: Option<i32>,
    pub stdout: String,
}

/// Runs `program args…` with a timeout, capturing a bounded standard output (standard error is
/// logged). A timeout kills its process group and is an error.
pub fn capture(
    program: &Path,
    args: &[&str],
    timeout: Duration,
    max_output: usize,
) -> Result<Captured, String> {
    let name = program.display().to_string();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|err| format!("{name}: cannot start: {err}"))?;
    let stdout = child.stdout.take();
    let (out_tx, out_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(stdout) = stdout {
            let mut limited = stdout.take(max_output as u64);
            let _ = limited.read_to_end(&mut bytes);
            let _ = out_tx.send(bytes);
            // Drain the rest so the program is not blocked on a full pipe.
            let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
        }
    });
    if let Some(stderr) = child.stderr.take() {
        let name = name.clone();
        std::thread::spawn(move || {
            log_lines(&name, "stderr", Box::new(stderr));
        });
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child.id());
                let _ = child.wait();
                return Err(format!("{name} timed out after {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(err) => return Err(format!("{name}: {err}")),
        }
    };
    // Bounded: a background child still holding the pipe must not hang the daemon.
    let stdout = out_rx
        .recv_timeout(Duration::from_secs(2))
        .unwrap_or_default();
    Ok(Captured {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
    })
}
