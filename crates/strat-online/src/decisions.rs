//! The frozen decision of a statement: per stratum, what decides a unit from
//! its draw alone (spec §6.4, §6.5), written as a small versioned JSON file
//! (`strat freeze`) and read back by `strat stream`.

use std::collections::BTreeMap;

use num_bigint::BigInt;
use num_rational::BigRational;
use serde_json::{Value, json};
use strat_alloc::Target;

/// The version of the decisions file's layout.
pub const FORMAT: u64 = 1;

/// A unit's place in draw order (spec §6.2): its draw `r`, then its key text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DrawKey {
    pub r: u64,
    pub key: String,
}

/// How one stratum decides its units.
#[derive(Clone, Debug, PartialEq)]
pub enum Cut {
    /// An exact sample keeps the units up to and including `last` in draw
    /// order (`None`: the stratum keeps none).
    UpTo(Option<DrawKey>),
    /// Bernoulli: the units with `r < t` (`None`: every unit), `p_h` exact.
    Below { p: BigRational, t: Option<u64> },
    /// An exact split: the last unit of each part but the last, taken
    /// cumulatively (`None`: that part and those before it are empty); a
    /// unit goes to the first part whose boundary it does not pass.
    Parts(Vec<Option<DrawKey>>),
    /// An `about` split: the first part `i` with `r < t_i` (`None`: every
    /// remaining draw).
    AboutParts(Vec<Option<u64>>),
}

/// One stratum's decision and what the batch run counted there.
#[derive(Clone, Debug, PartialEq)]
pub struct StratumCut {
    /// `N_h` in the batch run (0 for a stratum decided by its rule alone).
    pub population: u64,
    /// `n_h` of an exact sample (0 otherwise).
    pub target: u64,
    pub cut: Cut,
}

impl StratumCut {
    /// The design weight (spec §7.2), as the batch run computes it: `N_h/n_h`,
    /// `1/p_h`, 0 where nothing is kept, 1 for a split.
    pub fn weight(&self) -> f64 {
        match &self.cut {
            Cut::UpTo(_) if self.target == 0 => 0.0,
            Cut::UpTo(_) => self.population as f64 / self.target as f64,
            Cut::Below { p, .. } if p.numer() == &BigInt::from(0) => 0.0,
            Cut::Below { p, .. } => strat_engine::run::ratio_to_f64(p.denom(), p.numer()),
            Cut::Parts(_) | Cut::AboutParts(_) => 1.0,
        }
    }
}

/// A statement's frozen decision: enough to decide any record without the
/// table, and what it was frozen from.
#[derive(Clone, Debug, PartialEq)]
pub struct Decisions {
    /// The rule file's name and the md5 of its text.
    pub rule_file: String,
    pub rule_md5: String,
    /// The statement's label (its name, or `statement N`).
    pub statement: String,
    pub seed: u64,
    /// The `--param NAME=VALUE` overrides of the run, sorted (the rule
    /// file's md5 covers its own values).
    pub params: Vec<(String, String)>,
    /// Strata by `_stratum` text.
    pub strata: BTreeMap<String, StratumCut>,
}

fn hex(r: u64) -> String {
    strat_engine::draw::draw_hex(r)
}

fn threshold_json(t: Option<u64>) -> Value {
    t.map_or_else(|| json!("all"), |t| json!(hex(t)))
}

fn draw_key_json(d: &Option<DrawKey>) -> Value {
    match d {
        None => Value::Null,
        Some(d) => json!({ "draw": hex(d.r), "key": d.key }),
    }
}

fn rational_text(p: &BigRational) -> String {
    format!("{}/{}", p.numer(), p.denom())
}

impl Decisions {
    /// The JSON document `strat freeze` writes.
    pub fn to_json(&self) -> Value {
        let strata: Vec<Value> = self
            .strata
            .iter()
            .map(|(text, s)| {
                let mut o = json!({
                    "stratum": text,
                    "population": s.population,
                    "weight": s.weight(),
                });
                let fields = match &s.cut {
                    Cut::UpTo(last) => json!({ "take": s.target, "last": draw_key_json(last) }),
                    Cut::Below { p, t } => {
                        json!({ "p": rational_text(p), "below": threshold_json(*t) })
                    }
                    Cut::Parts(b) => {
                        json!({ "boundaries": b.iter().map(draw_key_json).collect::<Vec<_>>() })
                    }
                    Cut::AboutParts(t) => {
                        json!({ "below": t.iter().map(|t| threshold_json(*t)).collect::<Vec<_>>() })
                    }
                };
                if let (Value::Object(o), Value::Object(f)) = (&mut o, fields) {
                    o.extend(f);
                }
                o
            })
            .collect();
        json!({
            "strat_decisions": FORMAT,
            "spec": "docs/spec.md §6.5",
            "rule_file": self.rule_file,
            "rule_md5": self.rule_md5,
            "statement": self.statement,
            "seed": self.seed,
            "params": self.params.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
            "strata": strata,
        })
    }

