//! A [`Topology`]: the processor graph a [`StreamsBuilder`](crate::dsl::StreamsBuilder)
//! builds, split into sub-topologies, with the stores and internal topics it needs.
//!
//! A topology is a definition, shared by every task: it holds factories, and each task
//! instantiates the nodes of its sub-topology for its own partition. Sub-topologies are the
//! connected parts of the graph; they talk to each other only through repartition topics, so
//! each can be scaled by partition on its own. [`Topology::describe`] prints all of this the
//! way Kafka Streams does.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use crate::runtime::node::{Children, NodeOps, Port, SourceInput};
use crate::state::StoreDef;

/// A topic a node reads or writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TopicRef {
    /// A user topic, by its full name.
    External(String),
    /// An internal topic, named `<application-id>-<name>` at run time.
    Internal(String),
}

impl TopicRef {
    pub(crate) fn resolve(&self, application_id: &str) -> String {
        match self {
            TopicRef::External(t) => t.clone(),
            TopicRef::Internal(t) => format!("{application_id}-{t}"),
        }
    }

    fn display_name(&self) -> &str {
        match self {
            TopicRef::External(t) | TopicRef::Internal(t) => t,
        }
    }
}

pub(crate) type SourceFactory =
    Arc<dyn Fn(&Instantiator<'_>, usize) -> Rc<RefCell<dyn SourceInput>> + Send + Sync>;
pub(crate) type ProcessorFactory =
    Arc<dyn Fn(&Instantiator<'_>, usize) -> (Box<dyn Any>, Rc<RefCell<dyn NodeOps>>) + Send + Sync>;

#[derive(Clone)]
pub(crate) enum NodeFactory {
    Source(SourceFactory),
    Processor(ProcessorFactory),
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Source(Vec<TopicRef>),
    Processor,
    Sink(Option<TopicRef>),
}

#[derive(Clone)]
pub(crate) struct NodeDef {
    pub name: String,
    pub kind: NodeKind,
    pub parents: Vec<usize>,
    pub children: Vec<usize>,
    pub stores: Vec<String>,
    pub factory: NodeFactory,
}

/// What an internal topic is for.
///
/// ```
/// use kstreams::dsl::{Materialized, StreamsBuilder};
/// use kstreams::topology::InternalTopicKind;
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("words").group_by(|_, word| word.clone())
///     .count_with(Materialized::named("counts"));
/// let description = builder.build().unwrap().describe();
/// let kinds: Vec<(&str, InternalTopicKind)> =
///     description.internal_topics.iter().map(|t| (t.name.as_str(), t.kind)).collect();
/// assert_eq!(kinds, vec![
///     ("counts-repartition", InternalTopicKind::Repartition), // re-keyed by word
///     ("counts-changelog", InternalTopicKind::Changelog),     // backs the store `counts`
/// ]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalTopicKind {
    /// Carries records to their new partition after a key change.
    Repartition,
    /// Backs a state store, so it can be restored.
    Changelog,
}

/// An internal topic a topology needs, without the application-id prefix.
///
/// ```
/// use kstreams::dsl::{Repartitioned, StreamsBuilder};
/// use kstreams::topology::InternalTopicKind;
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("events").select_key(|_, v| v.clone())
///     .repartition_with(Repartitioned::default().with_name("by-value").with_partitions(4))
///     .to("events-by-value");
/// let description = builder.build().unwrap().describe();
/// let topic = &description.internal_topics[0];
/// assert_eq!(topic.name, "by-value-repartition");
/// assert_eq!(topic.kind, InternalTopicKind::Repartition);
/// assert_eq!(topic.configs["cleanup.policy"], "delete");
/// // Read by the second sub-topology, with the partition count asked for.
/// assert_eq!((topic.subtopology, topic.partitions), (1, Some(4)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    /// Name without the `<application-id>-` prefix.
    pub name: String,
    /// Repartition or changelog.
    pub kind: InternalTopicKind,
    /// Topic configs to create it with.
    pub configs: BTreeMap<String, String>,
    /// The sub-topology that reads it (repartition) or owns its store (changelog).
    pub subtopology: usize,
    /// The partition count asked for (`Repartitioned::with_partitions`); otherwise it is
    /// derived from the source topics, see [`Topology::internal_topic_partitions`].
    pub partitions: Option<i32>,
}

