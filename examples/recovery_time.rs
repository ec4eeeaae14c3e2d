//! Reopen time after a kill -9 behind the flusher.
//!
//! For each segment size, `kills` times: a child process (this example run again) creates a
//! topic and sends `size`-byte records with `AckMode::Write` as fast as it can, one thread per
//! partition (so with several partitions the one flusher has several writers to keep up with);
//! the parent kills it with SIGKILL after `run_ms` plus a phase that steps through one flush
//! interval (so the kills land at different distances from the last checkpoint), then times
//! `Wharf::open` on the directory and prints what recovery did (`Wharf::recovery_stats`).
//! Each kill uses a fresh directory, so every reopen recovers one run's tail.
//!
//! ```text
//! cargo run --release --example recovery_time                       # 4 KiB, 64 KiB, default
//! cargo run --release --example recovery_time -- kills=9 segments=16384,default
//! WHARF_BENCH_DIR=/mnt/disk cargo run --release --example recovery_time
//! ```
//!
//! Options (`key=value`): `kills` (per segment size, default 7), `segments` (comma-separated
//! `segment_bytes`, `default` for the default, default `4096,65536,default`), `run_ms` (how
//! long the child writes before the first kill point, default 1500), `size` (record bytes,
//! default 100), `flush_ms` (flush interval, default 1000), `partitions` (default 1). Linux or another Unix: the kill is
//! a SIGKILL (`Child::kill`).
#![expect(
    clippy::cast_precision_loss,
    reason = "rates and sizes of counts far below 2^52"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wharf::{AckMode, Record, RecoveryStats, TopicConfig, Wharf};

const TOPIC: &str = "burst";
/// Set in the child: the data directory.
const CHILD_DIR_ENV: &str = "WHARF_RECOVERY_TIME_CHILD";
/// Set in the child: `segment_bytes` (0 for the default).
const CHILD_SEGMENT_ENV: &str = "WHARF_RECOVERY_TIME_SEGMENT";
/// Set in the child: record size and flush interval.
const CHILD_SIZE_ENV: &str = "WHARF_RECOVERY_TIME_SIZE";
const CHILD_FLUSH_ENV: &str = "WHARF_RECOVERY_TIME_FLUSH_MS";
const CHILD_PARTITIONS_ENV: &str = "WHARF_RECOVERY_TIME_PARTITIONS";
/// What the child prints once its topic exists and it starts sending.
const READY_LINE: &str = "sending";

struct Options {
    kills: u32,
    segments: Vec<u64>,
    run_ms: u64,
    size: usize,
    flush_ms: u64,
    partitions: u32,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        kills: 7,
        segments: vec![4_096, 65_536, 0],
        run_ms: 1_500,
        size: 100,
        flush_ms: 1_000,
        partitions: 1,
    };
    for arg in std::env::args().skip(1) {
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {arg:?}"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{key}: {e}"));
        match key {
            "kills" => o.kills = u32::try_from(number(value)?.max(1)).map_err(|e| e.to_string())?,
            "segments" => {
                o.segments = value
                    .split(',')
                    .map(|s| if s == "default" { Ok(0) } else { number(s) })
                    .collect::<Result<_, _>>()?;
            }
            "run_ms" => o.run_ms = number(value)?,
            "size" => o.size = usize::try_from(number(value)?).map_err(|e| e.to_string())?,
            "flush_ms" => o.flush_ms = number(value)?.max(1),
            "partitions" => {
                o.partitions = u32::try_from(number(value)?.max(1)).map_err(|e| e.to_string())?;
            }
            _ => return Err(format!("unknown option {key:?}")),
        }
    }
    Ok(o)
}

fn topic_config(segment_bytes: u64, partitions: u32) -> TopicConfig {
    let config = TopicConfig::default().partitions(partitions);
    if segment_bytes == 0 {
        config
    } else {
        config.segment_bytes(segment_bytes)
    }
}

fn env_number(name: &str) -> Result<u64, Box<dyn std::error::Error>> {
    Ok(std::env::var(name)?.parse()?)
}

/// The child: sends until it is killed.
fn run_child(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let segment_bytes = env_number(CHILD_SEGMENT_ENV)?;
    let size = usize::try_from(env_number(CHILD_SIZE_ENV)?)?;
    let flush = Duration::from_millis(env_number(CHILD_FLUSH_ENV)?);
    let partitions = u32::try_from(env_number(CHILD_PARTITIONS_ENV)?)?;
    let wharf = Wharf::builder(dir).flush_interval(flush).open()?;
    wharf.create_topic(TOPIC, topic_config(segment_bytes, partitions))?;
    let payload = vec![0x5a_u8; size];
    let senders: Vec<_> = (0..partitions)
        .map(|partition| {
            let producer = wharf.producer().ack(AckMode::Write).build();
            let payload = payload.clone();
            std::thread::spawn(move || -> wharf::Result<()> {
                loop {
                    producer.send(Record::new(TOPIC, payload.clone()).partition(partition))?;
                }
            })
        })
        .collect();
    println!("{READY_LINE}");
    for sender in senders {
        sender.join().map_err(|_| "a sender panicked")??;
    }
    Ok(())
}

