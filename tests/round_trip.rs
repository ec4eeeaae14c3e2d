//! Round trips through the public API: every ack mode, batches, async sends, rolls, reopen,
//! partitioning, timestamps, waiting readers.

#![allow(clippy::cast_possible_truncation)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{payload, payloads, read_partition, segment_files};
use wharf::{
    AckMode, ErrorKind, ManualClock, Partitioner, ReadOptions, Record, Timestamp, TopicConfig,
    Wharf, partition_for_key,
};

fn small_segments() -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(4_096)
        .index_interval_bytes(256)
        .max_message_bytes(1_024)
}

#[test]
fn round_trips_under_every_ack_mode() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    let mut expected = Vec::new();
    for ack in [AckMode::NoWait, AckMode::Write, AckMode::Fsync] {
        let producer = wharf.producer().ack(ack).build();
        for i in 0..50u64 {
            let body = payload(expected.len() as u64, 10 + i as usize);
            let receipt = producer.send(Record::new("t", body.clone())).unwrap();
            assert_eq!(receipt.offset(), expected.len() as u64);
            assert_eq!(receipt.ack(), ack);
            expected.push(body);
        }
    }
    producer_oneway(&wharf, &mut expected);
    assert_eq!(payloads(&wharf, "t", 0), expected);
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    assert_eq!(payloads(&wharf, "t", 0), expected);
}

fn producer_oneway(wharf: &Wharf, expected: &mut Vec<Vec<u8>>) {
    let producer = wharf.producer().build();
    for _ in 0..10 {
        let body = payload(expected.len() as u64, 33);
        producer
            .send_oneway(Record::new("t", body.clone()))
            .unwrap();
        expected.push(body);
    }
}

#[test]
fn keys_headers_and_timestamps_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    let producer = wharf.producer().build();
    let record = Record::new("t", "value")
        .key("k")
        .header("a", "1")
        .header("b", "")
        .header("a", "2")
        .timestamp(Timestamp::from_millis(1_234));
    let receipt = producer.send(record).unwrap();
    assert_eq!(receipt.timestamp(), Timestamp::from_millis(1_234));
    producer.send(Record::new("t", "")).unwrap();
    let messages = read_partition(&wharf, "t", 0);
    let m = &messages[0];
    assert_eq!(m.key(), Some(&b"k"[..]));
    assert_eq!(m.payload(), b"value");
    assert_eq!(m.timestamp().as_millis(), 1_234);
    let headers: Vec<(&str, &[u8])> = m.headers().collect();
    assert_eq!(
        headers,
        vec![("a", &b"1"[..]), ("b", &b""[..]), ("a", &b"2"[..])]
    );
    assert_eq!(m.header("a"), Some(&b"1"[..]));
    assert_eq!(messages[1].key(), None);
    assert!(messages[1].payload().is_empty());
    assert_eq!(messages[1].headers().count(), 0);
}

#[test]
fn offsets_stay_contiguous_across_rolls_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for round in 0..3 {
        let wharf = Wharf::open(dir.path()).unwrap();
        wharf.ensure_topic("t", small_segments()).unwrap();
        let producer = wharf.producer().ack(AckMode::Write).build();
        for _ in 0..300 {
            let i = expected.len() as u64;
            let body = payload(i, (i % 200) as usize);
            assert_eq!(
                producer
                    .send(Record::new("t", body.clone()))
                    .unwrap()
                    .offset(),
                i
            );
            expected.push(body);
        }
        assert!(
            segment_files(dir.path(), "t", 0, "log").len() > 5,
            "round {round} rolled"
        );
        assert_eq!(payloads(&wharf, "t", 0), expected);
        wharf.close().unwrap();
    }
    let wharf = Wharf::open(dir.path()).unwrap();
    assert_eq!(payloads(&wharf, "t", 0), expected);
    assert_eq!(
        wharf.reader("t", 0).unwrap().end_offset(),
        expected.len() as u64
    );
}

