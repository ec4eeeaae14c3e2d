//! Assignors: how a consumer group's partitions are spread over its members.
//!
//! [`assign`] is a pure function, run on every rebalance (a member joins or leaves): from the
//! members and the topics each subscribes to, the partition count of every existing topic and
//! the previous assignment, it computes which member reads which partition. The strategies are
//! Kafka's (`partition.assignment.strategy`):
//!
//! - **Range** ([`Assignor::Range`]): topic by topic, the partitions in order are cut into
//!   contiguous ranges, one per subscribing member in id order; the first `partitions % members`
//!   members get one more. Partition `i` of topics with the same partition count goes to the same
//!   member, but the first members take every topic's remainder, so many topics add up to an
//!   imbalance.
//! - **Round robin** ([`Assignor::RoundRobin`]): every partition of every subscribed topic, in
//!   (topic, partition) order, is dealt to the members in id order like cards, skipping a member
//!   that does not subscribe to the partition's topic. With identical subscriptions the members'
//!   partition counts differ by at most one.
//! - **Sticky** ([`Assignor::Sticky`]): balanced, and a rebalance leaves each partition with its
//!   previous owner unless balance requires moving it, so fewer partitions change hands and less
//!   uncommitted work is redelivered. Three steps: keep every previous claim that is still valid
//!   (the member exists and subscribes to the topic, the partition exists, no one claimed it
//!   first); give each unowned partition, those with the fewest possible owners first, to its
//!   least loaded subscriber; then, while a member holds a partition that a member with at least
//!   two fewer partitions subscribes to, move one such partition (preferring one that is not
//!   where it was before) from the most loaded member to the least loaded one. Each move lowers
//!   the sum of the squared counts, so the last step ends.
//!
//! *Balanced* is Kafka's `StickyAssignor` definition: whenever member A holds at least two
//! more partitions than member B, B subscribes to none of A's partitions' topics. With identical
//! subscriptions this means the counts differ by at most one.
//!
//! Every strategy guarantees that every member appears in the result (possibly with no
//! partitions); every partition of every existing topic that some member subscribes to is given
//! to exactly one member subscribing to its topic; each member's list is sorted; and the result
//! depends only on the input, never on hashing order or randomness, so anyone computing it gets
//! the same answer. Subscriptions to topics that do not exist are ignored.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use crate::topic::TopicPartition;

/// How a group's partitions are spread over its members (Kafka's
/// `partition.assignment.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(not(test), allow(dead_code))]
pub enum Assignor {
    /// Assigns partitions topic by topic. For each topic, the partitions in numeric order are
    /// divided into contiguous ranges over the members subscribing to it, in member id order;
    /// if they do not divide evenly, the first members get one extra partition each. With two
    /// members C0 and C1 and two topics of three partitions, C0 gets partitions 0 and 1 of both
    /// topics and C1 gets partition 2 of both. Kafka's `RangeAssignor`, its classic default.
    #[default]
    Range,
    /// Lays out all partitions of all subscribed topics in (topic, partition) order and all
    /// members in id order, and hands the partitions out in turn, skipping members that do not
    /// subscribe to a partition's topic. When every member subscribes to the same topics, the
    /// members' partition counts differ by at most one. Kafka's `RoundRobinAssignor`.
    RoundRobin,
    /// Keeps the assignment as balanced as possible and, on a rebalance, moves as few
    /// partitions as balance allows: a partition stays with its previous owner if that member
    /// is still in the group and still subscribes to the topic, unless balance requires moving
    /// it. Balance comes first. Fewer moves mean fewer revoked partitions and less redelivered
    /// work. Kafka's `StickyAssignor`.
    Sticky,
}

/// One member of a group and the topics it subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct MemberSubscription {
    /// The member's id, unique in its group; members are ordered by it.
    pub id: String,
    /// The topics the member subscribes to; those that do not exist are ignored.
    pub topics: BTreeSet<String>,
}

