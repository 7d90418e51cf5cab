//! From text to [`ast::File`]: the pest grammar, recovery at statement starts,
//! and syntax errors in the user's words.

use pest::Parser as _;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;

use crate::ast::{
    Allocate, Amount, Arg, AsOf, AsOfTime, BinaryOp, Expr, ExprKind, File, Ident, IntValue, Into,
    IntoKind, Item, Literal, Method, ParamDecl, ParamType, Percent, SplitPart, Statement,
    StatementKind, StratumItem, StringLit, TableDecl, Take, TakeAmount, Ties, UnaryOp, Within,
};
use crate::diagnostic::{Diagnostic, closest};
use crate::lex;
use crate::span::Span;

#[derive(pest_derive::Parser)]
#[grammar = "../../grammar/strat.pest"]
struct Grammar;

/// Nesting beyond this is rejected with a clear error rather than risking the stack.
pub const MAX_NESTING: usize = 128;
/// The deepest expression tree accepted (long `and`/`or` chains are balanced, so
/// only long arithmetic chains and deep nesting come near it).
pub const MAX_DEPTH: usize = 512;
/// Parsing runs on a thread of its own with this much stack: pest's recursive
/// descent needs far more per level in a debug build than a caller may have.
const PARSER_STACK: usize = 256 << 20;

/// The outcome of parsing: a tree of everything that parsed, and every syntax error.
#[derive(Debug, Default)]
pub struct Parsed {
    pub file: File,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses a whole rule file. Never panics; a statement with a syntax error is
/// left out of the tree and parsing goes on at the next statement.
pub fn parse(text: &str) -> Parsed {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("strat-parse".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(scope, || parse_here(text))
            .expect("spawn the parser thread")
            .join()
            .expect("the parser does not panic")
    })
}

fn parse_here(text: &str) -> Parsed {
    let toks = lex::tokens(text);
    let starts = lex::item_starts(text, &toks);
    let mut bounds = vec![0];
    bounds.extend(starts.iter().copied().filter(|&s| s > 0));
    bounds.push(text.len());
    let mut parsed = Parsed::default();
    for w in bounds.windows(2) {
        parse_chunk(text, w[0], w[1], starts.contains(&w[0]), &mut parsed);
    }
    if parsed.diagnostics.is_empty()
        && !parsed
            .file
            .items
            .iter()
            .any(|i| matches!(i, Item::Statement(_)))
    {
        parsed.diagnostics.push(
            Diagnostic::error("E0006", "this file has no `sample` or `split` statement")
                .at(Span::new(text.len(), text.len()))
                .with_help(
                    "add a statement, e.g. `sample members stratify by country take 1_000 seed 1`",
                ),
        );
    }
    parsed
}

/// Parses `text[a..b]`, an item when `is_item` (else blanks only), into `parsed`.
fn parse_chunk(text: &str, a: usize, b: usize, is_item: bool, parsed: &mut Parsed) {
    let chunk = &text[a..b];
    if let Some(at) = lex::too_deep(chunk, &lex::tokens(chunk), MAX_NESTING) {
        parsed.diagnostics.push(
            Diagnostic::error(
                "E0003",
                format!("expression nested more than {MAX_NESTING} levels deep"),
            )
            .at(lex::token_span_at(text, a + at))
            .with_label("nesting limit passed here")
            .with_help(
                "split the expression into simpler parts, e.g. with `case when … end` or `in (…)`",
            ),
        );
        return;
    }
    let entry = if is_item {
        Rule::item_only
    } else {
        Rule::blank_only
    };
    match Grammar::parse(entry, chunk) {
        Ok(mut pairs) => {
            if is_item {
                let top = pairs.next().expect("item_only yields one pair");
                let mut b = Builder {
                    base: a,
                    diags: &mut parsed.diagnostics,
                };
                if let Some(item) = top.into_inner().find(|p| p.as_rule() != Rule::EOI)
                    && let Some(item) = b.item(item)
                {
                    parsed.file.items.push(item);
                }
            }
        }
        Err(e) => {
            // `SAMPLE`, `Table`: not a statement start, so it ran into the item
            // before it. Parse that item on its own, so it is not lost too.
            if let Some(cut) = capitalised_item_start(chunk, &e) {
                parse_chunk(text, a, a + cut, is_item, parsed);
                parse_chunk(text, a + cut, b, true, parsed);
                return;
            }
            parsed
                .diagnostics
                .push(syntax_error(text, a, chunk, is_item, &e));
        }
    }
}

/// Where a capitalised `sample`, `split`, `table` or `param` (or `NAME =`
/// before it) starts, when the error is there and something comes before it.
fn capitalised_item_start(chunk: &str, e: &pest::error::Error<Rule>) -> Option<usize> {
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let toks: Vec<lex::Token> = lex::tokens(chunk)
        .into_iter()
        .filter(|t| t.kind != lex::TokenKind::Comment)
        .collect();
    let k = toks.iter().position(|t| t.span.end > pos)?;
    let word = |t: &lex::Token| &chunk[t.span.start..t.span.end];
    let w = word(&toks[k]);
    let lower = w.to_ascii_lowercase();
    if toks[k].kind != lex::TokenKind::Word
        || w == lower
        || !matches!(lower.as_str(), "sample" | "split" | "table" | "param")
    {
        return None;
    }
    let named = k >= 2
        && word(&toks[k - 1]) == "="
        && matches!(lower.as_str(), "sample" | "split")
        && matches!(
            toks[k - 2].kind,
            lex::TokenKind::Word | lex::TokenKind::QuotedName
        );
    let cut = if named {
        toks[k - 2].span.start
    } else {
        toks[k].span.start
    };
    (cut > 0 && !chunk[..cut].trim().is_empty()).then_some(cut)
}

/// Is `text` merely unfinished (more lines could complete it), rather than wrong?
/// The REPL asks this to decide whether to continue the input on the next line.
pub fn is_incomplete(text: &str) -> bool {
    let toks = lex::tokens(text);
    if toks
        .last()
        .is_some_and(|t| t.kind == lex::TokenKind::Unterminated)
    {
        return false;
    }
    let mut depth = 0i64;
    for t in &toks {
        if t.kind == lex::TokenKind::Punct {
            match &text[t.span.start..t.span.end] {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => depth -= 1,
                _ => {}
            }
        }
    }
    if depth > 0 {
        return true;
    }
    match Grammar::parse(Rule::file, text) {
        Ok(_) => false,
        Err(e) => {
            let pos = match e.location {
                InputLocation::Pos(p) => p,
                InputLocation::Span((s, _)) => s,
            };
            text[pos.min(text.len())..].trim().is_empty()
        }
    }
}

// ------------------------------------------------------------------ errors

