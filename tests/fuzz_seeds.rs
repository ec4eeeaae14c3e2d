//! The fuzz targets' seed corpora, run as tests: every file of `fuzz/seeds/<target>/` (in the
//! repository) and of `fuzz/corpus/<target>/` (cargo-fuzz's local corpus, if present) goes
//! through the target's entry point in `wharf::fuzzing`, exactly as the target in
//! `fuzz/fuzz_targets/` calls it.
//!
//! The seeds are written by the ignored test `write_seeds`:
//! `cargo test --test fuzz_seeds -- --ignored write_seeds`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use wharf::{AckMode, Record, Timestamp, TopicConfig, Wharf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Runs every file of `seeds/<target>` and `corpus/<target>` through `run`; returns how many
/// seeds (not corpus files) ran. Panics naming every input that panicked.
fn run_target(target: &str, run: fn(&[u8])) -> usize {
    let mut seeds = 0;
    let mut failures = Vec::new();
    for (kind, required) in [("seeds", true), ("corpus", false)] {
        let dir = fuzz_dir().join(kind).join(target);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", dir.display()),
        };
        let mut files: Vec<PathBuf> = entries
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).expect("read an input");
            if catch_unwind(AssertUnwindSafe(|| run(&bytes))).is_err() {
                failures.push(file.display().to_string());
            }
            if kind == "seeds" {
                seeds += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: inputs that panicked: {failures:#?}"
    );
    seeds
}

// Each runner calls the entry points as its target in fuzz/fuzz_targets/ does.

