//! [`ConsumerBuilder`]: `wharf.consumer(group).subscribe([..]).build()`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Consumer;
use super::options::{CommitPolicy, ConsumerOptions, OutOfRange, StartFrom};
use crate::error::{Error, Result};
use crate::group::assignment::Assignor;
use crate::topic::TopicPartition;
use crate::wharf::Inner;
use crate::writer::ack::AckMode;

/// Builds a [`Consumer`] of a consumer group. Defaults: start from the earliest record,
/// manual commits made durable with `Fsync`, `ack_wait` 30 s, at most 10,000 offsets in
/// flight, the range assignor, 16 retries (nacks or expired `ack_wait`s) before a record is
/// dead-lettered.
#[must_use]
pub struct ConsumerBuilder {
    wharf: Arc<Inner>,
    group: String,
    options: ConsumerOptions,
}

impl ConsumerBuilder {
    pub(crate) fn new(wharf: Arc<Inner>, group: &str) -> Self {
        ConsumerBuilder {
            wharf,
            group: group.to_owned(),
            options: ConsumerOptions::default(),
        }
    }

    /// Joins the group's membership for these topics: the group's partitions of them are
    /// shared among its members in this process, and rebalanced as members come and go. The
    /// group's retry topic `%RETRY%<group>` is subscribed too, so records the group retries
    /// ([`crate::Delivery::nack`]) come back to it: the first nack creates the topic, which
    /// rebalances the group, and its partition then shows in [`crate::Consumer::assignment`].
    /// A group that never nacks has no retry topic.
    pub fn subscribe<S: Into<String>>(mut self, topics: impl IntoIterator<Item = S>) -> Self {
        self.options
            .topics
            .extend(topics.into_iter().map(Into::into));
        self
    }

    /// Consumes exactly these partitions, without group membership (Kafka's `assign`); the
    /// group's committed offsets are still used and updated. The group's retry topic is not
    /// consumed unless assigned: `("%RETRY%<group>", 0)`.
    pub fn assign<S: Into<String>>(
        mut self,
        partitions: impl IntoIterator<Item = (S, u32)>,
    ) -> Self {
        self.options
            .assigned
            .extend(partitions.into_iter().map(|(t, p)| (t.into(), p)));
        self
    }

    /// Where to start in partitions for which the group committed nothing. Default
    /// [`StartFrom::Earliest`].
    pub fn start_from(mut self, start: StartFrom) -> Self {
        self.options.start_from = start;
        self
    }

    /// What to do when the position falls below the log start (records deleted by retention
    /// or `delete_records`). Default [`OutOfRange::Earliest`]: move to the oldest record left.
    pub fn out_of_range(mut self, policy: OutOfRange) -> Self {
        self.options.out_of_range = policy;
        self
    }

    /// When to commit. Default [`CommitPolicy::Manual`].
    pub fn commit(mut self, policy: CommitPolicy) -> Self {
        self.options.commit = policy;
        self
    }

    /// What `commit()` waits for: [`AckMode::Fsync`] (the default: the committed offsets, and
    /// the log up to them, are on stable storage) or [`AckMode::Write`] (written to the page
    /// cache: survives a process crash; synced in the background). `NoWait` means `Write`.
    pub fn commit_ack(mut self, ack: AckMode) -> Self {
        self.options.commit_ack = ack;
        self
    }

