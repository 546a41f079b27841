//! A task: one partition of one sub-topology, with its processors, stores, clocks and the
//! records it has produced but not yet handed to the producer.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ErrorPolicy, StreamsConfig};
use crate::error::{BoxError, StreamsError};
use crate::processor::{Headers, Punctuation, PunctuationType, ScheduleId, TaskId};
use crate::runtime::node::{NodeOps, SourceInput};
use crate::serde::SerdeError;
use crate::state::{StoreContext, StoreEntry, StoreRegistry, StoreSettings, TaskDirectory};
use crate::topology::TopologyInner;

/// A record as read from a topic, still in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsumerRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Headers,
}

/// A record a task wants written to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerRecord {
    pub topic: Arc<str>,
    /// `None`: partition by the key, as Kafka's default partitioner does.
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub headers: Headers,
}

/// Counters of one task (or, summed, of an application), as
/// [`TestDriver::metrics`](crate::testing::TestDriver::metrics) reports them. On Kafka the
/// same counts are exported as Prometheus metrics
/// ([`KafkaStreams::metrics`](crate::kafka::KafkaStreams::metrics)).
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks")
///     .group_by_key()
///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
///     .count();
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("m")).unwrap();
/// let clicks = driver.create_input_topic::<String, String>("clicks");
/// clicks.pipe_input_at("a".into(), "x".into(), 25);
/// clicks.pipe_input_at("a".into(), "x".into(), 5); // its window [0,10) closed at 10
/// let metrics = driver.metrics();
/// assert_eq!((metrics.records_processed, metrics.late_records_dropped), (2, 1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskMetrics {
    /// Records taken from source topics.
    pub records_processed: u64,
    /// Records dropped: bad records under log-and-continue, invalid timestamps, null keys
    /// where a key is required.
    pub dropped_records: u64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered_records: u64,
    /// Records dropped by windowed operators because their window had closed.
    pub late_records_dropped: u64,
    /// Punctuations fired.
    pub punctuations: u64,
}

impl std::ops::AddAssign for TaskMetrics {
    fn add_assign(&mut self, o: Self) {
        self.records_processed += o.records_processed;
        self.dropped_records += o.dropped_records;
        self.dead_lettered_records += o.dead_lettered_records;
        self.late_records_dropped += o.late_records_dropped;
        self.punctuations += o.punctuations;
    }
}

struct Schedule {
    id: u64,
    node: usize,
    kind: PunctuationType,
    interval: i64,
    next: i64,
}

/// Everything a processor reaches through its context, owned by the task.
pub(crate) struct TaskContext {
    pub task_id: TaskId,
    pub application_id: Arc<str>,
    pub deserialization_policy: ErrorPolicy,
    pub processing_policy: ErrorPolicy,
    pub production_policy: ErrorPolicy,
    pub dead_letter_topic: Arc<str>,
    pub stores: StoreRegistry,
    pub output: Vec<ProducerRecord>,
    /// Largest timestamp seen, `-1` before the first record.
    pub stream_time: i64,
    wall_clock: i64,
    /// Timestamp of the record or punctuation being processed.
    pub record_timestamp: i64,
    /// The source record being processed (none during punctuation).
    pub current: Option<Rc<ConsumerRecord>>,
    /// The source record processed last, kept until the next one: the runtime dead-letters
    /// it when an output it caused cannot be produced.
    pub last: Option<Rc<ConsumerRecord>>,
    schedules: Vec<Schedule>,
    next_schedule_id: u64,
    pub metrics: TaskMetrics,
}

impl TaskContext {
    pub(crate) fn wall_clock(&self) -> i64 {
        self.wall_clock
    }

    pub(crate) fn schedule(
        &mut self,
        node: usize,
        interval: Duration,
        kind: PunctuationType,
    ) -> ScheduleId {
        let interval = (interval.as_millis() as i64).max(1);
        let id = self.next_schedule_id;
        self.next_schedule_id += 1;
        let next = match kind {
            PunctuationType::StreamTime => 0,
            PunctuationType::WallClockTime => self.wall_clock.saturating_add(interval),
        };
        self.schedules.push(Schedule {
            id,
            node,
            kind,
            interval,
            next,
        });
        ScheduleId(id)
    }

