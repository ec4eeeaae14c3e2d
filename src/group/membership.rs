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
//! # Commit fences
//!
//! A group member may commit a partition only while it holds it, and a member that lost a
//! partition must never have a commit of it land after a commit of the partition's next
//! holder. The membership lock is taken by every member's poll, so it guards only memory: no
//! file I/O and no lock of the offsets store is ever taken under it. The commit is fenced in
//! two places instead:
//!
//! - Each acquisition of a partition is a *holding* with a [`Fence`]: a number from a
//!   group-wide counter, so a partition's holdings have increasing fences in the order they
//!   were taken. A commit first collects, under the membership lock, the fence of each
//!   partition it names ([`Membership::fences`]); a member that does not hold one of them gets
//!   [`crate::ErrorKind::Revoked`] there, with nothing written.
//! - The offsets store orders the rest under its own lock, the one its appends take
//!   ([`super::offsets::OffsetStore`]). A new holder, before it reads where to start, raises
//!   the partition's fence in the store to its own ([`super::offsets::OffsetStore::take_over`]),
//!   in the same critical section as the read; an append carrying a lower fence for the
//!   partition is refused there (`Revoked`), with nothing written.
//!
//! Why that is enough: take the old holder's commit, fenced with `f`, and the new holder's
//! take-over, with `f' > f`. Both run under the store's lock, so one comes first. If the
//! commit does, the new holder reads its offset and starts there: the commit counts as made
//! before the hand-over. If the take-over does, the commit is refused. Every commit of the new
//! holder comes after its take-over (one thread), so no commit of the old holder lands after
//! it. A later holder has a higher fence still, and the store keeps the highest fence it was
//! shown, so an old holder stays refused however many hand-overs happen meanwhile. A commit
//! refused for one of its partitions writes none of them. Commits without a member (an
//! assigned consumer, the admin, the delay scheduler) carry no fences and are not fenced.
//!
//! Costs: a commit holds the membership lock only to look its fences up; the write, a
//! compaction and the group sync of the offsets file run outside it. A member that takes a
//! partition over waits (in the store's lock) for an append or a compaction in progress; a
//! poll that takes nothing over never touches the store.

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
    /// The fence the next acquisition gets.
    next_fence: u64,
    /// Who currently consumes each partition, and the fence of that holding.
    holders: HashMap<TopicPartition, Holding>,
    /// Partitions whose holder lost them in a rebalance, and since when.
    revoked_since: HashMap<TopicPartition, Instant>,
}

/// One member's hold on one partition.
#[derive(Debug, Clone)]
struct Holding {
    member: String,
    fence: Fence,
}

/// The fence of one holding of a partition: taken from a group-wide counter at the
/// acquisition, so a later holding of a partition has a higher fence. The offsets store
/// refuses a commit whose fence is below the highest one a holder took over with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Fence(u64);

