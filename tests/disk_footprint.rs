//! How much disk the Wharf's files take (DESIGN.md section 2, "Retention and disk", for edge
//! devices with small disks): a new topic's first segment takes 64 KiB of log and a block per
//! index file; a log file grows by doubling up to the segment size and never past it, its
//! index files growing with it; the idle internal topics (18 delay partitions, a retry topic)
//! take a few hundred KiB; `Admin::disk_usage` counts the blocks the files hold.
//!
//! Sizes are read as the files' allocated blocks (`st_blocks`, what `disk_usage` counts) and
//! lengths (a log file's length is its allocation: space is reserved with `fallocate`),
//! as Linux file systems report them. The Wharf's clock is a `ManualClock` that does not
//! move unless a test moves it: the writer then never measures a speed, so nothing is
//! populated (and allocated) ahead of it and every size here is exact.
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::payload;
use wharf::{
    AckMode, Clock, ManualClock, ReadOptions, Record, Retry, Timestamp, TopicConfig, Wharf,
    WharfBuilder,
};

const KIB: u64 = 1024;
/// A file system block: every file takes whole ones.
const BLOCK: u64 = 4 * KIB;
/// A user topic's log file starts with this much.
const FIRST_LOG_BYTES: u64 = 64 * KIB;

fn builder(dir: &Path) -> WharfBuilder {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    Wharf::builder(dir).clock(clock as Arc<dyn Clock>)
}

fn partition_dir(dir: &Path, topic: &str, partition: u32) -> PathBuf {
    dir.join("topics").join(topic).join(partition.to_string())
}

/// Bytes of disk the file at `path` takes (its allocated blocks).
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").blocks() * 512
}

/// Bytes of disk every file under `path` takes.
fn allocated_under(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .expect("read dir")
        .map(|entry| {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                allocated_under(&path)
            } else {
                allocated(&path)
            }
        })
        .sum()
}

/// The newest segment's three files in a partition: `.log`, `.index`, `.timeindex`.
fn active_segment(dir: &Path, topic: &str, partition: u32) -> [PathBuf; 3] {
    let log = common::segment_files(dir, topic, partition, "log")
        .pop()
        .expect("a segment");
    [
        log.clone(),
        log.with_extension("index"),
        log.with_extension("timeindex"),
    ]
}

#[test]
fn a_new_topic_takes_64_kib_and_two_index_blocks_after_its_first_small_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = builder(dir.path()).open().expect("open");
    wharf
        .create_topic("t", TopicConfig::default())
        .expect("topic");
    let producer = wharf.producer().ack(AckMode::Write).build();
    producer
        .send(Record::new("t", payload(0, 100)))
        .expect("send");

    let [log, index, time] = active_segment(dir.path(), "t", 0);
    assert_eq!(
        std::fs::metadata(&log).expect("log").len(),
        FIRST_LOG_BYTES,
        "the log file starts with 64 KiB"
    );
    assert!(
        allocated(&log) <= FIRST_LOG_BYTES,
        "the log file takes {} bytes after one 100 B record",
        allocated(&log)
    );
    for file in [&index, &time] {
        assert!(
            allocated(file) <= BLOCK,
            "{} takes {} bytes: an index file starts with the room its log's first 64 KiB \
             can need, not a whole segment's",
            file.display(),
            allocated(file)
        );
    }
    // The segment, and a block each for the checkpoint, the topic's configuration and the
    // directory header.
    let bound = FIRST_LOG_BYTES + 2 * BLOCK + 3 * BLOCK;
    let usage = wharf.admin().disk_usage().expect("usage");
    assert_eq!(
        usage.used_bytes,
        allocated_under(dir.path()),
        "disk_usage counts the blocks the files hold"
    );
    assert!(
        usage.used_bytes <= bound,
        "the Wharf takes {} bytes with one 100 B record (at most {bound} expected)",
        usage.used_bytes
    );
}

