//! Structure-aware fuzzing of valid rule files: the corpus starts from the
//! examples and check cases; besides libFuzzer's byte mutations (with the
//! keyword dictionary, `-dict=strat.dict`), a custom mutator edits whole
//! tokens: delete, duplicate, swap, move, replace by a keyword, operator or
//! extreme number, wrap in parentheses or `not`. The body is `parse_check`'s.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};
use strat_syntax::lex::{TokenKind, tokens};

#[path = "../src/bodies.rs"]
mod bodies;

static ENV: LazyLock<strat_check::Env> = LazyLock::new(bodies::env);

fuzz_target!(|data: &[u8]| {
    bodies::parse_check(data, &ENV);
});

/// What a token may be replaced by or what may be inserted.
const WORDS: &[&str] = &[
    "table",
    "param",
    "sample",
    "split",
    "where",
    "unit",
    "exclude",
    "keep",
    "having",
    "mode",
    "units",
    "in",
    "stratify",
    "by",
    "as",
    "take",
    "allocate",
    "else",
    "min",
    "max",
    "per",
    "stratum",
    "seed",
    "output",
    "into",
    "folds",
    "about",
    "share",
    "count",
    "all",
    "proportional",
    "equal",
    "neyman",
    "power",
    "and",
    "or",
    "not",
    "is",
    "null",
    "true",
    "false",
    "case",
    "when",
    "then",
    "end",
    "bucket",
    "lower",
    "upper",
    "length",
    "trim",
    "substr",
    "coalesce",
    "abs",
    "year",
    "month",
    "day",
    "round",
    "floor",
    "ceil",
    "sum",
    "avg",
    "first",
    "last",
    "int",
    "float",
    "string",
    "bool",
    "date",
    "timestamp",
    "between",
    "like",
    "_weight",
    "_stratum",
    "members",
    "events",
    "holdout",
    "ratings",
    "wide",
    "broken",
    "member_id",
    "country",
    "plan",
    "tenure_days",
    "signup_date",
    "event_ts",
    "d",
    "l",
    "ts",
    "`select`",
    "`where`",
    "`a b`",
    "``",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    "==",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "=>",
    ".",
    ":",
    ";",
    "@",
    "\"",
    "`",
    "#",
    "\n",
    "\r\n",
    "\u{feff}",
    "é",
    "\"\\n\"",
    "\"\\q\"",
    "0",
    "1",
    "-1",
    "3",
    "1_000",
    "30%",
    "0%",
    "100%",
    "100.5%",
    "0.5",
    "1.0",
    "1e400",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "99999999999999999999",
    "100.0000000000000000001%",
    "0.0000000000000000000000000000000000000001",
    "@2018-06-01",
    "@2018-02-30",
    "@0000-01-01",
    "@9999-12-31",
    "@2018-06-01T12:30",
    "@2018-06-01T25:61:61",
    "@2018-06-01T00:00:00.123456789",
    "\"US\"",
    "\"\"",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One token-level edit of `text`; `None` when there is nothing to edit.
fn token_edit(text: &str, rng: &mut Rng) -> Option<String> {
    let toks: Vec<_> = tokens(text)
        .into_iter()
        .filter(|t| t.kind != TokenKind::Comment)
        .collect();
    if toks.is_empty() {
        return Some(WORDS[rng.below(WORDS.len())].to_string());
    }
    let i = rng.below(toks.len());
    let j = rng.below(toks.len());
    let (a, b) = (toks[i].span, toks[j].span);
    let piece = |s: strat_syntax::Span| &text[s.start..s.end];
    let word = WORDS[rng.below(WORDS.len())];
    let splice = |start: usize, end: usize, with: &str| {
        format!("{}{}{}", &text[..start], with, &text[end..])
    };
    Some(match rng.below(8) {
        0 => splice(a.start, a.end, ""),
        1 => splice(a.end, a.end, &format!(" {}", piece(a))),
        2 => {
            let (x, y) = if a.start <= b.start { (a, b) } else { (b, a) };
            if x.end > y.start {
                return None;
            }
            format!(
                "{}{}{}{}{}",
                &text[..x.start],
                piece(y),
                &text[x.end..y.start],
                piece(x),
                &text[y.end..]
            )
        }
        3 => splice(a.start, a.end, word),
        4 => splice(a.start, a.start, &format!("{word} ")),
        5 => splice(b.start, b.start, &format!("{} ", piece(a))),
        6 => {
            let n = 1 + rng.below(200);
            splice(
                a.start,
                a.end,
                &format!("{}{}{}", "(".repeat(n), piece(a), ")".repeat(n)),
            )
        }
        _ => {
            let n = 1 + rng.below(4);
            splice(a.start, a.start, &"not ".repeat(n))
        }
    })
}

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let mut rng = Rng(u64::from(seed) << 1 | 1);
    if rng.below(2) == 0 {
        return fuzzer_mutate(data, size, max_size);
    }
    let mut text = String::from_utf8_lossy(&data[..size]).into_owned();
    for _ in 0..=rng.below(3) {
        if let Some(t) = token_edit(&text, &mut rng) {
            text = t;
        }
    }
    if text.len() > max_size {
        return fuzzer_mutate(data, size, max_size);
    }
    data[..text.len()].copy_from_slice(text.as_bytes());
    text.len()
});
