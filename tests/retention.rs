//! Retention and disk limits (DESIGN.md section 2, "Retention and disk"): whole old segments
//! are deleted by age and by size, never the active one; retention can wait for consumer
//! groups; `delete_records` moves the log start; a disk quota or a full file system gives
//! `Full`, loses nothing acknowledged, and writes resume once space is freed; thousands of
//! segments keep a bounded number of files and mappings open.
//!
//! Time comes from a `ManualClock` (record timestamps and retention's "now"); the background
//! retention thread is pushed out of the way with a long `retention_interval`, so every
//! deletion here comes from an explicit `enforce_retention` or `delete_records` (except in the
//! tests of the thread itself). Waits have hang guards that fail with a message, never timing
//! assertions.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use common::{open_files_under, payload};
use wharf::{
    AckMode, Clock, ErrorKind, ManualClock, OutOfRange, ReadOptions, Record, ResetTo, Retention,
    RetentionReport, Timestamp, TopicConfig, TopicPartition, Wharf, WharfBuilder,
};

/// The manual clock's start.
const T0: i64 = 1_700_000_000_000;
const SECOND: i64 = 1_000;
/// Small segments: a 1,000-byte record takes a little over 1 KiB, so three fit in one.
const SEGMENT_BYTES: u64 = 4 * 1024;
const RECORD_BYTES: usize = 1_000;
/// A hang guard: long enough for a loaded 2-core machine, short enough to report a hang.
const HANG_GUARD: Duration = Duration::from_secs(60);
/// Retention runs only when a test asks for it.
const NO_BACKGROUND_RUN: Duration = Duration::from_secs(24 * 3_600);

fn new_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_millis(T0)))
}

fn builder(dir: &Path, clock: &Arc<ManualClock>) -> WharfBuilder {
    Wharf::builder(dir)
        .clock(Arc::clone(clock) as Arc<dyn Clock>)
        .retention_interval(NO_BACKGROUND_RUN)
}

fn open(dir: &Path, clock: &Arc<ManualClock>) -> Wharf {
    builder(dir, clock).open().expect("open")
}

fn small_segments(retention: Retention) -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(SEGMENT_BYTES)
        .max_message_bytes(2_048)
        .retention(retention)
}

fn at(millis: i64) -> Timestamp {
    Timestamp::from_millis(millis)
}

fn partition_dir(dir: &Path, topic: &str, partition: u32) -> PathBuf {
    dir.join("topics").join(topic).join(partition.to_string())
}

/// Base offsets of the segments of a partition, from the `.log` files in its directory.
fn segment_bases(dir: &Path, topic: &str, partition: u32) -> Vec<u64> {
    let mut bases: Vec<u64> = segment_file_names(dir, topic, partition)
        .iter()
        .filter_map(|name| name.strip_suffix(".log"))
        .map(|stem| stem.parse().expect("a segment name is a base offset"))
        .collect();
    bases.sort_unstable();
    bases
}

/// Names of every segment file (`.log`, `.index`, `.timeindex`) of a partition.
fn segment_file_names(dir: &Path, topic: &str, partition: u32) -> BTreeSet<String> {
    std::fs::read_dir(partition_dir(dir, topic, partition))
        .expect("partition dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|name| {
            matches!(
                Path::new(name).extension().and_then(|e| e.to_str()),
                Some("log" | "index" | "timeindex")
            )
        })
        .collect()
}

fn segment_names(base: u64) -> [String; 3] {
    [
        format!("{base:020}.log"),
        format!("{base:020}.index"),
        format!("{base:020}.timeindex"),
    ]
}

/// Bytes of a segment's `.log` file.
fn log_len(dir: &Path, topic: &str, partition: u32, base: u64) -> u64 {
    std::fs::metadata(partition_dir(dir, topic, partition).join(format!("{base:020}.log")))
        .expect("segment log")
        .len()
}

/// Sends `count` records of `RECORD_BYTES` to partition 0 of `topic`, the payload of record
/// `i` being `payload(first + i)`, moving the clock `step` after each.
fn send_spaced(wharf: &Wharf, clock: &ManualClock, topic: &str, range: std::ops::Range<u64>) {
    let producer = wharf.producer().ack(AckMode::Write).build();
    for i in range {
        let receipt = producer
            .send(Record::new(topic.to_owned(), payload(i, RECORD_BYTES)).partition(0))
            .expect("send");
        assert_eq!(receipt.offset(), i, "offsets are contiguous");
        clock.advance(Duration::from_secs(1));
    }
}

/// Every record of partition 0 from `from` to the log end, as (offset, payload).
fn read_from(wharf: &Wharf, topic: &str, from: u64) -> Vec<(u64, Vec<u8>)> {
    let reader = wharf.reader(topic, 0).expect("reader");
    let end = reader.end_offset();
    let mut out = Vec::new();
    let mut offset = from;
    while offset < end {
        let batch = reader
            .read(offset, ReadOptions::default().max_records(1_000))
            .unwrap_or_else(|e| panic!("read at {offset}: {e}"));
        assert!(!batch.is_empty(), "no progress at {offset} (end {end})");
        out.extend(batch.iter().map(|m| (m.offset(), m.payload().to_vec())));
        offset = batch.next_offset();
    }
    out
}

/// Checks that partition 0 holds exactly the records `start..end`, each byte-identical to
/// what was sent (`payload(offset)`).
fn assert_holds(wharf: &Wharf, topic: &str, start: u64, end: u64) {
    let reader = wharf.reader(topic, 0).expect("reader");
    assert_eq!(reader.start_offset(), start, "{topic}: log start");
    assert_eq!(reader.end_offset(), end, "{topic}: log end");
    let records = read_from(wharf, topic, start);
    let expected: Vec<(u64, Vec<u8>)> = (start..end)
        .map(|i| (i, payload(i, RECORD_BYTES)))
        .collect();
    assert!(
        records == expected,
        "{topic}: records {start}..{end} read back byte-identical"
    );
}

/// A read below the log start fails with `OffsetOutOfRange` naming the start.
fn assert_below_start(wharf: &Wharf, topic: &str, offset: u64, start: u64) {
    let reader = wharf.reader(topic, 0).expect("reader");
    let err = reader
        .read(offset, ReadOptions::default())
        .expect_err("a read below the log start fails");
    match err.kind() {
        ErrorKind::OffsetOutOfRange {
            offset: o,
            start: s,
            ..
        } => {
            assert_eq!((*o, *s), (offset, start), "{err}");
        }
        _ => panic!("expected OffsetOutOfRange at {offset}, got {err}"),
    }
}

fn report(segments: u64, bytes: u64, unconsumed: u64) -> RetentionReport {
    let mut r = RetentionReport::default();
    r.segments_deleted = segments;
    r.bytes_deleted = bytes;
    r.unconsumed_dropped = unconsumed;
    r
}

// ---------------------------------------------------------------------------------------
// 1. Retention by age.
// ---------------------------------------------------------------------------------------

#[test]
fn age_retention_deletes_exactly_the_expired_sealed_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = open(dir.path(), &clock);
    let max_age = Duration::from_secs(10);
    wharf
        .create_topic("t", small_segments(Retention::forever().max_age(max_age)))
        .expect("topic");
    send_spaced(&wharf, &clock, "t", 0..20);
    wharf.sync().expect("sync (finalizes the sealed segments)");
    let bases = segment_bases(dir.path(), "t", 0);
    assert!(bases.len() >= 6, "several sealed segments: {bases:?}");
    // Record i was stamped T0 + i s, so segment k's newest record is bases[k + 1] - 1.
    let newest = |k: usize| T0 + (i64::try_from(bases[k + 1]).unwrap() - 1) * SECOND;

    // Exactly max_age old is not older than max_age.
    clock.set(at(newest(0) + 10 * SECOND));
    assert_eq!(
        wharf.admin().enforce_retention().expect("run"),
        report(0, 0, 0)
    );

    // Segments 0..3 expired, segment 3 (its newest record 9.5 s old at most) not.
    clock.set(at(newest(2) + 10 * SECOND + 500));
    let bytes: u64 = bases[..3]
        .iter()
        .map(|&b| log_len(dir.path(), "t", 0, b))
        .sum();
    let got = wharf.admin().enforce_retention().expect("run");
    assert_eq!(got, report(3, bytes, 0), "three segments of {bases:?}");
    let start = bases[3];
    assert_holds(&wharf, "t", start, 20);
    assert_below_start(&wharf, "t", start - 1, start);
    assert_below_start(&wharf, "t", 0, start);
    let files = segment_file_names(dir.path(), "t", 0);
    for &base in &bases[..3] {
        for name in segment_names(base) {
            assert!(!files.contains(&name), "{name} deleted: {files:?}");
        }
    }
    for &base in &bases[3..] {
        for name in segment_names(base) {
            assert!(files.contains(&name), "{name} kept: {files:?}");
        }
    }
    assert_eq!(
        wharf.admin().enforce_retention().expect("run again"),
        report(0, 0, 0),
        "a second run finds nothing more"
    );

    // Everything expired: every sealed segment goes, never the active one.
    clock.advance(Duration::from_secs(3_600));
    let active = *bases.last().unwrap();
    let bytes: u64 = bases[3..bases.len() - 1]
        .iter()
        .map(|&b| log_len(dir.path(), "t", 0, b))
        .sum();
    let got = wharf.admin().enforce_retention().expect("run");
    assert_eq!(got, report(bases.len() as u64 - 4, bytes, 0));
    assert_eq!(segment_bases(dir.path(), "t", 0), [active]);
    assert_holds(&wharf, "t", active, 20);
    assert_below_start(&wharf, "t", active - 1, active);

    // The log start survives a reopen, and appends go on from the log end.
    wharf.close().expect("close");
    let wharf = open(dir.path(), &clock);
    assert_holds(&wharf, "t", active, 20);
    assert_below_start(&wharf, "t", 0, active);
    send_spaced(&wharf, &clock, "t", 20..22);
    assert_holds(&wharf, "t", active, 22);
}

