//! MD5 (RFC 1321) compression of [`LANES`] independent messages at once.
//!
//! strat draws one md5 per unit or row (docs/spec.md §6); the steps of one
//! message depend on each other, so speed comes from hashing many messages
//! side by side, one per vector lane. Three [`Backend`]s share one schedule
//! of the 64 steps (`md5_steps!`): plain loops over the lanes compiled for
//! AVX-512 (one 512-bit register per step, with a rotate and a three-input
//! logic instruction) and for AVX2 (two 256-bit registers), and, for any
//! other CPU, `wide`'s 8-lane vectors (SSE2 on any x86-64) over the two
//! halves of the lanes. [`compress`] picks the widest the CPU has at run
//! time, so one binary runs everywhere and fast where it can. Measured with
//! `cargo run --release -p strat-md5-lanes --example throughput`.

use wide::u32x8;

/// Messages hashed side by side.
pub const LANES: usize = 16;

/// One 32-bit word of each lane.
pub type Lanes = [u32; LANES];

/// One 64-byte block of each lane's message: `block[word][lane]`, words
/// little-endian as RFC 1321 reads them.
pub type Block = [Lanes; 16];

/// Each lane's MD5 state: `state[register][lane]` (A, B, C, D).
pub type State = [Lanes; 4];

/// MD5's initial state (RFC 1321).
pub const IV: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// [`IV`] in every lane.
pub const INIT: State = [
    [IV[0]; LANES],
    [IV[1]; LANES],
    [IV[2]; LANES],
    [IV[3]; LANES],
];

/// Compresses one block of every lane's message into its state, with the
/// widest vectors this CPU has (a caller compressing many blocks keeps
/// [`Backend::best`] and calls [`Backend::compress`]).
pub fn compress(state: &mut State, block: &Block) {
    Backend::best().compress(state, block);
}

/// One compiled form of the lane code that this CPU runs: a `Backend` is
/// only made by [`Backend::best`] or [`Backend::available`], after asking
/// the CPU, so [`Backend::compress`] needs no check of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// 512-bit registers, with rotate and three-input logic instructions.
    Avx512,
    /// 256-bit registers.
    Avx2,
    /// `wide`'s SSE2 vectors (any x86-64), or what another target has.
    Portable,
}

impl Kind {
    /// Whether this CPU has the instructions this form is compiled for
    /// (the standard library asks the CPU once and caches the answer).
    fn runs_here(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
            }
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            Kind::Portable => true,
            #[cfg(not(target_arch = "x86_64"))]
            Kind::Avx512 | Kind::Avx2 => false,
        }
    }
}

impl Backend {
    /// The backends this CPU runs, widest first (the last is always the
    /// portable one).
    pub fn available() -> Vec<Backend> {
        [Kind::Avx512, Kind::Avx2, Kind::Portable]
            .into_iter()
            .filter(|k| k.runs_here())
            .map(Backend)
            .collect()
    }

    /// The widest backend this CPU runs.
    pub fn best() -> Backend {
        [Kind::Avx512, Kind::Avx2]
            .into_iter()
            .find(|k| k.runs_here())
            .map_or(Backend(Kind::Portable), Backend)
    }

    /// Compresses one block of every lane's message into its state.
    pub fn compress(self, state: &mut State, block: &Block) {
        match self.0 {
            // SAFETY: a Backend of this kind exists only where the CPU has
            // AVX-512F and AVX-512VL (`Kind::runs_here`).
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            Kind::Avx512 => unsafe { x86::compress_avx512(state, block) },
            // SAFETY: a Backend of this kind exists only where the CPU has
            // AVX2 (`Kind::runs_here`).
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            Kind::Avx2 => unsafe { x86::compress_avx2(state, block) },
            _ => compress_halves(state, block),
        }
    }
}

