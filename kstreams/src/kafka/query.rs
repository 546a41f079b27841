//! Interactive queries: reading a running application's stores from outside its tasks.
//!
//! [`ReadOnlyKeyValueStore`] and [`ReadOnlyWindowStore`] read the named store across every
//! task of this instance (as Kafka Streams' composite stores do); a key lives in exactly one
//! of them. [`KeyQueryMetadata`] says which partition holds a key and which instance of the
//! application runs that partition: instances publish the `application_server` they serve
//! queries on in their consumer-group client ids, and the group's assignment says who owns
//! what. [`TableChanges`] is a store's change feed as an async stream.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::mpsc;
use futures::Stream;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::StreamsConfig;
use crate::error::StreamsError;
use crate::processor::TaskId;
use crate::serde::SerdeRef;
use crate::state::{
    ChangeHub, RawChange, StoreError, StoreRegistry, StoreSerdes, ValueAndTimestampSerde,
};
use crate::topology::Topology;

use super::kafka;
use super::topics::PartitionCounts;
use super::Shared;

/// The consumer client id of a stream thread: it carries the instance's query endpoint, so
/// other instances can find who hosts a partition from the group's description.
pub(crate) fn client_id(config: &StreamsConfig, thread: &str) -> String {
    format!(
        "kstreams|{}|{thread}",
        config.application_server.as_deref().unwrap_or("")
    )
}

fn endpoint_of(client_id: &str) -> Option<String> {
    let mut parts = client_id.split('|');
    (parts.next() == Some("kstreams"))
        .then(|| parts.next())
        .flatten()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Kafka's murmur2 hash (the default partitioner's, and librdkafka's `murmur2_random`).
pub(crate) fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition Kafka's default partitioner picks for a serialized key.
pub(crate) fn partition_for(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions.max(1) as u32) as i32
}

/// Where a key of a store lives, from
/// [`KafkaStreams::query_metadata_for_key`](super::KafkaStreams::query_metadata_for_key)
/// (see [`KafkaStreams::store`](super::KafkaStreams::store) for an example).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQueryMetadata {
    /// The partition (and so the task) holding the key.
    pub partition: i32,
    /// The `application_server` of the instance running that partition, if it published one.
    pub host: Option<String>,
    /// True when this instance runs that partition (or the store is a global table's).
    pub local: bool,
}

/// What queries need to know about the application.
pub(crate) struct QueryContext {
    topology: Topology,
    application_id: String,
    application_server: Option<String>,
    client: ClientConfig,
    counts: PartitionCounts,
    admin: Mutex<Option<BaseConsumer>>,
}

impl QueryContext {
    pub(crate) fn new(
        topology: &Topology,
        config: &StreamsConfig,
        client: ClientConfig,
        counts: PartitionCounts,
    ) -> Self {
        QueryContext {
            topology: topology.clone(),
            application_id: config.application_id.clone(),
            application_server: config.application_server.clone(),
            client,
            counts,
            admin: Mutex::new(None),
        }
    }

    /// The sub-topology owning a store and the full names of its source topics.
    fn owner(&self, store: &str) -> Option<(usize, Vec<String>)> {
        let inner = &self.topology.inner;
        inner
            .subtopologies
            .iter()
            .enumerate()
            .find(|(_, s)| s.stores.iter().any(|n| n == store))
            .map(|(i, s)| {
                (
                    i,
                    s.source_topics
                        .iter()
                        .map(|t| t.resolve(&self.application_id))
                        .collect(),
                )
            })
    }