fn syntax_error(
    text: &str,
    base: usize,
    chunk: &str,
    is_item: bool,
    e: &pest::error::Error<Rule>,
) -> Diagnostic {
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let abs = base + pos;
    // Nothing but blanks left in this statement: the statement ended too early.
    let at_end = chunk[pos.min(chunk.len())..].trim().is_empty()
        || lex::tokens(&chunk[pos.min(chunk.len())..])
            .iter()
            .all(|t| t.kind == lex::TokenKind::Comment);
    let found = if !at_end {
        lex::describe_at(text, abs)
    } else if base + chunk.len() == text.len() {
        "the end of the file".to_string()
    } else {
        "the end of the statement".to_string()
    };
    let found_word = {
        let sp = lex::token_span_at(text, abs);
        text[sp.start..sp.end].to_string()
    };
    let positives: Vec<Rule> = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        ErrorVariant::CustomError { .. } => Vec::new(),
    };
    // Mistakes that a list of expectations explains badly get a message of their own.
    if !at_end && let Some(mut d) = common_mistake(chunk, pos, &positives) {
        d.span = d.span.map(|s| s.shifted(base));
        return d;
    }
    let mut expected: Vec<&'static str> = Vec::new();
    // The end of the statement reads best last: "expected `take`, `seed` or the end of the statement".
    let mut positives = positives;
    positives.sort_by_key(|r| *r == Rule::EOI);
    // Right after a source, `as` can only start `as of`.
    let after_source = positives
        .iter()
        .any(|p| matches!(p, Rule::where_clause | Rule::kw_where));
    for r in &positives {
        let w = match r {
            Rule::kw_as if after_source => "`as of`",
            _ => describe(*r, is_item),
        };
        if !expected.contains(&w) {
            expected.push(w);
        }
    }
    // Clauses in the order a statement takes them, in the places clauses hold in the list.
    const CLAUSES: [&str; 14] = [
        "`as of`",
        "`where`",
        "`unit`",
        "`having`",
        "`keep units in`",
        "`exclude units in`",
        "`stratify by`",
        "`take`",
        "`allocate`",
        "`min`",
        "`max`",
        "`into`",
        "`seed`",
        "`output`",
    ];
    let slots: Vec<usize> = (0..expected.len())
        .filter(|&i| CLAUSES.contains(&expected[i]))
        .collect();
    let mut clauses: Vec<&'static str> = slots.iter().map(|&i| expected[i]).collect();
    clauses.sort_by_key(|w| CLAUSES.iter().position(|c| c == w));
    for (&i, w) in slots.iter().zip(clauses) {
        expected[i] = w;
    }
    // An unterminated quote explains itself better than any list of expectations.
    let unterminated = lex::tokens(&text[abs.min(text.len())..])
        .first()
        .is_some_and(|t| t.kind == lex::TokenKind::Unterminated);
    let message = if unterminated {
        "unterminated quote: the closing quote is missing on this line".to_string()
    } else if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", join_or(&expected))
    };
    let span = if at_end {
        // Point at the last token of the statement: what follows it is missing.
        lex::tokens(&chunk[..pos.min(chunk.len())])
            .iter()
            .rev()
            .find(|t| t.kind != lex::TokenKind::Comment)
            .map_or(Span::new(abs, abs), |t| t.span.shifted(base))
    } else {
        lex::token_span_at(text, abs)
    };
    let mut d = Diagnostic::error(if unterminated { "E0004" } else { "E0001" }, message)
        .at(if span.is_empty() {
            Span::new(abs, abs)
        } else {
            span
        })
        .with_label(match (expected.is_empty(), at_end) {
            (true, _) => "unexpected here".to_string(),
            (false, true) => format!("expected {} after this", join_or(&expected)),
            (false, false) => format!("expected {}", join_or(&expected)),
        });
    let found_word = if at_end { String::new() } else { found_word };
    if let Some(help) = syntax_help(&positives, &found_word, chunk, pos) {
        d = d.with_help(help);
    }
    d
}

/// The comparison operators, longest first.
const CMP_OPS: [&str; 7] = ["<=", ">=", "!=", "<>", "<", ">", "="];

/// The comparison operator starting at byte `at` of `text`, if any (not `=>`).
fn cmp_op_at(text: &str, at: usize) -> Option<&'static str> {
    let rest = text.get(at..)?;
    CMP_OPS
        .into_iter()
        .find(|op| rest.starts_with(op))
        .filter(|op| !(*op == "=" && rest.starts_with("=>")))
}

