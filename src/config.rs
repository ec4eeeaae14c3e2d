//! Configuration: [`TopicConfig`] (persisted per topic) and the Wharf-wide options behind
//! [`crate::WharfBuilder`]. Every default and every limit is a named constant here.

use std::time::Duration;

use crate::error::{Error, Result};

/// Default partitions per topic.
pub const DEFAULT_PARTITIONS: u32 = 1;
/// Most partitions a topic may have.
pub const MAX_PARTITIONS: u32 = 4_096;

/// Default segment size: 64 MiB. Kafka and RocketMQ use 1 GiB on servers; the default stays
/// small enough for edge devices, where retention deletes whole segments (the active one's
/// files start at 64 KiB and grow by doubling up to this size).
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Smallest segment: 4 KiB.
pub const MIN_SEGMENT_BYTES: u64 = 4 * 1024;
/// Largest segment: 2 GiB - 1. File positions are stored as `u32` in the index.
pub const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

/// Default bytes between sparse offset-index entries (Kafka's `index.interval.bytes`).
pub const DEFAULT_INDEX_INTERVAL_BYTES: u32 = 4_096;

/// Default largest record: 1 MiB (Kafka's `max.message.bytes` is about the same).
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 1024 * 1024;

/// Longest topic name, as in Kafka.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Longest consumer group name: a group's retry and dead-letter topics, `%RETRY%<group>` and
/// `%DLQ%<group>`, must be valid topic names.
pub const MAX_GROUP_NAME_LEN: usize = MAX_TOPIC_NAME_LEN - crate::topic::RETRY_PREFIX.len();

/// Most consumer groups a topic's retention may wait for ([`Retention::until_consumed_by`]).
pub const MAX_RETENTION_GROUPS: usize = 64;

/// Default interval between two retention runs: 60 s (Kafka checks every 5 minutes; a small
/// disk fills faster).
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(60);

/// Default most sealed segments kept open (mapped) at once across the Wharf; the least
/// recently loaded is closed past it, and opened again when read.
pub const DEFAULT_MAX_OPEN_SEGMENTS: usize = 512;

/// Default interval of the background flush (sync of `NoWait`/`Write` data): 1 s.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Default cap on asynchronous `Fsync` sends waiting for a sync, per partition. A caller that
/// would exceed it syncs in its own thread instead (backpressure without unbounded memory).
pub const DEFAULT_MAX_PENDING_ASYNC: usize = 65_536;

/// Retention limits of a topic. Segments past a limit are deleted whole, oldest first, and
/// never the active one. `None` means no limit.
///
/// With [`Retention::until_consumed_by`] (or [`Retention::until_consumed`]) a segment is
/// deleted by age or size only once those consumer groups have committed past it, so an edge
/// device never deletes what was not consumed yet; [`Retention::hard_max_bytes`] still wins,
/// and the records it drops unconsumed are counted ([`crate::RetentionReport`]).
///
/// ```
/// use std::time::Duration;
/// use wharf::Retention;
/// let retention = Retention::forever()
///     .max_age(Duration::from_secs(3_600))
///     .until_consumed_by(["billing"])
///     .hard_max_bytes(1 << 30);
/// assert_eq!(retention.max_age, Some(Duration::from_secs(3_600)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Retention {
    /// Delete a segment once its newest record is older than this.
    pub max_age: Option<Duration>,
    /// Delete the oldest segments while the partition holds more than this many bytes.
    pub max_bytes: Option<u64>,
    /// Which consumer groups must have consumed a segment before `max_age` or `max_bytes`
    /// may delete it. Default: none.
    pub keep_unconsumed: KeepUnconsumed,
    /// Delete the oldest segments while the partition holds more than this many bytes, even
    /// if they were not consumed. Checked by every retention run and after every append that
    /// seals a segment, so a partition holds at most this plus its active segment.
    pub hard_max_bytes: Option<u64>,
}

