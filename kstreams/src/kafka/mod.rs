//! [`KafkaStreams`]: runs a [`Topology`] on a Kafka cluster.
//!
//! On [`start`](KafkaStreams::start) the application checks that the topics it reads exist and
//! that joined topics are co-partitioned, creates its internal topics (repartition and
//! changelog, `<application-id>-<name>`) with the partition counts and configs the topology
//! needs, fills the stores of global tables, and starts its stream threads. Each thread is a
//! member of the consumer group `<application-id>` (range assignor, so partition `p` of
//! co-partitioned topics goes to one member) and runs one task per sub-topology and assigned
//! partition: it restores the task's stores from their changelogs (from the last checkpoint
//! for persistent stores), then processes records in timestamp order.
//!
//! Under [`AtLeastOnce`](crate::config::ProcessingGuarantee::AtLeastOnce) a commit flushes
//! the stores and the producer, then commits the consumer offsets and writes checkpoints.
//! Under [`ExactlyOnce`](crate::config::ProcessingGuarantee::ExactlyOnce) each thread has a
//! transactional producer; outputs, changelog writes and consumer offsets commit in one
//! transaction, and a failed transaction is aborted and processing resumes from the committed
//! offsets with state rebuilt from the changelogs.
//!
//! The running application answers interactive queries on its stores
//! ([`store`](KafkaStreams::store), [`window_store`](KafkaStreams::window_store)), says which
//! instance hosts a key ([`query_metadata_for_key`](KafkaStreams::query_metadata_for_key)),
//! streams a table's changes ([`subscribe`](KafkaStreams::subscribe)), and reports metrics
//! in Prometheus form ([`metrics_text`](KafkaStreams::metrics_text)).

mod collector;
mod global;
mod metrics;
mod query;
mod restore;
mod served_producer;
mod thread;
mod topics;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;

use crate::config::StreamsConfig;
use crate::error::StreamsError;
use crate::processor::TaskId;
use crate::state::{StateDirectory, StoreEntry, StoreSettings};
use crate::topology::Topology;

pub use metrics::MetricsSnapshot;
pub use query::{
    KeyQueryMetadata, ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore,
    TableChange, TableChanges,
};
pub use served_producer::ServedProducer;

/// The lifecycle of a [`KafkaStreams`] application (Kafka Streams' `KafkaStreams.State`):
/// `Created → Rebalancing ⇄ Running → PendingShutdown → NotRunning`, or `Error` when a thread
/// fails.
///
/// ```no_run
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, kafka::{KafkaStreams, State}};
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("in").to("out");
/// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("app"));
/// streams.set_state_listener(|old, new| eprintln!("state: {old:?} -> {new:?}"));
/// streams.start().unwrap();
/// if !streams.wait_for_state(State::Running, Duration::from_secs(60)) {
///     eprintln!("not running: {:?} {:?}", streams.state(), streams.error());
/// }
/// println!("tasks here: {:?}", streams.local_tasks());
/// streams.close();
/// assert_eq!(streams.state(), State::NotRunning);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Built, not started.
    Created,
    /// Joining the group or restoring state.
    Rebalancing,
    /// Processing.
    Running,
    /// Closing: threads commit and stop.
    PendingShutdown,
    /// Closed.
    NotRunning,
    /// A thread failed; the application stopped processing ([`KafkaStreams::error`] says why).
    Error,
}

/// The state of one stream thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ThreadState {
    #[default]
    Created,
    Rebalancing,
    Running,
    PendingShutdown,
    Dead,
}

type StateListener = Box<dyn Fn(State, State) + Send + Sync>;

#[derive(Default)]
struct ThreadInfo {
    state: ThreadState,
    tasks: Vec<TaskId>,
    stores: Vec<(TaskId, StoreEntry)>,
}

