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
///
/// ```
/// use kstreams::processor::{Header, Headers};
/// let mut headers = Headers::new();
/// headers.add("trace-id", "abc").add_null("deleted-by");
/// let all: Vec<&Header> = headers.iter().collect();
/// assert_eq!(all[0], &Header { key: "trace-id".into(), value: Some(b"abc".to_vec()) });
/// assert_eq!(all[1], &Header { key: "deleted-by".into(), value: None });
/// ```
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
    ///
    /// ```
    /// use kstreams::processor::Headers;
    /// let headers = Headers::new();
    /// assert!(headers.is_empty());
    /// assert_eq!(headers, Headers::default());
    /// ```
    pub fn new() -> Self {
        Headers(Vec::new())
    }
    /// Appends a header.
    ///
    /// ```
    /// use kstreams::processor::Headers;
    /// let mut headers = Headers::new();
    /// headers.add("attempt", "1").add("attempt", b"2"); // names may repeat
    /// assert_eq!(headers.len(), 2);
    /// assert_eq!(headers.last_str("attempt"), Some("2"));
    /// ```
    pub fn add(&mut self, key: impl Into<String>, value: impl AsRef<[u8]>) -> &mut Self {
        self.0.push(Header {
            key: key.into(),
            value: Some(value.as_ref().to_vec()),
        });
        self
    }
    /// Appends a header with a `null` value.
    ///
    /// ```
    /// use kstreams::processor::Headers;
    /// let mut headers = Headers::new();
    /// headers.add("reason", "late").add_null("reason");
    /// assert_eq!(headers.len(), 2);
    /// assert_eq!(headers.last("reason"), None); // the last `reason` is null
    /// ```
    pub fn add_null(&mut self, key: impl Into<String>) -> &mut Self {
        self.0.push(Header {
            key: key.into(),
            value: None,
        });
        self
    }
    /// Removes every header with this name.
    ///
    /// ```
    /// use kstreams::processor::Headers;
    /// let mut headers = Headers::new();
    /// headers.add("attempt", "1").add("trace-id", "abc").add("attempt", "2");
    /// headers.remove("attempt");
    /// assert_eq!(headers.len(), 1);
    /// assert_eq!(headers.last("attempt"), None);
    /// assert_eq!(headers.last_str("trace-id"), Some("abc"));
    /// ```
    pub fn remove(&mut self, key: &str) -> &mut Self {
        self.0.retain(|h| h.key != key);
        self
    }
    /// The value of the last header with this name.
    ///
    /// ```
    /// use kstreams::processor::Headers;
    /// let mut headers = Headers::new();
    /// headers.add("version", [1u8]).add("version", [2u8]);
    /// assert_eq!(headers.last("version"), Some(&[2u8][..]));
    /// assert_eq!(headers.last("missing"), None);
    /// ```
    pub fn last(&self, key: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .rev()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_deref())
    }
    /// The value of the last header with this name, as UTF-8.
    ///
    /// ```
    /// use kstreams::processor::Headers;
    /// let mut headers = Headers::new();
    /// headers.add("content-type", "application/json").add("raw", [0xffu8, 0xfe]);
    /// assert_eq!(headers.last_str("content-type"), Some("application/json"));
    /// assert_eq!(headers.last_str("raw"), None); // not UTF-8
    /// ```
    pub fn last_str(&self, key: &str) -> Option<&str> {
        self.last(key).and_then(|v| std::str::from_utf8(v).ok())
    }
    /// All headers in order.
    ///
    /// ```
    /// use kstreams::processor::Headers;
    /// let mut headers = Headers::new();
    /// headers.add("b", "1").add("a", "2").add("b", "3");
    /// let keys: Vec<&str> = headers.iter().map(|h| h.key.as_str()).collect();
    /// assert_eq!(keys, vec!["b", "a", "b"]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }
    /// Number of headers.
    ///
    /// ```
    /// use kstreams::processor::Headers;
    /// let mut headers = Headers::new();
    /// headers.add("a", "1").add_null("b");
    /// assert_eq!(headers.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when there is no header.
    ///
    /// ```
    /// use kstreams::processor::Headers;
    /// let mut headers = Headers::new();
    /// assert!(headers.is_empty());
    /// headers.add("a", "1");
    /// assert!(!headers.is_empty());
    /// ```
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
    ///
    /// ```
    /// use kstreams::processor::Record;
    /// let record = Record::new("order-1", 42, 1_000);
    /// assert_eq!((record.key, record.value, record.timestamp), ("order-1", 42, 1_000));
    /// assert!(record.headers.is_empty());
    /// ```
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record {
            key,
            value,
            timestamp,
            headers: Headers::new(),
        }
    }
    /// The same record with another key.
    ///
    /// ```
    /// use kstreams::processor::Record;
    /// let record = Record::new("order-1".to_string(), 42, 1_000);
    /// let rekeyed = record.with_key(7u32); // the key type may change
    /// assert_eq!((rekeyed.key, rekeyed.value, rekeyed.timestamp), (7, 42, 1_000));
    /// ```
    pub fn with_key<K2>(self, key: K2) -> Record<K2, V> {
        Record {
            key,
            value: self.value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
    /// The same record with another value.
    ///
    /// ```
    /// use kstreams::processor::Record;
    /// let record = Record::new("order-1", 42, 1_000);
    /// let formatted = record.with_value(format!("{} EUR", 42)); // the value type may change
    /// assert_eq!((formatted.key, formatted.value.as_str()), ("order-1", "42 EUR"));
    /// ```
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record {
            key: self.key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
    /// The same record with another timestamp.
    ///
    /// ```
    /// use kstreams::processor::Record;
    /// let record = Record::new("order-1", 42, 1_000).with_timestamp(2_000);
    /// assert_eq!((record.key, record.value, record.timestamp), ("order-1", 42, 2_000));
    /// ```
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
    /// The same record with other headers.
    ///
    /// ```
    /// use kstreams::processor::{Headers, Record};
    /// let mut headers = Headers::new();
    /// headers.add("source", "web");
    /// let record = Record::new("order-1", 42, 1_000).with_headers(headers.clone());
    /// assert_eq!(record.headers, headers);
    /// assert_eq!(record.headers.last_str("source"), Some("web"));
    /// ```
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}

/// Where the record being processed was read from.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver, BoxError};
/// use kstreams::processor::{Processor, ProcessorContext, Record};
///
/// /// Replaces the value with the topic, partition and offset the record was read from.
/// struct Origin;
/// impl Processor<String, String, String, String> for Origin {
///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
///                record: Record<String, String>) -> Result<(), BoxError> {
///         let m = ctx.record_metadata().ok_or("not processing a record")?;
///         ctx.forward(record.with_value(format!("{}/{}/{}", m.topic, m.partition, m.offset)))
///     }
/// }
///
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("in")
///     .repartition_with(Repartitioned::default().with_name("by-key"))
///     .process(|| Origin, &[]).to("origins");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("app")).unwrap();
/// let input = driver.create_input_topic::<String, String>("in");
/// input.pipe_input_at("k".into(), "a".into(), 0);
/// input.pipe_input_at("k".into(), "b".into(), 1);
/// let origins = driver.create_output_topic::<String, String>("origins");
/// // Internal topics by their full name.
/// assert_eq!(origins.read_values_to_list(),
///     vec!["app-by-key-repartition/0/0", "app-by-key-repartition/0/1"]);
/// ```
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
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
/// use kstreams::processor::{Processor, ProcessorContext, Punctuation, PunctuationType, Record};
///
/// /// Every second of wall-clock time, emits how many records came in since the last time.
/// #[derive(Default)]
/// struct Rate { seen: i64 }
/// impl Processor<String, String, String, i64> for Rate {
///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), BoxError> {
///         ctx.schedule(Duration::from_secs(1), PunctuationType::WallClockTime);
///         Ok(())
///     }
///     fn process(&mut self, _: &mut ProcessorContext<'_, String, i64>,
///                _: Record<String, String>) -> Result<(), BoxError> {
///         self.seen += 1;
///         Ok(())
///     }
///     fn punctuate(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
///                  p: Punctuation) -> Result<(), BoxError> {
///         ctx.forward(Record::new("rate".into(), std::mem::take(&mut self.seen), p.timestamp))
///     }
/// }
///
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("in").process(Rate::default, &[]).to("rates");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
/// let input = driver.create_input_topic::<String, String>("in");
/// input.pipe_input_at("k".into(), "v".into(), 0);
/// input.pipe_input_at("k".into(), "v".into(), 5_000); // stream time does not matter
/// let rates = driver.create_output_topic::<String, i64>("rates");
/// assert!(rates.is_empty());
/// driver.advance_wall_clock_time(Duration::from_secs(1)).unwrap();
/// driver.advance_wall_clock_time(Duration::from_secs(1)).unwrap();
/// assert_eq!(rates.read_values_to_list(), vec![2, 0]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    /// Stream time: the largest record timestamp the task has seen. It only moves when
    /// records arrive.
    StreamTime,
    /// The wall clock (in the test driver, the driver's simulated clock).
    WallClockTime,
}

/// A handle to a scheduled punctuation.
/// [`ProcessorContext::schedule`] returns it; it tells a processor's schedules apart.
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
/// use kstreams::processor::{Processor, ProcessorContext, Punctuation, PunctuationType, Record,
///     ScheduleId};
///
/// /// Two wall-clock schedules: "fast" every 10 ms, "slow" every 30 ms.
/// #[derive(Default)]
/// struct Two { fast: Option<ScheduleId> }
/// impl Processor<String, String, String, String> for Two {
///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), BoxError> {
///         let wall_clock = PunctuationType::WallClockTime;
///         self.fast = Some(ctx.schedule(Duration::from_millis(10), wall_clock));
///         ctx.schedule(Duration::from_millis(30), wall_clock);
///         Ok(())
///     }
///     fn process(&mut self, _: &mut ProcessorContext<'_, String, String>,
///                _: Record<String, String>) -> Result<(), BoxError> {
///         Ok(())
///     }
///     fn punctuate(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
///                  p: Punctuation) -> Result<(), BoxError> {
///         let which = if Some(p.id) == self.fast { "fast" } else { "slow" };
///         ctx.forward(Record::new(which.into(), String::new(), p.timestamp))
///     }
/// }
///
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("in").process(Two::default, &[]).to("ticks");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
/// let ticks = driver.create_output_topic::<String, String>("ticks");
/// let mut fired = Vec::new();
/// for _ in 0..3 {
///     driver.advance_wall_clock_time(Duration::from_millis(10)).unwrap();
///     fired.push(ticks.read_records_to_list().into_iter().map(|r| r.key).collect::<Vec<_>>());
/// }
/// assert_eq!(fired[..2], [vec!["fast"], vec!["fast"]]);
/// assert_eq!(fired[2].len(), 2); // both fire at 30 ms
/// assert!(fired[2].contains(&"slow".to_string()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScheduleId(pub(crate) u64);

/// One firing of a scheduled punctuation.
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
/// use kstreams::processor::{Processor, ProcessorContext, Punctuation, PunctuationType, Record};
///
/// /// Emits the clock and the time of every punctuation.
/// struct Log;
/// impl Processor<String, String, String, i64> for Log {
///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), BoxError> {
///         ctx.schedule(Duration::from_millis(100), PunctuationType::StreamTime);
///         Ok(())
///     }
///     fn process(&mut self, _: &mut ProcessorContext<'_, String, i64>,
///                _: Record<String, String>) -> Result<(), BoxError> {
///         Ok(())
///     }
///     fn punctuate(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
///                  p: Punctuation) -> Result<(), BoxError> {
///         assert_eq!(p.kind, PunctuationType::StreamTime);
///         ctx.forward(Record::new(format!("{:?}", p.kind), p.timestamp, p.timestamp))
///     }
/// }
///
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("in").process(|| Log, &[]).to("log");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("l")).unwrap();
/// let input = driver.create_input_topic::<String, String>("in");
/// input.pipe_input_at("k".into(), "v".into(), 42); // the first record fires at once
/// input.pipe_input_at("k".into(), "v".into(), 150); // crosses 100
/// let log = driver.create_output_topic::<String, i64>("log");
/// assert_eq!(log.read_key_values_to_list(),
///     vec![("StreamTime".to_string(), 42), ("StreamTime".to_string(), 150)]);
/// ```
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
    /// Called at every commit, before the stores are flushed and the offsets committed: a
    /// processor that holds records back forwards them here, so that they are written with
    /// the input that produced them. The DSL's aggregations forward their cached updates
    /// here (Kafka Streams' cache flush). The test driver commits after every record.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    ///
    /// /// Joins the values that arrive between two commits into one record.
    /// #[derive(Default)]
    /// struct Batch { values: Vec<String>, last: i64 }
    /// impl Processor<String, String, String, String> for Batch {
    ///     fn process(&mut self, _: &mut ProcessorContext<'_, String, String>,
    ///                r: Record<String, String>) -> Result<(), BoxError> {
    ///         self.values.push(r.value);
    ///         self.last = r.timestamp;
    ///         Ok(())
    ///     }
    ///     fn flush(&mut self, ctx: &mut ProcessorContext<'_, String, String>)
    ///         -> Result<(), BoxError> {
    ///         if self.values.is_empty() {
    ///             return Ok(());
    ///         }
    ///         let joined = std::mem::take(&mut self.values).join(",");
    ///         ctx.forward(Record::new("batch".into(), joined, self.last))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").process(Batch::default, &[]).to("batches");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("b")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// input.pipe_input_at("k".into(), "a".into(), 1);
    /// input.pipe_input_at("k".into(), "b".into(), 2);
    /// let batches = driver.create_output_topic::<String, String>("batches");
    /// // The driver commits after each record: one batch per record.
    /// assert_eq!(batches.read_values_to_list(), vec!["a", "b"]);
    /// ```
    fn flush(&mut self, _ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), BoxError> {
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
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
/// use kstreams::processor::{Processor, ProcessorContext, Record};
///
/// /// Tags every record with the application and the processor that saw it.
/// struct Tag;
/// impl Processor<String, String, String, String> for Tag {
///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
///                mut record: Record<String, String>) -> Result<(), BoxError> {
///         record.headers.add("seen-by", format!("{}/{}", ctx.application_id(),
///             ctx.processor_name()));
///         ctx.forward(record)
///     }
/// }
///
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("in").process(|| Tag, &[]).to("out");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("tags")).unwrap();
/// driver.create_input_topic::<String, String>("in").pipe_input_at("k".into(), "v".into(), 0);
/// let out = driver.create_output_topic::<String, String>("out").read_record().unwrap();
/// assert_eq!(out.headers.last_str("seen-by"), Some("tags/KSTREAM-PROCESSOR-0000000001"));
/// ```
pub struct ProcessorContext<'a, K, V> {
    pub(crate) task: &'a mut TaskContext,
    pub(crate) children: &'a Children<K, V>,
    pub(crate) node: usize,
    pub(crate) name: &'a str,
}

