//! A stream thread: one member of the application's consumer group, running the tasks of the
//! partitions it is assigned.
//!
//! The loop: poll a batch of records into the task of each record's partition; process each
//! task's records in timestamp order across its partitions; hand what they produce to the
//! [`RecordCollector`]; fire wall-clock punctuations; commit every commit interval.
//!
//! A commit flushes every store's cache (so changelog records join the output), then, under
//! at-least-once, flushes the producer and commits the consumer offsets, and writes each
//! task's checkpoint; under exactly-once it sends the offsets into the open transaction and
//! commits that. A failed transaction is aborted, and every task is rebuilt from its
//! changelog and resumes from the committed offsets, so nothing is applied twice.
//!
//! Rebalances run inside `poll`, on this thread: before partitions are revoked the thread
//! commits and suspends its tasks; after the new assignment it resumes the tasks it kept,
//! closes the ones it lost (writing their checkpoints) and builds and restores new ones before
//! processing any of their records.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Headers as _, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{ErrorPolicy, ProcessingGuarantee, StreamsConfig};
use crate::error::StreamsError;
use crate::processor::{Headers, TaskId};
use crate::runtime::task::{
    ConsumerRecord, ProducerRecord, Task, TaskEnv, DLQ_ERROR_KIND, DLQ_ERROR_MESSAGE,
    DLQ_ERROR_OFFSET, DLQ_ERROR_PARTITION, DLQ_ERROR_PROCESSOR, DLQ_ERROR_TOPIC,
};
use crate::runtime::TaskMetrics;
use crate::state::{
    Checkpoint, LockError, StateDirectory, StoreEntry, StoreSettings, StoreType, TaskDirectory,
};
use crate::topology::Topology;

use super::collector::{RecordCollector, SendError, TxnError};
use super::metrics::{StreamsMetrics, ThreadLabels};
use super::restore::{ChangelogReader, RestoreTarget};
use super::{kafka, now_ms, Shared, ThreadState};

/// Records taken from the consumer per loop iteration at most.
const MAX_POLL_RECORDS: usize = 1000;
/// How often lag, rates and task counters are published.
const METRICS_INTERVAL: Duration = Duration::from_secs(1);
/// How long to wait for another owner to release a task directory.
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// The queued records of a task's source partitions, taken in timestamp order.
struct PartitionGroup {
    queues: Vec<(Arc<str>, i32, VecDeque<ConsumerRecord>)>,
}

impl PartitionGroup {
    fn new() -> Self {
        PartitionGroup { queues: Vec::new() }
    }

    fn push(&mut self, topic: &Arc<str>, record: ConsumerRecord) {
        let partition = record.partition;
        match self
            .queues
            .iter_mut()
            .find(|(t, p, _)| *p == partition && **t == **topic)
        {
            Some((_, _, queue)) => queue.push_back(record),
            None => self
                .queues
                .push((topic.clone(), partition, VecDeque::from([record]))),
        }
    }

    /// The queued record with the smallest timestamp over all partitions (Kafka Streams'
    /// choice, so a join sees both sides in event-time order as far as they are buffered).
    fn next(&mut self) -> Option<ConsumerRecord> {
        let (_, _, queue) = self
            .queues
            .iter_mut()
            .filter(|(_, _, q)| !q.is_empty())
            .min_by_key(|(_, _, q)| q.front().map(|r| r.timestamp))?;
        queue.pop_front()
    }

    /// Drops queued records: after a rebalance the consumer fetches them again from the
    /// committed offsets.
    fn clear(&mut self) {
        self.queues.clear();
    }
}

/// A running task and what the thread tracks about it.
struct ActiveTask {
    task: Task,
    queue: PartitionGroup,
    /// Next offsets to commit, by source partition.
    consumed: BTreeMap<(Arc<str>, i32), i64>,
    /// Offsets the stores hold changelog data up to.
    changelog_offsets: Checkpoint,
    /// Dropped after the task, whose stores must close before the lock goes.
    directory: Option<TaskDirectory>,
}

impl ActiveTask {
    /// Updates changelog offsets from what the broker acknowledged.
    fn observe_changelogs(&mut self, collector: &RecordCollector) {
        for (_, log) in self.task.ctx.stores.logged() {
            if let Some(end) = collector.changelog_end(&log.topic, log.partition) {
                let offset = self
                    .changelog_offsets
                    .entry((log.topic.to_string(), log.partition))
                    .or_insert(end);
                *offset = (*offset).max(end);
            }
        }
    }

