//! The reference model a workload fills while it runs, and the checks of a recovered Wharf
//! against it (RELIABILITY.md section 3, invariants I1–I3, I5, I7 and I8).
//!
//! The model records what the code under test *promised*: every append attempted (with its
//! receipt, if one came back), the durable marks (an `Fsync` ack, a successful
//! [`Wharf::sync`], a durable commit), every commit, and every retry or dead-letter copy a
//! consumer was told was written. Payloads are unique, so a recovered record names the attempt
//! it came from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use crate::vfs::sim::{Damage, SimVfs};
use crate::{AckMode, ErrorKind, ReadOptions, TopicPartition, Wharf};

/// What a violated invariant is counted as in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    /// I4: opening after the crash failed (recovery must always succeed).
    OpenFailed,
    /// I4: recovery or a read panicked.
    Panic,
    /// I4: a second recovery gave another state.
    NotIdempotent,
    /// I1: a record acknowledged with `Fsync` (or synced) is missing.
    LostFsyncAck,
    /// I1 under a process kill: a record acknowledged with `Write` is missing.
    LostWriteAck,
    /// I2: the log is not a prefix of the attempts (gap, duplicate, order, wrong offset).
    NotPrefix,
    /// I3: a record that was never sent, or with other bytes, was returned.
    CorruptPayload,
    /// I3: a read reported corruption (crash-only faults never damage durable data).
    CorruptError,
    /// I5: a committed offset went back below a durable commit.
    OffsetBackwards,
    /// I5: a durable commit, or a consumer's start, lies past the log end.
    OffsetPastEnd,
    /// I7: a retried or dead-lettered record is nowhere.
    RetryLost,
    /// I8: a temporary, orphan or leftover file survived recovery.
    LeftoverFile,
    /// A topic created durably is missing, or one never created exists.
    TopicMismatch,
    /// A mapped write past the end of a file (SIGBUS in a real process).
    SigBus,
}

/// A violated invariant, with what is needed to understand it.
#[derive(Debug, Clone)]
pub(super) struct Violation {
    pub kind: Kind,
    pub detail: String,
}

impl Violation {
    pub(super) fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Violation {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)
    }
}

type Checked<T> = std::result::Result<T, Violation>;

/// One append attempt.
#[derive(Debug, Clone)]
pub(super) struct Attempt {
    pub payload: Vec<u8>,
    pub key: Option<Vec<u8>>,
    /// The receipt's offset, if the send returned one.
    pub offset: Option<u64>,
    pub ack: AckMode,
}

/// One partition: attempts in order, and the marks below which records must survive.
#[derive(Debug, Clone, Default)]
pub(super) struct PartModel {
    pub attempts: Vec<Attempt>,
    /// Every offset below is durable (survives any crash).
    pub durable: u64,
    /// Every offset below was acknowledged `Write` or better before the crash point (survives
    /// a process kill).
    pub written: u64,
}

#[derive(Debug, Clone, Default)]
pub(super) struct TopicModel {
    /// `create_topic` returned: the topic must exist after any crash.
    pub created: bool,
    pub parts: Vec<PartModel>,
}

/// One commit attempt of a group for a partition.
#[derive(Debug, Clone, Copy)]
pub(super) struct Commit {
    pub offset: u64,
    pub durable: bool,
    pub ok: bool,
}

/// What a consumer was told about one original record of the retry workload.
#[derive(Debug, Clone, Default)]
pub(super) struct RetryFate {
    /// Highest reconsume count of a retry copy acknowledged written with `Fsync`.
    pub retried: u32,
    /// A dead-letter copy was acknowledged written with `Fsync`, with this reconsume count.
    pub dead_lettered: Option<u32>,
    /// The record (or its last copy) was acknowledged as processed.
    pub acked: bool,
}

/// Everything a workload did that matters after a crash.
#[derive(Debug, Clone, Default)]
pub(super) struct Model {
    pub topics: BTreeMap<String, TopicModel>,
    pub commits: BTreeMap<(String, TopicPartition), Vec<Commit>>,
    /// Retry workload: the group, its topic, and per original offset what was promised.
    pub retry: Option<RetryModel>,
    /// Acknowledged sends, by ack mode (for the summary).
    pub acked_fsync: u64,
    pub acked_write: u64,
}

#[derive(Debug, Clone, Default)]
pub(super) struct RetryModel {
    pub group: String,
    pub topic: String,
    pub max_reconsume_times: u32,
    pub fates: BTreeMap<u64, RetryFate>,
}