#[test]
fn reading_from_any_offset_equals_a_linear_scan() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf
        .create_topic("t", small_segments().index_interval_bytes(100))
        .unwrap();
    let producer = wharf.producer().build();
    let records: Vec<Record> = (0..400u64)
        .map(|i| Record::new("t", payload(i, (i % 90) as usize)))
        .collect();
    for chunk in records.chunks(7) {
        producer.send_batch(chunk.to_vec()).unwrap();
    }
    let all = read_partition(&wharf, "t", 0);
    let reader = wharf.reader("t", 0).unwrap();
    for offset in 0..all.len() as u64 {
        let batch = reader
            .read(offset, ReadOptions::default().max_records(3))
            .unwrap();
        let first = batch.get(0).expect("a record");
        assert_eq!(first.offset(), offset);
        assert_eq!(first.payload(), all[offset as usize].payload());
        assert!(batch.len() <= 3);
    }
}

#[test]
fn send_batch_returns_receipts_in_order_and_syncs_once_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf
        .create_topic("a", TopicConfig::default().partitions(3))
        .unwrap();
    wharf.create_topic("b", TopicConfig::default()).unwrap();
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    let records: Vec<Record> = (0..30)
        .map(|i| {
            let topic = if i % 4 == 0 { "b" } else { "a" };
            Record::new(topic, format!("r{i}")).key(format!("k{}", i % 5))
        })
        .collect();
    let receipts = producer.send_batch(records.clone()).unwrap();
    assert_eq!(receipts.len(), records.len());
    for (record, receipt) in records.iter().zip(&receipts) {
        assert_eq!(receipt.topic(), &*record.topic);
        let batch = wharf.reader(receipt.topic(), receipt.partition()).unwrap();
        let batch = batch
            .read(receipt.offset(), ReadOptions::default().max_records(1))
            .unwrap();
        assert_eq!(batch.get(0).unwrap().payload(), &record.payload[..]);
        assert_eq!(batch.get(0).unwrap().key(), record.key.as_deref());
        let reader = wharf.reader(receipt.topic(), receipt.partition()).unwrap();
        assert!(
            reader.durable_end_offset() > receipt.offset(),
            "Fsync batch is durable"
        );
    }
}

#[test]
fn a_batch_larger_than_a_segment_is_split_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf.create_topic("t", small_segments()).unwrap();
    let producer = wharf.producer().build();
    let records: Vec<Record> = (0..200u64)
        .map(|i| Record::new("t", payload(i, 500)))
        .collect();
    let receipts = producer.send_batch(records.clone()).unwrap();
    assert_eq!(
        receipts
            .iter()
            .map(wharf::SendReceipt::offset)
            .collect::<Vec<_>>(),
        (0..200).collect::<Vec<_>>()
    );
    assert!(segment_files(dir.path(), "t", 0, "log").len() >= 20);
    let expected: Vec<Vec<u8>> = records.iter().map(|r| r.payload.to_vec()).collect();
    assert_eq!(payloads(&wharf, "t", 0), expected);
}

#[test]
fn keyed_records_keep_their_partition_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut placement = Vec::new();
    {
        let wharf = Wharf::open(dir.path()).unwrap();
        wharf
            .create_topic("t", TopicConfig::default().partitions(7))
            .unwrap();
        let producer = wharf.producer().build();
        for k in 0..50 {
            let key = format!("user-{k}");
            let receipt = producer
                .send(Record::new("t", "x").key(key.clone()))
                .unwrap();
            assert_eq!(receipt.partition(), partition_for_key(key.as_bytes(), 7));
            placement.push((key, receipt.partition()));
        }
        wharf.close().unwrap();
    }
    let wharf = Wharf::open(dir.path()).unwrap();
    let producer = wharf.producer().build();
    for (key, partition) in placement {
        assert_eq!(
            producer
                .send(Record::new("t", "y").key(key))
                .unwrap()
                .partition(),
            partition
        );
    }
}

#[test]
fn keyless_records_are_spread_round_robin() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf
        .create_topic("t", TopicConfig::default().partitions(4))
        .unwrap();
    let producer = wharf.producer().build();
    let partitions: Vec<u32> = (0..8)
        .map(|_| producer.send(Record::new("t", "x")).unwrap().partition())
        .collect();
    assert_eq!(partitions, [0, 1, 2, 3, 0, 1, 2, 3]);
}

#[derive(Debug)]
struct Always(u32);

impl Partitioner for Always {
    fn partition(&self, _record: &Record, _partitions: u32) -> u32 {
        self.0
    }
}

