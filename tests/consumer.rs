//! Consumers and consumer groups through the public API: building, polling, commits, per-message
//! acks and redelivery, groups with several members and their rebalances, positioning,
//! durable-only reads, group administration, and bad input.
//!
//! No assertion is about speed: waits have generous hang guards that fail with a message.

#![allow(clippy::cast_possible_truncation)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::read_partition;
use wharf::{
    AckMode, Assignor, CommitPolicy, Consumer, ConsumerBuilder, Delivery, ErrorKind, ManualClock,
    Record, ResetTo, SeekTo, StartFrom, Timestamp, TopicConfig, TopicPartition, Wharf,
};

/// Hang guard for anything that should happen "soon": far beyond what it needs.
const GUARD: Duration = Duration::from_secs(20);
/// Hang guard for a waiting poll to be woken.
const WAKE_GUARD: Duration = Duration::from_secs(10);
/// A short poll, for when nothing (more) is expected or while alternating members.
const SHORT: Duration = Duration::from_millis(20);
/// How long "nothing comes" is watched for.
const QUIET: Duration = Duration::from_millis(150);

/// (topic, partition, offset) of a delivery.
type Key = (String, u32, u64);

fn key_of(d: &Delivery) -> Key {
    (d.topic().to_owned(), d.partition(), d.offset())
}

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// A Wharf in a fresh directory with topic `t` of `partitions` partitions.
fn setup(partitions: u32) -> (tempfile::TempDir, Wharf) {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf
        .create_topic("t", TopicConfig::default().partitions(partitions))
        .unwrap();
    (dir, wharf)
}

/// The payload record `i` of `topic`/`partition` is sent with.
fn body(topic: &str, partition: u32, i: u64) -> String {
    format!("{topic}/{partition}/{i}")
}

/// Sends `n` records to `topic`/`partition`, numbered from its current end; returns their
/// offsets.
fn send(wharf: &Wharf, topic: &'static str, partition: u32, n: u64) -> Vec<u64> {
    let producer = wharf.producer().build();
    let start = wharf.reader(topic, partition).unwrap().end_offset();
    let offsets: Vec<u64> = (start..start + n).collect();
    for &i in &offsets {
        let receipt = producer
            .send(Record::new(topic, body(topic, partition, i)).partition(partition))
            .unwrap();
        assert_eq!(receipt.offset(), i);
    }
    offsets
}

/// Polls until `n` deliveries came; fails if they do not come within the hang guard.
fn drain(consumer: &mut Consumer, n: usize) -> Vec<Delivery> {
    let deadline = Instant::now() + GUARD;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "hang guard: only {} of {n} deliveries came: {out:?}",
            out.len()
        );
        out.extend(consumer.poll_batch(n - out.len(), SHORT).unwrap());
    }
    assert_eq!(out.len(), n, "poll_batch returned more than asked for");
    for d in &out {
        assert_eq!(
            d.payload(),
            body(d.topic(), d.partition(), d.offset()).as_bytes(),
            "{d:?} carries the wrong record"
        );
    }
    out
}

/// Asserts that nothing is delivered for a while.
fn assert_idle(consumer: &mut Consumer, why: &str) {
    let deadline = Instant::now() + QUIET;
    while Instant::now() < deadline {
        let got = consumer.poll_batch(100, SHORT).unwrap();
        assert!(got.is_empty(), "{why}: unexpected deliveries {got:?}");
    }
}

/// Offsets of `deliveries` in `partition`, in delivery order.
fn offsets_in(deliveries: &[Delivery], partition: u32) -> Vec<u64> {
    deliveries
        .iter()
        .filter(|d| d.partition() == partition)
        .map(Delivery::offset)
        .collect()
}

/// Removes and returns the deliveries matching `pred`, in order.
fn take_where(deliveries: &mut Vec<Delivery>, pred: impl Fn(&Delivery) -> bool) -> Vec<Delivery> {
    let (taken, kept) = std::mem::take(deliveries)
        .into_iter()
        .partition(|d| pred(d));
    *deliveries = kept;
    taken
}

fn ack_all(deliveries: Vec<Delivery>) {
    for d in deliveries {
        d.ack().unwrap();
    }
}

fn kind_of<T: std::fmt::Debug>(result: wharf::Result<T>) -> ErrorKind {
    result.expect_err("an error was expected").into_kind()
}

fn group_dirs(dir: &Path) -> Vec<String> {
    let groups = dir.join("groups");
    if !groups.exists() {
        return Vec::new();
    }
    let mut names: Vec<String> = std::fs::read_dir(groups)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------------
// 1. Building
// ---------------------------------------------------------------------------------------------

#[test]
fn subscribe_consumes_every_partition_of_its_topics() {
    let (_dir, wharf) = setup(3);
    wharf.create_topic("u", TopicConfig::default()).unwrap();
    for p in 0..3 {
        send(&wharf, "t", p, 4);
    }
    send(&wharf, "u", 0, 2);
    let mut c = wharf.consumer("g").subscribe(["t", "u"]).build().unwrap();
    assert_eq!(c.group(), "g");
    let got = drain(&mut c, 14);
    let keys: BTreeSet<Key> = got.iter().map(key_of).collect();
    assert_eq!(keys.len(), 14, "no record twice");
    for p in 0..3 {
        assert_eq!(offsets_in(&got, p).len(), if p == 0 { 6 } else { 4 });
    }
    assert_eq!(
        c.assignment(),
        vec![tp("t", 0), tp("t", 1), tp("t", 2), tp("u", 0)]
    );
    assert_idle(&mut c, "everything was delivered");
}

#[test]
fn assign_consumes_exactly_the_given_partitions() {
    let (_dir, wharf) = setup(3);
    for p in 0..3 {
        send(&wharf, "t", p, 5);
    }
    let mut c = wharf
        .consumer("g")
        .assign([("t", 1), ("t", 2)])
        .build()
        .unwrap();
    assert_eq!(c.assignment(), vec![tp("t", 1), tp("t", 2)]);
    let got = drain(&mut c, 10);
    assert!(
        offsets_in(&got, 0).is_empty(),
        "partition 0 is not assigned"
    );
    assert_eq!(offsets_in(&got, 1), vec![0, 1, 2, 3, 4]);
    assert_eq!(offsets_in(&got, 2), vec![0, 1, 2, 3, 4]);
    assert_idle(&mut c, "partition 0 is not assigned");
}

#[test]
fn start_from_earliest_is_the_default_and_delivers_what_was_sent_before() {
    let (_dir, wharf) = setup(1);
    send(&wharf, "t", 0, 5);
    let mut default = wharf.consumer("g1").assign([("t", 0)]).build().unwrap();
    assert_eq!(default.position(&tp("t", 0)).unwrap(), 0);
    assert_eq!(offsets_in(&drain(&mut default, 5), 0), vec![0, 1, 2, 3, 4]);
    let mut earliest = wharf
        .consumer("g2")
        .assign([("t", 0)])
        .start_from(StartFrom::Earliest)
        .build()
        .unwrap();
    assert_eq!(offsets_in(&drain(&mut earliest, 5), 0), vec![0, 1, 2, 3, 4]);
}

#[test]
fn start_from_latest_skips_records_sent_before() {
    let (_dir, wharf) = setup(1);
    send(&wharf, "t", 0, 5);
    let mut c = wharf
        .consumer("g")
        .subscribe(["t"])
        .start_from(StartFrom::Latest)
        .build()
        .unwrap();
    assert_idle(&mut c, "only records sent from now on");
    assert_eq!(c.position(&tp("t", 0)).unwrap(), 5);
    send(&wharf, "t", 0, 2);
    assert_eq!(offsets_in(&drain(&mut c, 2), 0), vec![5, 6]);
}

#[test]
fn start_from_timestamp_starts_at_the_first_record_at_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000)));
    let wharf = Wharf::builder(dir.path())
        .clock(Arc::clone(&clock) as Arc<dyn wharf::Clock>)
        .open()
        .unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    // Offsets 0..3 at 1000 ms, 3..6 at 2000 ms.
    send(&wharf, "t", 0, 3);
    clock.set(Timestamp::from_millis(2_000));
    send(&wharf, "t", 0, 3);
    let start = |group: &str, at: i64| {
        wharf
            .consumer(group)
            .assign([("t", 0)])
            .start_from(StartFrom::Timestamp(Timestamp::from_millis(at)))
            .build()
            .unwrap()
    };
    let mut between = start("g1", 1_500);
    let got = drain(&mut between, 3);
    assert_eq!(offsets_in(&got, 0), vec![3, 4, 5]);
    assert_eq!(got[0].timestamp(), Timestamp::from_millis(2_000));
    let mut exact = start("g2", 1_000);
    assert_eq!(exact.position(&tp("t", 0)).unwrap(), 0, "at or after");
    drop(drain(&mut exact, 6));
    let mut after = start("g3", 2_001);
    assert_eq!(
        after.position(&tp("t", 0)).unwrap(),
        6,
        "no record that late: the end"
    );
    assert_idle(&mut after, "no record at or after the timestamp");
}

