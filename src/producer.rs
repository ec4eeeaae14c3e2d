//! [`Producer`]: sends records at an [`AckMode`].
//!
//! A `Write` or `Fsync` send appends in the calling thread (a memory copy into the mapped
//! segment, under the partition's lock), then, for `Fsync`, joins the partition's group sync.
//! A `NoWait` send encodes the record into the producer's open batch for its partition (the
//! accumulator), appended when full, after `linger`, or on `flush`. Every failure is
//! returned to the caller, completes its [`SendHandle`], or (for records nobody waits for)
//! is returned by the producer's next call as [`ErrorKind::Unsent`]; none is dropped.

mod accumulator;
pub(crate) mod linger;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::error::{ErrorKind, Result};
use crate::format::batch;
use crate::format::record::{Record, RecordRef};
use crate::log::PartitionLog;
use crate::partitioner::{DefaultPartitioner, Partitioner};
use crate::retry::delayed;
use crate::topic::Topic;
use crate::wharf::Inner;
use crate::writer::ack::{AckMode, Completion, SendHandle, SendReceipt};
use accumulator::{Accumulator, Target};

/// Default [`ProducerBuilder::batch_bytes`]: 16 KiB, Kafka's `batch.size`.
pub const DEFAULT_BATCH_BYTES: usize = 16 * 1024;
/// Default [`ProducerBuilder::linger`]: 5 ms, Kafka's `linger.ms` since 4.0.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);

/// Builds a [`Producer`]. Defaults: [`AckMode::Write`], the [`DefaultPartitioner`],
/// [`DEFAULT_BATCH_BYTES`] and [`DEFAULT_LINGER`].
#[must_use]
pub struct ProducerBuilder {
    wharf: Arc<Inner>,
    ack: AckMode,
    partitioner: Arc<dyn Partitioner>,
    /// The partitioner is the default one: keyless records batched without waiting use a
    /// sticky partition instead of its round robin.
    sticky: bool,
    batch_bytes: usize,
    linger: Duration,
}

impl ProducerBuilder {
    pub(crate) fn new(wharf: Arc<Inner>) -> Self {
        ProducerBuilder {
            wharf,
            ack: AckMode::default(),
            partitioner: Arc::new(DefaultPartitioner::default()),
            sticky: true,
            batch_bytes: DEFAULT_BATCH_BYTES,
            linger: DEFAULT_LINGER,
        }
    }

    /// How large a batch of records sent without waiting ([`AckMode::NoWait`]) grows before
    /// it is appended (Kafka's `batch.size`); a larger record goes alone. At most the
    /// topic's segment room and 1 MiB. Default [`DEFAULT_BATCH_BYTES`].
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes.max(1);
        self
    }

    /// How long a batch of records sent without waiting may wait for more before it is
    /// appended (Kafka's `linger.ms`). Default [`DEFAULT_LINGER`].
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// The ack mode of [`Producer::send`], [`Producer::send_batch`] and
    /// [`Producer::send_async`].
    pub fn ack(mut self, ack: AckMode) -> Self {
        self.ack = ack;
        self
    }

    /// The partitioner for records that name no partition.
    ///
    /// With the default one, keyless records sent without waiting go to one partition
    /// until its batch is appended, then to the next (Kafka's sticky partitioning, KIP-480),
    /// so batches fill; other sends of keyless records take turns.
    pub fn partitioner(mut self, partitioner: impl Partitioner) -> Self {
        self.partitioner = Arc::new(partitioner);
        self.sticky = false;
        self
    }

    /// Builds the producer.
    pub fn build(self) -> Producer {
        let timer = self.wharf.shared.linger.clone();
        Producer {
            inner: Arc::new(ProducerInner {
                accumulator: Accumulator::new(self.batch_bytes, self.linger, timer),
                wharf: self.wharf,
                ack: self.ack,
                partitioner: self.partitioner,
                sticky: self.sticky,
            }),
        }
    }
}

impl fmt::Debug for ProducerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerBuilder")
            .field("ack", &self.ack)
            .field("batch_bytes", &self.batch_bytes)
            .field("linger", &self.linger)
            .finish_non_exhaustive()
    }
}

/// Sends records. Cheap to clone, `Send + Sync`; clones share the partitioner. Keeps its
/// Wharf open while it lives.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<ProducerInner>,
}

struct ProducerInner {
    /// Records sent with `NoWait`, until their batch is appended. Dropped (and so flushed)
    /// before `wharf`.
    accumulator: Arc<Accumulator>,
    wharf: Arc<Inner>,
    ack: AckMode,
    partitioner: Arc<dyn Partitioner>,
    sticky: bool,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("ack", &self.inner.ack)
            .field("partitioner", &self.inner.partitioner)
            .finish()
    }
}