/// Which consumer groups hold back retention ([`Retention::until_consumed_by`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeepUnconsumed {
    /// Nobody: retention deletes by age and size alone (the default, Kafka's behavior).
    #[default]
    No,
    /// Until each of these groups committed past a segment. A named group that committed
    /// nothing yet keeps everything.
    ByGroups(Vec<String>),
    /// Until every group that committed an offset in the partition committed past a segment.
    ByAllGroups,
}

impl Retention {
    /// Keep everything (the default).
    pub const fn forever() -> Self {
        Retention {
            max_age: None,
            max_bytes: None,
            keep_unconsumed: KeepUnconsumed::No,
            hard_max_bytes: None,
        }
    }

    /// Sets the age limit.
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Sets the size limit per partition.
    #[must_use]
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Keeps segments until these consumer groups have committed past them.
    #[must_use]
    pub fn until_consumed_by<S: Into<String>>(
        mut self,
        groups: impl IntoIterator<Item = S>,
    ) -> Self {
        self.keep_unconsumed =
            KeepUnconsumed::ByGroups(groups.into_iter().map(Into::into).collect());
        self
    }

    /// Keeps segments until every group with a committed offset in the partition has
    /// committed past them.
    #[must_use]
    pub fn until_consumed(mut self) -> Self {
        self.keep_unconsumed = KeepUnconsumed::ByAllGroups;
        self
    }

    /// Sets the hard size limit per partition, which deletes even unconsumed segments.
    #[must_use]
    pub fn hard_max_bytes(mut self, bytes: u64) -> Self {
        self.hard_max_bytes = Some(bytes);
        self
    }

    /// Whether any limit is set (otherwise retention has nothing to do).
    pub(crate) fn is_limited(&self) -> bool {
        self.max_age.is_some() || self.max_bytes.is_some() || self.hard_max_bytes.is_some()
    }
}

/// A topic's configuration, fixed at creation and stored with the topic.
///
/// ```
/// use wharf::TopicConfig;
/// let config = TopicConfig::default().partitions(4).segment_bytes(16 << 20);
/// assert_eq!(config.partitions, 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicConfig {
    /// Number of partitions. Default [`DEFAULT_PARTITIONS`], at most [`MAX_PARTITIONS`].
    pub partitions: u32,
    /// Size at which a segment is sealed and the next one started. Default
    /// [`DEFAULT_SEGMENT_BYTES`]; between [`MIN_SEGMENT_BYTES`] and [`MAX_SEGMENT_BYTES`].
    pub segment_bytes: u64,
    /// Bytes of log between two offset-index entries. Default [`DEFAULT_INDEX_INTERVAL_BYTES`];
    /// 0 indexes every batch.
    pub index_interval_bytes: u32,
    /// Largest encoded record (key, value and headers). Default [`DEFAULT_MAX_MESSAGE_BYTES`],
    /// or the largest record a segment holds when [`TopicConfig::segment_bytes`] makes
    /// segments smaller than that; must fit in a segment.
    pub max_message_bytes: u32,
    /// Retention limits. Default: keep everything.
    pub retention: Retention,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: DEFAULT_PARTITIONS,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            retention: Retention::forever(),
        }
    }
}

