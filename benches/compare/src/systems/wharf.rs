//! wharf itself, through its public API only, with default options: one topic with one
//! partition.
//!
//! - `wharf-nowait` and `wharf-write` (W1, W5; `wharf-write` also writes W4's records): one
//!   `send_oneway` (batched by the producer's accumulator, default `batch_bytes` and `linger`)
//!   / one `send` with `AckMode::Write` per message, then `Wharf::sync`. The
//!   background flusher syncs every second meanwhile, as it does by default.
//! - `wharf-batch` (W1, and the writes of W4b): one `send_batch` per 1,000 messages, with
//!   `AckMode::Write`, then `Wharf::sync`.
//! - `wharf-fsync` (W2, W3): `AckMode::Fsync`. In W3 the producer threads share one `Wharf`
//!   (and one `Producer`, which is `Send + Sync`); concurrent sends share one `fdatasync` inside
//!   wharf.
//! - W4 and W4b read with a consumer: `poll_batch(1000)` and one `commit()` per batch, with
//!   `commit_ack(AckMode::Write)` (offsets written, synced in the background), like the other
//!   queues' acks in W4, none of which is synced either.
//!
//! The payload arrives as a `&[u8]`, like every system's; one-by-one sends hand it to
//! `send_slice` / `send_oneway_slice` as it is. `send_batch` takes `Record`s, which own their
//! payload as a `Bytes`, so [`record`] copies the slice into one, inside the timed region.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use wharf::{AckMode, Producer, Record, TopicConfig, Wharf};

use super::{Guarantee, Queue, READ_BATCH, SEND_BATCH, Sends, SharedQueue, Sizing, Tally, Variant};
use crate::workloads::Workload;

/// The report's footnote on wharf.
pub const NOTE: &str = "wharf: default options, one topic with one partition. One-by-one \
    sends hand the borrowed payload to `send_slice` (`wharf-nowait`: `send_oneway_slice`, \
    batched by the producer's accumulator). `wharf-batch`: one `send_batch` per 1,000, `Write` \
    ack, each `Record` built from a copy of the borrowed payload (timed). W3 shares one \
    `Wharf` and one `Fsync` producer between the threads (group commit inside wharf). W4 reads \
    with a consumer, `poll_batch(1000)` and one `commit()` per batch, committing with \
    `commit_ack(Write)` (not synced, like the other queues' acks in W4).";

/// The topic every run uses.
const TOPIC: &str = "bench";

/// The consumer group W4 reads with.
const GROUP: &str = "bench-reader";

/// How long one poll may wait (it never needs to: everything was written before).
const POLL_TIMEOUT: Duration = Duration::from_secs(5);

pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "wharf-nowait",
            guarantee: Guarantee::Buffered,
            sends: Sends::OneByOne,
            reads: None,
            workloads: &[Workload::W1, Workload::W5],
            open: |dir, _| Box::new(WharfQueue::open(dir, AckMode::NoWait)),
            open_shared: None,
        },
        Variant {
            name: "wharf-write",
            guarantee: Guarantee::Written,
            sends: Sends::OneByOne,
            reads: Some("consumer: poll_batch(1000) + commit"),
            workloads: &[Workload::W1, Workload::W4, Workload::W5],
            open: |dir, _| Box::new(WharfQueue::open(dir, AckMode::Write)),
            open_shared: None,
        },
        Variant {
            name: "wharf-batch",
            guarantee: Guarantee::Written,
            sends: Sends::Batches,
            reads: Some("consumer: poll_batch(1000) + commit"),
            workloads: &[Workload::W1, Workload::W4b],
            open: |dir, _| Box::new(BatchQueue(WharfQueue::open(dir, AckMode::Write))),
            open_shared: None,
        },
        Variant {
            name: "wharf-fsync",
            guarantee: Guarantee::Synced,
            sends: Sends::OneByOne,
            reads: None,
            workloads: &[Workload::W2, Workload::W3],
            open: |dir, _| Box::new(WharfQueue::open(dir, AckMode::Fsync)),
            open_shared: Some(|dir, _: Sizing| Box::new(SharedWharf::open(dir))),
        },
    ]
}

