//! neyman's `S_h` (spec §5.2): the population standard deviation of a
//! stratum's unit values, from exact sums — the same `S_h`, to the last
//! bit, whatever the order of the units, the files or the threads.
//!
//! Every value is an integer times a power: a float `m · 2^e` (`m` its
//! 53-bit significand), an integer or decimal `m · 10^-scale`. Sums of `m`
//! and `m²` are kept per exponent in 128-bit integers (moved to big
//! integers only when they would overflow), then brought to the smallest
//! exponent: `var = (n Σx² − (Σx)²) / n²` is one exact fraction, rounded
//! once to f64 before its square root.

use std::collections::BTreeMap;

use strat_alloc::BigInt;

use crate::run::ratio_to_f64;

/// The exact sums of one stratum's values.
#[derive(Clone, Debug, Default)]
pub struct Moments {
    n: u64,
    /// Per exponent: Σm and Σm².
    sums: BTreeMap<i32, Sums>,
    /// A NaN or infinity was met: `S_h` is NaN.
    non_finite: bool,
}

#[derive(Clone, Debug, Default)]
struct Sums {
    sum: i128,
    sq: u128,
    big_sum: BigInt,
    big_sq: BigInt,
}

impl Sums {
    fn add(&mut self, m: i128) {
        match self.sum.checked_add(m) {
            Some(s) => self.sum = s,
            None => {
                self.big_sum += BigInt::from(std::mem::take(&mut self.sum));
                self.big_sum += BigInt::from(m);
            }
        }
        let a = m.unsigned_abs();
        match a.checked_mul(a).and_then(|q| self.sq.checked_add(q)) {
            Some(q) => self.sq = q,
            None => {
                self.big_sq += BigInt::from(std::mem::take(&mut self.sq));
                let a = BigInt::from(a);
                self.big_sq += &a * &a;
            }
        }
    }

    fn total(&self) -> (BigInt, BigInt) {
        (
            &self.big_sum + BigInt::from(self.sum),
            &self.big_sq + BigInt::from(self.sq),
        )
    }
}

/// How a column's values are read: floats by their bits, integers and
/// decimals (scaled integers) as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Float,
    /// Decimal places (0 for integers).
    Decimal(u32),
}

impl Moments {
    /// Adds an integer or decimal value (`m · 10^-scale`).
    pub fn add_scaled(&mut self, m: i128) {
        self.n += 1;
        self.sums.entry(0).or_default().add(m);
    }

    /// Adds a float value.
    pub fn add_f64(&mut self, x: f64) {
        self.n += 1;
        if !x.is_finite() {
            self.non_finite = true;
            return;
        }
        let (m, e) = decompose(x);
        self.sums.entry(e).or_default().add(i128::from(m));
    }

    /// Adds another stratum part's sums (from another task).
    pub fn merge(&mut self, other: Moments) {
        self.n += other.n;
        self.non_finite |= other.non_finite;
        for (e, s) in other.sums {
            let mine = self.sums.entry(e).or_default();
            let (sum, sq) = s.total();
            mine.big_sum += sum;
            mine.big_sq += sq;
        }
    }

    /// `S_h`: `None` for fewer than two values.
    pub fn sd(&self, scale: Scale) -> Option<f64> {
        if self.n < 2 {
            return None;
        }
        if self.non_finite {
            return Some(f64::NAN);
        }
        let Some(&e0) = self.sums.keys().next() else {
            return Some(0.0);
        };
        let (mut s, mut q) = (BigInt::from(0), BigInt::from(0));
        for (&e, sums) in &self.sums {
            let (sum, sq) = sums.total();
            let shift = (e - e0) as usize;
            s += sum << shift;
            q += sq << (2 * shift);
        }
        let n = BigInt::from(self.n);
        let mut num = &n * q - &s * &s;
        let mut den = &n * &n;
        if num == BigInt::from(0) {
            return Some(0.0);
        }
        match scale {
            Scale::Decimal(places) => den *= BigInt::from(10).pow(2 * places),
            Scale::Float if e0 >= 0 => num <<= 2 * e0 as usize,
            Scale::Float => den <<= 2 * e0.unsigned_abs() as usize,
        }
        Some(ratio_to_f64(&num, &den).sqrt())
    }
}

/// `x = m · 2^e` exactly, for a finite `x`.
fn decompose(x: f64) -> (i64, i32) {
    let bits = x.to_bits();
    let sign = if bits >> 63 == 0 { 1 } else { -1 };
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = (bits & ((1 << 52) - 1)) as i64;
    if exponent == 0 {
        (sign * fraction, -1074)
    } else {
        (sign * (fraction | 1 << 52), exponent - 1075)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd_of(xs: &[f64]) -> Option<f64> {
        let mut m = Moments::default();
        xs.iter().for_each(|&x| m.add_f64(x));
        m.sd(Scale::Float)
    }

    #[test]
    fn floats_are_decomposed_exactly() {
        for x in [1.0, -2.5, 0.1, 1e-310, f64::MAX, 7.25, -5e-324] {
            let (m, e) = decompose(x);
            // 2^e in two halves: 2^-1074 alone underflows in powi.
            let back = m as f64 * 2f64.powi(e / 2) * 2f64.powi(e - e / 2);
            assert_eq!(back, x, "{x}");
        }
    }

    #[test]
    fn the_population_standard_deviation() {
        assert_eq!(sd_of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), Some(2.0));
        assert_eq!(sd_of(&[3.0]), None);
        assert_eq!(sd_of(&[3.0, 3.0]), Some(0.0));
        let mut ints = Moments::default();
        [1, 2, 3, 4].iter().for_each(|&m| ints.add_scaled(m));
        assert_eq!(ints.sd(Scale::Decimal(0)), Some(1.25f64.sqrt()));
        let mut cents = Moments::default();
        [100, 200, 300, 400]
            .iter()
            .for_each(|&m| cents.add_scaled(m));
        assert_eq!(cents.sd(Scale::Decimal(2)), Some(1.25f64.sqrt()));
    }

    #[test]
    fn the_order_and_the_grouping_do_not_matter() {
        let xs: Vec<f64> = (0..1000)
            .map(|i| (i as f64 * 0.37).sin() * 1e3 + 1e-7 * i as f64)
            .collect();
        let forward = sd_of(&xs);
        let mut reversed = xs.clone();
        reversed.reverse();
        assert_eq!(forward, sd_of(&reversed));
        let (mut a, mut b) = (Moments::default(), Moments::default());
        xs.iter().step_by(2).for_each(|&x| a.add_f64(x));
        xs.iter().skip(1).step_by(2).for_each(|&x| b.add_f64(x));
        a.merge(b);
        assert_eq!(a.sd(Scale::Float), forward);
    }

    #[test]
    fn huge_integers_move_to_big_sums() {
        let mut m = Moments::default();
        for _ in 0..4 {
            m.add_scaled(i128::MAX / 2);
            m.add_scaled(-(i128::MAX / 2));
        }
        assert_eq!(m.sd(Scale::Decimal(0)), Some((i128::MAX / 2) as f64));
    }
}
