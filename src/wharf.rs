//! [`Wharf`]: the root handle. Opening (lock, directory header, clean-shutdown marker,
//! recovery of every partition), the topic registry, the flusher thread, and closing.
//!
//! Open and close, step by step:
//! - open: create the directory; take the lock; read (or write) `wharf.meta`; note and remove
//!   the clean-shutdown marker (synced) before anything else is written; clear `staging/` and
//!   `trash/`; open every topic (recovering each partition); start the flusher.
//! - close: stop the delay scheduler and retention (their last round still commits its
//!   progress), then refuse calls; stop the flusher; sync the groups' offsets; close every
//!   partition (sync, finalize, trim, checkpoint); if all of that succeeded, write the
//!   clean-shutdown marker; release the lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};

use crate::admin::Admin;
use crate::clock::{Clock, SystemClock};
use crate::config::{RecoveryMode, Retention, TopicConfig, WharfOptions};
use crate::consumer::{ConsumerBuilder, PushConsumerBuilder};
use crate::dir_lock;
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::file_header::{self, CLEAN_MAGIC, DIR_MAGIC, HeaderError};
use crate::group::group::Group;
use crate::group::offsets::{Committed, OffsetStore};
use crate::layout;
use crate::log::{
    DiskSpace, FlushQueue, OpenSegments, PartitionEnv, PartitionLog, Prefaulter, RollHook,
};
use crate::producer::ProducerBuilder;
use crate::producer::linger::Linger;
use crate::reader::PartitionReader;
use crate::retention::RetentionThread;
use crate::retry::policy::DelayLevels;
use crate::retry::scheduler::{Scheduler, SchedulerStats};
use crate::retry::{self, DELAY_TOPIC};
use crate::topic::TopicPartition;
use crate::topic::{self, Incarnation, Topic, TopicInfo};
use crate::vfs::{self, LockGuard, OpenMode, StdVfs, Vfs};
use crate::writer::flusher::Flusher;

/// An open data directory: the root handle of the queue.
///
/// Cheap to clone (a reference count) and `Send + Sync`. The directory is closed by
/// [`Wharf::close`], or when the last handle (including producers and readers made from it)
/// is dropped.
///
/// ```
/// # fn main() -> wharf::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use wharf::{AckMode, Record, TopicConfig, Wharf};
/// let wharf = Wharf::open(dir.path())?;
/// wharf.create_topic("orders", TopicConfig::default().partitions(2))?;
/// let producer = wharf.producer().ack(AckMode::Fsync).build();
/// let receipt = producer.send(Record::new("orders", "order-42").key("user-7"))?;
/// let batch = wharf.reader("orders", receipt.partition())?.read(receipt.offset(), Default::default())?;
/// assert_eq!(batch.get(0).unwrap().payload(), b"order-42");
/// wharf.close()?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Wharf {
    inner: Arc<Inner>,
}

/// What producers and readers hold: the Wharf stays open while any of them lives.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    flusher: Mutex<Option<Flusher>>,
    lock: Mutex<Option<Box<dyn LockGuard>>>,
}

/// FNV-1a: topic names are short and chosen by the application (no hash flooding to fear),
/// and the registry is looked up on every send, where `SipHash` cost more than the append.
#[derive(Default, Clone, Copy)]
pub(crate) struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// What a small metadata file (a checkpoint, a topic's configuration) takes on disk.
const PAGE_BYTES: u64 = 4_096;

type TopicMap = HashMap<Arc<str>, Arc<Topic>, std::hash::BuildHasherDefault<NameHasher>>;

/// State shared with the flusher thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    options: WharfOptions,
    env: PartitionEnv,
    topics: RwLock<TopicMap>,
    groups: Mutex<HashMap<String, Arc<Group>>>,
    admin: Mutex<()>,
    /// Set when a close (or a simulated crash) starts: nothing starts a background thread
    /// from then on.
    closing: AtomicBool,
    /// Set once the background threads are stopped: calls get `Closed` from then on.
    closed: AtomicBool,
    /// The delay scheduler, running while the delay topic exists.
    scheduler: Mutex<Option<Scheduler>>,
    /// The retention thread (none when read-only).
    retention: Mutex<Option<RetentionThread>>,
    /// Records deleted by hard size limits before the groups retention waited for consumed
    /// them, since the open.
    unconsumed_dropped: std::sync::atomic::AtomicU64,
    /// The producers, and the thread that appends their lingering `NoWait` batches (none
    /// when read-only).
    pub(crate) linger: Option<Arc<Linger>>,
    /// This `Shared` itself, for the threads it starts.
    this: Weak<Shared>,
}

/// What recovery did when the Wharf was opened, summed over its partitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryStats {
    /// The previous close was clean (nothing needed scanning).
    pub clean_shutdown: bool,
    /// Partitions opened.
    pub partitions: usize,
    /// Segments whose log was read to find the end: the checkpoint's segment and the ones
    /// after it (0 after a clean shutdown).
    pub scanned_segments: usize,
    /// Bytes of log read to find the end (what was not known durable).
    pub scanned_bytes: u64,
    /// Bytes of torn or invalid tail cut off (zeroed preallocated space not counted).
    pub truncated_bytes: u64,
    /// Leftover files removed: temporary files, orphan indexes, segments after a truncation.
    pub removed_files: usize,
    /// Index files written anew from the log.
    pub rewritten_indexes: usize,
    /// Offsets dropped by [`RecoveryMode::PointInTime`]: from damage in data known durable to
    /// the end of the valid data found after it (0 in the strict mode, which fails instead).
    pub dropped_after_damage: u64,
}

/// Options for opening a [`Wharf`]; every setting has a documented default.
#[derive(Debug, Clone)]
#[must_use]
pub struct WharfBuilder {
    dir: PathBuf,
    options: WharfOptions,
    clock: Arc<dyn Clock>,
    vfs: Arc<dyn Vfs>,
}

