//! Store definitions as a topology holds them, and the per-task registry of built stores that
//! hands out typed handles.

use std::any::{type_name, Any};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};

use crate::serde::SerdeRef;

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
    pub store_type: StoreType,
    /// Changelog topic configs; `None` when logging is off.
    pub logging: Option<BTreeMap<String, String>>,
    pub timestamped: bool,
    /// Filled by the global task and shared by every task.
    pub global: bool,
    pub serdes: Arc<dyn Any + Send + Sync>,
}

/// What a store needs to know about the task it is built for.
pub(crate) struct StoreContext<'a> {
    pub application_id: &'a str,
    pub partition: i32,
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

    pub(crate) fn build(&self, ctx: &StoreContext<'_>) -> StoreEntry {
        let changelog = self.changelog_topic().map(|topic| {
            Arc::new(ChangelogBuffer::new(
                format!("{}-{}", ctx.application_id, topic).into(),
                ctx.partition,
            ))
        });
        let restore;
        let bytes = match (self.kind, self.store_type) {
            (StoreKind::KeyValue | StoreKind::Session { .. }, StoreType::InMemory) => {
                let mut store: Arc<dyn KeyValueBytesStore> = Arc::new(InMemoryKeyValueStore::new());
                restore = Some(StoreBytes::KeyValue(store.clone()));
                if let Some(log) = &changelog {
                    store = Arc::new(LoggedKeyValueStore {
                        inner: store,
                        log: log.clone(),
                    });
                }
                StoreBytes::KeyValue(store)
            }
            (StoreKind::Window(spec), StoreType::InMemory) => {
                let mut store: Arc<dyn WindowBytesStore> = Arc::new(InMemoryWindowStore::new(spec));
                restore = Some(StoreBytes::Window(store.clone()));
                if let Some(log) = &changelog {
                    store = Arc::new(LoggedWindowStore {
                        inner: store,
                        log: log.clone(),
                        retain_duplicates: spec.retain_duplicates,
                        seq: Mutex::new(0),
                    });
                }
                StoreBytes::Window(store)
            }
        };
        let bytes = match (self.kind, bytes) {
            (StoreKind::Session { .. }, StoreBytes::KeyValue(kv)) => StoreBytes::Session(kv),
            (_, bytes) => bytes,
        };
        StoreEntry {
            name: self.name.as_str().into(),
            restore,
            bytes,
            timestamped: self.timestamped,
            serdes: self.serdes.clone(),
            changelog,
        }
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
    pub bytes: StoreBytes,
    pub timestamped: bool,
    pub serdes: Arc<dyn Any + Send + Sync>,
    pub changelog: Option<Arc<ChangelogBuffer>>,
}

impl StoreEntry {
    /// Applies one changelog record to the store without logging it again.
    pub(crate) fn restore_record(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        match &self.restore {
            Some(StoreBytes::KeyValue(store)) | Some(StoreBytes::Session(store)) => match value {
                Some(v) => store.put(key.to_vec(), v.to_vec()),
                None => store.delete(key).map(|_| ()),
            },
            Some(StoreBytes::Window(store)) => {
                if key.len() < 12 {
                    return Err(StoreError::Storage {
                        store: self.name.to_string(),
                        message: "corrupt window changelog key".into(),
                    });
                }
                let (record_key, rest) = key.split_at(key.len() - 12);
                let start = i64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
                store
                    .put(record_key, start, value.map(<[u8]>::to_vec))
                    .map(|_| ())
            }
            None => Ok(()),
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
