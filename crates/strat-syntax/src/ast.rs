//! The syntax tree of a rule file. Every node carries its byte span.

use crate::span::Span;

/// A name as written: a plain identifier or a `` `backticked` `` one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
    pub quoted: bool,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Table(TableDecl),
    Param(ParamDecl),
    Statement(Box<Statement>),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Table(t) => t.span,
            Item::Param(p) => p.span,
            Item::Statement(s) => s.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableDecl {
    pub name: Ident,
    pub path: StringLit,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringLit {
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamType {
    Int,
    Float,
    String,
    Bool,
    Date,
    Timestamp,
}

impl ParamType {
    pub fn parse(word: &str) -> Option<ParamType> {
        Some(match word {
            "int" => ParamType::Int,
            "float" => ParamType::Float,
            "string" => ParamType::String,
            "bool" => ParamType::Bool,
            "date" => ParamType::Date,
            "timestamp" => ParamType::Timestamp,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::String => "string",
            ParamType::Bool => "bool",
            ParamType::Date => "date",
            ParamType::Timestamp => "timestamp",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    pub name: Ident,
    pub ty: ParamType,
    pub ty_span: Span,
    pub value: Literal,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementKind {
    Sample,
    Split,
}

impl StatementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StatementKind::Sample => "sample",
            StatementKind::Split => "split",
        }
    }
}

/// A `sample` or `split` statement; the grammar guarantees which clauses each kind has.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub name: Option<Ident>,
    pub kind: StatementKind,
    pub keyword_span: Span,
    pub source: Ident,
    /// `as of T by COLUMN …`: each unit's state at a point in time (§4.5).
    pub as_of: Option<AsOf>,
    pub filter: Option<Expr>,
    pub unit: Option<Ident>,
    /// `having PRED`: a condition on unit aggregates.
    pub having: Option<Expr>,
    /// `keep units in SOURCE2`.
    pub keep: Option<Ident>,
    pub exclude: Option<Ident>,
    pub strata: Vec<StratumItem>,
    /// The `stratify by` keywords, for diagnostics about the clause as a whole.
    pub stratify_span: Option<Span>,
    pub take: Option<Take>,
    pub allocate: Option<Allocate>,
    pub min: Option<IntValue>,
    pub max: Option<IntValue>,
    pub seed: Option<IntValue>,
    pub output: Option<Vec<Ident>>,
    pub into: Option<Into>,
    pub span: Span,
}

/// `as of T by COLUMN [within N days|hours] [ties by COLUMN [desc]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct AsOf {
    pub at: AsOfTime,
    pub by: Ident,
    pub within: Option<Within>,
    pub ties: Option<Ties>,
    pub span: Span,
}

/// The `T` of `as of T`: a date or timestamp literal, or a param.
#[derive(Clone, Debug, PartialEq)]
pub enum AsOfTime {
    Literal(Literal),
    Param(Ident),
}

impl AsOfTime {
    pub fn span(&self) -> Span {
        match self {
            AsOfTime::Literal(l) => l.span(),
            AsOfTime::Param(p) => p.span,
        }
    }
}

/// `within N days` or `within N hours`.
#[derive(Clone, Debug, PartialEq)]
pub struct Within {
    pub amount: IntValue,
    pub hours: bool,
    pub span: Span,
}

/// `ties by COLUMN [desc]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ties {
    pub column: Ident,
    pub desc: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StratumItem {
    pub expr: Expr,
    pub alias: Option<Ident>,
    pub span: Span,
}

/// An integer literal or an int param.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntValue {
    /// Digits without `_` separators (possibly too large for any integer type).
    Literal {
        digits: String,
        span: Span,
    },
    Param(Ident),
}

impl IntValue {
    pub fn span(&self) -> Span {
        match self {
            IntValue::Literal { span, .. } => *span,
            IntValue::Param(i) => i.span,
        }
    }
}

/// A percentage: `12.5%` or `name%` for a numeric param.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Percent {
    /// The number before `%`, without `_` separators.
    Literal {
        number: String,
        span: Span,
    },
    Param {
        name: Ident,
        span: Span,
    },
}

