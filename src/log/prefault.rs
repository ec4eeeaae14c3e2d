//! Faulting in the active segment ahead of the writer, on a background thread
//! (`wharf-prefault`), when the writer is fast enough for it to pay.
//!
//! Why: the first write to each page of a freshly allocated segment takes a page fault in
//! which the kernel allocates and zeroes a page-cache page. Measured on the development
//! machine (2 vCPU, ext4), writing 140-byte records into a mapped file cost 73 ns per record
//! when each page was faulted by the writer, and 29 ns when another thread had populated the
//! range beforehand (`MADV_POPULATE_WRITE`); populating in the writer's own thread saved
//! nothing.
//!
//! What it costs: a populated page is a dirty page of zeros. A sync that comes before the
//! writer reaches it writes those zeros to the device, and the writer's data dirties the page
//! again: every page populated ahead at a background sync is written twice. Populating a fixed
//! 4 MiB ahead made 100-byte records at 100 per second (one sync a second) write 60 bytes to
//! the device per byte appended. So a [`Pace`] per partition measures how fast its writer
//! moves (on the Wharf's clock, over windows of [`PACE_WINDOW_MS`], or [`PACE_WINDOW_BYTES`]
//! if it writes those sooner) and populates only as far ahead as the writer gets in
//! [`LEAD_MS`] (at most [`MAX_LEAD_BYTES`]), and only while what lies populated ahead of it
//! ([`PREFAULT_GAP_BYTES`] plus that lead) is at most a [`ZERO_WRITE_SHARE`]th of what it
//! writes in a flush interval: then background syncs write at most that share more than the
//! data. Below that speed (about 9 MB/s with the default 1 s flush interval) nothing new is
//! populated (a window too slow halves the lead rather than ending it, so a fast writer
//! preempted for a moment keeps ahead); the writer's own page faults then cost it under 1% of
//! a core. A new writer pays for its first window: measured, about 1.5 ms more over its first
//! 10,000 records of 100 B than when populating from its first append. A sync per send
//! (`Fsync`) rewrites its last page at every send anyway, so the zeros add little there.
//!
//! Populating never changes a byte (a present page is only mapped; a missing one reads as
//! zeros from the allocated, unwritten blocks), so it may overlap the writer safely. The
//! range is reserved (allocated) before it is requested, like every mapped write. Requests go
//! through a small bounded channel and are dropped when it is full: the writer then simply
//! takes the faults itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;

use super::mmap::SharedMap;

/// `EINVAL` on Linux.
const EINVAL: i32 = 22;

/// Distance kept between the writer and the start of a populated range.
pub(crate) const PREFAULT_GAP_BYTES: u64 = 256 << 10;

/// Bytes populated per system call.
const POPULATE_STEP_BYTES: usize = 128 << 10;

/// How often a writer's speed is measured, in ms of the Wharf's clock.
pub(crate) const PACE_WINDOW_MS: i64 = 10;

/// A window also ends once the writer has written this much in it (after at least 1 ms, so
/// one large `send_batch`, whose batches share one clock reading, is not taken for speed): a
/// writer of 100 MB/s or more is recognized within a few ms of starting.
pub(crate) const PACE_WINDOW_BYTES: u64 = 1 << 20;

/// How far ahead of the writer to populate, in ms of writing at its measured speed: twice the
/// window, so the range populated after one measurement lasts until the next.
pub(crate) const LEAD_MS: u64 = 20;

/// The most populated ahead of the writer (beyond the gap).
pub(crate) const MAX_LEAD_BYTES: u64 = 4 << 20;

/// Populate only while the range ahead of the writer is at most this share (1/20: 5%) of
/// what the writer writes between two background syncs.
pub(crate) const ZERO_WRITE_SHARE: u64 = 20;

/// A window too slow to earn a lead halves the one it had (down to this, then 0), rather than
/// dropping it: a fast writer preempted for a window keeps most of its lead, and one that
/// really slowed down loses it within a few windows (and populates nothing new meanwhile: its
/// end stays behind what was populated already).
const MIN_DECAYED_LEAD_BYTES: u64 = 128 << 10;

/// A writer's speed, measured over windows of [`PACE_WINDOW_MS`], and the lead it earns.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    window_start_ms: i64,
    window_bytes: u64,
    lead_bytes: u64,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            // The first append starts the first window.
            window_start_ms: i64::MIN,
            window_bytes: 0,
            lead_bytes: 0,
        }
    }
}