impl WharfBuilder {
    /// Replaces the file system (fault injection and simulated disks in tests).
    #[cfg(test)]
    pub(crate) fn vfs(mut self, vfs: Arc<dyn Vfs>) -> Self {
        self.vfs = vfs;
        self
    }

    /// Without background threads (tests): no flusher, no delay scheduler and no prefault
    /// thread; the test syncs with [`Wharf::sync`] and runs scheduler rounds with
    /// [`Wharf::run_scheduler_round`].
    #[cfg(test)]
    pub(crate) fn without_background_threads(mut self) -> Self {
        self.options.background_threads = false;
        self
    }

    /// Opens without taking the lock and without changing anything on disk, for inspection
    /// (possibly while another process writes). Reads see the data as of the open; writes fail
    /// with [`ErrorKind::ReadOnly`]. Default: `false`.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.options.read_only = read_only;
        self
    }

    /// How often data sent with `NoWait` or `Write` is synced in the background. Default:
    /// [`crate::config::DEFAULT_FLUSH_INTERVAL`] (1 s). Must be above zero.
    ///
    /// It also decides when a fast writer gets the pages ahead of it faulted in by a
    /// background thread (which makes its appends several times cheaper): those pages are
    /// zeros that each sync writes to the device, so it happens only while they are at most
    /// 5% of what the writer writes per interval (with the default, from about 9 MB/s per
    /// partition; the shorter the interval, the faster a writer must be).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.options.flush_interval = interval;
        self
    }

    /// Also sync a partition in the background once this many records are unsynced.
    /// Default: off (only the interval applies). Must be at least 1.
    pub fn flush_messages(mut self, messages: u64) -> Self {
        self.options.flush_messages = Some(messages);
        self
    }

    /// Most asynchronous `Fsync` sends waiting for a sync per partition; past it, a send
    /// syncs in the caller's thread. Default: [`crate::config::DEFAULT_MAX_PENDING_ASYNC`].
    pub fn max_pending_async(mut self, sends: usize) -> Self {
        self.options.max_pending_async = sends;
        self
    }

    /// The clock record timestamps and delays come from. Default: [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The table of delay levels of delayed records and retries. Default:
    /// [`DelayLevels::default`], RocketMQ's `1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m
    /// 30m 1h 2h`.
    ///
    /// The delay topic gets one partition per level when it is first created; a later table
    /// may have fewer levels but not more (sends at the extra levels fail with
    /// [`ErrorKind::InvalidConfig`]). Records already waiting keep the due time they were sent
    /// with.
    pub fn delay_levels(mut self, levels: DelayLevels) -> Self {
        self.options.delay_levels = levels;
        self
    }

    /// Interval between two retention runs. Default [`crate::DEFAULT_RETENTION_INTERVAL`]
    /// (60 s). Retention also runs when an append finds no space, and on demand
    /// ([`crate::Admin::enforce_retention`]).
    pub fn retention_interval(mut self, interval: Duration) -> Self {
        self.options.retention_interval = interval;
        self
    }

    /// Most sealed segments kept open (mapped) at once. Default
    /// [`crate::DEFAULT_MAX_OPEN_SEGMENTS`] (512); past it the least recently opened is
    /// closed, and opened again when read.
    pub fn max_open_segments(mut self, segments: usize) -> Self {
        self.options.max_open_segments = segments;
        self
    }

    /// Disk quota: the most bytes the Wharf's files may take. Default: none. A write that
    /// would pass it fails with [`ErrorKind::Full`] (after waiting up to
    /// [`WharfBuilder::full_timeout`]); nothing acknowledged is lost, and writes succeed again
    /// once retention or a deletion frees space. A segment's log file grows in steps: 64 KiB
    /// when the segment is created (4 KiB for the internal delay, retry and dead-letter
    /// topics), then doubling up to the segment size (more at once for an append that needs
    /// it); its two index files grow with it, by about 1/170 of the log's size at the default
    /// `index_interval_bytes`. A writer faster than about 9 MB/s also has up to 4.25 MiB ahead
    /// of it allocated (see `flush_interval`). So set the quota a few segments above what
    /// retention keeps.
    pub fn max_disk_bytes(mut self, bytes: u64) -> Self {
        self.options.max_disk_bytes = Some(bytes);
        self
    }

    /// Free-space floor: writes fail with [`ErrorKind::Full`] rather than leave less than
    /// this many bytes free on the file system. Default: none (a genuinely full disk still
    /// gives `Full`, never a crash).
    pub fn min_free_bytes(mut self, bytes: u64) -> Self {
        self.options.min_free_bytes = Some(bytes);
        self
    }

    /// How long a send waits for space (retention running, a deletion) before it fails with
    /// [`ErrorKind::Full`]. Default: zero, fail at once. While it waits, other sends and syncs
    /// of the same partition wait too.
    pub fn full_timeout(mut self, timeout: Duration) -> Self {
        self.options.full_timeout = timeout;
        self
    }

    /// What opening does with damage in data known durable. Default [`RecoveryMode::Strict`]:
    /// the open fails with [`ErrorKind::Corrupt`] and nothing is changed;
    /// [`RecoveryMode::PointInTime`] cuts the damaged partitions before the damage instead and
    /// counts what it dropped ([`RecoveryStats::dropped_after_damage`]).
    pub fn recovery_mode(mut self, mode: RecoveryMode) -> Self {
        self.options.recovery_mode = mode;
        self
    }

    /// Retention of dead-letter topics (`%DLQ%<group>`), fixed when each is created. Default:
    /// records older than [`crate::DEFAULT_DEAD_LETTER_RETENTION`] (7 days) are deleted.
    pub fn dead_letter_retention(mut self, retention: Retention) -> Self {
        self.options.dead_letter_retention = retention;
        self
    }

    /// Opens the directory (creating it if needed, unless read-only) and recovers it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Locked`] if another Wharf holds the directory; [`ErrorKind::Corrupt`] or
    /// [`ErrorKind::CorruptFile`] if data known to be durable is damaged;
    /// [`ErrorKind::IncompatibleFormat`] for files of another format version;
    /// [`ErrorKind::InvalidConfig`] for bad options; [`ErrorKind::Io`] for I/O failures.
    pub fn open(self) -> Result<Wharf> {
        self.options.validate()?;
        let vfs = self.vfs;
        let dir = self.dir;
        let read_only = self.options.read_only;
        let lock = if read_only {
            if !vfs.exists(&dir).ctx("open", &dir)? {
                return Err(Error::io("open", &dir, std::io::ErrorKind::NotFound.into()));
            }
            None
        } else {
            vfs::create_dir_all_synced(vfs.as_ref(), &dir).ctx("create", &dir)?;
            Some(dir_lock::lock(vfs.as_ref(), &dir)?)
        };
        check_dir_header(vfs.as_ref(), &dir, read_only)?;
        let clean = take_clean_marker(vfs.as_ref(), &dir, read_only)?;
        if !read_only {
            prepare_dirs(vfs.as_ref(), &dir)?;
        }
        let env = PartitionEnv {
            vfs: Arc::clone(&vfs),
            clock: self.clock,
            flush_queue: Arc::new(FlushQueue::default()),
            read_only,
            clean,
            flush_messages: self.options.flush_messages,
            max_pending_async: self.options.max_pending_async,
            prefaulter: if read_only || !self.options.background_threads {
                None
            } else {
                Prefaulter::start(self.options.flush_interval)
            },
            space: Arc::new(DiskSpace::new(
                Arc::clone(&vfs),
                dir.clone(),
                self.options.max_disk_bytes,
                self.options.min_free_bytes,
            )),
            full_timeout: self.options.full_timeout,
            open_segments: Arc::new(OpenSegments::new(self.options.max_open_segments)),
            checkpoint_interval: self.options.flush_interval,
            after_roll: Arc::new(RollHook::default()),
            recovery_mode: self.options.recovery_mode,
        };
        let topics = open_topics(vfs.as_ref(), &dir, &env)?;
        let threaded = self.options.background_threads;
        let shared = Arc::new_cyclic(|this| Shared {
            dir,
            vfs,
            options: self.options,
            env,
            topics: RwLock::new(topics),
            groups: Mutex::new(HashMap::new()),
            admin: Mutex::new(()),
            closing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            scheduler: Mutex::new(None),
            retention: Mutex::new(None),
            linger: (!read_only).then(|| Linger::new(threaded)),
            unconsumed_dropped: std::sync::atomic::AtomicU64::new(0),
            this: this.clone(),
        });
        if !read_only {
            let weak = Arc::downgrade(&shared);
            shared.env.after_roll.set(Box::new(move |log| {
                if let Some(shared) = weak.upgrade() {
                    shared.enforce_hard_limit(log);
                }
            }));
            shared.settle_committed_offsets()?;
            if shared.env.space.is_limited() {
                shared
                    .env
                    .space
                    .recount()
                    .ctx("measure the disk usage of", &shared.dir)?;
            }
            if shared.options.background_threads {
                let thread = RetentionThread::start(&shared, shared.options.retention_interval)
                    .ctx("start the retention thread for", &shared.dir)?;
                *shared.retention.lock() = Some(thread);
            }
        }
        if !read_only && shared.topic(DELAY_TOPIC).is_ok() {
            shared.start_scheduler()?;
        }
        let flusher = if read_only || !shared.options.background_threads {
            None
        } else {
            Some(spawn_flusher(&shared)?)
        };
        Ok(Wharf {
            inner: Arc::new(Inner {
                shared,
                flusher: Mutex::new(flusher),
                lock: Mutex::new(lock),
            }),
        })
    }
}

