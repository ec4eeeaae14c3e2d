//! How much recovery reads after a kill -9 behind the flusher (RELIABILITY.md invariant I4:
//! recovery takes time bounded by the un-checkpointed tail).
//!
//! A child (this test binary run again) sends `send_batch`es of 100 B records with
//! `AckMode::Write` into a topic of 4 KiB segments, one batch each time the parent says so.
//! A batch creates the hundred-odd segments it rolls into, then writes them, all under the
//! partition's writer lock, so the flusher cannot move the checkpoint while it runs; the writer
//! finalizes the sealed segments itself past the few it lets wait (docs/design.md, "Segments:
//! create, roll, seal, finalize"). The parent kills the child while it writes a batch, reopens
//! the directory, and checks that recovery read only the segments not finalized at the kill,
//! however far behind the checkpoint was, and that every acknowledged record is back, byte
//! for byte, with no gap.
//!
//! Not a timing test: the bound is on segments read and indexes rewritten
//! (`Wharf::recovery_stats`). The kill points are timed from an earlier batch of the same
//! child; the test also checks that at least one kill landed after more segments than the
//! bound were written, so that it would catch a recovery reading all of them.

mod common;

use common::kill::{Watchdog, killed_by_sigkill};
use common::{payload, read_partition, segment_files};

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use wharf::{AckMode, Record, TopicConfig, Wharf};

/// Set in the child: the data directory.
const CHILD_ENV: &str = "WHARF_RECOVERY_CHILD";
const TOPIC: &str = "tiny";
const RECORD_BYTES: usize = 100;
/// Records per `send_batch`: about a hundred 4 KiB segments.
const BATCH_RECORDS: u64 = 4_000;
/// Where in the writing of the third batch each kill lands, as a fraction of how long the
/// second batch took to write.
const KILL_POINTS: [(u32, u32); 3] = [(1, 3), (1, 2), (2, 3)];
/// What the parent writes to the child's stdin to start a batch (EOF makes it exit).
const GO_LINE: &str = "go";
/// What the child prints after each batch returns: the offset after the last record acked.
const ACKED_PREFIX: &str = "WHARF acked ";
/// Sealed segments of one partition that may be left unfinalized at any moment: four waiting
/// for the flusher, and as many again in each of a sync in progress, the flusher's finalizing
/// and the writer's own (docs/design.md, and `MAX_UNFINALIZED_SEGMENTS` in
/// src/log/partition/append.rs: "at most four times this many").
const MAX_UNFINALIZED_SEALED: usize = 4 * 4;
const STEP_LIMIT: Duration = Duration::from_secs(60);

fn topic_config() -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(wharf::MIN_SEGMENT_BYTES)
        .max_message_bytes(1_024)
}

/// The child: sends one batch per line on stdin until stdin ends or it is killed, printing
/// each acknowledged end.
#[test]
fn child_send_batches() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let wharf = Wharf::open(&dir).expect("open");
    wharf.create_topic(TOPIC, topic_config()).expect("topic");
    let producer = wharf.producer().ack(AckMode::Write).build();
    let mut out = std::io::stdout().lock();
    let mut next = 0u64;
    for line in std::io::stdin().lock().lines() {
        if line.as_deref().ok() != Some(GO_LINE) {
            break;
        }
        let records = (next..next + BATCH_RECORDS)
            .map(|i| Record::new(TOPIC, payload(i, RECORD_BYTES)).partition(0));
        let receipts = producer.send_batch(records).expect("send_batch");
        next = receipts.last().expect("receipts").offset() + 1;
        if writeln!(out, "{ACKED_PREFIX}{next}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    // The parent went away: leave as a crash would.
    std::process::exit(3);
}

/// Drives the child's batches.
struct Batches {
    stdin: ChildStdin,
    acks: Receiver<u64>,
    partition_dir: std::path::PathBuf,
}

impl Batches {
    fn start(&mut self) {
        writeln!(self.stdin, "{GO_LINE}")
            .and_then(|()| self.stdin.flush())
            .expect("tell the child to send");
    }

    fn acked(&self) -> u64 {
        self.acks
            .recv_timeout(STEP_LIMIT)
            .expect("the child acknowledged its batch")
    }

    fn segment_count(&self) -> usize {
        std::fs::read_dir(&self.partition_dir).map_or(0, |entries| {
            entries
                .filter_map(std::result::Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .count()
        })
    }

    /// Waits until `count` segment files exist: the batch created the segments it rolls into
    /// and writes them from now on.
    fn wait_for_segments(&self, count: usize) -> Instant {
        let deadline = Instant::now() + STEP_LIMIT;
        while self.segment_count() < count {
            assert!(
                Instant::now() < deadline,
                "the batch never created its segments"
            );
            thread::sleep(Duration::from_millis(1));
        }
        Instant::now()
    }
}

/// Runs two batches, then kills the child `point` of the way through writing the third.
/// Returns the offset after the last acknowledged record.
fn run_and_kill(dir: &Path, point: (u32, u32), watchdog: &Watchdog) -> u64 {
    let mut child = Command::new(std::env::current_exe().expect("current_exe"))
        .args([
            "child_send_batches",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, acks) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest's "test child_send_batches ... " may start the first line.
            if let Some((_, n)) = line.split_once(ACKED_PREFIX) {
                let _ = tx.send(n.parse::<u64>().expect("acked offset"));
            }
        }
    });
    let mut batches = Batches {
        stdin: child.stdin.take().expect("stdin"),
        acks,
        partition_dir: dir.join("topics").join(TOPIC).join("0"),
    };
    watchdog.step("the child's first batch".into());
    batches.start();
    batches.acked();
    // A new topic has one segment; the first batch created the rest. Later batches start
    // part way into a segment, so they may create one fewer.
    let before_second = batches.segment_count();
    let created = before_second.saturating_sub(2);
    watchdog.step("the child's second batch".into());
    batches.start();
    let writing = batches.wait_for_segments(before_second + created);
    let acked = batches.acked();
    let write_time = writing.elapsed();
    let before_third = batches.segment_count();
    watchdog.step("the child's third batch".into());
    batches.start();
    batches.wait_for_segments(before_third + created);
    thread::sleep(write_time * point.0 / point.1);
    watchdog.step("killing the child".into());
    child.kill().expect("kill the child");
    let status = child.wait().expect("wait for the child");
    assert!(
        killed_by_sigkill(status),
        "the child ended by itself: {status}"
    );
    drop(batches.stdin);
    reader.join().expect("stdout reader");
    batches.acks.try_iter().fold(acked, u64::max)
}

