//! `strat sql --thresholds`: a statement decided record by record from the
//! thresholds a batch run froze (`strat freeze`; spec §6.5).
//!
//! A unit's fate depends only on its stratum, its draw and its key text once
//! each stratum's cut is known, so the query is per-row expressions only —
//! `where`, the unit's key text, the `_stratum` text, the md5 draw and the
//! cuts inlined as a `CASE` on the stratum text —, with no window function,
//! aggregate, join or `ORDER BY`: Spark Structured Streaming runs it on a
//! stream, and any engine on any slice of the records gives the rows of
//! `strat run` in that slice (when the thresholds were frozen from the same
//! rules and data).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use strat_check::ir::{self, Program, Source};
use strat_syntax::Span;

use crate::{Cte, Dialect, Gen, KEY, R, S_PREFIX, SqlOptions, Unsupported, md5_hex, write_ctes};

/// Internal columns of the frozen query (next to the source columns; names
/// starting `_strat_` are refused in a source).
const STRATUM: &str = "_strat_stratum";
const DRAW: &str = "_strat_r";
const PART: &str = "_strat_part";

/// A unit's place in draw order (spec §6.2): its draw `r` (the first 16 hex
/// digits of the md5, as an integer), then its key text (§6.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrozenDraw {
    pub r: u64,
    pub key: String,
}

/// How one stratum decides a unit from its draw alone (spec §6.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrozenCut {
    /// An exact sample: the units up to and including this one in draw
    /// order, `(r, key)` compared as (16 hex digits, key text) by bytes;
    /// `None`: the stratum keeps none.
    UpTo(Option<FrozenDraw>),
    /// Bernoulli: the units with `r < t`; `None`: every unit.
    Below(Option<u64>),
    /// An exact split: the last unit of each part but the last, taken
    /// cumulatively; a unit goes to the first part whose boundary is
    /// `Some(b)` with `(r, key) <= b`, else to the last part.
    Parts(Vec<Option<FrozenDraw>>),
    /// An `about` split: the first part `i` with `r < t_i` (`None`: every
    /// remaining draw), else the last part.
    AboutParts(Vec<Option<u64>>),
}

/// One stratum's frozen decision and its design weight (spec §7.2).
#[derive(Clone, Debug, PartialEq)]
pub struct FrozenStratum {
    /// `_weight` of the stratum's rows (`N_h/n_h`, `1/p_h`, 1 for a split).
    pub weight: f64,
    pub cut: FrozenCut,
}

/// A statement's frozen thresholds, by `_stratum` text: what `strat freeze`
/// wrote, as plain data. A stratum not listed selects nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrozenCuts {
    pub strata: BTreeMap<String, FrozenStratum>,
}

fn generator<'a>(program: &'a Program, index: usize, options: &'a SqlOptions) -> Gen<'a> {
    Gen {
        d: options.dialect,
        st: &program.statements[index],
        program,
        options,
    }
}

/// Checks that statement `index` can be decided record by record by a frozen
/// query: E0144 for a statement that needs more than one record (another
/// statement's rows, `as of`, unit aggregates or `having`, `keep`/`exclude
/// units in`), E0141 without a unit, E0140 for what the dialect cannot spell.
pub fn check_frozen(program: &Program, index: usize, options: &SqlOptions) -> R<()> {
    generator(program, index, options).check_record_by_record()
}

/// The query deciding the records of statement `index` with `frozen`, the
/// thresholds of a batch run of the same rules: per-row expressions only
/// (see the module's doc), the statement's output columns in its order.
/// Thresholds that do not fit the statement (a sample's cut in a split, a
/// split's cut with other parts, a weight that is not a number) are E0145.
pub fn frozen_statement_sql(
    program: &Program,
    index: usize,
    options: &SqlOptions,
    frozen: &FrozenCuts,
) -> R<String> {
    let g = generator(program, index, options);
    g.check_record_by_record()?;
    g.check_cuts(frozen)?;
    let mut ctes = Vec::new();
    g.eligible_ctes(&mut ctes)?;
    g.drawn_rows(&mut ctes)?;
    g.decided_rows(&mut ctes, frozen);
    let mut sql = g.frozen_header(index);
    sql.push_str("WITH\n");
    write_ctes(&mut sql, &ctes, options.dialect);
    sql.push_str(&g.frozen_select(frozen));
    Ok(sql)
}

