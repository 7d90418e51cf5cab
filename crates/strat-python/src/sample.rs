//! `strat.Sample`: the rows a run selected, as Arrow data (any library that
//! reads the Arrow PyCapsule interface takes it without a copy), and the
//! run's report.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StructArray};
use datafusion::arrow::datatypes::{Field, SchemaRef};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use pyo3_arrow::ffi::{ArrayIterator, to_schema_pycapsule, to_stream_pycapsule};

#[pyclass(frozen, module = "strat", name = "Sample")]
pub struct Sample {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    /// The report as JSON text (what `strat run --report r.json` writes).
    report: String,
}

impl Sample {
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>, report: String) -> Self {
        Sample {
            schema,
            batches,
            report,
        }
    }
}

#[pymethods]
impl Sample {
    /// The sample's rows as an Arrow C stream (`pa.table(s)`, `pl.DataFrame(s)`).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyCapsule>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let field = Field::new_struct("", self.schema.fields().clone(), false)
            .with_metadata(self.schema.metadata().clone());
        let arrays = self.batches.clone().into_iter().map(|batch| {
            let array: ArrayRef = Arc::new(StructArray::from(batch));
            Ok(array)
        });
        let reader = Box::new(ArrayIterator::new(arrays, Arc::new(field)));
        Ok(to_stream_pycapsule(py, reader, requested_schema)?)
    }

    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        Ok(to_schema_pycapsule(py, self.schema.as_ref())?)
    }

    /// The run's report (the `--report r.json` content) as a dict.
    #[getter]
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?.call_method1("loads", (&self.report,))
    }

    #[getter]
    fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The output columns' names, in order.
    #[getter]
    fn columns(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// The sample as a pandas DataFrame (needs pyarrow and pandas).
    fn to_pandas<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let pyarrow = import(slf.py(), "pyarrow", "to_pandas needs pyarrow and pandas")?;
        pyarrow
            .call_method1("table", (slf,))?
            .call_method0("to_pandas")
    }

    /// The sample as a Polars DataFrame (needs polars).
    fn to_polars<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let polars = import(slf.py(), "polars", "to_polars needs polars")?;
        polars.call_method1("DataFrame", (slf,))
    }

    fn __len__(&self) -> usize {
        self.num_rows()
    }

    fn __repr__(&self) -> String {
        format!(
            "<strat.Sample: {} rows; columns {}>",
            self.num_rows(),
            self.columns().join(", ")
        )
    }
}

fn import<'py>(py: Python<'py>, module: &str, why: &str) -> PyResult<Bound<'py, PyModule>> {
    py.import(module).map_err(|_| {
        pyo3::exceptions::PyImportError::new_err(format!("{why}: pip install {module}"))
    })
}