fn spawn_flusher(shared: &Arc<Shared>) -> Result<Flusher> {
    let weak = Arc::downgrade(shared);
    let source = Box::new(move || {
        weak.upgrade()
            .map(|s| s.all_partitions())
            .unwrap_or_default()
    });
    let weak = Arc::downgrade(shared);
    let tick = Box::new(move || {
        if let Some(shared) = weak.upgrade() {
            // A failure poisons the group's store; its next commit reports it.
            let _synced = shared.sync_groups();
        }
    });
    Flusher::spawn(
        Arc::clone(&shared.env.flush_queue),
        shared.options.flush_interval,
        source,
        tick,
    )
    .ctx("start the flusher thread for", &shared.dir)
}

/// Reads `wharf.meta`, writing it for a new directory.
fn check_dir_header(vfs: &dyn Vfs, dir: &Path, read_only: bool) -> Result<()> {
    let path = dir.join(layout::META_FILE);
    match vfs.open(&path, OpenMode::Read) {
        Ok(file) => {
            let mut bytes = [0u8; file_header::SMALL_HEADER_LEN];
            file.read_exact_at(&mut bytes, 0).ctx("read", &path)?;
            match file_header::decode_small(&bytes, DIR_MAGIC) {
                Ok(_) => Ok(()),
                Err(HeaderError::UnsupportedVersion(found)) => Err(ErrorKind::IncompatibleFormat {
                    path,
                    found: u32::from(found),
                    supported: u32::from(crate::format::FORMAT_VERSION),
                }
                .into()),
                Err(e) => Err(Error::corrupt_file(&path, e.to_string())),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if vfs.exists(&layout::topics_dir(dir)).ctx("open", dir)? {
                return Err(Error::corrupt_file(
                    &path,
                    "the directory header is missing",
                ));
            }
            if read_only {
                return Ok(());
            }
            vfs::write_atomic(vfs, &path, &file_header::encode_small(DIR_MAGIC, 0))
                .ctx("write", &path)
        }
        Err(e) => Err(Error::io("open", path, e)),
    }
}

/// Whether the last close was clean; the marker is removed (and the removal synced) before
/// anything else is written, so a crash from here on is never mistaken for a clean shutdown.
fn take_clean_marker(vfs: &dyn Vfs, dir: &Path, read_only: bool) -> Result<bool> {
    let path = dir.join(layout::CLEAN_SHUTDOWN_FILE);
    let file = match vfs.open(&path, OpenMode::Read) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let mut bytes = [0u8; file_header::SMALL_HEADER_LEN];
    let clean = file.read_exact_at(&mut bytes, 0).is_ok()
        && file_header::decode_small(&bytes, CLEAN_MAGIC).is_ok();
    drop(file);
    if !read_only {
        vfs.remove_file(&path).ctx("remove", &path)?;
        vfs.sync_dir(dir).ctx("sync", dir)?;
    }
    Ok(clean)
}

/// Creates `topics/`, empties `staging/` and `trash/` (half-created and half-deleted topics
/// from before a crash), and removes the temporary files of replacements a crash interrupted
/// in the directory itself and in every group's directory (groups are otherwise opened only
/// when used, and an unused one would keep its leftover forever).
fn prepare_dirs(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    for name in [layout::STAGING_DIR, layout::TRASH_DIR] {
        let path = dir.join(name);
        if vfs.exists(&path).ctx("open", &path)? {
            vfs.remove_dir_all(&path).ctx("remove", &path)?;
        }
    }
    let groups = layout::groups_dir(dir);
    if vfs.exists(&groups).ctx("open", &groups)? {
        for entry in vfs.read_dir(&groups).ctx("list", &groups)? {
            if entry.is_dir {
                remove_temporaries(vfs, &groups.join(entry.name))?;
            }
        }
    }
    remove_temporaries(vfs, dir)?;
    let topics = layout::topics_dir(dir);
    vfs.create_dir_all(&topics).ctx("create", &topics)?;
    vfs.sync_dir(dir).ctx("sync", dir)
}

/// Removes the files of `dir` ending in [`vfs::TMP_SUFFIX`] (a replacement's unfinished copy:
/// the rename that would have replaced the original never happened), syncing `dir` after.
fn remove_temporaries(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let mut removed = false;
    for entry in vfs.read_dir(dir).ctx("list", dir)? {
        if !entry.is_dir && entry.name.ends_with(vfs::TMP_SUFFIX) {
            let path = dir.join(&entry.name);
            vfs.remove_file(&path).ctx("remove", &path)?;
            removed = true;
        }
    }
    if removed {
        vfs.sync_dir(dir).ctx("sync", dir)?;
    }
    Ok(())
}

fn open_topics(vfs: &dyn Vfs, dir: &Path, env: &PartitionEnv) -> Result<TopicMap> {
    let topics_dir = layout::topics_dir(dir);
    let mut topics = TopicMap::default();
    if !vfs.exists(&topics_dir).ctx("open", &topics_dir)? {
        return Ok(topics);
    }
    for entry in vfs.read_dir(&topics_dir).ctx("list", &topics_dir)? {
        if !entry.is_dir {
            continue;
        }
        let topic = Topic::open(vfs, &entry.name, topics_dir.join(&entry.name), env)?;
        topics.insert(Arc::clone(&topic.name), Arc::new(topic));
    }
    Ok(topics)
}

impl Wharf {
    /// Opens `dir` with default options (see [`WharfBuilder`]).
    ///
    /// # Errors
    ///
    /// As [`WharfBuilder::open`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Wharf> {
        Wharf::builder(dir).open()
    }

    /// Options for opening `dir`.
    pub fn builder(dir: impl AsRef<Path>) -> WharfBuilder {
        WharfBuilder {
            dir: dir.as_ref().to_path_buf(),
            options: WharfOptions::default(),
            clock: Arc::new(SystemClock),
            vfs: Arc::new(StdVfs),
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.dir
    }

    /// Creates a topic. Nothing on disk changes if the name or configuration is rejected.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidTopicName`], [`ErrorKind::InvalidConfig`],
    /// [`ErrorKind::TopicExists`], [`ErrorKind::ReadOnly`], [`ErrorKind::Closed`], or an I/O
    /// error.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<TopicInfo> {
        topic::validate_topic_name(name)?;
        config.validate()?;
        self.inner.shared.create_topic(name, config, false)
    }

    /// Creates the topic if it does not exist; returns the existing topic's information (its
    /// stored configuration, which may differ from `config`) if it does.
    ///
    /// # Errors
    ///
    /// As [`Wharf::create_topic`], except `TopicExists`.
    pub fn ensure_topic(&self, name: &str, config: TopicConfig) -> Result<TopicInfo> {
        topic::validate_topic_name(name)?;
        config.validate()?;
        self.inner.shared.create_topic(name, config, true)
    }

    /// The topics, sorted by name.
    pub fn topics(&self) -> Vec<TopicInfo> {
        let mut topics: Vec<TopicInfo> = self
            .inner
            .shared
            .topics
            .read()
            .values()
            .map(|t| t.info())
            .collect();
        topics.sort_by(|a, b| a.name().cmp(b.name()));
        topics
    }

    /// Deletes a topic and all its data, then every consumer group's committed offsets for it
    /// (Kafka's rule): a topic created again under the name starts fresh for every group.
    /// Producers and readers of it get [`ErrorKind::TopicNotFound`] from then on; bytes they
    /// already hold stay valid. Commits of its partitions made afterwards (by consumers that
    /// have not polled since) are dropped. A crash in the middle never leaves the old offsets
    /// to a topic created again: each topic has an incarnation, and offsets committed against
    /// another one count as none (the next open drops them).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TopicNotFound`], [`ErrorKind::ReadOnly`], [`ErrorKind::Closed`], or an I/O
    /// error.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.inner.shared.delete_topic(name)
    }

    /// A builder for a consumer of `group` (Kafka's `group.id`).
    pub fn consumer(&self, group: &str) -> ConsumerBuilder {
        ConsumerBuilder::new(Arc::clone(&self.inner), group)
    }

    /// A builder for a listener-driven consumer of `group` (RocketMQ's push consumer).
    pub fn push_consumer(&self, group: &str) -> PushConsumerBuilder {
        PushConsumerBuilder::new(Arc::clone(&self.inner), group)
    }

    /// Consumer group administration.
    pub fn admin(&self) -> Admin {
        Admin::new(Arc::clone(&self.inner))
    }

    /// A partition's log (tests inside the crate).
    #[cfg(test)]
    pub(crate) fn partition_log(&self, topic: &str, partition: u32) -> Result<Arc<PartitionLog>> {
        Ok(Arc::clone(
            self.inner.shared.topic(topic)?.partition(partition)?,
        ))
    }

    /// Runs one round of the delay scheduler in this thread (tests opened
    /// [`WharfBuilder::without_background_threads`]).
    #[cfg(test)]
    pub(crate) fn run_scheduler_round(&self) -> Result<()> {
        crate::retry::scheduler::run_round(&self.inner.shared)
    }

    /// A builder for a producer.
    pub fn producer(&self) -> ProducerBuilder {
        ProducerBuilder::new(Arc::clone(&self.inner))
    }

    /// A reader of one partition, for tools and the layers above (consumers use it).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TopicNotFound`] or [`ErrorKind::PartitionOutOfRange`].
    pub fn reader(&self, topic: &str, partition: u32) -> Result<PartitionReader> {
        let log = Arc::clone(self.inner.shared.topic(topic)?.partition(partition)?);
        Ok(PartitionReader::new(Arc::clone(&self.inner), log))
    }

    /// What recovery found and did when this Wharf was opened.
    pub fn recovery_stats(&self) -> RecoveryStats {
        let shared = &self.inner.shared;
        let mut stats = RecoveryStats {
            clean_shutdown: shared.env.clean,
            ..RecoveryStats::default()
        };
        for partition in shared.all_partitions() {
            let report = partition.recovery_report();
            stats.partitions += 1;
            stats.scanned_segments += report.scanned_segments;
            stats.scanned_bytes += report.scanned_bytes;
            stats.truncated_bytes += report.truncated_bytes;
            stats.removed_files += report.removed_files;
            stats.rewritten_indexes += report.rewritten_indexes;
            stats.dropped_after_damage += report.dropped_after_damage;
        }
        stats
    }

    /// Syncs every partition now: everything sent so far, with any ack mode, is on stable
    /// storage when this returns, and the checkpoints say so (a crash from here would make
    /// recovery scan nothing written before the call); so are consumer groups' offsets
    /// committed without waiting.
    ///
    /// # Errors
    ///
    /// `Poisoned` if a sync fails, `Closed` after close.
    pub fn sync(&self) -> Result<()> {
        let appended = self.inner.shared.flush_producers();
        for partition in self.inner.shared.all_partitions() {
            partition.sync_and_checkpoint()?;
        }
        self.inner.shared.sync_groups()?;
        appended
    }

    /// Closes the directory: stops the flusher, syncs and trims every partition, records a
    /// clean shutdown and releases the lock. Other handles get [`ErrorKind::Closed`].
    ///
    /// # Errors
    ///
    /// The first failure to sync or write; the shutdown is then not recorded as clean, so the
    /// next open recovers.
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }
}

