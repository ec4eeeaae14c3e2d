//! Arbitrary bytes as a program of sends, syncs, consumer commits, closes, crashes and
//! deletions against a Wharf, checked against a model after every reopen: a panic is a
//! divergence (see `wharf::fuzzing::operation_sequence` for the encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wharf::fuzzing::operation_sequence(data);
});