/// The assignment: every member id present (possibly with an empty list); every partition of
/// every subscribed, existing topic given to exactly one member subscribed to that topic; each
/// member's list sorted.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) type Assignment = BTreeMap<String, Vec<TopicPartition>>;

/// Member id → the existing topics it subscribes to; iterates in member id order.
type Subscriptions<'a> = BTreeMap<&'a str, BTreeSet<&'a str>>;

/// Spreads the partitions of the topics the `members` subscribe to over them with `assignor`.
///
/// `partitions` maps each existing topic to its partition count. `previous` is the last
/// assignment; only [`Assignor::Sticky`] reads it, and it may name members that have left or
/// partitions that no longer exist. Member ids should be unique: a repeated id is one member
/// subscribing to the union of the topics. No members give an empty assignment.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn assign(
    assignor: Assignor,
    members: &[MemberSubscription],
    partitions: &BTreeMap<String, u32>,
    previous: &Assignment,
) -> Assignment {
    let subscriptions = existing_subscriptions(members, partitions);
    let mut assignment = match assignor {
        Assignor::Range => assign_range(&subscriptions, partitions),
        Assignor::RoundRobin => assign_round_robin(&subscriptions, partitions),
        Assignor::Sticky => assign_sticky(&subscriptions, partitions, previous),
    };
    for list in assignment.values_mut() {
        list.sort_unstable();
    }
    assignment
}

/// Each member's subscriptions without the topics that do not exist.
fn existing_subscriptions<'a>(
    members: &'a [MemberSubscription],
    partitions: &BTreeMap<String, u32>,
) -> Subscriptions<'a> {
    let mut subscriptions = Subscriptions::new();
    for member in members {
        let topics = subscriptions.entry(member.id.as_str()).or_default();
        let existing = member.topics.iter().filter(|t| partitions.contains_key(*t));
        topics.extend(existing.map(String::as_str));
    }
    subscriptions
}

/// Every partition of every existing topic some member subscribes to, sorted.
fn subscribed_partitions(
    subscriptions: &Subscriptions<'_>,
    partitions: &BTreeMap<String, u32>,
) -> Vec<TopicPartition> {
    let subscribed: BTreeSet<&str> = subscriptions.values().flatten().copied().collect();
    partitions
        .iter()
        .filter(|(topic, _)| subscribed.contains(topic.as_str()))
        .flat_map(|(topic, &count)| (0..count).map(|p| TopicPartition::new(topic.as_str(), p)))
        .collect()
}

/// Every member with no partitions.
fn empty_assignment(subscriptions: &Subscriptions<'_>) -> Assignment {
    subscriptions
        .keys()
        .map(|id| ((*id).to_owned(), Vec::new()))
        .collect()
}

/// [`Assignor::Range`]: contiguous ranges of each topic over its subscribers.
fn assign_range(
    subscriptions: &Subscriptions<'_>,
    partitions: &BTreeMap<String, u32>,
) -> Assignment {
    let mut assignment = empty_assignment(subscriptions);
    for (topic, &count) in partitions {
        let subscribers: Vec<&str> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic.as_str()))
            .map(|(id, _)| *id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let per_member = count as usize / subscribers.len();
        let extra = count as usize % subscribers.len();
        let mut unassigned = 0..count;
        for (i, id) in subscribers.into_iter().enumerate() {
            let len = per_member + usize::from(i < extra);
            let range = unassigned.by_ref().take(len);
            if let Some(list) = assignment.get_mut(id) {
                list.extend(range.map(|p| TopicPartition::new(topic.as_str(), p)));
            }
        }
        debug_assert!(unassigned.is_empty(), "ranges cover all of {topic}");
    }
    assignment
}

