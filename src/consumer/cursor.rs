//! A consumer's place in one partition, shared with the deliveries it handed out (which may be
//! acknowledged from any thread, in any order).
//!
//! Offsets below `position` were delivered. Each is either *settled* (acknowledged, or
//! covered by a commit) or *pending*. `low` is the lowest pending offset (`position` when
//! none is): the offset a commit of the acknowledged progress stores, so the committed offset
//! never passes a record that was not dealt with. Settled offsets above `low` are kept in a
//! set until `low` reaches them.
//!
//! Deliveries are tracked cheaply in *windows* (one per batch handed out, with one deadline);
//! when a window's `ack_wait` runs out, its offsets still pending are delivered again, each
//! then tracked on its own with its attempt number. The epoch changes when the partition is
//! revoked or repositioned: acknowledgements of deliveries from an older epoch are refused.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::error::{ErrorKind, Result};
use crate::log::PartitionLog;
use crate::topic::{Incarnation, TopicPartition};

/// One partition as one consumer consumes it.
#[derive(Debug)]
pub(crate) struct Cursor {
    pub tp: TopicPartition,
    /// The incarnation of the topic `log` belongs to: what the cursor's commits carry.
    pub incarnation: Incarnation,
    pub log: Arc<PartitionLog>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    epoch: u64,
    revoked: bool,
    position: u64,
    low: u64,
    settled_above: BTreeSet<u64>,
    /// First deliveries: `[start, end)` handed out together, due again at the deadline.
    windows: VecDeque<(u64, u64, Instant)>,
    /// Offsets delivered again: deadline and attempt of the latest delivery.
    redelivered: BTreeMap<u64, (Instant, u32)>,
    /// Offsets whose deadline passed: to deliver again, with the attempt number they get.
    due: BTreeMap<u64, u32>,
}

impl Cursor {
    /// A cursor whose next delivery is `position`, in `log` of the topic's `incarnation`.
    pub(crate) fn new(
        tp: TopicPartition,
        incarnation: Incarnation,
        log: Arc<PartitionLog>,
        position: u64,
    ) -> Self {
        Cursor {
            tp,
            incarnation,
            log,
            state: Mutex::new(State {
                epoch: 0,
                revoked: false,
                position,
                low: position,
                settled_above: BTreeSet::new(),
                windows: VecDeque::new(),
                redelivered: BTreeMap::new(),
                due: BTreeMap::new(),
            }),
        }
    }

    /// The epoch deliveries made now belong to.
    pub(crate) fn epoch(&self) -> u64 {
        self.state.lock().epoch
    }

    /// The next offset to deliver for the first time.
    pub(crate) fn position(&self) -> u64 {
        self.state.lock().position
    }

    /// Deliveries out and not settled.
    pub(crate) fn in_flight(&self) -> u64 {
        let st = self.state.lock();
        (st.position - st.low) - st.settled_above.len() as u64
    }

    /// Records that `[start, end)` were just delivered for the first time, due at `deadline`.
    pub(crate) fn delivered(&self, start: u64, end: u64, deadline: Instant) {
        let mut st = self.state.lock();
        debug_assert_eq!(start, st.position);
        st.position = end;
        st.windows.push_back((start, end, deadline));
    }

    /// The next offset to deliver again (deadline passed, still pending) and its attempt
    /// number; marks it delivered again until `next_deadline`.
    pub(crate) fn take_due(&self, now: Instant, next_deadline: Instant) -> Option<(u64, u32)> {
        let mut st = self.state.lock();
        st.expire(now);
        let (&offset, &attempt) = st.due.iter().next()?;
        st.due.remove(&offset);
        st.redelivered.insert(offset, (next_deadline, attempt));
        Some((offset, attempt))
    }

    /// The earliest deadline of a pending delivery, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let st = self.state.lock();
        if !st.due.is_empty() {
            return Some(Instant::now());
        }
        let window = st
            .windows
            .iter()
            .find(|(_, end, _)| *end > st.low)
            .map(|w| w.2);
        let single = st.redelivered.values().map(|r| r.0).min();
        window.into_iter().chain(single).min()
    }

    /// Settles `offset` (a delivery of `epoch` was acknowledged).
    /// Fails with `Revoked` if deliveries of `epoch` no longer count.
    pub(crate) fn check(&self, epoch: u64) -> Result<()> {
        let st = self.state.lock();
        if st.revoked || st.epoch != epoch {
            return Err(self.revoked());
        }
        Ok(())
    }

    pub(crate) fn ack(&self, offset: u64, epoch: u64) -> Result<()> {
        let mut st = self.state.lock();
        if st.revoked || st.epoch != epoch {
            return Err(self.revoked());
        }
        if offset >= st.low && offset < st.position {
            st.settled_above.insert(offset);
            st.redelivered.remove(&offset);
            st.due.remove(&offset);
            st.advance_low();
        }
        Ok(())
    }

    /// Settles everything delivered; returns the offset to commit (the position).
    pub(crate) fn settle_all(&self) -> u64 {
        let mut st = self.state.lock();
        st.low = st.position;
        st.clear_pending();
        st.low
    }

    /// Settles every delivered offset below `end`; returns the offset to commit.
    pub(crate) fn settle_below(&self, end: u64) -> u64 {
        let mut st = self.state.lock();
        if end > st.low {
            st.low = end.min(st.position);
            let low = st.low;
            st.settled_above.retain(|&o| o >= low);
            st.redelivered.retain(|&o, _| o >= low);
            st.due.retain(|&o, _| o >= low);
            st.advance_low();
        }
        st.low
    }

    /// The lowest pending offset: what a commit of the acknowledged progress stores.
    pub(crate) fn low(&self) -> u64 {
        self.state.lock().low
    }

    /// Moves the position; deliveries made before no longer count (their epoch is over).
    pub(crate) fn reposition(&self, position: u64) {
        let mut st = self.state.lock();
        st.epoch += 1;
        st.position = position;
        st.low = position;
        st.clear_pending();
    }

    /// The partition was taken away: later acknowledgements of its deliveries are refused.
    pub(crate) fn revoke(&self) {
        let mut st = self.state.lock();
        st.revoked = true;
        st.epoch += 1;
    }

    fn revoked(&self) -> crate::Error {
        ErrorKind::Revoked {
            topic: self.tp.topic.clone(),
            partition: self.tp.partition,
        }
        .into()
    }
}