#[test]
fn a_committed_offset_wins_over_start_from() {
    let (_dir, wharf) = setup(1);
    send(&wharf, "t", 0, 10);
    let mut first = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    let got = drain(&mut first, 4);
    first.commit().unwrap();
    drop(got);
    first.close().unwrap();
    for start in [
        StartFrom::Earliest,
        StartFrom::Latest,
        StartFrom::Timestamp(Timestamp::from_millis(0)),
    ] {
        let mut c = wharf
            .consumer("g")
            .subscribe(["t"])
            .start_from(start)
            .build()
            .unwrap();
        let got = drain(&mut c, 1);
        assert_eq!(got[0].offset(), 4, "{start:?}: the committed offset wins");
        drop(got);
        c.close().unwrap();
        assert_eq!(
            wharf.admin().describe_group("g").unwrap().partitions[0]
                .lag
                .committed,
            Some(4),
            "an undecided delivery is not committed by close"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Polling
// ---------------------------------------------------------------------------------------------

#[test]
fn poll_poll_batch_recv_and_iter_deliver_each_record_once_in_offset_order() {
    let (_dir, wharf) = setup(1);
    send(&wharf, "t", 0, 12);
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    let mut offsets = Vec::new();
    let one = c.poll(GUARD).unwrap().expect("poll delivers a record");
    offsets.push(one.offset());
    let batch = c.poll_batch(4, GUARD).unwrap();
    assert_eq!(batch.len(), 4, "poll_batch delivers up to max");
    offsets.extend(batch.iter().map(Delivery::offset));
    let received = c.recv().unwrap();
    offsets.push(received.offset());
    let iterated: Vec<Delivery> = c.iter().take(6).map(Result::unwrap).collect();
    offsets.extend(iterated.iter().map(Delivery::offset));
    assert_eq!(offsets, (0..12).collect::<Vec<u64>>());
    assert!(c.poll(SHORT).unwrap().is_none(), "nothing left");
    assert!(c.poll_batch(10, SHORT).unwrap().is_empty(), "nothing left");
}

#[test]
fn a_delivery_carries_every_field_of_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_123)));
    let wharf = Wharf::builder(dir.path())
        .clock(Arc::clone(&clock) as Arc<dyn wharf::Clock>)
        .open()
        .unwrap();
    wharf
        .create_topic("orders", TopicConfig::default().partitions(3))
        .unwrap();
    let producer = wharf.producer().build();
    producer
        .send(Record::new("orders", "first").partition(2))
        .unwrap();
    producer
        .send(
            Record::new("orders", "the payload")
                .key("user-7")
                .header("trace", "abc")
                .header("empty", "")
                .partition(2),
        )
        .unwrap();
    let mut c = wharf.consumer("g").assign([("orders", 2)]).build().unwrap();
    let got = c.poll_batch(2, GUARD).unwrap();
    assert_eq!(got.len(), 2);
    let d = &got[1];
    assert_eq!(d.topic(), "orders");
    assert_eq!(d.partition(), 2);
    assert_eq!(d.offset(), 1);
    assert_eq!(d.key(), Some(&b"user-7"[..]));
    assert_eq!(d.key_bytes().as_deref(), Some(&b"user-7"[..]));
    assert_eq!(d.payload(), b"the payload");
    assert_eq!(&d.payload_bytes()[..], b"the payload");
    let headers: Vec<(&str, &[u8])> = d.headers().collect();
    assert_eq!(headers, vec![("trace", &b"abc"[..]), ("empty", &b""[..])]);
    assert_eq!(d.header("trace"), Some(&b"abc"[..]));
    assert_eq!(d.timestamp(), Timestamp::from_millis(1_700_000_000_123));
    assert_eq!(d.attempt(), 1, "a first delivery");
    assert_eq!(got[0].key(), None);
    assert_eq!(got[0].headers().count(), 0);
    assert_eq!(d.message().offset(), 1);
    let message = got.into_iter().nth(1).unwrap().into_message();
    assert_eq!(message.payload(), b"the payload");
}

#[test]
fn a_waiting_poll_is_woken_by_a_send_from_another_thread() {
    let (_dir, wharf) = setup(2);
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    assert!(c.poll(SHORT).unwrap().is_none(), "empty topic");
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let got = c.poll(Duration::from_secs(3_600));
        tx.send(got.map(|d| d.map(|d| key_of(&d)))).unwrap();
        c
    });
    std::thread::sleep(Duration::from_millis(50));
    wharf
        .producer()
        .build()
        .send(Record::new("t", body("t", 1, 0)).partition(1))
        .unwrap();
    let got = rx
        .recv_timeout(WAKE_GUARD)
        .expect("hang guard: the waiting poll was not woken by the send");
    assert_eq!(got.unwrap(), Some(("t".to_owned(), 1, 0)));
    waiter.join().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 3. Commit
// ---------------------------------------------------------------------------------------------

#[test]
fn commit_then_reopen_resumes_after_the_committed_offset() {
    let (dir, wharf) = setup(2);
    send(&wharf, "t", 0, 6);
    send(&wharf, "t", 1, 6);
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let first = drain(&mut c, 6);
    let mut expected: BTreeMap<u32, u64> = BTreeMap::new();
    for d in &first {
        expected.insert(d.partition(), d.offset() + 1);
    }
    c.commit().unwrap();
    for (&p, &next) in &expected {
        assert_eq!(c.committed(&tp("t", p)), Some(next));
    }
    drop(first);
    drop(c);
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let rest = drain(&mut c, 6);
    for p in 0..2 {
        let from = expected.get(&p).copied().unwrap_or(0);
        assert_eq!(offsets_in(&rest, p), (from..6).collect::<Vec<u64>>());
    }
    assert_idle(&mut c, "the committed records are not delivered again");
}

#[test]
fn commit_async_survives_a_process_crash() {
    let (dir, wharf) = setup(1);
    send(&wharf, "t", 0, 8);
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    drop(drain(&mut c, 5));
    c.commit_async().unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(5));
    wharf.simulate_crash();
    drop(c);
    let wharf = Wharf::open(dir.path()).unwrap();
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(5));
    assert_eq!(offsets_in(&drain(&mut c, 3), 0), vec![5, 6, 7]);
}

#[test]
fn commit_message_commits_its_partition_up_to_and_including_it() {
    let (dir, wharf) = setup(2);
    send(&wharf, "t", 0, 5);
    send(&wharf, "t", 1, 5);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0), ("t", 1)])
        .build()
        .unwrap();
    let got = drain(&mut c, 10);
    let third = got
        .iter()
        .find(|d| d.partition() == 0 && d.offset() == 2)
        .unwrap();
    c.commit_message(third).unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(3));
    assert_eq!(c.committed(&tp("t", 1)), None, "other partitions untouched");
    drop(got);
    drop(c);
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0), ("t", 1)])
        .build()
        .unwrap();
    let again = drain(&mut c, 7);
    assert_eq!(offsets_in(&again, 0), vec![3, 4]);
    assert_eq!(offsets_in(&again, 1), vec![0, 1, 2, 3, 4]);
}

#[test]
fn commit_offsets_commits_exactly_the_given_offsets() {
    let (dir, wharf) = setup(2);
    send(&wharf, "t", 0, 10);
    send(&wharf, "t", 1, 10);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0), ("t", 1)])
        .build()
        .unwrap();
    drop(drain(&mut c, 20));
    c.commit_offsets(&[(tp("t", 0), 4), (tp("t", 1), 10)])
        .unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(4));
    assert_eq!(c.committed(&tp("t", 1)), Some(10));
    c.commit_offsets(&[(tp("t", 0), 7)]).unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(7));
    assert_eq!(c.committed(&tp("t", 1)), Some(10));
    drop(c);
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0), ("t", 1)])
        .build()
        .unwrap();
    assert_eq!(offsets_in(&drain(&mut c, 3), 0), vec![7, 8, 9]);
    assert_idle(&mut c, "partition 1 was committed to its end");
}

