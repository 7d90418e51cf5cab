//! Resolution and type checking of a parsed rule file (spec §2–§5, errors of §8).

use std::collections::{BTreeMap, HashMap};

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Zero};

use strat_syntax::ast::{self, ExprKind as AK};
use strat_syntax::diagnostic::closest;
use strat_syntax::{Diagnostic, Span};

use crate::ir::{self, Aggregate, ExprKind, Func, Output};
use crate::types::{Column, Type, Value, percent_text};

/// What the checker knows besides the file: table schemas and `--param` values.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// Bound tables; `None` for a table whose schema could not be read (already reported).
    pub tables: BTreeMap<String, Option<Vec<Column>>>,
    /// `--param NAME=VALUE` overrides, in the order given.
    pub params: Vec<(String, String)>,
}

/// The result of checking: the program when there is no error, and all findings.
#[derive(Debug)]
pub struct Checked {
    pub program: Option<ir::Program>,
    pub diagnostics: Vec<Diagnostic>,
}

const FUNCTIONS: &[&str] = &[
    "lower", "upper", "length", "trim", "substr", "coalesce", "abs", "year", "month", "day",
    "round", "floor", "ceil", "bucket", "count", "min", "max", "sum", "avg", "first", "last",
    "mode",
];
const AGGREGATES: &[&str] = &["count", "min", "max", "sum", "avg", "first", "last", "mode"];
const MAX_SEED: u64 = (1u64 << 63) - 1;

/// Checks `file` (whose text is `src`) against `env`.
pub fn check(src: &str, file: &ast::File, env: &Env) -> Checked {
    // Expressions may be hundreds of levels deep (the parser bounds them); the
    // recursive checker gets a stack that does not depend on the caller's.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("strat-check".into())
            .stack_size(256 << 20)
            .spawn_scoped(scope, || check_here(src, file, env))
            .expect("spawn the checker thread")
            .join()
            .expect("the checker does not panic")
    })
}

fn check_here(src: &str, file: &ast::File, env: &Env) -> Checked {
    let mut cx = Checker {
        src,
        env,
        diags: Vec::new(),
        params: HashMap::new(),
        tables_used: Vec::new(),
    };
    let program = cx.file(file);
    let has_error = cx.diags.iter().any(Diagnostic::is_error);
    Checked {
        program: if has_error { None } else { program },
        diagnostics: cx.diags,
    }
}

struct Param {
    value: Value,
}

mod as_of;

struct Checker<'a> {
    src: &'a str,
    env: &'a Env,
    diags: Vec<Diagnostic>,
    params: HashMap<String, Param>,
    tables_used: Vec<ir::TableRef>,
}

/// A stratum as rule predicates see it: normalised text, `as` name, and type
/// (`None` when the stratum expression did not check).
type StratumInfo = (String, Option<String>, Option<Type>);

/// What names mean where an expression is checked.
struct Scope<'s> {
    /// The source's columns; `None` when the source is unknown (column errors are then suppressed).
    columns: Option<&'s [Column]>,
    /// Unit aggregates allowed here (`stratify by` with `unit`)?
    aggregates: AggregateUse,
    /// In a rule predicate: the strata (normalised text, alias, type).
    strata: Option<&'s [StratumInfo]>,
    /// In `having`: a column may be read only inside a unit aggregate.
    unit_level: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum AggregateUse {
    Allowed,
    NoUnit,
    NotHere,
    Inside,
}

