//! [`TestDriver`]: runs a topology deterministically in memory, with no broker (Kafka
//! Streams' `TopologyTestDriver` is the model).
//!
//! Pipe records with explicit timestamps into input topics, read what the topology wrote
//! from output topics, look into any state store, and move the simulated wall clock to fire
//! wall-clock punctuations. Every topic has one partition; records written to a topic the
//! topology also reads (repartition topics, or a user topic read back) are processed right
//! after the record that caused them, before the pipe call returns.
//!
//! ```
//! use kstreams::config::StreamsConfig;
//! use kstreams::dsl::StreamsBuilder;
//! use kstreams::testing::TestDriver;
//!
//! let builder = StreamsBuilder::new();
//! builder.stream::<String, String>("in").map_values(|v| v.to_uppercase()).to("out");
//! let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("app")).unwrap();
//! let input = driver.create_input_topic::<String, String>("in");
//! let output = driver.create_output_topic::<String, String>("out");
//! input.pipe_input_at("k".to_string(), "hello".to_string(), 10);
//! assert_eq!(output.read_key_value(), Some(("k".to_string(), "HELLO".to_string())));
//! ```

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::StreamsConfig;
use crate::error::StreamsError;
use crate::processor::Headers;
use crate::runtime::task::{ConsumerRecord, ProducerRecord, Task, TaskEnv};
use crate::runtime::TaskMetrics;
use crate::serde::{DefaultSerde, SerdeError, SerdeRef};
use crate::state::{
    KeyValueStore, StoreError, StoreSettings, StoreType, TaskDirectory, TimestampedKeyValueStore,
    WindowStore,
};
use crate::topology::Topology;

struct DriverState {
    config: StreamsConfig,
    tasks: Vec<Task>,
    /// Full topic name → index of the task that reads it.
    readers: HashMap<String, usize>,
    outputs: HashMap<Arc<str>, VecDeque<ProducerRecord>>,
    next_offset: HashMap<Arc<str>, i64>,
    wall_clock: i64,
    // Dropped after the tasks (fields drop in order), so stores close before their files go.
    _directories: Vec<TaskDirectory>,
    _state_dir: Option<TestStateDir>,
}

/// A test driver's directory for persistent stores, removed when the driver is dropped.
struct TestStateDir(std::path::PathBuf);

impl Drop for TestStateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl DriverState {
    fn offset(&mut self, topic: &Arc<str>) -> i64 {
        let next = match self.next_offset.get_mut(topic) {
            Some(next) => next,
            None => self.next_offset.entry(topic.clone()).or_insert(0),
        };
        let offset = *next;
        *next += 1;
        offset
    }

    /// Processes a record and everything it causes on topics the topology reads.
    fn pipe(&mut self, first: ConsumerRecord) -> Result<(), StreamsError> {
        let mut queue = VecDeque::from([first]);
        while let Some(record) = queue.pop_front() {
            let task = *self
                .readers
                .get(&*record.topic)
                .ok_or_else(|| StreamsError::UnknownTopic(record.topic.to_string()))?;
            // Like Kafka Streams' test driver, commit after every record: caches are
            // flushed, so changelogs and stores are up to date when the pipe call returns.
            let result = self.tasks[task].process(record);
            let flushed = self.tasks[task].flush_stores();
            self.route(task, &mut queue);
            result?;
            flushed?;
        }
        Ok(())
    }

    fn route(&mut self, task: usize, queue: &mut VecDeque<ConsumerRecord>) {
        for out in self.tasks[task].take_output() {
            let offset = self.offset(&out.topic);
            if self.readers.contains_key(&*out.topic) {
                queue.push_back(ConsumerRecord {
                    topic: out.topic.clone(),
                    partition: 0,
                    offset,
                    timestamp: out.timestamp,
                    key: out.key.clone(),
                    value: out.value.clone(),
                    headers: out.headers.clone(),
                });
            }
            match self.outputs.get_mut(&out.topic) {
                Some(queue) => queue.push_back(out),
                None => {
                    self.outputs
                        .insert(out.topic.clone(), VecDeque::from([out]));
                }
            }
        }
    }

    fn advance_wall_clock(&mut self, now: i64) -> Result<(), StreamsError> {
        self.wall_clock = now;
        let mut queue = VecDeque::new();
        for task in 0..self.tasks.len() {
            let result = self.tasks[task].advance_wall_clock(now);
            let flushed = self.tasks[task].flush_stores();
            self.route(task, &mut queue);
            result?;
            flushed?;
        }
        while let Some(record) = queue.pop_front() {
            self.pipe(record)?;
        }
        Ok(())
    }

    fn store_task(&self, name: &str) -> Result<&Task, StoreError> {
        self.tasks
            .iter()
            .find(|t| t.ctx.stores.contains(name))
            .ok_or_else(|| StoreError::NotFound(name.to_string()))
    }
}

