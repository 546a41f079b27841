//! Grouped streams and tables: the step between `group_by` and an aggregation.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::serde::{DefaultSerde, SerdeRef, Serdes};
use crate::topology::NodeKind;

use super::ktable::KTable;
use super::ops::{Adder, Change, ChangeSerde, StreamAggregate, Subtractor, TableAggregate};
use super::{Data, GraphBuilder, Grouped, Materialized};

/// Resolves the store name, adds the store, and returns its name.
pub(crate) fn materialize<K: 'static, V: 'static>(
    graph: &mut GraphBuilder,
    materialized: Materialized<K, V>,
    prefix: &str,
) -> String {
    let name = match materialized.name {
        Some(name) => name,
        None => graph.next_name(prefix),
    };
    let mut builder = crate::state::Stores::key_value_store_builder_with(
        name.clone(),
        materialized.key_serde,
        materialized.value_serde,
    );
    if !materialized.logging {
        builder = builder.with_logging_disabled();
    }
    builder.store_type = materialized.store_type;
    graph.add_store(builder.into_def(true));
    name
}

/// A stream grouped by key, ready to aggregate (Kafka Streams' `KGroupedStream`).
#[derive(Clone)]
pub struct KGroupedStream<K, V> {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
    pub(crate) node: usize,
    pub(crate) repartition_required: bool,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) name: Option<String>,
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    pub(crate) fn new(
        graph: Rc<RefCell<GraphBuilder>>,
        node: usize,
        repartition_required: bool,
        grouped: Grouped<K, V>,
    ) -> Self {
        KGroupedStream {
            graph,
            node,
            repartition_required,
            key_serde: grouped.key_serde,
            value_serde: grouped.value_serde,
            name: grouped.name,
        }
    }

    /// The node whose output is partitioned by the grouping key: the parent itself, or the
    /// source of a repartition topic named after the grouping, the store or the operator.
    pub(crate) fn partitioned_input(&self, graph: &mut GraphBuilder, store_name: &str) -> usize {
        if !self.repartition_required {
            return self.node;
        }
        let base = self.name.clone().unwrap_or_else(|| store_name.to_string());
        graph.add_repartition(
            self.node,
            &base,
            self.key_serde.clone(),
            self.value_serde.clone(),
        )
    }

    fn aggregate_internal<VA: Data>(
        &self,
        adder: Adder<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        let mut graph = self.graph.borrow_mut();
        let key_serde = materialized.key_serde.clone();
        let value_serde = materialized.value_serde.clone();
        let store_name = materialize(&mut graph, materialized, "KSTREAM-AGGREGATE-STATE-STORE");
        let input = self.partitioned_input(&mut graph, &store_name);
        let name = graph.next_name("KSTREAM-AGGREGATE");
        let store = store_name.clone();
        let node = graph.add_processor(
            name,
            NodeKind::Processor,
            &[input],
            vec![store_name.clone()],
            move || StreamAggregate {
                store_name: store.clone(),
                adder: adder.clone(),
                store: None,
            },
        );
        drop(graph);
        KTable::new(
            self.graph.clone(),
            node,
            Some(store_name),
            key_serde,
            value_serde,
        )
    }

    /// Counts records per key.
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::with(self.key_serde.clone(), Serdes::i64()))
    }

    /// Counts records per key into the store `materialized` describes.
    ///
    /// ```
    /// # use kstreams::dsl::{Materialized, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// let counts = builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .count_with(Materialized::named("clicks-per-user"));
    /// assert_eq!(counts.queryable_store_name(), Some("clicks-per-user"));
    /// ```
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate_internal(
            Arc::new(|_, _, count: Option<i64>| count.unwrap_or(0) + 1),
            materialized,
        )
    }

    /// Combines the values of each key with `reducer(aggregate, value)`.
    pub fn reduce(&self, reducer: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V> {
        self.reduce_with(
            reducer,
            Materialized::with(self.key_serde.clone(), self.value_serde.clone()),
        )
    }

    /// Like [`reduce`](Self::reduce), into the store `materialized` describes.
    pub fn reduce_with(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        self.aggregate_internal(
            Arc::new(move |_, value, agg: Option<V>| match agg {
                Some(agg) => reducer(agg, value),
                None => value,
            }),
            materialized,
        )
    }

    /// Folds the values of each key into an aggregate, starting from `initializer()`.
    pub fn aggregate<VA: Data + DefaultSerde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<K, VA> {
        self.aggregate_with(
            initializer,
            aggregator,
            Materialized::with(self.key_serde.clone(), VA::default_serde()),
        )
    }

    /// Like [`aggregate`](Self::aggregate), into the store `materialized` describes.
    pub fn aggregate_with<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        self.aggregate_internal(
            Arc::new(move |key, value, agg: Option<VA>| {
                aggregator(key, value, agg.unwrap_or_else(&initializer))
            }),
            materialized,
        )
    }
}

