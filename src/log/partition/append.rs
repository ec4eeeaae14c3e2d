//! Appending: an append is planned and its space reserved before a byte is written (see
//! [`crate::log::append_plan`]), then written under the writer lock; rolls, and the bound on
//! sealed segments waiting to be finalized.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Appended, PartitionLog, STATE_OPEN, restore};
use crate::error::{Error, ErrorKind, Result};
use crate::format::batch::{self, BatchBuilder, BatchSource, MAX_HEADER_LEN};
use crate::format::file_header::SEGMENT_HEADER_LEN;
use crate::format::record::RecordRef;
use crate::layout::SegmentPaths;
use crate::log::active::{ActiveSegment, AppendError, Durability, SealedSegment};
use crate::log::allocation::SegmentSizes;
use crate::log::append_plan::{self, PlannedSegment};
use crate::log::segment::Segment;

/// Largest batch an append writes (unless one record is larger): bounds the bytes a reader
/// decodes to reach a record in the middle of a batch.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Most sealed segments a partition keeps waiting for the flusher to sync and finalize them.
/// Each holds three descriptors and three writable mappings until then; a writer that rolls
/// past this many (tiny segments, a long `send_batch`) finalizes them itself, so descriptors
/// and mappings stay bounded however fast segments fill: besides the ones waiting, a sync in
/// progress holds at most as many and the flusher's finalizing twice as many, so a partition
/// has at most four times this many sealed segments not finalized at any moment.
pub(crate) const MAX_UNFINALIZED_SEGMENTS: usize = 4;

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

/// What an append writes.
#[derive(Clone, Copy)]
enum Input<'a> {
    Records(&'a [RecordRef<'a>]),
    Built(&'a BatchBuilder),
}

/// A segment an append created to roll into, before it writes anything.
enum Prepared {
    /// Open: the first roll of an append (so an append that rolls once cannot fail half way).
    Open(ActiveSegment),
    /// Only its files: later rolls take their descriptors and mappings when they get there.
    Closed(SegmentPaths),
}

impl PartitionLog {
    /// Appends `records` (in order, contiguous offsets), splitting them into batches that fit
    /// the segments. All or nothing: the space of every batch, the segments it rolls into
    /// included, is reserved before a byte is written, so a `Full` error (or any failure to
    /// create a segment) leaves nothing of the call written. Only an I/O failure while it
    /// rolls into its second new segment or later (opening that segment's files) can leave
    /// a prefix of the records written; that error is not `Full`.
    ///
    /// Without space, the call waits up to `full_timeout` for some to be freed (without the
    /// writer lock, so syncs and the deletions that free space go on), then starts over.
    pub(crate) fn append(self: &Arc<Self>, records: &[RecordRef<'_>]) -> Result<Appended> {
        self.append_input(Input::Records(records))
    }

    /// Appends a batch a producer built (see [`BatchBuilder`]), rolling first if it does not
    /// fit the active segment. All or nothing, with the same wait for space as
    /// [`Self::append`].
    pub(crate) fn append_built(self: &Arc<Self>, batch: &BatchBuilder) -> Result<Appended> {
        self.append_input(Input::Built(batch))
    }

    fn append_input(self: &Arc<Self>, input: Input<'_>) -> Result<Appended> {
        let now = match input {
            Input::Records(_) => self.env.clock.now().as_millis(),
            Input::Built(b) => b.first_timestamp(),
        };
        let mut deadline: Option<Instant> = None;
        loop {
            let freed = self.env.space.freed_count();
            match self.append_locked(input, now) {
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

    /// One attempt of [`Self::append_input`], under the writer lock.
    fn append_locked(self: &Arc<Self>, input: Input<'_>, now: i64) -> Result<Appended, Refused> {
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
        let result = match input {
            Input::Records(records) => self.append_records(active, records, now),
            Input::Built(batch) => self.append_batch(active, batch),
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

    /// Appends `records` to `active`, planned as batches, rolling as needed.
    fn append_records(
        self: &Arc<Self>,
        active: &mut ActiveSegment,
        records: &[RecordRef<'_>],
        now: i64,
    ) -> Result<()> {
        // The common case, one batch in the active segment, plans without allocating.
        let room =
            usize::try_from(self.config.segment_bytes - active.position()).unwrap_or(usize::MAX);
        let (take, plan) = batch::plan_prefix(records, now, room.min(self.max_batch_bytes()));
        if take == records.len() && take > 0 {
            let source = BatchSource::Records {
                records,
                plan: &plan,
                now,
            };
            self.write_batch(active, &source, now)
        } else {
            self.append_spanning(active, records, now)
        }
    }

    /// Appends a built batch to `active`, rolling first if it does not fit.
    fn append_batch(
        self: &Arc<Self>,
        active: &mut ActiveSegment,
        batch: &BatchBuilder,
    ) -> Result<()> {
        let len = batch.len() as u64;
        if len > self.config.segment_bytes - SEGMENT_HEADER_LEN as u64 {
            return Err(Error::invalid_config(
                "a batch does not fit in an empty segment",
            ));
        }
        if active.position() + len > self.config.segment_bytes {
            self.roll(active, false)?;
        }
        self.write_batch(active, &BatchSource::Built(batch), batch.first_timestamp())
    }

    /// Writes one batch that fits the active segment.
    fn write_batch(
        &self,
        active: &mut ActiveSegment,
        batch: &BatchSource<'_>,
        now: i64,
    ) -> Result<()> {
        active
            .append(
                batch,
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
    }

    /// The largest batch a producer builds for this partition: the room of an empty
    /// segment, at most [`MAX_BATCH_BYTES`] (a record larger than that goes alone).
    pub(crate) fn largest_batch(&self) -> usize {
        let room = self.config.segment_bytes - SEGMENT_HEADER_LEN as u64;
        usize::try_from(room)
            .unwrap_or(usize::MAX)
            .min(MAX_BATCH_BYTES)
    }

    /// The largest batch an append writes.
    fn max_batch_bytes(&self) -> usize {
        MAX_BATCH_BYTES.max(MAX_HEADER_LEN + self.config.max_message_bytes as usize)
    }

    /// Appends records that take more than one batch, or more than the active segment holds:
    /// plans them, reserves the space of the whole plan, then writes.
    fn append_spanning(
        self: &Arc<Self>,
        active: &mut ActiveSegment,
        records: &[RecordRef<'_>],
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
                let source = BatchSource::Records {
                    records: chunk,
                    plan: &batch.plan,
                    now,
                };
                active
                    .append(&source, now, self.durable_offset(), prefaulter)
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

    /// Seals the active segment and starts the next one. If creating the next one fails, the
    /// active segment stays active and nothing is lost (nor left behind).
    /// `force` skips the disk limits (a deletion about to free the old segment needs it).
    pub(super) fn roll(self: &Arc<Self>, active: &mut ActiveSegment, force: bool) -> Result<()> {
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
}
