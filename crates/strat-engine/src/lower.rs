//! Lowering checked expressions ([`strat_check::ir::Expr`]) to DataFusion
//! logical expressions.
//!
//! # Semantics kept exactly (docs/spec.md §2)
//!
//! - Three-valued logic, comparisons (strings by UTF-8 bytes), `in`,
//!   `between` and `is null` are DataFusion's, which are SQL's.
//! - Integer `+ - *` and unary `-` are checked: an overflow is a run-time error
//!   (DataFusion's own operators wrap), through the [`CheckedInt`] UDF over
//!   Int64.
//! - `/` always yields Float64 (both sides are cast to Float64 first).
//! - `like` has no escape character: each `\` of the pattern is doubled
//!   before it reaches DataFusion's LIKE (whose escape is `\`).
//! - `round floor ceil` return Int64 through the [`ToInt`] UDF: `round` is half
//!   away from zero; decimals are rounded exactly on their unscaled integers;
//!   a result outside Int64 (or NaN/infinity) is an error.
//! - `length` counts characters; `year month day` are Int64; `trim` trims
//!   spaces at both ends.
//! - Literals: dates are Date32, timestamps Timestamp(Nanosecond, None) (so a
//!   zone-less column compares as the same wall-clock value), decimals
//!   Decimal128 with the precision and scale they were written with.
//! - `bucket(x, [b1..bk])` is a CASE: NULL for NULL x, else the label of the
//!   first interval whose upper edge is above x.
//! - Unit aggregates are not lowered here ([`LowerError::Unsupported`]): the
//!   runner ([`crate::run`]) computes them per unit and replaces each by a
//!   column before lowering the rest of the stratum expression.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Float64Type, TimeUnit};
use datafusion::common::{Column as DfColumn, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::expr::{Case, InList, Like};
use datafusion::logical_expr::{
    Between, BinaryExpr, ColumnarValue, Expr, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility, cast, lit,
};
use strat_check::Type;
use strat_check::Value;
use strat_check::ir::{self, BinaryOp, ExprKind, Func, UnaryOp};

/// Why an expression could not be lowered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LowerError {
    /// A construct the native runner does not run yet.
    Unsupported(String),
    /// A literal that does not fit its type (normally caught by the checker).
    BadLiteral(String),
    /// `Expr::Stratum` outside a rule predicate, or an index out of range.
    StratumOutOfScope(usize),
}

impl fmt::Display for LowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LowerError::Unsupported(what) => {
                write!(f, "{what} is not supported by the native runner yet")
            }
            LowerError::BadLiteral(what) => write!(f, "bad literal: {what}"),
            LowerError::StratumOutOfScope(i) => write!(
                f,
                "stratum value {i} is used outside a rule predicate (internal error)"
            ),
        }
    }
}

impl std::error::Error for LowerError {}

/// A column reference by exact name (no parsing of dots or case folding).
pub fn column(name: &str) -> Expr {
    Expr::Column(DfColumn::new_unqualified(name))
}

