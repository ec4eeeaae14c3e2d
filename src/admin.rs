//! [`Admin`]: consumer group administration, for operators and tools (Kafka's
//! `kafka-consumer-groups`): list, describe (committed offset, log end and lag per partition,
//! members), reset offsets, delete.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::clock::Timestamp;
use crate::consumer::{PartitionLag, lag_of};
use crate::error::{ErrorKind, Result};
use crate::topic::TopicPartition;
use crate::wharf::Inner;

/// Where [`Admin::reset_offsets`] moves a group's committed offsets (Kafka's
/// `--reset-offsets --to-…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The log start.
    Earliest,
    /// The log end.
    Latest,
    /// This offset (clamped into the log).
    Offset(u64),
    /// The first record whose timestamp is at least this (the end if none).
    Timestamp(Timestamp),
    /// The committed offset (or the log start) moved by this many records (clamped).
    ShiftBy(i64),
}

/// One member of a group, as [`Admin::describe_group`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberDescription {
    /// The member id.
    pub id: String,
    /// The topics it subscribes to.
    pub topics: Vec<String>,
    /// The partitions the group's assignment gives it.
    pub assignment: Vec<TopicPartition>,
}

/// One partition of a group, as [`Admin::describe_group`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionDescription {
    /// Offsets and lag.
    pub lag: PartitionLag,
    /// The member consuming it now, if any.
    pub member: Option<String>,
}

/// A consumer group's state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    /// The group.
    pub group: String,
    /// Its members in this process.
    pub members: Vec<MemberDescription>,
    /// Every partition it has committed offsets for or is assigned.
    pub partitions: Vec<PartitionDescription>,
    /// Set if the group's offsets file was found damaged at open and an older state is used.
    pub damage: Option<String>,
}

/// A committed offset changed by [`Admin::reset_offsets`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OffsetChange {
    /// The partition.
    pub partition: TopicPartition,
    /// The committed offset before.
    pub before: Option<u64>,
    /// The committed offset after.
    pub after: u64,
}

/// Group administration. Made by [`crate::Wharf::admin`].
#[derive(Debug, Clone)]
pub struct Admin {
    wharf: Arc<Inner>,
}

impl Admin {
    pub(crate) fn new(wharf: Arc<Inner>) -> Self {
        Admin { wharf }
    }

    /// The consumer groups (with committed offsets or members), sorted.
    ///
    /// # Errors
    ///
    /// An I/O error listing the groups directory.
    pub fn list_groups(&self) -> Result<Vec<String>> {
        self.wharf.shared.group_names()
    }

    /// A group's members and, per partition, committed offset, log end, lag and member.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::GroupNotFound`], [`ErrorKind::InvalidGroupName`].
    pub fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        crate::topic::validate_group_name(group)?;
        let shared = &self.wharf.shared;
        let g = shared.group(group, false)?;
        let members: Vec<MemberDescription> = g
            .membership
            .describe()
            .into_iter()
            .map(|(id, topics, assignment)| MemberDescription {
                id,
                topics,
                assignment,
            })
            .collect();
        let committed = g.offsets.all();
        let mut tps: BTreeSet<TopicPartition> = committed.keys().cloned().collect();
        tps.extend(members.iter().flat_map(|m| m.assignment.iter().cloned()));
        let mut partitions = Vec::new();
        for tp in tps {
            let Ok(topic) = shared.topic(&tp.topic) else {
                continue;
            };
            let Ok(log) = topic.partition(tp.partition) else {
                continue;
            };
            let lag = lag_of(&tp, log, committed.get(&tp).copied());
            partitions.push(PartitionDescription {
                lag,
                member: g.membership.holder(&tp),
            });
        }
        Ok(GroupDescription {
            group: group.to_owned(),
            members,
            partitions,
            damage: g.damage.clone(),
        })
    }

    /// Moves a group's committed offsets for every partition of `topic`. The group must have
    /// no active member (as with Kafka). Returns the changes made, durably.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::GroupActive`], [`ErrorKind::TopicNotFound`],
    /// [`ErrorKind::InvalidGroupName`], an I/O error making the change durable.
    pub fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: ResetTo,
    ) -> Result<Vec<OffsetChange>> {
        crate::topic::validate_group_name(group)?;
        let shared = &self.wharf.shared;
        let t = shared.topic(topic)?;
        let g = shared.group(group, true)?;
        if g.is_in_use() {
            return Err(ErrorKind::GroupActive {
                group: group.to_owned(),
            }
            .into());
        }
        let mut changes = Vec::new();
        for log in &t.partitions {
            let tp = TopicPartition::new(topic, log.partition());
            let before = g.offsets.committed(&tp);
            let (start, end) = (log.start_offset(), log.next_offset());
            let after = match to {
                ResetTo::Earliest => start,
                ResetTo::Latest => end,
                ResetTo::Offset(offset) => offset.clamp(start, end),
                ResetTo::Timestamp(ts) => log.offset_for_timestamp(ts.as_millis())?.unwrap_or(end),
                ResetTo::ShiftBy(by) => before
                    .unwrap_or(start)
                    .saturating_add_signed(by)
                    .clamp(start, end),
            };
            changes.push(OffsetChange {
                partition: tp,
                before,
                after,
            });
        }
        let entries: Vec<(TopicPartition, u64)> = changes
            .iter()
            .map(|c| (c.partition.clone(), c.after))
            .collect();
        shared.commit_offsets(&g, None, &entries, true)?;
        Ok(changes)
    }

    /// Deletes a group and its committed offsets. The group must have no active member.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::GroupNotFound`], [`ErrorKind::GroupActive`],
    /// [`ErrorKind::InvalidGroupName`], an I/O error removing its files.
    pub fn delete_group(&self, group: &str) -> Result<()> {
        crate::topic::validate_group_name(group)?;
        self.wharf.shared.delete_group(group)
    }
}
