//! The per-dialect spellings of `strat sql`, kept as data in one place.
//!
//! Every difference between the target engines that the exporter relies on is
//! a field of [`Spelling`] (a template where `{0}`, `{1}` stand for SQL
//! fragments) or a method of [`Dialect`]. Each was checked on the engine
//! (docs/spec.md, Appendix A): see `tests/integration/sql.rs` for the
//! conformance suite that runs the output on DuckDB, PostgreSQL, Spark and
//! DataFusion.

use std::fmt;

/// A target SQL engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    Spark,
    DuckDb,
    Postgres,
    DataFusion,
}

/// How one dialect spells what the exporter needs. `{0}` and `{1}` in a
/// template are replaced by (already parenthesised) SQL fragments.
#[derive(Debug)]
pub struct Spelling {
    /// Shown in messages and the header.
    pub name: &'static str,
    /// Identifier quote (doubled inside a name).
    pub ident_quote: char,
    /// String literals apply `\` escapes (Spark): `\` and `'` are written `\\`, `\'`.
    pub backslash_escapes: bool,
    /// The type of key texts and other strings.
    pub text_type: &'static str,
    pub double_type: &'static str,
    /// An integer type wide enough for `n × N_h` and `2^32`-scaled products.
    pub wide_int_type: &'static str,
    /// 32 lowercase hex digits of the md5 of a string's UTF-8 bytes.
    pub md5: &'static str,
    /// A date as `YYYY-MM-DD`.
    pub date_text: &'static str,
    /// A string of at most 8 hex digits (lowercase) as a non-negative integer.
    pub hex_to_int: HexToInt,
    /// Floor division of non-negative integers.
    pub int_div: &'static str,
    /// Makes a string compare and sort by its UTF-8 bytes.
    pub bytes_order: &'static str,
    /// A boolean expression that fails the query with message `{0}`.
    pub raise: &'static str,
    /// `{0} LIKE {1}` with no escape character (`{1}` is the language's pattern).
    pub like: Like,
    /// An aggregate that returns the value of a boolean column that is
    /// constant within the group (PostgreSQL has no `MIN(boolean)`).
    pub min_bool: &'static str,
    /// The largest of booleans (true when any is).
    pub max_bool: &'static str,
    /// A hint, after a sample's final `SELECT`, to send the selected units
    /// (at most n rows) to every task rather than shuffle the table's rows
    /// to join them; empty where the engine chooses by itself.
    pub broadcast_selected: &'static str,
    /// Between a CTE's name and `AS (`: asks the engine to inline a CTE read
    /// twice rather than store its result (for the per-row CTEs, cheaper to
    /// compute again than to hold: DuckDB stores every row otherwise).
    pub recomputed_cte: &'static str,
    /// The engine computes a CTE again for each reader and cannot be asked
    /// to store one (`stored_cte`): an exact sample finds the units up to
    /// its cuts from the rows (no shuffle) rather than read the grouping of
    /// every unit twice.
    pub inlines_ctes: bool,
    /// A condition, always true, that makes an engine which inlines CTEs
    /// compute one read twice once and keep it for its readers: Spark does
    /// not inline a CTE with a nondeterministic expression that two
    /// others read (SPARK-36447, `InlineCTE`) but stores it as one shuffle
    /// its readers share.
    pub stored_cte: Option<&'static str>,
    /// After `SELECT`: a hint to send the small tables `{0}` to every task
    /// rather than shuffle the large side to join them; empty where the
    /// engine chooses by itself.
    pub broadcast: &'static str,
    /// `{0}` equals `{1}` or both are NULL, as a join key the engine hashes;
    /// `None` where it cannot (PostgreSQL: `IS NOT DISTINCT FROM` joins
    /// loop over every pair).
    pub null_safe_eq: Option<&'static str>,
    /// True iff the string `{0}` is all ASCII (as many bytes as characters).
    pub ascii_only: &'static str,
    /// A timestamp as `YYYY-MM-DDTHH:MM:SS` (whole seconds).
    pub timestamp_text: &'static str,
}

