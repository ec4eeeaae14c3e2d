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
    record: &Record,
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
    let mut headers: Vec<Header> = record
        .headers
        .iter()
        .filter(|h| !h.key.starts_with(DELAY_PREFIX))
        .cloned()
        .collect();
    headers.push(headers::header(DELAY_TARGET, record.topic.to_string()));
    headers.push(headers::header(
        DELAY_TARGET_PARTITION,
        partition.to_string(),
    ));
    headers.push(headers::header(DELAY_DUE, due.to_string()));
    let mut stored = Record::new(DELAY_TOPIC, record.payload.clone());
    stored.key.clone_from(&record.key);
    stored.headers = headers;
    stored.timestamp = Some(record.timestamp.unwrap_or(now));
    stored.partition = Some(u32::from(level.get()) - 1);
    Ok(stored)
}

/// What a record in the delay topic says about its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Due {
    pub topic: String,
    pub partition: u32,
    pub at: Timestamp,
}

impl Due {
    /// Reads the delay headers of `stored`; `None` if they are missing or unreadable (a record
    /// that was not written by [`stored_record`]).
    pub(crate) fn read(stored: &MessageRef<'_>) -> Option<Due> {
        let topic = headers::text(stored.headers(), DELAY_TARGET)?;
        let partition = headers::number(stored.headers(), DELAY_TARGET_PARTITION)?;
        let at = headers::number(stored.headers(), DELAY_DUE)?;
        Some(Due {
            topic: topic.to_owned(),
            partition: u32::try_from(partition).ok()?,
            at: Timestamp::from_millis(at),
        })
    }

    /// The record to append to the target for `stored`, whose target partition is
    /// `partition` (the stored one, or another if the topic has fewer partitions now).
    pub(crate) fn target_record(&self, stored: &MessageRef<'_>, partition: u32) -> Record {
        // Zero-copy: the payload and key are slices of the buffer the stored record was read in.
        let message = stored.to_message();
        let mut record = Record::new(self.topic.clone(), message.payload_bytes());
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