impl InternalTopic {
    /// The full topic name for an application.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .count_with(Materialized::named("clicks-per-user"));
    /// let topology = builder.build().unwrap();
    /// let changelog = topology.describe().internal_topics[0].full_name("shop");
    /// assert_eq!(changelog, "shop-clicks-per-user-changelog");
    /// // It is the topic the application actually writes.
    /// let driver = TestDriver::new(&topology, StreamsConfig::new("shop")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("ann".into(), "/".into(), 0);
    /// assert_eq!(driver.produced_topic_names(), vec![changelog]);
    /// ```
    pub fn full_name(&self, application_id: &str) -> String {
        format!("{application_id}-{}", self.name)
    }
}

pub(crate) struct SubtopologyDef {
    pub nodes: Vec<usize>,
    pub source_topics: Vec<TopicRef>,
    pub stores: Vec<String>,
}

/// The shared, immutable definition behind a [`Topology`].
pub(crate) struct TopologyInner {
    /// Source topics whose records meet in a join: they must have equal partition counts.
    pub copartition_groups: Vec<Vec<TopicRef>>,
    /// The sub-topology that fills global stores (it makes no tasks per partition: one
    /// global task reads every partition), if any.
    pub global: Option<usize>,
    pub nodes: Vec<NodeDef>,
    pub stores: HashMap<String, Arc<StoreDef>>,
    pub subtopologies: Vec<SubtopologyDef>,
    pub internal_topics: Vec<InternalTopic>,
}

/// A built processor topology, ready to run on the [`TestDriver`](crate::testing::TestDriver)
/// or on Kafka. Cheap to clone.
///
/// ```
/// use kstreams::dsl::{Materialized, StreamsBuilder};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("words")
///     .group_by(|_, word| word.clone())
///     .count_with(Materialized::named("counts"))
///     .to_stream()
///     .to("word-counts");
/// let topology = builder.build().unwrap();
/// assert_eq!(topology.source_topics(), vec!["words"]);
/// assert_eq!(topology.sink_topics(), vec!["word-counts"]);
/// assert_eq!(topology.store_names(), vec!["counts"]);
/// // Two sub-topologies, talking through `counts-repartition`.
/// assert_eq!(topology.describe().subtopologies.len(), 2);
/// ```
#[derive(Clone)]
pub struct Topology {
    pub(crate) inner: Arc<TopologyInner>,
}

/// Node instances of one task, as [`TopologyInner::instantiate`] makes them.
pub(crate) struct Instances {
    pub sources: HashMap<Arc<str>, Rc<RefCell<dyn SourceInput>>>,
    pub nodes: HashMap<usize, Rc<RefCell<dyn NodeOps>>>,
    pub init_order: Vec<usize>,
}

/// Hands node factories the typed ports of their children.
pub(crate) struct Instantiator<'a> {
    graph: &'a TopologyInner,
    application_id: &'a str,
    ports: HashMap<usize, Box<dyn Any>>,
}

impl Instantiator<'_> {
    pub(crate) fn children<K: 'static, V: 'static>(&self, node: usize) -> Children<K, V> {
        let ports = self.graph.nodes[node]
            .children
            .iter()
            .map(|child| {
                let port = self
                    .ports
                    .get(child)
                    .and_then(|p| p.downcast_ref::<Port<K, V>>())
                    .expect("the DSL connects only nodes of matching types, children first");
                (
                    Arc::from(self.graph.nodes[*child].name.as_str()),
                    port.clone(),
                )
            })
            .collect();
        Children { ports }
    }

    pub(crate) fn name(&self, node: usize) -> Arc<str> {
        self.graph.nodes[node].name.as_str().into()
    }

    pub(crate) fn resolve(&self, topic: &TopicRef) -> Arc<str> {
        topic.resolve(self.application_id).into()
    }
}

