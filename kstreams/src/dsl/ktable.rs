//! [`KTable`]: a changelog stream seen as a table, the latest value per key.
//!
//! Table operators pass changes (new value and the value it replaced) downstream, so an
//! aggregation of a table can subtract what a key used to contribute.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::serde::{DefaultSerde, SerdeRef, Serdes};
use crate::topology::{NodeKind, TopicRef};

use super::kgrouped::{materialize, KGroupedTable};
use super::kstream::KStream;
use super::ops::{Change, TableRepartitionMap, TableSource, TableTransform};
use super::{Consumed, Data, GraphBuilder, Grouped, Materialized};

/// A table: for each key, its latest value (Kafka Streams' `KTable`).
///
/// Made by [`StreamsBuilder::table`](super::StreamsBuilder::table) and by every aggregation.
/// Handles are cheap to clone.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// let users = builder.table::<String, String>("users", Materialized::named("users"));
/// users.map_values(|_id, name| name.to_uppercase()).to_stream().to("users-upper");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
/// let input = driver.create_input_topic::<String, Option<String>>("users");
/// input.pipe_input_at("u1".into(), Some("ann".into()), 0);
/// input.pipe_input_at("u1".into(), None, 1);
/// let out = driver.create_output_topic::<String, Option<String>>("users-upper");
/// assert_eq!(out.read_values_to_list(), vec![Some("ANN".to_string()), None]);
/// ```
pub struct KTable<K, V> {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
    /// Node emitting `Change<V>` records.
    pub(crate) node: usize,
    /// The store holding this table's current values, when materialized.
    pub(crate) store: Option<String>,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            graph: self.graph.clone(),
            node: self.node,
            store: self.store.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

/// A table source's extractor: tombstones keep their record timestamp.
pub(crate) fn table_extractor<K: Data, V: Data>(
    extractor: Option<super::TimestampExtractor<K, V>>,
) -> Option<super::TimestampExtractor<K, Option<V>>> {
    extractor.map(|f| {
        Arc::new(move |k: &K, v: &Option<V>, ts: i64| match v {
            Some(v) => f(k, v, ts),
            None => ts,
        }) as super::TimestampExtractor<K, Option<V>>
    })
}

pub(crate) fn table_from_topic<K: Data, V: Data>(
    graph: &Rc<RefCell<GraphBuilder>>,
    topic: &str,
    consumed: Consumed<K, V>,
    materialized: Materialized<K, V>,
) -> KTable<K, V> {
    let mut g = graph.borrow_mut();
    let key_serde = materialized.key_serde.clone();
    let value_serde = materialized.value_serde.clone();
    let extractor = table_extractor(consumed.timestamp_extractor);
    let source = g.add_source(
        vec![TopicRef::External(topic.to_string())],
        consumed.key_serde,
        Serdes::optional(consumed.value_serde),
        extractor,
        consumed.name,
        true,
    );
    let store_name = materialize(&mut g, materialized, "KTABLE-SOURCE-STATE-STORE");
    let name = g.next_name("KTABLE-SOURCE");
    let store = store_name.clone();
    let node = g.add_processor(
        name,
        NodeKind::Processor,
        &[source],
        vec![store_name.clone()],
        move || TableSource::<K, V> {
            store_name: store.clone(),
            store: None,
        },
    );
    drop(g);
    KTable::new(
        graph.clone(),
        node,
        Some(store_name),
        key_serde,
        value_serde,
    )
}

impl<K: Data, V: Data> KTable<K, V> {
    pub(crate) fn new(
        graph: Rc<RefCell<GraphBuilder>>,
        node: usize,
        store: Option<String>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> Self {
        KTable {
            graph,
            node,
            store,
            key_serde,
            value_serde,
        }
    }

    /// The name of the store that holds this table, for interactive queries and
    /// [`TestDriver::key_value_store`](crate::testing::TestDriver::key_value_store).
    /// `None` for a table derived without [`Materialized`] (by `filter` or `map_values`).
    ///
    /// ```
    /// use kstreams::dsl::{Materialized, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// let users = builder.table::<String, String>("users", Materialized::named("users"));
    /// assert_eq!(users.queryable_store_name(), Some("users"));
    /// assert_eq!(users.filter(|_, name| !name.is_empty()).queryable_store_name(), None);
    /// ```
    pub fn queryable_store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    fn transform<V2: Data>(
        &self,
        prefix: &str,
        f: Arc<dyn Fn(&K, V) -> Option<V2> + Send + Sync>,
        materialized: Option<Materialized<K, V2>>,
        value_serde: SerdeRef<V2>,
    ) -> KTable<K, V2> {
        let mut graph = self.graph.borrow_mut();
        let store_name =
            materialized.map(|m| materialize(&mut graph, m, &format!("{prefix}-STATE-STORE")));
        let name = graph.next_name(prefix);
        let stores = store_name.iter().cloned().collect();
        let store = store_name.clone();
        let node =
            graph.add_processor(name, NodeKind::Processor, &[self.node], stores, move || {
                TableTransform {
                    f: f.clone(),
                    store_name: store.clone(),
                    store: None,
                }
            });
        drop(graph);
        KTable::new(
            self.graph.clone(),
            node,
            store_name,
            self.key_serde.clone(),
            value_serde,
        )
    }

    /// The rows for which `predicate` is true. A row that stops matching is deleted
    /// downstream.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, i64>("balances", Materialized::named("balances"))
    ///     .filter(|_, cents| *cents < 0)
    ///     .to_stream()
    ///     .to("overdrawn");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("bank")).unwrap();
    /// let balances = driver.create_input_topic::<String, Option<i64>>("balances");
    /// balances.pipe_input_at("acct".into(), Some(-5), 0);
    /// balances.pipe_input_at("acct".into(), Some(10), 1); // no longer matches: deleted downstream
    /// let out = driver.create_output_topic::<String, Option<i64>>("overdrawn");
    /// assert_eq!(out.read_values_to_list(), vec![Some(-5), None]);
    /// let store = driver.key_value_store::<String, i64>("balances").unwrap();
    /// assert_eq!(store.get(&"acct".to_string()).unwrap(), Some(10));
    /// ```
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        let f = Arc::new(move |k: &K, v: V| predicate(k, &v).then_some(v));
        self.transform("KTABLE-FILTER", f, None, self.value_serde.clone())
    }

