//! The producer's accumulator (Kafka's `RecordAccumulator`): records sent with
//! [`AckMode::NoWait`] are encoded as they come into one open batch per partition
//! ([`BatchBuilder`], the on-disk format less its header) and appended as one batch, so a
//! send costs an encoding and a memory copy, and the partition's lock, header, CRC and
//! publication are paid once per batch.
//!
//! A batch is appended when it reaches `batch_bytes` (or the next record does not fit it),
//! when it has been open for `linger` (the Wharf's linger thread, [`super::linger`]), on
//! [`crate::Producer::flush`], on [`crate::Wharf::sync`] and `close`, and when the last
//! clone of the producer is dropped.
//!
//! Invariants:
//! 1. Records of one producer to one partition are appended in the order they were sent:
//!    batches are appended under the accumulator's lock, in the order they were opened.
//! 2. Every record taken is either appended, or reported as lost: to its [`SendHandle`]
//!    waiter if it has one, else in an [`ErrorKind::Unsent`] returned by the next call that
//!    can fail. Nothing is dropped silently (a producer dropped with a failing batch is the
//!    one exception: Drop cannot return an error; `flush` first to see it).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::linger::Linger;
use crate::clock::Timestamp;
use crate::error::{Error, ErrorKind, Result};
use crate::format::batch::BatchBuilder;
use crate::format::record::RecordRef;
use crate::log::PartitionLog;
use crate::topic::Topic;
use crate::writer::ack::{AckMode, Completion, SendReceipt};

/// Batches of one producer waiting to be appended, one per partition.
pub(crate) struct Accumulator {
    batch_bytes: usize,
    linger: Duration,
    state: Mutex<State>,
    /// How many batches are open (changed under `state`'s lock): sends that bypass the
    /// accumulator check it without the lock. A sender sees its own earlier sends' batches.
    open_batches: AtomicUsize,
    /// Appends batches that lingered long enough (none without background threads).
    timer: Option<Arc<Linger>>,
}

#[derive(Default)]
struct State {
    /// Open batches, oldest first (a producer sends to few partitions: a search is cheaper
    /// than hashing).
    open: Vec<Open>,
    /// Records without a waiter lost by an append that failed, and why; reported once.
    unsent: Option<(u64, Error)>,
    /// The sticky partition of each topic keyless records go to (Kafka's KIP-480): all of
    /// them go to one partition until its batch is appended, then to the next, so batches
    /// fill instead of every partition getting a record in turn.
    sticky: Vec<Sticky>,
}

struct Sticky {
    topic: Arc<Topic>,
    partition: u32,
}

