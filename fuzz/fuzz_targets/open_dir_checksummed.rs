//! A prepared partition whose files are changed and whose checksums are then fixed up: the
//! semantic checks of opening and reading must hold (no panic, no overflow).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wharf::fuzzing::open_dir_checksummed(data);
});