#[test]
fn explicit_and_custom_partitions_are_honoured_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf
        .create_topic("t", TopicConfig::default().partitions(3))
        .unwrap();
    let producer = wharf.producer().partitioner(Always(2)).build();
    assert_eq!(producer.send(Record::new("t", "x")).unwrap().partition(), 2);
    assert_eq!(
        producer
            .send(Record::new("t", "x").partition(1))
            .unwrap()
            .partition(),
        1
    );
    let err = producer
        .send(Record::new("t", "x").partition(3))
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::PartitionOutOfRange {
            partition: 3,
            partitions: 3,
            ..
        }
    ));
    let bad = wharf.producer().partitioner(Always(9)).build();
    let err = bad.send(Record::new("t", "x")).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::PartitionOutOfRange { partition: 9, .. }
    ));
    assert_eq!(
        wharf.reader("t", 0).unwrap().end_offset(),
        0,
        "nothing written by the failures"
    );
}

#[test]
fn async_sends_complete_at_their_ack_level() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    let handles: Vec<_> = (0..100)
        .map(|i| producer.send_async(Record::new("t", format!("m{i}"))))
        .collect();
    let called = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&called);
    producer
        .send_async(Record::new("t", "cb"))
        .on_complete(move |result| {
            assert_eq!(result.expect("durable").offset(), 100);
            counter.fetch_add(1, Ordering::SeqCst);
        });
    for (i, handle) in handles.into_iter().enumerate() {
        let receipt = handle.wait().unwrap();
        assert_eq!(receipt.offset(), i as u64);
        assert!(wharf.reader("t", 0).unwrap().durable_end_offset() > receipt.offset());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while called.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(called.load(Ordering::SeqCst), 1, "callback ran once");
    let err = producer
        .send_async(Record::new("missing", "x"))
        .wait()
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::TopicNotFound { .. }));
}

#[test]
fn concurrent_fsync_producers_all_get_durable_acks() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let producer = producer.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        producer
                            .send(Record::new("t", format!("{t}-{i}")))
                            .unwrap()
                            .offset()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut offsets: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (0..400).collect::<Vec<_>>());
    assert_eq!(wharf.reader("t", 0).unwrap().durable_end_offset(), 400);
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(10_000)));
    let wharf = Wharf::builder(dir.path())
        .clock(clock.clone())
        .open()
        .unwrap();
    wharf
        .create_topic("t", small_segments().index_interval_bytes(64))
        .unwrap();
    let producer = wharf.producer().build();
    for i in 0..300u64 {
        clock.advance(Duration::from_millis(10));
        producer.send(Record::new("t", payload(i, 40))).unwrap();
    }
    // A record with an old explicit timestamp: the time index keeps the running maximum.
    producer
        .send(Record::new("t", "old").timestamp(Timestamp::from_millis(5)))
        .unwrap();
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    let reader = wharf.reader("t", 0).unwrap();
    assert_eq!(
        reader
            .offset_for_timestamp(Timestamp::from_millis(0))
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        reader
            .offset_for_timestamp(Timestamp::from_millis(10_010))
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        reader
            .offset_for_timestamp(Timestamp::from_millis(10_011))
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        reader
            .offset_for_timestamp(Timestamp::from_millis(11_000))
            .unwrap(),
        Some(99)
    );
    assert_eq!(
        reader
            .offset_for_timestamp(Timestamp::from_millis(13_000))
            .unwrap(),
        Some(299)
    );
    assert_eq!(
        reader
            .offset_for_timestamp(Timestamp::from_millis(13_001))
            .unwrap(),
        None
    );
}

#[test]
fn a_waiting_reader_is_woken_by_an_append() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    let reader = wharf.reader("t", 0).unwrap();
    assert!(
        !reader.wait_for(0, Duration::from_millis(20)),
        "nothing there yet"
    );
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let woken = reader.wait_for(0, Duration::from_secs(30));
        (woken, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(50));
    wharf
        .producer()
        .build()
        .send(Record::new("t", "hello"))
        .unwrap();
    let (woken, waited) = waiter.join().unwrap();
    assert!(woken);
    assert!(
        waited < Duration::from_secs(30),
        "woken by the append, not the timeout"
    );
}

