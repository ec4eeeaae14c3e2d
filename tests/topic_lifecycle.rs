//! A topic's life and its consumer groups, through the public API: deleting a topic deletes
//! every group's committed offsets for it, so a recreated topic of the same name starts fresh
//! for every group (Kafka's rule), before and after a reopen or a crash; the same holds for a
//! group's dead-letter queue purged and recreated by the next dead letter, and for the delay
//! scheduler's progress in a recreated delay topic; lag, `describe_group` and retention waiting
//! for a group see no committed offset left over from the deleted topic; and a consumer still
//! holding a partition of the deleted topic cannot commit an offset into the new one.
//!
//! No assertion is about speed: waits have generous hang guards that fail with a message.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wharf::{
    Clock, Consumer, Delivery, ManualClock, Record, Retention, Timestamp, TopicConfig,
    TopicPartition, Wharf,
};

/// Hang guard for deliveries that should come: far beyond what they need.
const GUARD: Duration = Duration::from_secs(20);
/// How long "nothing more comes" is watched for.
const QUIET: Duration = Duration::from_millis(150);
/// The manual clocks' start: an ordinary present-day time, in ms since the epoch.
const T0: i64 = 1_700_000_000_000;

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// Sends `n` records `<prefix>-<i>` to partition 0 of `topic`.
fn send(wharf: &Wharf, topic: &'static str, prefix: &str, n: u64) {
    let producer = wharf.producer().build();
    for i in 0..n {
        producer
            .send(Record::new(topic, format!("{prefix}-{i}")).partition(0))
            .unwrap();
    }
}

/// Polls until `n` deliveries came (failing after the hang guard).
fn take(consumer: &mut Consumer, n: usize) -> Vec<Delivery> {
    let deadline = Instant::now() + GUARD;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "hang guard: only {} of {n} deliveries came: {:?}",
            out.len(),
            payloads(&out)
        );
        out.extend(consumer.poll_batch(n - out.len(), QUIET).unwrap());
    }
    out
}

/// Takes `n` deliveries, then checks that no more come.
fn drain_exactly(consumer: &mut Consumer, n: usize) -> Vec<Delivery> {
    let out = take(consumer, n);
    let more = consumer.poll_batch(10, QUIET).unwrap();
    assert!(more.is_empty(), "more than {n}: {:?}", payloads(&more));
    out
}

fn payloads(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| String::from_utf8_lossy(d.payload()).into_owned())
        .collect()
}

/// Dead-letters the next `n` deliveries of `consumer`.
fn dead_letter(consumer: &mut Consumer, n: usize) {
    for d in take(consumer, n) {
        d.dead_letter("test").unwrap();
    }
}

fn names(prefix: &str, n: u64) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Group `g` consumes and durably commits 10 records of `t`; then `t` is deleted and
/// created again with 5 new records.
fn commit_ten_then_recreate(dir: &Path) -> Wharf {
    let wharf = Wharf::open(dir).unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    send(&wharf, "t", "old", 10);
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    assert_eq!(payloads(&drain_exactly(&mut c, 10)), names("old", 10));
    c.commit().unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(10));
    c.close().unwrap();
    wharf.delete_topic("t").unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    send(&wharf, "t", "new", 5);
    wharf
}

/// What the group's committed offsets, lag and description show for `t`/0: `expected` (none
/// at first; 0 once a consumer that acknowledged nothing has left), never the deleted
/// topic's 10, and all 5 records to go.
fn assert_committed(wharf: &Wharf, expected: Option<u64>, what: &str) {
    let description = wharf.admin().describe_group("g").unwrap();
    for partition in &description.partitions {
        assert_eq!(partition.lag.committed, expected, "{what}: {description:?}");
        assert_eq!(partition.lag.lag, 5, "{what}: {description:?}");
    }
    let c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    assert_eq!(c.committed(&tp("t", 0)), expected, "{what}");
    let lag = c.lag();
    assert_eq!(lag.len(), 1, "{what}: {lag:?}");
    assert_eq!(
        (lag[0].committed, lag[0].lag),
        (expected, 5),
        "{what}: {lag:?}"
    );
    // Leaving commits what it acknowledged: nothing, so it stays at the start.
    c.close().unwrap();
}

#[test]
fn a_recreated_topic_starts_fresh_for_a_group_that_committed_on_the_deleted_one() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = commit_ten_then_recreate(dir.path());
    assert_committed(&wharf, None, "after the recreation");
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    assert_eq!(payloads(&drain_exactly(&mut c, 5)), names("new", 5));
    // Not acknowledged: after a reopen they come again, all of them.
    drop(c);
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    assert_committed(&wharf, Some(0), "after a reopen");
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    assert_eq!(payloads(&drain_exactly(&mut c, 5)), names("new", 5));
    c.commit().unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(5));
}

#[test]
fn a_recreated_topic_starts_fresh_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = commit_ten_then_recreate(dir.path());
    wharf.simulate_crash();
    let wharf = Wharf::open(dir.path()).unwrap();
    assert_committed(&wharf, None, "after a crash");
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    assert_eq!(payloads(&drain_exactly(&mut c, 5)), names("new", 5));
}

#[test]
fn a_recreated_topic_longer_than_the_stale_offset_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = commit_ten_then_recreate(dir.path());
    // The stale offset 10 now lies inside the new log: no clamp could tell it is stale.
    send(&wharf, "t", "more", 7);
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let mut expected = names("new", 5);
    expected.extend(names("more", 7));
    assert_eq!(payloads(&drain_exactly(&mut c, 12)), expected);
}

