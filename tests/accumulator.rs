//! The producer's accumulator: records sent without waiting (`send_oneway`, `NoWait`) are
//! batched per partition and appended when the batch fills, after `linger`, on `flush`,
//! `Wharf::sync`, `close` and when the producer is dropped.
//!
//! - Order and completeness: a mixed workload (keys, headers, timestamps, `Write` sends,
//!   `send_batch`, handles) leaves every partition holding exactly the producer's records in
//!   send order, and every receipt names its record's place.
//! - Every trigger appends; a crash loses exactly the open batches.
//! - Failures: records lost by a failed append are reported, once and with their count, as
//!   `Unsent` (or to their handles); nothing reported as stored is missing after a reopen.
//! - Clones sending from several threads lose and duplicate nothing and keep each thread's
//!   order.

#![allow(clippy::cast_possible_truncation)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{payload, payloads, read_partition};
use wharf::{
    AckMode, Clock, ErrorKind, ManualClock, Message, ReadOptions, Record, Retention, SendHandle,
    SendReceipt, Timestamp, TopicConfig, Wharf, WharfBuilder, partition_for_key,
};

/// Long enough that no batch lingers out during a test.
const HOUR: Duration = Duration::from_secs(3_600);
/// A hang guard, not a timing claim.
const HANG_GUARD: Duration = Duration::from_secs(30);
const T0: i64 = 1_700_000_000_000;
const DAY_MS: i64 = 86_400_000;

fn read_payloads(wharf: &Wharf, partition: u32) -> Vec<Vec<u8>> {
    let reader = wharf.reader("t", partition).expect("reader");
    let mut out = Vec::new();
    let mut next = 0;
    loop {
        if next >= reader.end_offset() {
            return out;
        }
        let batch = reader.read(next, ReadOptions::default()).expect("read");
        for message in &batch {
            out.push(message.payload().to_vec());
        }
        next = batch.next_offset();
    }
}

#[test]
fn oneway_records_reach_the_log_on_flush_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = Wharf::builder(dir.path()).open().expect("open");
    wharf
        .create_topic("t", TopicConfig::default())
        .expect("topic");
    let producer = wharf.producer().linger(Duration::from_secs(3_600)).build();
    for i in 0..100u32 {
        producer
            .send_oneway(Record::new("t", i.to_le_bytes().to_vec()))
            .expect("send");
    }
    assert_eq!(
        read_payloads(&wharf, 0).len(),
        0,
        "nothing appended before the flush"
    );
    producer.flush().expect("flush");
    let got = read_payloads(&wharf, 0);
    let want: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_le_bytes().to_vec()).collect();
    assert_eq!(got, want);
    // A Write send after oneway ones comes after them.
    producer
        .send_oneway(Record::new("t", b"oneway".to_vec()))
        .expect("send");
    let receipt = producer
        .send_with(Record::new("t", b"write".to_vec()), AckMode::Write)
        .expect("send");
    assert_eq!(receipt.offset(), 101);
    assert_eq!(read_payloads(&wharf, 0)[100], b"oneway");
}

#[test]
fn a_lingering_batch_is_appended_without_a_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = Wharf::open(dir.path()).expect("open");
    wharf
        .create_topic("t", TopicConfig::default())
        .expect("topic");
    let producer = wharf.producer().linger(Duration::from_millis(5)).build();
    producer
        .send_oneway(Record::new("t", b"x".to_vec()))
        .expect("send");
    let reader = wharf.reader("t", 0).expect("reader");
    // A hang guard, not a timing claim: the linger thread appends it.
    assert!(
        reader.wait_for(0, Duration::from_secs(30)),
        "the batch was never appended"
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `SplitMix64`, seeded: the workloads are reproducible.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// A payload that starts with its sequence number: `seq` (LE), then `len - 8` bytes derived
/// from it.
fn numbered(seq: u64, len: usize) -> Vec<u8> {
    let mut out = seq.to_le_bytes().to_vec();
    out.extend(payload(seq, len.saturating_sub(8)));
    out
}

/// The sequence number of a [`numbered`] payload, checking the rest of it.
fn seq_of(message: &Message) -> u64 {
    let bytes = message.payload();
    let seq = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    assert!(
        bytes == numbered(seq, bytes.len()).as_slice(),
        "offset {}: the payload of seq {seq} is damaged",
        message.offset()
    );
    seq
}

/// Waits for a handle, with a hang guard.
fn wait(handle: &SendHandle) -> wharf::Result<SendReceipt> {
    let result = handle.wait_timeout(HANG_GUARD);
    if let Err(e) = &result {
        assert!(
            !matches!(e.kind(), ErrorKind::Timeout),
            "hang guard: a send handle did not complete within {HANG_GUARD:?}"
        );
    }
    result
}

fn assert_full(err: &wharf::Error) {
    assert!(
        matches!(err.kind(), ErrorKind::Full { .. }),
        "expected Full, got {err}"
    );
}

/// The record count and cause of an `Unsent` error.
fn unsent(err: &wharf::Error) -> (u64, &wharf::Error) {
    match err.kind() {
        ErrorKind::Unsent { records, source } => (*records, source),
        other => panic!("expected Unsent, got {other:?}"),
    }
}

/// What a partition must hold at one offset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    payload: Vec<u8>,
    key: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp: i64,
}