    /// Writes the checkpoint of the task's persistent stores.
    fn write_checkpoint(&self) -> Result<(), StreamsError> {
        let Some(directory) = &self.directory else {
            return Ok(());
        };
        let persistent: Checkpoint = self
            .task
            .ctx
            .stores
            .logged()
            .filter(|(entry, _)| entry.persistent)
            .filter_map(|(_, log)| {
                let key = (log.topic.to_string(), log.partition);
                self.changelog_offsets.get(&key).map(|o| (key, *o))
            })
            .collect();
        directory.write_checkpoint(&persistent)?;
        Ok(())
    }
}

/// How a commit failed.
enum CommitError {
    /// The transaction failed: abort it and resume from the committed offsets.
    Transaction(TxnError),
    Other(StreamsError),
}

impl From<StreamsError> for CommitError {
    fn from(e: StreamsError) -> Self {
        CommitError::Other(e)
    }
}

/// Metric handles of one thread, resolved once.
struct ThreadMetrics {
    labels: ThreadLabels,
    consumed: Counter,
    produced: Counter,
    process_latency: Histogram,
    commit_latency: Histogram,
    commits: Counter,
    aborted: Counter,
    rebalances: Counter,
    dropped: Counter,
    dead_lettered: Counter,
    late: Counter,
    /// Task counters already added to the Prometheus counters.
    reported: TaskMetrics,
    /// Counters of tasks this thread closed.
    closed: TaskMetrics,
    last_tick: Instant,
    consumed_at_tick: u64,
    produced_at_tick: u64,
}

impl ThreadMetrics {
    fn new(metrics: &StreamsMetrics, name: &str) -> Self {
        let labels = metrics.thread(name);
        ThreadMetrics {
            consumed: metrics.records_consumed.get_or_create_owned(&labels),
            produced: metrics.records_produced.get_or_create_owned(&labels),
            process_latency: metrics.process_latency.get_or_create_owned(&labels),
            commit_latency: metrics.commit_latency.get_or_create_owned(&labels),
            commits: metrics.commits.get_or_create_owned(&labels),
            aborted: metrics.aborted_transactions.get_or_create_owned(&labels),
            rebalances: metrics.rebalances.get_or_create_owned(&labels),
            dropped: metrics.dropped_records.get_or_create_owned(&labels),
            dead_lettered: metrics.dead_lettered_records.get_or_create_owned(&labels),
            late: metrics.late_records_dropped.get_or_create_owned(&labels),
            labels,
            reported: TaskMetrics::default(),
            closed: TaskMetrics::default(),
            last_tick: Instant::now(),
            consumed_at_tick: 0,
            produced_at_tick: 0,
        }
    }
}

/// Everything a stream thread owns but its consumer. Shared with the rebalance callbacks,
/// which run inside `poll` on the same thread.
struct ThreadCore {
    name: String,
    index: usize,
    topology: Topology,
    config: StreamsConfig,
    client: ClientConfig,
    shared: Arc<Shared>,
    exactly_once: bool,
    /// Full source topic name → (sub-topology, the name as shared by records).
    readers: HashMap<String, (usize, Arc<str>)>,
    tasks: BTreeMap<TaskId, ActiveTask>,
    /// Tasks kept over a rebalance in case they are assigned again.
    suspended: BTreeMap<TaskId, ActiveTask>,
    /// An assignment received but not applied yet.
    assignment: Option<Vec<(String, i32)>>,
    /// Partitions currently assigned.
    assigned: Vec<(String, i32)>,
    collector: RecordCollector,
    transactional_id: Option<String>,
    restorer: Option<ChangelogReader>,
    directory: StateDirectory,
    settings: StoreSettings,
    global_stores: Vec<StoreEntry>,
    metrics: Arc<StreamsMetrics>,
    m: ThreadMetrics,
    /// An error from a rebalance callback, for the loop to raise.
    callback_error: Option<StreamsError>,
    closing: bool,
}

thread_local! {
    /// The core of the stream thread running on this OS thread, for rebalance callbacks.
    static CORE: RefCell<Option<Rc<RefCell<ThreadCore>>>> = const { RefCell::new(None) };
}

fn with_core(f: impl FnOnce(&mut ThreadCore)) {
    CORE.with_borrow(|core| {
        if let Some(core) = core {
            match core.try_borrow_mut() {
                Ok(mut core) => f(&mut core),
                Err(_) => tracing::error!("rebalance callback while the stream thread is busy"),
            }
        }
    })
}

/// The consumer's callbacks: rebalances and statistics (for lag).
pub(crate) struct StreamsConsumerContext {
    metrics: Arc<StreamsMetrics>,
    thread: String,
}

impl ClientContext for StreamsConsumerContext {
    fn stats(&self, statistics: Statistics) {
        let mut lags = Vec::new();
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.fetch_state == "active" && p.consumer_lag >= 0 {
                    lags.push((topic.clone(), *partition, p.consumer_lag));
                }
            }
        }
        self.metrics.set_lag(&self.thread, &lags);
    }
}

