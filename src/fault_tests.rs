//! Fault injection through the I/O seam: a failed sync poisons a partition and is never
//! reported as success afterwards (fsyncgate); a full disk fails an append cleanly.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::vfs::faulty::FaultyVfs;
use crate::{AckMode, ErrorKind, ReadOptions, Record, TopicConfig, Wharf};

fn payloads(wharf: &Wharf, topic: &str, partition: u32) -> Vec<Vec<u8>> {
    let reader = wharf.reader(topic, partition).expect("reader");
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < reader.end_offset() {
        let batch = reader.read(offset, ReadOptions::default()).expect("read");
        out.extend(batch.iter().map(|m| m.payload().to_vec()));
        offset = batch.next_offset();
    }
    out
}

#[test]
fn a_failed_sync_poisons_the_partition_and_is_never_retried_as_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (vfs, faults) = FaultyVfs::new();
    let wharf = Wharf::builder(dir.path())
        .vfs(vfs)
        .flush_interval(Duration::from_secs(3_600))
        .open()
        .expect("open");
    wharf
        .create_topic("t", TopicConfig::default().partitions(2))
        .expect("topic");
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    for i in 0..5 {
        producer
            .send(Record::new("t", format!("ok-{i}")).partition(0))
            .expect("durable");
    }
    faults.fail_next_log_sync.store(true, Ordering::SeqCst);
    let err = producer
        .send(Record::new("t", "lost?").partition(0))
        .expect_err("sync fails");
    assert!(
        matches!(err.kind(), ErrorKind::Poisoned { partition: 0, .. }),
        "{err}"
    );
    assert_eq!(faults.failed_syncs.load(Ordering::SeqCst), 1);

    // The next sync would succeed at the OS level, but the partition must not pretend.
    for ack in [AckMode::Fsync, AckMode::Write, AckMode::NoWait] {
        let err = producer
            .send_with(Record::new("t", "after").partition(0), ack)
            .expect_err("poisoned");
        assert!(
            matches!(err.kind(), ErrorKind::Poisoned { .. }),
            "{ack:?}: {err}"
        );
    }
    let err = producer
        .send_async(Record::new("t", "async").partition(0))
        .wait()
        .expect_err("poisoned");
    assert!(matches!(err.kind(), ErrorKind::Poisoned { .. }));
    assert!(
        wharf.sync().is_err(),
        "Wharf::sync reports the poisoned partition"
    );
    let reader = wharf.reader("t", 0).expect("reader");
    assert_eq!(
        reader.durable_end_offset(),
        5,
        "the failed sync did not advance the durable point"
    );

    // Other partitions are unaffected.
    producer
        .send(Record::new("t", "fine").partition(1))
        .expect("partition 1 still works");

    let err = wharf.close().expect_err("close reports the failure");
    assert!(matches!(err.kind(), ErrorKind::Poisoned { .. }), "{err}");
    assert!(
        !dir.path().join("clean_shutdown").exists(),
        "not recorded as a clean shutdown"
    );

    let wharf = Wharf::open(dir.path()).expect("reopen recovers");
    assert!(!wharf.recovery_stats().clean_shutdown);
    let recovered = payloads(&wharf, "t", 0);
    let acked: Vec<Vec<u8>> = (0..5).map(|i| format!("ok-{i}").into_bytes()).collect();
    assert_eq!(
        recovered[..5],
        acked[..],
        "every acknowledged record survived"
    );
    let receipt = wharf
        .producer()
        .ack(AckMode::Fsync)
        .build()
        .send(Record::new("t", "x").partition(0));
    assert_eq!(
        receipt.expect("writable again").offset(),
        recovered.len() as u64
    );
}

