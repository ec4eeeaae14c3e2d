//! Retention: deleting the oldest segments of each partition past its topic's limits, in a
//! background thread (`wharf-retention`) every `retention_interval`, when an append finds no
//! space, and on demand ([`crate::Admin::enforce_retention`]).
//!
//! Per partition (see [`crate::log::PartitionLog::apply_retention`] for the deletion itself):
//! sealed segments are deleted oldest first while the partition is over `max_bytes` or the
//! segment's newest record is older than `max_age`, and, with consumer-aware retention, the
//! groups it waits for have committed past the segment; `hard_max_bytes` deletes regardless,
//! counting the records it dropped before those groups consumed them. The active segment is
//! never deleted.
//!
//! A topic with a hard size limit is also checked after every append that seals a segment
//! ([`after_roll`]), so it never grows past the limit by more than its active segment between
//! two runs.
//!
//! The committed offsets retention waits for are read first and made durable afterwards
//! (before anything is deleted), so a crash cannot bring back a commit older than what
//! retention relied on.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::KeepUnconsumed;
use crate::error::Result;
use crate::group::group::Group;
use crate::log::PartitionLog;
use crate::topic::{Topic, TopicPartition};
use crate::wharf::Shared;

/// What a retention run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionReport {
    /// Segments deleted.
    pub segments_deleted: u64,
    /// Bytes of log data in them.
    pub bytes_deleted: u64,
    /// Records deleted by a hard size limit before the groups retention waits for consumed
    /// them.
    pub unconsumed_dropped: u64,
}

impl RetentionReport {
    fn add(&mut self, removed: crate::log::Removed) {
        self.segments_deleted += removed.segments;
        self.bytes_deleted += removed.bytes;
        self.unconsumed_dropped += removed.unconsumed;
    }
}

/// Runs retention over every topic once.
///
/// # Errors
///
/// The first error met; the other partitions are still processed.
pub(crate) fn run(shared: &Shared) -> Result<RetentionReport> {
    let now = shared.now().as_millis();
    let mut run = Run::default();
    for topic in shared.all_topics() {
        if !topic.config.retention.is_limited() {
            continue;
        }
        for log in &topic.partitions {
            run.partition(shared, &topic, log, now);
        }
    }
    run.finish(shared)
}

/// After an append to `log` sealed a segment: if `topic` has a hard size limit and the
/// partition holds more than it, applies the topic's retention to this partition now, so a
/// partition never grows past its hard limit by more than the active segment, whatever the
/// interval of the retention thread.
///
/// # Errors
///
/// As [`run`], for this partition.
pub(crate) fn after_roll(
    shared: &Shared,
    topic: &Topic,
    log: &Arc<PartitionLog>,
) -> Result<RetentionReport> {
    let Some(hard) = topic.config.retention.hard_max_bytes else {
        return Ok(RetentionReport::default());
    };
    if !log.holds_more_than(hard)? {
        return Ok(RetentionReport::default());
    }
    let mut run = Run::default();
    run.partition(shared, topic, log, shared.now().as_millis());
    run.finish(shared)
}

/// One retention run's progress.
#[derive(Default)]
struct Run {
    report: RetentionReport,
    first_error: Option<crate::Error>,
    /// Whether each group retention waits for could be made durable (synced once per run).
    synced: HashMap<Arc<str>, bool>,
}

impl Run {
    /// Applies `topic`'s retention to partition `log` at `now`.
    fn partition(&mut self, shared: &Shared, topic: &Topic, log: &Arc<PartitionLog>, now: i64) {
        // The floor first, then make the commits it comes from durable: a crash cannot
        // bring back an older commit. A group whose offsets cannot be synced (a poisoned
        // store) holds back only the partitions that wait for it.
        let floor = match consumed_floor(shared, topic, log.partition()) {
            Ok(Some((floor, groups))) => {
                let durable = groups.iter().all(|group| {
                    *self
                        .synced
                        .entry(Arc::clone(&group.name))
                        .or_insert_with(|| match shared.sync_group(group) {
                            Ok(()) => true,
                            Err(e) => {
                                self.first_error.get_or_insert(e);
                                false
                            }
                        })
                });
                if !durable {
                    return;
                }
                Some(floor)
            }
            Ok(None) => None,
            Err(e) => {
                self.first_error.get_or_insert(e);
                return;
            }
        };
        match log.apply_retention(now, &topic.config.retention, floor) {
            Ok(removed) => self.report.add(removed),
            Err(e) => {
                self.first_error.get_or_insert(e);
            }
        }
    }

