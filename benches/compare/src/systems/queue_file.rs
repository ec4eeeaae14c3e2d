//! queue-file 2 (a port of Square's Tape `QueueFile`): one ring-buffer file that doubles when
//! full, one `add` per message (the element, then the header, written in place).
//!
//! - `queue-file` (W1, W4, W5): `set_sync_writes(false)`: `add` writes without syncing; the
//!   final sync is its `sync_all`. (Growing the file still runs its `set_len` + `sync_all`.)
//! - `queue-file-sync` (W2, W3): its default `sync_writes(true)`, its own durability: every
//!   `add` `fdatasync`s after writing the element and again after writing the header, so two
//!   syncs per message. In W3 the threads share it behind a mutex (no group commit).
//! - W4 pops and acks: iterate the first 1,000 elements, then `remove_n(1000)` (header
//!   rewritten, not synced).

use std::path::Path;
use std::sync::Mutex;

use queue_file::QueueFile;

use super::{Guarantee, Queue, READ_BATCH, Sends, SharedQueue, Tally, Variant};
use crate::workloads::Workload;

/// The report's footnote on queue-file.
pub const NOTE: &str = "queue-file 2.0: `queue-file` runs with `set_sync_writes(false)` (final \
    sync: its `sync_all`); `queue-file-sync` uses its default `sync_writes(true)`, its own \
    semantics: two fdatasyncs per `add` (element, then header). W3: behind a mutex. W4: iterate \
    1,000 elements, then `remove_n(1000)`.";

pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "queue-file",
            guarantee: Guarantee::Written,
            sends: Sends::OneByOne,
            reads: Some("iterate 1000 + remove_n(1000)"),
            workloads: &[Workload::W1, Workload::W4, Workload::W5],
            open: |dir, _| Box::new(QueueFileQueue(open(dir, false))),
            open_shared: None,
        },
        Variant {
            name: "queue-file-sync",
            guarantee: Guarantee::Synced,
            sends: Sends::OneByOne,
            reads: None,
            workloads: &[Workload::W2, Workload::W3],
            open: |dir, _| Box::new(QueueFileQueue(open(dir, true))),
            open_shared: Some(|dir, _| Box::new(SharedQueueFile(Mutex::new(open(dir, true))))),
        },
    ]
}

fn open(dir: &Path, sync_writes: bool) -> QueueFile {
    let mut queue = QueueFile::open(dir.join("queue.qf")).expect("open the queue file");
    queue.set_sync_writes(sync_writes);
    queue
}

struct QueueFileQueue(QueueFile);

impl Queue for QueueFileQueue {
    fn append(&mut self, payload: &[u8]) {
        self.0.add(payload).expect("queue-file add");
    }

    fn sync(&mut self) {
        self.0.sync_all().expect("queue-file sync");
    }

    fn read_all(&mut self, _expected: u64) -> Tally {
        let mut tally = Tally::default();
        while !self.0.is_empty() {
            let mut popped = 0;
            for payload in self.0.iter().take(READ_BATCH) {
                tally.add(payload.len());
                popped += 1;
            }
            self.0.remove_n(popped).expect("queue-file remove");
        }
        tally
    }
}

/// One queue file shared by producer threads behind a mutex.
struct SharedQueueFile(Mutex<QueueFile>);

impl SharedQueue for SharedQueueFile {
    fn append(&self, payload: &[u8]) {
        self.0
            .lock()
            .expect("queue-file mutex")
            .add(payload)
            .expect("queue-file add");
    }
}
