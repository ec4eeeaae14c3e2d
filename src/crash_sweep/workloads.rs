//! The scripted workloads of the crash-point sweep. Each runs against a [`SimVfs`] that may
//! freeze at any operation; every step records into the [`Model`] what the code under test
//! promised, and the workload stops at the first step after the freeze (nothing done after
//! it can reach the crash image).
//!
//! All I/O happens in the workload's thread (the Wharf runs without background threads:
//! [`Ctx::sync`] stands in for the flusher's tick and [`Wharf::run_scheduler_round`] for the
//! delay scheduler), and sizes come from a fixed seed, so a workload performs the same
//! operations in the same order on every run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::model::{Attempt, Commit, Model, RetryFate, RetryModel};
use crate::vfs::sim::{SimRng, SimVfs};
use crate::{
    AckMode, Consumer, Delivery, ManualClock, Producer, Record, Retry, Timestamp, TopicConfig,
    TopicPartition, Wharf, WharfBuilder,
};

/// The workload clock's start.
pub(super) const T0: i64 = 1_700_000_000_000;
/// Delay levels of the retry workload: the delay topic gets one partition per level.
pub(super) const DELAY_LEVELS: &str = "1s 2s 3s";
/// Retries before a record of the retry workload is dead-lettered.
pub(super) const MAX_RECONSUME_TIMES: u32 = 2;

/// A scripted workload.
#[derive(Debug, Clone, Copy)]
pub(super) struct Workload {
    pub name: &'static str,
    pub run: fn(&mut Ctx),
    /// Damage variants per crash point (see [`super::variants_of`]).
    pub variants: u64,
}

/// The three workloads of the sweep. The retry workload recovers seven partitions at each
/// crash point, which takes long in unoptimized builds: it gets one variant per crash point
/// (in turn a kill, a power loss, random damage), and the full set with `WHARF_SOAK=1`.
pub(super) const WORKLOADS: [Workload; 3] = [
    Workload {
        name: "produce",
        run: produce_under_every_ack_mode,
        variants: 12,
    },
    Workload {
        name: "commit",
        run: consume_and_commit,
        variants: 12,
    },
    Workload {
        name: "retry",
        run: retry_and_dead_letter,
        variants: 1,
    },
];

/// How every Wharf of the sweep is opened.
pub(super) fn builder(sim: &SimVfs, clock: &Arc<ManualClock>) -> WharfBuilder {
    let levels = crate::DelayLevels::parse(DELAY_LEVELS).expect("valid delay levels");
    Wharf::builder(super::DIR)
        .vfs(Arc::new(sim.clone()))
        .clock(Arc::clone(clock) as Arc<dyn crate::Clock>)
        .without_background_threads()
        .delay_levels(levels)
}

/// Small segments (rolls every few records), an index entry every few batches.
fn small_topic(partitions: u32) -> TopicConfig {
    TopicConfig::default()
        .partitions(partitions)
        .segment_bytes(crate::MIN_SEGMENT_BYTES)
        .index_interval_bytes(256)
        .max_message_bytes(1_024)
}

/// A workload run: the disk, the clock, the model, the open Wharf.
pub(super) struct Ctx {
    pub sim: SimVfs,
    pub clock: Arc<ManualClock>,
    pub model: Model,
    pub wharf: Option<Wharf>,
    rng: SimRng,
    sequence: u64,
}

impl Ctx {
    pub(super) fn new(sim: SimVfs) -> Self {
        Ctx {
            sim,
            clock: Arc::new(ManualClock::new(Timestamp::from_millis(T0))),
            model: Model::default(),
            wharf: None,
            rng: SimRng::new(0x005e_ed0f_c0de),
            sequence: 0,
        }
    }

    /// Whether the disk still runs (the crash point is not reached).
    pub(super) fn alive(&self) -> bool {
        !self.sim.is_frozen()
    }