#[test]
fn age_retention_survives_a_crash_right_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = open(dir.path(), &clock);
    wharf
        .create_topic(
            "t",
            small_segments(Retention::forever().max_age(Duration::from_secs(5))),
        )
        .expect("topic");
    send_spaced(&wharf, &clock, "t", 0..12);
    clock.advance(Duration::from_secs(3_600));
    let bases = segment_bases(dir.path(), "t", 0);
    let active = *bases.last().unwrap();
    let got = wharf.admin().enforce_retention().expect("run");
    assert_eq!(got.segments_deleted, bases.len() as u64 - 1);
    wharf.simulate_crash();
    let wharf = open(dir.path(), &clock);
    assert_holds(&wharf, "t", active, 12);
    assert_below_start(&wharf, "t", 0, active);
    assert_eq!(segment_bases(dir.path(), "t", 0), [active]);
}

// ---------------------------------------------------------------------------------------
// 2. Retention by size.
// ---------------------------------------------------------------------------------------

/// Writes records 0..count to topic `t` of a fresh directory and closes it (trimming the
/// active segment); returns the sizes of its segment logs, oldest first.
fn probe_sizes(count: u64) -> Vec<u64> {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = open(dir.path(), &clock);
    wharf
        .create_topic("t", small_segments(Retention::forever()))
        .expect("topic");
    send_spaced(&wharf, &clock, "t", 0..count);
    wharf.close().expect("close");
    segment_bases(dir.path(), "t", 0)
        .iter()
        .map(|&b| log_len(dir.path(), "t", 0, b))
        .collect()
}

#[test]
fn size_retention_deletes_the_oldest_sealed_segments_until_at_or_under_the_limit() {
    const COUNT: u64 = 20;
    let sizes = probe_sizes(COUNT);
    assert!(sizes.len() >= 5, "{sizes:?}");
    let total: u64 = sizes.iter().sum();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = open(dir.path(), &clock);
    let limits = [
        // (topic, max_bytes, segments deleted)
        ("at", total - sizes[0] - sizes[1], 2),
        ("under", total - sizes[0] - sizes[1] - 1, 3),
        ("one", 1, sizes.len() - 1),
        ("all", total, 0),
    ];
    for (topic, max, _) in limits {
        wharf
            .create_topic(topic, small_segments(Retention::forever().max_bytes(max)))
            .expect("topic");
        send_spaced(&wharf, &clock, topic, 0..COUNT);
    }
    // Close and reopen: the active segments are trimmed to their data, so the file sizes
    // are what retention counts.
    wharf.close().expect("close");
    let wharf = open(dir.path(), &clock);
    for (topic, _, _) in limits {
        let now: Vec<u64> = segment_bases(dir.path(), topic, 0)
            .iter()
            .map(|&b| log_len(dir.path(), topic, 0, b))
            .collect();
        assert_eq!(now, sizes, "{topic}: same records, same segments");
    }
    let bases = segment_bases(dir.path(), "at", 0);
    let got = wharf.admin().enforce_retention().expect("run");
    let expected_segments: usize = limits.iter().map(|l| l.2).sum();
    let expected_bytes: u64 = limits
        .iter()
        .map(|l| sizes[..l.2].iter().sum::<u64>())
        .sum();
    assert_eq!(
        got,
        report(expected_segments as u64, expected_bytes, 0),
        "sizes {sizes:?}"
    );
    for (topic, _, deleted) in limits {
        assert_eq!(
            segment_bases(dir.path(), topic, 0),
            bases[deleted..],
            "{topic}: the oldest {deleted} segments deleted"
        );
        assert_holds(&wharf, topic, bases[deleted], COUNT);
    }
    assert_eq!(
        wharf.admin().enforce_retention().expect("again"),
        report(0, 0, 0),
        "at or under every limit now"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Consumer-aware retention.
// ---------------------------------------------------------------------------------------

/// Commits `offset` for `group` in partition 0 of `topic` (the group has no member).
fn commit(wharf: &Wharf, group: &str, topic: &str, offset: u64) {
    let changes = wharf
        .admin()
        .reset_offsets(group, topic, ResetTo::Offset(offset))
        .expect("reset offsets");
    assert_eq!(
        changes[0].after, offset,
        "{group} committed {offset} in {topic}"
    );
}

fn start_of(wharf: &Wharf, topic: &str) -> u64 {
    wharf.reader(topic, 0).expect("reader").start_offset()
}

#[test]
fn retention_waits_for_the_named_groups_to_commit_past_a_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = open(dir.path(), &clock);
    let age = Duration::from_secs(10);
    let topics = [
        (
            "by_age",
            Retention::forever().max_age(age).until_consumed_by(["g"]),
        ),
        (
            "by_size",
            Retention::forever().max_bytes(1).until_consumed_by(["g"]),
        ),
        // "never" has committed nothing anywhere: it keeps everything.
        (
            "two",
            Retention::forever()
                .max_age(age)
                .until_consumed_by(["g", "never"]),
        ),
        // "other" commits in "by_age" only: in this topic it committed nothing.
        (
            "other",
            Retention::forever()
                .max_age(age)
                .until_consumed_by(["other"]),
        ),
    ];
    for (topic, retention) in &topics {
        wharf
            .create_topic(topic, small_segments(retention.clone()))
            .expect("topic");
        send_spaced(&wharf, &clock, topic, 0..20);
    }
    let bases = segment_bases(dir.path(), "by_age", 0);
    for (topic, _) in &topics {
        assert_eq!(segment_bases(dir.path(), topic, 0), bases, "{topic}");
    }
    clock.advance(Duration::from_secs(3_600));
    assert_eq!(
        wharf.admin().enforce_retention().expect("run"),
        report(0, 0, 0),
        "nobody committed anything: everything stays, though past age and size"
    );
    for (topic, _) in &topics {
        assert_holds(&wharf, topic, 0, 20);
    }

    commit(&wharf, "other", "by_age", 20);
    commit(&wharf, "g", "by_age", bases[2]);
    commit(&wharf, "g", "by_size", bases[1] + 1);
    commit(&wharf, "g", "two", 20);
    let got = wharf.admin().enforce_retention().expect("run");
    assert_eq!(got.segments_deleted, 3, "by_age: 2, by_size: 1 ({got:?})");
    assert_eq!(got.unconsumed_dropped, 0);
    assert_eq!(
        start_of(&wharf, "by_age"),
        bases[2],
        "segments 0 and 1 consumed"
    );
    assert_eq!(
        start_of(&wharf, "by_size"),
        bases[1],
        "only segment 0 wholly consumed"
    );
    assert_eq!(start_of(&wharf, "two"), 0, "\"never\" never committed");
    assert_eq!(
        start_of(&wharf, "other"),
        0,
        "\"other\" committed nothing here"
    );
    assert_holds(&wharf, "by_age", bases[2], 20);
    assert_holds(&wharf, "by_size", bases[1], 20);

    // Committing into the middle of a segment frees only the segments before it.
    commit(&wharf, "g", "by_age", bases[3] + 1);
    let got = wharf.admin().enforce_retention().expect("run");
    assert_eq!(got.segments_deleted, 1, "{got:?}");
    assert_eq!(start_of(&wharf, "by_age"), bases[3]);

    // Consumed to the end: every sealed segment goes, the active one stays.
    commit(&wharf, "g", "by_age", 20);
    let active = *bases.last().unwrap();
    let got = wharf.admin().enforce_retention().expect("run");
    assert_eq!(got.segments_deleted, bases.len() as u64 - 4, "{got:?}");
    assert_eq!(start_of(&wharf, "by_age"), active);
    assert_eq!(segment_bases(dir.path(), "by_age", 0), [active]);
    assert_holds(&wharf, "by_age", active, 20);
    assert_holds(&wharf, "two", 0, 20);
    assert_holds(&wharf, "other", 0, 20);
}

#[test]
fn until_consumed_waits_for_every_group_that_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = open(dir.path(), &clock);
    let retention = Retention::forever()
        .max_age(Duration::from_secs(10))
        .until_consumed();
    wharf
        .create_topic("t", small_segments(retention.clone()))
        .expect("topic");
    wharf
        .create_topic("idle", small_segments(retention))
        .expect("topic");
    send_spaced(&wharf, &clock, "t", 0..20);
    send_spaced(&wharf, &clock, "idle", 0..20);
    let bases = segment_bases(dir.path(), "t", 0);
    clock.advance(Duration::from_secs(3_600));
    commit(&wharf, "g1", "t", bases[3]);
    commit(&wharf, "g2", "t", bases[1]);
    // A group with a commit elsewhere does not count here.
    commit(&wharf, "g3", "idle", 0);
    let got = wharf.admin().enforce_retention().expect("run");
    assert_eq!(
        start_of(&wharf, "t"),
        bases[1],
        "g2 is the slowest ({got:?})"
    );
    // "idle": g3 committed 0 there, so nothing goes.
    assert_eq!(start_of(&wharf, "idle"), 0);
    assert_eq!(got.segments_deleted, 1);
    commit(&wharf, "g2", "t", 20);
    wharf.admin().enforce_retention().expect("run");
    assert_eq!(start_of(&wharf, "t"), bases[3], "now g1 is");
    assert_holds(&wharf, "t", bases[3], 20);
    // Deleting the slow group lets retention go on without it.
    wharf.admin().delete_group("g1").expect("delete group");
    wharf.admin().enforce_retention().expect("run");
    assert_eq!(start_of(&wharf, "t"), *bases.last().unwrap());
}

