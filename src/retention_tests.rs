//! Retention through the I/O seam ([`FaultyVfs`]): a full disk (`ENOSPC` from `allocate`)
//! gives `Full`; a deletion cut short after the log start moved (a failed unlink or directory
//! sync, then a crash) resurrects nothing and leaves no orphan segment at the next open; a
//! topic deletion cut short leaves no topic and no trash; and the internal topics (delay,
//! retry, dead letters) are trimmed by their retention. The internal topics are created here
//! with small segments (their real ones are 64 MiB) before the Wharf opens them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::topic::{Incarnation, Topic};
use crate::vfs::StdVfs;
use crate::vfs::faulty::{Faults, FaultyVfs};
use crate::{
    AckMode, Clock, DelayLevel, ErrorKind, ManualClock, ReadOptions, Record, Retention, Retry,
    Timestamp, TopicConfig, Wharf, WharfBuilder,
};

const T0: i64 = 1_700_000_000_000;
const SEGMENT_BYTES: u64 = 4 * 1024;
/// Three such records fill a 4 KiB segment.
const RECORD_BYTES: usize = 1_000;
const NO_BACKGROUND_RUN: Duration = Duration::from_secs(24 * 3_600);
const HANG_GUARD: Duration = Duration::from_secs(60);

fn payload(i: u64) -> Vec<u8> {
    let mut state = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..RECORD_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn small_segments(retention: Retention) -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(SEGMENT_BYTES)
        .max_message_bytes(2_048)
        .retention(retention)
}

fn builder(dir: &Path, clock: &Arc<ManualClock>) -> WharfBuilder {
    Wharf::builder(dir)
        .clock(Arc::clone(clock) as Arc<dyn Clock>)
        .retention_interval(NO_BACKGROUND_RUN)
}

fn faulty(dir: &Path, clock: &Arc<ManualClock>) -> (Wharf, Arc<Faults>) {
    let (vfs, faults) = FaultyVfs::new();
    let wharf = builder(dir, clock).vfs(vfs).open().expect("open");
    (wharf, faults)
}

fn send(wharf: &Wharf, topic: &str, range: std::ops::Range<u64>) {
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    for i in range {
        let receipt = producer
            .send(Record::new(topic.to_owned(), payload(i)).partition(0))
            .expect("send");
        assert_eq!(receipt.offset(), i);
    }
}

fn partition_dir(dir: &Path, topic: &str) -> PathBuf {
    dir.join("topics").join(topic).join("0")
}

/// Base offsets of the `.log` files of partition 0, and the names of all its segment files.
fn segments(dir: &Path, topic: &str) -> (Vec<u64>, BTreeSet<String>) {
    let names: BTreeSet<String> = std::fs::read_dir(partition_dir(dir, topic))
        .expect("partition dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| {
            matches!(
                Path::new(n).extension().and_then(|e| e.to_str()),
                Some("log" | "index" | "timeindex")
            )
        })
        .collect();
    let mut bases: Vec<u64> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".log"))
        .map(|stem| stem.parse().expect("base offset"))
        .collect();
    bases.sort_unstable();
    (bases, names)
}

/// Checks that partition 0 of `topic` holds exactly `start..end`, byte-identical, that reads
/// below the start fail with `OffsetOutOfRange`, and that no segment file lies wholly below
/// the start.
fn assert_holds(wharf: &Wharf, dir: &Path, topic: &str, start: u64, end: u64) {
    let reader = wharf.reader(topic, 0).expect("reader");
    assert_eq!(
        (reader.start_offset(), reader.end_offset()),
        (start, end),
        "{topic}: log start and end"
    );
    let mut offset = start;
    while offset < end {
        let batch = reader
            .read(offset, ReadOptions::default())
            .unwrap_or_else(|e| panic!("read at {offset}: {e}"));
        assert!(!batch.is_empty(), "no progress at {offset}");
        for m in &batch {
            assert_eq!(m.offset(), offset);
            assert!(m.payload() == payload(offset).as_slice(), "record {offset}");
            offset += 1;
        }
    }
    if start > 0 {
        let err = reader
            .read(start - 1, ReadOptions::default())
            .expect_err("below the start");
        assert!(
            matches!(err.kind(), ErrorKind::OffsetOutOfRange { .. }),
            "{err}"
        );
    }
    let (bases, names) = segments(dir, topic);
    let first_kept = bases.iter().rposition(|&b| b <= start).unwrap_or(0);
    assert_eq!(
        first_kept, 0,
        "{topic}: segments wholly below {start} remain: {bases:?}"
    );
    for name in names {
        let stem: u64 = name.split('.').next().unwrap_or("").parse().expect("stem");
        assert!(bases.contains(&stem), "{topic}: orphan index file {name}");
    }
}

