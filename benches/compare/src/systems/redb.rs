//! redb 4 as a queue: one table `u64 → &[u8]` keyed by a sequence number, one write
//! transaction per message.
//!
//! - `redb-none` (W1, W4, W5): commits with `Durability::None`, which redb persists only with
//!   a later durable commit (a process crash loses them: compared with wharf's `NoWait`); the
//!   final sync is an empty commit with `Durability::Immediate`.
//! - `redb-immediate` (W2, W3): every commit `Durability::Immediate`. In W3 the threads share
//!   the `Database`; redb runs one write transaction at a time.
//! - W4 pops and acks: one write transaction per batch that extracts (reads and removes) the
//!   next 1,000 keys, committed with `Durability::None`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, Durability, ReadableDatabase, ReadableTableMetadata, TableDefinition};

use super::{Guarantee, Queue, READ_BATCH, Sends, SharedQueue, Tally, Variant};
use crate::workloads::Workload;

/// The report's footnote on redb.
pub const NOTE: &str = "redb 4.5: one write transaction per message into a `u64 → &[u8]` \
    table. `redb-none` commits with `Durability::None` (lost on a process crash until a durable \
    commit, so compared with wharf's NoWait; final sync: an empty `Immediate` commit); \
    `redb-immediate` commits every message with `Durability::Immediate`. W3: threads share the \
    `Database` (one writer at a time). W4: one transaction per 1,000 keys extracting them, \
    `Durability::None`.";

const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");

pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "redb-none",
            guarantee: Guarantee::Buffered,
            sends: Sends::OneByOne,
            reads: Some("extract 1000 keys, one transaction"),
            workloads: &[Workload::W1, Workload::W4, Workload::W5],
            open: |dir, _| Box::new(RedbQueue::open(dir, Durability::None)),
            open_shared: None,
        },
        Variant {
            name: "redb-immediate",
            guarantee: Guarantee::Synced,
            sends: Sends::OneByOne,
            reads: None,
            workloads: &[Workload::W2, Workload::W3],
            open: |dir, _| Box::new(RedbQueue::open(dir, Durability::Immediate)),
            open_shared: Some(|dir, _| Box::new(RedbQueue::open(dir, Durability::Immediate))),
        },
    ]
}

struct RedbQueue {
    db: Database,
    durability: Durability,
    next_key: AtomicU64,
}

impl RedbQueue {
    fn open(dir: &Path, durability: Durability) -> RedbQueue {
        let db = Database::create(dir.join("queue.redb")).expect("open the redb database");
        let tx = db.begin_write().expect("redb write transaction");
        tx.open_table(TABLE).expect("create the queue table");
        tx.commit().expect("redb commit");
        RedbQueue {
            db,
            durability,
            next_key: AtomicU64::new(0),
        }
    }

    /// One write transaction inserting one row, committed at the queue's durability.
    fn insert(&self, payload: &[u8]) {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let mut tx = self.db.begin_write().expect("redb write transaction");
        tx.set_durability(self.durability)
            .expect("set the redb durability");
        {
            let mut table = tx.open_table(TABLE).expect("open the queue table");
            table.insert(key, payload).expect("redb insert");
        }
        tx.commit().expect("redb commit");
    }

    /// Pops the keys `from..from + READ_BATCH` in one transaction; returns how many.
    fn pop_batch(&self, from: u64, tally: &mut Tally) -> u64 {
        let mut tx = self.db.begin_write().expect("redb write transaction");
        tx.set_durability(Durability::None)
            .expect("set the redb durability");
        let mut popped = 0;
        {
            let mut table = tx.open_table(TABLE).expect("open the queue table");
            let end = from + READ_BATCH as u64;
            let extracted = table
                .extract_from_if(from..end, |_, _| true)
                .expect("redb extract");
            for entry in extracted {
                let (_, payload) = entry.expect("redb entry");
                tally.add(payload.value().len());
                popped += 1;
            }
        }
        tx.commit().expect("redb commit");
        popped
    }
}

impl Queue for RedbQueue {
    fn append(&mut self, payload: &[u8]) {
        self.insert(payload);
    }

    fn sync(&mut self) {
        let mut tx = self.db.begin_write().expect("redb write transaction");
        tx.set_durability(Durability::Immediate)
            .expect("set the redb durability");
        tx.commit().expect("redb durable commit");
    }

    fn read_all(&mut self, _expected: u64) -> Tally {
        let mut tally = Tally::default();
        let mut from = 0;
        loop {
            let popped = self.pop_batch(from, &mut tally);
            if popped == 0 {
                break;
            }
            from += popped;
        }
        let tx = self.db.begin_read().expect("redb read transaction");
        let left = tx
            .open_table(TABLE)
            .expect("open the queue table")
            .len()
            .expect("redb table length");
        assert_eq!(left, 0, "redb kept rows after the pops");
        tally
    }
}

impl SharedQueue for RedbQueue {
    fn append(&self, payload: &[u8]) {
        self.insert(payload);
    }
}