impl ConsumerContext for StreamsConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(_) => with_core(|core| core.on_revoke(consumer)),
            Rebalance::Error(e) => tracing::warn!("rebalance error: {e}"),
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            let assigned: Vec<(String, i32)> = partitions
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            with_core(|core| {
                tracing::info!(thread = %core.name, partitions = ?assigned, "partitions assigned");
                core.m.rebalances.inc();
                core.assignment = Some(assigned);
            });
        }
    }
}

/// A stream thread, built by [`KafkaStreams::start`](super::KafkaStreams::start) and run on
/// its own OS thread.
pub(crate) struct StreamThread {
    pub topology: Topology,
    pub config: StreamsConfig,
    pub client: ClientConfig,
    pub shared: Arc<Shared>,
    pub index: usize,
    pub directory: StateDirectory,
    pub process_id: String,
    pub settings: StoreSettings,
    pub global_stores: Vec<StoreEntry>,
    pub metrics: Arc<StreamsMetrics>,
}

impl StreamThread {
    pub(crate) fn run(self) -> Result<(), StreamsError> {
        let app = self.config.application_id.clone();
        let name = format!("{app}-StreamThread-{}", self.index + 1);
        let exactly_once = self.config.processing_guarantee == ProcessingGuarantee::ExactlyOnce;
        // One transactional id per thread of a process: a restarted process (same state
        // directory, same process id) fences its predecessor and aborts what it left open.
        let transactional_id =
            exactly_once.then(|| format!("{app}-{}-{}", self.process_id, self.index + 1));
        let collector = RecordCollector::new(
            &self.client,
            transactional_id.as_deref(),
            self.config.transaction_timeout,
        )?;
        let context = StreamsConsumerContext {
            metrics: self.metrics.clone(),
            thread: name.clone(),
        };
        let mut consumer_config = self.client.clone();
        consumer_config
            .set("group.id", &app)
            .set("client.id", super::query::client_id(&self.config, &name))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "range")
            .set("statistics.interval.ms", "1000")
            .set(
                "isolation.level",
                if exactly_once {
                    "read_committed"
                } else {
                    "read_uncommitted"
                },
            );
        let consumer: BaseConsumer<StreamsConsumerContext> = consumer_config
            .create_with_context(context)
            .map_err(kafka)?;
        let inner = &self.topology.inner;
        let readers: HashMap<String, (usize, Arc<str>)> = inner
            .subtopologies
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != inner.global)
            .flat_map(|(i, s)| s.source_topics.iter().map(move |t| (t, i)))
            .map(|(t, i)| {
                let full = t.resolve(&app);
                (full.clone(), (i, Arc::from(full.as_str())))
            })
            .collect();
        let topics: Vec<&str> = readers.keys().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(kafka)?;
        let metrics = ThreadMetrics::new(&self.metrics, &name);
        let core = Rc::new(RefCell::new(ThreadCore {
            name,
            index: self.index,
            topology: self.topology.clone(),
            config: self.config.clone(),
            client: self.client.clone(),
            shared: self.shared.clone(),
            exactly_once,
            readers,
            tasks: BTreeMap::new(),
            suspended: BTreeMap::new(),
            assignment: None,
            assigned: Vec::new(),
            collector,
            transactional_id,
            restorer: None,
            directory: self.directory.clone(),
            settings: self.settings.clone(),
            global_stores: self.global_stores.clone(),
            metrics: self.metrics.clone(),
            m: metrics,
            callback_error: None,
            closing: false,
        }));
        CORE.with_borrow_mut(|c| *c = Some(core.clone()));
        let result = run_loop(&core, &consumer);
        let closed = core.borrow_mut().shutdown(&consumer, result.is_ok());
        core.borrow_mut().closing = true;
        consumer.unsubscribe();
        drop(consumer);
        CORE.with_borrow_mut(|c| *c = None);
        result.and(closed)
    }
}

