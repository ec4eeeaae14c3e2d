//! Retries, delays and dead letters under kill -9, with real processes (issue 4 "Tests": "A
//! child process killed with SIGKILL during retry and DLQ moves loses nothing"; issue 4
//! deliverable 6: "after recovery each message is in exactly one of {pending, retry level k,
//! DLQ, done}, except for that duplicate window"; DESIGN.md section 2; RELIABILITY.md I7 and
//! fault scenarios 1 and 15).
//!
//! `retried_and_dead_lettered_records_survive_kill_9`: the parent prefills a topic with unique,
//! self-describing payloads (an id, a fill derived from it, some with a key and a user header).
//! The test binary re-runs itself as a child that opens the directory with a short table of
//! delay levels (`10ms 20ms 50ms 100ms`, on the real clock) and consumes the group
//! (`max_reconsume_times` 3, `CommitPolicy::Acked` at a short interval, `commit_ack` `Fsync` or
//! `Write` by cycle, sometimes `commit_acked` as well). Each delivery is decided by a fixed
//! plan, a pure function of the run's seed, the payload's id and the delivery's reconsume
//! count: ack at once; ack after 1 to 3 retries; `dead_letter` after 0 to 3 retries; or retry
//! until the fourth failure sends it to `%DLQ%<group>`. Retries use `Retry::Level`,
//! `Retry::After` or `Retry::Default`, with a reason or without one (then the last one stays).
//! The child writes `deciding …` to stdout (flushed) before each call and `decided …` after it
//! returned, and fails if the delay scheduler reports an error or a dropped record. In some
//! cycles a second thread of the child sends delayed records (`Record::delay`, `Write` or
//! `Fsync`), reporting `sending <id>` and then `sent <id> <lane> <offset>`. The parent SIGKILLs
//! the child: while it opens, after a random delay (scheduler moves in flight), during its k-th
//! retry or dead-letter call (the first one in the first cycle, which also creates `%DELAY%`),
//! right after the k-th returned (the copy written, the original not yet committed: the
//! documented duplicate window), during its k-th call that dead-letters (the first one in the
//! second cycle, which also creates the DLQ), right after its k-th delivery from the retry
//! topic, or right after its k-th delayed send.
//!
//! After each kill the parent opens the directory itself, on a clock frozen an hour before the
//! run (nothing is due on it, so the scheduler moves nothing while the parent looks), reads
//! every partition of the topic, `%RETRY%<group>`, `%DLQ%<group>` and `%DELAY%` directly, and
//! checks:
//! - every record is intact: payload, key and user headers byte-identical to what its id says,
//!   and exactly the `wharf.*` headers its place calls for: none in the topic; target,
//!   partition and due time in `%DELAY%`; on every retry and dead-letter copy, an origin naming
//!   a record of the topic with the same id and its timestamp, a reconsume count within the
//!   plan's (never above `max_reconsume_times`), the reason the plan gave or inherited, and a
//!   first failure within the run. A retry copy keeps its original's timestamp and waits in
//!   the lane of the level the plan chose; a dead letter is stamped after its first failure,
//!   has exactly the reconsume count and reason of the plan's last failure, and exists only for
//!   ids whose plan ends in the DLQ (`Admin::dead_letters` lists the same);
//! - every copy has a history: a retry copy with count c > 1 and a dead letter with count c > 0
//!   follow a retry-topic record of the same origin with count c - 1 (c) and the same first
//!   failure; every retry-topic record, and every topic record the parent did not append, is
//!   the move of a `%DELAY%` record (same payload, key, timestamp and headers, `wharf.delay.*`
//!   aside) and was not delivered before that record was due; a delayed send is in `%DELAY%`
//!   once, where its receipt said;
//! - copies come only from calls: no stage of a message has more retry copies, or more dead
//!   letters, than calls announced that write them; a child took each record at most once, and
//!   only at or after the committed offsets seen after the previous kill; one process moves a
//!   `%DELAY%` record at most once;
//! - no loss: every record below a committed offset of the group had a decision that returned;
//!   the copy of every returned retry or dead-letter call exists; every `%DELAY%` record below
//!   the scheduler's progress has a moved copy in its target; every message (every record of
//!   the topic, as an origin) is in at least one of {pending in the topic, waiting in
//!   `%DELAY%`, pending in the retry topic, dead-lettered, acked}, and never both acked and
//!   dead-lettered. In more than one of them is the duplicate window: counted, not failed;
//! - committed offsets and the scheduler's progress never move back nor past the log end.
//!
//! The parent then appends more records and closes. At the end it consumes what is left
//! itself, on the real clock, until the delay queue is empty and everything is committed, and
//! checks that every message ended where its plan ends (acked, or dead-lettered) and nowhere
//! else. Duplicates of each kind are counted in the summary.
//!
//! A failure prints the seed: `WHARF_RETRY_KILL_SEED=<seed>` replays the same workload and plan
//! (the kill points are timing, so they vary); `WHARF_RETRY_KILL_CYCLES=<n>` runs a longer soak;
//! `WHARF_RETRY_KILL_VERBOSE=1` prints examples of messages in the duplicate window.

#![allow(clippy::cast_possible_truncation, clippy::too_many_lines)]

mod common;

use common::kill::{Watchdog, killed_by_sigkill};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wharf::{
    AckMode, CommitPolicy, Consumer, DelayLevel, DelayLevels, Delivery, ErrorKind, ManualClock,
    Message, ReadOptions, Record, Retry, Timestamp, TopicConfig, TopicPartition, Wharf,
};

/// Set in a consuming child: the data directory.
const CHILD_ENV: &str = "WHARF_RETRY_KILL_CHILD";
/// Set in a consuming child: the cycle's seed (its options and kill-independent choices).
const CHILD_SEED_ENV: &str = "WHARF_RETRY_KILL_CHILD_SEED";
/// Set in a consuming child: the run's plan seed (what is decided for each record).
const CHILD_PLAN_ENV: &str = "WHARF_RETRY_KILL_CHILD_PLAN";
/// Set in a consuming child: the cycle number (names the ids of its delayed sends).
const CHILD_CYCLE_ENV: &str = "WHARF_RETRY_KILL_CHILD_CYCLE";
/// Prints a few messages seen in the duplicate window after each check.
const VERBOSE_ENV: &str = "WHARF_RETRY_KILL_VERBOSE";
/// Replays a run.
const SEED_ENV: &str = "WHARF_RETRY_KILL_SEED";
/// Number of kill cycles (default [`DEFAULT_CYCLES`]).
const CYCLES_ENV: &str = "WHARF_RETRY_KILL_CYCLES";

const DEFAULT_CYCLES: u32 = 100;
const TOPIC: &str = "payments";
const GROUP: &str = "billing";
const RETRY_TOPIC: &str = "%RETRY%billing";
const DLQ_TOPIC: &str = "%DLQ%billing";
const DELAY_TOPIC: &str = "%DELAY%";
const PARTITIONS: u32 = 2;
/// A short table on the real clock, so retries come back within the child's life.
const LEVELS: &str = "10ms 20ms 50ms 100ms";
const LEVEL_COUNT: u8 = 4;
/// [`LEVELS`] in milliseconds.
const LEVEL_MILLIS: [u64; LEVEL_COUNT as usize] = [10, 20, 50, 100];
const MAX_RECONSUME: u32 = 3;
/// Records appended before the first cycle.
const PREFILL: u64 = 40;
/// Most records the parent appends after a cycle.
const APPEND_MAX: u64 = 16;
/// Prefix of every line a child writes for the parent (libtest writes its own lines too).
const LINE_PREFIX: &str = "WHARF ";
/// Magic at the start of every payload.
const PAYLOAD_MAGIC: &[u8; 4] = b"WRTY";
/// The user header some records carry (it must pass through every copy unchanged).
const USER_HEADER: &str = "trace";
/// Hang guard: a child that has not reported what the parent waits for by then is hung.
const CHILD_EVENT_LIMIT: Duration = Duration::from_secs(60);
/// Hang guard of the final drain.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// Problems listed in a failure message.
const SHOWN_PROBLEMS: usize = 25;

const ORIGIN_TOPIC: &str = "wharf.origin.topic";
const ORIGIN_PARTITION: &str = "wharf.origin.partition";
const ORIGIN_OFFSET: &str = "wharf.origin.offset";
const ORIGIN_TIMESTAMP: &str = "wharf.origin.timestamp";
const RECONSUME_COUNT: &str = "wharf.reconsume-count";
const FIRST_FAILURE: &str = "wharf.first-failure";
const REASON: &str = "wharf.reason";
const DELAY_TARGET: &str = "wharf.delay.target";
const DELAY_TARGET_PARTITION: &str = "wharf.delay.target-partition";
const DELAY_DUE: &str = "wharf.delay.due";

fn topic_config() -> TopicConfig {
    TopicConfig::default()
        .partitions(PARTITIONS)
        .segment_bytes(8 * 1024)
        .index_interval_bytes(256)
        .max_message_bytes(2_048)
}

fn levels() -> DelayLevels {
    DelayLevels::parse(LEVELS).expect("the delay table")
}

fn now_millis() -> i64 {
    Timestamp::now().as_millis()
}

// ---------------------------------------------------------------------------------------------
// Deterministic workload and plan
// ---------------------------------------------------------------------------------------------

/// `SplitMix64`: small, seedable, good enough to pick sizes, decisions and kill points.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

fn mix(a: u64, b: u64) -> u64 {
    Rng::new(a ^ b.wrapping_mul(0xd6e8_feb8_6659_fd93)).next_u64()
}

/// The id of the `seq`-th delayed record child cycle `cycle` sends (the parent's appended
/// records have ids below 2^32).
fn delayed_id(cycle: u32, seq: u64) -> u64 {
    ((u64::from(cycle) + 1) << 32) | seq
}

fn is_delayed_id(id: u64) -> bool {
    id >> 32 != 0
}

/// The payload of the record with `id`: magic, id, and a fill derived from the id.
fn payload_for(id: u64) -> Vec<u8> {
    let mut payload = PAYLOAD_MAGIC.to_vec();
    payload.extend_from_slice(&id.to_le_bytes());
    payload.extend(common::payload(
        mix(id, 0xf111),
        (mix(id, 0x1e17) % 160) as usize,
    ));
    payload
}

/// The id of an intact payload of this test.
fn id_of(payload: &[u8]) -> Option<u64> {
    if payload.len() < 12 || &payload[..4] != PAYLOAD_MAGIC {
        return None;
    }
    let id = u64::from_le_bytes(payload[4..12].try_into().ok()?);
    (payload == payload_for(id).as_slice()).then_some(id)
}

fn key_for(id: u64) -> Option<Vec<u8>> {
    (mix(id, 0x6b) % 3 == 0).then(|| format!("key-{id}").into_bytes())
}

fn user_header_for(id: u64) -> Option<Vec<u8>> {
    (mix(id, 0x4d) % 4 == 0).then(|| id.to_le_bytes().to_vec())
}

fn record_for(id: u64) -> Record {
    let mut record = Record::new(TOPIC, payload_for(id));
    if let Some(key) = key_for(id) {
        record = record.key(key);
    }
    if let Some(value) = user_header_for(id) {
        record = record.header(USER_HEADER, value);
    }
    record
}

/// The delay level a delayed record is sent with.
fn delayed_level(id: u64) -> u8 {
    1 + (mix(id, 0xde1a) % u64::from(LEVEL_COUNT)) as u8
}

/// The partition of the topic a delayed record is sent to.
fn delayed_partition(id: u64) -> u32 {
    (mix(id, 0x9a) % u64::from(PARTITIONS)) as u32
}

/// How a message's life ends, by plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Acked after its retries.
    Ack,
    /// `dead_letter` after its retries.
    DeadLetter,
    /// Retried until the retry after the last allowed one sends it to the DLQ.
    Exhaust,
}

/// A message's plan: how many retry copies it goes through, and how it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fate {
    retries: u32,
    end: End,
}