    pub(crate) fn cancel(&mut self, id: ScheduleId) {
        self.schedules.retain(|s| s.id != id.0);
    }

    /// Moves stream time forward (never back) and sets the current record time.
    pub(crate) fn observe_timestamp(&mut self, timestamp: i64) {
        self.stream_time = self.stream_time.max(timestamp);
        self.set_record_timestamp(timestamp);
    }

    fn set_record_timestamp(&mut self, timestamp: i64) {
        self.record_timestamp = timestamp;
        self.stores.clock.store(timestamp, Ordering::Relaxed);
    }

    pub(crate) fn record_dropped(&mut self, reason: &str) {
        self.metrics.dropped_records += 1;
        match &self.current {
            Some(r) => {
                tracing::warn!(task = %self.task_id, topic = %r.topic, partition = r.partition,
                offset = r.offset, "dropping record: {reason}")
            }
            None => tracing::warn!(task = %self.task_id, "dropping record: {reason}"),
        }
    }

    /// Writes the current source record to the dead-letter topic, with the error in headers.
    pub(crate) fn dead_letter(
        &mut self,
        kind: &str,
        processor: &str,
        error: &dyn std::fmt::Display,
    ) {
        let message = error.to_string();
        let (key, value, mut headers, timestamp) = match &self.current {
            Some(r) => (
                r.key.clone(),
                r.value.clone(),
                r.headers.clone(),
                r.timestamp,
            ),
            None => (None, None, Headers::new(), self.record_timestamp),
        };
        headers.add(DLQ_ERROR_KIND, kind);
        headers.add(DLQ_ERROR_MESSAGE, &message);
        headers.add(DLQ_ERROR_PROCESSOR, processor);
        if let Some(r) = &self.current {
            headers.add(DLQ_ERROR_TOPIC, &*r.topic);
            headers.add(DLQ_ERROR_PARTITION, r.partition.to_string());
            headers.add(DLQ_ERROR_OFFSET, r.offset.to_string());
        }
        tracing::warn!(task = %self.task_id, processor, kind, "record sent to dead-letter topic: {message}");
        self.output.push(ProducerRecord {
            topic: self.dead_letter_topic.clone(),
            partition: None,
            key,
            value,
            timestamp,
            headers,
        });
        self.metrics.dead_lettered_records += 1;
    }

    /// Applies the deserialization policy to a bad key or value of the current record.
    pub(crate) fn on_deserialization_error(
        &mut self,
        processor: &str,
        part: &'static str,
        error: SerdeError,
    ) -> Result<(), BoxError> {
        match self.deserialization_policy {
            ErrorPolicy::Fail => {
                let (topic, partition, offset) = match &self.current {
                    Some(r) => (r.topic.to_string(), r.partition, r.offset),
                    None => (String::new(), -1, -1),
                };
                Err(Box::new(StreamsError::Deserialization {
                    topic,
                    partition,
                    offset,
                    part,
                    source: error,
                }))
            }
            ErrorPolicy::LogAndContinue => {
                self.record_dropped(&format!("cannot deserialize {part}: {error}"));
                Ok(())
            }
            ErrorPolicy::DeadLetter => {
                self.dead_letter(
                    "deserialization",
                    processor,
                    &format!("cannot deserialize {part}: {error}"),
                );
                Ok(())
            }
        }
    }

    /// Applies the production policy to a record a sink cannot serialize.
    pub(crate) fn on_serialization_error(
        &mut self,
        processor: &str,
        topic: &str,
        part: &'static str,
        error: SerdeError,
    ) -> Result<(), BoxError> {
        match self.production_policy {
            ErrorPolicy::Fail => Err(Box::new(StreamsError::Serialization {
                topic: topic.to_string(),
                part,
                source: error,
            })),
            ErrorPolicy::LogAndContinue => {
                self.record_dropped(&format!("cannot serialize {part} for `{topic}`: {error}"));
                Ok(())
            }
            ErrorPolicy::DeadLetter => {
                self.dead_letter(
                    "serialization",
                    processor,
                    &format!("cannot serialize {part} for `{topic}`: {error}"),
                );
                Ok(())
            }
        }
    }

