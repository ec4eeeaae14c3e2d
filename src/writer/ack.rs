//! Acknowledgement modes, receipts, and handles of asynchronous sends.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::clock::Timestamp;
use crate::error::{ErrorKind, Result};

/// What a send waits for before it reports success.
///
/// | mode | returns when | survives a process crash | survives power loss | Kafka / RocketMQ |
/// |---|---|---|---|---|
/// | `NoWait` | the record is in the producer's batch (in memory) | not until its batch is appended (then as `Write`) | no | `acks=0`, `sendOneway` |
/// | `Write` | the record is in the segment (OS page cache) and visible to readers | yes | no | `acks=1`, `ASYNC_FLUSH` |
/// | `Fsync` | the record is on stable storage (`fdatasync`) | yes | yes | `acks=all` + flush, `SYNC_FLUSH` |
///
/// Data sent with `NoWait` or `Write` is also synced in the background by the flush policy
/// ([`crate::WharfBuilder::flush_interval`]), which bounds what a power loss can take.
/// Concurrent `Fsync` sends share one sync (group commit).
///
/// `NoWait` records sent with [`crate::Producer::send_oneway`] or `send_async` go into the
/// producer's open batch for their partition (the accumulator), which is appended when it
/// reaches [`crate::ProducerBuilder::batch_bytes`], after
/// [`crate::ProducerBuilder::linger`], on [`crate::Producer::flush`],
/// [`crate::Wharf::sync`] and `close`, and when the producer is dropped. A `kill -9` loses the
/// records still in a batch, and only those. A failed append of a batch completes its
/// records' handles with the error; records nobody waits for are reported as
/// [`crate::ErrorKind::Unsent`] by the producer's next send or `flush`. `send` with `NoWait`
/// appends at once (its receipt needs the offset), after the partition's open batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AckMode {
    /// Fire and forget: nothing is promised once the call returns.
    NoWait,
    /// Written to the segment: survives a crash of the process, not of the machine. The
    /// default.
    #[default]
    Write,
    /// On stable storage: survives power loss and kernel crashes.
    Fsync,
}

/// Where a sent record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: u32,
    pub(crate) offset: u64,
    pub(crate) timestamp: Timestamp,
    pub(crate) ack: AckMode,
}

impl SendReceipt {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition the record went to.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The record's offset in that partition.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The record's timestamp (its own, or the append time).
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The acknowledgement level reached.
    pub fn ack(&self) -> AckMode {
        self.ack
    }
}

type Callback = Box<dyn FnOnce(Result<SendReceipt>) + Send>;

enum State {
    Pending(Option<Callback>),
    Done(Result<SendReceipt>),
}

/// The shared state of a [`SendHandle`].
pub(crate) struct Completion {
    state: Mutex<State>,
    done: Condvar,
}

impl Completion {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Completion {
            state: Mutex::new(State::Pending(None)),
            done: Condvar::new(),
        })
    }

    /// Completes the send; runs a registered callback in this thread.
    pub(crate) fn complete(&self, result: Result<SendReceipt>) {
        let mut state = self.state.lock();
        let callback = match &mut *state {
            State::Pending(callback) => callback.take(),
            State::Done(_) => return,
        };
        *state = State::Done(result.clone());
        drop(state);
        self.done.notify_all();
        if let Some(callback) = callback {
            callback(result);
        }
    }
}

/// The handle of an asynchronous send ([`crate::Producer::send_async`]): completes when the
/// record reaches the requested [`AckMode`], or fails. Wait on it, or register a callback.
/// Dropping it does not cancel the send.
pub struct SendHandle {
    completion: Arc<Completion>,
}

impl SendHandle {
    pub(crate) fn new(completion: Arc<Completion>) -> Self {
        SendHandle { completion }
    }

    pub(crate) fn done(result: Result<SendReceipt>) -> Self {
        let completion = Completion::new();
        completion.complete(result);
        SendHandle { completion }
    }

    /// Whether the send has completed (successfully or not).
    pub fn is_done(&self) -> bool {
        matches!(*self.completion.state.lock(), State::Done(_))
    }

    /// Blocks until the send completes.
    ///
    /// # Errors
    ///
    /// The send's error: a failed append, or a failed sync (`Poisoned`).
    pub fn wait(self) -> Result<SendReceipt> {
        let mut state = self.completion.state.lock();
        loop {
            if let State::Done(result) = &*state {
                return result.clone();
            }
            self.completion.done.wait(&mut state);
        }
    }

    /// Blocks until the send completes or `timeout` passes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if it did not complete in time (the handle stays usable), or the
    /// send's own error.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<SendReceipt> {
        let deadline = Instant::now() + timeout;
        let mut state = self.completion.state.lock();
        loop {
            if let State::Done(result) = &*state {
                return result.clone();
            }
            if self
                .completion
                .done
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                if let State::Done(result) = &*state {
                    return result.clone();
                }
                return Err(ErrorKind::Timeout.into());
            }
        }
    }

    /// Calls `callback` with the result when the send completes: at once in this thread if it
    /// already has, otherwise on the thread that completes it (the Wharf's flusher thread;
    /// keep callbacks short).
    pub fn on_complete(self, callback: impl FnOnce(Result<SendReceipt>) + Send + 'static) {
        let mut state = self.completion.state.lock();
        match &mut *state {
            State::Done(result) => {
                let result = result.clone();
                drop(state);
                callback(result);
            }
            State::Pending(slot) => *slot = Some(Box::new(callback)),
        }
    }
}

impl fmt::Debug for SendHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendHandle")
            .field("done", &self.is_done())
            .finish()
    }
}