#[cfg(feature = "test-util")]
impl Wharf {
    /// Lets go of the directory the way a killed process would (feature `test-util`): no sync,
    /// no finalizing, no checkpoint, no clean-shutdown marker; the lock is released. What was
    /// written stays in the page cache, exactly as after `kill -9`, so the next open runs
    /// crash recovery. Other handles get [`ErrorKind::Closed`].
    pub fn simulate_crash(self) {
        let shared = &self.inner.shared;
        if shared.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        shared.closed.store(true, Ordering::Release);
        if let Some(linger) = &shared.linger {
            linger.stop();
        }
        shared.stop_scheduler();
        shared.stop_retention();
        if let Some(mut flusher) = self.inner.flusher.lock().take() {
            flusher.stop();
        }
        for partition in shared.all_partitions() {
            partition.abandon();
        }
        shared.env.flush_queue.clear();
        if let Some(prefaulter) = &shared.env.prefaulter {
            prefaulter.stop();
        }
        drop(self.inner.lock.lock().take());
    }
}

impl Inner {
    fn close(&self) -> Result<()> {
        let shared = &self.shared;
        if shared.closing.load(Ordering::Acquire) {
            return Ok(());
        }
        // Producers' open batches, while appends are still taken.
        let appended = shared.flush_producers();
        if let Some(linger) = &shared.linger {
            linger.stop();
        }
        if shared.closing.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // The scheduler first, while commits are still taken: a round that moved records
        // records its progress before the thread stops, so a clean close never moves a
        // record twice. Then calls get `Closed`.
        shared.stop_scheduler();
        shared.stop_retention();
        shared.closed.store(true, Ordering::Release);
        if let Some(mut flusher) = self.flusher.lock().take() {
            flusher.stop();
        }
        // Groups first: syncing their offsets may sync the logs they point into.
        let mut result = if shared.options.read_only {
            Ok(())
        } else {
            shared.sync_groups()
        };
        for partition in shared.all_partitions() {
            if let Err(e) = partition.close() {
                result = result.and(Err(e));
            }
        }
        // Requests that came after the flusher stopped: nothing is left to do for them.
        shared.env.flush_queue.clear();
        if let Some(prefaulter) = &shared.env.prefaulter {
            prefaulter.stop();
        }
        if result.is_ok() && !shared.options.read_only {
            let path = shared.dir.join(layout::CLEAN_SHUTDOWN_FILE);
            result = vfs::write_atomic(
                shared.vfs.as_ref(),
                &path,
                &file_header::encode_small(CLEAN_MAGIC, 0),
            )
            .ctx("write", &path);
        }
        drop(self.lock.lock().take());
        result.and(appended)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort: a failure means the next open recovers, which is always safe.
        let _closed = self.close();
    }
}

