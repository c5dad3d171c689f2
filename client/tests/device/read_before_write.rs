//! Read before write: an install leaves the blocks the target slot already holds alone, and the
//! slot still ends up byte for byte equal to the image. What was written is read from the
//! client's log line ("slot …: X MiB written (Y MiB of data, Z MiB zeroed), W MiB already in
//! place") and from the slot file itself (content, and its modification time where nothing may
//! be written at all).

use crate::rig::{Rig, SLOT_SIZE, image};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

const MIB: f64 = (1 << 20) as f64;
const BLOCK: usize = 4096;

/// The four numbers of the install's log line for slot b, in MiB.
#[derive(Debug)]
struct Written {
    total: f64,
    data: f64,
    zeroed: f64,
    in_place: f64,
}

impl Written {
    fn parse(stderr: &str) -> Written {
        let line = stderr
            .lines()
            .find(|l| l.contains("slot-b.img: ") && l.contains("already in place"))
            .unwrap_or_else(|| panic!("no write summary for slot b in:\n{stderr}"));
        let tail = line.split_once("slot-b.img: ").unwrap().1;
        let numbers: Vec<f64> = tail
            .split(|c: char| c.is_whitespace() || "(),".contains(c))
            .filter_map(|word| word.parse().ok())
            .collect();
        let [total, data, zeroed, in_place] = numbers[..] else {
            panic!("expected four figures in {line:?}");
        };
        Written {
            total,
            data,
            zeroed,
            in_place,
        }
    }
}

/// The log rounds to 0.1 MiB.
fn assert_mib(logged: f64, bytes: usize, what: &str) {
    let expected = bytes as f64 / MIB;
    assert!(
        (logged - expected).abs() <= 0.051,
        "{what}: logged {logged} MiB, expected {expected:.3} MiB"
    );
}

fn slot_b(rig: &Rig) -> PathBuf {
    rig.root().join("slot-b.img")
}

/// Puts `bytes` into slot b, padded with 0xee to the slot size, as an earlier install would have.
fn fill_slot_b(rig: &Rig, bytes: &[u8]) -> Vec<u8> {
    let mut slot = bytes.to_vec();
    slot.resize(SLOT_SIZE, 0xee);
    std::fs::write(slot_b(rig), &slot).unwrap();
    slot
}

fn install(rig: &Rig, version: &str, image: &[u8]) -> Written {
    let artifact = rig.artifact(version, image, &[&rig.key], "test-board", None);
    let out = rig.client(&["install", artifact.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    Written::parse(&out.stderr)
}

/// Bytes in the 4 KiB blocks where `a` and `b` differ.
fn differing_bytes(a: &[u8], b: &[u8]) -> usize {
    a.chunks(BLOCK)
        .zip(b.chunks(BLOCK))
        .filter(|(x, y)| x != y)
        .map(|(x, _)| x.len())
        .sum()
}

#[test]
fn installing_the_image_the_slot_already_holds_writes_nothing() {
    let rig = Rig::new();
    let new = image(2);
    let before = fill_slot_b(&rig, &new);
    // Any write or hole punch would move the modification time; fsync does not.
    let old_time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(slot_b(&rig))
        .unwrap()
        .set_modified(old_time)
        .unwrap();

    let written = install(&rig, "v2", &new);

    assert_eq!(written.total, 0.0, "{written:?}");
    assert_eq!(written.data, 0.0, "{written:?}");
    assert_eq!(written.zeroed, 0.0, "{written:?}");
    assert_mib(written.in_place, new.len(), "already in place");
    assert_eq!(rig.slot_bytes('b'), before, "slot b unchanged");
    let modified = std::fs::metadata(slot_b(&rig)).unwrap().modified().unwrap();
    assert_eq!(modified, old_time, "slot b was not written to");
    assert_eq!(
        rig.env()["rustupdate_slot"],
        "b",
        "the install went through"
    );
}

#[test]
fn installing_over_a_similar_image_writes_only_the_blocks_that_differ() {
    let rig = Rig::new();
    let old = image(2);
    // The new release: the old one with its second MiB replaced by other data. The zero blocks
    // of both images are at the same places, so only the data blocks of that MiB differ.
    let mut new = old.clone();
    new[1 << 20..2 << 20].copy_from_slice(&image(3)[1 << 20..2 << 20]);
    let differing = differing_bytes(&old, &new);
    assert!(
        differing > 0 && differing < 1 << 20,
        "fixture: {differing} bytes differ"
    );
    let before = fill_slot_b(&rig, &old);

    let written = install(&rig, "v3", &new);

    let slot = rig.slot_bytes('b');
    assert!(slot[..new.len()] == new[..], "slot b holds the new image");
    assert!(
        slot[new.len()..] == before[new.len()..],
        "the slot past the image is untouched"
    );
    assert_mib(written.data, differing, "data written");
    assert_eq!(written.zeroed, 0.0, "{written:?}");
    assert_mib(written.in_place, new.len() - differing, "already in place");
    assert!(written.in_place > 0.0 && written.total < new.len() as f64 / MIB);
}

#[test]
fn garbage_where_the_image_has_zero_runs_is_zeroed() {
    let rig = Rig::new();
    let new = image(2);
    // The slot holds the image except that some of its zero blocks (every third block of the
    // test image, block 0 aside: it holds the version stamp) carry garbage, whole or a byte.
    let mut held = new.clone();
    let mut dirty = 0;
    for index in (3..new.len() / BLOCK).step_by(3).take(200) {
        let block = &mut held[index * BLOCK..(index + 1) * BLOCK];
        assert!(
            block.iter().all(|b| *b == 0),
            "fixture: block {index} is a zero block"
        );
        if index % 2 == 0 {
            block.fill(0x5a);
        } else {
            block[BLOCK - 1] = 1;
        }
        dirty += BLOCK;
    }
    fill_slot_b(&rig, &held);

    let written = install(&rig, "v2", &new);

    assert!(
        rig.slot_holds('b', &new),
        "slot b holds the image, zeros included"
    );
    assert_mib(written.zeroed, dirty, "zeroed");
    assert_eq!(written.data, 0.0, "{written:?}");
    assert_mib(written.in_place, new.len() - dirty, "already in place");
}