// ---------------------------------------------------------------------------------------
// A full disk through the seam.
// ---------------------------------------------------------------------------------------

#[test]
fn enospc_from_allocate_gives_full_and_retention_makes_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let (wharf, faults) = faulty(dir.path(), &clock);
    wharf
        .create_topic(
            "t",
            small_segments(Retention::forever().max_age(Duration::from_secs(60))),
        )
        .expect("topic");
    // A 200 KiB disk, about half of it taken already by nothing but metadata and indexes.
    *faults.disk.lock() = Some((dir.path().to_path_buf(), 200 * 1024));
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    let mut end = 0;
    let err = loop {
        assert!(end < 10_000, "the disk never filled");
        match producer.send(Record::new("t", payload(end)).partition(0)) {
            Ok(receipt) => {
                assert_eq!(receipt.offset(), end);
                end += 1;
            }
            Err(err) => break err,
        }
    };
    assert!(matches!(err.kind(), ErrorKind::Full { .. }), "{err}");
    assert!(end > 6, "a few segments were written: {end}");
    assert_eq!(wharf.reader("t", 0).expect("reader").end_offset(), end);
    assert_holds(&wharf, dir.path(), "t", 0, end);

    // Once old enough, retention frees the space and sends go on at the log end. The refused
    // send woke the retention thread, which may get there first once the clock moves: either
    // run deletes the old segments.
    clock.advance(Duration::from_secs(3_600));
    let report = wharf.admin().enforce_retention().expect("retention");
    let start = wharf.reader("t", 0).expect("reader").start_offset();
    assert!(
        report.segments_deleted > 0 || start > 0,
        "nothing was deleted: {report:?}"
    );
    send(&wharf, "t", end..end + 3);
    assert_holds(&wharf, dir.path(), "t", start, end + 3);
    wharf.close().expect("close");
}

