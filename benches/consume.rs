//! Consumer throughput: polling 1,000,000 records of 100 B with a commit per batch, next to a
//! plain scan of the same partition in the same run, for records sent in batches of 1,000 and
//! sent one by one (with `poll_into`, reusing the caller's buffer); per-message acks; commits under `Fsync`
//! with 1 and 8 consumers (group-committed); the poll cost per redelivered record with 100,
//! 1,000 and 10,000 deliveries past their `ack_wait` at once; the latency of one member's polls
//! while another member of its group commits under `Fsync` in a loop (p50 / p99 / p99.9 / max
//! printed).
//!
//! ```text
//! cargo bench --bench consume
//! cargo bench --bench consume -- redeliver
//! ```
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wharf::{AckMode, ReadOptions, Record, SeekTo, TopicConfig, TopicPartition, Wharf};

const RECORDS: u64 = 1_000_000;
const POLL: usize = 10_000;

/// A fresh group name per measurement, so each starts from the earliest record.
fn group_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("bench-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn prefill(wharf: &Wharf, topic: &str, partitions: u32, records: u64) {
    prefill_in_batches(wharf, topic, partitions, records, 1_000);
}

/// Sends `records` records of 100 B to a new topic, `batch` records per `send_batch`.
fn prefill_in_batches(wharf: &Wharf, topic: &str, partitions: u32, records: u64, batch: usize) {
    wharf
        .create_topic(topic, TopicConfig::default().partitions(partitions))
        .expect("topic");
    let producer = wharf.producer().ack(AckMode::Write).build();
    let payloads = common::payloads(1_024, 100);
    let records: Vec<Record> = (0..records)
        .map(|i| {
            Record::new(
                topic.to_owned(),
                payloads[i as usize % payloads.len()].clone(),
            )
        })
        .collect();
    for chunk in records.chunks(batch) {
        producer.send_batch(chunk.to_vec()).expect("send");
    }
    wharf.sync().expect("sync");
}

/// A consumer of `topic` in a new group (so it starts from the earliest record), committing
/// under `Write`.
fn fresh_consumer(wharf: &Wharf, topic: &str) -> wharf::Consumer {
    wharf
        .consumer(&group_name())
        .subscribe([topic])
        .commit_ack(AckMode::Write)
        .build()
        .expect("consumer")
}

/// Sends `records` records of 100 B to a new topic, one `send_slice` each.
fn prefill_one_by_one(wharf: &Wharf, topic: &str, records: u64) {
    wharf
        .create_topic(topic, TopicConfig::default())
        .expect("topic");
    let producer = wharf.producer().ack(AckMode::Write).build();
    let payloads = common::payloads(1_024, 100);
    for i in 0..records {
        producer
            .send_slice(topic, None, &payloads[i as usize % payloads.len()])
            .expect("send");
    }
    wharf.sync().expect("sync");
}

fn poll(c: &mut Criterion) {
    let dir = common::bench_dir();
    let wharf = Wharf::open(dir.path()).expect("open");
    prefill(&wharf, "bench", 1, RECORDS);
    let mut group = c.benchmark_group("consume");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("plain_scan_100B_1M", |b| {
        let reader = wharf.reader("bench", 0).expect("reader");
        b.iter(|| {
            let (mut offset, mut bytes) = (0, 0usize);
            while offset < RECORDS {
                let batch = reader
                    .read(offset, ReadOptions::default().max_records(POLL))
                    .expect("read");
                bytes += batch.iter().map(|m| m.payload().len()).sum::<usize>();
                offset = batch.next_offset();
            }
            black_box(bytes)
        });
    });
    group.bench_function("poll_commit_per_batch_100B_1M", |b| {
        b.iter(|| {
            let mut consumer = fresh_consumer(&wharf, "bench");
            let (mut count, mut bytes) = (0u64, 0usize);
            while count < RECORDS {
                let deliveries = consumer
                    .poll_batch(POLL, Duration::from_secs(10))
                    .expect("poll");
                count += deliveries.len() as u64;
                bytes += deliveries.iter().map(|d| d.payload().len()).sum::<usize>();
                drop(deliveries);
                consumer.commit().expect("commit");
            }
            black_box(bytes)
        });
    });
    // The same read of data sent one record per `send` (one batch per record on disk).
    prefill_one_by_one(&wharf, "single", RECORDS);
    group.bench_function("poll_commit_per_batch_100B_1M_single_sends", |b| {
        b.iter(|| {
            let mut consumer = fresh_consumer(&wharf, "single");
            let (mut count, mut bytes) = (0u64, 0usize);
            let mut deliveries = Vec::new();
            while count < RECORDS {
                consumer
                    .poll_into(&mut deliveries, POLL, Duration::from_secs(10))
                    .expect("poll");
                count += deliveries.len() as u64;
                bytes += deliveries.iter().map(|d| d.payload().len()).sum::<usize>();
                deliveries.clear();
                consumer.commit().expect("commit");
            }
            black_box(bytes)
        });
    });
    group.bench_function("poll_ack_each_100B_1M", |b| {
        b.iter(|| {
            let mut consumer = fresh_consumer(&wharf, "bench");
            let mut count = 0u64;
            while count < RECORDS {
                let deliveries = consumer
                    .poll_batch(POLL, Duration::from_secs(10))
                    .expect("poll");
                count += deliveries.len() as u64;
                for delivery in deliveries {
                    delivery.ack().expect("ack");
                }
                consumer.commit_acked().expect("commit");
            }
            black_box(count)
        });
    });
    group.finish();
}

