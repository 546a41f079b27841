//! Metrics of a running application, kept in Prometheus form.
//!
//! Stream threads update the counters and histograms here directly (each thread owns its
//! label set, so the hot path touches only its own atomics); lag, rates and the task counters
//! (dropped, dead-lettered and late records) are refreshed by each thread about once a second.
//! [`KafkaStreams::metrics_text`](super::KafkaStreams::metrics_text) encodes them in the
//! Prometheus text format, and
//! [`KafkaStreams::register_metrics`](super::KafkaStreams::register_metrics) adds them to an
//! application's own registry, so one `/metrics` endpoint serves both.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of per-thread series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ThreadLabels {
    pub thread: String,
}

/// Labels of per-partition series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PartitionLabels {
    pub thread: String,
    pub topic: String,
    pub partition: i32,
}

/// Labels of per-store series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StoreLabels {
    pub store: String,
}

type F64Gauge = Gauge<f64, std::sync::atomic::AtomicU64>;

fn latency_histogram() -> Histogram {
    // 10 µs .. ~5 s
    Histogram::new(exponential_buckets(0.000_01, 3.0, 13))
}

/// Every metric of one [`KafkaStreams`](super::KafkaStreams) instance.
pub(crate) struct StreamsMetrics {
    pub records_consumed: Family<ThreadLabels, Counter>,
    pub records_produced: Family<ThreadLabels, Counter>,
    pub consumed_rate: Family<ThreadLabels, F64Gauge>,
    pub produced_rate: Family<ThreadLabels, F64Gauge>,
    pub process_latency: Family<ThreadLabels, Histogram, fn() -> Histogram>,
    pub commit_latency: Family<ThreadLabels, Histogram, fn() -> Histogram>,
    pub commits: Family<ThreadLabels, Counter>,
    pub aborted_transactions: Family<ThreadLabels, Counter>,
    pub rebalances: Family<ThreadLabels, Counter>,
    pub active_tasks: Family<ThreadLabels, Gauge>,
    pub dropped_records: Family<ThreadLabels, Counter>,
    pub dead_lettered_records: Family<ThreadLabels, Counter>,
    pub late_records_dropped: Family<ThreadLabels, Counter>,
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    pub restored_records: Family<StoreLabels, Counter>,
    pub restore_rate: Family<StoreLabels, F64Gauge>,
    /// Bytes in the RocksDB block cache (memtables included), shared by all stores.
    pub rocksdb_memory: Gauge,
    /// Lag per (topic, partition), as last refreshed: for [`KafkaStreams::metrics`].
    lag: Mutex<BTreeMap<(String, i32), i64>>,
    restore_rates: Mutex<BTreeMap<String, f64>>,
    restored_total: AtomicU64,
    threads: Mutex<Vec<String>>,
}

