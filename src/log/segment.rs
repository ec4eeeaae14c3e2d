//! A segment as readers see it: [`SegmentView`] reads batches by offset (index lookup, then a
//! short forward walk checking each header) and finds offsets by timestamp; [`Segment`] is the
//! entry in a partition's segment list, which loads a sealed segment's view on first use.
//!
//! A segment file is a small header (magic `WHARFLOG`, version, base offset; see
//! [`crate::format::file_header`]) followed by record batches
//! ([`crate::format::batch`]) back to back, then (while active) zeroed preallocated space.
//!
//! Readers never take a lock to read: the active segment's data end and next offset are
//! published by the writer (release) and read here (acquire); a sealed segment never changes.
//! Every batch returned is checked against its expected base offset, and once per process
//! against its CRC and its record structure; a failure is a `Corrupt` error naming the offset,
//! never data.
//!
//! Checked once: a view knows that its batches below `verified_to` passed the check (it only
//! grows, and only from a position below which everything passed, so it is a prefix) and
//! that its batches from `written_from` on were encoded by this process through this view (the
//! active segment's appends; `u64::MAX` for data found on disk). Files read without a mapping
//! (read-only opens) remember nothing. A batch in either range is not checked again: reads of data this process wrote or already read cost a header walk and
//! one body-length varint per record. A read that starts past the verified prefix checks what
//! it reads without extending the prefix.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use super::index::{self, IndexBuilder, IndexData};
use super::mmap::SharedMap;
use super::recovery::{self, ScanStop};
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::batch::{self, BatchError, BatchHeader, MAX_HEADER_LEN};
use crate::format::file_header::{self, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SegmentSummary};
use crate::format::index_entry::{self, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN};
use crate::format::message::{Batch, Slot, SourceBatch};
use crate::format::record_decode;
use crate::layout::SegmentPaths;
use crate::vfs::{OpenMode, Vfs, VfsFile};

/// Bytes read per `pread` when a segment is read without a mapping.
const FILE_WINDOW_BYTES: u64 = 1 << 20;

/// Names a partition in errors.
#[derive(Debug, Clone)]
pub(crate) struct ReadCtx {
    pub topic: Arc<str>,
    pub partition: u32,
}

impl ReadCtx {
    pub(crate) fn corrupt(
        &self,
        offset: u64,
        path: &Path,
        position: u64,
        reason: impl ToString,
    ) -> Error {
        ErrorKind::Corrupt {
            topic: self.topic.to_string(),
            partition: self.partition,
            offset,
            path: path.to_path_buf(),
            position,
            reason: reason.to_string(),
        }
        .into()
    }
}

/// Limits of one read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    pub max_records: usize,
    /// Soft: the first batch is returned whole even if it is larger.
    pub max_bytes: usize,
}

/// Where a segment's log bytes come from.
#[derive(Debug)]
pub(crate) enum LogData {
    /// A mapping whose published length is the data end (zero-copy reads).
    Map(Arc<SharedMap>),
    /// `pread` from a file whose data ends at `end` (read-only opens: another process may be
    /// writing, so nothing is mapped).
    File { file: Arc<dyn VfsFile>, end: u64 },
}

impl LogData {
    fn end(&self) -> u64 {
        match self {
            LogData::Map(map) => map.published() as u64,
            LogData::File { end, .. } => *end,
        }
    }
}

/// The bytes `[start, start + bytes.len())` of a segment.
struct Window {
    start: u64,
    bytes: Bytes,
}

impl Window {
    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    fn from(&self, position: u64) -> &[u8] {
        let at = usize::try_from(position.saturating_sub(self.start)).unwrap_or(usize::MAX);
        self.bytes.get(at..).unwrap_or_default()
    }
}

/// Why a sealed segment holds fewer offsets than the log needs from it.
#[derive(Debug, Clone)]
pub(crate) struct Damage {
    /// The first offset missing.
    pub offset: u64,
    /// Where the valid data ends.
    pub position: u64,
    pub reason: String,
}

/// Read side of one segment.
#[derive(Debug)]
pub(crate) struct SegmentView {
    pub base_offset: u64,
    pub paths: SegmentPaths,
    log: LogData,
    index: IndexData,
    time_index: IndexData,
    next_offset: AtomicU64,
    max_timestamp: AtomicI64,
    /// Set when the segment ends before the next one begins (data known durable is damaged or
    /// missing).
    damage: Option<Damage>,
    /// Batches ending at or below this position passed their check (see the module docs).
    verified_to: AtomicU64,
    /// Batches from this position on were encoded by this process (see the module docs).
    written_from: u64,
}

