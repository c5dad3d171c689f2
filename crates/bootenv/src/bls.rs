//! systemd-boot's boot counting over the two slot entries on the ESP, as pure rules
//! (docs/boot-contract.md, "systemd-boot"): entry file names with their tries counter
//! (`rustupdate-b+2-1.conf`), the `version` line that orders the entries (a generation number),
//! which entry systemd-boot boots, and the renames and writes that arm, bless and reject an entry.
//!
//! No I/O here: the client's `sys::boot_entries` lists the directory, reads the files and carries
//! out the [`Step`]s in order.

use std::cmp::Ordering;
use thiserror::Error;

/// Every entry this layer owns starts with this (`loader.conf`: `default rustupdate-*`).
pub const ENTRY_PREFIX: &str = "rustupdate-";
/// The suffix systemd-boot requires of type #1 entries.
pub const ENTRY_SUFFIX: &str = ".conf";
/// The `sort-key` of both entries: systemd-boot then orders them by `version`.
pub const SORT_KEY: &str = "rustupdate";
/// The entries' directory on the ESP.
pub const ENTRIES_DIR: &str = "loader/entries";

/// A slot of the A/B pair, as the entry names spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

/// systemd's tries counter in an entry's name: `+LEFT` or `+LEFT-DONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub left: u32,
    pub done: u32,
}

impl Counter {
    /// No tries left: systemd-boot sorts the entry last (a bad entry).
    pub fn is_bad(self) -> bool {
        self.left == 0
    }
}

/// What a file name in `loader/entries` says: the slot and its counter (`None`: blessed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryName {
    pub slot: Slot,
    pub counter: Option<Counter>,
}

impl EntryName {
    pub fn blessed(slot: Slot) -> EntryName {
        EntryName {
            slot,
            counter: None,
        }
    }

    /// `None` for a name that is not this layer's (another OS's entry, a temporary file);
    /// an error for one that starts like ours but that the rules cannot read.
    pub fn parse(file_name: &str) -> Result<Option<EntryName>, BlsError> {
        let Some(rest) = file_name.strip_prefix(ENTRY_PREFIX) else {
            return Ok(None);
        };
        let Some(stem) = rest.strip_suffix(ENTRY_SUFFIX) else {
            return Ok(None);
        };
        let bad = || BlsError::BadName(file_name.to_string());
        let (slot_part, counter_part) = match stem.split_once('+') {
            Some((slot, counter)) => (slot, Some(counter)),
            None => (stem, None),
        };
        let slot = match slot_part {
            "a" => Slot::A,
            "b" => Slot::B,
            _ => return Err(bad()),
        };
        let number = |digits: &str| -> Result<u32, BlsError> {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            digits.parse().map_err(|_| bad())
        };
        let counter = match counter_part {
            None => None,
            Some(counter) => {
                let (left, done) = match counter.split_once('-') {
                    Some((left, done)) => (number(left)?, number(done)?),
                    None => (number(counter)?, 0),
                };
                Some(Counter { left, done })
            }
        };
        Ok(Some(EntryName { slot, counter }))
    }

    /// The file name, as systemd writes counters: `-DONE` only once a try was done.
    pub fn file_name(&self) -> String {
        let slot = self.slot.as_str();
        match self.counter {
            None => format!("{ENTRY_PREFIX}{slot}{ENTRY_SUFFIX}"),
            Some(Counter { left, done: 0 }) => format!("{ENTRY_PREFIX}{slot}+{left}{ENTRY_SUFFIX}"),
            Some(Counter { left, done }) => {
                format!("{ENTRY_PREFIX}{slot}+{left}-{done}{ENTRY_SUFFIX}")
            }
        }
    }
}

/// One of this layer's entries as found on the ESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: EntryName,
    /// The generation in its `version` line.
    pub generation: u64,
    /// Its `linux` (or `efi`) file exists: systemd-boot ignores entries whose kernel is missing.
    pub loadable: bool,
}

