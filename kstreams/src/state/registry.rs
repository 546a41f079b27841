//! Store definitions as a topology holds them, and the per-task registry of built stores that
//! hands out typed handles.

use std::any::{type_name, Any};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};

use crate::serde::SerdeRef;

use super::caching::{CachingKeyValueStore, CachingWindowStore};
use super::notify::{NotifyingKeyValueStore, NotifyingWindowStore};
use super::{
    ChangelogBuffer, InMemoryKeyValueStore, InMemoryWindowStore, KeyValueBytesStore, KeyValueStore,
    LoggedKeyValueStore, LoggedWindowStore, PlainValueSerde, SessionStore, StoreError, StoreSerdes,
    StoreType, TimestampedKeyValueStore, ValueAndTimestamp, ValueAndTimestampSerde,
    WindowBytesStore, WindowSpec, WindowStore,
};

/// The kind of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind {
    KeyValue,
    Window(WindowSpec),
    Session { retention: i64 },
}

/// A store as the topology defines it; built once per task.
pub(crate) struct StoreDef {
    pub name: String,
    pub kind: StoreKind,
    /// `None`: the configuration's default.
    pub store_type: Option<StoreType>,
    /// Changelog topic configs; `None` when logging is off.
    pub logging: Option<BTreeMap<String, String>>,
    /// Whether the store gets a write cache.
    pub caching: bool,
    pub timestamped: bool,
    /// Filled by the global task and shared by every task.
    pub global: bool,
    /// The key serde alone (`SerdeRef<K>`), for finding a key's partition.
    pub key_serde: Arc<dyn Any + Send + Sync>,
    pub serdes: Arc<dyn Any + Send + Sync>,
}

/// Settings every store of a process shares: the cache bound, the default store type and
/// the RocksDB memory shared by all persistent stores.
#[derive(Clone)]
pub(crate) struct StoreSettings {
    /// Subscribers to store changes.
    pub changes: Arc<super::ChangeHub>,
    pub cache_bytes: usize,
    pub default_store_type: StoreType,
    #[cfg(feature = "rocksdb")]
    pub rocksdb: super::RocksDbShared,
}

impl StoreSettings {
    pub(crate) fn new(config: &crate::config::StreamsConfig) -> Self {
        StoreSettings {
            changes: Arc::new(super::ChangeHub::default()),
            cache_bytes: config.store_cache_max_bytes,
            default_store_type: config.default_store_type,
            #[cfg(feature = "rocksdb")]
            rocksdb: super::RocksDbShared::new(
                config.rocksdb_block_cache_bytes,
                config.rocksdb_write_buffer_bytes,
            ),
        }
    }
}

/// What a store needs to know about the task it is built for.
pub(crate) struct StoreContext<'a> {
    pub application_id: &'a str,
    pub partition: i32,
    /// The task's directory, where persistent stores live.
    pub directory: Option<&'a super::TaskDirectory>,
    pub settings: &'a StoreSettings,
}

impl StoreDef {
    /// The changelog topic name without the application-id prefix.
    pub(crate) fn changelog_topic(&self) -> Option<String> {
        self.logging
            .as_ref()
            .map(|_| format!("{}-changelog", self.name))
    }

    /// Topic configs of the changelog: compacted, and for window stores also deleted after
    /// the retention (plus a day, as Kafka Streams does).
    pub(crate) fn changelog_configs(&self) -> BTreeMap<String, String> {
        let mut configs = BTreeMap::new();
        match self.kind {
            StoreKind::KeyValue => {
                configs.insert("cleanup.policy".into(), "compact".into());
            }
            StoreKind::Window(WindowSpec { retention, .. }) | StoreKind::Session { retention } => {
                configs.insert("cleanup.policy".into(), "compact,delete".into());
                let retention = retention.saturating_add(24 * 3600 * 1000);
                configs.insert("retention.ms".into(), retention.to_string());
            }
        }
        if let Some(extra) = &self.logging {
            configs.extend(extra.clone());
        }
        configs
    }

    /// The store type in effect under these settings.
    pub(crate) fn store_type(&self, settings: &StoreSettings) -> StoreType {
        self.store_type.unwrap_or(settings.default_store_type)
    }