#[test]
fn a_send_refused_by_a_full_disk_wakes_the_retention_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let (wharf, faults) = faulty(dir.path(), &clock);
    wharf
        .create_topic(
            "t",
            small_segments(Retention::forever().max_age(Duration::from_secs(60))),
        )
        .expect("topic");
    *faults.disk.lock() = Some((dir.path().to_path_buf(), 200 * 1024));
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    let mut end = 0;
    while producer
        .send(Record::new("t", payload(end)).partition(0))
        .is_ok()
    {
        end += 1;
        assert!(end < 10_000, "the disk never filled");
    }
    // Everything is old now; the next refused send is "an append that finds no space".
    clock.advance(Duration::from_secs(3_600));
    let err = producer
        .send(Record::new("t", payload(end)).partition(0))
        .expect_err("still full");
    assert!(matches!(err.kind(), ErrorKind::Full { .. }), "{err}");
    let reader = wharf.reader("t", 0).expect("reader");
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.start_offset() == 0 {
        assert!(
            Instant::now() < deadline,
            "hang guard: the retention thread did not run after a send was refused for lack \
             of space (ENOSPC from allocate)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// Crashes during deletions.
// ---------------------------------------------------------------------------------------

/// `t` with 20 records in segments of three, synced.
fn twenty_records(dir: &Path, clock: &Arc<ManualClock>) -> (Wharf, Arc<Faults>, Vec<u64>) {
    let (wharf, faults) = faulty(dir, clock);
    wharf
        .create_topic("t", small_segments(Retention::forever()))
        .expect("topic");
    send(&wharf, "t", 0..20);
    let (bases, _) = segments(dir, "t");
    assert_eq!(bases[..4], [0, 3, 6, 9], "three records per segment");
    (wharf, faults, bases)
}

#[test]
fn a_deletion_cut_short_by_a_failed_unlink_completes_at_the_next_open() {
    // The failure hits the first file, or one in the middle of the doomed segments.
    for removes_before_failure in [0, 4] {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
        let (wharf, faults, _) = twenty_records(dir.path(), &clock);
        *faults.segment_removes_left.lock() = Some(removes_before_failure);
        let err = wharf
            .admin()
            .delete_records("t", 0, 10)
            .expect_err("the unlink fails");
        assert!(faults.failed_removes.load(Ordering::SeqCst) > 0, "{err}");
        // The log start moved before the unlinks: nothing below it is readable any more.
        let reader = wharf.reader("t", 0).expect("reader");
        assert_eq!(reader.start_offset(), 10, "{removes_before_failure}");
        let err = reader
            .read(5, ReadOptions::default())
            .expect_err("below the start");
        assert!(
            matches!(err.kind(), ErrorKind::OffsetOutOfRange { .. }),
            "{err}"
        );
        let (_, names) = segments(dir.path(), "t");
        assert!(
            names.iter().any(|n| n.starts_with(&format!("{:020}.", 3))),
            "files left behind by the failure: {names:?}"
        );
        drop(reader);
        wharf.simulate_crash();

        let wharf = builder(dir.path(), &clock)
            .vfs(Arc::new(StdVfs))
            .open()
            .expect("reopen");
        assert_holds(&wharf, dir.path(), "t", 10, 20);
        assert_eq!(segments(dir.path(), "t").0[0], 9);
        wharf.close().expect("close");
    }
}

#[test]
fn a_deletion_cut_short_by_a_failed_directory_sync_completes_at_the_next_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let (wharf, faults, _) = twenty_records(dir.path(), &clock);
    // The partition's own sync comes first; the failing one is the directory sync after the
    // unlinks.
    wharf.sync().expect("sync");
    faults.fail_next_dir_sync.store(true, Ordering::SeqCst);
    let result = wharf.admin().delete_records("t", 0, 10);
    assert!(result.is_err(), "the directory sync fails: {result:?}");
    assert_eq!(wharf.reader("t", 0).expect("reader").start_offset(), 10);
    wharf.simulate_crash();
    let wharf = builder(dir.path(), &clock).open().expect("reopen");
    assert_holds(&wharf, dir.path(), "t", 10, 20);
    wharf.close().expect("close");
}

#[test]
fn files_left_by_a_failed_unlink_are_deleted_without_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let (wharf, faults, _) = twenty_records(dir.path(), &clock);
    *faults.segment_removes_left.lock() = Some(0);
    assert!(wharf.admin().delete_records("t", 0, 10).is_err());
    *faults.segment_removes_left.lock() = None;
    // A later deletion (or retention run) finishes the job.
    assert_eq!(
        wharf.admin().delete_records("t", 0, 13).expect("delete"),
        13
    );
    let (bases, _) = segments(dir.path(), "t");
    assert_eq!(
        bases[0], 12,
        "the segments below the start the failed unlink left are still on disk: {bases:?}"
    );
}

#[test]
fn a_topic_deletion_cut_short_leaves_neither_the_topic_nor_the_trash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let (wharf, faults, _) = twenty_records(dir.path(), &clock);
    faults.fail_remove_dir_all.store(true, Ordering::SeqCst);
    // The topic is gone once it is renamed into the trash; removing the files can wait.
    wharf.delete_topic("t").expect("delete topic");
    assert!(wharf.topics().iter().all(|t| t.name() != "t"));
    let trash = dir.path().join("trash");
    let in_trash = std::fs::read_dir(&trash).expect("trash").count();
    assert_eq!(in_trash, 1, "the renamed topic waits in the trash");
    assert!(!dir.path().join("topics").join("t").exists());
    wharf.simulate_crash();

    let wharf = builder(dir.path(), &clock).open().expect("reopen");
    assert!(
        wharf.topics().iter().all(|t| t.name() != "t"),
        "the deleted topic does not come back"
    );
    let left = std::fs::read_dir(&trash).map_or(0, Iterator::count);
    assert_eq!(left, 0, "the trash is emptied at open");
    // The name can be used again, for an empty topic.
    wharf
        .create_topic("t", small_segments(Retention::forever()))
        .expect("create again");
    let reader = wharf.reader("t", 0).expect("reader");
    assert_eq!((reader.start_offset(), reader.end_offset()), (0, 0));
    wharf.close().expect("close");
}