/// A table re-grouped by a new key, ready to aggregate (Kafka Streams' `KGroupedTable`).
/// Every update subtracts the old value from its old group and adds the new value to its
/// new group.
pub struct KGroupedTable<K, V> {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
    /// Node emitting `Change<V>` records keyed by the new key, before repartitioning.
    pub(crate) node: usize,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) name: Option<String>,
}

impl<K: Data, V: Data> KGroupedTable<K, V> {
    fn aggregate_internal<VA: Data>(
        &self,
        adder: Adder<K, V, VA>,
        subtractor: Subtractor<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        let mut graph = self.graph.borrow_mut();
        let key_serde = materialized.key_serde.clone();
        let value_serde = materialized.value_serde.clone();
        let store_name = materialize(&mut graph, materialized, "KTABLE-AGGREGATE-STATE-STORE");
        let base = self.name.clone().unwrap_or_else(|| store_name.clone());
        let change_serde: SerdeRef<Change<V>> = Arc::new(ChangeSerde(self.value_serde.clone()));
        let input = graph.add_repartition(self.node, &base, self.key_serde.clone(), change_serde);
        let name = graph.next_name("KTABLE-AGGREGATE");
        let store = store_name.clone();
        let node = graph.add_processor(
            name,
            NodeKind::Processor,
            &[input],
            vec![store_name.clone()],
            move || TableAggregate {
                store_name: store.clone(),
                adder: adder.clone(),
                subtractor: subtractor.clone(),
                store: None,
            },
        );
        drop(graph);
        KTable::new(
            self.graph.clone(),
            node,
            Some(store_name),
            key_serde,
            value_serde,
        )
    }

    /// Counts the rows per group.
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::with(self.key_serde.clone(), Serdes::i64()))
    }

    /// Counts the rows per group into the store `materialized` describes.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate_internal(
            Arc::new(|_, _, count: Option<i64>| count.unwrap_or(0) + 1),
            Arc::new(|_, _, count: Option<i64>| Some(count.unwrap_or(0) - 1)),
            materialized,
        )
    }

    /// Combines the rows of each group: `adder(aggregate, new)`, `subtractor(aggregate, old)`.
    pub fn reduce(
        &self,
        adder: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.reduce_with(
            adder,
            subtractor,
            Materialized::with(self.key_serde.clone(), self.value_serde.clone()),
        )
    }

    /// Like [`reduce`](Self::reduce), into the store `materialized` describes.
    pub fn reduce_with(
        &self,
        adder: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        self.aggregate_internal(
            Arc::new(move |_, value, agg: Option<V>| match agg {
                Some(agg) => adder(agg, value),
                None => value,
            }),
            Arc::new(move |_, value, agg: Option<V>| agg.map(|agg| subtractor(agg, value))),
            materialized,
        )
    }

    /// Folds the rows of each group into an aggregate.
    pub fn aggregate<VA: Data + DefaultSerde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<K, VA> {
        self.aggregate_with(
            initializer,
            adder,
            subtractor,
            Materialized::with(self.key_serde.clone(), VA::default_serde()),
        )
    }

    /// Like [`aggregate`](Self::aggregate), into the store `materialized` describes.
    pub fn aggregate_with<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        let initializer = Arc::new(initializer);
        let init = initializer.clone();
        self.aggregate_internal(
            Arc::new(move |key, value, agg: Option<VA>| {
                adder(key, value, agg.unwrap_or_else(|| init()))
            }),
            Arc::new(move |key, value, agg: Option<VA>| {
                Some(subtractor(key, value, agg.unwrap_or_else(|| initializer())))
            }),
            materialized,
        )
    }
}