#[test]
fn recovery_after_a_kill_reads_only_segments_not_finalized() {
    let watchdog = Watchdog::start(
        "recovery_after_a_kill_reads_only_segments_not_finalized",
        Duration::from_secs(300),
    );
    let mut most_written = 0;
    for (kill, point) in KILL_POINTS.into_iter().enumerate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let acked = run_and_kill(dir.path(), point, &watchdog);
        watchdog.step(format!("reopening after kill {kill}"));
        let wharf = Wharf::open(dir.path()).expect("reopen after the kill");
        let stats = wharf.recovery_stats();
        let end = wharf.reader(TOPIC, 0).expect("reader").end_offset();
        // Segments holding records of the batch the kill interrupted: all written after the
        // checkpoint, which the flusher could not move during the batch.
        let written_in_flight = segment_files(dir.path(), TOPIC, 0, "log")
            .iter()
            .filter_map(|path| path.file_stem()?.to_str()?.parse::<u64>().ok())
            .filter(|&base| base >= acked && base < end)
            .count();
        most_written = most_written.max(written_in_flight);
        // Every partition reads its last segment; the one written to also the sealed segments
        // that were not finalized yet.
        let bound = stats.partitions + MAX_UNFINALIZED_SEALED;
        println!(
            "kill {kill}: {acked} records acked, {end} recovered, {written_in_flight} segments \
             written by the interrupted batch; recovery read {} segments ({} B) of {} \
             partitions, rewrote {} indexes",
            stats.scanned_segments, stats.scanned_bytes, stats.partitions, stats.rewritten_indexes
        );
        assert!(!stats.clean_shutdown);
        assert!(
            stats.scanned_segments <= bound,
            "kill {kill}: recovery read {} segments, more than the {bound} that can be left \
             unfinalized",
            stats.scanned_segments
        );
        assert!(
            stats.rewritten_indexes <= bound,
            "kill {kill}: recovery rewrote {} indexes, more than the {bound} that can be left \
             unfinalized",
            stats.rewritten_indexes
        );
        watchdog.step(format!("reading back after kill {kill}"));
        let messages = read_partition(&wharf, TOPIC, 0);
        assert!(
            messages.len() as u64 >= acked,
            "kill {kill}: {} records recovered, {acked} were acknowledged",
            messages.len()
        );
        for (i, message) in messages.iter().enumerate() {
            assert_eq!(
                message.offset(),
                i as u64,
                "kill {kill}: offsets have a gap"
            );
            assert_eq!(
                message.payload(),
                payload(i as u64, RECORD_BYTES).as_slice(),
                "kill {kill}: record {i} differs"
            );
        }
        wharf.close().expect("close");
    }
    assert!(
        most_written > MAX_UNFINALIZED_SEALED + 1,
        "no kill landed after more segments than the bound were written (at most \
         {most_written}): the test did not exercise a checkpoint far behind"
    );
}
