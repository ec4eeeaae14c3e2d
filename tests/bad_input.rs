//! Bad input gets a clear, typed error and changes nothing on disk.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use wharf::{ErrorKind, ReadOptions, Record, Retention, TopicConfig, Wharf};

/// Every file and directory under `dir` with its size (directories: 0), excluding the lock.
fn snapshot(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            let name = entry
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string();
            if meta.is_dir() {
                stack.push(entry.path());
                out.insert(name, 0);
            } else {
                out.insert(name, meta.len());
            }
        }
    }
    out
}

#[test]
fn bad_topic_names_are_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    let before = snapshot(dir.path());
    let long = "x".repeat(250);
    for name in [
        "",
        &long,
        ".",
        "..",
        "a/b",
        "../escape",
        "%RETRY%g",
        "%DLQ%g",
        "bell\u{7}",
        "new\nline",
        "sp ace",
    ] {
        let err = wharf
            .create_topic(name, TopicConfig::default())
            .unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::InvalidTopicName { .. }),
            "{name:?}: {err}"
        );
        assert!(err.to_string().contains("invalid topic name"), "{err}");
        let err = wharf
            .ensure_topic(name, TopicConfig::default())
            .unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::InvalidTopicName { .. }),
            "{name:?}"
        );
    }
    assert_eq!(snapshot(dir.path()), before, "no file created or changed");
    assert!(wharf.topics().is_empty());
}

#[test]
fn invalid_configurations_are_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    let before = snapshot(dir.path());
    for config in [
        TopicConfig::default().partitions(0),
        TopicConfig::default().partitions(100_000),
        TopicConfig::default().segment_bytes(10),
        TopicConfig::default().segment_bytes(u64::MAX),
        TopicConfig::default().max_message_bytes(0),
        TopicConfig::default()
            .segment_bytes(8_192)
            .max_message_bytes(16_384),
        TopicConfig::default().retention(Retention::forever().max_bytes(0)),
    ] {
        let err = wharf.create_topic("t", config.clone()).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::InvalidConfig { .. }),
            "{config:?}: {err}"
        );
    }
    assert_eq!(snapshot(dir.path()), before);
    let err = Wharf::builder(dir.path())
        .flush_interval(Duration::ZERO)
        .open()
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidConfig { .. }));
}

#[test]
fn creating_an_existing_topic_fails_and_ensure_returns_the_stored_config() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf
        .create_topic("t", TopicConfig::default().partitions(3))
        .unwrap();
    let err = wharf.create_topic("t", TopicConfig::default()).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::TopicExists { .. }), "{err}");
    let info = wharf
        .ensure_topic("t", TopicConfig::default().partitions(9))
        .unwrap();
    assert_eq!(info.config().partitions, 3, "the stored configuration wins");
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    let topics = wharf.topics();
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].name(), "t");
    assert_eq!(
        topics[0].config(),
        &TopicConfig::default().partitions(3),
        "persisted"
    );
}

#[test]
fn oversized_records_get_message_too_large_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf
        .create_topic("t", TopicConfig::default().max_message_bytes(1_000))
        .unwrap();
    let producer = wharf.producer().build();
    producer.send(Record::new("t", vec![0u8; 900])).unwrap();
    let before = snapshot(dir.path());
    let big = Record::new("t", vec![0u8; 1_001]);
    let err = producer.send(big.clone()).unwrap_err();
    match err.kind() {
        ErrorKind::MessageTooLarge { size, max } => {
            assert!(*size > 1_000);
            assert_eq!(*max, 1_000);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        producer.send_oneway(big.clone()).unwrap_err().kind(),
        ErrorKind::MessageTooLarge { .. }
    ));
    assert!(producer.send_async(big.clone()).wait().is_err());
    let headers_too_big = Record::new("t", vec![0u8; 900]).header("h", vec![0u8; 200]);
    assert!(matches!(
        producer.send(headers_too_big).unwrap_err().kind(),
        ErrorKind::MessageTooLarge { .. }
    ));
    // A batch with one oversized record writes none of its records.
    let batch = vec![Record::new("t", "fine"), big, Record::new("t", "fine too")];
    assert!(matches!(
        producer.send_batch(batch).unwrap_err().kind(),
        ErrorKind::MessageTooLarge { .. }
    ));
    assert_eq!(wharf.reader("t", 0).unwrap().end_offset(), 1);
    assert_eq!(snapshot(dir.path()), before, "nothing written");
}

#[test]
fn unknown_topics_and_partitions_get_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let producer = wharf.producer().build();
    let err = producer.send(Record::new("nope", "x")).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::TopicNotFound { topic } if topic == "nope"),
        "{err}"
    );
    assert_eq!(err.topic(), Some("nope"));
    let batch = vec![Record::new("t", "x"), Record::new("nope", "y")];
    assert!(matches!(
        producer.send_batch(batch).unwrap_err().kind(),
        ErrorKind::TopicNotFound { .. }
    ));
    assert_eq!(
        wharf.reader("t", 0).unwrap().end_offset() + wharf.reader("t", 1).unwrap().end_offset(),
        0
    );
    assert!(matches!(
        wharf.reader("nope", 0).unwrap_err().kind(),
        ErrorKind::TopicNotFound { .. }
    ));
    let err = wharf.reader("t", 2).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::PartitionOutOfRange {
                partition: 2,
                partitions: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        wharf.delete_topic("nope").unwrap_err().kind(),
        ErrorKind::TopicNotFound { .. }
    ));
}

