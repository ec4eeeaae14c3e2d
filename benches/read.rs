//! Scan throughput: read 1,000,000 records of 100 B back in order, the first time after a
//! reopen (every batch checked against its CRC and its record structure) and again (checked
//! once per process: the check is skipped).
//!
//! ```text
//! cargo bench --bench read
//! ```

#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use wharf::{AckMode, PartitionReader, ReadOptions, Record, TopicConfig, Wharf};

const RECORDS: u64 = 1_000_000;

fn scan(c: &mut Criterion) {
    let dir = common::bench_dir();
    {
        let wharf = Wharf::open(dir.path()).expect("open");
        wharf
            .create_topic("bench", TopicConfig::default())
            .expect("topic");
        let producer = wharf.producer().ack(AckMode::Write).build();
        let payloads = common::payloads(1_024, 100);
        let records = (0..RECORDS)
            .map(|i| Record::new("bench", payloads[i as usize % payloads.len()].clone()));
        let records: Vec<Record> = records.collect();
        for chunk in records.chunks(1_000) {
            producer.send_batch(chunk.to_vec()).expect("send");
        }
        wharf.close().expect("close");
    }
    let mut group = c.benchmark_group("scan");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(RECORDS));
    // The first read in a process checks every batch (CRC and record structure); later reads
    // of the same segments skip the check. Each iteration here reopens the directory.
    group.bench_function("100B_1M_read_10000_first_after_reopen", |b| {
        b.iter_batched(
            || Wharf::open(dir.path()).expect("reopen"),
            |wharf| {
                let reader = wharf.reader("bench", 0).expect("reader");
                black_box(read_all(&reader, 10_000));
                wharf
            },
            BatchSize::PerIteration,
        );
    });
    let wharf = Wharf::open(dir.path()).expect("reopen");
    let reader = wharf.reader("bench", 0).expect("reader");
    for max_records in [500usize, 10_000] {
        group.bench_function(format!("100B_1M_read_{max_records}"), |b| {
            b.iter(|| black_box(read_all(&reader, max_records)));
        });
    }
    group.finish();
}

/// Reads every record, `max_records` per read; the payload bytes seen.
fn read_all(reader: &PartitionReader, max_records: usize) -> usize {
    let mut offset = 0;
    let mut bytes = 0usize;
    while offset < RECORDS {
        let batch = reader
            .read(offset, ReadOptions::default().max_records(max_records))
            .expect("read");
        for message in &batch {
            bytes += message.payload().len();
        }
        offset = batch.next_offset();
    }
    assert_eq!(bytes, RECORDS as usize * 100);
    bytes
}

criterion_group!(benches, scan);
criterion_main!(benches);