// ---------------------------------------------------------------------------------------
// Internal topics.
// ---------------------------------------------------------------------------------------

/// Creates the internal topics of group `g` in `dir` (a closed Wharf directory) with small
/// segments and the retention wharf gives them.
fn create_small_internal_topics(dir: &Path, dead_letter_retention: &Retention) {
    let levels = u32::try_from(crate::retry::policy::DelayLevels::default().len()).expect("levels");
    let small = |partitions: u32, retention: Retention| {
        crate::retry::internal_config(partitions, retention)
            .segment_bytes(SEGMENT_BYTES)
            .max_message_bytes(2_048)
    };
    let topics = [
        (
            crate::retry::DELAY_TOPIC.to_owned(),
            small(
                levels,
                crate::retry::consumed_by(crate::retry::SCHEDULER_GROUP),
            ),
        ),
        (
            crate::retry::retry_topic("g"),
            small(1, crate::retry::consumed_by("g")),
        ),
        (
            crate::retry::dlq_topic("g"),
            small(1, dead_letter_retention.clone()),
        ),
    ];
    for (name, config) in topics {
        let target = dir.join("topics").join(&name);
        Topic::create_dir(&StdVfs, &target, &config, Incarnation::new_unique())
            .expect("create internal topic");
    }
}

fn start_and_end(wharf: &Wharf, topic: &str, partition: u32) -> (u64, u64) {
    let reader = wharf.reader(topic, partition).expect("reader");
    (reader.start_offset(), reader.end_offset())
}