impl Expected {
    fn of(message: &Message) -> Self {
        Expected {
            payload: message.payload().to_vec(),
            key: message.key().map(<[u8]>::to_vec),
            headers: message
                .headers()
                .map(|(name, value)| (name.to_owned(), value.to_vec()))
                .collect(),
            timestamp: message.timestamp().as_millis(),
        }
    }
}

/// Checks that `topic`/`partition` holds exactly `want`, from offset 0, in order.
fn assert_partition(wharf: &Wharf, topic: &str, partition: u32, want: &[Expected]) {
    let found: Vec<Expected> = read_partition(wharf, topic, partition)
        .iter()
        .map(Expected::of)
        .collect();
    if let Some(at) = (0..found.len().min(want.len())).find(|&i| found[i] != want[i]) {
        panic!(
            "{topic}/{partition} offset {at}: found {:?}, expected {:?}",
            found[at], want[at]
        );
    }
    assert_eq!(
        found.len(),
        want.len(),
        "{topic}/{partition}: record count (the common prefix matches)"
    );
}

// ---------------------------------------------------------------------------------------------
// Order and completeness
// ---------------------------------------------------------------------------------------------

const TOPICS: [(&str, u32); 2] = [("a", 3), ("b", 2)];

/// A record of the mixed workload: where it goes (`by_key`: the partitioner picks
/// `partition`), and what it holds.
#[derive(Clone)]
struct Generated {
    topic: &'static str,
    partition: u32,
    by_key: bool,
    expected: Expected,
}

impl Generated {
    fn new(rng: &mut Rng, seq: u64, now: i64) -> Self {
        let (topic, partitions) = TOPICS[rng.below(TOPICS.len() as u64) as usize];
        let key = (rng.below(3) == 0).then(|| format!("key-{}", rng.below(40)).into_bytes());
        let headers = if rng.below(4) == 0 {
            (0..rng.range(1, 2))
                .map(|h| (format!("h{h}"), payload(seq + h, rng.below(12) as usize)))
                .collect()
        } else {
            Vec::new()
        };
        // Explicit timestamps, earlier and later than the batch's first record.
        let timestamp = if rng.below(5) == 0 {
            T0 - DAY_MS + i64::try_from(rng.below(2 * DAY_MS.unsigned_abs())).expect("two days")
        } else {
            now
        };
        let len = match rng.below(40) {
            0 => 8,
            // Larger than a batch: goes alone.
            1 => rng.range(2_100, 4_000),
            _ => rng.range(8, 300),
        } as usize;
        let by_key = key.is_some() && rng.below(2) == 0;
        let partition = match &key {
            Some(key) if by_key => partition_for_key(key, partitions),
            _ => rng.below(u64::from(partitions)) as u32,
        };
        Generated {
            topic,
            partition,
            by_key,
            expected: Expected {
                payload: numbered(seq, len),
                key,
                headers,
                timestamp,
            },
        }
    }

    fn record(&self, now: i64) -> Record {
        let e = &self.expected;
        let mut record = Record::new(self.topic, e.payload.clone());
        if !self.by_key {
            record = record.partition(self.partition);
        }
        if let Some(key) = &e.key {
            record = record.key(key.clone());
        }
        for (name, value) in &e.headers {
            record = record.header(name.clone(), value.clone());
        }
        if e.timestamp != now {
            record = record.timestamp(Timestamp::from_millis(e.timestamp));
        }
        record
    }
}