impl<K: Clone + 'static, V: Clone + 'static> ProcessorContext<'_, K, V> {
    /// Sends a record to every downstream processor.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    ///
    /// /// Forwards every record twice, the second time one millisecond later.
    /// struct Twice;
    /// impl Processor<String, String, String, String> for Twice {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let later = record.clone().with_timestamp(record.timestamp + 1);
    ///         ctx.forward(record)?;
    ///         ctx.forward(later)
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// let twice = builder.stream::<String, String>("in").process(|| Twice, &[]);
    /// twice.to("out-1");
    /// twice.to("out-2"); // every child gets every record
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("f")).unwrap();
    /// driver.create_input_topic::<String, String>("in").pipe_input_at("k".into(), "v".into(), 5);
    /// for topic in ["out-1", "out-2"] {
    ///     let out = driver.create_output_topic::<String, String>(topic).read_records_to_list();
    ///     assert_eq!(out.iter().map(|r| r.timestamp).collect::<Vec<_>>(), vec![5, 6]);
    /// }
    /// ```
    pub fn forward(&mut self, record: Record<K, V>) -> Result<(), BoxError> {
        self.children.forward(self.task, record)
    }

    /// Sends a record to one downstream processor, by its name in
    /// [`Topology::describe`](crate::topology::Topology::describe).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    ///
    /// /// Sends large amounts to one sink and the rest to the other.
    /// struct BySize;
    /// impl Processor<String, i64, String, i64> for BySize {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                record: Record<String, i64>) -> Result<(), BoxError> {
    ///         let child = if record.value >= 100 { "to-large" } else { "to-small" };
    ///         ctx.forward_to(child, record)
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// let sized = builder.stream::<String, i64>("amounts").process(|| BySize, &[]);
    /// sized.to_with("large", Produced::default().with_name("to-large"));
    /// sized.to_with("small", Produced::default().with_name("to-small"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("b")).unwrap();
    /// let amounts = driver.create_input_topic::<String, i64>("amounts");
    /// amounts.pipe_key_values([("a".to_string(), 250), ("b".to_string(), 3)]);
    /// let large = driver.create_output_topic::<String, i64>("large");
    /// let small = driver.create_output_topic::<String, i64>("small");
    /// assert_eq!(large.read_values_to_list(), vec![250]);
    /// assert_eq!(small.read_values_to_list(), vec![3]);
    /// ```
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
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    /// use kstreams::state::Stores;
    ///
    /// /// Forwards the running count of each key, kept in the store "counts".
    /// struct Count;
    /// impl Processor<String, String, String, i64> for Count {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let counts = ctx.key_value_store::<String, i64>("counts")?;
    ///         let n = counts.get(&record.key)?.unwrap_or(0) + 1;
    ///         counts.put(&record.key, &n)?;
    ///         ctx.forward(record.with_value(n))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.add_state_store(Stores::key_value_store_builder::<String, i64>("counts"));
    /// builder.stream::<String, String>("in").process(|| Count, &["counts"]).to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("c")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// for key in ["a", "b", "a"] {
    ///     input.pipe_input_at(key.into(), "v".into(), 0);
    /// }
    /// let out = driver.create_output_topic::<String, i64>("out");
    /// assert_eq!(out.read_values_to_list(), vec![1, 1, 2]);
    /// let counts = driver.key_value_store::<String, i64>("counts").unwrap();
    /// assert_eq!(counts.get(&"a".to_string()).unwrap(), Some(2));
    /// ```
    pub fn key_value_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStore<SK, SV>, StoreError> {
        self.task.stores.key_value_store(name)
    }

    /// A key-value store that keeps a timestamp with each value (the kind tables use).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    ///
    /// /// Answers a lookup of a product with its price and when that price was set.
    /// struct Quote;
    /// impl Processor<String, String, String, String> for Quote {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let prices = ctx.timestamped_key_value_store::<String, i64>("prices")?;
    ///         let quote = match prices.get(&record.key)? {
    ///             Some(p) => format!("{} since {}", p.value, p.timestamp),
    ///             None => "unknown".to_string(),
    ///         };
    ///         ctx.forward(record.with_value(quote))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("prices", Materialized::named("prices"));
    /// builder.stream::<String, String>("lookups").process(|| Quote, &["prices"]).to("quotes");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("q")).unwrap();
    /// let prices = driver.create_input_topic::<String, Option<i64>>("prices");
    /// prices.pipe_input_at("mouse".into(), Some(25), 7);
    /// let lookups = driver.create_input_topic::<String, String>("lookups");
    /// lookups.pipe_input_at("mouse".into(), String::new(), 9);
    /// lookups.pipe_input_at("desk".into(), String::new(), 9);
    /// let quotes = driver.create_output_topic::<String, String>("quotes");
    /// assert_eq!(quotes.read_values_to_list(), vec!["25 since 7", "unknown"]);
    /// ```
    pub fn timestamped_key_value_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<TimestampedKeyValueStore<SK, SV>, StoreError> {
        self.task.stores.timestamped_key_value_store(name)
    }

    /// A window store connected to this processor.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    /// use kstreams::{serde::Serdes, state::Stores};
    ///
    /// /// Counts each key's records per 10 ms window and forwards the count so far.
    /// struct PerWindow;
    /// impl Processor<String, String, String, i64> for PerWindow {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let store = ctx.window_store::<String, i64>("per-window")?;
    ///         let start = record.timestamp - record.timestamp % store.window_size();
    ///         let n = store.fetch(&record.key, start)?.unwrap_or(0) + 1;
    ///         store.put(&record.key, &n, start)?;
    ///         ctx.forward(record.with_value(n))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// let (size, retention) = (Duration::from_millis(10), Duration::from_secs(60));
    /// builder.add_state_store(Stores::window_store_builder_with("per-window", size, retention,
    ///     false, Serdes::string(), Serdes::i64()));
    /// builder.stream::<String, String>("in").process(|| PerWindow, &["per-window"]).to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// for t in [1, 5, 12] {
    ///     input.pipe_input_at("k".into(), "v".into(), t);
    /// }
    /// let out = driver.create_output_topic::<String, i64>("out");
    /// assert_eq!(out.read_values_to_list(), vec![1, 2, 1]); // windows [0, 10), [0, 10), [10, 20)
    /// ```
    pub fn window_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<WindowStore<SK, SV>, StoreError> {
        self.task.stores.window_store(name)
    }

    /// A window store whose values carry the timestamp of their last write.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    ///
    /// /// Looks up a user's click count in the window starting at the lookup's value.
    /// struct Clicks;
    /// impl Processor<String, i64, String, String> for Clicks {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
    ///                record: Record<String, i64>) -> Result<(), BoxError> {
    ///         let store = ctx.timestamped_window_store::<String, i64>("clicks")?;
    ///         let found = store.fetch(&record.key, record.value)?.ok_or("no such window")?;
    ///         ctx.forward(record.with_value(format!("{} at {}", found.value, found.timestamp)))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .count_with(Materialized::named("clicks"));
    /// builder.stream::<String, i64>("lookups").process(|| Clicks, &["clicks"]).to("answers");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("tw")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("ann".into(), "/".into(), 2);
    /// clicks.pipe_input_at("ann".into(), "/cart".into(), 6);
    /// driver.create_input_topic::<String, i64>("lookups").pipe_input_at("ann".into(), 0, 8);
    /// let answers = driver.create_output_topic::<String, String>("answers");
    /// assert_eq!(answers.read_value(), Some("2 at 6".to_string())); // the last write was at 6
    /// ```
    pub fn timestamped_window_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<WindowStore<SK, crate::state::ValueAndTimestamp<SV>>, StoreError> {
        self.task.stores.timestamped_window_store(name)
    }

    /// A session store connected to this processor.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    /// use kstreams::{serde::Serdes, state::Stores};
    ///
    /// /// Keeps one session per record, extending the key's latest one if it ended < 10 ms ago;
    /// /// forwards the number of records in the key's current session.
    /// struct Sessions;
    /// impl Processor<String, String, String, i64> for Sessions {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let store = ctx.session_store::<String, i64>("sessions")?;
    ///         let t = record.timestamp;
    ///         let (start, n) = match store.find_sessions(&record.key, t - 10, t)?.pop() {
    ///             Some(s) => {
    ///                 store.remove(&s.key, s.start, s.end)?;
    ///                 (s.start, s.value + 1)
    ///             }
    ///             None => (t, 1),
    ///         };
    ///         store.put(&record.key, start, t, &n)?;
    ///         ctx.forward(record.with_value(n))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.add_state_store(Stores::session_store_builder_with("sessions",
    ///     Duration::from_secs(60), Serdes::string(), Serdes::i64()));
    /// builder.stream::<String, String>("in").process(|| Sessions, &["sessions"]).to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// for t in [0, 5, 40] {
    ///     input.pipe_input_at("ann".into(), "/".into(), t);
    /// }
    /// let out = driver.create_output_topic::<String, i64>("out");
    /// assert_eq!(out.read_values_to_list(), vec![1, 2, 1]);
    /// let sessions = driver.session_store::<String, i64>("sessions").unwrap();
    /// let spans: Vec<_> = sessions.all().unwrap().iter().map(|s| (s.start, s.end)).collect();
    /// assert_eq!(spans, vec![(0, 5), (40, 40)]);
    /// ```
    pub fn session_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<crate::state::SessionStore<SK, SV>, StoreError> {
        self.task.stores.session_store(name)
    }

    /// A session store whose values carry the timestamp of their last write.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    ///
    /// /// Answers a lookup of a user with their sessions as "start-end:count@written".
    /// struct Visits;
    /// impl Processor<String, String, String, String> for Visits {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let store = ctx.timestamped_session_store::<String, i64>("visits")?;
    ///         let sessions: Vec<String> = store.fetch(&record.key)?.iter()
    ///             .map(|s| {
    ///                 format!("{}-{}:{}@{}", s.start, s.end, s.value.value, s.value.timestamp)
    ///             })
    ///             .collect();
    ///         ctx.forward(record.with_value(sessions.join(" ")))
    ///     }
    /// }
    ///
    /// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key().windowed_by_session(windows)
    ///     .aggregate_with(|| 0i64, |_, _, n| n + 1, |_, a, b| a + b,
    ///         Materialized::named("visits"));
    /// builder.stream::<String, String>("lookups").process(|| Visits, &["visits"]).to("answers");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("ts")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// for t in [0, 4, 30] {
    ///     clicks.pipe_input_at("ann".into(), "/".into(), t);
    /// }
    /// let lookups = driver.create_input_topic::<String, String>("lookups");
    /// lookups.pipe_input_at("ann".into(), String::new(), 31);
    /// let answers = driver.create_output_topic::<String, String>("answers");
    /// assert_eq!(answers.read_value(), Some("0-4:2@4 30-30:1@30".to_string()));
    /// ```
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
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Punctuation, PunctuationType};
    /// use kstreams::processor::Record;
    ///
    /// /// Emits a reminder once, 10 ms of wall-clock time after the start.
    /// struct Once;
    /// impl Processor<String, String, String, String> for Once {
    ///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>)
    ///             -> Result<(), BoxError> {
    ///         ctx.schedule(Duration::from_millis(10), PunctuationType::WallClockTime);
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, _: &mut ProcessorContext<'_, String, String>,
    ///                _: Record<String, String>) -> Result<(), BoxError> {
    ///         Ok(())
    ///     }
    ///     fn punctuate(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
    ///                  p: Punctuation) -> Result<(), BoxError> {
    ///         ctx.cancel(p.id);
    ///         ctx.forward(Record::new("reminder".into(), "wake up".into(), p.timestamp))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").process(|| Once, &[]).to("reminders");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("o")).unwrap();
    /// for _ in 0..3 {
    ///     driver.advance_wall_clock_time(Duration::from_millis(10)).unwrap();
    /// }
    /// let reminders = driver.create_output_topic::<String, String>("reminders");
    /// assert_eq!(reminders.read_records_to_list().len(), 1);
    /// ```
    pub fn cancel(&mut self, id: ScheduleId) {
        self.task.cancel(id)
    }

    /// The task's stream time: the largest timestamp it has seen, or `-1` before any record.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    ///
    /// /// Replaces the value with the stream time.
    /// struct StreamTime;
    /// impl Processor<String, String, String, i64> for StreamTime {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let now = ctx.stream_time();
    ///         ctx.forward(record.with_value(now))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").process(|| StreamTime, &[]).to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// for t in [5, 3, 8] {
    ///     input.pipe_input_at("k".into(), "v".into(), t);
    /// }
    /// let out = driver.create_output_topic::<String, i64>("out");
    /// assert_eq!(out.read_values_to_list(), vec![5, 5, 8]); // a late record does not go back
    /// ```
    pub fn stream_time(&self) -> i64 {
        self.task.stream_time
    }

    /// The current wall-clock time in milliseconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    ///
    /// /// Replaces the value with the wall-clock time of processing.
    /// struct Now;
    /// impl Processor<String, String, String, i64> for Now {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let now = ctx.wall_clock_time();
    ///         ctx.forward(record.with_value(now))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").process(|| Now, &[]).to("out");
    /// let topology = builder.build().unwrap();
    /// let driver = TestDriver::with_wall_clock(&topology, StreamsConfig::new("n"), 1_000)
    ///     .unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// input.pipe_input_at("k".into(), "v".into(), 0);
    /// driver.advance_wall_clock_time(Duration::from_millis(500)).unwrap();
    /// input.pipe_input_at("k".into(), "v".into(), 0);
    /// let out = driver.create_output_topic::<String, i64>("out");
    /// assert_eq!(out.read_values_to_list(), vec![1_000, 1_500]);
    /// ```
    pub fn wall_clock_time(&self) -> i64 {
        self.task.wall_clock()
    }

    /// The timestamp of the record (or punctuation) being processed.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    ///
    /// /// Replaces the value with the timestamp of the record.
    /// struct Timestamp;
    /// impl Processor<String, String, String, i64> for Timestamp {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         assert_eq!(ctx.timestamp(), record.timestamp);
    ///         let t = ctx.timestamp();
    ///         ctx.forward(record.with_value(t))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").process(|| Timestamp, &[]).to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// for t in [5, 3] {
    ///     input.pipe_input_at("k".into(), "v".into(), t);
    /// }
    /// let out = driver.create_output_topic::<String, i64>("out");
    /// assert_eq!(out.read_values_to_list(), vec![5, 3]); // the record's own time, not stream time
    /// ```
    pub fn timestamp(&self) -> i64 {
        self.task.record_timestamp
    }

    /// Topic, partition and offset of the source record, when processing one (not in a
    /// punctuation).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Punctuation, PunctuationType};
    /// use kstreams::processor::Record;
    ///
    /// /// Emits the source offset, or -1 when there is no source record.
    /// struct Offsets;
    /// impl Processor<String, String, String, i64> for Offsets {
    ///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>)
    ///             -> Result<(), BoxError> {
    ///         ctx.schedule(Duration::from_millis(10), PunctuationType::WallClockTime);
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let offset = ctx.record_metadata().map_or(-1, |m| m.offset);
    ///         ctx.forward(record.with_value(offset))
    ///     }
    ///     fn punctuate(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                  p: Punctuation) -> Result<(), BoxError> {
    ///         let offset = ctx.record_metadata().map_or(-1, |m| m.offset);
    ///         ctx.forward(Record::new("tick".into(), offset, p.timestamp))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").process(|| Offsets, &[]).to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("m")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// input.pipe_input_at("k".into(), "v".into(), 0);
    /// input.pipe_input_at("k".into(), "v".into(), 1);
    /// driver.advance_wall_clock_time(Duration::from_millis(10)).unwrap();
    /// let out = driver.create_output_topic::<String, i64>("out");
    /// assert_eq!(out.read_values_to_list(), vec![0, 1, -1]);
    /// ```
    pub fn record_metadata(&self) -> Option<RecordMetadata> {
        self.task.current.as_ref().map(|r| RecordMetadata {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
        })
    }

    /// The task running this processor.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    ///
    /// /// Replaces the value with the id of the task.
    /// struct Task;
    /// impl Processor<String, String, String, String> for Task {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let task = ctx.task_id().to_string();
    ///         ctx.forward(record.with_value(task))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// let input = builder.stream::<String, String>("in");
    /// input.process(|| Task, &[]).to("first");
    /// input.repartition().process(|| Task, &[]).to("second"); // a second sub-topology
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// driver.create_input_topic::<String, String>("in").pipe_input_at("k".into(), "v".into(), 0);
    /// // The test driver runs partition 0 of every sub-topology.
    /// let first = driver.create_output_topic::<String, String>("first").read_value();
    /// let second = driver.create_output_topic::<String, String>("second").read_value();
    /// assert_eq!((first.as_deref(), second.as_deref()), (Some("0_0"), Some("1_0")));
    /// ```
    pub fn task_id(&self) -> TaskId {
        self.task.task_id
    }

    /// The application id.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    ///
    /// /// Prefixes the key with the application id.
    /// struct Prefix;
    /// impl Processor<String, String, String, String> for Prefix {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let key = format!("{}:{}", ctx.application_id(), record.key);
    ///         ctx.forward(record.with_key(key))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").process(|| Prefix, &[]).to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("sh")).unwrap();
    /// driver.create_input_topic::<String, String>("in").pipe_input_at("o1".into(), "v".into(), 0);
    /// let out = driver.create_output_topic::<String, String>("out");
    /// assert_eq!(out.read_key_value(), Some(("sh:o1".to_string(), "v".to_string())));
    /// ```
    pub fn application_id(&self) -> &str {
        &self.task.application_id
    }

    /// The name of the processor running, as in [`Topology::describe`](crate::topology::Topology::describe).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    ///
    /// /// Replaces the value with the name of this processor.
    /// struct Name;
    /// impl Processor<String, String, String, String> for Name {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let name = ctx.processor_name().to_string();
    ///         ctx.forward(record.with_value(name))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").process(|| Name, &[]).to("out");
    /// let topology = builder.build().unwrap();
    /// let driver = TestDriver::new(&topology, StreamsConfig::new("n")).unwrap();
    /// driver.create_input_topic::<String, String>("in").pipe_input_at("k".into(), "v".into(), 0);
    /// let name = driver.create_output_topic::<String, String>("out").read_value().unwrap();
    /// assert_eq!(name, "KSTREAM-PROCESSOR-0000000001");
    /// assert!(topology.describe().to_string().contains(&format!("Processor: {name}")));
    /// ```
    pub fn processor_name(&self) -> &str {
        self.name
    }

    /// Sends the source record to the dead-letter topic with this error (and this processor's
    /// name) in its headers; processing goes on.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::{dead_letter, processor::{Processor, ProcessorContext, Record}};
    ///
    /// /// Parses amounts; text that is no number goes to the dead-letter topic.
    /// struct Parse;
    /// impl Processor<String, String, String, i64> for Parse {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         match record.value.parse::<i64>() {
    ///             Ok(n) => ctx.forward(record.with_value(n)),
    ///             Err(e) => {
    ///                 ctx.dead_letter(&e);
    ///                 Ok(())
    ///             }
    ///         }
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").process(|| Parse, &[]).to("amounts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("pay")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// input.pipe_key_values([("a".to_string(), "12".to_string()), ("b".into(), "twelve".into())]);
    /// let amounts = driver.create_output_topic::<String, i64>("amounts");
    /// assert_eq!(amounts.read_values_to_list(), vec![12]);
    /// let dead = driver.create_output_topic::<String, String>("pay-dlq").read_record().unwrap();
    /// assert_eq!(dead.value, "twelve");
    /// let header = |name| dead.headers.last_str(name);
    /// assert_eq!(header(dead_letter::ERROR_MESSAGE), Some("invalid digit found in string"));
    /// assert_eq!(header(dead_letter::ERROR_PROCESSOR), Some("KSTREAM-PROCESSOR-0000000001"));
    /// ```
    pub fn dead_letter(&mut self, error: &dyn std::fmt::Display) {
        self.task.dead_letter("processing", self.name, error)
    }

    /// Counts one late record, dropped by a windowed operator.
    /// The byte bound of a connected store's write cache; `0` when it is not cached.
    pub(crate) fn store_cache_bytes(&self, name: &str) -> Result<usize, StoreError> {
        self.task.stores.cache_bytes(name)
    }

    pub(crate) fn record_late(&mut self) {
        self.task.metrics.late_records_dropped += 1;
    }

    pub(crate) fn task_mut(&mut self) -> &mut TaskContext {
        self.task
    }
}