    /// Sends pending changelog writes to the output, stamped with the current record time.
    fn flush_changelogs(&mut self) {
        let timestamp = self.record_timestamp;
        for log in self.stores.changelogs() {
            for (key, value) in log.drain() {
                self.output.push(ProducerRecord {
                    topic: log.topic.clone(),
                    partition: Some(log.partition),
                    key: Some(key),
                    value,
                    timestamp,
                    headers: Headers::new(),
                });
            }
        }
    }
}

/// Header names of dead-letter records (the names of Kafka Streams' KIP-1034).
pub const DLQ_ERROR_KIND: &str = "__streams.errors.exception";
/// Header with the error message.
pub const DLQ_ERROR_MESSAGE: &str = "__streams.errors.message";
/// Header with the name of the processor that failed.
pub const DLQ_ERROR_PROCESSOR: &str = "__streams.errors.processor";
/// Header with the source topic.
pub const DLQ_ERROR_TOPIC: &str = "__streams.errors.topic";
/// Header with the source partition.
pub const DLQ_ERROR_PARTITION: &str = "__streams.errors.partition";
/// Header with the source offset.
pub const DLQ_ERROR_OFFSET: &str = "__streams.errors.offset";

/// Where a task's stores come from: the process's store settings and, for persistent
/// stores, the task's locked directory.
pub(crate) struct TaskEnv<'a> {
    pub settings: &'a StoreSettings,
    pub directory: Option<&'a TaskDirectory>,
}

/// One partition of one sub-topology.
pub(crate) struct Task {
    pub ctx: TaskContext,
    sources: HashMap<Arc<str>, Rc<RefCell<dyn SourceInput>>>,
    nodes: HashMap<usize, Rc<RefCell<dyn NodeOps>>>,
    /// Processor ids, parents before children: the order of `init` and of `flush`.
    order: Vec<usize>,
    closed: bool,
}

impl Task {
    /// Builds the stores and processors of a sub-topology for one partition, then
    /// initializes the processors.
    pub(crate) fn new(
        topology: &TopologyInner,
        subtopology: usize,
        partition: i32,
        config: &StreamsConfig,
        wall_clock: i64,
        global_stores: &[StoreEntry],
        env: &TaskEnv<'_>,
    ) -> Result<Task, StreamsError> {
        let task_id = TaskId {
            subtopology: subtopology as u32,
            partition,
        };
        let mut stores = StoreRegistry::new();
        let store_ctx = StoreContext {
            application_id: &config.application_id,
            partition,
            directory: env.directory,
            settings: env.settings,
        };
        for name in &topology.subtopologies[subtopology].stores {
            if let Some(global) = global_stores.iter().find(|g| &*g.name == name) {
                stores.insert(global.clone());
            } else if let Some(def) = topology.stores.get(name) {
                stores.insert(def.build(&store_ctx)?);
            }
        }
        let ctx = TaskContext {
            task_id,
            application_id: config.application_id.as_str().into(),
            deserialization_policy: config.deserialization_policy,
            processing_policy: config.processing_policy,
            production_policy: config.production_policy,
            dead_letter_topic: config.dead_letter_topic().into(),
            stores,
            output: Vec::new(),
            stream_time: -1,
            wall_clock,
            record_timestamp: -1,
            current: None,
            last: None,
            schedules: Vec::new(),
            next_schedule_id: 0,
            metrics: TaskMetrics::default(),
        };
        let instances = topology.instantiate(subtopology, &config.application_id);
        let mut task = Task {
            ctx,
            sources: instances.sources,
            nodes: instances.nodes,
            order: instances.init_order,
            closed: false,
        };
        for id in task.order.clone() {
            let node = task.nodes[&id].clone();
            node.borrow_mut().init(&mut task.ctx)?;
        }
        task.ctx.flush_changelogs();
        Ok(task)
    }

    pub(crate) fn id(&self) -> TaskId {
        self.ctx.task_id
    }

    /// The full names of the topics this task reads.
    pub(crate) fn source_topics(&self) -> impl Iterator<Item = &Arc<str>> {
        self.sources.keys()
    }

