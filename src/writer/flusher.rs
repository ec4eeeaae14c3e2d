//! The flusher: one background thread per Wharf (`wharf-flusher`) that
//! - syncs every partition with data not yet synced, every `flush_interval` (the flush policy
//!   for `NoWait` and `Write` sends; Kafka's `log.flush.interval.ms`, RocketMQ's async flush);
//! - serves partitions that asked for it: asynchronous `Fsync` sends waiting for a sync, the
//!   `flush_messages` threshold, and sealed segments to sync and finalize;
//! - writes each partition's checkpoint after a sync, so recovery scans only the tail;
//! - syncs consumer groups' offsets committed without waiting (`commit_async`, policies).
//!
//! Asleep on a channel between ticks: an idle Wharf costs one wake-up per interval.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crate::log::{FlushQueue, PartitionLog};

/// Lists the partitions to look at on each tick.
pub(crate) type PartitionSource = Box<dyn Fn() -> Vec<Arc<PartitionLog>> + Send>;

/// Other work of each tick (syncing consumer groups' offsets written without waiting).
pub(crate) type TickWork = Box<dyn Fn() + Send>;

/// The running flusher thread.
#[derive(Debug)]
pub(crate) struct Flusher {
    stop: Arc<AtomicBool>,
    queue: Arc<FlushQueue>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

impl Flusher {
    pub(crate) fn spawn(
        queue: Arc<FlushQueue>,
        interval: Duration,
        partitions: PartitionSource,
        tick: TickWork,
    ) -> io::Result<Flusher> {
        let stop = Arc::new(AtomicBool::new(false));
        let (stop_flag, thread_queue) = (Arc::clone(&stop), Arc::clone(&queue));
        let thread = thread::Builder::new()
            .name("wharf-flusher".into())
            .spawn(move || run(&thread_queue, &stop_flag, interval, &partitions, &tick))?;
        let thread_id = thread.thread().id();
        Ok(Flusher {
            stop,
            queue,
            thread: Some(thread),
            thread_id,
        })
    }

    /// Stops the thread and waits for it, unless called from the flusher thread itself (from a
    /// send callback), in which case the thread exits after the callback returns.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.queue.wake();
        if let Some(thread) = self.thread.take() {
            if thread::current().id() != self.thread_id {
                // A panic in the flusher already reported itself; the partitions are closed next.
                let _ = thread.join();
            }
        }
    }
}

fn run(
    queue: &FlushQueue,
    stop: &AtomicBool,
    interval: Duration,
    partitions: &PartitionSource,
    tick: &TickWork,
) {
    let mut next_tick = Instant::now() + interval;
    while !stop.load(Ordering::Acquire) {
        // A timeout and a wake-up lead to the same work; the result does not matter.
        let _woken = queue.wake_receiver().recv_deadline(next_tick);
        if stop.load(Ordering::Acquire) {
            break;
        }
        for partition in queue.take() {
            partition.flush_in_background();
        }
        if Instant::now() >= next_tick {
            for partition in partitions() {
                if partition.needs_flush() {
                    partition.flush_in_background();
                }
            }
            tick();
            next_tick = Instant::now() + interval;
        }
    }
}