    fn open(&mut self) -> bool {
        match builder(&self.sim, &self.clock).open() {
            Ok(wharf) => {
                self.wharf = Some(wharf);
                true
            }
            Err(_) => false,
        }
    }

    fn wharf(&self) -> &Wharf {
        self.wharf.as_ref().expect("opened")
    }

    fn create_topic(&mut self, name: &str, config: TopicConfig) -> bool {
        let partitions = config.partitions;
        let ok = self.wharf().create_topic(name, config).is_ok();
        self.model.topic_created(name, partitions, ok);
        ok
    }

    /// A unique payload of 16 to `max` bytes, no byte of it zero.
    fn record(&mut self, topic: &str, partition: u32, max: u64) -> Record {
        self.sequence += 1;
        let mut payload = format!("{topic}/{partition}/{:05}:", self.sequence).into_bytes();
        let len = 16 + self.rng.below(max - 15);
        while (payload.len() as u64) < len {
            payload.push(b'a' + u8::try_from(self.rng.below(26)).unwrap_or(0));
        }
        let mut record = Record::new(topic.to_owned(), payload).partition(partition);
        if self.sequence % 3 == 0 {
            record = record.key(format!("key-{}", self.sequence % 7));
        }
        record
    }

    fn attempt(record: &Record, offset: Option<u64>, ack: AckMode) -> Attempt {
        Attempt {
            payload: record.payload.to_vec(),
            key: record.key.as_ref().map(|k| k.to_vec()),
            offset,
            ack,
        }
    }

    /// One send with `ack`.
    fn send(&mut self, producer: &Producer, topic: &str, partition: u32, ack: AckMode, max: u64) {
        let record = self.record(topic, partition, max);
        let sent = producer.send_with(record.clone(), ack);
        let offset = sent.ok().map(|r| r.offset());
        let before_crash = self.alive();
        let attempt = Self::attempt(&record, offset, ack);
        self.model.sent(topic, partition, attempt, before_crash);
    }

    /// One `send_batch` of `count` records over the partitions of `topic`, at the producer's
    /// ack mode.
    fn send_batch(&mut self, producer: &Producer, topic: &str, partitions: u32, count: u32) {
        let records: Vec<Record> = (0..count)
            .map(|i| self.record(topic, i % partitions, 300))
            .collect();
        let sent = producer.send_batch(records.clone());
        let before_crash = self.alive();
        let ack = producer.ack_mode();
        for (i, record) in records.iter().enumerate() {
            let offset = sent.as_ref().ok().map(|r| r[i].offset());
            let partition = record.partition.unwrap_or(0);
            let attempt = Self::attempt(record, offset, ack);
            self.model.sent(topic, partition, attempt, before_crash);
        }
    }

    /// What the flusher's tick does: syncs everything, checkpoints, syncs group offsets.
    /// Afterwards every record appended so far is durable.
    fn sync(&mut self) {
        let wharf = self.wharf().clone();
        if wharf.sync().is_ok() {
            for topic in wharf.topics() {
                if topic.is_internal() {
                    continue;
                }
                for p in 0..topic.config().partitions {
                    if let Ok(reader) = wharf.reader(topic.name(), p) {
                        self.model.durable_to(topic.name(), p, reader.end_offset());
                    }
                }
            }
        }
    }
}

/// Produces to two partitions of a topic with 4 KiB segments under every ack mode, with
/// single sends and batches, crossing many segment rolls, with a sync (flusher tick) now and
/// then.
fn produce_under_every_ack_mode(ctx: &mut Ctx) {
    if !ctx.open() || !ctx.create_topic("p", small_topic(2)) {
        return;
    }
    let wharf = ctx.wharf().clone();
    let fsync = wharf.producer().ack(AckMode::Fsync).build();
    let write = wharf.producer().ack(AckMode::Write).build();
    for step in 0..64u32 {
        if !ctx.alive() {
            return;
        }
        let partition = step % 2;
        match step % 7 {
            0 | 4 => ctx.send(&fsync, "p", partition, AckMode::Fsync, 700),
            1 => ctx.send(&write, "p", partition, AckMode::Write, 900),
            2 => ctx.send(&write, "p", partition, AckMode::NoWait, 500),
            3 => ctx.send_batch(&fsync, "p", 2, 3),
            5 => ctx.send_batch(&write, "p", 2, 4),
            _ => ctx.sync(),
        }
    }
}

