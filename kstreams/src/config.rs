//! Configuration of a streams application: its identity and how it treats bad records.
//!
//! The same [`StreamsConfig`] drives the in-memory [`TestDriver`](crate::testing::TestDriver)
//! and the Kafka runtime (the bootstrap servers, threads, commit interval, guarantee, client
//! overrides, application server and transaction timeout are read only by the latter; the
//! test driver uses the state directory only for RocksDB stores, in a fresh subdirectory), so
//! a topology's error handling and naming are the same in tests and in production.
//! `docs/operations.md` describes every setting and the librdkafka properties kstreams sets.

use std::time::Duration;

use crate::state::StoreType;

/// What to do with a record that cannot be deserialized, processed or produced: one policy
/// per stage ([`StreamsConfig::deserialization_policy`], [`StreamsConfig::processing_policy`],
/// [`StreamsConfig::production_policy`]), Kafka Streams' exception handlers as values.
///
/// ```
/// use kstreams::config::{ErrorPolicy, StreamsConfig};
/// use kstreams::{dsl::StreamsBuilder, processor::Headers, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, i64>("amounts").to("copy");
/// let topology = builder.build().unwrap();
/// let (key, bad) = (Some(&b"k"[..]), Some(&b"not eight bytes"[..]));
/// for (policy, dropped, dead_lettered) in
///     [(ErrorPolicy::LogAndContinue, 1, 0), (ErrorPolicy::DeadLetter, 0, 1)]
/// {
///     let config = StreamsConfig::new("p").deserialization_policy(policy);
///     let driver = TestDriver::new(&topology, config).unwrap();
///     driver.pipe_raw("amounts", key, bad, 0, Headers::new()).unwrap();
///     let metrics = driver.metrics();
///     assert_eq!((metrics.dropped_records, metrics.dead_lettered_records), (dropped, dead_lettered));
/// }
/// let strict = TestDriver::new(&topology, StreamsConfig::new("p")).unwrap(); // Fail
/// assert!(strict.pipe_raw("amounts", key, bad, 0, Headers::new()).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorPolicy {
    /// Stop processing with an error (Kafka Streams' `LogAndFail`).
    #[default]
    Fail,
    /// Log the error, count the record as dropped and go on (`LogAndContinue`).
    LogAndContinue,
    /// Send the source record's bytes to the dead-letter topic with the error in its headers
    /// and go on.
    DeadLetter,
}

/// Delivery guarantee of the Kafka runtime (Kafka Streams' `processing.guarantee`:
/// `at_least_once`, `exactly_once_v2`).
///
/// ```
/// use std::time::Duration;
/// use kstreams::config::{ProcessingGuarantee, StreamsConfig};
/// let config = StreamsConfig::new("payments")
///     .with_processing_guarantee(ProcessingGuarantee::ExactlyOnce)
///     // Outputs become visible to read_committed readers at each commit.
///     .with_commit_interval(Duration::from_millis(100));
/// assert_eq!(config.processing_guarantee, ProcessingGuarantee::ExactlyOnce);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingGuarantee {
    /// Offsets are committed after the outputs are acknowledged; a crash may repeat records.
    #[default]
    AtLeastOnce,
    /// Outputs, changelog writes and offsets commit in one Kafka transaction.
    ExactlyOnce,
}

