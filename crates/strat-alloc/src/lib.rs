//! Allocation for `.strat` statements (docs/spec.md §4.1, §4.2, §5, §6).
//!
//! Given the strata of a statement (their sizes, starts and matched rules) this
//! crate decides how many units each stratum keeps (exact sampling), with what
//! probability each unit is kept (`take about`), and how a stratum is cut into
//! splits. Everything that decides which unit is drawn is computed in exact
//! rational arithmetic, so the result is the same on every machine and the SQL
//! export can reproduce it. The crate is pure: no I/O, no hashing.

use std::cmp::Ordering;
use std::fmt;

pub use num_bigint::BigInt;
pub use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

/// One stratum as seen by the allocation, given in stratum order (§5.3):
/// index 0 is first, and that index also breaks the last rounding ties.
#[derive(Clone, Debug, PartialEq)]
pub struct StratumInput {
    /// `N_h`, the number of eligible units (0 for an empty stratum).
    pub units: u64,
    /// `U`, the first 8 hex digits of `md5(seed:stratum)`; the stratum start is
    /// `u_h = U / 2^32`. It breaks rounding ties (§5.3) so that no stratum is
    /// favoured by its name.
    pub start: u32,
    /// `S_h` for `neyman`: the population standard deviation of the column.
    /// `None` (fewer than two values, or another method) counts as 0.
    pub sd: Option<f64>,
    /// Index into [`Request::rules`] of the first rule whose predicate matched
    /// this stratum; `None` for a method stratum (it matched no rule).
    pub rule: Option<usize>,
}

/// The amount of one rule of an `allocate { … }` block (§5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleAmount {
    /// `all`: every unit of each matching stratum.
    All,
    /// `none`: no unit of each matching stratum.
    None,
    /// `count K`: `min(K, N_h)` units of each matching stratum.
    Count(u64),
    /// `rate P%` (0 ≤ P ≤ 1): `round_half_up(P × N_h)` units, or `p_h = P` with `about`.
    Rate(BigRational),
    /// `share P%` (0 ≤ P ≤ 1): the rule's strata together get its part of the share quota.
    Share(BigRational),
}

impl RuleAmount {
    /// `p_h` of the strata this rule decides in a `take about` statement
    /// (§5.4): `all` 1, `rate P%` P, `none` 0. `count` and `share` have none
    /// (rejected with `about`). The batch allocation and the online decider
    /// both read it here.
    pub fn probability(&self) -> Option<BigRational> {
        match self {
            RuleAmount::All => Some(BigRational::one()),
            RuleAmount::Rate(p) => Some(p.clone()),
            RuleAmount::None => Some(BigRational::zero()),
            RuleAmount::Count(_) | RuleAmount::Share(_) => None,
        }
    }
}

/// The method for strata that no rule matched (§5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// Weights `N_h`.
    Proportional,
    /// Weights 1.
    Equal,
    /// Weights `N_h × S_h` (from [`StratumInput::sd`]).
    Neyman,
    /// Weights `N_h^Q` for `0 ≤ Q ≤ 1`.
    Power(BigRational),
}

/// What `take` asks for (§4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Total {
    /// `take INT`: exactly that many units.
    Count(u64),
    /// `take P%`: exactly `round_half_up(P × N)` units.
    Fraction(BigRational),
    /// `take all` (or no `take`): method strata keep `min(max, N_h)`.
    All,
    /// `take about P%`: Bernoulli sampling with expected size `P × N` (§5.4).
    About(BigRational),
    /// `take about` without a percentage: Bernoulli sampling, each stratum
    /// with its rule's probability (`rate P%` → P, `all` → 1, `none` → 0);
    /// every stratum must match such a rule (§5.4).
    Rates,
}

