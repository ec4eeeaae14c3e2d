//! Topics: a name, a configuration and its partitions; name rules; creating a topic's
//! directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{MAX_GROUP_NAME_LEN, MAX_TOPIC_NAME_LEN, TopicConfig};
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::topic_meta::{self, TopicMetaError};
use crate::layout;
use crate::log::{PartitionEnv, PartitionLog};
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
    /// an empty directory with a checkpoint per partition, each synced.
    pub(crate) fn create_dir(vfs: &dyn Vfs, dir: &Path, config: &TopicConfig) -> Result<()> {
        vfs.create_dir_all(dir).ctx("create", dir)?;
        let conf = dir.join(layout::TOPIC_CONF_FILE);
        vfs::write_atomic(vfs, &conf, &topic_meta::encode(config)).ctx("write", &conf)?;
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
        let config = read_config(vfs, &dir)?;
        let name: Arc<str> = Arc::from(name);
        let partitions = (0..config.partitions)
            .map(|p| {
                let partition_dir = layout::partition_dir(&dir, p);
                PartitionLog::open(
                    Arc::clone(&name),
                    p,
                    partition_dir,
                    config.clone(),
                    env.clone(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Topic {
            name,
            config,
            partitions,
        })
    }
}

fn read_config(vfs: &dyn Vfs, dir: &Path) -> Result<TopicConfig> {
    let path = dir.join(layout::TOPIC_CONF_FILE);
    let file = vfs.open(&path, vfs::OpenMode::Read).ctx("open", &path)?;
    let mut bytes = vec![0u8; topic_meta::MAX_TOPIC_META_LEN + 1];
    let read = file.read_up_to(&mut bytes, 0).ctx("read", &path)?;
    bytes.truncate(read);
    let config = match topic_meta::decode(&bytes) {
        Ok(config) => config,
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
    config
        .validate()
        .map_err(|e| Error::corrupt_file(&path, format!("stored configuration is invalid: {e}")))?;
    Ok(config)
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
