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
///
/// ```
/// use kstreams::kafka::KeyQueryMetadata;
/// /// Where a request for a key goes: answered here, or forwarded to the instance's server.
/// fn route(meta: &KeyQueryMetadata) -> Option<String> {
///     if meta.local { Some("local".into()) } else { meta.host.clone() }
/// }
/// let here = KeyQueryMetadata { partition: 3, host: Some("10.0.0.7:8080".into()), local: true };
/// let there = KeyQueryMetadata { partition: 1, host: Some("10.0.0.8:8080".into()), local: false };
/// let unknown = KeyQueryMetadata { partition: 2, host: None, local: false };
/// assert_eq!(route(&here).as_deref(), Some("local"));
/// assert_eq!(route(&there).as_deref(), Some("10.0.0.8:8080"));
/// assert_eq!(route(&unknown), None); // not assigned yet, or no application_server set
/// ```
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

/// Runs `f` on the store `name` of every local task that holds it, opened by `open` (which
/// checks the store's kind).
fn across_tasks<S, T>(
    shared: &Shared,
    name: &str,
    open: impl Fn(&StoreRegistry) -> Result<S, StoreError>,
    mut f: impl FnMut(&S) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    shared
        .stores_named(name)
        .into_iter()
        .map(|(_, entry)| f(&open(&registry_with(entry))?))
        .collect()
}

/// A read-only key-value store spanning this instance's tasks (Kafka Streams'
/// `ReadOnlyKeyValueStore` from `store(...)`). Cheap to clone; every call reads the tasks
/// running at that moment. Made by [`KafkaStreams::store`](super::KafkaStreams::store), which
/// has an example.
///
/// ```no_run
/// use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
/// let builder = StreamsBuilder::new();
/// builder.table::<String, i64>("stock", Materialized::named("stock"));
/// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("shop"));
/// streams.start().unwrap();
/// let stock = streams.store::<String, i64>("stock").unwrap();
/// let for_handler = stock.clone(); // e.g. one per HTTP handler: both read the same tasks
/// println!("mice: {:?}", for_handler.get(&"mouse".to_string()).unwrap());
/// println!("{} products", stock.approximate_num_entries().unwrap());
/// ```
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
        f: impl FnMut(&crate::state::KeyValueStore<K, V>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        across_tasks(
            &self.shared,
            &self.name,
            |r| r.key_value_store::<K, V>(&self.name),
            f,
        )
    }

    /// The value of a key, from whichever local task holds it.
    ///
    /// ```no_run
    /// # use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// # let builder = StreamsBuilder::new();
    /// # builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// # let config = StreamsConfig::new("shop");
    /// # let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    /// streams.start().unwrap();
    /// let stock = streams.store::<String, i64>("stock").unwrap();
    /// match stock.get(&"mouse".to_string()).unwrap() {
    ///     Some(n) => println!("{n} mice in stock"),
    ///     None => println!("no mice here (or another instance holds the key)"),
    /// }
    /// ```
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
    ///
    /// ```no_run
    /// # use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// # let builder = StreamsBuilder::new();
    /// # builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// # let config = StreamsConfig::new("shop");
    /// # let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    /// streams.start().unwrap();
    /// let stock = streams.store::<String, i64>("stock").unwrap();
    /// // String keys sort as their UTF-8 bytes.
    /// for (sku, n) in stock.range(&"sku-100".to_string(), &"sku-199".to_string()).unwrap() {
    ///     println!("{sku}: {n}");
    /// }
    /// ```
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>, StoreError> {
        let all = self
            .each(|s| s.range(from, to))?
            .into_iter()
            .flatten()
            .collect();
        self.sorted(all)
    }

    /// Every entry of every local task, in the byte order of the keys.
    ///
    /// ```no_run
    /// # use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// # let builder = StreamsBuilder::new();
    /// # builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// # let config = StreamsConfig::new("shop");
    /// # let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    /// streams.start().unwrap();
    /// let stock = streams.store::<String, i64>("stock").unwrap();
    /// let out_of_stock: Vec<String> =
    ///     stock.all().unwrap().into_iter().filter(|(_, n)| *n == 0).map(|(sku, _)| sku).collect();
    /// println!("out of stock here: {out_of_stock:?}");
    /// ```
    pub fn all(&self) -> Result<Vec<(K, V)>, StoreError> {
        let all = self.each(|s| s.all())?.into_iter().flatten().collect();
        self.sorted(all)
    }

    /// The number of entries over all local tasks.
    ///
    /// ```no_run
    /// # use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// # let builder = StreamsBuilder::new();
    /// # builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// # let config = StreamsConfig::new("shop");
    /// # let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    /// streams.start().unwrap();
    /// let stock = streams.store::<String, i64>("stock").unwrap();
    /// println!("about {} products on this instance", stock.approximate_num_entries().unwrap());
    /// ```
    pub fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        Ok(self
            .each(|s| Ok(s.approximate_num_entries()))?
            .into_iter()
            .sum())
    }

    /// The tasks of this instance that hold the store now.
    ///
    /// ```no_run
    /// # use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// # let builder = StreamsBuilder::new();
    /// # builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// # let config = StreamsConfig::new("shop");
    /// # let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    /// streams.start().unwrap();
    /// let stock = streams.store::<String, i64>("stock").unwrap();
    /// let partitions: Vec<i32> = stock.tasks().iter().map(|t| t.partition).collect();
    /// println!("this instance holds the stock of partitions {partitions:?}");
    /// ```
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
///
/// ```no_run
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("logins")
///     .group_by_key()
///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(3600)))
///     .count_with(Materialized::named("logins-per-hour"));
/// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("auth"));
/// streams.start().unwrap();
/// let per_hour = streams.window_store::<String, i64>("logins-per-hour").unwrap();
/// let hours = per_hour.fetch(&"ann".to_string(), 0, i64::MAX).unwrap();
/// let total: i64 = hours.iter().map(|(_, n)| n).sum();
/// println!("ann: {total} logins over {} hours", hours.len());
/// ```
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
        f: impl FnMut(&crate::state::WindowStore<K, V>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        across_tasks(
            &self.shared,
            &self.name,
            |r| r.window_store::<K, V>(&self.name),
            f,
        )
    }

    /// Windows of one key starting in `[from, to]`, as `(window start, value)`, by start.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("logins").group_by_key()
    /// #     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(3600)))
    /// #     .count_with(Materialized::named("logins-per-hour"));
    /// # let config = StreamsConfig::new("auth");
    /// # let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    /// streams.start().unwrap();
    /// let per_hour = streams.window_store::<String, i64>("logins-per-hour").unwrap();
    /// let (from, to) = (1_700_000_000_000, 1_700_086_400_000); // windows starting in one day
    /// for (start, logins) in per_hour.fetch(&"ann".to_string(), from, to).unwrap() {
    ///     println!("hour from {start}: {logins}");
    /// }
    /// ```
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
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("logins").group_by_key()
    /// #     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(3600)))
    /// #     .count_with(Materialized::named("logins-per-hour"));
    /// # let config = StreamsConfig::new("auth");
    /// # let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    /// streams.start().unwrap();
    /// let per_hour = streams.window_store::<String, i64>("logins-per-hour").unwrap();
    /// let hour = 1_700_000_000_000 / 3_600_000 * 3_600_000;
    /// for (user, _, logins) in per_hour.fetch_all(hour, hour).unwrap() {
    ///     if logins > 10 {
    ///         println!("{user}: {logins} logins in the hour from {hour}");
    ///     }
    /// }
    /// ```
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
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("logins").group_by_key()
    /// #     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(3600)))
    /// #     .count_with(Materialized::named("logins-per-hour"));
    /// # let config = StreamsConfig::new("auth");
    /// # let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    /// streams.start().unwrap();
    /// let per_hour = streams.window_store::<String, i64>("logins-per-hour").unwrap();
    /// for (start, logins) in per_hour.fetch(&"ann".to_string(), 0, i64::MAX).unwrap() {
    ///     println!("[{start}, {}): {logins}", start + per_hour.window_size());
    /// }
    /// ```
    pub fn window_size(&self) -> i64 {
        self.each(|s| Ok(s.window_size()))
            .ok()
            .and_then(|v| v.into_iter().next())
            .unwrap_or(0)
    }
}

