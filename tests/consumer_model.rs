//! Model test of consumer groups (issue 3; DESIGN.md section 2; RELIABILITY.md I1, I2, I5).
//!
//! Random sequences of operations run against a real directory and, step by step, against an
//! in-memory model of the log (what each partition holds) and of the group (committed offset
//! per partition, which member holds which partition, and each member's place in each
//! partition: position, lowest unsettled offset, acknowledged offsets above it, epoch).
//! Operations: keyed and unkeyed sends; `poll` and `poll_batch`; `Delivery::ack` of a random
//! outstanding delivery; dropping one undecided; `commit`, `commit_async`, `commit_acked`,
//! `commit_message`, `commit_offsets` (valid and invalid); `seek` (beginning, end, back,
//! forward, past the end); a second member joining and leaving (close or drop); reopening
//! (clean close, or `simulate_crash`; consumers closed first or left to the closed Wharf);
//! waiting out a short `ack_wait`.
//!
//! Checked after every step:
//! - every delivery is byte-identical to what was sent at its partition and offset; a first
//!   delivery is exactly the member's next offset of that partition (so after a reopen or a
//!   rebalance the group resumes exactly from its committed offset); a redelivery is of a
//!   record still pending for that member, and only happens with a short `ack_wait`;
//! - a poll that returns nothing leaves nothing deliverable in the partitions its member holds;
//! - acks succeed exactly when the delivery's partition was not revoked or repositioned since,
//!   commits and seeks fail exactly on bad input;
//! - committed offsets (`Admin::describe_group` and `Consumer::committed`) equal the model's,
//!   never pass the log end, survive every reopen, and move backwards only through an explicit
//!   `seek` followed by a commit, or `commit_offsets`;
//! - `Consumer::assignment` and the partition holders in `describe_group` equal the model's;
//!   no two members ever hold one partition, and a member delivers only partitions it holds;
//!   the group's target assignment is a balanced partition of the topic;
//! - after a reopen every partition is byte-identical to what was sent.
//!
//! At the end of each case every undecided delivery is dropped, the group is drained
//! (after a reopen when `ack_wait` is long, by waiting out `ack_wait` otherwise), and every
//! record sent must have been delivered at least once, unless a seek skipped it.
//!
//! `WHARF_MODEL_SEED=<n>` replays a run, `WHARF_MODEL_CASES=<n>` runs more cases.

#![allow(clippy::cast_possible_truncation)]

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use wharf::{
    AckMode, Assignor, Consumer, Delivery, ErrorKind, Producer, Record, SeekTo, TopicConfig,
    TopicPartition, Wharf,
};

const TOPIC: &str = "orders";
const GROUP: &str = "model";
const SEED_ENV: &str = "WHARF_MODEL_SEED";
const CASES_ENV: &str = "WHARF_MODEL_CASES";
const DEFAULT_CASES: u32 = 256;
/// Never reached in a case: no redelivery, no fencing by timeout.
const LONG: Duration = Duration::from_secs(3_600);
/// The short `ack_wait` some cases use.
const SHORT_ACK_WAIT: Duration = Duration::from_millis(30);
/// Rounds of polls the final drain may take.
const DRAIN_ROUNDS: usize = 60;
/// Hang guard for the whole test (including shrinking).
const TEST_LIMIT: Duration = Duration::from_secs(900);

type Check = Result<(), TestCaseError>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

/// An unexpected error from the library fails the case.
fn lib<T>(result: wharf::Result<T>, what: &str) -> Result<T, TestCaseError> {
    result.map_err(|e| TestCaseError::fail(format!("{what}: unexpected error: {e}")))
}

