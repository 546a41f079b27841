//! The broker's topics: names, ids, configs and one [`PartitionLog`] per partition, under
//! `<data dir>/topics/<topic>-<partition>/`, with their metadata in the [`MetaLog`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use kafka_protocol::error::ResponseError;

use crate::log::PartitionLog;
use crate::meta::{MetaLog, MetaRecord, MetaState};
use crate::BrokerError;

/// A partition's log, shared by the requests that use it.
pub(crate) type Partition = Arc<Mutex<PartitionLog>>;

/// One topic.
pub(crate) struct Topic {
    pub id: uuid::Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<Partition>,
}

/// Every topic of the broker.
pub(crate) struct Topics {
    dir: PathBuf,
    segment_bytes: u64,
    meta: MetaLog,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
}

/// Kafka's rule for topic names.
pub(crate) fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The error for a topic that does not exist.
fn unknown(name: &str) -> (ResponseError, String) {
    (
        ResponseError::UnknownTopicOrPartition,
        format!("no topic '{name}'"),
    )
}

/// The error for a failure of the broker's own storage.
fn internal(e: BrokerError) -> (ResponseError, String) {
    (ResponseError::UnknownServerError, e.to_string())
}

impl Topics {
    /// Opens the logs of the topics `state` lists.
    pub fn open(
        dir: PathBuf,
        segment_bytes: u64,
        meta: MetaLog,
        state: &MetaState,
    ) -> Result<Topics, BrokerError> {
        let topics = Topics {
            dir,
            segment_bytes,
            meta,
            topics: RwLock::new(BTreeMap::new()),
        };
        let mut map = BTreeMap::new();
        for (name, topic) in &state.topics {
            let mut partitions = Vec::new();
            for partition in 0..topic.partitions {
                let start = state
                    .log_starts
                    .get(&(name.clone(), partition))
                    .copied()
                    .unwrap_or(0);
                partitions.push(topics.open_partition(name, partition, start)?);
            }
            map.insert(
                name.clone(),
                Arc::new(Topic {
                    id: topic.id,
                    configs: topic.configs.clone(),
                    partitions,
                }),
            );
        }
        *topics.topics.write().expect("topics lock") = map;
        Ok(topics)
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.dir.join(format!("{topic}-{partition}"))
    }

    fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        log_start: i64,
    ) -> Result<Partition, BrokerError> {
        let dir = self.partition_dir(topic, partition);
        let log = PartitionLog::open(&dir, self.segment_bytes, log_start).map_err(|e| {
            BrokerError::Corrupt {
                path: dir.clone(),
                message: e.to_string(),
            }
        })?;
        Ok(Arc::new(Mutex::new(log)))
    }

    /// The topic named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().expect("topics lock").get(name).cloned()
    }

    /// Partition `partition` of `topic`.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Partition> {
        let topic = self.get(topic)?;
        usize::try_from(partition)
            .ok()
            .and_then(|p| topic.partitions.get(p).cloned())
    }

    /// Every topic, by name.
    pub fn all(&self) -> Vec<(String, Arc<Topic>)> {
        self.topics
            .read()
            .expect("topics lock")
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect()
    }

    /// Creates a topic; `validate_only` checks without creating.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, (ResponseError, String)> {
        if !valid_topic_name(name) {
            return Err((
                ResponseError::InvalidTopicException,
                format!("'{name}' is not a valid topic name"),
            ));
        }
        if partitions < 1 {
            return Err((
                ResponseError::InvalidPartitions,
                "the partition count must be at least 1".into(),
            ));
        }
        let mut topics = self.topics.write().expect("topics lock");
        if topics.contains_key(name) {
            return Err((
                ResponseError::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
        }
        let id = uuid::Uuid::new_v4();
        if validate_only {
            return Ok(Arc::new(Topic {
                id,
                configs,
                partitions: Vec::new(),
            }));
        }
        let mut logs = Vec::new();
        for partition in 0..partitions {
            // A leftover directory of a deleted topic of the same name must not come back.
            let dir = self.partition_dir(name, partition);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| internal(e.into()))?;
            }
            logs.push(self.open_partition(name, partition, 0).map_err(internal)?);
        }
        self.publish(
            &mut topics,
            name,
            Topic {
                id,
                configs,
                partitions: logs,
            },
        )
    }

    /// Records `topic` as the current state of `name` in the meta log, then makes it the one
    /// requests see (creation, more partitions, new configs).
    fn publish(
        &self,
        topics: &mut BTreeMap<String, Arc<Topic>>,
        name: &str,
        topic: Topic,
    ) -> Result<Arc<Topic>, (ResponseError, String)> {
        self.meta
            .append(&[MetaRecord::Topic {
                name: name.into(),
                id: topic.id.to_string(),
                partitions: topic.partitions.len() as i32,
                configs: topic.configs.clone(),
            }])
            .map_err(internal)?;
        let topic = Arc::new(topic);
        topics.insert(name.into(), topic.clone());
        Ok(topic)
    }

    /// Deletes a topic and its logs.
    pub fn delete(&self, name: &str) -> Result<(), (ResponseError, String)> {
        let removed = self.topics.write().expect("topics lock").remove(name);
        let Some(topic) = removed else {
            return Err(unknown(name));
        };
        self.meta
            .append(&[MetaRecord::TopicDeleted { name: name.into() }])
            .map_err(internal)?;
        for partition in 0..topic.partitions.len() {
            let dir = self.partition_dir(name, partition as i32);
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }

    /// Raises a topic's partition count to `count`.
    pub fn add_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), (ResponseError, String)> {
        let mut topics = self.topics.write().expect("topics lock");
        let Some(topic) = topics.get(name).cloned() else {
            return Err(unknown(name));
        };
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err((
                ResponseError::InvalidPartitions,
                format!("topic '{name}' has {current} partitions; it can only grow"),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let mut partitions = topic.partitions.clone();
        for partition in current..count {
            partitions.push(self.open_partition(name, partition, 0).map_err(internal)?);
        }
        let topic = Topic {
            id: topic.id,
            configs: topic.configs.clone(),
            partitions,
        };
        self.publish(&mut topics, name, topic).map(drop)
    }

    /// Replaces a topic's configs with `change(configs)`.
    pub fn alter_configs(
        &self,
        name: &str,
        validate_only: bool,
        change: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> Result<(), (ResponseError, String)> {
        let mut topics = self.topics.write().expect("topics lock");
        let Some(topic) = topics.get(name).cloned() else {
            return Err(unknown(name));
        };
        let mut configs = topic.configs.clone();
        change(&mut configs);
        if validate_only {
            return Ok(());
        }
        let topic = Topic {
            id: topic.id,
            configs,
            partitions: topic.partitions.clone(),
        };
        self.publish(&mut topics, name, topic).map(drop)
    }

    /// Records a new log start of a partition (DeleteRecords).
    pub fn record_log_start(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), BrokerError> {
        self.meta.append(&[MetaRecord::LogStart {
            topic: topic.into(),
            partition,
            offset,
        }])
    }
}

/// Topic configs and their defaults as Kafka documents them, for DescribeConfigs.
pub(crate) const TOPIC_DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("delete.retention.ms", "86400000"),
    ("max.message.bytes", "1048588"),
    ("message.timestamp.type", "CreateTime"),
    ("min.compaction.lag.ms", "0"),
    ("min.insync.replicas", "1"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "1073741824"),
    ("segment.ms", "604800000"),
];
