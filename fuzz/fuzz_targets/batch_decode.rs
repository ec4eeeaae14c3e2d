//! Arbitrary bytes as a record batch: decoding must reject or accept, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let expected = data.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    wharf::fuzzing::decode_batch(data, expected);
    wharf::fuzzing::decode_batch(data, 0);
});
