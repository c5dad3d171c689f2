//! Opening a patch: its header and segment directory read and checked against the target
//! artifact, and a sealed patch (of an encrypted release) opened with the release's content key,
//! so that the applier reads either kind the same way ([`PatchReader`]). [`seal_patch`] makes a
//! sealed patch of a clear one.

use crate::patch::{
    DIRECTORY_ENTRY_LEN, HEADER_LEN, PatchHeader, SEALED_PATCH_VERSION, manifest_id,
};
use rustupdate_format::Head;
use rustupdate_seal::{ContentKey, SealedFile};
use rustupdate_verify::Error;
use std::io::{self, Read, Seek, SeekFrom, Write};

pub(crate) fn delta(reason: impl Into<String>) -> Error {
    Error::Delta(reason.into())
}

/// Reads a clear patch's header and segment directory (of up to `MAX_SEGMENTS` entries: where
/// the artifact is known, [`open_patch`] bounds it by the artifact instead). A sealed patch's
/// directory is sealed: only its fixed header can be read without the key
/// ([`read_fixed_header`]).
pub fn read_header<P: Read + Seek>(patch: &mut P) -> Result<PatchHeader, Error> {
    let (header, count) = read_fixed_header(patch)?;
    if header.sealed {
        return Err(delta(
            "the patch is sealed (a patch of an encrypted release): its directory opens only \
             with the release's content key",
        ));
    }
    read_directory(patch, header, count)
}

/// Reads the fixed header alone (clear in a sealed patch too): the header with an empty
/// directory, and the directory's entry count.
pub fn read_fixed_header<P: Read + Seek>(patch: &mut P) -> Result<(PatchHeader, u32), Error> {
    patch.seek(SeekFrom::Start(0)).map_err(header_io)?;
    let mut fixed = [0u8; HEADER_LEN];
    patch.read_exact(&mut fixed).map_err(header_io)?;
    PatchHeader::from_fixed(&fixed).map_err(delta)
}

fn header_io(err: io::Error) -> Error {
    delta(format!("reading the patch header: {err}"))
}

/// Reads the header and segment directory of a patch for the artifact `head` from a clear patch
/// or an opened sealed one, refusing one made for another artifact or with another segment count
/// before the directory is read: a hostile header claiming a million segments costs nothing
/// instead of a directory of 12 MiB and its 16 MiB decoded.
pub fn read_header_for<P: Read + Seek>(patch: &mut P, head: &Head) -> Result<PatchHeader, Error> {
    let segments = head
        .manifest
        .payloads
        .first()
        .map_or(0, |p| p.segments.len());
    let (header, count) = read_fixed_header(patch)?;
    if header.target_manifest_sha256 != manifest_id(&head.manifest_bytes) {
        return Err(delta("the patch was made for another artifact"));
    }
    if count as usize != segments {
        return Err(delta(format!(
            "the patch has {count} segments, the artifact {segments}"
        )));
    }
    read_directory(patch, header, count)
}

fn read_directory<P: Read>(
    patch: &mut P,
    mut header: PatchHeader,
    count: u32,
) -> Result<PatchHeader, Error> {
    // Read as it comes rather than allocated at the size the header claims: where no artifact
    // bounds the count (`read_header`), a hostile count costs only the bytes the patch holds.
    let len = count as usize * DIRECTORY_ENTRY_LEN;
    let mut directory = Vec::new();
    let read = patch
        .take(len as u64)
        .read_to_end(&mut directory)
        .map_err(header_io)?;
    if read != len {
        return Err(delta(format!(
            "the patch is truncated in its segment directory ({read} of {len} bytes)"
        )));
    }
    header.read_directory(&directory, count).map_err(delta)?;
    Ok(header)
}

/// A patch as the applier reads it: clear, or sealed and opened block by block.
#[derive(Debug)]
pub enum PatchReader<P> {
    Clear(P),
    Sealed(SealedFile<P>),
}

impl<P: Read + Seek> PatchReader<P> {
    /// Bytes of the patch as the applier sees it (a sealed patch: opened).
    pub fn patch_len(&mut self) -> io::Result<u64> {
        match self {
            PatchReader::Clear(patch) => patch.seek(SeekFrom::End(0)),
            PatchReader::Sealed(patch) => Ok(patch.len()),
        }
    }
}

impl<P: Read + Seek> Read for PatchReader<P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            PatchReader::Clear(patch) => patch.read(buf),
            PatchReader::Sealed(patch) => patch.read(buf),
        }
    }
}

impl<P: Read + Seek> Seek for PatchReader<P> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match self {
            PatchReader::Clear(patch) => patch.seek(to),
            PatchReader::Sealed(patch) => patch.seek(to),
        }
    }
}

/// Opens `patch` for the artifact `head` and reads its header: a clear patch for a clear
/// artifact, a sealed one for an encrypted artifact, whose content key (`key`, unwrapped by the
/// caller with its recipient key) opens it.
pub fn open_patch<P: Read + Seek>(
    mut patch: P,
    head: &Head,
    key: Option<&ContentKey>,
) -> Result<(PatchReader<P>, PatchHeader), Error> {
    let (fixed, _) = read_fixed_header(&mut patch)?;
    let mut reader = match (head.is_encrypted(), fixed.sealed, key) {
        (false, false, _) => PatchReader::Clear(patch),
        (true, true, Some(key)) => PatchReader::Sealed(
            SealedFile::open(patch, key, HEADER_LEN)
                .map_err(|err| delta(format!("the sealed patch: {err}")))?,
        ),
        (true, true, None) => {
            return Err(delta(
                "the artifact is encrypted: its patch opens only with its content key",
            ));
        }
        (true, false, _) => {
            return Err(delta(
                "a clear patch for an encrypted artifact (its patches are sealed)",
            ));
        }
        (false, true, _) => return Err(delta("a sealed patch for a clear artifact")),
    };
    let header = read_header_for(&mut reader, head)?;
    Ok((reader, header))
}

/// Seals the clear patch `patch` (of the encrypted artifact whose content key is `key`) into
/// `out`: its fixed header in clear as version 2, the rest sealed. Returns the bytes written.
pub fn seal_patch<W: Write>(key: &ContentKey, patch: &[u8], out: &mut W) -> Result<u64, Error> {
    let fixed: &[u8; HEADER_LEN] = patch
        .get(..HEADER_LEN)
        .and_then(|f| f.try_into().ok())
        .ok_or_else(|| delta("the patch is shorter than its header"))?;
    let (header, _) = PatchHeader::from_fixed(fixed).map_err(delta)?;
    if header.sealed {
        return Err(delta("the patch is sealed already"));
    }
    let mut sealed_fixed = *fixed;
    sealed_fixed[8..10].copy_from_slice(&SEALED_PATCH_VERSION.to_le_bytes());
    rustupdate_seal::seal_file(key, &sealed_fixed, &patch[HEADER_LEN..], out)
        .map_err(|err| delta(format!("sealing the patch: {err}")))
}

/// Whether `len` bytes can be a whole sealed patch (header, salt, whole sealed blocks): all that
/// can be checked of its body without the content key.
pub fn is_sealed_patch_len(len: u64) -> bool {
    len.checked_sub((HEADER_LEN + rustupdate_seal::SALT_LEN) as u64)
        .and_then(rustupdate_format::encryption::opened_len)
        .is_some_and(|n| n > 0)
}
