//! Arbitrary bytes → (lossy UTF-8) → parse + check: no panic, spans inside the text.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

#[path = "../src/bodies.rs"]
mod bodies;

static ENV: LazyLock<strat_check::Env> = LazyLock::new(bodies::env);

fuzz_target!(|data: &[u8]| {
    bodies::parse_check(data, &ENV);
});
