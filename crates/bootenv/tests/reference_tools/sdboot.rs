//! systemd-boot entries: `bootctl list` (systemd's own parser and sort of type #1 entries, the
//! same rules systemd-boot applies) reads the entries this crate's rules name and order, and
//! agrees on the counters, the order and the entry that boots.
//!
//! `bootctl` wants an ESP at the root of a file system: each case mounts a tmpfs (the tests run
//! as root, as CI does) and relaxes the partition-type check (`SYSTEMD_RELAX_ESP_CHECKS=1`).
//! `systemd-bless-boot` is not run: it acts only on the entry named by the `LoaderBootCountPath`
//! EFI variable of the running boot, which a host test cannot set.

use super::{run, tool};
use rustupdate_bootenv::bls::{self, Entry, EntryName};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Esp {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Esp {
    fn new() -> Esp {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(&root))
        .unwrap_or_else(|err| panic!("mounting a tmpfs for bootctl (run as root): {err}"));
        std::fs::create_dir_all(root.join(bls::ENTRIES_DIR)).unwrap();
        std::fs::write(
            root.join("loader/loader.conf"),
            "timeout 0\neditor no\ndefault rustupdate-*\n",
        )
        .unwrap();
        Esp { _dir: dir, root }
    }

    /// Writes an entry as the layer does, its kernel file present when `loadable`.
    fn add(&self, entry: &Entry) {
        let slot = entry.name.slot.as_str();
        let kernel = format!("/rustupdate/{slot}/vmlinuz");
        if entry.loadable {
            let path = self.root.join(kernel.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"kernel").unwrap();
        }
        let content = format!(
            "title rustupdate slot {slot}\nsort-key {}\nversion {}\nlinux {kernel}\n\
             options root=PARTLABEL=rootfs_{slot} rustupdate.slot={slot}\n",
            bls::SORT_KEY,
            entry.generation
        );
        let path = self
            .root
            .join(bls::ENTRIES_DIR)
            .join(entry.name.file_name());
        std::fs::write(path, content).unwrap();
    }

    /// `bootctl list`: the entries in its order.
    fn bootctl_list(&self) -> Vec<Listed> {
        let out = run(Command::new(tool("bootctl", "systemd-boot"))
            .env("SYSTEMD_RELAX_ESP_CHECKS", "1")
            .arg(format!("--esp-path={}", self.root.display()))
            .args(["--no-variables", "--no-pager", "list"]))
        .unwrap();
        let mut listed = Vec::new();
        for block in out.split("\n\n") {
            let field = |key: &str| {
                block.lines().find_map(|line| {
                    let (k, v) = line.trim().split_once(": ")?;
                    (k == key).then(|| v.trim().to_string())
                })
            };
            let Some(source) = field("source") else {
                continue;
            };
            let file = Path::new(&source)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let tries = field("tries").map(|t| {
                // "2 left; 1 done", or "3 left" before the first try
                let numbers: Vec<u32> = t
                    .split(|c: char| !c.is_ascii_digit())
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().unwrap())
                    .collect();
                (numbers[0], numbers.get(1).copied().unwrap_or(0))
            });
            let is_default = field("title").is_some_and(|t| t.contains("(default)"));
            let missing = field("linux").is_some_and(|l| l.contains("No such file"));
            listed.push(Listed {
                file,
                tries,
                is_default,
                missing,
            });
        }
        listed
    }
}

/// One entry as `bootctl list` shows it.
#[derive(Debug)]
struct Listed {
    file: String,
    /// Tries left and done.
    tries: Option<(u32, u32)>,
    /// Marked `(default)`: the entry bootctl says boots.
    is_default: bool,
    /// Its `linux` file is missing.
    missing: bool,
}

impl Drop for Esp {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.root).status();
    }
}

fn entry(file: &str, generation: u64) -> Entry {
    Entry {
        name: EntryName::parse(file).unwrap().unwrap(),
        generation,
        loadable: true,
    }
}

/// The states a device goes through (factory, trial, counted, committed, fallen back, rolled
/// back, a cut between a trial's write and its old name's removal) and a few odd ones.
fn states() -> Vec<Vec<Entry>> {
    vec![
        vec![entry("rustupdate-a.conf", 2), entry("rustupdate-b.conf", 1)],
        vec![
            entry("rustupdate-a.conf", 2),
            entry("rustupdate-b+3.conf", 3),
        ],
        vec![
            entry("rustupdate-a.conf", 2),
            entry("rustupdate-b+1-2.conf", 3),
        ],
        vec![entry("rustupdate-a.conf", 2), entry("rustupdate-b.conf", 3)],
        vec![
            entry("rustupdate-a.conf", 2),
            entry("rustupdate-b+0-3.conf", 3),
        ],
        vec![
            entry("rustupdate-a+0-1.conf", 4),
            entry("rustupdate-b.conf", 3),
        ],
        vec![
            entry("rustupdate-a+0-3.conf", 9),
            entry("rustupdate-b+0-1.conf", 10),
        ],
        vec![entry("rustupdate-a.conf", 7), entry("rustupdate-b.conf", 7)],
        vec![
            entry("rustupdate-a.conf", 9),
            entry("rustupdate-b+2.conf", 10),
        ],
        vec![
            entry("rustupdate-a.conf", 2),
            entry("rustupdate-b.conf", 1),
            entry("rustupdate-b+3.conf", 3),
        ],
    ]
}

#[test]
fn bootctl_orders_counts_and_picks_the_default_entry_as_the_rules_do() {
    for state in states() {
        let esp = Esp::new();
        for e in &state {
            esp.add(e);
        }
        let listed = esp.bootctl_list();
        let ours: Vec<(String, Option<(u32, u32)>)> = bls::in_boot_order(&state)
            .iter()
            .map(|e| (e.name.file_name(), e.name.counter.map(|c| (c.left, c.done))))
            .collect();
        let theirs: Vec<(String, Option<(u32, u32)>)> =
            listed.iter().map(|l| (l.file.clone(), l.tries)).collect();
        assert_eq!(ours, theirs, "order and counters of {state:?}");
        let default: Vec<&String> = listed
            .iter()
            .filter(|l| l.is_default)
            .map(|l| &l.file)
            .collect();
        let booted = bls::booted(&state).unwrap().name.file_name();
        assert_eq!(default, [&booted], "the entry that boots, of {state:?}");
    }
}

/// `bootctl` (in user space) lists an entry whose kernel is missing, flagged, and even marks it
/// default; systemd-boot itself skips it when it loads the entries (its "check existence"). The
/// rules follow systemd-boot, so here they agree with bootctl only on which file is missing.
#[test]
fn an_entry_whose_kernel_is_missing_is_not_loadable_and_bootctl_flags_it() {
    let esp = Esp::new();
    let committed = entry("rustupdate-a.conf", 2);
    let unloadable = Entry {
        loadable: false,
        ..entry("rustupdate-b+3.conf", 3)
    };
    esp.add(&committed);
    esp.add(&unloadable);
    let listed = esp.bootctl_list();
    let missing: Vec<&str> = listed
        .iter()
        .filter(|l| l.missing)
        .map(|l| l.file.as_str())
        .collect();
    assert_eq!(missing, ["rustupdate-b+3.conf"], "{listed:?}");
    let state = [committed.clone(), unloadable];
    assert_eq!(bls::booted(&state), Some(&committed));
}
