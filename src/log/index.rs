//! The two per-segment indexes: when entries are added ([`IndexCadence`], shared by the append
//! path and recovery so both build the same index), how they are held in memory
//! ([`IndexData`]), and how their files are written and loaded. Entry layouts are in
//! [`crate::format::index_entry`], the header in [`crate::format::file_header`].
//!
//! Index files are derived data: a segment's log is the truth. A damaged or missing index is
//! rebuilt from the log, and every lookup checks the batch header at the position it gets.

use std::io;
use std::sync::Arc;

use bytes::Bytes;

use super::mmap::SharedMap;
use crate::format::batch::MIN_BATCH_LEN;
use crate::format::file_header::{
    self, INDEX_HEADER_LEN, IndexHeader, SEGMENT_HEADER_LEN, SMALL_HEADER_LEN, SegmentSummary,
    TIME_INDEX_MAGIC,
};
use crate::format::index_entry::{self, OFFSET_ENTRY_LEN, OffsetEntry, TIME_ENTRY_LEN, TimeEntry};
use crate::layout::SegmentPaths;
use crate::vfs::{self, OpenMode, Vfs, VfsFile};

/// Index entries as readers see them.
#[derive(Debug, Clone)]
pub(crate) enum IndexData {
    /// Entries in a mapped file, after a header of the given length, growing as the writer
    /// publishes them.
    Live(Arc<SharedMap>, usize),
    /// A complete, checked set of entries.
    Fixed(Bytes),
}

impl IndexData {
    /// Calls `f` with the entry bytes (a whole number of entries).
    #[inline]
    pub(crate) fn with_entries<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            IndexData::Live(map, header_len) => map.read_from(*header_len, f),
            IndexData::Fixed(bytes) => f(bytes),
        }
    }
}

/// Decides where index entries go. Kafka's rule: a batch gets an offset index entry when at
/// least `index_interval_bytes` of log were written since the last entry. The time index gets
/// an entry at exactly the same batches (so the two can be checked against each other after a
/// crash), holding the running maximum timestamp, and one more when the segment is sealed.
#[derive(Debug, Clone)]
pub(crate) struct IndexCadence {
    interval_bytes: u64,
    bytes_since_entry: u64,
    max_timestamp: i64,
    last_time_entry: Option<i64>,
    last_batch: Option<u32>,
}

/// Entries to add for one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NewEntries {
    pub offset: OffsetEntry,
    pub time: TimeEntry,
}

impl IndexCadence {
    pub(crate) fn new(interval_bytes: u32) -> Self {
        IndexCadence {
            interval_bytes: u64::from(interval_bytes),
            bytes_since_entry: 0,
            max_timestamp: i64::MIN,
            last_time_entry: None,
            last_batch: None,
        }
    }

    /// Records a batch appended at `position`; returns the entries it gets, if any.
    pub(crate) fn on_batch(
        &mut self,
        relative_offset: u32,
        position: u32,
        length: u32,
        batch_max_timestamp: i64,
    ) -> Option<NewEntries> {
        self.max_timestamp = self.max_timestamp.max(batch_max_timestamp);
        self.last_batch = Some(relative_offset);
        // The first batch needs no entry: a lookup with no entry starts at the first batch.
        let due =
            position as usize > SEGMENT_HEADER_LEN && self.bytes_since_entry >= self.interval_bytes;
        self.bytes_since_entry += u64::from(length);
        if !due {
            return None;
        }
        self.bytes_since_entry = u64::from(length);
        self.last_time_entry = Some(self.max_timestamp);
        Some(NewEntries {
            offset: OffsetEntry {
                relative_offset,
                position,
            },
            time: TimeEntry {
                max_timestamp: self.max_timestamp,
                relative_offset,
            },
        })
    }

