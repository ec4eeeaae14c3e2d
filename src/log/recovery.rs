//! Recovery of a partition when it is opened.
//!
//! The checkpoint says up to which offset (and byte position) the log is known durable.
//! Everything below it is trusted without being read; everything after it is scanned:
//!
//! 1. Remove temporary files and index files without a log.
//! 2. Segments below the checkpoint's segment stay as they are (opened lazily; their index
//!    files are checked, or rebuilt, on first use).
//! 3. In the checkpoint's segment, resume from the last index entry below the checkpoint
//!    position (the offset and time indexes must agree on it), or from the first batch; walk
//!    the batches checking length, CRC and offset continuity. Damage before the checkpoint
//!    position is `Corrupt`: acknowledged data is never silently cut.
//! 4. The first invalid batch after the checkpoint (torn, zeroed, garbage, stale, misplaced)
//!    ends the log: the segment is truncated there and every later segment is deleted
//!    (Kafka's rule). Otherwise the walk continues into the next segment, whose header and base
//!    offset must continue the log.
//! 5. A segment (the checkpoint's included, the last excepted) that was finalized before the
//!    crash is not read: its summary was written after its data was synced, so it is known
//!    durable like the segments below the checkpoint. Its summary must check out and the next
//!    segment must start where it says it ends. The checkpoint only moves with the flusher,
//!    while a writer rolling through small segments finalizes them itself, so this keeps the
//!    work to the segments not finalized at the crash (a few per partition), however far the
//!    checkpoint trailed.
//! 6. Indexes of the scanned segments are rewritten from the walk; sealed ones are trimmed and
//!    get their summary; the last one becomes the active segment.
//! 7. Everything recovered is synced and a new checkpoint is written at the end.
//!
//! After a clean shutdown (the marker exists and the last segment's index summary, file length
//! and checkpoint agree) nothing is scanned at all. Recovery never decides anything by the
//! clock, and never panics on file contents: every check failure is a value.
//!
//! Read-only opens do the same analysis but change no file: the recovered state lives in
//! memory.

use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::active::{ActiveSegment, Durability, ResumeState};
use super::allocation::SegmentSizes;
use super::checkpoint::CheckpointFile;
use super::index::{self, IndexBuilder, IndexCadence, IndexData};
use super::segment::{LogData, ReadCtx, Segment, SegmentView};
use crate::config::{RecoveryMode, TopicConfig};
use crate::error::{Error, IoContext, Result};
use crate::format::batch::{self, BatchError, BatchHeader, MAX_HEADER_LEN, MIN_BATCH_LEN};
use crate::format::checkpoint::Checkpoint;
use crate::format::file_header::{self, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SegmentSummary};
use crate::format::index_entry::{self, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN};
use crate::layout::{self, PartitionFile, SegmentPaths};
use crate::vfs::{OpenMode, Vfs, VfsFile};

/// Bytes read per `pread` while scanning.
const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// Why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanStop {
    /// End of file, or zeroed (preallocated) space.
    EndOfData,
    /// A batch failed a check.
    Invalid(BatchError),
    /// The callback asked to stop.
    Requested,
}

/// Where a scan stopped.
#[derive(Debug, Clone)]
pub(crate) struct ScanOutcome {
    /// Position after the last valid batch.
    pub end_position: u64,
    /// Offset after the last valid batch.
    pub next_offset: u64,
    pub stop: ScanStop,
}

/// Walks the batches of the log file of the segment starting at `segment_base` from
/// `position`, expecting the first to start at `offset`,
/// checking each (length, CRC, offset continuity) and calling `on_batch` with each valid one
/// and its position; `on_batch` returns `false` to stop after that batch. Reads with `pread`,
/// never through a mapping, so an I/O error is an error and not a SIGBUS.
pub(crate) fn scan_log(
    file: &dyn VfsFile,
    segment_base: u64,
    mut position: u64,
    mut offset: u64,
    mut on_batch: impl FnMut(&BatchHeader, u64) -> bool,
) -> io::Result<ScanOutcome> {
    let mut chunk = Chunk {
        file,
        file_len: file.len()?,
        start: position,
        bytes: Vec::new(),
    };
    let outcome = |position, offset, stop| {
        Ok(ScanOutcome {
            end_position: position,
            next_offset: offset,
            stop,
        })
    };
    loop {
        if position >= chunk.file_len {
            return outcome(position, offset, ScanStop::EndOfData);
        }
        let avail = chunk.at(position, MAX_HEADER_LEN as u64)?;
        let header = match batch::parse_header(avail, segment_base) {
            Ok(header) => header,
            Err(BatchError::EndOfData) => return outcome(position, offset, ScanStop::EndOfData),
            Err(BatchError::Truncated) if avail.iter().all(|&b| b == 0) => {
                return outcome(position, offset, ScanStop::EndOfData);
            }
            Err(e) => return outcome(position, offset, ScanStop::Invalid(e)),
        };
        let length = u64::from(header.length);
        if length > chunk.file_len - position {
            return outcome(position, offset, ScanStop::Invalid(BatchError::Truncated));
        }
        if let Err(e) = batch::check_batch(chunk.at(position, length)?, segment_base, offset) {
            return outcome(position, offset, ScanStop::Invalid(e));
        }
        let more = on_batch(&header, position);
        position += length;
        offset = header.next_offset();
        if !more {
            return outcome(position, offset, ScanStop::Requested);
        }
    }
}

