//! [`KafkaStreams`]: runs a [`Topology`] on a Kafka cluster.
//!
//! On [`start`](KafkaStreams::start) the application checks that the topics it reads exist and
//! that joined topics are co-partitioned, creates its internal topics (repartition and
//! changelog, `<application-id>-<name>`) with the partition counts the topology needs, and
//! starts its stream threads. Each thread is a member of the consumer group
//! `<application-id>` (range assignor, so partition `p` of co-partitioned topics goes to one
//! member). For every assigned partition it builds the task of that partition, restores the
//! task's stores from their changelogs, and then processes records. Outputs, changelog
//! writes and the dead-letter topic go to one producer per thread; offsets are committed
//! after the producer has flushed (at-least-once), every commit interval, before partitions
//! are revoked, and on close.
//!
//! Not yet: exactly-once (transactions), global tables, and checkpoint files (a restarted
//! task restores its changelogs from the beginning).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::{ProcessingGuarantee, StreamsConfig};
use crate::error::StreamsError;
use crate::processor::{Headers, TaskId};
use crate::runtime::task::{ConsumerRecord, ProducerRecord, Task};
use crate::topology::Topology;

/// The lifecycle of a [`KafkaStreams`] application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Built, not started.
    Created,
    /// Joining the group or restoring state.
    Rebalancing,
    /// Processing.
    Running,
    /// Closing.
    PendingShutdown,
    /// Closed.
    NotRunning,
    /// A stream thread failed; see the log.
    Error,
}

type StateListener = Box<dyn Fn(State, State) + Send + Sync>;

struct Shared {
    state: Mutex<State>,
    /// The tasks each stream thread runs, by thread index.
    tasks: Mutex<BTreeMap<usize, Vec<TaskId>>>,
    listener: Mutex<Option<StateListener>>,
    shutdown: AtomicBool,
}

impl Shared {
    fn set(&self, new: State) {
        let old = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let old = *state;
            if old == new
                || old == State::Error && new != State::PendingShutdown && new != State::NotRunning
            {
                return;
            }
            *state = new;
            old
        };
        if let Some(listener) = &*self.listener.lock().unwrap_or_else(|e| e.into_inner()) {
            listener(old, new);
        }
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
/// let mut config = StreamsConfig::new("order-filter");
/// config.bootstrap_servers = "localhost:9092".into();
/// let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
/// streams.start().unwrap();
/// // ... until shutdown:
/// streams.close();
/// ```
pub struct KafkaStreams {
    topology: Topology,
    config: StreamsConfig,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

fn kafka(e: impl std::fmt::Display) -> StreamsError {
    StreamsError::Kafka(e.to_string())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl KafkaStreams {
    /// An application for this topology; nothing connects before [`start`](Self::start).
    pub fn new(topology: &Topology, config: StreamsConfig) -> KafkaStreams {
        KafkaStreams {
            topology: topology.clone(),
            config,
            shared: Arc::new(Shared {
                state: Mutex::new(State::Created),
                tasks: Mutex::new(BTreeMap::new()),
                listener: Mutex::new(None),
                shutdown: AtomicBool::new(false),
            }),
            threads: Vec::new(),
        }
    }

    /// Calls `listener(old, new)` on every state change.
    pub fn set_state_listener(&self, listener: impl Fn(State, State) + Send + Sync + 'static) {
        *self
            .shared
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Box::new(listener));
    }

    /// The tasks (sub-topology and partition) the threads of this instance run now.
    pub fn local_tasks(&self) -> Vec<TaskId> {
        let tasks = self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<TaskId> = tasks.values().flatten().copied().collect();
        all.sort();
        all
    }

    /// The current state.
    pub fn state(&self) -> State {
        *self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.config.bootstrap_servers);
        for (k, v) in &self.config.client_overrides {
            config.set(k, v);
        }
        config
    }

