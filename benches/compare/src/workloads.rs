//! The six workloads, their sizes, and how one run of one variant is timed.
//!
//! | id | what | timed | reported |
//! |---|---|---|---|
//! | W1 | 1,000,000 × 100 B appends, no per-message sync, then one sync | appends + sync | msgs/s; disk ÷ payload bytes |
//! | W2 | 2,000 × 100 B, each durable before the next | each append | msgs/s, p50, p99 |
//! | W3 | 16,000 × 100 B from 4 and from 16 producer threads, each durable | first append to last return | msgs/s |
//! | W4 | read back 1,000,000 × 100 B written earlier | the read only | msgs/s |
//! | W4b | read back 1,000,000 × 100 B sent in batches of 1,000 (`wharf-batch`) | the read only | msgs/s |
//! | W5 | 1,000,000 × 1 KiB appends, no per-message sync, then one sync | appends + sync | msgs/s; disk ÷ payload bytes |
//!
//! `--quick` divides every count by 10. Opening, preallocating, closing and (W4, W4b) writing
//! the records to read are outside the timed span. Each run gets a fresh directory, removed
//! afterwards. Every variant appends the same payloads, each a `&[u8]` borrowed from one
//! buffer (`payloads.rs`).
//!
//! W4 and W4b write with the variant's own append, sync, close, reopen and then read: the
//! data is still in the page cache (nothing here drops caches), so they measure the read
//! path's CPU cost, not the disk. W4b differs from W4 only in how the records were written:
//! its one variant, `wharf-batch`, sends them with `send_batch` of 1,000, so wharf stores
//! 1,000 records per batch on disk instead of one. The peers' files do not depend on how their
//! records were sent (a batch append writes the same per-record frames), so the W4b table
//! shows their W4 rows for reference instead of running them again.
//!
//! W1 and W5 also measure the disk: after the system is closed, the directory's allocated and
//! apparent bytes ([`DiskUsage`]) divided by the payload bytes written (untimed).

use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::disk::DiskUsage;
use crate::payloads::Payloads;
use crate::systems::{Sizing, Variant};

/// The report's notes on method.
pub const METHOD_NOTES: [&str; 6] = [
    "Each run: a fresh temporary directory, the system opened (untimed), the timed work, \
     closed (untimed), the directory removed. Payloads are random bytes from a seeded PRNG, \
     made before anything is timed.",
    "Every system gets the same payloads in the same form: a `&[u8]` borrowed from one shared \
     buffer, as a caller holds its message. A system that wants another form converts it in its \
     adapter, inside the timed region (wharf and kafko copy each payload into the `Bytes` their \
     records own).",
    "Repeats are interleaved: round 1 runs every system once, round 2 again, and so on; the \
     tables give the median and the min–max of the rounds, and every ratio divides medians of \
     this one run, so a slower stretch of the machine touches every system alike.",
    "\"append returns\" says what a returned append has done: buffered (process memory), \
     written (page cache: survives a process crash) or synced (stable storage). A peer is \
     compared with the wharf variant that promises the same (NoWait, Write or Fsync) and sends \
     the same way: one message per call, or batches of 1,000 through the system's batch API \
     (`wharf-batch`: `send_batch`); in W4 with wharf's consumer.",
    "W4 writes the records (untimed), syncs, closes, reopens and times only the read; the data \
     is still in the page cache, so W4 measures each read path's CPU cost, not the disk. W4b is \
     W4 with the records sent by `wharf-batch` (`send_batch` of 1,000, so 1,000 records per \
     stored batch); the peers' files do not depend on how records were sent, so its table \
     repeats their W4 medians for reference, the ratio dividing wharf's W4b median by them.",
    "Disk (W1, W5): once the system is closed, every regular file under its directory, \
     recursively: allocated bytes (st_blocks × 512: preallocated space counted, holes not) and \
     apparent bytes (file lengths), each divided by the payload bytes written (1.00: no \
     overhead). Directories' own blocks are not counted.",
];

/// One of the six workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// Many small appends, one sync at the end.
    W1,
    /// Small appends, each durable before the next.
    W2,
    /// Durable appends from several producer threads.
    W3,
    /// Reading back what was written.
    W4,
    /// Reading back what wharf wrote with `send_batch`.
    W4b,
    /// Many 1 KiB appends, one sync at the end.
    W5,
}

impl Workload {
    /// Every workload, in order.
    pub const ALL: [Workload; 6] = [
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W4,
        Workload::W4b,
        Workload::W5,
    ];

