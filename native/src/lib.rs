//! K2's compiled ingest path: the JSON messages of one source partition to an Arrow batch of the valid rows.
//!
//! `validate(values, kind, min_timestamp_us, max_timestamp_us)` returns `(batch, not_accepted)`: a
//! `pyarrow.RecordBatch` of the accepted messages in input order (handed over through the Arrow C data interface,
//! no copy) and the indices of the others, which the Python exact path (`k2.ingest.validate`) decodes for its
//! verdict and reason. A panic becomes a Python exception (the caller then takes the exact path for the batch).
//!
//! `SequenceTracker(reset_floor, session_gap_us, max_gap_ranges)` classifies a batch's sequence numbers column-wise
//! (`sequence`, the twin of `k2.ingest.sequence.SequenceTracker`).
//!
//! `Reader(settings, topic, partition)` reads one Kafka topic-partition with librdkafka on a thread of its own and
//! validates there (`reader`): `take()` hands over finished batches, the offsets and the messages left to Python.

mod columns;
mod decimal;
mod message;
mod py_sequence;
mod reader;
mod sequence;

use std::ffi::CString;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_pyarrow::ToPyArrow;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use columns::{acceptable, Columns, Rules};
use message::Kind;
use rdkafka::consumer::Consumer;
use reader::{Event, KafkaConsumer, Plan, Reading, Validation};

pyo3::create_exception!(
    k2_native,
    ReadError,
    pyo3::exceptions::PyRuntimeError,
    "A Kafka error while reading a partition (the reading has stopped)."
);

fn kind_named(kind: &str) -> PyResult<Kind> {
    match kind {
        "trade" => Ok(Kind::Trade),
        "quote" => Ok(Kind::Quote),
        other => Err(PyValueError::new_err(format!(
            "no schema for message kind {other:?}"
        ))),
    }
}

/// Accepted rows of `values` and the indices of the messages not accepted here.
pub(crate) fn validate_all(
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
    let kind = kind_named(kind)?;
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

/// What `Reader.take` hands over: every offset and timestamp (µs) of the messages taken, the accepted rows (one
/// batch per chunk), the indices of the messages left to Python, every message's value (the bytes for those left,
/// an empty value for the accepted) and the validation failures to log.
type Taken<'py> = (
    Bound<'py, PyList>,
    Bound<'py, PyList>,
    Vec<Bound<'py, PyAny>>,
    Vec<u32>,
    Bound<'py, PyList>,
    Vec<String>,
);

/// One Kafka topic-partition, read by librdkafka and validated on a thread of its own.
#[pyclass(module = "k2_native")]
struct Reader {
    consumer: ManuallyDrop<Arc<KafkaConsumer>>, // dropped off the caller's thread: see `Drop`
    topic: String,
    partition: i32,
    reading: Mutex<Option<Reading>>,
    failed: Mutex<Option<String>>,
}

#[pymethods]
impl Reader {
    #[new]
    fn new(
        py: Python<'_>,
        settings: Vec<(String, String)>,
        topic: String,
        partition: i32,
    ) -> PyResult<Self> {
        // Creating a consumer and assigning it (`start`) wait on librdkafka's threads: without the GIL, so the
        // flow's other start-up work (opening the tables on a thread of its own) goes on meanwhile.
        let consumer = py
            .detach(|| reader::consumer(&settings))
            .map_err(|e| ReadError::new_err(e.to_string()))?;
        Ok(Reader {
            consumer: ManuallyDrop::new(Arc::new(consumer)),
            topic,
            partition,
            reading: Mutex::new(None),
            failed: Mutex::new(None),
        })
    }

    /// (low, high) watermarks from the broker.
    fn watermarks(&self, py: Python<'_>, timeout_seconds: f64) -> PyResult<(i64, i64)> {
        let timeout = std::time::Duration::from_secs_f64(timeout_seconds);
        py.detach(|| {
            self.consumer
                .fetch_watermarks(&self.topic, self.partition, timeout)
        })
        .map_err(|e| ReadError::new_err(format!("{}/{}: {e}", self.topic, self.partition)))
    }

