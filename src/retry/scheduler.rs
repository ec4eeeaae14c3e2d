//! The delay scheduler: one thread (`wharf-scheduler`) that moves due records from the delay
//! topic to their targets.
//!
//! Each partition of `%DELAY%` is a *lane* in due order. A round, per lane: read from the
//! lane's position while the head record is due (its `wharf.delay.due` is not after the
//! clock's now); append the due records to their target partitions, grouped per partition;
//! sync each target partition touched; then commit the lane's new position as the offset of
//! the internal group `%DELAY%` (written now, synced by the flusher, which first syncs the
//! lane up to it).
//!
//! Invariants:
//! - a lane's committed position never passes a record whose moved copy is not on stable
//!   storage: a crash loses no delayed record, and may move some again (duplicates);
//! - a record is moved only once its due time has come on the Wharf's clock, never earlier;
//! - a record that cannot be moved (its target topic was deleted, or it no longer fits the
//!   target) is dropped and counted, as a send to a deleted topic would fail; one whose
//!   target partition no longer exists goes to the partition of the same number modulo the
//!   topic's partition count.
//!
//! Sleeping: until the earliest head's due time (at most [`MAX_SLEEP`], so a real clock that
//! jumps is noticed), or until a lane with nothing left gets an append, or the clock is set
//! by hand ([`crate::Clock::on_change`]). A failing round (an I/O error) is retried after
//! [`ERROR_BACKOFF`]; its error is kept for [`crate::Admin::delay_status`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::delayed::Due;
use super::{DELAY_TOPIC, SCHEDULER_GROUP};
use crate::clock::Timestamp;
use crate::error::{ErrorKind, Result};
use crate::format::message::Batch;
use crate::format::record::{Record, RecordRef};
use crate::group::group::Group;
use crate::group::offsets::Committed;
use crate::log::{PartitionLog, ReadLimits, Signal};
use crate::topic::{Incarnation, Topic, TopicPartition};
use crate::wharf::Shared;

/// Longest sleep between two looks at the clock.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Wait before retrying a round that failed.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);
/// Most records moved between two progress commits of a lane.
const MOVE_BATCH: usize = 4_096;
/// What one read of a lane asks for.
const LANE_READ: ReadLimits = ReadLimits {
    max_records: 1_024,
    max_bytes: 4 << 20,
};

/// What the scheduler has done, for [`crate::Admin::delay_status`].
#[derive(Debug, Default)]
pub(crate) struct SchedulerStats {
    pub moved: AtomicU64,
    pub dropped: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

/// The running scheduler thread. Stopped by [`Scheduler::stop`] (close, crash simulation).
#[derive(Debug)]
pub(crate) struct Scheduler {
    stop: Arc<AtomicBool>,
    signal: Arc<Signal>,
    stats: Arc<SchedulerStats>,
    thread: Option<JoinHandle<()>>,
}

impl Scheduler {
    /// Starts the thread for `shared`'s delay topic.
    pub(crate) fn start(shared: &Arc<Shared>) -> std::io::Result<Scheduler> {
        let stop = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(Signal::default());
        let stats = Arc::new(SchedulerStats::default());
        let weak_signal = Arc::downgrade(&signal);
        shared.clock().on_change(Box::new(move || {
            if let Some(signal) = weak_signal.upgrade() {
                signal.notify();
            }
        }));
        let mut run = Run {
            shared: Arc::downgrade(shared),
            stop: Arc::clone(&stop),
            signal: Arc::clone(&signal),
            stats: Arc::clone(&stats),
            topic: None,
            group: None,
            lanes: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("wharf-scheduler".into())
            .spawn(move || run.run())?;
        Ok(Scheduler {
            stop,
            signal,
            stats,
            thread: Some(thread),
        })
    }

    /// What the scheduler has done.
    pub(crate) fn stats(&self) -> &SchedulerStats {
        &self.stats
    }

    /// Stops the thread after its current round and waits for it.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.signal.notify();
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has already been reported by the runtime; close goes on.
            let _joined = thread.join();
        }
    }
}