/// The record for one borrowed payload, for `send_batch`, which takes `Record`s: `Record` owns
/// its payload as a `Bytes`, so this copies the slice (every record pays for it, inside the
/// timed region). One-by-one sends take the slice as it is (`send_slice`,
/// `send_oneway_slice`).
fn record(payload: &[u8]) -> Record {
    Record::new(TOPIC, Bytes::copy_from_slice(payload))
}

/// Opens `dir`, creating the topic the first time.
fn open_wharf(dir: &Path) -> Wharf {
    let wharf = Wharf::open(dir).expect("open wharf");
    wharf
        .ensure_topic(TOPIC, TopicConfig::default())
        .expect("create the topic");
    wharf
}

/// One producer at one ack level.
struct WharfQueue {
    wharf: Wharf,
    producer: Producer,
}

impl WharfQueue {
    fn open(dir: &Path, ack: AckMode) -> WharfQueue {
        let wharf = open_wharf(dir);
        let producer = wharf.producer().ack(ack).build();
        WharfQueue { wharf, producer }
    }
}

impl Queue for WharfQueue {
    fn append(&mut self, payload: &[u8]) {
        if self.producer.ack_mode() == AckMode::NoWait {
            // Fire and forget, its own API: the producer batches the records (its
            // accumulator), and `sync` appends what is still open.
            self.producer
                .send_oneway_slice(TOPIC, None, payload)
                .expect("wharf send");
        } else {
            self.producer
                .send_slice(TOPIC, None, payload)
                .expect("wharf send");
        }
    }

    fn sync(&mut self) {
        self.wharf.sync().expect("wharf sync");
    }

    fn read_all(&mut self, expected: u64) -> Tally {
        let mut consumer = self
            .wharf
            .consumer(GROUP)
            .subscribe([TOPIC])
            .commit_ack(AckMode::Write)
            .build()
            .expect("wharf consumer");
        let mut tally = Tally::default();
        while tally.records < expected {
            let deliveries = consumer
                .poll_batch(READ_BATCH, POLL_TIMEOUT)
                .expect("wharf poll");
            assert!(
                !deliveries.is_empty(),
                "wharf poll timed out before the end"
            );
            for delivery in &deliveries {
                tally.add(delivery.payload().len());
            }
            consumer.commit().expect("wharf commit");
        }
        consumer.close().expect("close the wharf consumer");
        tally
    }

    fn close(self: Box<Self>) {
        drop(self.producer);
        self.wharf.close().expect("close wharf");
    }
}

/// `wharf-batch`: like `wharf-write`, but one `send_batch` per [`SEND_BATCH`] records.
struct BatchQueue(WharfQueue);

impl BatchQueue {
    fn send_batch(&self, payloads: &[&[u8]]) {
        let receipts = self
            .0
            .producer
            .send_batch(payloads.iter().copied().map(record))
            .expect("wharf send_batch");
        assert_eq!(receipts.len(), payloads.len(), "a receipt per record");
    }
}

impl Queue for BatchQueue {
    fn append(&mut self, payload: &[u8]) {
        self.send_batch(&[payload]);
    }

    fn append_all(&mut self, payloads: &[&[u8]]) {
        for batch in payloads.chunks(SEND_BATCH) {
            self.send_batch(batch);
        }
    }

    fn sync(&mut self) {
        self.0.sync();
    }

    fn read_all(&mut self, expected: u64) -> Tally {
        self.0.read_all(expected)
    }

    fn close(self: Box<Self>) {
        Box::new(self.0).close();
    }
}

/// One `Wharf` and one `Fsync` producer (`Send + Sync`) shared by the producer threads.
struct SharedWharf {
    wharf: Wharf,
    producer: Producer,
}

impl SharedWharf {
    fn open(dir: &Path) -> SharedWharf {
        let wharf = open_wharf(dir);
        let producer = wharf.producer().ack(AckMode::Fsync).build();
        SharedWharf { wharf, producer }
    }
}

impl SharedQueue for SharedWharf {
    fn append(&self, payload: &[u8]) {
        self.producer
            .send_slice(TOPIC, None, payload)
            .expect("wharf send");
    }

    fn close(self: Box<Self>) {
        drop(self.producer);
        self.wharf.close().expect("close wharf");
    }
}