fn batch_decode(data: &[u8]) {
    let expected = data
        .get(..8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    wharf::fuzzing::decode_batch(data, expected);
    wharf::fuzzing::decode_batch(data, 0);
}

fn index_load(data: &[u8]) {
    wharf::fuzzing::index_lookups(data, 0);
    wharf::fuzzing::index_lookups(data, 1_000);
}

#[test]
fn batch_decode_seeds() {
    assert!(
        run_target("batch_decode", batch_decode) > 0,
        "no batch_decode seed"
    );
}

#[test]
fn index_load_seeds() {
    assert!(
        run_target("index_load", index_load) > 0,
        "no index_load seed"
    );
}

#[test]
fn open_dir_seeds() {
    assert!(
        run_target("open_dir", wharf::fuzzing::open_dir) > 0,
        "no open_dir seed"
    );
}

#[test]
fn open_dir_checksummed_seeds() {
    assert!(
        run_target("open_dir_checksummed", wharf::fuzzing::open_dir_checksummed) > 0,
        "no open_dir_checksummed seed"
    );
}

#[test]
fn operation_sequence_seeds() {
    let run = wharf::fuzzing::operation_sequence;
    assert!(
        run_target("operation_sequence", run) > 0,
        "no operation_sequence seed"
    );
}

/// The operations a program holds (see `wharf::fuzzing::operation_sequence`), capped, plus the
/// final check.
fn operations_in(program: &[u8]) -> usize {
    let (mut at, mut ops) = (0, 0);
    while at < program.len() && ops < wharf::fuzzing::MAX_OPERATIONS {
        let op = program[at] % 10;
        at += 1 + match op {
            0..=2 | 5 => 1,
            3 => 2 + usize::from(program.get(at + 1).copied().unwrap_or(0) % 8),
            8 => 2,
            _ => 0,
        };
        ops += 1;
    }
    ops + 1
}

#[test]
fn operation_sequence_seeds_run_to_the_end() {
    // An environment error (I/O, a full disk) ends a run quietly: the seeds must not hit one.
    for (name, program) in operation_programs() {
        let ran = wharf::fuzzing::run_operations(&program);
        assert_eq!(ran, operations_in(&program), "{name}: operations completed");
    }
}

#[test]
fn the_valid_batch_seed_decodes() {
    let seed = std::fs::read(fuzz_dir().join("seeds/batch_decode/valid_batch")).expect("seed");
    assert_eq!(wharf::fuzzing::decode_batch(&seed, 0), 3);
    let truncated = std::fs::read(fuzz_dir().join("seeds/batch_decode/truncated")).expect("seed");
    assert_eq!(wharf::fuzzing::decode_batch(&truncated, 0), 0);
    let flipped = std::fs::read(fuzz_dir().join("seeds/batch_decode/bit_flipped")).expect("seed");
    assert_eq!(wharf::fuzzing::decode_batch(&flipped, 0), 0);
}

// Writing the seeds.

const SEGMENT: &str = "00000000000000000000";

/// The written part of a segment file: its header and the batches up to the first zero
/// length.
fn written_log(path: &Path) -> Vec<u8> {
    let log = std::fs::read(path).expect("segment");
    let mut end = 32;
    while let Some(len) = log.get(end + 4..end + 8) {
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        if len == 0 || end + len > log.len() {
            break;
        }
        end += len;
    }
    log[..end].to_vec()
}

/// A partition's files after a clean close, with records of `payload_len` bytes sent one by
/// one.
fn partition_files(config: TopicConfig, records: u8, payload_len: u8) -> [Vec<u8>; 5] {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = Wharf::open(dir.path()).expect("open");
    wharf.create_topic("t", config).expect("create topic");
    let producer = wharf.producer().ack(AckMode::Write).build();
    for i in 0..records {
        let millis = 1_700_000_000_000 + i64::from(i) * 10;
        let payload: Vec<u8> = (0..payload_len).map(|j| i.wrapping_add(j)).collect();
        let record = Record::new("t", payload)
            .key(format!("k{i}"))
            .timestamp(Timestamp::from_millis(millis));
        producer.send(record).expect("send");
    }
    wharf.close().expect("close");
    let partition = dir.path().join("topics/t/0");
    let read = |name: &str| std::fs::read(partition.join(name)).expect("partition file");
    [
        written_log(&partition.join(format!("{SEGMENT}.log"))),
        read(&format!("{SEGMENT}.index")),
        read(&format!("{SEGMENT}.timeindex")),
        read("checkpoint"),
        std::fs::read(dir.path().join("topics/t/topic.conf")).expect("topic.conf"),
    ]
}

/// Bytes of the header of `batch` (its fixed part, then three varints: see
/// `src/format/batch.rs`).
fn batch_header_len(batch: &[u8]) -> usize {
    let mut at = 17;
    for _ in 0..3 {
        while batch[at] & 0x80 != 0 {
            at += 1;
        }
        at += 1;
    }
    at
}

/// One batch of three records (a key, headers, fixed timestamps, one earlier than the
/// first), as stored at offset 0.
fn valid_batch() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = Wharf::open(dir.path()).expect("open");
    wharf
        .create_topic("t", TopicConfig::default())
        .expect("create topic");
    let producer = wharf.producer().build();
    let records = [
        Record::new("t", "first")
            .key("k")
            .header("h", "v")
            .timestamp(Timestamp::from_millis(1_700_000_000_000)),
        Record::new("t", "").timestamp(Timestamp::from_millis(1_000)),
        Record::new("t", vec![7u8; 40])
            .header("a", "")
            .header("b", "xyz")
            .timestamp(Timestamp::from_millis(1_700_000_000_005)),
    ];
    producer.send_batch(records).expect("send batch");
    wharf.close().expect("close");
    let log = written_log(&dir.path().join(format!("topics/t/0/{SEGMENT}.log")));
    log[32..].to_vec()
}

/// An `open_dir` input: each file preceded by its length in units of 16 bytes (zero-padded).
fn open_dir_input(files: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for file in files {
        let units = file.len().div_ceil(16);
        out.push(u8::try_from(units).expect("file under 4 KiB"));
        out.extend_from_slice(file);
        out.resize(out.len() + units * 16 - file.len(), 0);
    }
    out
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 0x10;
    out
}

