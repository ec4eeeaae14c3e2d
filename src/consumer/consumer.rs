//! [`Consumer`]: polls records of its assigned partitions, hands them out as [`Delivery`]s,
//! delivers again what is left undecided past `ack_wait`, and commits its group's offsets.
//!
//! A poll: apply a pending rebalance (release lost partitions, acquire new ones), commit if
//! the policy says so, deliver again what is due, then deliver new records round-robin over
//! the partitions, each read in batches from the log. With nothing to deliver it sleeps on
//! one signal, which appends (while it waits), rebalances and the nearest redelivery deadline
//! wake: no polling loop.
//!
//! An expired `ack_wait` counts as a failed attempt. A due record whose failed attempts (its
//! retries, counted in its headers, plus its expiries here) passed `max_reconsume_times` is
//! written to the group's dead-letter topic and settled instead of being delivered again; if
//! that write fails the record stays pending (tried again at its next deadline) and the error
//! is returned by this poll, or by the next one if this one delivered records.
//!
//! The offsets from each partition's lowest pending offset to its position, summed over the
//! partitions held, never pass `max_in_flight`: that bounds what the cursors track. A consumer
//! at the bound delivers nothing new; it sleeps until a redelivery deadline or until an
//! acknowledgement moves a partition's lowest pending offset.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::cursor::Cursor;
use super::delivery::{Delivery, Fetched};
use super::options::{CommitPolicy, ConsumerOptions, FETCH_RECORDS, OutOfRange, SeekTo, StartFrom};
use crate::error::{Error, ErrorKind, Result};
use crate::group::group::Group;
use crate::group::membership::Fence;
use crate::group::offsets::Committed;
use crate::log::{PartitionLog, ReadLimits, Signal};
use crate::retry::{self, nack::RetryCtx};
use crate::topic::TopicPartition;
use crate::wharf::Inner;
use crate::writer::ack::AckMode;

/// Lag of one partition: how far the group's committed offset is behind the log end.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionLag {
    /// The partition.
    pub partition: TopicPartition,
    /// The log end offset (the next offset to be written).
    pub end_offset: u64,
    /// The group's committed offset, if any.
    pub committed: Option<u64>,
    /// `end_offset - committed` (from the log start when nothing is committed).
    pub lag: u64,
}

/// A partition this consumer holds.
struct Held {
    cursor: Arc<Cursor>,
    /// Records read from the log and not yet delivered, with the index of the next one.
    buffer: Option<(Arc<Fetched>, usize)>,
    paused: bool,
}

/// Consumes records for a consumer group. Built with [`crate::Wharf::consumer`]. Used from
/// one thread at a time (`&mut self`); its deliveries may be acknowledged from any thread.
/// Closing or dropping it leaves the group (its partitions go to the other members).
pub struct Consumer {
    wharf: Arc<Inner>,
    group: Arc<Group>,
    retry: Arc<RetryCtx>,
    member: Option<String>,
    options: ConsumerOptions,
    signal: Arc<Signal>,
    /// Set to make the current or next poll return at once (the push consumer's shutdown).
    interrupt: Arc<AtomicBool>,
    generation: u64,
    held: Vec<Held>,
    waiting: Vec<TopicPartition>,
    next: usize,
    last_commit: Instant,
    left: bool,
    /// A failed dead-letter write a poll that delivered records could not report.
    deferred: Option<Error>,
}