/// The portable form: the lanes as two halves of 8 in `wide`'s `u32x8`
/// (two SSE2 registers on any x86-64). Plain loops are not vectorised for
/// SSE2 (it has no rotate, and the compiler keeps them scalar), and 16 lanes
/// of the four state words would take all sixteen registers.
fn compress_halves(state: &mut State, block: &Block) {
    const HALF: usize = LANES / 2;
    for half in [0, HALF] {
        let lanes = |w: &Lanes| u32x8::new(std::array::from_fn(|i| w[half + i]));
        let mut part = state.each_ref().map(lanes);
        compress_wide(&mut part, &block.each_ref().map(lanes));
        for (s, p) in state.iter_mut().zip(part) {
            s[half..half + HALF].copy_from_slice(&p.to_array());
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Block, State, compress_rounds};

    #[target_feature(enable = "avx512f,avx512vl")]
    pub(crate) fn compress_avx512(state: &mut State, block: &Block) {
        compress_rounds(state, block);
    }

    #[target_feature(enable = "avx2")]
    pub(crate) fn compress_avx2(state: &mut State, block: &Block) {
        compress_rounds(state, block);
    }
}

/// RFC 1321's 64 steps, registers renamed instead of moved: `$step` is
/// called as `$step::<S>(&mut a, &b, &c, &d, &m[word], K[i], &f)`, so each
/// backend writes one step its own way and shares the schedule.
macro_rules! md5_steps {
    ($step:ident, $a:ident, $b:ident, $c:ident, $d:ident, $m:ident, $f:ident, $g:ident, $h:ident, $i:ident) => {
        let k = &K;
        for i in (0..16).step_by(4) {
            $step::<7>(&mut $a, &$b, &$c, &$d, &$m[i], k[i], &$f);
            $step::<12>(&mut $d, &$a, &$b, &$c, &$m[i + 1], k[i + 1], &$f);
            $step::<17>(&mut $c, &$d, &$a, &$b, &$m[i + 2], k[i + 2], &$f);
            $step::<22>(&mut $b, &$c, &$d, &$a, &$m[i + 3], k[i + 3], &$f);
        }
        for i in (16..32).step_by(4) {
            let w = |i: usize| (5 * i + 1) % 16;
            $step::<5>(&mut $a, &$b, &$c, &$d, &$m[w(i)], k[i], &$g);
            $step::<9>(&mut $d, &$a, &$b, &$c, &$m[w(i + 1)], k[i + 1], &$g);
            $step::<14>(&mut $c, &$d, &$a, &$b, &$m[w(i + 2)], k[i + 2], &$g);
            $step::<20>(&mut $b, &$c, &$d, &$a, &$m[w(i + 3)], k[i + 3], &$g);
        }
        for i in (32..48).step_by(4) {
            let w = |i: usize| (3 * i + 5) % 16;
            $step::<4>(&mut $a, &$b, &$c, &$d, &$m[w(i)], k[i], &$h);
            $step::<11>(&mut $d, &$a, &$b, &$c, &$m[w(i + 1)], k[i + 1], &$h);
            $step::<16>(&mut $c, &$d, &$a, &$b, &$m[w(i + 2)], k[i + 2], &$h);
            $step::<23>(&mut $b, &$c, &$d, &$a, &$m[w(i + 3)], k[i + 3], &$h);
        }
        for i in (48..64).step_by(4) {
            let w = |i: usize| (7 * i) % 16;
            $step::<6>(&mut $a, &$b, &$c, &$d, &$m[w(i)], k[i], &$i);
            $step::<10>(&mut $d, &$a, &$b, &$c, &$m[w(i + 1)], k[i + 1], &$i);
            $step::<15>(&mut $c, &$d, &$a, &$b, &$m[w(i + 2)], k[i + 2], &$i);
            $step::<21>(&mut $b, &$c, &$d, &$a, &$m[w(i + 3)], k[i + 3], &$i);
        }
    };
}

/// The steps on plain arrays of lanes, each step one loop over them, which
/// the compiler makes vector instructions of its caller's instruction set
/// (AVX-512 or AVX2). The round functions in forms with one operation
/// fewer (no NOT where an XOR does): F = d ^ (b & (c ^ d)),
/// G = c ^ (d & (b ^ c)).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn compress_rounds(state: &mut State, m: &Block) {
    #[inline(always)]
    fn step<const S: u32>(
        a: &mut Lanes,
        b: &Lanes,
        c: &Lanes,
        d: &Lanes,
        m: &Lanes,
        k: u32,
        f: &impl Fn(u32, u32, u32) -> u32,
    ) {
        for i in 0..LANES {
            let t = a[i]
                .wrapping_add(f(b[i], c[i], d[i]))
                .wrapping_add(k)
                .wrapping_add(m[i]);
            a[i] = b[i].wrapping_add(t.rotate_left(S));
        }
    }
    let ff = |b: u32, c: u32, d: u32| d ^ (b & (c ^ d));
    let gg = |b: u32, c: u32, d: u32| c ^ (d & (b ^ c));
    let hh = |b: u32, c: u32, d: u32| b ^ c ^ d;
    let ii = |b: u32, c: u32, d: u32| c ^ (b | !d);
    let [mut a, mut b, mut c, mut d] = *state;
    md5_steps!(step, a, b, c, d, m, ff, gg, hh, ii);
    for (s, v) in state.iter_mut().zip([a, b, c, d]) {
        for i in 0..LANES {
            s[i] = s[i].wrapping_add(v[i]);
        }
    }
}

/// The same steps on `wide`'s `u32x8`, for [`compress_halves`].
fn compress_wide(state: &mut [u32x8; 4], m: &[u32x8; 16]) {
    #[inline(always)]
    fn step<const S: u32>(
        a: &mut u32x8,
        b: &u32x8,
        c: &u32x8,
        d: &u32x8,
        m: &u32x8,
        k: u32,
        f: &impl Fn(u32x8, u32x8, u32x8) -> u32x8,
    ) {
        let t = *a + f(*b, *c, *d) + u32x8::splat(k) + *m;
        *a = *b + (t.unbounded_shl_scalar(S) | t.unbounded_shr_scalar(32 - S));
    }
    let ff = |b: u32x8, c: u32x8, d: u32x8| d ^ (b & (c ^ d));
    let gg = |b: u32x8, c: u32x8, d: u32x8| c ^ (d & (b ^ c));
    let hh = |b: u32x8, c: u32x8, d: u32x8| b ^ c ^ d;
    let ii = |b: u32x8, c: u32x8, d: u32x8| c ^ (b | (d ^ u32x8::splat(u32::MAX)));
    let [mut a, mut b, mut c, mut d] = *state;
    md5_steps!(step, a, b, c, d, m, ff, gg, hh, ii);
    for (s, v) in state.iter_mut().zip([a, b, c, d]) {
        *s += v;
    }
}