impl TopologyInner {
    /// Builds the nodes of a sub-topology, children before parents.
    pub(crate) fn instantiate(&self, subtopology: usize, application_id: &str) -> Instances {
        let mut inst = Instantiator {
            graph: self,
            application_id,
            ports: HashMap::new(),
        };
        let mut sources = HashMap::new();
        let mut nodes = HashMap::new();
        let mut init_order = Vec::new();
        // Node ids grow from parents to children, so reverse id order is children first.
        let mut ids = self.subtopologies[subtopology].nodes.clone();
        ids.sort_unstable();
        for &id in ids.iter().rev() {
            let def = &self.nodes[id];
            match &def.factory {
                NodeFactory::Source(factory) => {
                    let source = factory(&inst, id);
                    if let NodeKind::Source(topics) = &def.kind {
                        for topic in topics {
                            sources.insert(inst.resolve(topic), source.clone());
                        }
                    }
                }
                NodeFactory::Processor(factory) => {
                    let (port, ops) = factory(&inst, id);
                    inst.ports.insert(id, port);
                    nodes.insert(id, ops);
                    init_order.push(id);
                }
            }
        }
        init_order.reverse();
        Instances {
            sources,
            nodes,
            init_order,
        }
    }
}

impl Topology {
    pub(crate) fn new(
        nodes: Vec<NodeDef>,
        stores: HashMap<String, Arc<StoreDef>>,
        repartition_topics: Vec<String>,
        requested_partitions: &HashMap<String, i32>,
        global_nodes: &std::collections::HashSet<usize>,
        join_nodes: &std::collections::HashSet<usize>,
    ) -> Topology {
        // Sub-topologies: nodes joined by an edge or by a shared store.
        let mut uf: Vec<usize> = (0..nodes.len()).collect();
        fn find(uf: &mut [usize], x: usize) -> usize {
            let mut r = x;
            while uf[r] != r {
                r = uf[r];
            }
            let mut c = x;
            while uf[c] != r {
                let next = uf[c];
                uf[c] = r;
                c = next;
            }
            r
        }
        let union = |uf: &mut Vec<usize>, a: usize, b: usize| {
            let (ra, rb) = (find(uf, a), find(uf, b));
            if ra != rb {
                uf[ra.max(rb)] = ra.min(rb);
            }
        };
        let mut store_owner: HashMap<&str, usize> = HashMap::new();
        for (id, node) in nodes.iter().enumerate() {
            for &child in &node.children {
                union(&mut uf, id, child);
            }
            for store in &node.stores {
                // Global stores are shared by every task; they do not tie sub-topologies.
                if global_nodes.contains(&id) != stores.get(store).is_some_and(|d| d.global) {
                    continue;
                }
                match store_owner.get(store.as_str()) {
                    Some(&other) => union(&mut uf, id, other),
                    None => {
                        store_owner.insert(store, id);
                    }
                }
            }
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for id in (0..nodes.len()).filter(|id| !global_nodes.contains(id)) {
            let root = find(&mut uf, id);
            groups.entry(root).or_default().push(id);
        }
        let mut global_ids: Vec<usize> = global_nodes.iter().copied().collect();
        global_ids.sort_unstable();
        let global = (!global_ids.is_empty()).then_some(groups.len());
        let subtopologies: Vec<SubtopologyDef> = groups
            .into_values()
            .chain(global.map(|_| global_ids))
            .map(|ids| {
                let mut source_topics = Vec::new();
                let mut sub_stores = Vec::new();
                for &id in &ids {
                    if let NodeKind::Source(topics) = &nodes[id].kind {
                        source_topics.extend(topics.iter().cloned());
                    }
                    for s in &nodes[id].stores {
                        if !sub_stores.contains(s) {
                            sub_stores.push(s.clone());
                        }
                    }
                }
                SubtopologyDef {
                    nodes: ids,
                    source_topics,
                    stores: sub_stores,
                }
            })
            .collect();
        let mut internal_topics = Vec::new();
        for name in repartition_topics {
            let reader = subtopologies
                .iter()
                .position(|s| s.source_topics.contains(&TopicRef::Internal(name.clone())))
                .unwrap_or(0);
            let mut configs = BTreeMap::new();
            configs.insert("cleanup.policy".to_string(), "delete".to_string());
            configs.insert("retention.ms".to_string(), "-1".to_string());
            internal_topics.push(InternalTopic {
                partitions: requested_partitions.get(&name).copied(),
                name,
                kind: InternalTopicKind::Repartition,
                configs,
                subtopology: reader,
            });
        }
        for (index, sub) in subtopologies.iter().enumerate() {
            for store in &sub.stores {
                if let Some(def) = stores.get(store) {
                    if let Some(topic) = def.changelog_topic() {
                        internal_topics.push(InternalTopic {
                            partitions: None,
                            name: topic,
                            kind: InternalTopicKind::Changelog,
                            configs: def.changelog_configs(),
                            subtopology: index,
                        });
                    }
                }
            }
        }
        let copartition_groups = subtopologies
            .iter()
            .filter(|s| s.nodes.iter().any(|n| join_nodes.contains(n)) && s.source_topics.len() > 1)
            .map(|s| s.source_topics.clone())
            .collect();
        Topology {
            inner: Arc::new(TopologyInner {
                copartition_groups,
                global,
                nodes,
                stores,
                subtopologies,
                internal_topics,
            }),
        }
    }

    /// Describes the sub-topologies, their nodes, stores and internal topics; its `Display`
    /// is Kafka Streams' format.
    ///
    /// ```
    /// use kstreams::dsl::{Materialized, StreamsBuilder};
    /// use kstreams::topology::InternalTopicKind;
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("words")
    ///     .group_by(|_, word| word.clone())
    ///     .count_with(Materialized::named("counts"));
    /// let description = builder.build().unwrap().describe();
    /// let text = description.to_string();
    /// assert!(text.starts_with("Topologies:\n   Sub-topology: 0\n    Source: KSTREAM-SOURCE-0000000000 (topics: [words])"));
    /// assert!(text.contains("Sub-topology: 1"));
    /// let changelog = &description.internal_topics_of(InternalTopicKind::Changelog)[0];
    /// assert_eq!(changelog.full_name("app"), "app-counts-changelog");
    /// assert_eq!(changelog.configs["cleanup.policy"], "compact");
    /// ```
    pub fn describe(&self) -> TopologyDescription {
        let graph = &self.inner;
        let subtopologies = graph
            .subtopologies
            .iter()
            .enumerate()
            .map(|(id, sub)| SubtopologyDescription {
                id,
                nodes: sub
                    .nodes
                    .iter()
                    .map(|&n| {
                        let def = &graph.nodes[n];
                        let names = |ids: &[usize]| {
                            ids.iter().map(|&i| graph.nodes[i].name.clone()).collect()
                        };
                        NodeDescription {
                            name: def.name.clone(),
                            kind: match &def.kind {
                                NodeKind::Source(topics) => NodeType::Source {
                                    topics: topics
                                        .iter()
                                        .map(|t| t.display_name().to_string())
                                        .collect(),
                                },
                                NodeKind::Processor => NodeType::Processor,
                                NodeKind::Sink(topic) => NodeType::Sink {
                                    topic: topic.as_ref().map(|t| t.display_name().to_string()),
                                },
                            },
                            stores: def.stores.clone(),
                            successors: names(&def.children),
                            predecessors: names(&def.parents),
                        }
                    })
                    .collect(),
            })
            .collect();
        TopologyDescription {
            subtopologies,
            global_subtopology: graph.global,
            internal_topics: graph.internal_topics.clone(),
        }
    }

    /// The user topics the topology reads, by full name (internal topics excluded).
    ///
    /// ```
    /// use kstreams::dsl::{Materialized, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, String>("users", Materialized::default());
    /// builder.stream::<String, String>("words").group_by(|_, word| word.clone()).count();
    /// // Sorted; the repartition topic that `group_by` reads is not listed.
    /// assert_eq!(builder.build().unwrap().source_topics(), vec!["users", "words"]);
    /// ```
    pub fn source_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .inner
            .subtopologies
            .iter()
            .flat_map(|s| s.source_topics.iter())
            .filter_map(|t| match t {
                TopicRef::External(t) => Some(t.clone()),
                TopicRef::Internal(_) => None,
            })
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// The user topics the topology writes to with a fixed name.
    ///
    /// ```
    /// use kstreams::dsl::{Produced, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// let events = builder.stream::<String, String>("events");
    /// events.to("audit");
    /// events.to_dynamic(|_, kind| format!("events-{kind}"), Produced::default()); // not listed
    /// events.group_by(|_, kind| kind.clone()).count(); // writes only internal topics
    /// assert_eq!(builder.build().unwrap().sink_topics(), vec!["audit"]);
    /// ```
    pub fn sink_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .inner
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Sink(Some(TopicRef::External(t))) => Some(t.clone()),
                _ => None,
            })
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// Groups of topics (full names) whose records meet in a join, so partition `p` of each
    /// must go to the same task: they need equal partition counts.
    ///
    /// ```
    /// use kstreams::dsl::{Materialized, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// let users = builder.table::<String, String>("users", Materialized::default());
    /// builder.stream::<String, String>("clicks").join(&users, |c, u| format!("{c}{u}")).to("out");
    /// let groups = builder.build().unwrap().copartition_groups("app");
    /// assert_eq!(groups.len(), 1);
    /// assert!(groups[0].contains(&"clicks".to_string()) && groups[0].contains(&"users".to_string()));
    /// ```
    pub fn copartition_groups(&self, application_id: &str) -> Vec<Vec<String>> {
        self.inner
            .copartition_groups
            .iter()
            .map(|group| group.iter().map(|t| t.resolve(application_id)).collect())
            .collect()
    }

    /// Checks co-partitioning against the actual partition counts (`None`: topic missing).
    /// Internal repartition topics are created by kstreams with the group's count, so only
    /// user topics are compared.
    ///
    /// ```
    /// use kstreams::dsl::{Materialized, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// let users = builder.table::<String, String>("users", Materialized::default());
    /// builder.stream::<String, String>("clicks").join(&users, |c, u| format!("{c}{u}")).to("out");
    /// let topology = builder.build().unwrap();
    /// let counts = |t: &str| Some(if t == "users" { 4 } else { 8 });
    /// assert!(topology.check_copartitioning(counts).is_err());
    /// assert!(topology.check_copartitioning(|_| Some(8)).is_ok());
    /// ```
    pub fn check_copartitioning(
        &self,
        partitions: impl Fn(&str) -> Option<i32>,
    ) -> Result<(), crate::TopologyError> {
        for group in &self.inner.copartition_groups {
            let counts: Vec<(String, i32)> = group
                .iter()
                .filter_map(|t| match t {
                    TopicRef::External(name) => Some(name.clone()),
                    TopicRef::Internal(_) => None,
                })
                .map(|name| {
                    let count = partitions(&name)
                        .ok_or_else(|| crate::TopologyError::MissingSourceTopic(name.clone()))?;
                    Ok((name, count))
                })
                .collect::<Result<_, crate::TopologyError>>()?;
            if counts.windows(2).any(|w| w[0].1 != w[1].1) {
                return Err(crate::TopologyError::NotCopartitioned(counts));
            }
        }
        Ok(())
    }

    /// The partition count of every internal topic (by name without the application-id
    /// prefix), given the partition counts of the user topics the topology reads:
    ///
    /// * a sub-topology has as many partitions (tasks) as its largest source topic;
    /// * a repartition topic gets the count asked for, else the count of the user topics it
    ///   is joined with (so they stay co-partitioned), else that of the sub-topology writing it;
    /// * a changelog has as many partitions as the sub-topology owning its store.
    ///
    /// ```
    /// use kstreams::dsl::{Materialized, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("words").group_by(|_, w| w.clone())
    ///     .count_with(Materialized::named("counts"));
    /// let plan = builder.build().unwrap().internal_topic_partitions(|_| Some(6)).unwrap();
    /// assert_eq!(plan["counts-repartition"], 6);
    /// assert_eq!(plan["counts-changelog"], 6);
    /// ```
    pub fn internal_topic_partitions(
        &self,
        source_partitions: impl Fn(&str) -> Option<i32>,
    ) -> Result<BTreeMap<String, i32>, crate::TopologyError> {
        let inner = &self.inner;
        let sub_of: HashMap<usize, usize> = inner
            .subtopologies
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.nodes.iter().map(move |&n| (n, i)))
            .collect();
        let writer: HashMap<&str, usize> = inner
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(id, n)| match &n.kind {
                NodeKind::Sink(Some(TopicRef::Internal(t))) => Some((t.as_str(), sub_of[&id])),
                _ => None,
            })
            .collect();
        let external = |name: &str| {
            source_partitions(name)
                .ok_or_else(|| crate::TopologyError::MissingSourceTopic(name.to_string()))
        };
        // Repartition topics joined with user topics take their (equal) count.
        let mut repartition: HashMap<String, i32> = HashMap::new();
        for topic in inner
            .internal_topics
            .iter()
            .filter(|t| t.kind == InternalTopicKind::Repartition)
        {
            if let Some(p) = topic.partitions {
                repartition.insert(topic.name.clone(), p);
                continue;
            }
            let internal = TopicRef::Internal(topic.name.clone());
            for group in inner
                .copartition_groups
                .iter()
                .filter(|g| g.contains(&internal))
            {
                let mut max = None;
                for t in group {
                    if let TopicRef::External(name) = t {
                        max = max.max(Some(external(name)?));
                    }
                }
                if let Some(max) = max {
                    repartition.insert(topic.name.clone(), max);
                }
            }
        }
        // Sub-topologies and the repartition topics they write, upstream first.
        let mut subs: Vec<Option<i32>> = vec![None; inner.subtopologies.len()];
        for _ in 0..=inner.subtopologies.len() {
            for (i, sub) in inner.subtopologies.iter().enumerate() {
                if subs[i].is_some() {
                    continue;
                }
                let mut max = Some(0);
                for topic in &sub.source_topics {
                    let count = match topic {
                        TopicRef::External(name) => Some(external(name)?),
                        TopicRef::Internal(name) => repartition.get(name).copied(),
                    };
                    max = max.zip(count).map(|(a, b)| a.max(b));
                }
                subs[i] = max;
            }
            for (name, &w) in &writer {
                if let (false, Some(count)) = (repartition.contains_key(*name), subs[w]) {
                    repartition.insert(name.to_string(), count);
                }
            }
        }
        inner
            .internal_topics
            .iter()
            .map(|t| {
                let count = match t.kind {
                    InternalTopicKind::Repartition => repartition.get(&t.name).copied(),
                    InternalTopicKind::Changelog => subs[t.subtopology],
                };
                let count = count
                    .ok_or_else(|| crate::TopologyError::MissingSourceTopic(t.name.clone()))?;
                Ok((t.name.clone(), count.max(1)))
            })
            .collect()
    }

    /// The names of every state store.
    ///
    /// ```
    /// use kstreams::dsl::{Materialized, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, String>("users", Materialized::named("users"));
    /// let clicks = builder.stream::<String, String>("clicks").group_by_key();
    /// clicks.count_with(Materialized::named("clicks-per-user"));
    /// clicks.count(); // a store the DSL names
    /// let names = builder.build().unwrap().store_names();
    /// assert_eq!(names.len(), 3);
    /// assert!(names[0].starts_with("KSTREAM-AGGREGATE-STATE-STORE-"));
    /// assert_eq!(names[1..], ["clicks-per-user", "users"]);
    /// ```
    pub fn store_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.stores.keys().cloned().collect();
        names.sort();
        names
    }
}

