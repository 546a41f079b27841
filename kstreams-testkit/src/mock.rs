//! librdkafka's mock cluster, with a topology's topics created up front.

use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::client::Client;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaType};

use kstreams::topology::Topology;

use crate::TestkitError;

/// An in-process mock Kafka cluster (librdkafka's), for exactly-once and fault tests.
///
/// It keeps at most the last 5 MiB (and 100,000 batches) of each partition: older batches
/// are dropped, and the partition's low watermark moves on.
///
/// ```
/// use kstreams_testkit::MockKafka;
/// let kafka = MockKafka::start(3).unwrap();
/// kafka.create_topic("orders", 6).unwrap();
/// assert_eq!(kafka.bootstrap_servers().split(',').count(), 3);
/// ```
pub struct MockKafka {
    /// The client the cluster belongs to (`test.mock.num.brokers`): librdkafka destroys the
    /// cluster with it.
    client: Client<DefaultProducerContext>,
}

impl MockKafka {
    /// Starts a mock cluster of `brokers` brokers.
    ///
    /// ```
    /// let kafka = kstreams_testkit::MockKafka::start(1).unwrap();
    /// assert!(kafka.bootstrap_servers().starts_with("127.0.0.1:"));
    /// ```
    pub fn start(brokers: i32) -> Result<Self, TestkitError> {
        let mut config = ClientConfig::new();
        config.set("test.mock.num.brokers", brokers.to_string());
        let client = Client::new(
            &config,
            config.create_native_config()?,
            RDKafkaType::RD_KAFKA_PRODUCER,
            DefaultProducerContext,
        )?;
        if client.mock_cluster().is_none() {
            return Err(TestkitError::Broker(
                "librdkafka started no mock cluster".into(),
            ));
        }
        Ok(MockKafka { client })
    }

    /// How long a group's first rebalance waits for more members (the broker's
    /// `group.initial.rebalance.delay.ms`): 3 s unless set, the embedded broker's is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// let kafka = kstreams_testkit::MockKafka::start(1).unwrap();
    /// // A group's first member gets its assignment at once.
    /// kafka.group_initial_rebalance_delay(Duration::ZERO);
    /// ```
    pub fn group_initial_rebalance_delay(&self, delay: Duration) {
        let ms = i32::try_from(delay.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `start` checked that the client has a mock cluster, which lives as long as
        // the client, borrowed here.
        unsafe {
            let cluster = rdsys::rd_kafka_handle_mock_cluster(self.client.native_ptr());
            rdsys::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, ms);
        }
    }

    /// `host:port,...` for `bootstrap.servers`.
    ///
    /// ```
    /// use rdkafka::consumer::{BaseConsumer, Consumer};
    /// let kafka = kstreams_testkit::MockKafka::start(2).unwrap();
    /// let consumer: BaseConsumer = rdkafka::ClientConfig::new()
    ///     .set("bootstrap.servers", kafka.bootstrap_servers())
    ///     .create()
    ///     .unwrap();
    /// let metadata = consumer.fetch_metadata(None, std::time::Duration::from_secs(10)).unwrap();
    /// assert_eq!(metadata.brokers().len(), 2);
    /// ```
    pub fn bootstrap_servers(&self) -> String {
        self.cluster().bootstrap_servers()
    }

    /// Creates a topic (the mock cluster ignores topic configs); an existing topic is left as
    /// it is.
    ///
    /// ```
    /// use rdkafka::consumer::{BaseConsumer, Consumer};
    /// let kafka = kstreams_testkit::MockKafka::start(1).unwrap();
    /// kafka.create_topic("payments", 4).unwrap();
    /// kafka.create_topic("payments", 2).unwrap(); // already there: unchanged
    /// let consumer: BaseConsumer = rdkafka::ClientConfig::new()
    ///     .set("bootstrap.servers", kafka.bootstrap_servers())
    ///     .create()
    ///     .unwrap();
    /// let timeout = std::time::Duration::from_secs(10);
    /// let metadata = consumer.fetch_metadata(Some("payments"), timeout).unwrap();
    /// assert_eq!(metadata.topics()[0].partitions().len(), 4);
    /// ```
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), TestkitError> {
        match self.cluster().create_topic(name, partitions, 1) {
            Err(KafkaError::MockCluster(RDKafkaErrorCode::TopicAlreadyExists)) => Ok(()),
            result => Ok(result?),
        }
    }

    /// Creates every topic a topology reads or writes, internal ones with the application-id
    /// prefix, and its dead-letter topic, all with `partitions` partitions (the mock cluster cannot create them on
    /// demand with configs).
    ///
    /// ```
    /// use kstreams::dsl::StreamsBuilder;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("words").group_by_key().count().to_stream().to("counts");
    /// let topology = builder.build().unwrap();
    /// let kafka = kstreams_testkit::MockKafka::start(1).unwrap();
    /// // words, counts, the count's changelog and `wc-dlq`, 2 partitions each.
    /// kafka.create_topology_topics(&topology, "wc", 2).unwrap();
    /// ```
    pub fn create_topology_topics(
        &self,
        topology: &Topology,
        application_id: &str,
        partitions: i32,
    ) -> Result<(), TestkitError> {
        let description = topology.describe();
        let internal = description
            .internal_topics
            .iter()
            .map(|t| t.full_name(application_id));
        // The runtime writes bad records to `<application-id>-dlq` by default.
        let dead_letter = std::iter::once(format!("{application_id}-dlq"));
        for topic in topology
            .source_topics()
            .into_iter()
            .chain(topology.sink_topics())
            .chain(internal)
            .chain(dead_letter)
        {
            self.create_topic(&topic, partitions)?;
        }
        Ok(())
    }

    /// The cluster, for fault injection (`broker_down`, `request_errors`, round-trip time).
    ///
    /// ```
    /// use std::time::Duration;
    /// let kafka = kstreams_testkit::MockKafka::start(1).unwrap();
    /// // Every request to broker 1 now takes 50 ms longer; then the broker goes down.
    /// kafka.cluster().broker_round_trip_time(1, Duration::from_millis(50)).unwrap();
    /// kafka.cluster().broker_down(1).unwrap();
    /// kafka.cluster().broker_up(1).unwrap();
    /// ```
    pub fn cluster(&self) -> MockCluster<'_, DefaultProducerContext> {
        self.client
            .mock_cluster()
            .expect("start checked the mock cluster")
    }
}