fn fate(plan: u64, id: u64) -> Fate {
    let mut rng = Rng::new(mix(plan, id));
    let max = u64::from(MAX_RECONSUME);
    match rng.below(100) {
        0..30 => Fate {
            retries: 0,
            end: End::Ack,
        },
        30..58 => Fate {
            retries: rng.range(1, max) as u32,
            end: End::Ack,
        },
        58..72 => Fate {
            retries: rng.range(0, max) as u32,
            end: End::DeadLetter,
        },
        _ => Fate {
            retries: MAX_RECONSUME,
            end: End::Exhaust,
        },
    }
}

/// How a retry is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delay {
    /// `Retry::Default`: level 3 + the reconsume count, capped at the table's last.
    Default,
    /// `Retry::Level`.
    Level(u8),
    /// `Retry::After` this many milliseconds: rounded up to a level.
    After(u64),
}

impl Delay {
    fn retry(self) -> Retry {
        match self {
            Delay::Default => Retry::Default,
            Delay::Level(level) => Retry::Level(DelayLevel::new(level)),
            Delay::After(ms) => Retry::After(Duration::from_millis(ms)),
        }
    }

    /// The level a retry of a delivery retried `count` times before waits in.
    fn level(self, count: u32) -> u8 {
        match self {
            Delay::Default => {
                (u32::from(wharf::FIRST_RETRY_LEVEL) + count).min(u32::from(LEVEL_COUNT)) as u8
            }
            Delay::Level(level) => level,
            Delay::After(ms) => {
                1 + LEVEL_MILLIS
                    .iter()
                    .position(|&l| l >= ms)
                    .expect("a delay within the table") as u8
            }
        }
    }
}

/// What the plan does with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Ack,
    /// `nack` after this delay, with a reason or not.
    Nack {
        delay: Delay,
        reason: bool,
    },
    DeadLetter,
}

/// The kind of an action, as the child reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ack,
    Nack,
    DeadLetter,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ack => "ack",
            Kind::Nack => "nack",
            Kind::DeadLetter => "dlq",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        [Kind::Ack, Kind::Nack, Kind::DeadLetter]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

impl Action {
    fn kind(self) -> Kind {
        match self {
            Action::Ack => Kind::Ack,
            Action::Nack { .. } => Kind::Nack,
            Action::DeadLetter => Kind::DeadLetter,
        }
    }
}

/// The plan's decision for a delivery of `id` retried `count` times before.
fn action(plan: u64, id: u64, count: u32) -> Action {
    let fate = fate(plan, id);
    if count < fate.retries || fate.end == End::Exhaust {
        let mut rng = Rng::new(mix(mix(plan, id), u64::from(count) + 1));
        let delay = match rng.below(10) {
            0..2 => Delay::Default,
            2..4 => Delay::After(rng.range(1, LEVEL_MILLIS[usize::from(LEVEL_COUNT) - 1])),
            _ => Delay::Level(rng.range(1, u64::from(LEVEL_COUNT)) as u8),
        };
        Action::Nack {
            delay,
            reason: rng.below(2) == 0,
        }
    } else if fate.end == End::Ack {
        Action::Ack
    } else {
        Action::DeadLetter
    }
}

fn nack_reason(id: u64, count: u32) -> String {
    format!("retry {id} after failure {count}")
}

fn dead_letter_reason(id: u64, count: u32) -> String {
    format!("poison {id} at {count}")
}

/// Where a decision sends the record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Done,
    /// A retry copy with this reconsume count, waiting in the lane of this level.
    Retry {
        count: u32,
        level: u8,
    },
    /// A dead letter with this reconsume count and reason.
    DeadLetter {
        count: u32,
        reason: String,
    },
}

fn outcome(plan: u64, id: u64, count: u32) -> Outcome {
    match action(plan, id, count) {
        Action::Ack => Outcome::Done,
        Action::DeadLetter => Outcome::DeadLetter {
            count,
            reason: dead_letter_reason(id, count),
        },
        Action::Nack { reason, .. } if count >= MAX_RECONSUME => {
            let reason = if reason {
                Some(nack_reason(id, count))
            } else {
                reason_at(plan, id, count)
            };
            Outcome::DeadLetter {
                count,
                reason: match reason {
                    Some(r) => format!("{r} (failed {} times)", count + 1),
                    None => format!("failed {} times", count + 1),
                },
            }
        }
        Action::Nack { delay, .. } => Outcome::Retry {
            count: count + 1,
            level: delay.level(count),
        },
    }
}

/// The `wharf.reason` of `id`'s copy with reconsume count `count`: the last reason given.
fn reason_at(plan: u64, id: u64, count: u32) -> Option<String> {
    let previous = count.checked_sub(1)?;
    match action(plan, id, previous) {
        Action::Nack { reason: true, .. } => Some(nack_reason(id, previous)),
        _ => reason_at(plan, id, previous),
    }
}

/// The dead letter `id`'s plan ends with, if it ends in the DLQ.
fn planned_dead_letter(plan: u64, id: u64) -> Option<(u32, String)> {
    let fate = fate(plan, id);
    match outcome(plan, id, fate.retries) {
        Outcome::DeadLetter { count, reason } => Some((count, reason)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Events: what a child reports
// ---------------------------------------------------------------------------------------------

/// A consumed topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Src {
    Topic,
    Retry,
}

impl Src {
    fn name(self) -> &'static str {
        match self {
            Src::Topic => TOPIC,
            Src::Retry => RETRY_TOPIC,
        }
    }

    fn parse(name: &str) -> Option<Src> {
        [Src::Topic, Src::Retry]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// A consumed record: topic, partition, offset.
type Loc = (Src, u32, u64);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Opening,
    Ready,
    /// About to decide the delivery at `loc` (id and reconsume count as delivered), given at
    /// `at` (ms since the epoch, real clock).
    Deciding {
        loc: Loc,
        id: u64,
        count: u32,
        kind: Kind,
        at: i64,
    },
    /// The decision on `loc` returned.
    Decided {
        loc: Loc,
    },
    /// About to send delayed record `id`.
    Sending {
        id: u64,
    },
    /// The delayed send of `id` returned: it waits at `%DELAY%/lane/offset`.
    Sent {
        id: u64,
        lane: u32,
        offset: u64,
    },
    Error(String),
}

impl Event {
    fn line(&self) -> String {
        match self {
            Event::Opening => "opening".into(),
            Event::Ready => "ready".into(),
            Event::Deciding {
                loc: (src, p, o),
                id,
                count,
                kind,
                at,
            } => format!(
                "deciding {} {p} {o} {id} {count} {} {at}",
                src.name(),
                kind.name()
            ),
            Event::Decided { loc: (src, p, o) } => format!("decided {} {p} {o}", src.name()),
            Event::Sending { id } => format!("sending {id}"),
            Event::Sent { id, lane, offset } => format!("sent {id} {lane} {offset}"),
            Event::Error(what) => format!("error {what}"),
        }
    }
}

fn parse_line(line: &str) -> Option<Event> {
    // libtest may have started the line ("test child_retry ... ") before the test ran.
    let rest = &line[line.find(LINE_PREFIX)? + LINE_PREFIX.len()..];
    let words: Vec<&str> = rest.split(' ').collect();
    let n = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
    let event = match words[0] {
        "opening" => Some(Event::Opening),
        "ready" => Some(Event::Ready),
        "deciding" if words.len() == 8 => (|| {
            Some(Event::Deciding {
                loc: (Src::parse(words[1])?, u32::try_from(n(2)?).ok()?, n(3)?),
                id: n(4)?,
                count: u32::try_from(n(5)?).ok()?,
                kind: Kind::parse(words[6])?,
                at: words[7].parse().ok()?,
            })
        })(),
        "decided" if words.len() == 4 => (|| {
            Some(Event::Decided {
                loc: (Src::parse(words[1])?, u32::try_from(n(2)?).ok()?, n(3)?),
            })
        })(),
        "sending" if words.len() == 2 => n(1).map(|id| Event::Sending { id }),
        "sent" if words.len() == 4 => (|| {
            Some(Event::Sent {
                id: n(1)?,
                lane: u32::try_from(n(2)?).ok()?,
                offset: n(3)?,
            })
        })(),
        "error" => Some(Event::Error(rest["error".len()..].trim().to_owned())),
        _ => None,
    };
    Some(event.unwrap_or_else(|| Event::Error(format!("unexpected line {line:?}"))))
}

// ---------------------------------------------------------------------------------------------
// Consuming by plan (the child, and the parent's final drain)
// ---------------------------------------------------------------------------------------------

/// Polls once and decides every delivery by the plan, in a shuffled order, reporting each
/// decision before the call and after it returned. Returns how many deliveries came.
fn consume_once(
    consumer: &mut Consumer,
    plan: u64,
    rng: &mut Rng,
    report: &mut dyn FnMut(Event),
) -> Result<usize, String> {
    let max = rng.range(1, 16) as usize;
    let mut batch = consumer
        .poll_batch(max, Duration::from_millis(20))
        .map_err(|e| format!("poll: {e}"))?;
    for i in (1..batch.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        batch.swap(i, j);
    }
    let count = batch.len();
    for delivery in batch {
        decide(delivery, plan, report)?;
    }
    Ok(count)
}

fn decide(d: Delivery, plan: u64, report: &mut dyn FnMut(Event)) -> Result<(), String> {
    let src = Src::parse(d.topic()).ok_or_else(|| format!("a delivery from {}", d.topic()))?;
    let loc = (src, d.partition(), d.offset());
    let id = id_of(d.payload()).ok_or_else(|| {
        format!(
            "delivery {loc:?}: not an intact payload of this test: {:02x?}",
            &d.payload()[..d.payload().len().min(16)]
        )
    })?;
    let count = d.reconsume_count();
    let at = now_millis();
    let origin = d.origin();
    let consistent = match src {
        Src::Topic => origin.is_none() && count == 0,
        Src::Retry => {
            origin.as_ref().is_some_and(|o| o.topic == TOPIC)
                && (1..=MAX_RECONSUME).contains(&count)
        }
    };
    if !consistent {
        return Err(format!(
            "delivery {loc:?} of id {id}: origin {origin:?}, reconsume count {count} \
             (max_reconsume_times {MAX_RECONSUME})"
        ));
    }
    let action = action(plan, id, count);
    report(Event::Deciding {
        loc,
        id,
        count,
        kind: action.kind(),
        at,
    });
    let result = match action {
        Action::Ack => d.ack(),
        Action::Nack { delay, reason } => {
            let retry = delay.retry();
            if reason {
                d.nack_with_reason(retry, &nack_reason(id, count))
            } else {
                d.nack(retry)
            }
        }
        Action::DeadLetter => d.dead_letter(&dead_letter_reason(id, count)),
    };
    result.map_err(|e| format!("{action:?} of {loc:?} (id {id}, count {count}): {e}"))?;
    report(Event::Decided { loc });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The child
// ---------------------------------------------------------------------------------------------

/// A child's options, a pure function of its cycle seed (the parent derives them too).
#[derive(Debug, Clone, Copy)]
struct ChildConfig {
    commit_ack: AckMode,
    interval: Duration,
    /// Call `commit_acked` after about one poll in this many (0: never).
    commit_every: u64,
    /// Delayed records to send (0: none), and at which ack.
    sends: u64,
    send_ack: AckMode,
}

impl ChildConfig {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(mix(seed, 0xc0f1));
        let ack = |rng: &mut Rng| {
            if rng.below(2) == 0 {
                AckMode::Fsync
            } else {
                AckMode::Write
            }
        };
        ChildConfig {
            commit_ack: ack(&mut rng),
            interval: Duration::from_millis(rng.range(1, 20)),
            commit_every: [0, 3, 12][rng.below(3) as usize],
            sends: if rng.below(3) == 0 {
                rng.range(1, 30)
            } else {
                0
            },
            send_ack: ack(&mut rng),
        }
    }
}

/// Writes one line for the parent (whole, under the stdout lock), or exits if the parent is
/// gone.
fn say(event: &Event) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{LINE_PREFIX}{}", event.line())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(3);
    }
}

