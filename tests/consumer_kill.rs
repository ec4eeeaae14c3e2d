//! At-least-once consumption under kill -9, with real processes (issue 3 "Tests"; DESIGN.md
//! section 2; RELIABILITY.md I5 and fault scenario 4c).
//!
//! - `consumed_records_survive_kill_9_at_least_once`: the parent prefills a topic with unique
//!   payloads; the test binary re-runs itself as a child that consumes it, "processes" each
//!   record by writing `processed <partition> <offset> <payload hash>` to stdout (flushed), and
//!   commits after processing, reporting `committed <partition> <offset>` after each commit that
//!   returned. Three ways of committing, by cycle: `commit()` after each batch of processed
//!   records, `commit_message` every few records, and per-message `Delivery::ack` (out of
//!   order, some only after the next poll, a few dropped unprocessed and undecided) with
//!   `CommitPolicy::Acked` at a short interval. The parent SIGKILLs the child at random points:
//!   while it opens, after a delay, right after its k-th processed record (usually between
//!   processing and commit), or as it starts its k-th commit; reopens the directory, checks,
//!   appends more records and restarts a child on the same directory and group. Checked every
//!   cycle: every processed payload is byte-identical to what was sent at that offset; the child
//!   resumes exactly at the committed offset the parent saw (at or after the last commit it
//!   reported) and, when it commits in order, processes each partition in sequence from there;
//!   reported commits never regress, within or across kills, never pass the log end, and never
//!   cover a record that was not processed; after the kill `Admin::describe_group` shows
//!   committed offsets at or after the last reported ones, no earlier than before the cycle,
//!   within the log, with every record below them processed (none lost). At the end the parent
//!   drains the group itself: every record ever sent was processed at least once.
//! - `bit_flips_in_the_offsets_file_are_reported_and_an_earlier_state_is_used`: after a clean
//!   close, one byte of `<dir>/groups/<group>/offsets` is flipped (in the header, in the first,
//!   a middle and the last commit record, and at random positions); the reopen must report the
//!   damage (`GroupDescription::damage`), use exactly the state of the records before the
//!   damaged one (any earlier state for a damaged header: never garbage, never past the log
//!   end), keep the damaged bytes as `offsets.damaged-<n>`, and let the group consume on from
//!   there; after that and a clean close, the next open finds no damage.
//!
//! A failure prints the seed: `WHARF_CONSUMER_KILL_SEED=<seed>` replays the same workload (the
//! kill points are timing, so they vary); `WHARF_CONSUMER_KILL_CYCLES=<n>` runs a longer soak.

#![allow(clippy::cast_possible_truncation)]

mod common;

use common::kill::{Watchdog, killed_by_sigkill};

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wharf::{
    AckMode, CommitPolicy, Consumer, Delivery, ErrorKind, Record, TopicConfig, TopicPartition,
    Wharf,
};

/// Set in a consuming child: the data directory.
const CHILD_ENV: &str = "WHARF_CONSUMER_KILL_CHILD";
/// Set in a consuming child: `commit`, `message` or `acked`.
const CHILD_MODE_ENV: &str = "WHARF_CONSUMER_KILL_CHILD_MODE";
/// Set in a consuming child: the cycle's seed.
const CHILD_SEED_ENV: &str = "WHARF_CONSUMER_KILL_CHILD_SEED";
/// Replays a run.
const SEED_ENV: &str = "WHARF_CONSUMER_KILL_SEED";
/// Number of kill cycles (default [`DEFAULT_CYCLES`]).
const CYCLES_ENV: &str = "WHARF_CONSUMER_KILL_CYCLES";

const DEFAULT_CYCLES: u32 = 300;
const TOPIC: &str = "jobs";
const GROUP: &str = "workers";
const PARTITIONS: u32 = 3;
/// Records sent before the first cycle.
const PREFILL: u64 = 150;
/// Prefix of every line a child writes for the parent (libtest writes its own lines too).
const LINE_PREFIX: &str = "WHARF ";
/// Magic at the start of every payload.
const PAYLOAD_MAGIC: &[u8; 4] = b"WJOB";
/// `CommitPolicy::Acked` interval and `ack_wait` of the acking child.
const ACKED_INTERVAL: Duration = Duration::from_millis(2);
const ACKED_ACK_WAIT: Duration = Duration::from_millis(100);
/// Hang guard: a child that has not reported what the parent waits for by then is hung.
const CHILD_EVENT_LIMIT: Duration = Duration::from_secs(60);

fn topic_config() -> TopicConfig {
    TopicConfig::default()
        .partitions(PARTITIONS)
        .segment_bytes(8 * 1024)
        .index_interval_bytes(256)
        .max_message_bytes(2_048)
}

// ---------------------------------------------------------------------------------------------
// Deterministic workload
// ---------------------------------------------------------------------------------------------

/// `SplitMix64`: small, seedable, good enough to pick sizes, modes and kill points.
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

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The payload of record `offset` of `partition`: unique, self-describing.
fn payload_for(partition: u32, offset: u64, fill_len: usize) -> Vec<u8> {
    let mut payload = PAYLOAD_MAGIC.to_vec();
    payload.extend_from_slice(&partition.to_le_bytes());
    payload.extend_from_slice(&offset.to_le_bytes());
    payload.extend(common::payload(mix(u64::from(partition), offset), fill_len));
    payload
}