impl Pace {
    /// Records `bytes` appended at `now_ms`; returns how far ahead of the writer (past the gap)
    /// to keep populated, 0 for not at all. On the hot path: a measurement once per window.
    ///
    /// Concurrent senders read the clock before they take the writer's lock, so appends may
    /// come a ms out of order: a time up to a window before the window's start is taken as
    /// its start. One further back (the clock was set back) starts the window again.
    #[inline]
    pub(crate) fn on_append(&mut self, now_ms: i64, bytes: u64, flush_interval_ms: u64) -> u64 {
        self.window_bytes = self.window_bytes.saturating_add(bytes);
        let elapsed = now_ms.saturating_sub(self.window_start_ms);
        if elapsed >= PACE_WINDOW_MS || elapsed > 0 && self.window_bytes >= PACE_WINDOW_BYTES {
            self.measure(now_ms, elapsed, flush_interval_ms);
        } else if elapsed < -PACE_WINDOW_MS {
            self.window_start_ms = now_ms;
            self.window_bytes = 0;
        }
        self.lead_bytes
    }

    /// Ends a window of `elapsed` ms (more than 0).
    fn measure(&mut self, now_ms: i64, elapsed: i64, flush_interval_ms: u64) {
        let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX);
        let per_ms = self.window_bytes.checked_div(elapsed).unwrap_or(0);
        let lead = per_ms.saturating_mul(LEAD_MS).min(MAX_LEAD_BYTES);
        let per_flush = per_ms.saturating_mul(flush_interval_ms);
        let ahead = PREFAULT_GAP_BYTES + lead;
        self.lead_bytes = if ahead.saturating_mul(ZERO_WRITE_SHARE) <= per_flush {
            lead
        } else if self.lead_bytes >= 2 * MIN_DECAYED_LEAD_BYTES {
            self.lead_bytes / 2
        } else {
            0
        };
        self.window_start_ms = now_ms;
        self.window_bytes = 0;
    }
}

/// A range of a mapping to fault in.
#[derive(Debug)]
struct Request {
    map: Arc<SharedMap>,
    start: usize,
    len: usize,
}

/// The queue to the prefault thread, and the thread.
#[derive(Debug)]
pub(crate) struct Prefaulter {
    tx: Mutex<Option<Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The Wharf's background sync interval, in ms.
    flush_interval_ms: u64,
}

impl Prefaulter {
    /// Starts the thread for a Wharf that syncs in the background every `flush_interval`;
    /// `None` if it cannot be started (writes then fault pages themselves).
    pub(crate) fn start(flush_interval: Duration) -> Option<Arc<Self>> {
        let (tx, rx) = crossbeam_channel::bounded::<Request>(16);
        let thread = thread::Builder::new()
            .name("wharf-prefault".into())
            .spawn(move || run(&rx))
            .ok()?;
        Some(Arc::new(Prefaulter {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            flush_interval_ms: u64::try_from(flush_interval.as_millis()).unwrap_or(u64::MAX),
        }))
    }

    /// The Wharf's background sync interval, in ms (see [`Pace`]).
    pub(crate) fn flush_interval_ms(&self) -> u64 {
        self.flush_interval_ms
    }