#[test]
fn a_member_holding_the_deleted_topic_cannot_commit_into_the_recreated_one() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    send(&wharf, "t", "old", 10);
    let mut stale = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    assert_eq!(payloads(&drain_exactly(&mut stale, 10)), names("old", 10));
    wharf.delete_topic("t").unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    send(&wharf, "t", "new", 5);
    // The member has not polled since: it still holds the deleted topic's partition, at 10.
    stale.commit().unwrap();
    assert_eq!(stale.committed(&tp("t", 0)), None);
    let description = wharf.admin().describe_group("g").unwrap();
    assert!(
        description
            .partitions
            .iter()
            .all(|p| p.lag.committed.is_none()),
        "{description:?}"
    );
    // Its next poll lets go of the deleted partition and takes up the new one from its start.
    assert_eq!(payloads(&drain_exactly(&mut stale, 5)), names("new", 5));
    stale.commit().unwrap();
    assert_eq!(stale.committed(&tp("t", 0)), Some(5));
    stale.close().unwrap();
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    let c = wharf.consumer("g").assign([("t", 0)]).build().unwrap();
    assert_eq!(c.committed(&tp("t", 0)), Some(5));
}

#[test]
fn a_dead_letter_queue_recreated_after_a_purge_starts_fresh_for_its_readers() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    send(&wharf, "t", "doomed", 5);
    let mut g = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    dead_letter(&mut g, 3);
    // Group `r` reads the dead-letter queue and commits all 3.
    let mut r = wharf.consumer("r").subscribe(["%DLQ%g"]).build().unwrap();
    drain_exactly(&mut r, 3);
    r.commit().unwrap();
    r.close().unwrap();
    assert_eq!(wharf.admin().purge_dead_letters("g").unwrap(), 3);
    // The next 2 dead letters create the queue again.
    dead_letter(&mut g, 2);
    g.close().unwrap();
    let description = wharf.admin().describe_group("r").unwrap();
    assert!(
        description
            .partitions
            .iter()
            .all(|p| p.lag.committed.is_none() && p.lag.lag == 2),
        "{description:?}"
    );
    let mut r = wharf.consumer("r").subscribe(["%DLQ%g"]).build().unwrap();
    assert_eq!(
        payloads(&drain_exactly(&mut r, 2)),
        ["doomed-3", "doomed-4"]
    );
    // Leaving commits what it acknowledged: nothing, so after a reopen both come again.
    drop(r);
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    let mut r = wharf.consumer("r").subscribe(["%DLQ%g"]).build().unwrap();
    assert_eq!(r.committed(&tp("%DLQ%g", 0)), Some(0));
    assert_eq!(
        payloads(&drain_exactly(&mut r, 2)),
        ["doomed-3", "doomed-4"]
    );
}

#[test]
fn retention_does_not_wait_on_offsets_of_the_deleted_topic() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let wharf = Wharf::builder(dir.path())
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .retention_interval(Duration::from_secs(24 * 3_600))
        .open()
        .unwrap();
    // Three 1,000-byte records fill a 4 KiB segment; everything consumed by `g` may go.
    let config = TopicConfig::default()
        .segment_bytes(4 * 1024)
        .max_message_bytes(2_048)
        .retention(
            Retention::forever()
                .max_age(Duration::ZERO)
                .until_consumed_by(["g"]),
        );
    let record = |i: u64| Record::new("t", vec![u8::try_from(i % 251).unwrap(); 1_000]);
    wharf.create_topic("t", config.clone()).unwrap();
    let producer = wharf.producer().build();
    producer.send_batch((0..30).map(record)).unwrap();
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    take(&mut c, 30);
    c.commit().unwrap();
    c.close().unwrap();
    wharf.delete_topic("t").unwrap();
    wharf.create_topic("t", config).unwrap();
    for i in 0..9 {
        producer.send(record(i)).unwrap();
    }
    clock.set(Timestamp::from_millis(T0 + 1_000));
    // `g` consumed none of the new records: its 30 was the deleted topic's.
    let report = wharf.admin().enforce_retention().unwrap();
    assert_eq!(report.segments_deleted, 0, "{report:?}");
    assert_eq!(wharf.reader("t", 0).unwrap().start_offset(), 0);
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    assert_eq!(drain_exactly(&mut c, 9).len(), 9);
}

#[test]
fn the_delay_scheduler_moves_every_record_of_a_recreated_delay_topic() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let wharf = Wharf::builder(dir.path())
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .open()
        .unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    let producer = wharf.producer().build();
    let waiting = |wharf: &Wharf| wharf.admin().delay_status().waiting.first().copied();
    producer.send(Record::new("t", "first").delay(1)).unwrap();
    clock.set(Timestamp::from_millis(T0 + 1_000));
    let deadline = Instant::now() + GUARD;
    // Moved, and the scheduler's progress committed.
    while wharf.reader("t", 0).unwrap().end_offset() < 1 || waiting(&wharf) != Some(0) {
        assert!(
            Instant::now() < deadline,
            "hang guard: the first record was not moved"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    wharf.delete_topic("%DELAY%").unwrap();
    producer.send(Record::new("t", "second").delay(1)).unwrap();
    assert_eq!(
        waiting(&wharf),
        Some(1),
        "the new delay topic holds one record"
    );
    clock.set(Timestamp::from_millis(T0 + 3_000));
    while wharf.reader("t", 0).unwrap().end_offset() < 2 {
        assert!(
            Instant::now() < deadline,
            "hang guard: the record of the recreated delay topic was not moved"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let moved: Vec<Vec<u8>> = common::payloads(&wharf, "t", 0);
    assert_eq!(moved, [b"first".to_vec(), b"second".to_vec()]);
}