/// A syntax error whose usual cause is known well enough to say it directly:
/// `==`, a chained comparison, a space in `10 %`, `in` without a list. `pos`
/// is the error's offset in `chunk`; the diagnostic's spans are in `chunk`.
fn common_mistake(chunk: &str, pos: usize, positives: &[Rule]) -> Option<Diagnostic> {
    let toks = lex::tokens(chunk);
    let at = toks.iter().position(|t| t.span.end > pos)?;
    let tok = toks[at];
    let word = |t: &lex::Token| &chunk[t.span.start..t.span.end];

    // `==`: pest stops at the second `=` (after a comparison) or at the first
    // (where a declaration's `=` is expected).
    let eq = if chunk[tok.span.start..].starts_with("==") {
        Some(tok.span.start)
    } else if word(&tok) == "=" && chunk[..tok.span.start].ends_with('=') {
        Some(tok.span.start - 1)
    } else {
        None
    };
    if let Some(start) = eq
        && !chunk[..start].ends_with(['<', '>', '!', '='])
    {
        let span = Span::new(start, start + 2);
        let declaration = positives.contains(&Rule::op_assign);
        return Some(
            Diagnostic::error("E0001", "`==` is not an operator")
                .at(span)
                .with_label("write a single `=`")
                .with_help(if declaration {
                    "a declaration names its value with a single `=`".to_string()
                } else {
                    "write `=` for equality (and `!=` or `<>` for inequality)".to_string()
                }),
        );
    }

    // `SAMPLE`, `Where`: keywords are lowercase.
    // (`SAMPLE t` reads as a statement named `SAMPLE` until `t`.)
    let capitalised = |t: &lex::Token| {
        let lower = word(t).to_ascii_lowercase();
        (t.kind == lex::TokenKind::Word && lower != word(t) && lex::is_keyword(&lower))
            .then_some((*t, lower))
    };
    let before = at.checked_sub(1).and_then(|k| capitalised(&toks[k]));
    if let Some((t, lower)) = capitalised(&tok).or(before) {
        return Some(
            Diagnostic::error("E0001", format!("`{}` is not a keyword", word(&t)))
                .at(t.span)
                .with_label(format!("write `{lower}`"))
                .with_help(format!("keywords are lowercase: write `{lower}`")),
        );
    }

    // `&&`, `||`: the logical operators are words.
    if let Some(w) = match word(&tok) {
        "&" => Some("and"),
        "|" => Some("or"),
        _ => None,
    } {
        let doubled = toks
            .get(at + 1)
            .is_some_and(|t| word(t) == word(&tok) && t.span.start == tok.span.end);
        let end = if doubled {
            tok.span.end + 1
        } else {
            tok.span.end
        };
        let op = &chunk[tok.span.start..end];
        return Some(
            Diagnostic::error("E0001", format!("`{op}` is not an operator"))
                .at(Span::new(tok.span.start, end))
                .with_label(format!("write `{w}`"))
                .with_help("the logical operators are the words `and`, `or` and `not`"),
        );
    }

    // `10 %`: a number (or a param) and `%` with blanks between.
    let pct = |n: usize| {
        let (num, sign) = (toks.get(n)?, toks.get(n + 1)?);
        let num_like = matches!(num.kind, lex::TokenKind::Number | lex::TokenKind::Word)
            && !lex::is_keyword(word(num));
        (num_like && word(sign) == "%" && sign.span.start > num.span.end)
            .then(|| Span::new(num.span.start, sign.span.end))
    };
    let space_pct = pct(at).or_else(|| at.checked_sub(1).and_then(pct));
    if let Some(span) = space_pct {
        let n = word(&toks[if pct(at).is_some() { at } else { at - 1 }]);
        return Some(
            Diagnostic::error(
                "E0001",
                format!("expected a percentage such as `{n}%`, found `{n} %`"),
            )
            .at(span)
            .with_label("a space before `%`")
            .with_help(format!(
                "a percentage is written `{n}%`, with no space before `%`"
            )),
        );
    }

    // `a < b < c`: a comparison right after a comparison.
    let second = cmp_op_at(chunk, tok.span.start);
    if let Some(op2) = second
        && !positives
            .iter()
            .any(|r| matches!(r, Rule::compare | Rule::cmp_op))
        && let Some(chain) = chained_comparison(chunk, &toks, at, op2)
    {
        return Some(
            Diagnostic::error("E0001", "comparisons do not chain")
                .at(Span::new(tok.span.start, tok.span.start + op2.len()))
                .with_label("a second comparison")
                .with_help(format!("write `{chain}`")),
        );
    }

    // `x in m`: `in` takes a parenthesised list.
    let operand_before = |i: usize| {
        i.checked_sub(1).is_some_and(|k| {
            let t = &toks[k];
            match t.kind {
                lex::TokenKind::Word => !lex::is_keyword(word(t)),
                lex::TokenKind::Punct => matches!(word(t), ")" | "]"),
                lex::TokenKind::Comment => false,
                _ => true,
            }
        })
    };
    let not_before = |i: usize| i > 0 && word(&toks[i - 1]) == "not" && operand_before(i - 1);
    let in_at = match word(&tok) {
        "in" if operand_before(at) || not_before(at) => Some(at),
        "not" if operand_before(at) && toks.get(at + 1).is_some_and(|t| word(t) == "in") => {
            Some(at + 1)
        }
        _ => None,
    };
    if let Some(i) = in_at
        && toks.get(i + 1).is_none_or(|t| word(t) != "(")
    {
        let after = toks
            .get(i + 1)
            .filter(|t| t.kind != lex::TokenKind::Comment);
        let found = after.map_or("the end of the statement".to_string(), |t| {
            format!("`{}`", word(t))
        });
        let mut help =
            "`in (…)` takes a parenthesised list of values, e.g. `in (\"US\", \"CA\")`".to_string();
        if let Some(t) = after.filter(|t| matches!(t.kind, lex::TokenKind::Word)) {
            help.push_str(&format!(
                "; to leave out the units listed in a table, write `exclude units in {}` after `unit`",
                word(t)
            ));
        }
        return Some(
            Diagnostic::error("E0001", format!("expected `(` after `in`, found {found}"))
                .at(after.map_or(toks[i].span, |t| t.span))
                .with_label("expected a list of values in parentheses")
                .with_help(help),
        );
    }
    None
}

/// For `a < b < c` with the error at the second operator (token `at`, `op2`):
/// the text `a < b and b < c`, when the first comparison is found in the
/// same expression.
fn chained_comparison(chunk: &str, toks: &[lex::Token], at: usize, op2: &str) -> Option<String> {
    let word = |t: &lex::Token| &chunk[t.span.start..t.span.end];
    // Where an operand ends: a keyword (but literals), a separator, a closing bracket.
    let boundary = |t: &lex::Token| match t.kind {
        lex::TokenKind::Word => {
            lex::is_keyword(word(t)) && !matches!(word(t), "true" | "false" | "null")
        }
        lex::TokenKind::Punct => matches!(word(t), "," | "{" | "}" | ";"),
        lex::TokenKind::Comment => false,
        _ => false,
    };
    // Back from the second operator to the first, at the same depth.
    let mut depth = 0i64;
    let mut first = None;
    let mut k = at;
    while k > 0 {
        k -= 1;
        let t = &toks[k];
        match word(t) {
            ")" | "]" => depth += 1,
            "(" | "[" if depth == 0 => break,
            "(" | "[" => depth -= 1,
            _ if depth == 0 && boundary(t) => break,
            _ => {}
        }
        if depth == 0 && t.kind == lex::TokenKind::Punct {
            // `<=` is two tokens: take the operator at its first character.
            let starts_op = k == 0
                || !matches!(word(&toks[k - 1]), "<" | ">" | "!")
                || toks[k - 1].span.end != t.span.start;
            if starts_op && let Some(op) = cmp_op_at(chunk, t.span.start) {
                first = Some((k, op));
                break;
            }
        }
    }
    let (k1, op1) = first?;
    // The operand before the first operator starts after the boundary.
    let mut depth = 0i64;
    let mut s = k1;
    while s > 0 {
        let t = &toks[s - 1];
        match word(t) {
            ")" | "]" => depth += 1,
            "(" | "[" if depth == 0 => break,
            "(" | "[" => depth -= 1,
            _ if depth == 0 && boundary(t) => break,
            _ => {}
        }
        s -= 1;
    }
    // The operand after the second operator ends at the next boundary.
    let ops2 = toks[at..]
        .iter()
        .take_while(|t| t.span.start < toks[at].span.start + op2.len())
        .count();
    let mut depth = 0i64;
    let mut e = at + ops2;
    while e < toks.len() {
        let t = &toks[e];
        match word(t) {
            "(" | "[" => depth += 1,
            ")" | "]" if depth == 0 => break,
            ")" | "]" => depth -= 1,
            _ if depth == 0 && (boundary(t) || cmp_op_at(chunk, t.span.start).is_some()) => break,
            _ => {}
        }
        e += 1;
    }
    let text = |from: usize, to: usize| -> Option<String> {
        let (a, b) = (
            toks.get(from)?.span.start,
            toks.get(to.checked_sub(1)?)?.span.end,
        );
        (from < to).then(|| chunk[a..b].split_whitespace().collect::<Vec<_>>().join(" "))
    };
    let ops1 = toks[k1..]
        .iter()
        .take_while(|t| t.span.start < toks[k1].span.start + op1.len())
        .count();
    let a = text(s, k1)?;
    let b = text(k1 + ops1, at)?;
    let c = text(at + ops2, e)?;
    Some(format!("{a} {op1} {b} and {b} {op2} {c}"))
}