fn run_loop(
    core: &Rc<RefCell<ThreadCore>>,
    consumer: &BaseConsumer<StreamsConsumerContext>,
) -> Result<(), StreamsError> {
    let commit_interval = core.borrow().config.effective_commit_interval();
    let mut last_commit = Instant::now();
    loop {
        if core.borrow().shared.shutdown.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Poll a batch. Rebalance callbacks run inside poll and borrow the core, so no
        // borrow may be held across it.
        // Every queued record was processed last iteration: wait a little for the first.
        let mut timeout = Duration::from_millis(50);
        for _ in 0..MAX_POLL_RECORDS {
            let Some(message) = consumer.poll(timeout) else {
                break;
            };
            timeout = Duration::ZERO;
            let mut c = core.borrow_mut();
            if let Some(e) = c.callback_error.take() {
                return Err(e);
            }
            c.apply_assignment(consumer)?;
            match message {
                Ok(message) => c.enqueue(&message),
                // librdkafka reports broker trouble and retries on its own; only a fatal
                // error ends the thread.
                Err(e) => match consumer.client().fatal_error() {
                    Some((_, reason)) => return Err(kafka(format!("consumer: {reason}"))),
                    None => tracing::warn!(thread = %c.name, "consumer: {e}"),
                },
            }
        }
        let mut c = core.borrow_mut();
        if let Some(e) = c.callback_error.take() {
            return Err(e);
        }
        c.apply_assignment(consumer)?;
        c.process_queued()?;
        c.punctuate_wall_clock()?;
        if last_commit.elapsed() >= commit_interval {
            c.commit_or_recover(consumer)?;
            last_commit = Instant::now();
        }
        if c.m.last_tick.elapsed() >= METRICS_INTERVAL {
            c.publish_metrics();
        }
    }
}

impl ThreadCore {
    fn store_env(&self) -> (&StoreSettings, &StateDirectory) {
        (&self.settings, &self.directory)
    }

    /// Copies a polled message into its task's queue.
    fn enqueue(&mut self, message: &rdkafka::message::BorrowedMessage<'_>) {
        let Some((sub, topic)) = self.readers.get(message.topic()) else {
            return;
        };
        let id = TaskId {
            subtopology: *sub as u32,
            partition: message.partition(),
        };
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
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
            topic: topic.clone(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis().unwrap_or(0),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
        };
        let topic = topic.clone();
        task.queue.push(&topic, record);
        self.m.consumed.inc();
    }

    /// Processes every queued record, task by task.
    fn process_queued(&mut self) -> Result<(), StreamsError> {
        let ThreadCore {
            tasks,
            collector,
            m,
            config,
            ..
        } = self;
        let policy = config.production_policy;
        for active in tasks.values_mut() {
            let mut started = Instant::now();
            while let Some(record) = active.queue.next() {
                let source = (record.topic.clone(), record.partition, record.offset);
                let processed = active.task.process(record);
                let output = active.task.take_output();
                send_all(collector, &mut active.task, output, true, policy)?;
                processed?;
                active.consumed.insert((source.0, source.1), source.2 + 1);
                let now = Instant::now();
                m.process_latency
                    .observe(now.duration_since(started).as_secs_f64());
                started = now;
            }
        }
        Ok(())
    }

    fn punctuate_wall_clock(&mut self) -> Result<(), StreamsError> {
        let now = now_ms();
        let policy = self.config.production_policy;
        let ThreadCore {
            tasks, collector, ..
        } = self;
        for active in tasks.values_mut() {
            let fired = active.task.advance_wall_clock(now);
            let output = active.task.take_output();
            send_all(collector, &mut active.task, output, false, policy)?;
            fired?;
        }
        Ok(())
    }

    /// Commits; under exactly-once, a failed transaction is aborted and the tasks resume
    /// from the committed offsets.
    fn commit_or_recover(
        &mut self,
        consumer: &BaseConsumer<StreamsConsumerContext>,
    ) -> Result<(), StreamsError> {
        match self.commit(consumer) {
            Ok(()) => Ok(()),
            Err(CommitError::Other(e)) => Err(e),
            Err(CommitError::Transaction(e)) => {
                tracing::warn!(thread = %self.name, "{e}; resuming from the committed offsets");
                self.recover(consumer, matches!(e, TxnError::Fatal(_)))
            }
        }
    }

