//! The typed DSL: [`StreamsBuilder`] → [`KStream`] / [`KTable`] → a [`Topology`].
//!
//! Operators mirror Kafka Streams' names. Types are checked at compile time: a `KStream<K, V>`
//! can only be joined, grouped or written with serdes of its own `K` and `V`. Where an
//! operator needs a serde, it takes it from a config value ([`Consumed`], [`Produced`],
//! [`Grouped`], [`Materialized`], [`Repartitioned`]) whose plain constructors use the types'
//! [`DefaultSerde`], and whose `with` constructors take explicit serdes.
//!
//! Operators that change the key (`map`, `select_key`, `flat_map`, `process`) mark the stream
//! as needing a repartition; a following `group_by_key` then routes records through a
//! `<application-id>-<name>-repartition` topic so that equal keys meet in one task.

mod fk_join;
mod forward;
mod global;
mod graph;
mod joins;
mod kgrouped;
mod kstream;
mod ktable;
pub(crate) mod ops;
mod windowed;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

pub use global::GlobalKTable;
pub use joins::JoinWindows;
pub use kgrouped::{KGroupedStream, KGroupedTable};
pub use kstream::{BranchedKStream, KStream};
pub use ktable::KTable;
pub use windowed::{
    SessionWindowedKStream, SessionWindows, SlidingWindowedKStream, SlidingWindows, Suppressed,
    TimeWindowedKStream, TimeWindows, Window, Windowed,
};

pub(crate) use graph::GraphBuilder;

use crate::error::TopologyError;
use crate::serde::{DefaultSerde, SerdeRef};
use crate::state::StoreBuilder;
use crate::topology::{TopicRef, Topology};

/// Values that can flow through a topology: cloneable (a record sent to several downstream
/// processors is cloned) and owned.
///
/// Every `Clone + 'static` type is `Data`; generic helpers over streams use it as the bound:
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// fn non_empty<K: Data>(stream: &KStream<K, String>) -> KStream<K, String> {
///     stream.filter(|_, text| !text.is_empty())
/// }
/// let builder = StreamsBuilder::new();
/// non_empty(&builder.stream::<String, String>("notes")).to("notes-kept");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("d")).unwrap();
/// let notes = driver.create_input_topic::<String, String>("notes");
/// notes.pipe_input_at("a".into(), "".into(), 0);
/// notes.pipe_input_at("b".into(), "hi".into(), 1);
/// let kept = driver.create_output_topic::<String, String>("notes-kept");
/// assert_eq!(kept.read_values_to_list(), vec!["hi".to_string()]);
/// ```
pub trait Data: Clone + 'static {}
impl<T: Clone + 'static> Data for T {}

/// Computes a record's event time from its key, value and the record timestamp.
///
/// ```
/// use std::sync::Arc;
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// // The value carries the event time; a negative one falls back to the Kafka timestamp.
/// fn event_time(_key: &String, value: &i64, kafka_ts: i64) -> i64 {
///     if *value < 0 { kafka_ts } else { *value }
/// }
/// let extractor: TimestampExtractor<String, i64> = Arc::new(event_time);
/// assert_eq!(extractor(&"k".to_string(), &-1, 7), 7);
/// let builder = StreamsBuilder::new();
/// let consumed = Consumed::<String, i64>::default()
///     .with_timestamp_extractor(move |key, value, ts| extractor(key, value, ts));
/// builder.stream_with("events", consumed).to("events-copy");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
/// driver.create_input_topic::<String, i64>("events").pipe_input_at("e".into(), 1_000, 5);
/// let record = driver.create_output_topic::<String, i64>("events-copy").read_record().unwrap();
/// assert_eq!(record.timestamp, 1_000);
/// ```
pub type TimestampExtractor<K, V> = Arc<dyn Fn(&K, &V, i64) -> i64 + Send + Sync>;

