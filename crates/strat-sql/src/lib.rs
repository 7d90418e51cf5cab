//! `strat sql`: one checked statement as one self-contained SQL query per
//! dialect, giving the same rows, `_weight`, `_stratum` and `_split` as the
//! native runner (`strat_engine::run`).
//!
//! # Design
//!
//! The query is text produced by a small builder: every identifier goes
//! through [`Dialect::ident`] and every string through [`Dialect::string`]
//! (the only two ways a name or a value reaches the SQL), and everything that
//! differs between engines is a spelling in [`dialect`]. The tests parse the
//! output back with each dialect's `sqlparser` parser and the conformance
//! suite (`tests/integration/sql.rs`) runs it on the engines themselves.
//!
//! The query is a chain of CTEs, each one step of the contract (docs/spec.md):
//!
//! | CTE | what |
//! | --- | --- |
//! | `statement_NAME` | an earlier statement this one reads, its own steps nested inside |
//! | `eligible_rows` | `where`, NULL units out; the unit key text (§6) and the stratum values per row |
//! | `eligible_input` … `unit_aggregates` | unit aggregates of `stratify by`, one row per unit |
//! | `excluded_keys` | key texts of `exclude units in` |
//! | `units` | one row per unit, with its draw `r` (16 hex digits); a unit spanning strata fails the query |
//! | `unit_strata` | each unit's `_stratum` text (§7) and stratum order keys (§5.3), or its stratum values where it meets its stratum by value (`strata_by_value`) |
//! | `strata` | `N_h`, the stratum start `U` and the stratum's rank in stratum order |
//! | `population`, `sample_size` | `N`, `H`, `n` (`take INT` above `N` fails the query) |
//! | `stratum_rules` … `method_total` | rule blocks: the first true rule per stratum, rule amounts, `share` quotas, `R` |
//! | `neyman_means`, `neyman_sd` | `neyman(C)`: S_h per stratum from C's value per unit |
//! | `bounded_strata` … `bounded_lambda` | `min`/`max`: the clamp/λ water-filling rule solved exactly (§5.2) |
//! | `about_rules` … `stratum_thresholds` | `take about` with rules, bounds or `equal`: exact `p_h` and `floor(p_h·2^64)` |
//! | `quotas`, `allocation` | exact largest-remainder `n_h` (§5.3), integers only |
//! | `draw_buckets`, `draw_cuts` | exact samples and splits: units per stratum and draw bucket; a sample's bucket of each stratum's `n_h`-th unit |
//! | `cut_units` | exact samples where the engine inlines CTEs and cannot be told to store one (DataFusion): the units up to the cuts, from the rows; Spark stores `unit_strata` and `draw_buckets` instead (`Spelling::stored_cte`) |
//! | `boundary_buckets` … `split_cuts` | exact splits: each stratum's `B_i`-th unit in draw order, ranking only its draw bucket |
//! | `selected_units` | draw order within each stratum: the selection, or each unit's part (a split that does not place rows by themselves) |
//!
//! # The supported tier
//!
//! `sample`/`split` of a table or an earlier statement with `unit`, `where`,
//! `exclude units in` a table or statement, `stratify by` expressions
//! (unit aggregates too, but `sum`/`avg` only of integers), `take INT`,
//! `take P%` and `take all` with proportional, equal, neyman or power allocation, rule blocks
//! and `min`/`max` bounds, `take about P%` (with rules, bounds, `equal`),
//! exact and `about` splits and folds. Everything else is an [`Unsupported`] error that
//! names the construct and the dialect (docs/sql.md has the table).
//!
//! # Frozen thresholds
//!
//! [`frozen_statement_sql`] (`strat sql --thresholds`, module `frozen`) writes
//! another form of a statement: each record decided on its own from the cuts
//! a batch run froze (`strat freeze`) — `where`, the key text, `_stratum`, the
//! draw and a `CASE` on the stratum text, no window, aggregate, join or
//! `ORDER BY` — so Spark Structured Streaming can run it.

pub mod dialect;
mod frozen;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use num_traits::{One, ToPrimitive, Zero};
use strat_alloc::{BigInt, BigRational};
use strat_check::ir::{self, BinaryOp, ExprKind, Func, Program, Statement, UnaryOp};
use strat_check::{Type, Value};
use strat_syntax::{Diagnostic, Span};

pub use dialect::Dialect;
pub use frozen::{
    FrozenCut, FrozenCuts, FrozenDraw, FrozenStratum, check_frozen, frozen_statement_sql,
};

/// What the query is built from besides the program.
#[derive(Clone, Debug)]
pub struct SqlOptions {
    pub dialect: Dialect,
    /// `--name TABLE=QUALIFIED`: the name the query reads a table by.
    pub names: BTreeMap<String, String>,
    /// The rule file's name and text, for the header comment.
    pub file_name: String,
    pub file_text: String,
    /// Order a split's rows as `strat run` writes them (spec §7.3): a sort
    /// of the whole table, so only when asked (`strat sql --ordered`); a
    /// sample's rows (at most its units') are always ordered.
    pub order_splits: bool,
}

/// A construct `strat sql` cannot express (in this dialect, or yet).
#[derive(Clone, Debug, PartialEq)]
pub struct Unsupported {
    pub code: &'static str,
    pub message: String,
    pub help: String,
    pub span: Span,
}

impl Unsupported {
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic::error(self.code, self.message.clone())
            .at(self.span)
            .with_help(self.help.clone())
    }
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.code, self.message, self.help)
    }
}

type R<T> = Result<T, Unsupported>;

/// Internal column names in `eligible_rows` (next to the source columns).
const KEY: &str = "_strat_unit_key";
/// Hex digits of the draw that make its bucket: 4,096 buckets, so an exact
/// sample ranks about n_h + N_h/4,096 units of a stratum, not N_h.
const BUCKET_DIGITS: usize = 3;
/// The comment of a CTE made to be computed once (`Spelling::stored_cte`).
const STORED_NOTE: &str =
    "; read twice, computed once (a CTE with `rand()`, always true here, is not inlined)";
const S_PREFIX: &str = "_strat_s";
/// A row's draw and `_stratum` text, where an exact split places each row
/// by its own draw (`Gen::splits_rows`).
const ROW_DRAW: &str = "_strat_r";
const ROW_STRATUM: &str = "_strat_stratum";
/// A unit aggregate's value, argument, `by` and row rank (first/last/mode).
const AGG_PREFIX: &str = "_strat_agg";
const AGG_ARG: &str = "_strat_arg";
const AGG_BY: &str = "_strat_by";
const AGG_RANK: &str = "_strat_rank";
/// mode: how many rows of the unit share the row's value.
const AGG_COUNT: &str = "_strat_count";

/// The md5 of a text as 32 lowercase hex digits (the rule file's, in the header).
fn md5_hex(text: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SQL query of statement `index`.
///
/// A statement whose source (or `exclude units in`) is an earlier statement
/// gets that statement, and the ones it reads in turn, as CTEs of the same
/// query named `statement_NAME`, each holding its own chain of steps.
pub fn statement_sql(program: &Program, index: usize, options: &SqlOptions) -> R<String> {
    let make = |j: usize| Gen {
        d: options.dialect,
        st: &program.statements[j],
        program,
        options,
    };
    let top = make(index);
    let mut deps = Vec::new();
    dependencies(program, index, &mut deps);
    deps.sort_unstable();
    // Unquoted CTE names: engines fold their case, so two statements whose
    // names differ only in case (or a table of the same name) would collide.
    let mut seen: Vec<String> = program
        .tables
        .iter()
        .map(|t| t.name.to_ascii_lowercase())
        .collect();
    let mut sql = top.header(index);
    sql.push_str("WITH\n");
    let mut blocks: Vec<(String, String, String)> = Vec::new();
    for &j in &deps {
        let g = make(j);
        let name = statement_cte(g.st);
        if seen.contains(&name.to_ascii_lowercase()) {
            return Err(top.unsupported(format!(
                "reading statement `{}`, whose CTE name `{name}` differs only in case from another statement or table",
                g.st.name.as_deref().unwrap_or_default()
            )));
        }
        seen.push(name.to_ascii_lowercase());
        let (ctes, select) = g.body(false)?;
        let mut inner = String::from("WITH\n");
        write_ctes(&mut inner, &ctes, options.dialect);
        inner.push_str(&select);
        let kind = g.st.kind.as_str();
        blocks.push((
            format!(
                "the rows of statement `{}` ({kind}), computed by its own steps",
                g.st.name.as_deref().unwrap_or_default()
            ),
            name,
            inner.trim_end().replace('\n', "\n  "),
        ));
    }
    let (ctes, select) = top.body(true)?;
    blocks.extend(
        ctes.into_iter()
            .map(|c| (c.comment, c.name.to_string(), c.body)),
    );
    let n = blocks.len();
    for (i, (comment, name, body)) in blocks.iter().enumerate() {
        // Comments may quote names, which may hold line breaks: cleaned.
        let _ = writeln!(sql, "-- {}", Dialect::comment(comment));
        let _ = write!(sql, "{} (\n  {body}\n)", cte_head(name, options.dialect));
        sql.push_str(if i + 1 < n { ",\n" } else { "\n" });
    }
    sql.push_str(&select);
    Ok(sql)
}

/// The earlier statements statement `index` reads (its source, its
/// `keep units in` and `exclude units in`), and the ones they read, transitively.
fn dependencies(program: &Program, index: usize, out: &mut Vec<usize>) {
    let st = &program.statements[index];
    let sources = [
        Some(&st.source),
        st.keep.as_ref().map(|(s, _)| s),
        st.exclude.as_ref().map(|(s, _)| s),
    ];
    for s in sources.into_iter().flatten() {
        if let ir::Source::Statement(j) = s
            && !out.contains(j)
        {
            out.push(*j);
            dependencies(program, *j, out);
        }
    }
}

/// The CTE holding an earlier statement's rows.
fn statement_cte(st: &Statement) -> String {
    format!("statement_{}", st.name.as_deref().unwrap_or_default())
}

/// `NAME AS`, with the dialect's request to recompute the CTEs of every
/// eligible row (each read twice: by `units` and by the final join).
fn cte_head(name: &str, d: Dialect) -> String {
    let recomputed = matches!(name, "eligible_rows" | "eligible_input");
    let how = if recomputed {
        d.spelling().recomputed_cte
    } else {
        ""
    };
    format!("{name} AS{how}")
}

fn write_ctes(sql: &mut String, ctes: &[Cte], d: Dialect) {
    let n = ctes.len();
    for (i, c) in ctes.iter().enumerate() {
        let _ = writeln!(sql, "-- {}", Dialect::comment(&c.comment));
        let _ = write!(sql, "{} (\n  {}\n)", cte_head(c.name, d), c.body);
        sql.push_str(if i + 1 < n { ",\n" } else { "\n" });
    }
}

struct Gen<'a> {
    d: Dialect,
    st: &'a Statement,
    program: &'a Program,
    options: &'a SqlOptions,
}

/// The units an exact sample ranks: where they come from (with their
/// allocation `a`), their key text and `_stratum` there, and the hint
/// that sends the small tables they are joined to to every task.
struct RankedUnits {
    hint: String,
    /// `unit_key` as selected, and the expression it names.
    unit_key: String,
    key: String,
    stratum: &'static str,
    from: String,
}

/// The rows the final `SELECT` reads and how it names their part and
/// orders them ([`Gen::joined_rows`]).
struct JoinedRows {
    /// After `SELECT`: the dialect's hint to send `s` to every task.
    hint: &'static str,
    /// `eligible_rows e` (or a projection of it) joined to `s`.
    from: String,
    /// A split's part index of a row (0, 1, …) and its `_split`; empty
    /// for a sample.
    split_index: String,
    split_name: String,
    /// The draw order of a row's unit within its stratum, for `ORDER BY`.
    draw_order: String,
}

/// A CTE: name, comment, body.
struct Cte {
    name: &'static str,
    comment: String,
    body: String,
}