/// The hard size limit is enforced when an append seals a segment, not only when retention
/// runs: each full segment (three records) is `sizes[0]` bytes, the limit three and a half
/// of them; the roll that starts the fifth segment deletes the oldest one, counting exactly
/// the records of it that the group waited for had not consumed.
#[test]
fn hard_max_bytes_wins_and_counts_exactly_the_unconsumed_records_it_dropped() {
    const COUNT: u64 = 20;
    let sizes = probe_sizes(COUNT);
    let full = sizes[0];
    assert!(
        sizes[..sizes.len() - 1].iter().all(|&s| s == full),
        "full segments are the same size: {sizes:?}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = open(dir.path(), &clock);
    let hard = 3 * full + full / 2;
    let retention = Retention::forever()
        .max_age(Duration::from_secs(10))
        .until_consumed_by(["g"])
        .hard_max_bytes(hard);
    wharf
        .create_topic("t", small_segments(retention.clone()))
        .expect("topic");
    // The same limit with a group that never committed: every dropped record counts.
    wharf
        .create_topic("fresh", small_segments(retention))
        .expect("topic");
    // Four segments (the fourth holding one record) stay under the limit.
    send_spaced(&wharf, &clock, "t", 0..10);
    send_spaced(&wharf, &clock, "fresh", 0..10);
    assert_eq!(segment_bases(dir.path(), "t", 0), [0, 3, 6, 9]);
    assert_eq!((start_of(&wharf, "t"), start_of(&wharf, "fresh")), (0, 0));
    commit(&wharf, "g", "t", 1);
    // The roll to offset 12 passes the limit: segment 0 goes, with the two records g had not
    // consumed; "fresh" loses three unconsumed records.
    send_spaced(&wharf, &clock, "t", 10..13);
    send_spaced(&wharf, &clock, "fresh", 10..13);
    assert_eq!(segment_bases(dir.path(), "t", 0), [3, 6, 9, 12]);
    assert_eq!(segment_bases(dir.path(), "fresh", 0), [3, 6, 9, 12]);
    assert_eq!((start_of(&wharf, "t"), start_of(&wharf, "fresh")), (3, 3));
    assert_eq!(
        wharf
            .admin()
            .disk_usage()
            .expect("usage")
            .unconsumed_dropped,
        2 + 3
    );
    // Under the hard limit now: age alone waits for g, which committed below the start.
    clock.advance(Duration::from_secs(3_600));
    assert_eq!(
        wharf.admin().enforce_retention().expect("run"),
        report(0, 0, 0)
    );
    assert_holds(&wharf, "t", 3, 13);

    // g's committed offset lies below the start now: its consumer moves to the start.
    let mut consumer = wharf
        .consumer("g")
        .subscribe(["t"])
        .build()
        .expect("consumer");
    let first = consumer
        .poll(HANG_GUARD)
        .expect("poll")
        .expect("a delivery within the hang guard");
    assert_eq!(first.offset(), 3);
    assert_eq!(first.payload(), &payload(3, RECORD_BYTES)[..]);
}

/// Between two retention runs (the thread's interval is a day here), a partition with a
/// hard limit never holds more than the limit plus its active segment.
#[test]
fn a_hard_limit_holds_between_retention_runs() {
    const LIMIT: u64 = 4 * SEGMENT_BYTES;
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = open(dir.path(), &clock);
    wharf
        .create_topic(
            "t",
            small_segments(Retention::forever().hard_max_bytes(LIMIT)),
        )
        .expect("topic");
    let producer = wharf.producer().ack(AckMode::Write).build();
    let mut most = 0;
    for i in 0..300 {
        producer
            .send(Record::new("t", payload(i, RECORD_BYTES)))
            .expect("send");
        let held: u64 = segment_bases(dir.path(), "t", 0)
            .iter()
            .map(|&b| log_len(dir.path(), "t", 0, b).min(SEGMENT_BYTES))
            .sum();
        most = most.max(held);
    }
    assert!(
        most <= LIMIT + SEGMENT_BYTES,
        "at most {most} bytes of log held under a hard limit of {LIMIT}"
    );
    assert!(start_of(&wharf, "t") > 250, "old records were deleted");
    assert_holds(&wharf, "t", start_of(&wharf, "t"), 300);
}

// ---------------------------------------------------------------------------------------
// 4. Disk quota.
// ---------------------------------------------------------------------------------------

const QUOTA_SEGMENT_BYTES: u64 = 64 * 1024;
const QUOTA_RECORD_BYTES: usize = 2_000;
const QUOTA_BYTES: u64 = 512 * 1024;

fn quota_topic(retention: Retention) -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(QUOTA_SEGMENT_BYTES)
        .max_message_bytes(8 * 1024)
        .retention(retention)
}

fn quota_payload(i: u64) -> Vec<u8> {
    payload(i, QUOTA_RECORD_BYTES)
}

fn assert_full(err: &wharf::Error) {
    assert!(
        matches!(err.kind(), ErrorKind::Full { .. }),
        "expected Full, got {err}"
    );
}

/// Sends `Fsync` records to partition 0 of `topic` from offset `next` on until one fails;
/// returns the log end then (every record below it acknowledged) and the error.
fn fill(wharf: &Wharf, topic: &str, mut next: u64) -> (u64, wharf::Error) {
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    loop {
        assert!(next < 100_000, "the quota never filled");
        match producer.send(Record::new(topic.to_owned(), quota_payload(next)).partition(0)) {
            Ok(receipt) => {
                assert_eq!(receipt.offset(), next, "no hole, no duplicate");
                next += 1;
            }
            Err(err) => return (next, err),
        }
    }
}

/// Every record of partition 0 from the log start, checked against `quota_payload`.
fn assert_quota_records(wharf: &Wharf, topic: &str, start: u64, end: u64) {
    let reader = wharf.reader(topic, 0).expect("reader");
    assert_eq!(
        (reader.start_offset(), reader.end_offset()),
        (start, end),
        "{topic}: log start and end"
    );
    let mut offset = start;
    while offset < end {
        let batch = reader
            .read(offset, ReadOptions::default().max_records(1_000))
            .unwrap_or_else(|e| panic!("read at {offset}: {e}"));
        assert!(!batch.is_empty(), "no progress at {offset}");
        for m in &batch {
            assert_eq!(m.offset(), offset);
            assert!(
                m.payload() == quota_payload(offset).as_slice(),
                "record {offset} byte-identical"
            );
            offset += 1;
        }
    }
}

#[test]
fn an_exhausted_quota_fails_sends_with_full_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let quota = |dir: &Path| builder(dir, &clock).max_disk_bytes(QUOTA_BYTES);
    let wharf = quota(dir.path()).open().expect("open");
    wharf
        .create_topic("t", quota_topic(Retention::forever()))
        .expect("topic");
    let (end, err) = fill(&wharf, "t", 0);
    assert_full(&err);
    assert!(
        end > 20,
        "some segments were written before the quota ran out: {end}"
    );
    let usage = wharf.admin().disk_usage().expect("usage");
    assert_eq!(usage.max_disk_bytes, Some(QUOTA_BYTES));
    // The refused send wrote nothing, and the next one is refused too.
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    for ack in [AckMode::Fsync, AckMode::Write, AckMode::NoWait] {
        let err = producer
            .send_with(Record::new("t", quota_payload(end)).partition(0), ack)
            .expect_err("still full");
        assert_full(&err);
    }
    let err = producer
        .send_batch((end..end + 3).map(|i| Record::new("t", quota_payload(i)).partition(0)))
        .expect_err("a batch is refused too");
    assert_full(&err);
    assert_quota_records(&wharf, "t", 0, end);

    // Freeing space lets sends resume at the log end.
    let bases = segment_bases(dir.path(), "t", 0);
    assert!(bases.len() >= 4, "{bases:?}");
    let start = wharf
        .admin()
        .delete_records("t", 0, bases[2])
        .expect("delete records");
    assert_eq!(start, bases[2]);
    assert_eq!(segment_bases(dir.path(), "t", 0), bases[2..]);
    let (end2, err) = fill(&wharf, "t", end);
    assert_full(&err);
    assert!(
        end2 >= end + (bases[2] - bases[0]) / 2,
        "the freed space was used: {end} -> {end2}"
    );
    assert_quota_records(&wharf, "t", start, end2);

    // Nothing acknowledged is lost across a reopen (with the quota still full).
    wharf.close().expect("close");
    let wharf = quota(dir.path()).open().expect("reopen");
    assert_quota_records(&wharf, "t", start, end2);
    // And after a crash.
    let (end3, _) = fill(&wharf, "t", end2);
    wharf.simulate_crash();
    let wharf = quota(dir.path()).open().expect("reopen after a crash");
    assert_quota_records(&wharf, "t", start, end3);
}