/// How a source topic is read (Kafka Streams' `Consumed`): key and value serdes, timestamp
/// extractor and the source node's name.
///
/// `Consumed::default()` uses the types' [`DefaultSerde`]; [`with`](Self::with) takes
/// explicit serdes.
///
/// ```
/// use kstreams::dsl::{Consumed, Produced, StreamsBuilder};
/// use kstreams::serde::Serdes;
/// let builder = StreamsBuilder::new();
/// builder
///     .stream_with("raw", Consumed::with(Serdes::bytes(), Serdes::string()).with_name("raw-source"))
///     .map_values(|text| text.len() as i64)
///     .to_with("lengths", Produced::with(Serdes::bytes(), Serdes::i64()));
/// let description = builder.build().unwrap().describe().to_string();
/// assert!(description.contains("Source: raw-source (topics: [raw])"));
/// ```
pub struct Consumed<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) timestamp_extractor: Option<TimestampExtractor<K, V>>,
    pub(crate) name: Option<String>,
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Consumed<K, V> {
    fn default() -> Self {
        Consumed::with(K::default_serde(), V::default_serde())
    }
}

impl<K: 'static, V: 'static> Consumed<K, V> {
    /// Reads with these serdes and the record timestamp.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, processor::Headers, serde::Serdes};
    /// use kstreams::testing::TestDriver;
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream_with("scores", Consumed::with(Serdes::string(), Serdes::json::<Vec<i64>>()))
    ///     .map_values(|scores| scores.iter().sum::<i64>())
    ///     .to("totals");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("c")).unwrap();
    /// let (key, json) = (Some(&b"ann"[..]), Some(&b"[3, 4]"[..]));
    /// driver.pipe_raw("scores", key, json, 0, Headers::new()).unwrap();
    /// let totals = driver.create_output_topic::<String, i64>("totals");
    /// assert_eq!(totals.read_key_value(), Some(("ann".to_string(), 7)));
    /// ```
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Consumed {
            key_serde,
            value_serde,
            timestamp_extractor: None,
            name: None,
        }
    }

    /// Takes event time from the record instead of the Kafka timestamp. The closure gets the
    /// key, the value and the Kafka timestamp; a negative result drops the record.
    ///
    /// ```
    /// use kstreams::dsl::Consumed;
    /// use kstreams::serde::Serdes;
    /// let consumed = Consumed::with(Serdes::string(), Serdes::i64())
    ///     .with_timestamp_extractor(|_key, value: &i64, _record_ts| *value);
    /// # let _ = consumed;
    /// ```
    pub fn with_timestamp_extractor(
        mut self,
        extractor: impl Fn(&K, &V, i64) -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.timestamp_extractor = Some(Arc::new(extractor));
        self
    }

    /// Names the source node.
    ///
    /// ```
    /// use kstreams::dsl::{Consumed, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// let consumed = Consumed::<String, String>::default().with_name("orders-source");
    /// builder.stream_with("orders", consumed).to("orders-copy");
    /// let description = builder.build().unwrap().describe();
    /// assert_eq!(description.subtopologies[0].nodes[0].name, "orders-source");
    /// ```
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How records are written to a topic (Kafka Streams' `Produced`): key and value serdes and
/// the sink node's name.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, i64>("amounts")
///     .map_values(|cents| format!("{:.2}", cents as f64 / 100.0))
///     .to_with("amounts-text", Produced::with(Serdes::string(), Serdes::string()).with_name("to-text"));
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("p")).unwrap();
/// driver.create_input_topic::<String, i64>("amounts").pipe_input_at("a".into(), 1234, 0);
/// let out = driver.create_output_topic::<String, String>("amounts-text");
/// assert_eq!(out.read_value(), Some("12.34".to_string()));
/// ```
pub struct Produced<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) name: Option<String>,
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Produced<K, V> {
    fn default() -> Self {
        Produced::with(K::default_serde(), V::default_serde())
    }
}

