//! tansu running inside this process on SQLite storage, with transactions.
//!
//! The broker is assembled from tansu's public parts rather than `tansu_broker::Broker`, whose
//! router cannot be extended: [`TxnStore`] wraps tansu's storage engine to repair its
//! transaction bookkeeping, and [`routes`] adds `EndTxn` and a `read_committed` Fetch to
//! tansu's route table and runs the accept loop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use tansu_storage::{BrokerRegistrationRequest, Storage as _, StorageContainer};
use url::Url;

use crate::routes;
use crate::txn_store::TxnStore;
use crate::TestkitError;

const CLUSTER_ID: &str = "kstreams";
const NODE_ID: i32 = 111;

/// Aborts transactions that outlive their timeout, every second.
///
/// tansu's `Broker::listen` also runs `Storage::maintain` (retention, compaction) at start
/// and every 10 minutes; we do not. Its compaction keeps the last record per key with no
/// regard for transactions: every commit (and every abort) marker has the same key, so it
/// would delete all but the last of them, and the records of open or aborted transactions
/// would supersede committed ones. Kafka never guarantees when compaction runs, so tests
/// cannot rely on it anyway.
async fn abort_expired_transactions(store: TxnStore) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        if let Err(e) = store.abort_expired().await {
            eprintln!("embedded broker: aborting timed-out transactions: {e:?}");
        }
    }
}

/// A tansu broker serving on a local port, stopped when dropped.
///
/// Unlike tansu 0.6 as released, it runs Kafka transactions: `EndTxn` commits or aborts,
/// `read_committed` consumers stop at the last stable offset and skip aborted transactions,
/// transactional consumer offsets apply on commit only, a producer re-initialising its
/// `transactional.id` fences the old one and aborts its open transaction, and a transaction
/// open longer than its `transaction.timeout.ms` is aborted. Overlapping transactions of
/// several producers on one partition work; `OffsetFetch`'s `require_stable` is ignored (a
/// pending transactional offset commit is simply not visible yet). Retention and compaction
/// do not run (tansu's compaction would delete transaction markers).
///
/// ```no_run
/// let broker = kstreams_testkit::EmbeddedBroker::start().unwrap();
/// broker.create_topic("orders", 3, &[("cleanup.policy", "compact")]).unwrap();
/// println!("Kafka at {}", broker.bootstrap_servers());
/// ```
pub struct EmbeddedBroker {
    bootstrap: String,
    data_file: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
    _dir: Option<tempfile::TempDir>,
}

impl EmbeddedBroker {
    /// Starts a broker on an ephemeral port with its data in a fresh temporary directory.
    ///
    /// ```no_run
    /// let broker = kstreams_testkit::EmbeddedBroker::start().unwrap();
    /// broker.create_topic("orders", 4, &[]).unwrap();
    /// println!("bootstrap.servers={}", broker.bootstrap_servers());
    /// ```
    pub fn start() -> Result<Self, TestkitError> {
        let dir = tempfile::tempdir()?;
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let mut broker = Self::start_on(&dir.path().join("tansu.db"), listener)?;
        broker._dir = Some(dir);
        Ok(broker)
    }

    /// Starts a broker listening on `addr` with its data in the SQLite file `data_file`, so
    /// the data survives a restart.
    ///
    /// ```no_run
    /// use std::net::SocketAddr;
    /// use kstreams_testkit::EmbeddedBroker;
    /// let addr: SocketAddr = "127.0.0.1:9092".parse().unwrap();
    /// let broker = EmbeddedBroker::start_with("shop-data/tansu.db".as_ref(), addr).unwrap();
    /// broker.create_topic("orders", 4, &[]).unwrap();
    /// drop(broker);
    /// // Started again on the same file: the topic and its records are still there.
    /// let broker = EmbeddedBroker::start_with("shop-data/tansu.db".as_ref(), addr).unwrap();
    /// # let _ = broker;
    /// ```
    pub fn start_with(data_file: &Path, addr: SocketAddr) -> Result<Self, TestkitError> {
        Self::start_on(data_file, std::net::TcpListener::bind(addr)?)
    }

