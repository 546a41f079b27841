//! The mutable graph behind a [`StreamsBuilder`](super::StreamsBuilder): nodes are added with
//! typed factories and checked when the topology is built.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::{BoxError, TopologyError};
use crate::processor::{Processor, ProcessorContext, Record};
use crate::runtime::node::{NodeOps, Port, ProcessorNode};
use crate::serde::SerdeRef;
use crate::state::StoreDef;
use crate::topology::{NodeDef, NodeFactory, NodeKind, ProcessorFactory, TopicRef, Topology};

use super::ops::{SinkProcessor, SourceNode, TopicChoice};
use super::TimestampExtractor;

/// A processor made of one closure: the form of every stateless DSL operator.
pub(crate) struct FnProcessor<F>(pub Arc<F>);

impl<KIn, VIn, KOut, VOut, F> Processor<KIn, VIn, KOut, VOut> for FnProcessor<F>
where
    F: Fn(&mut ProcessorContext<'_, KOut, VOut>, Record<KIn, VIn>) -> Result<(), BoxError>
        + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        record: Record<KIn, VIn>,
    ) -> Result<(), BoxError> {
        (self.0)(ctx, record)
    }
}

#[derive(Default)]
pub(crate) struct GraphBuilder {
    nodes: Vec<NodeDef>,
    stores: HashMap<String, Arc<StoreDef>>,
    repartition_topics: Vec<String>,
    /// Partition counts asked for with `Repartitioned::with_partitions`, by topic name.
    repartition_partitions: HashMap<String, i32>,
    external_sources: HashSet<String>,
    errors: Vec<TopologyError>,
    counter: usize,
    /// For windowed aggregation nodes: how long after a window's end it closes (grace, plus
    /// the gap for sessions), found by `suppress` walking up from a windowed table.
    window_close: HashMap<usize, i64>,
    /// Nodes of the global sub-topology (sources and processors of global tables).
    global_nodes: HashSet<usize>,
    /// Join processors: their sub-topology's source topics must be co-partitioned.
    join_nodes: HashSet<usize>,
}

