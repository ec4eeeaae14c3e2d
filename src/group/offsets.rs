//! [`OffsetStore`]: one consumer group's committed offsets, in `<group dir>/offsets`
//! ([`crate::format::offset_commit`]: a small header, then CRC'd commit records).
//!
//! Each commit call appends one record, so a batch commit is one small write. Replaying the
//! records (later entries win per partition; a *snapshot* record replaces the whole state)
//! gives the state. Nothing is ever overwritten in place.
//!
//! Topic incarnations: each committed offset is kept with the incarnation of the topic it was
//! committed against ([`Committed`]). Readers ask for the offset of the topic's current
//! incarnation ([`OffsetStore::committed`]); one of another incarnation (the topic was deleted
//! and created again) counts as none. When a topic is deleted its entries are dropped
//! ([`OffsetStore::forget_topic`]) and its incarnation is *retired*: a later commit carrying it
//! (from a consumer still holding the deleted topic's partition) is dropped under the store's
//! lock, so it can never overwrite an offset of the new topic. The retired set lives in memory
//! only: after a reopen no consumer of the deleted topic is left.
//!
//! Commit fences ([`crate::group::membership`] argues why they suffice): a group member that
//! takes a partition over raises the partition's fence here to its holding's
//! ([`OffsetStore::take_over`]), and reads where to start in the same critical section of
//! `inner`; a commit carrying a lower fence for a partition ([`OffsetStore::commit_fenced`])
//! is refused under `inner`, before anything is written, with `Revoked`. So a commit of a
//! member that lost a partition lands before the next holder read its start, or not at all.
//! The fences live in memory only, as the holdings do.
//!
//! Durability, and the order that keeps a committed offset within the log (rule 6):
//! - A non-durable commit is a write to the page cache: it survives a process crash, not a
//!   power loss.
//! - A durable commit of offset X first calls `make_log_durable(partition, X)` (the caller
//!   syncs the partition's log below X), then appends its record, then joins a *group sync*
//!   of the file: a committer waits while a sync runs; if its record is still not durable
//!   afterwards and no sync runs, it leads one. So concurrent durable commits share one
//!   `fdatasync`.
//! - Every sync (group sync, [`OffsetStore::sync`], compaction) first makes the log durable up
//!   to the highest offset per partition of the non-durable records it covers. A record that
//!   was never synced can still reach the disk early (page-cache writeback, or a sync that
//!   started before it was appended), so after a power loss a *non-durable* offset may exceed
//!   the recovered log end: callers clamp loaded offsets to the log end (RELIABILITY
//!   scenario 10). Durable offsets never need it.
//! - A failed write or sync is never retried and reported as success (fsyncgate): the store
//!   is poisoned and every later call fails until the group is reopened.
//!
//! Compaction: once the file exceeds [`COMPACT_THRESHOLD_BYTES`] (and twice its size after
//! the last compaction), it is replaced by a file holding one snapshot record of the whole
//! state, through [`vfs::write_atomic`] (tmp, sync, rename, directory sync). The log is made
//! durable first, as for any sync. It runs at the start of a commit (so if it fails, the
//! commit wrote nothing) and at the end of [`OffsetStore::sync`]. A crash at any step leaves
//! the old file (all its synced records) or the new one (everything), never a mix, so no
//! durable commit is lost.
//!
//! Recovery ([`OffsetStore::open`]), which runs after the logs are recovered:
//! - a torn tail (an invalid last record, what an interrupted append leaves) is truncated
//!   and the file synced; it is not damage, since its record was never acknowledged durable;
//! - damage (an invalid record followed by a valid one, or a damaged header) falls back to the
//!   state of the records before it, which may be older than the last commit: media damage
//!   can cause redelivery, never a skipped record. The damaged bytes are kept as
//!   `offsets.damaged-<n>`, a clean file holding that state replaces the file, and
//!   [`OffsetLoad::damaged`] says what happened. Garbage is never used.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::FORMAT_VERSION;
use crate::format::file_header::{self, HeaderError, SMALL_HEADER_LEN};
use crate::format::offset_commit::{self, EncodeError, EntryRef, OFFSETS_MAGIC, Stop};
use crate::group::membership::Fence;
use crate::topic::{Incarnation, TopicPartition};
use crate::vfs::{self, OpenMode, Vfs, VfsFile};

/// Name of the offsets file in a group's directory.
pub(crate) const OFFSETS_FILE_NAME: &str = "offsets";
/// Prefix of the copies of damaged offsets files kept as evidence.
pub(crate) const DAMAGED_PREFIX: &str = "offsets.damaged-";
/// File size above which the file is compacted into one snapshot record.
pub(crate) const COMPACT_THRESHOLD_BYTES: u64 = 1 << 20;

/// Makes a partition's log durable below an offset (the caller's `sync_to`, with the offset
/// clamped to the log end). It must not call back into the store. For the entries of other
/// commits a sync covers, `TopicNotFound` and `PartitionOutOfRange` are taken as "no log to
/// make durable" and skipped; any other error fails the sync.
pub(crate) type MakeLogDurable<'a> = &'a dyn Fn(&TopicPartition, u64) -> Result<()>;

/// What [`OffsetStore::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct OffsetLoad {
    /// Set when the file was damaged and the state of the records before the damage is used.
    pub damaged: Option<String>,
    /// Where the damaged file was kept (not when opened read-only).
    pub evidence: Option<PathBuf>,
    /// Bytes of a torn (or zeroed) tail cut off (or ignored, when read-only).
    pub truncated_bytes: u64,
}

/// One group's committed offsets. `Send + Sync`: committers share it.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct OffsetStore {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    path: PathBuf,
    compact_threshold_bytes: u64,
    /// Lock order: `inner`, then `sync`; `sync` is never held while taking `inner`.
    inner: Mutex<Inner>,
    sync: Mutex<SyncState>,
    sync_done: Condvar,
    /// The first failed write or sync; set once, never cleared.
    failure: OnceLock<Arc<io::Error>>,
}

#[derive(Debug)]
struct Inner {
    /// `None` when opened read-only.
    file: Option<Arc<dyn VfsFile>>,
    state: State,
    next_sequence: u64,
    /// Byte position of the next record.
    end: u64,
    /// File length right after the last compaction (or open).
    base_len: u64,
    /// Highest offset per partition of non-durable records not yet covered by a sync.
    unsynced: BTreeMap<TopicPartition, u64>,
    /// Incarnations of topics deleted since the open: commits carrying them are dropped.
    retired: BTreeSet<Incarnation>,
    /// The highest fence each partition was taken over with: commits fenced lower are
    /// refused.
    fences: HashMap<TopicPartition, Fence>,
}

/// A committed offset and the incarnation of the topic it was committed against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Committed {
    pub incarnation: Incarnation,
    /// The next offset the group reads.
    pub offset: u64,
}

/// A group's committed offsets, per partition.
pub(crate) type State = BTreeMap<TopicPartition, Committed>;

#[derive(Debug)]
struct SyncState {
    /// Every record with a lower sequence is durable.
    durable_next: u64,
    /// A leader is syncing (or compacting).
    in_progress: bool,
}

