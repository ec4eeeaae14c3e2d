//! [`StdVfs`]: the real file system, through `std::fs`, `fs2` (allocation and locks) and
//! `memmap2` (mappings).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fs2::FileExt;
use memmap2::{MmapOptions, MmapRaw};

use super::{DirEntry, LockGuard, OpenMode, RawMap, Vfs, VfsFile};

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StdVfs;

impl Vfs for StdVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        let mut options = OpenOptions::new();
        options.read(true);
        match mode {
            OpenMode::Read => {}
            OpenMode::ReadWrite => {
                options.write(true);
            }
            OpenMode::CreateNew => {
                options.write(true).create_new(true);
            }
            OpenMode::CreateTruncate => {
                options.write(true).create(true).truncate(true);
            }
        }
        let file = options.open(path)?;
        Ok(Arc::new(StdFile {
            file,
            path: path.to_path_buf(),
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let is_dir = entry.file_type()?.is_dir();
            entries.push(DirEntry { name, is_dir });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        sync_dir(path)
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock_exclusive() {
            Ok(()) => Ok(Box::new(StdLock { file })),
            Err(e) if e.kind() == fs2::lock_contended_error().kind() => {
                Err(io::Error::new(io::ErrorKind::WouldBlock, e))
            }
            Err(e) => Err(e),
        }
    }

    fn available_space(&self, path: &Path) -> io::Result<u64> {
        fs2::available_space(path)
    }

    fn dir_usage(&self, path: &Path) -> io::Result<u64> {
        let mut total = 0u64;
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // Removed meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            total = total.saturating_add(if meta.is_dir() {
                match self.dir_usage(&entry.path()) {
                    Ok(bytes) => bytes,
                    // Removed meanwhile (a topic deleted, a staged one moved into place).
                    Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                    Err(e) => return Err(e),
                }
            } else {
                disk_bytes(&meta)
            });
        }
        Ok(total)
    }
}

/// The disk space a file takes: its allocated blocks (preallocated space included).
#[cfg(unix)]
fn disk_bytes(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks().saturating_mul(512)
}

#[cfg(not(unix))]
fn disk_bytes(meta: &std::fs::Metadata) -> u64 {
    meta.len()
}

#[cfg(unix)]
fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Windows cannot open a directory for syncing; NTFS journals directory entries itself.
#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// The lock is an `flock` on the open file: it is released when the file is closed, which the
/// kernel does when the process dies, so there is never a stale lock.
#[derive(Debug)]
struct StdLock {
    file: File,
}

impl LockGuard for StdLock {}

impl Drop for StdLock {
    fn drop(&mut self) {
        // Unlock before closing: the lock belongs to the open file description, and a child
        // process forked by another thread holds a copy of it until its exec, which would keep
        // the directory locked after our close. (An error means the lock is gone anyway.)
        let _unlocked = fs2::FileExt::unlock(&self.file);
    }
}

struct StdFile {
    file: File,
    path: PathBuf,
}

impl fmt::Debug for StdFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl VfsFile for StdFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        read_at(&self.file, buf, pos)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        write_all_at(&self.file, buf, pos)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        // posix_fallocate on Linux: a full disk fails here, not later as SIGBUS on a mapped
        // write into a hole.
        self.file.allocate(len).map_err(|e| {
            // fs2 0.4 reads posix_fallocate's failure from `errno`, which posix_fallocate does
            // not set (it returns the code): the reason is lost. The one that matters is a
            // full disk; tell it by the free space.
            let needed = len.saturating_sub(self.file.metadata().map_or(0, |m| m.len()));
            match fs2::available_space(&self.path) {
                Ok(free) if free < needed => io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!("no space left on device ({free} bytes free, {needed} needed)"),
                ),
                _ => e,
            }
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn map(&self, len: usize, writable: bool) -> io::Result<Box<dyn RawMap>> {
        let mut options = MmapOptions::new();
        options.len(len);
        let map = if writable {
            options.map_raw(&self.file)?
        } else {
            options.map_raw_read_only(&self.file)?
        };
        Ok(Box::new(StdMap(map)))
    }
}

#[derive(Debug)]
struct StdMap(MmapRaw);

impl RawMap for StdMap {
    fn as_mut_ptr(&self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    #[cfg(target_os = "linux")]
    fn populate_write(&self, offset: usize, len: usize) -> io::Result<()> {
        self.0
            .advise_range(memmap2::Advice::PopulateWrite, offset, len)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, pos)
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, pos)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, pos)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut pos: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_write(file, buf, pos) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