/// A read-only view of a session store across the tasks of this instance (Kafka Streams'
/// `ReadOnlySessionStore`), from
/// [`KafkaStreams::session_store`](super::KafkaStreams::session_store).
///
/// ```no_run
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
/// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(1800));
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks")
///     .group_by_key()
///     .windowed_by_session(windows)
///     .count_with(Materialized::named("visits"));
/// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("web"));
/// streams.start().unwrap();
/// let visits = streams.session_store::<String, i64>("visits").unwrap();
/// for session in visits.fetch(&"ann".to_string()).unwrap() {
///     println!("ann: {} clicks from {} to {}", session.value, session.start, session.end);
/// }
/// ```
pub struct ReadOnlySessionStore<K, V> {
    name: String,
    shared: Arc<Shared>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for ReadOnlySessionStore<K, V> {
    fn clone(&self) -> Self {
        ReadOnlySessionStore {
            name: self.name.clone(),
            shared: self.shared.clone(),
            _types: PhantomData,
        }
    }
}

impl<K: 'static, V: 'static> ReadOnlySessionStore<K, V> {
    pub(crate) fn new(
        name: &str,
        shared: Arc<Shared>,
        query: Arc<QueryContext>,
    ) -> Result<Self, StoreError> {
        check_types::<K, V>(&query.topology, name)?;
        let store = ReadOnlySessionStore {
            name: name.to_string(),
            shared,
            _types: PhantomData,
        };
        // A key-value or window store of that name is refused now, not at the first read.
        store.each(|_| Ok(()))?;
        Ok(store)
    }

