//! Fuzz target `claims`: the invariants of [`lanyard::fuzzing::claims`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(v) = lanyard::fuzzing::claims(data) {
        panic!("invariant violated: {v}");
    }
});
