//! [`Delivery`]: a record handed to a consumer, to be acknowledged.
//!
//! The deliveries of one fetch share one reference-counted [`Fetched`] (the batch read from
//! the log, the cursor to acknowledge to, the epoch): handing out and dropping a delivery
//! costs one atomic increment and one decrement. An owned [`Message`] is built only when asked
//! for (`message()`, `into_message()`, or a `&Message` through `Deref`).

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::cursor::Cursor;
use crate::clock::Timestamp;
use crate::error::Result;
use crate::format::message::{Batch, Headers, Message, MessageRef};
use crate::retry;
use crate::retry::headers::MessageId;
use crate::retry::nack::RetryCtx;
use crate::retry::policy::Retry;
use crate::topic::RETRY_PREFIX;

/// The reason recorded with a record dead-lettered because its deliveries were left undecided.
pub(crate) const NOT_ACKNOWLEDGED: &str = "not acknowledged within ack_wait";

/// Records read together from one partition, shared by their deliveries.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub batch: Batch,
    pub cursor: Arc<Cursor>,
    pub epoch: u64,
    /// Where failed records go.
    pub retry: Arc<RetryCtx>,
}

/// A record delivered to a consumer. Read it with the accessors (or as a [`Message`], to which
/// it dereferences); settle it with [`Delivery::ack`] or with a commit that covers it, or
/// with [`Delivery::nack`] (retry it later) or [`Delivery::dead_letter`].
///
/// Dropped undecided, it is **not** acknowledged: it stays pending and is delivered again
/// after the consumer's `ack_wait`, or after a restart if no commit covered it. Each expiry
/// counts as a failed attempt: once the record failed `max_reconsume_times` times (retries
/// and expiries), its next expiry writes it to `%DLQ%<group>` with the reason
/// `not acknowledged within ack_wait (failed N times)` and settles it. While it is pending, at
/// most `max_in_flight` later offsets of the consumer's partitions are delivered.
///
/// A retried record comes back from the group's retry topic `%RETRY%<group>` (its `topic()`,
/// `partition()` and `offset()` are those of the copy there); [`Delivery::origin`] says where
/// it was first consumed and [`Delivery::reconsume_count`] how often it failed.
#[must_use = "an undecided delivery is delivered again after ack_wait"]
pub struct Delivery {
    fetched: Arc<Fetched>,
    index: u32,
    attempt: u32,
    /// Boxed: most deliveries never build one, and a delivery stays 32 bytes.
    message: OnceLock<Box<Message>>,
}

const _: () = assert!(std::mem::size_of::<Delivery>() <= 32);

impl Delivery {
    /// The `index`-th record of `fetched` (a fetch holds at most `u32::MAX` records).
    pub(crate) fn new(fetched: Arc<Fetched>, index: usize, attempt: u32) -> Self {
        Delivery {
            fetched,
            index: u32::try_from(index).unwrap_or(u32::MAX),
            attempt,
            message: OnceLock::new(),
        }
    }

