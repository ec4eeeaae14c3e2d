//! Partitions waiting for the background flusher: asked for by an asynchronous `Fsync` send,
//! by the flush policy's message count, or by a roll (a sealed segment to sync and finalize).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;

use super::partition::PartitionLog;

/// A set of partitions for the flusher, with a wake-up channel of capacity one (requests
/// coalesce; the flusher drains the whole set per wake-up).
#[derive(Debug)]
pub(crate) struct FlushQueue {
    pending: Mutex<Vec<Arc<PartitionLog>>>,
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
}

impl Default for FlushQueue {
    fn default() -> Self {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        FlushQueue {
            pending: Mutex::new(Vec::new()),
            wake_tx,
            wake_rx,
        }
    }
}

impl FlushQueue {
    /// Queues `partition` (once until taken) and wakes the flusher.
    pub(crate) fn request(&self, partition: &Arc<PartitionLog>) {
        if partition.flush_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        self.pending.lock().push(Arc::clone(partition));
        self.wake();
    }

    /// Wakes the flusher without queueing anything (to make it notice a stop request).
    pub(crate) fn wake(&self) {
        match self.wake_tx.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => unreachable!("the queue owns both ends"),
        }
    }

    /// Takes every queued partition.
    pub(crate) fn take(&self) -> Vec<Arc<PartitionLog>> {
        let taken = std::mem::take(&mut *self.pending.lock());
        for partition in &taken {
            partition.flush_queued.store(false, Ordering::Release);
        }
        taken
    }

    /// Forgets every queued partition (the Wharf was abandoned without a flush). The queue
    /// and the partitions hold each other: this breaks the cycle.
    pub(crate) fn clear(&self) {
        drop(self.take());
    }

    /// The channel the flusher sleeps on.
    pub(crate) fn wake_receiver(&self) -> &Receiver<()> {
        &self.wake_rx
    }
}
