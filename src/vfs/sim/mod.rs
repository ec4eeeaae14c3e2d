//! [`SimVfs`]: a simulated disk in memory (tests only), for crash-consistency tests. It keeps,
//! per file, what a power loss could leave behind, and builds such a leftover on request
//! ([`SimVfs::crash`]), in the manner of SQLite's `test6.c`, `FoundationDB`'s
//! `AsyncFileNonDurable` and `TigerBeetle`'s simulated storage (RELIABILITY.md section 3).
//!
//! # What it models
//!
//! - **Files.** Each file has a *volatile* image (what reads and mappings see: the page cache)
//!   and a *durable* image (what survives a power loss for sure), plus the writes and size
//!   changes made since its last sync (*events*). `sync_data`/`sync_all` make all of it
//!   durable, the size included (as `fdatasync` does when the size is needed to read the data).
//! - **Mappings.** Bytes written through a mapping are not seen by the simulator when they are
//!   written (a `memcpy` into memory): at a sync and at a crash the mapped file's volatile image
//!   is compared, 4 KiB page by page, with what its durable image plus the events would give;
//!   every page that differs is dirty (as the kernel would write back whole pages).
//! - **Directories.** Every create, rename and remove changes the volatile namespace at once
//!   and is kept as a *pending* operation until the parent directory is synced (`sync_dir`).
//!   A sync of directory `d` makes durable every pending operation that touches `d`, and any
//!   earlier one naming one of the same entries (so the entries of one name stay in order). A
//!   rename is one operation, applied whole or not at all, on both of its directories.
//! - **A crash** ([`SimVfs::crash`]) builds a fresh, unfrozen `SimVfs` holding the post-crash
//!   durable state, as a [`Damage`] decides: each write since the last sync is cut into 512 B
//!   sectors (mapped pages stay 4 KiB pages) and each sector is applied, dropped, zeroed or
//!   filled with garbage; each size change is kept or dropped (a size may persist without the
//!   data: zeros); each pending directory operation is kept or dropped. Only what is reachable
//!   from the root through durable directory entries survives. Damage touches only the bytes a
//!   write changed: a page written back also rewrites its unchanged bytes, and disks are taken
//!   to be "powersafe" (SQLite's `POWERSAFE_OVERWRITE`), so durable bytes that share a sector
//!   with new ones survive. [`SimVfs::crash_torn`] lets a test choose each sector's fate.
//! - **Failing syncs** ([`SimVfs::fail_next_sync`]) follow Linux (fsyncgate): the dirty data
//!   is dropped from what will ever be durable but stays visible in the volatile image, the
//!   error is reported once, and the next sync succeeds without it.
//! - **A full disk** ([`SimVfs::set_capacity`]): `allocate`, growing `set_len` and writes past
//!   a file's reserved size fail with ENOSPC once the reserved bytes of all files would pass
//!   the capacity. A mapped write past the end of the file (the real SIGBUS) is counted in
//!   [`SimStats::sigbus_events`], which tests require to stay 0.
//! - **Crash points.** Operations that change state or sync are counted
//!   ([`SimVfs::ops`]); reads are not (a crash just before a read leaves the same disk as one
//!   just after it). With [`SimVfs::crash_at`]`(k)`, operation `k` (from 0) and every
//!   operation after it fail with EIO and the simulator *freezes*: the volatile images are
//!   snapshotted and nothing changes any more, so mapped writes made after the freeze (by a
//!   process that in reality would be dead) are ignored.
//!
//! Everything is deterministic: collections are ordered, inode numbers sequential, and all
//! randomness comes from [`SimRng`] seeded by the caller.
//!
//! Files: `disk` (inodes, directories, pending operations, syncs), `image` (file contents and
//! their buffers), `crash` (building a post-crash disk), `file` (open files and mappings).
//!
//! # Invariants of the representation
//!
//! 1. A file's volatile bytes live in one [`Buffer`], an anonymous memory mapping (so a
//!    64 MiB segment mapping costs only the pages touched) of `capacity >= len` bytes; bytes
//!    in `[len, capacity)` are zero unless something wrote past the end (a SIGBUS event; they
//!    are zeroed again when counted).
//! 2. A mapping hands out the buffer's pointer and keeps the buffer alive (`Arc`), so mapped
//!    writes, `write_all_at` and `read_at` all see the same bytes: the coherence of a shared
//!    mapping with the page cache. The buffer is never moved while a mapping holds it: a file
//!    that must grow past its buffer while mapped gets a new buffer, and the event is counted
//!    in [`SimStats::detached_maps`] (the old mapping no longer aliases the file; tests
//!    require 0, and wharf never grows a file past a live mapping of it).
//! 3. The simulator reads and writes a buffer only inside its own calls, under the buffer's
//!    lock; the code under test writes it through the mapping pointer without the lock. The
//!    two never overlap in time when the file's writer also makes the calls that sync it, as
//!    in the crash sweep (background threads off).
//! 4. `durable` and `clean` are [`Image`]s: bytes plus a length, with implicit zeros past the
//!    stored bytes, so preallocated space costs nothing. `clean` is the page cache's idea of
//!    clean data when it differs from `durable` (after a failed sync); dirty pages are those
//!    where the volatile image differs from `clean` (or `durable`) plus the events.