/// The allocation part of a `sample` statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The `take` clause.
    pub total: Total,
    /// The rule amounts in listing order; [`StratumInput::rule`] indexes this.
    pub rules: Vec<RuleAmount>,
    /// The method for strata that match no rule (`proportional` by default).
    pub method: Method,
    /// `min INT per stratum` (method strata only).
    pub min: Option<u64>,
    /// `max INT per stratum` (method strata only).
    pub max: Option<u64>,
}

/// What one stratum gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Exact sampling: keep the first `n_h` units in draw order.
    Exact(u64),
    /// Bernoulli sampling: keep each unit with probability `p_h` (exact; use
    /// [`threshold`] to get the draw threshold).
    Probability(BigRational),
}

impl Target {
    fn is_zero(&self) -> bool {
        match self {
            Target::Exact(n) => *n == 0,
            Target::Probability(p) => p.is_zero(),
        }
    }
}

/// The result of [`allocate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// One target per input stratum, in the same order.
    pub targets: Vec<Target>,
    /// The sample size `n = Σ n_h`, or the expected size `P × N` for `about`.
    pub total: BigRational,
    /// Data-dependent warnings (§9), to be reported but not fatal.
    pub warnings: Vec<AllocWarning>,
}

/// A data-dependent warning (§9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocWarning {
    /// Non-empty strata (indices) allocated 0 units or probability 0: they vanish
    /// from the sample and no weight can stand for them.
    ZeroAllocation { strata: Vec<usize> },
    /// A `count K` stratum has fewer than K units, so it gives all it has.
    CountShortfall {
        stratum: usize,
        wanted: u64,
        available: u64,
    },
    /// Every neyman weight was 0 (no stratum has two distinct values), so
    /// proportional allocation was used instead.
    NeymanAllZero,
    /// `take about`: the rules leave an expected `remainder` units that no
    /// method stratum can take, so the expected size is below `P × N`.
    UnallocatedRemainder { remainder: BigRational },
}

/// An allocation that cannot be made; each variant carries the numbers its
/// message states, so a user sees why and what to change. Rationals are boxed
/// to keep `Result<_, AllocError>` small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// A percentage or `power` exponent outside 0..=1 (normally a check-time error).
    OutOfRange {
        what: &'static str,
        value: Box<BigRational>,
    },
    /// `min` above `max` (normally a check-time error).
    MinAboveMax { min: u64, max: u64 },
    /// `take K` with K above the number of eligible units.
    TotalTooLarge { total: u64, population: u64 },
    /// The `share` rules add up to more than 100%.
    SharesOver100 { sum: Box<BigRational> },
    /// Rule `rule` (0-based) uses `share` with `take all`.
    ShareNeedsTotal { rule: usize },
    /// Rule `rule` (0-based) uses `count` or `share` with `take about`.
    NotWithAbout { rule: usize, amount: &'static str },
    /// Share rule `rule` (0-based) gets a quota above the units of its strata.
    ShareQuotaTooLarge {
        rule: usize,
        quota: u64,
        available: u64,
    },
    /// The rules take more units than the total.
    RemainderNegative {
        total: Box<BigRational>,
        rules: Box<BigRational>,
    },
    /// `take about P%`: the rule strata's expected sizes add up to more than
    /// the expected total `P × N`.
    ExpectedBelowRules {
        total: Box<BigRational>,
        rules: Box<BigRational>,
    },
    /// `take about` without a percentage, but `strata` strata (indices)
    /// match no `rate`, `all` or `none` rule (normally a check-time error).
    NoRate { strata: Vec<usize> },
    /// The rules leave `total − rules` units but no stratum falls to the method.
    NoMethodStrata { total: u64, rules: u64 },
    /// `min`/`max` per stratum cannot meet the remainder: the method strata hold
    /// between `lower_sum` and `upper_sum` units.
    Infeasible {
        remainder: Box<BigRational>,
        lower_sum: u64,
        upper_sum: u64,
    },
    /// Neyman strata with weight 0 stay at their lower bound, and the other
    /// method strata can reach only `reachable` of the remainder.
    ZeroWeightShortfall {
        remainder: Box<BigRational>,
        reachable: Box<BigRational>,
    },
}