/// A window of a file read with `pread`, refilled as a scan moves on.
struct Chunk<'a> {
    file: &'a dyn VfsFile,
    file_len: u64,
    start: u64,
    bytes: Vec<u8>,
}

impl Chunk<'_> {
    /// The bytes from `position` to the end of the window, which covers at least `len` bytes
    /// (or up to the end of the file).
    fn at(&mut self, position: u64, len: u64) -> io::Result<&[u8]> {
        let covered =
            position >= self.start && position + len <= self.start + self.bytes.len() as u64;
        if !covered {
            let want = to_usize(len)
                .max(SCAN_CHUNK_BYTES)
                .min(to_usize(self.file_len - position));
            self.bytes.resize(want, 0);
            let read = self.file.read_up_to(&mut self.bytes, position)?;
            self.bytes.truncate(read);
            self.start = position;
        }
        Ok(self
            .bytes
            .get(to_usize(position - self.start)..)
            .unwrap_or_default())
    }
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// What recovery needs to know about a partition.
#[derive(Debug)]
pub(crate) struct PartitionSpec<'a> {
    pub vfs: &'a dyn Vfs,
    pub dir: &'a Path,
    pub ctx: &'a ReadCtx,
    pub config: &'a TopicConfig,
    /// How large the segment files are allocated.
    pub sizes: &'a SegmentSizes,
    pub read_only: bool,
    /// The Wharf was closed cleanly last time.
    pub clean: bool,
    /// What to do with damage in data known durable.
    pub mode: RecoveryMode,
}

/// The last segment of a recovered partition.
#[derive(Debug)]
pub(crate) enum LastSegment {
    /// Ready for appends (boxed: it is large next to the other variants).
    Active(Box<ActiveSegment>),
    /// Read-only open: a view of the recovered data.
    View(Arc<SegmentView>),
    /// Read-only open of a partition with no segment yet.
    None,
}

/// Figures a recovery reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RecoveryReport {
    /// Segments whose log was read (from a resume point or from their first batch).
    pub scanned_segments: usize,
    pub scanned_bytes: u64,
    pub truncated_bytes: u64,
    pub removed_files: usize,
    pub rewritten_indexes: usize,
    /// Offsets dropped because damage in data known durable was cut off
    /// ([`RecoveryMode::PointInTime`]): from the damage to the end of the valid data after it.
    pub dropped_after_damage: u64,
}

/// A recovered partition.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Segments before the last one, oldest first.
    pub sealed: Vec<Arc<Segment>>,
    pub last: LastSegment,
    pub next_offset: u64,
    pub start_offset: u64,
    pub checkpoint: Option<CheckpointFile>,
    pub report: RecoveryReport,
}

/// A segment walked by recovery.
struct Walked {
    base: u64,
    paths: SegmentPaths,
    log: Arc<dyn VfsFile>,
    end: u64,
    next_offset: u64,
    file_len: u64,
    /// Everything after `end` is zeros (unwritten allocated space), or nothing is: only then
    /// may a later segment continue the log. Read once, when the walk ends.
    zero_after_end: bool,
    builder: IndexBuilder,
    /// The walk ended before the checkpoint's durable point ([`RecoveryMode::PointInTime`]
    /// only: the strict mode fails instead).
    short_of_checkpoint: bool,
}

/// A segment from the checkpoint's on, as recovery found it.
enum TailSegment {
    /// Finalized before the crash and followed by the segment it says continues the log:
    /// taken as it is, unread ([`is_finalized`]).
    Finalized { base: u64 },
    /// Boxed: it is large next to the other variant.
    Walked(Box<Walked>),
}

