//! Append throughput: `send` per ack mode × record size × producer threads, `send_batch`, and
//! the two ways to put bytes in a segment file (`memcpy` into a shared mapping vs one `pwrite`
//! per record), which is why the active segment is written through a mapping.
//!
//! ```text
//! cargo bench --bench append                      # everything
//! cargo bench --bench append -- 'send/Write'      # one group
//! cargo bench --bench append -- 'send_async'      # asynchronous Fsync sends
//! WHARF_BENCH_DIR=/mnt/disk cargo bench --bench append
//! ```

#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

mod common;

use std::hint::black_box;
use std::io::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wharf::{AckMode, Record, TopicConfig, Wharf};

const TOPIC: &str = "bench";

/// Times `iters` sends spread over `producers` threads, on a fresh Wharf.
fn time_sends(iters: u64, ack: AckMode, producers: u64, payloads: &[Bytes]) -> Duration {
    let dir = common::bench_dir();
    let wharf = Wharf::open(dir.path()).expect("open");
    wharf
        .create_topic(TOPIC, TopicConfig::default())
        .expect("topic");
    let producer = wharf.producer().ack(ack).build();
    let per_thread = iters.div_ceil(producers);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..producers {
            let producer = producer.clone();
            scope.spawn(move || {
                for i in 0..per_thread {
                    let payload =
                        payloads[((t * per_thread + i) as usize) % payloads.len()].clone();
                    let record = Record::new(TOPIC, payload);
                    if ack == AckMode::NoWait {
                        // Its own API: batched by the producer's accumulator.
                        producer.send_oneway(record).expect("send");
                    } else {
                        black_box(producer.send(record).expect("send"));
                    }
                }
                producer.flush().expect("flush");
            });
        }
    });
    let elapsed = started.elapsed();
    drop(producer);
    wharf.close().expect("close");
    elapsed.mul_f64(iters as f64 / (per_thread * producers) as f64)
}

fn send(c: &mut Criterion) {
    for (ack, window) in [
        (AckMode::Write, 3),
        (AckMode::NoWait, 3),
        (AckMode::Fsync, 5),
    ] {
        let mut group = c.benchmark_group(format!("send/{ack:?}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(window));
        for size in [100usize, 1_024] {
            let payloads = common::payloads(1_024, size);
            for producers in [1u64, 4, 16] {
                group.throughput(Throughput::Elements(1));
                let id = BenchmarkId::new(format!("{size}B"), format!("{producers}p"));
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| time_sends(iters, ack, producers, &payloads));
                });
            }
        }
        group.finish();
    }
}

/// Times `iters` sends of borrowed slices (`send_slice`, or `send_oneway_slice` + a final
/// flush for `NoWait`) from one thread, on a fresh Wharf.
fn time_slice_sends(iters: u64, ack: AckMode, payloads: &[Bytes]) -> Duration {
    let dir = common::bench_dir();
    let wharf = Wharf::open(dir.path()).expect("open");
    wharf
        .create_topic(TOPIC, TopicConfig::default())
        .expect("topic");
    let producer = wharf.producer().ack(ack).build();
    let started = Instant::now();
    for i in 0..iters {
        let payload: &[u8] = &payloads[i as usize % payloads.len()];
        if ack == AckMode::NoWait {
            producer
                .send_oneway_slice(TOPIC, None, payload)
                .expect("send");
        } else {
            black_box(producer.send_slice(TOPIC, None, payload).expect("send"));
        }
    }
    producer.flush().expect("flush");
    let elapsed = started.elapsed();
    drop(producer);
    wharf.close().expect("close");
    elapsed
}

/// One producer sending payloads it holds as `&[u8]`: no `Record`, no copy before the
/// segment (or the producer's batch).
fn send_slice(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_slice");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let payloads = common::payloads(1_024, 100);
    for ack in [AckMode::Write, AckMode::NoWait] {
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("100B", format!("{ack:?}")), |b| {
            b.iter_custom(|iters| time_slice_sends(iters, ack, &payloads));
        });
    }
    group.finish();
}