impl Consumer {
    pub(crate) fn new(
        wharf: Arc<Inner>,
        group_name: &str,
        options: ConsumerOptions,
    ) -> Result<Self> {
        crate::topic::validate_group_name(group_name)?;
        let shared = &wharf.shared;
        for topic in &options.topics {
            shared.topic(topic)?;
        }
        for (topic, partition) in &options.assigned {
            shared.topic(topic)?.partition(*partition)?;
        }
        // A subscriber also subscribes to the group's retry topic. The topic is created by the
        // first nack, and its creation rebalances the group, so a group that never nacks has
        // no retry topic and its members see only the topics they named.
        let retry_topic = retry::retry_topic(group_name);
        let mut options = options;
        if !options.topics.is_empty() && !options.topics.contains(&retry_topic) {
            options.topics.push(retry_topic);
        }
        let group = shared.group(group_name, true)?;
        group
            .consumers
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let signal = Arc::new(Signal::default());
        let retry = Arc::new(RetryCtx::new(
            Arc::clone(&wharf),
            group_name,
            options.max_reconsume_times,
            options.commit_ack,
        ));
        let mut consumer = Consumer {
            wharf,
            group,
            retry,
            member: None,
            options,
            signal,
            interrupt: Arc::new(AtomicBool::new(false)),
            generation: 0,
            held: Vec::new(),
            waiting: Vec::new(),
            next: 0,
            last_commit: Instant::now(),
            left: false,
            deferred: None,
        };
        if consumer.options.topics.is_empty() {
            let assigned: Vec<TopicPartition> = consumer
                .options
                .assigned
                .iter()
                .map(|(t, p)| TopicPartition::new(t.clone(), *p))
                .collect();
            for tp in &assigned {
                consumer.hold(tp, None)?;
            }
            consumer.run_hook(&assigned, true);
        } else {
            let topics: BTreeSet<String> = consumer.options.topics.iter().cloned().collect();
            let counts = consumer.wharf.shared.partition_counts();
            let id = consumer.group.membership.join(
                topics,
                consumer.options.assignor,
                Arc::clone(&consumer.signal),
                &counts,
            );
            consumer.member = Some(id);
        }
        Ok(consumer)
    }

    /// The group.
    pub fn group(&self) -> &str {
        &self.group.name
    }

    /// Waits up to `timeout` for a record and returns it (`None` if none came).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Closed`] after the Wharf was closed; [`ErrorKind::Corrupt`] if a batch
    /// fails its checks; I/O errors of commits made by the commit policy; the error of writing
    /// a record left unacknowledged too often to the dead-letter topic (it stays pending and
    /// is tried again after `ack_wait`; reported by the next poll if this one delivered
    /// records).
    pub fn poll(&mut self, timeout: Duration) -> Result<Option<Delivery>> {
        Ok(self.poll_batch(1, timeout)?.pop())
    }

    /// Waits up to `timeout` for records and returns up to `max` of them (none if none came).
    ///
    /// # Errors
    ///
    /// As [`Consumer::poll`].
    pub fn poll_batch(&mut self, max: usize, timeout: Duration) -> Result<Vec<Delivery>> {
        let mut out = Vec::new();
        self.poll_into(&mut out, max, timeout)?;
        Ok(out)
    }

