//! [`PartitionLog`]: one partition's segmented log. Appends, group sync, reads, background
//! flush, checkpoints and close. This file holds the partition's state, opening, reads and
//! close; `append.rs` the write path (planning, reserving, rolls), `sync.rs` durability (the
//! group sync, the flusher's work, checkpoints), `deletion.rs` deleting old segments.
//!
//! Locks, in the only order they are ever nested: `writer` (appends and rolls), then `sync`
//! (durability state), then `segments` (the list readers search). Readers take only a short
//! read lock on `segments` to find a segment, never `writer`: they read up to the end the
//! writer published (see [`super::mmap`]).
//!
//! Group sync (the leader/follower pattern): a thread that needs offset `n` durable waits while
//! a sync is in progress; if `n` is still not durable afterwards and no sync runs, it becomes
//! the leader, snapshots the current end, syncs every file with unsynced data once, and
//! publishes the new durable point to everyone waiting. So concurrent `Fsync` sends share one
//! `fdatasync`, and a lone sender pays exactly one with no thread hand-off.
//!
//! A failed write or sync is never retried and reported as success (fsyncgate): the partition
//! is poisoned, every waiter and every later append gets the error, and only reopening (which
//! recovers from the last checkpoint) clears it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use super::active::{ActiveSegment, SealedSegment};
use super::allocation::SegmentSizes;
use super::checkpoint::CheckpointFile;
use super::flush_queue::FlushQueue;
use super::notify::{Signal, Watchers};
use super::open_segments::OpenSegments;
use super::prefault::Prefaulter;
use super::recovery::{self, LastSegment, PartitionSpec, RecoveryReport};
use super::segment::{LoadCtx, ReadCtx, ReadLimits, Segment, SegmentView};
use super::space::DiskSpace;
use crate::clock::Clock;
use crate::config::TopicConfig;
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::checkpoint::Checkpoint;
use crate::format::file_header::SEGMENT_HEADER_LEN;
use crate::format::message::Batch;
use crate::layout;
use crate::vfs::{Vfs, VfsFile};

mod append;
mod deletion;
mod sync;

#[cfg(test)]
pub(crate) use append::MAX_UNFINALIZED_SEGMENTS;

/// A callback completed when an offset becomes durable (or the partition fails).
pub(crate) type DurableCallback = Box<dyn FnOnce(Result<()>) + Send>;

const STATE_OPEN: u8 = 0;
const STATE_POISONED: u8 = 1;
const STATE_CLOSED: u8 = 2;
const STATE_REMOVED: u8 = 3;

/// Everything a partition needs from its Wharf.
#[derive(Debug, Clone)]
pub(crate) struct PartitionEnv {
    pub vfs: Arc<dyn Vfs>,
    pub clock: Arc<dyn Clock>,
    pub flush_queue: Arc<FlushQueue>,
    pub read_only: bool,
    pub clean: bool,
    pub flush_messages: Option<u64>,
    pub max_pending_async: usize,
    /// Faults active segments in ahead of their writers (none when read-only).
    pub prefaulter: Option<Arc<Prefaulter>>,
    /// The Wharf's disk quota and free-space floor.
    pub space: Arc<DiskSpace>,
    /// How long an append waits for space before it fails with `Full`.
    pub full_timeout: Duration,
    /// The sealed segments kept open across the Wharf.
    pub open_segments: Arc<OpenSegments>,
    /// Longest time the flusher defers a checkpoint while asynchronous sends keep it busy
    /// (the flush interval).
    pub checkpoint_interval: Duration,
    /// Run after an append sealed a segment of a topic with a hard size limit.
    pub after_roll: Arc<RollHook>,
    /// What recovery does with damage in data known durable.
    pub recovery_mode: crate::config::RecoveryMode,
}

/// What the Wharf does after an append sealed a segment of a topic with a hard size limit
/// (apply the topic's retention to the partition): set once the Wharf is built, called by
/// the appending thread after it let go of the writer lock.
#[derive(Default)]
pub(crate) struct RollHook(std::sync::OnceLock<RollCallback>);

/// The callback of a [`RollHook`].
pub(crate) type RollCallback = Box<dyn Fn(&Arc<PartitionLog>) + Send + Sync>;