/// Commits per second under `Fsync`: each consumer holds one partition and commits after
/// every record.
fn commits(c: &mut Criterion) {
    let dir = common::bench_dir();
    let wharf = Wharf::open(dir.path()).expect("open");
    prefill(&wharf, "commits", 8, 1_600_000);
    let mut group = c.benchmark_group("commit_fsync");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    for consumers in [1usize, 8] {
        group.bench_function(format!("{consumers}_consumers"), |b| {
            b.iter_custom(|iters| {
                let group_id = group_name();
                let per = iters.div_ceil(consumers as u64);
                let started = Instant::now();
                std::thread::scope(|scope| {
                    for p in 0..consumers {
                        let wharf = &wharf;
                        let group_id = &group_id;
                        scope.spawn(move || {
                            let mut consumer = wharf
                                .consumer(group_id)
                                .assign([("commits", p as u32)])
                                .build()
                                .expect("consumer");
                            for _ in 0..per {
                                let delivery = consumer
                                    .poll(Duration::from_secs(10))
                                    .expect("poll")
                                    .expect("a record");
                                consumer.commit_message(&delivery).expect("commit");
                            }
                        });
                    }
                });
                started
                    .elapsed()
                    .mul_f64(iters as f64 / (per * consumers as u64) as f64)
            });
        });
    }
    group.finish();
}

/// Poll cost per redelivered record: `expired` deliveries in flight, all past their `ack_wait`,
/// redelivered by one `poll_batch` and kept in flight (so they expire again for the next
/// round). A redelivery reads its record's whole batch, so every size is sent in batches of
/// [`REDELIVER_BATCH`] records. One consumer per size, never dead-lettering; a call of the measured routine runs at
/// most [`REDELIVER_ROUNDS`] rounds and reports the mean per redelivery, so criterion's many
/// iterations do not turn into as many sleeps through `ack_wait`.
fn redeliver(c: &mut Criterion) {
    const ACK_WAIT: Duration = Duration::from_millis(1);
    let dir = common::bench_dir();
    let wharf = Wharf::open(dir.path()).expect("open");
    let mut group = c.benchmark_group("redeliver");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(1));
    for expired in [100u64, 1_000, 10_000] {
        let topic = format!("redeliver-{expired}");
        prefill_in_batches(&wharf, &topic, 1, expired, REDELIVER_BATCH);
        let mut consumer = wharf
            .consumer(&group_name())
            .assign([(topic.as_str(), 0)])
            .ack_wait(ACK_WAIT)
            .max_in_flight(expired as usize)
            .max_reconsume_times(u32::MAX)
            .commit_ack(AckMode::Write)
            .build()
            .expect("consumer");
        // First deliveries, dropped undecided: they stay in flight.
        let mut delivered = 0;
        while delivered < expired {
            delivered += consumer
                .poll_batch(expired as usize, Duration::from_secs(10))
                .expect("poll")
                .len() as u64;
        }
        group.bench_function(format!("{expired}_expired"), |b| {
            b.iter_custom(|iters| {
                let rounds = iters.div_ceil(expired).min(REDELIVER_ROUNDS);
                let mut spent = Duration::ZERO;
                for _ in 0..rounds {
                    std::thread::sleep(ACK_WAIT * 2);
                    let started = Instant::now();
                    let again = consumer
                        .poll_batch(expired as usize, Duration::from_secs(10))
                        .expect("poll");
                    spent += started.elapsed();
                    assert_eq!(again.len() as u64, expired, "every delivery comes back");
                    assert!(again.iter().all(|d| d.attempt() > 1), "redeliveries only");
                }
                spent.mul_f64(iters as f64 / (rounds * expired) as f64)
            });
        });
    }
    group.finish();
}