/// [`Assignor::RoundRobin`]: deals the sorted partitions to the members in a circle.
fn assign_round_robin(
    subscriptions: &Subscriptions<'_>,
    partitions: &BTreeMap<String, u32>,
) -> Assignment {
    let mut assignment = empty_assignment(subscriptions);
    let members: Vec<(&str, &BTreeSet<&str>)> = subscriptions
        .iter()
        .map(|(id, topics)| (*id, topics))
        .collect();
    // Index of the member whose turn it is; the circle continues across topics.
    let mut turn = 0;
    for tp in subscribed_partitions(subscriptions, partitions) {
        let taker = members
            .iter()
            .enumerate()
            .cycle()
            .skip(turn)
            .take(members.len())
            .find(|(_, (_, topics))| topics.contains(tp.topic.as_str()));
        // Every subscribed partition has a subscriber, so a taker is always found.
        let Some((i, (id, _))) = taker else { continue };
        turn = i + 1;
        if let Some(list) = assignment.get_mut(*id) {
            list.push(tp);
        }
    }
    assignment
}

/// [`Assignor::Sticky`]: keep, place, then balance (see the module docs).
fn assign_sticky(
    subscriptions: &Subscriptions<'_>,
    partitions: &BTreeMap<String, u32>,
    previous: &Assignment,
) -> Assignment {
    let mut state = StickyState::keep_previous(subscriptions, partitions, previous);
    state.place_unowned(subscribed_partitions(subscriptions, partitions));
    while state.move_one() {}
    let owned = state.owned.into_iter();
    owned
        .map(|(id, set)| (id.to_owned(), set.into_iter().collect()))
        .collect()
}

/// The sticky assignor's work in progress.
struct StickyState<'s, 'a> {
    subscriptions: &'s Subscriptions<'a>,
    /// Each member's partitions.
    owned: BTreeMap<&'a str, BTreeSet<TopicPartition>>,
    /// The partitions that are still with their previous owner.
    kept: BTreeSet<TopicPartition>,
}

impl<'s, 'a> StickyState<'s, 'a> {
    /// Starts from every valid claim in `previous`: the member is still in the group and
    /// subscribes to the topic, the partition exists, and no member earlier in id order
    /// claimed it too.
    fn keep_previous(
        subscriptions: &'s Subscriptions<'a>,
        partitions: &BTreeMap<String, u32>,
        previous: &Assignment,
    ) -> Self {
        let mut owned: BTreeMap<&'a str, BTreeSet<TopicPartition>> = subscriptions
            .keys()
            .map(|id| (*id, BTreeSet::new()))
            .collect();
        let mut kept = BTreeSet::new();
        for (id, list) in previous {
            let (Some(topics), Some(set)) =
                (subscriptions.get(id.as_str()), owned.get_mut(id.as_str()))
            else {
                continue;
            };
            for tp in list {
                let exists = partitions.get(&tp.topic).is_some_and(|&n| tp.partition < n);
                if exists && topics.contains(tp.topic.as_str()) && kept.insert(tp.clone()) {
                    set.insert(tp.clone());
                }
            }
        }
        StickyState {
            subscriptions,
            owned,
            kept,
        }
    }

    /// Gives each partition of `all` that no one owns to its least loaded subscriber (ties by
    /// id), placing first those with the fewest subscribers, which have the fewest choices.
    fn place_unowned(&mut self, all: Vec<TopicPartition>) {
        let subscriptions = self.subscriptions;
        let subscriber_count =
            |topic: &str| subscriptions.values().filter(|t| t.contains(topic)).count();
        let mut unowned: Vec<(usize, TopicPartition)> = all
            .into_iter()
            .filter(|tp| !self.kept.contains(tp))
            .map(|tp| (subscriber_count(&tp.topic), tp))
            .collect();
        unowned.sort_unstable();
        for (_, tp) in unowned {
            let least_loaded = self
                .owned
                .iter_mut()
                .filter(|(id, _)| {
                    subscriptions
                        .get(*id)
                        .is_some_and(|t| t.contains(tp.topic.as_str()))
                })
                .min_by_key(|(id, set)| (set.len(), **id));
            if let Some((_, set)) = least_loaded {
                set.insert(tp);
            }
        }
    }

