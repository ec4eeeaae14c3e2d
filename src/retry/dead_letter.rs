//! A group's dead-letter queue (`%DLQ%<group>`): listing, resending and purging, for
//! [`crate::Admin`].
//!
//! Resending appends a copy of a dead letter to the partition it was first consumed from (or
//! the one the default partitioner picks, if that partition no longer exists), with its key,
//! payload, original timestamp and user headers, without wharf's retry headers: its reconsume count
//! starts again at 0. Resent copies are synced before the call returns. The dead letters stay
//! in the queue until purged.

use std::sync::Arc;

use crate::clock::Timestamp;
use crate::error::{Error, ErrorKind, Result};
use crate::format::message::Message;
use crate::format::record::Record;
use crate::log::ReadLimits;
use crate::producer::{Producer, ProducerBuilder};
use crate::topic::Topic;
use crate::wharf::Inner;
use crate::writer::ack::AckMode;

use super::dlq_topic;
use super::headers::{self, MessageId, RetryInfo};

/// Dead letters read or resent at a time.
const CHUNK: ReadLimits = ReadLimits {
    max_records: 1_000,
    max_bytes: 8 << 20,
};

/// A record in a consumer group's dead-letter queue, as [`crate::Admin::dead_letters`] lists
/// it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its offset in the dead-letter topic `%DLQ%<group>` (what
    /// [`crate::Admin::resend_dead_letter`] takes).
    pub offset: u64,
    /// The record: key, payload, headers (wharf's `wharf.*` ones included), and as timestamp
    /// the time it was dead-lettered.
    pub message: Message,
    /// Where it was first consumed.
    pub origin: Option<MessageId>,
    /// Its timestamp where it was first consumed.
    pub origin_timestamp: Option<Timestamp>,
    /// How many times it was retried before it was dead-lettered.
    pub reconsume_count: u32,
    /// Why it was dead-lettered.
    pub reason: Option<String>,
    /// When it first failed.
    pub first_failure: Option<Timestamp>,
}

impl DeadLetter {
    fn new(message: Message) -> Self {
        let info = RetryInfo::from_headers(message.headers());
        DeadLetter {
            offset: message.offset(),
            origin: info.origin,
            origin_timestamp: info.origin_timestamp,
            reconsume_count: info.reconsume_count,
            reason: info.reason,
            first_failure: info.first_failure,
            message,
        }
    }
}

/// `group`'s dead-letter topic; `None` if the group exists but never dead-lettered anything.
///
/// # Errors
///
/// [`ErrorKind::GroupNotFound`] if there is neither such a group nor its dead-letter topic.
fn queue(wharf: &Inner, group: &str) -> Result<Option<Arc<Topic>>> {
    let shared = &wharf.shared;
    match shared.topic(&dlq_topic(group)) {
        Ok(topic) => Ok(Some(topic)),
        Err(_) => shared.group(group, false).map(|_| None),
    }
}

/// Up to `max` dead letters of `group` from offset `from` (from the oldest kept if `from` is
/// before it).
pub(crate) fn list(wharf: &Inner, group: &str, from: u64, max: usize) -> Result<Vec<DeadLetter>> {
    let Some(topic) = queue(wharf, group)? else {
        return Ok(Vec::new());
    };
    let log = topic.partition(0)?;
    let mut at = from.max(log.start_offset());
    let mut out = Vec::new();
    while out.len() < max && at < log.next_offset() {
        let limits = ReadLimits {
            max_records: (max - out.len()).min(CHUNK.max_records),
            ..CHUNK
        };
        let batch = log.read(at, limits, false)?;
        if batch.is_empty() {
            break;
        }
        at = batch.next_offset();
        out.extend(batch.iter().map(|m| DeadLetter::new(m.to_message())));
    }
    Ok(out)
}

/// Resends the dead letter at `offset` of `group`'s queue to where it was first consumed.
pub(crate) fn resend_one(wharf: &Arc<Inner>, group: &str, offset: u64) -> Result<()> {
    let topic = queue(wharf, group)?.ok_or_else(|| Error::topic_not_found(&dlq_topic(group)))?;
    let log = topic.partition(0)?;
    let batch = log.read(
        offset,
        ReadLimits {
            max_records: 1,
            max_bytes: 1,
        },
        false,
    )?;
    let message = batch
        .get(0)
        .filter(|m| m.offset() == offset)
        .map(|m| m.to_message())
        .ok_or_else(|| {
            Error::from(ErrorKind::OffsetOutOfRange {
                topic: topic.name.to_string(),
                partition: 0,
                offset,
                start: log.start_offset(),
                end: log.next_offset(),
            })
        })?;
    let record = resent(wharf, &DeadLetter::new(message))?.ok_or_else(|| {
        Error::invalid_config(format!(
            "the dead letter at offset {offset} does not say where it came from"
        ))
    })?;
    producer(wharf).send(record).map(|_| ())
}

/// Resends every dead letter of `group` (those without a known origin are skipped); returns
/// how many were resent. The records of each chunk are checked before any is written.
pub(crate) fn resend_all(wharf: &Arc<Inner>, group: &str) -> Result<usize> {
    let Some(topic) = queue(wharf, group)? else {
        return Ok(0);
    };
    let log = topic.partition(0)?;
    let producer = producer(wharf);
    let (mut at, end) = (log.start_offset(), log.next_offset());
    let mut resent_count = 0;
    while at < end {
        let batch = log.read(at, CHUNK, false)?;
        if batch.is_empty() {
            break;
        }
        at = batch.next_offset();
        let mut records = Vec::with_capacity(batch.len());
        for message in batch.iter().take_while(|m| m.offset() < end) {
            if let Some(record) = resent(wharf, &DeadLetter::new(message.to_message()))? {
                records.push(record);
            }
        }
        resent_count += records.len();
        producer.send_batch(records)?;
    }
    Ok(resent_count)
}

/// Deletes every dead letter of `group`; returns how many there were.
pub(crate) fn purge(wharf: &Inner, group: &str) -> Result<u64> {
    let Some(topic) = queue(wharf, group)? else {
        return Ok(0);
    };
    let log = topic.partition(0)?;
    let count = log.next_offset() - log.start_offset();
    match wharf.shared.delete_topic(&topic.name) {
        Err(e) if matches!(e.kind(), ErrorKind::TopicNotFound { .. }) => Ok(0),
        other => other.map(|()| count),
    }
}

/// The record resending `letter` writes; `None` if it names no origin.
fn resent(wharf: &Inner, letter: &DeadLetter) -> Result<Option<Record>> {
    let Some(origin) = &letter.origin else {
        return Ok(None);
    };
    let target = wharf.shared.topic(&origin.topic)?;
    let message = &letter.message;
    let mut record = Record::new(origin.topic.clone(), message.payload_bytes());
    record.key = message.key_bytes();
    record.timestamp = Some(
        letter
            .origin_timestamp
            .unwrap_or_else(|| message.timestamp()),
    );
    record.headers = headers::user_headers(message.headers());
    record.partition = (origin.partition < target.config.partitions).then_some(origin.partition);
    Ok(Some(record))
}

fn producer(wharf: &Arc<Inner>) -> Producer {
    ProducerBuilder::new(Arc::clone(wharf))
        .ack(AckMode::Fsync)
        .build()
}