#[rustfmt::skip]
fn operation_programs() -> Vec<(&'static str, Vec<u8>)> {
    // Ops (modulo 10): 0/1 send Write, 2 send Fsync, 3 batch, 4 sync, 5 consume, 6 close and
    // reopen, 7 crash and reopen, 8 delete_records, 9 check. See wharf::fuzzing.
    let mut rolls = Vec::new();
    for i in 0..40u8 {
        rolls.extend([0, 255 - (i & 1)]); // 40 sends of ~255 B to both partitions: rolls
    }
    rolls.extend([
        8, 1, 7,    // delete records of partition 1 before 7
        7,          // crash and reopen
        8, 0, 255,  // delete partition 0 up to its end
        6,          // close and reopen
        2, 4, 2, 5, // Fsync sends to both partitions
        7, 9,       // crash, reopen, check
    ]);
    vec![
        ("empty", vec![]),
        ("reopen_only", vec![6, 7, 6, 7, 9]),
        // Found by the fuzzer (a model error): closing a consumer that committed nothing
        // commits where its poll started.
        ("close_commits_on_leave", vec![6, 0xff, 0xff]),
        ("sends_then_crash", vec![
            0, 10,  // Write, partition 0, 10 B
            1, 11,  // Write, partition 1, 11 B
            2, 200, // Fsync, partition 0, 200 B
            7,      // crash and reopen
            0, 0,   // an empty payload
            7, 9,
        ]),
        ("rolls_and_deletes", rolls),
        ("consume_commit_crash", vec![
            0, 20, 0, 21, 0, 22, 0, 23, 2, 24, 2, 25,
            5, 3,       // consume up to 4, commit
            7,          // crash and reopen: the commit stays
            5, 0x81,    // consume up to 2, no commit
            5, 15,      // consume up to 16, commit
            8, 0, 2,    // delete partition 0 before offset 2 (below the commit)
            6,
            0, 30, 0, 31,
            8, 1, 255,  // delete all of partition 1, past the commit
            7,
            5, 15,      // resumes at the committed offsets or the start
            7, 9,
        ]),
        ("batches_sync_close", vec![
            3, 0x87, 1, 2, 3, 4, 5, 6, 7, 8, // Fsync batch of 8 across both partitions
            3, 2, 100, 101, 102,             // Write batch of 3
            4,                               // sync
            6, 7,
            3, 0, 9,                         // one-record batch
            7, 9,
        ]),
    ]
}

#[test]
#[ignore = "writes the seed files into fuzz/seeds"]
fn write_seeds() {
    let write = |target: &str, name: &str, bytes: &[u8]| {
        assert!(
            bytes.len() < 16 * 1024,
            "{target}/{name}: {} bytes",
            bytes.len()
        );
        let dir = fuzz_dir().join("seeds").join(target);
        std::fs::create_dir_all(&dir).expect("seed dir");
        std::fs::write(dir.join(name), bytes).expect("write seed");
    };

    let batch = valid_batch();
    write("batch_decode", "valid_batch", &batch);
    write("batch_decode", "truncated", &batch[..batch.len() - 5]);
    write(
        "batch_decode",
        "bit_flipped",
        &flip(&batch, batch.len() - 3),
    );
    write(
        "batch_decode",
        "header_only",
        &batch[..batch_header_len(&batch)],
    );

    let indexed = TopicConfig::default().index_interval_bytes(64);
    let [_, index, time_index, checkpoint, topic_conf] = partition_files(indexed, 40, 40);
    write("index_load", "index", &index);
    write("index_load", "index_truncated", &index[..index.len() - 3]);
    write("index_load", "index_bad_header_crc", &flip(&index, 20));
    write("index_load", "time_index", &time_index);
    write(
        "index_load",
        "time_index_truncated",
        &time_index[..time_index.len() - 7],
    );
    write("index_load", "checkpoint", &checkpoint);
    write("index_load", "topic_conf", &topic_conf);

    let config = TopicConfig::default()
        .segment_bytes(64 * 1024)
        .max_message_bytes(4_096)
        .index_interval_bytes(128);
    let [log, index, time_index, checkpoint, _] = partition_files(config, 12, 100);
    write(
        "open_dir",
        "valid_partition",
        &open_dir_input(&[&log, &index, &time_index, &checkpoint]),
    );
    write("open_dir", "log_only", &open_dir_input(&[&log]));
    let torn = &log[..log.len() - 50];
    write(
        "open_dir",
        "torn_log",
        &open_dir_input(&[torn, &index, &time_index, &checkpoint]),
    );
    let flipped = flip(&log, log.len() / 2);
    write(
        "open_dir",
        "corrupt_log",
        &open_dir_input(&[&flipped, &index, &time_index, &checkpoint]),
    );
    write("open_dir", "untouched", &[0, 0, 0, 0]);

    for (name, program) in operation_programs() {
        write("operation_sequence", name, &program);
    }
}