/// A result that must be an error of the kind `is` accepts.
fn expect_err<T>(result: wharf::Result<T>, is: fn(&ErrorKind) -> bool, what: &str) -> Check {
    match result {
        Ok(_) => Err(TestCaseError::fail(format!(
            "{what}: succeeded, expected an error"
        ))),
        Err(e) if is(e.kind()) => Ok(()),
        Err(e) => Err(TestCaseError::fail(format!("{what}: wrong error {e}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum SeekOp {
    Beginning,
    End,
    Back(u8),
    Forward(u8),
    PastEnd(u8),
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// `count` records, keyed (from a small key space) or not, with `len` bytes of filler.
    Send {
        key: Option<u8>,
        len: u8,
        count: u8,
    },
    /// `poll` when `max` is 1, else `poll_batch(max)`; timeout zero.
    Poll {
        member: usize,
        max: u8,
    },
    /// Acks the outstanding delivery `pick % len`.
    Ack {
        pick: usize,
    },
    /// Drops the outstanding delivery `pick % len` undecided.
    Drop {
        pick: usize,
    },
    Commit {
        member: usize,
    },
    CommitAsync {
        member: usize,
    },
    CommitAcked {
        member: usize,
    },
    /// `commit_message` of the outstanding delivery `pick % len`, by the member it came from.
    CommitMessage {
        pick: usize,
    },
    /// `commit_offsets` of `position - back`, or `position + 1 + back` when `past` (refused).
    CommitOffsets {
        member: usize,
        partition: u32,
        back: u8,
        past: bool,
    },
    Seek {
        member: usize,
        partition: u32,
        to: SeekOp,
    },
    Join {
        member: usize,
    },
    Leave {
        member: usize,
        close: bool,
    },
    Reopen {
        crash: bool,
        consumers_first: bool,
    },
    /// Sleeps past the short `ack_wait` (nothing with a long one).
    Wait,
}

#[derive(Debug, Clone)]
struct Case {
    partitions: u32,
    assignor: Assignor,
    /// `ack_wait` is [`SHORT_ACK_WAIT`] (else [`LONG`]).
    short_ack_wait: bool,
    /// Commits wait for `Write` (else `Fsync`, the default).
    commit_write: bool,
    ops: Vec<Op>,
}

fn member() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0usize), 2 => Just(1usize)]
}

fn seek_op() -> impl Strategy<Value = SeekOp> {
    prop_oneof![
        Just(SeekOp::Beginning),
        Just(SeekOp::End),
        (0u8..8).prop_map(SeekOp::Back),
        (0u8..8).prop_map(SeekOp::Forward),
        (0u8..3).prop_map(SeekOp::PastEnd),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (prop::option::of(0u8..6), 0u8..64, 1u8..5)
            .prop_map(|(key, len, count)| Op::Send { key, len, count }),
        10 => (member(), 1u8..7).prop_map(|(member, max)| Op::Poll { member, max }),
        10 => (0usize..64).prop_map(|pick| Op::Ack { pick }),
        2 => (0usize..64).prop_map(|pick| Op::Drop { pick }),
        2 => member().prop_map(|member| Op::Commit { member }),
        1 => member().prop_map(|member| Op::CommitAsync { member }),
        2 => member().prop_map(|member| Op::CommitAcked { member }),
        2 => (0usize..64).prop_map(|pick| Op::CommitMessage { pick }),
        1 => (member(), 0u32..3, 0u8..6, prop::bool::weighted(0.25)).prop_map(
            |(member, partition, back, past)| Op::CommitOffsets { member, partition, back, past }
        ),
        2 => (member(), 0u32..3, seek_op())
            .prop_map(|(member, partition, to)| Op::Seek { member, partition, to }),
        2 => member().prop_map(|member| Op::Join { member }),
        2 => (member(), any::<bool>()).prop_map(|(member, close)| Op::Leave { member, close }),
        1 => (any::<bool>(), any::<bool>())
            .prop_map(|(crash, consumers_first)| Op::Reopen { crash, consumers_first }),
        1 => Just(Op::Wait),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        2u32..=3,
        prop_oneof![
            Just(Assignor::Range),
            Just(Assignor::RoundRobin),
            Just(Assignor::Sticky)
        ],
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.25),
        prop::collection::vec(op(), 1..64),
    )
        .prop_map(
            |(partitions, assignor, short_ack_wait, commit_write, ops)| Case {
                partitions,
                assignor,
                short_ack_wait,
                commit_write,
                ops,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Sent {
    seq: u64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// One member's place in one partition (a `Cursor` of the library).
#[derive(Debug)]
struct CursorModel {
    partition: u32,
    epoch: u64,
    revoked: bool,
    /// Next offset delivered for the first time.
    position: u64,
    /// Lowest offset delivered and not settled (`position` when none).
    low: u64,
    /// Settled offsets above `low`.
    settled: BTreeSet<u64>,
    /// Repositioned by a seek: a commit from it may move the committed offset backwards.
    seeked: bool,
}

impl CursorModel {
    fn new(partition: u32, position: u64) -> Self {
        CursorModel {
            partition,
            epoch: 0,
            revoked: false,
            position,
            low: position,
            settled: BTreeSet::new(),
            seeked: false,
        }
    }

    fn advance_low(&mut self) {
        while self.settled.remove(&self.low) {
            self.low += 1;
        }
    }

    fn ack(&mut self, offset: u64) {
        if offset >= self.low && offset < self.position {
            self.settled.insert(offset);
            self.advance_low();
        }
    }

    fn settle_all(&mut self) -> u64 {
        self.low = self.position;
        self.settled.clear();
        self.low
    }

    fn settle_below(&mut self, end: u64) -> u64 {
        if end > self.low {
            self.low = end.min(self.position);
            let low = self.low;
            self.settled.retain(|&o| o >= low);
            self.advance_low();
        }
        self.low
    }

    fn is_pending(&self, offset: u64) -> bool {
        offset >= self.low && offset < self.position && !self.settled.contains(&offset)
    }

    fn reposition(&mut self, position: u64) {
        self.epoch += 1;
        self.position = position;
        self.low = position;
        self.settled.clear();
        self.seeked = true;
    }
}

#[derive(Debug)]
struct MemberModel {
    id: String,
    /// Partition -> index into `Model::cursors`.
    held: BTreeMap<u32, usize>,
    target: BTreeSet<u32>,
}

#[derive(Debug)]
struct Model {
    partitions: u32,
    log: Vec<Vec<Sent>>,
    key_partition: HashMap<u8, u32>,
    committed: Vec<Option<u64>>,
    /// Offsets delivered at least once, per partition.
    delivered: Vec<BTreeSet<u64>>,
    /// Offsets a seek jumped over, per partition.
    skipped: Vec<BTreeSet<u64>>,
    cursors: Vec<CursorModel>,
    members: [Option<MemberModel>; 2],
    holders: BTreeMap<u32, usize>,
    /// Members that joined since the Wharf was opened (member ids count them).
    joins: u64,
    group_exists: bool,
    /// Partitions whose committed offset the current step may move backwards.
    rewind_ok: BTreeSet<u32>,
}

impl Model {
    fn new(partitions: u32) -> Self {
        let n = partitions as usize;
        Model {
            partitions,
            log: vec![Vec::new(); n],
            key_partition: HashMap::new(),
            committed: vec![None; n],
            delivered: vec![BTreeSet::new(); n],
            skipped: vec![BTreeSet::new(); n],
            cursors: Vec::new(),
            members: [None, None],
            holders: BTreeMap::new(),
            joins: 0,
            group_exists: false,
            rewind_ok: BTreeSet::new(),
        }
    }

    fn end(&self, partition: u32) -> u64 {
        self.log[partition as usize].len() as u64
    }

    /// Records a commit of `offset` made by (or for) cursor `cursor`, or explicitly.
    fn commit(&mut self, partition: u32, offset: u64, rewind: bool) {
        self.committed[partition as usize] = Some(offset);
        if rewind {
            self.rewind_ok.insert(partition);
        }
    }

    /// The cursor of `member` in `partition`, if it holds it.
    fn cursor_of(&self, member: usize, partition: u32) -> Option<usize> {
        self.members[member]
            .as_ref()
            .and_then(|m| m.held.get(&partition).copied())
    }

    /// `member` lets go of `partition`: its acknowledged progress is committed if `commit`.
    fn release(&mut self, member: usize, partition: u32, commit: bool) {
        let Some(m) = self.members[member].as_mut() else {
            return;
        };
        let Some(c) = m.held.remove(&partition) else {
            return;
        };
        if commit {
            let low = self.cursors[c].low;
            let seeked = self.cursors[c].seeked;
            self.commit(partition, low, seeked);
        }
        self.cursors[c].revoked = true;
        self.cursors[c].epoch += 1;
        if self.holders.get(&partition) == Some(&member) {
            self.holders.remove(&partition);
        }
    }

    /// What `member`'s poll does first: release what it lost, acquire what is free. Returns
    /// how many partitions it waits for and how many it took at a committed offset.
    fn apply_rebalance(&mut self, member: usize) -> (u64, u64) {
        let Some(m) = self.members[member].as_ref() else {
            return (0, 0);
        };
        let lost: Vec<u32> = m
            .held
            .keys()
            .filter(|p| !m.target.contains(p))
            .copied()
            .collect();
        let wanted: Vec<u32> = m
            .target
            .iter()
            .filter(|p| !m.held.contains_key(p))
            .copied()
            .collect();
        for p in lost {
            self.release(member, p, true);
        }
        let (mut waits, mut handovers) = (0, 0);
        for p in wanted {
            if self.holders.get(&p).is_some_and(|&h| h != member) {
                waits += 1;
                continue;
            }
            handovers += u64::from(self.committed[p as usize].is_some());
            let start = self.committed[p as usize].unwrap_or(0);
            self.cursors.push(CursorModel::new(p, start));
            let c = self.cursors.len() - 1;
            self.holders.insert(p, member);
            if let Some(m) = self.members[member].as_mut() {
                m.held.insert(p, c);
            }
        }
        (waits, handovers)
    }

    /// Whether `member` has something left to do in the drain.
    fn has_work(&self, member: usize) -> bool {
        let Some(m) = self.members[member].as_ref() else {
            return false;
        };
        m.held.keys().copied().collect::<BTreeSet<u32>>() != m.target
            || m.held
                .iter()
                .any(|(&p, &c)| self.cursors[c].low < self.end(p))
    }

    /// Every partition is held by a member that settled all of it.
    fn drained(&self) -> bool {
        (0..self.partitions).all(|p| {
            self.holders.get(&p).is_some_and(|&member| {
                self.cursor_of(member, p)
                    .is_some_and(|c| self.cursors[c].low == self.end(p))
            })
        }) && (0..2).all(|member| !self.has_work(member))
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: the real thing next to the model
// ---------------------------------------------------------------------------------------------

struct Out {
    delivery: Delivery,
    member: usize,
    cursor: usize,
    epoch: u64,
}

#[derive(Debug, Default)]
struct Stats {
    cases: u64,
    ops: u64,
    deliveries: u64,
    redeliveries: u64,
    acks: u64,
    refused_acks: u64,
    commits: u64,
    rewinds: u64,
    reopens: u64,
    crashes: u64,
    joins: u64,
    /// Polls after which a member waited for a partition another member still held.
    waits: u64,
    /// Partitions taken over from another member (or after a reopen) at a committed offset.
    handovers: u64,
    drained_records: u64,
}

struct Harness<'a> {
    dir: tempfile::TempDir,
    case: &'a Case,
    ack_wait: Duration,
    wharf: Option<Wharf>,
    producer: Option<Producer>,
    consumers: [Option<Consumer>; 2],
    out: Vec<Out>,
    model: Model,
    seq: u64,
    /// Committed offsets the library reported at the last check.
    last_committed: Vec<Option<u64>>,
    stats: &'a RefCell<Stats>,
}

impl<'a> Harness<'a> {
    fn new(case: &'a Case, stats: &'a RefCell<Stats>) -> Result<Self, TestCaseError> {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(format!("tempdir: {e}")))?;
        let wharf = lib(Wharf::open(dir.path()), "open")?;
        let config = TopicConfig::default()
            .partitions(case.partitions)
            .segment_bytes(4_096)
            .index_interval_bytes(256)
            .max_message_bytes(1_024);
        lib(wharf.create_topic(TOPIC, config), "create_topic")?;
        let producer = wharf.producer().ack(AckMode::Write).build();
        Ok(Harness {
            dir,
            case,
            ack_wait: if case.short_ack_wait {
                SHORT_ACK_WAIT
            } else {
                LONG
            },
            wharf: Some(wharf),
            producer: Some(producer),
            consumers: [None, None],
            out: Vec::new(),
            model: Model::new(case.partitions),
            seq: 0,
            last_committed: vec![None; case.partitions as usize],
            stats,
        })
    }

    fn wharf(&self) -> &Wharf {
        self.wharf
            .as_ref()
            .expect("the Wharf is open between steps")
    }

    fn tp(partition: u32) -> TopicPartition {
        TopicPartition::new(TOPIC, partition)
    }

    fn run(&mut self) -> Check {
        for (i, op) in self.case.ops.iter().enumerate() {
            self.model.rewind_ok.clear();
            self.step(*op)
                .map_err(|e| TestCaseError::fail(format!("step {i} {op:?}: {e}")))?;
            self.check()
                .map_err(|e| TestCaseError::fail(format!("after step {i} {op:?}: {e}")))?;
            self.stats.borrow_mut().ops += 1;
        }
        self.model.rewind_ok.clear();
        self.finish()
            .map_err(|e| TestCaseError::fail(format!("final drain: {e}")))
    }

    fn step(&mut self, op: Op) -> Check {
        match op {
            Op::Send { key, len, count } => {
                for _ in 0..count {
                    self.send(key, len)?;
                }
                Ok(())
            }
            Op::Poll { member, max } => self.poll(member, max),
            Op::Ack { pick } => self.ack(pick),
            Op::Drop { pick } => {
                if !self.out.is_empty() {
                    let len = self.out.len();
                    drop(self.out.swap_remove(pick % len));
                }
                Ok(())
            }
            Op::Commit { member } => self.commit(member, false),
            Op::CommitAsync { member } => self.commit(member, true),
            Op::CommitAcked { member } => self.commit_acked(member),
            Op::CommitMessage { pick } => self.commit_message(pick),
            Op::CommitOffsets {
                member,
                partition,
                back,
                past,
            } => self.commit_offsets(member, partition % self.model.partitions, back, past),
            Op::Seek {
                member,
                partition,
                to,
            } => self.seek(member, partition % self.model.partitions, to),
            Op::Join { member } => self.join(member),
            Op::Leave { member, close } => self.leave(member, close),
            Op::Reopen {
                crash,
                consumers_first,
            } => self.reopen(crash, consumers_first),
            Op::Wait => {
                if self.case.short_ack_wait {
                    thread::sleep(SHORT_ACK_WAIT + Duration::from_millis(10));
                }
                Ok(())
            }
        }
    }

    fn send(&mut self, key: Option<u8>, len: u8) -> Check {
        let seq = self.seq;
        self.seq += 1;
        let mut payload = seq.to_le_bytes().to_vec();
        payload.extend(common::payload(seq, usize::from(len)));
        let key_bytes = key.map(|k| format!("key-{k}").into_bytes());
        let mut record =
            Record::new(TOPIC, payload.clone()).header("seq", seq.to_le_bytes().to_vec());
        if let Some(k) = &key_bytes {
            record = record.key(k.clone());
        }
        let producer = self.producer.as_ref().expect("producer");
        let receipt = lib(producer.send(record), "send")?;
        let p = receipt.partition();
        ensure!(p < self.model.partitions, "receipt names partition {p}");
        ensure!(
            receipt.offset() == self.model.end(p),
            "receipt offset {p}/{} but the log end was {}",
            receipt.offset(),
            self.model.end(p)
        );
        if let Some(k) = key {
            let first = *self.model.key_partition.entry(k).or_insert(p);
            ensure!(
                first == p,
                "key {k} went to partition {p}, earlier to {first}"
            );
        }
        self.model.log[p as usize].push(Sent {
            seq,
            key: key_bytes,
            payload,
        });
        Ok(())
    }

    fn poll(&mut self, member: usize, max: u8) -> Check {
        let Some(consumer) = self.consumers[member].as_mut() else {
            return Ok(());
        };
        let deliveries = if max <= 1 {
            lib(consumer.poll(Duration::ZERO), "poll")?
                .into_iter()
                .collect()
        } else {
            lib(
                consumer.poll_batch(usize::from(max), Duration::ZERO),
                "poll_batch",
            )?
        };
        self.rebalance(member);
        let got = deliveries.len();
        ensure!(
            got <= usize::from(max.max(1)),
            "{got} deliveries for a poll of at most {max}"
        );
        for delivery in deliveries {
            let (cursor, epoch) = self.accept(member, &delivery)?;
            self.out.push(Out {
                delivery,
                member,
                cursor,
                epoch,
            });
        }
        if got == 0 {
            let m = self.model.members[member].as_ref().expect("member");
            for (&p, &c) in &m.held {
                ensure!(
                    self.model.cursors[c].position == self.model.end(p),
                    "member {member} polled nothing although it holds partition {p} with \
                     records {}..{} not yet delivered",
                    self.model.cursors[c].position,
                    self.model.end(p)
                );
            }
        }
        Ok(())
    }

    fn rebalance(&mut self, member: usize) {
        let (waits, handovers) = self.model.apply_rebalance(member);
        let mut stats = self.stats.borrow_mut();
        stats.waits += u64::from(waits > 0);
        stats.handovers += handovers;
    }

    /// Checks one delivery against the model and records it; returns its cursor and epoch.
    fn accept(&mut self, member: usize, d: &Delivery) -> Result<(usize, u64), TestCaseError> {
        let (p, o) = (d.partition(), d.offset());
        ensure!(d.topic() == TOPIC, "delivery of topic {:?}", d.topic());
        ensure!(p < self.model.partitions, "delivery of partition {p}");
        let Some(c) = self.model.cursor_of(member, p) else {
            return Err(TestCaseError::fail(format!(
                "member {member} delivered {p}/{o} but does not hold partition {p} (holder: \
                 member {:?})",
                self.model.holders.get(&p)
            )));
        };
        ensure!(
            self.model.holders.get(&p) == Some(&member),
            "member {member} delivered {p}/{o} while the model says member {:?} holds it",
            self.model.holders.get(&p)
        );
        let end = self.model.end(p);
        let short = self.case.short_ack_wait;
        let cursor = &mut self.model.cursors[c];
        ensure!(
            cursor.partition == p,
            "model: cursor {c} is not of partition {p}"
        );
        if d.attempt() == 1 {
            ensure!(
                o == cursor.position,
                "member {member} delivered {p}/{o} for the first time, expected offset {} \
                 (committed {:?}, log end {end})",
                cursor.position,
                self.model.committed[p as usize]
            );
            ensure!(o < end, "delivered {p}/{o} at or past the log end {end}");
            cursor.position += 1;
        } else {
            ensure!(
                short,
                "delivery {p}/{o} with attempt {} although ack_wait is {LONG:?}",
                d.attempt()
            );
            ensure!(
                cursor.is_pending(o),
                "redelivered {p}/{o} (attempt {}) which is not pending: low {}, position {}, \
                 settled above low {:?}",
                d.attempt(),
                cursor.low,
                cursor.position,
                cursor.settled
            );
            self.stats.borrow_mut().redeliveries += 1;
        }
        let epoch = cursor.epoch;
        let sent = &self.model.log[p as usize][o as usize];
        ensure!(
            d.payload() == &sent.payload[..],
            "payload of {p}/{o} differs from what was sent (seq {})",
            sent.seq
        );
        ensure!(
            d.key() == sent.key.as_deref(),
            "key of {p}/{o} differs: {:?} vs {:?}",
            d.key(),
            sent.key
        );
        ensure!(
            d.header("seq") == Some(&sent.seq.to_le_bytes()[..]) && d.headers().count() == 1,
            "headers of {p}/{o} differ"
        );
        self.model.delivered[p as usize].insert(o);
        self.stats.borrow_mut().deliveries += 1;
        Ok((c, epoch))
    }

    fn ack(&mut self, pick: usize) -> Check {
        if self.out.is_empty() {
            return Ok(());
        }
        let len = self.out.len();
        let out = self.out.swap_remove(pick % len);
        let (p, o) = (out.delivery.partition(), out.delivery.offset());
        let cursor = &mut self.model.cursors[out.cursor];
        let valid = !cursor.revoked && cursor.epoch == out.epoch;
        let result = out.delivery.ack();
        if valid {
            lib(result, &format!("ack of {p}/{o}"))?;
            cursor.ack(o);
            self.stats.borrow_mut().acks += 1;
        } else {
            expect_err(
                result,
                |k| matches!(k, ErrorKind::Revoked { .. }),
                &format!("ack of {p}/{o} from a revoked or repositioned partition"),
            )?;
            self.stats.borrow_mut().refused_acks += 1;
        }
        Ok(())
    }

    /// `commit()` (or `commit_async()`): everything delivered is settled and committed.
    fn commit(&mut self, member: usize, asynchronous: bool) -> Check {
        let Some(consumer) = self.consumers[member].as_mut() else {
            return Ok(());
        };
        if asynchronous {
            lib(consumer.commit_async(), "commit_async")?;
        } else {
            lib(consumer.commit(), "commit")?;
        }
        let held: Vec<(u32, usize)> = self.held(member);
        for (p, c) in held {
            let offset = self.model.cursors[c].settle_all();
            let seeked = self.model.cursors[c].seeked;
            self.model.commit(p, offset, seeked);
        }
        self.stats.borrow_mut().commits += 1;
        Ok(())
    }

    fn commit_acked(&mut self, member: usize) -> Check {
        let Some(consumer) = self.consumers[member].as_mut() else {
            return Ok(());
        };
        lib(consumer.commit_acked(), "commit_acked")?;
        for (p, c) in self.held(member) {
            let low = self.model.cursors[c].low;
            let seeked = self.model.cursors[c].seeked;
            self.model.commit(p, low, seeked);
        }
        self.stats.borrow_mut().commits += 1;
        Ok(())
    }

    fn commit_message(&mut self, pick: usize) -> Check {
        if self.out.is_empty() {
            return Ok(());
        }
        let i = pick % self.out.len();
        let member = self.out[i].member;
        let Some(consumer) = self.consumers[member].as_mut() else {
            return Ok(());
        };
        let message = self.out[i].delivery.message();
        let (p, o) = (message.partition(), message.offset());
        let result = consumer.commit_message(message);
        match self.model.cursor_of(member, p) {
            Some(c) => {
                lib(result, &format!("commit_message {p}/{o}"))?;
                let offset = self.model.cursors[c].settle_below(o + 1);
                let seeked = self.model.cursors[c].seeked;
                self.model.commit(p, offset, seeked);
                self.stats.borrow_mut().commits += 1;
            }
            None => expect_err(
                result,
                |k| matches!(k, ErrorKind::NotAssigned { .. }),
                &format!("commit_message {p}/{o} of a partition member {member} does not hold"),
            )?,
        }
        Ok(())
    }

    fn commit_offsets(&mut self, member: usize, p: u32, back: u8, past: bool) -> Check {
        let Some(consumer) = self.consumers[member].as_mut() else {
            return Ok(());
        };
        let Some(c) = self.model.cursor_of(member, p) else {
            let result = consumer.commit_offsets(&[(Self::tp(p), 0)]);
            return expect_err(
                result,
                |k| matches!(k, ErrorKind::NotAssigned { .. }),
                &format!("commit_offsets of partition {p}, not held by member {member}"),
            );
        };
        let position = self.model.cursors[c].position;
        let offset = if past {
            position + 1 + u64::from(back)
        } else {
            position.saturating_sub(u64::from(back))
        };
        let result = consumer.commit_offsets(&[(Self::tp(p), offset)]);
        if past {
            return expect_err(
                result,
                |k| matches!(k, ErrorKind::InvalidCommit { .. }),
                &format!("commit_offsets {p}/{offset} past the position {position}"),
            );
        }
        lib(result, &format!("commit_offsets {p}/{offset}"))?;
        self.model.cursors[c].settle_below(offset);
        self.model.commit(p, offset, true);
        self.stats.borrow_mut().commits += 1;
        Ok(())
    }

    fn seek(&mut self, member: usize, p: u32, to: SeekOp) -> Check {
        let Some(consumer) = self.consumers[member].as_mut() else {
            return Ok(());
        };
        let end = self.model.end(p);
        let Some(c) = self.model.cursor_of(member, p) else {
            let result = consumer.seek(&Self::tp(p), SeekTo::Beginning);
            return expect_err(
                result,
                |k| matches!(k, ErrorKind::NotAssigned { .. }),
                &format!("seek in partition {p}, not held by member {member}"),
            );
        };
        let position = self.model.cursors[c].position;
        let (seek_to, target) = match to {
            SeekOp::Beginning => (SeekTo::Beginning, 0),
            SeekOp::End => (SeekTo::End, end),
            SeekOp::Back(n) => {
                let t = position.saturating_sub(u64::from(n));
                (SeekTo::Offset(t), t)
            }
            SeekOp::Forward(n) => {
                let t = (position + u64::from(n)).min(end);
                (SeekTo::Offset(t), t)
            }
            SeekOp::PastEnd(n) => {
                let t = end + 1 + u64::from(n);
                let result = consumer.seek(&Self::tp(p), SeekTo::Offset(t));
                return expect_err(
                    result,
                    |k| matches!(k, ErrorKind::OffsetOutOfRange { .. }),
                    &format!("seek to {p}/{t} past the log end {end}"),
                );
            }
        };
        lib(
            consumer.seek(&Self::tp(p), seek_to),
            &format!("seek {p} {seek_to:?}"),
        )?;
        self.model.skipped[p as usize].extend(position..target);
        self.model.cursors[c].reposition(target);
        Ok(())
    }

    fn held(&self, member: usize) -> Vec<(u32, usize)> {
        self.model.members[member]
            .as_ref()
            .map(|m| m.held.iter().map(|(&p, &c)| (p, c)).collect())
            .unwrap_or_default()
    }

    fn join(&mut self, member: usize) -> Check {
        if self.consumers[member].is_some() {
            return Ok(());
        }
        let consumer = lib(
            self.wharf()
                .consumer(GROUP)
                .subscribe([TOPIC])
                .assignor(self.case.assignor)
                .ack_wait(self.ack_wait)
                .commit_ack(if self.case.commit_write {
                    AckMode::Write
                } else {
                    AckMode::Fsync
                })
                .rebalance_timeout(LONG)
                .build(),
            "build a consumer",
        )?;
        self.consumers[member] = Some(consumer);
        self.model.joins += 1;
        self.model.group_exists = true;
        self.model.members[member] = Some(MemberModel {
            id: format!("member-{:06}", self.model.joins),
            held: BTreeMap::new(),
            target: BTreeSet::new(),
        });
        self.stats.borrow_mut().joins += 1;
        self.refresh_targets()
    }

    /// The member closes (or is dropped): it commits its acknowledged progress and leaves.
    fn leave(&mut self, member: usize, close: bool) -> Check {
        let Some(consumer) = self.consumers[member].take() else {
            return Ok(());
        };
        if close {
            lib(consumer.close(), "close the consumer")?;
        } else {
            drop(consumer);
        }
        for (p, _) in self.held(member) {
            self.model.release(member, p, true);
        }
        self.model.members[member] = None;
        self.refresh_targets()
    }

    /// Reads the group's target assignment from `describe_group` and checks it is a balanced
    /// partition of the topic over the members.
    fn refresh_targets(&mut self) -> Check {
        let description = lib(self.wharf().admin().describe_group(GROUP), "describe_group")?;
        let ids: BTreeMap<String, usize> = (0..2)
            .filter_map(|i| self.model.members[i].as_ref().map(|m| (m.id.clone(), i)))
            .collect();
        let described: BTreeSet<&str> = description.members.iter().map(|m| m.id.as_str()).collect();
        ensure!(
            described == ids.keys().map(String::as_str).collect(),
            "members {described:?}, expected {:?}",
            ids.keys()
        );
        let mut seen = BTreeSet::new();
        let mut sizes = Vec::new();
        for m in &description.members {
            let mut target = BTreeSet::new();
            for tp in &m.assignment {
                ensure!(
                    tp.topic == TOPIC && tp.partition < self.model.partitions,
                    "{} is assigned {tp:?}",
                    m.id
                );
                ensure!(seen.insert(tp.partition), "{tp:?} is assigned twice");
                target.insert(tp.partition);
            }
            sizes.push(target.len());
            let slot = ids[&m.id];
            self.model.members[slot].as_mut().expect("member").target = target;
        }
        if !ids.is_empty() {
            ensure!(
                seen.len() == self.model.partitions as usize,
                "only partitions {seen:?} are assigned"
            );
            let (lo, hi) = (sizes.iter().min(), sizes.iter().max());
            ensure!(
                hi.zip(lo).is_some_and(|(hi, lo)| hi - lo <= 1),
                "unbalanced assignment {:?}",
                description.members
            );
        }
        Ok(())
    }

    fn reopen(&mut self, crash: bool, consumers_first: bool) -> Check {
        let present: Vec<usize> = (0..2).filter(|&m| self.consumers[m].is_some()).collect();
        if consumers_first {
            for &m in &present {
                self.leave(m, true)?;
            }
        }
        self.out.clear();
        self.producer = None;
        let wharf = self.wharf.take().expect("open");
        if crash {
            wharf.simulate_crash();
            self.stats.borrow_mut().crashes += 1;
        } else {
            lib(wharf.close(), "close")?;
        }
        // Consumers still alive see a closed Wharf: they leave without committing anything.
        for m in 0..2 {
            if self.consumers[m].take().is_some() {
                for (p, _) in self.held(m) {
                    self.model.release(m, p, false);
                }
                self.model.members[m] = None;
            }
        }
        self.model.holders.clear();
        self.model.joins = 0;
        let wharf = lib(Wharf::open(self.dir.path()), "reopen")?;
        for p in 0..self.model.partitions {
            let messages = common::read_partition(&wharf, TOPIC, p);
            let sent = &self.model.log[p as usize];
            ensure!(
                messages.len() == sent.len(),
                "after reopen partition {p} holds {} records, {} were sent",
                messages.len(),
                sent.len()
            );
            for (m, s) in messages.iter().zip(sent) {
                ensure!(
                    m.payload() == &s.payload[..] && m.key() == s.key.as_deref(),
                    "after reopen record {p}/{} differs from what was sent",
                    m.offset()
                );
            }
        }
        self.producer = Some(wharf.producer().ack(AckMode::Write).build());
        self.wharf = Some(wharf);
        self.stats.borrow_mut().reopens += 1;
        // Committed offsets are compared with the model before anyone joins.
        self.check()?;
        for m in present {
            self.join(m)?;
        }
        Ok(())
    }

    /// The invariants that hold between any two steps.
    fn check(&mut self) -> Check {
        let description = match self.wharf().admin().describe_group(GROUP) {
            Ok(d) => Some(d),
            Err(e) if matches!(e.kind(), ErrorKind::GroupNotFound { .. }) => {
                ensure!(
                    !self.model.group_exists,
                    "describe_group: GroupNotFound for an existing group"
                );
                None
            }
            Err(e) => return Err(TestCaseError::fail(format!("describe_group: {e}"))),
        };
        let mut now = vec![None; self.model.partitions as usize];
        if let Some(d) = &description {
            ensure!(d.damage.is_none(), "damage reported: {:?}", d.damage);
            for pd in &d.partitions {
                let p = pd.lag.partition.partition;
                ensure!(
                    pd.lag.partition.topic == TOPIC && p < self.model.partitions,
                    "describe_group lists {:?}",
                    pd.lag.partition
                );
                now[p as usize] = pd.lag.committed;
                ensure!(
                    pd.lag.end_offset == self.model.end(p),
                    "describe_group: log end of {p} is {}, expected {}",
                    pd.lag.end_offset,
                    self.model.end(p)
                );
                let holder = self.model.holders.get(&p).map(|&m| {
                    self.model.members[m]
                        .as_ref()
                        .map_or_else(String::new, |mm| mm.id.clone())
                });
                ensure!(
                    pd.member == holder,
                    "describe_group: partition {p} is held by {:?}, expected {holder:?}",
                    pd.member
                );
            }
        }
        for p in 0..self.model.partitions {
            let i = p as usize;
            ensure!(
                now[i] == self.model.committed[i],
                "committed offset of partition {p} is {:?}, expected {:?}",
                now[i],
                self.model.committed[i]
            );
            if let Some(c) = now[i] {
                ensure!(
                    c <= self.model.end(p),
                    "committed offset {c} of partition {p} is past the log end {}",
                    self.model.end(p)
                );
            }
            if let (Some(before), Some(after)) = (self.last_committed[i], now[i]) {
                if after < before {
                    ensure!(
                        self.model.rewind_ok.contains(&p),
                        "committed offset of partition {p} moved back from {before} to {after} \
                         without a seek or commit_offsets"
                    );
                    self.stats.borrow_mut().rewinds += 1;
                }
            }
        }
        self.last_committed = now;
        self.check_consumers()
    }

    fn check_consumers(&self) -> Check {
        let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
        for member in 0..2 {
            let Some(consumer) = self.consumers[member].as_ref() else {
                continue;
            };
            let assignment: Vec<u32> = consumer
                .assignment()
                .iter()
                .map(|tp| tp.partition)
                .collect();
            let held = self.held(member);
            let expected: Vec<u32> = held.iter().map(|&(p, _)| p).collect();
            ensure!(
                assignment == expected,
                "member {member} holds {assignment:?}, expected {expected:?}"
            );
            for p in assignment {
                if let Some(other) = seen.insert(p, member) {
                    return Err(TestCaseError::fail(format!(
                        "members {other} and {member} both hold partition {p}"
                    )));
                }
            }
            for (p, c) in held {
                let tp = Self::tp(p);
                let position = lib(consumer.position(&tp), "position")?;
                ensure!(
                    position == self.model.cursors[c].position,
                    "member {member} is at {p}/{position}, expected {}",
                    self.model.cursors[c].position
                );
                ensure!(
                    consumer.committed(&tp) == self.model.committed[p as usize],
                    "member {member} sees committed {:?} for {p}, expected {:?}",
                    consumer.committed(&tp),
                    self.model.committed[p as usize]
                );
            }
            for lag in consumer.lag() {
                let p = lag.partition.partition;
                let from = self.model.committed[p as usize].unwrap_or(0);
                ensure!(
                    lag.end_offset == self.model.end(p) && lag.lag == self.model.end(p) - from,
                    "member {member}: lag {lag:?}"
                );
            }
        }
        Ok(())
    }

    /// Drops every undecided delivery and drains the group: every record not yet settled must
    /// come (again), and every record sent must have been delivered unless a seek skipped it.
    fn finish(&mut self) -> Check {
        self.out.clear();
        if !self.case.short_ack_wait {
            // Undecided deliveries come back only after a restart.
            self.reopen(false, true)?;
        }
        if (0..2).all(|m| self.consumers[m].is_none()) {
            self.join(0)?;
        }
        let timeout = if self.case.short_ack_wait {
            SHORT_ACK_WAIT * 4
        } else {
            Duration::ZERO
        };
        for _ in 0..DRAIN_ROUNDS {
            if self.model.drained() {
                break;
            }
            for member in 0..2 {
                if !self.model.has_work(member) {
                    continue;
                }
                let consumer = self.consumers[member].as_mut().expect("member");
                let deliveries = lib(consumer.poll_batch(64, timeout), "drain poll")?;
                self.rebalance(member);
                for delivery in deliveries {
                    let (p, o) = (delivery.partition(), delivery.offset());
                    let (c, _) = self.accept(member, &delivery)?;
                    lib(delivery.ack(), &format!("drain ack of {p}/{o}"))?;
                    self.model.cursors[c].ack(o);
                    self.stats.borrow_mut().drained_records += 1;
                }
            }
            self.check()?;
        }
        ensure!(
            self.model.drained(),
            "the drain did not converge in {DRAIN_ROUNDS} rounds: holders {:?}, members {:?}, \
             cursors {:?}, log ends {:?}",
            self.model.holders,
            self.model.members,
            self.model
                .holders
                .iter()
                .filter_map(|(&p, &m)| self.model.cursor_of(m, p).map(|c| &self.model.cursors[c]))
                .collect::<Vec<_>>(),
            (0..self.model.partitions)
                .map(|p| self.model.end(p))
                .collect::<Vec<_>>()
        );
        for member in 0..2 {
            if let Some(consumer) = self.consumers[member].as_mut() {
                let extra = lib(consumer.poll_batch(64, Duration::ZERO), "last poll")?;
                ensure!(
                    extra.is_empty(),
                    "member {member} delivered {:?} after everything was acknowledged",
                    extra
                        .iter()
                        .map(|d| (d.partition(), d.offset(), d.attempt()))
                        .collect::<Vec<_>>()
                );
                self.commit_acked(member)?;
            }
        }
        self.check()?;
        for p in 0..self.model.partitions {
            let end = self.model.end(p);
            ensure!(
                self.model.committed[p as usize] == Some(end),
                "partition {p}: committed {:?} after the drain, log end {end}",
                self.model.committed[p as usize]
            );
            let i = p as usize;
            let lost: Vec<u64> = (0..end)
                .filter(|o| {
                    !self.model.delivered[i].contains(o) && !self.model.skipped[i].contains(o)
                })
                .collect();
            ensure!(
                lost.is_empty(),
                "partition {p}: records {lost:?} were never delivered and no seek skipped them"
            );
        }
        for member in 0..2 {
            if let Some(consumer) = self.consumers[member].take() {
                lib(consumer.close(), "final close of a consumer")?;
            }
        }
        self.producer = None;
        if let Some(wharf) = self.wharf.take() {
            lib(wharf.close(), "final close")?;
        }
        self.stats.borrow_mut().cases += 1;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

/// Fails the whole test binary with a clear message if the test is still running after
/// `limit` (a hang guard, not a timing assertion).
struct Watchdog {
    done: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    fn start(what: String, limit: Duration) -> Self {
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::clone(&done);
        let thread = thread::spawn(move || {
            let (lock, cvar) = &*flag;
            let guard = lock.lock().expect("watchdog lock");
            let (finished, _) = cvar
                .wait_timeout_while(guard, limit, |done| !*done)
                .expect("watchdog wait");
            if !*finished {
                eprintln!("HANG: {what} did not finish within {limit:?}");
                std::process::exit(101);
            }
        });
        Watchdog {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        *self.done.0.lock().expect("watchdog lock") = true;
        self.done.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    let mut state = seed;
    for chunk in bytes.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    bytes
}

#[test]
fn consumer_groups_follow_the_model() {
    let seed = std::env::var(SEED_ENV).map_or_else(
        |_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        },
        |s| s.parse().expect("WHARF_MODEL_SEED must be a u64"),
    );
    let cases: u32 = std::env::var(CASES_ENV).map_or(DEFAULT_CASES, |s| {
        s.parse().expect("WHARF_MODEL_CASES must be a number")
    });
    println!("consumer_model: seed {seed}, {cases} cases (replay with {SEED_ENV}={seed})");
    let watchdog = Watchdog::start(
        format!("consumer_groups_follow_the_model (seed {seed})"),
        TEST_LIMIT,
    );
    let config = Config {
        cases,
        // No regression files next to the tests: the seed above replays a run.
        failure_persistence: None,
        max_shrink_iters: 2_000,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed)),
    );
    let stats = RefCell::new(Stats::default());
    let result = runner.run(&case(), |case| {
        let mut harness = Harness::new(&case, &stats)?;
        harness.run()
    });
    drop(watchdog);
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, case)) => panic!(
            "seed {seed} (replay with {SEED_ENV}={seed}): {why}\nminimal failing case: {case:#?}"
        ),
        Err(TestError::Abort(why)) => panic!("seed {seed}: proptest aborted: {why}"),
    }
    let stats = stats.into_inner();
    println!(
        "consumer_model summary: seed {seed}; {} cases passed ({} incl. shrinking), {} ops; \
         deliveries {} (redeliveries {}), acks {} (refused {}), commits {} (rewinds {}), \
         joins {}, waits for a held partition {}, take-overs at a committed offset {}, \
         reopens {} ({} crashes), records drained {}; losses 0",
        cases,
        stats.cases,
        stats.ops,
        stats.deliveries,
        stats.redeliveries,
        stats.acks,
        stats.refused_acks,
        stats.commits,
        stats.rewinds,
        stats.joins,
        stats.waits,
        stats.handovers,
        stats.reopens,
        stats.crashes,
        stats.drained_records,
    );
    assert!(
        stats.deliveries > 0 && stats.commits > 0 && stats.reopens > 0,
        "seed {seed}: the run exercised too little: {stats:?}"
    );
}