/// Configuration shared by the test driver and the Kafka runtime (Kafka Streams'
/// `StreamsConfig`). [`new`](Self::new) sets the defaults; fields are public, and the common
/// ones have builder methods.
///
/// ```
/// use std::time::Duration;
/// use kstreams::config::{ErrorPolicy, ProcessingGuarantee, StreamsConfig};
/// use kstreams::state::StoreType;
/// let mut config = StreamsConfig::new("word-count")
///     .with_bootstrap_servers("kafka-1:9092,kafka-2:9092")
///     .with_stream_threads(2)
///     .with_state_dir("/var/lib/word-count")
///     .with_default_store_type(StoreType::RocksDb)
///     .deserialization_policy(ErrorPolicy::DeadLetter);
/// config.store_cache_max_bytes = 4 << 20;
/// config.application_server = Some("10.0.0.7:8080".into());
/// assert_eq!(config.dead_letter_topic(), "word-count-dlq");
/// assert_eq!(config.effective_commit_interval(), Duration::from_secs(30));
/// assert_eq!(config.processing_guarantee, ProcessingGuarantee::AtLeastOnce);
/// ```
#[derive(Clone)]
pub struct StreamsConfig {
    /// The application id: the consumer group id and the prefix of internal topics.
    pub application_id: String,
    /// Kafka bootstrap servers (`host:port,...`). Default: `localhost:9092`.
    pub bootstrap_servers: String,
    /// How many stream threads run tasks in this process. Default: 1.
    pub num_stream_threads: usize,
    /// How often offsets (and transactions) are committed. `None` (the default) takes
    /// Kafka Streams' default for the processing guarantee: 30 s under at-least-once,
    /// 100 ms under exactly-once, where outputs become visible only at a commit. See
    /// [`effective_commit_interval`](Self::effective_commit_interval).
    pub commit_interval: Option<Duration>,
    /// At-least-once (default) or exactly-once.
    pub processing_guarantee: ProcessingGuarantee,
    /// Where persistent state stores, checkpoints and the process id live, under
    /// `<state_dir>/<application_id>/`. Default: `kstreams` in the system's temporary
    /// directory. Each instance needs its own.
    pub state_dir: std::path::PathBuf,
    /// What to do with records whose key or value cannot be deserialized.
    pub deserialization_policy: ErrorPolicy,
    /// What to do when a processor returns an error.
    pub processing_policy: ErrorPolicy,
    /// What to do when an output record cannot be serialized or produced.
    pub production_policy: ErrorPolicy,
    /// The dead-letter topic; `None` means `<application-id>-dlq`.
    pub dead_letter_topic: Option<String>,
    /// Extra librdkafka properties applied to every client (`security.protocol`, ...), after
    /// `bootstrap.servers` and before the settings kstreams needs for itself.
    pub client_overrides: Vec<(String, String)>,
    /// Where stores keep their data unless a store says otherwise. Default: in memory.
    pub default_store_type: StoreType,
    /// Bytes of the write cache in front of each store; an aggregation over a cached store
    /// also holds back its updates up to this bound and forwards one per key per commit.
    /// `0` turns caching off: every update is written and forwarded at once. Default: 1 MiB.
    pub store_cache_max_bytes: usize,
    /// Bytes of the RocksDB block cache shared by every persistent store of the instance.
    /// Default: 64 MiB.
    pub rocksdb_block_cache_bytes: usize,
    /// Bytes of RocksDB memtables, across every persistent store of the instance (charged to
    /// the block cache). Default: 32 MiB.
    pub rocksdb_write_buffer_bytes: usize,
    /// `host:port` where this instance serves interactive queries, published to the other
    /// instances of the application so they can route a key to its host.
    pub application_server: Option<String>,
    /// Transaction timeout under exactly-once: how long the broker lets an instance that
    /// stopped mid-transaction hold back `read_committed` readers before aborting it.
    /// Default: 10 s. Under exactly-once, [`validate`](Self::validate) requires the commit
    /// interval to be at most half of it, or the broker would abort transactions before
    /// their commit.
    pub transaction_timeout: Duration,
    /// Replication factor of the repartition, changelog and dead-letter topics kstreams
    /// creates (Kafka Streams' `replication.factor`). `-1` (the default) takes the broker's
    /// `default.replication.factor`, or 1 on a cluster of one broker.
    pub replication_factor: i32,
}

/// Whether a librdkafka setting holds a secret (never printed).
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("secret") || key.ends_with(".config")
}