#[test]
fn durable_only_reads_stop_at_the_durable_end() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::builder(dir.path())
        .flush_interval(Duration::from_secs(3_600))
        .open()
        .unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    let producer = wharf.producer().build();
    producer
        .send_with(Record::new("t", "a"), AckMode::Fsync)
        .unwrap();
    producer
        .send_with(Record::new("t", "b"), AckMode::Write)
        .unwrap();
    let reader = wharf.reader("t", 0).unwrap();
    assert_eq!(reader.durable_end_offset(), 1);
    assert_eq!(reader.read(0, ReadOptions::default()).unwrap().len(), 2);
    assert_eq!(
        reader
            .read(0, ReadOptions::default().durable_only(true))
            .unwrap()
            .len(),
        1
    );
    wharf.sync().unwrap();
    assert_eq!(
        reader
            .read(0, ReadOptions::default().durable_only(true))
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn the_flush_policy_syncs_write_acked_data_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::builder(dir.path())
        .flush_interval(Duration::from_millis(20))
        .open()
        .unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    wharf
        .producer()
        .build()
        .send(Record::new("t", "x"))
        .unwrap();
    let reader = wharf.reader("t", 0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.durable_end_offset() < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(reader.durable_end_offset(), 1);

    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::builder(dir.path())
        .flush_interval(Duration::from_secs(3_600))
        .flush_messages(10)
        .open()
        .unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    let producer = wharf.producer().build();
    for _ in 0..10 {
        producer.send(Record::new("t", "x")).unwrap();
    }
    let reader = wharf.reader("t", 0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.durable_end_offset() < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        reader.durable_end_offset(),
        10,
        "synced after 10 messages, not after an hour"
    );
}

#[test]
fn write_acked_records_survive_a_simulated_process_crash() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::builder(dir.path())
        .flush_interval(Duration::from_secs(3_600))
        .open()
        .unwrap();
    wharf.create_topic("t", small_segments()).unwrap();
    let producer = wharf.producer().ack(AckMode::Write).build();
    let mut expected = Vec::new();
    for i in 0..500u64 {
        let body = payload(i, (i % 100) as usize);
        producer.send(Record::new("t", body.clone())).unwrap();
        expected.push(body);
    }
    drop(producer);
    wharf.simulate_crash();
    let wharf = Wharf::open(dir.path()).unwrap();
    let stats = wharf.recovery_stats();
    assert!(!stats.clean_shutdown);
    assert!(stats.scanned_bytes > 0, "the unsynced tail was scanned");
    assert_eq!(payloads(&wharf, "t", 0), expected);
    let next = wharf
        .producer()
        .build()
        .send(Record::new("t", "after"))
        .unwrap();
    assert_eq!(next.offset(), 500);
}

#[test]
fn a_clean_close_means_nothing_is_scanned_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf
        .create_topic("t", small_segments().partitions(2))
        .unwrap();
    let producer = wharf.producer().build();
    for i in 0..300u64 {
        producer.send(Record::new("t", payload(i, 64))).unwrap();
    }
    drop(producer);
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    let stats = wharf.recovery_stats();
    assert!(stats.clean_shutdown);
    assert_eq!(stats.scanned_bytes, 0);
    assert_eq!(stats.partitions, 2);
    assert_eq!(
        read_partition(&wharf, "t", 0).len() + read_partition(&wharf, "t", 1).len(),
        300
    );
}

#[test]
fn recovery_scans_only_past_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::builder(dir.path())
        .flush_interval(Duration::from_secs(3_600))
        .open()
        .unwrap();
    wharf
        .create_topic("t", TopicConfig::default().index_interval_bytes(1_024))
        .unwrap();
    let producer = wharf.producer().build();
    for i in 0..5_000u64 {
        producer.send(Record::new("t", payload(i, 100))).unwrap();
    }
    // Make everything so far durable and checkpointed, then write a small unsynced tail.
    wharf.sync().unwrap();
    wharf.close().unwrap();
    let wharf = Wharf::builder(dir.path())
        .flush_interval(Duration::from_secs(3_600))
        .open()
        .unwrap();
    let producer = wharf.producer().build();
    for i in 0..10u64 {
        producer.send(Record::new("t", payload(i, 100))).unwrap();
    }
    drop(producer);
    wharf.simulate_crash();
    let wharf = Wharf::open(dir.path()).unwrap();
    let stats = wharf.recovery_stats();
    let log_bytes = std::fs::metadata(&segment_files(dir.path(), "t", 0, "log")[0])
        .unwrap()
        .len();
    assert!(
        stats.scanned_bytes < 10 * 200 + 2 * 1_024,
        "scanned {} of {log_bytes} bytes: only the tail after the checkpoint",
        stats.scanned_bytes
    );
    assert_eq!(read_partition(&wharf, "t", 0).len(), 5_010);
}