/// systemd-boot's order between two of our entries (same `sort-key`, no `machine-id`): no tries
/// left last; then the higher version; then the name downwards (b before a); then more tries
/// left, fewer done.
fn boot_order(x: &Entry, y: &Entry) -> Ordering {
    let bad = |e: &Entry| e.name.counter.is_some_and(Counter::is_bad);
    bad(x)
        .cmp(&bad(y))
        .then(y.generation.cmp(&x.generation))
        .then(y.name.slot.cmp(&x.name.slot))
        .then_with(|| match (x.name.counter, y.name.counter) {
            (Some(cx), Some(cy)) => cy.left.cmp(&cx.left).then(cx.done.cmp(&cy.done)),
            _ => Ordering::Equal,
        })
}

/// The entry systemd-boot boots: the first loadable one in its order.
pub fn booted(entries: &[Entry]) -> Option<&Entry> {
    entries
        .iter()
        .filter(|e| e.loadable)
        .min_by(|x, y| boot_order(x, y))
}

/// The entries in systemd-boot's order (loadable or not), for `rustupdate status` and tests.
pub fn in_boot_order(entries: &[Entry]) -> Vec<&Entry> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|x, y| boot_order(x, y));
    sorted
}

/// One durable change to `loader/entries`, in the order a plan lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write `slot`'s entry anew under `name` with `generation` (the content is the slot's
    /// current entry with its `version` line replaced: [`with_generation`]).
    Write {
        name: EntryName,
        generation: u64,
        from: EntryName,
    },
    /// Rename an entry file (a bless, or marking it bad).
    Rename { from: EntryName, to: EntryName },
    /// Remove an entry file that a [`Step::Write`] replaced under another name.
    Remove { name: EntryName },
}

/// The rules' complaints about what is on the ESP.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlsError {
    #[error(
        "entry file {0:?} starts with {ENTRY_PREFIX:?} but is not rustupdate-<a|b>[+LEFT[-DONE]].conf"
    )]
    BadName(String),
    #[error("no entry for slot {0} (expected loader/entries/rustupdate-{0}.conf from the image)")]
    NoEntry(&'static str),
    #[error("entry {file}: {problem}")]
    BadContent { file: String, problem: String },
}

/// The entry of `slot` that systemd-boot would pick of that slot's entries. A slot has one entry,
/// or two for a moment: a cut between a trial's write and the removal of its old name leaves
/// both, the new one with the higher generation.
fn entry_of(entries: &[Entry], slot: Slot) -> Result<&Entry, BlsError> {
    entries
        .iter()
        .filter(|e| e.name.slot == slot)
        .min_by(|x, y| boot_order(x, y))
        .ok_or(BlsError::NoEntry(slot.as_str()))
}

/// The other files of `slot` than `keep`: left over by a cut, removed after the step that
/// supersedes them.
fn leftovers(entries: &[Entry], slot: Slot, keep: EntryName) -> impl Iterator<Item = Step> + '_ {
    entries
        .iter()
        .filter(move |e| e.name.slot == slot && e.name != keep)
        .map(|e| Step::Remove { name: e.name })
}

/// Arms a trial of `slot` with `bootlimit` tries: its entry under `+<bootlimit>` with the highest
/// generation (written and renamed into place), then its old name removed.
pub fn plan_trial(entries: &[Entry], slot: Slot, bootlimit: u32) -> Result<Vec<Step>, BlsError> {
    let current = entry_of(entries, slot)?;
    let generation = entries.iter().map(|e| e.generation).max().unwrap_or(0) + 1;
    let name = EntryName {
        slot,
        counter: Some(Counter {
            left: bootlimit,
            done: 0,
        }),
    };
    let mut steps = vec![Step::Write {
        name,
        generation,
        from: current.name,
    }];
    steps.extend(leftovers(entries, slot, name));
    Ok(steps)
}

