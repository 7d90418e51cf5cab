//! Reading table schemas (and only schemas) through DataFusion.

use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use strat_check::{Column, Type};

/// The file formats a table can be read from, by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Csv,
    Json,
    Arrow,
}

impl Format {
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "parquet" => Format::Parquet,
            "csv" => Format::Csv,
            "json" | "ndjson" | "jsonl" => Format::Json,
            "arrow" | "ipc" | "feather" => Format::Arrow,
            _ => return None,
        })
    }

    fn extension(self, path: &Path) -> String {
        path.extension()
            .and_then(|e| e.to_str())
            .map(|e| format!(".{e}"))
            .unwrap_or_else(|| match self {
                Format::Parquet => ".parquet".into(),
                Format::Csv => ".csv".into(),
                Format::Json => ".json".into(),
                Format::Arrow => ".arrow".into(),
            })
    }
}

/// Why a table could not be bound; the message names the file and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError {
    pub message: String,
    pub help: String,
}

/// Finds the format of a file, or of the files in a folder (which must agree).
pub fn detect_format(path: &Path) -> Result<(Format, Option<PathBuf>), TableError> {
    let meta = std::fs::metadata(path).map_err(|e| TableError {
        message: match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("cannot read `{}`: no such file or folder", path.display())
            }
            std::io::ErrorKind::PermissionDenied => {
                format!("cannot read `{}`: permission denied", path.display())
            }
            _ => format!(
                "cannot read `{}`: {}",
                path.display(),
                crate::errtext::io(&e)
            ),
        },
        help:
            "check the path (a relative path in a `table` declaration is relative to the rule file)"
                .into(),
    })?;
    if meta.is_file() {
        let f = Format::from_path(path).ok_or_else(|| unknown_format(path))?;
        return Ok((f, None));
    }
    let mut found: Option<(Format, PathBuf)> = None;
    let entries = std::fs::read_dir(path).map_err(|e| TableError {
        message: match e.kind() {
            std::io::ErrorKind::PermissionDenied => format!("cannot list the folder `{}`: permission denied", path.display()),
            _ => format!("cannot list the folder `{}`: {}", path.display(), crate::errtext::io(&e)),
        },
        help: "check the folder's permissions: the user running strat must be able to list and read it".into(),
    })?;
    let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    for p in names {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.') || n.starts_with('_'));
        if hidden || !p.is_file() {
            continue;
        }
        let Some(f) = Format::from_path(&p) else {
            continue;
        };
        match &found {
            None => found = Some((f, p)),
            Some((g, first)) if *g != f => {
                return Err(TableError {
                    message: format!(
                        "the folder `{}` mixes formats: `{}` and `{}`",
                        path.display(),
                        first.display(),
                        p.display()
                    ),
                    help: "a table folder must hold files of one format".into(),
                });
            }
            Some(_) => {}
        }
    }
    found.map(|(f, p)| (f, Some(p))).ok_or_else(|| TableError {
        message: format!(
            "the folder `{}` holds no .parquet, .csv, .json/.ndjson/.jsonl or .arrow files",
            path.display()
        ),
        help: "point the table at a data file or a folder of data files".into(),
    })
}

fn unknown_format(path: &Path) -> TableError {
    TableError {
        message: format!(
            "cannot tell the format of `{}` from its extension",
            path.display()
        ),
        help: "name the file .parquet, .csv, .json/.ndjson/.jsonl or .arrow".into(),
    }
}

