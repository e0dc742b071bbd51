//! The compiled Kafka reader: one topic-partition read with librdkafka on a thread of its own, from a given offset,
//! into chunks of validated rows.
//!
//! The thread polls librdkafka, gathers up to `batch_size` messages (fewer when the partition has no more for
//! now), validates them as `k2_native.validate` does and queues the chunk. At most `queued_chunks` chunks wait, so a
//! flow that stops taking stops the reading (librdkafka's own prefetch is bounded by the settings it is given). The
//! bytes of accepted messages are dropped as soon as their rows are built; the others' are kept for the Python
//! exact path, which gives their verdict and reason.
//!
//! Validation runs on the reading thread, not the caller's: Python only receives finished Arrow batches, the
//! offsets and the messages left to it. A panic or an error in validation never ends the reading: that chunk goes
//! to Python whole (every message left to the exact path, with the failure to log).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arrow_array::RecordBatch;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use crate::columns::Rules;
use crate::message::Kind;

/// librdkafka's own log lines and errors, on stderr in the form confluent-kafka prints them.
pub struct StderrContext;

impl ClientContext for StderrContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!("%{}|{}|k2-native| {}", level as i32, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("%3|ERROR|k2-native| {error}: {reason}");
    }
}

impl ConsumerContext for StderrContext {}

pub type KafkaConsumer = BaseConsumer<StderrContext>;

/// A consumer with the given librdkafka settings (strings, as librdkafka takes them).
pub fn consumer(settings: &[(String, String)]) -> Result<KafkaConsumer, KafkaError> {
    let mut config = ClientConfig::new();
    for (key, value) in settings {
        config.set(key, value);
    }
    config.set_log_level(RDKafkaLogLevel::Warning);
    config.create_with_context(StderrContext)
}

/// What the reading thread validates against: the topic's kind and the timestamp bounds; `None` reads raw.
#[derive(Clone, Copy)]
pub struct Validation {
    pub kind: Kind,
    pub rules: Rules,
}

/// Consecutive messages of the partition: every offset and timestamp, the accepted rows (in offset order) and the
/// indices and bytes of the messages left to Python.
pub struct Chunk {
    pub offsets: Vec<i64>,
    pub timestamps_us: Vec<i64>,
    pub rows: Option<RecordBatch>,
    pub left: Vec<u32>,
    pub left_values: Vec<Vec<u8>>,
    pub failure: Option<String>,
}

pub enum Event {
    Chunk(Chunk),
    Failed(String), // a Kafka error on the partition: the caller stops, as it would on any read error
}

/// Messages gathered before validation: the payloads back to back in one buffer.
struct Gathered {
    offsets: Vec<i64>,
    timestamps_us: Vec<i64>,
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Gathered {
    fn new(capacity: usize) -> Self {
        Gathered {
            offsets: Vec::with_capacity(capacity),
            timestamps_us: Vec::with_capacity(capacity),
            data: Vec::with_capacity(capacity * 256),
            ends: Vec::with_capacity(capacity),
        }
    }

    fn len(&self) -> usize {
        self.offsets.len()
    }

    fn values(&self) -> Vec<&[u8]> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let value = &self.data[start..end];
                start = end;
                value
            })
            .collect()
    }

    /// Validated: the accepted rows, and the rest kept as bytes.
    fn into_chunk(self, validation: Option<Validation>, failpoint: Option<Failpoint>) -> Chunk {
        let values = self.values();
        let (rows, left, failure) = match validation {
            None => (None, (0..values.len() as u32).collect(), None),
            Some(v) => match catch_unwind(AssertUnwindSafe(|| {
                if matches!(failpoint, Some(Failpoint::ValidationPanic)) {
                    panic!("failpoint: validation panics");
                }
                crate::validate_all(&values, v.kind, &v.rules)
            })) {
                Ok(Ok((batch, left))) => (Some(batch), left, None),
                Ok(Err(error)) => (None, (0..values.len() as u32).collect(), Some(error)),
                Err(_) => (
                    None,
                    (0..values.len() as u32).collect(),
                    Some("native validation panicked".to_string()),
                ),
            },
        };
        let left_values = left.iter().map(|&i| values[i as usize].to_vec()).collect();
        Chunk {
            offsets: self.offsets,
            timestamps_us: self.timestamps_us,
            rows,
            left,
            left_values,
            failure,
        }
    }
}

