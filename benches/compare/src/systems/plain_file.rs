//! The baseline: one plain file of records, each `[length: u32 LE][CRC32C: u32 LE][payload]`
//! (the CRC covers the length bytes and the payload), with no index, no segments, no
//! recovery: the least a durable log can do.
//!
//! | variant | `append` | workloads |
//! |---|---|---|
//! | `plain-buffered` | into a 256 KiB `BufWriter`; the final sync flushes and `fdatasync`s | W1, W4, W5 |
//! | `plain-sync` | one `pwrite` of the record, then `fdatasync` | W2, W3 (threads share it behind a mutex) |
//! | `plain-group` | copied into a shared buffer under a mutex; one flusher thread writes what has gathered, `fdatasync`s, and wakes every producer its sync covers | W2, W3 |
//!
//! Each also comes `-prealloc`: before the run (untimed) the file is filled with zeros for
//! every record the run will write, synced, and then overwritten from the start. An
//! overwrite of allocated, already-written blocks changes no metadata, so its `fdatasync`
//! flushes only data; appending to the end makes every `fdatasync` also commit the new size
//! and block allocation to the journal. A reader stops at a zero length (payloads are never
//! empty). W4 scans with a 256 KiB `BufReader`, checking every CRC.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::{Guarantee, Queue, Sends, SharedQueue, Sizing, Tally, Variant, sync_dir};
use crate::workloads::Workload;

/// The report's footnote on the plain file.
pub const NOTE: &str = "plain file: `[len u32][CRC32C u32][payload]` records in one file. \
    `plain-buffered`: a 256 KiB BufWriter, fdatasync at the end; `plain-sync`: pwrite + \
    fdatasync per message (W3: under a mutex); `plain-group`: producers append to a shared \
    buffer under a mutex, one flusher thread writes and fdatasyncs what gathered and wakes \
    those it covers. `-prealloc`: the file is zero-filled (and synced) before the timed run, \
    then overwritten, so an fdatasync writes no metadata. W4 scans with a 256 KiB BufReader, \
    checking each CRC.";

/// Bytes before each payload: length and CRC32C.
const HEADER_BYTES: usize = 8;

/// The `BufWriter` and `BufReader` capacity.
const BUFFER_BYTES: usize = 256 << 10;

/// Chunk of zeros written while preallocating.
const ZERO_CHUNK_BYTES: usize = 1 << 20;

pub fn variants() -> Vec<Variant> {
    const NO_SYNC: &[Workload] = &[Workload::W1, Workload::W5];
    const DURABLE: &[Workload] = &[Workload::W2, Workload::W3];
    vec![
        Variant {
            name: "plain-buffered",
            guarantee: Guarantee::Buffered,
            sends: Sends::OneByOne,
            reads: Some("scan: 256 KiB BufReader"),
            workloads: &[Workload::W1, Workload::W4, Workload::W5],
            open: |dir, sizing| Box::new(BufferedFile::open(dir, sizing, false)),
            open_shared: None,
        },
        Variant {
            name: "plain-buffered-prealloc",
            guarantee: Guarantee::Buffered,
            sends: Sends::OneByOne,
            reads: None,
            workloads: NO_SYNC,
            open: |dir, sizing| Box::new(BufferedFile::open(dir, sizing, true)),
            open_shared: None,
        },
        Variant {
            name: "plain-sync",
            guarantee: Guarantee::Synced,
            sends: Sends::OneByOne,
            reads: None,
            workloads: DURABLE,
            open: |dir, sizing| Box::new(SyncFile::open(dir, sizing, false)),
            open_shared: Some(|dir, sizing| {
                Box::new(SharedSyncFile(Mutex::new(SyncFile::open(
                    dir, sizing, false,
                ))))
            }),
        },
        Variant {
            name: "plain-sync-prealloc",
            guarantee: Guarantee::Synced,
            sends: Sends::OneByOne,
            reads: None,
            workloads: DURABLE,
            open: |dir, sizing| Box::new(SyncFile::open(dir, sizing, true)),
            open_shared: Some(|dir, sizing| {
                Box::new(SharedSyncFile(Mutex::new(SyncFile::open(
                    dir, sizing, true,
                ))))
            }),
        },
        Variant {
            name: "plain-group",
            guarantee: Guarantee::Synced,
            sends: Sends::OneByOne,
            reads: None,
            workloads: DURABLE,
            open: |dir, sizing| Box::new(GroupFile::open(dir, sizing, false)),
            open_shared: Some(|dir, sizing| Box::new(GroupFile::open(dir, sizing, false))),
        },
        Variant {
            name: "plain-group-prealloc",
            guarantee: Guarantee::Synced,
            sends: Sends::OneByOne,
            reads: None,
            workloads: DURABLE,
            open: |dir, sizing| Box::new(GroupFile::open(dir, sizing, true)),
            open_shared: Some(|dir, sizing| Box::new(GroupFile::open(dir, sizing, true))),
        },
    ]
}

