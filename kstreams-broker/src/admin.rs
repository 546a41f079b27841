//! The cluster and topic requests: Metadata (with topic auto-creation), FindCoordinator,
//! DescribeCluster, CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords and the
//! config requests. One node is every partition's leader and only replica.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::server::Shared;
use crate::topics::{valid_topic_name, Topic, TOPIC_DEFAULTS};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

fn s(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

fn topic_metadata(shared: &Shared, name: &str, topic: &Topic) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(s(name)));
    t.topic_id = topic.id;
    for index in 0..topic.partitions.len() as i32 {
        let mut p = MetadataResponsePartition::default();
        p.partition_index = index;
        p.leader_id = BrokerId(shared.config.node_id);
        p.leader_epoch = 0;
        p.replica_nodes = vec![BrokerId(shared.config.node_id)];
        p.isr_nodes = vec![BrokerId(shared.config.node_id)];
        t.partitions.push(p);
    }
    t
}

/// Metadata: this broker, and the topics asked for (all when none are named); an unknown
/// topic is created when auto-creation is on and the client allows it.
pub(crate) fn metadata(shared: &Shared, req: MetadataRequest, version: i16) -> MetadataResponse {
    let mut response = MetadataResponse::default();
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(shared.config.node_id);
    broker.host = s(&shared.host);
    broker.port = shared.port;
    response.brokers.push(broker);
    response.cluster_id = Some(s(&shared.config.cluster_id));
    response.controller_id = BrokerId(shared.config.node_id);
    let requested: Option<Vec<String>> = match req.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(
            topics
                .into_iter()
                .filter_map(|t| t.name.map(|n| n.0.to_string()))
                .collect(),
        ),
        _ => None,
    };
    match requested {
        None => {
            for (name, topic) in shared.topics.all() {
                response.topics.push(topic_metadata(shared, &name, &topic));
            }
        }
        Some(names) => {
            let auto_create =
                shared.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
            for name in names {
                let topic = match shared.topics.get(&name) {
                    Some(topic) => Ok(topic),
                    None if auto_create => shared
                        .topics
                        .create(
                            &name,
                            shared.config.default_partitions,
                            BTreeMap::new(),
                            false,
                        )
                        .or_else(|(error, message)| match shared.topics.get(&name) {
                            // Created by a concurrent request.
                            Some(topic) => Ok(topic),
                            None => Err((error, message)),
                        }),
                    None if !valid_topic_name(&name) => {
                        Err((ResponseError::InvalidTopicException, String::new()))
                    }
                    None => Err((ResponseError::UnknownTopicOrPartition, String::new())),
                };
                match topic {
                    Ok(topic) => response.topics.push(topic_metadata(shared, &name, &topic)),
                    Err((error, _)) => {
                        let mut t = MetadataResponseTopic::default();
                        t.name = Some(TopicName(s(&name)));
                        t.error_code = error.code();
                        response.topics.push(t);
                    }
                }
            }
        }
    }
    response
}

/// FindCoordinator: this broker coordinates every group and transaction.
pub(crate) fn find_coordinator(
    shared: &Shared,
    _req: FindCoordinatorRequest,
    _version: i16,
) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    response.node_id = BrokerId(shared.config.node_id);
    response.host = s(&shared.host);
    response.port = shared.port;
    response
}

/// DescribeCluster: this one broker.
pub(crate) fn describe_cluster(
    shared: &Shared,
    _req: DescribeClusterRequest,
    _version: i16,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default();
    response.cluster_id = s(&shared.config.cluster_id);
    response.controller_id = BrokerId(shared.config.node_id);
    let mut broker = DescribeClusterBroker::default();
    broker.broker_id = BrokerId(shared.config.node_id);
    broker.host = s(&shared.host);
    broker.port = shared.port;
    response.brokers.push(broker);
    response
}

/// A topic's configs as DescribeConfigs and CreateTopics report them: the ones set, then
/// Kafka's defaults for the rest.
fn topic_configs(configs: &BTreeMap<String, String>) -> Vec<(String, String, i8)> {
    let mut all: Vec<(String, String, i8)> = configs
        .iter()
        .map(|(k, v)| (k.clone(), v.clone(), SOURCE_TOPIC))
        .collect();
    for (k, v) in TOPIC_DEFAULTS {
        if !configs.contains_key(*k) {
            all.push((k.to_string(), v.to_string(), SOURCE_DEFAULT));
        }
    }
    all.sort();
    all
}