impl Model {
    pub(super) fn topic_created(&mut self, name: &str, partitions: u32, ok: bool) {
        let topic = self.topics.entry(name.to_owned()).or_default();
        topic.created |= ok;
        if topic.parts.len() < partitions as usize {
            topic
                .parts
                .resize(partitions as usize, PartModel::default());
        }
    }

    fn part(&mut self, topic: &str, partition: u32) -> &mut PartModel {
        let topic = self.topics.entry(topic.to_owned()).or_default();
        let i = partition as usize;
        if topic.parts.len() <= i {
            topic.parts.resize(i + 1, PartModel::default());
        }
        &mut topic.parts[i]
    }

    /// Records an append attempt; `before_crash`: the ack came back before the disk froze.
    pub(super) fn sent(
        &mut self,
        topic: &str,
        partition: u32,
        attempt: Attempt,
        before_crash: bool,
    ) {
        if let Some(offset) = attempt.offset {
            match attempt.ack {
                AckMode::Fsync => self.acked_fsync += 1,
                AckMode::Write => self.acked_write += 1,
                AckMode::NoWait => {}
            }
            let part = self.part(topic, partition);
            if attempt.ack == AckMode::Fsync {
                part.durable = part.durable.max(offset + 1);
            }
            if attempt.ack != AckMode::NoWait && before_crash {
                part.written = part.written.max(offset + 1);
            }
        }
        self.part(topic, partition).attempts.push(attempt);
    }

    /// Every offset of `topic`/`partition` below `end` is durable (a sync returned).
    pub(super) fn durable_to(&mut self, topic: &str, partition: u32, end: u64) {
        let part = self.part(topic, partition);
        part.durable = part.durable.max(end);
        part.written = part.written.max(end);
    }

    pub(super) fn committed(&mut self, group: &str, tp: &TopicPartition, commit: Commit) {
        self.commits
            .entry((group.to_owned(), tp.clone()))
            .or_default()
            .push(commit);
    }
}

/// A record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Read {
    pub offset: u64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Read {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// What a recovered Wharf holds: compared between recoveries of one crash image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Recovered {
    pub logs: BTreeMap<(String, u32), Vec<Read>>,
    pub committed: BTreeMap<(String, TopicPartition), Option<u64>>,
}

/// Figures one verification adds to the summary.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Checks {
    pub fsync_acks: u64,
    pub write_acks: u64,
}

fn corrupt_or(kind: Kind, e: &crate::Error, what: &str) -> Violation {
    let kind = if matches!(
        e.kind(),
        ErrorKind::Corrupt { .. } | ErrorKind::CorruptFile { .. }
    ) {
        Kind::CorruptError
    } else {
        kind
    };
    Violation::new(kind, format!("{what}: {e}"))
}

/// Reads every record of a partition.
fn read_all(wharf: &Wharf, topic: &str, partition: u32) -> Checked<Vec<Read>> {
    let what = format!("reading {topic}/{partition}");
    let reader = wharf
        .reader(topic, partition)
        .map_err(|e| corrupt_or(Kind::TopicMismatch, &e, &what))?;
    if reader.start_offset() != 0 {
        return Err(Violation::new(
            Kind::NotPrefix,
            format!("{what}: the log starts at {}", reader.start_offset()),
        ));
    }
    let end = reader.end_offset();
    let mut out = Vec::new();
    let mut at = 0;
    while at < end {
        let batch = reader
            .read(at, ReadOptions::default())
            .map_err(|e| corrupt_or(Kind::NotPrefix, &e, &what))?;
        if batch.is_empty() {
            return Err(Violation::new(
                Kind::NotPrefix,
                format!("{what}: nothing at {at} below the end {end}"),
            ));
        }
        for m in &batch {
            out.push(Read {
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().to_vec(),
                headers: m
                    .headers()
                    .map(|(n, v)| (n.to_owned(), v.to_vec()))
                    .collect(),
            });
        }
        at = batch.next_offset();
    }
    Ok(out)
}

