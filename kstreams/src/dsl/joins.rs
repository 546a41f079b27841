//! Joins. A stream–table join looks each stream record up in the table's store at the
//! record's time; table updates do not emit.
//!
//! Both sides must be partitioned by the same key: a stream whose key changed is routed
//! through a repartition topic first, and the join processor is connected to the table's
//! store, so both land in one sub-topology (one task per partition holds both). A table
//! that is not materialized yet (after `filter` or `map_values` without `Materialized`) is
//! materialized for the join.

use std::borrow::Cow;
use std::sync::Arc;

use crate::error::BoxError;
use crate::processor::{Processor, ProcessorContext, Record};
use crate::serde::DefaultSerde;
use crate::state::{from_ordered, ordered, TimestampedKeyValueStore};
use crate::topology::NodeKind;

use super::kgrouped::materialize;
use super::kstream::KStream;
use super::ktable::KTable;
use super::ops::TableTransform;
use super::{Data, GraphBuilder, Materialized};

/// Computes the key a stream record looks up in a table: its own key (borrowed, for
/// co-partitioned tables) or one mapped from key and value (for global tables).
pub(crate) type LookupKey<K, V, KT> = Arc<dyn for<'a> Fn(&'a K, &V) -> Cow<'a, KT> + Send + Sync>;

/// Joins a stream value with the looked-up row (`None`: no row), or drops it (`None`).
pub(crate) type StreamTableJoiner<V, VT, VR> =
    Arc<dyn Fn(V, Option<&VT>) -> Option<VR> + Send + Sync>;

/// The lookup key of a table join: the record's own key.
pub(crate) fn own_key<'a, K: Clone, V>(key: &'a K, _: &V) -> Cow<'a, K> {
    Cow::Borrowed(key)
}

/// The lookup key of a global table join: computed from the record.
pub(crate) fn mapped_key<K: 'static, V: 'static, KT: Clone + 'static>(
    key_of: Arc<dyn Fn(&K, &V) -> KT + Send + Sync>,
) -> LookupKey<K, V, KT> {
    // Gives the closure its higher-ranked signature where it is written.
    fn higher_ranked<K, V, KT: Clone, F: for<'a> Fn(&'a K, &V) -> Cow<'a, KT>>(f: F) -> F {
        f
    }
    Arc::new(higher_ranked(move |k: &K, v: &V| Cow::Owned(key_of(k, v))))
}

/// Looks each stream record up in a table's store (a partition's table or a global one).
pub(crate) struct StreamTableJoin<K, V, KT: Clone, VT, VR> {
    pub store_name: String,
    pub lookup: LookupKey<K, V, KT>,
    pub joiner: StreamTableJoiner<V, VT, VR>,
    pub store: Option<TimestampedKeyValueStore<KT, VT>>,
}