impl Gen<'_> {
    /// E0144 for a statement that reads more than one record to decide one;
    /// then the checks every export makes on the rows (E0141, E0140).
    fn check_record_by_record(&self) -> R<()> {
        let st = self.st;
        let c = &st.clauses;
        let refused = |span: Option<Span>, what: &str, fix: &str| {
            Err(Unsupported {
                code: "E0144",
                message: format!(
                    "{what}: the statement cannot be decided record by record (`strat sql --thresholds`)"
                ),
                help: fix.to_string(),
                span: span.unwrap_or(st.span),
            })
        };
        if let Source::Statement(_) = st.source {
            return refused(
                Some(c.head),
                "a statement that reads another statement's output",
                "export the first statement with its own thresholds, write its rows to a table, \
                 and decide this one from rules that read that table",
            );
        }
        if st.as_of.is_some() {
            return refused(
                c.as_of,
                "`as of` picks a unit's state among all its rows",
                "decide the state rows: export the statement over a table of each unit's current state",
            );
        }
        if st.has_aggregates() {
            return refused(
                c.stratify,
                "unit aggregates and `having` need all of a unit's rows",
                "stratify by columns each record carries",
            );
        }
        if st.keep.is_some() || st.exclude.is_some() {
            return refused(
                c.exclude,
                "`keep units in` and `exclude units in` read another table",
                "filter the records before the query (a join to the table's keys), or drop the \
                 clause; `strat stream` reads the table's keys itself",
            );
        }
        self.check_rows()
    }

    /// E0145 for thresholds that cannot be this statement's.
    fn check_cuts(&self, frozen: &FrozenCuts) -> R<()> {
        let st = self.st;
        let parts = st.kind.split().map(|s| (s.about, s.parts.len()));
        for (text, s) in &frozen.strata {
            let fits = match (&s.cut, parts) {
                (FrozenCut::UpTo(_) | FrozenCut::Below(_), None) => true,
                (FrozenCut::Parts(b), Some((false, k))) => b.len() + 1 == k,
                (FrozenCut::AboutParts(t), Some((true, k))) => t.len() == k,
                _ => false,
            };
            let problem = if !fits {
                let kind = match &s.cut {
                    FrozenCut::UpTo(_) => "an exact sample's cut".to_string(),
                    FrozenCut::Below(_) => "a Bernoulli sample's threshold".to_string(),
                    FrozenCut::Parts(b) => {
                        format!("an exact split's boundaries for {} parts", b.len() + 1)
                    }
                    FrozenCut::AboutParts(t) => {
                        format!("an `about` split's thresholds for {} parts", t.len())
                    }
                };
                let statement = match st.kind.split() {
                    None => "a sample".to_string(),
                    Some(sp) if sp.about => {
                        format!("an `about` split into {} parts", sp.parts.len())
                    }
                    Some(sp) => format!("an exact split into {} parts", sp.parts.len()),
                };
                Some(format!(
                    "stratum `{text}` holds {kind}, and the statement is {statement}"
                ))
            } else if !(s.weight.is_finite() && s.weight >= 0.0) {
                Some(format!("stratum `{text}` has the weight {}", s.weight))
            } else {
                None
            };
            if let Some(p) = problem {
                return Err(Unsupported {
                    code: "E0145",
                    message: format!("the thresholds do not fit the rules: {p}; freeze them again"),
                    help: "freeze them from this rule file: `strat freeze FILE -o decisions.json`"
                        .into(),
                    span: st.span,
                });
            }
        }
        Ok(())
    }

    /// `drawn_rows`: each eligible row's `_stratum` text and its unit's draw.
    fn drawn_rows(&self, ctes: &mut Vec<Cte>) -> R<()> {
        let stratum = self.row_stratum_text()?;
        ctes.push(Cte {
            name: "drawn_rows",
            comment: "each row's `_stratum` text (§7.2) and its unit's draw r: 16 hex digits of md5(seed:key) (§6.2)".into(),
            body: format!(
                "SELECT\n    e.*,\n    {stratum} AS {},\n    {} AS {}\n  FROM eligible_rows e",
                self.id(STRATUM),
                self.draw(&format!("e.{}", self.id(KEY))),
                self.id(DRAW)
            ),
        });
        Ok(())
    }

    /// A column of `drawn_rows` as strings compare in strat: by bytes.
    fn ordered(&self, column: &str) -> String {
        self.d.bytes_order(&format!("d.{}", self.id(column)))
    }

    /// `r < t`, the draw against a threshold in 16 hex digits.
    fn below(&self, t: u64) -> String {
        format!("{} < {}", self.ordered(DRAW), self.s(&format!("{t:016x}")))
    }

    /// `(r, key) <= (b.r, b.key)` in draw order (§6.2).
    fn up_to(&self, b: &FrozenDraw) -> String {
        let (r, key) = (self.ordered(DRAW), self.ordered(KEY));
        let hex = self.s(&format!("{:016x}", b.r));
        format!(
            "({r} < {hex} OR ({r} = {hex} AND {key} <= {}))",
            self.s(&b.key)
        )
    }

    /// A `CASE` from `(condition, part)` in order, `last` the part of the
    /// rest (`None`: not selected); a bare part when nothing is tested. One
    /// line for one test, else a line each (inside `decided_rows`' `CASE`).
    fn first_part(whens: &[(String, usize)], last: Option<usize>) -> Option<String> {
        if whens.is_empty() {
            return last.map(|l| l.to_string());
        }
        let sep = if whens.len() > 1 { "\n        " } else { " " };
        let mut case = String::from("CASE");
        for (condition, part) in whens {
            let _ = write!(case, "{sep}WHEN {condition} THEN {part}");
        }
        if let Some(l) = last {
            let _ = write!(case, "{sep}ELSE {l}");
        }
        case.push_str(if whens.len() > 1 {
            "\n      END"
        } else {
            " END"
        });
        Some(case)
    }

    /// The part (0 for a sample) a row of a stratum with cut `cut` goes to,
    /// `None` where the stratum selects nothing.
    fn decision(&self, cut: &FrozenCut) -> Option<String> {
        match cut {
            FrozenCut::UpTo(None) | FrozenCut::Below(Some(0)) => None,
            FrozenCut::UpTo(Some(b)) => Self::first_part(&[(self.up_to(b), 0)], None),
            FrozenCut::Below(None) => Some("0".into()),
            FrozenCut::Below(Some(t)) => Self::first_part(&[(self.below(*t), 0)], None),
            FrozenCut::Parts(bounds) => {
                let whens: Vec<(String, usize)> = (bounds.iter().enumerate())
                    .filter_map(|(i, b)| b.as_ref().map(|b| (self.up_to(b), i)))
                    .collect();
                Self::first_part(&whens, Some(bounds.len()))
            }
            FrozenCut::AboutParts(thresholds) => {
                let mut whens = Vec::new();
                for (i, t) in thresholds.iter().enumerate() {
                    match t {
                        // Every remaining draw: the first part without a bound.
                        None => return Self::first_part(&whens, Some(i)),
                        Some(0) => {}
                        Some(t) => whens.push((self.below(*t), i)),
                    }
                }
                Self::first_part(&whens, Some(thresholds.len().saturating_sub(1)))
            }
        }
    }

    /// `decided_rows`: each row's part by its stratum's frozen cut (0 for
    /// a sample), NULL when not selected.
    fn decided_rows(&self, ctes: &mut Vec<Cte>, frozen: &FrozenCuts) {
        let whens: Vec<String> = (frozen.strata.iter())
            .filter_map(|(text, s)| {
                let part = self.decision(&s.cut)?;
                Some(format!("\n      WHEN {} THEN {part}", self.s(text)))
            })
            .collect();
        let case = if whens.is_empty() {
            "CAST(NULL AS INT)".to_string()
        } else {
            format!("CASE d.{}{}\n    END", self.id(STRATUM), whens.concat())
        };
        // The rules the cuts at hand implement, for the comment.
        let mut rules: Vec<&str> = Vec::new();
        for s in frozen.strata.values() {
            let rule = match s.cut {
                FrozenCut::UpTo(_) => {
                    "exact sample: (r, key) up to the stratum's last selected unit in draw order"
                }
                FrozenCut::Below(_) => "Bernoulli: r < t = floor(p_h × 2^64)",
                FrozenCut::Parts(_) => {
                    "exact split: the first part whose last unit (r, key) the unit does not pass, else the last part"
                }
                FrozenCut::AboutParts(_) => {
                    "`about` split: the first part i with r < t_i = floor((P_1+…+P_i) × 2^64), else the last part"
                }
            };
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
        ctes.push(Cte {
            name: "decided_rows",
            comment: format!(
                "each row's part (0 in a sample) by its stratum's frozen cut (§6.5){}{}; NULL: not selected (a stratum that keeps none, or that the thresholds do not know)",
                if rules.is_empty() { "" } else { " — " },
                rules.join("; ")
            ),
            body: format!("SELECT\n    d.*,\n    {case} AS {}\n  FROM drawn_rows d", self.id(PART)),
        });
    }

    /// `_weight`: the frozen weight of the row's stratum, as a double that
    /// reads back to the same f64 (a text cast: decimal literals are not
    /// doubles everywhere).
    fn frozen_weight(&self, frozen: &FrozenCuts) -> String {
        let double = |w: f64| self.d.to_double(&self.s(&format!("{w:?}")));
        let kept: Vec<(&String, f64)> = (frozen.strata.iter())
            .filter(|(_, s)| self.decision(&s.cut).is_some())
            .map(|(t, s)| (t, s.weight))
            .collect();
        match kept.first() {
            None => self.d.to_double("NULL"),
            Some((_, w)) if kept.iter().all(|(_, x)| x.to_bits() == w.to_bits()) => double(*w),
            Some(_) => {
                let mut case = format!("CASE e.{}", self.id(STRATUM));
                for (text, w) in kept {
                    let _ = write!(case, "\n    WHEN {} THEN {}", self.s(text), double(w));
                }
                case.push_str("\n  END");
                case
            }
        }
    }

    /// The final `SELECT`: the selected rows with the statement's output
    /// columns (no `ORDER BY`: a stream has no order).
    fn frozen_select(&self, frozen: &FrozenCuts) -> String {
        let st = self.st;
        let part = format!("e.{}", self.id(PART));
        let mut out = Vec::new();
        for o in &st.output {
            let e = match o {
                ir::Output::Column(c) => format!("e.{}", self.id(&c.name)),
                ir::Output::Stratum { index, .. } => {
                    format!("e.{}", self.id(&format!("{S_PREFIX}{index}")))
                }
                ir::Output::Weight => self.frozen_weight(frozen),
                ir::Output::StratumText => format!("e.{}", self.id(STRATUM)),
                ir::Output::SplitName => {
                    let mut case = format!("CASE {part}");
                    for (i, (name, _)) in st
                        .kind
                        .split()
                        .map_or(&[][..], |s| &s.parts)
                        .iter()
                        .enumerate()
                    {
                        let _ = write!(case, " WHEN {i} THEN {}", self.s(name));
                    }
                    case.push_str(" END");
                    case
                }
            };
            out.push(format!("{e} AS {}", self.id(o.name())));
        }
        format!(
            "-- the selected rows, with the statement's output columns\nSELECT\n  {}\nFROM decided_rows e\nWHERE {part} IS NOT NULL\n",
            out.join(",\n  ")
        )
    }

    fn frozen_header(&self, index: usize) -> String {
        let clean = Dialect::comment;
        let st = self.st;
        let name = st.name.as_deref().map_or_else(
            || format!("statement {}", index + 1),
            |n| format!("`{}`", clean(n)),
        );
        format!(
            "-- Generated by strat {} from {} (md5 {}): {name} ({}), dialect {}, with frozen thresholds (`strat freeze`).\n\
             -- Each record is decided on its own (no window, aggregate, join or ORDER BY: it runs on a stream):\n\
             -- the rows `strat run` selected when the thresholds were frozen, and later records as `strat stream` decides them\n\
             -- (docs/sql.md); a unit whose stratum changes between records is decided per record. Do not edit, regenerate.\n",
            env!("CARGO_PKG_VERSION"),
            clean(&self.options.file_name),
            md5_hex(&self.options.file_text),
            st.kind.as_str(),
            self.d
        )
    }
}