    #[inline]
    fn record(&self) -> Option<MessageRef<'_>> {
        self.fetched.batch.get(self.index as usize)
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        self.fetched.batch.topic()
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.fetched.batch.partition()
    }

    /// The record's offset in its partition.
    pub fn offset(&self) -> u64 {
        self.record().map_or(0, |r| r.offset())
    }

    /// The record's timestamp.
    pub fn timestamp(&self) -> Timestamp {
        self.record()
            .map_or_else(Timestamp::default, |r| r.timestamp())
    }

    /// The key, if the record has one.
    pub fn key(&self) -> Option<&[u8]> {
        self.record().and_then(|r| r.key())
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        self.record().map_or(&[], |r| r.payload())
    }

    /// The payload as a zero-copy `Bytes`.
    pub fn payload_bytes(&self) -> Bytes {
        self.message().payload_bytes()
    }

    /// The headers, in the order they were sent.
    pub fn headers(&self) -> Headers<'_> {
        match self.message.get() {
            Some(message) => message.headers(),
            None => self
                .record()
                .map_or_else(|| self.message().headers(), |r| r.headers()),
        }
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Which delivery of this record this is to this group: 1 the first time, then one more
    /// per retry ([`Delivery::nack`]) and per redelivery after `ack_wait` (NATS's
    /// `delivered`). Retries are counted durably, in the record's headers; redeliveries in
    /// memory, so a restart forgets them. A record is delivered at most
    /// `1 + max_reconsume_times` times: the failure of that last attempt dead-letters it.
    pub fn attempt(&self) -> u32 {
        self.attempt.saturating_add(self.reconsume_count())
    }

    /// How many times this record was retried before this delivery (RocketMQ's reconsume
    /// times): 0 unless it comes from the retry topic.
    pub fn reconsume_count(&self) -> u32 {
        if self.is_retry() {
            retry::history(self.message()).1
        } else {
            0
        }
    }

    /// Where this record was first consumed, if it is a retry (`None` for a record consumed
    /// where it was sent).
    pub fn origin(&self) -> Option<MessageId> {
        if self.is_retry() {
            retry::history(self.message()).0
        } else {
            None
        }
    }

    fn is_retry(&self) -> bool {
        self.topic().starts_with(RETRY_PREFIX)
    }

    /// The record as an owned [`Message`] (built on first use, zero-copy).
    pub fn message(&self) -> &Message {
        // The index is valid by construction; the fallback is never taken.
        self.message.get_or_init(|| {
            Box::new(self.record().map_or_else(
                || Message::empty(self.topic(), self.partition()),
                |r| r.to_message(),
            ))
        })
    }

    /// Acknowledges the record: it is done and is never delivered to this group again. Acks
    /// may come in any order and from any thread; the group's committed offset (with
    /// `CommitPolicy::Acked`, or `commit_acked`) stops at the lowest offset not yet acked.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Revoked`] if the partition was taken from this consumer (rebalance,
    /// seek or close) since the delivery: the record will be delivered to its new owner.
    pub fn ack(self) -> Result<()> {
        self.fetched.cursor.ack(self.offset(), self.fetched.epoch)
    }

    /// Gives the record up for now: a copy is written to the group's retry topic, to be
    /// delivered again after `retry`'s delay (RocketMQ's `RECONSUME_LATER`), and then this
    /// delivery is settled, so later records of the partition keep flowing meanwhile. A record
    /// already retried `max_reconsume_times` goes to the dead-letter topic `%DLQ%<group>`
    /// instead.
    ///
    /// The copy is written at the consumer's `commit_ack` durability (`Fsync` by default)
    /// before the original is settled: a crash in between delivers the original again while
    /// the copy also exists (a duplicate, never a loss).
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::InvalidDelay`] for a level outside the table or a delay longer
    /// than its longest level; [`crate::ErrorKind::Revoked`]; an error of the write. On error
    /// the delivery stays pending: it is delivered again after `ack_wait`.
    pub fn nack(self, retry: Retry) -> Result<()> {
        self.settle_with(|ctx, message| ctx.retry(message, retry, None))
    }

    /// As [`Delivery::nack`], recording `reason` with the copy (the `wharf.reason` header,
    /// shown by [`crate::Admin::dead_letters`] if it ends there).
    ///
    /// # Errors
    ///
    /// As [`Delivery::nack`].
    pub fn nack_with_reason(self, retry: Retry, reason: &str) -> Result<()> {
        self.settle_with(|ctx, message| ctx.retry(message, retry, Some(reason)))
    }

    /// Sends the record to the group's dead-letter topic `%DLQ%<group>` at once, with
    /// `reason`, and settles it; the same durability rule as [`Delivery::nack`] applies.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Revoked`]; an error of the write. On error the delivery stays
    /// pending.
    pub fn dead_letter(self, reason: &str) -> Result<()> {
        self.settle_with(|ctx, message| ctx.dead_letter(message, reason, 0))
    }

    /// Writes a redelivery whose `ack_wait` ran out once too often to the group's dead-letter
    /// topic, then settles it (the consumer's poll does, instead of delivering it again). Its
    /// failed attempts are its retries and its expiries in this process; the copy counts all
    /// but the last as reconsumes.
    pub(crate) fn dead_letter_unacknowledged(self) -> Result<()> {
        let failures = self.attempt().saturating_sub(1);
        let reason = format!("{NOT_ACKNOWLEDGED} (failed {failures} times)");
        // Deliveries again after `ack_wait` before this one: attempt 1 was the first delivery.
        let redeliveries = self.attempt.saturating_sub(2);
        self.settle_with(|ctx, message| ctx.dead_letter(message, &reason, redeliveries))
    }

    /// Writes a copy with `write`, then settles the delivery.
    fn settle_with(self, write: impl FnOnce(&RetryCtx, &Message) -> Result<()>) -> Result<()> {
        let fetched = &self.fetched;
        fetched.cursor.check(fetched.epoch)?;
        write(&fetched.retry, self.message())?;
        fetched.cursor.ack(self.offset(), fetched.epoch)
    }

    /// The record, without settling it.
    pub fn into_message(self) -> Message {
        self.message();
        self.message
            .into_inner()
            .map_or_else(|| Message::empty("", 0), |m| *m)
    }
}

impl Deref for Delivery {
    type Target = Message;

    fn deref(&self) -> &Message {
        self.message()
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("topic", &self.topic())
            .field("partition", &self.partition())
            .field("offset", &self.offset())
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}