impl<K: Data, V: Data, KT: Data, VT: Data, VR: Data> Processor<K, V, K, VR>
    for StreamTableJoin<K, V, KT, VT, VR>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), BoxError> {
        self.store = Some(ctx.timestamped_key_value_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        r: Record<K, V>,
    ) -> Result<(), BoxError> {
        let store = self.store.as_ref().ok_or("store not initialized")?;
        let row = store.get(&(self.lookup)(&r.key, &r.value))?;
        match (self.joiner)(r.value, row.as_ref().map(|v| &v.value)) {
            Some(joined) => ctx.forward(Record {
                key: r.key,
                value: joined,
                timestamp: r.timestamp,
                headers: r.headers,
            }),
            None => Ok(()),
        }
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// The name of a store holding this table, materializing it when it has none.
    pub(crate) fn ensure_store(&self, graph: &mut GraphBuilder) -> String {
        if let Some(store) = &self.store {
            return store.clone();
        }
        let materialized = Materialized::with(self.key_serde.clone(), self.value_serde.clone());
        let store = materialize(graph, materialized, "KTABLE-JOIN-STATE-STORE");
        let name = graph.next_name("KTABLE-MATERIALIZE");
        let store_name = store.clone();
        graph.add_processor(
            name,
            NodeKind::Processor,
            &[self.node],
            vec![store.clone()],
            move || TableTransform::<K, V, V> {
                f: Arc::new(|_, v| Some(v)),
                store_name: Some(store_name.clone()),
                store: None,
            },
        );
        store
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    fn join_table_internal<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        prefix: &str,
        joiner: StreamTableJoiner<V, VT, VR>,
    ) -> KStream<K, VR>
    where
        V: DefaultSerde,
    {
        let mut graph = self.graph.borrow_mut();
        let store = table.ensure_store(&mut graph);
        let input = if self.repartition_required {
            let base = graph.next_name(&format!("{prefix}-REPARTITION"));
            graph.add_repartition(
                self.node,
                &base,
                table.key_serde.clone(),
                V::default_serde(),
            )
        } else {
            self.node
        };
        let name = graph.next_name(prefix);
        let store_name = store.clone();
        let node = graph.add_processor(
            name,
            NodeKind::Processor,
            &[input],
            vec![store],
            move || StreamTableJoin {
                store_name: store_name.clone(),
                lookup: Arc::new(own_key::<K, V>) as LookupKey<K, V, K>,
                joiner: joiner.clone(),
                store: None,
            },
        );
        graph.mark_join(node);
        drop(graph);
        KStream::new(self.graph.clone(), node, false)
    }

    /// Joins each record with the table's current row for its key; records without a row
    /// are dropped. Table updates do not emit.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let customers = builder.table::<String, String>("customers", Materialized::default());
    /// builder
    ///     .stream::<String, i64>("orders")
    ///     .join(&customers, |amount, name| format!("{name} spent {amount}"))
    ///     .to("enriched");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("j")).unwrap();
    /// driver.create_input_topic::<String, Option<String>>("customers")
    ///     .pipe_input_at("c1".into(), Some("Ann".into()), 0);
    /// let orders = driver.create_input_topic::<String, i64>("orders");
    /// orders.pipe_input_at("c1".into(), 30, 1);
    /// orders.pipe_input_at("c2".into(), 99, 2); // no customer row: dropped
    /// let out = driver.create_output_topic::<String, String>("enriched");
    /// assert_eq!(out.read_values_to_list(), vec!["Ann spent 30".to_string()]);
    /// ```
    pub fn join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        V: DefaultSerde,
    {
        let joiner: StreamTableJoiner<V, VT, VR> =
            Arc::new(move |v, row| row.map(|row| joiner(v, row)));
        self.join_table_internal(table, "KSTREAM-JOIN", joiner)
    }

    /// Like [`join`](Self::join), but records without a row are joined with `None`.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let customers = builder.table::<String, String>("customers", Materialized::default());
    /// builder
    ///     .stream::<String, i64>("orders")
    ///     .left_join(&customers, |amount, name| {
    ///         format!("{} spent {amount}", name.map_or("someone", String::as_str))
    ///     })
    ///     .to("enriched");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("j")).unwrap();
    /// driver.create_input_topic::<String, i64>("orders").pipe_input_at("c9".into(), 5, 0);
    /// let out = driver.create_output_topic::<String, String>("enriched");
    /// assert_eq!(out.read_value(), Some("someone spent 5".to_string()));
    /// ```
    pub fn left_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        V: DefaultSerde,
    {
        let joiner: StreamTableJoiner<V, VT, VR> = Arc::new(move |v, row| Some(joiner(v, row)));
        self.join_table_internal(table, "KSTREAM-LEFTJOIN", joiner)
    }
}

/// The window of a stream–stream join: records join when the other side's timestamp lies
/// within `before` earlier and `after` later than their own (Kafka Streams' `JoinWindows`).
/// A record that arrives after stream time passed its window (plus grace) is dropped as late.
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// let orders = builder.stream::<String, String>("orders");
/// let shipments = builder.stream::<String, String>("shipments");
/// // A shipment joins an order when it comes at most 100 ms after it, never before.
/// let windows = JoinWindows::of_time_difference_without_grace(Duration::from_millis(100))
///     .before(Duration::ZERO);
/// orders.join_stream(&shipments, |o, s| format!("{o}+{s}"), windows).to("shipped");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("jw")).unwrap();
/// let orders = driver.create_input_topic::<String, String>("orders");
/// let shipments = driver.create_input_topic::<String, String>("shipments");
/// shipments.pipe_input_at("o1".into(), "early".into(), 950);
/// orders.pipe_input_at("o1".into(), "order".into(), 1_000);
/// shipments.pipe_input_at("o1".into(), "parcel".into(), 1_050);
/// let shipped = driver.create_output_topic::<String, String>("shipped");
/// assert_eq!(shipped.read_values_to_list(), vec!["order+parcel".to_string()]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    before: i64,
    after: i64,
    grace: i64,
}

impl JoinWindows {
    /// Records join when their timestamps differ by at most `difference`; records arriving
    /// after stream time passed their window are dropped (see [`JoinWindows`] for an
    /// example).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let views = builder.stream::<String, String>("views");
    /// let clicks = builder.stream::<String, String>("clicks");
    /// let windows = JoinWindows::of_time_difference_without_grace(Duration::from_millis(10));
    /// views.join_stream(&clicks, |v, c| format!("{v}+{c}"), windows).to("pairs");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("j")).unwrap();
    /// let views = driver.create_input_topic::<String, String>("views");
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// views.pipe_input_at("u".into(), "ad".into(), 100);
    /// clicks.pipe_input_at("u".into(), "buy".into(), 108); // 8 ms later: joins
    /// clicks.pipe_input_at("u".into(), "help".into(), 130); // 30 ms later: no join
    /// views.pipe_input_at("u".into(), "banner".into(), 105); // its window closed at 115: late
    /// let pairs = driver.create_output_topic::<String, String>("pairs");
    /// assert_eq!(pairs.read_values_to_list(), vec!["ad+buy".to_string()]);
    /// assert_eq!(driver.metrics().late_records_dropped, 1);
    /// ```
    pub fn of_time_difference_without_grace(difference: std::time::Duration) -> Self {
        Self::of_time_difference_and_grace(difference, std::time::Duration::ZERO)
    }