/// A consumer's bookkeeping of what it delivered and settled, per partition: the offset a
/// `commit_acked` commits is the lowest delivered offset not settled, or the position.
#[derive(Debug, Default)]
struct Settled {
    open: BTreeMap<TopicPartition, Vec<u64>>,
}

impl Settled {
    fn delivered(&mut self, d: &Delivery) {
        self.open
            .entry(TopicPartition::new(d.topic(), d.partition()))
            .or_default()
            .push(d.offset());
    }

    fn settle(&mut self, tp: &TopicPartition, offset: u64) {
        if let Some(open) = self.open.get_mut(tp) {
            open.retain(|&o| o != offset);
        }
    }

    fn low(&self, consumer: &Consumer, tp: &TopicPartition) -> Option<u64> {
        let position = consumer.position(tp).ok()?;
        Some(
            self.open
                .get(tp)
                .and_then(|o| o.iter().min().copied())
                .unwrap_or(position),
        )
    }
}

/// Commits every partition `consumer` holds: `acked` commits the lowest unsettled offsets
/// (`commit_acked`), otherwise the positions (`commit`). Records what was committed.
fn commit(ctx: &mut Ctx, consumer: &mut Consumer, settled: &Settled, acked: bool, ack: AckMode) {
    let tps = consumer.assignment();
    let values: Vec<(TopicPartition, Option<u64>)> = tps
        .iter()
        .map(|tp| {
            let value = if acked {
                settled.low(consumer, tp)
            } else {
                consumer.position(tp).ok()
            };
            (tp.clone(), value)
        })
        .collect();
    let ok = if acked {
        consumer.commit_acked().is_ok()
    } else {
        consumer.commit().is_ok()
    };
    let group = consumer.group().to_owned();
    for (tp, value) in values {
        if let Some(offset) = value {
            let durable = ack == AckMode::Fsync;
            ctx.model.committed(
                &group,
                &tp,
                Commit {
                    offset,
                    durable,
                    ok,
                },
            );
        }
    }
}

/// Delivers up to `max` records to `consumer` (nothing waits: the records are there or not).
fn poll(consumer: &mut Consumer, max: usize) -> Vec<Delivery> {
    consumer.poll_batch(max, Duration::ZERO).unwrap_or_default()
}

/// Produces to one partition while two groups consume it and commit, one with `Fsync`
/// commits (the log is made durable up to a commit first), one with `Write` commits.
fn consume_and_commit(ctx: &mut Ctx) {
    if !ctx.open() || !ctx.create_topic("c", small_topic(1)) {
        return;
    }
    let wharf = ctx.wharf().clone();
    let write = wharf.producer().ack(AckMode::Write).build();
    let fsync = wharf.producer().ack(AckMode::Fsync).build();
    let consumer = |group: &str, ack: AckMode| {
        wharf
            .consumer(group)
            .assign([("c", 0)])
            .commit_ack(ack)
            .build()
    };
    let (Ok(mut durable), Ok(mut written)) = (
        consumer("gf", AckMode::Fsync),
        consumer("gw", AckMode::Write),
    ) else {
        return;
    };
    let none = Settled::default();
    let rounds: [(AckMode, u32, usize, usize); 8] = [
        (AckMode::Write, 8, 3, 5),
        (AckMode::NoWait, 6, 4, 8),
        (AckMode::Fsync, 3, 6, 2),
        (AckMode::Write, 7, 2, 9),
        (AckMode::NoWait, 5, 9, 9),
        (AckMode::Fsync, 4, 3, 1),
        (AckMode::Write, 9, 8, 6),
        (AckMode::Fsync, 2, 9, 9),
    ];
    for (round, (ack, sends, take_durable, take_written)) in rounds.into_iter().enumerate() {
        for _ in 0..sends {
            if !ctx.alive() {
                return;
            }
            let producer = if ack == AckMode::Fsync {
                &fsync
            } else {
                &write
            };
            ctx.send(producer, "c", 0, ack, 600);
        }
        if !ctx.alive() {
            return;
        }
        poll(&mut durable, take_durable);
        commit(ctx, &mut durable, &none, false, AckMode::Fsync);
        if !ctx.alive() {
            return;
        }
        poll(&mut written, take_written);
        commit(ctx, &mut written, &none, false, AckMode::Write);
        if round % 3 == 2 {
            ctx.sync();
        }
    }
}