/// A rational as a user reads it: an integer, else its nearest decimal.
fn show(x: &BigRational) -> String {
    if x.is_integer() {
        x.to_integer().to_string()
    } else {
        x.to_f64().map_or_else(|| x.to_string(), |f| f.to_string())
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use AllocError as E;
        match self {
            E::OutOfRange { what, value } => write!(
                f,
                "{what} is {} but must be between 0 and 1 (0%–100%); use a value in that range",
                show(value)
            ),
            E::MinAboveMax { min, max } => write!(
                f,
                "`min {min} per stratum` is above `max {max} per stratum`; lower `min` or raise `max`"
            ),
            E::TotalTooLarge { total, population } => write!(
                f,
                "take {total} asks for more units than the {population} eligible ones; \
                 lower `take` or widen `where`"
            ),
            E::SharesOver100 { sum } => write!(
                f,
                "the `share` rules add up to {}%, above 100%; lower the shares",
                show(&(&**sum * BigRational::from_integer(100.into())))
            ),
            E::ShareNeedsTotal { rule } => write!(
                f,
                "rule {} uses `share`, which needs a fixed total; write `take INT` or `take P%` \
                 instead of `take all`",
                rule + 1
            ),
            E::NotWithAbout { rule, amount } => write!(
                f,
                "rule {} uses `{amount}`, which cannot be used with `take about`; use `rate P%` \
                 or a fixed `take`",
                rule + 1
            ),
            E::ShareQuotaTooLarge {
                rule,
                quota,
                available,
            } => write!(
                f,
                "rule {} (`share`) gets a quota of {quota} units but its strata hold only \
                 {available}; lower its share or lower `take`",
                rule + 1
            ),
            E::RemainderNegative { total, rules } => write!(
                f,
                "the rules take {} units but the total is {}, so {} units are missing for the \
                 other strata; lower the rule amounts or raise `take`",
                show(rules),
                show(total),
                show(&(&**rules - &**total))
            ),
            E::ExpectedBelowRules { total, rules } => write!(
                f,
                "the rules keep an expected {} units but `take about` expects {} in total, {} \
                 fewer; to keep each unit with its stratum's rate, drop the amount: `take about` \
                 alone keeps each unit with its stratum's rate (with `else => rate P%` for the \
                 other strata); or lower the rule rates, or raise the `take about` percentage",
                show(rules),
                show(total),
                show(&(&**rules - &**total))
            ),
            E::NoRate { strata } => write!(
                f,
                "`take about` without a percentage keeps each unit with its stratum's rate, but \
                 {} no `rate`, `all` or `none` rule; end the rule block with `else => rate P%`",
                if strata.len() == 1 {
                    "1 stratum matches".to_string()
                } else {
                    format!("{} strata match", strata.len())
                }
            ),
            E::NoMethodStrata { total, rules } => write!(
                f,
                "the total is {total} but the rules take {rules} units and no stratum is left to \
                 the method to take the other {}; make the rules add up to the total, add \
                 `else => proportional`, or use `take all`",
                total - rules
            ),
            E::Infeasible {
                remainder,
                lower_sum,
                upper_sum,
            } => {
                let r = show(remainder);
                if BigRational::from_integer((*lower_sum).into()) > **remainder {
                    write!(
                        f,
                        "`min` per stratum needs {lower_sum} units in the method strata but only \
                         {r} remain for them (they can hold {lower_sum} to {upper_sum}); lower \
                         `min` or raise `take`"
                    )
                } else {
                    write!(
                        f,
                        "the method strata can hold at most {upper_sum} units (their sizes capped \
                         by `max`) but {r} must go to them (they need at least {lower_sum}); \
                         raise `max` or lower `take`"
                    )
                }
            }
            E::ZeroWeightShortfall {
                remainder,
                reachable,
            } => write!(
                f,
                "neyman: strata whose standard deviation is 0 keep only their `min`, so the \
                 method strata can take at most {} of the {} remaining units; raise `max`, \
                 lower `take`, or use another method",
                show(reachable),
                show(remainder)
            ),
        }
    }
}

