//! wharf: an embedded persistent message queue.
//!
//! Kafka's log model (topics, partitions, segmented append-only logs with index files) and
//! RocketMQ's reliability model (selectable acknowledgement levels, retries with delay levels,
//! dead-letter queues), linked into your process: no broker, no network, one directory on
//! disk.
//!
//! # Tour
//!
//! ```
//! # fn main() -> wharf::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! use wharf::{AckMode, ReadOptions, Record, TopicConfig, Wharf};
//!
//! let wharf = Wharf::open(dir.path())?;                  // creates the dir; exclusive lock
//! wharf.create_topic("orders", TopicConfig::default().partitions(4))?;
//!
//! let producer = wharf.producer().ack(AckMode::Fsync).build();
//! let receipt = producer.send(Record::new("orders", "order-42").key("user-7"))?;
//! // receipt: topic, partition, offset, timestamp
//!
//! let reader = wharf.reader("orders", receipt.partition())?;
//! let batch = reader.read(0, ReadOptions::default())?;
//! for message in &batch {
//!     println!("{} {} {:?}", message.offset(), message.timestamp().as_millis(), message.payload());
//! }
//! // A consumer group: poll, process, commit (at-least-once).
//! let mut consumer = wharf.consumer("billing").subscribe(["orders"]).build()?;
//! for delivery in consumer.poll_batch(100, std::time::Duration::from_millis(100))? {
//!     println!("{} {:?}", delivery.offset(), delivery.payload());
//! }
//! consumer.commit()?;
//! drop(consumer);
//! wharf.close()?;
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! What an acknowledged send survives, by [`AckMode`]:
//!
//! | ack mode | process crash (kill -9) | power loss / kernel crash |
//! |---|---|---|
//! | [`AckMode::NoWait`] | not promised | not promised |
//! | [`AckMode::Write`] | kept | kept if synced by the flush policy before the loss |
//! | [`AckMode::Fsync`] | kept | kept |
//!
//! After any crash, opening the directory succeeds and yields a consistent log: records are
//! byte-identical and in order with contiguous offsets; a torn tail is truncated; a batch that
//! fails its CRC32C where data was known durable is reported as [`ErrorKind::Corrupt`] (naming
//! topic, partition and offset), never returned and never silently cut; damaged or missing
//! index files are rebuilt from the log. A failed sync is never retried and reported as
//! success: the partition stops ([`ErrorKind::Poisoned`]) until the Wharf is reopened.
//!
//! Consumer groups: a commit made with `Fsync` (the default for [`Consumer::commit`]) first
//! makes the log durable up to the committed offsets, then the offsets; committed offsets never
//! move backwards after a crash and never point past the log end. A delivery is never treated
//! as processed unless acknowledged or covered by a commit: dropped undecided, it comes back.
//! Deleting a topic deletes every group's committed offsets for it: a topic created again
//! under the name starts fresh for every group, even after a crash during the deletion.
//!
//! Retries ([`Delivery::nack`], [`PushConsumer`]): the retry or dead-letter copy is written at
//! the consumer's commit durability before the original is settled, so a crash in between
//! gives a duplicate, never a loss. Delayed records ([`Record::delay`]) survive restarts and
//! are delivered once due on the Wharf's [`Clock`], never before; the delay scheduler records
//! its progress only after the moved copies are synced.
//!
//! # Limits
//!
//! - One process owns a directory at a time (an `flock`); a read-only open may inspect it
//!   meanwhile.
//! - Segments are memory-mapped. Like every mapped store, a program that truncates the files
//!   from outside while wharf runs crashes it with SIGBUS; wharf itself reserves file space
//!   before writing to it, so a full disk is an error, never a SIGBUS.
//! - Segments are at most 2 GiB, topics have at most 4,096 partitions.
//!
//! # It is not
//!
//! - a networked broker, or replicated: durability is one machine's disk;
//! - a database: records are read by offset or time, not by key;
//! - a compacted log (no key-based compaction).
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admin;
mod clock;
mod config;
mod consumer;
#[cfg(test)]
mod crash_sweep;
mod dir_lock;
mod error;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod fence_tests;
mod format;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod group;
mod layout;
mod log;
mod partitioner;
mod producer;
mod reader;
#[cfg(test)]
mod recovery_tests;
mod retention;
#[cfg(test)]
mod retention_tests;
mod retry;
mod topic;
#[cfg(test)]
mod topic_lifecycle_tests;
mod vfs;
mod wharf;
mod writer;

/// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use admin::{
    Admin, DelayStatus, DiskUsage, GroupDescription, MemberDescription, OffsetChange,
    PartitionDescription, ResetTo,
};
pub use clock::{Clock, ClockCallback, ManualClock, SystemClock, Timestamp};
pub use config::{
    DEFAULT_FLUSH_INTERVAL, DEFAULT_INDEX_INTERVAL_BYTES, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_OPEN_SEGMENTS, DEFAULT_MAX_PENDING_ASYNC, DEFAULT_PARTITIONS,
    DEFAULT_RETENTION_INTERVAL, DEFAULT_SEGMENT_BYTES, KeepUnconsumed, MAX_GROUP_NAME_LEN,
    MAX_PARTITIONS, MAX_RETENTION_GROUPS, MAX_SEGMENT_BYTES, MAX_TOPIC_NAME_LEN, MIN_SEGMENT_BYTES,
    RecoveryMode, Retention, TopicConfig,
};
pub use consumer::{
    CommitPolicy, ConsumeContext, ConsumeStatus, Consumer, ConsumerBuilder, DEFAULT_ACK_WAIT,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_PUSH_THREADS, DEFAULT_REBALANCE_TIMEOUT, Delivery, OutOfRange,
    PUSH_COMMIT_INTERVAL, PartitionLag, PushConsumer, PushConsumerBuilder, RebalanceHook, SeekTo,
    StartFrom,
};
pub use error::{Error, ErrorKind, Result};
pub use format::message::{Batch, BatchIter, Headers, Message, MessageRef};
pub use format::record::{Header, Record};
pub use group::assignment::Assignor;
pub use partitioner::{DefaultPartitioner, Partitioner, RoundRobinPartitioner, partition_for_key};
pub use producer::{DEFAULT_BATCH_BYTES, DEFAULT_LINGER, Producer, ProducerBuilder};
pub use reader::{DEFAULT_READ_MAX_BYTES, DEFAULT_READ_MAX_RECORDS, PartitionReader, ReadOptions};
pub use retention::RetentionReport;
pub use retry::DEFAULT_DEAD_LETTER_RETENTION;
pub use retry::dead_letter::DeadLetter;
pub use retry::headers::MessageId;
pub use retry::policy::{
    DEFAULT_DELAY_LEVELS, DEFAULT_MAX_RECONSUME_TIMES, Delay, DelayLevel, DelayLevels,
    FIRST_RETRY_LEVEL, MAX_DELAY, MAX_DELAY_LEVELS, Retry,
};
pub use topic::{TopicInfo, TopicPartition, validate_group_name, validate_topic_name};
pub use wharf::{RecoveryStats, Wharf, WharfBuilder};
pub use writer::ack::{AckMode, SendHandle, SendReceipt};