impl<K, V> Produced<K, V> {
    /// Writes with these serdes.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// // Numbers as JSON text instead of the default 8-byte big-endian encoding.
    /// builder.stream::<String, i64>("amounts")
    ///     .to_with("amounts-json", Produced::with(Serdes::string(), Serdes::json()));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("p")).unwrap();
    /// driver.create_input_topic::<String, i64>("amounts").pipe_input_at("a".into(), 42, 0);
    /// let out = driver.create_output_topic::<String, Vec<u8>>("amounts-json");
    /// assert_eq!(out.read_value(), Some(b"42".to_vec()));
    /// ```
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Produced {
            key_serde,
            value_serde,
            name: None,
        }
    }

    /// Names the sink node.
    ///
    /// ```
    /// use kstreams::dsl::{Produced, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("orders")
    ///     .to_with("orders-copy", Produced::default().with_name("to-copy"));
    /// let description = builder.build().unwrap().describe().to_string();
    /// assert!(description.contains("Sink: to-copy (topic: orders-copy)"));
    /// ```
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Serdes and name for grouping, and for the repartition topic it may need (Kafka Streams'
/// `Grouped`). Without a name, the repartition topic is named after the aggregation's store.
///
/// ```
/// use kstreams::dsl::{Grouped, StreamsBuilder};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("page-views") // user -> page
///     .group_by_with(|_user, page| page.clone(), Grouped::named("by-page"))
///     .count();
/// let description = builder.build().unwrap().describe().to_string();
/// assert!(description.contains("by-page-repartition"));
/// ```
pub struct Grouped<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) name: Option<String>,
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Grouped<K, V> {
    fn default() -> Self {
        Grouped::with(K::default_serde(), V::default_serde())
    }
}

impl<K: DefaultSerde, V: DefaultSerde> Grouped<K, V> {
    /// Default serdes; the repartition topic is named `<name>-repartition`.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("page-views") // user -> page
    ///     .group_by_with(|_user, page| page.clone(), Grouped::named("by-page"))
    ///     .count();
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("app")).unwrap();
    /// let views = driver.create_input_topic::<String, String>("page-views");
    /// views.pipe_input_at("ann".into(), "/".into(), 0);
    /// let hop = driver.create_output_topic::<String, String>("app-by-page-repartition");
    /// assert_eq!(hop.read_key_value(), Some(("/".to_string(), "/".to_string())));
    /// ```
    pub fn named(name: impl Into<String>) -> Self {
        Grouped::default().with_name(name)
    }
}

impl<K, V> Grouped<K, V> {
    /// Groups with these serdes.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("scores") // user -> score
    ///     .group_by_with(|_, score| score.to_string(),
    ///         Grouped::with(Serdes::string(), Serdes::json()))
    ///     .count_with(Materialized::named("users-per-score"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("g")).unwrap();
    /// driver.create_input_topic::<String, i64>("scores").pipe_input_at("ann".into(), 42, 0);
    /// // The repartition topic (named after the store) carries the values as JSON.
    /// let hop = driver.create_output_topic::<String, Vec<u8>>("g-users-per-score-repartition");
    /// assert_eq!(hop.read_key_value(), Some(("42".to_string(), b"42".to_vec())));
    /// ```
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Grouped {
            key_serde,
            value_serde,
            name: None,
        }
    }

    /// Names the grouping: its repartition topic becomes `<name>-repartition`.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("customers") // id -> region
    ///     .group_by_with(|_, region| region.clone(),
    ///         Grouped::with(Serdes::string(), Serdes::string()).with_name("by-region"))
    ///     .count();
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("g")).unwrap();
    /// let customers = driver.create_input_topic::<String, String>("customers");
    /// customers.pipe_input_at("c1".into(), "eu".into(), 0);
    /// assert!(driver.produced_topic_names().contains(&"g-by-region-repartition".to_string()));
    /// ```
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Serdes, name and partition count for an explicit
/// [`repartition_with`](KStream::repartition_with) (Kafka Streams' `Repartitioned`).
///
/// ```
/// use kstreams::dsl::{Repartitioned, StreamsBuilder};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("events")
///     .select_key(|_, v| v.clone())
///     .repartition_with(Repartitioned::default().with_name("by-value").with_partitions(12))
///     .to("events-by-value");
/// let plan = builder.build().unwrap().internal_topic_partitions(|_| Some(3)).unwrap();
/// assert_eq!(plan["by-value-repartition"], 12);
/// ```
pub struct Repartitioned<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<i32>,
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Repartitioned<K, V> {
    fn default() -> Self {
        Repartitioned::with(K::default_serde(), V::default_serde())
    }
}