impl std::error::Error for AllocError {}

impl AllocError {
    /// The message in two parts, what went wrong and how to fix it: every
    /// message is written `WHAT; FIX`.
    pub fn what_and_fix(&self) -> (String, String) {
        let text = self.to_string();
        match text.split_once("; ") {
            Some((what, fix)) => (what.to_string(), fix.to_string()),
            None => (text, String::new()),
        }
    }
}

fn rat(n: u64) -> BigRational {
    BigRational::from_integer(n.into())
}

/// A non-negative integral rational that is known to fit (counts never exceed `N`).
fn to_u64(x: &BigRational) -> u64 {
    x.to_integer().to_u64().expect("a unit count fits in u64")
}

/// `2^64`, the scale of the 16-hex-digit draws (§6).
fn two64() -> BigRational {
    BigRational::from_integer(BigInt::one() << 64)
}

/// `round_half_up(x) = floor(x + 1/2)`: the rounding the spec uses for `take P%`,
/// `rate P%` and share quotas (never banker's rounding).
pub fn round_half_up(x: &BigRational) -> BigInt {
    (x + BigRational::new(1.into(), 2.into()))
        .floor()
        .to_integer()
}

/// `round_half_up` of a non-negative count that fits in u64 (at most `N`).
fn round_count(x: &BigRational) -> u64 {
    round_half_up(x).to_u64().expect("a unit count fits in u64")
}

/// Allocates a statement's sample over its strata (§4.1, §5): exact sizes `n_h`,
/// or probabilities `p_h` for `take about`.
///
/// # Panics
/// If a stratum's `rule` is not an index into `req.rules`, or the units sum past `u64`.
pub fn allocate(strata: &[StratumInput], req: &Request) -> Result<Allocation, AllocError> {
    validate(req)?;
    let population = strata
        .iter()
        .try_fold(0u64, |sum, s| sum.checked_add(s.units))
        .expect("fewer than 2^64 units");
    let mut warnings = Vec::new();
    let (targets, total) = match &req.total {
        Total::About(p) => bernoulli(strata, req, Some(p), population, &mut warnings)?,
        Total::Rates => bernoulli(strata, req, None, population, &mut warnings)?,
        total => exact(strata, req, total, population, &mut warnings)?,
    };
    let zero: Vec<usize> = (0..strata.len())
        .filter(|&h| strata[h].units > 0 && targets[h].is_zero())
        .collect();
    if !zero.is_empty() {
        warnings.push(AllocWarning::ZeroAllocation { strata: zero });
    }
    Ok(Allocation {
        targets,
        total,
        warnings,
    })
}

