//! Checking a delta patch a release pipeline uploaded before it is offered: a clear patch must
//! rebuild its target from a base release the server holds; a sealed one (of an encrypted
//! release), which the server cannot open, is checked as far as its clear header and length go.

use crate::deltas::{JobFiles, bases_for, read_image};
use crate::store::ArtifactRow;
use rustupdate_delta::DeltaPayload;
use rustupdate_verify::{ChunkSource, Keyring, SignaturePolicy, VerifiedArtifact};
use std::io::BufReader;
use std::path::Path;

/// Checks a patch uploaded for `target`: it names a base image the server holds a release of,
/// and rebuilds the target from it, every chunk checked against the target's signed tables. A
/// sealed patch of an encrypted target, which the server cannot open, is checked as far as its
/// clear header and length go ([`check_sealed`]). The base release's id and the base image's
/// sha256, or why the patch is refused. Blocking.
pub fn check_uploaded(
    patch_path: &Path,
    target: &ArtifactRow,
    bases: &[ArtifactRow],
    files: &JobFiles,
    keyring: &Keyring,
) -> Result<(i64, String), String> {
    let mut patch =
        std::fs::File::open(patch_path).map_err(|e| format!("reopening the upload: {e}"))?;
    let (fixed, count) = rustupdate_delta::read_fixed_header(&mut patch)
        .map_err(|e| format!("not a delta patch: {e}"))?;
    if fixed.base_sha256 == [0; 32] {
        return Err(
            "the patch was made from a device's block index and names no base image; \
                    the server offers patches from known bases only"
                .into(),
        );
    }
    let base_sha256 = rustupdate_format::Sha256Hex(fixed.base_sha256).to_string();
    let base = bases_for(target, bases)
        .into_iter()
        .find(|b| b.image_sha256.as_deref() == Some(base_sha256.as_str()))
        .ok_or_else(|| {
            format!(
                "the server holds no release of the patch's base image {base_sha256} for a \
                 device type of artifact {}: it cannot check the patch",
                target.id
            )
        })?;
    let file = std::fs::File::open(files.artifacts_dir.join(&target.sha256))
        .map_err(|e| format!("opening the target artifact: {e}"))?;
    let policy = SignaturePolicy::threshold(1).map_err(|e| e.to_string())?;
    let artifact =
        VerifiedArtifact::open(BufReader::with_capacity(1 << 20, file), keyring, &policy)
            .map_err(|e| format!("target artifact: {e}"))?;
    let wrong = |e: &dyn std::fmt::Display| {
        format!(
            "the patch does not rebuild artifact {} ({} {}) from base image {base_sha256}: {e}",
            target.id, target.name, target.version
        )
    };
    if artifact.head().is_encrypted() || fixed.sealed {
        let len = patch
            .metadata()
            .map_err(|e| format!("reopening the upload: {e}"))?
            .len();
        check_sealed(artifact.head(), &fixed, count, len).map_err(|e| wrong(&e))?;
        return Ok((base.id, base_sha256));
    }
    let image = read_image(
        &files.artifacts_dir.join(&base.sha256),
        files.max_image_bytes,
    )?;
    let mut rebuilt =
        DeltaPayload::open(artifact.head(), patch, &image[..], false).map_err(|e| wrong(&e))?;
    while rebuilt.next_chunk().map_err(|e| wrong(&e))?.is_some() {}
    Ok((base.id, base_sha256))
}

/// What the server can check of a sealed patch (of an encrypted release) without the content
/// key: the target is encrypted, the clear header names it and its segment count, and the
/// sealed bytes are whole sealed blocks. Devices check every chunk they rebuild anyway.
fn check_sealed(
    head: &rustupdate_format::Head,
    fixed: &rustupdate_delta::PatchHeader,
    count: u32,
    len: u64,
) -> Result<(), String> {
    use rustupdate_delta::patch::manifest_id;
    if !head.is_encrypted() {
        return Err("a sealed patch for a clear artifact".into());
    }
    if !fixed.sealed {
        return Err("a clear patch for an encrypted artifact (its patches are sealed)".into());
    }
    if fixed.target_manifest_sha256 != manifest_id(&head.manifest_bytes) {
        return Err("the patch was made for another artifact".into());
    }
    let segments = head
        .manifest
        .payloads
        .first()
        .map_or(0, |p| p.segments.len());
    if count as usize != segments {
        return Err(format!(
            "the patch has {count} segments, the artifact {segments}"
        ));
    }
    if !rustupdate_delta::is_sealed_patch_len(len) {
        return Err(format!("{len} bytes are no sealed patch (cut short)"));
    }
    Ok(())
}
