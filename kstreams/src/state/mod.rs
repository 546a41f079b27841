//! State stores: where processors keep state between records.
//!
//! Users meet three things here: the typed handles a processor works with
//! ([`KeyValueStore`], [`TimestampedKeyValueStore`], [`WindowStore`], [`SessionStore`]), the
//! [`Stores`] factory that defines a store for
//! [`StreamsBuilder::add_state_store`](crate::dsl::StreamsBuilder::add_state_store), and
//! [`StoreError`]. Underneath, a store is a stack of small layers over a bytes store (in
//! memory or RocksDB, see [`StoreType`]): a notifying layer for change feeds, a write cache,
//! and a change-logging layer that records every write for the store's changelog topic so the
//! store can be restored elsewhere. Typed handles serialize keys and values with the store's
//! serdes, so range queries follow the byte order of the key encoding.

mod caching;
mod directory;
mod in_memory;
mod logging;
mod notify;
mod registry;
#[cfg(feature = "rocksdb")]
mod rocksdb;

use std::any::Any;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::serde::{Serde, SerdeError, SerdeRef};

#[cfg(feature = "rocksdb")]
pub(crate) use self::rocksdb::RocksDbShared;
pub(crate) use directory::{Checkpoint, LockError, StateDirectory, TaskDirectory};
pub(crate) use in_memory::{InMemoryKeyValueStore, InMemoryWindowStore};
pub(crate) use logging::{ChangelogBuffer, LoggedKeyValueStore, LoggedWindowStore};
pub(crate) use notify::{ChangeHub, RawChange};
pub(crate) use registry::{
    StoreContext, StoreDef, StoreEntry, StoreKind, StoreRegistry, StoreSettings,
};

/// A failed state store operation.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::*, state::StoreError, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder.table::<String, i64>("stock", Materialized::named("stock"));
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("e")).unwrap();
/// let missing = driver.key_value_store::<String, i64>("stok").err();
/// assert_eq!(missing, Some(StoreError::NotFound("stok".into())));
/// let wrong_types = driver.key_value_store::<String, String>("stock").err().unwrap();
/// assert!(matches!(wrong_types, StoreError::TypeMismatch { .. }), "{wrong_types}");
/// let wrong_kind = driver.window_store::<String, i64>("stock").err().unwrap();
/// assert!(matches!(wrong_kind, StoreError::WrongKind { requested: "window", .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No store of this name is connected to the processor or task.
    #[error("state store `{0}` is not connected to this processor (add it with add_state_store and name it in process)")]
    NotFound(String),
    /// The store exists, but its key or value type differs from the one asked for.
    #[error("state store `{store}` holds other types than the requested {requested}")]
    TypeMismatch { store: String, requested: String },
    /// The store exists but is of another kind (key-value, window).
    #[error("state store `{store}` is a {actual} store, not a {requested} store")]
    WrongKind {
        store: String,
        actual: &'static str,
        requested: &'static str,
    },
    /// A key or value could not be (de)serialized.
    #[error("state store `{store}`: {source}")]
    Serde {
        store: String,
        #[source]
        source: SerdeError,
    },
    /// The storage engine failed.
    #[error("state store `{store}`: {message}")]
    Storage { store: String, message: String },
}

/// A value together with the timestamp of the record that last wrote it (Kafka Streams'
/// `ValueAndTimestamp`), as timestamped stores keep it.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder.table::<String, i64>("prices", Materialized::named("prices"));
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("v")).unwrap();
/// driver.create_input_topic::<String, Option<i64>>("prices").pipe_input_at("mouse".into(), Some(25), 7);
/// let prices = driver.timestamped_key_value_store::<String, i64>("prices").unwrap();
/// let mouse = prices.get(&"mouse".to_string()).unwrap().unwrap();
/// assert_eq!((mouse.value, mouse.timestamp), (25, 7));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueAndTimestamp<V> {
    /// The value.
    pub value: V,
    /// Event time of the write, in milliseconds.
    pub timestamp: i64,
}