/// Runs a [`Topology`] in memory (Kafka Streams' `TopologyTestDriver`). Cheap to clone;
/// clones share the same state.
///
/// One task per sub-topology, every topic with one partition; a pipe call returns when the
/// record and everything it caused (repartition hops included) has been processed. The
/// driver commits after every record, as Kafka Streams' does: processors flush (so
/// aggregations forward every update) and the stores' caches go down. Changelogs are written
/// but never read back: the driver does not restore.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("words")
///     .group_by(|_, word| word.clone())
///     .count_with(Materialized::named("counts"));
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("wc")).unwrap();
/// let words = driver.create_input_topic::<String, String>("words");
/// words.pipe_input_at("line-1".into(), "kafka".into(), 0);
/// words.pipe_input_at("line-2".into(), "kafka".into(), 1);
/// let counts = driver.key_value_store::<String, i64>("counts").unwrap();
/// assert_eq!(counts.get(&"kafka".to_string()).unwrap(), Some(2));
/// assert_eq!(driver.produced_topic_names(), vec!["wc-counts-changelog", "wc-counts-repartition"]);
/// // Two records from "words", two from the repartition topic.
/// assert_eq!(driver.metrics().records_processed, 4);
/// ```
#[derive(Clone)]
pub struct TestDriver {
    state: Rc<RefCell<DriverState>>,
}

impl TestDriver {
    /// Builds one task per sub-topology (partition 0) and initializes them, with the
    /// simulated wall clock at 0.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("app")).unwrap();
    /// assert_eq!(driver.wall_clock_time(), 0);
    /// assert!(driver.produced_topic_names().is_empty()); // nothing is written before a pipe
    /// ```
    pub fn new(topology: &Topology, config: StreamsConfig) -> Result<TestDriver, StreamsError> {
        Self::with_wall_clock(topology, config, 0)
    }

    /// Like [`new`](Self::new), with the wall clock starting at `wall_clock_ms`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let topology = builder.build().unwrap();
    /// let driver = TestDriver::with_wall_clock(&topology, StreamsConfig::new("w"), 1_000_000).unwrap();
    /// assert_eq!(driver.wall_clock_time(), 1_000_000);
    /// driver.advance_wall_clock_time(Duration::from_secs(1)).unwrap();
    /// assert_eq!(driver.wall_clock_time(), 1_001_000);
    /// ```
    pub fn with_wall_clock(
        topology: &Topology,
        config: StreamsConfig,
        wall_clock_ms: i64,
    ) -> Result<TestDriver, StreamsError> {
        let inner = &topology.inner;
        let settings = StoreSettings::new(&config);
        // Persistent stores get a fresh directory of their own, removed with the driver.
        let persistent = inner
            .stores
            .values()
            .any(|def| def.store_type(&settings) != StoreType::InMemory);
        let state_dir = if persistent {
            let dir = config.state_dir.join(format!(
                "{}-test-driver-{}",
                config.application_id,
                uuid::Uuid::new_v4().simple()
            ));
            Some(TestStateDir(dir))
        } else {
            None
        };
        let directory = |sub: usize| -> Result<Option<TaskDirectory>, StreamsError> {
            state_dir
                .as_ref()
                .map(|d| TaskDirectory::unlocked(d.0.join(format!("{sub}_0"))))
                .transpose()
                .map_err(StreamsError::from)
        };
        let mut tasks = Vec::new();
        let mut directories = Vec::new();
        let mut readers = HashMap::new();
        let mut globals = Vec::new();
        let order = inner
            .global
            .into_iter()
            .chain((0..inner.subtopologies.len()).filter(|s| Some(*s) != inner.global));
        for sub in order {
            let dir = directory(sub)?;
            let env = TaskEnv {
                settings: &settings,
                directory: dir.as_ref(),
            };
            let task = Task::new(inner, sub, 0, &config, wall_clock_ms, &globals, &env)?;
            if Some(sub) == inner.global {
                globals.extend(task.ctx.stores.entries().cloned());
            }
            for topic in task.source_topics() {
                readers.insert(topic.to_string(), tasks.len());
            }
            tasks.push(task);
            directories.extend(dir);
        }
        let mut state = DriverState {
            config,
            tasks,
            readers,
            outputs: HashMap::new(),
            next_offset: HashMap::new(),
            wall_clock: wall_clock_ms,
            _directories: directories,
            _state_dir: state_dir,
        };
        let mut queue = VecDeque::new();
        for task in 0..state.tasks.len() {
            state.tasks[task].flush_stores()?;
            state.route(task, &mut queue);
        }
        while let Some(record) = queue.pop_front() {
            state.pipe(record)?;
        }
        Ok(TestDriver {
            state: Rc::new(RefCell::new(state)),
        })
    }

