//! [`KStream`]: an unbounded stream of independent records.

use std::cell::RefCell;
use std::fmt::Display;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::error::BoxError;
use crate::processor::{Processor, ProcessorContext, Record};
use crate::serde::DefaultSerde;
use crate::topology::{NodeKind, TopicRef};

use super::kgrouped::KGroupedStream;
use super::ops::{Predicate, TopicChoice};
use super::{Data, GraphBuilder, Grouped, Produced, Repartitioned};

/// A stream of key-value records (Kafka Streams' `KStream`).
///
/// Handles are cheap to clone; each operator returns a new stream and leaves this one usable,
/// so one stream can feed several operators.
pub struct KStream<K, V> {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
    pub(crate) node: usize,
    /// The key may have changed since the last partitioning, so grouping or joining by key
    /// needs a repartition topic first.
    pub(crate) repartition_required: bool,
    _types: std::marker::PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            graph: self.graph.clone(),
            node: self.node,
            repartition_required: self.repartition_required,
            _types: std::marker::PhantomData,
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn new(
        graph: Rc<RefCell<GraphBuilder>>,
        node: usize,
        repartition_required: bool,
    ) -> Self {
        KStream {
            graph,
            node,
            repartition_required,
            _types: std::marker::PhantomData,
        }
    }

    fn then<K2: Data, V2: Data, F>(&self, prefix: &str, key_changed: bool, f: F) -> KStream<K2, V2>
    where
        F: Fn(&mut ProcessorContext<'_, K2, V2>, Record<K, V>) -> Result<(), BoxError>
            + Send
            + Sync
            + 'static,
    {
        let node = self.graph.borrow_mut().add_fn(prefix, &[self.node], f);
        KStream::new(
            self.graph.clone(),
            node,
            self.repartition_required || key_changed,
        )
    }

    /// Keeps the records for which `predicate` is true.
    ///
    /// ```
    /// # use kstreams::dsl::StreamsBuilder;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").filter(|_, amount| *amount > 100).to("large");
    /// ```
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.then("KSTREAM-FILTER", false, move |ctx, r| {
            if predicate(&r.key, &r.value) {
                ctx.forward(r)
            } else {
                Ok(())
            }
        })
    }