/// Consumes one topic in a group that retries (`nack` → `%DELAY%` → scheduler →
/// `%RETRY%<group>`), dead-letters, and acknowledges records, committing what was settled.
fn retry_and_dead_letter(ctx: &mut Ctx) {
    if !ctx.open() || !ctx.create_topic("r", small_topic(1)) {
        return;
    }
    ctx.model.retry = Some(RetryModel {
        group: "g".to_owned(),
        topic: "r".to_owned(),
        max_reconsume_times: MAX_RECONSUME_TIMES,
        fates: BTreeMap::new(),
    });
    let wharf = ctx.wharf().clone();
    let fsync = wharf.producer().ack(AckMode::Fsync).build();
    for _ in 0..5 {
        if !ctx.alive() {
            return;
        }
        ctx.send(&fsync, "r", 0, AckMode::Fsync, 200);
    }
    let Ok(mut consumer) = wharf
        .consumer("g")
        .subscribe(["r"])
        .commit_ack(AckMode::Fsync)
        .max_reconsume_times(MAX_RECONSUME_TIMES)
        .build()
    else {
        return;
    };
    let mut settled = Settled::default();
    // Offsets 0 and 3 are retried until they are dead letters; 1 is dead-lettered at once;
    // 2 and 4 are processed.
    for round in 0..4 {
        if !ctx.alive() {
            return;
        }
        for d in poll(&mut consumer, 10) {
            settled.delivered(&d);
            handle(ctx, &mut settled, d);
            if !ctx.alive() {
                return;
            }
        }
        commit(ctx, &mut consumer, &settled, true, AckMode::Fsync);
        if round == 1 {
            ctx.sync();
        }
        ctx.clock.advance(Duration::from_secs(4));
        if !ctx.alive() {
            return;
        }
        // Errors (the crash point) leave the lanes at their committed positions.
        let _moved = wharf.run_scheduler_round();
    }
}

/// Decides one delivery of the retry workload and records what was acknowledged.
fn handle(ctx: &mut Ctx, settled: &mut Settled, d: Delivery) {
    let tp = TopicPartition::new(d.topic(), d.partition());
    let offset = d.offset();
    let origin = d.origin().map_or(offset, |o| o.offset);
    let count = d.reconsume_count();
    let retry = ctx.model.retry.as_mut().expect("retry model");
    let fate: &mut RetryFate = retry.fates.entry(origin).or_default();
    let ok = match origin {
        1 if count == 0 => {
            let ok = d.dead_letter("refused").is_ok();
            if ok {
                fate.dead_lettered = Some(0);
            }
            ok
        }
        0 | 3 => {
            let ok = d.nack(Retry::Default).is_ok();
            if ok && count >= MAX_RECONSUME_TIMES {
                fate.dead_lettered = Some(count);
            } else if ok {
                fate.retried = fate.retried.max(count + 1);
            }
            ok
        }
        _ => {
            let ok = d.ack().is_ok();
            fate.acked |= ok;
            ok
        }
    };
    if ok {
        settled.settle(&tp, offset);
    }
}
