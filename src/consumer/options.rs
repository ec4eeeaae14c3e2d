//! How a consumer is configured: where it starts, how it commits, how it is assigned
//! partitions. Every default is named and documented here.

use std::fmt;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::group::assignment::Assignor;
use crate::retry::policy::DEFAULT_MAX_RECONSUME_TIMES;
use crate::topic::TopicPartition;
use crate::writer::ack::AckMode;

/// Default time a delivery may stay undecided before it is delivered again: 30 s (NATS's
/// `ack_wait`).
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// Default most offsets a consumer has in flight, from each partition's lowest unsettled offset
/// to its position (RocketMQ's `consumeConcurrentlyMaxSpan`, NATS's `max_ack_pending`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 10_000;
/// Default time a member that lost a partition in a rebalance may keep it before the new
/// owner takes it anyway: 30 s.
pub const DEFAULT_REBALANCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Records read from a partition at a time.
pub(crate) const FETCH_RECORDS: usize = 500;

/// Where a consumer starts in a partition for which its group has committed nothing (Kafka's
/// `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The oldest record still in the log (the default: a queue delivers what was sent before
    /// its first consumer came).
    #[default]
    Earliest,
    /// Only records sent from now on.
    Latest,
    /// The first record whose timestamp is at least this (the end if there is none).
    Timestamp(Timestamp),
}

/// What a consumer does when its position in a partition falls below the log start, because
/// retention or [`crate::Admin::delete_records`] deleted the records there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutOfRange {
    /// Move to the oldest record still in the log and go on (the default; Kafka's
    /// `auto.offset.reset=earliest`).
    #[default]
    Earliest,
    /// Fail the poll with [`crate::ErrorKind::OffsetOutOfRange`] until the application seeks.
    Fail,
}

/// Where [`crate::Consumer::seek`] moves a partition's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// The oldest record still in the log.
    Beginning,
    /// The end of the log: only records sent from now on.
    End,
    /// This offset (between the log start and the log end).
    Offset(u64),
    /// The first record whose timestamp is at least this (the end if there is none).
    Timestamp(Timestamp),
}

/// When a consumer commits its group's offsets.
///
/// Whatever the policy, every delivery is *pending* until settled: acknowledged
/// ([`crate::Delivery::ack`]) or covered by a commit ([`crate::Consumer::commit`] settles
/// everything delivered so far, as Kafka's `commitSync`). A pending delivery is delivered
/// again after `ack_wait` (dead-lettered once it failed `max_reconsume_times` times), and
/// after a restart if it was never committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitPolicy {
    /// Only when the application calls a commit method (the default). Commit after processing
    /// for at-least-once delivery, before processing for at-most-once.
    #[default]
    Manual,
    /// Kafka's auto-commit: on each poll, if `interval` has passed, everything delivered by
    /// earlier polls counts as processed and is committed. At-most-once for records still being
    /// processed when a crash follows such a commit.
    Auto {
        /// How often.
        interval: Duration,
    },
    /// RocketMQ's model: every `interval`, on poll, the lowest offset not yet acknowledged is
    /// committed (nothing is settled by the commit). At-least-once with per-message acks.
    Acked {
        /// How often.
        interval: Duration,
    },
}

/// A callback run by [`crate::Consumer::poll`] with partitions assigned to or revoked from
/// the consumer.
pub type RebalanceHook = Box<dyn FnMut(&[TopicPartition]) + Send>;

/// Everything a consumer is built with.
pub(crate) struct ConsumerOptions {
    pub topics: Vec<String>,
    pub assigned: Vec<(String, u32)>,
    pub start_from: StartFrom,
    pub out_of_range: OutOfRange,
    pub commit: CommitPolicy,
    pub commit_ack: AckMode,
    pub ack_wait: Duration,
    pub max_in_flight: usize,
    pub assignor: Assignor,
    pub rebalance_timeout: Duration,
    pub durable_only: bool,
    pub max_reconsume_times: u32,
    pub on_assign: Option<RebalanceHook>,
    pub on_revoke: Option<RebalanceHook>,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            topics: Vec::new(),
            assigned: Vec::new(),
            start_from: StartFrom::default(),
            out_of_range: OutOfRange::default(),
            commit: CommitPolicy::default(),
            commit_ack: AckMode::Fsync,
            ack_wait: DEFAULT_ACK_WAIT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            assignor: Assignor::default(),
            rebalance_timeout: DEFAULT_REBALANCE_TIMEOUT,
            durable_only: false,
            max_reconsume_times: DEFAULT_MAX_RECONSUME_TIMES,
            on_assign: None,
            on_revoke: None,
        }
    }
}

impl fmt::Debug for ConsumerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerOptions")
            .field("topics", &self.topics)
            .field("assigned", &self.assigned)
            .field("start_from", &self.start_from)
            .field("out_of_range", &self.out_of_range)
            .field("commit", &self.commit)
            .field("commit_ack", &self.commit_ack)
            .field("ack_wait", &self.ack_wait)
            .field("max_in_flight", &self.max_in_flight)
            .field("assignor", &self.assignor)
            .field("durable_only", &self.durable_only)
            .field("max_reconsume_times", &self.max_reconsume_times)
            .finish_non_exhaustive()
    }
}