    /// Like [`of_time_difference_without_grace`](Self::of_time_difference_without_grace),
    /// accepting out-of-order records for `grace` longer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let views = builder.stream::<String, String>("views");
    /// let clicks = builder.stream::<String, String>("clicks");
    /// let windows = JoinWindows::of_time_difference_and_grace(
    ///     Duration::from_millis(10), Duration::from_millis(50));
    /// views.join_stream(&clicks, |v, c| format!("{v}+{c}"), windows).to("pairs");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("j")).unwrap();
    /// let views = driver.create_input_topic::<String, String>("views");
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("u".into(), "buy".into(), 108);
    /// clicks.pipe_input_at("u".into(), "help".into(), 130);
    /// views.pipe_input_at("u".into(), "banner".into(), 105); // out of order, within grace
    /// let pairs = driver.create_output_topic::<String, String>("pairs");
    /// assert_eq!(pairs.read_values_to_list(), vec!["banner+buy".to_string()]);
    /// assert_eq!(driver.metrics().late_records_dropped, 0);
    /// ```
    pub fn of_time_difference_and_grace(
        difference: std::time::Duration,
        grace: std::time::Duration,
    ) -> Self {
        let d = difference.as_millis() as i64;
        JoinWindows {
            before: d,
            after: d,
            grace: grace.as_millis() as i64,
        }
    }

    /// How much earlier the other side's record may be.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let orders = builder.stream::<String, String>("orders");
    /// let payments = builder.stream::<String, String>("payments");
    /// // A payment may come up to 100 ms after its order, but at most 5 ms before it.
    /// let windows = JoinWindows::of_time_difference_without_grace(Duration::from_millis(100))
    ///     .before(Duration::from_millis(5));
    /// orders.join_stream(&payments, |o, p| format!("{o}+{p}"), windows).to("paid");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("j")).unwrap();
    /// let payments = driver.create_input_topic::<String, String>("payments");
    /// payments.pipe_input_at("o1".into(), "p-92".into(), 92); // 8 ms before the order
    /// payments.pipe_input_at("o1".into(), "p-97".into(), 97); // 3 ms before the order
    /// let orders = driver.create_input_topic::<String, String>("orders");
    /// orders.pipe_input_at("o1".into(), "order".into(), 100);
    /// let paid = driver.create_output_topic::<String, String>("paid");
    /// assert_eq!(paid.read_values_to_list(), vec!["order+p-97".to_string()]);
    /// ```
    pub fn before(mut self, before: std::time::Duration) -> Self {
        self.before = before.as_millis() as i64;
        self
    }

    /// How much later the other side's record may be.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let views = builder.stream::<String, String>("views");
    /// let clicks = builder.stream::<String, String>("clicks");
    /// // A click counts when it comes at most 5 ms after the view (or up to 50 ms before).
    /// let windows = JoinWindows::of_time_difference_without_grace(Duration::from_millis(50))
    ///     .after(Duration::from_millis(5));
    /// views.join_stream(&clicks, |v, c| format!("{v}+{c}"), windows).to("pairs");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("j")).unwrap();
    /// let views = driver.create_input_topic::<String, String>("views");
    /// views.pipe_input_at("u".into(), "ad".into(), 100);
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("u".into(), "c-103".into(), 103);
    /// clicks.pipe_input_at("u".into(), "c-110".into(), 110); // 10 ms after: too late
    /// let pairs = driver.create_output_topic::<String, String>("pairs");
    /// assert_eq!(pairs.read_values_to_list(), vec!["ad+c-103".to_string()]);
    /// ```
    pub fn after(mut self, after: std::time::Duration) -> Self {
        self.after = after.as_millis() as i64;
        self
    }

    /// How long after a record's timestamp it can no longer be joined: both window bounds
    /// plus the grace period.
    fn close_after(&self) -> i64 {
        self.before + self.after + self.grace
    }
}

type StreamJoiner<V, VO, VR> = Arc<dyn Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync>;

/// Which input of a stream–stream join a processor serves.
trait JoinSide<V, VO>: 'static {
    type This: Data;
    type Other: Data;
    /// 0 for the left stream, 1 for the right.
    const SIDE: u8;
    fn pair<'a>(
        this: Option<&'a Self::This>,
        other: Option<&'a Self::Other>,
    ) -> (Option<&'a V>, Option<&'a VO>);
}

struct LeftSide;
struct RightSide;

impl<V: Data, VO: Data> JoinSide<V, VO> for LeftSide {
    type This = V;
    type Other = VO;
    const SIDE: u8 = 0;
    fn pair<'a>(this: Option<&'a V>, other: Option<&'a VO>) -> (Option<&'a V>, Option<&'a VO>) {
        (this, other)
    }
}