    /// How long a delivery may stay undecided before it is delivered again. Default
    /// [`super::DEFAULT_ACK_WAIT`] (30 s).
    ///
    /// An expiry counts as a failed attempt, as a nack does (RocketMQ's consume timeout):
    /// once a record failed [`ConsumerBuilder::max_reconsume_times`] times (its retries plus
    /// its expiries), its next expiry writes it to the group's dead-letter topic
    /// `%DLQ%<group>`, with the reason `not acknowledged within ack_wait (failed N times)`,
    /// and settles it, instead of delivering it again. Expiries are counted in memory: a restart
    /// forgets them (the retries, in the record's headers, stay counted).
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.options.ack_wait = wait;
        self
    }

    /// Most offsets in flight: per held partition, from the lowest offset not yet settled up
    /// to the next one to deliver, summed over the partitions (RocketMQ's
    /// `consumeConcurrentlyMaxSpan`). At the bound polls deliver nothing new (redeliveries go
    /// on) until a lowest pending offset is settled: acknowledged, committed, retried or
    /// dead-lettered. So a record left pending holds back at most this many later ones (until
    /// its expiries dead-letter it), and what the consumer keeps to track its deliveries stays
    /// within this many offsets. Default [`super::DEFAULT_MAX_IN_FLIGHT`]; at least 1.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.options.max_in_flight = max.max(1);
        self
    }

    /// How the group spreads partitions over its members (the first member's choice is the
    /// group's). Default [`Assignor::Range`].
    pub fn assignor(mut self, assignor: Assignor) -> Self {
        self.options.assignor = assignor;
        self
    }

    /// How long a member that lost a partition may keep it before the new owner takes it
    /// anyway. Default [`super::DEFAULT_REBALANCE_TIMEOUT`].
    pub fn rebalance_timeout(mut self, timeout: Duration) -> Self {
        self.options.rebalance_timeout = timeout;
        self
    }

    /// Deliver only records already on stable storage (the local analogue of Kafka's high
    /// watermark): a power loss can never take back a record this consumer acted on.
    /// Default `false`.
    pub fn read_durable_only(mut self, durable_only: bool) -> Self {
        self.options.durable_only = durable_only;
        self
    }

    /// How many times a record is delivered again after a failure before its next failure
    /// sends it to the group's dead-letter topic instead (RocketMQ's `maxReconsumeTimes`). A
    /// failure is a [`crate::Delivery::nack`] (counted durably, in the retry copy's headers)
    /// or an expired [`ConsumerBuilder::ack_wait`] (counted in memory), so a record is
    /// delivered at most `1 + max_reconsume_times` times. Default
    /// [`crate::DEFAULT_MAX_RECONSUME_TIMES`] (16); 0 dead-letters at the first `nack` or
    /// expiry.
    pub fn max_reconsume_times(mut self, times: u32) -> Self {
        self.options.max_reconsume_times = times;
        self
    }

    /// Called in `poll` with the partitions this consumer starts consuming.
    pub fn on_assign(mut self, hook: impl FnMut(&[TopicPartition]) + Send + 'static) -> Self {
        self.options.on_assign = Some(Box::new(hook));
        self
    }

    /// Called in `poll` with the partitions taken from this consumer, before they go to
    /// another member (the acknowledged progress of each is committed first).
    pub fn on_revoke(mut self, hook: impl FnMut(&[TopicPartition]) + Send + 'static) -> Self {
        self.options.on_revoke = Some(Box::new(hook));
        self
    }

    /// Builds the consumer (joining the group if it subscribes).
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::InvalidGroupName`], [`crate::ErrorKind::TopicNotFound`],
    /// [`crate::ErrorKind::PartitionOutOfRange`], [`crate::ErrorKind::InvalidConfig`] (no
    /// topic, or both `subscribe` and `assign`), [`crate::ErrorKind::Closed`], or an I/O error
    /// opening the group's offsets.
    pub fn build(self) -> Result<Consumer> {
        let options = &self.options;
        if options.topics.is_empty() == options.assigned.is_empty() {
            return Err(Error::invalid_config(
                "a consumer needs either subscribe([...]) or assign([...]), not both",
            ));
        }
        if options.ack_wait.is_zero() {
            return Err(Error::invalid_config("ack_wait must be greater than zero"));
        }
        if let CommitPolicy::Auto { interval } | CommitPolicy::Acked { interval } = options.commit {
            if interval.is_zero() {
                return Err(Error::invalid_config(
                    "the commit interval must be greater than zero",
                ));
            }
        }
        Consumer::new(self.wharf, &self.group, self.options)
    }
}

impl fmt::Debug for ConsumerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerBuilder")
            .field("group", &self.group)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}
