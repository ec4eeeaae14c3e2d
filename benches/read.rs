//! Scan throughput: read 1,000,000 records of 100 B back in order (every batch checked against
//! its CRC), next to a plain `memcpy`-free pass over the same file's bytes as the floor.
//!
//! ```text
//! cargo bench --bench read
//! ```

#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wharf::{AckMode, ReadOptions, Record, TopicConfig, Wharf};

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
    let wharf = Wharf::open(dir.path()).expect("reopen");
    let reader = wharf.reader("bench", 0).expect("reader");
    let mut group = c.benchmark_group("scan");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(RECORDS));
    for max_records in [500usize, 10_000] {
        group.bench_function(format!("100B_1M_read_{max_records}"), |b| {
            b.iter(|| {
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
                black_box(bytes)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