// ---------------------------------------------------------------------------------------------
// The consuming child
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `commit()` after each batch of processed records (every few records).
    Commit,
    /// `commit_message` every few processed records.
    Message,
    /// Per-message `ack` after processing, `CommitPolicy::Acked` commits the acked progress.
    Acked,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Commit => "commit",
            Mode::Message => "message",
            Mode::Acked => "acked",
        }
    }

    fn parse(name: &str) -> Option<Mode> {
        [Mode::Commit, Mode::Message, Mode::Acked]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// The child's output: one flushed line per report.
struct Out(std::io::StdoutLock<'static>);

impl Out {
    /// Writes one line for the parent, or exits if the parent is gone.
    fn say(&mut self, what: &str) {
        if writeln!(self.0, "{LINE_PREFIX}{what}")
            .and_then(|()| self.0.flush())
            .is_err()
        {
            std::process::exit(3);
        }
    }

    /// Reports a failure to the parent and exits (an exit the parent did not cause fails the
    /// test).
    fn fail(&mut self, what: &str) -> ! {
        let _ = writeln!(self.0, "{LINE_PREFIX}error {what}");
        let _ = self.0.flush();
        std::process::exit(2);
    }

    fn processed(&mut self, d: &Delivery) {
        self.say(&format!(
            "processed {} {} {}",
            d.partition(),
            d.offset(),
            fnv1a(d.payload())
        ));
    }
}

/// The child side of `consumed_records_survive_kill_9_at_least_once`; does nothing in a normal
/// test run (the variable is absent).
#[test]
fn child_consume() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mode = Mode::parse(&std::env::var(CHILD_MODE_ENV).expect("mode")).expect("known mode");
    let seed: u64 = std::env::var(CHILD_SEED_ENV)
        .expect("seed")
        .parse()
        .expect("seed");
    exit_when_parent_goes();
    let mut out = Out(std::io::stdout().lock());
    out.say("opening");
    let wharf = Wharf::open(&dir).unwrap_or_else(|e| out.fail(&format!("open: {e}")));
    let mut builder = wharf.consumer(GROUP).subscribe([TOPIC]);
    if mode == Mode::Acked {
        builder = builder
            .commit(CommitPolicy::Acked {
                interval: ACKED_INTERVAL,
            })
            .ack_wait(ACKED_ACK_WAIT);
    }
    let mut consumer = builder
        .build()
        .unwrap_or_else(|e| out.fail(&format!("build the consumer: {e}")));
    out.say("ready");
    let mut rng = Rng::new(seed);
    match mode {
        Mode::Commit | Mode::Message => consume_committing(&mut consumer, mode, &mut rng, &mut out),
        Mode::Acked => consume_acking(&mut consumer, &mut rng, &mut out),
    }
}

/// Sometimes waits a little between processing and committing, to widen that window.
fn dawdle(rng: &mut Rng) {
    if rng.below(3) == 0 {
        thread::sleep(Duration::from_micros(rng.below(300)));
    }
}

/// Commits with `commit()` (after whole batches) or `commit_message` (every few records), and
/// reports each commit that returned.
fn consume_committing(consumer: &mut Consumer, mode: Mode, rng: &mut Rng, out: &mut Out) -> ! {
    let every = rng.range(1, 8);
    let mut uncommitted = 0u64;
    // The next offset after the last record processed in this run, per partition.
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    loop {
        let max = rng.range(1, 16) as usize;
        let batch = consumer
            .poll_batch(max, Duration::from_millis(20))
            .unwrap_or_else(|e| out.fail(&format!("poll: {e}")));
        let idle = batch.is_empty();
        for d in batch {
            out.processed(&d);
            next.insert(d.partition(), d.offset() + 1);
            uncommitted += 1;
            if mode == Mode::Message && uncommitted >= every {
                dawdle(rng);
                out.say("committing");
                consumer
                    .commit_message(&d)
                    .unwrap_or_else(|e| out.fail(&format!("commit_message: {e}")));
                uncommitted = 0;
                let tp = TopicPartition::new(TOPIC, d.partition());
                let committed = consumer.committed(&tp);
                if committed != Some(d.offset() + 1) {
                    out.fail(&format!(
                        "commit_message of {}/{} returned, committed is {committed:?}",
                        d.partition(),
                        d.offset()
                    ));
                }
                out.say(&format!("committed {} {}", d.partition(), d.offset() + 1));
            }
        }
        // `commit()` settles everything delivered: only once the whole batch is processed.
        let due = match mode {
            Mode::Commit => uncommitted >= every || (idle && uncommitted > 0),
            _ => idle && uncommitted > 0,
        };
        if due {
            dawdle(rng);
            out.say("committing");
            consumer
                .commit()
                .unwrap_or_else(|e| out.fail(&format!("commit: {e}")));
            uncommitted = 0;
            for tp in consumer.assignment() {
                let committed = consumer.committed(&tp);
                let expected = next.get(&tp.partition).copied();
                if expected.is_some() && committed != expected {
                    out.fail(&format!(
                        "commit() returned, committed {committed:?} for {}, expected {expected:?}",
                        tp.partition
                    ));
                }
                match committed {
                    Some(c) => out.say(&format!("committed {} {c}", tp.partition)),
                    None => out.fail(&format!("commit() returned, nothing committed for {tp:?}")),
                }
            }
        }
    }
}

/// Acks each record after processing it, in a shuffled order; defers some to after the next
/// poll, and drops a few unprocessed and undecided (they come back after `ack_wait`). The commit policy commits the acked
/// progress; every change of a committed offset is reported after the poll that made it.
fn consume_acking(consumer: &mut Consumer, rng: &mut Rng, out: &mut Out) -> ! {
    let mut reported: BTreeMap<u32, Option<u64>> = (0..PARTITIONS)
        .map(|p| (p, consumer.committed(&TopicPartition::new(TOPIC, p))))
        .collect();
    let mut later: Vec<Delivery> = Vec::new();
    loop {
        let max = rng.range(1, 16) as usize;
        let mut batch = consumer
            .poll_batch(max, Duration::from_millis(20))
            .unwrap_or_else(|e| out.fail(&format!("poll: {e}")));
        for (p, last) in &mut reported {
            let now = consumer.committed(&TopicPartition::new(TOPIC, *p));
            if now != *last {
                match now {
                    Some(c) => out.say(&format!("committed {p} {c}")),
                    None => out.fail(&format!("the committed offset of {p} disappeared")),
                }
                *last = now;
            }
        }
        // Records deferred by the previous poll: processed and acked only now, after a poll
        // whose policy commit must not have covered them.
        for d in std::mem::take(&mut later) {
            out.processed(&d);
            dawdle(rng);
            d.ack()
                .unwrap_or_else(|e| out.fail(&format!("late ack: {e}")));
        }
        // Process in a shuffled order.
        for i in (1..batch.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            batch.swap(i, j);
        }
        for d in batch {
            match rng.below(20) {
                // A handler that gave up: neither processed nor acked; due again after
                // ack_wait (or after a restart).
                0 => drop(d),
                1..=4 => later.push(d),
                _ => {
                    out.processed(&d);
                    d.ack().unwrap_or_else(|e| out.fail(&format!("ack: {e}")));
                }
            }
        }
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
// The parent
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Opening,
    Ready,
    Processed {
        partition: u32,
        offset: u64,
        hash: u64,
    },
    Committing,
    Committed {
        partition: u32,
        offset: u64,
    },
    Error(String),
}

fn parse_line(line: &str) -> Option<Event> {
    // libtest may have started the line ("test child_consume ... ") before the test ran.
    let rest = &line[line.find(LINE_PREFIX)? + LINE_PREFIX.len()..];
    let (word, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let numbers: Option<Vec<u64>> = args
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().ok())
        .collect();
    let event = match (word, numbers.as_deref()) {
        ("opening", _) => Event::Opening,
        ("ready", _) => Event::Ready,
        ("committing", _) => Event::Committing,
        ("processed", Some(&[partition, offset, hash])) => Event::Processed {
            partition: partition as u32,
            offset,
            hash,
        },
        ("committed", Some(&[partition, offset])) => Event::Committed {
            partition: partition as u32,
            offset,
        },
        ("error", _) => Event::Error(args.to_owned()),
        _ => Event::Error(format!("unexpected line {line:?}")),
    };
    Some(event)
}

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
            .args([
                "child_consume",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
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
        want: fn(&Event) -> bool,
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

/// When the parent kills the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillAt {
    /// This long after the spawn: before or while the child opens the directory.
    Spawn(Duration),
    /// This long after the child is ready to consume.
    Delay(Duration),
    /// As soon as the child reported its k-th processed record (the child commits after
    /// processing, so usually between the two).
    Processed(u64),
    /// As soon as the child announced its k-th commit (during or right after it).
    Committing(u64),
}

/// What the parent knows: the payload hash of every record sent, what was processed, and the
/// group's committed offsets.
struct Model {
    /// Per partition, the payload hash of each offset.
    log: Vec<Vec<u64>>,
    /// Per partition, how many times each offset was processed.
    processed: Vec<BTreeMap<u64, u64>>,
    /// Per partition, the committed offset `describe_group` showed last.
    committed: Vec<Option<u64>>,
    /// Per partition, the highest committed offset a child reported.
    reported: Vec<Option<u64>>,
}

impl Model {
    fn end(&self, p: u32) -> u64 {
        self.log[p as usize].len() as u64
    }

    fn start(&self, p: u32) -> u64 {
        self.committed[p as usize].unwrap_or(0)
    }

    /// The first offset below `below` in `p` that was never processed.
    fn first_unprocessed(&self, p: u32, below: u64) -> Option<u64> {
        (0..below).find(|o| !self.processed[p as usize].contains_key(o))
    }
}

#[derive(Debug, Default)]
struct Totals {
    cycles: [u32; 3],
    kills: BTreeMap<&'static str, u32>,
    processed: u64,
    /// Per commit mode.
    commits_reported: [u64; 3],
    /// Cycles whose child was killed with processed records beyond its last reported commit.
    killed_with_uncommitted_work: u32,
    /// Records processed again in a later cycle than their first processing.
    redelivered_after_kill: u64,
}

#[test]
fn consumed_records_survive_kill_9_at_least_once() {
    let seed = std::env::var(SEED_ENV).map_or_else(
        |_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        },
        |s| s.parse().expect("WHARF_CONSUMER_KILL_SEED must be a u64"),
    );
    let cycles: u32 = std::env::var(CYCLES_ENV).map_or(DEFAULT_CYCLES, |s| {
        s.parse()
            .expect("WHARF_CONSUMER_KILL_CYCLES must be a number")
    });
    assert!(cycles >= 3, "at least one cycle per commit mode");
    println!("consumer_kill: seed {seed}, {cycles} cycles (replay with {SEED_ENV}={seed})");
    let watchdog = Watchdog::start(
        "consumed_records_survive_kill_9_at_least_once",
        Duration::from_secs(300) + Duration::from_secs(3) * cycles,
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut rng = Rng::new(mix(seed, 0xc0de));
    let mut model = Model {
        log: vec![Vec::new(); PARTITIONS as usize],
        processed: vec![BTreeMap::new(); PARTITIONS as usize],
        committed: vec![None; PARTITIONS as usize],
        reported: vec![None; PARTITIONS as usize],
    };
    {
        let wharf = Wharf::open(&dir).expect("open");
        wharf.create_topic(TOPIC, topic_config()).expect("topic");
        append(&wharf, &mut model, PREFILL, &mut rng);
        wharf.close().expect("close");
    }
    let mut totals = Totals::default();
    for cycle in 0..cycles {
        let mode = [Mode::Commit, Mode::Message, Mode::Acked][cycle as usize % 3];
        let context = format!("seed {seed} cycle {cycle} ({mode:?})");
        watchdog.step(context.clone());
        kill_cycle(&dir, mode, &mut rng, &mut model, &mut totals, &context);
        totals.cycles[cycle as usize % 3] += 1;
    }
    watchdog.step("final drain".into());
    let drained = drain(&dir, &mut model, seed);
    drop(watchdog);

    let mut lost = Vec::new();
    let (mut distinct, mut total) = (0u64, 0u64);
    for p in 0..PARTITIONS {
        if let Some(o) = model.first_unprocessed(p, model.end(p)) {
            lost.push((p, o));
        }
        distinct += model.processed[p as usize].len() as u64;
        total += model.processed[p as usize].values().sum::<u64>();
    }
    assert!(
        lost.is_empty(),
        "seed {seed}: records never processed (partition, first offset): {lost:?}"
    );
    println!(
        "consumer_kill summary: seed {seed}; cycles commit {} / commit_message {} / acked {}; \
         kills {:?}; killed with processed-but-uncommitted work {}; records {} ({:?} per \
         partition); processed {total} (in cycles {}, final drain {drained}); commits reported \
         {:?}; duplicates {} (redelivered after a kill {}); losses {}",
        totals.cycles[0],
        totals.cycles[1],
        totals.cycles[2],
        totals.kills,
        totals.killed_with_uncommitted_work,
        (0..PARTITIONS).map(|p| model.end(p)).sum::<u64>(),
        (0..PARTITIONS).map(|p| model.end(p)).collect::<Vec<_>>(),
        totals.processed,
        totals.commits_reported,
        total - distinct,
        totals.redelivered_after_kill,
        lost.len(),
    );
    common::record_reliability(
        "kill_consume",
        &[
            ("kill_cycles_commit", u64::from(totals.cycles[0])),
            ("kill_cycles_commit_message", u64::from(totals.cycles[1])),
            ("kill_cycles_acked", u64::from(totals.cycles[2])),
            ("lost_committed_records", lost.len() as u64),
        ],
    );
    assert!(
        cycles < 30
            || (totals.killed_with_uncommitted_work > 0
                && totals.commits_reported.iter().all(|&n| n > 0)),
        "seed {seed}: no kill landed between processing and commit, or a commit mode never \
         committed: {totals:?}"
    );
}

/// Appends up to `count` records (Fsync) to random partitions and adds them to the model.
fn append(wharf: &Wharf, model: &mut Model, count: u64, rng: &mut Rng) {
    let producer = wharf.producer().ack(AckMode::Fsync).build();
    let mut records = Vec::new();
    let mut next: Vec<u64> = (0..PARTITIONS).map(|p| model.end(p)).collect();
    let mut planned = Vec::new();
    for _ in 0..count {
        let p = rng.below(u64::from(PARTITIONS)) as u32;
        let offset = next[p as usize];
        next[p as usize] += 1;
        let payload = payload_for(p, offset, rng.range(0, 200) as usize);
        planned.push((p, offset, fnv1a(&payload)));
        records.push(Record::new(TOPIC, payload).partition(p));
    }
    if records.is_empty() {
        return;
    }
    let receipts = producer.send_batch(records).expect("append");
    for ((p, offset, hash), receipt) in planned.into_iter().zip(receipts) {
        assert_eq!(
            (receipt.partition(), receipt.offset()),
            (p, offset),
            "the parent's append landed elsewhere"
        );
        model.log[p as usize].push(hash);
    }
}

/// One cycle: run a child until the kill point, kill it, reopen and check, append more.
fn kill_cycle(
    dir: &Path,
    mode: Mode,
    rng: &mut Rng,
    model: &mut Model,
    totals: &mut Totals,
    context: &str,
) {
    let backlog: u64 = (0..PARTITIONS).map(|p| model.end(p) - model.start(p)).sum();
    let kill = match rng.below(100) {
        0..8 => KillAt::Spawn(Duration::from_micros(rng.below(40_000))),
        30..70 if backlog > 0 => KillAt::Processed(rng.range(1, backlog.min(60))),
        70..100 if backlog > 0 && mode != Mode::Acked => {
            // A commit covers at most 8 + 15 records (see `consume_committing`), so the
            // child makes at least this many commits before it runs out of records.
            KillAt::Committing(rng.range(1, (backlog / 24 + 1).min(6)))
        }
        _ => KillAt::Delay(Duration::from_micros(rng.below(30_000))),
    };
    let context = format!("{context}, kill {kill:?}, backlog {backlog}");
    let child = ChildProcess::spawn(&[
        (CHILD_ENV, dir.display().to_string()),
        (CHILD_MODE_ENV, mode.name().to_owned()),
        (CHILD_SEED_ENV, rng.next_u64().to_string()),
    ]);
    let mut events = Vec::new();
    let alive = match kill {
        KillAt::Spawn(delay) => {
            thread::sleep(delay);
            true
        }
        KillAt::Delay(delay) => {
            let alive = child.wait_for(&mut events, |e| *e == Event::Ready, 1, "ready");
            thread::sleep(delay);
            alive
        }
        KillAt::Processed(k) => child.wait_for(
            &mut events,
            |e| matches!(e, Event::Processed { .. }),
            k,
            "processed",
        ),
        KillAt::Committing(k) => {
            child.wait_for(&mut events, |e| *e == Event::Committing, k, "committing")
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
    let name = match kill {
        KillAt::Spawn(_) => "spawn",
        KillAt::Delay(_) => "delay",
        KillAt::Processed(_) => "processed",
        KillAt::Committing(_) => "committing",
    };
    *totals.kills.entry(name).or_default() += 1;
    check_events(model, mode, &events, totals, &context);
    check_reopen(dir, model, rng, &context);
}

/// Checks what the child reported against the model, and adds it.
fn check_events(
    model: &mut Model,
    mode: Mode,
    events: &[Event],
    totals: &mut Totals,
    context: &str,
) {
    let mut first: BTreeMap<u32, u64> = BTreeMap::new();
    // Committing children process in delivery order and nothing is due again within a cycle
    // (`ack_wait` is 30 s): each partition's records come exactly in sequence.
    let mut expected_next: BTreeMap<u32, u64> = BTreeMap::new();
    let mut seen_this_cycle = BTreeSet::new();
    for event in events {
        match *event {
            Event::Processed {
                partition: p,
                offset,
                hash,
            } => {
                assert!(p < PARTITIONS, "{context}: processed partition {p}");
                let end = model.end(p);
                assert!(
                    offset < end,
                    "{context}: processed {p}/{offset} at or past the log end {end}"
                );
                assert_eq!(
                    hash, model.log[p as usize][offset as usize],
                    "{context}: the payload of {p}/{offset} differs from what was sent"
                );
                assert!(
                    offset >= model.start(p),
                    "{context}: processed {p}/{offset} below the committed offset {} the group \
                     restarted from",
                    model.start(p)
                );
                if mode != Mode::Acked {
                    let expected = *expected_next.entry(p).or_insert(model.start(p));
                    assert_eq!(
                        offset, expected,
                        "{context}: the child processed {p}/{offset}, expected the next offset \
                         {expected} (the committed offset {:?} first)",
                        model.committed[p as usize]
                    );
                    expected_next.insert(p, offset + 1);
                }
                let low = first.entry(p).or_insert(offset);
                *low = (*low).min(offset);
                let count = model.processed[p as usize].entry(offset).or_insert(0);
                if *count > 0 && !seen_this_cycle.contains(&(p, offset)) {
                    totals.redelivered_after_kill += 1;
                }
                *count += 1;
                seen_this_cycle.insert((p, offset));
                totals.processed += 1;
            }
            Event::Committed {
                partition: p,
                offset,
            } => {
                assert!(p < PARTITIONS, "{context}: committed partition {p}");
                let end = model.end(p);
                assert!(
                    offset <= end,
                    "{context}: the child reported committed {p}/{offset} past the log end {end}"
                );
                let previous = model.reported[p as usize].max(model.committed[p as usize]);
                assert!(
                    previous.is_none_or(|prev| offset >= prev),
                    "{context}: reported commit {p}/{offset} regresses from {previous:?}"
                );
                if let Some(o) = model.first_unprocessed(p, offset) {
                    panic!(
                        "{context}: committed {p}/{offset} was reported, but record {p}/{o} \
                         was never processed (lost)"
                    );
                }
                model.reported[p as usize] = Some(offset);
                totals.commits_reported[mode as usize] += 1;
            }
            _ => {}
        }
    }
    // Resumed exactly at the committed offset the parent saw after the previous kill (an
    // acking child processes a batch in a shuffled order, so its kill may come before it
    // printed the first record of the batch: it is only held to "at or after", above).
    for (&p, &low) in &first {
        if mode == Mode::Acked {
            continue;
        }
        assert_eq!(
            low,
            model.start(p),
            "{context}: the child's first record of partition {p} is {low}, but the group's \
             committed offset was {:?}",
            model.committed[p as usize]
        );
    }
    // Was the child killed with processed work its last reported commit did not cover?
    let uncommitted = (0..PARTITIONS).any(|p| {
        let covered = model.reported[p as usize].max(model.committed[p as usize]);
        events.iter().any(|e| {
            matches!(*e, Event::Processed { partition, offset, .. }
                if partition == p && covered.is_none_or(|c| offset >= c))
        })
    });
    if uncommitted {
        totals.killed_with_uncommitted_work += 1;
    }
}

/// Reopens after the kill, checks the group's committed offsets, appends more records.
fn check_reopen(dir: &Path, model: &mut Model, rng: &mut Rng, context: &str) {
    let wharf = Wharf::open(dir).unwrap_or_else(|e| panic!("{context}: reopen: {e}"));
    for p in 0..PARTITIONS {
        let reader = wharf.reader(TOPIC, p).expect("reader");
        assert_eq!(
            reader.end_offset(),
            model.end(p),
            "{context}: partition {p} lost records (the child never appends)"
        );
    }
    let committed: Vec<Option<u64>> = match wharf.admin().describe_group(GROUP) {
        Ok(d) => {
            assert!(
                d.damage.is_none(),
                "{context}: damage reported: {:?}",
                d.damage
            );
            (0..PARTITIONS)
                .map(|p| {
                    d.partitions
                        .iter()
                        .find(|pd| pd.lag.partition == TopicPartition::new(TOPIC, p))
                        .and_then(|pd| pd.lag.committed)
                })
                .collect()
        }
        Err(e) if matches!(e.kind(), ErrorKind::GroupNotFound { .. }) => {
            vec![None; PARTITIONS as usize]
        }
        Err(e) => panic!("{context}: describe_group: {e}"),
    };
    for p in 0..PARTITIONS {
        let now = committed[p as usize];
        let before = model.committed[p as usize];
        let reported = model.reported[p as usize];
        assert!(
            now >= before,
            "{context}: committed offset of {p} went back from {before:?} to {now:?} over a kill"
        );
        assert!(
            now >= reported,
            "{context}: committed offset of {p} is {now:?} after the kill, but the child \
             reported a commit of {reported:?}"
        );
        if let Some(c) = now {
            assert!(
                c <= model.end(p),
                "{context}: committed offset {c} of {p} is past the log end {}",
                model.end(p)
            );
            if let Some(o) = model.first_unprocessed(p, c) {
                panic!(
                    "{context}: committed offset of {p} is {c} after the kill, but record \
                     {p}/{o} was never processed (lost)"
                );
            }
        }
    }
    model.committed = committed;
    let more = rng.range(0, 40);
    append(&wharf, model, more, rng);
    wharf
        .close()
        .unwrap_or_else(|e| panic!("{context}: close: {e}"));
}

/// The parent consumes what is left itself; returns how many records it processed.
fn drain(dir: &Path, model: &mut Model, seed: u64) -> u64 {
    let wharf = Wharf::open(dir).expect("final open");
    let mut consumer = wharf
        .consumer(GROUP)
        .subscribe([TOPIC])
        .build()
        .expect("consumer");
    let mut next: Vec<u64> = (0..PARTITIONS).map(|p| model.start(p)).collect();
    let mut drained = 0;
    let deadline = Instant::now() + CHILD_EVENT_LIMIT;
    while (0..PARTITIONS).any(|p| next[p as usize] < model.end(p)) {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: hang: the final drain is stuck at {next:?}, log ends {:?}",
            (0..PARTITIONS).map(|p| model.end(p)).collect::<Vec<_>>()
        );
        for d in consumer
            .poll_batch(256, Duration::from_millis(100))
            .expect("poll")
        {
            let (p, o) = (d.partition(), d.offset());
            assert_eq!(
                o, next[p as usize],
                "seed {seed}: the final drain got {p}/{o}, expected the next offset"
            );
            assert_eq!(
                fnv1a(d.payload()),
                model.log[p as usize][o as usize],
                "seed {seed}: payload of {p}/{o} differs"
            );
            next[p as usize] += 1;
            *model.processed[p as usize].entry(o).or_insert(0) += 1;
            drained += 1;
        }
    }
    consumer.commit().expect("commit");
    let d = wharf.admin().describe_group(GROUP).expect("describe");
    for pd in &d.partitions {
        let p = pd.lag.partition.partition;
        assert_eq!(
            pd.lag.committed,
            Some(model.end(p)),
            "seed {seed}: final commit of {p}"
        );
        assert_eq!(pd.lag.lag, 0);
    }
    consumer.close().expect("close the consumer");
    wharf.close().expect("close");
    drained
}

// ---------------------------------------------------------------------------------------------
// Bit flips in the offsets store
// ---------------------------------------------------------------------------------------------

/// Committed offsets per partition, as `describe_group` shows them.
type State = BTreeMap<u32, u64>;

fn group_state(wharf: &Wharf) -> (State, Option<String>) {
    let d = wharf.admin().describe_group(GROUP).expect("describe_group");
    let state = d
        .partitions
        .iter()
        .filter_map(|pd| Some((pd.lag.partition.partition, pd.lag.committed?)))
        .collect();
    (state, d.damage)
}

#[test]
fn bit_flips_in_the_offsets_file_are_reported_and_an_earlier_state_is_used() {
    let seed = std::env::var(SEED_ENV).map_or_else(
        |_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        },
        |s| s.parse().expect("WHARF_CONSUMER_KILL_SEED must be a u64"),
    );
    let mut rng = Rng::new(mix(seed, 0xb17f));
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let offsets_path = dir.join("groups").join(GROUP).join("offsets");
    let fixture = offsets_fixture(&dir, &offsets_path, &mut rng);
    let record_ends = &fixture.record_ends;
    let original = std::fs::read(&offsets_path).expect("read offsets");
    assert_eq!(original.len() as u64, *record_ends.last().expect("ends"));
    let records = record_ends.len() - 1;
    // Positions: the header, the first, a middle and the last record (each at its start, its
    // middle and its last byte), and random ones.
    let mut positions = vec![0, 5, record_ends[0] as usize - 1];
    for r in [0, records / 2, records - 1] {
        let (start, end) = (record_ends[r] as usize, record_ends[r + 1] as usize);
        positions.extend([start, start + 5, usize::midpoint(start, end), end - 1]);
    }
    for _ in 0..24 {
        positions.push(rng.below(original.len() as u64) as usize);
    }
    positions.sort_unstable();
    positions.dedup();
    let mut failures = Vec::new();
    for &at in &positions {
        let flip = rng.range(1, 255) as u8;
        if let Err(e) = flip_and_check(&dir, &offsets_path, &original, (at, flip), &fixture) {
            failures.push(format!("byte {at} ^ {flip:#04x}: {e}"));
        }
    }
    println!(
        "consumer_kill bit flips: seed {seed}; offsets file of {} bytes ({} commit records), {} \
         flipped positions, {} failed",
        original.len(),
        records,
        positions.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "seed {seed} (replay with {SEED_ENV}={seed}): {} of {} bit flips mishandled \
         (record ends {record_ends:?}):\n{}",
        failures.len(),
        positions.len(),
        failures.join("\n")
    );
}

/// A group whose offsets file holds several commit records, each changing the state.
struct Fixture {
    /// Log end per partition.
    ends: Vec<u64>,
    /// `prefix[k]`: the state after the first k commit records.
    prefix: Vec<State>,
    /// `record_ends[k]`: the file length after the first k commit records (`[0]`: the header).
    record_ends: Vec<u64>,
}

/// Sends records, commits in several steps (`commit`, `commit_message`, and the commit of the
/// acknowledged progress when the consumer closes), and closes cleanly.
fn offsets_fixture(dir: &Path, offsets_path: &Path, rng: &mut Rng) -> Fixture {
    let (mut prefix, mut record_ends) = (vec![State::new()], Vec::new());
    let wharf = Wharf::open(dir).expect("open");
    wharf.create_topic(TOPIC, topic_config()).expect("topic");
    let mut model = Model {
        log: vec![Vec::new(); PARTITIONS as usize],
        processed: vec![BTreeMap::new(); PARTITIONS as usize],
        committed: vec![None; PARTITIONS as usize],
        reported: vec![None; PARTITIONS as usize],
    };
    append(&wharf, &mut model, 90, rng);
    let ends = (0..PARTITIONS).map(|p| model.end(p)).collect();
    let mut consumer = wharf
        .consumer(GROUP)
        .subscribe([TOPIC])
        .build()
        .expect("consumer");
    record_ends.push(std::fs::metadata(offsets_path).expect("offsets").len());
    for i in 0..8 {
        let batch = consumer
            .poll_batch(rng.range(1, 12) as usize, Duration::from_secs(5))
            .expect("poll");
        assert!(!batch.is_empty(), "records to consume");
        if i % 2 == 0 {
            consumer.commit().expect("commit");
        } else {
            let last = batch.last().expect("a delivery");
            consumer.commit_message(last).expect("commit_message");
        }
        drop(batch);
        prefix.push(group_state(&wharf).0);
        record_ends.push(std::fs::metadata(offsets_path).expect("offsets").len());
    }
    // Acknowledged but uncommitted progress: closing the consumer commits it, so the last
    // record of the file holds a state no other record holds.
    for d in consumer
        .poll_batch(5, Duration::from_secs(5))
        .expect("poll")
    {
        d.ack().expect("ack");
    }
    consumer.close().expect("close the consumer");
    wharf.close().expect("close");
    let len = std::fs::metadata(offsets_path).expect("offsets").len();
    let wharf = Wharf::open(dir).expect("open");
    let last = group_state(&wharf).0;
    wharf.close().expect("close");
    assert!(
        len > *record_ends.last().expect("ends") && Some(&last) != prefix.last(),
        "closing the consumer committed its acknowledged progress"
    );
    prefix.push(last);
    record_ends.push(len);
    Fixture {
        ends,
        prefix,
        record_ends,
    }
}

/// Writes `original` with byte `at` flipped, reopens and checks; restores nothing (the next
/// trial writes the file again).
fn flip_and_check(
    dir: &Path,
    offsets_path: &Path,
    original: &[u8],
    (at, flip): (usize, u8),
    fixture: &Fixture,
) -> Result<(), String> {
    let Fixture {
        ends,
        prefix,
        record_ends,
    } = fixture;
    let group_dir = offsets_path.parent().expect("group dir");
    for entry in std::fs::read_dir(group_dir).expect("group dir") {
        let path = entry.expect("entry").path();
        if path != offsets_path {
            std::fs::remove_file(&path).expect("remove evidence of an earlier trial");
        }
    }
    let mut bytes = original.to_vec();
    bytes[at] ^= flip;
    std::fs::write(offsets_path, &bytes).expect("write the flipped file");
    let wharf = Wharf::open(dir).map_err(|e| format!("open: {e}"))?;
    let (state, damage) = group_state(&wharf);
    // The records wholly before the flipped byte are intact: the state of any prefix of them
    // is acceptable (a flip in the header may leave all of them usable), nothing else.
    let intact = record_ends
        .iter()
        .filter(|&&end| end as usize <= at)
        .count()
        .saturating_sub(1);
    let allowed: Vec<&State> = if at < record_ends[0] as usize {
        prefix.iter().collect()
    } else {
        // The last valid state: that of the records before the damaged one.
        vec![&prefix[intact]]
    };
    let mut problems = Vec::new();
    if damage.is_none() {
        problems.push("no damage reported".to_owned());
    }
    if !allowed.contains(&&state) {
        problems.push(format!(
            "committed offsets {state:?} are not the state of the intact records before the \
             damage ({intact} intact records; allowed states {allowed:?})"
        ));
    }
    for (&p, &c) in &state {
        if p >= PARTITIONS || c > ends[p as usize] {
            problems.push(format!("committed {p}/{c} is past the log end {ends:?}"));
        }
    }
    let evidence = std::fs::read_dir(group_dir)
        .expect("group dir")
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("offsets.damaged-")
        });
    if damage.is_some() && !evidence {
        problems.push("damage reported but no offsets.damaged-<n> evidence kept".to_owned());
    }
    // Consuming continues from the state used, through to the end.
    let resumed = consume_to_end(&wharf, &state, ends);
    if let Err(e) = resumed {
        problems.push(e);
    }
    wharf.close().map_err(|e| format!("close: {e}"))?;
    // The repaired file opens cleanly and holds the final commit.
    let wharf = Wharf::open(dir).map_err(|e| format!("second open: {e}"))?;
    let (after, damage_after) = group_state(&wharf);
    let full: State = (0..PARTITIONS).map(|p| (p, ends[p as usize])).collect();
    if damage_after.is_some() || after != full {
        problems.push(format!(
            "after consuming to the end and a clean close: damage {damage_after:?}, committed \
             {after:?}, expected {full:?}"
        ));
    }
    wharf.close().map_err(|e| format!("close: {e}"))?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "damage {damage:?}; {} (state used {state:?}; the last commit was {:?})",
            problems.join("; "),
            prefix.last()
        ))
    }
}

