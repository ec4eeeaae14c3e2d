//! Redelivery after `ack_wait`, through the public API: many deliveries expiring at once, the
//! bound `max_in_flight` puts on the offsets from a partition's lowest pending one to its
//! position, and the dead-lettering of a record left unacknowledged past
//! `max_reconsume_times` expiries (durable retries counted too), including a failed
//! dead-letter write.
//!
//! - `ten_thousand_expired_deliveries_each_come_back_exactly_once`: 10,000 deliveries in
//!   flight pass their `ack_wait` together; every one is delivered again exactly once, with
//!   attempt 2, and nothing after they are acked.
//! - `max_in_flight_bounds_the_offsets_from_the_lowest_pending_one`: later acks do not make
//!   room while the lowest delivery is pending; acking it does.
//! - `an_ack_that_makes_room_wakes_a_poll_waiting_at_the_bound`: a poll at the bound sleeps
//!   and is woken by an ack from another thread, not by its timeout.
//! - `one_record_never_acked_among_a_million_is_dead_lettered_and_memory_stays_bounded`: the
//!   consumer's tracked entries stay within twice `max_in_flight`, the record is delivered
//!   `1 + max_reconsume_times` times and then dead-lettered with its reason and count, and the
//!   `Acked` commit moves past it to the log end.
//! - `max_reconsume_times_zero_dead_letters_at_the_first_expiry`.
//! - `expiries_add_to_the_retries_of_a_record_from_the_retry_topic`: the failed attempts are
//!   the durable reconsume count plus the expiries.
//! - `a_failed_dead_letter_write_keeps_the_record_pending_and_is_reported`: over the disk
//!   quota the write fails with `Full` from `poll`; the record is not delivered again, and
//!   reaches the dead-letter topic once there is space.
//!
//! No assertion is about speed: waits have generous hang guards that fail with a message.

#![allow(clippy::cast_possible_truncation)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wharf::{
    AckMode, Clock, CommitPolicy, Consumer, DelayLevel, Delivery, ErrorKind, ManualClock, Record,
    Retry, Timestamp, TopicConfig, TopicPartition, Wharf,
};

/// Hang guard for anything that should happen "soon": far beyond what it needs.
const GUARD: Duration = Duration::from_secs(60);
/// A short poll.
const SHORT: Duration = Duration::from_millis(20);
/// The `ack_wait` of the cases that wait for expiries.
const ACK_WAIT: Duration = Duration::from_millis(100);
/// Longer than any case: nothing expires.
const LONG: Duration = Duration::from_secs(3_600);
/// The reason a record left unacknowledged is dead-lettered with.
const NOT_ACKNOWLEDGED: &str = "not acknowledged within ack_wait";

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// A Wharf in a fresh directory with topic `t` of one partition.
fn setup() -> (tempfile::TempDir, Wharf) {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    (dir, wharf)
}

/// Sends `n` records to `t`, payload `i` (little-endian u64) for offset `i`.
fn send(wharf: &Wharf, n: u64) {
    let producer = wharf.producer().ack(AckMode::Write).build();
    let start = wharf.reader("t", 0).unwrap().end_offset();
    let mut next = start;
    while next < start + n {
        let chunk = (start + n - next).min(1_000);
        producer
            .send_batch((next..next + chunk).map(|i| Record::new("t", i.to_le_bytes().to_vec())))
            .unwrap();
        next += chunk;
    }
}

fn payload_of(offset: u64) -> [u8; 8] {
    offset.to_le_bytes()
}

/// Polls until `n` deliveries came; fails after the hang guard.
fn drain(consumer: &mut Consumer, n: usize) -> Vec<Delivery> {
    let deadline = Instant::now() + GUARD;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "hang guard: only {} of {n} deliveries came",
            out.len()
        );
        out.extend(consumer.poll_batch(n - out.len(), SHORT).unwrap());
    }
    assert_eq!(out.len(), n, "poll_batch returned more than asked for");
    out
}

/// Polls for `for_how_long`; fails on any delivery.
fn assert_idle(consumer: &mut Consumer, for_how_long: Duration, why: &str) {
    let deadline = Instant::now() + for_how_long;
    while Instant::now() < deadline {
        let got = consumer.poll_batch(100, SHORT).unwrap();
        assert!(
            got.is_empty(),
            "{why}: unexpected deliveries {:?}",
            got.iter()
                .map(|d| (d.topic().to_owned(), d.offset(), d.attempt()))
                .collect::<Vec<_>>()
        );
    }
}

