//! Deleting a topic and creating it again, through the I/O seam: a crash at every point of a
//! deletion (on the simulated disk, with a process kill, a power loss and random damage), and
//! a failed removal of the groups' offsets ([`FaultyVfs`]), never leave a recreated topic
//! with the deleted one's committed offsets. The deletion removes the topic first and the
//! offsets after; whatever a crash leaves in between is of an incarnation that no longer
//! exists, counts as none, and is dropped by the next open.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::format::file_header::SMALL_HEADER_LEN;
use crate::format::offset_commit;
use crate::topic::TopicPartition;
use crate::vfs::faulty::FaultyVfs;
use crate::vfs::sim::{Damage, SimVfs};
use crate::{AckMode, ManualClock, Record, TopicConfig, Wharf, WharfBuilder};

const OFFSETS: &str = "/wharf/groups/g/offsets";

fn builder(sim: &SimVfs) -> WharfBuilder {
    Wharf::builder("/wharf")
        .vfs(Arc::new(sim.clone()))
        .clock(Arc::new(ManualClock::new(Timestamp::from_millis(
            1_700_000_000_000,
        ))))
        .without_background_threads()
}

fn config() -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(64 << 10)
        .max_message_bytes(1_024)
}

fn send(wharf: &Wharf, prefix: &str, n: u64) {
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    for i in 0..n {
        producer
            .send(Record::new("t", format!("{prefix}-{i}")))
            .expect("durable");
    }
}

/// Topic `t` with 12 records, of which group `g` consumed and durably committed 10.
fn committed_ten(sim: &SimVfs) -> Wharf {
    let wharf = builder(sim).open().expect("open");
    wharf.create_topic("t", config()).expect("topic");
    send(&wharf, "old", 12);
    let mut consumer = wharf
        .consumer("g")
        .assign([("t", 0)])
        .build()
        .expect("consumer");
    let polled = consumer.poll_batch(10, Duration::ZERO).expect("poll");
    assert_eq!(polled.len(), 10);
    consumer.commit().expect("durable commit");
    drop(polled);
    drop(consumer);
    wharf
}

/// The topics group `g`'s offsets file holds offsets for (replaying its valid records).
fn topics_in_offsets(disk: &SimVfs) -> BTreeSet<String> {
    let Ok(bytes) = disk.read_file(Path::new(OFFSETS)) else {
        return BTreeSet::new();
    };
    let body = bytes.get(SMALL_HEADER_LEN..).unwrap_or_default();
    let mut state = BTreeSet::new();
    for record in offset_commit::decode_records(body, None).records {
        if record.snapshot {
            state.clear();
        }
        state.extend(record.entries.into_iter().map(|e| e.topic));
    }
    state
}

/// Checks a recovered Wharf: `t` is either still there with `g`'s offset, or gone with its
/// offsets, and then a recreated `t` starts fresh for `g`.
fn check_recovered(wharf: &Wharf, disk: &SimVfs, case: &str) {
    let tp = TopicPartition::new("t", 0);
    if wharf.topics().iter().any(|t| t.name() == "t") {
        // The deletion never became durable: nothing of it happened.
        let consumer = wharf.consumer("g").assign([("t", 0)]).build();
        let committed = consumer.expect("consumer").committed(&tp);
        assert_eq!(
            committed,
            Some(10),
            "{case}: the topic stayed, its offset too"
        );
        return;
    }
    let stale_kept = topics_in_offsets(disk).contains("t");
    wharf.create_topic("t", config()).expect("recreate");
    send(wharf, "new", 5);
    let description = wharf.admin().describe_group("g").expect("describe");
    assert!(
        description
            .partitions
            .iter()
            .all(|p| p.lag.committed.is_none()),
        "{case}: {description:?}"
    );
    let mut consumer = wharf
        .consumer("g")
        .assign([("t", 0)])
        .build()
        .expect("consumer");
    assert_eq!(consumer.committed(&tp), None, "{case}");
    let polled = consumer.poll_batch(100, Duration::ZERO).expect("poll");
    let payloads: Vec<Vec<u8>> = polled.iter().map(|d| d.payload().to_vec()).collect();
    let expected: Vec<Vec<u8>> = (0..5).map(|i| format!("new-{i}").into_bytes()).collect();
    assert_eq!(
        payloads, expected,
        "{case}: every new record, from the start"
    );
    assert!(
        !stale_kept,
        "{case}: the open dropped the deleted topic's offsets"
    );
}

