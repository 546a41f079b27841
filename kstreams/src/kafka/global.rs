//! The global stream thread: fills the stores of global tables from every partition of their
//! topics, for all stream tasks of the instance to read.
//!
//! [`KafkaStreams::start`](super::KafkaStreams::start) waits until the global stores hold
//! everything up to the end offsets measured at start (Kafka Streams does the same), then the
//! thread keeps them up to date. A global topic is its own changelog: persistent global
//! stores checkpoint the topic offsets they hold, in `<state-dir>/<application-id>/global/`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers as _, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::StreamsConfig;
use crate::error::StreamsError;
use crate::processor::Headers;
use crate::runtime::task::{ConsumerRecord, Task, TaskEnv};
use crate::state::{Checkpoint, StateDirectory, StoreEntry, StoreSettings, StoreType};
use crate::topology::Topology;

use super::topics::PartitionCounts;
use super::{kafka, now_ms, Shared};

/// How often persistent global stores checkpoint their offsets.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// A running global thread.
pub(crate) struct GlobalThread {
    pub handle: JoinHandle<()>,
    /// The global stores, shared with every stream task.
    pub stores: Vec<StoreEntry>,
}

struct GlobalTask {
    task: Task,
    topics: HashMap<String, Arc<str>>,
    /// Next offset per global partition.
    offsets: Checkpoint,
    directory: Option<crate::state::TaskDirectory>,
}

