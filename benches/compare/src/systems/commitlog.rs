//! commitlog 0.2 (zowens), a segmented append-only log with a memory-mapped offset index:
//! `append_msg` per message (one `write(2)` to the segment, one index entry in the mapping).
//! `commitlog-batch` (W1) uses its batch API instead, its fastest: a `MessageBuf` of 1,000
//! payloads per `append` (one `write(2)` per batch; the bytes on disk, an index entry per
//! message included, are the same as with `append_msg`, so its W4 read does not depend on
//! how the records were sent).
//!
//! Caveat: **commitlog never syncs its segment**: its `flush` only `msync`s the index (the
//! segment's `flush_sync` is `File::flush`, a no-op). So the harness does it: the final sync
//! of W1/W5 is `flush` plus an `fdatasync` of the segment and of the directory, and
//! `commitlog-fdatasync` (W2, W3) `fdatasync`s the segment after every append (the index is
//! rebuilt from the segment on open, so the segment alone is what must be durable). To keep
//! that one known file, segments are set to 2 GiB (the default, 1 GB, would roll during W5).
//! In W3 the threads share the log behind a mutex (no group commit).
//!
//! W4 scans with `read(offset, ReadLimit)` of about 1,000 records per call; commitlog checks
//! every message's CRC32C as it reads.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};

use super::{
    Guarantee, Queue, READ_BATCH, SEND_BATCH, Sends, SharedQueue, Sizing, Tally, Variant, sync_dir,
};
use crate::workloads::Workload;

/// The report's footnote on commitlog.
pub const NOTE: &str = "commitlog 0.2 never syncs its segment (its `flush` only msyncs the \
    index): **the harness fdatasyncs the segment for it** (at W1/W5's final sync, after `flush`, \
    with the directory; after every append in `commitlog-fdatasync`). `commitlog-batch`: one \
    `append` of a `MessageBuf` of 1,000 payloads per call, its batch API. Segments set to 2 GiB so \
    there is one file to sync. W3: behind a mutex. W4: `read` of about 1,000 records per call \
    (it checks each CRC32C).";

/// One segment for every run (commitlog's positions are `u32`, so at most 4 GiB).
const SEGMENT_BYTES: usize = 2 << 30;

/// Bytes commitlog adds to each message (offset, size, hash, metadata size), rounded up.
const FRAMING_BYTES: usize = 24;

pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "commitlog",
            guarantee: Guarantee::Written,
            sends: Sends::OneByOne,
            reads: Some("scan: read(offset, ~1000 records)"),
            workloads: &[Workload::W1, Workload::W4, Workload::W5],
            open: |dir, sizing| Box::new(Log::open(dir, sizing, false)),
            open_shared: None,
        },
        Variant {
            name: "commitlog-batch",
            guarantee: Guarantee::Written,
            sends: Sends::Batches,
            reads: None,
            workloads: &[Workload::W1],
            open: |dir, sizing| {
                Box::new(BatchLog(
                    Log::open(dir, sizing, false),
                    MessageBuf::default(),
                ))
            },
            open_shared: None,
        },
        Variant {
            name: "commitlog-fdatasync",
            guarantee: Guarantee::Synced,
            sends: Sends::OneByOne,
            reads: None,
            workloads: &[Workload::W2, Workload::W3],
            open: |dir, sizing| Box::new(Log::open(dir, sizing, true)),
            open_shared: Some(|dir, sizing| {
                Box::new(SharedLog(Mutex::new(Log::open(dir, sizing, true))))
            }),
        },
    ]
}

struct Log {
    inner: CommitLog,
    dir: PathBuf,
    segment: File,
    sync_each: bool,
    read_limit: ReadLimit,
}

impl Log {
    fn open(dir: &Path, sizing: Sizing, sync_each: bool) -> Log {
        let dir = dir.join("log");
        let mut options = LogOptions::new(&dir);
        options.segment_max_bytes(SEGMENT_BYTES);
        let log = CommitLog::new(options).expect("open the commitlog");
        // The one segment, named by its base offset, 0.
        let segment = File::open(dir.join(format!("{:020}.log", 0)))
            .expect("open the commitlog segment to sync it");
        let read_limit = ReadLimit::max_bytes(READ_BATCH * (sizing.payload_bytes + FRAMING_BYTES));
        Log {
            inner: log,
            dir,
            segment,
            sync_each,
            read_limit,
        }
    }
}

impl Queue for Log {
    fn append(&mut self, payload: &[u8]) {
        self.inner.append_msg(payload).expect("commitlog append");
        if self.sync_each {
            self.segment
                .sync_data()
                .expect("fdatasync the commitlog segment");
        }
    }

    fn sync(&mut self) {
        self.inner.flush().expect("commitlog flush");
        self.segment
            .sync_data()
            .expect("fdatasync the commitlog segment");
        sync_dir(&self.dir);
    }

    fn read_all(&mut self, expected: u64) -> Tally {
        let mut tally = Tally::default();
        let mut offset = 0;
        while offset < expected {
            let messages = self
                .inner
                .read(offset, self.read_limit)
                .expect("commitlog read");
            let mut read = 0;
            for message in messages.iter() {
                tally.add(message.payload().len());
                offset = message.offset() + 1;
                read += 1;
            }
            assert!(read > 0, "commitlog read nothing at offset {offset}");
        }
        tally
    }
}

/// `commitlog-batch`: one `append` of a reused `MessageBuf` per [`SEND_BATCH`] records.
struct BatchLog(Log, MessageBuf);

impl BatchLog {
    fn append_batch(&mut self, payloads: &[&[u8]]) {
        let BatchLog(log, buf) = self;
        buf.clear();
        for payload in payloads {
            buf.push(payload).expect("a payload commitlog can frame");
        }
        let range = log.inner.append(buf).expect("commitlog append");
        assert_eq!(range.len(), payloads.len(), "an offset per message");
    }
}

impl Queue for BatchLog {
    fn append(&mut self, payload: &[u8]) {
        self.append_batch(&[payload]);
    }

    fn append_all(&mut self, payloads: &[&[u8]]) {
        for batch in payloads.chunks(SEND_BATCH) {
            self.append_batch(batch);
        }
    }

    fn sync(&mut self) {
        self.0.sync();
    }

    fn read_all(&mut self, expected: u64) -> Tally {
        self.0.read_all(expected)
    }
}

/// One log shared by producer threads behind a mutex.
struct SharedLog(Mutex<Log>);

impl SharedQueue for SharedLog {
    fn append(&self, payload: &[u8]) {
        self.0.lock().expect("commitlog mutex").append(payload);
    }
}