/// Lowers a checked expression. `strata` gives the expression that stands for
/// each stratum value (`ExprKind::Stratum(i)`, only in rule predicates), e.g. a
/// column of a table of stratum tuples.
pub fn lower_expr(e: &ir::Expr, strata: Option<&[Expr]>) -> Result<Expr, LowerError> {
    let low = |x: &ir::Expr| lower_expr(x, strata);
    let boxed = |x: &ir::Expr| low(x).map(Box::new);
    Ok(match &e.kind {
        ExprKind::Column(name) => column(name),
        ExprKind::Stratum(i) => strata
            .and_then(|s| s.get(*i))
            .cloned()
            .ok_or(LowerError::StratumOutOfScope(*i))?,
        ExprKind::Literal(v) => lit(scalar(v)?),
        ExprKind::Unary { op, expr } => match op {
            UnaryOp::Not => Expr::Not(boxed(expr)?),
            UnaryOp::Neg if is_int(&e.ty) => checked(IntOp::Sub, lit(0i64), as_i64(low(expr)?)),
            UnaryOp::Neg => Expr::Negative(boxed(expr)?),
        },
        ExprKind::Binary { op, left, right } => {
            // Float with decimal: DataFusion would go to a (narrow) decimal; the
            // language's type is float.
            let float = [&left.ty, &right.ty].contains(&&Type::Float) || e.ty == Type::Float;
            let (l, r) = (
                to_float_if(low(left)?, &left.ty, float),
                to_float_if(low(right)?, &right.ty, float),
            );
            let df_op = match op {
                BinaryOp::Or => Operator::Or,
                BinaryOp::And => Operator::And,
                BinaryOp::Eq => Operator::Eq,
                BinaryOp::NotEq => Operator::NotEq,
                BinaryOp::Lt => Operator::Lt,
                BinaryOp::LtEq => Operator::LtEq,
                BinaryOp::Gt => Operator::Gt,
                BinaryOp::GtEq => Operator::GtEq,
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul if is_int(&e.ty) => {
                    let op = match op {
                        BinaryOp::Add => IntOp::Add,
                        BinaryOp::Sub => IntOp::Sub,
                        _ => IntOp::Mul,
                    };
                    return Ok(checked(op, as_i64(l), as_i64(r)));
                }
                BinaryOp::Add => Operator::Plus,
                BinaryOp::Sub => Operator::Minus,
                BinaryOp::Mul => Operator::Multiply,
                BinaryOp::Div => {
                    return Ok(binary(
                        cast(l, DataType::Float64),
                        Operator::Divide,
                        cast(r, DataType::Float64),
                    ));
                }
            };
            binary(l, df_op, r)
        }
        ExprKind::InList {
            expr,
            list,
            negated,
        } => {
            let float = std::iter::once(&**expr)
                .chain(list)
                .any(|x| x.ty == Type::Float);
            let f = |x: &ir::Expr| Ok::<_, LowerError>(to_float_if(low(x)?, &x.ty, float));
            Expr::InList(InList::new(
                Box::new(f(expr)?),
                list.iter().map(f).collect::<Result<_, _>>()?,
                *negated,
            ))
        }
        ExprKind::Between {
            expr,
            low: lo,
            high,
            negated,
        } => {
            let float = [&expr.ty, &lo.ty, &high.ty].contains(&&Type::Float);
            let f =
                |x: &ir::Expr| Ok::<_, LowerError>(Box::new(to_float_if(low(x)?, &x.ty, float)));
            Expr::Between(Between::new(f(expr)?, *negated, f(lo)?, f(high)?))
        }
        ExprKind::IsNull { expr, negated } => {
            if *negated {
                Expr::IsNotNull(boxed(expr)?)
            } else {
                Expr::IsNull(boxed(expr)?)
            }
        }
        ExprKind::Like {
            expr,
            pattern,
            negated,
        } => {
            // No escape character in the language; DataFusion's is `\`.
            let pattern = match &pattern.kind {
                ExprKind::Literal(Value::String(p)) => lit(p.replace('\\', "\\\\")),
                _ => datafusion::functions::string::replace().call(vec![
                    low(pattern)?,
                    lit("\\"),
                    lit("\\\\"),
                ]),
            };
            Expr::Like(Like::new(
                *negated,
                boxed(expr)?,
                Box::new(pattern),
                None,
                false,
            ))
        }
        ExprKind::Func { func, args } => {
            let float = *func == Func::Coalesce && e.ty == Type::Float;
            let args: Vec<Expr> = args
                .iter()
                .map(|x| Ok(to_float_if(low(x)?, &x.ty, float)))
                .collect::<Result<_, LowerError>>()?;
            function(*func, args)?
        }
        ExprKind::Case { whens, otherwise } => {
            let float = e.ty == Type::Float;
            let f =
                |x: &ir::Expr| Ok::<_, LowerError>(Box::new(to_float_if(low(x)?, &x.ty, float)));
            Expr::Case(Case::new(
                None,
                whens
                    .iter()
                    .map(|(w, t)| Ok((boxed(w)?, f(t)?)))
                    .collect::<Result<_, LowerError>>()?,
                otherwise.as_deref().map(f).transpose()?,
            ))
        }
        ExprKind::Bucket {
            expr,
            edges,
            labels,
        } => bucket(low(expr)?, expr.ty == Type::Float, edges, labels)?,
        ExprKind::Aggregate { .. } => {
            return Err(LowerError::Unsupported(
                "a unit aggregate (count/min/max/sum/avg/first/last) in `stratify by`".into(),
            ));
        }
    })
}

