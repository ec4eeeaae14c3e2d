//! The active segment (the one being appended to) and a sealed segment waiting to be finalized.
//!
//! An append encodes one batch straight into the mapped segment file, adds index entries by
//! [`IndexCadence`], then publishes the new end (see [`super::mmap`]). All three files are
//! mapped at the size of a full segment, but written only below their allocated length:
//! space is reserved with `allocate` before a mapped write ever reaches it, so a full disk is
//! an error from `allocate`, never a SIGBUS. The log file starts at its first allocation and
//! doubles (up to `segment_bytes`) when an append would pass the allocated end; the index
//! files grow in the same step, to the room the allocated log can need
//! ([`super::allocation`]). So an append that got its log space has its index entries' space
//! too. Should an index entry find no room all the same, it is skipped in both indexes
//! (lookups then scan a little further; recovery trusts the prefix on which they agree).
//!
//! Sealing (at a roll) adds the closing time index entry and hands back a [`SealedSegment`];
//! once its data is synced, the flusher finalizes it: it trims the preallocated tails, writes
//! the segment summary into the index header and syncs the three files.

use std::io;
use std::sync::Arc;

use super::allocation::SegmentSizes;
use super::index::{self, IndexBuilder, IndexCadence, IndexData};
use super::mmap::{MapWriter, SharedMap};
use super::prefault::{PREFAULT_GAP_BYTES, Pace, Prefaulter};
use super::segment::{LogData, SegmentView};
use super::space::DiskSpace;
use crate::format::batch::{self, BatchSource};
use crate::format::file_header::{
    self, INDEX_HEADER_LEN, IndexHeader, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SMALL_HEADER_LEN,
    SegmentSummary,
};
use crate::format::index_entry::{self, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN};
use crate::layout::SegmentPaths;
use crate::vfs::{OpenMode, Vfs, VfsFile};

/// When a new segment's files become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Synced (files and directory) before `create` returns.
    Synced,
    /// Not synced: the caller makes the log file and the directory durable before it
    /// acknowledges anything written to the segment as durable. A roll uses this so that
    /// creating a segment (three files, four syncs, about 1.6 ms measured) does not stall the
    /// writer: the next group sync does it instead, together with the data.
    Deferred,
}

/// Why an append did not happen. Nothing was written in either case.
#[derive(Debug)]
pub(crate) enum AppendError {
    /// The batch does not fit in this segment: roll, then retry.
    SegmentFull,
    /// Reserving space failed (a full disk, most likely).
    Io(io::Error),
}

/// Where a resumed segment stands.
#[derive(Debug)]
pub(crate) struct ResumeState {
    pub position: u64,
    pub next_offset: u64,
    pub cadence: IndexCadence,
    pub offset_entries: usize,
    pub time_entries: usize,
}

/// The segment being appended to. Owned by the partition's writer (under its lock).
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    view: Arc<SegmentView>,
    log_file: Arc<dyn VfsFile>,
    log: MapWriter,
    index_file: Arc<dyn VfsFile>,
    index: MapWriter,
    time_file: Arc<dyn VfsFile>,
    time: MapWriter,
    cadence: IndexCadence,
    sizes: SegmentSizes,
    position: u64,
    next_offset: u64,
    /// The log file's allocated length (writes and populating stay below it).
    allocated: u64,
    /// The index files' allocated lengths (index writes stay below them).
    index_allocated: u64,
    time_allocated: u64,
    /// End of the range handed to the prefault thread.
    prefaulted: u64,
    /// How fast this partition's writer moves (carried from segment to segment).
    pace: Pace,
    capacity: u64,
    offset_entries: usize,
    time_entries: usize,
    /// The Wharf's disk limits, checked before the files grow.
    space: Option<Arc<DiskSpace>>,
}

