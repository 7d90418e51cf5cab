//! `strat freeze` (a batch run's thresholds, as a small JSON file) and
//! `strat stream` (records decided as they arrive, with the batch's rules).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use strat_check::ir::Source;
use strat_engine::output::{self, LineWriter, OutputFormat};
use strat_online::{Decider, Decisions, FreezeError, OnlineError};
use strat_syntax::Diagnostic;

use crate::render::{self, FileDiagnostics};
use crate::run::{Prepared, output_diagnostic, parse_size, prepare, run_diagnostic};
use crate::{BindArgs, ColorChoice};

#[derive(clap::Args, Debug)]
pub struct FreezeArgs {
    /// The .strat rule file.
    #[arg(value_name = "FILE")]
    pub file: String,
    #[command(flatten)]
    pub bind: BindArgs,
    /// Freeze this named statement instead of the last one.
    #[arg(long, value_name = "NAME")]
    pub emit: Option<String>,
    /// Where to write the decisions (JSON).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
    /// Threads (DataFusion partitions) to use; the thresholds never depend on it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Memory to stay within, as for `strat run`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<usize>,
    /// When to colour human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LineFormat {
    Ndjson,
    Csv,
}

#[derive(clap::Args, Debug)]
pub struct StreamArgs {
    /// The .strat rule file; its table gives the records' columns and types.
    #[arg(value_name = "FILE")]
    pub file: String,
    #[command(flatten)]
    pub bind: BindArgs,
    /// Decide this named statement instead of the last one.
    #[arg(long, value_name = "NAME")]
    pub emit: Option<String>,
    /// The thresholds `strat freeze` wrote (or a JSON report of `strat run`,
    /// which carries them): needed by every statement whose decision depends
    /// on the table's counts (exact samples and splits).
    #[arg(long, value_name = "DECISIONS")]
    pub thresholds: Option<PathBuf>,
    /// Read the records from this file instead of standard input.
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
    /// Keep reading the file as it grows (until interrupted): the `--from`
    /// file, or else the statement's table file itself (as bound by the rule
    /// file or `--table NAME=PATH`).
    #[arg(long)]
    pub follow: bool,
    /// The records' format: NDJSON, or CSV with a header line. Default: from
    /// the file's extension (`.csv`), NDJSON on standard input.
    #[arg(long, value_enum)]
    pub input_format: Option<LineFormat>,
    /// The selected records' format on standard output.
    #[arg(long, value_enum, default_value_t = LineFormat::Ndjson)]
    pub output_format: LineFormat,
    /// Decide and flush each record as its line arrives (lowest latency);
    /// otherwise records are decided and flushed a batch at a time.
    #[arg(long)]
    pub line_buffered: bool,
    /// When to colour human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

fn show(p: &Prepared, diags: Vec<Diagnostic>, color: bool) -> i32 {
    let view = FileDiagnostics {
        name: &p.file.name,
        text: &p.file.text,
        diagnostics: &diags,
    };
    eprint!("{}", render::human(&view, color));
    1
}

pub async fn freeze(args: FreezeArgs) -> i32 {
    let color = args.color.enabled();
    let p = match prepare(
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
    if let Err(e) = OutputFormat::for_path(&args.output)
        .and_then(|_| output::check_distinct(&args.output, std::path::Path::new(&args.file)))
    {
        return show(&p, vec![output_diagnostic(e)], color);
    }
    let rules = strat_online::RuleFile {
        name: &p.file.name,
        text: &p.file.text,
        params: &args.bind.params,
    };
    let options = strat_engine::run::RunOptions::default();
    let frozen = strat_online::freeze(&p.ctx, &p.program, p.index, &options, &rules).await;
    let (decisions, report) = match frozen {
        Ok(d) => d,
        Err(FreezeError::Rules(d)) => return show(&p, vec![*d], color),
        Err(FreezeError::Run(e)) => {
            let d = run_diagnostic(&e, &p.compiled_inputs, &p.program, p.index);
            return show(&p, vec![d], color);
        }
        Err(FreezeError::Rows(e)) => {
            eprintln!("error: reading the run's rows: {e}");
            return 1;
        }
    };
    let text = format!("{:#}\n", decisions.to_json());
    let staged = output::stage_file(&args.output, |w| {
        w.write_all(text.as_bytes()).map_err(|e| e.to_string())
    });
    if let Err(e) = staged.and_then(output::Staged::commit) {
        return show(&p, vec![output_diagnostic(e)], color);
    }
    eprintln!(
        "{}: froze {} ({} strata, {} of {} units selected) into {}",
        p.file.name,
        decisions.statement,
        decisions.strata.len(),
        report.total_selected,
        report.total_population,
        args.output.display()
    );
    0
}

pub async fn stream(args: StreamArgs) -> i32 {
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
    let st = &p.program.statements[p.index];
    if let Err(d) = strat_online::online_form(st, args.thresholds.is_some()) {
        return show(&p, vec![*d], color);
    }
    let frozen = match &args.thresholds {
        None => None,
        Some(path) => match Decisions::read(path) {
            Ok(d) => Some(d),
            Err(e) => {
                let d = Diagnostic::error("E0145", format!("the thresholds cannot be used: {e}"))
                    .with_help("freeze them with `strat freeze FILE -o decisions.json`");
                return show(&p, vec![d], color);
            }
        },
    };
    let Source::Table(table) = &st.source else {
        unreachable!("online_form refuses a statement source (E0144)");
    };
    let schema = match p.ctx.table_provider(table.as_str()).await {
        Ok(t) => plain(&t.schema()),
        Err(e) => {
            eprintln!("error: the table `{table}`: {e}");
            return 1;
        }
    };
    let origin = strat_online::Origin {
        rule_text: &p.file.text,
        params: &args.bind.params,
    };
    let frozen = frozen.map(|d| (d, origin));
    let decider = match Decider::new(&p.ctx, &p.program, p.index, schema.clone(), frozen) {
        Ok(d) => d,
        Err(OnlineError::Rules(d)) => return show(&p, vec![*d], color),
        Err(OnlineError::Thresholds(m)) => {
            let d = Diagnostic::error("E0145", m).with_help(
                "freeze them again from this rule file: `strat freeze FILE -o decisions.json`",
            );
            return show(&p, vec![d], color);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    // `keep`/`exclude units in` a table: its keys, read once.
    let filters = strat_online::UnitFilters::read(&p.ctx, &p.program, st, &mut Vec::new()).await;
    let decider = match filters {
        Ok(f) => decider.with_unit_filters(f),
        Err(e) => {
            let d = run_diagnostic(&e, &p.compiled_inputs, &p.program, p.index);
            return show(&p, vec![d], color);
        }
    };
    // Records from `--from`, the table's own file (`--follow` alone), or stdin.
    let from = args.from.clone().or_else(|| {
        let bound = p.compiled_inputs.iter().find(|(t, _)| t == table);
        args.follow
            .then(|| bound.map(|(_, path)| path.clone()))
            .flatten()
    });
    let input: Box<dyn Read> = match &from {
        None => Box::new(std::io::stdin()),
        Some(path) => match std::fs::File::open(path) {
            Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => Box::new(f),
            Ok(_) => {
                eprintln!(
                    "error: `{}` is a folder; follow one file of records (`--from FILE`)",
                    path.display()
                );
                return 1;
            }
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", path.display());
                return 1;
            }
        },
    };
    // A file of records is NDJSON or CSV, by its extension unless told.
    let extension = (from.as_ref())
        .and_then(|p| p.extension())
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let in_format = match (args.input_format, extension.as_deref()) {
        (Some(f), _) => f,
        (None, Some("csv")) => LineFormat::Csv,
        (None, None | Some("ndjson" | "jsonl" | "json")) => LineFormat::Ndjson,
        (None, Some(other)) => {
            eprintln!(
                "error: `{}` is a .{other} file: records are read as lines of NDJSON or CSV; \
                 give `--from` a .ndjson or .csv file, or say `--input-format`",
                from.as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            );
            return 1;
        }
    };
    let out_format = match args.output_format {
        LineFormat::Ndjson => OutputFormat::NdJson,
        LineFormat::Csv => OutputFormat::Csv,
    };
    let records = Records::new(schema, in_format, decider.decision_columns());
    let mut session = Session {
        decider,
        records,
        out: LineWriter::new(
            std::io::BufWriter::new(std::io::stdout().lock()),
            out_format,
        ),
        line: 0,
        unreadable: 0,
        incomplete: 0,
        told: 0,
    };
    match session.run(input, args.follow, args.line_buffered) {
        Ok(()) => {
            eprintln!("{}", session.summary());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// The records' schema as the decoders make it: views as plain types.
fn plain(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = (schema.fields().iter())
        .map(|f| {
            let t = match f.data_type() {
                DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
                DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
                DataType::Dictionary(_, v) => v.as_ref().clone(),
                t => t.clone(),
            };
            Field::new(f.name(), t, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Lines of records → record batches of the table's schema.
struct Records {
    schema: SchemaRef,
    format: LineFormat,
    /// CSV: the header's columns (in the header's order) and where each
    /// table column is among them; read from the first line.
    csv: Option<(SchemaRef, Vec<usize>)>,
    /// NDJSON: the columns the decision reads and their keys as JSON text
    /// (`"name"`): a record must have each (a CSV's header is checked once).
    keys: Vec<(String, memchr::memmem::Finder<'static>)>,
}

impl Records {
    fn new(schema: SchemaRef, format: LineFormat, decision_columns: Vec<String>) -> Records {
        let keys = match format {
            LineFormat::Ndjson => decision_columns
                .into_iter()
                .map(|c| {
                    let key = serde_json::Value::String(c.clone()).to_string();
                    (c, memchr::memmem::Finder::new(key.as_bytes()).into_owned())
                })
                .collect(),
            LineFormat::Csv => Vec::new(),
        };
        Records {
            schema,
            format,
            csv: None,
            keys,
        }
    }

    /// The first column the decision reads that an NDJSON record lacks (a
    /// missing key would read as NULL and decide the record in the wrong
    /// stratum). A key is found as its JSON text followed by `:` — inside a
    /// string value its quotes would be escaped; a key spelled with escapes
    /// (`"c\u006funtry"`) is not found, and its record is skipped, not
    /// misread.
    fn missing(&self, line: &[u8]) -> Option<&str> {
        // Not an object (or blank): the decoder says what is wrong with it.
        if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        let has = |finder: &memchr::memmem::Finder| {
            let len = finder.needle().len();
            finder.find_iter(line).any(|at| {
                line[at + len..]
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_some_and(|&b| b == b':')
            })
        };
        self.keys
            .iter()
            .find(|(_, finder)| !has(finder))
            .map(|(name, _)| name.as_str())
    }

    /// Reads a CSV header line: every table column must be there.
    fn header(&mut self, line: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(line);
        let names: Vec<String> = (text.trim_end_matches(['\r', '\n']).split(','))
            .map(|n| n.trim().trim_matches('"').to_string())
            .collect();
        let mut fields = Vec::new();
        for n in &names {
            let t = self
                .schema
                .field_with_name(n)
                .map_or(DataType::Utf8, |f| f.data_type().clone());
            fields.push(Field::new(n, t, true));
        }
        let at = (self.schema.fields().iter())
            .map(|f| {
                names.iter().position(|n| n == f.name()).ok_or_else(|| {
                    format!(
                        "the CSV header has no column `{}`; it must name every column of the table ({})",
                        f.name(),
                        names.join(", ")
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.csv = Some((Arc::new(Schema::new(fields)), at));
        Ok(())
    }

    /// The records of `lines` (complete lines), or the decoder's error.
    fn decode(&self, lines: &[u8], count: usize) -> Result<Option<RecordBatch>, String> {
        let err = |e: datafusion::arrow::error::ArrowError| e.to_string();
        match (self.format, &self.csv) {
            (LineFormat::Ndjson, _) => {
                let mut d = datafusion::arrow::json::ReaderBuilder::new(self.schema.clone())
                    .with_batch_size(count + 1)
                    .build_decoder()
                    .map_err(err)?;
                d.decode(lines).map_err(err)?;
                d.flush().map_err(err)
            }
            (LineFormat::Csv, Some((schema, at))) => {
                let mut d = datafusion::arrow::csv::ReaderBuilder::new(schema.clone())
                    .with_header(false)
                    .with_batch_size(count + 1)
                    .build_decoder();
                d.decode(lines).map_err(err)?;
                let b = d.flush().map_err(err)?;
                b.map(|b| {
                    let b = b.project(at).map_err(err)?;
                    RecordBatch::try_new(self.schema.clone(), b.columns().to_vec()).map_err(err)
                })
                .transpose()
            }
            (LineFormat::Csv, None) => Err("no CSV header line".into()),
        }
    }
}

struct Session<W: Write> {
    decider: Decider,
    records: Records,
    out: LineWriter<W>,
    /// Lines read so far (1-based numbers in messages).
    line: u64,
    unreadable: u64,
    /// Records skipped for lacking a column the decision reads.
    incomplete: u64,
    /// Skipped records told on stderr (the rest are only counted).
    told: u64,
}

/// How many skipped records are named on stderr.
const TOLD: u64 = 20;

impl<W: Write> Session<W> {
    fn run(
        &mut self,
        input: Box<dyn Read>,
        follow: bool,
        line_buffered: bool,
    ) -> Result<(), String> {
        let mut reader = BufReader::with_capacity(1 << 20, input);
        let mut partial: Vec<u8> = Vec::new();
        loop {
            let buf = reader
                .fill_buf()
                .map_err(|e| format!("reading the records: {e}"))?;
            if buf.is_empty() {
                if follow {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    continue;
                }
                if !partial.iter().all(u8::is_ascii_whitespace) {
                    partial.push(b'\n');
                    let chunk = std::mem::take(&mut partial);
                    self.chunk(&chunk, line_buffered)?;
                }
                return Ok(());
            }
            let n = buf.len();
            match buf.iter().rposition(|&b| b == b'\n') {
                None => {
                    partial.extend_from_slice(buf);
                    reader.consume(n);
                }
                Some(i) => {
                    let mut chunk = std::mem::take(&mut partial);
                    chunk.extend_from_slice(&buf[..=i]);
                    partial.extend_from_slice(&buf[i + 1..]);
                    reader.consume(n);
                    self.chunk(&chunk, line_buffered)?;
                }
            }
        }
    }

    /// Decides the complete lines of `chunk`: all at once, or (line
    /// buffered) one at a time, flushing after each.
    fn chunk(&mut self, chunk: &[u8], line_buffered: bool) -> Result<(), String> {
        let mut lines: Vec<&[u8]> = chunk.split_inclusive(|&b| b == b'\n').collect();
        if self.records.format == LineFormat::Csv && self.records.csv.is_none() {
            let Some(header) = lines.first() else {
                return Ok(());
            };
            self.line += 1;
            self.records.header(header)?;
            lines.remove(0);
        }
        if line_buffered {
            for line in lines {
                self.lines(&[line])?;
            }
        } else if !lines.is_empty() {
            self.lines(&lines)?;
        }
        Ok(())
    }

    /// Decodes, decides and writes `lines`; a line that cannot be read is
    /// skipped and told (the others of its batch are decided).
    fn lines(&mut self, lines: &[&[u8]]) -> Result<(), String> {
        if lines.len() > 1 && lines.iter().any(|l| self.records.missing(l).is_some()) {
            for line in lines {
                self.lines(&[line])?;
            }
            return Ok(());
        }
        let first = self.line + 1;
        self.line += lines.len() as u64;
        if let [line] = lines
            && let Some(column) = self.records.missing(line)
        {
            let reason = format!(
                "no `{column}`, a column the decision reads (write `\"{column}\": null` for a missing value)"
            );
            self.incomplete += 1;
            self.told_skip(first, &reason);
            return Ok(());
        }
        let joined = lines.concat();
        let batches = match self.records.decode(&joined, lines.len()) {
            Ok(b) => vec![(b, first)],
            // Find the bad lines: each line on its own.
            Err(_) if lines.len() > 1 => {
                let mut good = Vec::new();
                for (i, line) in lines.iter().enumerate() {
                    match self.records.decode(line, 1) {
                        Ok(b) => good.push((b, first + i as u64)),
                        Err(e) => self.skip(first + i as u64, &format!("cannot be read: {e}")),
                    }
                }
                good
            }
            Err(e) => {
                self.skip(first, &format!("cannot be read: {e}"));
                Vec::new()
            }
        };
        for (batch, at) in batches
            .iter()
            .filter_map(|(b, l)| b.as_ref().map(|b| (b, *l)))
        {
            let decided = self.decider.decide(batch).map_err(|e| e.to_string())?;
            for s in &decided.skipped {
                // A batch's rows are its lines, in order.
                self.told_skip(at + s.row as u64, &s.reason);
            }
            self.out.write(&decided.batch)?;
        }
        self.out
            .flush()
            .map_err(|e| format!("writing the records: {e}"))
    }

    fn skip(&mut self, line: u64, reason: &str) {
        self.unreadable += 1;
        self.told_skip(line, reason);
    }

    fn told_skip(&mut self, line: u64, reason: &str) {
        self.told += 1;
        if self.told <= TOLD {
            eprintln!("strat stream: line {line} skipped: {reason}");
        } else if self.told == TOLD + 1 {
            eprintln!("strat stream: more skipped lines are only counted");
        }
    }

    fn summary(&self) -> String {
        let c = self.decider.counts();
        let mut s = format!(
            "strat stream: {} records read, {} eligible, {} selected",
            c.records, c.eligible, c.selected
        );
        let extra = [
            (c.null_units, "with a NULL unit (no unit)"),
            (
                c.filtered_units,
                "of units `keep`/`exclude units in` leave out",
            ),
            (
                c.unknown_stratum,
                "in strata the thresholds do not know (not selected)",
            ),
            (
                c.changed_stratum,
                "skipped: their unit was in another stratum before",
            ),
            (self.unreadable, "skipped: unreadable"),
            (
                self.incomplete,
                "skipped: a column the decision reads is missing",
            ),
        ];
        for (n, what) in extra {
            if n > 0 {
                s.push_str(&format!("; {n} {what}"));
            }
        }
        s
    }
}