    pub(crate) fn metadata_for_key<K: 'static>(
        &self,
        store: &str,
        key: &K,
    ) -> Result<KeyQueryMetadata, StreamsError> {
        let def = self
            .topology
            .inner
            .stores
            .get(store)
            .ok_or_else(|| StoreError::NotFound(store.to_string()))?;
        let key_serde = def.key_serde.downcast_ref::<SerdeRef<K>>().ok_or_else(|| {
            StoreError::TypeMismatch {
                store: store.to_string(),
                requested: std::any::type_name::<K>().to_string(),
            }
        })?;
        if def.global {
            return Ok(KeyQueryMetadata {
                partition: -1,
                host: self.application_server.clone(),
                local: true,
            });
        }
        let bytes = key_serde
            .serialize(key)
            .map_err(|source| StoreError::Serde {
                store: store.to_string(),
                source,
            })?
            .unwrap_or_default();
        let (_, topics) = self
            .owner(store)
            .ok_or_else(|| StoreError::NotFound(store.to_string()))?;
        let partitions = topics
            .iter()
            .filter_map(|t| self.counts.get(t))
            .copied()
            .max()
            .unwrap_or(1);
        let partition = partition_for(&bytes, partitions);
        let owner = self.owner_of(&topics, partition)?;
        let local = owner.as_ref().is_some_and(|(mine, _)| *mine);
        Ok(KeyQueryMetadata {
            partition,
            host: owner.and_then(|(_, host)| host),
            local,
        })
    }

    /// The member of the group that owns `partition` of one of `topics`: (is it this
    /// instance, its endpoint).
    #[allow(clippy::type_complexity)]
    fn owner_of(
        &self,
        topics: &[String],
        partition: i32,
    ) -> Result<Option<(bool, Option<String>)>, StreamsError> {
        let mut admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        if admin.is_none() {
            *admin = Some(self.client.create().map_err(kafka)?);
        }
        let consumer = admin.as_ref().expect("created above");
        let groups = consumer
            .fetch_group_list(Some(&self.application_id), Duration::from_secs(10))
            .map_err(kafka)?;
        let mine = client_id_prefix(self.application_server.as_deref());
        for group in groups.groups() {
            for member in group.members() {
                let Some(assignment) = member.assignment().and_then(parse_assignment) else {
                    continue;
                };
                let owns = assignment
                    .iter()
                    .any(|(t, ps)| topics.contains(t) && ps.contains(&partition));
                if owns {
                    let host = endpoint_of(member.client_id());
                    let is_mine =
                        self.application_server.is_some() && member.client_id().starts_with(&mine);
                    return Ok(Some((is_mine, host)));
                }
            }
        }
        Ok(None)
    }
}

fn client_id_prefix(server: Option<&str>) -> String {
    format!("kstreams|{}|", server.unwrap_or(""))
}

/// Parses a consumer-protocol assignment: version, then topics with their partitions.
fn parse_assignment(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    let mut at = 2; // version
    let i32_at = |at: &mut usize| -> Option<i32> {
        let v = i32::from_be_bytes(bytes.get(*at..*at + 4)?.try_into().ok()?);
        *at += 4;
        Some(v)
    };
    let topics = i32_at(&mut at)?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = i16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?) as usize;
        at += 2;
        let name = std::str::from_utf8(bytes.get(at..at + len)?)
            .ok()?
            .to_string();
        at += len;
        let count = i32_at(&mut at)?;
        let mut partitions = Vec::new();
        for _ in 0..count.max(0) {
            partitions.push(i32_at(&mut at)?);
        }
        out.push((name, partitions));
    }
    Some(out)
}

fn registry_with(entry: crate::state::StoreEntry) -> StoreRegistry {
    let mut registry = StoreRegistry::new();
    registry.insert(entry);
    registry
}

/// A read-only key-value store spanning this instance's tasks (Kafka Streams'
/// `ReadOnlyKeyValueStore` from `store(...)`). Cheap to clone; every call reads the tasks
/// running at that moment. Made by [`KafkaStreams::store`](super::KafkaStreams::store), which
/// has an example.
pub struct ReadOnlyKeyValueStore<K, V> {
    name: String,
    shared: Arc<Shared>,
    key_serde: SerdeRef<K>,
    _types: PhantomData<fn() -> V>,
}

impl<K, V> Clone for ReadOnlyKeyValueStore<K, V> {
    fn clone(&self) -> Self {
        ReadOnlyKeyValueStore {
            name: self.name.clone(),
            shared: self.shared.clone(),
            key_serde: self.key_serde.clone(),
            _types: PhantomData,
        }
    }
}

fn check_types<K: 'static, V: 'static>(
    topology: &Topology,
    name: &str,
) -> Result<SerdeRef<K>, StoreError> {
    let def = topology
        .inner
        .stores
        .get(name)
        .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
    def.serdes
        .downcast_ref::<StoreSerdes<K, V>>()
        .map(|s| s.key.clone())
        .ok_or_else(|| StoreError::TypeMismatch {
            store: name.to_string(),
            requested: format!(
                "<{}, {}>",
                std::any::type_name::<K>(),
                std::any::type_name::<V>()
            ),
        })
}

impl<K: 'static, V: 'static> ReadOnlyKeyValueStore<K, V> {
    pub(crate) fn new(
        name: &str,
        shared: Arc<Shared>,
        query: Arc<QueryContext>,
    ) -> Result<Self, StoreError> {
        let key_serde = check_types::<K, V>(&query.topology, name)?;
        Ok(ReadOnlyKeyValueStore {
            name: name.to_string(),
            shared,
            key_serde,
            _types: PhantomData,
        })
    }

