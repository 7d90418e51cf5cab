//! The docs keep up with the code.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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

/// The repository's own files, for the checks below: sources, docs, cases and
/// scripts (not `target/`, not hidden folders).
fn repository_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            repository_files(&path, out);
        } else if path.extension().is_some_and(|e| {
            ["rs", "md", "pest", "py", "sh", "strat", "toml"].contains(&&*e.to_string_lossy())
        }) {
            out.push(path);
        }
    }
}

/// The section numbers of docs/spec.md: `2`, `4.1`, `A`… from its headings
/// (`## 4. Statements`, `### 4.1 \`sample\``, `## Appendix A. …`).
fn spec_sections() -> BTreeSet<String> {
    let spec = std::fs::read_to_string(root().join("docs/spec.md")).expect("docs/spec.md");
    let mut out = BTreeSet::new();
    for line in spec.lines() {
        let Some(title) = line
            .strip_prefix("##")
            .map(|t| t.trim_start_matches('#').trim())
        else {
            continue;
        };
        let title = title.strip_prefix("Appendix ").unwrap_or(title);
        let number: String = title
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        let number = number.trim_end_matches('.');
        if number.chars().next().is_some_and(|c| c.is_ascii_digit())
            || (number.len() == 1 && number.chars().all(|c| c.is_ascii_uppercase()))
        {
            out.insert(number.to_string());
        }
    }
    out
}

/// Every `§N` or `§N.M` cited anywhere in the repository (code comments,
/// messages, docs, cases) is a section of docs/spec.md: one numbering everywhere.
#[test]
fn every_cited_section_exists_in_the_spec() {
    let sections = spec_sections();
    for must in [
        "1", "2", "4.1", "4.2", "5.1", "5.2", "5.3", "5.4", "6", "7", "8", "9",
    ] {
        assert!(
            sections.contains(must),
            "docs/spec.md has no section {must}: {sections:?}"
        );
    }
    let mut files = Vec::new();
    repository_files(&root(), &mut files);
    let mut missing = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (i, _) in text.match_indices('§') {
            let cited: String = text[i + '§'.len_utf8()..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let cited = cited.trim_end_matches('.');
            if !cited.is_empty() && !sections.contains(cited) {
                let line = text[..i].lines().count();
                missing.push(format!("{}:{line}: §{cited}", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "sections cited but not in docs/spec.md:\n{}",
        missing.join("\n")
    );
}

/// No link in the repository's Markdown leaves it: a clone has every page
/// it points to (relative links must resolve to an existing file or folder).
#[test]
fn no_link_leaves_the_repository() {
    let root = root();
    let mut files = Vec::new();
    repository_files(&root, &mut files);
    let mut broken = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, _) in text.match_indices("](") {
            let target: String = text[i + 2..].chars().take_while(|c| *c != ')').collect();
            let path = target.split('#').next().unwrap_or_default();
            if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
                continue;
            }
            let resolved = file.parent().unwrap().join(path);
            let inside = resolved.canonicalize().is_ok_and(|p| p.starts_with(&root));
            if !inside {
                broken.push(format!("{}: {target}", file.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links that leave the repository or point nowhere:\n{}",
        broken.join("\n")
    );
}