type Model = BTreeMap<(&'static str, u32), Vec<Expected>>;

/// Checks a receipt against the place the model gives its record.
fn assert_receipt(receipt: &SendReceipt, g: &Generated, offset: usize, ack: AckMode) {
    assert_eq!(
        (
            receipt.topic(),
            receipt.partition(),
            receipt.offset(),
            receipt.timestamp().as_millis(),
            receipt.ack()
        ),
        (
            g.topic,
            g.partition,
            offset as u64,
            g.expected.timestamp,
            ack
        ),
        "receipt of seq {}",
        u64::from_le_bytes(g.expected.payload[..8].try_into().expect("seq"))
    );
}

/// The mixed workload: oneway and asynchronous sends into batches, interleaved with `Write`
/// and `NoWait` sends and `send_batch` calls that append at once, clock steps and flushes.
fn mixed_workload(linger: Duration, seed: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let builder = |dir: &Path| Wharf::builder(dir).clock(Arc::clone(&clock) as Arc<dyn Clock>);
    let wharf = builder(dir.path()).open().expect("open");
    let mut model = Model::new();
    for (topic, partitions) in TOPICS {
        wharf
            .create_topic(topic, TopicConfig::default().partitions(partitions))
            .expect("topic");
        for p in 0..partitions {
            model.insert((topic, p), Vec::new());
        }
    }
    let producer = wharf
        .producer()
        .ack(AckMode::NoWait)
        .batch_bytes(2_048)
        .linger(linger)
        .build();
    let mut rng = Rng(seed);
    let mut handles = Vec::new();
    let mut seq = 0u64;
    for _ in 0..3_000 {
        let now = clock.now().as_millis();
        let mut next = |rng: &mut Rng| {
            seq += 1;
            Generated::new(rng, seq, now)
        };
        match rng.below(100) {
            0..55 => {
                let g = next(&mut rng);
                producer.send_oneway(g.record(now)).expect("send_oneway");
                model
                    .get_mut(&(g.topic, g.partition))
                    .expect("p")
                    .push(g.expected);
            }
            55..70 => {
                let g = next(&mut rng);
                let handle = producer.send_async(g.record(now));
                let records = model.get_mut(&(g.topic, g.partition)).expect("p");
                handles.push((handle, records.len(), g.clone()));
                records.push(g.expected);
            }
            70..85 => {
                let g = next(&mut rng);
                let ack = if rng.below(2) == 0 {
                    AckMode::Write
                } else {
                    AckMode::NoWait
                };
                let receipt = producer.send_with(g.record(now), ack).expect("send_with");
                let records = model.get_mut(&(g.topic, g.partition)).expect("p");
                assert_receipt(&receipt, &g, records.len(), ack);
                records.push(g.expected);
            }
            85..92 => {
                let batch: Vec<Generated> = (0..rng.range(1, 8)).map(|_| next(&mut rng)).collect();
                let receipts = producer
                    .send_batch(batch.iter().map(|g| g.record(now)))
                    .expect("send_batch");
                assert_eq!(receipts.len(), batch.len());
                for (g, receipt) in batch.into_iter().zip(&receipts) {
                    let records = model.get_mut(&(g.topic, g.partition)).expect("p");
                    assert_receipt(receipt, &g, records.len(), AckMode::NoWait);
                    records.push(g.expected);
                }
            }
            92..99 => clock.advance(Duration::from_millis(rng.range(1, 50))),
            _ => producer.flush().expect("flush"),
        }
    }
    producer.flush().expect("flush");
    for (handle, offset, g) in &handles {
        let receipt = wait(handle).expect("a handle of a stored record");
        assert_receipt(&receipt, g, *offset, AckMode::NoWait);
    }
    assert!(handles.len() > 100, "the workload waited on handles");
    for ((topic, partition), want) in &model {
        assert_partition(&wharf, topic, *partition, want);
    }
    // And the same after a clean close.
    drop(producer);
    wharf.close().expect("close");
    let wharf = builder(dir.path()).open().expect("reopen");
    for ((topic, partition), want) in &model {
        assert_partition(&wharf, topic, *partition, want);
    }
}

#[test]
fn partitions_hold_the_producers_records_in_send_order_whatever_the_send_mix() {
    mixed_workload(HOUR, 0x5eed_0001);
}

#[test]
fn send_order_holds_while_the_linger_thread_appends_concurrently() {
    mixed_workload(Duration::from_millis(1), 0x5eed_0002);
}

// ---------------------------------------------------------------------------------------------
// Every trigger appends
// ---------------------------------------------------------------------------------------------

fn open_with_topic(dir: &Path, partitions: u32) -> Wharf {
    let wharf = Wharf::open(dir).expect("open");
    wharf
        .create_topic("t", TopicConfig::default().partitions(partitions))
        .expect("topic");
    wharf
}

#[test]
fn a_batch_is_appended_by_the_send_that_fills_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = open_with_topic(dir.path(), 1);
    let reader = wharf.reader("t", 0).expect("reader");
    // One byte: every record fills its batch, and its own send appends it.
    let single = wharf.producer().batch_bytes(1).linger(HOUR).build();
    for seq in 0..20u64 {
        single
            .send_oneway(Record::new("t", numbered(seq, 50)))
            .expect("send");
        assert_eq!(reader.end_offset(), seq + 1, "record {seq} was appended");
    }
    // 1 KiB batches of 100-byte records: at most one batch of records waits, and while the
    // producer lives the reader sees the others.
    let producer = wharf.producer().batch_bytes(1_024).linger(HOUR).build();
    let mut end = reader.end_offset();
    for seq in 20..520u64 {
        producer
            .send_oneway(Record::new("t", numbered(seq, 100)))
            .expect("send");
        let now = reader.end_offset();
        let sent = seq + 1;
        assert!(
            now >= end && now <= sent,
            "the end moved from {end} to {now} after {sent} sends"
        );
        assert!(
            sent - now <= 1_024 / 100,
            "more than one batch waits: {sent} sent, {now} appended"
        );
        end = now;
    }
    // A record larger than a batch goes alone, after the open batch.
    producer
        .send_oneway(Record::new("t", numbered(520, 4_000)))
        .expect("send");
    assert_eq!(reader.end_offset(), 521, "the large record was appended");
    let seqs: Vec<u64> = read_partition(&wharf, "t", 0).iter().map(seq_of).collect();
    assert_eq!(seqs, (0..521).collect::<Vec<_>>());
}