/// A record's key (if any) and payload, as read back.
type KeyAndPayload = (Option<Vec<u8>>, Vec<u8>);

#[test]
fn borrowed_slices_are_sent_like_records() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    let config = TopicConfig::default()
        .partitions(4)
        .max_message_bytes(1_024);
    wharf.create_topic("t", config).unwrap();
    let mut expected: Vec<Vec<KeyAndPayload>> = vec![Vec::new(); 4];
    for ack in [AckMode::NoWait, AckMode::Write, AckMode::Fsync] {
        let producer = wharf.producer().ack(ack).build();
        for i in 0..40u64 {
            let body = payload(i, 20);
            let key = format!("key-{}", i % 7).into_bytes();
            let key = (i % 3 != 0).then_some(&key[..]);
            let receipt = producer.send_slice("t", key, &body).unwrap();
            assert_eq!(receipt.ack(), ack);
            if let Some(key) = key {
                assert_eq!(
                    receipt.partition(),
                    partition_for_key(key, 4),
                    "keys route as records do"
                );
            }
            let part = &mut expected[receipt.partition() as usize];
            assert_eq!(receipt.offset(), part.len() as u64);
            part.push((key.map(<[u8]>::to_vec), body));
        }
        // Without waiting: batched, appended by the flush.
        for i in 0..10u64 {
            let body = payload(100 + i, 30);
            producer
                .send_oneway_slice("t", Some(b"oneway"), &body)
                .unwrap();
            expected[partition_for_key(b"oneway", 4) as usize]
                .push((Some(b"oneway".to_vec()), body));
        }
        producer.flush().unwrap();
        let too_large = vec![0u8; 2_000];
        assert!(matches!(
            producer
                .send_slice("t", None, &too_large)
                .unwrap_err()
                .kind(),
            ErrorKind::MessageTooLarge { .. }
        ));
        assert!(matches!(
            producer
                .send_oneway_slice("t", None, &too_large)
                .unwrap_err()
                .kind(),
            ErrorKind::MessageTooLarge { .. }
        ));
        assert!(matches!(
            producer
                .send_slice("missing", None, b"x")
                .unwrap_err()
                .kind(),
            ErrorKind::TopicNotFound { .. }
        ));
    }
    let check = |wharf: &Wharf| {
        for (p, want) in expected.iter().enumerate() {
            let got: Vec<KeyAndPayload> = read_partition(wharf, "t", p as u32)
                .iter()
                .map(|m| (m.key().map(<[u8]>::to_vec), m.payload().to_vec()))
                .collect();
            assert_eq!(&got, want, "partition {p}");
        }
    };
    check(&wharf);
    wharf.close().unwrap();
    check(&Wharf::open(dir.path()).unwrap());
}

#[test]
fn keyless_records_sent_without_waiting_stick_to_a_partition_until_its_batch_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf
        .create_topic("t", TopicConfig::default().partitions(4))
        .unwrap();
    let producer = wharf
        .producer()
        .batch_bytes(1_024)
        .linger(Duration::from_secs(3_600))
        .build();
    let count = 1_000u32;
    for i in 0..count {
        let mut body = vec![0u8; 100];
        body[..4].copy_from_slice(&i.to_le_bytes());
        producer.send_oneway_slice("t", None, &body).unwrap();
    }
    producer.flush().unwrap();
    let mut total = 0;
    for p in 0..4 {
        let sent: Vec<u32> = read_partition(&wharf, "t", p)
            .iter()
            .map(|m| u32::from_le_bytes(m.payload()[..4].try_into().unwrap()))
            .collect();
        total += sent.len();
        // Batches fill in turn, so every partition gets about a quarter.
        assert!(sent.len() >= 200, "partition {p} got {}", sent.len());
        // Runs of consecutive records (a batch of about 9), not one record in four.
        let runs = 1 + sent.windows(2).filter(|w| w[1] != w[0] + 1).count();
        assert!(
            sent.len() / runs >= 5,
            "partition {p}: {} records in {runs} runs",
            sent.len()
        );
    }
    assert_eq!(total, count as usize);
}