fn syntax_help(positives: &[Rule], found: &str, chunk: &str, pos: usize) -> Option<String> {
    let wants_name = positives.iter().any(|r| {
        matches!(
            describe(*r, true),
            "a name" | "an expression" | "a whole number"
        )
    });
    // `neyman = sample …`: a reserved word where a statement's name goes.
    let names_a_statement = chunk
        .get(pos..)
        .and_then(|rest| rest.strip_prefix(found))
        .and_then(|rest| rest.trim_start().strip_prefix('='))
        .map(str::trim_start)
        .is_some_and(|rest| rest.starts_with("sample") || rest.starts_with("split"));
    if lex::is_keyword(found) && names_a_statement {
        return Some(format!(
            "`{found}` is a reserved word, so it cannot name a statement; choose another \
             name, or write it in backticks: `` `{found}` = … ``"
        ));
    }
    if lex::is_keyword(found) && wants_name {
        return Some(format!(
            "`{found}` is a reserved word; to use it as a name, write it in backticks: `` `{found}` ``"
        ));
    }
    let clause_words: Vec<&str> = positives.iter().filter_map(|r| keyword_of(*r)).collect();
    let open = lex::tokens(&chunk[..pos.min(chunk.len())])
        .iter()
        .fold(0i64, |depth, t| {
            match (t.kind, &chunk[t.span.start..t.span.end]) {
                (lex::TokenKind::Punct, "(") => depth + 1,
                (lex::TokenKind::Punct, ")") => depth - 1,
                _ => depth,
            }
        });
    if open > 0
        && !positives
            .iter()
            .any(|r| matches!(r, Rule::expr | Rule::name))
    {
        return Some("a `(` before this point is not closed; add the missing `)`".to_string());
    }
    if found == "as"
        && chunk[pos.min(chunk.len())..]
            .split_whitespace()
            .nth(1)
            .is_some_and(|w| w == "of")
    {
        return Some(
            "`as of` comes right after the source: `sample SOURCE as of T by COLUMN`, then the other clauses".to_string(),
        );
    }
    let order = [
        "where", "unit", "having", "keep", "exclude", "stratify", "take", "allocate", "min", "max",
        "seed", "output", "within", "ties",
    ];
    if order.contains(&found) && !clause_words.is_empty() {
        let stmt_is_split = chunk.split_whitespace().any(|w| w == "split");
        return Some(if stmt_is_split {
            "a `split` takes its clauses in this order: as of, where, unit, having, keep units in, exclude units in, stratify by, into, seed, output".to_string()
        } else {
            "a `sample` takes its clauses in this order: as of, where, unit, having, keep units in, exclude units in, stratify by, take, allocate, min, max, seed, output".to_string()
        });
    }
    let is_word = !found.is_empty() && found.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if is_word && !lex::is_keyword(found) {
        // `stratify by` is matched by its first word.
        let mut candidates: Vec<&str> = clause_words
            .iter()
            .map(|w| w.split(' ').next().unwrap_or(w))
            .collect();
        if wants_name || positives.contains(&Rule::amount) {
            candidates.extend([
                "all",
                "none",
                "count",
                "rate",
                "share",
                "proportional",
                "equal",
                "neyman",
                "power",
            ]);
        }
        if let Some(s) = closest(found, candidates.iter().copied()) {
            let s = s.split(' ').next().unwrap_or(s);
            return Some(format!("did you mean `{s}`?"));
        }
    }
    None
}

fn keyword_of(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::as_of_clause | Rule::kw_of => "as of",
        Rule::within_clause | Rule::kw_within => "within",
        Rule::ties_clause | Rule::kw_ties => "ties by",
        Rule::kw_desc => "desc",
        Rule::time_unit => "days",
        Rule::where_clause | Rule::kw_where => "where",
        Rule::unit_clause | Rule::kw_unit => "unit",
        Rule::having_clause | Rule::kw_having => "having",
        Rule::keep_clause | Rule::kw_keep => "keep units in",
        Rule::exclude_clause | Rule::kw_exclude => "exclude units in",
        Rule::stratify_clause | Rule::kw_stratify => "stratify by",
        Rule::take_clause | Rule::kw_take => "take",
        Rule::allocate_clause | Rule::kw_allocate => "allocate",
        Rule::min_clause | Rule::kw_min => "min",
        Rule::max_clause | Rule::kw_max => "max",
        Rule::seed_clause | Rule::kw_seed => "seed",
        Rule::output_clause | Rule::kw_output => "output",
        Rule::into_clause | Rule::kw_into => "into",
        Rule::kw_by => "by",
        Rule::kw_as => "as",
        Rule::kw_per => "per",
        Rule::kw_stratum => "stratum",
        Rule::kw_units => "units",
        Rule::kw_in => "in",
        Rule::kw_folds => "folds",
        Rule::kw_then => "then",
        Rule::kw_when => "when",
        Rule::kw_end => "end",
        Rule::kw_else | Rule::else_rule => "else",
        Rule::kw_and => "and",
        Rule::kw_about => "about",
        Rule::kw_null => "null",
        _ => return None,
    })
}