impl ActiveSegment {
    /// Creates the three files of a new, empty segment at `base_offset` (synced, files then
    /// directory, with [`Durability::Synced`]) and opens it. The log file gets its first
    /// allocation, or space up to `reserve_to` if that is more.
    ///
    /// On any failure (a full disk, too many open files) every file it created is removed
    /// again, so the next attempt starts from nothing.
    pub(crate) fn create(
        vfs: &dyn Vfs,
        paths: &SegmentPaths,
        base_offset: u64,
        sizes: &SegmentSizes,
        durability: Durability,
        reserve_to: u64,
    ) -> io::Result<Self> {
        let allocation = sizes.first_log_allocation(reserve_to);
        let created = Self::create_files(vfs, paths, base_offset, sizes, durability, allocation)
            .and_then(|()| {
                let fresh = Self::fresh(sizes, base_offset);
                Self::open(vfs, paths, base_offset, sizes, fresh)
            });
        if created.is_err() {
            // Best effort: a file left behind is removed by the next attempt (or recovery).
            remove_files(vfs, paths);
        }
        created
    }

    /// Creates the three files of a new, empty segment without keeping them open (for an
    /// append that reserves the segments it will roll into: their descriptors and mappings
    /// are taken only when it rolls, by [`Self::open_created`]). The log file gets space up
    /// to `reserve_to`. On failure every file it created is removed again.
    pub(crate) fn create_closed(
        vfs: &dyn Vfs,
        paths: &SegmentPaths,
        base_offset: u64,
        sizes: &SegmentSizes,
        reserve_to: u64,
    ) -> io::Result<()> {
        let allocation = sizes.first_log_allocation(reserve_to);
        let created = Self::create_files(
            vfs,
            paths,
            base_offset,
            sizes,
            Durability::Deferred,
            allocation,
        );
        if created.is_err() {
            remove_files(vfs, paths);
        }
        created
    }

    /// Opens a segment made by [`Self::create_closed`] for appending.
    pub(crate) fn open_created(
        vfs: &dyn Vfs,
        paths: &SegmentPaths,
        base_offset: u64,
        sizes: &SegmentSizes,
    ) -> io::Result<Self> {
        Self::open(
            vfs,
            paths,
            base_offset,
            sizes,
            Self::fresh(sizes, base_offset),
        )
    }

    /// Removes the files of a segment made by [`Self::create_closed`] and never used.
    pub(crate) fn discard_created(vfs: &dyn Vfs, paths: &SegmentPaths) {
        remove_files(vfs, paths);
    }

    fn fresh(sizes: &SegmentSizes, base_offset: u64) -> ResumeState {
        ResumeState {
            position: SEGMENT_HEADER_LEN as u64,
            next_offset: base_offset,
            cadence: IndexCadence::new(sizes.index_interval_bytes),
            offset_entries: 0,
            time_entries: 0,
        }
    }

    fn create_files(
        vfs: &dyn Vfs,
        paths: &SegmentPaths,
        base_offset: u64,
        sizes: &SegmentSizes,
        durability: Durability,
        allocation: u64,
    ) -> io::Result<()> {
        let log = vfs.open(&paths.log, OpenMode::CreateNew)?;
        log.allocate(allocation)?;
        log.write_all_at(&file_header::encode_small(SEGMENT_MAGIC, base_offset), 0)?;
        let room = (
            sizes.offset_index_bytes(allocation),
            sizes.time_index_bytes(allocation),
        );
        let empty = IndexBuilder::new(base_offset, sizes.index_interval_bytes);
        match durability {
            Durability::Synced => {
                log.sync_all()?;
                index::write_index_files(vfs, paths, base_offset, &empty, None, Some(room))
            }
            Durability::Deferred => index::create_index_files(vfs, paths, base_offset, room),
        }
    }

