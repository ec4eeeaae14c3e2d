//! Running out of file descriptors: the process's `RLIMIT_NOFILE` is lowered (`ulimit -n` in
//! a child process running this test binary again), so that opening files fails with
//! `EMFILE` exactly as on a device whose process limit is reached.
//!
//! - `a_roll_without_descriptors_fails_cleanly_and_the_next_send_succeeds`: a send that needs
//!   a new segment while no descriptor is left fails with an error, writes nothing, leaves no
//!   file of the half-created segment behind, and the next send succeeds once descriptors are
//!   free again; nothing acknowledged is lost across a reopen.
//! - `thousands_of_rolls_stay_within_a_low_descriptor_limit`: 2,050 one-record segments
//!   written one send at a time, and one `send_batch` through 500 more, under a limit of 64
//!   descriptors: the sealed segments waiting to be finalized never pile up, so no send fails
//!   and the descriptors open under the directory stay bounded at every moment.

mod common;

use std::path::Path;
use std::process::Command;

use common::{open_files_under, payload, read_partition};
use wharf::{AckMode, ErrorKind, Record, TopicConfig, Wharf};

/// The child's data directory; set only in the child.
const CHILD_DIR_ENV: &str = "WHARF_DESCRIPTOR_CHILD_DIR";
/// The descriptor limit of the child.
const CHILD_LIMIT: u32 = 64;
/// One such record fills a 4 KiB segment: every record gets a segment of its own.
const RECORD_BYTES: usize = 2_100;

fn topic_config() -> TopicConfig {
    TopicConfig::default().segment_bytes(4_096)
}

/// Runs `test` of this binary again in a child whose descriptor limit is [`CHILD_LIMIT`],
/// and fails if the child fails.
fn run_child(test: &str) {
    // On /dev/shm where it exists: thousands of segments cost thousands of syncs elsewhere.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("tempdir")
    } else {
        tempfile::tempdir().expect("tempdir")
    };
    let exe = std::env::current_exe().expect("current_exe");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {CHILD_LIMIT} && exec \"$@\""))
        .arg("sh")
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir.path())
        .status()
        .expect("spawn the child");
    assert!(
        status.success(),
        "the child running {test} failed: {status}"
    );
}

/// Opens `/dev/null` until the process has no descriptor left.
fn exhaust_descriptors() -> Vec<std::fs::File> {
    let mut held = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => held.push(file),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(24), "EMFILE: {e}");
                return held;
            }
        }
        assert!(held.len() < 100_000, "the descriptor limit was not lowered");
    }
}

/// Every record of partition 0 of `t`, checked against [`payload`].
fn assert_records(wharf: &Wharf, end: u64) {
    let got = read_partition(wharf, "t", 0);
    assert_eq!(got.len() as u64, end);
    for (offset, m) in (0..).zip(&got) {
        assert_eq!(m.offset(), offset);
        assert!(
            m.payload() == payload(offset, RECORD_BYTES).as_slice(),
            "record {offset}"
        );
    }
}

#[test]
fn a_roll_without_descriptors_fails_cleanly_and_the_next_send_succeeds() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        run_child("a_roll_without_descriptors_fails_cleanly_and_the_next_send_succeeds");
        return;
    };
    let dir = Path::new(&dir);
    let wharf = Wharf::open(dir).expect("open");
    wharf.create_topic("t", topic_config()).expect("topic");
    wharf
        .producer()
        .build()
        .send(Record::new("t", payload(0, RECORD_BYTES)))
        .expect("first send");
    let partition = dir.join("topics").join("t").join("0");
    let segment_file = |base: u64, ext: &str| partition.join(format!("{base:020}.{ext}"));
    let mut next = 1;
    // With 0, 1, 2, ... descriptors left, the roll fails at each step of creating the next
    // segment (its log, its index files, opening and mapping all three), or succeeds. Under
    // `Write` a failed send wrote nothing; under `Fsync` the record may also have been
    // written and its sync (which opens the directory) failed: then it is there but was not
    // acknowledged, and the partition is not stopped (nothing was lost).
    for ack in [AckMode::Write, AckMode::Fsync] {
        let producer = wharf.producer().ack(ack).build();
        let mut failures = 0;
        for free in 0..12 {
            let mut held = exhaust_descriptors();
            held.truncate(held.len().saturating_sub(free));
            let sent = producer.send(Record::new("t", payload(next, RECORD_BYTES)));
            drop(held);
            let end = wharf.reader("t", 0).expect("reader").end_offset();
            match sent {
                Ok(receipt) => {
                    assert_eq!(receipt.offset(), next);
                    next += 1;
                }
                Err(err) => {
                    failures += 1;
                    assert!(
                        matches!(err.kind(), ErrorKind::Io { .. })
                            && err.to_string().contains("open files"),
                        "{ack:?}, {free} descriptors left: an I/O error naming the cause: {err}"
                    );
                    if ack == AckMode::Fsync && end == next + 1 {
                        next += 1; // written, its sync failed
                        continue;
                    }
                    assert_eq!(
                        end, next,
                        "{ack:?}, {free} descriptors left: nothing written"
                    );
                    for ext in ["log", "index", "timeindex"] {
                        assert!(
                            !segment_file(next, ext).exists(),
                            "{ack:?}, {free} descriptors left: the half-created segment's \
                             .{ext} was removed"
                        );
                    }
                }
            }
        }
        assert!(
            failures >= 2,
            "{ack:?}: sends failed with few descriptors left ({failures} times)"
        );
        for i in next..next + 4 {
            let receipt = producer
                .send(Record::new("t", payload(i, RECORD_BYTES)))
                .expect("descriptors are free again: the roll succeeds");
            assert_eq!(receipt.offset(), i);
        }
        next += 4;
    }
    let end = next;
    assert_records(&wharf, end);
    wharf.close().expect("close");
    let wharf = Wharf::open(dir).expect("reopen");
    assert_records(&wharf, end);
}

#[test]
fn thousands_of_rolls_stay_within_a_low_descriptor_limit() {
    const SINGLE_SENDS: u64 = 2_050;
    const BATCH: u64 = 500;
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        run_child("thousands_of_rolls_stay_within_a_low_descriptor_limit");
        return;
    };
    let dir = Path::new(&dir);
    let wharf = Wharf::open(dir).expect("open");
    wharf.create_topic("t", topic_config()).expect("topic");
    let producer = wharf.producer().ack(AckMode::Write).build();
    let mut most = 0;
    for i in 0..SINGLE_SENDS {
        let receipt = producer
            .send(Record::new("t", payload(i, RECORD_BYTES)))
            .unwrap_or_else(|e| panic!("send {i}: {e}"));
        assert_eq!(receipt.offset(), i);
        most = most.max(open_files_under(dir).0);
    }
    let receipts = producer
        .send_batch(
            (SINGLE_SENDS..SINGLE_SENDS + BATCH)
                .map(|i| Record::new("t", payload(i, RECORD_BYTES))),
        )
        .expect("a batch through 500 segments");
    assert_eq!(receipts.len() as u64, BATCH);
    most = most.max(open_files_under(dir).0);
    // The active segment's 3 files; sealed segments not finalized yet (3 each): at most 4
    // waiting, 4 a sync is making durable and 8 the flusher is finalizing; the checkpoint,
    // the lock and the directory header. Whatever the number of segments written.
    let bound = 3 + 3 * 16 + 3;
    assert!(
        most <= bound,
        "at most {most} descriptors open under the directory (bound {bound})"
    );
    eprintln!("at most {most} descriptors open under the directory");
    assert_records(&wharf, SINGLE_SENDS + BATCH);
}