#[cfg(test)]
mod tests {
    use strat_check::{Column, Env, Type};

    use super::*;

    const RULES: &str = r#"
exact = sample members
  where not kids
  unit member_id
  stratify by country, plan
  take 3
  seed 11
  output member_id, country, _weight, _stratum

parts = split members
  unit member_id
  stratify by country
  into train 80%, validation 10%, test 10%
  seed 16

halves = split members unit member_id into about a 50%, b 50% seed 3 output member_id, _split

bern = sample members unit member_id stratify by plan take about 10% seed 4

agg = sample members unit member_id stratify by max(tenure) > 10 as old take 2 seed 5
again = sample exact unit member_id take 1 seed 6
keep_some = sample members unit member_id keep units in holdout take 1 seed 7
rows = sample members take 1 seed 8
"#;

    fn program() -> Program {
        let mut env = Env::default();
        env.tables.insert(
            "members".into(),
            Some(vec![
                Column::new("member_id", Type::Int),
                Column::new("country", Type::String),
                Column::new("plan", Type::String),
                Column::new("tenure", Type::Int),
                Column::new("kids", Type::Bool),
            ]),
        );
        env.tables.insert(
            "holdout".into(),
            Some(vec![Column::new("member_id", Type::Int)]),
        );
        let parsed = strat_syntax::parse(RULES);
        assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
        let checked = strat_check::check(RULES, &parsed.file, &env);
        checked
            .program
            .unwrap_or_else(|| panic!("{:#?}", checked.diagnostics))
    }