impl RollHook {
    /// Sets the hook (once; later calls are ignored).
    pub(crate) fn set(&self, hook: RollCallback) {
        let _first = self.0.set(hook);
    }

    fn call(&self, log: &Arc<PartitionLog>) {
        if let Some(hook) = self.0.get() {
            hook(log);
        }
    }
}

impl std::fmt::Debug for RollHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollHook")
            .field("set", &self.0.get().is_some())
            .finish()
    }
}

/// What an append wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Appended {
    pub base_offset: u64,
    /// The append time, used for records without a timestamp.
    pub now: i64,
    /// The append sealed at least one segment (rolled).
    pub rolled: bool,
}

/// What a deletion of old segments removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Removed {
    pub segments: u64,
    /// Bytes of log data in them.
    pub bytes: u64,
    /// Records no group retention waited for had consumed (hard size limit only).
    pub unconsumed: u64,
}

/// Puts `items` taken from `list` back in front of what was added since.
fn restore<T>(list: &mut Vec<T>, mut items: Vec<T>) {
    items.append(list);
    *list = items;
}

/// Where the log is durable up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DurablePoint {
    next_offset: u64,
    segment_base: u64,
    position: u64,
}

struct SyncState {
    durable: DurablePoint,
    in_progress: bool,
    failure: Option<Arc<io::Error>>,
    /// Sealed segments whose data is not yet known synced.
    unsynced_sealed: Vec<SealedSegment>,
    /// Log files created by a roll whose inode and directory entry are not yet synced.
    unsynced_created: Vec<Arc<dyn VfsFile>>,
    /// Synced sealed segments waiting for the flusher to finalize them.
    to_finalize: Vec<SealedSegment>,
    /// Asynchronous `Fsync` sends waiting for their offset to become durable.
    waiters: Vec<(u64, DurableCallback)>,
    /// The active segment's base offset and index files, synced before a checkpoint that
    /// names the active segment.
    active_index: Option<(u64, [Arc<dyn VfsFile>; 2])>,
}

impl std::fmt::Debug for SyncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncState")
            .field("durable", &self.durable)
            .field("in_progress", &self.in_progress)
            .field("failure", &self.failure)
            .field("waiters", &self.waiters.len())
            .finish_non_exhaustive()
    }
}

/// One partition's log.
#[derive(Debug)]
pub(crate) struct PartitionLog {
    ctx: ReadCtx,
    dir: PathBuf,
    config: TopicConfig,
    /// How large its segment files are allocated.
    sizes: SegmentSizes,
    env: PartitionEnv,
    segments: RwLock<Vec<Arc<Segment>>>,
    writer: Mutex<Option<ActiveSegment>>,
    next_offset: AtomicU64,
    start_offset: AtomicU64,
    durable_offset: AtomicU64,
    state: AtomicU8,
    sync: Mutex<SyncState>,
    sync_done: Condvar,
    checkpoint: Mutex<Option<CheckpointFile>>,
    /// The next offset of the last checkpoint written: the flusher writes a new one when the
    /// durable offset has moved past it.
    checkpointed_offset: AtomicU64,
    /// When the flusher last wrote a checkpoint (or found nothing to write).
    checkpointed_at: Mutex<Instant>,
    watchers: Watchers,
    pub(super) flush_queued: AtomicBool,
    recovery: RecoveryReport,
    /// Files of deleted segments not unlinked yet (an unlink failed).
    leftovers: Mutex<Vec<PathBuf>>,
}

impl PartitionLog {
    /// Creates an empty partition directory (with its checkpoint) in `dir`.
    pub(crate) fn create(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
        vfs.create_dir_all(dir).ctx("create", dir)?;
        let initial = Checkpoint {
            sequence: 0,
            next_offset: 0,
            segment_base: 0,
            position: SEGMENT_HEADER_LEN as u64,
            log_start_offset: 0,
        };
        CheckpointFile::create(vfs, &dir.join(layout::CHECKPOINT_FILE), initial)
    }