/// Reports a failure to the parent and exits (an exit the parent did not cause fails the
/// test).
fn fail(what: &str) -> ! {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{LINE_PREFIX}error {}", what.replace('\n', " | "));
    let _ = out.flush();
    std::process::exit(2);
}

fn env_number<T: std::str::FromStr>(name: &str) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fail(&format!("{name} missing or unreadable")))
}

/// The child side of `retried_and_dead_lettered_records_survive_kill_9`; does nothing in a
/// normal test run (the variable is absent).
#[test]
fn child_retry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let seed: u64 = env_number(CHILD_SEED_ENV);
    let plan: u64 = env_number(CHILD_PLAN_ENV);
    let cycle: u32 = env_number(CHILD_CYCLE_ENV);
    exit_when_parent_goes();
    let config = ChildConfig::new(seed);
    say(&Event::Opening);
    let wharf = Wharf::builder(&dir)
        .delay_levels(levels())
        .open()
        .unwrap_or_else(|e| fail(&format!("open: {e}")));
    if config.sends > 0 {
        let wharf = wharf.clone();
        thread::spawn(move || send_delayed(&wharf, cycle, seed, config));
    }
    let mut consumer = wharf
        .consumer(GROUP)
        .subscribe([TOPIC])
        .commit_ack(config.commit_ack)
        .max_reconsume_times(MAX_RECONSUME)
        .commit(CommitPolicy::Acked {
            interval: config.interval,
        })
        .build()
        .unwrap_or_else(|e| fail(&format!("build the consumer: {e}")));
    say(&Event::Ready);
    let mut rng = Rng::new(mix(seed, 0xc0));
    loop {
        consume_once(&mut consumer, plan, &mut rng, &mut |e| say(&e)).unwrap_or_else(|e| fail(&e));
        // No fault is injected here: a scheduler round never fails.
        let status = wharf.admin().delay_status();
        if status.error.is_some() || status.dropped > 0 {
            fail(&format!(
                "the delay scheduler failed or dropped records: {status:?}"
            ));
        }
        if config.commit_every > 0 && rng.below(config.commit_every) == 0 {
            consumer
                .commit_acked()
                .unwrap_or_else(|e| fail(&format!("commit_acked: {e}")));
        }
    }
}

/// Sends the cycle's delayed records, one by one, with short pauses.
fn send_delayed(wharf: &Wharf, cycle: u32, seed: u64, config: ChildConfig) {
    let producer = wharf.producer().ack(config.send_ack).build();
    let mut rng = Rng::new(mix(seed, 0x5e4d));
    for seq in 0..config.sends {
        let id = delayed_id(cycle, seq);
        say(&Event::Sending { id });
        let record = record_for(id)
            .partition(delayed_partition(id))
            .delay(delayed_level(id));
        let receipt = producer
            .send(record)
            .unwrap_or_else(|e| fail(&format!("delayed send of {id}: {e}")));
        if receipt.topic() != DELAY_TOPIC || receipt.partition() != u32::from(delayed_level(id)) - 1
        {
            fail(&format!(
                "the delayed send of {id} at level {} returned the receipt {}/{}/{}",
                delayed_level(id),
                receipt.topic(),
                receipt.partition(),
                receipt.offset()
            ));
        }
        say(&Event::Sent {
            id,
            lane: receipt.partition(),
            offset: receipt.offset(),
        });
        thread::sleep(Duration::from_micros(rng.below(3_000)));
    }
}

/// A child must not outlive a parent that died without killing it: it exits at the end of its
/// stdin (a pipe the parent holds).
fn exit_when_parent_goes() {
    thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(4);
    });
}

// ---------------------------------------------------------------------------------------------
// Child process plumbing
// ---------------------------------------------------------------------------------------------

/// A spawned copy of this test binary; killed (and reaped) when dropped, so a failing test
/// leaves no process behind.
struct ChildProcess {
    child: Child,
    events: Receiver<Event>,
    stdout_thread: Option<JoinHandle<()>>,
    stderr_thread: Option<JoinHandle<String>>,
}