impl SegmentView {
    pub(crate) fn new(
        base_offset: u64,
        paths: SegmentPaths,
        log: LogData,
        index: IndexData,
        time_index: IndexData,
        next_offset: u64,
        max_timestamp: i64,
    ) -> Self {
        SegmentView {
            base_offset,
            paths,
            log,
            index,
            time_index,
            next_offset: AtomicU64::new(next_offset),
            max_timestamp: AtomicI64::new(max_timestamp),
            damage: None,
            verified_to: AtomicU64::new(SEGMENT_HEADER_LEN as u64),
            written_from: u64::MAX,
        }
    }

    /// The view of a segment that this process appends to from `position` on.
    pub(crate) fn written_from(mut self, position: u64) -> Self {
        self.written_from = position;
        self
    }

    /// Whether the batch at `[start, end)` needs no check (see the module docs).
    #[inline]
    fn is_checked(&self, start: u64, end: u64) -> bool {
        start >= self.written_from || end <= self.verified_to.load(Ordering::Acquire)
    }

    /// The batch at `[start, end)` passed its check: extends the verified prefix if it
    /// adjoins it. Not for files read without a mapping: a read-only open reads files that
    /// another process writes, and after a crash of that process its recovery may cut what
    /// this one read and write other batches in its place.
    fn checked(&self, start: u64, end: u64) {
        if matches!(self.log, LogData::File { .. }) {
            return;
        }
        if self.verified_to.load(Ordering::Acquire) >= start {
            self.verified_to.fetch_max(end, Ordering::AcqRel);
        }
    }

    /// The error for a read of offsets between this segment's end and `next_base`, the base
    /// of the next segment: they are gone.
    pub(crate) fn gap_error(&self, ctx: &ReadCtx, next_base: u64) -> Error {
        let end = self.next_offset();
        match &self.damage {
            Some(d) => ctx.corrupt(d.offset, &self.paths.log, d.position, &d.reason),
            None => ctx.corrupt(
                end,
                &self.paths.log,
                self.end_position(),
                format!("offsets {end}..{next_base} are missing"),
            ),
        }
    }

    /// One past the last offset published in this segment.
    #[inline]
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// End of the published log data.
    pub(crate) fn end_position(&self) -> u64 {
        self.log.end()
    }

    /// Largest record timestamp published (`i64::MIN` if none).
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    /// Called by the (single) writer after the bytes of a batch are published; plain stores,
    /// no read-modify-write, since only the writer stores.
    #[inline]
    pub(crate) fn publish(&self, next_offset: u64, max_timestamp: i64) {
        if max_timestamp > self.max_timestamp.load(Ordering::Relaxed) {
            self.max_timestamp.store(max_timestamp, Ordering::Release);
        }
        self.next_offset.store(next_offset, Ordering::Release);
    }

    fn window(&self, start: u64, min_len: u64) -> io::Result<Window> {
        match &self.log {
            LogData::Map(map) => {
                let (from, to) = (to_usize(start), map.published());
                let bytes = map.bytes(from.min(to)..to).unwrap_or_default();
                Ok(Window { start, bytes })
            }
            LogData::File { file, end } => {
                let len = min_len
                    .max(FILE_WINDOW_BYTES)
                    .min(end.saturating_sub(start));
                let mut buf = vec![0u8; to_usize(len)];
                let read = file.read_up_to(&mut buf, start)?;
                buf.truncate(read);
                Ok(Window {
                    start,
                    bytes: Bytes::from(buf),
                })
            }
        }
    }

    /// The batch header at `position` names `offset` (the index is a hint; this checks it).
    fn header_names(&self, position: u64, offset: u64) -> bool {
        let base = self.base_offset;
        let check = |b: &[u8]| batch::parse_header(b, base).is_ok_and(|h| h.base_offset == offset);
        match &self.log {
            LogData::Map(map) => map.read_from(to_usize(position), check),
            LogData::File { file, .. } => {
                let mut buf = [0u8; MAX_HEADER_LEN];
                file.read_up_to(&mut buf, position)
                    .is_ok_and(|read| check(buf.get(..read).unwrap_or_default()))
            }
        }
    }