    /// Builds the store's layers for one task: the bytes store (in memory or on disk), the
    /// change-logging layer over it, and the write cache on top.
    pub(crate) fn build(&self, ctx: &StoreContext<'_>) -> Result<StoreEntry, StoreError> {
        let changelog = self.changelog_topic().map(|topic| {
            Arc::new(ChangelogBuffer::new(
                format!("{}-{}", ctx.application_id, topic).into(),
                ctx.partition,
            ))
        });
        let store_type = self.store_type(ctx.settings);
        let name: Arc<str> = self.name.as_str().into();
        // Global stores are filled by the global task alone, and join buffers (window
        // stores with duplicates) keep every record: nothing to collapse in either.
        let join_buffer = matches!(self.kind, StoreKind::Window(spec) if spec.retain_duplicates);
        let cache_bytes = if self.global || !self.caching || join_buffer {
            0
        } else {
            ctx.settings.cache_bytes
        };
        let (restore, bytes) = match self.kind {
            StoreKind::KeyValue | StoreKind::Session { .. } => {
                let bottom: Arc<dyn KeyValueBytesStore> = match store_type {
                    StoreType::InMemory => Arc::new(InMemoryKeyValueStore::new()),
                    #[cfg(feature = "rocksdb")]
                    StoreType::RocksDb => Arc::new(super::rocksdb::RocksDbKeyValueStore::open(
                        name.clone(),
                        &self.persistent_path(ctx)?,
                        &ctx.settings.rocksdb,
                    )?),
                };
                let mut store = bottom.clone();
                if let Some(log) = &changelog {
                    store = Arc::new(LoggedKeyValueStore {
                        inner: store,
                        log: log.clone(),
                    });
                }
                if cache_bytes > 0 {
                    store = Arc::new(CachingKeyValueStore::new(store, cache_bytes));
                }
                store = Arc::new(NotifyingKeyValueStore {
                    inner: store,
                    name: name.clone(),
                    hub: ctx.settings.changes.clone(),
                });
                match self.kind {
                    StoreKind::Session { .. } => {
                        (StoreBytes::Session(bottom), StoreBytes::Session(store))
                    }
                    _ => (StoreBytes::KeyValue(bottom), StoreBytes::KeyValue(store)),
                }
            }
            StoreKind::Window(spec) => {
                let bottom: Arc<dyn WindowBytesStore> = match store_type {
                    StoreType::InMemory => Arc::new(InMemoryWindowStore::new(spec)),
                    #[cfg(feature = "rocksdb")]
                    StoreType::RocksDb => Arc::new(super::rocksdb::RocksDbWindowStore::open(
                        name.clone(),
                        &self.persistent_path(ctx)?,
                        spec,
                        &ctx.settings.rocksdb,
                    )?),
                };
                let mut store = bottom.clone();
                if let Some(log) = &changelog {
                    store = Arc::new(LoggedWindowStore {
                        inner: store,
                        log: log.clone(),
                        retain_duplicates: spec.retain_duplicates,
                        seq: Mutex::new(0),
                    });
                }
                if cache_bytes > 0 {
                    store = Arc::new(CachingWindowStore::new(store, spec, cache_bytes));
                }
                store = Arc::new(NotifyingWindowStore {
                    inner: store,
                    name: name.clone(),
                    hub: ctx.settings.changes.clone(),
                });
                (StoreBytes::Window(bottom), StoreBytes::Window(store))
            }
        };
        Ok(StoreEntry {
            name,
            restore: Some(restore),
            bytes,
            timestamped: self.timestamped,
            persistent: store_type != StoreType::InMemory,
            serdes: self.serdes.clone(),
            changelog,
            cache_bytes,
        })
    }

    #[cfg(feature = "rocksdb")]
    fn persistent_path(&self, ctx: &StoreContext<'_>) -> Result<std::path::PathBuf, StoreError> {
        ctx.directory
            .map(|d| d.store_path(&self.name))
            .ok_or_else(|| StoreError::Storage {
                store: self.name.clone(),
                message: "a persistent store needs a task directory".into(),
            })
    }
}

/// The bytes layer of a built store.
#[derive(Clone)]
pub(crate) enum StoreBytes {
    KeyValue(Arc<dyn KeyValueBytesStore>),
    Window(Arc<dyn WindowBytesStore>),
    /// Sessions live in a key-value store under composite keys.
    Session(Arc<dyn KeyValueBytesStore>),
}

impl StoreBytes {
    fn label(&self) -> &'static str {
        match self {
            StoreBytes::KeyValue(_) => "key-value",
            StoreBytes::Window(_) => "window",
            StoreBytes::Session(_) => "session",
        }
    }
}