/// CreateTopics: one replica only; partitions default to the broker's `num.partitions`.
pub(crate) fn create_topics(
    shared: &Shared,
    req: CreateTopicsRequest,
    _version: i16,
) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    for topic in req.topics {
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        result.num_partitions = -1;
        result.replication_factor = -1;
        let partitions = if !topic.assignments.is_empty() {
            topic.assignments.len() as i32
        } else if topic.num_partitions == -1 {
            shared.config.default_partitions
        } else {
            topic.num_partitions
        };
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let outcome = if topic.replication_factor > 1 {
            Err((
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {} is larger than the 1 broker available",
                    topic.replication_factor
                ),
            ))
        } else {
            shared.topics.create(
                &topic.name.0,
                partitions,
                configs.clone(),
                req.validate_only,
            )
        };
        match outcome {
            Ok(created) => {
                result.topic_id = created.id;
                result.num_partitions = partitions;
                result.replication_factor = 1;
                result.configs = Some(
                    topic_configs(&configs)
                        .into_iter()
                        .map(|(name, value, source)| {
                            let mut c = CreatableTopicConfigs::default();
                            c.name = s(name);
                            c.value = Some(s(value));
                            c.config_source = source;
                            c
                        })
                        .collect(),
                );
            }
            Err((error, message)) => {
                result.error_code = error.code();
                result.error_message = Some(s(message));
            }
        }
        response.topics.push(result);
    }
    response
}

/// DeleteTopics: the logs go, and so do the groups' offsets of the topic.
pub(crate) fn delete_topics(
    shared: &Shared,
    req: DeleteTopicsRequest,
    _version: i16,
) -> DeleteTopicsResponse {
    let mut names: Vec<String> = req.topic_names.iter().map(|n| n.0.to_string()).collect();
    names.extend(
        req.topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())),
    );
    let mut response = DeleteTopicsResponse::default();
    for name in names {
        let mut result = DeletableTopicResult::default();
        result.name = Some(TopicName(s(&name)));
        match shared.topics.delete(&name) {
            Ok(()) => shared.groups.topic_deleted(&name),
            Err((error, message)) => {
                result.error_code = error.code();
                result.error_message = Some(s(message));
            }
        }
        response.responses.push(result);
    }
    response
}

/// CreatePartitions: a topic's partition count only grows.
pub(crate) fn create_partitions(
    shared: &Shared,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    for topic in req.topics {
        let mut result = CreatePartitionsTopicResult::default();
        result.name = topic.name.clone();
        if let Err((error, message)) =
            shared
                .topics
                .add_partitions(&topic.name.0, topic.count, req.validate_only)
        {
            result.error_code = error.code();
            result.error_message = Some(s(message));
        }
        response.results.push(result);
    }
    response
}

/// DeleteRecords: moves each partition's log start (`-1`: to the high watermark).
pub(crate) fn delete_records(
    shared: &Shared,
    req: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let mut response = DeleteRecordsResponse::default();
    for topic in req.topics {
        let mut t = DeleteRecordsTopicResult::default();
        t.name = topic.name.clone();
        for partition in topic.partitions {
            let mut p = DeleteRecordsPartitionResult::default();
            p.partition_index = partition.partition_index;
            p.low_watermark = -1;
            match shared
                .topics
                .partition(&topic.name.0, partition.partition_index)
            {
                None => p.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(log) => {
                    let mut log = log.lock().expect("log lock");
                    let offset = if partition.offset == -1 {
                        log.high_watermark()
                    } else {
                        partition.offset
                    };
                    if offset < 0 || offset > log.high_watermark() {
                        p.error_code = ResponseError::OffsetOutOfRange.code();
                    } else {
                        let done = log.delete_before(offset).is_ok()
                            && shared
                                .topics
                                .record_log_start(
                                    &topic.name.0,
                                    partition.partition_index,
                                    log.log_start(),
                                )
                                .is_ok();
                        if done {
                            p.low_watermark = log.log_start();
                        } else {
                            p.error_code = ResponseError::KafkaStorageError.code();
                        }
                    }
                }
            }
            t.partitions.push(p);
        }
        response.topics.push(t);
    }
    response
}

fn broker_configs(shared: &Shared) -> Vec<(String, String, i8)> {
    let c = &shared.config;
    let mut all = vec![
        (
            "auto.create.topics.enable".to_string(),
            c.auto_create_topics.to_string(),
        ),
        ("default.replication.factor".into(), "1".into()),
        (
            "group.initial.rebalance.delay.ms".into(),
            c.group_initial_rebalance_delay.as_millis().to_string(),
        ),
        ("min.insync.replicas".into(), "1".into()),
        ("num.partitions".into(), c.default_partitions.to_string()),
        ("offsets.topic.replication.factor".into(), "1".into()),
        (
            "transaction.max.timeout.ms".into(),
            c.max_transaction_timeout.as_millis().to_string(),
        ),
        (
            "transaction.state.log.replication.factor".into(),
            "1".into(),
        ),
    ];
    all.sort();
    all.into_iter()
        .map(|(k, v)| (k, v, SOURCE_STATIC_BROKER))
        .collect()
}

