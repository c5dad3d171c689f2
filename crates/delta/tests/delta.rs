//! Patches made and applied end to end on test images: the rebuilt image is the target, and a
//! wrong base, a damaged patch or a patch for another artifact is refused before any chunk that
//! does not match the signed tables is handed on.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a test failure

use rustupdate_delta::apply::DeltaStats;
use rustupdate_delta::{Base, BaseImage, BlockIndex, BuildOptions, DeltaPayload, build_patch};
use rustupdate_format::Head;
use rustupdate_format::builder::BodyOptions;
use rustupdate_testkit::{ArtifactSpec, artifact_parts, fs_image, key, next_release};
use rustupdate_verify::{
    ChunkData, ChunkSource, Error, Keyring, SignaturePolicy, VerifiedArtifact,
};
use std::io::Cursor;

struct Case {
    base: Vec<u8>,
    target: Vec<u8>,
    head: Head,
    artifact: Vec<u8>,
    patch: Vec<u8>,
}

fn options(format_version: u16) -> BodyOptions {
    BodyOptions {
        format_version,
        segment_entries: Some(200), // several segments in a small image
        ..BodyOptions::default()
    }
}

fn case(seed: u64) -> Case {
    let base = fs_image(4 << 20, seed);
    let target = next_release(&base, seed + 1);
    let spec = ArtifactSpec {
        version: "2.0",
        ..Default::default()
    };
    let (head, body) = artifact_parts(&spec, &target, &options(2), &[&key(1)]);
    let mut artifact = head.to_bytes().unwrap();
    artifact.extend_from_slice(&body);
    let patch = make_patch(&artifact, &base);
    Case {
        base,
        target,
        head,
        artifact,
        patch,
    }
}

fn make_patch(artifact: &[u8], base: &[u8]) -> Vec<u8> {
    make_patch_against(artifact, Base::Image(base))
}

/// A patch for `artifact` against `base`, made as the host tool does (level 3 for speed).
fn make_patch_against(artifact: &[u8], base: Base<'_>) -> Vec<u8> {
    let policy = SignaturePolicy::dangerous_accept_unsigned();
    let mut reader = VerifiedArtifact::open(artifact, &Keyring::new(), &policy).unwrap();
    let head = reader.head().clone();
    let mut payload = reader.next_payload().unwrap().unwrap();
    let mut patch = Vec::new();
    let options = BuildOptions {
        level: 3,
        ..BuildOptions::default()
    };
    build_patch(
        &head,
        &mut payload,
        base,
        &options,
        &mut patch,
        &mut |_, _| {},
    )
    .unwrap();
    patch
}

/// Applies `patch`; checks every chunk handed on against `target` as it comes (a chunk that does
/// not match fails the test at once), and returns the rebuilt image or the error.
fn apply(head: &Head, patch: &[u8], base: &[u8], target: &[u8]) -> Result<Vec<u8>, Error> {
    apply_with(head, patch, base, target).map(|(image, _)| image)
}

/// [`apply`] from any base; also returns what the rebuild read.
fn apply_with<B: BaseImage>(
    head: &Head,
    patch: &[u8],
    base: B,
    target: &[u8],
) -> Result<(Vec<u8>, DeltaStats), Error> {
    let mut delta = DeltaPayload::open(head, Cursor::new(patch), base, false)?;
    let mut image = Vec::new();
    while let Some(chunk) = delta.next_chunk()? {
        let at = chunk.offset as usize;
        match chunk.data {
            ChunkData::Bytes(bytes) => {
                assert_eq!(
                    bytes,
                    &target[at..at + bytes.len()],
                    "unverified bytes at {at}"
                );
                image.extend_from_slice(bytes);
            }
            ChunkData::Zeros(n) => {
                assert!(target[at..at + n as usize].iter().all(|b| *b == 0));
                image.resize(image.len() + n as usize, 0);
            }
        }
    }
    Ok((image, delta.stats()))
}

/// A base read through a cache that may hold other bytes than its medium, as the page cache of a
/// mounted ext4 slot holds a journal superblock the disk never got.
struct CachedBase {
    medium: Vec<u8>,
    cache: Vec<u8>,
    past: bool,
}

impl BaseImage for CachedBase {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let mut bytes = if self.past {
            &self.medium[..]
        } else {
            &self.cache[..]
        };
        bytes.read_at(offset, buf)
    }

    fn size(&self) -> u64 {
        self.medium.len() as u64
    }

    fn read_past_cache(&mut self, past: bool) -> bool {
        let changed = self.past != past;
        self.past = past;
        changed
    }
}

