//! The checked program: names resolved, params substituted, types known.
//! This is what the engine lowers and the SQL exporter translates.

use num_rational::BigRational;

use crate::types::{Column, Type, Value};
use strat_syntax::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// Tables in first-use order, with the file each is bound to.
    pub tables: Vec<TableRef>,
    pub statements: Vec<Statement>,
}

impl Program {
    pub fn statement(&self, name: &str) -> Option<&Statement> {
        self.statements
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableRef {
    pub name: String,
    pub columns: Vec<Column>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Table(String),
    /// Index into [`Program::statements`] (always an earlier one).
    Statement(usize),
}

/// What a statement makes of its units: a sample, or a split with its parts.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Sample,
    Split(Split),
}

impl Kind {
    /// The statement's keyword.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Sample => "sample",
            Kind::Split(_) => "split",
        }
    }

    pub fn split(&self) -> Option<&Split> {
        match self {
            Kind::Sample => None,
            Kind::Split(split) => Some(split),
        }
    }

    pub fn is_sample(&self) -> bool {
        matches!(self, Kind::Sample)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub name: Option<String>,
    pub kind: Kind,
    pub span: Span,
    pub source: Source,
    /// The columns of the source, in order.
    pub input: Vec<Column>,
    /// `as of T by COLUMN …`: the statement reads each unit's state row (§4.5).
    pub as_of: Option<AsOf>,
    pub filter: Option<Expr>,
    pub unit: Option<Column>,
    /// `having PRED`: units whose aggregates make it true are kept (§4.4).
    pub having: Option<Having>,
    /// Only units whose key text appears in this column of that source are kept.
    pub keep: Option<(Source, Column)>,
    /// Units whose key text appears in this column of that source are removed.
    pub exclude: Option<(Source, Column)>,
    pub strata: Vec<Stratum>,
    pub amount: Amount,
    pub rules: Vec<Rule>,
    /// The method for strata no rule matches (proportional when none is named).
    pub method: Method,
    pub min: Option<u64>,
    pub max: Option<u64>,
    pub seed: u64,
    pub output: Vec<Output>,
    /// Where the clauses are in the rule file, for run-time errors to point at.
    pub clauses: Clauses,
}

/// The places of a statement's clauses in the rule file (byte spans; `None`
/// for a clause the statement does not have).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Clauses {
    /// The statement's head: its name (if any), keyword and source.
    pub head: Span,
    pub as_of: Option<Span>,
    pub filter: Option<Span>,
    pub unit: Option<Span>,
    pub exclude: Option<Span>,
    /// `stratify by` and its expressions.
    pub stratify: Option<Span>,
    pub take: Option<Span>,
    /// `allocate {` (a rule block) or `allocate METHOD`.
    pub allocate: Option<Span>,
    /// `min K per stratum`, `max K per stratum`.
    pub min: Option<Span>,
    pub max: Option<Span>,
    pub into: Option<Span>,
}

impl Statement {
    /// The result columns, in order, with their types.
    pub fn output_columns(&self) -> Vec<Column> {
        self.output
            .iter()
            .map(|o| Column::new(o.name(), o.ty(self)))
            .collect()
    }

    /// Does the statement compute over each unit's rows: unit aggregates in
    /// `stratify by`, or a `having` condition?
    pub fn has_aggregates(&self) -> bool {
        self.having.is_some() || self.strata.iter().any(|s| s.expr.has_aggregate())
    }
}

