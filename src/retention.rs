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
//! The committed offsets retention waits for are read first and made durable afterwards
//! (before anything is deleted), so a crash cannot bring back a commit older than what
//! retention relied on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::KeepUnconsumed;
use crate::error::Result;
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
    let mut report = RetentionReport::default();
    let mut first_error = None;
    let topics: Vec<Arc<Topic>> = shared.all_topics();
    // The floors first, then make the commits they come from durable.
    let mut work: Vec<(Arc<Topic>, &Arc<PartitionLog>, Option<u64>)> = Vec::new();
    for topic in &topics {
        if !topic.config.retention.is_limited() {
            continue;
        }
        for log in &topic.partitions {
            match consumed_floor(shared, topic, log.partition()) {
                Ok(floor) => work.push((Arc::clone(topic), log, floor)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    if work.is_empty() {
        return first_error.map_or(Ok(report), Err);
    }
    if work.iter().any(|(_, _, floor)| floor.is_some()) {
        shared.sync_groups()?;
    }
    for (topic, log, floor) in work {
        match log.apply_retention(now, &topic.config.retention, floor) {
            Ok(removed) => report.add(removed),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if report.segments_deleted > 0 {
        shared.space().freed();
        shared.count_unconsumed_dropped(report.unconsumed_dropped);
    }
    first_error.map_or(Ok(report), Err)
}

/// The offset below which every group `topic`'s retention waits for has committed, in
/// `partition`; `None` if it waits for no group.
fn consumed_floor(shared: &Shared, topic: &Topic, partition: u32) -> Result<Option<u64>> {
    let tp = TopicPartition::new(topic.name.to_string(), partition);
    let committed = |name: &str| -> Result<u64> {
        match shared.group(name, false) {
            Ok(group) => Ok(group.offsets.committed(&tp).unwrap_or(0)),
            // A group that committed nothing keeps everything.
            Err(e) if matches!(e.kind(), crate::ErrorKind::GroupNotFound { .. }) => Ok(0),
            Err(e) => Err(e),
        }
    };
    match &topic.config.retention.keep_unconsumed {
        KeepUnconsumed::No => Ok(None),
        KeepUnconsumed::ByGroups(groups) => {
            let mut floor = u64::MAX;
            for group in groups {
                floor = floor.min(committed(group)?);
            }
            Ok(Some(floor))
        }
        KeepUnconsumed::ByAllGroups => {
            let mut floor = u64::MAX;
            for name in shared.group_names()? {
                let group = shared.group(&name, false)?;
                if let Some(offset) = group.offsets.committed(&tp) {
                    floor = floor.min(offset);
                }
            }
            Ok(Some(floor))
        }
    }
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