impl Shared {
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::topic_not_found(name))
    }

    /// Appends every producer's open `NoWait` batches.
    ///
    /// # Errors
    ///
    /// A producer's loss not reported yet ([`ErrorKind::Unsent`]).
    pub(crate) fn flush_producers(&self) -> Result<()> {
        self.linger
            .as_ref()
            .map_or(Ok(()), |linger| linger.flush_all())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.env.clock.as_ref()
    }

    pub(crate) fn is_read_only(&self) -> bool {
        self.options.read_only
    }

    fn stop_retention(&self) {
        let thread = self.retention.lock().take();
        if let Some(mut thread) = thread {
            thread.stop();
        }
    }

    /// The Wharf's disk limits and usage.
    pub(crate) fn space(&self) -> &DiskSpace {
        &self.env.space
    }

    /// Adds to the count of records hard size limits dropped unconsumed.
    pub(crate) fn count_unconsumed_dropped(&self, records: u64) {
        self.unconsumed_dropped
            .fetch_add(records, Ordering::Relaxed);
    }

    /// Records hard size limits dropped unconsumed since the open.
    pub(crate) fn unconsumed_dropped(&self) -> u64 {
        self.unconsumed_dropped.load(Ordering::Relaxed)
    }

    /// Every topic.
    pub(crate) fn all_topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// The time on the Wharf's clock.
    pub(crate) fn now(&self) -> crate::clock::Timestamp {
        self.env.clock.now()
    }

    pub(crate) fn delay_levels(&self) -> &DelayLevels {
        &self.options.delay_levels
    }

    /// The configuration a new dead-letter topic gets.
    pub(crate) fn dead_letter_config(&self) -> TopicConfig {
        retry::internal_config(1, self.options.dead_letter_retention.clone())
    }

    /// The internal topic `name`, created with `config` if it does not exist.
    pub(crate) fn ensure_internal_topic(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> Result<Arc<Topic>> {
        if let Ok(topic) = self.topic(name) {
            return Ok(topic);
        }
        self.create_topic(name, config, true)?;
        self.topic(name)
    }

    /// The delay topic, created (with one partition per delay level) and its scheduler
    /// started if needed.
    pub(crate) fn delay_topic(&self) -> Result<Arc<Topic>> {
        if let Ok(topic) = self.topic(DELAY_TOPIC) {
            return Ok(topic);
        }
        let levels = u32::try_from(self.options.delay_levels.len()).unwrap_or(u32::MAX);
        let topic = self.ensure_internal_topic(
            DELAY_TOPIC,
            retry::internal_config(levels, retry::consumed_by(retry::SCHEDULER_GROUP)),
        )?;
        self.start_scheduler()?;
        Ok(topic)
    }

    /// Starts the delay scheduler unless it runs.
    fn start_scheduler(&self) -> Result<()> {
        let mut slot = self.scheduler.lock();
        if slot.is_some()
            || self.closing.load(Ordering::Acquire)
            || !self.options.background_threads
        {
            return Ok(());
        }
        let Some(this) = self.this.upgrade() else {
            return Err(ErrorKind::Closed.into());
        };
        *slot =
            Some(Scheduler::start(&this).ctx("start the delay scheduler thread for", &self.dir)?);
        Ok(())
    }

    fn stop_scheduler(&self) {
        let scheduler = self.scheduler.lock().take();
        if let Some(mut scheduler) = scheduler {
            scheduler.stop();
        }
    }

    /// Runs `f` with the scheduler's statistics, if it runs.
    pub(crate) fn with_scheduler_stats<T>(
        &self,
        f: impl FnOnce(&SchedulerStats) -> T,
    ) -> Option<T> {
        self.scheduler.lock().as_ref().map(|s| f(s.stats()))
    }

    /// Partition counts of every topic (what the assignors spread).
    pub(crate) fn partition_counts(&self) -> std::collections::BTreeMap<String, u32> {
        self.topics
            .read()
            .values()
            .map(|t| (t.name.to_string(), t.config.partitions))
            .collect()
    }

    /// The group named `name`, opening its offsets (creating them if `create`).
    pub(crate) fn group(&self, name: &str, create: bool) -> Result<Arc<Group>> {
        let mut groups = self.groups.lock();
        if let Some(group) = groups.get(name) {
            return Ok(Arc::clone(group));
        }
        let dir = layout::group_dir(&self.dir, name);
        let exists = self.vfs.exists(&dir).ctx("open", &dir)?;
        if !exists && (!create || self.options.read_only) {
            return Err(ErrorKind::GroupNotFound {
                group: name.to_owned(),
            }
            .into());
        }
        if !exists {
            vfs::create_dir_all_synced(self.vfs.as_ref(), &dir).ctx("create", &dir)?;
        }
        let (offsets, load) = OffsetStore::open(
            Arc::clone(&self.vfs),
            &dir,
            self.options.read_only,
            self.env.clean,
        )?;
        let group = Arc::new(Group {
            name: Arc::from(name),
            membership: crate::group::membership::Membership::default(),
            offsets,
            damage: load.damaged,
            consumers: std::sync::atomic::AtomicUsize::new(0),
        });
        groups.insert(name.to_owned(), Arc::clone(&group));
        Ok(group)
    }

    /// Every group with a directory or members, sorted.
    pub(crate) fn group_names(&self) -> Result<Vec<String>> {
        let mut names: std::collections::BTreeSet<String> =
            self.groups.lock().keys().cloned().collect();
        let dir = layout::groups_dir(&self.dir);
        if self.vfs.exists(&dir).ctx("open", &dir)? {
            for entry in self.vfs.read_dir(&dir).ctx("list", &dir)? {
                if entry.is_dir {
                    names.insert(entry.name);
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Deletes an inactive group.
    pub(crate) fn delete_group(&self, name: &str) -> Result<()> {
        self.check_writable()?;
        let group = self.group(name, false)?;
        if group.is_in_use() {
            return Err(ErrorKind::GroupActive {
                group: name.to_owned(),
            }
            .into());
        }
        self.groups.lock().remove(name);
        let dir = layout::group_dir(&self.dir, name);
        self.vfs.remove_dir_all(&dir).ctx("remove", &dir)?;
        let parent = layout::groups_dir(&self.dir);
        self.vfs.sync_dir(&parent).ctx("sync", &parent)
    }

    /// Opens every group and settles its committed offsets, durably, before anything is
    /// appended:
    /// - drops the offsets of topics that no longer exist or were created again since (not of
    ///   the incarnation they were committed against): what a crash between a topic's deletion
    ///   and the removal of its offsets leaves. They would be ignored anyway;
    /// - lowers committed offsets that lie past their partition's log end to that end. A
    ///   commit written without waiting can reach the disk before the records it counted
    ///   (writeback has no order), so after a power loss it can outlive them; once new records
    ///   reuse those offsets, a consumer starting from it would skip them silently
    ///   (RELIABILITY.md scenario 10). Durable commits never need it: the log is made durable
    ///   up to them first.
    fn settle_committed_offsets(&self) -> Result<()> {
        let make_durable = |tp: &TopicPartition, offset: u64| self.make_log_durable(tp, offset);
        for name in self.group_names()? {
            let group = self.group(&name, false)?;
            let is_current =
                |tp: &TopicPartition, c: &Committed| self.is_current(&tp.topic, c.incarnation);
            group.offsets.retain(&is_current, true, &make_durable)?;
            let past_end: Vec<(TopicPartition, Committed)> = group
                .offsets
                .all()
                .into_iter()
                .filter_map(|(tp, committed)| {
                    let end = self
                        .topic(&tp.topic)
                        .ok()?
                        .partition(tp.partition)
                        .ok()?
                        .next_offset();
                    let clamped = Committed {
                        offset: end,
                        ..committed
                    };
                    (committed.offset > end).then_some((tp, clamped))
                })
                .collect();
            if !past_end.is_empty() {
                group.offsets.commit(&past_end, true, &make_durable)?;
            }
        }
        Ok(())
    }

    /// Applies retention to `log` after an append sealed one of its segments, if its topic's
    /// hard size limit is passed ([`crate::retention::after_roll`]). A failure is left to the
    /// retention thread, which runs again at its interval and reports nothing either; the
    /// operations a failure concerns (syncs, deletions) report it to their callers.
    fn enforce_hard_limit(&self, log: &Arc<PartitionLog>) {
        let Ok(topic) = self.topic(log.topic()) else {
            return;
        };
        let current = topic
            .partition(log.partition())
            .is_ok_and(|current| Arc::ptr_eq(current, log));
        if current {
            let _retried_by_the_retention_thread = crate::retention::after_roll(self, &topic, log);
        }
    }

    /// Whether `incarnation` is that of the topic named `topic` now.
    pub(crate) fn is_current(&self, topic: &str, incarnation: Incarnation) -> bool {
        self.topic(topic)
            .is_ok_and(|topic| topic.incarnation == incarnation)
    }

    /// `group`'s committed offset of `tp` in the topic as it exists now (`None` if the topic
    /// does not exist, or the offset was committed against an earlier topic of that name).
    pub(crate) fn committed_offset(&self, group: &Group, tp: &TopicPartition) -> Option<u64> {
        let incarnation = self.topic(&tp.topic).ok()?.incarnation;
        group.offsets.committed(tp, incarnation)
    }

    /// Makes partition `tp`'s log durable up to `offset` (before a commit of it is durable).
    fn make_log_durable(&self, tp: &TopicPartition, offset: u64) -> Result<()> {
        self.topic(&tp.topic)?
            .partition(tp.partition)?
            .sync_to(offset)
    }

    /// Commits `entries` to `group`'s offsets. A group member (`member`) may commit only
    /// partitions it holds, and a commit of a partition it lost meanwhile is refused by the
    /// store's fence (see [`crate::group::membership`]). `durable`: the log up to each offset,
    /// then the offsets, are on stable storage before this returns; otherwise they are
    /// written and synced later. Entries committed against a topic that was deleted since
    /// (their incarnation is not the current one) are dropped: their partition is gone, and
    /// they must not count for a topic of the same name created since.
    ///
    /// No lock of the group's membership is held while the store writes or syncs.
    pub(crate) fn commit_offsets(
        &self,
        group: &Group,
        member: Option<&str>,
        entries: &[(TopicPartition, Committed)],
        durable: bool,
    ) -> Result<()> {
        self.check_writable()?;
        let entries: Vec<(TopicPartition, Committed)> = entries
            .iter()
            .filter(|(tp, c)| self.is_current(&tp.topic, c.incarnation))
            .cloned()
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        // Looked up before the logs are synced: a member that does not hold a partition
        // fails here, before any I/O.
        let fences = match member {
            None => Vec::new(),
            Some(id) => group
                .membership
                .fences(id, entries.iter().map(|(tp, _)| tp))
                .map_err(|tp| -> Error {
                    ErrorKind::Revoked {
                        topic: tp.topic,
                        partition: tp.partition,
                    }
                    .into()
                })?,
        };
        let make_durable = |tp: &TopicPartition, offset: u64| self.make_log_durable(tp, offset);
        group
            .offsets
            .commit_fenced(&entries, &fences, durable, &make_durable)
    }

    /// Makes `group`'s committed offsets durable (the logs they point into first). Runs
    /// outside the group's membership lock, as every sync of the offsets does.
    pub(crate) fn sync_group(&self, group: &Group) -> Result<()> {
        if !group.offsets.needs_sync() {
            return Ok(());
        }
        let make_durable = |tp: &TopicPartition, offset: u64| self.make_log_durable(tp, offset);
        group.offsets.sync(&make_durable)
    }

    /// Syncs every group's offsets written without waiting (the flusher's tick, close).
    pub(crate) fn sync_groups(&self) -> Result<()> {
        let groups: Vec<Arc<Group>> = self.groups.lock().values().cloned().collect();
        let make_durable = |tp: &TopicPartition, offset: u64| self.make_log_durable(tp, offset);
        let mut result = Ok(());
        for group in groups {
            if group.offsets.needs_sync() {
                result = result.and(group.offsets.sync(&make_durable));
            }
        }
        result
    }

    pub(crate) fn all_partitions(&self) -> Vec<Arc<PartitionLog>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// `Closed` after a close (or a simulated crash) began stopping the threads, `ReadOnly`
    /// for a read-only Wharf.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ErrorKind::Closed.into());
        }
        if self.options.read_only {
            return Err(ErrorKind::ReadOnly {
                dir: self.dir.clone(),
            }
            .into());
        }
        Ok(())
    }

    fn create_topic(&self, name: &str, config: TopicConfig, may_exist: bool) -> Result<TopicInfo> {
        let _admin = self.admin.lock();
        if let Ok(existing) = self.topic(name) {
            return if may_exist {
                Ok(existing.info())
            } else {
                Err(ErrorKind::TopicExists {
                    topic: name.to_owned(),
                }
                .into())
            };
        }
        self.check_writable()?;
        // Each partition starts with a segment and a checkpoint (a page at most), and the
        // topic has its configuration (another page).
        let sizes = crate::topic::segment_sizes(name, &config);
        let bytes = (sizes.new_segment_bytes() + PAGE_BYTES)
            .saturating_mul(u64::from(config.partitions))
            .saturating_add(PAGE_BYTES);
        let target = layout::topic_dir(&self.dir, name);
        self.env
            .space
            .reserve(bytes)
            .map_err(|e| Error::space("create", &target, e))?;
        let vfs = self.vfs.as_ref();
        let staging_root = self.dir.join(layout::STAGING_DIR);
        let staging = staging_root.join(name);
        if vfs.exists(&staging).ctx("open", &staging)? {
            vfs.remove_dir_all(&staging).ctx("remove", &staging)?;
        }
        Topic::create_dir(vfs, &staging, &config, Incarnation::new_unique())?;
        vfs.sync_dir(&staging_root).ctx("sync", &staging_root)?;
        vfs.rename(&staging, &target)
            .ctx("move into place", &target)?;
        let topics_dir = layout::topics_dir(&self.dir);
        vfs.sync_dir(&topics_dir).ctx("sync", &topics_dir)?;
        vfs.sync_dir(&staging_root).ctx("sync", &staging_root)?;
        let topic = Arc::new(Topic::open(vfs, name, target, &self.env)?);
        let info = topic.info();
        self.topics.write().insert(Arc::clone(&topic.name), topic);
        // Members subscribed to a topic before it existed (the group's retry topic, created by
        // the first nack) take up its partitions now.
        let counts = self.partition_counts();
        for group in self.groups.lock().values() {
            group.membership.topic_created(name, &counts);
        }
        Ok(info)
    }

    /// Deletes topic `name`, then every group's committed offsets for it. A crash in between
    /// leaves offsets of an incarnation that no longer exists: they count as none, and the
    /// next open drops them ([`Self::settle_committed_offsets`]).
    pub(crate) fn delete_topic(&self, name: &str) -> Result<()> {
        let topic = self.delete_topic_files(name)?;
        // Every group was opened when the Wharf was (and new ones are added as they come).
        let groups: Vec<Arc<Group>> = self.groups.lock().values().cloned().collect();
        let make_durable = |tp: &TopicPartition, offset: u64| self.make_log_durable(tp, offset);
        for group in groups {
            // A failure poisons the group's store, whose next use reports it; the offsets
            // left count as none (their incarnation is gone) and go at the next open.
            let _forgotten =
                group
                    .offsets
                    .forget_topic(name, topic.incarnation, true, &make_durable);
        }
        Ok(())
    }

    /// Takes topic `name` out of the registry and its directory out of `topics/`, durably;
    /// returns the topic.
    fn delete_topic_files(&self, name: &str) -> Result<Arc<Topic>> {
        let _admin = self.admin.lock();
        self.check_writable()?;
        let topic = self.topic(name)?;
        let vfs = self.vfs.as_ref();
        let trash_root = self.dir.join(layout::TRASH_DIR);
        vfs.create_dir_all(&trash_root).ctx("create", &trash_root)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let trash = trash_root.join(format!("{name}.{nanos}"));
        let source = layout::topic_dir(&self.dir, name);
        self.topics.write().remove(name);
        for partition in &topic.partitions {
            partition.mark_removed();
        }
        vfs.rename(&source, &trash)
            .ctx("move to the trash", &source)?;
        let counts = self.partition_counts();
        for group in self.groups.lock().values() {
            group.membership.refresh(&counts);
        }
        let topics_dir = layout::topics_dir(&self.dir);
        vfs.sync_dir(&topics_dir).ctx("sync", &topics_dir)?;
        vfs.sync_dir(&trash_root).ctx("sync", &trash_root)?;
        // The topic is gone once the rename is durable; removing the files can wait for the
        // next open if it fails now.
        if vfs.remove_dir_all(&trash).is_ok() {
            vfs.sync_dir(&trash_root).ctx("sync", &trash_root)?;
        }
        self.env.space.freed();
        Ok(topic)
    }
}