mod crash;
mod disk;
mod file;
mod image;
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

pub(crate) use self::crash::Fate;
use self::disk::{DirNode, DirOp, Ino, Inode, ROOT, State, err, names, to_usize};
use self::file::SimFile;
use self::image::Event;
use super::{DirEntry, LockGuard, OpenMode, Vfs, VfsFile};

/// Sector size: the unit a torn write is cut into.
pub(crate) const SECTOR_BYTES: u64 = 512;
/// Page size: the unit in which mapped writes reach the disk.
pub(crate) const PAGE_BYTES: u64 = 4096;

/// A small deterministic PRNG (`SplitMix64`): the only source of randomness of the simulator
/// and of the crash sweep, so that a seed replays exactly.
#[derive(Debug, Clone)]
pub(crate) struct SimRng(u64);

impl SimRng {
    pub(crate) fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `true` with probability `percent`/100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// What a crash does to the data that was not durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    /// The process dies, the machine does not: everything written before the freeze survives
    /// (the page cache is written back), as after `kill -9`.
    Kill,
    /// Power loss that loses every unsynced write and every directory change not synced.
    LoseUnsynced,
    /// Power loss with damage drawn from the seed: per seed, the odds of each sector being
    /// applied, dropped, zeroed or garbled and of each size change and directory operation
    /// being kept ("swarm" testing: each seed has its own fault rates).
    Random(u64),
}

/// Counters of a simulator (and of the simulators crashed from it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SimStats {
    /// Mapped writes past the end of a file: a real process would have died of SIGBUS.
    pub sigbus_events: u64,
    /// Files grown past a live mapping's buffer (the mapping stopped aliasing the file).
    pub detached_maps: u64,
    /// Syncs failed on request ([`SimVfs::fail_next_sync`]).
    pub failed_syncs: u64,
    /// Operations failed with ENOSPC.
    pub no_space_errors: u64,
}

/// The simulated disk. Cheap to clone: clones share the disk.
#[derive(Clone)]
pub(crate) struct SimVfs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimVfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SimVfs").field(&*self.state.lock()).finish()
    }
}

impl Default for SimVfs {
    fn default() -> Self {
        SimVfs::new()
    }
}

impl SimVfs {
    /// An empty disk holding only the root directory.
    pub(crate) fn new() -> Self {
        SimVfs {
            state: Arc::new(Mutex::new(State::new())),
        }
    }

    /// Operations counted so far (state changes and syncs).
    pub(crate) fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    /// Fails operation `k` (counted from 0 since the disk was made) and every later one, and
    /// freezes the disk at that point; `None` runs on.
    pub(crate) fn crash_at(&self, k: Option<u64>) {
        let mut st = self.state.lock();
        st.crash_at = k;
        if k.is_some_and(|k| st.ops >= k) {
            st.freeze();
        }
    }

    /// Whether the disk froze (a crash point was reached).
    pub(crate) fn is_frozen(&self) -> bool {
        self.state.lock().frozen
    }

    /// Freezes the disk now: every later operation fails.
    pub(crate) fn freeze(&self) {
        self.state.lock().freeze();
    }

    pub(crate) fn stats(&self) -> SimStats {
        let mut st = self.state.lock();
        let inos: Vec<Ino> = st.inodes.keys().copied().collect();
        for ino in inos {
            st.check_sigbus(ino);
        }
        st.stats
    }

    /// Limits the bytes all files may reserve (`None`: unlimited).
    pub(crate) fn set_capacity(&self, bytes: Option<u64>) {
        self.state.lock().capacity = bytes;
    }