/// State shared by the application handle and its threads.
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    threads: Mutex<BTreeMap<usize, ThreadInfo>>,
    listener: Mutex<Option<StateListener>>,
    pub(crate) shutdown: AtomicBool,
    error: Mutex<Option<String>>,
    /// Stores of global tables, readable from every task.
    globals: Mutex<Vec<StoreEntry>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn new() -> Self {
        Shared {
            state: Mutex::new(State::Created),
            changed: Condvar::new(),
            threads: Mutex::new(BTreeMap::new()),
            listener: Mutex::new(None),
            shutdown: AtomicBool::new(false),
            error: Mutex::new(None),
            globals: Mutex::new(Vec::new()),
        }
    }

    fn set(&self, new: State) {
        let old = {
            let mut state = lock(&self.state);
            let old = *state;
            let allowed = match old {
                State::NotRunning => false,
                State::Error => matches!(new, State::PendingShutdown | State::NotRunning),
                State::PendingShutdown => matches!(new, State::NotRunning | State::Error),
                _ => true,
            };
            if old == new || !allowed {
                return;
            }
            *state = new;
            old
        };
        self.changed.notify_all();
        if let Some(listener) = &*lock(&self.listener) {
            listener(old, new);
        }
    }

    /// Records a thread's state and derives the application's: running when every thread
    /// runs, rebalancing while any joins or restores.
    pub(crate) fn set_thread(&self, index: usize, state: ThreadState) {
        let all = {
            let mut threads = lock(&self.threads);
            threads.entry(index).or_default().state = state;
            threads.values().map(|t| t.state).collect::<Vec<_>>()
        };
        if self.shutdown.load(Ordering::SeqCst) {
            return;
        }
        if all.iter().all(|s| *s == ThreadState::Running) {
            self.set(State::Running);
        } else if all.contains(&ThreadState::Rebalancing) {
            self.set(State::Rebalancing);
        }
    }

    pub(crate) fn set_tasks(
        &self,
        index: usize,
        tasks: Vec<TaskId>,
        stores: Vec<(TaskId, StoreEntry)>,
    ) {
        let mut threads = lock(&self.threads);
        let info = threads.entry(index).or_default();
        info.tasks = tasks;
        info.stores = stores;
    }

    /// A thread failed: stop every thread and enter the error state.
    pub(crate) fn fail(&self, message: String) {
        lock(&self.error).get_or_insert(message);
        self.shutdown.store(true, Ordering::SeqCst);
        self.set(State::Error);
    }

    /// Every local store of this name: the global one, or one per task.
    pub(crate) fn stores_named(&self, name: &str) -> Vec<(Option<TaskId>, StoreEntry)> {
        let globals = lock(&self.globals);
        if let Some(global) = globals.iter().find(|e| &*e.name == name) {
            return vec![(None, global.clone())];
        }
        lock(&self.threads)
            .values()
            .flat_map(|t| t.stores.iter())
            .filter(|(_, e)| &*e.name == name)
            .map(|(id, e)| (Some(*id), e.clone()))
            .collect()
    }
}

/// A streams application running on Kafka (Kafka Streams' `KafkaStreams`).
///
/// ```no_run
/// use kstreams::config::StreamsConfig;
/// use kstreams::dsl::StreamsBuilder;
/// use kstreams::kafka::KafkaStreams;
///
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("orders").filter(|_, v| !v.is_empty()).to("valid-orders");
/// let config = StreamsConfig::new("order-filter").with_bootstrap_servers("localhost:9092");
/// let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
/// streams.start().unwrap();
/// streams.shutdown_on_signals().unwrap();
/// streams.wait(); // until SIGTERM or SIGINT: then every thread commits and stops
/// ```
pub struct KafkaStreams {
    topology: Topology,
    config: StreamsConfig,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    global: Option<JoinHandle<()>>,
    metrics: Arc<metrics::StreamsMetrics>,
    settings: Option<StoreSettings>,
    query: Option<Arc<query::QueryContext>>,
}