/// Prints every setting, with the values of secret client overrides (`sasl.password`,
/// `ssl.key.password`, ...) replaced by `<redacted>`.
impl std::fmt::Debug for StreamsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let overrides: Vec<(&str, &str)> = self
            .client_overrides
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("StreamsConfig")
            .field("application_id", &self.application_id)
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("num_stream_threads", &self.num_stream_threads)
            .field("commit_interval", &self.commit_interval)
            .field("processing_guarantee", &self.processing_guarantee)
            .field("state_dir", &self.state_dir)
            .field("deserialization_policy", &self.deserialization_policy)
            .field("processing_policy", &self.processing_policy)
            .field("production_policy", &self.production_policy)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("client_overrides", &overrides)
            .field("default_store_type", &self.default_store_type)
            .field("store_cache_max_bytes", &self.store_cache_max_bytes)
            .field("rocksdb_block_cache_bytes", &self.rocksdb_block_cache_bytes)
            .field(
                "rocksdb_write_buffer_bytes",
                &self.rocksdb_write_buffer_bytes,
            )
            .field("application_server", &self.application_server)
            .field("transaction_timeout", &self.transaction_timeout)
            .field("replication_factor", &self.replication_factor)
            .finish()
    }
}

impl StreamsConfig {
    /// A configuration with defaults for everything but the application id.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::config::{ErrorPolicy, ProcessingGuarantee, StreamsConfig};
    /// use kstreams::state::StoreType;
    /// let config = StreamsConfig::new("orders");
    /// assert_eq!(config.application_id, "orders");
    /// assert_eq!(config.bootstrap_servers, "localhost:9092");
    /// assert_eq!(config.num_stream_threads, 1);
    /// assert_eq!(config.commit_interval, None);
    /// assert_eq!(config.effective_commit_interval(), Duration::from_secs(30));
    /// assert_eq!(config.processing_guarantee, ProcessingGuarantee::AtLeastOnce);
    /// assert_eq!(config.deserialization_policy, ErrorPolicy::Fail);
    /// assert_eq!(config.default_store_type, StoreType::InMemory);
    /// assert_eq!(config.dead_letter_topic(), "orders-dlq");
    /// ```
    pub fn new(application_id: impl Into<String>) -> Self {
        StreamsConfig {
            application_id: application_id.into(),
            bootstrap_servers: "localhost:9092".into(),
            num_stream_threads: 1,
            commit_interval: None,
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            state_dir: std::env::temp_dir().join("kstreams"),
            deserialization_policy: ErrorPolicy::Fail,
            processing_policy: ErrorPolicy::Fail,
            production_policy: ErrorPolicy::Fail,
            dead_letter_topic: None,
            client_overrides: Vec::new(),
            default_store_type: StoreType::InMemory,
            store_cache_max_bytes: 1 << 20,
            rocksdb_block_cache_bytes: 64 << 20,
            rocksdb_write_buffer_bytes: 32 << 20,
            application_server: None,
            transaction_timeout: Duration::from_secs(10),
            replication_factor: -1,
        }
    }

    /// Sets the replication factor of the topics kstreams creates (see
    /// [`replication_factor`](Self::replication_factor)).
    ///
    /// ```
    /// use kstreams::config::StreamsConfig;
    /// let config = StreamsConfig::new("orders").with_replication_factor(3);
    /// assert_eq!(config.replication_factor, 3);
    /// assert_eq!(StreamsConfig::new("orders").replication_factor, -1);
    /// ```
    pub fn with_replication_factor(mut self, replication_factor: i32) -> Self {
        self.replication_factor = replication_factor;
        self
    }

    /// Sets the bootstrap servers.
    ///
    /// ```
    /// use kstreams::config::StreamsConfig;
    /// let config = StreamsConfig::new("orders")
    ///     .with_bootstrap_servers("kafka-1:9092,kafka-2:9092");
    /// assert_eq!(config.bootstrap_servers, "kafka-1:9092,kafka-2:9092");
    /// ```
    pub fn with_bootstrap_servers(mut self, servers: impl Into<String>) -> Self {
        self.bootstrap_servers = servers.into();
        self
    }