    /// An input topic with the types' default serdes.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").filter(|_, n| *n > 0).to("positive");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("in")).unwrap();
    /// let amounts = driver.create_input_topic::<String, i64>("amounts");
    /// amounts.pipe_input_at("a".into(), -5, 0);
    /// amounts.pipe_input_at("b".into(), 7, 1);
    /// let positive = driver.create_output_topic::<String, i64>("positive");
    /// assert_eq!(positive.read_key_values_to_list(), vec![("b".to_string(), 7)]);
    /// ```
    pub fn create_input_topic<K: DefaultSerde, V: DefaultSerde>(
        &self,
        topic: &str,
    ) -> TestInputTopic<K, V> {
        self.create_input_topic_with(topic, K::default_serde(), V::default_serde())
    }

    /// An input topic with explicit serdes.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let json = Consumed::with(Serdes::string(), Serdes::json::<Vec<i64>>());
    /// builder
    ///     .stream_with("baskets", json)
    ///     .map_values(|items| items.iter().sum::<i64>())
    ///     .to("sums");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("in")).unwrap();
    /// // Vec<i64> has no default serde: name the ones the topology reads with.
    /// let baskets = driver.create_input_topic_with("baskets", Serdes::string(), Serdes::json());
    /// baskets.pipe_input_at("ann".to_string(), vec![3, 4], 0);
    /// let totals = driver.create_output_topic::<String, i64>("sums");
    /// assert_eq!(totals.read_value(), Some(7));
    /// ```
    pub fn create_input_topic_with<K, V>(
        &self,
        topic: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            driver: self.clone(),
            topic: topic.into(),
            key_serde,
            value_serde,
            time: Cell::new(0),
            advance: Cell::new(0),
        }
    }

    /// An output topic with the types' default serdes.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("words").map_values(|w| w.len() as i64).to("lengths");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("out")).unwrap();
    /// let words = driver.create_input_topic::<String, String>("words");
    /// words.pipe_input_at("k".into(), "four".into(), 3);
    /// let lengths = driver.create_output_topic::<String, i64>("lengths");
    /// assert_eq!(lengths.read_key_value(), Some(("k".to_string(), 4)));
    /// ```
    pub fn create_output_topic<K: DefaultSerde, V: DefaultSerde>(
        &self,
        topic: &str,
    ) -> TestOutputTopic<K, V> {
        self.create_output_topic_with(topic, K::default_serde(), V::default_serde())
    }

    /// An output topic with explicit serdes. Internal topics are read by their full name
    /// (`<application-id>-<name>`).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("words").group_by(|_, w| w.clone()).count();
    /// let topology = builder.build().unwrap();
    /// let driver = TestDriver::new(&topology, StreamsConfig::new("wc")).unwrap();
    /// let words = driver.create_input_topic::<String, String>("words");
    /// words.pipe_input_at("l1".into(), "hi".into(), 0);
    /// let topics = driver.produced_topic_names();
    /// let name = topics.iter().find(|t| t.ends_with("-repartition")).unwrap();
    /// // The repartition topic carries the record re-keyed by the word; read its value as bytes.
    /// let repartition = driver.create_output_topic_with(name, Serdes::string(), Serdes::bytes());
    /// assert_eq!(repartition.read_key_value(), Some(("hi".to_string(), b"hi".to_vec())));
    /// ```
    pub fn create_output_topic_with<K, V>(
        &self,
        topic: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            driver: self.clone(),
            topic: topic.to_string(),
            key_serde,
            value_serde,
        }
    }

    /// Pipes a record given as bytes (for malformed input), returning processing errors.
    ///
    /// ```
    /// use kstreams::config::{ErrorPolicy, StreamsConfig};
    /// use kstreams::{dsl::StreamsBuilder, processor::Headers, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").to("copy");
    /// let topology = builder.build().unwrap();
    /// // Three bytes are no 8-byte i64.
    /// let (key, bad) = (Some(&b"k"[..]), Some(&b"abc"[..]));
    /// let strict = TestDriver::new(&topology, StreamsConfig::new("strict")).unwrap();
    /// assert!(strict.pipe_raw("amounts", key, bad, 0, Headers::new()).is_err());
    /// let config = StreamsConfig::new("lenient").deserialization_policy(ErrorPolicy::DeadLetter);
    /// let lenient = TestDriver::new(&topology, config).unwrap();
    /// lenient.pipe_raw("amounts", key, bad, 0, Headers::new()).unwrap();
    /// let dead = lenient.create_output_topic::<String, Vec<u8>>("lenient-dlq").read_record().unwrap();
    /// assert_eq!(dead.value, b"abc".to_vec());
    /// assert_eq!(dead.headers.last_str(kstreams::dead_letter::ERROR_KIND), Some("deserialization"));
    /// ```
    pub fn pipe_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<(), StreamsError> {
        let mut state = self.state.borrow_mut();
        let topic: Arc<str> = topic.into();
        let offset = state.offset(&topic);
        state.pipe(ConsumerRecord {
            topic,
            partition: 0,
            offset,
            timestamp,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers,
        })
    }

    /// Moves the simulated wall clock forward and fires due wall-clock punctuations (see
    /// [`ProcessorContext::schedule`](crate::processor::ProcessorContext::schedule) for an
    /// example).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let every_100ms = Duration::from_millis(100);
    /// let close = Suppressed::until_window_closes().with_wall_clock_close(every_100ms);
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(1)))
    ///     .count().suppress(close).to_stream().to("final-counts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("ann".into(), "/".into(), 0);
    /// let out = driver.create_output_topic::<Windowed<String>, Option<i64>>("final-counts");
    /// driver.advance_wall_clock_time(Duration::from_millis(500)).unwrap();
    /// assert!(out.is_empty()); // the window [0, 1000) is still open
    /// driver.advance_wall_clock_time(Duration::from_millis(600)).unwrap(); // now it closes
    /// assert_eq!(out.read_value(), Some(Some(1)));
    /// ```
    pub fn advance_wall_clock_time(&self, by: Duration) -> Result<(), StreamsError> {
        let mut state = self.state.borrow_mut();
        let now = state.wall_clock.saturating_add(by.as_millis() as i64);
        state.advance_wall_clock(now)
    }

    /// The simulated wall clock, in milliseconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// assert_eq!(driver.wall_clock_time(), 0);
    /// // Record timestamps are event time: they leave the wall clock alone.
    /// let input = driver.create_input_topic::<String, String>("in");
    /// input.pipe_input_at("k".into(), "v".into(), 9_000);
    /// assert_eq!(driver.wall_clock_time(), 0);
    /// driver.advance_wall_clock_time(Duration::from_secs(1)).unwrap();
    /// assert_eq!(driver.wall_clock_time(), 1_000);
    /// ```
    pub fn wall_clock_time(&self) -> i64 {
        self.state.borrow().wall_clock
    }

    /// A key-value store of the topology (for a table's store: the values without
    /// timestamps). See [`KeyValueStore`] for an example.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("kv")).unwrap();
    /// let stock = driver.create_input_topic::<String, Option<i64>>("stock");
    /// stock.pipe_input_at("apple".into(), Some(3), 0);
    /// stock.pipe_input_at("pear".into(), Some(5), 1);
    /// stock.pipe_input_at("apple".into(), None, 2); // a tombstone deletes the row
    /// let store = driver.key_value_store::<String, i64>("stock").unwrap();
    /// assert_eq!(store.all().unwrap(), vec![("pear".to_string(), 5)]);
    /// assert!(driver.key_value_store::<String, i64>("no-such-store").is_err());
    /// ```
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStore<K, V>, StoreError> {
        self.state
            .borrow()
            .store_task(name)?
            .ctx
            .stores
            .key_value_store(name)
    }

    /// A timestamped key-value store of the topology (the kind tables and aggregations use).
    /// See [`ValueAndTimestamp`](crate::state::ValueAndTimestamp) for an example.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .count_with(Materialized::named("clicks"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("ts")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("ann".into(), "/".into(), 5);
    /// clicks.pipe_input_at("ann".into(), "/cart".into(), 9);
    /// let store = driver.timestamped_key_value_store::<String, i64>("clicks").unwrap();
    /// let ann = store.get(&"ann".to_string()).unwrap().unwrap();
    /// assert_eq!((ann.value, ann.timestamp), (2, 9)); // the time of the last update
    /// ```
    pub fn timestamped_key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<TimestampedKeyValueStore<K, V>, StoreError> {
        self.state
            .borrow()
            .store_task(name)?
            .ctx
            .stores
            .timestamped_key_value_store(name)
    }

    /// A window store of the topology (for a windowed aggregation's store: the values
    /// without timestamps). See [`WindowStore`] for an example.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(100)))
    ///     // Retention is size plus grace unless set: keep older windows for a minute.
    ///     .count_with(Materialized::named("per-100ms").with_retention(Duration::from_secs(60)));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("ws")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// for t in [10, 20, 150] {
    ///     clicks.pipe_input_at("ann".into(), "/".into(), t);
    /// }
    /// let store = driver.window_store::<String, i64>("per-100ms").unwrap();
    /// let ann = store.fetch_range(&"ann".to_string(), 0, 1_000).unwrap();
    /// assert_eq!(ann, vec![(0, 2), (100, 1)]); // (window start, count)
    /// ```
    pub fn window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<WindowStore<K, V>, StoreError> {
        self.state
            .borrow()
            .store_task(name)?
            .ctx
            .stores
            .window_store(name)
    }

    /// A session store of the topology (for a session aggregation's store). See
    /// [`SessionStore`](crate::state::SessionStore) for an example.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let visit = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
    /// builder
    ///     .stream::<String, i64>("spend")
    ///     .group_by_key()
    ///     .windowed_by_session(visit)
    ///     .aggregate_with(|| 0_i64, |_, amount, sum| sum + amount, |_, a, b| a + b,
    ///         Materialized::named("spend-per-visit"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("ss")).unwrap();
    /// let spend = driver.create_input_topic::<String, i64>("spend");
    /// for (amount, t) in [(5, 0), (7, 8), (1, 50)] {
    ///     spend.pipe_input_at("ann".into(), amount, t);
    /// }
    /// let visits = driver.session_store::<String, i64>("spend-per-visit").unwrap();
    /// let sessions: Vec<(i64, i64, i64)> = visits.fetch(&"ann".to_string()).unwrap()
    ///     .into_iter().map(|s| (s.start, s.end, s.value)).collect();
    /// assert_eq!(sessions, vec![(0, 8, 12), (50, 50, 1)]);
    /// ```
    pub fn session_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<crate::state::SessionStore<K, V>, StoreError> {
        self.state
            .borrow()
            .store_task(name)?
            .ctx
            .stores
            .session_store(name)
    }

    /// Counters summed over all tasks.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, String>("users", Materialized::default());
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("m")).unwrap();
    /// let users = driver.create_input_topic::<Option<String>, Option<String>>("users");
    /// users.pipe_input_at(Some("u1".into()), Some("Ann".into()), 0);
    /// users.pipe_input_at(None, Some("nobody".into()), 1); // a table record needs a key
    /// let metrics = driver.metrics();
    /// assert_eq!((metrics.records_processed, metrics.dropped_records), (2, 1));
    /// ```
    pub fn metrics(&self) -> TaskMetrics {
        let mut total = TaskMetrics::default();
        for task in &self.state.borrow().tasks {
            total += task.ctx.metrics;
        }
        total
    }

    /// Names of the topics written so far, sorted (see [`TestDriver`] for an example).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let words = builder.stream::<String, String>("words");
    /// words.to("all");
    /// words.filter(|_, w| w.len() > 5).to("long");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("p")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("words");
    /// input.pipe_input_at("k".into(), "hi".into(), 0);
    /// assert_eq!(driver.produced_topic_names(), vec!["all"]);
    /// input.pipe_input_at("k".into(), "streams".into(), 1);
    /// assert_eq!(driver.produced_topic_names(), vec!["all", "long"]);
    /// ```
    pub fn produced_topic_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .state
            .borrow()
            .outputs
            .keys()
            .map(|t| t.to_string())
            .collect();
        names.sort();
        names
    }

    /// The driver's configuration.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let config = StreamsConfig::new("cfg").with_commit_interval(Duration::from_secs(1));
    /// let driver = TestDriver::new(&builder.build().unwrap(), config).unwrap();
    /// assert_eq!(driver.config().application_id, "cfg");
    /// assert_eq!(driver.config().commit_interval, Some(Duration::from_secs(1)));
    /// ```
    pub fn config(&self) -> StreamsConfig {
        self.state.borrow().config.clone()
    }
}

