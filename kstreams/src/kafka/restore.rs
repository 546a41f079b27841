//! Restoring stores from their changelog topics before a task processes anything.
//!
//! A stream thread's [`ChangelogReader`] is assigned every changelog partition of the tasks it
//! is about to run, each from its checkpointed offset (persistent stores) or from the
//! beginning (in-memory stores), reads to the end offset measured when restoring started,
//! and applies records to the stores below their change-logging layer in batches. Progress
//! is logged and counted (records restored, records per second) per store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::error::StreamsError;
use crate::state::StoreEntry;

use super::kafka;
use super::metrics::StreamsMetrics;

/// Records applied to a store per batch.
const BATCH: usize = 10_000;
/// How long restoring may go without any progress.
const STALL_TIMEOUT: Duration = Duration::from_secs(120);

/// One changelog partition to restore into one store.
pub(crate) struct RestoreTarget {
    pub store: StoreEntry,
    pub topic: Arc<str>,
    pub partition: i32,
    /// Where to start; `None`: the beginning of the partition.
    pub from: Option<i64>,
}

struct Progress {
    target: RestoreTarget,
    end: i64,
    batch: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    restored: u64,
    done: bool,
}

/// Reads changelogs into stores.
pub(crate) struct ChangelogReader {
    consumer: BaseConsumer,
}

impl ChangelogReader {
    pub(crate) fn new(
        client: &ClientConfig,
        application_id: &str,
        read_committed: bool,
    ) -> Result<Self, StreamsError> {
        let consumer: BaseConsumer = client
            .clone()
            .set("group.id", format!("{application_id}-restore"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "isolation.level",
                if read_committed {
                    "read_committed"
                } else {
                    "read_uncommitted"
                },
            )
            .set("fetch.max.bytes", "52428800")
            .set("max.partition.fetch.bytes", "10485760")
            // Restoring reads up to a known end offset: a fetch that finds nothing new should
            // come back at once rather than wait for data (the default waits up to 500 ms).
            .set("fetch.wait.max.ms", "20")
            .create()
            .map_err(kafka)?;
        Ok(ChangelogReader { consumer })
    }

    /// Restores every target to the end of its changelog partition; returns the offset each
    /// partition was read up to, by (topic, partition).
    pub(crate) fn restore(
        &self,
        targets: Vec<RestoreTarget>,
        metrics: &StreamsMetrics,
    ) -> Result<HashMap<(String, i32), i64>, StreamsError> {
        let mut ends = HashMap::new();
        // By topic, then partition: looked up by the message's borrowed topic name.
        let mut pending: HashMap<String, HashMap<i32, Progress>> = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for target in targets {
            let (low, high) = self
                .consumer
                .fetch_watermarks(&target.topic, target.partition, Duration::from_secs(30))
                .map_err(kafka)?;
            let start = target.from.unwrap_or(low).max(low);
            ends.insert((target.topic.to_string(), target.partition), high);
            if start >= high {
                continue;
            }
            let offset = match target.from {
                Some(from) if from > low => Offset::Offset(from),
                _ => Offset::Beginning,
            };
            assignment
                .add_partition_offset(&target.topic, target.partition, offset)
                .map_err(kafka)?;
            pending.entry(target.topic.to_string()).or_default().insert(
                target.partition,
                Progress {
                    target,
                    end: high,
                    batch: Vec::new(),
                    restored: 0,
                    done: false,
                },
            );
        }
        if pending.is_empty() {
            return Ok(ends);
        }
        self.consumer.assign(&assignment).map_err(kafka)?;
        let started = Instant::now();
        let mut last_progress = Instant::now();
        let mut remaining: usize = pending.values().map(HashMap::len).sum();
        while remaining > 0 {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    last_progress = Instant::now();
                    let Some(progress) = pending
                        .get_mut(message.topic())
                        .and_then(|p| p.get_mut(&message.partition()))
                    else {
                        continue;
                    };
                    if progress.done {
                        continue;
                    }
                    if let Some(k) = message.key() {
                        progress
                            .batch
                            .push((k.to_vec(), message.payload().map(<[u8]>::to_vec)));
                        progress.restored += 1;
                    }
                    if progress.batch.len() >= BATCH {
                        let batch = std::mem::take(&mut progress.batch);
                        progress.target.store.restore_batch(batch)?;
                    }
                    if message.offset() + 1 >= progress.end {
                        progress.done = true;
                        remaining -= 1;
                    }
                }
                Some(Err(e)) => return Err(kafka(format!("restoring: {e}"))),
                None => {
                    // Transaction markers and aborted records are skipped, not delivered:
                    // a partition may be at its end with no record at the end offset.
                    let positions = self.consumer.position().map_err(kafka)?;
                    for element in positions.elements() {
                        let progress = pending
                            .get_mut(element.topic())
                            .and_then(|p| p.get_mut(&element.partition()));
                        if let (Some(progress), Offset::Offset(position)) =
                            (progress, element.offset())
                        {
                            if !progress.done && position >= progress.end {
                                progress.done = true;
                                remaining -= 1;
                            }
                        }
                    }
                    if remaining > 0 && last_progress.elapsed() > STALL_TIMEOUT {
                        return Err(StreamsError::Kafka(format!(
                            "restoring made no progress for {}s",
                            STALL_TIMEOUT.as_secs()
                        )));
                    }
                }
            }
        }
        self.consumer.unassign().map_err(kafka)?;
        let elapsed = started.elapsed().as_secs_f64().max(1e-6);
        // A store's partitions were read together: its rate is all of them over the time.
        let mut per_store: HashMap<String, u64> = HashMap::new();
        for progress in pending.into_values().flat_map(HashMap::into_values) {
            let store = progress.target.store;
            store.restore_batch(progress.batch)?;
            *per_store.entry(store.name.to_string()).or_default() += progress.restored;
            tracing::info!(store = %store.name, topic = %progress.target.topic,
                partition = progress.target.partition, restored = progress.restored,
                "restored store partition");
        }
        for (store, restored) in per_store {
            let rate = restored as f64 / elapsed;
            metrics.record_restore(&store, restored, rate);
            tracing::info!(store = %store, restored, seconds = elapsed,
                records_per_second = rate as u64, "restored store");
        }
        Ok(ends)
    }
}