#[test]
fn at_least_once_records_processed_but_not_committed_come_back_after_a_crash() {
    let (dir, wharf) = setup(1);
    send(&wharf, "t", 0, 10);
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    let mut processed = Vec::new();
    for d in drain(&mut c, 5) {
        processed.push(d.offset());
    }
    c.commit().unwrap(); // after processing 0..5
    for d in drain(&mut c, 3) {
        processed.push(d.offset()); // 5..8 processed, then killed before the commit
    }
    wharf.simulate_crash();
    drop(c);
    let wharf = Wharf::open(dir.path()).unwrap();
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    for d in drain(&mut c, 5) {
        processed.push(d.offset());
    }
    assert_idle(&mut c, "all consumed");
    assert_eq!(
        processed,
        vec![0, 1, 2, 3, 4, 5, 6, 7, 5, 6, 7, 8, 9],
        "5..8 processed twice, nothing lost"
    );
}

#[test]
fn at_most_once_records_committed_before_processing_are_not_delivered_again() {
    let (dir, wharf) = setup(1);
    send(&wharf, "t", 0, 10);
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    let got = drain(&mut c, 5);
    c.commit().unwrap(); // before processing
    drop(got); // killed while processing: 0..5 never processed
    wharf.simulate_crash();
    drop(c);
    let wharf = Wharf::open(dir.path()).unwrap();
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    assert_eq!(offsets_in(&drain(&mut c, 5), 0), vec![5, 6, 7, 8, 9]);
    assert_idle(&mut c, "the committed records are not delivered again");
}

/// Polls (expecting nothing new) until the group commits something above 0 for `tp`.
fn poll_until_committed(c: &mut Consumer, tp: &TopicPartition) -> u64 {
    let deadline = Instant::now() + GUARD;
    loop {
        let got = c.poll_batch(100, SHORT).unwrap();
        assert!(got.is_empty(), "nothing new to deliver: {got:?}");
        if let Some(committed) = c.committed(tp).filter(|&o| o > 0) {
            return committed;
        }
        assert!(
            Instant::now() < deadline,
            "hang guard: the commit policy never committed on poll"
        );
    }
}

#[test]
fn auto_commit_commits_everything_delivered_on_a_poll_after_the_interval() {
    let (dir, wharf) = setup(1);
    send(&wharf, "t", 0, 5);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0)])
        .commit(CommitPolicy::Auto {
            interval: Duration::from_millis(50),
        })
        .build()
        .unwrap();
    let got = drain(&mut c, 5);
    // Auto-commit counts what earlier polls delivered as processed (undecided or not).
    drop(got);
    assert_eq!(poll_until_committed(&mut c, &tp("t", 0)), 5);
    send(&wharf, "t", 0, 3);
    // At-most-once: a crash now does not deliver 0..5 again.
    wharf.simulate_crash();
    drop(c);
    let wharf = Wharf::open(dir.path()).unwrap();
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    assert_eq!(offsets_in(&drain(&mut c, 3), 0), vec![5, 6, 7]);
}

#[test]
fn auto_commit_commits_nothing_before_its_interval() {
    let (dir, wharf) = setup(1);
    send(&wharf, "t", 0, 4);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0)])
        .commit(CommitPolicy::Auto {
            interval: Duration::from_secs(3_600),
        })
        .build()
        .unwrap();
    let got = drain(&mut c, 4);
    assert_idle(&mut c, "all delivered");
    assert_eq!(c.committed(&tp("t", 0)), None);
    drop(got);
    wharf.simulate_crash();
    drop(c);
    let wharf = Wharf::open(dir.path()).unwrap();
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    assert_eq!(offsets_in(&drain(&mut c, 4), 0), vec![0, 1, 2, 3]);
}

#[test]
fn acked_commit_policy_commits_the_lowest_unacked_offset_on_a_poll_after_the_interval() {
    let (dir, wharf) = setup(1);
    send(&wharf, "t", 0, 6);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0)])
        .commit(CommitPolicy::Acked {
            interval: Duration::from_millis(50),
        })
        .build()
        .unwrap();
    let mut got = drain(&mut c, 6);
    let undecided = take_where(&mut got, |d| d.offset() == 2 || d.offset() == 4);
    ack_all(got); // 0, 1, 3, 5
    assert_eq!(
        poll_until_committed(&mut c, &tp("t", 0)),
        2,
        "the lowest offset not acked"
    );
    drop(undecided);
    wharf.simulate_crash();
    drop(c);
    let wharf = Wharf::open(dir.path()).unwrap();
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    assert_eq!(
        offsets_in(&drain(&mut c, 4), 0),
        vec![2, 3, 4, 5],
        "nothing unacked is skipped"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Per-message ack
// ---------------------------------------------------------------------------------------------

#[test]
fn acks_in_any_order_from_another_thread_and_commit_acked_commits_the_lowest_unacked() {
    let (_dir, wharf) = setup(1);
    send(&wharf, "t", 0, 10);
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    let mut got = drain(&mut c, 10);
    let mut first = take_where(&mut got, |d| [3, 1, 0, 7, 2].contains(&d.offset()));
    first.sort_by_key(|d| [3, 1, 0, 7, 2].iter().position(|&o| o == d.offset()));
    std::thread::spawn(move || ack_all(first)).join().unwrap();
    c.commit_acked().unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(4), "0..4 acked, 4 is not");
    let mut second = take_where(&mut got, |d| [6, 4, 5].contains(&d.offset()));
    second.reverse();
    std::thread::spawn(move || ack_all(second)).join().unwrap();
    c.commit_acked().unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(8), "0..8 acked, 8 is not");
    let rest_offsets: Vec<u64> = got.iter().map(Delivery::offset).collect();
    assert_eq!(rest_offsets, vec![8, 9]);
    // commit_acked settles nothing: 8 and 9 are still pending, acking them still works.
    ack_all(got);
    c.commit_acked().unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(10));
}

/// Polls until a delivery comes (there is exactly one pending); fails after the hang guard.
fn wait_for_redelivery(c: &mut Consumer) -> Delivery {
    let deadline = Instant::now() + GUARD;
    loop {
        let mut got = c.poll_batch(10, Duration::from_millis(50)).unwrap();
        if !got.is_empty() {
            assert_eq!(got.len(), 1, "only one record is pending: {got:?}");
            return got.pop().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "hang guard: an undecided delivery was not delivered again after ack_wait"
        );
    }
}

#[test]
fn a_delivery_dropped_undecided_comes_back_after_ack_wait_with_the_next_attempt() {
    let (_dir, wharf) = setup(1);
    send(&wharf, "t", 0, 3);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0)])
        .ack_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut got = drain(&mut c, 3);
    let middle = got.remove(1);
    assert_eq!((middle.offset(), middle.attempt()), (1, 1));
    drop(middle); // undecided
    ack_all(got);
    let again = wait_for_redelivery(&mut c);
    assert_eq!(again.offset(), 1);
    assert_eq!(again.attempt(), 2);
    assert_eq!(again.payload(), body("t", 0, 1).as_bytes());
    drop(again); // undecided again
    let third = wait_for_redelivery(&mut c);
    assert_eq!((third.offset(), third.attempt()), (1, 3));
    third.ack().unwrap();
    c.commit_acked().unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(3));
}

#[test]
fn a_delivery_never_committed_comes_back_after_reopen() {
    let (dir, wharf) = setup(1);
    send(&wharf, "t", 0, 4);
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    let mut got = drain(&mut c, 4);
    let undecided = got.remove(1);
    ack_all(got); // 0, 2, 3
    drop(undecided);
    c.close().unwrap();
    assert_eq!(
        wharf.admin().describe_group("g").unwrap().partitions[0]
            .lag
            .committed,
        Some(1),
        "close commits the acked progress only"
    );
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    let again = drain(&mut c, 3);
    assert_eq!(again[0].offset(), 1, "the undecided record comes back");
    assert_eq!(again[0].attempt(), 1, "attempts are counted in memory");
    // 2 and 3 were acked above the committed offset: at-least-once delivers them again.
    assert_eq!(offsets_in(&again, 0), vec![1, 2, 3]);
}

#[test]
fn an_acked_record_is_never_delivered_again_to_its_group() {
    let (dir, wharf) = setup(1);
    send(&wharf, "t", 0, 4);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0)])
        .ack_wait(Duration::from_millis(50))
        .build()
        .unwrap();
    let mut got = drain(&mut c, 4);
    let kept = got.remove(3); // undecided: only it may come back
    ack_all(got);
    drop(kept);
    let again = wait_for_redelivery(&mut c);
    assert_eq!(again.offset(), 3, "only the undecided record comes back");
    again.ack().unwrap();
    // Several ack_waits pass: nothing acked comes back.
    assert_idle(&mut c, "every record was acked");
    c.commit_acked().unwrap();
    drop(c);
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    assert_idle(&mut c, "every record was acked and committed");
}

