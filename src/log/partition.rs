//! [`PartitionLog`]: one partition's segmented log. Appends, group sync, reads, background
//! flush, checkpoints and close.
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

use super::active::{ActiveSegment, AppendError, Durability, SealedSegment};
use super::allocation::SegmentSizes;
use super::append_plan::{self, PlannedSegment};
use super::checkpoint::CheckpointFile;
use super::flush_queue::FlushQueue;
use super::notify::{Signal, Watchers};
use super::open_segments::OpenSegments;
use super::prefault::Prefaulter;
use super::recovery::{self, LastSegment, PartitionSpec, RecoveryReport};
use super::segment::{LoadCtx, ReadCtx, ReadLimits, Segment, SegmentStats, SegmentView};
use super::space::DiskSpace;
use crate::clock::Clock;
use crate::config::{Retention, TopicConfig};
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::batch::{self, BATCH_HEADER_LEN};
use crate::format::checkpoint::Checkpoint;
use crate::format::file_header::SEGMENT_HEADER_LEN;
use crate::format::message::Batch;
use crate::format::record::Record;
use crate::layout::{self, SegmentPaths};
use crate::vfs::{Vfs, VfsFile};

/// Largest batch an append writes (unless one record is larger): bounds the bytes a reader
/// decodes to reach a record in the middle of a batch.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Most sealed segments a partition keeps waiting for the flusher to sync and finalize them.
/// Each holds three descriptors and three writable mappings until then; a writer that rolls
/// past this many (tiny segments, a long `send_batch`) finalizes them itself, so descriptors
/// and mappings stay bounded however fast segments fill: besides the ones waiting, a sync in
/// progress holds at most as many and the flusher's finalizing twice as many, so a partition
/// has at most four times this many sealed segments not finalized at any moment.
const MAX_UNFINALIZED_SEGMENTS: usize = 4;

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

/// The space a new segment takes at once, its log file's first allocation up to `log_bytes`
/// (or its first allocation if that is more) and its two index files' room for it, in whole
/// blocks: the same figures [`ActiveSegment::create`] allocates.
fn segment_bytes_allocated(sizes: &SegmentSizes, log_bytes: u64) -> u64 {
    sizes.disk_bytes(sizes.first_log_allocation(log_bytes))
}

/// Why an attempt to append failed.
enum Refused {
    /// No space: nothing of the call was written.
    Full(Error),
    Error(Error),
}

impl From<Error> for Refused {
    fn from(error: Error) -> Self {
        if matches!(error.kind(), ErrorKind::Full { .. }) {
            Refused::Full(error)
        } else {
            Refused::Error(error)
        }
    }
}

/// A segment an append created to roll into, before it writes anything.
enum Prepared {
    /// Open: the first roll of an append (so an append that rolls once cannot fail half way).
    Open(ActiveSegment),
    /// Only its files: later rolls take their descriptors and mappings when they get there.
    Closed(SegmentPaths),
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

