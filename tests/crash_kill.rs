//! Real-process crash tests (RELIABILITY.md section 3, "real-process tier"; fault scenarios 1
//! and 8).
//!
//! - `acked_records_survive_kill_9_at_random_points`: the test binary re-runs itself as a child
//!   (sled's pattern) that appends forever under `AckMode::Write` or `AckMode::Fsync` and reports
//!   every returned ack on stdout; the parent SIGKILLs it at a random point (also while it is
//!   still opening and recovering), reopens the directory and checks invariants I1 and I2: every
//!   acked record is at its acked partition and offset, byte-identical, and each partition is a
//!   gap-free, duplicate-free, in-order prefix of what the child attempted. State accumulates
//!   over all cycles in one directory.
//! - `flushed_nowait_records_survive_kill_9_at_random_points`: the same for records sent
//!   without waiting: the child sends with `send_oneway` into the producer's batches, calls
//!   `flush` every N records (N random per cycle) and reports how far each completed flush got;
//!   after the kill every record below the last reported flush is there, each partition is an
//!   in-order prefix of what the child attempted, and nothing the child had not yet sent
//!   appears. A tenth of `WHARF_KILL_CYCLES` cycles, in a fresh directory every 25.
//! - `the_directory_lock_*`: invariant I9, across processes and within one.
//!
//! A failure prints the seed; `WHARF_KILL_SEED=<seed>` replays the same workload (the kill
//! points are timing, so they vary), `WHARF_KILL_CYCLES=<n>` runs a longer soak.

#![allow(clippy::cast_possible_truncation)]

mod common;

use common::kill::{Watchdog, killed_by_sigkill};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wharf::{
    AckMode, ErrorKind, Message, Producer, ReadOptions, Record, SendReceipt, TopicConfig, Wharf,
};

/// Set in an appending child: the data directory.
const CHILD_ENV: &str = "WHARF_KILL_CHILD";
/// Set in an appending child: `write` or `fsync`.
const CHILD_ACK_ENV: &str = "WHARF_KILL_CHILD_ACK";
/// Set in an appending child: the cycle's seed.
const CHILD_SEED_ENV: &str = "WHARF_KILL_CHILD_SEED";
/// Set in an appending child: the cycle number.
const CHILD_CYCLE_ENV: &str = "WHARF_KILL_CHILD_CYCLE";
/// Set in a child sending without waiting: the data directory.
const NOWAIT_CHILD_ENV: &str = "WHARF_KILL_NOWAIT_CHILD";
/// Set in a lock-holding child: the data directory.
const LOCK_CHILD_ENV: &str = "WHARF_LOCK_CHILD";
/// Replays a run.
const SEED_ENV: &str = "WHARF_KILL_SEED";
/// Number of kill cycles (default [`DEFAULT_CYCLES`]).
const CYCLES_ENV: &str = "WHARF_KILL_CYCLES";

const DEFAULT_CYCLES: u32 = 1_000;
/// The `NoWait` workload runs this fraction of the cycles (100 by default).
const NOWAIT_CYCLES_DIVISOR: u32 = 10;
/// The `NoWait` workload starts a fresh directory every this many cycles: its children send
/// far more records per cycle than the acked ones, and a directory of thousands of small
/// segments would make every open slower than the cycle itself.
const NOWAIT_CYCLES_PER_DIR: u32 = FULL_CHECK_EVERY;
const TOPIC: &str = "crash";
const PARTITIONS: u32 = 3;
const SEGMENT_BYTES: u64 = 8 * 1024;
/// Prefix of every line a child writes for the parent (libtest writes its own lines too).
const LINE_PREFIX: &str = "WHARF ";
/// Magic at the start of every payload.
const PAYLOAD_MAGIC: &[u8; 4] = b"WKIL";
/// Payload header: magic, cycle (u32), seq (u64), partition (u32), fill length (u32), fill
/// checksum (u64).
const PAYLOAD_HEADER_LEN: usize = 32;
/// Re-read every record of the directory every this many cycles (and at the end).
const FULL_CHECK_EVERY: u32 = 25;
/// Hang guard: a child that has not opened by then is hung.
const CHILD_START_LIMIT: Duration = Duration::from_secs(60);

fn topic_config() -> TopicConfig {
    TopicConfig::default()
        .partitions(PARTITIONS)
        .segment_bytes(SEGMENT_BYTES)
        .index_interval_bytes(256)
        .max_message_bytes(2_048)
}

// ---------------------------------------------------------------------------------------------
// Deterministic workload
// ---------------------------------------------------------------------------------------------

/// `SplitMix64`: small, seedable, good enough to pick lengths and delays.
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

fn cycle_seed(seed: u64, cycle: u32) -> u64 {
    mix(seed, u64::from(cycle) + 1)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Record number `seq` of one child run (a cycle): where it goes and what it carries. A pure
/// function of the cycle's seed and `seq`, so the parent knows exactly what the child attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    partition: u32,
    payload: Vec<u8>,
    key: Option<Vec<u8>>,
    header: Option<Vec<u8>>,
}

fn plan(cycle: u32, cycle_seed: u64, seq: u64) -> Planned {
    let mut rng = Rng::new(mix(cycle_seed, seq));
    let partition = rng.below(u64::from(PARTITIONS)) as u32;
    let fill_len = match rng.below(100) {
        0..5 => 0,
        5..85 => rng.range(1, 300),
        85..97 => rng.range(301, 1_200),
        _ => rng.range(1_201, 1_900),
    } as usize;
    let mut fill_rng = Rng::new(mix(cycle_seed ^ 0x5eed_f111, seq));
    let fill: Vec<u8> = (0..fill_len).map(|_| fill_rng.next_u64() as u8).collect();
    let mut payload = Vec::with_capacity(PAYLOAD_HEADER_LEN + fill_len);
    payload.extend_from_slice(PAYLOAD_MAGIC);
    payload.extend_from_slice(&cycle.to_le_bytes());
    payload.extend_from_slice(&seq.to_le_bytes());
    payload.extend_from_slice(&partition.to_le_bytes());
    payload.extend_from_slice(&(fill_len as u32).to_le_bytes());
    payload.extend_from_slice(&fnv1a(&fill).to_le_bytes());
    payload.extend_from_slice(&fill);
    let key = (rng.below(4) == 0).then(|| format!("key-{cycle}-{seq}").into_bytes());
    let header = (rng.below(5) == 0).then(|| seq.to_le_bytes().to_vec());
    Planned {
        partition,
        payload,
        key,
        header,
    }
}