    fn each<T>(
        &self,
        mut f: impl FnMut(&crate::state::KeyValueStore<K, V>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.shared
            .stores_named(&self.name)
            .into_iter()
            .map(|(_, entry)| {
                let registry = registry_with(entry);
                f(&registry.key_value_store::<K, V>(&self.name)?)
            })
            .collect()
    }

    /// The value of a key, from whichever local task holds it.
    pub fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        Ok(self.each(|s| s.get(key))?.into_iter().flatten().next())
    }

    fn sorted(&self, mut all: Vec<(K, V)>) -> Result<Vec<(K, V)>, StoreError> {
        let mut keyed = Vec::with_capacity(all.len());
        for (k, v) in all.drain(..) {
            let bytes = self
                .key_serde
                .serialize(&k)
                .map_err(|source| StoreError::Serde {
                    store: self.name.clone(),
                    source,
                })?;
            keyed.push((bytes, k, v));
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
    }

    /// Entries with `from <= key <= to` over all local tasks, in the byte order of the keys.
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>, StoreError> {
        let all = self
            .each(|s| s.range(from, to))?
            .into_iter()
            .flatten()
            .collect();
        self.sorted(all)
    }

    /// Every entry of every local task, in the byte order of the keys.
    pub fn all(&self) -> Result<Vec<(K, V)>, StoreError> {
        let all = self.each(|s| s.all())?.into_iter().flatten().collect();
        self.sorted(all)
    }

    /// The number of entries over all local tasks.
    pub fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        Ok(self
            .each(|s| Ok(s.approximate_num_entries()))?
            .into_iter()
            .sum())
    }

    /// The tasks of this instance that hold the store now.
    pub fn tasks(&self) -> Vec<TaskId> {
        self.shared
            .stores_named(&self.name)
            .into_iter()
            .filter_map(|(id, _)| id)
            .collect()
    }
}

/// A read-only window store spanning this instance's tasks. Made by
/// [`KafkaStreams::window_store`](super::KafkaStreams::window_store), which has an example.
pub struct ReadOnlyWindowStore<K, V> {
    name: String,
    shared: Arc<Shared>,
    key_serde: SerdeRef<K>,
    _types: PhantomData<fn() -> V>,
}

impl<K, V> Clone for ReadOnlyWindowStore<K, V> {
    fn clone(&self) -> Self {
        ReadOnlyWindowStore {
            name: self.name.clone(),
            shared: self.shared.clone(),
            key_serde: self.key_serde.clone(),
            _types: PhantomData,
        }
    }
}

impl<K: 'static, V: 'static> ReadOnlyWindowStore<K, V> {
    pub(crate) fn new(
        name: &str,
        shared: Arc<Shared>,
        query: Arc<QueryContext>,
    ) -> Result<Self, StoreError> {
        let key_serde = check_types::<K, V>(&query.topology, name)?;
        Ok(ReadOnlyWindowStore {
            name: name.to_string(),
            shared,
            key_serde,
            _types: PhantomData,
        })
    }

    fn each<T>(
        &self,
        mut f: impl FnMut(&crate::state::WindowStore<K, V>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.shared
            .stores_named(&self.name)
            .into_iter()
            .map(|(_, entry)| {
                let registry = registry_with(entry);
                f(&registry.window_store::<K, V>(&self.name)?)
            })
            .collect()
    }

    /// Windows of one key starting in `[from, to]`, as `(window start, value)`, by start.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>, StoreError> {
        let mut all: Vec<(i64, V)> = self
            .each(|s| s.fetch_range(key, from, to))?
            .into_iter()
            .flatten()
            .collect();
        all.sort_by_key(|(start, _)| *start);
        Ok(all)
    }

    /// Windows of every key starting in `[from, to]`, as `(key, window start, value)`,
    /// ordered by start, then key bytes.
    pub fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<(K, i64, V)>, StoreError> {
        let all: Vec<(K, i64, V)> = self
            .each(|s| s.fetch_all(from, to))?
            .into_iter()
            .flatten()
            .collect();
        let mut keyed = Vec::with_capacity(all.len());
        for (k, start, v) in all {
            let bytes = self
                .key_serde
                .serialize(&k)
                .map_err(|source| StoreError::Serde {
                    store: self.name.clone(),
                    source,
                })?;
            keyed.push((start, bytes, k, v));
        }
        keyed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(keyed.into_iter().map(|(s, _, k, v)| (k, s, v)).collect())
    }

    /// The size of the store's windows in milliseconds (0 when no task holds the store).
    pub fn window_size(&self) -> i64 {
        self.each(|s| Ok(s.window_size()))
            .ok()
            .and_then(|v| v.into_iter().next())
            .unwrap_or(0)
    }
}

