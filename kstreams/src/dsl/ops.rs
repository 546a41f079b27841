//! The processors behind DSL operators that need more than one closure: sources, sinks,
//! aggregations and table operators. Stateless operators are closures (see `graph.rs`).

use std::sync::Arc;

use crate::error::BoxError;
use crate::processor::{Processor, ProcessorContext, Record};
use crate::runtime::node::{Children, SourceInput};
use crate::runtime::task::{ConsumerRecord, ProducerRecord, TaskContext};
use crate::serde::{PairCodec, Serde, SerdeError, SerdeRef};
use crate::state::{TimestampedKeyValueStore, ValueAndTimestamp};
use crate::topology::TopicRef;

use super::forward::ForwardCache;
use super::TimestampExtractor;

/// A table update: the new value (`None` = deleted) and the value it replaced.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change<V> {
    pub new: Option<V>,
    pub old: Option<V>,
}

/// Encodes a [`Change`] for a repartition topic: new value first, then old.
pub(crate) struct ChangeSerde<V>(pub SerdeRef<V>);

impl<V: 'static> Serde<Change<V>> for ChangeSerde<V> {
    fn serialize(&self, change: &Change<V>) -> Result<Option<Vec<u8>>, SerdeError> {
        let new = match &change.new {
            Some(v) => self.0.serialize(v)?,
            None => None,
        };
        let old = match &change.old {
            Some(v) => self.0.serialize(v)?,
            None => None,
        };
        Ok(Some(PairCodec::encode(new.as_deref(), old.as_deref())))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Change<V>, SerdeError> {
        let (new, old) = PairCodec::decode(bytes.ok_or(SerdeError::UnexpectedNull)?)?;
        Ok(Change {
            new: new.map(|b| self.0.deserialize(Some(b))).transpose()?,
            old: old.map(|b| self.0.deserialize(Some(b))).transpose()?,
        })
    }
}

/// Reads raw records of the task's source topics into typed records.
pub(crate) struct SourceNode<K, V> {
    pub name: Arc<str>,
    pub key_serde: SerdeRef<K>,
    pub value_serde: SerdeRef<V>,
    pub extractor: Option<TimestampExtractor<K, V>>,
    pub skip_null_keys: bool,
    pub children: Children<K, V>,
}

impl<K: Clone + 'static, V: Clone + 'static> SourceInput for SourceNode<K, V> {
    fn process_raw(
        &mut self,
        task: &mut TaskContext,
        raw: &ConsumerRecord,
    ) -> Result<(), BoxError> {
        if self.skip_null_keys && raw.key.is_none() {
            task.record_dropped("a table record needs a key");
            return Ok(());
        }
        let key = match self.key_serde.deserialize(raw.key.as_deref()) {
            Ok(key) => key,
            Err(e) => return task.on_deserialization_error(&self.name, "key", e),
        };
        let value = match self.value_serde.deserialize(raw.value.as_deref()) {
            Ok(value) => value,
            Err(e) => return task.on_deserialization_error(&self.name, "value", e),
        };
        let timestamp = match &self.extractor {
            Some(extract) => extract(&key, &value, raw.timestamp),
            None => raw.timestamp,
        };
        if timestamp < 0 {
            task.record_dropped(&format!("invalid (negative) timestamp {timestamp}"));
            return Ok(());
        }
        task.observe_timestamp(timestamp);
        let record = Record {
            key,
            value,
            timestamp,
            headers: raw.headers.clone(),
        };
        self.children.forward(task, record)
    }
}

/// Picks a sink's topic per record.
pub(crate) type TopicNameExtractor<K, V> = Arc<dyn Fn(&K, &V) -> String + Send + Sync>;

/// Where a sink writes.
pub(crate) enum TopicChoice<K, V> {
    Fixed(TopicRef),
    Dynamic(TopicNameExtractor<K, V>),
}

impl<K, V> Clone for TopicChoice<K, V> {
    fn clone(&self) -> Self {
        match self {
            TopicChoice::Fixed(t) => TopicChoice::Fixed(t.clone()),
            TopicChoice::Dynamic(f) => TopicChoice::Dynamic(f.clone()),
        }
    }
}