/// Makes `slot` the committed one: its entry blessed (renamed without counter), then every entry
/// of the other slot that would still boot first marked bad (`+0`). A commit of a trial is the
/// first step only, a rollback (the other slot on trial) the second only: one rename each.
pub fn plan_commit(entries: &[Entry], slot: Slot) -> Result<Vec<Step>, BlsError> {
    let current = entry_of(entries, slot)?;
    let blessed = Entry {
        name: EntryName::blessed(slot),
        ..current.clone()
    };
    let mut steps = Vec::new();
    if current.name.counter.is_some() {
        // A leftover under the blessed name is replaced by the rename.
        steps.push(Step::Rename {
            from: current.name,
            to: blessed.name,
        });
    }
    let stale = entries
        .iter()
        .filter(|e| e.name.slot == slot && e.name != current.name && e.name != blessed.name);
    steps.extend(stale.map(|e| Step::Remove { name: e.name }));
    for other in entries.iter().filter(|e| e.name.slot != slot) {
        if boot_order(other, &blessed) == Ordering::Less {
            let done = other.name.counter.map_or(0, |c| c.done);
            steps.push(Step::Rename {
                from: other.name,
                to: EntryName {
                    slot: other.name.slot,
                    counter: Some(Counter { left: 0, done }),
                },
            });
        }
    }
    Ok(steps)
}

/// The generation in an entry's `version` line.
pub fn generation_of(file: &str, content: &str) -> Result<u64, BlsError> {
    let bad = |problem: &str| BlsError::BadContent {
        file: file.to_string(),
        problem: problem.to_string(),
    };
    let version = lines(content)
        .find(|(key, _)| *key == "version")
        .map(|(_, value)| value)
        .ok_or_else(|| bad("no version line (the generation that orders the entries)"))?;
    version.parse().map_err(|_| {
        bad(&format!(
            "version {version:?} is not a decimal generation number"
        ))
    })
}

/// The paths on the ESP an entry loads (`linux`, `initrd`, `efi`, `devicetree`), as written.
pub fn boot_files(content: &str) -> Vec<&str> {
    lines(content)
        .filter(|(key, _)| matches!(*key, "linux" | "initrd" | "efi" | "devicetree"))
        .map(|(_, value)| value)
        .collect()
}

/// The file systemd-boot loads first (`linux`, or `efi` for a unified kernel image): an entry
/// whose loader file is missing is skipped.
pub fn loader_of(content: &str) -> Option<&str> {
    lines(content)
        .find(|(key, _)| matches!(*key, "linux" | "efi"))
        .map(|(_, value)| value)
}

/// `content` with its `version` line set to `generation` and its `sort-key` set to
/// [`SORT_KEY`] (added after the first line when missing); every other line is kept.
pub fn with_generation(content: &str, generation: u64) -> String {
    let mut out = Vec::new();
    let (mut has_version, mut has_sort_key) = (false, false);
    for line in content.lines() {
        match split_line(line) {
            Some(("version", _)) => {
                has_version = true;
                out.push(format!("version {generation}"));
            }
            Some(("sort-key", _)) => {
                has_sort_key = true;
                out.push(format!("sort-key {SORT_KEY}"));
            }
            _ => out.push(line.to_string()),
        }
    }
    let at = out.len().min(1);
    if !has_version {
        out.insert(at, format!("version {generation}"));
    }
    if !has_sort_key {
        out.insert(at, format!("sort-key {SORT_KEY}"));
    }
    out.join("\n") + "\n"
}

/// A line as systemd-boot reads it: a key, whitespace, the rest; `#` comments and blank lines
/// are not lines.
fn split_line(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (key, value) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    Some((key, value.trim()))
}

