//! Column and value types as the checker sees them (engine types map onto these).

use std::fmt;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{ToPrimitive, Zero};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    Int,
    Float,
    Decimal,
    String,
    Bool,
    Date,
    Timestamp,
    /// The type of a bare `null`: fits anywhere.
    Null,
    /// Anything else (lists, structs, binary…), by its engine name.
    Other(String),
}

impl Type {
    pub fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Decimal | Type::Null)
    }

    /// Can a unit key (spec §6) be made from this type?
    pub fn is_keyable(&self) -> bool {
        matches!(self, Type::Int | Type::String | Type::Date | Type::Bool)
    }

    /// Can values of these two types be compared?
    pub fn comparable(&self, other: &Type) -> bool {
        self == other
            || *self == Type::Null
            || *other == Type::Null
            || (self.is_numeric() && other.is_numeric())
    }

    /// The type both sides of a comparison, `case` or `coalesce` become.
    pub fn unify(&self, other: &Type) -> Option<Type> {
        match (self, other) {
            (a, b) if a == b => Some(a.clone()),
            (Type::Null, b) => Some(b.clone()),
            (a, Type::Null) => Some(a.clone()),
            (Type::Float, b) | (b, Type::Float) if b.is_numeric() => Some(Type::Float),
            (Type::Decimal, Type::Int) | (Type::Int, Type::Decimal) => Some(Type::Decimal),
            _ => None,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Type::Int => "int",
            Type::Float => "float",
            Type::Decimal => "decimal",
            Type::String => "string",
            Type::Bool => "bool",
            Type::Date => "date",
            Type::Timestamp => "timestamp",
            Type::Null => "null",
            Type::Other(name) => name,
        };
        f.write_str(s)
    }
}

/// A column of a table or statement result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: Type,
}

impl Column {
    pub fn new(name: impl Into<String>, ty: Type) -> Self {
        Column {
            name: name.into(),
            ty,
        }
    }
}

/// A constant: literal or param value, already checked against its type.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    /// An exact decimal as written (`3.50`), `-` allowed.
    Decimal(String),
    String(String),
    Bool(bool),
    /// `YYYY-MM-DD`.
    Date(String),
    /// `YYYY-MM-DDTHH:MM:SS[.f]`.
    Timestamp(String),
}

impl Value {
    pub fn ty(&self) -> Type {
        match self {
            Value::Null => Type::Null,
            Value::Int(_) => Type::Int,
            Value::Float(_) => Type::Float,
            Value::Decimal(_) => Type::Decimal,
            Value::String(_) => Type::String,
            Value::Bool(_) => Type::Bool,
            Value::Date(_) => Type::Date,
            Value::Timestamp(_) => Type::Timestamp,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Int(i) => write!(f, "{i}"),
            // The shortest text that reads back as the same f64 (`0.1`, `1e300`).
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Decimal(d) => f.write_str(d),
            // As a strat string literal, with strat's escapes (not Rust's).
            Value::String(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        '\t' => f.write_str("\\t")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
            Value::Bool(b) => write!(f, "{b}"),
            Value::Date(d) => write!(f, "@{d}"),
            Value::Timestamp(t) => write!(f, "@{t}"),
        }
    }
}

/// A fraction as a percentage for people: `3/10` is `30`, `1/8` is `12.5`
/// (exact whenever the decimal ends), `1/3` is `33.33…` (to two places, with
/// an ellipsis when it does not). The caller writes the `%`.
pub fn percent_text(fraction: &BigRational) -> String {
    let pct = fraction * BigRational::from_integer(BigInt::from(100));
    let mut den = pct.denom().clone();
    for p in [2u32, 5] {
        let p = BigInt::from(p);
        while (&den % &p).is_zero() {
            den /= &p;
        }
    }
    if den == BigInt::from(1) {
        // A terminating decimal: write it out exactly, trailing zeros dropped.
        let mut digits = 0;
        let mut scaled = pct.clone();
        while !scaled.is_integer() {
            scaled *= BigRational::from_integer(BigInt::from(10));
            digits += 1;
        }
        let n = scaled.to_integer();
        if digits == 0 {
            return n.to_string();
        }
        let sign = if n < BigInt::zero() { "-" } else { "" };
        let text = format!("{:0>width$}", n.magnitude(), width = digits + 1);
        let (int, frac) = text.split_at(text.len() - digits);
        return format!("{sign}{int}.{frac}");
    }
    format!("{:.2}…", pct.to_f64().unwrap_or(f64::NAN))
}

#[cfg(test)]
mod percent_tests {
    use super::*;

    fn frac(n: i64, d: i64) -> BigRational {
        BigRational::new(BigInt::from(n), BigInt::from(d))
    }

    #[test]
    fn strings_display_as_strat_literals() {
        let v = Value::String("a\"b\\c\nd\te ü\u{1f}".into());
        assert_eq!(v.to_string(), "\"a\\\"b\\\\c\\nd\\te ü\u{1f}\"");
    }

    #[test]
    fn percentages_read_as_people_write_them() {
        assert_eq!(percent_text(&frac(3, 10)), "30");
        assert_eq!(percent_text(&frac(1, 8)), "12.5");
        assert_eq!(percent_text(&frac(1, 1000)), "0.1");
        assert_eq!(percent_text(&frac(1, 200_000)), "0.0005");
        assert_eq!(percent_text(&frac(1, 1)), "100");
        assert_eq!(percent_text(&frac(0, 1)), "0");
        assert_eq!(percent_text(&frac(1, 3)), "33.33…");
        assert_eq!(percent_text(&frac(2, 3)), "66.67…");
        assert_eq!(percent_text(&frac(999, 1000)), "99.9");
    }
}