    /// Moves one partition from a member to a subscriber of its topic that holds at least two
    /// fewer partitions, the most loaded giver and least loaded taker first (ties by id).
    /// Returns whether it moved one: `false` means the assignment is balanced.
    fn move_one(&mut self) -> bool {
        let mut givers: Vec<(usize, &'a str)> = self
            .owned
            .iter()
            .map(|(id, set)| (set.len(), *id))
            .collect();
        let mut takers = givers.clone();
        givers.sort_unstable_by_key(|&(len, id)| (Reverse(len), id));
        takers.sort_unstable();
        for &(giver_len, giver) in &givers {
            for &(taker_len, taker) in &takers {
                if taker_len + 2 > giver_len {
                    break;
                }
                if let Some(tp) = self.movable(giver, taker) {
                    self.transfer(giver, taker, tp);
                    return true;
                }
            }
        }
        false
    }

    /// A partition of `giver` that `taker` subscribes to: preferably one that is not with its
    /// previous owner (moving it costs no stickiness), else the highest, so that members tend
    /// to keep their lowest partitions.
    fn movable(&self, giver: &str, taker: &str) -> Option<TopicPartition> {
        let topics = self.subscriptions.get(taker)?;
        let owned = self.owned.get(giver)?;
        let mut candidates = owned
            .iter()
            .rev()
            .filter(|tp| topics.contains(tp.topic.as_str()));
        let fresh = candidates.clone().find(|tp| !self.kept.contains(*tp));
        fresh.or_else(|| candidates.next()).cloned()
    }

    /// Moves `tp` from `giver` to `taker`.
    fn transfer(&mut self, giver: &str, taker: &str, tp: TopicPartition) {
        let removed = self.owned.get_mut(giver).is_some_and(|set| set.remove(&tp));
        debug_assert!(removed, "{giver} owned {tp}");
        self.kept.remove(&tp);
        if let Some(set) = self.owned.get_mut(taker) {
            set.insert(tp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            id: id.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    fn topics(counts: &[(&str, u32)]) -> BTreeMap<String, u32> {
        counts.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
    }

    /// Partitions written as Kafka's docs write them: `t1p0` is partition 0 of topic `t1`.
    fn tps(names: &[&str]) -> Vec<TopicPartition> {
        let parse = |name: &&str| {
            let (topic, partition) = name.split_once('p').expect("tXpY");
            TopicPartition::new(topic, partition.parse().expect("partition number"))
        };
        let mut list: Vec<TopicPartition> = names.iter().map(parse).collect();
        list.sort();
        list
    }

    fn assignment(entries: &[(&str, &[&str])]) -> Assignment {
        entries
            .iter()
            .map(|(id, names)| ((*id).to_owned(), tps(names)))
            .collect()
    }

    fn four_topics_two_partitions() -> BTreeMap<String, u32> {
        topics(&[("t0", 2), ("t1", 2), ("t2", 2), ("t3", 2)])
    }

    const ALL: [Assignor; 3] = [Assignor::Range, Assignor::RoundRobin, Assignor::Sticky];

    #[test]
    fn range_splits_each_topic_like_the_kafka_javadoc() {
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let out = assign(
            Assignor::Range,
            &members,
            &topics(&[("t0", 3), ("t1", 3)]),
            &Assignment::new(),
        );
        let expected = assignment(&[
            ("C0", &["t0p0", "t0p1", "t1p0", "t1p1"]),
            ("C1", &["t0p2", "t1p2"]),
        ]);
        assert_eq!(out, expected);
    }

    #[test]
    fn range_gives_the_remainder_to_the_first_members_in_id_order() {
        let members = [
            member("b", &["t"]),
            member("c", &["t"]),
            member("a", &["t"]),
        ];
        let out = assign(
            Assignor::Range,
            &members,
            &topics(&[("t", 7)]),
            &Assignment::new(),
        );
        let expected = assignment(&[
            ("a", &["tp0", "tp1", "tp2"]),
            ("b", &["tp3", "tp4"]),
            ("c", &["tp5", "tp6"]),
        ]);
        assert_eq!(out, expected);
    }

    #[test]
    fn round_robin_deals_partitions_like_the_kafka_javadoc() {
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let out = assign(
            Assignor::RoundRobin,
            &members,
            &topics(&[("t0", 3), ("t1", 3)]),
            &Assignment::new(),
        );
        let expected = assignment(&[
            ("C0", &["t0p0", "t0p2", "t1p1"]),
            ("C1", &["t0p1", "t1p0", "t1p2"]),
        ]);
        assert_eq!(out, expected);
    }

    /// Kafka's second `RoundRobinAssignor` and `StickyAssignor` example: unequal subscriptions.
    fn unequal_subscriptions() -> (Vec<MemberSubscription>, BTreeMap<String, u32>) {
        let members = vec![
            member("C0", &["t0"]),
            member("C1", &["t0", "t1"]),
            member("C2", &["t0", "t1", "t2"]),
        ];
        (members, topics(&[("t0", 1), ("t1", 2), ("t2", 3)]))
    }

    #[test]
    fn round_robin_skips_members_not_subscribed_like_the_kafka_javadoc() {
        let (members, partitions) = unequal_subscriptions();
        let out = assign(
            Assignor::RoundRobin,
            &members,
            &partitions,
            &Assignment::new(),
        );
        let expected = assignment(&[
            ("C0", &["t0p0"]),
            ("C1", &["t1p0"]),
            ("C2", &["t1p1", "t2p0", "t2p1", "t2p2"]),
        ]);
        assert_eq!(out, expected);

        let out = assign(Assignor::RoundRobin, &members[1..], &partitions, &out);
        let expected = assignment(&[
            ("C1", &["t0p0", "t1p1"]),
            ("C2", &["t1p0", "t2p0", "t2p1", "t2p2"]),
        ]);
        assert_eq!(out, expected, "round robin after C0 leaves");
    }

    #[test]
    fn sticky_starts_like_round_robin_in_kafka_example_1() {
        let members = [
            member("C0", &["t0", "t1", "t2", "t3"]),
            member("C1", &["t0", "t1", "t2", "t3"]),
            member("C2", &["t0", "t1", "t2", "t3"]),
        ];
        let partitions = four_topics_two_partitions();
        let expected = assignment(&[
            ("C0", &["t0p0", "t1p1", "t3p0"]),
            ("C1", &["t0p1", "t2p0", "t3p1"]),
            ("C2", &["t1p0", "t2p1"]),
        ]);
        for assignor in [Assignor::RoundRobin, Assignor::Sticky] {
            let out = assign(assignor, &members, &partitions, &Assignment::new());
            assert_eq!(out, expected, "{assignor:?}");
        }
    }

    #[test]
    fn sticky_keeps_the_survivors_partitions_when_a_member_leaves_in_kafka_example_1() {
        let all = ["t0", "t1", "t2", "t3"];
        let survivors = [member("C0", &all), member("C2", &all)];
        let partitions = four_topics_two_partitions();
        let previous = assignment(&[
            ("C0", &["t0p0", "t1p1", "t3p0"]),
            ("C1", &["t0p1", "t2p0", "t3p1"]),
            ("C2", &["t1p0", "t2p1"]),
        ]);
        let out = assign(Assignor::Sticky, &survivors, &partitions, &previous);
        let expected = assignment(&[
            ("C0", &["t0p0", "t1p1", "t3p0", "t2p0"]),
            ("C2", &["t1p0", "t2p1", "t0p1", "t3p1"]),
        ]);
        assert_eq!(out, expected);

        let out = assign(Assignor::RoundRobin, &survivors, &partitions, &previous);
        let expected = assignment(&[
            ("C0", &["t0p0", "t1p0", "t2p0", "t3p0"]),
            ("C2", &["t0p1", "t1p1", "t2p1", "t3p1"]),
        ]);
        assert_eq!(out, expected, "round robin ignores the previous assignment");
    }

    #[test]
    fn sticky_balances_unequal_subscriptions_like_kafka_example_2() {
        let (members, partitions) = unequal_subscriptions();
        let out = assign(Assignor::Sticky, &members, &partitions, &Assignment::new());
        let expected = assignment(&[
            ("C0", &["t0p0"]),
            ("C1", &["t1p0", "t1p1"]),
            ("C2", &["t2p0", "t2p1", "t2p2"]),
        ]);
        assert_eq!(out, expected);

        let out = assign(Assignor::Sticky, &members[1..], &partitions, &out);
        let expected = assignment(&[
            ("C1", &["t1p0", "t1p1", "t0p0"]),
            ("C2", &["t2p0", "t2p1", "t2p2"]),
        ]);
        assert_eq!(
            out, expected,
            "sticky after C0 leaves keeps all 5 of C1's and C2's"
        );
    }

    #[test]
    fn sticky_moves_only_what_balance_requires_when_a_member_joins() {
        let all = ["t0", "t1", "t2", "t3"];
        let partitions = four_topics_two_partitions();
        let two = [member("C0", &all), member("C1", &all)];
        let before = assign(Assignor::Sticky, &two, &partitions, &Assignment::new());
        assert_eq!(
            before,
            assignment(&[
                ("C0", &["t0p0", "t1p0", "t2p0", "t3p0"]),
                ("C1", &["t0p1", "t1p1", "t2p1", "t3p1"]),
            ])
        );

        let three = [member("C0", &all), member("C1", &all), member("C2", &all)];
        let after = assign(Assignor::Sticky, &three, &partitions, &before);
        let expected = assignment(&[
            ("C0", &["t0p0", "t1p0", "t2p0"]),
            ("C1", &["t0p1", "t1p1", "t2p1"]),
            ("C2", &["t3p0", "t3p1"]),
        ]);
        assert_eq!(
            after, expected,
            "C0 and C1 each give up one partition, the least possible"
        );
    }

    #[test]
    fn sticky_ignores_previous_claims_that_are_no_longer_valid() {
        let members = [member("a", &["t0"]), member("b", &["t0", "t1"])];
        let partitions = topics(&[("t0", 2), ("t1", 2)]);
        let previous = assignment(&[
            ("a", &["t0p1", "t1p0", "t0p7"]), // t1: no longer subscribed; t0p7: gone
            ("b", &["t0p1", "t1p1"]),         // t0p1: a claimed it first
            ("gone", &["t0p0"]),              // left the group
        ]);
        let out = assign(Assignor::Sticky, &members, &partitions, &previous);
        let expected = assignment(&[("a", &["t0p0", "t0p1"]), ("b", &["t1p0", "t1p1"])]);
        assert_eq!(out, expected);
    }

    #[test]
    fn every_assignor_ignores_missing_topics_and_lists_idle_members() {
        let members = [member("a", &["t0", "missing"]), member("b", &["missing"])];
        let partitions = topics(&[("t0", 2), ("unsubscribed", 3)]);
        let expected = assignment(&[("a", &["t0p0", "t0p1"]), ("b", &[])]);
        for assignor in ALL {
            let out = assign(assignor, &members, &partitions, &Assignment::new());
            assert_eq!(out, expected, "{assignor:?}");
        }
    }

    #[test]
    fn every_assignor_gives_no_members_an_empty_assignment() {
        let previous = assignment(&[("a", &["t0p0"])]);
        for assignor in ALL {
            let out = assign(assignor, &[], &topics(&[("t0", 4)]), &previous);
            assert!(out.is_empty(), "{assignor:?}");
        }
    }

    #[test]
    fn the_default_assignor_is_range() {
        assert_eq!(Assignor::default(), Assignor::Range);
    }

    // Property tests over random groups.

    const TOPIC_POOL: [&str; 5] = ["t0", "t1", "t2", "t3", "t4"];

    /// A random group: 1 to 6 members subscribing to random topics of the pool, some of which
    /// do not exist; the existing ones have 0 to 7 partitions.
    #[derive(Debug, Clone)]
    struct Group {
        members: Vec<MemberSubscription>,
        partitions: BTreeMap<String, u32>,
    }

    fn topic_set() -> impl Strategy<Value = BTreeSet<String>> {
        proptest::collection::btree_set(proptest::sample::select(&TOPIC_POOL[..]), 0..=5)
            .prop_map(|set| set.into_iter().map(str::to_owned).collect())
    }

    fn partition_counts() -> impl Strategy<Value = BTreeMap<String, u32>> {
        let topic = proptest::sample::select(&TOPIC_POOL[..]).prop_map(str::to_owned);
        proptest::collection::btree_map(topic, 0u32..=7, 0..=5)
    }

    fn group_from(
        subscriptions: Vec<BTreeSet<String>>,
        partitions: BTreeMap<String, u32>,
    ) -> Group {
        let members = subscriptions
            .into_iter()
            .enumerate()
            .map(|(i, topics)| MemberSubscription {
                id: format!("m{i}"),
                topics,
            })
            .collect();
        Group {
            members,
            partitions,
        }
    }

    /// Each member subscribes to its own random topics.
    fn any_group() -> impl Strategy<Value = Group> {
        (
            proptest::collection::vec(topic_set(), 1..=6),
            partition_counts(),
        )
            .prop_map(|(subscriptions, partitions)| group_from(subscriptions, partitions))
    }

    /// Every member subscribes to the same topics.
    fn identical_group() -> impl Strategy<Value = Group> {
        (topic_set(), 1..=6usize, partition_counts())
            .prop_map(|(topics, n, partitions)| group_from(vec![topics; n], partitions))
    }

    /// A random previous assignment: members that may or may not exist, partitions that may be
    /// out of range or claimed twice.
    fn any_previous() -> impl Strategy<Value = Assignment> {
        let tp = (proptest::sample::select(&TOPIC_POOL[..]), 0u32..9)
            .prop_map(|(topic, partition)| TopicPartition::new(topic, partition));
        let id = (0..8usize).prop_map(|i| format!("m{i}"));
        proptest::collection::btree_map(id, proptest::collection::vec(tp, 0..8), 0..8)
    }

    fn subscribes(group: &Group, id: &str, topic: &str) -> bool {
        group
            .members
            .iter()
            .any(|m| m.id == id && m.topics.contains(topic))
    }

    /// Checks the guarantees every assignor makes (see the module docs).
    fn assert_valid(group: &Group, out: &Assignment) {
        let ids: BTreeSet<&str> = group.members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(out.keys().map(String::as_str).collect::<BTreeSet<_>>(), ids);
        let mut owners: BTreeMap<&TopicPartition, &str> = BTreeMap::new();
        for (id, list) in out {
            assert!(
                list.windows(2).all(|w| w[0] < w[1]),
                "{id}'s list is sorted: {list:?}"
            );
            for tp in list {
                assert!(subscribes(group, id, &tp.topic), "{id} subscribes to {tp}");
                let count = group.partitions.get(&tp.topic).copied();
                assert!(count.is_some_and(|n| tp.partition < n), "{tp} exists");
                assert!(owners.insert(tp, id).is_none(), "{tp} assigned once");
            }
        }
        let subscribed = group
            .partitions
            .iter()
            .filter(|(topic, _)| group.members.iter().any(|m| m.topics.contains(*topic)));
        let expected: u32 = subscribed.map(|(_, n)| n).sum();
        assert_eq!(
            owners.len(),
            expected as usize,
            "every subscribed partition assigned"
        );
    }

    fn spread(out: &Assignment) -> usize {
        let counts = out.values().map(Vec::len);
        counts.clone().max().unwrap_or(0) - counts.min().unwrap_or(0)
    }

    /// Kafka's balance: no member with two fewer partitions than another could take one.
    fn assert_balanced(group: &Group, out: &Assignment) {
        for (a, a_list) in out {
            for (b, b_list) in out {
                if a_list.len() > b_list.len() + 1 {
                    let movable = a_list.iter().find(|tp| subscribes(group, b, &tp.topic));
                    assert_eq!(movable, None, "{a} could give {b} a partition: {out:?}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn every_assignor_gives_each_partition_to_exactly_one_subscriber(
            group in any_group(),
            previous in any_previous(),
        ) {
            for assignor in ALL {
                let out = assign(assignor, &group.members, &group.partitions, &previous);
                assert_valid(&group, &out);
            }
        }

        #[test]
        fn round_robin_and_sticky_balance_identical_subscriptions(
            group in identical_group(),
            previous in any_previous(),
        ) {
            for assignor in [Assignor::RoundRobin, Assignor::Sticky] {
                let out = assign(assignor, &group.members, &group.partitions, &previous);
                prop_assert!(spread(&out) <= 1, "{:?}: {:?}", assignor, out);
            }
        }

        #[test]
        fn range_balances_each_topic_over_its_subscribers(group in any_group()) {
            let out = assign(Assignor::Range, &group.members, &group.partitions, &Assignment::new());
            for topic in group.partitions.keys() {
                let per_member = group
                    .members
                    .iter()
                    .filter(|m| m.topics.contains(topic))
                    .map(|m| out[&m.id].iter().filter(|tp| &tp.topic == topic).count());
                let spread = per_member.clone().max().unwrap_or(0) - per_member.min().unwrap_or(0);
                prop_assert!(spread <= 1, "{}: {:?}", topic, out);
            }
        }

        #[test]
        fn sticky_is_balanced_for_any_subscriptions(
            group in any_group(),
            previous in any_previous(),
        ) {
            let out = assign(Assignor::Sticky, &group.members, &group.partitions, &previous);
            assert_balanced(&group, &out);
        }

        #[test]
        fn sticky_is_stable_when_the_group_does_not_change(
            group in any_group(),
            previous in any_previous(),
        ) {
            let out = assign(Assignor::Sticky, &group.members, &group.partitions, &previous);
            let again = assign(Assignor::Sticky, &group.members, &group.partitions, &out);
            prop_assert_eq!(again, out);
        }

        #[test]
        fn sticky_moves_only_the_leavers_partitions_with_identical_subscriptions(
            group in identical_group(),
            previous in any_previous(),
            leaver in any::<prop::sample::Index>(),
        ) {
            let before = assign(Assignor::Sticky, &group.members, &group.partitions, &previous);
            let mut rest = group.clone();
            let gone = rest.members.remove(leaver.index(rest.members.len()));
            let after = assign(Assignor::Sticky, &rest.members, &rest.partitions, &before);
            assert_valid(&rest, &after);
            prop_assert!(spread(&after) <= 1, "{:?}", after);
            for (id, list) in &after {
                let kept = before[id].iter().all(|tp| list.contains(tp));
                prop_assert!(kept, "{} lost a partition when {} left: {:?} -> {:?}", id, gone.id, before, after);
            }
        }

        #[test]
        fn sticky_stays_valid_and_balanced_when_a_member_leaves(
            group in any_group(),
            previous in any_previous(),
            leaver in any::<prop::sample::Index>(),
        ) {
            let before = assign(Assignor::Sticky, &group.members, &group.partitions, &previous);
            let mut rest = group.clone();
            rest.members.remove(leaver.index(rest.members.len()));
            let after = assign(Assignor::Sticky, &rest.members, &rest.partitions, &before);
            assert_valid(&rest, &after);
            assert_balanced(&rest, &after);
        }
    }
}