/// `as of T by COLUMN [within N days|hours] [ties by COLUMN [desc]]`
/// (§4.5): a unit's state is its row with the greatest `by` in the window,
/// ties ordered by `ties`; everything else in the statement reads only the
/// state rows.
#[derive(Clone, Debug, PartialEq)]
pub struct AsOf {
    /// `T`, a date or a timestamp (a param's value substituted).
    pub at: Value,
    /// The column whose latest value in the window picks the state row.
    pub by: Column,
    /// The rows in the window: `by` compared with literal bounds of its own
    /// type, computed from `T` and `within` at check time.
    pub window: Expr,
    /// `within N days` / `within N hours` as written, for reports.
    pub within: Option<String>,
    /// `ties by COLUMN`: of rows tied on `by`, the greatest wins (the
    /// smallest with `desc`); NULL never wins over a value.
    pub ties: Option<Ties>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ties {
    pub column: Column,
    pub desc: bool,
}

impl AsOf {
    /// The clause as a reader would write it, `T` as a literal:
    /// `as of @2018-06-01 by snapshot_date within 30 days ties by ingested_at`.
    pub fn text(&self) -> String {
        let mut s = format!("as of {} by {}", self.at, self.by.name);
        if let Some(w) = &self.within {
            s.push_str(&format!(" within {w}"));
        }
        if let Some(t) = &self.ties {
            s.push_str(&format!(" ties by {}", t.column.name));
            if t.desc {
                s.push_str(" desc");
            }
        }
        s
    }
}

/// `having PRED`: a bool expression over unit aggregates, literals and params
/// (no column outside an aggregate), with its text as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Having {
    pub expr: Expr,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stratum {
    /// The `as` name, or the expression's text.
    pub name: String,
    pub has_alias: bool,
    pub expr: Expr,
    /// For `bucket(...)` at the top: the labels in interval order (stratum order uses it).
    pub bucket_labels: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Amount {
    /// `take INT`
    Count(u64),
    /// `take P%` (P as a fraction 0..=1)
    Fraction(BigRational),
    /// `take all` or no `take`
    All,
    /// `take about P%`
    About(BigRational),
    /// `take about` without a percentage: each unit is kept with its
    /// stratum's rule rate (every stratum has a `rate`, `all` or `none` rule).
    AboutRates,
}

impl Amount {
    /// Bernoulli sampling (`take about`, with or without a percentage)?
    pub fn is_about(&self) -> bool {
        matches!(self, Amount::About(_) | Amount::AboutRates)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum RuleAmount {
    All,
    None,
    Count(u64),
    Rate(BigRational),
    Share(BigRational),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    Proportional,
    Equal,
    /// The column whose per-stratum standard deviation weighs the stratum.
    Neyman(Column),
    Power(BigRational),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Over stratum values only (`Expr::Stratum`); `None` for `else`.
    pub predicate: Option<Expr>,
    /// `None` when the rule hands its strata to the method.
    pub amount: Option<RuleAmount>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub about: bool,
    /// Split names with their shares (exact fractions summing to 1), in listing order.
    pub parts: Vec<(String, BigRational)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// A source column, by name and type.
    Column(Column),
    /// A stratum value under its `as` name.
    Stratum {
        index: usize,
        name: String,
    },
    Weight,
    StratumText,
    SplitName,
}

impl Output {
    pub fn name(&self) -> &str {
        match self {
            Output::Column(c) => &c.name,
            Output::Stratum { name, .. } => name,
            Output::Weight => "_weight",
            Output::StratumText => "_stratum",
            Output::SplitName => "_split",
        }
    }

    pub fn ty(&self, st: &Statement) -> Type {
        match self {
            Output::Column(c) => c.ty.clone(),
            Output::Stratum { index, .. } => st.strata[*index].expr.ty.clone(),
            Output::Weight => Type::Float,
            Output::StratumText | Output::SplitName => Type::String,
        }
    }
}

/// A typed expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub ty: Type,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Lower,
    Upper,
    Length,
    Trim,
    Substr,
    Coalesce,
    Abs,
    Year,
    Month,
    Day,
    Round,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    Count,
    Min,
    Max,
    Sum,
    Avg,
    First,
    Last,
    /// The most frequent non-NULL value; ties to the smallest (§2.7).
    Mode,
}

pub use strat_syntax::ast::{BinaryOp, UnaryOp};

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Column(String),
    /// A stratum value (only in rule predicates).
    Stratum(usize),
    Literal(Value),
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
    },
    Func {
        func: Func,
        args: Vec<Expr>,
    },
    Case {
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    /// `bucket(x, [edges])`: `labels[i]` for `edges[i-1] <= x < edges[i]`.
    Bucket {
        expr: Box<Expr>,
        edges: Vec<Value>,
        labels: Vec<String>,
    },
    /// A unit aggregate; `arg` is `None` for `count(*)`.
    Aggregate {
        func: Aggregate,
        arg: Option<Box<Expr>>,
        order_by: Option<Box<Expr>>,
    },
}

impl Expr {
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Column(_) | ExprKind::Stratum(_) | ExprKind::Literal(_) => vec![],
            ExprKind::Unary { expr, .. }
            | ExprKind::IsNull { expr, .. }
            | ExprKind::Bucket { expr, .. } => {
                vec![expr]
            }
            ExprKind::Binary { left, right, .. } => vec![left, right],
            ExprKind::InList { expr, list, .. } => std::iter::once(&**expr).chain(list).collect(),
            ExprKind::Between {
                expr, low, high, ..
            } => vec![expr, low, high],
            ExprKind::Like { expr, pattern, .. } => vec![expr, pattern],
            ExprKind::Func { args, .. } => args.iter().collect(),
            ExprKind::Case { whens, otherwise } => whens
                .iter()
                .flat_map(|(w, t)| [w, t])
                .chain(otherwise.as_deref())
                .collect(),
            ExprKind::Aggregate { arg, order_by, .. } => arg
                .as_deref()
                .into_iter()
                .chain(order_by.as_deref())
                .collect(),
        }
    }

