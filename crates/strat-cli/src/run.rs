//! `strat run`: compile, run the emitted statement, write the sample and the
//! report atomically, and summarise on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use datafusion::prelude::SessionContext;
use strat_engine::memory::Budget;
use strat_engine::output::{self, OutputError};
use strat_engine::progress::{Phase, Progress};
use strat_engine::report::{self, RunMeta};
use strat_engine::run::{Report, run_statement_streamed};
use strat_render::report::{REPORT_EXTENSIONS, ReportFormat, report_text_with};
use strat_syntax::Diagnostic;

use crate::render::{self, FileDiagnostics};
use crate::{BindArgs, ColorChoice, source};
pub(crate) use strat_render::emitted_statement;
pub(crate) use strat_render::run_error::run_diagnostic;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The .strat rule file to run.
    #[arg(value_name = "FILE")]
    pub file: String,
    #[command(flatten)]
    pub bind: BindArgs,
    /// Emit this named statement instead of the last one.
    #[arg(long, value_name = "NAME")]
    pub emit: Option<String>,
    /// Where to write the sample: .parquet, .csv, .ndjson or .jsonl. For a
    /// split, `{split}` in the name writes one file per part
    /// (`-o 'out/{split}.parquet'`: out/train.parquet, out/test.parquet, …).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
    /// Also write a report: .json, .md, or .html (a self-contained page with charts).
    #[arg(long, value_name = "REPORT")]
    pub report: Option<PathBuf>,
    /// Threads (DataFusion partitions) to use; the sample never depends on it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Memory to stay within, e.g. 512M or 4G: sorting and counting spill to disk past it, and what cannot spill fails cleanly (E0208). Default: 512 MiB before spilling, and at most 80% of the memory available (cgroup or machine) in all.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<usize>,
    /// Print where the time went (each phase of the run, and writing) on stderr.
    #[arg(long)]
    pub timings: bool,
    /// No progress bar on stderr (there is none when stderr is not a terminal).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// When to colour human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The .strat rule file.
    #[arg(value_name = "FILE")]
    pub file: String,
    #[command(flatten)]
    pub bind: BindArgs,
    /// Explain this named statement instead of the last one.
    #[arg(long, value_name = "NAME")]
    pub emit: Option<String>,
    /// When to colour human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// How many strata the stderr summary shows before it points to the report.
const SUMMARY_ROWS: usize = 20;

/// A compiled rule file ready to run, or the exit code when it is not.
pub(crate) struct Prepared {
    pub file: source::RuleFile,
    pub ctx: SessionContext,
    pub compiled_inputs: Vec<(String, PathBuf)>,
    pub program: strat_check::ir::Program,
    pub index: usize,
}

/// `512M`, `4G`, `1.5G`, `100000` (bytes) → bytes.
pub(crate) fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let factor: f64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KB" | "KIB" => 1024.0,
        "M" | "MB" | "MIB" => 1024.0 * 1024.0,
        "G" | "GB" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TB" | "TIB" => 1024.0_f64.powi(4),
        _ => return Err(format!("`{s}`: write a size such as 512M or 4G")),
    };
    match num.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && (n * factor) < usize::MAX as f64 => Ok((n * factor) as usize),
        _ => Err(format!("`{s}`: write a size such as 512M or 4G")),
    }
}

pub(crate) async fn prepare(
    name: &str,
    bind: &BindArgs,
    emit: Option<&str>,
    threads: Option<u16>,
    memory_limit: Option<usize>,
    color: bool,
) -> Result<Prepared, i32> {
    let file = source::read(name);
    let fail = |file: &source::RuleFile, diags: Vec<Diagnostic>| {
        let view = FileDiagnostics {
            name: &file.name,
            text: &file.text,
            diagnostics: &diags,
        };
        eprint!("{}", render::human(&view, color));
        1
    };
    if let Some(p) = &file.problem {
        return Err(fail(&file, vec![p.clone()]));
    }
    // DataFusion's operators and strat's own rows count against one pool:
    // what can spill spills past its budget, the rest fails cleanly (E0208).
    let budget = memory_limit.map_or_else(Budget::default_for_machine, Budget::fixed);
    let ctx = match strat_engine::memory::context(budget, threads.map(usize::from)) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("error: cannot set up the engine: {e}");
            return Err(1);
        }
    };
    let compiled =
        strat_engine::compile(&ctx, Some(Path::new(name)), &file.text, &bind.options()).await;
    // Warnings and notes are shown even when the run goes on.
    let view = FileDiagnostics {
        name: &file.name,
        text: &file.text,
        diagnostics: &compiled.diagnostics,
    };
    eprint!("{}", render::human(&view, color));
    let Some(program) = compiled.program else {
        eprintln!(
            "{}: failed ({})",
            file.name,
            render::summary(&compiled.diagnostics)
        );
        return Err(1);
    };
    let index = match emitted_statement(&program, emit) {
        Ok(i) => i,
        Err(d) => return Err(fail(&file, vec![*d])),
    };
    Ok(Prepared {
        file,
        ctx,
        compiled_inputs: compiled.inputs,
        program,
        index,
    })
}