    /// Sets the processing guarantee.
    ///
    /// ```
    /// use kstreams::config::{ProcessingGuarantee, StreamsConfig};
    /// let config = StreamsConfig::new("payments")
    ///     .with_processing_guarantee(ProcessingGuarantee::ExactlyOnce);
    /// assert_eq!(config.processing_guarantee, ProcessingGuarantee::ExactlyOnce);
    /// ```
    pub fn with_processing_guarantee(mut self, guarantee: ProcessingGuarantee) -> Self {
        self.processing_guarantee = guarantee;
        self
    }

    /// Sets the commit interval.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::config::StreamsConfig;
    /// let config = StreamsConfig::new("orders").with_commit_interval(Duration::from_millis(500));
    /// assert_eq!(config.commit_interval, Some(Duration::from_millis(500)));
    /// assert_eq!(config.effective_commit_interval(), Duration::from_millis(500));
    /// ```
    pub fn with_commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = Some(interval);
        self
    }

    /// The commit interval in force: [`commit_interval`](Self::commit_interval) when set,
    /// otherwise Kafka Streams' default for the processing guarantee (30 s under
    /// at-least-once, 100 ms under exactly-once).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::config::{ProcessingGuarantee, StreamsConfig};
    /// let alos = StreamsConfig::new("orders");
    /// assert_eq!(alos.effective_commit_interval(), Duration::from_secs(30));
    /// let eos = StreamsConfig::new("orders")
    ///     .with_processing_guarantee(ProcessingGuarantee::ExactlyOnce);
    /// assert_eq!(eos.effective_commit_interval(), Duration::from_millis(100));
    /// ```
    pub fn effective_commit_interval(&self) -> Duration {
        self.commit_interval
            .unwrap_or(match self.processing_guarantee {
                ProcessingGuarantee::AtLeastOnce => Duration::from_secs(30),
                ProcessingGuarantee::ExactlyOnce => Duration::from_millis(100),
            })
    }

    /// Checks settings that cannot work together; [`KafkaStreams::start`] refuses a
    /// configuration that fails it.
    ///
    /// Under exactly-once the commit interval must be at most half the transaction timeout:
    /// a transaction stays open from its first record to the next commit, and the broker
    /// aborts one that outlives the timeout, so a longer interval would abort every
    /// transaction before it commits and no output would ever become visible.
    ///
    /// [`KafkaStreams::start`]: crate::kafka::KafkaStreams::start
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::config::{ProcessingGuarantee, StreamsConfig};
    /// use kstreams::error::StreamsError;
    /// let eos = StreamsConfig::new("orders")
    ///     .with_processing_guarantee(ProcessingGuarantee::ExactlyOnce);
    /// assert!(eos.validate().is_ok());
    /// let too_slow = eos.with_commit_interval(Duration::from_secs(30));
    /// assert!(matches!(too_slow.validate(), Err(StreamsError::InvalidConfig(_))));
    /// ```
    pub fn validate(&self) -> Result<(), crate::error::StreamsError> {
        if self.processing_guarantee == ProcessingGuarantee::ExactlyOnce {
            let commit = self.effective_commit_interval();
            if commit * 2 > self.transaction_timeout {
                return Err(crate::error::StreamsError::InvalidConfig(format!(
                    "under exactly-once the commit interval ({commit:?}) must be at most half \
                     the transaction timeout ({:?}): the broker aborts a transaction that \
                     outlives the timeout, so none would ever commit; lower commit_interval \
                     or raise transaction_timeout",
                    self.transaction_timeout
                )));
            }
        }
        Ok(())
    }

    /// Sets the state directory.
    ///
    /// ```
    /// use std::path::Path;
    /// use kstreams::config::StreamsConfig;
    /// let config = StreamsConfig::new("orders").with_state_dir("/var/lib/orders");
    /// assert_eq!(config.state_dir, Path::new("/var/lib/orders"));
    /// ```
    pub fn with_state_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// Sets the number of stream threads.
    ///
    /// ```
    /// use kstreams::config::StreamsConfig;
    /// let config = StreamsConfig::new("orders").with_stream_threads(4);
    /// assert_eq!(config.num_stream_threads, 4);
    /// ```
    pub fn with_stream_threads(mut self, threads: usize) -> Self {
        self.num_stream_threads = threads;
        self
    }

    /// Sets the default store type.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, state::StoreType, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .count_with(Materialized::named("clicks"));
    /// let config = StreamsConfig::new("c").with_default_store_type(StoreType::RocksDb);
    /// assert_eq!(config.default_store_type, StoreType::RocksDb);
    /// // Stores without a type of their own are now kept in RocksDB.
    /// let driver = TestDriver::new(&builder.build().unwrap(), config).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("ann".into(), "/".into(), 0);
    /// let clicks = driver.key_value_store::<String, i64>("clicks").unwrap();
    /// assert_eq!(clicks.get(&"ann".to_string()).unwrap(), Some(1));
    /// ```
    pub fn with_default_store_type(mut self, store_type: StoreType) -> Self {
        self.default_store_type = store_type;
        self
    }

    /// Adds a librdkafka property for every client (`security.protocol`, `sasl.mechanism`,
    /// `session.timeout.ms`, ...).
    ///
    /// ```
    /// use kstreams::config::StreamsConfig;
    /// let config = StreamsConfig::new("orders")
    ///     .with_client_override("security.protocol", "SASL_PLAINTEXT")
    ///     .with_client_override("sasl.mechanism", "PLAIN")
    ///     .with_client_override("sasl.username", "orders")
    ///     .with_client_override("sasl.password", std::env::var("KAFKA_PASSWORD").unwrap_or_default());
    /// assert_eq!(config.client_overrides[0].1, "SASL_PLAINTEXT");
    /// ```
    pub fn with_client_override(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.client_overrides.push((key.into(), value.into()));
        self
    }

    /// Sets the deserialization error policy.
    ///
    /// ```
    /// use kstreams::config::{ErrorPolicy, StreamsConfig};
    /// use kstreams::{dsl::StreamsBuilder, processor::Headers, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").to("amounts-copy");
    /// let config = StreamsConfig::new("d").deserialization_policy(ErrorPolicy::LogAndContinue);
    /// let driver = TestDriver::new(&builder.build().unwrap(), config).unwrap();
    /// // Three bytes are no 8-byte i64: the record is dropped instead of failing.
    /// driver.pipe_raw("amounts", Some(&b"k"[..]), Some(&b"abc"[..]), 0, Headers::new()).unwrap();
    /// assert_eq!(driver.metrics().dropped_records, 1);
    /// assert!(driver.create_output_topic::<String, i64>("amounts-copy").is_empty());
    /// ```
    pub fn deserialization_policy(mut self, policy: ErrorPolicy) -> Self {
        self.deserialization_policy = policy;
        self
    }

    /// Sets the processing error policy.
    ///
    /// ```
    /// use kstreams::config::{ErrorPolicy, StreamsConfig};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    /// use kstreams::{dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// struct Parse;
    /// impl Processor<String, String, String, i64> for Parse {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let amount: i64 = record.value.parse()?;
    ///         ctx.forward(record.with_value(amount))
    ///     }
    /// }
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("raw").process(|| Parse, &[]).to("amounts");
    /// let config = StreamsConfig::new("p").processing_policy(ErrorPolicy::DeadLetter);
    /// let driver = TestDriver::new(&builder.build().unwrap(), config).unwrap();
    /// let raw = driver.create_input_topic::<String, String>("raw");
    /// raw.pipe_input_at("a".into(), "twelve".into(), 0); // the processor fails
    /// raw.pipe_input_at("b".into(), "12".into(), 1);
    /// assert_eq!(driver.create_output_topic::<String, i64>("amounts").read_value(), Some(12));
    /// let dead = driver.create_output_topic::<String, String>("p-dlq").read_value();
    /// assert_eq!(dead, Some("twelve".to_string()));
    /// ```
    pub fn processing_policy(mut self, policy: ErrorPolicy) -> Self {
        self.processing_policy = policy;
        self
    }

    /// Sets the production error policy.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kstreams::config::{ErrorPolicy, StreamsConfig};
    /// use kstreams::serde::{Serde, SerdeError, Serdes};
    /// use kstreams::{dsl::*, testing::TestDriver};
    /// /// Refuses to write empty strings.
    /// struct NonEmpty;
    /// impl Serde<String> for NonEmpty {
    ///     fn serialize(&self, v: &String) -> Result<Option<Vec<u8>>, SerdeError> {
    ///         if v.is_empty() {
    ///             return Err(SerdeError::Custom("empty".into()));
    ///         }
    ///         Serdes::string().serialize(v)
    ///     }
    ///     fn deserialize(&self, bytes: Option<&[u8]>) -> Result<String, SerdeError> {
    ///         Serdes::string().deserialize(bytes)
    ///     }
    /// }
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("names")
    ///     .to_with("clean-names", Produced::with(Serdes::string(), Arc::new(NonEmpty)));
    /// let config = StreamsConfig::new("p").production_policy(ErrorPolicy::LogAndContinue);
    /// let driver = TestDriver::new(&builder.build().unwrap(), config).unwrap();
    /// let names = driver.create_input_topic::<String, String>("names");
    /// names.pipe_input_at("a".into(), "".into(), 0); // cannot be written: dropped
    /// names.pipe_input_at("b".into(), "Ann".into(), 1);
    /// let out = driver.create_output_topic::<String, String>("clean-names");
    /// assert_eq!(out.read_values_to_list(), vec!["Ann".to_string()]);
    /// assert_eq!(driver.metrics().dropped_records, 1);
    /// ```
    pub fn production_policy(mut self, policy: ErrorPolicy) -> Self {
        self.production_policy = policy;
        self
    }

    /// Sets the dead-letter topic.
    ///
    /// ```
    /// use kstreams::config::{ErrorPolicy, StreamsConfig};
    /// use kstreams::{dsl::StreamsBuilder, processor::Headers, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").to("amounts-copy");
    /// let config = StreamsConfig::new("d")
    ///     .deserialization_policy(ErrorPolicy::DeadLetter)
    ///     .with_dead_letter_topic("bad-amounts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), config).unwrap();
    /// driver.pipe_raw("amounts", Some(&b"k"[..]), Some(&b"abc"[..]), 0, Headers::new()).unwrap();
    /// let dead = driver.create_output_topic::<String, Vec<u8>>("bad-amounts").read_value();
    /// assert_eq!(dead, Some(b"abc".to_vec()));
    /// ```
    pub fn with_dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter_topic = Some(topic.into());
        self
    }

    /// The dead-letter topic in effect.
    ///
    /// ```
    /// use kstreams::config::StreamsConfig;
    /// assert_eq!(StreamsConfig::new("orders").dead_letter_topic(), "orders-dlq");
    /// let config = StreamsConfig::new("orders").with_dead_letter_topic("orders-errors");
    /// assert_eq!(config.dead_letter_topic(), "orders-errors");
    /// ```
    pub fn dead_letter_topic(&self) -> String {
        self.dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{}-dlq", self.application_id))
    }

    /// The full name of an internal topic: `<application-id>-<name>`.
    ///
    /// ```
    /// use kstreams::config::StreamsConfig;
    /// let config = StreamsConfig::new("shop-analytics");
    /// assert_eq!(config.internal_topic("counts-changelog"), "shop-analytics-counts-changelog");
    /// ```
    pub fn internal_topic(&self, name: &str) -> String {
        format!("{}-{}", self.application_id, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let config = StreamsConfig::new("app")
            .with_client_override("sasl.username", "shop")
            .with_client_override("sasl.password", "hunter2")
            .with_client_override("ssl.key.password", "s3cret");
        let printed = format!("{config:?}");
        assert!(printed.contains("\"shop\""), "{printed}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("s3cret"),
            "{printed}"
        );
        assert!(printed.contains("<redacted>"), "{printed}");
    }
}