    /// Bytes reserved by all files.
    pub(crate) fn used_bytes(&self) -> u64 {
        self.state.lock().used
    }

    /// Makes the next sync of a file whose path satisfies `matches` fail with EIO, with
    /// Linux's semantics (see the module docs).
    pub(crate) fn fail_next_sync(&self, matches: impl Fn(&Path) -> bool + Send + 'static) {
        self.state.lock().sync_faults.push(Box::new(matches));
    }

    /// The disk a crash would leave now (at the freeze, if frozen), as `damage` decides. This
    /// disk is not changed: several damages of one crash point can be tried. Deterministic:
    /// the same state and damage give the same result.
    pub(crate) fn crash(&self, damage: Damage) -> SimVfs {
        SimVfs {
            state: Arc::new(Mutex::new(crash::rebuild(&self.state.lock(), damage, None))),
        }
    }

    /// A crash image for the exhaustive torn-write tests: the `i`-th sector of the bytes
    /// `[start, end)` of the file at `path` (counted from the sector holding `start`) gets
    /// `fates[i]` (only its bytes that changed since the file's durable image: see
    /// [`Fate`]), the rest of that file survives as written, and everything else as `rest`
    /// decides.
    pub(crate) fn crash_torn(
        &self,
        path: &Path,
        (start, end): (u64, u64),
        fates: &[Fate],
        rest: Damage,
    ) -> io::Result<SimVfs> {
        let st = self.state.lock();
        let ino = st.resolve(path)?;
        let torn = crash::Torn {
            ino,
            start,
            end,
            fates,
        };
        Ok(SimVfs {
            state: Arc::new(Mutex::new(crash::rebuild(&st, rest, Some(&torn)))),
        })
    }

