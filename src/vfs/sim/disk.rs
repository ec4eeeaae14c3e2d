//! The simulator's state: inodes (files and directories), the pending directory operations,
//! the counters, and what a sync does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Weak};

use super::image::{Buffer, Event, Image, is_zero, read_image, replay_all};
use super::{PAGE_BYTES, SimStats};

/// How far past a file's end mapped writes are looked for (SIGBUS events): the appender writes
/// at its end, so a write past the end lands right after it.
pub(super) const SIGBUS_WINDOW_BYTES: u64 = 256 << 10;

pub(super) const EIO: i32 = 5;
pub(super) const ENOSPC: i32 = 28;

pub(super) type Ino = u64;
pub(super) const ROOT: Ino = 0;

/// A directory: its entries now, and those a crash keeps for sure.
#[derive(Debug, Clone, Default)]
pub(super) struct DirNode {
    pub(super) entries: BTreeMap<String, Ino>,
    pub(super) durable: BTreeMap<String, Ino>,
}

#[derive(Debug)]
pub(super) struct FileNode {
    pub(super) buf: Arc<Buffer>,
    pub(super) len: u64,
    pub(super) durable: Image,
    pub(super) clean: Option<Image>,
    pub(super) events: Vec<Event>,
    /// Bytes `[0, reserved)` have space reserved on the disk.
    pub(super) reserved: u64,
    /// A writable mapping exists or existed since the last sync: the volatile image may hold
    /// writes the events do not explain.
    pub(super) maybe_mapped_dirt: bool,
    pub(super) writable_maps: Vec<Weak<()>>,
    /// The volatile image when the simulator froze (only if `maybe_mapped_dirt`).
    pub(super) frozen: Option<Image>,
}

impl FileNode {
    pub(super) fn new() -> io::Result<Self> {
        Ok(FileNode {
            buf: Buffer::new(PAGE_BYTES)?,
            len: 0,
            durable: Image::default(),
            clean: None,
            events: Vec::new(),
            reserved: 0,
            maybe_mapped_dirt: false,
            writable_maps: Vec::new(),
            frozen: None,
        })
    }

    pub(super) fn volatile(&self) -> Image {
        self.frozen
            .clone()
            .unwrap_or_else(|| self.buf.image(self.len))
    }

    /// What the page cache would hold without mapped writes.
    pub(super) fn explained(&self) -> Image {
        let mut image = self.clean.clone().unwrap_or_else(|| self.durable.clone());
        replay_all(&mut image, &self.events);
        image
    }

    /// Pages (start, end) where `volatile` differs from `explained`. Past the bytes either
    /// stores, both are zeros: only the stored part is compared.
    pub(super) fn dirty_pages(volatile: &Image, explained: &Image) -> Vec<(u64, u64)> {
        let stored = volatile.bytes.len().max(explained.bytes.len()) as u64;
        let len = volatile
            .len
            .max(explained.len)
            .min(stored.div_ceil(PAGE_BYTES) * PAGE_BYTES);
        let mut pages = Vec::new();
        let mut page = Vec::new();
        let mut start = 0;
        while start < len {
            let end = (start + PAGE_BYTES).min(len);
            page.clear();
            page.resize(to_usize(end - start), 0);
            read_image(volatile, start, &mut page);
            if !explained.range_eq(start, &page) {
                pages.push((start, end));
            }
            start = end;
        }
        pages
    }

    pub(super) fn has_live_writable_map(&mut self) -> bool {
        self.writable_maps.retain(|w| w.strong_count() > 0);
        !self.writable_maps.is_empty()
    }
}

#[derive(Debug)]
pub(super) enum Inode {
    File(FileNode),
    Dir(DirNode),
}

/// A namespace change not yet made durable by a directory sync.
#[derive(Debug, Clone)]
pub(super) enum DirOp {
    Link {
        dir: Ino,
        name: String,
        ino: Ino,
    },
    Unlink {
        dir: Ino,
        name: String,
        ino: Ino,
    },
    Rename {
        from: (Ino, String),
        to: (Ino, String),
        ino: Ino,
    },
}

impl DirOp {
    pub(super) fn touches_dir(&self, d: Ino) -> bool {
        match self {
            DirOp::Link { dir, .. } | DirOp::Unlink { dir, .. } => *dir == d,
            DirOp::Rename { from, to, .. } => from.0 == d || to.0 == d,
        }
    }