#[test]
fn lingering_batches_of_every_producer_and_partition_are_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = open_with_topic(dir.path(), 3);
    let lingers = [Duration::from_millis(1), Duration::from_millis(20)];
    let producers: Vec<_> = lingers
        .iter()
        .map(|&linger| wharf.producer().linger(linger).build())
        .collect();
    for round in 0..10u64 {
        for (i, producer) in producers.iter().enumerate() {
            for p in 0..3 {
                let seq = ((i as u64) << 32) | round;
                producer
                    .send_oneway(Record::new("t", numbered(seq, 30)).partition(p))
                    .expect("send");
            }
        }
    }
    for p in 0..3 {
        let reader = wharf.reader("t", p).expect("reader");
        // A hang guard, not a timing claim: the linger thread appends them.
        assert!(
            reader.wait_for(19, HANG_GUARD),
            "partition {p}: the batches were never appended"
        );
        let seqs: Vec<u64> = read_partition(&wharf, "t", p).iter().map(seq_of).collect();
        for i in 0..2u64 {
            let own: Vec<u64> = seqs
                .iter()
                .filter(|&&s| s >> 32 == i)
                .map(|s| s & 0xffff_ffff)
                .collect();
            assert_eq!(
                own,
                (0..10).collect::<Vec<_>>(),
                "partition {p}, producer {i}"
            );
        }
        assert_eq!(seqs.len(), 20, "partition {p}");
    }
}

#[test]
fn wharf_sync_appends_open_batches_and_makes_them_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = open_with_topic(dir.path(), 2);
    let producer = wharf.producer().linger(HOUR).build();
    for seq in 0..60u64 {
        producer
            .send_oneway(Record::new("t", numbered(seq, 40)).partition((seq % 2) as u32))
            .expect("send");
    }
    for p in 0..2 {
        assert_eq!(wharf.reader("t", p).expect("reader").end_offset(), 0);
    }
    wharf.sync().expect("sync");
    for p in 0..2u32 {
        let reader = wharf.reader("t", p).expect("reader");
        assert_eq!(reader.end_offset(), 30, "partition {p}");
        assert_eq!(reader.durable_end_offset(), 30, "partition {p} is synced");
        let seqs: Vec<u64> = read_partition(&wharf, "t", p).iter().map(seq_of).collect();
        let want: Vec<u64> = (0..60).filter(|s| s % 2 == u64::from(p)).collect();
        assert_eq!(seqs, want, "partition {p}");
    }
}

#[test]
fn close_appends_open_batches_and_the_producer_then_takes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = open_with_topic(dir.path(), 2);
    let producer = wharf.producer().ack(AckMode::NoWait).linger(HOUR).build();
    for seq in 0..40u64 {
        producer
            .send_oneway(Record::new("t", numbered(seq, 40)).partition((seq % 2) as u32))
            .expect("send");
    }
    let handle = producer.send_async(Record::new("t", numbered(40, 40)).partition(0));
    wharf.close().expect("close");
    let receipt = wait(&handle).expect("appended by the close");
    assert_eq!((receipt.partition(), receipt.offset()), (0, 20));

    // A record taken now could never be appended: the producer refuses it, like `send`.
    let err = producer
        .send_oneway(Record::new("t", numbered(41, 40)).partition(0))
        .expect_err("a oneway send after the close");
    assert!(matches!(err.kind(), ErrorKind::Closed), "got {err}");
    let late = producer.send_async(Record::new("t", numbered(42, 40)).partition(1));
    let err = wait(&late).expect_err("an asynchronous send after the close");
    assert!(matches!(err.kind(), ErrorKind::Closed), "got {err}");
    producer.flush().expect("nothing was taken, nothing lost");
    drop(producer);

    let wharf = Wharf::open(dir.path()).expect("reopen");
    assert!(wharf.recovery_stats().clean_shutdown);
    for p in 0..2u32 {
        let seqs: Vec<u64> = read_partition(&wharf, "t", p).iter().map(seq_of).collect();
        let want: Vec<u64> = (0..41).filter(|s| s % 2 == u64::from(p)).collect();
        assert_eq!(seqs, want, "partition {p}");
    }
}

