//! The Processor API: records, the [`Processor`] trait and the [`ProcessorContext`] a processor
//! uses to forward records, use state stores and schedule punctuations.
//!
//! Every DSL operator is itself a processor; [`KStream::process`](crate::dsl::KStream::process)
//! plugs a user processor into a DSL topology. A processor instance belongs to one task
//! (one partition of one sub-topology) and is called from one thread at a time.

use std::sync::Arc;
use std::time::Duration;

use crate::error::BoxError;
use crate::runtime::node::Children;
use crate::runtime::task::TaskContext;
use crate::state::{KeyValueStore, StoreError, TimestampedKeyValueStore, WindowStore};

/// One header of a record. A header value may be `null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value; `None` is `null`.
    pub value: Option<Vec<u8>>,
}

/// The headers of a record, in order; names may repeat as in Kafka.
///
/// ```
/// use kstreams::processor::Headers;
/// let mut headers = Headers::new();
/// headers.add("trace-id", "abc");
/// assert_eq!(headers.last_str("trace-id"), Some("abc"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers(Vec::new())
    }
    /// Appends a header.
    pub fn add(&mut self, key: impl Into<String>, value: impl AsRef<[u8]>) -> &mut Self {
        self.0.push(Header {
            key: key.into(),
            value: Some(value.as_ref().to_vec()),
        });
        self
    }
    /// Appends a header with a `null` value.
    pub fn add_null(&mut self, key: impl Into<String>) -> &mut Self {
        self.0.push(Header {
            key: key.into(),
            value: None,
        });
        self
    }
    /// Removes every header with this name.
    pub fn remove(&mut self, key: &str) -> &mut Self {
        self.0.retain(|h| h.key != key);
        self
    }
    /// The value of the last header with this name.
    pub fn last(&self, key: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .rev()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_deref())
    }
    /// The value of the last header with this name, as UTF-8.
    pub fn last_str(&self, key: &str) -> Option<&str> {
        self.last(key).and_then(|v| std::str::from_utf8(v).ok())
    }
    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }
    /// Number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when there is no header.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A typed record flowing between processors.
///
/// ```
/// use kstreams::processor::{Headers, Record};
/// let mut headers = Headers::new();
/// headers.add("source", "web");
/// let record = Record::new("order-1".to_string(), 42i64, 1_000).with_headers(headers);
/// let moved = record.with_key("customer-7".to_string()).with_value("42 EUR").with_timestamp(1_001);
/// assert_eq!((moved.key.as_str(), moved.value, moved.timestamp), ("customer-7", "42 EUR", 1_001));
/// assert_eq!(moved.headers.last_str("source"), Some("web"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Event time in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Headers, passed on unchanged unless a processor changes them.
    pub headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record without headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record {
            key,
            value,
            timestamp,
            headers: Headers::new(),
        }
    }
    /// The same record with another key.
    pub fn with_key<K2>(self, key: K2) -> Record<K2, V> {
        Record {
            key,
            value: self.value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
    /// The same record with another value.
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record {
            key: self.key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
    /// The same record with another timestamp.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
    /// The same record with other headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}

/// Where the record being processed was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Source topic (the full name, with the application id for internal topics).
    pub topic: Arc<str>,
    /// Source partition.
    pub partition: i32,
    /// Offset in that partition.
    pub offset: i64,
}

/// Identifies a task: a sub-topology and the partition it processes. Displayed as Kafka
/// Streams does, `<sub-topology>_<partition>`, which is also the name of the task's
/// directory in the state directory.
///
/// ```
/// use kstreams::processor::TaskId;
/// assert_eq!(TaskId { subtopology: 1, partition: 3 }.to_string(), "1_3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// Index of the sub-topology in [`Topology::describe`](crate::topology::Topology::describe).
    pub subtopology: u32,
    /// Partition of the sub-topology's source topics.
    pub partition: i32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// Which clock drives a punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    /// Stream time: the largest record timestamp the task has seen. It only moves when
    /// records arrive.
    StreamTime,
    /// The wall clock (in the test driver, the driver's simulated clock).
    WallClockTime,
}

/// A handle to a scheduled punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScheduleId(pub(crate) u64);

/// One firing of a scheduled punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Punctuation {
    /// The schedule that fired.
    pub id: ScheduleId,
    /// The clock that fired it.
    pub kind: PunctuationType,
    /// The current time of that clock.
    pub timestamp: i64,
}