    pub fn has_aggregate(&self) -> bool {
        matches!(self.kind, ExprKind::Aggregate { .. })
            || self.children().iter().any(|c| c.has_aggregate())
    }

    /// Columns this expression reads, outside and inside aggregates.
    pub fn columns(&self, out: &mut Vec<String>) {
        if let ExprKind::Column(c) = &self.kind
            && !out.contains(c)
        {
            out.push(c.clone());
        }
        for c in self.children() {
            c.columns(out);
        }
    }
}

/// One unit aggregate of `stratify by` or `having`: its function, argument and `by`.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitAggregate {
    pub func: Aggregate,
    pub arg: Option<Expr>,
    pub by: Option<Expr>,
}

/// The stratum expressions with their unit aggregates replaced by columns
/// `{prefix}j` (`None` for a stratum without aggregates), and the aggregates
/// in that numbering: what the native run and the SQL export both compute
/// per unit before strata are formed.
pub fn strata_over_aggregates(
    strata: &[Stratum],
    prefix: &str,
) -> (Vec<Option<Expr>>, Vec<UnitAggregate>) {
    let mut aggregates = Vec::new();
    let rewritten = strata
        .iter()
        .map(|s| {
            s.expr.has_aggregate().then(|| {
                let mut e = s.expr.clone();
                replace_aggregates(&mut e, prefix, &mut aggregates);
                e
            })
        })
        .collect();
    (rewritten, aggregates)
}

/// Replaces each unit aggregate in `e` by a column `{prefix}j` (of the
/// aggregate's type), collecting the aggregates in order (the native runner and the SQL exporter, each with its own prefix).
pub fn replace_aggregates(e: &mut Expr, prefix: &str, out: &mut Vec<UnitAggregate>) {
    use ExprKind as K;
    if let K::Aggregate {
        func,
        arg,
        order_by,
    } = &e.kind
    {
        out.push(UnitAggregate {
            func: *func,
            arg: arg.as_deref().cloned(),
            by: order_by.as_deref().cloned(),
        });
        e.kind = K::Column(format!("{prefix}{}", out.len() - 1));
        return;
    }
    match &mut e.kind {
        K::Column(_) | K::Stratum(_) | K::Literal(_) | K::Aggregate { .. } => {}
        K::Unary { expr, .. } | K::IsNull { expr, .. } | K::Bucket { expr, .. } => {
            replace_aggregates(expr, prefix, out);
        }
        K::Binary { left, right, .. } => {
            replace_aggregates(left, prefix, out);
            replace_aggregates(right, prefix, out);
        }
        K::InList { expr, list, .. } => {
            replace_aggregates(expr, prefix, out);
            for x in list {
                replace_aggregates(x, prefix, out);
            }
        }
        K::Between {
            expr, low, high, ..
        } => {
            replace_aggregates(expr, prefix, out);
            replace_aggregates(low, prefix, out);
            replace_aggregates(high, prefix, out);
        }
        K::Like { expr, pattern, .. } => {
            replace_aggregates(expr, prefix, out);
            replace_aggregates(pattern, prefix, out);
        }
        K::Func { args, .. } => {
            for x in args {
                replace_aggregates(x, prefix, out);
            }
        }
        K::Case { whens, otherwise } => {
            for (w, t) in whens {
                replace_aggregates(w, prefix, out);
                replace_aggregates(t, prefix, out);
            }
            if let Some(o) = otherwise {
                replace_aggregates(o, prefix, out);
            }
        }
    }
}