impl Percent {
    pub fn span(&self) -> Span {
        match self {
            Percent::Literal { span, .. } | Percent::Param { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum TakeAmount {
    All,
    Count(IntValue),
    Percent(Percent),
    /// `take about P%`, or `take about` alone (`None`: each stratum's rule rate).
    About(Option<Percent>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Take {
    pub amount: TakeAmount,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    Proportional,
    Equal,
    Neyman(Ident),
    /// The exponent as written (a decimal).
    Power {
        q: String,
        q_span: Span,
    },
}

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::Proportional => "proportional",
            Method::Equal => "equal",
            Method::Neyman(_) => "neyman",
            Method::Power { .. } => "power",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Amount {
    All,
    None,
    Count(IntValue),
    Rate(Percent),
    Share(Percent),
    Method(Method),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// `None` for the `else` rule.
    pub predicate: Option<Expr>,
    pub amount: Amount,
    pub amount_span: Span,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Allocate {
    Method { method: Method, span: Span },
    Rules { rules: Vec<Rule>, span: Span },
}

impl Allocate {
    pub fn span(&self) -> Span {
        match self {
            Allocate::Method { span, .. } | Allocate::Rules { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SplitPart {
    pub name: Ident,
    pub share: Percent,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum IntoKind {
    Parts { about: bool, parts: Vec<SplitPart> },
    Folds(IntValue),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Into {
    pub kind: IntoKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Literal {
    /// Integer digits without `_`.
    Integer {
        digits: String,
        span: Span,
    },
    /// A decimal such as `3.5`, without `_`.
    Decimal {
        text: String,
        span: Span,
    },
    /// A negative number written in a `param` declaration.
    Negative(Box<Literal>),
    String {
        value: String,
        span: Span,
    },
    Bool {
        value: bool,
        span: Span,
    },
    Null {
        span: Span,
    },
    /// `@YYYY-MM-DD` (text without `@`).
    Date {
        text: String,
        span: Span,
    },
    /// `@YYYY-MM-DDTHH:MM[:SS[.f]]` (text without `@`).
    Timestamp {
        text: String,
        span: Span,
    },
}

impl Literal {
    pub fn span(&self) -> Span {
        match self {
            Literal::Negative(l) => Span::new(l.span().start - 1, l.span().end),
            Literal::Integer { span, .. }
            | Literal::Decimal { span, .. }
            | Literal::String { span, .. }
            | Literal::Bool { span, .. }
            | Literal::Null { span }
            | Literal::Date { span, .. }
            | Literal::Timestamp { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Not,
    Neg,
}

/// A call argument: an expression or a `[...]` list (bucket edges).
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Expr(Expr),
    List { items: Vec<Expr>, span: Span },
}

impl Arg {
    pub fn span(&self) -> Span {
        match self {
            Arg::Expr(e) => e.span,
            Arg::List { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Literal(Literal),
    /// A column, param or `as` name; the checker resolves which.
    Name(Ident),
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
    /// `f(args)`, `count(*)` (`star`), `last(x by t)` (`order_by`).
    Call {
        func: Ident,
        args: Vec<Arg>,
        star: bool,
        order_by: Option<Box<Expr>>,
    },
    Case {
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
}

impl Expr {
    /// Visits this expression and every sub-expression, parents first.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        match &self.kind {
            ExprKind::Literal(_) | ExprKind::Name(_) => {}
            ExprKind::Unary { expr, .. } | ExprKind::IsNull { expr, .. } => expr.walk(f),
            ExprKind::Binary { left, right, .. } => {
                left.walk(f);
                right.walk(f);
            }
            ExprKind::InList { expr, list, .. } => {
                expr.walk(f);
                list.iter().for_each(|e| e.walk(f));
            }
            ExprKind::Between {
                expr, low, high, ..
            } => {
                expr.walk(f);
                low.walk(f);
                high.walk(f);
            }
            ExprKind::Like { expr, pattern, .. } => {
                expr.walk(f);
                pattern.walk(f);
            }
            ExprKind::Call { args, order_by, .. } => {
                for a in args {
                    match a {
                        Arg::Expr(e) => e.walk(f),
                        Arg::List { items, .. } => items.iter().for_each(|e| e.walk(f)),
                    }
                }
                if let Some(o) = order_by {
                    o.walk(f);
                }
            }
            ExprKind::Case { whens, otherwise } => {
                for (w, t) in whens {
                    w.walk(f);
                    t.walk(f);
                }
                if let Some(o) = otherwise {
                    o.walk(f);
                }
            }
        }
    }
}
