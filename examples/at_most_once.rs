//! At-most-once consumption: commit, then process. A crash between the two skips the
//! records that were committed but not processed (loss is possible, duplicates are not).
//!
//! Failure window: records committed but not yet processed when the process dies are never
//! processed. `CommitPolicy::Auto` has the same window: it commits on each poll what earlier
//! polls returned.
//!
//! ```text
//! cargo run --example at_most_once
//! ```

use std::time::Duration;

use wharf::{AckMode, Record, TopicConfig, Wharf};

fn main() -> wharf::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let wharf = Wharf::open(dir.path())?;
    wharf.create_topic("metrics", TopicConfig::default())?;
    let producer = wharf.producer().ack(AckMode::Write).build();
    producer.send_batch((0..10).map(|i| Record::new("metrics", format!("sample-{i}"))))?;

    let mut consumer = wharf.consumer("dashboard").subscribe(["metrics"]).build()?;
    let mut seen = 0;
    while seen < 10 {
        let batch = consumer.poll_batch(100, Duration::from_secs(1))?;
        // Commit first: after this a restart never sees these records again...
        consumer.commit()?;
        for delivery in &batch {
            // ...then process (a crash here loses what is left of the batch).
            println!("plotting {}", String::from_utf8_lossy(delivery.payload()));
            seen += 1;
        }
    }
    println!("{seen} records seen, each at most once");
    Ok(())
}