/// Consumes the group from `state` to the log ends, checking it resumes exactly there.
fn consume_to_end(wharf: &Wharf, state: &State, ends: &[u64]) -> Result<(), String> {
    let mut consumer = wharf
        .consumer(GROUP)
        .subscribe([TOPIC])
        .build()
        .map_err(|e| format!("consumer: {e}"))?;
    let mut next: Vec<u64> = (0..PARTITIONS)
        .map(|p| state.get(&p).copied().unwrap_or(0).min(ends[p as usize]))
        .collect();
    let deadline = Instant::now() + CHILD_EVENT_LIMIT;
    while (0..PARTITIONS).any(|p| next[p as usize] < ends[p as usize]) {
        if Instant::now() >= deadline {
            return Err(format!(
                "hang: consuming after the repair is stuck at {next:?}"
            ));
        }
        let batch = consumer
            .poll_batch(256, Duration::from_millis(100))
            .map_err(|e| format!("poll: {e}"))?;
        for d in batch {
            let (p, o) = (d.partition(), d.offset());
            if o != next[p as usize] {
                return Err(format!(
                    "after the repair the group delivered {p}/{o}, expected {}",
                    next[p as usize]
                ));
            }
            next[p as usize] += 1;
        }
    }
    consumer.commit().map_err(|e| format!("commit: {e}"))?;
    consumer
        .close()
        .map_err(|e| format!("close the consumer: {e}"))
}
