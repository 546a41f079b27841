//! Joins. A stream–table join looks each stream record up in the table's store at the
//! record's time; table updates do not emit.
//!
//! Both sides must be partitioned by the same key: a stream whose key changed is routed
//! through a repartition topic first, and the join processor is connected to the table's
//! store, so both land in one sub-topology (one task per partition holds both). A table
//! that is not materialized yet (after `filter` or `map_values` without `Materialized`) is
//! materialized for the join.

use std::sync::Arc;

use crate::error::BoxError;
use crate::processor::{Processor, ProcessorContext, Record};
use crate::serde::DefaultSerde;
use crate::state::TimestampedKeyValueStore;
use crate::topology::NodeKind;

use super::kgrouped::materialize;
use super::kstream::KStream;
use super::ktable::KTable;
use super::ops::TableTransform;
use super::{Data, GraphBuilder, Materialized};

type StreamTableJoiner<K, V, VT, VR> = Arc<dyn Fn(&K, V, Option<&VT>) -> Option<VR> + Send + Sync>;

struct StreamTableJoin<K, V, VT, VR> {
    store_name: String,
    joiner: StreamTableJoiner<K, V, VT, VR>,
    store: Option<TimestampedKeyValueStore<K, VT>>,
}

impl<K: Data, V: Data, VT: Data, VR: Data> Processor<K, V, K, VR>
    for StreamTableJoin<K, V, VT, VR>
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
        let row = store.get(&r.key)?;
        match (self.joiner)(&r.key, r.value, row.as_ref().map(|v| &v.value)) {
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
        joiner: StreamTableJoiner<K, V, VT, VR>,
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
                joiner: joiner.clone(),
                store: None,
            },
        );
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
        let joiner: StreamTableJoiner<K, V, VT, VR> =
            Arc::new(move |_, v, row| row.map(|row| joiner(v, row)));
        self.join_table_internal(table, "KSTREAM-JOIN", joiner)
    }

    /// Like [`join`](Self::join), but records without a row are joined with `None`.
    pub fn left_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        V: DefaultSerde,
    {
        let joiner: StreamTableJoiner<K, V, VT, VR> =
            Arc::new(move |_, v, row| Some(joiner(v, row)));
        self.join_table_internal(table, "KSTREAM-LEFTJOIN", joiner)
    }
}