/// Recovers the partition in `spec.dir`.
pub(crate) fn recover_partition(spec: &PartitionSpec<'_>) -> Result<Recovered> {
    let mut report = RecoveryReport::default();
    let mut bases = list_segments(spec, &mut report)?;
    let cp_path = spec.dir.join(layout::CHECKPOINT_FILE);
    let (mut cp_file, cp) = CheckpointFile::open(spec.vfs, &cp_path, spec.read_only)?;
    // Segments wholly below the durable log start: a deletion was cut short after it moved
    // the log start. Finish it.
    let below = bases
        .windows(2)
        .take_while(|pair| pair[1] <= cp.log_start_offset)
        .count();
    let deleted: Vec<u64> = bases.drain(..below).collect();
    if !spec.read_only && !deleted.is_empty() {
        remove_segments(spec, &deleted, &mut report)?;
        spec.vfs.sync_dir(spec.dir).ctx("sync", spec.dir)?;
    }
    if is_unfinished_creation(spec, &cp, &bases)? {
        if !spec.read_only {
            remove_segments(spec, &bases, &mut report)?;
        }
        bases.clear();
    }
    if bases.is_empty() {
        return recover_empty(spec, cp, cp_file, report);
    }
    let cp_index = checkpoint_segment(spec, &bases, &cp)?;
    let start_offset = cp.log_start_offset;
    let sealed_before = bases[..cp_index]
        .iter()
        .map(|&base| Arc::new(Segment::unloaded(base, SegmentPaths::new(spec.dir, base))))
        .collect::<Vec<_>>();
    let (tail, doomed) = walk_tail(spec, &cp, &bases[cp_index..], &mut report)?;
    let Some(TailSegment::Walked(last)) = tail.last() else {
        // `is_finalized` takes a segment only if the next one continues the log, and that
        // one is then walked or taken: the tail always ends with a walked segment.
        return Err(Error::corrupt_file(
            spec.dir,
            "the log ends with a finalized segment whose successor vanished during recovery",
        ));
    };
    let short_of_checkpoint =
        matches!(tail.first(), Some(TailSegment::Walked(w)) if w.short_of_checkpoint);
    check_tail_damage(spec, &cp, short_of_checkpoint, last, &doomed, &mut report)?;
    let next_offset = last.next_offset;
    let start_offset = start_offset.min(next_offset);
    if spec.read_only {
        let (sealed, last) = read_only_views(spec, sealed_before, tail);
        let checkpoint = None;
        return Ok(Recovered {
            sealed,
            last,
            next_offset,
            start_offset,
            checkpoint,
            report,
        });
    }
    remove_segments(spec, &doomed, &mut report)?;
    let (sealed, active) = install(spec, sealed_before, tail, &mut report)?;
    spec.vfs.sync_dir(spec.dir).ctx("sync", spec.dir)?;
    if let Some(file) = cp_file.as_mut() {
        let end = Checkpoint {
            sequence: file.last().sequence,
            next_offset: active.next_offset(),
            segment_base: active.base_offset(),
            position: active.position(),
            log_start_offset: start_offset,
        };
        if file.last() != end {
            file.write(end)?;
        }
    }
    let last = LastSegment::Active(Box::new(active));
    Ok(Recovered {
        sealed,
        last,
        next_offset,
        start_offset,
        checkpoint: cp_file,
        report,
    })
}

/// Checks that the segments the checkpoint relies on exist; returns the index of the
/// checkpoint's segment in `bases`.
fn checkpoint_segment(spec: &PartitionSpec<'_>, bases: &[u64], cp: &Checkpoint) -> Result<usize> {
    let first = bases.first().copied().unwrap_or(cp.segment_base);
    if first > cp.log_start_offset {
        // Only retention removes old segments, and it moves the log start first.
        let path = SegmentPaths::new(spec.dir, cp.log_start_offset).log;
        let reason = format!(
            "the segments holding offsets {}..{first} are missing",
            cp.log_start_offset
        );
        return Err(spec.ctx.corrupt(cp.log_start_offset, &path, 0, reason));
    }
    bases.binary_search(&cp.segment_base).map_err(|_| {
        let path = SegmentPaths::new(spec.dir, cp.segment_base).log;
        spec.ctx.corrupt(
            cp.segment_base,
            &path,
            0,
            "the checkpoint names a missing segment",
        )
    })
}

/// Walks the checkpoint's segment (`bases[0]`) and the ones after it, as long as each
/// continues the log, taking finalized ones unread; returns them and the bases of those that
/// do not continue the log (to be deleted).
///
/// So the work is bounded by the segments not finalized at the crash, not by how far the
/// checkpoint trails: a writer rolling through small segments finalizes them itself past a
/// few waiting, but only the flusher moves the checkpoint.
fn walk_tail(
    spec: &PartitionSpec<'_>,
    cp: &Checkpoint,
    bases: &[u64],
    report: &mut RecoveryReport,
) -> Result<(Vec<TailSegment>, Vec<u64>)> {
    let mut tail: Vec<TailSegment> = Vec::new();
    let mut doomed: Vec<u64> = Vec::new();
    for (i, &base) in bases.iter().enumerate() {
        let continues = match tail.last() {
            // The checkpoint's segment; or one that `is_finalized` found continues the last.
            None | Some(TailSegment::Finalized { .. }) => true,
            Some(TailSegment::Walked(w)) => w.zero_after_end && base == w.next_offset,
        };
        let next_base = bases.get(i + 1).copied();
        let checkpoint = (i == 0).then_some(cp);
        let segment = if !continues {
            None
        } else if is_finalized(spec, base, next_base, checkpoint)? {
            Some(TailSegment::Finalized { base })
        } else if i == 0 {
            let w = walk_checkpoint_segment(spec, cp, next_base.is_none(), report)?;
            Some(TailSegment::Walked(Box::new(w)))
        } else {
            walk_fresh_segment(spec, base, report)?.map(|w| TailSegment::Walked(Box::new(w)))
        };
        let Some(segment) = segment else {
            doomed.extend_from_slice(bases.get(i..).unwrap_or_default());
            break;
        };
        tail.push(segment);
    }
    Ok((tail, doomed))
}

