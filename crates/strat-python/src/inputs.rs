//! What a call brings from Python: tables (paths, or Arrow data through the
//! PyCapsule interface) and param values (checked against the type each
//! param declares).

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};
use pyo3_arrow::input::AnyRecordBatch;
use strat_engine::{Options, TableBinding};
use strat_syntax::Diagnostic;
use strat_syntax::ast::{Item, ParamType};

/// Arrow data handed over from Python, read once into memory.
pub struct Frame {
    pub name: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// The tables of one call: paths strat scans itself, and frames.
#[derive(Default)]
pub struct Tables {
    pub paths: Vec<TableBinding>,
    pub frames: Vec<Frame>,
}

impl Tables {
    /// `tables={"name": path or Arrow data}`. A stream is read here, once.
    pub fn from_python(tables: Option<&Bound<'_, PyDict>>) -> PyResult<Tables> {
        let mut out = Tables::default();
        let Some(tables) = tables else {
            return Ok(out);
        };
        for (name, value) in tables.iter() {
            let name: String = name
                .extract()
                .map_err(|_| PyTypeError::new_err("tables: the keys are table names (str)"))?;
            match path_of(&value)? {
                Some(path) => out.paths.push(TableBinding { name, path }),
                None => out.frames.push(frame(name, &value)?),
            }
        }
        Ok(out)
    }

    /// Registers the frames on `ctx` and gives the options that bind them
    /// (in the place of the file's declarations of the same names).
    pub fn bind(self, ctx: &SessionContext, params: Vec<(String, String)>) -> PyResult<Options> {
        let mut registered = Vec::with_capacity(self.frames.len());
        for f in self.frames {
            let table = MemTable::try_new(f.schema, vec![f.batches])
                .map_err(|e| PyValueError::new_err(format!("table `{}`: {e}", f.name)))?;
            ctx.register_table(strat_engine::compile::quoted(&f.name), Arc::new(table))
                .map_err(|e| PyValueError::new_err(format!("table `{}`: {e}", f.name)))?;
            registered.push(f.name);
        }
        Ok(Options {
            tables: self.paths,
            params,
            registered,
        })
    }
}

/// A `str` or `os.PathLike` table value: a file or folder strat scans.
fn path_of(value: &Bound<'_, PyAny>) -> PyResult<Option<PathBuf>> {
    if value.is_instance_of::<PyString>() || value.hasattr("__fspath__")? {
        let os = value.py().import("os")?;
        let path: PathBuf = os.call_method1("fspath", (value,))?.extract()?;
        return Ok(Some(path));
    }
    Ok(None)
}

fn frame(name: String, value: &Bound<'_, PyAny>) -> PyResult<Frame> {
    let value = &without_index(value)?;
    let any: AnyRecordBatch = value.extract().map_err(|_| {
        let kind = value
            .get_type()
            .name()
            .map_or_else(|_| "?".to_string(), |n| n.to_string());
        PyTypeError::new_err(format!(
            "tables[\"{name}\"]: expected a path, or Arrow data (an object with \
             __arrow_c_stream__ or __arrow_c_array__: a pyarrow Table, a Polars or pandas \
             DataFrame, a DuckDB relation…), got a {kind}"
        ))
    })?;
    let reader = any.into_reader()?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PyValueError::new_err(format!("reading table `{name}`: {e}")))?;
    Ok(Frame {
        name,
        schema,
        batches,
    })
}

/// A pandas DataFrame through pyarrow, without its index (pandas before 2.2
/// has no PyCapsule interface, and 2.2's would add the index as a column).
fn without_index<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let class = value.get_type();
    let module: String = class.getattr("__module__")?.extract()?;
    if !(module.starts_with("pandas.") && class.name()? == "DataFrame") {
        return Ok(value.clone());
    }
    let pyarrow = value.py().import("pyarrow").map_err(|_| {
        pyo3::exceptions::PyImportError::new_err(
            "a pandas DataFrame is read through pyarrow: pip install pyarrow",
        )
    })?;
    let kwargs = PyDict::new(value.py());
    kwargs.set_item("preserve_index", false)?;
    pyarrow
        .getattr("Table")?
        .call_method("from_pandas", (value,), Some(&kwargs))
}

/// `(name, text)` of each param, as `--param NAME=TEXT` gives them.
pub type ParamTexts = Vec<(String, String)>;

