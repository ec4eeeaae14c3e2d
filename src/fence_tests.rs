//! Group commits through the I/O seam ([`FaultyVfs`]'s gates hold one write or sync up):
//! a member's commit holds no lock of the group's membership while the offsets store writes,
//! compacts or syncs, so the other members' polls go on meanwhile; and a commit of a
//! partition that its member lost while the commit was under way never lands after the new
//! holder's commits (the commit fence, `group::membership`).

use std::sync::mpsc;
use std::time::Duration;

use crate::group::offsets::COMPACT_THRESHOLD_BYTES;
use crate::topic::TopicPartition;
use crate::vfs::faulty::{Faults, FaultyVfs, Gate};
use crate::{AckMode, Consumer, ErrorKind, Record, TopicConfig, Wharf};

/// Longest a test waits for something that must happen (a hang guard, not a measure).
const GUARD: Duration = Duration::from_secs(10);
const SHORT: Duration = Duration::from_millis(20);

/// A Wharf on a [`FaultyVfs`] without the flusher (which would sync logs and offsets behind
/// the tests' backs), with topic `t` of two partitions.
fn open(dir: &std::path::Path) -> (Wharf, std::sync::Arc<Faults>) {
    let (vfs, faults) = FaultyVfs::new();
    let wharf = Wharf::builder(dir)
        .vfs(vfs)
        .without_background_threads()
        .open()
        .expect("open");
    wharf
        .create_topic("t", TopicConfig::default().partitions(2))
        .expect("topic");
    (wharf, faults)
}

fn tp(partition: u32) -> TopicPartition {
    TopicPartition::new("t", partition)
}

fn send(wharf: &Wharf, partition: u32, n: u64, ack: AckMode) {
    let producer = wharf.producer().ack(ack).build();
    for i in 0..n {
        producer
            .send(Record::new("t", format!("{partition}-{i}")).partition(partition))
            .expect("send");
    }
}

/// Polls until `n` records came; returns their offsets per partition.
fn drain(consumer: &mut Consumer, n: usize) -> Vec<(u32, u64)> {
    let mut got = Vec::new();
    while got.len() < n {
        let batch = consumer.poll_batch(n - got.len(), GUARD).expect("poll");
        assert!(
            !batch.is_empty(),
            "hang guard: {} of {n} records came",
            got.len()
        );
        got.extend(batch.iter().map(|d| (d.partition(), d.offset())));
    }
    got
}

/// Opens a gate when dropped: a failing assertion must not leave a thread held in it (the
/// scope would wait for it forever).
struct OpenOnDrop<'a>(&'a Gate);

impl Drop for OpenOnDrop<'_> {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Members `a` (holding partition 0) and `b` (holding partition 1) of group `g`.
fn two_members(wharf: &Wharf) -> (Consumer, Consumer) {
    let mut a = wharf.consumer("g").subscribe(["t"]).build().expect("a");
    assert!(a.poll(SHORT).expect("poll").is_none());
    let mut b = wharf.consumer("g").subscribe(["t"]).build().expect("b");
    assert!(a.poll(SHORT).expect("a lets partition 1 go").is_none());
    assert!(b.poll(SHORT).expect("b takes it").is_none());
    assert_eq!(a.assignment(), vec![tp(0)]);
    assert_eq!(b.assignment(), vec![tp(1)]);
    (a, b)
}

/// Where `a`'s commit is held up.
#[derive(Debug, Clone, Copy)]
enum HeldUp {
    /// In the write of its record.
    Write,
    /// In the group sync of the offsets file.
    Sync,
    /// In the sync of the compacted file's temporary copy (the commit compacts first).
    CompactionSync,
}