    pub(super) fn names(&self) -> Vec<(Ino, &str)> {
        match self {
            DirOp::Link { dir, name, .. } | DirOp::Unlink { dir, name, .. } => {
                vec![(*dir, name.as_str())]
            }
            DirOp::Rename { from, to, .. } => {
                vec![(from.0, from.1.as_str()), (to.0, to.1.as_str())]
            }
        }
    }

    /// Applies the operation to durable entries, tolerating entries that are not there (an
    /// earlier operation on them was dropped).
    pub(super) fn apply(&self, durable: &mut BTreeMap<Ino, BTreeMap<String, Ino>>) {
        match self {
            DirOp::Link { dir, name, ino } => {
                durable.entry(*dir).or_default().insert(name.clone(), *ino);
            }
            DirOp::Unlink { dir, name, ino } => {
                let entries = durable.entry(*dir).or_default();
                if entries.get(name) == Some(ino) {
                    entries.remove(name);
                }
            }
            DirOp::Rename { from, to, ino } => {
                let source = durable.entry(from.0).or_default();
                if source.get(&from.1) == Some(ino) {
                    source.remove(&from.1);
                }
                durable.entry(to.0).or_default().insert(to.1.clone(), *ino);
            }
        }
    }
}

/// A request to fail a sync (see [`SimVfs::fail_next_sync`]).
pub(super) type SyncFault = Box<dyn Fn(&Path) -> bool + Send>;

pub(super) struct State {
    pub(super) inodes: BTreeMap<Ino, Inode>,
    pub(super) next_ino: Ino,
    pub(super) pending: Vec<DirOp>,
    pub(super) ops: u64,
    pub(super) crash_at: Option<u64>,
    pub(super) frozen: bool,
    pub(super) capacity: Option<u64>,
    pub(super) used: u64,
    pub(super) locks: BTreeSet<PathBuf>,
    pub(super) stats: SimStats,
    pub(super) sync_faults: Vec<SyncFault>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("inodes", &self.inodes.len())
            .field("pending", &self.pending.len())
            .field("ops", &self.ops)
            .field("crash_at", &self.crash_at)
            .field("frozen", &self.frozen)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

pub(super) fn err(kind: io::ErrorKind, what: &str) -> io::Error {
    io::Error::new(kind, format!("simulated disk: {what}"))
}

pub(super) fn eio(what: &str) -> io::Error {
    io::Error::new(
        io::Error::from_raw_os_error(EIO).kind(),
        format!("simulated disk: {what} (EIO)"),
    )
}

pub(super) fn frozen_error() -> io::Error {
    eio("the machine crashed")
}

pub(super) fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

pub(super) fn names(path: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => match name.to_str() {
                Some(name) => out.push(name.to_owned()),
                None => return Err(err(io::ErrorKind::InvalidInput, "non-UTF-8 name")),
            },
            Component::ParentDir | Component::Prefix(_) => {
                return Err(err(io::ErrorKind::InvalidInput, "unsupported path"));
            }
        }
    }
    Ok(out)
}

impl State {
    pub(super) fn new() -> Self {
        let mut inodes = BTreeMap::new();
        inodes.insert(ROOT, Inode::Dir(DirNode::default()));
        State {
            inodes,
            next_ino: ROOT + 1,
            pending: Vec::new(),
            ops: 0,
            crash_at: None,
            frozen: false,
            capacity: None,
            used: 0,
            locks: BTreeSet::new(),
            stats: SimStats::default(),
            sync_faults: Vec::new(),
        }
    }

    pub(super) fn check_alive(&self) -> io::Result<()> {
        if self.frozen {
            Err(frozen_error())
        } else {
            Ok(())
        }
    }

    /// Counts a state-changing operation, or crashes at it.
    pub(super) fn count_op(&mut self) -> io::Result<()> {
        self.check_alive()?;
        if self.crash_at.is_some_and(|k| self.ops >= k) {
            self.freeze();
            return Err(frozen_error());
        }
        self.ops += 1;
        Ok(())
    }

    pub(super) fn freeze(&mut self) {
        if self.frozen {
            return;
        }
        let inos: Vec<Ino> = self.inodes.keys().copied().collect();
        for ino in inos {
            self.check_sigbus(ino);
            if let Some(Inode::File(f)) = self.inodes.get_mut(&ino) {
                if f.maybe_mapped_dirt {
                    f.frozen = Some(f.buf.image(f.len));
                }
            }
        }
        self.frozen = true;
    }