impl<'a> Checker<'a> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn text(&self, span: Span) -> &'a str {
        &self.src[span.start.min(self.src.len())..span.end.min(self.src.len())]
    }

    fn file(&mut self, file: &ast::File) -> Option<ir::Program> {
        // Declarations first: they are visible everywhere in the file.
        let mut table_decls: HashMap<&str, Span> = HashMap::new();
        for item in &file.items {
            match item {
                ast::Item::Table(t) => {
                    if let Some(prev) = table_decls.insert(&t.name.name, t.name.span) {
                        self.err(
                            Diagnostic::error(
                                "E0120",
                                format!("table `{}` is declared twice", t.name.name),
                            )
                            .at(t.name.span)
                            .with_secondary(prev, "first declared here")
                            .with_help("remove one declaration or give the table another name"),
                        );
                    }
                }
                ast::Item::Param(p) => self.param_decl(p),
                ast::Item::Statement(_) => {}
            }
        }
        self.param_overrides();

        let mut statements: Vec<ir::Statement> = Vec::new();
        let mut names: HashMap<String, (usize, Span)> = HashMap::new();
        let all_names: Vec<(String, Span)> = file
            .items
            .iter()
            .filter_map(|i| match i {
                ast::Item::Statement(s) => s.name.as_ref().map(|n| (n.name.clone(), n.span)),
                _ => None,
            })
            .collect();
        let mut complete = true;
        let mut index = 0;
        for item in &file.items {
            let ast::Item::Statement(st) = item else {
                continue;
            };
            if let Some(n) = &st.name {
                if let Some((_, prev)) = names.get(&n.name) {
                    let prev = *prev;
                    self.err(
                        Diagnostic::error(
                            "E0120",
                            format!("a statement named `{}` is already defined", n.name),
                        )
                        .at(n.span)
                        .with_secondary(prev, "first defined here")
                        .with_help("give each statement its own name"),
                    );
                } else if table_decls.contains_key(n.name.as_str())
                    || self.env.tables.contains_key(&n.name)
                {
                    self.err(
                        Diagnostic::error(
                            "E0120",
                            format!("`{}` names both a table and a statement", n.name),
                        )
                        .at(n.span)
                        .with_help("rename the statement so that sources are unambiguous"),
                    );
                } else {
                    names.insert(n.name.clone(), (index, n.span));
                }
            }
            match self.statement(st, &statements, &names, &all_names) {
                Some(s) => statements.push(s),
                None => {
                    complete = false;
                    // Keep indices aligned for later sources: a placeholder that is never lowered.
                    statements.push(placeholder(st));
                }
            }
            index += 1;
        }
        complete.then(|| ir::Program {
            tables: std::mem::take(&mut self.tables_used),
            statements,
        })
    }

    // ------------------------------------------------------------- params

    fn param_decl(&mut self, p: &ast::ParamDecl) {
        if let Some(prev) = self.params.get(&p.name.name) {
            let _ = prev;
            self.err(
                Diagnostic::error(
                    "E0120",
                    format!("param `{}` is declared twice", p.name.name),
                )
                .at(p.name.span)
                .with_help("remove one of the declarations"),
            );
            return;
        }
        let value = match self.literal(&p.value) {
            Some(v) => v,
            None => {
                self.params
                    .insert(p.name.name.clone(), Param { value: Value::Null });
                return;
            }
        };
        let value = match (p.ty, value) {
            (ast::ParamType::Float, Value::Int(i)) => Value::Float(i as f64),
            (ast::ParamType::Float, Value::Decimal(d)) => {
                Value::Float(d.parse().unwrap_or(f64::NAN))
            }
            (_, v) => v,
        };
        let expected = param_type(p.ty);
        if value.ty() != expected && value != Value::Null {
            self.err(
                Diagnostic::error(
                    "E0106",
                    format!(
                        "param `{}` is declared `{}` but its value is {}",
                        p.name.name,
                        p.ty.as_str(),
                        a(&value.ty())
                    ),
                )
                .at(p.value.span())
                .with_secondary(p.ty_span, "declared type")
                .with_help(format!(
                    "write {} value, or change the type",
                    a_word(p.ty.as_str())
                )),
            );
            // Known but unusable: later uses are not reported again.
            self.params
                .insert(p.name.name.clone(), Param { value: Value::Null });
            return;
        }
        self.params.insert(p.name.name.clone(), Param { value });
    }

    fn param_overrides(&mut self) {
        for (name, raw) in &self.env.params {
            let Some(param) = self.params.get(name) else {
                let mut d = Diagnostic::error(
                    "E0103",
                    format!("--param {name}: the file declares no param `{name}`"),
                );
                d = match closest(name, self.params.keys().map(String::as_str)) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("declare it in the file: `param {name}: int = …`")),
                };
                self.diags.push(d);
                continue;
            };
            let ty = param.value.ty();
            match parse_param_value(&ty, raw) {
                Some(v) => self.params.get_mut(name).unwrap().value = v,
                None => self.diags.push(
                    Diagnostic::error(
                        "E0124",
                        format!("--param {name}={raw}: `{raw}` is not a valid {ty}"),
                    )
                    .with_help(param_example(&ty)),
                ),
            }
        }
    }

    // ------------------------------------------------------------- statements

    fn source(
        &mut self,
        ident: &ast::Ident,
        statements: &[ir::Statement],
        names: &HashMap<String, (usize, Span)>,
        all_names: &[(String, Span)],
    ) -> Option<(ir::Source, Option<Vec<Column>>)> {
        if let Some((i, _)) = names.get(&ident.name)
            && *i < statements.len()
        {
            let st = &statements[*i];
            let cols = if st.span.is_empty() {
                None
            } else {
                Some(st.output_columns())
            };
            return Some((ir::Source::Statement(*i), cols));
        }
        if let Some(schema) = self.env.tables.get(&ident.name) {
            if let Some(cols) = schema
                && !self.tables_used.iter().any(|t| t.name == ident.name)
            {
                self.tables_used.push(ir::TableRef {
                    name: ident.name.clone(),
                    columns: cols.clone(),
                });
            }
            return Some((ir::Source::Table(ident.name.clone()), schema.clone()));
        }
        if let Some((_, later)) = all_names.iter().find(|(n, _)| *n == ident.name) {
            self.err(
                Diagnostic::error(
                    "E0121",
                    format!("`{}` is used before it is defined", ident.name),
                )
                .at(ident.span)
                .with_secondary(*later, "defined here, later in the file")
                .with_help("move this statement below the one it reads from"),
            );
            return None;
        }
        let candidates: Vec<&str> = self
            .env
            .tables
            .keys()
            .map(String::as_str)
            .chain(names.keys().map(String::as_str))
            .collect();
        let mut d = Diagnostic::error("E0101", format!("unknown table `{}`", ident.name))
            .at(ident.span)
            .with_label("no table or earlier statement has this name");
        let bind = format!(
            "bind it in the file with `table {0} = \"path/to/{0}.parquet\"` or on the command line with `--table {0}=PATH`",
            ident.name
        );
        d = match closest(&ident.name, candidates) {
            Some(s) => d.with_help(format!("did you mean `{s}`? Otherwise {bind}")),
            None => d.with_help(bind),
        };
        self.err(d);
        None
    }

    fn statement(
        &mut self,
        st: &ast::Statement,
        statements: &[ir::Statement],
        names: &HashMap<String, (usize, Span)>,
        all_names: &[(String, Span)],
    ) -> Option<ir::Statement> {
        let errors_before = self.error_count();
        let (source, columns) = match self.source(&st.source, statements, names, all_names) {
            Some((s, c)) => (Some(s), c),
            None => (None, None),
        };
        let cols = columns.as_deref();
        let scope = Scope {
            columns: cols,
            aggregates: AggregateUse::NotHere,
            strata: None,
            unit_level: false,
        };

        let as_of = st.as_of.as_ref().and_then(|a| self.as_of(a, st, cols));

        let filter = st.filter.as_ref().and_then(|e| {
            let x = self.expr(e, &scope)?;
            self.expect_bool(&x, e.span, "a `where` condition");
            Some(x)
        });

        let unit = st.unit.as_ref().and_then(|u| {
            let c = self.column(u, cols)?;
            if !c.ty.is_keyable() && c.ty != Type::Null {
                self.err(
                    Diagnostic::error("E0117", format!("unit column `{}` is {}; a unit must be an integer, string, date or bool", c.name, a(&c.ty)))
                        .at(u.span)
                        .with_help("pick an id column, or cast it upstream (a unit's key text must be exact, spec §6)"),
                );
                return None;
            }
            Some(c)
        });

        let having = st.having.as_ref().and_then(|h| {
            if st.unit.is_none() {
                self.err(
                    Diagnostic::error("E0118", "`having` needs a `unit` column")
                        .at(h.span)
                        .with_help("add `unit COLUMN` before `having`: `having` keeps or drops whole units by their aggregates, e.g. `unit member_id having count(*) >= 5`"),
                );
                return None;
            }
            let hscope = Scope {
                columns: cols,
                aggregates: AggregateUse::Allowed,
                strata: None,
                unit_level: true,
            };
            let x = self.expr(h, &hscope)?;
            self.expect_bool(&x, h.span, "a `having` condition");
            Some(ir::Having {
                expr: x,
                text: strat_syntax::format::collapse(self.text(h.span)),
            })
        });
        let keep = st
            .keep
            .as_ref()
            .and_then(|x| self.unit_source("keep", x, st, statements, names, all_names));
        let exclude = st
            .exclude
            .as_ref()
            .and_then(|x| self.unit_source("exclude", x, st, statements, names, all_names));

        // Strata.
        let agg_use = if st.unit.is_some() {
            AggregateUse::Allowed
        } else {
            AggregateUse::NoUnit
        };
        let sscope = Scope {
            columns: cols,
            aggregates: agg_use,
            strata: None,
            unit_level: false,
        };
        let mut strata = Vec::new();
        // Per stratum item: its text, `as` name and type (None when it did not check).
        let mut strata_info: Vec<StratumInfo> = Vec::new();
        let mut seen_names: HashMap<String, Span> = HashMap::new();
        for item in &st.strata {
            let checked = self.expr(&item.expr, &sscope);
            strata_info.push((
                normalise(self.text(item.expr.span)),
                item.alias.as_ref().map(|a| a.name.clone()),
                checked.as_ref().map(|x| x.ty.clone()),
            ));
            let Some(x) = checked else { continue };
            if matches!(x.ty, Type::Float | Type::Decimal | Type::Other(_)) {
                self.err(
                    Diagnostic::error(
                        "E0109",
                        format!("a stratum cannot be {} expression", a(&x.ty)),
                    )
                    .at(item.expr.span)
                    .with_label(format!("this is {}", a(&x.ty)))
                    .with_help(format!(
                        "use `bucket({0}, [edges])` or `round({0})` to make it discrete",
                        self.text(item.expr.span)
                    )),
                );
                continue;
            }
            let name = match &item.alias {
                Some(a) => {
                    let is_same_column = matches!(&item.expr.kind, AK::Name(n) if n.name == a.name);
                    if !is_same_column && cols.is_some_and(|c| c.iter().any(|c| c.name == a.name)) {
                        self.err(
                            Diagnostic::error(
                                "E0129",
                                format!(
                                    "`as {}` would hide the column `{}` of the source",
                                    a.name, a.name
                                ),
                            )
                            .at(a.span)
                            .with_help(format!(
                                "choose another name, e.g. `as {}_stratum`",
                                a.name
                            )),
                        );
                    }
                    a.name.clone()
                }
                None => normalise(self.text(item.expr.span)),
            };
            if let Some(prev) = seen_names.insert(name.clone(), item.span) {
                self.err(
                    Diagnostic::error("E0129", format!("stratum `{name}` is listed twice"))
                        .at(item.span)
                        .with_secondary(prev, "first listed here")
                        .with_help("remove the repeat, or give each stratum its own `as` name"),
                );
            }
            let bucket_labels = match &x.kind {
                ExprKind::Bucket { labels, .. } => Some(labels.clone()),
                _ => None,
            };
            strata.push(ir::Stratum {
                name,
                has_alias: item.alias.is_some(),
                expr: x,
                bucket_labels,
            });
        }

        // Amounts.
        let amount = match &st.take {
            None => ir::Amount::All,
            Some(t) => match &t.amount {
                ast::TakeAmount::All => ir::Amount::All,
                ast::TakeAmount::Count(n) => {
                    ir::Amount::Count(self.int_value(n, "take").unwrap_or(0))
                }
                ast::TakeAmount::Percent(p) => {
                    ir::Amount::Fraction(self.percent(p).unwrap_or_else(BigRational::zero))
                }
                ast::TakeAmount::About(Some(p)) => {
                    ir::Amount::About(self.percent(p).unwrap_or_else(BigRational::zero))
                }
                ast::TakeAmount::About(None) => ir::Amount::AboutRates,
            },
        };
        let about = amount.is_about();
        let has_total = matches!(amount, ir::Amount::Count(_) | ir::Amount::Fraction(_));

        let mut method: Option<(ir::Method, Span)> = None;
        let mut rules = Vec::new();
        match &st.allocate {
            None => {}
            Some(ast::Allocate::Method { method: m, span }) => {
                if let Some(m) = self.method(m, cols) {
                    method = Some((m, *span));
                }
            }
            Some(ast::Allocate::Rules { rules: rs, .. }) => {
                let rscope = Scope {
                    columns: cols,
                    aggregates: AggregateUse::NotHere,
                    strata: Some(&strata_info),
                    unit_level: false,
                };
                let mut share_sum = BigRational::zero();
                let mut first_share: Option<Span> = None;
                for r in rs {
                    let predicate = match &r.predicate {
                        Some(p) => match self.expr(p, &rscope) {
                            Some(x) => {
                                self.expect_bool(&x, p.span, "a rule");
                                Some(x)
                            }
                            None => None,
                        },
                        None => None,
                    };
                    let amount = match &r.amount {
                        ast::Amount::All => Some(ir::RuleAmount::All),
                        ast::Amount::None => Some(ir::RuleAmount::None),
                        ast::Amount::Count(k) => {
                            if about {
                                self.err(self.about_conflict("count", r.amount_span, st));
                            }
                            Some(ir::RuleAmount::Count(
                                self.int_value(k, "count").unwrap_or(0),
                            ))
                        }
                        ast::Amount::Rate(p) => Some(ir::RuleAmount::Rate(
                            self.percent(p).unwrap_or_else(BigRational::zero),
                        )),
                        ast::Amount::Share(p) => {
                            if about {
                                self.err(self.about_conflict("share", r.amount_span, st));
                            } else if !has_total {
                                self.err(
                                    Diagnostic::error("E0114", "`share` needs a total: `take INT` or `take P%`")
                                        .at(r.amount_span)
                                        .with_secondary(st.take.as_ref().map_or(st.keyword_span, |t| t.span), if st.take.is_some() { "this `take` fixes no total" } else { "this statement has no `take`" })
                                        .with_help("add e.g. `take 100_000` so that the share has a total to be a part of, or use `rate P%`"),
                                );
                            }
                            let v = self.percent(p).unwrap_or_else(BigRational::zero);
                            share_sum += &v;
                            first_share.get_or_insert(r.amount_span);
                            Some(ir::RuleAmount::Share(v))
                        }
                        ast::Amount::Method(m) => {
                            if let Some(m2) = self.method(m, cols) {
                                self.set_method(&mut method, m2, r.amount_span);
                            }
                            None
                        }
                    };
                    rules.push(ir::Rule {
                        predicate,
                        amount,
                        span: r.span,
                    });
                }
                if share_sum > BigRational::one() {
                    self.err(
                        Diagnostic::error(
                            "E0111",
                            format!(
                                "the shares add up to {}%, more than 100%",
                                percent_text(&share_sum)
                            ),
                        )
                        .at(first_share.unwrap_or(st.span))
                        .with_help("lower the shares so that together they are at most 100%"),
                    );
                }
                if st.min.is_some() || st.max.is_some() {
                    let at = st
                        .min
                        .as_ref()
                        .or(st.max.as_ref())
                        .map(|v| v.span())
                        .unwrap_or(st.span);
                    self.diags.push(
                        Diagnostic::note("W0003", "`min`/`max` bound only the strata that the method allocates, not those a rule decides")
                            .at(at)
                            .with_help("to bound a rule's strata, change the rule's amount (e.g. `count K`)"),
                    );
                }
            }
        }
        let method = method.map(|(m, _)| m).unwrap_or(ir::Method::Proportional);
        if amount == ir::Amount::AboutRates {
            self.rates_for_every_stratum(st);
        }

        let min = st.min.as_ref().and_then(|v| self.int_value(v, "min"));
        let max = st.max.as_ref().and_then(|v| self.int_value(v, "max"));
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            self.err(
                Diagnostic::error(
                    "E0113",
                    format!("`min {lo} per stratum` is larger than `max {hi} per stratum`"),
                )
                .at(st.min.as_ref().unwrap().span())
                .with_secondary(st.max.as_ref().unwrap().span(), "the max")
                .with_help("make min at most max"),
            );
        }

        let seed = match &st.seed {
            Some(v) => match self.int_value(v, "seed") {
                Some(s) if s > MAX_SEED => {
                    self.err(
                        Diagnostic::error("E0126", format!("seed {s} is larger than 2^63-1"))
                            .at(v.span())
                            .with_help("pick a seed from 0 to 9223372036854775807"),
                    );
                    0
                }
                Some(s) => s,
                None => 0,
            },
            None => {
                self.diags.push(
                    Diagnostic::warning("W0001", format!("this {} has no seed, so it uses seed 0", st.kind.as_str()))
                        .at(st.keyword_span)
                        .with_help("add `seed N` with a number of your own: every unseeded rule file in the world picks the same units"),
                );
                0
            }
        };

        let split = st.into.as_ref().and_then(|into| self.split(into));

        // Correlated draws with the source statement.
        if let Some(ir::Source::Statement(i)) = &source
            && statements[*i].seed == seed
            && !statements[*i].span.is_empty()
        {
            self.diags.push(
                Diagnostic::warning(
                    "W0002",
                    format!(
                        "this statement and its source `{}` use the same seed {seed}",
                        st.source.name
                    ),
                )
                .at(st.seed.as_ref().map_or(st.keyword_span, |s| s.span()))
                .with_secondary(statements[*i].span, "the source statement")
                .with_help("give each statement its own seed, or their draws are correlated"),
            );
        }

        let output = self.output(st, cols, &strata);

        if self.error_count() > errors_before {
            return None;
        }
        Some(ir::Statement {
            name: st.name.as_ref().map(|n| n.name.clone()),
            kind: match st.kind {
                ast::StatementKind::Sample => ir::Kind::Sample,
                // The grammar requires `into`; a bad one is an error above.
                ast::StatementKind::Split => ir::Kind::Split(split?),
            },
            span: st.span,
            source: source?,
            input: columns.unwrap_or_default(),
            as_of,
            filter,
            unit,
            having,
            keep,
            exclude,
            strata,
            amount,
            rules,
            method,
            min,
            max,
            seed,
            output,
            clauses: self.clauses(st),
        })
    }

    /// Where `st`'s clauses are, for run-time errors.
    fn clauses(&self, st: &ast::Statement) -> ir::Clauses {
        // `min K per stratum` from the span of K.
        let bound = |v: &ast::IntValue, keyword: &str| {
            let at = v.span();
            let before = self.src[..at.start].trim_end();
            let start = before.strip_suffix(keyword).map_or(at.start, |b| b.len());
            let toks = strat_syntax::lex::tokens(&self.src[at.end..]);
            let end = match toks.get(..2) {
                Some([per, stratum])
                    if &self.src[at.end..][per.span.start..per.span.end] == "per"
                        && &self.src[at.end..][stratum.span.start..stratum.span.end]
                            == "stratum" =>
                {
                    at.end + stratum.span.end
                }
                _ => at.end,
            };
            Span::new(start, end)
        };
        // Without the blanks a span may end with (they would run it onto the next line).
        let trim = |s: Span| {
            let text = &self.src[s.start..s.end.min(self.src.len())];
            Span::new(s.start, s.start + text.trim_end().len())
        };
        ir::Clauses {
            head: Span::new(st.span.start, st.source.span.end),
            as_of: st.as_of.as_ref().map(|a| trim(a.span)),
            filter: st.filter.as_ref().map(|f| trim(f.span)),
            unit: st.unit.as_ref().map(|u| u.span),
            exclude: st.exclude.as_ref().map(|x| x.span),
            stratify: st.stratify_span.map(|s| {
                trim(Span::new(
                    s.start,
                    st.strata.last().map_or(s.end, |i| i.span.end),
                ))
            }),
            take: st.take.as_ref().map(|t| trim(t.span)),
            // `allocate {` or `allocate neyman(x)`: one line to point at.
            allocate: st.allocate.as_ref().map(|a| {
                let at = a.span();
                let start = self.src[..at.start]
                    .trim_end()
                    .strip_suffix("allocate")
                    .map_or(at.start, str::len);
                match a {
                    ast::Allocate::Rules { .. } => Span::new(start, at.start + 1),
                    ast::Allocate::Method { .. } => Span::new(start, at.end),
                }
            }),
            min: st.min.as_ref().map(|v| bound(v, "min")),
            max: st.max.as_ref().map(|v| bound(v, "max")),
            into: st.into.as_ref().map(|i| trim(i.span)),
        }
    }

    /// The source and column of `keep units in X` / `exclude units in X`
    /// (`verb` is `keep` or `exclude`): it needs a `unit` (E0118), and X a
    /// column named like the unit column (E0119).
    fn unit_source(
        &mut self,
        verb: &str,
        x: &ast::Ident,
        st: &ast::Statement,
        statements: &[ir::Statement],
        names: &HashMap<String, (usize, Span)>,
        all_names: &[(String, Span)],
    ) -> Option<(ir::Source, Column)> {
        let Some(unit_ident) = &st.unit else {
            self.err(
                Diagnostic::error("E0118", format!("`{verb} units in` needs a `unit` column"))
                    .at(x.span)
                    .with_help(format!(
                        "add `unit COLUMN` before `{verb} units in`, e.g. `unit member_id`"
                    )),
            );
            return None;
        };
        let (src2, cols2) = self.source(x, statements, names, all_names)?;
        let cols2 = cols2?;
        match cols2.iter().find(|c| c.name == unit_ident.name) {
            Some(c) => Some((src2, c.clone())),
            None => {
                let mut d = Diagnostic::error(
                    "E0119",
                    format!(
                        "`{}` has no column `{}` to {verb} units by",
                        x.name, unit_ident.name
                    ),
                )
                .at(x.span)
                .with_secondary(unit_ident.span, "the unit column");
                d = match closest(&unit_ident.name, cols2.iter().map(|c| c.name.as_str())) {
                    Some(s) => d.with_help(format!("it has `{s}`; rename that column upstream or {verb} by a statement that outputs `{}`", unit_ident.name)),
                    None => d.with_help(format!("{verb} by a table or statement that has a `{}` column", unit_ident.name)),
                };
                self.err(d);
                None
            }
        }
    }

    fn error_count(&self) -> usize {
        self.diags.iter().filter(|d| d.is_error()).count()
    }

    /// `take about` without a percentage (§5.4): every stratum must get its
    /// probability from a `rate`, `all` or `none` rule, so the block needs an
    /// `else` and no rule may hand strata to a method (E0135).
    fn rates_for_every_stratum(&mut self, st: &ast::Statement) {
        let take_span = st.take.as_ref().map_or(st.keyword_span, |t| t.span);
        let rules = match &st.allocate {
            Some(ast::Allocate::Rules { rules, .. }) => rules,
            other => {
                let at = other.as_ref().map_or(take_span, |a| a.span());
                self.err(
                    Diagnostic::error("E0135", "`take about` without a percentage needs a rule block that gives every stratum a rate")
                        .at(at)
                        .with_secondary(take_span, "no expected total")
                        .with_help("write the rates, e.g. `allocate { plan = \"premium\" => rate 50% else => rate 10% }`, or give the expected total: `take about 10%`"),
                );
                return;
            }
        };
        for r in rules {
            if let ast::Amount::Method(m) = &r.amount {
                self.err(
                    Diagnostic::error("E0135", format!("`{}` shares an expected total, but `take about` without a percentage has none", m.name()))
                        .at(r.amount_span)
                        .with_secondary(take_span, "no expected total")
                        .with_help("give these strata a `rate P%`, `all` or `none`, or write the expected total: `take about 10%`"),
                );
            }
        }
        if !rules.iter().any(|r| r.predicate.is_none()) {
            let at = st.allocate.as_ref().map_or(take_span, |a| a.span());
            self.err(
                Diagnostic::error("E0135", "`take about` without a percentage: the strata that no rule matches would have no rate")
                    .at(at)
                    .with_secondary(take_span, "no expected total")
                    .with_help("end the rule block with `else => rate P%` (or `all` / `none`) so that every stratum has a rate"),
            );
        }
    }

    fn about_conflict(&self, what: &str, span: Span, st: &ast::Statement) -> Diagnostic {
        Diagnostic::error("E0115", format!("`{what}` cannot be used with `take about`"))
            .at(span)
            .with_secondary(st.take.as_ref().map_or(st.span, |t| t.span), "a Bernoulli sample: sizes vary")
            .with_help("with `take about`, use `rate P%`, `all` or `none` in rules, or take an exact total (`take P%`)")
    }

    fn set_method(&mut self, slot: &mut Option<(ir::Method, Span)>, m: ir::Method, span: Span) {
        match slot {
            Some((prev, prev_span)) if *prev != m => {
                let prev_span = *prev_span;
                self.err(
                    Diagnostic::error("E0116", "a statement can use only one allocation method")
                        .at(span)
                        .with_secondary(prev_span, "the first method")
                        .with_help("use the same method for all method strata, or decide the others by rules (`count`, `rate`, `share`)"),
                );
            }
            Some(_) => {}
            None => *slot = Some((m, span)),
        }
    }

    fn method(&mut self, m: &ast::Method, cols: Option<&[Column]>) -> Option<ir::Method> {
        Some(match m {
            ast::Method::Proportional => ir::Method::Proportional,
            ast::Method::Equal => ir::Method::Equal,
            ast::Method::Neyman(c) => {
                let col = self.column(c, cols)?;
                if !col.ty.is_numeric() {
                    self.err(
                        Diagnostic::error(
                            "E0106",
                            format!(
                                "`neyman` needs a numeric column; `{}` is {}",
                                col.name,
                                a(&col.ty)
                            ),
                        )
                        .at(c.span)
                        .with_help(
                            "name the numeric outcome whose spread should drive the allocation",
                        ),
                    );
                    return None;
                }
                ir::Method::Neyman(col)
            }
            ast::Method::Power { q, q_span } => {
                let v = match parse_decimal(q) {
                    Some(v) => v,
                    None => {
                        let name = q.trim_matches('`');
                        match self.params.get(name).map(|p| p.value.clone()) {
                            Some(Value::Int(i)) => BigRational::from_integer(BigInt::from(i)),
                            Some(Value::Float(f)) => parse_decimal(&format!("{f}"))?,
                            Some(other) => {
                                self.err(
                                    Diagnostic::error(
                                        "E0106",
                                        format!(
                                            "power() needs a number; param `{name}` is {other}"
                                        ),
                                    )
                                    .at(*q_span)
                                    .with_help("declare the param as `float`"),
                                );
                                return None;
                            }
                            None => {
                                let ident = ast::Ident {
                                    name: name.to_string(),
                                    span: *q_span,
                                    quoted: false,
                                };
                                self.unknown_param(&ident);
                                return None;
                            }
                        }
                    }
                };
                if v < BigRational::zero() {
                    self.err(
                        Diagnostic::error(
                            "E0133",
                            format!("power({q}): the exponent must be between 0 and 1"),
                        )
                        .at(*q_span)
                        .with_help(
                            "0 is equal allocation, 1 proportional, 0.5 the square-root compromise",
                        ),
                    );
                    return None;
                }
                if v > BigRational::one() {
                    self.err(
                        Diagnostic::error(
                            "E0133",
                            format!("power({q}): the exponent must be between 0 and 1"),
                        )
                        .at(*q_span)
                        .with_help(
                            "0 is equal allocation, 1 proportional, 0.5 the square-root compromise",
                        ),
                    );
                    return None;
                }
                ir::Method::Power(v)
            }
        })
    }

    fn split(&mut self, into: &ast::Into) -> Option<ir::Split> {
        match &into.kind {
            ast::IntoKind::Folds(k) => {
                let k = self.int_value(k, "folds")?;
                if k < 2 {
                    self.err(
                        Diagnostic::error(
                            "E0128",
                            format!("`into {k} folds` needs at least 2 folds"),
                        )
                        .at(into.span)
                        .with_help("write e.g. `into 5 folds`"),
                    );
                    return None;
                }
                if k > 1_000_000 {
                    self.err(
                        Diagnostic::error(
                            "E0128",
                            format!("`into {k} folds` asks for too many folds"),
                        )
                        .at(into.span)
                        .with_help("use at most 1,000,000 folds"),
                    );
                    return None;
                }
                let share = BigRational::new(BigInt::one(), BigInt::from(k));
                Some(ir::Split {
                    about: false,
                    parts: (1..=k)
                        .map(|i| (format!("fold_{i}"), share.clone()))
                        .collect(),
                })
            }
            ast::IntoKind::Parts { about, parts } => {
                let mut out = Vec::new();
                let mut sum = BigRational::zero();
                let mut seen: HashMap<&str, Span> = HashMap::new();
                let mut ok = true;
                for p in parts {
                    if let Some(prev) = seen.insert(&p.name.name, p.name.span) {
                        self.err(
                            Diagnostic::error(
                                "E0129",
                                format!("split `{}` is listed twice", p.name.name),
                            )
                            .at(p.name.span)
                            .with_secondary(prev, "first listed here")
                            .with_help("give each split its own name"),
                        );
                        ok = false;
                    }
                    match self.percent(&p.share) {
                        Some(v) => {
                            sum += &v;
                            out.push((p.name.name.clone(), v));
                        }
                        None => ok = false,
                    }
                }
                if ok && sum != BigRational::one() {
                    self.err(
                        Diagnostic::error("E0112", format!("the split shares add up to {}%, not 100%", percent_text(&sum)))
                            .at(into.span)
                            .with_help("make the shares sum to exactly 100%, e.g. `into train 80%, validation 10%, test 10%`"),
                    );
                    return None;
                }
                ok.then_some(ir::Split {
                    about: *about,
                    parts: out,
                })
            }
        }
    }

    fn output(
        &mut self,
        st: &ast::Statement,
        cols: Option<&[Column]>,
        strata: &[ir::Stratum],
    ) -> Vec<Output> {
        let is_split = st.kind == ast::StatementKind::Split;
        let Some(list) = &st.output else {
            let mut out: Vec<Output> = cols
                .unwrap_or_default()
                .iter()
                .map(|c| match c.name.as_str() {
                    "_weight" => Output::Weight,
                    "_stratum" => Output::StratumText,
                    "_split" if is_split => Output::SplitName,
                    _ => Output::Column(c.clone()),
                })
                .collect();
            if is_split && !out.contains(&Output::SplitName) {
                out.push(Output::SplitName);
            }
            return out;
        };
        let mut out = Vec::new();
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for name in list {
            if let Some(prev) = seen.insert(&name.name, name.span) {
                self.err(
                    Diagnostic::error(
                        "E0129",
                        format!("`{}` is listed twice in `output`", name.name),
                    )
                    .at(name.span)
                    .with_secondary(prev, "first listed here")
                    .with_help("list each output column once"),
                );
                continue;
            }
            let o = match name.name.as_str() {
                "_weight" => Output::Weight,
                "_stratum" => Output::StratumText,
                "_split"
                    if is_split || cols.is_some_and(|c| c.iter().any(|c| c.name == "_split")) =>
                {
                    if is_split {
                        Output::SplitName
                    } else {
                        Output::Column(Column::new("_split", Type::String))
                    }
                }
                "_split" => {
                    self.err(
                        Diagnostic::error("E0102", "`_split` exists only in the output of a `split`")
                            .at(name.span)
                            .with_help("remove `_split`, or split this sample in a following `split` statement"),
                    );
                    continue;
                }
                n => {
                    if let Some(i) = strata.iter().position(|s| s.has_alias && s.name == n) {
                        Output::Stratum {
                            index: i,
                            name: n.to_string(),
                        }
                    } else {
                        match self.column(name, cols) {
                            Some(c) => Output::Column(c),
                            None => continue,
                        }
                    }
                }
            };
            out.push(o);
        }
        out
    }

    // ------------------------------------------------------------- names and values

    fn column(&mut self, ident: &ast::Ident, cols: Option<&[Column]>) -> Option<Column> {
        let cols = cols?;
        if let Some(c) = cols.iter().find(|c| c.name == ident.name) {
            return Some(c.clone());
        }
        self.unknown_column(ident, cols, &[]);
        None
    }

    fn unknown_column(&mut self, ident: &ast::Ident, cols: &[Column], extra: &[&str]) {
        let candidates = cols
            .iter()
            .map(|c| c.name.as_str())
            .chain(extra.iter().copied())
            .chain(self.params.keys().map(String::as_str));
        let mut d =
            Diagnostic::error("E0102", format!("unknown column `{}`", ident.name)).at(ident.span);
        d = match closest(&ident.name, candidates) {
            Some(s)
                if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    || s.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                d.with_help(format!("did you mean `` `{s}` ``?"))
            }
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => {
                let shown: Vec<&str> = cols.iter().take(8).map(|c| c.name.as_str()).collect();
                let more = if cols.len() > 8 { ", …" } else { "" };
                d.with_help(format!("the columns are: {}{more}", shown.join(", ")))
            }
        };
        self.err(d);
    }

    fn int_value(&mut self, v: &ast::IntValue, what: &str) -> Option<u64> {
        match v {
            ast::IntValue::Literal { digits, span } => match digits.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    self.err(
                        Diagnostic::error("E0002", format!("`{digits}` is too large for `{what}`"))
                            .at(*span)
                            .with_help("use a whole number below 18446744073709551616"),
                    );
                    None
                }
            },
            ast::IntValue::Param(p) => match self.params.get(&p.name).map(|p| p.value.clone()) {
                Some(Value::Int(i)) if i >= 0 => Some(i as u64),
                Some(other) => {
                    self.err(
                        Diagnostic::error(
                            "E0106",
                            format!(
                                "`{what}` needs a whole number ≥ 0; param `{}` is {other}",
                                p.name
                            ),
                        )
                        .at(p.span)
                        .with_help("declare the param as `int` with a value ≥ 0"),
                    );
                    None
                }
                None => {
                    self.unknown_param(p);
                    None
                }
            },
        }
    }

    fn unknown_param(&mut self, p: &ast::Ident) {
        let mut d = Diagnostic::error("E0103", format!("unknown param `{}`", p.name)).at(p.span);
        d = match closest(&p.name, self.params.keys().map(String::as_str)) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => d.with_help(format!("declare it: `param {}: int = 100`", p.name)),
        };
        self.err(d);
    }

    fn percent(&mut self, p: &ast::Percent) -> Option<BigRational> {
        let (value, span) = match p {
            ast::Percent::Literal { number, span } => (parse_decimal(number)?, *span),
            ast::Percent::Param { name, span } => {
                match self.params.get(&name.name).map(|p| p.value.clone()) {
                    Some(Value::Int(i)) => (BigRational::from_integer(BigInt::from(i)), *span),
                    // The param's shortest decimal text, exactly: 33.3 means 33.3, not its binary neighbour.
                    Some(Value::Float(f)) => (parse_decimal(&format!("{f}"))?, *span),
                    Some(other) => {
                        self.err(
                            Diagnostic::error(
                                "E0106",
                                format!(
                                    "a percentage needs a number; param `{}` is {other}",
                                    name.name
                                ),
                            )
                            .at(*span)
                            .with_help("declare the param as `int` or `float`"),
                        );
                        return None;
                    }
                    None => {
                        self.unknown_param(name);
                        return None;
                    }
                }
            }
        };
        let hundred = BigRational::from_integer(BigInt::from(100));
        if value > hundred || value < BigRational::zero() {
            self.err(
                Diagnostic::error(
                    "E0111",
                    format!(
                        "{}% is not a percentage between 0% and 100%",
                        percent_text(&(value.clone() / &hundred))
                    ),
                )
                .at(span)
                .with_help("write a percentage from 0% to 100%"),
            );
            return None;
        }
        Some(value / hundred)
    }

    fn literal(&mut self, l: &ast::Literal) -> Option<Value> {
        Some(match l {
            ast::Literal::Integer { digits, span } => match digits.parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => {
                    self.err(
                        Diagnostic::error(
                            "E0002",
                            format!("integer `{digits}` does not fit in 64 bits"),
                        )
                        .at(*span)
                        .with_help(
                            "integers range from -9223372036854775808 to 9223372036854775807",
                        ),
                    );
                    return None;
                }
            },
            ast::Literal::Decimal { text, .. } => Value::Decimal(text.clone()),
            ast::Literal::Negative(inner) => match self.literal(inner)? {
                Value::Int(i) => Value::Int(-i),
                Value::Decimal(d) => Value::Decimal(format!("-{d}")),
                Value::Float(f) => Value::Float(-f),
                other => other,
            },
            ast::Literal::String { value, .. } => Value::String(value.clone()),
            ast::Literal::Bool { value, .. } => Value::Bool(*value),
            ast::Literal::Null { .. } => Value::Null,
            ast::Literal::Date { text, .. } => Value::Date(text.clone()),
            ast::Literal::Timestamp { text, .. } => Value::Timestamp(normalise_timestamp(text)),
        })
    }

    fn expect_bool(&mut self, x: &ir::Expr, span: Span, what: &str) {
        if x.ty != Type::Bool && x.ty != Type::Null {
            self.err(
                Diagnostic::error(
                    "E0106",
                    format!("{what} must be true or false, but this is {}", a(&x.ty)),
                )
                .at(span)
                .with_help("compare it with something, e.g. `x = 1` or `x is not null`"),
            );
        }
    }

    // ------------------------------------------------------------- expressions

    fn expr(&mut self, e: &ast::Expr, scope: &Scope) -> Option<ir::Expr> {
        // In a rule predicate, a whole stratum expression stands for the stratum's value.
        if let Some(strata) = scope.strata {
            let text = normalise(self.text(e.span));
            if let Some(i) = strata
                .iter()
                .position(|(t, alias, _)| *t == text || alias.as_deref() == Some(text.as_str()))
            {
                // A stratum that failed its own check was reported there.
                let ty = strata[i].2.clone()?;
                return Some(ir::Expr {
                    kind: ExprKind::Stratum(i),
                    ty,
                });
            }
        }
        let mk = |kind, ty| Some(ir::Expr { kind, ty });
        match &e.kind {
            AK::Literal(l) => {
                let v = self.literal(l)?;
                let ty = v.ty();
                mk(ExprKind::Literal(v), ty)
            }
            AK::Name(ident) => self.name(ident, scope),
            AK::Unary { op, expr } => {
                let x = self.expr(expr, scope)?;
                // `-5` is a literal: fold it so it can be a bucket edge or a plain constant.
                if *op == ast::UnaryOp::Neg {
                    let folded = match &x.kind {
                        ExprKind::Literal(Value::Int(i)) => i.checked_neg().map(Value::Int),
                        ExprKind::Literal(Value::Decimal(d)) => Some(Value::Decimal(
                            d.strip_prefix('-')
                                .map_or_else(|| format!("-{d}"), str::to_string),
                        )),
                        ExprKind::Literal(Value::Float(f)) => Some(Value::Float(-f)),
                        _ => None,
                    };
                    if let Some(v) = folded {
                        return mk(ExprKind::Literal(v), x.ty.clone());
                    }
                }
                match op {
                    ast::UnaryOp::Not => {
                        self.operand(&x, expr.span, &[Type::Bool], "`not`")?;
                        mk(
                            ExprKind::Unary {
                                op: *op,
                                expr: Box::new(x),
                            },
                            Type::Bool,
                        )
                    }
                    ast::UnaryOp::Neg => {
                        if !x.ty.is_numeric() {
                            self.type_error(
                                expr.span,
                                format!("`-` needs a number, but this is {}", a(&x.ty)),
                                scope,
                            );
                            return None;
                        }
                        let ty = x.ty.clone();
                        mk(
                            ExprKind::Unary {
                                op: *op,
                                expr: Box::new(x),
                            },
                            ty,
                        )
                    }
                }
            }
            AK::Binary { op, left, right } => {
                if op.is_comparison()
                    && let Some(reported) = self.word_beside(left, right, scope)
                {
                    return reported;
                }
                let l = self.expr(left, scope);
                let r = self.expr(right, scope);
                let (l, r) = (l?, r?);
                use ast::BinaryOp as B;
                let ty = match op {
                    B::And | B::Or => {
                        self.operand(&l, left.span, &[Type::Bool], op.as_str())?;
                        self.operand(&r, right.span, &[Type::Bool], op.as_str())?;
                        Type::Bool
                    }
                    _ if op.is_comparison() => {
                        if !l.ty.comparable(&r.ty) {
                            self.mismatch(e.span, &l, left.span, &r, right.span, scope);
                            return None;
                        }
                        Type::Bool
                    }
                    _ => {
                        if !l.ty.is_numeric() || !r.ty.is_numeric() {
                            let (bad, span) = if !l.ty.is_numeric() {
                                (&l, left.span)
                            } else {
                                (&r, right.span)
                            };
                            self.type_error(
                                span,
                                format!(
                                    "`{}` needs numbers, but this is {}",
                                    op.as_str(),
                                    a(&bad.ty)
                                ),
                                scope,
                            );
                            return None;
                        }
                        if *op == B::Div {
                            Type::Float
                        } else {
                            l.ty.unify(&r.ty).unwrap_or(Type::Float)
                        }
                    }
                };
                mk(
                    ExprKind::Binary {
                        op: *op,
                        left: Box::new(l),
                        right: Box::new(r),
                    },
                    ty,
                )
            }
            AK::InList {
                expr,
                list,
                negated,
            } => {
                let x = self.expr(expr, scope)?;
                let mut items = Vec::new();
                for item in list {
                    if let Some(word) = self.unknown_word(item, scope) {
                        self.word_for_string(word, Some(&x), scope);
                        return None;
                    }
                    let v = self.expr(item, scope)?;
                    if !x.ty.comparable(&v.ty) {
                        self.mismatch(item.span, &x, expr.span, &v, item.span, scope);
                        return None;
                    }
                    items.push(v);
                }
                mk(
                    ExprKind::InList {
                        expr: Box::new(x),
                        list: items,
                        negated: *negated,
                    },
                    Type::Bool,
                )
            }
            AK::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let x = self.expr(expr, scope)?;
                let lo = self.expr(low, scope)?;
                let hi = self.expr(high, scope)?;
                for (b, s) in [(&lo, low.span), (&hi, high.span)] {
                    if !x.ty.comparable(&b.ty) {
                        self.mismatch(s, &x, expr.span, b, s, scope);
                        return None;
                    }
                }
                mk(
                    ExprKind::Between {
                        expr: Box::new(x),
                        low: Box::new(lo),
                        high: Box::new(hi),
                        negated: *negated,
                    },
                    Type::Bool,
                )
            }
            AK::IsNull { expr, negated } => {
                let x = self.expr(expr, scope)?;
                mk(
                    ExprKind::IsNull {
                        expr: Box::new(x),
                        negated: *negated,
                    },
                    Type::Bool,
                )
            }
            AK::Like {
                expr,
                pattern,
                negated,
            } => {
                let x = self.expr(expr, scope)?;
                let p = self.expr(pattern, scope)?;
                self.operand(&x, expr.span, &[Type::String], "`like`")?;
                self.operand(&p, pattern.span, &[Type::String], "`like`")?;
                mk(
                    ExprKind::Like {
                        expr: Box::new(x),
                        pattern: Box::new(p),
                        negated: *negated,
                    },
                    Type::Bool,
                )
            }
            AK::Case { whens, otherwise } => {
                let mut out = Vec::new();
                let mut ty = Type::Null;
                for (w, t) in whens {
                    let wx = self.expr(w, scope)?;
                    self.expect_bool(&wx, w.span, "a `when` condition");
                    let tx = self.expr(t, scope)?;
                    ty = match ty.unify(&tx.ty) {
                        Some(t) => t,
                        None => {
                            self.type_error(
                                t.span,
                                format!(
                                    "this branch is {} but an earlier one is {}",
                                    a(&tx.ty),
                                    a(&ty)
                                ),
                                scope,
                            );
                            return None;
                        }
                    };
                    out.push((wx, tx));
                }
                let other = match otherwise {
                    Some(o) => {
                        let ox = self.expr(o, scope)?;
                        ty = match ty.unify(&ox.ty) {
                            Some(t) => t,
                            None => {
                                self.type_error(
                                    o.span,
                                    format!(
                                        "`else` is {} but the branches are {}",
                                        a(&ox.ty),
                                        a(&ty)
                                    ),
                                    scope,
                                );
                                return None;
                            }
                        };
                        Some(Box::new(ox))
                    }
                    None => None,
                };
                mk(
                    ExprKind::Case {
                        whens: out,
                        otherwise: other,
                    },
                    ty,
                )
            }
            AK::Call {
                func,
                args,
                star,
                order_by,
            } => self.call(e, func, args, *star, order_by.as_deref(), scope),
        }
    }

    fn name(&mut self, ident: &ast::Ident, scope: &Scope) -> Option<ir::Expr> {
        let column = scope
            .columns
            .and_then(|c| c.iter().find(|c| c.name == ident.name));
        let param = self.params.get(&ident.name);
        match (column, param) {
            (Some(_), Some(_)) if !ident.quoted => {
                self.err(
                    Diagnostic::error(
                        "E0125",
                        format!("`{}` is both a column and a param", ident.name),
                    )
                    .at(ident.span)
                    .with_help(format!(
                        "rename the param, or write `` `{}` `` for the column",
                        ident.name
                    )),
                );
                None
            }
            (Some(c), _) => {
                if scope.strata.is_some() {
                    self.err(
                        Diagnostic::error("E0108", format!("rule conditions can use only stratum values; `{}` is not a stratum", ident.name))
                            .at(ident.span)
                            .with_label("varies within a stratum")
                            .with_help(format!("add `{}` to `stratify by`, or use a stratum expression or its `as` name", ident.name)),
                    );
                    return None;
                }
                if scope.unit_level {
                    self.err(
                        Diagnostic::error("E0134", format!("`having` reads columns only inside unit aggregates; `{}` is a column of the unit's rows", ident.name))
                            .at(ident.span)
                            .with_label("a value per row, not per unit")
                            .with_help(format!("aggregate it over the unit's rows, e.g. `max({0})`, `mode({0})` or `last({0} by t)`", self.text(ident.span))),
                    );
                    return None;
                }
                Some(ir::Expr {
                    kind: ExprKind::Column(c.name.clone()),
                    ty: c.ty.clone(),
                })
            }
            (None, Some(p)) => Some(ir::Expr {
                ty: p.value.ty(),
                kind: ExprKind::Literal(p.value.clone()),
            }),
            (None, None) => {
                if let Some(cols) = scope.columns {
                    let aliases: Vec<&str> = scope
                        .strata
                        .into_iter()
                        .flatten()
                        .filter_map(|(_, a, _)| a.as_deref())
                        .collect();
                    self.unknown_column(ident, cols, &aliases);
                }
                None
            }
        }
    }

    /// A bare word that names nothing here: not a column, param, stratum or
    /// alias (and the source's columns are known).
    fn unknown_word<'e>(&self, e: &'e ast::Expr, scope: &Scope) -> Option<&'e ast::Ident> {
        let AK::Name(ident) = &e.kind else {
            return None;
        };
        let cols = scope.columns?;
        if ident.quoted
            || cols.iter().any(|c| c.name == ident.name)
            || self.params.contains_key(&ident.name)
        {
            return None;
        }
        let text = normalise(self.text(e.span));
        let stratum = scope
            .strata
            .into_iter()
            .flatten()
            .any(|(t, alias, _)| *t == text || alias.as_deref() == Some(ident.name.as_str()));
        (!stratum).then_some(ident)
    }

    /// `country = US`, where `US` names nothing: checks the other side and
    /// reports the word, suggesting a string when the other side is one.
    /// `None` when neither side (or both) is such a word.
    fn word_beside(
        &mut self,
        left: &ast::Expr,
        right: &ast::Expr,
        scope: &Scope,
    ) -> Option<Option<ir::Expr>> {
        let (word, other) = match (
            self.unknown_word(left, scope),
            self.unknown_word(right, scope),
        ) {
            (Some(w), None) => (w, right),
            (None, Some(w)) => (w, left),
            _ => return None,
        };
        let other = self.expr(other, scope);
        self.word_for_string(word, other.as_ref(), scope);
        Some(None)
    }

    /// Reports `word`, which names nothing; compared with a string, it is most
    /// likely a string without its quotes.
    fn word_for_string(&mut self, word: &ast::Ident, other: Option<&ir::Expr>, scope: &Scope) {
        let Some(cols) = scope.columns else {
            return;
        };
        if other.is_none_or(|o| o.ty != Type::String) {
            self.name(word, scope);
            return;
        }
        let quoted = format!("\"{}\"", word.name);
        let column = closest(&word.name, cols.iter().map(|c| c.name.as_str()));
        let help = match column {
            Some(c) => format!(
                "to compare with the text {}, write the string `{quoted}`; or did you mean the column `{c}`?",
                word.name
            ),
            None => format!(
                "to compare with the text {}, write the string `{quoted}`: a bare word is a column name",
                word.name
            ),
        };
        self.err(
            Diagnostic::error("E0102", format!("unknown column `{}`", word.name))
                .at(word.span)
                .with_label("no column has this name")
                .with_help(help),
        );
    }

    fn operand(&mut self, x: &ir::Expr, span: Span, want: &[Type], what: &str) -> Option<()> {
        if x.ty == Type::Null || want.contains(&x.ty) {
            return Some(());
        }
        let want_s: Vec<String> = want.iter().map(Type::to_string).collect();
        self.err(
            Diagnostic::error(
                "E0106",
                format!(
                    "{what} needs {} value, but this is {}",
                    a_word(&want_s.join(" or ")),
                    a(&x.ty)
                ),
            )
            .at(span)
            .with_label(a(&x.ty)),
        );
        None
    }

    fn type_error(&mut self, span: Span, message: String, _scope: &Scope) {
        self.err(Diagnostic::error("E0106", message).at(span));
    }

    fn mismatch(
        &mut self,
        at: Span,
        l: &ir::Expr,
        ls: Span,
        r: &ir::Expr,
        rs: Span,
        scope: &Scope,
    ) {
        let in_rule = scope.strata.is_some()
            && (matches!(l.kind, ExprKind::Stratum(_)) || matches!(r.kind, ExprKind::Stratum(_)));
        let (code, message) = if in_rule {
            let (s, other) = if matches!(l.kind, ExprKind::Stratum(_)) {
                (l, r)
            } else {
                (r, l)
            };
            (
                "E0107",
                format!(
                    "this rule compares {} stratum with {} value",
                    a(&s.ty),
                    a(&other.ty)
                ),
            )
        } else {
            (
                "E0106",
                format!("cannot compare {} with {}", a(&l.ty), a(&r.ty)),
            )
        };
        let help = match (&l.ty, &r.ty) {
            (Type::String, t) | (t, Type::String) if t.is_numeric() => {
                let string_literal = [l, r]
                    .iter()
                    .any(|x| x.ty == Type::String && matches!(x.kind, ExprKind::Literal(_)));
                if string_literal {
                    "remove the quotes to compare with a number".to_string()
                } else {
                    "quote the number (`\"42\"`) to compare with a string".to_string()
                }
            }
            (Type::Date, Type::Timestamp) | (Type::Timestamp, Type::Date) => {
                "compare a date with `@YYYY-MM-DD` and a timestamp with `@YYYY-MM-DDTHH:MM:SS`"
                    .to_string()
            }
            (Type::Date, Type::String) | (Type::String, Type::Date) => {
                "write dates as `@2018-06-01`, not as strings".to_string()
            }
            _ => format!("make both sides the same type ({} vs {})", l.ty, r.ty),
        };
        let _ = at;
        self.err(
            Diagnostic::error(code, message)
                .at(rs)
                .with_label(a(&r.ty))
                .with_secondary(ls, a(&l.ty))
                .with_help(help),
        );
    }

    fn call(
        &mut self,
        e: &ast::Expr,
        func: &ast::Ident,
        args: &[ast::Arg],
        star: bool,
        order_by: Option<&ast::Expr>,
        scope: &Scope,
    ) -> Option<ir::Expr> {
        let name = func.name.as_str();
        if !FUNCTIONS.contains(&name) {
            let mut d =
                Diagnostic::error("E0104", format!("unknown function `{name}`")).at(func.span);
            d = match closest(name, FUNCTIONS.iter().copied()) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help(format!("the functions are: {}", FUNCTIONS.join(", "))),
            };
            self.err(d);
            return None;
        }
        let arity = |this: &mut Self, want: &str, ok: bool| -> Option<()> {
            if ok {
                return Some(());
            }
            this.err(
                Diagnostic::error("E0122", format!("`{name}` takes {want}"))
                    .at(e.span)
                    .with_help(format!("write it as {}", usage(name))),
            );
            None
        };
        if AGGREGATES.contains(&name) {
            match scope.aggregates {
                AggregateUse::Allowed => {}
                AggregateUse::NoUnit => {
                    self.err(
                        Diagnostic::error("E0110", format!("the unit aggregate `{name}(…)` needs a `unit`"))
                            .at(e.span)
                            .with_help("add `unit COLUMN` (e.g. `unit member_id`): aggregates are computed over each unit's rows"),
                    );
                    return None;
                }
                AggregateUse::NotHere => {
                    self.err(
                        Diagnostic::error("E0110", format!("`{name}(…)` is a unit aggregate; it is allowed only in `stratify by` and `having`"))
                            .at(e.span)
                            .with_help("filter units by it with `having` after `unit`, or stratify by it (with `as NAME`) and refer to that name instead"),
                    );
                    return None;
                }
                AggregateUse::Inside => {
                    self.err(
                        Diagnostic::error("E0110", "unit aggregates cannot be nested")
                            .at(e.span)
                            .with_help("aggregate plain columns of the unit's rows"),
                    );
                    return None;
                }
            }
            let inner = Scope {
                columns: scope.columns,
                aggregates: AggregateUse::Inside,
                strata: None,
                // Inside an aggregate a column is read per row.
                unit_level: false,
            };
            let agg = match name {
                "count" => Aggregate::Count,
                "min" => Aggregate::Min,
                "max" => Aggregate::Max,
                "sum" => Aggregate::Sum,
                "avg" => Aggregate::Avg,
                "first" => Aggregate::First,
                "mode" => Aggregate::Mode,
                _ => Aggregate::Last,
            };
            let ordered = matches!(agg, Aggregate::First | Aggregate::Last);
            if agg == Aggregate::Count {
                arity(
                    self,
                    "`*`: `count(*)`",
                    star && args.is_empty() && order_by.is_none(),
                )?;
                return Some(ir::Expr {
                    kind: ExprKind::Aggregate {
                        func: agg,
                        arg: None,
                        order_by: None,
                    },
                    ty: Type::Int,
                });
            }
            let want = if ordered {
                "one column and `by`: `last(x by t)`"
            } else {
                "one argument"
            };
            arity(
                self,
                want,
                !star && args.len() == 1 && order_by.is_some() == ordered,
            )?;
            let ast::Arg::Expr(a) = &args[0] else {
                arity(self, want, false)?;
                return None;
            };
            let x = self.expr(a, &inner)?;
            let ob = match order_by {
                Some(o) => Some(Box::new(self.expr(o, &inner)?)),
                None => None,
            };
            let ty = match agg {
                Aggregate::Sum => {
                    self.operand(
                        &x,
                        a.span,
                        &[Type::Int, Type::Float, Type::Decimal],
                        "`sum`",
                    )?;
                    x.ty.clone()
                }
                Aggregate::Avg => {
                    self.operand(
                        &x,
                        a.span,
                        &[Type::Int, Type::Float, Type::Decimal],
                        "`avg`",
                    )?;
                    Type::Float
                }
                Aggregate::Mode => {
                    // Values are counted as equal or not, and ties go to the
                    // smallest in stratum order (§5.3): the stratum value types.
                    if !matches!(
                        x.ty,
                        Type::Int
                            | Type::String
                            | Type::Bool
                            | Type::Date
                            | Type::Timestamp
                            | Type::Null
                    ) {
                        self.err(
                            Diagnostic::error("E0106", format!("`mode` needs an int, string, bool, date or timestamp value, but this is {}", self::a(&x.ty)))
                                .at(a.span)
                                .with_label(self::a(&x.ty))
                                .with_help(format!("make it discrete first, e.g. `mode(round({0}))` or `mode(bucket({0}, [edges]))`", self.text(a.span))),
                        );
                        return None;
                    }
                    x.ty.clone()
                }
                _ => x.ty.clone(),
            };
            return Some(ir::Expr {
                kind: ExprKind::Aggregate {
                    func: agg,
                    arg: Some(Box::new(x)),
                    order_by: ob,
                },
                ty,
            });
        }
        if star || order_by.is_some() {
            arity(self, "plain arguments", false)?;
        }
        if name == "bucket" {
            return self.bucket(e, args, scope);
        }
        let mut xs = Vec::new();
        for a in args {
            match a {
                ast::Arg::Expr(x) => xs.push((self.expr(x, scope)?, x.span)),
                ast::Arg::List { span, .. } => {
                    self.err(
                        Diagnostic::error("E0122", format!("`{name}` does not take a list"))
                            .at(*span)
                            .with_help(format!("write it as {}", usage(name))),
                    );
                    return None;
                }
            }
        }
        let n = xs.len();
        let (func, ty) = match name {
            "lower" | "upper" | "trim" => {
                arity(self, "one argument", n == 1)?;
                self.operand(&xs[0].0, xs[0].1, &[Type::String], &format!("`{name}`"))?;
                (
                    match name {
                        "lower" => Func::Lower,
                        "upper" => Func::Upper,
                        _ => Func::Trim,
                    },
                    Type::String,
                )
            }
            "length" => {
                arity(self, "one argument", n == 1)?;
                self.operand(&xs[0].0, xs[0].1, &[Type::String], "`length`")?;
                (Func::Length, Type::Int)
            }
            "substr" => {
                arity(self, "two or three arguments", n == 2 || n == 3)?;
                self.operand(&xs[0].0, xs[0].1, &[Type::String], "`substr`")?;
                for (x, s) in &xs[1..] {
                    self.operand(x, *s, &[Type::Int], "`substr` positions")?;
                }
                (Func::Substr, Type::String)
            }
            "coalesce" => {
                arity(self, "at least one argument", n >= 1)?;
                let mut ty = Type::Null;
                for (x, s) in &xs {
                    ty = match ty.unify(&x.ty) {
                        Some(t) => t,
                        None => {
                            self.type_error(
                                *s,
                                format!(
                                    "`coalesce` arguments must share a type; this is {} after {}",
                                    a(&x.ty),
                                    a(&ty)
                                ),
                                scope,
                            );
                            return None;
                        }
                    };
                }
                (Func::Coalesce, ty)
            }
            "abs" => {
                arity(self, "one argument", n == 1)?;
                self.operand(
                    &xs[0].0,
                    xs[0].1,
                    &[Type::Int, Type::Float, Type::Decimal],
                    "`abs`",
                )?;
                (Func::Abs, xs[0].0.ty.clone())
            }
            "year" | "month" | "day" => {
                arity(self, "one argument", n == 1)?;
                self.operand(
                    &xs[0].0,
                    xs[0].1,
                    &[Type::Date, Type::Timestamp],
                    &format!("`{name}`"),
                )?;
                (
                    match name {
                        "year" => Func::Year,
                        "month" => Func::Month,
                        _ => Func::Day,
                    },
                    Type::Int,
                )
            }
            _ => {
                arity(self, "one argument", n == 1)?;
                self.operand(
                    &xs[0].0,
                    xs[0].1,
                    &[Type::Int, Type::Float, Type::Decimal],
                    &format!("`{name}`"),
                )?;
                (
                    match name {
                        "round" => Func::Round,
                        "floor" => Func::Floor,
                        _ => Func::Ceil,
                    },
                    Type::Int,
                )
            }
        };
        Some(ir::Expr {
            kind: ExprKind::Func {
                func,
                args: xs.into_iter().map(|(x, _)| x).collect(),
            },
            ty,
        })
    }

    fn bucket(&mut self, e: &ast::Expr, args: &[ast::Arg], scope: &Scope) -> Option<ir::Expr> {
        let (x, list, list_span) = match args {
            [ast::Arg::Expr(x), ast::Arg::List { items, span }] => (x, items, *span),
            _ => {
                self.err(
                    Diagnostic::error("E0122", "`bucket` takes a value and a list of edges")
                        .at(e.span)
                        .with_help("write it as `bucket(tenure_days, [90, 365])`"),
                );
                return None;
            }
        };
        let xv = self.expr(x, scope)?;
        if !matches!(
            xv.ty,
            Type::Int | Type::Float | Type::Decimal | Type::Date | Type::Null
        ) {
            self.type_error(
                x.span,
                format!(
                    "`bucket` needs a number or a date, but this is {}",
                    a(&xv.ty)
                ),
                scope,
            );
            return None;
        }
        if list.is_empty() {
            self.err(
                Diagnostic::error("E0123", "`bucket` needs at least one edge")
                    .at(list_span)
                    .with_help("write e.g. `[90, 365]`"),
            );
            return None;
        }
        let mut edges = Vec::new();
        let mut texts = Vec::new();
        let mut prev: Option<(f64, String)> = None;
        for item in list {
            // Edges are literals or params: any other name is an unknown param.
            if let AK::Name(ident) = &item.kind
                && !self.params.contains_key(&ident.name)
            {
                self.unknown_param(ident);
                return None;
            }
            let v = self.expr(
                item,
                &Scope {
                    columns: None,
                    aggregates: AggregateUse::NotHere,
                    strata: None,
                    unit_level: false,
                },
            )?;
            let ExprKind::Literal(val) = &v.kind else {
                self.err(
                    Diagnostic::error("E0123", "bucket edges must be literals or params")
                        .at(item.span)
                        .with_help("write numbers or dates, e.g. `[90, 365]`"),
                );
                return None;
            };
            let numeric = xv.ty.is_numeric();
            let key = match (val, numeric) {
                (Value::Int(i), true) => (*i as f64, String::new()),
                (Value::Float(f), true) => (*f, String::new()),
                (Value::Decimal(d), true) => (d.parse::<f64>().unwrap_or(f64::NAN), String::new()),
                (Value::Date(d), false) => (0.0, d.clone()),
                _ => {
                    self.err(
                        Diagnostic::error(
                            "E0123",
                            format!(
                                "a bucket edge of {} value must be a {}",
                                a(&xv.ty),
                                if numeric { "number" } else { "date" }
                            ),
                        )
                        .at(item.span)
                        .with_help(if numeric {
                            "write numbers such as `[90, 365]`"
                        } else {
                            "write dates such as `[@2017-01-01, @2018-01-01]`"
                        }),
                    );
                    return None;
                }
            };
            if let Some(p) = &prev
                && !(key.0 > p.0 || (!numeric && key.1 > p.1))
            {
                self.err(
                    Diagnostic::error("E0123", "bucket edges must be strictly ascending")
                        .at(item.span)
                        .with_help("sort the edges and remove repeats"),
                );
                return None;
            }
            prev = Some(key);
            edges.push(val.clone());
            // Labels show edges as written; a param's edge shows its value.
            texts.push(match (&item.kind, val) {
                (_, Value::Date(d)) => d.clone(),
                (AK::Name(_), v) => v.to_string(),
                _ => normalise(self.text(item.span)).replace('_', ""),
            });
        }
        let mut labels = vec![format!("[-inf,{})", texts[0])];
        labels.extend(texts.windows(2).map(|w| format!("[{},{})", w[0], w[1])));
        labels.push(format!("[{},inf)", texts[texts.len() - 1]));
        Some(ir::Expr {
            kind: ExprKind::Bucket {
                expr: Box::new(xv),
                edges,
                labels,
            },
            ty: Type::String,
        })
    }
}