/// The kind of a node in a [`TopologyDescription`].
///
/// ```
/// use kstreams::dsl::{Produced, StreamsBuilder};
/// use kstreams::topology::NodeType;
/// let builder = StreamsBuilder::new();
/// let orders = builder.stream::<String, String>("orders").filter(|_, v| !v.is_empty());
/// orders.to("valid-orders");
/// orders.to_dynamic(|_, v| format!("orders-{v}"), Produced::default());
/// let description = builder.build().unwrap().describe();
/// let nodes = &description.subtopologies[0].nodes;
/// let kinds: Vec<NodeType> = nodes.iter().map(|n| n.kind.clone()).collect();
/// assert_eq!(kinds, vec![
///     NodeType::Source { topics: vec!["orders".to_string()] },
///     NodeType::Processor, // the filter
///     NodeType::Sink { topic: Some("valid-orders".to_string()) },
///     NodeType::Sink { topic: None }, // chosen per record
/// ]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeType {
    /// Reads topics.
    Source {
        /// Topic names (internal ones without the application-id prefix).
        topics: Vec<String>,
    },
    /// Processes records.
    Processor,
    /// Writes a topic (`None`: the topic is chosen per record).
    Sink {
        /// Topic name (internal ones without the application-id prefix).
        topic: Option<String>,
    },
}

