//! Damaged files, through the public API (RELIABILITY.md section 4: scenarios 3, 4a, 4b, 5 and
//! 13; invariants I2, I3, I6 and I8):
//!
//! - a torn last batch (truncated, zeroed or garbage from every byte position) after the
//!   checkpoint is cut: the log is an exact prefix and appends continue at the right offset;
//! - every single-bit flip of a small segment is detected (`Corrupt` at open or at read) or,
//!   past the checkpoint, cut as a torn tail; no damaged record is ever returned;
//! - damaged, missing, foreign and orphan index files change no read result;
//! - data missing below the checkpoint is reported as `Corrupt`, never silently dropped.
//!
//! Each case damages a fresh copy of a prepared data directory with `std::fs` and reopens it.
//! The copies go to `/dev/shm` where it exists (see [`scratch_root`]; `CORRUPTION_TMPDIR`
//! overrides).
//! Random choices come from a seeded PRNG; each test prints its seed, and
//! `CORRUPTION_SEED=<n> cargo test --test corruption` replays it.

#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]

mod common;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{payload, segment_files};
use tempfile::TempDir;
use wharf::{
    AckMode, ErrorKind, MessageRef, ReadOptions, Record, RecoveryMode, Timestamp, TopicConfig,
    Wharf,
};

const TOPIC: &str = "t";
/// Bytes of the `.log` file header (`file_header` module docs).
const LOG_HEADER_LEN: usize = 32;
/// Fewest bytes a batch takes (format 2: a 20 B header and a 2 B record).
const MIN_BATCH_LEN: usize = 22;
/// Bytes of the `.index` header and of one entry.
const INDEX_HEADER_LEN: usize = 64;
const INDEX_ENTRY_LEN: usize = 8;
/// Bytes of the `.timeindex` header and of one entry.
const TIME_HEADER_LEN: usize = 32;
const TIME_ENTRY_LEN: usize = 16;
const BASE_TIMESTAMP: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// Helpers: directories, the record model, reading back, the on-disk layout.
// ---------------------------------------------------------------------------------------------

/// Opens with a background flush far away, so nothing is synced or checkpointed behind the
/// test's back.
fn open(dir: &Path) -> wharf::Result<Wharf> {
    Wharf::builder(dir)
        .flush_interval(Duration::from_secs(3_600))
        .open()
}

fn partition_dir(dir: &Path) -> PathBuf {
    dir.join("topics").join(TOPIC).join("0")
}

fn segment_path(dir: &Path, base: u64, ext: &str) -> PathBuf {
    partition_dir(dir).join(format!("{base:020}.{ext}"))
}

/// Base offsets of the partition's segments, in order.
fn segment_bases(dir: &Path) -> Vec<u64> {
    segment_files(dir, TOPIC, 0, "log")
        .iter()
        .map(|p| {
            let stem = p.file_stem().unwrap().to_str().unwrap();
            stem.parse().unwrap()
        })
        .collect()
}

/// Copies a directory tree with `std::fs`.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Where the test's directories go: `CORRUPTION_TMPDIR` if set, else `/dev/shm` where it
/// exists. Each of the thousands of cases opens a copy, and an open syncs several files: on a
/// disk that costs milliseconds per case, on a tmpfs nothing. What is tested (how recovery and
/// reads judge file contents) does not depend on the file system.
fn scratch_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("CORRUPTION_TMPDIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A new temporary directory under [`scratch_root`] (or the default one if that fails),
/// removed when dropped.
fn scratch_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("wharf-corruption-")
        .tempdir_in(scratch_root())
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

/// A fresh copy of `base` in a new temporary directory.
fn fresh_copy(base: &Path) -> TempDir {
    let case = scratch_dir();
    copy_dir(base, case.path());
    case
}

/// One record as written and as it must be read back.
#[derive(Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

impl fmt::Debug for Rec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Rec(@{} ts {} key {:?} {} B payload crc {:08x}, {} headers)",
            self.offset,
            self.timestamp,
            self.key
                .as_ref()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            self.payload.len(),
            crc32c::crc32c(&self.payload),
            self.headers.len()
        )
    }
}

/// The record at `offset`: payload of up to `max_len` bytes (some empty), a key on every
/// third, headers on half of them, and timestamps that sometimes step back.
fn rec(offset: u64, max_len: usize) -> Rec {
    let len = (offset as usize * 37 + 11) % (max_len + 1);
    let key = (offset % 3 == 0).then(|| format!("key-{offset}").into_bytes());
    let headers = match offset % 4 {
        1 => vec![
            ("trace".to_string(), payload(offset + 1_000, 5)),
            ("empty".to_string(), Vec::new()),
        ],
        2 => vec![("h".to_string(), b"v".to_vec())],
        _ => Vec::new(),
    };
    let step_back = if offset % 5 == 3 { 35 } else { 0 };
    Rec {
        offset,
        timestamp: BASE_TIMESTAMP + offset as i64 * 10 - step_back,
        key,
        payload: payload(offset, len),
        headers,
    }
}

fn model(offsets: std::ops::Range<u64>, max_len: usize) -> Vec<Rec> {
    offsets.map(|o| rec(o, max_len)).collect()
}

impl Rec {
    fn record(&self) -> Record {
        let mut record = Record::new(TOPIC, self.payload.clone())
            .timestamp(Timestamp::from_millis(self.timestamp));
        if let Some(key) = &self.key {
            record = record.key(key.clone());
        }
        for (name, value) in &self.headers {
            record = record.header(name.clone(), value.clone());
        }
        record
    }

    fn of(m: &MessageRef<'_>) -> Rec {
        Rec {
            offset: m.offset(),
            timestamp: m.timestamp().as_millis(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().to_vec(),
            headers: m
                .headers()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect(),
        }
    }
}

/// Appends `recs` under `Write`, in batches of the given sizes (cycled): a size of 1 is one
/// `send`, larger sizes one `send_batch` (one batch on disk unless the segment rolls).
fn append(wharf: &Wharf, recs: &[Rec], sizes: &[usize]) {
    let producer = wharf.producer().ack(AckMode::Write).build();
    let mut rest = recs;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        let offsets: Vec<u64> = if let [one] = chunk {
            vec![producer.send(one.record()).unwrap().offset()]
        } else {
            producer
                .send_batch(chunk.iter().map(Rec::record))
                .unwrap()
                .iter()
                .map(wharf::SendReceipt::offset)
                .collect()
        };
        let want: Vec<u64> = chunk.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, want, "receipt offsets");
        rest = tail;
    }
}