// ---------------------------------------------------------------------------------------------
// 5. Groups
// ---------------------------------------------------------------------------------------------

/// Two members of one group consume two topics of 3 partitions; returns their assignments
/// after checking that every record went to exactly one of them, from its own partitions.
fn two_members_share_the_partitions(
    assignor: Assignor,
) -> (Vec<TopicPartition>, Vec<TopicPartition>) {
    let (_dir, wharf) = setup(1);
    wharf
        .create_topic("a", TopicConfig::default().partitions(3))
        .unwrap();
    wharf
        .create_topic("b", TopicConfig::default().partitions(3))
        .unwrap();
    let mut all = BTreeSet::new();
    for topic in ["a", "b"] {
        for p in 0..3 {
            for offset in send(&wharf, topic, p, 10) {
                all.insert((topic.to_owned(), p, offset));
            }
        }
    }
    let mut members = [
        wharf
            .consumer("g")
            .subscribe(["a", "b"])
            .assignor(assignor)
            .build()
            .unwrap(),
        wharf
            .consumer("g")
            .subscribe(["b", "a"])
            .assignor(assignor)
            .build()
            .unwrap(),
    ];
    let mut seen: [Vec<Key>; 2] = [Vec::new(), Vec::new()];
    let deadline = Instant::now() + GUARD;
    while seen[0].len() + seen[1].len() < all.len() {
        assert!(
            Instant::now() < deadline,
            "hang guard: {assignor:?}: {} + {} of {} records delivered",
            seen[0].len(),
            seen[1].len(),
            all.len()
        );
        for (member, seen) in members.iter_mut().zip(seen.iter_mut()) {
            let got = member.poll_batch(100, SHORT).unwrap();
            seen.extend(got.iter().map(key_of));
            ack_all(got);
        }
    }
    for member in &mut members {
        assert_idle(member, "every record was delivered");
    }
    let assignments = [members[0].assignment(), members[1].assignment()];
    for (i, assignment) in assignments.iter().enumerate() {
        assert!(
            !assignment.is_empty(),
            "{assignor:?}: member {i} got nothing"
        );
        for (topic, partition, offset) in &seen[i] {
            assert!(
                assignment.contains(&tp(topic, *partition)),
                "{assignor:?}: member {i} got {topic}/{partition}@{offset} outside {assignment:?}"
            );
        }
    }
    let mut partitions: Vec<TopicPartition> = assignments.concat();
    partitions.sort();
    let expected: Vec<TopicPartition> = ["a", "b"]
        .iter()
        .flat_map(|t| (0..3).map(|p| tp(t, p)))
        .collect();
    assert_eq!(
        partitions, expected,
        "{assignor:?}: each partition to one member"
    );
    let mut delivered: Vec<Key> = seen.concat();
    delivered.sort();
    let unique: BTreeSet<Key> = delivered.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        delivered.len(),
        "{assignor:?}: a record went to both members or twice"
    );
    assert_eq!(unique, all, "{assignor:?}: every record delivered");
    let [a, b] = assignments;
    (a, b)
}

#[test]
fn two_members_share_the_partitions_with_the_range_assignor() {
    let (a, b) = two_members_share_the_partitions(Assignor::Range);
    assert_eq!(a, vec![tp("a", 0), tp("a", 1), tp("b", 0), tp("b", 1)]);
    assert_eq!(b, vec![tp("a", 2), tp("b", 2)]);
}

#[test]
fn two_members_share_the_partitions_with_the_round_robin_assignor() {
    let (a, b) = two_members_share_the_partitions(Assignor::RoundRobin);
    assert_eq!(a, vec![tp("a", 0), tp("a", 2), tp("b", 1)]);
    assert_eq!(b, vec![tp("a", 1), tp("b", 0), tp("b", 2)]);
}

#[test]
fn two_members_share_the_partitions_with_the_sticky_assignor() {
    let (a, b) = two_members_share_the_partitions(Assignor::Sticky);
    assert_eq!((a.len(), b.len()), (3, 3), "balanced: {a:?} {b:?}");
}

type Events = Arc<Mutex<Vec<(String, Vec<TopicPartition>)>>>;

/// Records the member's `on_assign` / `on_revoke` calls into `events`.
fn hooked(builder: ConsumerBuilder, name: &str, events: &Events) -> ConsumerBuilder {
    let (on_assign, on_revoke) = (Arc::clone(events), Arc::clone(events));
    let (assign_name, revoke_name) = (format!("{name} assign"), format!("{name} revoke"));
    builder
        .on_assign(move |tps| {
            on_assign
                .lock()
                .unwrap()
                .push((assign_name.clone(), tps.to_vec()));
        })
        .on_revoke(move |tps| {
            on_revoke
                .lock()
                .unwrap()
                .push((revoke_name.clone(), tps.to_vec()));
        })
}

fn take_events(events: &Events) -> Vec<(String, Vec<TopicPartition>)> {
    std::mem::take(&mut *events.lock().unwrap())
}

fn event(what: &str, partitions: &[u32]) -> (String, Vec<TopicPartition>) {
    (
        what.to_owned(),
        partitions.iter().map(|&p| tp("t", p)).collect(),
    )
}

#[test]
fn a_member_joining_and_leaving_rebalances_with_on_assign_and_on_revoke_hooks() {
    let (_dir, wharf) = setup(4);
    let events: Events = Arc::default();
    let mut a = hooked(wharf.consumer("g").subscribe(["t"]), "a", &events)
        .build()
        .unwrap();
    assert!(a.poll(SHORT).unwrap().is_none());
    assert_eq!(take_events(&events), vec![event("a assign", &[0, 1, 2, 3])]);
    assert_eq!(a.assignment().len(), 4);

    let mut b = hooked(wharf.consumer("g").subscribe(["t"]), "b", &events)
        .build()
        .unwrap();
    assert!(a.poll(SHORT).unwrap().is_none());
    assert_eq!(take_events(&events), vec![event("a revoke", &[2, 3])]);
    assert_eq!(a.assignment(), vec![tp("t", 0), tp("t", 1)]);
    assert!(b.poll(SHORT).unwrap().is_none());
    assert_eq!(take_events(&events), vec![event("b assign", &[2, 3])]);
    assert_eq!(b.assignment(), vec![tp("t", 2), tp("t", 3)]);

    // No change, no hook.
    assert!(a.poll(SHORT).unwrap().is_none());
    assert!(b.poll(SHORT).unwrap().is_none());
    assert_eq!(take_events(&events), vec![]);

    b.close().unwrap();
    // Whether close runs b's on_revoke is not specified; if it does, with b's partitions.
    let closing = take_events(&events);
    assert!(
        closing.iter().all(|e| *e == event("b revoke", &[2, 3])),
        "{closing:?}"
    );
    assert!(a.poll(SHORT).unwrap().is_none());
    assert_eq!(take_events(&events), vec![event("a assign", &[2, 3])]);
    assert_eq!(a.assignment().len(), 4);
}

#[test]
fn uncommitted_work_on_a_revoked_partition_is_delivered_to_its_new_owner() {
    let (_dir, wharf) = setup(2);
    send(&wharf, "t", 0, 6);
    send(&wharf, "t", 1, 6);
    let mut a = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let mut got = drain(&mut a, 12);
    // a acks all of partition 0 and offsets 0, 1 and 3 of partition 1.
    let acked = take_where(&mut got, |d| {
        d.partition() == 0 || [0, 1, 3].contains(&d.offset())
    });
    ack_all(acked);
    let mut b = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    assert!(a.poll(SHORT).unwrap().is_none());
    assert_eq!(a.assignment(), vec![tp("t", 0)]);
    assert_eq!(
        a.committed(&tp("t", 1)),
        Some(2),
        "the acked progress of the revoked partition is committed"
    );
    let moved = drain(&mut b, 4);
    assert_eq!(b.assignment(), vec![tp("t", 1)]);
    assert_eq!(
        offsets_in(&moved, 1),
        vec![2, 3, 4, 5],
        "everything from the first unacked record"
    );
    assert!(moved.iter().all(|d| d.attempt() == 1));
    assert_idle(&mut b, "all delivered");
    assert_idle(&mut a, "partition 0 was acked");
    drop(got);
}