/// One node of a sub-topology.
///
/// ```
/// use kstreams::dsl::{Materialized, StreamsBuilder};
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("clicks").filter(|_, page| !page.is_empty())
///     .group_by_key().count_with(Materialized::named("clicks-per-user"));
/// let description = builder.build().unwrap().describe();
/// let nodes = &description.subtopologies[0].nodes;
/// let filter = &nodes[1];
/// assert_eq!(filter.name, "KSTREAM-FILTER-0000000001");
/// assert_eq!(filter.predecessors, vec!["KSTREAM-SOURCE-0000000000"]);
/// assert_eq!(filter.successors, vec![nodes[2].name.clone()]);
/// assert!(filter.stores.is_empty());
/// assert_eq!(nodes[2].stores, vec!["clicks-per-user"]); // the aggregation
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDescription {
    /// Unique name, such as `KSTREAM-FILTER-0000000001`.
    pub name: String,
    /// Source, processor or sink.
    pub kind: NodeType,
    /// Stores the node uses.
    pub stores: Vec<String>,
    /// Downstream nodes.
    pub successors: Vec<String>,
    /// Upstream nodes.
    pub predecessors: Vec<String>,
}

/// One sub-topology: nodes connected by edges or shared stores.
///
/// ```
/// use kstreams::dsl::{Materialized, StreamsBuilder};
/// use kstreams::topology::NodeType;
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("words").group_by(|_, word| word.clone())
///     .count_with(Materialized::named("counts"));
/// let description = builder.build().unwrap().describe();
/// let subs = &description.subtopologies;
/// assert_eq!((subs[0].id, subs[1].id), (0, 1));
/// // The first writes the repartition topic, the second reads it and counts.
/// let hop = "counts-repartition".to_string();
/// assert_eq!(subs[0].nodes.last().unwrap().kind, NodeType::Sink { topic: Some(hop.clone()) });
/// assert_eq!(subs[1].nodes[0].kind, NodeType::Source { topics: vec![hop] });
/// assert_eq!(subs[1].nodes[1].stores, vec!["counts"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtopologyDescription {
    /// Index, as in task ids.
    pub id: usize,
    /// Nodes in creation order.
    pub nodes: Vec<NodeDescription>,
}

