//! The docs keep up with the code.

use crate::common::root;

/// Every diagnostic code the crates can emit has a section in docs/diagnostics.md.
#[test]
fn every_diagnostic_code_is_documented() {
    let docs =
        std::fs::read_to_string(root().join("docs/diagnostics.md")).expect("docs/diagnostics.md");
    let mut missing = Vec::new();
    for code in codes_in(&root().join("crates")) {
        if !docs.contains(&format!("## {code}")) {
            missing.push(code);
        }
    }
    assert!(
        missing.is_empty(),
        "undocumented diagnostic codes: {missing:?}"
    );
}

fn codes_in(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(codes_in(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, _) in text.match_indices('"') {
                let rest = &text[i + 1..];
                let is_code = rest.len() > 6
                    && matches!(rest.as_bytes()[0], b'E' | b'W')
                    && rest.as_bytes()[1..5].iter().all(u8::is_ascii_digit)
                    && rest.as_bytes()[5] == b'"';
                if is_code {
                    out.insert(rest[..5].to_string());
                }
            }
        }
    }
    out
}