impl Planned {
    fn record(&self) -> Record {
        let mut record = Record::new(TOPIC, self.payload.clone()).partition(self.partition);
        if let Some(key) = &self.key {
            record = record.key(key.clone());
        }
        if let Some(value) = &self.header {
            record = record.header("seq", value.clone());
        }
        record
    }

    /// Why `message` is not this record, if it is not.
    fn mismatch(&self, message: &Message) -> Option<String> {
        if message.payload()[..] != self.payload[..] {
            return Some(format!(
                "payload differs: found {} ({} bytes), expected {} ({} bytes)",
                describe_payload(message.payload()),
                message.payload().len(),
                describe_payload(&self.payload),
                self.payload.len()
            ));
        }
        if message.key() != self.key.as_deref() {
            return Some(format!(
                "key differs: found {:?}, expected {:?}",
                message.key(),
                self.key
            ));
        }
        if message.header("seq") != self.header.as_deref() || message.headers().count() > 1 {
            return Some(format!(
                "headers differ: found {:?}, expected seq={:?}",
                message.headers().collect::<Vec<_>>(),
                self.header
            ));
        }
        None
    }
}

/// What a payload says about itself, for failure messages.
fn describe_payload(payload: &[u8]) -> String {
    if payload.len() < PAYLOAD_HEADER_LEN || &payload[..4] != PAYLOAD_MAGIC {
        return format!(
            "<not a test payload: {:02x?}>",
            &payload[..payload.len().min(16)]
        );
    }
    let u32_at = |at: usize| u32::from_le_bytes(payload[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().unwrap());
    let fill = &payload[PAYLOAD_HEADER_LEN..];
    let intact = u32_at(20) as usize == fill.len() && u64_at(24) == fnv1a(fill);
    format!(
        "<cycle {} seq {} partition {}, fill {}>",
        u32_at(4),
        u64_at(8),
        u32_at(16),
        if intact { "intact" } else { "DAMAGED" }
    )
}

// ---------------------------------------------------------------------------------------------
// The appending child
// ---------------------------------------------------------------------------------------------

/// The child side of `acked_records_survive_kill_9_at_random_points`; does nothing in a normal
/// test run (the variable is absent).
#[test]
fn child_append() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let ack = match std::env::var(CHILD_ACK_ENV).expect("ack").as_str() {
        "write" => AckMode::Write,
        "fsync" => AckMode::Fsync,
        other => panic!("unknown ack mode {other}"),
    };
    let seed: u64 = std::env::var(CHILD_SEED_ENV)
        .expect("seed")
        .parse()
        .expect("seed");
    let cycle: u32 = std::env::var(CHILD_CYCLE_ENV)
        .expect("cycle")
        .parse()
        .expect("cycle");
    exit_when_parent_goes();
    let mut out = std::io::stdout().lock();
    let (wharf, next) = open_in_child(&dir, seed, &mut out);
    append_forever(
        &wharf.producer().ack(ack).build(),
        cycle,
        seed,
        next,
        &mut out,
    );
}

/// Opens the directory for a child and ensures the topic, reporting `opening` and then
/// `opened` with the log ends; returns the Wharf and the log ends.
fn open_in_child(dir: &str, seed: u64, mut out: &mut impl Write) -> (Wharf, Vec<u64>) {
    // A background flush policy from eager to the default, so kills also land in background
    // syncs, segment finalization and checkpoint writes.
    let mut options = Rng::new(mix(seed, 0xf1a5));
    let mut builder = Wharf::builder(dir).flush_interval(match options.below(4) {
        0 => wharf::DEFAULT_FLUSH_INTERVAL,
        n => Duration::from_millis(n * n),
    });
    if options.below(2) == 0 {
        builder = builder.flush_messages(options.range(1, 64));
    }
    say(&mut out, "opening");
    let wharf = builder
        .open()
        .unwrap_or_else(|e| fail(&mut out, &format!("open: {e}")));
    if let Err(e) = wharf.ensure_topic(TOPIC, topic_config()) {
        fail(&mut out, &format!("ensure_topic: {e}"));
    }
    let mut next = Vec::new();
    for p in 0..PARTITIONS {
        match wharf.reader(TOPIC, p) {
            Ok(reader) => next.push(reader.end_offset()),
            Err(e) => fail(&mut out, &format!("reader {p}: {e}")),
        }
    }
    say(
        &mut out,
        &format!(
            "opened {}",
            next.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    (wharf, next)
}

/// The child side of `flushed_nowait_records_survive_kill_9_at_random_points`; does nothing
/// in a normal test run (the variable is absent).
#[test]
fn child_append_nowait() {
    let Ok(dir) = std::env::var(NOWAIT_CHILD_ENV) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED_ENV)
        .expect("seed")
        .parse()
        .expect("seed");
    let cycle: u32 = std::env::var(CHILD_CYCLE_ENV)
        .expect("cycle")
        .parse()
        .expect("cycle");
    exit_when_parent_goes();
    let mut out = std::io::stdout().lock();
    let (wharf, _) = open_in_child(&dir, seed, &mut out);
    // Batches from a few records to the default 16 KiB, and a linger from eager to never, so
    // kills land with batches open, filling, lingering out and being flushed.
    let mut options = Rng::new(mix(seed, 0x0a17));
    let batch_bytes = [256, 1_024, 4_096, wharf::DEFAULT_BATCH_BYTES][options.below(4) as usize];
    let linger = match options.below(3) {
        0 => Duration::from_millis(1),
        1 => wharf::DEFAULT_LINGER,
        _ => Duration::from_secs(3_600),
    };
    let flush_every = options.range(1, 64);
    let producer = wharf
        .producer()
        .ack(AckMode::NoWait)
        .batch_bytes(batch_bytes)
        .linger(linger)
        .build();
    let mut seq = 0u64;
    loop {
        // Announced before any of them is sent: the parent's bound on what may appear.
        let end = seq + flush_every;
        say(&mut out, &format!("sending {end}"));
        for s in seq..end {
            if let Err(e) = producer.send_oneway(plan(cycle, seed, s).record()) {
                fail(&mut out, &format!("send_oneway seq {s}: {e}"));
            }
        }
        if let Err(e) = producer.flush() {
            fail(&mut out, &format!("flush after seq {}: {e}", end - 1));
        }
        say(&mut out, &format!("flushed {end}"));
        seq = end;
    }
}

/// Sends the cycle's records, one by one, in batches and asynchronously, and reports each
/// returned ack as `ack <partition> <offset> <seq>`.
fn append_forever(
    producer: &Producer,
    cycle: u32,
    seed: u64,
    mut next: Vec<u64>,
    out: &mut impl Write,
) -> ! {
    let mut ops = Rng::new(mix(seed, 0x0b5));
    let mut seq = 0u64;
    let mut line = String::new();
    loop {
        let count = match ops.below(10) {
            0..6 => 1,
            6..8 => ops.range(2, 12),
            _ => 0, // an asynchronous send, waited on
        };
        let planned: Vec<(u64, Planned)> = (seq..seq + count.max(1))
            .map(|s| (s, plan(cycle, seed, s)))
            .collect();
        let result: wharf::Result<Vec<SendReceipt>> = match count {
            0 => producer
                .send_async(planned[0].1.record())
                .wait()
                .map(|r| vec![r]),
            1 => producer.send(planned[0].1.record()).map(|r| vec![r]),
            _ => producer.send_batch(planned.iter().map(|(_, p)| p.record())),
        };
        let receipts = result.unwrap_or_else(|e| fail(out, &format!("send seq {seq}: {e}")));
        line.clear();
        for ((s, p), receipt) in planned.iter().zip(&receipts) {
            let expected = next[p.partition as usize];
            if receipt.partition() != p.partition || receipt.offset() != expected {
                fail(
                    out,
                    &format!(
                        "seq {s}: receipt {}/{} but the log end was {}/{expected}",
                        receipt.partition(),
                        receipt.offset(),
                        p.partition
                    ),
                );
            }
            next[p.partition as usize] += 1;
            let _ = writeln!(
                line,
                "{LINE_PREFIX}ack {} {} {s}",
                receipt.partition(),
                receipt.offset()
            );
        }
        if receipts.len() != planned.len() {
            fail(
                out,
                &format!("{} receipts for {} records", receipts.len(), planned.len()),
            );
        }
        if out
            .write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            std::process::exit(3); // the parent is gone
        }
        seq += planned.len() as u64;
    }
}