/// A record as the test driver reads or writes it (Kafka Streams' `TestRecord`).
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::{TestDriver, TestRecord}};
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("in").to("out");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
/// let mut record = TestRecord::new("k".to_string(), "v".to_string(), 42);
/// record.headers.add("trace", "t-1");
/// driver.create_input_topic::<String, String>("in").pipe_record(record.clone());
/// assert_eq!(driver.create_output_topic::<String, String>("out").read_record(), Some(record));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TestRecord<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// The timestamp, in milliseconds.
    pub timestamp: i64,
    /// The headers.
    pub headers: Headers,
}

impl<K, V> TestRecord<K, V> {
    /// A record without headers.
    ///
    /// ```
    /// use kstreams::testing::TestRecord;
    /// let record = TestRecord::new("order-1", 250_i64, 1_000);
    /// assert_eq!((record.key, record.value, record.timestamp), ("order-1", 250, 1_000));
    /// assert!(record.headers.is_empty());
    /// ```
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        TestRecord {
            key,
            value,
            timestamp,
            headers: Headers::new(),
        }
    }
}

/// Pipes typed records into one topic of a [`TestDriver`] (Kafka Streams'
/// `TestInputTopic`), with explicit timestamps or the topic's own advancing time.
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder.stream::<Option<String>, String>("in").to("out");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("i")).unwrap();
/// let input = driver.create_input_topic::<Option<String>, String>("in");
/// input.set_time(1_000, Duration::from_millis(10));
/// input.pipe_input(Some("a".into()), "x".into()); // at 1000
/// input.pipe_key_values([(Some("b".into()), "y".into())]); // at 1010
/// input.advance_time(Duration::from_millis(100)); // 1020 + 100
/// input.pipe_input(None, "z".into()); // at 1120
/// input.pipe_value_at("w".into(), 5); // null key, at 5
/// let out = driver.create_output_topic::<Option<String>, String>("out");
/// let times: Vec<i64> = out.read_records_to_list().into_iter().map(|r| r.timestamp).collect();
/// assert_eq!(times, vec![1_000, 1_010, 1_120, 5]);
/// ```
pub struct TestInputTopic<K, V> {
    driver: TestDriver,
    topic: Arc<str>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    time: Cell<i64>,
    advance: Cell<i64>,
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    /// Sets the timestamp of the next record piped without one, and how much it moves after
    /// each such record.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// input.set_time(1_000, Duration::from_millis(5));
    /// input.pipe_input("a".into(), "x".into());
    /// input.pipe_input("b".into(), "y".into());
    /// let out = driver.create_output_topic::<String, String>("out");
    /// let times: Vec<i64> = out.read_records_to_list().iter().map(|r| r.timestamp).collect();
    /// assert_eq!(times, vec![1_000, 1_005]);
    /// ```
    pub fn set_time(&self, start: i64, auto_advance: Duration) {
        self.time.set(start);
        self.advance.set(auto_advance.as_millis() as i64);
    }

