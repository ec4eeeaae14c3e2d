//! The one error type of the crate.
//!
//! [`Error`] is opaque and cheap to move (one box); [`Error::kind`] says what went wrong and
//! carries the details a caller can act on. Errors are `Clone`, so one failed sync can be
//! reported to every producer that waited on it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `Result<T, wharf::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from any wharf operation. See [`ErrorKind`] for the cases.
#[derive(Clone)]
pub struct Error(Box<ErrorKind>);

/// What went wrong. New kinds may be added in minor releases.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An operating-system I/O call failed.
    #[error("could not {op} {}: {source}", path.display())]
    Io {
        /// What wharf was doing, as a verb phrase ("sync", "open", "allocate").
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },

    /// Data on disk failed a check (checksum, length, offset continuity) where it was known to
    /// be durable. Such data is never returned and never silently truncated.
    #[error(
        "corrupt data in topic {topic:?} partition {partition} at offset {offset} \
         ({}, byte position {position}): {reason}",
        path.display()
    )]
    Corrupt {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The first offset that could not be read.
        offset: u64,
        /// The file holding the damaged bytes.
        path: PathBuf,
        /// The byte position of the damage in that file.
        position: u64,
        /// What check failed.
        reason: String,
    },

    /// A metadata file (topic configuration, checkpoint, directory header) is damaged.
    #[error("corrupt file {}: {reason}", path.display())]
    CorruptFile {
        /// The damaged file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },

    /// A file was written by a newer (or unknown) format version.
    #[error(
        "{} has format version {found}, this build reads version {supported}",
        path.display()
    )]
    IncompatibleFormat {
        /// The file.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },

    /// Another `Wharf` (in this process or another) holds the directory.
    #[error("the data directory {} is locked by another open Wharf", dir.display())]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },

    /// A write was attempted on a Wharf opened read-only.
    #[error("the Wharf at {} was opened read-only", dir.display())]
    ReadOnly {
        /// The data directory.
        dir: PathBuf,
    },

    /// The topic does not exist (or was deleted).
    #[error("topic {topic:?} does not exist")]
    TopicNotFound {
        /// The topic.
        topic: String,
    },

    /// `create_topic` was called for a topic that exists.
    #[error("topic {topic:?} already exists")]
    TopicExists {
        /// The topic.
        topic: String,
    },

    /// The topic name is not allowed.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// The partition number is not below the topic's partition count.
    #[error("topic {topic:?} has {partitions} partitions; partition {partition} does not exist")]
    PartitionOutOfRange {
        /// The topic.
        topic: String,
        /// The requested partition.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },

    /// The offset is outside `[log start, log end]` of the partition.
    #[error(
        "offset {offset} is out of range for topic {topic:?} partition {partition} \
         (valid offsets are {start}..={end})"
    )]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The requested offset.
        offset: u64,
        /// The log start offset.
        start: u64,
        /// The log end offset (the next offset to be written).
        end: u64,
    },

    /// A record is larger than the topic's `max_message_bytes`. Nothing was written.
    #[error("record of {size} bytes exceeds the topic's max_message_bytes of {max}")]
    MessageTooLarge {
        /// The encoded size of the record.
        size: u64,
        /// The topic's limit.
        max: u64,
    },

    /// A configuration value is out of range.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },

    /// An earlier write or sync of this partition failed, so it accepts no more writes until the
    /// Wharf is reopened (a failed sync is never retried and reported as success).
    #[error("topic {topic:?} partition {partition} stopped after a failed write or sync: {source}")]
    Poisoned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The failure that stopped the partition.
        #[source]
        source: Arc<io::Error>,
    },

    /// The consumer group name is not allowed (same rules as topic names).
    #[error("invalid consumer group name {name:?}: {reason}")]
    InvalidGroupName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// The group has no committed offsets and no members.
    #[error("consumer group {group:?} does not exist")]
    GroupNotFound {
        /// The group.
        group: String,
    },

    /// The operation needs the group to have no active members (as Kafka's offset reset).
    #[error("consumer group {group:?} has active members")]
    GroupActive {
        /// The group.
        group: String,
    },

    /// The consumer is not assigned this partition.
    #[error("topic {topic:?} partition {partition} is not assigned to this consumer")]
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// The partition was taken from this consumer (by a rebalance, a seek or close) after the
    /// delivery; the record will be delivered to its new owner.
    #[error("topic {topic:?} partition {partition} was revoked from this consumer")]
    Revoked {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// A commit names an offset the consumer cannot commit (one it was never given).
    #[error("cannot commit offset {offset} of topic {topic:?} partition {partition}: {reason}")]
    InvalidCommit {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset.
        offset: u64,
        /// Why.
        reason: &'static str,
    },

    /// A delay level or duration outside the delay-level table, or a malformed table.
    #[error("invalid delay: {reason}")]
    InvalidDelay {
        /// What is wrong.
        reason: String,
    },

    /// The Wharf (or the handle used) was closed.
    #[error("the Wharf is closed")]
    Closed,

    /// An operation did not complete within its timeout.
    #[error("timed out")]
    Timeout,

    /// No space for the write: the disk is full, the Wharf's quota (`max_disk_bytes`) is
    /// reached, or writing would leave less than `min_free_bytes` free. Nothing of the
    /// refused write was stored; everything acknowledged before is intact. Writes succeed
    /// again once retention or a deletion frees space.
    #[error("no space to write {}: {reason}", path.display())]
    Full {
        /// The file that would have grown.
        path: PathBuf,
        /// Which limit was hit.
        reason: String,
    },

    /// A [`crate::Producer::send_batch`] spanning several partitions stored the records of
    /// some of them, then failed on the next: `stored` has the receipt of every record that
    /// was stored and reached the producer's ack mode, in the order of the records; none of
    /// the others was stored (a partition's records are stored all or none). `source` is the
    /// failure, as the call would have returned it alone (`Full`, `Poisoned`, ...).
    #[error(
        "stored the records of {} partitions, then failed: {source}",
        stored_partitions(stored)
    )]
    PartlyStored {
        /// The receipts of the records stored.
        stored: Vec<crate::writer::ack::SendReceipt>,
        /// Why the rest was not stored.
        #[source]
        source: Error,
    },

    /// Records sent without waiting ([`crate::AckMode::NoWait`]: `send_oneway`, or
    /// `send_async` without a handle waited on) were not stored: appending the producer's
    /// batch that held them failed in the background. Returned once, by the next call on that
    /// producer that can fail (a send, `flush`); the send that returns it did not take its own
    /// record. `source` is the append's failure (`Full`, `Poisoned`, `Closed`, ...).
    #[error("{records} records sent without waiting were not stored: {source}")]
    Unsent {
        /// How many records were lost.
        records: u64,
        /// Why their append failed.
        #[source]
        source: Error,
    },
}