#[test]
fn waiting_async_sends_get_the_sync_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (vfs, faults) = FaultyVfs::new();
    let wharf = Wharf::builder(dir.path())
        .vfs(vfs)
        .flush_interval(Duration::from_secs(3_600))
        .open()
        .expect("open");
    wharf
        .create_topic("t", TopicConfig::default())
        .expect("topic");
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    faults.fail_next_log_sync.store(true, Ordering::SeqCst);
    let handles: Vec<_> = (0..20)
        .map(|i| producer.send_async(Record::new("t", format!("{i}"))))
        .collect();
    let results: Vec<_> = handles.into_iter().map(crate::SendHandle::wait).collect();
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert!(
        failed >= 1,
        "the sync that failed was reported to its waiters"
    );
    for result in results.iter().skip_while(|r| r.is_ok()) {
        let err = result
            .as_ref()
            .expect_err("every send after the failure fails");
        assert!(matches!(err.kind(), ErrorKind::Poisoned { .. }), "{err}");
    }
}

#[test]
fn a_full_disk_fails_the_roll_cleanly_and_appends_resume_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (vfs, faults) = FaultyVfs::new();
    let wharf = Wharf::builder(dir.path()).vfs(vfs).open().expect("open");
    let config = TopicConfig::default()
        .segment_bytes(4_096)
        .max_message_bytes(512);
    wharf.create_topic("t", config).expect("topic");
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    let mut expected = Vec::new();
    let (mut failures, mut resumed) = (0, 0);
    for i in 0..200u32 {
        if i == 50 {
            faults.no_space.store(true, Ordering::SeqCst);
        }
        if i == 150 {
            faults.no_space.store(false, Ordering::SeqCst);
        }
        let body = format!("record-{i:04}-{}", "x".repeat(100)).into_bytes();
        match producer.send(Record::new("t", body.clone())) {
            Ok(receipt) => {
                assert_eq!(
                    receipt.offset(),
                    expected.len() as u64,
                    "no hole, no duplicate"
                );
                expected.push(body);
                resumed += usize::from(i >= 150);
            }
            Err(err) => {
                assert!((50..150).contains(&i), "only fails while the disk is full");
                assert!(matches!(err.kind(), ErrorKind::Full { .. }), "{err}");
                failures += 1;
            }
        }
    }
    assert!(failures > 0, "the full disk was hit (a roll needed space)");
    assert_eq!(resumed, 50, "every append succeeded once space was back");
    assert_eq!(payloads(&wharf, "t", 0), expected);
    wharf.close().expect("close");
    let wharf = Wharf::open(dir.path()).expect("reopen");
    assert_eq!(payloads(&wharf, "t", 0), expected);
}

#[test]
fn a_full_disk_fails_growing_the_active_segment_without_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (vfs, faults) = FaultyVfs::new();
    let wharf = Wharf::builder(dir.path())
        .vfs(Arc::clone(&vfs) as _)
        .open()
        .expect("open");
    wharf
        .create_topic("t", TopicConfig::default())
        .expect("topic");
    let producer = wharf.producer().build();
    let body = vec![7u8; 100 * 1024];
    for _ in 0..10 {
        producer
            .send(Record::new("t", body.clone()))
            .expect("room on the disk");
    }
    // From now on no more space can be reserved: the sends go on until the space reserved
    // so far (some of it ahead of the writer) is used up, then fail without writing.
    faults.no_space.store(true, Ordering::SeqCst);
    let mut written = 10;
    let err = loop {
        match producer.send(Record::new("t", body.clone())) {
            Ok(receipt) => {
                assert_eq!(receipt.offset(), written);
                written += 1;
                assert!(written < 700, "a 64 MiB segment cannot hold more");
            }
            Err(err) => break err,
        }
    };
    assert!(matches!(err.kind(), ErrorKind::Full { .. }), "{err}");
    assert_eq!(
        wharf.reader("t", 0).expect("reader").end_offset(),
        written,
        "nothing written"
    );
    faults.no_space.store(false, Ordering::SeqCst);
    assert_eq!(
        producer
            .send(Record::new("t", body))
            .expect("space is back")
            .offset(),
        written
    );
}