/// A grammar rule in the user's words.
fn describe(r: Rule, is_item: bool) -> &'static str {
    use Rule::*;
    match r {
        EOI if is_item => "the end of the statement",
        EOI | blank_only | item_only | file | item => "a declaration or a statement",
        statement | sample_stmt | split_stmt | kw_sample | kw_split => "`sample` or `split`",
        table_decl | kw_table => "`table`",
        param_decl | kw_param => "`param`",
        name | ident | quoted_ident | source | column | keyword => "a name",
        type_name => "a type (int, float, string, bool, date or timestamp)",
        param_value | signed_number => "a value",
        string | dq_inner | sq_inner => "a quoted string",
        integer | int_value | folds => "a whole number",
        decimal => "a number",
        percent => "a percentage such as `10%`",
        take_about => "`about`",
        date | timestamp => "a date such as `@2018-06-01`",
        as_of_time => "a date such as `@2018-06-01` or a date param",
        expr | or_expr | and_expr | not_expr | cmp_expr | add_expr | mul_expr | unary_expr
        | case_expr | call | func_name | neg | kw_true | kw_false | kw_null | kw_not | kw_case
        | stratum_item => "an expression",
        call_args | edge_list | star => "call arguments",
        compare | cmp_op => "a comparison",
        in_list => "`in (…)`",
        between => "`between`",
        is_null => "`is null`",
        like => "`like`",
        add_op | mul_op => "an operator",
        op_assign => "`=`",
        op_arrow => "`=>`",
        rule_block => "`{`",
        rule => "a rule `PREDICATE => AMOUNT`",
        amount => "an amount (all, none, count K, rate P%, share P% or a method)",
        count_amount | kw_count => "`count`",
        rate_amount | kw_rate => "`rate`",
        share_amount | kw_share => "`share`",
        method | neyman | power | kw_proportional | kw_equal | kw_neyman | kw_power => {
            "a method (proportional, equal, neyman(column) or power(q))"
        }
        when_then => "`when`",
        split_part => "a split such as `train 80%`",
        kw_all => "`all`",
        kw_none => "`none`",
        kw_or => "`or`",
        kw_is => "`is`",
        kw_like => "`like`",
        kw_between => "`between`",
        other => keyword_of(other).map_or("something else", |k| match k {
            "as of" => "`as of`",
            "within" => "`within`",
            "ties by" => "`ties by`",
            "desc" => "`desc`",
            "days" => "`days` or `hours`",
            "where" => "`where`",
            "unit" => "`unit`",
            "having" => "`having`",
            "keep units in" => "`keep units in`",
            "exclude units in" => "`exclude units in`",
            "stratify by" => "`stratify by`",
            "take" => "`take`",
            "allocate" => "`allocate`",
            "min" => "`min`",
            "max" => "`max`",
            "seed" => "`seed`",
            "output" => "`output`",
            "into" => "`into`",
            "by" => "`by`",
            "as" => "`as`",
            "per" => "`per`",
            "stratum" => "`stratum`",
            "units" => "`units`",
            "in" => "`in`",
            "folds" => "`folds`",
            "then" => "`then`",
            "when" => "`when`",
            "end" => "`end`",
            "else" => "`else`",
            "and" => "`and`",
            "about" => "`about`",
            _ => "a keyword",
        }),
    }
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

// ------------------------------------------------------------------ tree building

struct Builder<'d> {
    base: usize,
    diags: &'d mut Vec<Diagnostic>,
}

