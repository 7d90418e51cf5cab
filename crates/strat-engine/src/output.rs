//! Writing a result atomically: a temporary file in the destination folder,
//! flushed and synced, then renamed over the destination. A failed or killed
//! run leaves either the old file untouched or the complete new one.

use std::fs::File;
use std::io::{BufWriter, Write};

use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Parquet,
    Csv,
    NdJson,
}

impl OutputFormat {
    /// The format for a path, by extension.
    pub fn for_path(path: &Path) -> Result<OutputFormat, OutputError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("parquet") => Ok(OutputFormat::Parquet),
            Some("csv") => Ok(OutputFormat::Csv),
            Some("ndjson" | "jsonl" | "json") => Ok(OutputFormat::NdJson),
            _ => Err(OutputError {
                message: format!(
                    "cannot tell the output format of `{}` from its extension",
                    path.display()
                ),
                help: "name the output .parquet, .csv, .ndjson or .jsonl".into(),
            }),
        }
    }
}

/// Temporary files being written now, and the destinations this process has
/// already renamed into place. An interrupted process removes the temporary
/// files ([`remove_pending`]) so that not even a hidden partial file stays
/// behind, and can say which destinations were written.
struct Pending {
    temporaries: Vec<PathBuf>,
    committed: Vec<PathBuf>,
}

static PENDING: std::sync::Mutex<Pending> = std::sync::Mutex::new(Pending {
    temporaries: Vec::new(),
    committed: Vec::new(),
});

fn pending() -> std::sync::MutexGuard<'static, Pending> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes every temporary file still being written (call from a signal handler
/// before exiting) and returns the destinations this process had already
/// renamed into place (empty: nothing was written). The destinations are
/// untouched: they are only ever renamed onto.
pub fn remove_pending() -> Vec<PathBuf> {
    let mut pending = pending();
    for p in pending.temporaries.drain(..) {
        let _ = std::fs::remove_file(p);
    }
    let committed = pending.committed.clone();
    // Keep the lock: the caller exits, and no new temporary file may start or be
    // renamed meanwhile.
    std::mem::forget(pending);
    committed
}

fn untrack(tmp: &Path) {
    pending().temporaries.retain(|p| p != tmp);
}

/// Why an output could not be written; nothing was left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputError {
    pub message: String,
    pub help: String,
}

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for OutputError {}

/// Refuses an output path that is one of the inputs (or inside an input folder).
pub fn check_not_an_input(output: &Path, inputs: &[PathBuf]) -> Result<(), OutputError> {
    let out = absolute(output);
    for input in inputs {
        let inp = absolute(input);
        if out == inp || out.starts_with(&inp) && inp.is_dir() {
            return Err(OutputError {
                message: format!(
                    "refusing to write `{}`: it is an input of this run",
                    output.display()
                ),
                help: "write the sample to another path".into(),
            });
        }
    }
    Ok(())
}

/// Refuses a report path that is the sample's own path.
pub fn check_distinct(sample: &Path, report: &Path) -> Result<(), OutputError> {
    if absolute(sample) == absolute(report) {
        return Err(OutputError {
            message: format!(
                "`{}` cannot be both the sample (-o) and the report (--report)",
                report.display()
            ),
            help: "give the report another name, e.g. report.json".into(),
        });
    }
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    // Not there yet: canonicalise the folder and keep the name.
    let parent = p
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (parent.canonicalize(), p.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => p.to_path_buf(),
    }
}

/// Writes `batches` to `path` in the format its extension names, atomically
/// (Parquet encoded on `threads` threads).
pub fn write_atomic(
    path: &Path,
    schema: SchemaRef,
    batches: &[RecordBatch],
    threads: usize,
) -> Result<(), OutputError> {
    stage_batches(path, schema, batches, threads)?.commit()
}

/// Writes `batches` completely (flushed and fsynced) to a temporary file next
/// to `path`, in the format its extension names; [`Staged::commit`] puts it in
/// place. Parquet's columns are encoded on `threads` threads.
pub fn stage_batches(
    path: &Path,
    schema: SchemaRef,
    batches: &[RecordBatch],
    threads: usize,
) -> Result<Staged, OutputError> {
    let mut writer = SampleWriter::create(path, schema, threads)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()
}