impl StreamsMetrics {
    pub(crate) fn new() -> Self {
        StreamsMetrics {
            records_consumed: Family::default(),
            records_produced: Family::default(),
            consumed_rate: Family::default(),
            produced_rate: Family::default(),
            process_latency: Family::new_with_constructor(latency_histogram),
            commit_latency: Family::new_with_constructor(latency_histogram),
            commits: Family::default(),
            aborted_transactions: Family::default(),
            rebalances: Family::default(),
            active_tasks: Family::default(),
            dropped_records: Family::default(),
            dead_lettered_records: Family::default(),
            late_records_dropped: Family::default(),
            consumer_lag: Family::default(),
            restored_records: Family::default(),
            restore_rate: Family::default(),
            rocksdb_memory: Gauge::default(),
            lag: Mutex::new(BTreeMap::new()),
            restore_rates: Mutex::new(BTreeMap::new()),
            restored_total: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// The labels of a thread, remembered for [`snapshot`](Self::snapshot).
    pub(crate) fn thread(&self, name: &str) -> ThreadLabels {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        if !threads.iter().any(|t| t == name) {
            threads.push(name.to_string());
        }
        ThreadLabels {
            thread: name.to_string(),
        }
    }

    /// Adds every metric to `registry` (the series are shared, not copied).
    pub(crate) fn register(&self, registry: &mut Registry) {
        let r = registry;
        r.register(
            "records_consumed",
            "Records read from source topics",
            self.records_consumed.clone(),
        );
        r.register(
            "records_produced",
            "Records acknowledged by the broker: outputs, changelogs, repartition and dead-letter records",
            self.records_produced.clone(),
        );
        r.register(
            "records_consumed_rate",
            "Records read per second over the last second",
            self.consumed_rate.clone(),
        );
        r.register(
            "records_produced_rate",
            "Records acknowledged per second over the last second",
            self.produced_rate.clone(),
        );
        r.register(
            "process_latency_seconds",
            "Time to process one record through its task",
            self.process_latency.clone(),
        );
        r.register(
            "commit_latency_seconds",
            "Time of one commit: flushing stores and producer, then offsets or the transaction",
            self.commit_latency.clone(),
        );
        r.register("commits", "Commits", self.commits.clone());
        r.register(
            "aborted_transactions",
            "Transactions aborted (exactly-once), after which tasks resumed from committed offsets",
            self.aborted_transactions.clone(),
        );
        r.register(
            "rebalances",
            "Partition assignments received",
            self.rebalances.clone(),
        );
        r.register(
            "active_tasks",
            "Tasks the thread runs",
            self.active_tasks.clone(),
        );
        r.register(
            "dropped_records",
            "Records dropped: bad records under log-and-continue, invalid timestamps, null keys where one is needed",
            self.dropped_records.clone(),
        );
        r.register(
            "dead_lettered_records",
            "Records sent to the dead-letter topic",
            self.dead_lettered_records.clone(),
        );
        r.register(
            "late_records_dropped",
            "Records dropped by windowed operators because their window had closed",
            self.late_records_dropped.clone(),
        );
        r.register(
            "consumer_lag",
            "Records between the thread's position and the end of each assigned partition",
            self.consumer_lag.clone(),
        );
        r.register(
            "restored_records",
            "Changelog records restored into each store",
            self.restored_records.clone(),
        );
        r.register(
            "restore_rate",
            "Records per second of the last restoration of each store",
            self.restore_rate.clone(),
        );
        r.register(
            "rocksdb_memory_bytes",
            "Bytes of the RocksDB block cache and memtables shared by every persistent store",
            self.rocksdb_memory.clone(),
        );
    }

    pub(crate) fn set_lag(&self, thread: &str, lags: &[(String, i32, i64)]) {
        let mut all = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        for (topic, partition, lag) in lags {
            self.consumer_lag
                .get_or_create(&PartitionLabels {
                    thread: thread.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                })
                .set(*lag);
            all.insert((topic.clone(), *partition), *lag);
        }
    }

    /// Forgets the lag of partitions a thread no longer owns.
    pub(crate) fn clear_lag(&self, thread: &str, partitions: &[(String, i32)]) {
        let mut all = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        for (topic, partition) in partitions {
            self.consumer_lag.remove(&PartitionLabels {
                thread: thread.to_string(),
                topic: topic.clone(),
                partition: *partition,
            });
            all.remove(&(topic.clone(), *partition));
        }
    }

    pub(crate) fn record_restore(&self, store: &str, records: u64, per_second: f64) {
        let labels = StoreLabels {
            store: store.to_string(),
        };
        self.restored_records.get_or_create(&labels).inc_by(records);
        self.restore_rate.get_or_create(&labels).set(per_second);
        self.restored_total.fetch_add(records, Ordering::Relaxed);
        self.restore_rates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(store.to_string(), per_second);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let sum = |family: &Family<ThreadLabels, Counter>, threads: &[String]| -> u64 {
            threads
                .iter()
                .filter_map(|t| {
                    family
                        .get(&ThreadLabels { thread: t.clone() })
                        .map(|c| c.get())
                })
                .sum()
        };
        let threads = self.thread_names();
        MetricsSnapshot {
            records_consumed: sum(&self.records_consumed, &threads),
            records_produced: sum(&self.records_produced, &threads),
            commits: sum(&self.commits, &threads),
            aborted_transactions: sum(&self.aborted_transactions, &threads),
            rebalances: sum(&self.rebalances, &threads),
            dropped_records: sum(&self.dropped_records, &threads),
            dead_lettered_records: sum(&self.dead_lettered_records, &threads),
            late_records_dropped: sum(&self.late_records_dropped, &threads),
            restored_records: self.restored_total.load(Ordering::Relaxed),
            consumer_lag: self.lag.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            restore_rates: self
                .restore_rates
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    fn thread_names(&self) -> Vec<String> {
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A point-in-time copy of an application's metrics, summed over its threads, from
/// [`KafkaStreams::metrics`](super::KafkaStreams::metrics) (see
/// [`KafkaStreams::metrics_text`](super::KafkaStreams::metrics_text) for an example).
///
/// ```
/// use std::collections::BTreeMap;
/// use kstreams::kafka::MetricsSnapshot;
/// /// The figures a health check looks at.
/// fn healthy(m: &MetricsSnapshot) -> bool {
///     m.consumer_lag.values().sum::<i64>() < 1_000 && m.dropped_records == 0
/// }
/// let lag = BTreeMap::from([(("orders".to_string(), 0), 120), (("orders".to_string(), 1), 30)]);
/// let snapshot = MetricsSnapshot { consumer_lag: lag, ..Default::default() };
/// assert!(healthy(&snapshot));
/// assert!(!healthy(&MetricsSnapshot { dropped_records: 1, ..snapshot }));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Records read from source topics.
    pub records_consumed: u64,
    /// Records acknowledged by the broker (outputs, changelog, repartition, dead-letter).
    pub records_produced: u64,
    /// Commits.
    pub commits: u64,
    /// Aborted transactions (exactly-once).
    pub aborted_transactions: u64,
    /// Assignments received.
    pub rebalances: u64,
    /// Records dropped by error handlers or for invalid timestamps or keys.
    pub dropped_records: u64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered_records: u64,
    /// Records dropped by windowed operators because their window had closed.
    pub late_records_dropped: u64,
    /// Changelog records restored into stores.
    pub restored_records: u64,
    /// Lag by (topic, partition) of the partitions this instance owns.
    pub consumer_lag: BTreeMap<(String, i32), i64>,
    /// Records per second of the last restoration of each store, by store name.
    pub restore_rates: BTreeMap<String, f64>,
}
