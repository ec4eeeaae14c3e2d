//! Topics: a name, a configuration, an incarnation and its partitions; name rules; creating
//! a topic's directory.
//!
//! A topic's *incarnation* is chosen when it is created and stored in its `topic.conf`: it
//! tells the topic from an earlier one of the same name that was deleted. Every committed
//! offset carries the incarnation of the topic it was committed against, and an offset of
//! another incarnation counts as none, so a recreated topic starts fresh for every group even
//! if a crash kept the deleted topic's offsets.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{MAX_GROUP_NAME_LEN, MAX_TOPIC_NAME_LEN, TopicConfig};
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::topic_meta::{self, TopicMetaError};
use crate::layout;
use crate::log::{FIRST_LOG_ALLOCATION_BYTES, PartitionEnv, PartitionLog, SegmentSizes};
use crate::vfs::{self, Vfs};

/// Prefix of a consumer group's retry topic (RocketMQ's name).
pub(crate) const RETRY_PREFIX: &str = "%RETRY%";
/// Prefix of a consumer group's dead-letter topic (RocketMQ's name).
pub(crate) const DLQ_PREFIX: &str = "%DLQ%";

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
}

impl TopicPartition {
    /// Partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    /// `topic/partition`, as the CLI and error messages write it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Which creation of a topic of a given name this is: a `u64` chosen at random when the topic
/// is created, never 0. Unique within a data directory with overwhelming probability (two
/// topics of one name share it with a chance of about 2^-64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Incarnation(u64);

impl Incarnation {
    /// A new incarnation: the wall clock in nanoseconds and a per-process counter, hashed with
    /// the process's random hash keys (never 0). Not a time: only its uniqueness matters, so
    /// it does not come from the Wharf's clock (a `ManualClock` repeats its times).
    pub(crate) fn new_unique() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        Incarnation(hasher.finish().max(1))
    }

    /// The incarnation stored as `value` (not 0).
    pub(crate) fn from_stored(value: u64) -> Option<Self> {
        (value != 0).then_some(Incarnation(value))
    }

    /// The value stored on disk.
    pub(crate) fn get(self) -> u64 {
        self.0
    }
}

/// A topic's name and configuration, as listed by [`crate::Wharf::topics`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    name: String,
    config: TopicConfig,
}

impl TopicInfo {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic's configuration.
    pub fn config(&self) -> &TopicConfig {
        &self.config
    }

    /// Whether wharf created the topic for itself: the delay topic `%DELAY%`, a group's retry
    /// topic `%RETRY%<group>` or dead-letter topic `%DLQ%<group>`.
    pub fn is_internal(&self) -> bool {
        crate::retry::is_internal(&self.name)
    }
}

/// An open topic.
#[derive(Debug)]
pub(crate) struct Topic {
    pub name: Arc<str>,
    pub config: TopicConfig,
    /// Which creation of a topic of this name it is.
    pub incarnation: Incarnation,
    pub partitions: Vec<Arc<PartitionLog>>,
}

impl Topic {
    pub(crate) fn info(&self) -> TopicInfo {
        TopicInfo {
            name: self.name.to_string(),
            config: self.config.clone(),
        }
    }

    /// The partition numbered `partition`.
    pub(crate) fn partition(&self, partition: u32) -> Result<&Arc<PartitionLog>> {
        self.partitions.get(partition as usize).ok_or_else(|| {
            ErrorKind::PartitionOutOfRange {
                topic: self.name.to_string(),
                partition,
                partitions: self.config.partitions,
            }
            .into()
        })
    }

    /// Writes a new topic's directory at `dir` (which must not exist): its configuration and
    /// incarnation, and an empty directory with a checkpoint per partition, each synced.
    pub(crate) fn create_dir(
        vfs: &dyn Vfs,
        dir: &Path,
        config: &TopicConfig,
        incarnation: Incarnation,
    ) -> Result<()> {
        vfs.create_dir_all(dir).ctx("create", dir)?;
        let conf = dir.join(layout::TOPIC_CONF_FILE);
        let bytes = topic_meta::encode(config, incarnation.get());
        vfs::write_atomic(vfs, &conf, &bytes).ctx("write", &conf)?;
        for partition in 0..config.partitions {
            PartitionLog::create(vfs, &layout::partition_dir(dir, partition))?;
        }
        vfs.sync_dir(dir).ctx("sync", dir)
    }