    fn each<T>(
        &self,
        f: impl FnMut(&crate::state::SessionStore<K, V>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        across_tasks(
            &self.shared,
            &self.name,
            |r| r.session_store::<K, V>(&self.name),
            f,
        )
    }

    /// Every session of a key, by start (Kafka Streams' `fetch(key)`).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// # let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(1800));
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("clicks").group_by_key().windowed_by_session(windows)
    /// #     .count_with(Materialized::named("visits"));
    /// # let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("web"));
    /// streams.start().unwrap();
    /// let visits = streams.session_store::<String, i64>("visits").unwrap();
    /// let total: i64 = visits.fetch(&"ann".to_string()).unwrap().iter().map(|s| s.value).sum();
    /// println!("ann clicked {total} times");
    /// ```
    pub fn fetch(&self, key: &K) -> Result<Vec<crate::state::Session<K, V>>, StoreError> {
        self.find_sessions(key, i64::MIN, i64::MAX)
    }

    /// Sessions of a key that end at or after `earliest_end` and start at or before
    /// `latest_start`, by start (Kafka Streams' `findSessions`).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// # let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(1800));
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("clicks").group_by_key().windowed_by_session(windows)
    /// #     .count_with(Materialized::named("visits"));
    /// # let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("web"));
    /// streams.start().unwrap();
    /// let visits = streams.session_store::<String, i64>("visits").unwrap();
    /// let (from, to) = (1_700_000_000_000, 1_700_086_400_000);
    /// let that_day = visits.find_sessions(&"ann".to_string(), from, to).unwrap();
    /// println!("ann had {} sessions that day", that_day.len());
    /// ```
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<crate::state::Session<K, V>>, StoreError> {
        let mut all: Vec<crate::state::Session<K, V>> = self
            .each(|s| s.find_sessions(key, earliest_end, latest_start))?
            .into_iter()
            .flatten()
            .collect();
        all.sort_by_key(|s| (s.start, s.end));
        Ok(all)
    }
}

/// One change of a store: the key, the window (window stores), the new value or `None` when
/// deleted, and the event time of the write (timestamped stores: tables and aggregations).
///
/// ```
/// use std::collections::BTreeMap;
/// use kstreams::kafka::TableChange;
/// /// Keeps a local copy of a table up to date from its changes.
/// fn apply(mirror: &mut BTreeMap<String, i64>, change: TableChange<String, i64>) {
///     match change.value {
///         Some(value) => mirror.insert(change.key, value),
///         None => mirror.remove(&change.key), // deleted
///     };
/// }
/// let mut mirror = BTreeMap::new();
/// let key = "mouse".to_string();
/// let put = TableChange { key, window_start: None, value: Some(25), timestamp: Some(7) };
/// apply(&mut mirror, put.clone());
/// assert_eq!(mirror.get("mouse"), Some(&25));
/// apply(&mut mirror, TableChange { value: None, timestamp: None, ..put });
/// assert!(mirror.is_empty());
/// ```
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
///
/// ```no_run
/// use futures::StreamExt;
/// use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
/// let builder = StreamsBuilder::new();
/// builder.table::<String, i64>("prices", Materialized::named("prices"));
/// let mut streams = KafkaStreams::new(&builder.build().unwrap(), StreamsConfig::new("shop"));
/// streams.start().unwrap();
/// let changes = streams.subscribe::<String, i64>("prices").unwrap();
/// // Skip changes that do not decode; the stream ends when `streams` closes.
/// let mut changes = changes.filter_map(|c| futures::future::ready(c.ok()));
/// futures::executor::block_on(async {
///     while let Some(change) = changes.next().await {
///         match change.value {
///             Some(price) => println!("{} now costs {price}", change.key),
///             None => println!("{} is no longer sold", change.key),
///         }
///     }
/// });
/// ```
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
    ///
    /// ```no_run
    /// use futures::StreamExt;
    /// # use kstreams::{config::StreamsConfig, dsl::*, kafka::KafkaStreams};
    /// # let builder = StreamsBuilder::new();
    /// # builder.table::<String, i64>("prices", Materialized::named("prices"));
    /// # let config = StreamsConfig::new("shop");
    /// # let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    /// streams.start().unwrap();
    /// let mut changes = streams.subscribe::<String, i64>("prices").unwrap();
    /// let mut seen = 0;
    /// futures::executor::block_on(async {
    ///     while let Some(change) = changes.next().await {
    ///         if changes.dropped() > seen {
    ///             seen = changes.dropped(); // fell behind: reload the whole table
    ///             let all = streams.store::<String, i64>("prices").unwrap().all().unwrap();
    ///             println!("resynced {} prices", all.len());
    ///         }
    ///         println!("{:?}", change.unwrap());
    ///     }
    /// });
    /// ```
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
