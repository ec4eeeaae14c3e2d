//! Index entries and the searches over them. Both indexes are hints: a reader checks the batch
//! header at the position an entry gives, and recovery rebuilds an index that fails a check.
//!
//! Offset index (`.index`) entry, 8 bytes, written every `index_interval_bytes` of log:
//!
//! | position | size | field |
//! |---------:|-----:|-------|
//! | 0 | 4 | offset of a batch, relative to the segment's base offset |
//! | 4 | 4 | byte position of that batch in the `.log` file (never 0: the file header is there) |
//!
//! Entries are strictly increasing in both fields. An all-zero entry ends the list (the
//! preallocated tail of an active index).
//!
//! Time index (`.timeindex`) entry, 16 bytes, written with each offset index entry and when the
//! segment is sealed:
//!
//! | position | size | field |
//! |---------:|-----:|-------|
//! | 0  | 8 | largest record timestamp in the segment up to and including the batch below |
//! | 8  | 4 | offset of that batch, relative to the base offset |
//! | 12 | 4 | CRC32C of the segment's base offset (8 bytes LE) and bytes `[0, 12)` |
//!
//! Timestamps are the running maximum, so they never decrease even when record timestamps do
//! (as Kafka's time index). The per-entry CRC lets a reader trust an entry without reading the
//! log before it.

use super::cursor::Reader;

/// Bytes of an offset index entry.
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;
/// Bytes of a time index entry.
pub(crate) const TIME_ENTRY_LEN: usize = 16;

/// One offset index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub max_timestamp: i64,
    pub relative_offset: u32,
}

/// Encodes an offset index entry.
pub(crate) fn encode_offset(entry: OffsetEntry) -> [u8; OFFSET_ENTRY_LEN] {
    let mut out = [0u8; OFFSET_ENTRY_LEN];
    let (rel, pos) = out.split_at_mut(4);
    rel.copy_from_slice(&entry.relative_offset.to_le_bytes());
    pos.copy_from_slice(&entry.position.to_le_bytes());
    out
}

/// The `i`-th offset entry of `entries`, if present.
#[inline]
pub(crate) fn offset_at(entries: &[u8], i: usize) -> Option<OffsetEntry> {
    let bytes = entries.get(i * OFFSET_ENTRY_LEN..(i + 1) * OFFSET_ENTRY_LEN)?;
    let mut r = Reader::new(bytes);
    Some(OffsetEntry {
        relative_offset: r.u32()?,
        position: r.u32()?,
    })
}

/// Counts the leading entries that form a valid index for a log whose data ends at
/// `log_end_position`: stops at the first all-zero entry; returns `Err(i)` if entry `i` breaks
/// the ordering or points outside the data.
pub(crate) fn count_offset_entries(
    entries: &[u8],
    min_position: u64,
    log_end_position: u64,
) -> Result<usize, usize> {
    let mut previous: Option<OffsetEntry> = None;
    let mut i = 0;
    while let Some(entry) = offset_at(entries, i) {
        if entry.position == 0 && entry.relative_offset == 0 {
            break;
        }
        let ordered = previous.is_none_or(|p| {
            entry.relative_offset > p.relative_offset && entry.position > p.position
        });
        if !ordered
            || u64::from(entry.position) < min_position
            || u64::from(entry.position) >= log_end_position
        {
            return Err(i);
        }
        previous = Some(entry);
        i += 1;
    }
    Ok(i)
}

/// The last of the first `count` entries whose relative offset is at most `target`.
pub(crate) fn lookup_offset(entries: &[u8], count: usize, target: u32) -> Option<OffsetEntry> {
    // Binary search for the first entry past `target`.
    let (mut lo, mut hi) = (0usize, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match offset_at(entries, mid) {
            Some(e) if e.relative_offset <= target => lo = mid + 1,
            _ => hi = mid,
        }
    }
    lo.checked_sub(1).and_then(|i| offset_at(entries, i))
}

/// Encodes a time index entry for a segment based at `base_offset`.
pub(crate) fn encode_time(base_offset: u64, entry: TimeEntry) -> [u8; TIME_ENTRY_LEN] {
    let mut out = [0u8; TIME_ENTRY_LEN];
    let (body, crc) = out.split_at_mut(12);
    let (ts, rel) = body.split_at_mut(8);
    ts.copy_from_slice(&entry.max_timestamp.to_le_bytes());
    rel.copy_from_slice(&entry.relative_offset.to_le_bytes());
    let sum = crc32c::crc32c_append(crc32c::crc32c(&base_offset.to_le_bytes()), body);
    crc.copy_from_slice(&sum.to_le_bytes());
    out
}

/// The `i`-th time entry: `Ok(None)` past the end or at an all-zero entry, `Err(())` if the
/// entry fails its CRC.
pub(crate) fn time_at(entries: &[u8], base_offset: u64, i: usize) -> Result<Option<TimeEntry>, ()> {
    let Some(bytes) = entries.get(i * TIME_ENTRY_LEN..(i + 1) * TIME_ENTRY_LEN) else {
        return Ok(None);
    };
    if bytes.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let mut r = Reader::new(bytes);
    let (Some(body), Some(stored)) = (r.bytes(12), r.u32()) else {
        return Err(());
    };
    let computed = crc32c::crc32c_append(crc32c::crc32c(&base_offset.to_le_bytes()), body);
    if computed != stored {
        return Err(());
    }
    let mut r = Reader::new(body);
    match (r.i64(), r.u32()) {
        (Some(max_timestamp), Some(relative_offset)) => Ok(Some(TimeEntry {
            max_timestamp,
            relative_offset,
        })),
        _ => Err(()),
    }
}