    /// Opens existing segment files for appending: the log holds valid batches up to
    /// `state.position` (and zeros or nothing after), the index files hold the given numbers of
    /// entries. The index files are allocated (if they are not yet) for the room the log's
    /// allocation can need.
    pub(crate) fn open(
        vfs: &dyn Vfs,
        paths: &SegmentPaths,
        base_offset: u64,
        sizes: &SegmentSizes,
        state: ResumeState,
    ) -> io::Result<Self> {
        let capacity = sizes.segment_bytes;
        let log_file = vfs.open(&paths.log, OpenMode::ReadWrite)?;
        let allocated = log_file.len()?.max(state.position);
        let index_file = vfs.open(&paths.index, OpenMode::ReadWrite)?;
        let time_file = vfs.open(&paths.time_index, OpenMode::ReadWrite)?;
        let index_allocated = index_file.len()?.max(
            sizes
                .offset_index_bytes(allocated)
                .max(index::offset_index_len(state.offset_entries)),
        );
        let time_allocated = time_file.len()?.max(
            sizes
                .time_index_bytes(allocated)
                .max(index::time_index_len(state.time_entries)),
        );
        // Also when the length is already there: a length alone does not mean the blocks
        // are allocated, and a mapped write must not be the one that allocates them.
        index_file.allocate(index_allocated)?;
        time_file.allocate(time_allocated)?;
        let map_len = |full: u64, allocated: u64| to_usize(full.max(allocated));
        let log_map = SharedMap::new(
            log_file.map(to_usize(capacity), true)?,
            to_usize(state.position),
        );
        let index_map = SharedMap::new(
            index_file.map(
                map_len(sizes.offset_index_map_bytes(), index_allocated),
                true,
            )?,
            INDEX_HEADER_LEN + state.offset_entries * OFFSET_ENTRY_LEN,
        );
        let time_map = SharedMap::new(
            time_file.map(map_len(sizes.time_index_map_bytes(), time_allocated), true)?,
            SMALL_HEADER_LEN + state.time_entries * TIME_ENTRY_LEN,
        );
        let writer = |map: &Arc<SharedMap>| {
            MapWriter::new(map).ok_or_else(|| io::Error::other("mapping already has a writer"))
        };
        let (log, index, time) = (writer(&log_map)?, writer(&index_map)?, writer(&time_map)?);
        let view = Arc::new(
            SegmentView::new(
                base_offset,
                paths.clone(),
                LogData::Map(log_map),
                IndexData::Live(index_map, INDEX_HEADER_LEN),
                IndexData::Live(time_map, SMALL_HEADER_LEN),
                state.next_offset,
                state.cadence.max_timestamp(),
            )
            // What the appender writes from here on needs no check when read.
            .written_from(state.position),
        );
        Ok(ActiveSegment {
            view,
            log_file,
            log,
            index_file,
            index,
            time_file,
            time,
            cadence: state.cadence,
            sizes: *sizes,
            position: state.position,
            next_offset: state.next_offset,
            allocated,
            index_allocated,
            time_allocated,
            prefaulted: state.position,
            pace: Pace::default(),
            capacity,
            offset_entries: state.offset_entries,
            time_entries: state.time_entries,
            space: None,
        })
    }

    /// Checks every growth of the files against the Wharf's disk limits from now on.
    pub(crate) fn set_space(&mut self, space: Arc<DiskSpace>) {
        self.space = Some(space);
    }

    /// Takes over the writer's measured speed from the segment this one follows (a roll), so
    /// prefaulting goes on from the first append.
    pub(crate) fn continue_pace(&mut self, previous: &ActiveSegment) {
        self.pace = previous.pace;
    }

    pub(crate) fn view(&self) -> &Arc<SegmentView> {
        &self.view
    }