    /// Parses `W1`..`W5` and `W4b` (any case).
    pub fn parse(name: &str) -> Option<Workload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name().eq_ignore_ascii_case(name))
    }

    /// `W1`..`W5`, `W4b`.
    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
            Workload::W4 => "W4",
            Workload::W4b => "W4b",
            Workload::W5 => "W5",
        }
    }

    /// Whether a run reads back (W4, W4b) rather than appends.
    pub fn is_read(self) -> bool {
        matches!(self, Workload::W4 | Workload::W4b)
    }

    /// Whether a run measures the disk its system used (W1, W5).
    pub fn measures_disk(self) -> bool {
        matches!(self, Workload::W1 | Workload::W5)
    }
}

/// One table's worth of runs: a workload, and for W3 a producer count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scenario {
    /// The workload.
    pub workload: Workload,
    /// Producer threads (1 except in W3).
    pub producers: usize,
    /// Records appended (or read back, in W4).
    pub records: u64,
    /// Payload bytes per record.
    pub payload_bytes: usize,
}

/// Producer counts in W3.
const W3_PRODUCERS: [usize; 2] = [4, 16];

impl Scenario {
    /// The scenarios of `workload`, full size or divided by `scale_down`.
    pub fn of(workload: Workload, scale_down: u64) -> Vec<Scenario> {
        let one = |records: u64, payload_bytes: usize, producers: usize| Scenario {
            workload,
            producers,
            records: records / scale_down,
            payload_bytes,
        };
        match workload {
            Workload::W1 | Workload::W4 | Workload::W4b => vec![one(1_000_000, 100, 1)],
            Workload::W2 => vec![one(2_000, 100, 1)],
            Workload::W3 => W3_PRODUCERS.map(|n| one(16_000, 100, n)).to_vec(),
            Workload::W5 => vec![one(1_000_000, 1_024, 1)],
        }
    }

    /// The table heading, e.g. `W3: 16,000 × 100 B, 16 producers, each message durable`.
    pub fn title(&self) -> String {
        let records = crate::report::thousands(self.records);
        let size = if self.payload_bytes == 1_024 {
            "1 KiB".to_owned()
        } else {
            format!("{} B", self.payload_bytes)
        };
        let what = match self.workload {
            Workload::W1 | Workload::W5 => "appends, no per-message sync, one final sync",
            Workload::W2 => "appends, each durable before the next",
            Workload::W3 => "appends, each durable before the producer's next",
            Workload::W4 => "read back (queues: pop + ack; logs: scan; wharf: poll + commit)",
            Workload::W4b => {
                "sent in batches of 1,000, read back (wharf: poll + commit; the others: their W4 \
                 rows, for reference)"
            }
        };
        match self.workload {
            Workload::W3 => format!(
                "{}: {records} × {size} from {} producer threads, {what}",
                self.workload.name(),
                self.producers
            ),
            _ => format!("{}: {records} × {size} {what}", self.workload.name()),
        }
    }

    /// The metrics a run reports, in the order of [`Sample::values`].
    pub fn metrics(&self) -> &'static [Metric] {
        match self.workload {
            Workload::W2 => &[Metric::Throughput, Metric::P50, Metric::P99],
            _ => &[Metric::Throughput],
        }
    }

    /// What a variant is told to expect, for preallocation.
    pub fn sizing(&self) -> Sizing {
        Sizing {
            records: self.records,
            payload_bytes: self.payload_bytes,
        }
    }

    /// The payloads of every run of this scenario (generated once, before any timing).
    pub fn payloads(&self) -> Payloads {
        Payloads::generate(self.records, self.payload_bytes)
    }

    /// The payload bytes a run appends.
    pub fn payload_bytes_total(&self) -> u64 {
        self.records * self.payload_bytes as u64
    }
}

/// One number a run reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Messages per second over the timed span.
    Throughput,
    /// Median latency of one durable append, in milliseconds.
    P50,
    /// 99th-percentile latency of one durable append, in milliseconds.
    P99,
}

impl Metric {
    /// The column label.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Throughput => "throughput",
            Metric::P50 => "p50 latency per message",
            Metric::P99 => "p99 latency per message",
        }
    }

    /// The unit column.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Throughput => "msgs/s",
            Metric::P50 | Metric::P99 => "ms",
        }
    }

    /// Whether a larger value is better (throughput) or worse (latency).
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::Throughput)
    }
}

/// What one run measured: one value per [`Scenario::metrics`] entry, and in W1 and W5 the
/// disk the closed system's directory takes.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The values, in the order of the scenario's metrics.
    pub values: Vec<f64>,
    /// The directory's files once closed (W1, W5).
    pub disk: Option<DiskUsage>,
}

