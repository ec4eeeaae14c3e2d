//! kafko 0.3, an in-process Kafka-like log on tokio: one topic with one partition,
//! `Producer::send` per message, the borrowed payload copied into the `Bytes` it takes (a
//! command to the partition's writer task, which writes the record to the segment file and
//! replies once it is in the page cache).
//!
//! - `kafko` (W1, W5): the sends run in one `block_on` on a 2-worker multi-thread runtime,
//!   as an async user would write the loop; the final sync is the partition's own `sync`
//!   (`fdatasync` of the active segment and its index; sealed segments were synced when
//!   rolled).
//! - `kafko-sync` (W2, W3): `send` then `Partition::sync` per message, kafko's own durability
//!   call (its configurable fsync policy is still on its roadmap). In W3 each producer thread
//!   drives its own `block_on` on the shared runtime; concurrent sends are batched by the
//!   writer task, syncs are not.
//!
//! **Left out of W4**: kafko's `read_record_at` (behind `Consumer::next_record`, one call per
//! record) reads the whole rest of the segment into a fresh buffer for every record it
//! returns (its source says so: "v0.1: read the entire remainder of the segment"), so
//! reading 1,000,000 records of 100 B from one ~124 MB segment copies about
//! 1,000,000 × 62 MB ≈ 60 TB: quadratic. Measured on the development machine: the first 31
//! records of a 1,000,000-record topic took 96–128 ms each, so the whole read would take about
//! 16 hours (the cost falls linearly toward the end of the segment).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kafko::{Kafko, Partition, Producer};
use tokio::runtime::Runtime;

use super::{Guarantee, Queue, Sends, SharedQueue, Tally, Variant};
use crate::workloads::Workload;

/// The report's footnote on kafko.
pub const NOTE: &str = "kafko 0.3 (tokio, 2 worker threads): `send` takes an owned `Bytes`, so \
    each payload is copied into one (timed). W1/W5 send in one `block_on`, \
    final sync `Partition::sync`; `kafko-sync` calls `Partition::sync` after every send (its own \
    fsync call; an fsync policy is on its roadmap). **Left out of W4**: `Consumer::next_record` \
    reads the whole rest of the segment into a new buffer for every record (its `read_record_at`: \
    \"v0.1: read the entire remainder of the segment\"), so reading 1,000,000 × 100 B copies \
    about 60 TB (quadratic; measured: ~0.1 s for each of the first records, about 16 hours for \
    all of them).";

const TOPIC: &str = "bench";

pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "kafko",
            guarantee: Guarantee::Written,
            sends: Sends::OneByOne,
            reads: None,
            workloads: &[Workload::W1, Workload::W5],
            open: |dir, _| Box::new(KafkoQueue::open(dir, false)),
            open_shared: None,
        },
        Variant {
            name: "kafko-sync",
            guarantee: Guarantee::Synced,
            sends: Sends::OneByOne,
            reads: None,
            workloads: &[Workload::W2, Workload::W3],
            open: |dir, _| Box::new(KafkoQueue::open(dir, true)),
            open_shared: Some(|dir, _| Box::new(KafkoQueue::open(dir, true))),
        },
    ]
}

/// kafko's `send` takes the value as an owned `Bytes`, so the borrowed payload is copied into
/// one here, inside the timed region (as a caller holding a `&[u8]` would have to).
fn value(payload: &[u8]) -> Bytes {
    Bytes::copy_from_slice(payload)
}

/// A broker with one single-partition topic, its runtime, one producer.
struct KafkoQueue {
    runtime: Runtime,
    broker: Option<Kafko>,
    producer: Producer,
    partition: Arc<Partition>,
    sync_each: bool,
}

impl KafkoQueue {
    fn open(dir: &Path, sync_each: bool) -> KafkoQueue {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("start a tokio runtime for kafko");
        let (broker, producer, partition) = runtime.block_on(async {
            let broker = Kafko::open(dir.join("kafko")).await.expect("open kafko");
            broker.create_topic(TOPIC).await.expect("create the topic");
            let producer = broker.producer_for(TOPIC).await.expect("kafko producer");
            let topic = broker.topic(TOPIC).await.expect("the topic just created");
            let partition = Arc::clone(topic.partition(0).expect("partition 0"));
            (broker, producer, partition)
        });
        KafkoQueue {
            runtime,
            broker: Some(broker),
            producer,
            partition,
            sync_each,
        }
    }

    /// One send, and with `sync_each` the partition's sync, inside the runtime.
    async fn send(&self, payload: &[u8]) {
        self.producer
            .send(None, value(payload))
            .await
            .expect("kafko send");
        if self.sync_each {
            self.partition.sync().await.expect("kafko sync");
        }
    }

    fn shutdown(&mut self) {
        if let Some(broker) = self.broker.take() {
            self.runtime
                .block_on(broker.shutdown())
                .expect("shut kafko down");
        }
    }
}

impl Queue for KafkoQueue {
    fn append(&mut self, payload: &[u8]) {
        self.runtime.block_on(self.send(payload));
    }

    fn append_all(&mut self, payloads: &[&[u8]]) {
        self.runtime.block_on(async {
            for payload in payloads {
                self.send(payload).await;
            }
        });
    }

    fn sync(&mut self) {
        self.runtime
            .block_on(self.partition.sync())
            .expect("kafko sync");
    }

    fn read_all(&mut self, _expected: u64) -> Tally {
        unreachable!("kafko is left out of W4 (see the module documentation)")
    }

    fn close(mut self: Box<Self>) {
        self.shutdown();
    }
}

impl SharedQueue for KafkoQueue {
    fn append(&self, payload: &[u8]) {
        self.runtime.block_on(self.send(payload));
    }

    fn close(mut self: Box<Self>) {
        self.shutdown();
    }
}