    pub(crate) fn base_offset(&self) -> u64 {
        self.view.base_offset
    }

    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset
    }

    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    pub(crate) fn log_file(&self) -> &Arc<dyn VfsFile> {
        &self.log_file
    }

    /// The index files, to sync before a checkpoint moves past their entries.
    pub(crate) fn index_files(&self) -> [Arc<dyn VfsFile>; 2] {
        [Arc::clone(&self.index_file), Arc::clone(&self.time_file)]
    }

    /// Whether the segment holds no batch.
    pub(crate) fn is_empty(&self) -> bool {
        self.position == SEGMENT_HEADER_LEN as u64
    }

    /// Appends `batch` with offsets from [`Self::next_offset`], and publishes it.
    /// `durable_offset`: every offset below it is on stable storage (the batch says so, see
    /// [`crate::format::batch`]). `now` paces the prefaulting. On error nothing was written.
    pub(crate) fn append(
        &mut self,
        batch: &BatchSource<'_>,
        now: i64,
        durable_offset: u64,
        prefaulter: Option<&Prefaulter>,
    ) -> Result<(), AppendError> {
        let len = batch.len();
        let length = len as u64;
        let end = self.position + length;
        if end > self.capacity {
            return Err(AppendError::SegmentFull);
        }
        self.reserve(end, false).map_err(AppendError::Io)?;
        let at = to_usize(self.position);
        let segment_base = self.base_offset();
        let encoded = match self.log.unpublished_mut(at, len) {
            Some(dst) => {
                let lag = batch::durable_lag(self.next_offset, durable_offset);
                batch.encode(dst, segment_base, self.next_offset, lag)
            }
            None => false,
        };
        if !encoded {
            return Err(AppendError::Io(io::Error::other(
                "batch encoding did not fit its plan",
            )));
        }
        let max_timestamp = batch.max_timestamp();
        let relative = u32::try_from(self.next_offset - self.base_offset()).unwrap_or(u32::MAX);
        let position = u32::try_from(self.position).unwrap_or(u32::MAX);
        let length32 = u32::try_from(length).unwrap_or(u32::MAX);
        if let Some(entries) = self
            .cadence
            .on_batch(relative, position, length32, max_timestamp)
        {
            self.add_index_entries(entries.offset, entries.time);
        }
        self.position = end;
        self.next_offset += batch.record_count() as u64;
        self.log.publish(at + len);
        self.view.publish(self.next_offset, max_timestamp);
        if let Some(prefaulter) = prefaulter {
            self.prefault_ahead(now, length, prefaulter);
        }
        Ok(())
    }

    /// Reserves the log file's space up to `end` (an append about to write up to there).
    pub(crate) fn reserve_to(&mut self, end: u64) -> io::Result<()> {
        self.reserve(end, false)
    }

    /// Makes sure the files' space is reserved up to `end` of the log (doubling the log's
    /// allocation, the index files growing with it). A `speculative` reservation (prefaulting
    /// ahead) only checks the disk limits against the usage figure as it stands; an append's
    /// own one counts again before it gives up. On failure the log's allocation is unchanged.
    fn reserve(&mut self, end: u64, speculative: bool) -> io::Result<()> {
        if end <= self.allocated {
            return Ok(());
        }
        let mut grown = self.sizes.grown_log_allocation(self.allocated, end);
        if let Some(space) = &self.space {
            let now = self.sizes.disk_bytes(self.allocated);
            let more = |to: u64| self.sizes.disk_bytes(to).saturating_sub(now);
            if speculative {
                space.try_reserve(more(grown))?;
            } else if space.try_reserve(more(grown)).is_err() {
                // Near a limit: grow by what this append needs rather than doubling.
                grown = end.min(self.capacity);
                space.reserve(more(grown))?;
            }
        }
        // The index files first: a log allocation always comes with its index room.
        let index_len = self.sizes.offset_index_bytes(grown);
        if index_len > self.index_allocated {
            self.index_file.allocate(index_len)?;
            self.index_allocated = index_len;
        }
        let time_len = self.sizes.time_index_bytes(grown);
        if time_len > self.time_allocated {
            self.time_file.allocate(time_len)?;
            self.time_allocated = time_len;
        }
        self.log_file.allocate(grown)?;
        self.allocated = grown;
        Ok(())
    }

    /// Keeps a range ahead of the writer faulted in by the prefault thread (see
    /// [`super::prefault`]) as far as the writer's speed earns, reserving the space first.
    #[inline]
    fn prefault_ahead(&mut self, now: i64, bytes: u64, prefaulter: &Prefaulter) {
        let lead = self
            .pace
            .on_append(now, bytes, prefaulter.flush_interval_ms());
        if lead == 0 {
            return;
        }
        // Never populate the pages the writer is about to write: both would wait on the same
        // page locks (measured: a 1.5 ms stall after each roll when populating from the end).
        let from = self.position + PREFAULT_GAP_BYTES;
        let end = (from + lead).min(self.capacity);
        // Top up once the writer has used half the lead: fewer, larger requests.
        if self.prefaulted.saturating_add(lead / 2) >= end {
            return;
        }
        let start = from.max(self.prefaulted);
        if start >= end || self.reserve(end, true).is_err() {
            // Nothing to add, or a full disk: the append that needs the space will report it.
            return;
        }
        prefaulter.request(self.log.map(), start, end - start);
        self.prefaulted = end;
    }

    /// Adds an offset index entry and its time index entry, or neither if either file has
    /// no room for it (never with the room [`Self::reserve`] makes): the two indexes agree
    /// entry for entry.
    fn add_index_entries(
        &mut self,
        offset: index_entry::OffsetEntry,
        time: index_entry::TimeEntry,
    ) {
        let at = INDEX_HEADER_LEN + self.offset_entries * OFFSET_ENTRY_LEN;
        let time_at = SMALL_HEADER_LEN + self.time_entries * TIME_ENTRY_LEN;
        let fits = (at + OFFSET_ENTRY_LEN) as u64 <= self.index_allocated
            && (time_at + TIME_ENTRY_LEN) as u64 <= self.time_allocated;
        if !fits || !self.index.write(at, &index_entry::encode_offset(offset)) {
            return; // lookups past the last entry scan further
        }
        self.offset_entries += 1;
        self.index.publish(at + OFFSET_ENTRY_LEN);
        self.add_time_entry(time);
    }

    /// Adds a time index entry if its file has room for it.
    fn add_time_entry(&mut self, time: index_entry::TimeEntry) {
        let at = SMALL_HEADER_LEN + self.time_entries * TIME_ENTRY_LEN;
        if (at + TIME_ENTRY_LEN) as u64 <= self.time_allocated
            && self
                .time
                .write(at, &index_entry::encode_time(self.base_offset(), time))
        {
            self.time_entries += 1;
            self.time.publish(at + TIME_ENTRY_LEN);
        }
    }

    fn summary(&self) -> SegmentSummary {
        let entries_crc = self.view_index_entries(index_entry::entries_crc);
        SegmentSummary {
            entry_count: u32::try_from(self.offset_entries).unwrap_or(u32::MAX),
            entries_crc,
            log_end_position: self.position,
            next_offset: self.next_offset,
            max_timestamp: self.cadence.max_timestamp(),
        }
    }

    fn view_index_entries<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        self.index.map().read_from(INDEX_HEADER_LEN, f)
    }

    /// Seals the segment: adds the closing time entry; the result must be synced, then
    /// finalized.
    pub(crate) fn seal(mut self) -> SealedSegment {
        if let Some(time) = self.cadence.seal_entry() {
            self.add_time_entry(time);
        }
        self.into_sealed()
    }

    /// Stops appending without sealing (a clean close): the segment resumes as the active one
    /// at the next open, so no closing time entry is added.
    pub(crate) fn close(self) -> SealedSegment {
        self.into_sealed()
    }

    fn into_sealed(self) -> SealedSegment {
        SealedSegment {
            summary: self.summary(),
            time_entries: self.time_entries,
            view: self.view,
            log_file: self.log_file,
            index_file: self.index_file,
            time_file: self.time_file,
        }
    }
}