#[test]
fn a_read_only_wharf_takes_no_record_without_waiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    open_with_topic(dir.path(), 1).close().expect("close");
    let wharf = Wharf::builder(dir.path())
        .read_only(true)
        .open()
        .expect("read-only open");
    let producer = wharf.producer().ack(AckMode::NoWait).build();
    let err = producer
        .send_oneway(Record::new("t", numbered(0, 40)))
        .expect_err("read-only");
    assert!(
        matches!(err.kind(), ErrorKind::ReadOnly { .. }),
        "got {err}"
    );
    let err = wait(&producer.send_async(Record::new("t", numbered(1, 40)))).expect_err("read-only");
    assert!(
        matches!(err.kind(), ErrorKind::ReadOnly { .. }),
        "got {err}"
    );
    producer.flush().expect("nothing was taken");
}

#[test]
fn dropping_the_last_clone_of_a_producer_appends_its_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = open_with_topic(dir.path(), 1);
    let producer = wharf.producer().linger(HOUR).build();
    let clone = producer.clone();
    for seq in 0..10u64 {
        let sender = if seq % 2 == 0 { &producer } else { &clone };
        sender
            .send_oneway(Record::new("t", numbered(seq, 40)))
            .expect("send");
    }
    drop(producer);
    let reader = wharf.reader("t", 0).expect("reader");
    assert_eq!(reader.end_offset(), 0, "a clone still holds the batch");
    drop(clone);
    assert_eq!(reader.end_offset(), 10, "the last drop appended the batch");
    let seqs: Vec<u64> = read_partition(&wharf, "t", 0).iter().map(seq_of).collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
}

#[test]
fn a_crash_loses_exactly_the_open_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = open_with_topic(dir.path(), 2);
    let producer = wharf
        .producer()
        .ack(AckMode::NoWait)
        .batch_bytes(1_024)
        .linger(HOUR)
        .build();
    let mut seq = 0u64;
    let send = |seq: &mut u64, p: u32| {
        producer
            .send_oneway(Record::new("t", numbered(*seq, 100)).partition(p))
            .expect("send");
        *seq += 1;
    };
    // Partition 0: flushed records, then `Write` sends, then an open batch.
    for _ in 0..25 {
        send(&mut seq, 0);
    }
    producer.flush().expect("flush");
    for _ in 0..5 {
        producer
            .send_with(
                Record::new("t", numbered(seq, 100)).partition(0),
                AckMode::Write,
            )
            .expect("send");
        seq += 1;
    }
    // Partition 1: batches appended as they filled, the last one open; then both get more.
    for _ in 0..50 {
        send(&mut seq, 1);
    }
    for _ in 0..7 {
        send(&mut seq, 0);
        send(&mut seq, 1);
    }
    let handle = producer.send_async(Record::new("t", numbered(seq, 100)).partition(0));
    let appended: Vec<Vec<u64>> = (0..2)
        .map(|p| read_partition(&wharf, "t", p).iter().map(seq_of).collect())
        .collect();
    assert_eq!(
        appended[0].len(),
        30,
        "partition 0: flushed and written records"
    );
    assert!(
        appended[1].len() > 30 && appended[1].len() < 57,
        "partition 1: some batches appended, one open: {}",
        appended[1].len()
    );

    wharf.simulate_crash();
    let wharf = Wharf::open(dir.path()).expect("reopen");
    assert!(!wharf.recovery_stats().clean_shutdown);
    let check = |wharf: &Wharf, when: &str| {
        for p in 0..2u32 {
            let seqs: Vec<u64> = read_partition(wharf, "t", p).iter().map(seq_of).collect();
            assert_eq!(seqs, appended[p as usize], "partition {p} {when}");
        }
    };
    check(&wharf, "after the crash");
    // The dead Wharf's producer goes only now: it must not write into the reopened directory.
    drop(producer);
    let err = wait(&handle).expect_err("the crash lost the handle's batch");
    assert!(matches!(err.kind(), ErrorKind::Closed), "got {err}");
    check(&wharf, "after the old producer went");
    wharf.close().expect("close");
    check(
        &Wharf::open(dir.path()).expect("reopen"),
        "after a clean close",
    );
}

// ---------------------------------------------------------------------------------------------
// Failure reporting
// ---------------------------------------------------------------------------------------------

const QUOTA_BYTES: u64 = 512 * 1024;
const QUOTA_SEGMENT_BYTES: u64 = 64 * 1024;
const QUOTA_RECORD_BYTES: usize = 2_000;

fn quota_builder(dir: &Path) -> WharfBuilder {
    Wharf::builder(dir)
        .max_disk_bytes(QUOTA_BYTES)
        .full_timeout(Duration::from_millis(10))
        .retention_interval(Duration::from_secs(24 * 3_600))
}