    /// As [`Consumer::poll_batch`], appending to `out` (which keeps its capacity from poll to
    /// poll: no allocation per poll); returns how many deliveries were appended.
    ///
    /// # Errors
    ///
    /// As [`Consumer::poll`]; on error nothing was appended.
    pub fn poll_into(
        &mut self,
        out: &mut Vec<Delivery>,
        max: usize,
        timeout: Duration,
    ) -> Result<usize> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let deadline = Instant::now() + timeout;
        let max = max.max(1);
        let before = out.len();
        loop {
            self.check_open()?;
            self.apply_rebalance()?;
            self.commit_by_policy()?;
            // The limits below are on `out.len()`: what was there stays.
            let limit = before.saturating_add(max);
            self.deliver_due(out, limit)?;
            self.deliver_new(out, limit)?;
            let taken = out.len() - before;
            if taken == 0 {
                if let Some(e) = self.deferred.take() {
                    return Err(e);
                }
            }
            if taken > 0
                || Instant::now() >= deadline
                || self.interrupt.swap(false, Ordering::AcqRel)
            {
                return Ok(taken);
            }
            self.sleep(deadline);
        }
    }

    /// Blocks until a record comes.
    ///
    /// # Errors
    ///
    /// As [`Consumer::poll`]; [`ErrorKind::Closed`] when the Wharf closes.
    pub fn recv(&mut self) -> Result<Delivery> {
        loop {
            if let Some(delivery) = self.poll(Duration::from_secs(3_600))? {
                return Ok(delivery);
            }
        }
    }

    /// An endless iterator of [`Consumer::recv`] results.
    pub fn iter(&mut self) -> impl Iterator<Item = Result<Delivery>> + '_ {
        std::iter::from_fn(move || Some(self.recv()))
    }

    /// A handle that makes the current or next poll return at once, from any thread.
    pub(crate) fn interrupter(&self) -> Interrupter {
        Interrupter {
            flag: Arc::clone(&self.interrupt),
            signal: Arc::clone(&self.signal),
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.wharf.shared.is_closed() {
            return Err(ErrorKind::Closed.into());
        }
        Ok(())
    }

    /// Delivers again records whose `ack_wait` ran out, or dead-letters those that failed too
    /// often (a failed write is kept in `deferred`).
    fn deliver_due(&mut self, out: &mut Vec<Delivery>, max: usize) -> Result<()> {
        let now = Instant::now();
        let next_deadline = now + self.options.ack_wait;
        let mut failed = None;
        for held in &self.held {
            while out.len() < max {
                let Some((offset, attempt)) = held.cursor.take_due(now, next_deadline) else {
                    break;
                };
                let Some(delivery) = self.redelivery(held, offset, attempt)? else {
                    continue;
                };
                if delivery.attempt().saturating_sub(1) <= self.options.max_reconsume_times {
                    out.push(delivery);
                } else if let Err(e) = delivery.dead_letter_unacknowledged() {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            self.deferred.get_or_insert(e);
        }
        Ok(())
    }

    /// Reads `offset` of `held` for its `attempt`-th delivery; `None` (and settled) if the
    /// record is gone.
    fn redelivery(&self, held: &Held, offset: u64, attempt: u32) -> Result<Option<Delivery>> {
        let cursor = &held.cursor;
        let limits = ReadLimits {
            max_records: 1,
            max_bytes: 1,
        };
        let batch = match cursor.log.read(offset, limits, false) {
            Ok(batch) => batch,
            // Deleted by retention meanwhile: nothing left to deliver below the log start.
            Err(e) if matches!(e.kind(), ErrorKind::OffsetOutOfRange { .. }) => {
                cursor.settle_below(cursor.log.start_offset());
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let epoch = cursor.epoch();
        if batch.get(0).is_none_or(|m| m.offset() != offset) {
            // No record at that offset: nothing to deliver.
            cursor.ack(offset, epoch)?;
            return Ok(None);
        }
        let fetched = Fetched {
            batch,
            cursor: Arc::clone(cursor),
            epoch,
            retry: Arc::clone(&self.retry),
        };
        Ok(Some(Delivery::new(Arc::new(fetched), 0, attempt)))
    }

    /// Delivers new records, round-robin over the unpaused partitions.
    fn deliver_new(&mut self, out: &mut Vec<Delivery>, max: usize) -> Result<()> {
        let count = self.held.len();
        let span: u64 = self.held.iter().map(|h| h.cursor.span()).sum();
        let mut room = (self.options.max_in_flight as u64).saturating_sub(span);
        for step in 0..count {
            if out.len() >= max || room == 0 {
                break;
            }
            let i = (self.next + step) % count;
            let taken = self.deliver_from(
                i,
                out,
                max.min(out.len() + usize::try_from(room).unwrap_or(usize::MAX)),
            )?;
            room = room.saturating_sub(taken as u64);
        }
        self.next = (self.next + 1) % count.max(1);
        Ok(())
    }

    /// Delivers from the `i`-th held partition until `out` holds `max`; returns how many.
    fn deliver_from(&mut self, i: usize, out: &mut Vec<Delivery>, max: usize) -> Result<usize> {
        let durable_only = self.options.durable_only;
        let ack_wait = self.options.ack_wait;
        let Some(held) = self.held.get_mut(i) else {
            return Ok(0);
        };
        if held.paused {
            return Ok(0);
        }
        let exhausted = held
            .buffer
            .as_ref()
            .is_none_or(|(f, next)| *next >= f.batch.len());
        if exhausted {
            let limits = ReadLimits {
                max_records: FETCH_RECORDS.max(max - out.len()),
                max_bytes: 1 << 20,
            };
            let batch = match held
                .cursor
                .log
                .read(held.cursor.position(), limits, durable_only)
            {
                Ok(batch) => batch,
                // The topic was deleted: the rebalance that follows takes the partition away.
                Err(e) if matches!(e.kind(), ErrorKind::TopicNotFound { .. }) => return Ok(0),
                // Deleted below the position (retention, `delete_records`).
                Err(e)
                    if matches!(e.kind(), ErrorKind::OffsetOutOfRange { start, .. }
                        if held.cursor.position() < *start)
                        && self.options.out_of_range == OutOfRange::Earliest =>
                {
                    held.cursor.reposition(held.cursor.log.start_offset());
                    return Ok(0);
                }
                Err(e) => return Err(e),
            };
            let (cursor, epoch, retry) = (
                Arc::clone(&held.cursor),
                held.cursor.epoch(),
                Arc::clone(&self.retry),
            );
            held.buffer = (!batch.is_empty()).then(|| {
                (
                    Arc::new(Fetched {
                        batch,
                        cursor,
                        epoch,
                        retry,
                    }),
                    0,
                )
            });
        }
        let Some((fetched, next)) = held.buffer.as_mut() else {
            return Ok(0);
        };
        let start = held.cursor.position();
        let take = (max - out.len()).min(fetched.batch.len() - *next);
        out.reserve(take);
        out.extend((*next..*next + take).map(|i| Delivery::new(Arc::clone(fetched), i, 1)));
        *next += take;
        if take > 0 {
            held.cursor
                .delivered(start, start + take as u64, Instant::now() + ack_wait);
        }
        Ok(take)
    }

    /// Sleeps until `deadline`, a redelivery deadline, new data (if there is room for it), an
    /// acknowledgement that makes room, or a rebalance.
    fn sleep(&self, deadline: Instant) {
        let wake = self
            .held
            .iter()
            .filter_map(|h| h.cursor.next_deadline())
            .fold(deadline, Instant::min);
        for held in &self.held {
            held.cursor.log.wait_begin();
        }
        let full = self.is_full();
        let ready = !full
            && self.held.iter().any(|h| {
                let log = &h.cursor.log;
                let end = if self.options.durable_only {
                    log.durable_offset()
                } else {
                    log.next_offset()
                };
                !h.paused && end > h.cursor.position()
            });
        let rebalanced =
            self.member.is_some() && self.group.membership.generation() != self.generation;
        // A partition waiting for its holder to let go: its release wakes the signal; else
        // wake when the rebalance timeout lets this member take it anyway.
        let wake = self.member.as_deref().map_or(wake, |member| {
            self.waiting
                .iter()
                .filter_map(|tp| {
                    self.group
                        .membership
                        .takeover_at(member, tp, self.options.rebalance_timeout)
                })
                .fold(wake, Instant::min)
        });
        if !ready && !rebalanced && !self.interrupt.load(Ordering::Acquire) {
            self.signal.wait_until(wake);
        }
        for held in &self.held {
            held.cursor.log.wait_end();
            if full {
                held.cursor.unwatch_low();
            }
        }
    }

    /// Whether the held partitions' spans reached `max_in_flight`. If so, an acknowledgement
    /// that moves a lowest pending offset from now on notifies the consumer's signal (undone
    /// in [`Consumer::sleep`]).
    fn is_full(&self) -> bool {
        let max = self.options.max_in_flight as u64;
        if self.held.iter().map(|h| h.cursor.span()).sum::<u64>() < max {
            return false;
        }
        // Watch first, then look again: an acknowledgement in between is not missed.
        let span: u64 = self
            .held
            .iter()
            .map(|h| h.cursor.watch_low(&self.signal))
            .sum();
        if span < max {
            for held in &self.held {
                held.cursor.unwatch_low();
            }
            return false;
        }
        true
    }

    /// Releases partitions lost in a rebalance and acquires the ones gained.
    fn apply_rebalance(&mut self) -> Result<()> {
        let Some(member) = self.member.clone() else {
            return Ok(());
        };
        let group = Arc::clone(&self.group);
        let membership = &group.membership;
        if membership.generation() == self.generation && self.waiting.is_empty() {
            return Ok(());
        }
        let (generation, target) = membership.target(&member);
        let mut result = Ok(());
        // Lost: partitions no longer in the target, and those of a topic deleted since (even
        // if one of the same name was created since and is in the target: it is taken up
        // afresh below, from the group's offsets for the new topic).
        let shared = &self.wharf.shared;
        let lost: Vec<TopicPartition> = self
            .held
            .iter()
            .filter(|h| {
                !target.contains(&h.cursor.tp)
                    || !shared.is_current(&h.cursor.tp.topic, h.cursor.incarnation)
            })
            .map(|h| h.cursor.tp.clone())
            .collect();
        if !lost.is_empty() {
            self.run_hook(&lost, false);
            // The acknowledged progress is safe to commit: nothing unprocessed is skipped. A
            // partition another member already took (after the rebalance timeout) is not ours
            // to commit any more.
            let entries: Vec<(TopicPartition, Committed)> = self
                .held
                .iter()
                .filter(|h| lost.contains(&h.cursor.tp))
                .filter(|h| membership.holder(&h.cursor.tp).as_deref() == Some(member.as_str()))
                .map(|h| entry(&h.cursor, h.cursor.low()))
                .collect();
            let committed = self.store(entries, false);
            for tp in &lost {
                self.unhold(tp);
            }
            // The partitions are let go anyway (their uncommitted records go to the new
            // owner); a failed commit is reported once, after the rebalance is applied.
            result = committed;
        }
        let mut gained = Vec::new();
        self.waiting.clear();
        for tp in target {
            if self.held.iter().any(|h| h.cursor.tp == tp) {
                continue;
            }
            match membership.acquire(&member, &tp, self.options.rebalance_timeout) {
                Some(fence) => {
                    self.hold(&tp, Some(fence))?;
                    gained.push(tp);
                }
                None => self.waiting.push(tp),
            }
        }
        if !gained.is_empty() {
            self.run_hook(&gained, true);
        }
        self.generation = generation;
        result
    }

    fn run_hook(&mut self, partitions: &[TopicPartition], assigned: bool) {
        let hook = if assigned {
            &mut self.options.on_assign
        } else {
            &mut self.options.on_revoke
        };
        if let Some(hook) = hook.as_mut() {
            hook(partitions);
        }
    }

    /// Starts consuming `tp` from the group's committed offset (or per `start_from`). A group
    /// member passes the `fence` of its holding: the offsets store refuses the earlier
    /// holders' commits from the moment the committed offset is read.
    fn hold(&mut self, tp: &TopicPartition, fence: Option<Fence>) -> Result<()> {
        let topic = self.wharf.shared.topic(&tp.topic)?;
        let log = Arc::clone(topic.partition(tp.partition)?);
        let (start, end) = (log.start_offset(), log.next_offset());
        // Only an offset committed against this topic counts, not one of a deleted topic of
        // the same name.
        let offsets = &self.group.offsets;
        let committed = match fence {
            Some(fence) => offsets.take_over(tp, fence, topic.incarnation),
            None => offsets.committed(tp, topic.incarnation),
        };
        let position = match committed {
            // Below the log start (deleted by retention or `delete_records`): with
            // `OutOfRange::Fail`, polls fail until the application seeks.
            Some(committed)
                if committed < start && self.options.out_of_range == OutOfRange::Fail =>
            {
                committed
            }
            // Never before the log start (retention) nor past the end (a commit can outlive
            // unsynced data after a power loss).
            Some(committed) => committed.clamp(start, end),
            None => match self.options.start_from {
                StartFrom::Earliest => start,
                StartFrom::Latest => end,
                StartFrom::Timestamp(ts) => {
                    log.offset_for_timestamp(ts.as_millis())?.unwrap_or(end)
                }
            },
        };
        log.watch(&self.signal);
        let cursor = Arc::new(Cursor::new(tp.clone(), topic.incarnation, log, position));
        self.held.push(Held {
            cursor,
            buffer: None,
            paused: false,
        });
        Ok(())
    }

    fn unhold(&mut self, tp: &TopicPartition) {
        if let Some(i) = self.held.iter().position(|h| h.cursor.tp == *tp) {
            let held = self.held.swap_remove(i);
            held.cursor.revoke();
            held.cursor.log.unwatch(&self.signal);
            if let Some(member) = &self.member {
                self.group.membership.release(member, tp);
            }
        }
    }

    fn held(&self, tp: &TopicPartition) -> Result<&Held> {
        self.held
            .iter()
            .find(|h| h.cursor.tp == *tp)
            .ok_or_else(|| not_assigned(tp))
    }

    fn held_mut(&mut self, tp: &TopicPartition) -> Result<&mut Held> {
        self.held
            .iter_mut()
            .find(|h| h.cursor.tp == *tp)
            .ok_or_else(|| not_assigned(tp))
    }

    fn commit_by_policy(&mut self) -> Result<()> {
        let interval = match self.options.commit {
            CommitPolicy::Manual => return Ok(()),
            CommitPolicy::Auto { interval } | CommitPolicy::Acked { interval } => interval,
        };
        if self.last_commit.elapsed() < interval {
            return Ok(());
        }
        self.last_commit = Instant::now();
        match self.options.commit {
            CommitPolicy::Auto { .. } => self.commit_with(false, Cursor::settle_all),
            _ => self.commit_with(false, Cursor::low),
        }
    }

    /// Commits the position of every held partition: everything delivered so far counts as
    /// processed (Kafka's `commitSync`). Waits per `commit_ack` (default `Fsync`: the offsets
    /// and the log up to them are on stable storage).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Revoked`] if a partition was taken from this consumer meanwhile (its
    /// offset is not committed); [`ErrorKind::Poisoned`] or an I/O error if the commit could
    /// not be made durable; [`ErrorKind::ReadOnly`], [`ErrorKind::Closed`].
    pub fn commit(&mut self) -> Result<()> {
        let durable = self.options.commit_ack == AckMode::Fsync;
        self.commit_with(durable, Cursor::settle_all)
    }

    /// As [`Consumer::commit`], but returns once the offsets are written (page cache: they
    /// survive a process crash); they are synced in the background.
    ///
    /// # Errors
    ///
    /// As [`Consumer::commit`].
    pub fn commit_async(&mut self) -> Result<()> {
        self.commit_with(false, Cursor::settle_all)
    }

    /// Commits, for every held partition, the lowest offset not yet acknowledged (RocketMQ's
    /// consume progress): nothing is settled by it, so nothing unprocessed is ever skipped.
    ///
    /// # Errors
    ///
    /// As [`Consumer::commit`].
    pub fn commit_acked(&mut self) -> Result<()> {
        let durable = self.options.commit_ack == AckMode::Fsync;
        self.commit_with(durable, Cursor::low)
    }

    /// Commits `message`'s partition up to and including `message`: it and every earlier
    /// delivery of that partition count as processed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotAssigned`] if the partition is not held; as [`Consumer::commit`].
    pub fn commit_message(&mut self, message: &crate::Message) -> Result<()> {
        let tp = TopicPartition::new(message.topic(), message.partition());
        let cursor = &self.held(&tp)?.cursor;
        let entry = entry(cursor, cursor.settle_below(message.offset() + 1));
        let durable = self.options.commit_ack == AckMode::Fsync;
        self.store(vec![entry], durable)
    }

    /// Commits exactly these offsets (each the next offset to consume, as in Kafka); records
    /// delivered below them count as processed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotAssigned`] for a partition not held; [`ErrorKind::InvalidCommit`] for
    /// an offset past what the consumer was given or before the log start; as
    /// [`Consumer::commit`].
    pub fn commit_offsets(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<()> {
        for (tp, offset) in offsets {
            let cursor = &self.held(tp)?.cursor;
            let reason = if *offset > cursor.position() {
                Some("the consumer was not given that record yet")
            } else if *offset < cursor.log.start_offset() {
                Some("it is before the log start")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(ErrorKind::InvalidCommit {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: *offset,
                    reason,
                }
                .into());
            }
        }
        let mut entries = Vec::with_capacity(offsets.len());
        for (tp, offset) in offsets {
            let cursor = &self.held(tp)?.cursor;
            cursor.settle_below(*offset);
            entries.push(entry(cursor, *offset));
        }
        let durable = self.options.commit_ack == AckMode::Fsync;
        self.store(entries, durable)
    }

    fn commit_with(&mut self, durable: bool, offset_of: fn(&Cursor) -> u64) -> Result<()> {
        let entries: Vec<(TopicPartition, Committed)> = self
            .held
            .iter()
            .map(|h| entry(&h.cursor, offset_of(&h.cursor)))
            .collect();
        self.store(entries, durable)
    }

    /// Writes `entries` to the group's offsets, fenced by partition ownership. Entries of a
    /// topic deleted since are dropped ([`crate::wharf::Shared::commit_offsets`]).
    fn store(&self, entries: Vec<(TopicPartition, Committed)>, durable: bool) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.wharf
            .shared
            .commit_offsets(&self.group, self.member.as_deref(), &entries, durable)
    }

    /// Moves a held partition's position. Deliveries made before no longer count (acking
    /// them gets [`ErrorKind::Revoked`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotAssigned`]; [`ErrorKind::OffsetOutOfRange`] for an offset outside the
    /// log.
    pub fn seek(&mut self, tp: &TopicPartition, to: SeekTo) -> Result<()> {
        let log = Arc::clone(&self.held(tp)?.cursor.log);
        let (start, end) = (log.start_offset(), log.next_offset());
        let position = match to {
            SeekTo::Beginning => start,
            SeekTo::End => end,
            SeekTo::Offset(offset) if (start..=end).contains(&offset) => offset,
            SeekTo::Offset(offset) => {
                return Err(ErrorKind::OffsetOutOfRange {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset,
                    start,
                    end,
                }
                .into());
            }
            SeekTo::Timestamp(ts) => log.offset_for_timestamp(ts.as_millis())?.unwrap_or(end),
        };
        let held = self.held_mut(tp)?;
        held.cursor.reposition(position);
        held.buffer = None;
        Ok(())
    }

    /// The next offset this consumer delivers for the first time in a held partition.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotAssigned`].
    pub fn position(&self, tp: &TopicPartition) -> Result<u64> {
        Ok(self.held(tp)?.cursor.position())
    }

    /// The group's committed offset for any partition (`None` if it committed nothing, or
    /// only to a deleted topic of the same name).
    pub fn committed(&self, tp: &TopicPartition) -> Option<u64> {
        self.wharf.shared.committed_offset(&self.group, tp)
    }

    /// Entries this consumer keeps to track its deliveries (feature `test-util`), summed over
    /// its partitions: offsets acknowledged above the lowest pending one, offsets delivered or
    /// due again, and one per batch delivered. At most twice `max_in_flight`.
    #[cfg(feature = "test-util")]
    pub fn tracked_entries(&self) -> usize {
        self.held.iter().map(|h| h.cursor.tracked_entries()).sum()
    }

    /// The partitions this consumer holds now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        let mut tps: Vec<TopicPartition> = self.held.iter().map(|h| h.cursor.tp.clone()).collect();
        tps.sort();
        tps
    }

    /// Stops delivering new records of these partitions (redeliveries continue).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotAssigned`].
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.set_paused(partitions, true)
    }

    /// Undoes [`Consumer::pause`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotAssigned`].
    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.set_paused(partitions, false)
    }

    fn set_paused(&mut self, partitions: &[TopicPartition], paused: bool) -> Result<()> {
        for tp in partitions {
            self.held(tp)?;
        }
        for tp in partitions {
            self.held_mut(tp)?.paused = paused;
        }
        Ok(())
    }

    /// Lag of every held partition.
    pub fn lag(&self) -> Vec<PartitionLag> {
        let mut lags: Vec<PartitionLag> = self
            .held
            .iter()
            .map(|h| {
                lag_of(
                    &h.cursor.tp,
                    &h.cursor.log,
                    self.group
                        .offsets
                        .committed(&h.cursor.tp, h.cursor.incarnation),
                )
            })
            .collect();
        lags.sort_by(|a, b| a.partition.cmp(&b.partition));
        lags
    }

    /// Commits the acknowledged progress (everything delivered, with `CommitPolicy::Auto`)
    /// and leaves the group.
    ///
    /// # Errors
    ///
    /// The final commit's error; the consumer leaves the group anyway.
    pub fn close(mut self) -> Result<()> {
        self.leave()
    }

    fn leave(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.left, true) {
            return Ok(());
        }
        let result = if self.wharf.shared.is_closed() {
            Ok(())
        } else if matches!(self.options.commit, CommitPolicy::Auto { .. }) {
            self.commit_with(true, Cursor::settle_all)
        } else {
            self.commit_with(true, Cursor::low)
        };
        let tps: Vec<TopicPartition> = self.held.iter().map(|h| h.cursor.tp.clone()).collect();
        for tp in &tps {
            self.unhold(tp);
        }
        if let Some(member) = &self.member {
            self.group
                .membership
                .leave(member, &self.wharf.shared.partition_counts());
        }
        self.group
            .consumers
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        result
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Best effort: what is not committed is delivered again, which is always safe.
        let _left = self.leave();
    }
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("group", &self.group.name)
            .field("member", &self.member)
            .field("assignment", &self.assignment())
            .finish_non_exhaustive()
    }
}

