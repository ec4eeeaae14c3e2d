//! Device writes per appended byte at a steady send rate, from the process's own I/O counters
//! (`write_bytes` in `/proc/self/io`, Linux only: the bytes of page-cache pages this process
//! dirtied, which writeback sends to the device).
//!
//! Sends `rate` records of `size` random bytes per second for `seconds` (`AckMode::Write`,
//! background sync every `flush_ms`), then waits a flush interval and a half so the last sync
//! and checkpoint are counted, and prints the bytes written next to the payload bytes and the
//! log bytes appended (record batches: headers included).
//!
//! ```text
//! cargo run --release --example device_writes                          # 100 B at 100/s, 5 s
//! cargo run --release --example device_writes -- rate=10000 seconds=3
//! WHARF_BENCH_DIR=/mnt/disk cargo run --release --example device_writes
//! ```
//!
//! Options (`key=value`): `rate` (records/s, default 100), `seconds` (5), `size` (100),
//! `flush_ms` (1000), `index_interval` (bytes between index entries, default 4096; a large
//! value leaves the index files out of the figure).
#![expect(
    clippy::cast_precision_loss,
    reason = "rates and ratios of counts far below 2^52"
)]

use std::path::Path;
use std::time::{Duration, Instant};

use wharf::{AckMode, Record, TopicConfig, Wharf};

const TOPIC: &str = "readings";

struct Options {
    rate: u64,
    seconds: u64,
    size: usize,
    flush_ms: u64,
    index_interval: u32,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        rate: 100,
        seconds: 5,
        size: 100,
        flush_ms: 1_000,
        index_interval: 4_096,
    };
    for arg in std::env::args().skip(1) {
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {arg:?}"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{key}: {e}"));
        match key {
            "rate" => o.rate = number(value)?.max(1),
            "seconds" => o.seconds = number(value)?,
            "size" => o.size = usize::try_from(number(value)?).map_err(|e| e.to_string())?,
            "flush_ms" => o.flush_ms = number(value)?.max(1),
            "index_interval" => {
                o.index_interval = u32::try_from(number(value)?).map_err(|e| e.to_string())?;
            }
            _ => return Err(format!("unknown option {key:?}")),
        }
    }
    Ok(o)
}

/// `write_bytes` of `/proc/self/io`.
fn write_bytes() -> Result<u64, Box<dyn std::error::Error>> {
    let io = std::fs::read_to_string("/proc/self/io")?;
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes: "))
        .ok_or("no write_bytes in /proc/self/io")?
        .trim()
        .parse()
        .map_err(Into::into)
}

/// Bytes of record batches in the partition's segment files (each file's length less its
/// 32-byte header), once they are trimmed to their data by a close.
fn log_bytes(partition: &Path) -> Result<u64, Box<dyn std::error::Error>> {
    let mut total = 0;
    for entry in std::fs::read_dir(partition)? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "log") {
            total += entry.metadata()?.len().saturating_sub(32);
        }
    }
    Ok(total)
}

fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = options()?;
    let dir = match std::env::var_os("WHARF_BENCH_DIR") {
        Some(root) => {
            std::fs::create_dir_all(&root)?;
            tempfile::tempdir_in(root)?
        }
        None => tempfile::tempdir()?,
    };
    let wharf = Wharf::builder(dir.path())
        .flush_interval(Duration::from_millis(o.flush_ms))
        .open()?;
    wharf.create_topic(
        TOPIC,
        TopicConfig::default().index_interval_bytes(o.index_interval),
    )?;
    let producer = wharf.producer().ack(AckMode::Write).build();
    let count = o.rate * o.seconds;
    let period = Duration::from_secs(1).div_f64(o.rate as f64);
    let before = write_bytes()?;
    let started = Instant::now();
    for i in 0..count {
        let due = started + period.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        producer.send(Record::new(TOPIC, payload(o.size, i)))?;
    }
    let sent_in = started.elapsed();
    std::thread::sleep(Duration::from_millis(o.flush_ms * 3 / 2));
    let written = write_bytes()? - before;
    let usage = wharf.admin().disk_usage()?;
    drop(producer);
    wharf.close()?;
    let appended = log_bytes(&dir.path().join("topics").join(TOPIC).join("0"))?;
    let payload_bytes = count * o.size as u64;
    println!(
        "{count} records of {} B at {}/s in {sent_in:.2?}, flush every {} ms, index every {} B",
        o.size, o.rate, o.flush_ms, o.index_interval
    );
    println!("payload bytes:        {payload_bytes}");
    println!("log bytes appended:   {appended}");
    println!("write_bytes:          {written}");
    println!(
        "per payload byte:     {:.2}",
        written as f64 / payload_bytes as f64
    );
    println!(
        "per appended byte:    {:.2}",
        written as f64 / appended as f64
    );
    println!("disk usage while open: {} bytes", usage.used_bytes);
    Ok(())
}