/// Serializes records into the task's output.
pub(crate) struct SinkProcessor<K, V> {
    topic: TopicChoice<K, V>,
    resolved: Option<Arc<str>>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K, V> SinkProcessor<K, V> {
    pub(crate) fn new(
        topic: TopicChoice<K, V>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> Self {
        SinkProcessor {
            topic,
            resolved: None,
            key_serde,
            value_serde,
        }
    }
}

impl<K: 'static, V: 'static> Processor<K, V, (), ()> for SinkProcessor<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, (), ()>) -> Result<(), BoxError> {
        if let TopicChoice::Fixed(t) = &self.topic {
            self.resolved = Some(t.resolve(ctx.application_id()).into());
        }
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<K, V>,
    ) -> Result<(), BoxError> {
        let topic: Arc<str> = match (&self.resolved, &self.topic) {
            (Some(t), _) => t.clone(),
            (None, TopicChoice::Dynamic(f)) => f(&record.key, &record.value).into(),
            (None, TopicChoice::Fixed(t)) => t.resolve(ctx.application_id()).into(),
        };
        let name = ctx.name;
        let task = ctx.task_mut();
        let key = match self.key_serde.serialize(&record.key) {
            Ok(k) => k,
            Err(e) => return task.on_serialization_error(name, &topic, "key", e),
        };
        let value = match self.value_serde.serialize(&record.value) {
            Ok(v) => v,
            Err(e) => return task.on_serialization_error(name, &topic, "value", e),
        };
        task.output.push(ProducerRecord {
            topic,
            partition: None,
            key,
            value,
            timestamp: record.timestamp,
            headers: record.headers,
        });
        Ok(())
    }
}