    /// Moves the topic's time forward.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// input.pipe_input("a".into(), "x".into()); // the topic's time starts at 0
    /// input.advance_time(Duration::from_secs(1));
    /// input.pipe_input("b".into(), "y".into());
    /// let out = driver.create_output_topic::<String, String>("out");
    /// let times: Vec<i64> = out.read_records_to_list().iter().map(|r| r.timestamp).collect();
    /// assert_eq!(times, vec![0, 1_000]);
    /// ```
    pub fn advance_time(&self, by: Duration) {
        self.time.set(self.time.get() + by.as_millis() as i64);
    }

    fn next_time(&self) -> i64 {
        let t = self.time.get();
        self.time.set(t + self.advance.get());
        t
    }

    /// Pipes a record; returns the error if processing failed.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, serde::Serdes};
    /// use kstreams::testing::{TestDriver, TestRecord};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("numbers").to("copy");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// // Write strings into a topic the topology reads as i64 (its default policy: fail).
    /// let wrong = driver.create_input_topic_with("numbers", Serdes::string(), Serdes::string());
    /// let err = wrong.try_pipe_record(TestRecord::new("k".into(), "not a number".into(), 0)).unwrap_err();
    /// assert!(err.to_string().starts_with("cannot deserialize the value of the record at numbers-0@0"));
    /// ```
    pub fn try_pipe_record(&self, record: TestRecord<K, V>) -> Result<(), StreamsError> {
        let key = self.serialize(&*self.key_serde, &record.key, "key")?;
        let value = self.serialize(&*self.value_serde, &record.value, "value")?;
        self.driver.pipe_raw(
            &self.topic,
            key.as_deref(),
            value.as_deref(),
            record.timestamp,
            record.headers,
        )
    }