/// Polls until the group has a dead letter; fails after the hang guard or on a delivery.
fn wait_for_dead_letter(wharf: &Wharf, consumer: &mut Consumer, group: &str) {
    let deadline = Instant::now() + GUARD;
    while wharf
        .admin()
        .dead_letters(group, 0, 10)
        .map_or(true, |l| l.is_empty())
    {
        assert!(
            Instant::now() < deadline,
            "hang guard: nothing was dead-lettered"
        );
        if let Some(d) = consumer.poll(SHORT).unwrap() {
            panic!(
                "{d:?} (attempt {}) was delivered instead of dead-lettered",
                d.attempt()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Many deliveries expiring at once
// ---------------------------------------------------------------------------------------------

#[test]
fn ten_thousand_expired_deliveries_each_come_back_exactly_once() {
    const N: u64 = 10_000;
    let (_dir, wharf) = setup();
    send(&wharf, N);
    let ack_wait = Duration::from_millis(300);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0)])
        .ack_wait(ack_wait)
        .max_in_flight(N as usize)
        .build()
        .unwrap();
    let first = drain(&mut c, N as usize);
    assert!(first.iter().all(|d| d.attempt() == 1));
    let delivered_by = Instant::now();
    // Kept undecided (in flight) until every one is past its ack_wait.
    std::thread::sleep(ack_wait + Duration::from_millis(50));
    assert!(delivered_by.elapsed() > ack_wait);
    let mut back = BTreeSet::new();
    let deadline = Instant::now() + GUARD;
    while (back.len() as u64) < N {
        assert!(
            Instant::now() < deadline,
            "hang guard: only {} of {N} redeliveries came",
            back.len()
        );
        for d in c.poll_batch(1_000, SHORT).unwrap() {
            assert_eq!(
                d.attempt(),
                2,
                "offset {}: its first redelivery",
                d.offset()
            );
            assert_eq!(d.payload(), payload_of(d.offset()));
            assert!(
                back.insert(d.offset()),
                "offset {} came back twice",
                d.offset()
            );
            d.ack().unwrap();
        }
    }
    assert_eq!(back, (0..N).collect::<BTreeSet<u64>>());
    drop(first);
    assert_idle(
        &mut c,
        ack_wait * 2,
        "every redelivery was acked (late acks of the first deliveries change nothing)",
    );
    c.commit_acked().unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(N));
}

// ---------------------------------------------------------------------------------------------
// 2. The bound
// ---------------------------------------------------------------------------------------------

#[test]
fn max_in_flight_bounds_the_offsets_from_the_lowest_pending_one() {
    let (_dir, wharf) = setup();
    send(&wharf, 100);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0)])
        .ack_wait(LONG)
        .max_in_flight(10)
        .build()
        .unwrap();
    let mut got = drain(&mut c, 10);
    assert_eq!(
        got.iter().map(Delivery::offset).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert_idle(&mut c, SHORT * 5, "10 in flight");
    let lowest = got.remove(0);
    for d in got {
        d.ack().unwrap();
    }
    assert_idle(
        &mut c,
        SHORT * 5,
        "offset 0 is still pending: offsets 0..10 count against max_in_flight",
    );
    assert_eq!(c.position(&tp("t", 0)).unwrap(), 10);
    lowest.ack().unwrap();
    let next = drain(&mut c, 10);
    assert_eq!(
        next.iter().map(Delivery::offset).collect::<Vec<_>>(),
        (10..20).collect::<Vec<_>>()
    );
    assert_idle(&mut c, SHORT * 5, "10 in flight again");
}

#[test]
fn an_ack_that_makes_room_wakes_a_poll_waiting_at_the_bound() {
    let (_dir, wharf) = setup();
    send(&wharf, 20);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0)])
        .ack_wait(LONG)
        .max_in_flight(10)
        .build()
        .unwrap();
    let got = drain(&mut c, 10);
    let acker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        for d in got {
            d.ack().unwrap();
        }
    });
    let timeout = Duration::from_secs(120);
    let started = Instant::now();
    let d = c
        .poll(timeout)
        .unwrap()
        .expect("a record once the acks made room");
    assert!(
        started.elapsed() < timeout / 2,
        "woken by the acks, not by the poll's timeout"
    );
    assert_eq!((d.offset(), d.attempt()), (10, 1));
    acker.join().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 3. Dead-lettering a record left unacknowledged
// ---------------------------------------------------------------------------------------------

