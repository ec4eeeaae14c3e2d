//! A consumer's place in one partition, shared with the deliveries it handed out (which may be
//! acknowledged from any thread, in any order).
//!
//! Offsets below `position` were delivered. Each is either *settled* (acknowledged,
//! dead-lettered, or covered by a commit) or *pending*. `low` is the lowest pending offset
//! (`position` when none is): the offset a commit of the acknowledged progress stores, so the
//! committed offset never passes a record that was not dealt with. Settled offsets above `low`
//! are kept in a set until `low` reaches them.
//!
//! Deliveries are tracked cheaply in *windows* (one per batch handed out, with one deadline);
//! the consumer's `ack_wait` is fixed, so windows are in deadline order too. When a window's
//! deadline passes, its offsets still pending become *due*; each one delivered again is then
//! tracked on its own, with the deadline and attempt number of its latest delivery, by offset
//! and in a set ordered by deadline. So taking the next due offset, acknowledging, and finding
//! the next deadline cost O(log n) in the offsets tracked, and an expiry O(log n) per offset
//! that expires: nothing walks all deliveries.
//!
//! Invariants: every offset in `settled_above`, `redelivered` and `due` is in
//! `[low, position)`, and no offset is in two of them; `deadlines` holds exactly one entry per
//! entry of `redelivered`; every window ends above `low`. So the cursor tracks at most
//! `position - low` offsets and as many windows, a span the consumer keeps within its
//! `max_in_flight`. The epoch changes when the partition is revoked or repositioned:
//! acknowledgements of deliveries from an older epoch are refused.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::error::{ErrorKind, Result};
use crate::log::{PartitionLog, Signal};
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

/// Offsets `[start, end)` delivered for the first time together, due again at `deadline`.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: u64,
    end: u64,
    deadline: Instant,
}

/// The latest delivery of an offset delivered again.
#[derive(Debug, Clone, Copy)]
struct Redelivery {
    deadline: Instant,
    attempt: u32,
}

#[derive(Debug)]
struct State {
    epoch: u64,
    revoked: bool,
    position: u64,
    low: u64,
    settled_above: BTreeSet<u64>,
    /// First deliveries, in delivery (and deadline) order.
    windows: VecDeque<Window>,
    /// Offsets delivered again, by offset.
    redelivered: BTreeMap<u64, Redelivery>,
    /// The same offsets, by deadline.
    deadlines: BTreeSet<(Instant, u64)>,
    /// Offsets whose deadline passed: to deliver again, with the attempt number they get.
    due: BTreeMap<u64, u32>,
    /// Notified when `low` moves (a consumer that reached its `max_in_flight` waits on it).
    waiter: Option<Arc<Signal>>,
    /// Entries looked at by expiries and deadline lookups (for the complexity test).
    #[cfg(test)]
    examined: std::cell::Cell<u64>,
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
                deadlines: BTreeSet::new(),
                due: BTreeMap::new(),
                waiter: None,
                #[cfg(test)]
                examined: std::cell::Cell::new(0),
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

    /// `position - low`: the offsets from the lowest pending one up to the position, which
    /// bounds what the cursor tracks (what `max_in_flight` limits).
    pub(crate) fn span(&self) -> u64 {
        let st = self.state.lock();
        st.position - st.low
    }