#[test]
fn acking_a_delivery_of_a_revoked_partition_gets_revoked() {
    let (_dir, wharf) = setup(2);
    send(&wharf, "t", 0, 3);
    send(&wharf, "t", 1, 3);
    let mut a = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let mut got = drain(&mut a, 6);
    let late = take_where(&mut got, |d| d.partition() == 1);
    let mut b = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    assert!(a.poll(SHORT).unwrap().is_none());
    assert_eq!(a.assignment(), vec![tp("t", 0)]);
    for d in late {
        let kind = kind_of(d.ack());
        assert!(
            matches!(&kind, ErrorKind::Revoked { topic, partition: 1 } if topic == "t"),
            "{kind:?}"
        );
    }
    // Partition 0 is still a's: its deliveries can be acked.
    ack_all(got);
    assert_eq!(
        offsets_in(&drain(&mut b, 3), 1),
        vec![0, 1, 2],
        "the refused acks did not settle anything"
    );
}

#[test]
fn different_groups_each_see_every_record() {
    let (_dir, wharf) = setup(3);
    let mut all = BTreeSet::new();
    for p in 0..3 {
        for o in send(&wharf, "t", p, 7) {
            all.insert(("t".to_owned(), p, o));
        }
    }
    let mut g1 = wharf.consumer("g1").subscribe(["t"]).build().unwrap();
    let mut g2 = wharf
        .consumer("g2")
        .subscribe(["t"])
        .assignor(Assignor::RoundRobin)
        .build()
        .unwrap();
    let mut g2_other = wharf
        .consumer("g2")
        .subscribe(["t"])
        .assignor(Assignor::RoundRobin)
        .build()
        .unwrap();
    let first = drain(&mut g1, 21);
    let seen1: Vec<Key> = first.iter().map(key_of).collect();
    ack_all(first);
    let mut seen2 = Vec::new();
    let deadline = Instant::now() + GUARD;
    while seen2.len() < 21 {
        assert!(Instant::now() < deadline, "hang guard: g2 got {seen2:?}");
        for c in [&mut g2, &mut g2_other] {
            let got = c.poll_batch(100, SHORT).unwrap();
            seen2.extend(got.iter().map(key_of));
            ack_all(got);
        }
    }
    for seen in [seen1, seen2] {
        assert_eq!(seen.len(), 21);
        assert_eq!(seen.into_iter().collect::<BTreeSet<Key>>(), all);
    }
}

/// Two members of a group on `t` (2 partitions); `b` acks the first 3 records of its
/// partition and leaves the rest undecided, then `leave` makes it leave; `a` must take over
/// from offset 3.
fn a_leaving_member_hands_its_partitions_over(leave: impl FnOnce(Consumer)) {
    let (_dir, wharf) = setup(2);
    let mut a = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let mut b = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    assert!(a.poll(SHORT).unwrap().is_none());
    assert!(b.poll(SHORT).unwrap().is_none());
    assert_eq!(a.assignment(), vec![tp("t", 0)]);
    assert_eq!(b.assignment(), vec![tp("t", 1)]);
    send(&wharf, "t", 0, 6);
    send(&wharf, "t", 1, 6);
    let mut got_b = drain(&mut b, 6);
    assert_eq!(offsets_in(&got_b, 1), vec![0, 1, 2, 3, 4, 5]);
    let undecided = got_b.split_off(3);
    ack_all(got_b);
    let got_a = drain(&mut a, 6);
    assert_eq!(offsets_in(&got_a, 0), vec![0, 1, 2, 3, 4, 5]);
    ack_all(got_a);
    leave(b);
    drop(undecided);
    let taken = drain(&mut a, 3);
    assert_eq!(a.assignment(), vec![tp("t", 0), tp("t", 1)]);
    assert_eq!(offsets_in(&taken, 1), vec![3, 4, 5]);
    assert_idle(&mut a, "all delivered");
    let described = wharf.admin().describe_group("g").unwrap();
    assert_eq!(described.members.len(), 1, "{described:?}");
}

#[test]
fn closing_a_member_hands_its_partitions_to_the_remaining_member() {
    a_leaving_member_hands_its_partitions_over(|b| b.close().unwrap());
}

#[test]
fn dropping_a_member_hands_its_partitions_to_the_remaining_member() {
    a_leaving_member_hands_its_partitions_over(drop);
}

#[test]
fn a_member_waiting_in_poll_gives_up_partitions_to_a_joining_member() {
    let (_dir, wharf) = setup(2);
    let mut a = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    assert!(a.poll(SHORT).unwrap().is_none());
    assert_eq!(a.assignment(), vec![tp("t", 0), tp("t", 1)]);
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let got = a.poll(Duration::from_secs(3_600));
        tx.send(got.map(|d| d.map(|d| key_of(&d)))).unwrap();
        a
    });
    std::thread::sleep(Duration::from_millis(50));
    let mut b = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    send(&wharf, "t", 1, 3);
    // b gets partition 1 only once a, asleep in poll, wakes up and lets it go (well before
    // the 30 s rebalance timeout would hand it over anyway).
    assert_eq!(offsets_in(&drain(&mut b, 3), 1), vec![0, 1, 2]);
    assert_eq!(b.assignment(), vec![tp("t", 1)]);
    send(&wharf, "t", 0, 1);
    let got = rx
        .recv_timeout(WAKE_GUARD)
        .expect("hang guard: the waiting member was not woken by a send");
    assert_eq!(got.unwrap(), Some(("t".to_owned(), 0, 0)));
    let a = waiter.join().unwrap();
    assert_eq!(a.assignment(), vec![tp("t", 0)]);
}

#[test]
fn a_member_waiting_in_poll_takes_over_the_partitions_of_a_member_that_leaves() {
    let (_dir, wharf) = setup(2);
    let mut a = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let mut b = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    assert!(a.poll(SHORT).unwrap().is_none());
    assert!(b.poll(SHORT).unwrap().is_none());
    assert_eq!(a.assignment(), vec![tp("t", 0)]);
    send(&wharf, "t", 1, 2);
    let got_b = drain(&mut b, 2);
    got_b.into_iter().next().unwrap().ack().unwrap(); // offset 0 done, 1 undecided
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let got = a.poll(Duration::from_secs(3_600));
        tx.send(got.map(|d| d.map(|d| key_of(&d)))).unwrap();
        a
    });
    std::thread::sleep(Duration::from_millis(50));
    drop(b);
    let got = rx
        .recv_timeout(WAKE_GUARD)
        .expect("hang guard: the waiting member was not woken when the other left");
    assert_eq!(got.unwrap(), Some(("t".to_owned(), 1, 1)));
    let a = waiter.join().unwrap();
    assert_eq!(a.assignment(), vec![tp("t", 0), tp("t", 1)]);
}

#[test]
fn a_member_fenced_out_after_the_rebalance_timeout_lets_the_partition_go_and_keeps_consuming() {
    let (_dir, wharf) = setup(2);
    send(&wharf, "t", 0, 3);
    send(&wharf, "t", 1, 3);
    let mut a = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let mut got = drain(&mut a, 6);
    let stale = take_where(&mut got, |d| d.partition() == 1);
    ack_all(got);
    // b takes partition 1 without waiting for a (which does not poll) past its timeout.
    let mut b = wharf
        .consumer("g")
        .subscribe(["t"])
        .rebalance_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    assert_eq!(offsets_in(&drain(&mut b, 3), 1), vec![0, 1, 2]);
    assert_eq!(b.assignment(), vec![tp("t", 1)]);
    // a is fenced: it can no longer commit partition 1 ...
    assert!(matches!(
        kind_of(a.commit()),
        ErrorKind::Revoked { partition: 1, .. }
    ));
    assert_eq!(
        a.committed(&tp("t", 1)),
        None,
        "the fenced commit changed nothing"
    );
    // ... and its next poll lets partition 1 go and goes on with partition 0.
    let polled = a.poll(SHORT);
    assert!(
        polled.is_ok(),
        "poll of a fenced member fails: {polled:?}, assignment {:?}",
        a.assignment()
    );
    assert_eq!(a.assignment(), vec![tp("t", 0)]);
    for d in stale {
        assert!(matches!(kind_of(d.ack()), ErrorKind::Revoked { .. }));
    }
    send(&wharf, "t", 0, 1);
    assert_eq!(offsets_in(&drain(&mut a, 1), 0), vec![3]);
    a.commit().unwrap();
    assert_eq!(a.committed(&tp("t", 0)), Some(4));
}