    /// Appends `records` (in order, contiguous offsets), splitting them into batches that fit
    /// the segments. All or nothing: the space of every batch, the segments it rolls into
    /// included, is reserved before a byte is written, so a `Full` error (or any failure to
    /// create a segment) leaves nothing of the call written. Only an I/O failure while it
    /// rolls into its second new segment or later (opening that segment's files) can leave
    /// a prefix of the records written; that error is not `Full`.
    ///
    /// Without space, the call waits up to `full_timeout` for some to be freed (without the
    /// writer lock, so syncs and the deletions that free space go on), then starts over.
    pub(crate) fn append(self: &Arc<Self>, records: &[&Record]) -> Result<Appended> {
        let now = self.env.clock.now().as_millis();
        let mut deadline: Option<Instant> = None;
        loop {
            let freed = self.env.space.freed_count();
            match self.append_locked(records, now) {
                Ok(appended) => {
                    if appended.rolled && self.config.retention.hard_max_bytes.is_some() {
                        self.env.after_roll.call(self);
                    }
                    return Ok(appended);
                }
                Err(Refused::Error(e)) => return Err(e),
                Err(Refused::Full(error)) => {
                    self.env.space.notify_full();
                    let deadline =
                        *deadline.get_or_insert_with(|| Instant::now() + self.env.full_timeout);
                    if Instant::now() >= deadline || !self.env.space.wait_freed(freed, deadline) {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// One attempt of [`Self::append`], under the writer lock.
    fn append_locked(self: &Arc<Self>, records: &[&Record], now: i64) -> Result<Appended, Refused> {
        let mut guard = self.writer.lock();
        let state = self.state.load(Ordering::Acquire);
        if state != STATE_OPEN {
            return Err(Refused::Error(self.state_error(state)));
        }
        let Some(active) = guard.as_mut() else {
            return Err(Refused::Error(if self.env.read_only {
                self.read_only_error()
            } else {
                ErrorKind::Closed.into()
            }));
        };
        let base_offset = active.next_offset();
        let segment_before = active.base_offset();
        // The common case, one batch in the active segment, plans without allocating.
        let room =
            usize::try_from(self.config.segment_bytes - active.position()).unwrap_or(usize::MAX);
        let (take, plan) = batch::plan_prefix(records, now, room.min(self.max_batch_bytes()));
        let result = if take == records.len() && take > 0 {
            active
                .append(
                    records,
                    &plan,
                    now,
                    self.durable_offset(),
                    self.env.prefaulter.as_deref(),
                )
                .map_err(|e| match e {
                    AppendError::Io(e) => {
                        Error::space("allocate space in", &active.view().paths.log, e)
                    }
                    AppendError::SegmentFull => {
                        Error::from_io(io::Error::other("a planned batch did not fit its segment"))
                    }
                })
        } else {
            self.append_spanning(active, records, now)
        };
        // Publish what was written (a prefix, if opening a segment failed half way).
        let rolled = active.base_offset() != segment_before;
        let next_offset = active.next_offset();
        let written = next_offset > base_offset;
        if written {
            self.next_offset.store(next_offset, Ordering::SeqCst);
        }
        drop(guard);
        if written {
            self.watchers.notify();
            if let Some(every) = self.env.flush_messages {
                if next_offset - self.durable_offset() >= every {
                    self.env.flush_queue.request(self);
                }
            }
        }
        result.map_err(Refused::from)?;
        Ok(Appended {
            base_offset,
            now,
            rolled,
        })
    }

    /// The largest batch an append writes.
    fn max_batch_bytes(&self) -> usize {
        MAX_BATCH_BYTES.max(BATCH_HEADER_LEN + self.config.max_message_bytes as usize)
    }

    /// Appends records that take more than one batch, or more than the active segment holds:
    /// plans them, reserves the space of the whole plan, then writes.
    fn append_spanning(
        self: &Arc<Self>,
        active: &mut ActiveSegment,
        records: &[&Record],
        now: i64,
    ) -> Result<()> {
        let plan = append_plan::plan_append(
            records,
            now,
            active.position(),
            active.is_empty(),
            self.config.segment_bytes,
            self.max_batch_bytes(),
        )
        .map_err(|_| Error::invalid_config("a record does not fit in an empty segment"))?;
        let Some((first, rest)) = plan.split_first() else {
            return Ok(());
        };
        active
            .reserve_to(first.end)
            .map_err(|e| Error::space("allocate space in", &active.view().paths.log, e))?;
        if !rest.is_empty() {
            // Its first roll cannot fail half way: room for it is made before anything is
            // written.
            self.make_room_to_roll()?;
        }
        let prepared = self.prepare_segments(active.next_offset() + first.record_count(), rest)?;
        let prefaulter = self.env.prefaulter.as_deref();
        let write = |active: &mut ActiveSegment, segment: &PlannedSegment| {
            for batch in &segment.batches {
                let chunk = records.get(batch.records.clone()).unwrap_or_default();
                active
                    .append(chunk, &batch.plan, now, self.durable_offset(), prefaulter)
                    .map_err(|_| {
                        Error::from_io(io::Error::other("a planned batch did not fit its space"))
                    })?;
            }
            Ok::<(), Error>(())
        };
        if let Err(e) = write(active, first) {
            self.discard(prepared);
            return Err(e);
        }
        let mut prepared = prepared.into_iter();
        for segment in rest {
            let Some(next) = prepared.next() else {
                return Err(Error::from_io(io::Error::other(
                    "an append planned more segments than it prepared",
                )));
            };
            let next = match next {
                Prepared::Open(next) => next,
                Prepared::Closed(paths) => {
                    match ActiveSegment::open_created(
                        self.env.vfs.as_ref(),
                        &paths,
                        active.next_offset(),
                        &self.sizes,
                    ) {
                        Ok(next) => next,
                        Err(e) => {
                            let error = Error::io("open", &paths.log, e);
                            self.discard(std::iter::once(Prepared::Closed(paths)).chain(prepared));
                            return Err(error);
                        }
                    }
                }
            };
            if let Err(e) = self.roll_into(active, next) {
                self.discard(prepared);
                return Err(e);
            }
            write(active, segment)?;
        }
        Ok(())
    }

    /// Creates the segments `plan` rolls into, the first one based at `base`, with their log
    /// files allocated up to their planned ends. On failure none is left behind.
    fn prepare_segments(&self, mut base: u64, plan: &[PlannedSegment]) -> Result<Vec<Prepared>> {
        let mut prepared = Vec::with_capacity(plan.len());
        for (i, segment) in plan.iter().enumerate() {
            let made = if i == 0 {
                self.prepare_segment(base, segment.end, false)
                    .map(Prepared::Open)
            } else {
                self.prepare_closed_segment(base, segment.end)
                    .map(Prepared::Closed)
            };
            match made {
                Ok(made) => prepared.push(made),
                Err(e) => {
                    self.discard(prepared);
                    return Err(e);
                }
            }
            base += segment.record_count();
        }
        Ok(prepared)
    }

    /// Removes segments an append created and will not roll into, and gives back their space.
    fn discard(&self, prepared: impl IntoIterator<Item = Prepared>) {
        let vfs = self.env.vfs.as_ref();
        let mut any = false;
        for segment in prepared {
            any = true;
            let paths = match segment {
                Prepared::Open(segment) => {
                    let paths = segment.view().paths.clone();
                    drop(segment);
                    paths
                }
                Prepared::Closed(paths) => paths,
            };
            ActiveSegment::discard_created(vfs, &paths);
        }
        if any {
            self.env.space.freed();
        }
    }

    /// Reserves quota for a new segment at `base` (unless `force`), removes files a failed
    /// earlier attempt may have left at its paths (nothing of the log is there: `base` is the
    /// log end), and gives the paths.
    fn new_segment_paths(&self, base: u64, log_bytes: u64, force: bool) -> Result<SegmentPaths> {
        let paths = SegmentPaths::new(&self.dir, base);
        let bytes = segment_bytes_allocated(&self.sizes, log_bytes);
        if force {
            self.env.space.add(bytes);
        } else {
            self.env
                .space
                .reserve(bytes)
                .map_err(|e| Error::space("create", &paths.log, e))?;
        }
        ActiveSegment::discard_created(self.env.vfs.as_ref(), &paths);
        Ok(paths)
    }

    /// Creates and opens the segment at `base`, its log file allocated up to `reserve_to` (or
    /// its first allocation). `force` skips the disk limits (a deletion about to free the old
    /// segment needs it).
    fn prepare_segment(&self, base: u64, reserve_to: u64, force: bool) -> Result<ActiveSegment> {
        let paths = self.new_segment_paths(base, reserve_to, force)?;
        let vfs = self.env.vfs.as_ref();
        let durability = Durability::Deferred;
        match ActiveSegment::create(vfs, &paths, base, &self.sizes, durability, reserve_to) {
            Ok(mut next) => {
                next.set_space(Arc::clone(&self.env.space));
                Ok(next)
            }
            Err(e) => {
                // `create` removed what it made.
                self.env.space.freed();
                Err(Error::space("create", &paths.log, e))
            }
        }
    }

    /// Creates the files of the segment at `base` without opening it.
    fn prepare_closed_segment(&self, base: u64, reserve_to: u64) -> Result<SegmentPaths> {
        let paths = self.new_segment_paths(base, reserve_to, false)?;
        ActiveSegment::create_closed(self.env.vfs.as_ref(), &paths, base, &self.sizes, reserve_to)
            .map_err(|e| {
                self.env.space.freed();
                Error::space("create", &paths.log, e)
            })?;
        Ok(paths)
    }

    fn read_only_error(&self) -> Error {
        ErrorKind::ReadOnly {
            dir: self.dir.clone(),
        }
        .into()
    }

    /// Seals the active segment and starts the next one. If creating the next one fails, the
    /// active segment stays active and nothing is lost (nor left behind).
    /// `force` skips the disk limits (a deletion about to free the old segment needs it).
    fn roll(self: &Arc<Self>, active: &mut ActiveSegment, force: bool) -> Result<()> {
        if active.is_empty() {
            return Err(Error::invalid_config(
                "a batch does not fit in an empty segment",
            ));
        }
        let next = self.prepare_segment(active.next_offset(), 0, force)?;
        self.roll_into(active, next)
    }

    /// Seals the active segment and makes `next` (based at the log end) the active one. Past
    /// [`MAX_UNFINALIZED_SEGMENTS`] sealed segments waiting, syncs and finalizes them here.
    fn roll_into(
        self: &Arc<Self>,
        active: &mut ActiveSegment,
        mut next: ActiveSegment,
    ) -> Result<()> {
        self.make_room_to_roll()?;
        next.set_space(Arc::clone(&self.env.space));
        next.continue_pace(active);
        let new_view = Arc::clone(next.view());
        let new_log = Arc::clone(next.log_file());
        let new_index = (next.base_offset(), next.index_files());
        let sealed = std::mem::replace(active, next).seal();
        {
            let mut st = self.sync.lock();
            st.unsynced_sealed.push(sealed);
            st.unsynced_created.push(new_log);
            st.active_index = Some(new_index);
        }
        self.segments
            .write()
            .push(Arc::new(Segment::loaded(new_view)));
        self.env.flush_queue.request(self);
        Ok(())
    }

    /// Before a roll seals one more segment: if [`MAX_UNFINALIZED_SEGMENTS`] already wait for
    /// the flusher, syncs and finalizes them here. The caller holds the writer lock.
    fn make_room_to_roll(&self) -> Result<()> {
        let waiting = {
            let st = self.sync.lock();
            st.unsynced_sealed.len() + st.to_finalize.len()
        };
        if waiting >= MAX_UNFINALIZED_SEGMENTS {
            self.finalize_waiting()?;
        }
        Ok(())
    }

    /// Syncs and finalizes every sealed segment waiting for the flusher, in the writer's
    /// thread (the caller holds the writer lock, so no sync leader takes them meanwhile; the
    /// checkpoint lock keeps the flusher's finalizing out). A failed sync poisons the
    /// partition.
    fn finalize_waiting(&self) -> Result<()> {
        let _checkpoint = self.checkpoint.lock();
        let (unsynced, synced, created) = {
            let mut st = self.sync.lock();
            (
                std::mem::take(&mut st.unsynced_sealed),
                std::mem::take(&mut st.to_finalize),
                std::mem::take(&mut st.unsynced_created),
            )
        };
        // As a sync leader would: sealed data, the created files and their directory entries,
        // then the finalizing (which needs the data synced).
        let result = unsynced
            .iter()
            .try_for_each(|s| s.log_file.sync_data())
            .and_then(|()| created.iter().try_for_each(|file| file.sync_all()))
            .and_then(|()| self.env.vfs.sync_dir(&self.dir))
            .and_then(|()| {
                unsynced
                    .iter()
                    .chain(&synced)
                    .try_for_each(SealedSegment::finalize)
            });
        if let Err(e) = result {
            let mut st = self.sync.lock();
            if crate::vfs::is_out_of_descriptors(&e) {
                // Nothing was finalized yet (only syncs open nothing but the directory).
                restore(&mut st.unsynced_sealed, unsynced);
                restore(&mut st.to_finalize, synced);
                restore(&mut st.unsynced_created, created);
                return Err(Error::io("sync", &self.dir, e));
            }
            let error = Error::io("finalize a segment of", &self.dir, e);
            self.poison_locked(&mut st, error.clone().into_io());
            drop(st);
            self.sync_done.notify_all();
            return Err(error);
        }
        self.unload(&unsynced);
        self.unload(&synced);
        Ok(())
    }

    /// Blocks until every offset below `target` is durable, syncing as the group's leader if no
    /// sync is running.
    pub(crate) fn sync_to(&self, target: u64) -> Result<()> {
        self.sync_until(target, false)
    }

    /// As [`Self::sync_to`]; with `files`, also until no sealed or newly created segment file
    /// is left unsynced. A roll with no record after it (`delete_records` to the log end)
    /// leaves the durable offset where it was, but the durable point, and so the checkpoint,
    /// in the sealed segment: a checkpoint must not be left naming a segment about to be
    /// deleted, nor name a created one not yet durable.
    fn sync_until(&self, target: u64, files: bool) -> Result<()> {
        // Nothing past the end can become durable; waiting for it would never end.
        let target = target.min(self.next_offset());
        loop {
            {
                let mut st = self.sync.lock();
                loop {
                    if st.failure.is_some() {
                        drop(st);
                        return Err(self.poisoned_error());
                    }
                    let files_synced =
                        !files || st.unsynced_sealed.is_empty() && st.unsynced_created.is_empty();
                    if st.durable.next_offset >= target && files_synced {
                        return Ok(());
                    }
                    if !st.in_progress {
                        break;
                    }
                    self.sync_done.wait(&mut st);
                }
                st.in_progress = true;
            }
            if !self.lead_sync()? {
                return Err(ErrorKind::Closed.into());
            }
        }
    }

    /// Syncs everything appended so far; returns `false` if the partition is closed (nothing
    /// left to sync by this path).
    ///
    /// With no descriptor left to open the directory (`EMFILE`), nothing was synced and
    /// nothing is lost: the error is returned, the files stay listed for the next leader, and
    /// the partition is not poisoned (every other failure poisons it).
    fn lead_sync(&self) -> Result<bool> {
        let snapshot = {
            let writer = self.writer.lock();
            writer.as_ref().map(|active| {
                let mut st = self.sync.lock();
                let sealed = std::mem::take(&mut st.unsynced_sealed);
                let created = std::mem::take(&mut st.unsynced_created);
                let point = DurablePoint {
                    next_offset: active.next_offset(),
                    segment_base: active.base_offset(),
                    position: active.position(),
                };
                (point, Arc::clone(active.log_file()), sealed, created)
            })
        };
        let Some((point, active_log, sealed, created)) = snapshot else {
            let mut st = self.sync.lock();
            st.in_progress = false;
            self.sync_done.notify_all();
            return Ok(false);
        };
        // Sealed data first, then segments a roll created (their inode and, once, the
        // directory entry), then the active segment's data.
        let result = sealed
            .iter()
            .try_for_each(|s| s.log_file.sync_data())
            .and_then(|()| created.iter().try_for_each(|file| file.sync_all()))
            .and_then(|()| {
                if created.is_empty() {
                    Ok(())
                } else {
                    self.env.vfs.sync_dir(&self.dir)
                }
            })
            .and_then(|()| active_log.sync_data());
        let mut st = self.sync.lock();
        st.in_progress = false;
        let mut retry_later = None;
        match result {
            Ok(()) => {
                if point.next_offset >= st.durable.next_offset {
                    st.durable = point;
                }
                st.to_finalize.extend(sealed);
                self.durable_offset
                    .store(st.durable.next_offset, Ordering::SeqCst);
            }
            Err(e) if crate::vfs::is_out_of_descriptors(&e) => {
                restore(&mut st.unsynced_sealed, sealed);
                restore(&mut st.unsynced_created, created);
                retry_later = Some(Error::io("sync", &self.dir, e));
            }
            Err(e) => self.poison_locked(&mut st, e),
        }
        let failed = st.failure.is_some();
        self.sync_done.notify_all();
        drop(st);
        // Readers of durable records only wait for this, not for an append.
        self.watchers.notify();
        if failed {
            self.complete_waiters();
        }
        retry_later.map_or(Ok(true), Err)
    }

    fn poison_locked(&self, st: &mut SyncState, e: io::Error) {
        if st.failure.is_none() {
            st.failure = Some(Arc::new(e));
        }
        self.state.store(STATE_POISONED, Ordering::Release);
    }

    /// Calls `callback` once every offset below `target` is durable (or with the error that
    /// prevents it). Returns the callback if too many are already waiting: the caller should
    /// then sync in its own thread ([`Self::sync_to`]).
    pub(crate) fn on_durable(
        self: &Arc<Self>,
        target: u64,
        callback: DurableCallback,
    ) -> std::result::Result<(), DurableCallback> {
        let mut st = self.sync.lock();
        if st.failure.is_some() {
            drop(st);
            callback(Err(self.poisoned_error()));
            return Ok(());
        }
        if st.durable.next_offset >= target {
            drop(st);
            callback(Ok(()));
            return Ok(());
        }
        if st.waiters.len() >= self.env.max_pending_async {
            return Err(callback);
        }
        st.waiters.push((target, callback));
        drop(st);
        self.env.flush_queue.request(self);
        Ok(())
    }

    /// Whether the flusher has work here: data or files to sync, segments to finalize,
    /// waiters, or a checkpoint behind the durable offset (`Fsync` sends sync in their own
    /// thread and write no checkpoint: the flusher's tick does, so recovery after a crash
    /// scans at most a flush interval of them).
    pub(crate) fn needs_flush(&self) -> bool {
        if self.state.load(Ordering::Acquire) == STATE_REMOVED {
            return false;
        }
        let st = self.sync.lock();
        st.durable.next_offset < self.next_offset()
            || st.durable.next_offset > self.checkpointed_offset.load(Ordering::Acquire)
            || !st.unsynced_sealed.is_empty()
            || !st.unsynced_created.is_empty()
            || !st.to_finalize.is_empty()
            || !st.waiters.is_empty()
    }

    /// The flusher's work: sync, complete the asynchronous sends waiting, then finalize and
    /// checkpoint ([`Self::sync_and_checkpoint`]). A failure poisons the partition and
    /// reaches every waiter.
    ///
    /// Sends that started waiting during the sync are served first: the checkpoint costs up
    /// to three more syncs (both index files and the checkpoint file), which they would
    /// otherwise wait behind. The partition is queued again instead, so the flusher comes
    /// back to it after the other partitions; under a steady stream of asynchronous sends
    /// the checkpoint is still written once per `checkpoint_interval`.
    pub(crate) fn flush_in_background(self: &Arc<Self>) {
        let result = self.sync_until(self.next_offset(), true).and_then(|()| {
            self.complete_waiters();
            let waiting = !self.sync.lock().waiters.is_empty();
            let overdue = self.checkpointed_at.lock().elapsed() >= self.env.checkpoint_interval;
            if waiting && !overdue {
                self.env.flush_queue.request(self);
                return Ok(());
            }
            self.finalize_and_checkpoint()
        });
        if let Err(e) = result {
            let e = e.into_io();
            // Out of descriptors: nothing was lost; the next tick tries again.
            if self.state.load(Ordering::Acquire) == STATE_OPEN
                && !crate::vfs::is_out_of_descriptors(&e)
            {
                self.poison_locked(&mut self.sync.lock(), e);
            }
            self.complete_waiters();
        }
    }

    /// Syncs everything appended so far, completes the asynchronous sends waiting for it,
    /// finalizes synced sealed segments and writes the checkpoint: afterwards a recovery
    /// would scan nothing.
    pub(crate) fn sync_and_checkpoint(&self) -> Result<()> {
        self.sync_until(self.next_offset(), true)?;
        self.complete_waiters();
        self.finalize_and_checkpoint()
    }

    /// Finalizes the synced sealed segments and writes a checkpoint at the durable point.
    fn finalize_and_checkpoint(&self) -> Result<()> {
        // One finalize-and-checkpoint at a time, so a checkpoint never passes a sealed
        // segment another thread is still finalizing.
        let mut checkpoint = self.checkpoint.lock();
        *self.checkpointed_at.lock() = Instant::now();
        let (durable, sealed) = {
            let mut st = self.sync.lock();
            (st.durable, std::mem::take(&mut st.to_finalize))
        };
        sealed
            .iter()
            .try_for_each(SealedSegment::finalize)
            .map_err(Error::from_io)?;
        self.unload(&sealed);
        self.write_checkpoint(&mut checkpoint, durable)
    }

    /// Lets finalized segments drop the three writable mappings (and file handles) they had
    /// as the active segment; the next read loads them read-only from their summary, with one
    /// mapping. Readers still holding the old view keep it alive until they let go.
    fn unload(&self, finalized: &[SealedSegment]) {
        let segments = self.segments.read();
        for sealed in finalized {
            let base = sealed.view.base_offset;
            if let Ok(i) = segments.binary_search_by_key(&base, |s| s.base_offset) {
                if let Some(segment) = segments.get(i) {
                    segment.unload();
                }
            }
        }
    }

    fn complete_waiters(&self) {
        let (ready, failure) = {
            let mut st = self.sync.lock();
            let durable = st.durable.next_offset;
            let failed = st.failure.is_some();
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut st.waiters)
                .into_iter()
                .partition(|(t, _)| failed || *t <= durable);
            st.waiters = waiting;
            (ready, failed)
        };
        for (_, callback) in ready {
            callback(if failure {
                Err(self.poisoned_error())
            } else {
                Ok(())
            });
        }
    }

    /// Writes a checkpoint at `durable` after syncing the index files it vouches for.
    fn write_checkpoint(
        &self,
        checkpoint: &mut Option<CheckpointFile>,
        durable: DurablePoint,
    ) -> Result<()> {
        let Some(file) = checkpoint.as_mut() else {
            return Ok(());
        };
        let next = Checkpoint {
            sequence: 0,
            next_offset: durable.next_offset,
            segment_base: durable.segment_base,
            position: durable.position,
            log_start_offset: self.start_offset(),
        };
        if (Checkpoint {
            sequence: 0,
            ..file.last()
        }) == next
            || next.next_offset < file.last().next_offset
        {
            return Ok(());
        }
        let index_files = self
            .sync
            .lock()
            .active_index
            .as_ref()
            .filter(|(base, _)| *base == durable.segment_base)
            .map(|(_, files)| files.clone());
        for index in index_files.iter().flatten() {
            index.sync_data().ctx("sync", index.path())?;
        }
        file.write(next)?;
        self.checkpointed_offset
            .store(next.next_offset, Ordering::Release);
        Ok(())
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

    /// Whether the partition's segments hold more than `bytes` bytes of log data.
    pub(crate) fn holds_more_than(&self, bytes: u64) -> Result<bool> {
        let segments: Vec<Arc<Segment>> = self.segments.read().clone();
        let Some((last, sealed)) = segments.split_last() else {
            return Ok(false);
        };
        let mut total = self.view_of(last, u64::MAX)?.end_position();
        for (i, segment) in sealed.iter().enumerate() {
            let next_base = segments.get(i + 1).map_or(u64::MAX, |s| s.base_offset);
            total += self.sealed_stats(segment, next_base)?.bytes;
            if total > bytes {
                return Ok(true);
            }
        }
        Ok(total > bytes)
    }

    /// Applies `retention` at `now` (ms since the epoch): deletes the oldest sealed segments
    /// past its limits. `consumed`: with consumer-aware retention, the offset every group it
    /// waits for has committed up to (age and size delete only below it; the hard size limit
    /// deletes anyway and counts what it dropped above it).
    pub(crate) fn apply_retention(
        self: &Arc<Self>,
        now: i64,
        retention: &Retention,
        consumed: Option<u64>,
    ) -> Result<Removed> {
        if self.env.read_only || self.state.load(Ordering::Acquire) != STATE_OPEN {
            return Ok(Removed::default());
        }
        let segments: Vec<Arc<Segment>> = self.segments.read().clone();
        let Some((last, sealed)) = segments.split_last() else {
            return Ok(Removed::default());
        };
        let mut sizes = Vec::with_capacity(sealed.len());
        for (i, segment) in sealed.iter().enumerate() {
            let next_base = segments.get(i + 1).map_or(u64::MAX, |s| s.base_offset);
            sizes.push(self.sealed_stats(segment, next_base)?);
        }
        let active_bytes = self.view_of(last, u64::MAX)?.end_position();
        let mut total = sizes.iter().map(|s| s.bytes).sum::<u64>() + active_bytes;
        let max_age = retention
            .max_age
            .map(|age| i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let start = self.start_offset();
        let mut keep_from = None;
        let mut unconsumed = 0;
        for (i, (segment, stats)) in sealed.iter().zip(&sizes).enumerate() {
            let next_base = segments.get(i + 1).map_or(u64::MAX, |s| s.base_offset);
            let over = |max: Option<u64>| max.is_some_and(|max| total > max);
            let expired = max_age.is_some_and(|age| now.saturating_sub(stats.max_timestamp) > age);
            let soft = over(retention.max_bytes) || expired;
            let consumed_past = consumed.is_none_or(|c| c >= next_base);
            if over(retention.hard_max_bytes) {
                if let Some(c) = consumed {
                    unconsumed += next_base.saturating_sub(c.max(segment.base_offset).max(start));
                }
            } else if !(soft && consumed_past) {
                break;
            }
            total = total.saturating_sub(stats.bytes);
            keep_from = Some(next_base);
        }
        let Some(new_start) = keep_from else {
            if !self.leftovers.lock().is_empty() {
                let _checkpoint = self.checkpoint.lock();
                self.remove_files(Vec::new())?;
            }
            return Ok(Removed::default());
        };
        let mut removed = self.delete_before(new_start)?;
        removed.unconsumed = unconsumed;
        Ok(removed)
    }

    /// Moves the log start to `offset` (at most the log end) and deletes the segments wholly
    /// below it (Kafka's `DeleteRecords`). If that is the whole log, the active segment is
    /// sealed first so that its space goes too.
    ///
    /// Crash safety: the new log start is made durable in the checkpoint first (with the
    /// data: the checkpoint's own segment is never one deleted), then the segments leave the
    /// list readers search, then their files are unlinked and the directory synced. A crash
    /// in between leaves files wholly below the durable log start, which recovery deletes.
    /// Readers already holding a segment's view keep reading it: the mapping outlives the
    /// unlinked file until they let go.
    pub(crate) fn delete_records(self: &Arc<Self>, offset: u64) -> Result<Removed> {
        if self.env.read_only {
            return Err(self.read_only_error());
        }
        let offset = offset.min(self.next_offset());
        {
            let mut guard = self.writer.lock();
            if let Some(active) = guard.as_mut() {
                if offset == active.next_offset() && !active.is_empty() {
                    // Past the quota if need be: the old segment goes right after. On a
                    // genuinely full disk it stays (its records unreadable below the start)
                    // and only the sealed segments go.
                    match self.roll(active, true) {
                        Err(e) if !matches!(e.kind(), ErrorKind::Full { .. }) => return Err(e),
                        _ => {}
                    }
                }
            }
        }
        self.delete_before(offset)
    }

    fn delete_before(&self, offset: u64) -> Result<Removed> {
        // The checkpoint must point into a segment that stays: sync (and checkpoint) first.
        self.sync_and_checkpoint()?;
        let mut checkpoint = self.checkpoint.lock();
        // Files an earlier deletion failed to unlink: they are below the start already.
        self.remove_files(Vec::new())?;
        if offset <= self.start_offset() {
            return Ok(Removed::default());
        }
        self.start_offset.store(offset, Ordering::Release);
        if let Some(file) = checkpoint.as_mut() {
            let last = file.last();
            file.write(Checkpoint {
                log_start_offset: offset,
                ..last
            })?;
        }
        let doomed: Vec<Arc<Segment>> = {
            let mut segments = self.segments.write();
            let keep = segments
                .windows(2)
                .take_while(|pair| pair[1].base_offset <= offset)
                .count();
            segments.drain(..keep).collect()
        };
        let mut removed = Removed::default();
        let vfs = self.env.vfs.as_ref();
        let mut paths = Vec::with_capacity(doomed.len() * 3);
        for segment in &doomed {
            segment.unload();
            removed.bytes += match segment.stats() {
                Some(stats) => stats.bytes,
                None => vfs
                    .open(&segment.paths.log, crate::vfs::OpenMode::Read)
                    .and_then(|file| file.len())
                    .unwrap_or(0),
            };
            removed.segments += 1;
            let p = &segment.paths;
            paths.extend([p.log.clone(), p.index.clone(), p.time_index.clone()]);
        }
        self.remove_files(paths)?;
        // Held until the files are gone: a concurrent deletion (retention's thread and
        // `enforce_retention`, say) returns only once the space is free.
        drop(checkpoint);
        Ok(removed)
    }

    /// Unlinks `paths` and the files earlier calls failed to unlink, then syncs the directory.
    /// A file that cannot be unlinked now is tried again by the next deletion (and at the
    /// latest by the next open, which deletes every segment below the log start).
    fn remove_files(&self, mut paths: Vec<PathBuf>) -> Result<()> {
        let mut leftovers = self.leftovers.lock();
        paths.append(&mut leftovers);
        if paths.is_empty() {
            return Ok(());
        }
        let vfs = self.env.vfs.as_ref();
        let mut first_error = None;
        for path in paths {
            match vfs.remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    first_error.get_or_insert_with(|| Error::io("delete", &path, e));
                    leftovers.push(path);
                }
                _ => {}
            }
        }
        let synced = vfs.sync_dir(&self.dir).ctx("sync", &self.dir);
        first_error.map_or(synced, Err)
    }

    /// Size and newest timestamp of a sealed segment, read once (a sealed segment never
    /// changes).
    fn sealed_stats(&self, segment: &Arc<Segment>, next_base: u64) -> Result<SegmentStats> {
        if let Some(stats) = segment.stats() {
            return Ok(stats);
        }
        let view = self.view_of(segment, next_base)?;
        let stats = SegmentStats {
            bytes: view.end_position(),
            max_timestamp: view.max_timestamp(),
        };
        segment.set_stats(stats);
        Ok(stats)
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