    /// Checks topics, creates internal topics and starts the stream threads.
    pub fn start(&mut self) -> Result<(), StreamsError> {
        if self.state() != State::Created {
            return Err(StreamsError::Other("start() may be called once".into()));
        }
        if self.config.processing_guarantee == ProcessingGuarantee::ExactlyOnce {
            return Err(StreamsError::Other(
                "exactly-once is not supported by this runtime yet".into(),
            ));
        }
        if self.topology.inner.global.is_some() {
            return Err(StreamsError::Other(
                "global tables are not supported by this runtime yet".into(),
            ));
        }
        self.shared.set(State::Rebalancing);
        self.create_internal_topics()?;
        for index in 0..self.config.num_stream_threads.max(1) {
            let thread = StreamThread::new(
                &self.topology,
                &self.config,
                self.client_config(),
                self.shared.clone(),
                index,
            )?;
            let shared = self.shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!(
                    "{}-StreamThread-{}",
                    self.config.application_id,
                    index + 1
                ))
                .spawn(move || {
                    if let Err(e) = thread.run() {
                        tracing::error!("stream thread failed: {e}");
                        shared.set(State::Error);
                    }
                })
                .map_err(|e| StreamsError::Other(e.to_string()))?;
            self.threads.push(handle);
        }
        Ok(())
    }

    fn create_internal_topics(&self) -> Result<(), StreamsError> {
        let consumer: BaseConsumer = self.client_config().create().map_err(kafka)?;
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(30))
            .map_err(kafka)?;
        let counts: HashMap<String, i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect();
        self.topology
            .check_copartitioning(|t| counts.get(t).copied())?;
        let plan = self
            .topology
            .internal_topic_partitions(|t| counts.get(t).copied())?;
        let app = &self.config.application_id;
        let description = self.topology.describe();
        let mut missing = Vec::new();
        for topic in &description.internal_topics {
            let name = topic.full_name(app);
            let partitions = plan[&topic.name];
            match counts.get(&name) {
                Some(&existing) if existing != partitions => {
                    return Err(StreamsError::Other(format!(
                        "internal topic `{name}` has {existing} partitions, the topology needs {partitions}"
                    )))
                }
                Some(_) => {}
                None => missing.push((name, partitions, topic.configs.clone())),
            }
        }
        // The dead-letter topic takes records from try_* operators and from the dead-letter
        // policies; brokers may not create topics on first write.
        let dead_letter = self.config.dead_letter_topic();
        if !counts.contains_key(&dead_letter) {
            missing.push((dead_letter, 1, BTreeMap::new()));
        }
        if missing.is_empty() {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().map_err(kafka)?;
        let topics: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|(name, partitions, configs)| {
                configs.iter().fold(
                    NewTopic::new(name, *partitions, TopicReplication::Fixed(1)),
                    |t, (k, v)| t.set(k, v),
                )
            })
            .collect();
        let results =
            futures::executor::block_on(admin.create_topics(&topics, &AdminOptions::new()))
                .map_err(kafka)?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(StreamsError::Kafka(format!(
                        "cannot create `{topic}`: {code}"
                    )))
                }
            }
        }
        tracing::info!(topics = ?missing.iter().map(|m| &m.0).collect::<Vec<_>>(), "created internal topics");
        Ok(())
    }

    /// Stops the threads after they commit what they processed, and waits for them.
    pub fn close(&mut self) {
        if self.threads.is_empty() && self.state() == State::Created {
            self.shared.set(State::NotRunning);
            return;
        }
        self.shared.set(State::PendingShutdown);
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        self.shared.set(State::NotRunning);
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.close();
        }
    }
}

/// Rebalance events, handed from the consumer callback to the thread's loop.
#[derive(Default)]
struct RebalanceState {
    assigned: Vec<(String, i32)>,
    changed: bool,
    /// Offsets processed and not yet committed, by (topic, partition): next offset to read.
    pending: BTreeMap<(String, i32), i64>,
}

struct StreamsConsumerContext {
    producer: ThreadedProducer<DefaultProducerContext>,
    rebalance: Arc<Mutex<RebalanceState>>,
}

impl ClientContext for StreamsConsumerContext {}