#[test]
fn the_sticky_assignor_keeps_the_remaining_members_partitions_when_one_leaves() {
    let (_dir, wharf) = setup(6);
    let events: Events = Arc::default();
    let member = |name: &str| {
        hooked(
            wharf
                .consumer("g")
                .subscribe(["t"])
                .assignor(Assignor::Sticky),
            name,
            &events,
        )
        .build()
        .unwrap()
    };
    let (mut a, mut b, mut c) = (member("a"), member("b"), member("c"));
    for m in [&mut a, &mut b, &mut c] {
        assert!(m.poll(SHORT).unwrap().is_none());
        assert_eq!(m.assignment().len(), 2, "balanced");
    }
    let (before_a, before_b) = (a.assignment(), b.assignment());
    take_events(&events);
    c.close().unwrap();
    assert!(a.poll(SHORT).unwrap().is_none());
    assert!(b.poll(SHORT).unwrap().is_none());
    let (after_a, after_b) = (a.assignment(), b.assignment());
    assert_eq!((after_a.len(), after_b.len()), (3, 3), "balanced");
    assert!(
        before_a.iter().all(|p| after_a.contains(p)),
        "a kept its own"
    );
    assert!(
        before_b.iter().all(|p| after_b.contains(p)),
        "b kept its own"
    );
    let events = take_events(&events);
    assert_eq!(events.len(), 2, "one gain each, no revocation: {events:?}");
    assert!(
        events
            .iter()
            .all(|(what, tps)| what.ends_with("assign") && tps.len() == 1)
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Positioning and visibility
// ---------------------------------------------------------------------------------------------

#[test]
fn seek_moves_to_the_beginning_the_end_an_offset_or_a_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000)));
    let wharf = Wharf::builder(dir.path())
        .clock(Arc::clone(&clock) as Arc<dyn wharf::Clock>)
        .open()
        .unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    for _ in 0..10 {
        send(&wharf, "t", 0, 1); // offset i at 1000 + 100 i ms
        clock.advance(Duration::from_millis(100));
    }
    let t0 = tp("t", 0);
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    assert_eq!(c.poll(GUARD).unwrap().unwrap().offset(), 0);
    let next = |c: &mut Consumer| c.poll(GUARD).unwrap().expect("a record").offset();

    c.seek(&t0, SeekTo::Offset(6)).unwrap();
    assert_eq!(c.position(&t0).unwrap(), 6);
    assert_eq!(next(&mut c), 6);
    assert_eq!(next(&mut c), 7);

    c.seek(&t0, SeekTo::Beginning).unwrap();
    assert_eq!(c.position(&t0).unwrap(), 0);
    assert_eq!(next(&mut c), 0);

    c.seek(&t0, SeekTo::Timestamp(Timestamp::from_millis(1_450)))
        .unwrap();
    assert_eq!(c.position(&t0).unwrap(), 5, "first at or after 1450 ms");
    assert_eq!(next(&mut c), 5);

    c.seek(&t0, SeekTo::Timestamp(Timestamp::from_millis(1_300)))
        .unwrap();
    assert_eq!(next(&mut c), 3, "exactly at 1300 ms");

    c.seek(&t0, SeekTo::Timestamp(Timestamp::from_millis(99_999)))
        .unwrap();
    assert_eq!(c.position(&t0).unwrap(), 10, "none that late: the end");

    c.seek(&t0, SeekTo::Offset(10)).unwrap();
    c.seek(&t0, SeekTo::End).unwrap();
    assert_eq!(c.position(&t0).unwrap(), 10);
    assert_idle(&mut c, "at the end");
    send(&wharf, "t", 0, 1);
    assert_eq!(next(&mut c), 10);
}

#[test]
fn a_seek_refuses_acks_of_earlier_deliveries_and_delivers_them_again() {
    let (_dir, wharf) = setup(1);
    send(&wharf, "t", 0, 4);
    let t0 = tp("t", 0);
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    let got = drain(&mut c, 4);
    c.seek(&t0, SeekTo::Offset(2)).unwrap();
    for d in got {
        assert!(matches!(kind_of(d.ack()), ErrorKind::Revoked { .. }));
    }
    assert_eq!(offsets_in(&drain(&mut c, 2), 0), vec![2, 3]);
}

#[test]
fn position_committed_and_assignment_report_the_consumers_state() {
    let (_dir, wharf) = setup(3);
    send(&wharf, "t", 0, 5);
    send(&wharf, "t", 2, 5);
    let (t0, t2) = (tp("t", 0), tp("t", 2));
    let mut c = wharf
        .consumer("g")
        .assign([("t", 2), ("t", 0)])
        .build()
        .unwrap();
    assert_eq!(c.assignment(), vec![t0.clone(), t2.clone()], "sorted");
    assert_eq!(c.position(&t0).unwrap(), 0);
    assert_eq!(c.committed(&t0), None);
    let got = drain(&mut c, 6);
    assert_eq!(
        c.position(&t0).unwrap(),
        offsets_in(&got, 0).len() as u64,
        "the next offset to deliver"
    );
    assert_eq!(c.position(&t2).unwrap(), offsets_in(&got, 2).len() as u64);
    c.commit().unwrap();
    assert_eq!(c.committed(&t0), Some(c.position(&t0).unwrap()));
    assert_eq!(c.committed(&t2), Some(c.position(&t2).unwrap()));
    assert_eq!(c.committed(&tp("t", 1)), None, "nothing for partition 1");
    drop(got);
    drop(drain(&mut c, 4));
    assert_eq!(c.position(&t0).unwrap(), 5);
    assert_eq!(c.position(&t2).unwrap(), 5);
}

#[test]
fn paused_partitions_deliver_nothing_new_until_resumed() {
    let (_dir, wharf) = setup(2);
    send(&wharf, "t", 0, 5);
    send(&wharf, "t", 1, 5);
    let t0 = tp("t", 0);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0), ("t", 1)])
        .build()
        .unwrap();
    c.pause(std::slice::from_ref(&t0)).unwrap();
    let got = drain(&mut c, 5);
    assert_eq!(offsets_in(&got, 1), vec![0, 1, 2, 3, 4]);
    assert_idle(&mut c, "partition 0 is paused");
    send(&wharf, "t", 0, 1);
    assert_idle(&mut c, "partition 0 is paused, even with new records");
    assert_eq!(c.position(&t0).unwrap(), 0);
    c.resume(std::slice::from_ref(&t0)).unwrap();
    assert_eq!(offsets_in(&drain(&mut c, 6), 0), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn lag_is_the_log_end_minus_the_committed_offset() {
    let (_dir, wharf) = setup(2);
    send(&wharf, "t", 0, 10);
    send(&wharf, "t", 1, 4);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0), ("t", 1)])
        .build()
        .unwrap();
    let lag = |c: &Consumer| -> Vec<(TopicPartition, u64, Option<u64>, u64)> {
        c.lag()
            .into_iter()
            .map(|l| (l.partition, l.end_offset, l.committed, l.lag))
            .collect()
    };
    assert_eq!(
        lag(&c),
        vec![(tp("t", 0), 10, None, 10), (tp("t", 1), 4, None, 4)],
        "from the log start when nothing is committed"
    );
    drop(drain(&mut c, 14));
    assert_eq!(lag(&c)[0].3, 10, "delivering is not committing");
    c.commit_offsets(&[(tp("t", 0), 6), (tp("t", 1), 4)])
        .unwrap();
    assert_eq!(
        lag(&c),
        vec![(tp("t", 0), 10, Some(6), 4), (tp("t", 1), 4, Some(4), 0)]
    );
    send(&wharf, "t", 1, 3);
    assert_eq!(lag(&c)[1], (tp("t", 1), 7, Some(4), 3));
}

fn unsynced_wharf() -> (tempfile::TempDir, Wharf) {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::builder(dir.path())
        .flush_interval(Duration::from_secs(3_600))
        .open()
        .unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    (dir, wharf)
}

#[test]
fn read_durable_only_delivers_only_synced_records() {
    let (_dir, wharf) = unsynced_wharf();
    let producer = wharf.producer().ack(AckMode::Write).build();
    let mut durable = wharf
        .consumer("durable")
        .assign([("t", 0)])
        .read_durable_only(true)
        .build()
        .unwrap();
    let mut all = wharf.consumer("all").assign([("t", 0)]).build().unwrap();
    for i in 0..3 {
        producer.send(Record::new("t", body("t", 0, i))).unwrap();
    }
    assert_idle(&mut durable, "nothing is synced yet");
    assert_eq!(
        offsets_in(&drain(&mut all, 3), 0),
        vec![0, 1, 2],
        "written records are visible to others"
    );
    wharf.sync().unwrap();
    assert_eq!(offsets_in(&drain(&mut durable, 3), 0), vec![0, 1, 2]);
    producer
        .send_with(Record::new("t", body("t", 0, 3)), AckMode::Fsync)
        .unwrap();
    producer.send(Record::new("t", body("t", 0, 4))).unwrap();
    assert_eq!(offsets_in(&drain(&mut durable, 1), 0), vec![3]);
    assert_idle(&mut durable, "offset 4 is not synced");
}