/// Writes one line for the parent, or exits if the parent is gone.
fn say(out: &mut impl Write, what: &str) {
    if writeln!(out, "{LINE_PREFIX}{what}")
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(3);
    }
}

/// Reports a failure to the parent and exits (an exit the parent did not cause fails the test).
fn fail(out: &mut impl Write, what: &str) -> ! {
    let _ = writeln!(out, "{LINE_PREFIX}error {what}");
    let _ = out.flush();
    std::process::exit(2);
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

#[derive(Debug)]
enum Event {
    Opening,
    Opened(Vec<u64>),
    Ready,
    Ack {
        partition: u32,
        offset: u64,
        seq: u64,
    },
    /// A `NoWait` child will send the records below this sequence number (and no others).
    Sending(u64),
    /// A `NoWait` child's flush returned: every record below this sequence number is appended.
    Flushed(u64),
    Error(String),
}

fn parse_line(line: &str) -> Option<Event> {
    // libtest may have started the line ("test child_append ... ") before the test ran.
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
        ("opened", Some(ends)) => Event::Opened(ends.to_vec()),
        ("ack", Some(&[partition, offset, seq])) => Event::Ack {
            partition: partition as u32,
            offset,
            seq,
        },
        ("sending", Some(&[end])) => Event::Sending(end),
        ("flushed", Some(&[end])) => Event::Flushed(end),
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
    fn spawn(test: &str, envs: &[(&str, String)]) -> Self {
        let exe = std::env::current_exe().expect("current_exe");
        let mut command = Command::new(exe);
        command
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
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

    /// Waits for an event matching `want`, keeping every event received on the way in `seen`.
    /// `false` if the child's stdout ended first.
    fn wait_for(&self, seen: &mut Vec<Event>, want: fn(&Event) -> bool, what: &str) -> bool {
        let deadline = Instant::now() + CHILD_START_LIMIT;
        loop {
            match self
                .events
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(event) => {
                    let found = want(&event);
                    seen.push(event);
                    if found {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return false,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("hang: the child did not report {what:?} within {CHILD_START_LIMIT:?}")
                }
            }
        }
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
// Kill -9 cycles
// ---------------------------------------------------------------------------------------------

/// When the parent kills the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillAt {
    /// This long after the spawn: usually before the child even reaches `Wharf::open`.
    Spawn(Duration),
    /// This long after the child said it is opening: during open, recovery or topic creation.
    Opening(Duration),
    /// This long after the child opened: while it appends.
    Running(Duration),
}

/// How the parent reopens the directory to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reopen {
    /// Read-only: changes nothing, so the next child runs the crash recovery itself.
    ReadOnly,
    /// Writable (the parent recovers), then closed cleanly.
    Close,
    /// Writable (the parent recovers), then let go of like a killed process.
    Crash,
}

/// What the parent knows: every record each partition must hold, in offset order, as
/// `(cycle, seq)`.
struct Model {
    seed: u64,
    partitions: Vec<Vec<(u32, u64)>>,
}

impl Model {
    fn expected(&self, (cycle, seq): (u32, u64)) -> Planned {
        plan(cycle, cycle_seed(self.seed, cycle), seq)
    }

    fn lens(&self) -> Vec<u64> {
        self.partitions.iter().map(|p| p.len() as u64).collect()
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct ModeStats {
    cycles: u32,
    acked: u64,
    unacked_present: u64,
}

#[derive(Debug, Default)]
struct Totals {
    write: ModeStats,
    fsync: ModeStats,
    killed_before_open: u32,
    killed_during_open: u32,
    killed_while_appending: u32,
    full_checks: u32,
}

/// What one cycle's check found.
#[derive(Debug, Default)]
struct CycleCheck {
    acked: u64,
    unacked_present: u64,
}

#[test]
fn acked_records_survive_kill_9_at_random_points() {
    let seed = std::env::var(SEED_ENV).map_or_else(
        |_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        },
        |s| s.parse().expect("WHARF_KILL_SEED must be a u64"),
    );
    let cycles: u32 = std::env::var(CYCLES_ENV).map_or(DEFAULT_CYCLES, |s| {
        s.parse().expect("WHARF_KILL_CYCLES must be a number")
    });
    assert!(cycles >= 2, "at least one cycle per ack mode");
    println!("crash_kill: seed {seed}, {cycles} cycles (replay with {SEED_ENV}={seed})");
    let watchdog = Watchdog::start(
        "acked_records_survive_kill_9_at_random_points",
        Duration::from_secs(600) + Duration::from_secs(3) * cycles,
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut rng = Rng::new(mix(seed, 0x9a2e));
    let mut model = Model {
        seed,
        partitions: vec![Vec::new(); PARTITIONS as usize],
    };
    let mut totals = Totals::default();
    for cycle in 0..cycles {
        kill_cycle(
            &dir,
            cycle,
            cycles,
            &mut rng,
            &mut model,
            &mut totals,
            &watchdog,
        );
    }

    // Last, a plain writable open must find everything, and keep it across a clean close.
    watchdog.step("final reopen".into());
    let wharf = Wharf::open(&dir).unwrap_or_else(|e| panic!("seed {seed}: final open: {e}"));
    check_all(&wharf, &model).unwrap_or_else(|e| panic!("seed {seed}: final check: {e}"));
    wharf.close().expect("close");
    let wharf = Wharf::open(&dir).expect("open after a clean close");
    assert!(wharf.recovery_stats().clean_shutdown);
    check_all(&wharf, &model).unwrap_or_else(|e| panic!("seed {seed}: after a clean close: {e}"));
    wharf.close().expect("close");
    drop(watchdog);

    let lost: u64 = 0; // any loss panicked above, naming the cycle and the record
    println!(
        "crash_kill summary: seed {seed}; cycles Write {} / Fsync {}; kills before open {}, \
         during open {}, while appending {}; acked records checked: Write {} / Fsync {} \
         (unacked but present: {} / {}); full re-reads {}; records now {:?}; records lost: {lost}",
        totals.write.cycles,
        totals.fsync.cycles,
        totals.killed_before_open,
        totals.killed_during_open,
        totals.killed_while_appending,
        totals.write.acked,
        totals.fsync.acked,
        totals.write.unacked_present,
        totals.fsync.unacked_present,
        totals.full_checks,
        model.lens(),
    );
    // The run must have exercised both modes, not just killed children before they sent.
    assert!(
        totals.write.acked > 0 && totals.fsync.acked > 0,
        "seed {seed}: no acks under one ack mode: {totals:?}"
    );
    common::record_reliability(
        "kill_produce",
        &[
            ("kill_cycles_write", u64::from(totals.write.cycles)),
            ("kill_cycles_fsync", u64::from(totals.fsync.cycles)),
            ("acked_write_messages_checked", totals.write.acked),
            ("acked_fsync_messages_checked", totals.fsync.acked),
            ("lost_write_acks_under_kill", lost),
            ("lost_fsync_acks", lost),
        ],
    );
}

/// One cycle: run a child, kill it, reopen, check, and add what the cycle left to the model.
fn kill_cycle(
    dir: &Path,
    cycle: u32,
    cycles: u32,
    rng: &mut Rng,
    model: &mut Model,
    totals: &mut Totals,
    watchdog: &Watchdog,
) {
    let seed = model.seed;
    let ack = if cycle % 2 == 0 {
        AckMode::Write
    } else {
        AckMode::Fsync
    };
    let kill = match rng.below(100) {
        _ if cycle < 2 => KillAt::Opening(Duration::from_micros(rng.below(3_000))),
        0..6 => KillAt::Spawn(Duration::from_micros(rng.below(5_000))),
        6..20 => KillAt::Opening(Duration::from_micros(rng.below(3_000))),
        _ => KillAt::Running(Duration::from_micros(rng.below(20_001))),
    };
    let reopen = match rng.below(10) {
        0..5 => Reopen::ReadOnly,
        5..8 => Reopen::Close,
        _ => Reopen::Crash,
    };
    let full = (cycle + 1) % FULL_CHECK_EVERY == 0 || cycle + 1 == cycles;
    let context = format!("seed {seed} cycle {cycle} ({ack:?}, kill {kill:?}, {reopen:?})");
    watchdog.step(format!("{context}: child running"));

    let (events, reached) = run_child(dir, seed, cycle, ack, kill, &context);
    match reached {
        Reached::Nothing => totals.killed_before_open += 1,
        Reached::Opening => totals.killed_during_open += 1,
        Reached::Opened => totals.killed_while_appending += 1,
    }
    if let Some(ends) = events.iter().find_map(|e| match e {
        Event::Opened(ends) => Some(ends),
        _ => None,
    }) {
        assert_eq!(
            ends,
            &model.lens(),
            "{context}: the child recovered other log ends than the parent saw last"
        );
    }
    let acks: Vec<(u32, u64, u64)> = events
        .iter()
        .filter_map(|e| match *e {
            Event::Ack {
                partition,
                offset,
                seq,
            } => Some((partition, offset, seq)),
            _ => None,
        })
        .collect();

    watchdog.step(format!("{context}: parent reopening"));
    let check = reopen_and_check(dir, model, reopen, full, |wharf, model| {
        check_cycle(wharf, model, cycle, &acks, rng)
    })
    .unwrap_or_else(|e| panic!("{context}: {e}"));
    if full {
        totals.full_checks += 1;
    }
    let stats = if ack == AckMode::Write {
        &mut totals.write
    } else {
        &mut totals.fsync
    };
    stats.cycles += 1;
    stats.acked += check.acked;
    stats.unacked_present += check.unacked_present;
}

/// How far a child got before the kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reached {
    Nothing,
    Opening,
    Opened,
}

fn run_child(
    dir: &Path,
    seed: u64,
    cycle: u32,
    ack: AckMode,
    kill: KillAt,
    context: &str,
) -> (Vec<Event>, Reached) {
    let ack_name = if ack == AckMode::Write {
        "write"
    } else {
        "fsync"
    };
    run_child_test(
        "child_append",
        &[
            (CHILD_ENV, dir.display().to_string()),
            (CHILD_ACK_ENV, ack_name.to_owned()),
            (CHILD_SEED_ENV, cycle_seed(seed, cycle).to_string()),
            (CHILD_CYCLE_ENV, cycle.to_string()),
        ],
        kill,
        context,
    )
}

/// Runs the child test `test` with `envs`, kills it at `kill`, and checks that it was running
/// until then; returns what it reported and how far it got.
fn run_child_test(
    test: &str,
    envs: &[(&str, String)],
    kill: KillAt,
    context: &str,
) -> (Vec<Event>, Reached) {
    let child = ChildProcess::spawn(test, envs);
    let mut events = Vec::new();
    let alive = match kill {
        KillAt::Spawn(delay) => {
            thread::sleep(delay);
            true
        }
        KillAt::Opening(delay) => {
            let alive = child.wait_for(&mut events, |e| matches!(e, Event::Opening), "opening");
            thread::sleep(delay);
            alive
        }
        KillAt::Running(delay) => {
            let alive = child.wait_for(&mut events, |e| matches!(e, Event::Opened(_)), "opened");
            thread::sleep(delay);
            alive
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
    let reached = if events.iter().any(|e| matches!(e, Event::Opened(_))) {
        Reached::Opened
    } else if events.iter().any(|e| matches!(e, Event::Opening)) {
        Reached::Opening
    } else {
        Reached::Nothing
    };
    (events, reached)
}

/// Reopens `dir` as `reopen` says and checks it with `check_cycle` (which adds what the cycle
/// left in the log to the model), then, if `full`, re-reads everything.
fn reopen_and_check<T>(
    dir: &Path,
    model: &mut Model,
    reopen: Reopen,
    full: bool,
    check_cycle: impl FnOnce(&Wharf, &mut Model) -> Result<T, String>,
) -> Result<T, String> {
    let wharf = match reopen {
        Reopen::ReadOnly => Wharf::builder(dir).read_only(true).open(),
        Reopen::Close | Reopen::Crash => Wharf::open(dir),
    }
    .map_err(|e| format!("reopen ({reopen:?}) failed: {e}"))?;
    let check = check_cycle(&wharf, model)?;
    if full {
        check_all(&wharf, model)?;
    }
    match reopen {
        Reopen::ReadOnly => drop(wharf),
        Reopen::Close => wharf.close().map_err(|e| format!("close failed: {e}"))?,
        Reopen::Crash => wharf.simulate_crash(),
    }
    Ok(check)
}

/// Every message of `[from, to)` in one partition, in order, with contiguous offsets.
fn read_range(wharf: &Wharf, partition: u32, from: u64, to: u64) -> Result<Vec<Message>, String> {
    let reader = wharf
        .reader(TOPIC, partition)
        .map_err(|e| format!("reader {partition}: {e}"))?;
    let mut out = Vec::new();
    let mut offset = from;
    while offset < to {
        let batch = reader
            .read(offset, ReadOptions::default().max_records(1_000))
            .map_err(|e| format!("partition {partition}: read at {offset} failed: {e}"))?;
        if batch.is_empty() {
            return Err(format!(
                "partition {partition}: empty read at {offset} below the end {to}"
            ));
        }
        for message in &batch {
            if offset >= to {
                break;
            }
            if message.offset() != offset {
                return Err(format!(
                    "partition {partition}: expected offset {offset}, read {} (gap or duplicate)",
                    message.offset()
                ));
            }
            out.push(message.to_message());
            offset += 1;
        }
    }
    Ok(out)
}

/// The log ends, checking the topic and that every partition starts at 0. `None` if the topic
/// does not exist (yet).
fn log_ends(wharf: &Wharf) -> Result<Option<Vec<u64>>, String> {
    let topics = wharf.topics();
    let Some(info) = topics.iter().find(|t| t.name() == TOPIC) else {
        return if topics.is_empty() {
            Ok(None)
        } else {
            Err(format!("unexpected topics {topics:?}"))
        };
    };
    if topics.len() != 1 || *info.config() != topic_config() {
        return Err(format!("unexpected topics {topics:?}"));
    }
    let mut ends = Vec::new();
    for p in 0..PARTITIONS {
        let reader = wharf
            .reader(TOPIC, p)
            .map_err(|e| format!("reader {p}: {e}"))?;
        if reader.start_offset() != 0 {
            return Err(format!(
                "partition {p} starts at {}, not 0",
                reader.start_offset()
            ));
        }
        ends.push(reader.end_offset());
    }
    Ok(Some(ends))
}

/// Checks what cycle `cycle` left: the records before it are still there (the last one and a
/// random one re-read), and each partition continues with exactly the next records the child
/// attempted for it, in order, covering every ack.
fn check_cycle(
    wharf: &Wharf,
    model: &mut Model,
    cycle: u32,
    acks: &[(u32, u64, u64)],
    rng: &mut Rng,
) -> Result<CycleCheck, String> {
    let Some(ends) = log_ends(wharf)? else {
        if model.partitions.iter().any(|p| !p.is_empty()) || !acks.is_empty() {
            return Err(format!(
                "the topic is gone: {} acks this cycle, {:?} records before it (records lost)",
                acks.len(),
                model.lens()
            ));
        }
        return Ok(CycleCheck::default());
    };
    let seed = cycle_seed(model.seed, cycle);
    let mut check = CycleCheck::default();
    for p in 0..PARTITIONS {
        let known = &model.partitions[p as usize];
        let old = known.len() as u64;
        let end = ends[p as usize];
        let acked: Vec<(u64, u64)> = acks
            .iter()
            .filter(|a| a.0 == p)
            .map(|&(_, offset, seq)| (offset, seq))
            .collect();
        if end < old {
            return Err(format!(
                "partition {p}: the log ends at {end}, but held {old} records before this cycle \
                 (records lost: {} from earlier cycles, {} acked in this one)",
                old - end,
                acked.len()
            ));
        }
        // Re-read the last earlier record and a random one.
        if old > 0 {
            for offset in [old - 1, rng.below(old)] {
                let found = read_range(wharf, p, offset, offset + 1)?;
                let expected = model.expected(known[offset as usize]);
                if let Some(why) = expected.mismatch(&found[0]) {
                    return Err(format!(
                        "partition {p} offset {offset} (from an earlier cycle) changed: {why}"
                    ));
                }
            }
        }
        // The new records: exactly the next ones the child attempted for this partition.
        let found = read_range(wharf, p, old, end)?;
        let mut new = Vec::with_capacity(found.len());
        let mut seq = 0u64;
        for message in &found {
            let expected = loop {
                let planned = plan(cycle, seed, seq);
                if planned.partition == p {
                    break planned;
                }
                seq += 1;
            };
            if let Some(why) = expected.mismatch(message) {
                return Err(format!(
                    "partition {p} offset {}: expected the child's next record for this \
                     partition (seq {seq}), but {why}",
                    message.offset()
                ));
            }
            new.push((cycle, seq));
            seq += 1;
        }
        // Every ack is there.
        let lost: Vec<&(u64, u64)> = acked
            .iter()
            .filter(|&&(offset, seq)| {
                offset < old || offset >= end || new[(offset - old) as usize] != (cycle, seq)
            })
            .collect();
        if !lost.is_empty() {
            return Err(format!(
                "partition {p}: {} acked records lost or misplaced (offset, seq): {:?}; the log \
                 held {old} records before the cycle and {end} after; acks this cycle: {:?}",
                lost.len(),
                &lost[..lost.len().min(10)],
                &acked[..acked.len().min(10)]
            ));
        }
        if acked.windows(2).any(|w| w[1].0 != w[0].0 + 1) {
            return Err(format!(
                "partition {p}: acked offsets are not contiguous: {acked:?}"
            ));
        }
        check.acked += acked.len() as u64;
        check.unacked_present += new.len() as u64 - acked.len() as u64;
        model.partitions[p as usize].extend(new);
    }
    Ok(check)
}

/// Re-reads every record of every partition and compares it with the model.
fn check_all(wharf: &Wharf, model: &Model) -> Result<(), String> {
    let Some(ends) = log_ends(wharf)? else {
        return if model.partitions.iter().all(Vec::is_empty) {
            Ok(())
        } else {
            Err("the topic is gone".into())
        };
    };
    if ends != model.lens() {
        return Err(format!("log ends {ends:?}, expected {:?}", model.lens()));
    }
    for (p, known) in model.partitions.iter().enumerate() {
        let found = read_range(wharf, p as u32, 0, known.len() as u64)?;
        for (offset, (message, &id)) in found.iter().zip(known).enumerate() {
            if let Some(why) = model.expected(id).mismatch(message) {
                return Err(format!(
                    "partition {p} offset {offset} (cycle {} seq {}): {why}",
                    id.0, id.1
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Kill -9 cycles of a NoWait producer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct NowaitTotals {
    cycles: u32,
    /// Flushes the children reported.
    flushes: u64,
    /// Records below a reported flush, checked present.
    flushed_checked: u64,
    /// Records below a reported flush that were missing.
    lost_flushed: u64,
    /// Records past the last reported flush that were there anyway (appended by a full batch,
    /// the linger thread, or a flush the kill cut short of its report).
    unflushed_present: u64,
    full_checks: u32,
}

/// What one `NoWait` cycle's check found.
#[derive(Debug, Default)]
struct NowaitCheck {
    flushed: u64,
    lost: u64,
    unflushed_present: u64,
}

#[test]
fn flushed_nowait_records_survive_kill_9_at_random_points() {
    let seed = std::env::var(SEED_ENV).map_or_else(
        |_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        },
        |s| s.parse().expect("WHARF_KILL_SEED must be a u64"),
    );
    let cycles = std::env::var(CYCLES_ENV)
        .map_or(DEFAULT_CYCLES, |s| {
            s.parse().expect("WHARF_KILL_CYCLES must be a number")
        })
        .div_ceil(NOWAIT_CYCLES_DIVISOR);
    println!("crash_kill nowait: seed {seed}, {cycles} cycles (replay with {SEED_ENV}={seed})");
    let watchdog = Watchdog::start(
        "flushed_nowait_records_survive_kill_9_at_random_points",
        Duration::from_secs(600) + Duration::from_secs(3) * cycles,
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut dir = PathBuf::new();
    let mut rng = Rng::new(mix(seed, 0x0a17_9a2e));
    let mut model = Model {
        seed,
        partitions: Vec::new(),
    };
    let mut totals = NowaitTotals::default();
    for cycle in 0..cycles {
        if cycle % NOWAIT_CYCLES_PER_DIR == 0 {
            // The last cycle in the previous directory re-read all of it.
            if cycle > 0 {
                std::fs::remove_dir_all(&dir).expect("remove the previous directory");
            }
            dir = tmp.path().join(format!("data-{cycle}"));
            model.partitions = vec![Vec::new(); PARTITIONS as usize];
        }
        nowait_kill_cycle(
            &dir,
            cycle,
            cycles,
            &mut rng,
            &mut model,
            &mut totals,
            &watchdog,
        );
    }
    watchdog.step("final reopen".into());
    let wharf = Wharf::open(&dir).unwrap_or_else(|e| panic!("seed {seed}: final open: {e}"));
    check_all(&wharf, &model).unwrap_or_else(|e| panic!("seed {seed}: final check: {e}"));
    wharf.close().expect("close");
    drop(watchdog);

    println!(
        "crash_kill nowait summary: seed {seed}; {} cycles, {} flushes reported; flushed \
         records checked {} (lost {}); unflushed but present {}; full re-reads {}; records \
         now {:?}",
        totals.cycles,
        totals.flushes,
        totals.flushed_checked,
        totals.lost_flushed,
        totals.unflushed_present,
        totals.full_checks,
        model.lens(),
    );
    common::record_reliability(
        "kill_produce_nowait",
        &[
            ("kill_cycles_nowait", u64::from(totals.cycles)),
            ("flushed_nowait_messages_checked", totals.flushed_checked),
            ("lost_nowait_flushed", totals.lost_flushed),
        ],
    );
    assert_eq!(
        totals.lost_flushed, 0,
        "seed {seed}: flushed NoWait records were lost (see the cycles above)"
    );
    // The run must have exercised the workload, not just killed children before they flushed.
    assert!(
        totals.flushed_checked > 0,
        "seed {seed}: no flushed record was checked: {totals:?}"
    );
}

/// One `NoWait` cycle: run a child, kill it, reopen, check, and add what the cycle left to the
/// model.
fn nowait_kill_cycle(
    dir: &Path,
    cycle: u32,
    cycles: u32,
    rng: &mut Rng,
    model: &mut Model,
    totals: &mut NowaitTotals,
    watchdog: &Watchdog,
) {
    let seed = model.seed;
    let kill = match rng.below(100) {
        0..5 => KillAt::Spawn(Duration::from_micros(rng.below(5_000))),
        5..15 => KillAt::Opening(Duration::from_micros(rng.below(3_000))),
        _ => KillAt::Running(Duration::from_micros(rng.below(10_001))),
    };
    let reopen = match rng.below(10) {
        0..5 => Reopen::ReadOnly,
        5..8 => Reopen::Close,
        _ => Reopen::Crash,
    };
    let full = (cycle + 1) % NOWAIT_CYCLES_PER_DIR == 0 || cycle + 1 == cycles;
    let context = format!("seed {seed} NoWait cycle {cycle} (kill {kill:?}, {reopen:?})");
    watchdog.step(format!("{context}: child running"));
    let (events, _) = run_child_test(
        "child_append_nowait",
        &[
            (NOWAIT_CHILD_ENV, dir.display().to_string()),
            (CHILD_SEED_ENV, cycle_seed(seed, cycle).to_string()),
            (CHILD_CYCLE_ENV, cycle.to_string()),
        ],
        kill,
        &context,
    );
    if let Some(ends) = events.iter().find_map(|e| match e {
        Event::Opened(ends) => Some(ends),
        _ => None,
    }) {
        assert_eq!(
            ends,
            &model.lens(),
            "{context}: the child recovered other log ends than the parent saw last"
        );
    }
    let mut flushed = 0;
    let mut sending = 0;
    for event in &events {
        match *event {
            Event::Flushed(end) => {
                assert!(
                    end <= sending && end >= flushed,
                    "{context}: flushed {end} after sending {sending}, flushed {flushed}"
                );
                flushed = end;
                totals.flushes += 1;
            }
            Event::Sending(end) => sending = end,
            _ => {}
        }
    }
    watchdog.step(format!("{context}: parent reopening"));
    let check = reopen_and_check(dir, model, reopen, full, |wharf, model| {
        check_nowait_cycle(wharf, model, cycle, flushed, sending, rng)
    })
    .unwrap_or_else(|e| panic!("{context}: {e}"));
    if check.lost > 0 {
        println!("{context}: {} flushed records lost", check.lost);
    }
    totals.cycles += 1;
    totals.full_checks += u32::from(full);
    totals.flushed_checked += check.flushed;
    totals.lost_flushed += check.lost;
    totals.unflushed_present += check.unflushed_present;
}

/// Checks what `NoWait` cycle `cycle` left: the records before it are still there (the last one
/// and a random one re-read); each partition continues with the next records the child
/// attempted for it, in order, all below `sending` (nothing it had not sent); every record
/// below `flushed` is there (counted as lost otherwise). Adds what is there to the model.
fn check_nowait_cycle(
    wharf: &Wharf,
    model: &mut Model,
    cycle: u32,
    flushed: u64,
    sending: u64,
    rng: &mut Rng,
) -> Result<NowaitCheck, String> {
    let Some(ends) = log_ends(wharf)? else {
        if model.partitions.iter().any(|p| !p.is_empty()) || flushed > 0 {
            return Err(format!(
                "the topic is gone: {flushed} records flushed this cycle, {:?} before it",
                model.lens()
            ));
        }
        return Ok(NowaitCheck::default());
    };
    let seed = cycle_seed(model.seed, cycle);
    let planned: Vec<Planned> = (0..sending).map(|s| plan(cycle, seed, s)).collect();
    let mut check = NowaitCheck::default();
    for p in 0..PARTITIONS {
        let known = &model.partitions[p as usize];
        let old = known.len() as u64;
        let end = ends[p as usize];
        if end < old {
            return Err(format!(
                "partition {p}: the log ends at {end}, but held {old} records before this cycle"
            ));
        }
        if old > 0 {
            for offset in [old - 1, rng.below(old)] {
                let found = read_range(wharf, p, offset, offset + 1)?;
                if let Some(why) = model.expected(known[offset as usize]).mismatch(&found[0]) {
                    return Err(format!(
                        "partition {p} offset {offset} (from an earlier cycle) changed: {why}"
                    ));
                }
            }
        }
        let mine: Vec<u64> = (0..sending)
            .filter(|&s| planned[s as usize].partition == p)
            .collect();
        let found = read_range(wharf, p, old, end)?;
        if found.len() > mine.len() {
            return Err(format!(
                "partition {p}: {} new records, but the child sent at most {} here (seqs below \
                 {sending})",
                found.len(),
                mine.len()
            ));
        }
        for (message, &seq) in found.iter().zip(&mine) {
            if let Some(why) = planned[seq as usize].mismatch(message) {
                return Err(format!(
                    "partition {p} offset {}: expected the child's next record for this \
                     partition (seq {seq}), but {why}",
                    message.offset()
                ));
            }
        }
        let must = mine.iter().filter(|&&s| s < flushed).count();
        check.flushed += must as u64;
        check.lost += must.saturating_sub(found.len()) as u64;
        check.unflushed_present += found.len().saturating_sub(must) as u64;
        let new = mine[..found.len()].iter().map(|&seq| (cycle, seq));
        model.partitions[p as usize].extend(new);
    }
    Ok(check)
}

// ---------------------------------------------------------------------------------------------
// Directory lock (I9)
// ---------------------------------------------------------------------------------------------

const LOCK_TOPIC: &str = "held";
const LOCK_PARENT_RECORDS: u64 = 10;
const LOCK_CHILD_RECORDS: u64 = 20;

fn lock_payload(i: u64) -> Vec<u8> {
    format!("record {i} {}", "x".repeat((i % 17) as usize)).into_bytes()
}

/// The child side of `the_directory_lock_holds_across_processes_and_dies_with_the_holder`:
/// appends, syncs, says "ready" and holds the Wharf open until killed (or until its stdin ends).
/// Does nothing in a normal test run.
#[test]
fn child_hold_lock() {
    let Ok(dir) = std::env::var(LOCK_CHILD_ENV) else {
        return;
    };
    let mut out = std::io::stdout().lock();
    let wharf = Wharf::open(&dir).unwrap_or_else(|e| fail(&mut out, &format!("open: {e}")));
    let producer = wharf.producer().ack(AckMode::Write).build();
    for i in LOCK_PARENT_RECORDS..LOCK_PARENT_RECORDS + LOCK_CHILD_RECORDS {
        if let Err(e) = producer.send(Record::new(LOCK_TOPIC, lock_payload(i))) {
            fail(&mut out, &format!("send: {e}"));
        }
    }
    // Everything synced: the holder is quiet from here on, so the parent can check that its
    // own failed open writes nothing.
    if let Err(e) = wharf.sync() {
        fail(&mut out, &format!("sync: {e}"));
    }
    say(&mut out, "ready");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    std::process::exit(4);
}

/// Every file under `dir` with its contents (directories as `None`).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            let rel = path.strip_prefix(dir).expect("prefix").to_path_buf();
            if path.is_dir() {
                out.insert(rel, None);
                stack.push(path);
            } else {
                out.insert(rel, Some(std::fs::read(&path).expect("read")));
            }
        }
    }
    out
}

/// `Wharf::open(dir)` on another thread, with a hang guard: a held lock must not block it.
fn open_with_hang_guard(dir: &Path) -> wharf::Result<Wharf> {
    let (tx, rx) = mpsc::channel();
    let path = dir.to_path_buf();
    thread::spawn(move || {
        let _ = tx.send(Wharf::open(&path));
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("hang: Wharf::open of a locked directory blocked instead of failing")
}

fn assert_locked(result: wharf::Result<Wharf>, dir: &Path) {
    let err = result.expect_err("a second open of a held directory must fail");
    match err.kind() {
        ErrorKind::Locked { dir: named } => assert_eq!(named, dir, "Locked names the directory"),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "the message names the directory: {err}"
    );
}

fn all_payloads(wharf: &Wharf, topic: &str) -> Vec<Vec<u8>> {
    let reader = wharf.reader(topic, 0).expect("reader");
    let batch = reader
        .read(0, ReadOptions::default().max_records(10_000))
        .expect("read");
    assert_eq!(
        batch.next_offset(),
        reader.end_offset(),
        "one read gets all"
    );
    batch.iter().map(|m| m.payload().to_vec()).collect()
}

#[test]
fn the_directory_lock_holds_across_processes_and_dies_with_the_holder() {
    let _watchdog = Watchdog::start(
        "the_directory_lock_holds_across_processes_and_dies_with_the_holder",
        Duration::from_secs(300),
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let wharf = Wharf::open(&dir).expect("open");
    wharf
        .create_topic(LOCK_TOPIC, TopicConfig::default())
        .expect("create");
    let producer = wharf.producer().build();
    for i in 0..LOCK_PARENT_RECORDS {
        producer
            .send(Record::new(LOCK_TOPIC, lock_payload(i)))
            .expect("send");
    }
    drop(producer);
    wharf.close().expect("close");
    let expected: Vec<Vec<u8>> = (0..LOCK_PARENT_RECORDS + LOCK_CHILD_RECORDS)
        .map(lock_payload)
        .collect();

    let child = ChildProcess::spawn(
        "child_hold_lock",
        &[(LOCK_CHILD_ENV, dir.display().to_string())],
    );
    let mut events = Vec::new();
    let ready = child.wait_for(
        &mut events,
        |e| matches!(e, Event::Ready | Event::Error(_)),
        "ready",
    );
    assert!(
        ready && !events.iter().any(|e| matches!(e, Event::Error(_))),
        "the lock holder failed to start: {events:?}"
    );

    // The holder is alive and quiet: a writable open fails at once and writes nothing.
    let before = snapshot(&dir);
    assert_locked(open_with_hang_guard(&dir), &dir);
    assert_locked(Wharf::builder(&dir).open(), &dir);
    assert_eq!(
        snapshot(&dir),
        before,
        "a failed open changed the directory"
    );

    // A read-only open succeeds meanwhile, sees the data, and refuses writes.
    let inspector = Wharf::builder(&dir)
        .read_only(true)
        .open()
        .expect("read-only open while another process holds the lock");
    assert_eq!(
        inspector
            .topics()
            .iter()
            .map(|t| t.name().to_owned())
            .collect::<Vec<_>>(),
        [LOCK_TOPIC]
    );
    assert_eq!(all_payloads(&inspector, LOCK_TOPIC), expected);
    let err = inspector
        .producer()
        .build()
        .send(Record::new(LOCK_TOPIC, "no"))
        .expect_err("a read-only Wharf refuses sends");
    assert!(
        matches!(err.kind(), ErrorKind::ReadOnly { .. }),
        "expected ReadOnly, got {err:?}"
    );
    drop(inspector);
    assert_eq!(
        snapshot(&dir),
        before,
        "a read-only open changed the directory"
    );

    // Kill -9 the holder: no stale lock, the next open recovers everything it acked.
    let (status, stderr) = child.kill(&mut events);
    assert!(
        killed_by_sigkill(status),
        "the holder exited before the kill ({status}): {events:?}\n{stderr}"
    );
    let wharf = open_with_hang_guard(&dir).expect("open after the holder was killed");
    assert!(
        !wharf.recovery_stats().clean_shutdown,
        "the killed holder never closed"
    );
    assert_eq!(all_payloads(&wharf, LOCK_TOPIC), expected);
    let receipt = wharf
        .producer()
        .build()
        .send(Record::new(LOCK_TOPIC, lock_payload(99)))
        .expect("send after recovery");
    assert_eq!(receipt.offset(), expected.len() as u64);
    assert_locked(Wharf::open(&dir), &dir);
    wharf.close().expect("close");
    let wharf = Wharf::open(&dir).expect("open after close");
    assert!(wharf.recovery_stats().clean_shutdown);
    assert_eq!(all_payloads(&wharf, LOCK_TOPIC).len(), expected.len() + 1);
}

#[test]
fn the_directory_lock_is_exclusive_within_one_process() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let first = Wharf::open(&dir).expect("open");
    first
        .create_topic(LOCK_TOPIC, TopicConfig::default())
        .expect("create");
    let producer = first.producer().build();
    producer
        .send(Record::new(LOCK_TOPIC, lock_payload(0)))
        .expect("send");

    let before = snapshot(&dir);
    assert_locked(open_with_hang_guard(&dir), &dir);
    assert_locked(Wharf::builder(&dir).open(), &dir);
    assert_eq!(
        snapshot(&dir),
        before,
        "a failed open changed the directory"
    );
    let inspector = Wharf::builder(&dir)
        .read_only(true)
        .open()
        .expect("read-only open next to a writer");
    assert_eq!(all_payloads(&inspector, LOCK_TOPIC), [lock_payload(0)]);
    drop(inspector);

    // close() releases the lock even while a producer of the first Wharf lives on.
    first.close().expect("close");
    let err = producer
        .send(Record::new(LOCK_TOPIC, lock_payload(1)))
        .expect_err("a producer of a closed Wharf");
    assert!(
        matches!(err.kind(), ErrorKind::Closed),
        "expected Closed, got {err:?}"
    );
    let second = open_with_hang_guard(&dir).expect("open after close");
    assert_eq!(all_payloads(&second, LOCK_TOPIC), [lock_payload(0)]);
    assert_locked(Wharf::open(&dir), &dir);

    // Dropping the last handle releases it too.
    drop(producer);
    drop(second);
    let third = Wharf::open(&dir).expect("open after drop");
    assert!(third.recovery_stats().clean_shutdown, "drop closes cleanly");
    assert_locked(Wharf::open(&dir), &dir);
    third.close().expect("close");
}