/// A store built for one task.
#[derive(Clone)]
pub(crate) struct StoreEntry {
    pub name: Arc<str>,
    /// The store below its changelog layer, where restored records go.
    pub restore: Option<StoreBytes>,
    /// The top of the store's layers, which handles use.
    pub bytes: StoreBytes,
    pub timestamped: bool,
    /// Kept on disk: survives a restart, so restoring can resume at a checkpoint.
    pub persistent: bool,
    pub serdes: Arc<dyn Any + Send + Sync>,
    pub changelog: Option<Arc<ChangelogBuffer>>,
    /// The byte bound of the store's write cache; `0`: not cached.
    pub cache_bytes: usize,
}

impl StoreEntry {
    /// Applies changelog records (key, value or `None` for a tombstone) to the store below
    /// its changelog layer, in one batch, without logging them again.
    pub(crate) fn restore_batch(
        &self,
        records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), StoreError> {
        match &self.restore {
            Some(StoreBytes::KeyValue(store)) | Some(StoreBytes::Session(store)) => {
                store.apply_batch(records)
            }
            Some(StoreBytes::Window(store)) => {
                let mut batch = Vec::with_capacity(records.len());
                for (mut key, value) in records {
                    if key.len() < 12 {
                        return Err(StoreError::Storage {
                            store: self.name.to_string(),
                            message: "corrupt window changelog key".into(),
                        });
                    }
                    let rest = key.split_off(key.len() - 12);
                    let start = i64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
                    batch.push((key, start, value));
                }
                store.apply_batch(batch)
            }
            None => Ok(()),
        }
    }

    /// Writes down the store's cache (through its changelog layer).
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        match &self.bytes {
            StoreBytes::KeyValue(s) | StoreBytes::Session(s) => s.flush(),
            StoreBytes::Window(s) => s.flush(),
        }
    }
}

/// The stores of one task, by name.
pub(crate) struct StoreRegistry {
    entries: HashMap<String, StoreEntry>,
    /// Timestamp of the record being processed, for writes through plain-value views of
    /// timestamped stores.
    pub clock: Arc<AtomicI64>,
}

impl StoreRegistry {
    pub(crate) fn new() -> Self {
        StoreRegistry {
            entries: HashMap::new(),
            clock: Arc::new(AtomicI64::new(0)),
        }
    }

    pub(crate) fn insert(&mut self, entry: StoreEntry) {
        self.entries.insert(entry.name.to_string(), entry);
    }

    /// Every store, for sharing global stores with the stream tasks.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &StoreEntry> {
        self.entries.values()
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Stores with a changelog: (store, full changelog topic name).
    pub(crate) fn logged(&self) -> impl Iterator<Item = (&StoreEntry, &Arc<ChangelogBuffer>)> {
        self.entries
            .values()
            .filter_map(|e| e.changelog.as_ref().map(|c| (e, c)))
    }

    pub(crate) fn changelogs(&self) -> impl Iterator<Item = &Arc<ChangelogBuffer>> {
        self.entries.values().filter_map(|e| e.changelog.as_ref())
    }

    /// The byte bound of a store's write cache; `0` when the store is not cached.
    pub(crate) fn cache_bytes(&self, name: &str) -> Result<usize, StoreError> {
        Ok(self.entry(name)?.cache_bytes)
    }

    fn entry(&self, name: &str) -> Result<&StoreEntry, StoreError> {
        self.entries
            .get(name)
            .ok_or_else(|| StoreError::NotFound(name.to_string()))
    }

    fn serdes<K: 'static, V: 'static>(
        entry: &StoreEntry,
    ) -> Result<&StoreSerdes<K, V>, StoreError> {
        entry
            .serdes
            .downcast_ref::<StoreSerdes<K, V>>()
            .ok_or_else(|| StoreError::TypeMismatch {
                store: entry.name.to_string(),
                requested: format!("<{}, {}>", type_name::<K>(), type_name::<V>()),
            })
    }