#[test]
fn a_crash_at_any_point_of_a_deletion_never_gives_a_recreated_topic_stale_offsets() {
    let probe = SimVfs::new();
    let wharf = committed_ten(&probe);
    let before = probe.ops();
    wharf.delete_topic("t").expect("delete");
    let deletion_ops = probe.ops() - before;
    drop(wharf);
    // Crash images where the topic was gone but its offsets were still in the file.
    let mut between = 0;
    for k in 0..=deletion_ops {
        for damage in [Damage::Kill, Damage::LoseUnsynced, Damage::Random(k)] {
            let case = format!("crash at op {k} of {deletion_ops} of the deletion, {damage:?}");
            let sim = SimVfs::new();
            let wharf = committed_ten(&sim);
            sim.crash_at(Some(before + k));
            let _deleted = wharf.delete_topic("t");
            sim.freeze();
            drop(wharf);
            let after = sim.crash(damage);
            let inspect = builder(&after).read_only(true).open().expect("inspect");
            let gone = inspect.topics().iter().all(|t| t.name() != "t");
            drop(inspect);
            between += usize::from(gone && topics_in_offsets(&after).contains("t"));
            let wharf = builder(&after)
                .open()
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            check_recovered(&wharf, &after, &case);
        }
    }
    assert!(
        between > 0,
        "some crash point fell between the deletion and the removal of the offsets"
    );
}

#[test]
fn a_failed_removal_of_the_offsets_leaves_none_for_the_recreated_topic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (vfs, faults) = FaultyVfs::new();
    let wharf = Wharf::builder(dir.path()).vfs(vfs).open().expect("open");
    wharf.create_topic("t", config()).expect("topic");
    send(&wharf, "old", 12);
    let mut consumer = wharf
        .consumer("g")
        .assign([("t", 0)])
        .build()
        .expect("consumer");
    assert_eq!(
        consumer.poll_batch(10, Duration::ZERO).expect("poll").len(),
        10
    );
    consumer.commit().expect("durable commit");
    drop(consumer);
    // The topic goes; writing the group's offsets without it fails (and poisons the group's
    // store, whose next use reports it).
    faults.fail_next_offsets_write.store(true, Ordering::SeqCst);
    wharf.delete_topic("t").expect("the topic is deleted");
    wharf.create_topic("t", config()).expect("recreate");
    send(&wharf, "new", 5);
    let tp = TopicPartition::new("t", 0);
    let mut consumer = wharf
        .consumer("g")
        .assign([("t", 0)])
        .build()
        .expect("consumer");
    assert_eq!(
        consumer.committed(&tp),
        None,
        "the stale offset counts as none"
    );
    assert_eq!(
        consumer
            .poll_batch(100, Duration::ZERO)
            .expect("poll")
            .len(),
        5
    );
    assert!(
        consumer.commit().is_err(),
        "the poisoned store reports the failure"
    );
    drop(consumer);
    assert!(wharf.close().is_err(), "close reports it too");
    let wharf = Wharf::open(dir.path()).expect("reopen");
    let description = wharf.admin().describe_group("g").expect("describe");
    assert!(description.partitions.is_empty(), "{description:?}");
    let mut consumer = wharf
        .consumer("g")
        .assign([("t", 0)])
        .build()
        .expect("consumer");
    assert_eq!(consumer.committed(&tp), None);
    assert_eq!(
        consumer
            .poll_batch(100, Duration::ZERO)
            .expect("poll")
            .len(),
        5
    );
}