fn is_int(t: &Type) -> bool {
    matches!(t, Type::Int)
}

fn binary(l: Expr, op: Operator, r: Expr) -> Expr {
    Expr::BinaryExpr(BinaryExpr::new(Box::new(l), op, Box::new(r)))
}

fn as_i64(e: Expr) -> Expr {
    cast(e, DataType::Int64)
}

fn function(func: Func, mut args: Vec<Expr>) -> Result<Expr, LowerError> {
    use datafusion::functions::{core, datetime, math, string, unicode};
    let date_part = |part: &str, args: Vec<Expr>| {
        let mut a = vec![lit(part)];
        a.extend(args);
        as_i64(datetime::date_part().call(a))
    };
    Ok(match func {
        Func::Lower => string::lower().call(args),
        Func::Upper => string::upper().call(args),
        Func::Trim => string::btrim().call(args),
        Func::Length => as_i64(unicode::character_length().call(args)),
        Func::Substr => {
            for a in args.iter_mut().skip(1) {
                *a = as_i64(std::mem::replace(a, lit(ScalarValue::Null)));
            }
            unicode::substr().call(args)
        }
        Func::Coalesce => core::coalesce().call(args),
        Func::Abs => math::abs().call(args),
        Func::Year => date_part("year", args),
        Func::Month => date_part("month", args),
        Func::Day => date_part("day", args),
        Func::Round => to_int(Rounding::Round, args),
        Func::Floor => to_int(Rounding::Floor, args),
        Func::Ceil => to_int(Rounding::Ceil, args),
    })
}

/// Casts a decimal operand to Float64 when the operation is in floats.
fn to_float_if(e: Expr, ty: &Type, float: bool) -> Expr {
    if float && *ty == Type::Decimal {
        cast(e, DataType::Float64)
    } else {
        e
    }
}

fn bucket(x: Expr, float: bool, edges: &[Value], labels: &[String]) -> Result<Expr, LowerError> {
    if labels.len() != edges.len() + 1 {
        return Err(LowerError::BadLiteral(format!(
            "bucket with {} edges and {} labels",
            edges.len(),
            labels.len()
        )));
    }
    let mut whens = vec![(
        Box::new(Expr::IsNull(Box::new(x.clone()))),
        Box::new(lit(ScalarValue::Utf8(None))),
    )];
    for (edge, label) in edges.iter().zip(labels) {
        whens.push((
            Box::new(binary(
                x.clone(),
                Operator::Lt,
                to_float_if(lit(scalar(edge)?), &edge.ty(), float),
            )),
            Box::new(lit(label.as_str())),
        ));
    }
    let last = labels.last().expect("at least one label");
    Ok(Expr::Case(Case::new(
        None,
        whens,
        Some(Box::new(lit(last.as_str()))),
    )))
}

/// A literal or param value as a DataFusion scalar.
pub fn scalar(v: &Value) -> Result<ScalarValue, LowerError> {
    Ok(match v {
        Value::Null => ScalarValue::Null,
        Value::Int(i) => ScalarValue::Int64(Some(*i)),
        Value::Float(f) => ScalarValue::Float64(Some(*f)),
        Value::Decimal(d) => {
            let (unscaled, precision, scale) =
                decimal_parts(d).ok_or_else(|| LowerError::BadLiteral(format!("decimal {d}")))?;
            ScalarValue::Decimal128(Some(unscaled), precision, scale)
        }
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::Date(d) => ScalarValue::Date32(Some(
            parse_date(d).ok_or_else(|| LowerError::BadLiteral(format!("date {d}")))?,
        )),
        Value::Timestamp(t) => ScalarValue::TimestampNanosecond(
            Some(
                parse_timestamp_nanos(t)
                    .ok_or_else(|| LowerError::BadLiteral(format!("timestamp {t}")))?,
            ),
            None,
        ),
    })
}

/// `-12.50` → (-1250, precision 4, scale 2).
fn decimal_parts(text: &str) -> Option<(i128, u8, i8)> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits: String = format!("{int}{frac}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    let precision = trimmed.len().max(frac.len()).max(1);
    if precision > 38 {
        return None;
    }
    let mut unscaled: i128 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().ok()?
    };
    if negative {
        unscaled = -unscaled;
    }
    Some((unscaled, precision as u8, frac.len() as i8))
}