/// A change a record makes to the state.
#[derive(Clone, Copy)]
enum Change<'a> {
    /// Later entries win; refused if a fence is below the partition's ([`Inner::fences`]).
    Merge {
        entries: &'a [(TopicPartition, Committed)],
        fences: &'a [(TopicPartition, Fence)],
    },
    Replace(&'a State),
    /// Keeps the entries the function accepts.
    Retain(&'a dyn Fn(&TopicPartition, &Committed) -> bool),
}

/// The state replayed from a file's bytes.
#[derive(Debug)]
struct Replay {
    state: State,
    next_sequence: u64,
    /// Byte position after the last valid record.
    valid_end: u64,
    damage: Option<String>,
}

#[cfg_attr(not(test), allow(dead_code))]
impl OffsetStore {
    /// Opens the offsets file in `dir`, creating both if missing (unless `read_only`), and
    /// recovers it (see the module docs). `synced_whole`: the file was entirely synced when it
    /// was last closed (a clean shutdown), so an invalid last record is damage, not a torn
    /// write, and is reported as such.
    pub(crate) fn open(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        read_only: bool,
        synced_whole: bool,
    ) -> Result<(OffsetStore, OffsetLoad)> {
        let path = dir.join(OFFSETS_FILE_NAME);
        if !read_only {
            prepare_dir(vfs.as_ref(), dir)?;
        }
        let Some(bytes) = read_file(vfs.as_ref(), &path, read_only)? else {
            let replay = Replay {
                state: State::new(),
                next_sequence: 0,
                valid_end: 0,
                damage: None,
            };
            let store = Self::from_parts(vfs, dir, path, None, replay, 0);
            return Ok((store, OffsetLoad::default()));
        };
        let mut replay = replay(&bytes, &path, synced_whole)?;
        let mut load = OffsetLoad {
            damaged: replay.damage.clone(),
            ..OffsetLoad::default()
        };
        let file_len = bytes.len() as u64;
        if replay.damage.is_none() {
            load.truncated_bytes = file_len - replay.valid_end;
        }
        if read_only {
            let store = Self::from_parts(vfs, dir, path, None, replay, file_len);
            return Ok((store, load));
        }
        let file = if replay.damage.is_some() {
            load.evidence = Some(keep_evidence(vfs.as_ref(), dir, &bytes)?);
            let (file, len) = write_snapshot_file(vfs.as_ref(), &path, &replay)?;
            replay.next_sequence = next_sequence(replay.next_sequence, &path)?;
            replay.valid_end = len;
            file
        } else {
            let file = vfs.open(&path, OpenMode::ReadWrite).ctx("open", &path)?;
            if replay.valid_end < file_len {
                file.set_len(replay.valid_end).ctx("truncate", &path)?;
            }
            // Records a crashed process left in the page cache become durable here, so
            // every record present counts as durable from now on.
            file.sync_data().ctx("sync", &path)?;
            file
        };
        let end = replay.valid_end;
        Ok((
            Self::from_parts(vfs, dir, path, Some(file), replay, end),
            load,
        ))
    }

    fn from_parts(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        path: PathBuf,
        file: Option<Arc<dyn VfsFile>>,
        replay: Replay,
        base_len: u64,
    ) -> Self {
        OffsetStore {
            vfs,
            dir: dir.to_path_buf(),
            path,
            compact_threshold_bytes: COMPACT_THRESHOLD_BYTES,
            inner: Mutex::new(Inner {
                file,
                state: replay.state,
                next_sequence: replay.next_sequence,
                end: replay.valid_end,
                base_len,
                unsynced: BTreeMap::new(),
                retired: BTreeSet::new(),
                fences: HashMap::new(),
            }),
            sync: Mutex::new(SyncState {
                durable_next: replay.next_sequence,
                in_progress: false,
            }),
            sync_done: Condvar::new(),
            failure: OnceLock::new(),
        }
    }

    /// The path of the offsets file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The committed offset of `tp` (the next offset the group reads) in the topic's
    /// `incarnation`, if any: an offset committed against another incarnation counts as none.
    pub(crate) fn committed(&self, tp: &TopicPartition, incarnation: Incarnation) -> Option<u64> {
        self.inner.lock().committed(tp, incarnation)
    }

    /// Takes `tp` over for a group member's holding `fence`: raises the partition's fence to
    /// it (commits fenced lower are refused from now on), and returns the committed offset of
    /// `tp` in `incarnation` as [`Self::committed`] does, read in the same critical section.
    /// Memory only; it waits for an append or a compaction in progress.
    pub(crate) fn take_over(
        &self,
        tp: &TopicPartition,
        fence: Fence,
        incarnation: Incarnation,
    ) -> Option<u64> {
        let mut inner = self.inner.lock();
        let highest = inner.fences.entry(tp.clone()).or_insert(fence);
        *highest = (*highest).max(fence);
        inner.committed(tp, incarnation)
    }

    /// Every committed offset, of any incarnation.
    pub(crate) fn all(&self) -> State {
        self.inner.lock().state.clone()
    }

    /// Commits `entries` as one record (later entries win). Any offset may be committed,
    /// including one below the current committed offset (an explicit rewind, as Kafka
    /// allows); callers check offsets against the log. Entries of a retired incarnation
    /// ([`Self::forget_topic`]) are dropped. With `durable`, the log is made durable below
    /// each offset first, and the call returns once the record is durable (group sync);
    /// otherwise once it is written (page cache).
    ///
    /// # Errors
    /// A failed `make_log_durable` (nothing written), a failed write or sync (the store is
    /// poisoned), a read-only store, or a topic name too long for the format.
    pub(crate) fn commit(
        &self,
        entries: &[(TopicPartition, Committed)],
        durable: bool,
        make_log_durable: MakeLogDurable<'_>,
    ) -> Result<()> {
        self.commit_fenced(entries, &[], durable, make_log_durable)
    }

    /// As [`Self::commit`], for a group member: refused (nothing written) if one of `fences`
    /// is below the fence its partition was taken over with since ([`Self::take_over`]).
    ///
    /// # Errors
    /// [`ErrorKind::Revoked`] for the first partition fenced out; as [`Self::commit`].
    pub(crate) fn commit_fenced(
        &self,
        entries: &[(TopicPartition, Committed)],
        fences: &[(TopicPartition, Fence)],
        durable: bool,
        make_log_durable: MakeLogDurable<'_>,
    ) -> Result<()> {
        self.check_writable()?;
        if entries.is_empty() {
            return Ok(());
        }
        if durable {
            for (tp, committed) in entries {
                make_log_durable(tp, committed.offset)?;
            }
        }
        self.apply(Change::Merge { entries, fences }, durable, make_log_durable)
    }

    /// Replaces the whole state with `state` (an admin reset), as [`Self::commit`] does.
    ///
    /// # Errors
    /// As [`Self::commit`].
    pub(crate) fn reset(
        &self,
        state: &State,
        durable: bool,
        make_log_durable: MakeLogDurable<'_>,
    ) -> Result<()> {
        self.check_writable()?;
        if durable {
            for (tp, committed) in state {
                make_log_durable(tp, committed.offset)?;
            }
        }
        self.apply(Change::Replace(state), durable, make_log_durable)
    }

    /// Forgets the committed offsets of `topic`'s deleted `incarnation`, and retires that
    /// incarnation: later commits carrying it are dropped. Offsets of a topic of the same name
    /// created since (another incarnation) stay. Writes nothing if there was nothing to
    /// forget.
    ///
    /// # Errors
    /// As [`Self::commit`].
    pub(crate) fn forget_topic(
        &self,
        topic: &str,
        incarnation: Incarnation,
        durable: bool,
        make_log_durable: MakeLogDurable<'_>,
    ) -> Result<()> {
        self.check_writable()?;
        // Retired first: a commit landing after this is dropped, one landing before it is
        // forgotten with the rest.
        self.inner.lock().retired.insert(incarnation);
        let keep =
            |tp: &TopicPartition, c: &Committed| tp.topic != topic || c.incarnation != incarnation;
        self.apply(Change::Retain(&keep), durable, make_log_durable)
    }

    /// Keeps only the committed offsets `keep` accepts (the others are stale: their topic
    /// was deleted, or created again, since). Writes nothing if `keep` accepts them all.
    ///
    /// # Errors
    /// As [`Self::commit`].
    pub(crate) fn retain(
        &self,
        keep: &dyn Fn(&TopicPartition, &Committed) -> bool,
        durable: bool,
        make_log_durable: MakeLogDurable<'_>,
    ) -> Result<()> {
        self.check_writable()?;
        self.apply(Change::Retain(keep), durable, make_log_durable)
    }

    /// Makes every record appended so far durable (the log first). For the background
    /// flusher and close; a no-op when read-only.
    ///
    /// # Errors
    /// A failed `make_log_durable`, or a failed sync (the store is poisoned).
    pub(crate) fn sync(&self, make_log_durable: MakeLogDurable<'_>) -> Result<()> {
        self.check_failure()?;
        let target = self.inner.lock().next_sequence;
        self.sync_to(target, make_log_durable)?;
        self.maybe_compact(make_log_durable)
    }

    /// Whether some record appended is not yet known durable ([`Self::sync`] has work), or
    /// the store failed ([`Self::sync`] reports it).
    pub(crate) fn needs_sync(&self) -> bool {
        let next = self.inner.lock().next_sequence;
        self.failure.get().is_some() || self.sync.lock().durable_next < next
    }

    fn apply(
        &self,
        change: Change<'_>,
        durable: bool,
        make_log_durable: MakeLogDurable<'_>,
    ) -> Result<()> {
        // Compacting first: if it fails, this call wrote nothing.
        self.maybe_compact(make_log_durable)?;
        let sequence = self.append(change, !durable)?;
        if let Some(sequence) = sequence.filter(|_| durable) {
            self.sync_to(sequence.saturating_add(1), make_log_durable)?;
        }
        Ok(())
    }

    /// Appends the record for `change`, applies it, and returns its sequence number; `None`
    /// if the change changes nothing (every entry was of a retired incarnation, or nothing
    /// was to be removed), and then nothing is written.
    fn append(&self, change: Change<'_>, track_unsynced: bool) -> Result<Option<u64>> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        self.check_failure()?;
        let Some(file) = inner.file.clone() else {
            return Err(self.read_only_error());
        };
        let sequence = inner.next_sequence;
        let after = next_sequence(sequence, &self.path)?;
        // `written`: the entries the record holds (for a retain, none new: those it keeps
        // were tracked when they were written).
        let (record, replacement, written): (_, _, Vec<(&TopicPartition, &Committed)>) =
            match change {
                Change::Merge { entries, fences } => {
                    if let Some(tp) = inner.fenced_out(fences) {
                        return Err(ErrorKind::Revoked {
                            topic: tp.topic.clone(),
                            partition: tp.partition,
                        }
                        .into());
                    }
                    let live: Vec<_> = entries
                        .iter()
                        .filter(|(_, c)| !inner.retired.contains(&c.incarnation))
                        .map(|(tp, c)| (tp, c))
                        .collect();
                    if live.is_empty() {
                        return Ok(None);
                    }
                    let record = encode(sequence, false, live.iter().map(|(tp, c)| (*tp, **c)))?;
                    (record, None, live)
                }
                Change::Replace(state) => {
                    let record = encode(sequence, true, state.iter().map(|(tp, c)| (tp, *c)))?;
                    (record, Some(state.clone()), state.iter().collect())
                }
                Change::Retain(keep) => {
                    let mut state = inner.state.clone();
                    state.retain(|tp, c| keep(tp, c));
                    if state.len() == inner.state.len() {
                        return Ok(None);
                    }
                    let record = encode(sequence, true, state.iter().map(|(tp, c)| (tp, *c)))?;
                    (record, Some(state), Vec::new())
                }
            };
        if let Err(e) = file.write_all_at(&record, inner.end) {
            return Err(self.poison("write", e));
        }
        inner.end += record.len() as u64;
        inner.next_sequence = after;
        if track_unsynced {
            for (tp, committed) in &written {
                raise(&mut inner.unsynced, tp, committed.offset);
            }
        }
        match replacement {
            Some(state) => inner.state = state,
            None => {
                for (tp, committed) in written {
                    inner.state.insert(tp.clone(), *committed);
                }
            }
        }
        Ok(Some(sequence))
    }

    /// Blocks until every record below sequence `target` is durable, leading a group sync
    /// when none runs.
    fn sync_to(&self, target: u64, make_log_durable: MakeLogDurable<'_>) -> Result<()> {
        while self.lead(Some(target))? {
            let result = self.lead_sync(make_log_durable);
            self.finish_leading(result.as_ref().ok().copied());
            result?;
        }
        Ok(())
    }

    /// Waits for the running sync (if any) and takes the lead. Returns `false` if every
    /// record below `target` became durable meanwhile.
    fn lead(&self, target: Option<u64>) -> Result<bool> {
        let mut st = self.sync.lock();
        loop {
            self.check_failure()?;
            if target.is_some_and(|t| st.durable_next >= t) {
                return Ok(false);
            }
            if !st.in_progress {
                st.in_progress = true;
                return Ok(true);
            }
            self.sync_done.wait(&mut st);
        }
    }

    /// Ends a lead; `durable_next` is the new durable point if the leader reached one.
    fn finish_leading(&self, durable_next: Option<u64>) {
        let mut st = self.sync.lock();
        st.in_progress = false;
        if let Some(next) = durable_next {
            st.durable_next = st.durable_next.max(next);
        }
        self.sync_done.notify_all();
    }

    /// The leader's work: the logs of the unsynced records, then the file. Returns the
    /// sequence below which everything is now durable.
    fn lead_sync(&self, make_log_durable: MakeLogDurable<'_>) -> Result<u64> {
        let (file, next, pending) = {
            let mut inner = self.inner.lock();
            let pending = std::mem::take(&mut inner.unsynced);
            (inner.file.clone(), inner.next_sequence, pending)
        };
        let Some(file) = file else {
            return Ok(next);
        };
        if let Err(e) = make_durable(&pending, make_log_durable) {
            let mut inner = self.inner.lock();
            for (tp, offset) in &pending {
                raise(&mut inner.unsynced, tp, *offset);
            }
            return Err(e);
        }
        file.sync_data().map_err(|e| self.poison("sync", e))?;
        Ok(next)
    }

    fn maybe_compact(&self, make_log_durable: MakeLogDurable<'_>) -> Result<()> {
        if !self
            .inner
            .lock()
            .needs_compaction(self.compact_threshold_bytes)
        {
            return Ok(());
        }
        self.lead(None)?;
        let result = self.compact(make_log_durable);
        self.finish_leading(result.as_ref().ok().copied().flatten());
        result.map(drop)
    }

    /// Replaces the file with one snapshot record of the state. Runs as the sync leader and
    /// holds `inner`, so no record is appended meanwhile. Returns the new durable point.
    fn compact(&self, make_log_durable: MakeLogDurable<'_>) -> Result<Option<u64>> {
        let mut inner = self.inner.lock();
        if !inner.needs_compaction(self.compact_threshold_bytes) || inner.file.is_none() {
            return Ok(None);
        }
        let pending = std::mem::take(&mut inner.unsynced);
        if let Err(e) = make_durable(&pending, make_log_durable) {
            inner.unsynced = pending;
            return Err(e);
        }
        let after = next_sequence(inner.next_sequence, &self.path)?;
        let replay = Replay {
            state: inner.state.clone(),
            next_sequence: inner.next_sequence,
            valid_end: 0,
            damage: None,
        };
        let (file, len) = match write_snapshot_file(self.vfs.as_ref(), &self.path, &replay) {
            Ok(done) => done,
            Err(e) => return Err(self.poison("compact", e.into_io())),
        };
        inner.file = Some(file);
        inner.end = len;
        inner.base_len = len;
        inner.next_sequence = after;
        Ok(Some(after))
    }

    fn check_writable(&self) -> Result<()> {
        self.check_failure()?;
        if self.inner.lock().file.is_none() {
            return Err(self.read_only_error());
        }
        Ok(())
    }

    fn check_failure(&self) -> Result<()> {
        match self.failure.get() {
            None => Ok(()),
            Some(first) => Err(Error::io(
                "use",
                &self.path,
                io::Error::new(
                    first.kind(),
                    format!("stopped after an earlier failed write or sync: {first}"),
                ),
            )),
        }
    }

    /// Records the first failure, wakes every waiter, and returns the error for this call.
    fn poison(&self, op: &'static str, e: io::Error) -> Error {
        let source = Arc::new(e);
        self.failure.get_or_init(|| Arc::clone(&source));
        let _wake = self.sync.lock();
        self.sync_done.notify_all();
        ErrorKind::Io {
            op,
            path: self.path.clone(),
            source,
        }
        .into()
    }

    fn read_only_error(&self) -> Error {
        ErrorKind::ReadOnly {
            dir: self.dir.clone(),
        }
        .into()
    }

    #[cfg(test)]
    fn set_compact_threshold(&mut self, bytes: u64) {
        self.compact_threshold_bytes = bytes;
    }
}

impl Inner {
    fn committed(&self, tp: &TopicPartition, incarnation: Incarnation) -> Option<u64> {
        self.state
            .get(tp)
            .filter(|c| c.incarnation == incarnation)
            .map(|c| c.offset)
    }

    /// The first partition of `fences` taken over with a higher fence since.
    fn fenced_out<'a>(&self, fences: &'a [(TopicPartition, Fence)]) -> Option<&'a TopicPartition> {
        fences
            .iter()
            .find(|(tp, fence)| self.fences.get(tp).is_some_and(|highest| fence < highest))
            .map(|(tp, _)| tp)
    }

    fn needs_compaction(&self, threshold_bytes: u64) -> bool {
        self.file.is_some() && self.end >= threshold_bytes.max(self.base_len.saturating_mul(2))
    }
}

