//! Arbitrary bytes as index, time index, checkpoint and topic files: never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wharf::fuzzing::index_lookups(data, 0);
    wharf::fuzzing::index_lookups(data, 1_000);
});