/// Runs one round in the calling thread, from the lanes' committed positions, as a scheduler
/// (re)started now would (tests without background threads).
#[cfg(test)]
pub(crate) fn run_round(shared: &Arc<Shared>) -> Result<()> {
    let mut run = Run {
        shared: Arc::downgrade(shared),
        stop: Arc::new(AtomicBool::new(false)),
        signal: Arc::new(Signal::default()),
        stats: Arc::new(SchedulerStats::default()),
        topic: None,
        group: None,
        lanes: Vec::new(),
    };
    let result = run.round(shared).map(|_| ());
    run.release();
    result
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where a lane stands.
enum Head {
    /// The lane has nothing left to read.
    Empty,
    /// The head record is due at this time.
    Waiting(Timestamp),
}

/// One partition of the delay topic.
struct Lane {
    log: Arc<PartitionLog>,
    tp: TopicPartition,
    /// The delay topic's incarnation, which the lane's commits carry.
    incarnation: Incarnation,
    /// The position committed (durable through the flusher); where a failed round restarts.
    committed: u64,
    /// The next record to look at.
    position: u64,
    /// Records read and not yet looked at, with the index of the next one.
    buffer: Option<(Batch, usize)>,
    head: Head,
}

/// Records bound for one target partition in one step.
struct Moves {
    log: Arc<PartitionLog>,
    records: Vec<Record>,
}

/// The thread's state.
struct Run {
    shared: Weak<Shared>,
    stop: Arc<AtomicBool>,
    signal: Arc<Signal>,
    stats: Arc<SchedulerStats>,
    topic: Option<Arc<Topic>>,
    group: Option<Arc<Group>>,
    lanes: Vec<Lane>,
}

impl Run {
    fn run(&mut self) {
        while !self.stop.load(Ordering::SeqCst) {
            let Some(shared) = self.shared.upgrade() else {
                break;
            };
            let wake = match self.round(&shared) {
                Ok(wake) => {
                    *self.stats.last_error.lock() = None;
                    wake
                }
                Err(e) => {
                    // The lanes restart from their committed positions.
                    for lane in &mut self.lanes {
                        lane.position = lane.committed;
                        lane.buffer = None;
                    }
                    *self.stats.last_error.lock() = Some(e.to_string());
                    Some(Instant::now() + ERROR_BACKOFF)
                }
            };
            drop(shared);
            self.sleep(wake);
        }
        self.release();
    }

    /// Moves every due record; returns when to look again (`None`: as soon as possible).
    fn round(&mut self, shared: &Shared) -> Result<Option<Instant>> {
        if !self.attach(shared)? {
            return Ok(Some(Instant::now() + MAX_SLEEP));
        }
        let Some(group) = self.group.clone() else {
            return Ok(None);
        };
        let mut next_due: Option<Timestamp> = None;
        for i in 0..self.lanes.len() {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let now = shared.now();
            if let Head::Waiting(at) = self.lanes[i].head {
                if at > now {
                    next_due = Some(next_due.map_or(at, |d| d.min(at)));
                    continue;
                }
            }
            if let Head::Waiting(at) = self.drain_lane(shared, &group, i, now)? {
                next_due = Some(next_due.map_or(at, |d| d.min(at)));
            }
        }
        let now = shared.now();
        Ok(Some(match next_due {
            Some(at) => {
                let wait =
                    u64::try_from(at.as_millis().saturating_sub(now.as_millis())).unwrap_or(0);
                Instant::now() + Duration::from_millis(wait).min(MAX_SLEEP)
            }
            None => Instant::now() + MAX_SLEEP,
        }))
    }

    /// Follows the delay topic: (re)builds the lanes if it was created or replaced. Returns
    /// whether there is a delay topic.
    fn attach(&mut self, shared: &Shared) -> Result<bool> {
        let Ok(topic) = shared.topic(DELAY_TOPIC) else {
            self.release();
            return Ok(false);
        };
        if self.topic.as_ref().is_some_and(|t| Arc::ptr_eq(t, &topic)) {
            return Ok(true);
        }
        self.release();
        let group = shared.group(SCHEDULER_GROUP, true)?;
        group.consumers.fetch_add(1, Ordering::AcqRel);
        for log in &topic.partitions {
            let tp = TopicPartition::new(DELAY_TOPIC, log.partition());
            let (start, end) = (log.start_offset(), log.next_offset());
            let committed = group
                .offsets
                .committed(&tp, topic.incarnation)
                .map_or(start, |c| c.clamp(start, end));
            log.watch(&self.signal);
            self.lanes.push(Lane {
                log: Arc::clone(log),
                tp,
                incarnation: topic.incarnation,
                committed,
                position: committed,
                buffer: None,
                head: Head::Empty,
            });
        }
        self.group = Some(group);
        self.topic = Some(topic);
        Ok(true)
    }

    /// Lets go of the delay topic and the scheduler group.
    fn release(&mut self) {
        for lane in self.lanes.drain(..) {
            lane.log.unwatch(&self.signal);
        }
        if let Some(group) = self.group.take() {
            group.consumers.fetch_sub(1, Ordering::AcqRel);
        }
        self.topic = None;
    }

    /// Moves the due records of lane `i`, committing its position every [`MOVE_BATCH`].
    fn drain_lane(
        &mut self,
        shared: &Shared,
        group: &Group,
        i: usize,
        now: Timestamp,
    ) -> Result<Head> {
        loop {
            // The last target topic (consecutive records mostly go to the same one), looked
            // up again for each batch.
            let mut cached: Option<Arc<Topic>> = None;
            let mut moves: Vec<Moves> = Vec::new();
            let mut count = 0;
            let head = loop {
                if count >= MOVE_BATCH {
                    break None;
                }
                let lane = &mut self.lanes[i];
                let Some((batch, next)) = lane.peek()? else {
                    break Some(Head::Empty);
                };
                let Some(stored) = batch.get(next) else {
                    break Some(Head::Empty);
                };
                let offset = stored.offset();
                match Due::read(&stored) {
                    Some(due) if due.at > now => break Some(Head::Waiting(due.at)),
                    Some(due) => match target(shared, &due, &mut cached) {
                        Some((topic, partition)) => {
                            let record = due.target_record(&stored, partition);
                            if record.encoded_len() as u64
                                > u64::from(topic.config.max_message_bytes)
                            {
                                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                            } else if let Ok(log) = topic.partition(partition) {
                                add(&mut moves, log, record);
                                count += 1;
                            }
                        }
                        None => {
                            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    },
                    // Not a record the delay topic's writers make: nothing to deliver.
                    None => {
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                lane.advance(offset + 1);
            };
            self.flush_moves(&moves)?;
            let lane = &mut self.lanes[i];
            if lane.position != lane.committed {
                let committed = Committed {
                    incarnation: lane.incarnation,
                    offset: lane.position,
                };
                shared.commit_offsets(group, None, &[(lane.tp.clone(), committed)], false)?;
                lane.committed = lane.position;
            }
            if let Some(head) = head {
                lane.head = head;
                let Head::Waiting(at) = lane.head else {
                    return Ok(Head::Empty);
                };
                return Ok(Head::Waiting(at));
            }
        }
    }

    /// Appends the moved records and syncs every partition they went to.
    fn flush_moves(&self, moves: &[Moves]) -> Result<()> {
        let mut synced = Vec::with_capacity(moves.len());
        for group in moves {
            let refs: Vec<RecordRef<'_>> = group.records.iter().map(Record::view).collect();
            match group.log.append(&refs) {
                Ok(appended) => synced.push((&group.log, appended.base_offset + refs.len() as u64)),
                // Deleted since: as a send to a deleted topic, the records are gone.
                Err(e) if matches!(e.kind(), ErrorKind::TopicNotFound { .. }) => {
                    self.stats
                        .dropped
                        .fetch_add(refs.len() as u64, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        for (log, end) in synced {
            match log.sync_to(end) {
                Err(e) if !matches!(e.kind(), ErrorKind::TopicNotFound { .. }) => return Err(e),
                _ => {}
            }
        }
        let moved: usize = moves.iter().map(|m| m.records.len()).sum();
        self.stats.moved.fetch_add(moved as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Sleeps until `wake`, an append to a lane that had nothing left, a change of the clock,
    /// or a stop.
    fn sleep(&self, wake: Option<Instant>) {
        let Some(wake) = wake else { return };
        let idle: Vec<&Lane> = self
            .lanes
            .iter()
            .filter(|l| matches!(l.head, Head::Empty))
            .collect();
        for lane in &idle {
            lane.log.wait_begin();
        }
        let arrived = idle.iter().any(|l| l.log.next_offset() > l.position);
        if !arrived && !self.stop.load(Ordering::SeqCst) {
            self.signal.wait_until(wake);
        }
        for lane in &idle {
            lane.log.wait_end();
        }
    }
}

impl Lane {
    /// The buffered batch and the index of the next record in it, reading more if needed;
    /// `None` at the end of the lane.
    fn peek(&mut self) -> Result<Option<(&Batch, usize)>> {
        let exhausted = self
            .buffer
            .as_ref()
            .is_none_or(|(batch, next)| *next >= batch.len());
        if exhausted {
            self.buffer = None;
            if self.position >= self.log.next_offset() {
                return Ok(None);
            }
            let batch = match self.log.read(self.position, LANE_READ, false) {
                Ok(batch) => batch,
                // Retention removed records meanwhile: go on from the log start.
                Err(e) if matches!(e.kind(), ErrorKind::OffsetOutOfRange { .. }) => {
                    self.position = self.log.start_offset();
                    self.log.read(self.position, LANE_READ, false)?
                }
                Err(e) => return Err(e),
            };
            if batch.is_empty() {
                return Ok(None);
            }
            self.buffer = Some((batch, 0));
        }
        Ok(self.buffer.as_ref().map(|(batch, next)| (batch, *next)))
    }

    /// The record at the head was handled; the next one is at `position`.
    fn advance(&mut self, position: u64) {
        if let Some((_, next)) = self.buffer.as_mut() {
            *next += 1;
        }
        self.position = position;
    }
}

/// The target topic and partition of `due`, if the topic still exists. `cached` is the last
/// target looked up; a deleted topic is noticed by the append, which then fails.
fn target(
    shared: &Shared,
    due: &Due,
    cached: &mut Option<Arc<Topic>>,
) -> Option<(Arc<Topic>, u32)> {
    let topic = match cached.take() {
        Some(topic) if *topic.name == *due.topic => topic,
        _ => shared.topic(due.topic).ok()?,
    };
    *cached = Some(Arc::clone(&topic));
    let partition = due.partition % topic.config.partitions.max(1);
    Some((topic, partition))
}

/// Adds `record` to the moves bound for `log`.
fn add(moves: &mut Vec<Moves>, log: &Arc<PartitionLog>, record: Record) {
    match moves.iter_mut().find(|m| Arc::ptr_eq(&m.log, log)) {
        Some(m) => m.records.push(record),
        None => moves.push(Moves {
            log: Arc::clone(log),
            records: vec![record],
        }),
    }
}
