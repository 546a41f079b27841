//! The one place that names and creates an application's topics.
//!
//! Before any thread starts, [`prepare_topics`] reads the cluster's metadata, checks that
//! every source topic exists and that joined topics are co-partitioned, and creates what is
//! missing: repartition and changelog topics (`<application-id>-<name>`, with the partition
//! counts the topology needs and their configs: `cleanup.policy=compact` for key-value
//! changelogs, `compact,delete` with a retention for window changelogs, `delete` with
//! unlimited retention for repartition topics) and the dead-letter topic, with the
//! configured replication factor.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::StreamsConfig;
use crate::error::StreamsError;
use crate::topology::Topology;

use super::kafka;

/// Partition counts of every topic the cluster knows, by name.
pub(crate) type PartitionCounts = HashMap<String, i32>;

/// The partition counts and the number of brokers.
fn cluster(client: &ClientConfig) -> Result<(PartitionCounts, usize), StreamsError> {
    let consumer: BaseConsumer = client.create().map_err(kafka)?;
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(30))
        .map_err(kafka)?;
    let counts = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect();
    Ok((counts, metadata.brokers().len()))
}

/// The replication factor for new topics: the configured one; unset (`-1`), the broker's
/// default, except on a single broker, where it can only be 1 (and some Kafka-protocol
/// brokers do not take `-1`).
fn replication(configured: i32, brokers: usize) -> TopicReplication<'static> {
    match configured {
        n if n > 0 => TopicReplication::Fixed(n),
        _ if brokers <= 1 => TopicReplication::Fixed(1),
        _ => TopicReplication::Fixed(-1),
    }
}

/// Checks source topics and co-partitioning, creates missing internal topics and the
/// dead-letter topic; returns the partition counts of all topics afterwards.
pub(crate) fn prepare_topics(
    topology: &Topology,
    config: &StreamsConfig,
    client: &ClientConfig,
) -> Result<PartitionCounts, StreamsError> {
    let (mut counts, brokers) = cluster(client)?;
    for topic in topology.source_topics() {
        if !counts.contains_key(&topic) {
            return Err(crate::TopologyError::MissingSourceTopic(topic).into());
        }
    }
    topology.check_copartitioning(|t| counts.get(t).copied())?;
    let plan = topology.internal_topic_partitions(|t| counts.get(t).copied())?;
    let app = &config.application_id;
    let mut missing = Vec::new();
    for topic in &topology.describe().internal_topics {
        let name = topic.full_name(app);
        let partitions = plan[&topic.name];
        match counts.get(&name) {
            Some(&existing) if existing != partitions => {
                return Err(StreamsError::Other(format!(
                    "internal topic `{name}` has {existing} partitions, the topology needs {partitions}"
                )))
            }
            Some(_) => {}
            None => missing.push((name, partitions, topic.configs.clone())),
        }
    }
    // The dead-letter topic takes records from try_* operators and from the dead-letter
    // policies; brokers may not create topics on first write.
    let dead_letter = config.dead_letter_topic();
    if !counts.contains_key(&dead_letter) {
        missing.push((dead_letter, 1, BTreeMap::new()));
    }
    if missing.is_empty() {
        return Ok(counts);
    }
    let admin: AdminClient<DefaultClientContext> = client.create().map_err(kafka)?;
    let topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|(name, partitions, configs)| {
            configs.iter().fold(
                NewTopic::new(
                    name,
                    *partitions,
                    replication(config.replication_factor, brokers),
                ),
                |t, (k, v)| t.set(k, v),
            )
        })
        .collect();
    let results = futures::executor::block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .map_err(kafka)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(StreamsError::Kafka(format!(
                    "cannot create `{topic}`: {code}"
                )))
            }
        }
    }
    tracing::info!(topics = ?missing.iter().map(|m| &m.0).collect::<Vec<_>>(), "created internal topics");
    for (name, partitions, _) in missing {
        counts.insert(name, partitions);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factor(r: TopicReplication<'_>) -> i32 {
        match r {
            TopicReplication::Fixed(n) => n,
            TopicReplication::Variable(_) => panic!("variable"),
        }
    }

    #[test]
    fn replication_factor_is_the_configured_one_or_the_brokers_default() {
        assert_eq!(factor(replication(3, 5)), 3);
        assert_eq!(factor(replication(3, 1)), 3, "configured wins");
        assert_eq!(factor(replication(-1, 5)), -1, "the broker's default");
        assert_eq!(factor(replication(-1, 1)), 1, "one broker: one replica");
    }
}
