//! `k2_native.SequenceTracker`: the Python face of `sequence::Tracker`. It takes a batch's four columns as one
//! pyarrow RecordBatch (through the Arrow C data interface, no copy) and gives back the verdicts as bytes (one
//! `SeqClass` number per message) and the events as tuples; `k2.ingest.sequence.CompiledSequenceTracker` turns
//! those into the reference's types.

use std::panic::{catch_unwind, AssertUnwindSafe};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, PrimitiveArray, RecordBatch};
use arrow_pyarrow::FromPyArrow;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::sequence::{Event, Instrument, Message, Tracker};

/// One gap or reset: (index in the batch, "gap" | "reset", exchange, symbol, session, expected, received, missing,
/// timestamp, previous timestamp).
type EventTuple = (
    usize,
    &'static str,
    String,
    String,
    i64,
    i128,
    i64,
    i128,
    i64,
    i64,
);

#[pyclass(module = "k2_native")]
pub struct SequenceTracker {
    tracker: Tracker,
}

fn int64s(column: &ArrayRef, name: &str) -> PyResult<PrimitiveArray<Int64Type>> {
    if let Some(values) = column.as_primitive_opt::<Int64Type>() {
        return Ok(values.clone());
    }
    if let Some(values) = column.as_primitive_opt::<TimestampMicrosecondType>() {
        return Ok(values.reinterpret_cast::<Int64Type>());
    }
    Err(PyValueError::new_err(format!(
        "{name} must be int64 or timestamp[us], not {}",
        column.data_type()
    )))
}

/// The text of a string column, whichever offset width it has.
fn text<'a>(column: &'a ArrayRef, name: &str, i: usize) -> PyResult<&'a str> {
    if column.is_null(i) {
        return Err(PyValueError::new_err(format!("{name} is null at row {i}")));
    }
    if let Some(values) = column.as_string_opt::<i64>() {
        return Ok(values.value(i));
    }
    if let Some(values) = column.as_string_opt::<i32>() {
        return Ok(values.value(i));
    }
    Err(PyValueError::new_err(format!(
        "{name} must be a string column, not {}",
        column.data_type()
    )))
}

fn check_batch(
    tracker: &mut Tracker,
    kind: &str,
    batch: &RecordBatch,
) -> PyResult<(Vec<u8>, Vec<Event>)> {
    if batch.num_columns() != 4 {
        return Err(PyValueError::new_err(
            "expected the columns source_sequence, exchange, symbol, timestamp",
        ));
    }
    let sequences = int64s(batch.column(0), "source_sequence")?;
    let timestamps = int64s(batch.column(3), "timestamp")?;
    let (exchanges, symbols) = (batch.column(1), batch.column(2));
    let n = batch.num_rows();
    let mut messages = Vec::with_capacity(n);
    for i in 0..n {
        let sequence = sequences.is_valid(i).then(|| sequences.value(i));
        let (exchange, symbol) = match sequence {
            Some(_) => (text(exchanges, "exchange", i)?, text(symbols, "symbol", i)?),
            None => ("", ""), // unsequenced: passes through, the instrument is not looked at
        };
        messages.push(Message {
            sequence,
            exchange,
            symbol,
            timestamp: timestamps.value(i),
        });
    }
    let mut classes = Vec::with_capacity(n);
    let mut events = Vec::new();
    catch_unwind(AssertUnwindSafe(|| {
        tracker.check(kind, messages.into_iter(), &mut classes, &mut events)
    }))
    .map_err(|_| PyRuntimeError::new_err("native sequence check panicked"))?;
    Ok((classes, events))
}

#[pymethods]
impl SequenceTracker {
    #[new]
    fn new(reset_floor: i64, session_gap_us: i64, max_gap_ranges: usize) -> Self {
        SequenceTracker {
            tracker: Tracker::new(reset_floor, session_gap_us, max_gap_ranges),
        }
    }

    fn __len__(&self) -> usize {
        self.tracker.states.len()
    }

    /// Classify the messages of `batch` (columns source_sequence, exchange, symbol, timestamp), in order:
    /// (one `SeqClass` number per message as bytes, the gap and reset events).
    fn check<'py>(
        &mut self,
        py: Python<'py>,
        kind: &str,
        batch: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyBytes>, Vec<EventTuple>)> {
        let batch = RecordBatch::from_pyarrow_bound(batch)?;
        // The columns are Rust's own now: the check runs without the GIL, so the committer's Python runs meanwhile.
        let tracker = &mut self.tracker;
        let (classes, events) = py.detach(|| check_batch(tracker, kind, &batch))?;
        let found = events
            .into_iter()
            .map(|e| {
                let (_, exchange, symbol) = &self.tracker.keys[e.instrument];
                let name = if e.reset { "reset" } else { "gap" };
                (
                    e.index,
                    name,
                    exchange.clone(),
                    symbol.clone(),
                    e.session,
                    e.expected,
                    e.received,
                    e.missing,
                    e.timestamp,
                    e.previous_timestamp,
                )
            })
            .collect();
        Ok((PyBytes::new(py, &classes), found))
    }

    /// The open ranges (inclusive) of an instrument's current session, oldest first.
    fn open_gaps(&self, kind: &str, exchange: &str, symbol: &str) -> Vec<(i64, i64)> {
        let Some(i) = self.tracker.find(kind, exchange, symbol) else {
            return Vec::new();
        };
        let state = &self.tracker.states[i];
        state
            .gap_lo
            .iter()
            .zip(&state.gap_hi)
            .filter(|(_, &hi)| hi >= state.first)
            .map(|(&lo, &hi)| (lo, hi))
            .collect()
    }

    /// The reference's state: [kind, exchange, symbol, last, max_ts, session, first, gap_lo, gap_hi] per
    /// instrument, in first-seen order.
    fn to_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = PyList::empty(py);
        for ((kind, exchange, symbol), s) in self.tracker.keys.iter().zip(&self.tracker.states) {
            let item = (kind, exchange, symbol, s.last, s.max_ts, s.session, s.first);
            let row = PyList::new(py, item.into_pyobject(py)?.iter())?;
            row.append(PyList::new(py, &s.gap_lo)?)?;
            row.append(PyList::new(py, &s.gap_hi)?)?;
            items.append(row)?;
        }
        Ok(items)
    }

    /// Resume from `to_state`'s form (the reference's or this tracker's).
    fn load_state(&mut self, state: &Bound<'_, PyAny>) -> PyResult<()> {
        for item in state.try_iter()? {
            let fields: Vec<Bound<'_, PyAny>> = item?.extract()?;
            let [kind, exchange, symbol, last, max_ts, session, first, gap_lo, gap_hi] =
                <[Bound<'_, PyAny>; 9]>::try_from(fields).map_err(|fields| {
                    PyValueError::new_err(format!(
                        "a sequence state entry has 9 fields, not {}",
                        fields.len()
                    ))
                })?;
            let key = (kind.extract()?, exchange.extract()?, symbol.extract()?);
            let instrument = Instrument {
                last: last.extract()?,
                max_ts: max_ts.extract()?,
                session: session.extract()?,
                first: first.extract()?,
                gap_lo: gap_lo.extract()?,
                gap_hi: gap_hi.extract()?,
            };
            self.tracker.insert(key, instrument);
        }
        Ok(())
    }
}
