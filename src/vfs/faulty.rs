//! A file system that fails on request (unit tests only): wraps [`StdVfs`] and injects
//! `fdatasync` failures (with Linux's semantics: the error is reported once, and the next sync
//! "succeeds" although the data may be gone, which is exactly why wharf must never retry) and
//! `ENOSPC` from `allocate` (on request, or past a simulated disk size); for a group's offsets
//! file, also sync failures, write failures and a count of syncs; for retention, failures to
//! remove segment files, to sync a directory and to remove a directory tree. [`Gate`]s hold
//! one write or sync up until the test lets it go, to stop a thread at a known point of its
//! I/O while others go on.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{DirEntry, LockGuard, OpenMode, RawMap, StdVfs, Vfs, VfsFile};

/// Switches shared by a [`FaultyVfs`] and its files.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Fail the next `sync_data`/`sync_all` of a `.log` file, once.
    pub fail_next_log_sync: AtomicBool,
    /// Fail every `allocate` with ENOSPC while set.
    pub no_space: AtomicBool,
    /// Syncs that failed.
    pub failed_syncs: AtomicUsize,
    /// Fail the next `sync_data`/`sync_all` of a file whose name starts with `offsets` (a
    /// group's offsets file or its temporary copy), once.
    pub fail_next_offsets_sync: AtomicBool,
    /// Fail the next `write_all_at` to a file whose name starts with `offsets`, once.
    pub fail_next_offsets_write: AtomicBool,
    /// Syncs of files whose names start with `offsets`, failed ones included.
    pub offsets_syncs: AtomicUsize,
    /// Milliseconds each sync of such a file sleeps first, as a disk would take.
    pub offsets_sync_delay_ms: AtomicU64,
    /// A disk of this size under this directory: `allocate` fails with ENOSPC when the
    /// files under it (allocated blocks, as [`StdVfs`] counts them) would pass it.
    pub disk: Mutex<Option<(PathBuf, u64)>>,
    /// Removals of segment files (`.log`, `.index`, `.timeindex`) that succeed before every
    /// later one fails with EIO; `None`: no failure.
    pub segment_removes_left: Mutex<Option<usize>>,
    /// Segment files whose removal failed.
    pub failed_removes: AtomicUsize,
    /// Fail the next `sync_dir`, once.
    pub fail_next_dir_sync: AtomicBool,
    /// Fail every `remove_dir_all` with EIO while set (removes nothing).
    pub fail_remove_dir_all: AtomicBool,
    /// Holds up a `sync_data`/`sync_all` of a `.log` file.
    pub log_sync_gate: Gate,
    /// Holds up a `write_all_at` to a file whose name starts with `offsets`.
    pub offsets_write_gate: Gate,
    /// Holds up a `sync_data`/`sync_all` of a file whose name starts with `offsets`.
    pub offsets_sync_gate: Gate,
}

/// Holds up one operation: once [`Gate::arm`]ed, the next operation through it waits until
/// [`Gate::open`]; the ones after it pass.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    armed: bool,
    /// An operation was caught since the gate was armed.
    caught: bool,
    open: bool,
}

impl Gate {
    /// Catches the next operation through the gate.
    pub(crate) fn arm(&self) {
        *self.state.lock() = GateState {
            armed: true,
            caught: false,
            open: false,
        };
    }

    /// Waits until an operation is caught, at most `guard` (a hang guard, not a measure);
    /// returns whether one was.
    pub(crate) fn wait_caught(&self, guard: Duration) -> bool {
        let deadline = Instant::now() + guard;
        let mut st = self.state.lock();
        while !st.caught {
            if self.changed.wait_until(&mut st, deadline).timed_out() {
                return st.caught;
            }
        }
        true
    }

    /// Lets the caught operation go (and disarms the gate if nothing was caught).
    pub(crate) fn open(&self) {
        let mut st = self.state.lock();
        st.armed = false;
        st.open = true;
        self.changed.notify_all();
    }

    fn pass(&self) {
        let mut st = self.state.lock();
        if !st.armed {
            return;
        }
        st.armed = false;
        st.caught = true;
        self.changed.notify_all();
        while !st.open {
            self.changed.wait(&mut st);
        }
    }
}

