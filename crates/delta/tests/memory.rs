//! What the applier allocates for a hostile patch: a program padded to its length limit (4 MiB
//! of stored bytes) is refused after one 64 KiB piece of it, not read into memory whole.
//!
//! The allocator counts the Rust heap of the test's own thread (zstd's C allocations are not
//! counted; a frame decoded into its final buffer gives zstd no window to allocate). The applier
//! runs on that thread (no hashing thread). Peak resident memory of the whole client is measured
//! by `bench/delta-bench.sh`; this test pins the one buffer a hostile length used to fill.

#![allow(unsafe_code)] // a counting global allocator
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a test failure

use rustupdate_delta::patch::{
    DIRECTORY_ENTRY_LEN, HEADER_LEN, MAX_FRAME_MEMORY, MAX_PROGRAM, MAX_PROGRAM_STORED,
};
use rustupdate_delta::{Base, BuildOptions, DeltaPayload, build_patch};
use rustupdate_format::builder::BodyOptions;
use rustupdate_testkit::{ArtifactSpec, artifact_parts, fs_image, key, next_release};
use rustupdate_verify::{ChunkSource, Keyring, SignaturePolicy, VerifiedArtifact};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;

struct Counting;

thread_local! {
    /// Bytes this thread holds, and the most it held since the last [`reset_peak`].
    static HELD: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

fn count(grow: usize, shrink: usize) {
    // `try_with`: allocations during the thread's teardown are not counted.
    let _ = HELD.try_with(|held| {
        let (now, peak) = held.get();
        let now = (now + grow).saturating_sub(shrink);
        held.set((now, peak.max(now)));
    });
}

/// Starts a measurement; returns the bytes held now.
fn reset_peak() -> usize {
    HELD.with(|held| {
        let (now, _) = held.get();
        held.set((now, now));
        now
    })
}

fn peak() -> usize {
    HELD.with(|held| held.get().1)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 0);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 0);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(0, layout.size());
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size, layout.size());
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn a_program_padded_to_its_limit_is_not_held_whole() {
    let base = fs_image(4 << 20, 11);
    let target = next_release(&base, 12);
    let options = BodyOptions {
        format_version: 2,
        segment_entries: Some(200),
        ..BodyOptions::default()
    };
    let (head, body) = artifact_parts(&ArtifactSpec::default(), &target, &options, &[&key(1)]);
    let mut artifact = head.to_bytes().unwrap();
    artifact.extend_from_slice(&body);
    let policy = SignaturePolicy::dangerous_accept_unsigned();
    let mut reader = VerifiedArtifact::open(&artifact[..], &Keyring::new(), &policy).unwrap();
    let mut payload = reader.next_payload().unwrap().unwrap();
    let mut patch = Vec::new();
    let build = BuildOptions {
        level: 3,
        ..BuildOptions::default()
    };
    let mut progress = |_, _| {};
    build_patch(
        &head,
        &mut payload,
        Base::Image(&base),
        &build,
        &mut patch,
        &mut progress,
    )
    .unwrap();

    // Segment 0's program, padded with junk after its frame to the stored limit.
    let segments = u32::from_le_bytes(patch[12..16].try_into().unwrap()) as usize;
    let program_len = u32::from_le_bytes(patch[HEADER_LEN..HEADER_LEN + 4].try_into().unwrap());
    let program_end = HEADER_LEN + segments * DIRECTORY_ENTRY_LEN + program_len as usize;
    let padding = (MAX_PROGRAM_STORED - program_len) as usize;
    let mut hostile = patch[..program_end].to_vec();
    hostile.extend(std::iter::repeat_n(0x5a, padding));
    hostile.extend_from_slice(&patch[program_end..]);
    hostile[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&MAX_PROGRAM_STORED.to_le_bytes());

    let before = reset_peak();
    let mut delta = DeltaPayload::open(&head, Cursor::new(&hostile), &base[..], false).unwrap();
    let err = delta.next_chunk().unwrap_err();
    let held = peak() - before;
    assert!(
        err.to_string()
            .contains("segment 0: the program does not decompress: bytes follow the frame"),
        "{err}"
    );
    // The frame buffer and the program's room are reserved whole (only what is written becomes
    // resident); everything else together stays under 1 MiB. Holding the padded program would
    // add its 4 MiB.
    let bound = MAX_FRAME_MEMORY + MAX_PROGRAM + (1 << 20);
    assert!(held < bound, "held {held} bytes, bound {bound}");

    // The patch as made applies, within the same bound.
    let before = reset_peak();
    let mut delta = DeltaPayload::open(&head, Cursor::new(&patch), &base[..], false).unwrap();
    let mut chunks = 0;
    while delta.next_chunk().unwrap().is_some() {
        chunks += 1;
    }
    let held = peak() - before;
    assert!(chunks > 0);
    assert!(held < bound, "held {held} bytes, bound {bound}");
}