impl Builder<'_> {
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        Span::new(s.start() + self.base, s.end() + self.base)
    }

    fn item(&mut self, p: Pair<Rule>) -> Option<Item> {
        match p.as_rule() {
            Rule::table_decl => Some(Item::Table(self.table_decl(p))),
            Rule::param_decl => self.param_decl(p).map(Item::Param),
            Rule::statement => self.statement(p).map(|s| Item::Statement(Box::new(s))),
            _ => None,
        }
    }

    fn table_decl(&mut self, p: Pair<Rule>) -> TableDecl {
        let span = self.span(&p);
        let mut it = p
            .into_inner()
            .filter(|p| !matches!(p.as_rule(), Rule::kw_table | Rule::op_assign));
        let name = self.name(it.next().unwrap());
        let s = it.next().unwrap();
        let path = self.string(s);
        TableDecl { name, path, span }
    }

    fn param_decl(&mut self, p: Pair<Rule>) -> Option<ParamDecl> {
        let span = self.span(&p);
        let mut it = p
            .into_inner()
            .filter(|p| !matches!(p.as_rule(), Rule::kw_param | Rule::op_assign));
        let name = self.name(it.next().unwrap());
        let ty_pair = it.next().unwrap();
        let ty_span = self.span(&ty_pair);
        let ty = ParamType::parse(ty_pair.as_str())?;
        let value_pair = it.next().unwrap().into_inner().next().unwrap();
        let value = if value_pair.as_rule() == Rule::signed_number {
            let inner = value_pair.into_inner().next().unwrap();
            Literal::Negative(Box::new(self.literal(inner)?))
        } else {
            self.literal(value_pair)?
        };
        Some(ParamDecl {
            name,
            ty,
            ty_span,
            value,
            span,
        })
    }

    fn statement(&mut self, p: Pair<Rule>) -> Option<Statement> {
        let span = self.span(&p);
        let mut name = None;
        let mut body = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::name => name = Some(self.name(c)),
                Rule::sample_stmt | Rule::split_stmt => body = Some(c),
                _ => {}
            }
        }
        let body = body?;
        let kind = if body.as_rule() == Rule::sample_stmt {
            StatementKind::Sample
        } else {
            StatementKind::Split
        };
        let mut st = Statement {
            name,
            kind,
            keyword_span: Span::default(),
            source: Ident {
                name: String::new(),
                span: Span::default(),
                quoted: false,
            },
            as_of: None,
            filter: None,
            unit: None,
            having: None,
            keep: None,
            exclude: None,
            strata: Vec::new(),
            stratify_span: None,
            take: None,
            allocate: None,
            min: None,
            max: None,
            seed: None,
            output: None,
            into: None,
            span,
        };
        let mut ok = true;
        for c in body.into_inner() {
            let cspan = self.span(&c);
            match c.as_rule() {
                Rule::kw_sample | Rule::kw_split => st.keyword_span = cspan,
                Rule::source => st.source = self.name(c.into_inner().next().unwrap()),
                Rule::as_of_clause => match self.as_of(c) {
                    Some(a) => st.as_of = Some(a),
                    None => ok = false,
                },
                Rule::where_clause => match self.top_expr(last_inner(c)) {
                    Some(e) => st.filter = Some(e),
                    None => ok = false,
                },
                Rule::unit_clause => st.unit = Some(self.name(last_inner(c))),
                Rule::having_clause => match self.top_expr(last_inner(c)) {
                    Some(e) => st.having = Some(e),
                    None => ok = false,
                },
                Rule::keep_clause => {
                    st.keep = Some(self.name(last_inner(c).into_inner().next().unwrap()))
                }
                Rule::exclude_clause => {
                    st.exclude = Some(self.name(last_inner(c).into_inner().next().unwrap()))
                }
                Rule::stratify_clause => {
                    let mut kws = Vec::new();
                    for item in c.into_inner() {
                        match item.as_rule() {
                            Rule::stratum_item => {
                                let ispan = self.span(&item);
                                let mut parts = item.into_inner();
                                let Some(expr) = self.top_expr(parts.next().unwrap()) else {
                                    ok = false;
                                    continue;
                                };
                                let alias = parts
                                    .find(|p| p.as_rule() == Rule::name)
                                    .map(|p| self.name(p));
                                st.strata.push(StratumItem {
                                    expr,
                                    alias,
                                    span: ispan,
                                });
                            }
                            _ => kws.push(self.span(&item)),
                        }
                    }
                    st.stratify_span = kws.into_iter().reduce(Span::to);
                }
                Rule::take_clause => {
                    let amount_pair = last_inner(c);
                    let amount = match amount_pair.as_rule() {
                        Rule::kw_all => TakeAmount::All,
                        Rule::percent => TakeAmount::Percent(self.percent(amount_pair)),
                        Rule::int_value => TakeAmount::Count(self.int_value(amount_pair)),
                        Rule::take_about => TakeAmount::About(
                            amount_pair
                                .into_inner()
                                .find(|p| p.as_rule() == Rule::percent)
                                .map(|p| self.percent(p)),
                        ),
                        _ => return None,
                    };
                    st.take = Some(Take {
                        amount,
                        span: cspan,
                    });
                }
                Rule::allocate_clause => {
                    let a = last_inner(c);
                    let aspan = self.span(&a);
                    st.allocate = Some(match a.as_rule() {
                        Rule::method => Allocate::Method {
                            method: self.method(a),
                            span: aspan,
                        },
                        _ => {
                            let mut rules = Vec::new();
                            for r in a.into_inner() {
                                let rspan = self.span(&r);
                                let is_else = r.as_rule() == Rule::else_rule;
                                let mut predicate = None;
                                let mut amount = None;
                                for part in r.into_inner() {
                                    match part.as_rule() {
                                        Rule::expr => match self.top_expr(part) {
                                            Some(e) => predicate = Some(e),
                                            None => ok = false,
                                        },
                                        Rule::amount => amount = Some(part),
                                        _ => {}
                                    }
                                }
                                let amount = amount.unwrap();
                                let amount_span = self.span(&amount);
                                let amount = self.amount(amount);
                                if is_else || predicate.is_some() {
                                    rules.push(Rule_ {
                                        predicate,
                                        amount,
                                        amount_span,
                                        span: rspan,
                                    });
                                }
                            }
                            Allocate::Rules { rules, span: aspan }
                        }
                    });
                }
                Rule::min_clause => st.min = Some(self.int_value(c.into_inner().nth(1).unwrap())),
                Rule::max_clause => st.max = Some(self.int_value(c.into_inner().nth(1).unwrap())),
                Rule::seed_clause => st.seed = Some(self.int_value(last_inner(c))),
                Rule::output_clause => {
                    st.output = Some(
                        c.into_inner()
                            .filter(|p| p.as_rule() == Rule::name)
                            .map(|p| self.name(p))
                            .collect(),
                    )
                }
                Rule::into_clause => {
                    let mut about = false;
                    let mut parts = Vec::new();
                    let mut folds = None;
                    for p in c.into_inner() {
                        match p.as_rule() {
                            Rule::kw_about => about = true,
                            Rule::folds => {
                                folds = Some(self.int_value(p.into_inner().next().unwrap()))
                            }
                            Rule::split_part => {
                                let pspan = self.span(&p);
                                let mut it = p.into_inner();
                                let name = self.name(it.next().unwrap());
                                let share = self.percent(it.next().unwrap());
                                parts.push(SplitPart {
                                    name,
                                    share,
                                    span: pspan,
                                });
                            }
                            _ => {}
                        }
                    }
                    let kind = match folds {
                        Some(k) => IntoKind::Folds(k),
                        None => IntoKind::Parts { about, parts },
                    };
                    st.into = Some(Into { kind, span: cspan });
                }
                _ => {}
            }
        }
        ok.then_some(st)
    }

    fn method(&mut self, p: Pair<Rule>) -> Method {
        let inner = p.into_inner().next().unwrap();
        match inner.as_rule() {
            Rule::kw_equal => Method::Equal,
            Rule::neyman => Method::Neyman(self.name(last_inner(inner))),
            Rule::power => {
                let n = last_inner(inner);
                // A number (separators dropped) or a param's name, as written.
                let q = if n.as_rule() == Rule::name {
                    n.as_str().to_string()
                } else {
                    n.as_str().replace('_', "")
                };
                Method::Power {
                    q,
                    q_span: self.span(&n),
                }
            }
            _ => Method::Proportional,
        }
    }

    fn amount(&mut self, p: Pair<Rule>) -> Amount {
        let inner = p.into_inner().next().unwrap();
        match inner.as_rule() {
            Rule::kw_all => Amount::All,
            Rule::kw_none => Amount::None,
            Rule::count_amount => Amount::Count(self.int_value(last_inner(inner))),
            Rule::rate_amount => Amount::Rate(self.percent(last_inner(inner))),
            Rule::share_amount => Amount::Share(self.percent(last_inner(inner))),
            _ => Amount::Method(self.method(inner)),
        }
    }

    fn as_of(&mut self, p: Pair<Rule>) -> Option<AsOf> {
        let span = self.span(&p);
        let mut at = None;
        let mut by = None;
        let mut within = None;
        let mut ties = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::as_of_time => {
                    let t = c.into_inner().next()?;
                    at = Some(match t.as_rule() {
                        Rule::name => AsOfTime::Param(self.name(t)),
                        _ => AsOfTime::Literal(self.literal(t)?),
                    });
                }
                Rule::name => by = Some(self.name(c)),
                Rule::within_clause => {
                    let wspan = self.span(&c);
                    let mut it = c.into_inner().skip(1);
                    let amount = self.int_value(it.next()?);
                    let hours = it.next()?.as_str().starts_with("hour");
                    within = Some(Within {
                        amount,
                        hours,
                        span: wspan,
                    });
                }
                Rule::ties_clause => {
                    let tspan = self.span(&c);
                    let mut column = None;
                    let mut desc = false;
                    for t in c.into_inner() {
                        match t.as_rule() {
                            Rule::name => column = Some(self.name(t)),
                            Rule::kw_desc => desc = true,
                            _ => {}
                        }
                    }
                    ties = Some(Ties {
                        column: column?,
                        desc,
                        span: tspan,
                    });
                }
                _ => {}
            }
        }
        Some(AsOf {
            at: at?,
            by: by?,
            within,
            ties,
            span,
        })
    }

    fn int_value(&mut self, p: Pair<Rule>) -> IntValue {
        let inner = p.into_inner().next().unwrap();
        match inner.as_rule() {
            Rule::integer => IntValue::Literal {
                digits: inner.as_str().replace('_', ""),
                span: self.span(&inner),
            },
            _ => IntValue::Param(self.name(inner)),
        }
    }

    fn percent(&mut self, p: Pair<Rule>) -> Percent {
        let span = self.span(&p);
        let inner = p.into_inner().next().unwrap();
        match inner.as_rule() {
            Rule::name => Percent::Param {
                name: self.name(inner),
                span,
            },
            _ => Percent::Literal {
                number: inner.as_str().replace('_', ""),
                span,
            },
        }
    }

    fn name(&mut self, p: Pair<Rule>) -> Ident {
        let span = self.span(&p);
        let inner = match p.as_rule() {
            Rule::name => p.into_inner().next().unwrap(),
            _ => p,
        };
        let s = inner.as_str();
        if inner.as_rule() == Rule::quoted_ident {
            let name = s[1..s.len() - 1].replace("``", "`");
            if name.is_empty() {
                self.diags.push(
                    Diagnostic::error("E0002", "an empty quoted name")
                        .at(span)
                        .with_help("write the column's name between the backticks"),
                );
            }
            Ident {
                name,
                span,
                quoted: true,
            }
        } else {
            Ident {
                name: s.to_string(),
                span,
                quoted: false,
            }
        }
    }

    fn string(&mut self, p: Pair<Rule>) -> StringLit {
        let span = self.span(&p);
        let inner = p.into_inner().next().unwrap();
        let raw = inner.as_str();
        let inner_start = self.span(&inner).start;
        let mut value = String::with_capacity(raw.len());
        let mut chars = raw.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                value.push(c);
                continue;
            }
            match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, c @ ('"' | '\'' | '\\'))) => value.push(c),
                Some((j, other)) => {
                    let at = Span::new(inner_start + i, inner_start + j + other.len_utf8());
                    self.diags.push(
                        Diagnostic::error("E0002", format!("unknown escape `\\{other}` in a string"))
                            .at(at)
                            .with_help("the escapes are \\\" \\' \\\\ \\n and \\t; write `\\\\` for a backslash"),
                    );
                    value.push(other);
                }
                None => {}
            }
        }
        StringLit { value, span }
    }

    fn literal(&mut self, p: Pair<Rule>) -> Option<Literal> {
        let span = self.span(&p);
        let s = p.as_str();
        Some(match p.as_rule() {
            Rule::integer => Literal::Integer {
                digits: s.replace('_', ""),
                span,
            },
            Rule::decimal => Literal::Decimal {
                text: s.replace('_', ""),
                span,
            },
            Rule::string => {
                let v = self.string(p);
                Literal::String {
                    value: v.value,
                    span,
                }
            }
            Rule::kw_true => Literal::Bool { value: true, span },
            Rule::kw_false => Literal::Bool { value: false, span },
            Rule::kw_null => Literal::Null { span },
            Rule::date => {
                let text = s[1..].to_string();
                if !valid_date(&text) {
                    self.diags.push(
                        Diagnostic::error("E0002", format!("`{s}` is not a calendar date"))
                            .at(span)
                            .with_help("write a real date as @YYYY-MM-DD, e.g. @2018-06-01"),
                    );
                }
                Literal::Date { text, span }
            }
            Rule::timestamp => {
                let text = s[1..].to_string();
                if !valid_date(&text[..10]) || !valid_time(&text[11..]) {
                    self.diags.push(
                        Diagnostic::error("E0002", format!("`{s}` is not a valid timestamp"))
                            .at(span)
                            .with_help("write @YYYY-MM-DDTHH:MM:SS with hours 00–23 and minutes/seconds 00–59"),
                    );
                }
                Literal::Timestamp { text, span }
            }
            _ => return None,
        })
    }

    /// A whole expression of a clause, refused when its tree is too deep to handle safely.
    fn top_expr(&mut self, p: Pair<Rule>) -> Option<Expr> {
        let e = self.expr(p)?;
        if depth(&e) > MAX_DEPTH {
            self.diags.push(
                Diagnostic::error("E0003", format!("expression more than {MAX_DEPTH} operators deep"))
                    .at(e.span)
                    .with_label("too deep to check safely")
                    .with_help("split the expression into simpler parts, e.g. with `in (…)` instead of chains of `+`"),
            );
            return None;
        }
        Some(e)
    }

    fn expr(&mut self, p: Pair<Rule>) -> Option<Expr> {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::expr => self.expr(p.into_inner().next()?),
            Rule::or_expr | Rule::and_expr => {
                // `and`/`or` are associative: a balanced tree keeps long chains shallow.
                let op = if p.as_rule() == Rule::or_expr {
                    BinaryOp::Or
                } else {
                    BinaryOp::And
                };
                let operands = p
                    .into_inner()
                    .filter(|c| !matches!(c.as_rule(), Rule::kw_or | Rule::kw_and))
                    .map(|c| self.expr(c))
                    .collect::<Option<Vec<_>>>()?;
                Some(balanced(op, operands))
            }
            Rule::add_expr | Rule::mul_expr => {
                let mut it = p.into_inner();
                let mut left = self.expr(it.next()?)?;
                while let Some(op) = it.next() {
                    let right = self.expr(it.next()?)?;
                    let op = match (op.as_rule(), op.as_str()) {
                        (Rule::kw_or, _) => BinaryOp::Or,
                        (Rule::kw_and, _) => BinaryOp::And,
                        (_, "+") => BinaryOp::Add,
                        (_, "-") => BinaryOp::Sub,
                        (_, "*") => BinaryOp::Mul,
                        _ => BinaryOp::Div,
                    };
                    let span = left.span.to(right.span);
                    left = Expr {
                        kind: ExprKind::Binary {
                            op,
                            left: Box::new(left),
                            right: Box::new(right),
                        },
                        span,
                    };
                }
                Some(left)
            }
            Rule::not_expr | Rule::unary_expr => {
                let p_text = p.as_str();
                let parts: Vec<Pair<Rule>> = p.clone().into_inner().collect();
                let (prefix, last) = parts.split_at(parts.len() - 1);
                let mut e = self.expr(last[0].clone())?;
                for op in prefix.iter().rev() {
                    let op_span = self.span(op);
                    let op = if op.as_rule() == Rule::kw_not {
                        UnaryOp::Not
                    } else {
                        UnaryOp::Neg
                    };
                    e = Expr {
                        span: op_span.to(e.span),
                        kind: ExprKind::Unary {
                            op,
                            expr: Box::new(e),
                        },
                    };
                }
                // A parenthesised operand spans its parentheses too (they
                // are in no pair of their own): `a / (b - 1)` ends at `)`.
                // The pair may end in the whitespace after it.
                let trailing = p_text.len() - p_text.trim_end().len();
                e.span = Span::new(span.start, span.end - trailing);
                Some(e)
            }
            Rule::cmp_expr => {
                let mut it = p.into_inner();
                let left = self.expr(it.next()?)?;
                let Some(suffix) = it.next() else {
                    return Some(left);
                };
                let negated = suffix
                    .clone()
                    .into_inner()
                    .any(|p| p.as_rule() == Rule::kw_not);
                let kind_rule = suffix.as_rule();
                let mut parts = suffix.into_inner().filter(|p| {
                    !matches!(
                        p.as_rule(),
                        Rule::kw_not
                            | Rule::kw_in
                            | Rule::kw_between
                            | Rule::kw_and
                            | Rule::kw_is
                            | Rule::kw_null
                            | Rule::kw_like
                    )
                });
                let expr = Box::new(left);
                let kind = match kind_rule {
                    Rule::compare => {
                        let op = match parts.next()?.as_str() {
                            "=" => BinaryOp::Eq,
                            "!=" | "<>" => BinaryOp::NotEq,
                            "<" => BinaryOp::Lt,
                            "<=" => BinaryOp::LtEq,
                            ">" => BinaryOp::Gt,
                            ">=" => BinaryOp::GtEq,
                            other => unreachable!("cmp_op matched {other:?}"),
                        };
                        let right = self.expr(parts.next()?)?;
                        ExprKind::Binary {
                            op,
                            left: expr,
                            right: Box::new(right),
                        }
                    }
                    Rule::in_list => {
                        let list = parts.map(|p| self.expr(p)).collect::<Option<Vec<_>>>()?;
                        ExprKind::InList {
                            expr,
                            list,
                            negated,
                        }
                    }
                    Rule::between => {
                        let low = Box::new(self.expr(parts.next()?)?);
                        let high = Box::new(self.expr(parts.next()?)?);
                        ExprKind::Between {
                            expr,
                            low,
                            high,
                            negated,
                        }
                    }
                    Rule::is_null => ExprKind::IsNull { expr, negated },
                    _ => ExprKind::Like {
                        expr,
                        pattern: Box::new(self.expr(parts.next()?)?),
                        negated,
                    },
                };
                Some(Expr { kind, span })
            }
            Rule::column => Some(Expr {
                kind: ExprKind::Name(self.name(p.into_inner().next()?)),
                span,
            }),
            Rule::case_expr => {
                let mut whens = Vec::new();
                let mut otherwise = None;
                for c in p.into_inner() {
                    match c.as_rule() {
                        Rule::when_then => {
                            let mut it = c.into_inner().filter(|p| p.as_rule() == Rule::expr);
                            let w = self.expr(it.next()?)?;
                            let t = self.expr(it.next()?)?;
                            whens.push((w, t));
                        }
                        Rule::expr => otherwise = Some(Box::new(self.expr(c)?)),
                        _ => {}
                    }
                }
                Some(Expr {
                    kind: ExprKind::Case { whens, otherwise },
                    span,
                })
            }
            Rule::call => {
                let mut it = p.into_inner();
                let fpair = it.next()?;
                let fname = fpair.into_inner().next()?;
                let func = Ident {
                    name: fname.as_str().to_string(),
                    span: self.span(&fname),
                    quoted: false,
                };
                let mut args = Vec::new();
                let mut star = false;
                let mut order_by = None;
                for c in it {
                    match c.as_rule() {
                        Rule::star => star = true,
                        Rule::call_args => {
                            let mut after_by = false;
                            for a in c.into_inner() {
                                match a.as_rule() {
                                    Rule::kw_by => after_by = true,
                                    Rule::edge_list => {
                                        let lspan = self.span(&a);
                                        let items = a
                                            .into_inner()
                                            .map(|p| self.expr(p))
                                            .collect::<Option<Vec<_>>>()?;
                                        args.push(Arg::List { items, span: lspan });
                                    }
                                    _ if after_by => order_by = Some(Box::new(self.expr(a)?)),
                                    _ => args.push(Arg::Expr(self.expr(a)?)),
                                }
                            }
                        }
                        _ => {}
                    }
                }
                Some(Expr {
                    kind: ExprKind::Call {
                        func,
                        args,
                        star,
                        order_by,
                    },
                    span,
                })
            }
            _ => {
                let lit = self.literal(p)?;
                Some(Expr {
                    kind: ExprKind::Literal(lit),
                    span,
                })
            }
        }
    }
}