/// A record processor: gets records of `(KIn, VIn)`, may forward records of `(KOut, VOut)`.
///
/// ```
/// use kstreams::processor::{Processor, ProcessorContext, Record};
/// use kstreams::BoxError;
///
/// /// Forwards only records whose value is longer than the previous one of any key.
/// #[derive(Default)]
/// struct Longer { longest: usize }
///
/// impl Processor<String, String, String, String> for Longer {
///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
///                record: Record<String, String>) -> Result<(), BoxError> {
///         if record.value.len() > self.longest {
///             self.longest = record.value.len();
///             ctx.forward(record)?;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Processor<KIn, VIn, KOut, VOut>: 'static {
    /// Called once before the first record: look up stores, schedule punctuations.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), BoxError> {
        Ok(())
    }
    /// Processes one record.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        record: Record<KIn, VIn>,
    ) -> Result<(), BoxError>;
    /// Called when a punctuation scheduled with [`ProcessorContext::schedule`] fires.
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, KOut, VOut>,
        _punctuation: Punctuation,
    ) -> Result<(), BoxError> {
        Ok(())
    }
    /// Called when the task closes.
    fn close(&mut self) {}
}

/// What a processor can do while it runs: forward, use stores, schedule, inspect the record
/// (Kafka Streams' `ProcessorContext`). `K` and `V` are the types the processor forwards.
///
/// See [`schedule`](Self::schedule) and
/// [`StreamsBuilder::add_state_store`](crate::dsl::StreamsBuilder::add_state_store) for
/// processors that punctuate and use stores.
pub struct ProcessorContext<'a, K, V> {
    pub(crate) task: &'a mut TaskContext,
    pub(crate) children: &'a Children<K, V>,
    pub(crate) node: usize,
    pub(crate) name: &'a str,
}

impl<K: Clone + 'static, V: Clone + 'static> ProcessorContext<'_, K, V> {
    /// Sends a record to every downstream processor.
    pub fn forward(&mut self, record: Record<K, V>) -> Result<(), BoxError> {
        self.children.forward(self.task, record)
    }

    /// Sends a record to one downstream processor, by its name in
    /// [`Topology::describe`](crate::topology::Topology::describe).
    pub fn forward_to(&mut self, child: &str, record: Record<K, V>) -> Result<(), BoxError> {
        self.children.forward_to(self.task, child, record)
    }

    /// Sends a record to the downstream processor at this position (in the order the
    /// children were added).
    pub(crate) fn forward_to_index(
        &mut self,
        index: usize,
        record: Record<K, V>,
    ) -> Result<(), BoxError> {
        self.children.forward_to_index(self.task, index, record)
    }
}

