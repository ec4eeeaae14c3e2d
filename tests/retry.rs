//! Retry, delay and dead letters (RocketMQ's model) through the public API, on a
//! [`ManualClock`]: no test sleeps through a delay level. Moving the clock wakes the delay
//! scheduler, which moves due records on its own thread, so an expected delivery is waited for
//! with a generous poll; "not early" is checked 1 ms before the due time with a short poll.
//! No assertion is about elapsed real time.
//!
//! What each test proves:
//! - `default_retries_follow_the_schedule_then_dead_letter_and_never_block_the_partition`:
//!   with the default table and `max_reconsume_times` 16, a record nacked with
//!   `Retry::Default` every time comes back from `%RETRY%<group>` exactly at nack time + level
//!   `min(3 + k, 18)` (not 1 ms before), with the right reconsume count, origin, attempt and
//!   headers; the 17th nack puts it in `%DLQ%<group>` with count 16, its origin, the time of
//!   the first failure and "failed 17 times", stamped with the time it was dead-lettered and
//!   its original timestamp in its history; later records of the partition keep flowing
//!   meanwhile.
//! - `retry_level_after_reason_and_dead_letter_keep_the_record`: `Retry::Level`,
//!   `Retry::After` (rounded up to a level, exact levels kept), `nack_with_reason` (the last
//!   reason given stays), `dead_letter` at once; key, payload, timestamp and user headers are
//!   kept on every retry and dead-letter copy (a dead letter's own timestamp is the time it
//!   was written, the original one is in `wharf.origin.timestamp`); another group never sees
//!   the retries.
//! - `delayed_sends_are_delivered_when_due_in_due_order_to_their_partition`: `Record::delay`
//!   and `Record::delay_for` (rounded up): the receipt names `%DELAY%` and the level's
//!   partition, nothing is delivered early, each record arrives at its due time in the
//!   partition chosen at the send (explicit or by key) with key, payload, headers and
//!   timestamp intact and no `wharf.*` header; records of several levels arrive in due order.
//! - `delays_survive_a_clean_reopen` / `delays_survive_a_crash`: delayed records and retries
//!   waiting across a close (or `simulate_crash`) and reopen on the same clock are neither
//!   lost nor delivered early; records that fell due while closed are delivered after the
//!   reopen. After a clean close each is delivered exactly once; after a crash duplicates
//!   are tolerated (the documented window), losses are not.
//! - `dead_letters_resend_one_and_all_to_their_origin_and_purge`: listing shows origin,
//!   count and reason; resending one, and all, appends them to their original topic and
//!   partition without retry headers (count 0), where the group consumes them again; the dead
//!   letters stay until purged; purging returns the count and empties the queue; dead-lettering
//!   after a purge works again.
//! - `dead_letter_operations_check_the_group`: unknown group → `GroupNotFound` for list,
//!   resend one, resend all and purge; bad name → `InvalidGroupName`; an existing group with
//!   no dead letters lists nothing; resending an offset that is not there is an error.
//! - `internal_topics_are_listed_as_internal_and_the_scheduler_group_is_hidden`: `%DELAY%`
//!   (one lane per level), `%RETRY%<group>` and `%DLQ%<group>` are listed as internal, the
//!   scheduler's group is not listed, dead letters are kept 7 days by default.
//! - `dead_letter_topics_get_their_own_retention`: `WharfBuilder::dead_letter_retention`
//!   applies to `%DLQ%<group>`, whatever the original topic's retention.
//! - `a_group_with_the_longest_valid_name_can_retry_and_dead_letter`: a group name of
//!   `MAX_GROUP_NAME_LEN` (242 bytes, so that `%RETRY%<group>` is a valid topic name) gets a
//!   retry and a dead-letter topic; one byte more is refused up front with `InvalidGroupName`.
//! - `delayed_sends_with_bad_delays_fail_and_write_nothing`: a level of 0 or past the table,
//!   a delay longer than its longest level (3 h, `Duration::MAX`) give `InvalidDelay`, a
//!   delayed send to a missing topic `TopicNotFound`; nothing is written by them, nor by a
//!   batch holding one bad record.
//! - `nack_with_a_bad_delay_fails_and_leaves_the_delivery_pending`: the same bad delays on a
//!   nack give `InvalidDelay`, write no retry copy, and leave the delivery pending (it is
//!   delivered again after `ack_wait`); a good nack then works.
//! - `bad_delay_tables_are_refused`: empty, unreadable, zero, not increasing, longer than 30
//!   days, more than 64 levels.
//! - `a_custom_table_caps_the_default_retry_at_its_highest_level`: with `"1s 2s 3s"` the delay
//!   topic has 3 lanes, level 4 and delays past 3 s are refused, `Retry::Default` (and 2.5 s,
//!   rounded up) waits level 3 (3 s) every time, and `max_reconsume_times(3)` dead-letters the
//!   4th failure with "failed 4 times".
//! - `an_fsync_nack_survives_a_crash`: once a nack under `commit_ack(Fsync)` returns, a crash
//!   does not lose the retry copy (the original may come again: a duplicate, allowed).

#![allow(
    clippy::too_many_lines,
    reason = "a life-cycle test reads best as one story"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::read_partition;
use wharf::{
    AckMode, Clock, Consumer, DEFAULT_DEAD_LETTER_RETENTION, DelayLevel, DelayLevels, Delivery,
    ErrorKind, MAX_DELAY, MAX_GROUP_NAME_LEN, MAX_TOPIC_NAME_LEN, ManualClock, Message, MessageId,
    Record, Retention, Retry, Timestamp, TopicConfig, Wharf, partition_for_key,
    validate_group_name,
};

/// The Wharf clock's start: an ordinary present-day time, in ms since the epoch.
const T0: i64 = 1_700_000_000_000;
/// RocketMQ's default delay levels, in seconds (level k is index k - 1).
const LEVELS_SECS: [i64; 18] = [
    1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1_200, 1_800, 3_600, 7_200,
];
/// Hang guard for a delivery that is due: far beyond what moving a record needs.
const GUARD: Duration = Duration::from_secs(10);
/// How long "nothing comes" is watched for.
const QUIET: Duration = Duration::from_millis(200);

const SECOND: i64 = 1_000;

fn new_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_millis(T0)))
}

fn open(dir: &Path, clock: &Arc<ManualClock>) -> Wharf {
    Wharf::builder(dir)
        .clock(Arc::clone(clock) as Arc<dyn Clock>)
        .open()
        .unwrap()
}

/// A Wharf on a manual clock at [`T0`] in a fresh directory, with topic `t` of `partitions`
/// partitions.
fn setup(partitions: u32) -> (tempfile::TempDir, Arc<ManualClock>, Wharf) {
    let dir = tempfile::tempdir().unwrap();
    let clock = new_clock();
    let wharf = open(dir.path(), &clock);
    wharf
        .create_topic("t", TopicConfig::default().partitions(partitions))
        .unwrap();
    (dir, clock, wharf)
}

fn at(millis: i64) -> Timestamp {
    Timestamp::from_millis(millis)
}

fn now(clock: &ManualClock) -> i64 {
    clock.now().as_millis()
}

/// Waits for the next delivery; fails if none comes within the hang guard.
fn expect(consumer: &mut Consumer, what: &str) -> Delivery {
    consumer
        .poll(GUARD)
        .unwrap()
        .unwrap_or_else(|| panic!("hang guard: {what} was not delivered within {GUARD:?}"))
}

