//! A partition's checkpoint file ([`crate::format::checkpoint`]): written in place into
//! alternating slots and synced, so each update costs one small write and one `fdatasync`,
//! and a torn write leaves the previous checkpoint readable.
//!
//! The file is created (through a temporary file and a rename) together with the partition,
//! holding a valid first slot, so a missing file or two damaged slots can only mean damage
//! from outside: that is reported as corruption, never guessed around.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::format::checkpoint::{self, CHECKPOINT_FILE_LEN, CHECKPOINT_MAGIC, Checkpoint};
use crate::format::file_header::{self, HeaderError, SMALL_HEADER_LEN};
use crate::vfs::{self, OpenMode, Vfs, VfsFile};

/// An open checkpoint file, for writing.
#[derive(Debug)]
pub(crate) struct CheckpointFile {
    file: Arc<dyn VfsFile>,
    path: PathBuf,
    last: Checkpoint,
}

impl CheckpointFile {
    /// Creates the file with `initial` in its first slot.
    pub(crate) fn create(vfs: &dyn Vfs, path: &Path, initial: Checkpoint) -> Result<()> {
        let mut bytes = vec![0u8; CHECKPOINT_FILE_LEN];
        bytes[..SMALL_HEADER_LEN].copy_from_slice(&file_header::encode_small(CHECKPOINT_MAGIC, 0));
        let at = checkpoint::slot_position(initial.sequence);
        bytes[at..at + checkpoint::SLOT_LEN].copy_from_slice(&checkpoint::encode_slot(&initial));
        vfs::write_atomic(vfs, path, &bytes).ctx("create", path)
    }

    /// Reads the newest valid checkpoint; opens the file for writing unless `read_only`.
    pub(crate) fn open(
        vfs: &dyn Vfs,
        path: &Path,
        read_only: bool,
    ) -> Result<(Option<Self>, Checkpoint)> {
        let mode = if read_only {
            OpenMode::Read
        } else {
            OpenMode::ReadWrite
        };
        let file = vfs.open(path, mode).ctx("open", path)?;
        let mut bytes = vec![0u8; CHECKPOINT_FILE_LEN];
        let read = file.read_up_to(&mut bytes, 0).ctx("read", path)?;
        bytes.truncate(read);
        match file_header::decode_small(&bytes, CHECKPOINT_MAGIC) {
            Ok(_) => {}
            Err(HeaderError::UnsupportedVersion(found)) => {
                return Err(crate::ErrorKind::IncompatibleFormat {
                    path: path.to_path_buf(),
                    found: u32::from(found),
                    supported: u32::from(crate::format::FORMAT_VERSION),
                }
                .into());
            }
            Err(e) => return Err(Error::corrupt_file(path, e.to_string())),
        }
        let Some(last) = checkpoint::newest(bytes.get(SMALL_HEADER_LEN..).unwrap_or_default())
        else {
            return Err(Error::corrupt_file(
                path,
                "both checkpoint slots are damaged",
            ));
        };
        let handle = (!read_only).then(|| CheckpointFile {
            file,
            path: path.to_path_buf(),
            last,
        });
        Ok((handle, last))
    }

    /// The checkpoint last written or read.
    pub(crate) fn last(&self) -> Checkpoint {
        self.last
    }

    /// Writes `next` (its sequence number is assigned here) into the older slot and syncs.
    pub(crate) fn write(&mut self, next: Checkpoint) -> Result<()> {
        let cp = Checkpoint {
            sequence: self.last.sequence + 1,
            ..next
        };
        let slot = checkpoint::encode_slot(&cp);
        self.file
            .write_all_at(&slot, checkpoint::slot_position(cp.sequence) as u64)
            .ctx("write", &self.path)?;
        self.file.sync_data().ctx("sync", &self.path)?;
        self.last = cp;
        Ok(())
    }
}