#[test]
fn one_record_never_acked_among_a_million_is_dead_lettered_and_memory_stays_bounded() {
    const TOTAL: u64 = 1_000_000;
    const STUCK: u64 = 1_234;
    const MAX_IN_FLIGHT: usize = 1_000;
    const MAX_RECONSUME_TIMES: u32 = 2;
    let (_dir, wharf) = setup();
    send(&wharf, TOTAL);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0)])
        .ack_wait(ACK_WAIT)
        .max_in_flight(MAX_IN_FLIGHT)
        .max_reconsume_times(MAX_RECONSUME_TIMES)
        .commit(CommitPolicy::Acked {
            interval: Duration::from_millis(10),
        })
        .commit_ack(AckMode::Write)
        .build()
        .unwrap();
    let t0 = tp("t", 0);
    let (mut acked, mut most_tracked) = (0u64, 0usize);
    let mut stuck_attempts = Vec::new();
    let deadline = Instant::now() + 4 * GUARD;
    while acked < TOTAL - 1 {
        assert!(
            Instant::now() < deadline,
            "hang guard: {acked} records acked, the stuck one delivered with attempts \
             {stuck_attempts:?}, position {}, committed {:?}",
            c.position(&t0).unwrap(),
            c.committed(&t0)
        );
        let got = c.poll_batch(MAX_IN_FLIGHT, SHORT).unwrap();
        let tracked = c.tracked_entries();
        most_tracked = most_tracked.max(tracked);
        assert!(
            tracked <= 2 * MAX_IN_FLIGHT,
            "{tracked} entries tracked with {acked} records acked"
        );
        if stuck_attempts.len() <= MAX_RECONSUME_TIMES as usize {
            assert!(
                c.position(&t0).unwrap() <= STUCK + MAX_IN_FLIGHT as u64,
                "delivered past the bound while {STUCK} is pending"
            );
        }
        for d in got {
            assert_eq!(d.payload(), payload_of(d.offset()));
            if d.offset() == STUCK {
                stuck_attempts.push(d.attempt());
                drop(d); // undecided, every time
            } else {
                assert_eq!(d.attempt(), 1, "offset {} was acked", d.offset());
                acked += 1;
                d.ack().unwrap();
            }
        }
    }
    assert_eq!(
        stuck_attempts,
        (1..=MAX_RECONSUME_TIMES + 1).collect::<Vec<_>>(),
        "delivered once, then again after each of max_reconsume_times expiries"
    );
    let letters = wharf.admin().dead_letters("g", 0, 10).unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(
        letter.origin.as_ref().map(ToString::to_string),
        Some(format!("t/0/{STUCK}"))
    );
    assert_eq!(letter.message.payload(), payload_of(STUCK));
    assert_eq!(letter.reconsume_count, MAX_RECONSUME_TIMES);
    assert_eq!(
        letter.reason.as_deref(),
        Some(
            format!(
                "{NOT_ACKNOWLEDGED} (failed {} times)",
                MAX_RECONSUME_TIMES + 1
            )
            .as_str()
        )
    );
    // The policy commits the acknowledged progress on poll: past the dead letter, to the end.
    let deadline = Instant::now() + GUARD;
    while c.committed(&t0) != Some(TOTAL) {
        assert!(
            Instant::now() < deadline,
            "hang guard: committed {:?}, log end {TOTAL}",
            c.committed(&t0)
        );
        assert!(c.poll(SHORT).unwrap().is_none(), "everything was settled");
    }
    assert!(
        most_tracked > 0 && c.tracked_entries() == 0,
        "tracked at most {most_tracked}, {} at the end",
        c.tracked_entries()
    );
}

#[test]
fn max_reconsume_times_zero_dead_letters_at_the_first_expiry() {
    let (_dir, wharf) = setup();
    send(&wharf, 2);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0)])
        .ack_wait(ACK_WAIT)
        .max_reconsume_times(0)
        .build()
        .unwrap();
    let mut got = drain(&mut c, 2);
    got.pop().unwrap().ack().unwrap();
    drop(got); // offset 0, undecided
    wait_for_dead_letter(&wharf, &mut c, "g");
    let letters = wharf.admin().dead_letters("g", 0, 10).unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].message.payload(), payload_of(0));
    assert_eq!(letters[0].reconsume_count, 0);
    assert_eq!(
        letters[0].reason.as_deref(),
        Some(format!("{NOT_ACKNOWLEDGED} (failed 1 times)").as_str())
    );
    assert_idle(&mut c, ACK_WAIT * 2, "the record was dead-lettered");
    c.commit_acked().unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(2));
}