impl<K, V> ProcessorContext<'_, K, V> {
    /// A key-value store connected to this processor.
    pub fn key_value_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStore<SK, SV>, StoreError> {
        self.task.stores.key_value_store(name)
    }

    /// A key-value store that keeps a timestamp with each value (the kind tables use).
    pub fn timestamped_key_value_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<TimestampedKeyValueStore<SK, SV>, StoreError> {
        self.task.stores.timestamped_key_value_store(name)
    }

    /// A window store connected to this processor.
    pub fn window_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<WindowStore<SK, SV>, StoreError> {
        self.task.stores.window_store(name)
    }

    /// A window store whose values carry the timestamp of their last write.
    pub fn timestamped_window_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<WindowStore<SK, crate::state::ValueAndTimestamp<SV>>, StoreError> {
        self.task.stores.timestamped_window_store(name)
    }

    /// A session store connected to this processor.
    pub fn session_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<crate::state::SessionStore<SK, SV>, StoreError> {
        self.task.stores.session_store(name)
    }

    /// A session store whose values carry the timestamp of their last write.
    pub fn timestamped_session_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<crate::state::SessionStore<SK, crate::state::ValueAndTimestamp<SV>>, StoreError>
    {
        self.task.stores.timestamped_session_store(name)
    }

    /// Schedules [`Processor::punctuate`] every `interval` of the given clock.
    ///
    /// A stream-time punctuation fires on the first record and then whenever stream time
    /// crosses the next multiple of the interval; missed intervals fire once, not many times.
    /// A wall-clock punctuation first fires `interval` from now. The punctuation's
    /// `timestamp` is the clock's current time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Punctuation, PunctuationType, Record};
    ///
    /// /// Emits ("tick", time) on every punctuation of either clock.
    /// struct Ticker;
    /// impl Processor<String, String, String, i64> for Ticker {
    ///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), BoxError> {
    ///         ctx.schedule(Duration::from_millis(10), PunctuationType::StreamTime);
    ///         ctx.schedule(Duration::from_millis(100), PunctuationType::WallClockTime);
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, _: &mut ProcessorContext<'_, String, i64>,
    ///                _: Record<String, String>) -> Result<(), BoxError> {
    ///         Ok(())
    ///     }
    ///     fn punctuate(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                  p: Punctuation) -> Result<(), BoxError> {
    ///         ctx.forward(Record::new("tick".to_string(), p.timestamp, p.timestamp))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").process(|| Ticker, &[]).to("ticks");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("p")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// let ticks = driver.create_output_topic::<String, i64>("ticks");
    /// input.pipe_input_at("k".into(), "v".into(), 3); // the first record fires at once
    /// input.pipe_input_at("k".into(), "v".into(), 7); // the next grid point is 10
    /// input.pipe_input_at("k".into(), "v".into(), 25); // crossed 10 and 20: fires once
    /// assert_eq!(ticks.read_values_to_list(), vec![3, 25]);
    /// driver.advance_wall_clock_time(Duration::from_millis(100)).unwrap();
    /// assert_eq!(ticks.read_values_to_list(), vec![100]);
    /// ```
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> ScheduleId {
        self.task.schedule(self.node, interval, kind)
    }

    /// Cancels a scheduled punctuation.
    pub fn cancel(&mut self, id: ScheduleId) {
        self.task.cancel(id)
    }

    /// The task's stream time: the largest timestamp it has seen, or `-1` before any record.
    pub fn stream_time(&self) -> i64 {
        self.task.stream_time
    }

    /// The current wall-clock time in milliseconds.
    pub fn wall_clock_time(&self) -> i64 {
        self.task.wall_clock()
    }

    /// The timestamp of the record (or punctuation) being processed.
    pub fn timestamp(&self) -> i64 {
        self.task.record_timestamp
    }

    /// Topic, partition and offset of the source record, when processing one (not in a
    /// punctuation).
    pub fn record_metadata(&self) -> Option<RecordMetadata> {
        self.task.current.as_ref().map(|r| RecordMetadata {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
        })
    }

    /// The task running this processor.
    pub fn task_id(&self) -> TaskId {
        self.task.task_id
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.task.application_id
    }

    /// The name of the processor running, as in [`Topology::describe`](crate::topology::Topology::describe).
    pub fn processor_name(&self) -> &str {
        self.name
    }

    /// Sends the source record to the dead-letter topic with this error (and this processor's
    /// name) in its headers; processing goes on.
    pub fn dead_letter(&mut self, error: &dyn std::fmt::Display) {
        self.task.dead_letter("processing", self.name, error)
    }

    /// Counts one late record, dropped by a windowed operator.
    pub(crate) fn record_late(&mut self) {
        self.task.metrics.late_records_dropped += 1;
    }

    pub(crate) fn task_mut(&mut self) -> &mut TaskContext {
        self.task
    }
}