/// The record's header: its length and the CRC32C of the length bytes and the payload.
fn header(payload: &[u8]) -> [u8; HEADER_BYTES] {
    let len = u32::try_from(payload.len())
        .expect("a payload under 4 GiB")
        .to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload).to_le_bytes();
    let mut header = [0; HEADER_BYTES];
    header[..4].copy_from_slice(&len);
    header[4..].copy_from_slice(&crc);
    header
}

/// Opens (or creates) the log file in `dir`; with `prealloc`, a new file is first filled
/// with zeros for every record `sizing` announces, and synced.
fn open_file(dir: &Path, sizing: Sizing, prealloc: bool) -> (File, PathBuf) {
    let path = dir.join("records.log");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .expect("open the plain file");
    let is_new = file.metadata().expect("stat the plain file").len() == 0;
    if prealloc && is_new {
        let record_bytes = (HEADER_BYTES + sizing.payload_bytes) as u64;
        let total = (sizing.records * record_bytes).next_multiple_of(ZERO_CHUNK_BYTES as u64);
        let zeros = vec![0; ZERO_CHUNK_BYTES];
        let mut position = 0;
        while position < total {
            file.write_all_at(&zeros, position)
                .expect("preallocate the plain file");
            position += ZERO_CHUNK_BYTES as u64;
        }
        file.sync_all().expect("sync the preallocated file");
    }
    if is_new {
        sync_dir(dir);
    }
    (file, path)
}

/// Reads every record of the file at `path`, checking each CRC.
fn read_records(path: &Path) -> Tally {
    let file = File::open(path).expect("open the plain file to read");
    let mut reader = BufReader::with_capacity(BUFFER_BYTES, file);
    let mut tally = Tally::default();
    let mut payload = Vec::new();
    let mut head = [0; HEADER_BYTES];
    loop {
        match reader.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("read the plain file: {e}"),
        }
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        if len == 0 {
            break; // the zeros past the end of a preallocated file
        }
        payload.resize(len, 0);
        reader
            .read_exact(&mut payload)
            .expect("read a plain file record");
        assert_eq!(header(&payload), head, "a plain file record failed its CRC");
        tally.add(len);
    }
    tally
}

/// `plain-buffered`: a `BufWriter`, synced only at the end.
struct BufferedFile {
    writer: BufWriter<File>,
    path: PathBuf,
}

impl BufferedFile {
    fn open(dir: &Path, sizing: Sizing, prealloc: bool) -> BufferedFile {
        let (mut file, path) = open_file(dir, sizing, prealloc);
        file.seek(SeekFrom::Start(0))
            .expect("seek to the start of the plain file");
        BufferedFile {
            writer: BufWriter::with_capacity(BUFFER_BYTES, file),
            path,
        }
    }
}

impl Queue for BufferedFile {
    fn append(&mut self, payload: &[u8]) {
        self.writer
            .write_all(&header(payload))
            .and_then(|()| self.writer.write_all(payload))
            .expect("write the plain file");
    }

    fn sync(&mut self) {
        self.writer.flush().expect("flush the plain file");
        self.writer
            .get_ref()
            .sync_data()
            .expect("fdatasync the plain file");
    }

    fn read_all(&mut self, _expected: u64) -> Tally {
        read_records(&self.path)
    }
}

/// `plain-sync`: one `pwrite` and one `fdatasync` per record.
struct SyncFile {
    file: File,
    path: PathBuf,
    position: u64,
    record: Vec<u8>,
}

impl SyncFile {
    fn open(dir: &Path, sizing: Sizing, prealloc: bool) -> SyncFile {
        let (file, path) = open_file(dir, sizing, prealloc);
        SyncFile {
            file,
            path,
            position: 0,
            record: Vec::new(),
        }
    }
}

