//! yaque 0.6, a segmented SPSC file queue: `Sender::try_send` per message (one `write(2)`
//! each: it flushes its `BufWriter` every send), `Receiver::try_recv_batch_up_to` + `commit`
//! to pop and ack. Its default 4 MiB segments. `yaque-batch` (W1) sends with its batch API
//! instead, its fastest: one `try_send_batch` of 1,000 payloads per call (one flush per batch;
//! the file holds the same per-message frames, so the W4 read does not depend on it).
//!
//! Caveat: **yaque never syncs its files** (its source has no `fsync`/`sync_data`), so the
//! harness does it for yaque: the final sync of W1/W5 `fdatasync`s every segment file and
//! the queue directory, and `yaque-fdatasync` (W2, W3) `fdatasync`s the segment after every
//! send. To know which file the sender is writing, the harness mirrors its rule (a new
//! segment once the position passes the segment size, checked before each send or batch).
//!
//! yaque has one sender per queue: in W3 the producer threads share it behind a mutex, with
//! the `fdatasync` inside the lock (no group commit). W4's acks update yaque's receiver state
//! file, which it does not sync either.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use yaque::{Receiver, Sender, SenderBuilder, TryRecvError, TrySendError};

use super::{
    Guarantee, Queue, READ_BATCH, SEND_BATCH, Sends, SharedQueue, Tally, Variant, sync_dir,
};
use crate::workloads::Workload;

/// The report's footnote on yaque.
pub const NOTE: &str = "yaque 0.6.6 never syncs its files: **the harness fdatasyncs them for \
    it** (every segment file and the directory at W1/W5's final sync; the current segment after \
    every send in `yaque-fdatasync`). One sender per queue: W3 shares it behind a mutex, the \
    fdatasync inside the lock. `yaque-batch`: one `try_send_batch` of 1,000 payloads per call, \
    its batch API. W4: `try_recv_batch_up_to(1000)` + `commit`.";

/// yaque's default segment size, set explicitly because the harness mirrors it.
const SEGMENT_BYTES: u64 = 4 << 20;

/// Bytes of yaque's per-message header.
const HEADER_BYTES: u64 = 4;

pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "yaque",
            guarantee: Guarantee::Written,
            sends: Sends::OneByOne,
            reads: Some("try_recv_batch_up_to(1000) + commit"),
            workloads: &[Workload::W1, Workload::W4, Workload::W5],
            open: |dir, _| Box::new(YaqueQueue::new(dir, false)),
            open_shared: None,
        },
        Variant {
            name: "yaque-batch",
            guarantee: Guarantee::Written,
            sends: Sends::Batches,
            reads: None,
            workloads: &[Workload::W1],
            open: |dir, _| Box::new(BatchYaque(YaqueQueue::new(dir, false))),
            open_shared: None,
        },
        Variant {
            name: "yaque-fdatasync",
            guarantee: Guarantee::Synced,
            sends: Sends::OneByOne,
            reads: None,
            workloads: &[Workload::W2, Workload::W3],
            open: |dir, _| Box::new(YaqueQueue::new(dir, true)),
            open_shared: Some(|dir, _| {
                Box::new(SharedYaque(Mutex::new(YaqueQueue::new(dir, true))))
            }),
        },
    ]
}

/// The segment file `segment` of the queue in `base` (yaque's naming).
fn segment_path(base: &Path, segment: u64) -> PathBuf {
    base.join(format!("{segment}.q"))
}

/// Follows which segment file yaque's sender is writing, to sync it.
struct SegmentTracker {
    base: PathBuf,
    segment: u64,
    position: u64,
    file: Option<File>,
}

impl SegmentTracker {
    fn new(base: PathBuf) -> SegmentTracker {
        SegmentTracker {
            base,
            segment: 0,
            position: 0,
            file: None,
        }
    }

    /// Accounts for one send (or one batch) of payloads of `lens` bytes; returns whether
    /// yaque started a new segment for it (its check runs once, before the write).
    fn on_send(&mut self, lens: impl IntoIterator<Item = usize>) -> bool {
        let rolled = self.position > SEGMENT_BYTES;
        if rolled {
            self.segment += 1;
            self.position = 0;
        }
        self.position += lens
            .into_iter()
            .map(|len| HEADER_BYTES + len as u64)
            .sum::<u64>();
        rolled
    }

