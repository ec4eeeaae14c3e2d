//! Every path and file name in a data directory.
//!
//! ```text
//! <dir>/wharf.lock                       exclusive lock (flock), held while open for writing
//! <dir>/wharf.meta                       directory header: magic WHARFDIR + format version
//! <dir>/clean_shutdown                   present only between a clean close and the next open
//! <dir>/topics/<topic>/topic.conf        the topic's configuration and incarnation
//! <dir>/topics/<topic>/<partition>/      one directory per partition, named 0, 1, 2, ...
//!     00000000000000000000.log           segment: batches from base offset 0
//!     00000000000000000000.index         sparse offset index of that segment
//!     00000000000000000000.timeindex     time index of that segment
//!     checkpoint                         durable point of the partition (A/B slots)
//! <dir>/groups/<group>/offsets           a consumer group's committed offsets
//! <dir>/topics/%DELAY%/                  internal: delayed records, one partition per level
//! <dir>/topics/%RETRY%<group>/           internal: a group's retries
//! <dir>/topics/%DLQ%<group>/             internal: a group's dead letters
//! <dir>/groups/%DELAY%/offsets           internal: the delay scheduler's progress
//! <dir>/staging/                         topics being created (moved into topics/ when complete)
//! <dir>/trash/                           topics being deleted
//! ```
//!
//! Files ending in `.tmp` are unfinished replacements; leftovers, `staging/` and `trash/` are
//! cleared on open.

use std::path::{Path, PathBuf};

pub(crate) const LOCK_FILE: &str = "wharf.lock";
pub(crate) const META_FILE: &str = "wharf.meta";
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean_shutdown";
pub(crate) const TOPICS_DIR: &str = "topics";
pub(crate) const GROUPS_DIR: &str = "groups";
pub(crate) const STAGING_DIR: &str = "staging";
pub(crate) const TRASH_DIR: &str = "trash";
pub(crate) const TOPIC_CONF_FILE: &str = "topic.conf";
pub(crate) const CHECKPOINT_FILE: &str = "checkpoint";

pub(crate) const LOG_EXT: &str = "log";
pub(crate) const INDEX_EXT: &str = "index";
pub(crate) const TIME_INDEX_EXT: &str = "timeindex";

/// Digits in a segment file name.
const BASE_OFFSET_DIGITS: usize = 20;

pub(crate) fn topics_dir(root: &Path) -> PathBuf {
    root.join(TOPICS_DIR)
}

pub(crate) fn topic_dir(root: &Path, topic: &str) -> PathBuf {
    topics_dir(root).join(topic)
}

pub(crate) fn groups_dir(root: &Path) -> PathBuf {
    root.join(GROUPS_DIR)
}

pub(crate) fn group_dir(root: &Path, group: &str) -> PathBuf {
    groups_dir(root).join(group)
}

pub(crate) fn partition_dir(topic_dir: &Path, partition: u32) -> PathBuf {
    topic_dir.join(partition.to_string())
}

/// The three files of the segment based at `base_offset`.
#[derive(Debug, Clone)]
pub(crate) struct SegmentPaths {
    pub log: PathBuf,
    pub index: PathBuf,
    pub time_index: PathBuf,
}

impl SegmentPaths {
    pub(crate) fn new(partition_dir: &Path, base_offset: u64) -> Self {
        let stem = format!("{base_offset:0BASE_OFFSET_DIGITS$}");
        SegmentPaths {
            log: partition_dir.join(format!("{stem}.{LOG_EXT}")),
            index: partition_dir.join(format!("{stem}.{INDEX_EXT}")),
            time_index: partition_dir.join(format!("{stem}.{TIME_INDEX_EXT}")),
        }
    }
}

/// A file name in a partition directory, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartitionFile {
    Log(u64),
    Index(u64),
    TimeIndex(u64),
    Checkpoint,
    Temporary,
    Unknown,
}

/// Classifies a file name found in a partition directory.
pub(crate) fn classify(name: &str) -> PartitionFile {
    if name == CHECKPOINT_FILE {
        return PartitionFile::Checkpoint;
    }
    if name.ends_with(crate::vfs::TMP_SUFFIX) {
        return PartitionFile::Temporary;
    }
    let Some((stem, ext)) = name.split_once('.') else {
        return PartitionFile::Unknown;
    };
    if stem.len() != BASE_OFFSET_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return PartitionFile::Unknown;
    }
    let Ok(base) = stem.parse::<u64>() else {
        return PartitionFile::Unknown;
    };
    match ext {
        LOG_EXT => PartitionFile::Log(base),
        INDEX_EXT => PartitionFile::Index(base),
        TIME_INDEX_EXT => PartitionFile::TimeIndex(base),
        _ => PartitionFile::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_are_twenty_digits_and_classify_back() {
        let paths = SegmentPaths::new(Path::new("/d"), 42);
        assert_eq!(paths.log, Path::new("/d/00000000000000000042.log"));
        assert_eq!(classify("00000000000000000042.log"), PartitionFile::Log(42));
        assert_eq!(
            classify("00000000000000000042.index"),
            PartitionFile::Index(42)
        );
        assert_eq!(
            classify("00000000000000000042.timeindex"),
            PartitionFile::TimeIndex(42)
        );
        assert_eq!(classify("checkpoint"), PartitionFile::Checkpoint);
        assert_eq!(
            classify("00000000000000000042.index.tmp"),
            PartitionFile::Temporary
        );
        assert_eq!(classify("42.log"), PartitionFile::Unknown);
        assert_eq!(
            classify("99999999999999999999.log"),
            PartitionFile::Unknown,
            "overflows u64"
        );
        assert_eq!(classify("notes.txt"), PartitionFile::Unknown);
    }
}
