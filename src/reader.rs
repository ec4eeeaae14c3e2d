//! [`PartitionReader`]: reads one partition by offset, finds offsets by time, and waits for new
//! records (woken by the appender, no polling). Consumers are built on it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::Timestamp;
use crate::error::Result;
use crate::format::message::Batch;
use crate::log::{PartitionLog, ReadLimits};
use crate::wharf::Inner;

/// Default most records per read (Kafka's `max.poll.records`).
pub const DEFAULT_READ_MAX_RECORDS: usize = 500;
/// Default most bytes per read: 1 MiB (at least one batch is always returned).
pub const DEFAULT_READ_MAX_BYTES: usize = 1 << 20;

/// Options of one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct ReadOptions {
    max_records: usize,
    max_bytes: usize,
    durable_only: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_records: DEFAULT_READ_MAX_RECORDS,
            max_bytes: DEFAULT_READ_MAX_BYTES,
            durable_only: false,
        }
    }
}

impl ReadOptions {
    /// Most records returned. Default [`DEFAULT_READ_MAX_RECORDS`]; at least 1.
    pub fn max_records(mut self, records: usize) -> Self {
        self.max_records = records.max(1);
        self
    }

    /// Soft limit on bytes read: stop before a batch that would pass it, but always return at
    /// least one batch. Default [`DEFAULT_READ_MAX_BYTES`].
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Return only records already on stable storage (which a power loss cannot take back):
    /// the local analogue of Kafka's high watermark. Default `false`.
    pub fn durable_only(mut self, durable_only: bool) -> Self {
        self.durable_only = durable_only;
        self
    }
}

/// Reads one partition. Cheap to clone; keeps its Wharf open while it lives.
#[derive(Clone)]
pub struct PartitionReader {
    _wharf: Arc<Inner>,
    log: Arc<PartitionLog>,
}

impl fmt::Debug for PartitionReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionReader")
            .field("topic", self.log.topic())
            .field("partition", &self.log.partition())
            .finish_non_exhaustive()
    }
}

impl PartitionReader {
    pub(crate) fn new(wharf: Arc<Inner>, log: Arc<PartitionLog>) -> Self {
        PartitionReader { _wharf: wharf, log }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        self.log.topic()
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.log.partition()
    }

    /// The first offset in the log.
    pub fn start_offset(&self) -> u64 {
        self.log.start_offset()
    }

    /// The log end offset: the offset the next record will get.
    pub fn end_offset(&self) -> u64 {
        self.log.next_offset()
    }

    /// Every offset below this one is on stable storage.
    pub fn durable_end_offset(&self) -> u64 {
        self.log.durable_offset()
    }

    /// Reads records from `offset` on. An empty batch means no record is there yet. A read
    /// stays within one segment: call again from [`Batch::next_offset`] for more.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::OffsetOutOfRange`] if `offset` is before the start or past the end;
    /// [`crate::ErrorKind::Corrupt`] if a batch fails its checks (no damaged record is ever
    /// returned); [`crate::ErrorKind::TopicNotFound`] after the topic was deleted.
    pub fn read(&self, offset: u64, options: ReadOptions) -> Result<Batch> {
        let limits = ReadLimits {
            max_records: options.max_records,
            max_bytes: options.max_bytes,
        };
        self.log.read(offset, limits, options.durable_only)
    }

    /// Waits up to `timeout` for a record at `offset` or later to exist; returns whether one
    /// does. Woken by the append, not by polling.
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        self.log.wait_for(offset, Instant::now() + timeout)
    }

    /// The first offset whose record's timestamp is at least `timestamp`; `None` if all
    /// records are older (Kafka's `offsetsForTimes`).
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Corrupt`] if a batch that must be read fails its checks.
    pub fn offset_for_timestamp(&self, timestamp: Timestamp) -> Result<Option<u64>> {
        self.log.offset_for_timestamp(timestamp.as_millis())
    }
}