#[test]
fn the_files_stay_within_the_quota() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = builder(dir.path(), &clock)
        .max_disk_bytes(QUOTA_BYTES)
        .open()
        .expect("open");
    wharf
        .create_topic("t", quota_topic(Retention::forever()))
        .expect("topic");
    assert_full(&fill(&wharf, "t", 0).1);
    let usage = wharf.admin().disk_usage().expect("usage");
    assert!(
        usage.used_bytes <= QUOTA_BYTES,
        "the Wharf's files take at most max_disk_bytes: {usage:?}"
    );
}

#[test]
fn retention_frees_quota_space_on_demand_and_on_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = builder(dir.path(), &clock)
        .max_disk_bytes(QUOTA_BYTES)
        .open()
        .expect("open");
    // Records older than a minute may go.
    wharf
        .create_topic(
            "t",
            quota_topic(Retention::forever().max_age(Duration::from_secs(60))),
        )
        .expect("topic");
    let (end, err) = fill(&wharf, "t", 0);
    assert_full(&err);
    // Nothing is old: retention cannot help.
    assert_eq!(
        wharf.admin().enforce_retention().expect("run"),
        report(0, 0, 0)
    );
    assert_full(&fill(&wharf, "t", end).1);
    clock.advance(Duration::from_secs(3_600));
    let bases = segment_bases(dir.path(), "t", 0);
    // (The retention thread, woken by the refused sends above, may do it first.)
    wharf.admin().enforce_retention().expect("run");
    let start = *bases.last().unwrap();
    assert_eq!(
        start_of(&wharf, "t"),
        start,
        "every sealed segment of {bases:?} went"
    );
    let (end2, err) = fill(&wharf, "t", end);
    assert_full(&err);
    assert!(end2 > end + 20, "{end} -> {end2}");
    // The refused send woke the retention thread: it may have deleted more meanwhile.
    let start = start_of(&wharf, "t");
    assert!(start >= *bases.last().unwrap());
    assert_quota_records(&wharf, "t", start, end2);

    // A refused send wakes the retention thread, which frees the space by itself.
    clock.advance(Duration::from_secs(3_600));
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    let (tx, rx) = mpsc::channel();
    let sender = std::thread::spawn(move || {
        for attempt in 0.. {
            let result = producer.send(Record::new("t", quota_payload(end2)).partition(0));
            match result {
                Ok(receipt) => return tx.send(Ok((attempt, receipt.offset()))),
                Err(e) if matches!(e.kind(), ErrorKind::Full { .. }) && attempt < 10_000 => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return tx.send(Err(e)),
            }
        }
        unreachable!()
    });
    let (attempts, offset) = rx
        .recv_timeout(HANG_GUARD)
        .expect("hang guard: the retention thread never freed space")
        .expect("send");
    sender.join().expect("sender").expect("channel");
    // (The first attempt may already succeed: the refused send of `fill` above kicked the
    // thread too, and it may have run after the clock moved.)
    let _ = attempts;
    assert_eq!(offset, end2, "resumes at the log end");
    assert!(
        start_of(&wharf, "t") > start,
        "the retention thread deleted segments"
    );
}

/// How a sender blocked on a full quota ended.
#[derive(Debug)]
enum Waited {
    /// The send in flight when space was freed succeeded, at this offset.
    Succeeded(u64),
    /// It failed.
    Failed(wharf::Error),
    /// No send was in flight when space was freed (the set-up did not block the sender).
    NotWaiting,
}

impl Waited {
    /// The offset the waiting send got; panics if it did not succeed.
    fn offset(self, freed_by: &str) -> u64 {
        match self {
            Waited::Succeeded(offset) => offset,
            Waited::Failed(e) => {
                panic!("the send waiting for space failed although {freed_by} freed some: {e}")
            }
            Waited::NotWaiting => panic!("set-up: no send was waiting when {freed_by} ran"),
        }
    }
}

/// Runs a sender that sends `ack` records to partition 0 of `topic` from offset `next` until
/// one blocks on the full quota; once the log end has stopped moving, calls `free` and
/// reports how the send in flight then ended.
fn free_while_a_send_waits(
    wharf: &Wharf,
    topic: &'static str,
    next: u64,
    ack: AckMode,
    free: impl FnOnce(),
) -> Waited {
    let freed = Arc::new(AtomicBool::new(false));
    let producer = wharf.producer().ack(ack).build();
    let (tx, rx) = mpsc::channel();
    let sender_freed = Arc::clone(&freed);
    let sender = std::thread::spawn(move || {
        let mut offset = next;
        loop {
            let freed_before = sender_freed.load(Ordering::SeqCst);
            let result = producer.send(Record::new(topic, quota_payload(offset)).partition(0));
            let waited = match result {
                Ok(receipt) if !freed_before && sender_freed.load(Ordering::SeqCst) => {
                    Waited::Succeeded(receipt.offset())
                }
                Ok(_) if freed_before => Waited::NotWaiting,
                Ok(_) => {
                    offset += 1;
                    continue;
                }
                Err(e) => Waited::Failed(e),
            };
            let _ = tx.send(waited);
            return;
        }
    });
    // The log end stops moving once the sender waits for space.
    let reader = wharf.reader(topic, 0).expect("reader");
    let mut last = reader.end_offset();
    let mut still = 0;
    for _ in 0..2_000 {
        std::thread::sleep(Duration::from_millis(50));
        let end = reader.end_offset();
        still = if end == last { still + 1 } else { 0 };
        last = end;
        if still >= 10 {
            break;
        }
    }
    assert!(still >= 10, "hang guard: the sender never blocked");
    freed.store(true, Ordering::SeqCst);
    free();
    let waited = rx
        .recv_timeout(HANG_GUARD)
        .expect("hang guard: the waiting send never returned");
    sender.join().expect("sender thread");
    waited
}

/// Long enough never to expire on a loaded machine while space is being freed: a send
/// that waits it out in full fails the test.
const FULL_TIMEOUT: Duration = Duration::from_secs(5);

fn waiting_wharf(dir: &Path, clock: &Arc<ManualClock>, retention: &Retention) -> Wharf {
    let wharf = builder(dir, clock)
        .max_disk_bytes(QUOTA_BYTES)
        .full_timeout(FULL_TIMEOUT)
        .open()
        .expect("open");
    for topic in ["t", "u"] {
        wharf
            .create_topic(topic, quota_topic(retention.clone()))
            .expect("topic");
    }
    wharf
}

#[test]
fn a_send_waiting_for_space_succeeds_when_another_partition_frees_some() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = waiting_wharf(dir.path(), &clock, &Retention::forever());
    // The quota goes to "u" (until it is full), whose old segments are then deleted.
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    let mut sent = 0;
    let full = loop {
        match producer.send(Record::new("u", quota_payload(sent)).partition(0)) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 10_000, "the quota never filled");
    };
    assert_full(&full);
    let u_bases = segment_bases(dir.path(), "u", 0);
    assert!(u_bases.len() >= 5, "{u_bases:?}");
    let admin = wharf.admin();
    let waited = free_while_a_send_waits(&wharf, "t", 0, AckMode::Fsync, || {
        let last = *u_bases.last().unwrap();
        assert_eq!(
            admin.delete_records("u", 0, last).expect("delete records"),
            last
        );
    });
    let offset = waited.offset("delete_records");
    let end = wharf.reader("t", 0).expect("reader").end_offset();
    assert_eq!(offset + 1, end, "the waiting send got the next offset");
    assert_quota_records(&wharf, "t", 0, end);
}

#[test]
fn a_send_waiting_for_space_succeeds_when_delete_records_frees_some() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = waiting_wharf(dir.path(), &clock, &Retention::forever());
    let admin = wharf.admin();
    let waited = free_while_a_send_waits(&wharf, "t", 0, AckMode::Fsync, || {
        admin.delete_records("t", 0, 64).expect("delete records");
    });
    let offset = waited.offset("delete_records");
    let end = wharf.reader("t", 0).expect("reader").end_offset();
    assert_eq!(offset + 1, end, "the waiting send got the next offset");
    assert_quota_records(&wharf, "t", 64, end);
}