/// The printable structure of a topology (Kafka Streams' `TopologyDescription`).
///
/// ```
/// use kstreams::dsl::{Materialized, StreamsBuilder};
/// let builder = StreamsBuilder::new();
/// builder.global_table::<String, String>("products", Materialized::named("products"));
/// builder.stream::<String, String>("orders").to("orders-copy");
/// let description = builder.build().unwrap().describe();
/// assert_eq!(description.subtopologies.len(), 2);
/// assert_eq!(description.global_subtopology, Some(1)); // the global one comes last
/// assert!(description.internal_topics.is_empty()); // a global store has no changelog
/// assert!(description.to_string().contains("Sub-topology: 1 for global store"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDescription {
    /// Sub-topologies in order (the global one, if any, last).
    pub subtopologies: Vec<SubtopologyDescription>,
    /// Index of the sub-topology that fills global stores, which makes no tasks.
    pub global_subtopology: Option<usize>,
    /// Repartition and changelog topics the application needs.
    pub internal_topics: Vec<InternalTopic>,
}

impl TopologyDescription {
    /// The internal topics of one kind.
    ///
    /// ```
    /// use kstreams::dsl::{Materialized, StreamsBuilder};
    /// use kstreams::topology::InternalTopicKind;
    /// let builder = StreamsBuilder::new();
    /// let words = builder.stream::<String, String>("words").group_by(|_, word| word.clone());
    /// words.count_with(Materialized::named("counts"));
    /// words.count_with(Materialized::named("scratch").with_logging_disabled());
    /// let description = builder.build().unwrap().describe();
    /// let changelogs = description.internal_topics_of(InternalTopicKind::Changelog);
    /// assert_eq!(changelogs.len(), 1); // `scratch` has none
    /// assert_eq!(changelogs[0].name, "counts-changelog");
    /// assert_eq!(description.internal_topics_of(InternalTopicKind::Repartition).len(), 2);
    /// ```
    pub fn internal_topics_of(&self, kind: InternalTopicKind) -> Vec<&InternalTopic> {
        self.internal_topics
            .iter()
            .filter(|t| t.kind == kind)
            .collect()
    }
}