impl StreamsConsumerContext {
    /// Flushes outputs, then commits the offsets of what produced them (at-least-once).
    fn commit(&self, consumer: &BaseConsumer<Self>) -> Result<(), StreamsError> {
        let pending = std::mem::take(
            &mut self
                .rebalance
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pending,
        );
        if pending.is_empty() {
            return Ok(());
        }
        self.producer
            .flush(Duration::from_secs(30))
            .map_err(kafka)?;
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in &pending {
            offsets
                .add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(kafka)?;
        }
        consumer.commit(&offsets, CommitMode::Sync).map_err(kafka)
    }
}

impl ConsumerContext for StreamsConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            if let Err(e) = self.commit(consumer) {
                tracing::warn!(
                    "commit before revocation failed (records may be processed again): {e}"
                );
            }
            let mut state = self.rebalance.lock().unwrap_or_else(|e| e.into_inner());
            state.assigned.clear();
            state.changed = true;
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            let mut state = self.rebalance.lock().unwrap_or_else(|e| e.into_inner());
            state.assigned = partitions
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            state.changed = true;
        }
    }
}

struct StreamThread {
    topology: Topology,
    config: StreamsConfig,
    client: ClientConfig,
    shared: Arc<Shared>,
    index: usize,
}

impl StreamThread {
    fn new(
        topology: &Topology,
        config: &StreamsConfig,
        client: ClientConfig,
        shared: Arc<Shared>,
        index: usize,
    ) -> Result<Self, StreamsError> {
        Ok(StreamThread {
            topology: topology.clone(),
            config: config.clone(),
            client,
            shared,
            index,
        })
    }

