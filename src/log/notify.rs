//! Waking readers when data arrives, without polling.
//!
//! A waiter registers a [`Signal`] with one or more partitions' [`Watchers`], re-checks the
//! condition, then waits on the signal. An append publishes its new end, then notifies the
//! registered signals. Both sides use sequentially consistent operations on the end offset and
//! the watcher count, so either the appender sees the waiter registered or the waiter sees the
//! new end: no wake-up is lost. With no waiter registered an append pays one atomic load.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// A wake-up flag a thread can wait on.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    fired: Mutex<bool>,
    cv: Condvar,
}

impl Signal {
    pub(crate) fn notify(&self) {
        *self.fired.lock() = true;
        self.cv.notify_all();
    }

    /// Waits until notified or `deadline`; returns whether it was notified, and re-arms.
    pub(crate) fn wait_until(&self, deadline: Instant) -> bool {
        let mut fired = self.fired.lock();
        while !*fired {
            if self.cv.wait_until(&mut fired, deadline).timed_out() {
                break;
            }
        }
        std::mem::replace(&mut *fired, false)
    }
}

/// The signals to notify when a partition gets data.
///
/// A signal stays registered while its owner consumes the partition, but an append notifies
/// only while at least one owner is actually waiting (between [`Watchers::wait_begin`] and
/// [`Watchers::wait_end`]): a busy consumer costs an append one atomic load.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    waiting: AtomicUsize,
    list: Mutex<Vec<Arc<Signal>>>,
}

impl Watchers {
    pub(crate) fn register(&self, signal: &Arc<Signal>) {
        self.list.lock().push(Arc::clone(signal));
    }

    pub(crate) fn unregister(&self, signal: &Arc<Signal>) {
        let mut list = self.list.lock();
        if let Some(i) = list.iter().position(|s| Arc::ptr_eq(s, signal)) {
            list.swap_remove(i);
        }
    }

    /// A registered owner is about to wait: call before re-checking for data.
    pub(crate) fn wait_begin(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
    }

    /// The owner stopped waiting.
    pub(crate) fn wait_end(&self) {
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// Notifies every registered signal if anyone waits. Call after publishing the new end
    /// with `SeqCst`.
    #[inline]
    pub(crate) fn notify(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            for signal in self.list.lock().iter() {
                signal.notify();
            }
        }
    }

    /// Notifies every registered signal (the partition closed or went away).
    pub(crate) fn notify_all(&self) {
        for signal in self.list.lock().iter() {
            signal.notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_notification_before_the_wait_is_not_lost() {
        let watchers = Watchers::default();
        let signal = Arc::new(Signal::default());
        watchers.register(&signal);
        watchers.notify();
        assert!(
            !signal.wait_until(Instant::now()),
            "nobody waits: no notification"
        );
        watchers.wait_begin();
        watchers.notify();
        assert!(
            signal.wait_until(Instant::now() + Duration::from_secs(5)),
            "not lost"
        );
        assert!(
            !signal.wait_until(Instant::now() + Duration::from_millis(10)),
            "re-armed"
        );
        watchers.unregister(&signal);
        watchers.notify();
        assert!(!signal.wait_until(Instant::now()));
        watchers.wait_end();
    }
}