    /// Keeps the records for which `predicate` is false.
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Replaces key and value. Marks the stream for repartitioning.
    pub fn map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        self.then("KSTREAM-MAP", true, move |ctx, r| {
            let (key, value) = f(r.key, r.value);
            ctx.forward(Record {
                key,
                value,
                timestamp: r.timestamp,
                headers: r.headers,
            })
        })
    }

    /// Replaces the value; the key (and so the partitioning) stays.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.then("KSTREAM-MAPVALUES", false, move |ctx, r| {
            let value = f(r.value);
            ctx.forward(Record {
                key: r.key,
                value,
                timestamp: r.timestamp,
                headers: r.headers,
            })
        })
    }

    /// Replaces the value, seeing the key.
    pub fn map_values_with_key<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.then("KSTREAM-MAPVALUES", false, move |ctx, r| {
            let value = f(&r.key, r.value);
            ctx.forward(Record {
                key: r.key,
                value,
                timestamp: r.timestamp,
                headers: r.headers,
            })
        })
    }

    /// Replaces each record by zero or more records. Marks the stream for repartitioning.
    pub fn flat_map<K2: Data, V2: Data, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.then("KSTREAM-FLATMAP", true, move |ctx, r| {
            for (key, value) in f(r.key, r.value) {
                ctx.forward(Record {
                    key,
                    value,
                    timestamp: r.timestamp,
                    headers: r.headers.clone(),
                })?;
            }
            Ok(())
        })
    }

    /// Replaces each value by zero or more values under the same key.
    ///
    /// ```
    /// # use kstreams::dsl::StreamsBuilder;
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("lines")
    ///     .flat_map_values(|line| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
    ///     .to("words");
    /// ```
    pub fn flat_map_values<V2: Data, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        self.then("KSTREAM-FLATMAPVALUES", false, move |ctx, r| {
            for value in f(r.value) {
                ctx.forward(Record {
                    key: r.key.clone(),
                    value,
                    timestamp: r.timestamp,
                    headers: r.headers.clone(),
                })?;
            }
            Ok(())
        })
    }

    /// Sets a new key computed from the record. Marks the stream for repartitioning.
    pub fn select_key<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        self.then("KSTREAM-KEY-SELECT", true, move |ctx, r| {
            let key = f(&r.key, &r.value);
            ctx.forward(r.with_key(key))
        })
    }

    /// Calls `f` on each record and passes it on unchanged.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        self.then("KSTREAM-PEEK", false, move |ctx, r| {
            f(&r.key, &r.value);
            ctx.forward(r)
        })
    }

    /// Both streams' records in one stream.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let node = self.graph.borrow_mut().add_fn(
            "KSTREAM-MERGE",
            &[self.node, other.node],
            |ctx, r: Record<K, V>| ctx.forward(r),
        );
        KStream::new(
            self.graph.clone(),
            node,
            self.repartition_required || other.repartition_required,
        )
    }

    /// Splits the stream by predicates: each record goes to the first matching branch.
    ///
    /// ```
    /// # use kstreams::dsl::StreamsBuilder;
    /// let builder = StreamsBuilder::new();
    /// let mut split = builder.stream::<String, i64>("amounts").split();
    /// split.branch(|_, v| *v < 0).to("refunds");
    /// split.branch(|_, v| *v > 1000).to("large");
    /// split.default_branch().to("regular");
    /// ```
    pub fn split(&self) -> BranchedKStream<K, V> {
        let predicates: Arc<Mutex<Vec<Option<Predicate<K, V>>>>> = Arc::new(Mutex::new(Vec::new()));
        let shared = predicates.clone();
        let mut graph = self.graph.borrow_mut();
        let name = graph.next_name("KSTREAM-BRANCH");
        let node = graph.add_processor(
            name,
            NodeKind::Processor,
            &[self.node],
            Vec::new(),
            move || BranchProcessor {
                predicates: shared.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            },
        );
        drop(graph);
        BranchedKStream {
            stream: KStream::new(self.graph.clone(), node, self.repartition_required),
            predicates,
        }
    }

    /// Writes the stream to a topic with the types' default serdes.
    pub fn to(&self, topic: &str)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.to_with(topic, Produced::default())
    }

    /// Writes the stream to a topic as `produced` says.
    pub fn to_with(&self, topic: &str, produced: Produced<K, V>) {
        self.graph.borrow_mut().add_sink(
            self.node,
            TopicChoice::Fixed(TopicRef::External(topic.to_string())),
            produced.key_serde,
            produced.value_serde,
            produced.name,
        );
    }

    /// Writes each record to the topic `topic_of` names for it.
    pub fn to_dynamic(
        &self,
        topic_of: impl Fn(&K, &V) -> String + Send + Sync + 'static,
        produced: Produced<K, V>,
    ) {
        self.graph.borrow_mut().add_sink(
            self.node,
            TopicChoice::Dynamic(Arc::new(topic_of)),
            produced.key_serde,
            produced.value_serde,
            produced.name,
        );
    }

    /// Routes the stream through a repartition topic, so records are partitioned by their
    /// current key.
    pub fn repartition(&self) -> KStream<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.repartition_with(Repartitioned::default())
    }

    /// Routes the stream through a repartition topic as `repartitioned` says.
    pub fn repartition_with(&self, repartitioned: Repartitioned<K, V>) -> KStream<K, V> {
        let mut graph = self.graph.borrow_mut();
        let base = repartitioned
            .name
            .unwrap_or_else(|| graph.next_name("KSTREAM-REPARTITION"));
        if let Some(partitions) = repartitioned.partitions {
            graph.set_repartition_partitions(&base, partitions);
        }
        let node = graph.add_repartition(
            self.node,
            &base,
            repartitioned.key_serde,
            repartitioned.value_serde,
        );
        KStream::new(self.graph.clone(), node, false)
    }

    /// Runs a user [`Processor`] on the stream; `stores` names the state stores (added with
    /// [`StreamsBuilder::add_state_store`](super::StreamsBuilder::add_state_store)) it uses.
    /// `supplier` makes one processor per task. Marks the stream for repartitioning.
    pub fn process<K2: Data, V2: Data, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K2, V2>
    where
        P: Processor<K, V, K2, V2>,
    {
        let mut graph = self.graph.borrow_mut();
        let name = graph.next_name("KSTREAM-PROCESSOR");
        let node = graph.add_processor(
            name,
            NodeKind::Processor,
            &[self.node],
            stores.iter().map(|s| s.to_string()).collect(),
            supplier,
        );
        KStream::new(self.graph.clone(), node, true)
    }

    /// Like [`map`](Self::map), but `f` may fail: the failing record goes to the dead-letter
    /// topic with the error in its headers, and processing goes on.
    pub fn try_map<K2: Data, V2: Data, E: Display>(
        &self,
        f: impl Fn(K, V) -> Result<(K2, V2), E> + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        self.try_flat_map(move |k, v| f(k, v).map(std::iter::once))
    }

    /// Like [`map_values`](Self::map_values), with failures dead-lettered.
    pub fn try_map_values<V2: Data, E: Display>(
        &self,
        f: impl Fn(V) -> Result<V2, E> + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.try_flat_map_values(move |v| f(v).map(std::iter::once))
    }

    /// Like [`filter`](Self::filter), with failures dead-lettered.
    pub fn try_filter<E: Display>(
        &self,
        predicate: impl Fn(&K, &V) -> Result<bool, E> + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.then("KSTREAM-TRY-FILTER", false, move |ctx, r| {
            match predicate(&r.key, &r.value) {
                Ok(true) => ctx.forward(r),
                Ok(false) => Ok(()),
                Err(e) => {
                    ctx.dead_letter(&e);
                    Ok(())
                }
            }
        })
    }

    /// Like [`flat_map`](Self::flat_map), with failures dead-lettered.
    pub fn try_flat_map<K2: Data, V2: Data, I, E: Display>(
        &self,
        f: impl Fn(K, V) -> Result<I, E> + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.then("KSTREAM-TRY-FLATMAP", true, move |ctx, r| {
            match f(r.key, r.value) {
                Ok(records) => {
                    for (key, value) in records {
                        ctx.forward(Record {
                            key,
                            value,
                            timestamp: r.timestamp,
                            headers: r.headers.clone(),
                        })?;
                    }
                    Ok(())
                }
                Err(e) => {
                    ctx.dead_letter(&e);
                    Ok(())
                }
            }
        })
    }

    /// Like [`flat_map_values`](Self::flat_map_values), with failures dead-lettered.
    pub fn try_flat_map_values<V2: Data, I, E: Display>(
        &self,
        f: impl Fn(V) -> Result<I, E> + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        self.then("KSTREAM-TRY-FLATMAPVALUES", false, move |ctx, r| {
            match f(r.value) {
                Ok(values) => {
                    for value in values {
                        ctx.forward(Record {
                            key: r.key.clone(),
                            value,
                            timestamp: r.timestamp,
                            headers: r.headers.clone(),
                        })?;
                    }
                    Ok(())
                }
                Err(e) => {
                    ctx.dead_letter(&e);
                    Ok(())
                }
            }
        })
    }

    /// Groups by the current key, with the types' default serdes.
    pub fn group_by_key(&self) -> KGroupedStream<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.group_by_key_with(Grouped::default())
    }

    /// Groups by the current key, with serdes and name from `grouped`.
    pub fn group_by_key_with(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream::new(
            self.graph.clone(),
            self.node,
            self.repartition_required,
            grouped,
        )
    }

    /// Groups by a key computed from each record (always repartitions).
    pub fn group_by<K2: Data + DefaultSerde>(
        &self,
        key_of: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KGroupedStream<K2, V>
    where
        V: DefaultSerde,
    {
        self.group_by_with(key_of, Grouped::default())
    }

    /// Groups by a computed key, with serdes and name from `grouped`.
    pub fn group_by_with<K2: Data>(
        &self,
        key_of: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        self.select_key(key_of).group_by_key_with(grouped)
    }
}