#[test]
fn reads_outside_the_log_get_offset_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    let producer = wharf.producer().build();
    for i in 0..3 {
        producer.send(Record::new("t", format!("{i}"))).unwrap();
    }
    let reader = wharf.reader("t", 0).unwrap();
    assert!(
        reader.read(3, ReadOptions::default()).unwrap().is_empty(),
        "the end itself is fine"
    );
    let err = reader.read(4, ReadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::OffsetOutOfRange {
                offset: 4,
                start: 0,
                end: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.offset(), Some(4));
}

#[test]
fn a_second_open_of_the_same_directory_is_locked_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    let before = snapshot(dir.path());
    let err = Wharf::open(dir.path()).unwrap_err();
    match err.kind() {
        ErrorKind::Locked { dir: locked } => assert_eq!(locked, dir.path()),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "names the directory: {err}"
    );
    assert_eq!(
        snapshot(dir.path()),
        before,
        "the second open wrote nothing"
    );
    wharf.close().unwrap();
    Wharf::open(dir.path()).unwrap().close().unwrap();
}

#[test]
fn a_read_only_open_reads_without_the_lock_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf
        .create_topic(
            "t",
            TopicConfig::default()
                .segment_bytes(4_096)
                .max_message_bytes(1_024),
        )
        .unwrap();
    let producer = wharf.producer().build();
    for i in 0..100u64 {
        producer
            .send(Record::new("t", common::payload(i, 100)))
            .unwrap();
    }
    wharf.sync().unwrap();
    let before = snapshot(dir.path());
    let inspector = Wharf::builder(dir.path()).read_only(true).open().unwrap();
    assert_eq!(
        common::payloads(&inspector, "t", 0),
        common::payloads(&wharf, "t", 0)
    );
    let err = inspector
        .producer()
        .build()
        .send(Record::new("t", "x"))
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::ReadOnly { .. }), "{err}");
    assert!(matches!(
        inspector
            .create_topic("u", TopicConfig::default())
            .unwrap_err()
            .kind(),
        ErrorKind::ReadOnly { .. }
    ));
    assert!(matches!(
        inspector.delete_topic("t").unwrap_err().kind(),
        ErrorKind::ReadOnly { .. }
    ));
    inspector.close().unwrap();
    assert_eq!(
        snapshot(dir.path()),
        before,
        "the inspector changed nothing"
    );
    let missing = dir.path().join("missing");
    assert!(matches!(
        Wharf::builder(&missing)
            .read_only(true)
            .open()
            .unwrap_err()
            .kind(),
        ErrorKind::Io { .. }
    ));
    assert!(!missing.exists());
}

#[test]
fn handles_report_closed_after_close() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    let producer = wharf.producer().build();
    let reader = wharf.reader("t", 0).unwrap();
    producer.send(Record::new("t", "before")).unwrap();
    wharf.clone().close().unwrap();
    let err = producer.send(Record::new("t", "after")).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Closed), "{err}");
    assert!(matches!(
        wharf
            .create_topic("u", TopicConfig::default())
            .unwrap_err()
            .kind(),
        ErrorKind::Closed
    ));
    assert_eq!(
        reader.read(0, ReadOptions::default()).unwrap().len(),
        1,
        "data read after close"
    );
}

#[test]
fn deleting_a_topic_removes_its_data_and_its_name_can_be_reused() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let producer = wharf.producer().build();
    producer.send(Record::new("t", "old")).unwrap();
    let reader = wharf.reader("t", 0).unwrap();
    wharf.delete_topic("t").unwrap();
    assert!(!dir.path().join("topics").join("t").exists());
    assert!(matches!(
        producer.send(Record::new("t", "x")).unwrap_err().kind(),
        ErrorKind::TopicNotFound { .. }
    ));
    assert!(matches!(
        reader.read(0, ReadOptions::default()).unwrap_err().kind(),
        ErrorKind::TopicNotFound { .. }
    ));
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    assert_eq!(
        wharf.reader("t", 0).unwrap().end_offset(),
        0,
        "a new, empty topic"
    );
    wharf.close().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    assert_eq!(wharf.topics().len(), 1);
    assert_eq!(wharf.topics()[0].config().partitions, 1);
}

#[test]
fn leftovers_of_interrupted_creates_and_deletes_are_cleared_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    wharf.create_topic("t", TopicConfig::default()).unwrap();
    wharf.close().unwrap();
    // As a crash in the middle of create_topic or delete_topic would leave them.
    std::fs::create_dir_all(dir.path().join("staging").join("half-made").join("0")).unwrap();
    std::fs::create_dir_all(dir.path().join("trash").join("t.123").join("0")).unwrap();
    std::fs::write(
        dir.path()
            .join("topics")
            .join("t")
            .join("0")
            .join("00000000000000000000.index.tmp"),
        b"x",
    )
    .unwrap();
    std::fs::write(
        dir.path()
            .join("topics")
            .join("t")
            .join("0")
            .join("00000000000000000099.index"),
        b"orphan",
    )
    .unwrap();
    let wharf = Wharf::open(dir.path()).unwrap();
    assert_eq!(wharf.topics().len(), 1);
    assert!(!dir.path().join("staging").join("half-made").exists());
    assert!(!dir.path().join("trash").join("t.123").exists());
    let pdir = dir.path().join("topics").join("t").join("0");
    assert!(!pdir.join("00000000000000000000.index.tmp").exists());
    assert!(!pdir.join("00000000000000000099.index").exists());
    assert!(wharf.recovery_stats().removed_files >= 2);
}