    /// The rows for which `predicate` is false.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("accounts", Materialized::default())
    ///     .filter_not(|_, status| status == "closed")
    ///     .to_stream()
    ///     .to("open-accounts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("f")).unwrap();
    /// let accounts = driver.create_input_topic::<String, Option<String>>("accounts");
    /// accounts.pipe_input_at("a".into(), Some("open".into()), 0);
    /// accounts.pipe_input_at("b".into(), Some("closed".into()), 1);
    /// let out = driver.create_output_topic::<String, Option<String>>("open-accounts");
    /// assert_eq!(out.read_key_values_to_list(), vec![("a".to_string(), Some("open".to_string()))]);
    /// ```
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Like [`filter`](Self::filter), with the result kept in a queryable store.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("accounts", Materialized::default())
    ///     .filter_with(|_, status| status == "active", Materialized::named("active-accounts"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("f")).unwrap();
    /// let accounts = driver.create_input_topic::<String, Option<String>>("accounts");
    /// accounts.pipe_input_at("a".into(), Some("active".into()), 0);
    /// accounts.pipe_input_at("b".into(), Some("closed".into()), 1);
    /// let active = driver.key_value_store::<String, String>("active-accounts").unwrap();
    /// assert_eq!(active.all().unwrap(), vec![("a".to_string(), "active".to_string())]);
    /// ```
    pub fn filter_with(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let f = Arc::new(move |k: &K, v: V| predicate(k, &v).then_some(v));
        let serde = materialized.value_serde.clone();
        self.transform("KTABLE-FILTER", f, Some(materialized), serde)
    }

    /// Maps each row's value (see [`KTable`] for an example).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let labels = builder
    ///     .table::<String, i64>("prices", Materialized::default()) // sku -> cents
    ///     .map_values(|sku, cents| format!("{sku}: {}.{:02}", cents / 100, cents % 100));
    /// assert_eq!(labels.queryable_store_name(), None); // not materialized
    /// labels.to_stream().to("price-labels");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("m")).unwrap();
    /// let prices = driver.create_input_topic::<String, Option<i64>>("prices");
    /// prices.pipe_input_at("mouse".into(), Some(1999), 0);
    /// prices.pipe_input_at("mouse".into(), None, 1); // deletes pass through unmapped
    /// let out = driver.create_output_topic::<String, Option<String>>("price-labels");
    /// assert_eq!(out.read_values_to_list(), vec![Some("mouse: 19.99".to_string()), None]);
    /// ```
    pub fn map_values<V2: Data + DefaultSerde>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let f = Arc::new(move |k: &K, v: V| Some(f(k, v)));
        self.transform("KTABLE-MAPVALUES", f, None, V2::default_serde())
    }