    /// Accounts for what was deleted; returns the report or the first error.
    fn finish(mut self, shared: &Shared) -> Result<RetentionReport> {
        if self.report.segments_deleted > 0 {
            shared.space().freed();
            shared.count_unconsumed_dropped(self.report.unconsumed_dropped);
        } else if shared.space().is_limited() {
            // Corrects the usage figure for what reservations do not see (trims, small files).
            if let Err(e) = shared.space().recount() {
                self.first_error.get_or_insert(crate::Error::io(
                    "measure the disk usage of",
                    &shared.dir,
                    e,
                ));
            }
        }
        self.first_error.map_or(Ok(self.report), Err)
    }
}

/// The offset below which every group `topic`'s retention waits for has committed, in
/// `partition`, and the groups whose commits say so; `None` if it waits for no group.
fn consumed_floor(
    shared: &Shared,
    topic: &Topic,
    partition: u32,
) -> Result<Option<(u64, Vec<Arc<Group>>)>> {
    let tp = TopicPartition::new(topic.name.to_string(), partition);
    let mut floor = u64::MAX;
    let mut groups = Vec::new();
    match &topic.config.retention.keep_unconsumed {
        KeepUnconsumed::No => return Ok(None),
        KeepUnconsumed::ByGroups(names) => {
            for name in names {
                match shared.group(name, false) {
                    Ok(group) => {
                        // A group that committed nothing here (or only to a deleted topic of
                        // this name) keeps everything.
                        let committed = group.offsets.committed(&tp, topic.incarnation);
                        floor = floor.min(committed.unwrap_or(0));
                        groups.push(group);
                    }
                    Err(e) if matches!(e.kind(), crate::ErrorKind::GroupNotFound { .. }) => {
                        floor = 0;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        KeepUnconsumed::ByAllGroups => {
            for name in shared.group_names()? {
                let group = shared.group(&name, false)?;
                if let Some(offset) = group.offsets.committed(&tp, topic.incarnation) {
                    floor = floor.min(offset);
                    groups.push(group);
                }
            }
        }
    }
    Ok(Some((floor, groups)))
}

/// The background thread.
#[derive(Debug)]
pub(crate) struct RetentionThread {
    wake: Arc<Wake>,
    handle: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Wake {
    stop: AtomicBool,
    kicked: Mutex<bool>,
    signal: Condvar,
}

impl Wake {
    fn kick(&self) {
        *self.kicked.lock() = true;
        self.signal.notify_all();
    }
}

impl RetentionThread {
    /// Starts the thread; it also runs whenever the Wharf's disk space runs out.
    pub(crate) fn start(shared: &Arc<Shared>, interval: Duration) -> std::io::Result<Self> {
        let wake = Arc::new(Wake::default());
        let weak = Arc::downgrade(shared);
        let thread_wake = Arc::clone(&wake);
        let handle = std::thread::Builder::new()
            .name("wharf-retention".into())
            .spawn(move || {
                let wake = thread_wake;
                let mut next = Instant::now() + interval;
                while !wake.stop.load(Ordering::Acquire) {
                    {
                        let mut kicked = wake.kicked.lock();
                        while !*kicked && !wake.stop.load(Ordering::Acquire) {
                            if wake.signal.wait_until(&mut kicked, next).timed_out() {
                                break;
                            }
                        }
                        *kicked = false;
                    }
                    if wake.stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Some(shared) = weak.upgrade() else { break };
                    // A failure (a poisoned partition, a damaged group) is retried next time;
                    // the operations that hit it report it to their callers.
                    let _report = run(&shared);
                    drop(shared);
                    next = Instant::now() + interval;
                }
            })?;
        let kick = Arc::downgrade(&wake);
        shared.space().set_on_full(Box::new(move || {
            if let Some(wake) = kick.upgrade() {
                wake.kick();
            }
        }));
        Ok(RetentionThread {
            wake,
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it.
    pub(crate) fn stop(&mut self) {
        self.wake.stop.store(true, Ordering::Release);
        self.wake.kick();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for RetentionThread {
    fn drop(&mut self) {
        self.stop();
    }
}