    /// Asks for `[start, start + len)` of `map` to be faulted in; a full queue drops the
    /// request.
    pub(crate) fn request(&self, map: &Arc<SharedMap>, start: u64, len: u64) {
        let (Ok(start), Ok(len)) = (usize::try_from(start), usize::try_from(len)) else {
            return;
        };
        if let Some(tx) = self.tx.lock().as_ref() {
            match tx.try_send(Request {
                map: Arc::clone(map),
                start,
                len,
            }) {
                Ok(()) | Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Stops the thread (after the requests already queued) and waits for it.
    pub(crate) fn stop(&self) {
        drop(self.tx.lock().take());
        if let Some(thread) = self.thread.lock().take() {
            // The loop cannot panic on bad input; a panic would already have been reported.
            let _joined = thread.join();
        }
    }
}

impl Drop for Prefaulter {
    /// A Wharf whose open failed half way lets go of its prefaulter here: the thread is
    /// stopped and joined, not left to exit on its own.
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(rx: &Receiver<Request>) {
    let supported = AtomicBool::new(true);
    for request in rx {
        if !supported.load(Ordering::Relaxed) {
            continue;
        }
        // In steps: populating holds the process's mmap lock (for reading), and a writer's
        // mmap or munmap (a roll, a segment unloaded) queues behind it, and every page fault
        // behind that. Measured: one 4 MiB call held it for about 3 ms.
        let end = request.start + request.len;
        let mut at = request.start;
        while at < end {
            let step = POPULATE_STEP_BYTES.min(end - at);
            if let Err(e) = request.map.populate(at, step) {
                // EINVAL: a kernel without MADV_POPULATE_WRITE (before Linux 5.14); stop
                // trying, the writer faults its pages itself. Other errors (EFAULT for a
                // segment trimmed meanwhile) concern this request only.
                if e.raw_os_error() == Some(EINVAL) {
                    supported.store(false, Ordering::Relaxed);
                }
                break;
            }
            at += step;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends `count` batches of `bytes`, `gap_ms` apart from `start_ms`; the last lead.
    fn run(pace: &mut Pace, start_ms: i64, count: i64, gap_ms: i64, bytes: u64) -> u64 {
        (0..count).fold(0, |_, i| {
            pace.on_append(start_ms + i * gap_ms, bytes, 1_000)
        })
    }

    /// A pace that has measured a writer of 655 MB/s from 0 to 100 ms.
    fn fast() -> Pace {
        let mut pace = Pace::default();
        assert_eq!(run(&mut pace, 0, 100, 1, 640 << 10), MAX_LEAD_BYTES);
        pace
    }

    #[test]
    fn a_slow_writer_gets_nothing_populated_ahead() {
        let mut pace = Pace::default();
        // 100 records of 145 B a second.
        assert_eq!(run(&mut pace, 0, 1_000, 10, 145), 0);
        // 1 MB/s: populating 256 KiB ahead would rewrite a quarter of it at each sync.
        assert_eq!(run(&mut pace, 10_000, 1_000, 1, 1_000), 0);
        // One large batch: its appends all have the same time.
        assert_eq!(run(&mut pace, 20_000, 300, 0, 64 << 10), 0);
    }

    #[test]
    fn a_fast_writer_gets_a_lead_in_proportion_to_its_speed() {
        // 640 KiB per ms (655 MB/s, capped), known once 1 MiB is written, after 2 ms.
        let mut pace = Pace::default();
        assert_eq!(run(&mut pace, 0, 2, 1, 640 << 10), 0);
        assert_eq!(pace.on_append(2, 640 << 10, 1_000), MAX_LEAD_BYTES);
        // 20 MB/s: 20 ms of it is 400 KB.
        assert_eq!(run(&mut pace, 1_000, 100, 1, 20_000), 20_000 * LEAD_MS);
    }

    #[test]
    fn a_slow_window_halves_the_lead_and_slow_ones_end_it() {
        let mut pace = fast();
        // Stalled for 200 ms, then fast again.
        assert_eq!(pace.on_append(300, 100, 1_000), MAX_LEAD_BYTES / 2);
        assert_eq!(run(&mut pace, 301, 20, 1, 640 << 10), MAX_LEAD_BYTES);
        // Slowed down for good: 4 MiB halves to 128 KiB, then nothing.
        let leads: Vec<u64> = (1..=7)
            .map(|i| pace.on_append(320 + i * 100, 100, 1_000))
            .collect();
        assert_eq!(
            leads,
            [2 << 20, 1 << 20, 512 << 10, 256 << 10, 128 << 10, 0, 0]
        );
    }

    #[test]
    fn times_a_ms_out_of_order_keep_the_window_and_a_clock_set_back_restarts_it() {
        // Concurrent senders: each read the clock before waiting for the lock.
        let mut pace = fast();
        for t in 100..200 {
            for now in [t, t - 1] {
                assert_eq!(pace.on_append(now, 320 << 10, 1_000), MAX_LEAD_BYTES);
            }
        }
        // The clock set back an hour: the lead stands until a window of the new times ends.
        let back = -3_600_000;
        assert_eq!(pace.on_append(back, 100, 1_000), MAX_LEAD_BYTES);
        assert_eq!(run(&mut pace, back + 1, 5, 1, 640 << 10), MAX_LEAD_BYTES);
        assert_eq!(pace.on_append(back + 500, 100, 1_000), MAX_LEAD_BYTES / 2);
    }

    #[test]
    fn a_short_flush_interval_stops_populating() {
        let mut pace = fast();
        let lead = (0..100).fold(0, |_, i| pace.on_append(1_000 + i, 640 << 10, 50));
        assert_eq!(
            lead, 0,
            "4 MiB ahead is more than a 20th of what 50 ms of writing syncs"
        );
    }
}