    /// Position and base offset of a batch at or before `offset`, from the index (checked), or
    /// the segment's first batch.
    fn locate(&self, offset: u64) -> (u64, u64) {
        let relative = u32::try_from(offset - self.base_offset).ok();
        let entry = relative.and_then(|rel| {
            self.index
                .with_entries(|e| index_entry::lookup_offset(e, e.len() / OFFSET_ENTRY_LEN, rel))
        });
        if let Some(entry) = entry {
            let base = self.base_offset + u64::from(entry.relative_offset);
            if self.header_names(u64::from(entry.position), base) {
                return (u64::from(entry.position), base);
            }
        }
        (SEGMENT_HEADER_LEN as u64, self.base_offset)
    }

    /// Reads records `[from, until)` of this segment, up to the limits.
    pub(crate) fn read(
        &self,
        ctx: &ReadCtx,
        from: u64,
        until: u64,
        limits: ReadLimits,
    ) -> Result<Batch> {
        let until = until.min(self.next_offset());
        if from >= until {
            return Ok(Batch::empty(Arc::clone(&ctx.topic), ctx.partition, from));
        }
        let (position, offset) = self.locate(from);
        let mut walk = Walk::new(self, ctx, position, offset, limits.max_bytes as u64)?;
        let mut slots: Vec<Slot> = Vec::with_capacity(limits.max_records.min(1_024));
        let mut batches: Vec<SourceBatch> = Vec::with_capacity(16);
        let mut taken_bytes = 0u64;
        // Where the batches taken begin: they all passed their check once the loop is done.
        let mut verified = None;
        while walk.offset < until {
            let Some(header) = walk.next_header(slots.is_empty())? else {
                break;
            };
            if header.next_offset() <= from {
                walk.skip(&header);
                continue;
            }
            if !slots.is_empty() && taken_bytes + u64::from(header.length) > limits.max_bytes as u64
            {
                break;
            }
            let (bytes, window_pos, checked) = walk.batch_bytes(&header)?;
            let base = walk.offset;
            let rel = u32::try_from(window_pos).map_err(|_| walk.corrupt("batch beyond 4 GiB"))?;
            // The records taken are those at `from..until`, up to the limit, so the first one
            // taken is at `base + skip`; batches alike (single sends within one millisecond,
            // offsets without gaps) share one entry.
            let skip = from.saturating_sub(base);
            let source = SourceBatch {
                offset_base: (base + skip).saturating_sub(slots.len() as u64),
                first_timestamp: header.first_timestamp,
                layout: header.layout(),
            };
            if batches.last() != Some(&source) {
                batches.push(source);
            }
            let source = u32::try_from(batches.len() - 1).unwrap_or(u32::MAX);
            record_decode::index_records(bytes, &header, checked, |index, body, value| {
                let offset = base + u64::from(index);
                if offset >= from && offset < until && slots.len() < limits.max_records {
                    slots.push(Slot {
                        body_start: body.start + rel,
                        value_start: value.start + rel,
                        value_end: value.end + rel,
                        batch: source,
                    });
                }
            })
            .map_err(|e| walk.corrupt(e))?;
            // Contiguous: the batches before `from` are only ever skipped before the first
            // one taken.
            verified.get_or_insert(walk.position);
            taken_bytes += u64::from(header.length);
            walk.skip(&header);
            if slots.len() >= limits.max_records || taken_bytes >= limits.max_bytes as u64 {
                break;
            }
        }
        if let Some(start) = verified {
            self.checked(start, walk.position);
        }
        if slots.is_empty() && walk.offset < until {
            return Err(walk.corrupt(format!("segment data ends before offset {until}")));
        }
        // One past the last record returned (which is in the last batch listed).
        let next = batches
            .last()
            .map_or(from, |b| b.offset_base + slots.len() as u64);
        Ok(Batch::new(
            Arc::clone(&ctx.topic),
            ctx.partition,
            walk.window.bytes,
            slots,
            batches,
            next,
        ))
    }

