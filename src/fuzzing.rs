//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not a stable API). Each
//! feeds arbitrary bytes to a decoder that reads data from disk; none may panic.

use crate::format::{batch, checkpoint, file_header, index_entry, record_decode, topic_meta};

/// Decodes `bytes` as a record batch of a segment based at `segment_base`, expected at the
/// offset its header names; returns the number of records decoded (0 if the batch is
/// rejected).
pub fn decode_batch(bytes: &[u8], segment_base: u64) -> usize {
    let Ok(header) = batch::parse_header(bytes, segment_base) else {
        return 0;
    };
    let Ok((header, batch_bytes)) = batch::check_batch(bytes, segment_base, header.base_offset)
    else {
        return 0;
    };
    let mut decoded = 0;
    let result = record_decode::decode_records(batch_bytes, &header, |span| {
        let headers = batch_bytes.get(span.headers.start as usize..span.headers.end as usize);
        let listed = headers.map_or(0, |h| {
            record_decode::HeaderIter::new(h, span.header_count).count()
        });
        assert_eq!(
            listed, span.header_count as usize,
            "checked headers must all iterate"
        );
        decoded += 1;
    });
    if result.is_ok() { decoded } else { 0 }
}

/// Treats `bytes` as index files of a segment based at `base_offset`: headers, entry checks
/// and lookups for a range of targets.
pub fn index_lookups(bytes: &[u8], base_offset: u64) {
    let _header = file_header::decode_index(bytes, base_offset);
    let _small = file_header::decode_small(bytes, file_header::TIME_INDEX_MAGIC);
    let end = u64::from(u32::MAX);
    let offsets = index_entry::count_offset_entries(bytes, 32, end).unwrap_or_else(|i| i);
    let times = index_entry::count_time_entries(bytes, base_offset, end).unwrap_or_else(|i| i);
    for target in [0u32, 1, 7, 100, 4_096, u32::MAX] {
        let _entry = index_entry::lookup_offset(bytes, offsets, target);
    }
    for target in [i64::MIN, -1, 0, 1, 1_700_000_000_000, i64::MAX] {
        let _entry = index_entry::lookup_time(bytes, base_offset, times, target);
    }
    let _slots = checkpoint::newest(bytes);
    let _topic = topic_meta::decode(bytes);
}

