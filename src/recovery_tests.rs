//! Recovery after a crash far behind the checkpoint, with no flusher (so the checkpoint stays
//! where the topic's creation put it, deterministically): one `send_batch` rolls through many
//! small segments, the writer finalizing them itself past [`MAX_UNFINALIZED_SEGMENTS`]
//! waiting. Recovery takes the finalized ones as they are and reads only the rest; a
//! finalized segment whose index is damaged is read instead; reads come back whole either way,
//! also from a read-only open.

use std::path::{Path, PathBuf};

use crate::log::MAX_UNFINALIZED_SEGMENTS;
use crate::{AckMode, ReadOptions, Record, RecoveryStats, TopicConfig, Wharf};

const TOPIC: &str = "t";
const RECORDS: u64 = 3_000;
const RECORD_BYTES: usize = 100;

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

fn partition_dir(dir: &Path) -> PathBuf {
    dir.join("topics").join(TOPIC).join("0")
}

/// The partition's files with extension `ext`, by base offset.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(partition_dir(dir))
        .expect("partition dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// Sends [`RECORDS`] records in one batch through 4 KiB segments and crashes.
fn write_and_crash(dir: &Path) {
    let wharf = Wharf::builder(dir)
        .without_background_threads()
        .open()
        .expect("open");
    let config = TopicConfig::default()
        .segment_bytes(crate::MIN_SEGMENT_BYTES)
        .index_interval_bytes(512)
        .max_message_bytes(1_024);
    wharf.create_topic(TOPIC, config).expect("topic");
    let producer = wharf.producer().ack(AckMode::Write).build();
    let records = (0..RECORDS).map(|i| Record::new(TOPIC, payload(i)).partition(0));
    producer.send_batch(records).expect("send_batch");
    drop(producer);
    wharf.simulate_crash();
}

fn assert_all_records(wharf: &Wharf) {
    let reader = wharf.reader(TOPIC, 0).expect("reader");
    assert_eq!(reader.end_offset(), RECORDS);
    let mut offset = 0;
    while offset < RECORDS {
        let batch = reader
            .read(offset, ReadOptions::default().max_records(500))
            .expect("read");
        assert!(!batch.is_empty(), "no progress at offset {offset}");
        for message in &batch {
            assert_eq!(
                message.payload(),
                payload(offset).as_slice(),
                "record {offset}"
            );
            offset += 1;
        }
    }
}

fn reopen(dir: &Path) -> (Wharf, RecoveryStats) {
    let wharf = Wharf::builder(dir)
        .without_background_threads()
        .open()
        .expect("reopen");
    let stats = wharf.recovery_stats();
    assert!(!stats.clean_shutdown);
    (wharf, stats)
}

#[test]
fn recovery_reads_only_the_segments_not_finalized_however_far_behind_the_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_and_crash(dir.path());
    let segments = files(dir.path(), "log").len();
    // Every partition reads its last segment; this one also the sealed segments left waiting.
    let bound = |stats: &RecoveryStats| stats.partitions + MAX_UNFINALIZED_SEGMENTS;
    {
        let wharf = Wharf::builder(dir.path())
            .read_only(true)
            .open()
            .expect("read-only open");
        let stats = wharf.recovery_stats();
        assert!(
            segments > 4 * bound(&stats),
            "{segments} segments: the batch must roll through many more than recovery reads"
        );
        assert!(stats.scanned_segments <= bound(&stats), "{stats:?}");
        assert_all_records(&wharf);
    }
    let (wharf, stats) = reopen(dir.path());
    assert!(stats.scanned_segments <= bound(&stats), "{stats:?}");
    assert!(stats.rewritten_indexes <= bound(&stats), "{stats:?}");
    assert_all_records(&wharf);
    wharf.close().expect("close");
}

#[test]
fn a_finalized_segment_with_a_damaged_index_is_read_and_reindexed() {
    let clean = tempfile::tempdir().expect("tempdir");
    let damaged = tempfile::tempdir().expect("tempdir");
    write_and_crash(clean.path());
    write_and_crash(damaged.path());
    // A segment in the middle: finalized by the writer, after the checkpoint.
    let indexes = files(damaged.path(), "index");
    let index = &indexes[indexes.len() / 2];
    let mut bytes = std::fs::read(index).expect("read the index");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40; // an entry byte: the summary's entries CRC no longer matches
    std::fs::write(index, &bytes).expect("damage the index");

    let (clean_wharf, clean_stats) = reopen(clean.path());
    let (wharf, stats) = reopen(damaged.path());
    assert_eq!(stats.scanned_segments, clean_stats.scanned_segments + 1);
    assert_eq!(stats.rewritten_indexes, clean_stats.rewritten_indexes + 1);
    assert_ne!(
        std::fs::read(index).expect("read the index"),
        bytes,
        "the damaged index was rewritten"
    );
    assert_all_records(&clean_wharf);
    assert_all_records(&wharf);
    clean_wharf.close().expect("close");
    wharf.close().expect("close");
}