pub async fn explain(args: ExplainArgs) -> i32 {
    let color = args.color.enabled();
    let p = match prepare(
        &args.file,
        &args.bind,
        args.emit.as_deref(),
        None,
        None,
        color,
    )
    .await
    {
        Ok(p) => p,
        Err(code) => return code,
    };
    match strat_engine::explain::explain(&p.ctx, &p.program, p.index, &p.file.text).await {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            let diags = vec![run_diagnostic(&e, &p.compiled_inputs, &p.program, p.index)];
            let view = FileDiagnostics {
                name: &p.file.name,
                text: &p.file.text,
                diagnostics: &diags,
            };
            eprint!("{}", render::human(&view, color));
            1
        }
    }
}

pub async fn run(args: RunArgs) -> i32 {
    // Ctrl-C: remove any half-written temporary file, leave the destination as it was.
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            let written = output::remove_pending();
            if written.is_empty() {
                eprintln!("interrupted: nothing was written");
            } else {
                // Between (or after) the sample's rename and the report's.
                let names: Vec<String> = written
                    .iter()
                    .map(|p| format!("`{}`", p.display()))
                    .collect();
                let verb = if names.len() == 1 { "was" } else { "were" };
                eprintln!(
                    "interrupted after {} {verb} written; nothing else was written",
                    names.join(" and ")
                );
            }
            std::process::exit(130);
        }
    });
    // A file-size limit (`ulimit -f`) sends SIGXFSZ, whose default action kills
    // the process mid-write and leaves the temporary file behind. With a handler
    // installed the write fails with EFBIG instead: E0205, the temporary file is
    // removed and the destination is untouched (as on a full disk).
    #[cfg(unix)]
    let _file_size_limit =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ));
    let color = args.color.enabled();
    let Prepared {
        file,
        ctx,
        compiled_inputs,
        program,
        index,
    } = match prepare(
        &args.file,
        &args.bind,
        args.emit.as_deref(),
        args.threads,
        args.memory_limit,
        color,
    )
    .await
    {
        Ok(p) => p,
        Err(code) => return code,
    };
    let fail = |diags: Vec<Diagnostic>| {
        let view = FileDiagnostics {
            name: &file.name,
            text: &file.text,
            diagnostics: &diags,
        };
        eprint!("{}", render::human(&view, color));
        1
    };

    // Refuse a bad destination before reading any data.
    let inputs: Vec<PathBuf> = compiled_inputs.iter().map(|(_, p)| p.clone()).collect();
    let destinations = match sample_destinations(&args, &program.statements[index], &inputs) {
        Ok(d) => d,
        Err(e) => return fail(vec![output_diagnostic(e)]),
    };

    let view = crate::progress::start(&file.name, args.quiet);
    let progress = view.as_ref().map(|v| v.progress.clone());
    let started = std::time::Instant::now();
    let options = strat_engine::run::RunOptions {
        progress: progress.clone(),
        ..strat_engine::run::RunOptions::default()
    };
    // A JSON report records each stratum's threshold (for `strat stream`),
    // taken from the rows as they are written.
    let tapped = (args.report.as_deref())
        .filter(|p| {
            let format = strat_render::report::report_format(p);
            matches!(format, Some(ReportFormat::Json | ReportFormat::Html))
        })
        .and_then(|_| strat_online::tap_thresholds(&program, index));
    let run_program = tapped.as_ref().map_or(&program, |t| &t.program);
    let result = run_statement_streamed(&ctx, run_program, index, &options).await;
    let mut out = match result {
        Ok(out) => out,
        Err(e) => {
            drop(view);
            return fail(vec![run_diagnostic(&e, &compiled_inputs, &program, index)]);
        }
    };
    let tap = match tapped {
        None => None,
        Some(t) => match tap_rows(&mut out, t.shown, t.thresholds) {
            Ok(tap) => Some(tap),
            Err(e) => return fail(vec![Diagnostic::error("E0207", e)]),
        },
    };

    let writing = std::time::Instant::now();
    // The sample and the report as a pair: both written completely (and fsynced)
    // under temporary names before either is renamed; then the sample, then the
    // report, which records the sample's md5 and size. A failure before the first
    // rename leaves both old files; between the renames (a crash) the old report,
    // whose md5 is not the new sample's, beside the new sample.
    let threads = ctx.state().config().target_partitions();
    let rows = std::mem::replace(&mut out.rows, Box::pin(futures::stream::empty()));
    let staged = stage_samples(rows, &out.schema, &destinations, threads, progress).await;
    drop(view);
    let (samples, rows) = match staged {
        Ok(s) => s,
        Err(Staging::Output(e)) => return fail(vec![output_diagnostic(e)]),
        Err(Staging::Run(e)) => {
            return fail(vec![run_diagnostic(&e, &compiled_inputs, &program, index)]);
        }
    };
    let mut staged_report = None;
    if let Some(path) = &args.report {
        let mut files = Vec::new();
        for (split, staged) in &samples {
            let (md5, bytes) = match staged.md5_and_size() {
                Ok(m) => m,
                Err(e) => return fail(vec![output_diagnostic(e)]),
            };
            files.push(report::OutputMeta {
                split: split.clone(),
                path: staged.path().to_path_buf(),
                md5,
                bytes,
            });
        }
        let meta = RunMeta {
            rule_file: file.name.clone(),
            rule_hash: report::md5_hex(file.text.as_bytes()),
            statement: strat_engine::run::statement_label(
                program.statements[index].name.as_deref(),
                index,
            ),
            inputs: compiled_inputs
                .iter()
                .map(|(t, p)| {
                    (
                        t.clone(),
                        p.clone(),
                        report::fingerprint(p).unwrap_or_else(|e| format!("unreadable: {e}")),
                    )
                })
                .collect(),
            output: files,
        };
        let format = report_format(path).unwrap_or(ReportFormat::Markdown);
        let rules = strat_online::RuleFile {
            name: &file.name,
            text: &file.text,
            params: &args.bind.params,
        };
        let thresholds = tap
            .and_then(|tap| tap.lock().ok().and_then(|mut t| t.take()))
            .map(|t| strat_online::decisions(&program, index, t, &out.report, &rules).to_json());
        let text = report_text_with(format, &out.report, &out.upstream, &meta, thresholds);
        match output::stage_file(path, |w| {
            w.write_all(text.as_bytes())
                .map_err(|e| strat_engine::errtext::io(&e))
        }) {
            Ok(r) => staged_report = Some(r),
            // The staged sample is dropped: its temporary file is removed.
            Err(e) => return fail(vec![output_diagnostic(e)]),
        }
    }
    for (_, staged) in samples {
        if let Err(e) = staged.commit() {
            return fail(vec![output_diagnostic(e)]);
        }
    }
    if let Some(r) = staged_report
        && let Err(e) = r.commit()
    {
        let mut d = output_diagnostic(e);
        d.help = Some(format!(
            "the sample `{}` was written; an old report beside it describes another sample (its md5 differs)",
            args.output.display()
        ));
        return fail(vec![d]);
    }
    let (writing, total) = (writing.elapsed(), started.elapsed());
    // The earlier statements' warnings too (a chain's cohort may fall short).
    for u in &out.upstream {
        for w in &u.report.warnings {
            eprintln!("warning: in `{}`: {w}", u.label());
        }
    }
    for w in &out.report.warnings {
        eprintln!("warning: {w}");
    }
    let written: Vec<String> = destinations
        .iter()
        .map(|(_, p)| p.display().to_string())
        .collect();
    let written = written.join(", ");
    eprint!("{}", summary(&out.report, args.report.as_deref()));
    if out.report.split_totals.is_empty() {
        eprintln!(
            "{}: sampled {} of {} units ({rows} rows) into {}",
            file.name, out.report.total_selected, out.report.total_population, written
        );
    } else {
        let parts: Vec<String> = out
            .report
            .split_totals
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect();
        eprintln!(
            "{}: split {} units ({rows} rows) into {}: {}",
            file.name,
            out.report.total_population,
            written,
            parts.join(", ")
        );
    }
    if args.timings {
        eprint!("{}", timings(&out.profile, writing, total));
    }
    0
}