/// What a delta did with its base, and when it handed on a chunk, in order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Event {
    Announced(u64, u64),
    Read(u64, u64),
    Chunk,
}

/// A base that logs what it is told and asked (the log shared with the test).
struct LoggedBase {
    bytes: Vec<u8>,
    log: std::rc::Rc<std::cell::RefCell<Vec<Event>>>,
}

impl BaseImage for LoggedBase {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.log
            .borrow_mut()
            .push(Event::Read(offset, buf.len() as u64));
        (&self.bytes[..]).read_at(offset, buf)
    }

    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn will_read(&mut self, offset: u64, len: u64) {
        self.log.borrow_mut().push(Event::Announced(offset, len));
    }
}

#[test]
fn every_base_read_is_announced_a_segment_ahead() {
    let c = case(11);
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let base = LoggedBase {
        bytes: c.base.clone(),
        log: log.clone(),
    };
    let mut delta = DeltaPayload::open(&c.head, Cursor::new(&c.patch[..]), base, false).unwrap();
    while delta.next_chunk().unwrap().is_some() {
        log.borrow_mut().push(Event::Chunk);
    }
    let log = log.borrow();
    // Whether `offset..offset + len` lies in what the events before `until` announced.
    let announced_before = |until: usize, offset: u64, len: u64| {
        log[..until].iter().any(|event| match *event {
            Event::Announced(at, n) => at <= offset && offset + len <= at + n,
            _ => false,
        })
    };
    let chunk_at = |n: usize| {
        log.iter()
            .enumerate()
            .filter(|(_, e)| **e == Event::Chunk)
            .nth(n)
            .unwrap()
            .0
    };
    let reads: Vec<(usize, u64, u64)> = log
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match *e {
            Event::Read(offset, len) => Some((i, offset, len)),
            _ => None,
        })
        .collect();
    assert!(!reads.is_empty());
    for &(i, offset, len) in &reads {
        assert!(
            announced_before(i, offset, len),
            "read {offset}+{len} unannounced"
        );
    }
    // Segments hold 200 entries: what the second segment reads was announced before the first
    // segment handed on its first chunk (its reads overlap the first segment's writes).
    let (first, second) = (chunk_at(0), chunk_at(200));
    let second_reads: Vec<_> = reads
        .iter()
        .filter(|&&(i, _, _)| i > first && i < second)
        .collect();
    assert!(!second_reads.is_empty(), "the second segment reads no base");
    for &&(_, offset, len) in &second_reads {
        assert!(
            announced_before(first, offset, len),
            "read {offset}+{len} announced late"
        );
    }
}

#[test]
fn a_segment_the_cache_holds_wrong_is_rebuilt_past_the_cache() {
    let c = case(8);
    let block = 2 * 4096 + 10; // block 2: kept by the target, so copied
    let mut cache = c.base.clone();
    cache[block] ^= 0x01;
    let base = CachedBase {
        medium: c.base.clone(),
        cache: cache.clone(),
        past: false,
    };
    let (image, stats) = apply_with(&c.head, &c.patch, base, &c.target).unwrap();
    assert!(image == c.target);
    assert_eq!(stats.segments_reread, 1, "{stats:?}");
    assert!(stats.copied > 0 && stats.base_requested > 2 * stats.copied);
    // Through a cache that holds the medium's bytes, no segment is read twice.
    let base = CachedBase {
        medium: c.base.clone(),
        cache: c.base.clone(),
        past: false,
    };
    let (_, stats) = apply_with(&c.head, &c.patch, base, &c.target).unwrap();
    assert_eq!(stats.segments_reread, 0);
    // A medium that is wrong as well: refused as before, nothing wrong handed on.
    let base = CachedBase {
        medium: cache.clone(),
        cache,
        past: false,
    };
    let err = apply_with(&c.head, &c.patch, base, &c.target).unwrap_err();
    assert!(
        err.to_string().contains("does not match the signed one"),
        "{err}"
    );
}

#[test]
fn a_patch_rebuilds_the_target_from_its_base_and_is_small() {
    let c = case(1);
    assert!(c.head.manifest.payloads[0].segments.len() > 2);
    let image = apply(&c.head, &c.patch, &c.base, &c.target).unwrap();
    assert!(image == c.target, "rebuilt image differs");
    assert!(
        c.patch.len() * 10 < c.artifact.len(),
        "patch {} bytes, artifact {}",
        c.patch.len(),
        c.artifact.len()
    );
}

#[test]
fn a_different_base_is_refused_before_any_chunk() {
    let c = case(2);
    let other = fs_image(4 << 20, 99);
    let mut delta = DeltaPayload::open(&c.head, Cursor::new(&c.patch), &other[..], false).unwrap();
    let err = delta.next_chunk().unwrap_err();
    assert!(
        err.is_delta() && err.to_string().contains("does not match the signed one"),
        "{err}"
    );
}

