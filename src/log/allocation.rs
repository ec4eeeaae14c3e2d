//! [`SegmentSizes`]: how much disk space a segment's three files are given, and how that grows.
//!
//! The log file starts at its first allocation ([`FIRST_LOG_ALLOCATION_BYTES`] for user
//! topics) and doubles when an append would pass the allocated end, up to `segment_bytes`
//! (more at once when one append needs more). The two index files grow with it: each is
//! allocated, in whole blocks, for the most entries a log allocated that far could need
//! ([`super::index::max_offset_entries`]), the time index for one more (the entry that closes
//! a sealed segment). A sealed segment's files are trimmed to their data when it is finalized.
//!
//! Invariants:
//! - a log file's allocation is at least its data end and at most `segment_bytes`;
//! - every index entry of a batch that ends within the log's allocation fits the index files'
//!   allocation, so growing the log before an append (the only place files grow) gives its
//!   index entries their space too;
//! - the disk quota is charged [`SegmentSizes::disk_bytes`] for a new segment and the
//!   difference of two such figures for a growth, before the files grow: the same formula
//!   the allocations use, so the two agree block for block.

use super::index;
use super::space::{BLOCK_BYTES, in_blocks};
use crate::config::TopicConfig;

/// A user topic's log file starts with 64 KiB: small enough that a topic with many idle
/// partitions costs little disk (a 100 B record does not take megabytes), large enough that a
/// steadily written segment grows in few steps (10 doublings to the default 64 MiB, each one
/// `fallocate` and a quota check) and in extents the file system can keep contiguous.
pub(crate) const FIRST_LOG_ALLOCATION_BYTES: u64 = 64 << 10;

/// The sizes that decide a topic's segment allocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    clippy::struct_field_names,
    reason = "sizes end in their unit, as everywhere (STYLE.md section 3)"
)]
pub(crate) struct SegmentSizes {
    /// Where a segment is sealed: the most a log file is ever allocated.
    pub segment_bytes: u64,
    pub index_interval_bytes: u32,
    /// A new log file's allocation (whole blocks, at most `segment_bytes`).
    first_log_bytes: u64,
}

impl SegmentSizes {
    /// The sizes of a topic with `config` whose log files start at `first_log_bytes`.
    pub(crate) fn new(config: &TopicConfig, first_log_bytes: u64) -> Self {
        SegmentSizes {
            segment_bytes: config.segment_bytes,
            index_interval_bytes: config.index_interval_bytes,
            first_log_bytes: in_blocks(first_log_bytes.max(BLOCK_BYTES)).min(config.segment_bytes),
        }
    }

    /// A new log file's allocation when its first append ends at `needed`.
    pub(crate) fn first_log_allocation(&self, needed: u64) -> u64 {
        needed.max(self.first_log_bytes).min(self.segment_bytes)
    }

    /// What a log file allocated up to `allocated` grows to for data up to `needed`: twice
    /// as much (at least the first allocation), or `needed` if that is more, never past
    /// `segment_bytes`.
    pub(crate) fn grown_log_allocation(&self, allocated: u64, needed: u64) -> u64 {
        allocated
            .saturating_mul(2)
            .max(self.first_log_bytes)
            .max(needed)
            .min(self.segment_bytes)
    }

    /// Offset index entries the batches in a log allocated up to `log_bytes` can get.
    fn index_room(&self, log_bytes: u64) -> usize {
        index::max_offset_entries(log_bytes.min(self.segment_bytes), self.index_interval_bytes)
    }

    /// The offset index file's allocation for a log allocated up to `log_bytes`.
    pub(crate) fn offset_index_bytes(&self, log_bytes: u64) -> u64 {
        in_blocks(index::offset_index_len(self.index_room(log_bytes)))
    }

    /// The time index file's allocation for a log allocated up to `log_bytes`.
    pub(crate) fn time_index_bytes(&self, log_bytes: u64) -> u64 {
        in_blocks(index::time_index_len(self.index_room(log_bytes) + 1))
    }

    /// How much of the offset index file to map: all a full segment can need.
    pub(crate) fn offset_index_map_bytes(&self) -> u64 {
        self.offset_index_bytes(self.segment_bytes)
    }

    /// How much of the time index file to map: all a full segment can need.
    pub(crate) fn time_index_map_bytes(&self) -> u64 {
        self.time_index_bytes(self.segment_bytes)
    }

    /// The disk space of a segment's three files with its log allocated up to `log_bytes`.
    pub(crate) fn disk_bytes(&self, log_bytes: u64) -> u64 {
        in_blocks(log_bytes) + self.offset_index_bytes(log_bytes) + self.time_index_bytes(log_bytes)
    }

    /// The disk space a new segment takes at once.
    pub(crate) fn new_segment_bytes(&self) -> u64 {
        self.disk_bytes(self.first_log_allocation(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_allocation_doubles_from_the_first_one_up_to_the_segment() {
        let sizes = SegmentSizes::new(&TopicConfig::default().segment_bytes(1 << 20), 64 << 10);
        let mut allocated = sizes.first_log_allocation(100);
        let mut seen = vec![allocated];
        while allocated < 1 << 20 {
            allocated = sizes.grown_log_allocation(allocated, allocated + 1);
            seen.push(allocated);
        }
        assert_eq!(
            seen,
            [64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20],
            "64 KiB, then doubling to the segment size"
        );
        assert_eq!(
            sizes.grown_log_allocation(64 << 10, 300 << 10),
            300 << 10,
            "an append that needs more gets what it needs"
        );
        assert_eq!(sizes.grown_log_allocation(1 << 20, 2 << 20), 1 << 20);
    }

    #[test]
    fn index_files_have_room_for_every_entry_of_the_allocated_log() {
        for interval in [0u32, 100, 4_096] {
            let config = TopicConfig::default()
                .segment_bytes(8 << 20)
                .index_interval_bytes(interval);
            let sizes = SegmentSizes::new(&config, FIRST_LOG_ALLOCATION_BYTES);
            let mut log = sizes.first_log_allocation(0);
            loop {
                let room = index::max_offset_entries(log, interval);
                assert!(sizes.offset_index_bytes(log) >= index::offset_index_len(room));
                assert!(sizes.time_index_bytes(log) >= index::time_index_len(room + 1));
                assert!(sizes.offset_index_bytes(log) <= sizes.offset_index_map_bytes());
                assert!(sizes.time_index_bytes(log) <= sizes.time_index_map_bytes());
                assert_eq!(sizes.offset_index_bytes(log) % BLOCK_BYTES, 0);
                if log == sizes.segment_bytes {
                    break;
                }
                log = sizes.grown_log_allocation(log, log + 1);
            }
        }
    }

    #[test]
    fn a_new_default_segment_takes_its_first_log_allocation_and_a_block_per_index() {
        let sizes = SegmentSizes::new(&TopicConfig::default(), FIRST_LOG_ALLOCATION_BYTES);
        assert_eq!(sizes.new_segment_bytes(), (64 << 10) + 2 * BLOCK_BYTES);
        let tiny = SegmentSizes::new(&TopicConfig::default(), 1);
        assert_eq!(tiny.new_segment_bytes(), 3 * BLOCK_BYTES);
    }
}
