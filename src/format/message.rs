//! What reads return: a [`Batch`] owns one buffer (a zero-copy slice of the segment where the
//! segment is mapped) and lends [`MessageRef`] views into it; [`Message`] is an owned record
//! whose parts are `Bytes` slices of that same buffer.
//!
//! A read does not decode records: it notes where each record's body and value lie (a
//! 16-byte [`Slot`]) and what its on-disk batch says for all of its records (a
//! [`SourceBatch`]); the payload is then a slice, and the timestamp, key and headers are
//! decoded when asked for ([`record_decode`]: a few single-byte varints). Every body was
//! checked when its batch was first read in this process, so the decoding cannot meet a
//! malformed record.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use super::batch::RecordLayout;
use super::record_decode::{self, HeaderIter};
use crate::clock::Timestamp;

/// Where one record lies in a [`Batch`]'s buffer: the start of its body (after its length),
/// its value, and the index of its on-disk batch in [`Batch`]'s list. The headers, if any,
/// follow the value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub body_start: u32,
    pub value_start: u32,
    pub value_end: u32,
    pub batch: u32,
}

/// What the records of one on-disk batch (or of several alike in a row) share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourceBatch {
    /// The offset of a record of this batch minus its index in the read.
    pub offset_base: u64,
    pub first_timestamp: i64,
    pub layout: RecordLayout,
}

/// Records read from one partition, in offset order, every one checked against its batch CRC.
#[derive(Clone)]
pub struct Batch {
    topic: Arc<str>,
    partition: u32,
    buf: Bytes,
    slots: Vec<Slot>,
    batches: Vec<SourceBatch>,
    next_offset: u64,
}

impl Batch {
    pub(crate) fn new(
        topic: Arc<str>,
        partition: u32,
        buf: Bytes,
        slots: Vec<Slot>,
        batches: Vec<SourceBatch>,
        next_offset: u64,
    ) -> Self {
        Batch {
            topic,
            partition,
            buf,
            slots,
            batches,
            next_offset,
        }
    }

    pub(crate) fn empty(topic: Arc<str>, partition: u32, next_offset: u64) -> Self {
        Batch::new(
            topic,
            partition,
            Bytes::new(),
            Vec::new(),
            Vec::new(),
            next_offset,
        )
    }

    /// The topic read from.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition read from.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The offset to read from next: one past the last record returned, or the requested offset
    /// if nothing was returned.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// The `i`-th record.
    #[inline]
    pub fn get(&self, i: usize) -> Option<MessageRef<'_>> {
        self.slots.get(i).map(|&slot| MessageRef {
            batch: self,
            index: i,
            slot,
        })
    }

    /// The records, in offset order.
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            batch: self,
            slots: self.slots.iter().enumerate(),
        }
    }

    /// Owned copies of the records (zero-copy: they share this batch's buffer).
    pub fn to_messages(&self) -> Vec<Message> {
        self.iter().map(|m| m.to_message()).collect()
    }

    fn slice(&self, range: &Range<u32>) -> &[u8] {
        self.buf
            .get(range.start as usize..range.end as usize)
            .unwrap_or_default()
    }

    fn source(&self, slot: Slot) -> SourceBatch {
        self.batches
            .get(slot.batch as usize)
            .copied()
            .unwrap_or(SourceBatch {
                offset_base: 0,
                first_timestamp: 0,
                layout: RecordLayout::default(),
            })
    }

    #[inline]
    fn value(&self, slot: Slot) -> &[u8] {
        self.slice(&(slot.value_start..slot.value_end))
    }

    /// The timestamp and the key (its range in the buffer) of `slot`'s record.
    fn head(&self, slot: Slot) -> (Timestamp, Option<Range<u32>>) {
        let source = self.source(slot);
        let bytes = self.slice(&(slot.body_start..slot.value_end));
        let (delta, key) = record_decode::record_head(bytes, source.layout);
        let at = slot.body_start;
        (
            Timestamp::from_millis(source.first_timestamp.wrapping_add(delta)),
            key.map(|k| k.start + at..k.end + at),
        )
    }

    /// The header count and encoded headers (their range in the buffer) of `slot`'s record.
    fn headers_of(&self, slot: Slot) -> (u32, Range<u32>) {
        let at = slot.value_end;
        let rest = self.buf.get(at as usize..).unwrap_or_default();
        let (count, range) = record_decode::record_headers(rest, self.source(slot).layout);
        (count, range.start + at..range.end + at)
    }

    fn bytes(&self, range: &Range<u32>) -> Bytes {
        if range.end as usize <= self.buf.len() && range.start <= range.end {
            self.buf.slice(range.start as usize..range.end as usize)
        } else {
            Bytes::new()
        }
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("len", &self.slots.len())
            .field("next_offset", &self.next_offset)
            .finish_non_exhaustive()
    }
}