    fn serialize<T: 'static>(
        &self,
        serde: &dyn crate::serde::Serde<T>,
        v: &T,
        part: &'static str,
    ) -> Result<Option<Vec<u8>>, StreamsError> {
        serde
            .serialize(v)
            .map_err(|source| StreamsError::Serialization {
                topic: self.topic.to_string(),
                part,
                source,
            })
    }

    /// Pipes a record.
    ///
    /// # Panics
    /// If processing fails (use [`try_pipe_record`](Self::try_pipe_record) to test failures).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder};
    /// use kstreams::testing::{TestDriver, TestRecord};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").map_values(|v| v.to_uppercase()).to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let mut record = TestRecord::new("k".to_string(), "hi".to_string(), 42);
    /// record.headers.add("source", "web");
    /// driver.create_input_topic::<String, String>("in").pipe_record(record);
    /// let out = driver.create_output_topic::<String, String>("out").read_record().unwrap();
    /// assert_eq!((out.value.as_str(), out.timestamp), ("HI", 42));
    /// assert_eq!(out.headers.last_str("source"), Some("web")); // headers travel with the record
    /// ```
    pub fn pipe_record(&self, record: TestRecord<K, V>) {
        if let Err(e) = self.try_pipe_record(record) {
            panic!(
                "processing a record piped into `{}` failed: {e}",
                self.topic
            );
        }
    }

    /// Pipes a record at the given timestamp.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("in").map_values(|n| n * 2).to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// driver.create_input_topic::<String, i64>("in").pipe_input_at("k".into(), 21, 7);
    /// let record = driver.create_output_topic::<String, i64>("out").read_record().unwrap();
    /// assert_eq!((record.key.as_str(), record.value, record.timestamp), ("k", 42, 7));
    /// ```
    pub fn pipe_input_at(&self, key: K, value: V, timestamp: i64) {
        self.pipe_record(TestRecord::new(key, value, timestamp))
    }

    /// Pipes a record at the topic's current time, then advances that time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// input.set_time(100, Duration::from_millis(10));
    /// input.pipe_input("a".into(), "x".into());
    /// input.pipe_input("b".into(), "y".into());
    /// let out = driver.create_output_topic::<String, String>("out");
    /// assert_eq!(out.read_record().unwrap().timestamp, 100);
    /// assert_eq!(out.read_record().unwrap().timestamp, 110);
    /// ```
    pub fn pipe_input(&self, key: K, value: V) {
        let t = self.next_time();
        self.pipe_input_at(key, value, t)
    }

    /// Pipes a record with a `null` key at the given timestamp.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<Option<String>, String>("in").to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let input = driver.create_input_topic::<Option<String>, String>("in");
    /// input.pipe_value_at("no key".into(), 3);
    /// let out = driver.create_output_topic::<Option<String>, String>("out");
    /// assert_eq!(out.read_key_value(), Some((None, "no key".to_string())));
    /// ```
    pub fn pipe_value_at(&self, value: V, timestamp: i64) {
        let result = self
            .serialize(&*self.value_serde, &value, "value")
            .and_then(|v| {
                self.driver
                    .pipe_raw(&self.topic, None, v.as_deref(), timestamp, Headers::new())
            });
        if let Err(e) = result {
            panic!(
                "processing a record piped into `{}` failed: {e}",
                self.topic
            );
        }
    }

    /// Pipes records at the topic's current time, advancing it after each.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("in").filter(|_, n| n % 2 == 0).to("even");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let input = driver.create_input_topic::<String, i64>("in");
    /// input.set_time(0, Duration::from_millis(1));
    /// input.pipe_key_values((1..=4).map(|n| (format!("k{n}"), n)));
    /// let even = driver.create_output_topic::<String, i64>("even").read_records_to_list();
    /// let got: Vec<(i64, i64)> = even.iter().map(|r| (r.value, r.timestamp)).collect();
    /// assert_eq!(got, vec![(2, 1), (4, 3)]);
    /// ```
    pub fn pipe_key_values(&self, records: impl IntoIterator<Item = (K, V)>) {
        for (k, v) in records {
            self.pipe_input(k, v);
        }
    }
}