    /// Opens the topic stored at `dir`, recovering each partition.
    pub(crate) fn open(
        vfs: &dyn Vfs,
        name: &str,
        dir: PathBuf,
        env: &PartitionEnv,
    ) -> Result<Topic> {
        let (config, incarnation) = read_config(vfs, &dir)?;
        let sizes = segment_sizes(name, &config);
        let name: Arc<str> = Arc::from(name);
        let partitions = (0..config.partitions)
            .map(|p| {
                let partition_dir = layout::partition_dir(&dir, p);
                PartitionLog::open(
                    Arc::clone(&name),
                    p,
                    partition_dir,
                    config.clone(),
                    sizes,
                    env.clone(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Topic {
            name,
            config,
            incarnation,
            partitions,
        })
    }
}

/// How large the segment files of topic `name` are allocated: internal topics start theirs
/// smaller than user topics ([`crate::retry::INTERNAL_FIRST_LOG_ALLOCATION_BYTES`]).
pub(crate) fn segment_sizes(name: &str, config: &TopicConfig) -> SegmentSizes {
    let first = if crate::retry::is_internal(name) {
        crate::retry::INTERNAL_FIRST_LOG_ALLOCATION_BYTES
    } else {
        FIRST_LOG_ALLOCATION_BYTES
    };
    SegmentSizes::new(config, first)
}

fn read_config(vfs: &dyn Vfs, dir: &Path) -> Result<(TopicConfig, Incarnation)> {
    let path = dir.join(layout::TOPIC_CONF_FILE);
    let file = vfs.open(&path, vfs::OpenMode::Read).ctx("open", &path)?;
    let mut bytes = vec![0u8; topic_meta::MAX_TOPIC_META_LEN + 1];
    let read = file.read_up_to(&mut bytes, 0).ctx("read", &path)?;
    bytes.truncate(read);
    let meta = match topic_meta::decode(&bytes) {
        Ok(meta) => meta,
        Err(TopicMetaError::Damaged) => {
            return Err(Error::corrupt_file(&path, "damaged topic configuration"));
        }
        Err(TopicMetaError::UnsupportedVersion(found)) => {
            return Err(ErrorKind::IncompatibleFormat {
                path,
                found: u32::from(found),
                supported: u32::from(crate::format::FORMAT_VERSION),
            }
            .into());
        }
    };
    meta.config
        .validate()
        .map_err(|e| Error::corrupt_file(&path, format!("stored configuration is invalid: {e}")))?;
    let incarnation = Incarnation::from_stored(meta.incarnation)
        .ok_or_else(|| Error::corrupt_file(&path, "the topic's incarnation is 0"))?;
    Ok((meta.config, incarnation))
}

/// Checks a topic name given by a user. Names follow Kafka's rules (1 to 249 of ASCII letters,
/// digits, `.`, `_` and `-`, not `.` or `..`), which also makes them safe as directory names on
/// every platform; the `%RETRY%` and `%DLQ%` prefixes are reserved.
///
/// # Errors
///
/// [`ErrorKind::InvalidTopicName`] with the reason.
pub fn validate_topic_name(name: &str) -> Result<()> {
    match name_problem(name) {
        None => Ok(()),
        Some(reason) => Err(ErrorKind::InvalidTopicName {
            name: name.to_owned(),
            reason,
        }
        .into()),
    }
}

/// Checks a consumer group name: the same rules as topic names, and at most
/// [`crate::MAX_GROUP_NAME_LEN`] (242) bytes, so that the group's retry and dead-letter
/// topics (`%RETRY%<group>`, `%DLQ%<group>`) are valid topic names too.
///
/// # Errors
///
/// [`ErrorKind::InvalidGroupName`] with the reason.
pub fn validate_group_name(name: &str) -> Result<()> {
    let problem = if name.len() > MAX_GROUP_NAME_LEN {
        Some("the name is longer than 242 bytes (its retry topic's name must fit 249)")
    } else {
        name_problem(name)
    };
    match problem {
        None => Ok(()),
        Some(reason) => Err(ErrorKind::InvalidGroupName {
            name: name.to_owned(),
            reason,
        }
        .into()),
    }
}

/// What is wrong with `name` as a topic or group name, if anything.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("the name is empty")
    } else if name.len() > MAX_TOPIC_NAME_LEN {
        Some("the name is longer than 249 bytes")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not allowed")
    } else if name.starts_with(RETRY_PREFIX) || name.starts_with(DLQ_PREFIX) {
        Some("the %RETRY% and %DLQ% prefixes are reserved for consumer groups")
    } else if name.contains('/') || name.contains('\\') {
        Some("the name contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("the name contains a control character")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incarnations_are_never_zero_and_differ() {
        let made: std::collections::BTreeSet<Incarnation> =
            (0..1_000).map(|_| Incarnation::new_unique()).collect();
        assert_eq!(made.len(), 1_000);
        assert!(made.iter().all(|i| i.get() != 0));
        assert_eq!(Incarnation::from_stored(0), None);
        assert_eq!(Incarnation::from_stored(7).map(Incarnation::get), Some(7));
    }

    #[test]
    fn kafka_style_names_pass() {
        for name in [
            "orders",
            "a",
            "Orders.v2",
            "user_events-2024",
            &"x".repeat(249),
        ] {
            validate_topic_name(name).expect(name);
        }
    }

    #[test]
    fn bad_names_are_rejected_with_a_reason() {
        for name in [
            "",
            &"x".repeat(250),
            ".",
            "..",
            "%RETRY%billing",
            "%DLQ%billing",
            "a/b",
            "../etc",
            "a\\b",
            "tab\there",
            "nul\0",
            "spa ce",
            "ünïcode",
        ] {
            let err = validate_topic_name(name).expect_err(name);
            assert!(
                matches!(err.kind(), ErrorKind::InvalidTopicName { .. }),
                "{name:?}"
            );
        }
    }
}
