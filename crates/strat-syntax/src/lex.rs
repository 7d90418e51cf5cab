//! A small scanner over rule-file text. The grammar does the real parsing; this
//! finds statement starts (for error recovery), measures nesting (so deep input
//! gets a clear error instead of a stack overflow) and names the token at an
//! error position.

use crate::span::Span;

/// The reserved words of spec §2.
pub const KEYWORDS: &[&str] = &[
    "sample",
    "split",
    "table",
    "param",
    "where",
    "unit",
    "exclude",
    "units",
    "stratify",
    "by",
    "as",
    "take",
    "about",
    "allocate",
    "min",
    "max",
    "per",
    "stratum",
    "seed",
    "output",
    "into",
    "all",
    "none",
    "count",
    "rate",
    "share",
    "else",
    "proportional",
    "equal",
    "neyman",
    "power",
    "folds",
    "and",
    "or",
    "not",
    "in",
    "between",
    "is",
    "null",
    "like",
    "true",
    "false",
    "case",
    "when",
    "then",
    "end",
];

/// Words that are keywords only in their clause's position (`having PRED`,
/// `keep units in SOURCE`) and are not reserved (spec §2.2): a column may
/// be named `keep` or `having` without backticks.
pub const CONTEXTUAL_KEYWORDS: &[&str] = &[
    "having", "keep", "of", "within", "ties", "days", "hours", "desc",
];

pub fn is_keyword(word: &str) -> bool {
    KEYWORDS.contains(&word)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Word,
    QuotedName,
    String,
    Number,
    Comment,
    Punct,
    /// A string or quoted name without its closing quote.
    Unterminated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Scans `text` into tokens (whitespace dropped). Never fails.
pub fn tokens(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                TokenKind::Comment
            }
            b'"' | b'\'' | b'`' => {
                i += 1;
                let mut closed = false;
                while i < bytes.len() && bytes[i] != b'\n' {
                    if c != b'`' && bytes[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == c {
                        if c == b'`' && bytes.get(i + 1) == Some(&b'`') {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        closed = true;
                        break;
                    }
                    i += 1;
                }
                i = i.min(bytes.len());
                match (closed, c) {
                    (false, _) => TokenKind::Unterminated,
                    (true, b'`') => TokenKind::QuotedName,
                    (true, _) => TokenKind::String,
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                TokenKind::Word
            }
            c if c.is_ascii_digit() || c == b'@' => {
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || matches!(bytes[i], b'_' | b'.' | b'-' | b':'))
                {
                    i += 1;
                }
                TokenKind::Number
            }
            _ => {
                i += text[i..].chars().next().map_or(1, char::len_utf8);
                TokenKind::Punct
            }
        };
        out.push(Token {
            kind,
            span: Span::new(start, i),
        });
    }
    out
}

/// Byte offsets where items (declarations and statements) start: `table`, `param`,
/// `sample`, `split`, or a name followed by `=` and `sample`/`split`.
pub fn item_starts(text: &str, toks: &[Token]) -> Vec<usize> {
    let code: Vec<&Token> = toks
        .iter()
        .filter(|t| t.kind != TokenKind::Comment)
        .collect();
    let word = |t: &Token| -> &str {
        if t.kind == TokenKind::Word {
            &text[t.span.start..t.span.end]
        } else {
            ""
        }
    };
    let mut starts = Vec::new();
    let mut depth = 0i64;
    for (k, t) in code.iter().enumerate() {
        if t.kind == TokenKind::Punct {
            match &text[t.span.start..t.span.end] {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => depth = (depth - 1).max(0),
                _ => {}
            }
            continue;
        }
        match word(t) {
            "table" | "param" if depth == 0 => starts.push(t.span.start),
            "sample" | "split" => {
                // `name = sample`: the statement starts at the name — a
                // reserved word too, so that its own statement says it cannot
                // be a name (not the statement before it, as trailing text).
                let named = k >= 2
                    && &text[code[k - 1].span.start..code[k - 1].span.end] == "="
                    && matches!(code[k - 2].kind, TokenKind::Word | TokenKind::QuotedName);
                starts.push(if named {
                    code[k - 2].span.start
                } else {
                    t.span.start
                });
                depth = 0;
            }
            _ => {}
        }
    }
    starts.dedup();
    starts
}

/// The deepest nesting of parentheses, brackets, `case … end` and prefix `not`/`-`
/// runs, and the offset where a limit is first passed.
pub fn too_deep(text: &str, toks: &[Token], limit: usize) -> Option<usize> {
    let mut depth: usize = 0;
    let mut prefix_run: usize = 0;
    for t in toks {
        let s = &text[t.span.start..t.span.end];
        match (t.kind, s) {
            (TokenKind::Punct, "(" | "[" | "{") | (TokenKind::Word, "case") => depth += 1,
            (TokenKind::Punct, ")" | "]" | "}") | (TokenKind::Word, "end") => {
                depth = depth.saturating_sub(1)
            }
            _ => {}
        }
        if matches!(
            (t.kind, s),
            (TokenKind::Punct, "-") | (TokenKind::Word, "not")
        ) {
            prefix_run += 1;
        } else if t.kind != TokenKind::Comment {
            prefix_run = 0;
        }
        if depth + prefix_run > limit {
            return Some(t.span.start);
        }
    }
    None
}

/// How to name the token at `offset` in a message: "`stratfy`", "end of file", "a string".
pub fn describe_at(text: &str, offset: usize) -> String {
    let rest = &text[offset.min(text.len())..];
    let toks = tokens(rest);
    let Some(t) = toks.first() else {
        return "end of file".to_string();
    };
    let s = &rest[t.span.start..t.span.end];
    match t.kind {
        TokenKind::String => "a string".to_string(),
        TokenKind::Unterminated => "an unterminated quote".to_string(),
        TokenKind::Comment => "a comment".to_string(),
        _ => {
            let shown: String = s.chars().take(24).collect();
            if shown.len() < s.len() {
                format!("`{shown}…`")
            } else {
                format!("`{shown}`")
            }
        }
    }
}

/// The span of the token at `offset` (skipping whitespace), for pointing at it.
pub fn token_span_at(text: &str, offset: usize) -> Span {
    let offset = offset.min(text.len());
    match tokens(&text[offset..]).first() {
        Some(t) if t.kind != TokenKind::Comment => t.span.shifted(offset),
        _ => Span::new(offset, offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_starts_skip_strings_and_comments() {
        let src = "table t = \"x.csv\"\n# sample in a comment\na = sample t where s = \"split\"\nsplit a into x 50%, y 50%";
        let toks = tokens(src);
        let starts = item_starts(src, &toks);
        assert_eq!(
            starts,
            vec![
                0,
                src.find("a = sample").unwrap(),
                src.find("split a").unwrap()
            ]
        );
    }

    #[test]
    fn depth_counts_parens_and_prefix_runs() {
        let src = "((((x))))";
        assert_eq!(too_deep(src, &tokens(src), 3), Some(3));
        assert_eq!(too_deep(src, &tokens(src), 4), None);
        let nots = "not not not x";
        assert_eq!(too_deep(nots, &tokens(nots), 2), Some(8));
    }
}