#[cfg(test)]
impl Fence {
    /// The fence numbered `n` (the store's tests make their own).
    pub(crate) fn new(n: u64) -> Self {
        Fence(n)
    }
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
        st.holders.retain(|_, holding| holding.member != id);
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
    /// `timeout` ago (it is then fenced out). Returns the fence of `id`'s holding if `id`
    /// holds it now (the one it had, if it held it already). The caller takes the partition
    /// over in the offsets store with it before it reads where to start.
    pub(crate) fn acquire(
        &self,
        id: &str,
        tp: &TopicPartition,
        timeout: Duration,
    ) -> Option<Fence> {
        let mut st = self.state.lock();
        let targeted = st.members.get(id).is_some_and(|m| m.target.contains(tp));
        if !targeted {
            return None;
        }
        let free = match st.holders.get(tp) {
            None => true,
            Some(holding) if holding.member == id => return Some(holding.fence),
            Some(_) => st
                .revoked_since
                .get(tp)
                .is_some_and(|since| since.elapsed() >= timeout),
        };
        if !free {
            return None;
        }
        st.next_fence += 1;
        let fence = Fence(st.next_fence);
        let holding = Holding {
            member: id.to_owned(),
            fence,
        };
        st.holders.insert(tp.clone(), holding);
        st.revoked_since.remove(tp);
        Some(fence)
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
            Some(holding) if holding.member == id => Some(Instant::now()),
            Some(_) => st.revoked_since.get(tp).map(|since| *since + timeout),
        }
    }

    /// Gives `tp` up (if `id` holds it) and wakes the members, one of which may be waiting
    /// for it.
    pub(crate) fn release(&self, id: &str, tp: &TopicPartition) {
        let mut st = self.state.lock();
        if st
            .holders
            .get(tp)
            .is_some_and(|holding| holding.member == id)
        {
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
            .is_some_and(|holding| holding.member == id)
    }

    /// The fence of `id`'s holding of each partition in `tps`, for a commit of them (see the
    /// module docs); the first partition `id` does not hold instead. Memory only: the commit
    /// itself runs after the lock is let go, and the offsets store checks the fences.
    pub(crate) fn fences<'a>(
        &self,
        id: &str,
        tps: impl IntoIterator<Item = &'a TopicPartition>,
    ) -> Result<Vec<(TopicPartition, Fence)>, TopicPartition> {
        let st = self.state.lock();
        tps.into_iter()
            .map(|tp| match st.holders.get(tp) {
                Some(holding) if holding.member == id => Ok((tp.clone(), holding.fence)),
                _ => Err(tp.clone()),
            })
            .collect()
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
        self.state
            .lock()
            .holders
            .get(tp)
            .map(|holding| holding.member.clone())
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
        for (tp, holding) in &self.holders {
            let keeps = self
                .members
                .get(&holding.member)
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
            assert!(group.acquire(&a, tp, Duration::from_secs(60)).is_some());
        }
        let b = group.join(topics(&["t"]), Assignor::Range, Arc::default(), &partitions);
        let (_, b_target) = group.target(&b);
        assert_eq!(b_target.len(), 1);
        let moved = &b_target[0];
        assert!(
            group.acquire(&b, moved, Duration::from_secs(60)).is_none(),
            "a still holds it"
        );
        assert!(group.holds(&a, moved));
        group.release(&a, moved);
        assert!(group.acquire(&b, moved, Duration::from_secs(60)).is_some());
        assert!(!group.holds(&a, moved), "a is fenced out");
    }

    #[test]
    fn a_holder_that_never_lets_go_is_fenced_after_the_timeout() {
        let group = Membership::default();
        let partitions: BTreeMap<String, u32> = [("t".to_owned(), 1)].into();
        let a = group.join(topics(&["t"]), Assignor::Range, Arc::default(), &partitions);
        let tp = TopicPartition::new("t", 0);
        assert!(group.acquire(&a, &tp, Duration::ZERO).is_some());
        group.leave(&a, &partitions);
        let b = group.join(topics(&["t"]), Assignor::Range, Arc::default(), &partitions);
        assert!(
            group.acquire(&b, &tp, Duration::from_secs(60)).is_some(),
            "a left: released"
        );
        let c = group.join(topics(&["t"]), Assignor::Range, Arc::default(), &partitions);
        group.leave(&b, &partitions);
        // b left, c gets the partition at once.
        assert!(group.acquire(&c, &tp, Duration::from_secs(60)).is_some());
        let d = group.join(topics(&["t"]), Assignor::Range, Arc::default(), &partitions);
        let (_, d_target) = group.target(&d);
        if d_target.contains(&tp) {
            assert!(group.acquire(&d, &tp, Duration::from_secs(60)).is_none());
            assert!(
                group.acquire(&d, &tp, Duration::ZERO).is_some(),
                "fenced after the timeout"
            );
            assert!(!group.holds(&c, &tp));
        }
    }

    #[test]
    fn each_holding_gets_a_higher_fence_and_only_the_holder_gets_fences() {
        let group = Membership::default();
        let partitions: BTreeMap<String, u32> = [("t".to_owned(), 2)].into();
        let a = group.join(topics(&["t"]), Assignor::Range, Arc::default(), &partitions);
        let (_, target) = group.target(&a);
        let first: Vec<Fence> = target
            .iter()
            .map(|tp| group.acquire(&a, tp, Duration::ZERO).unwrap())
            .collect();
        assert!(first[0] < first[1]);
        assert_eq!(
            group.acquire(&a, &target[0], Duration::ZERO),
            Some(first[0]),
            "acquiring a partition it holds keeps the holding"
        );
        assert_eq!(
            group.fences(&a, &target),
            Ok(vec![
                (target[0].clone(), first[0]),
                (target[1].clone(), first[1])
            ])
        );
        // b takes one over after the timeout, without a letting go.
        let b = group.join(topics(&["t"]), Assignor::Range, Arc::default(), &partitions);
        let (_, b_target) = group.target(&b);
        let moved = &b_target[0];
        let taken = group.acquire(&b, moved, Duration::ZERO).unwrap();
        assert!(first.iter().all(|f| *f < taken));
        assert_eq!(group.fences(&a, &target), Err(moved.clone()));
        assert_eq!(group.fences(&b, [moved]), Ok(vec![(moved.clone(), taken)]));
        // A later holding of the same partition is higher still.
        group.release(&b, moved);
        group.leave(&b, &partitions);
        let again = group.acquire(&a, moved, Duration::ZERO).unwrap();
        assert!(again > taken);
    }
}