    /// The value serde of a plain-value view: for timestamped stores it drops timestamps on
    /// reads and stamps the current record time on writes.
    fn plain_value_serde<K, V: 'static>(
        &self,
        entry: &StoreEntry,
        serdes: &StoreSerdes<K, V>,
    ) -> SerdeRef<V> {
        if entry.timestamped {
            Arc::new(PlainValueSerde {
                inner: ValueAndTimestampSerde(serdes.value.clone()),
                clock: self.clock.clone(),
            })
        } else {
            serdes.value.clone()
        }
    }

    fn kv_bytes(entry: &StoreEntry) -> Result<Arc<dyn KeyValueBytesStore>, StoreError> {
        match &entry.bytes {
            StoreBytes::KeyValue(s) => Ok(s.clone()),
            other => Err(StoreError::WrongKind {
                store: entry.name.to_string(),
                actual: other.label(),
                requested: "key-value",
            }),
        }
    }

    pub(crate) fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStore<K, V>, StoreError> {
        let entry = self.entry(name)?;
        let bytes = Self::kv_bytes(entry)?;
        let serdes = Self::serdes::<K, V>(entry)?;
        let value_serde = self.plain_value_serde(entry, serdes);
        Ok(KeyValueStore::new(
            entry.name.clone(),
            bytes,
            serdes.key.clone(),
            value_serde,
        ))
    }

    pub(crate) fn timestamped_key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<TimestampedKeyValueStore<K, V>, StoreError> {
        let entry = self.entry(name)?;
        let bytes = Self::kv_bytes(entry)?;
        if !entry.timestamped {
            return Err(StoreError::WrongKind {
                store: name.to_string(),
                actual: "key-value",
                requested: "timestamped key-value",
            });
        }
        let serdes = Self::serdes::<K, V>(entry)?;
        Ok(KeyValueStore::new(
            entry.name.clone(),
            bytes,
            serdes.key.clone(),
            Arc::new(ValueAndTimestampSerde(serdes.value.clone())),
        ))
    }

    fn window_bytes(entry: &StoreEntry) -> Result<Arc<dyn WindowBytesStore>, StoreError> {
        match &entry.bytes {
            StoreBytes::Window(s) => Ok(s.clone()),
            other => Err(StoreError::WrongKind {
                store: entry.name.to_string(),
                actual: other.label(),
                requested: "window",
            }),
        }
    }

    /// A window store (for a windowed aggregation's store: the values without timestamps).
    pub(crate) fn window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<WindowStore<K, V>, StoreError> {
        let entry = self.entry(name)?;
        let bytes = Self::window_bytes(entry)?;
        let serdes = Self::serdes::<K, V>(entry)?;
        let value_serde = self.plain_value_serde(entry, serdes);
        Ok(WindowStore::new(
            entry.name.clone(),
            bytes,
            serdes.key.clone(),
            value_serde,
        ))
    }

    pub(crate) fn timestamped_window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<WindowStore<K, ValueAndTimestamp<V>>, StoreError> {
        let entry = self.entry(name)?;
        let bytes = Self::window_bytes(entry)?;
        if !entry.timestamped {
            return Err(StoreError::WrongKind {
                store: name.to_string(),
                actual: "window",
                requested: "timestamped window",
            });
        }
        let serdes = Self::serdes::<K, V>(entry)?;
        Ok(WindowStore::new(
            entry.name.clone(),
            bytes,
            serdes.key.clone(),
            Arc::new(ValueAndTimestampSerde(serdes.value.clone())),
        ))
    }

    /// A session store (for a session aggregation's store: the values without timestamps).
    pub(crate) fn session_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<SessionStore<K, V>, StoreError> {
        let (entry, bytes) = self.session_bytes(name)?;
        let serdes = Self::serdes::<K, V>(entry)?;
        let value_serde = self.plain_value_serde(entry, serdes);
        Ok(SessionStore::new(
            entry.name.clone(),
            bytes,
            serdes.key.clone(),
            value_serde,
        ))
    }

    pub(crate) fn timestamped_session_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<SessionStore<K, ValueAndTimestamp<V>>, StoreError> {
        let (entry, bytes) = self.session_bytes(name)?;
        if !entry.timestamped {
            return Err(StoreError::WrongKind {
                store: name.to_string(),
                actual: "session",
                requested: "timestamped session",
            });
        }
        let serdes = Self::serdes::<K, V>(entry)?;
        Ok(SessionStore::new(
            entry.name.clone(),
            bytes,
            serdes.key.clone(),
            Arc::new(ValueAndTimestampSerde(serdes.value.clone())),
        ))
    }

    #[allow(clippy::type_complexity)]
    fn session_bytes(
        &self,
        name: &str,
    ) -> Result<(&StoreEntry, Arc<dyn KeyValueBytesStore>), StoreError> {
        let entry = self.entry(name)?;
        let bytes = match &entry.bytes {
            StoreBytes::Session(s) => s.clone(),
            other => {
                return Err(StoreError::WrongKind {
                    store: name.to_string(),
                    actual: other.label(),
                    requested: "session",
                })
            }
        };
        Ok((entry, bytes))
    }
}