/// `params={"name": value}` as the text `--param NAME=VALUE` would give,
/// each value checked against its param's declared type (E0124 otherwise).
pub fn params(
    text: &str,
    params: Option<&Bound<'_, PyDict>>,
) -> PyResult<Result<ParamTexts, Vec<Diagnostic>>> {
    let Some(params) = params else {
        return Ok(Ok(Vec::new()));
    };
    let parsed = strat_syntax::parse(text);
    let declared = |name: &str| {
        parsed.file.items.iter().find_map(|item| match item {
            Item::Param(p) if p.name.name == name => Some(p.ty),
            _ => None,
        })
    };
    let (mut out, mut wrong) = (Vec::new(), Vec::new());
    for (name, value) in params.iter() {
        let name: String = name
            .extract()
            .map_err(|_| PyTypeError::new_err("params: the keys are param names (str)"))?;
        match param_text(&value, declared(&name))? {
            Ok(text) => out.push((name, text)),
            Err(expected) => wrong.push(
                Diagnostic::error(
                    "E0124",
                    format!(
                        "params[\"{name}\"]: the param is {expected}, but the value is a Python {}",
                        value.get_type().name()?
                    ),
                )
                .with_help(format!("pass {expected} for `{name}`")),
            ),
        }
    }
    Ok(if wrong.is_empty() {
        Ok(out)
    } else {
        Err(wrong)
    })
}

/// A Python value as param text, or what the param's type asks for. An
/// undeclared param keeps its text: the check names it (E0103).
fn param_text(
    value: &Bound<'_, PyAny>,
    ty: Option<ParamType>,
) -> PyResult<Result<String, &'static str>> {
    let py = value.py();
    let datetime = py.import("datetime")?;
    let is = |module: &Bound<'_, PyModule>, class: &str| -> PyResult<bool> {
        value.is_instance(&module.getattr(class)?)
    };
    let str_of = |v: &Bound<'_, PyAny>| -> PyResult<String> { Ok(v.str()?.to_string()) };
    let is_decimal = is(&py.import("decimal")?, "Decimal")?;
    let is_int = value.is_instance_of::<PyInt>() && !value.is_instance_of::<PyBool>();
    Ok(match ty {
        None => Ok(str_of(value)?),
        Some(ParamType::Bool) if value.is_instance_of::<PyBool>() => {
            Ok(if value.is_truthy()? { "true" } else { "false" }.to_string())
        }
        Some(ParamType::Bool) => Err("a bool"),
        Some(ParamType::Int) if is_int => Ok(str_of(value)?),
        Some(ParamType::Int)
            if is_decimal && value.eq(value.call_method0("to_integral_value")?)? =>
        {
            Ok(str_of(&value.call_method0("__int__")?)?)
        }
        Some(ParamType::Int) => Err("an int"),
        Some(ParamType::Float) if is_int || is_decimal => Ok(str_of(value)?),
        Some(ParamType::Float) if value.is_instance_of::<PyFloat>() => {
            Ok(value.repr()?.to_string())
        }
        Some(ParamType::Float) => Err("a float (or an int or a Decimal)"),
        Some(ParamType::String) if value.is_instance_of::<PyString>() => Ok(value.extract()?),
        Some(ParamType::String) => Err("a str"),
        // A datetime is a date too: a date param takes only a date.
        Some(ParamType::Date) if is(&datetime, "date")? && !is(&datetime, "datetime")? => {
            Ok(str_of(&value.call_method0("isoformat")?)?)
        }
        Some(ParamType::Date) => Err("a datetime.date"),
        Some(ParamType::Timestamp) if is(&datetime, "datetime")? => {
            Ok(str_of(&utc_naive(value)?.call_method0("isoformat")?)?)
        }
        Some(ParamType::Timestamp) => Err("a datetime.datetime"),
    })
}

/// A datetime with a time zone in UTC, without it (strat's timestamps are UTC).
fn utc_naive<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if value.getattr("tzinfo")?.is_none() {
        return Ok(value.clone());
    }
    let utc = value
        .py()
        .import("datetime")?
        .getattr("timezone")?
        .getattr("utc")?;
    let kwargs = PyDict::new(value.py());
    kwargs.set_item("tzinfo", value.py().None())?;
    value
        .call_method1("astimezone", (utc,))?
        .call_method("replace", (), Some(&kwargs))
}
