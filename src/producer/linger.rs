//! The linger thread: appends producers' open batches once they have waited `linger`, so a
//! `NoWait` record reaches the segment within about `linger` of its send however slowly
//! records come. One thread per Wharf, started by the first batch opened, serving every
//! producer; it stops when the Wharf closes.
//!
//! Lock order: an accumulator's lock, then the timer's. The thread never holds the timer's
//! lock while it appends.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::accumulator::Accumulator;

/// The Wharf's linger timer.
pub(crate) struct Linger {
    /// Whether to run the thread (tests run without background threads: batches are then
    /// appended when full, on flush, sync, close and drop).
    threaded: bool,
    state: Mutex<State>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    accumulators: Vec<Weak<Accumulator>>,
    /// When the thread has to look next (`None`: nothing is open).
    next: Option<Instant>,
    started: bool,
    stopped: bool,
}

impl std::fmt::Debug for Linger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linger")
            .field("threaded", &self.threaded)
            .finish_non_exhaustive()
    }
}

impl Linger {
    pub(crate) fn new(threaded: bool) -> Arc<Self> {
        Arc::new(Linger {
            threaded,
            state: Mutex::default(),
            wake: Condvar::new(),
            thread: Mutex::new(None),
        })
    }

    /// Serves `accumulator` from now on (and flushes it on [`Self::flush_all`]).
    pub(crate) fn register(&self, accumulator: Weak<Accumulator>) {
        let mut state = self.state.lock();
        state.accumulators.retain(|a| a.strong_count() > 0);
        state.accumulators.push(accumulator);
    }

    /// A batch opened that is due at `due`.
    pub(crate) fn wake_by(self: &Arc<Self>, due: Instant) {
        let mut state = self.state.lock();
        if state.stopped || !self.threaded {
            return;
        }
        if state.next.is_none_or(|next| due < next) {
            state.next = Some(due);
            self.wake.notify_one();
        }
        if !state.started {
            state.started = true;
            let this = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("wharf-linger".into())
                .spawn(move || this.run());
            match spawned {
                Ok(handle) => *self.thread.lock() = Some(handle),
                // Without the thread, batches are appended when full, on flush, sync, close
                // and drop; the next batch opened tries again.
                Err(_) => state.started = false,
            }
        }
    }

    fn run(&self) {
        let mut state = self.state.lock();
        loop {
            if state.stopped {
                return;
            }
            match state.next {
                None => self.wake.wait(&mut state),
                Some(next) if Instant::now() < next => {
                    self.wake.wait_until(&mut state, next);
                }
                Some(_) => {
                    state.next = None;
                    let live: Vec<Arc<Accumulator>> = state
                        .accumulators
                        .iter()
                        .filter_map(Weak::upgrade)
                        .collect();
                    drop(state);
                    let now = Instant::now();
                    let next = live.iter().filter_map(|a| a.flush_due(now)).min();
                    drop(live);
                    state = self.state.lock();
                    if let Some(next) = next {
                        state.next = Some(state.next.map_or(next, |n| n.min(next)));
                    }
                }
            }
        }
    }

    /// Appends every producer's open batches (a sync or a close).
    ///
    /// # Errors
    ///
    /// The first producer's loss not reported yet ([`crate::ErrorKind::Unsent`]), which is
    /// then reported here instead of to that producer; the losses of the others stay for
    /// their own next calls.
    pub(crate) fn flush_all(&self) -> crate::Result<()> {
        let live: Vec<Arc<Accumulator>> = {
            let state = self.state.lock();
            state
                .accumulators
                .iter()
                .filter_map(Weak::upgrade)
                .collect()
        };
        let mut result = Ok(());
        for accumulator in live {
            if result.is_ok() {
                result = accumulator.flush();
            } else {
                accumulator.append_all();
            }
        }
        result
    }

    /// Stops the thread (a close); batches still open are appended by [`Self::flush_all`]
    /// or when their producer goes.
    pub(crate) fn stop(&self) {
        self.state.lock().stopped = true;
        self.wake.notify_all();
        if let Some(handle) = self.thread.lock().take() {
            let _joined = handle.join();
        }
    }
}
