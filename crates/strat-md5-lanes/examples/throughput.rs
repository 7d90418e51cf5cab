//! The cost of one MD5 block per message with each backend this CPU runs:
//! what a draw's MD5 costs on a machine with AVX-512, with AVX2 only, or
//! with neither (docs/performance.md, session 14).
//!
//! ```text
//! cargo run --release -p strat-md5-lanes --example throughput
//! ```

// A benchmark tool: its output is its lines on stdout.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use strat_md5_lanes::{Backend, Block, INIT, LANES};

fn main() {
    let blocks: Vec<Block> = (0..1024u32)
        .map(|i| std::array::from_fn(|w| std::array::from_fn(|l| i ^ (w as u32 * 977 + l as u32))))
        .collect();
    let rounds = 200;
    for backend in Backend::available() {
        let mut best = f64::INFINITY;
        let mut sink = 0u32;
        for _ in 0..5 {
            let at = Instant::now();
            for _ in 0..rounds {
                for block in &blocks {
                    let mut state = INIT;
                    backend.compress(&mut state, block);
                    sink ^= state[0][0];
                }
            }
            best = best.min(at.elapsed().as_nanos() as f64);
        }
        let messages = (rounds * blocks.len() * LANES) as f64;
        println!(
            "{backend:?}: {:.2} ns per message block (sink {sink})",
            best / messages
        );
    }
}