fn quota_wharf(dir: &Path) -> Wharf {
    let wharf = quota_builder(dir).open().expect("open");
    let config = TopicConfig::default()
        .segment_bytes(QUOTA_SEGMENT_BYTES)
        .max_message_bytes(8 * 1024)
        .retention(Retention::forever());
    wharf.create_topic("t", config).expect("topic");
    wharf
}

fn quota_record(seq: u64) -> Record {
    Record::new("t", numbered(seq, QUOTA_RECORD_BYTES)).partition(0)
}

/// Partition 0's records, as sequence numbers, checking that offsets start at 0.
fn stored_seqs(wharf: &Wharf) -> Vec<u64> {
    let messages = read_partition(wharf, "t", 0);
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m.offset(), i as u64);
    }
    messages.iter().map(seq_of).collect()
}

#[test]
fn a_full_disk_reports_a_lost_oneway_record_once_as_unsent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = quota_wharf(dir.path());
    // One-byte batches: each send appends its own record, so the first refused one is known.
    let producer = wharf
        .producer()
        .ack(AckMode::NoWait)
        .batch_bytes(1)
        .linger(HOUR)
        .build();
    let mut stored = 0u64;
    let full = loop {
        assert!(stored < 10_000, "the quota never filled");
        match producer.send_oneway(quota_record(stored)) {
            Ok(()) => stored += 1,
            Err(e) => break e,
        }
    };
    // The refused send's record was its batch: lost with it.
    assert_full(&full);
    assert!(stored > 20, "records were stored before the quota ran out");
    // The next call reports it, and does not take its own record.
    let err = producer
        .send_oneway(quota_record(stored + 1))
        .expect_err("the loss is reported");
    let (records, source) = unsent(&err);
    assert_eq!(records, 1, "one record was lost");
    assert_full(source);
    // Reported once; the reporting send took nothing (it would have failed, and be reported).
    producer.flush().expect("nothing more to report");
    // A handle gets its own loss; it is not reported again.
    let err = wait(&producer.send_async(quota_record(stored + 2))).expect_err("still full");
    assert_full(&err);
    producer.flush().expect("the handle had it");
    // A flush reports too.
    let err = producer
        .send_oneway(quota_record(stored + 3))
        .expect_err("still full");
    assert_full(&err);
    let err = producer.flush().expect_err("the loss is reported");
    let (records, source) = unsent(&err);
    assert_eq!(records, 1, "one record was lost");
    assert_full(source);
    producer.flush().expect("reported once");

    assert_eq!(stored_seqs(&wharf), (0..stored).collect::<Vec<_>>());
    drop(producer);
    wharf.close().expect("close");
    let wharf = quota_builder(dir.path()).open().expect("reopen");
    assert_eq!(stored_seqs(&wharf), (0..stored).collect::<Vec<_>>());
}

#[test]
fn a_full_disk_reports_every_lost_record_once_to_unsent_or_its_handle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = quota_wharf(dir.path());
    let producer = wharf.producer().ack(AckMode::NoWait).linger(HOUR).build();
    // Records taken without a handle, and how many losses were reported.
    let mut oneway = Vec::new();
    let mut reported = 0u64;
    let mut count_report = |err: &wharf::Error| {
        let (records, source) = unsent(err);
        assert_full(source);
        assert!(records > 0);
        reported += records;
    };
    let mut handles = Vec::new();
    // Over twice what the quota holds.
    for seq in 0..600u64 {
        if seq % 4 == 3 {
            handles.push((seq, producer.send_async(quota_record(seq))));
            continue;
        }
        match producer.send_oneway(quota_record(seq)) {
            Ok(()) => oneway.push(seq),
            Err(e) if matches!(e.kind(), ErrorKind::Unsent { .. }) => count_report(&e),
            // The append of a batch this record closed failed: the record was taken.
            Err(e) => {
                assert_full(&e);
                oneway.push(seq);
            }
        }
    }
    if let Err(e) = producer.flush() {
        count_report(&e);
    }
    producer.flush().expect("every loss was reported once");

    let mut stored_by_handle = BTreeMap::new();
    let mut lost_by_handle = Vec::new();
    for (seq, handle) in &handles {
        match wait(handle) {
            Ok(receipt) => {
                assert_eq!((receipt.partition(), receipt.ack()), (0, AckMode::NoWait));
                stored_by_handle.insert(*seq, receipt.offset());
            }
            // The handle's send reported an earlier loss and took nothing.
            Err(e) if matches!(e.kind(), ErrorKind::Unsent { .. }) => count_report(&e),
            Err(e) => {
                assert_full(&e);
                lost_by_handle.push(*seq);
            }
        }
    }
    let check = |wharf: &Wharf| {
        let stored = stored_seqs(wharf);
        assert!(
            stored.windows(2).all(|w| w[0] < w[1]),
            "records are in send order, none twice: {stored:?}"
        );
        for (seq, offset) in &stored_by_handle {
            assert_eq!(
                stored.get(*offset as usize),
                Some(seq),
                "seq {seq}: its receipt names offset {offset}"
            );
        }
        for s in &stored {
            assert!(
                oneway.binary_search(s).is_ok() || stored_by_handle.contains_key(s),
                "seq {s} is stored, but was not taken or its handle failed"
            );
        }
        stored
    };
    let stored = check(&wharf);
    let stored_oneway = stored.iter().filter(|s| *s % 4 != 3).count() as u64;
    assert_eq!(
        reported,
        oneway.len() as u64 - stored_oneway,
        "every oneway record taken is stored or reported lost, once"
    );
    assert!(
        reported > 0 && !lost_by_handle.is_empty(),
        "the quota ran out: {reported} reported, handles lost {lost_by_handle:?}"
    );
    assert!(stored.len() > 100, "records were stored: {}", stored.len());
    drop(producer);
    wharf.close().expect("close");
    let wharf = quota_builder(dir.path()).open().expect("reopen");
    assert_eq!(check(&wharf), stored, "the same records after a reopen");
}