impl TopicConfig {
    /// Sets the number of partitions.
    #[must_use]
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions;
        self
    }

    /// Sets the segment size in bytes. A `max_message_bytes` still at its default is lowered
    /// to the largest record such a segment holds, if it is above it (so
    /// `segment_bytes(256 << 10)` alone is a valid configuration); one set explicitly
    /// afterwards must fit.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        if self.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES {
            self.max_message_bytes = self.max_message_bytes.min(largest_record_in(bytes));
        }
        self
    }

    /// Sets the bytes between offset-index entries.
    #[must_use]
    pub fn index_interval_bytes(mut self, bytes: u32) -> Self {
        self.index_interval_bytes = bytes;
        self
    }

    /// Sets the largest record size in bytes.
    #[must_use]
    pub fn max_message_bytes(mut self, bytes: u32) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Sets the retention limits.
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Checks every field against its limits.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(Error::invalid_config(format!(
                "partitions must be between 1 and {MAX_PARTITIONS}, got {}",
                self.partitions
            )));
        }
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(Error::invalid_config(format!(
                "segment_bytes must be between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES}, got {}",
                self.segment_bytes
            )));
        }
        if self.max_message_bytes == 0 {
            return Err(Error::invalid_config(
                "max_message_bytes must be at least 1",
            ));
        }
        let largest_batch = crate::format::batch::max_batch_len_for_record(self.max_message_bytes);
        let room = self.segment_bytes - crate::format::file_header::SEGMENT_HEADER_LEN as u64;
        if largest_batch > room {
            return Err(Error::invalid_config(format!(
                "max_message_bytes {} does not fit in a segment of {} bytes",
                self.max_message_bytes, self.segment_bytes
            )));
        }
        if self.retention.max_bytes == Some(0) || self.retention.hard_max_bytes == Some(0) {
            return Err(Error::invalid_config(
                "retention max_bytes and hard_max_bytes must be at least 1",
            ));
        }
        if let KeepUnconsumed::ByGroups(groups) = &self.retention.keep_unconsumed {
            if groups.is_empty() || groups.len() > MAX_RETENTION_GROUPS {
                return Err(Error::invalid_config(format!(
                    "until_consumed_by needs 1 to {MAX_RETENTION_GROUPS} groups, got {}",
                    groups.len()
                )));
            }
            // The delay scheduler's internal group holds back the delay topic's retention.
            for group in groups
                .iter()
                .filter(|g| *g != crate::retry::SCHEDULER_GROUP)
            {
                crate::topic::validate_group_name(group)?;
            }
        }
        Ok(())
    }
}

/// What opening does with damage in data known durable: a batch that fails its checks where
/// the checkpoint, or a later batch written after it was synced, says the log was durable
/// ([`crate::WharfBuilder::recovery_mode`]; the names follow `RocksDB`'s WAL recovery modes).
/// A torn tail (a write that was never acknowledged as durable) is cut in either mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Fail the open with [`crate::ErrorKind::Corrupt`] naming the partition, offset and
    /// position of the damage, and change nothing (the default). Acknowledged data is never
    /// dropped without the application deciding so.
    #[default]
    Strict,
    /// Cut each damaged partition before the damage, as if the records from there on had
    /// never been written, and open. What was dropped is counted in
    /// [`crate::RecoveryStats::dropped_after_damage`]; committed offsets past the new end
    /// are lowered to it. For an operator who chose to lose those records over not opening
    /// (`RocksDB`'s `kPointInTimeRecovery`). Damage in older segments, which opening does not
    /// read, is still reported when they are read.
    PointInTime,
}

/// The largest `max_message_bytes` whose batch fits an empty segment of `segment_bytes` (at
/// least 1, so that a segment too small for anything still fails validation with a reason).
fn largest_record_in(segment_bytes: u64) -> u32 {
    let room = segment_bytes
        .saturating_sub(crate::format::file_header::SEGMENT_HEADER_LEN as u64)
        .saturating_sub(crate::format::batch::max_batch_len_for_record(0));
    u32::try_from(room).unwrap_or(u32::MAX).max(1)
}

/// Wharf-wide options, set through [`crate::WharfBuilder`].
#[derive(Debug, Clone)]
pub(crate) struct WharfOptions {
    pub read_only: bool,
    pub flush_interval: Duration,
    pub flush_messages: Option<u64>,
    pub max_pending_async: usize,
    pub delay_levels: crate::retry::policy::DelayLevels,
    pub dead_letter_retention: Retention,
    pub retention_interval: Duration,
    pub max_open_segments: usize,
    pub max_disk_bytes: Option<u64>,
    pub min_free_bytes: Option<u64>,
    pub full_timeout: Duration,
    pub recovery_mode: RecoveryMode,
    /// Whether the flusher, delay scheduler and prefault threads run. Off only in tests that
    /// drive the first two by hand, so that all I/O happens in the test's thread, in a
    /// reproducible order.
    pub background_threads: bool,
}

