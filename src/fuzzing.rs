//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not a stable API). Each
//! feeds arbitrary bytes to a decoder that reads data from disk; none may panic.

use crate::format::{batch, checkpoint, file_header, index_entry, topic_meta};

/// Decodes `bytes` as a record batch expected at `expected_offset`; returns the number of
/// records decoded (0 if the batch is rejected).
pub fn decode_batch(bytes: &[u8], expected_offset: u64) -> usize {
    let Ok((header, batch_bytes)) = batch::check_batch(bytes, expected_offset) else {
        return 0;
    };
    let mut decoded = 0;
    let result = batch::decode_records(batch_bytes, &header, |span| {
        let headers = batch_bytes.get(span.headers.start as usize..span.headers.end as usize);
        let listed = headers.map_or(0, |h| batch::HeaderIter::new(h, span.header_count).count());
        assert_eq!(
            listed, span.header_count as usize,
            "checked headers must all iterate"
        );
        decoded += 1;
    });
    if result.is_ok() { decoded } else { 0 }
}

/// Treats `bytes` as index files of a segment based at `base_offset`: headers, entry checks
/// and lookups for a range of targets.
pub fn index_lookups(bytes: &[u8], base_offset: u64) {
    let _header = file_header::decode_index(bytes, base_offset);
    let _small = file_header::decode_small(bytes, file_header::TIME_INDEX_MAGIC);
    let end = u64::from(u32::MAX);
    let offsets = index_entry::count_offset_entries(bytes, 32, end).unwrap_or_else(|i| i);
    let times = index_entry::count_time_entries(bytes, base_offset, end).unwrap_or_else(|i| i);
    for target in [0u32, 1, 7, 100, 4_096, u32::MAX] {
        let _entry = index_entry::lookup_offset(bytes, offsets, target);
    }
    for target in [i64::MIN, -1, 0, 1, 1_700_000_000_000, i64::MAX] {
        let _entry = index_entry::lookup_time(bytes, base_offset, times, target);
    }
    let _slots = checkpoint::newest(bytes);
    let _topic = topic_meta::decode(bytes);
}
