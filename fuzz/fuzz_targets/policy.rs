//! Fuzz target `policy`: the invariants of [`lanyard::fuzzing::policy`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(v) = lanyard::fuzzing::policy(data) {
        panic!("invariant violated: {v}");
    }
});
