//! `--param` values: a type selector byte and an arbitrary string.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/bodies.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    bodies::param_value(data);
});