    /// Flushes stores and producer, then commits offsets (at-least-once) or the transaction
    /// (exactly-once).
    fn commit(
        &mut self,
        consumer: &BaseConsumer<StreamsConsumerContext>,
    ) -> Result<(), CommitError> {
        let started = Instant::now();
        let policy = self.config.production_policy;
        let ThreadCore {
            tasks, collector, ..
        } = self;
        for active in tasks.values_mut() {
            active.task.flush_stores()?;
            let output = active.task.take_output();
            send_all(collector, &mut active.task, output, false, policy)?;
        }
        let mut offsets = TopicPartitionList::new();
        for active in self.tasks.values() {
            for ((topic, partition), offset) in &active.consumed {
                offsets
                    .add_partition_offset(topic, *partition, Offset::Offset(*offset))
                    .map_err(|e| CommitError::Other(kafka(e)))?;
            }
        }
        if self.exactly_once {
            if offsets.count() == 0 && !self.collector.in_transaction() {
                return Ok(());
            }
            let group = consumer.group_metadata().ok_or_else(|| {
                CommitError::Other(StreamsError::Kafka("no group metadata".into()))
            })?;
            self.collector
                .commit_transaction(&offsets, &group)
                .map_err(CommitError::Transaction)?;
            let failures = self.collector.take_failures();
            if let Some(f) = failures.first() {
                return Err(CommitError::Other(StreamsError::Kafka(format!(
                    "the broker refused a record for `{}`-{}: {}",
                    f.topic, f.partition, f.error
                ))));
            }
        } else {
            if offsets.count() == 0 && self.tasks.values().all(|t| t.consumed.is_empty()) {
                // Nothing processed: flush anyway so punctuation output is not held back.
                self.collector.flush()?;
                self.handle_delivery_failures()?;
                return Ok(());
            }
            self.collector.flush()?;
            self.handle_delivery_failures()?;
            if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
                // The partitions moved: their new owner reprocesses from the last commit.
                tracing::warn!(thread = %self.name, "offset commit failed, records may be processed again: {e}");
            }
        }
        for active in self.tasks.values_mut() {
            active.consumed.clear();
            active.observe_changelogs(&self.collector);
            if !self.exactly_once {
                active.write_checkpoint()?;
            }
        }
        self.m.commits.inc();
        self.m
            .commit_latency
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Applies the production policy to records the broker refused (at-least-once).
    fn handle_delivery_failures(&mut self) -> Result<(), StreamsError> {
        let failures = self.collector.take_failures();
        if failures.is_empty() {
            return Ok(());
        }
        let policy = self.config.production_policy;
        let dead_letter_topic: Arc<str> = self.config.dead_letter_topic().into();
        let mut dead = Vec::new();
        for f in failures {
            match policy {
                ErrorPolicy::Fail => {
                    return Err(StreamsError::Kafka(format!(
                        "the broker refused a record for `{}`-{}: {}",
                        f.topic, f.partition, f.error
                    )))
                }
                ErrorPolicy::LogAndContinue => {
                    tracing::warn!(topic = %f.topic, partition = f.partition, "dropping a record the broker refused: {}", f.error);
                    self.m.closed.dropped_records += 1;
                }
                ErrorPolicy::DeadLetter => {
                    let mut headers = f.headers.clone();
                    headers.add(DLQ_ERROR_KIND, "production");
                    headers.add(DLQ_ERROR_MESSAGE, &f.error);
                    headers.add(DLQ_ERROR_PROCESSOR, "sink");
                    headers.add(DLQ_ERROR_TOPIC, &f.topic);
                    headers.add(DLQ_ERROR_PARTITION, f.partition.to_string());
                    headers.add(DLQ_ERROR_OFFSET, "-1");
                    dead.push(ProducerRecord {
                        topic: dead_letter_topic.clone(),
                        partition: None,
                        key: f.key,
                        value: f.value,
                        timestamp: f.timestamp,
                        headers,
                    });
                    self.m.closed.dead_lettered_records += 1;
                }
            }
        }
        for record in &dead {
            self.collector.send(record).map_err(|e| match e {
                SendError::Rejected(e) => StreamsError::Kafka(e),
                SendError::Producer(e) => e,
            })?;
        }
        self.collector.flush()
    }

    /// Aborts the open transaction, rebuilds every task from its changelog and rewinds the
    /// consumer to the committed offsets (exactly-once).
    fn recover(
        &mut self,
        consumer: &BaseConsumer<StreamsConsumerContext>,
        fatal: bool,
    ) -> Result<(), StreamsError> {
        self.m.aborted.inc();
        let aborted = if fatal {
            Err(TxnError::Fatal("producer failed".into()))
        } else {
            self.collector.abort_transaction()
        };
        if let Err(e) = aborted {
            tracing::warn!(thread = %self.name, "{e}; replacing the producer");
            self.collector = RecordCollector::new(
                &self.client,
                self.transactional_id.as_deref(),
                self.config.transaction_timeout,
            )?;
        }
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        self.close_all_dirty();
        self.rewind(consumer)?;
        let created = self.create_tasks(&ids)?;
        self.tasks.extend(created);
        self.publish_tasks();
        Ok(())
    }

    /// Seeks every assigned partition back to its committed offset.
    fn rewind(&self, consumer: &BaseConsumer<StreamsConsumerContext>) -> Result<(), StreamsError> {
        let mut wanted = TopicPartitionList::new();
        for (topic, partition) in &self.assigned {
            wanted.add_partition(topic, *partition);
        }
        if wanted.count() == 0 {
            return Ok(());
        }
        let committed = consumer
            .committed_offsets(wanted, Duration::from_secs(30))
            .map_err(kafka)?;
        for element in committed.elements() {
            let offset = match element.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            consumer
                .seek(
                    element.topic(),
                    element.partition(),
                    offset,
                    Duration::from_secs(30),
                )
                .map_err(kafka)?;
        }
        Ok(())
    }

