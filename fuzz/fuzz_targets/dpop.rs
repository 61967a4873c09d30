//! Fuzz target `dpop`: the invariants of [`lanyard::fuzzing::dpop`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(v) = lanyard::fuzzing::dpop(data) {
        panic!("invariant violated: {v}");
    }
});