/// RFC 1321's sine table: `K[i] = floor(2^32 * |sin(i + 1)|)`.
const K: [u32; 64] = [
    0xd76a_a478,
    0xe8c7_b756,
    0x2420_70db,
    0xc1bd_ceee,
    0xf57c_0faf,
    0x4787_c62a,
    0xa830_4613,
    0xfd46_9501,
    0x6980_98d8,
    0x8b44_f7af,
    0xffff_5bb1,
    0x895c_d7be,
    0x6b90_1122,
    0xfd98_7193,
    0xa679_438e,
    0x49b4_0821,
    0xf61e_2562,
    0xc040_b340,
    0x265e_5a51,
    0xe9b6_c7aa,
    0xd62f_105d,
    0x0244_1453,
    0xd8a1_e681,
    0xe7d3_fbc8,
    0x21e1_cde6,
    0xc337_07d6,
    0xf4d5_0d87,
    0x455a_14ed,
    0xa9e3_e905,
    0xfcef_a3f8,
    0x676f_02d9,
    0x8d2a_4c8a,
    0xfffa_3942,
    0x8771_f681,
    0x6d9d_6122,
    0xfde5_380c,
    0xa4be_ea44,
    0x4bde_cfa9,
    0xf6bb_4b60,
    0xbebf_bc70,
    0x289b_7ec6,
    0xeaa1_27fa,
    0xd4ef_3085,
    0x0488_1d05,
    0xd9d4_d039,
    0xe6db_99e5,
    0x1fa2_7cf8,
    0xc4ac_5665,
    0xf429_2244,
    0x432a_ff97,
    0xab94_23a7,
    0xfc93_a039,
    0x655b_59c3,
    0x8f0c_cc92,
    0xffef_f47d,
    0x8584_5dd1,
    0x6fa8_7e4f,
    0xfe2c_e6e0,
    0xa301_4314,
    0x4e08_11a1,
    0xf753_7e82,
    0xbd3a_f235,
    0x2ad7_d2bb,
    0xeb86_d391,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of varied bytes, a different message in every lane.
    fn blocks(seed: u32, n: usize) -> Vec<Block> {
        let mut x = seed.wrapping_mul(0x9e37_79b9) | 1;
        (0..n)
            .map(|_| {
                std::array::from_fn(|_| {
                    std::array::from_fn(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x
                    })
                })
            })
            .collect()
    }

    /// The md-5 crate's compression of one lane's blocks: the reference.
    fn reference(blocks: &[Block], lane: usize) -> [u32; 4] {
        let mut state = IV;
        for block in blocks {
            let mut bytes = [0u8; 64];
            for (w, chunk) in block.iter().zip(bytes.chunks_exact_mut(4)) {
                chunk.copy_from_slice(&w[lane].to_le_bytes());
            }
            md5::block_api::compress(&mut state, &[bytes]);
        }
        state
    }

    /// Runs every backend this CPU runs, and the dispatched `compress`,
    /// over the same blocks.
    fn every_backend(blocks: &[Block]) -> Vec<(String, State)> {
        let run = |f: &dyn Fn(&mut State, &Block)| {
            let mut state = INIT;
            for b in blocks {
                f(&mut state, b);
            }
            state
        };
        let mut out: Vec<(String, State)> = Backend::available()
            .into_iter()
            .map(|b| (format!("{b:?}"), run(&|s, x| b.compress(s, x))))
            .collect();
        out.push(("dispatched".into(), run(&compress)));
        out
    }

    #[test]
    fn every_backend_matches_the_md5_crate_in_every_lane() {
        for (seed, n) in [(1, 1), (2, 2), (3, 5)] {
            let blocks = blocks(seed, n);
            for (name, state) in every_backend(&blocks) {
                for lane in 0..LANES {
                    let got = state.map(|register| register[lane]);
                    assert_eq!(
                        got,
                        reference(&blocks, lane),
                        "{name}, lane {lane}, {n} blocks"
                    );
                }
            }
        }
    }

    /// RFC 1321's test suite: md5("abc") in every lane.
    #[test]
    fn abc_digest() {
        let mut block: Block = [[0; LANES]; 16];
        block[0] = [u32::from_le_bytes([b'a', b'b', b'c', 0x80]); LANES];
        block[14] = [24; LANES];
        let mut state = INIT;
        compress(&mut state, &block);
        let digest: Vec<u8> = state.iter().flat_map(|r| r[3].to_le_bytes()).collect();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "900150983cd24fb0d6963f7d28e17f72");
    }
}