/// Waits for `n` deliveries.
fn expect_n(consumer: &mut Consumer, n: usize, what: &str) -> Vec<Delivery> {
    let deadline = Instant::now() + GUARD;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "hang guard: {what}: only {} of {n} deliveries came: {out:?}",
            out.len()
        );
        out.extend(
            consumer
                .poll_batch(n - out.len(), Duration::from_millis(50))
                .unwrap(),
        );
    }
    out
}

/// Asserts that nothing is delivered for [`QUIET`].
fn expect_none(consumer: &mut Consumer, why: &str) {
    if let Some(d) = consumer.poll(QUIET).unwrap() {
        panic!(
            "{why}: unexpected delivery {d:?} of {:?}",
            text(d.payload())
        );
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The value of header `name` as text.
fn header(message: &Message, name: &str) -> Option<String> {
    message.header(name).map(text)
}

/// Every header of `message`, in order, values as text.
fn headers(message: &Message) -> Vec<(String, String)> {
    message
        .headers()
        .map(|(name, value)| (name.to_owned(), text(value)))
        .collect()
}

/// The headers of `message` that are not wharf's own.
fn user_headers(message: &Message) -> Vec<(String, String)> {
    headers(message)
        .into_iter()
        .filter(|(name, _)| !name.starts_with("wharf."))
        .collect()
}

fn id(topic: &str, partition: u32, offset: u64) -> MessageId {
    MessageId {
        topic: topic.to_owned(),
        partition,
        offset,
    }
}

fn kind_of<T: std::fmt::Debug>(result: wharf::Result<T>) -> ErrorKind {
    result.expect_err("an error was expected").into_kind()
}

fn assert_invalid_delay<T: std::fmt::Debug>(result: wharf::Result<T>, what: &str) {
    match kind_of(result) {
        ErrorKind::InvalidDelay { reason } => assert!(!reason.is_empty(), "{what}: no reason"),
        other => panic!("{what}: expected InvalidDelay, got {other:?}"),
    }
}

/// The end offset of every partition of `topic` (empty if it does not exist).
fn ends(wharf: &Wharf, topic: &str) -> Vec<u64> {
    (0..)
        .map_while(|p| wharf.reader(topic, p).ok().map(|r| r.end_offset()))
        .collect()
}

/// Waits until `cond` holds; fails after the hang guard.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !cond() {
        assert!(Instant::now() < deadline, "hang guard: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Asserts the retry history a retried delivery carries.
fn assert_history(d: &Delivery, origin: &MessageId, count: u32, first_failure: i64) {
    assert_eq!(d.topic(), "%RETRY%g", "{d:?} comes from the retry topic");
    assert_eq!(d.partition(), 0, "{d:?}");
    assert_eq!(d.reconsume_count(), count, "{d:?}");
    assert_eq!(d.origin().as_ref(), Some(origin), "{d:?}");
    assert_eq!(header(d, "wharf.origin.topic"), Some(origin.topic.clone()));
    assert_eq!(
        header(d, "wharf.origin.partition"),
        Some(origin.partition.to_string())
    );
    assert_eq!(
        header(d, "wharf.origin.offset"),
        Some(origin.offset.to_string())
    );
    assert_eq!(header(d, "wharf.reconsume-count"), Some(count.to_string()));
    assert_eq!(
        header(d, "wharf.first-failure"),
        Some(first_failure.to_string())
    );
    assert!(
        headers(d)
            .iter()
            .all(|(n, _)| !n.starts_with("wharf.delay.")),
        "the delay headers are removed: {:?}",
        headers(d)
    );
}

// ---------------------------------------------------------------------------------------------
// 1. The full life cycle
// ---------------------------------------------------------------------------------------------

#[test]
fn default_retries_follow_the_schedule_then_dead_letter_and_never_block_the_partition() {
    let (_dir, clock, wharf) = setup(1);
    let producer = wharf.producer().build();
    producer
        .send(
            Record::new("t", "doomed")
                .key("k-1")
                .header("trace", "abc")
                .timestamp(at(T0 - 5)),
        )
        .unwrap();
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let first = expect(&mut c, "the original");
    assert_eq!(
        (first.topic(), first.partition(), first.offset()),
        ("t", 0, 0)
    );
    assert_eq!(
        (first.reconsume_count(), first.origin(), first.attempt()),
        (0, None, 1)
    );
    let origin = id("t", 0, 0);
    let first_failure = now(&clock);
    first.nack(Retry::Default).unwrap();
    let mut nacked_at = first_failure;
    for k in 0..16_u32 {
        let level = (3 + k).min(18) as usize;
        let due = nacked_at + LEVELS_SECS[level - 1] * SECOND;
        let waiting = wharf.admin().delay_status().waiting;
        assert_eq!(
            waiting[level - 1],
            1,
            "retry {k} waits at level {level}: {waiting:?}"
        );

        // Later records of the partition keep flowing while the record waits.
        let filler = format!("filler-{k}");
        producer.send(Record::new("t", filler.clone())).unwrap();
        let f = expect(&mut c, "a record sent after the retried one");
        assert_eq!((f.topic(), f.payload()), ("t", filler.as_bytes()));
        f.ack().unwrap();

        clock.set(at(due - 1));
        expect_none(&mut c, &format!("retry {} 1 ms before its due time", k + 1));
        clock.set(at(due));
        let d = expect(&mut c, &format!("retry {} at its due time", k + 1));
        assert_history(&d, &origin, k + 1, first_failure);
        assert_eq!(d.attempt(), k + 2, "the original was attempt 1");
        assert_eq!(d.payload(), b"doomed");
        assert_eq!(d.key(), Some(&b"k-1"[..]));
        assert_eq!(d.timestamp(), at(T0 - 5), "the record keeps its timestamp");
        assert_eq!(user_headers(&d), vec![("trace".into(), "abc".into())]);
        assert_eq!(header(&d, "wharf.reason"), None, "no reason was given");
        nacked_at = now(&clock);
        d.nack(Retry::Default).unwrap();
    }

    // The 17th failure: 16 retries done, so it goes to the dead-letter queue at once.
    let letters = wharf.admin().dead_letters("g", 0, 10).unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.offset, 0);
    assert_eq!(letter.origin.as_ref(), Some(&origin));
    assert_eq!(letter.reconsume_count, 16);
    assert_eq!(letter.first_failure, Some(at(first_failure)));
    assert_eq!(letter.reason.as_deref(), Some("failed 17 times"));
    let m = &letter.message;
    assert_eq!((m.topic(), m.partition(), m.offset()), ("%DLQ%g", 0, 0));
    assert_eq!(m.payload(), b"doomed");
    assert_eq!(m.key(), Some(&b"k-1"[..]));
    assert_eq!(
        m.timestamp(),
        at(nacked_at),
        "a dead letter is stamped when it is written, for the retention of the queue"
    );
    assert_eq!(letter.origin_timestamp, Some(at(T0 - 5)));
    assert_eq!(
        header(m, "wharf.origin.timestamp").as_deref(),
        Some((T0 - 5).to_string().as_str())
    );
    assert_eq!(user_headers(m), vec![("trace".into(), "abc".into())]);
    assert_eq!(header(m, "wharf.origin.topic").as_deref(), Some("t"));
    assert_eq!(header(m, "wharf.origin.partition").as_deref(), Some("0"));
    assert_eq!(header(m, "wharf.origin.offset").as_deref(), Some("0"));
    assert_eq!(header(m, "wharf.reconsume-count").as_deref(), Some("16"));
    assert_eq!(
        header(m, "wharf.first-failure"),
        Some(first_failure.to_string())
    );
    assert_eq!(
        header(m, "wharf.reason").as_deref(),
        Some("failed 17 times")
    );
    assert_eq!(read_partition(&wharf, "%DLQ%g", 0).len(), 1);

    // A dead letter is not delivered, even much later.
    clock.set(at(now(&clock) + 3 * 3_600 * SECOND));
    expect_none(&mut c, "a dead letter is not delivered again");
    assert_eq!(
        read_partition(&wharf, "%RETRY%g", 0).len(),
        16,
        "one copy per retry"
    );
    wait_until("the scheduler records its progress", || {
        wharf.admin().delay_status().waiting.iter().all(|&w| w == 0)
    });
    let status = wharf.admin().delay_status();
    assert_eq!(status.moved, 16, "{status:?}");
    assert_eq!((status.dropped, status.error), (0, None));
}

// ---------------------------------------------------------------------------------------------
// 2. Explicit levels and delays, reasons, dead_letter; the record is kept
// ---------------------------------------------------------------------------------------------

/// Asserts that `m` is record "r" as sent in `retry_level_after_reason_and_dead_letter_…`.
fn assert_is_r(m: &Message) {
    assert_eq!(m.payload(), b"r");
    assert_eq!(m.key(), Some(&b"key-1"[..]));
    if m.topic().starts_with("%DLQ%") {
        // A dead letter is stamped when written; the original timestamp is in its history.
        assert_eq!(
            header(m, "wharf.origin.timestamp").as_deref(),
            Some("42"),
            "the dead letter keeps the timestamp the record was sent with"
        );
    } else {
        assert_eq!(
            m.timestamp(),
            at(42),
            "the record keeps the timestamp it was sent with"
        );
    }
    let user: Vec<(String, Vec<u8>)> = m
        .headers()
        .filter(|(n, _)| !n.starts_with("wharf."))
        .map(|(n, v)| (n.to_owned(), v.to_vec()))
        .collect();
    assert_eq!(
        user,
        vec![
            ("h1".to_owned(), b"v1".to_vec()),
            ("bin".to_owned(), vec![0, 255, 7]),
            ("h1".to_owned(), b"again".to_vec()),
        ],
        "user headers pass through unchanged, in order, duplicates included"
    );
}

#[test]
fn retry_level_after_reason_and_dead_letter_keep_the_record() {
    let (_dir, clock, wharf) = setup(2);
    let producer = wharf.producer().build();
    producer
        .send(
            Record::new("t", "r")
                .key("key-1")
                .header("h1", "v1")
                .header("bin", vec![0_u8, 255, 7])
                .header("h1", "again")
                .timestamp(at(42))
                .partition(1),
        )
        .unwrap();
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let mut other = wharf.consumer("other").subscribe(["t"]).build().unwrap();
    let origin = id("t", 1, 0);

    let d = expect(&mut c, "the original");
    assert_is_r(&d);
    let first_failure = now(&clock);
    d.nack_with_reason(Retry::Level(DelayLevel::new(2)), "boom")
        .unwrap();

    // Per step: the delay (s) of the retry pending, the reason its copy carries, and what is
    // done with the retry when it comes (None: dead_letter).
    let steps: [(i64, &str, Option<Retry>); 4] = [
        // Level 2 was asked: 5 s. Next: 11 s rounds up to level 4.
        (5, "boom", Some(Retry::After(Duration::from_secs(11)))),
        // 30 s; no reason was given, the last one stays. Next: exactly level 3's delay.
        (30, "boom", Some(Retry::After(Duration::from_secs(10)))),
        // 10 s. Next: 1 ms rounds up to level 1.
        (10, "boom", Some(Retry::After(Duration::from_millis(1)))),
        // 1 s. Then dead_letter: at once, whatever the count.
        (1, "boom", None),
    ];
    let mut nacked_at = first_failure;
    for (k, (delay_secs, reason, next)) in steps.into_iter().enumerate() {
        let due = nacked_at + delay_secs * SECOND;
        clock.set(at(due - 1));
        expect_none(&mut c, &format!("retry {} before its due time", k + 1));
        clock.set(at(due));
        let d = expect(&mut c, &format!("retry {}", k + 1));
        let count = u32::try_from(k).unwrap() + 1;
        assert_history(&d, &origin, count, first_failure);
        assert_eq!(header(&d, "wharf.reason").as_deref(), Some(reason));
        assert_is_r(&d);
        nacked_at = now(&clock);
        match next {
            Some(retry) => d.nack(retry).unwrap(),
            None => d.dead_letter("poison").unwrap(),
        }
    }
    let letters = wharf.admin().dead_letters("g", 0, 10).unwrap();
    assert_eq!(letters.len(), 1, "dead_letter writes at once: {letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.origin.as_ref(), Some(&origin));
    assert_eq!(letter.reconsume_count, 4);
    assert_eq!(letter.reason.as_deref(), Some("poison"));
    assert_eq!(letter.first_failure, Some(at(first_failure)));
    assert_is_r(&letter.message);
    assert_eq!(
        header(&letter.message, "wharf.reason").as_deref(),
        Some("poison")
    );
    expect_none(&mut c, "a dead-lettered record is not delivered again");

    // dead_letter on a first delivery: count 0, its own place as origin, failing now.
    clock.set(at(now(&clock) + 7));
    producer
        .send(Record::new("t", "fresh").header("u", "1").partition(0))
        .unwrap();
    let d = expect(&mut c, "a fresh record");
    assert_eq!((d.topic(), d.partition(), d.offset()), ("t", 0, 0));
    d.dead_letter("bad input").unwrap();
    let letters = wharf.admin().dead_letters("g", 1, 10).unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].offset, 1);
    assert_eq!(letters[0].origin, Some(id("t", 0, 0)));
    assert_eq!(letters[0].reconsume_count, 0);
    assert_eq!(letters[0].reason.as_deref(), Some("bad input"));
    assert_eq!(letters[0].first_failure, Some(clock.now()));
    assert_eq!(letters[0].message.payload(), b"fresh");
    assert_eq!(
        user_headers(&letters[0].message),
        vec![("u".into(), "1".into())]
    );

    // Another group saw each record once and none of g's retries.
    let seen = expect_n(&mut other, 2, "group other's records");
    let mut payloads: Vec<String> = seen.iter().map(|d| text(d.payload())).collect();
    payloads.sort();
    assert_eq!(payloads, ["fresh", "r"]);
    assert!(seen.iter().all(|d| d.topic() == "t"), "{seen:?}");
    expect_none(&mut other, "g's retries are g's alone");
    assert_eq!(
        ends(&wharf, "%RETRY%other"),
        Vec::<u64>::new(),
        "group other never nacked: it has no retry topic"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Delayed sends
// ---------------------------------------------------------------------------------------------

/// A delayed record's (sent at, due at, partition, key, explicit timestamp).
type Expected = (i64, i64, u32, Option<&'static str>, Option<i64>);

#[test]
fn delayed_sends_are_delivered_when_due_in_due_order_to_their_partition() {
    let (_dir, clock, wharf) = setup(3);
    let producer = wharf.producer().build();
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let mut expected: BTreeMap<&str, Expected> = BTreeMap::new();

    // T0: level 3 (10 s), explicit partition.
    let r = producer
        .send(
            Record::new("t", "a-level3")
                .delay(3)
                .partition(2)
                .key("ka")
                .header("h", "a"),
        )
        .unwrap();
    assert_eq!(
        (r.topic(), r.partition()),
        ("%DELAY%", 2),
        "level 3 waits in lane 2"
    );
    expected.insert("a-level3", (T0, T0 + 10 * SECOND, 2, Some("ka"), None));

    clock.set(at(T0 + 2 * SECOND));
    // Level 1 (1 s), partition by key.
    let r = producer
        .send(
            Record::new("t", "b-level1")
                .delay(1)
                .key("kb")
                .header("h", "b"),
        )
        .unwrap();
    assert_eq!((r.topic(), r.partition()), ("%DELAY%", 0));
    let kb_partition = partition_for_key(b"kb", 3);
    expected.insert(
        "b-level1",
        (
            T0 + 2 * SECOND,
            T0 + 3 * SECOND,
            kb_partition,
            Some("kb"),
            None,
        ),
    );
    // 4.001 s rounds up to level 2 (5 s); an explicit timestamp is kept.
    let r = producer
        .send(
            Record::new("t", "c-5s")
                .delay_for(Duration::from_millis(4_001))
                .partition(0)
                .timestamp(at(7))
                .header("h", "c"),
        )
        .unwrap();
    assert_eq!((r.topic(), r.partition()), ("%DELAY%", 1));
    expected.insert("c-5s", (T0 + 2 * SECOND, T0 + 7 * SECOND, 0, None, Some(7)));
    // 1 ms rounds up to level 1 (1 s).
    let r = producer
        .send(
            Record::new("t", "d-1s")
                .delay_for(Duration::from_millis(1))
                .partition(1)
                .header("h", "d"),
        )
        .unwrap();
    assert_eq!((r.topic(), r.partition()), ("%DELAY%", 0));
    expected.insert("d-1s", (T0 + 2 * SECOND, T0 + 3 * SECOND, 1, None, None));

    clock.set(at(T0 + 2 * SECOND + 500));
    // Same lane as b and d, due half a second later.
    producer
        .send(
            Record::new("t", "e-level1")
                .delay(1)
                .partition(2)
                .header("h", "e"),
        )
        .unwrap();
    expected.insert("e-level1", (T0 + 2_500, T0 + 3_500, 2, None, None));
    assert_eq!(
        ends(&wharf, "t"),
        vec![0, 0, 0],
        "nothing is in the topic yet"
    );
    assert_eq!(
        wharf.admin().delay_status().waiting[..4],
        [3, 1, 1, 0],
        "waiting per level"
    );
    expect_none(&mut c, "nothing is due yet");

    // Due order: b and d (3 s), e (3.5 s), c (7 s), a (10 s).
    let mut due_times: Vec<i64> = expected.values().map(|e| e.1).collect();
    due_times.sort_unstable();
    due_times.dedup();
    let mut delivered_order = Vec::new();
    for due in due_times {
        let names: BTreeSet<&str> = expected
            .iter()
            .filter(|(_, e)| e.1 == due)
            .map(|(name, _)| *name)
            .collect();
        clock.set(at(due - 1));
        expect_none(&mut c, &format!("{names:?} 1 ms before their due time"));
        clock.set(at(due));
        let got = expect_n(&mut c, names.len(), &format!("{names:?} at their due time"));
        let got_names: BTreeSet<String> = got.iter().map(|d| text(d.payload())).collect();
        assert_eq!(
            got_names,
            names
                .iter()
                .map(|n| (*n).to_owned())
                .collect::<BTreeSet<_>>()
        );
        for d in got {
            let name = text(d.payload());
            let (sent, _, partition, key, timestamp) = expected[name.as_str()];
            assert_eq!((d.topic(), d.partition()), ("t", partition), "{name}");
            assert_eq!(d.key(), key.map(str::as_bytes), "{name}");
            assert_eq!(
                d.timestamp(),
                at(timestamp.unwrap_or(sent)),
                "{name}: the timestamp of the send"
            );
            let h = name[..1].to_owned();
            assert_eq!(
                headers(&d),
                vec![("h".to_owned(), h)],
                "{name}: user headers only, no wharf.* header"
            );
            assert_eq!((d.reconsume_count(), d.origin()), (0, None));
            delivered_order.push(name);
            d.ack().unwrap();
        }
    }
    assert_eq!(delivered_order.len(), 5);
    assert_eq!(&delivered_order[2..], ["e-level1", "c-5s", "a-level3"]);
    expect_none(&mut c, "each delayed record is delivered once");
    assert_eq!(
        ends(&wharf, "%RETRY%g"),
        Vec::<u64>::new(),
        "a delayed send is not a retry: the group has no retry topic"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Delays survive a reopen
// ---------------------------------------------------------------------------------------------

/// Closes `wharf` cleanly, or like a killed process.
fn stop(wharf: Wharf, consumer: Consumer, crash: bool) {
    if crash {
        wharf.simulate_crash();
        drop(consumer);
    } else {
        consumer.close().unwrap();
        wharf.close().unwrap();
    }
}

/// Waits for the records named `names` (as a set); after a crash, copies of records already
/// due (`due_before`) or of `names` may come again and are skipped.
fn expect_set(
    c: &mut Consumer,
    names: &[&str],
    crash: bool,
    due_before: &BTreeSet<String>,
) -> Vec<Delivery> {
    let wanted: BTreeSet<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut got: BTreeMap<String, Delivery> = BTreeMap::new();
    let deadline = Instant::now() + GUARD;
    while got.len() < wanted.len() {
        assert!(
            Instant::now() < deadline,
            "hang guard: only {:?} of {wanted:?} came",
            got.keys()
        );
        let Some(d) = c.poll(Duration::from_millis(50)).unwrap() else {
            continue;
        };
        let name = text(d.payload());
        let duplicate = got.contains_key(&name) || due_before.contains(&name);
        if crash && duplicate {
            d.ack().unwrap();
            continue;
        }
        assert!(
            wanted.contains(&name) && !got.contains_key(&name),
            "unexpected delivery of {name:?} ({d:?}) while waiting for {wanted:?}"
        );
        got.insert(name, d);
    }
    got.into_values().collect()
}

/// Asserts nothing but (after a crash) duplicates of `delivered` comes for a while.
fn expect_only_duplicates(c: &mut Consumer, crash: bool, delivered: &BTreeSet<String>, why: &str) {
    let deadline = Instant::now() + QUIET;
    while Instant::now() < deadline {
        if let Some(d) = c.poll(Duration::from_millis(20)).unwrap() {
            let name = text(d.payload());
            assert!(
                crash && delivered.contains(&name),
                "{why}: unexpected delivery of {name:?} ({d:?})"
            );
            d.ack().unwrap();
        }
    }
}

fn delays_survive(crash: bool) {
    let dir = tempfile::tempdir().unwrap();
    let clock = new_clock();
    let wharf = open(dir.path(), &clock);
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    let producer = wharf.producer().build();
    producer.send(Record::new("t", "orig")).unwrap();
    // Waiting at T0: late-5s (due T0+5s), late-30s and late-20s (level 4: due T0+30s).
    producer.send(Record::new("t", "late-5s").delay(2)).unwrap();
    producer
        .send(Record::new("t", "late-30s").delay(4))
        .unwrap();
    producer
        .send(Record::new("t", "late-20s").delay_for(Duration::from_secs(20)))
        .unwrap();
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let d = expect(&mut c, "orig");
    assert_eq!(d.payload(), b"orig");
    // Retry due at T0 + 10 s.
    d.nack(Retry::Default).unwrap();
    c.commit().unwrap();
    clock.set(at(T0 + 2 * SECOND));
    expect_none(&mut c, "nothing is due before the first stop");
    stop(wharf, c, crash);

    // Reopen before anything is due.
    let wharf = open(dir.path(), &clock);
    let waiting = wharf.admin().delay_status().waiting;
    assert_eq!(
        waiting[..4],
        [0, 1, 1, 2],
        "everything still waits: {waiting:?}"
    );
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    expect_none(
        &mut c,
        "nothing is due after the reopen (orig was committed)",
    );
    let mut delivered = BTreeSet::new();
    clock.set(at(T0 + 5 * SECOND - 1));
    expect_none(&mut c, "late-5s is not due yet");
    clock.set(at(T0 + 5 * SECOND));
    for d in expect_set(&mut c, &["late-5s"], crash, &delivered) {
        assert_eq!((d.topic(), d.partition()), ("t", 0));
        d.ack().unwrap();
    }
    delivered.insert("late-5s".to_owned());
    expect_only_duplicates(&mut c, crash, &delivered, "the retry is not due yet");
    c.commit().unwrap();
    // While closed, the clock moves to 1 ms before the retry is due.
    stop(wharf, c, crash);
    clock.set(at(T0 + 10 * SECOND - 1));

    let wharf = open(dir.path(), &clock);
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    expect_only_duplicates(&mut c, crash, &delivered, "the retry is 1 ms from due");
    clock.set(at(T0 + 10 * SECOND));
    for d in expect_set(&mut c, &["orig"], crash, &delivered) {
        assert_eq!(d.topic(), "%RETRY%g");
        assert_eq!(d.reconsume_count(), 1);
        assert_eq!(d.origin(), Some(id("t", 0, 0)));
        assert_eq!(header(&d, "wharf.first-failure"), Some(T0.to_string()));
        d.ack().unwrap();
    }
    delivered.insert("orig".to_owned());
    expect_only_duplicates(&mut c, crash, &delivered, "the 30 s level is not due yet");
    c.commit().unwrap();
    // While closed, the rest falls due.
    stop(wharf, c, crash);
    clock.set(at(T0 + 40 * SECOND));

    let wharf = open(dir.path(), &clock);
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    for d in expect_set(&mut c, &["late-30s", "late-20s"], crash, &delivered) {
        assert_eq!((d.topic(), d.partition()), ("t", 0));
        d.ack().unwrap();
    }
    delivered.insert("late-30s".to_owned());
    delivered.insert("late-20s".to_owned());
    expect_only_duplicates(&mut c, crash, &delivered, "everything was delivered");
    wait_until("the scheduler records its progress", || {
        wharf.admin().delay_status().waiting.iter().all(|&w| w == 0)
    });
    if !crash {
        // After clean closes, each record is in the topic exactly once.
        let mut names: Vec<String> = read_partition(&wharf, "t", 0)
            .iter()
            .map(|m| text(m.payload()))
            .collect();
        names.sort();
        assert_eq!(names, ["late-20s", "late-30s", "late-5s", "orig"]);
        assert_eq!(read_partition(&wharf, "%RETRY%g", 0).len(), 1);
    }
}

#[test]
fn delays_survive_a_clean_reopen() {
    delays_survive(false);
}

#[test]
fn delays_survive_a_crash() {
    // After a crash a record may be moved (or a nack's original delivered) again: duplicates
    // are allowed, losses and early deliveries are not.
    delays_survive(true);
}

// ---------------------------------------------------------------------------------------------
// 5. Dead-letter operations
// ---------------------------------------------------------------------------------------------

/// A dead letter's (offset, payload, origin, reconsume count, reason).
type Summary = (u64, String, Option<MessageId>, u32, Option<String>);

#[test]
fn dead_letters_resend_one_and_all_to_their_origin_and_purge() {
    let (_dir, clock, wharf) = setup(2);
    let producer = wharf.producer().build();
    for name in ["a", "b", "c"] {
        producer
            .send(
                Record::new("t", name)
                    .partition(1)
                    .key(format!("key-{name}"))
                    .header("user", name)
                    .timestamp(at(100)),
            )
            .unwrap();
    }
    let mut c = wharf
        .consumer("g")
        .subscribe(["t"])
        .max_reconsume_times(1)
        .build()
        .unwrap();
    let got = expect_n(&mut c, 3, "a, b and c");
    let mut got: BTreeMap<String, Delivery> =
        got.into_iter().map(|d| (text(d.payload()), d)).collect();
    got.remove("a").unwrap().dead_letter("bad a").unwrap();
    got.remove("b").unwrap().dead_letter("bad b").unwrap();
    got.remove("c")
        .unwrap()
        .nack_with_reason(Retry::Level(DelayLevel::new(1)), "flaky")
        .unwrap();
    clock.set(at(T0 + SECOND));
    let retry = expect(&mut c, "c's retry");
    assert_eq!((retry.topic(), retry.reconsume_count()), ("%RETRY%g", 1));
    // max_reconsume_times 1: the second failure dead-letters it.
    retry.nack(Retry::Default).unwrap();

    let admin = wharf.admin();
    let letters = admin.dead_letters("g", 0, 10).unwrap();
    let summary: Vec<Summary> = letters
        .iter()
        .map(|l| {
            (
                l.offset,
                text(l.message.payload()),
                l.origin.clone(),
                l.reconsume_count,
                l.reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, "a".into(), Some(id("t", 1, 0)), 0, Some("bad a".into())),
            (1, "b".into(), Some(id("t", 1, 1)), 0, Some("bad b".into())),
            (
                2,
                "c".into(),
                Some(id("t", 1, 2)),
                1,
                Some("flaky (failed 2 times)".into())
            ),
        ]
    );
    assert_eq!(
        admin.dead_letters("g", 1, 1).unwrap()[0].offset,
        1,
        "from, max"
    );
    assert!(admin.dead_letters("g", 3, 10).unwrap().is_empty());

    // Resend one: back to t/1 as a new record, without the retry history.
    admin.resend_dead_letter("g", 1).unwrap();
    assert_eq!(ends(&wharf, "t"), vec![0, 4]);
    let d = expect(&mut c, "b, resent");
    assert_eq!((d.topic(), d.partition(), d.offset()), ("t", 1, 3));
    assert_eq!(d.payload(), b"b");
    assert_eq!(d.key(), Some(&b"key-b"[..]));
    assert_eq!(d.timestamp(), at(100));
    assert_eq!(
        headers(&d),
        vec![("user".into(), "b".into())],
        "no wharf.* header"
    );
    assert_eq!((d.reconsume_count(), d.origin(), d.attempt()), (0, None, 1));
    d.ack().unwrap();
    expect_none(&mut c, "only b was resent");
    assert_eq!(
        admin.dead_letters("g", 0, 10).unwrap().len(),
        3,
        "resent letters stay"
    );

    // Resend all.
    assert_eq!(admin.resend_dead_letters("g").unwrap(), 3);
    let again = expect_n(&mut c, 3, "a, b and c, resent");
    let mut seen = Vec::new();
    let mut resent_c = None;
    for d in again {
        assert_eq!((d.topic(), d.partition()), ("t", 1));
        let name = text(d.payload());
        assert_eq!(d.key(), Some(format!("key-{name}").as_bytes()));
        assert_eq!(headers(&d), vec![("user".into(), name.clone())]);
        assert_eq!((d.reconsume_count(), d.origin()), (0, None));
        seen.push((d.offset(), name.clone()));
        if name == "c" {
            resent_c = Some(d);
        } else {
            d.ack().unwrap();
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![(4, "a".into()), (5, "b".into()), (6, "c".into())]
    );

    // The reconsume count starts again: c, dead-lettered after 1 retry, is retried again.
    resent_c
        .unwrap()
        .nack(Retry::Level(DelayLevel::new(1)))
        .unwrap();
    assert_eq!(
        admin.dead_letters("g", 0, 10).unwrap().len(),
        3,
        "c was retried"
    );

    // Purge.
    assert_eq!(admin.purge_dead_letters("g").unwrap(), 3);
    assert!(admin.dead_letters("g", 0, 10).unwrap().is_empty());
    assert_eq!(admin.resend_dead_letters("g").unwrap(), 0);
    assert_eq!(admin.purge_dead_letters("g").unwrap(), 0, "nothing left");

    // Dead-lettering after a purge works again.
    clock.set(at(T0 + 2 * SECOND));
    let c_again = expect(&mut c, "c's retry");
    assert_eq!(c_again.payload(), b"c");
    assert_eq!(c_again.reconsume_count(), 1);
    assert_eq!(
        c_again.origin(),
        Some(id("t", 1, 6)),
        "first consumed where it was resent"
    );
    c_again.dead_letter("after the purge").unwrap();
    let letters = admin.dead_letters("g", 0, 10).unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].message.payload(), b"c");
    assert_eq!(letters[0].origin, Some(id("t", 1, 6)));
    assert_eq!(letters[0].reconsume_count, 1);
    assert_eq!(letters[0].reason.as_deref(), Some("after the purge"));
    assert_eq!(admin.purge_dead_letters("g").unwrap(), 1);
}

#[test]
fn dead_letter_operations_check_the_group() {
    let (_dir, _clock, wharf) = setup(1);
    let admin = wharf.admin();
    let is_not_found = |kind: ErrorKind| matches!(kind, ErrorKind::GroupNotFound { .. });
    assert!(is_not_found(kind_of(admin.dead_letters("nope", 0, 10))));
    assert!(is_not_found(kind_of(admin.resend_dead_letter("nope", 0))));
    assert!(is_not_found(kind_of(admin.resend_dead_letters("nope"))));
    assert!(is_not_found(kind_of(admin.purge_dead_letters("nope"))));
    for bad in ["", "a/b", "%DLQ%g", "sp ace"] {
        let is_invalid = |kind: ErrorKind| matches!(kind, ErrorKind::InvalidGroupName { .. });
        assert!(
            is_invalid(kind_of(admin.dead_letters(bad, 0, 10))),
            "{bad:?}"
        );
        assert!(
            is_invalid(kind_of(admin.resend_dead_letter(bad, 0))),
            "{bad:?}"
        );
        assert!(
            is_invalid(kind_of(admin.resend_dead_letters(bad))),
            "{bad:?}"
        );
        assert!(
            is_invalid(kind_of(admin.purge_dead_letters(bad))),
            "{bad:?}"
        );
    }

    // An existing group that never dead-lettered anything.
    let c = wharf.consumer("quiet").subscribe(["t"]).build().unwrap();
    c.close().unwrap();
    assert!(admin.dead_letters("quiet", 0, 10).unwrap().is_empty());
    assert_eq!(admin.resend_dead_letters("quiet").unwrap(), 0);
    assert_eq!(admin.purge_dead_letters("quiet").unwrap(), 0);
    admin
        .resend_dead_letter("quiet", 0)
        .expect_err("there is no dead letter 0");

    // An offset past the queue.
    wharf
        .producer()
        .build()
        .send(Record::new("t", "m"))
        .unwrap();
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    expect(&mut c, "m").dead_letter("why not").unwrap();
    assert!(matches!(
        kind_of(admin.resend_dead_letter("g", 5)),
        ErrorKind::OffsetOutOfRange { .. }
    ));
    assert_eq!(ends(&wharf, "t"), vec![1], "nothing was resent");
}

#[test]
fn internal_topics_are_listed_as_internal_and_the_scheduler_group_is_hidden() {
    let (_dir, clock, wharf) = setup(1);
    wharf
        .producer()
        .build()
        .send(Record::new("t", "m"))
        .unwrap();
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    expect(&mut c, "m")
        .nack(Retry::Level(DelayLevel::new(1)))
        .unwrap();
    clock.set(at(T0 + SECOND));
    expect(&mut c, "m's retry").dead_letter("done").unwrap();
    c.close().unwrap();
    let topics: BTreeMap<String, bool> = wharf
        .topics()
        .iter()
        .map(|t| (t.name().to_owned(), t.is_internal()))
        .collect();
    let expected: BTreeMap<String, bool> = [
        ("%DELAY%", true),
        ("%DLQ%g", true),
        ("%RETRY%g", true),
        ("t", false),
    ]
    .into_iter()
    .map(|(n, i)| (n.to_owned(), i))
    .collect();
    assert_eq!(topics, expected);
    let config = |name: &str| {
        wharf
            .topics()
            .into_iter()
            .find(|t| t.name() == name)
            .unwrap()
            .config()
            .clone()
    };
    assert_eq!(
        config("%DELAY%").partitions,
        18,
        "one lane per default level"
    );
    assert_eq!(
        config("%DLQ%g").retention,
        Retention::forever().max_age(DEFAULT_DEAD_LETTER_RETENTION),
        "dead letters are kept 7 days by default"
    );
    assert_eq!(
        DEFAULT_DEAD_LETTER_RETENTION,
        Duration::from_secs(7 * 24 * 3_600)
    );
    assert_eq!(
        config("%RETRY%g").retention,
        Retention::forever()
            .max_age(Duration::ZERO)
            .until_consumed_by(["g"]),
        "a retry topic keeps what its group has not consumed, and nothing else"
    );
    assert_eq!(
        config("%DELAY%").retention,
        Retention::forever()
            .max_age(Duration::ZERO)
            .until_consumed_by(["%DELAY%"]),
        "the delay topic keeps what the scheduler has not moved, and nothing else"
    );
    assert_eq!(wharf.admin().list_groups().unwrap(), ["g"]);
}

#[test]
fn dead_letter_topics_get_their_own_retention() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention::forever().max_bytes(1 << 20);
    let wharf = Wharf::builder(dir.path())
        .dead_letter_retention(retention.clone())
        .open()
        .unwrap();
    let topic_retention = Retention::forever().max_age(Duration::from_secs(60));
    wharf
        .create_topic(
            "t",
            TopicConfig::default().retention(topic_retention.clone()),
        )
        .unwrap();
    wharf
        .producer()
        .build()
        .send(Record::new("t", "m"))
        .unwrap();
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    expect(&mut c, "m").dead_letter("no").unwrap();
    let retention_of = |name: &str| {
        wharf
            .topics()
            .into_iter()
            .find(|t| t.name() == name)
            .unwrap()
            .config()
            .retention
            .clone()
    };
    assert_eq!(retention_of("%DLQ%g"), retention);
    assert_eq!(retention_of("t"), topic_retention);
}

#[test]
fn a_group_with_the_longest_valid_name_can_retry_and_dead_letter() {
    let (_dir, clock, wharf) = setup(1);
    let group = "g".repeat(MAX_GROUP_NAME_LEN);
    assert_eq!(MAX_GROUP_NAME_LEN + "%RETRY%".len(), MAX_TOPIC_NAME_LEN);
    validate_group_name(&group).expect("the longest group name is valid");
    let longer = "g".repeat(MAX_GROUP_NAME_LEN + 1);
    assert!(matches!(
        validate_group_name(&longer).unwrap_err().kind(),
        ErrorKind::InvalidGroupName { .. }
    ));
    assert!(matches!(
        wharf
            .consumer(&longer)
            .subscribe(["t"])
            .build()
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidGroupName { .. }
    ));
    wharf
        .producer()
        .build()
        .send(Record::new("t", "m"))
        .unwrap();
    let mut c = wharf
        .consumer(&group)
        .subscribe(["t"])
        .build()
        .expect("a consumer of a valid group subscribes, with its retry topic");
    expect(&mut c, "m")
        .nack(Retry::Level(DelayLevel::new(1)))
        .unwrap();
    clock.set(at(T0 + SECOND));
    let d = expect(&mut c, "m's retry");
    assert_eq!(d.topic(), format!("%RETRY%{group}"));
    d.dead_letter("no").unwrap();
    assert_eq!(wharf.admin().dead_letters(&group, 0, 10).unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 6. Bad input
// ---------------------------------------------------------------------------------------------

#[test]
fn delayed_sends_with_bad_delays_fail_and_write_nothing() {
    let (_dir, _clock, wharf) = setup(1);
    let producer = wharf.producer().build();
    // A good one first, so the delay topic exists and its lanes can be watched.
    producer.send(Record::new("t", "ok").delay(18)).unwrap();
    let delay_before = ends(&wharf, "%DELAY%");
    assert_eq!(delay_before.len(), 18);
    let bad: Vec<(&str, Record)> = vec![
        ("level 0", Record::new("t", "x").delay(0)),
        ("level 19 of 18", Record::new("t", "x").delay(19)),
        ("level 255", Record::new("t", "x").delay(255)),
        (
            "3 h, past the longest level",
            Record::new("t", "x").delay_for(Duration::from_secs(3 * 3_600)),
        ),
        (
            "2 h + 1 ms",
            Record::new("t", "x").delay_for(Duration::from_millis(7_200_001)),
        ),
        (
            "Duration::MAX",
            Record::new("t", "x").delay_for(Duration::MAX),
        ),
    ];
    for (what, record) in bad {
        assert_invalid_delay(producer.send(record.clone()), what);
        assert_invalid_delay(
            producer.send_batch([Record::new("t", "good").delay(1), record]),
            &format!("{what} in a batch"),
        );
    }
    assert!(matches!(
        kind_of(producer.send(Record::new("missing", "x").delay(1))),
        ErrorKind::TopicNotFound { .. }
    ));
    assert_eq!(
        ends(&wharf, "%DELAY%"),
        delay_before,
        "no bad send wrote anything"
    );
    assert_eq!(ends(&wharf, "t"), vec![0]);
    assert!(wharf.reader("missing", 0).is_err(), "no topic was created");
}

#[test]
fn nack_with_a_bad_delay_fails_and_leaves_the_delivery_pending() {
    let (_dir, _clock, wharf) = setup(1);
    wharf
        .producer()
        .build()
        .send(Record::new("t", "m"))
        .unwrap();
    let mut c = wharf
        .consumer("g")
        .subscribe(["t"])
        .ack_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let bad = [
        ("level 0", Retry::Level(DelayLevel::new(0))),
        ("level 19 of 18", Retry::Level(DelayLevel::new(19))),
        ("3 h", Retry::After(Duration::from_secs(3 * 3_600))),
        ("Duration::MAX", Retry::After(Duration::MAX)),
    ];
    let delay_before = ends(&wharf, "%DELAY%");
    let mut attempt = 0;
    for (what, retry) in bad {
        let d = expect(&mut c, "m, pending");
        attempt += 1;
        assert_eq!(
            (d.topic(), d.offset(), d.attempt()),
            ("t", 0, attempt),
            "{what}"
        );
        assert_invalid_delay(d.nack(retry), what);
        let d = expect(&mut c, "m, still pending after the failed nack");
        attempt += 1;
        assert_eq!(
            (d.topic(), d.offset(), d.attempt()),
            ("t", 0, attempt),
            "{what}"
        );
        assert_invalid_delay(d.nack_with_reason(retry, "why"), what);
        assert_eq!(
            ends(&wharf, "%DELAY%"),
            delay_before,
            "{what}: nothing written"
        );
        assert_eq!(
            ends(&wharf, "%RETRY%g"),
            Vec::<u64>::new(),
            "{what}: nothing written, no retry topic created"
        );
        assert!(ends(&wharf, "%DLQ%g").is_empty(), "{what}: nothing written");
    }
    c.commit_acked().unwrap();
    assert_eq!(
        c.committed(&wharf::TopicPartition::new("t", 0))
            .unwrap_or(0),
        0,
        "a failed nack does not settle the delivery"
    );
    let d = expect(&mut c, "m, pending after every failed nack");
    d.nack(Retry::Default).unwrap();
    assert_eq!(
        wharf.admin().delay_status().waiting[2],
        1,
        "a good nack works"
    );
}

#[test]
fn bad_delay_tables_are_refused() {
    let table = |levels: u32| -> String {
        let words: Vec<String> = (1..=levels).map(|s| format!("{s}s")).collect();
        words.join(" ")
    };
    let (too_many, just_enough) = (table(65), table(64));
    for (what, table) in [
        ("empty", ""),
        ("blank", "   "),
        ("unreadable", "1s x"),
        ("no unit", "1 2"),
        ("zero", "0s 1s"),
        ("equal", "1s 1s"),
        ("decreasing", "5s 1s"),
        ("longer than 30 days", "1s 31d"),
        ("65 levels", too_many.as_str()),
    ] {
        assert_invalid_delay(DelayLevels::parse(table), what);
        assert_invalid_delay(table.parse::<DelayLevels>(), what);
    }
    assert_eq!(DelayLevels::parse(&just_enough).unwrap().len(), 64);
    let longest = DelayLevels::parse("500ms 30d").unwrap();
    assert_eq!(longest.get(DelayLevel::new(2)).unwrap(), MAX_DELAY);
    let ms = Duration::from_millis(1);
    for (what, delays) in [
        ("empty", vec![]),
        ("zero", vec![Duration::ZERO]),
        ("past 30 days", vec![ms, MAX_DELAY + ms]),
        ("not increasing", vec![ms * 2, ms]),
        ("65 levels", (1..=65).map(|i| ms * i).collect()),
    ] {
        assert_invalid_delay(DelayLevels::from_durations(delays), what);
    }
    let default = DelayLevels::default();
    assert_eq!(default.len(), 18);
    let secs: Vec<i64> = (1..=18_u8)
        .map(|l| i64::try_from(default.get(DelayLevel::new(l)).unwrap().as_secs()).unwrap())
        .collect();
    assert_eq!(secs, LEVELS_SECS);
    assert_invalid_delay(default.get(DelayLevel::new(0)), "level 0");
    assert_invalid_delay(default.get(DelayLevel::new(19)), "level 19");
}

// ---------------------------------------------------------------------------------------------
// 7. A custom table
// ---------------------------------------------------------------------------------------------

#[test]
fn a_custom_table_caps_the_default_retry_at_its_highest_level() {
    let dir = tempfile::tempdir().unwrap();
    let clock = new_clock();
    let wharf = Wharf::builder(dir.path())
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .delay_levels(DelayLevels::parse("1s 2s 3s").unwrap())
        .open()
        .unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    let producer = wharf.producer().build();
    producer.send(Record::new("t", "m")).unwrap();
    assert_invalid_delay(
        producer.send(Record::new("t", "x").delay(4)),
        "level 4 of 3",
    );
    assert_invalid_delay(
        producer.send(Record::new("t", "x").delay_for(Duration::from_millis(3_001))),
        "past 3 s",
    );
    let mut c = wharf
        .consumer("g")
        .subscribe(["t"])
        .max_reconsume_times(3)
        .build()
        .unwrap();
    let mut d = expect(&mut c, "m");
    // Level 3 + k capped at 3; 2.5 s rounds up to level 3 as well.
    let retries = [
        Retry::Default,
        Retry::Default,
        Retry::After(Duration::from_millis(2_500)),
    ];
    for (k, retry) in (1_u32..).zip(retries) {
        let nacked_at = now(&clock);
        d.nack(retry).unwrap();
        // The scheduler records moving the previous retry after the consumer may see it.
        wait_until(&format!("retry {k} waits at level 3, the highest"), || {
            wharf.admin().delay_status().waiting == [0, 0, 1]
        });
        clock.set(at(nacked_at + 3 * SECOND - 1));
        expect_none(&mut c, &format!("retry {k} before 3 s"));
        clock.set(at(nacked_at + 3 * SECOND));
        d = expect(&mut c, &format!("retry {k} after 3 s"));
        assert_eq!(d.reconsume_count(), k);
    }
    // The record has had its 3 retries.
    let nacked_at = now(&clock);
    d.nack(Retry::Default).unwrap();
    let letters = wharf.admin().dead_letters("g", 0, 10).unwrap();
    assert_eq!(letters.len(), 1, "after 3 retries: {letters:?}");
    assert_eq!(letters[0].reconsume_count, 3);
    assert_eq!(letters[0].reason.as_deref(), Some("failed 4 times"));
    clock.set(at(nacked_at + 3 * SECOND));
    expect_none(&mut c, "a dead letter is not delivered");
}

// ---------------------------------------------------------------------------------------------
// 8. Durability of a nack
// ---------------------------------------------------------------------------------------------

#[test]
fn an_fsync_nack_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let clock = new_clock();
    let wharf = open(dir.path(), &clock);
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    wharf
        .producer()
        .ack(AckMode::Fsync)
        .build()
        .send(Record::new("t", "m").key("k"))
        .unwrap();
    let mut c = wharf
        .consumer("g")
        .subscribe(["t"])
        .commit_ack(AckMode::Fsync)
        .build()
        .unwrap();
    expect(&mut c, "m")
        .nack_with_reason(Retry::Default, "crash next")
        .unwrap();
    wharf.simulate_crash();
    drop(c);

    let wharf = open(dir.path(), &clock);
    assert_eq!(
        wharf.admin().delay_status().waiting[2],
        1,
        "the retry copy waits at level 3 after the crash"
    );
    let mut c = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    // The original was not committed: it may come again (a duplicate, allowed).
    if let Some(d) = c.poll(QUIET).unwrap() {
        assert_eq!((d.topic(), d.offset(), d.payload()), ("t", 0, &b"m"[..]));
        d.ack().unwrap();
    }
    clock.set(at(T0 + 10 * SECOND - 1));
    expect_none(&mut c, "the retry is not due yet");
    clock.set(at(T0 + 10 * SECOND));
    let d = expect(&mut c, "the retry copy");
    assert_eq!(d.topic(), "%RETRY%g");
    assert_eq!((d.payload(), d.key()), (&b"m"[..], Some(&b"k"[..])));
    assert_eq!(d.reconsume_count(), 1);
    assert_eq!(d.origin(), Some(id("t", 0, 0)));
    assert_eq!(header(&d, "wharf.reason").as_deref(), Some("crash next"));
    d.ack().unwrap();
    expect_none(&mut c, "one retry copy");
}

// ---------------------------------------------------------------------------------------------
// 6. A clean close keeps the scheduler's progress
// ---------------------------------------------------------------------------------------------

/// A clean close (or the drop of the last handle) right after the scheduler moved a delayed
/// record must not move it again after the reopen: a duplicate is allowed only after a crash.
/// 200 rounds, closing 0 to 50 ms after the record showed up in its target.
#[test]
fn a_clean_close_right_after_a_move_never_moves_the_record_again() {
    const ROUNDS: u64 = 200;
    // One delay level: one lane to create, sync and close per round.
    let open = |dir: &Path, clock: &Arc<ManualClock>| {
        Wharf::builder(dir)
            .clock(Arc::clone(clock) as Arc<dyn Clock>)
            .delay_levels(DelayLevels::parse("1s").unwrap())
            .open()
            .unwrap()
    };
    let mut duplicates = Vec::new();
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let clock = new_clock();
        let wharf = open(dir.path(), &clock);
        wharf.create_topic("t", TopicConfig::default()).unwrap();
        let producer = wharf.producer().build();
        producer.send(Record::new("t", "later").delay(1)).unwrap();
        drop(producer);
        clock.set(at(T0 + SECOND));
        wait_until("the record is moved", || ends(&wharf, "t") == [1]);
        // Rounds spread over 0..=50 ms, a third of them closing at once.
        let pause = if round % 3 == 0 { 0 } else { round * 7 % 51 };
        std::thread::sleep(Duration::from_millis(pause));
        if round % 2 == 0 {
            wharf.close().unwrap();
        } else {
            drop(wharf);
        }
        let wharf = open(dir.path(), &clock);
        assert!(
            wharf.recovery_stats().clean_shutdown,
            "round {round}: the close was clean"
        );
        wait_until("the delay queue is empty", || {
            wharf.admin().delay_status().waiting.iter().all(|&w| w == 0)
        });
        let moved = ends(&wharf, "t");
        if moved != [1] {
            duplicates.push((round, pause, moved));
        }
        wharf.close().unwrap();
    }
    assert!(
        duplicates.is_empty(),
        "records moved again after a clean close (round, pause ms, target end): {duplicates:?}"
    );
}