    /// Like [`map_values`](Self::map_values), with the result kept in a queryable store.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("users", Materialized::default())
    ///     .map_values_with(|_, name| name.len() as i64, Materialized::named("name-lengths"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("m")).unwrap();
    /// driver.create_input_topic::<String, Option<String>>("users")
    ///     .pipe_input_at("u1".into(), Some("Ann".into()), 0);
    /// let lengths = driver.key_value_store::<String, i64>("name-lengths").unwrap();
    /// assert_eq!(lengths.get(&"u1".to_string()).unwrap(), Some(3));
    /// ```
    pub fn map_values_with<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
        materialized: Materialized<K, V2>,
    ) -> KTable<K, V2> {
        let f = Arc::new(move |k: &K, v: V| Some(f(k, v)));
        let serde = materialized.value_serde.clone();
        self.transform("KTABLE-MAPVALUES", f, Some(materialized), serde)
    }

    /// The table's changes as a stream: `Some(value)` for an update, `None` for a delete.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, i64>("stock", Materialized::default())
    ///     .to_stream()
    ///     .map_values(|level| level.map_or("deleted".to_string(), |n| n.to_string()))
    ///     .to("stock-log");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// let stock = driver.create_input_topic::<String, Option<i64>>("stock");
    /// stock.pipe_input_at("mouse".into(), Some(3), 0);
    /// stock.pipe_input_at("mouse".into(), None, 1);
    /// let log = driver.create_output_topic::<String, String>("stock-log");
    /// assert_eq!(log.read_values_to_list(), vec!["3".to_string(), "deleted".to_string()]);
    /// ```
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let node = self.graph.borrow_mut().add_fn(
            "KTABLE-TOSTREAM",
            &[self.node],
            |ctx, r: crate::processor::Record<K, Change<V>>| {
                let value = r.value.new;
                ctx.forward(crate::processor::Record {
                    key: r.key,
                    value,
                    timestamp: r.timestamp,
                    headers: r.headers,
                })
            },
        );
        KStream::new(self.graph.clone(), node, false)
    }

    /// Re-groups the rows by a new key (and value), with default serdes. Always repartitions;
    /// an update that moves a row to another group is subtracted from the old group and
    /// added to the new one.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("user-regions", Materialized::default())
    ///     .group_by(|user, region| (region.clone(), user.clone()))
    ///     .count()
    ///     .to_stream()
    ///     .to("users-per-region");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("g")).unwrap();
    /// let regions = driver.create_input_topic::<String, Option<String>>("user-regions");
    /// regions.pipe_input_at("ann".into(), Some("eu".into()), 0);
    /// regions.pipe_input_at("bob".into(), Some("eu".into()), 1);
    /// regions.pipe_input_at("ann".into(), Some("us".into()), 2); // ann moves
    /// let counts = driver.create_output_topic::<String, Option<i64>>("users-per-region");
    /// assert_eq!(counts.read_key_values_to_list(), vec![
    ///     ("eu".to_string(), Some(1)), ("eu".to_string(), Some(2)),
    ///     ("eu".to_string(), Some(1)), ("us".to_string(), Some(1))]);
    /// ```
    pub fn group_by<K2, V2>(
        &self,
        selector: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KGroupedTable<K2, V2>
    where
        K2: Data + PartialEq + DefaultSerde,
        V2: Data + DefaultSerde,
    {
        self.group_by_with(selector, Grouped::default())
    }

    /// Re-groups the rows by a new key, with serdes and name from `grouped`; the name names
    /// the repartition topic (see [`Grouped`] for an example).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("user-regions", Materialized::default())
    ///     .group_by_with(|user, region| (region.clone(), user.clone()), Grouped::named("regions"))
    ///     .count_with(Materialized::named("users-per-region"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("g")).unwrap();
    /// let regions = driver.create_input_topic::<String, Option<String>>("user-regions");
    /// regions.pipe_input_at("ann".into(), Some("eu".into()), 0);
    /// regions.pipe_input_at("bob".into(), Some("eu".into()), 1);
    /// let counts = driver.key_value_store::<String, i64>("users-per-region").unwrap();
    /// assert_eq!(counts.get(&"eu".to_string()).unwrap(), Some(2));
    /// assert!(driver.produced_topic_names().contains(&"g-regions-repartition".to_string()));
    /// ```
    pub fn group_by_with<K2: Data + PartialEq, V2: Data>(
        &self,
        selector: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
        grouped: Grouped<K2, V2>,
    ) -> KGroupedTable<K2, V2> {
        let selector: Arc<dyn Fn(&K, &V) -> (K2, V2) + Send + Sync> = Arc::new(selector);
        let mut graph = self.graph.borrow_mut();
        let name = graph.next_name("KTABLE-SELECT");
        let node = graph.add_processor(
            name,
            NodeKind::Processor,
            &[self.node],
            Vec::new(),
            move || TableRepartitionMap {
                selector: selector.clone(),
            },
        );
        drop(graph);
        KGroupedTable {
            graph: self.graph.clone(),
            node,
            key_serde: grouped.key_serde,
            value_serde: grouped.value_serde,
            name: grouped.name,
        }
    }
}