/// Sends each record to the first branch whose predicate matches.
struct BranchProcessor<K, V> {
    predicates: Vec<Option<Predicate<K, V>>>,
}

impl<K: Data, V: Data> Processor<K, V, K, V> for BranchProcessor<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<(), BoxError> {
        let matched = self
            .predicates
            .iter()
            .position(|p| p.as_ref().is_none_or(|p| p(&record.key, &record.value)));
        match matched {
            Some(index) => ctx.forward_to_index(index, record),
            None => Ok(()),
        }
    }
}

/// The branches of a [`KStream::split`].
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    predicates: Arc<Mutex<Vec<Option<Predicate<K, V>>>>>,
}

impl<K: Data, V: Data> BranchedKStream<K, V> {
    fn add(&mut self, predicate: Option<Predicate<K, V>>) -> KStream<K, V> {
        self.predicates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(predicate);
        self.stream
            .then("KSTREAM-BRANCHCHILD", false, |ctx, r| ctx.forward(r))
    }

    /// A branch of the records that match `predicate` and no earlier branch.
    pub fn branch(
        &mut self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.add(Some(Arc::new(predicate)))
    }

    /// A branch of the records that matched no other branch; closes the split.
    pub fn default_branch(mut self) -> KStream<K, V> {
        self.add(None)
    }
}