/// Checks a recovered Wharf against `model`; returns what it holds.
pub(super) fn verify(
    wharf: &Wharf,
    sim: &SimVfs,
    model: &Model,
    damage: Damage,
) -> Checked<(Recovered, Checks)> {
    let mut recovered = Recovered::default();
    let mut checks = Checks::default();
    let existing: BTreeMap<String, u32> = wharf
        .topics()
        .iter()
        .map(|t| (t.name().to_owned(), t.config().partitions))
        .collect();
    for (name, topic) in &model.topics {
        let Some(&partitions) = existing.get(name) else {
            if topic.created {
                return Err(Violation::new(
                    Kind::TopicMismatch,
                    format!("topic {name} was created but is gone"),
                ));
            }
            continue;
        };
        if partitions as usize != topic.parts.len() {
            return Err(Violation::new(
                Kind::TopicMismatch,
                format!("topic {name} has {partitions} partitions"),
            ));
        }
        for (p, part) in topic.parts.iter().enumerate() {
            let p = u32::try_from(p).unwrap_or(u32::MAX);
            let log = read_all(wharf, name, p)?;
            let c = check_partition(name, p, part, &log, damage)?;
            checks.fsync_acks += c.fsync_acks;
            checks.write_acks += c.write_acks;
            recovered.logs.insert((name.clone(), p), log);
        }
    }
    for name in existing.keys() {
        if !model.topics.contains_key(name) && !crate::retry::is_internal(name) {
            return Err(Violation::new(
                Kind::TopicMismatch,
                format!("topic {name} exists but was never created"),
            ));
        }
        if crate::retry::is_internal(name) {
            for p in 0..existing[name] {
                recovered
                    .logs
                    .insert((name.clone(), p), read_all(wharf, name, p)?);
            }
        }
    }
    check_commits(wharf, model, &mut recovered)?;
    if let Some(retry) = &model.retry {
        check_retries(retry, &recovered)?;
    }
    check_files(sim)?;
    let stats = sim.stats();
    if stats.sigbus_events + stats.detached_maps > 0 {
        return Err(Violation::new(
            Kind::SigBus,
            format!(
                "mapped writes past the end of a file, or a file grown past a mapping: {stats:?}"
            ),
        ));
    }
    Ok((recovered, checks))
}

/// I1–I3 for one partition.
fn check_partition(
    topic: &str,
    partition: u32,
    part: &PartModel,
    log: &[Read],
    damage: Damage,
) -> Checked<Checks> {
    let name = format!("{topic}/{partition}");
    check_order(&name, part, log)?;
    let checks = check_acks(&name, part, log)?;
    let len = log.len() as u64;
    if len < part.durable {
        return Err(Violation::new(
            Kind::LostFsyncAck,
            format!(
                "{name}: {len} records recovered, {} were durable",
                part.durable
            ),
        ));
    }
    if damage == Damage::Kill && len < part.written {
        return Err(Violation::new(
            Kind::LostWriteAck,
            format!(
                "{name}: {len} records survived a kill, {} were written",
                part.written
            ),
        ));
    }
    Ok(checks)
}

/// I2, I3: offsets from 0 without gaps, each record an attempt's bytes, attempts in order and
/// none twice.
fn check_order(name: &str, part: &PartModel, log: &[Read]) -> Checked<()> {
    let by_payload: HashMap<&[u8], usize> = part
        .attempts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.payload.as_slice(), i))
        .collect();
    let mut last: Option<usize> = None;
    for (i, record) in log.iter().enumerate() {
        let at = format!("{name} offset {}", record.offset);
        if record.offset != i as u64 {
            return Err(Violation::new(
                Kind::NotPrefix,
                format!("{at}: expected offset {i}"),
            ));
        }
        let Some(&a) = by_payload.get(record.payload.as_slice()) else {
            let len = record.payload.len();
            return Err(Violation::new(
                Kind::CorruptPayload,
                format!("{at}: a payload never sent ({len} bytes)"),
            ));
        };
        if part.attempts[a].key != record.key {
            return Err(Violation::new(
                Kind::CorruptPayload,
                format!("{at}: the key differs"),
            ));
        }
        if last.is_some_and(|l| l >= a) {
            return Err(Violation::new(
                Kind::NotPrefix,
                format!("{at}: attempt {a} after attempt {last:?}"),
            ));
        }
        last = Some(a);
    }
    Ok(())
}

