//! The run report as JSON or Markdown: per stratum its values, `N_h`, target,
//! selected count and weight; totals; the seed; a hash of the rule file and a
//! fingerprint of each input, so a sample can be traced to what made it.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde_json::{Value, json};
use strat_alloc::Target;

use strat_check::percent_text;

use crate::run::{Report, StatementReport, StratumReport};

/// Where a run came from.
#[derive(Clone, Debug)]
pub struct RunMeta {
    pub rule_file: String,
    /// md5 of the rule file's bytes, lowercase hex.
    pub rule_hash: String,
    /// The emitted statement's name, or `statement 2` for an unnamed one.
    pub statement: String,
    /// `(table, path, fingerprint)` of every bound input.
    pub inputs: Vec<(String, PathBuf, String)>,
    /// The sample files this report describes, when it was written with them:
    /// one, or one per split part (`-o 'out/{split}.parquet'`).
    pub output: Vec<OutputMeta>,
}

/// The sample file a report was written with: a report whose `md5` differs
/// from the file beside it describes another sample (written as a pair, the
/// two are renamed one after the other: see docs/guarantees.md).
#[derive(Clone, Debug)]
pub struct OutputMeta {
    /// The split part the file holds, when the sample is written one file a part.
    pub split: Option<String>,
    pub path: PathBuf,
    /// md5 of the file's bytes, lowercase hex.
    pub md5: String,
    pub bytes: u64,
}

pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A cheap content fingerprint of a file or folder: md5 over, for each file in
/// name order, its name, size, first MiB and last MiB. Catches a changed
/// snapshot without reading gigabytes.
pub fn fingerprint(path: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    if path.is_dir() {
        for e in std::fs::read_dir(path)? {
            let p = e?.path();
            if p.is_file() {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    let mut h = Md5::new();
    const CHUNK: u64 = 1 << 20;
    for f in files {
        let mut file = std::fs::File::open(&f)?;
        let size = file.metadata()?.len();
        h.update(
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
                .as_bytes(),
        );
        h.update(size.to_le_bytes());
        let mut buf = vec![0; CHUNK.min(size) as usize];
        file.read_exact(&mut buf)?;
        h.update(&buf);
        if size > CHUNK {
            let tail = CHUNK.min(size - CHUNK);
            file.seek(SeekFrom::End(-(tail as i64)))?;
            let mut buf = vec![0; tail as usize];
            file.read_exact(&mut buf)?;
            h.update(&buf);
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn target_json(t: &Target) -> (Value, Value) {
    match t {
        Target::Exact(n) => (json!(n), Value::Null),
        Target::Probability(p) => (Value::Null, json!(p.to_string())),
    }
}

/// One statement's part of the JSON report (the emitted statement's is at
/// the top level, the earlier statements' under `upstream`).
fn statement_json(label: &str, report: &Report) -> Value {
    let split = !report.split_totals.is_empty();
    let strata: Vec<Value> = report
        .strata
        .iter()
        .map(|s| {
            let (n_h, p_h) = target_json(&s.target);
            let mut v = json!({
                "stratum": s.text,
                "values": s.values,
                "population": s.population,
                "n_h": n_h,
                "p_h": p_h,
                "selected": s.selected,
                // A split adds no weight factor: each row keeps its source's `_weight`.
                "weight": if split { Value::Null } else { json!(s.weight) },
            });
            if split {
                v["splits"] = s
                    .split_counts
                    .iter()
                    .map(|(n, c)| (n.clone(), json!(c)))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
            }
            v
        })
        .collect();
    let as_of = report.as_of.as_ref().map_or(Value::Null, |a| {
        json!({
            "clause": a.clause,
            "rows_read": a.rows_read,
            "units_with_state": a.units_with_state,
            "units_without_state": a.units_without_state,
        })
    });
    json!({
        "statement": label,
        "seed": report.seed,
        "as_of": as_of,
        "population": report.total_population,
        "selected": report.total_selected,
        "null_units": report.null_units,
        "excluded_units": report.excluded_units,
        "weight_times_source_weight": report.source_weighted,
        "having_dropped_units": report.having_dropped_units,
        "warnings": report.warnings,
        "splits": report.split_totals.iter().map(|(n, c)| (n.clone(), json!(c))).collect::<serde_json::Map<_, _>>(),
        // The parts in listing order (the keys of `splits` are sorted).
        "split_names": report.split_totals.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "strata": strata,
    })
}

/// The JSON report: the emitted statement's report at the top level, with the
/// run's provenance, and every earlier statement it read under `upstream`.
pub fn to_json(report: &Report, upstream: &[StatementReport], meta: &RunMeta) -> Value {
    let mut v = json!({
        "strat_version": env!("CARGO_PKG_VERSION"),
        "rule_file": meta.rule_file,
        "rule_md5": meta.rule_hash,
        "inputs": meta.inputs.iter().map(|(t, p, f)| json!({"table": t, "path": p.display().to_string(), "fingerprint": f})).collect::<Vec<_>>(),
    });
    let file = |o: &OutputMeta| json!({"path": o.path.display().to_string(), "md5": o.md5, "bytes": o.bytes});
    match meta.output.as_slice() {
        [] => v["output"] = Value::Null,
        [one] if one.split.is_none() => v["output"] = file(one),
        parts => {
            v["output"] = Value::Null;
            v["outputs"] = parts
                .iter()
                .map(|o| {
                    let mut f = file(o);
                    f["split"] = json!(o.split);
                    f
                })
                .collect::<Vec<_>>()
                .into();
        }
    }
    if let (Value::Object(top), Value::Object(own)) =
        (&mut v, statement_json(&meta.statement, report))
    {
        top.extend(own);
    }
    v["upstream"] = upstream
        .iter()
        .map(|u| statement_json(&u.label(), &u.report))
        .collect::<Vec<_>>()
        .into();
    v
}

/// A stratum's weight for a table: `-` when it keeps no unit (no unit carries
/// a weight), else the weight to `decimals` places (every digit with `None`).
pub fn weight_cell(s: &StratumReport, decimals: Option<usize>) -> String {
    match (s.selected, decimals) {
        (0, _) => "-".to_string(),
        (_, Some(d)) => format!("{:.d$}", s.weight),
        (_, None) => s.weight.to_string(),
    }
}

/// A stratum's target for a table: `n_h`, or `p=P%` for a Bernoulli sample.
pub fn target_cell(t: &Target) -> String {
    match t {
        Target::Exact(n) => n.to_string(),
        Target::Probability(p) => format!("p={}%", percent_text(p)),
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown report: provenance, the emitted statement, then each earlier
/// statement of the chain it read.
pub fn to_markdown(report: &Report, upstream: &[StatementReport], meta: &RunMeta) -> String {
    let mut out = format!("# strat run report: {}\n\n", md_cell(&meta.rule_file));
    out.push_str(&format!("- rule file md5: `{}`\n", meta.rule_hash));
    for o in &meta.output {
        out.push_str(&format!(
            "- sample{}: {} (md5 `{}`, {} bytes)\n",
            o.split
                .as_ref()
                .map_or(String::new(), |s| format!(" (`{}`)", md_cell(s))),
            md_cell(&o.path.display().to_string()),
            o.md5,
            o.bytes
        ));
    }
    out.push_str(&format!("- strat {}\n\n", env!("CARGO_PKG_VERSION")));
    if !meta.inputs.is_empty() {
        out.push_str("## Inputs\n\n| table | path | fingerprint |\n| --- | --- | --- |\n");
        for (t, p, f) in &meta.inputs {
            out.push_str(&format!(
                "| {} | {} | `{f}` |\n",
                md_cell(t),
                md_cell(&p.display().to_string())
            ));
        }
        out.push('\n');
    }
    statement_markdown(
        &mut out,
        &format!("Emitted statement: {}", md_cell(&meta.statement)),
        report,
    );
    for u in upstream {
        out.push('\n');
        statement_markdown(
            &mut out,
            &format!("Earlier statement it reads: {}", md_cell(&u.label())),
            &u.report,
        );
    }
    out
}

/// One statement's section of the Markdown report.
fn statement_markdown(out: &mut String, heading: &str, report: &Report) {
    out.push_str(&format!("## {heading}\n\n"));
    out.push_str(&format!("- seed: {}\n", report.seed));
    if let Some(a) = &report.as_of {
        out.push_str(&format!(
            "- `{}`: {} rows read, {} units with a state, {} units with no row in the window (left out)\n",
            md_cell(&a.clause),
            a.rows_read,
            a.units_with_state,
            a.units_without_state
        ));
    }
    out.push_str(&format!(
        "- population (units): {}\n",
        report.total_population
    ));
    out.push_str(&format!("- selected (units): {}\n", report.total_selected));
    out.push_str(&format!(
        "- rows with a NULL unit (left out): {}\n",
        report.null_units
    ));
    out.push_str(&format!("- units excluded: {}\n", report.excluded_units));
    out.push_str(&format!(
        "- units dropped by `having`: {}\n",
        report.having_dropped_units
    ));
    if report.source_weighted {
        out.push_str(if report.split_totals.is_empty() {
            "- `_weight` of a row: the stratum's weight below × the row's `_weight` in the source (two-phase sampling)\n"
        } else {
            "- `_weight` of a row: the row's `_weight` in the source (a split adds no factor)\n"
        });
    }
    out.push('\n');
    if !report.warnings.is_empty() {
        out.push_str("### Warnings\n\n");
        for w in &report.warnings {
            out.push_str(&format!("- {}\n", md_cell(w)));
        }
        out.push('\n');
    }
    if !report.split_totals.is_empty() {
        let names: Vec<String> = report
            .split_totals
            .iter()
            .map(|(n, _)| md_cell(n))
            .collect();
        out.push_str(&format!(
            "### Splits\n\n| stratum | N_h | {} |\n| --- | ---: |{}\n",
            names.join(" | "),
            " ---: |".repeat(names.len())
        ));
        let totals: Vec<String> = report
            .split_totals
            .iter()
            .map(|(_, c)| c.to_string())
            .collect();
        out.push_str(&format!(
            "| **total** | {} | {} |\n",
            report.total_population,
            totals.join(" | ")
        ));
        for s in &report.strata {
            let counts: Vec<String> = s.split_counts.iter().map(|(_, c)| c.to_string()).collect();
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                md_cell(if s.text.is_empty() { "(all)" } else { &s.text }),
                s.population,
                counts.join(" | ")
            ));
        }
        return;
    }
    out.push_str("### Strata\n\n| stratum | N_h | target | selected | weight |\n| --- | ---: | ---: | ---: | ---: |\n");
    for s in &report.strata {
        let target = match &s.target {
            Target::Exact(n) => format!("n = {n}"),
            Target::Probability(p) => format!("p = {}%", percent_text(p)),
        };
        let weight = weight_cell(s, None);
        out.push_str(&format!(
            "| {} | {} | {target} | {} | {weight} |\n",
            md_cell(if s.text.is_empty() { "(all)" } else { &s.text }),
            s.population,
            s.selected,
        ));
    }
}
