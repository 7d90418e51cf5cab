//! Column and value types as the checker sees them (engine types map onto these).

use std::fmt;

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
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Decimal(d) => f.write_str(d),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Date(d) => write!(f, "@{d}"),
            Value::Timestamp(t) => write!(f, "@{t}"),
        }
    }
}