#[test]
fn a_waiting_durable_only_poll_is_woken_when_its_records_become_durable() {
    let (_dir, wharf) = unsynced_wharf();
    let mut durable = wharf
        .consumer("durable")
        .assign([("t", 0)])
        .read_durable_only(true)
        .build()
        .unwrap();
    wharf
        .producer()
        .ack(AckMode::Write)
        .build()
        .send(Record::new("t", body("t", 0, 0)))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let got = durable.poll(Duration::from_secs(3_600));
        tx.send(got.map(|d| d.map(|d| d.offset()))).unwrap();
        durable
    });
    std::thread::sleep(Duration::from_millis(50));
    wharf.sync().unwrap();
    let got = rx.recv_timeout(WAKE_GUARD).unwrap_or_else(|_| {
        panic!("hang guard: a durable-only poll was not woken when its record became durable")
    });
    assert_eq!(got.unwrap(), Some(0));
    waiter.join().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 7. Admin
// ---------------------------------------------------------------------------------------------

#[test]
fn list_groups_lists_the_groups_with_offsets_or_members() {
    let (dir, wharf) = setup(1);
    let admin = wharf.admin();
    assert_eq!(admin.list_groups().unwrap(), Vec::<String>::new());
    let member = wharf.consumer("beta").subscribe(["t"]).build().unwrap();
    let mut committer = wharf.consumer("alpha").assign([("t", 0)]).build().unwrap();
    committer.commit().unwrap();
    assert_eq!(admin.list_groups().unwrap(), vec!["alpha", "beta"]);
    drop((member, committer));
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    assert_eq!(
        wharf.admin().list_groups().unwrap(),
        vec!["alpha", "beta"],
        "listed after reopen"
    );
}

#[test]
fn describe_group_shows_offsets_lag_and_the_member_of_each_partition() {
    let (_dir, wharf) = setup(2);
    send(&wharf, "t", 0, 8);
    send(&wharf, "t", 1, 3);
    let mut a = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let mut b = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let got_a = drain(&mut a, 8);
    drop(drain(&mut b, 3));
    a.commit_message(&got_a[4]).unwrap();
    let d = wharf.admin().describe_group("g").unwrap();
    assert_eq!(d.group, "g");
    assert_eq!(d.damage, None);
    assert_eq!(d.members.len(), 2);
    let ids: Vec<&str> = d.members.iter().map(|m| m.id.as_str()).collect();
    assert_ne!(ids[0], ids[1]);
    for m in &d.members {
        assert_eq!(m.topics, vec!["t"]);
        assert_eq!(m.assignment.len(), 1);
    }
    let owner = |p: u32| {
        d.members
            .iter()
            .find(|m| m.assignment == vec![tp("t", p)])
            .map(|m| m.id.clone())
    };
    assert!(owner(0).is_some() && owner(1).is_some(), "{d:?}");
    assert_eq!(d.partitions.len(), 2, "{d:?}");
    let p0 = &d.partitions[0];
    assert_eq!(p0.lag.partition, tp("t", 0));
    assert_eq!(
        (p0.lag.end_offset, p0.lag.committed, p0.lag.lag),
        (8, Some(5), 3)
    );
    assert_eq!(p0.member, owner(0));
    let p1 = &d.partitions[1];
    assert_eq!(p1.lag.partition, tp("t", 1));
    assert_eq!(
        (p1.lag.end_offset, p1.lag.committed, p1.lag.lag),
        (3, None, 3)
    );
    assert_eq!(p1.member, owner(1));
    drop(got_a);
    drop((a, b));
    let d = wharf.admin().describe_group("g").unwrap();
    assert!(d.members.is_empty(), "{d:?}");
    assert!(d.partitions.iter().all(|p| p.member.is_none()), "{d:?}");
    assert_eq!(d.partitions[0].lag.committed, Some(5));
}

#[test]
fn reset_offsets_moves_where_a_new_consumer_of_the_group_starts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000)));
    let wharf = Wharf::builder(dir.path())
        .clock(Arc::clone(&clock) as Arc<dyn wharf::Clock>)
        .open()
        .unwrap();
    wharf
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    // Partition 0: 0..5 at 1000 ms, 5..10 at 2000 ms; partition 1: 0..2, 2..4.
    send(&wharf, "t", 0, 5);
    send(&wharf, "t", 1, 2);
    clock.set(Timestamp::from_millis(2_000));
    send(&wharf, "t", 0, 5);
    send(&wharf, "t", 1, 2);
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    drop(drain(&mut c, 14));
    c.commit_offsets(&[(tp("t", 0), 6), (tp("t", 1), 1)])
        .unwrap();
    c.close().unwrap();
    let admin = wharf.admin();
    let ends = [10, 4];
    let cases: [(ResetTo, [Option<u64>; 2], [u64; 2]); 7] = [
        (ResetTo::Earliest, [Some(6), Some(1)], [0, 0]),
        (ResetTo::Offset(3), [Some(0), Some(0)], [3, 3]),
        (ResetTo::ShiftBy(2), [Some(3), Some(3)], [5, 4]),
        (ResetTo::ShiftBy(-4), [Some(5), Some(4)], [1, 0]),
        (ResetTo::Offset(99), [Some(1), Some(0)], [10, 4]),
        (
            ResetTo::Timestamp(Timestamp::from_millis(1_500)),
            [Some(10), Some(4)],
            [5, 2],
        ),
        (ResetTo::Latest, [Some(5), Some(2)], [10, 4]),
    ];
    for (to, before, after) in cases {
        let changes: Vec<(TopicPartition, Option<u64>, u64)> = admin
            .reset_offsets("g", "t", to)
            .unwrap()
            .into_iter()
            .map(|c| (c.partition, c.before, c.after))
            .collect();
        assert_eq!(
            changes,
            vec![
                (tp("t", 0), before[0], after[0]),
                (tp("t", 1), before[1], after[1])
            ],
            "{to:?}"
        );
        let committed: Vec<Option<u64>> = admin
            .describe_group("g")
            .unwrap()
            .partitions
            .iter()
            .map(|p| p.lag.committed)
            .collect();
        assert_eq!(committed, vec![Some(after[0]), Some(after[1])], "{to:?}");
        // A new consumer of the group starts there (and, acking nothing, leaves it there).
        let mut c = wharf
            .consumer("g")
            .assign([("t", 0), ("t", 1)])
            .start_from(StartFrom::Latest)
            .build()
            .unwrap();
        let got = drain(&mut c, (ends[0] - after[0] + ends[1] - after[1]) as usize);
        for p in 0..2 {
            let i = p as usize;
            assert_eq!(
                offsets_in(&got, p),
                (after[i]..ends[i]).collect::<Vec<u64>>(),
                "{to:?}: partition {p}"
            );
        }
        assert_idle(&mut c, "all delivered");
    }
}

#[test]
fn reset_offsets_and_delete_group_of_an_active_group_get_group_active_and_change_nothing() {
    let (_dir, wharf) = setup(1);
    send(&wharf, "t", 0, 5);
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    drop(drain(&mut c, 3));
    c.commit().unwrap();
    let admin = wharf.admin();
    let before = admin.describe_group("g").unwrap();
    assert!(matches!(
        kind_of(admin.reset_offsets("g", "t", ResetTo::Earliest)),
        ErrorKind::GroupActive { group } if group == "g"
    ));
    assert!(matches!(
        kind_of(admin.delete_group("g")),
        ErrorKind::GroupActive { group } if group == "g"
    ));
    assert_eq!(admin.describe_group("g").unwrap(), before);
    assert_eq!(admin.list_groups().unwrap(), vec!["g"]);
    assert_eq!(c.committed(&tp("t", 0)), Some(3));
    assert_eq!(offsets_in(&drain(&mut c, 2), 0), vec![3, 4]);
}

#[test]
fn a_commit_by_an_assigned_consumer_after_delete_group_is_not_lost() {
    let (dir, wharf) = setup(1);
    send(&wharf, "t", 0, 5);
    // An assigned consumer is not a group member, so it may not count as "active".
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    drop(drain(&mut c, 2));
    c.commit().unwrap();
    if let Err(e) = wharf.admin().delete_group("g") {
        assert!(matches!(e.kind(), ErrorKind::GroupActive { .. }), "{e}");
        assert_eq!(c.committed(&tp("t", 0)), Some(2));
        return;
    }
    drop(drain(&mut c, 2));
    // A commit that reports success must be what the group has, now and after reopen.
    if c.commit().is_ok() {
        assert_eq!(c.committed(&tp("t", 0)), Some(4));
        let seen = wharf
            .admin()
            .describe_group("g")
            .map(|d| d.partitions[0].lag.committed);
        assert_eq!(
            seen.as_ref().ok(),
            Some(&Some(4)),
            "the successful commit is not the group's: {seen:?}"
        );
        drop(c);
        wharf.close().unwrap();
        let wharf = Wharf::open(dir.path()).unwrap();
        let c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
        assert_eq!(c.committed(&tp("t", 0)), Some(4), "lost at reopen");
    }
}