    /// Counts (and clears) mapped writes past the end of file `ino`.
    pub(super) fn check_sigbus(&mut self, ino: Ino) {
        let Some(Inode::File(f)) = self.inodes.get(&ino) else {
            return;
        };
        if !f.maybe_mapped_dirt {
            return;
        }
        let mut map = f.buf.map.lock();
        let start = to_usize(f.len).min(map.len());
        let end = to_usize(f.len + SIGBUS_WINDOW_BYTES).min(map.len());
        if !is_zero(&map[start..end]) {
            map[start..end].fill(0);
            self.stats.sigbus_events += 1;
        }
    }

    pub(super) fn dir(&self, ino: Ino) -> io::Result<&DirNode> {
        match self.inodes.get(&ino) {
            Some(Inode::Dir(d)) => Ok(d),
            Some(Inode::File(_)) => Err(err(io::ErrorKind::NotADirectory, "not a directory")),
            None => Err(err(io::ErrorKind::NotFound, "no such directory")),
        }
    }

    pub(super) fn dir_mut(&mut self, ino: Ino) -> io::Result<&mut DirNode> {
        match self.inodes.get_mut(&ino) {
            Some(Inode::Dir(d)) => Ok(d),
            Some(Inode::File(_)) => Err(err(io::ErrorKind::NotADirectory, "not a directory")),
            None => Err(err(io::ErrorKind::NotFound, "no such directory")),
        }
    }

    pub(super) fn file(&mut self, ino: Ino) -> io::Result<&mut FileNode> {
        match self.inodes.get_mut(&ino) {
            Some(Inode::File(f)) => Ok(f),
            _ => Err(err(io::ErrorKind::NotFound, "no such file")),
        }
    }

    pub(super) fn resolve(&self, path: &Path) -> io::Result<Ino> {
        let mut ino = ROOT;
        for name in names(path)? {
            ino = *self
                .dir(ino)?
                .entries
                .get(&name)
                .ok_or_else(|| err(io::ErrorKind::NotFound, "no such file or directory"))?;
        }
        Ok(ino)
    }

    /// The parent directory of `path` (which must exist) and the last name.
    pub(super) fn parent_of(&self, path: &Path) -> io::Result<(Ino, String)> {
        let mut all = names(path)?;
        let name = all
            .pop()
            .ok_or_else(|| err(io::ErrorKind::InvalidInput, "the root has no parent"))?;
        let mut ino = ROOT;
        for part in all {
            ino = *self
                .dir(ino)?
                .entries
                .get(&part)
                .ok_or_else(|| err(io::ErrorKind::NotFound, "no such directory"))?;
        }
        self.dir(ino)?;
        Ok((ino, name))
    }