/// Statement-level checks that do not depend on the data (also check-time errors,
/// repeated here so the crate never computes nonsense).
fn validate(req: &Request) -> Result<(), AllocError> {
    let unit = |what, v: &BigRational| {
        if v.is_negative() || *v > BigRational::one() {
            Err(AllocError::OutOfRange {
                what,
                value: Box::new(v.clone()),
            })
        } else {
            Ok(())
        }
    };
    match &req.total {
        Total::Fraction(p) => unit("the `take` percentage", p)?,
        Total::About(p) => unit("the `take about` percentage", p)?,
        Total::Count(_) | Total::All | Total::Rates => {}
    }
    if let Method::Power(q) = &req.method {
        unit("the `power` exponent", q)?;
    }
    if let (Some(min), Some(max)) = (req.min, req.max)
        && min > max
    {
        return Err(AllocError::MinAboveMax { min, max });
    }
    let mut shares = BigRational::zero();
    for (rule, amount) in req.rules.iter().enumerate() {
        let about = matches!(req.total, Total::About(_) | Total::Rates);
        match amount {
            RuleAmount::Count(_) if about => {
                return Err(AllocError::NotWithAbout {
                    rule,
                    amount: "count",
                });
            }
            RuleAmount::Share(_) if about => {
                return Err(AllocError::NotWithAbout {
                    rule,
                    amount: "share",
                });
            }
            RuleAmount::Share(_) if req.total == Total::All => {
                return Err(AllocError::ShareNeedsTotal { rule });
            }
            RuleAmount::Rate(p) => unit("a `rate` percentage", p)?,
            RuleAmount::Share(p) => {
                unit("a `share` percentage", p)?;
                shares += p;
            }
            _ => {}
        }
    }
    if shares > BigRational::one() {
        return Err(AllocError::SharesOver100 {
            sum: Box::new(shares),
        });
    }
    Ok(())
}

/// Exact sampling: integer `n_h` per stratum (§5.1–5.3).
fn exact(
    strata: &[StratumInput],
    req: &Request,
    total: &Total,
    population: u64,
    warnings: &mut Vec<AllocWarning>,
) -> Result<(Vec<Target>, BigRational), AllocError> {
    let n = match total {
        Total::Count(k) if *k > population => {
            return Err(AllocError::TotalTooLarge {
                total: *k,
                population,
            });
        }
        Total::Count(k) => Some(*k),
        Total::Fraction(p) => Some(round_count(&(p * rat(population)))),
        Total::All | Total::About(_) | Total::Rates => None,
    };
    let mut sizes = vec![0u64; strata.len()];
    for (h, s) in strata.iter().enumerate() {
        let Some(rule) = s.rule else { continue };
        sizes[h] = match &req.rules[rule] {
            RuleAmount::All => s.units,
            RuleAmount::None | RuleAmount::Share(_) => 0, // shares are filled in below
            RuleAmount::Count(k) => {
                if *k > s.units {
                    warnings.push(AllocWarning::CountShortfall {
                        stratum: h,
                        wanted: *k,
                        available: s.units,
                    });
                }
                (*k).min(s.units)
            }
            RuleAmount::Rate(p) => round_count(&(p * rat(s.units))),
        };
    }
    if let Some(n) = n {
        share_quotas(strata, req, n, &mut sizes)?;
    }
    let method: Vec<usize> = (0..strata.len())
        .filter(|&h| strata[h].rule.is_none())
        .collect();
    let (lower, upper) = bounds(strata, &method, req);
    match n {
        None => {
            for (&h, &u) in method.iter().zip(&upper) {
                sizes[h] = u;
            }
        }
        Some(n) => {
            let rules: u64 = (0..strata.len())
                .filter(|&h| strata[h].rule.is_some())
                .map(|h| sizes[h])
                .sum();
            if rules > n {
                return Err(AllocError::RemainderNegative {
                    total: Box::new(rat(n)),
                    rules: Box::new(rat(rules)),
                });
            }
            let r = n - rules;
            if method.is_empty() && r != 0 {
                return Err(AllocError::NoMethodStrata { total: n, rules });
            }
            if !method.is_empty() {
                let w = weights(strata, &method, &req.method, warnings);
                let (_, x) = water_fill(&w, &lower, &upper, &rat(r))?;
                for (&h, k) in method.iter().zip(round_to_total(strata, &method, &x, r)) {
                    sizes[h] = k;
                }
            }
        }
    }
    let total = rat(sizes.iter().sum());
    Ok((sizes.into_iter().map(Target::Exact).collect(), total))
}

