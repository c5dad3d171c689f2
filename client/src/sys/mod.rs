//! The real adapters behind the seams of `rustupdate-core`: files, block devices, the bootloader
//! environments, scripts, reboot, uptime and the fault injection used by the power-cut tests;
//! read-ahead advice for the delta's base (`advice`); the allocator's policy for large blocks
//! (`memory`);
//! and the client's process lock (`lock`), which no seam needs: it decides which process may run
//! the updater at all.

pub mod advice;
pub mod boot_entries;
pub mod boot_env;
pub mod fault;
pub mod lock;
pub mod memory;
pub mod reboot;
pub mod scripts;
pub mod slots;
pub mod state_file;
pub mod uptime;
pub mod zero;

use std::path::Path;

/// Writes `bytes` to `path` atomically: a temp file in the same directory, fsync, rename, fsync of
/// the directory. A power cut leaves either the old or the new file. `fault_name` names the
/// fault-injection points before and after the rename.
pub fn replace_file(path: &Path, bytes: &[u8], fault_name: &str) -> std::io::Result<()> {
    replace_file_from(path, &mut &bytes[..], fault_name)
}

/// [`replace_file`] with the content streamed from `content` (a kernel image need not fit in
/// memory).
pub fn replace_file_from(
    path: &Path,
    content: &mut dyn std::io::Read,
    fault_name: &str,
) -> std::io::Result<()> {
    let dir = parent_dir(path);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp"));
    {
        let mut file = std::fs::File::create(&tmp)?;
        std::io::copy(content, &mut file)?;
        file.sync_all()?;
    }
    fault::point(&format!("{fault_name}:before-rename"));
    rename_durably(&tmp, path)?;
    fault::point(&format!("{fault_name}:after-rename"));
    Ok(())
}

/// Renames `from` to `to` (in one directory) and makes the rename durable.
pub fn rename_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    sync_renamed(to)
}

/// Makes a rename to `to` durable.
pub fn sync_renamed(to: &Path) -> std::io::Result<()> {
    // vfat writes the renamed file's directory entry only with the file's inode: sync the file
    // under its new name as well (harmless elsewhere).
    std::fs::File::open(to)?.sync_all()?;
    // The rename is durable only once the directory entry is on disk.
    std::fs::File::open(parent_dir(to))?.sync_all()
}

/// Removes `path` and makes the removal durable (its directory synced), so that a power cut
/// right after cannot bring the file back.
pub fn remove_durably(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)?;
    std::fs::File::open(parent_dir(path))?.sync_all()
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
