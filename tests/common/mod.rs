#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod kill;

use std::path::Path;

use wharf::{Message, ReadOptions, Wharf};

/// Every message of a partition, from its start to its end, in order.
pub fn read_partition(wharf: &Wharf, topic: &str, partition: u32) -> Vec<Message> {
    let reader = wharf.reader(topic, partition).expect("reader");
    let mut out = Vec::new();
    let mut offset = reader.start_offset();
    let end = reader.end_offset();
    while offset < end {
        let batch = reader
            .read(offset, ReadOptions::default().max_records(1_000))
            .expect("read");
        assert!(
            !batch.is_empty(),
            "no progress at offset {offset} (end {end})"
        );
        out.extend(batch.to_messages());
        offset = batch.next_offset();
    }
    out
}

/// Payloads of every message of a partition.
pub fn payloads(wharf: &Wharf, topic: &str, partition: u32) -> Vec<Vec<u8>> {
    read_partition(wharf, topic, partition)
        .iter()
        .map(|m| m.payload().to_vec())
        .collect()
}

/// The segment log files of a partition, sorted by base offset.
pub fn segment_files(
    dir: &Path,
    topic: &str,
    partition: u32,
    ext: &str,
) -> Vec<std::path::PathBuf> {
    let pdir = dir.join("topics").join(topic).join(partition.to_string());
    let mut files: Vec<_> = std::fs::read_dir(&pdir)
        .expect("partition dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// A deterministic payload for record `i`.
pub fn payload(i: u64, len: usize) -> Vec<u8> {
    let mut state = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Records a reliability tier's figures (RELIABILITY.md section 5) for the run's summary: one
/// `name value` line each in `target/reliability-summary.d/<tier>.txt`, the fragment format
/// the in-crate tiers write too (`src/crash_sweep/summary.rs`); `.ci/run` prints the totals.
/// Also prints them. A target directory that cannot be written does not fail the tier.
pub fn record_reliability(tier: &str, figures: &[(&str, u64)]) {
    let mut text = String::new();
    for (name, n) in figures {
        println!("reliability[{tier}]: {} {n}", name.replace('_', " "));
        text = text + name + " " + &n.to_string() + "\n";
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        std::path::PathBuf::from,
    );
    let dir = target.join("reliability-summary.d");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{tier}.txt")), text));
    if let Err(e) = written {
        println!("reliability[{tier}]: summary fragment not written: {e}");
    }
}

/// Open descriptors of this process on files under `dir`, and its mappings of such files.
pub fn open_files_under(dir: &Path) -> (usize, usize) {
    let dir = std::fs::canonicalize(dir).expect("canonical dir");
    let fds = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .count();
    let needle = dir.to_string_lossy().into_owned();
    let maps = std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .filter(|line| line.contains(needle.as_str()))
        .count();
    (fds, maps)
}
