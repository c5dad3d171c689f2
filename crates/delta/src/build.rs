//! Making a patch: which chunks of the target a base already holds, and the rest compressed
//! against the parts of the base the target no longer uses.
//!
//! 1. Index the base: the sha256 of every 4 KiB block at a 4 KiB offset (the ext4 block size,
//!    the granule at which files move between releases).
//! 2. Walk the target's chunks: a data chunk the base holds becomes a copy; one it lacks becomes a
//!    literal. Only chunks of 4 KiB can be copies (other sizes are sent as literals).
//! 3. Literals are grouped into frames of at most [`MAX_LITERAL_FRAME`] bytes. Each frame is
//!    compressed with zstd against a reference prefix of at most [`MAX_REFERENCE`] bytes: the base
//!    blocks no copy uses (old versions of changed files), around where the literals' neighbours
//!    came from. `mkfs.ext4 -d` lays files out in traversal order, so a changed file's old
//!    version sits near the position predicted from the last copied block before it. Each shape
//!    is also tried with the base blocks most like the frame's content as its reference, wherever
//!    they are (`similar`: old versions the new image wrote in another order). Against an image
//!    each segment is encoded in every [`FrameShape`] of `IMAGE_SHAPES` and the smallest kept:
//!    small frames with much reference suit changed files, large frames with little reference
//!    suit new ones.
//!
//! Pure: the base is a byte slice, the target comes as verified chunks, the patch goes to a
//! writer. Memory is the base index, the similarity index (a quarter of the base's data), the
//! target's literal bytes and the finished patch.

use crate::index::{BLOCK, BlockIndex, BlockKey, block_key};
use crate::patch::{
    MAX_FRAME_MEMORY, MAX_LITERAL_FRAME, MAX_REFERENCE, MAX_WINDOW_LOG, Op, PatchHeader, Range,
    encode_program, manifest_id,
};
use crate::similar::SimilarityIndex;
use rustupdate_format::{Head, TableLayout};
use rustupdate_verify::{ChunkData, ChunkSource};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;

#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// zstd level of literal frames and programs.
    pub level: i32,
    /// How far around a literal's predicted base position reference blocks are taken from.
    pub reference_radius: u64,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            level: 19,
            reference_radius: 1 << 20,
        }
    }
}

/// What a patch holds, for `inspect` and the benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchStats {
    pub patch_bytes: u64,
    pub program_bytes: u64,
    pub literal_stored_bytes: u64,
    pub copied_chunks: u64,
    pub copied_bytes: u64,
    pub literal_chunks: u64,
    pub literal_bytes: u64,
    pub frames: u64,
}

/// What the patch is made against.
#[derive(Debug, Clone, Copy)]
pub enum Base<'a> {
    /// The base image itself (a known base): copies by content, literals compressed against the
    /// image's blocks the target no longer uses.
    Image(&'a [u8]),
    /// A device's index of its blocks (any base): copies by the blocks' hashes, literals compressed
    /// on their own, in frames of up to 4 MiB.
    Index(&'a BlockIndex),
}

impl Base<'_> {
    fn size(&self) -> u64 {
        match self {
            Base::Image(bytes) => bytes.len() as u64,
            Base::Index(index) => index.size(),
        }
    }
}

