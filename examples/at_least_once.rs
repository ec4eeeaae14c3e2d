//! At-least-once consumption: process, then commit. A crash between the two delivers the
//! records again after the restart (duplicates are possible, loss is not), so processing must
//! tolerate seeing a record twice (be idempotent, or deduplicate by offset).
//!
//! Failure window: records processed after the last commit are processed again.
//!
//! ```text
//! cargo run --example at_least_once
//! ```

use std::time::Duration;

use wharf::{AckMode, Record, TopicConfig, Wharf};

fn main() -> wharf::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let wharf = Wharf::open(dir.path())?;
    wharf.create_topic("orders", TopicConfig::default().partitions(2))?;
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    producer.send_batch((0..10).map(|i| Record::new("orders", format!("order-{i}"))))?;

    let mut consumer = wharf.consumer("billing").subscribe(["orders"]).build()?;
    let mut processed = 0;
    while processed < 10 {
        let batch = consumer.poll_batch(100, Duration::from_secs(1))?;
        for delivery in &batch {
            // Process first...
            println!(
                "billing {} (partition {}, offset {})",
                String::from_utf8_lossy(delivery.payload()),
                delivery.partition(),
                delivery.offset()
            );
            processed += 1;
        }
        // ...then commit: once this returns (Fsync by default), a restart resumes after it.
        consumer.commit()?;
    }
    println!(
        "{processed} records processed and committed; lag now: {:?}",
        consumer.lag().iter().map(|l| l.lag).collect::<Vec<_>>()
    );
    Ok(())
}