/// Keeps the highest offset per partition.
fn raise(map: &mut BTreeMap<TopicPartition, u64>, tp: &TopicPartition, offset: u64) {
    map.entry(tp.clone())
        .and_modify(|o| *o = (*o).max(offset))
        .or_insert(offset);
}

/// Makes the logs of non-durable records durable before a sync covers them. A partition that
/// no longer exists has no log left to get ahead of, so it is skipped rather than blocking
/// the group's syncs.
fn make_durable(
    pending: &BTreeMap<TopicPartition, u64>,
    make_log_durable: MakeLogDurable<'_>,
) -> Result<()> {
    pending
        .iter()
        .try_for_each(|(tp, offset)| match make_log_durable(tp, *offset) {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::TopicNotFound { .. } | ErrorKind::PartitionOutOfRange { .. }
                ) =>
            {
                Ok(())
            }
            other => other,
        })
}

fn next_sequence(sequence: u64, path: &Path) -> Result<u64> {
    sequence
        .checked_add(1)
        .ok_or_else(|| Error::corrupt_file(path, "record sequence numbers are exhausted"))
}

/// Encodes one record.
fn encode<'a>(
    sequence: u64,
    snapshot: bool,
    entries: impl Iterator<Item = (&'a TopicPartition, Committed)>,
) -> Result<Vec<u8>> {
    let entries: Vec<EntryRef<'_>> = entries
        .map(|(tp, c)| {
            let topic = tp.topic.as_str();
            (topic, tp.partition, c.incarnation.get(), c.offset)
        })
        .collect();
    offset_commit::encode_record(sequence, snapshot, &entries).map_err(|e| match e {
        EncodeError::TopicTooLong { len } => ErrorKind::InvalidTopicName {
            name: entries
                .iter()
                .find(|(topic, ..)| topic.len() == len)
                .map(|(topic, ..)| (*topic).to_owned())
                .unwrap_or_default(),
            reason: "too long to store a committed offset for",
        }
        .into(),
        EncodeError::RecordTooLarge { len } => Error::invalid_config(format!(
            "a commit of {} offsets ({len} bytes) exceeds the 4 GiB record limit",
            entries.len()
        )),
        // An `Incarnation` is never 0.
        EncodeError::ZeroIncarnation => {
            Error::invalid_config("a committed offset without a topic incarnation")
        }
    })
}