    /// `fdatasync`s the segment being written.
    fn sync_current(&mut self) {
        if self.file.is_none() {
            let path = segment_path(&self.base, self.segment);
            self.file = Some(File::open(path).expect("open a yaque segment to sync it"));
        }
        let file = self.file.as_ref().expect("opened above");
        file.sync_data().expect("fdatasync a yaque segment");
    }

    /// Moves on to the next segment: syncs the end of the previous one (yaque's end-of-segment
    /// marker) and the directory that gained the new file.
    fn roll(&mut self) {
        let previous = segment_path(&self.base, self.segment - 1);
        File::open(previous)
            .and_then(|file| file.sync_data())
            .expect("fdatasync the previous yaque segment");
        sync_dir(&self.base);
        self.file = None;
    }

    /// `fdatasync`s every segment written so far, and the directory.
    fn sync_all(&mut self) {
        for segment in 0..self.segment {
            File::open(segment_path(&self.base, segment))
                .and_then(|file| file.sync_data())
                .expect("fdatasync a yaque segment");
        }
        self.sync_current();
        sync_dir(&self.base);
        let next = segment_path(&self.base, self.segment + 1);
        assert!(
            !next.exists(),
            "yaque wrote {} past the segment the harness followed",
            next.display()
        );
    }
}

/// A yaque queue; the sender and receiver are opened when first needed (W4's reopen only
/// reads).
struct YaqueQueue {
    base: PathBuf,
    sync_each: bool,
    sender: Option<Sender>,
    tracker: SegmentTracker,
}

impl YaqueQueue {
    fn new(dir: &Path, sync_each: bool) -> YaqueQueue {
        let base = dir.join("queue");
        YaqueQueue {
            tracker: SegmentTracker::new(base.clone()),
            base,
            sync_each,
            sender: None,
        }
    }

    /// The sender, opened on first use.
    fn sender(&mut self) -> &mut Sender {
        self.sender.get_or_insert_with(|| {
            SenderBuilder::new()
                .segment_size(SEGMENT_BYTES)
                .open(&self.base)
                .expect("open the yaque sender")
        })
    }

    /// After a send or a batch: follows a new segment, and syncs the current one if asked.
    fn after_send(&mut self, rolled: bool) {
        if self.sync_each {
            if rolled {
                self.tracker.roll();
            }
            self.tracker.sync_current();
        } else if rolled {
            self.tracker.file = None;
        }
    }
}

impl Queue for YaqueQueue {
    fn append(&mut self, payload: &[u8]) {
        match self.sender().try_send(payload) {
            Ok(()) => {}
            Err(TrySendError::Io(e)) => panic!("yaque send failed: {e}"),
            Err(TrySendError::QueueFull { .. }) => panic!("yaque reports a full queue"),
        }
        let rolled = self.tracker.on_send([payload.len()]);
        self.after_send(rolled);
    }

    fn sync(&mut self) {
        self.tracker.sync_all();
    }

    fn read_all(&mut self, expected: u64) -> Tally {
        let mut receiver = Receiver::open(&self.base).expect("open the yaque receiver");
        let mut tally = Tally::default();
        while tally.records < expected {
            match receiver.try_recv_batch_up_to(READ_BATCH) {
                Ok(batch) => {
                    for payload in batch.iter() {
                        tally.add(payload.len());
                    }
                    batch.commit().expect("yaque commit");
                }
                Err(TryRecvError::QueueEmpty) => panic!("yaque ran dry before the end"),
                Err(TryRecvError::Io(e)) => panic!("yaque receive failed: {e}"),
            }
        }
        tally
    }
}

/// `yaque-batch`: one `try_send_batch` per [`SEND_BATCH`] records.
struct BatchYaque(YaqueQueue);

impl BatchYaque {
    fn send_batch(&mut self, payloads: &[&[u8]]) {
        match self.0.sender().try_send_batch(payloads) {
            Ok(()) => {}
            Err(TrySendError::Io(e)) => panic!("yaque send_batch failed: {e}"),
            Err(TrySendError::QueueFull { .. }) => panic!("yaque reports a full queue"),
        }
        let rolled = self.0.tracker.on_send(payloads.iter().map(|p| p.len()));
        self.0.after_send(rolled);
    }
}

impl Queue for BatchYaque {
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
}

/// yaque's one sender shared by producer threads behind a mutex.
struct SharedYaque(Mutex<YaqueQueue>);

impl SharedQueue for SharedYaque {
    fn append(&self, payload: &[u8]) {
        self.0.lock().expect("yaque mutex").append(payload);
    }
}
