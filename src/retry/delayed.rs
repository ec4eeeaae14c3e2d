//! A delayed record on its way in and out of the delay topic.
//!
//! In: [`stored_record`] turns a record sent with a delay into the record `%DELAY%` holds:
//! same key, payload, timestamp (the send time if the sender gave none) and headers, plus the
//! headers naming its target topic and partition (chosen at the send, by the sender's
//! partitioner) and its due time, in the partition of its level.
//!
//! Out: [`Due::read`] reads those headers back and [`Due::target_record`] rebuilds the
//! record to append to the target once due, without the `wharf.delay.*` headers.

use crate::clock::Timestamp;
use crate::error::{Error, ErrorKind, Result};
use crate::format::message::MessageRef;
use crate::format::record::{Header, Record};
use crate::wharf::Shared;

use super::DELAY_TOPIC;
use super::headers::{self, DELAY_DUE, DELAY_PREFIX, DELAY_TARGET, DELAY_TARGET_PARTITION};
use super::policy::Delay;

/// The record to store in the delay topic for `record`, which goes to partition `partition`
/// of its topic after `delay`. Creates the delay topic (and starts its scheduler) if needed.
///
/// # Errors
///
/// [`ErrorKind::InvalidDelay`] for a level outside the table, a delay longer than it, or a
/// record addressed to the delay topic itself; errors creating the delay topic.
pub(crate) fn stored_record(
    shared: &Shared,
    record: Record,
    partition: u32,
    delay: Delay,
) -> Result<Record> {
    if record.topic == DELAY_TOPIC {
        return Err(ErrorKind::InvalidDelay {
            reason: format!("{DELAY_TOPIC} cannot be the target of a delay"),
        }
        .into());
    }
    let levels = shared.delay_levels();
    let level = delay.level(levels)?;
    let wait = levels.get(level)?;
    let topic = shared.delay_topic()?;
    if u32::from(level.get()) > topic.config.partitions {
        return Err(Error::invalid_config(format!(
            "delay level {} needs partition {} of {DELAY_TOPIC}, which was created with {} (one per level of the table then)",
            level.get(),
            level.get() - 1,
            topic.config.partitions
        )));
    }
    let now = shared.now();
    let due = now
        .as_millis()
        .saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
    // The record is consumed: its topic, payload, key and headers move into the stored
    // record without a copy (a nack writes one of these per call).
    let mut headers = record.headers;
    headers.retain(|h| !h.key.starts_with(DELAY_PREFIX));
    headers.reserve(3);
    headers.push(headers::header(DELAY_TARGET, record.topic.into_owned()));
    headers.push(headers::header(
        DELAY_TARGET_PARTITION,
        partition.to_string(),
    ));
    headers.push(headers::header(DELAY_DUE, due.to_string()));
    let mut stored = Record::new(DELAY_TOPIC, record.payload);
    stored.key = record.key;
    stored.headers = headers;
    stored.timestamp = Some(record.timestamp.unwrap_or(now));
    stored.partition = Some(u32::from(level.get()) - 1);
    Ok(stored)
}

/// What a record in the delay topic says about its delivery (borrowed from the record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub at: Timestamp,
}

impl<'a> Due<'a> {
    /// Reads the delay headers of `stored`, in one pass over them (this runs once per moved
    /// record on the scheduler's hot path); `None` if they are missing or unreadable (a record
    /// that was not written by [`stored_record`]).
    pub(crate) fn read(stored: &MessageRef<'a>) -> Option<Due<'a>> {
        let (mut topic, mut partition, mut at) = (None, None, None);
        for (name, value) in stored.headers() {
            if !name.starts_with(DELAY_PREFIX) {
                continue;
            }
            let text = || std::str::from_utf8(value).ok();
            match name {
                DELAY_TARGET => topic = text(),
                DELAY_TARGET_PARTITION => partition = text().and_then(|t| t.parse::<u32>().ok()),
                DELAY_DUE => at = text().and_then(|t| t.parse::<i64>().ok()),
                _ => {}
            }
        }
        Some(Due {
            topic: topic?,
            partition: partition?,
            at: Timestamp::from_millis(at?),
        })
    }

    /// The record to append to the target for `stored`, whose target partition is
    /// `partition` (the stored one, or another if the topic has fewer partitions now).
    pub(crate) fn target_record(&self, stored: &MessageRef<'_>, partition: u32) -> Record {
        // Zero-copy: the payload and key are slices of the buffer the stored record was read in.
        let message = stored.to_message();
        let mut record = Record::new(self.topic.to_owned(), message.payload_bytes());
        record.key = message.key_bytes();
        record.timestamp = Some(stored.timestamp());
        record.partition = Some(partition);
        record.headers = stored
            .headers()
            .filter(|(name, _)| !name.starts_with(DELAY_PREFIX))
            .map(|(name, value)| Header {
                key: name.to_owned(),
                value: bytes::Bytes::copy_from_slice(value),
            })
            .collect();
        record
    }
}