/// Records in the polling member's partition; it seeks back to the start at the end.
const POLLED_RECORDS: u64 = 1_000_000;

/// One member polls one record at a time from its partition (acking each, untimed) while
/// another member of the group commits under `Fsync` in a loop on another thread, every
/// partition it holds at once: 1, or 256 (whose commit records, about 6 KiB, make the offsets
/// file reach its 1 MiB compaction threshold every 160 or so commits). Criterion reports the
/// mean poll; the percentiles of every timed poll (warm-up included), the polls that took
/// 1 ms or more (a poll waiting behind a sync is one slow sample among millions, so it shows
/// there and in the mean, not in the percentiles) and the commit rate are printed after.
fn poll_while_committing(c: &mut Criterion) {
    let dir = common::bench_dir();
    let wharf = Wharf::open(dir.path()).expect("open");
    wharf
        .create_topic("polled", TopicConfig::default())
        .expect("topic");
    let producer = wharf.producer().ack(AckMode::Write).build();
    let payloads = common::payloads(1_024, 100);
    for chunk in 0..POLLED_RECORDS / 1_000 {
        let records: Vec<Record> = (0..1_000)
            .map(|i| {
                let payload = payloads[(chunk * 1_000 + i) as usize % payloads.len()].clone();
                Record::new("polled", payload)
            })
            .collect();
        producer.send_batch(records).expect("send");
    }
    wharf.sync().expect("sync");
    let mut group = c.benchmark_group("consume/poll_while_another_member_commits_fsync");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    for partitions in [1u32, 256] {
        let committed = format!("committed-{partitions}");
        wharf
            .create_topic(&committed, TopicConfig::default().partitions(partitions))
            .expect("topic");
        // One group; each member subscribes to its own topic, so it gets all of it.
        let name = group_name();
        let committer = wharf.consumer(&name).subscribe([committed]).build();
        let mut committer = committer.expect("committer");
        let mut poller = wharf.consumer(&name).subscribe(["polled"]).build();
        let poller = poller.as_mut().expect("poller");
        assert!(committer.poll(Duration::ZERO).expect("poll").is_none());
        assert_eq!(committer.assignment().len(), partitions as usize);
        let polled = TopicPartition::new("polled", 0);
        let stop = AtomicBool::new(false);
        let commits = AtomicU64::new(0);
        let mut nanos: Vec<u64> = Vec::new();
        let started = Instant::now();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    committer.commit().expect("durable commit");
                    commits.fetch_add(1, Ordering::Relaxed);
                }
            });
            group.bench_function(format!("{partitions}_committed_partitions"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        if poller.position(&polled).unwrap_or(0) >= POLLED_RECORDS {
                            poller.seek(&polled, SeekTo::Beginning).expect("seek");
                        }
                        let begun = Instant::now();
                        let delivery = poller.poll(Duration::from_secs(10)).expect("poll");
                        let took = begun.elapsed();
                        delivery.expect("a record").ack().expect("ack");
                        total += took;
                        nanos.push(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
                    }
                    total
                });
            });
            stop.store(true, Ordering::Relaxed);
        });
        let elapsed = started.elapsed();
        nanos.sort_unstable();
        let at = |per_mille: usize| nanos[(nanos.len() - 1) * per_mille / 1_000] as f64 / 1e3;
        let commits = commits.load(Ordering::Relaxed);
        let slow: Vec<u64> = nanos.iter().copied().filter(|n| *n >= 1_000_000).collect();
        println!(
            "{partitions} committed partitions: {} polls: p50 {:.2} µs, p99 {:.2} µs, \
             p99.9 {:.2} µs, max {:.1} µs; {} polls of 1 ms or more, {:.1} ms in all; \
             {commits} Fsync commits meanwhile ({:.0}/s)",
            nanos.len(),
            at(500),
            at(990),
            at(999),
            at(1_000),
            slow.len(),
            slow.iter().sum::<u64>() as f64 / 1e6,
            commits as f64 / elapsed.as_secs_f64(),
        );
    }
    group.finish();
}

/// Most rounds of redeliveries one call of the measured routine runs.
const REDELIVER_ROUNDS: u64 = 20;
/// Records per batch sent for the redelivery bench.
const REDELIVER_BATCH: usize = 100;

criterion_group!(benches, poll, commits, redeliver, poll_while_committing);
criterion_main!(benches);