/// How a dialect turns hex digits into an integer.
#[derive(Debug, Clone, Copy)]
pub enum HexToInt {
    /// A template over the hex string.
    Template(&'static str),
    /// No built-in: sum the digits (`strpos('0123456789abcdef', d) - 1`).
    DigitSum,
}

/// How a dialect writes a LIKE without an escape character.
#[derive(Debug, Clone, Copy)]
pub enum Like {
    /// The engine has no default escape: the pattern goes as is.
    Plain,
    /// `ESCAPE ''` turns the default escape (`\`) off.
    EmptyEscape,
    /// The engine's escape is `\` and cannot be turned off: each `\` of the
    /// pattern is doubled.
    DoubleBackslash,
}

const DUCKDB: Spelling = Spelling {
    name: "DuckDB",
    ident_quote: '"',
    backslash_escapes: false,
    text_type: "VARCHAR",
    double_type: "DOUBLE",
    wide_int_type: "HUGEINT",
    md5: "md5({0})",
    date_text: "strftime({0}, '%Y-%m-%d')",
    hex_to_int: HexToInt::Template("CAST('0x' || {0} AS BIGINT)"),
    int_div: "({0} // {1})",
    bytes_order: "{0}",
    raise: "error({0})",
    like: Like::Plain,
    min_bool: "MIN({0})",
    max_bool: "MAX({0})",
    broadcast_selected: "",
    recomputed_cte: " NOT MATERIALIZED",
    inlines_ctes: false,
    stored_cte: None,
    broadcast: "",
    null_safe_eq: Some("{0} IS NOT DISTINCT FROM {1}"),
    ascii_only: "(strlen({0}) = length({0}))",
    timestamp_text: "strftime({0}, '%Y-%m-%dT%H:%M:%S')",
};

const POSTGRES: Spelling = Spelling {
    name: "PostgreSQL",
    ident_quote: '"',
    backslash_escapes: false,
    text_type: "TEXT",
    double_type: "DOUBLE PRECISION",
    wide_int_type: "NUMERIC",
    md5: "md5(convert_to({0}, 'UTF8'))",
    date_text: "to_char({0}, 'YYYY-MM-DD')",
    hex_to_int: HexToInt::Template("CAST(CAST('x' || lpad({0}, 16, '0') AS BIT(64)) AS BIGINT)"),
    int_div: "div({0}, {1})",
    bytes_order: "({0} COLLATE \"C\")",
    raise: "(CAST({0} AS INTEGER) = 0)",
    like: Like::EmptyEscape,
    min_bool: "bool_and({0})",
    max_bool: "bool_or({0})",
    broadcast_selected: "",
    recomputed_cte: " NOT MATERIALIZED",
    inlines_ctes: false,
    stored_cte: None,
    broadcast: "",
    null_safe_eq: None,
    ascii_only: "(octet_length(convert_to({0}, 'UTF8')) = char_length({0}))",
    timestamp_text: "to_char({0}, 'YYYY-MM-DD') || 'T' || to_char({0}, 'HH24:MI:SS')",
};

const SPARK: Spelling = Spelling {
    name: "Spark SQL",
    ident_quote: '`',
    backslash_escapes: true,
    text_type: "STRING",
    double_type: "DOUBLE",
    wide_int_type: "DECIMAL(38,0)",
    md5: "md5({0})",
    date_text: "date_format({0}, 'yyyy-MM-dd')",
    hex_to_int: HexToInt::Template("CAST(conv({0}, 16, 10) AS BIGINT)"),
    int_div: "({0} div {1})",
    bytes_order: "{0}",
    raise: "(raise_error({0}) IS NULL)",
    like: Like::DoubleBackslash,
    min_bool: "MIN({0})",
    max_bool: "MAX({0})",
    broadcast_selected: " /*+ BROADCAST(s) */",
    recomputed_cte: "",
    inlines_ctes: false,
    stored_cte: Some("rand() >= 0"),
    broadcast: " /*+ BROADCAST({0}) */",
    null_safe_eq: Some("{0} <=> {1}"),
    ascii_only: "(octet_length({0}) = char_length({0}))",
    timestamp_text: "date_format({0}, 'yyyy-MM-dd') || 'T' || date_format({0}, 'HH:mm:ss')",
};

const DATAFUSION: Spelling = Spelling {
    name: "DataFusion",
    ident_quote: '"',
    backslash_escapes: false,
    text_type: "VARCHAR",
    double_type: "DOUBLE",
    wide_int_type: "BIGINT",
    md5: "md5({0})",
    date_text: "to_char({0}, '%Y-%m-%d')",
    hex_to_int: HexToInt::DigitSum,
    int_div: "({0} / {1})",
    bytes_order: "{0}",
    raise: "(CAST({0} AS INT) = 0)",
    like: Like::DoubleBackslash,
    min_bool: "MIN({0})",
    max_bool: "MAX({0})",
    broadcast_selected: "",
    recomputed_cte: "",
    inlines_ctes: true,
    stored_cte: None,
    broadcast: "",
    null_safe_eq: Some("{0} IS NOT DISTINCT FROM {1}"),
    ascii_only: "(octet_length({0}) = character_length({0}))",
    timestamp_text: "to_char({0}, '%Y-%m-%dT%H:%M:%S')",
};

impl Dialect {
    pub const ALL: [Dialect; 4] = [
        Dialect::Spark,
        Dialect::DuckDb,
        Dialect::Postgres,
        Dialect::DataFusion,
    ];

    /// The spellings of this dialect.
    pub fn spelling(self) -> &'static Spelling {
        match self {
            Dialect::Spark => &SPARK,
            Dialect::DuckDb => &DUCKDB,
            Dialect::Postgres => &POSTGRES,
            Dialect::DataFusion => &DATAFUSION,
        }
    }