type Tap = Arc<std::sync::Mutex<Option<strat_online::Thresholds>>>;

/// Passes every row of `out` through `thresholds` and drops the columns
/// after the first `shown` (those the thresholds alone needed).
fn tap_rows(
    out: &mut strat_engine::run::RunStream,
    shown: usize,
    thresholds: strat_online::Thresholds,
) -> Result<Tap, String> {
    use futures::StreamExt;
    let tap: Tap = Arc::new(std::sync::Mutex::new(Some(thresholds)));
    let columns: Vec<usize> = (0..shown).collect();
    out.schema = Arc::new(out.schema.project(&columns).map_err(|e| e.to_string())?);
    let rows = std::mem::replace(&mut out.rows, Box::pin(futures::stream::empty()));
    let seen = tap.clone();
    out.rows = Box::pin(rows.map(move |b| {
        let b = b?;
        if let Ok(mut t) = seen.lock()
            && let Some(t) = t.as_mut()
            && let Err(e) = t.observe(&b)
        {
            return Err(strat_engine::RunError::Statement(format!(
                "recording the thresholds: {e}"
            )));
        }
        b.project(&columns).map_err(|e| {
            strat_engine::RunError::Statement(format!("dropping the threshold columns: {e}"))
        })
    }));
    Ok(tap)
}