/// Reads typed records from one topic of a [`TestDriver`], oldest first (Kafka Streams'
/// `TestOutputTopic`). Reading consumes: each record is read once.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, i64>("in").map_values(|n| n * 10).to("out");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("o")).unwrap();
/// let input = driver.create_input_topic::<String, i64>("in");
/// input.pipe_key_values([("a".to_string(), 1), ("b".to_string(), 2), ("a".to_string(), 3)]);
/// let out = driver.create_output_topic::<String, i64>("out");
/// assert_eq!(out.queue_size(), 3);
/// assert_eq!(out.read_key_value(), Some(("a".to_string(), 10)));
/// let latest = out.read_key_values_to_map(); // the rest, latest value per key
/// assert_eq!((latest["a"], latest["b"]), (30, 20));
/// assert!(out.is_empty());
/// assert_eq!(out.read_value(), None);
/// ```
pub struct TestOutputTopic<K, V> {
    driver: TestDriver,
    topic: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    /// The next record, or an error when its bytes do not deserialize.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, serde::SerdeError};
    /// use kstreams::testing::TestDriver;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// input.pipe_input_at("k".into(), "abc".into(), 0);
    /// // Read the string back as an i64: three bytes are no 8-byte number.
    /// let wrong = driver.create_output_topic::<String, i64>("out");
    /// let err = wrong.try_read_record().unwrap_err();
    /// assert_eq!(err, SerdeError::WrongLength { expected: 8, actual: 3 });
    /// assert_eq!(wrong.try_read_record(), Ok(None)); // the bad record was consumed
    /// ```
    pub fn try_read_record(&self) -> Result<Option<TestRecord<K, V>>, SerdeError> {
        let next = self
            .driver
            .state
            .borrow_mut()
            .outputs
            .get_mut(self.topic.as_str())
            .and_then(VecDeque::pop_front);
        let Some(r) = next else { return Ok(None) };
        Ok(Some(TestRecord {
            key: self.key_serde.deserialize(r.key.as_deref())?,
            value: self.value_serde.deserialize(r.value.as_deref())?,
            timestamp: r.timestamp,
            headers: r.headers,
        }))
    }

    /// The next record.
    ///
    /// # Panics
    /// If the record does not deserialize with the topic's serdes.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// driver.create_input_topic::<String, String>("in").pipe_input_at("k".into(), "v".into(), 5);
    /// let out = driver.create_output_topic::<String, String>("out");
    /// let record = out.read_record().unwrap();
    /// assert_eq!((record.key.as_str(), record.value.as_str(), record.timestamp), ("k", "v", 5));
    /// assert_eq!(out.read_record(), None); // each record is read once
    /// ```
    pub fn read_record(&self) -> Option<TestRecord<K, V>> {
        match self.try_read_record() {
            Ok(r) => r,
            Err(e) => panic!("record on `{}` does not deserialize: {e}", self.topic),
        }
    }