#[test]
fn a_modified_base_fails_where_it_differs_and_hands_on_nothing_wrong() {
    let c = case(3);
    for at in [4096usize * 5 + 100, c.base.len() - 3000] {
        let mut modified = c.base.clone();
        modified[at] ^= 0x01;
        match apply(&c.head, &c.patch, &modified, &c.target) {
            Err(err) => assert!(err.is_delta(), "{err}"),
            // A byte the patch never uses may change: the result must still be the target.
            Ok(image) => assert!(image == c.target),
        }
    }
    let mut modified = c.base.clone();
    modified[2 * 4096 + 10] ^= 0x01; // block 2: kept by the target, so copied
    assert!(apply(&c.head, &c.patch, &modified, &c.target).is_err());
}

#[test]
fn truncated_or_tampered_patches_are_refused() {
    let c = case(4);
    for len in (0..c.patch.len()).step_by(97) {
        let err = apply(&c.head, &c.patch[..len], &c.base, &c.target).unwrap_err();
        assert!(err.is_delta(), "len {len}: {err}");
    }
    let mut refused = 0;
    for at in (0..c.patch.len()).step_by(13) {
        let mut bad = c.patch.clone();
        bad[at] ^= 0x10;
        match apply(&c.head, &bad, &c.base, &c.target) {
            Err(_) => refused += 1,
            Ok(image) => assert!(image == c.target, "tampered byte {at} changed the image"),
        }
    }
    assert!(
        refused > c.patch.len() / 13 / 2,
        "only {refused} tamperings noticed"
    );
}

#[test]
fn a_patch_for_another_artifact_or_format_is_refused() {
    let c = case(5);
    let other = case(6);
    let err =
        DeltaPayload::open(&other.head, Cursor::new(&c.patch), &c.base[..], false).unwrap_err();
    assert!(err.to_string().contains("another artifact"), "{err}");
    let spec = ArtifactSpec::default();
    let (v1_head, _) = artifact_parts(&spec, &c.target, &options(1), &[&key(1)]);
    let err = DeltaPayload::open(&v1_head, Cursor::new(&c.patch), &c.base[..], false).unwrap_err();
    assert!(err.to_string().contains("version 2"), "{err}");
    let small = &c.base[..4096];
    let err = DeltaPayload::open(&c.head, Cursor::new(&c.patch), small, false).unwrap_err();
    assert!(err.to_string().contains("the base holds"), "{err}");
}

/// A header that claims a million segments for the right artifact, followed by a whole directory of
/// that size: refused on its count alone, before a byte of the directory is read (it held 28 MiB).
#[test]
fn a_hostile_segment_count_is_refused_before_its_directory_is_read() {
    use rustupdate_delta::patch::{DIRECTORY_ENTRY_LEN, HEADER_LEN, MAX_SEGMENTS};
    let c = case(7);
    let mut hostile = c.patch[..HEADER_LEN].to_vec();
    hostile[12..16].copy_from_slice(&MAX_SEGMENTS.to_le_bytes());
    hostile.resize(HEADER_LEN + MAX_SEGMENTS as usize * DIRECTORY_ENTRY_LEN, 0);
    let mut patch = Cursor::new(&hostile);
    let err = rustupdate_delta::read_header_for(&mut patch, &c.head).unwrap_err();
    let segments = c.head.manifest.payloads[0].segments.len();
    assert!(
        err.to_string().contains(&format!(
            "the patch has {MAX_SEGMENTS} segments, the artifact {segments}"
        )),
        "{err}"
    );
    assert_eq!(
        patch.position(),
        HEADER_LEN as u64,
        "the directory was read"
    );
    let err = DeltaPayload::open(&c.head, Cursor::new(&hostile), &c.base[..], false).unwrap_err();
    assert!(err.to_string().contains("segments"), "{err}");

    // Beyond any artifact (u32::MAX): refused by the fixed header alone, naming the bound.
    let mut beyond = hostile[..HEADER_LEN].to_vec();
    beyond[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut patch = Cursor::new(&beyond);
    let err = rustupdate_delta::read_header_for(&mut patch, &c.head).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "segment count {} is outside 1..={MAX_SEGMENTS}",
            u32::MAX
        )),
        "{err}"
    );
    assert_eq!(patch.position(), HEADER_LEN as u64);

    // Without an artifact to bound it (inspect, the server's check of an upload), the directory
    // is read as it comes: a header claiming 2^20 segments with none behind it is a truncated
    // patch, not a 12 MiB allocation.
    let mut patch = Cursor::new(&hostile[..HEADER_LEN + 5 * DIRECTORY_ENTRY_LEN]);
    let err = rustupdate_delta::read_header(&mut patch).unwrap_err();
    assert!(
        err.to_string()
            .contains("truncated in its segment directory"),
        "{err}"
    );
}