impl<K, V> Repartitioned<K, V> {
    /// Repartitions with these serdes.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts")
    ///     .repartition_with(Repartitioned::with(Serdes::string(), Serdes::json()))
    ///     .to("amounts-copy");
    /// let topology = builder.build().unwrap();
    /// let hop = topology.describe().internal_topics[0].full_name("r");
    /// let driver = TestDriver::new(&topology, StreamsConfig::new("r")).unwrap();
    /// driver.create_input_topic::<String, i64>("amounts").pipe_input_at("a".into(), 250, 0);
    /// // JSON on the repartition topic; the sink writes with the default serde again.
    /// let hop = driver.create_output_topic::<String, Vec<u8>>(&hop);
    /// assert_eq!(hop.read_value(), Some(b"250".to_vec()));
    /// let copy = driver.create_output_topic::<String, i64>("amounts-copy");
    /// assert_eq!(copy.read_value(), Some(250));
    /// ```
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Repartitioned {
            key_serde,
            value_serde,
            name: None,
            partitions: None,
        }
    }

    /// Names the topic `<name>-repartition`.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("events")
    ///     .repartition_with(Repartitioned::default().with_name("events-by-key"))
    ///     .to("events-copy");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("app")).unwrap();
    /// let events = driver.create_input_topic::<String, String>("events");
    /// events.pipe_input_at("k".into(), "v".into(), 0);
    /// let topics = driver.produced_topic_names();
    /// assert_eq!(topics, vec!["app-events-by-key-repartition", "events-copy"]);
    /// ```
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the partition count of the repartition topic (default: as the source topics).
    ///
    /// ```
    /// use kstreams::dsl::{Repartitioned, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// let events = builder.stream::<String, String>("events");
    /// events.repartition_with(Repartitioned::default().with_name("wide").with_partitions(12))
    ///     .to("wide-events");
    /// events.repartition_with(Repartitioned::default().with_name("same")).to("same-events");
    /// let plan = builder.build().unwrap().internal_topic_partitions(|_| Some(3)).unwrap();
    /// assert_eq!((plan["wide-repartition"], plan["same-repartition"]), (12, 3));
    /// ```
    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = Some(partitions);
        self
    }
}

/// How an aggregation or table is kept in a state store (Kafka Streams' `Materialized`): its
/// name (which also names its changelog topic and makes it queryable), serdes, changelog,
/// retention and store type.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks")
///     .group_by_key()
///     .count_with(Materialized::named("clicks-per-user"));
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("app")).unwrap();
/// driver.create_input_topic::<String, String>("clicks").pipe_input_at("ann".into(), "/".into(), 0);
/// let store = driver.key_value_store::<String, i64>("clicks-per-user").unwrap();
/// assert_eq!(store.get(&"ann".to_string()).unwrap(), Some(1));
/// // Every write is logged to `<application-id>-<store>-changelog`.
/// let changelog = driver.create_output_topic::<String, Vec<u8>>("app-clicks-per-user-changelog");
/// assert_eq!(changelog.queue_size(), 1);
/// ```
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) logging: bool,
    pub(crate) caching: bool,
    pub(crate) retention: Option<std::time::Duration>,
    pub(crate) store_type: Option<crate::state::StoreType>,
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized::with(K::default_serde(), V::default_serde())
    }
}

impl<K: DefaultSerde, V: DefaultSerde> Materialized<K, V> {
    /// A store of this name with the types' default serdes; queryable by that name.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let users = builder.table::<String, String>("users", Materialized::named("users-by-id"));
    /// assert_eq!(users.queryable_store_name(), Some("users-by-id"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("m")).unwrap();
    /// let input = driver.create_input_topic::<String, Option<String>>("users");
    /// input.pipe_input_at("u1".into(), Some("Ann".into()), 0);
    /// let store = driver.key_value_store::<String, String>("users-by-id").unwrap();
    /// assert_eq!(store.get(&"u1".to_string()).unwrap(), Some("Ann".to_string()));
    /// ```
    pub fn named(name: impl Into<String>) -> Self {
        Materialized::default().with_name(name)
    }
}

