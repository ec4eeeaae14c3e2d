//! Time. Every timestamp wharf assigns comes from a [`Clock`], so tests can use a
//! [`ManualClock`] and never sleep.
//!
//! Recovery never looks at the clock: what survives a crash is decided by offsets and
//! checksums alone (a clock that jumps cannot move a recovery point).

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// Milliseconds since the Unix epoch, as Kafka record timestamps are.
///
/// Negative values are allowed (times before 1970) and ordered as integers.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The timestamp `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            // Integer milliseconds without `Duration::as_millis`'s 128-bit arithmetic: this is
            // on every append's path.
            Ok(d) => Timestamp(
                i64::try_from(d.as_secs()).map_or(i64::MAX, |s| s.saturating_mul(1_000))
                    + i64::from(d.subsec_millis()),
            ),
            Err(_) => Timestamp::from(SystemTime::now()),
        }
    }

    /// This timestamp as a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        let magnitude = Duration::from_millis(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }
}

impl From<SystemTime> for Timestamp {
    /// Converts to milliseconds since the epoch, saturating at `i64::MIN`/`i64::MAX`.
    fn from(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Timestamp(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
            Err(before) => {
                Timestamp(i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms))
            }
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(ts: Timestamp) -> Self {
        ts.to_system_time()
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}ms)", self.0)
    }
}

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current wall-clock time.
    fn now(&self) -> Timestamp;

    /// Registers `callback` to be called whenever the time is changed by other means than its
    /// passing (a clock that is set or advanced by hand). Threads that sleep until a time on
    /// this clock (the delay scheduler) register here so a jump wakes them. The default does
    /// nothing: a real clock moves by itself, and sleepers wake at least once a second.
    fn on_change(&self, callback: ClockCallback) {
        drop(callback);
    }
}

/// What [`Clock::on_change`] calls.
pub type ClockCallback = Box<dyn Fn() + Send + Sync>;

/// The operating system's clock (the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to; for tests and simulations. Setting or advancing it
/// wakes the threads sleeping until a time on it ([`Clock::on_change`]).
#[derive(Default)]
pub struct ManualClock {
    millis: AtomicI64,
    callbacks: Mutex<Vec<ClockCallback>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish_non_exhaustive()
    }
}

impl ManualClock {
    /// A clock that reads `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            millis: AtomicI64::new(start.as_millis()),
            callbacks: Mutex::new(Vec::new()),
        }
    }

    /// Sets the time (it may go backwards, as a real clock can).
    pub fn set(&self, now: Timestamp) {
        self.millis.store(now.as_millis(), Ordering::SeqCst);
        self.changed();
    }

    /// Moves the time forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(ms))
            });
        self.changed();
    }

    fn changed(&self) {
        for callback in self.callbacks.lock().iter() {
            callback();
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.millis.load(Ordering::SeqCst))
    }

    fn on_change(&self, callback: ClockCallback) {
        self.callbacks.lock().push(callback);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trips_through_system_time() {
        for ms in [0, 1, 1_700_000_000_123, -86_400_000] {
            let ts = Timestamp::from_millis(ms);
            assert_eq!(Timestamp::from(ts.to_system_time()), ts);
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        assert_eq!(clock.now().as_millis(), 1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now().as_millis(), 3_000);
        let changes = std::sync::Arc::new(AtomicI64::new(0));
        let seen = std::sync::Arc::clone(&changes);
        clock.on_change(Box::new(move || {
            seen.fetch_add(1, Ordering::SeqCst);
        }));
        clock.set(Timestamp::from_millis(500));
        assert_eq!(clock.now().as_millis(), 500);
        clock.advance(Duration::from_millis(1));
        assert_eq!(changes.load(Ordering::SeqCst), 2, "each change is reported");
    }
}
