//! The exclusive lock on a data directory, held for the lifetime of a writable Wharf.
//!
//! An `flock` on `<dir>/wharf.lock` (through fs2): a second open, from another process or from
//! this one (flock conflicts across open file descriptions), fails at once with
//! [`crate::ErrorKind::Locked`]. The kernel drops the lock when the process dies, so a kill -9
//! never leaves a stale lock.

use std::io;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};
use crate::layout;
use crate::vfs::{LockGuard, Vfs};

/// Takes the lock on `dir`.
pub(crate) fn lock(vfs: &dyn Vfs, dir: &Path) -> Result<Box<dyn LockGuard>> {
    let path = dir.join(layout::LOCK_FILE);
    match vfs.lock(&path) {
        Ok(guard) => Ok(guard),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(ErrorKind::Locked {
            dir: dir.to_path_buf(),
        }
        .into()),
        Err(e) => Err(Error::io("lock", path, e)),
    }
}