impl<V: Data, VO: Data> JoinSide<V, VO> for RightSide {
    type This = VO;
    type Other = V;
    const SIDE: u8 = 1;
    fn pair<'a>(this: Option<&'a VO>, other: Option<&'a V>) -> (Option<&'a V>, Option<&'a VO>) {
        (other, this)
    }
}

/// Key of an unmatched record in the shared outer-join store: when it closes, which side,
/// its timestamp, then its key bytes. Ordered by close time.
fn unmatched_key(closes: i64, side: u8, timestamp: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + key.len());
    out.extend_from_slice(&ordered(closes));
    out.push(side);
    out.extend_from_slice(&ordered(timestamp));
    out.extend_from_slice(key);
    out
}

struct StreamJoinConfig<K, V, VO, VR> {
    this_store: String,
    other_store: String,
    /// Store of not-yet-matched records, for left and outer joins.
    unmatched_store: Option<String>,
    /// Whether this side's unmatched records are emitted (left side of left/outer joins,
    /// right side of outer joins).
    emit_unmatched: bool,
    windows: JoinWindows,
    joiner: StreamJoiner<V, VO, VR>,
    key_serde: crate::serde::SerdeRef<K>,
    left_serde: crate::serde::SerdeRef<V>,
    right_serde: crate::serde::SerdeRef<VO>,
}

struct StreamJoinProcessor<K, V, VO, VR, S: JoinSide<V, VO>> {
    config: Arc<StreamJoinConfig<K, V, VO, VR>>,
    this: Option<crate::state::WindowStore<K, S::This>>,
    other: Option<crate::state::WindowStore<K, S::Other>>,
    unmatched: Option<crate::state::KeyValueStore<Vec<u8>, Vec<u8>>>,
}