    /// Drops every task without committing; under exactly-once their persistent state may
    /// hold uncommitted writes, so it is wiped.
    fn close_all_dirty(&mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        let suspended = std::mem::take(&mut self.suspended);
        for (_, active) in tasks.into_iter().chain(suspended) {
            self.m.closed += active.task.ctx.metrics;
            let ActiveTask {
                task, directory, ..
            } = active;
            drop(task);
            if let (true, Some(directory)) = (self.exactly_once, &directory) {
                if let Err(e) = directory.wipe() {
                    tracing::warn!("cannot wipe a task's state: {e}");
                }
            }
        }
    }

    /// Before partitions are revoked: commit, then keep the tasks aside.
    fn on_revoke(&mut self, consumer: &BaseConsumer<StreamsConsumerContext>) {
        if self.closing {
            return;
        }
        self.shared.set_thread(self.index, ThreadState::Rebalancing);
        tracing::info!(thread = %self.name, partitions = ?self.assigned, "partitions revoked");
        if consumer.assignment_lost() {
            tracing::warn!(thread = %self.name, "partitions lost (session timed out): closing tasks without commit");
            if self.exactly_once {
                let _ = self.collector.abort_transaction();
            }
            self.close_all_dirty();
        } else {
            match self.commit(consumer) {
                Ok(()) => {
                    let mut tasks = std::mem::take(&mut self.tasks);
                    for active in tasks.values_mut() {
                        active.queue.clear();
                    }
                    self.suspended.extend(tasks);
                }
                Err(CommitError::Transaction(e)) => {
                    tracing::warn!(thread = %self.name, "{e} before a rebalance; tasks closed without commit");
                    let _ = self.collector.abort_transaction();
                    self.close_all_dirty();
                }
                Err(CommitError::Other(e)) => {
                    self.callback_error = Some(e);
                }
            }
        }
        let revoked = std::mem::take(&mut self.assigned);
        self.metrics.clear_lag(&self.name, &revoked);
        self.publish_tasks();
    }

    /// Applies an assignment received in a callback: resumes kept tasks, closes the others and
    /// builds and restores new ones.
    fn apply_assignment(
        &mut self,
        _consumer: &BaseConsumer<StreamsConsumerContext>,
    ) -> Result<(), StreamsError> {
        let Some(assigned) = self.assignment.take() else {
            return Ok(());
        };
        self.shared.set_thread(self.index, ThreadState::Rebalancing);
        let wanted: BTreeSet<TaskId> = assigned
            .iter()
            .filter_map(|(t, p)| {
                self.readers.get(t).map(|(sub, _)| TaskId {
                    subtopology: *sub as u32,
                    partition: *p,
                })
            })
            .collect();
        let suspended = std::mem::take(&mut self.suspended);
        for (id, active) in suspended {
            if wanted.contains(&id) {
                self.tasks.insert(id, active);
            } else {
                self.close_clean(active);
            }
        }
        let new: Vec<TaskId> = wanted
            .into_iter()
            .filter(|id| !self.tasks.contains_key(id))
            .collect();
        let created = self.create_tasks(&new)?;
        self.tasks.extend(created);
        self.assigned = assigned;
        self.publish_tasks();
        self.shared.set_thread(self.index, ThreadState::Running);
        Ok(())
    }

    fn publish_tasks(&self) {
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        self.metrics
            .active_tasks
            .get_or_create(&self.m.labels)
            .set(ids.len() as i64);
        self.shared.set_tasks(self.index, ids, self.store_entries());
    }

    /// The stores of the running tasks, for interactive queries.
    fn store_entries(&self) -> Vec<(TaskId, StoreEntry)> {
        self.tasks
            .iter()
            .flat_map(|(id, t)| t.task.ctx.stores.entries().map(|e| (*id, e.clone())))
            .collect()
    }

    /// Writes a task's checkpoint and closes it.
    fn close_clean(&mut self, active: ActiveTask) {
        let mut active = active;
        active.observe_changelogs(&self.collector);
        if let Err(e) = active.write_checkpoint() {
            tracing::warn!(
                "cannot write the checkpoint of task {}: {e}",
                active.task.id()
            );
        }
        self.m.closed += active.task.ctx.metrics;
    }