/// Sends each record to the first branch whose predicate matches (or drops it).
pub(crate) type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Folds a value into the aggregate of its key (`None` before the key's first value).
pub(crate) type Adder<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;
/// Takes a value out of an aggregate; `None` means the key has no aggregate any more.
pub(crate) type Subtractor<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> Option<VA> + Send + Sync>;

/// Aggregation of a grouped stream into a timestamped key-value store.
pub(crate) struct StreamAggregate<K, V, VA> {
    pub store_name: String,
    pub adder: Adder<K, V, VA>,
    pub store: Option<TimestampedKeyValueStore<K, VA>>,
    /// Updates held back until the next commit (see `forward.rs`).
    pub forward: ForwardCache<K, VA>,
}

impl<K, V, VA> StreamAggregate<K, V, VA> {
    pub(crate) fn new(store_name: String, adder: Adder<K, V, VA>) -> Self
    where
        K: Clone + 'static,
        VA: Clone + 'static,
    {
        StreamAggregate {
            store_name,
            adder,
            store: None,
            forward: ForwardCache::new(0),
        }
    }
}

impl<K: Clone + 'static, V: 'static, VA: Clone + 'static> Processor<K, V, K, Change<VA>>
    for StreamAggregate<K, V, VA>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), BoxError> {
        self.store = Some(ctx.timestamped_key_value_store(&self.store_name)?);
        self.forward = ForwardCache::new(ctx.store_cache_bytes(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        record: Record<K, V>,
    ) -> Result<(), BoxError> {
        let store = self.store.as_ref().ok_or("store not initialized")?;
        let key = store.encode_key(&record.key)?;
        let old = store.get_encoded(&key)?;
        let (old_value, old_ts) = match old {
            Some(v) => (Some(v.value), v.timestamp),
            None => (None, i64::MIN),
        };
        let new = (self.adder)(&record.key, record.value, old_value.clone());
        let timestamp = record.timestamp.max(old_ts);
        store.put_encoded(
            key.clone(),
            &ValueAndTimestamp {
                value: new.clone(),
                timestamp,
            },
        )?;
        self.forward.forward(
            ctx,
            &key,
            || record.key,
            Change {
                new: Some(new),
                old: old_value,
            },
            timestamp,
            record.headers,
        )
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), BoxError> {
        self.forward.flush(ctx)
    }
}

/// Materializes a table from `(key, value or tombstone)` records and emits changes.
pub(crate) struct TableSource<K, V> {
    pub store_name: String,
    pub store: Option<TimestampedKeyValueStore<K, V>>,
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, Option<V>, K, Change<V>>
    for TableSource<K, V>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), BoxError> {
        self.store = Some(ctx.timestamped_key_value_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Option<V>>,
    ) -> Result<(), BoxError> {
        let store = self.store.as_ref().ok_or("store not initialized")?;
        let old = store.get(&record.key)?.map(|v| v.value);
        match &record.value {
            Some(value) => store.put(
                &record.key,
                &ValueAndTimestamp {
                    value: value.clone(),
                    timestamp: record.timestamp,
                },
            )?,
            None => {
                if old.is_none() {
                    // Deleting a key that does not exist changes nothing (and logs nothing).
                    return Ok(());
                }
                store.delete(&record.key)?;
            }
        }
        ctx.forward(Record {
            key: record.key,
            value: Change {
                new: record.value,
                old,
            },
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }
}

/// Applies a per-change transformation to a table, optionally materializing the result.
pub(crate) struct TableTransform<K, V, V2> {
    /// Maps a value to the result value, or `None` when the result has no entry (filter).
    pub f: Arc<dyn Fn(&K, V) -> Option<V2> + Send + Sync>,
    pub store_name: Option<String>,
    pub store: Option<TimestampedKeyValueStore<K, V2>>,
}

impl<K: Clone + 'static, V: 'static, V2: Clone + 'static> Processor<K, Change<V>, K, Change<V2>>
    for TableTransform<K, V, V2>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V2>>) -> Result<(), BoxError> {
        if let Some(name) = &self.store_name {
            self.store = Some(ctx.timestamped_key_value_store(name)?);
        }
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V2>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), BoxError> {
        let key = &record.key;
        let new = record.value.new.and_then(|v| (self.f)(key, v));
        let old = match &self.store {
            Some(store) => store.get(key)?.map(|v| v.value),
            None => record.value.old.and_then(|v| (self.f)(key, v)),
        };
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        if let Some(store) = &self.store {
            match &new {
                Some(v) => store.put(
                    key,
                    &ValueAndTimestamp {
                        value: v.clone(),
                        timestamp: record.timestamp,
                    },
                )?,
                None => {
                    store.delete(key)?;
                }
            }
        }
        ctx.forward(Record {
            key: record.key,
            value: Change { new, old },
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }
}

/// Maps table changes to new keys for a grouped-table aggregation: the old value is
/// subtracted under its old key, the new value added under its new key.
pub(crate) struct TableRepartitionMap<K, V, K2, V2> {
    pub selector: Arc<dyn Fn(&K, &V) -> (K2, V2) + Send + Sync>,
}

impl<K: 'static, V: 'static, K2: Clone + PartialEq + 'static, V2: Clone + 'static>
    Processor<K, Change<V>, K2, Change<V2>> for TableRepartitionMap<K, V, K2, V2>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, Change<V2>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), BoxError> {
        let key = &record.key;
        let new = record.value.new.as_ref().map(|v| (self.selector)(key, v));
        let old = record.value.old.as_ref().map(|v| (self.selector)(key, v));
        let (ts, headers) = (record.timestamp, record.headers);
        match (new, old) {
            (Some((nk, nv)), Some((ok, ov))) if nk == ok => ctx.forward(Record {
                key: nk,
                value: Change {
                    new: Some(nv),
                    old: Some(ov),
                },
                timestamp: ts,
                headers,
            }),
            (new, old) => {
                if let Some((ok, ov)) = old {
                    ctx.forward(Record {
                        key: ok,
                        value: Change {
                            new: None,
                            old: Some(ov),
                        },
                        timestamp: ts,
                        headers: headers.clone(),
                    })?;
                }
                if let Some((nk, nv)) = new {
                    ctx.forward(Record {
                        key: nk,
                        value: Change {
                            new: Some(nv),
                            old: None,
                        },
                        timestamp: ts,
                        headers,
                    })?;
                }
                Ok(())
            }
        }
    }
}

/// Aggregation of a grouped table: subtract the old value, add the new one.
pub(crate) struct TableAggregate<K, V, VA> {
    pub store_name: String,
    pub adder: Adder<K, V, VA>,
    pub subtractor: Subtractor<K, V, VA>,
    pub store: Option<TimestampedKeyValueStore<K, VA>>,
    /// Updates held back until the next commit (see `forward.rs`).
    pub forward: ForwardCache<K, VA>,
}

impl<K, V, VA> TableAggregate<K, V, VA> {
    pub(crate) fn new(
        store_name: String,
        adder: Adder<K, V, VA>,
        subtractor: Subtractor<K, V, VA>,
    ) -> Self
    where
        K: Clone + 'static,
        VA: Clone + 'static,
    {
        TableAggregate {
            store_name,
            adder,
            subtractor,
            store: None,
            forward: ForwardCache::new(0),
        }
    }
}

impl<K: Clone + 'static, V: 'static, VA: Clone + 'static> Processor<K, Change<V>, K, Change<VA>>
    for TableAggregate<K, V, VA>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), BoxError> {
        self.store = Some(ctx.timestamped_key_value_store(&self.store_name)?);
        self.forward = ForwardCache::new(ctx.store_cache_bytes(&self.store_name)?);
        Ok(())
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), BoxError> {
        self.forward.flush(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), BoxError> {
        let store = self.store.as_ref().ok_or("store not initialized")?;
        let key = store.encode_key(&record.key)?;
        let prior = store.get_encoded(&key)?;
        let (prior_value, prior_ts) = match prior {
            Some(v) => (Some(v.value), v.timestamp),
            None => (None, i64::MIN),
        };
        let mut current = prior_value.clone();
        if let Some(old) = record.value.old {
            current = (self.subtractor)(&record.key, old, current);
        }
        if let Some(new) = record.value.new {
            current = Some((self.adder)(&record.key, new, current));
        }
        let timestamp = record.timestamp.max(prior_ts);
        if current.is_none() && prior_value.is_none() {
            return Ok(());
        }
        match &current {
            Some(v) => store.put_encoded(
                key.clone(),
                &ValueAndTimestamp {
                    value: v.clone(),
                    timestamp,
                },
            )?,
            None => store.delete_encoded(&key)?,
        }
        self.forward.forward(
            ctx,
            &key,
            || record.key,
            Change {
                new: current,
                old: prior_value,
            },
            timestamp,
            record.headers,
        )
    }
}