impl<K: Data, V: Data, VO: Data, VR: Data, S: JoinSide<V, VO>>
    StreamJoinProcessor<K, V, VO, VR, S>
{
    /// Emits, oldest first, the unmatched records whose window closed before `stream_time`.
    fn emit_closed(
        &self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        stream_time: i64,
    ) -> Result<(), BoxError> {
        let Some(store) = &self.unmatched else {
            return Ok(());
        };
        let upper = ordered(stream_time).to_vec();
        for (key, value) in store.range(&Vec::new(), &upper)? {
            if key.len() < 17 || from_ordered(&key) >= stream_time {
                continue;
            }
            store.delete(&key)?;
            let timestamp = from_ordered(&key[9..17]);
            let record_key = self.config.key_serde.deserialize(Some(&key[17..]))?;
            let joined = if key[8] == 0 {
                let left = self.config.left_serde.deserialize(Some(&value))?;
                (self.config.joiner)(Some(&left), None)
            } else {
                let right = self.config.right_serde.deserialize(Some(&value))?;
                (self.config.joiner)(None, Some(&right))
            };
            ctx.forward(Record::new(record_key, joined, timestamp))?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data, VO: Data, VR: Data, S: JoinSide<V, VO>> Processor<K, S::This, K, VR>
    for StreamJoinProcessor<K, V, VO, VR, S>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), BoxError> {
        self.this = Some(ctx.window_store(&self.config.this_store)?);
        self.other = Some(ctx.window_store(&self.config.other_store)?);
        if let Some(name) = &self.config.unmatched_store {
            self.unmatched = Some(ctx.key_value_store(name)?);
        }
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        r: Record<K, S::This>,
    ) -> Result<(), BoxError> {
        let (this, other) = match (&self.this, &self.other) {
            (Some(t), Some(o)) => (t, o),
            _ => return Err("join stores not initialized".into()),
        };
        let w = self.config.windows;
        // The other side's records that may join: for the left stream [t - before, t + after],
        // for the right stream the mirror image.
        let (lower, upper) = if S::SIDE == 0 {
            (w.before, w.after)
        } else {
            (w.after, w.before)
        };
        let t = r.timestamp;
        let stream_time = ctx.stream_time();
        if t + upper + w.grace < stream_time {
            ctx.record_late();
            return Ok(());
        }
        this.put(&r.key, &r.value, t)?;
        let matches = other.fetch_range(&r.key, t - lower, t + upper)?;
        let key_bytes = match &self.unmatched {
            Some(_) => self.config.key_serde.serialize(&r.key)?.unwrap_or_default(),
            None => Vec::new(),
        };
        for (other_t, other_value) in &matches {
            let (left, right) = S::pair(Some(&r.value), Some(other_value));
            let joined = (self.config.joiner)(left, right);
            ctx.forward(Record {
                key: r.key.clone(),
                value: joined,
                timestamp: t.max(*other_t),
                headers: r.headers.clone(),
            })?;
            if let Some(store) = &self.unmatched {
                let other_side = 1 - S::SIDE;
                store.delete(&unmatched_key(
                    other_t + w.close_after(),
                    other_side,
                    *other_t,
                    &key_bytes,
                ))?;
            }
        }
        if matches.is_empty() && self.config.emit_unmatched {
            if let Some(store) = &self.unmatched {
                let (left, right) = S::pair(Some(&r.value), None);
                let value = match (left, right) {
                    (Some(l), _) => self.config.left_serde.serialize(l)?,
                    (_, Some(rv)) => self.config.right_serde.serialize(rv)?,
                    _ => None,
                };
                store.put(
                    &unmatched_key(t + w.close_after(), S::SIDE, t, &key_bytes),
                    &value.unwrap_or_default(),
                )?;
            }
        }
        self.emit_closed(ctx, stream_time)
    }
}

impl<K: Data + DefaultSerde, V: Data + DefaultSerde> KStream<K, V> {
    #[allow(clippy::too_many_arguments)]
    fn join_stream_internal<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        windows: JoinWindows,
        joiner: StreamJoiner<V, VO, VR>,
        prefix: &str,
        left_unmatched: bool,
        right_unmatched: bool,
    ) -> KStream<K, VR> {
        let mut graph = self.graph.borrow_mut();
        let (key_serde, left_serde, right_serde) =
            (K::default_serde(), V::default_serde(), VO::default_serde());
        let left_input = if self.repartition_required {
            let base = graph.next_name(&format!("{prefix}-LEFT-REPARTITION"));
            graph.add_repartition(self.node, &base, key_serde.clone(), left_serde.clone())
        } else {
            self.node
        };
        let right_input = if other.repartition_required {
            let base = graph.next_name(&format!("{prefix}-RIGHT-REPARTITION"));
            graph.add_repartition(other.node, &base, key_serde.clone(), right_serde.clone())
        } else {
            other.node
        };
        let size =
            std::time::Duration::from_millis((windows.before + windows.after + 1).max(1) as u64);
        let retention = std::time::Duration::from_millis((windows.close_after() + 1).max(1) as u64);
        let this_store = format!("{}-store", graph.next_name("KSTREAM-JOINTHIS"));
        let other_store = format!("{}-store", graph.next_name("KSTREAM-JOINOTHER"));
        graph.add_store(
            crate::state::Stores::window_store_builder_with(
                this_store.clone(),
                size,
                retention,
                true,
                key_serde.clone(),
                left_serde.clone(),
            )
            .into_def(false),
        );
        graph.add_store(
            crate::state::Stores::window_store_builder_with(
                other_store.clone(),
                size,
                retention,
                true,
                key_serde.clone(),
                right_serde.clone(),
            )
            .into_def(false),
        );
        let unmatched_store = (left_unmatched || right_unmatched).then(|| {
            let name = format!("{}-store", graph.next_name("KSTREAM-OUTERSHARED"));
            graph.add_store(
                crate::state::Stores::key_value_store_builder_with(
                    name.clone(),
                    crate::serde::Serdes::bytes(),
                    crate::serde::Serdes::bytes(),
                )
                .into_def(false),
            );
            name
        });
        let config = |this: &str, other: &str, emit: bool| {
            Arc::new(StreamJoinConfig {
                this_store: this.to_string(),
                other_store: other.to_string(),
                unmatched_store: unmatched_store.clone(),
                emit_unmatched: emit,
                windows,
                joiner: joiner.clone(),
                key_serde: key_serde.clone(),
                left_serde: left_serde.clone(),
                right_serde: right_serde.clone(),
            })
        };
        let mut stores = vec![this_store.clone(), other_store.clone()];
        stores.extend(unmatched_store.iter().cloned());
        let left_config = config(&this_store, &other_store, left_unmatched);
        let right_config = config(&other_store, &this_store, right_unmatched);
        let left_name = graph.next_name(&format!("{prefix}-THIS"));
        let left_node = graph.add_processor(
            left_name,
            NodeKind::Processor,
            &[left_input],
            stores.clone(),
            move || StreamJoinProcessor::<K, V, VO, VR, LeftSide> {
                config: left_config.clone(),
                this: None,
                other: None,
                unmatched: None,
            },
        );
        let right_name = graph.next_name(&format!("{prefix}-OTHER"));
        let right_node = graph.add_processor(
            right_name,
            NodeKind::Processor,
            &[right_input],
            stores,
            move || StreamJoinProcessor::<K, V, VO, VR, RightSide> {
                config: right_config.clone(),
                this: None,
                other: None,
                unmatched: None,
            },
        );
        graph.mark_join(left_node);
        graph.mark_join(right_node);
        let merged = graph.add_fn(
            "KSTREAM-MERGE",
            &[left_node, right_node],
            |ctx, r: Record<K, VR>| ctx.forward(r),
        );
        drop(graph);
        KStream::new(self.graph.clone(), merged, false)
    }

    /// Joins records of both streams with the same key whose timestamps are within the
    /// window; the result has the later of the two timestamps.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let views = builder.stream::<String, String>("views");
    /// let clicks = builder.stream::<String, String>("clicks");
    /// views
    ///     .join_stream(&clicks, |v, c| format!("{v}->{c}"),
    ///         JoinWindows::of_time_difference_without_grace(Duration::from_millis(10)))
    ///     .to("view-clicks");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("ss")).unwrap();
    /// driver.create_input_topic::<String, String>("views").pipe_input_at("u".into(), "ad".into(), 100);
    /// driver.create_input_topic::<String, String>("clicks").pipe_input_at("u".into(), "buy".into(), 105);
    /// let out = driver.create_output_topic::<String, String>("view-clicks");
    /// assert_eq!(out.read_value(), Some("ad->buy".to_string()));
    /// ```
    pub fn join_stream<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        let joiner: StreamJoiner<V, VO, VR> = Arc::new(move |l, r| match (l, r) {
            (Some(l), Some(r)) => joiner(l, r),
            _ => unreachable!("an inner join only joins matched records"),
        });
        self.join_stream_internal(other, windows, joiner, "KSTREAM-JOIN", false, false)
    }

    /// Like [`join_stream`](Self::join_stream); a left record that found no match is joined
    /// with `None` once its window has closed (no early, spurious `None` results).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let orders = builder.stream::<String, String>("orders");
    /// let payments = builder.stream::<String, i64>("payments");
    /// orders
    ///     .left_join_stream(&payments, |order, paid| format!("{order}:{paid:?}"),
    ///         JoinWindows::of_time_difference_without_grace(Duration::from_millis(100)))
    ///     .to("order-payments");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("j")).unwrap();
    /// driver.create_input_topic::<String, String>("orders").pipe_input_at("o1".into(), "mouse".into(), 0);
    /// let out = driver.create_output_topic::<String, String>("order-payments");
    /// assert!(out.is_empty()); // no payment yet, but the window is still open
    /// driver.create_input_topic::<String, i64>("payments").pipe_input_at("o2".into(), 5, 500);
    /// assert_eq!(out.read_key_value(), Some(("o1".to_string(), "mouse:None".to_string())));
    /// ```
    pub fn left_join_stream<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        let joiner: StreamJoiner<V, VO, VR> = Arc::new(move |l, r| match l {
            Some(l) => joiner(l, r),
            None => unreachable!("a left join emits right records only when matched"),
        });
        self.join_stream_internal(other, windows, joiner, "KSTREAM-LEFTJOIN", true, false)
    }

    /// Like [`left_join_stream`](Self::left_join_stream), for unmatched records of both sides.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let orders = builder.stream::<String, String>("orders");
    /// let payments = builder.stream::<String, i64>("payments");
    /// orders
    ///     .outer_join_stream(&payments, |order, paid| format!("{order:?}/{paid:?}"),
    ///         JoinWindows::of_time_difference_without_grace(Duration::from_millis(100)))
    ///     .to("matched");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("j")).unwrap();
    /// driver.create_input_topic::<String, i64>("payments").pipe_input_at("x".into(), 5, 0);
    /// driver.create_input_topic::<String, String>("orders").pipe_input_at("y".into(), "mouse".into(), 500);
    /// let out = driver.create_output_topic::<String, String>("matched");
    /// // The payment's window closed without an order; the order's window is still open.
    /// assert_eq!(out.read_key_values_to_list(), vec![("x".to_string(), "None/Some(5)".to_string())]);
    /// ```
    pub fn outer_join_stream<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        self.join_stream_internal(
            other,
            windows,
            Arc::new(joiner),
            "KSTREAM-OUTERJOIN",
            true,
            true,
        )
    }
}