/// "an int", "a string": a type with its article, for messages.
fn a(ty: &Type) -> String {
    a_word(&ty.to_string())
}

fn a_word(s: &str) -> String {
    if s.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {s}")
    } else {
        format!("a {s}")
    }
}

fn usage(name: &str) -> &'static str {
    match name {
        "count" => "`count(*)`",
        "first" | "last" => "`last(country by event_ts)`",
        "mode" => "`mode(device)`",
        "substr" => "`substr(s, start)` or `substr(s, start, length)`",
        "coalesce" => "`coalesce(a, b, …)`",
        "bucket" => "`bucket(x, [b1, b2])`",
        _ => "`f(x)`",
    }
}

fn param_type(t: ast::ParamType) -> Type {
    match t {
        ast::ParamType::Int => Type::Int,
        ast::ParamType::Float => Type::Float,
        ast::ParamType::String => Type::String,
        ast::ParamType::Bool => Type::Bool,
        ast::ParamType::Date => Type::Date,
        ast::ParamType::Timestamp => Type::Timestamp,
    }
}

/// Parses a `--param` value as the param's type.
pub fn parse_param_value(ty: &Type, raw: &str) -> Option<Value> {
    let raw_t = raw.trim();
    Some(match ty {
        Type::Int => Value::Int(raw_t.replace('_', "").parse().ok()?),
        Type::Float => {
            let f: f64 = raw_t.parse().ok()?;
            if !f.is_finite() {
                return None;
            }
            Value::Float(f)
        }
        Type::String => Value::String(raw.to_string()),
        Type::Bool => Value::Bool(match raw_t {
            "true" => true,
            "false" => false,
            _ => return None,
        }),
        Type::Date => {
            let s = raw_t.strip_prefix('@').unwrap_or(raw_t);
            if !one_literal(ty, s) {
                return None;
            }
            Value::Date(s.to_string())
        }
        Type::Timestamp => {
            let s = raw_t
                .strip_prefix('@')
                .unwrap_or(raw_t)
                .replacen(' ', "T", 1);
            if !one_literal(ty, &s) {
                return None;
            }
            Value::Timestamp(normalise_timestamp(&s))
        }
        _ => return None,
    })
}