/// Any base: a patch made from the device's block index (no bytes of the base) copies what the
/// device holds and sends the rest; against another device's blocks it fails before any chunk.
#[test]
fn a_patch_from_a_block_index_rebuilds_the_target() {
    let c = case(7);
    let index = BlockIndex::of(&mut &c.base[..], c.base.len() as u64).unwrap();
    let index = BlockIndex::from_bytes(&index.to_bytes().unwrap()).unwrap();
    let patch = make_patch_against(&c.artifact, Base::Index(&index));
    let image = apply(&c.head, &patch, &c.base, &c.target).unwrap();
    assert!(image == c.target);
    assert!(
        patch.len() * 5 < c.artifact.len(),
        "patch {} bytes",
        patch.len()
    );
    let header = DeltaPayload::open(&c.head, Cursor::new(&patch), &c.base[..], false).unwrap();
    assert_eq!(
        header.header().base_sha256,
        [0; 32],
        "an index names no base image"
    );
    let other = fs_image(4 << 20, 77);
    let err = apply(&c.head, &patch, &other, &c.target).unwrap_err();
    assert!(err.is_delta(), "{err}");
}

#[test]
fn new_data_that_repeats_beyond_a_small_frame_is_framed_large() {
    // New data the base lacks, 1.5 MiB of random bytes twice in a row: in 1 MiB frames the
    // second copy is out of reach (about 3 MiB stored); the builder's 4 MiB frames find it.
    // One segment: the image holds no more data than the first segment's budget (4 MiB).
    let base = fs_image(4 << 20, 7);
    let mut target = base.clone();
    let new = rustupdate_testkit::pseudo_random(1536 << 10, 99);
    let at = 512 << 10;
    target[at..at + new.len()].copy_from_slice(&new);
    target[at + new.len()..at + 2 * new.len()].copy_from_slice(&new);
    let spec = ArtifactSpec {
        version: "2.0",
        ..Default::default()
    };
    let (head, body) = artifact_parts(&spec, &target, &options_one_segment(), &[&key(1)]);
    assert_eq!(head.manifest.payloads[0].segments.len(), 1);
    let mut artifact = head.to_bytes().unwrap();
    artifact.extend_from_slice(&body);
    let patch = make_patch(&artifact, &base);
    assert!(
        patch.len() < new.len() + (256 << 10),
        "patch {} bytes for {} new bytes repeated once",
        patch.len(),
        new.len()
    );
    let image = apply(&head, &patch, &base, &target).unwrap();
    assert!(image == target, "rebuilt image differs");
}

#[test]
fn changed_blocks_find_their_old_versions_far_from_the_prediction() {
    // 256 KiB of a file's old version sit 3 MiB into the base and stay there (copied); its new
    // version, one byte changed per 4 KiB block, is written near the start. The position
    // predicted from the last copy (256 KiB) is 2.75 MiB away and the old version is no unused
    // block: only the reference chosen by similarity holds it (else about 256 KiB stored).
    let mut base = fs_image(4 << 20, 7);
    let old_at = 3 << 20;
    let old = rustupdate_testkit::pseudo_random(256 << 10, 5);
    base[old_at..old_at + old.len()].copy_from_slice(&old);
    let mut target = base.clone();
    let new_at = 256 << 10;
    target[new_at..new_at + old.len()].copy_from_slice(&old);
    for block in target[new_at..new_at + old.len()].chunks_exact_mut(4096) {
        block[100] ^= 0x5a;
    }
    let spec = ArtifactSpec {
        version: "2.0",
        ..Default::default()
    };
    let (head, body) = artifact_parts(&spec, &target, &options_one_segment(), &[&key(1)]);
    let mut artifact = head.to_bytes().unwrap();
    artifact.extend_from_slice(&body);
    let patch = make_patch(&artifact, &base);
    assert!(
        patch.len() < 64 << 10,
        "patch {} bytes for 256 KiB of changed blocks whose old versions the base holds",
        patch.len()
    );
    let image = apply(&head, &patch, &base, &target).unwrap();
    assert!(image == target, "rebuilt image differs");
}

fn options_one_segment() -> BodyOptions {
    BodyOptions {
        format_version: 2,
        ..BodyOptions::default()
    }
}