    fn run(self) -> Result<(), StreamsError> {
        let app = self.config.application_id.clone();
        let producer: ThreadedProducer<DefaultProducerContext> = self
            .client
            .clone()
            .set("partitioner", "murmur2_random")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .map_err(kafka)?;
        let rebalance = Arc::new(Mutex::new(RebalanceState::default()));
        let context = StreamsConsumerContext {
            producer,
            rebalance: rebalance.clone(),
        };
        let consumer: BaseConsumer<StreamsConsumerContext> = self
            .client
            .clone()
            .set("group.id", &app)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "range")
            .create_with_context(context)
            .map_err(kafka)?;
        let inner = &self.topology.inner;
        // Full topic name → the sub-topology reading it, resolved once, not per record.
        let readers: HashMap<String, usize> = inner
            .subtopologies
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.source_topics.iter().map(move |t| (t, i)))
            .map(|(t, i)| (t.resolve(&app), i))
            .collect();
        let topic_refs: Vec<&str> = readers.keys().map(String::as_str).collect();
        consumer.subscribe(&topic_refs).map_err(kafka)?;
        let sub_of = |topic: &str| readers.get(topic).copied();

        let tasks: RefCell<HashMap<(usize, i32), Task>> = RefCell::new(HashMap::new());
        let mut last_commit = Instant::now();
        let result = loop {
            if self.shared.shutdown.load(Ordering::SeqCst) {
                break Ok(());
            }
            let message = consumer.poll(Duration::from_millis(50));
            // Rebuild tasks when the assignment changed.
            let assignment = {
                let mut state = rebalance.lock().unwrap_or_else(|e| e.into_inner());
                std::mem::take(&mut state.changed).then(|| state.assigned.clone())
            };
            if let Some(assigned) = assignment {
                let wanted: HashSet<(usize, i32)> = assigned
                    .iter()
                    .filter_map(|(t, p)| sub_of(t).map(|s| (s, *p)))
                    .collect();
                tasks.borrow_mut().retain(|id, _| wanted.contains(id));
                for (sub, partition) in wanted {
                    if tasks.borrow().contains_key(&(sub, partition)) {
                        continue;
                    }
                    self.shared.set(State::Rebalancing);
                    let mut task = Task::new(inner, sub, partition, &self.config, now_ms(), &[])?;
                    self.restore(&mut task)?;
                    tasks.borrow_mut().insert((sub, partition), task);
                }
                let ids = tasks.borrow().values().map(Task::id).collect();
                self.shared
                    .tasks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(self.index, ids);
                self.shared.set(State::Running);
            }
            if let Some(message) = message {
                let message = message.map_err(kafka)?;
                let topic = message.topic().to_string();
                let partition = message.partition();
                let Some(sub) = sub_of(&topic) else { continue };
                let mut headers = Headers::new();
                if let Some(h) = message.headers() {
                    for header in h.iter() {
                        match header.value {
                            Some(v) => headers.add(header.key, v),
                            None => headers.add_null(header.key),
                        };
                    }
                }
                let record = ConsumerRecord {
                    topic: topic.as_str().into(),
                    partition,
                    offset: message.offset(),
                    timestamp: message.timestamp().to_millis().unwrap_or(0),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                    headers,
                };
                let mut tasks = tasks.borrow_mut();
                let Some(task) = tasks.get_mut(&(sub, partition)) else {
                    continue;
                };
                let processed = task.process(record);
                let output = task.take_output();
                self.produce(&consumer.context().producer, output)?;
                processed?;
                rebalance
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pending
                    .insert((topic, partition), message.offset() + 1);
            }
            {
                let now = now_ms();
                let mut tasks = tasks.borrow_mut();
                for task in tasks.values_mut() {
                    task.advance_wall_clock(now)?;
                    let output = task.take_output();
                    self.produce(&consumer.context().producer, output)?;
                }
            }
            if last_commit.elapsed() >= self.config.commit_interval {
                consumer.context().commit(&consumer)?;
                last_commit = Instant::now();
            }
        };
        self.shared
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.index);
        let committed = consumer.context().commit(&consumer);
        consumer.unsubscribe();
        result.and(committed)
    }

    fn produce(
        &self,
        producer: &ThreadedProducer<DefaultProducerContext>,
        records: Vec<ProducerRecord>,
    ) -> Result<(), StreamsError> {
        for record in records {
            let mut headers = OwnedHeaders::new();
            for h in record.headers.iter() {
                headers = headers.insert(Header {
                    key: &h.key,
                    value: h.value.as_deref(),
                });
            }
            let mut base: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&record.topic)
                .timestamp(record.timestamp)
                .headers(headers);
            if let Some(k) = &record.key {
                base = base.key(k.as_slice());
            }
            if let Some(v) = &record.value {
                base = base.payload(v.as_slice());
            }
            if let Some(p) = record.partition {
                base = base.partition(p);
            }
            let mut base = base;
            loop {
                match producer.send(base) {
                    Ok(()) => break,
                    Err((e, returned))
                        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                    {
                        std::thread::sleep(Duration::from_millis(5));
                        base = returned;
                    }
                    Err((e, _)) => {
                        return Err(kafka(format!("producing to `{}`: {e}", record.topic)))
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads every changelog partition of the task's stores from the beginning to its end.
    fn restore(&self, task: &mut Task) -> Result<(), StreamsError> {
        let consumer: BaseConsumer = self
            .client
            .clone()
            .set(
                "group.id",
                format!("{}-restore", self.config.application_id),
            )
            .set("enable.auto.commit", "false")
            .create()
            .map_err(kafka)?;
        for (store, log) in task.ctx.stores.logged() {
            let (low, high) = consumer
                .fetch_watermarks(&log.topic, log.partition, Duration::from_secs(30))
                .map_err(kafka)?;
            if high <= low {
                continue;
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&log.topic, log.partition, Offset::Beginning)
                .map_err(kafka)?;
            consumer.assign(&tpl).map_err(kafka)?;
            let started = Instant::now();
            let mut restored = 0u64;
            loop {
                let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                    if started.elapsed() > Duration::from_secs(120) {
                        return Err(StreamsError::Kafka(format!(
                            "restoring `{}` timed out",
                            log.topic
                        )));
                    }
                    continue;
                };
                let message = message.map_err(kafka)?;
                if let Some(key) = message.key() {
                    store.restore_record(key, message.payload())?;
                    restored += 1;
                }
                if message.offset() + 1 >= high {
                    break;
                }
            }
            tracing::info!(store = %store.name, topic = %log.topic, partition = log.partition, restored,
                elapsed_ms = started.elapsed().as_millis() as u64, "restored store");
        }
        Ok(())
    }
}
