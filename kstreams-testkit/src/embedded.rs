//! tansu running inside this process on SQLite storage.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use url::Url;

use crate::{free_port, TestkitError};

/// A tansu broker serving on a local port, stopped when dropped.
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
    pub fn start() -> Result<Self, TestkitError> {
        let dir = tempfile::tempdir()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut broker = Self::start_with(&dir.path().join("tansu.db"), addr)?;
        broker._dir = Some(dir);
        Ok(broker)
    }

    /// Starts a broker listening on `addr` with its data in the SQLite file `data_file`, so
    /// the data survives a restart.
    pub fn start_with(data_file: &Path, addr: SocketAddr) -> Result<Self, TestkitError> {
        let data_file = std::path::absolute(data_file)?;
        if let Some(parent) = data_file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let listener = Url::parse(&format!("tcp://{addr}"))
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
        let mut broker = runtime.block_on(async {
            Broker::<Controller<StorageContainer>, StorageContainer>::builder()
                .node_id(111)
                .cluster_id("kstreams")
                .incarnation_id(uuid::Uuid::new_v4())
                .advertised_listener(listener.clone())
                .storage(storage)
                .listener(listener)
                .silent(true)
                .build()
                .await
                .map_err(|e| TestkitError::Broker(format!("{e:?}")))
        })?;
        runtime.spawn(async move {
            if let Err(e) = broker.serve(tokio::time::Instant::now()).await {
                eprintln!("embedded broker stopped: {e:?}");
            }
        });
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
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The SQLite file holding the broker's data.
    pub fn data_file(&self) -> &Path {
        &self.data_file
    }

    /// Creates a topic with these configs; an existing topic is left as it is.
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