/// Counts the leading valid time entries: stops at the first all-zero entry; `Err(i)` if entry
/// `i` fails its CRC, decreases, or names an offset at or past `next_relative_offset`.
pub(crate) fn count_time_entries(
    entries: &[u8],
    base_offset: u64,
    next_relative_offset: u64,
) -> Result<usize, usize> {
    let mut previous: Option<TimeEntry> = None;
    let mut i = 0;
    loop {
        match time_at(entries, base_offset, i) {
            Ok(None) => return Ok(i),
            Err(()) => return Err(i),
            Ok(Some(entry)) => {
                let ordered = previous.is_none_or(|p| {
                    entry.max_timestamp >= p.max_timestamp
                        && entry.relative_offset >= p.relative_offset
                });
                if !ordered || u64::from(entry.relative_offset) >= next_relative_offset {
                    return Err(i);
                }
                previous = Some(entry);
                i += 1;
            }
        }
    }
}

/// Where to start scanning for the first record with timestamp `>= target`: the relative offset
/// of the last batch known to hold only smaller timestamps, or `None` to start at the segment's
/// beginning. `entries` must hold `count` entries checked by [`count_time_entries`].
pub(crate) fn lookup_time(
    entries: &[u8],
    base_offset: u64,
    count: usize,
    target: i64,
) -> Option<u32> {
    let (mut lo, mut hi) = (0usize, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match time_at(entries, base_offset, mid) {
            Ok(Some(e)) if e.max_timestamp < target => lo = mid + 1,
            _ => hi = mid,
        }
    }
    let i = lo.checked_sub(1)?;
    match time_at(entries, base_offset, i) {
        Ok(Some(e)) => Some(e.relative_offset),
        _ => None,
    }
}

/// CRC32C over index entry bytes, stored in the index header of a complete segment.
pub(crate) fn entries_crc(entries: &[u8]) -> u32 {
    crc32c::crc32c(entries)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn offsets(entries: &[(u32, u32)]) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|&(r, p)| {
                encode_offset(OffsetEntry {
                    relative_offset: r,
                    position: p,
                })
            })
            .collect()
    }

    #[test]
    fn offset_lookup_finds_the_last_entry_not_past_the_target() {
        let bytes = offsets(&[(0, 32), (10, 4_000), (25, 9_000)]);
        assert_eq!(count_offset_entries(&bytes, 32, 10_000), Ok(3));
        assert_eq!(lookup_offset(&bytes, 3, 0).unwrap().position, 32);
        assert_eq!(lookup_offset(&bytes, 3, 9).unwrap().position, 32);
        assert_eq!(lookup_offset(&bytes, 3, 10).unwrap().position, 4_000);
        assert_eq!(lookup_offset(&bytes, 3, 1_000).unwrap().position, 9_000);
        assert_eq!(lookup_offset(&bytes, 0, 1_000), None);
    }

    #[test]
    fn offset_entries_stop_at_zeros_and_reject_disorder() {
        let mut bytes = offsets(&[(0, 32), (5, 100)]);
        bytes.extend([0u8; 16]);
        assert_eq!(count_offset_entries(&bytes, 32, 1_000), Ok(2));
        assert_eq!(
            count_offset_entries(&offsets(&[(5, 100), (4, 200)]), 32, 1_000),
            Err(1)
        );
        assert_eq!(
            count_offset_entries(&offsets(&[(0, 32), (5, 5_000)]), 32, 1_000),
            Err(1)
        );
        assert_eq!(count_offset_entries(&offsets(&[(0, 8)]), 32, 1_000), Err(0));
    }

    #[test]
    fn time_entries_check_their_crc_and_segment() {
        let entry = TimeEntry {
            max_timestamp: 123,
            relative_offset: 4,
        };
        let bytes = encode_time(77, entry);
        assert_eq!(time_at(&bytes, 77, 0), Ok(Some(entry)));
        assert_eq!(
            time_at(&bytes, 78, 0),
            Err(()),
            "an entry from another segment"
        );
        for bit in 0..TIME_ENTRY_LEN * 8 {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert_ne!(time_at(&damaged, 77, 0), Ok(Some(entry)), "bit {bit}");
        }
    }

    #[test]
    fn time_lookup_returns_the_last_batch_entirely_before_the_target() {
        let entries: Vec<u8> = [(100, 0), (200, 10), (200, 20), (300, 30)]
            .iter()
            .flat_map(|&(t, r)| {
                encode_time(
                    0,
                    TimeEntry {
                        max_timestamp: t,
                        relative_offset: r,
                    },
                )
            })
            .collect();
        assert_eq!(count_time_entries(&entries, 0, 31), Ok(4));
        assert_eq!(lookup_time(&entries, 0, 4, 50), None);
        assert_eq!(lookup_time(&entries, 0, 4, 100), None);
        assert_eq!(lookup_time(&entries, 0, 4, 150), Some(0));
        assert_eq!(lookup_time(&entries, 0, 4, 250), Some(20));
        assert_eq!(lookup_time(&entries, 0, 4, 1_000), Some(30));
        assert_eq!(
            count_time_entries(&entries, 0, 30),
            Err(3),
            "offset past the segment end"
        );
    }

    proptest! {
        #[test]
        fn offset_lookup_equals_a_linear_scan(
            steps in proptest::collection::vec((1u32..50, 1u32..5_000), 0..64),
            target in 0u32..3_000,
        ) {
            let mut rel = 0;
            let mut pos = 32;
            let mut pairs = Vec::new();
            for (dr, dp) in steps {
                pairs.push((rel, pos));
                rel += dr;
                pos += dp;
            }
            let bytes = offsets(&pairs);
            let linear = pairs.iter().rev().find(|&&(r, _)| r <= target).map(|&(_, p)| p);
            prop_assert_eq!(lookup_offset(&bytes, pairs.len(), target).map(|e| e.position), linear);
        }
    }
}