    /// Builds tasks, locking their directories where they have persistent stores, and
    /// restores all their stores in one pass over the changelogs before any processes.
    fn create_tasks(&mut self, ids: &[TaskId]) -> Result<Vec<(TaskId, ActiveTask)>, StreamsError> {
        let mut built = Vec::with_capacity(ids.len());
        let mut targets = Vec::new();
        for &id in ids {
            let (task, task_targets) = self.build_task(id)?;
            targets.extend(task_targets);
            built.push((id, task));
        }
        if targets.is_empty() {
            return Ok(built);
        }
        if self.restorer.is_none() {
            self.restorer = Some(ChangelogReader::new(
                &self.client,
                &self.config.application_id,
                self.exactly_once,
            )?);
        }
        let restorer = self.restorer.as_ref().expect("created above");
        let ends = restorer.restore(targets, &self.metrics)?;
        for (_, active) in &mut built {
            for (_, log) in active.task.ctx.stores.logged() {
                let key = (log.topic.to_string(), log.partition);
                if let Some(end) = ends.get(&key) {
                    active.changelog_offsets.insert(key, *end);
                }
            }
        }
        Ok(built)
    }

    /// Builds one task and says which changelog partitions to restore from where.
    fn build_task(&mut self, id: TaskId) -> Result<(ActiveTask, Vec<RestoreTarget>), StreamsError> {
        let inner = self.topology.inner.clone();
        let sub = id.subtopology as usize;
        let (settings, state_dir) = self.store_env();
        let persistent = inner.subtopologies[sub].stores.iter().any(|name| {
            inner
                .stores
                .get(name)
                .is_some_and(|def| !def.global && def.store_type(settings) != StoreType::InMemory)
        });
        let directory = if persistent {
            Some(lock_with_retry(state_dir, id)?)
        } else {
            None
        };
        let checkpoint = match &directory {
            Some(d) => d.read_checkpoint()?,
            None => Checkpoint::new(),
        };
        if let (true, Some(d)) = (self.exactly_once, &directory) {
            if checkpoint.is_empty() && d.has_stores() {
                tracing::info!(task = %id, "no clean checkpoint under exactly-once: wiping local state to restore it");
                d.wipe()?;
            }
            // From now until a clean close, the local state may run ahead of what is
            // committed: a crash must find no checkpoint.
            d.delete_checkpoint()?;
        }
        let env = TaskEnv {
            settings: &self.settings,
            directory: directory.as_ref(),
        };
        let task = Task::new(
            &inner,
            sub,
            id.partition,
            &self.config,
            now_ms(),
            &self.global_stores,
            &env,
        )?;
        let targets: Vec<RestoreTarget> = task
            .ctx
            .stores
            .logged()
            .map(|(entry, log)| RestoreTarget {
                store: entry.clone(),
                topic: log.topic.clone(),
                partition: log.partition,
                from: if entry.persistent {
                    checkpoint
                        .get(&(log.topic.to_string(), log.partition))
                        .copied()
                } else {
                    None
                },
            })
            .collect();
        let active = ActiveTask {
            task,
            queue: PartitionGroup::new(),
            consumed: BTreeMap::new(),
            changelog_offsets: checkpoint,
            directory,
        };
        Ok((active, targets))
    }

    /// Final commit and clean close of every task.
    fn shutdown(
        &mut self,
        consumer: &BaseConsumer<StreamsConsumerContext>,
        clean: bool,
    ) -> Result<(), StreamsError> {
        self.shared
            .set_thread(self.index, ThreadState::PendingShutdown);
        let committed = if clean {
            match self.commit(consumer) {
                Ok(()) => Ok(()),
                Err(CommitError::Transaction(e)) => {
                    let _ = self.collector.abort_transaction();
                    Err(StreamsError::Kafka(e.to_string()))
                }
                Err(CommitError::Other(e)) => Err(e),
            }
        } else {
            if self.exactly_once {
                let _ = self.collector.abort_transaction();
            }
            Ok(())
        };
        if committed.is_ok() && clean {
            let tasks = std::mem::take(&mut self.tasks);
            let suspended = std::mem::take(&mut self.suspended);
            for (_, active) in tasks.into_iter().chain(suspended) {
                self.close_clean(active);
            }
        } else {
            self.close_all_dirty();
        }
        self.publish_metrics();
        self.shared.set_tasks(self.index, Vec::new(), Vec::new());
        let assigned = std::mem::take(&mut self.assigned);
        self.metrics.clear_lag(&self.name, &assigned);
        committed
    }

