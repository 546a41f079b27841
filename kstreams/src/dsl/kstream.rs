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
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// let orders = builder.stream::<String, i64>("orders");
/// orders.filter(|_, amount| *amount >= 100).to("big-orders");
/// orders.map_values(|amount| amount * 2).to("doubled");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("k")).unwrap();
/// driver.create_input_topic::<String, i64>("orders").pipe_input_at("o".into(), 150, 0);
/// assert_eq!(driver.create_output_topic::<String, i64>("big-orders").read_value(), Some(150));
/// assert_eq!(driver.create_output_topic::<String, i64>("doubled").read_value(), Some(300));
/// ```
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
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("lines").filter_not(|_, line| line.starts_with('#')).to("code");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("f")).unwrap();
    /// let lines = driver.create_input_topic::<String, String>("lines");
    /// lines.pipe_input_at("1".into(), "# comment".into(), 0);
    /// lines.pipe_input_at("2".into(), "let x = 1;".into(), 1);
    /// let code = driver.create_output_topic::<String, String>("code");
    /// assert_eq!(code.read_values_to_list(), vec!["let x = 1;".to_string()]);
    /// ```
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Replaces key and value. Marks the stream for repartitioning.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("emails") // user -> address
    ///     .map(|user, address| (address.to_lowercase(), user))
    ///     .to("users-by-address");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("m")).unwrap();
    /// driver.create_input_topic::<String, String>("emails")
    ///     .pipe_input_at("ann".into(), "Ann@X.org".into(), 0);
    /// let out = driver.create_output_topic::<String, String>("users-by-address");
    /// assert_eq!(out.read_key_value(), Some(("ann@x.org".to_string(), "ann".to_string())));
    /// ```
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
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("names").map_values(|name| name.len() as i64).to("lengths");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("m")).unwrap();
    /// driver.create_input_topic::<String, String>("names").pipe_input_at("u1".into(), "Ann".into(), 0);
    /// let out = driver.create_output_topic::<String, i64>("lengths");
    /// assert_eq!(out.read_key_value(), Some(("u1".to_string(), 3)));
    /// ```
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
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("scores")
    ///     .map_values_with_key(|player, score| format!("{player} scored {score}"))
    ///     .to("score-lines");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("m")).unwrap();
    /// driver.create_input_topic::<String, i64>("scores").pipe_input_at("ann".into(), 7, 0);
    /// let out = driver.create_output_topic::<String, String>("score-lines");
    /// assert_eq!(out.read_value(), Some("ann scored 7".to_string()));
    /// ```
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
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("orders") // order id -> "sku,sku,..."
    ///     .flat_map(|order, skus| {
    ///         skus.split(',').map(|sku| (sku.to_string(), order.clone())).collect::<Vec<_>>()
    ///     })
    ///     .to("orders-by-sku");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("f")).unwrap();
    /// driver.create_input_topic::<String, String>("orders").pipe_input_at("o1".into(), "a,b".into(), 0);
    /// let out = driver.create_output_topic::<String, String>("orders-by-sku");
    /// assert_eq!(out.read_key_values_to_list(), vec![
    ///     ("a".to_string(), "o1".to_string()), ("b".to_string(), "o1".to_string())]);
    /// ```
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
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("sales") // id -> "region:amount"
    ///     .select_key(|_, sale| sale.split(':').next().unwrap_or_default().to_string())
    ///     .to("sales-by-region");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// driver.create_input_topic::<String, String>("sales").pipe_input_at("s1".into(), "eu:42".into(), 0);
    /// let out = driver.create_output_topic::<String, String>("sales-by-region");
    /// assert_eq!(out.read_key_value(), Some(("eu".to_string(), "eu:42".to_string())));
    /// ```
    pub fn select_key<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        self.then("KSTREAM-KEY-SELECT", true, move |ctx, r| {
            let key = f(&r.key, &r.value);
            ctx.forward(r.with_key(key))
        })
    }

    /// Calls `f` on each record and passes it on unchanged (also Kafka Streams' `foreach`,
    /// when nothing follows).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("in")
    ///     .peek(move |key, _| log.lock().unwrap().push(key.clone()))
    ///     .to("out");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("p")).unwrap();
    /// driver.create_input_topic::<String, String>("in").pipe_input_at("a".into(), "x".into(), 0);
    /// assert_eq!(*seen.lock().unwrap(), vec!["a".to_string()]);
    /// ```
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        self.then("KSTREAM-PEEK", false, move |ctx, r| {
            f(&r.key, &r.value);
            ctx.forward(r)
        })
    }

    /// Both streams' records in one stream.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let eu = builder.stream::<String, i64>("eu-sales");
    /// let us = builder.stream::<String, i64>("us-sales");
    /// eu.merge(&us).to("all-sales");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("m")).unwrap();
    /// driver.create_input_topic::<String, i64>("eu-sales").pipe_input_at("a".into(), 1, 0);
    /// driver.create_input_topic::<String, i64>("us-sales").pipe_input_at("b".into(), 2, 1);
    /// let out = driver.create_output_topic::<String, i64>("all-sales");
    /// assert_eq!(out.read_values_to_list(), vec![1, 2]);
    /// ```
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
    ///
    /// ```
    /// use kstreams::dsl::StreamsBuilder;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// assert_eq!(builder.build().unwrap().sink_topics(), vec!["out"]);
    /// ```
    pub fn to(&self, topic: &str)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.to_with(topic, Produced::default())
    }

    /// Writes the stream to a topic as `produced` says (see [`Produced`] for an example).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("tags") // post -> "a,b"
    ///     .map_values(|tags| tags.split(',').map(str::to_string).collect::<Vec<String>>())
    ///     .to_with("tags-json", Produced::with(Serdes::string(), Serdes::json()));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let tags = driver.create_input_topic::<String, String>("tags");
    /// tags.pipe_input_at("p1".into(), "rust,kafka".into(), 0);
    /// let out = driver.create_output_topic::<String, String>("tags-json");
    /// assert_eq!(out.read_value(), Some(r#"["rust","kafka"]"#.to_string()));
    /// ```
    pub fn to_with(&self, topic: &str, produced: Produced<K, V>) {
        self.graph.borrow_mut().add_sink(
            self.node,
            TopicChoice::Fixed(TopicRef::External(topic.to_string())),
            produced.key_serde,
            produced.value_serde,
            produced.name,
        );
    }

    /// Writes each record to the topic `topic_of` names for it (Kafka Streams'
    /// `TopicNameExtractor`). The topics must exist.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("events").to_dynamic(
    ///     |_, event| format!("events-{}", event.split(':').next().unwrap_or("other")),
    ///     Produced::default(),
    /// );
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("d")).unwrap();
    /// driver.create_input_topic::<String, String>("events").pipe_input_at("e".into(), "eu:1".into(), 0);
    /// assert_eq!(driver.produced_topic_names(), vec!["events-eu"]);
    /// ```
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
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// use kstreams::topology::InternalTopicKind;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").select_key(|_, v| v.clone()).repartition().to("out");
    /// let topology = builder.build().unwrap();
    /// let description = topology.describe();
    /// assert_eq!(description.internal_topics_of(InternalTopicKind::Repartition).len(), 1);
    /// assert_eq!(description.subtopologies.len(), 2);
    /// let driver = TestDriver::new(&topology, StreamsConfig::new("r")).unwrap();
    /// driver.create_input_topic::<String, String>("in").pipe_input_at("k".into(), "v".into(), 0);
    /// let out = driver.create_output_topic::<String, String>("out");
    /// assert_eq!(out.read_key_value(), Some(("v".to_string(), "v".to_string())));
    /// ```
    pub fn repartition(&self) -> KStream<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.repartition_with(Repartitioned::default())
    }

    /// Routes the stream through a repartition topic as `repartitioned` says (name, serdes,
    /// partition count; see [`Repartitioned`] for an example).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("orders") // order id -> customer
    ///     .select_key(|_, customer| customer.clone())
    ///     .repartition_with(Repartitioned::default().with_name("by-customer"))
    ///     .to("orders-by-customer");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let orders = driver.create_input_topic::<String, String>("orders");
    /// orders.pipe_input_at("o1".into(), "ann".into(), 0);
    /// let topics = driver.produced_topic_names();
    /// assert_eq!(topics, vec!["orders-by-customer", "r-by-customer-repartition"]);
    /// let out = driver.create_output_topic::<String, String>("orders-by-customer");
    /// assert_eq!(out.read_key_value(), Some(("ann".to_string(), "ann".to_string())));
    /// ```
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
    ///
    /// [`StreamsBuilder::add_state_store`](super::StreamsBuilder::add_state_store) shows a
    /// processor with a store; without one:
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    ///
    /// /// Splits "a b c" into one record per word, keyed by the word, with the line's offset.
    /// struct Words;
    /// impl Processor<String, String, String, i64> for Words {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let offset = ctx.record_metadata().map_or(-1, |m| m.offset);
    ///         for word in record.value.split_whitespace() {
    ///             ctx.forward(Record::new(word.to_string(), offset, record.timestamp))?;
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("lines").process(|| Words, &[]).to("words");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("p")).unwrap();
    /// let lines = driver.create_input_topic::<String, String>("lines");
    /// lines.pipe_input_at("l".into(), "x".into(), 0);
    /// lines.pipe_input_at("l".into(), "y z".into(), 1);
    /// let words = driver.create_output_topic::<String, i64>("words");
    /// assert_eq!(words.read_key_values_to_list(), vec![
    ///     ("x".to_string(), 0), ("y".to_string(), 1), ("z".to_string(), 1)]);
    /// ```
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
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("pairs") // _ -> "key=amount"
    ///     .try_map(|_, pair| match pair.split_once('=') {
    ///         Some((k, v)) => v.parse::<i64>().map(|v| (k.to_string(), v)).map_err(|e| e.to_string()),
    ///         None => Err(format!("no '=' in {pair:?}")),
    ///     })
    ///     .to("amounts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let pairs = driver.create_input_topic::<String, String>("pairs");
    /// pairs.pipe_input_at("1".into(), "a=5".into(), 0);
    /// pairs.pipe_input_at("2".into(), "garbage".into(), 1);
    /// let out = driver.create_output_topic::<String, i64>("amounts");
    /// assert_eq!(out.read_key_values_to_list(), vec![("a".to_string(), 5)]);
    /// assert_eq!(driver.metrics().dead_lettered_records, 1); // in topic "t-dlq"
    /// ```
    pub fn try_map<K2: Data, V2: Data, E: Display>(
        &self,
        f: impl Fn(K, V) -> Result<(K2, V2), E> + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        self.try_flat_map(move |k, v| f(k, v).map(std::iter::once))
    }

    /// Like [`map_values`](Self::map_values), with failures dead-lettered.
    ///
    /// The dead-letter record has the source record's bytes and the error in the headers of
    /// [`dead_letter`](crate::dead_letter):
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("raw-amounts")
    ///     .try_map_values(|text| text.parse::<i64>())
    ///     .to("amounts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("parse")).unwrap();
    /// let raw = driver.create_input_topic::<String, String>("raw-amounts");
    /// raw.pipe_input_at("a".into(), "12".into(), 0);
    /// raw.pipe_input_at("b".into(), "twelve".into(), 1);
    /// assert_eq!(driver.create_output_topic::<String, i64>("amounts").read_value(), Some(12));
    /// let dlq = driver.create_output_topic::<String, String>("parse-dlq").read_record().unwrap();
    /// assert_eq!(dlq.value, "twelve");
    /// assert_eq!(dlq.headers.last_str(kstreams::dead_letter::ERROR_KIND), Some("processing"));
    /// assert_eq!(dlq.headers.last_str(kstreams::dead_letter::ERROR_TOPIC), Some("raw-amounts"));
    /// ```
    pub fn try_map_values<V2: Data, E: Display>(
        &self,
        f: impl Fn(V) -> Result<V2, E> + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.try_flat_map_values(move |v| f(v).map(std::iter::once))
    }

    /// Like [`filter`](Self::filter), with failures dead-lettered.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("amounts")
    ///     .try_filter(|_, text| text.parse::<i64>().map(|n| n > 0))
    ///     .to("positive");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let amounts = driver.create_input_topic::<String, String>("amounts");
    /// for (i, text) in ["5", "-1", "x"].into_iter().enumerate() {
    ///     amounts.pipe_input_at("k".into(), text.into(), i as i64);
    /// }
    /// let out = driver.create_output_topic::<String, String>("positive");
    /// assert_eq!(out.read_values_to_list(), vec!["5".to_string()]);
    /// assert_eq!(driver.metrics().dead_lettered_records, 1);
    /// ```
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

    /// Like [`flat_map`](Self::flat_map), with failures dead-lettered: a record either
    /// produces all its records or goes to the dead-letter topic.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("baskets") // basket -> "sku,sku"
    ///     .try_flat_map(|basket, skus| {
    ///         skus.split(',')
    ///             .map(|sku| sku.parse::<u32>().map(|sku| (sku.to_string(), basket.clone())))
    ///             .collect::<Result<Vec<_>, _>>()
    ///     })
    ///     .to("baskets-by-sku");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let baskets = driver.create_input_topic::<String, String>("baskets");
    /// baskets.pipe_input_at("b1".into(), "1,2".into(), 0);
    /// baskets.pipe_input_at("b2".into(), "3,oops".into(), 1);
    /// let out = driver.create_output_topic::<String, String>("baskets-by-sku");
    /// assert_eq!(out.queue_size(), 2);
    /// assert_eq!(driver.metrics().dead_lettered_records, 1);
    /// ```
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
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("csv")
    ///     .try_flat_map_values(|line| line.split(',').map(str::parse::<i64>).collect::<Result<Vec<_>, _>>())
    ///     .to("numbers");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let csv = driver.create_input_topic::<String, String>("csv");
    /// csv.pipe_input_at("k".into(), "1,2".into(), 0);
    /// csv.pipe_input_at("k".into(), "3,x".into(), 1);
    /// let out = driver.create_output_topic::<String, i64>("numbers");
    /// assert_eq!(out.read_values_to_list(), vec![1, 2]);
    /// assert_eq!(driver.metrics().dead_lettered_records, 1);
    /// ```
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

    /// Groups by the current key, with the types' default serdes. Needs no repartition topic
    /// unless an operator before it changed the key.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// use kstreams::topology::InternalTopicKind;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key().count().to_stream().to("counts");
    /// let topology = builder.build().unwrap();
    /// assert!(topology.describe().internal_topics_of(InternalTopicKind::Repartition).is_empty());
    /// let driver = TestDriver::new(&topology, StreamsConfig::new("g")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("ann".into(), "/".into(), 0);
    /// clicks.pipe_input_at("ann".into(), "/cart".into(), 1);
    /// let counts = driver.create_output_topic::<String, Option<i64>>("counts");
    /// assert_eq!(counts.read_values_to_list(), vec![Some(1), Some(2)]);
    /// ```
    pub fn group_by_key(&self) -> KGroupedStream<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.group_by_key_with(Grouped::default())
    }

    /// Groups by the current key, with serdes and name from `grouped`. The name names the
    /// repartition topic, when one is needed.
    ///
    /// ```
    /// use kstreams::dsl::{Grouped, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("customers") // id -> region
    ///     .select_key(|_, region| region.clone())
    ///     .group_by_key_with(Grouped::named("by-region"))
    ///     .count();
    /// assert!(builder.build().unwrap().describe().to_string().contains("by-region-repartition"));
    /// ```
    pub fn group_by_key_with(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream::new(
            self.graph.clone(),
            self.node,
            self.repartition_required,
            grouped,
        )
    }

    /// Groups by a key computed from each record (always repartitions).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("orders") // order id -> customer
    ///     .group_by(|_order, customer| customer.clone())
    ///     .count_with(Materialized::named("orders-per-customer"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("g")).unwrap();
    /// let orders = driver.create_input_topic::<String, String>("orders");
    /// orders.pipe_input_at("o1".into(), "ann".into(), 0);
    /// orders.pipe_input_at("o2".into(), "ann".into(), 1);
    /// let store = driver.key_value_store::<String, i64>("orders-per-customer").unwrap();
    /// assert_eq!(store.get(&"ann".to_string()).unwrap(), Some(2));
    /// ```
    pub fn group_by<K2: Data + DefaultSerde>(
        &self,
        key_of: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KGroupedStream<K2, V>
    where
        V: DefaultSerde,
    {
        self.group_by_with(key_of, Grouped::default())
    }

    /// Groups by a computed key, with serdes and name from `grouped` (see [`Grouped`] for an
    /// example).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("orders") // order id -> cents
    ///     .group_by_with(|order, _| order.split('-').next().unwrap_or("").to_string(),
    ///         Grouped::with(Serdes::string(), Serdes::i64()).with_name("by-shop"))
    ///     .reduce_with(|a, b| a + b, Materialized::named("revenue"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("g")).unwrap();
    /// let orders = driver.create_input_topic::<String, i64>("orders");
    /// orders.pipe_input_at("berlin-1".into(), 250, 0);
    /// orders.pipe_input_at("berlin-2".into(), 100, 1);
    /// let revenue = driver.key_value_store::<String, i64>("revenue").unwrap();
    /// assert_eq!(revenue.get(&"berlin".to_string()).unwrap(), Some(350));
    /// assert!(driver.produced_topic_names().contains(&"g-by-shop-repartition".to_string()));
    /// ```
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

/// The branches of a [`KStream::split`] (Kafka Streams' `BranchedKStream`).
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// let mut split = builder.stream::<String, i64>("amounts").split();
/// split.branch(|_, v| *v < 0).to("refunds");
/// split.default_branch().to("payments");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("b")).unwrap();
/// let amounts = driver.create_input_topic::<String, i64>("amounts");
/// amounts.pipe_input_at("a".into(), -5, 0);
/// amounts.pipe_input_at("b".into(), 7, 1);
/// assert_eq!(driver.create_output_topic::<String, i64>("refunds").read_value(), Some(-5));
/// assert_eq!(driver.create_output_topic::<String, i64>("payments").read_value(), Some(7));
/// ```
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

    /// A branch of the records that match `predicate` and no earlier branch (see
    /// [`KStream::split`] for an example).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let mut split = builder.stream::<String, i64>("amounts").split();
    /// split.branch(|_, v| *v < 0).to("refunds");
    /// split.branch(|_, v| *v < -1000 || *v > 1000).to("large");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("b")).unwrap();
    /// let amounts = driver.create_input_topic::<String, i64>("amounts");
    /// for (i, amount) in [-5000, 5000, 7].into_iter().enumerate() {
    ///     amounts.pipe_input_at("a".into(), amount, i as i64);
    /// }
    /// // -5000 matches both predicates and goes to the first; 7 matches none: dropped.
    /// let (refunds, large) = (driver.create_output_topic::<String, i64>("refunds"),
    ///     driver.create_output_topic::<String, i64>("large"));
    /// assert_eq!(refunds.read_values_to_list(), vec![-5000]);
    /// assert_eq!(large.read_values_to_list(), vec![5000]);
    /// ```
    pub fn branch(
        &mut self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.add(Some(Arc::new(predicate)))
    }

    /// A branch of the records that matched no other branch; closes the split.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let mut split = builder.stream::<String, String>("events").split();
    /// split.branch(|_, kind| kind == "error").to("errors");
    /// split.branch(|_, kind| kind == "warning").to("warnings");
    /// split.default_branch().to("other-events");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("b")).unwrap();
    /// let events = driver.create_input_topic::<String, String>("events");
    /// for (i, kind) in ["error", "info", "debug"].into_iter().enumerate() {
    ///     events.pipe_input_at("e".into(), kind.into(), i as i64);
    /// }
    /// let other = driver.create_output_topic::<String, String>("other-events");
    /// assert_eq!(other.read_values_to_list(), vec!["info".to_string(), "debug".to_string()]);
    /// assert!(driver.create_output_topic::<String, String>("warnings").is_empty());
    /// ```
    pub fn default_branch(mut self) -> KStream<K, V> {
        self.add(None)
    }
}