/// One kill and reopen.
struct Kill {
    reopen: Duration,
    stats: RecoveryStats,
    records: u64,
    segments: usize,
    ran: Duration,
}

fn data_root() -> std::io::Result<tempfile::TempDir> {
    match std::env::var_os("WHARF_BENCH_DIR") {
        Some(root) => {
            std::fs::create_dir_all(&root)?;
            tempfile::tempdir_in(root)
        }
        None => tempfile::tempdir(),
    }
}

fn count_segments(partition: &Path) -> std::io::Result<usize> {
    let mut count = 0;
    for entry in std::fs::read_dir(partition)? {
        if entry?.path().extension().is_some_and(|e| e == "log") {
            count += 1;
        }
    }
    Ok(count)
}

fn kill_once(
    o: &Options,
    segment_bytes: u64,
    dir: &Path,
    after: Duration,
) -> Result<Kill, Box<dyn std::error::Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_SEGMENT_ENV, segment_bytes.to_string())
        .env(CHILD_SIZE_ENV, o.size.to_string())
        .env(CHILD_FLUSH_ENV, o.flush_ms.to_string())
        .env(CHILD_PARTITIONS_ENV, o.partitions.to_string())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if line.trim() != READY_LINE {
        let _ = child.kill();
        let status = child.wait()?;
        return Err(format!("the child did not start ({status})").into());
    }
    let started = Instant::now();
    std::thread::sleep(after);
    child.kill()?;
    let ran = started.elapsed();
    child.wait()?;
    let opening = Instant::now();
    let wharf = Wharf::open(dir)?;
    let reopen = opening.elapsed();
    let stats = wharf.recovery_stats();
    let mut records = 0;
    let mut segments = 0;
    for partition in 0..o.partitions {
        records += wharf.reader(TOPIC, partition)?.end_offset();
        segments += count_segments(&dir.join("topics").join(TOPIC).join(partition.to_string()))?;
    }
    wharf.close()?;
    Ok(Kill {
        reopen,
        stats,
        records,
        segments,
        ran,
    })
}

fn median<T: Copy + Ord>(values: &mut [T]) -> T {
    values.sort_unstable();
    values[values.len() / 2]
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn measure(o: &Options, segment_bytes: u64) -> Result<(), Box<dyn std::error::Error>> {
    let name = if segment_bytes == 0 {
        "default segment_bytes".to_string()
    } else {
        format!("segment_bytes {segment_bytes}")
    };
    println!("{name}:");
    let root = data_root()?;
    let mut kills = Vec::new();
    for i in 0..o.kills {
        let phase = o.flush_ms * u64::from(i) / u64::from(o.kills);
        let after = Duration::from_millis(o.run_ms + phase);
        let dir: PathBuf = root.path().join(format!("kill-{i}"));
        let k = kill_once(o, segment_bytes, &dir, after)?;
        let log_bytes = k.records * (o.size as u64);
        println!(
            "  kill {i}: after {:>4} ms, {:>9} records ({:>7.1} MiB of payload, {:>7.1} MiB/s), \
             {:>5} segments; reopen {:>9.2?}: scanned {:>5} segments, {:>7.2} MiB, \
             rewrote {:>5} indexes, truncated {} B",
            k.ran.as_millis(),
            k.records,
            mib(log_bytes),
            mib(log_bytes) / k.ran.as_secs_f64(),
            k.segments,
            k.reopen,
            k.stats.scanned_segments,
            mib(k.stats.scanned_bytes),
            k.stats.rewritten_indexes,
            k.stats.truncated_bytes,
        );
        std::fs::remove_dir_all(&dir)?;
        kills.push(k);
    }
    let mut reopen: Vec<Duration> = kills.iter().map(|k| k.reopen).collect();
    let mut scanned: Vec<u64> = kills.iter().map(|k| k.stats.scanned_bytes).collect();
    let mut segments: Vec<usize> = kills.iter().map(|k| k.stats.scanned_segments).collect();
    let mut indexes: Vec<usize> = kills.iter().map(|k| k.stats.rewritten_indexes).collect();
    let max_reopen = reopen.iter().max().copied().unwrap_or_default();
    let max_scanned = scanned.iter().max().copied().unwrap_or_default();
    println!(
        "  median over {} kills: reopen {:.2?} (max {:.2?}), scanned {:.2} MiB (max {:.2}) in \
         {} segments, {} indexes rewritten",
        o.kills,
        median(&mut reopen),
        max_reopen,
        mib(median(&mut scanned)),
        mib(max_scanned),
        median(&mut segments),
        median(&mut indexes),
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        return run_child(Path::new(&dir));
    }
    let o = options()?;
    println!(
        "{} B records, AckMode::Write, {} partition(s), flush every {} ms, kill after {} ms + a \
         phase across one flush interval",
        o.size, o.partitions, o.flush_ms, o.run_ms
    );
    for &segment_bytes in &o.segments {
        measure(&o, segment_bytes)?;
    }
    Ok(())
}