impl<'a> IntoIterator for &'a Batch {
    type Item = MessageRef<'a>;
    type IntoIter = BatchIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the records of a [`Batch`].
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    batch: &'a Batch,
    slots: std::iter::Enumerate<std::slice::Iter<'a, Slot>>,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = MessageRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.slots.next().map(|(index, &slot)| MessageRef {
            batch: self.batch,
            index,
            slot,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.slots.size_hint()
    }
}

impl ExactSizeIterator for BatchIter<'_> {}

/// A record borrowed from a [`Batch`].
#[derive(Clone, Copy)]
pub struct MessageRef<'a> {
    batch: &'a Batch,
    index: usize,
    slot: Slot,
}

impl<'a> MessageRef<'a> {
    /// The topic.
    pub fn topic(&self) -> &'a str {
        &self.batch.topic
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.batch.partition
    }

    /// The record's offset in its partition.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.batch.source(self.slot).offset_base + self.index as u64
    }

    /// The record's timestamp.
    pub fn timestamp(&self) -> Timestamp {
        self.batch.head(self.slot).0
    }

    /// The key, if the record has one.
    pub fn key(&self) -> Option<&'a [u8]> {
        let batch = self.batch;
        batch.head(self.slot).1.map(|k| batch.slice(&k))
    }

    /// The payload.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.batch.value(self.slot)
    }

    /// The headers, in the order they were sent.
    pub fn headers(&self) -> Headers<'a> {
        let (count, range) = self.batch.headers_of(self.slot);
        Headers(HeaderIter::new(self.batch.slice(&range), count))
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// An owned copy sharing the batch's buffer.
    pub fn to_message(&self) -> Message {
        let slot = self.slot;
        let (timestamp, key) = self.batch.head(slot);
        let (header_count, headers) = self.batch.headers_of(slot);
        let end = headers.end.max(slot.value_end);
        // One `Bytes` covering the record's body (key, value and headers are in it), so an
        // owned message costs two reference counts (topic, buffer), not four.
        let at = slot.body_start;
        let rebase = |r: Range<u32>| r.start - at..r.end - at;
        Message {
            topic: Arc::clone(&self.batch.topic),
            partition: self.batch.partition,
            offset: self.offset(),
            timestamp,
            buf: self.batch.bytes(&(at..end)),
            key: key.map(rebase),
            value: rebase(slot.value_start..slot.value_end),
            headers: rebase(headers.start.max(slot.value_end)..end),
            header_count,
        }
    }
}

impl fmt::Debug for MessageRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageRef")
            .field("topic", &self.topic())
            .field("partition", &self.partition())
            .field("offset", &self.offset())
            .field("payload_len", &self.payload().len())
            .finish_non_exhaustive()
    }
}

/// An owned record read from a partition. Cheap to clone: it shares the buffer it was read
/// into (a zero-copy slice of the segment where the segment is mapped).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    topic: Arc<str>,
    partition: u32,
    offset: u64,
    timestamp: Timestamp,
    buf: Bytes,
    key: Option<Range<u32>>,
    value: Range<u32>,
    headers: Range<u32>,
    header_count: u32,
}

impl Message {
    /// A message with no key, payload or headers.
    pub(crate) fn empty(topic: &str, partition: u32) -> Self {
        Message {
            topic: Arc::from(topic),
            partition,
            offset: 0,
            timestamp: Timestamp::default(),
            buf: Bytes::new(),
            key: None,
            value: 0..0,
            headers: 0..0,
            header_count: 0,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The record's offset in its partition.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The record's timestamp.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The key, if the record has one.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_ref().map(|r| self.slice(r))
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        self.slice(&self.value)
    }

    /// The key as a zero-copy `Bytes`.
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.key
            .as_ref()
            .map(|r| self.buf.slice(r.start as usize..r.end as usize))
    }

    /// The payload as a zero-copy `Bytes`.
    pub fn payload_bytes(&self) -> Bytes {
        self.buf
            .slice(self.value.start as usize..self.value.end as usize)
    }

    /// The headers, in the order they were sent.
    pub fn headers(&self) -> Headers<'_> {
        Headers(HeaderIter::new(
            self.slice(&self.headers),
            self.header_count,
        ))
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    fn slice(&self, range: &Range<u32>) -> &[u8] {
        self.buf
            .get(range.start as usize..range.end as usize)
            .unwrap_or_default()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &self.key())
            .field("payload_len", &self.payload().len())
            .field("headers", &self.headers().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Iterator over a record's headers: `(name, value)` pairs.
#[derive(Debug, Clone)]
pub struct Headers<'a>(HeaderIter<'a>);

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}