/// Share rules (§5.1): the quota `round_half_up(ΣP × n)` is apportioned among the
/// rules by largest remainder (ties to the rule listed first), then each rule's
/// quota among its strata in proportion to `N_h` by §5.3.
fn share_quotas(
    strata: &[StratumInput],
    req: &Request,
    n: u64,
    sizes: &mut [u64],
) -> Result<(), AllocError> {
    let shares: Vec<(usize, &BigRational)> = req
        .rules
        .iter()
        .enumerate()
        .filter_map(|(r, a)| match a {
            RuleAmount::Share(p) => Some((r, p)),
            _ => None,
        })
        .collect();
    if shares.is_empty() {
        return Ok(());
    }
    let sum: BigRational = shares.iter().map(|(_, p)| (*p).clone()).sum();
    let quota_total = round_count(&(sum * rat(n)));
    let ideal: Vec<BigRational> = shares.iter().map(|(_, p)| *p * rat(n)).collect();
    let quotas = largest_remainder(&ideal, quota_total, |a, b| a.cmp(&b));
    for (&(rule, _), quota) in shares.iter().zip(quotas) {
        let members: Vec<usize> = (0..strata.len())
            .filter(|&h| strata[h].rule == Some(rule))
            .collect();
        let available: u64 = members.iter().map(|&h| strata[h].units).sum();
        if available < quota {
            return Err(AllocError::ShareQuotaTooLarge {
                rule,
                quota,
                available,
            });
        }
        if quota == 0 {
            continue;
        }
        let x: Vec<BigRational> = members
            .iter()
            .map(|&h| rat(quota) * rat(strata[h].units) / rat(available))
            .collect();
        for (&h, k) in members
            .iter()
            .zip(round_to_total(strata, &members, &x, quota))
        {
            sizes[h] = k;
        }
    }
    Ok(())
}

/// Bernoulli sampling: a probability `p_h` per stratum (§5.4). Without a
/// percentage `p` every stratum takes its rule's probability, and the
/// expected size is what the rules keep.
fn bernoulli(
    strata: &[StratumInput],
    req: &Request,
    p: Option<&BigRational>,
    population: u64,
    warnings: &mut Vec<AllocWarning>,
) -> Result<(Vec<Target>, BigRational), AllocError> {
    let mut probs = vec![BigRational::zero(); strata.len()];
    let mut rules = BigRational::zero();
    for (h, s) in strata.iter().enumerate() {
        let Some(rule) = s.rule else { continue };
        probs[h] = req.rules[rule]
            .probability()
            .expect("count and share rejected by validate");
        rules += rat(s.units) * &probs[h];
    }
    let method: Vec<usize> = (0..strata.len())
        .filter(|&h| strata[h].rule.is_none())
        .collect();
    let Some(p) = p else {
        if !method.is_empty() {
            return Err(AllocError::NoRate { strata: method });
        }
        return Ok((probs.into_iter().map(Target::Probability).collect(), rules));
    };
    let expected = p * rat(population);
    let r = &expected - &rules;
    if r.is_negative() {
        return Err(AllocError::ExpectedBelowRules {
            total: Box::new(expected),
            rules: Box::new(rules),
        });
    }
    if method.is_empty() {
        if r.is_positive() {
            warnings.push(AllocWarning::UnallocatedRemainder { remainder: r });
        }
    } else {
        let w = weights(strata, &method, &req.method, warnings);
        let (lower, upper) = bounds(strata, &method, req);
        let (_, x) = water_fill(&w, &lower, &upper, &r)?;
        for (&h, x) in method.iter().zip(x) {
            if strata[h].units > 0 {
                probs[h] = x / rat(strata[h].units);
            }
        }
    }
    Ok((
        probs.into_iter().map(Target::Probability).collect(),
        expected,
    ))
}

/// `(lower_h, upper_h) = (min(min, N_h), min(max, N_h))` for the given strata.
fn bounds(strata: &[StratumInput], ids: &[usize], req: &Request) -> (Vec<u64>, Vec<u64>) {
    ids.iter()
        .map(|&h| {
            let n = strata[h].units;
            (
                req.min.map_or(0, |m| m.min(n)),
                req.max.map_or(n, |m| m.min(n)),
            )
        })
        .unzip()
}