    /// Reads a decisions file's JSON; the error says what is wrong where.
    pub fn from_json(v: &Value) -> Result<Decisions, String> {
        let field = |o: &Value, k: &str| -> Result<Value, String> {
            o.get(k).cloned().ok_or_else(|| format!("no `{k}`"))
        };
        let text = |o: &Value, k: &str| -> Result<String, String> {
            field(o, k)?
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("`{k}` is not a string"))
        };
        let number = |o: &Value, k: &str| -> Result<u64, String> {
            field(o, k)?
                .as_u64()
                .ok_or_else(|| format!("`{k}` is not a whole number"))
        };
        let format = number(v, "strat_decisions")?;
        if format != FORMAT {
            return Err(format!(
                "it is format {format}; this strat reads format {FORMAT}: freeze it again"
            ));
        }
        let mut strata = BTreeMap::new();
        let list = field(v, "strata")?;
        for (i, s) in list
            .as_array()
            .ok_or("`strata` is not a list")?
            .iter()
            .enumerate()
        {
            let at = |e: String| format!("stratum {}: {e}", i + 1);
            let name = text(s, "stratum").map_err(at)?;
            let population = number(s, "population").map_err(at)?;
            let (target, cut) = if s.get("last").is_some() {
                let last = parse_draw_key(&field(s, "last").map_err(at)?).map_err(at)?;
                (number(s, "take").map_err(at)?, Cut::UpTo(last))
            } else if s.get("boundaries").is_some() {
                let b = field(s, "boundaries").map_err(at)?;
                let b = b
                    .as_array()
                    .ok_or_else(|| at("`boundaries` is not a list".into()))?;
                let b = b
                    .iter()
                    .map(parse_draw_key)
                    .collect::<Result<_, _>>()
                    .map_err(at)?;
                (0, Cut::Parts(b))
            } else if s.get("p").is_some() {
                let p = parse_rational(&text(s, "p").map_err(at)?).map_err(at)?;
                let t = parse_threshold(&field(s, "below").map_err(at)?).map_err(at)?;
                (0, Cut::Below { p, t })
            } else {
                let t = field(s, "below").map_err(at)?;
                let t = t
                    .as_array()
                    .ok_or_else(|| at("`below` is not a list".into()))?;
                let t = t
                    .iter()
                    .map(parse_threshold)
                    .collect::<Result<_, _>>()
                    .map_err(at)?;
                (0, Cut::AboutParts(t))
            };
            strata.insert(
                name,
                StratumCut {
                    population,
                    target,
                    cut,
                },
            );
        }
        Ok(Decisions {
            rule_file: text(v, "rule_file")?,
            rule_md5: text(v, "rule_md5")?,
            statement: text(v, "statement")?,
            seed: number(v, "seed")?,
            params: parse_params(v.get("params"))?,
            strata,
        })
    }

    /// Reads a decisions file (`strat freeze`), or the `thresholds` of a
    /// JSON run report; the error says what is wrong where.
    pub fn read(path: &std::path::Path) -> Result<Decisions, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("`{}` is not JSON: {e}", path.display()))?;
        let v = v.get("thresholds").cloned().unwrap_or(v);
        Decisions::from_json(&v).map_err(|e| format!("`{}`: {e}", path.display()))
    }

    /// Whether these decisions were frozen from `origin`, for the statement
    /// `label` with `seed`; else what differs (E0145).
    pub fn fits(&self, origin: &Origin<'_>, label: &str, seed: u64) -> Result<(), String> {
        let md5 = strat_engine::report::md5_hex(origin.rule_text.as_bytes());
        let params = sorted(origin.params);
        let shown = |p: &[(String, String)]| {
            if p.is_empty() {
                "none".to_string()
            } else {
                p.iter()
                    .map(|(n, v)| format!("--param {n}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        if self.rule_md5 != md5 {
            Err(format!(
                "they were frozen from another version of the rules ({} had md5 {}, this file has {md5})",
                self.rule_file, self.rule_md5
            ))
        } else if self.statement != label {
            Err(format!("they decide `{}`, not `{label}`", self.statement))
        } else if self.seed != seed {
            Err(format!(
                "they were frozen with seed {}, the statement has {seed}",
                self.seed
            ))
        } else if self.params != params {
            Err(format!(
                "they were frozen with params {}, this run has {}",
                shown(&self.params),
                shown(&params)
            ))
        } else {
            Ok(())
        }
    }
}

/// What a run's decision depends on besides the data: the rule file's text
/// and the `--param` overrides.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    pub rule_text: &'a str,
    pub params: &'a [(String, String)],
}

/// `--param` overrides in name order (the last of one name wins, as when
/// binding them).
pub fn sorted(params: &[(String, String)]) -> Vec<(String, String)> {
    let mut by_name = BTreeMap::new();
    for (n, v) in params {
        by_name.insert(n.clone(), v.clone());
    }
    by_name.into_iter().collect()
}

fn parse_params(v: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let list = v.as_array().ok_or("`params` is not a list")?;
    list.iter()
        .map(|p| match p.as_array().map(Vec::as_slice) {
            Some([Value::String(n), Value::String(v)]) => Ok((n.clone(), v.clone())),
            _ => Err("`params` holds something else than [NAME, VALUE] pairs".to_string()),
        })
        .collect()
}

fn parse_hex(v: &Value) -> Result<u64, String> {
    let s = v.as_str().ok_or("a draw is not a string")?;
    if s.len() != 16 {
        return Err(format!("`{s}` is not 16 hex digits"));
    }
    u64::from_str_radix(s, 16).map_err(|_| format!("`{s}` is not 16 hex digits"))
}

fn parse_threshold(v: &Value) -> Result<Option<u64>, String> {
    if v.as_str() == Some("all") {
        return Ok(None);
    }
    parse_hex(v).map(Some)
}

fn parse_draw_key(v: &Value) -> Result<Option<DrawKey>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let r = parse_hex(v.get("draw").ok_or("no `draw`")?)?;
    let key = v
        .get("key")
        .and_then(Value::as_str)
        .ok_or("no `key` text")?
        .to_string();
    Ok(Some(DrawKey { r, key }))
}