#[test]
fn expiries_add_to_the_retries_of_a_record_from_the_retry_topic() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let wharf = Wharf::builder(dir.path())
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .open()
        .unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    send(&wharf, 1);
    let mut c = wharf
        .consumer("g")
        .subscribe(["t"])
        .ack_wait(ACK_WAIT)
        .max_reconsume_times(2)
        .build()
        .unwrap();
    let first = drain(&mut c, 1).remove(0);
    assert_eq!((first.topic(), first.attempt()), ("t", 1));
    first.nack(Retry::Level(DelayLevel::new(1))).unwrap();
    clock.advance(Duration::from_secs(1));
    // One retry (durable) so far: the copy's first delivery is attempt 2.
    let retried = drain(&mut c, 1).remove(0);
    assert_eq!(
        (
            retried.topic(),
            retried.reconsume_count(),
            retried.attempt()
        ),
        ("%RETRY%g", 1, 2)
    );
    drop(retried);
    // One retry and one expiry: 2 failed attempts, not past max_reconsume_times.
    let again = drain(&mut c, 1).remove(0);
    assert_eq!(
        (again.topic(), again.reconsume_count(), again.attempt()),
        ("%RETRY%g", 1, 3)
    );
    drop(again);
    // The third failure dead-letters it.
    wait_for_dead_letter(&wharf, &mut c, "g");
    let letters = wharf.admin().dead_letters("g", 0, 10).unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(
        letter.origin.as_ref().map(ToString::to_string).as_deref(),
        Some("t/0/0")
    );
    assert_eq!(letter.reconsume_count, 2, "one retry and one redelivery");
    assert_eq!(
        letter.reason.as_deref(),
        Some(format!("{NOT_ACKNOWLEDGED} (failed 3 times)").as_str())
    );
    assert_idle(&mut c, ACK_WAIT * 2, "the record was dead-lettered");
    c.commit_acked().unwrap();
    assert_eq!(c.committed(&tp("%RETRY%g", 0)), Some(1));
    assert_eq!(c.committed(&tp("t", 0)), Some(1));
}

#[test]
fn a_failed_dead_letter_write_keeps_the_record_pending_and_is_reported() {
    // What creating a topic of one partition reserves, measured on a scratch directory.
    let scratch = tempfile::tempdir().unwrap();
    let (base, topic_bytes) = {
        let wharf = Wharf::open(scratch.path()).unwrap();
        let base = wharf.admin().disk_usage().unwrap().used_bytes;
        wharf.create_topic("x", TopicConfig::default()).unwrap();
        let used = wharf.admin().disk_usage().unwrap().used_bytes;
        (base, used - base)
    };
    // Room for `t` and `ballast` and two blocks more, not for the dead-letter topic (an
    // internal topic is smaller than a default one, but takes more than two blocks: its
    // configuration, its checkpoint, its first segment).
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::builder(dir.path())
        .max_disk_bytes(base + 2 * topic_bytes + 2 * 4_096)
        .open()
        .unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    wharf
        .create_topic("ballast", TopicConfig::default())
        .unwrap();
    send(&wharf, 1);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0)])
        .ack_wait(ACK_WAIT)
        .max_reconsume_times(0)
        .commit_ack(AckMode::Write)
        .build()
        .unwrap();
    drop(drain(&mut c, 1)); // undecided
    let deadline = Instant::now() + GUARD;
    let error = loop {
        assert!(
            Instant::now() < deadline,
            "hang guard: the failed write was not reported"
        );
        match c.poll(SHORT) {
            Ok(None) => {}
            Ok(Some(d)) => panic!("{d:?} was delivered again instead of dead-lettered"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(error.kind(), ErrorKind::Full { .. }),
        "expected Full, got {error}"
    );
    assert!(
        wharf
            .admin()
            .dead_letters("g", 0, 10)
            .map_or(true, |l| l.is_empty()),
        "nothing was dead-lettered"
    );
    c.commit_acked().unwrap();
    assert_eq!(
        c.committed(&tp("t", 0)),
        Some(0),
        "the record is still pending"
    );
    wharf.delete_topic("ballast").unwrap();
    // Tried again at its next deadline, and written now.
    let deadline = Instant::now() + GUARD;
    while wharf
        .admin()
        .dead_letters("g", 0, 10)
        .map_or(true, |l| l.is_empty())
    {
        assert!(
            Instant::now() < deadline,
            "hang guard: the record never reached the dead-letter topic"
        );
        match c.poll(SHORT) {
            Ok(None) => {}
            Ok(Some(d)) => panic!("{d:?} was delivered again instead of dead-lettered"),
            // Another failure from before the space was freed.
            Err(e) if matches!(e.kind(), ErrorKind::Full { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    let letters = wharf.admin().dead_letters("g", 0, 10).unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].message.payload(), payload_of(0));
    assert_idle(&mut c, ACK_WAIT * 2, "the record was dead-lettered");
    c.commit_acked().unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(1));
}