    /// The next key and value.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").map(|k, v| (v, k)).to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// driver.create_input_topic::<String, String>("in").pipe_input_at("k".into(), "v".into(), 0);
    /// let out = driver.create_output_topic::<String, String>("out");
    /// assert_eq!(out.read_key_value(), Some(("v".to_string(), "k".to_string())));
    /// assert_eq!(out.read_key_value(), None);
    /// ```
    pub fn read_key_value(&self) -> Option<(K, V)> {
        self.read_record().map(|r| (r.key, r.value))
    }

    /// The next value.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").map_values(|v| v.len() as i64).to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// input.pipe_input_at("k".into(), "kafka".into(), 0);
    /// let out = driver.create_output_topic::<String, i64>("out");
    /// assert_eq!(out.read_value(), Some(5));
    /// assert_eq!(out.read_value(), None);
    /// ```
    pub fn read_value(&self) -> Option<V> {
        self.read_record().map(|r| r.value)
    }

    /// Every remaining record.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// input.pipe_input_at("a".into(), "x".into(), 20);
    /// input.pipe_input_at("b".into(), "y".into(), 10);
    /// let out = driver.create_output_topic::<String, String>("out");
    /// let records = out.read_records_to_list();
    /// let got: Vec<(&str, i64)> = records.iter().map(|r| (r.key.as_str(), r.timestamp)).collect();
    /// assert_eq!(got, vec![("a", 20), ("b", 10)]); // in the order written
    /// assert!(out.is_empty());
    /// ```
    pub fn read_records_to_list(&self) -> Vec<TestRecord<K, V>> {
        std::iter::from_fn(|| self.read_record()).collect()
    }

    /// Every remaining key and value.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("lines")
    ///     .flat_map_values(|line| line.split(' ').map(str::to_string).collect::<Vec<_>>())
    ///     .to("words");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let lines = driver.create_input_topic::<String, String>("lines");
    /// lines.pipe_input_at("l1".into(), "a b".into(), 0);
    /// let words = driver.create_output_topic::<String, String>("words").read_key_values_to_list();
    /// let (l1, a, b) = ("l1".to_string(), "a".to_string(), "b".to_string());
    /// assert_eq!(words, vec![(l1.clone(), a), (l1, b)]);
    /// ```
    pub fn read_key_values_to_list(&self) -> Vec<(K, V)> {
        std::iter::from_fn(|| self.read_key_value()).collect()
    }

    /// Every remaining value.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("in").map_values(|n| n * n).to("squares");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let input = driver.create_input_topic::<String, i64>("in");
    /// input.pipe_key_values([("a".to_string(), 2), ("b".to_string(), 3)]);
    /// let squares = driver.create_output_topic::<String, i64>("squares");
    /// assert_eq!(squares.read_values_to_list(), vec![4, 9]);
    /// assert!(squares.read_values_to_list().is_empty()); // already read
    /// ```
    pub fn read_values_to_list(&self) -> Vec<V> {
        std::iter::from_fn(|| self.read_value()).collect()
    }

    /// The latest value per key of every remaining record.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key().count().to_stream().to("counts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// for user in ["ann", "bob", "ann"] {
    ///     clicks.pipe_input_at(user.to_string(), "/".to_string(), 0);
    /// }
    /// let counts = driver.create_output_topic::<String, Option<i64>>("counts");
    /// let counts = counts.read_key_values_to_map();
    /// assert_eq!((counts["ann"], counts["bob"]), (Some(2), Some(1))); // the latest count per user
    /// ```
    pub fn read_key_values_to_map(&self) -> HashMap<K, V>
    where
        K: Eq + Hash,
    {
        self.read_key_values_to_list().into_iter().collect()
    }

    /// Number of unread records.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("q")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// input.pipe_input_at("a".into(), "x".into(), 0);
    /// input.pipe_input_at("b".into(), "y".into(), 1);
    /// let out = driver.create_output_topic::<String, String>("out");
    /// assert_eq!(out.queue_size(), 2);
    /// out.read_value();
    /// assert_eq!(out.queue_size(), 1);
    /// ```
    pub fn queue_size(&self) -> usize {
        self.driver
            .state
            .borrow()
            .outputs
            .get(self.topic.as_str())
            .map_or(0, VecDeque::len)
    }

    /// True when every record has been read.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("in").filter(|_, n| *n > 0).to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("q")).unwrap();
    /// let input = driver.create_input_topic::<String, i64>("in");
    /// let out = driver.create_output_topic::<String, i64>("out");
    /// input.pipe_input_at("k".into(), -1, 0); // filtered out
    /// assert!(out.is_empty());
    /// input.pipe_input_at("k".into(), 1, 1);
    /// assert!(!out.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.queue_size() == 0
    }
}