/// Byte-level key-value store: the bottom of every key-value store stack.
pub(crate) trait KeyValueBytesStore: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError>;
    fn delete(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Entries with `from <= key <= to` (an absent bound is open), in key order.
    #[allow(clippy::type_complexity)]
    fn range(
        &self,
        from: Option<&[u8]>,
        to: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>;
    fn approximate_num_entries(&self) -> u64;
    /// Entries whose key starts with `prefix`, in key order.
    #[allow(clippy::type_complexity)]
    fn prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>;
    /// Applies puts (`Some`) and deletes (`None`) in order, as one batch where the store can.
    fn apply_batch(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StoreError> {
        for (key, value) in batch {
            match value {
                Some(value) => self.put(key, value)?,
                None => {
                    self.delete(&key)?;
                }
            }
        }
        Ok(())
    }
    /// Writes down whatever a layer holds back (a cache); called on every commit.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// One entry of a window store at the byte level.
pub(crate) struct WindowEntry {
    pub key: Vec<u8>,
    pub start: i64,
    pub value: Vec<u8>,
}

/// Byte-level window store: values per (key, window start), expired after the retention.
pub(crate) trait WindowBytesStore: Send + Sync {
    /// Adds (or, without duplicates, replaces) a value; `None` deletes. Returns false when the
    /// window is already past retention and the write was dropped.
    fn put(&self, key: &[u8], start: i64, value: Option<Vec<u8>>) -> Result<bool, StoreError>;
    /// Entries of one key with `from <= start <= to`, ordered by start.
    fn fetch(&self, key: &[u8], from: i64, to: i64) -> Result<Vec<WindowEntry>, StoreError>;
    /// The value of one window (the first, if the store keeps duplicates): a windowed
    /// aggregation's read, which layers answer without building entries.
    fn fetch_one(&self, key: &[u8], start: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .fetch(key, start, start)?
            .into_iter()
            .next()
            .map(|e| e.value))
    }
    /// Entries of all keys with `from <= start <= to`, ordered by start then key.
    fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<WindowEntry>, StoreError>;
    fn window_size(&self) -> i64;
    fn approximate_num_entries(&self) -> u64;
    /// Applies writes in order, as one batch where the store can.
    fn apply_batch(&self, batch: Vec<(Vec<u8>, i64, Option<Vec<u8>>)>) -> Result<(), StoreError> {
        for (key, start, value) in batch {
            self.put(&key, start, value)?;
        }
        Ok(())
    }
    /// Writes down whatever a layer holds back (a cache); called on every commit.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Serdes of a store's key and value, kept type-erased in the registry.
pub(crate) struct StoreSerdes<K, V> {
    pub key: SerdeRef<K>,
    pub value: SerdeRef<V>,
}

fn serde_err(store: &str) -> impl Fn(SerdeError) -> StoreError + '_ {
    move |source| StoreError::Serde {
        store: store.to_string(),
        source,
    }
}

fn encode<T: 'static>(serde: &dyn Serde<T>, value: &T, store: &str) -> Result<Vec<u8>, StoreError> {
    serde
        .serialize(value)
        .map_err(serde_err(store))?
        .ok_or_else(|| StoreError::Serde {
            store: store.to_string(),
            source: SerdeError::UnexpectedNull,
        })
}

/// A typed key-value store, as a processor, the test driver or an interactive query sees it.
///
/// Handles are cheap to clone and all point at the same store.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder.table::<String, i64>("stock", Materialized::named("stock"));
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("kv")).unwrap();
/// let input = driver.create_input_topic::<String, Option<i64>>("stock");
/// for (sku, n) in [("cable-usb", 3), ("cable-hdmi", 1), ("mouse", 7)] {
///     input.pipe_input_at(sku.to_string(), Some(n), 0);
/// }
/// let stock = driver.key_value_store::<String, i64>("stock").unwrap();
/// assert_eq!(stock.get(&"mouse".to_string()).unwrap(), Some(7));
/// // Ranges and prefixes follow the bytes of the serialized keys.
/// assert_eq!(stock.prefix_scan(&"cable-".to_string()).unwrap(),
///     vec![("cable-hdmi".to_string(), 1), ("cable-usb".to_string(), 3)]);
/// assert_eq!(stock.range(&"a".to_string(), &"m".to_string()).unwrap().len(), 2);
/// assert_eq!(stock.all().unwrap().len(), 3);
/// assert_eq!(stock.approximate_num_entries(), 3);
/// ```
pub struct KeyValueStore<K, V> {
    name: Arc<str>,
    inner: Arc<dyn KeyValueBytesStore>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

/// A key-value store whose values carry the timestamp of their last write.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// use kstreams::state::{TimestampedKeyValueStore, ValueAndTimestamp};
/// let builder = StreamsBuilder::new();
/// builder.table::<String, i64>("prices", Materialized::named("prices"));
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
/// let prices: TimestampedKeyValueStore<String, i64> =
///     driver.timestamped_key_value_store("prices").unwrap();
/// prices.put(&"desk".into(), &ValueAndTimestamp { value: 300, timestamp: 12 }).unwrap();
/// let desk = prices.get(&"desk".into()).unwrap().unwrap();
/// assert_eq!((desk.value, desk.timestamp), (300, 12));
/// // The plain view of the same store drops the timestamps.
/// let plain = driver.key_value_store::<String, i64>("prices").unwrap();
/// assert_eq!(plain.get(&"desk".into()).unwrap(), Some(300));
/// ```
pub type TimestampedKeyValueStore<K, V> = KeyValueStore<K, ValueAndTimestamp<V>>;

impl<K, V> Clone for KeyValueStore<K, V> {
    fn clone(&self) -> Self {
        KeyValueStore {
            name: self.name.clone(),
            inner: self.inner.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K: 'static, V: 'static> KeyValueStore<K, V> {
    pub(crate) fn new(
        name: Arc<str>,
        inner: Arc<dyn KeyValueBytesStore>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> Self {
        KeyValueStore {
            name,
            inner,
            key_serde,
            value_serde,
        }
    }

    /// The store's name.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("kv")).unwrap();
    /// let stock = driver.key_value_store::<String, i64>("stock").unwrap();
    /// assert_eq!(stock.name(), "stock");
    /// assert_eq!(stock.clone().name(), "stock");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    fn key_bytes(&self, key: &K) -> Result<Vec<u8>, StoreError> {
        encode(&*self.key_serde, key, &self.name)
    }

    /// A key as the store writes it, for the `*_encoded` calls of a processor that uses it
    /// more than once.
    pub(crate) fn encode_key(&self, key: &K) -> Result<Vec<u8>, StoreError> {
        self.key_bytes(key)
    }

    /// [`get`](Self::get) with an encoded key.
    pub(crate) fn get_encoded(&self, key: &[u8]) -> Result<Option<V>, StoreError> {
        match self.inner.get(key)? {
            Some(bytes) => self.decode_value(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// [`put`](Self::put) with an encoded key.
    pub(crate) fn put_encoded(&self, key: Vec<u8>, value: &V) -> Result<(), StoreError> {
        let value = encode(&*self.value_serde, value, &self.name)?;
        self.inner.put(key, value)
    }

    /// [`delete`](Self::delete) with an encoded key, without decoding the old value.
    pub(crate) fn delete_encoded(&self, key: &[u8]) -> Result<(), StoreError> {
        self.inner.delete(key).map(|_| ())
    }

    fn decode_value(&self, bytes: &[u8]) -> Result<V, StoreError> {
        self.value_serde
            .deserialize(Some(bytes))
            .map_err(serde_err(&self.name))
    }

    fn decode_entries(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<(K, V)>, StoreError> {
        entries
            .into_iter()
            .map(|(k, v)| {
                let key = self
                    .key_serde
                    .deserialize(Some(&k))
                    .map_err(serde_err(&self.name))?;
                Ok((key, self.decode_value(&v)?))
            })
            .collect()
    }

    /// The value of a key.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("kv")).unwrap();
    /// let stock = driver.key_value_store::<String, i64>("stock").unwrap();
    /// let input = driver.create_input_topic::<String, Option<i64>>("stock");
    /// input.pipe_input_at("mouse".into(), Some(7), 0);
    /// assert_eq!(stock.get(&"mouse".into()).unwrap(), Some(7));
    /// assert_eq!(stock.get(&"desk".into()).unwrap(), None);
    /// ```
    pub fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        self.get_encoded(&self.key_bytes(key)?)
    }

    /// Sets the value of a key.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("kv")).unwrap();
    /// let stock = driver.key_value_store::<String, i64>("stock").unwrap();
    /// stock.put(&"mouse".into(), &7).unwrap();
    /// stock.put(&"mouse".into(), &6).unwrap(); // replaces
    /// assert_eq!(stock.get(&"mouse".into()).unwrap(), Some(6));
    /// ```
    pub fn put(&self, key: &K, value: &V) -> Result<(), StoreError> {
        self.put_encoded(self.key_bytes(key)?, value)
    }

    /// Sets the value of a key unless it has one; returns the existing value.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("kv")).unwrap();
    /// let stock = driver.key_value_store::<String, i64>("stock").unwrap();
    /// assert_eq!(stock.put_if_absent(&"mouse".into(), &7).unwrap(), None);
    /// assert_eq!(stock.put_if_absent(&"mouse".into(), &6).unwrap(), Some(7));
    /// assert_eq!(stock.get(&"mouse".into()).unwrap(), Some(7)); // unchanged
    /// ```
    pub fn put_if_absent(&self, key: &K, value: &V) -> Result<Option<V>, StoreError> {
        match self.get(key)? {
            Some(existing) => Ok(Some(existing)),
            None => self.put(key, value).map(|()| None),
        }
    }

    /// Removes a key; returns the value it had.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("kv")).unwrap();
    /// let stock = driver.key_value_store::<String, i64>("stock").unwrap();
    /// stock.put(&"mouse".into(), &7).unwrap();
    /// assert_eq!(stock.delete(&"mouse".into()).unwrap(), Some(7));
    /// assert_eq!(stock.delete(&"mouse".into()).unwrap(), None);
    /// assert_eq!(stock.get(&"mouse".into()).unwrap(), None);
    /// ```
    pub fn delete(&self, key: &K) -> Result<Option<V>, StoreError> {
        let key = self.key_bytes(key)?;
        match self.inner.delete(&key)? {
            Some(bytes) => self.decode_value(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Entries with `from <= key <= to` in the byte order of the serialized keys.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("kv")).unwrap();
    /// let stock = driver.key_value_store::<String, i64>("stock").unwrap();
    /// for (sku, n) in [("a", 1), ("b", 2), ("ba", 3), ("c", 4)] {
    ///     stock.put(&sku.into(), &n).unwrap();
    /// }
    /// let keys: Vec<String> = stock.range(&"b".into(), &"c".into()).unwrap()
    ///     .into_iter().map(|(k, _)| k).collect();
    /// assert_eq!(keys, vec!["b", "ba", "c"]); // both bounds included
    /// ```
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>, StoreError> {
        let (from, to) = (self.key_bytes(from)?, self.key_bytes(to)?);
        let entries = self.inner.range(Some(&from), Some(&to))?;
        self.decode_entries(entries)
    }

    /// Entries whose serialized key starts with the serialized `prefix` (for string keys:
    /// keys that start with the prefix string), in key order.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("kv")).unwrap();
    /// let stock = driver.key_value_store::<String, i64>("stock").unwrap();
    /// for (sku, n) in [("cable-usb", 3), ("mouse", 7), ("cable-hdmi", 1)] {
    ///     stock.put(&sku.into(), &n).unwrap();
    /// }
    /// assert_eq!(stock.prefix_scan(&"cable-".into()).unwrap(),
    ///     vec![("cable-hdmi".to_string(), 1), ("cable-usb".to_string(), 3)]);
    /// ```
    pub fn prefix_scan(&self, prefix: &K) -> Result<Vec<(K, V)>, StoreError> {
        let prefix = self.key_bytes(prefix)?;
        let entries = self.inner.prefix(&prefix)?;
        self.decode_entries(entries)
    }

    /// Every entry, in the byte order of the serialized keys.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("kv")).unwrap();
    /// let stock = driver.key_value_store::<String, i64>("stock").unwrap();
    /// for (sku, n) in [("mouse", 7), ("desk", 1)] {
    ///     stock.put(&sku.into(), &n).unwrap();
    /// }
    /// assert_eq!(stock.all().unwrap(), vec![("desk".to_string(), 1), ("mouse".to_string(), 7)]);
    /// ```
    pub fn all(&self) -> Result<Vec<(K, V)>, StoreError> {
        let entries = self.inner.range(None, None)?;
        self.decode_entries(entries)
    }

    /// The number of entries (exact for in-memory stores).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("stock", Materialized::named("stock"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("kv")).unwrap();
    /// let stock = driver.key_value_store::<String, i64>("stock").unwrap();
    /// let input = driver.create_input_topic::<String, Option<i64>>("stock");
    /// for (sku, n) in [("mouse", Some(7)), ("desk", Some(1)), ("mouse", None)] {
    ///     input.pipe_input_at(sku.into(), n, 0);
    /// }
    /// assert_eq!(stock.approximate_num_entries(), 1);
    /// ```
    pub fn approximate_num_entries(&self) -> u64 {
        self.inner.approximate_num_entries()
    }
}

/// A typed window store: values per key and window start (Kafka Streams' `WindowStore`).
/// Windows older than the store's retention are dropped.
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks")
///     .group_by_key()
///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
///     .count_with(Materialized::named("clicks").with_retention(Duration::from_secs(60)));
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
/// let clicks = driver.create_input_topic::<String, String>("clicks");
/// for (user, t) in [("ann", 1), ("ann", 12), ("bob", 15)] {
///     clicks.pipe_input_at(user.to_string(), "/".to_string(), t);
/// }
/// let store = driver.window_store::<String, i64>("clicks").unwrap();
/// assert_eq!(store.window_size(), 10);
/// assert_eq!(store.fetch(&"ann".to_string(), 10).unwrap(), Some(1));
/// assert_eq!(store.fetch_range(&"ann".to_string(), 0, 100).unwrap(), vec![(0, 1), (10, 1)]);
/// assert_eq!(store.fetch_all(10, 10).unwrap(),
///     vec![("ann".to_string(), 10, 1), ("bob".to_string(), 10, 1)]);
/// ```
pub struct WindowStore<K, V> {
    name: Arc<str>,
    inner: Arc<dyn WindowBytesStore>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K, V> Clone for WindowStore<K, V> {
    fn clone(&self) -> Self {
        WindowStore {
            name: self.name.clone(),
            inner: self.inner.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K: 'static, V: 'static> WindowStore<K, V> {
    pub(crate) fn new(
        name: Arc<str>,
        inner: Arc<dyn WindowBytesStore>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> Self {
        WindowStore {
            name,
            inner,
            key_serde,
            value_serde,
        }
    }

    /// The store's name.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .count_with(Materialized::named("clicks").with_retention(Duration::from_secs(60)));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let store = driver.window_store::<String, i64>("clicks").unwrap();
    /// assert_eq!(store.name(), "clicks");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The size of the windows in this store, in milliseconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .count_with(Materialized::named("clicks").with_retention(Duration::from_secs(60)));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let store = driver.window_store::<String, i64>("clicks").unwrap();
    /// assert_eq!(store.window_size(), 10);
    /// ```
    pub fn window_size(&self) -> i64 {
        self.inner.window_size()
    }

    fn decode(&self, entry: WindowEntry) -> Result<(K, i64, V), StoreError> {
        let key = self
            .key_serde
            .deserialize(Some(&entry.key))
            .map_err(serde_err(&self.name))?;
        let value = self
            .value_serde
            .deserialize(Some(&entry.value))
            .map_err(serde_err(&self.name))?;
        Ok((key, entry.start, value))
    }

    /// Stores the value of a window (replacing it unless the store keeps duplicates).
    /// Returns false when the window is past retention and the write was dropped.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .count_with(Materialized::named("clicks").with_retention(Duration::from_secs(60)));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let store = driver.window_store::<String, i64>("clicks").unwrap();
    /// assert!(store.put(&"ann".into(), &1, 0).unwrap());
    /// assert!(store.put(&"ann".into(), &5, 0).unwrap()); // replaces
    /// assert_eq!(store.fetch(&"ann".into(), 0).unwrap(), Some(5));
    /// assert!(store.put(&"ann".into(), &1, 120_000).unwrap());
    /// assert!(!store.put(&"bob".into(), &1, 10).unwrap()); // more than 60 s before 120 s
    /// assert_eq!(store.fetch(&"bob".into(), 10).unwrap(), None);
    /// ```
    pub fn put(&self, key: &K, value: &V, window_start: i64) -> Result<bool, StoreError> {
        let key = self.encode_key(key)?;
        self.put_encoded(&key, value, window_start)
    }

    /// A key as the store writes it, for the `*_encoded` calls of a processor that uses it
    /// more than once.
    pub(crate) fn encode_key(&self, key: &K) -> Result<Vec<u8>, StoreError> {
        encode(&*self.key_serde, key, &self.name)
    }

    /// [`put`](Self::put) with an encoded key.
    pub(crate) fn put_encoded(
        &self,
        key: &[u8],
        value: &V,
        window_start: i64,
    ) -> Result<bool, StoreError> {
        let value = encode(&*self.value_serde, value, &self.name)?;
        self.inner.put(key, window_start, Some(value))
    }

    /// [`fetch`](Self::fetch) with an encoded key.
    pub(crate) fn fetch_encoded(
        &self,
        key: &[u8],
        window_start: i64,
    ) -> Result<Option<V>, StoreError> {
        match self.inner.fetch_one(key, window_start)? {
            Some(value) => self.decode_value(&value).map(Some),
            None => Ok(None),
        }
    }

    fn decode_value(&self, value: &[u8]) -> Result<V, StoreError> {
        self.value_serde
            .deserialize(Some(value))
            .map_err(serde_err(&self.name))
    }

    /// Removes the value of a window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .count_with(Materialized::named("clicks").with_retention(Duration::from_secs(60)));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let store = driver.window_store::<String, i64>("clicks").unwrap();
    /// store.put(&"ann".into(), &1, 0).unwrap();
    /// store.put(&"ann".into(), &2, 10).unwrap();
    /// store.delete(&"ann".into(), 0).unwrap();
    /// assert_eq!(store.fetch_range(&"ann".into(), 0, 10).unwrap(), vec![(10, 2)]);
    /// ```
    pub fn delete(&self, key: &K, window_start: i64) -> Result<(), StoreError> {
        let key = encode(&*self.key_serde, key, &self.name)?;
        self.inner.put(&key, window_start, None).map(|_| ())
    }

    /// The value of one window (the first one, if the store keeps duplicates).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .count_with(Materialized::named("clicks").with_retention(Duration::from_secs(60)));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let store = driver.window_store::<String, i64>("clicks").unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// for t in [1, 4, 12] {
    ///     clicks.pipe_input_at("ann".into(), "/".into(), t);
    /// }
    /// assert_eq!(store.fetch(&"ann".into(), 0).unwrap(), Some(2)); // by window start
    /// assert_eq!(store.fetch(&"ann".into(), 10).unwrap(), Some(1));
    /// assert_eq!(store.fetch(&"ann".into(), 4).unwrap(), None);
    /// ```
    pub fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>, StoreError> {
        self.fetch_encoded(&self.encode_key(key)?, window_start)
    }

    /// Values of one key for windows starting in `[from, to]`, as `(start, value)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .count_with(Materialized::named("clicks").with_retention(Duration::from_secs(60)));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let store = driver.window_store::<String, i64>("clicks").unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// for (user, t) in [("ann", 1), ("ann", 12), ("bob", 15), ("ann", 25)] {
    ///     clicks.pipe_input_at(user.into(), "/".into(), t);
    /// }
    /// assert_eq!(store.fetch_range(&"ann".into(), 0, 10).unwrap(), vec![(0, 1), (10, 1)]);
    /// ```
    pub fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>, StoreError> {
        let key = self.encode_key(key)?;
        self.inner
            .fetch(&key, from, to)?
            .into_iter()
            .map(|e| self.decode_value(&e.value).map(|v| (e.start, v)))
            .collect()
    }

    /// Values of all keys for windows starting in `[from, to]`, as `(key, start, value)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .count_with(Materialized::named("clicks").with_retention(Duration::from_secs(60)));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let store = driver.window_store::<String, i64>("clicks").unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// for (user, t) in [("bob", 1), ("ann", 2), ("ann", 12), ("bob", 25)] {
    ///     clicks.pipe_input_at(user.into(), "/".into(), t);
    /// }
    /// // Ordered by window start, then key.
    /// assert_eq!(store.fetch_all(0, 10).unwrap(), vec![
    ///     ("ann".to_string(), 0, 1), ("bob".to_string(), 0, 1), ("ann".to_string(), 10, 1)]);
    /// ```
    pub fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<(K, i64, V)>, StoreError> {
        self.inner
            .fetch_all(from, to)?
            .into_iter()
            .map(|e| self.decode(e))
            .collect()
    }

    /// The number of entries.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .count_with(Materialized::named("clicks").with_retention(Duration::from_secs(60)));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let store = driver.window_store::<String, i64>("clicks").unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// for (user, t) in [("ann", 1), ("ann", 2), ("bob", 3), ("ann", 12)] {
    ///     clicks.pipe_input_at(user.into(), "/".into(), t);
    /// }
    /// assert_eq!(store.approximate_num_entries(), 3); // one per key and window
    /// ```
    pub fn approximate_num_entries(&self) -> u64 {
        self.inner.approximate_num_entries()
    }

    /// Every entry in the store.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .count_with(Materialized::named("clicks").with_retention(Duration::from_secs(60)));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let store = driver.window_store::<String, i64>("clicks").unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// for (user, t) in [("ann", 2), ("bob", 31)] {
    ///     clicks.pipe_input_at(user.into(), "/".into(), t);
    /// }
    /// let all = store.all().unwrap();
    /// assert_eq!(all, vec![("ann".to_string(), 0, 1), ("bob".to_string(), 30, 1)]);
    /// ```
    pub fn all(&self) -> Result<Vec<(K, i64, V)>, StoreError> {
        self.fetch_all(i64::MIN, i64::MAX)
    }
}

/// Order-preserving encoding of an `i64` (sign bit flipped, big-endian): byte order equals
/// numeric order, so store keys that start with a time sort by that time.
pub(crate) fn ordered(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// Reads an [`ordered`] `i64` from the first 8 bytes of `b`.
pub(crate) fn from_ordered(b: &[u8]) -> i64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&b[..8]);
    (u64::from_be_bytes(buf) ^ (1 << 63)) as i64
}

/// Session store key: `[key length: u32][key][start][end]`, so one key's sessions form a
/// contiguous range ordered by start.
fn session_key(key: &[u8], start: i64, end: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len() + 16);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&ordered(start));
    out.extend_from_slice(&ordered(end));
    out
}

#[allow(clippy::type_complexity)]
fn split_session_key(bytes: &[u8]) -> Option<(&[u8], i64, i64)> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let key = bytes.get(4..4 + len)?;
    let times = bytes.get(4 + len..)?;
    if times.len() != 16 {
        return None;
    }
    Some((key, from_ordered(&times[..8]), from_ordered(&times[8..])))
}

/// A session of a session store: key, first and last record time (both inclusive), value.
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, state::Session, testing::TestDriver};
/// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("clicks").group_by_key().windowed_by_session(windows)
///     .aggregate_with(|| 0i64, |_, _, n| n + 1, |_, a, b| a + b, Materialized::named("visits"));
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
/// let clicks = driver.create_input_topic::<String, String>("clicks");
/// for t in [3, 9, 15] {
///     clicks.pipe_input_at("ann".into(), "/".into(), t); // each within 10 ms of the last
/// }
/// let visits = driver.session_store::<String, i64>("visits").unwrap();
/// let session = Session { key: "ann".to_string(), start: 3, end: 15, value: 3 };
/// assert_eq!(visits.fetch(&"ann".into()).unwrap(), vec![session]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Session<K, V> {
    /// The key.
    pub key: K,
    /// Time of the session's first record.
    pub start: i64,
    /// Time of the session's last record.
    pub end: i64,
    /// The session's aggregate.
    pub value: V,
}

/// A typed session store: aggregates per key and session (Kafka Streams' `SessionStore`).
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks")
///     .group_by_key()
///     .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10)))
///     .aggregate_with(|| 0i64, |_, _, n| n + 1, |_, a, b| a + b, Materialized::named("visits"));
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("se")).unwrap();
/// let clicks = driver.create_input_topic::<String, String>("clicks");
/// for t in [0, 4, 30] {
///     clicks.pipe_input_at("ann".to_string(), "/".to_string(), t);
/// }
/// let visits = driver.session_store::<String, i64>("visits").unwrap();
/// let sessions: Vec<(i64, i64, i64)> = visits.fetch(&"ann".to_string()).unwrap()
///     .into_iter().map(|s| (s.start, s.end, s.value)).collect();
/// assert_eq!(sessions, vec![(0, 4, 2), (30, 30, 1)]);
/// ```
pub struct SessionStore<K, V> {
    name: Arc<str>,
    inner: Arc<dyn KeyValueBytesStore>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K, V> Clone for SessionStore<K, V> {
    fn clone(&self) -> Self {
        SessionStore {
            name: self.name.clone(),
            inner: self.inner.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K: 'static, V: 'static> SessionStore<K, V> {
    pub(crate) fn new(
        name: Arc<str>,
        inner: Arc<dyn KeyValueBytesStore>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> Self {
        SessionStore {
            name,
            inner,
            key_serde,
            value_serde,
        }
    }

    /// The store's name.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key().windowed_by_session(windows)
    ///     .aggregate_with(|| 0i64, |_, _, n| n + 1, |_, a, b| a + b,
    ///         Materialized::named("visits"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// let visits = driver.session_store::<String, i64>("visits").unwrap();
    /// assert_eq!(visits.name(), "visits");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    fn decode(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<Session<K, V>>, StoreError> {
        entries
            .into_iter()
            .map(|(k, v)| {
                let (key, start, end) =
                    split_session_key(&k).ok_or_else(|| StoreError::Storage {
                        store: self.name.to_string(),
                        message: "corrupt session key".into(),
                    })?;
                Ok(Session {
                    key: self
                        .key_serde
                        .deserialize(Some(key))
                        .map_err(serde_err(&self.name))?,
                    start,
                    end,
                    value: self
                        .value_serde
                        .deserialize(Some(&v))
                        .map_err(serde_err(&self.name))?,
                })
            })
            .collect()
    }

    /// Every session of a key, ordered by start.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key().windowed_by_session(windows)
    ///     .aggregate_with(|| 0i64, |_, _, n| n + 1, |_, a, b| a + b,
    ///         Materialized::named("visits"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// let visits = driver.session_store::<String, i64>("visits").unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// for (user, t) in [("ann", 0), ("bob", 1), ("ann", 4), ("ann", 30)] {
    ///     clicks.pipe_input_at(user.into(), "/".into(), t);
    /// }
    /// let ann: Vec<_> = visits.fetch(&"ann".into()).unwrap().iter()
    ///     .map(|s| (s.start, s.end, s.value)).collect();
    /// assert_eq!(ann, vec![(0, 4, 2), (30, 30, 1)]);
    /// ```
    pub fn fetch(&self, key: &K) -> Result<Vec<Session<K, V>>, StoreError> {
        self.find_sessions(key, i64::MIN, i64::MAX)
    }

    /// Sessions of a key that end at or after `earliest_end` and start at or before
    /// `latest_start`, ordered by start.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key().windowed_by_session(windows)
    ///     .aggregate_with(|| 0i64, |_, _, n| n + 1, |_, a, b| a + b,
    ///         Materialized::named("visits"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// let visits = driver.session_store::<String, i64>("visits").unwrap();
    /// for (start, end) in [(0, 4), (30, 30), (60, 65)] {
    ///     visits.put(&"ann".into(), start, end, &1).unwrap();
    /// }
    /// let found: Vec<_> = visits.find_sessions(&"ann".into(), 5, 60).unwrap().iter()
    ///     .map(|s| (s.start, s.end)).collect();
    /// assert_eq!(found, vec![(30, 30), (60, 65)]); // (0, 4) ended before 5
    /// ```
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<Session<K, V>>, StoreError> {
        let key = encode(&*self.key_serde, key, &self.name)?;
        let from = session_key(&key, i64::MIN, i64::MIN);
        let to = session_key(&key, latest_start, i64::MAX);
        let mut sessions = self.decode(self.inner.range(Some(&from), Some(&to))?)?;
        sessions.retain(|s| s.end >= earliest_end);
        Ok(sessions)
    }

    /// Stores a session's aggregate.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key().windowed_by_session(windows)
    ///     .aggregate_with(|| 0i64, |_, _, n| n + 1, |_, a, b| a + b,
    ///         Materialized::named("visits"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// let visits = driver.session_store::<String, i64>("visits").unwrap();
    /// visits.put(&"ann".into(), 0, 4, &2).unwrap();
    /// visits.put(&"ann".into(), 0, 4, &3).unwrap(); // the same session: replaces
    /// let sessions = visits.fetch(&"ann".into()).unwrap();
    /// assert_eq!(sessions.len(), 1);
    /// assert_eq!((sessions[0].start, sessions[0].end, sessions[0].value), (0, 4, 3));
    /// ```
    pub fn put(&self, key: &K, start: i64, end: i64, value: &V) -> Result<(), StoreError> {
        let key = encode(&*self.key_serde, key, &self.name)?;
        let value = encode(&*self.value_serde, value, &self.name)?;
        self.inner.put(session_key(&key, start, end), value)
    }

    /// Removes a session.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key().windowed_by_session(windows)
    ///     .aggregate_with(|| 0i64, |_, _, n| n + 1, |_, a, b| a + b,
    ///         Materialized::named("visits"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// let visits = driver.session_store::<String, i64>("visits").unwrap();
    /// visits.put(&"ann".into(), 0, 4, &2).unwrap();
    /// visits.put(&"ann".into(), 30, 30, &1).unwrap();
    /// visits.remove(&"ann".into(), 0, 4).unwrap();
    /// let ann = visits.fetch(&"ann".into()).unwrap();
    /// assert_eq!(ann.iter().map(|s| s.start).collect::<Vec<_>>(), vec![30]);
    /// ```
    pub fn remove(&self, key: &K, start: i64, end: i64) -> Result<(), StoreError> {
        let key = encode(&*self.key_serde, key, &self.name)?;
        self.inner
            .delete(&session_key(&key, start, end))
            .map(|_| ())
    }

    /// Every session in the store.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key().windowed_by_session(windows)
    ///     .aggregate_with(|| 0i64, |_, _, n| n + 1, |_, a, b| a + b,
    ///         Materialized::named("visits"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// let visits = driver.session_store::<String, i64>("visits").unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// for (user, t) in [("bob", 1), ("ann", 2), ("ann", 50)] {
    ///     clicks.pipe_input_at(user.into(), "/".into(), t);
    /// }
    /// let mut all: Vec<_> = visits.all().unwrap().into_iter().map(|s| (s.key, s.start)).collect();
    /// all.sort();
    /// assert_eq!(all, [("ann", 2), ("ann", 50), ("bob", 1)].map(|(k, t)| (k.to_string(), t)));
    /// ```
    pub fn all(&self) -> Result<Vec<Session<K, V>>, StoreError> {
        self.decode(self.inner.range(None, None)?)
    }

    /// Removes every session that ended before `end`; returns how many.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key().windowed_by_session(windows)
    ///     .aggregate_with(|| 0i64, |_, _, n| n + 1, |_, a, b| a + b,
    ///         Materialized::named("visits"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// let visits = driver.session_store::<String, i64>("visits").unwrap();
    /// for (user, start, end) in [("ann", 0, 4), ("bob", 2, 30), ("ann", 30, 35)] {
    ///     visits.put(&user.into(), start, end, &1).unwrap();
    /// }
    /// assert_eq!(visits.remove_ended_before(30).unwrap(), 1); // only (0, 4)
    /// assert_eq!(visits.all().unwrap().len(), 2);
    /// ```
    pub fn remove_ended_before(&self, end: i64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for (k, _) in self.inner.range(None, None)? {
            if split_session_key(&k).is_some_and(|(_, _, e)| e < end) {
                self.inner.delete(&k)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Prefixes values with the timestamp of their write (8 bytes, big-endian).
pub(crate) struct ValueAndTimestampSerde<V>(pub SerdeRef<V>);

impl<V: 'static> Serde<ValueAndTimestamp<V>> for ValueAndTimestampSerde<V> {
    fn serialize(&self, v: &ValueAndTimestamp<V>) -> Result<Option<Vec<u8>>, SerdeError> {
        let inner = self
            .0
            .serialize(&v.value)?
            .ok_or(SerdeError::UnexpectedNull)?;
        let mut out = Vec::with_capacity(8 + inner.len());
        out.extend_from_slice(&v.timestamp.to_be_bytes());
        out.extend_from_slice(&inner);
        Ok(Some(out))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<ValueAndTimestamp<V>, SerdeError> {
        let bytes = bytes.ok_or(SerdeError::UnexpectedNull)?;
        if bytes.len() < 8 {
            return Err(SerdeError::WrongLength {
                expected: 8,
                actual: bytes.len(),
            });
        }
        let (ts, rest) = bytes.split_at(8);
        let timestamp = i64::from_be_bytes(ts.try_into().expect("split_at(8) gives 8 bytes"));
        Ok(ValueAndTimestamp {
            value: self.0.deserialize(Some(rest))?,
            timestamp,
        })
    }
}

/// Plain-value view of a timestamped store: reads drop the timestamp, writes stamp the
/// timestamp of the record being processed.
pub(crate) struct PlainValueSerde<V> {
    pub inner: ValueAndTimestampSerde<V>,
    pub clock: Arc<AtomicI64>,
}

impl<V: 'static> Serde<V> for PlainValueSerde<V> {
    fn serialize(&self, value: &V) -> Result<Option<Vec<u8>>, SerdeError> {
        let inner = self
            .inner
            .0
            .serialize(value)?
            .ok_or(SerdeError::UnexpectedNull)?;
        let mut out = Vec::with_capacity(8 + inner.len());
        out.extend_from_slice(&self.clock.load(Ordering::Relaxed).to_be_bytes());
        out.extend_from_slice(&inner);
        Ok(Some(out))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<V, SerdeError> {
        self.inner.deserialize(bytes).map(|v| v.value)
    }
}

/// Where a store keeps its data.
///
/// A store's type is chosen with [`StoreBuilder::with_store_type`] or
/// [`Materialized::with_store_type`](crate::dsl::Materialized::with_store_type); otherwise
/// [`StreamsConfig::default_store_type`](crate::config::StreamsConfig::default_store_type)
/// decides. Either kind sits below the same cache and changelog layers and answers queries
/// the same way.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::*, state::StoreType, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks")
///     .group_by_key()
///     .count_with(Materialized::named("clicks").with_store_type(StoreType::RocksDb));
/// // The test driver keeps RocksDB stores in a fresh directory under the state directory,
/// // removed when the driver is dropped.
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("st")).unwrap();
/// driver.create_input_topic::<String, String>("clicks").pipe_input_at("ann".into(), "/".into(), 0);
/// let clicks = driver.key_value_store::<String, i64>("clicks").unwrap();
/// assert_eq!(clicks.get(&"ann".to_string()).unwrap(), Some(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreType {
    /// A sorted map in memory. Every write is also recorded for the store's changelog topic
    /// (unless logging is off), which is what a restart restores from — in full.
    #[default]
    InMemory,
    /// RocksDB on disk under the task's directory in the state directory. A restart finds
    /// the data in place and restores only the changelog written after the last checkpoint.
    #[cfg(feature = "rocksdb")]
    RocksDb,
}

/// The definition of a key-value store, made by [`Stores`] and added to a topology with
/// [`StreamsBuilder::add_state_store`](crate::dsl::StreamsBuilder::add_state_store).
///
/// ```
/// use kstreams::state::Stores;
/// let builder = Stores::key_value_store_builder::<String, i64>("seen")
///     .with_logging_disabled();
/// assert_eq!(builder.name(), "seen");
/// ```
pub struct StoreBuilder<K, V> {
    pub(crate) name: String,
    /// `None`: the configuration's default store type.
    pub(crate) store_type: Option<StoreType>,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) logging: Option<BTreeMap<String, String>>,
    pub(crate) window: Option<WindowSpec>,
    /// Retention of a session store, in milliseconds.
    pub(crate) session: Option<i64>,
    /// Whether the store gets a write cache (`store_cache_max_bytes` bytes).
    pub(crate) caching: bool,
}

/// Shape of a window store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowSpec {
    pub size: i64,
    pub retention: i64,
    pub retain_duplicates: bool,
}

impl<K: 'static, V: 'static> StoreBuilder<K, V> {
    /// The store's name.
    ///
    /// ```
    /// use kstreams::{serde::Serdes, state::Stores};
    /// use std::time::Duration;
    /// let store = Stores::key_value_store_builder::<String, i64>("totals");
    /// assert_eq!(store.name(), "totals");
    /// let (size, retention) = (Duration::from_secs(60), Duration::from_secs(3600));
    /// let windows = Stores::window_store_builder_with("recent", size, retention, false,
    ///     Serdes::string(), Serdes::i64());
    /// assert_eq!(windows.name(), "recent");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Turns off the changelog: the store is not restored after a restart or a move.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    /// use kstreams::state::{StoreBuilder, StoreType, Stores};
    ///
    /// /// Remembers the last value of each key in the store "last".
    /// struct Remember;
    /// impl Processor<String, String, String, String> for Remember {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         ctx.key_value_store::<String, String>("last")?.put(&record.key, &record.value)?;
    ///         ctx.forward(record)
    ///     }
    /// }
    ///
    /// let run = |store: StoreBuilder<String, String>| {
    ///     let builder = StreamsBuilder::new();
    ///     builder.add_state_store(store);
    ///     builder.stream::<String, String>("in").process(|| Remember, &["last"]).to("out");
    ///     let topology = builder.build().unwrap();
    ///     let driver = TestDriver::new(&topology, StreamsConfig::new("app")).unwrap();
    ///     let input = driver.create_input_topic::<String, String>("in");
    ///     input.pipe_input_at("k".into(), "v".into(), 0);
    ///     let last = driver.key_value_store::<String, String>("last").unwrap();
    ///     assert_eq!(last.get(&"k".into()).unwrap(), Some("v".to_string()));
    ///     driver.produced_topic_names()
    /// };
    /// let last = || Stores::key_value_store_builder::<String, String>("last");
    /// assert_eq!(run(last()), vec!["app-last-changelog", "out"]);
    /// assert_eq!(run(last().with_logging_disabled()), vec!["out"]); // no changelog written
    /// ```
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = None;
        self
    }

    /// Turns on the changelog with extra topic configs (`retention.ms`, ...).
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use kstreams::state::Stores;
    /// let configs = BTreeMap::from([("min.compaction.lag.ms".to_string(), "60000".to_string())]);
    /// let store = Stores::key_value_store_builder::<String, i64>("totals").with_logging_enabled(configs);
    /// assert_eq!(store.name(), "totals");
    /// ```
    pub fn with_logging_enabled(mut self, configs: BTreeMap<String, String>) -> Self {
        self.logging = Some(configs);
        self
    }

    /// Chooses where the store keeps its data (see [`StoreType`] for an example).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    /// use kstreams::state::{StoreBuilder, StoreType, Stores};
    ///
    /// /// Remembers the last value of each key in the store "last".
    /// struct Remember;
    /// impl Processor<String, String, String, String> for Remember {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         ctx.key_value_store::<String, String>("last")?.put(&record.key, &record.value)?;
    ///         ctx.forward(record)
    ///     }
    /// }
    ///
    /// let run = |store: StoreBuilder<String, String>| {
    ///     let builder = StreamsBuilder::new();
    ///     builder.add_state_store(store);
    ///     builder.stream::<String, String>("in").process(|| Remember, &["last"]).to("out");
    ///     let topology = builder.build().unwrap();
    ///     let driver = TestDriver::new(&topology, StreamsConfig::new("app")).unwrap();
    ///     let input = driver.create_input_topic::<String, String>("in");
    ///     input.pipe_input_at("k".into(), "v".into(), 0);
    ///     let last = driver.key_value_store::<String, String>("last").unwrap();
    ///     assert_eq!(last.get(&"k".into()).unwrap(), Some("v".to_string()));
    ///     driver.produced_topic_names()
    /// };
    /// let last = || Stores::key_value_store_builder::<String, String>("last");
    /// // Either type answers the same; RocksDB keeps the data on disk.
    /// let topics = vec!["app-last-changelog", "out"];
    /// assert_eq!(run(last().with_store_type(StoreType::InMemory)), topics);
    /// assert_eq!(run(last().with_store_type(StoreType::RocksDb)), topics);
    /// ```
    pub fn with_store_type(mut self, store_type: StoreType) -> Self {
        self.store_type = Some(store_type);
        self
    }

    /// Writes every update to the store (and its changelog) at once, without the write
    /// cache of `store_cache_max_bytes` bytes that a store gets by default. A DSL aggregation
    /// over such a store also forwards every update at once
    /// ([`Materialized::with_caching_disabled`](crate::dsl::Materialized::with_caching_disabled)).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// use kstreams::state::Stores;
    /// let builder = StreamsBuilder::new();
    /// builder.add_state_store(
    ///     Stores::key_value_store_builder::<String, i64>("direct").with_caching_disabled());
    /// builder.stream::<String, String>("in").to("out");
    /// let topology = builder.build().unwrap();
    /// assert_eq!(topology.store_names(), vec!["direct"]);
    /// ```
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching = false;
        self
    }

    /// Puts the write cache back in front of the store (the default).
    ///
    /// ```
    /// use kstreams::state::Stores;
    /// let store = Stores::key_value_store_builder::<String, i64>("totals")
    ///     .with_caching_disabled()
    ///     .with_caching_enabled();
    /// assert_eq!(store.name(), "totals");
    /// ```
    pub fn with_caching_enabled(mut self) -> Self {
        self.caching = true;
        self
    }

    pub(crate) fn into_def(self, timestamped: bool) -> StoreDef {
        let kind = match (self.window, self.session) {
            (Some(spec), _) => StoreKind::Window(spec),
            (None, Some(retention)) => StoreKind::Session { retention },
            (None, None) => StoreKind::KeyValue,
        };
        StoreDef {
            name: self.name,
            kind,
            store_type: self.store_type,
            logging: self.logging,
            caching: self.caching,
            timestamped,
            global: false,
            key_serde: Arc::new(self.key_serde.clone()) as Arc<dyn Any + Send + Sync>,
            serdes: Arc::new(StoreSerdes {
                key: self.key_serde,
                value: self.value_serde,
            }) as Arc<dyn Any + Send + Sync>,
        }
    }
}

/// Factory of store definitions (Kafka Streams' `Stores`), for processors added with
/// [`KStream::process`](crate::dsl::KStream::process). Every store gets a changelog
/// `<application-id>-<name>-changelog` unless its logging is disabled.
///
/// ```
/// use std::time::Duration;
/// use kstreams::{dsl::StreamsBuilder, serde::Serdes, BoxError};
/// use kstreams::processor::{Processor, ProcessorContext, Record};
/// use kstreams::state::Stores;
/// use kstreams::topology::InternalTopicKind;
///
/// struct PassThrough;
/// impl Processor<String, i64, String, i64> for PassThrough {
///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
///                record: Record<String, i64>) -> Result<(), BoxError> {
///         ctx.forward(record)
///     }
/// }
///
/// let builder = StreamsBuilder::new();
/// builder
///     .add_state_store(Stores::key_value_store_builder::<String, i64>("totals"))
///     .add_state_store(Stores::window_store_builder_with("recent", Duration::from_secs(60),
///         Duration::from_secs(3600), false, Serdes::string(), Serdes::i64()))
///     .add_state_store(Stores::session_store_builder_with("visits", Duration::from_secs(1800),
///         Serdes::string(), Serdes::i64()));
/// builder
///     .stream::<String, i64>("in")
///     .process(|| PassThrough, &["totals", "recent", "visits"])
///     .to("out");
/// let description = builder.build().unwrap().describe();
/// let changelogs = description.internal_topics_of(InternalTopicKind::Changelog);
/// assert_eq!(changelogs.len(), 3);
/// let recent = changelogs.iter().find(|t| t.name == "recent-changelog").unwrap();
/// assert_eq!(recent.configs["cleanup.policy"], "compact,delete");
/// assert_eq!(recent.configs["retention.ms"], "90000000"); // retention + 1 day
/// ```
pub struct Stores<K = (), V = ()>(PhantomData<(K, V)>);

impl Stores {
    /// A key-value store with the types' default serdes and a changelog (see [`Stores`] for
    /// an example).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    /// use kstreams::{serde::Serdes, state::Stores};
    ///
    /// /// Keeps a running total per key in the store "totals".
    /// struct Total;
    /// impl Processor<String, i64, String, i64> for Total {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                record: Record<String, i64>) -> Result<(), BoxError> {
    ///         let totals = ctx.key_value_store::<String, i64>("totals")?;
    ///         let total = totals.get(&record.key)?.unwrap_or(0) + record.value;
    ///         totals.put(&record.key, &total)?;
    ///         ctx.forward(record.with_value(total))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.add_state_store(Stores::key_value_store_builder::<String, i64>("totals"));
    /// builder.stream::<String, i64>("in").process(|| Total, &["totals"]).to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// driver.create_input_topic::<String, i64>("in").pipe_input_at("ann".into(), 5, 0);
    /// // The changelog carries the store's bytes in the default serdes (8-byte big-endian i64).
    /// let changelog = driver.create_output_topic_with("t-totals-changelog", Serdes::string(),
    ///     Serdes::bytes());
    /// let (key, value) = changelog.read_key_value().unwrap();
    /// assert_eq!((key.as_str(), value), ("ann", 5i64.to_be_bytes().to_vec()));
    /// ```
    pub fn key_value_store_builder<K, V>(name: impl Into<String>) -> StoreBuilder<K, V>
    where
        K: crate::serde::DefaultSerde,
        V: crate::serde::DefaultSerde,
    {
        Self::key_value_store_builder_with(name, K::default_serde(), V::default_serde())
    }

    /// A key-value store with explicit serdes and a changelog.
    ///
    /// ```
    /// use kstreams::{serde::Serdes, state::Stores};
    /// let store = Stores::key_value_store_builder_with("seen", Serdes::bytes(), Serdes::u64());
    /// assert_eq!(store.name(), "seen");
    /// ```
    pub fn key_value_store_builder_with<K: 'static, V: 'static>(
        name: impl Into<String>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> StoreBuilder<K, V> {
        StoreBuilder {
            name: name.into(),
            store_type: None,
            key_serde,
            value_serde,
            logging: Some(BTreeMap::new()),
            caching: true,
            window: None,
            session: None,
        }
    }

    /// A window store of windows of `size` kept for `retention`.
    /// With `retain_duplicates`, every put adds a value instead of replacing (for joins).
    /// Its changelog is compacted and deleted after the retention plus a day (see
    /// [`Stores`] for an example).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    /// use kstreams::{serde::Serdes, state::Stores};
    ///
    /// /// Keeps every amount in the store "amounts", in windows of one minute.
    /// struct Keep;
    /// impl Processor<String, i64, String, i64> for Keep {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                record: Record<String, i64>) -> Result<(), BoxError> {
    ///         let store = ctx.window_store::<String, i64>("amounts")?;
    ///         store.put(&record.key, &record.value, record.timestamp / 60_000 * 60_000)?;
    ///         ctx.forward(record)
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// let (size, retention) = (Duration::from_secs(60), Duration::from_secs(3600));
    /// builder.add_state_store(Stores::window_store_builder_with("amounts", size, retention,
    ///     true, Serdes::string(), Serdes::i64()));
    /// builder.stream::<String, i64>("in").process(|| Keep, &["amounts"]).to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("k")).unwrap();
    /// let input = driver.create_input_topic::<String, i64>("in");
    /// input.pipe_input_at("ann".into(), 5, 1_000);
    /// input.pipe_input_at("ann".into(), 7, 2_000);
    /// let amounts = driver.window_store::<String, i64>("amounts").unwrap();
    /// // With `retain_duplicates`, the second put added a value to the window.
    /// assert_eq!(amounts.fetch_range(&"ann".into(), 0, 0).unwrap(), vec![(0, 5), (0, 7)]);
    /// ```
    pub fn window_store_builder_with<K: 'static, V: 'static>(
        name: impl Into<String>,
        size: std::time::Duration,
        retention: std::time::Duration,
        retain_duplicates: bool,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> StoreBuilder<K, V> {
        StoreBuilder {
            name: name.into(),
            store_type: None,
            key_serde,
            value_serde,
            logging: Some(BTreeMap::new()),
            caching: true,
            window: Some(WindowSpec {
                size: size.as_millis() as i64,
                retention: retention.as_millis() as i64,
                retain_duplicates,
            }),
            session: None,
        }
    }

    /// A session store whose sessions are kept `retention` after they end (see [`Stores`]
    /// for an example).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    /// use kstreams::{serde::Serdes, state::Stores, topology::InternalTopicKind};
    ///
    /// /// Records every visit as a session of its own in the store "visits".
    /// struct Visit;
    /// impl Processor<String, String, String, String> for Visit {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let t = record.timestamp;
    ///         ctx.session_store::<String, i64>("visits")?.put(&record.key, t, t, &1)?;
    ///         ctx.forward(record)
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.add_state_store(Stores::session_store_builder_with("visits",
    ///     Duration::from_secs(1800), Serdes::string(), Serdes::i64()));
    /// builder.stream::<String, String>("in").process(|| Visit, &["visits"]).to("out");
    /// let topology = builder.build().unwrap();
    /// let description = topology.describe();
    /// let changelog = &description.internal_topics_of(InternalTopicKind::Changelog)[0];
    /// assert_eq!(changelog.configs["retention.ms"], "88200000"); // 30 minutes + 1 day
    /// let driver = TestDriver::new(&topology, StreamsConfig::new("v")).unwrap();
    /// let input = driver.create_input_topic::<String, String>("in");
    /// input.pipe_input_at("ann".into(), "/".into(), 7);
    /// let visits = driver.session_store::<String, i64>("visits").unwrap();
    /// assert_eq!(visits.fetch(&"ann".into()).unwrap()[0].end, 7);
    /// ```
    pub fn session_store_builder_with<K: 'static, V: 'static>(
        name: impl Into<String>,
        retention: std::time::Duration,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> StoreBuilder<K, V> {
        StoreBuilder {
            name: name.into(),
            store_type: None,
            key_serde,
            value_serde,
            logging: Some(BTreeMap::new()),
            caching: true,
            window: None,
            session: Some(retention.as_millis() as i64),
        }
    }
}
