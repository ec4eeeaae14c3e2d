//! Retry and delay costs.
//!
//! - `retry/poll_nack_each_100B`: consume 100,000 records of 100 B and `nack` each (a retry
//!   copy written to the delay topic under `Write`), next to `retry/poll_ack_each_100B`, the
//!   same loop acknowledging each record, in the same run.
//! - Scheduler lag (printed, not a criterion measurement): 1,000,000 records sent with a 5 s
//!   delay as fast as the producer can, so all of them wait at once; a consumer of the target
//!   topic measures, for each, the time from its due time to its delivery. Prints p50, p99 and
//!   the maximum.
//!
//! ```text
//! cargo bench --bench retry
//! ```
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use wharf::{AckMode, DelayLevel, ManualClock, Record, Retry, Timestamp, TopicConfig, Wharf};

const RECORDS: u64 = 100_000;
const POLL: usize = 10_000;
const LAG_RECORDS: u64 = 1_000_000;
/// Level 2 of the default table.
const LAG_LEVEL: u8 = 2;
const LAG_DELAY_MS: i64 = 5_000;

/// A fresh group name per measurement, so each starts from the earliest record.
fn group_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("bench-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn prefill(wharf: &Wharf, topic: &str, records: u64) {
    wharf
        .create_topic(topic, TopicConfig::default())
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
    for chunk in records.chunks(1_000) {
        producer.send_batch(chunk.to_vec()).expect("send");
    }
    wharf.sync().expect("sync");
}

/// Consumes `RECORDS` records of `topic` with a fresh group, settling each with `settle`.
fn consume_each(wharf: &Wharf, settle: impl Fn(wharf::Delivery)) {
    let mut consumer = wharf
        .consumer(&group_name())
        .subscribe(["bench"])
        .commit_ack(AckMode::Write)
        .build()
        .expect("consumer");
    let mut count = 0u64;
    while count < RECORDS {
        let deliveries = consumer
            .poll_batch(POLL, Duration::from_secs(10))
            .expect("poll");
        count += deliveries.len() as u64;
        for delivery in deliveries {
            settle(delivery);
        }
        consumer.commit_acked().expect("commit");
    }
    consumer.close().expect("close");
}

fn nack(c: &mut Criterion) {
    let dir = common::bench_dir();
    // A clock that never moves: retries wait in the delay topic for the whole run.
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let wharf = Wharf::builder(dir.path())
        .clock(clock)
        .open()
        .expect("open");
    prefill(&wharf, "bench", RECORDS);
    let mut group = c.benchmark_group("retry");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("poll_ack_each_100B", |b| {
        b.iter(|| consume_each(&wharf, |d| d.ack().expect("ack")));
    });
    group.bench_function("poll_nack_each_100B", |b| {
        b.iter(|| consume_each(&wharf, |d| d.nack(Retry::Default).expect("nack")));
    });
    group.finish();
}

/// Due-to-delivery lag of 1,000,000 delayed records waiting at once.
fn scheduler_lag() {
    let dir = common::bench_dir();
    let wharf = Wharf::open(dir.path()).expect("open");
    wharf
        .create_topic("lag", TopicConfig::default())
        .expect("topic");
    let mut consumer = wharf
        .consumer("lag")
        .subscribe(["lag"])
        .commit_ack(AckMode::Write)
        .build()
        .expect("consumer");
    let producer = wharf.producer().ack(AckMode::Write).build();
    let payload = common::payloads(1, 100).pop().expect("payload");
    let started = Instant::now();
    let mut sent = 0;
    while sent < LAG_RECORDS {
        let batch: Vec<Record> = (0..1_000)
            .map(|_| Record::new("lag", payload.clone()).delay(DelayLevel::new(LAG_LEVEL).get()))
            .collect();
        producer.send_batch(batch).expect("send");
        sent += 1_000;
    }
    let send_time = started.elapsed();
    let pending: u64 = wharf.admin().delay_status().waiting.iter().sum();
    let mut lags: Vec<i64> = Vec::with_capacity(LAG_RECORDS as usize);
    while (lags.len() as u64) < LAG_RECORDS {
        let deliveries = consumer
            .poll_batch(POLL, Duration::from_secs(30))
            .expect("poll");
        assert!(!deliveries.is_empty(), "delayed records stopped coming");
        let now = Timestamp::now().as_millis();
        // The stored timestamp is the send time; the record was due LAG_DELAY_MS later.
        lags.extend(
            deliveries
                .iter()
                .map(|d| now - (d.timestamp().as_millis() + LAG_DELAY_MS)),
        );
        consumer.commit().expect("commit");
    }
    lags.sort_unstable();
    let at = |percent: usize| lags[(lags.len() - 1) * percent / 100];
    println!(
        "scheduler lag, {LAG_RECORDS} records delayed 5 s (sent in {:.2} s, {pending} waiting at the end of the sends): \
         p50 {} ms, p99 {} ms, max {} ms, early {}",
        send_time.as_secs_f64(),
        at(50),
        at(99),
        at(100),
        lags.iter().filter(|&&lag| lag < 0).count(),
    );
    consumer.close().expect("close");
    wharf.close().expect("close");
}

criterion_group!(benches, nack);

fn main() {
    benches();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: skip the long run then.
    if std::env::args().any(|a| a == "--bench") {
        scheduler_lag();
    }
    Criterion::default().configure_from_args().final_summary();
}
