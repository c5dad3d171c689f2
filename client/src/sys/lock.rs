//! One client at a time: an exclusive advisory lock (`flock(2)`, through `std::fs::File::try_lock`)
//! on `<data-dir>/lock`, taken by every command that writes the slots, the bootloader
//! environment or the state (`install`, `commit`, `rollback`, `guard`, each cycle of the
//! daemon) before it reads anything, and held until the process exits. A `flock` dies with the
//! open file: a holder that crashes or is killed (`kill -9`, a power cut) leaves no stale lock,
//! so there is nothing to break and no timeout to guess.
//!
//! After taking the lock the holder writes its pid and command into the file (`1234 install`),
//! so that a refused command can say who is running; the file is never removed and its content is
//! informational only (the lock is the `flock`, not the text). The text is written only when it
//! changes, so the daemon, which takes the lock once per cycle, writes it once per run and not
//! once per poll.
//!
//! What it does not do: wait for the lock (a second writer is refused at once, and the daemon
//! skips its cycle), or lock out readers (`status` and `show-artifact` never take it; every
//! durable write they may see half-done is atomic or has a second copy).

use crate::config::Config;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "lock";
/// Read-write for its owner (root) only: any process that can open the file can `flock` it, and
/// one that holds it stops every update.
const LOCK_FILE_MODE: u32 = 0o600;
/// A refused command reads the holder's line this many times, [`HOLDER_RETRY`] apart: the holder
/// writes it just after it took the lock.
const HOLDER_READS: u32 = 10;
const HOLDER_RETRY: Duration = Duration::from_millis(20);
/// More than a pid and a command name is not a holder line.
const MAX_HOLDER_LEN: u64 = 256;

/// Who holds the lock, as the holder wrote it: one line, `<pid> <command>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
}

impl Holder {
    /// This process, running `command`.
    pub fn me(command: &str) -> Holder {
        Holder {
            pid: std::process::id(),
            command: command.into(),
        }
    }

    pub fn to_line(&self) -> String {
        format!("{} {}\n", self.pid, self.command)
    }

    /// The first line of the lock file; `None` when it is not a holder line (empty, or cut short
    /// by a holder writing it right now).
    pub fn parse(text: &str) -> Option<Holder> {
        let (line, _) = text.split_once('\n')?;
        let (pid, command) = line.split_once(' ')?;
        let command = command.trim();
        if command.is_empty() {
            return None;
        }
        Some(Holder {
            pid: pid.parse().ok()?,
            command: command.into(),
        })
    }
}

/// Another process holds the lock. Its `Display` is the message the refused command prints.
#[derive(Debug)]
pub struct Busy {
    pub path: PathBuf,
    pub holder: Option<Holder>,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.holder {
            Some(holder) => write!(
                f,
                "another rustupdate is running: pid {} ({})",
                holder.pid, holder.command
            )?,
            None => f.write_str("another rustupdate is running (pid unknown)")?,
        }
        write!(f, "; it holds {}", self.path.display())
    }
}

impl std::error::Error for Busy {}

#[derive(Debug)]
pub enum LockError {
    Busy(Busy),
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy(busy) => busy.fmt(f),
            LockError::Io { path, source } => write!(f, "lock file {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Busy(_) => None,
            LockError::Io { source, .. } => Some(source),
        }
    }
}

/// The lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct ClientLock {
    // Closing the file releases the flock.
    _file: File,
}

/// The client lock for `command`, held until the returned value is dropped. A lock held by
/// another process is an error that names it (exit code 2, nothing written).
pub fn take_lock(config: &Config, command: &str) -> anyhow::Result<ClientLock> {
    acquire(&config.data_dir, command).map_err(|err| match err {
        LockError::Busy(busy) => anyhow::Error::new(busy),
        err @ LockError::Io { .. } => anyhow::Error::new(err),
    })
}