/// Where a record goes.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    /// The partition chosen by the partitioner or named by the record.
    Partition(&'a Arc<PartitionLog>),
    /// The topic's sticky partition.
    Sticky(&'a Arc<Topic>),
}

/// An open batch.
struct Open {
    log: Arc<PartitionLog>,
    batch: BatchBuilder,
    /// The largest batch this partition takes.
    limit: usize,
    opened: Instant,
    /// The records whose sender waits for their receipt.
    waiters: Vec<Waiter>,
}

struct Waiter {
    index: usize,
    timestamp: i64,
    completion: Arc<Completion>,
}

impl Accumulator {
    pub(crate) fn new(
        batch_bytes: usize,
        linger: Duration,
        timer: Option<Arc<Linger>>,
    ) -> Arc<Self> {
        let accumulator = Arc::new(Accumulator {
            batch_bytes,
            linger,
            state: Mutex::new(State::default()),
            open_batches: AtomicUsize::new(0),
            timer,
        });
        if let Some(timer) = &accumulator.timer {
            timer.register(Arc::downgrade(&accumulator));
        }
        accumulator
    }

    /// Whether any batch is open.
    pub(crate) fn has_open(&self) -> bool {
        self.open_batches.load(Ordering::Relaxed) > 0
    }

    /// Takes `record` (checked and routed to `log`) into the partition's open batch, with
    /// `waiter` completed when it is appended (or fails). Appends the batch if it is full.
    /// The inner result is that append's: `record` was taken either way, and `waiter` gets
    /// the fate of the batch `record` is in.
    ///
    /// # Errors
    ///
    /// The outer error: an earlier loss not reported yet ([`ErrorKind::Unsent`]; `record`
    /// was not taken). The inner one: the failure to append a full batch (whose records'
    /// waiters got it too; `record` is in that batch or the next).
    pub(crate) fn add(
        &self,
        target: Target<'_>,
        record: &RecordRef<'_>,
        now: i64,
        waiter: Option<Arc<Completion>>,
    ) -> Result<Result<()>> {
        let mut state = self.state.lock();
        if let Some((records, source)) = state.unsent.take() {
            return Err(ErrorKind::Unsent { records, source }.into());
        }
        let mut result = Ok(());
        let mut log = resolve(&mut state, target)?;
        let mut at = state
            .open
            .iter()
            .position(|open| Arc::ptr_eq(&open.log, log));
        let mut index = None;
        if let Some(i) = at {
            if let Some(open) = state.open.get_mut(i) {
                index = open.batch.push(record, now, open.limit);
            }
            if index.is_none() {
                // Full, or another layout: append it, and open the next (a keyless record
                // moves on to the next sticky partition).
                let open = state.open.remove(i);
                result = Self::append(&mut state, open);
                log = resolve(&mut state, target)?;
                at = state
                    .open
                    .iter()
                    .position(|open| Arc::ptr_eq(&open.log, log));
                if let Some(i) = at {
                    if let Some(open) = state.open.get_mut(i) {
                        index = open.batch.push(record, now, open.limit);
                    }
                    if index.is_none() {
                        let open = state.open.remove(i);
                        result = result.and(Self::append(&mut state, open));
                        at = None;
                    }
                }
            }
        }
        let i = if let Some(i) = at {
            i
        } else {
            let limit = self.batch_bytes.min(log.largest_batch());
            if let Some(timer) = &self.timer {
                timer.wake_by(Instant::now() + self.linger);
            }
            let mut batch = BatchBuilder::new(record, now, limit);
            index = batch.push(record, now, limit);
            state.open.push(Open {
                log: Arc::clone(log),
                batch,
                limit,
                opened: Instant::now(),
                waiters: Vec::new(),
            });
            state.open.len() - 1
        };
        let Some(open) = state.open.get_mut(i) else {
            return Ok(result);
        };
        if let (Some(completion), Some(index)) = (waiter, index) {
            open.waiters.push(Waiter {
                index,
                timestamp: crate::format::batch::effective_timestamp(record, now),
                completion,
            });
        }
        if open.batch.len() >= open.limit {
            let open = state.open.remove(i);
            result = result.and(Self::append(&mut state, open));
        }
        self.open_batches.store(state.open.len(), Ordering::Relaxed);
        Ok(result)
    }

    /// Appends the open batch of `log`, if any.
    ///
    /// # Errors
    ///
    /// Its append's failure (its waiters got it too).
    pub(crate) fn flush_partition(&self, log: &Arc<PartitionLog>) -> Result<()> {
        let mut state = self.state.lock();
        let result = match state
            .open
            .iter()
            .position(|open| Arc::ptr_eq(&open.log, log))
        {
            Some(i) => {
                let open = state.open.remove(i);
                Self::append(&mut state, open)
            }
            None => Ok(()),
        };
        self.open_batches.store(state.open.len(), Ordering::Relaxed);
        result
    }

    /// Appends every open batch.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsent`] for records lost since the last report, this flush's included.
    pub(crate) fn flush(&self) -> Result<()> {
        let mut state = self.state.lock();
        self.append_where(&mut state, |_| true);
        match state.unsent.take() {
            Some((records, source)) => Err(ErrorKind::Unsent { records, source }.into()),
            None => Ok(()),
        }
    }

    /// Appends every open batch, keeping a loss for the producer's next call to report.
    pub(crate) fn append_all(&self) {
        let mut state = self.state.lock();
        self.append_where(&mut state, |_| true);
    }

    /// Appends the batches open for `linger` by `now`; the time the next one will have, if
    /// one is open.
    pub(crate) fn flush_due(&self, now: Instant) -> Option<Instant> {
        let mut state = self.state.lock();
        let linger = self.linger;
        self.append_where(&mut state, |open| open.opened + linger <= now);
        state.open.iter().map(|open| open.opened + linger).min()
    }

    /// Appends the open batches `due` picks, oldest first (a failure is recorded for its
    /// records).
    fn append_where(&self, state: &mut State, due: impl Fn(&Open) -> bool) {
        // `open` is in the order the batches opened.
        let mut i = 0;
        while i < state.open.len() {
            if state.open.get(i).is_some_and(&due) {
                let open = state.open.remove(i);
                // Recorded for the records without a waiter; the waiters have it.
                let _reported = Self::append(state, open);
            } else {
                i += 1;
            }
        }
        self.open_batches.store(state.open.len(), Ordering::Relaxed);
    }

    /// Appends `open`'s batch and completes its waiters. A failure is recorded in `state`
    /// for the records nobody waits for, and returned.
    fn append(state: &mut State, open: Open) -> Result<()> {
        let result = open.log.append_built(&open.batch);
        let log = &open.log;
        for sticky in &mut state.sticky {
            let partitions = sticky.topic.config.partitions.max(1);
            let current = sticky.topic.partition(sticky.partition);
            if current.is_ok_and(|current| Arc::ptr_eq(current, log)) {
                sticky.partition = (sticky.partition + 1) % partitions;
            }
        }
        match result {
            Ok(appended) => {
                for waiter in open.waiters {
                    waiter.completion.complete(Ok(SendReceipt {
                        topic: Arc::clone(log.topic()),
                        partition: log.partition(),
                        offset: appended.base_offset + waiter.index as u64,
                        timestamp: Timestamp::from_millis(waiter.timestamp),
                        ack: AckMode::NoWait,
                    }));
                }
                Ok(())
            }
            Err(error) => {
                let unwaited = (open.batch.record_count() - open.waiters.len()) as u64;
                for waiter in open.waiters {
                    waiter.completion.complete(Err(error.clone()));
                }
                if unwaited > 0 {
                    let (records, _) = state.unsent.get_or_insert((0, error.clone()));
                    *records += unwaited;
                }
                Err(error)
            }
        }
    }
}

/// The partition `target` names now.
fn resolve<'t>(state: &mut State, target: Target<'t>) -> Result<&'t Arc<PartitionLog>> {
    match target {
        Target::Partition(log) => Ok(log),
        Target::Sticky(topic) => {
            let partition =
                if let Some(sticky) = state.sticky.iter().find(|s| Arc::ptr_eq(&s.topic, topic)) {
                    sticky.partition
                } else {
                    // A deleted topic's entry goes when its recreation appears.
                    state.sticky.retain(|s| *s.topic.name != *topic.name);
                    state.sticky.push(Sticky {
                        topic: Arc::clone(topic),
                        partition: 0,
                    });
                    0
                };
            topic.partition(partition)
        }
    }
}

impl Drop for Accumulator {
    fn drop(&mut self) {
        // The last producer clone is gone: append what is left (a failure has nobody to go
        // to; the waiters of handles still held get it).
        let mut state = std::mem::take(&mut *self.state.lock());
        self.append_where(&mut state, |_| true);
    }
}