#[test]
fn a_handle_reports_its_own_batch_not_the_failed_one_its_record_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = quota_wharf(dir.path());
    // Fill the quota to the byte: large records until a new segment is refused, then small
    // ones until the active segment has no room either.
    let filler = wharf.producer().ack(AckMode::Write).build();
    let mut end = 0u64;
    for len in [QUOTA_RECORD_BYTES, 8] {
        let err = loop {
            assert!(end < 100_000, "the quota never filled");
            match filler.send(Record::new("t", numbered(end, len)).partition(0)) {
                Ok(receipt) => {
                    assert_eq!(receipt.offset(), end);
                    end += 1;
                }
                Err(e) => break e,
            }
        };
        assert_full(&err);
    }
    let producer = wharf.producer().ack(AckMode::NoWait).linger(HOUR).build();
    let first = producer.send_async(Record::new("t", numbered(end, 100)).partition(0));
    // A key: another layout, so this send closes the first batch (whose append fails) and
    // opens its own.
    let second = producer.send_async(
        Record::new("t", numbered(end + 1, 100))
            .partition(0)
            .key("k"),
    );
    assert_full(&wait(&first).expect_err("the first batch was refused"));
    // Space comes back before the second batch is appended.
    let bases: Vec<u64> = common::segment_files(dir.path(), "t", 0, "log")
        .iter()
        .map(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
                .expect("base offset")
        })
        .collect();
    assert!(bases.len() >= 3, "{bases:?}");
    wharf
        .admin()
        .delete_records("t", 0, bases[2])
        .expect("delete records");
    producer.flush().expect("the second batch is appended");
    let receipt = wait(&second).expect("the second record was stored");
    assert_eq!(
        receipt.offset(),
        end,
        "the second record follows the filler"
    );
    let reader = wharf.reader("t", 0).expect("reader");
    assert_eq!(reader.end_offset(), end + 1);
    let last = reader
        .read(end, ReadOptions::default())
        .expect("read")
        .to_messages();
    assert_eq!(seq_of(&last[0]), end + 1);
}

#[test]
fn batches_open_for_a_deleted_topic_are_reported_as_unsent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = Wharf::open(dir.path()).expect("open");
    for (topic, partitions) in [("gone", 2), ("t", 1)] {
        wharf
            .create_topic(topic, TopicConfig::default().partitions(partitions))
            .expect("topic");
    }
    let producer = wharf.producer().ack(AckMode::NoWait).linger(HOUR).build();
    for seq in 0..8u64 {
        producer
            .send_oneway(Record::new("gone", numbered(seq, 40)).partition((seq % 3).min(1) as u32))
            .expect("send");
    }
    let handle = producer.send_async(Record::new("gone", numbered(8, 40)).partition(0));
    for seq in 100..104u64 {
        producer
            .send_oneway(Record::new("t", numbered(seq, 40)))
            .expect("send");
    }
    wharf.delete_topic("gone").expect("delete");
    // A topic of the same name again: the old batches must not land in it.
    wharf
        .create_topic("gone", TopicConfig::default().partitions(2))
        .expect("topic again");
    for seq in 104..106u64 {
        producer
            .send_oneway(Record::new("t", numbered(seq, 40)))
            .expect("nothing failed yet");
    }
    let err = producer
        .flush()
        .expect_err("the deleted topic's batches failed");
    let (records, source) = unsent(&err);
    assert_eq!(records, 8, "the records without a handle");
    assert!(
        matches!(source.kind(), ErrorKind::TopicNotFound { .. }),
        "got {source}"
    );
    let err = wait(&handle).expect_err("the handle's batch failed");
    assert!(
        matches!(err.kind(), ErrorKind::TopicNotFound { .. }),
        "got {err}"
    );
    producer.flush().expect("reported once");
    let seqs: Vec<u64> = read_partition(&wharf, "t", 0).iter().map(seq_of).collect();
    assert_eq!(seqs, (100..106).collect::<Vec<_>>());
    for p in 0..2 {
        assert!(payloads(&wharf, "gone", p).is_empty(), "gone/{p} is new");
    }
}