    /// The `--dialect` value.
    pub fn flag(self) -> &'static str {
        match self {
            Dialect::Spark => "spark",
            Dialect::DuckDb => "duckdb",
            Dialect::Postgres => "postgres",
            Dialect::DataFusion => "datafusion",
        }
    }

    pub fn from_flag(s: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.flag() == s)
    }

    /// A quoted identifier: the only way a name reaches the SQL text.
    pub fn ident(self, name: &str) -> String {
        let q = self.spelling().ident_quote;
        let mut out = String::with_capacity(name.len() + 2);
        out.push(q);
        for c in name.chars() {
            if c == q {
                out.push(q);
            }
            out.push(c);
        }
        out.push(q);
        out
    }

    /// A (possibly dotted) table name given by `--name`: each part quoted.
    pub fn qualified(self, name: &str) -> String {
        name.split('.')
            .map(|p| self.ident(p))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// A string literal: the only way a text value reaches the SQL text.
    pub fn string(self, value: &str) -> String {
        let mut out = String::with_capacity(value.len() + 2);
        out.push('\'');
        for c in value.chars() {
            match c {
                '\'' if self.spelling().backslash_escapes => out.push_str("\\'"),
                '\\' if self.spelling().backslash_escapes => out.push_str("\\\\"),
                '\n' if self.spelling().backslash_escapes => out.push_str("\\n"),
                '\r' if self.spelling().backslash_escapes => out.push_str("\\r"),
                '\t' if self.spelling().backslash_escapes => out.push_str("\\t"),
                '\'' => out.push_str("''"),
                c => out.push(c),
            }
        }
        out.push('\'');
        out
    }

    /// Text for a `-- ` comment line: every character that could end the line
    /// for some engine's lexer (any control character: `\n`, `\r` — which ends a
    /// `--` comment in PostgreSQL, DuckDB and Spark —, NEL; and the Unicode line
    /// and paragraph separators) becomes a space, so no name in a comment can
    /// leave it. Backticked names may hold `\r`.
    pub fn comment(text: &str) -> String {
        text.chars()
            .map(|c| {
                if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                    ' '
                } else {
                    c
                }
            })
            .collect()
    }

    /// Fills a template's `{0}`, `{1}`.
    pub fn fill(template: &str, args: &[&str]) -> String {
        let mut out = template.to_string();
        for (i, a) in args.iter().enumerate() {
            out = out.replace(&format!("{{{i}}}"), a);
        }
        out
    }

    pub fn md5(self, text: &str) -> String {
        Self::fill(self.spelling().md5, &[text])
    }

    pub fn date_text(self, date: &str) -> String {
        Self::fill(self.spelling().date_text, &[date])
    }

    pub fn int_div(self, a: &str, b: &str) -> String {
        Self::fill(
            self.spelling().int_div,
            &[&format!("({a})"), &format!("({b})")],
        )
    }

    pub fn bytes_order(self, s: &str) -> String {
        Self::fill(self.spelling().bytes_order, &[s])
    }

    pub fn raise(self, message: &str) -> String {
        Self::fill(self.spelling().raise, &[message])
    }

    pub fn cast(self, e: &str, ty: &str) -> String {
        format!("CAST({e} AS {ty})")
    }

    pub fn to_text(self, e: &str) -> String {
        self.cast(e, self.spelling().text_type)
    }

    pub fn to_double(self, e: &str) -> String {
        self.cast(e, self.spelling().double_type)
    }

    pub fn to_wide(self, e: &str) -> String {
        self.cast(e, self.spelling().wide_int_type)
    }

    /// Hex digits (at most 8, lowercase) as a non-negative integer.
    pub fn hex_to_int(self, hex: &str, digits: usize) -> String {
        match self.spelling().hex_to_int {
            HexToInt::Template(t) => Self::fill(t, &[hex]),
            HexToInt::DigitSum => {
                let terms: Vec<String> = (0..digits)
                    .map(|i| {
                        let weight = 1u64 << (4 * (digits - 1 - i));
                        format!(
                            "(strpos('0123456789abcdef', substr({hex}, {}, 1)) - 1) * {weight}",
                            i + 1
                        )
                    })
                    .collect();
                format!("CAST({} AS BIGINT)", terms.join(" + "))
            }
        }
    }

    /// `e [NOT] LIKE pattern` where the language's pattern has no escape character.
    pub fn like(
        self,
        e: &str,
        pattern: &str,
        pattern_is_literal: Option<&str>,
        negated: bool,
    ) -> String {
        let not = if negated { "NOT " } else { "" };
        match self.spelling().like {
            Like::Plain => format!("({e} {not}LIKE {pattern})"),
            Like::EmptyEscape => format!("({e} {not}LIKE {pattern} ESCAPE '')"),
            Like::DoubleBackslash => {
                let p = match pattern_is_literal {
                    Some(lit) => self.string(&lit.replace('\\', "\\\\")),
                    None => format!(
                        "replace({pattern}, {}, {})",
                        self.string("\\"),
                        self.string("\\\\")
                    ),
                };
                format!("({e} {not}LIKE {p})")
            }
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spelling().name)
    }
}