impl fmt::Display for TopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Topologies:")?;
        for sub in &self.subtopologies {
            if Some(sub.id) == self.global_subtopology {
                writeln!(
                    f,
                    "   Sub-topology: {} for global store (will not generate tasks)",
                    sub.id
                )?;
            } else {
                writeln!(f, "   Sub-topology: {}", sub.id)?;
            }
            for node in &sub.nodes {
                match &node.kind {
                    NodeType::Source { topics } => writeln!(
                        f,
                        "    Source: {} (topics: [{}])",
                        node.name,
                        topics.join(", ")
                    )?,
                    NodeType::Processor => writeln!(
                        f,
                        "    Processor: {} (stores: [{}])",
                        node.name,
                        node.stores.join(", ")
                    )?,
                    NodeType::Sink { topic } => writeln!(
                        f,
                        "    Sink: {} (topic: {})",
                        node.name,
                        topic.as_deref().unwrap_or("<chosen per record>")
                    )?,
                }
                if !node.successors.is_empty() {
                    writeln!(f, "      --> {}", node.successors.join(", "))?;
                }
                if !node.predecessors.is_empty() {
                    writeln!(f, "      <-- {}", node.predecessors.join(", "))?;
                }
            }
            writeln!(f)?;
        }
        if !self.internal_topics.is_empty() {
            writeln!(f, "Internal topics:")?;
            for topic in &self.internal_topics {
                let configs: Vec<String> = topic
                    .configs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let kind = match topic.kind {
                    InternalTopicKind::Repartition => "repartition",
                    InternalTopicKind::Changelog => "changelog",
                };
                writeln!(
                    f,
                    "    {} ({kind}, sub-topology {}, {})",
                    topic.name,
                    topic.subtopology,
                    configs.join(", ")
                )?;
            }
        }
        Ok(())
    }
}