/// A sample file written batch by batch, in the format its extension names,
/// to a temporary file next to its destination: [`SampleWriter::finish`]
/// flushes and fsyncs it and gives the [`Staged`] file; dropped unfinished,
/// the temporary file is removed. Memory: one Parquet row group at most.
pub struct SampleWriter {
    staged: Staged,
    schema: SchemaRef,
    threads: usize,
    encoder: Encoder,
}

enum Encoder {
    Parquet(ParquetEncoder),
    Csv(Box<datafusion::arrow::csv::Writer<BufWriter<File>>>),
    NdJson(
        datafusion::arrow::json::Writer<
            BufWriter<File>,
            datafusion::arrow::json::writer::LineDelimited,
        >,
    ),
}

impl SampleWriter {
    /// Creates the temporary file for `path` and writes what comes before
    /// the rows (a CSV header).
    pub fn create(path: &Path, schema: SchemaRef, threads: usize) -> Result<Self, OutputError> {
        let format = OutputFormat::for_path(path)?;
        let schema = plain_schema(&schema, format);
        let (staged, file) = Staged::create(path)?;
        let failed = |staged: &Staged, e: &dyn std::fmt::Display| staged.error(&e.to_string());
        let encoder = match format {
            OutputFormat::Parquet => match ParquetEncoder::new(file, schema.clone()) {
                Ok(e) => Encoder::Parquet(e),
                Err(e) => return Err(failed(&staged, &e)),
            },
            OutputFormat::Csv => {
                let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(file);
                // An empty batch first: the header is written even for an empty sample.
                if let Err(e) = writer.write(&RecordBatch::new_empty(schema.clone())) {
                    return Err(failed(&staged, &e));
                }
                Encoder::Csv(Box::new(writer))
            }
            // Explicit nulls: every line has every column.
            OutputFormat::NdJson => Encoder::NdJson(
                datafusion::arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build(file),
            ),
        };
        Ok(SampleWriter {
            staged,
            schema,
            threads,
            encoder,
        })
    }

    /// Appends `batch`'s rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), OutputError> {
        let batch =
            plain_batch(batch, &self.schema, self.threads).map_err(|e| self.staged.error(&e))?;
        let written = match &mut self.encoder {
            Encoder::Parquet(p) => p.write(batch, self.threads).map_err(|e| e.to_string()),
            Encoder::Csv(w) => w.write(&batch).map_err(|e| e.to_string()),
            Encoder::NdJson(w) => w.write(&batch).map_err(|e| e.to_string()),
        };
        written.map_err(|e| self.staged.error(&crate::errtext::clean(&e)))
    }

    /// Writes what comes after the rows, flushes and fsyncs the file.
    pub fn finish(self) -> Result<Staged, OutputError> {
        let SampleWriter {
            staged,
            threads,
            encoder,
            ..
        } = self;
        let file = match encoder {
            Encoder::Parquet(p) => p.finish(threads).map_err(|e| e.to_string()),
            Encoder::Csv(w) => Ok((*w).into_inner()),
            Encoder::NdJson(mut w) => w
                .finish()
                .map(|()| w.into_inner())
                .map_err(|e| e.to_string()),
        };
        let file = file.map_err(|e| staged.error(&crate::errtext::clean(&e)))?;
        staged.sync(file)
    }
}

/// Rows written as lines to any writer (standard output for `strat stream`),
/// CSV or NDJSON with the same options as a sample file: a CSV header once,
/// NDJSON with explicit nulls.
pub struct LineWriter<W: Write> {
    out: W,
    format: OutputFormat,
    header: bool,
}

impl<W: Write> LineWriter<W> {
    /// A writer of `format` (CSV or NDJSON; Parquet is not a line format).
    pub fn new(out: W, format: OutputFormat) -> Self {
        LineWriter {
            out,
            format,
            header: true,
        }
    }