    /// The first offset below `until` whose record timestamp is at least `target`.
    pub(crate) fn offset_for_timestamp(
        &self,
        ctx: &ReadCtx,
        target: i64,
        until: u64,
    ) -> Result<Option<u64>> {
        if self.max_timestamp() < target {
            return Ok(None);
        }
        let base = self.base_offset;
        let start = self
            .time_index
            .with_entries(|e| index_entry::lookup_time(e, base, e.len() / TIME_ENTRY_LEN, target));
        let (position, offset) = self.locate(start.map_or(base, |rel| base + u64::from(rel)));
        let until = until.min(self.next_offset());
        let mut walk = Walk::new(self, ctx, position, offset, 0)?;
        while walk.offset < until {
            let Some(header) = walk.next_header(true)? else {
                break;
            };
            if header.max_timestamp >= target {
                let (bytes, _, _) = walk.batch_bytes(&header)?;
                let mut found = None;
                record_decode::decode_records(bytes, &header, |span| {
                    if found.is_none() && span.timestamp >= target {
                        found = Some(header.base_offset + u64::from(span.index));
                    }
                })
                .map_err(|e| walk.corrupt(e))?;
                if let Some(offset) = found.filter(|&o| o < until) {
                    return Ok(Some(offset));
                }
            }
            walk.skip(&header);
        }
        Ok(None)
    }
}

/// A forward walk over a segment's batches, checking each header's offset continuity.
struct Walk<'a> {
    view: &'a SegmentView,
    ctx: &'a ReadCtx,
    window: Window,
    position: u64,
    offset: u64,
    end: u64,
}

impl<'a> Walk<'a> {
    fn new(
        view: &'a SegmentView,
        ctx: &'a ReadCtx,
        position: u64,
        offset: u64,
        hint: u64,
    ) -> Result<Self> {
        let window = view.window(position, hint).ctx("read", &view.paths.log)?;
        let end = view.end_position();
        Ok(Walk {
            view,
            ctx,
            window,
            position,
            offset,
            end,
        })
    }

    fn corrupt(&self, reason: impl ToString) -> Error {
        self.ctx
            .corrupt(self.offset, &self.view.paths.log, self.position, reason)
    }

    /// The header of the batch at the current position, or `None` at the end of the data (or,
    /// when `may_refill` is false, at the end of the current window).
    fn next_header(&mut self, may_refill: bool) -> Result<Option<BatchHeader>> {
        if self.position >= self.end {
            return Ok(None);
        }
        loop {
            let header =
                match batch::parse_header(self.window.from(self.position), self.view.base_offset) {
                    Err(BatchError::Truncated) if self.window.end() < self.end => None,
                    Err(e) => return Err(self.corrupt(e)),
                    Ok(h) => Some(h),
                };
            let fits =
                header.is_some_and(|h| self.position + u64::from(h.length) <= self.window.end());
            if let (Some(h), true) = (header, fits) {
                if h.base_offset != self.offset {
                    return Err(self.corrupt(BatchError::UnexpectedOffset {
                        expected: self.offset,
                        found: h.base_offset,
                    }));
                }
                return Ok(Some(h));
            }
            // A header that did not parse was cut by the window: a longer one holds it.
            let needed = header
                .map_or((MAX_HEADER_LEN as u64).min(self.end - self.position), |h| {
                    u64::from(h.length)
                });
            if self.position + needed > self.end {
                return Err(self.corrupt(BatchError::Truncated));
            }
            if !may_refill {
                return Ok(None);
            }
            self.window = self
                .view
                .window(self.position, needed)
                .ctx("read", &self.view.paths.log)?;
            if self.window.end() < self.position + needed {
                return Err(self.corrupt(BatchError::Truncated));
            }
        }
    }

    /// The bytes of the current batch (whose header [`Self::next_header`] read), their
    /// position in the window, and whether the batch needs no check of its record structure
    /// (see the module docs); the CRC is checked here when it is needed.
    #[inline]
    fn batch_bytes(&self, header: &BatchHeader) -> Result<(&[u8], u64, bool)> {
        let end = self.position + u64::from(header.length);
        let at = self.window.from(self.position);
        let checked = self.view.is_checked(self.position, end);
        let bytes = if checked {
            at.get(..header.length as usize)
                .ok_or_else(|| self.corrupt(BatchError::Truncated))?
        } else {
            batch::verify_batch(at, header).map_err(|e| self.corrupt(e))?
        };
        Ok((bytes, self.position - self.window.start, checked))
    }