impl<K, V> Materialized<K, V> {
    /// A store with these serdes (named by the DSL unless [`with_name`](Self::with_name)).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// // `Vec<String>` has no default serde, so the store is given one.
    /// let trails = builder.stream::<String, String>("page-views").group_by_key().aggregate_with(
    ///     Vec::new,
    ///     |_user, page, mut pages: Vec<String>| {
    ///         pages.push(page);
    ///         pages
    ///     },
    ///     Materialized::with(Serdes::string(), Serdes::json()),
    /// );
    /// let store_name = trails.queryable_store_name().unwrap().to_string(); // chosen by the DSL
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("m")).unwrap();
    /// let views = driver.create_input_topic::<String, String>("page-views");
    /// views.pipe_input_at("ann".into(), "/".into(), 0);
    /// views.pipe_input_at("ann".into(), "/cart".into(), 1);
    /// let store = driver.key_value_store::<String, Vec<String>>(&store_name).unwrap();
    /// let ann = store.get(&"ann".to_string()).unwrap();
    /// assert_eq!(ann, Some(vec!["/".to_string(), "/cart".to_string()]));
    /// ```
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Materialized {
            name: None,
            key_serde,
            value_serde,
            logging: true,
            caching: true,
            retention: None,
            store_type: None,
        }
    }

    /// Names the store (and its changelog `<name>-changelog`).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("orders").group_by_key()
    ///     .reduce_with(|a, b| a + b,
    ///         Materialized::with(Serdes::string(), Serdes::i64()).with_name("totals"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("app")).unwrap();
    /// driver.create_input_topic::<String, i64>("orders").pipe_input_at("ann".into(), 30, 0);
    /// let totals = driver.key_value_store::<String, i64>("totals").unwrap();
    /// assert_eq!(totals.get(&"ann".to_string()).unwrap(), Some(30));
    /// assert_eq!(driver.produced_topic_names(), vec!["app-totals-changelog"]);
    /// ```
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How long a windowed store keeps windows (at least window size plus grace).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let windowed = builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)));
    /// windowed.count_with(Materialized::named("recent")); // keeps 10 ms: size plus grace
    /// windowed.count_with(Materialized::named("history").with_retention(Duration::from_secs(1)));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("ann".into(), "/".into(), 0);
    /// clicks.pipe_input_at("ann".into(), "/".into(), 100);
    /// let ann = "ann".to_string();
    /// let recent = driver.window_store::<String, i64>("recent").unwrap();
    /// assert_eq!(recent.fetch_range(&ann, 0, 100).unwrap(), vec![(100, 1)]); // [0, 10) expired
    /// let history = driver.window_store::<String, i64>("history").unwrap();
    /// assert_eq!(history.fetch_range(&ann, 0, 100).unwrap(), vec![(0, 1), (100, 1)]);
    /// ```
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Keeps the store without a changelog: it is not restored after a restart.
    ///
    /// ```
    /// use kstreams::dsl::{Materialized, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .count_with(Materialized::named("scratch").with_logging_disabled());
    /// let description = builder.build().unwrap().describe();
    /// assert!(description.internal_topics.iter().all(|t| !t.name.starts_with("scratch")));
    /// ```
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }

    /// Keeps the store without a write cache: every update is written at once and, for an
    /// aggregation, forwarded at once, instead of one per key per commit (Kafka Streams'
    /// `withCachingDisabled`). The test driver commits after every record, so it forwards
    /// every update either way.
    ///
    /// ```
    /// use kstreams::dsl::{Materialized, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .count_with(Materialized::named("every-click").with_caching_disabled())
    ///     .to_stream()
    ///     .to("click-counts"); // one record per click, on a broker too
    /// assert_eq!(builder.build().unwrap().store_names(), vec!["every-click"]);
    /// ```
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching = false;
        self
    }

    /// Puts the write cache back (the default): an aggregation forwards one update per key
    /// per commit.
    ///
    /// ```
    /// use kstreams::dsl::{Materialized, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .count_with(Materialized::named("clicks").with_caching_disabled().with_caching_enabled());
    /// assert_eq!(builder.build().unwrap().store_names(), vec!["clicks"]);
    /// ```
    pub fn with_caching_enabled(mut self) -> Self {
        self.caching = true;
        self
    }

    /// Keeps the store in memory or on disk (default: the configuration's
    /// [`default_store_type`](crate::config::StreamsConfig::default_store_type)).
    ///
    /// ```
    /// use kstreams::dsl::{Materialized, StreamsBuilder};
    /// use kstreams::state::StoreType;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .count_with(Materialized::named("clicks-per-user").with_store_type(StoreType::InMemory));
    /// assert_eq!(builder.build().unwrap().store_names(), vec!["clicks-per-user"]);
    /// ```
    pub fn with_store_type(mut self, store_type: crate::state::StoreType) -> Self {
        self.store_type = Some(store_type);
        self
    }
}