/// Is `text` (without `@`) exactly one valid literal of `ty` (a date or a
/// timestamp) — nothing before or after it, not even a comment or a newline?
/// (The `param_value` fuzz target's property: `2018-06-01T00:00:00#x`, or a
/// date for a timestamp param, passed `strat check` and failed the run.)
fn one_literal(ty: &Type, text: &str) -> bool {
    let word = if *ty == Type::Date {
        "date"
    } else {
        "timestamp"
    };
    let p = strat_syntax::parse(&format!("param x: {word} = @{text}\nsample x"));
    if !p.diagnostics.is_empty() {
        return false;
    }
    let [ast::Item::Param(decl), _] = p.file.items.as_slice() else {
        return false;
    };
    match (&decl.value, ty) {
        (ast::Literal::Date { text: t, .. }, Type::Date)
        | (ast::Literal::Timestamp { text: t, .. }, Type::Timestamp) => t == text,
        _ => false,
    }
}

fn param_example(ty: &Type) -> String {
    match ty {
        Type::Int => "write a whole number, e.g. --param n=1000".into(),
        Type::Float => "write a number, e.g. --param x=0.5".into(),
        Type::Bool => "write true or false".into(),
        Type::Date => "write a date as YYYY-MM-DD, e.g. --param as_of=2018-06-01".into(),
        Type::Timestamp => "write a timestamp as YYYY-MM-DDTHH:MM:SS".into(),
        _ => "write a value of the param's type".into(),
    }
}