/// Whether the segment at `base` was finalized before the crash and the segment after it, at
/// `next_base`, continues it. A summary is written into the offset
/// index only after the segment's data was synced, and trimmed (see
/// [`super::active::SealedSegment::finalize`]), so a segment with one is known durable, like
/// the segments below the checkpoint: it is taken as it is, unread, and its index is checked
/// again when it is first loaded. What is checked here: the summary (against its entries'
/// CRC, and their order and positions against it), the log's header and length, and the next
/// segment's header, whose base must be the summary's next offset. With `cp` (the segment is
/// the checkpoint's), the summary must also reach the durable point. The last segment is
/// never taken: it becomes the active one.
fn is_finalized(
    spec: &PartitionSpec<'_>,
    base: u64,
    next_base: Option<u64>,
    cp: Option<&Checkpoint>,
) -> Result<bool> {
    let Some(next_base) = next_base else {
        return Ok(false);
    };
    let paths = SegmentPaths::new(spec.dir, base);
    let Ok(index_file) = spec.vfs.open(&paths.index, OpenMode::Read) else {
        return Ok(false);
    };
    let Some(loaded) =
        index::load_offset_index(index_file.as_ref(), base).ctx("read", &paths.index)?
    else {
        return Ok(false);
    };
    let Some(summary) = loaded.header.summary else {
        return Ok(false);
    };
    let end = summary.log_end_position;
    let reaches_checkpoint = cp.is_none_or(|cp| {
        cp.position >= SEGMENT_HEADER_LEN as u64
            && cp.position <= end
            && cp.next_offset <= summary.next_offset
    });
    let entries_ok =
        index_entry::count_offset_entries(&loaded.entries, SEGMENT_HEADER_LEN as u64, end)
            == Ok(summary.entry_count as usize);
    if summary.next_offset != next_base || !reaches_checkpoint || !entries_ok {
        return Ok(false);
    }
    let log = spec
        .vfs
        .open(&paths.log, OpenMode::Read)
        .ctx("open", &paths.log)?;
    if log.len().ctx("read the size of", &paths.log)? < end || !has_valid_header(log.as_ref(), base)
    {
        return Ok(false);
    }
    let next = SegmentPaths::new(spec.dir, next_base);
    let next_log = spec
        .vfs
        .open(&next.log, OpenMode::Read)
        .ctx("open", &next.log)?;
    Ok(has_valid_header(next_log.as_ref(), next_base))
}

/// Whether the only segment is the partition's first, whose creation a crash interrupted: the
/// checkpoint vouches for none of its bytes (it names the segment at its header's end, with
/// no offset), its header is missing or invalid, and nothing but zeros follows. Recovery then
/// removes it and creates it again ([`recover_empty`]). A bad header anywhere else is damage.
fn is_unfinished_creation(
    spec: &PartitionSpec<'_>,
    cp: &Checkpoint,
    bases: &[u64],
) -> Result<bool> {
    if bases != [cp.segment_base]
        || cp.next_offset != cp.segment_base
        || cp.position != SEGMENT_HEADER_LEN as u64
    {
        return Ok(false);
    }
    let paths = SegmentPaths::new(spec.dir, cp.segment_base);
    let log = open_log(spec, &paths)?;
    if has_valid_header(log.as_ref(), cp.segment_base) {
        return Ok(false);
    }
    let len = log.len().ctx("read the size of", &paths.log)?;
    Ok(is_zero_from(log.as_ref(), SEGMENT_HEADER_LEN as u64, len))
}

/// Deletes the files of segments that no longer continue the log.
fn remove_segments(
    spec: &PartitionSpec<'_>,
    bases: &[u64],
    report: &mut RecoveryReport,
) -> Result<()> {
    for &base in bases {
        let paths = SegmentPaths::new(spec.dir, base);
        for path in [&paths.log, &paths.index, &paths.time_index] {
            match spec.vfs.remove_file(path) {
                Ok(()) => report.removed_files += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", path, e)),
            }
        }
    }
    Ok(())
}

/// Whether bytes `[position, end)` of `log` are all zero (a read error counts as not zero).
fn is_zero_from(log: &dyn VfsFile, mut position: u64, end: u64) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    while position < end {
        let len = to_usize((end - position).min(buf.len() as u64));
        let Some(chunk) = buf.get_mut(..len) else {
            return false;
        };
        if log.read_exact_at(chunk, position).is_err() || chunk.iter().any(|&b| b != 0) {
            return false;
        }
        position += len as u64;
    }
    true
}

/// Lists the segment base offsets, removing (unless read-only) temporary files and index files
/// whose log is gone.
fn list_segments(spec: &PartitionSpec<'_>, report: &mut RecoveryReport) -> Result<Vec<u64>> {
    let entries = spec.vfs.read_dir(spec.dir).ctx("list", spec.dir)?;
    let classified: Vec<(String, PartitionFile)> = entries
        .into_iter()
        .filter(|e| !e.is_dir)
        .map(|e| {
            let kind = layout::classify(&e.name);
            (e.name, kind)
        })
        .collect();
    let mut bases: Vec<u64> = classified
        .iter()
        .filter_map(|(_, kind)| match kind {
            PartitionFile::Log(base) => Some(*base),
            _ => None,
        })
        .collect();
    bases.sort_unstable();
    if !spec.read_only {
        for (name, kind) in &classified {
            let orphan = match kind {
                PartitionFile::Temporary => true,
                PartitionFile::Index(base) | PartitionFile::TimeIndex(base) => {
                    bases.binary_search(base).is_err()
                }
                _ => false,
            };
            if orphan {
                let path = spec.dir.join(name);
                spec.vfs.remove_file(&path).ctx("remove", &path)?;
                report.removed_files += 1;
            }
        }
    }
    Ok(bases)
}

