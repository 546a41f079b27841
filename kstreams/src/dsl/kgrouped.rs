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
    builder.caching = materialized.caching;
    graph.add_store(builder.into_def(true));
    name
}

/// A stream grouped by key, ready to aggregate (Kafka Streams' `KGroupedStream`).
///
/// Made by [`KStream::group_by_key`](super::KStream::group_by_key) and
/// [`KStream::group_by`](super::KStream::group_by); `count`, `reduce` and `aggregate` make a
/// [`KTable`], `windowed_by*` a windowed stream.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// let by_user = builder.stream::<String, i64>("purchases").group_by_key();
/// by_user.count_with(Materialized::named("purchases-per-user"));
/// by_user.reduce_with(|a, b| a.max(b), Materialized::named("largest-purchase"));
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("g")).unwrap();
/// let purchases = driver.create_input_topic::<String, i64>("purchases");
/// purchases.pipe_input_at("ann".into(), 30, 0);
/// purchases.pipe_input_at("ann".into(), 12, 1);
/// let ann = "ann".to_string();
/// assert_eq!(driver.key_value_store::<String, i64>("purchases-per-user").unwrap().get(&ann).unwrap(), Some(2));
/// assert_eq!(driver.key_value_store::<String, i64>("largest-purchase").unwrap().get(&ann).unwrap(), Some(30));
/// ```
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
            move || StreamAggregate::new(store.clone(), adder.clone()),
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
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("logins").group_by_key().count().to_stream().to("login-counts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("c")).unwrap();
    /// let logins = driver.create_input_topic::<String, String>("logins");
    /// logins.pipe_input_at("ann".into(), "web".into(), 0);
    /// logins.pipe_input_at("bob".into(), "app".into(), 1);
    /// logins.pipe_input_at("ann".into(), "app".into(), 2);
    /// let counts = driver.create_output_topic::<String, Option<i64>>("login-counts");
    /// assert_eq!(counts.read_key_values_to_map()["ann"], Some(2));
    /// ```
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

    /// Combines the values of each key with `reducer(aggregate, value)`; a key's first value
    /// is its first aggregate.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("temperatures")
    ///     .group_by_key()
    ///     .reduce(|low, t| low.min(t))
    ///     .to_stream()
    ///     .to("lowest");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let temps = driver.create_input_topic::<String, i64>("temperatures");
    /// for (t, celsius) in [21, 17, 19].into_iter().enumerate() {
    ///     temps.pipe_input_at("oslo".into(), celsius, t as i64);
    /// }
    /// let lowest = driver.create_output_topic::<String, Option<i64>>("lowest");
    /// assert_eq!(lowest.read_values_to_list(), vec![Some(21), Some(17), Some(17)]);
    /// ```
    pub fn reduce(&self, reducer: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V> {
        self.reduce_with(
            reducer,
            Materialized::with(self.key_serde.clone(), self.value_serde.clone()),
        )
    }

    /// Like [`reduce`](Self::reduce), into the store `materialized` describes (see
    /// [`KGroupedStream`] for an example).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("visits") // user -> page
    ///     .group_by_key()
    ///     .reduce_with(|pages, page| format!("{pages},{page}"), Materialized::named("trails"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let visits = driver.create_input_topic::<String, String>("visits");
    /// visits.pipe_input_at("ann".into(), "/".into(), 0);
    /// visits.pipe_input_at("ann".into(), "/cart".into(), 1);
    /// let pages = driver.key_value_store::<String, String>("trails").unwrap();
    /// assert_eq!(pages.get(&"ann".to_string()).unwrap(), Some("/,/cart".to_string()));
    /// ```
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
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("page-views") // user -> page
    ///     .group_by_key()
    ///     .aggregate(String::new, |_user, page, trail| {
    ///         if trail.is_empty() { page } else { format!("{trail} > {page}") }
    ///     })
    ///     .to_stream()
    ///     .to("trails");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("a")).unwrap();
    /// let views = driver.create_input_topic::<String, String>("page-views");
    /// views.pipe_input_at("ann".into(), "/".into(), 0);
    /// views.pipe_input_at("ann".into(), "/cart".into(), 1);
    /// let trails = driver.create_output_topic::<String, Option<String>>("trails");
    /// assert_eq!(trails.read_values_to_list().pop(), Some(Some("/ > /cart".to_string())));
    /// ```
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
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("orders") // customer -> amount
    ///     .group_by_key()
    ///     .aggregate_with(|| 0i64, |_customer, amount, total| total + amount,
    ///         Materialized::named("spend"))
    ///     .to_stream()
    ///     .to("spend-per-customer");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("spend")).unwrap();
    /// let orders = driver.create_input_topic::<String, i64>("orders");
    /// orders.pipe_input_at("ann".into(), 30, 1);
    /// orders.pipe_input_at("ann".into(), 12, 2);
    /// let totals = driver.create_output_topic::<String, Option<i64>>("spend-per-customer");
    /// assert_eq!(totals.read_values_to_list(), vec![Some(30), Some(42)]);
    /// let spend = driver.timestamped_key_value_store::<String, i64>("spend").unwrap();
    /// let ann = spend.get(&"ann".to_string()).unwrap().unwrap();
    /// assert_eq!((ann.value, ann.timestamp), (42, 2)); // the latest timestamp aggregated
    /// ```
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
///
/// Made by [`KTable::group_by`]; see there for a `count`.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder
///     .table::<String, i64>("account-balances", Materialized::default()) // account -> cents
///     .group_by(|account, cents| (account.split('/').next().unwrap_or("").to_string(), *cents))
///     .reduce_with(|sum, cents| sum + cents, |sum, cents| sum - cents, Materialized::named("per-bank"));
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
/// let balances = driver.create_input_topic::<String, Option<i64>>("account-balances");
/// balances.pipe_input_at("acme/1".into(), Some(100), 0);
/// balances.pipe_input_at("acme/2".into(), Some(50), 1);
/// balances.pipe_input_at("acme/1".into(), Some(70), 2); // replaces 100
/// balances.pipe_input_at("acme/2".into(), None, 3); // removes 50
/// let per_bank = driver.key_value_store::<String, i64>("per-bank").unwrap();
/// assert_eq!(per_bank.get(&"acme".to_string()).unwrap(), Some(70));
/// ```
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
            move || TableAggregate::new(store.clone(), adder.clone(), subtractor.clone()),
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

    /// Counts the rows per group (see [`KTable::group_by`] for an example). A group whose
    /// last row left stays at `0`.
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
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("c")).unwrap();
    /// let regions = driver.create_input_topic::<String, Option<String>>("user-regions");
    /// regions.pipe_input_at("ann".into(), Some("eu".into()), 0);
    /// regions.pipe_input_at("ann".into(), None, 1); // ann leaves
    /// let counts = driver.create_output_topic::<String, Option<i64>>("users-per-region");
    /// assert_eq!(counts.read_values_to_list(), vec![Some(1), Some(0)]);
    /// ```
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::with(self.key_serde.clone(), Serdes::i64()))
    }

    /// Counts the rows per group into the store `materialized` describes.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("user-regions", Materialized::default())
    ///     .group_by(|user, region| (region.clone(), user.clone()))
    ///     .count_with(Materialized::named("users-per-region"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("c")).unwrap();
    /// let regions = driver.create_input_topic::<String, Option<String>>("user-regions");
    /// regions.pipe_input_at("ann".into(), Some("eu".into()), 0);
    /// regions.pipe_input_at("ann".into(), None, 1);
    /// let counts = driver.key_value_store::<String, i64>("users-per-region").unwrap();
    /// assert_eq!(counts.get(&"eu".to_string()).unwrap(), Some(0));
    /// ```
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate_internal(
            Arc::new(|_, _, count: Option<i64>| count.unwrap_or(0) + 1),
            Arc::new(|_, _, count: Option<i64>| Some(count.unwrap_or(0) - 1)),
            materialized,
        )
    }

    /// Combines the rows of each group: `adder(aggregate, new)`, `subtractor(aggregate, old)`
    /// (see [`KGroupedTable`] for an example).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, i64>("stock", Materialized::default()) // "warehouse/sku" -> units
    ///     .group_by(|slot, units| (slot.split('/').nth(1).unwrap_or("").to_string(), *units))
    ///     .reduce(|total, units| total + units, |total, units| total - units)
    ///     .to_stream()
    ///     .to("units-per-sku");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let stock = driver.create_input_topic::<String, Option<i64>>("stock");
    /// stock.pipe_input_at("berlin/mouse".into(), Some(5), 0);
    /// stock.pipe_input_at("paris/mouse".into(), Some(3), 1);
    /// stock.pipe_input_at("berlin/mouse".into(), Some(4), 2); // 5 out, 4 in
    /// let totals = driver.create_output_topic::<String, Option<i64>>("units-per-sku");
    /// assert_eq!(totals.read_key_values_to_map()["mouse"], Some(7));
    /// ```
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
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, i64>("stock", Materialized::default()) // "warehouse/sku" -> units
    ///     .group_by(|slot, units| (slot.split('/').nth(1).unwrap_or("").to_string(), *units))
    ///     .reduce_with(|total, units| total + units, |total, units| total - units,
    ///         Materialized::named("units-per-sku"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let stock = driver.create_input_topic::<String, Option<i64>>("stock");
    /// stock.pipe_input_at("berlin/mouse".into(), Some(5), 0);
    /// stock.pipe_input_at("paris/mouse".into(), Some(3), 1);
    /// stock.pipe_input_at("paris/mouse".into(), None, 2); // paris sold out
    /// let units = driver.key_value_store::<String, i64>("units-per-sku").unwrap();
    /// assert_eq!(units.get(&"mouse".to_string()).unwrap(), Some(5));
    /// ```
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

    /// Folds the rows of each group into an aggregate: `adder` adds a row's new value,
    /// `subtractor` takes out its old one; both start from `initializer()` for a new group.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("user-regions", Materialized::default())
    ///     .group_by(|user, region| (region.clone(), user.clone()))
    ///     .aggregate(
    ///         String::new,
    ///         |_region, user, list| if list.is_empty() { user } else { format!("{list},{user}") },
    ///         |_region, user, list| {
    ///             list.split(',').filter(|u| *u != user).collect::<Vec<_>>().join(",")
    ///         },
    ///     )
    ///     .to_stream()
    ///     .to("region-users");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("a")).unwrap();
    /// let regions = driver.create_input_topic::<String, Option<String>>("user-regions");
    /// regions.pipe_input_at("ann".into(), Some("eu".into()), 0);
    /// regions.pipe_input_at("bob".into(), Some("eu".into()), 1);
    /// regions.pipe_input_at("ann".into(), Some("us".into()), 2);
    /// let users = driver.create_output_topic::<String, Option<String>>("region-users");
    /// let latest = users.read_key_values_to_map();
    /// assert_eq!(latest["eu"], Some("bob".to_string()));
    /// assert_eq!(latest["us"], Some("ann".to_string()));
    /// ```
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
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, i64>("ages", Materialized::default()) // user -> age
    ///     .group_by(|_user, age| ("all".to_string(), *age))
    ///     .aggregate_with(
    ///         || (0i64, 0i64), // (sum, count), for an average
    ///         |_, age, (sum, n)| (sum + age, n + 1),
    ///         |_, age, (sum, n)| (sum - age, n - 1),
    ///         Materialized::with(Serdes::string(), Serdes::json()).with_name("age-stats"),
    ///     );
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("a")).unwrap();
    /// let ages = driver.create_input_topic::<String, Option<i64>>("ages");
    /// ages.pipe_input_at("ann".into(), Some(30), 0);
    /// ages.pipe_input_at("bob".into(), Some(40), 1);
    /// ages.pipe_input_at("ann".into(), Some(32), 2); // a birthday: 30 out, 32 in
    /// let stats = driver.key_value_store::<String, (i64, i64)>("age-stats").unwrap();
    /// assert_eq!(stats.get(&"all".to_string()).unwrap(), Some((72, 2)));
    /// ```
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