/// Every acknowledged record still in the log is at its acknowledged offset; counts them.
fn check_acks(name: &str, part: &PartModel, log: &[Read]) -> Checked<Checks> {
    let mut checks = Checks::default();
    for attempt in &part.attempts {
        let Some(offset) = attempt.offset else {
            continue;
        };
        match log.get(usize::try_from(offset).unwrap_or(usize::MAX)) {
            Some(record) if record.payload == attempt.payload => match attempt.ack {
                AckMode::Fsync => checks.fsync_acks += 1,
                AckMode::Write => checks.write_acks += 1,
                AckMode::NoWait => {}
            },
            Some(_) => {
                return Err(Violation::new(
                    Kind::NotPrefix,
                    format!("{name} offset {offset}: another record than the one acknowledged"),
                ));
            }
            None => {}
        }
    }
    Ok(checks)
}

/// I5: per group and partition, the committed offset is at or above every durable commit, is
/// a value some commit wrote (or the log end, where a commit past it was lowered at open), and
/// lies at or below the recovered log end; a consumer starts there.
fn check_commits(wharf: &Wharf, model: &Model, recovered: &mut Recovered) -> Checked<()> {
    let admin = wharf.admin();
    let mut groups: BTreeSet<String> = model.commits.keys().map(|(g, _)| g.clone()).collect();
    groups.extend(
        admin
            .list_groups()
            .map_err(|e| corrupt_or(Kind::OffsetBackwards, &e, "listing groups"))?,
    );
    for group in &groups {
        let description = match admin.describe_group(group) {
            Ok(d) => d,
            Err(e) if matches!(e.kind(), ErrorKind::GroupNotFound { .. }) => {
                let durable = model.commits.iter().any(|((g, _), commits)| {
                    g == group && commits.iter().any(|c| c.ok && c.durable)
                });
                if durable {
                    return Err(Violation::new(
                        Kind::OffsetBackwards,
                        format!("group {group} committed durably but is gone"),
                    ));
                }
                continue;
            }
            Err(e) => return Err(corrupt_or(Kind::OffsetBackwards, &e, group)),
        };
        for partition in &description.partitions {
            let lag = &partition.lag;
            check_stored(wharf, group, lag)?;
            recovered
                .committed
                .insert((group.clone(), lag.partition.clone()), lag.committed);
        }
        for ((g, tp), commits) in &model.commits {
            let lag = description
                .partitions
                .iter()
                .find(|p| p.lag.partition == *tp)
                .map(|p| &p.lag);
            if g == group {
                check_against_commits(group, tp, lag, commits)?;
            }
        }
    }
    Ok(())
}

/// A stored committed offset lies at or below the recovered log end, and a consumer of the
/// group starts there.
fn check_stored(wharf: &Wharf, group: &str, lag: &crate::PartitionLag) -> Checked<()> {
    let tp = &lag.partition;
    let (committed, end) = (lag.committed, lag.end_offset);
    if committed.is_some_and(|c| c > end) {
        return Err(Violation::new(
            Kind::OffsetPastEnd,
            format!(
                "group {group} on {}/{}: committed {committed:?} past the recovered log end {end}",
                tp.topic, tp.partition
            ),
        ));
    }
    match committed {
        Some(c) => check_start(wharf, group, tp, c),
        None => Ok(()),
    }
}

/// The committed offset is at or above every durable commit, and a value some commit wrote
/// (or the log end, where a commit past it was lowered at open).
fn check_against_commits(
    group: &str,
    tp: &TopicPartition,
    lag: Option<&crate::PartitionLag>,
    commits: &[Commit],
) -> Checked<()> {
    let what = format!("group {group} on {}/{}", tp.topic, tp.partition);
    let committed = lag.and_then(|l| l.committed);
    let floor = commits
        .iter()
        .filter(|c| c.ok && c.durable)
        .map(|c| c.offset)
        .max();
    if let Some(floor) = floor {
        if committed.is_none_or(|c| c < floor) {
            return Err(Violation::new(
                Kind::OffsetBackwards,
                format!("{what}: committed {committed:?} after a durable commit of {floor}"),
            ));
        }
    }
    if let (Some(c), Some(lag)) = (committed, lag) {
        let lowered = c == lag.end_offset && commits.iter().any(|x| x.offset > c);
        if !lowered && !commits.iter().any(|x| x.offset == c) {
            return Err(Violation::new(
                Kind::OffsetBackwards,
                format!("{what}: committed {c}, a value never committed"),
            ));
        }
    }
    Ok(())
}