impl Producer {
    /// The producer's ack mode.
    pub fn ack_mode(&self) -> AckMode {
        self.inner.ack
    }

    /// Sends `record` and waits for the producer's ack mode.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TopicNotFound`], [`ErrorKind::PartitionOutOfRange`],
    /// [`ErrorKind::MessageTooLarge`] (nothing written), [`ErrorKind::Poisoned`] after a failed
    /// sync, [`ErrorKind::Closed`], [`ErrorKind::ReadOnly`], or an I/O error reserving space
    /// (nothing written).
    pub fn send(&self, record: Record) -> Result<SendReceipt> {
        self.send_with(record, self.inner.ack)
    }

    /// Sends `record` and waits for `ack`.
    ///
    /// # Errors
    ///
    /// As [`Producer::send`].
    /// With [`AckMode::NoWait`] the record is appended in the caller's thread (the receipt
    /// needs its offset), after the partition's open batch of records sent without waiting;
    /// nothing waits for a sync. [`Producer::send_oneway`] and [`Producer::send_async`]
    /// batch instead.
    pub fn send_with(&self, record: Record, ack: AckMode) -> Result<SendReceipt> {
        let record = self.undelayed(record)?;
        let (topic, receipt) = self.append(&record, ack)?;
        if ack == AckMode::Fsync {
            topic
                .partition(receipt.partition)?
                .sync_to(receipt.offset + 1)?;
        }
        Ok(receipt)
    }

    /// Sends `record` without waiting for anything ([`AckMode::NoWait`], whatever the
    /// producer's ack mode); RocketMQ's `sendOneway`. The record is encoded into the open
    /// batch of its partition, appended when it reaches [`ProducerBuilder::batch_bytes`],
    /// after [`ProducerBuilder::linger`], on [`Producer::flush`], [`crate::Wharf::sync`] and
    /// `close`, or when the last clone of the producer is dropped.
    ///
    /// What it survives: nothing until its batch is appended (a `kill -9` before that loses
    /// it); then what a `Write` send survives.
    ///
    /// # Errors
    ///
    /// Errors detected before the hand-off, as [`Producer::send`] (the record is not taken);
    /// [`ErrorKind::Unsent`] if records sent earlier without waiting were lost (this record
    /// is not taken either); or the failure to append a batch this record filled (the
    /// record was taken: it is in that batch, lost with it, or in the next one). A later
    /// background sync failure shows up as [`ErrorKind::Poisoned`] on the next send to that
    /// partition.
    pub fn send_oneway(&self, record: Record) -> Result<()> {
        let record = self.undelayed(record)?;
        self.accumulate(&record, None)?
    }

    /// Appends every batch of records sent without waiting that is still open, in the
    /// calling thread: when it returns, they are in their segments (as if sent with
    /// `Write`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsent`] if records sent without waiting were lost since the last report
    /// (by this flush or a background one).
    pub fn flush(&self) -> Result<()> {
        self.inner.accumulator.flush()
    }

