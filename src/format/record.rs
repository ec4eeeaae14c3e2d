//! [`Record`]: what a producer sends. Its byte encoding inside a batch is in
//! [`super::batch`].

use std::borrow::Cow;

use bytes::Bytes;

use crate::clock::Timestamp;
use crate::retry::policy::{Delay, DelayLevel};

/// A message to send: a topic, a payload, and optionally a key, headers, a timestamp and an
/// explicit partition.
///
/// ```
/// use wharf::Record;
/// let record = Record::new("orders", "order-42").key("user-7").header("source", "web");
/// assert_eq!(record.key.as_deref(), Some(&b"user-7"[..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// The topic to send to.
    pub topic: Cow<'static, str>,
    /// The key; records with the same key go to the same partition (with the default
    /// partitioner).
    pub key: Option<Bytes>,
    /// The payload.
    pub payload: Bytes,
    /// Headers: names and values, in order; names may repeat.
    pub headers: Vec<Header>,
    /// The record's time. `None` means the time of the append (from the Wharf's clock).
    pub timestamp: Option<Timestamp>,
    /// An explicit partition, which overrides the producer's partitioner.
    pub partition: Option<u32>,
    /// Deliver later: the record waits in the delay topic and is appended to its topic once
    /// due (see [`Record::delay`]).
    pub delay: Option<Delay>,
}

/// A record header: a UTF-8 name and a byte value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header name.
    pub key: String,
    /// The header value.
    pub value: Bytes,
}

impl Record {
    /// A record for `topic` carrying `payload`.
    pub fn new(topic: impl Into<Cow<'static, str>>, payload: impl Into<Bytes>) -> Self {
        Record {
            topic: topic.into(),
            key: None,
            payload: payload.into(),
            headers: Vec::new(),
            timestamp: None,
            partition: None,
            delay: None,
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Appends a header.
    #[must_use]
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Sets the record's timestamp (otherwise the time of the append is used).
    #[must_use]
    pub fn timestamp(mut self, timestamp: impl Into<Timestamp>) -> Self {
        self.timestamp = Some(timestamp.into());
        self
    }

    /// Sends to this partition, whatever the producer's partitioner would choose.
    #[must_use]
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Delivers the record after the delay of `level` (1-based, in the Wharf's table of delay
    /// levels; RocketMQ's `setDelayTimeLevel`). The record waits in the internal topic
    /// `%DELAY%` and is appended to its topic when due; the send's receipt names its place in
    /// `%DELAY%`. Partitioning is decided at the send, as for any record.
    ///
    /// ```
    /// use wharf::Record;
    /// let reminder = Record::new("reminders", "call back").delay(4); // 30 s by default
    /// # assert!(reminder.delay.is_some());
    /// ```
    #[must_use]
    pub fn delay(mut self, level: u8) -> Self {
        self.delay = Some(Delay::Level(DelayLevel::new(level)));
        self
    }

    /// Delivers the record after at least `delay`, **rounded up** to the shortest delay level
    /// that long (never early, at most one level's gap late): each level is one log in due
    /// order, which is what makes delays cheap and durable. See [`Record::delay`].
    #[must_use]
    pub fn delay_for(mut self, delay: std::time::Duration) -> Self {
        self.delay = Some(Delay::AtLeast(delay));
        self
    }

    /// The encoded size of this record in bytes, the figure compared with a topic's
    /// `max_message_bytes`: key, payload and headers plus their length prefixes.
    pub fn encoded_len(&self) -> usize {
        super::batch::record_len(&self.view(), 0)
    }

    /// The parts of this record a batch stores, borrowed.
    pub(crate) fn view(&self) -> RecordRef<'_> {
        RecordRef {
            key: self.key.as_deref(),
            payload: &self.payload,
            headers: &self.headers,
            timestamp: self.timestamp,
        }
    }
}

/// The parts of a record a batch stores, borrowed: what the encoder reads, from a
/// [`Record`] or from slices a caller holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordRef<'a> {
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    pub headers: &'a [Header],
    pub timestamp: Option<Timestamp>,
}
