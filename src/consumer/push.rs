//! [`PushConsumer`]: RocketMQ's listener model. A poll thread (`wharf-push-poll`) owns a
//! [`Consumer`] and hands each delivery to a pool of worker threads (`wharf-push-<n>`), which
//! run the listener and settle the delivery by what it returns:
//!
//! - [`ConsumeStatus::Success`]: the delivery is acknowledged;
//! - [`ConsumeStatus::ReconsumeLater`], or a panic: the delivery is retried ([`Delivery::nack`]) after the
//!   delay the listener chose ([`ConsumeContext::set_delay_level`]; RocketMQ's schedule by
//!   default), or dead-lettered after `max_reconsume_times`.
//!
//! Deliveries are processed concurrently and in no particular order (RocketMQ's
//! `MessageListenerConcurrently`). The group's committed offset is the lowest offset not yet
//! settled ([`CommitPolicy::Acked`], every [`PUSH_COMMIT_INTERVAL`], and durably at
//! shutdown), so a crash delivers again what was not finished and skips nothing.
//!
//! Errors of the machinery (a failed retry or dead-letter write, a failed commit) go to the
//! `on_error` hook; the delivery involved stays pending and comes again after `ack_wait` (an
//! expiry is a failed attempt: past `max_reconsume_times` the record is dead-lettered).

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::builder::ConsumerBuilder;
use super::consumer::{Consumer, Interrupter};
use super::delivery::Delivery;
use super::options::{CommitPolicy, StartFrom};
use crate::error::{Error, ErrorKind, Result};
use crate::retry::policy::{DelayLevel, Retry};
use crate::wharf::Inner;
use crate::writer::ack::AckMode;

/// Default number of worker threads running the listener.
pub const DEFAULT_PUSH_THREADS: usize = 4;
/// How often a push consumer commits its group's progress (the lowest unsettled offset).
pub const PUSH_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Deliveries queued for the workers per worker, beyond those being processed.
const QUEUED_PER_THREAD: usize = 16;
/// Longest a poll waits, so commits happen while idle.
const POLL_WAIT: Duration = Duration::from_millis(500);
/// Pause after a failed poll before the next.
const POLL_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// What a listener says about a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeStatus {
    /// Processed: acknowledge it.
    Success,
    /// Failed: retry it later (RocketMQ's `RECONSUME_LATER`).
    ReconsumeLater,
}

/// What a listener may set about the delivery it is given.
#[derive(Debug, Clone, Default)]
pub struct ConsumeContext {
    retry: Retry,
    reason: Option<String>,
}

impl ConsumeContext {
    /// The delay level of the retry if the listener returns `ReconsumeLater` (RocketMQ's
    /// `delayLevelWhenNextConsume`). Default: RocketMQ's schedule ([`Retry::Default`]).
    pub fn set_delay_level(&mut self, level: u8) {
        self.retry = Retry::Level(DelayLevel::new(level));
    }

    /// How the retry waits if the listener returns `ReconsumeLater`.
    pub fn set_retry(&mut self, retry: Retry) {
        self.retry = retry;
    }

    /// Why the delivery failed, recorded with its retry or dead-letter copy.
    pub fn set_reason(&mut self, reason: impl Into<String>) {
        self.reason = Some(reason.into());
    }
}

type Listener = dyn Fn(&Delivery, &mut ConsumeContext) -> ConsumeStatus + Send + Sync;
type ErrorHook = dyn Fn(&Error) + Send + Sync;

/// Builds a [`PushConsumer`]: `wharf.push_consumer(group).subscribe([..]).listener(..)
/// .threads(n).start()`. Defaults as [`ConsumerBuilder`]'s, and
/// [`DEFAULT_PUSH_THREADS`] workers.
#[must_use]
pub struct PushConsumerBuilder {
    dir: PathBuf,
    consumer: ConsumerBuilder,
    listener: Option<Arc<Listener>>,
    on_error: Option<Arc<ErrorHook>>,
    threads: usize,
}

impl PushConsumerBuilder {
    pub(crate) fn new(wharf: Arc<Inner>, group: &str) -> Self {
        PushConsumerBuilder {
            dir: wharf.shared.dir.clone(),
            consumer: ConsumerBuilder::new(wharf, group),
            listener: None,
            on_error: None,
            threads: DEFAULT_PUSH_THREADS,
        }
    }

    /// The topics to consume (with the group's retry topic); see
    /// [`ConsumerBuilder::subscribe`].
    pub fn subscribe<S: Into<String>>(mut self, topics: impl IntoIterator<Item = S>) -> Self {
        self.consumer = self.consumer.subscribe(topics);
        self
    }

    /// Runs for every delivery, on a worker thread. A panic counts as
    /// [`ConsumeStatus::ReconsumeLater`] and does not stop the worker.
    pub fn listener(
        mut self,
        listener: impl Fn(&Delivery, &mut ConsumeContext) -> ConsumeStatus + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Worker threads running the listener. Default [`DEFAULT_PUSH_THREADS`]; at least 1.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// See [`ConsumerBuilder::start_from`].
    pub fn start_from(mut self, start: StartFrom) -> Self {
        self.consumer = self.consumer.start_from(start);
        self
    }

    /// Durability of commits and of retry and dead-letter copies; see
    /// [`ConsumerBuilder::commit_ack`]. Default `Fsync`.
    pub fn commit_ack(mut self, ack: AckMode) -> Self {
        self.consumer = self.consumer.commit_ack(ack);
        self
    }

    /// See [`ConsumerBuilder::ack_wait`].
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.consumer = self.consumer.ack_wait(wait);
        self
    }

