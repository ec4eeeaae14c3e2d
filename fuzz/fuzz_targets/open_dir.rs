//! A data directory whose partition files hold arbitrary bytes: opening it and reading
//! everything may fail with an error, but never panic (see `wharf::fuzzing::open_dir` for how
//! the input is split into files).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wharf::fuzzing::open_dir(data);
});