    /// Records a batch whose entries already exist (the batch a resumed index ends with).
    pub(crate) fn on_indexed_batch(
        &mut self,
        relative_offset: u32,
        length: u32,
        batch_max_timestamp: i64,
    ) {
        self.max_timestamp = self.max_timestamp.max(batch_max_timestamp);
        self.last_batch = Some(relative_offset);
        self.bytes_since_entry += u64::from(length);
    }

    /// The time entry that closes a sealed segment, if the last one does not already cover its
    /// maximum timestamp.
    pub(crate) fn seal_entry(&mut self) -> Option<TimeEntry> {
        let relative_offset = self.last_batch?;
        if self
            .last_time_entry
            .is_some_and(|t| t >= self.max_timestamp)
        {
            return None;
        }
        self.last_time_entry = Some(self.max_timestamp);
        Some(TimeEntry {
            max_timestamp: self.max_timestamp,
            relative_offset,
        })
    }

    /// Resumes the cadence of a segment whose last index entry is `last_entry` (with running
    /// maximum `entry_max_timestamp`), followed by `bytes_since_entry` bytes of batches (those
    /// of the entry's batch included) whose largest timestamp is `max_timestamp`, the last of
    /// which starts at `last_batch`.
    pub(crate) fn resume(
        interval_bytes: u32,
        entry_max_timestamp: Option<i64>,
        bytes_since_entry: u64,
        max_timestamp: i64,
        last_batch: Option<u32>,
    ) -> Self {
        IndexCadence {
            interval_bytes: u64::from(interval_bytes),
            bytes_since_entry,
            max_timestamp,
            last_time_entry: entry_max_timestamp,
            last_batch,
        }
    }

    /// Largest record timestamp seen (`i64::MIN` before the first batch).
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
}

/// Most offset index entries the batches in the first `segment_bytes` of a segment can need
/// with this interval (every batch takes at least a header and one minimal record).
pub(crate) fn max_offset_entries(segment_bytes: u64, interval_bytes: u32) -> usize {
    let min_batch = MIN_BATCH_LEN as u64;
    let step = u64::from(interval_bytes).max(min_batch);
    usize::try_from(segment_bytes / step + 2).unwrap_or(usize::MAX)
}

/// Bytes of an offset index file with room for `entries`.
pub(crate) fn offset_index_len(entries: usize) -> u64 {
    (INDEX_HEADER_LEN + entries * OFFSET_ENTRY_LEN) as u64
}

/// Bytes of a time index file with room for `entries`.
pub(crate) fn time_index_len(entries: usize) -> u64 {
    (SMALL_HEADER_LEN + entries * TIME_ENTRY_LEN) as u64
}

/// Index entries built in memory (by recovery, or to rebuild a damaged index).
#[derive(Debug, Clone)]
pub(crate) struct IndexBuilder {
    base_offset: u64,
    cadence: IndexCadence,
    pub offsets: Vec<u8>,
    pub times: Vec<u8>,
}

impl IndexBuilder {
    pub(crate) fn new(base_offset: u64, interval_bytes: u32) -> Self {
        IndexBuilder::resume(
            base_offset,
            IndexCadence::new(interval_bytes),
            Vec::new(),
            Vec::new(),
        )
    }

    /// Continues an index whose entries so far are `offsets` and `times`.
    pub(crate) fn resume(
        base_offset: u64,
        cadence: IndexCadence,
        offsets: Vec<u8>,
        times: Vec<u8>,
    ) -> Self {
        IndexBuilder {
            base_offset,
            cadence,
            offsets,
            times,
        }
    }

    /// Records a batch (in log order).
    pub(crate) fn push(&mut self, relative_offset: u32, position: u32, length: u32, max_ts: i64) {
        if let Some(new) = self
            .cadence
            .on_batch(relative_offset, position, length, max_ts)
        {
            self.offsets
                .extend_from_slice(&index_entry::encode_offset(new.offset));
            self.times
                .extend_from_slice(&index_entry::encode_time(self.base_offset, new.time));
        }
    }