/// Method weights `w_h` as exact rationals (§5.2). Neyman and power are computed
/// in f64 and then converted exactly, so everything after is exact and the same
/// on every machine.
fn weights(
    strata: &[StratumInput],
    ids: &[usize],
    method: &Method,
    warnings: &mut Vec<AllocWarning>,
) -> Vec<BigRational> {
    let exact_float = |f: f64| {
        if f.is_finite() && f > 0.0 {
            BigRational::from_float(f).expect("finite")
        } else {
            BigRational::zero()
        }
    };
    let proportional = || {
        ids.iter()
            .map(|&h| rat(strata[h].units))
            .collect::<Vec<_>>()
    };
    match method {
        Method::Proportional => proportional(),
        Method::Equal => vec![BigRational::one(); ids.len()],
        Method::Power(q) => ids
            .iter()
            .map(|&h| exact_float(power(strata[h].units, q)))
            .collect(),
        Method::Neyman => {
            let w: Vec<BigRational> = ids
                .iter()
                .map(|&h| exact_float(strata[h].units as f64 * strata[h].sd.unwrap_or(0.0)))
                .collect();
            if w.iter().all(Zero::is_zero) && ids.iter().any(|&h| strata[h].units > 0) {
                warnings.push(AllocWarning::NeymanAllZero);
                return proportional();
            }
            w
        }
    }
}

/// `N^Q` in f64. Q = 0, 1/2 and 1 avoid `powf` (whose last bit may differ
/// between C libraries) for the exact answers 1, `sqrt(N)` and `N`.
fn power(n: u64, q: &BigRational) -> f64 {
    let n = n as f64;
    if q.is_zero() {
        1.0
    } else if q.is_one() {
        n
    } else if *q == BigRational::new(1.into(), 2.into()) {
        n.sqrt()
    } else {
        n.powf(q.to_f64().expect("0 <= Q <= 1"))
    }
}

/// The water-filling rule (§5.2): finds λ and `x_h = clamp(λ·w_h, l_h, u_h)` with
/// `Σ x_h = r`, exactly. `f(λ) = Σ x_h` is monotone and piecewise linear with
/// breakpoints `l_h/w_h` and `u_h/w_h`; we find the segment holding `r` by
/// binary search and interpolate on it, which is exact because f is linear there.
fn water_fill(
    w: &[BigRational],
    lower: &[u64],
    upper: &[u64],
    r: &BigRational,
) -> Result<(BigRational, Vec<BigRational>), AllocError> {
    let (lower_sum, upper_sum) = (lower.iter().sum::<u64>(), upper.iter().sum::<u64>());
    if rat(lower_sum) > *r || rat(upper_sum) < *r {
        return Err(AllocError::Infeasible {
            remainder: Box::new(r.clone()),
            lower_sum,
            upper_sum,
        });
    }
    let clamp = |lam: &BigRational, i: usize| (lam * &w[i]).max(rat(lower[i])).min(rat(upper[i]));
    let f = |lam: &BigRational| (0..w.len()).map(|i| clamp(lam, i)).sum::<BigRational>();
    let mut points = vec![BigRational::zero()];
    for i in (0..w.len()).filter(|&i| w[i].is_positive()) {
        points.push(rat(lower[i]) / &w[i]);
        points.push(rat(upper[i]) / &w[i]);
    }
    points.sort();
    points.dedup();
    // f(0) = Σ l_h <= r, so the first breakpoint with f >= r is the end of the segment.
    let k = points.partition_point(|p| f(p) < *r);
    let Some(end) = points.get(k) else {
        let reachable = f(points.last().expect("0 is a breakpoint"));
        return Err(AllocError::ZeroWeightShortfall {
            remainder: Box::new(r.clone()),
            reachable: Box::new(reachable),
        });
    };
    let f_end = f(end);
    let lam = if f_end == *r {
        end.clone()
    } else {
        let start = &points[k - 1];
        let f_start = f(start);
        start + (r - &f_start) * (end - start) / (f_end - f_start)
    };
    let x = (0..w.len()).map(|i| clamp(&lam, i)).collect();
    Ok((lam, x))
}

