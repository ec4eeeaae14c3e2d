//! A consumer group's members in this process: who subscribes to what, who should own which
//! partition (the assignment), who actually holds it, and the hand-over between them.
//!
//! A rebalance (a member joins or leaves) computes a new *target* assignment with the group's
//! [`Assignor`] and bumps the generation. Each member applies it at its next poll: it first
//! releases the partitions it lost (running its on-revoke hook, so it can commit), then
//! acquires the ones it gained. A partition is acquired only once its previous holder has
//! released it (or left the group, or kept it past the rebalance timeout after losing it), so
//! two members never consume one partition at once, and whatever the previous holder did not
//! commit is delivered again to the new one (at-least-once).
//!
//! Commits are fenced: a group member may commit a partition only while it holds it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::assignment::{self, Assignment, Assignor, MemberSubscription};
use crate::log::Signal;
use crate::topic::TopicPartition;

/// The in-process state of one consumer group.
#[derive(Debug, Default)]
pub(crate) struct Membership {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    next_member: u64,
    assignor: Assignor,
    members: BTreeMap<String, Member>,
    /// Who currently consumes each partition.
    holders: HashMap<TopicPartition, String>,
    /// Partitions whose holder lost them in a rebalance, and since when.
    revoked_since: HashMap<TopicPartition, Instant>,
}

#[derive(Debug)]
struct Member {
    topics: BTreeSet<String>,
    target: Vec<TopicPartition>,
    signal: Arc<Signal>,
}

impl Membership {
    /// Adds a member subscribed to `topics` and rebalances; returns its id. The first member's
    /// assignor is the group's.
    pub(crate) fn join(
        &self,
        topics: BTreeSet<String>,
        assignor: Assignor,
        signal: Arc<Signal>,
        partitions: &BTreeMap<String, u32>,
    ) -> String {
        let mut st = self.state.lock();
        if st.members.is_empty() {
            st.assignor = assignor;
        }
        st.next_member += 1;
        let id = format!("member-{:06}", st.next_member);
        st.members.insert(
            id.clone(),
            Member {
                topics,
                target: Vec::new(),
                signal,
            },
        );
        st.rebalance(partitions);
        id
    }

    /// Removes a member (closed or dropped), releases what it held and rebalances.
    pub(crate) fn leave(&self, id: &str, partitions: &BTreeMap<String, u32>) {
        let mut st = self.state.lock();
        if st.members.remove(id).is_none() {
            return;
        }
        st.holders.retain(|_, holder| holder != id);
        st.rebalance(partitions);
    }

    /// The generation and the partitions `id` should own.
    pub(crate) fn target(&self, id: &str) -> (u64, Vec<TopicPartition>) {
        let st = self.state.lock();
        let target = st
            .members
            .get(id)
            .map(|m| m.target.clone())
            .unwrap_or_default();
        (st.generation, target)
    }

    /// The current generation (changes on every rebalance).
    pub(crate) fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    /// Takes `tp` for `id` if nobody else holds it, or its holder lost it more than
    /// `timeout` ago (it is then fenced out). Returns whether `id` holds it now.
    pub(crate) fn acquire(&self, id: &str, tp: &TopicPartition, timeout: Duration) -> bool {
        let mut st = self.state.lock();
        let targeted = st.members.get(id).is_some_and(|m| m.target.contains(tp));
        if !targeted {
            return false;
        }
        let free = match st.holders.get(tp) {
            None => true,
            Some(holder) if holder == id => true,
            Some(_) => st
                .revoked_since
                .get(tp)
                .is_some_and(|since| since.elapsed() >= timeout),
        };
        if free {
            st.holders.insert(tp.clone(), id.to_owned());
            st.revoked_since.remove(tp);
        }
        free
    }

    /// When `id` may take `tp` at the latest: now if nobody holds it, else when its holder's
    /// time to let go runs out; `None` if `tp` is not `id`'s to take.
    pub(crate) fn takeover_at(
        &self,
        id: &str,
        tp: &TopicPartition,
        timeout: Duration,
    ) -> Option<Instant> {
        let st = self.state.lock();
        if !st.members.get(id).is_some_and(|m| m.target.contains(tp)) {
            return None;
        }
        match st.holders.get(tp) {
            None => Some(Instant::now()),
            Some(holder) if holder == id => Some(Instant::now()),
            Some(_) => st.revoked_since.get(tp).map(|since| *since + timeout),
        }
    }

    /// Gives `tp` up (if `id` holds it) and wakes the members, one of which may be waiting
    /// for it.
    pub(crate) fn release(&self, id: &str, tp: &TopicPartition) {
        let mut st = self.state.lock();
        if st.holders.get(tp).is_some_and(|holder| holder == id) {
            st.holders.remove(tp);
            st.notify_all();
        }
    }

    /// Whether `id` holds `tp`.
    #[cfg(test)]
    pub(crate) fn holds(&self, id: &str, tp: &TopicPartition) -> bool {
        self.state
            .lock()
            .holders
            .get(tp)
            .is_some_and(|holder| holder == id)
    }