impl ChildProcess {
    fn spawn(envs: &[(&str, String)]) -> Self {
        let exe = std::env::current_exe().expect("current_exe");
        let mut command = Command::new(exe);
        command
            .args(["child_retry", "--exact", "--nocapture", "--test-threads=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn the child");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let (tx, events) = mpsc::channel();
        let stdout_thread = thread::spawn(move || forward_events(stdout, &tx));
        let stderr_thread = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        ChildProcess {
            child,
            events,
            stdout_thread: Some(stdout_thread),
            stderr_thread: Some(stderr_thread),
        }
    }

    /// Waits until `want` has matched `count` events (counting from the spawn, over `seen`),
    /// keeping every event received in `seen`. `false` if the child's stdout ended first.
    fn wait_for(
        &self,
        seen: &mut Vec<Event>,
        want: &dyn Fn(&Event) -> bool,
        count: u64,
        what: &str,
    ) -> bool {
        let mut matched = seen.iter().filter(|e| want(e)).count() as u64;
        let deadline = Instant::now() + CHILD_EVENT_LIMIT;
        while matched < count {
            match self
                .events
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(event) => {
                    matched += u64::from(want(&event));
                    let error = matches!(event, Event::Error(_));
                    seen.push(event);
                    if error {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return false,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "hang: the child reported {matched} of {count} {what:?} events within \
                     {CHILD_EVENT_LIMIT:?}; its last events: {:?}",
                    &seen[seen.len().saturating_sub(5)..]
                ),
            }
        }
        true
    }

    /// SIGKILLs the child, reaps it, and returns its status, every remaining event, and its
    /// stderr.
    fn kill(mut self, seen: &mut Vec<Event>) -> (ExitStatus, String) {
        // `kill` of a child that already exited (not yet reaped) is not an error.
        self.child.kill().expect("kill the child");
        let status = self.child.wait().expect("wait for the child");
        self.stdout_thread
            .take()
            .expect("stdout thread")
            .join()
            .expect("stdout thread");
        seen.extend(self.events.try_iter());
        let stderr = self
            .stderr_thread
            .take()
            .expect("stderr thread")
            .join()
            .expect("stderr thread");
        (status, stderr)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards the child's complete lines; a line the kill cut short is not a report.
fn forward_events(stdout: ChildStdout, tx: &mpsc::Sender<Event>) {
    let mut stdout = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdout.read_until(b'\n', &mut line) {
            Ok(n) if n > 0 && line.ends_with(b"\n") => {}
            _ => break,
        }
        if let Some(event) = parse_line(&String::from_utf8_lossy(&line[..line.len() - 1])) {
            if tx.send(event).is_err() {
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the parent reads back
// ---------------------------------------------------------------------------------------------

/// Where a stored record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Topic,
    Retry,
    Dlq,
    Delay,
}

/// A record read back from the directory, with what its `wharf.*` headers say.
#[derive(Debug, Clone)]
struct Stored {
    place: Place,
    partition: u32,
    offset: u64,
    id: u64,
    timestamp: i64,
    /// Partition and offset in [`TOPIC`] (the origin topic is checked when read).
    origin: Option<(u32, u64)>,
    /// `wharf.origin.timestamp`: the original's timestamp.
    origin_timestamp: Option<i64>,
    count: Option<u32>,
    first_failure: Option<i64>,
    reason: Option<String>,
    target: Option<(String, u32)>,
    due: Option<i64>,
    /// The record as its target (or its own partition) holds it, `wharf.delay.*` aside.
    fingerprint: Vec<u8>,
}

impl Stored {
    fn at(&self) -> String {
        let topic = match self.place {
            Place::Topic => TOPIC,
            Place::Retry => RETRY_TOPIC,
            Place::Dlq => DLQ_TOPIC,
            Place::Delay => DELAY_TOPIC,
        };
        format!(
            "{topic}/{}/{} (id {})",
            self.partition, self.offset, self.id
        )
    }

    /// The message this record is a stage of: itself in the topic, else its origin.
    fn origin_or_self(&self) -> Option<(u32, u64)> {
        match self.place {
            Place::Topic => Some((self.partition, self.offset)),
            _ => self.origin,
        }
    }

    /// Its reconsume count as a consumer sees it.
    fn stage(&self) -> u32 {
        self.count.unwrap_or(0)
    }
}

fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// `message` as it would be appended to `topic`/`partition`, without `wharf.delay.*` headers.
fn fingerprint(topic: &str, partition: u32, message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    push_field(&mut out, topic.as_bytes());
    push_field(&mut out, &partition.to_le_bytes());
    push_field(&mut out, &message.timestamp().as_millis().to_le_bytes());
    match message.key() {
        Some(key) => {
            out.push(1);
            push_field(&mut out, key);
        }
        None => out.push(0),
    }
    push_field(&mut out, message.payload());
    for (name, value) in message.headers() {
        if !name.starts_with("wharf.delay.") {
            push_field(&mut out, name.as_bytes());
            push_field(&mut out, value);
        }
    }
    out
}

fn parse_number<T: std::str::FromStr>(
    at: &str,
    name: &str,
    text: Option<String>,
) -> Result<Option<T>, String> {
    text.map(|t| {
        t.parse()
            .map_err(|_| format!("{at}: header {name} is {t:?}, not a number"))
    })
    .transpose()
}

/// Reads a record back: an intact payload of this test, its key and user headers as sent,
/// and well-formed `wharf.*` headers (what they must be is checked per place later).
fn parse_stored(place: Place, message: &Message) -> Result<Stored, String> {
    let at = format!(
        "{}/{}/{}",
        message.topic(),
        message.partition(),
        message.offset()
    );
    let payload = message.payload();
    let id = id_of(payload).ok_or_else(|| {
        format!(
            "{at}: the payload is not one this test sent, or is damaged ({} bytes: {:02x?})",
            payload.len(),
            &payload[..payload.len().min(16)]
        )
    })?;
    if message.key() != key_for(id).as_deref() {
        return Err(format!(
            "{at} (id {id}): key {:?}, expected {:?}",
            message.key(),
            key_for(id)
        ));
    }
    let mut user = Vec::new();
    let mut own: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in message.headers() {
        if name.starts_with("wharf.") {
            let text = std::str::from_utf8(value)
                .map_err(|_| format!("{at}: header {name} is not UTF-8: {value:02x?}"))?;
            if own.insert(name.to_owned(), text.to_owned()).is_some() {
                return Err(format!("{at}: header {name} appears twice"));
            }
        } else {
            user.push((name.to_owned(), value.to_vec()));
        }
    }
    let expected_user: Vec<(String, Vec<u8>)> = user_header_for(id)
        .map(|v| (USER_HEADER.to_owned(), v))
        .into_iter()
        .collect();
    if user != expected_user {
        return Err(format!(
            "{at} (id {id}): user headers {user:?}, expected {expected_user:?}"
        ));
    }
    let origin = match (
        own.remove(ORIGIN_TOPIC),
        own.remove(ORIGIN_PARTITION),
        own.remove(ORIGIN_OFFSET),
    ) {
        (None, None, None) => None,
        (Some(topic), Some(p), Some(o)) if topic == TOPIC => Some((
            parse_number(&at, ORIGIN_PARTITION, Some(p))?.unwrap_or_default(),
            parse_number(&at, ORIGIN_OFFSET, Some(o))?.unwrap_or_default(),
        )),
        other => return Err(format!("{at} (id {id}): origin headers {other:?}")),
    };
    let origin_timestamp = parse_number(&at, ORIGIN_TIMESTAMP, own.remove(ORIGIN_TIMESTAMP))?;
    let count = parse_number(&at, RECONSUME_COUNT, own.remove(RECONSUME_COUNT))?;
    let first_failure = parse_number(&at, FIRST_FAILURE, own.remove(FIRST_FAILURE))?;
    let reason = own.remove(REASON);
    let target_topic = own.remove(DELAY_TARGET);
    let target_partition: Option<u32> = parse_number(
        &at,
        DELAY_TARGET_PARTITION,
        own.remove(DELAY_TARGET_PARTITION),
    )?;
    let target = match (target_topic, target_partition) {
        (None, None) => None,
        (Some(t), Some(p)) => Some((t, p)),
        other => return Err(format!("{at} (id {id}): delay target headers {other:?}")),
    };
    let due = parse_number(&at, DELAY_DUE, own.remove(DELAY_DUE))?;
    if !own.is_empty() {
        return Err(format!("{at} (id {id}): unknown wharf headers {own:?}"));
    }
    let fingerprint = match &target {
        Some((topic, partition)) => fingerprint(topic, *partition, message),
        None => fingerprint(message.topic(), message.partition(), message),
    };
    Ok(Stored {
        place,
        partition: message.partition(),
        offset: message.offset(),
        id,
        timestamp: message.timestamp().as_millis(),
        origin,
        origin_timestamp,
        count,
        first_failure,
        reason,
        target,
        due,
        fingerprint,
    })
}

/// A dead letter as listed: offset, origin, reconsume count, reason.
type Listed = (u64, Option<(u32, u64)>, u32, Option<String>);

/// Everything the directory holds, read through a Wharf the parent opened.
struct Snapshot {
    /// Per partition of [`TOPIC`], the records by offset (logs start at 0: no retention).
    topic: Vec<Vec<Stored>>,
    retry: Vec<Stored>,
    dlq: Vec<Stored>,
    /// Per lane of `%DELAY%` (lane k - 1 holds level k).
    delay: Vec<Vec<Stored>>,
    /// The group's committed offsets.
    committed: BTreeMap<(Src, u32), u64>,
    /// The scheduler's committed position per lane.
    progress: Vec<u64>,
    /// The internal topics that exist.
    internal: BTreeSet<&'static str>,
    /// `Admin::dead_letters`: (offset, origin, reconsume count, reason).
    dead_letters: Vec<Listed>,
}

impl Snapshot {
    fn read(wharf: &Wharf) -> Result<Snapshot, Vec<String>> {
        let mut problems = Vec::new();
        let mut internal = BTreeSet::new();
        let mut read = |topic: &'static str, partition: u32, place: Place| -> Vec<Stored> {
            let reader = match wharf.reader(topic, partition) {
                Ok(reader) => reader,
                Err(e) if matches!(e.kind(), ErrorKind::TopicNotFound { .. }) => {
                    return Vec::new();
                }
                Err(e) => {
                    problems.push(format!("reader of {topic}/{partition}: {e}"));
                    return Vec::new();
                }
            };
            if topic != TOPIC {
                internal.insert(topic);
            }
            if reader.start_offset() != 0 {
                problems.push(format!(
                    "{topic}/{partition} starts at {} (nothing is ever deleted here)",
                    reader.start_offset()
                ));
            }
            let (mut out, end) = (Vec::new(), reader.end_offset());
            while (out.len() as u64) < end {
                let at = out.len() as u64;
                let batch = match reader.read(at, ReadOptions::default().max_records(1_000)) {
                    Ok(batch) if !batch.is_empty() => batch,
                    Ok(_) => {
                        problems.push(format!(
                            "{topic}/{partition}: no record at {at} (end {end})"
                        ));
                        break;
                    }
                    Err(e) => {
                        problems.push(format!("{topic}/{partition}: reading at {at}: {e}"));
                        break;
                    }
                };
                for message in batch.to_messages() {
                    if message.offset() != out.len() as u64 {
                        problems.push(format!(
                            "{topic}/{partition}: record {} has offset {}",
                            out.len(),
                            message.offset()
                        ));
                        return out;
                    }
                    match parse_stored(place, &message) {
                        Ok(stored) => out.push(stored),
                        Err(e) => {
                            problems.push(e);
                            return out;
                        }
                    }
                }
            }
            out
        };
        let topic: Vec<Vec<Stored>> = (0..PARTITIONS)
            .map(|p| read(TOPIC, p, Place::Topic))
            .collect();
        let retry = read(RETRY_TOPIC, 0, Place::Retry);
        let dlq = read(DLQ_TOPIC, 0, Place::Dlq);
        let delay: Vec<Vec<Stored>> = (0..u32::from(LEVEL_COUNT))
            .map(|lane| read(DELAY_TOPIC, lane, Place::Delay))
            .collect();
        let mut committed = BTreeMap::new();
        match wharf.admin().describe_group(GROUP) {
            Ok(d) => {
                if let Some(damage) = &d.damage {
                    problems.push(format!("the group's offsets report damage: {damage}"));
                }
                for pd in &d.partitions {
                    let tp = &pd.lag.partition;
                    let Some(src) = Src::parse(&tp.topic) else {
                        problems.push(format!("the group committed {tp:?}"));
                        continue;
                    };
                    if let Some(c) = pd.lag.committed {
                        committed.insert((src, tp.partition), c);
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::GroupNotFound { .. }) => {}
            Err(e) => problems.push(format!("describe_group: {e}")),
        }
        let status = wharf.admin().delay_status();
        let progress: Vec<u64> = if internal.contains(DELAY_TOPIC) {
            if status.waiting.len() != delay.len() {
                problems.push(format!(
                    "delay_status lists {} lanes, the delay topic has {}",
                    status.waiting.len(),
                    delay.len()
                ));
            }
            delay
                .iter()
                .zip(status.waiting.iter().chain(std::iter::repeat(&0)))
                .map(|(lane, &waiting)| (lane.len() as u64).saturating_sub(waiting))
                .collect()
        } else {
            vec![0; usize::from(LEVEL_COUNT)]
        };
        let dead_letters = match wharf.admin().dead_letters(GROUP, 0, usize::MAX) {
            Ok(letters) => letters
                .into_iter()
                .map(|l| {
                    let origin = l.origin.map(|o| {
                        if o.topic != TOPIC {
                            problems.push(format!("dead letter {}: origin {o}", l.offset));
                        }
                        (o.partition, o.offset)
                    });
                    (l.offset, origin, l.reconsume_count, l.reason)
                })
                .collect(),
            Err(e) if matches!(e.kind(), ErrorKind::GroupNotFound { .. }) => Vec::new(),
            Err(e) => {
                problems.push(format!("dead_letters: {e}"));
                Vec::new()
            }
        };
        if problems.is_empty() {
            Ok(Snapshot {
                topic,
                retry,
                dlq,
                delay,
                committed,
                progress,
                internal,
                dead_letters,
            })
        } else {
            Err(problems)
        }
    }

    fn consumed(&self, (src, p, o): Loc) -> Option<&Stored> {
        match src {
            Src::Topic => self.topic.get(p as usize)?.get(o as usize),
            Src::Retry if p == 0 => self.retry.get(o as usize),
            Src::Retry => None,
        }
    }

    fn end(&self, src: Src, p: u32) -> u64 {
        match src {
            Src::Topic => self.topic[p as usize].len() as u64,
            Src::Retry => self.retry.len() as u64,
        }
    }

    fn committed(&self, src: Src, p: u32) -> u64 {
        self.committed.get(&(src, p)).copied().unwrap_or(0)
    }

    /// Every consumed partition.
    fn consumed_partitions() -> impl Iterator<Item = (Src, u32)> {
        (0..PARTITIONS)
            .map(|p| (Src::Topic, p))
            .chain(std::iter::once((Src::Retry, 0)))
    }
}

// ---------------------------------------------------------------------------------------------
// The parent's model and checks
// ---------------------------------------------------------------------------------------------

/// What the parent knows from its own appends and the children's reports.
struct Model {
    plan: u64,
    /// When the run started (ms since the epoch, real clock).
    run_start: i64,
    next_id: u64,
    /// The parent's appends: partition and offset of the topic -> id.
    appended: BTreeMap<(u32, u64), u64>,
    /// Delayed ids a child announced (`sending`), and where those whose send returned wait.
    sending: BTreeSet<u64>,
    sent: BTreeMap<u64, (u32, u64)>,
    /// Per consumed record: decisions announced (`deciding`) and returned (`decided`), over
    /// the whole run, with the kind announced.
    deciding: BTreeMap<Loc, (u32, Kind)>,
    decided: BTreeMap<Loc, u32>,
    /// Cycles in which each record was decided (a record decided in two is redelivered).
    decided_in: BTreeMap<Loc, BTreeSet<u32>>,
    /// What the previous check saw.
    committed: BTreeMap<(Src, u32), u64>,
    progress: Vec<u64>,
    internal: BTreeSet<&'static str>,
    /// For choosing kill points: deliveries still to come whose decision fails them, and
    /// records still to come from the retry topic.
    pending_failures: u64,
    pending_retries: u64,
    pending_dead_letters: u64,
    /// Log ends of the consumed partitions when the last child started.
    ends: BTreeMap<(Src, u32), u64>,
}

/// Counts from one check.
#[derive(Debug, Default, Clone)]
struct Tally {
    messages: u64,
    /// Messages in more than one of {pending, waiting, retrying, dead-lettered, acked}, at
    /// least one of them one of the first three.
    in_window: u64,
    /// Messages only dead-lettered or acked, more than once.
    settled_twice: u64,
    /// Extra retry copies of one (origin, count) in `%DELAY%`.
    retry_duplicates: u64,
    /// Extra dead letters of one message.
    dlq_duplicates: u64,
    /// Moved copies beyond the `%DELAY%` records they come from (moved twice).
    moved_twice: u64,
    /// Copies moved in the last run beyond the `%DELAY%` records that were still to move
    /// when it started (moved twice by one process, without a crash in between).
    moved_twice_in_one_run: u64,
    /// Records decided in more than one cycle (redelivered after a kill).
    redelivered: u64,
    dead_letters: u64,
    retry_records: u64,
    delay_records: u64,
}

/// Checks one child's reports against what the directory holds, and adds them to the model.
fn check_events(
    model: &mut Model,
    events: &[Event],
    snap: &Snapshot,
    cycle: u32,
    problems: &mut Vec<String>,
) {
    let mut deciding_now: BTreeMap<Loc, Kind> = BTreeMap::new();
    let mut last_deciding: Option<Loc> = None;
    let mut sending_now = BTreeSet::new();
    // The earliest due time of the `%DELAY%` records each moved record may come from.
    let mut due: BTreeMap<&[u8], i64> = BTreeMap::new();
    for s in snap.delay.iter().flatten() {
        if let Some(at) = s.due {
            let earliest = due.entry(&s.fingerprint).or_insert(at);
            *earliest = (*earliest).min(at);
        }
    }
    for event in events {
        match event {
            Event::Deciding {
                loc,
                id,
                count,
                kind,
                at,
            } => {
                let (src, p, o) = *loc;
                let moved = src == Src::Retry || !model.appended.contains_key(&(p, o));
                if let (true, Some(stored)) = (moved, snap.consumed(*loc)) {
                    match due.get(stored.fingerprint.as_slice()) {
                        Some(&due) if due <= *at => {}
                        due => problems.push(format!(
                            "the child was given {} at {at}, before it was due ({due:?})",
                            stored.at()
                        )),
                    }
                }
                match snap.consumed(*loc) {
                    None => problems.push(format!(
                        "the child decided {}/{p}/{o} (id {id}, count {count}), which the log \
                         does not hold (end {})",
                        src.name(),
                        snap.end(src, p)
                    )),
                    Some(stored) if stored.id != *id || stored.stage() != *count => {
                        problems.push(format!(
                            "the child decided {}/{p}/{o} as id {id} with count {count}, the log \
                             holds {} with count {}",
                            src.name(),
                            stored.at(),
                            stored.stage()
                        ));
                    }
                    Some(_) => {}
                }
                let planned = action(model.plan, *id, *count).kind();
                if *kind != planned {
                    problems.push(format!(
                        "the child decided {loc:?} as {kind:?}, the plan says {planned:?}"
                    ));
                }
                let before = model.committed.get(&(src, p)).copied().unwrap_or(0);
                if o < before {
                    problems.push(format!(
                        "the child was given {}/{p}/{o} (id {id}), below the committed offset \
                         {before} it started from",
                        src.name()
                    ));
                }
                if deciding_now.insert(*loc, *kind).is_some() {
                    problems.push(format!(
                        "the child was given {}/{p}/{o} (id {id}) twice in one run",
                        src.name()
                    ));
                }
                let entry = model.deciding.entry(*loc).or_insert((0, *kind));
                entry.0 += 1;
                last_deciding = Some(*loc);
                model.decided_in.entry(*loc).or_default().insert(cycle);
            }
            Event::Decided { loc } => {
                if last_deciding.take() != Some(*loc) {
                    problems.push(format!("decided {loc:?} without deciding it first"));
                }
                *model.decided.entry(*loc).or_insert(0) += 1;
            }
            Event::Sending { id } => {
                if *id >> 32 != u64::from(cycle) + 1 {
                    problems.push(format!("cycle {cycle}'s child sent delayed id {id:#x}"));
                }
                sending_now.insert(*id);
                model.sending.insert(*id);
            }
            Event::Sent { id, lane, offset } => {
                if !sending_now.contains(id) {
                    problems.push(format!("sent {id} without sending it first"));
                }
                model.sent.insert(*id, (*lane, *offset));
            }
            Event::Error(e) => problems.push(format!("the child reported an error: {e}")),
            Event::Opening | Event::Ready => {}
        }
    }
}

/// Indexes of a snapshot.
struct Index<'a> {
    /// Retry copies waiting in (or moved out of) `%DELAY%`, by (origin, count).
    delayed_copies: BTreeMap<((u32, u64), u32), Vec<&'a Stored>>,
    /// Records of the retry topic, by (origin, count).
    retried: BTreeMap<((u32, u64), u32), Vec<&'a Stored>>,
    /// Dead letters by origin.
    dead: BTreeMap<(u32, u64), Vec<&'a Stored>>,
    /// `%DELAY%` records by fingerprint: all, and those below the scheduler's progress.
    delay_all: BTreeMap<&'a [u8], u64>,
    delay_moved: BTreeMap<&'a [u8], u64>,
    /// Records of the topic and the retry topic by fingerprint.
    targets: BTreeMap<&'a [u8], u64>,
}

impl<'a> Index<'a> {
    fn new(snap: &'a Snapshot) -> Self {
        let mut index = Index {
            delayed_copies: BTreeMap::new(),
            retried: BTreeMap::new(),
            dead: BTreeMap::new(),
            delay_all: BTreeMap::new(),
            delay_moved: BTreeMap::new(),
            targets: BTreeMap::new(),
        };
        for (lane, records) in snap.delay.iter().enumerate() {
            for s in records {
                *index.delay_all.entry(&s.fingerprint).or_default() += 1;
                if s.offset < snap.progress[lane] {
                    *index.delay_moved.entry(&s.fingerprint).or_default() += 1;
                }
                if let (Some(origin), Some(count)) = (s.origin, s.count) {
                    index
                        .delayed_copies
                        .entry((origin, count))
                        .or_default()
                        .push(s);
                }
            }
        }
        for s in snap.topic.iter().flatten().chain(&snap.retry) {
            *index.targets.entry(&s.fingerprint).or_default() += 1;
        }
        for s in &snap.retry {
            if let (Some(origin), Some(count)) = (s.origin, s.count) {
                index.retried.entry((origin, count)).or_default().push(s);
            }
        }
        for s in &snap.dlq {
            if let Some(origin) = s.origin {
                index.dead.entry(origin).or_default().push(s);
            }
        }
        index
    }

    /// Whether the record at stage `count` of `origin` that `next` follows exists: the origin
    /// itself for count 0, else a retry-topic record with that count and the same first
    /// failure.
    fn has_predecessor(
        &self,
        snap: &Snapshot,
        origin: (u32, u64),
        count: u32,
        next: &Stored,
    ) -> bool {
        if count == 0 {
            return snap
                .topic
                .get(origin.0 as usize)
                .and_then(|p| p.get(origin.1 as usize))
                .is_some_and(|o| o.id == next.id);
        }
        self.retried
            .get(&(origin, count))
            .is_some_and(|v| v.iter().any(|r| r.first_failure == next.first_failure))
    }
}

/// Checks the whole directory against the plan and the model (see the module docs); `last`
/// also requires that everything was consumed to its end.
fn check_snapshot(model: &Model, snap: &Snapshot, last: bool, problems: &mut Vec<String>) -> Tally {
    let index = Index::new(snap);
    let mut checker = Checker {
        model,
        snap,
        index: &index,
        plan: model.plan,
        run: model.run_start - 5_000..=now_millis() + 5_000,
        last,
        problems: Vec::new(),
        tally: Tally::default(),
    };
    checker.appends();
    checker.topic_records();
    checker.delay_records();
    checker.retry_records();
    checker.dead_letters();
    checker.scheduler();
    checker.offsets();
    checker.calls();
    checker.no_loss();
    checker.states();
    problems.append(&mut checker.problems);
    checker.tally
}

/// One check of a snapshot: what it found wrong, and what it counted.
struct Checker<'a> {
    model: &'a Model,
    snap: &'a Snapshot,
    index: &'a Index<'a>,
    plan: u64,
    /// When a failure may have happened (the run, with a margin).
    run: std::ops::RangeInclusive<i64>,
    last: bool,
    problems: Vec<String>,
    tally: Tally,
}

impl Checker<'_> {
    /// The parent's appends are where they were acked.
    fn appends(&mut self) {
        for (&(p, o), &id) in &self.model.appended {
            match self.snap.topic[p as usize].get(o as usize) {
                Some(s) if s.id == id => {}
                found => self.problems.push(format!(
                    "{TOPIC}/{p}/{o}: the parent appended id {id} there (Fsync), found {:?}",
                    found.map(Stored::at)
                )),
            }
        }
    }

    /// The origin a copy names, if it is a record of the topic with the same id, whose
    /// timestamp the copy carries (a retry copy also keeps it as its own; a dead letter is
    /// stamped when it is dead-lettered).
    fn origin_of(&mut self, s: &Stored) -> Option<(u32, u64)> {
        let Some(origin) = s.origin else {
            self.problems.push(format!("{}: no origin headers", s.at()));
            return None;
        };
        match self
            .snap
            .topic
            .get(origin.0 as usize)
            .and_then(|p| p.get(origin.1 as usize))
        {
            Some(o)
                if o.id == s.id
                    && s.origin_timestamp == Some(o.timestamp)
                    && (s.place == Place::Dlq || o.timestamp == s.timestamp) =>
            {
                Some(origin)
            }
            found => {
                self.problems.push(format!(
                    "{}: origin {TOPIC}/{}/{} holds {:?} (timestamp {:?}), expected the same id \
                     with timestamp {:?} (the copy's own timestamp is {})",
                    s.at(),
                    origin.0,
                    origin.1,
                    found.map(Stored::at),
                    found.map(|f| f.timestamp),
                    s.origin_timestamp,
                    s.timestamp
                ));
                None
            }
        }
    }

    /// The history headers of a retry copy with reconsume count `count`.
    fn copy_headers(&mut self, s: &Stored, count: u32) {
        let fate = fate(self.plan, s.id);
        if count == 0 || count > fate.retries {
            self.problems.push(format!(
                "{}: a retry copy with reconsume count {count}; the plan ({fate:?}) makes copies \
                 with counts 1 to {} (max_reconsume_times {MAX_RECONSUME})",
                s.at(),
                fate.retries
            ));
        }
        let reason = reason_at(self.plan, s.id, count);
        if s.reason != reason {
            self.problems.push(format!(
                "{}: reason {:?}, expected {reason:?}",
                s.at(),
                s.reason
            ));
        }
        if !s.first_failure.is_some_and(|f| self.run.contains(&f)) {
            self.problems.push(format!(
                "{}: first failure {:?}, expected a time within the run",
                s.at(),
                s.first_failure
            ));
        }
    }

    /// The topic holds the parent's appends and moved delayed sends, without wharf headers.
    fn topic_records(&mut self) {
        let (snap, index) = (self.snap, self.index);
        for (p, records) in snap.topic.iter().enumerate() {
            for s in records {
                if s.origin.is_some()
                    || s.origin_timestamp.is_some()
                    || s.count.is_some()
                    || s.first_failure.is_some()
                    || s.reason.is_some()
                    || s.target.is_some()
                    || s.due.is_some()
                {
                    self.problems
                        .push(format!("{}: wharf headers in the topic: {s:?}", s.at()));
                }
                if self.model.appended.contains_key(&(p as u32, s.offset)) {
                    continue;
                }
                // Not the parent's: the move of a delayed send.
                if !is_delayed_id(s.id) || delayed_partition(s.id) != p as u32 {
                    self.problems.push(format!(
                        "{}: neither appended by the parent nor a delayed send to this partition",
                        s.at()
                    ));
                }
                if !index.delay_all.contains_key(s.fingerprint.as_slice()) {
                    self.problems.push(format!(
                        "{}: not the move of any {DELAY_TOPIC} record (a record from nowhere)",
                        s.at()
                    ));
                }
            }
        }
    }

    /// `%DELAY%` holds delayed sends (each once, where its receipt said) and retry copies
    /// (in the lane of the planned level, each following an earlier stage of its message).
    fn delay_records(&mut self) {
        let snap = self.snap;
        let mut delayed_sends: BTreeMap<u64, Vec<&Stored>> = BTreeMap::new();
        for (lane, records) in snap.delay.iter().enumerate() {
            for s in records {
                let Some((target, target_partition)) = &s.target else {
                    self.problems.push(format!("{}: no delay target", s.at()));
                    continue;
                };
                if s.due.is_none() {
                    self.problems.push(format!("{}: no due time", s.at()));
                }
                if target == TOPIC {
                    delayed_sends.entry(s.id).or_default().push(s);
                    self.delayed_send(s, lane, *target_partition);
                } else if target == RETRY_TOPIC {
                    if *target_partition != 0 {
                        self.problems.push(format!(
                            "{}: retry copy for partition {target_partition}",
                            s.at()
                        ));
                    }
                    self.delayed_copy(s, lane);
                } else {
                    self.problems
                        .push(format!("{}: delay target {target}", s.at()));
                }
            }
        }
        for (id, copies) in &delayed_sends {
            if copies.len() > 1 {
                self.problems.push(format!(
                    "delayed id {id} waits in {DELAY_TOPIC} {} times (sent once): {:?}",
                    copies.len(),
                    copies.iter().map(|s| s.at()).collect::<Vec<_>>()
                ));
            }
        }
        for (id, &(lane, offset)) in &self.model.sent {
            let found = snap
                .delay
                .get(lane as usize)
                .and_then(|l| l.get(offset as usize));
            if !found
                .is_some_and(|s| s.id == *id && s.target.as_ref().is_some_and(|t| t.0 == TOPIC))
            {
                self.problems.push(format!(
                    "the delayed send of {id} returned {DELAY_TOPIC}/{lane}/{offset}, which holds \
                     {:?} (lost)",
                    found.map(Stored::at)
                ));
            }
        }
    }

    fn delayed_send(&mut self, s: &Stored, lane: usize, target_partition: u32) {
        if s.origin.is_some()
            || s.origin_timestamp.is_some()
            || s.count.is_some()
            || s.reason.is_some()
        {
            self.problems.push(format!(
                "{}: retry headers on a delayed send: {s:?}",
                s.at()
            ));
        }
        if !self.model.sending.contains(&s.id)
            || lane != usize::from(delayed_level(s.id)) - 1
            || target_partition != delayed_partition(s.id)
        {
            self.problems.push(format!(
                "{}: a delayed send to {TOPIC}/{target_partition} in lane {lane}, but no child \
                 announced it, or it was sent at level {} to partition {}",
                s.at(),
                delayed_level(s.id),
                delayed_partition(s.id)
            ));
        }
    }

    fn delayed_copy(&mut self, s: &Stored, lane: usize) {
        let count = s.stage();
        self.copy_headers(s, count);
        let Some(origin) = self.origin_of(s) else {
            return;
        };
        if count == 0 {
            return; // reported by copy_headers
        }
        match outcome(self.plan, s.id, count - 1) {
            Outcome::Retry { level, .. } if lane == usize::from(level) - 1 => {}
            planned => self.problems.push(format!(
                "{}: a retry copy with count {count} in lane {lane} (level {}); the plan's \
                 decision at count {} is {planned:?}",
                s.at(),
                lane + 1,
                count - 1
            )),
        }
        if count >= 2 && !self.index.has_predecessor(self.snap, origin, count - 1, s) {
            self.problems.push(format!(
                "{}: retry copy with count {count} of origin {origin:?}, but the retry topic \
                 holds no copy with count {} and the same first failure {:?} (a history that \
                 never happened)",
                s.at(),
                count - 1,
                s.first_failure
            ));
        }
    }

    /// The retry topic holds moved retry copies.
    fn retry_records(&mut self) {
        let (snap, index) = (self.snap, self.index);
        for s in &snap.retry {
            if s.target.is_some() || s.due.is_some() {
                self.problems
                    .push(format!("{}: delay headers in the retry topic", s.at()));
            }
            self.copy_headers(s, s.stage());
            self.origin_of(s);
            if !index.delay_all.contains_key(s.fingerprint.as_slice()) {
                self.problems.push(format!(
                    "{}: not the move of any {DELAY_TOPIC} record (a copy from nowhere)",
                    s.at()
                ));
            }
        }
    }

    /// The DLQ holds exactly the planned dead letters, each following the stage it ends;
    /// `Admin::dead_letters` lists them.
    fn dead_letters(&mut self) {
        let snap = self.snap;
        for s in &snap.dlq {
            if s.target.is_some() || s.due.is_some() {
                self.problems
                    .push(format!("{}: delay headers in the DLQ", s.at()));
            }
            let count = s.stage();
            match planned_dead_letter(self.plan, s.id) {
                Some((c, reason)) if c == count && s.reason.as_deref() == Some(&reason) => {}
                planned => self.problems.push(format!(
                    "{}: dead letter with count {count} and reason {:?}; the plan ({:?}) ends \
                     with {planned:?}",
                    s.at(),
                    s.reason,
                    fate(self.plan, s.id),
                )),
            }
            if !s.first_failure.is_some_and(|f| self.run.contains(&f)) {
                self.problems
                    .push(format!("{}: first failure {:?}", s.at(), s.first_failure));
            }
            // Stamped when dead-lettered: at or after the first failure, within the run.
            if !(self.run.contains(&s.timestamp)
                && s.first_failure.is_some_and(|f| f <= s.timestamp))
            {
                self.problems.push(format!(
                    "{}: dead-lettered at {}, first failure {:?}",
                    s.at(),
                    s.timestamp,
                    s.first_failure
                ));
            }
            let Some(origin) = self.origin_of(s) else {
                continue;
            };
            if count >= 1 && !self.index.has_predecessor(snap, origin, count, s) {
                self.problems.push(format!(
                    "{}: dead letter with count {count} of origin {origin:?}, but the retry topic \
                     holds no copy with that count and first failure {:?}",
                    s.at(),
                    s.first_failure
                ));
            }
        }
        let listed: Vec<Listed> = snap
            .dlq
            .iter()
            .map(|s| (s.offset, s.origin, s.stage(), s.reason.clone()))
            .collect();
        if listed != snap.dead_letters {
            self.problems.push(format!(
                "Admin::dead_letters lists {:?}, the DLQ holds {listed:?}",
                snap.dead_letters
            ));
        }
    }

    /// What the scheduler recorded as moved was moved (at least as often); within one run it
    /// moved each record at most once; counts the records moved twice (across crashes).
    fn scheduler(&mut self) {
        let (snap, index, model) = (self.snap, self.index, self.model);
        let delay_records = || snap.delay.iter().flatten();
        for (fp, &moved) in &index.delay_moved {
            let copies = index.targets.get(fp).copied().unwrap_or(0);
            if copies < moved {
                let example = delay_records()
                    .find(|s| s.fingerprint.as_slice() == *fp)
                    .map(Stored::at);
                self.problems.push(format!(
                    "{example:?}: {moved} such record(s) below the scheduler's progress {:?}, \
                     but {copies} moved copies in the target (lost by the scheduler)",
                    snap.progress
                ));
            }
        }
        for (fp, &copies) in &index.targets {
            // Records with no source in `%DELAY%` (the parent's appends) are not moves.
            if let Some(&sources) = index.delay_all.get(fp) {
                self.tally.moved_twice += copies.saturating_sub(sources);
            }
        }
        // The last run appended only moved copies to the topic and the retry topic.
        let mut new_copies: BTreeMap<&[u8], u64> = BTreeMap::new();
        for s in snap.topic.iter().flatten().chain(&snap.retry) {
            let src = if s.place == Place::Retry {
                Src::Retry
            } else {
                Src::Topic
            };
            if s.offset >= model.ends.get(&(src, s.partition)).copied().unwrap_or(0) {
                *new_copies.entry(&s.fingerprint).or_default() += 1;
            }
        }
        let mut pending_at_start: BTreeMap<&[u8], u64> = BTreeMap::new();
        for (lane, records) in snap.delay.iter().enumerate() {
            let from = model.progress.get(lane).copied().unwrap_or(0) as usize;
            for s in records.iter().skip(from) {
                *pending_at_start.entry(&s.fingerprint).or_default() += 1;
            }
        }
        for (fp, &new) in &new_copies {
            let Some(&all) = index.delay_all.get(fp) else {
                continue;
            };
            let was_pending = pending_at_start.get(fp).copied().unwrap_or(0);
            if new > was_pending {
                self.tally.moved_twice_in_one_run += new - was_pending;
                self.problems.push(format!(
                    "the last run moved {new} copies of {:?} ({all} such record(s) in \
                     {DELAY_TOPIC}, {was_pending} of them still to move when it started): moved \
                     twice by one process, without a crash between the move and its progress",
                    delay_records()
                        .filter(|s| s.fingerprint.as_slice() == *fp)
                        .map(Stored::at)
                        .collect::<Vec<_>>()
                ));
            }
        }
    }

    /// Committed offsets and the scheduler's progress: forward only, within the log (at the
    /// end after the final drain); internal topics never disappear.
    fn offsets(&mut self) {
        let (snap, model, last) = (self.snap, self.model, self.last);
        for (src, p) in Snapshot::consumed_partitions() {
            let now = snap.committed.get(&(src, p)).copied();
            let before = model.committed.get(&(src, p)).copied();
            let end = snap.end(src, p);
            if now < before {
                self.problems.push(format!(
                    "the committed offset of {}/{p} went back from {before:?} to {now:?}",
                    src.name()
                ));
            }
            if now.is_some_and(|c| c > end) {
                self.problems.push(format!(
                    "the committed offset {now:?} of {}/{p} is past the log end {end}",
                    src.name(),
                ));
            }
            if last && now.unwrap_or(0) != end {
                self.problems.push(format!(
                    "after the final drain {}/{p} is committed at {now:?}, its end is {end}",
                    src.name(),
                ));
            }
        }
        for (lane, (&now, &before)) in snap.progress.iter().zip(&model.progress).enumerate() {
            if now < before {
                self.problems.push(format!(
                    "the scheduler's progress in lane {lane} went back from {before} to {now}"
                ));
            }
            if last && now != snap.delay[lane].len() as u64 {
                self.problems.push(format!(
                    "after the final drain lane {lane} of {DELAY_TOPIC} is moved up to {now} of \
                     {}",
                    snap.delay[lane].len()
                ));
            }
        }
        for topic in &model.internal {
            if !snap.internal.contains(topic) {
                self.problems
                    .push(format!("the internal topic {topic} disappeared"));
            }
        }
    }

    /// Copies come only from calls: no stage of a message has more retry copies, or more dead
    /// letters, than calls that write them were announced; counts the extra ones.
    fn calls(&mut self) {
        let (snap, index) = (self.snap, self.index);
        let mut retry_calls: BTreeMap<((u32, u64), u32), u32> = BTreeMap::new();
        let mut dlq_calls: BTreeMap<((u32, u64), u32), u32> = BTreeMap::new();
        for (&loc, &(calls, _)) in &self.model.deciding {
            let Some(s) = snap.consumed(loc) else {
                continue;
            };
            let Some(origin) = s.origin_or_self() else {
                continue;
            };
            let calls_of = match outcome(self.plan, s.id, s.stage()) {
                Outcome::Done => continue,
                Outcome::Retry { .. } => &mut retry_calls,
                Outcome::DeadLetter { .. } => &mut dlq_calls,
            };
            *calls_of.entry((origin, s.stage())).or_default() += calls;
        }
        for (&(origin, count), copies) in &index.delayed_copies {
            let calls = count
                .checked_sub(1)
                .and_then(|stage| retry_calls.get(&(origin, stage)))
                .copied()
                .unwrap_or(0);
            if copies.len() as u32 > calls {
                self.problems.push(format!(
                    "{} retry copies with count {count} of origin {origin:?} ({:?}), but only \
                     {calls} retry calls were made on its previous stage",
                    copies.len(),
                    copies.iter().map(|s| s.at()).collect::<Vec<_>>(),
                ));
            }
            self.tally.retry_duplicates += copies.len() as u64 - 1;
        }
        for (&origin, letters) in &index.dead {
            let mut per_count: BTreeMap<u32, u32> = BTreeMap::new();
            for s in letters {
                *per_count.entry(s.stage()).or_default() += 1;
            }
            for (count, n) in per_count {
                let calls = dlq_calls.get(&(origin, count)).copied().unwrap_or(0);
                if n > calls {
                    self.problems.push(format!(
                        "{n} dead letters with count {count} of origin {origin:?}, but only \
                         {calls} calls that dead-letter it were made"
                    ));
                }
            }
            self.tally.dlq_duplicates += letters.len() as u64 - 1;
        }
    }

    /// Why the copy the decision on `s` (a stage of `origin`) writes is missing, if it is.
    fn missing_successor(&self, s: &Stored, origin: (u32, u64)) -> Option<String> {
        let count = s.stage();
        // From the second stage on, the copies carry the first failure of the stage before.
        let same_history = |c: &&Stored| count == 0 || c.first_failure == s.first_failure;
        match outcome(self.plan, s.id, count) {
            Outcome::Done => None,
            Outcome::Retry { count: next, .. } => {
                let copies = self.index.delayed_copies.get(&(origin, next));
                (!copies.is_some_and(|v| v.iter().any(same_history))).then(|| {
                    format!("no retry copy with count {next} of origin {origin:?} in {DELAY_TOPIC}")
                })
            }
            Outcome::DeadLetter { count: c, .. } => {
                let letters = self.index.dead.get(&origin);
                let found =
                    letters.is_some_and(|v| v.iter().filter(|d| d.stage() == c).any(same_history));
                (!found).then(|| format!("no dead letter with count {c} of origin {origin:?}"))
            }
        }
    }

    /// No loss: every decision that returned has its copy; every record below a committed
    /// offset had a decision that returned.
    fn no_loss(&mut self) {
        let snap = self.snap;
        for &loc in self.model.decided.keys() {
            let Some(s) = snap.consumed(loc) else {
                self.problems
                    .push(format!("the decided record {loc:?} is gone"));
                continue;
            };
            let Some(origin) = s.origin_or_self() else {
                continue;
            };
            if let Some(missing) = self.missing_successor(s, origin) {
                self.problems.push(format!(
                    "{}: its decision ({:?}) returned, but {missing} (lost)",
                    s.at(),
                    action(self.plan, s.id, s.stage())
                ));
            }
        }
        for (src, p) in Snapshot::consumed_partitions() {
            for o in 0..snap.committed(src, p).min(snap.end(src, p)) {
                if !self.model.decided.contains_key(&(src, p, o)) {
                    let at = snap.consumed((src, p, o)).map(Stored::at);
                    self.problems.push(format!(
                        "{at:?} is below the committed offset {} of {}/{p}, but no decision on \
                         it ever returned (skipped: lost)",
                        snap.committed(src, p),
                        src.name()
                    ));
                }
            }
        }
    }

    /// Each message (each record of the topic) is somewhere: pending, waiting in `%DELAY%`,
    /// pending in the retry topic, dead-lettered or acked; in more than one of them only in
    /// the duplicate window (counted); after the final drain only where its plan ends.
    fn states(&mut self) {
        let (snap, index, plan) = (self.snap, self.index, self.plan);
        let mut states: BTreeMap<(u32, u64), [u64; 5]> = BTreeMap::new();
        for (p, records) in snap.topic.iter().enumerate() {
            for s in records {
                let pending = s.offset >= snap.committed(Src::Topic, p as u32);
                states.entry((p as u32, s.offset)).or_default()[0] += u64::from(pending);
            }
        }
        for (lane, records) in snap.delay.iter().enumerate() {
            for s in records.iter().skip(snap.progress[lane] as usize) {
                if let Some(origin) = s.origin {
                    states.entry(origin).or_default()[1] += 1;
                }
            }
        }
        let retrying = snap.committed(Src::Retry, 0) as usize;
        for s in snap.retry.iter().skip(retrying) {
            if let Some(origin) = s.origin {
                states.entry(origin).or_default()[2] += 1;
            }
        }
        for (&origin, letters) in &index.dead {
            states.entry(origin).or_default()[3] += letters.len() as u64;
        }
        for (&loc, &n) in &self.model.decided {
            if let Some(s) = snap.consumed(loc) {
                if let (Some(origin), Action::Ack) =
                    (s.origin_or_self(), action(plan, s.id, s.stage()))
                {
                    states.entry(origin).or_default()[4] += u64::from(n);
                }
            }
        }
        let mut window_examples = Vec::new();
        for (&origin, counts) in &states {
            let Some(s) = snap
                .topic
                .get(origin.0 as usize)
                .and_then(|p| p.get(origin.1 as usize))
            else {
                continue; // reported: an origin naming no record
            };
            self.tally.messages += 1;
            let total: u64 = counts.iter().sum();
            let planned_dlq = planned_dead_letter(plan, s.id).is_some();
            if total == 0 {
                self.problems.push(format!(
                    "{}: the message is nowhere: not pending, not waiting in {DELAY_TOPIC}, not \
                     in the retry topic, not dead-lettered, not acked (lost; plan {:?})",
                    s.at(),
                    fate(plan, s.id)
                ));
            } else if total > 1 {
                // Still moving while another copy exists or is done, or done more than once.
                if counts[..3].iter().any(|&n| n > 0) {
                    self.tally.in_window += 1;
                    if window_examples.len() < 3 {
                        window_examples.push(format!("{} {counts:?}", s.at()));
                    }
                } else {
                    self.tally.settled_twice += 1;
                }
            }
            if planned_dlq && counts[4] > 0 || !planned_dlq && counts[3] > 0 {
                self.problems.push(format!(
                    "{}: acked {} times and dead-lettered {} times, but the plan ({:?}) ends in \
                     only one of them",
                    s.at(),
                    counts[4],
                    counts[3],
                    fate(plan, s.id)
                ));
            }
            if self.last {
                let terminal = if planned_dlq { counts[3] } else { counts[4] };
                if counts[..3].iter().any(|&n| n > 0) || terminal == 0 {
                    self.problems.push(format!(
                        "{}: after the final drain the message is pending/waiting/retrying \
                         {:?} and {} {terminal} times (plan {:?})",
                        s.at(),
                        &counts[..3],
                        if planned_dlq {
                            "dead-lettered"
                        } else {
                            "acked"
                        },
                        fate(plan, s.id)
                    ));
                }
            }
        }
        if !window_examples.is_empty() && std::env::var_os(VERBOSE_ENV).is_some() {
            println!(
                "  in the duplicate window (pending, waiting, retrying, dlq, acked): \
                 {window_examples:?}"
            );
        }
        self.tally.redelivered = self
            .model
            .decided_in
            .values()
            .filter(|cycles| cycles.len() > 1)
            .count() as u64;
        self.tally.dead_letters = snap.dlq.len() as u64;
        self.tally.retry_records = snap.retry.len() as u64;
        self.tally.delay_records = snap.delay.iter().map(|l| l.len() as u64).sum();
    }
}

/// After a check: what the next child will find, for choosing its kill point.
fn count_pending(model: &mut Model, snap: &Snapshot) {
    let plan = model.plan;
    let fails = |s: &Stored| action(plan, s.id, s.stage()) != Action::Ack;
    let dies = |s: &Stored| matches!(outcome(plan, s.id, s.stage()), Outcome::DeadLetter { .. });
    let (mut failures, mut retries, mut dead) = (0, 0, 0);
    for (src, p) in Snapshot::consumed_partitions() {
        for o in snap.committed(src, p)..snap.end(src, p) {
            if let Some(s) = snap.consumed((src, p, o)) {
                failures += u64::from(fails(s));
                dead += u64::from(dies(s));
                retries += u64::from(src == Src::Retry);
            }
        }
    }
    for (lane, records) in snap.delay.iter().enumerate() {
        for s in records.iter().skip(snap.progress[lane] as usize) {
            failures += u64::from(fails(s));
            dead += u64::from(dies(s));
            retries += u64::from(s.origin.is_some());
        }
    }
    model.pending_failures = failures;
    model.pending_retries = retries;
    model.pending_dead_letters = dead;
}

/// Notes the log ends of the consumed partitions (before the next child runs).
fn record_ends(wharf: &Wharf, model: &mut Model) {
    for (src, p) in Snapshot::consumed_partitions() {
        let end = wharf.reader(src.name(), p).map_or(0, |r| r.end_offset());
        model.ends.insert((src, p), end);
    }
}

/// Opens the directory on a clock frozen an hour before the run: nothing is due on it, so
/// the scheduler moves nothing while the parent looks.
fn open_frozen(dir: &Path, model: &Model) -> wharf::Result<Wharf> {
    let frozen = ManualClock::new(Timestamp::from_millis(model.run_start - 3_600_000));
    Wharf::builder(dir)
        .clock(Arc::new(frozen))
        .delay_levels(levels())
        .open()
}

/// Appends `count` records (Fsync, stamped with the real time) and adds them to the model.
fn append(wharf: &Wharf, model: &mut Model, count: u64, rng: &mut Rng) {
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    let mut records = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..count {
        let id = model.next_id;
        model.next_id += 1;
        let p = rng.below(u64::from(PARTITIONS)) as u32;
        records.push(record_for(id).partition(p).timestamp(Timestamp::now()));
        ids.push(id);
    }
    if records.is_empty() {
        return;
    }
    let receipts = producer.send_batch(records).expect("append");
    for (id, receipt) in ids.into_iter().zip(receipts) {
        assert_eq!(
            receipt.topic(),
            TOPIC,
            "the parent's append landed elsewhere"
        );
        model
            .appended
            .insert((receipt.partition(), receipt.offset()), id);
        if action(model.plan, id, 0) != Action::Ack {
            model.pending_failures += 1;
        }
        if matches!(outcome(model.plan, id, 0), Outcome::DeadLetter { .. }) {
            model.pending_dead_letters += 1;
        }
    }
}

fn fail_on(problems: &[String], context: &str) {
    assert!(
        problems.is_empty(),
        "{context}: {} problems:\n{}{}",
        problems.len(),
        problems
            .iter()
            .take(SHOWN_PROBLEMS)
            .fold(String::new(), |mut out, p| {
                let _ = writeln!(out, "  - {p}");
                out
            }),
        if problems.len() > SHOWN_PROBLEMS {
            "  …\n"
        } else {
            ""
        }
    );
}

/// Reads and checks the directory through `wharf`; updates the model with what it saw.
fn check_all(
    wharf: &Wharf,
    model: &mut Model,
    events: &[Event],
    cycle: u32,
    last: bool,
    context: &str,
) -> (Snapshot, Tally) {
    let snap = Snapshot::read(wharf).unwrap_or_else(|problems| {
        fail_on(&problems, context);
        unreachable!()
    });
    let mut problems = Vec::new();
    check_events(model, events, &snap, cycle, &mut problems);
    let tally = check_snapshot(model, &snap, last, &mut problems);
    fail_on(&problems, context);
    model.committed.clone_from(&snap.committed);
    model.progress.clone_from(&snap.progress);
    model.internal.clone_from(&snap.internal);
    count_pending(model, &snap);
    (snap, tally)
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

/// When the parent kills the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillAt {
    /// This long after the spawn: before or while the child opens the directory.
    Spawn(Duration),
    /// This long after the child is ready to consume (scheduler moves and calls in flight).
    Ready(Duration),
    /// As soon as the child announced its k-th retry or dead-letter call (during the write
    /// of the copy).
    Deciding(u64),
    /// As soon as the child's k-th retry or dead-letter call returned (the copy written, the
    /// original not yet committed).
    Decided(u64),
    /// As soon as the child announced its k-th call that dead-letters (`dead_letter`, or the
    /// retry after the last allowed one): during the write to `%DLQ%<group>`.
    DeadLettering(u64),
    /// As soon as the child was given its k-th record from the retry topic.
    Retried(u64),
    /// As soon as the child's k-th delayed send returned.
    Sent(u64),
}

impl KillAt {
    fn name(self) -> &'static str {
        match self {
            KillAt::Spawn(_) => "spawn",
            KillAt::Ready(_) => "delay",
            KillAt::Deciding(_) => "during a retry/dlq call",
            KillAt::Decided(_) => "after a retry/dlq call",
            KillAt::DeadLettering(_) => "during a dead-lettering call",
            KillAt::Retried(_) => "after a retry delivery",
            KillAt::Sent(_) => "after a delayed send",
        }
    }
}

fn is_failing_deciding(e: &Event) -> bool {
    matches!(
        e,
        Event::Deciding {
            kind: Kind::Nack | Kind::DeadLetter,
            ..
        }
    )
}

#[derive(Debug, Default)]
struct Totals {
    kills: BTreeMap<&'static str, u32>,
    /// Cycles with `commit_ack` Fsync / Write.
    commit_ack: [u32; 2],
    acks: u64,
    retries: u64,
    dead_letter_calls: u64,
    delayed_sends: u64,
    /// Kills that left a returned retry or dead-letter call whose original was not committed.
    kills_in_window: u32,
    /// Most messages seen in the duplicate window after one kill.
    max_in_window: u64,
    /// Records the scheduler moved twice within one process.
    moved_twice_in_one_run: u64,
}

#[test]
fn retried_and_dead_lettered_records_survive_kill_9() {
    let seed = std::env::var(SEED_ENV).map_or_else(
        |_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        },
        |s| s.parse().expect("WHARF_RETRY_KILL_SEED must be a u64"),
    );
    let cycles: u32 = std::env::var(CYCLES_ENV).map_or(DEFAULT_CYCLES, |s| {
        s.parse().expect("WHARF_RETRY_KILL_CYCLES must be a number")
    });
    println!("retry_kill: seed {seed}, {cycles} cycles (replay with {SEED_ENV}={seed})");
    let watchdog = Watchdog::start(
        "retried_and_dead_lettered_records_survive_kill_9",
        Duration::from_secs(300) + Duration::from_secs(3) * cycles,
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut rng = Rng::new(mix(seed, 0xc0de));
    let mut model = Model {
        plan: mix(seed, 0x91a7),
        run_start: now_millis(),
        next_id: 0,
        appended: BTreeMap::new(),
        sending: BTreeSet::new(),
        sent: BTreeMap::new(),
        deciding: BTreeMap::new(),
        decided: BTreeMap::new(),
        decided_in: BTreeMap::new(),
        committed: BTreeMap::new(),
        progress: vec![0; usize::from(LEVEL_COUNT)],
        internal: BTreeSet::new(),
        pending_failures: 0,
        pending_retries: 0,
        pending_dead_letters: 0,
        ends: BTreeMap::new(),
    };
    {
        let wharf = open_frozen(&dir, &model).expect("open");
        wharf.create_topic(TOPIC, topic_config()).expect("topic");
        append(&wharf, &mut model, PREFILL, &mut rng);
        record_ends(&wharf, &mut model);
        wharf.close().expect("close");
    }
    let mut totals = Totals::default();
    for cycle in 0..cycles {
        let context = format!("seed {seed} cycle {cycle}");
        watchdog.step(context.clone());
        kill_cycle(&dir, cycle, &mut rng, &mut model, &mut totals, &context);
    }
    watchdog.step("final drain".into());
    let drained = drain(&dir, &mut model, &mut rng, &mut totals, cycles, seed);
    let tally = {
        let context = format!("seed {seed}, after the final drain");
        let wharf = open_frozen(&dir, &model).unwrap_or_else(|e| panic!("{context}: open: {e}"));
        let (_, tally) = check_all(&wharf, &mut model, &[], cycles, true, &context);
        wharf.close().expect("close");
        tally
    };
    drop(watchdog);
    let window: u64 = tally.retry_duplicates + tally.dlq_duplicates + tally.moved_twice;
    println!(
        "retry_kill summary: seed {seed}; {cycles} cycles (commit_ack Fsync {} / Write {}); \
         kills {:?}; kills inside the duplicate window {}, most messages in it after one kill \
         {}; messages {} (appended {}, delayed sends {} announced / {} returned); child \
         decisions: acks {}, retries {}, dead-letter calls {}; final drain decisions {drained}; \
         records now: retry topic {}, {DELAY_TOPIC} {}, DLQ {}; duplicates: redelivered \
         records {}, extra retry copies {}, extra dead letters {}, moved twice {} (by one \
         process {}) (total {window}); messages that ended twice (acked or dead-lettered) {}; \
         losses 0",
        totals.commit_ack[0],
        totals.commit_ack[1],
        totals.kills,
        totals.kills_in_window,
        totals.max_in_window,
        tally.messages,
        model.appended.len(),
        model.sending.len(),
        model.sent.len(),
        totals.acks,
        totals.retries,
        totals.dead_letter_calls,
        tally.retry_records,
        tally.delay_records,
        tally.dead_letters,
        tally.redelivered,
        tally.retry_duplicates,
        tally.dlq_duplicates,
        tally.moved_twice,
        totals.moved_twice_in_one_run,
        tally.settled_twice,
    );
    common::record_reliability(
        "kill_retry",
        &[
            ("kill_cycles_fsync", u64::from(totals.commit_ack[0])),
            ("kill_cycles_write", u64::from(totals.commit_ack[1])),
            // Any loss panicked above, naming the message.
            ("lost_retry_messages", 0),
        ],
    );
    assert!(
        cycles < 30 || totals.kills_in_window > 0,
        "seed {seed}: no kill landed between a returned retry or dead-letter call and the \
         commit of its original: {totals:?}"
    );
}

/// One cycle: run a child until the kill point, kill it, reopen and check, append more.
fn kill_cycle(
    dir: &Path,
    cycle: u32,
    rng: &mut Rng,
    model: &mut Model,
    totals: &mut Totals,
    context: &str,
) {
    let child_seed = rng.next_u64();
    let config = ChildConfig::new(child_seed);
    let (failures, retries, dead) = (
        model.pending_failures,
        model.pending_retries,
        model.pending_dead_letters,
    );
    let kill = match (cycle, rng.below(100)) {
        // The first calls create `%DELAY%` (unless a delayed send did) and `%DLQ%<group>`.
        (0, _) if failures > 0 => KillAt::Deciding(1),
        (1, _) if dead > 0 => KillAt::DeadLettering(1),
        (_, 0..10) => KillAt::Spawn(Duration::from_micros(rng.below(40_000))),
        (_, 30..50) if failures > 0 => KillAt::Deciding(rng.range(1, failures.min(12))),
        (_, 50..70) if failures > 0 => KillAt::Decided(rng.range(1, failures.min(12))),
        (_, 70..80) if dead > 0 => KillAt::DeadLettering(rng.range(1, dead.min(4))),
        (_, 80..90) if retries > 0 => KillAt::Retried(rng.range(1, retries.min(8))),
        (_, 90..100) if config.sends > 0 => KillAt::Sent(rng.range(1, config.sends)),
        _ => KillAt::Ready(Duration::from_micros(rng.below(150_000))),
    };
    let context = format!(
        "{context}, kill {kill:?}, child {config:?}, pending failures {failures}, pending \
         retries {retries}, pending dead letters {dead}"
    );
    let child = ChildProcess::spawn(&[
        (CHILD_ENV, dir.display().to_string()),
        (CHILD_SEED_ENV, child_seed.to_string()),
        (CHILD_PLAN_ENV, model.plan.to_string()),
        (CHILD_CYCLE_ENV, cycle.to_string()),
    ]);
    let mut events = Vec::new();
    let alive = match kill {
        KillAt::Spawn(delay) => {
            thread::sleep(delay);
            true
        }
        KillAt::Ready(delay) => {
            let alive = child.wait_for(&mut events, &|e| *e == Event::Ready, 1, "ready");
            thread::sleep(delay);
            alive
        }
        KillAt::Deciding(k) => {
            child.wait_for(&mut events, &is_failing_deciding, k, "retry/dlq deciding")
        }
        KillAt::Decided(k) => {
            // The k-th returned call of a failing kind: count those whose deciding was one.
            let mut alive = true;
            loop {
                let failing: BTreeSet<Loc> = events
                    .iter()
                    .filter_map(|e| match e {
                        Event::Deciding { loc, .. } if is_failing_deciding(e) => Some(*loc),
                        _ => None,
                    })
                    .collect();
                let returned = events
                    .iter()
                    .filter(|e| matches!(e, Event::Decided { loc } if failing.contains(loc)))
                    .count() as u64;
                if returned >= k || !alive || events.iter().any(|e| matches!(e, Event::Error(_))) {
                    break;
                }
                let seen = events.len() as u64;
                alive = child.wait_for(&mut events, &|_| true, seen + 1, "retry/dlq decided");
            }
            alive
        }
        KillAt::DeadLettering(k) => {
            let plan = model.plan;
            let dead_lettering = move |e: &Event| match *e {
                Event::Deciding { id, count, .. } => {
                    matches!(outcome(plan, id, count), Outcome::DeadLetter { .. })
                }
                _ => false,
            };
            child.wait_for(&mut events, &dead_lettering, k, "dead-lettering deciding")
        }
        KillAt::Retried(k) => child.wait_for(
            &mut events,
            &|e| {
                matches!(
                    e,
                    Event::Deciding {
                        loc: (Src::Retry, ..),
                        ..
                    }
                )
            },
            k,
            "retry-topic delivery",
        ),
        KillAt::Sent(k) => {
            child.wait_for(&mut events, &|e| matches!(e, Event::Sent { .. }), k, "sent")
        }
    };
    let (status, stderr) = child.kill(&mut events);
    let errors: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Error(e) => Some(e),
            _ => None,
        })
        .collect();
    assert!(
        errors.is_empty() && alive && killed_by_sigkill(status),
        "{context}: the child failed before it was killed ({status}): {errors:?}\n\
         child stderr:\n{stderr}"
    );
    *totals.kills.entry(kill.name()).or_default() += 1;
    totals.commit_ack[usize::from(config.commit_ack != AckMode::Fsync)] += 1;
    for e in &events {
        match e {
            Event::Decided { loc } => {
                let kind = events.iter().rev().find_map(|d| match d {
                    Event::Deciding { loc: l, kind, .. } if l == loc => Some(*kind),
                    _ => None,
                });
                match kind {
                    Some(Kind::Ack) => totals.acks += 1,
                    Some(Kind::Nack) => totals.retries += 1,
                    Some(Kind::DeadLetter) => totals.dead_letter_calls += 1,
                    None => {}
                }
            }
            Event::Sent { .. } => totals.delayed_sends += 1,
            _ => {}
        }
    }
    let wharf = open_frozen(dir, model).unwrap_or_else(|e| panic!("{context}: reopen: {e}"));
    let (snap, tally) = check_all(&wharf, model, &events, cycle, false, &context);
    // Did the kill leave a returned retry/dlq call whose original was not committed?
    let in_window = events.iter().any(|e| match e {
        Event::Decided { loc: (src, p, o) } => snap.consumed((*src, *p, *o)).is_some_and(|s| {
            action(model.plan, s.id, s.stage()) != Action::Ack && *o >= snap.committed(*src, *p)
        }),
        _ => false,
    });
    totals.kills_in_window += u32::from(in_window);
    totals.max_in_window = totals.max_in_window.max(tally.in_window);
    totals.moved_twice_in_one_run += tally.moved_twice_in_one_run;
    let more = rng.range(0, APPEND_MAX);
    append(&wharf, model, more, rng);
    record_ends(&wharf, model);
    wharf
        .close()
        .unwrap_or_else(|e| panic!("{context}: close: {e}"));
}

