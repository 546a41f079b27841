//! librdkafka's mock cluster, with a topology's topics created up front.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use kstreams::topology::Topology;

use crate::TestkitError;

/// An in-process mock Kafka cluster (librdkafka's), for exactly-once and fault tests.
pub struct MockKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl MockKafka {
    /// Starts a mock cluster of `brokers` brokers.
    pub fn start(brokers: i32) -> Result<Self, TestkitError> {
        Ok(MockKafka {
            cluster: MockCluster::new(brokers)?,
        })
    }

    /// `host:port,...` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates a topic (the mock cluster ignores topic configs).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), TestkitError> {
        Ok(self.cluster.create_topic(name, partitions, 1)?)
    }

    /// Creates every topic a topology reads or writes, internal ones with the application-id
    /// prefix, and its dead-letter topic, all with `partitions` partitions (the mock cluster cannot create them on
    /// demand with configs).
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
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}
