//! K2's compiled ingest path: the JSON messages of one source partition to an Arrow batch of the valid rows.
//!
//! `validate(values, kind, min_timestamp_us, max_timestamp_us)` returns `(batch, not_accepted)`: a
//! `pyarrow.RecordBatch` of the accepted messages in input order (handed over through the Arrow C data interface,
//! no copy) and the indices of the others, which the Python exact path (`k2.ingest.validate`) decodes for its
//! verdict and reason. A panic becomes a Python exception (the caller then takes the exact path for the batch).

mod columns;
mod decimal;
mod message;

use std::panic::{catch_unwind, AssertUnwindSafe};

use arrow_array::RecordBatch;
use arrow_pyarrow::ToPyArrow;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use columns::{acceptable, Columns, Rules};
use message::Kind;

/// Accepted rows of `values` and the indices of the messages not accepted here.
fn validate_all(
    values: &[&[u8]],
    kind: Kind,
    rules: &Rules,
) -> Result<(RecordBatch, Vec<u32>), String> {
    let mut columns = Columns::new(kind, values.len());
    let mut not_accepted = Vec::new();
    for (i, bytes) in values.iter().enumerate() {
        match message::decode(bytes, kind) {
            Ok(m) if acceptable(&m, kind, rules) => columns.push(&m),
            _ => not_accepted.push(i as u32),
        }
    }
    let batch = columns.finish().map_err(|e| e.to_string())?;
    Ok((batch, not_accepted))
}

#[pyfunction]
fn validate<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyList>,
    kind: &str,
    min_timestamp_us: i64,
    max_timestamp_us: i64,
) -> PyResult<(Bound<'py, PyAny>, Vec<u32>)> {
    let kind = match kind {
        "trade" => Kind::Trade,
        "quote" => Kind::Quote,
        other => {
            return Err(PyValueError::new_err(format!(
                "no schema for message kind {other:?}"
            )))
        }
    };
    let rules = Rules {
        min_timestamp_us,
        max_timestamp_us,
    };
    let items: Vec<Bound<'py, PyBytes>> = values
        .iter()
        .map(|v| v.cast_into::<PyBytes>().map_err(PyErr::from))
        .collect::<PyResult<_>>()?;
    let slices: Vec<&[u8]> = items.iter().map(|b| b.as_bytes()).collect();
    let outcome =
        py.detach(|| catch_unwind(AssertUnwindSafe(|| validate_all(&slices, kind, &rules))));
    match outcome {
        Ok(Ok((batch, not_accepted))) => Ok((batch.to_pyarrow(py)?, not_accepted)),
        Ok(Err(error)) => Err(PyRuntimeError::new_err(format!(
            "native validation failed: {error}"
        ))),
        Err(_) => Err(PyRuntimeError::new_err("native validation panicked")),
    }
}

#[pymodule]
fn k2_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    Ok(())
}