/// Days since 1970-01-01 of the proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` (a leading `-` allowed) as days since the epoch.
pub fn parse_date(text: &str) -> Option<i32> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let mut parts = body.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if negative { -y } else { y };
    i32::try_from(days_from_civil(y, m, d)).ok()
}

/// `YYYY-MM-DDTHH:MM:SS[.f]` (or a space for `T`) as nanoseconds since the epoch.
pub fn parse_timestamp_nanos(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(['T', ' '])?;
    let days = i64::from(parse_date(date)?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut parts = hms.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let mi: i64 = parts.next()?.parse().ok()?;
    let s: i64 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
    if h > 23 || mi > 59 || s > 60 || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let seconds = days * 86_400 + h * 3_600 + mi * 60 + s;
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

// ------------------------------------------------------------------ UDFs

/// A checked Int64 operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntOp {
    Add,
    Sub,
    Mul,
}

/// `strat_add/strat_sub/strat_mul(Int64, Int64) -> Int64`, failing on overflow.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CheckedInt {
    op: IntOp,
    signature: Signature,
}

fn checked(op: IntOp, l: Expr, r: Expr) -> Expr {
    let udf = ScalarUDF::from(CheckedInt {
        op,
        signature: Signature::exact(
            vec![DataType::Int64, DataType::Int64],
            Volatility::Immutable,
        ),
    });
    Arc::new(udf).call(vec![l, r])
}

impl ScalarUDFImpl for CheckedInt {
    fn name(&self) -> &str {
        match self.op {
            IntOp::Add => "strat_add",
            IntOp::Sub => "strat_sub",
            IntOp::Mul => "strat_mul",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [l, r] = arrays.as_slice() else {
            return exec_err!("{} takes two arguments", self.name());
        };
        let result = match self.op {
            IntOp::Add => numeric::add(l, r),
            IntOp::Sub => numeric::sub(l, r),
            IntOp::Mul => numeric::mul(l, r),
        };
        match result {
            Ok(a) => Ok(ColumnarValue::Array(a)),
            Err(e) => exec_err!(
                "integer overflow in `{}` ({e}); cast to a float with `* 1.0` or keep the numbers smaller",
                match self.op {
                    IntOp::Add => "+",
                    IntOp::Sub => "-",
                    IntOp::Mul => "*",
                }
            ),
        }
    }
}

/// How [`ToInt`] makes an integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// Half away from zero.
    Round,
    Floor,
    Ceil,
}

/// `strat_round/strat_floor/strat_ceil(number) -> Int64`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToInt {
    mode: Rounding,
    signature: Signature,
}

fn to_int(mode: Rounding, args: Vec<Expr>) -> Expr {
    let udf = ScalarUDF::from(ToInt {
        mode,
        signature: Signature::any(1, Volatility::Immutable),
    });
    Arc::new(udf).call(args)
}

/// Rounds `v / 10^scale` to an integer, exactly.
fn round_unscaled(v: i128, scale: i8, mode: Rounding) -> Option<i128> {
    if scale <= 0 {
        return v.checked_mul(10i128.checked_pow(u32::from(scale.unsigned_abs()))?);
    }
    let div = 10i128.checked_pow(u32::from(scale.unsigned_abs()))?;
    let (q, r) = (v / div, v % div);
    Some(match mode {
        Rounding::Floor if r < 0 => q - 1,
        Rounding::Ceil if r > 0 => q + 1,
        Rounding::Round if r.unsigned_abs() * 2 >= div.unsigned_abs() => q + v.signum(),
        _ => q,
    })
}