fn lines(content: &str) -> impl Iterator<Item = (&str, &str)> {
    content.lines().filter_map(split_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str, generation: u64) -> Entry {
        Entry {
            name: EntryName::parse(file).unwrap().unwrap(),
            generation,
            loadable: true,
        }
    }

    fn name(file: &str) -> EntryName {
        EntryName::parse(file).unwrap().unwrap()
    }

    #[test]
    fn names_round_trip_and_bad_names_are_errors() {
        for file in [
            "rustupdate-a.conf",
            "rustupdate-b+3.conf",
            "rustupdate-b+2-1.conf",
            "rustupdate-a+0-3.conf",
        ] {
            assert_eq!(name(file).file_name(), file);
        }
        assert_eq!(
            name("rustupdate-b+2-1.conf").counter,
            Some(Counter { left: 2, done: 1 })
        );
        assert_eq!(EntryName::parse("debian-6.1.conf"), Ok(None));
        assert_eq!(EntryName::parse(".rustupdate-a.conf.tmp"), Ok(None));
        assert_eq!(EntryName::parse("rustupdate-a.conf.tmp"), Ok(None));
        for bad in [
            "rustupdate-c.conf",
            "rustupdate-a+.conf",
            "rustupdate-a+x-1.conf",
            "rustupdate-a+1-.conf",
            "rustupdate-a+-1.conf",
            "rustupdate-a+99999999999.conf",
        ] {
            assert!(
                matches!(EntryName::parse(bad), Err(BlsError::BadName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_highest_generation_boots_unless_bad_or_unloadable() {
        let committed = entry("rustupdate-a.conf", 2);
        let trial = entry("rustupdate-b+3.conf", 3);
        let entries = [committed.clone(), trial.clone()];
        assert_eq!(booted(&entries), Some(&trial));
        let bad = entry("rustupdate-b+0-3.conf", 3);
        assert_eq!(booted(&[committed.clone(), bad.clone()]), Some(&committed));
        let unloadable = Entry {
            loadable: false,
            ..trial
        };
        assert_eq!(booted(&[committed.clone(), unloadable]), Some(&committed));
        // Both bad: systemd-boot still boots the first (the higher generation).
        let bad_a = entry("rustupdate-a+0-1.conf", 2);
        assert_eq!(booted(&[bad_a, bad.clone()]), Some(&bad));
        // Equal generations: b before a, as systemd-boot compares names downwards.
        let tie = [entry("rustupdate-a.conf", 4), entry("rustupdate-b.conf", 4)];
        assert_eq!(booted(&tie).unwrap().name.slot, Slot::B);
        assert_eq!(booted(&[]), None);
    }

    #[test]
    fn a_trial_gets_the_highest_generation_and_a_counter() {
        let entries = [entry("rustupdate-a.conf", 2), entry("rustupdate-b.conf", 1)];
        let steps = plan_trial(&entries, Slot::B, 3).unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Write {
                    name: name("rustupdate-b+3.conf"),
                    generation: 3,
                    from: name("rustupdate-b.conf"),
                },
                Step::Remove {
                    name: name("rustupdate-b.conf")
                },
            ]
        );
        // A trial armed again (a cut after the write) overwrites its own name.
        let again = [
            entry("rustupdate-a.conf", 2),
            entry("rustupdate-b+3.conf", 3),
        ];
        assert_eq!(plan_trial(&again, Slot::B, 3).unwrap().len(), 1);
        assert_eq!(
            plan_trial(&[entry("rustupdate-a.conf", 2)], Slot::B, 3),
            Err(BlsError::NoEntry("b"))
        );
    }

    #[test]
    fn commit_blesses_and_rollback_marks_the_trial_bad() {
        let trial = [
            entry("rustupdate-a.conf", 2),
            entry("rustupdate-b+2-1.conf", 3),
        ];
        assert_eq!(
            plan_commit(&trial, Slot::B).unwrap(),
            vec![Step::Rename {
                from: name("rustupdate-b+2-1.conf"),
                to: name("rustupdate-b.conf")
            }]
        );
        assert_eq!(
            plan_commit(&trial, Slot::A).unwrap(),
            vec![Step::Rename {
                from: name("rustupdate-b+2-1.conf"),
                to: name("rustupdate-b+0-1.conf")
            }]
        );
        // After a fallback (b bad) the committed slot needs nothing.
        let fell_back = [
            entry("rustupdate-a.conf", 2),
            entry("rustupdate-b+0-3.conf", 3),
        ];
        assert_eq!(plan_commit(&fell_back, Slot::A).unwrap(), vec![]);
        // Committing the lower generation: bless, then the other marked bad.
        let host_switch = [
            entry("rustupdate-a+1-2.conf", 2),
            entry("rustupdate-b.conf", 3),
        ];
        let steps = plan_commit(&host_switch, Slot::A).unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Rename {
                    from: name("rustupdate-a+1-2.conf"),
                    to: name("rustupdate-a.conf")
                },
                Step::Rename {
                    from: name("rustupdate-b.conf"),
                    to: name("rustupdate-b+0.conf")
                },
            ]
        );
    }

    #[test]
    fn a_cut_between_write_and_remove_leaves_two_entries_that_the_plans_clean_up() {
        let cut = [
            entry("rustupdate-a.conf", 2),
            entry("rustupdate-b.conf", 1),
            entry("rustupdate-b+3.conf", 3),
        ];
        assert_eq!(booted(&cut).unwrap().name, name("rustupdate-b+3.conf"));
        assert_eq!(
            plan_trial(&cut, Slot::B, 3).unwrap(),
            vec![
                Step::Write {
                    name: name("rustupdate-b+3.conf"),
                    generation: 4,
                    from: name("rustupdate-b+3.conf"),
                },
                Step::Remove {
                    name: name("rustupdate-b.conf")
                },
            ]
        );
        // The bless renames over the leftover's name; a rollback marks only the trial bad.
        assert_eq!(
            plan_commit(&cut, Slot::B).unwrap(),
            vec![Step::Rename {
                from: name("rustupdate-b+3.conf"),
                to: name("rustupdate-b.conf")
            }]
        );
        assert_eq!(
            plan_commit(&cut, Slot::A).unwrap(),
            vec![Step::Rename {
                from: name("rustupdate-b+3.conf"),
                to: name("rustupdate-b+0.conf")
            }]
        );
    }

    #[test]
    fn every_plan_ends_where_it_should_and_each_step_leaves_a_good_slot_booting() {
        // Apply a plan step by step; after every step something loadable boots, and the end
        // state boots the planned slot with the planned counter.
        fn apply(entries: &mut Vec<Entry>, step: &Step) {
            match step {
                Step::Write {
                    name, generation, ..
                } => {
                    entries.retain(|e| e.name != *name);
                    entries.push(Entry {
                        name: *name,
                        generation: *generation,
                        loadable: true,
                    });
                }
                Step::Rename { from, to } => {
                    entries.iter_mut().find(|e| e.name == *from).unwrap().name = *to;
                }
                Step::Remove { name } => entries.retain(|e| e.name != *name),
            }
        }
        let start = vec![entry("rustupdate-a.conf", 2), entry("rustupdate-b.conf", 1)];
        let mut entries = start.clone();
        for step in plan_trial(&start, Slot::B, 3).unwrap() {
            apply(&mut entries, &step);
            assert!(booted(&entries).is_some());
        }
        let on_trial = booted(&entries).unwrap().clone();
        assert_eq!(on_trial.name, name("rustupdate-b+3.conf"));
        let before_commit = entries.clone();
        for step in plan_commit(&before_commit, Slot::B).unwrap() {
            apply(&mut entries, &step);
        }
        assert_eq!(booted(&entries).unwrap().name, name("rustupdate-b.conf"));
        let mut rolled_back = before_commit.clone();
        for step in plan_commit(&before_commit, Slot::A).unwrap() {
            apply(&mut rolled_back, &step);
        }
        assert_eq!(
            booted(&rolled_back).unwrap().name,
            name("rustupdate-a.conf")
        );
    }

    #[test]
    fn entry_content_generation_and_boot_files() {
        let content = "title rustupdate slot b\nsort-key rustupdate\nversion 1\n\
                       linux /rustupdate/b/vmlinuz\ninitrd /rustupdate/b/initrd.img\n\
                       # a comment\noptions root=PARTLABEL=rootfs_b rustupdate.slot=b\n";
        assert_eq!(generation_of("x", content), Ok(1));
        let next = with_generation(content, 12);
        assert_eq!(generation_of("x", &next), Ok(12));
        assert_eq!(next.replace("version 12", "version 1"), content);
        assert_eq!(
            boot_files(content),
            ["/rustupdate/b/vmlinuz", "/rustupdate/b/initrd.img"]
        );
        let bare = "title t\nlinux /k\n";
        let fixed = with_generation(bare, 3);
        assert_eq!(fixed, "title t\nsort-key rustupdate\nversion 3\nlinux /k\n");
        assert!(matches!(
            generation_of("e.conf", "title t\nversion 7.1\n"),
            Err(BlsError::BadContent { .. })
        ));
        assert!(
            generation_of("e.conf", "title t\n")
                .unwrap_err()
                .to_string()
                .contains("no version line")
        );
    }
}