impl Gen<'_> {
    fn unsupported(&self, construct: impl Into<String>) -> Unsupported {
        let construct = construct.into();
        Unsupported {
            code: "E0140",
            message: format!(
                "`strat sql --dialect {}`: {construct} cannot be exported to {} yet",
                self.d.flag(),
                self.d
            ),
            help: "run it with `strat run`, or see docs/sql.md for what each dialect supports"
                .into(),
            span: self.st.span,
        }
    }

    fn id(&self, name: &str) -> String {
        self.d.ident(name)
    }

    fn s(&self, value: &str) -> String {
        self.d.string(value)
    }

    fn table(&self, name: &str) -> String {
        match self.options.names.get(name) {
            Some(q) => self.d.qualified(q),
            None => self.id(name),
        }
    }

    /// What a source is read from: a table, or an earlier statement's CTE.
    fn source(&self, source: &ir::Source) -> String {
        match source {
            ir::Source::Table(t) => self.table(t),
            ir::Source::Statement(j) => statement_cte(&self.program.statements[*j]),
        }
    }

    /// The checks on a statement's rows, with or without the counting
    /// steps: a unit of a key type (E0141 without one), no source column
    /// named like the query's own, no `_split` of a sample.
    fn check_rows(&self) -> R<()> {
        let st = self.st;
        let Some(unit) = &st.unit else {
            return Err(Unsupported {
                code: "E0141",
                message: format!(
                    "`strat sql --dialect {}` needs `unit COLUMN`: without it every row is keyed by all its \
                     columns, whose text (floats, timestamps) engines do not write alike",
                    self.d.flag()
                ),
                help: "add `unit COLUMN` naming a column that identifies the rows (an id)".into(),
                span: st.span,
            });
        };
        if !unit.ty.is_keyable() {
            return Err(self.unsupported(format!("a unit column of type {}", unit.ty)));
        }
        for c in &st.input {
            if c.name.starts_with("_strat_") {
                return Err(self.unsupported(format!(
                    "a source column named `{}` (reserved for the query)",
                    c.name
                )));
            }
        }
        if st.output.iter().any(|o| matches!(o, ir::Output::SplitName)) && st.kind.is_sample() {
            return Err(self.unsupported("`_split` in a sample"));
        }
        Ok(())
    }

    /// Checks the statement is in the supported tier.
    fn check_tier(&self) -> R<()> {
        self.check_rows()?;
        let st = self.st;
        if st.kind.is_sample() {
            let share = st
                .rules
                .iter()
                .any(|r| matches!(r.amount, Some(ir::RuleAmount::Share(_))));
            if share && matches!(st.amount, ir::Amount::All) {
                return Err(self.unsupported("`share` with `take all`"));
            }
            match (&st.method, &st.amount) {
                (ir::Method::Proportional, _) => {}
                (ir::Method::Equal, _) => {}
                (ir::Method::Neyman(_) | ir::Method::Power(_), ir::Amount::About(_)) => {
                    return Err(
                        self.unsupported("`allocate neyman(…)` or `power(…)` with `take about`")
                    );
                }
                (ir::Method::Neyman(c), _) if !matches!(c.ty, Type::Int | Type::Float) => {
                    return Err(
                        self.unsupported(format!("`allocate neyman(…)` of a {} column", c.ty))
                    );
                }
                (ir::Method::Neyman(_) | ir::Method::Power(_), _) => {}
            }
        }
        Ok(())
    }

    /// The steps of this statement and its final `SELECT` (with `ORDER BY`
    /// when `top`, the statement the query returns).
    /// The statement's CTEs, one step each, and its final `SELECT` (ordered
    /// by spec §7 when it is the query's own statement, `top`).
    fn body(&self, top: bool) -> R<(Vec<Cte>, String)> {
        self.check_tier()?;
        let mut ctes: Vec<Cte> = Vec::new();
        self.as_of_ctes(&mut ctes)?;
        self.eligible_ctes(&mut ctes)?;
        let filters = self.unit_filter_ctes(&mut ctes)?;
        let neyman = self.units_cte(&mut ctes, &filters)?;
        let rule_values = self.unit_strata_cte(&mut ctes, neyman.is_some())?;
        self.strata_ctes(&mut ctes, &rule_values)?;
        let weight = match &self.st.kind {
            ir::Kind::Sample => self.sample_ctes(&mut ctes, &filters)?,
            ir::Kind::Split(split) => {
                self.split_ctes(&mut ctes, split, &filters)?;
                None
            }
        };
        let select = self.final_select(weight.as_deref(), &filters, top)?;
        Ok((ctes, select))
    }

    /// Where the statement's rows come from: its source, or with `as of`
    /// the state rows of its units.
    fn rows_source(&self) -> String {
        match &self.st.as_of {
            Some(_) => "as_of_rows".to_string(),
            None => self.source(&self.st.source),
        }
    }

    /// With `as of` (§4.5): `as_of_ranked`, the rows in the window ranked
    /// best first within their unit, with the number of rows tied with the
    /// unit's first; `as_of_rows`, each unit's first row, the query failing
    /// on a unit whose first rows tie.
    fn as_of_ctes(&self, ctes: &mut Vec<Cte>) -> R<()> {
        let st = self.st;
        let Some(as_of) = &st.as_of else {
            return Ok(());
        };
        let unit = self.id(&self.unit().name);
        let mut order = vec![format!("{} DESC NULLS LAST", self.id(&as_of.by.name))];
        if let Some(t) = &as_of.ties {
            let key = self.value_order(&self.id(&t.column.name), &t.column.ty);
            // Ascending ties: the greatest wins, so it comes first.
            let dir = if t.desc { "ASC" } else { "DESC" };
            order.push(format!("{key} {dir} NULLS LAST"));
        }
        let over = format!("PARTITION BY {unit} ORDER BY {}", order.join(", "));
        let cols: Vec<String> = st.input.iter().map(|c| self.id(&c.name)).collect();
        ctes.push(Cte {
            name: "as_of_ranked",
            comment: format!(
                "`{}`: the rows in the window, ranked best first within their unit; `as_of_peers` counts the rows tied with the first",
                as_of.text()
            ),
            body: format!(
                "SELECT\n    {},\n    ROW_NUMBER() OVER ({over}) AS as_of_rank,\n    COUNT(*) OVER ({over} RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS as_of_peers\n  FROM {}\n  WHERE ({})\n    AND {unit} IS NOT NULL",
                cols.join(",\n    "),
                self.source(&st.source),
                self.expr(&as_of.window)?
            ),
        });
        let message = format!(
            "{} || {} || {}",
            self.s(&format!("strat: unit `{}` = ", self.unit().name)),
            self.key_text(&unit, &self.unit().ty)?,
            self.s(&format!(
                " has rows tied at its latest `{}` as of {}: add `ties by COLUMN`, or remove the duplicates",
                as_of.by.name, as_of.at
            ))
        );
        // The CASE alone decides when to raise (a first row with peers):
        // engines may evaluate both sides of the `AND`, and DataFusion turns a
        // CASE of boolean branches into `AND`/`OR`, evaluating every branch.
        ctes.push(Cte {
            name: "as_of_rows",
            comment: "each unit's state: its first row (a unit whose first rows tie fails the query)".into(),
            body: format!(
                "SELECT\n    {}\n  FROM as_of_ranked\n  WHERE as_of_rank = 1\n    AND CASE WHEN as_of_rank = 1 AND as_of_peers > 1 THEN {} ELSE TRUE END",
                cols.join(",\n    "),
                self.d.raise(&message)
            ),
        });
        Ok(())
    }

    fn unit(&self) -> &strat_check::Column {
        self.st.unit.as_ref().expect("check_tier requires a unit")
    }

    /// `eligible_rows`: `where`, NULL units out, the unit key text and the
    /// stratum values per row; with unit aggregates, `eligible_input`, the
    /// aggregates' CTEs, then `eligible_rows` joining each row to its unit's.
    fn eligible_ctes(&self, ctes: &mut Vec<Cte>) -> R<()> {
        let st = self.st;
        let unit = self.unit();
        let (rewritten, mut aggregates) = ir::strata_over_aggregates(&st.strata, AGG_PREFIX);
        // `having` (§4.4) over the same per-unit aggregates, numbered after the strata's.
        let having = st.having.as_ref().map(|h| {
            let mut e = h.expr.clone();
            ir::replace_aggregates(&mut e, AGG_PREFIX, &mut aggregates);
            e
        });
        let mut cols: Vec<String> = st.input.iter().map(|c| self.id(&c.name)).collect();
        cols.push(format!(
            "{} AS {}",
            self.key_text(&self.id(&unit.name), &unit.ty)?,
            self.id(KEY)
        ));
        for (i, s) in st.strata.iter().enumerate() {
            self.key_text("x", &s.expr.ty).map_err(|_| {
                self.unsupported(format!(
                    "a stratum value of type {} (`{}`)",
                    s.expr.ty, s.name
                ))
            })?;
            if rewritten[i].is_none() {
                cols.push(format!(
                    "{} AS {}",
                    self.expr(&s.expr)?,
                    self.id(&format!("{S_PREFIX}{i}"))
                ));
            }
        }
        for (j, a) in aggregates.iter().enumerate() {
            if let Some(x) = &a.arg {
                cols.push(format!(
                    "{} AS {}",
                    self.expr(x)?,
                    self.id(&format!("{AGG_ARG}{j}"))
                ));
            }
            if let Some(t) = &a.by {
                cols.push(format!(
                    "{} AS {}",
                    self.expr(t)?,
                    self.id(&format!("{AGG_BY}{j}"))
                ));
            }
        }
        let mut filter = format!("{} IS NOT NULL", self.id(&unit.name));
        if let Some(f) = &st.filter {
            filter = format!("({})\n    AND {filter}", self.expr(f)?);
        }
        // A `having` without aggregates is a constant: it keeps every unit or none.
        if let (Some(h), true) = (&having, aggregates.is_empty()) {
            filter = format!("{filter}\n    AND ({})", self.expr(h)?);
        }
        let eligible = format!(
            "SELECT\n    {}\n  FROM {}\n  WHERE {filter}",
            cols.join(",\n    "),
            self.rows_source()
        );
        if aggregates.is_empty() {
            ctes.push(Cte {
                name: "eligible_rows",
                comment: "rows passing `where` whose unit is not NULL, with the unit key text (§6) and the stratum values".into(),
                body: eligible,
            });
            return Ok(());
        }
        ctes.push(Cte {
            name: "eligible_input",
            comment: "rows passing `where` whose unit is not NULL, with the unit key text (§6), the stratum values without unit aggregates and the aggregates' arguments".into(),
            body: eligible,
        });
        self.aggregate_ctes(ctes, &aggregates)?;
        let mut cols: Vec<String> = st
            .input
            .iter()
            .map(|c| format!("e.{}", self.id(&c.name)))
            .collect();
        cols.push(format!("e.{}", self.id(KEY)));
        for (i, r) in rewritten.iter().enumerate() {
            let name = self.id(&format!("{S_PREFIX}{i}"));
            cols.push(match r {
                None => format!("e.{name}"),
                Some(r) => format!("{} AS {name}", self.expr(r)?),
            });
        }
        let (having_filter, having_comment) = match &having {
            Some(h) => (
                format!("\n  WHERE {}", self.expr(h)?),
                "; the rows of units for which `having` is not true are dropped",
            ),
            None => (String::new(), ""),
        };
        ctes.push(Cte {
            name: "eligible_rows",
            comment: format!("the eligible rows with every stratum value, unit aggregates taken from the row's unit{having_comment}"),
            body: format!(
                "SELECT\n    {}\n  FROM eligible_input e\n  JOIN unit_aggregates g ON e.{key} = g.{key}{having_filter}",
                cols.join(",\n    "),
                key = self.id(KEY)
            ),
        });
        Ok(())
    }

    /// `kept_keys` of `keep units in` and `excluded_keys` of `exclude units
    /// in`, and the joins that keep only the kept units and drop the excluded
    /// ones in `units` (empty without either).
    fn unit_filter_ctes(&self, ctes: &mut Vec<Cte>) -> R<String> {
        let mut joins = String::new();
        for (verb, name, clause) in [
            ("keep", "kept_keys", &self.st.keep),
            ("exclude", "excluded_keys", &self.st.exclude),
        ] {
            let Some((source, c)) = clause else { continue };
            let t = match source {
                ir::Source::Table(t) => t.as_str(),
                ir::Source::Statement(j) => self.program.statements[*j]
                    .name
                    .as_deref()
                    .unwrap_or_default(),
            };
            ctes.push(Cte {
                name,
                comment: format!("key texts of `{verb} units in {t}`"),
                body: format!(
                    "SELECT DISTINCT {} AS unit_key\n  FROM {}\n  WHERE {} IS NOT NULL",
                    self.key_text(&self.id(&c.name), &c.ty)?,
                    self.source(source),
                    self.id(&c.name)
                ),
            });
            let _ = if verb == "keep" {
                write!(
                    joins,
                    "\n  JOIN kept_keys k ON e.{} = k.unit_key",
                    self.id(KEY)
                )
            } else {
                write!(
                    joins,
                    "\n  LEFT JOIN excluded_keys x ON e.{} = x.unit_key\n  WHERE x.unit_key IS NULL",
                    self.id(KEY)
                )
            };
        }
        Ok(joins)
    }

    /// The draw of a key text expression: 16 hex digits of md5(seed:key) (§6).
    fn draw(&self, text: &str) -> String {
        format!(
            "substr({}, 1, 16)",
            self.d.md5(&format!(
                "{} || {text}",
                self.s(&format!("{}:", self.st.seed))
            ))
        )
    }

    /// `HAVING` condition: raise `message` when numeric column `c` has two
    /// values (or a value and NULL) within a unit — its least and greatest
    /// differ, as the native runner tests it (no distinct aggregate).
    fn one_value_per_unit(&self, c: &str, message: &str) -> String {
        format!(
            "CASE WHEN MIN({c}) <> MAX({c}) OR COUNT({c}) NOT IN (0, COUNT(*)) THEN {} ELSE TRUE END",
            self.d.raise(message)
        )
    }

    /// What `units` groups the rows by, and the unit's key text in it. A
    /// unit whose key text is a one-to-one function of its value (integers,
    /// dates, booleans) is grouped and joined back by the value — cheaper
    /// than its text on every engine — and its text is written once per
    /// unit; other units (strings are their own text; floats are not: `0`
    /// and `-0` are one value, two texts) by the text.
    fn unit_grouping(&self) -> R<(String, String)> {
        let column = if self.groups_units_by_value() {
            &self.unit().name
        } else {
            KEY
        };
        let group = format!("e.{}", self.id(column));
        let key = self.unit_key_of(&group)?;
        Ok((group, key))
    }

    /// Whether a unit's key text is a one-to-one function of its value, by
    /// which `units` then groups (see [`Self::unit_grouping`]).
    fn groups_units_by_value(&self) -> bool {
        matches!(self.unit().ty, Type::Int | Type::Date | Type::Bool)
    }

    /// The column of an eligible row that `unit_value` of its unit equals.
    fn unit_value_of_row(&self) -> R<String> {
        Ok(self.unit_grouping()?.0)
    }

    /// `units`: one row per unit with its stratum values and draw; a unit
    /// spanning strata fails the query. Returns neyman's column, whose value
    /// per unit `units` carries too.
    fn units_cte(&self, ctes: &mut Vec<Cte>, filters: &str) -> R<Option<&strat_check::Column>> {
        let st = self.st;
        let d = self.d;
        let unit = self.unit();
        let (group, key) = self.unit_grouping()?;
        let mut unit_cols = vec![
            format!("{key} AS unit_key"),
            format!("{group} AS unit_value"),
        ];
        let mut span_checks = Vec::new();
        let mut values = Vec::new();
        for (i, s) in st.strata.iter().enumerate() {
            let c = format!("e.{}", self.id(&format!("{S_PREFIX}{i}")));
            let (min, max) = if s.expr.ty == Type::Bool {
                let fill = |f| Dialect::fill(f, &[&c]);
                (fill(d.spelling().min_bool), fill(d.spelling().max_bool))
            } else {
                (format!("MIN({c})"), format!("MAX({c})"))
            };
            // Two values differ when the least and the greatest do: no
            // distinct aggregate, which Spark runs by expanding every row.
            span_checks.push(format!("{min} <> {max} OR COUNT({c}) NOT IN (0, COUNT(*))"));
            unit_cols.push(format!("{min} AS s{i}"));
            values.push(min);
        }
        unit_cols.push(format!("{} AS r", self.draw(&key)));
        // The `_stratum` text once per unit, where engines that materialise
        // a CTE read twice (DuckDB) keep it; once per stratum
        // (`stratum_sizes`) where rows meet their stratum by its values.
        if self.strata_by_value().is_none() {
            unit_cols.push(format!(
                "{} AS stratum",
                self.stratum_text_of(&|i| values[i].clone())?
            ));
        }
        let mut having = if span_checks.is_empty() {
            String::new()
        } else {
            let message = format!(
                "{} || {key} || {}",
                self.s(&format!("strat: unit `{}` = ", unit.name)),
                self.s(" spans two strata: its rows have different stratum values")
            );
            format!(
                "\n  HAVING CASE WHEN {} THEN {} ELSE TRUE END",
                span_checks.join("\n    OR "),
                d.raise(&message)
            )
        };
        // neyman(C): C's value per unit, which must be constant within it (§5.2).
        let neyman = match &st.method {
            ir::Method::Neyman(c) if st.kind.is_sample() => Some(c),
            _ => None,
        };
        if let Some(c) = neyman {
            let v = format!("e.{}", self.id(&c.name));
            unit_cols.push(format!("MIN({v}) AS neyman_value"));
            let message = format!(
                "{} || {key} || {}",
                self.s(&format!(
                    "strat: neyman(`{}`) needs one value per unit, but unit `{}` = ",
                    c.name, unit.name
                )),
                self.s(" has several; use a column constant within a unit")
            );
            let check = self.one_value_per_unit(&v, &message);
            having = if having.is_empty() {
                format!("\n  HAVING {check}")
            } else {
                format!("{having}\n    AND {check}")
            };
        }
        let after = if st.having.is_some() || st.keep.is_some() {
            "`having`, `keep` and `exclude`"
        } else {
            "`exclude`"
        };
        ctes.push(Cte {
            name: "units",
            comment: format!("one row per unit (after {after}) with its draw r: 16 hex digits of md5(seed:key) (§6)"),
            body: format!(
                "SELECT\n    {}\n  FROM eligible_rows e{filters}\n  GROUP BY {group}{having}",
                unit_cols.join(",\n    "),
            ),
        });
        Ok(neyman)
    }

    /// `unit_strata`: each unit with its stratum order keys.
    /// Returns the stratum value columns that rule predicates read and
    /// rows meet their stratum by (none without either).
    fn unit_strata_cte(&self, ctes: &mut Vec<Cte>, neyman: bool) -> R<Vec<String>> {
        let st = self.st;
        let mut us_cols = vec!["u.unit_value".to_string(), "u.r".to_string()];
        if !self.ranks_unit_strata() {
            us_cols.insert(0, "u.unit_key".to_string());
        }
        if self.strata_by_value().is_none() {
            us_cols.push("u.stratum".to_string());
        }
        if neyman {
            us_cols.push("u.neyman_value".to_string());
        }
        // Rule predicates (§5.1) are evaluated once per stratum on its values.
        // So are units and rows matched to their stratum by value. Units that
        // carry their stratum's values need not carry its order keys, which
        // `stratum_sizes` writes from them once per stratum.
        let values: Vec<String> = if st.rules.is_empty() && self.strata_by_value().is_none() {
            Vec::new()
        } else {
            self.stratum_value_ids()
        };
        if values.is_empty() {
            for (i, s) in st.strata.iter().enumerate() {
                us_cols.push(format!("{} AS o{i}", self.order_key(&format!("u.s{i}"), s)));
            }
        }
        for (i, v) in values.iter().enumerate() {
            us_cols.push(format!("u.s{i} AS {v}"));
        }
        let carried = if values.is_empty() {
            "order keys (§5.3)"
        } else {
            "values"
        };
        let (stored, comment) = self.stored_once("WHERE", self.reads_unit_strata_twice());
        ctes.push(Cte {
            name: "unit_strata",
            comment: format!("each unit with its stratum {carried}{comment}"),
            body: format!(
                "SELECT\n    {}\n  FROM units u{stored}",
                us_cols.join(",\n    ")
            ),
        });
        Ok(values)
    }

    /// For a CTE that two others read: the clause (`WHERE` or `HAVING`,
    /// `keyword`) that makes an engine which would inline it compute it
    /// once (`Spelling::stored_cte`), and the note for its comment; nothing
    /// where the engine needs none or `read_twice` is false.
    fn stored_once(&self, keyword: &str, read_twice: bool) -> (String, &'static str) {
        match self.d.spelling().stored_cte {
            Some(always) if read_twice => (format!("\n  {keyword} {always}"), STORED_NOTE),
            _ => (String::new(), ""),
        }
    }

    /// Whether two CTEs read `unit_strata` (its size, and its units): all
    /// but a split that places rows by themselves and a sample that finds
    /// its cut units from the rows.
    fn reads_unit_strata_twice(&self) -> bool {
        match &self.st.kind {
            ir::Kind::Split(split) => !self.splits_rows(split),
            ir::Kind::Sample => !(self.ranks_a_sample() && self.cuts_from_rows()),
        }
    }

    /// An exact sample: its units are ranked by draw within each stratum,
    /// and only those up to the stratum's `draw_cuts` need to be.
    fn ranks_a_sample(&self) -> bool {
        self.st.kind.is_sample() && !self.st.amount.is_about()
    }

    /// An exact sample or split: it finds the units at its cuts (a
    /// sample's n_h-th, a split's B_i-th) by their draw buckets.
    fn counts_draw_buckets(&self) -> bool {
        match &self.st.kind {
            ir::Kind::Sample => self.ranks_a_sample(),
            ir::Kind::Split(split) => !split.about,
        }
    }

    /// Whether an exact split places each eligible row by its own draw and
    /// its stratum's cuts, rather than join every row to its unit's part:
    /// where a row's stratum is its unit's (no unit aggregates or `having`).
    /// A second md5 per row costs less than that join on every engine, and
    /// `units` is read once (no second grouping where CTEs are inlined, no
    /// stored copy where they are materialised).
    fn splits_rows(&self, split: &ir::Split) -> bool {
        !split.about && !self.st.has_aggregates()
    }

    /// Whether units and rows meet their stratum by its values (`_strat_s0`,
    /// … in `strata`) rather than by its `_stratum` text, built per unit or
    /// row: a split that places rows by themselves, and an exact sample
    /// ranked from `unit_strata` (not neyman's, whose S_h groups units by
    /// text) — where the engine hashes a NULL-safe equality and a value's
    /// text is one-to-one with it (no floats, decimals or timestamps). The
    /// text is then written once per stratum. The dialect's equality, if so.
    ///
    /// Not DataFusion's samples (it ranks from `unit_strata` only with unit
    /// aggregates): DataFusion 55 drops the rows whose key is NULL from
    /// `b JOIN s ON b.k IS NOT DISTINCT FROM s.k JOIN a ON s.x = a.x`, the
    /// shape of `draw_cuts`, though it keeps them joining `b` and `s` alone
    /// (tests/cases/sql/aggregates_by_hash.strat lost such strata).
    fn strata_by_value(&self) -> Option<&'static str> {
        let meets_by_value = match &self.st.kind {
            ir::Kind::Split(split) => self.splits_rows(split),
            ir::Kind::Sample => {
                self.ranks_unit_strata()
                    && !self.d.spelling().inlines_ctes
                    && !matches!(self.st.method, ir::Method::Neyman(_))
            }
        };
        let exact_types = self.st.strata.iter().all(|s| {
            matches!(
                s.expr.ty,
                Type::Int | Type::String | Type::Bool | Type::Date
            )
        });
        if !meets_by_value || self.st.strata.is_empty() || !exact_types {
            return None;
        }
        self.d.spelling().null_safe_eq
    }

    /// An exact sample that ranks its units from `unit_strata`, which then
    /// need not carry their key text: `selected_units` writes it from the
    /// unit's value for the few units it ranks.
    fn ranks_unit_strata(&self) -> bool {
        self.ranks_a_sample() && !self.cuts_from_rows()
    }

    /// The key text (§6) of a unit from its `unit_value` (`value`): the
    /// value itself where units are grouped by their text.
    fn unit_key_of(&self, value: &str) -> R<String> {
        if self.groups_units_by_value() {
            self.key_text(value, &self.unit().ty)
        } else {
            Ok(value.to_string())
        }
    }

    /// The stratum value columns as `strata` names them.
    fn stratum_value_ids(&self) -> Vec<String> {
        (0..self.st.strata.len())
            .map(|i| self.id(&format!("{S_PREFIX}{i}")))
            .collect()
    }

    /// `,\n    {prefix}_strat_s0, …`: the stratum values a split's cuts
    /// carry for rows to meet them by (nothing where they meet by text).
    fn carried_values(&self, prefix: &str) -> String {
        if self.strata_by_value().is_none() {
            return String::new();
        }
        self.stratum_value_ids()
            .iter()
            .map(|v| format!(",\n    {prefix}{v}"))
            .collect()
    }

    /// Row `row` (with its stratum values, and `stratum_col` its
    /// `_stratum` text where it has no values to meet by) is in stratum
    /// `s` of `strata` (or a CTE that carries its columns).
    fn in_stratum(&self, row: &str, stratum_col: &str, s: &str) -> String {
        match self.strata_by_value() {
            Some(eq) => self
                .stratum_value_ids()
                .iter()
                .map(|v| {
                    // In parentheses: some parsers read `a IS NOT DISTINCT
                    // FROM b AND c` as `a IS NOT DISTINCT FROM (b AND c)`.
                    let eq = Dialect::fill(eq, &[&format!("{row}.{v}"), &format!("{s}.{v}")]);
                    format!("({eq})")
                })
                .collect::<Vec<_>>()
                .join(" AND "),
            None => format!("{row}.{stratum_col} = {s}.stratum"),
        }
    }

    /// `stratum_sizes` (N_h) and `strata`: stratum order h and the start U.
    fn strata_ctes(&self, ctes: &mut Vec<Cte>, rule_values: &[String]) -> R<()> {
        let d = self.d;
        // Units carry their `_stratum` text, or their stratum values to
        // write it from once per stratum here.
        let by_value = self.strata_by_value().is_some();
        let stratum = if by_value {
            let ids = self.stratum_value_ids();
            format!(
                "{} AS stratum",
                self.stratum_text_of(&|i| ids[i].clone())?
                    .replace("\n      ", "\n    ")
            )
        } else {
            "stratum".to_string()
        };
        let mut st_cols = vec![stratum, "COUNT(*) AS n_units".to_string()];
        let mut order = Vec::new();
        // The order keys and rule values are functions of the stratum's
        // values, as its text is: grouped by, not aggregated (Spark sorts the
        // rows for a MIN of strings; it hashes them to group). Where units
        // carry the values, the order keys are written from them here.
        let mut keys = Vec::new();
        let mut order_keys = Vec::new();
        for (i, s) in self.st.strata.iter().enumerate() {
            match rule_values.get(i) {
                Some(value) => order_keys.push(format!("{} AS o{i}", self.order_key(value, s))),
                None => keys.push(format!("o{i}")),
            }
            order.push(format!("o{i} ASC NULLS FIRST"));
        }
        keys.extend(rule_values.iter().cloned());
        st_cols.extend(keys.iter().cloned());
        let group: String = keys.iter().map(|v| format!(", {v}")).collect();
        let text_key = if by_value { "" } else { "stratum, " };
        let counted = if self.counts_draw_buckets() {
            // N_h from the counts per draw bucket, which also say where each
            // stratum's n_h-th unit lies (`draw_cuts`, `boundary_buckets`).
            let mut bucket_cols = st_cols.clone();
            bucket_cols.insert(1, format!("substr(r, 1, {BUCKET_DIGITS}) AS bucket"));
            if by_value {
                bucket_cols.remove(0);
            }
            // Read by `stratum_sizes` and by the cuts.
            let (stored, note) = self.stored_once("HAVING", true);
            ctes.push(Cte {
                name: "draw_buckets",
                comment: format!(
                    "units per stratum and draw bucket (the first {BUCKET_DIGITS} hex digits of r){note}"
                ),
                body: format!(
                    "SELECT\n    {}\n  FROM unit_strata\n  GROUP BY {text_key}substr(r, 1, {BUCKET_DIGITS}){group}{stored}",
                    bucket_cols.join(",\n    "),
                ),
            });
            st_cols[1] = "CAST(SUM(n_units) AS BIGINT) AS n_units".to_string();
            "draw_buckets"
        } else {
            "unit_strata"
        };
        st_cols.extend(order_keys);
        ctes.push(Cte {
            name: "stratum_sizes",
            comment: "N_h per stratum".into(),
            body: format!(
                "SELECT\n    {}\n  FROM {counted}\n  GROUP BY {}",
                st_cols.join(",\n    "),
                if by_value {
                    keys.join(", ")
                } else {
                    format!("stratum{group}")
                },
            ),
        });
        let rank = if order.is_empty() {
            "ROW_NUMBER() OVER (ORDER BY stratum)".to_string()
        } else {
            format!("ROW_NUMBER() OVER (ORDER BY {})", order.join(", "))
        };
        let start = d.hex_to_int(
            &format!(
                "substr({}, 1, 8)",
                d.md5(&format!(
                    "{} || stratum",
                    self.s(&format!("{}:", self.st.seed))
                ))
            ),
            8,
        );
        ctes.push(Cte {
            name: "strata",
            comment: "strata in stratum order (h), with N_h and the start U = first 8 hex digits of md5(seed:stratum) (§6)".into(),
            body: format!(
                "SELECT\n    stratum,\n    n_units,\n    {rank} AS h,\n    {start} AS u{}\n  FROM stratum_sizes",
                rule_values.iter().map(|v| format!(",\n    {v}")).collect::<String>()
            ),
        });
        Ok(())
    }

    /// The final `SELECT`: the eligible rows of the selected units with the
    /// output columns; `weight` is the statement's own design weight (none
    /// for a split), `filters` the joins of `keep`/`exclude` (for a split
    /// that places rows by themselves).
    fn final_select(&self, weight: Option<&str>, filters: &str, top: bool) -> R<String> {
        let st = self.st;
        let joined = self.joined_rows(filters)?;
        let mut out = Vec::new();
        for o in &st.output {
            let e = match o {
                ir::Output::Column(c) => format!("e.{}", self.id(&c.name)),
                ir::Output::Stratum { index, .. } => {
                    format!("e.{}", self.id(&format!("{S_PREFIX}{index}")))
                }
                ir::Output::Weight => self.weight(weight),
                ir::Output::StratumText => "s.stratum".to_string(),
                ir::Output::SplitName => joined.split_name.clone(),
            };
            out.push(format!("{e} AS {}", self.id(o.name())));
        }
        let mut select = format!(
            "SELECT{}\n  {}\nFROM {}\n",
            joined.hint,
            out.join(",\n  "),
            joined.from
        );
        // Units in stratum and draw order (§7.3); a split's by part first.
        if top && (st.kind.is_sample() || self.options.order_splits) {
            let split_order = match st.kind {
                ir::Kind::Split(_) => format!("{}, ", joined.split_index),
                ir::Kind::Sample => String::new(),
            };
            let _ = writeln!(select, "ORDER BY {split_order}s.h, {}", joined.draw_order);
        }
        Ok(select)
    }

    /// What the final `SELECT` reads: the eligible rows `e` joined to `s`,
    /// the units they belong to (a sample: the units it keeps, at most n —
    /// a small table the engine may send to every task, Spark: a broadcast
    /// hint; a split: every unit) or, for a split that places each row by
    /// its own draw, its stratum's cuts.
    fn joined_rows(&self, filters: &str) -> R<JoinedRows> {
        let d = self.d;
        let unit = self.unit_value_of_row()?;
        let unit_draw_order = format!("{}, {}", d.bytes_order("s.r"), d.bytes_order("s.unit_key"));
        Ok(match &self.st.kind {
            // An exact sample's units are ranked in draw order already:
            // sorting by the rank, an integer, spares comparing 16 hex
            // digits and key texts per row.
            ir::Kind::Sample if self.ranks_a_sample() => JoinedRows {
                hint: d.spelling().broadcast_selected,
                from: format!(
                    "eligible_rows e\nJOIN (SELECT * FROM selected_units WHERE draw_rank <= n_take) s ON {unit} = s.unit_value"
                ),
                split_index: String::new(),
                split_name: String::new(),
                draw_order: "s.draw_rank".to_string(),
            },
            ir::Kind::Sample => JoinedRows {
                hint: d.spelling().broadcast_selected,
                from: format!("eligible_rows e\nJOIN selected_units s ON {unit} = s.unit_value"),
                split_index: String::new(),
                split_name: String::new(),
                draw_order: unit_draw_order,
            },
            ir::Kind::Split(split) if self.splits_rows(split) => {
                let key = format!("e.{}", self.id(KEY));
                let r = format!("e.{}", self.id(ROW_DRAW));
                let bounds = self.split_boundaries(split)?.len();
                let part = |f: &dyn Fn(usize) -> String| {
                    self.cut_case(&r, &key, "s", bounds, f)
                        .replace('\n', "\n  ")
                };
                let stratum_text = match self.strata_by_value() {
                    Some(_) => String::new(),
                    None => format!(
                        ",\n    {} AS {}",
                        self.row_stratum_text()?.replace('\n', "\n  "),
                        self.id(ROW_STRATUM)
                    ),
                };
                JoinedRows {
                    hint: d.spelling().broadcast_selected,
                    from: format!(
                        "(\n  SELECT\n    e.*,\n    {} AS {}{stratum_text}\n  FROM eligible_rows e{}\n) e\n\
                         JOIN split_cuts s ON {}",
                        self.draw(&key),
                        self.id(ROW_DRAW),
                        filters.replace('\n', "\n  "),
                        self.in_stratum("e", &self.id(ROW_STRATUM), "s"),
                    ),
                    split_index: part(&|i| i.to_string()),
                    split_name: part(&|i| self.s(&split.parts[i].0)),
                    draw_order: format!("{}, {}", d.bytes_order(&r), d.bytes_order(&key)),
                }
            }
            ir::Kind::Split(_) => JoinedRows {
                hint: "",
                from: format!("eligible_rows e\nJOIN selected_units s ON {unit} = s.unit_value"),
                split_index: "s.split_index".to_string(),
                split_name: self.split_name("s.split_index"),
                draw_order: unit_draw_order,
            },
        })
    }

    /// `_split` (§7): the name of the part `index` numbers.
    fn split_name(&self, index: &str) -> String {
        let ir::Kind::Split(split) = &self.st.kind else {
            unreachable!("the checker allows `_split` as generated only in a split")
        };
        let mut case = format!("CASE {index}");
        for (i, (name, _)) in split.parts.iter().enumerate() {
            let _ = write!(case, " WHEN {i} THEN {}", self.s(name));
        }
        case + " END"
    }

    /// `_weight` (§7): the statement's own weight times the source's
    /// `_weight` (two-phase sampling); a split keeps its source's.
    fn weight(&self, own: Option<&str>) -> String {
        let source_weight = match &self.st.source {
            ir::Source::Statement(j)
                if self.program.statements[*j]
                    .output
                    .contains(&ir::Output::Weight) =>
            {
                Some(format!("e.{}", self.id("_weight")))
            }
            _ => None,
        };
        match (own, source_weight) {
            (Some(w), Some(sw)) => format!("({w}) * {sw}"),
            (Some(w), None) => w.to_string(),
            (None, Some(sw)) => sw,
            (None, None) => self.d.to_double("1"),
        }
    }

    fn header(&self, index: usize) -> String {
        let clean = Dialect::comment;
        let st = self.st;
        let name = st.name.as_deref().map_or_else(
            || format!("statement {}", index + 1),
            |n| format!("`{}`", clean(n)),
        );
        let kind = st.kind.as_str();
        format!(
            "-- Generated by strat {} from {} (md5 {}): {name} ({kind}), dialect {}.\n\
             -- The same rows, _weight, _stratum and _split as `strat run` (docs/sql.md); do not edit, regenerate.\n",
            env!("CARGO_PKG_VERSION"),
            clean(&self.options.file_name),
            md5_hex(&self.options.file_text),
            self.d
        )
    }

    /// `unit_aggregates`: one row per unit key with each unit aggregate over
    /// the unit's eligible rows (§2, as `strat_engine::run`
    /// computes them), from `eligible_input` (through `ranked_rows` for
    /// `first`/`last`).
    fn aggregate_ctes(&self, ctes: &mut Vec<Cte>, aggregates: &[ir::UnitAggregate]) -> R<()> {
        use ir::Aggregate as A;
        let d = self.d;
        let key = self.id(KEY);
        let arg = |j: usize| self.id(&format!("{AGG_ARG}{j}"));
        let ordered = |x: &str, ty: &Type| {
            if *ty == Type::String {
                d.bytes_order(x)
            } else {
                x.to_string()
            }
        };
        let mut ranks = Vec::new();
        let mut counts = Vec::new();
        for (j, a) in aggregates.iter().enumerate() {
            let rank = self.id(&format!("{AGG_RANK}{j}"));
            match (a.func, &a.arg, &a.by) {
                (A::First | A::Last, Some(x), Some(t)) => {
                    // NULL t last, then the larger x, NULL x last.
                    let dir = if a.func == A::First { "ASC" } else { "DESC" };
                    ranks.push(format!(
                        "ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY {} {dir} NULLS LAST, {} DESC NULLS LAST) AS {rank}",
                        ordered(&self.id(&format!("{AGG_BY}{j}")), &t.ty),
                        ordered(&arg(j), &x.ty),
                    ));
                }
                (A::Mode, Some(x), _) => {
                    // The most rows with the value first (NULL counts 0), then the smallest value.
                    let count = self.id(&format!("{AGG_COUNT}{j}"));
                    counts.push(format!(
                        "COUNT({0}) OVER (PARTITION BY {key}, {0}) AS {count}",
                        arg(j)
                    ));
                    ranks.push(format!(
                        "ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY {count} DESC, {} ASC NULLS LAST) AS {rank}",
                        ordered(&arg(j), &x.ty),
                    ));
                }
                _ => {}
            }
        }
        let ranked_from = if counts.is_empty() {
            "eligible_input"
        } else {
            let mut cols = vec![key.clone()];
            for (j, a) in aggregates.iter().enumerate() {
                if a.arg.is_some() {
                    cols.push(arg(j));
                }
                if a.by.is_some() {
                    cols.push(self.id(&format!("{AGG_BY}{j}")));
                }
            }
            cols.extend(counts);
            ctes.push(Cte {
                name: "counted_rows",
                comment: "mode: each row with the number of its unit's rows that share its value (0 for NULL)".into(),
                body: format!("SELECT\n    {}\n  FROM eligible_input", cols.join(",\n    ")),
            });
            "counted_rows"
        };
        let from = if ranks.is_empty() {
            "eligible_input"
        } else {
            let mut cols = vec![key.clone()];
            cols.extend(
                aggregates
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.arg.is_some())
                    .map(|(j, _)| arg(j)),
            );
            cols.extend(ranks);
            let comment = match (
                aggregates
                    .iter()
                    .any(|a| matches!(a.func, A::First | A::Last)),
                aggregates.iter().any(|a| a.func == A::Mode),
            ) {
                (true, false) => {
                    "first/last: each unit's rows ranked by t (NULLs last), then the larger x (NULLs last)"
                }
                (false, _) => {
                    "mode: each unit's rows ranked by how many rows share their value, then the smaller value (NULLs last)"
                }
                (true, true) => {
                    "first/last: each unit's rows ranked by t (NULLs last), then the larger x (NULLs last); mode: by how many rows share the value, then the smaller value (NULLs last)"
                }
            };
            ctes.push(Cte {
                name: "ranked_rows",
                comment: comment.into(),
                body: format!("SELECT\n    {}\n  FROM {ranked_from}", cols.join(",\n    ")),
            });
            "ranked_rows"
        };
        // Checks fail the query in HAVING (the raise spelling is a boolean);
        // the value itself is NULL there.
        let mut checks: Vec<String> = Vec::new();
        let mut cols = vec![key.clone()];
        for (j, a) in aggregates.iter().enumerate() {
            let x = arg(j);
            let ty = a.arg.as_ref().map(|x| x.ty.clone());
            let bool_min = |v: &str, f: &str| {
                format!("({f}(CASE WHEN {v} THEN 1 WHEN NOT {v} THEN 0 END) = 1)")
            };
            let value = match (a.func, ty.as_ref()) {
                (A::Count, _) => "COUNT(*)".to_string(),
                (A::Min | A::Max, Some(ty)) => {
                    let f = if a.func == A::Min { "MIN" } else { "MAX" };
                    match ty {
                        Type::Bool => bool_min(&x, f),
                        _ => format!("{f}({})", ordered(&x, ty)),
                    }
                }
                (A::Sum | A::Avg, Some(Type::Int)) => {
                    let sum = format!("SUM({})", d.cast(&x, "DECIMAL(38,0)"));
                    let (bad, message, value) = if a.func == A::Sum {
                        (
                            format!(
                                "{sum} > 9223372036854775807 OR {sum} < -9223372036854775807 - 1"
                            ),
                            format!(
                                "{} || {key} || {}",
                                self.s("strat: integer overflow in `sum(…)` of unit "),
                                self.s(
                                    "; cast to a float with `* 1.0` or keep the numbers smaller"
                                )
                            ),
                            format!("CAST({sum} AS BIGINT)"),
                        )
                    } else {
                        // Exact as long as the sum is a double exactly (|sum| <= 2^53).
                        (
                            format!("{sum} > 9007199254740992 OR {sum} < -9007199254740992"),
                            format!(
                                "{} || {key} || {}",
                                self.s("strat: `avg(…)` of unit "),
                                self.s(" adds up to more than 2^53; `strat sql` cannot divide it exactly")
                            ),
                            format!(
                                "{} / {}",
                                d.to_double(&sum),
                                d.to_double(&format!("COUNT({x})"))
                            ),
                        )
                    };
                    checks.push(format!(
                        "CASE WHEN {bad} THEN {} ELSE TRUE END",
                        d.raise(&message)
                    ));
                    format!("CASE WHEN {bad} THEN NULL ELSE {value} END")
                }
                (A::Sum | A::Avg, Some(ty)) => {
                    return Err(self.unsupported(format!(
                        "`{}` of a {ty} column (engines add floats and decimals in their own order and types)",
                        if a.func == A::Sum { "sum" } else { "avg" }
                    )));
                }
                (A::First | A::Last | A::Mode, Some(ty)) => {
                    let v = format!(
                        "CASE WHEN {} = 1 THEN {x} END",
                        self.id(&format!("{AGG_RANK}{j}"))
                    );
                    if *ty == Type::Bool {
                        Dialect::fill(d.spelling().min_bool, &[&v])
                    } else {
                        format!("MIN({v})")
                    }
                }
                (_, None) => {
                    return Err(self.unsupported("a unit aggregate without its argument"));
                }
            };
            cols.push(format!(
                "{value} AS {}",
                self.id(&format!("{AGG_PREFIX}{j}"))
            ));
        }
        ctes.push(Cte {
            name: "unit_aggregates",
            comment: format!(
                "the unit aggregates of `stratify by`{}, one row per unit over its eligible rows (NULLs ignored)",
                if self.st.having.is_some() { " and `having`" } else { "" }
            ),
            body: format!(
                "SELECT\n    {}\n  FROM {from}\n  GROUP BY {key}{}",
                cols.join(",\n    "),
                if checks.is_empty() {
                    String::new()
                } else {
                    format!("\n  HAVING {}", checks.join("\n    AND "))
                }
            ),
        });
        Ok(())
    }

    /// Allocation and selection of a sample; returns the `_weight` expression.
    fn sample_ctes(&self, ctes: &mut Vec<Cte>, filters: &str) -> R<Option<String>> {
        let d = self.d;
        let st = self.st;
        if st.amount == ir::Amount::AboutRates {
            return self.about_ctes(ctes, None).map(Some);
        }
        if let ir::Amount::About(p) = &st.amount
            && (!st.rules.is_empty()
                || st.min.is_some()
                || st.max.is_some()
                || st.method != ir::Method::Proportional)
        {
            return self.about_ctes(ctes, Some(p)).map(Some);
        }
        if let ir::Amount::About(p) = &st.amount {
            // Plain proportional: p_h = P in every stratum (§5.4).
            let keep = match strat_alloc::threshold(p) {
                None => "TRUE".to_string(),
                Some(0) => "FALSE".to_string(),
                Some(t) => format!(
                    "{} < {}",
                    d.bytes_order("u.r"),
                    self.s(&format!("{t:016x}"))
                ),
            };
            ctes.push(Cte {
                name: "selected_units",
                comment: "Bernoulli (§5.4, §6): keep a unit iff r < floor(P × 2^64) in 16 hex digits".into(),
                body: format!(
                    "SELECT u.unit_key, u.unit_value, u.r, u.stratum, s.h\n  FROM unit_strata u\n  JOIN strata s ON u.stratum = s.stratum\n  WHERE {keep}"
                ),
            });
            let weight = if p.is_zero() {
                d.to_double("0")
            } else {
                let (num, den) = (small(p.numer()), small(p.denom()));
                match (num, den) {
                    (Some(n), Some(m)) => format!(
                        "{} / {}",
                        d.to_double(&m.to_string()),
                        d.to_double(&n.to_string())
                    ),
                    _ => {
                        return Err(self.unsupported(
                            "a `take about` percentage with more than 15 significant digits",
                        ));
                    }
                }
            };
            return Ok(Some(weight));
        }

        // population and n
        ctes.push(Cte {
            name: "population",
            comment: "N (units) and H (strata)".into(),
            body: "SELECT\n    CAST(COALESCE(SUM(n_units), 0) AS BIGINT) AS big_n,\n    COUNT(*) AS big_h\n  FROM strata".into(),
        });
        let (n, guard) = match &st.amount {
            ir::Amount::Count(k) => {
                let message = format!(
                    "{} || {} || {}",
                    self.s(&format!("strat: take {k} asks for more units than the ")),
                    d.to_text("big_n"),
                    self.s(" eligible ones; lower `take` or widen `where`")
                );
                (
                    k.to_string(),
                    format!(
                        "\n  WHERE CASE WHEN {k} > big_n THEN {} ELSE TRUE END",
                        d.raise(&message)
                    ),
                )
            }
            ir::Amount::Fraction(p) => {
                // round_half_up(a/b × N) = (2aN + b) div 2b
                let (a, b) = (p.numer().to_string(), p.denom().to_string());
                let two_a = (p.numer() * BigInt::from(2)).to_string();
                let two_b = (p.denom() * BigInt::from(2)).to_string();
                let _ = a;
                (
                    format!(
                        "CAST({} AS BIGINT)",
                        d.int_div(&format!("{} * {two_a} + {b}", d.to_wide("big_n")), &two_b)
                    ),
                    String::new(),
                )
            }
            ir::Amount::All => ("big_n".to_string(), String::new()),
            ir::Amount::About(_) | ir::Amount::AboutRates => unreachable!("handled above"),
        };
        ctes.push(Cte {
            name: "sample_size",
            comment: "n, the sample size (§4.1)".into(),
            body: format!(
                "SELECT\n    big_n,\n    big_h,\n    {n} AS n_total\n  FROM population{guard}"
            ),
        });

        self.allocation_ctes(ctes)?;
        self.draw_cuts_cte(ctes);
        let ranked = if self.cuts_from_rows() {
            self.cut_units_cte(ctes, filters)?;
            RankedUnits {
                hint: String::new(),
                unit_key: "u.unit_key".into(),
                key: "u.unit_key".into(),
                stratum: "u.stratum",
                from: "cut_units u\n  JOIN allocation a ON u.stratum = a.stratum".into(),
            }
        } else {
            let key = self.unit_key_of("u.unit_value")?;
            RankedUnits {
                // The allocation and cuts are one row per stratum: sent to
                // every task, not joined by shuffling the units.
                hint: Dialect::fill(d.spelling().broadcast, &["a, c"]),
                unit_key: format!("{key} AS unit_key"),
                key,
                stratum: "c.stratum",
                from: format!(
                    "unit_strata u\n  JOIN draw_cuts c ON {}\n  JOIN allocation a ON c.stratum = a.stratum\n  WHERE {} <= {}",
                    self.in_stratum("u", "stratum", "c"),
                    d.bytes_order(&format!("substr(u.r, 1, {BUCKET_DIGITS})")),
                    d.bytes_order("c.last_bucket"),
                ),
            }
        };
        let RankedUnits {
            hint,
            unit_key,
            key,
            stratum,
            from,
        } = ranked;
        ctes.push(Cte {
            name: "selected_units",
            comment: "the units up to each stratum's cut in draw order (r, key); the first n_h are kept".into(),
            body: format!(
                "SELECT{hint}\n    {unit_key},\n    u.unit_value,\n    u.r,\n    {stratum},\n    a.h,\n    a.n_units,\n    a.n_take,\n    \
                 ROW_NUMBER() OVER (PARTITION BY a.h ORDER BY {}, {}) AS draw_rank\n  FROM {from}",
                d.bytes_order("u.r"),
                d.bytes_order(&key),
            ),
        });
        Ok(Some(format!(
            "{} / {}",
            d.to_double("s.n_units"),
            d.to_double("s.n_take")
        )))
    }

    /// `draw_cuts`: the draw bucket of each stratum's n_h-th unit, with the
    /// stratum's values where units meet it by value.
    fn draw_cuts_cte(&self, ctes: &mut Vec<Cte>) {
        let d = self.d;
        let (stratum, buckets) = match self.strata_by_value() {
            Some(_) => (
                "s.stratum",
                format!(
                    "draw_buckets b\n    JOIN strata s ON {}\n    JOIN allocation a ON s.stratum = a.stratum",
                    self.in_stratum("b", "stratum", "s")
                ),
            ),
            None => (
                "b.stratum",
                "draw_buckets b\n    JOIN allocation a ON b.stratum = a.stratum".to_string(),
            ),
        };
        let values = self.carried_values("");
        ctes.push(Cte {
            name: "draw_cuts",
            comment: "the draw bucket of each stratum's n_h-th unit in draw order: no later unit can be kept".into(),
            body: format!(
                "SELECT\n    stratum{values},\n    MIN({}) AS last_bucket\n  FROM (\n    SELECT\n      {stratum}{},\n      b.bucket,\n      a.n_take,\n      \
                 SUM(b.n_units) OVER (PARTITION BY {stratum} ORDER BY {} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS through\n    \
                 FROM {buckets}\n  ) c\n  WHERE through >= n_take\n  GROUP BY stratum{}",
                d.bytes_order("bucket"),
                self.carried_values("s.").replace("\n    ", "\n      "),
                d.bytes_order("b.bucket"),
                values.replace("\n    ", " "),
            ),
        });
    }

    /// Whether an exact sample finds the units up to its cuts from the
    /// eligible rows (`cut_units`) rather than from `unit_strata`: on an
    /// engine that computes `units` again for each reader, and when a row's
    /// stratum is its unit's (no unit aggregates; a unit spanning strata
    /// still fails in `units`, which the allocation reads).
    fn cuts_from_rows(&self) -> bool {
        self.d.spelling().inlines_ctes && !self.st.has_aggregates()
    }

    /// `cut_units`: the units whose draw bucket is within their stratum's
    /// cut, from the eligible rows — each row's key text, draw and
    /// `_stratum` as `units` computes them, filtered before any grouping, so
    /// that only about `n_h + N_h/4096` units of a stratum are grouped.
    fn cut_units_cte(&self, ctes: &mut Vec<Cte>, filters: &str) -> R<()> {
        let d = self.d;
        ctes.push(Cte {
            name: "cut_units",
            comment: "the units whose draw bucket is within their stratum's cut, found from the rows (this engine would group every unit again)".into(),
            body: format!(
                "SELECT\n    w.unit_key,\n    w.unit_value,\n    w.r,\n    w.stratum\n  FROM {} w\n  \
                 JOIN draw_cuts c ON w.stratum = c.stratum\n  \
                 WHERE {} <= {}\n  \
                 GROUP BY w.unit_key, w.unit_value, w.r, w.stratum",
                self.rows_with_draws(filters)?,
                d.bytes_order(&format!("substr(w.r, 1, {BUCKET_DIGITS})")),
                d.bytes_order("c.last_bucket"),
            ),
        });
        Ok(())
    }

    /// A subquery of the eligible rows (after `keep`/`exclude`: `filters`),
    /// each with its unit's key text, value and draw and its stratum — the
    /// `_stratum` text, or the values where rows meet strata by value — as
    /// `units` computes them, for the CTEs that find units from the rows
    /// rather than read `units` again (`cut_units`, `boundary_units`).
    fn rows_with_draws(&self, filters: &str) -> R<String> {
        let (group, key) = self.unit_grouping()?;
        let stratum = match self.strata_by_value() {
            Some(_) => self.carried_values("e.").replace("\n    ", "\n      "),
            None => format!(",\n      {} AS stratum", self.row_stratum_text()?),
        };
        Ok(format!(
            "(\n    SELECT\n      {key} AS unit_key,\n      {group} AS unit_value,\n      {} AS r{stratum}\n    \
             FROM eligible_rows e{}\n  )",
            self.draw(&key),
            filters.replace('\n', "\n  "),
        ))
    }

    /// `take about P%` with rule blocks, `min`/`max` or `equal` (§5.4): rule
    /// strata get `p_h` = 1, 0 or the rate; the method strata share
    /// `R = P·N − Σ N_h·p_h` by the clamp/λ rule without rounding, solved in
    /// integers over the common denominator D of P and the rates. Each
    /// `p_h = p_num / p_den` exactly; `r < floor(p_h·2^64)` is decided on the
    /// two 32-bit halves of r and of the threshold (long division by p_den).
    /// Returns the `_weight` expression (`1 / p_h`).
    fn about_ctes(&self, ctes: &mut Vec<Cte>, p: Option<&BigRational>) -> R<String> {
        let d = self.d;
        let st = self.st;
        let gcd = |a: &BigInt, b: &BigInt| {
            let (mut a, mut b) = (a.clone(), b.clone());
            while !b.is_zero() {
                (a, b) = (b.clone(), a % b);
            }
            a
        };
        let mut den = p.map_or_else(BigInt::one, |p| p.denom().clone());
        for r in &st.rules {
            if let Some(ir::RuleAmount::Rate(q)) = &r.amount {
                den = &den / gcd(&den, q.denom()) * q.denom();
            }
        }
        let too_fine = || {
            self.unsupported(
                "`take about` or `rate` percentages with more than 15 significant digits",
            )
        };
        let scale = small(&den).ok_or_else(too_fine)?;
        let Some(p) = p else {
            // `take about` alone (§5.4): every stratum's p_h is its rule's.
            self.about_rules_cte(ctes, &den, scale)?;
            ctes.push(Cte {
                name: "stratum_probabilities",
                comment: "p_h = p_num / p_den exactly: each stratum's rule (all 1, none 0, rate P)".into(),
                body: "SELECT stratum, h, rule_num AS p_num, rule_den AS p_den FROM about_rules WHERE is_method = 0".into(),
            });
            return self.bernoulli_selection(ctes);
        };
        let p_scaled = small(&(p.numer() * (&den / p.denom()))).ok_or_else(too_fine)?;
        ctes.push(Cte {
            name: "population",
            comment: "N (units) and H (strata)".into(),
            body: "SELECT\n    CAST(COALESCE(SUM(n_units), 0) AS BIGINT) AS big_n,\n    COUNT(*) AS big_h\n  FROM strata".into(),
        });
        let method_strata = if st.rules.is_empty() {
            ctes.push(Cte {
                name: "method_total",
                comment: format!("R·D = P·N·D with D = {scale}, the expected sample size over D"),
                body: format!(
                    "SELECT {} * {p_scaled} AS n_total\n  FROM population",
                    d.to_wide("big_n")
                ),
            });
            "strata"
        } else {
            self.about_rules_cte(ctes, &den, scale)?;
            ctes.push(Cte {
                name: "method_strata",
                comment: "the strata no rule decides: the method allocates them".into(),
                body: "SELECT stratum, h, u, n_units FROM about_rules WHERE is_method = 1".into(),
            });
            let rules_sum = format!(
                "COALESCE(SUM(CASE WHEN r.is_method = 0 THEN {} * r.rule_scaled ELSE 0 END), 0)",
                d.to_wide("r.n_units")
            );
            let message = format!(
                "{} || {} || {} || {} || {}",
                self.s("strat: the expected sizes of the rule strata add up to "),
                d.to_text(&rules_sum),
                self.s(" but the expected total is "),
                d.to_text(&format!("MAX(z.big_n) * {p_scaled}")),
                self.s(&format!(
                    " (both times {scale}); to keep each unit with the rate of its stratum, drop the amount: \
                     `take about` alone keeps each unit with the rate of its stratum (with `else => rate P%` \
                     for the other strata); or lower the rule rates, or raise `take about`"
                ))
            );
            ctes.push(Cte {
                name: "method_total",
                comment: format!("R·D = (P·N − Σ N_h·p_h over the rule strata)·D with D = {scale} (R < 0 fails the query)"),
                body: format!(
                    "SELECT\n    {} * {p_scaled} - {rules_sum} AS n_total\n  FROM population z\n  \
                     LEFT JOIN about_rules r ON TRUE\n  \
                     HAVING CASE WHEN {} * {p_scaled} < {rules_sum} THEN {} ELSE TRUE END",
                    d.to_wide("MAX(z.big_n)"),
                    d.to_wide("MAX(z.big_n)"),
                    d.raise(&message)
                ),
            });
            "method_strata"
        };
        self.water_fill_ctes(ctes, method_strata, "method_total", Some(&den))?;
        let (free_num, free_den) = match st.method {
            // x_h / N_h = (A·N_h / B) / (D·N_h) = A / (B·D)
            ir::Method::Proportional => {
                ("l.a".to_string(), format!("{} * {scale}", d.to_wide("l.b")))
            }
            _ => (
                format!("{} * c.w", d.to_wide("l.a")),
                format!("{} * {scale} * c.n_units", d.to_wide("l.b")),
            ),
        };
        let mut body = format!(
            "SELECT\n    c.stratum,\n    c.h,\n    \
             CASE c.clamped WHEN 1 THEN c.lo WHEN 2 THEN c.hi ELSE {free_num} END AS p_num,\n    \
             CASE WHEN c.clamped IN (1, 2) THEN {} * {scale} ELSE {free_den} END AS p_den\n  \
             FROM clamped_strata c\n  CROSS JOIN bounded_lambda l",
            d.to_wide("c.n_units")
        );
        if !st.rules.is_empty() {
            body.push_str(
                "\n  UNION ALL\n  SELECT stratum, h, rule_num AS p_num, rule_den AS p_den FROM about_rules WHERE is_method = 0",
            );
        }
        ctes.push(Cte {
            name: "stratum_probabilities",
            comment: "p_h = p_num / p_den exactly: x_h / N_h for the method strata (x_h = clamp(λ·w_h, lower_h, upper_h), D·x_h over D·N_h)".into(),
            body,
        });
        self.bernoulli_selection(ctes)
    }

    /// `probability_check` … `selected_units` from `stratum_probabilities`
    /// (`p_h = p_num / p_den` per stratum): keep a unit iff `r < floor(p_h·2^64)`.
    /// Returns the `_weight` expression (`1 / p_h`).
    fn bernoulli_selection(&self, ctes: &mut Vec<Cte>) -> R<String> {
        let d = self.d;
        // 2^53: p_den and p_num are doubles exactly, so 1/p_h is correctly
        // rounded; DataFusion's integers are 64 bits: p_den·2^32 must fit.
        let limit: u64 = if d == Dialect::DataFusion {
            1 << 31
        } else {
            1 << 53
        };
        // (A message with a column in it: DataFusion folds a constant one at plan time.)
        let message = format!(
            "{} || {} || {}",
            self.s("strat: the probability of a stratum has the denominator "),
            d.to_text("MAX(p_den)"),
            self.s(&format!(
                ", above {limit}; `strat sql` cannot compare it exactly on this engine (use `strat run`)"
            ))
        );
        ctes.push(Cte {
            name: "probability_check",
            comment: format!("every p_den at most {limit}, else the query fails"),
            body: format!(
                "SELECT COUNT(*) AS n_strata\n  FROM stratum_probabilities\n  \
                 HAVING CASE WHEN MAX(p_den) > {limit} THEN {} ELSE TRUE END",
                d.raise(&message)
            ),
        });
        let shifted = format!("{} * 4294967296", d.to_wide("p.p_num"));
        ctes.push(Cte {
            name: "stratum_thresholds",
            comment: "t_h = floor(p_h·2^64) as two 32-bit halves: q1 = floor(p_h·2^32), q2 = floor(frac(p_h·2^32)·2^32)".into(),
            body: format!(
                "SELECT\n    p.stratum,\n    p.h,\n    p.p_num,\n    p.p_den,\n    {} AS q1,\n    {} AS q2\n  \
                 FROM stratum_probabilities p\n  CROSS JOIN probability_check",
                d.int_div(&shifted, "p.p_den"),
                d.int_div(&format!("({shifted}) % p.p_den * 4294967296"), "p.p_den"),
            ),
        });
        let (hi, lo) = (
            d.hex_to_int("substr(u.r, 1, 8)", 8),
            d.hex_to_int("substr(u.r, 9, 8)", 8),
        );
        ctes.push(Cte {
            name: "selected_units",
            comment: "Bernoulli (§5.4, §6): keep a unit iff p_h >= 1 or r < t_h, compared on 32-bit halves".into(),
            body: format!(
                "SELECT\n    u.unit_key,\n    u.unit_value,\n    u.r,\n    u.stratum,\n    t.h,\n    t.p_num,\n    t.p_den\n  \
                 FROM unit_strata u\n  JOIN stratum_thresholds t ON u.stratum = t.stratum\n  \
                 WHERE t.p_num >= t.p_den OR {hi} < t.q1 OR ({hi} = t.q1 AND {lo} < t.q2)"
            ),
        });
        Ok(format!(
            "{} / {}",
            d.to_double("s.p_den"),
            d.to_double("s.p_num")
        ))
    }

    /// `stratum_rules` and `about_rules`: each stratum's rule with its
    /// probability `rule_num / rule_den` (all 1, none 0, rate P) and that
    /// probability times D (`scale`), `is_method` for the strata no rule decides.
    fn about_rules_cte(&self, ctes: &mut Vec<Cte>, den: &BigInt, scale: i64) -> R<()> {
        let st = self.st;
        let too_fine = || {
            self.unsupported(
                "`take about` or `rate` percentages with more than 15 significant digits",
            )
        };
        self.stratum_rules(ctes)?;
        // p_r = num / den per rule, and p_r·D.
        let mut method_rules = vec!["-1".to_string()];
        let (mut num, mut dn, mut sc) = (
            String::from("CASE rule_no"),
            String::from("CASE rule_no"),
            String::from("CASE rule_no"),
        );
        for (j, r) in st.rules.iter().enumerate() {
            let q = match &r.amount {
                None => {
                    method_rules.push(j.to_string());
                    continue;
                }
                Some(ir::RuleAmount::All) => BigRational::one(),
                Some(ir::RuleAmount::None) => BigRational::zero(),
                Some(ir::RuleAmount::Rate(q)) => q.clone(),
                Some(_) => return Err(self.unsupported("`count` or `share` with `take about`")),
            };
            let (Some(a), Some(b), Some(k)) = (
                small(q.numer()),
                small(q.denom()),
                small(&(q.numer() * (den / q.denom()))),
            ) else {
                return Err(too_fine());
            };
            let _ = write!(num, " WHEN {j} THEN {a}");
            let _ = write!(dn, " WHEN {j} THEN {b}");
            let _ = write!(sc, " WHEN {j} THEN {k}");
        }
        for c in [&mut num, &mut dn, &mut sc] {
            c.push_str(" END");
        }
        let method_list = method_rules.join(", ");
        ctes.push(Cte {
            name: "about_rules",
            comment: format!("p_h = rule_num / rule_den of the rule strata (all 1, none 0, rate P), and p_h·D with D = {scale}"),
            body: format!(
                "SELECT\n    stratum,\n    h,\n    u,\n    n_units,\n    \
                 CASE WHEN rule_no IN ({method_list}) THEN 1 ELSE 0 END AS is_method,\n    \
                 {num} AS rule_num,\n    {dn} AS rule_den,\n    {sc} AS rule_scaled\n  FROM stratum_rules"
            ),
        });
        Ok(())
    }

    /// The exact allocation (§5): `allocation(stratum, h, n_units, n_take)`.
    fn allocation_ctes(&self, ctes: &mut Vec<Cte>) -> R<()> {
        let st = self.st;
        let take_all = matches!(st.amount, ir::Amount::All);
        let rules = !st.rules.is_empty();
        let (method_strata, method_total) = if rules {
            self.rule_ctes(ctes, take_all)?;
            ("method_strata", "method_total")
        } else {
            ("strata", "sample_size")
        };
        let method_allocation = if rules {
            "method_allocation"
        } else {
            "allocation"
        };
        let bounded = st.min.is_some() || st.max.is_some();
        if take_all {
            ctes.push(Cte {
                name: method_allocation,
                comment: "take all: every unit of each method stratum (at most `max`)".into(),
                body: format!(
                    "SELECT stratum, h, n_units, {} AS n_take\n  FROM {method_strata}",
                    self.upper_bound("n_units")
                ),
            });
        } else {
            if self.weighted() {
                self.neyman_ctes(ctes)?;
                self.water_fill_ctes(ctes, method_strata, method_total, None)?;
                self.weighted_quotas(ctes);
            } else if bounded {
                self.water_fill_ctes(ctes, method_strata, method_total, None)?;
                self.bounded_quotas(ctes);
            } else {
                self.method_quotas(ctes, method_strata, method_total)?;
            }
            ctes.push(Cte {
                name: method_allocation,
                comment: "largest remainder (§5.3): the leftover units go to the largest remainders, then the smaller u_h, then stratum order".into(),
                body: "SELECT\n    stratum,\n    h,\n    n_units,\n    base + CASE WHEN ROW_NUMBER() OVER (ORDER BY remainder DESC, u ASC, h ASC) \
                       <= n_total - SUM(base) OVER () THEN 1 ELSE 0 END AS n_take\n  FROM quotas"
                    .into(),
            });
        }
        if rules {
            // The rule strata go through method_total, so its checks run even
            // when no stratum is left to the method.
            let checks = if take_all {
                ""
            } else {
                " r\n  CROSS JOIN method_total t"
            };
            ctes.push(Cte {
                name: "allocation",
                comment: "n_h of every stratum: the method strata's and the rules'".into(),
                body: format!(
                    "SELECT stratum, h, n_units, n_take FROM method_allocation\n  UNION ALL\n  \
                     SELECT stratum, h, n_units, rule_take AS n_take FROM rule_sizes{checks}\n  WHERE is_method = 0"
                ),
            });
        }
        Ok(())
    }

    /// `min(max, N_h)` (`N_h` without `max`).
    fn upper_bound(&self, n: &str) -> String {
        match self.st.max {
            Some(m) => format!("CASE WHEN {n} < {m} THEN {n} ELSE {m} END"),
            None => n.to_string(),
        }
    }

    /// `min(min, N_h)` (0 without `min`).
    fn lower_bound(&self, n: &str) -> String {
        match self.st.min {
            Some(m) => format!("CASE WHEN {n} < {m} THEN {n} ELSE {m} END"),
            None => "0".to_string(),
        }
    }

    /// Proportional or equal without bounds: `quotas(stratum, h, u, n_units,
    /// n_total, base, remainder)` with `x_h = base + remainder / denominator`.
    fn method_quotas(&self, ctes: &mut Vec<Cte>, ms: &str, mt: &str) -> R<()> {
        let d = self.d;
        match self.st.method {
            ir::Method::Proportional => ctes.push(Cte {
                name: "quotas",
                comment: "proportional: x_h = n·N_h/N; floor and remainder in exact integers (§5.2)".into(),
                body: format!(
                    "SELECT\n    s.stratum,\n    s.h,\n    s.u,\n    s.n_units,\n    z.n_total,\n    {} AS base,\n    \
                     ({} * s.n_units) % NULLIF(z.big_n, 0) AS remainder\n  FROM {ms} s\n  CROSS JOIN {mt} z",
                    d.int_div(&format!("{} * s.n_units", d.to_wide("z.n_total")), "NULLIF(z.big_n, 0)"),
                    d.to_wide("z.n_total")
                ),
            }),
            ir::Method::Equal => {
                let frame = "ORDER BY s.n_units RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW";
                ctes.push(Cte {
                    name: "equal_levels",
                    comment: "equal: x_h = min(λ, N_h); a stratum is full iff Σ_j min(N_j, N_h) <= n".into(),
                    body: format!(
                        "SELECT\n    s.stratum,\n    s.h,\n    s.u,\n    s.n_units,\n    z.n_total,\n    \
                         CASE WHEN SUM(s.n_units) OVER ({frame}) + (z.big_h - COUNT(*) OVER ({frame})) * s.n_units <= z.n_total \
                         THEN 1 ELSE 0 END AS full_stratum\n  FROM {ms} s\n  CROSS JOIN {mt} z"
                    ),
                });
                ctes.push(Cte {
                    name: "equal_lambda",
                    comment: "λ = a / b: what the full strata leave, over the strata that are not full".into(),
                    body: "SELECT\n    MAX(n_total) - SUM(full_stratum * n_units) AS a,\n    COUNT(*) - SUM(full_stratum) AS b\n  FROM equal_levels".into(),
                });
                ctes.push(Cte {
                    name: "quotas",
                    comment: "floor and remainder of x_h over the common denominator b".into(),
                    body: format!(
                        "SELECT\n    e.stratum,\n    e.h,\n    e.u,\n    e.n_units,\n    e.n_total,\n    \
                         CASE WHEN e.full_stratum = 1 THEN e.n_units ELSE {} END AS base,\n    \
                         CASE WHEN e.full_stratum = 1 THEN 0 ELSE l.a % NULLIF(l.b, 0) END AS remainder\n  \
                         FROM equal_levels e\n  CROSS JOIN equal_lambda l",
                        d.int_div("l.a", "NULLIF(l.b, 0)")
                    ),
                });
            }
            _ => unreachable!("checked"),
        }
        Ok(())
    }

    /// `min`/`max per stratum` (§5.2): `x_h = clamp(λ·w_h, lower_h, upper_h)`
    /// with `Σ x_h = R`, exactly. `f(λ) = Σ x_h` is monotone; with λ* the
    /// smallest λ where `f(λ) >= R`, a stratum sits at its lower bound iff
    /// `f(lower_h/w_h) >= R` and at its upper bound iff `f(upper_h/w_h) <= R`
    /// (f is evaluated at each breakpoint `a/b` as the integer `f(a/b)·b`); the
    /// others are free, and `λ* = A/B` with `A = R − Σ clamped`, `B = Σ_free w_h`.
    ///
    /// With `scale` D (Bernoulli, §5.4) R is the rational `n_total / D` and
    /// the bounds are scaled by D too, so everything stays in integers.
    fn water_fill_ctes(
        &self,
        ctes: &mut Vec<Cte>,
        ms: &str,
        mt: &str,
        scale: Option<&BigInt>,
    ) -> R<()> {
        let d = self.d;
        let scaled = |b: String| match scale {
            Some(k) => format!("{} * {k}", d.to_wide(&format!("({b})"))),
            None => b,
        };
        let (weight, join) = match &self.st.method {
            ir::Method::Proportional => ("s.n_units".to_string(), String::new()),
            ir::Method::Equal => ("1".to_string(), String::new()),
            // f64 weights (§5.2); all 0 means proportional.
            ir::Method::Neyman(_) => (
                format!(
                    "CASE WHEN SUM({w}) OVER () = 0 THEN {} ELSE {w} END",
                    d.to_double("s.n_units"),
                    w = format!("{} * n.sd", d.to_double("s.n_units"))
                ),
                "\n  JOIN neyman_sd n ON s.stratum = n.stratum".to_string(),
            ),
            ir::Method::Power(q) => (self.power_weight(q)?, String::new()),
        };
        ctes.push(Cte {
            name: "bounded_strata",
            comment: "method strata with weight w_h and bounds lower_h = min(min, N_h), upper_h = min(max, N_h)".into(),
            body: format!(
                "SELECT\n    s.stratum,\n    s.h,\n    s.u,\n    s.n_units,\n    {weight} AS w,\n    {} AS lo,\n    {} AS hi\n  FROM {ms} s{join}",
                scaled(self.lower_bound("s.n_units")),
                scaled(self.upper_bound("s.n_units"))
            ),
        });
        let message = format!(
            "{} || {} || {} || {} || {} || {} || {}",
            self.s("strat: `min`/`max` per stratum: the method strata can hold "),
            d.to_text("SUM(b.lo)"),
            self.s(" to "),
            d.to_text("SUM(b.hi)"),
            self.s(" units but "),
            d.to_text("MAX(z.n_total)"),
            self.s(&match scale {
                Some(k) => format!(
                    " must go to them (all three times {k}, the common denominator of the expected sizes); \
                     change `min`, `max` or `take`"
                ),
                None => " must go to them; change `min`, `max` or `take`".into(),
            })
        );
        ctes.push(Cte {
            name: "bounds_total",
            comment: "R and the feasibility check Σ lower_h <= R <= Σ upper_h".into(),
            body: format!(
                "SELECT\n    MAX(z.n_total) AS n_total\n  FROM {mt} z\n  LEFT JOIN bounded_strata b ON TRUE\n  \
                 HAVING CASE WHEN COUNT(b.h) > 0 AND (SUM(b.lo) > MAX(z.n_total) OR SUM(b.hi) < MAX(z.n_total)) \
                 THEN {} ELSE TRUE END",
                d.raise(&message)
            ),
        });
        ctes.push(Cte {
            name: "breakpoints",
            comment: "the breakpoints a/b of f: lower_h/w_h and upper_h/w_h".into(),
            body: "SELECT h, lo AS a, w AS b, 0 AS is_upper FROM bounded_strata\n  UNION ALL\n  \
                   SELECT h, hi AS a, w AS b, 1 AS is_upper FROM bounded_strata"
                .into(),
        });
        let (a_w, lo_b, hi_b) = (
            format!("{} * s.w", d.to_wide("p.a")),
            format!("{} * p.b", d.to_wide("s.lo")),
            format!("{} * p.b", d.to_wide("s.hi")),
        );
        ctes.push(Cte {
            name: "breakpoint_sums",
            comment: "f(a/b)·b = Σ_j clamp(a·w_j, lower_j·b, upper_j·b) at every breakpoint, in integers".into(),
            body: format!(
                "SELECT\n    p.h,\n    p.is_upper,\n    SUM(CASE WHEN {a_w} < {lo_b} THEN {lo_b} WHEN {a_w} > {hi_b} THEN {hi_b} ELSE {a_w} END) AS f_scaled\n  \
                 FROM breakpoints p\n  CROSS JOIN bounded_strata s\n  GROUP BY p.h, p.is_upper"
            ),
        });
        ctes.push(Cte {
            name: "clamped_strata",
            comment: "1: at lower_h (f(lower_h/w_h) >= R), 2: at upper_h (f(upper_h/w_h) <= R), 0: free".into(),
            body: format!(
                "SELECT\n    s.stratum,\n    s.h,\n    s.u,\n    s.n_units,\n    s.w,\n    s.lo,\n    s.hi,\n    t.n_total,\n    \
                 CASE WHEN fl.f_scaled >= {r} THEN 1 WHEN fu.f_scaled <= {r} THEN 2 ELSE 0 END AS clamped\n  \
                 FROM bounded_strata s\n  CROSS JOIN bounds_total t\n  \
                 JOIN breakpoint_sums fl ON fl.h = s.h AND fl.is_upper = 0\n  \
                 JOIN breakpoint_sums fu ON fu.h = s.h AND fu.is_upper = 1",
                r = format!("{} * s.w", d.to_wide("t.n_total"))
            ),
        });
        let a = "MAX(n_total) - SUM(CASE clamped WHEN 1 THEN lo WHEN 2 THEN hi ELSE 0 END)";
        let b = "SUM(CASE WHEN clamped = 0 THEN w ELSE 0 END)";
        let shortfall = if self.weighted() {
            // Strata of weight 0 stay at their lower bound: R may be out of reach.
            let message = format!(
                "{} || {} || {}",
                self.s("strat: the strata of weight 0 stay at their lower bound, so only "),
                d.to_text(&format!("MAX(n_total) - ({a})")),
                self.s(" of the units can be allocated; change `take`, `min` or `max`")
            );
            format!(
                "\n  HAVING CASE WHEN {b} = 0 AND {a} <> 0 THEN {} ELSE TRUE END",
                d.raise(&message)
            )
        } else {
            String::new()
        };
        ctes.push(Cte {
            name: "bounded_lambda",
            comment: "λ = a / b: R less the clamped strata, over the free strata's weights".into(),
            body: format!("SELECT\n    {a} AS a,\n    {b} AS b\n  FROM clamped_strata{shortfall}"),
        });
        Ok(())
    }

    /// `neyman(C)` and `power(Q)`: weights are doubles (§5.2).
    fn weighted(&self) -> bool {
        matches!(self.st.method, ir::Method::Neyman(_) | ir::Method::Power(_))
    }

    /// `N_h^Q` as strat computes it: 1, `N_h`, `sqrt(N_h)` exactly, else `power`.
    fn power_weight(&self, q: &BigRational) -> R<String> {
        let d = self.d;
        let n = d.to_double("s.n_units");
        Ok(if q.is_zero() {
            d.to_double("1")
        } else if q.is_one() {
            n
        } else if *q == BigRational::new(1.into(), 2.into()) {
            format!("sqrt({n})")
        } else {
            let f = q
                .to_f64()
                .ok_or_else(|| self.unsupported("a `power` exponent that is not a double"))?;
            format!("power({n}, {})", d.to_double(&self.s(&format!("{f:?}"))))
        })
    }

    /// `neyman_sd`: S_h, the population standard deviation of C over the
    /// stratum's units with a value (0 with fewer than two): exact sums for an
    /// integer column (`(n·Σx² − (Σx)²) / n²`), two passes in doubles for a float one.
    fn neyman_ctes(&self, ctes: &mut Vec<Cte>) -> R<()> {
        let ir::Method::Neyman(c) = &self.st.method else {
            return Ok(());
        };
        let d = self.d;
        if c.ty == Type::Int {
            let v = d.to_wide("neyman_value");
            let (n, s1, s2) = (
                d.to_wide("COUNT(neyman_value)"),
                format!("SUM({v})"),
                format!("SUM({v} * {v})"),
            );
            let mut body = format!(
                "SELECT\n    stratum,\n    CASE WHEN COUNT(neyman_value) < 2 THEN {} \
                 ELSE sqrt({} / {}) END AS sd\n  FROM unit_strata\n  GROUP BY stratum",
                d.to_double("0"),
                d.to_double(&format!("{n} * {s2} - {s1} * {s1}")),
                d.to_double(&format!("{n} * {n}"))
            );
            if d == Dialect::DataFusion {
                // 64-bit integers there: n·Σx² must not wrap.
                let message = format!(
                    "{} || stratum || {}",
                    self.s(&format!(
                        "strat: neyman(`{}`): the sums of squares of stratum ",
                        c.name
                    )),
                    self.s(" overflow 64-bit integers on DataFusion; use `strat run`")
                );
                let _ = write!(
                    body,
                    "\n  HAVING CASE WHEN {} * {} * {} >= 4.0e18 THEN {} ELSE TRUE END",
                    d.to_double("COUNT(neyman_value)"),
                    d.to_double("MAX(abs(neyman_value))"),
                    d.to_double("MAX(abs(neyman_value))"),
                    d.raise(&message)
                );
            }
            ctes.push(Cte {
                name: "neyman_sd",
                comment: format!("S_h of `{}` over the stratum's units (exact sums; 0 for fewer than two values)", c.name),
                body,
            });
        } else {
            ctes.push(Cte {
                name: "neyman_means",
                comment: format!(
                    "the mean of `{}` over the stratum's units with a value",
                    c.name
                ),
                body: format!(
                    "SELECT\n    stratum,\n    COUNT(neyman_value) AS n_values,\n    \
                     SUM(neyman_value) / {} AS mean\n  FROM unit_strata\n  GROUP BY stratum",
                    d.to_double("NULLIF(COUNT(neyman_value), 0)")
                ),
            });
            ctes.push(Cte {
                name: "neyman_sd",
                comment: format!("S_h of `{}` (0 for fewer than two values)", c.name),
                body: format!(
                    "SELECT\n    m.stratum,\n    CASE WHEN MAX(m.n_values) < 2 THEN {} \
                     ELSE sqrt(SUM((u.neyman_value - m.mean) * (u.neyman_value - m.mean)) / {}) END AS sd\n  \
                     FROM neyman_means m\n  JOIN unit_strata u ON u.stratum = m.stratum\n  GROUP BY m.stratum",
                    d.to_double("0"),
                    d.to_double("MAX(m.n_values)")
                ),
            });
        }
        Ok(())
    }

    /// After [`Self::water_fill_ctes`] with double weights: `quotas` with the
    /// floor and fractional part of `x_h = a·w_h / b` in doubles.
    fn weighted_quotas(&self, ctes: &mut Vec<Cte>) {
        let d = self.d;
        let x = format!("{} * c.w / l.b", d.to_double("l.a"));
        ctes.push(Cte {
            name: "quotas",
            comment: "x_h = clamp(λ·w_h, lower_h, upper_h) in doubles: floor and fractional part".into(),
            body: format!(
                "SELECT\n    c.stratum,\n    c.h,\n    c.u,\n    c.n_units,\n    c.n_total,\n    \
                 CASE c.clamped WHEN 1 THEN c.lo WHEN 2 THEN c.hi ELSE CAST(floor({x}) AS BIGINT) END AS base,\n    \
                 CASE WHEN c.clamped = 0 THEN {x} - floor({x}) ELSE {} END AS remainder\n  \
                 FROM clamped_strata c\n  CROSS JOIN bounded_lambda l",
                d.to_double("0")
            ),
        });
    }

    /// After [`Self::water_fill_ctes`]: `quotas` of the exact allocation.
    fn bounded_quotas(&self, ctes: &mut Vec<Cte>) {
        let d = self.d;
        // a·w_h, whose floor and remainder over b are the quota.
        let aw = format!("{} * c.w", d.to_wide("l.a"));
        ctes.push(Cte {
            name: "quotas",
            comment: "x_h = clamp(λ·w_h, lower_h, upper_h): floor and remainder over the common denominator b".into(),
            body: format!(
                "SELECT\n    c.stratum,\n    c.h,\n    c.u,\n    c.n_units,\n    c.n_total,\n    \
                 CASE c.clamped WHEN 1 THEN c.lo WHEN 2 THEN c.hi ELSE {} END AS base,\n    \
                 CASE WHEN c.clamped = 0 THEN ({aw}) % NULLIF(l.b, 0) ELSE 0 END AS remainder\n  \
                 FROM clamped_strata c\n  CROSS JOIN bounded_lambda l",
                d.int_div(&aw, "NULLIF(l.b, 0)"),
            ),
        });
    }

    /// `stratum_rules`: the rule deciding each stratum (-1 for none).
    fn stratum_rules(&self, ctes: &mut Vec<Cte>) -> R<()> {
        let mut case = String::from("CASE");
        for (j, r) in self.st.rules.iter().enumerate() {
            let pred = match &r.predicate {
                Some(p) => self.expr(p)?,
                None => "TRUE".into(),
            };
            let _ = write!(case, "\n      WHEN {pred} THEN {j}");
        }
        case.push_str("\n      ELSE -1 END");
        ctes.push(Cte {
            name: "stratum_rules",
            comment: "the first rule whose predicate is true for the stratum's values (NULL is not true); -1 for none".into(),
            body: format!(
                "SELECT\n    stratum,\n    h,\n    u,\n    n_units,\n    {case} AS rule_no\n  FROM strata"
            ),
        });
        Ok(())
    }

    /// Rule blocks (§5.1): `rule_sizes(stratum, h, u, n_units, is_method,
    /// rule_take)`, `method_strata` and, with a total, `method_total` (R, the
    /// method strata's N and H).
    fn rule_ctes(&self, ctes: &mut Vec<Cte>, take_all: bool) -> R<()> {
        let d = self.d;
        let st = self.st;
        self.stratum_rules(ctes)?;
        let mut method_rules = vec!["-1".to_string()];
        let mut fixed = String::from("CASE rule_no");
        let mut shares: Vec<(usize, BigRational)> = Vec::new();
        for (j, r) in st.rules.iter().enumerate() {
            let amount = match &r.amount {
                None => {
                    method_rules.push(j.to_string());
                    continue;
                }
                Some(ir::RuleAmount::All) => "n_units".to_string(),
                Some(ir::RuleAmount::None) => "0".to_string(),
                Some(ir::RuleAmount::Count(k)) => {
                    format!("CASE WHEN n_units < {k} THEN n_units ELSE {k} END")
                }
                Some(ir::RuleAmount::Rate(p)) => {
                    // round_half_up(a/b × N_h) = (2a·N_h + b) div 2b
                    let (Some(a), Some(b)) = (small(p.numer()), small(p.denom())) else {
                        return Err(
                            self.unsupported("a `rate` with more than 15 significant digits")
                        );
                    };
                    format!(
                        "CAST({} AS BIGINT)",
                        d.int_div(
                            &format!("{} * {} + {b}", d.to_wide("n_units"), 2 * a),
                            &(2 * b).to_string()
                        )
                    )
                }
                Some(ir::RuleAmount::Share(p)) => {
                    shares.push((j, p.clone()));
                    continue;
                }
            };
            let _ = write!(fixed, " WHEN {j} THEN {amount}");
        }
        if fixed == "CASE rule_no" {
            fixed = "CAST(NULL AS BIGINT)".into();
        } else {
            fixed.push_str(" END");
        }
        let method_list = method_rules.join(", ");
        ctes.push(Cte {
            name: "rule_amounts",
            comment: "all, none, count K, rate P% per stratum; share strata and method strata below".into(),
            body: format!(
                "SELECT\n    stratum,\n    h,\n    u,\n    n_units,\n    rule_no,\n    \
                 CASE WHEN rule_no IN ({method_list}) THEN 1 ELSE 0 END AS is_method,\n    {fixed} AS fixed_take\n  FROM stratum_rules"
            ),
        });
        let mut share_join = String::new();
        let mut share_take = String::new();
        let mut share_check = String::new();
        if !shares.is_empty() {
            // Each P_r = c_r / den over a common denominator.
            let mut den = BigInt::one();
            for (_, p) in &shares {
                let (mut a, mut b) = (den.clone(), p.denom().clone());
                while !b.is_zero() {
                    (a, b) = (b.clone(), a % b);
                }
                den = &den / a * p.denom();
            }
            let sum: BigRational = shares.iter().map(|(_, p)| p.clone()).sum();
            let rows = shares
                .iter()
                .map(|(j, p)| {
                    let c = p.numer() * (&den / p.denom());
                    small(&c).map(|c| format!("SELECT {j} AS rule_no, {c} AS c"))
                })
                .collect::<Option<Vec<_>>>();
            let (Some(rows), Some(den), Some(sa), Some(sb)) =
                (rows, small(&den), small(sum.numer()), small(sum.denom()))
            else {
                return Err(
                    self.unsupported("`share` percentages with more than 15 significant digits")
                );
            };
            ctes.push(Cte {
                name: "share_rules",
                comment: format!("the `share` rules, P_r = c / {den}"),
                body: rows.join("\n  UNION ALL\n  "),
            });
            let scaled = format!("{} * r.c", d.to_wide("z.n_total"));
            ctes.push(Cte {
                name: "share_floors",
                comment: "P_r × n: floor and remainder".into(),
                body: format!(
                    "SELECT\n    r.rule_no,\n    CAST({} AS BIGINT) AS quota_total,\n    {} AS base,\n    ({scaled}) % {den} AS remainder\n  \
                     FROM share_rules r\n  CROSS JOIN sample_size z",
                    d.int_div(&format!("{} * {} + {sb}", d.to_wide("z.n_total"), 2 * sa), &(2 * sb).to_string()),
                    d.int_div(&scaled, &den.to_string()),
                ),
            });
            ctes.push(Cte {
                name: "share_quotas",
                comment: "round_half_up(ΣP × n) apportioned among the rules by largest remainder, ties to the rule listed first".into(),
                body: "SELECT\n    rule_no,\n    base + CASE WHEN ROW_NUMBER() OVER (ORDER BY remainder DESC, rule_no ASC) \
                       <= quota_total - SUM(base) OVER () THEN 1 ELSE 0 END AS quota\n  FROM share_floors"
                    .into(),
            });
            let message = format!(
                "{} || {} || {} || {} || {} || {}",
                self.s("strat: rule "),
                d.to_text("q.rule_no + 1"),
                self.s(" (`share`) gets a quota of "),
                d.to_text("q.quota"),
                self.s(" units but its strata hold only "),
                &format!(
                    "{} || {}",
                    d.to_text("COALESCE(SUM(a.n_units), 0)"),
                    self.s("; lower its share or lower `take`")
                )
            );
            ctes.push(Cte {
                name: "share_available",
                comment: "each share rule's quota and the units of its strata (a quota above them fails the query)".into(),
                body: format!(
                    "SELECT\n    q.rule_no,\n    q.quota,\n    COALESCE(SUM(a.n_units), 0) AS available\n  FROM share_quotas q\n  \
                     LEFT JOIN rule_amounts a ON a.rule_no = q.rule_no\n  GROUP BY q.rule_no, q.quota\n  \
                     HAVING CASE WHEN q.quota > COALESCE(SUM(a.n_units), 0) THEN {} ELSE TRUE END",
                    d.raise(&message)
                ),
            });
            let product = format!("{} * a.n_units", d.to_wide("q.quota"));
            ctes.push(Cte {
                name: "share_targets",
                comment: "each rule's quota over its strata ∝ N_h: floor and remainder".into(),
                body: format!(
                    "SELECT\n    a.stratum,\n    a.h,\n    a.u,\n    a.rule_no,\n    q.quota,\n    {} AS base,\n    ({product}) % q.available AS remainder\n  \
                     FROM rule_amounts a\n  JOIN share_available q ON a.rule_no = q.rule_no",
                    d.int_div(&product, "q.available")
                ),
            });
            ctes.push(Cte {
                name: "share_allocation",
                comment: "largest remainder within each share rule (§5.3)".into(),
                body: "SELECT\n    stratum,\n    base + CASE WHEN ROW_NUMBER() OVER (PARTITION BY rule_no ORDER BY remainder DESC, u ASC, h ASC) \
                       <= quota - SUM(base) OVER (PARTITION BY rule_no) THEN 1 ELSE 0 END AS n_take\n  FROM share_targets"
                    .into(),
            });
            share_join = "\n  LEFT JOIN share_allocation x ON a.stratum = x.stratum".into();
            share_take = "x.n_take, ".into();
            share_check =
                "\n  CROSS JOIN (SELECT COUNT(*) AS share_rules FROM share_available) c".into();
        }
        ctes.push(Cte {
            name: "rule_sizes",
            comment: "n_h of the strata a rule decides".into(),
            body: format!(
                "SELECT\n    a.stratum,\n    a.h,\n    a.u,\n    a.n_units,\n    a.is_method,\n    \
                 CAST(COALESCE(a.fixed_take, {share_take}0) AS BIGINT) AS rule_take\n  FROM rule_amounts a{share_join}"
            ),
        });
        ctes.push(Cte {
            name: "method_strata",
            comment: "the strata no rule decides: the method allocates them".into(),
            body: "SELECT stratum, h, u, n_units FROM rule_sizes WHERE is_method = 1".into(),
        });
        if take_all {
            return Ok(());
        }
        let rules_take = "SUM(CASE WHEN r.is_method = 0 THEN r.rule_take ELSE 0 END)";
        let negative = format!(
            "{} || {} || {} || {} || {}",
            self.s("strat: the rules take "),
            d.to_text(rules_take),
            self.s(" units but the total is "),
            d.to_text("MAX(z.n_total)"),
            self.s("; lower the rule amounts or raise `take`")
        );
        let no_method = format!(
            "{} || {} || {} || {} || {}",
            self.s("strat: the total is "),
            d.to_text("MAX(z.n_total)"),
            self.s(" but the rules take "),
            d.to_text(rules_take),
            self.s(
                " units and no stratum is left to the method; make the rules add up to the total, \
                    add `else => proportional`, or use `take all`"
            )
        );
        ctes.push(Cte {
            name: "method_total",
            comment: "R = n − Σ rule amounts, and the method strata's N and H (R < 0, or R ≠ 0 without method strata, fails the query)".into(),
            body: format!(
                "SELECT\n    MAX(z.n_total) - {rules_take} AS n_total,\n    \
                 SUM(r.is_method * r.n_units) AS big_n,\n    SUM(r.is_method) AS big_h\n  \
                 FROM sample_size z\n  LEFT JOIN rule_sizes r ON TRUE{share_check}\n  \
                 HAVING CASE WHEN MAX(z.n_total) < COALESCE({rules_take}, 0) THEN {}\n    \
                 WHEN COALESCE(SUM(r.is_method), 0) = 0 AND MAX(z.n_total) <> COALESCE({rules_take}, 0) THEN {}\n    \
                 ELSE TRUE END",
                d.raise(&negative),
                d.raise(&no_method)
            ),
        });
        Ok(())
    }

    fn split_ctes(&self, ctes: &mut Vec<Cte>, split: &ir::Split, filters: &str) -> R<()> {
        let d = self.d;
        let k = split.parts.len();
        if split.about {
            let shares: Vec<BigRational> = split.parts.iter().map(|(_, p)| p.clone()).collect();
            let mut case = String::from("CASE");
            let mut closed = false;
            for (i, t) in strat_alloc::about_thresholds(&shares)
                .into_iter()
                .enumerate()
            {
                match t {
                    None => {
                        let _ = write!(case, " ELSE {i} END");
                        closed = true;
                        break;
                    }
                    Some(0) => {}
                    Some(t) => {
                        let _ = write!(
                            case,
                            " WHEN {} < {} THEN {i}",
                            d.bytes_order("u.r"),
                            self.s(&format!("{t:016x}"))
                        );
                    }
                }
            }
            if !closed {
                let _ = write!(case, " ELSE {} END", k - 1);
            }
            let case = if case == "CASE ELSE 0 END" {
                "0".to_string()
            } else {
                case
            };
            ctes.push(Cte {
                name: "selected_units",
                comment: "about split (§4.2): the first split i with r < t_i = floor((P_1+…+P_i) × 2^64)".into(),
                body: format!(
                    "SELECT\n    u.unit_key,\n    u.unit_value,\n    u.r,\n    u.stratum,\n    s.h,\n    {case} AS split_index\n  FROM unit_strata u\n  \
                     JOIN strata s ON u.stratum = s.stratum"
                ),
            });
            return Ok(());
        }
        let bounds = self.split_boundaries(split)?;
        let bound_cols: String = bounds
            .iter()
            .enumerate()
            .map(|(i, b)| format!(",\n    CAST({b} AS BIGINT) AS b{i}"))
            .collect();
        ctes.push(Cte {
            name: "split_bounds",
            comment: "exact split (§4.2): each stratum's part boundaries B_i = floor(N_h·(P_1+…+P_i) + u_h)".into(),
            body: format!("SELECT\n    stratum,\n    h{}{bound_cols}\n  FROM strata", self.carried_values("")),
        });
        self.split_cut_ctes(ctes, bounds.len(), filters)?;
        if !self.splits_rows(split) {
            ctes.push(Cte {
                name: "selected_units",
                comment: "exact split (§4.2): each unit's part, from its draw order (r, key) against its stratum's cuts".into(),
                body: format!(
                    "SELECT\n    u.unit_key,\n    u.unit_value,\n    u.r,\n    u.stratum,\n    c.h,\n    {} AS split_index\n  \
                     FROM unit_strata u\n  JOIN split_cuts c ON u.stratum = c.stratum",
                    self.cut_case("u.r", "u.unit_key", "c", bounds.len(), &|i| i.to_string()).replace('\n', "\n    ")
                ),
            });
        }
        Ok(())
    }

    /// An exact split's boundaries B_1 … B_{k-1} as SQL over `n_units` and
    /// `u` (fewer where the shares reach 100 % early: the last is N_h).
    fn split_boundaries(&self, split: &ir::Split) -> R<Vec<String>> {
        let d = self.d;
        // B_i = floor(N_h·C_i + U/2^32) with C_i = num/den:
        //     = (N_h·num) div den + ((N_h·num) mod den · 2^32 + U·den) div (den · 2^32)
        // once per stratum; each unit compares its draw with the cuts.
        let mut bounds = Vec::new();
        let mut cumulative = BigRational::zero();
        for (_, p) in split.parts.iter().take(split.parts.len() - 1) {
            cumulative += p;
            if cumulative >= BigRational::one() {
                bounds.push("n_units".to_string());
                break;
            }
            let (Some(num), Some(den)) = (small(cumulative.numer()), small(cumulative.denom()))
            else {
                return Err(self.unsupported("split shares with more than 15 significant digits"));
            };
            let scaled = format!("{} * {num}", d.to_wide("n_units"));
            bounds.push(format!(
                "{} + {}",
                d.int_div(&scaled, &den.to_string()),
                d.int_div(
                    &format!("({scaled}) % {den} * 4294967296 + u * {den}"),
                    &(i128::from(den) << 32).to_string()
                )
            ));
        }
        Ok(bounds)
    }

    /// An exact split's cuts: the unit at each boundary B_i of a stratum
    /// (its B_i-th in draw order), found by ranking only the units of its
    /// draw bucket (about N_h/4,096), not all N_h — every unit up to it
    /// goes to the parts up to i.
    fn split_cut_ctes(&self, ctes: &mut Vec<Cte>, bounds: usize, filters: &str) -> R<()> {
        let d = self.d;
        if bounds == 0 {
            ctes.push(Cte {
                name: "split_cuts",
                comment: "one part: no cuts".into(),
                body: "SELECT stratum, h FROM split_bounds".into(),
            });
            return Ok(());
        }
        let values = self.carried_values("");
        let each_bound = (0..bounds)
            .map(|i| {
                format!(
                    "SELECT stratum, {i} AS i, b{i} AS bound{} FROM split_bounds",
                    values.replace("\n    ", " ")
                )
            })
            .collect::<Vec<_>>()
            .join("\n      UNION ALL\n      ");
        // Each stratum's running count of units by bucket, computed once
        // for all its boundaries; B_i lies in the bucket where it passes B_i.
        let stratum_key = match self.strata_by_value() {
            Some(_) => self.stratum_value_ids().join(", "),
            None => "stratum".to_string(),
        };
        let carried = if values.is_empty() {
            ",\n      stratum".to_string()
        } else {
            values.replace("\n    ", "\n      ")
        };
        ctes.push(Cte {
            name: "boundary_buckets",
            comment: "the draw bucket of each stratum's B_i-th unit, and how many units come in earlier buckets".into(),
            body: format!(
                "SELECT\n    c.stratum,\n    c.i,\n    c.bound{},\n    t.bucket,\n    t.through - t.n_units AS earlier\n  FROM (\n    \
                 SELECT\n      bucket,\n      n_units{carried},\n      \
                 SUM(n_units) OVER (PARTITION BY {stratum_key} ORDER BY {} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS through\n    \
                 FROM draw_buckets\n  ) t\n  JOIN (\n    {}\n  ) c ON {}\n  \
                 WHERE c.bound > 0 AND t.through >= c.bound AND t.through - t.n_units < c.bound",
                self.carried_values("c."),
                d.bytes_order("bucket"),
                each_bound.replace("\n      ", "\n    "),
                self.in_stratum("t", "stratum", "c"),
            ),
        });
        // Ranked with DENSE_RANK: read from the rows, a unit's rows tie.
        let units = if self.st.has_aggregates() {
            "unit_strata u".to_string()
        } else {
            format!("{} u", self.rows_with_draws(filters)?)
        };
        ctes.push(Cte {
            name: "boundary_units",
            comment: "the units in those buckets, ranked by draw (r, key) within the bucket".into(),
            body: format!(
                "SELECT\n    c.stratum,\n    c.i,\n    c.bound,\n    c.earlier,\n    u.r,\n    u.unit_key,\n    \
                 DENSE_RANK() OVER (PARTITION BY c.stratum, c.i ORDER BY {}, {}) AS bucket_rank\n  \
                 FROM {units}\n  JOIN boundary_buckets c ON {} AND substr(u.r, 1, {BUCKET_DIGITS}) = c.bucket",
                d.bytes_order("u.r"),
                d.bytes_order("u.unit_key"),
                self.in_stratum("u", "stratum", "c"),
            ),
        });
        let cut_cols: String = (0..bounds)
            .map(|i| {
                format!(
                    ",\n    MAX(CASE WHEN c.i = {i} THEN c.r END) AS r{i},\n    MAX(CASE WHEN c.i = {i} THEN c.unit_key END) AS k{i}"
                )
            })
            .collect();
        ctes.push(Cte {
            name: "split_cuts",
            comment: "each stratum's cuts: the draw r_i and key k_i of its B_i-th unit (none where B_i = 0)".into(),
            body: format!(
                "SELECT\n    s.stratum,\n    s.h{}{cut_cols}\n  FROM split_bounds s\n  \
                 LEFT JOIN (\n    SELECT stratum, i, r, unit_key FROM boundary_units WHERE earlier + bucket_rank = bound\n  ) c ON s.stratum = c.stratum\n  \
                 GROUP BY s.stratum, s.h{}",
                self.carried_values("s."),
                self.carried_values("s.").replace("\n    ", " "),
            ),
        });
        Ok(())
    }

    /// The part of a unit with draw `r` and key text `key` in a stratum
    /// whose cuts `split_cuts` gives: the first i whose cut (r_i, k_i) it
    /// does not come after in draw order, or the last part. A NULL cut
    /// (B_i = 0) takes no unit.
    fn cut_case(
        &self,
        r: &str,
        key: &str,
        cuts: &str,
        bounds: usize,
        part: &dyn Fn(usize) -> String,
    ) -> String {
        let d = self.d;
        if bounds == 0 {
            return part(0);
        }
        let whens: String = (0..bounds)
            .map(|i| {
                let (ri, ki) = (format!("{cuts}.r{i}"), format!("{cuts}.k{i}"));
                format!(
                    "\n  WHEN {} < {} OR ({r} = {ri} AND {} <= {}) THEN {}",
                    d.bytes_order(r),
                    d.bytes_order(&ri),
                    d.bytes_order(key),
                    d.bytes_order(&ki),
                    part(i),
                )
            })
            .collect();
        // Past the last cut: the part after it (the last, or none where
        // the shares reach 100 % before it and the cut is the last unit).
        format!("CASE{whens}\n  ELSE {} END", part(bounds))
    }

    /// The `_stratum` text of an eligible row `e` (its own stratum values).
    fn row_stratum_text(&self) -> R<String> {
        self.stratum_text_of(&|i| format!("e.{}", self.id(&format!("{S_PREFIX}{i}"))))
    }

    /// The `_stratum` text (§7.2) of the stratum values `value(0)`, `value(1)`, ….
    fn stratum_text_of(&self, value: &dyn Fn(usize) -> String) -> R<String> {
        if self.st.strata.is_empty() {
            return Ok(self.s(""));
        }
        let mut parts = Vec::new();
        for (i, s) in self.st.strata.iter().enumerate() {
            let text = self.key_text(&value(i), &s.expr.ty)?;
            let escaped = format!(
                "replace(replace(replace({text}, {}, {}), {}, {}), {}, {})",
                self.s("\\"),
                self.s("\\\\"),
                self.s("/"),
                self.s("\\/"),
                self.s("∅"),
                self.s("\\∅")
            );
            parts.push(format!("COALESCE({escaped}, {})", self.s("∅")));
        }
        Ok(parts.join(&format!("\n      || {} || ", self.s("/"))))
    }

    /// A stratum value as it sorts (§5.3): buckets by interval, strings by bytes.
    fn order_key(&self, value: &str, s: &ir::Stratum) -> String {
        if let Some(labels) = &s.bucket_labels {
            let mut case = format!("CASE {value}");
            for (i, l) in labels.iter().enumerate() {
                let _ = write!(case, " WHEN {} THEN {i}", self.s(l));
            }
            case.push_str(" END");
            return case;
        }
        self.value_order(value, &s.expr.ty)
    }

    /// A value of type `ty` as it sorts in strat: strings by bytes, booleans
    /// false before true.
    fn value_order(&self, value: &str, ty: &Type) -> String {
        match ty {
            Type::String => self.d.bytes_order(value),
            // false before true, as an integer (PostgreSQL has no MIN(boolean)).
            Type::Bool => format!("CASE WHEN {value} THEN 1 WHEN NOT {value} THEN 0 END"),
            _ => value.to_string(),
        }
    }

    /// The key text (§6) of a value of type `ty`; NULL for NULL.
    fn key_text(&self, e: &str, ty: &Type) -> R<String> {
        let d = self.d;
        Ok(match ty {
            Type::Int => d.to_text(e),
            Type::String => e.to_string(),
            Type::Date => d.date_text(e),
            Type::Bool => format!(
                "CASE WHEN {e} THEN {} WHEN NOT {e} THEN {} END",
                self.s("true"),
                self.s("false")
            ),
            // Whole seconds only: engines write sub-second digits differently,
            // so a timestamp with them fails the query.
            Type::Timestamp => {
                let text = format!("({})", Dialect::fill(d.spelling().timestamp_text, &[e]));
                let message = format!(
                    "{} || {text} || {}",
                    self.s("strat: the timestamp "),
                    self.s(
                        " has a sub-second part, which `strat sql` cannot write as strat does; use `strat run`"
                    )
                );
                format!(
                    "CASE WHEN {e} IS NULL THEN NULL WHEN date_trunc('second', {e}) = {e} THEN {text} WHEN {} THEN NULL END",
                    d.raise(&message)
                )
            }
            Type::Null => d.cast("NULL", d.spelling().text_type),
            other => return Err(self.unsupported(format!("the key text of a {other} value"))),
        })
    }

    fn operand(&self, e: &ir::Expr, float: bool) -> R<String> {
        let x = self.expr(e)?;
        Ok(if float && e.ty == Type::Decimal {
            self.d.to_double(&x)
        } else {
            x
        })
    }

    /// A checked expression in this dialect, with the language's semantics.
    fn expr(&self, e: &ir::Expr) -> R<String> {
        let d = self.d;
        Ok(match &e.kind {
            ExprKind::Column(name) => self.id(name),
            // Only in rule predicates, evaluated over the `strata` CTE's values.
            ExprKind::Stratum(i) => self.id(&format!("{S_PREFIX}{i}")),
            ExprKind::Literal(v) => self.literal(v)?,
            ExprKind::Unary {
                op: UnaryOp::Not,
                expr,
            } => format!("(NOT {})", self.expr(expr)?),
            ExprKind::Unary {
                op: UnaryOp::Neg,
                expr,
            } => format!("(- {})", self.expr(expr)?),
            ExprKind::Binary { op, left, right } => {
                let float = [&left.ty, &right.ty].contains(&&Type::Float) || e.ty == Type::Float;
                let (mut l, mut r) = (self.operand(left, float)?, self.operand(right, float)?);
                let ordering = matches!(
                    op,
                    BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq
                );
                if ordering && (left.ty == Type::String || right.ty == Type::String) {
                    l = d.bytes_order(&l);
                    r = d.bytes_order(&r);
                }
                let sym = match op {
                    BinaryOp::Or => "OR",
                    BinaryOp::And => "AND",
                    BinaryOp::Eq => "=",
                    BinaryOp::NotEq => "<>",
                    BinaryOp::Lt => "<",
                    BinaryOp::LtEq => "<=",
                    BinaryOp::Gt => ">",
                    BinaryOp::GtEq => ">=",
                    BinaryOp::Add => "+",
                    BinaryOp::Sub => "-",
                    BinaryOp::Mul => "*",
                    BinaryOp::Div => {
                        return Ok(format!("({} / {})", d.to_double(&l), d.to_double(&r)));
                    }
                };
                if matches!(op, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul)
                    && e.ty == Type::Int
                    && d == Dialect::DataFusion
                {
                    return Err(self.unsupported(
                        "integer `+ - *` (DataFusion's SQL wraps on overflow where strat fails)",
                    ));
                }
                format!("({l} {sym} {r})")
            }
            ExprKind::InList {
                expr,
                list,
                negated,
            } => {
                let float = std::iter::once(&**expr)
                    .chain(list)
                    .any(|x| x.ty == Type::Float);
                let items = list
                    .iter()
                    .map(|x| self.operand(x, float))
                    .collect::<R<Vec<_>>>()?;
                let not = if *negated { "NOT " } else { "" };
                format!(
                    "({} {not}IN ({}))",
                    self.operand(expr, float)?,
                    items.join(", ")
                )
            }
            ExprKind::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let float = [&expr.ty, &low.ty, &high.ty].contains(&&Type::Float);
                let mut parts = [
                    self.operand(expr, float)?,
                    self.operand(low, float)?,
                    self.operand(high, float)?,
                ];
                if expr.ty == Type::String {
                    for p in &mut parts {
                        *p = d.bytes_order(p);
                    }
                }
                let not = if *negated { "NOT " } else { "" };
                format!("({} {not}BETWEEN {} AND {})", parts[0], parts[1], parts[2])
            }
            ExprKind::IsNull { expr, negated } => {
                format!(
                    "({} IS {}NULL)",
                    self.expr(expr)?,
                    if *negated { "NOT " } else { "" }
                )
            }
            ExprKind::Like {
                expr,
                pattern,
                negated,
            } => {
                let literal = match &pattern.kind {
                    ExprKind::Literal(Value::String(p)) => Some(p.as_str()),
                    _ => None,
                };
                d.like(&self.expr(expr)?, &self.expr(pattern)?, literal, *negated)
            }
            ExprKind::Func { func, args } => self.function(*func, args, &e.ty)?,
            ExprKind::Case { whens, otherwise } => {
                let float = e.ty == Type::Float;
                let mut out = String::from("CASE");
                for (w, t) in whens {
                    let _ = write!(
                        out,
                        " WHEN {} THEN {}",
                        self.expr(w)?,
                        self.operand(t, float)?
                    );
                }
                if let Some(o) = otherwise {
                    let _ = write!(out, " ELSE {}", self.operand(o, float)?);
                }
                out.push_str(" END");
                out
            }
            ExprKind::Bucket {
                expr,
                edges,
                labels,
            } => {
                let float = expr.ty == Type::Float;
                let x = self.expr(expr)?;
                let mut out = format!("CASE WHEN {x} IS NULL THEN NULL");
                for (edge, label) in edges.iter().zip(labels) {
                    let mut b = self.literal(edge)?;
                    if float && matches!(edge, Value::Decimal(_)) {
                        b = d.to_double(&b);
                    }
                    let _ = write!(out, " WHEN {x} < {b} THEN {}", self.s(label));
                }
                let _ = write!(
                    out,
                    " ELSE {} END",
                    self.s(labels.last().map_or("", String::as_str))
                );
                out
            }
            ExprKind::Aggregate { .. } => return Err(self.unsupported("a unit aggregate")),
        })
    }

    fn function(&self, func: Func, args: &[ir::Expr], ty: &Type) -> R<String> {
        let d = self.d;
        let a = |i: usize| self.expr(&args[i]);
        Ok(match func {
            // Engines map non-ASCII letters differently (and PostgreSQL by
            // locale): ASCII letters are mapped with `translate`, and a
            // non-ASCII value fails the query.
            Func::Lower | Func::Upper if d != Dialect::DataFusion => {
                let (name, from, to) = if func == Func::Lower {
                    (
                        "lower",
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                        "abcdefghijklmnopqrstuvwxyz",
                    )
                } else {
                    (
                        "upper",
                        "abcdefghijklmnopqrstuvwxyz",
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                    )
                };
                let x = a(0)?;
                if let ExprKind::Literal(v) = &args[0].kind {
                    return match v {
                        Value::String(t) if t.is_ascii() => Ok(self.s(&if func == Func::Lower {
                            t.to_ascii_lowercase()
                        } else {
                            t.to_ascii_uppercase()
                        })),
                        Value::Null => Ok(x),
                        _ => Err(self.unsupported(format!("`{name}` of a non-ASCII literal"))),
                    };
                }
                let message = format!(
                    "{} || {x} || {}",
                    self.s(&format!("strat: `{name}` of the non-ASCII value ")),
                    self.s(&format!(
                        " cannot be exported to {d}, whose case mapping differs from strat; use `strat run`"
                    ))
                );
                format!(
                    "CASE WHEN {x} IS NULL THEN NULL WHEN {} THEN translate({x}, {}, {}) WHEN {} THEN NULL END",
                    Dialect::fill(d.spelling().ascii_only, &[&x]),
                    self.s(from),
                    self.s(to),
                    d.raise(&message)
                )
            }
            Func::Lower => format!("lower({})", a(0)?),
            Func::Upper => format!("upper({})", a(0)?),
            Func::Length => {
                let f = if d == Dialect::DataFusion {
                    "character_length"
                } else {
                    "length"
                };
                d.cast(&format!("{f}({})", a(0)?), "BIGINT")
            }
            Func::Trim => format!("trim({})", a(0)?),
            Func::Substr => {
                let positive_literal = |x: &ir::Expr, min: i64| matches!(x.kind, ExprKind::Literal(Value::Int(i)) if i >= min);
                if !positive_literal(&args[1], 1)
                    || args.get(2).is_some_and(|l| !positive_literal(l, 0))
                {
                    return Err(self.unsupported(
                        "`substr` with a start below 1, or a length that is not a literal",
                    ));
                }
                let rest = args[1..]
                    .iter()
                    .map(|x| self.expr(x))
                    .collect::<R<Vec<_>>>()?;
                format!("substr({}, {})", a(0)?, rest.join(", "))
            }
            Func::Coalesce => {
                let float = *ty == Type::Float;
                let items = args
                    .iter()
                    .map(|x| self.operand(x, float))
                    .collect::<R<Vec<_>>>()?;
                format!("COALESCE({})", items.join(", "))
            }
            Func::Abs => format!("abs({})", a(0)?),
            Func::Year | Func::Month | Func::Day => {
                let part = match func {
                    Func::Year => "YEAR",
                    Func::Month => "MONTH",
                    _ => "DAY",
                };
                d.cast(&format!("EXTRACT({part} FROM {})", a(0)?), "BIGINT")
            }
            Func::Floor | Func::Ceil if args[0].ty == Type::Int => a(0)?,
            Func::Floor | Func::Ceil => {
                let f = if func == Func::Floor { "floor" } else { "ceil" };
                d.cast(&format!("{f}({})", a(0)?), "BIGINT")
            }
            Func::Round if args[0].ty == Type::Int => a(0)?,
            // Half away from zero, as strat (not the engines' `round`, which is
            // half-even for PostgreSQL floats): x − floor(x) is exact.
            Func::Round => {
                let x = a(0)?;
                d.cast(
                    &format!(
                        "CASE WHEN {x} >= 0 THEN floor({x}) + CASE WHEN {x} - floor({x}) >= 0.5 THEN 1 ELSE 0 END \
                         ELSE ceil({x}) - CASE WHEN ceil({x}) - {x} >= 0.5 THEN 1 ELSE 0 END END"
                    ),
                    "BIGINT",
                )
            }
        })
    }

    fn literal(&self, v: &Value) -> R<String> {
        let d = self.d;
        Ok(match v {
            Value::Null => "NULL".into(),
            Value::Int(i) if *i < 0 => d.cast(&self.s(&i.to_string()), "BIGINT"),
            Value::Int(i) => i.to_string(),
            Value::Float(f) if f.is_finite() => d.to_double(&self.s(&format!("{f:?}"))),
            Value::Float(_) => return Err(self.unsupported("a NaN or infinite float literal")),
            Value::Decimal(text) => {
                let digits = text.trim_start_matches('-').replace('.', "");
                let scale = text.split_once('.').map_or(0, |(_, f)| f.len());
                let precision = digits.trim_start_matches('0').len().max(scale).max(1);
                if precision > 38 {
                    return Err(self.unsupported("a decimal literal of more than 38 digits"));
                }
                d.cast(&self.s(text), &format!("DECIMAL({precision},{scale})"))
            }
            Value::String(s) => self.s(s),
            Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
            Value::Date(s) => {
                if s.starts_with('-') || s.len() != 10 {
                    return Err(
                        self.unsupported(format!("the date @{s} (outside years 0000–9999)"))
                    );
                }
                format!("DATE {}", self.s(s))
            }
            Value::Timestamp(t) => format!("TIMESTAMP {}", self.s(&t.replacen('T', " ", 1))),
        })
    }
}

/// An integer that a double holds exactly and every engine reads as a literal.
fn small(x: &BigInt) -> Option<i64> {
    x.to_i64().filter(|v| v.unsigned_abs() < (1u64 << 50))
}

#[cfg(test)]
mod tests;