#[test]
fn delete_group_removes_the_group_and_its_offsets() {
    let (dir, wharf) = setup(1);
    send(&wharf, "t", 0, 5);
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    drop(drain(&mut c, 5));
    c.commit().unwrap();
    c.close().unwrap();
    let keep = wharf.consumer("other").assign([("t", 0)]).build().unwrap();
    drop(keep);
    let admin = wharf.admin();
    admin.delete_group("g").unwrap();
    assert!(matches!(
        kind_of(admin.describe_group("g")),
        ErrorKind::GroupNotFound { group } if group == "g"
    ));
    assert_eq!(admin.list_groups().unwrap(), vec!["other"]);
    assert!(matches!(
        kind_of(admin.delete_group("g")),
        ErrorKind::GroupNotFound { .. }
    ));
    assert_eq!(group_dirs(dir.path()), vec!["other"]);
    // A new group of that name starts afresh.
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    assert_eq!(c.committed(&tp("t", 0)), None);
    assert_eq!(offsets_in(&drain(&mut c, 5), 0), vec![0, 1, 2, 3, 4]);
    drop(c);
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    assert!(
        wharf
            .admin()
            .list_groups()
            .unwrap()
            .contains(&"g".to_owned())
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Bad input
// ---------------------------------------------------------------------------------------------

#[test]
fn an_unknown_topic_gets_topic_not_found_and_creates_no_group() {
    let (dir, wharf) = setup(1);
    let not_found =
        |kind: ErrorKind| matches!(kind, ErrorKind::TopicNotFound { topic } if topic == "nope");
    assert!(not_found(kind_of(
        wharf.consumer("g").subscribe(["t", "nope"]).build()
    )));
    assert!(not_found(kind_of(
        wharf.consumer("g").assign([("nope", 0)]).build()
    )));
    assert!(not_found(kind_of(wharf.admin().reset_offsets(
        "g",
        "nope",
        ResetTo::Earliest
    ))));
    assert_eq!(wharf.admin().list_groups().unwrap(), Vec::<String>::new());
    assert_eq!(group_dirs(dir.path()), Vec::<String>::new());
}

#[test]
fn a_partition_out_of_range_gets_partition_out_of_range() {
    let (dir, wharf) = setup(2);
    let kind = kind_of(wharf.consumer("g").assign([("t", 0), ("t", 2)]).build());
    assert!(
        matches!(
            &kind,
            ErrorKind::PartitionOutOfRange { topic, partition: 2, partitions: 2 } if topic == "t"
        ),
        "{kind:?}"
    );
    assert_eq!(group_dirs(dir.path()), Vec::<String>::new());
}

#[test]
fn seek_past_the_log_end_gets_offset_out_of_range_and_keeps_the_position() {
    let (_dir, wharf) = setup(1);
    send(&wharf, "t", 0, 5);
    let t0 = tp("t", 0);
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    let got = drain(&mut c, 2);
    let kind = kind_of(c.seek(&t0, SeekTo::Offset(6)));
    assert!(
        matches!(
            &kind,
            ErrorKind::OffsetOutOfRange { topic, partition: 0, offset: 6, start: 0, end: 5 }
                if topic == "t"
        ),
        "{kind:?}"
    );
    assert_eq!(c.position(&t0).unwrap(), 2);
    ack_all(got); // the failed seek revoked nothing
    assert_eq!(offsets_in(&drain(&mut c, 3), 0), vec![2, 3, 4]);
}

#[test]
fn committing_an_offset_never_given_gets_invalid_commit_and_changes_nothing() {
    let (_dir, wharf) = setup(2);
    send(&wharf, "t", 0, 5);
    send(&wharf, "t", 1, 5);
    let mut c = wharf
        .consumer("g")
        .assign([("t", 0), ("t", 1)])
        .build()
        .unwrap();
    let got = drain(&mut c, 4);
    let (n0, n1) = (
        offsets_in(&got, 0).len() as u64,
        offsets_in(&got, 1).len() as u64,
    );
    let kind = kind_of(c.commit_offsets(&[(tp("t", 1), n1), (tp("t", 0), n0 + 1)]));
    assert!(
        matches!(&kind, ErrorKind::InvalidCommit { topic, partition: 0, offset, .. }
            if topic == "t" && *offset == n0 + 1),
        "{kind:?}"
    );
    assert_eq!(c.committed(&tp("t", 0)), None, "nothing committed");
    assert_eq!(c.committed(&tp("t", 1)), None, "not even the valid entry");
    assert_eq!(
        wharf.admin().describe_group("g").unwrap().partitions,
        vec![]
    );
    ack_all(got); // nothing was settled by the refused commit
}

#[test]
fn operations_on_an_unassigned_partition_get_not_assigned() {
    let (_dir, wharf) = setup(2);
    send(&wharf, "t", 1, 3);
    let other = read_partition(&wharf, "t", 1).remove(0);
    let t1 = tp("t", 1);
    let mut c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    let not_assigned = |kind: ErrorKind| matches!(kind, ErrorKind::NotAssigned { topic, partition: 1 } if topic == "t");
    assert!(not_assigned(kind_of(c.commit_message(&other))));
    assert!(not_assigned(kind_of(c.seek(&t1, SeekTo::Beginning))));
    assert!(not_assigned(kind_of(c.pause(&[tp("t", 0), t1.clone()]))));
    assert!(not_assigned(kind_of(c.resume(std::slice::from_ref(&t1)))));
    assert!(not_assigned(kind_of(c.position(&t1))));
    assert!(not_assigned(kind_of(c.commit_offsets(&[(t1.clone(), 0)]))));
    assert_eq!(c.committed(&t1), None);
    // The failed pause did not pause partition 0.
    send(&wharf, "t", 0, 2);
    assert_eq!(offsets_in(&drain(&mut c, 2), 0), vec![0, 1]);
    assert_eq!(c.assignment(), vec![tp("t", 0)]);
}

#[test]
fn invalid_group_names_get_invalid_group_name_and_create_nothing() {
    let (dir, wharf) = setup(1);
    let long = "g".repeat(250);
    for name in [
        "",
        "a/b",
        "%RETRY%x",
        "%DLQ%x",
        "..",
        "sp ace",
        long.as_str(),
    ] {
        let is_invalid = |kind: ErrorKind| matches!(kind, ErrorKind::InvalidGroupName { name: n, .. } if n == name);
        assert!(
            is_invalid(kind_of(wharf.consumer(name).subscribe(["t"]).build())),
            "{name:?}"
        );
        assert!(is_invalid(kind_of(
            wharf.consumer(name).assign([("t", 0)]).build()
        )));
        let admin = wharf.admin();
        assert!(is_invalid(kind_of(admin.describe_group(name))));
        assert!(is_invalid(kind_of(admin.reset_offsets(
            name,
            "t",
            ResetTo::Earliest
        ))));
        assert!(is_invalid(kind_of(admin.delete_group(name))));
    }
    assert_eq!(wharf.admin().list_groups().unwrap(), Vec::<String>::new());
    assert_eq!(group_dirs(dir.path()), Vec::<String>::new());
}

#[test]
fn neither_or_both_subscribe_and_assign_get_invalid_config() {
    let (dir, wharf) = setup(1);
    let invalid = |kind: ErrorKind| matches!(kind, ErrorKind::InvalidConfig { .. });
    assert!(invalid(kind_of(wharf.consumer("g").build())));
    assert!(invalid(kind_of(
        wharf
            .consumer("g")
            .subscribe(["t"])
            .assign([("t", 0)])
            .build()
    )));
    assert!(invalid(kind_of(
        wharf.consumer("g").subscribe(Vec::<String>::new()).build()
    )));
    assert!(invalid(kind_of(
        wharf
            .consumer("g")
            .subscribe(["t"])
            .ack_wait(Duration::ZERO)
            .build()
    )));
    assert!(invalid(kind_of(
        wharf
            .consumer("g")
            .subscribe(["t"])
            .commit(CommitPolicy::Acked {
                interval: Duration::ZERO
            })
            .build()
    )));
    assert_eq!(group_dirs(dir.path()), Vec::<String>::new());
}
