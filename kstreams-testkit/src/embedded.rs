//! The development broker ([`kstreams_broker`]) started for a test, with helpers tests need
//! (topic creation, waiting until it answers).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use kstreams_broker::{Broker, BrokerConfig};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::TestkitError;

/// A [`kstreams_broker::Broker`] serving on a local port, stopped when dropped: append-only
/// partition logs, consumer groups and Kafka transactions (`read_committed`, fencing,
/// transactional offsets, timeouts), one node, no replication.
///
/// ```no_run
/// let broker = kstreams_testkit::EmbeddedBroker::start().unwrap();
/// broker.create_topic("orders", 3, &[("cleanup.policy", "compact")]).unwrap();
/// println!("Kafka at {}", broker.bootstrap_servers());
/// ```
pub struct EmbeddedBroker {
    broker: Option<Broker>,
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
        let mut broker = Self::start_on(dir.path(), SocketAddr::from(([127, 0, 0, 1], 0)))?;
        broker._dir = Some(dir);
        Ok(broker)
    }

    /// Starts a broker listening on `addr` with its data in the directory `data_dir`, so
    /// the data survives a restart.
    ///
    /// ```no_run
    /// use std::net::SocketAddr;
    /// use kstreams_testkit::EmbeddedBroker;
    /// let addr: SocketAddr = "127.0.0.1:9092".parse().unwrap();
    /// let broker = EmbeddedBroker::start_with("shop-data/broker".as_ref(), addr).unwrap();
    /// broker.create_topic("orders", 4, &[]).unwrap();
    /// drop(broker);
    /// // Started again on the same directory: the topic and its records are still there.
    /// let broker = EmbeddedBroker::start_with("shop-data/broker".as_ref(), addr).unwrap();
    /// # let _ = broker;
    /// ```
    pub fn start_with(data_dir: &Path, addr: SocketAddr) -> Result<Self, TestkitError> {
        Self::start_on(data_dir, addr)
    }

    fn start_on(data_dir: &Path, addr: SocketAddr) -> Result<Self, TestkitError> {
        let broker = Broker::start(BrokerConfig::new(data_dir).with_listener(addr)).map_err(
            |e| match e {
                kstreams_broker::BrokerError::Io(io) => TestkitError::Io(io),
                other => TestkitError::Broker(other.to_string()),
            },
        )?;
        let embedded = EmbeddedBroker {
            broker: Some(broker),
            _dir: None,
        };
        embedded.wait_ready(Duration::from_secs(30))?;
        Ok(embedded)
    }

    fn broker(&self) -> &Broker {
        self.broker.as_ref().expect("running until dropped")
    }

    fn wait_ready(&self, timeout: Duration) -> Result<(), TestkitError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap_servers())
            .create()?;
        let deadline = Instant::now() + timeout;
        loop {
            match consumer.fetch_metadata(None, Duration::from_millis(500)) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(TestkitError::Timeout(format!(
                        "broker at {} not ready: {e}",
                        self.bootstrap_servers()
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
        self.broker().bootstrap_servers()
    }

    /// The directory holding the broker's data.
    ///
    /// ```no_run
    /// let broker = kstreams_testkit::EmbeddedBroker::start().unwrap();
    /// assert!(broker.data_dir().join("meta.log").exists());
    /// ```
    pub fn data_dir(&self) -> &Path {
        self.broker().data_dir()
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
            .set("bootstrap.servers", self.bootstrap_servers())
            .create()?;
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        let results = self
            .broker()
            .block_on(admin.create_topics(&[topic], &AdminOptions::new()))?;
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
        // The broker stops before its temporary directory goes.
        self.broker.take();
    }
}
