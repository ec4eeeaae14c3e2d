//! A data directory whose partition files hold arbitrary bytes: opening it and reading
//! everything may fail with an error, but never panic.
//!
//! The input is split into the files of one partition: a segment, its two indexes, and the
//! checkpoint, at lengths taken from the first bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf::{ReadOptions, TopicConfig, Wharf};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    {
        let Ok(wharf) = Wharf::open(dir.path()) else { return };
        let config = TopicConfig::default().segment_bytes(64 * 1024).max_message_bytes(4_096);
        if wharf.create_topic("t", config).is_err() || wharf.close().is_err() {
            return;
        }
    }
    let partition = dir.path().join("topics").join("t").join("0");
    let mut rest = data;
    for name in ["00000000000000000000.log", "00000000000000000000.index", "00000000000000000000.timeindex", "checkpoint"] {
        let (len, tail) = match rest.split_first() {
            Some((&n, tail)) => (usize::from(n) * 16, tail),
            None => (0, rest),
        };
        let (content, tail) = tail.split_at(len.min(tail.len()));
        if !content.is_empty() && std::fs::write(partition.join(name), content).is_err() {
            return;
        }
        rest = tail;
    }
    for read_only in [true, false] {
        let Ok(wharf) = Wharf::builder(dir.path()).read_only(read_only).open() else { continue };
        let Ok(reader) = wharf.reader("t", 0) else { continue };
        let mut offset = reader.start_offset();
        while offset < reader.end_offset() {
            match reader.read(offset, ReadOptions::default()) {
                Ok(batch) if !batch.is_empty() => offset = batch.next_offset(),
                _ => break,
            }
        }
        let _ = reader.offset_for_timestamp(wharf::Timestamp::from_millis(0));
    }
});