    /// Publishes rates and task counters.
    fn publish_metrics(&mut self) {
        let mut total = self.m.closed;
        for active in self.tasks.values().chain(self.suspended.values()) {
            total += active.task.ctx.metrics;
        }
        let reported = self.m.reported;
        self.m.dropped.inc_by(
            total
                .dropped_records
                .saturating_sub(reported.dropped_records),
        );
        self.m.dead_lettered.inc_by(
            total
                .dead_lettered_records
                .saturating_sub(reported.dead_lettered_records),
        );
        self.m.late.inc_by(
            total
                .late_records_dropped
                .saturating_sub(reported.late_records_dropped),
        );
        self.m.reported = total;
        let acknowledged = self.collector.acknowledged();
        let produced = self.m.produced.get();
        self.m
            .produced
            .inc_by(acknowledged.saturating_sub(produced));
        let elapsed = self.m.last_tick.elapsed().as_secs_f64().max(1e-3);
        let consumed = self.m.consumed.get();
        self.metrics
            .consumed_rate
            .get_or_create(&self.m.labels)
            .set((consumed - self.m.consumed_at_tick) as f64 / elapsed);
        self.metrics
            .produced_rate
            .get_or_create(&self.m.labels)
            .set((acknowledged.saturating_sub(self.m.produced_at_tick)) as f64 / elapsed);
        #[cfg(feature = "rocksdb")]
        self.metrics
            .rocksdb_memory
            .set(self.settings.rocksdb.cache_usage() as i64);
        self.m.consumed_at_tick = consumed;
        self.m.produced_at_tick = acknowledged;
        self.m.last_tick = Instant::now();
    }
}

/// Hands a task's output to the collector, applying the production policy to records
/// librdkafka refuses outright (too large, unknown partition). `caused_by_record` says the
/// output came from the task's last source record (not from a punctuation or a commit),
/// which is then what a dead-letter record carries.
fn send_all(
    collector: &mut RecordCollector,
    task: &mut Task,
    output: Vec<ProducerRecord>,
    caused_by_record: bool,
    policy: ErrorPolicy,
) -> Result<(), StreamsError> {
    for record in output {
        let message = match collector.send(&record) {
            Ok(()) => continue,
            Err(SendError::Producer(e)) => return Err(e),
            Err(SendError::Rejected(message)) => message,
        };
        match policy {
            ErrorPolicy::Fail => return Err(StreamsError::Kafka(message)),
            ErrorPolicy::LogAndContinue => {
                tracing::warn!(task = %task.id(), "dropping an output record: {message}");
                task.ctx.metrics.dropped_records += 1;
            }
            ErrorPolicy::DeadLetter => {
                let source = caused_by_record.then(|| task.ctx.last.clone()).flatten();
                let (key, value, mut headers, timestamp) = match &source {
                    Some(r) => (
                        r.key.clone(),
                        r.value.clone(),
                        r.headers.clone(),
                        r.timestamp,
                    ),
                    None => (
                        record.key.clone(),
                        record.value.clone(),
                        record.headers.clone(),
                        record.timestamp,
                    ),
                };
                headers.add(DLQ_ERROR_KIND, "production");
                headers.add(DLQ_ERROR_MESSAGE, &message);
                headers.add(DLQ_ERROR_PROCESSOR, "sink");
                match &source {
                    Some(r) => {
                        headers.add(DLQ_ERROR_TOPIC, &*r.topic);
                        headers.add(DLQ_ERROR_PARTITION, r.partition.to_string());
                        headers.add(DLQ_ERROR_OFFSET, r.offset.to_string());
                    }
                    None => {
                        headers.add(DLQ_ERROR_TOPIC, &*record.topic);
                        headers.add(
                            DLQ_ERROR_PARTITION,
                            record.partition.unwrap_or(-1).to_string(),
                        );
                        headers.add(DLQ_ERROR_OFFSET, "-1");
                    }
                }
                let dead = ProducerRecord {
                    topic: task.ctx.dead_letter_topic.clone(),
                    partition: None,
                    key,
                    value,
                    timestamp,
                    headers,
                };
                task.ctx.metrics.dead_lettered_records += 1;
                collector.send(&dead).map_err(|e| match e {
                    SendError::Rejected(e) => StreamsError::Kafka(format!(
                        "the dead-letter topic refused a record too: {e}"
                    )),
                    SendError::Producer(e) => e,
                })?;
            }
        }
    }
    Ok(())
}

fn lock_with_retry(directory: &StateDirectory, id: TaskId) -> Result<TaskDirectory, StreamsError> {
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        match directory.lock_task(id) {
            Ok(d) => return Ok(d),
            Err(LockError::Io(e)) => return Err(e.into()),
            Err(LockError::Locked(path)) => {
                if Instant::now() >= deadline {
                    return Err(StreamsError::Other(format!(
                        "task {id}: the state directory {} stays locked by another instance \
                         (two instances must not share a state directory)",
                        path.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