/// How literals are cut into frames: the most content a frame holds and the most base reference
/// beside it (together within the device's [`MAX_FRAME_MEMORY`]).
#[derive(Debug, Clone, Copy)]
struct FrameShape {
    content: usize,
    reference: usize,
    /// A frame also ends where its literals' reference would outgrow `reference` (else the
    /// blocks nearest the middle of their predictions are taken).
    split_on_reference: bool,
    /// Where the reference blocks come from.
    reference_from: ReferenceFrom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReferenceFrom {
    /// The base blocks no copy uses, around the literals' predicted positions.
    Prediction,
    /// The base blocks most like the frame's content, wherever they are ([`SimilarityIndex`]),
    /// topped up as [`ReferenceFrom::Prediction`] does.
    Similarity,
}

/// Against an image. 1 MiB of content with 4 MiB of reference is best where the changed files'
/// old versions are in the base (the security update); 4 MiB frames with 1 MiB of reference
/// where the new data has little there (a package addition: zstd finds more in a longer frame).
/// Each with the reference by prediction and by similarity.
const IMAGE_SHAPES: [FrameShape; 4] = [
    FrameShape {
        content: 1 << 20,
        reference: MAX_REFERENCE,
        split_on_reference: true,
        reference_from: ReferenceFrom::Prediction,
    },
    FrameShape {
        content: MAX_LITERAL_FRAME,
        reference: MAX_FRAME_MEMORY - MAX_LITERAL_FRAME,
        split_on_reference: false,
        reference_from: ReferenceFrom::Prediction,
    },
    FrameShape {
        content: 1 << 20,
        reference: MAX_REFERENCE,
        split_on_reference: false,
        reference_from: ReferenceFrom::Similarity,
    },
    FrameShape {
        content: MAX_LITERAL_FRAME,
        reference: MAX_FRAME_MEMORY - MAX_LITERAL_FRAME,
        split_on_reference: false,
        reference_from: ReferenceFrom::Similarity,
    },
];
/// Against an index: no reference, the whole frame budget for content.
const INDEX_SHAPES: [FrameShape; 1] = [FrameShape {
    content: MAX_LITERAL_FRAME,
    reference: 0,
    split_on_reference: false,
    reference_from: ReferenceFrom::Prediction,
}];

enum Item {
    Zero(u64),
    Copy {
        offset: u64,
        size: u32,
    },
    Literal {
        start: usize,
        size: u32,
        predicted: u64,
    },
}

/// Why [`build_patch`] made no patch. Callers branch on [`BuildError::Write`] (the writer's
/// own error, e.g. a size limit, is inside the `io::Error`); the rest is text for a person.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The target cannot be patched (not format version 2, no payload, a layout mismatch).
    #[error("{0}")]
    Target(String),
    /// Reading the target artifact's chunks failed their checks.
    #[error(transparent)]
    Read(#[from] rustupdate_verify::Error),
    /// zstd refused a program or a literal frame.
    #[error("{0}")]
    Compress(String),
    /// `out` refused the patch.
    #[error("writing the patch: {0}")]
    Write(std::io::Error),
}

/// Makes a patch that rebuilds the first payload of the format version 2 artifact `head` (its
/// chunks come from `target`) from `base`, and writes it to `out`. `progress` is told the image
/// bytes read so far and the total.
pub fn build_patch<W: Write>(
    head: &Head,
    target: &mut dyn ChunkSource,
    base: Base<'_>,
    options: &BuildOptions,
    out: &mut W,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PatchStats, BuildError> {
    if head.layout() != TableLayout::Framed {
        return Err(BuildError::Target(
            "patches rebuild format version 2 artifacts; rebuild the target with \
                    --format-version 2"
                .into(),
        ));
    }
    let payload = head
        .manifest
        .payloads
        .first()
        .ok_or_else(|| BuildError::Target("the artifact has no payload".into()))?;
    let index = match base {
        Base::Image(bytes) => index_image(bytes),
        Base::Index(index) => index_keys(index),
    };
    let base_size = base.size();
    let mut used = vec![false; base_size.div_ceil(BLOCK as u64) as usize];
    let mut literals: Vec<u8> = Vec::new();
    let mut segments: Vec<Vec<Item>> = vec![Vec::new()];
    let mut stats = PatchStats::default();
    // Where the last copied chunk sits in the target and in the base: literals after it are
    // expected near the same distance from it in the base.
    let mut last_copy = (0u64, 0u64);
    while let Some(chunk) = target.next_chunk()? {
        let offset = chunk.offset;
        let item = match chunk.data {
            ChunkData::Zeros(size) => Item::Zero(size),
            ChunkData::Bytes(bytes) => {
                let size = bytes.len() as u32;
                let key = block_key(bytes);
                // Against an image the block is compared too (an 8-byte key could collide);
                // against an index the device's check of the rebuilt table is the safeguard.
                let held = |at: &&u64| match base {
                    Base::Image(image) => image[**at as usize..**at as usize + BLOCK] == *bytes,
                    Base::Index(_) => true,
                };
                match index
                    .get(&key)
                    .filter(|_| bytes.len() == BLOCK)
                    .filter(held)
                {
                    Some(&at) => {
                        used[(at / BLOCK as u64) as usize] = true;
                        last_copy = (offset, at);
                        stats.copied_chunks += 1;
                        stats.copied_bytes += u64::from(size);
                        Item::Copy { offset: at, size }
                    }
                    None => {
                        let start = literals.len();
                        literals.extend_from_slice(bytes);
                        stats.literal_chunks += 1;
                        stats.literal_bytes += u64::from(size);
                        let predicted = (last_copy.1 + (offset - last_copy.0)).min(base_size);
                        Item::Literal {
                            start,
                            size,
                            predicted,
                        }
                    }
                }
            }
        };
        progress(offset + chunk_len(&item), payload.size);
        if let Some(current) = segments.last_mut() {
            current.push(item);
        }
        if target.segment_end().is_some() {
            segments.push(Vec::new());
        }
    }
    if segments.len() != payload.segments.len() {
        return Err(BuildError::Target(format!(
            "read {} segments, the manifest lists {}",
            segments.len(),
            payload.segments.len()
        )));
    }
    // Base blocks that hold data no copy uses: the old versions of what changed. Only an image
    // has bytes to compress against.
    let (image, unused, similarity, shapes): (&[u8], Vec<u64>, _, &[FrameShape]) = match base {
        Base::Image(image) => {
            let unused = (0..used.len())
                .filter(|&block| !used[block])
                .map(|block| (block * BLOCK) as u64)
                .filter(|&at| {
                    let end = (at as usize + BLOCK).min(image.len());
                    image[at as usize..end].iter().any(|b| *b != 0)
                })
                .collect();
            let similarity = SimilarityIndex::of_image(image);
            (image, unused, Some(similarity), &IMAGE_SHAPES)
        }
        Base::Index(_) => (&[], Vec::new(), None, &INDEX_SHAPES),
    };

    let references = References {
        base: image,
        unused: &unused,
        similarity: similarity.as_ref(),
    };
    let mut directory = Vec::with_capacity(segments.len());
    let mut bodies = Vec::with_capacity(segments.len());
    for items in &segments {
        // Every shape when there are literals to frame (else they all make the same program).
        let has_literals = items
            .iter()
            .any(|item| matches!(item, Item::Literal { .. }));
        // The first shape, then each other one kept where it is smaller (the shape lists are
        // constants, never empty).
        let (first, others) = (shapes[0], if has_literals { &shapes[1..] } else { &[] });
        let encode = |shape: FrameShape| -> Result<EncodedSegment, BuildError> {
            let (program, frames) = encode_segment(items, &literals, &references, shape, options)
                .map_err(BuildError::Compress)?;
            let program = zstd::bulk::compress(&program, options.level)
                .map_err(|e| BuildError::Compress(e.to_string()))?;
            let len = program.len() as u64 + frames.iter().map(|f| f.len() as u64).sum::<u64>();
            Ok(EncodedSegment {
                program,
                frames,
                len,
            })
        };
        let mut best = encode(first)?;
        for shape in others {
            let tried = encode(*shape)?;
            if tried.len < best.len {
                best = tried;
            }
        }
        let EncodedSegment {
            program, frames, ..
        } = best;
        let literal_len: u64 = frames.iter().map(|f| f.len() as u64).sum();
        stats.program_bytes += program.len() as u64;
        stats.literal_stored_bytes += literal_len;
        stats.frames += frames.len() as u64;
        directory.push((program.len() as u32, literal_len));
        bodies.push((program, frames));
    }
    let header = PatchHeader {
        target_manifest_sha256: manifest_id(&head.manifest_bytes),
        // All zero: made against an index, whose device has no single image to name.
        base_sha256: match base {
            Base::Image(image) => Sha256::digest(image).into(),
            Base::Index(_) => [0; 32],
        },
        base_size,
        segments: directory,
        sealed: false,
    };
    let io = BuildError::Write;
    out.write_all(&header.to_bytes()).map_err(io)?;
    for (program, frames) in &bodies {
        out.write_all(program).map_err(io)?;
        for frame in frames {
            out.write_all(frame).map_err(io)?;
        }
    }
    stats.patch_bytes = header.patch_len();
    Ok(stats)
}

fn chunk_len(item: &Item) -> u64 {
    match item {
        Item::Zero(size) => *size,
        Item::Copy { size, .. } | Item::Literal { size, .. } => u64::from(*size),
    }
}

/// The key of every non-zero 4 KiB block of an image, first offset kept.
fn index_image(base: &[u8]) -> HashMap<BlockKey, u64> {
    let mut index = HashMap::with_capacity(base.len() / BLOCK / 2);
    for (i, block) in base.chunks_exact(BLOCK).enumerate() {
        if block.iter().all(|b| *b == 0) {
            continue;
        }
        index.entry(block_key(block)).or_insert((i * BLOCK) as u64);
    }
    index
}

/// A device's index as a map, first offset kept (zero blocks are never copied: zero runs are
/// rebuilt as such).
fn index_keys(index: &BlockIndex) -> HashMap<BlockKey, u64> {
    let zero = block_key(&[0u8; BLOCK]);
    let mut map = HashMap::with_capacity(index.keys.len() / 2);
    for (i, key) in index.keys.iter().enumerate() {
        if *key != zero {
            map.entry(*key).or_insert((i * BLOCK) as u64);
        }
    }
    map
}

/// One segment in one frame shape: its compressed program, its literal frames, their length.
struct EncodedSegment {
    program: Vec<u8>,
    frames: Vec<Vec<u8>>,
    len: u64,
}

/// What literal frames may take their reference from.
struct References<'a> {
    base: &'a [u8],
    /// Offsets of the base blocks that hold data no copy uses, in order.
    unused: &'a [u64],
    /// Against an image only.
    similarity: Option<&'a SimilarityIndex>,
}

/// One segment's operations and its compressed literal frames.
fn encode_segment(
    items: &[Item],
    literals: &[u8],
    references: &References<'_>,
    shape: FrameShape,
    options: &BuildOptions,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    let (base, unused) = (references.base, references.unused);
    // Group the literals into frames.
    let lits: Vec<(usize, u32, u64)> = items
        .iter()
        .filter_map(|item| match *item {
            Item::Literal {
                start,
                size,
                predicted,
            } => Some((start, size, predicted)),
            _ => None,
        })
        .collect();
    let cap_blocks = shape.reference / BLOCK;
    let radius = options.reference_radius;
    let window = |lo: u64, hi: u64| {
        let a = unused.partition_point(|&at| at < lo.saturating_sub(radius));
        let b = unused.partition_point(|&at| at <= hi.saturating_add(radius));
        (a, b)
    };
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    let mut first = 0;
    let (mut lo, mut hi, mut content) = (u64::MAX, 0u64, 0usize);
    for (i, &(_, size, predicted)) in lits.iter().enumerate() {
        let (new_lo, new_hi) = (lo.min(predicted), hi.max(predicted));
        let (a, b) = window(new_lo, new_hi);
        let full = content + size as usize > shape.content
            || (shape.split_on_reference && b - a > cap_blocks);
        if i > first && full {
            groups.push(first..i);
            first = i;
            (lo, hi, content) = (predicted, predicted, size as usize);
        } else {
            (lo, hi, content) = (new_lo, new_hi, content + size as usize);
        }
    }
    if first < lits.len() {
        groups.push(first..lits.len());
    }

    // Compress each frame against its reference.
    let mut frame_ops = Vec::with_capacity(groups.len());
    let mut frames = Vec::with_capacity(groups.len());
    for group in &groups {
        let members = &lits[group.clone()];
        let lo = members.iter().map(|m| m.2).min().unwrap_or(0);
        let hi = members.iter().map(|m| m.2).max().unwrap_or(0);
        let (mut a, mut b) = window(lo, hi);
        if b - a > cap_blocks {
            // Too many candidates: the ones nearest the middle of the predictions.
            let middle = unused.partition_point(|&at| at < lo / 2 + hi / 2);
            a = middle.saturating_sub(cap_blocks / 2).max(a);
            b = (a + cap_blocks).min(b);
        }
        let blocks = match references.similarity {
            Some(index) if shape.reference_from == ReferenceFrom::Similarity => {
                let content = members
                    .iter()
                    .map(|&(start, size, _)| &literals[start..start + size as usize]);
                let mut blocks = index.similar_blocks(content, cap_blocks);
                // Room left: the unused blocks around the predictions, as the other choice.
                for &at in &unused[a..b] {
                    if blocks.len() >= cap_blocks {
                        break;
                    }
                    if let Err(pos) = blocks.binary_search(&at) {
                        blocks.insert(pos, at);
                    }
                }
                blocks
            }
            _ => unused[a..b].to_vec(),
        };
        let reference = coalesce(&blocks, base.len() as u64);
        let mut prefix = Vec::with_capacity(blocks.len() * BLOCK);
        for range in &reference {
            prefix.extend_from_slice(
                &base[range.offset as usize..(range.offset + range.len) as usize],
            );
        }
        let mut content = Vec::new();
        for &(start, size, _) in members {
            content.extend_from_slice(&literals[start..start + size as usize]);
        }
        let stored = compress_with_reference(&prefix, &content, options.level)?;
        frame_ops.push(Op::Frame {
            reference,
            stored: stored.len() as u32,
            content: content.len() as u32,
        });
        frames.push(stored);
    }

    // The program: one operation per entry, each frame in front of its first literal.
    let mut ops = Vec::with_capacity(items.len() + frame_ops.len());
    let mut literal_index = 0;
    let mut frame_ops = frame_ops.into_iter();
    let starts: Vec<usize> = groups.iter().map(|g| g.start).collect();
    for item in items {
        let op = match *item {
            Item::Zero(size) => Op::Zero { size },
            Item::Copy { offset, size } => Op::Copy { offset, size },
            Item::Literal { size, .. } => {
                if starts.contains(&literal_index)
                    && let Some(frame) = frame_ops.next()
                {
                    ops.push(frame);
                }
                literal_index += 1;
                Op::Literal { size }
            }
        };
        ops.push(op);
    }
    Ok((encode_program(&ops), frames))
}

/// Consecutive blocks as ranges (the last block of the base may be short).
fn coalesce(blocks: &[u64], base_len: u64) -> Vec<Range> {
    let mut ranges: Vec<Range> = Vec::new();
    for &at in blocks {
        let len = (BLOCK as u64).min(base_len - at);
        match ranges.last_mut() {
            Some(last) if last.offset + last.len == at => last.len += len,
            _ => ranges.push(Range { offset: at, len }),
        }
    }
    ranges
}

/// zstd with `reference` as prefix ("patch-from"), within the window a device accepts.
fn compress_with_reference(
    reference: &[u8],
    content: &[u8],
    level: i32,
) -> Result<Vec<u8>, String> {
    use zstd::stream::raw::CParameter;
    use zstd::zstd_safe::CCtx;
    let err = |code: usize| format!("zstd: {}", zstd::zstd_safe::get_error_name(code));
    let mut cctx = CCtx::create();
    cctx.set_parameter(CParameter::CompressionLevel(level))
        .map_err(err)?;
    cctx.set_parameter(CParameter::WindowLog(MAX_WINDOW_LOG))
        .map_err(err)?;
    cctx.set_parameter(CParameter::ChecksumFlag(false))
        .map_err(err)?;
    cctx.ref_prefix(reference).map_err(err)?;
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(content.len()));
    cctx.compress2(&mut out, content).map_err(err)?;
    Ok(out)
}