/// DescribeConfigs of topics (set and default) and of the broker.
pub(crate) fn describe_configs(
    shared: &Shared,
    req: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    for resource in req.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let configs = match resource.resource_type {
            RESOURCE_TOPIC => match shared.topics.get(&resource.resource_name) {
                Some(topic) => Ok(topic_configs(&topic.configs)),
                None => Err(ResponseError::UnknownTopicOrPartition),
            },
            RESOURCE_BROKER => Ok(broker_configs(shared)),
            _ => Err(ResponseError::InvalidRequest),
        };
        match configs {
            Ok(configs) => {
                let wanted = resource.configuration_keys.as_ref();
                for (name, value, source) in configs {
                    if wanted.is_some_and(|keys| !keys.iter().any(|k| **k == *name)) {
                        continue;
                    }
                    let mut c = DescribeConfigsResourceResult::default();
                    c.name = s(name);
                    c.value = Some(s(value));
                    c.config_source = source;
                    c.read_only = resource.resource_type == RESOURCE_BROKER;
                    result.configs.push(c);
                }
            }
            Err(error) => {
                result.error_code = error.code();
                result.error_message = Some(s(format!(
                    "no {} '{}'",
                    if resource.resource_type == RESOURCE_TOPIC {
                        "topic"
                    } else {
                        "resource"
                    },
                    resource.resource_name.as_str()
                )));
            }
        }
        response.results.push(result);
    }
    response
}

/// Changes a topic's configs with `change`; the error code and message for the response.
fn alter_topic(
    shared: &Shared,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&mut BTreeMap<String, String>),
) -> (i16, Option<StrBytes>) {
    let outcome = if resource_type != RESOURCE_TOPIC {
        Err((
            ResponseError::InvalidRequest,
            "only topic configs can be changed".to_string(),
        ))
    } else {
        shared.topics.alter_configs(name, validate_only, change)
    };
    match outcome {
        Ok(()) => (0, None),
        Err((error, message)) => (error.code(), Some(s(message))),
    }
}

/// AlterConfigs: a topic's configs become exactly the ones given.
pub(crate) fn alter_configs(
    shared: &Shared,
    req: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let mut response = AlterConfigsResponse::default();
    for resource in req.resources {
        let mut r = AlterConfigsResourceResponse::default();
        r.resource_type = resource.resource_type;
        r.resource_name = resource.resource_name.clone();
        (r.error_code, r.error_message) = alter_topic(
            shared,
            resource.resource_type,
            &resource.resource_name,
            req.validate_only,
            |configs| {
                configs.clear();
                for c in &resource.configs {
                    if let Some(value) = &c.value {
                        configs.insert(c.name.to_string(), value.to_string());
                    }
                }
            },
        );
        response.responses.push(r);
    }
    response
}

/// IncrementalAlterConfigs' operations: set, delete, append to a list, subtract from a list.
const OPERATIONS: std::ops::RangeInclusive<i8> = 0..=3;

/// One IncrementalAlterConfigs operation (one of [`OPERATIONS`]) on a topic's configs.
fn apply_operation(
    configs: &mut BTreeMap<String, String>,
    operation: i8,
    name: String,
    value: String,
) {
    let items = |list: &str| -> Vec<String> {
        list.split(',')
            .filter(|i| !i.is_empty())
            .map(String::from)
            .collect()
    };
    match operation {
        0 => {
            configs.insert(name, value);
        }
        1 => {
            configs.remove(&name);
        }
        2 => {
            let entry = configs.entry(name).or_default();
            let mut list = items(entry);
            for item in items(&value) {
                if !list.contains(&item) {
                    list.push(item);
                }
            }
            *entry = list.join(",");
        }
        _ => {
            if let Some(entry) = configs.get_mut(&name) {
                let remove = items(&value);
                let kept: Vec<String> = items(entry)
                    .into_iter()
                    .filter(|i| !remove.contains(i))
                    .collect();
                *entry = kept.join(",");
            }
        }
    }
}

/// IncrementalAlterConfigs: set, delete, append to or subtract from topic configs.
pub(crate) fn incremental_alter_configs(
    shared: &Shared,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in req.resources {
        let mut r = AlterConfigsResourceResponse::default();
        r.resource_type = resource.resource_type;
        r.resource_name = resource.resource_name.clone();
        // Checked before anything changes: an unknown operation refuses the resource.
        let refused = resource
            .configs
            .iter()
            .find(|c| !OPERATIONS.contains(&c.config_operation));
        if let Some(c) = refused {
            r.error_code = ResponseError::InvalidConfig.code();
            r.error_message = Some(s(format!(
                "unknown config operation {} for '{}'",
                c.config_operation,
                c.name.as_str()
            )));
        } else {
            (r.error_code, r.error_message) = alter_topic(
                shared,
                resource.resource_type,
                &resource.resource_name,
                req.validate_only,
                |configs| {
                    for c in &resource.configs {
                        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                        apply_operation(configs, c.config_operation, c.name.to_string(), value);
                    }
                },
            );
        }
        response.responses.push(r);
    }
    response
}