/// Takes the lock in `data_dir` (created if missing) for `command`, or says who holds it.
pub fn acquire(data_dir: &Path, command: &str) -> Result<ClientLock, LockError> {
    let path = data_dir.join(LOCK_FILE);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    // Not truncated on open: the holder's line stays readable for the refused.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(LOCK_FILE_MODE)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(LockError::Busy(Busy {
                holder: read_holder(&mut file),
                path,
            }));
        }
        Err(TryLockError::Error(err)) => return Err(io(err)),
    }
    let line = Holder::me(command).to_line();
    if read_line(&mut file).as_deref() != Some(line.as_str()) {
        // Written before the old tail is cut off: a reader sees the new first line or the old
        // one, never an empty file. No fsync: after a power cut nobody holds the lock.
        file.write_all_at(line.as_bytes(), 0).map_err(io)?;
        file.set_len(line.len() as u64).map_err(io)?;
    }
    Ok(ClientLock { _file: file })
}

fn read_holder(file: &mut File) -> Option<Holder> {
    for attempt in 0..HOLDER_READS {
        if attempt > 0 {
            std::thread::sleep(HOLDER_RETRY);
        }
        if let Some(holder) = read_line(file).as_deref().and_then(Holder::parse) {
            return Some(holder);
        }
    }
    None
}

fn read_line(file: &mut File) -> Option<String> {
    file.seek(SeekFrom::Start(0)).ok()?;
    let mut text = String::new();
    file.take(MAX_HOLDER_LEN).read_to_string(&mut text).ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn holder_line_round_trips() {
        let holder = Holder {
            pid: 1234,
            command: "install".into(),
        };
        assert_eq!(holder.to_line(), "1234 install\n");
        assert_eq!(Holder::parse(&holder.to_line()), Some(holder.clone()));
        // A longer old line cut short by the new one: the first line counts.
        assert_eq!(Holder::parse("1234 install\nheck-update\n"), Some(holder));
        for bad in ["", "1234 install", "1234\n", "x install\n", "1234 \n"] {
            assert_eq!(Holder::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn second_taker_is_told_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path(), "install").unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("{} install\n", std::process::id()));
        let err = acquire(dir.path(), "commit").unwrap_err();
        let LockError::Busy(busy) = err else {
            panic!("{err}")
        };
        assert_eq!(busy.holder, Some(Holder::me("install")));
        assert!(
            busy.to_string().starts_with(&format!(
                "another rustupdate is running: pid {} (install)",
                std::process::id()
            )),
            "{busy}"
        );
        // The refused taker wrote nothing.
        assert_eq!(
            std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(),
            text
        );
        drop(held);
        acquire(dir.path(), "commit").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(),
            format!("{} commit\n", std::process::id())
        );
    }

    /// Threads racing for the lock (each with its own open file, as separate processes have):
    /// never two holders at once, and the race really happened (some takers were refused).
    #[test]
    fn racing_takers_never_both_hold_it() {
        const THREADS: usize = 8;
        const ROUNDS: usize = 200;
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let holders = Arc::new(AtomicUsize::new(0));
        let (taken, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (dir, holders) = (dir.clone(), holders.clone());
                let (taken, refused) = (taken.clone(), refused.clone());
                std::thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        match acquire(dir.path(), "test") {
                            Ok(lock) => {
                                let before = holders.fetch_add(1, Ordering::SeqCst);
                                assert_eq!(before, 0, "two holders at once");
                                taken.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_micros(200));
                                holders.fetch_sub(1, Ordering::SeqCst);
                                drop(lock);
                            }
                            Err(LockError::Busy(_)) => {
                                refused.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(err) => panic!("{err}"),
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let (taken, refused) = (taken.load(Ordering::SeqCst), refused.load(Ordering::SeqCst));
        assert_eq!(taken + refused, THREADS * ROUNDS);
        assert!(taken > 0 && refused > 0, "taken {taken}, refused {refused}");
    }
}