/// Builds a [`Topology`] with the DSL.
///
/// ```
/// use kstreams::dsl::StreamsBuilder;
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("input")
///     .filter(|_key, value| !value.is_empty())
///     .to("output");
/// let topology = builder.build().unwrap();
/// assert_eq!(topology.source_topics(), vec!["input".to_string()]);
/// ```
#[derive(Clone, Default)]
pub struct StreamsBuilder {
    graph: Rc<RefCell<GraphBuilder>>,
}

impl StreamsBuilder {
    /// An empty builder.
    ///
    /// ```
    /// use kstreams::{dsl::StreamsBuilder, TopologyError};
    /// let builder = StreamsBuilder::new();
    /// assert_eq!(builder.build().err(), Some(TopologyError::NoSources));
    /// builder.stream::<String, String>("input").to("output");
    /// assert_eq!(builder.build().unwrap().source_topics(), vec!["input"]);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream of a topic, with the key and value types' default serdes.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("readings").to("readings-copy");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// driver.create_input_topic::<String, i64>("readings").pipe_input_at("s1".into(), 21, 5);
    /// let out = driver.create_output_topic::<String, i64>("readings-copy");
    /// let record = out.read_record().unwrap();
    /// assert_eq!((record.key.as_str(), record.value, record.timestamp), ("s1", 21, 5));
    /// ```
    pub fn stream<K: DefaultSerde + Data, V: DefaultSerde + Data>(
        &self,
        topic: &str,
    ) -> KStream<K, V> {
        self.stream_with(topic, Consumed::default())
    }