    /// Every path on the disk (volatile namespace), directories with a trailing `/`, sorted.
    pub(crate) fn list_all(&self) -> Vec<String> {
        let st = self.state.lock();
        let mut out = Vec::new();
        let mut queue = vec![(ROOT, String::new())];
        while let Some((ino, prefix)) = queue.pop() {
            let Ok(dir) = st.dir(ino) else { continue };
            for (name, child) in &dir.entries {
                let path = format!("{prefix}/{name}");
                if matches!(st.inodes.get(child), Some(Inode::Dir(_))) {
                    out.push(format!("{path}/"));
                    queue.push((*child, path));
                } else {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }

    /// The volatile contents of the file at `path`.
    pub(crate) fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut st = self.state.lock();
        let ino = st.resolve(path)?;
        let f = st.file(ino)?;
        let mut out = vec![0; to_usize(f.len)];
        out.copy_from_slice(&f.buf.map.lock()[..to_usize(f.len)]);
        Ok(out)
    }
}

impl Vfs for SimVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        let mut st = self.state.lock();
        st.check_alive()?;
        let existing = st.resolve(path).ok();
        let ino = match (mode, existing) {
            (OpenMode::Read | OpenMode::ReadWrite, None) => {
                return Err(err(io::ErrorKind::NotFound, "no such file"));
            }
            (OpenMode::CreateNew, Some(_)) => {
                return Err(err(io::ErrorKind::AlreadyExists, "file exists"));
            }
            (OpenMode::Read | OpenMode::ReadWrite, Some(ino)) => ino,
            (OpenMode::CreateNew | OpenMode::CreateTruncate, None) => {
                let (dir, name) = st.parent_of(path)?;
                st.count_op()?;
                st.create_file(dir, &name)?
            }
            (OpenMode::CreateTruncate, Some(ino)) => {
                st.file(ino)?;
                st.count_op()?;
                st.set_volatile_len(ino, 0)?;
                st.file(ino)?.events.push(Event::Resize(0));
                st.release(ino);
                ino
            }
        };
        if matches!(st.inodes.get(&ino), Some(Inode::Dir(_))) {
            return Err(err(io::ErrorKind::IsADirectory, "is a directory"));
        }
        Ok(Arc::new(SimFile {
            state: Arc::clone(&self.state),
            ino,
            path: path.to_path_buf(),
            writable: mode != OpenMode::Read,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.check_alive()?;
        let mut ino = ROOT;
        let mut counted = false;
        for name in names(path)? {
            if let Some(child) = st.dir(ino)?.entries.get(&name).copied() {
                st.dir(child)?;
                ino = child;
                continue;
            }
            if !counted {
                st.count_op()?;
                counted = true;
            }
            let child = st.alloc_ino(Inode::Dir(DirNode::default()));
            st.link(ino, &name, child)?;
            ino = child;
        }
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let st = self.state.lock();
        st.check_alive()?;
        let dir = st.dir(st.resolve(path)?)?;
        Ok(dir
            .entries
            .iter()
            .map(|(name, ino)| DirEntry {
                name: name.clone(),
                is_dir: matches!(st.inodes.get(ino), Some(Inode::Dir(_))),
            })
            .collect())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let st = self.state.lock();
        st.check_alive()?;
        Ok(st.resolve(path).is_ok())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.check_alive()?;
        let (from_dir, from_name) = st.parent_of(from)?;
        let ino = *st
            .dir(from_dir)?
            .entries
            .get(&from_name)
            .ok_or_else(|| err(io::ErrorKind::NotFound, "no such file"))?;
        let (to_dir, to_name) = st.parent_of(to)?;
        let replaced = st.dir(to_dir)?.entries.get(&to_name).copied();
        if let Some(old) = replaced.filter(|&old| old != ino) {
            match (st.inodes.get(&ino), st.inodes.get(&old)) {
                (Some(Inode::File(_)), Some(Inode::File(_))) => {}
                (Some(Inode::Dir(_)), Some(Inode::Dir(d))) if d.entries.is_empty() => {}
                _ => return Err(err(io::ErrorKind::AlreadyExists, "cannot replace target")),
            }
        }
        st.count_op()?;
        if let Some(old) = replaced.filter(|&old| old != ino) {
            st.release(old);
        }
        st.dir_mut(from_dir)?.entries.remove(&from_name);
        st.dir_mut(to_dir)?.entries.insert(to_name.clone(), ino);
        st.pending.push(DirOp::Rename {
            from: (from_dir, from_name),
            to: (to_dir, to_name),
            ino,
        });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.check_alive()?;
        let (dir, name) = st.parent_of(path)?;
        let ino = *st
            .dir(dir)?
            .entries
            .get(&name)
            .ok_or_else(|| err(io::ErrorKind::NotFound, "no such file"))?;
        if matches!(st.inodes.get(&ino), Some(Inode::Dir(_))) {
            return Err(err(io::ErrorKind::IsADirectory, "is a directory"));
        }
        st.count_op()?;
        st.unlink(dir, &name, ino)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.check_alive()?;
        let (parent, name) = st.parent_of(path)?;
        let top = *st
            .dir(parent)?
            .entries
            .get(&name)
            .ok_or_else(|| err(io::ErrorKind::NotFound, "no such directory"))?;
        st.dir(top)?;
        st.count_op()?;
        // Children first, depth first, as `std::fs::remove_dir_all` does: a crash may keep any
        // subset of the removals that were not synced.
        let mut stack = vec![(parent, name, top, false)];
        while let Some((dir, name, ino, expanded)) = stack.pop() {
            let children: Vec<(String, Ino)> = match st.inodes.get(&ino) {
                Some(Inode::Dir(d)) if !expanded => {
                    d.entries.iter().map(|(n, i)| (n.clone(), *i)).collect()
                }
                _ => Vec::new(),
            };
            if children.is_empty() {
                st.unlink(dir, &name, ino)?;
            } else {
                stack.push((dir, name, ino, true));
                for (child_name, child) in children.into_iter().rev() {
                    stack.push((ino, child_name, child, false));
                }
            }
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.check_alive()?;
        let ino = st.resolve(path)?;
        st.dir(ino)?;
        st.count_op()?;
        st.sync_dir(ino);
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        let mut st = self.state.lock();
        st.check_alive()?;
        if st.resolve(path).is_err() {
            let (dir, name) = st.parent_of(path)?;
            st.count_op()?;
            st.create_file(dir, &name)?;
        }
        if !st.locks.insert(path.to_path_buf()) {
            return Err(err(io::ErrorKind::WouldBlock, "locked"));
        }
        Ok(Box::new(SimLock {
            state: Arc::downgrade(&self.state),
            path: path.to_path_buf(),
        }))
    }
}

/// A lock taken through [`SimVfs`]; released on drop.
struct SimLock {
    state: Weak<Mutex<State>>,
    path: PathBuf,
}

impl fmt::Debug for SimLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLock")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LockGuard for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        if let Some(state) = self.state.upgrade() {
            state.lock().locks.remove(&self.path);
        }
    }
}