    /// Records a batch that already has its index entries (where a resumed index continues).
    pub(crate) fn push_indexed(&mut self, relative_offset: u32, length: u32, max_ts: i64) {
        self.cadence
            .on_indexed_batch(relative_offset, length, max_ts);
    }

    /// Adds the closing time entry of a sealed segment.
    pub(crate) fn seal(&mut self) {
        if let Some(time) = self.cadence.seal_entry() {
            self.times
                .extend_from_slice(&index_entry::encode_time(self.base_offset, time));
        }
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.cadence.max_timestamp()
    }

    pub(crate) fn into_cadence(self) -> IndexCadence {
        self.cadence
    }

    pub(crate) fn offset_entry_count(&self) -> usize {
        self.offsets.len() / OFFSET_ENTRY_LEN
    }
}

/// Writes both index files of a segment from scratch, atomically (each through a temporary
/// file and a rename; the directory is synced once at the end). With `summary`, the offset
/// index is marked complete. `allocate` gives the offset and time index files space up to
/// those lengths (for an active segment that will keep growing).
pub(crate) fn write_index_files(
    vfs: &dyn Vfs,
    paths: &SegmentPaths,
    base_offset: u64,
    builder: &IndexBuilder,
    summary: Option<SegmentSummary>,
    allocate: Option<(u64, u64)>,
) -> io::Result<()> {
    let header = IndexHeader {
        base_offset,
        summary,
    };
    let mut offsets = Vec::with_capacity(INDEX_HEADER_LEN + builder.offsets.len());
    offsets.extend_from_slice(&file_header::encode_index(&header));
    offsets.extend_from_slice(&builder.offsets);
    let mut times = Vec::with_capacity(SMALL_HEADER_LEN + builder.times.len());
    times.extend_from_slice(&file_header::encode_small(TIME_INDEX_MAGIC, base_offset));
    times.extend_from_slice(&builder.times);
    replace_file(vfs, &paths.index, &offsets, allocate.map(|a| a.0))?;
    replace_file(vfs, &paths.time_index, &times, allocate.map(|a| a.1))?;
    vfs.sync_dir(paths.log.parent().unwrap_or(std::path::Path::new(".")))
}

/// Creates the empty index files of a new segment (which must not exist), allocated up to
/// the given lengths (offset index, time index), without syncing anything: an index is
/// derived data, and the caller syncs the directory before the segment's data is acknowledged
/// as durable. A crash before that leaves files that recovery rebuilds or removes.
pub(crate) fn create_index_files(
    vfs: &dyn Vfs,
    paths: &SegmentPaths,
    base_offset: u64,
    (index_len, time_len): (u64, u64),
) -> io::Result<()> {
    let header = IndexHeader {
        base_offset,
        summary: None,
    };
    let index = vfs.open(&paths.index, OpenMode::CreateNew)?;
    index.allocate(index_len)?;
    index.write_all_at(&file_header::encode_index(&header), 0)?;
    let times = vfs.open(&paths.time_index, OpenMode::CreateNew)?;
    times.allocate(time_len)?;
    times.write_all_at(&file_header::encode_small(TIME_INDEX_MAGIC, base_offset), 0)
}

fn replace_file(
    vfs: &dyn Vfs,
    path: &std::path::Path,
    data: &[u8],
    allocate: Option<u64>,
) -> io::Result<()> {
    let tmp = vfs::tmp_path(path);
    let file = vfs.open(&tmp, OpenMode::CreateTruncate)?;
    if let Some(len) = allocate {
        file.allocate(len.max(data.len() as u64))?;
    }
    file.write_all_at(data, 0)?;
    file.sync_all()?;
    drop(file);
    vfs.rename(&tmp, path)
}

/// A loaded offset index: its header and its entries (checked against the header's CRC when
/// the header is complete, against ordering otherwise).
#[derive(Debug, Clone)]
pub(crate) struct LoadedIndex {
    pub header: IndexHeader,
    pub entries: Vec<u8>,
}