#[test]
fn a_log_file_doubles_as_it_fills_and_never_passes_the_segment_size() {
    const SEGMENT_BYTES: u64 = 1024 * KIB;
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = builder(dir.path()).open().expect("open");
    wharf
        .create_topic("t", TopicConfig::default().segment_bytes(SEGMENT_BYTES))
        .expect("topic");
    let producer = wharf.producer().ack(AckMode::Write).build();
    // Every size each segment's log file had, in order.
    let mut sizes: Vec<(PathBuf, Vec<u64>)> = Vec::new();
    let mut sent = 0;
    while sizes.len() < 3 {
        producer
            .send(Record::new("t", payload(sent, 1_000)))
            .expect("send");
        sent += 1;
        let [log, index, time] = active_segment(dir.path(), "t", 0);
        let len = std::fs::metadata(&log).expect("log").len();
        assert!(
            len <= SEGMENT_BYTES,
            "after {sent} records the log file is {len} bytes, past the segment size"
        );
        let taken = allocated(&log);
        assert!(
            (len..=len + 2 * BLOCK).contains(&taken),
            "a {len}-byte log file takes {taken} bytes: its length is allocated, no more"
        );
        let index_bytes = allocated(&index) + allocated(&time);
        assert!(
            index_bytes <= len / 128 + 2 * BLOCK,
            "the index files take {index_bytes} bytes next to a {len}-byte log: they grow \
             with it"
        );
        match sizes.last_mut() {
            Some((path, seen)) if *path == log => {
                if seen.last() != Some(&len) {
                    seen.push(len);
                }
            }
            _ => sizes.push((log, vec![len])),
        }
    }
    let doubling: Vec<u64> = (0..5).map(|k| FIRST_LOG_BYTES << k).collect();
    for (path, seen) in &sizes[..2] {
        assert_eq!(
            seen,
            &doubling,
            "{}: 64 KiB, then doubling up to the segment size",
            path.display()
        );
    }
    assert_eq!(
        sizes[2].1,
        [FIRST_LOG_BYTES],
        "a new segment starts small again"
    );
    assert_eq!(common::payloads(&wharf, "t", 0).len() as u64, sent);
}

#[test]
fn index_entries_past_the_first_block_are_written_and_recovery_starts_from_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = builder(dir.path()).open().expect("open");
    // An entry per batch: 20,000 entries are 160 KB of offset index, 320 KB of time index.
    wharf
        .create_topic("t", TopicConfig::default().index_interval_bytes(0))
        .expect("topic");
    let producer = wharf.producer().ack(AckMode::Write).build();
    for i in 0..20_000 {
        producer
            .send(Record::new("t", payload(i, 20)))
            .expect("send");
    }
    let [_, index, _] = active_segment(dir.path(), "t", 0);
    assert!(
        allocated(&index) > 32 * BLOCK,
        "the offset index grew: {} bytes",
        allocated(&index)
    );
    wharf.sync().expect("sync: a checkpoint at the end");
    wharf.simulate_crash();

    let wharf = builder(dir.path()).open().expect("reopen");
    let stats = wharf.recovery_stats();
    assert!(!stats.clean_shutdown);
    assert!(
        stats.scanned_bytes < 1_000,
        "recovery resumed from the last index entry before the checkpoint, near the end: \
         {stats:?}"
    );
    let reader = wharf.reader("t", 0).expect("reader");
    for offset in [0, 1, 4_999, 12_345, 19_999] {
        let batch = reader
            .read(offset, ReadOptions::default().max_records(1))
            .expect("read");
        let message = batch.iter().next().expect("a record");
        assert_eq!(message.offset(), offset);
        assert_eq!(message.payload(), payload(offset, 20).as_slice());
    }
}

#[test]
fn an_idle_wharf_with_the_delay_topic_and_a_retry_topic_takes_under_half_a_mib() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = builder(dir.path()).open().expect("open");
    wharf
        .create_topic("t", TopicConfig::default())
        .expect("topic");
    wharf
        .producer()
        .build()
        .send(Record::new("t", payload(0, 100)))
        .expect("send");
    // A nack creates the group's retry topic and the delay topic (with one partition per
    // level, 18), and waits in the delay topic.
    let mut consumer = wharf
        .consumer("g")
        .subscribe(["t"])
        .build()
        .expect("consumer");
    let delivery = consumer
        .poll(Duration::from_secs(10))
        .expect("poll")
        .expect("a delivery");
    delivery.nack(Retry::Default).expect("nack");
    drop(consumer);
    let internal: Vec<_> = wharf
        .topics()
        .into_iter()
        .filter(wharf::TopicInfo::is_internal)
        .collect();
    assert_eq!(internal.len(), 2, "{internal:?}");
    let partitions: u32 = internal.iter().map(|t| t.config().partitions).sum();
    assert_eq!(partitions, 19);

    let bound = 512 * KIB;
    let taken: u64 = internal
        .iter()
        .map(|t| allocated_under(&dir.path().join("topics").join(t.name())))
        .sum();
    assert!(
        taken <= bound,
        "the delay and retry topics take {taken} bytes while open (at most {bound} expected)"
    );
    // Each partition's empty segment: a block of log, a block per index file, and its
    // checkpoint.
    for t in &internal {
        for p in 0..t.config().partitions {
            let pdir = partition_dir(dir.path(), t.name(), p);
            assert!(
                allocated_under(&pdir) <= 4 * BLOCK,
                "{} takes {} bytes",
                pdir.display(),
                allocated_under(&pdir)
            );
        }
    }
    let usage = wharf.admin().disk_usage().expect("usage");
    assert!(
        usage.used_bytes <= bound + FIRST_LOG_BYTES + 16 * BLOCK,
        "the whole Wharf takes {} bytes",
        usage.used_bytes
    );
}