/// How many partitions `receipts` name.
fn stored_partitions(receipts: &[crate::writer::ack::SendReceipt]) -> usize {
    let mut partitions: Vec<(&str, u32)> = receipts
        .iter()
        .map(|r| (r.topic(), r.partition()))
        .collect();
    partitions.sort_unstable();
    partitions.dedup();
    partitions.len()
}

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// Consumes the error, returning its kind.
    pub fn into_kind(self) -> ErrorKind {
        *self.0
    }

    /// The file or directory involved, if there is one.
    pub fn path(&self) -> Option<&Path> {
        match self.kind() {
            ErrorKind::Io { path, .. }
            | ErrorKind::Corrupt { path, .. }
            | ErrorKind::CorruptFile { path, .. }
            | ErrorKind::IncompatibleFormat { path, .. } => Some(path),
            ErrorKind::Locked { dir } | ErrorKind::ReadOnly { dir } => Some(dir),
            ErrorKind::PartlyStored { source, .. } | ErrorKind::Unsent { source, .. } => {
                source.path()
            }
            _ => None,
        }
    }

    /// The topic involved, if there is one.
    pub fn topic(&self) -> Option<&str> {
        match self.kind() {
            ErrorKind::Corrupt { topic, .. }
            | ErrorKind::TopicNotFound { topic }
            | ErrorKind::TopicExists { topic }
            | ErrorKind::PartitionOutOfRange { topic, .. }
            | ErrorKind::OffsetOutOfRange { topic, .. }
            | ErrorKind::NotAssigned { topic, .. }
            | ErrorKind::Revoked { topic, .. }
            | ErrorKind::InvalidCommit { topic, .. }
            | ErrorKind::Poisoned { topic, .. } => Some(topic),
            ErrorKind::PartlyStored { source, .. } | ErrorKind::Unsent { source, .. } => {
                source.topic()
            }
            _ => None,
        }
    }

    /// The offset involved, if there is one.
    pub fn offset(&self) -> Option<u64> {
        match self.kind() {
            ErrorKind::Corrupt { offset, .. }
            | ErrorKind::OffsetOutOfRange { offset, .. }
            | ErrorKind::InvalidCommit { offset, .. } => Some(*offset),
            ErrorKind::PartlyStored { source, .. } | ErrorKind::Unsent { source, .. } => {
                source.offset()
            }
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ErrorKind::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
        .into()
    }

    /// [`ErrorKind::Full`] if `source` says the disk (or a limit) is full, otherwise as
    /// [`Error::io`]. For the calls that reserve space.
    pub(crate) fn space(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::StorageFull {
            ErrorKind::Full {
                path: path.into(),
                reason: source.to_string(),
            }
            .into()
        } else {
            Error::io(op, path, source)
        }
    }

    /// An I/O error without a path (for internal plumbing that adds context later).
    pub(crate) fn from_io(source: io::Error) -> Self {
        Error::io("complete an operation on", PathBuf::new(), source)
    }

    /// The underlying `io::Error` (or one describing this error), to poison a partition with.
    pub(crate) fn into_io(self) -> io::Error {
        match self.into_kind() {
            ErrorKind::Io { source, .. } => match Arc::try_unwrap(source) {
                Ok(e) => e,
                Err(shared) => io::Error::new(shared.kind(), shared.to_string()),
            },
            other => io::Error::other(other.to_string()),
        }
    }

    pub(crate) fn corrupt_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        ErrorKind::CorruptFile {
            path: path.into(),
            reason: reason.into(),
        }
        .into()
    }

    pub(crate) fn invalid_config(reason: impl Into<String>) -> Self {
        ErrorKind::InvalidConfig {
            reason: reason.into(),
        }
        .into()
    }

    pub(crate) fn topic_not_found(topic: &str) -> Self {
        ErrorKind::TopicNotFound {
            topic: topic.to_owned(),
        }
        .into()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error(Box::new(kind))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

/// Attaches an operation and a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_a_sentence_with_the_cause() {
        let err = Error::io(
            "sync",
            "/data/orders/0/00000000000000000000.log",
            io::Error::from_raw_os_error(5),
        );
        let text = err.to_string();
        assert!(text.starts_with("could not sync /data/orders/0/00000000000000000000.log: "));
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(
            err.path(),
            Some(Path::new("/data/orders/0/00000000000000000000.log"))
        );
    }

    #[test]
    fn accessors_expose_topic_and_offset() {
        let err: Error = ErrorKind::OffsetOutOfRange {
            topic: "orders".into(),
            partition: 2,
            offset: 99,
            start: 0,
            end: 10,
        }
        .into();
        assert_eq!(err.topic(), Some("orders"));
        assert_eq!(err.offset(), Some(99));
        assert!(err.to_string().contains("valid offsets are 0..=10"));
    }

    #[test]
    fn error_is_small_send_sync_and_clone() {
        fn assert_traits<T: Send + Sync + Clone + 'static>() {}
        assert_traits::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }
}