#[test]
fn delay_retry_and_dead_letter_topics_are_trimmed_by_their_retention() {
    const COUNT: u64 = 24;
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let dead_letter_retention = Retention::forever().max_age(Duration::from_secs(60));
    let open = || {
        builder(dir.path(), &clock)
            .dead_letter_retention(dead_letter_retention.clone())
            .open()
            .expect("open")
    };
    let wharf = open();
    wharf
        .create_topic("t", small_segments(Retention::forever()))
        .expect("topic");
    wharf.close().expect("close");
    create_small_internal_topics(dir.path(), &dead_letter_retention);
    let wharf = open();
    send(&wharf, "t", 0..COUNT);
    let retry_topic = crate::retry::retry_topic("g");
    let dlq_topic = crate::retry::dlq_topic("g");

    let mut consumer = wharf
        .consumer("g")
        .subscribe(["t"])
        .build()
        .expect("consumer");
    let poll = |consumer: &mut crate::Consumer, what: &str| {
        consumer
            .poll(HANG_GUARD)
            .expect("poll")
            .unwrap_or_else(|| panic!("hang guard: no {what}"))
    };
    for i in 0..COUNT {
        let d = poll(&mut consumer, "original");
        assert_eq!((d.topic(), d.offset()), ("t", i));
        d.nack(Retry::Level(DelayLevel::new(1))).expect("nack");
    }
    consumer.commit().expect("commit");
    let (_, delayed) = start_and_end(&wharf, crate::retry::DELAY_TOPIC, 0);
    assert_eq!(delayed, COUNT, "every retry waits in the level-1 lane");

    // Nothing is consumed from the retry topic yet: its retention keeps everything.
    clock.advance(Duration::from_secs(1));
    let mut retried = Vec::new();
    while retried.len() < usize::try_from(COUNT).expect("count") {
        let d = poll(&mut consumer, "retry");
        assert_eq!(d.topic(), retry_topic);
        retried.push(d);
    }
    assert_eq!(start_and_end(&wharf, &retry_topic, 0), (0, COUNT));
    clock.advance(Duration::from_secs(1));
    wharf.admin().enforce_retention().expect("retention");
    assert_eq!(
        start_and_end(&wharf, &retry_topic, 0).0,
        0,
        "the retry topic keeps what g has not committed"
    );
    // The scheduler commits its progress through the delay lane after moving the records.
    let deadline = Instant::now() + HANG_GUARD;
    while wharf.admin().delay_status().waiting.first().copied() != Some(0) {
        assert!(
            Instant::now() < deadline,
            "hang guard: the scheduler never caught up"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (delay_bases, _) = segments(dir.path(), crate::retry::DELAY_TOPIC);
    clock.advance(Duration::from_secs(1));
    wharf.admin().enforce_retention().expect("retention");
    assert_eq!(
        start_and_end(&wharf, crate::retry::DELAY_TOPIC, 0),
        (*delay_bases.last().expect("a segment"), COUNT),
        "the delay lane keeps only its active segment once everything was moved ({delay_bases:?})"
    );

    // Half dead-lettered, half acknowledged, then committed: the retry topic goes too.
    for (i, d) in retried.into_iter().enumerate() {
        if i % 2 == 0 {
            d.dead_letter("give up").expect("dead letter");
        } else {
            d.ack().expect("ack");
        }
    }
    consumer.commit().expect("commit");
    let (retry_bases, _) = segments(dir.path(), &retry_topic);
    clock.advance(Duration::from_secs(1));
    wharf.admin().enforce_retention().expect("retention");
    assert_eq!(
        start_and_end(&wharf, &retry_topic, 0),
        (*retry_bases.last().expect("a segment"), COUNT),
        "consumed retry segments deleted ({retry_bases:?})"
    );
    let (dlq_start, dead) = start_and_end(&wharf, &dlq_topic, 0);
    assert_eq!((dlq_start, dead), (0, COUNT / 2), "dead letters are young");

    // Dead letters go by age alone.
    let (dlq_bases, _) = segments(dir.path(), &dlq_topic);
    assert!(dlq_bases.len() > 1, "{dlq_bases:?}");
    clock.advance(Duration::from_secs(120));
    wharf.admin().enforce_retention().expect("retention");
    assert_eq!(
        start_and_end(&wharf, &dlq_topic, 0),
        (*dlq_bases.last().expect("a segment"), COUNT / 2),
        "old dead letters deleted ({dlq_bases:?})"
    );
    consumer.close().expect("close consumer");
    wharf.close().expect("close");
}

// ---------------------------------------------------------------------------------------
// A damaged consumer group.
// ---------------------------------------------------------------------------------------

#[test]
fn a_poisoned_group_does_not_stop_retention_of_other_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let (wharf, faults) = faulty(dir.path(), &clock);
    let age = Duration::from_secs(60);
    wharf
        .create_topic("plain", small_segments(Retention::forever().max_age(age)))
        .expect("topic");
    wharf
        .create_topic(
            "aware",
            small_segments(Retention::forever().max_age(age).until_consumed_by(["g"])),
        )
        .expect("topic");
    send(&wharf, "plain", 0..12);
    send(&wharf, "aware", 0..12);
    let admin = wharf.admin();
    admin
        .reset_offsets("g", "aware", crate::ResetTo::Offset(12))
        .expect("g commits");
    // Another group's offsets file fails a write (ENOSPC, as on a full disk): its store is
    // poisoned until the next open.
    admin
        .reset_offsets("other", "plain", crate::ResetTo::Offset(1))
        .expect("other commits");
    faults.fail_next_offsets_write.store(true, Ordering::SeqCst);
    assert!(
        admin
            .reset_offsets("other", "plain", crate::ResetTo::Offset(2))
            .is_err()
    );
    clock.advance(Duration::from_secs(3_600));
    let result = admin.enforce_retention();
    // Retention depends only on the groups it waits for: the poisoned store is reported by
    // that group's own commits, not here.
    assert!(
        result.is_ok(),
        "no topic waits for the poisoned group: {result:?}"
    );
    let start = |topic: &str| wharf.reader(topic, 0).expect("reader").start_offset();
    assert_eq!(
        start("plain"),
        9,
        "retention of a topic that waits for no group goes on: {result:?}"
    );
    assert_eq!(
        start("aware"),
        9,
        "retention of a topic that waits for g only goes on despite group \"other\": {result:?}"
    );
}