    /// Processes one record end to end, then fires due stream-time punctuations.
    pub(crate) fn process(&mut self, record: ConsumerRecord) -> Result<(), StreamsError> {
        let source = self
            .sources
            .get(&record.topic)
            .cloned()
            .ok_or_else(|| StreamsError::UnknownTopic(record.topic.to_string()))?;
        let record = Rc::new(record);
        self.ctx.current = Some(record.clone());
        self.ctx.set_record_timestamp(record.timestamp);
        self.ctx.metrics.records_processed += 1;
        let result = source.borrow_mut().process_raw(&mut self.ctx, &record);
        let result = match result {
            Ok(()) => Ok(()),
            Err(err) => self.on_error(err),
        };
        self.ctx.flush_changelogs();
        self.ctx.last = self.ctx.current.take();
        result?;
        self.punctuate(PunctuationType::StreamTime, self.ctx.stream_time)?;
        Ok(())
    }

    /// Applies the processing policy to an error that reached the task.
    fn on_error(&mut self, err: BoxError) -> Result<(), StreamsError> {
        let err = StreamsError::from_processor("unknown", err);
        let StreamsError::Processing { processor, source } = err else {
            return Err(err);
        };
        match self.ctx.processing_policy {
            ErrorPolicy::Fail => Err(StreamsError::Processing { processor, source }),
            ErrorPolicy::LogAndContinue => {
                self.ctx
                    .record_dropped(&format!("processor `{processor}` failed: {source}"));
                Ok(())
            }
            ErrorPolicy::DeadLetter => {
                self.ctx.dead_letter("processing", &processor, &source);
                Ok(())
            }
        }
    }

    /// Sets the wall clock and fires due wall-clock punctuations.
    pub(crate) fn advance_wall_clock(&mut self, now: i64) -> Result<usize, StreamsError> {
        self.ctx.wall_clock = self.ctx.wall_clock.max(now);
        self.punctuate(PunctuationType::WallClockTime, self.ctx.wall_clock)
    }

    /// Fires every punctuation of this clock that is due at `now`.
    pub(crate) fn punctuate(
        &mut self,
        kind: PunctuationType,
        now: i64,
    ) -> Result<usize, StreamsError> {
        if kind == PunctuationType::StreamTime && now < 0 {
            return Ok(0);
        }
        let mut fired = 0;
        loop {
            let due = self
                .ctx
                .schedules
                .iter_mut()
                .filter(|s| s.kind == kind && s.next <= now)
                .min_by_key(|s| s.next);
            let Some(schedule) = due else { break };
            // Missed intervals fire once; the next firing stays on the interval grid.
            let missed = (now - schedule.next) / schedule.interval;
            let fired_at = schedule.next;
            schedule.next = fired_at + (missed + 1) * schedule.interval;
            let (id, node) = (schedule.id, schedule.node);
            let Some(node) = self.nodes.get(&node).cloned() else {
                continue;
            };
            self.ctx.set_record_timestamp(now);
            let punctuation = Punctuation {
                id: ScheduleId(id),
                kind,
                timestamp: now,
            };
            self.ctx.metrics.punctuations += 1;
            let result = node.borrow_mut().punctuate(&mut self.ctx, punctuation);
            self.ctx.flush_changelogs();
            result?;
            fired += 1;
        }
        Ok(fired)
    }

    /// Takes the records produced so far.
    pub(crate) fn take_output(&mut self) -> Vec<ProducerRecord> {
        std::mem::take(&mut self.ctx.output)
    }

    /// What a commit does before the output is flushed: lets every processor forward what
    /// it holds back (parents first, so what a parent forwards reaches a child that holds
    /// records back before the child flushes), then writes down every store's cache, so
    /// that their changelog records join the output.
    pub(crate) fn flush_stores(&mut self) -> Result<(), StreamsError> {
        for i in 0..self.order.len() {
            let node = self.nodes[&self.order[i]].clone();
            let result = node.borrow_mut().flush(&mut self.ctx);
            let result = match result {
                Ok(()) => Ok(()),
                Err(err) => self.on_error(err),
            };
            self.ctx.flush_changelogs();
            result?;
        }
        for entry in self.ctx.stores.entries() {
            entry.flush()?;
        }
        self.ctx.flush_changelogs();
        Ok(())
    }

    /// Closes every processor once.
    pub(crate) fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        for node in self.nodes.values() {
            node.borrow_mut().close();
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.close();
    }
}