    fn index(p: &Program, name: &str) -> usize {
        p.statements
            .iter()
            .position(|s| s.name.as_deref() == Some(name))
            .unwrap()
    }

    fn options(d: Dialect) -> SqlOptions {
        SqlOptions {
            dialect: d,
            names: BTreeMap::new(),
            file_name: "rules.strat".into(),
            file_text: RULES.into(),
            order_splits: false,
        }
    }

    fn draw(r: u64, key: &str) -> Option<FrozenDraw> {
        Some(FrozenDraw { r, key: key.into() })
    }

    fn cuts(list: Vec<(&str, f64, FrozenCut)>) -> FrozenCuts {
        FrozenCuts {
            strata: list
                .into_iter()
                .map(|(t, weight, cut)| (t.to_string(), FrozenStratum { weight, cut }))
                .collect(),
        }
    }

    /// Nothing that needs more than one row: no window, aggregate, join, order.
    fn assert_per_row(sql: &str) {
        let code: String = sql
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
            .to_ascii_uppercase();
        for word in [
            " OVER", "GROUP BY", "JOIN", "ORDER BY", "COUNT(", "MIN(", "MAX(", "SUM(", "DISTINCT",
            "HAVING", "UNION",
        ] {
            assert!(!code.contains(word), "`{word}` in\n{sql}");
        }
    }