/// Interrupts a consumer's poll ([`Consumer::interrupter`]).
#[derive(Debug, Clone)]
pub(crate) struct Interrupter {
    flag: Arc<AtomicBool>,
    signal: Arc<Signal>,
}

impl Interrupter {
    pub(crate) fn interrupt(&self) {
        self.flag.store(true, Ordering::Release);
        self.signal.notify();
    }
}

/// A commit of `offset` in `cursor`'s partition, against the topic incarnation it reads.
fn entry(cursor: &Cursor, offset: u64) -> (TopicPartition, Committed) {
    let committed = Committed {
        incarnation: cursor.incarnation,
        offset,
    };
    (cursor.tp.clone(), committed)
}

fn not_assigned(tp: &TopicPartition) -> Error {
    ErrorKind::NotAssigned {
        topic: tp.topic.clone(),
        partition: tp.partition,
    }
    .into()
}

/// The lag of `tp` given its log and the group's committed offset.
pub(crate) fn lag_of(
    tp: &TopicPartition,
    log: &PartitionLog,
    committed: Option<u64>,
) -> PartitionLag {
    let end_offset = log.next_offset();
    let from = committed.unwrap_or_else(|| log.start_offset());
    PartitionLag {
        partition: tp.clone(),
        end_offset,
        committed,
        lag: end_offset.saturating_sub(from),
    }
}