fn parse_rational(s: &str) -> Result<BigRational, String> {
    let bad = || format!("`{s}` is not a fraction NUM/DEN");
    let (n, d) = s.split_once('/').ok_or_else(bad)?;
    let n: BigInt = n.parse().map_err(|_| bad())?;
    let d: BigInt = d.parse().map_err(|_| bad())?;
    if d <= BigInt::from(0) {
        return Err(bad());
    }
    Ok(BigRational::new(n, d))
}

/// The cut of a Bernoulli stratum with probability `p`.
pub fn below(p: BigRational) -> Cut {
    let t = strat_alloc::threshold(&p);
    Cut::Below { p, t }
}

/// `n_h` of an exact target (0 for a probability).
pub fn exact_target(t: &Target) -> u64 {
    match t {
        Target::Exact(n) => *n,
        Target::Probability(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decisions_file_reads_back_as_written() {
        let mut strata = BTreeMap::new();
        let key = |r: u64, k: &str| Some(DrawKey { r, key: k.into() });
        strata.insert(
            "US/basic".into(),
            StratumCut {
                population: 300,
                target: 7,
                cut: Cut::UpTo(key(0x0123_4567_89ab_cdef, "42")),
            },
        );
        strata.insert(
            "∅".into(),
            StratumCut {
                population: 3,
                target: 0,
                cut: Cut::UpTo(None),
            },
        );
        strata.insert(
            "BR".into(),
            StratumCut {
                population: 9,
                target: 0,
                cut: below(BigRational::new(1.into(), 3.into())),
            },
        );
        strata.insert(
            "FR".into(),
            StratumCut {
                population: 9,
                target: 0,
                cut: Cut::Parts(vec![None, key(u64::MAX, "a\u{1f}b")]),
            },
        );
        strata.insert(
            "DE".into(),
            StratumCut {
                population: 0,
                target: 0,
                cut: Cut::AboutParts(vec![Some(1 << 63), None]),
            },
        );
        let d = Decisions {
            rule_file: "r.strat".into(),
            rule_md5: "00".into(),
            statement: "cohort".into(),
            seed: 7,
            params: vec![("n".into(), "10".into())],
            strata,
        };
        let text = d.to_json().to_string();
        let back = Decisions::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back, d);
        assert_eq!(d.strata["US/basic"].weight(), 300.0 / 7.0);
        assert_eq!(d.strata["∅"].weight(), 0.0);
        assert_eq!(d.strata["BR"].weight(), 3.0);
    }

    #[test]
    fn a_damaged_file_says_where() {
        let v: Value = serde_json::from_str(
            r#"{"strat_decisions":1,"rule_file":"r","rule_md5":"0","statement":"s","seed":1,
                "strata":[{"stratum":"A","population":3,"take":1,"last":{"draw":"xyz","key":"1"}}]}"#,
        )
        .unwrap();
        let e = Decisions::from_json(&v).unwrap_err();
        assert_eq!(e, "stratum 1: `xyz` is not 16 hex digits");
        let v: Value = serde_json::from_str(r#"{"strat_decisions":2}"#).unwrap();
        assert!(
            Decisions::from_json(&v)
                .unwrap_err()
                .contains("freeze it again")
        );
    }
}
