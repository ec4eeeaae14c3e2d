//! Retry, delay and dead letters: RocketMQ's model.
//!
//! - A **delayed record** ([`crate::Record::delay`]) waits in the internal topic `%DELAY%`,
//!   whose partition `k - 1` holds the records of delay level `k`: every record of a level
//!   waits the same time, so each partition is in due order, as RocketMQ's
//!   `SCHEDULE_TOPIC_XXXX` queues are ([`delayed`] has the stored form).
//! - The [`scheduler`] thread appends each due record to its target topic, syncs it, and then
//!   records its progress through `%DELAY%` as the committed offsets of the internal group
//!   `%DELAY%` (synced by the flusher).
//! - A **retry** ([`crate::Delivery::nack`], [`nack`]) republishes the record as a delayed
//!   record for the group's retry topic `%RETRY%<group>`, which the group's subscribed
//!   consumers read along with their topics. After `max_reconsume_times` retries it goes to
//!   the dead-letter topic `%DLQ%<group>` instead ([`dead_letter`] lists, resends and purges
//!   it). [`headers`] lists what the copies carry.
//!
//! No loss, and where duplicates come from:
//! - the original delivery is settled only after its retry or dead-letter copy is written at
//!   the consumer's commit durability: a crash in between delivers the original again, and the
//!   copy exists as well (one duplicate);
//! - the scheduler's progress is recorded only after the moved copies are synced: a crash in
//!   between moves those records again (duplicates in the target);
//! - delays are measured on the Wharf's clock from the send; a record is never delivered
//!   before its due time, and after a restart every record still waiting is delivered once
//!   due.

pub(crate) mod dead_letter;
pub(crate) mod delayed;
pub(crate) mod headers;
pub(crate) mod nack;
pub(crate) mod policy;
pub(crate) mod scheduler;

use std::time::Duration;

use crate::config::{Retention, TopicConfig};
use crate::topic::{DLQ_PREFIX, RETRY_PREFIX};

/// The internal topic delayed records wait in (one partition per level).
pub(crate) const DELAY_TOPIC: &str = "%DELAY%";
/// The internal group recording the scheduler's progress in [`DELAY_TOPIC`].
pub(crate) const SCHEDULER_GROUP: &str = "%DELAY%";
/// Largest record an internal topic takes: a retry copy is its original plus a few headers.
/// (So their segments keep the default size, 64 MiB: a segment must hold the largest record.)
const INTERNAL_MAX_MESSAGE_BYTES: u32 = 32 << 20;
/// An internal topic's log files start at one block: most of them sit idle (one delay
/// partition per level, 18 by default, and a retry topic per group that ever nacked), and each
/// partition's empty segment then takes four blocks with its index files and checkpoint. One
/// that is written grows by doubling as any other (14 doublings to a 64 MiB segment).
pub(crate) const INTERNAL_FIRST_LOG_ALLOCATION_BYTES: u64 = 4 << 10;
/// Default retention of dead-letter topics: 7 days, Kafka's default retention.
pub const DEFAULT_DEAD_LETTER_RETENTION: Duration = Duration::from_secs(7 * 24 * 3_600);

/// A group's retry topic.
pub(crate) fn retry_topic(group: &str) -> String {
    format!("{RETRY_PREFIX}{group}")
}

/// A group's dead-letter topic.
pub(crate) fn dlq_topic(group: &str) -> String {
    format!("{DLQ_PREFIX}{group}")
}

/// Whether `topic` is one wharf creates for itself (delay, retry and dead-letter topics).
pub(crate) fn is_internal(topic: &str) -> bool {
    topic == DELAY_TOPIC || topic.starts_with(RETRY_PREFIX) || topic.starts_with(DLQ_PREFIX)
}

/// Retention of a topic only `group` reads (the delay topic, a retry topic): a segment goes as
/// soon as the group has committed past it.
pub(crate) fn consumed_by(group: &str) -> Retention {
    Retention::forever()
        .max_age(Duration::ZERO)
        .until_consumed_by([group])
}

/// The configuration of internal topics.
pub(crate) fn internal_config(partitions: u32, retention: Retention) -> TopicConfig {
    TopicConfig::default()
        .partitions(partitions)
        .max_message_bytes(INTERNAL_MAX_MESSAGE_BYTES)
        .retention(retention)
}

/// The retry history of `message`: where it was first consumed and how often it failed.
pub(crate) fn history(message: &crate::Message) -> (Option<headers::MessageId>, u32) {
    let info = headers::RetryInfo::from_headers(message.headers());
    (info.origin, info.reconsume_count)
}
