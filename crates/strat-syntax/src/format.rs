//! Laying out a statement one clause per line, in the order of the grammar:
//! what `:save` in the REPL writes. Expressions keep their own text, with runs
//! of whitespace collapsed (strings and quoted names untouched).

use crate::ast::{Allocate, IntoKind, Statement};
use crate::lex::{self, TokenKind};
use crate::span::Span;

/// The statement `st` of `text`, laid out; `None` when it holds a comment
/// (a layout would lose it).
pub fn layout_statement(text: &str, st: &Statement) -> Option<String> {
    let slice = |s: Span| &text[s.start.min(text.len())..s.end.min(text.len())];
    if lex::tokens(slice(st.span))
        .iter()
        .any(|t| t.kind == TokenKind::Comment)
    {
        return None;
    }
    let flat = |s: Span| collapse(slice(s));
    let mut out = String::new();
    if let Some(n) = &st.name {
        out.push_str(&format!("{} = ", flat(n.span)));
    }
    out.push_str(&format!("{} {}", st.kind.as_str(), flat(st.source.span)));
    let mut line = |s: String| {
        out.push_str("\n  ");
        out.push_str(&s);
    };
    if let Some(a) = &st.as_of {
        line(flat(a.span));
    }
    if let Some(f) = &st.filter {
        line(format!("where {}", flat(f.span)));
    }
    if let Some(u) = &st.unit {
        line(format!("unit {}", flat(u.span)));
    }
    if let Some(h) = &st.having {
        line(format!("having {}", flat(h.span)));
    }
    if let Some(k) = &st.keep {
        line(format!("keep units in {}", flat(k.span)));
    }
    if let Some(x) = &st.exclude {
        line(format!("exclude units in {}", flat(x.span)));
    }
    if !st.strata.is_empty() {
        let items: Vec<String> = st.strata.iter().map(|i| flat(i.span)).collect();
        line(format!("stratify by {}", items.join(", ")));
    }
    if let Some(t) = &st.take {
        line(flat(t.span));
    }
    match &st.allocate {
        Some(Allocate::Method { span, .. }) => line(format!("allocate {}", flat(*span))),
        Some(Allocate::Rules { rules, .. }) => {
            let lhs: Vec<String> = rules
                .iter()
                .map(|r| {
                    r.predicate
                        .as_ref()
                        .map_or_else(|| "else".to_string(), |p| flat(p.span))
                })
                .collect();
            let width = lhs.iter().map(|l| l.chars().count()).max().unwrap_or(0);
            let mut block = String::from("allocate {");
            for (l, r) in lhs.iter().zip(rules) {
                let pad = width - l.chars().count();
                block.push_str(&format!(
                    "\n    {l}{} => {}",
                    " ".repeat(pad),
                    flat(r.amount_span)
                ));
            }
            block.push_str("\n  }");
            line(block);
        }
        None => {}
    }
    if let Some(m) = &st.min {
        line(format!("min {} per stratum", flat(m.span())));
    }
    if let Some(m) = &st.max {
        line(format!("max {} per stratum", flat(m.span())));
    }
    if let Some(into) = &st.into {
        match &into.kind {
            IntoKind::Folds(k) => line(format!("into {} folds", flat(k.span()))),
            IntoKind::Parts { about, parts } => {
                let parts: Vec<String> = parts.iter().map(|p| flat(p.span)).collect();
                line(format!(
                    "into {}{}",
                    if *about { "about " } else { "" },
                    parts.join(", ")
                ));
            }
        }
    }
    if let Some(s) = &st.seed {
        line(format!("seed {}", flat(s.span())));
    }
    if let Some(o) = &st.output {
        let names: Vec<String> = o.iter().map(|n| flat(n.span)).collect();
        line(format!("output {}", names.join(", ")));
    }
    Some(out)
}

/// Joins the tokens of `text` with single spaces, where the source had space
/// (comments kept: the caller decides whether they may be lost).
pub fn collapse(text: &str) -> String {
    let mut out = String::new();
    let mut last_end = 0;
    for t in lex::tokens(text) {
        if !out.is_empty() && t.span.start > last_end {
            out.push(' ');
        }
        out.push_str(&text[t.span.start..t.span.end]);
        last_end = t.span.end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Item;

    fn layout(src: &str) -> String {
        let p = crate::parse(src);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let Some(Item::Statement(st)) = p.file.items.into_iter().next() else {
            panic!("a statement")
        };
        layout_statement(src, &st).unwrap()
    }

    #[test]
    fn one_clause_a_line_and_aligned_rules() {
        let src = "c = sample members where  tenure_days >= 30 and country  in (\"US\",  'a  b') unit member_id \
                   stratify by country, bucket(tenure_days, [90, 365]) as band take 1_000 \
                   allocate { country = \"US\" => share 30% else => proportional } min 5 per stratum seed 7 output member_id, _weight";
        let want = "c = sample members\n  where tenure_days >= 30 and country in (\"US\", 'a  b')\n  unit member_id\n  \
                    stratify by country, bucket(tenure_days, [90, 365]) as band\n  take 1_000\n  allocate {\n    \
                    country = \"US\" => share 30%\n    else           => proportional\n  }\n  min 5 per stratum\n  \
                    seed 7\n  output member_id, _weight";
        let got = layout(src);
        assert_eq!(got, want);
        // The layout is a fixed point and parses to the same tree.
        assert_eq!(layout(&got), got);
    }

    #[test]
    fn having_and_keep_in_their_places() {
        let src = "sample events unit member_id having count(*)  >= 5 and sum(m) > 60 keep units in cohort \
                   exclude units in holdout take about allocate { else => rate 10% } seed 1";
        let want = "sample events\n  unit member_id\n  having count(*) >= 5 and sum(m) > 60\n  \
                    keep units in cohort\n  exclude units in holdout\n  take about\n  allocate {\n    \
                    else => rate 10%\n  }\n  seed 1";
        let got = layout(src);
        assert_eq!(got, want);
        assert_eq!(layout(&got), got);
    }

    #[test]
    fn splits_and_comments() {
        assert_eq!(
            layout("split c into 3 folds seed 1"),
            "split c\n  into 3 folds\n  seed 1"
        );
        assert_eq!(
            layout("split c unit m into about a 50%, b 50%"),
            "split c\n  unit m\n  into about a 50%, b 50%"
        );
        let src = "sample t # why\n seed 1";
        let p = crate::parse(src);
        let Some(Item::Statement(st)) = p.file.items.into_iter().next() else {
            panic!()
        };
        assert_eq!(layout_statement(src, &st), None);
    }
}
