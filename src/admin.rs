//! [`Admin`]: consumer group administration, for operators and tools (Kafka's
//! `kafka-consumer-groups`): list, describe (committed offset, log end and lag per partition,
//! members), reset offsets, delete; and the RocketMQ console's dead-letter and delay views:
//! list, resend and purge a group's dead letters, the delay queue's state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::clock::Timestamp;
use crate::consumer::{PartitionLag, lag_of};
use crate::error::{ErrorKind, Result};
use crate::group::offsets::Committed;
use crate::retention::RetentionReport;
use crate::retry::dead_letter::{self, DeadLetter};
use crate::retry::{DELAY_TOPIC, SCHEDULER_GROUP};
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

    /// The consumer groups (with committed offsets or members), sorted; the delay scheduler's
    /// internal group is not listed.
    ///
    /// # Errors
    ///
    /// An I/O error listing the groups directory.
    pub fn list_groups(&self) -> Result<Vec<String>> {
        let mut names = self.wharf.shared.group_names()?;
        names.retain(|name| name != SCHEDULER_GROUP);
        Ok(names)
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
        let retry_topic = crate::retry::retry_topic(group);
        let members: Vec<MemberDescription> = g
            .membership
            .describe()
            .into_iter()
            .map(|(id, mut topics, assignment)| {
                // The implicit subscription to the group's own retry topic is not shown; its
                // partitions are, in `assignment`, once the topic exists.
                topics.retain(|t| *t != retry_topic);
                MemberDescription {
                    id,
                    topics,
                    assignment,
                }
            })
            .collect();
        // Offsets committed against a deleted topic (or an earlier one of the same name) are
        // not the group's any more.
        let committed: BTreeMap<TopicPartition, u64> = g
            .offsets
            .all()
            .into_iter()
            .filter(|(tp, c)| shared.is_current(&tp.topic, c.incarnation))
            .map(|(tp, c)| (tp, c.offset))
            .collect();
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
            let before = g.offsets.committed(&tp, t.incarnation);
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
        let entries: Vec<(TopicPartition, Committed)> = changes
            .iter()
            .map(|c| {
                let committed = Committed {
                    incarnation: t.incarnation,
                    offset: c.after,
                };
                (c.partition.clone(), committed)
            })
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

    /// Up to `max` records of `group`'s dead-letter queue from offset `from` of
    /// `%DLQ%<group>` (0 for the oldest kept), each with where it came from, how often it was
    /// retried and why it was dead-lettered.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::GroupNotFound`] for a group that neither exists nor has a dead-letter
    /// queue; [`ErrorKind::InvalidGroupName`]; [`ErrorKind::Corrupt`] or an I/O error reading.
    pub fn dead_letters(&self, group: &str, from: u64, max: usize) -> Result<Vec<DeadLetter>> {
        crate::topic::validate_group_name(group)?;
        dead_letter::list(&self.wharf, group, from, max)
    }

    /// Appends the dead letter at `offset` of `group`'s queue to the partition it was first
    /// consumed from, as a new record (its reconsume count starts again at 0), and syncs it.
    /// It stays in the queue until [`Admin::purge_dead_letters`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::GroupNotFound`]; [`ErrorKind::OffsetOutOfRange`] if no dead letter has
    /// that offset; [`ErrorKind::TopicNotFound`] if its topic was deleted;
    /// [`ErrorKind::InvalidConfig`] if it names no origin; errors of the send.
    pub fn resend_dead_letter(&self, group: &str, offset: u64) -> Result<()> {
        crate::topic::validate_group_name(group)?;
        dead_letter::resend_one(&self.wharf, group, offset)
    }

    /// Resends every dead letter of `group` as [`Admin::resend_dead_letter`] does; returns how
    /// many. Each chunk of up to 1,000 is checked before any of it is written.
    ///
    /// # Errors
    ///
    /// As [`Admin::resend_dead_letter`]; chunks before a failing one were resent.
    pub fn resend_dead_letters(&self, group: &str) -> Result<usize> {
        crate::topic::validate_group_name(group)?;
        dead_letter::resend_all(&self.wharf, group)
    }

    /// Deletes every dead letter of `group`; returns how many there were. The queue
    /// `%DLQ%<group>` is deleted as a topic is, with every group's committed offsets for it:
    /// the next dead letter creates it afresh, and its readers start from its beginning.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::GroupNotFound`]; an I/O error deleting.
    pub fn purge_dead_letters(&self, group: &str) -> Result<u64> {
        crate::topic::validate_group_name(group)?;
        dead_letter::purge(&self.wharf, group)
    }

    /// The delayed records waiting per level, and what the delay scheduler did since open.
    pub fn delay_status(&self) -> DelayStatus {
        let shared = &self.wharf.shared;
        let mut status = DelayStatus::default();
        if let Ok(topic) = shared.topic(DELAY_TOPIC) {
            let group = shared.group(SCHEDULER_GROUP, false).ok();
            for log in &topic.partitions {
                let tp = TopicPartition::new(DELAY_TOPIC, log.partition());
                let done = group
                    .as_ref()
                    .and_then(|g| g.offsets.committed(&tp, topic.incarnation))
                    .unwrap_or(0);
                status.waiting.push(
                    log.next_offset()
                        .saturating_sub(done.max(log.start_offset())),
                );
            }
        }
        shared.with_scheduler_stats(|stats| {
            status.moved = stats.moved.load(Ordering::Relaxed);
            status.dropped = stats.dropped.load(Ordering::Relaxed);
            status.error.clone_from(&stats.last_error.lock());
        });
        status
    }

    /// Runs retention now, over every topic, and returns what it deleted (the background
    /// thread does the same every `retention_interval`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReadOnly`]; the first error met (the other partitions are still done).
    pub fn enforce_retention(&self) -> Result<RetentionReport> {
        let shared = &self.wharf.shared;
        if shared.is_read_only() {
            return Err(ErrorKind::ReadOnly {
                dir: shared.dir.clone(),
            }
            .into());
        }
        crate::retention::run(shared)
    }

    /// Deletes the records of a partition below `before` (Kafka's `DeleteRecords`): the log
    /// start moves there (at most to the log end) and the segments wholly below it are
    /// deleted at once. Reads below the new start get [`ErrorKind::OffsetOutOfRange`];
    /// consumers positioned there move to it ([`crate::ConsumerBuilder::out_of_range`]).
    /// Returns the new log start. Survives a crash half way: the deletion completes at the
    /// next open.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TopicNotFound`], [`ErrorKind::PartitionOutOfRange`],
    /// [`ErrorKind::ReadOnly`], [`ErrorKind::Poisoned`], or an I/O error.
    pub fn delete_records(&self, topic: &str, partition: u32, before: u64) -> Result<u64> {
        let shared = &self.wharf.shared;
        let topic = shared.topic(topic)?;
        let log = topic.partition(partition)?;
        let removed = log.delete_records(before)?;
        if removed.segments > 0 {
            shared.space().freed();
        }
        Ok(log.start_offset())
    }

    /// The Wharf's disk usage and limits.
    ///
    /// # Errors
    ///
    /// An I/O error measuring the directory or the free space.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let shared = &self.wharf.shared;
        let space = shared.space();
        let used_bytes = space
            .recount()
            .map_err(|e| crate::Error::io("measure the disk usage of", &shared.dir, e))?;
        let available_bytes = space
            .available()
            .map_err(|e| crate::Error::io("measure the free space of", &shared.dir, e))?;
        Ok(DiskUsage {
            used_bytes,
            max_disk_bytes: space.max_bytes(),
            available_bytes,
            min_free_bytes: space.min_free_bytes(),
            unconsumed_dropped: shared.unconsumed_dropped(),
        })
    }
}

/// The Wharf's disk usage and limits, from [`Admin::disk_usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskUsage {
    /// Bytes the Wharf's files take.
    pub used_bytes: u64,
    /// The quota, if set.
    pub max_disk_bytes: Option<u64>,
    /// Bytes free on the file system.
    pub available_bytes: u64,
    /// The free-space floor, if set.
    pub min_free_bytes: Option<u64>,
    /// Records hard size limits deleted before the groups retention waited for consumed
    /// them, since the Wharf was opened.
    pub unconsumed_dropped: u64,
}

/// The delay queue's state, from [`Admin::delay_status`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DelayStatus {
    /// Records waiting, per delay level (index 0 is level 1).
    pub waiting: Vec<u64>,
    /// Records moved to their targets since the Wharf was opened.
    pub moved: u64,
    /// Records dropped since the Wharf was opened because their target topic was deleted or
    /// no longer takes them.
    pub dropped: u64,
    /// The error of the scheduler's last round, if it failed (it retries).
    pub error: Option<String>,
}