/// Reads the partition from its start with reads of at most `max_records`; stops at the first
/// error and returns it with what was read before it.
fn read_all(wharf: &Wharf, max_records: usize) -> (Vec<Rec>, Option<wharf::Error>) {
    let reader = wharf.reader(TOPIC, 0).unwrap();
    let mut out = Vec::new();
    let mut at = reader.start_offset();
    let end = reader.end_offset();
    while at < end {
        match reader.read(at, ReadOptions::default().max_records(max_records)) {
            Ok(batch) => {
                assert!(!batch.is_empty(), "no progress at offset {at} (end {end})");
                out.extend(batch.iter().map(|m| Rec::of(&m)));
                at = batch.next_offset();
            }
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// Checks that `e` is `Corrupt` naming this partition (and a file in it); returns its offset.
fn corrupt_offset(e: &wharf::Error, dir: &Path, ctx: &str) -> u64 {
    as_corrupt(e, dir).unwrap_or_else(|problem| panic!("{ctx}: {problem}"))
}

/// The offset of `e` if it is `Corrupt` naming this partition and a file in it.
fn as_corrupt(e: &wharf::Error, dir: &Path) -> Result<u64, String> {
    match e.kind() {
        ErrorKind::Corrupt {
            topic,
            partition,
            offset,
            path,
            ..
        } => {
            if topic != TOPIC || *partition != 0 || !path.starts_with(partition_dir(dir)) {
                return Err(format!("the error names another partition or file: {e}"));
            }
            Ok(*offset)
        }
        other => Err(format!("expected ErrorKind::Corrupt, got {other:?}")),
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes[..4].try_into().unwrap())
}

fn le_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().unwrap())
}

/// A batch found in a `.log` file by the test's own reading of the documented format.
#[derive(Debug, Clone, Copy)]
struct BatchAt {
    position: usize,
    length: usize,
    base_offset: u64,
    records: u64,
}

impl BatchAt {
    fn end(&self) -> usize {
        self.position + self.length
    }

    fn next_offset(&self) -> u64 {
        self.base_offset + self.records
    }
}

/// The batches of an undamaged `.log` file, up to its end or its zeroed preallocated space.
/// Segment header: the base offset u64 at 16. Batch header (format 2): crc u32 at 0, length
/// u32 at 4, offset − segment base u32 at 8, then at 17 a varint of the record count − 1.
fn batches_in(log: &[u8]) -> Vec<BatchAt> {
    let segment_base = le_u64(&log[16..]);
    let mut out = Vec::new();
    let mut position = LOG_HEADER_LEN;
    while position + MIN_BATCH_LEN <= log.len() {
        let header = &log[position..];
        let length = le_u32(&header[4..]) as usize;
        if length == 0 {
            break;
        }
        assert!(
            length >= MIN_BATCH_LEN && position + length <= log.len(),
            "unexpected batch length {length} at {position}"
        );
        let (mut count, mut shift, mut at) = (0u64, 0, 17);
        loop {
            let byte = header[at];
            count |= u64::from(byte & 0x7f) << shift;
            at += 1;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        out.push(BatchAt {
            position,
            length,
            base_offset: segment_base + u64::from(le_u32(&header[8..])),
            records: count + 1,
        });
        position += length;
    }
    out
}

/// The partition's checkpoint, read from the valid slot with the larger sequence number
/// (`checkpoint` module docs).
#[derive(Debug, Clone, Copy)]
struct CheckpointAt {
    next_offset: u64,
    segment_base: u64,
    position: usize,
}

fn checkpoint(dir: &Path) -> CheckpointAt {
    let bytes = fs::read(partition_dir(dir).join("checkpoint")).unwrap();
    let (_, cp) = (0..2)
        .filter_map(|slot| {
            let s = bytes.get(32 + 64 * slot..96 + 64 * slot)?;
            (crc32c::crc32c(&s[..60]) == le_u32(&s[60..])).then(|| {
                let cp = CheckpointAt {
                    next_offset: le_u64(&s[8..]),
                    segment_base: le_u64(&s[16..]),
                    position: le_u64(&s[24..]) as usize,
                };
                (le_u64(s), cp)
            })
        })
        .max_by_key(|(sequence, _)| *sequence)
        .expect("a valid checkpoint slot");
    cp
}

/// A seeded PRNG (splitmix64).
struct Rng(u64);

impl Rng {
    /// Seeded from `CORRUPTION_SEED`, or from the clock; the seed is printed either way.
    fn for_test(test: &str) -> Rng {
        let seed = std::env::var("CORRUPTION_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("{test}: seed {seed} (replay with CORRUPTION_SEED={seed})");
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`; `hi > lo`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo) as u64) as usize
    }

    /// A byte different from `not`.
    fn byte_other_than(&mut self, not: u8) -> u8 {
        not ^ (1 + (self.next_u64() % 255) as u8)
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A torn last batch, at every byte position.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Tear {
    /// The file ends at the position.
    Truncate,
    /// Everything from the position on is zero.
    Zero,
    /// Garbage from the position to the end of the batch (or of the zeros checked after it).
    Garbage,
}

/// Zeroed preallocated bytes after the data that are damaged too.
const ZEROS_AFTER: usize = 48;

#[test]
fn torn_last_batch_at_every_byte_position() {
    let mut rng = Rng::for_test("torn_last_batch_at_every_byte_position");
    let base = scratch_dir();
    let recs = model(0..30, 60);
    let config = TopicConfig::default()
        .segment_bytes(16 * 1024)
        .index_interval_bytes(100)
        .max_message_bytes(1_024);
    let wharf = open(base.path()).unwrap();
    wharf.create_topic(TOPIC, config).unwrap();
    append(&wharf, &recs[..16], &[1, 3, 2, 4]);
    wharf.close().unwrap();
    // Batches after the checkpoint, the last one of four records; then a crash.
    let wharf = open(base.path()).unwrap();
    append(&wharf, &recs[16..26], &[2, 1, 3]);
    append(&wharf, &recs[26..], &[4]);
    wharf.simulate_crash();

    assert_eq!(segment_bases(base.path()), vec![0]);
    let log_path = segment_path(base.path(), 0, "log");
    let original = fs::read(&log_path).unwrap();
    let last = *batches_in(&original).last().unwrap();
    assert_eq!((last.base_offset, last.next_offset()), (26, 30));
    let (start, end) = (last.position, last.end());
    assert!(
        original.len() >= end + ZEROS_AFTER && original[end..end + ZEROS_AFTER] == [0; ZEROS_AFTER],
        "the crashed segment keeps zeroed preallocated space after its data"
    );
    let cp = checkpoint(base.path());
    assert_eq!(
        cp.next_offset, 16,
        "the checkpoint covers the first session only"
    );
    assert!(cp.position < start);

    let (mut cases, mut torn) = (0usize, 0usize);
    for tear in [Tear::Truncate, Tear::Zero, Tear::Garbage] {
        for position in start..end + ZEROS_AFTER {
            let mut damaged = original.clone();
            match tear {
                Tear::Truncate => damaged.truncate(position),
                Tear::Zero => damaged[position..].fill(0),
                Tear::Garbage => {
                    let garbage_end = if position < end {
                        end
                    } else {
                        end + ZEROS_AFTER
                    };
                    for b in &mut damaged[position..garbage_end] {
                        *b = rng.byte_other_than(*b);
                    }
                }
            }
            let intact = damaged.len() >= end && damaged[start..end] == original[start..end];
            let expected = if intact { &recs[..] } else { &recs[..26] };
            let case = fresh_copy(base.path());
            fs::write(segment_path(case.path(), 0, "log"), &damaged).unwrap();
            let ctx = format!("{tear:?} at byte {position} (batch {start}..{end})");
            check_recovers_prefix(case.path(), expected, cases % 2 == 0, &ctx);
            cases += 1;
            torn += usize::from(!intact);
        }
    }
    let positions = end + ZEROS_AFTER - start;
    println!(
        "torn last batch: {cases} cases ({} positions x 3 damages), {torn} torn, {} intact",
        positions,
        cases - torn
    );
    assert_eq!(cases, 3 * positions);
    // Truncation and garbage tear the batch at every position inside it; zeroing only where
    // a non-zero byte is left to clear.
    let zeroable = (start..end)
        .filter(|&p| original[p..end].iter().any(|&b| b != 0))
        .count();
    assert_eq!(torn, 2 * last.length + zeroable);
}

/// Opens `dir` (which must succeed), checks the partition is exactly `expected`, appends one
/// record (which must get the next offset), and checks it survives another reopen (after a
/// close, or after a simulated crash).
fn check_recovers_prefix(dir: &Path, expected: &[Rec], crash_after_append: bool, ctx: &str) {
    let wharf = open(dir).unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
    assert!(!wharf.recovery_stats().clean_shutdown, "{ctx}");
    let next_offset = expected.len() as u64;
    assert_eq!(
        wharf.reader(TOPIC, 0).unwrap().end_offset(),
        next_offset,
        "{ctx}: log end"
    );
    let (got, err) = read_all(&wharf, 2);
    assert!(err.is_none(), "{ctx}: read failed: {err:?}");
    assert_eq!(got, expected, "{ctx}: recovered records");

    let mut next = rec(next_offset, 30);
    next.payload = format!("appended after recovery at {next_offset}").into_bytes();
    let receipt = wharf
        .producer()
        .ack(AckMode::Write)
        .build()
        .send(next.record())
        .unwrap_or_else(|e| panic!("{ctx}: append after recovery: {e}"));
    assert_eq!(
        receipt.offset(),
        next_offset,
        "{ctx}: offset of the next append"
    );
    if crash_after_append {
        wharf.simulate_crash();
    } else {
        wharf.close().unwrap();
    }
    let wharf = open(dir).unwrap_or_else(|e| panic!("{ctx}: second open failed: {e}"));
    let (got, err) = read_all(&wharf, 3);
    assert!(err.is_none(), "{ctx}: read after the second open: {err:?}");
    assert_eq!(
        got.len(),
        expected.len() + 1,
        "{ctx}: after the second open"
    );
    assert_eq!(
        &got[..expected.len()],
        expected,
        "{ctx}: after the second open"
    );
    assert_eq!(got[expected.len()], next, "{ctx}: the appended record");
    wharf.simulate_crash();
}

/// Scenario 13: a valid batch left in the space after the end (a stale copy of an earlier
/// batch, or the last batch written twice) does not continue the log.
#[test]
fn stale_valid_batches_after_the_end_are_not_replayed() {
    let base = scratch_dir();
    let recs = model(0..12, 50);
    let wharf = open(base.path()).unwrap();
    wharf.create_topic(TOPIC, TopicConfig::default()).unwrap();
    append(&wharf, &recs[..5], &[2, 3]);
    wharf.close().unwrap();
    let wharf = open(base.path()).unwrap();
    append(&wharf, &recs[5..], &[3, 1, 3]);
    wharf.simulate_crash();

    let original = fs::read(segment_path(base.path(), 0, "log")).unwrap();
    let batches = batches_in(&original);
    let last = *batches.last().unwrap();
    for (i, stale) in batches.iter().enumerate() {
        let mut damaged = original.clone();
        let bytes = &original[stale.position..stale.end()];
        let stale_end = last.end() + bytes.len();
        if damaged.len() < stale_end {
            damaged.resize(stale_end, 0);
        }
        damaged[last.end()..stale_end].copy_from_slice(bytes);
        let case = fresh_copy(base.path());
        fs::write(segment_path(case.path(), 0, "log"), &damaged).unwrap();
        let ctx = format!(
            "batch {i} (offset {}) copied after the end",
            stale.base_offset
        );
        check_recovers_prefix(case.path(), &recs, i % 2 == 0, &ctx);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Every single-bit flip of a small segment.
// ---------------------------------------------------------------------------------------------

/// What a damaged copy must give.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Detected as `Corrupt` at open or at read; the first `n` records read back intact.
    Detected(u64),
    /// The open cuts a torn tail: the log is exactly the first `n` records.
    Prefix(u64),
}

/// How a damaged copy was handled.
#[derive(Debug, Clone, Copy, Default)]
struct FlipCounts {
    at_open: usize,
    at_read: usize,
    cut_as_torn_tail: usize,
}

impl FlipCounts {
    fn total(&self) -> usize {
        self.at_open + self.at_read + self.cut_as_torn_tail
    }
}

/// Opens a damaged copy and checks it against `expect`.
fn check_damaged(dir: &Path, recs: &[Rec], expect: Expect, counts: &mut FlipCounts, ctx: &str) {
    let wharf = match open(dir) {
        Ok(wharf) => wharf,
        Err(e) => {
            assert!(
                matches!(expect, Expect::Detected(_)),
                "{ctx}: a torn tail must be cut, but the open failed: {e}"
            );
            if !matches!(e.kind(), ErrorKind::CorruptFile { .. }) {
                corrupt_offset(&e, dir, ctx);
            }
            counts.at_open += 1;
            return;
        }
    };
    let (got, err) = read_all(&wharf, 1);
    assert_eq!(got, recs[..got.len()], "{ctx}: a record read back differs");
    // One large read must never return damaged data either.
    if let Ok(batch) = wharf
        .reader(TOPIC, 0)
        .unwrap()
        .read(0, ReadOptions::default())
    {
        let all: Vec<Rec> = batch.iter().map(|m| Rec::of(&m)).collect();
        assert_eq!(all, recs[..all.len()], "{ctx}: a record read back differs");
    }
    match (expect, err) {
        (Expect::Detected(good), Some(e)) => {
            let offset = corrupt_offset(&e, dir, ctx);
            assert!(
                offset <= good,
                "{ctx}: error at offset {offset}, damage at {good}"
            );
            assert_eq!(got.len() as u64, good, "{ctx}: records before the damage");
            counts.at_read += 1;
        }
        (Expect::Detected(good), None) => panic!(
            "{ctx}: damage not detected: {} records read back, damage in the batch at {good}",
            got.len()
        ),
        (Expect::Prefix(n), None) => {
            assert_eq!(got.len() as u64, n, "{ctx}: the recovered prefix");
            assert_eq!(wharf.reader(TOPIC, 0).unwrap().end_offset(), n, "{ctx}");
            counts.cut_as_torn_tail += 1;
        }
        (Expect::Prefix(n), Some(e)) => {
            panic!("{ctx}: a torn tail must be cut to {n} records, but reading failed: {e}")
        }
    }
    wharf.simulate_crash();
}

fn flipped(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

/// A small segment: four batches, closed cleanly so the `.log` is trimmed to its data.
#[test]
fn every_bit_flip_of_a_closed_segment_is_detected() {
    let base = scratch_dir();
    let recs = model(0..6, 16);
    let wharf = open(base.path()).unwrap();
    let config = TopicConfig::default()
        .segment_bytes(4_096)
        .index_interval_bytes(64)
        .max_message_bytes(1_024);
    wharf.create_topic(TOPIC, config).unwrap();
    append(&wharf, &recs, &[1, 2, 1, 2]);
    wharf.close().unwrap();
    let original = fs::read(segment_path(base.path(), 0, "log")).unwrap();
    let batches = batches_in(&original);
    assert_eq!(batches.len(), 4);
    assert_eq!(
        batches[3].end(),
        original.len(),
        "a closed segment is trimmed"
    );

    let mut counts = FlipCounts::default();
    for bit in 0..original.len() * 8 {
        let byte = bit / 8;
        let damaged_batch = batches
            .iter()
            .find(|b| (b.position..b.end()).contains(&byte));
        let good = damaged_batch.map_or(0, |b| b.base_offset);
        let case = fresh_copy(base.path());
        fs::write(segment_path(case.path(), 0, "log"), flipped(&original, bit)).unwrap();
        let ctx = format!("closed segment, bit {bit} (byte {byte})");
        check_damaged(
            case.path(),
            &recs,
            Expect::Detected(good),
            &mut counts,
            &ctx,
        );
    }
    println!(
        "bit flips of a {} B closed segment: {} cases, {} detected at open, {} at read",
        original.len(),
        counts.total(),
        counts.at_open,
        counts.at_read
    );
    assert_eq!(counts.total(), original.len() * 8);
    assert_eq!(counts.at_read + counts.at_open, original.len() * 8);
}

/// A segment after a crash: the first batches are below the checkpoint (flips there are
/// `Corrupt`), the later ones after it (flips there cut the log before the damaged batch), and
/// the zeroed space after the data is flipped too (cut: the whole log stays).
#[test]
fn every_bit_flip_of_a_crashed_segment_is_detected_or_cut() {
    let base = scratch_dir();
    let recs = model(0..8, 16);
    let config = TopicConfig::default()
        .segment_bytes(4_096)
        .index_interval_bytes(64)
        .max_message_bytes(1_024);
    let wharf = open(base.path()).unwrap();
    wharf.create_topic(TOPIC, config).unwrap();
    append(&wharf, &recs[..4], &[2, 1, 1]);
    wharf.close().unwrap();
    let wharf = open(base.path()).unwrap();
    append(&wharf, &recs[4..], &[1, 2, 1]);
    wharf.simulate_crash();

    let original = fs::read(segment_path(base.path(), 0, "log")).unwrap();
    let batches = batches_in(&original);
    assert_eq!(batches.len(), 6);
    let cp = checkpoint(base.path());
    assert_eq!((cp.next_offset, cp.position), (4, batches[3].position));
    let data_end = batches[5].end();
    // The file grows by allocation steps, so the zeros after the data may be fewer.
    let flipped_len = (data_end + ZEROS_AFTER).min(original.len());
    assert!(original[data_end..flipped_len].iter().all(|&b| b == 0));

    let mut counts = FlipCounts::default();
    let mut below_checkpoint = 0;
    for bit in 0..flipped_len * 8 {
        let byte = bit / 8;
        let damaged_batch = batches
            .iter()
            .find(|b| (b.position..b.end()).contains(&byte));
        let expect = match damaged_batch {
            None if byte < LOG_HEADER_LEN => Expect::Detected(0),
            None => Expect::Prefix(recs.len() as u64),
            Some(b) if b.end() <= cp.position => Expect::Detected(b.base_offset),
            Some(b) => Expect::Prefix(b.base_offset),
        };
        below_checkpoint += usize::from(matches!(expect, Expect::Detected(_)));
        let case = fresh_copy(base.path());
        fs::write(segment_path(case.path(), 0, "log"), flipped(&original, bit)).unwrap();
        let ctx = format!(
            "crashed segment, bit {bit} (byte {byte}, checkpoint at {})",
            cp.position
        );
        check_damaged(case.path(), &recs, expect, &mut counts, &ctx);
    }
    println!(
        "bit flips of a crashed segment ({data_end} B of data + {} B of zeros, checkpoint at \
         byte {}): {} cases, {} detected at open, {} at read, {} cut as a torn tail",
        flipped_len - data_end,
        cp.position,
        counts.total(),
        counts.at_open,
        counts.at_read,
        counts.cut_as_torn_tail
    );
    assert_eq!(counts.total(), flipped_len * 8);
    assert_eq!(counts.at_open + counts.at_read, below_checkpoint);
    assert_eq!(below_checkpoint, cp.position * 8);
}

// ---------------------------------------------------------------------------------------------
// 3. Index files are only hints.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    Clean,
    Crash,
}

/// A partition of four 4 KiB segments with sparse indexes, closed cleanly or (after more
/// appends into the active segment, past the checkpoint) crashed.
fn indexed_partition(shutdown: Shutdown) -> (TempDir, Vec<Rec>) {
    let dir = scratch_dir();
    let config = TopicConfig::default()
        .segment_bytes(4_096)
        .index_interval_bytes(100)
        .max_message_bytes(1_024);
    let wharf = open(dir.path()).unwrap();
    wharf.create_topic(TOPIC, config).unwrap();
    let mut recs = Vec::new();
    let mut after_fourth = 0;
    for size in [1, 3, 2, 4, 1, 2].into_iter().cycle() {
        let chunk = model(recs.len() as u64..(recs.len() + size) as u64, 120);
        append(&wharf, &chunk, &[size]);
        recs.extend(chunk);
        if segment_bases(dir.path()).len() >= 4 {
            after_fourth += 1;
            if after_fourth == 4 {
                break;
            }
        }
    }
    wharf.close().unwrap();
    if shutdown == Shutdown::Crash {
        let wharf = open(dir.path()).unwrap();
        let chunk = model(recs.len() as u64..recs.len() as u64 + 9, 40);
        append(&wharf, &chunk, &[2, 1, 3, 3]);
        recs.extend(chunk);
        wharf.simulate_crash();
        assert_eq!(
            segment_bases(dir.path()).len(),
            4,
            "no roll after the checkpoint"
        );
        let cp = checkpoint(dir.path());
        assert_eq!(cp.segment_base, *segment_bases(dir.path()).last().unwrap());
        assert!(cp.next_offset < recs.len() as u64 - 5);
    }
    (dir, recs)
}

/// Every read result the tests compare: a read from every offset with small `max_records`, and
/// `offset_for_timestamp` for each probe.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    reads: Vec<Vec<Rec>>,
    by_time: Vec<Option<u64>>,
}

fn probes(recs: &[Rec]) -> Vec<i64> {
    let mut out: Vec<i64> = recs
        .iter()
        .flat_map(|r| {
            [r.timestamp, r.timestamp + 1]
                .into_iter()
                .take(1 + r.offset as usize % 2)
        })
        .chain([i64::MIN, 0, BASE_TIMESTAMP - 100, i64::MAX])
        .collect();
    let max = recs.iter().map(|r| r.timestamp).max().unwrap();
    out.push(max + 100);
    out.sort_unstable();
    out.dedup();
    out
}

fn observe(wharf: &Wharf, probes: &[i64]) -> wharf::Result<Observed> {
    let reader = wharf.reader(TOPIC, 0)?;
    let mut reads = Vec::new();
    for offset in reader.start_offset()..=reader.end_offset() {
        let batch = reader.read(offset, ReadOptions::default().max_records(3))?;
        reads.push(batch.iter().map(|m| Rec::of(&m)).collect());
    }
    let by_time = probes
        .iter()
        .map(|&t| reader.offset_for_timestamp(Timestamp::from_millis(t)))
        .collect::<wharf::Result<_>>()?;
    Ok(Observed { reads, by_time })
}

/// Checks `observed` against the records written: each read starts at its offset and returns a
/// contiguous run of at most three records; each timestamp maps to the first record at or after
/// it.
fn check_against_model(observed: &Observed, recs: &[Rec], probes: &[i64]) {
    assert_eq!(observed.reads.len(), recs.len() + 1);
    for (offset, read) in observed.reads.iter().enumerate() {
        let n = read.len();
        if offset == recs.len() {
            assert_eq!(n, 0, "a read at the end is empty");
        } else {
            assert!((1..=3).contains(&n), "read at {offset}: {n} records");
            assert_eq!(read[..], recs[offset..offset + n], "read at {offset}");
        }
    }
    for (probe, found) in probes.iter().zip(&observed.by_time) {
        let want = recs
            .iter()
            .find(|r| r.timestamp >= *probe)
            .map(|r| r.offset);
        assert_eq!(*found, want, "offset_for_timestamp({probe})");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexFile {
    Offsets,
    Times,
}

impl IndexFile {
    fn ext(self) -> &'static str {
        match self {
            IndexFile::Offsets => "index",
            IndexFile::Times => "timeindex",
        }
    }

    fn header_len(self) -> usize {
        match self {
            IndexFile::Offsets => INDEX_HEADER_LEN,
            IndexFile::Times => TIME_HEADER_LEN,
        }
    }

    fn entry_len(self) -> usize {
        match self {
            IndexFile::Offsets => INDEX_ENTRY_LEN,
            IndexFile::Times => TIME_ENTRY_LEN,
        }
    }
}

/// One way to damage the index files of one segment.
#[derive(Debug, Clone)]
enum IndexDamage {
    Delete(Vec<IndexFile>),
    Truncate(IndexFile, usize),
    /// Bytes set to new values: `(position, value)`.
    Garble(IndexFile, Vec<(usize, u8)>),
    ZeroExtend(IndexFile, usize),
    /// The files of the segment at this base offset copied over this segment's.
    CopyFrom(u64, Vec<IndexFile>),
}

impl IndexDamage {
    fn apply(&self, dir: &Path, base: u64) {
        let path = |file: IndexFile| segment_path(dir, base, file.ext());
        match self {
            IndexDamage::Delete(files) => {
                for &file in files {
                    fs::remove_file(path(file)).unwrap();
                }
            }
            IndexDamage::Truncate(file, len) => {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(path(*file))
                    .unwrap();
                f.set_len(*len as u64).unwrap();
            }
            IndexDamage::Garble(file, bytes) => {
                let mut data = fs::read(path(*file)).unwrap();
                for &(at, value) in bytes {
                    data[at] = value;
                }
                fs::write(path(*file), data).unwrap();
            }
            IndexDamage::ZeroExtend(file, by) => {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(path(*file))
                    .unwrap();
                let len = f.metadata().unwrap().len();
                f.set_len(len + *by as u64).unwrap();
            }
            IndexDamage::CopyFrom(source, files) => {
                for &file in files {
                    fs::copy(segment_path(dir, *source, file.ext()), path(file)).unwrap();
                }
            }
        }
    }
}

/// Bytes of the entries in use (before the first all-zero entry).
fn used_entries_len(data: &[u8], file: IndexFile) -> usize {
    let entries = data.get(file.header_len()..).unwrap_or_default();
    entries
        .chunks_exact(file.entry_len())
        .take_while(|e| e.iter().any(|&b| b != 0))
        .count()
        * file.entry_len()
}

/// The damage cases for the index files of the segment at `base`; `other` is another segment.
fn index_damages(dir: &Path, base: u64, other: u64, rng: &mut Rng) -> Vec<IndexDamage> {
    use IndexDamage::{CopyFrom, Delete, Garble, Truncate, ZeroExtend};
    use IndexFile::{Offsets, Times};
    let mut out = vec![
        Delete(vec![Offsets]),
        Delete(vec![Times]),
        Delete(vec![Offsets, Times]),
        CopyFrom(other, vec![Offsets, Times]),
        CopyFrom(other, vec![Offsets]),
        CopyFrom(other, vec![Times]),
    ];
    for file in [Offsets, Times] {
        let data = fs::read(segment_path(dir, base, file.ext())).unwrap();
        let (header, entry, len) = (file.header_len(), file.entry_len(), data.len());
        let used = used_entries_len(&data, file);
        assert!(used >= 2 * entry, "{file:?} of segment {base} has entries");
        let entries = used / entry;
        // Lengths: empty, inside the header, the header alone, a whole number of entries, a
        // partial entry, and one byte short.
        let mut lengths = vec![
            0,
            rng.range(1, header),
            header,
            header + entry * rng.range(1, entries),
            header + entry * rng.range(0, entries) + rng.range(1, entry),
            len - 1,
        ];
        lengths.sort_unstable();
        lengths.dedup();
        out.extend(lengths.into_iter().map(|l| Truncate(file, l)));
        for by in [entry, 3, 4_096] {
            out.push(ZeroExtend(file, by));
        }
        let garble = |rng: &mut Rng, lo: usize, hi: usize, n: usize| {
            let bytes = (0..n)
                .map(|_| {
                    let at = rng.range(lo, hi);
                    (at, rng.byte_other_than(data[at]))
                })
                .collect();
            Garble(file, bytes)
        };
        for n in [1, 1, 2, 4] {
            out.push(garble(rng, 0, header, n));
            out.push(garble(rng, header, header + used, n));
            out.push(garble(rng, 0, len, n));
        }
        // Offset index entries carry no checksum of their own (only a complete header has
        // one over all of them): every byte of every entry in use, each set to another value.
        // Time index entries have their own CRC: one byte of each field of each entry.
        let fields: &[(usize, usize)] = match file {
            Offsets => &[
                (0, 1),
                (1, 2),
                (2, 3),
                (3, 4),
                (4, 5),
                (5, 6),
                (6, 7),
                (7, 8),
            ],
            Times => &[(0, 8), (8, 12), (12, 16)],
        };
        for i in 0..entries {
            for &(lo, hi) in fields {
                let at = header + i * entry;
                out.push(garble(rng, at + lo, at + hi, 1));
            }
        }
    }
    out
}

/// An undamaged partition for the index cases, and what it reads back.
struct Prepared {
    shutdown: Shutdown,
    base: TempDir,
    bases: Vec<u64>,
    probes: Vec<i64>,
    reference: Observed,
}

impl Prepared {
    fn new(shutdown: Shutdown) -> Prepared {
        let (base, recs) = indexed_partition(shutdown);
        let probes = probes(&recs);
        let reference = {
            let copy = fresh_copy(base.path());
            let wharf = open(copy.path()).unwrap();
            let observed = observe(&wharf, &probes).unwrap();
            wharf.close().unwrap();
            observed
        };
        check_against_model(&reference, &recs, &probes);
        let bases = segment_bases(base.path());
        Prepared {
            shutdown,
            base,
            bases,
            probes,
            reference,
        }
    }

    fn active(&self) -> u64 {
        *self.bases.last().unwrap()
    }

    /// Applies `damage` to the index files of segment `target` in a fresh copy, reopens it
    /// and compares every read with the undamaged copy; a difference is pushed to `failures`.
    fn check(&self, target: u64, damage: &IndexDamage, failures: &mut Vec<String>) {
        let case = fresh_copy(self.base.path());
        damage.apply(case.path(), target);
        let outcome = open(case.path())
            .map_err(|e| format!("open failed: {e}"))
            .and_then(|wharf| {
                let observed = observe(&wharf, &self.probes);
                wharf.simulate_crash();
                observed.map_err(|e| format!("read failed: {e}"))
            })
            .and_then(|observed| {
                let leftovers = temporary_files(case.path());
                if leftovers.is_empty() {
                    Ok(observed)
                } else {
                    Err(format!(
                        "temporary files left after the open: {leftovers:?}"
                    ))
                }
            })
            .and_then(|observed| first_difference(&observed, &self.reference));
        if let Err(failure) = outcome {
            failures.push(format!(
                "{:?}, segment {target}: {damage:?}: {failure}",
                self.shutdown
            ));
        }
    }
}

fn assert_no_failures(failures: &[String], cases: usize) {
    assert!(
        failures.is_empty(),
        "{} of {cases} index damage cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn indexes_are_only_hints(shutdown: Shutdown, rng: &mut Rng) -> usize {
    let prepared = Prepared::new(shutdown);
    let bases = &prepared.bases;
    let active = prepared.active();
    let mut cases = 0;
    let mut failures = Vec::new();
    for (target, other) in [(bases[1], bases[0]), (bases[2], active), (active, bases[1])] {
        for damage in index_damages(prepared.base.path(), target, other, rng) {
            prepared.check(target, &damage, &mut failures);
            cases += 1;
        }
    }
    cases += orphan_indexes_are_removed(&prepared);
    assert_no_failures(&failures, cases);
    cases
}

/// Scenario 4b: every single-bit flip of the header and the entries in use of the active
/// segment's offset index after a crash, where no summary checksum covers the entries.
#[test]
fn every_bit_flip_of_an_unchecked_offset_index_changes_no_read() {
    let prepared = Prepared::new(Shutdown::Crash);
    let active = prepared.active();
    let data = fs::read(segment_path(prepared.base.path(), active, "index")).unwrap();
    let len = INDEX_HEADER_LEN + used_entries_len(&data, IndexFile::Offsets);
    let mut failures = Vec::new();
    for bit in 0..len * 8 {
        let at = bit / 8;
        let damage = IndexDamage::Garble(IndexFile::Offsets, vec![(at, data[at] ^ 1 << (bit % 8))]);
        prepared.check(active, &damage, &mut failures);
    }
    println!(
        "bit flips of a {len} B offset index after a crash: {} cases, {} failed",
        len * 8,
        failures.len()
    );
    assert_no_failures(&failures, len * 8);
}

/// Files of the partition directory whose name ends in `.tmp`.
fn temporary_files(dir: &Path) -> Vec<String> {
    fs::read_dir(partition_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| {
            Path::new(name)
                .extension()
                .is_some_and(|ext| ext.eq_ignore_ascii_case("tmp"))
        })
        .collect()
}

/// `Ok` if `observed` equals `reference`, else where they first differ.
fn first_difference(observed: &Observed, reference: &Observed) -> Result<(), String> {
    let reads = observed.reads.iter().zip(&reference.reads).enumerate();
    if let Some((offset, (got, want))) = reads.clone().find(|(_, (g, w))| g != w) {
        return Err(format!("read at {offset} gave {got:?}, undamaged {want:?}"));
    }
    if observed.reads.len() != reference.reads.len() {
        return Err(format!(
            "{} offsets readable, undamaged {}",
            observed.reads.len(),
            reference.reads.len()
        ));
    }
    let times = observed.by_time.iter().zip(&reference.by_time).enumerate();
    if let Some((i, (got, want))) = times.clone().find(|(_, (g, w))| g != w) {
        return Err(format!(
            "offset_for_timestamp probe {i} gave {got:?}, undamaged {want:?}"
        ));
    }
    Ok(())
}

/// Index files without a log (and a leftover temporary file) are removed at open.
fn orphan_indexes_are_removed(prepared: &Prepared) -> usize {
    let (bases, shutdown) = (&prepared.bases, prepared.shutdown);
    let case = fresh_copy(prepared.base.path());
    let mut orphans = Vec::new();
    for orphan_base in [bases[1] + 1, bases[3] + 1_000_000] {
        for ext in ["index", "timeindex"] {
            let path = segment_path(case.path(), orphan_base, ext);
            fs::copy(segment_path(case.path(), bases[1], ext), &path).unwrap();
            orphans.push(path);
        }
    }
    let tmp = partition_dir(case.path()).join(format!("{:020}.index.tmp", bases[0]));
    fs::write(&tmp, b"half-written").unwrap();
    orphans.push(tmp);
    let wharf = open(case.path()).unwrap();
    for path in &orphans {
        assert!(
            !path.exists(),
            "{shutdown:?}: {} survived the open",
            path.display()
        );
    }
    let observed = observe(&wharf, &prepared.probes).unwrap();
    assert_eq!(observed, prepared.reference, "{shutdown:?}: orphans");
    wharf.simulate_crash();
    1
}

#[test]
fn damaged_index_files_after_a_clean_close_change_no_read() {
    let mut rng = Rng::for_test("damaged_index_files_after_a_clean_close_change_no_read");
    let cases = indexes_are_only_hints(Shutdown::Clean, &mut rng);
    println!("index damage after a clean close: {cases} cases");
}

#[test]
fn damaged_index_files_after_a_crash_change_no_read() {
    let mut rng = Rng::for_test("damaged_index_files_after_a_crash_change_no_read");
    let cases = indexes_are_only_hints(Shutdown::Crash, &mut rng);
    println!("index damage after a crash: {cases} cases");
}

// ---------------------------------------------------------------------------------------------
// 4. Data missing below the checkpoint is reported, not cut.
// ---------------------------------------------------------------------------------------------

/// Where missing durable data was reported, and the offset the error named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reported {
    AtOpen(u64),
    AtRead(u64),
}

impl Reported {
    fn offset(self) -> u64 {
        match self {
            Reported::AtOpen(offset) | Reported::AtRead(offset) => offset,
        }
    }
}

/// Opens `dir`, from which durable records were removed: the open, or a read from the start
/// through the damage, must fail with `Corrupt` for this partition; every record returned
/// before that must be intact, and the log must not just be shorter.
fn check_loss_reported(dir: &Path, recs: &[Rec]) -> Result<Reported, String> {
    let wharf = match open(dir) {
        Err(e) => return as_corrupt(&e, dir).map(Reported::AtOpen),
        Ok(wharf) => wharf,
    };
    let reader = wharf.reader(TOPIC, 0).unwrap();
    let (start, end) = (reader.start_offset(), reader.end_offset());
    let (got, err) = read_all(&wharf, 3);
    wharf.simulate_crash();
    if got[..] != recs[start as usize..start as usize + got.len()] {
        return Err("a record read back differs".to_string());
    }
    let Some(e) = err else {
        return Err(format!(
            "durable data lost without an error: the log now holds offsets {start}..{end} of \
             0..{}, all read back without an error",
            recs.len()
        ));
    };
    as_corrupt(&e, dir).map(Reported::AtRead)
}

/// A read from any offset of a deleted segment fails with `Corrupt` (it never returns later
/// records in their place).
fn check_missing_range_reads(
    dir: &Path,
    missing: std::ops::Range<u64>,
    recs: &[Rec],
) -> Result<(), String> {
    let Ok(wharf) = open(dir) else {
        return Ok(());
    };
    let reader = wharf.reader(TOPIC, 0).unwrap();
    let mut result = Ok(());
    // The intact records before the missing range still read back, byte for byte.
    for rec in recs.iter().filter(|r| r.offset < missing.start) {
        let read = reader.read(rec.offset, ReadOptions::default().max_records(1));
        let same = read.as_ref().ok().and_then(|b| b.get(0)).is_some_and(|m| {
            m.offset() == rec.offset
                && m.payload() == &rec.payload[..]
                && m.key() == rec.key.as_deref()
        });
        if !same {
            result = Err(format!(
                "the intact record at offset {} before the missing range does not read back: {:?}",
                rec.offset,
                read.map(|b| b.len())
            ));
            break;
        }
    }
    if result.is_err() {
        wharf.simulate_crash();
        return result;
    }
    for offset in missing {
        let outcome = match reader.read(offset, ReadOptions::default().max_records(3)) {
            Err(e) => as_corrupt(&e, dir).map(|_| ()),
            Ok(batch) => Err(format!(
                "returned {} records from {:?}",
                batch.len(),
                batch.get(0).map(|m| m.offset())
            )),
        };
        if let Err(problem) = outcome {
            result = Err(format!("read at the missing offset {offset}: {problem}"));
            break;
        }
    }
    wharf.simulate_crash();
    result
}

/// A damage to a data directory: files cut or removed.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// The `.log` of the segment at this base is cut to this length.
    TruncateLog(u64, usize),
    /// The segment's three files are removed.
    DeleteSegment(u64),
    /// Only the segment's `.log` is removed.
    DeleteLog(u64),
}

impl Loss {
    /// The first offset this loss removes from the undamaged directory `dir`.
    fn first_missing(self, dir: &Path) -> u64 {
        match self {
            Loss::TruncateLog(base, len) => {
                let log = fs::read(segment_path(dir, base, "log")).unwrap();
                batches_in(&log)
                    .iter()
                    .find(|b| b.end() > len || len < LOG_HEADER_LEN)
                    .unwrap()
                    .base_offset
            }
            Loss::DeleteSegment(base) | Loss::DeleteLog(base) => base,
        }
    }

    fn apply(self, dir: &Path) {
        match self {
            Loss::TruncateLog(base, len) => {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(segment_path(dir, base, "log"))
                    .unwrap();
                f.set_len(len as u64).unwrap();
            }
            Loss::DeleteSegment(base) => {
                for ext in ["log", "index", "timeindex"] {
                    fs::remove_file(segment_path(dir, base, ext)).unwrap();
                }
            }
            Loss::DeleteLog(base) => fs::remove_file(segment_path(dir, base, "log")).unwrap(),
        }
    }
}

/// Cuts inside a segment's durable data: mid-batch, at a batch boundary, after the header,
/// inside the header, and to nothing.
fn cuts(dir: &Path, base: u64, durable_end: usize) -> Vec<Loss> {
    let log = fs::read(segment_path(dir, base, "log")).unwrap();
    let batches: Vec<BatchAt> = batches_in(&log)
        .into_iter()
        .filter(|b| b.end() <= durable_end)
        .collect();
    assert!(batches.len() >= 3, "segment {base} has durable batches");
    let mid = batches[batches.len() / 2];
    let last = batches[batches.len() - 1];
    [
        last.position + last.length / 2,
        last.position,
        mid.position + 7,
        mid.position,
        LOG_HEADER_LEN,
        LOG_HEADER_LEN / 2,
        0,
    ]
    .into_iter()
    .map(|len| Loss::TruncateLog(base, len))
    .collect()
}

#[test]
fn truncation_below_the_checkpoint_is_reported() {
    let mut cases = 0;
    let mut problems = Vec::new();
    for shutdown in [Shutdown::Clean, Shutdown::Crash] {
        let (base, recs) = indexed_partition(shutdown);
        let bases = segment_bases(base.path());
        let active = bases[3];
        let cp = checkpoint(base.path());
        let mut losses = cuts(base.path(), active, cp.position);
        losses.extend(cuts(base.path(), bases[1], usize::MAX));
        losses.extend([
            Loss::DeleteSegment(bases[1]),
            Loss::DeleteSegment(bases[2]),
            Loss::DeleteLog(bases[1]),
            Loss::DeleteLog(bases[2]),
            Loss::DeleteSegment(active),
            // The first segment: the checkpoint says nothing was deleted by retention.
            Loss::DeleteSegment(bases[0]),
        ]);
        for loss in losses {
            cases += 1;
            let case = fresh_copy(base.path());
            loss.apply(case.path());
            let ctx = format!("{shutdown:?}: {loss:?}");
            let first_missing = loss.first_missing(base.path());
            match check_loss_reported(case.path(), &recs) {
                Ok(reported) => {
                    println!("{ctx}: reported {reported:?}, first missing offset {first_missing}");
                    // `ErrorKind::Corrupt::offset` is documented as the first offset that
                    // could not be read: not one past the first missing offset.
                    if reported.offset() > first_missing {
                        problems.push(format!(
                            "{ctx}: the error names offset {}, but offsets from {first_missing} \
                             on are missing",
                            reported.offset()
                        ));
                    }
                }
                Err(problem) => problems.push(format!("{ctx}: {problem}")),
            }
            if let Loss::DeleteSegment(b) | Loss::DeleteLog(b) = loss {
                if let Some(&next) = bases.iter().find(|&&n| n > b) {
                    if let Err(problem) = check_missing_range_reads(case.path(), b..next, &recs) {
                        problems.push(format!("{ctx}: {problem}"));
                    }
                }
            }
        }
    }
    assert_eq!(cases, 2 * (7 + 7 + 6));
    assert!(
        problems.is_empty(),
        "{} problems in {cases} cases:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Damage after the checkpoint: a torn tail, or damage in data known durable.
// ---------------------------------------------------------------------------------------------

/// Appends `recs` one `send` each at `ack`.
fn send_each(wharf: &Wharf, recs: &[Rec], ack: AckMode) {
    let producer = wharf.producer().ack(ack).build();
    for r in recs {
        assert_eq!(producer.send(r.record()).unwrap().offset(), r.offset);
    }
}

/// Records sent one by one with `Fsync` and then a crash: the checkpoint still lies at the
/// start (the flusher's interval is an hour here), but each batch after the first says the
/// ones before it were synced. Damage to any batch but the last is damage in acknowledged
/// data: the open reports it, naming its offset, and changes nothing; the point-in-time
/// recovery mode then cuts the log before it and counts what it dropped.
#[test]
fn damage_followed_by_batches_written_after_it_was_synced_is_reported() {
    let base = scratch_dir();
    let recs = model(0..6, 40);
    let wharf = open(base.path()).unwrap();
    wharf.create_topic(TOPIC, TopicConfig::default()).unwrap();
    send_each(&wharf, &recs, AckMode::Fsync);
    wharf.simulate_crash();
    assert_eq!(
        checkpoint(base.path()).next_offset,
        0,
        "nothing checkpointed"
    );
    let original = fs::read(segment_path(base.path(), 0, "log")).unwrap();
    let batches = batches_in(&original);
    assert_eq!(batches.len(), 6);
    for damaged in &batches[..5] {
        // A bit of the batch's records (its last byte: a record takes at least two).
        let at = damaged.position + damaged.length - 1;
        let case = fresh_copy(base.path());
        fs::write(
            segment_path(case.path(), 0, "log"),
            flipped(&original, at * 8 + 3),
        )
        .unwrap();
        let before = fs::read(segment_path(case.path(), 0, "log")).unwrap();
        let ctx = format!("batch at offset {}", damaged.base_offset);
        let err = open(case.path()).expect_err("damage in acknowledged data is reported");
        assert_eq!(
            corrupt_offset(&err, case.path(), &ctx),
            damaged.base_offset,
            "{ctx}"
        );
        assert_eq!(
            fs::read(segment_path(case.path(), 0, "log")).unwrap(),
            before,
            "{ctx}: a failed open changes nothing"
        );
        let wharf = Wharf::builder(case.path())
            .flush_interval(Duration::from_secs(3_600))
            .recovery_mode(RecoveryMode::PointInTime)
            .open()
            .unwrap_or_else(|e| panic!("{ctx}: the point-in-time open: {e}"));
        let stats = wharf.recovery_stats();
        assert_eq!(
            stats.dropped_after_damage,
            recs.len() as u64 - damaged.base_offset,
            "{ctx}: the records from the damage on are counted"
        );
        let (got, err) = read_all(&wharf, 100);
        assert!(err.is_none(), "{ctx}: {err:?}");
        assert_eq!(
            got,
            recs[..damaged.base_offset as usize],
            "{ctx}: the prefix"
        );
        wharf.close().unwrap();
        let wharf = open(case.path()).expect("a strict open after the cut");
        assert_eq!(
            read_all(&wharf, 100).0,
            recs[..damaged.base_offset as usize]
        );
        wharf.close().unwrap();
    }
}

/// Records sent with `Write`, never synced, then a power loss that kept a later page and lost
/// an earlier one (zeroed, or torn to garbage): valid batches after the hole, but none says
/// the hole was durable. That is a torn tail: cut at the hole, in the strict mode too.
#[test]
fn a_hole_in_unsynced_data_before_valid_batches_is_a_torn_tail() {
    let base = scratch_dir();
    let recs = model(0..6, 40);
    let wharf = open(base.path()).unwrap();
    wharf.create_topic(TOPIC, TopicConfig::default()).unwrap();
    send_each(&wharf, &recs, AckMode::Write);
    wharf.simulate_crash();
    let original = fs::read(segment_path(base.path(), 0, "log")).unwrap();
    let batches = batches_in(&original);
    for hole in &batches[..5] {
        for fill in [0u8, 0xa5] {
            let mut damaged = original.clone();
            damaged[hole.position..hole.end()].fill(fill);
            let case = fresh_copy(base.path());
            fs::write(segment_path(case.path(), 0, "log"), &damaged).unwrap();
            let ctx = format!("hole at offset {} filled with {fill:#x}", hole.base_offset);
            let wharf = open(case.path()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(wharf.recovery_stats().dropped_after_damage, 0, "{ctx}");
            let (got, err) = read_all(&wharf, 100);
            assert!(err.is_none(), "{ctx}: {err:?}");
            assert_eq!(
                got,
                recs[..hole.base_offset as usize],
                "{ctx}: cut at the hole"
            );
            wharf.close().unwrap();
        }
    }
}

/// Fsync-acknowledged records are checkpointed by the flusher within its interval, so damage
/// to them is found below the checkpoint even with nothing written after them.
#[test]
fn fsync_acknowledged_records_are_checkpointed_within_the_flush_interval() {
    let base = scratch_dir();
    let recs = model(0..4, 40);
    let wharf = Wharf::builder(base.path())
        .flush_interval(Duration::from_millis(20))
        .open()
        .unwrap();
    wharf.create_topic(TOPIC, TopicConfig::default()).unwrap();
    send_each(&wharf, &recs, AckMode::Fsync);
    let started = std::time::Instant::now();
    while checkpoint(base.path()).next_offset < recs.len() as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "hang guard: the checkpoint never caught up with the Fsync acks"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    wharf.simulate_crash();
    let original = fs::read(segment_path(base.path(), 0, "log")).unwrap();
    let last = *batches_in(&original).last().unwrap();
    let case = fresh_copy(base.path());
    // A bit of the last batch's records (its last byte: a record takes at least two).
    let at = last.position + last.length - 1;
    fs::write(
        segment_path(case.path(), 0, "log"),
        flipped(&original, at * 8),
    )
    .unwrap();
    let err = open(case.path()).expect_err("damage below the checkpoint is reported");
    assert_eq!(
        corrupt_offset(&err, case.path(), "last batch"),
        last.base_offset
    );
}

/// A batch is checked (CRC and record structure) the first time this process reads it, and
/// not again: what the second read returns is what the first returned, for records written in
/// this process and for records found on disk; damage is still reported by every read that
/// reaches it, whether it starts before the damage (after the batches before it were checked)
/// or past it.
#[test]
fn batches_checked_once_read_the_same_and_damage_is_never_skipped() {
    let base = scratch_dir();
    let recs = model(0..12, 40);
    let wharf = open(base.path()).unwrap();
    wharf.create_topic(TOPIC, TopicConfig::default()).unwrap();
    append(&wharf, &recs, &[2, 1, 3, 1]);
    // Written by this process: read without a check, twice.
    for round in 0..2 {
        let (got, err) = read_all(&wharf, 5);
        assert!(err.is_none(), "round {round}: {err:?}");
        assert_eq!(got, recs, "round {round}: records written in this process");
    }
    wharf.close().unwrap();
    let original = fs::read(segment_path(base.path(), 0, "log")).unwrap();
    let batches = batches_in(&original);
    assert!(batches.len() >= 6, "{} batches", batches.len());

    // Found on disk: the first read checks, the second does not; both return the same.
    let wharf = open(base.path()).unwrap();
    for (round, max_records) in [(0, 1), (1, 1), (2, 100)] {
        let (got, err) = read_all(&wharf, max_records);
        assert!(err.is_none(), "round {round}: {err:?}");
        assert_eq!(got, recs, "round {round}: records found on disk");
    }
    drop(wharf);

    // Damage in the payload of the fifth batch (its CRC fails; its header parses).
    let damaged = &batches[4];
    let case = fresh_copy(base.path());
    let bit = (damaged.end() - 1) * 8;
    fs::write(segment_path(case.path(), 0, "log"), flipped(&original, bit)).unwrap();
    let wharf = open(case.path()).unwrap();
    let reader = wharf.reader(TOPIC, 0).unwrap();
    let after = batches[5].base_offset;
    let past = reader
        .read(after, ReadOptions::default().max_records(100))
        .unwrap();
    let past: Vec<Rec> = past.iter().map(|m| Rec::of(&m)).collect();
    assert_eq!(past, recs[after as usize..], "a read past the damage");
    for round in 0..3 {
        let (got, err) = read_all(&wharf, 1);
        let e = err.unwrap_or_else(|| panic!("round {round}: the damage was not reported"));
        assert_eq!(
            corrupt_offset(&e, case.path(), "read_all"),
            damaged.base_offset
        );
        assert_eq!(got, recs[..damaged.base_offset as usize], "round {round}");
        match reader.read(0, ReadOptions::default().max_records(100)) {
            Ok(batch) => {
                let all: Vec<Rec> = batch.iter().map(|m| Rec::of(&m)).collect();
                assert_eq!(all, recs[..damaged.base_offset as usize], "round {round}");
            }
            Err(e) => {
                corrupt_offset(&e, case.path(), "one read");
            }
        }
        let at = reader.read(damaged.base_offset, ReadOptions::default().max_records(100));
        let e = at.expect_err("a read of the damaged batch");
        assert_eq!(corrupt_offset(&e, case.path(), "at"), damaged.base_offset);
    }
}
