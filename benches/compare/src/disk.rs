//! What a run left on disk: the bytes a system's directory takes once the system is closed.
//!
//! Counted: every regular file under the run's directory, recursively (symbolic links are not
//! followed; the systems make none). *Allocated* bytes are the sum of `st_blocks × 512`, what
//! the filesystem has reserved for the files, preallocated space and indirect blocks included,
//! holes excluded; *apparent* bytes are the sum of the files' lengths (`st_size`), what a copy
//! would read. Directories' own blocks are not counted (one or a few 4 KiB blocks each on
//! ext4, the same for every system). Both are divided by the payload bytes the run wrote, so
//! 1.00 means no overhead at all.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The unit of `st_blocks` (POSIX: 512 bytes, whatever the filesystem's block size).
const STAT_BLOCK_BYTES: u64 = 512;

/// The files under one directory, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Sum of `st_blocks × 512`.
    pub allocated_bytes: u64,
    /// Sum of `st_size`.
    pub apparent_bytes: u64,
    /// Regular files counted.
    pub file_count: u64,
}

impl DiskUsage {
    /// Adds up every regular file under `dir`.
    pub fn of(dir: &Path) -> DiskUsage {
        let mut usage = DiskUsage::default();
        usage.add_dir(dir);
        usage
    }

    fn add_dir(&mut self, dir: &Path) {
        let entries = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("list {} to measure it: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
            let path = entry.path();
            let metadata = fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
            if metadata.is_dir() {
                self.add_dir(&path);
            } else if metadata.is_file() {
                self.allocated_bytes += metadata.blocks() * STAT_BLOCK_BYTES;
                self.apparent_bytes += metadata.len();
                self.file_count += 1;
            }
        }
    }

    /// Allocated bytes per payload byte.
    #[expect(clippy::cast_precision_loss, reason = "sizes stay far below 2^52")]
    pub fn allocated_per(&self, payload_bytes: u64) -> f64 {
        self.allocated_bytes as f64 / payload_bytes as f64
    }

    /// Apparent bytes per payload byte.
    #[expect(clippy::cast_precision_loss, reason = "sizes stay far below 2^52")]
    pub fn apparent_per(&self, payload_bytes: u64) -> f64 {
        self.apparent_bytes as f64 / payload_bytes as f64
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};

    use super::*;

    #[test]
    fn counts_nested_files_and_leaves_holes_out_of_the_allocation() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        fs::create_dir(dir.path().join("sub")).expect("a subdirectory");
        fs::write(dir.path().join("a"), vec![7; 10_000]).expect("write a");
        let mut sparse = fs::File::create(dir.path().join("sub/b")).expect("create b");
        sparse
            .seek(SeekFrom::Start(1 << 20))
            .expect("seek past a hole");
        sparse.write_all(b"x").expect("write b");
        sparse.sync_all().expect("sync b");
        fs::File::open(dir.path().join("a"))
            .and_then(|a| a.sync_all())
            .expect("sync a");

        let usage = DiskUsage::of(dir.path());
        assert_eq!(usage.file_count, 2);
        assert_eq!(usage.apparent_bytes, 10_000 + (1 << 20) + 1);
        assert!(
            usage.allocated_bytes >= 10_000,
            "a's 10,000 bytes are allocated"
        );
        assert!(
            usage.allocated_bytes < 1 << 20,
            "the 1 MiB hole takes no blocks (allocated {})",
            usage.allocated_bytes
        );
        assert!((usage.allocated_per(usage.allocated_bytes) - 1.0).abs() < f64::EPSILON);
    }
}