/// One change of a store: the key, the window (window stores), the new value or `None` when
/// deleted, and the event time of the write (timestamped stores: tables and aggregations).
#[derive(Debug, Clone, PartialEq)]
pub struct TableChange<K, V> {
    /// The key.
    pub key: K,
    /// Start of the window, for window stores.
    pub window_start: Option<i64>,
    /// The new value; `None`: the key was deleted.
    pub value: Option<V>,
    /// Event time of the record that wrote it, where the store keeps one.
    pub timestamp: Option<i64>,
}

type Decoder<V> = Box<dyn Fn(&[u8]) -> Result<(V, Option<i64>), crate::serde::SerdeError> + Send>;

/// The changes of a store as they happen, as an async [`Stream`]. A subscriber that falls
/// more than ten thousand changes behind loses changes; [`dropped`](Self::dropped) counts
/// them (read the store again to catch up). Made by
/// [`KafkaStreams::subscribe`](super::KafkaStreams::subscribe), which has an example.
pub struct TableChanges<K, V> {
    name: String,
    receiver: mpsc::Receiver<RawChange>,
    dropped: Arc<AtomicU64>,
    key_serde: SerdeRef<K>,
    value: Decoder<V>,
}

impl<K: 'static, V: 'static> TableChanges<K, V> {
    pub(crate) fn new(
        name: &str,
        topology: &Topology,
        hub: &ChangeHub,
    ) -> Result<Self, StoreError> {
        let def = topology
            .inner
            .stores
            .get(name)
            .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
        let serdes = def
            .serdes
            .downcast_ref::<StoreSerdes<K, V>>()
            .ok_or_else(|| StoreError::TypeMismatch {
                store: name.to_string(),
                requested: format!(
                    "<{}, {}>",
                    std::any::type_name::<K>(),
                    std::any::type_name::<V>()
                ),
            })?;
        let value: Decoder<V> = if def.timestamped {
            let serde = ValueAndTimestampSerde(serdes.value.clone());
            Box::new(move |b| {
                crate::serde::Serde::deserialize(&serde, Some(b))
                    .map(|v| (v.value, Some(v.timestamp)))
            })
        } else {
            let serde = serdes.value.clone();
            Box::new(move |b| serde.deserialize(Some(b)).map(|v| (v, None)))
        };
        let (receiver, dropped) = hub.subscribe(name);
        Ok(TableChanges {
            name: name.to_string(),
            receiver,
            dropped,
            key_serde: serdes.key.clone(),
            value,
        })
    }

    /// Changes lost because this subscriber fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn decode(&self, raw: RawChange) -> Result<TableChange<K, V>, StoreError> {
        let err = |source| StoreError::Serde {
            store: self.name.clone(),
            source,
        };
        let key = self.key_serde.deserialize(Some(&raw.key)).map_err(err)?;
        let (value, timestamp) = match &raw.value {
            Some(bytes) => {
                let (v, t) = (self.value)(bytes).map_err(err)?;
                (Some(v), t)
            }
            None => (None, None),
        };
        Ok(TableChange {
            key,
            window_start: raw.window_start,
            value,
            timestamp,
        })
    }
}

impl<K: 'static, V: 'static> Stream for TableChanges<K, V> {
    type Item = Result<TableChange<K, V>, StoreError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match Pin::new(&mut this.receiver).poll_next(cx) {
            Poll::Ready(Some(raw)) => Poll::Ready(Some(this.decode(raw))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<K, V> Unpin for TableChanges<K, V> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Vectors from Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, expected) in cases {
            assert_eq!(
                murmur2(data) as i32,
                expected,
                "{:?}",
                std::str::from_utf8(data)
            );
        }
    }

    #[test]
    fn assignments_parse_and_endpoints_come_from_client_ids() {
        let mut bytes = vec![0, 0];
        bytes.extend_from_slice(&1i32.to_be_bytes());
        bytes.extend_from_slice(&(6i16).to_be_bytes());
        bytes.extend_from_slice(b"orders");
        bytes.extend_from_slice(&2i32.to_be_bytes());
        bytes.extend_from_slice(&0i32.to_be_bytes());
        bytes.extend_from_slice(&3i32.to_be_bytes());
        bytes.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(
            parse_assignment(&bytes),
            Some(vec![("orders".to_string(), vec![0, 3])])
        );
        assert_eq!(parse_assignment(&bytes[..5]), None);
        let config = StreamsConfig {
            application_server: Some("10.0.0.7:8081".into()),
            ..StreamsConfig::new("app")
        };
        let id = client_id(&config, "app-StreamThread-1");
        assert_eq!(endpoint_of(&id).as_deref(), Some("10.0.0.7:8081"));
        assert_eq!(endpoint_of(&client_id(&StreamsConfig::new("a"), "t")), None);
        assert_eq!(endpoint_of("rdkafka"), None);
    }
}