    /// See [`ConsumerBuilder::max_in_flight`].
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.consumer = self.consumer.max_in_flight(max);
        self
    }

    /// See [`ConsumerBuilder::max_reconsume_times`].
    pub fn max_reconsume_times(mut self, times: u32) -> Self {
        self.consumer = self.consumer.max_reconsume_times(times);
        self
    }

    /// Called with errors of polls, settlements and commits (the deliveries involved stay
    /// pending and come again). Default: none.
    pub fn on_error(mut self, hook: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(hook));
        self
    }

    /// Joins the group and starts the threads.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] without a listener or a subscription; as
    /// [`ConsumerBuilder::build`]; an I/O error starting a thread.
    pub fn start(self) -> Result<PushConsumer> {
        let listener = self
            .listener
            .ok_or_else(|| Error::invalid_config("a push consumer needs a listener"))?;
        let consumer = self
            .consumer
            .commit(CommitPolicy::Acked {
                interval: PUSH_COMMIT_INTERVAL,
            })
            .build()?;
        let group = consumer.group().to_owned();
        let interrupter = consumer.interrupter();
        let stop = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = crossbeam_channel::bounded(self.threads * QUEUED_PER_THREAD);
        let mut workers = Vec::with_capacity(self.threads);
        for n in 0..self.threads {
            let worker = Worker {
                receiver: receiver.clone(),
                listener: Arc::clone(&listener),
                on_error: self.on_error.clone(),
                stop: Arc::clone(&stop),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("wharf-push-{n}"))
                .spawn(move || worker.run());
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    stop.store(true, Ordering::Release);
                    drop(sender);
                    join_all(workers);
                    return Err(Error::io("start a push consumer thread for", &self.dir, e));
                }
            }
        }
        let poller = Poller {
            consumer,
            sender,
            workers,
            stop: Arc::clone(&stop),
            on_error: self.on_error,
            batch: self.threads * QUEUED_PER_THREAD,
        };
        let thread = std::thread::Builder::new()
            .name("wharf-push-poll".into())
            .spawn(move || poller.run())
            .map_err(|e| Error::io("start a push consumer thread for", &self.dir, e))?;
        Ok(PushConsumer {
            group,
            stop,
            interrupter,
            thread: Some(thread),
        })
    }
}

impl fmt::Debug for PushConsumerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConsumerBuilder")
            .field("consumer", &self.consumer)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// A running listener-driven consumer. Built with [`crate::Wharf::push_consumer`]; stopped by
/// [`PushConsumer::shutdown`] (or on drop).
pub struct PushConsumer {
    group: String,
    stop: Arc<AtomicBool>,
    interrupter: Interrupter,
    thread: Option<JoinHandle<Result<()>>>,
}

impl PushConsumer {
    /// The group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Stops: no new delivery is started; waits until the listener calls in progress return
    /// and their deliveries are settled; commits the group's progress durably and leaves the
    /// group. Deliveries fetched but not started stay pending (delivered again later).
    ///
    /// # Errors
    ///
    /// The final commit's error.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop_threads()
    }

    fn stop_threads(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Release);
        self.interrupter.interrupt();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(Error::from(ErrorKind::Closed))),
            None => Ok(()),
        }
    }
}

impl Drop for PushConsumer {
    fn drop(&mut self) {
        // Best effort: what is not committed is delivered again.
        let _stopped = self.stop_threads();
    }
}

impl fmt::Debug for PushConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConsumer")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// The poll thread.
struct Poller {
    consumer: Consumer,
    sender: Sender<Delivery>,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    on_error: Option<Arc<ErrorHook>>,
    batch: usize,
}

impl Poller {
    fn run(mut self) -> Result<()> {
        'poll: while !self.stop.load(Ordering::Acquire) {
            match self.consumer.poll_batch(self.batch, POLL_WAIT) {
                Ok(deliveries) => {
                    for delivery in deliveries {
                        // Blocks while the workers are busy: backpressure on the poll.
                        if self.sender.send(delivery).is_err() || self.stop.load(Ordering::Acquire)
                        {
                            break 'poll;
                        }
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::Closed) => break,
                Err(e) => {
                    report(self.on_error.as_ref(), &e);
                    std::thread::sleep(POLL_ERROR_BACKOFF);
                }
            }
        }
        drop(self.sender);
        join_all(self.workers);
        self.consumer.close()
    }
}

/// A worker thread.
struct Worker {
    receiver: Receiver<Delivery>,
    listener: Arc<Listener>,
    on_error: Option<Arc<ErrorHook>>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(self) {
        for delivery in &self.receiver {
            if self.stop.load(Ordering::Acquire) {
                // Not started: left pending for a later delivery.
                continue;
            }
            let mut context = ConsumeContext::default();
            let status = catch_unwind(AssertUnwindSafe(|| {
                (self.listener)(&delivery, &mut context)
            }))
            .unwrap_or_else(|panic| {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                context.set_reason(format!("the listener panicked: {text}"));
                ConsumeStatus::ReconsumeLater
            });
            let settled = match status {
                ConsumeStatus::Success => delivery.ack(),
                ConsumeStatus::ReconsumeLater => match &context.reason {
                    Some(reason) => delivery.nack_with_reason(context.retry, reason),
                    None => delivery.nack(context.retry),
                },
            };
            if let Err(e) = settled {
                report(self.on_error.as_ref(), &e);
            }
        }
    }
}

fn report(hook: Option<&Arc<ErrorHook>>, error: &Error) {
    if let Some(hook) = hook {
        hook(error);
    }
}

fn join_all(workers: Vec<JoinHandle<()>>) {
    for worker in workers {
        // A worker's own panics are caught around the listener; nothing else can panic.
        let _joined = worker.join();
    }
}