    /// Appends `batch`'s rows as lines (a CSV header before the first).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        let schema = plain_schema(&batch.schema(), self.format);
        let batch = plain_batch(batch, &schema, 1)?;
        match self.format {
            OutputFormat::Csv => {
                let mut w = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(self.header)
                    .build(&mut self.out);
                self.header = false;
                w.write(&batch).map_err(|e| e.to_string())
            }
            OutputFormat::NdJson | OutputFormat::Parquet => {
                let mut w = datafusion::arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, datafusion::arrow::json::writer::LineDelimited>(&mut self.out);
                w.write(&batch).map_err(|e| e.to_string())?;
                w.finish().map_err(|e| e.to_string())
            }
        }
    }

    /// Flushes what was written to the writer underneath.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// String and binary views (Parquet input) become plain strings and binaries,
/// so a sample's bytes do not depend on the input's format. Parquet has no
/// timestamp in seconds (it would be written as a plain integer): those become
/// milliseconds, as other Arrow writers make them, so the type survives.
fn plain_schema(schema: &SchemaRef, format: OutputFormat) -> SchemaRef {
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let plain = |t: &DataType| match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Timestamp(TimeUnit::Second, zone) if format == OutputFormat::Parquet => {
            DataType::Timestamp(TimeUnit::Millisecond, zone.clone())
        }
        other => other.clone(),
    };
    if schema
        .fields()
        .iter()
        .all(|f| plain(f.data_type()) == *f.data_type())
    {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| Field::new(f.name(), plain(f.data_type()), f.is_nullable()))
        .collect();
    std::sync::Arc::new(Schema::new(fields))
}

/// `batch` with the types of `target` (see [`plain_schema`]), the columns
/// that change type cast on `threads` threads.
fn plain_batch(
    batch: &RecordBatch,
    target: &SchemaRef,
    threads: usize,
) -> Result<RecordBatch, String> {
    if batch.schema() == *target {
        return Ok(batch.clone());
    }
    let cast = |i: usize| {
        let to = target.field(i).data_type();
        let c = batch.column(i);
        if c.data_type() == to {
            Ok(c.clone())
        } else {
            datafusion::arrow::compute::cast(c, to)
        }
    };
    let columns =
        crate::parallel::map_on_threads((0..batch.num_columns()).collect(), threads, cast)
            .ok_or("a cast failed")?
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
    RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| e.to_string())
}

/// Runs `fill` on a temporary file next to `path`, then renames it over `path`.
pub fn write_file_atomic(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> Result<(), String>,
) -> Result<(), OutputError> {
    stage_file(path, fill)?.commit()
}

/// A file written completely — flushed and fsynced — under a temporary name in
/// its destination's folder, not yet in place. [`Staged::commit`] renames it
/// over the destination; dropped uncommitted, it is removed. Staging every file
/// of a run before committing any is how a sample and its report are written
/// as a pair: all the writing (where a full disk or a limit can fail) is done
/// before the first rename.
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
    tmp: PathBuf,
    dir: PathBuf,
    committed: bool,
}

impl Staged {
    /// The destination.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// md5 (32 lowercase hex digits) and size in bytes of the staged file, read
    /// back from the disk.
    pub fn md5_and_size(&self) -> Result<(String, u64), OutputError> {
        use md5::{Digest, Md5};
        use std::io::Read;
        let fail = |e: std::io::Error| OutputError {
            message: format!(
                "cannot read back `{}`: {}",
                self.tmp.display(),
                crate::errtext::io(&e)
            ),
            help: "nothing was written".into(),
        };
        let mut f = File::open(&self.tmp).map_err(fail)?;
        let mut h = Md5::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(fail)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            h.update(&buf[..n]);
        }
        Ok((
            h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
            size,
        ))
    }

    /// Renames the staged file over the destination and syncs the folder.
    pub fn commit(mut self) -> Result<(), OutputError> {
        {
            // Under the lock: an interrupt sees the file either pending or committed.
            let mut pending = pending();
            if let Err(e) = std::fs::rename(&self.tmp, &self.path) {
                drop(pending);
                return Err(OutputError {
                    message: format!("cannot write `{}`: {}", self.path.display(), crate::errtext::io(&e)),
                    help: "check that the folder exists, is writable and has space; the file was not replaced".into(),
                });
            }
            pending.temporaries.retain(|p| p != &self.tmp);
            pending.committed.push(self.path.clone());
            self.committed = true;
        }
        // Make the rename itself durable where the platform allows.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
            untrack(&self.tmp);
        }
    }
}