    /// Deliveries out and not settled.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> u64 {
        let st = self.state.lock();
        (st.position - st.low) - st.settled_above.len() as u64
    }

    /// Entries the cursor holds: offsets tracked one by one (settled above `low`, delivered
    /// again, due again) and windows. At most twice the span.
    #[cfg(feature = "test-util")]
    pub(crate) fn tracked_entries(&self) -> usize {
        let st = self.state.lock();
        st.settled_above.len() + st.redelivered.len() + st.due.len() + st.windows.len()
    }

    /// Records that `[start, end)` were just delivered for the first time, due at `deadline`.
    pub(crate) fn delivered(&self, start: u64, end: u64, deadline: Instant) {
        let mut st = self.state.lock();
        debug_assert_eq!(start, st.position);
        debug_assert!(
            st.windows.back().is_none_or(|w| w.deadline <= deadline),
            "windows are in deadline order"
        );
        st.position = end;
        st.windows.push_back(Window {
            start,
            end,
            deadline,
        });
    }

    /// The next offset to deliver again (deadline passed, still pending) and its attempt
    /// number; marks it delivered again until `next_deadline`.
    pub(crate) fn take_due(&self, now: Instant, next_deadline: Instant) -> Option<(u64, u32)> {
        let mut st = self.state.lock();
        st.expire(now);
        let (offset, attempt) = st.due.pop_first()?;
        st.redelivered.insert(
            offset,
            Redelivery {
                deadline: next_deadline,
                attempt,
            },
        );
        st.deadlines.insert((next_deadline, offset));
        Some((offset, attempt))
    }

    /// The earliest deadline of a pending delivery, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let st = self.state.lock();
        #[cfg(test)]
        st.look();
        if !st.due.is_empty() {
            return Some(Instant::now());
        }
        let window = st.windows.front().map(|w| w.deadline);
        let single = st.deadlines.first().map(|d| d.0);
        window.into_iter().chain(single).min()
    }

    /// Fails with `Revoked` if deliveries of `epoch` no longer count.
    pub(crate) fn check(&self, epoch: u64) -> Result<()> {
        let st = self.state.lock();
        if st.revoked || st.epoch != epoch {
            return Err(self.revoked());
        }
        Ok(())
    }

    /// Settles `offset` (a delivery of `epoch` was acknowledged).
    /// Fails with `Revoked` if deliveries of `epoch` no longer count.
    pub(crate) fn ack(&self, offset: u64, epoch: u64) -> Result<()> {
        let mut st = self.state.lock();
        if st.revoked || st.epoch != epoch {
            return Err(self.revoked());
        }
        if offset >= st.low && offset < st.position && st.settled_above.insert(offset) {
            st.forget_redelivery(offset);
            st.due.remove(&offset);
            let low = st.low;
            st.advance_low();
            if st.low != low {
                if let Some(waiter) = st.waiter.take() {
                    waiter.notify();
                }
            }
        }
        Ok(())
    }

    /// Notifies `signal` when `low` next moves by an acknowledgement; returns the span now.
    /// Undone by [`Cursor::unwatch_low`].
    pub(crate) fn watch_low(&self, signal: &Arc<Signal>) -> u64 {
        let mut st = self.state.lock();
        st.waiter = Some(Arc::clone(signal));
        st.position - st.low
    }

    /// Undoes [`Cursor::watch_low`].
    pub(crate) fn unwatch_low(&self) {
        self.state.lock().waiter = None;
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
            st.drop_below_low();
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
    /// Counts one entry looked at.
    #[cfg(test)]
    fn look(&self) {
        self.examined.set(self.examined.get() + 1);
    }

    /// Moves `low` over the settled offsets above it, and drops the windows below it.
    fn advance_low(&mut self) {
        while self.settled_above.remove(&self.low) {
            self.low += 1;
        }
        let low = self.low;
        while self.windows.front().is_some_and(|w| w.end <= low) {
            self.windows.pop_front();
        }
    }

    /// Forgets what is tracked below `low` (which was just raised).
    fn drop_below_low(&mut self) {
        let low = self.low;
        self.settled_above = self.settled_above.split_off(&low);
        self.due = self.due.split_off(&low);
        let above = self.redelivered.split_off(&low);
        for (offset, r) in std::mem::replace(&mut self.redelivered, above) {
            self.deadlines.remove(&(r.deadline, offset));
        }
    }

    fn forget_redelivery(&mut self, offset: u64) {
        if let Some(r) = self.redelivered.remove(&offset) {
            self.deadlines.remove(&(r.deadline, offset));
        }
    }

    fn clear_pending(&mut self) {
        self.settled_above.clear();
        self.windows.clear();
        self.redelivered.clear();
        self.deadlines.clear();
        self.due.clear();
    }

    fn is_pending(&self, offset: u64) -> bool {
        offset >= self.low && offset < self.position && !self.settled_above.contains(&offset)
    }

    /// Moves offsets whose deadline passed into `due`: the windows at the front, then the
    /// earliest redeliveries. Looks only at what expires.
    fn expire(&mut self, now: Instant) {
        while self.windows.front().is_some_and(|w| w.deadline <= now) {
            let Some(w) = self.windows.pop_front() else {
                break;
            };
            for offset in w.start.max(self.low)..w.end {
                #[cfg(test)]
                self.look();
                // A window's offsets are delivered again only after it expired.
                debug_assert!(!self.redelivered.contains_key(&offset));
                if self.is_pending(offset) {
                    self.due.insert(offset, 2);
                }
            }
        }
        while self.deadlines.first().is_some_and(|d| d.0 <= now) {
            let Some((_, offset)) = self.deadlines.pop_first() else {
                break;
            };
            #[cfg(test)]
            self.look();
            if let Some(r) = self.redelivered.remove(&offset) {
                self.due.insert(offset, r.attempt.saturating_add(1));
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

    /// 10,000 deliveries in flight expire at once, twice: each comes back exactly once per
    /// expiry, and the work done is linear in their number (entries looked at by the expiry
    /// and the deadline lookups, which a consumer's poll makes once per redelivery).
    #[test]
    fn ten_thousand_expired_deliveries_come_back_once_each_in_linear_work() {
        const N: u64 = 10_000;
        let (_dir, _wharf, c) = cursor();
        let start = Instant::now();
        for window in 0..N / 500 {
            c.delivered(10 + window * 500, 10 + (window + 1) * 500, start);
        }
        let later = start + Duration::from_secs(1);
        let much_later = later + Duration::from_secs(1);
        for (now, next, attempt) in [(start, later, 2), (later, much_later, 3)] {
            let mut back = Vec::new();
            while let Some((offset, got)) = c.take_due(now, next) {
                assert_eq!(got, attempt, "offset {offset}");
                back.push(offset);
                assert!(c.next_deadline().is_some());
            }
            assert_eq!(
                back,
                (10..10 + N).collect::<Vec<u64>>(),
                "each once, in order"
            );
        }
        let examined = c.state.lock().examined.get();
        assert!(
            examined <= 4 * 2 * N,
            "{examined} entries looked at for {} redeliveries",
            2 * N
        );
    }

    #[test]
    fn a_commit_forgets_the_redeliveries_below_it() {
        let (_dir, _wharf, c) = cursor();
        let start = Instant::now();
        let later = start + Duration::from_secs(1);
        c.delivered(10, 20, start);
        for offset in 10..15 {
            assert_eq!(c.take_due(start, later), Some((offset, 2)));
        }
        assert_eq!(c.settle_below(12), 12);
        assert_eq!(c.span(), 8);
        for offset in 15..20 {
            assert_eq!(c.take_due(start, later), Some((offset, 2)));
        }
        assert_eq!(c.next_deadline(), Some(later), "10 and 11 are forgotten");
        let mut back = Vec::new();
        while let Some(due) = c.take_due(later, later + Duration::from_secs(1)) {
            back.push(due);
        }
        assert_eq!(back, (12..20).map(|o| (o, 3)).collect::<Vec<_>>());
    }

    #[test]
    fn an_ack_that_moves_the_low_mark_notifies_the_watcher_once() {
        let (_dir, _wharf, c) = cursor();
        c.delivered(10, 13, Instant::now() + Duration::from_secs(60));
        let signal = Arc::new(Signal::default());
        assert_eq!(c.watch_low(&signal), 3);
        c.ack(11, c.epoch()).expect("ack");
        assert!(
            !signal.wait_until(Instant::now()),
            "10 is pending: no room made"
        );
        c.ack(10, c.epoch()).expect("ack");
        assert!(
            signal.wait_until(Instant::now()),
            "the low mark moved to 12"
        );
        c.ack(12, c.epoch()).expect("ack");
        assert!(
            !signal.wait_until(Instant::now()),
            "notified once per watch"
        );
        assert_eq!(c.span(), 0);
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