/// A fault a test injects through `K2_NATIVE_FAILPOINT`, read when a reading starts (never set in production):
/// `reader-panic-at:<offset>` panics the reading thread once it has gathered that offset; `validation-panic` panics
/// inside every chunk's validation. Both must end as the caller expects: a `ReadError`, or every message of the
/// chunk left to the exact path; never a crash.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Failpoint {
    ReaderPanicAt(i64),
    ValidationPanic,
}

impl Failpoint {
    pub fn from_env() -> Option<Self> {
        let value = std::env::var("K2_NATIVE_FAILPOINT").ok()?;
        if value == "validation-panic" {
            return Some(Failpoint::ValidationPanic);
        }
        let offset = value.strip_prefix("reader-panic-at:")?.parse().ok()?;
        Some(Failpoint::ReaderPanicAt(offset))
    }
}

/// Where and how to read.
pub struct Plan {
    pub topic: String,
    pub partition: i32,
    pub start: i64,
    pub end: Option<i64>, // stop after the message before this offset (a bounded read); None: follow the tail
    pub batch_size: usize,
    pub validation: Option<Validation>,
    pub failpoint: Option<Failpoint>,
}

/// The reading thread and the queue of its chunks.
pub struct Reading {
    pub chunks: Option<Receiver<Event>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const POLL: Duration = Duration::from_millis(20);

impl Reading {
    pub fn start(
        consumer: Arc<KafkaConsumer>,
        plan: Plan,
        queued_chunks: usize,
    ) -> Result<Self, KafkaError> {
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&plan.topic, plan.partition, Offset::Offset(plan.start))?;
        consumer.assign(&assignment)?;
        let (sender, receiver) = sync_channel(queued_chunks.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("k2-read-{}-{}", plan.topic, plan.partition))
            .spawn(move || {
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    read(&consumer, &plan, &sender, &stopping)
                }));
                if outcome.is_err() {
                    let _ = sender.send(Event::Failed("the native reader panicked".into()));
                }
            })
            .map_err(|e| KafkaError::Subscription(e.to_string()))?;
        Ok(Reading {
            chunks: Some(receiver),
            stop,
            thread: Some(thread),
        })
    }

    /// The next queued event, without waiting; `None` when none is ready or the reading has ended.
    pub fn next(&self) -> Option<Event> {
        self.chunks.as_ref()?.try_recv().ok() // empty, or the reading has ended
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.chunks = None; // a thread waiting to queue a chunk is released: its send fails
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The reading loop: until the bounded end, a Kafka error, or `stop`.
fn read(consumer: &KafkaConsumer, plan: &Plan, sender: &SyncSender<Event>, stop: &AtomicBool) {
    let mut next = plan.start;
    while !stop.load(Ordering::Relaxed) {
        if plan.end.is_some_and(|end| next >= end) {
            return; // a bounded read is done: the caller stops at the same offset
        }
        let mut gathered = Gathered::new(plan.batch_size);
        // Wait for the first message a short while (the stop flag is checked in between), then take what
        // librdkafka has already fetched, up to the batch size, without waiting.
        let mut timeout = POLL;
        while gathered.len() < plan.batch_size {
            match consumer.poll(timeout) {
                None => {
                    if gathered.len() > 0 || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    continue;
                }
                Some(Err(error)) => {
                    if gathered.len() > 0 {
                        let chunk = gathered.into_chunk(plan.validation, plan.failpoint);
                        if sender.send(Event::Chunk(chunk)).is_err() {
                            return;
                        }
                    }
                    let _ = sender.send(Event::Failed(format!(
                        "{}/{}: {error}",
                        plan.topic, plan.partition
                    )));
                    return;
                }
                Some(Ok(message)) => {
                    let payload = message.payload().unwrap_or(b"");
                    gathered.data.extend_from_slice(payload);
                    gathered.ends.push(gathered.data.len());
                    gathered.offsets.push(message.offset());
                    let millis = message.timestamp().to_millis().unwrap_or(-1);
                    gathered.timestamps_us.push(millis.saturating_mul(1_000));
                    next = message.offset() + 1;
                    if let Some(Failpoint::ReaderPanicAt(at)) = plan.failpoint {
                        assert!(next <= at, "failpoint: the reader panics at offset {at}");
                    }
                    timeout = Duration::ZERO;
                    if plan.end.is_some_and(|end| next >= end) {
                        break;
                    }
                }
            }
        }
        if gathered.len() == 0 {
            continue;
        }
        if sender
            .send(Event::Chunk(
                gathered.into_chunk(plan.validation, plan.failpoint),
            ))
            .is_err()
        {
            return; // the caller has stopped reading
        }
    }
}