/// Runs `fill` on a temporary file next to `path`, flushes and fsyncs it.
pub fn stage_file(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> Result<(), String>,
) -> Result<Staged, OutputError> {
    let (staged, mut w) = Staged::create(path)?;
    if let Err(e) = fill(&mut w) {
        return Err(staged.error(&e));
    }
    staged.sync(w)
}

impl Staged {
    /// Creates the temporary file next to `path` (registered, so that an
    /// interrupt removes it), with a writer to fill it.
    fn create(path: &Path) -> Result<(Staged, BufWriter<File>), OutputError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if path.is_dir() {
            return Err(OutputError {
                message: format!("cannot write `{}`: it is a folder", path.display()),
                help: "name a file, e.g. sample.parquet".into(),
            });
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.strat-tmp-{}", std::process::id()));
        remove_stale_temporaries(dir, &name);
        // Created and registered under the lock, so an interrupt either sees the
        // file registered (and removes it) or runs before it exists.
        let created = {
            let mut pending = pending();
            let f = File::create(&tmp);
            if f.is_ok() {
                pending.temporaries.push(tmp.clone());
            }
            f
        };
        let staged = Staged {
            path: path.to_path_buf(),
            tmp,
            dir: dir.to_path_buf(),
            committed: false,
        };
        match created {
            Ok(file) => Ok((staged, BufWriter::new(file))),
            Err(e) => Err(staged.error(&crate::errtext::io(&e))),
        }
    }

    /// The error of a failed write (the temporary file goes when `self` is dropped).
    fn error(&self, what: &str) -> OutputError {
        OutputError {
            message: format!("cannot write `{}`: {what}", self.path.display()),
            help: "check that the folder exists, is writable and has space; nothing was written"
                .into(),
        }
    }

    /// Flushes and fsyncs the filled temporary file.
    fn sync(self, w: BufWriter<File>) -> Result<Staged, OutputError> {
        let file = match w.into_inner() {
            Ok(f) => f,
            Err(e) => return Err(self.error(&crate::errtext::io(e.error()))),
        };
        if let Err(e) = file.sync_all() {
            return Err(self.error(&crate::errtext::io(&e)));
        }
        Ok(self)
    }
}

/// Temporary files of earlier runs that were killed outright (SIGKILL, power
/// loss) are removed once their process is gone.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = format!(".{name}.strat-tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Parquet as `ArrowWriter` writes it (the same row groups, encodings and
/// bytes), with the columns of each row group encoded on `threads` threads.
/// Rows wait in `pending` until they fill a row group.
struct ParquetEncoder {
    file: datafusion::parquet::file::writer::SerializedFileWriter<BufWriter<File>>,
    factory: datafusion::parquet::arrow::arrow_writer::ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    group: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    index: usize,
}

type ParquetResult<T> = Result<T, datafusion::parquet::errors::ParquetError>;

impl ParquetEncoder {
    fn new(w: BufWriter<File>, schema: SchemaRef) -> ParquetResult<Self> {
        use datafusion::parquet::arrow::ArrowWriter;
        let (file, factory) =
            ArrowWriter::try_new(w, schema.clone(), None)?.into_serialized_writer()?;
        let group = file
            .properties()
            .max_row_group_row_count()
            .unwrap_or(usize::MAX)
            .max(1);
        Ok(ParquetEncoder {
            file,
            factory,
            schema,
            group,
            pending: Vec::new(),
            pending_rows: 0,
            index: 0,
        })
    }

    fn write(&mut self, batch: RecordBatch, threads: usize) -> ParquetResult<()> {
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        if self.pending_rows >= self.group {
            let rows = datafusion::arrow::compute::concat_batches(&self.schema, &self.pending)?;
            self.pending.clear();
            let mut offset = 0;
            while rows.num_rows() - offset >= self.group {
                self.row_group(&rows.slice(offset, self.group), threads)?;
                offset += self.group;
            }
            self.pending_rows = rows.num_rows() - offset;
            if self.pending_rows > 0 {
                self.pending.push(rows.slice(offset, self.pending_rows));
            }
        }
        Ok(())
    }