    /// The high watermark librdkafka cached from its last fetch response (no broker round trip); -1 before one.
    fn cached_high_watermark(&self) -> PyResult<i64> {
        let topic =
            CString::new(self.topic.as_str()).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the client outlives the call; librdkafka only reads the topic name and writes the two numbers.
        unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                self.partition,
                &mut low,
                &mut high,
            );
        }
        Ok(high)
    }

    /// Start reading at `start` (an offset), up to `end` when given; validate as `kind` (None: leave every message
    /// to Python, e.g. a mapped topic). At most `queued_chunks` chunks of `batch_size` messages wait to be taken.
    #[pyo3(signature = (start, end, kind, min_timestamp_us, max_timestamp_us, batch_size, queued_chunks=2))]
    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        py: Python<'_>,
        start: i64,
        end: Option<i64>,
        kind: Option<&str>,
        min_timestamp_us: i64,
        max_timestamp_us: i64,
        batch_size: usize,
        queued_chunks: usize,
    ) -> PyResult<()> {
        let validation = match kind {
            None => None,
            Some(kind) => Some(Validation {
                kind: kind_named(kind)?,
                rules: Rules {
                    min_timestamp_us,
                    max_timestamp_us,
                },
            }),
        };
        let plan = Plan {
            topic: self.topic.clone(),
            partition: self.partition,
            start,
            end,
            batch_size: batch_size.max(1),
            validation,
            failpoint: reader::Failpoint::from_env(),
        };
        let consumer = Arc::clone(&self.consumer);
        let reading = py
            .detach(|| Reading::start(consumer, plan, queued_chunks))
            .map_err(|e| ReadError::new_err(e.to_string()))?;
        *self.reading.lock().unwrap() = Some(reading);
        Ok(())
    }

    /// Up to `max_chunks` chunks that are ready, as one (see `Taken`); None when none is. A Kafka error raises
    /// `ReadError` once the chunks read before it are taken.
    fn take<'py>(&self, py: Python<'py>, max_chunks: usize) -> PyResult<Option<Taken<'py>>> {
        let mut chunks = Vec::new();
        {
            let reading = self.reading.lock().unwrap();
            let mut failed = self.failed.lock().unwrap();
            if let Some(error) = failed.as_ref() {
                return Err(ReadError::new_err(error.clone())); // the chunks before it were taken already
            }
            if let Some(reading) = reading.as_ref() {
                while chunks.len() < max_chunks.max(1) {
                    match reading.next() {
                        Some(Event::Chunk(chunk)) => chunks.push(chunk),
                        Some(Event::Failed(error)) => {
                            *failed = Some(error);
                            break;
                        }
                        None => break,
                    }
                }
            }
            if chunks.is_empty() {
                return match failed.as_ref() {
                    Some(error) => Err(ReadError::new_err(error.clone())),
                    None => Ok(None),
                };
            }
        }
        let total: usize = chunks.iter().map(|c| c.offsets.len()).sum();
        let mut offsets = Vec::with_capacity(total);
        let mut timestamps = Vec::with_capacity(total);
        let mut batches = Vec::with_capacity(chunks.len());
        let mut left = Vec::new();
        let mut failures = Vec::new();
        let empty = PyBytes::new(py, b"").into_any();
        let mut values: Vec<Bound<'py, PyAny>> = Vec::with_capacity(total);
        for chunk in chunks {
            let base = offsets.len() as u32;
            let mut kept = chunk.left.iter().zip(chunk.left_values.iter()).peekable();
            for i in 0..chunk.offsets.len() as u32 {
                match kept.peek() {
                    Some((&at, value)) if at == i => {
                        values.push(PyBytes::new(py, value).into_any());
                        kept.next();
                    }
                    _ => values.push(empty.clone()),
                }
            }
            left.extend(chunk.left.iter().map(|i| i + base));
            offsets.extend_from_slice(&chunk.offsets);
            timestamps.extend_from_slice(&chunk.timestamps_us);
            if let Some(rows) = chunk.rows {
                batches.push(rows.to_pyarrow(py)?);
            }
            failures.extend(chunk.failure);
        }
        Ok(Some((
            PyList::new(py, offsets)?,
            PyList::new(py, timestamps)?,
            batches,
            left,
            PyList::new(py, values)?,
            failures,
        )))
    }

    /// Stop the reading thread and close the consumer's assignment.
    fn close(&self, py: Python<'_>) {
        let reading = self.reading.lock().unwrap().take();
        py.detach(move || drop(reading));
    }
}

/// Closing a librdkafka consumer waits for its broker threads (about 0.1 s: they notice every 100 ms), and a
/// Reader is dropped with the GIL held, often by the flow's only busy thread (Bytewax drops a partition once its
/// bounded read ends): the consumer and the reading thread are let go on a thread of their own instead.
impl Drop for Reader {
    fn drop(&mut self) {
        // SAFETY: `consumer` is taken exactly once, here, and never used after.
        let consumer = unsafe { ManuallyDrop::take(&mut self.consumer) };
        let reading = self.reading.get_mut().map(Option::take).unwrap_or(None);
        let closing = std::thread::Builder::new()
            .name(format!("k2-close-{}", self.partition))
            .spawn(move || drop((reading, consumer)));
        if let Err(error) = closing {
            eprintln!("k2_native: closing a Kafka reader on this thread ({error})");
        }
    }
}

#[pymodule]
fn k2_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_class::<Reader>()?;
    m.add_class::<py_sequence::SequenceTracker>()?;
    m.add("ReadError", m.py().get_type::<ReadError>())?;
    Ok(())
}
