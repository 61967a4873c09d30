//! Fuzz target `jws`: the invariants of [`lanyard::fuzzing::jws`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(v) = lanyard::fuzzing::jws(data) {
        panic!("invariant violated: {v}");
    }
});