/// Reads an offset index file; `None` if it is missing, damaged, or describes another segment.
pub(crate) fn load_offset_index(
    file: &dyn VfsFile,
    base_offset: u64,
) -> io::Result<Option<LoadedIndex>> {
    let len = usize::try_from(file.len()?).unwrap_or(usize::MAX);
    let mut bytes = vec![0u8; len.min(1 << 30)];
    let read = file.read_up_to(&mut bytes, 0)?;
    bytes.truncate(read);
    let Ok(header) = file_header::decode_index(&bytes, base_offset) else {
        return Ok(None);
    };
    let mut entries = bytes.split_off(INDEX_HEADER_LEN.min(bytes.len()));
    if let Some(summary) = header.summary {
        let want = summary.entry_count as usize * OFFSET_ENTRY_LEN;
        if entries.len() < want {
            return Ok(None);
        }
        entries.truncate(want);
        if index_entry::entries_crc(&entries) != summary.entries_crc {
            return Ok(None);
        }
    }
    Ok(Some(LoadedIndex { header, entries }))
}

/// Reads a time index file's entries; `None` if it is missing or its header is damaged (the
/// entries themselves are checked by the caller).
pub(crate) fn load_time_index(file: &dyn VfsFile, base_offset: u64) -> io::Result<Option<Vec<u8>>> {
    let len = usize::try_from(file.len()?).unwrap_or(usize::MAX);
    let mut bytes = vec![0u8; len.min(1 << 30)];
    let read = file.read_up_to(&mut bytes, 0)?;
    bytes.truncate(read);
    if file_header::decode_based(&bytes, TIME_INDEX_MAGIC, base_offset).is_err() {
        return Ok(None);
    }
    let mut entries = bytes.split_off(SMALL_HEADER_LEN);
    entries.truncate(entries.len() / TIME_ENTRY_LEN * TIME_ENTRY_LEN);
    Ok(Some(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadence_indexes_every_interval_and_skips_the_first_batch() {
        let mut cadence = IndexCadence::new(100);
        let start = u32::try_from(SEGMENT_HEADER_LEN).expect("small constant");
        assert_eq!(cadence.on_batch(0, start, 60, 10), None);
        assert_eq!(
            cadence.on_batch(1, start + 60, 60, 5),
            None,
            "60 bytes since the start"
        );
        let entry = cadence
            .on_batch(2, start + 120, 60, 20)
            .expect("120 >= 100 bytes");
        assert_eq!(
            entry.offset,
            OffsetEntry {
                relative_offset: 2,
                position: start + 120
            }
        );
        assert_eq!(
            entry.time,
            TimeEntry {
                max_timestamp: 20,
                relative_offset: 2
            }
        );
        assert_eq!(cadence.on_batch(3, start + 180, 60, 1), None);
        let entry = cadence.on_batch(4, start + 240, 60, 1).expect("due again");
        assert_eq!(
            entry.time,
            TimeEntry {
                max_timestamp: 20,
                relative_offset: 4
            },
            "running max"
        );
        assert_eq!(
            cadence.seal_entry(),
            None,
            "the last entry covers the maximum"
        );
        cadence.on_batch(5, start + 300, 10, 99);
        assert_eq!(
            cadence.seal_entry(),
            Some(TimeEntry {
                max_timestamp: 99,
                relative_offset: 5
            })
        );
    }

    #[test]
    fn zero_interval_indexes_every_batch_after_the_first() {
        let mut cadence = IndexCadence::new(0);
        let start = u32::try_from(SEGMENT_HEADER_LEN).expect("small constant");
        assert!(cadence.on_batch(0, start, 50, 0).is_none());
        assert!(cadence.on_batch(1, start + 50, 50, 0).is_some());
        assert!(cadence.on_batch(2, start + 100, 50, 0).is_some());
    }
}