impl GlobalTask {
    fn apply(
        &mut self,
        message: &rdkafka::message::BorrowedMessage<'_>,
    ) -> Result<(), StreamsError> {
        let Some(topic) = self.topics.get(message.topic()) else {
            return Ok(());
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
        self.task.process(ConsumerRecord {
            topic: topic.clone(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis().unwrap_or(0),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
        })?;
        // A global table writes its store and nothing else.
        self.task.take_output();
        self.offsets.insert(
            (message.topic().to_string(), message.partition()),
            message.offset() + 1,
        );
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), StreamsError> {
        self.task.flush_stores()?;
        if let Some(directory) = &self.directory {
            directory.write_checkpoint(&self.offsets)?;
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn start(
    topology: &Topology,
    config: &StreamsConfig,
    client: &ClientConfig,
    counts: &PartitionCounts,
    settings: &StoreSettings,
    state_dir: &StateDirectory,
    shared: Arc<Shared>,
) -> Result<Option<GlobalThread>, StreamsError> {
    let inner = &topology.inner;
    let Some(global) = inner.global else {
        return Ok(None);
    };
    let app = config.application_id.clone();
    let topics: Vec<String> = inner.subtopologies[global]
        .source_topics
        .iter()
        .map(|t| t.resolve(&app))
        .collect();
    let mut partitions = Vec::new();
    for topic in &topics {
        let count = counts
            .get(topic)
            .copied()
            .ok_or_else(|| crate::TopologyError::MissingSourceTopic(topic.clone()))?;
        partitions.extend((0..count).map(|p| (topic.clone(), p)));
    }
    let persistent = inner.subtopologies[global].stores.iter().any(|name| {
        inner
            .stores
            .get(name)
            .is_some_and(|def| def.store_type(settings) != StoreType::InMemory)
    });
    let (ready_tx, ready_rx) = mpsc::channel::<Result<Vec<StoreEntry>, StreamsError>>();
    let (topology, config, client, settings, state_dir) = (
        topology.clone(),
        config.clone(),
        client.clone(),
        settings.clone(),
        state_dir.clone(),
    );
    let handle = std::thread::Builder::new()
        .name(format!("{app}-GlobalStreamThread"))
        .spawn(move || {
            let (mut global_task, consumer) = match build(
                &topology,
                global,
                &config,
                &client,
                &settings,
                &state_dir,
                persistent,
                topics,
                &partitions,
            ) {
                Ok(t) => t,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            if let Err(e) = restore(&mut global_task, &consumer, &partitions) {
                let _ = ready_tx.send(Err(e));
                return;
            }
            let stores: Vec<StoreEntry> = global_task.task.ctx.stores.entries().cloned().collect();
            if ready_tx.send(Ok(stores)).is_err() {
                return;
            }
            if let Err(e) = run(&mut global_task, &consumer, &shared) {
                tracing::error!("global stream thread failed: {e}");
                shared.fail(format!("global stream thread: {e}"));
            }
        })
        .map_err(|e| StreamsError::Other(e.to_string()))?;
    match ready_rx.recv() {
        Ok(Ok(stores)) => Ok(Some(GlobalThread { handle, stores })),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        Err(_) => Err(StreamsError::Other(
            "the global stream thread stopped before restoring".into(),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn build(
    topology: &Topology,
    global: usize,
    config: &StreamsConfig,
    client: &ClientConfig,
    settings: &StoreSettings,
    state_dir: &StateDirectory,
    persistent: bool,
    topics: Vec<String>,
    partitions: &[(String, i32)],
) -> Result<(GlobalTask, BaseConsumer), StreamsError> {
    let directory = if persistent {
        Some(state_dir.lock_global()?)
    } else {
        None
    };
    let checkpoint = match &directory {
        Some(d) => d.read_checkpoint()?,
        None => Checkpoint::new(),
    };
    let env = TaskEnv {
        settings,
        directory: directory.as_ref(),
    };
    let task = Task::new(&topology.inner, global, 0, config, now_ms(), &[], &env)?;
    let consumer: BaseConsumer = client
        .clone()
        .set("group.id", format!("{}-global", config.application_id))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "isolation.level",
            match config.processing_guarantee {
                crate::config::ProcessingGuarantee::ExactlyOnce => "read_committed",
                crate::config::ProcessingGuarantee::AtLeastOnce => "read_uncommitted",
            },
        )
        .create()
        .map_err(kafka)?;
    let mut assignment = TopicPartitionList::new();
    let mut offsets = Checkpoint::new();
    for (topic, partition) in partitions {
        let offset = match checkpoint.get(&(topic.clone(), *partition)) {
            Some(o) => {
                offsets.insert((topic.clone(), *partition), *o);
                Offset::Offset(*o)
            }
            None => Offset::Beginning,
        };
        assignment
            .add_partition_offset(topic, *partition, offset)
            .map_err(kafka)?;
    }
    consumer.assign(&assignment).map_err(kafka)?;
    let global = GlobalTask {
        task,
        topics: topics
            .into_iter()
            .map(|t| {
                let shared: Arc<str> = t.as_str().into();
                (t, shared)
            })
            .collect(),
        offsets,
        directory,
    };
    Ok((global, consumer))
}

/// Reads every global partition up to the end offset it had when restoring started.
fn restore(
    global: &mut GlobalTask,
    consumer: &BaseConsumer,
    partitions: &[(String, i32)],
) -> Result<(), StreamsError> {
    let started = Instant::now();
    let mut ends = HashMap::new();
    for (topic, partition) in partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, *partition, Duration::from_secs(30))
            .map_err(kafka)?;
        let at = global
            .offsets
            .get(&(topic.clone(), *partition))
            .copied()
            .unwrap_or(0);
        if high > at {
            ends.insert((topic.clone(), *partition), high);
        }
    }
    let mut restored = 0u64;
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                last_progress = Instant::now();
                global.apply(&message)?;
                restored += 1;
                let key = (message.topic().to_string(), message.partition());
                if ends
                    .get(&key)
                    .is_some_and(|end| message.offset() + 1 >= *end)
                {
                    ends.remove(&key);
                }
            }
            Some(Err(e)) => return Err(kafka(e)),
            None => {
                let positions = consumer.position().map_err(kafka)?;
                for e in positions.elements() {
                    let key = (e.topic().to_string(), e.partition());
                    if let (Some(end), Offset::Offset(p)) = (ends.get(&key), e.offset()) {
                        if p >= *end {
                            ends.remove(&key);
                        }
                    }
                }
                if !ends.is_empty() && last_progress.elapsed() > Duration::from_secs(120) {
                    return Err(StreamsError::Kafka(
                        "restoring global stores made no progress for 120s".into(),
                    ));
                }
            }
        }
    }
    global.checkpoint()?;
    tracing::info!(
        restored,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored global stores"
    );
    Ok(())
}

fn run(
    global: &mut GlobalTask,
    consumer: &BaseConsumer,
    shared: &Shared,
) -> Result<(), StreamsError> {
    let mut last_checkpoint = Instant::now();
    while !shared.shutdown.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => global.apply(&message)?,
            Some(Err(e)) => tracing::warn!("global consumer: {e}"),
            None => {}
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
            global.checkpoint()?;
            last_checkpoint = Instant::now();
        }
    }
    global.checkpoint()
}