    fn finish(mut self, threads: usize) -> ParquetResult<BufWriter<File>> {
        if self.pending_rows > 0 {
            let rows = datafusion::arrow::compute::concat_batches(&self.schema, &self.pending)?;
            self.row_group(&rows, threads)?;
        }
        self.file.into_inner()
    }

    /// Encodes `rows` as the next row group, a column per thread at a time.
    fn row_group(&mut self, rows: &RecordBatch, threads: usize) -> ParquetResult<()> {
        use datafusion::parquet::arrow::arrow_writer::{
            ArrowColumnWriter, ArrowLeafColumn, compute_leaves,
        };
        use datafusion::parquet::errors::ParquetError;
        let mut leaves: Vec<ArrowLeafColumn> = Vec::new();
        for (field, column) in self.schema.fields().iter().zip(rows.columns()) {
            leaves.extend(compute_leaves(field, column)?);
        }
        let writers = self.factory.create_column_writers(self.index)?;
        let encode = |(mut writer, leaf): (ArrowColumnWriter, ArrowLeafColumn)| {
            writer.write(&leaf)?;
            writer.close()
        };
        let chunks = crate::parallel::map_on_threads(
            writers.into_iter().zip(leaves).collect(),
            threads,
            encode,
        )
        .ok_or_else(|| ParquetError::General("a column encoder failed".into()))?;
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk?.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.index += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch() -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name, with comma", DataType::Utf8, true),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a\"b"), None])),
            ],
        )
        .unwrap();
        (schema, b)
    }

    fn dir(name: &str) -> TestDir {
        TestDir::new(
            std::env::temp_dir().join(format!("strat-output-{}-{name}", std::process::id())),
        )
    }

    /// A fresh folder for one test, removed when the test ends well (a failed
    /// test leaves it to look at).
    struct TestDir(std::path::PathBuf);

    impl TestDir {
        fn new(path: std::path::PathBuf) -> TestDir {
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("test folder");
            TestDir(path)
        }
    }

    impl std::ops::Deref for TestDir {
        type Target = std::path::Path;
        fn deref(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl AsRef<std::path::Path> for TestDir {
        fn as_ref(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    /// Parquet encoded on several threads is byte for byte what ArrowWriter
    /// writes from the rows in one batch: over a row group boundary, with
    /// NULLs, whether the rows come in one batch or several.
    #[test]
    fn parquet_on_threads_is_arrow_writers_bytes() {
        use datafusion::parquet::arrow::ArrowWriter;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let rows = 1_100_000i64;
        let batch = |from: i64, to: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(from..to)),
                    Arc::new(StringArray::from_iter(
                        (from..to).map(|i| (i % 7 != 0).then(|| format!("n{}", i % 1000))),
                    )),
                ],
            )
            .unwrap()
        };
        let mut expected = Vec::new();
        let mut w = ArrowWriter::try_new(&mut expected, schema.clone(), None).unwrap();
        w.write(&batch(0, rows)).unwrap();
        w.close().unwrap();
        let d = dir("parallel-parquet");
        let one = vec![batch(0, rows)];
        let two = vec![batch(0, 400_000), batch(400_000, rows)];
        for (batches, threads) in [(&one, 1), (&one, 2), (&two, 3)] {
            let path = d.join(format!("t{threads}.parquet"));
            write_atomic(&path, schema.clone(), batches, threads).unwrap();
            assert!(
                std::fs::read(&path).unwrap() == expected,
                "{} batch(es), {threads} threads",
                batches.len()
            );
        }
    }

    #[test]
    fn writes_each_format_and_leaves_no_temp_file() {
        let d = dir("formats");
        let (schema, b) = batch();
        for name in ["s.csv", "s.ndjson", "s.jsonl", "s.parquet"] {
            write_atomic(&d.join(name), schema.clone(), std::slice::from_ref(&b), 2).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(d.join("s.csv")).unwrap(),
            "id,\"name, with comma\"\n1,\"a\"\"b\"\n2,\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("s.ndjson")).unwrap(),
            "{\"id\":1,\"name, with comma\":\"a\\\"b\"}\n{\"id\":2,\"name, with comma\":null}\n"
        );
        assert!(
            std::fs::read(d.join("s.parquet"))
                .unwrap()
                .starts_with(b"PAR1")
        );
        let names: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("strat-tmp")), "{names:?}");
    }

    #[test]
    fn empty_csv_still_has_a_header() {
        let d = dir("empty");
        let (schema, _) = batch();
        write_atomic(&d.join("e.csv"), schema, &[], 2).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("e.csv")).unwrap(),
            "id,\"name, with comma\"\n"
        );
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let d = dir("failed");
        let target = d.join("out.csv");
        std::fs::write(&target, "old\n").unwrap();
        let e = write_file_atomic(&target, |w| {
            w.write_all(b"half of the new").unwrap();
            Err("disk full".to_string())
        })
        .unwrap_err();
        assert!(e.message.contains("disk full"), "{e:?}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old\n");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
    }

    #[test]
    fn staged_files_are_complete_before_any_rename() {
        let d = dir("staged");
        std::fs::write(d.join("s.csv"), "old sample\n").unwrap();
        std::fs::write(d.join("r.json"), "old report\n").unwrap();
        let (schema, b) = batch();
        let sample = stage_batches(
            &d.join("s.csv"),
            schema.clone(),
            std::slice::from_ref(&b),
            2,
        )
        .unwrap();
        let (md5, size) = sample.md5_and_size().unwrap();
        let want = "id,\"name, with comma\"\n1,\"a\"\"b\"\n2,\n";
        assert_eq!(
            (md5.as_str(), size),
            (
                crate::report::md5_hex(want.as_bytes()).as_str(),
                want.len() as u64
            )
        );
        // Staged, nothing is in place yet.
        assert_eq!(
            std::fs::read_to_string(d.join("s.csv")).unwrap(),
            "old sample\n"
        );
        // The report fails: dropping the staged sample removes it, both old files stay.
        let e = stage_file(&d.join("r.json"), |_| Err("disk full".into())).unwrap_err();
        assert!(e.message.contains("disk full"));
        drop(sample);
        let mut names: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["r.json", "s.csv"]);
        assert_eq!(
            std::fs::read_to_string(d.join("r.json")).unwrap(),
            "old report\n"
        );
        // Both staged, then committed in order.
        let sample = stage_batches(&d.join("s.csv"), schema, &[b], 2).unwrap();
        let report = stage_file(&d.join("r.json"), |w| {
            w.write_all(b"{}\n").map_err(|e| e.to_string())
        })
        .unwrap();
        sample.commit().unwrap();
        report.commit().unwrap();
        assert_eq!(std::fs::read_to_string(d.join("s.csv")).unwrap(), want);
        assert_eq!(std::fs::read_to_string(d.join("r.json")).unwrap(), "{}\n");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
        assert!(check_distinct(&d.join("s.json"), &d.join("./s.json")).is_err());
        assert!(check_distinct(&d.join("s.json"), &d.join("r.json")).is_ok());
    }

    #[test]
    fn refuses_inputs_unknown_extensions_and_missing_folders() {
        let d = dir("refuse");
        let input = d.join("members.csv");
        std::fs::write(&input, "a\n1\n").unwrap();
        assert!(check_not_an_input(&input, std::slice::from_ref(&input)).is_err());
        assert!(
            check_not_an_input(&d.join("./members.csv"), std::slice::from_ref(&input)).is_err()
        );
        assert!(check_not_an_input(&d.join("x/part.csv"), &[d.to_path_buf()]).is_err());
        assert!(check_not_an_input(&d.join("sample.csv"), &[input]).is_ok());
        assert!(OutputFormat::for_path(Path::new("x.xlsx")).is_err());
        let (schema, b) = batch();
        let e = write_atomic(&d.join("no/such/folder/s.csv"), schema, &[b], 2).unwrap_err();
        assert!(e.message.contains("cannot write"), "{e:?}");
    }
}