/// A partition with no segment file.
fn recover_empty(
    spec: &PartitionSpec<'_>,
    cp: Checkpoint,
    cp_file: Option<CheckpointFile>,
    report: RecoveryReport,
) -> Result<Recovered> {
    if cp.next_offset != cp.segment_base {
        let path = SegmentPaths::new(spec.dir, cp.segment_base).log;
        return Err(spec.ctx.corrupt(
            cp.segment_base,
            &path,
            0,
            "the partition's segments are missing",
        ));
    }
    let last = if spec.read_only {
        LastSegment::None
    } else {
        let paths = SegmentPaths::new(spec.dir, cp.next_offset);
        let active = ActiveSegment::create(
            spec.vfs,
            &paths,
            cp.next_offset,
            spec.sizes,
            Durability::Synced,
            0,
        )
        .ctx("create", &paths.log)?;
        LastSegment::Active(Box::new(active))
    };
    Ok(Recovered {
        sealed: Vec::new(),
        last,
        next_offset: cp.next_offset,
        start_offset: cp.log_start_offset.max(cp.next_offset),
        checkpoint: cp_file,
        report,
    })
}

fn open_log(spec: &PartitionSpec<'_>, paths: &SegmentPaths) -> Result<Arc<dyn VfsFile>> {
    let mode = if spec.read_only {
        OpenMode::Read
    } else {
        OpenMode::ReadWrite
    };
    spec.vfs.open(&paths.log, mode).ctx("open", &paths.log)
}

/// Whether a batch header naming `offset` starts at `position` of the log of the segment
/// starting at `base`.
fn header_names(log: &dyn VfsFile, base: u64, position: u64, offset: u64) -> bool {
    let mut head = [0u8; MAX_HEADER_LEN];
    log.read_up_to(&mut head, position).is_ok_and(|read| {
        batch::parse_header(head.get(..read).unwrap_or_default(), base)
            .is_ok_and(|h| h.base_offset == offset)
    })
}

fn has_valid_header(log: &dyn VfsFile, base: u64) -> bool {
    let mut head = [0u8; SEGMENT_HEADER_LEN];
    log.read_exact_at(&mut head, 0).is_ok()
        && file_header::decode_based(&head, SEGMENT_MAGIC, base).is_ok()
}

/// Walks the checkpoint's segment from the last trusted index entry before the checkpoint.
fn walk_checkpoint_segment(
    spec: &PartitionSpec<'_>,
    cp: &Checkpoint,
    is_last: bool,
    report: &mut RecoveryReport,
) -> Result<Walked> {
    let base = cp.segment_base;
    let paths = SegmentPaths::new(spec.dir, base);
    let log = open_log(spec, &paths)?;
    let file_len = log.len().ctx("read the size of", &paths.log)?;
    if !has_valid_header(log.as_ref(), base) {
        return Err(spec
            .ctx
            .corrupt(base, &paths.log, 0, "segment file header is damaged"));
    }
    if cp.position < SEGMENT_HEADER_LEN as u64 {
        return Err(Error::corrupt_file(
            spec.dir.join(layout::CHECKPOINT_FILE),
            format!("impossible durable position {}", cp.position),
        ));
    }
    if spec.clean && is_last {
        if let Some(walked) = clean_resume(spec, cp, &paths, &log, file_len)? {
            return Ok(walked);
        }
    }
    let trusted = trusted_prefix(spec, &paths, log.as_ref(), base, cp)?;
    let (mut builder, start_position, start_offset, skip_first) = match trusted {
        Some(t) => (t.builder, t.position, t.offset, true),
        None => (
            IndexBuilder::new(base, spec.config.index_interval_bytes),
            SEGMENT_HEADER_LEN as u64,
            base,
            false,
        ),
    };
    let mut first = skip_first;
    let outcome = scan_log(
        log.as_ref(),
        base,
        start_position,
        start_offset,
        |header, position| {
            let rel = u32::try_from(header.base_offset - base).unwrap_or(u32::MAX);
            if first {
                builder.push_indexed(rel, header.length, header.max_timestamp);
                first = false;
            } else {
                builder.push(
                    rel,
                    u32::try_from(position).unwrap_or(u32::MAX),
                    header.length,
                    header.max_timestamp,
                );
            }
            true
        },
    )
    .ctx("read", &paths.log)?;
    report.scanned_segments += 1;
    report.scanned_bytes += outcome.end_position - start_position;
    if outcome.end_position < cp.position || outcome.next_offset < cp.next_offset {
        let reason = match &outcome.stop {
            ScanStop::Invalid(e) => e.to_string(),
            _ => "the log ends before its durable position".to_string(),
        };
        if spec.mode == RecoveryMode::Strict {
            return Err(spec.ctx.corrupt(
                outcome.next_offset,
                &paths.log,
                outcome.end_position,
                reason,
            ));
        }
        // Point-in-time: the log ends before the damage (counted by `check_tail_damage`).
    }
    let short_of_checkpoint =
        outcome.end_position < cp.position || outcome.next_offset < cp.next_offset;
    Ok(Walked {
        base,
        paths,
        zero_after_end: is_zero_from(log.as_ref(), outcome.end_position, file_len),
        log,
        end: outcome.end_position,
        next_offset: outcome.next_offset,
        file_len,
        builder,
        short_of_checkpoint,
    })
}