type TableJoiner<V, VO, VR> = Arc<dyn Fn(Option<&V>, Option<&VO>) -> Option<VR> + Send + Sync>;

/// One side of a table–table join: on a change of this side, joins the old and the new
/// value with the other side's current row.
struct TableJoinSide<K, V, VO, VR, S: JoinSide<V, VO>> {
    other_store: String,
    joiner: TableJoiner<V, VO, VR>,
    other: Option<TimestampedKeyValueStore<K, S::Other>>,
}

impl<K: Data, V: Data, VO: Data, VR: Data, S: JoinSide<V, VO>>
    Processor<K, super::ops::Change<S::This>, K, super::ops::Change<VR>>
    for TableJoinSide<K, V, VO, VR, S>
{
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, super::ops::Change<VR>>,
    ) -> Result<(), BoxError> {
        self.other = Some(ctx.timestamped_key_value_store(&self.other_store)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, super::ops::Change<VR>>,
        r: Record<K, super::ops::Change<S::This>>,
    ) -> Result<(), BoxError> {
        let other = self
            .other
            .as_ref()
            .ok_or("store not initialized")?
            .get(&r.key)?;
        let other_value = other.as_ref().map(|o| &o.value);
        let join = |this: Option<&S::This>| {
            let (left, right) = S::pair(this, other_value);
            (self.joiner)(left, right)
        };
        let new = join(r.value.new.as_ref());
        let old = join(r.value.old.as_ref());
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        let timestamp = r.timestamp.max(other.map_or(i64::MIN, |o| o.timestamp));
        ctx.forward(Record {
            key: r.key,
            value: super::ops::Change { new, old },
            timestamp,
            headers: r.headers,
        })
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    fn join_table_internal<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: TableJoiner<V, VO, VR>,
        prefix: &str,
        materialized: Option<Materialized<K, VR>>,
        value_serde: crate::serde::SerdeRef<VR>,
    ) -> KTable<K, VR> {
        let mut graph = self.graph.borrow_mut();
        let left_store = self.ensure_store(&mut graph);
        let right_store = other.ensure_store(&mut graph);
        let (left_joiner, right_joiner) = (joiner.clone(), joiner);
        let name = graph.next_name(&format!("{prefix}-THIS"));
        let store = right_store.clone();
        let left = graph.add_processor(
            name,
            NodeKind::Processor,
            &[self.node],
            vec![left_store.clone(), right_store.clone()],
            move || TableJoinSide::<K, V, VO, VR, LeftSide> {
                other_store: store.clone(),
                joiner: left_joiner.clone(),
                other: None,
            },
        );
        let name = graph.next_name(&format!("{prefix}-OTHER"));
        let store = left_store.clone();
        let right = graph.add_processor(
            name,
            NodeKind::Processor,
            &[other.node],
            vec![left_store, right_store],
            move || TableJoinSide::<K, V, VO, VR, RightSide> {
                other_store: store.clone(),
                joiner: right_joiner.clone(),
                other: None,
            },
        );
        graph.mark_join(left);
        graph.mark_join(right);
        let merged = graph.add_fn(
            "KTABLE-MERGE",
            &[left, right],
            |ctx, r: Record<K, super::ops::Change<VR>>| ctx.forward(r),
        );
        drop(graph);
        let table = KTable::new(
            self.graph.clone(),
            merged,
            None,
            self.key_serde.clone(),
            value_serde,
        );
        match materialized {
            Some(m) => {
                let mut graph = self.graph.borrow_mut();
                let serde = m.value_serde.clone();
                let store = materialize(&mut graph, m, "KTABLE-JOIN-STATE-STORE");
                let name = graph.next_name("KTABLE-MATERIALIZE");
                let store_name = store.clone();
                let node = graph.add_processor(
                    name,
                    NodeKind::Processor,
                    &[merged],
                    vec![store.clone()],
                    move || TableTransform::<K, VR, VR> {
                        f: Arc::new(|_, v| Some(v)),
                        store_name: Some(store_name.clone()),
                        store: None,
                    },
                );
                drop(graph);
                KTable::new(
                    self.graph.clone(),
                    node,
                    Some(store),
                    self.key_serde.clone(),
                    serde,
                )
            }
            None => table,
        }
    }

    /// Joins two tables on their key: a row exists in the result while both sides have
    /// one. Updates of either side emit the new result (and retract the old one).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let names = builder.table::<String, String>("names", Materialized::default());
    /// let emails = builder.table::<String, String>("emails", Materialized::default());
    /// names.join(&emails, |n, e| format!("{n} <{e}>")).to_stream().to("contacts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("tt")).unwrap();
    /// driver.create_input_topic::<String, Option<String>>("names").pipe_input_at("u".into(), Some("Ann".into()), 1);
    /// driver.create_input_topic::<String, Option<String>>("emails").pipe_input_at("u".into(), Some("a@x".into()), 2);
    /// let out = driver.create_output_topic::<String, Option<String>>("contacts");
    /// assert_eq!(out.read_value(), Some(Some("Ann <a@x>".to_string())));
    /// ```
    pub fn join<VO: Data, VR: Data + DefaultSerde>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> = Arc::new(move |l, r| Some(joiner(l?, r?)));
        self.join_table_internal(other, joiner, "KTABLE-JOIN", None, VR::default_serde())
    }

    /// Like [`join`](Self::join), keeping left rows without a right row (joined with `None`).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let names = builder.table::<String, String>("names", Materialized::default());
    /// let emails = builder.table::<String, String>("emails", Materialized::default());
    /// names
    ///     .left_join(&emails, |n, e| format!("{n} <{}>", e.map_or("?", String::as_str)))
    ///     .to_stream()
    ///     .to("contacts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("tt")).unwrap();
    /// driver.create_input_topic::<String, Option<String>>("names").pipe_input_at("u".into(), Some("Ann".into()), 1);
    /// driver.create_input_topic::<String, Option<String>>("emails").pipe_input_at("u".into(), Some("a@x".into()), 2);
    /// let out = driver.create_output_topic::<String, Option<String>>("contacts");
    /// assert_eq!(out.read_values_to_list(), vec![Some("Ann <?>".to_string()), Some("Ann <a@x>".to_string())]);
    /// ```
    pub fn left_join<VO: Data, VR: Data + DefaultSerde>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> = Arc::new(move |l, r| Some(joiner(l?, r)));
        self.join_table_internal(other, joiner, "KTABLE-LEFTJOIN", None, VR::default_serde())
    }

    /// Like [`join`](Self::join), keeping rows of either side without a partner.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let names = builder.table::<String, String>("names", Materialized::default());
    /// let emails = builder.table::<String, String>("emails", Materialized::default());
    /// names
    ///     .outer_join(&emails, |n, e| format!("{}|{}", n.map_or("-", String::as_str), e.map_or("-", String::as_str)))
    ///     .to_stream()
    ///     .to("contacts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("tt")).unwrap();
    /// driver.create_input_topic::<String, Option<String>>("emails").pipe_input_at("u".into(), Some("a@x".into()), 1);
    /// driver.create_input_topic::<String, Option<String>>("names").pipe_input_at("u".into(), Some("Ann".into()), 2);
    /// let out = driver.create_output_topic::<String, Option<String>>("contacts");
    /// assert_eq!(out.read_values_to_list(), vec![Some("-|a@x".to_string()), Some("Ann|a@x".to_string())]);
    /// ```
    pub fn outer_join<VO: Data, VR: Data + DefaultSerde>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> =
            Arc::new(move |l, r| (l.is_some() || r.is_some()).then(|| joiner(l, r)));
        self.join_table_internal(other, joiner, "KTABLE-OUTERJOIN", None, VR::default_serde())
    }

    /// [`join`](Self::join) with the result kept in a queryable store.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let names = builder.table::<String, String>("names", Materialized::default());
    /// let emails = builder.table::<String, String>("emails", Materialized::default());
    /// names.join_with(&emails, |n, e| format!("{n} <{e}>"), Materialized::named("contacts"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("tt")).unwrap();
    /// driver.create_input_topic::<String, Option<String>>("names").pipe_input_at("u".into(), Some("Ann".into()), 1);
    /// driver.create_input_topic::<String, Option<String>>("emails").pipe_input_at("u".into(), Some("a@x".into()), 2);
    /// let contacts = driver.key_value_store::<String, String>("contacts").unwrap();
    /// assert_eq!(contacts.get(&"u".to_string()).unwrap(), Some("Ann <a@x>".to_string()));
    /// ```
    pub fn join_with<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> = Arc::new(move |l, r| Some(joiner(l?, r?)));
        let serde = materialized.value_serde.clone();
        self.join_table_internal(other, joiner, "KTABLE-JOIN", Some(materialized), serde)
    }

    /// [`left_join`](Self::left_join) with the result kept in a queryable store (see
    /// [`join_with`](Self::join_with) for an example).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let names = builder.table::<String, String>("names", Materialized::default());
    /// let emails = builder.table::<String, String>("emails", Materialized::default());
    /// names.left_join_with(&emails, |n, e| format!("{n} <{}>", e.map_or("?", String::as_str)),
    ///     Materialized::named("contacts"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("tt")).unwrap();
    /// let contacts = driver.key_value_store::<String, String>("contacts").unwrap();
    /// let (names, emails) = (driver.create_input_topic::<String, Option<String>>("names"),
    ///     driver.create_input_topic::<String, Option<String>>("emails"));
    /// names.pipe_input_at("u".into(), Some("Ann".into()), 1);
    /// assert_eq!(contacts.get(&"u".to_string()).unwrap(), Some("Ann <?>".to_string()));
    /// emails.pipe_input_at("u".into(), Some("a@x".into()), 2);
    /// assert_eq!(contacts.get(&"u".to_string()).unwrap(), Some("Ann <a@x>".to_string()));
    /// ```
    pub fn left_join_with<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> = Arc::new(move |l, r| Some(joiner(l?, r)));
        let serde = materialized.value_serde.clone();
        self.join_table_internal(other, joiner, "KTABLE-LEFTJOIN", Some(materialized), serde)
    }

    /// [`outer_join`](Self::outer_join) with the result kept in a queryable store (see
    /// [`join_with`](Self::join_with) for an example).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let names = builder.table::<String, String>("names", Materialized::default());
    /// let emails = builder.table::<String, String>("emails", Materialized::default());
    /// let or_dash = |s: Option<&String>| s.map_or("-", String::as_str).to_string();
    /// names.outer_join_with(&emails, move |n, e| format!("{}|{}", or_dash(n), or_dash(e)),
    ///     Materialized::named("contacts"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("tt")).unwrap();
    /// driver.create_input_topic::<String, Option<String>>("emails")
    ///     .pipe_input_at("u".into(), Some("a@x".into()), 1); // no name yet
    /// let contacts = driver.key_value_store::<String, String>("contacts").unwrap();
    /// assert_eq!(contacts.get(&"u".to_string()).unwrap(), Some("-|a@x".to_string()));
    /// ```
    pub fn outer_join_with<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> =
            Arc::new(move |l, r| (l.is_some() || r.is_some()).then(|| joiner(l, r)));
        let serde = materialized.value_serde.clone();
        self.join_table_internal(other, joiner, "KTABLE-OUTERJOIN", Some(materialized), serde)
    }
}
