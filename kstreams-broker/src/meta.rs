//! The broker's metadata: topics, committed offsets, transactional ids and producer ids, kept
//! as an append-only file of JSON lines (`meta.log` in the data directory).
//!
//! Every change is one line, written before the request that made it is answered, so a
//! process killed at any point loses nothing it acknowledged. At start the file is replayed
//! into a [`MetaState`] and rewritten as a snapshot of that state, so it never grows beyond
//! one line per live item plus the changes since the last start.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::BrokerError;

/// One change to the broker's metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum MetaRecord {
    /// A topic was created (or its partition count or configs changed: the latest wins).
    Topic {
        name: String,
        id: String,
        partitions: i32,
        configs: BTreeMap<String, String>,
    },
    /// A topic was deleted.
    TopicDeleted { name: String },
    /// Records before `offset` were deleted (DeleteRecords).
    LogStart {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// A consumer group committed an offset.
    Offset {
        group: String,
        topic: String,
        partition: i32,
        offset: i64,
        metadata: Option<String>,
        leader_epoch: i32,
    },
    /// A group and its offsets were deleted.
    GroupDeleted { group: String },
    /// A `transactional.id` was initialised: its producer id and epoch now.
    TransactionalId {
        id: String,
        producer_id: i64,
        epoch: i16,
        timeout_ms: i32,
    },
    /// Producer ids below `next` have been handed out.
    NextProducerId { next: i64 },
}

/// A committed offset of one group partition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CommittedOffset {
    pub offset: i64,
    pub metadata: Option<String>,
    pub leader_epoch: i32,
}

/// A topic as the metadata knows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TopicMeta {
    pub id: uuid::Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// The metadata as replayed from the file.
#[derive(Debug, Default, Clone)]
pub(crate) struct MetaState {
    pub topics: BTreeMap<String, TopicMeta>,
    pub log_starts: BTreeMap<(String, i32), i64>,
    /// group → (topic, partition) → offset.
    pub offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    /// transactional id → (producer id, epoch, timeout ms).
    pub transactional_ids: BTreeMap<String, (i64, i16, i32)>,
    pub next_producer_id: i64,
}

impl MetaState {
    fn apply(&mut self, record: MetaRecord) {
        match record {
            MetaRecord::Topic {
                name,
                id,
                partitions,
                configs,
            } => {
                let id = uuid::Uuid::parse_str(&id).unwrap_or_else(|_| uuid::Uuid::new_v4());
                self.topics.insert(
                    name,
                    TopicMeta {
                        id,
                        partitions,
                        configs,
                    },
                );
            }
            MetaRecord::TopicDeleted { name } => {
                self.topics.remove(&name);
                self.log_starts.retain(|(topic, _), _| *topic != name);
                for offsets in self.offsets.values_mut() {
                    offsets.retain(|(topic, _), _| *topic != name);
                }
            }
            MetaRecord::LogStart {
                topic,
                partition,
                offset,
            } => {
                self.log_starts.insert((topic, partition), offset);
            }
            MetaRecord::Offset {
                group,
                topic,
                partition,
                offset,
                metadata,
                leader_epoch,
            } => {
                self.offsets.entry(group).or_default().insert(
                    (topic, partition),
                    CommittedOffset {
                        offset,
                        metadata,
                        leader_epoch,
                    },
                );
            }
            MetaRecord::GroupDeleted { group } => {
                self.offsets.remove(&group);
            }
            MetaRecord::TransactionalId {
                id,
                producer_id,
                epoch,
                timeout_ms,
            } => {
                self.next_producer_id = self.next_producer_id.max(producer_id + 1);
                self.transactional_ids
                    .insert(id, (producer_id, epoch, timeout_ms));
            }
            MetaRecord::NextProducerId { next } => {
                self.next_producer_id = self.next_producer_id.max(next);
            }
        }
    }