    fn skip(&mut self, header: &BatchHeader) {
        self.position += u64::from(header.length);
        self.offset = header.next_offset();
    }
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// An entry of a partition's segment list. Sealed segments found at open are loaded (files
/// opened, index checked or rebuilt) on first use.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub paths: SegmentPaths,
    view: Mutex<Option<Arc<SegmentView>>>,
    /// Set by retention once the segment is sealed.
    stats: std::sync::OnceLock<SegmentStats>,
}

/// What retention needs to know of a sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentStats {
    /// Bytes of the log file up to the end of its data.
    pub bytes: u64,
    /// The largest record timestamp in it (ms).
    pub max_timestamp: i64,
}

/// What loading a sealed segment needs.
#[derive(Debug)]
pub(crate) struct LoadCtx<'a> {
    pub vfs: &'a dyn Vfs,
    pub read: &'a ReadCtx,
    pub read_only: bool,
    pub index_interval_bytes: u32,
    /// The base offset of the following segment: where this one must end.
    pub next_offset: u64,
}

impl Segment {
    pub(crate) fn loaded(view: Arc<SegmentView>) -> Self {
        Segment {
            base_offset: view.base_offset,
            paths: view.paths.clone(),
            view: Mutex::new(Some(view)),
            stats: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn unloaded(base_offset: u64, paths: SegmentPaths) -> Self {
        Segment {
            base_offset,
            paths,
            view: Mutex::new(None),
            stats: std::sync::OnceLock::new(),
        }
    }

    /// The stats recorded for the sealed segment, if any.
    pub(crate) fn stats(&self) -> Option<SegmentStats> {
        self.stats.get().copied()
    }

    /// Records the sealed segment's stats.
    pub(crate) fn set_stats(&self, stats: SegmentStats) {
        let _ = self.stats.set(stats);
    }

    /// Whether the view is loaded (a read would not open files).
    pub(crate) fn is_loaded(&self) -> bool {
        self.view.lock().is_some()
    }

    /// Forgets the loaded view; the next [`Self::view`] loads the segment again.
    pub(crate) fn unload(&self) {
        drop(self.view.lock().take());
    }

    /// The view, loading the sealed segment if needed.
    pub(crate) fn view(&self, load: &LoadCtx<'_>) -> Result<Arc<SegmentView>> {
        let mut slot = self.view.lock();
        if let Some(view) = slot.as_ref() {
            return Ok(Arc::clone(view));
        }
        let view = Arc::new(load_sealed(self.base_offset, &self.paths, load)?);
        *slot = Some(Arc::clone(&view));
        Ok(view)
    }
}

/// Opens a sealed segment: checks its header, takes its summary and entries from the index
/// files when they check out, and otherwise rebuilds them by scanning the log (rewriting the
/// files unless read-only). A segment that ends before `load.next_offset` is corrupt: it lies
/// below the durable point.
fn load_sealed(base: u64, paths: &SegmentPaths, load: &LoadCtx<'_>) -> Result<SegmentView> {
    let ctx = load.read;
    let log = load
        .vfs
        .open(&paths.log, OpenMode::Read)
        .ctx("open", &paths.log)?;
    let log_len = log.len().ctx("read the size of", &paths.log)?;
    let mut head = [0u8; SEGMENT_HEADER_LEN];
    let header_ok = log.read_exact_at(&mut head, 0).is_ok()
        && file_header::decode_based(&head, SEGMENT_MAGIC, base).is_ok();
    if !header_ok {
        return Err(ctx.corrupt(base, &paths.log, 0, "segment file header is damaged"));
    }
    let stored = stored_index(load.vfs, paths, base, load.next_offset, log_len)?;
    let (summary, offsets, times, damage) = if let Some((summary, offsets, times)) = stored {
        let damage = (summary.next_offset < load.next_offset).then(|| Damage {
            offset: summary.next_offset,
            position: summary.log_end_position,
            reason: format!(
                "offsets {}..{} are missing (a segment was deleted or cut)",
                summary.next_offset, load.next_offset
            ),
        });
        (summary, offsets, times, damage)
    } else {
        let (summary, builder, damage) = rebuild_sealed(log.as_ref(), paths, base, load)?;
        // A damaged segment's index is kept in memory only: rewriting it would make the damage
        // look like a clean end.
        if !load.read_only && damage.is_none() {
            index::write_index_files(load.vfs, paths, base, &builder, Some(summary), None)
                .ctx("rewrite the index of", &paths.index)?;
        }
        (summary, builder.offsets, builder.times, damage)
    };
    let data = if load.read_only {
        LogData::File {
            file: log,
            end: summary.log_end_position,
        }
    } else {
        let len = to_usize(summary.log_end_position);
        let raw = log.map(len, false).ctx("map", &paths.log)?;
        LogData::Map(SharedMap::new_read_only(raw, len))
    };
    let mut view = SegmentView::new(
        base,
        paths.clone(),
        data,
        IndexData::Fixed(Bytes::from(offsets)),
        IndexData::Fixed(Bytes::from(times)),
        summary.next_offset,
        summary.max_timestamp,
    );
    view.damage = damage;
    Ok(view)
}

/// A sealed segment's summary, offset index entries and time index entries.
type StoredIndex = (SegmentSummary, Vec<u8>, Vec<u8>);

/// The stored index of a sealed segment if it is complete and consistent with the log.
fn stored_index(
    vfs: &dyn Vfs,
    paths: &SegmentPaths,
    base: u64,
    next_offset: u64,
    log_len: u64,
) -> Result<Option<StoredIndex>> {
    let open = |path: &Path| match vfs.open(path, OpenMode::Read) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("open", path, e)),
    };
    let Some(index_file) = open(&paths.index)? else {
        return Ok(None);
    };
    let Some(loaded) =
        index::load_offset_index(index_file.as_ref(), base).ctx("read", &paths.index)?
    else {
        return Ok(None);
    };
    let Some(summary) = loaded.header.summary else {
        return Ok(None);
    };
    let consistent = summary.next_offset <= next_offset
        && summary.log_end_position >= SEGMENT_HEADER_LEN as u64
        && summary.log_end_position <= log_len
        && index_entry::count_offset_entries(
            &loaded.entries,
            SEGMENT_HEADER_LEN as u64,
            summary.log_end_position,
        ) == Ok(summary.entry_count as usize);
    if !consistent {
        return Ok(None);
    }
    let Some(time_file) = open(&paths.time_index)? else {
        return Ok(None);
    };
    let Some(times) =
        index::load_time_index(time_file.as_ref(), base).ctx("read", &paths.time_index)?
    else {
        return Ok(None);
    };
    // The summary's decoder refuses a next offset below the base; checked again here.
    let Some(span) = summary.next_offset.checked_sub(base) else {
        return Ok(None);
    };
    match index_entry::count_time_entries(&times, base, span) {
        Ok(n) if n * TIME_ENTRY_LEN == times.len() => Ok(Some((summary, loaded.entries, times))),
        _ => Ok(None),
    }
}