    /// Opens (and recovers) the partition in `dir`, whose segment files are allocated by
    /// `sizes`.
    pub(crate) fn open(
        topic: Arc<str>,
        partition: u32,
        dir: PathBuf,
        config: TopicConfig,
        sizes: SegmentSizes,
        env: PartitionEnv,
    ) -> Result<Arc<Self>> {
        let ctx = ReadCtx { topic, partition };
        let spec = PartitionSpec {
            vfs: env.vfs.as_ref(),
            dir: &dir,
            ctx: &ctx,
            config: &config,
            sizes: &sizes,
            read_only: env.read_only,
            clean: env.clean,
            mode: env.recovery_mode,
        };
        let recovered = recovery::recover_partition(&spec)?;
        let mut segments = recovered.sealed;
        let active_index = match &recovered.last {
            LastSegment::Active(active) => Some((active.base_offset(), active.index_files())),
            _ => None,
        };
        let (writer, position, segment_base) = match recovered.last {
            LastSegment::Active(mut active) => {
                active.set_space(Arc::clone(&env.space));
                segments.push(Arc::new(Segment::loaded(Arc::clone(active.view()))));
                let at = (active.position(), active.base_offset());
                (Some(*active), at.0, at.1)
            }
            LastSegment::View(view) => {
                let at = (view.end_position(), view.base_offset);
                segments.push(Arc::new(Segment::loaded(view)));
                (None, at.0, at.1)
            }
            LastSegment::None => (None, SEGMENT_HEADER_LEN as u64, recovered.next_offset),
        };
        let next = recovered.next_offset;
        let durable = DurablePoint {
            next_offset: next,
            segment_base,
            position,
        };
        Ok(Arc::new(PartitionLog {
            ctx,
            dir,
            config,
            sizes,
            segments: RwLock::new(segments),
            writer: Mutex::new(writer),
            next_offset: AtomicU64::new(next),
            start_offset: AtomicU64::new(recovered.start_offset),
            durable_offset: AtomicU64::new(next),
            state: AtomicU8::new(STATE_OPEN),
            sync: Mutex::new(SyncState {
                durable,
                in_progress: false,
                failure: None,
                unsynced_sealed: Vec::new(),
                unsynced_created: Vec::new(),
                to_finalize: Vec::new(),
                waiters: Vec::new(),
                active_index,
            }),
            sync_done: Condvar::new(),
            checkpointed_offset: AtomicU64::new(
                recovered
                    .checkpoint
                    .as_ref()
                    .map_or(next, |file| file.last().next_offset),
            ),
            checkpoint: Mutex::new(recovered.checkpoint),
            checkpointed_at: Mutex::new(Instant::now()),
            watchers: Watchers::default(),
            flush_queued: AtomicBool::new(false),
            recovery: recovered.report,
            leftovers: Mutex::new(Vec::new()),
            env,
        }))
    }

    pub(crate) fn topic(&self) -> &Arc<str> {
        &self.ctx.topic
    }

    pub(crate) fn partition(&self) -> u32 {
        self.ctx.partition
    }

    /// What recovery found when this partition was opened.
    pub(crate) fn recovery_report(&self) -> RecoveryReport {
        self.recovery
    }

