//! [`GlobalKTable`]: a table replicated in full to every task, so a stream can join it by
//! any key without repartitioning.
//!
//! A global table's store is filled by one global task that reads every partition of the
//! topic; it has no changelog (the topic itself is restored from). Every stream task reads
//! the same store.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::serde::{DefaultSerde, Serdes};
use crate::state::Stores;
use crate::topology::{NodeKind, TopicRef};

use super::joins::{mapped_key, StreamTableJoin, StreamTableJoiner};
use super::kstream::KStream;
use super::ops::TableSource;
use super::{Consumed, Data, Materialized, StreamsBuilder};

/// A table of a topic with every partition in every task (Kafka Streams' `GlobalKTable`).
///
/// Made by [`StreamsBuilder::global_table`]; streams join it with
/// [`KStream::join_global`] by a key computed from each record.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// let products = builder.global_table::<String, String>("products", Materialized::named("products"));
/// assert_eq!(products.queryable_store_name(), "products");
/// let topology = builder.build().unwrap();
/// assert!(topology.describe().to_string().contains("for global store (will not generate tasks)"));
/// let driver = TestDriver::new(&topology, StreamsConfig::new("g")).unwrap();
/// driver.create_input_topic::<String, Option<String>>("products")
///     .pipe_input_at("p1".into(), Some("Kettle".into()), 0);
/// let store = driver.key_value_store::<String, String>("products").unwrap();
/// assert_eq!(store.get(&"p1".to_string()).unwrap(), Some("Kettle".to_string()));
/// ```
pub struct GlobalKTable<K, V> {
    store: String,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        GlobalKTable {
            store: self.store.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of the store holding the table.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let named = builder.global_table::<String, String>("items", Materialized::named("items"));
    /// let unnamed = builder.global_table::<String, i64>("prices", Materialized::default());
    /// assert_eq!(named.queryable_store_name(), "items");
    /// assert!(unnamed.queryable_store_name().starts_with("GLOBALKTABLE-STATE-STORE-"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("g")).unwrap();
    /// let prices = driver.create_input_topic::<String, Option<i64>>("prices");
    /// prices.pipe_input_at("p1".into(), Some(25), 0);
    /// let prices = driver.key_value_store::<String, i64>(unnamed.queryable_store_name()).unwrap();
    /// assert_eq!(prices.get(&"p1".to_string()).unwrap(), Some(25));
    /// ```
    pub fn queryable_store_name(&self) -> &str {
        &self.store
    }
}

impl StreamsBuilder {
    /// A global table of a topic, with the types' default serdes (see [`GlobalKTable`] for
    /// an example). Its store has no changelog: the topic itself is read to fill it.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.global_table::<String, String>("products", Materialized::named("products"));
    /// let topology = builder.build().unwrap();
    /// assert!(topology.describe().internal_topics.is_empty()); // no changelog
    /// let driver = TestDriver::new(&topology, StreamsConfig::new("g")).unwrap();
    /// let input = driver.create_input_topic::<String, Option<String>>("products");
    /// input.pipe_input_at("p1".into(), Some("Kettle".into()), 0);
    /// input.pipe_input_at("p2".into(), Some("Mug".into()), 1);
    /// input.pipe_input_at("p1".into(), None, 2); // a tombstone deletes the row
    /// let products = driver.key_value_store::<String, String>("products").unwrap();
    /// assert_eq!(products.all().unwrap(), vec![("p2".to_string(), "Mug".to_string())]);
    /// assert!(driver.produced_topic_names().is_empty());
    /// ```
    pub fn global_table<K: DefaultSerde + Data, V: DefaultSerde + Data>(
        &self,
        topic: &str,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V> {
        self.global_table_with(topic, Consumed::default(), materialized)
    }

    /// A global table of a topic, read with the serdes and the timestamp extractor of
    /// `consumed` (the extracted timestamp is the one stored with each value).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// // Each value is the time (ms) a contract takes effect: that is its event time.
    /// builder.global_table_with(
    ///     "contracts",
    ///     Consumed::<String, i64>::default().with_timestamp_extractor(|_id, effective, _ts| *effective),
    ///     Materialized::named("contracts"),
    /// );
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("g")).unwrap();
    /// driver
    ///     .create_input_topic::<String, i64>("contracts")
    ///     .pipe_input_at("c-1".into(), 1_000, 5);
    /// let contracts = driver.timestamped_key_value_store::<String, i64>("contracts").unwrap();
    /// let stored = contracts.get(&"c-1".to_string()).unwrap().unwrap();
    /// assert_eq!((stored.value, stored.timestamp), (1_000, 1_000));
    /// ```
    pub fn global_table_with<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V> {
        let mut graph = self.graph.borrow_mut();
        let source = graph.add_source(
            vec![TopicRef::External(topic.to_string())],
            consumed.key_serde,
            Serdes::optional(consumed.value_serde),
            super::ktable::table_extractor(consumed.timestamp_extractor),
            consumed.name,
            true,
        );
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| graph.next_name("GLOBALKTABLE-STATE-STORE"));
        let mut def = Stores::key_value_store_builder_with(
            store.clone(),
            materialized.key_serde,
            materialized.value_serde,
        )
        .with_logging_disabled()
        .into_def(true);
        def.global = true;
        graph.add_store(def);
        let name = graph.next_name("KTABLE-SOURCE");
        let store_name = store.clone();
        let node = graph.add_processor(
            name,
            NodeKind::Processor,
            &[source],
            vec![store.clone()],
            move || TableSource::<K, V> {
                store_name: store_name.clone(),
                store: None,
            },
        );
        graph.mark_global(source);
        graph.mark_global(node);
        GlobalKTable {
            store,
            _types: PhantomData,
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    fn join_global_internal<KG: Data, VG: Data, VR: Data>(
        &self,
        table: &GlobalKTable<KG, VG>,
        prefix: &str,
        key_of: Arc<dyn Fn(&K, &V) -> KG + Send + Sync>,
        joiner: StreamTableJoiner<V, VG, VR>,
    ) -> KStream<K, VR> {
        let mut graph = self.graph.borrow_mut();
        let name = graph.next_name(prefix);
        let store_name = table.store.clone();
        let node = graph.add_processor(
            name,
            NodeKind::Processor,
            &[self.node],
            vec![table.store.clone()],
            move || StreamTableJoin {
                store_name: store_name.clone(),
                lookup: mapped_key(key_of.clone()),
                joiner: joiner.clone(),
                store: None,
            },
        );
        drop(graph);
        // The key is unchanged and the lookup needs no co-partitioning.
        KStream::new(self.graph.clone(), node, self.repartition_required)
    }

    /// Joins each record with the global table's row for `key_of(key, value)`; records
    /// without a row are dropped.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let products = builder.global_table::<String, String>("products", Materialized::default());
    /// builder
    ///     .stream::<String, String>("order-lines") // order id -> product id
    ///     .join_global(&products, |_, product| product.clone(), |product, name| format!("{product}={name}"))
    ///     .to("named-lines");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("g")).unwrap();
    /// driver.create_input_topic::<String, Option<String>>("products")
    ///     .pipe_input_at("p1".into(), Some("Kettle".into()), 0);
    /// driver.create_input_topic::<String, String>("order-lines").pipe_input_at("o1".into(), "p1".into(), 1);
    /// let out = driver.create_output_topic::<String, String>("named-lines");
    /// assert_eq!(out.read_key_value(), Some(("o1".to_string(), "p1=Kettle".to_string())));
    /// ```
    pub fn join_global<KG: Data, VG: Data, VR: Data>(
        &self,
        table: &GlobalKTable<KG, VG>,
        key_of: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(V, &VG) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let joiner: StreamTableJoiner<V, VG, VR> =
            Arc::new(move |v, row| row.map(|row| joiner(v, row)));
        self.join_global_internal(table, "KSTREAM-JOIN-GLOBAL", Arc::new(key_of), joiner)
    }

    /// Like [`join_global`](Self::join_global), joining records without a row with `None`.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let products = builder.global_table::<String, String>("products", Materialized::default());
    /// builder
    ///     .stream::<String, String>("order-lines") // order id -> product id
    ///     .left_join_global(&products, |_, product| product.clone(), |product, name| {
    ///         format!("{product}={}", name.map_or("?", String::as_str))
    ///     })
    ///     .to("named-lines");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("g")).unwrap();
    /// driver.create_input_topic::<String, String>("order-lines").pipe_input_at("o1".into(), "p9".into(), 1);
    /// let out = driver.create_output_topic::<String, String>("named-lines");
    /// assert_eq!(out.read_key_value(), Some(("o1".to_string(), "p9=?".to_string())));
    /// ```
    pub fn left_join_global<KG: Data, VG: Data, VR: Data>(
        &self,
        table: &GlobalKTable<KG, VG>,
        key_of: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(V, Option<&VG>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let joiner: StreamTableJoiner<V, VG, VR> = Arc::new(move |v, row| Some(joiner(v, row)));
        self.join_global_internal(table, "KSTREAM-LEFTJOIN-GLOBAL", Arc::new(key_of), joiner)
    }
}