/// Scans a sealed segment's whole log, checking every batch, and builds its indexes. Where the
/// valid batches end before the segment should, the damage is returned: the segment lies below
/// the durable point, so reads past its valid part report it as `Corrupt`.
fn rebuild_sealed(
    log: &dyn VfsFile,
    paths: &SegmentPaths,
    base: u64,
    load: &LoadCtx<'_>,
) -> Result<(SegmentSummary, IndexBuilder, Option<Damage>)> {
    let mut builder = IndexBuilder::new(base, load.index_interval_bytes);
    let outcome = recovery::scan_log(
        log,
        base,
        SEGMENT_HEADER_LEN as u64,
        base,
        |header, position| {
            builder.push(
                u32::try_from(header.base_offset - base).unwrap_or(u32::MAX),
                u32::try_from(position).unwrap_or(u32::MAX),
                header.length,
                header.max_timestamp,
            );
            header.next_offset() < load.next_offset
        },
    )
    .ctx("read", &paths.log)?;
    let damage = (outcome.next_offset != load.next_offset).then(|| Damage {
        offset: outcome.next_offset,
        position: outcome.end_position,
        reason: match outcome.stop {
            ScanStop::Invalid(e) => e.to_string(),
            ScanStop::EndOfData | ScanStop::Requested => {
                format!("the segment ends before offset {}", load.next_offset)
            }
        },
    });
    builder.seal();
    let summary = SegmentSummary {
        entry_count: u32::try_from(builder.offset_entry_count()).unwrap_or(u32::MAX),
        entries_crc: index_entry::entries_crc(&builder.offsets),
        log_end_position: outcome.end_position,
        next_offset: outcome.next_offset,
        max_timestamp: builder.max_timestamp(),
    };
    Ok((summary, builder, damage))
}