pub(crate) fn kafka(e: impl std::fmt::Display) -> StreamsError {
    StreamsError::Kafka(e.to_string())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl KafkaStreams {
    /// An application for this topology; nothing connects before [`start`](Self::start).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, kafka::{KafkaStreams, State}};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let config = StreamsConfig::new("app").with_bootstrap_servers("kafka-1:9092,kafka-2:9092");
    /// let streams = KafkaStreams::new(&builder.build().unwrap(), config);
    /// assert_eq!(streams.state(), State::Created); // no broker contacted yet
    /// ```
    pub fn new(topology: &Topology, config: StreamsConfig) -> KafkaStreams {
        KafkaStreams {
            topology: topology.clone(),
            config,
            shared: Arc::new(Shared::new()),
            threads: Vec::new(),
            global: None,
            metrics: Arc::new(metrics::StreamsMetrics::new()),
            settings: None,
            query: None,
        }
    }

    /// Calls `listener(old, new)` on every state change.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, kafka::{KafkaStreams, State}};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("app"));
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// streams.set_state_listener(move |old, new| log.lock().unwrap().push((old, new)));
    /// streams.close(); // closing an application that never started needs no broker
    /// use State::*;
    /// let expected = [(Created, PendingShutdown), (PendingShutdown, NotRunning)];
    /// assert_eq!(*seen.lock().unwrap(), expected);
    /// ```
    pub fn set_state_listener(&self, listener: impl Fn(State, State) + Send + Sync + 'static) {
        *lock(&self.shared.listener) = Some(Box::new(listener));
    }

    /// The tasks (sub-topology and partition) the threads of this instance run now.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, kafka::{KafkaStreams, State}};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("app"));
    /// streams.start().unwrap();
    /// streams.wait_for_state(State::Running, Duration::from_secs(60));
    /// for task in streams.local_tasks() {
    ///     let (sub, partition) = (task.subtopology, task.partition);
    ///     println!("task {task}: sub-topology {sub}, partition {partition}");
    /// }
    /// ```
    pub fn local_tasks(&self) -> Vec<TaskId> {
        let threads = lock(&self.shared.threads);
        let mut all: Vec<TaskId> = threads
            .values()
            .flat_map(|t| t.tasks.iter().copied())
            .collect();
        all.sort();
        all
    }

    /// The current state.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, kafka::{KafkaStreams, State}};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("app"));
    /// assert_eq!(streams.state(), State::Created);
    /// streams.close();
    /// assert_eq!(streams.state(), State::NotRunning);
    /// ```
    pub fn state(&self) -> State {
        *lock(&self.shared.state)
    }

    /// Why the application is in the [`Error`](State::Error) state.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, kafka::{KafkaStreams, State}};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("app"));
    /// streams.start().unwrap();
    /// streams.wait(); // returns when the threads stop
    /// if streams.state() == State::Error {
    ///     eprintln!("stopped on an error: {}", streams.error().unwrap_or_default());
    ///     std::process::exit(1);
    /// }
    /// ```
    pub fn error(&self) -> Option<String> {
        lock(&self.shared.error).clone()
    }

    /// Waits until the application reaches `state` (or fails); true if it did in time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, kafka::{KafkaStreams, State}};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("app"));
    /// assert!(streams.wait_for_state(State::Created, Duration::ZERO)); // already there
    /// // Never started, so never running: false once the timeout has passed.
    /// assert!(!streams.wait_for_state(State::Running, Duration::from_millis(10)));
    /// ```
    pub fn wait_for_state(&self, state: State, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut current = lock(&self.shared.state);
        loop {
            if *current == state {
                return true;
            }
            if *current == State::Error && state != State::Error {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            current = self
                .shared
                .changed
                .wait_timeout(current, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.config.bootstrap_servers);
        for (k, v) in &self.config.client_overrides {
            config.set(k, v);
        }
        config
    }

    /// Checks topics, creates internal topics, restores global stores and starts the stream
    /// threads. Returns when the threads are started; [`state`](Self::state) becomes
    /// [`Running`](State::Running) once they have their tasks restored.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, kafka::{KafkaStreams, State}};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let config = StreamsConfig::new("app").with_bootstrap_servers("localhost:9092");
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    /// // Fails at once when, say, a source topic is missing.
    /// streams.start().expect("cannot start");
    /// assert!(streams.wait_for_state(State::Running, Duration::from_secs(60)));
    /// assert!(streams.start().is_err()); // only once
    /// ```
    pub fn start(&mut self) -> Result<(), StreamsError> {
        if self.state() != State::Created {
            return Err(StreamsError::Other("start() may be called once".into()));
        }
        if let Err(e) = self.config.validate() {
            self.shared.fail(e.to_string());
            return Err(e);
        }
        self.shared.set(State::Rebalancing);
        match self.start_threads() {
            Ok(()) => Ok(()),
            Err(e) => {
                self.shared.fail(e.to_string());
                self.close();
                Err(e)
            }
        }
    }

    fn start_threads(&mut self) -> Result<(), StreamsError> {
        let client = self.client_config();
        let counts = topics::prepare_topics(&self.topology, &self.config, &client)?;
        let directory = StateDirectory::new(&self.config.state_dir, &self.config.application_id)?;
        let process_id = directory.process_id()?;
        let settings = StoreSettings::new(&self.config);
        self.settings = Some(settings.clone());
        let global = global::start(
            &self.topology,
            &self.config,
            &client,
            &counts,
            &settings,
            &directory,
            self.shared.clone(),
        )?;
        let global_stores = match global {
            Some(g) => {
                self.global = Some(g.handle);
                g.stores
            }
            None => Vec::new(),
        };
        *lock(&self.shared.globals) = global_stores.clone();
        self.query = Some(Arc::new(query::QueryContext::new(
            &self.topology,
            &self.config,
            client.clone(),
            counts,
        )));
        let threads = self.config.num_stream_threads.max(1);
        for index in 0..threads {
            self.shared.set_thread(index, ThreadState::Created);
        }
        for index in 0..threads {
            let thread = thread::StreamThread {
                topology: self.topology.clone(),
                config: self.config.clone(),
                client: client.clone(),
                shared: self.shared.clone(),
                index,
                directory: directory.clone(),
                process_id: process_id.clone(),
                settings: settings.clone(),
                global_stores: global_stores.clone(),
                metrics: self.metrics.clone(),
            };
            let shared = self.shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!(
                    "{}-StreamThread-{}",
                    self.config.application_id,
                    index + 1
                ))
                .spawn(move || {
                    let result = thread.run();
                    shared.set_thread(index, ThreadState::Dead);
                    if let Err(e) = result {
                        tracing::error!("stream thread {} failed: {e}", index + 1);
                        shared.fail(format!("stream thread {}: {e}", index + 1));
                    }
                })
                .map_err(|e| StreamsError::Other(e.to_string()))?;
            self.threads.push(handle);
        }
        Ok(())
    }

    /// Makes SIGTERM and SIGINT shut the application down gracefully: every thread commits
    /// what it processed and stops. Pair with [`wait`](Self::wait); call it before
    /// [`start`](Self::start), so a signal that arrives during start-up is not the default
    /// action (the process killed).
    ///
    /// ```no_run
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, kafka::KafkaStreams};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("app"));
    /// streams.shutdown_on_signals().unwrap(); // before start
    /// streams.start().unwrap();
    /// streams.wait(); // until SIGTERM or SIGINT
    /// ```
    pub fn shutdown_on_signals(&self) -> Result<(), StreamsError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
            .map_err(|e| StreamsError::Other(format!("cannot watch signals: {e}")))?;
        let shared = self.shared.clone();
        std::thread::Builder::new()
            .name(format!("{}-signals", self.config.application_id))
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    tracing::info!(signal, "shutdown signal: closing");
                    shared.shutdown.store(true, Ordering::SeqCst);
                    shared.set(State::PendingShutdown);
                }
            })
            .map_err(|e| StreamsError::Other(e.to_string()))?;
        Ok(())
    }

    /// Blocks until every thread has stopped (after [`shutdown_on_signals`] saw a signal,
    /// or a thread failed), then finishes closing.
    ///
    /// [`shutdown_on_signals`]: Self::shutdown_on_signals
    ///
    /// ```no_run
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, kafka::{KafkaStreams, State}};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("app"));
    /// streams.shutdown_on_signals().unwrap();
    /// streams.start().unwrap();
    /// streams.wait();
    /// // A signal ends in NotRunning, a failed thread in Error.
    /// assert!(matches!(streams.state(), State::NotRunning | State::Error));
    /// ```
    pub fn wait(&mut self) {
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        self.close();
    }

    /// Stops the threads after they commit what they processed, and waits for them.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, kafka::{KafkaStreams, State}};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("app"));
    /// streams.start().unwrap();
    /// std::thread::sleep(Duration::from_secs(30)); // process for a while
    /// streams.close(); // commits, then stops every thread
    /// assert_eq!(streams.state(), State::NotRunning);
    /// streams.close(); // closing again does nothing
    /// ```
    pub fn close(&mut self) {
        if self.state() == State::NotRunning {
            return;
        }
        self.shared.set(State::PendingShutdown);
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        if let Some(global) = self.global.take() {
            let _ = global.join();
        }
        lock(&self.shared.globals).clear();
        // Subscriptions end: their streams return `None`.
        if let Some(settings) = &self.settings {
            settings.changes.close_all();
        }
        if self.error().is_some() {
            // Keep the error state visible; the threads are gone.
            self.shared.set(State::Error);
        } else {
            self.shared.set(State::NotRunning);
        }
    }

    /// A point-in-time copy of the metrics, summed over threads.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder};
    /// use kstreams::kafka::{KafkaStreams, MetricsSnapshot};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("app"));
    /// let snapshot = streams.metrics(); // nothing consumed before start
    /// assert_eq!(snapshot, MetricsSnapshot::default());
    /// assert_eq!(snapshot.consumer_lag.values().sum::<i64>(), 0);
    /// ```
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Every metric in the Prometheus text format (OpenMetrics), names prefixed `kstreams_`
    /// (see [`register_metrics`](Self::register_metrics) for serving them with the
    /// application's own metrics; `docs/operations.md` lists them).
    ///
    /// ```no_run
    /// # use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, kafka::KafkaStreams};
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("in").to("out");
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("app"));
    /// streams.start().unwrap();
    /// let text = streams.metrics_text();
    /// assert!(text.contains("kstreams_records_consumed_total"));
    /// let snapshot = streams.metrics();
    /// let lag: i64 = snapshot.consumer_lag.values().sum();
    /// println!("{} records consumed, lag {lag}", snapshot.records_consumed);
    /// ```
    pub fn metrics_text(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::with_prefix("kstreams");
        self.metrics.register(&mut registry);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// Adds this application's metrics to `registry` (they stay live: the registry reads
    /// the same series the threads update), under the prefix `kstreams`.
    ///
    /// ```no_run
    /// use kstreams::prometheus_client::{encoding::text::encode, registry::Registry};
    /// # use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, kafka::KafkaStreams};
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("in").to("out");
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("app"));
    /// let mut registry = Registry::default(); // the application's own metrics go here too
    /// streams.register_metrics(&mut registry);
    /// streams.start().unwrap();
    /// // In the handler of GET /metrics:
    /// let mut body = String::new();
    /// encode(&mut body, &registry).unwrap();
    /// ```
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.metrics
            .register(registry.sub_registry_with_prefix("kstreams"));
    }

    fn query(&self) -> Result<&Arc<query::QueryContext>, crate::state::StoreError> {
        self.query
            .as_ref()
            .ok_or_else(|| crate::state::StoreError::Storage {
                store: String::new(),
                message: "the application is not started".into(),
            })
    }

    /// A read-only view of a key-value store (a table's or an aggregation's) across the
    /// tasks of this instance. Values are read as they are now, cache included.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, kafka::{KafkaStreams, State}};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .count_with(Materialized::named("clicks-per-user"));
    /// let mut config = StreamsConfig::new("clicks");
    /// config.application_server = Some("10.0.0.7:8080".into()); // where this instance answers
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    /// streams.start().unwrap();
    /// streams.wait_for_state(State::Running, Duration::from_secs(60));
    ///
    /// let user = "ann".to_string();
    /// let meta = streams.query_metadata_for_key("clicks-per-user", &user).unwrap();
    /// if meta.local {
    ///     let counts = streams.store::<String, i64>("clicks-per-user").unwrap();
    ///     println!("{user}: {:?}", counts.get(&user).unwrap());
    /// } else if let Some(host) = meta.host {
    ///     println!("ask http://{host}/clicks/{user} (partition {})", meta.partition);
    /// }
    /// ```
    pub fn store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<ReadOnlyKeyValueStore<K, V>, crate::state::StoreError> {
        ReadOnlyKeyValueStore::new(name, self.shared.clone(), self.query()?.clone())
    }

    /// A read-only view of a window store across the tasks of this instance.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
    ///     .count_with(Materialized::named("clicks-per-minute"));
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("clicks"));
    /// streams.start().unwrap();
    /// let per_minute = streams.window_store::<String, i64>("clicks-per-minute").unwrap();
    /// for (start, count) in per_minute.fetch(&"ann".to_string(), 0, i64::MAX).unwrap() {
    ///     println!("minute starting at {start}: {count}");
    /// }
    /// ```
    pub fn window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<ReadOnlyWindowStore<K, V>, crate::state::StoreError> {
        ReadOnlyWindowStore::new(name, self.shared.clone(), self.query()?.clone())
    }

    /// A read-only view of a session store across the tasks of this instance: sessions by
    /// key, or those overlapping a time range. A store of another kind is refused
    /// ([`StoreError::WrongKind`](crate::state::StoreError::WrongKind)).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(1800));
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by_session(windows)
    ///     .count_with(Materialized::named("visits"));
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("web"));
    /// streams.start().unwrap();
    /// let visits = streams.session_store::<String, i64>("visits").unwrap();
    /// for session in visits.fetch(&"ann".to_string()).unwrap() {
    ///     println!("[{}, {}]: {} clicks", session.start, session.end, session.value);
    /// }
    /// ```
    pub fn session_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<ReadOnlySessionStore<K, V>, crate::state::StoreError> {
        ReadOnlySessionStore::new(name, self.shared.clone(), self.query()?.clone())
    }

    /// Which partition, and which instance of the application, holds `key` in a store:
    /// for routing a query to the instance that can answer it (see [`store`](Self::store)
    /// for an example). `local` is known from this instance's own tasks; the `host` of
    /// another instance only when it sets
    /// [`application_server`](crate::config::StreamsConfig::application_server).
    ///
    /// ```no_run
    /// use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("balances", Materialized::named("balances"));
    /// let mut config = StreamsConfig::new("bank");
    /// config.application_server = Some("10.0.0.7:8080".into());
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    /// streams.start().unwrap();
    /// let account = "acct-42".to_string();
    /// let meta = streams.query_metadata_for_key("balances", &account).unwrap();
    /// if meta.local {
    ///     let balances = streams.store::<String, i64>("balances").unwrap();
    ///     println!("{account}: {:?}", balances.get(&account).unwrap());
    /// } else if let Some(host) = meta.host {
    ///     println!("forward to http://{host}/balances/{account}");
    /// } else {
    ///     println!("partition {} has no known owner yet", meta.partition);
    /// }
    /// ```
    pub fn query_metadata_for_key<K: 'static>(
        &self,
        store: &str,
        key: &K,
    ) -> Result<KeyQueryMetadata, StreamsError> {
        let mut meta = self.query()?.metadata_for_key(store, key)?;
        if !meta.local {
            meta.local = self
                .shared
                .stores_named(store)
                .iter()
                .any(|(task, _)| task.is_some_and(|t| t.partition == meta.partition));
        }
        Ok(meta)
    }

    /// The changes of a store, as they are written, as an async stream: the updates of a
    /// table (key, new value or `None` when deleted). Subscribing sees changes from now on;
    /// read the current contents with [`store`](Self::store) first. The stream ends when
    /// the application closes.
    ///
    /// ```no_run
    /// use futures::StreamExt;
    /// use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("stock"));
    /// streams.start().unwrap();
    /// let mut changes = streams.subscribe::<String, i64>("stock").unwrap();
    /// futures::executor::block_on(async {
    ///     while let Some(change) = changes.next().await {
    ///         let change = change.unwrap();
    ///         println!("{}: {:?} at {:?}", change.key, change.value, change.timestamp);
    ///     }
    /// });
    /// ```
    pub fn subscribe<K: 'static, V: 'static>(
        &self,
        store: &str,
    ) -> Result<TableChanges<K, V>, crate::state::StoreError> {
        let settings = self
            .settings
            .as_ref()
            .ok_or_else(|| crate::state::StoreError::Storage {
                store: store.to_string(),
                message: "the application is not started".into(),
            })?;
        TableChanges::new(store, &self.topology, &settings.changes)
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if !self.threads.is_empty() || self.global.is_some() {
            self.close();
        }
    }
}