/// A consumer of `group` starts `tp` at `expected` (the committed offset clamped to the end).
fn check_start(wharf: &Wharf, group: &str, tp: &TopicPartition, expected: u64) -> Checked<()> {
    let consumer = wharf
        .consumer(group)
        .assign([(tp.topic.clone(), tp.partition)])
        .build()
        .map_err(|e| corrupt_or(Kind::OffsetPastEnd, &e, "building a consumer"))?;
    let position = consumer
        .position(tp)
        .map_err(|e| Violation::new(Kind::OffsetPastEnd, e.to_string()))?;
    if position != expected {
        return Err(Violation::new(
            Kind::OffsetPastEnd,
            format!(
                "group {group} starts {}/{} at {position}, expected {expected}",
                tp.topic, tp.partition
            ),
        ));
    }
    Ok(())
}

/// I7: every record a consumer was told was retried or dead-lettered has a copy at least that
/// far along, and dead letters from retries carry exactly `max_reconsume_times`.
fn check_retries(retry: &RetryModel, recovered: &Recovered) -> Checked<()> {
    let mut copies: BTreeMap<u64, Vec<(&str, u32)>> = BTreeMap::new();
    for ((topic, _), log) in &recovered.logs {
        if !crate::retry::is_internal(topic) {
            continue;
        }
        for record in log {
            let origin_topic = record.header("wharf.origin.topic");
            let origin = record
                .header("wharf.origin.offset")
                .and_then(|o| o.parse::<u64>().ok());
            let count = record
                .header("wharf.reconsume-count")
                .and_then(|c| c.parse::<u32>().ok())
                .unwrap_or(0);
            if let (Some(t), Some(origin)) = (origin_topic, origin) {
                if t == retry.topic {
                    copies
                        .entry(origin)
                        .or_default()
                        .push((topic.as_str(), count));
                }
            }
        }
    }
    for (offset, fate) in &retry.fates {
        let found = copies.get(offset).map(Vec::as_slice).unwrap_or_default();
        if fate.retried > 0 && !found.iter().any(|&(_, count)| count >= fate.retried) {
            return Err(Violation::new(
                Kind::RetryLost,
                format!(
                    "{}/0 offset {offset}: retry {} was acknowledged, copies found: {found:?}",
                    retry.topic, fate.retried
                ),
            ));
        }
        if let Some(count) = fate.dead_lettered {
            let dlq = crate::retry::dlq_topic(&retry.group);
            if !found.iter().any(|&(t, c)| t == dlq && c == count) {
                return Err(Violation::new(
                    Kind::RetryLost,
                    format!(
                        "{}/0 offset {offset}: dead letter (count {count}) acknowledged, \
                         copies found: {found:?}",
                        retry.topic
                    ),
                ));
            }
        }
        let dlq = crate::retry::dlq_topic(&retry.group);
        for &(t, count) in found {
            if t == dlq && count != 0 && count != retry.max_reconsume_times {
                return Err(Violation::new(
                    Kind::RetryLost,
                    format!(
                        "{}/0 offset {offset}: dead-lettered after {count} retries",
                        retry.topic
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// I8: no temporary files, no index without its log, nothing in `staging/` or `trash/`, and no
/// segment past its partition's data.
fn check_files(sim: &SimVfs) -> Checked<()> {
    let all = sim.list_all();
    let paths: BTreeSet<&str> = all.iter().map(String::as_str).collect();
    for path in &all {
        let leftover =
            |why: &str| Err(Violation::new(Kind::LeftoverFile, format!("{path}: {why}")));
        if path.ends_with(crate::vfs::TMP_SUFFIX) {
            return leftover("a temporary file");
        }
        for dir in [crate::layout::STAGING_DIR, crate::layout::TRASH_DIR] {
            let prefix = format!("{}/{dir}/", super::DIR);
            if path.starts_with(&prefix) && path.len() > prefix.len() {
                return leftover("left in a directory cleared at open");
            }
        }
        let name = Path::new(path.trim_end_matches('/'))
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let is_partition_file = path.starts_with(&format!("{}/topics/", super::DIR))
            && path.matches('/').count() == 5
            && !path.ends_with('/');
        if !is_partition_file {
            continue;
        }
        match crate::layout::classify(name) {
            crate::layout::PartitionFile::Index(base)
            | crate::layout::PartitionFile::TimeIndex(base) => {
                let dir = &path[..path.len() - name.len()];
                let log = format!("{dir}{base:020}.log");
                if !paths.contains(log.as_str()) {
                    return leftover("an index without its log");
                }
            }
            crate::layout::PartitionFile::Unknown | crate::layout::PartitionFile::Temporary => {
                return leftover("an unknown file in a partition directory");
            }
            _ => {}
        }
    }
    Ok(())
}