    /// The records that rebuild this state.
    fn snapshot(&self) -> Vec<MetaRecord> {
        let mut records = Vec::new();
        for (name, topic) in &self.topics {
            records.push(MetaRecord::Topic {
                name: name.clone(),
                id: topic.id.to_string(),
                partitions: topic.partitions,
                configs: topic.configs.clone(),
            });
        }
        for ((topic, partition), offset) in &self.log_starts {
            records.push(MetaRecord::LogStart {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
            });
        }
        for (group, offsets) in &self.offsets {
            for ((topic, partition), committed) in offsets {
                records.push(MetaRecord::Offset {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    offset: committed.offset,
                    metadata: committed.metadata.clone(),
                    leader_epoch: committed.leader_epoch,
                });
            }
        }
        for (id, (producer_id, epoch, timeout_ms)) in &self.transactional_ids {
            records.push(MetaRecord::TransactionalId {
                id: id.clone(),
                producer_id: *producer_id,
                epoch: *epoch,
                timeout_ms: *timeout_ms,
            });
        }
        records.push(MetaRecord::NextProducerId {
            next: self.next_producer_id,
        });
        records
    }
}

/// The metadata file, shared by every part of the broker that changes metadata.
#[derive(Clone)]
pub(crate) struct MetaLog {
    file: Arc<Mutex<File>>,
}

impl MetaLog {
    /// Replays `<dir>/meta.log` (a missing file is an empty state), rewrites it as a
    /// snapshot and opens it for appending.
    pub fn open(dir: &Path) -> Result<(MetaLog, MetaState), BrokerError> {
        let path = dir.join("meta.log");
        let mut state = MetaState::default();
        if path.exists() {
            let reader = BufReader::new(File::open(&path)?);
            for line in reader.lines() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<MetaRecord>(&line) {
                    Ok(record) => state.apply(record),
                    // A line cut short by a crash mid-write is the last one: ignore it.
                    Err(_) => break,
                }
            }
        }
        let tmp: PathBuf = dir.join("meta.log.tmp");
        {
            let mut out = File::create(&tmp)?;
            let mut text = String::new();
            for record in state.snapshot() {
                text.push_str(&serde_json::to_string(&record).expect("serializable"));
                text.push('\n');
            }
            out.write_all(text.as_bytes())?;
            out.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok((
            MetaLog {
                file: Arc::new(Mutex::new(file)),
            },
            state,
        ))
    }

    /// Appends changes as one write (so a crash keeps all of them or a prefix).
    pub fn append(&self, records: &[MetaRecord]) -> Result<(), BrokerError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for record in records {
            text.push_str(&serde_json::to_string(record).expect("serializable"));
            text.push('\n');
        }
        let mut file = self.file.lock().expect("meta log lock");
        file.write_all(text.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_survive_a_reopen_and_the_latest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (log, state) = MetaLog::open(dir.path()).unwrap();
        assert!(state.topics.is_empty());
        let offset = |offset| MetaRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            offset,
            metadata: None,
            leader_epoch: -1,
        };
        log.append(&[offset(5), offset(9)]).unwrap();
        log.append(&[MetaRecord::TransactionalId {
            id: "tx".into(),
            producer_id: 41,
            epoch: 3,
            timeout_ms: 10_000,
        }])
        .unwrap();
        drop(log);
        let (_, state) = MetaLog::open(dir.path()).unwrap();
        assert_eq!(state.offsets["g"][&("t".to_string(), 0)].offset, 9);
        assert_eq!(state.transactional_ids["tx"], (41, 3, 10_000));
        assert_eq!(state.next_producer_id, 42);
        // Reopened twice: the snapshot replays to the same state.
        let (_, again) = MetaLog::open(dir.path()).unwrap();
        assert_eq!(again.offsets, state.offsets);
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MetaLog::open(dir.path()).unwrap();
        log.append(&[MetaRecord::NextProducerId { next: 7 }])
            .unwrap();
        drop(log);
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join("meta.log"))
            .unwrap();
        file.write_all(b"{\"kind\":\"offset\",\"gro").unwrap();
        let (_, state) = MetaLog::open(dir.path()).unwrap();
        assert_eq!(state.next_producer_id, 7);
    }
}