impl Faults {
    fn remove_fault(&self, path: &Path) -> io::Result<()> {
        let is_segment = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "log" | "index" | "timeindex"));
        if !is_segment {
            return Ok(());
        }
        let mut left = self.segment_removes_left.lock();
        match left.as_mut() {
            Some(0) => {
                self.failed_removes.fetch_add(1, Ordering::SeqCst);
                return Err(io::Error::from_raw_os_error(5)); // EIO
            }
            Some(n) => *n -= 1,
            None => {}
        }
        Ok(())
    }

    /// ENOSPC if growing `file` to `len` would pass the simulated disk's size.
    fn space_fault(&self, file: &dyn VfsFile, len: u64) -> io::Result<()> {
        let Some((root, size)) = self.disk.lock().clone() else {
            return Ok(());
        };
        let used = StdVfs.dir_usage(&root)?;
        let growth = len.saturating_sub(file.len()?);
        if used.saturating_add(growth) > size {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        Ok(())
    }
}

#[derive(Debug)]
pub(crate) struct FaultyVfs {
    pub faults: Arc<Faults>,
}

impl FaultyVfs {
    pub(crate) fn new() -> (Arc<Self>, Arc<Faults>) {
        let faults = Arc::new(Faults::default());
        (
            Arc::new(FaultyVfs {
                faults: Arc::clone(&faults),
            }),
            faults,
        )
    }
}

impl Vfs for FaultyVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        let inner = StdVfs.open(path, mode)?;
        Ok(Arc::new(FaultyFile {
            inner,
            faults: Arc::clone(&self.faults),
        }))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdVfs.create_dir_all(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        StdVfs.read_dir(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        StdVfs.exists(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdVfs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.faults.remove_fault(path)?;
        StdVfs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        if self.faults.fail_remove_dir_all.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        StdVfs.remove_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if self.faults.fail_next_dir_sync.swap(false, Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        StdVfs.sync_dir(path)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        StdVfs.lock(path)
    }
    fn available_space(&self, path: &Path) -> io::Result<u64> {
        StdVfs.available_space(path)
    }
    fn dir_usage(&self, path: &Path) -> io::Result<u64> {
        StdVfs.dir_usage(path)
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn VfsFile>,
    faults: Arc<Faults>,
}

impl FaultyFile {
    fn sync_fault(&self) -> io::Result<()> {
        let is_log = self.inner.path().extension().is_some_and(|e| e == "log");
        if is_log {
            self.faults.log_sync_gate.pass();
        }
        if is_log && self.faults.fail_next_log_sync.swap(false, Ordering::SeqCst) {
            self.faults.failed_syncs.fetch_add(1, Ordering::SeqCst);
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        if self.is_offsets() {
            self.faults.offsets_sync_gate.pass();
            self.faults.offsets_syncs.fetch_add(1, Ordering::SeqCst);
            let delay_ms = self.faults.offsets_sync_delay_ms.load(Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            if self
                .faults
                .fail_next_offsets_sync
                .swap(false, Ordering::SeqCst)
            {
                self.faults.failed_syncs.fetch_add(1, Ordering::SeqCst);
                return Err(io::Error::from_raw_os_error(5)); // EIO
            }
        }
        Ok(())
    }

    fn is_offsets(&self) -> bool {
        self.inner
            .path()
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("offsets"))
    }

    fn write_fault(&self) -> io::Result<()> {
        if self.is_offsets() {
            self.faults.offsets_write_gate.pass();
        }
        if self.is_offsets()
            && self
                .faults
                .fail_next_offsets_write
                .swap(false, Ordering::SeqCst)
        {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        Ok(())
    }
}

impl VfsFile for FaultyFile {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.inner.read_at(buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.write_fault()?;
        self.inner.write_all_at(buf, pos)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        if self.faults.no_space.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.faults.space_fault(self.inner.as_ref(), len)?;
        self.inner.allocate(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.sync_fault()?;
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.sync_fault()?;
        self.inner.sync_all()
    }
    fn map(&self, len: usize, writable: bool) -> io::Result<Box<dyn RawMap>> {
        self.inner.map(len, writable)
    }
}