impl State {
    fn advance_low(&mut self) {
        while self.settled_above.remove(&self.low) {
            self.low += 1;
        }
        let low = self.low;
        while self.windows.front().is_some_and(|w| w.1 <= low) {
            self.windows.pop_front();
        }
    }

    fn clear_pending(&mut self) {
        self.settled_above.clear();
        self.windows.clear();
        self.redelivered.clear();
        self.due.clear();
    }

    fn is_pending(&self, offset: u64) -> bool {
        offset >= self.low && offset < self.position && !self.settled_above.contains(&offset)
    }

    /// Moves offsets whose deadline passed into `due`.
    fn expire(&mut self, now: Instant) {
        while let Some(&(start, end, deadline)) = self.windows.front() {
            if deadline > now {
                break;
            }
            self.windows.pop_front();
            for offset in start.max(self.low)..end {
                if self.is_pending(offset) && !self.redelivered.contains_key(&offset) {
                    self.due.insert(offset, 2);
                }
            }
        }
        let expired: Vec<(u64, u32)> = self
            .redelivered
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now)
            .map(|(&offset, &(_, attempt))| (offset, attempt))
            .collect();
        for (offset, attempt) in expired {
            self.redelivered.remove(&offset);
            if self.is_pending(offset) {
                self.due.insert(offset, attempt.saturating_add(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TopicConfig, Wharf};
    use std::time::Duration;

    fn cursor() -> (tempfile::TempDir, Wharf, Cursor) {
        let dir = tempfile::tempdir().expect("tempdir");
        let wharf = Wharf::open(dir.path()).expect("open");
        wharf
            .create_topic("t", TopicConfig::default())
            .expect("topic");
        let log = wharf.partition_log("t", 0).expect("partition");
        (
            dir,
            wharf,
            Cursor::new(
                TopicPartition::new("t", 0),
                Incarnation::new_unique(),
                log,
                10,
            ),
        )
    }

    #[test]
    fn out_of_order_acks_move_the_low_mark_only_when_contiguous() {
        let (_dir, _wharf, c) = cursor();
        let deadline = Instant::now() + Duration::from_secs(60);
        c.delivered(10, 15, deadline);
        let epoch = c.epoch();
        assert_eq!(c.in_flight(), 5);
        c.ack(12, epoch).expect("ack");
        c.ack(11, epoch).expect("ack");
        assert_eq!(c.low(), 10, "10 is still pending");
        c.ack(10, epoch).expect("ack");
        assert_eq!(c.low(), 13);
        c.ack(14, epoch).expect("ack");
        assert_eq!(c.low(), 13);
        assert_eq!(c.in_flight(), 1);
        c.ack(13, epoch).expect("ack");
        assert_eq!(c.low(), 15);
        c.ack(13, epoch).expect("a second ack is harmless");
    }

    #[test]
    fn pending_deliveries_come_back_after_the_deadline_with_a_higher_attempt() {
        let (_dir, _wharf, c) = cursor();
        let start = Instant::now();
        c.delivered(10, 13, start);
        c.ack(11, c.epoch()).expect("ack");
        let later = start + Duration::from_secs(1);
        assert_eq!(c.take_due(start, later), Some((10, 2)));
        assert_eq!(c.take_due(start, later), Some((12, 2)));
        assert_eq!(c.take_due(start, later), None, "11 was settled");
        assert_eq!(
            c.take_due(later, later),
            Some((10, 3)),
            "its second delivery expired too"
        );
        c.ack(12, c.epoch()).expect("ack");
        let much_later = later + Duration::from_secs(5);
        let next = much_later + Duration::from_secs(5);
        assert_eq!(c.take_due(much_later, next), Some((10, 4)));
        assert_eq!(
            c.take_due(much_later, next),
            None,
            "due again only after its new deadline"
        );
    }

    #[test]
    fn commits_settle_and_revocation_refuses_late_acks() {
        let (_dir, _wharf, c) = cursor();
        c.delivered(10, 20, Instant::now());
        let epoch = c.epoch();
        assert_eq!(c.settle_below(15), 15);
        assert_eq!(
            c.take_due(Instant::now(), Instant::now()).map(|d| d.0),
            Some(15)
        );
        assert_eq!(c.settle_all(), 20);
        assert_eq!(c.in_flight(), 0);
        c.revoke();
        let err = c.ack(19, epoch).expect_err("revoked");
        assert!(matches!(
            err.kind(),
            ErrorKind::Revoked { partition: 0, .. }
        ));
    }
}