#[test]
fn a_send_waiting_for_space_succeeds_when_retention_frees_some() {
    for ack in [AckMode::Fsync, AckMode::Write] {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = new_clock();
        let retention = Retention::forever().max_age(Duration::from_secs(60));
        let wharf = waiting_wharf(dir.path(), &clock, &retention);
        // Nothing expires before the clock moves: the retention thread, woken by the refused
        // growth, frees nothing until then.
        let waited = free_while_a_send_waits(&wharf, "t", 0, ack, || {
            clock.advance(Duration::from_secs(3_600));
            wharf
                .admin()
                .enforce_retention()
                .expect("enforce retention");
        });
        let offset = waited.offset(&format!("retention ({ack:?})"));
        let reader = wharf.reader("t", 0).expect("reader");
        assert_eq!(offset + 1, reader.end_offset(), "{ack:?}");
        assert!(
            reader.start_offset() > 0,
            "{ack:?}: retention deleted segments"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4b. A batch is stored all or none.
// ---------------------------------------------------------------------------------------

const BATCH_SEGMENT_BYTES: u64 = 16 * 1024;
const BATCH_RECORDS: u64 = 20;
const BATCH_RECORD_BYTES: usize = 100;
/// Room for a few segments of [`BATCH_SEGMENT_BYTES`] and their index files.
const BATCH_QUOTA_BYTES: u64 = 256 * 1024;

fn batch_payload(i: u64) -> Vec<u8> {
    payload(i, BATCH_RECORD_BYTES)
}

/// Fills the quota with `send_batch` calls of [`BATCH_RECORDS`] records at `ack`, after
/// `lead` single sends that move where the batches meet the segment ends (one record of
/// lead shifts the roll by one record inside a batch). Every call either stores all of its
/// records at the offsets its receipts name, or fails with `Full` and stores none; the log
/// holds exactly the records acknowledged, before and after a reopen.
fn fill_with_batches(ack: AckMode, lead: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let quota = |dir: &Path| builder(dir, &clock).max_disk_bytes(BATCH_QUOTA_BYTES);
    let wharf = quota(dir.path()).open().expect("open");
    let config = TopicConfig::default().segment_bytes(BATCH_SEGMENT_BYTES);
    wharf.create_topic("t", config).expect("topic");
    let producer = wharf.producer().ack(ack).build();
    let mut end = 0;
    for i in 0..lead {
        let receipt = producer
            .send(Record::new("t", batch_payload(i)).partition(0))
            .expect("lead send");
        assert_eq!(receipt.offset(), i);
        end += 1;
    }
    let mut full = 0;
    while full < 2 {
        assert!(end < 100_000, "{ack:?} lead {lead}: the quota never filled");
        let batch =
            (end..end + BATCH_RECORDS).map(|i| Record::new("t", batch_payload(i)).partition(0));
        match producer.send_batch(batch) {
            Ok(receipts) => {
                let offsets: Vec<u64> = receipts.iter().map(wharf::SendReceipt::offset).collect();
                assert_eq!(offsets, (end..end + BATCH_RECORDS).collect::<Vec<_>>());
                end += BATCH_RECORDS;
            }
            Err(err) => {
                assert_full(&err);
                let reader = wharf.reader("t", 0).expect("reader");
                assert_eq!(
                    reader.end_offset(),
                    end,
                    "{ack:?} lead {lead}: a refused batch stored nothing"
                );
                full += 1;
            }
        }
    }
    assert!(
        end > 2 * BATCH_SEGMENT_BYTES / 150,
        "{ack:?} lead {lead}: several segments filled before the quota ran out ({end} records)"
    );
    let check = |wharf: &Wharf, what: &str| {
        let got = read_from(wharf, "t", 0);
        assert_eq!(
            got.len() as u64,
            end,
            "{ack:?} lead {lead} {what}: record count"
        );
        for (offset, bytes) in got {
            assert!(
                bytes == batch_payload(offset),
                "{ack:?} lead {lead} {what}: record {offset}"
            );
        }
    };
    check(&wharf, "before the reopen");
    drop(producer);
    wharf.close().expect("close");
    let wharf = quota(dir.path()).open().expect("reopen");
    check(&wharf, "after the reopen");
}

#[test]
fn a_batch_that_finds_no_space_stores_nothing_at_every_alignment_and_ack_mode() {
    for ack in [AckMode::NoWait, AckMode::Write, AckMode::Fsync] {
        for lead in 0..BATCH_RECORDS {
            fill_with_batches(ack, lead);
        }
    }
}

/// A batch over two partitions: the first partition's records are stored, the second's
/// find no space; the error says exactly which records were stored.
#[test]
fn a_batch_over_partitions_reports_the_receipts_of_what_it_stored() {
    let mut partly_stored = 0;
    for lead in 0..BATCH_RECORDS {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = new_clock();
        let wharf = builder(dir.path(), &clock)
            .max_disk_bytes(BATCH_QUOTA_BYTES)
            .open()
            .expect("open");
        let config = TopicConfig::default()
            .segment_bytes(BATCH_SEGMENT_BYTES)
            .partitions(2);
        wharf.create_topic("t", config).expect("topic");
        let producer = wharf.producer().ack(AckMode::Write).build();
        for i in 0..lead {
            producer
                .send(Record::new("t", batch_payload(i)).partition(1))
                .expect("lead send");
        }
        // Partition 0 gets 1 record per call, partition 1 the rest: partition 1 fills its
        // segments 19 times as fast, so it needs a new one (and finds no space) long before
        // partition 0 does.
        let mut ends = [0, lead];
        loop {
            assert!(ends[1] < 100_000, "lead {lead}: the quota never filled");
            let records: Vec<Record> = (0..BATCH_RECORDS)
                .map(|k| {
                    let p = u32::from(k >= 1);
                    let offset = ends[p as usize] + if p == 0 { k } else { k - 1 };
                    Record::new("t", batch_payload(offset)).partition(p)
                })
                .collect();
            match producer.send_batch(records) {
                Ok(receipts) => {
                    assert_eq!(receipts.len() as u64, BATCH_RECORDS);
                    ends[0] += 1;
                    ends[1] += BATCH_RECORDS - 1;
                }
                Err(err) => {
                    match err.kind() {
                        ErrorKind::PartlyStored { stored, source } => {
                            assert_full(source);
                            let got: Vec<(u32, u64)> =
                                stored.iter().map(|r| (r.partition(), r.offset())).collect();
                            assert_eq!(got, [(0, ends[0])], "lead {lead}");
                            assert_eq!(err.topic(), None, "Full names no topic");
                            ends[0] += 1;
                            partly_stored += 1;
                        }
                        _ => assert_full(&err),
                    }
                    for (p, end) in (0u32..).zip(ends) {
                        let reader = wharf.reader("t", p).expect("reader");
                        assert_eq!(
                            reader.end_offset(),
                            end,
                            "lead {lead}: partition {p} holds exactly what was acknowledged"
                        );
                    }
                    break;
                }
            }
        }
    }
    assert!(
        partly_stored > 0,
        "in some alignment the first partition fit and the second did not"
    );
}

// ---------------------------------------------------------------------------------------
// A small file system of our own (tmpfs), when running as root.
// ---------------------------------------------------------------------------------------

/// A tmpfs mounted on a fresh temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount` spells it, e.g. `4m`), or returns `None` (not
    /// root, no `mount`, no tmpfs) after saying so.
    fn mount(size: &str, why: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if mounted {
            Some(Tmpfs { dir })
        } else {
            eprintln!("skipped ({why}): cannot mount a tmpfs (needs root)");
            None
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            // Lazily, so that the temporary directory can go; a test failing while a Wharf
            // is open gets here with files still open.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

// ---------------------------------------------------------------------------------------
// 6. Ten thousand segments.
// ---------------------------------------------------------------------------------------

const MANY_SEGMENTS: u64 = 10_000;
const MAX_OPEN_SEGMENTS: usize = 64;
/// One such record fills a 4 KiB segment: every record gets a segment of its own.
const LARGE_RECORD_BYTES: usize = 2_100;

/// Reads partition 0 of `topic` from the start, one segment (one record) per read, checking
/// every payload and that files and mappings under `pdir` stay bounded; returns the most of
/// each seen.
fn scan_bounded(wharf: &Wharf, topic: &str, pdir: &Path, from: u64, end: u64) -> (usize, usize) {
    let reader = wharf.reader(topic, 0).expect("reader");
    let (mut max_fds, mut max_maps) = (0, 0);
    let mut offset = from;
    while offset < end {
        let batch = reader
            .read(offset, ReadOptions::default())
            .unwrap_or_else(|e| panic!("read at {offset}: {e}"));
        for m in &batch {
            assert_eq!(m.offset(), offset);
            assert!(
                m.payload() == payload(offset, LARGE_RECORD_BYTES).as_slice(),
                "record {offset} byte-identical"
            );
            offset += 1;
        }
        assert!(!batch.is_empty(), "no progress at {offset}");
        if offset % 250 == 0 {
            let (fds, maps) = open_files_under(pdir);
            max_fds = max_fds.max(fds);
            max_maps = max_maps.max(maps);
        }
    }
    (max_fds, max_maps)
}

#[test]
fn ten_thousand_segments_keep_files_and_mappings_bounded() {
    // 10,000 segments are 30,000 files and 40,000 syncs: on a tmpfs if we can (syncs are
    // free there), else in the temporary directory (slower).
    let tmpfs = Tmpfs::mount("512m", "using the temporary directory");
    let tempdir = tempfile::tempdir().expect("tempdir");
    let dir: &Path = tmpfs.as_ref().map_or(tempdir.path(), Tmpfs::path);
    let clock = new_clock();
    let open_many = |dir: &Path| {
        builder(dir, &clock)
            .max_open_segments(MAX_OPEN_SEGMENTS)
            .open()
            .expect("open")
    };
    let wharf = open_many(dir);
    let config = TopicConfig::default()
        .segment_bytes(SEGMENT_BYTES)
        .max_message_bytes(3_000)
        .retention(Retention::forever().max_age(Duration::from_secs(3_600)));
    wharf.create_topic("many", config).expect("topic");
    let producer = wharf.producer().ack(AckMode::Write).build();
    let started = std::time::Instant::now();
    for chunk in (0..MANY_SEGMENTS).collect::<Vec<_>>().chunks(500) {
        let receipts = producer
            .send_batch(
                chunk
                    .iter()
                    .map(|&i| Record::new("many", payload(i, LARGE_RECORD_BYTES)).partition(0)),
            )
            .expect("send batch");
        assert_eq!(
            receipts.first().map(wharf::SendReceipt::offset),
            chunk.first().copied()
        );
        // Sealed segments keep their descriptors until synced (see
        // `a_burst_of_rolls_keeps_descriptors_bounded`): sync as we go.
        wharf.sync().expect("sync");
    }
    eprintln!("wrote {MANY_SEGMENTS} segments in {:?}", started.elapsed());
    let pdir = partition_dir(dir, "many", 0);
    let bases = segment_bases(dir, "many", 0);
    assert_eq!(bases.len() as u64, MANY_SEGMENTS, "one segment per record");
    // Sealed segments: one mapping each while open; the active one: three.
    let bound = MAX_OPEN_SEGMENTS + 8;

    let started = std::time::Instant::now();
    let (fds, maps) = scan_bounded(&wharf, "many", &pdir, 0, MANY_SEGMENTS);
    eprintln!(
        "scanned in {:?}: at most {fds} descriptors, {maps} mappings",
        started.elapsed()
    );
    assert!(
        fds <= bound && maps <= bound,
        "during the scan: {fds} descriptors, {maps} mappings"
    );
    let (fds, maps) = open_files_under(&pdir);
    assert!(
        fds <= bound && maps <= bound,
        "after the scan: {fds} descriptors, {maps} mappings"
    );

    // (A live producer keeps the closed Wharf's partitions, and their mappings, alive.)
    drop(producer);
    wharf.close().expect("close");
    assert_eq!(
        open_files_under(dir),
        (0, 0),
        "a closed Wharf keeps no file open or mapped"
    );
    let wharf = open_many(dir);
    let (fds, maps) = open_files_under(&pdir);
    assert!(
        fds <= bound && maps <= bound,
        "after reopen: {fds} descriptors, {maps} mappings"
    );
    let (fds, maps) = scan_bounded(&wharf, "many", &pdir, 0, MANY_SEGMENTS);
    assert!(
        fds <= bound && maps <= bound,
        "scan after reopen: {fds} descriptors, {maps} mappings"
    );

    // Retention over all of them: every sealed segment is past the age limit.
    clock.advance(Duration::from_secs(2 * 3_600));
    let started = std::time::Instant::now();
    let got = wharf.admin().enforce_retention().expect("retention");
    eprintln!("retention in {:?}", started.elapsed());
    assert_eq!(got.segments_deleted, MANY_SEGMENTS - 1);
    let last = MANY_SEGMENTS - 1;
    assert_eq!(segment_bases(dir, "many", 0), [last]);
    assert_eq!(start_of(&wharf, "many"), last);
    let (fds, maps) = open_files_under(&pdir);
    assert!(
        fds <= 8 && maps <= 8,
        "after retention: {fds} descriptors, {maps} mappings"
    );
    let (fds, maps) = open_files_under(dir);
    assert!(
        fds <= 16 && maps <= 16,
        "whole dir: {fds} descriptors, {maps} mappings"
    );
}

/// One `send_batch` rolling through a thousand segments: the writer finalizes the sealed
/// segments itself once a few wait for the flusher, so descriptors and mappings stay bounded
/// at every moment, not only after the next sync.
#[test]
fn a_burst_of_rolls_keeps_descriptors_bounded() {
    const BURST: u64 = 1_000;
    let tmpfs = Tmpfs::mount("64m", "using the temporary directory");
    let tempdir = tempfile::tempdir().expect("tempdir");
    let dir: &Path = tmpfs.as_ref().map_or(tempdir.path(), Tmpfs::path);
    let clock = new_clock();
    let wharf = builder(dir, &clock)
        .max_open_segments(MAX_OPEN_SEGMENTS)
        .open()
        .expect("open");
    let config = TopicConfig::default()
        .segment_bytes(SEGMENT_BYTES)
        .max_message_bytes(3_000);
    wharf.create_topic("burst", config).expect("topic");
    // One call, one segment per record: the segments sealed by it wait for the flusher.
    wharf
        .producer()
        .ack(AckMode::Write)
        .build()
        .send_batch(
            (0..BURST).map(|i| Record::new("burst", payload(i, LARGE_RECORD_BYTES)).partition(0)),
        )
        .expect("send batch");
    let (fds, maps) = open_files_under(dir);
    wharf.sync().expect("sync");
    let bound = MAX_OPEN_SEGMENTS + 8;
    // Unbounded, a burst of about 340 rolls failed with EMFILE under the default limit of
    // 1,024 descriptors per process.
    assert!(
        fds <= bound && maps <= bound,
        "right after {BURST} rolls: {fds} descriptors and {maps} mappings open under the \
         directory (max_open_segments {MAX_OPEN_SEGMENTS})"
    );
}

// ---------------------------------------------------------------------------------------
// 5. A genuinely full file system.
// ---------------------------------------------------------------------------------------

/// Fills partition 0 of `t` on a full file system: the sends stop with an error (its kind is
/// checked by `a_full_file_system_gives_full`), and the refused send wrote nothing.
fn fill_fs(wharf: &Wharf, next: u64) -> u64 {
    let (end, _err) = fill(wharf, "t", next);
    for _ in 0..3 {
        assert_eq!(
            fill(wharf, "t", end).0,
            end,
            "a refused send writes nothing"
        );
    }
    end
}

#[test]
fn a_full_file_system_gives_full() {
    let Some(fs) = Tmpfs::mount("4m", "ENOSPC from a small file system") else {
        return;
    };
    let clock = new_clock();
    let wharf = open(fs.path(), &clock);
    wharf
        .create_topic("t", quota_topic(Retention::forever()))
        .expect("topic");
    let (_, err) = fill(&wharf, "t", 0);
    assert!(
        matches!(err.kind(), ErrorKind::Full { .. }),
        "a full disk gives Full, got: {err}"
    );
    drop(wharf);
}

#[test]
fn a_full_file_system_loses_nothing_and_recovers() {
    let Some(fs) = Tmpfs::mount("4m", "ENOSPC from a small file system") else {
        return;
    };
    let dir = fs.path();
    let clock = new_clock();
    let wharf = open(dir, &clock);
    wharf
        .create_topic("t", quota_topic(Retention::forever()))
        .expect("topic");
    let end = fill_fs(&wharf, 0);
    assert!(
        end > 500,
        "most of the 4 MiB was used: {end} records of 2 KB"
    );
    assert_quota_records(&wharf, "t", 0, end);
    wharf.close().expect("close on a full file system");
    let wharf = open(dir, &clock);
    assert_quota_records(&wharf, "t", 0, end);
    let bases = segment_bases(dir, "t", 0);
    // The close trimmed the active segment: a little more fits.
    let end2 = fill_fs(&wharf, end);
    assert_quota_records(&wharf, "t", 0, end2);

    // Freeing space lets sends resume where they stopped.
    assert_eq!(
        wharf
            .admin()
            .delete_records("t", 0, bases[4])
            .expect("delete"),
        bases[4]
    );
    let end3 = fill_fs(&wharf, end2);
    assert!(end3 >= end2 + bases[4] / 2, "{end2} -> {end3}");
    assert_quota_records(&wharf, "t", bases[4], end3);
    wharf.close().expect("close");
    let wharf = open(dir, &clock);
    assert_quota_records(&wharf, "t", bases[4], end3);
    drop(wharf);
}

#[test]
fn a_crash_on_a_full_file_system_recovers() {
    let Some(fs) = Tmpfs::mount("4m", "ENOSPC from a small file system") else {
        return;
    };
    let dir = fs.path();
    let clock = new_clock();
    let wharf = open(dir, &clock);
    wharf
        .create_topic("t", quota_topic(Retention::forever()))
        .expect("topic");
    let end = fill_fs(&wharf, 0);
    wharf.simulate_crash();
    let wharf = builder(dir, &clock)
        .open()
        .expect("open after a crash on a full file system");
    assert_quota_records(&wharf, "t", 0, end);
    let end2 = fill_fs(&wharf, end);
    assert_quota_records(&wharf, "t", 0, end2);
    drop(wharf);
}

#[test]
fn min_free_bytes_keeps_the_file_system_from_filling() {
    let Some(fs) = Tmpfs::mount("8m", "free-space floor on a small file system") else {
        return;
    };
    let dir = fs.path();
    let clock = new_clock();
    let floor = 4 * 1024 * 1024;
    let wharf = builder(dir, &clock)
        .min_free_bytes(floor)
        .open()
        .expect("open");
    wharf
        .create_topic("t", quota_topic(Retention::forever()))
        .expect("topic");
    let (end, err) = fill(&wharf, "t", 0);
    assert_full(&err);
    let usage = wharf.admin().disk_usage().expect("usage");
    assert_eq!(usage.min_free_bytes, Some(floor));
    assert!(
        usage.available_bytes >= floor,
        "at least min_free_bytes stay free: {usage:?}"
    );
    assert!(
        end > 500,
        "about 4 MiB written before the floor: {end} records"
    );
    assert_quota_records(&wharf, "t", 0, end);
    drop(wharf);
}

// ---------------------------------------------------------------------------------------
// 8. delete_records and consumers.
// ---------------------------------------------------------------------------------------

/// A fresh directory with topic `t` (small segments, keep everything) holding records
/// 0..count.
fn with_records(count: u64) -> (tempfile::TempDir, Arc<ManualClock>, Wharf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = open(dir.path(), &clock);
    wharf
        .create_topic("t", small_segments(Retention::forever()))
        .expect("topic");
    send_spaced(&wharf, &clock, "t", 0..count);
    (dir, clock, wharf)
}

#[test]
fn delete_records_moves_the_log_start_into_the_middle_of_a_segment() {
    let (dir, clock, wharf) = with_records(20);
    let bases = segment_bases(dir.path(), "t", 0);
    assert_eq!(bases[..3], [0, 3, 6], "three records per segment");
    let reader = wharf.reader("t", 0).expect("reader");
    // A reader holding records of a segment about to go keeps them.
    let held = reader.read(0, ReadOptions::default()).expect("read");
    let admin = wharf.admin();
    assert_eq!(admin.delete_records("t", 0, 4).expect("delete"), 4);
    assert_eq!(reader.start_offset(), 4);
    assert_below_start(&wharf, "t", 3, 4);
    assert_below_start(&wharf, "t", 0, 4);
    assert_holds(&wharf, "t", 4, 20);
    let files = segment_file_names(dir.path(), "t", 0);
    for name in segment_names(0) {
        assert!(!files.contains(&name), "{name}: wholly below the start");
    }
    for name in segment_names(3) {
        assert!(files.contains(&name), "{name}: holds the new start");
    }
    assert!(!held.is_empty());
    for m in &held {
        assert!(
            m.payload() == payload(m.offset(), RECORD_BYTES).as_slice(),
            "a batch read before the deletion stays readable"
        );
    }
    drop(held);
    // Below the start, or again to it: nothing changes.
    assert_eq!(admin.delete_records("t", 0, 2).expect("delete"), 4);
    assert_eq!(admin.delete_records("t", 0, 4).expect("delete"), 4);
    let err = admin.delete_records("t", 1, 4).expect_err("no partition 1");
    assert!(
        matches!(err.kind(), ErrorKind::PartitionOutOfRange { .. }),
        "{err}"
    );
    let err = admin.delete_records("nope", 0, 4).expect_err("no topic");
    assert!(
        matches!(err.kind(), ErrorKind::TopicNotFound { .. }),
        "{err}"
    );

    wharf.close().expect("close");
    let wharf = open(dir.path(), &clock);
    assert_holds(&wharf, "t", 4, 20);
    assert_below_start(&wharf, "t", 3, 4);
    assert_eq!(wharf.admin().delete_records("t", 0, 7).expect("delete"), 7);
    wharf.simulate_crash();
    let wharf = open(dir.path(), &clock);
    assert_holds(&wharf, "t", 7, 20);
    assert_below_start(&wharf, "t", 6, 7);
    assert_eq!(segment_bases(dir.path(), "t", 0)[0], 6);
}

#[test]
fn delete_records_to_the_log_end_deletes_every_segment() {
    let (dir, clock, wharf) = with_records(20);
    let bases = segment_bases(dir.path(), "t", 0);
    assert_eq!(
        wharf
            .admin()
            .delete_records("t", 0, u64::MAX)
            .expect("delete"),
        20,
        "clamped to the log end"
    );
    assert_eq!(
        segment_bases(dir.path(), "t", 0),
        [20],
        "every segment of {bases:?} went, the active one sealed first"
    );
    assert_holds(&wharf, "t", 20, 20);
    assert_below_start(&wharf, "t", 19, 20);
    let reader = wharf.reader("t", 0).expect("reader");
    assert!(
        reader
            .read(20, ReadOptions::default())
            .expect("read at the end")
            .is_empty()
    );
    send_spaced(&wharf, &clock, "t", 20..22);
    assert_holds(&wharf, "t", 20, 22);
    wharf.close().expect("close");
    let wharf = open(dir.path(), &clock);
    assert_holds(&wharf, "t", 20, 22);
    // Twice in a row, the second time with nothing appended since the first.
    assert_eq!(
        wharf.admin().delete_records("t", 0, 22).expect("delete"),
        22
    );
    assert_eq!(
        wharf.admin().delete_records("t", 0, 22).expect("delete"),
        22
    );
    assert_holds(&wharf, "t", 22, 22);
}

#[test]
fn a_crash_right_after_delete_records_to_the_log_end_recovers() {
    // Records synced before the deletion, or not.
    for synced in [false, true] {
        let (dir, clock, wharf) = with_records(20);
        if synced {
            wharf.sync().expect("sync");
        }
        assert_eq!(
            wharf.admin().delete_records("t", 0, 20).expect("delete"),
            20
        );
        wharf.simulate_crash();
        let wharf = builder(dir.path(), &clock).open().unwrap_or_else(|e| {
            panic!("open after a crash that followed delete_records to the log end (synced before: {synced}): {e}")
        });
        assert_holds(&wharf, "t", 20, 20);
        send_spaced(&wharf, &clock, "t", 20..21);
        assert_holds(&wharf, "t", 20, 21);
    }
}

#[test]
fn delete_records_to_the_log_end_works_with_the_quota_used_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = builder(dir.path(), &clock)
        .max_disk_bytes(QUOTA_BYTES)
        .open()
        .expect("open");
    wharf
        .create_topic("t", quota_topic(Retention::forever()))
        .expect("topic");
    let (end, err) = fill(&wharf, "t", 0);
    assert_full(&err);
    // Deleting everything is what frees the most; it must not need space itself.
    let start = wharf
        .admin()
        .delete_records("t", 0, end)
        .expect("delete_records to the log end on a full quota");
    assert_eq!(start, end);
    let (end2, err) = fill(&wharf, "t", end);
    assert_full(&err);
    assert!(end2 > end + 20, "{end} -> {end2}");
}

fn poll_one(consumer: &mut wharf::Consumer) -> wharf::Delivery {
    consumer
        .poll(HANG_GUARD)
        .expect("poll")
        .expect("a delivery within the hang guard")
}

#[test]
fn consumers_below_the_log_start_move_to_it_or_fail() {
    let (_dir, _clock, wharf) = with_records(20);
    let admin = wharf.admin();
    for group in ["earliest", "fail"] {
        commit(&wharf, group, "t", 2);
    }
    assert_eq!(admin.delete_records("t", 0, 10).expect("delete"), 10);

    // Committed below the start.
    let mut earliest = wharf
        .consumer("earliest")
        .subscribe(["t"])
        .build()
        .expect("consumer");
    let first = poll_one(&mut earliest);
    assert_eq!(first.offset(), 10, "moved to the log start");
    assert_eq!(first.payload(), &payload(10, RECORD_BYTES)[..]);
    earliest.commit().expect("commit");
    let tp = TopicPartition::new("t", 0);
    assert_eq!(earliest.committed(&tp), Some(11));

    let mut fail = wharf
        .consumer("fail")
        .subscribe(["t"])
        .out_of_range(OutOfRange::Fail)
        .build()
        .expect("consumer");
    let err = fail
        .poll(Duration::from_millis(200))
        .expect_err("the position lies below the log start");
    match err.kind() {
        ErrorKind::OffsetOutOfRange { offset, start, .. } => {
            assert_eq!((*offset, *start), (2, 10), "{err}");
        }
        _ => panic!("expected OffsetOutOfRange, got {err}"),
    }
    let err = fail
        .poll(Duration::from_millis(200))
        .expect_err("until the application seeks");
    assert!(
        matches!(err.kind(), ErrorKind::OffsetOutOfRange { .. }),
        "{err}"
    );
    fail.seek(&tp, wharf::SeekTo::Beginning).expect("seek");
    assert_eq!(poll_one(&mut fail).offset(), 10);

    // Positioned (not committed) below the start by a deletion while consuming.
    for (group, policy) in [
        ("live", OutOfRange::Earliest),
        ("live-fail", OutOfRange::Fail),
    ] {
        let mut consumer = wharf
            .consumer(group)
            .subscribe(["t"])
            .out_of_range(policy)
            .build()
            .expect("consumer");
        let start = start_of(&wharf, "t");
        assert_eq!(poll_one(&mut consumer).offset(), start);
        if group == "live" {
            assert_eq!(admin.delete_records("t", 0, 13).expect("delete"), 13);
            // The batch fetched before the deletion may still be delivered; then the start.
            let mut next = poll_one(&mut consumer).offset();
            while next < 13 {
                assert!(next > start, "in order");
                next = poll_one(&mut consumer).offset();
            }
            assert_eq!(next, 13);
        } else {
            assert_eq!(admin.delete_records("t", 0, 16).expect("delete"), 16);
            let mut result = consumer.poll(Duration::from_millis(200));
            // Deliveries already fetched may come first.
            while let Ok(Some(d)) = &result {
                assert!(d.offset() < 16);
                result = consumer.poll(Duration::from_millis(200));
            }
            let err = result.expect_err("the position fell below the start");
            assert!(
                matches!(err.kind(), ErrorKind::OffsetOutOfRange { .. }),
                "{err}"
            );
        }
        consumer.close().expect("close consumer");
    }
    earliest.close().expect("close consumer");
}

// ---------------------------------------------------------------------------------------
// Configuration, the background thread, read-only opens.
// ---------------------------------------------------------------------------------------

#[test]
fn retention_settings_are_validated_and_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = open(dir.path(), &clock);
    let retentions = [
        Retention::forever(),
        Retention::forever().max_age(Duration::from_millis(1_500)),
        Retention::forever()
            .max_bytes(1 << 20)
            .until_consumed_by(["a", "b-2", "c.3"])
            .hard_max_bytes(1 << 30),
        Retention::forever()
            .max_age(Duration::ZERO)
            .until_consumed()
            .hard_max_bytes(7),
    ];
    for (i, retention) in retentions.iter().enumerate() {
        wharf
            .create_topic(&format!("t{i}"), small_segments(retention.clone()))
            .expect("topic");
    }
    let stored = |wharf: &Wharf| -> Vec<Retention> {
        (0..retentions.len())
            .map(|i| {
                wharf
                    .topics()
                    .into_iter()
                    .find(|t| t.name() == format!("t{i}"))
                    .expect("topic")
                    .config()
                    .retention
                    .clone()
            })
            .collect()
    };
    assert_eq!(stored(&wharf), retentions);
    wharf.close().expect("close");
    let wharf = open(dir.path(), &clock);
    assert_eq!(stored(&wharf), retentions, "from topic.conf");

    let too_many: Vec<String> = (0..=wharf::MAX_RETENTION_GROUPS)
        .map(|i| format!("g{i}"))
        .collect();
    let bad = [
        Retention::forever().max_bytes(0),
        Retention::forever().hard_max_bytes(0),
        Retention::forever().until_consumed_by(Vec::<String>::new()),
        Retention::forever().until_consumed_by(too_many),
        Retention::forever().until_consumed_by(["bad name"]),
        Retention::forever().until_consumed_by(["%DLQ%x"]),
    ];
    for retention in bad {
        let err = wharf
            .create_topic("bad", small_segments(retention.clone()))
            .expect_err("invalid retention");
        assert!(
            matches!(
                err.kind(),
                ErrorKind::InvalidConfig { .. } | ErrorKind::InvalidGroupName { .. }
            ),
            "{retention:?}: {err}"
        );
    }
    assert!(wharf.topics().iter().all(|t| t.name() != "bad"));
    drop(wharf);
    for builder in [
        Wharf::builder(dir.path()).max_disk_bytes(0),
        Wharf::builder(dir.path()).retention_interval(Duration::ZERO),
        Wharf::builder(dir.path()).max_open_segments(0),
    ] {
        let err = builder.open().expect_err("invalid option");
        assert!(
            matches!(err.kind(), ErrorKind::InvalidConfig { .. }),
            "{err}"
        );
    }
}

#[test]
fn the_retention_thread_runs_every_retention_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = Wharf::builder(dir.path())
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .retention_interval(Duration::from_millis(20))
        .open()
        .expect("open");
    wharf
        .create_topic(
            "t",
            small_segments(Retention::forever().max_age(Duration::from_secs(60))),
        )
        .expect("topic");
    send_spaced(&wharf, &clock, "t", 0..12);
    let bases = segment_bases(dir.path(), "t", 0);
    clock.advance(Duration::from_secs(3_600));
    let reader = wharf.reader("t", 0).expect("reader");
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while reader.start_offset() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "hang guard: the retention thread never ran"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // It may have run while the files were being removed: wait for the last one.
    while segment_bases(dir.path(), "t", 0).len() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "hang guard: files never went"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_holds(&wharf, "t", *bases.last().unwrap(), 12);
    wharf.close().expect("close (joins the retention thread)");
}

#[test]
fn a_read_only_open_deletes_nothing() {
    let (dir, clock, wharf) = with_records(12);
    wharf.close().expect("close");
    let reader_wharf = builder(dir.path(), &clock)
        .read_only(true)
        .open()
        .expect("read-only open");
    let err = reader_wharf
        .admin()
        .enforce_retention()
        .expect_err("read-only");
    assert!(matches!(err.kind(), ErrorKind::ReadOnly { .. }), "{err}");
    let err = reader_wharf
        .admin()
        .delete_records("t", 0, 5)
        .expect_err("read-only");
    assert!(matches!(err.kind(), ErrorKind::ReadOnly { .. }), "{err}");
    assert_holds(&reader_wharf, "t", 0, 12);
    assert_eq!(segment_bases(dir.path(), "t", 0).len(), 4);
}

#[test]
fn reads_racing_deletions_get_records_or_offset_out_of_range() {
    const COUNT: u64 = 150;
    let (_dir, _clock, wharf) = with_records(COUNT);
    let reader = wharf.reader("t", 0).expect("reader");
    let stop = Arc::new(AtomicBool::new(false));
    let reader_stop = Arc::clone(&stop);
    let racer = std::thread::spawn(move || {
        let mut problems = Vec::new();
        let mut reads = 0u64;
        while !reader_stop.load(Ordering::SeqCst) && problems.len() < 10 {
            let start = reader.start_offset();
            if start >= COUNT - 1 {
                break;
            }
            for from in [start, start + 1] {
                reads += 1;
                match reader.read(from, ReadOptions::default().max_records(2)) {
                    Ok(batch) => {
                        let first = batch.iter().next().map(|m| m.offset());
                        if first != Some(from) {
                            problems.push(format!("read at {from} (end {COUNT}): first {first:?}"));
                        }
                        for m in &batch {
                            if m.payload() != payload(m.offset(), RECORD_BYTES).as_slice() {
                                problems.push(format!("record {} differs", m.offset()));
                            }
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::OffsetOutOfRange { .. }) => {}
                    Err(e) => problems.push(format!("read at {from}: {e}")),
                }
            }
        }
        (problems, reads)
    });
    let admin = wharf.admin();
    for before in 1..COUNT - 1 {
        assert_eq!(
            admin.delete_records("t", 0, before).expect("delete"),
            before
        );
    }
    stop.store(true, Ordering::SeqCst);
    let (problems, reads) = racer.join().expect("reader thread");
    assert!(
        problems.is_empty(),
        "{} of {reads} reads racing deletions went wrong: {problems:?}",
        problems.len()
    );
}

#[test]
fn disk_usage_is_measured_while_topics_come_and_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let wharf = builder(dir.path(), &clock)
        .max_disk_bytes(1 << 30)
        .open()
        .expect("open");
    let admin = wharf.admin();
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let wharf = wharf.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(Ordering::SeqCst) && rounds < 300 {
                let config = TopicConfig::default()
                    .partitions(4)
                    .segment_bytes(SEGMENT_BYTES)
                    .max_message_bytes(2_048);
                wharf.create_topic("churn", config).expect("create");
                wharf.delete_topic("churn").expect("delete");
                rounds += 1;
            }
        })
    };
    let mut failures = Vec::new();
    for _ in 0..2_000 {
        if let Err(e) = admin.disk_usage() {
            failures.push(e.to_string());
        }
        if churn.is_finished() {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    churn.join().expect("churn thread");
    assert!(
        failures.is_empty(),
        "{} measurements failed while a topic was created and deleted, e.g. {:?}",
        failures.len(),
        failures.first()
    );
}

#[test]
fn creating_a_topic_stays_within_the_quota() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = new_clock();
    let quota = 2 * 1024 * 1024;
    let wharf = builder(dir.path(), &clock)
        .max_disk_bytes(quota)
        .open()
        .expect("open");
    // Each partition's first segment takes 64 KiB of log and a block per index file, and a
    // checkpoint (the default segment size is 64 MiB): eight fit the quota, 64 do not.
    for (name, partitions) in [("wide", 8), ("wider", 64)] {
        let created = wharf.create_topic(name, TopicConfig::default().partitions(partitions));
        let usage = wharf.admin().disk_usage().expect("usage");
        assert!(
            usage.used_bytes <= quota,
            "creating the topic ({}) left the files at {} bytes, over the {quota}-byte quota",
            if created.is_ok() {
                "succeeded"
            } else {
                "failed"
            },
            usage.used_bytes
        );
        assert_eq!(
            created.is_ok(),
            partitions == 8,
            "{partitions} partitions: {created:?}"
        );
    }
}