/// The parent consumes what is left itself, on the real clock, until the delay queue is empty
/// and every consumed partition is committed to its end; checks what it did. Returns how many
/// decisions it made.
fn drain(
    dir: &Path,
    model: &mut Model,
    rng: &mut Rng,
    totals: &mut Totals,
    cycle: u32,
    seed: u64,
) -> u64 {
    let context = format!("seed {seed}, final drain");
    let wharf = Wharf::builder(dir)
        .delay_levels(levels())
        .open()
        .unwrap_or_else(|e| panic!("{context}: open: {e}"));
    let mut consumer = wharf
        .consumer(GROUP)
        .subscribe([TOPIC])
        .max_reconsume_times(MAX_RECONSUME)
        .commit(CommitPolicy::Acked {
            interval: Duration::from_millis(5),
        })
        .build()
        .unwrap_or_else(|e| panic!("{context}: consumer: {e}"));
    let mut events = Vec::new();
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "{context}: hang: not drained within {DRAIN_LIMIT:?}; delay status {:?}; lag {:?}",
            wharf.admin().delay_status(),
            consumer.lag()
        );
        let n = consume_once(&mut consumer, model.plan, rng, &mut |e| events.push(e))
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        if n > 0 {
            continue;
        }
        consumer
            .commit_acked()
            .unwrap_or_else(|e| panic!("{context}: commit_acked: {e}"));
        let status = wharf.admin().delay_status();
        assert!(
            status.error.is_none() && status.dropped == 0,
            "{context}: the scheduler failed or dropped records: {status:?}"
        );
        // Nothing waits any more (so every moved copy is in the retry topic), then nothing
        // is left to consume: no decision can have added anything in between.
        if status.waiting.iter().all(|&w| w == 0)
            && Snapshot::consumed_partitions().all(|(src, p)| {
                let tp = TopicPartition::new(src.name(), p);
                let end = wharf.reader(src.name(), p).map_or(0, |r| r.end_offset());
                consumer.committed(&tp).unwrap_or(0) == end
            })
        {
            break;
        }
    }
    consumer
        .close()
        .unwrap_or_else(|e| panic!("{context}: close the consumer: {e}"));
    wharf
        .close()
        .unwrap_or_else(|e| panic!("{context}: close: {e}"));
    let wharf = open_frozen(dir, model).unwrap_or_else(|e| panic!("{context}: reopen: {e}"));
    assert!(
        wharf.recovery_stats().clean_shutdown,
        "{context}: the drain closed cleanly"
    );
    let (_, tally) = check_all(&wharf, model, &events, cycle, false, &context);
    record_ends(&wharf, model);
    wharf.close().expect("close");
    totals.moved_twice_in_one_run += tally.moved_twice_in_one_run;
    events
        .iter()
        .filter(|e| matches!(e, Event::Decided { .. }))
        .count() as u64
}