/// A segment that takes no more appends, waiting for its preallocated tails to be trimmed and
/// its summary to be written.
#[derive(Debug)]
pub(crate) struct SealedSegment {
    pub view: Arc<SegmentView>,
    pub log_file: Arc<dyn VfsFile>,
    index_file: Arc<dyn VfsFile>,
    time_file: Arc<dyn VfsFile>,
    summary: SegmentSummary,
    time_entries: usize,
}

impl SealedSegment {
    /// Trims the files to their data, writes the summary into the index header and syncs all
    /// three. The log is trimmed and synced before the summary is written: recovery takes a
    /// segment with a summary as durable without reading it, so the summary must never
    /// describe data that could still be lost (a close finalizes segments whose data no sync
    /// has covered yet).
    pub(crate) fn finalize(&self) -> io::Result<()> {
        let s = self.summary;
        self.log_file.set_len(s.log_end_position)?;
        self.log_file.sync_all()?;
        self.index_file
            .set_len(index::offset_index_len(s.entry_count as usize))?;
        self.time_file
            .set_len(index::time_index_len(self.time_entries))?;
        let header = IndexHeader {
            base_offset: self.view.base_offset,
            summary: Some(s),
        };
        self.index_file
            .write_all_at(&file_header::encode_index(&header), 0)?;
        self.index_file.sync_all()?;
        self.time_file.sync_all()
    }

    pub(crate) fn next_offset(&self) -> u64 {
        self.summary.next_offset
    }

    pub(crate) fn end_position(&self) -> u64 {
        self.summary.log_end_position
    }
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Removes a segment's three files, ignoring the ones that are not there.
fn remove_files(vfs: &dyn Vfs, paths: &SegmentPaths) {
    for path in [&paths.log, &paths.index, &paths.time_index] {
        // Best effort: recovery removes a segment whose files are incomplete anyway.
        let _ = vfs.remove_file(path);
    }
}