/// After a clean shutdown: the index summary, file length and checkpoint agree, so the
/// segment is taken as it is, unread.
fn clean_resume(
    spec: &PartitionSpec<'_>,
    cp: &Checkpoint,
    paths: &SegmentPaths,
    log: &Arc<dyn VfsFile>,
    file_len: u64,
) -> Result<Option<Walked>> {
    let base = cp.segment_base;
    let Ok(index_file) = spec.vfs.open(&paths.index, OpenMode::Read) else {
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
    if summary.next_offset != cp.next_offset
        || summary.log_end_position != cp.position
        || file_len != cp.position
    {
        return Ok(None);
    }
    let count = summary.entry_count as usize;
    let Ok(time_file) = spec.vfs.open(&paths.time_index, OpenMode::Read) else {
        return Ok(None);
    };
    let Some(times) =
        index::load_time_index(time_file.as_ref(), base).ctx("read", &paths.time_index)?
    else {
        return Ok(None);
    };
    // A checkpoint slot never names a next offset below its segment's base (its decoder
    // checks); nor does a summary.
    let Some(span) = cp.next_offset.checked_sub(base) else {
        return Ok(None);
    };
    // The entries must be in order and point into the data, as a writer leaves them (their
    // checksum only says they are the ones the summary was written with).
    let entries_ok =
        index_entry::count_offset_entries(&loaded.entries, SEGMENT_HEADER_LEN as u64, cp.position)
            == Ok(count);
    if !entries_ok
        || index_entry::count_time_entries(&times, base, span) != Ok(count)
        || times.len() != count * TIME_ENTRY_LEN
    {
        return Ok(None);
    }
    let last_entry = count.checked_sub(1).and_then(|i| {
        let offset = index_entry::offset_at(&loaded.entries, i)?;
        let time = index_entry::time_at(&times, base, i).ok().flatten()?;
        Some((offset, time))
    });
    let since = last_entry.map_or(SEGMENT_HEADER_LEN as u64, |(o, _)| u64::from(o.position));
    let Some(bytes_since) = cp.position.checked_sub(since) else {
        return Ok(None);
    };
    let last_batch = u32::try_from(span.saturating_sub(1))
        .ok()
        .filter(|_| span > 0);
    let cadence = IndexCadence::resume(
        spec.config.index_interval_bytes,
        last_entry.map(|(_, t)| t.max_timestamp),
        bytes_since,
        summary.max_timestamp,
        last_batch,
    );
    let builder = IndexBuilder::resume(base, cadence, loaded.entries, times);
    Ok(Some(Walked {
        base,
        paths: paths.clone(),
        log: Arc::clone(log),
        end: cp.position,
        next_offset: cp.next_offset,
        file_len,
        // The summary's end is the file's length.
        zero_after_end: true,
        builder,
        short_of_checkpoint: false,
    }))
}

/// Index entries of the checkpoint's segment that can be trusted: the longest prefix on which
/// the offset and time indexes agree, pointing below the checkpoint position, each at a batch
/// header that names the entry's offset (the index is a hint: a garbled position that still
/// looks ordered must not send the walk into the middle of a batch).
struct TrustedPrefix {
    builder: IndexBuilder,
    /// The last trusted entry's batch: where the scan resumes.
    position: u64,
    offset: u64,
}

fn trusted_prefix(
    spec: &PartitionSpec<'_>,
    paths: &SegmentPaths,
    log: &dyn VfsFile,
    base: u64,
    cp: &Checkpoint,
) -> Result<Option<TrustedPrefix>> {
    let (Ok(index_file), Ok(time_file)) = (
        spec.vfs.open(&paths.index, OpenMode::Read),
        spec.vfs.open(&paths.time_index, OpenMode::Read),
    ) else {
        return Ok(None);
    };
    let Some(loaded) =
        index::load_offset_index(index_file.as_ref(), base).ctx("read", &paths.index)?
    else {
        return Ok(None);
    };
    let Some(times) =
        index::load_time_index(time_file.as_ref(), base).ctx("read", &paths.time_index)?
    else {
        return Ok(None);
    };
    let below = |r: std::result::Result<usize, usize>| r.unwrap_or_else(|i| i);
    let offsets_ok = below(index_entry::count_offset_entries(
        &loaded.entries,
        SEGMENT_HEADER_LEN as u64,
        cp.position,
    ));
    let Some(span) = cp.next_offset.checked_sub(base) else {
        return Ok(None);
    };
    let times_ok = below(index_entry::count_time_entries(&times, base, span));
    let mut count = 0;
    while count < offsets_ok.min(times_ok) {
        let agree = match (
            index_entry::offset_at(&loaded.entries, count),
            index_entry::time_at(&times, base, count),
        ) {
            (Some(o), Ok(Some(t))) => {
                o.relative_offset == t.relative_offset
                    && header_names(
                        log,
                        base,
                        u64::from(o.position),
                        base + u64::from(o.relative_offset),
                    )
            }
            _ => false,
        };
        if !agree {
            break;
        }
        count += 1;
    }
    let Some(last) = count.checked_sub(1) else {
        return Ok(None);
    };
    let (Some(entry), Ok(Some(time))) = (
        index_entry::offset_at(&loaded.entries, last),
        index_entry::time_at(&times, base, last),
    ) else {
        return Ok(None);
    };
    let mut offsets = loaded.entries;
    offsets.truncate(count * OFFSET_ENTRY_LEN);
    let mut times = times;
    times.truncate(count * TIME_ENTRY_LEN);
    let cadence = IndexCadence::resume(
        spec.config.index_interval_bytes,
        Some(time.max_timestamp),
        0,
        time.max_timestamp,
        Some(entry.relative_offset),
    );
    Ok(Some(TrustedPrefix {
        builder: IndexBuilder::resume(base, cadence, offsets, times),
        position: u64::from(entry.position),
        offset: base + u64::from(entry.relative_offset),
    }))
}

/// Walks a segment after the checkpoint's one from its first batch; `None` if its header does
/// not check out (it then ends the log).
fn walk_fresh_segment(
    spec: &PartitionSpec<'_>,
    base: u64,
    report: &mut RecoveryReport,
) -> Result<Option<Walked>> {
    let paths = SegmentPaths::new(spec.dir, base);
    let log = open_log(spec, &paths)?;
    let file_len = log.len().ctx("read the size of", &paths.log)?;
    if !has_valid_header(log.as_ref(), base) {
        return Ok(None);
    }
    let mut builder = IndexBuilder::new(base, spec.config.index_interval_bytes);
    let outcome = scan_log(
        log.as_ref(),
        base,
        SEGMENT_HEADER_LEN as u64,
        base,
        |header, position| {
            let rel = u32::try_from(header.base_offset - base).unwrap_or(u32::MAX);
            builder.push(
                rel,
                u32::try_from(position).unwrap_or(u32::MAX),
                header.length,
                header.max_timestamp,
            );
            true
        },
    )
    .ctx("read", &paths.log)?;
    report.scanned_segments += 1;
    report.scanned_bytes += outcome.end_position - SEGMENT_HEADER_LEN as u64;
    Ok(Some(Walked {
        base,
        paths,
        zero_after_end: is_zero_from(log.as_ref(), outcome.end_position, file_len),
        log,
        end: outcome.end_position,
        next_offset: outcome.next_offset,
        file_len,
        builder,
        short_of_checkpoint: false,
    }))
}

/// Decides what the end of the walk means. A walk that stopped on something other than
/// zeroed space, or left later segments that do not continue the log, stopped at damage or
/// at a torn write. A power loss can keep any subset of the pages written since the last
/// sync, so valid batches after a torn one are no proof of damage by themselves; but a valid
/// batch after it that claims (see [`crate::format::batch`]) the log was durable past the
/// stop was written after the stopping batch was synced: that is damage in data known
/// durable, `Corrupt` (or, with [`RecoveryMode::PointInTime`], cut and counted). Otherwise
/// it is a torn tail, cut as before.
/// `last` is the last segment walked; `short_of_checkpoint`, whether the walk of the
/// checkpoint's segment ended before the durable point.
fn check_tail_damage(
    spec: &PartitionSpec<'_>,
    cp: &Checkpoint,
    short_of_checkpoint: bool,
    last: &Walked,
    doomed: &[u64],
    report: &mut RecoveryReport,
) -> Result<()> {
    let stopped_early = !doomed.is_empty() || !last.zero_after_end;
    if !stopped_early && !short_of_checkpoint {
        return Ok(());
    }
    let stop = last.next_offset;
    let mut after = ClaimsAfter::default();
    if stopped_early {
        after = durable_claims_after(last.log.as_ref(), last.base, last.end, stop)
            .ctx("read", &last.paths.log)?;
        for &base in doomed {
            let paths = SegmentPaths::new(spec.dir, base);
            let log = open_log(spec, &paths)?;
            if has_valid_header(log.as_ref(), base) {
                let found =
                    durable_claims_after(log.as_ref(), base, SEGMENT_HEADER_LEN as u64, stop)
                        .ctx("read", &paths.log)?;
                after = after.merge(found);
            }
        }
    }
    let durable_past_stop = after.claim.is_some_and(|claim| claim > stop);
    if !durable_past_stop && !short_of_checkpoint {
        return Ok(());
    }
    if spec.mode == RecoveryMode::Strict {
        let reason = format!(
            "the batch there is damaged, and a batch written after it says every offset \
             below {} was durable",
            after.claim.unwrap_or(stop)
        );
        return Err(spec.ctx.corrupt(stop, &last.paths.log, last.end, reason));
    }
    let lost_to = after.next_offset.unwrap_or(stop).max(cp.next_offset);
    report.dropped_after_damage += lost_to.saturating_sub(stop);
    Ok(())
}

/// What the valid batches found past a stop say.
#[derive(Debug, Clone, Copy, Default)]
struct ClaimsAfter {
    /// The highest durable claim.
    claim: Option<u64>,
    /// The offset after the last record found.
    next_offset: Option<u64>,
}

impl ClaimsAfter {
    fn merge(self, other: ClaimsAfter) -> ClaimsAfter {
        ClaimsAfter {
            claim: self.claim.max(other.claim),
            next_offset: self.next_offset.max(other.next_offset),
        }
    }
}

/// Looks for valid batches in `file` (the log of the segment starting at `base`) from
/// `position` to its end, at every byte position
/// (after damage, one may start anywhere), based at or above `stop` (a stale copy of an
/// earlier batch says nothing about later data), and collects their durable claims.
fn durable_claims_after(
    file: &dyn VfsFile,
    base: u64,
    position: u64,
    stop: u64,
) -> io::Result<ClaimsAfter> {
    let mut chunk = Chunk {
        file,
        file_len: file.len()?,
        start: position,
        bytes: Vec::new(),
    };
    let mut found = ClaimsAfter::default();
    let mut at = position;
    while at + MIN_BATCH_LEN as u64 <= chunk.file_len {
        let avail = chunk.at(at, MAX_HEADER_LEN as u64)?;
        // Jump to the next byte that could be a batch's version byte.
        let Some(skip) = avail
            .get(batch::VERSION_POS..)
            .and_then(|rest| rest.iter().position(|&b| b == batch::BATCH_VERSION))
        else {
            at += avail.len().saturating_sub(batch::VERSION_POS).max(1) as u64;
            continue;
        };
        at += skip as u64;
        let avail = chunk.at(at, MAX_HEADER_LEN as u64)?;
        let Ok(header) = batch::parse_header(avail, base) else {
            at += 1;
            continue;
        };
        let length = u64::from(header.length);
        let valid = header.base_offset >= stop
            && length <= chunk.file_len - at
            && batch::verify_batch(chunk.at(at, length)?, &header).is_ok();
        if !valid {
            at += 1;
            continue;
        }
        found = found.merge(ClaimsAfter {
            claim: header.durable_claim(),
            next_offset: Some(header.next_offset()),
        });
        at += length;
    }
    Ok(found)
}

fn summary_of(w: &Walked) -> SegmentSummary {
    SegmentSummary {
        entry_count: u32::try_from(w.builder.offset_entry_count()).unwrap_or(u32::MAX),
        entries_crc: index_entry::entries_crc(&w.builder.offsets),
        log_end_position: w.end,
        next_offset: w.next_offset,
        max_timestamp: w.builder.max_timestamp(),
    }
}

/// Writes the recovered state to disk: sealed walked segments get trimmed logs and complete
/// indexes, finalized ones are left as they are, the last one is truncated to its valid end
/// and reopened for appends.
fn install(
    spec: &PartitionSpec<'_>,
    mut sealed: Vec<Arc<Segment>>,
    tail: Vec<TailSegment>,
    report: &mut RecoveryReport,
) -> Result<(Vec<Arc<Segment>>, ActiveSegment)> {
    let count = tail.len();
    let mut active = None;
    for (i, segment) in tail.into_iter().enumerate() {
        let mut w = match segment {
            TailSegment::Finalized { base } => {
                let paths = SegmentPaths::new(spec.dir, base);
                sealed.push(Arc::new(Segment::unloaded(base, paths)));
                continue;
            }
            TailSegment::Walked(w) => *w,
        };
        if w.file_len > w.end {
            report.truncated_bytes += if w.zero_after_end {
                0
            } else {
                w.file_len - w.end
            };
            w.log.set_len(w.end).ctx("truncate", &w.paths.log)?;
        }
        w.log.sync_all().ctx("sync", &w.paths.log)?;
        if i + 1 < count {
            w.builder.seal();
            let summary = summary_of(&w);
            index::write_index_files(spec.vfs, &w.paths, w.base, &w.builder, Some(summary), None)
                .ctx("rewrite the index of", &w.paths.index)?;
            report.rewritten_indexes += 1;
            sealed.push(Arc::new(Segment::unloaded(w.base, w.paths)));
        } else {
            // Opening it for appends allocates the index files' room for the log.
            index::write_index_files(spec.vfs, &w.paths, w.base, &w.builder, None, None)
                .ctx("rewrite the index of", &w.paths.index)?;
            report.rewritten_indexes += 1;
            let state = ResumeState {
                position: w.end,
                next_offset: w.next_offset,
                offset_entries: w.builder.offsets.len() / OFFSET_ENTRY_LEN,
                time_entries: w.builder.times.len() / TIME_ENTRY_LEN,
                cadence: w.builder.into_cadence(),
            };
            drop(w.log);
            let segment = ActiveSegment::open(spec.vfs, &w.paths, w.base, spec.sizes, state)
                .ctx("open", &w.paths.log)?;
            active = Some(segment);
        }
    }
    let active =
        active.ok_or_else(|| Error::corrupt_file(spec.dir, "no segment survived recovery"))?;
    Ok((sealed, active))
}

/// Read-only: views of the walked segments, backed by `pread` and in-memory indexes; the
/// finalized ones are loaded on first use, as the segments below the checkpoint.
fn read_only_views(
    spec: &PartitionSpec<'_>,
    mut sealed: Vec<Arc<Segment>>,
    tail: Vec<TailSegment>,
) -> (Vec<Arc<Segment>>, LastSegment) {
    let count = tail.len();
    let mut last = LastSegment::None;
    for (i, segment) in tail.into_iter().enumerate() {
        let mut w = match segment {
            TailSegment::Finalized { base } => {
                let paths = SegmentPaths::new(spec.dir, base);
                sealed.push(Arc::new(Segment::unloaded(base, paths)));
                continue;
            }
            TailSegment::Walked(w) => *w,
        };
        if i + 1 < count {
            w.builder.seal();
        }
        let max_timestamp = w.builder.max_timestamp();
        let view = Arc::new(SegmentView::new(
            w.base,
            w.paths,
            LogData::File {
                file: w.log,
                end: w.end,
            },
            IndexData::Fixed(Bytes::from(w.builder.offsets)),
            IndexData::Fixed(Bytes::from(w.builder.times)),
            w.next_offset,
            max_timestamp,
        ));
        if i + 1 < count {
            sealed.push(Arc::new(Segment::loaded(view)));
        } else {
            last = LastSegment::View(view);
        }
    }
    (sealed, last)
}
