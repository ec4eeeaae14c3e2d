//! The systems under test, each behind the same two small traits, and the list of variants.
//!
//! A *variant* is one system in one configuration (`sqlite-full`, `plain-group-prealloc`, ...).
//! Its [`Guarantee`] says what a returned `append` survives; it decides which workloads the
//! variant takes part in (a durable workload only runs variants whose `append` returns after a
//! sync) and which wharf variant it is compared with (the wharf variant with the same
//! guarantee). Every variant is opened in a fresh directory; nothing is shared between runs.
//!
//! Every append takes the payload as a `&[u8]` borrowed from the run's one payload buffer
//! (`payloads.rs`). A system that needs another form converts it in its adapter, inside the
//! timed region: that cost is part of using the system. A variant also says how it [`Sends`]:
//! one call per message, or (its own batch API, where that is its best one) one call per
//! [`SEND_BATCH`] messages; it is compared with the wharf variant that sends the same way.

mod commitlog;
mod kafko;
mod plain_file;
mod queue_file;
mod redb;
mod sqlite;
mod wharf;
mod yaque;

use std::fs::File;
use std::path::Path;

use crate::workloads::Workload;

/// What a variant's `append` has done when it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarantee {
    /// In the process's memory only: a process crash may lose it (wharf `NoWait`, a
    /// `BufWriter`, redb's `Durability::None`).
    Buffered,
    /// Handed to the OS (page cache): survives a process crash, not a power loss (wharf
    /// `Write`, SQLite WAL with `synchronous=NORMAL`, a `write(2)` per message).
    Written,
    /// On stable storage (`fdatasync` or equivalent): survives a power loss.
    Synced,
}

/// How a variant hands records to its system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sends {
    /// One append call per message.
    OneByOne,
    /// One call of the system's batch API per [`SEND_BATCH`] messages.
    Batches,
}

/// Messages per append call for the variants that send in [`Sends::Batches`].
pub const SEND_BATCH: usize = 1_000;

/// How many records of what size a run will append: lets a variant preallocate.
#[derive(Clone, Copy, Debug)]
pub struct Sizing {
    /// Records the run appends.
    pub records: u64,
    /// Bytes of each record's payload.
    pub payload_bytes: usize,
}

/// What a read-back saw: checked against what was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Records read.
    pub records: u64,
    /// Payload bytes read.
    pub bytes: u64,
}

impl Tally {
    /// Counts one record of `len` payload bytes.
    pub fn add(&mut self, len: usize) {
        self.records += 1;
        self.bytes += len as u64;
    }
}

/// Records in one read (one poll, one `SELECT`, one pop), for every system.
pub const READ_BATCH: usize = 1_000;

/// One system, used from one thread.
pub trait Queue {
    /// Appends one record; returns having done what the variant's [`Guarantee`] says.
    fn append(&mut self, payload: &[u8]);

    /// Appends every record in order; by default by calling [`Queue::append`] for each (an
    /// async system runs the loop inside one `block_on`, as its users would; a
    /// [`Sends::Batches`] variant makes one batch call per [`SEND_BATCH`] records).
    fn append_all(&mut self, payloads: &[&[u8]]) {
        for payload in payloads {
            self.append(payload);
        }
    }

    /// Makes everything appended so far durable.
    fn sync(&mut self);

    /// Reads every record from the start, [`READ_BATCH`] at a time (queues pop and ack them;
    /// logs scan them; wharf polls with a consumer and commits per batch).
    fn read_all(&mut self, expected: u64) -> Tally;

    /// Shuts down in order (untimed); dropping instead is a best-effort close.
    fn close(self: Box<Self>) {}
}

/// One system shared by producer threads; each `append` is durable when it returns.
pub trait SharedQueue: Send + Sync {
    /// Appends one record and returns once it is on stable storage.
    fn append(&self, payload: &[u8]);

    /// Shuts down in order (untimed).
    fn close(self: Box<Self>) {}
}

/// Opens a variant in an empty directory, or reopens what it wrote there.
pub type OpenFn = fn(&Path, Sizing) -> Box<dyn Queue>;

/// Opens a variant for producer threads in an empty directory.
pub type OpenSharedFn = fn(&Path, Sizing) -> Box<dyn SharedQueue>;

/// One system in one configuration.
pub struct Variant {
    /// The name used in `--systems` and in the tables.
    pub name: &'static str,
    /// What a returned `append` survives.
    pub guarantee: Guarantee,
    /// One call per message or per batch.
    pub sends: Sends,
    /// How W4 reads it back, for the table (`None`: not in W4).
    pub reads: Option<&'static str>,
    /// The workloads this variant runs.
    pub workloads: &'static [Workload],
    /// How to open it for one thread.
    pub open: OpenFn,
    /// How to open it for producer threads (every variant in W3 has one).
    pub open_shared: Option<OpenSharedFn>,
}

impl Variant {
    /// Whether this is one of wharf's own variants.
    pub fn is_wharf(&self) -> bool {
        self.name.starts_with("wharf")
    }

    /// Whether `--systems` asked for it: by exact name, or by the family before a `-`
    /// (`sqlite` selects `sqlite-normal` and `sqlite-full`).
    pub fn is_selected_by(&self, filter: &str) -> bool {
        self.name == filter
            || self
                .name
                .strip_prefix(filter)
                .is_some_and(|rest| rest.starts_with('-'))
    }
}

/// `fsync`s a directory, so the files created in it are durable (used where the harness
/// syncs for a peer that does not).
pub fn sync_dir(dir: &Path) {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .expect("fsync a directory");
}

/// The report's footnotes, one per system: configuration and caveats.
pub fn notes() -> [&'static str; 8] {
    [
        wharf::NOTE,
        sqlite::NOTE,
        yaque::NOTE,
        queue_file::NOTE,
        commitlog::NOTE,
        kafko::NOTE,
        redb::NOTE,
        plain_file::NOTE,
    ]
}

/// Every variant, wharf's first.
pub fn all() -> Vec<Variant> {
    let mut variants = wharf::variants();
    variants.extend(sqlite::variants());
    variants.extend(yaque::variants());
    variants.extend(queue_file::variants());
    variants.extend(commitlog::variants());
    variants.extend(kafko::variants());
    variants.extend(redb::variants());
    variants.extend(plain_file::variants());
    variants
}
