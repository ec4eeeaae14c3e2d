//! The main job on an embedded default: open a Wharf in a temporary directory, create a topic,
//! produce under each ack mode, read everything back, reopen, and print what happened.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use std::time::{Duration, Instant};

use wharf::{AckMode, ReadOptions, Record, TopicConfig, Wharf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("queue");
    println!("data directory: {}", path.display());

    let wharf = Wharf::open(&path)?;
    wharf.create_topic("orders", TopicConfig::default().partitions(3))?;
    println!("created topic \"orders\" with 3 partitions");

    for (ack, count) in [
        (AckMode::NoWait, 100_000u32),
        (AckMode::Write, 100_000),
        (AckMode::Fsync, 200),
    ] {
        let producer = wharf.producer().ack(ack).build();
        let started = Instant::now();
        let mut last = None;
        for i in 0..count {
            let record = Record::new("orders", format!("order-{i} sent with {ack:?}"))
                .key(format!("user-{}", i % 50));
            last = Some(producer.send(record)?);
        }
        let elapsed = started.elapsed();
        let last = last.ok_or("nothing sent")?;
        println!(
            "{ack:?}: {count} records in {elapsed:.2?} ({:.0} records/s); last went to partition {} offset {}",
            f64::from(count) / elapsed.as_secs_f64(),
            last.partition(),
            last.offset()
        );
    }

    let producer = wharf.producer().ack(AckMode::Fsync).build();
    let batch: Vec<Record> = (0..1_000)
        .map(|i| Record::new("orders", format!("batch-{i}")))
        .collect();
    let started = Instant::now();
    let receipts = producer.send_batch(batch)?;
    println!(
        "send_batch: {} records, one sync per partition, in {:.2?}",
        receipts.len(),
        started.elapsed()
    );

    let total = read_all(&wharf)?;
    println!("read back {total} records from 3 partitions, every batch checked against its CRC");

    let mut consumer = wharf.consumer("billing").subscribe(["orders"]).build()?;
    let mut consumed = 0u64;
    while consumed < total {
        consumed += consumer.poll_batch(10_000, Duration::from_secs(5))?.len() as u64;
        consumer.commit()?;
    }
    let lag: u64 = consumer.lag().iter().map(|l| l.lag).sum();
    println!(
        "consumer group \"billing\" consumed {consumed} records and committed them; lag {lag}"
    );
    consumer.close()?;

    wharf.close()?;
    let wharf = Wharf::open(&path)?;
    let stats = wharf.recovery_stats();
    println!(
        "reopened: clean shutdown = {}, bytes scanned by recovery = {}",
        stats.clean_shutdown, stats.scanned_bytes
    );
    assert_eq!(
        read_all(&wharf)?,
        total,
        "every record survives a close and reopen"
    );
    println!("all {total} records are still there after reopening");
    let mut consumer = wharf.consumer("billing").subscribe(["orders"]).build()?;
    let again = consumer
        .poll_batch(10_000, Duration::from_millis(200))?
        .len();
    println!("the group resumes after its committed offsets: {again} records delivered again");
    consumer.close()?;
    wharf.close()?;
    Ok(())
}

fn read_all(wharf: &Wharf) -> wharf::Result<u64> {
    let mut total = 0;
    for partition in 0..3 {
        let reader = wharf.reader("orders", partition)?;
        let mut offset = reader.start_offset();
        while offset < reader.end_offset() {
            let batch = reader.read(offset, ReadOptions::default().max_records(10_000))?;
            total += batch.len() as u64;
            offset = batch.next_offset();
        }
    }
    Ok(total)
}