/// Runs `scenario` once through `variant` in a fresh directory under `root`.
pub fn run(scenario: &Scenario, variant: &Variant, root: &Path, payloads: &[&[u8]]) -> Sample {
    let dir = tempfile::Builder::new()
        .prefix("wharf-compare-")
        .tempdir_in(root)
        .expect("create a temporary directory for the run");
    let sizing = scenario.sizing();
    let mut disk = None;
    let values = match scenario.workload {
        Workload::W1 | Workload::W5 => {
            let rate = appends_then_sync(variant, dir.path(), sizing, payloads);
            // Closed: nothing is left to write, the directory is final.
            disk = Some(DiskUsage::of(dir.path()));
            vec![rate]
        }
        Workload::W2 => durable_one_by_one(variant, dir.path(), sizing, payloads),
        Workload::W3 => vec![durable_producers(scenario, variant, dir.path(), payloads)],
        Workload::W4 | Workload::W4b => vec![read_back(variant, dir.path(), sizing, payloads)],
    };
    dir.close().expect("remove the run's directory");
    Sample { values, disk }
}

/// W1, W5: every append, then one sync; messages per second. Returns once the system is
/// closed.
fn appends_then_sync(variant: &Variant, dir: &Path, sizing: Sizing, payloads: &[&[u8]]) -> f64 {
    let mut queue = (variant.open)(dir, sizing);
    let start = Instant::now();
    queue.append_all(payloads);
    queue.sync();
    let elapsed = start.elapsed();
    queue.close();
    per_second(payloads.len(), elapsed)
}

/// W2: each append durable before the next; throughput, p50 and p99 in milliseconds.
fn durable_one_by_one(
    variant: &Variant,
    dir: &Path,
    sizing: Sizing,
    payloads: &[&[u8]],
) -> Vec<f64> {
    let mut queue = (variant.open)(dir, sizing);
    let mut latencies = Vec::with_capacity(payloads.len());
    let start = Instant::now();
    for payload in payloads {
        let sent = Instant::now();
        queue.append(payload);
        latencies.push(sent.elapsed());
    }
    let elapsed = start.elapsed();
    queue.close();
    latencies.sort_unstable();
    vec![
        per_second(payloads.len(), elapsed),
        millis(percentile(&latencies, 50)),
        millis(percentile(&latencies, 99)),
    ]
}

/// W3: producer threads share one instance, each append durable; messages per second from
/// the common start to the last producer's return.
fn durable_producers(
    scenario: &Scenario,
    variant: &Variant,
    dir: &Path,
    payloads: &[&[u8]],
) -> f64 {
    let open = variant
        .open_shared
        .expect("a variant in W3 can be shared by producer threads");
    let queue = open(dir, scenario.sizing());
    let shares: Vec<&[&[u8]]> = payloads
        .chunks(payloads.len().div_ceil(scenario.producers))
        .collect();
    let start_line = Barrier::new(shares.len() + 1);
    let start = std::thread::scope(|scope| {
        for share in shares {
            let (queue, start_line) = (&queue, &start_line);
            scope.spawn(move || {
                start_line.wait();
                for payload in share {
                    queue.append(payload);
                }
            });
        }
        start_line.wait();
        Instant::now()
    });
    // The scope has joined every producer.
    let elapsed = start.elapsed();
    queue.close();
    per_second(payloads.len(), elapsed)
}

/// W4, W4b: write (untimed), sync, close and reopen, then read everything back; messages per
/// second of the read.
fn read_back(variant: &Variant, dir: &Path, sizing: Sizing, payloads: &[&[u8]]) -> f64 {
    let mut writer = (variant.open)(dir, sizing);
    writer.append_all(payloads);
    writer.sync();
    writer.close();
    let mut reader = (variant.open)(dir, sizing);
    let start = Instant::now();
    let tally = reader.read_all(payloads.len() as u64);
    let elapsed = start.elapsed();
    reader.close();
    let bytes: usize = payloads.iter().map(|payload| payload.len()).sum();
    assert_eq!(
        (tally.records, tally.bytes),
        (payloads.len() as u64, bytes as u64),
        "{} read back something other than what was written",
        variant.name
    );
    per_second(payloads.len(), elapsed)
}

/// `count` events over `elapsed`, per second.
#[expect(clippy::cast_precision_loss, reason = "counts stay far below 2^52")]
fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

/// The `pct`-th percentile (nearest rank) of sorted `values`.
fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    assert!(!sorted.is_empty(), "a percentile of no values");
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted[rank - 1]
}
