//! A single-node Kafka-protocol broker for development: what kstreams' tests, examples and
//! the shop demo run on when no Kafka cluster is at hand.
//!
//! It speaks the Kafka wire protocol to any client (librdkafka, the Java client) and keeps
//! each partition as an append-only log of record batches exactly as producers sent them,
//! in segment files under its data directory, with an in-memory offset and time index. A
//! fetch costs what it returns: it finds its first batch by binary search and reads the
//! following batches with one read, however far behind the consumer is.
//!
//! What it runs, as Apache Kafka does:
//! * topics with configs, partitions added later, records deleted below an offset;
//! * produce with idempotent producers (sequence numbers checked, duplicates answered with
//!   the original offset), fetch with long polling, list offsets (earliest, latest, by
//!   timestamp, max timestamp);
//! * consumer groups with the classic rebalance protocol (join, sync, heartbeat, leave,
//!   session timeouts), committed offsets, describe, list and delete;
//! * transactions: producer ids and epochs per `transactional.id` with fencing, commit and
//!   abort markers, the last stable offset and the aborted-transaction index for
//!   `read_committed` readers, transactional offset commits applied on commit only,
//!   transactions aborted after their timeout.
//!
//! What it does not do: replication (it is one node: every partition has one replica, and
//! data is only as safe as the disk it is on), retention and compaction (records stay until
//! the topic is deleted or `DeleteRecords` moves the log start), quotas, ACLs and SASL.
//! Records are written to the operating system before a produce request is answered, so a
//! killed process loses nothing it acknowledged; they are not flushed to the disk (`fsync`),
//! so a power loss can.
//!
//! ```no_run
//! use kstreams_broker::{Broker, BrokerConfig};
//! let broker = Broker::start(BrokerConfig::new("broker-data")).unwrap();
//! println!("bootstrap.servers={}", broker.bootstrap_servers());
//! ```

mod admin;
mod data;
mod groups;
mod log;
mod meta;
mod records;
mod server;
mod topics;
mod txn;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use server::Broker;

/// What can go wrong starting or running the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Reading or writing the data directory, or the listening socket, failed.
    #[error("broker I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The data directory holds something the broker cannot read.
    #[error("broker data at {path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The broker did not become ready.
    #[error("broker not ready: {0}")]
    NotReady(String),
}

/// How a [`Broker`] runs.
///
/// ```
/// use std::time::Duration;
/// use kstreams_broker::BrokerConfig;
/// let config = BrokerConfig::new("/var/lib/broker")
///     .with_listener("127.0.0.1:9092".parse().unwrap())
///     .with_auto_create_topics(false);
/// assert_eq!(config.default_partitions, 1);
/// assert_eq!(config.group_initial_rebalance_delay, Duration::ZERO);
/// ```
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Where topics' logs and the metadata file live; created when missing.
    pub data_dir: PathBuf,
    /// The address to listen on; port 0 takes a free port. Default: `127.0.0.1:0`.
    pub listener: SocketAddr,
    /// The host clients are told to connect to; `None` takes the listener's address.
    pub advertised_host: Option<String>,
    /// The broker's node id. Default: 1.
    pub node_id: i32,
    /// The cluster id reported in metadata. Default: `kstreams-broker`.
    pub cluster_id: String,
    /// Whether producing to or asking metadata of an unknown topic creates it, as Kafka's
    /// `auto.create.topics.enable` (default `true`).
    pub auto_create_topics: bool,
    /// Partitions of a topic created without a count (Kafka's `num.partitions`). Default: 1.
    pub default_partitions: i32,
    /// How long the first join of an empty group waits for more members (Kafka's
    /// `group.initial.rebalance.delay.ms`, 3 s there). Default: zero, so tests and demos do
    /// not wait.
    pub group_initial_rebalance_delay: Duration,
    /// The largest `transaction.timeout.ms` a producer may ask for (Kafka's
    /// `transaction.max.timeout.ms`). Default: 15 minutes.
    pub max_transaction_timeout: Duration,
    /// Bytes of a log segment before the next one starts. Default: 64 MiB.
    pub segment_bytes: u64,
    /// Worker threads of the broker's runtime. Default: 2.
    pub worker_threads: usize,
}

impl BrokerConfig {
    /// Defaults, with data in `data_dir`.
    ///
    /// ```
    /// let config = kstreams_broker::BrokerConfig::new("data");
    /// assert!(config.auto_create_topics);
    /// assert_eq!(config.listener.port(), 0);
    /// ```
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        BrokerConfig {
            data_dir: data_dir.into(),
            listener: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertised_host: None,
            node_id: 1,
            cluster_id: "kstreams-broker".into(),
            auto_create_topics: true,
            default_partitions: 1,
            group_initial_rebalance_delay: Duration::ZERO,
            max_transaction_timeout: Duration::from_secs(900),
            segment_bytes: 64 << 20,
            worker_threads: 2,
        }
    }

    /// Sets the listening address.
    ///
    /// ```
    /// let config = kstreams_broker::BrokerConfig::new("data")
    ///     .with_listener("127.0.0.1:19092".parse().unwrap());
    /// assert_eq!(config.listener.port(), 19092);
    /// ```
    pub fn with_listener(mut self, listener: SocketAddr) -> Self {
        self.listener = listener;
        self
    }

    /// Sets whether unknown topics are created on first use.
    ///
    /// ```
    /// let config = kstreams_broker::BrokerConfig::new("data").with_auto_create_topics(false);
    /// assert!(!config.auto_create_topics);
    /// ```
    pub fn with_auto_create_topics(mut self, enabled: bool) -> Self {
        self.auto_create_topics = enabled;
        self
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}