/// What `-o` writes the sample to: the one file it names, or, when it holds
/// `{split}` (`-o 'out/{split}.parquet'`), one file per part of a split,
/// named by the part. Checked before any data is read.
fn sample_destinations(
    args: &RunArgs,
    st: &strat_check::ir::Statement,
    inputs: &[PathBuf],
) -> Result<Vec<(Option<String>, PathBuf)>, OutputError> {
    let pattern = args.output.to_string_lossy();
    let destinations = if !pattern.contains(SPLIT_PLACEHOLDER) {
        vec![(None, args.output.clone())]
    } else {
        let refuse = |message: String, help: &str| OutputError {
            message,
            help: help.into(),
        };
        let Some(split) = st.kind.split() else {
            return Err(refuse(
                format!(
                    "`-o {pattern}` writes one file per split part, but the emitted statement is a sample"
                ),
                "name one file, or emit a split (`--emit NAME`)",
            ));
        };
        if !st.output.contains(&strat_check::ir::Output::SplitName) {
            return Err(refuse(
                format!(
                    "`-o {pattern}` writes one file per split part, but the split's output has no `_split` column"
                ),
                "add `_split` to the statement's `output` list",
            ));
        }
        split
            .parts
            .iter()
            .map(|(name, _)| {
                (
                    Some(name.clone()),
                    PathBuf::from(pattern.replace(SPLIT_PLACEHOLDER, name)),
                )
            })
            .collect()
    };
    for (_, path) in &destinations {
        output::OutputFormat::for_path(path)?;
        output::check_not_an_input(path, inputs)?;
        if let Some(r) = &args.report {
            output::check_distinct(path, r)?;
        }
    }
    if let Some(r) = &args.report {
        report_format(r)?;
        output::check_not_an_input(r, inputs)?;
    }
    Ok(destinations)
}

/// `-o`'s placeholder for a split part's name.
const SPLIT_PLACEHOLDER: &str = "{split}";

/// Why staging the sample files failed: reading the rows (a split's sort),
/// or writing them.
enum Staging {
    Run(strat_engine::RunError),
    Output(OutputError),
}

/// Each destination's rows written completely under a temporary name (none is
/// in place until every one, and the report, is written): the whole sample,
/// or a part's rows (by `_split`) in its own file. The rows are read once, as
/// they come (told to `progress`); returns the staged files and the number
/// of rows.
async fn stage_samples(
    mut rows: strat_engine::run::RowStream,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    destinations: &[(Option<String>, PathBuf)],
    threads: usize,
    progress: Option<Arc<Progress>>,
) -> Result<(Vec<(Option<String>, output::Staged)>, usize), Staging> {
    use futures::StreamExt;
    let mut writers = Vec::new();
    for (split, path) in destinations {
        let w = output::SampleWriter::create(path, schema.clone(), threads);
        writers.push((split.clone(), w.map_err(Staging::Output)?));
    }
    let mut count = 0;
    while let Some(batch) = rows.next().await {
        let batch = batch.map_err(Staging::Run)?;
        if let Some(p) = &progress {
            // A split's first rows come once every row is placed.
            if count == 0 {
                p.enter(Phase::Writing, None);
            }
            p.read(batch.num_rows());
        }
        count += batch.num_rows();
        for (split, writer) in &mut writers {
            let part = match split {
                None => batch.clone(),
                Some(part) => part_rows(&batch, schema, part).map_err(|e| {
                    Staging::Output(OutputError {
                        message: format!("cannot select the rows of split `{part}`: {e}"),
                        help: "please report this".into(),
                    })
                })?,
            };
            if part.num_rows() > 0 {
                writer.write(&part).map_err(Staging::Output)?;
            }
        }
    }
    let mut staged = Vec::new();
    for (split, writer) in writers {
        staged.push((split, writer.finish().map_err(Staging::Output)?));
    }
    Ok((staged, count))
}