fn normalise_timestamp(text: &str) -> String {
    // `@2018-06-01T12:30` means 12:30:00.
    if text.len() == 16 {
        format!("{text}:00")
    } else {
        text.to_string()
    }
}

/// Collapses whitespace so `bucket(x,[1, 2])` and `bucket(x, [1,2])` compare equal.
fn normalise(text: &str) -> String {
    let toks = strat_syntax::lex::tokens(text);
    let mut out = String::new();
    for t in toks {
        if t.kind == strat_syntax::lex::TokenKind::Comment {
            continue;
        }
        let tok = &text[t.span.start..t.span.end];
        // `plan` and plan are the same name.
        let plain = tok.len() > 2
            && t.kind == strat_syntax::lex::TokenKind::QuotedName
            && tok[1..tok.len() - 1]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !out.is_empty() && t.kind == strat_syntax::lex::TokenKind::Word {
            // Keep words apart: `not x` must not become `notx`.
            if out.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                out.push(' ');
            }
        }
        out.push_str(if plain { &tok[1..tok.len() - 1] } else { tok });
    }
    out
}

/// Parses an exact decimal (`12.5`) as a rational.
pub fn parse_decimal(text: &str) -> Option<BigRational> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits: BigInt = format!("{int}{frac}").parse().ok()?;
    let scale = BigInt::from(10u32).pow(frac.len() as u32);
    Some(BigRational::new(digits, scale))
}

fn placeholder(st: &ast::Statement) -> ir::Statement {
    ir::Statement {
        name: st.name.as_ref().map(|n| n.name.clone()),
        kind: ir::Kind::Sample,
        span: Span::default(),
        source: ir::Source::Table(String::new()),
        input: Vec::new(),
        as_of: None,
        filter: None,
        unit: None,
        having: None,
        keep: None,
        exclude: None,
        strata: Vec::new(),
        amount: ir::Amount::All,
        rules: Vec::new(),
        method: ir::Method::Proportional,
        min: None,
        max: None,
        seed: 0,
        output: Vec::new(),
        clauses: ir::Clauses::default(),
    }
}
