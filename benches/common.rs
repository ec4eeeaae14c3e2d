//! Shared by the benches: where data goes, and test payloads.
#![allow(dead_code)]

use std::path::PathBuf;

use bytes::Bytes;

/// A fresh directory for one measurement, under `WHARF_BENCH_DIR` if set (point it at the disk
/// you care about: on tmpfs every sync is free), else the system temporary directory.
pub fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("WHARF_BENCH_DIR") {
        Some(root) => {
            let root = PathBuf::from(root);
            std::fs::create_dir_all(&root).expect("create WHARF_BENCH_DIR");
            tempfile::tempdir_in(root).expect("bench dir")
        }
        None => tempfile::tempdir().expect("bench dir"),
    }
}

/// `count` pseudo-random payloads of `len` bytes (random, so nothing compresses or dedups).
pub fn payloads(count: usize, len: usize) -> Vec<Bytes> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..count)
        .map(|_| {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect();
            Bytes::from(bytes)
        })
        .collect()
}
