//! Writing a failed record's retry or dead-letter copy, for a consumer group.
//!
//! The copy keeps the record's key, payload and user headers, and carries its history in
//! `wharf.*` headers ([`super::headers`]): where it was first consumed, how often it
//! failed, when it first failed and why. A retry copy keeps the record's timestamp; a
//! dead-letter copy is stamped with the time it is written (retention of the dead-letter
//! topic counts from then), the original timestamp being in `wharf.origin.timestamp`. Only after [`RetryCtx::retry`] or
//! [`RetryCtx::dead_letter`] returns may the caller settle the original.

use std::sync::Arc;

use crate::error::{ErrorKind, Result};
use crate::format::message::Message;
use crate::format::record::Record;
use crate::producer::{Producer, ProducerBuilder};
use crate::wharf::Inner;
use crate::writer::ack::AckMode;

use super::headers::{self, MessageId, RetryInfo};
use super::policy::{Delay, Retry};
use super::{dlq_topic, internal_config, retry_topic};

/// What a consumer's deliveries need to retry or dead-letter themselves.
#[derive(Debug)]
pub(crate) struct RetryCtx {
    wharf: Arc<Inner>,
    producer: Producer,
    group: String,
    max_reconsume_times: u32,
}

impl RetryCtx {
    /// Copies for `group` are written at `ack` (`Fsync`: synced before the original is
    /// settled); a record goes to the dead-letter topic once retried `max_reconsume_times`.
    pub(crate) fn new(
        wharf: Arc<Inner>,
        group: &str,
        max_reconsume_times: u32,
        ack: AckMode,
    ) -> Self {
        let ack = if ack == AckMode::Fsync {
            AckMode::Fsync
        } else {
            AckMode::Write
        };
        let producer = ProducerBuilder::new(Arc::clone(&wharf)).ack(ack).build();
        RetryCtx {
            wharf,
            producer,
            group: group.to_owned(),
            max_reconsume_times,
        }
    }

    /// Republishes `message` for a later retry after `retry`'s delay, or to the dead-letter
    /// topic if it was already retried `max_reconsume_times`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidDelay`] (nothing written), or the error of the write.
    pub(crate) fn retry(
        &self,
        message: &Message,
        retry: Retry,
        reason: Option<&str>,
    ) -> Result<()> {
        let info = RetryInfo::from_headers(message.headers());
        // Without a reason now, the last one given stays.
        let reason = reason.or(info.reason.as_deref());
        if info.reconsume_count >= self.max_reconsume_times {
            let why = match reason {
                Some(reason) => format!("{reason} (failed {} times)", info.reconsume_count + 1),
                None => format!("failed {} times", info.reconsume_count + 1),
            };
            return self.dead_letter(message, &why, 0);
        }
        let shared = &self.wharf.shared;
        let level = retry.level(shared.delay_levels(), info.reconsume_count)?;
        let next = RetryInfo {
            origin: info.origin.or_else(|| Some(location(message))),
            origin_timestamp: info.origin_timestamp.or(Some(message.timestamp())),
            reconsume_count: info.reconsume_count + 1,
            first_failure: info.first_failure.or_else(|| Some(shared.now())),
            reason: reason.map(str::to_owned),
        };
        let topic = retry_topic(&self.group);
        shared
            .ensure_internal_topic(&topic, internal_config(1, super::consumed_by(&self.group)))?;
        let mut record = copy(message, topic, &next);
        record.partition = Some(0);
        record.delay = Some(Delay::Level(level));
        self.producer.send(record).map(|_| ())
    }

    /// Writes `message` to the group's dead-letter topic with `reason`; its reconsume count
    /// is the one it carries plus `redeliveries` (deliveries again after `ack_wait`, counted
    /// in memory).
    ///
    /// # Errors
    ///
    /// The error of the write.
    pub(crate) fn dead_letter(
        &self,
        message: &Message,
        reason: &str,
        redeliveries: u32,
    ) -> Result<()> {
        let info = RetryInfo::from_headers(message.headers());
        let shared = &self.wharf.shared;
        let history = RetryInfo {
            origin: info.origin.or_else(|| Some(location(message))),
            origin_timestamp: info.origin_timestamp.or(Some(message.timestamp())),
            reconsume_count: info.reconsume_count.saturating_add(redeliveries),
            first_failure: info.first_failure.or_else(|| Some(shared.now())),
            reason: Some(reason.to_owned()),
        };
        let topic = dlq_topic(&self.group);
        let mut record = copy(message, topic.clone(), &history);
        // Stamped with the time it is dead-lettered, so the dead-letter topic's retention
        // counts from then (the original timestamp is in the history).
        record.timestamp = None;
        // A purge may delete the topic between the two steps: create it again, once.
        for attempt in 0..2 {
            shared.ensure_internal_topic(&topic, shared.dead_letter_config())?;
            match self.producer.send(record.clone()) {
                Err(e) if attempt == 0 && matches!(e.kind(), ErrorKind::TopicNotFound { .. }) => {}
                sent => return sent.map(|_| ()),
            }
        }
        Err(crate::Error::topic_not_found(&topic))
    }
}

/// `message`'s key, payload, timestamp and user headers for `topic`, with `history`.
fn copy(message: &Message, topic: String, history: &RetryInfo) -> Record {
    let mut record = Record::new(topic, message.payload_bytes());
    record.key = message.key_bytes();
    record.timestamp = Some(message.timestamp());
    record.headers = headers::user_headers(message.headers());
    record.headers.extend(history.headers());
    record
}

/// Where `message` is.
fn location(message: &Message) -> MessageId {
    MessageId {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
    }
}
