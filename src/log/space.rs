//! [`DiskSpace`]: the Wharf's disk quota and free-space floor, checked before a segment file
//! grows.
//!
//! Every byte a log writes lands in space reserved beforehand with `allocate` (see
//! [`super::active`]), so checking here, before the reservation, is enough: an append that
//! would pass the quota (`max_disk_bytes`) or leave less than the floor (`min_free_bytes`)
//! free gets a `StorageFull` I/O error before anything is written, exactly like a real full
//! disk (`ENOSPC` from `fallocate`). [`super::PartitionLog::append`] turns either into
//! [`crate::ErrorKind::Full`], after waiting up to `full_timeout` for retention to free space.
//!
//! The usage figure is the size of every file under the directory, counted at open and after
//! each retention run, plus the reservations made since. Trims (a sealed segment gives back
//! its preallocated tail) only lower the real usage, so between two counts the figure errs on
//! the high side; before refusing a reservation it is counted again.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::vfs::Vfs;

/// File systems allocate whole blocks; usage is counted in them.
pub(crate) const BLOCK_BYTES: u64 = 4_096;

/// `bytes` rounded up to whole blocks.
pub(crate) fn in_blocks(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK_BYTES).saturating_mul(BLOCK_BYTES)
}

/// The Wharf's disk limits and its usage.
pub(crate) struct DiskSpace {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    max_bytes: Option<u64>,
    min_free_bytes: Option<u64>,
    used: AtomicU64,
    /// Bumped whenever space is freed; appends waiting for space wait on it.
    freed: Mutex<u64>,
    freed_signal: Condvar,
    /// Asked to run retention when a reservation is refused.
    on_full: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for DiskSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskSpace")
            .field("dir", &self.dir)
            .field("max_bytes", &self.max_bytes)
            .field("min_free_bytes", &self.min_free_bytes)
            .field("used", &self.used)
            .finish_non_exhaustive()
    }
}

impl DiskSpace {
    pub(crate) fn new(
        vfs: Arc<dyn Vfs>,
        dir: PathBuf,
        max_bytes: Option<u64>,
        min_free_bytes: Option<u64>,
    ) -> Self {
        DiskSpace {
            vfs,
            dir,
            max_bytes,
            min_free_bytes,
            used: AtomicU64::new(0),
            freed: Mutex::new(0),
            freed_signal: Condvar::new(),
            on_full: Mutex::new(None),
        }
    }

    /// Whether any limit is set (otherwise reservations are not checked).
    pub(crate) fn is_limited(&self) -> bool {
        self.max_bytes.is_some() || self.min_free_bytes.is_some()
    }

    /// Sets what to call when a reservation is refused (wake the retention thread).
    pub(crate) fn set_on_full(&self, callback: Box<dyn Fn() + Send + Sync>) {
        *self.on_full.lock() = Some(callback);
    }

    /// The bytes used, as last counted plus reservations since.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The quota.
    pub(crate) fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    /// The free-space floor.
    pub(crate) fn min_free_bytes(&self) -> Option<u64> {
        self.min_free_bytes
    }

    /// Free bytes on the file system holding the directory.
    pub(crate) fn available(&self) -> io::Result<u64> {
        self.vfs.available_space(&self.dir)
    }

    /// Counts the bytes of every file under the directory again.
    pub(crate) fn recount(&self) -> io::Result<u64> {
        let used = self.vfs.dir_usage(&self.dir)?;
        self.used.store(used, Ordering::Release);
        Ok(used)
    }

    /// Reserves `bytes` more: fails with `StorageFull` (nothing reserved) if that would pass
    /// the quota or leave less than the floor free.
    pub(crate) fn reserve(&self, bytes: u64) -> io::Result<()> {
        if !self.is_limited() {
            return Ok(());
        }
        if let Err(e) = self.check(bytes, self.used()) {
            // The figure may be stale (trims, deletions): count before refusing.
            let used = self.recount()?;
            if self.check(bytes, used).is_err() {
                return Err(e);
            }
        }
        self.used.fetch_add(bytes, Ordering::AcqRel);
        Ok(())
    }

    /// Counts `bytes` as used without checking the limits.
    pub(crate) fn add(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    /// As [`Self::reserve`], against the usage figure as it stands (no count, no wake-up of
    /// retention): for speculative reservations.
    pub(crate) fn try_reserve(&self, bytes: u64) -> io::Result<()> {
        if !self.is_limited() {
            return Ok(());
        }
        self.check(bytes, self.used())?;
        self.used.fetch_add(bytes, Ordering::AcqRel);
        Ok(())
    }

    fn check(&self, bytes: u64, used: u64) -> io::Result<()> {
        if let Some(max) = self.max_bytes {
            if used.saturating_add(bytes) > max {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!("disk quota: {used} of {max} bytes used, {bytes} more needed"),
                ));
            }
        }
        if let Some(floor) = self.min_free_bytes {
            let free = self.available()?;
            if free.saturating_sub(bytes) < floor {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!(
                        "free-space floor: {free} bytes free, {bytes} more needed, {floor} must stay free"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Records that space was freed (after a deletion) and wakes appends waiting for it.
    pub(crate) fn freed(&self) {
        let _ = self.recount();
        *self.freed.lock() += 1;
        self.freed_signal.notify_all();
    }

    /// How many times space was freed so far: pass it to [`Self::wait_freed`].
    pub(crate) fn freed_count(&self) -> u64 {
        *self.freed.lock()
    }

    /// Asks retention to run (an append found no space: a quota, a floor or a full disk).
    pub(crate) fn notify_full(&self) {
        if let Some(callback) = self.on_full.lock().as_ref() {
            callback();
        }
    }

    /// Waits until space was freed more than `seen` times ([`Self::freed_count`]) or
    /// `deadline`; returns whether it was.
    pub(crate) fn wait_freed(&self, seen: u64, deadline: Instant) -> bool {
        let mut generation = self.freed.lock();
        while *generation == seen {
            if self
                .freed_signal
                .wait_until(&mut generation, deadline)
                .timed_out()
            {
                return *generation != seen;
            }
        }
        true
    }
}