impl Default for WharfOptions {
    fn default() -> Self {
        WharfOptions {
            read_only: false,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            flush_messages: None,
            max_pending_async: DEFAULT_MAX_PENDING_ASYNC,
            delay_levels: crate::retry::policy::DelayLevels::default(),
            dead_letter_retention: Retention::forever()
                .max_age(crate::retry::DEFAULT_DEAD_LETTER_RETENTION),
            retention_interval: DEFAULT_RETENTION_INTERVAL,
            max_open_segments: DEFAULT_MAX_OPEN_SEGMENTS,
            max_disk_bytes: None,
            min_free_bytes: None,
            full_timeout: Duration::ZERO,
            recovery_mode: RecoveryMode::Strict,
            background_threads: true,
        }
    }
}

impl WharfOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.flush_interval.is_zero() {
            return Err(Error::invalid_config(
                "flush_interval must be greater than zero",
            ));
        }
        if self.flush_messages == Some(0) {
            return Err(Error::invalid_config("flush_messages must be at least 1"));
        }
        if self.max_pending_async == 0 {
            return Err(Error::invalid_config(
                "max_pending_async must be at least 1",
            ));
        }
        if self.retention_interval.is_zero() {
            return Err(Error::invalid_config(
                "retention_interval must be greater than zero",
            ));
        }
        if self.max_open_segments == 0 {
            return Err(Error::invalid_config(
                "max_open_segments must be at least 1",
            ));
        }
        if self.max_disk_bytes == Some(0) {
            return Err(Error::invalid_config("max_disk_bytes must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn default_config_is_valid() {
        TopicConfig::default().validate().expect("default config");
    }

    #[test]
    fn small_segments_lower_the_default_record_limit_to_what_fits() {
        for bytes in [
            MIN_SEGMENT_BYTES,
            256 << 10,
            u64::from(DEFAULT_MAX_MESSAGE_BYTES),
        ] {
            let config = TopicConfig::default().segment_bytes(bytes);
            config.validate().expect("a smaller segment alone is valid");
            let largest = crate::format::batch::max_batch_len_for_record(config.max_message_bytes)
                + crate::format::file_header::SEGMENT_HEADER_LEN as u64;
            assert_eq!(
                largest, bytes,
                "the largest record fills an empty segment exactly"
            );
        }
        let big = TopicConfig::default().segment_bytes(DEFAULT_SEGMENT_BYTES);
        assert_eq!(big.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        let explicit = TopicConfig::default()
            .segment_bytes(256 << 10)
            .max_message_bytes(1 << 20);
        assert!(explicit.validate().is_err(), "an explicit limit must fit");
    }

    #[test]
    fn out_of_range_fields_are_rejected() {
        let bad = [
            TopicConfig::default().partitions(0),
            TopicConfig::default().partitions(MAX_PARTITIONS + 1),
            TopicConfig::default().segment_bytes(MIN_SEGMENT_BYTES - 1),
            TopicConfig::default().segment_bytes(MAX_SEGMENT_BYTES + 1),
            TopicConfig::default().max_message_bytes(0),
            TopicConfig::default()
                .segment_bytes(MIN_SEGMENT_BYTES)
                .max_message_bytes(8_192),
            TopicConfig::default().retention(Retention::forever().max_bytes(0)),
        ];
        for config in bad {
            let err = config.validate().expect_err("must be rejected");
            assert!(
                matches!(err.kind(), ErrorKind::InvalidConfig { .. }),
                "{config:?}"
            );
        }
    }
}
