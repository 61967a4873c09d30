//! Fuzz target `form`: the invariants of [`lanyard::fuzzing::form`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(v) = lanyard::fuzzing::form(data) {
        panic!("invariant violated: {v}");
    }
});