/// Kafka's rule for topic names, also applied to store and operator names that become
/// part of topic names.
pub(crate) fn check_name(name: &str) -> Result<(), TopologyError> {
    let invalid = |reason: &str| {
        Err(TopologyError::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > 249 {
        return invalid("longer than 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("`.` and `..` are not allowed");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return invalid("only ASCII letters, digits, `.`, `_` and `-` are allowed");
    }
    Ok(())
}

impl GraphBuilder {
    /// The next generated name, as Kafka Streams makes them: `KSTREAM-FILTER-0000000003`.
    pub(crate) fn next_name(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}-{:010}", self.counter);
        self.counter += 1;
        name
    }

    fn name_or(&mut self, name: Option<String>, prefix: &str) -> String {
        match name {
            Some(name) => {
                self.check(&name);
                if self.nodes.iter().any(|n| n.name == name) {
                    self.errors.push(TopologyError::InvalidName {
                        name: name.clone(),
                        reason: "another node has this name".into(),
                    });
                }
                name
            }
            None => self.next_name(prefix),
        }
    }

    pub(crate) fn check(&mut self, name: &str) {
        if let Err(e) = check_name(name) {
            self.errors.push(e);
        }
    }

    fn add_node(
        &mut self,
        name: String,
        kind: NodeKind,
        parents: &[usize],
        stores: Vec<String>,
        factory: NodeFactory,
    ) -> usize {
        let id = self.nodes.len();
        for &p in parents {
            self.nodes[p].children.push(id);
        }
        self.nodes.push(NodeDef {
            name,
            kind,
            parents: parents.to_vec(),
            children: Vec::new(),
            stores,
            factory,
        });
        id
    }

    pub(crate) fn add_source<K: Clone + 'static, V: Clone + 'static>(
        &mut self,
        topics: Vec<TopicRef>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        extractor: Option<TimestampExtractor<K, V>>,
        name: Option<String>,
        skip_null_keys: bool,
    ) -> usize {
        for topic in &topics {
            if let TopicRef::External(t) = topic {
                self.check(t);
                if !self.external_sources.insert(t.clone()) {
                    self.errors
                        .push(TopologyError::TopicAlreadyRegistered(t.clone()));
                }
            }
        }
        let name = self.name_or(name, "KSTREAM-SOURCE");
        let factory: crate::topology::SourceFactory = Arc::new(move |inst, id| {
            Rc::new(RefCell::new(SourceNode {
                name: inst.name(id),
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
                extractor: extractor.clone(),
                skip_null_keys,
                children: inst.children::<K, V>(id),
            }))
        });
        self.add_node(
            name,
            NodeKind::Source(topics),
            &[],
            Vec::new(),
            NodeFactory::Source(factory),
        )
    }

    /// Adds a processor node; `supplier` makes one processor per task.
    pub(crate) fn add_processor<KIn, VIn, KOut, VOut, P, S>(
        &mut self,
        name: String,
        kind: NodeKind,
        parents: &[usize],
        stores: Vec<String>,
        supplier: S,
    ) -> usize
    where
        KIn: 'static,
        VIn: 'static,
        KOut: 'static,
        VOut: 'static,
        P: Processor<KIn, VIn, KOut, VOut>,
        S: Fn() -> P + Send + Sync + 'static,
    {
        let factory: ProcessorFactory = Arc::new(move |inst, id| {
            let node = Rc::new(RefCell::new(ProcessorNode::<P, KIn, VIn, KOut, VOut> {
                processor: supplier(),
                children: inst.children::<KOut, VOut>(id),
                node: id,
                name: inst.name(id),
                _input: PhantomData,
            }));
            let port: Port<KIn, VIn> = node.clone();
            (
                Box::new(port) as Box<dyn std::any::Any>,
                node as Rc<RefCell<dyn NodeOps>>,
            )
        });
        self.add_node(name, kind, parents, stores, NodeFactory::Processor(factory))
    }

    /// Adds a stateless operator made of one closure.
    pub(crate) fn add_fn<KIn, VIn, KOut, VOut, F>(
        &mut self,
        prefix: &str,
        parents: &[usize],
        f: F,
    ) -> usize
    where
        KIn: 'static,
        VIn: 'static,
        KOut: 'static,
        VOut: 'static,
        F: Fn(&mut ProcessorContext<'_, KOut, VOut>, Record<KIn, VIn>) -> Result<(), BoxError>
            + Send
            + Sync
            + 'static,
    {
        let name = self.next_name(prefix);
        let f = Arc::new(f);
        self.add_processor(name, NodeKind::Processor, parents, Vec::new(), move || {
            FnProcessor(f.clone())
        })
    }

    pub(crate) fn add_sink<K: 'static, V: 'static>(
        &mut self,
        parent: usize,
        topic: TopicChoice<K, V>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        name: Option<String>,
    ) -> usize {
        let name = self.name_or(name, "KSTREAM-SINK");
        let topic_ref = match &topic {
            TopicChoice::Fixed(t) => {
                if let TopicRef::External(t) = t {
                    self.check(t);
                }
                Some(t.clone())
            }
            TopicChoice::Dynamic(_) => None,
        };
        self.add_processor(
            name,
            NodeKind::Sink(topic_ref),
            &[parent],
            Vec::new(),
            move || SinkProcessor::new(topic.clone(), key_serde.clone(), value_serde.clone()),
        )
    }

    /// Routes records through `<application-id>-<base>-repartition`; returns the new source.
    pub(crate) fn add_repartition<K: Clone + 'static, V: Clone + 'static>(
        &mut self,
        parent: usize,
        base: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> usize {
        let topic = format!("{base}-repartition");
        self.check(&topic);
        if self.repartition_topics.contains(&topic) {
            self.errors.push(TopologyError::InvalidName {
                name: topic.clone(),
                reason: "another repartition topic has this name".into(),
            });
        }
        self.repartition_topics.push(topic.clone());
        let topic = TopicRef::Internal(topic);
        let sink_name = self.next_name("KSTREAM-SINK");
        self.add_sink(
            parent,
            TopicChoice::Fixed(topic.clone()),
            key_serde.clone(),
            value_serde.clone(),
            Some(sink_name),
        );
        self.add_source(vec![topic], key_serde, value_serde, None, None, false)
    }

    pub(crate) fn set_window_close(&mut self, node: usize, after_end: i64) {
        self.window_close.insert(node, after_end);
    }

    /// The close rule of the windowed aggregation upstream of `node`.
    pub(crate) fn window_close_of(&self, mut node: usize) -> Option<i64> {
        loop {
            if let Some(close) = self.window_close.get(&node) {
                return Some(*close);
            }
            node = *self.nodes[node].parents.first()?;
        }
    }

    /// Fixes the partition count of the repartition topic `<base>-repartition`.
    pub(crate) fn set_repartition_partitions(&mut self, base: &str, partitions: i32) {
        if partitions < 1 {
            self.errors.push(TopologyError::InvalidName {
                name: base.to_string(),
                reason: format!("a topic needs at least one partition, not {partitions}"),
            });
        }
        self.repartition_partitions
            .insert(format!("{base}-repartition"), partitions);
    }

    pub(crate) fn mark_join(&mut self, node: usize) {
        self.join_nodes.insert(node);
    }

    pub(crate) fn mark_global(&mut self, node: usize) {
        self.global_nodes.insert(node);
    }

    pub(crate) fn add_store(&mut self, def: StoreDef) {
        self.check(&def.name);
        if self.stores.contains_key(&def.name) {
            self.errors
                .push(TopologyError::StoreAlreadyRegistered(def.name.clone()));
            return;
        }
        self.stores.insert(def.name.clone(), Arc::new(def));
    }

    pub(crate) fn build(&self) -> Result<Topology, TopologyError> {
        if let Some(err) = self.errors.first() {
            return Err(err.clone());
        }
        if !self
            .nodes
            .iter()
            .any(|n| matches!(n.kind, NodeKind::Source(_)))
        {
            return Err(TopologyError::NoSources);
        }
        for node in &self.nodes {
            for store in &node.stores {
                if !self.stores.contains_key(store) {
                    return Err(TopologyError::UnknownStore {
                        processor: node.name.clone(),
                        store: store.clone(),
                    });
                }
            }
        }
        Ok(Topology::new(
            self.nodes.clone(),
            self.stores.clone(),
            self.repartition_topics.clone(),
            &self.repartition_partitions,
            &self.global_nodes,
            &self.join_nodes,
        ))
    }
}