/// The rows of `batch` in split part `part` (its `_split` value).
fn part_rows(
    batch: &datafusion::arrow::record_batch::RecordBatch,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    part: &str,
) -> Result<datafusion::arrow::record_batch::RecordBatch, datafusion::arrow::error::ArrowError> {
    use datafusion::arrow::array::{AsArray, BooleanArray};
    use datafusion::arrow::compute::{cast, filter_record_batch};
    use datafusion::arrow::datatypes::DataType;
    let column = schema.index_of("_split")?;
    let names = cast(batch.column(column), &DataType::Utf8)?;
    let keep: BooleanArray = names
        .as_string::<i32>()
        .iter()
        .map(|n| Some(n == Some(part)))
        .collect();
    filter_record_batch(batch, &keep)
}

/// The `--timings` lines: the plan, each phase, writing, and the total.
fn timings(profile: &strat_engine::run::Profile, writing: Duration, total: Duration) -> String {
    let mut out = "timings:\n".to_string();
    let mut line =
        |name: &str, d: Duration| out.push_str(&format!("  {:>9.3} s  {name}\n", d.as_secs_f64()));
    for (name, d) in &profile.phases {
        line(name, *d);
    }
    line("writing the sample (and the report)", writing);
    line("total (without checking the rules)", total);
    if profile.spilled_runs > 0 {
        out.push_str(&format!(
            "  (the units went to disk in {} sorted runs)\n",
            profile.spilled_runs
        ));
    }
    out
}

/// The report's format, from its extension.
fn report_format(path: &Path) -> Result<ReportFormat, OutputError> {
    strat_render::report::report_format(path).ok_or_else(|| OutputError {
        message: format!(
            "cannot tell the report format of `{}` from its extension",
            path.display()
        ),
        help: format!("name the report {REPORT_EXTENSIONS}"),
    })
}

pub(crate) fn output_diagnostic(e: OutputError) -> Diagnostic {
    Diagnostic::error("E0205", e.message).with_help(e.help)
}

/// The per-stratum summary for stderr, cut to the first strata when there are
/// many (`report`: where the whole table went, if anywhere).
fn summary(report: &Report, report_path: Option<&Path>) -> String {
    if report.strata.is_empty() {
        return String::new();
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    let name = |s: &strat_engine::run::StratumReport| {
        if s.text.is_empty() {
            "(all)".to_string()
        } else {
            s.text.clone()
        }
    };
    if report.split_totals.is_empty() {
        table.set_header(["stratum", "N_h", "target", "selected", "weight"]);
        for s in report.strata.iter().take(SUMMARY_ROWS) {
            let target = report::target_cell(&s.target);
            let weight = report::weight_cell(s, Some(4));
            table.add_row(vec![
                name(s),
                s.population.to_string(),
                target,
                s.selected.to_string(),
                weight,
            ]);
        }
    } else {
        let mut header = vec!["stratum".to_string(), "N_h".to_string()];
        header.extend(report.split_totals.iter().map(|(n, _)| n.clone()));
        table.set_header(header);
        for s in report.strata.iter().take(SUMMARY_ROWS) {
            let mut row = vec![name(s), s.population.to_string()];
            row.extend(s.split_counts.iter().map(|(_, c)| c.to_string()));
            table.add_row(row);
        }
    }
    let mut out = format!("{table}\n");
    if report.strata.len() > SUMMARY_ROWS {
        let more = report.strata.len() - SUMMARY_ROWS;
        out.push_str(&match report_path {
            Some(p) => format!(
                "… and {more} more strata (all of them are in {})\n",
                p.display()
            ),
            None => format!(
                "… and {more} more strata (write them all with --report FILE.md or .json)\n"
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse_size;
    use strat_render::run_error::flag_size;

    #[test]
    fn sizes_for_the_memory_limit_round_up_and_parse_back() {
        assert_eq!(flag_size(1000), "1000");
        assert_eq!(flag_size(474_931), "464K");
        assert_eq!(flag_size(1 << 20), "1M");
        assert_eq!(flag_size((1 << 20) + 1), "1.1M");
        assert_eq!(flag_size(3 << 30), "3G");
        for n in [1, 1023, 1024, 474_931, 1 << 20, 5_000_001, 7 << 30] {
            let back = parse_size(&flag_size(n)).unwrap();
            assert!(back >= n, "{n} → {} → {back}", flag_size(n));
        }
    }
}