/// §5.3 for the strata `ids`: real targets `x` summing to `total` become integers,
/// ties going to the smaller start, then to the earlier stratum.
fn round_to_total(
    strata: &[StratumInput],
    ids: &[usize],
    x: &[BigRational],
    total: u64,
) -> Vec<u64> {
    let key = |i: usize| (strata[ids[i]].start, ids[i]);
    largest_remainder(x, total, |a, b| key(a).cmp(&key(b)))
}

/// Largest-remainder rounding: floors, then one more unit each for the
/// `total − Σ floor` items with the largest fractional parts; `tie` orders equal
/// fractional parts (the smaller item wins).
fn largest_remainder(
    x: &[BigRational],
    total: u64,
    tie: impl Fn(usize, usize) -> Ordering,
) -> Vec<u64> {
    let mut out: Vec<u64> = x.iter().map(|v| to_u64(&v.floor())).collect();
    let frac: Vec<BigRational> = x.iter().map(BigRational::fract).collect();
    let leftover = total - out.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| frac[b].cmp(&frac[a]).then_with(|| tie(a, b)));
    debug_assert!(
        leftover as usize <= x.len(),
        "targets must sum to the total"
    );
    for &i in order.iter().take(leftover as usize) {
        out[i] += 1;
    }
    out
}

/// Exact split of one stratum of `units` units (§4.2): the sizes of the splits,
/// by systematic rounding with the stratum start `u_h = start / 2^32`, so each
/// size is the floor or ceiling of `P_i × N_h`, they sum to `N_h`, and which
/// split gets the extra unit of a small stratum is random, not always the first.
/// `shares` must sum to 1; the last split takes whatever is left.
pub fn split_sizes(units: u64, shares: &[BigRational], start: u32) -> Vec<u64> {
    let u = BigRational::new(BigInt::from(start), BigInt::one() << 32);
    let mut cumulative = BigRational::zero();
    let mut prev = 0u64;
    let mut sizes = Vec::with_capacity(shares.len());
    for (i, p) in shares.iter().enumerate() {
        cumulative += p;
        let boundary = if i + 1 == shares.len() {
            units
        } else {
            to_u64(&(rat(units) * &cumulative + &u).floor()).clamp(prev, units)
        };
        sizes.push(boundary - prev);
        prev = boundary;
    }
    sizes
}

/// The Bernoulli threshold `t = floor(p × 2^64)` (§6): a unit with draw `r` is
/// kept iff `r < t`. `None` means keep every unit (`p ≥ 1`, where `2^64` does
/// not fit in 16 hex digits); `p ≤ 0` gives `Some(0)`, which keeps none.
pub fn threshold(p: &BigRational) -> Option<u64> {
    if *p >= BigRational::one() {
        None
    } else if !p.is_positive() {
        Some(0)
    } else {
        Some(to_u64(&(p * two64()).floor()))
    }
}

/// Thresholds of an `about` split (§4.2): `t_i = floor((P_1+…+P_i) × 2^64)` for
/// every split but the last, which takes the rest. A unit goes to the first
/// split with `r < t_i`; `None` means "every remaining draw" (the cumulative
/// share reached 100%).
pub fn about_thresholds(shares: &[BigRational]) -> Vec<Option<u64>> {
    let mut cumulative = BigRational::zero();
    let but_last = shares.len().saturating_sub(1);
    shares[..but_last]
        .iter()
        .map(|p| {
            cumulative += p;
            threshold(&cumulative)
        })
        .collect()
}

#[cfg(test)]
mod tests;