/// While `a`'s durable commit is held up in the offsets file, `b` polls a record of its own
/// partition. The poll takes the group's membership lock; the commit must not hold it.
fn another_members_poll_goes_on_while_a_commit_is_held_up(held: HeldUp) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wharf, faults) = open(dir.path());
    let (mut a, mut b) = two_members(&wharf);
    if matches!(held, HeldUp::CompactionSync) {
        let offsets = dir.path().join("groups/g/offsets");
        while std::fs::metadata(&offsets).expect("offsets").len() < COMPACT_THRESHOLD_BYTES {
            a.commit_async().expect("commit");
        }
    }
    send(&wharf, 1, 1, AckMode::Write);
    let gate: &Gate = match held {
        HeldUp::Write => &faults.offsets_write_gate,
        HeldUp::Sync | HeldUp::CompactionSync => &faults.offsets_sync_gate,
    };
    gate.arm();
    std::thread::scope(|s| {
        let opener = OpenOnDrop(gate);
        let committer = s.spawn(|| a.commit());
        let caught = gate.wait_caught(GUARD);
        let (tx, rx) = mpsc::channel();
        let b = &mut b;
        let poller = s.spawn(move || {
            let polled = b
                .poll(GUARD)
                .map(|d| d.map(|d| (d.partition(), d.offset())));
            tx.send(polled).expect("send");
        });
        let polled = rx.recv_timeout(GUARD);
        drop(opener);
        let committed = committer.join().expect("committer");
        poller.join().expect("poller");
        assert!(caught, "{held:?}: the commit never reached the gate");
        assert!(
            matches!(polled, Ok(Ok(Some((1, 0))))),
            "{held:?}: hang guard: b's poll waited for a's commit: {polled:?}"
        );
        committed.expect("a's commit");
    });
    assert_eq!(a.committed(&tp(0)), Some(0));
}

#[test]
fn another_members_poll_goes_on_while_a_commit_is_held_up_in_its_write() {
    another_members_poll_goes_on_while_a_commit_is_held_up(HeldUp::Write);
}

#[test]
fn another_members_poll_goes_on_while_a_commit_is_held_up_in_the_group_sync() {
    another_members_poll_goes_on_while_a_commit_is_held_up(HeldUp::Sync);
}

#[test]
fn another_members_poll_goes_on_while_a_commit_is_held_up_in_a_compaction() {
    another_members_poll_goes_on_while_a_commit_is_held_up(HeldUp::CompactionSync);
}

/// `a` commits both partitions while it holds them, and is held up syncing partition 0's log
/// (after its fences were looked up, before its record is appended). Meanwhile `b` takes
/// partition 1 over past the rebalance timeout and commits it. `a`'s commit must then be
/// refused: landing now would overwrite `b`'s offset with an older holder's.
#[test]
fn a_commit_racing_with_the_hand_over_never_lands_after_the_new_holders_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wharf, faults) = open(dir.path());
    // Partition 0's records need a log sync before a durable commit of them, partition 1's
    // do not (so only `a` meets the gate).
    send(&wharf, 0, 6, AckMode::Write);
    send(&wharf, 1, 6, AckMode::Fsync);
    let mut a = wharf.consumer("g").subscribe(["t"]).build().expect("a");
    assert_eq!(drain(&mut a, 12).len(), 12);
    let mut b = wharf
        .consumer("g")
        .subscribe(["t"])
        .rebalance_timeout(Duration::ZERO)
        .build()
        .expect("b");
    faults.log_sync_gate.arm();
    std::thread::scope(|s| {
        let opener = OpenOnDrop(&faults.log_sync_gate);
        // `a` has not polled since `b` joined: it still holds both partitions.
        let committer = s.spawn(|| a.commit());
        let caught = faults.log_sync_gate.wait_caught(GUARD);
        assert!(caught, "a's commit never synced partition 0's log");
        let got = drain(&mut b, 6);
        assert!(got.iter().all(|(p, _)| *p == 1), "{got:?}");
        b.commit_offsets(&[(tp(1), 3)])
            .expect("b commits the partition it took over");
        drop(opener);
        let committed = committer.join().expect("committer");
        let err = committed.expect_err("a's commit lands after b's");
        assert!(
            matches!(err.kind(), ErrorKind::Revoked { topic, partition: 1 } if topic == "t"),
            "{err}"
        );
    });
    assert_eq!(b.committed(&tp(1)), Some(3), "b's commit stands");
    assert_eq!(
        a.committed(&tp(0)),
        None,
        "the refused commit wrote nothing"
    );
    // `a`'s next poll lets partition 1 go; it commits partition 0 alone.
    assert!(a.poll(SHORT).expect("poll").is_none());
    assert_eq!(a.assignment(), vec![tp(0)]);
    a.commit().expect("commit");
    assert_eq!(a.committed(&tp(0)), Some(6));
    assert_eq!(a.committed(&tp(1)), Some(3));
    drop((a, b));
    drop(wharf);
    let wharf = Wharf::open(dir.path()).expect("reopen");
    let committed = wharf
        .consumer("g")
        .assign([("t", 1)])
        .build()
        .expect("consumer")
        .committed(&tp(1));
    assert_eq!(committed, Some(3), "b's commit is the durable one");
}
