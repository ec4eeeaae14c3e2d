//! The I/O seam: every file and directory operation wharf performs goes through [`Vfs`] and
//! [`VfsFile`], so a simulated disk can stand in for the real one in crash tests.
//!
//! The hot paths do not pay for the indirection: appends are `memcpy`s into a mapping obtained
//! once per segment ([`VfsFile::map`]), and only syncs, opens and reads of whole chunks cross
//! the trait object.
//!
//! Contract an implementation must keep (the log relies on it):
//! - `sync_data` makes every byte written so far (through `write_all_at` or through a mapping
//!   of the file) durable; if it fails, the bytes may be lost and the error is reported once.
//! - a mapping covers `[0, len)` of the file as it was when mapped; callers never shrink a
//!   file below a position they still touch through a mapping.
//! - `sync_dir` makes creates, renames and removes in that directory durable.
//! - `lock` fails with `io::ErrorKind::WouldBlock` while another lock on the path is held,
//!   from this process or another.

#[cfg(test)]
pub(crate) mod faulty;
#[cfg(test)]
pub(crate) mod sim;
mod std_fs;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) use std_fs::StdVfs;

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; the file must not exist.
    CreateNew,
    /// Read and write; created if missing, truncated to zero if present.
    CreateTruncate,
}

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub(crate) struct DirEntry {
    pub name: String,
    pub is_dir: bool,
}

/// A file system.
pub(crate) trait Vfs: Send + Sync + fmt::Debug {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Entries whose names are valid UTF-8; others are skipped (wharf never creates them).
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    fn exists(&self, path: &Path) -> io::Result<bool>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Takes an exclusive advisory lock on `path` (creating the file), held until the returned
    /// guard drops; dies with the process.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>>;

    /// Bytes free for this process on the file system holding `path`. Implementations
    /// without a notion of it report no limit.
    fn available_space(&self, path: &Path) -> io::Result<u64> {
        let _ = path;
        Ok(u64::MAX)
    }

    /// The total size of the files under `path`, recursively.
    fn dir_usage(&self, path: &Path) -> io::Result<u64> {
        let mut total = 0u64;
        for entry in self.read_dir(path)? {
            let child = path.join(&entry.name);
            total = total.saturating_add(if entry.is_dir {
                match self.dir_usage(&child) {
                    Ok(bytes) => bytes,
                    // Removed meanwhile.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                    Err(e) => return Err(e),
                }
            } else {
                match self.open(&child, OpenMode::Read) {
                    Ok(file) => file.len()?,
                    // Removed meanwhile.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                    Err(e) => return Err(e),
                }
            });
        }
        Ok(total)
    }
}

/// Holds a lock taken by [`Vfs::lock`] until dropped.
pub(crate) trait LockGuard: Send + Sync + fmt::Debug {}

/// An open file.
pub(crate) trait VfsFile: Send + Sync + fmt::Debug {
    fn path(&self) -> &Path;
    fn len(&self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `pos`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Reserves disk space for `[0, len)` and grows the file to at least `len`, so writes (and
    /// mapped writes) below `len` cannot fail for lack of space.
    fn allocate(&self, len: u64) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
    fn sync_all(&self) -> io::Result<()>;
    /// Maps `[0, len)` of the file, shared with the file's page cache. `writable` needs a file
    /// opened for writing.
    fn map(&self, len: usize, writable: bool) -> io::Result<Box<dyn RawMap>>;

    /// Reads exactly `buf.len()` bytes at `pos`, failing with `UnexpectedEof` if the file is
    /// shorter.
    fn read_exact_at(&self, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, pos) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads from `pos` to `pos + buf.len()` or the end of the file, whichever comes first;
    /// returns the number of bytes read.
    fn read_up_to(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.read_at(&mut buf[filled..], pos + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}

/// A mapping: a raw pointer and a length, valid until dropped. Only `log::mmap` dereferences
/// the pointer.
pub(crate) trait RawMap: Send + Sync + fmt::Debug {
    fn as_mut_ptr(&self) -> *mut u8;
    fn len(&self) -> usize;
    /// Faults `[offset, offset + len)` in for writing ahead of use, without changing its
    /// contents (`MADV_POPULATE_WRITE`). Only a performance hint: implementations that cannot
    /// may do nothing.
    fn populate_write(&self, offset: usize, len: usize) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
}

/// Writes `data` to `path` atomically: a temporary file, sync, rename, sync of the directory.
/// After a crash the file holds either its old contents or `data`, never a mix.
pub(crate) fn write_atomic(vfs: &dyn Vfs, path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    let file = vfs.open(&tmp, OpenMode::CreateTruncate)?;
    file.write_all_at(data, 0)?;
    file.sync_all()?;
    drop(file);
    vfs.rename(&tmp, path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    vfs.sync_dir(dir)
}

/// Creates directory `path` and any missing parents, then syncs the parent of each directory
/// it created, top down, so that none of them can vanish in a power loss: a new directory
/// entry is durable only once its own parent is synced, and syncing only the last parent
/// leaves the others at risk.
pub(crate) fn create_dir_all_synced(vfs: &dyn Vfs, path: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(path);
    while let Some(dir) = at.filter(|d| !d.as_os_str().is_empty()) {
        if vfs.exists(dir)? {
            break;
        }
        missing.push(dir);
        at = dir.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    vfs.create_dir_all(path)?;
    for dir in missing.iter().rev() {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        vfs.sync_dir(parent)?;
    }
    Ok(())
}

/// The temporary name used while `path` is being replaced. Recovery removes leftovers.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

/// Suffix of temporary files; any file ending in it is removed on open.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Whether `e` says the process (`EMFILE`) or the system (`ENFILE`) has no file descriptor
/// left. Only calls that open something fail so: a sync that fails with it never ran, so
/// nothing was lost and it may be tried again once descriptors are free (unlike a failed
/// `fsync`, which is never retried).
pub(crate) fn is_out_of_descriptors(e: &io::Error) -> bool {
    // ENFILE and EMFILE on Linux and the BSDs.
    matches!(e.raw_os_error(), Some(23 | 24))
}