impl ScalarUDFImpl for ToInt {
    fn name(&self) -> &str {
        match self.mode {
            Rounding::Round => "strat_round",
            Rounding::Floor => "strat_floor",
            Rounding::Ceil => "strat_ceil",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args {
            [t] if t.is_numeric() || *t == DataType::Null => Ok(DataType::Int64),
            _ => plan_err!("{} takes one number, got {args:?}", self.name()),
        }
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [x] = arrays.as_slice() else {
            return exec_err!("{} takes one argument", self.name());
        };
        let strict = CastOptions {
            safe: false,
            ..Default::default()
        };
        let name = &self.name()[6..];
        let out_of_range = || {
            exec_err!(
                "{name}: the result does not fit in a 64-bit integer; use a float expression instead"
            )
        };
        let out: ArrayRef = match x.data_type() {
            DataType::Null => Arc::new(Int64Array::new_null(x.len())),
            t if t.is_integer() => cast_with_options(x, &DataType::Int64, &strict)?,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                let f = cast_with_options(x, &DataType::Float64, &strict)?;
                let f: &Float64Array = f.as_primitive::<Float64Type>();
                let mut values = Vec::with_capacity(f.len());
                for i in 0..f.len() {
                    let v = f.value(i);
                    let r = match self.mode {
                        Rounding::Round => v.round(),
                        Rounding::Floor => v.floor(),
                        Rounding::Ceil => v.ceil(),
                    };
                    if f.is_valid(i)
                        && !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r)
                    {
                        return out_of_range();
                    }
                    values.push(if f.is_valid(i) { r as i64 } else { 0 });
                }
                Arc::new(Int64Array::new(values.into(), f.nulls().cloned()))
            }
            DataType::Decimal32(_, s)
            | DataType::Decimal64(_, s)
            | DataType::Decimal128(_, s)
            | DataType::Decimal256(_, s) => {
                let d = cast_with_options(x, &DataType::Decimal128(38, *s), &strict)?;
                let d = d.as_primitive::<Decimal128Type>();
                let mut values = Vec::with_capacity(d.len());
                for i in 0..d.len() {
                    if d.is_null(i) {
                        values.push(0);
                        continue;
                    }
                    match round_unscaled(d.value(i), *s, self.mode)
                        .and_then(|v| i64::try_from(v).ok())
                    {
                        Some(v) => values.push(v),
                        None => return out_of_range(),
                    }
                }
                Arc::new(Int64Array::new(values.into(), d.nulls().cloned()))
            }
            other => return exec_err!("{name} needs a number, got {other}"),
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// The Arrow type a checker type lowers to where a type must be named.
pub fn arrow_type(t: &Type) -> Option<DataType> {
    Some(match t {
        Type::Int => DataType::Int64,
        Type::Float => DataType::Float64,
        Type::String => DataType::Utf8,
        Type::Bool => DataType::Boolean,
        Type::Date => DataType::Date32,
        Type::Timestamp => DataType::Timestamp(TimeUnit::Nanosecond, None),
        Type::Null => DataType::Null,
        Type::Decimal | Type::Other(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2018-06-01"), Some(17683));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        assert_eq!(parse_date("0001-01-01"), Some(-719162));
        assert_eq!(parse_date("9999-12-31"), Some(2932896));
        assert_eq!(parse_date("2018-13-01"), None);
        // 2018-06-01T12:34:56 = 1527856496 s
        assert_eq!(
            parse_timestamp_nanos("2018-06-01T12:34:56"),
            Some(1_527_856_496_000_000_000)
        );
        assert_eq!(
            parse_timestamp_nanos("2018-06-01T12:34:56.5"),
            Some(1_527_856_496_500_000_000)
        );
        assert_eq!(
            parse_timestamp_nanos("1969-12-31T23:59:59.999999999"),
            Some(-1)
        );
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal_parts("3.50"), Some((350, 3, 2)));
        assert_eq!(decimal_parts("-0.05"), Some((-5, 2, 2)));
        assert_eq!(decimal_parts("12"), Some((12, 2, 0)));
        assert_eq!(decimal_parts("0"), Some((0, 1, 0)));
        assert_eq!(decimal_parts("x"), None);
    }

    #[test]
    fn exact_rounding() {
        use Rounding::*;
        let r = |v, s, m| round_unscaled(v, s, m).unwrap();
        assert_eq!(r(25, 1, Round), 3);
        assert_eq!(r(-25, 1, Round), -3);
        assert_eq!(r(24, 1, Round), 2);
        assert_eq!(r(-24, 1, Round), -2);
        assert_eq!(r(-21, 1, Floor), -3);
        assert_eq!(r(21, 1, Floor), 2);
        assert_eq!(r(-21, 1, Ceil), -2);
        assert_eq!(r(21, 1, Ceil), 3);
        assert_eq!(r(-20, 1, Floor), -2);
        assert_eq!(r(5, 0, Round), 5);
    }
}