    #[test]
    fn an_exact_sample_inlines_each_stratums_last_unit() {
        let p = program();
        let frozen = cuts(vec![
            (
                "US/basic",
                300.0 / 7.0,
                FrozenCut::UpTo(draw(0x0123_4567_89ab_cdef, "42")),
            ),
            (
                "FR/premium",
                2.5,
                FrozenCut::UpTo(draw(0xfedc_ba98_7654_3210, "7")),
            ),
            ("IS/basic", 0.0, FrozenCut::UpTo(None)),
        ]);
        for d in Dialect::ALL {
            let sql = frozen_statement_sql(&p, index(&p, "exact"), &options(d), &frozen).unwrap();
            assert_per_row(&sql);
            assert!(sql.contains("0123456789abcdef"), "{sql}");
            assert!(sql.contains("fedcba9876543210"), "{sql}");
            assert!(sql.contains(&d.string("US/basic")), "{sql}");
            // A stratum that keeps nobody is not tested: its rows are NULL.
            assert!(!sql.contains("IS/basic"), "{sql}");
            // The weight reads back exactly.
            assert!(sql.contains(&format!("{:?}", 300.0 / 7.0)), "{sql}");
            assert!(
                sql.contains(&d.md5(&format!("{} || e.{}", d.string("11:"), d.ident(KEY)))),
                "{sql}"
            );
            assert!(sql.contains(&format!("(NOT {})", d.ident("kids"))), "{sql}");
        }
        let sql =
            frozen_statement_sql(&p, index(&p, "exact"), &options(Dialect::Postgres), &frozen)
                .unwrap();
        assert!(sql.contains(r#"(d."_strat_r" COLLATE "C") < '0123456789abcdef' OR ((d."_strat_r" COLLATE "C") = '0123456789abcdef' AND (d."_strat_unit_key" COLLATE "C") <= '42')"#), "{sql}");
        let sql = frozen_statement_sql(&p, index(&p, "exact"), &options(Dialect::Spark), &frozen)
            .unwrap();
        assert!(
            sql.contains("CASE d.`_strat_stratum`\n      WHEN 'FR/premium' THEN CASE WHEN"),
            "{sql}"
        );
        assert!(
            sql.contains("AS `member_id`,\n  e.`country` AS `country`,\n  CASE e.`_strat_stratum`"),
            "{sql}"
        );
        assert!(sql.contains("WHERE e.`_strat_part` IS NOT NULL"), "{sql}");
    }

    #[test]
    fn splits_and_bernoulli_inline_their_thresholds() {
        let p = program();
        let frozen = cuts(vec![
            (
                "US",
                1.0,
                FrozenCut::Parts(vec![
                    draw(0x8000_0000_0000_0000, "5"),
                    draw(0x9000_0000_0000_0000, "6"),
                ]),
            ),
            ("FR", 1.0, FrozenCut::Parts(vec![None, draw(0x1, "x")])),
            ("IS", 1.0, FrozenCut::Parts(vec![None, None])),
        ]);
        let sql = frozen_statement_sql(&p, index(&p, "parts"), &options(Dialect::DuckDb), &frozen)
            .unwrap();
        assert_per_row(&sql);
        assert!(
            sql.contains("'8000000000000000'") && sql.contains("'9000000000000000'"),
            "{sql}"
        );
        // No first boundary: the second part, or the last.
        assert!(
            sql.contains(
                "WHEN 'FR' THEN CASE WHEN (d.\"_strat_r\" < '0000000000000001' OR (d.\"_strat_r\" = '0000000000000001' \
                 AND d.\"_strat_unit_key\" <= 'x')) THEN 1 ELSE 2 END"
            ),
            "{sql}"
        );
        assert!(sql.contains("WHEN 'IS' THEN 2"), "{sql}");
        assert!(sql.contains("THEN 1\n        ELSE 2\n      END"), "{sql}");
        // Default output: the source columns, then `_split` by part.
        assert!(sql.contains("CASE e.\"_strat_part\" WHEN 0 THEN 'train' WHEN 1 THEN 'validation' WHEN 2 THEN 'test' END AS \"_split\""), "{sql}");

        let about = cuts(vec![(
            "",
            1.0,
            FrozenCut::AboutParts(vec![Some(1 << 63), None]),
        )]);
        let sql = frozen_statement_sql(&p, index(&p, "halves"), &options(Dialect::Spark), &about)
            .unwrap();
        assert_per_row(&sql);
        assert!(
            sql.contains(
                "WHEN '' THEN CASE WHEN d.`_strat_r` < '8000000000000000' THEN 0 ELSE 1 END"
            ),
            "{sql}"
        );

        let rate = cuts(vec![
            ("basic", 10.0, FrozenCut::Below(Some(0x1999_9999_9999_999a))),
            ("premium", 1.0, FrozenCut::Below(None)),
            ("none", 0.0, FrozenCut::Below(Some(0))),
        ]);
        let sql = frozen_statement_sql(&p, index(&p, "bern"), &options(Dialect::DataFusion), &rate)
            .unwrap();
        assert_per_row(&sql);
        assert!(
            sql.contains(
                "WHEN 'basic' THEN CASE WHEN d.\"_strat_r\" < '199999999999999a' THEN 0 END"
            ),
            "{sql}"
        );
        assert!(sql.contains("WHEN 'premium' THEN 0"), "{sql}");
        assert!(!sql.contains("'none'"), "{sql}");
    }

    #[test]
    fn statements_that_need_more_than_a_record_are_refused() {
        let p = program();
        let o = options(Dialect::Spark);
        let none = FrozenCuts::default();
        for (name, code, words) in [
            ("agg", "E0144", "unit aggregates"),
            ("again", "E0144", "another statement's output"),
            ("keep_some", "E0144", "`keep units in`"),
            ("rows", "E0141", "needs `unit COLUMN`"),
        ] {
            let e = frozen_statement_sql(&p, index(&p, name), &o, &none).unwrap_err();
            assert_eq!(e.code, code, "{name}: {e}");
            assert!(e.message.contains(words), "{name}: {e}");
            assert_eq!(check_frozen(&p, index(&p, name), &o).unwrap_err(), e);
        }
        assert!(check_frozen(&p, index(&p, "exact"), &o).is_ok());
        // Thresholds of another kind of statement.
        let split_cut = cuts(vec![("US/basic", 1.0, FrozenCut::Parts(vec![None]))]);
        let e = frozen_statement_sql(&p, index(&p, "exact"), &o, &split_cut).unwrap_err();
        assert_eq!(e.code, "E0145");
        assert!(
            e.message
                .contains("an exact split's boundaries for 2 parts, and the statement is a sample"),
            "{e}"
        );
        let e = frozen_statement_sql(&p, index(&p, "parts"), &o, &split_cut).unwrap_err();
        assert!(
            e.message
                .contains("the statement is an exact split into 3 parts"),
            "{e}"
        );
        let nan = cuts(vec![("US/basic", f64::NAN, FrozenCut::UpTo(None))]);
        let e = frozen_statement_sql(&p, index(&p, "exact"), &o, &nan).unwrap_err();
        assert_eq!(e.code, "E0145");
        // No strata at all: a query that selects nothing, still valid.
        let sql = frozen_statement_sql(&p, index(&p, "exact"), &o, &none).unwrap();
        assert!(sql.contains("CAST(NULL AS INT) AS `_strat_part`"), "{sql}");
        assert!(sql.contains("CAST(NULL AS DOUBLE) AS `_weight`"), "{sql}");
    }
}