use crate::ast::Rule as Rule_;

fn balanced(op: BinaryOp, mut items: Vec<Expr>) -> Expr {
    if items.len() == 1 {
        return items.pop().expect("one item");
    }
    let right = items.split_off(items.len() / 2);
    let (left, right) = (balanced(op, items), balanced(op, right));
    Expr {
        span: left.span.to(right.span),
        kind: ExprKind::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        },
    }
}

/// The depth of an expression tree, without recursion.
fn depth(e: &Expr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(e, 1usize)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        let mut children: Vec<&Expr> = Vec::new();
        match &e.kind {
            ExprKind::Literal(_) | ExprKind::Name(_) => {}
            ExprKind::Unary { expr, .. } | ExprKind::IsNull { expr, .. } => children.push(expr),
            ExprKind::Binary { left, right, .. } => children.extend([&**left, &**right]),
            ExprKind::InList { expr, list, .. } => {
                children.push(expr);
                children.extend(list);
            }
            ExprKind::Between {
                expr, low, high, ..
            } => children.extend([&**expr, &**low, &**high]),
            ExprKind::Like { expr, pattern, .. } => children.extend([&**expr, &**pattern]),
            ExprKind::Call { args, order_by, .. } => {
                for a in args {
                    match a {
                        Arg::Expr(x) => children.push(x),
                        Arg::List { items, .. } => children.extend(items),
                    }
                }
                children.extend(order_by.as_deref());
            }
            ExprKind::Case { whens, otherwise } => {
                for (w, t) in whens {
                    children.extend([w, t]);
                }
                children.extend(otherwise.as_deref());
            }
        }
        stack.extend(children.into_iter().map(|c| (c, d + 1)));
    }
    deepest
}

fn last_inner(p: Pair<Rule>) -> Pair<Rule> {
    p.into_inner().last().expect("grammar guarantees a child")
}

fn valid_date(text: &str) -> bool {
    let parts: Vec<u32> = text.split('-').filter_map(|p| p.parse().ok()).collect();
    let [y, m, d] = parts[..] else { return false };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

fn valid_time(text: &str) -> bool {
    let main = text.split('.').next().unwrap_or("");
    let parts: Vec<u32> = main.split(':').filter_map(|p| p.parse().ok()).collect();
    match parts[..] {
        [h, m] => h < 24 && m < 60,
        [h, m, s] => h < 24 && m < 60 && s < 60,
        _ => false,
    }
}