impl Queue for SyncFile {
    fn append(&mut self, payload: &[u8]) {
        self.record.clear();
        self.record.extend_from_slice(&header(payload));
        self.record.extend_from_slice(payload);
        self.file
            .write_all_at(&self.record, self.position)
            .expect("write the plain file");
        self.file.sync_data().expect("fdatasync the plain file");
        self.position += self.record.len() as u64;
    }

    fn sync(&mut self) {}

    fn read_all(&mut self, _expected: u64) -> Tally {
        read_records(&self.path)
    }
}

/// `plain-sync` shared by producer threads: the write and the sync under one mutex.
struct SharedSyncFile(Mutex<SyncFile>);

impl SharedQueue for SharedSyncFile {
    fn append(&self, payload: &[u8]) {
        self.0.lock().expect("plain file mutex").append(payload);
    }
}

/// `plain-group`: producers gather records in a shared buffer; one flusher thread writes and
/// syncs each gathered run and wakes the producers it covers.
struct GroupFile {
    shared: Arc<GroupShared>,
    flusher: Option<JoinHandle<()>>,
    path: PathBuf,
}

struct GroupShared {
    state: Mutex<GroupState>,
    /// Signalled when records are appended or the file closes (the flusher waits on it).
    work: Condvar,
    /// Signalled when `synced` advances (producers wait on it).
    progress: Condvar,
}

struct GroupState {
    /// Records appended and not yet handed to the flusher.
    pending: Vec<u8>,
    /// File position after everything appended.
    appended: u64,
    /// File position up to which an `fdatasync` has returned.
    synced: u64,
    closing: bool,
}

impl GroupShared {
    fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().expect("plain file group mutex")
    }
}

impl GroupFile {
    fn open(dir: &Path, sizing: Sizing, prealloc: bool) -> GroupFile {
        let (file, path) = open_file(dir, sizing, prealloc);
        let shared = Arc::new(GroupShared {
            state: Mutex::new(GroupState {
                pending: Vec::new(),
                appended: 0,
                synced: 0,
                closing: false,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
        });
        let flusher = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("plain-flusher".to_owned())
                .spawn(move || flush_loop(&shared, &file))
                .expect("start the flusher thread")
        };
        GroupFile {
            shared,
            flusher: Some(flusher),
            path,
        }
    }

    /// Appends one record and waits until an `fdatasync` covers it.
    fn append_durable(&self, payload: &[u8]) {
        let head = header(payload);
        let mut state = self.shared.lock();
        state.pending.extend_from_slice(&head);
        state.pending.extend_from_slice(payload);
        state.appended += (HEADER_BYTES + payload.len()) as u64;
        let mine = state.appended;
        self.shared.work.notify_one();
        while state.synced < mine {
            state = self
                .shared
                .progress
                .wait(state)
                .expect("plain file group mutex");
        }
    }

    fn stop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.work.notify_one();
        if let Some(flusher) = self.flusher.take() {
            flusher.join().expect("the flusher thread panicked");
        }
    }
}

/// The flusher: take what has gathered, write it at its position, sync, publish.
fn flush_loop(shared: &GroupShared, file: &File) {
    let mut batch = Vec::new();
    loop {
        let end = {
            let mut state = shared.lock();
            while state.pending.is_empty() && !state.closing {
                state = shared.work.wait(state).expect("plain file group mutex");
            }
            if state.pending.is_empty() {
                return;
            }
            std::mem::swap(&mut batch, &mut state.pending);
            state.appended
        };
        let start = end - batch.len() as u64;
        file.write_all_at(&batch, start)
            .expect("write the plain file");
        file.sync_data().expect("fdatasync the plain file");
        batch.clear();
        shared.lock().synced = end;
        shared.progress.notify_all();
    }
}

impl Queue for GroupFile {
    fn append(&mut self, payload: &[u8]) {
        self.append_durable(payload);
    }

    fn sync(&mut self) {}

    fn read_all(&mut self, _expected: u64) -> Tally {
        read_records(&self.path)
    }

    fn close(mut self: Box<Self>) {
        self.stop();
    }
}

impl SharedQueue for GroupFile {
    fn append(&self, payload: &[u8]) {
        self.append_durable(payload);
    }

    fn close(mut self: Box<Self>) {
        self.stop();
    }
}

impl Drop for GroupFile {
    fn drop(&mut self) {
        self.stop();
    }
}