/// Registers `path` as table `name` on `ctx` (reading only what the format needs
/// to know its schema) and returns the schema.
pub async fn register(ctx: &SessionContext, name: &str, path: &Path) -> Result<Schema, TableError> {
    let (format, sample) = detect_format(path)?;
    if let Some(meta) = std::fs::metadata(sample.as_deref().unwrap_or(path))
        .ok()
        .filter(|m| m.len() == 0)
    {
        let _ = meta;
        return Err(TableError {
            message: format!(
                "`{}` is empty (0 bytes)",
                sample.as_deref().unwrap_or(path).display()
            ),
            help: "write the table again; an empty file has no schema".into(),
        });
    }
    // An unreadable file is named as such (not as a schema the reader could not parse).
    let files = match &sample {
        Some(_) => data_files(path, format),
        None => vec![path.to_path_buf()],
    };
    for f in &files {
        if let Err(e) = std::fs::File::open(f) {
            return Err(TableError {
                message: match e.kind() {
                    std::io::ErrorKind::PermissionDenied => {
                        format!("cannot read `{}`: permission denied", f.display())
                    }
                    _ => format!("cannot read `{}`: {}", f.display(), crate::errtext::io(&e)),
                },
                help:
                    "check the file's permissions: the user running strat must be able to read it"
                        .into(),
            });
        }
    }
    if sample.is_some() {
        same_columns_in_every_file(path, format).await?;
    }
    let location = path.to_string_lossy().to_string();
    let ext = format.extension(sample.as_deref().unwrap_or(path));
    let quoted = crate::compile::quoted(name);
    let result = match format {
        Format::Parquet => {
            ctx.register_parquet(
                &quoted,
                &location,
                ParquetReadOptions::default().file_extension(&ext),
            )
            .await
        }
        Format::Csv => {
            ctx.register_csv(
                &quoted,
                &location,
                CsvReadOptions::new().has_header(true).file_extension(&ext),
            )
            .await
        }
        Format::Json => {
            ctx.register_json(
                &quoted,
                &location,
                JsonReadOptions::default().file_extension(&ext),
            )
            .await
        }
        Format::Arrow => {
            let opts = datafusion::datasource::file_format::options::ArrowReadOptions {
                file_extension: &ext,
                ..Default::default()
            };
            ctx.register_arrow(&quoted, &location, opts).await
        }
    };
    result.map_err(|e| TableError {
        message: format!(
            "cannot read the schema of `{}`: {}",
            path.display(),
            first_line(&e.to_string())
        ),
        help: match format {
            Format::Parquet => {
                "is it a complete Parquet file? Write it again if it was cut short".into()
            }
            Format::Csv => {
                "a CSV table needs a header row and the same number of fields on every line".into()
            }
            Format::Json => "a JSON table needs one JSON object per line".into(),
            Format::Arrow => "is it an Arrow IPC file?".into(),
        },
    })?;
    let table = ctx.table(&quoted).await.map_err(|e| TableError {
        message: format!(
            "cannot open `{}`: {}",
            path.display(),
            first_line(&e.to_string())
        ),
        help: "check the file".into(),
    })?;
    Ok(table.schema().as_arrow().clone())
}

/// The data files of a table folder, in name order (hidden and `_` files skipped).
fn data_files(dir: &Path, format: Format) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.') || n.starts_with('_'));
        !hidden && p.is_file() && Format::from_path(p) == Some(format)
    });
    files.sort();
    files
}

/// The files of one table must agree on their columns; otherwise the error
/// names two files that differ (reading only schemas).
async fn same_columns_in_every_file(dir: &Path, format: Format) -> Result<(), TableError> {
    let files = data_files(dir, format);
    let ctx = SessionContext::new();
    let mut first: Option<(PathBuf, Vec<String>)> = None;
    for file in files.iter().take(10_000) {
        let location = file.to_string_lossy().to_string();
        let ext = format.extension(file);
        let df = match format {
            Format::Parquet => {
                ctx.read_parquet(
                    &location,
                    ParquetReadOptions::default().file_extension(&ext),
                )
                .await
            }
            Format::Csv => {
                ctx.read_csv(
                    &location,
                    CsvReadOptions::new().has_header(true).file_extension(&ext),
                )
                .await
            }
            Format::Json => {
                ctx.read_json(&location, JsonReadOptions::default().file_extension(&ext))
                    .await
            }
            Format::Arrow => return Ok(()),
        };
        let df = df.map_err(|e| TableError {
            message: format!(
                "cannot read the schema of `{}`: {}",
                file.display(),
                first_line(&e.to_string())
            ),
            help: "check or remove that file".into(),
        })?;
        let names: Vec<String> = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        match &first {
            None => first = Some((file.clone(), names)),
            Some((f0, n0)) if *n0 != names => {
                return Err(TableError {
                    message: format!(
                        "the files of `{}` have different columns: `{}` has {} and `{}` has {}",
                        dir.display(),
                        f0.display(),
                        n0.join(", "),
                        file.display(),
                        names.join(", ")
                    ),
                    help: "the files of one table must have the same columns in the same order"
                        .into(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn first_line(s: &str) -> String {
    crate::errtext::clean(s.lines().next().unwrap_or(""))
        .chars()
        .take(300)
        .collect()
}

/// The checker's view of an Arrow type.
pub fn checker_type(t: &DataType) -> Type {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Type::Int,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Type::Float,
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Type::Decimal,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::String,
        DataType::Boolean => Type::Bool,
        DataType::Date32 | DataType::Date64 => Type::Date,
        DataType::Timestamp(..) => Type::Timestamp,
        DataType::Null => Type::Null,
        DataType::Dictionary(_, v) => checker_type(v),
        other => Type::Other(other.to_string()),
    }
}

pub fn checker_columns(schema: &Schema) -> Vec<Column> {
    schema
        .fields()
        .iter()
        .map(|f| Column::new(f.name().clone(), checker_type(f.data_type())))
        .collect()
}