    /// The log end offset: the offset the next record gets.
    #[inline]
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::SeqCst)
    }

    /// The first offset still in the log.
    pub(crate) fn start_offset(&self) -> u64 {
        self.start_offset.load(Ordering::Acquire)
    }

    /// Every offset below this one is on stable storage.
    pub(crate) fn durable_offset(&self) -> u64 {
        self.durable_offset.load(Ordering::Acquire)
    }

    fn state_error(&self, state: u8) -> Error {
        match state {
            STATE_POISONED => self.poisoned_error(),
            STATE_REMOVED => Error::topic_not_found(&self.ctx.topic),
            _ => ErrorKind::Closed.into(),
        }
    }

    fn poisoned_error(&self) -> Error {
        let source = self
            .sync
            .lock()
            .failure
            .clone()
            .unwrap_or_else(|| Arc::new(io::Error::other("earlier failure")));
        ErrorKind::Poisoned {
            topic: self.ctx.topic.to_string(),
            partition: self.ctx.partition,
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

    /// Stops appends, syncs and finalizes everything, trims the active segment and writes the
    /// final checkpoint. Returns an error if any of it failed (the Wharf then records no clean
    /// shutdown, so the next open recovers).
    pub(crate) fn close(&self) -> Result<()> {
        let active = self.writer.lock().take();
        let previous = self.state.compare_exchange(
            STATE_OPEN,
            STATE_CLOSED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.watchers.notify_all();
        let Some(active) = active else {
            return match previous {
                Ok(_) | Err(STATE_CLOSED | STATE_REMOVED) => Ok(()),
                Err(state) => Err(self.state_error(state)),
            };
        };
        let (sealed, end) = {
            let mut st = self.sync.lock();
            while st.in_progress {
                self.sync_done.wait(&mut st);
            }
            let mut sealed = std::mem::take(&mut st.to_finalize);
            sealed.extend(std::mem::take(&mut st.unsynced_sealed));
            st.unsynced_created.clear(); // finalize syncs every file below, then the directory
            st.active_index = None; // finalized with the rest
            if st.failure.is_some() {
                drop(st);
                self.complete_waiters();
                return Err(self.poisoned_error());
            }
            st.in_progress = true;
            (sealed, active.close())
        };
        let result = sealed
            .iter()
            .chain(std::iter::once(&end))
            .try_for_each(|s| s.finalize().ctx("finalize", s.log_file.path()))
            .and_then(|()| self.env.vfs.sync_dir(&self.dir).ctx("sync", &self.dir));
        let point = DurablePoint {
            next_offset: end.next_offset(),
            segment_base: end.view.base_offset,
            position: end.end_position(),
        };
        {
            let mut st = self.sync.lock();
            st.in_progress = false;
            match &result {
                Ok(()) => {
                    st.durable = point;
                    self.durable_offset
                        .store(point.next_offset, Ordering::SeqCst);
                    self.watchers.notify();
                }
                Err(e) => self.poison_locked(&mut st, e.clone().into_io()),
            }
            self.sync_done.notify_all();
        }
        self.complete_waiters();
        result?;
        self.write_checkpoint(&mut self.checkpoint.lock(), point)
    }

    /// Drops the writer without syncing anything (a simulated process crash).
    #[cfg(feature = "test-util")]
    pub(crate) fn abandon(&self) {
        self.state.store(STATE_CLOSED, Ordering::Release);
        drop(self.writer.lock().take());
        let mut st = self.sync.lock();
        st.unsynced_sealed.clear();
        st.unsynced_created.clear();
        st.to_finalize.clear();
        st.active_index = None;
        let waiters = std::mem::take(&mut st.waiters);
        drop(st);
        for (_, callback) in waiters {
            callback(Err(ErrorKind::Closed.into()));
        }
        self.sync_done.notify_all();
        self.watchers.notify_all();
    }

    /// Marks the partition deleted: appends and waiters get `TopicNotFound`; nothing is synced.
    pub(crate) fn mark_removed(&self) {
        self.state.store(STATE_REMOVED, Ordering::Release);
        drop(self.writer.lock().take());
        let waiters = std::mem::take(&mut self.sync.lock().waiters);
        for (_, callback) in waiters {
            callback(Err(Error::topic_not_found(&self.ctx.topic)));
        }
        self.sync_done.notify_all();
        self.watchers.notify_all();
    }

    fn load_ctx(&self, next_offset: u64) -> LoadCtx<'_> {
        LoadCtx {
            vfs: self.env.vfs.as_ref(),
            read: &self.ctx,
            read_only: self.env.read_only,
            index_interval_bytes: self.config.index_interval_bytes,
            next_offset,
        }
    }

    /// The view of `segment` (followed by a segment based at `next_base`), opening it if
    /// needed and recording the open against the Wharf's cap.
    fn view_of(&self, segment: &Arc<Segment>, next_base: u64) -> Result<Arc<SegmentView>> {
        if segment.is_loaded() {
            return segment.view(&self.load_ctx(next_base));
        }
        let view = segment.view(&self.load_ctx(next_base))?;
        self.env.open_segments.opened(segment);
        Ok(view)
    }

    /// The segment holding `offset` and the base offset of the one after it.
    fn segment_for(&self, offset: u64) -> Option<(Arc<Segment>, u64)> {
        let segments = self.segments.read();
        let i = segments
            .partition_point(|s| s.base_offset <= offset)
            .checked_sub(1)?;
        let next_base = segments.get(i + 1).map_or(u64::MAX, |s| s.base_offset);
        segments.get(i).map(|s| (Arc::clone(s), next_base))
    }

    /// Reads records from `from`, up to `limits`; with `durable_only`, only records already on
    /// stable storage.
    pub(crate) fn read(&self, from: u64, limits: ReadLimits, durable_only: bool) -> Result<Batch> {
        if self.state.load(Ordering::Acquire) == STATE_REMOVED {
            return Err(Error::topic_not_found(&self.ctx.topic));
        }
        let end = self.next_offset();
        let until = if durable_only {
            self.durable_offset().min(end)
        } else {
            end
        };
        let start = self.start_offset();
        if from < start || from > end {
            return Err(self.out_of_range(from));
        }
        let mut at = from;
        while at < until {
            let Some((segment, next_base)) = self.segment_for(at) else {
                // Its segment left the list since the range check (a deletion): as if the
                // deletion had come first, not an empty read below the end.
                if at < self.start_offset() {
                    return Err(self.out_of_range(from));
                }
                break;
            };
            let view = match self.view_of(&segment, next_base) {
                Ok(view) => view,
                // Deleted (by retention) since the range check: as if it had come first.
                Err(_) if at < self.start_offset() => return Err(self.out_of_range(from)),
                Err(e) => return Err(e),
            };
            let batch = view.read(&self.ctx, at, until, limits)?;
            if !batch.is_empty() || view.next_offset() > at || next_base == u64::MAX {
                return Ok(batch);
            }
            if at < next_base {
                // The segment ends before the next one starts: those offsets are gone.
                return Err(view.gap_error(&self.ctx, next_base));
            }
            at = next_base;
        }
        Ok(Batch::empty(
            Arc::clone(&self.ctx.topic),
            self.ctx.partition,
            from,
        ))
    }

    fn out_of_range(&self, offset: u64) -> Error {
        ErrorKind::OffsetOutOfRange {
            topic: self.ctx.topic.to_string(),
            partition: self.ctx.partition,
            offset,
            start: self.start_offset(),
            end: self.next_offset(),
        }
        .into()
    }

    /// The first offset whose record timestamp is at least `timestamp`, or `None` if every
    /// record is older.
    pub(crate) fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<u64>> {
        let segments: Vec<Arc<Segment>> = self.segments.read().clone();
        let until = self.next_offset();
        for (i, segment) in segments.iter().enumerate() {
            let next_base = segments.get(i + 1).map_or(u64::MAX, |s| s.base_offset);
            let view = self.view_of(segment, next_base)?;
            if let Some(offset) = view.offset_for_timestamp(&self.ctx, timestamp, until)? {
                return Ok(Some(offset.max(self.start_offset())));
            }
            if next_base != u64::MAX && view.next_offset() < next_base {
                // The missing offsets might have held the answer.
                return Err(view.gap_error(&self.ctx, next_base));
            }
        }
        Ok(None)
    }

    /// Waits until the log end passes `offset`, the partition closes, or `deadline`; returns
    /// whether data past `offset` is available.
    pub(crate) fn wait_for(&self, offset: u64, deadline: Instant) -> bool {
        if self.next_offset() > offset {
            return true;
        }
        let signal = Arc::new(Signal::default());
        self.watchers.register(&signal);
        self.watchers.wait_begin();
        let available = loop {
            if self.next_offset() > offset {
                break true;
            }
            if self.state.load(Ordering::Acquire) != STATE_OPEN || !signal.wait_until(deadline) {
                break self.next_offset() > offset;
            }
        };
        self.watchers.wait_end();
        self.watchers.unregister(&signal);
        available
    }

    /// Registers `signal` to be notified of appends while its owner waits (see
    /// [`Self::wait_begin`]); for consumers of several partitions.
    pub(crate) fn watch(&self, signal: &Arc<Signal>) {
        self.watchers.register(signal);
    }

    /// Undoes [`Self::watch`].
    pub(crate) fn unwatch(&self, signal: &Arc<Signal>) {
        self.watchers.unregister(signal);
    }

    /// A watcher is about to sleep: appends notify from now on. Re-check for data after it.
    pub(crate) fn wait_begin(&self) {
        self.watchers.wait_begin();
    }

    /// The watcher woke up.
    pub(crate) fn wait_end(&self) {
        self.watchers.wait_end();
    }
}