/// Times `iters` `send_async` calls from one thread keeping `in_flight` handles open (it
/// waits for the oldest before sending past that), on a fresh Wharf: the flusher thread does
/// the group syncs.
fn time_async_sends(iters: u64, in_flight: usize, payloads: &[Bytes]) -> Duration {
    let dir = common::bench_dir();
    let wharf = Wharf::open(dir.path()).expect("open");
    wharf
        .create_topic(TOPIC, TopicConfig::default())
        .expect("topic");
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    let mut pending = std::collections::VecDeque::with_capacity(in_flight);
    let started = Instant::now();
    for i in 0..iters {
        if pending.len() == in_flight {
            let handle: wharf::SendHandle = pending.pop_front().expect("in flight");
            black_box(handle.wait().expect("send"));
        }
        let payload = payloads[i as usize % payloads.len()].clone();
        pending.push_back(producer.send_async(Record::new(TOPIC, payload)));
    }
    for handle in pending {
        black_box(handle.wait().expect("send"));
    }
    let elapsed = started.elapsed();
    drop(producer);
    wharf.close().expect("close");
    elapsed
}

/// `Fsync` through `send_async` with 1 and 16 sends in flight, next to blocking `send` from 16
/// threads in the same run.
fn send_async(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_async/Fsync");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    let payloads = common::payloads(1_024, 100);
    for in_flight in [1usize, 16] {
        let id = BenchmarkId::new("100B", format!("{in_flight}_in_flight"));
        group.bench_function(id, |b| {
            b.iter_custom(|iters| time_async_sends(iters, in_flight, &payloads));
        });
    }
    group.bench_function(BenchmarkId::new("100B", "send_16_threads"), |b| {
        b.iter_custom(|iters| time_sends(iters, AckMode::Fsync, 16, &payloads));
    });
    group.finish();
}

fn send_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_batch");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let payloads = common::payloads(1_000, 100);
    for ack in [AckMode::Write, AckMode::Fsync] {
        group.throughput(Throughput::Elements(payloads.len() as u64));
        group.bench_function(BenchmarkId::new("100B_x1000", format!("{ack:?}")), |b| {
            b.iter_custom(|iters| {
                let dir = common::bench_dir();
                let wharf = Wharf::open(dir.path()).expect("open");
                wharf
                    .create_topic(TOPIC, TopicConfig::default())
                    .expect("topic");
                let producer = wharf.producer().ack(ack).build();
                let started = Instant::now();
                for _ in 0..iters {
                    let batch = payloads.iter().map(|p| Record::new(TOPIC, p.clone()));
                    black_box(producer.send_batch(batch).expect("send_batch"));
                }
                let elapsed = started.elapsed();
                wharf.close().expect("close");
                elapsed
            });
        });
    }
    group.finish();
}

/// The raw cost of the two ways to append 100 B records (no wharf code): a `memcpy` into a
/// preallocated shared mapping, and one `pwrite` system call per record.
fn backend(c: &mut Criterion) {
    const FILE_BYTES: u64 = 256 << 20;
    let mut group = c.benchmark_group("backend");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    let record = [7u8; 100];
    group.bench_function("mmap_memcpy_100B", |b| {
        b.iter_custom(|iters| {
            let dir = common::bench_dir();
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.path().join("seg"))
                .expect("file");
            fs2::FileExt::allocate(&file, FILE_BYTES).expect("allocate");
            let mut map = map_file(&file, FILE_BYTES);
            let slots = FILE_BYTES as usize / record.len();
            let started = Instant::now();
            for i in 0..iters as usize {
                let at = (i % slots) * record.len();
                map[at..at + record.len()].copy_from_slice(&record);
            }
            black_box(&map);
            started.elapsed()
        });
    });
    group.bench_function("pwrite_100B", |b| {
        b.iter_custom(|iters| {
            let dir = common::bench_dir();
            let mut file = std::fs::File::create(dir.path().join("seg")).expect("file");
            fs2::FileExt::allocate(&file, FILE_BYTES).expect("allocate");
            let started = Instant::now();
            for i in 0..iters {
                if i % (FILE_BYTES / 100) == 0 {
                    std::io::Seek::rewind(&mut file).expect("rewind");
                }
                file.write_all(&record).expect("write");
            }
            started.elapsed()
        });
    });
    group.finish();
}

/// A writable mapping of `file` through `memmap2::MmapMut` (`map_mut` is `unsafe` because
/// another process could change the file; this bench owns it).
fn map_file(file: &std::fs::File, len: u64) -> memmap2::MmapMut {
    #[allow(unsafe_code)]
    // SAFETY: the file is private to this benchmark and is not truncated while mapped.
    unsafe {
        memmap2::MmapOptions::new()
            .len(len as usize)
            .map_mut(file)
            .expect("map")
    }
}

criterion_group!(benches, send, send_slice, send_async, send_batch, backend);
criterion_main!(benches);