    /// A stream of a topic, read as `consumed` says.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// // Values are "<event time ms>:<text>"; the event time becomes the record timestamp.
    /// let consumed = Consumed::with(Serdes::string(), Serdes::string())
    ///     .with_timestamp_extractor(|_, v: &String, ts| {
    ///         v.split(':').next().and_then(|t| t.parse().ok()).unwrap_or(ts)
    ///     });
    /// builder.stream_with("events", consumed).to("events-copy");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// let events = driver.create_input_topic::<String, String>("events");
    /// events.pipe_input_at("e".into(), "1000:login".into(), 5);
    /// let record = driver.create_output_topic::<String, String>("events-copy").read_record();
    /// let record = record.unwrap();
    /// assert_eq!((record.value.as_str(), record.timestamp), ("1000:login", 1_000));
    /// ```
    pub fn stream_with<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        self.streams_with(&[topic], consumed)
    }

    /// One stream of several topics, read as `consumed` says.
    ///
    /// ```
    /// use kstreams::dsl::{Consumed, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .streams_with(&["eu-orders", "us-orders"], Consumed::<String, String>::default())
    ///     .to("all-orders");
    /// assert_eq!(builder.build().unwrap().source_topics(), vec!["eu-orders", "us-orders"]);
    /// ```
    pub fn streams_with<K: Data, V: Data>(
        &self,
        topics: &[&str],
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let node = self.graph.borrow_mut().add_source(
            topics
                .iter()
                .map(|t| TopicRef::External(t.to_string()))
                .collect(),
            consumed.key_serde,
            consumed.value_serde,
            consumed.timestamp_extractor,
            consumed.name,
            false,
        );
        KStream::new(self.graph.clone(), node, false)
    }

    /// A table of a topic: the latest value per key; a `null` value deletes the key.
    /// The table is materialized in a store (named by `materialized` or by the DSL).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let prices = builder.table::<String, i64>("prices", Materialized::named("prices"));
    /// prices.to_stream().to("price-changes");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let input = driver.create_input_topic::<String, Option<i64>>("prices");
    /// input.pipe_input_at("mouse".into(), Some(25), 0);
    /// input.pipe_input_at("mouse".into(), None, 1); // a tombstone deletes the row
    /// let store = driver.key_value_store::<String, i64>("prices").unwrap();
    /// assert_eq!(store.get(&"mouse".to_string()).unwrap(), None);
    /// let changes = driver.create_output_topic::<String, Option<i64>>("price-changes");
    /// assert_eq!(changes.read_values_to_list(), vec![Some(25), None]);
    /// ```
    pub fn table<K: DefaultSerde + Data, V: DefaultSerde + Data>(
        &self,
        topic: &str,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        self.table_with(topic, Consumed::default(), materialized)
    }

    /// A table of a topic, read as `consumed` says.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// // The topic holds prices as JSON text; the store keeps them with the default serdes.
    /// let consumed = Consumed::with(Serdes::string(), Serdes::json::<i64>());
    /// builder.table_with("prices", consumed, Materialized::named("prices"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// // JSON text, as another application writes it (here through a string topic).
    /// let prices = driver.create_input_topic::<String, Option<String>>("prices");
    /// prices.pipe_input_at("mouse".into(), Some("25".into()), 0);
    /// prices.pipe_input_at("desk".into(), Some("300".into()), 1);
    /// prices.pipe_input_at("desk".into(), None, 2); // a tombstone deletes the row
    /// let prices = driver.key_value_store::<String, i64>("prices").unwrap();
    /// assert_eq!(prices.all().unwrap(), vec![("mouse".to_string(), 25)]);
    /// ```
    pub fn table_with<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        ktable::table_from_topic(&self.graph, topic, consumed, materialized)
    }

    /// Adds a state store that processors added with [`KStream::process`] can use by name.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver, BoxError};
    /// use kstreams::processor::{Processor, ProcessorContext, Record};
    /// use kstreams::state::{KeyValueStore, Stores};
    ///
    /// /// Forwards the first record of each key and drops repeats.
    /// struct FirstOnly { seen: Option<KeyValueStore<String, i64>> }
    ///
    /// impl Processor<String, String, String, String> for FirstOnly {
    ///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), BoxError> {
    ///         self.seen = Some(ctx.key_value_store("seen")?);
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
    ///                record: Record<String, String>) -> Result<(), BoxError> {
    ///         let seen = self.seen.as_ref().ok_or("not initialized")?;
    ///         if seen.put_if_absent(&record.key, &record.timestamp)?.is_none() {
    ///             ctx.forward(record)?;
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.add_state_store(Stores::key_value_store_builder::<String, i64>("seen"));
    /// builder
    ///     .stream::<String, String>("events")
    ///     .process(|| FirstOnly { seen: None }, &["seen"])
    ///     .to("first-events");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("dedup")).unwrap();
    /// let events = driver.create_input_topic::<String, String>("events");
    /// events.pipe_input_at("e1".into(), "a".into(), 0);
    /// events.pipe_input_at("e1".into(), "b".into(), 1);
    /// let out = driver.create_output_topic::<String, String>("first-events");
    /// assert_eq!(out.read_values_to_list(), vec!["a".to_string()]);
    /// assert_eq!(driver.key_value_store::<String, i64>("seen").unwrap().get(&"e1".into()).unwrap(), Some(0));
    /// ```
    pub fn add_state_store<K: 'static, V: 'static>(&self, store: StoreBuilder<K, V>) -> &Self {
        self.graph.borrow_mut().add_store(store.into_def(false));
        self
    }

    /// The topology built so far; fails if the definition is inconsistent.
    ///
    /// ```
    /// use kstreams::dsl::StreamsBuilder;
    /// use kstreams::TopologyError;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("orders").to("copy-1");
    /// builder.stream::<String, String>("orders").to("copy-2"); // a second source of one topic
    /// assert_eq!(builder.build().err(), Some(TopologyError::TopicAlreadyRegistered("orders".into())));
    /// ```
    pub fn build(&self) -> Result<Topology, TopologyError> {
        self.graph.borrow().build()
    }
}