    /// Runs `f` while `id` is known to hold every partition in `tps` (the check and `f` are
    /// one critical section, so a rebalance cannot move a partition in between); returns the
    /// first partition `id` does not hold instead.
    pub(crate) fn while_holding<'a, R>(
        &self,
        id: &str,
        tps: impl IntoIterator<Item = &'a TopicPartition>,
        f: impl FnOnce() -> R,
    ) -> Result<R, TopicPartition> {
        let st = self.state.lock();
        for tp in tps {
            if st.holders.get(tp).is_none_or(|holder| holder != id) {
                return Err(tp.clone());
            }
        }
        Ok(f())
    }

    /// Whether the group has members.
    pub(crate) fn is_active(&self) -> bool {
        !self.state.lock().members.is_empty()
    }

    /// Rebalances if a member subscribes to `topic`, which was just created.
    pub(crate) fn topic_created(&self, topic: &str, partitions: &BTreeMap<String, u32>) {
        let mut st = self.state.lock();
        if st.members.values().any(|m| m.topics.contains(topic)) {
            st.rebalance(partitions);
        }
    }

    /// Recomputes the assignment after topics changed (a topic was deleted).
    pub(crate) fn refresh(&self, partitions: &BTreeMap<String, u32>) {
        let mut st = self.state.lock();
        if !st.members.is_empty() {
            st.rebalance(partitions);
        }
    }

    /// The members: id, subscribed topics, target assignment.
    pub(crate) fn describe(&self) -> Vec<(String, Vec<String>, Vec<TopicPartition>)> {
        let st = self.state.lock();
        st.members
            .iter()
            .map(|(id, m)| {
                (
                    id.clone(),
                    m.topics.iter().cloned().collect(),
                    m.target.clone(),
                )
            })
            .collect()
    }

    /// Who holds `tp`, if anyone.
    pub(crate) fn holder(&self, tp: &TopicPartition) -> Option<String> {
        self.state.lock().holders.get(tp).cloned()
    }
}

impl State {
    fn rebalance(&mut self, partitions: &BTreeMap<String, u32>) {
        let members: Vec<MemberSubscription> = self
            .members
            .iter()
            .map(|(id, m)| MemberSubscription {
                id: id.clone(),
                topics: m.topics.clone(),
            })
            .collect();
        let previous: Assignment = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.target.clone()))
            .collect();
        let next = assignment::assign(self.assignor, &members, partitions, &previous);
        let now = Instant::now();
        for (id, member) in &mut self.members {
            member.target = next.get(id).cloned().unwrap_or_default();
        }
        for (tp, holder) in &self.holders {
            let keeps = self
                .members
                .get(holder)
                .is_some_and(|m| m.target.contains(tp));
            if !keeps {
                self.revoked_since.entry(tp.clone()).or_insert(now);
            }
        }
        self.revoked_since
            .retain(|tp, _| self.holders.contains_key(tp));
        self.generation += 1;
        self.notify_all();
    }

    fn notify_all(&self) {
        for member in self.members.values() {
            member.signal.notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_partition_moves_only_after_its_holder_releases_it() {
        let group = Membership::default();
        let partitions: BTreeMap<String, u32> = [("t".to_owned(), 2)].into();
        let a = group.join(topics(&["t"]), Assignor::Range, Arc::default(), &partitions);
        let (_, target) = group.target(&a);
        assert_eq!(target.len(), 2);
        for tp in &target {
            assert!(group.acquire(&a, tp, Duration::from_secs(60)));
        }
        let b = group.join(topics(&["t"]), Assignor::Range, Arc::default(), &partitions);
        let (_, b_target) = group.target(&b);
        assert_eq!(b_target.len(), 1);
        let moved = &b_target[0];
        assert!(
            !group.acquire(&b, moved, Duration::from_secs(60)),
            "a still holds it"
        );
        assert!(group.holds(&a, moved));
        group.release(&a, moved);
        assert!(group.acquire(&b, moved, Duration::from_secs(60)));
        assert!(!group.holds(&a, moved), "a is fenced out");
    }

    #[test]
    fn a_holder_that_never_lets_go_is_fenced_after_the_timeout() {
        let group = Membership::default();
        let partitions: BTreeMap<String, u32> = [("t".to_owned(), 1)].into();
        let a = group.join(topics(&["t"]), Assignor::Range, Arc::default(), &partitions);
        let tp = TopicPartition::new("t", 0);
        assert!(group.acquire(&a, &tp, Duration::ZERO));
        group.leave(&a, &partitions);
        let b = group.join(topics(&["t"]), Assignor::Range, Arc::default(), &partitions);
        assert!(
            group.acquire(&b, &tp, Duration::from_secs(60)),
            "a left: released"
        );
        let c = group.join(topics(&["t"]), Assignor::Range, Arc::default(), &partitions);
        group.leave(&b, &partitions);
        // b left, c gets the partition at once.
        assert!(group.acquire(&c, &tp, Duration::from_secs(60)));
        let d = group.join(topics(&["t"]), Assignor::Range, Arc::default(), &partitions);
        let (_, d_target) = group.target(&d);
        if d_target.contains(&tp) {
            assert!(!group.acquire(&d, &tp, Duration::from_secs(60)));
            assert!(
                group.acquire(&d, &tp, Duration::ZERO),
                "fenced after the timeout"
            );
            assert!(!group.holds(&c, &tp));
        }
    }
}