/// Creates `dir` if missing (durably: see [`vfs::create_dir_all_synced`]), and removes
/// temporary files an interrupted compaction or repair left.
fn prepare_dir(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    if !vfs.exists(dir).ctx("check", dir)? {
        vfs::create_dir_all_synced(vfs, dir).ctx("create", dir)?;
        return Ok(());
    }
    let mut removed = false;
    for entry in vfs.read_dir(dir).ctx("list", dir)? {
        if entry.name.starts_with(OFFSETS_FILE_NAME) && entry.name.ends_with(vfs::TMP_SUFFIX) {
            let tmp = dir.join(&entry.name);
            vfs.remove_file(&tmp).ctx("remove", &tmp)?;
            removed = true;
        }
    }
    if removed {
        vfs.sync_dir(dir).ctx("sync", dir)?;
    }
    Ok(())
}

/// Reads the whole file; creates it (empty, through a rename) if missing, unless
/// `read_only`, which returns `None` then.
fn read_file(vfs: &dyn Vfs, path: &Path, read_only: bool) -> Result<Option<Vec<u8>>> {
    let file = match vfs.open(path, OpenMode::Read) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound && read_only => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let header = offset_commit::encode_header(0);
            vfs::write_atomic(vfs, path, &header).ctx("create", path)?;
            return Ok(Some(header.to_vec()));
        }
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let len = file.len().ctx("read the length of", path)?;
    let len = usize::try_from(len)
        .map_err(|_| Error::corrupt_file(path, format!("impossible length {len}")))?;
    let mut bytes = vec![0u8; len];
    file.read_exact_at(&mut bytes, 0).ctx("read", path)?;
    Ok(Some(bytes))
}

/// Decodes a file's bytes into the state of its valid records.
fn replay(bytes: &[u8], path: &Path, synced_whole: bool) -> Result<Replay> {
    let (first, header_damage) = match file_header::decode_small(bytes, OFFSETS_MAGIC) {
        Ok(first) => (Some(first), None),
        Err(HeaderError::UnsupportedVersion(found)) => {
            return Err(ErrorKind::IncompatibleFormat {
                path: path.to_path_buf(),
                found: u32::from(found),
                supported: u32::from(FORMAT_VERSION),
            }
            .into());
        }
        Err(e) => (None, Some(format!("its header is damaged ({e})"))),
    };
    let body = bytes.get(SMALL_HEADER_LEN..).unwrap_or_default();
    let decoded = offset_commit::decode_records(body, first);
    let mut state = State::new();
    for record in &decoded.records {
        if record.snapshot {
            state.clear();
        }
        for entry in &record.entries {
            // The decoder refuses incarnation 0.
            let Some(incarnation) = Incarnation::from_stored(entry.incarnation) else {
                continue;
            };
            let committed = Committed {
                incarnation,
                offset: entry.offset,
            };
            state.insert(
                TopicPartition::new(entry.topic.clone(), entry.partition),
                committed,
            );
        }
    }
    let next_sequence = match decoded.records.last() {
        Some(last) => next_sequence(last.sequence, path)?,
        None => first.unwrap_or_default(),
    };
    let header_len = bytes.len().min(SMALL_HEADER_LEN);
    let valid_end = (header_len + decoded.valid_len) as u64;
    let record_damage = match decoded.stop {
        Stop::Corrupt { error, next_valid } => Some(format!(
            "the record at byte position {valid_end} is invalid ({error}) but a valid record \
             follows at byte position {}",
            header_len + next_valid
        )),
        Stop::TornTail { error } if synced_whole => Some(format!(
            "the last record, at byte position {valid_end}, is invalid ({error}) although the \
             file was synced at the last clean close"
        )),
        Stop::Clean | Stop::TornTail { .. } => None,
    };
    let damage = header_damage.or(record_damage).map(|why| {
        format!(
            "offsets file {} is damaged: {why}; using the state of the {} records before the \
             damage",
            path.display(),
            decoded.records.len()
        )
    });
    Ok(Replay {
        state,
        next_sequence,
        valid_end,
        damage,
    })
}