    fn start_on(data_file: &Path, listener: std::net::TcpListener) -> Result<Self, TestkitError> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let data_file = std::path::absolute(data_file)?;
        if let Some(parent) = data_file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let advertised = Url::parse(&format!("tcp://{addr}"))
            .map_err(|e| TestkitError::Broker(e.to_string()))?;
        // tansu reads the URL path without its leading `/` (relative to the working
        // directory), so an absolute path takes one more: sqlite:////tmp/x.db.
        let storage = Url::parse(&format!("sqlite:///{}", data_file.display()))
            .map_err(|e| TestkitError::Broker(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tansu")
            .enable_all()
            .build()?;
        let store = runtime
            .block_on(async {
                let storage = StorageContainer::builder()
                    .cluster_id(CLUSTER_ID)
                    .node_id(NODE_ID)
                    .advertised_listener(advertised)
                    .storage(storage)
                    .silent(true)
                    .build()
                    .await?;
                storage
                    .register_broker(BrokerRegistrationRequest {
                        broker_id: NODE_ID,
                        cluster_id: CLUSTER_ID.into(),
                        incarnation_id: uuid::Uuid::new_v4(),
                        rack: None,
                    })
                    .await?;
                TxnStore::open(storage, &data_file, CLUSTER_ID).await
            })
            .map_err(|e| TestkitError::Broker(format!("{e:?}")))?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        runtime.spawn({
            let store = store.clone();
            async move {
                if let Err(e) = routes::serve(listener, store, CLUSTER_ID.into()).await {
                    eprintln!("embedded broker stopped: {e:?}");
                }
            }
        });
        runtime.spawn(abort_expired_transactions(store));
        let embedded = EmbeddedBroker {
            bootstrap: addr.to_string(),
            data_file,
            runtime: Some(runtime),
            _dir: None,
        };
        embedded.wait_ready(Duration::from_secs(30))?;
        Ok(embedded)
    }

    fn wait_ready(&self, timeout: Duration) -> Result<(), TestkitError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()?;
        let deadline = Instant::now() + timeout;
        loop {
            match consumer.fetch_metadata(None, Duration::from_millis(500)) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(TestkitError::Timeout(format!(
                        "broker at {} not ready: {e}",
                        self.bootstrap
                    )))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// `host:port` for `bootstrap.servers`.
    ///
    /// ```no_run
    /// use kstreams::config::StreamsConfig;
    /// let broker = kstreams_testkit::EmbeddedBroker::start().unwrap();
    /// let config = StreamsConfig::new("app").with_bootstrap_servers(broker.bootstrap_servers());
    /// # let _ = config;
    /// ```
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The SQLite file holding the broker's data.
    ///
    /// ```no_run
    /// let broker = kstreams_testkit::EmbeddedBroker::start().unwrap();
    /// assert!(broker.data_file().ends_with("tansu.db"));
    /// ```
    pub fn data_file(&self) -> &Path {
        &self.data_file
    }

    /// Creates a topic with these configs; an existing topic is left as it is.
    ///
    /// ```no_run
    /// let broker = kstreams_testkit::EmbeddedBroker::start().unwrap();
    /// broker.create_topic("stock", 4, &[("cleanup.policy", "compact")]).unwrap();
    /// broker.create_topic("stock", 4, &[]).unwrap(); // already there: unchanged
    /// ```
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<(), TestkitError> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()?;
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| TestkitError::Broker("stopped".into()))?;
        let results = runtime.block_on(admin.create_topics(&[topic], &AdminOptions::new()))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(TestkitError::Broker(format!(
                        "create topic {topic}: {code}"
                    )))
                }
            }
        }
        Ok(())
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