// ---------------------------------------------------------------------------------------------
// Clones on several threads
// ---------------------------------------------------------------------------------------------

const THREADS: u64 = 4;
const RECORDS_PER_THREAD: u64 = 2_000;

#[test]
fn clones_on_several_threads_lose_and_duplicate_nothing_and_keep_each_threads_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = open_with_topic(dir.path(), 3);
    let producer = wharf
        .producer()
        .ack(AckMode::NoWait)
        .batch_bytes(512)
        .linger(Duration::from_millis(1))
        .build();
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let producer = producer.clone();
            thread::spawn(move || {
                let mut rng = Rng(0xc10e ^ t);
                let mut handles = Vec::new();
                let mut seq = 0;
                let mut next = |rng: &mut Rng| {
                    let id = (t << 32) | seq;
                    seq += 1;
                    let record = Record::new("t", numbered(id, rng.range(8, 120) as usize))
                        .partition(rng.below(3) as u32);
                    (id, record)
                };
                for _ in 0..RECORDS_PER_THREAD {
                    match rng.below(20) {
                        0..16 => producer.send_oneway(next(&mut rng).1).expect("send_oneway"),
                        16 => {
                            let (id, record) = next(&mut rng);
                            handles.push((id, producer.send_async(record)));
                        }
                        17 => {
                            producer.send(next(&mut rng).1).expect("send");
                        }
                        18 => {
                            let records: Vec<Record> = (0..3).map(|_| next(&mut rng).1).collect();
                            producer.send_batch(records).expect("send_batch");
                        }
                        _ => producer.flush().expect("flush"),
                    }
                }
                (seq, handles)
            })
        })
        .collect();
    let (sent, handles): (Vec<u64>, Vec<_>) = senders
        .into_iter()
        .map(|s| s.join().expect("sender thread"))
        .unzip();
    producer.flush().expect("flush");
    let mut seen = vec![Vec::new(); THREADS as usize];
    for p in 0..3 {
        let messages = read_partition(&wharf, "t", p);
        let mut last = vec![None; THREADS as usize];
        for m in &messages {
            let id = seq_of(m);
            let (t, seq) = ((id >> 32) as usize, id & 0xffff_ffff);
            assert!(
                last[t].is_none_or(|l| l < seq),
                "partition {p} offset {}: thread {t} seq {seq} after seq {:?}",
                m.offset(),
                last[t]
            );
            last[t] = Some(seq);
            seen[t].push(seq);
        }
    }
    for (t, seqs) in seen.iter_mut().enumerate() {
        seqs.sort_unstable();
        assert_eq!(
            *seqs,
            (0..sent[t]).collect::<Vec<_>>(),
            "thread {t}: every record once"
        );
    }
    for (id, handle) in handles.iter().flatten() {
        let receipt = wait(handle).expect("stored");
        let message = wharf
            .reader("t", receipt.partition())
            .expect("reader")
            .read(receipt.offset(), ReadOptions::default().max_records(1))
            .expect("read")
            .to_messages();
        assert_eq!(
            (message[0].offset(), seq_of(&message[0])),
            (receipt.offset(), *id),
            "the receipt names its record"
        );
    }
}

#[test]
fn wharf_sync_reports_one_producers_loss_and_leaves_the_others_to_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = Wharf::open(dir.path()).expect("open");
    wharf
        .create_topic("gone", TopicConfig::default())
        .expect("topic");
    let producers: Vec<_> = (0..3)
        .map(|_| wharf.producer().linger(HOUR).build())
        .collect();
    for (i, producer) in producers.iter().enumerate() {
        for seq in 0..=i as u64 {
            producer
                .send_oneway(Record::new("gone", numbered(seq, 40)))
                .expect("send");
        }
    }
    wharf.delete_topic("gone").expect("delete");
    // The sync appends every open batch; it reports one producer's loss (records 1 + i of
    // producer i), and each other producer's next call reports its own.
    let err = wharf.sync().expect_err("the batches failed");
    let (first, source) = unsent(&err);
    assert!(
        matches!(source.kind(), ErrorKind::TopicNotFound { .. }),
        "got {source}"
    );
    let mut reported = vec![first];
    for producer in &producers {
        match producer.flush() {
            Ok(()) => {}
            Err(e) => reported.push(unsent(&e).0),
        }
        producer.flush().expect("reported once");
    }
    reported.sort_unstable();
    assert_eq!(reported, [1, 2, 3], "each producer's loss, once");
}
