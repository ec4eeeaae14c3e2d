//! [`Producer`]: sends records at an [`AckMode`].
//!
//! A send appends in the calling thread (a memory copy into the mapped segment, under the
//! partition's lock), then, for `Fsync`, joins the partition's group sync. Every failure is
//! returned to the caller or completes its [`SendHandle`]; none is dropped.

use std::fmt;
use std::sync::Arc;

use crate::clock::Timestamp;
use crate::error::{ErrorKind, Result};
use crate::format::batch;
use crate::format::record::Record;
use crate::log::PartitionLog;
use crate::partitioner::{DefaultPartitioner, Partitioner};
use crate::retry::delayed;
use crate::topic::Topic;
use crate::wharf::Inner;
use crate::writer::ack::{AckMode, Completion, SendHandle, SendReceipt};

/// Builds a [`Producer`]. Defaults: [`AckMode::Write`] and the [`DefaultPartitioner`].
#[must_use]
pub struct ProducerBuilder {
    wharf: Arc<Inner>,
    ack: AckMode,
    partitioner: Arc<dyn Partitioner>,
}

impl ProducerBuilder {
    pub(crate) fn new(wharf: Arc<Inner>) -> Self {
        ProducerBuilder {
            wharf,
            ack: AckMode::default(),
            partitioner: Arc::new(DefaultPartitioner::default()),
        }
    }

    /// The ack mode of [`Producer::send`], [`Producer::send_batch`] and
    /// [`Producer::send_async`].
    pub fn ack(mut self, ack: AckMode) -> Self {
        self.ack = ack;
        self
    }

    /// The partitioner for records that name no partition.
    pub fn partitioner(mut self, partitioner: impl Partitioner) -> Self {
        self.partitioner = Arc::new(partitioner);
        self
    }

    /// Builds the producer.
    pub fn build(self) -> Producer {
        Producer {
            inner: Arc::new(ProducerInner {
                wharf: self.wharf,
                ack: self.ack,
                partitioner: self.partitioner,
            }),
        }
    }
}

impl fmt::Debug for ProducerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerBuilder")
            .field("ack", &self.ack)
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
    wharf: Arc<Inner>,
    ack: AckMode,
    partitioner: Arc<dyn Partitioner>,
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

    /// Sends `record` without waiting for anything beyond the hand-off ([`AckMode::NoWait`]);
    /// RocketMQ's `sendOneway`.
    ///
    /// # Errors
    ///
    /// Errors detected before the hand-off, as [`Producer::send`]; a later background sync
    /// failure shows up as [`ErrorKind::Poisoned`] on the next send to that partition.
    pub fn send_oneway(&self, record: Record) -> Result<()> {
        let record = self.undelayed(record)?;
        self.append(&record, AckMode::NoWait).map(|_| ())
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
            members.push(record);
            topic_cache = Some(topic);
        }
        let ack = self.inner.ack;
        let mut failure = None;
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
                receipt(&group.log, group.base + k, record, group.now, ack)
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
        let appended = log.append(&[record])?;
        let receipt = receipt(log, appended.base_offset, record, appended.now, ack);
        Ok((topic, receipt))
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
        let size = record.encoded_len() as u64;
        let max = u64::from(topic.config.max_message_bytes);
        if size > max {
            return Err(ErrorKind::MessageTooLarge { size, max }.into());
        }
        let partitions = topic.config.partitions;
        let partition = match record.partition {
            Some(p) => p,
            // One partition: nothing to choose (and no shared counter to bump per send).
            None if partitions == 1 => 0,
            None => self.inner.partitioner.partition(record, partitions),
        };
        topic.partition(partition)
    }
}

/// The records of one `send_batch` call bound for one partition.
struct Group<'r> {
    log: Arc<PartitionLog>,
    members: Vec<&'r Record>,
    base: u64,
    now: i64,
    /// Appended (and, with `Fsync`, synced).
    stored: bool,
}

fn receipt(
    log: &PartitionLog,
    offset: u64,
    record: &Record,
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