/// Copies a damaged file's bytes to the next free `offsets.damaged-<n>`.
fn keep_evidence(vfs: &dyn Vfs, dir: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let next = vfs
        .read_dir(dir)
        .ctx("list", dir)?
        .iter()
        .filter_map(|entry| entry.name.strip_prefix(DAMAGED_PREFIX)?.parse::<u64>().ok())
        .max()
        .map_or(0, |n| n.saturating_add(1));
    let evidence = dir.join(format!("{DAMAGED_PREFIX}{next}"));
    vfs::write_atomic(vfs, &evidence, bytes).ctx("write", &evidence)?;
    Ok(evidence)
}

/// Replaces the file (atomically) with a header and one snapshot record of `replay.state`
/// with sequence `replay.next_sequence`; returns the file opened for appends and its length.
fn write_snapshot_file(
    vfs: &dyn Vfs,
    path: &Path,
    replay: &Replay,
) -> Result<(Arc<dyn VfsFile>, u64)> {
    let sequence = replay.next_sequence;
    let record = encode(sequence, true, replay.state.iter().map(|(tp, c)| (tp, *c)))?;
    let mut bytes = offset_commit::encode_header(sequence).to_vec();
    bytes.extend_from_slice(&record);
    vfs::write_atomic(vfs, path, &bytes).ctx("rewrite", path)?;
    let file = vfs.open(path, OpenMode::ReadWrite).ctx("open", path)?;
    Ok((file, bytes.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::StdVfs;
    use crate::vfs::faulty::FaultyVfs;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn tp(topic: &str, partition: u32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    #[expect(clippy::unnecessary_wraps, reason = "the callback's signature")]
    fn no_log(_: &TopicPartition, _: u64) -> Result<()> {
        Ok(())
    }

    fn open_at(dir: &Path) -> (OffsetStore, OffsetLoad) {
        OffsetStore::open(Arc::new(StdVfs), dir, false, false).unwrap()
    }

    fn open_read_only(dir: &Path) -> (OffsetStore, OffsetLoad) {
        OffsetStore::open(Arc::new(StdVfs), dir, true, false).unwrap()
    }

    /// The incarnation of every topic in these tests, unless a test says otherwise.
    fn inc() -> Incarnation {
        Incarnation::from_stored(7).unwrap()
    }

    /// `entries` committed against [`inc`].
    fn at(entries: &[(TopicPartition, u64)]) -> Vec<(TopicPartition, Committed)> {
        entries
            .iter()
            .map(|(tp, offset)| {
                let committed = Committed {
                    incarnation: inc(),
                    offset: *offset,
                };
                (tp.clone(), committed)
            })
            .collect()
    }

    /// The store's calls with offsets of [`inc`] only.
    impl OffsetStore {
        fn commit_at(
            &self,
            entries: &[(TopicPartition, u64)],
            durable: bool,
            make_log_durable: MakeLogDurable<'_>,
        ) -> Result<()> {
            self.commit(&at(entries), durable, make_log_durable)
        }

        fn committed_at(&self, tp: &TopicPartition) -> Option<u64> {
            self.committed(tp, inc())
        }

        fn all_at(&self) -> BTreeMap<TopicPartition, u64> {
            self.all()
                .into_iter()
                .map(|(tp, c)| {
                    assert_eq!(c.incarnation, inc(), "{tp}");
                    (tp, c.offset)
                })
                .collect()
        }

        fn reset_at(
            &self,
            state: &BTreeMap<TopicPartition, u64>,
            durable: bool,
            make_log_durable: MakeLogDurable<'_>,
        ) -> Result<()> {
            let entries: Vec<(TopicPartition, u64)> =
                state.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
            self.reset(
                &at(&entries).into_iter().collect(),
                durable,
                make_log_durable,
            )
        }

        fn remove_at(
            &self,
            tps: &[TopicPartition],
            durable: bool,
            make_log_durable: MakeLogDurable<'_>,
        ) -> Result<()> {
            self.retain(&|tp, _| !tps.contains(tp), durable, make_log_durable)
        }
    }

    fn map(entries: &[(TopicPartition, u64)]) -> BTreeMap<TopicPartition, u64> {
        entries.iter().cloned().collect()
    }

    /// Commits four records; returns the file's bytes, the state after each prefix of
    /// records (`states[k]`: after `k` records) and the file length after each record.
    fn four_commits(dir: &Path) -> (Vec<u8>, Vec<BTreeMap<TopicPartition, u64>>, Vec<usize>) {
        let (store, _) = open_at(dir);
        let commits = [
            vec![(tp("orders", 0), 10), (tp("orders", 1), 20)],
            vec![(tp("orders", 0), 15)],
            vec![(tp("payments", 2), 7), (tp("orders", 1), 25)],
            vec![(tp("orders", 0), 16), (tp("payments", 2), 9)],
        ];
        let mut states = vec![BTreeMap::new()];
        let mut ends = vec![SMALL_HEADER_LEN];
        for entries in &commits {
            store.commit_at(entries, false, &no_log).unwrap();
            states.push(store.all_at());
            ends.push(usize::try_from(std::fs::metadata(store.path()).unwrap().len()).unwrap());
        }
        (std::fs::read(store.path()).unwrap(), states, ends)
    }

    #[test]
    fn later_entries_win_and_commits_survive_a_process_crash() {
        let dir = tempfile::tempdir().unwrap();
        let (store, load) = open_at(dir.path());
        assert_eq!(load, OffsetLoad::default());
        assert_eq!(store.committed_at(&tp("t", 0)), None);
        store
            .commit_at(
                &[(tp("t", 0), 5), (tp("t", 1), 3), (tp("t", 0), 6)],
                false,
                &no_log,
            )
            .unwrap();
        store.commit_at(&[(tp("t", 1), 4)], false, &no_log).unwrap();
        // A rewind is allowed: Kafka lets a consumer commit an earlier offset.
        store.commit_at(&[(tp("t", 0), 2)], false, &no_log).unwrap();
        let expected = map(&[(tp("t", 0), 2), (tp("t", 1), 4)]);
        assert_eq!(store.all_at(), expected);
        assert!(store.needs_sync());
        // Dropped without a sync, as a killed process would: the page cache keeps the records.
        drop(store);
        let (store, load) = open_at(dir.path());
        assert_eq!(load, OffsetLoad::default());
        assert_eq!(store.all_at(), expected);
        assert_eq!(store.committed_at(&tp("t", 1)), Some(4));
        assert!(!store.needs_sync());
    }

    #[test]
    fn durable_commits_sync_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (vfs, faults) = FaultyVfs::new();
        let (store, _) = OffsetStore::open(vfs, dir.path(), false, false).unwrap();
        let before = faults.offsets_syncs.load(Ordering::SeqCst);
        store.commit_at(&[(tp("t", 0), 9)], true, &no_log).unwrap();
        assert_eq!(faults.offsets_syncs.load(Ordering::SeqCst), before + 1);
        assert!(!store.needs_sync());
        // Nothing new: sync does not touch the disk.
        store.sync(&no_log).unwrap();
        assert_eq!(faults.offsets_syncs.load(Ordering::SeqCst), before + 1);
        drop(store);
        let (store, _) = open_at(dir.path());
        assert_eq!(store.committed_at(&tp("t", 0)), Some(9));
    }

    #[test]
    fn make_log_durable_runs_before_the_record_and_only_when_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open_at(dir.path());
        let path = store.path().to_path_buf();
        let calls = Mutex::new(Vec::new());
        let record = |tp: &TopicPartition, offset: u64| -> Result<()> {
            let len = std::fs::metadata(&path).unwrap().len();
            calls.lock().push((tp.clone(), offset, len));
            Ok(())
        };
        store.commit_at(&[(tp("a", 0), 5)], false, &record).unwrap();
        store.commit_at(&[(tp("a", 0), 7)], false, &record).unwrap();
        assert!(
            calls.lock().is_empty(),
            "non-durable commits never sync the log"
        );
        let len = std::fs::metadata(&path).unwrap().len();
        store.commit_at(&[(tp("b", 1), 3)], true, &record).unwrap();
        let calls = calls.into_inner();
        // First the committed entry, before its record was written; then, as the sync's
        // leader, the highest unsynced offset of the earlier non-durable records.
        assert_eq!(calls, [(tp("b", 1), 3, len), (tp("a", 0), 7, calls[1].2)]);
        assert!(calls[1].2 > len);
    }

    #[test]
    fn sync_makes_the_log_durable_first_and_retries_after_a_failed_log_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open_at(dir.path());
        store
            .commit_at(&[(tp("a", 0), 5), (tp("b", 0), 1)], false, &no_log)
            .unwrap();
        store.commit_at(&[(tp("a", 0), 4)], false, &no_log).unwrap();
        let failing = |_: &TopicPartition, _: u64| -> Result<()> {
            Err(Error::from_io(io::Error::from_raw_os_error(5)))
        };
        assert!(store.sync(&failing).is_err());
        assert!(
            store.needs_sync(),
            "a failed log sync leaves the offsets unsynced"
        );
        let calls = Mutex::new(Vec::new());
        let record = |tp: &TopicPartition, offset: u64| -> Result<()> {
            calls.lock().push((tp.clone(), offset));
            Ok(())
        };
        store.sync(&record).unwrap();
        assert_eq!(calls.into_inner(), [(tp("a", 0), 5), (tp("b", 0), 1)]);
        assert!(!store.needs_sync());
        // The store still works: a log failure does not poison it.
        store.commit_at(&[(tp("a", 0), 6)], true, &no_log).unwrap();
        // A deleted topic has no log to get ahead of: it does not block the group's syncs.
        store
            .commit_at(&[(tp("gone", 0), 6)], false, &no_log)
            .unwrap();
        let deleted =
            |tp: &TopicPartition, _: u64| -> Result<()> { Err(Error::topic_not_found(&tp.topic)) };
        store.sync(&deleted).unwrap();
        assert!(!store.needs_sync());
    }

    fn incarnation(value: u64) -> Incarnation {
        Incarnation::from_stored(value).unwrap()
    }

    fn of(value: u64, offset: u64) -> Committed {
        Committed {
            incarnation: incarnation(value),
            offset,
        }
    }

    fn len_of(store: &OffsetStore) -> u64 {
        std::fs::metadata(store.path()).unwrap().len()
    }

    #[test]
    fn an_offset_of_another_incarnation_counts_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open_at(dir.path());
        store
            .commit(&[(tp("t", 0), of(1, 5))], true, &no_log)
            .unwrap();
        assert_eq!(store.committed(&tp("t", 0), incarnation(1)), Some(5));
        assert_eq!(store.committed(&tp("t", 0), incarnation(2)), None);
        // A commit against the new incarnation replaces it.
        store
            .commit(&[(tp("t", 0), of(2, 1))], false, &no_log)
            .unwrap();
        assert_eq!(store.committed(&tp("t", 0), incarnation(1)), None);
        assert_eq!(store.committed(&tp("t", 0), incarnation(2)), Some(1));
        drop(store);
        let (store, _) = open_at(dir.path());
        let expected: State = [(tp("t", 0), of(2, 1))].into();
        assert_eq!(store.all(), expected, "the incarnation is stored");
    }

    #[test]
    fn forgetting_a_topic_drops_its_incarnation_and_refuses_later_commits_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open_at(dir.path());
        let entries = [
            (tp("t", 0), of(1, 5)),
            (tp("t", 1), of(2, 6)),
            (tp("u", 0), of(1, 1)),
        ];
        store.commit(&entries, true, &no_log).unwrap();
        store
            .forget_topic("t", incarnation(1), true, &no_log)
            .unwrap();
        let mut expected: State = [(tp("t", 1), of(2, 6)), (tp("u", 0), of(1, 1))].into();
        assert_eq!(store.all(), expected, "only t's incarnation 1 goes");
        assert!(!store.needs_sync(), "durably");
        let len = len_of(&store);
        // A late commit against the deleted topic is dropped, writing nothing.
        store
            .commit(&[(tp("t", 0), of(1, 9))], true, &no_log)
            .unwrap();
        assert_eq!(len_of(&store), len);
        assert_eq!(store.committed(&tp("t", 0), incarnation(1)), None);
        // Mixed with a live entry: only the live one is written.
        let mixed = [(tp("t", 0), of(1, 9)), (tp("t", 2), of(2, 3))];
        store.commit(&mixed, false, &no_log).unwrap();
        expected.insert(tp("t", 2), of(2, 3));
        assert_eq!(store.all(), expected);
        // Nothing left to forget: nothing written.
        let len = len_of(&store);
        store
            .forget_topic("t", incarnation(1), true, &no_log)
            .unwrap();
        assert_eq!(len_of(&store), len);
        drop(store);
        let (store, load) = open_at(dir.path());
        assert_eq!(load, OffsetLoad::default());
        assert_eq!(store.all(), expected);
    }

    #[test]
    fn retain_drops_what_it_refuses_in_one_record_and_writes_nothing_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open_at(dir.path());
        let entries = [(tp("a", 0), of(1, 5)), (tp("b", 0), of(2, 6))];
        store.commit(&entries, false, &no_log).unwrap();
        let len = len_of(&store);
        store.retain(&|_, _| true, true, &no_log).unwrap();
        assert_eq!(len_of(&store), len, "nothing refused: nothing written");
        let keep = |_: &TopicPartition, c: &Committed| c.incarnation == incarnation(2);
        store.retain(&keep, true, &no_log).unwrap();
        let expected: State = [(tp("b", 0), of(2, 6))].into();
        assert_eq!(store.all(), expected);
        drop(store);
        let (store, _) = open_at(dir.path());
        assert_eq!(store.all(), expected);
    }

    #[test]
    fn a_failed_make_log_durable_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open_at(dir.path());
        let failing =
            |_: &TopicPartition, _: u64| -> Result<()> { Err(Error::topic_not_found("a")) };
        let len = std::fs::metadata(store.path()).unwrap().len();
        assert!(store.commit_at(&[(tp("a", 0), 5)], true, &failing).is_err());
        assert_eq!(std::fs::metadata(store.path()).unwrap().len(), len);
        assert_eq!(store.committed_at(&tp("a", 0)), None);
    }

    #[test]
    fn every_truncation_of_the_last_record_recovers_the_previous_state() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, states, ends) = four_commits(dir.path());
        let path = dir.path().join(OFFSETS_FILE_NAME);
        for cut in ends[3]..ends[4] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let (store, load) = open_at(dir.path());
            assert_eq!(store.all_at(), states[3], "cut {cut}");
            assert_eq!(load.damaged, None, "cut {cut}");
            assert_eq!(load.truncated_bytes, (cut - ends[3]) as u64);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), ends[3] as u64);
        }
        // Appends continue where the valid records end.
        let (store, _) = open_at(dir.path());
        store
            .commit_at(&[(tp("new", 0), 1)], true, &no_log)
            .unwrap();
        drop(store);
        let (store, load) = open_at(dir.path());
        let mut expected = states[3].clone();
        expected.insert(tp("new", 0), 1);
        assert_eq!(store.all_at(), expected);
        assert_eq!(load, OffsetLoad::default());
    }

    /// After a clean close the whole file was synced: an invalid last record is damage, not a
    /// torn write, and is reported (the previous state is used).
    #[test]
    fn a_damaged_last_record_after_a_clean_close_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, states, ends) = four_commits(dir.path());
        let path = dir.path().join(OFFSETS_FILE_NAME);
        for at in ends[3]..ends[4] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            std::fs::write(&path, &damaged).unwrap();
            let (store, load) =
                OffsetStore::open(Arc::new(StdVfs), dir.path(), true, true).unwrap();
            assert_eq!(store.all_at(), states[3], "byte {at}");
            assert!(load.damaged.is_some(), "byte {at}: damage must be reported");
        }
    }

    /// Every single-bit flip gives the state of a prefix of the records, never a changed
    /// value; a flip anywhere but the last record is reported. (Read-only opens, which write
    /// nothing, so the loop is fast.)
    #[test]
    fn every_bit_flip_yields_a_prefix_state_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, states, ends) = four_commits(dir.path());
        let path = dir.path().join(OFFSETS_FILE_NAME);
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            std::fs::write(&path, &damaged).unwrap();
            let (store, load) = open_read_only(dir.path());
            let pos = bit / 8;
            // The records that end at or before the flipped byte survive.
            let intact = ends
                .iter()
                .filter(|&&end| end <= pos)
                .count()
                .saturating_sub(1);
            if pos < SMALL_HEADER_LEN {
                // A damaged header: every record is still checked by its own CRC.
                assert_eq!(store.all_at(), states[4], "bit {bit}");
                assert!(load.damaged.is_some(), "bit {bit}");
            } else if intact < 3 {
                assert_eq!(store.all_at(), states[intact], "bit {bit}");
                assert!(load.damaged.is_some(), "bit {bit}");
            } else {
                assert_eq!(store.all_at(), states[3], "bit {bit}");
                assert_eq!(load.damaged, None, "bit {bit}: a torn tail");
            }
            assert_eq!(
                std::fs::read(&path).unwrap(),
                damaged,
                "read-only writes nothing"
            );
        }
    }

    #[test]
    fn corruption_falls_back_keeps_the_evidence_and_rewrites_a_clean_file() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, states, ends) = four_commits(dir.path());
        let path = dir.path().join(OFFSETS_FILE_NAME);
        let mut damaged = bytes.clone();
        damaged[ends[1] + 10] ^= 0x40;
        std::fs::write(&path, &damaged).unwrap();
        let (store, load) = open_at(dir.path());
        assert_eq!(store.all_at(), states[1]);
        let reason = load.damaged.unwrap();
        assert!(
            reason.contains("damaged") && reason.contains("1 records"),
            "{reason}"
        );
        let evidence = load.evidence.unwrap();
        assert_eq!(evidence, dir.path().join("offsets.damaged-0"));
        assert_eq!(std::fs::read(&evidence).unwrap(), damaged);
        store
            .commit_at(&[(tp("orders", 0), 30)], true, &no_log)
            .unwrap();
        drop(store);
        let (store, load) = open_at(dir.path());
        assert_eq!(load, OffsetLoad::default(), "the rewritten file is clean");
        let mut expected = states[1].clone();
        expected.insert(tp("orders", 0), 30);
        assert_eq!(store.all_at(), expected);
        drop(store);
        // A second damage keeps a second piece of evidence.
        let mut again = std::fs::read(&path).unwrap();
        again[SMALL_HEADER_LEN + 5] ^= 1;
        std::fs::write(&path, &again).unwrap();
        let (store, load) = open_at(dir.path());
        assert_eq!(load.evidence, Some(dir.path().join("offsets.damaged-1")));
        assert_eq!(
            store.all_at(),
            BTreeMap::new(),
            "header damage: no earlier valid state"
        );
        assert!(load.damaged.is_some());
    }

    #[test]
    fn a_newer_format_version_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(OFFSETS_FILE_NAME);
        let mut header = offset_commit::encode_header(0);
        header[8] = 99;
        let crc = crc32c::crc32c(&header[..28]);
        header[28..].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, header).unwrap();
        let err = OffsetStore::open(Arc::new(StdVfs), dir.path(), false, false).unwrap_err();
        assert!(matches!(
            err.kind(),
            ErrorKind::IncompatibleFormat { found: 99, .. }
        ));
        assert_eq!(std::fs::read(&path).unwrap(), header);
    }

    #[test]
    fn read_only_creates_nothing_and_refuses_commits() {
        let dir = tempfile::tempdir().unwrap();
        let group = dir.path().join("g");
        let (store, load) = open_read_only(&group);
        assert_eq!(load, OffsetLoad::default());
        assert!(store.all_at().is_empty());
        assert!(!group.exists());
        let err = store
            .commit_at(&[(tp("t", 0), 1)], false, &no_log)
            .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::ReadOnly { .. }));
        store.sync(&no_log).unwrap();
        // A torn tail is reported but left in place.
        let (bytes, states, ends) = four_commits(&group);
        let path = group.join(OFFSETS_FILE_NAME);
        std::fs::write(&path, &bytes[..ends[4] - 3]).unwrap();
        let (store, load) = open_read_only(&group);
        assert_eq!(store.all_at(), states[3]);
        assert_eq!(load.truncated_bytes, (ends[4] - 3 - ends[3]) as u64);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (ends[4] - 3) as u64
        );
    }

    #[test]
    fn a_failed_sync_poisons_the_store_and_is_never_reported_as_success() {
        let dir = tempfile::tempdir().unwrap();
        let (vfs, faults) = FaultyVfs::new();
        let (store, _) = OffsetStore::open(vfs, dir.path(), false, false).unwrap();
        store.commit_at(&[(tp("t", 0), 1)], true, &no_log).unwrap();
        faults.fail_next_offsets_sync.store(true, Ordering::SeqCst);
        let err = store
            .commit_at(&[(tp("t", 0), 2)], true, &no_log)
            .unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Io { op: "sync", .. }),
            "{err}"
        );
        let syncs = faults.offsets_syncs.load(Ordering::SeqCst);
        // The next fsync would "succeed" (Linux drops the dirty pages): it is never tried.
        for result in [
            store.commit_at(&[(tp("t", 0), 3)], true, &no_log),
            store.commit_at(&[(tp("t", 0), 3)], false, &no_log),
            store.sync(&no_log),
            store.remove_at(&[tp("t", 0)], true, &no_log),
        ] {
            let err = result.unwrap_err();
            assert!(
                err.to_string().contains("stopped after an earlier failed"),
                "{err}"
            );
        }
        assert!(store.needs_sync());
        assert_eq!(faults.offsets_syncs.load(Ordering::SeqCst), syncs);
    }

    #[test]
    fn a_failed_write_poisons_the_store_and_reopen_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let (vfs, faults) = FaultyVfs::new();
        let (store, _) = OffsetStore::open(vfs, dir.path(), false, false).unwrap();
        store.commit_at(&[(tp("t", 0), 1)], false, &no_log).unwrap();
        faults.fail_next_offsets_write.store(true, Ordering::SeqCst);
        let err = store
            .commit_at(&[(tp("t", 0), 2)], false, &no_log)
            .unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Io { op: "write", .. }),
            "{err}"
        );
        assert!(store.commit_at(&[(tp("t", 0), 3)], false, &no_log).is_err());
        drop(store);
        let (store, _) = open_at(dir.path());
        assert_eq!(store.committed_at(&tp("t", 0)), Some(1));
    }

    #[test]
    fn remove_and_reset_replace_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open_at(dir.path());
        store
            .commit_at(
                &[(tp("a", 0), 1), (tp("a", 1), 2), (tp("b", 0), 3)],
                false,
                &no_log,
            )
            .unwrap();
        store
            .remove_at(&[tp("a", 1), tp("zz", 9)], true, &no_log)
            .unwrap();
        assert_eq!(store.all_at(), map(&[(tp("a", 0), 1), (tp("b", 0), 3)]));
        let reset = map(&[(tp("c", 0), 0)]);
        store.reset_at(&reset, false, &no_log).unwrap();
        store.commit_at(&[(tp("c", 1), 4)], false, &no_log).unwrap();
        let expected = map(&[(tp("c", 0), 0), (tp("c", 1), 4)]);
        assert_eq!(store.all_at(), expected);
        drop(store);
        let (store, _) = open_at(dir.path());
        assert_eq!(store.all_at(), expected);
    }

    #[test]
    fn compaction_keeps_the_state_syncs_the_log_first_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = open_at(dir.path());
        store.set_compact_threshold(512);
        let calls = AtomicUsize::new(0);
        let count = |_: &TopicPartition, _: u64| -> Result<()> {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        };
        let mut expected = BTreeMap::new();
        for i in 0..300u64 {
            let entries = [(tp("t", (i % 3) as u32), i), (tp("u", 0), i / 2)];
            store.commit_at(&entries, i % 10 == 0, &count).unwrap();
            expected.extend(entries);
            let len = std::fs::metadata(store.path()).unwrap().len();
            assert!(len < 512 + 100, "compacted: {len} bytes");
        }
        assert_eq!(store.all_at(), expected);
        // Non-durable commits paid a log sync only when a compaction made them durable.
        let calls = calls.load(Ordering::SeqCst);
        assert!(calls > 60 && calls < 300 * 2, "{calls} log syncs");
        drop(store);
        let (store, load) = open_at(dir.path());
        assert_eq!(load, OffsetLoad::default());
        assert_eq!(store.all_at(), expected);
    }

    #[test]
    fn a_crash_during_compaction_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (vfs, faults) = FaultyVfs::new();
        let (mut store, _) = OffsetStore::open(vfs, dir.path(), false, false).unwrap();
        store.set_compact_threshold(256);
        store.commit_at(&[(tp("t", 0), 1)], true, &no_log).unwrap();
        faults.fail_next_offsets_sync.store(true, Ordering::SeqCst);
        let mut last = 1;
        let err = loop {
            last += 1;
            match store.commit_at(&[(tp("t", 0), last)], false, &no_log) {
                Ok(()) => assert!(last < 100),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err.kind(), ErrorKind::Io { op: "compact", .. }),
            "{err}"
        );
        assert!(
            store
                .commit_at(&[(tp("t", 0), last + 1)], false, &no_log)
                .is_err()
        );
        drop(store);
        // The interrupted compaction left its temporary file; the old file is whole.
        let tmp = vfs::tmp_path(&dir.path().join(OFFSETS_FILE_NAME));
        assert!(tmp.exists());
        let (store, load) = open_at(dir.path());
        assert!(!tmp.exists());
        assert_eq!(load, OffsetLoad::default());
        // The commit that started the compaction wrote nothing; every earlier one is kept.
        assert_eq!(store.committed_at(&tp("t", 0)), Some(last - 1));
    }

    #[test]
    fn concurrent_durable_commits_share_syncs() {
        const THREADS: u32 = 8;
        const COMMITS: u64 = 25;
        let dir = tempfile::tempdir().unwrap();
        let (vfs, faults) = FaultyVfs::new();
        faults.offsets_sync_delay_ms.store(3, Ordering::SeqCst);
        let (store, _) = OffsetStore::open(vfs, dir.path(), false, false).unwrap();
        let syncs = &faults.offsets_syncs;
        let before = syncs.load(Ordering::SeqCst);
        std::thread::scope(|s| {
            for thread in 0..THREADS {
                let store = &store;
                s.spawn(move || {
                    for offset in 1..=COMMITS {
                        store
                            .commit_at(&[(tp("t", thread), offset)], true, &no_log)
                            .unwrap();
                        assert_eq!(store.committed_at(&tp("t", thread)), Some(offset));
                    }
                });
            }
        });
        let total = u64::from(THREADS) * COMMITS;
        let used = (syncs.load(Ordering::SeqCst) - before) as u64;
        assert!(
            used * 2 <= total,
            "{used} syncs for {total} durable commits"
        );
        let expected: BTreeMap<_, _> = (0..THREADS).map(|t| (tp("t", t), COMMITS)).collect();
        assert_eq!(store.all_at(), expected);
        drop(store);
        let (store, _) = open_at(dir.path());
        assert_eq!(store.all_at(), expected);
    }

    #[test]
    fn a_commit_fenced_below_a_take_over_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open_at(dir.path());
        let (p0, p1) = (tp("t", 0), tp("t", 1));
        let (old, new) = (Fence::new(1), Fence::new(2));
        let fenced = |offset: u64, fence: Fence| {
            let entries = at(&[(p0.clone(), 1), (p1.clone(), offset)]);
            store.commit_fenced(
                &entries,
                &[(p0.clone(), Fence::new(0)), (p1.clone(), fence)],
                true,
                &no_log,
            )
        };
        // Before any take-over, a fence is not checked against anything.
        fenced(5, old).unwrap();
        assert_eq!(
            store.take_over(&p1, new, inc()),
            Some(5),
            "the read is the take-over's"
        );
        let len = std::fs::metadata(store.path()).unwrap().len();
        let err = fenced(9, old).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Revoked { topic, partition: 1 } if topic == "t"),
            "{err}"
        );
        assert_eq!(
            std::fs::metadata(store.path()).unwrap().len(),
            len,
            "nothing written"
        );
        assert_eq!(store.committed_at(&p0), Some(1));
        assert_eq!(store.committed_at(&p1), Some(5));
        fenced(7, new).unwrap();
        // A take-over with a lower fence (a holding that was fenced out itself) lowers nothing.
        assert_eq!(store.take_over(&p1, old, inc()), Some(7));
        assert!(fenced(8, old).is_err());
        // Commits without fences (assigned consumers, admin) are not fenced.
        store.commit_at(&[(p1.clone(), 3)], false, &no_log).unwrap();
        assert_eq!(store.committed_at(&p1), Some(3));
        drop(store);
        let (store, _) = open_at(dir.path());
        assert_eq!(store.all_at(), map(&[(p0, 1), (p1, 3)]));
    }
}