/// A directory under [`std::env::temp_dir`] of its own, removed when dropped (`tempfile` is a
/// dev-dependency only).
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new(tag: &str) -> Option<ScratchDir> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("wharf-fuzz-{tag}-{}-{n}-{nanos}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path).ok()?;
        Some(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A data directory whose partition files hold arbitrary bytes: opening it and reading
/// everything may fail with an error, but never panic. The same as the `open_dir` fuzz
/// target: `bytes` is split into a segment, its two indexes and the checkpoint of partition 0
/// of topic `t`, each at a length of 16 × the byte before it.
pub fn open_dir(bytes: &[u8]) {
    use crate::{ReadOptions, Timestamp, TopicConfig, Wharf};
    let Some(dir) = ScratchDir::new("open-dir") else {
        return;
    };
    {
        let Ok(wharf) = Wharf::open(&dir.0) else {
            return;
        };
        let config = TopicConfig::default()
            .segment_bytes(64 * 1024)
            .max_message_bytes(4_096);
        if wharf.create_topic("t", config).is_err() || wharf.close().is_err() {
            return;
        }
    }
    let partition = dir.0.join("topics").join("t").join("0");
    let mut rest = bytes;
    for name in [
        "00000000000000000000.log",
        "00000000000000000000.index",
        "00000000000000000000.timeindex",
        "checkpoint",
    ] {
        let (len, tail) = match rest.split_first() {
            Some((&n, tail)) => (usize::from(n) * 16, tail),
            None => (0, rest),
        };
        let (content, tail) = tail.split_at(len.min(tail.len()));
        if !content.is_empty() && std::fs::write(partition.join(name), content).is_err() {
            return;
        }
        rest = tail;
    }
    for read_only in [true, false] {
        let Ok(wharf) = Wharf::builder(&dir.0).read_only(read_only).open() else {
            continue;
        };
        let Ok(reader) = wharf.reader("t", 0) else {
            continue;
        };
        let mut offset = reader.start_offset();
        while offset < reader.end_offset() {
            match reader.read(offset, ReadOptions::default()) {
                Ok(batch) if !batch.is_empty() => offset = batch.next_offset(),
                _ => break,
            }
        }
        let _ = reader.offset_for_timestamp(Timestamp::from_millis(0));
    }
}

/// Files by path (relative to the data directory), with their bytes.
type Files = Vec<(String, Vec<u8>)>;

/// The files of a prepared partition: the template [`open_dir_checksummed`] damages, after a
/// clean close or after a crash.
fn checksummed_template(crash: bool) -> Option<Files> {
    use std::sync::OnceLock;
    static TEMPLATES: OnceLock<[Option<Files>; 2]> = OnceLock::new();
    TEMPLATES
        .get_or_init(|| [prepare_template(false), prepare_template(true)])
        .get(usize::from(crash))
        .cloned()
        .flatten()
}

/// Writes three segments of topic `t` (three 1,000-byte records each, an index entry every
/// batch) and closes the Wharf, cleanly or as a crash would; returns every file of the data
/// directory but the lock, relative to it.
fn prepare_template(crash: bool) -> Option<Files> {
    use crate::{Record, TopicConfig, Wharf};
    let dir = ScratchDir::new("checksummed-template")?;
    let wharf = Wharf::open(&dir.0).ok()?;
    let config = TopicConfig::default()
        .segment_bytes(4_096)
        .index_interval_bytes(0);
    wharf.create_topic("t", config).ok()?;
    let producer = wharf.producer().ack(crate::AckMode::Fsync).build();
    for i in 0..8u8 {
        producer
            .send(
                Record::new("t", vec![i; 1_000]).timestamp(crate::Timestamp::from_millis(
                    1_700_000_000_000 + i64::from(i),
                )),
            )
            .ok()?;
    }
    drop(producer);
    if crash {
        wharf.simulate_crash();
    } else {
        wharf.close().ok()?;
    }
    let mut files = Vec::new();
    let mut dirs = vec![dir.0.clone()];
    while let Some(at) = dirs.pop() {
        for entry in std::fs::read_dir(&at).ok()? {
            let path = entry.ok()?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().is_some_and(|n| n != "wharf.lock") {
                let name = path
                    .strip_prefix(&dir.0)
                    .ok()?
                    .to_string_lossy()
                    .into_owned();
                files.push((name, std::fs::read(&path).ok()?));
            }
        }
    }
    files.sort();
    Some(files)
}

/// Recomputes every CRC32C a file named `name` carries (see the byte tables of
/// [`crate::format`]), as they stand after damage, so the damage passes the checksums.
fn fix_checksums(name: &str, bytes: &mut [u8]) {
    let fix = |bytes: &mut [u8], covered: std::ops::Range<usize>, at: usize| {
        if let Some(region) = bytes.get(covered) {
            let crc = crc32c::crc32c(region).to_le_bytes();
            if let Some(slot) = bytes.get_mut(at..at + 4) {
                slot.copy_from_slice(&crc);
            }
        }
    };
    let small = file_header::SMALL_HEADER_LEN;
    let extension = std::path::Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    if name.ends_with("checkpoint") {
        fix(bytes, 0..small - 4, small - 4);
        for slot in 0..2 {
            let at = small + slot * checkpoint::SLOT_LEN;
            fix(
                bytes,
                at..at + checkpoint::SLOT_LEN - 4,
                at + checkpoint::SLOT_LEN - 4,
            );
        }
    } else if name.ends_with("topic.conf") {
        let len = topic_meta::TOPIC_META_LEN;
        fix(bytes, 0..len - 4, len - 4);
        if bytes.len() > len + 4 {
            let end = bytes.len() - 4;
            fix(bytes, len..end, end);
        }
    } else if extension == "index" {
        // The entries the summary counts, then the header.
        let count = bytes
            .get(24..28)
            .and_then(|b| b.try_into().ok())
            .map_or(0, |b: [u8; 4]| u32::from_le_bytes(b) as usize);
        let header = file_header::INDEX_HEADER_LEN;
        let end = header
            .saturating_add(count.saturating_mul(8))
            .min(bytes.len());
        fix(bytes, header..end, 28);
        fix(bytes, 0..header - 4, header - 4);
    } else if extension == "timeindex" {
        fix(bytes, 0..small - 4, small - 4);
    } else if extension == "log" {
        fix(bytes, 0..small - 4, small - 4);
        // Each batch as its (possibly damaged) length lays them out.
        let mut at = file_header::SEGMENT_HEADER_LEN;
        while let Some(len) = bytes
            .get(at + 4..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(|b: [u8; 4]| u32::from_le_bytes(b) as usize)
        {
            if len < batch::MIN_BATCH_LEN || at + len > bytes.len() {
                break;
            }
            fix(bytes, at + 4..at + len, at);
            at += len;
        }
    }
}

/// As [`open_dir`], but damage that keeps every checksum valid: a prepared partition (three
/// segments of topic `t`, after a clean close if the first byte is even, after a crash if it
/// is odd) gets bytes of its files changed, and then every CRC they carry is computed again
/// (file headers, checkpoint slots, index summaries and entries, batch headers, the topic
/// configuration). So what stands between the damage and a panic or an overflow is the
/// decoders' and recovery's semantic checks (offsets before a segment's base, positions past
/// a file's end, counts that do not add up). Opening may fail with an error, reads may fail
/// with errors; nothing may panic.
///
/// After the first byte, each group of four bytes is one change: a file (its index among the
/// prepared files, sorted by path, modulo their number), a position (`u16`, little-endian,
/// modulo the file's length) and a byte to XOR into it.
pub fn open_dir_checksummed(bytes: &[u8]) {
    use crate::{ReadOptions, Timestamp, Wharf};
    let crash = bytes.first().is_some_and(|b| b & 1 == 1);
    let Some(mut files) = checksummed_template(crash) else {
        return;
    };
    if files.is_empty() {
        return;
    }
    for change in bytes.get(1..).unwrap_or_default().chunks_exact(4) {
        let (file, position, xor) = (
            usize::from(change[0]) % files.len(),
            usize::from(u16::from_le_bytes([change[1], change[2]])),
            change[3],
        );
        if let Some((_, content)) = files.get_mut(file) {
            if let Some(len) = std::num::NonZeroUsize::new(content.len()) {
                if let Some(byte) = content.get_mut(position % len) {
                    *byte ^= xor;
                }
            }
        }
    }
    let Some(dir) = ScratchDir::new("checksummed") else {
        return;
    };
    for (name, content) in &mut files {
        fix_checksums(name, content);
        let path = dir.0.join(&name);
        if let Some(parent) = path.parent() {
            if std::fs::create_dir_all(parent).is_err() {
                return;
            }
        }
        if std::fs::write(&path, &content).is_err() {
            return;
        }
    }
    for read_only in [true, false] {
        let Ok(wharf) = Wharf::builder(&dir.0).read_only(read_only).open() else {
            continue;
        };
        let _stats = wharf.recovery_stats();
        let Ok(reader) = wharf.reader("t", 0) else {
            continue;
        };
        let mut offset = reader.start_offset();
        while offset < reader.end_offset() {
            match reader.read(offset, ReadOptions::default().max_records(2)) {
                Ok(batch) if !batch.is_empty() => offset = batch.next_offset(),
                _ => offset += 1,
            }
        }
        for ts in [0, 1_700_000_000_003, i64::MAX] {
            let _ = reader.offset_for_timestamp(Timestamp::from_millis(ts));
        }
        let _ = wharf.admin().disk_usage();
        if !read_only {
            let producer = wharf.producer().build();
            let _ = producer.send(crate::Record::new("t", vec![9u8; 1_000]));
            let _ = wharf.admin().enforce_retention();
            drop(producer);
            let _ = wharf.close();
        }
    }
}

/// Most operations one input runs.
pub const MAX_OPERATIONS: usize = 64;

/// Runs `bytes` as a program of at most [`MAX_OPERATIONS`] operations against a Wharf in a
/// fresh directory, holding a topic of 2 partitions with 4 KiB segments, and checks it
/// against a model after every reopen, on demand and at the end. Panics on any divergence.
///
/// Each operation is one byte (taken modulo 10) and its argument bytes (0 once the input is
/// exhausted):
///
/// | op | operation | arguments |
/// |---:|-----------|-----------|
/// | 0, 1 | send, ack `Write` | `p`: partition `p & 1`, payload of `p` bytes (seeded by `p`) |
/// | 2 | send, ack `Fsync` | as 0 |
/// | 3 | `send_batch` | `n`: `n % 8 + 1` records, ack `Fsync` if `n & 0x80` else `Write`; then one `p` per record |
/// | 4 | `Wharf::sync` | – |
/// | 5 | consumer of group `g` assigned both partitions: poll, commit, close | `m`: up to `m % 16 + 1` records; commit unless `m & 0x80` |
/// | 6 | close and reopen | – |
/// | 7 | `simulate_crash` and reopen | – |
/// | 8 | `delete_records` | `p`: partition `p & 1`; `b`: before `start + b % (end - start + 2)` |
/// | 9 | check against the model | – |
///
/// The model: every send acked (`Write` or `Fsync`: the simulated crash keeps the page cache)
/// is at the offset of its receipt, offsets contiguous from 0 per partition; after any reopen
/// each partition's start and end are as acked and deleted, every record from the start to
/// the end reads back byte-identical, reads below the start are out of range, the group's
/// committed offsets are those committed or left by closing a consumer (never beyond the
/// end), and a consumer resumes at
/// its committed offset (or the start). Errors of the environment (I/O, a full disk) end the
/// run quietly; any other error panics.
pub fn operation_sequence(bytes: &[u8]) {
    let _completed = run_operations(bytes);
}

/// As [`operation_sequence`]; returns how many operations ran to completion, the final check
/// included (so a run that an environment error cut short shows).
pub fn run_operations(bytes: &[u8]) -> usize {
    let Some(dir) = ScratchDir::new("ops") else {
        return 0;
    };
    let mut run = OpsRun {
        dir,
        wharf: None,
        model: [PartitionModel::default(), PartitionModel::default()],
        serial: 0,
    };
    if run.start().is_none() {
        return 0;
    }
    let mut completed = 0;
    let mut program = bytes.iter().copied();
    for step in 0..MAX_OPERATIONS {
        let Some(op) = program.next() else { break };
        let mut arg = || program.next().unwrap_or(0);
        let done = match op % 10 {
            0 | 1 => run.send(step, arg(), crate::AckMode::Write),
            2 => run.send(step, arg(), crate::AckMode::Fsync),
            3 => {
                let n = arg();
                let ack = if n & 0x80 == 0 {
                    crate::AckMode::Write
                } else {
                    crate::AckMode::Fsync
                };
                let seeds: Vec<u8> = (0..=n % 8).map(|_| arg()).collect();
                run.send_batch(step, &seeds, ack)
            }
            4 => run.sync(step),
            5 => {
                let m = arg();
                run.consume(step, usize::from(m % 16) + 1, m & 0x80 == 0)
            }
            6 => run.reopen(step, false),
            7 => run.reopen(step, true),
            8 => {
                let (p, b) = (arg(), arg());
                run.delete_records(step, p, b)
            }
            _ => run.check(&format!("step {step}: check")),
        };
        if done.is_none() {
            return completed;
        }
        completed += 1;
    }
    if run.check("at the end").is_some() {
        completed += 1;
        if let Some(wharf) = run.wharf.take() {
            let _ = wharf.close();
        }
    }
    completed
}

const OPS_TOPIC: &str = "t";
const OPS_GROUP: &str = "g";

/// What was acked to one partition.
#[derive(Default)]
struct PartitionModel {
    /// Every record acked, at its offset (deleted ones too).
    records: Vec<Vec<u8>>,
    /// The log start.
    start: u64,
    /// The group's committed offset.
    committed: Option<u64>,
}

impl PartitionModel {
    fn end(&self) -> u64 {
        self.records.len() as u64
    }

    fn record(&self, offset: u64) -> &[u8] {
        let index = usize::try_from(offset).expect("an offset below the end");
        &self.records[index]
    }
}

struct OpsRun {
    wharf: Option<crate::Wharf>,
    model: [PartitionModel; 2],
    serial: u64,
    // Last: dropped after the Wharf.
    dir: ScratchDir,
}

/// `Some(value)`; `None` for an error of the environment (I/O, no space), which ends the
/// run; a panic for any other error, which the program cannot have caused.
fn expect_ok<T>(what: &str, result: crate::Result<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e)
            if matches!(
                e.kind(),
                crate::ErrorKind::Io { .. } | crate::ErrorKind::Full { .. }
            ) =>
        {
            None
        }
        Err(e) => panic!("operation_sequence: {what}: unexpected error: {e}"),
    }
}

impl OpsRun {
    fn start(&mut self) -> Option<()> {
        let wharf = expect_ok("first open", crate::Wharf::open(&self.dir.0))?;
        let config = crate::TopicConfig::default()
            .partitions(2)
            .segment_bytes(4_096)
            .index_interval_bytes(256)
            .max_message_bytes(1_024);
        expect_ok("create_topic", wharf.create_topic(OPS_TOPIC, config))?;
        self.wharf = Some(wharf);
        Some(())
    }

    fn wharf(&self) -> &crate::Wharf {
        self.wharf
            .as_ref()
            .expect("the Wharf is open between operations")
    }

    /// A payload of `seed` bytes, distinct per send (the serial is mixed in).
    fn payload(&mut self, seed: u8) -> Vec<u8> {
        self.serial += 1;
        let mut payload: Vec<u8> = (0..seed)
            .map(|i| seed.wrapping_add(i.wrapping_mul(31)))
            .collect();
        for (byte, s) in payload.iter_mut().zip(self.serial.to_le_bytes()) {
            *byte ^= s;
        }
        payload
    }

    fn acked(&mut self, what: &str, partition: u32, offset: u64, payload: Vec<u8>) {
        let model = &mut self.model[partition as usize];
        assert_eq!(
            offset,
            model.end(),
            "operation_sequence: {what}: partition {partition} acked offset {offset}, \
             expected the next one, {}",
            model.end()
        );
        model.records.push(payload);
    }

    fn send(&mut self, step: usize, seed: u8, ack: crate::AckMode) -> Option<()> {
        let partition = u32::from(seed & 1);
        let payload = self.payload(seed);
        let record = crate::Record::new(OPS_TOPIC, payload.clone()).partition(partition);
        let what = format!("step {step}: send ({ack:?}) to partition {partition}");
        let producer = self.wharf().producer().build();
        let receipt = expect_ok(&what, producer.send_with(record, ack))?;
        assert_eq!(
            receipt.partition(),
            partition,
            "operation_sequence: {what}: receipt's partition"
        );
        self.acked(&what, partition, receipt.offset(), payload);
        Some(())
    }

    fn send_batch(&mut self, step: usize, seeds: &[u8], ack: crate::AckMode) -> Option<()> {
        let sends: Vec<(u32, Vec<u8>)> = seeds
            .iter()
            .map(|&seed| (u32::from(seed & 1), self.payload(seed)))
            .collect();
        let records = sends
            .iter()
            .map(|(p, payload)| crate::Record::new(OPS_TOPIC, payload.clone()).partition(*p));
        let what = format!(
            "step {step}: send_batch ({ack:?}) of {} records",
            sends.len()
        );
        let producer = self.wharf().producer().ack(ack).build();
        let receipts = expect_ok(&what, producer.send_batch(records))?;
        assert_eq!(
            receipts.len(),
            sends.len(),
            "operation_sequence: {what}: receipts"
        );
        for (receipt, (partition, payload)) in receipts.iter().zip(sends) {
            assert_eq!(
                receipt.partition(),
                partition,
                "operation_sequence: {what}: receipt's partition"
            );
            self.acked(&what, partition, receipt.offset(), payload);
        }
        Some(())
    }

    fn sync(&mut self, step: usize) -> Option<()> {
        expect_ok(&format!("step {step}: sync"), self.wharf().sync())
    }

    fn consume(&mut self, step: usize, max: usize, commit: bool) -> Option<()> {
        let what = format!("step {step}: consume up to {max} (commit: {commit})");
        let mut consumer = expect_ok(
            &what,
            self.wharf()
                .consumer(OPS_GROUP)
                .assign([(OPS_TOPIC, 0), (OPS_TOPIC, 1)])
                .build(),
        )?;
        let deliveries = expect_ok(&what, consumer.poll_batch(max, std::time::Duration::ZERO))?;
        assert!(
            deliveries.len() <= max,
            "operation_sequence: {what}: got {}",
            deliveries.len()
        );
        let first: Vec<u64> = self
            .model
            .iter()
            .map(|m| m.committed.unwrap_or(m.start).max(m.start))
            .collect();
        let mut next = first.clone();
        let mut delivered = [false; 2];
        for delivery in &deliveries {
            let p = delivery.partition() as usize;
            let offset = delivery.offset();
            assert!(
                p < 2,
                "operation_sequence: {what}: delivery from partition {p}"
            );
            assert_eq!(
                offset, next[p],
                "operation_sequence: {what}: partition {p} delivered offset {offset}, expected {}",
                next[p]
            );
            let model = &self.model[p];
            assert!(
                offset < model.end(),
                "operation_sequence: {what}: delivered offset {offset} at or past the end {}",
                model.end()
            );
            assert_eq!(
                delivery.payload(),
                model.record(offset),
                "operation_sequence: {what}: partition {p} offset {offset} delivered other bytes than acked"
            );
            next[p] += 1;
            delivered[p] = true;
        }
        drop(deliveries);
        if commit {
            expect_ok(&what, consumer.commit())?;
            for (p, model) in (0u32..).zip(&mut self.model) {
                let tp = crate::TopicPartition::new(OPS_TOPIC, p);
                let committed = consumer.committed(&tp);
                let next = next[p as usize];
                let delivered = delivered[p as usize];
                if delivered {
                    assert_eq!(
                        committed,
                        Some(next),
                        "operation_sequence: {what}: partition {p} committed"
                    );
                } else {
                    assert!(
                        committed == model.committed || committed == Some(next),
                        "operation_sequence: {what}: partition {p} committed {committed:?} with nothing \
                         delivered (was {:?}, position {})",
                        model.committed,
                        next
                    );
                }
                model.committed = committed;
            }
        }
        // Closing commits the lowest offset not acknowledged: where this poll started if
        // nothing was committed, else the commit just made.
        expect_ok(&what, consumer.close())?;
        let stored = self.stored_commits(&what)?;
        for (p, model) in self.model.iter_mut().enumerate() {
            let low = if commit {
                model.committed
            } else {
                Some(first[p])
            };
            assert!(
                stored[p] == model.committed || stored[p] == low,
                "operation_sequence: {what}: partition {p} committed {:?} after close (was {:?}, \
                 lowest unacknowledged {low:?})",
                stored[p],
                model.committed
            );
            model.committed = stored[p];
        }
        Some(())
    }

    fn reopen(&mut self, step: usize, crash: bool) -> Option<()> {
        let what = format!(
            "step {step}: {}",
            if crash {
                "crash and reopen"
            } else {
                "close and reopen"
            }
        );
        let wharf = self
            .wharf
            .take()
            .expect("the Wharf is open between operations");
        if crash {
            wharf.simulate_crash();
        } else {
            expect_ok(&what, wharf.close())?;
        }
        self.wharf = Some(expect_ok(&what, crate::Wharf::open(&self.dir.0))?);
        self.check(&what)
    }

    fn delete_records(&mut self, step: usize, p: u8, b: u8) -> Option<()> {
        let partition = u32::from(p & 1);
        let model = &self.model[partition as usize];
        let span = model.end() - model.start + 2;
        let before = model.start + u64::from(b) % span;
        let want = before.min(model.end()).max(model.start);
        let what = format!("step {step}: delete_records of partition {partition} before {before}");
        let start = expect_ok(
            &what,
            self.wharf()
                .admin()
                .delete_records(OPS_TOPIC, partition, before),
        )?;
        assert_eq!(start, want, "operation_sequence: {what}: new log start");
        self.model[partition as usize].start = want;
        Some(())
    }

    /// The group's committed offsets per partition, as stored.
    fn stored_commits(&self, what: &str) -> Option<[Option<u64>; 2]> {
        let mut stored = [None; 2];
        match self.wharf().admin().describe_group(OPS_GROUP) {
            Ok(group) => {
                for d in &group.partitions {
                    if d.lag.partition.topic == OPS_TOPIC && d.lag.partition.partition < 2 {
                        stored[d.lag.partition.partition as usize] = d.lag.committed;
                    }
                }
            }
            Err(e) if matches!(e.kind(), crate::ErrorKind::GroupNotFound { .. }) => {}
            Err(e) => expect_ok::<()>(what, Err(e))?,
        }
        Some(stored)
    }

    /// Checks every partition and the group's offsets against the model.
    fn check(&self, what: &str) -> Option<()> {
        let wharf = self.wharf();
        for (p, model) in (0u32..).zip(&self.model) {
            let reader = expect_ok(what, wharf.reader(OPS_TOPIC, p))?;
            let (start, end) = (reader.start_offset(), reader.end_offset());
            assert_eq!(
                (start, end),
                (model.start, model.end()),
                "operation_sequence: {what}: partition {p} (start, end) differs from the model"
            );
            let mut offset = start;
            while offset < end {
                let batch = expect_ok(what, reader.read(offset, crate::ReadOptions::default()))?;
                assert!(
                    !batch.is_empty(),
                    "operation_sequence: {what}: partition {p}: empty read at {offset} below the end {end}"
                );
                for message in &batch {
                    assert_eq!(
                        message.offset(),
                        offset,
                        "operation_sequence: {what}: partition {p}: offsets not contiguous"
                    );
                    assert_eq!(
                        message.payload(),
                        model.record(offset),
                        "operation_sequence: {what}: partition {p} offset {offset} reads back other bytes than acked"
                    );
                    offset += 1;
                }
                assert_eq!(
                    batch.next_offset(),
                    offset,
                    "operation_sequence: {what}: partition {p}: batch's next offset"
                );
            }
            if start > 0 {
                match reader.read(start - 1, crate::ReadOptions::default()) {
                    Err(e) if matches!(e.kind(), crate::ErrorKind::OffsetOutOfRange { .. }) => {}
                    Err(e) => {
                        expect_ok::<()>(what, Err(e))?;
                    }
                    Ok(batch) => panic!(
                        "operation_sequence: {what}: partition {p}: read below the start {start} returned {} records",
                        batch.len()
                    ),
                }
            }
        }
        let committed = self.stored_commits(what)?;
        for (p, model) in (0u32..).zip(&self.model) {
            let stored = committed[p as usize];
            assert_eq!(
                stored, model.committed,
                "operation_sequence: {what}: partition {p}: the group's committed offset"
            );
            if let Some(c) = stored {
                assert!(
                    c <= model.end(),
                    "operation_sequence: {what}: partition {p}: committed {c} beyond the end {}",
                    model.end()
                );
            }
        }
        Some(())
    }
}