    pub(super) fn alloc_ino(&mut self, node: Inode) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, node);
        ino
    }

    pub(super) fn link(&mut self, dir: Ino, name: &str, ino: Ino) -> io::Result<()> {
        self.dir_mut(dir)?.entries.insert(name.to_owned(), ino);
        self.pending.push(DirOp::Link {
            dir,
            name: name.to_owned(),
            ino,
        });
        Ok(())
    }

    /// Removes entry `name` of `dir` (naming `ino`); frees a file's space.
    pub(super) fn unlink(&mut self, dir: Ino, name: &str, ino: Ino) -> io::Result<()> {
        self.dir_mut(dir)?.entries.remove(name);
        self.pending.push(DirOp::Unlink {
            dir,
            name: name.to_owned(),
            ino,
        });
        self.release(ino);
        Ok(())
    }

    pub(super) fn release(&mut self, ino: Ino) {
        if let Some(Inode::File(f)) = self.inodes.get_mut(&ino) {
            self.used -= f.reserved;
            f.reserved = 0;
        }
    }

    /// Reserves space for file `ino` up to `end`.
    pub(super) fn reserve(&mut self, ino: Ino, end: u64) -> io::Result<()> {
        let reserved = self.file(ino)?.reserved;
        if end <= reserved {
            return Ok(());
        }
        let need = end - reserved;
        if self.capacity.is_some_and(|cap| self.used + need > cap) {
            self.stats.no_space_errors += 1;
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        self.used += need;
        self.file(ino)?.reserved = end;
        Ok(())
    }

    /// Makes sure file `ino`'s buffer holds `len` bytes (invariant 2).
    pub(super) fn ensure_capacity(&mut self, ino: Ino, len: u64) -> io::Result<()> {
        let f = self.file(ino)?;
        let capacity = f.buf.capacity();
        if len <= capacity {
            return Ok(());
        }
        let grown = Buffer::new(len.max(capacity * 2))?;
        {
            let old = f.buf.map.lock();
            let mut new = grown.map.lock();
            let n = to_usize(f.len);
            new[..n].copy_from_slice(&old[..n]);
        }
        let mapped = Arc::strong_count(&f.buf) > 1;
        f.buf = grown;
        if mapped {
            self.stats.detached_maps += 1;
        }
        Ok(())
    }

    /// Sets file `ino`'s volatile length, zeroing what a shrink cut off.
    pub(super) fn set_volatile_len(&mut self, ino: Ino, len: u64) -> io::Result<()> {
        self.ensure_capacity(ino, len)?;
        let f = self.file(ino)?;
        if len < f.len {
            let mut map = f.buf.map.lock();
            map[to_usize(len)..to_usize(f.len)].fill(0);
        }
        f.len = len;
        Ok(())
    }

    pub(super) fn create_file(&mut self, dir: Ino, name: &str) -> io::Result<Ino> {
        let ino = self.alloc_ino(Inode::File(FileNode::new()?));
        self.link(dir, name, ino)?;
        Ok(ino)
    }

    /// Makes file `ino` durable; with a sync fault, drops its dirty data instead.
    pub(super) fn sync_file(&mut self, ino: Ino, path: &Path) -> io::Result<()> {
        self.count_op()?;
        self.check_sigbus(ino);
        let fault = self.sync_faults.iter().position(|matches| matches(path));
        if let Some(i) = fault {
            drop(self.sync_faults.remove(i));
            self.stats.failed_syncs += 1;
        }
        let f = self.file(ino)?;
        let mapped = f.maybe_mapped_dirt;
        let volatile = if mapped || f.clean.is_some() || fault.is_some() {
            Some(f.buf.image(f.len))
        } else {
            None
        };
        if fault.is_some() {
            // Linux: the pages are marked clean; their data is lost to the disk.
            let mut clean = volatile.unwrap_or_default();
            clean.trim();
            f.clean = (!clean.same_as(&f.durable)).then_some(clean);
        } else {
            let dirty = match &volatile {
                Some(v) if mapped => FileNode::dirty_pages(v, &f.explained()),
                _ => Vec::new(),
            };
            replay_all(&mut f.durable, &f.events);
            if let Some(v) = &volatile {
                let mut page = Vec::new();
                for (start, end) in dirty {
                    page.resize(to_usize(end - start), 0);
                    read_image(v, start, &mut page);
                    f.durable.write(start, &page);
                }
                f.durable.resize(v.len);
            }
            f.durable.trim();
            f.clean = volatile.filter(|v| !v.same_as(&f.durable)).map(|mut v| {
                v.trim();
                v
            });
        }
        f.events.clear();
        f.maybe_mapped_dirt = f.has_live_writable_map();
        if fault.is_some() {
            Err(eio("sync failed (injected)"))
        } else {
            Ok(())
        }
    }

    /// Makes durable the pending operations touching directory `dir` (see the module docs).
    pub(super) fn sync_dir(&mut self, dir: Ino) {
        let mut chosen: Vec<bool> = self.pending.iter().map(|op| op.touches_dir(dir)).collect();
        // Earlier operations on the same entries go first (closure over shared names).
        loop {
            let mut grew = false;
            for j in (0..self.pending.len()).rev() {
                if !chosen[j] {
                    continue;
                }
                let names = self.pending[j].names();
                for (op, chosen) in self.pending[..j].iter().zip(chosen.iter_mut()) {
                    if !*chosen && op.names().iter().any(|n| names.contains(n)) {
                        *chosen = true;
                        grew = true;
                    }
                }
            }
            if !grew {
                break;
            }
        }
        let mut durable = self.durable_entries();
        let mut kept = Vec::new();
        for (op, chosen) in std::mem::take(&mut self.pending).into_iter().zip(chosen) {
            if chosen {
                op.apply(&mut durable);
            } else {
                kept.push(op);
            }
        }
        self.pending = kept;
        self.set_durable_entries(durable);
    }

    pub(super) fn durable_entries(&self) -> BTreeMap<Ino, BTreeMap<String, Ino>> {
        self.inodes
            .iter()
            .filter_map(|(ino, node)| match node {
                Inode::Dir(d) => Some((*ino, d.durable.clone())),
                Inode::File(_) => None,
            })
            .collect()
    }

    pub(super) fn set_durable_entries(&mut self, durable: BTreeMap<Ino, BTreeMap<String, Ino>>) {
        for (ino, entries) in durable {
            if let Some(Inode::Dir(d)) = self.inodes.get_mut(&ino) {
                d.durable = entries;
            }
        }
    }
}