    /// Sends records with one append per partition touched (each written as few batches as
    /// fit) and, for `Fsync`, one sync per partition: far cheaper than one send per record.
    /// Receipts come back in the order of the records.
    ///
    /// Every record is checked (topic, partition, size) before anything is written. The
    /// records bound for one partition are stored all or none, in order: the space they take
    /// (the segments they roll into included) is reserved before a byte is written. The
    /// partitions are written one after the other, in the order they first appear.
    ///
    /// # Errors
    ///
    /// As [`Producer::send`], with nothing stored; or, when the records of some partitions
    /// were stored before another failed, [`ErrorKind::PartlyStored`] with their receipts and
    /// that failure.
    pub fn send_batch(
        &self,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<Vec<SendReceipt>> {
        let records: Vec<Record> = records
            .into_iter()
            .map(|record| self.undelayed(record))
            .collect::<Result<_>>()?;
        // Route every record before writing any: a bad one fails the call with nothing written.
        let mut groups: Vec<Group> = Vec::new();
        let mut placement: Vec<(usize, u64)> = Vec::with_capacity(records.len());
        let mut topic_cache: Option<Arc<Topic>> = None;
        for record in &records {
            let topic = match topic_cache.take() {
                Some(t) if *t.name == *record.topic => t,
                _ => self.inner.wharf.shared.topic(&record.topic)?,
            };
            let log = self.route(&topic, record)?;
            let g = if let Some(g) = groups.iter().position(|g| Arc::ptr_eq(&g.log, log)) {
                g
            } else {
                let group = Group {
                    log: Arc::clone(log),
                    members: Vec::new(),
                    base: 0,
                    now: 0,
                    stored: false,
                };
                groups.push(group);
                groups.len() - 1
            };
            let members = &mut groups[g].members;
            placement.push((g, members.len() as u64));
            members.push(record.view());
            topic_cache = Some(topic);
        }
        let ack = self.inner.ack;
        let mut failure = None;
        // Records sent earlier without waiting go first.
        for group in &groups {
            self.inner.accumulator.flush_partition(&group.log)?;
        }
        for group in &mut groups {
            match group.log.append(&group.members) {
                Ok(appended) => {
                    group.base = appended.base_offset;
                    group.now = appended.now;
                    group.stored = true;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if ack == AckMode::Fsync {
            for group in groups.iter_mut().filter(|g| g.stored) {
                if let Err(e) = group.log.sync_to(group.base + group.members.len() as u64) {
                    group.stored = false;
                    failure.get_or_insert(e);
                }
            }
        }
        let receipts = placement
            .iter()
            .zip(&records)
            .filter(|&(&(g, _), _)| groups[g].stored)
            .map(|(&(g, k), record)| {
                let group = &groups[g];
                receipt(&group.log, group.base + k, &record.view(), group.now, ack)
            });
        match failure {
            None => Ok(receipts.collect()),
            Some(source) if groups.iter().any(|g| g.stored) => Err(ErrorKind::PartlyStored {
                stored: receipts.collect(),
                source,
            }
            .into()),
            Some(source) => Err(source),
        }
    }

    /// Sends `record` and returns at once with a handle that completes at the producer's ack
    /// mode. With `Fsync`, the sync is done by the Wharf's flusher thread, shared with every
    /// other pending send.
    pub fn send_async(&self, record: Record) -> SendHandle {
        let ack = self.inner.ack;
        let record = match self.undelayed(record) {
            Ok(record) => record,
            Err(e) => return SendHandle::done(Err(e)),
        };
        if ack == AckMode::NoWait {
            let completion = Completion::new();
            return match self.accumulate(&record, Some(Arc::clone(&completion))) {
                // Taken: the handle completes with the record's own batch (a failed append
                // of the batch it closed went to that batch's senders).
                Ok(_) => SendHandle::new(completion),
                Err(e) => SendHandle::done(Err(e)),
            };
        }
        let (topic, receipt) = match self.append(&record, ack) {
            Ok(appended) => appended,
            Err(e) => return SendHandle::done(Err(e)),
        };
        if ack != AckMode::Fsync {
            return SendHandle::done(Ok(receipt));
        }
        let log = match topic.partition(receipt.partition) {
            Ok(log) => Arc::clone(log),
            Err(e) => return SendHandle::done(Err(e)),
        };
        let completion = Completion::new();
        let target = receipt.offset + 1;
        let done = Arc::clone(&completion);
        let callback = Box::new(move |result: Result<()>| done.complete(result.map(|()| receipt)));
        if let Err(callback) = log.on_durable(target, callback) {
            // Too many sends already wait on this partition: sync here instead.
            callback(log.sync_to(target));
        }
        SendHandle::new(completion)
    }

    /// Appends one record (not a delayed one: see [`Producer::undelayed`]); returns its topic
    /// and receipt.
    fn append(&self, record: &Record, ack: AckMode) -> Result<(Arc<Topic>, SendReceipt)> {
        let topic = self.inner.wharf.shared.topic(&record.topic)?;
        let log = self.route(&topic, record)?;
        if self.inner.accumulator.has_open() {
            // Records sent earlier without waiting go first.
            self.inner.accumulator.flush_partition(log)?;
        }
        let view = record.view();
        let appended = log.append(&[view])?;
        let receipt = receipt(log, appended.base_offset, &view, appended.now, ack);
        Ok((topic, receipt))
    }

    /// Sends `payload` with `key` to `topic`, both borrowed, and waits for the producer's ack
    /// mode: like [`Producer::send`] of a record with that key and payload (no headers, the
    /// append's time, the partitioner's choice), without building one: nothing is allocated
    /// or copied before the bytes go into the segment.
    ///
    /// # Errors
    ///
    /// As [`Producer::send`].
    pub fn send_slice(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<SendReceipt> {
        let ack = self.inner.ack;
        let view = slice_view(key, payload);
        let topic = self.inner.wharf.shared.topic(topic)?;
        let log = self.route_view(&topic, &view)?;
        if self.inner.accumulator.has_open() {
            self.inner.accumulator.flush_partition(log)?;
        }
        let appended = log.append(&[view])?;
        let receipt = receipt(log, appended.base_offset, &view, appended.now, ack);
        if ack == AckMode::Fsync {
            log.sync_to(receipt.offset + 1)?;
        }
        Ok(receipt)
    }

    /// Sends `payload` with `key` to `topic`, both borrowed, without waiting: like
    /// [`Producer::send_oneway`] of a record with that key and payload, encoded straight into
    /// the producer's batch (the one copy of the bytes before the segment).
    ///
    /// # Errors
    ///
    /// As [`Producer::send_oneway`].
    pub fn send_oneway_slice(&self, topic: &str, key: Option<&[u8]>, payload: &[u8]) -> Result<()> {
        let shared = &self.inner.wharf.shared;
        shared.check_writable()?;
        let view = slice_view(key, payload);
        let topic = shared.topic(topic)?;
        let target = if self.is_sticky(&topic, key.is_none(), None) {
            check_size(&topic, &view)?;
            Target::Sticky(&topic)
        } else {
            Target::Partition(self.route_view(&topic, &view)?)
        };
        let now = shared.clock().now().as_millis();
        self.inner.accumulator.add(target, &view, now, None)?
    }

    /// Whether a record with no key (`keyless`) naming `partition` goes to `topic`'s sticky
    /// partition when batched.
    fn is_sticky(&self, topic: &Topic, keyless: bool, partition: Option<u32>) -> bool {
        self.inner.sticky && keyless && partition.is_none() && topic.config.partitions > 1
    }

    /// Takes `record` (not a delayed one) into its partition's open batch, with `waiter`
    /// completed by its batch's append. As [`Accumulator::add`]: the outer error means the
    /// record was not taken, the inner one is the failed append of a full batch.
    fn accumulate(&self, record: &Record, waiter: Option<Arc<Completion>>) -> Result<Result<()>> {
        let shared = &self.inner.wharf.shared;
        // A record taken by a closed or read-only Wharf could never be appended (nothing
        // lingers it out), and its handle would never complete: refuse it, as `send` does.
        shared.check_writable()?;
        let topic = shared.topic(&record.topic)?;
        let view = record.view();
        let target = if self.is_sticky(&topic, record.key.is_none(), record.partition) {
            check_size(&topic, &view)?;
            Target::Sticky(&topic)
        } else {
            Target::Partition(self.route(&topic, record)?)
        };
        let now = shared.clock().now().as_millis();
        self.inner.accumulator.add(target, &view, now, waiter)
    }

    /// The record to store in the delay topic for `record`, sent with `delay`. Its target
    /// partition is chosen now, by this producer's partitioner.
    ///
    /// A record without a delay is returned as it is.
    fn undelayed(&self, record: Record) -> Result<Record> {
        let Some(delay) = record.delay else {
            return Ok(record);
        };
        let shared = &self.inner.wharf.shared;
        let target = shared.topic(&record.topic)?;
        let partition = self.route(&target, &record)?.partition();
        delayed::stored_record(shared, record, partition, delay)
    }

    /// The partition `record` goes to, after checking its size.
    fn route<'t>(&self, topic: &'t Topic, record: &Record) -> Result<&'t Arc<PartitionLog>> {
        check_size(topic, &record.view())?;
        let partitions = topic.config.partitions;
        let partition = match record.partition {
            Some(p) => p,
            // One partition: nothing to choose (and no shared counter to bump per send).
            None if partitions == 1 => 0,
            None => self.inner.partitioner.partition(record, partitions),
        };
        topic.partition(partition)
    }

    /// The partition a record of borrowed parts goes to, after checking its size.
    fn route_view<'t>(
        &self,
        topic: &'t Topic,
        view: &RecordRef<'_>,
    ) -> Result<&'t Arc<PartitionLog>> {
        check_size(topic, view)?;
        let partitions = topic.config.partitions;
        let partition = if partitions == 1 {
            0
        } else {
            self.inner.partitioner.partition_key(view.key, partitions)
        };
        topic.partition(partition)
    }
}

/// A keyed or keyless record of borrowed parts, without headers, at the append's time.
fn slice_view<'a>(key: Option<&'a [u8]>, payload: &'a [u8]) -> RecordRef<'a> {
    RecordRef {
        key,
        payload,
        headers: &[],
        timestamp: None,
    }
}

/// `MessageTooLarge` unless `view` fits `topic`'s `max_message_bytes`.
fn check_size(topic: &Topic, view: &RecordRef<'_>) -> Result<()> {
    let size = batch::record_len(view, 0) as u64;
    let max = u64::from(topic.config.max_message_bytes);
    if size > max {
        return Err(ErrorKind::MessageTooLarge { size, max }.into());
    }
    Ok(())
}

/// The records of one `send_batch` call bound for one partition.
struct Group<'r> {
    log: Arc<PartitionLog>,
    members: Vec<RecordRef<'r>>,
    base: u64,
    now: i64,
    /// Appended (and, with `Fsync`, synced).
    stored: bool,
}

fn receipt(
    log: &PartitionLog,
    offset: u64,
    record: &RecordRef<'_>,
    now: i64,
    ack: AckMode,
) -> SendReceipt {
    SendReceipt {
        topic: Arc::clone(log.topic()),
        partition: log.partition(),
        offset,
        timestamp: Timestamp::from_millis(batch::effective_timestamp(record, now)),
        ack,
    }
}
