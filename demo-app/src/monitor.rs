//! The cluster as operators see it: topics, offsets, consumer groups and their lag, sampled
//! every few seconds; alert rules over the samples ([`crate::alerts`]: the rules of
//! `docs/alerts.yml`); the latest messages of a topic.
//!
//! [`ClusterMonitor::run`] samples with the Kafka admin protocol only (metadata, list
//! offsets, list groups, offset fetch), so it watches any group on the cluster, the shop's
//! and the streams apps' alike, without joining one. The dashboard's health panel, the topic
//! view on :8080 and the lag and dead-letter gauges of `/metrics` all read its
//! [`ClusterView`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;

use crate::alerts::Alerting;
pub use crate::alerts::{Alert, AlertRules};
use crate::metrics::{global, labels};

/// How long one admin request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One partition's offsets.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartitionView {
    /// The partition.
    pub partition: i32,
    /// First offset still stored.
    pub low: i64,
    /// Next offset to be written.
    pub high: i64,
}

/// A topic.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopicView {
    /// Its name.
    pub name: String,
    /// Internal to a streams app (changelog or repartition topic).
    pub internal: bool,
    /// Its partitions.
    pub partitions: Vec<PartitionView>,
    /// Records stored (sum of high − low).
    pub messages: i64,
}

/// A consumer group's position on one partition.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset (`-1`: none yet).
    pub committed: i64,
    /// Records behind the end.
    pub lag: i64,
    /// How long ago the first record it has not committed was written, in seconds (`0`
    /// when it is at the end), estimated from the watermarks the monitor saw (see
    /// [`lag_seconds`]).
    pub lag_seconds: f64,
}

/// A consumer group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupView {
    /// The group id.
    pub group: String,
    /// `Stable`, `PreparingRebalance`, `Empty`, ...
    pub state: String,
    /// Members now.
    pub members: usize,
    /// Records behind, over every assigned partition.
    pub lag: i64,
    /// The largest `lag_seconds` of its partitions.
    pub lag_seconds: f64,
    /// Per partition.
    pub partitions: Vec<GroupPartition>,
}

/// One sample of the cluster.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterView {
    /// When (ms since the epoch); 0 before the first sample.
    pub sampled_at: i64,
    /// Every topic.
    pub topics: Vec<TopicView>,
    /// Every consumer group.
    pub groups: Vec<GroupView>,
    /// Records written per second to non-internal topics since the previous sample.
    pub records_per_second: f64,
    /// Records in each dead-letter topic.
    pub dead_letters: BTreeMap<String, i64>,
    /// Alerts firing now.
    pub alerts: Vec<Alert>,
    /// Why the last sample failed, if it did.
    pub error: Option<String>,
}

/// Whether a topic is a dead-letter topic.
pub fn is_dead_letter_topic(name: &str) -> bool {
    name.ends_with("-dlq") || name.ends_with("dead-letters")
}

fn is_internal(name: &str) -> bool {
    name.ends_with("-changelog") || name.ends_with("-repartition") || name.starts_with("__")
}

/// Samples the cluster.
pub struct ClusterMonitor {
    client: ClientConfig,
    view: Arc<RwLock<ClusterView>>,
    rules: AlertRules,
}

/// How far back the watermark history of a partition goes.
const HISTORY: Duration = Duration::from_secs(15 * 60);

/// A partition's high watermarks as sampled: `(ms since the epoch, high)`, oldest first, one
/// entry per change.
type Watermarks = VecDeque<(i64, i64)>;

struct SamplerState {
    admin: BaseConsumer,
    history: HashMap<(String, i32), Watermarks>,
    group_clients: HashMap<String, BaseConsumer>,
    last_total: Option<(Instant, i64)>,
    alerting: Alerting,
}

impl ClusterMonitor {
    /// A monitor of the cluster `client` connects to.
    pub fn new(client: &ClientConfig, rules: AlertRules) -> Self {
        ClusterMonitor {
            client: client.clone(),
            view: Arc::default(),
            rules,
        }
    }

    /// The latest sample, shared.
    pub fn view(&self) -> Arc<RwLock<ClusterView>> {
        self.view.clone()
    }

    /// Samples every `interval` until the task is dropped.
    pub async fn run(self, interval: Duration) {
        let admin: BaseConsumer = match self.client.clone().create() {
            Ok(admin) => admin,
            Err(e) => {
                tracing::error!("monitor: cannot create a client: {e}");
                return;
            }
        };
        let state = Arc::new(std::sync::Mutex::new(SamplerState {
            admin,
            group_clients: HashMap::new(),
            history: HashMap::new(),
            last_total: None,
            alerting: Alerting::new(self.rules),
        }));
        loop {
            let (client, state) = (self.client.clone(), state.clone());
            let sample = tokio::task::spawn_blocking(move || {
                let mut state = state.lock().expect("sampler");
                sample(&client, &mut state)
            })
            .await;
            match sample {
                Ok(Ok(view)) => *self.view.write().expect("view") = view,
                Ok(Err(e)) => self.view.write().expect("view").error = Some(e),
                Err(e) => tracing::warn!("monitor: sampling panicked: {e}"),
            }
            tokio::time::sleep(interval).await;
        }
    }
}

fn sample(client: &ClientConfig, state: &mut SamplerState) -> Result<ClusterView, String> {
    let metadata = state
        .admin
        .fetch_metadata(None, TIMEOUT)
        .map_err(|e| format!("metadata: {e}"))?;
    // Every partition's first and next offsets in two ListOffsets requests (one per
    // broker), not two per partition.
    let all: Vec<(&str, i32)> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(move |p| (t.name(), p.id())))
        .collect();
    let lows = offsets_at(&state.admin, &all, Offset::Beginning)?;
    let highs = offsets_at(&state.admin, &all, Offset::End)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    for (at, &high) in &highs {
        let history = state.history.entry(at.clone()).or_default();
        if history.back().is_none_or(|&(_, last)| last != high) {
            history.push_back((now_ms, high));
        }
        // Keep one entry older than the horizon: it dates what was written before it.
        while history.len() > 1 && history[1].0 < now_ms - HISTORY.as_millis() as i64 {
            history.pop_front();
        }
    }
    let mut topics = Vec::new();
    let mut high_of = HashMap::new();
    for topic in metadata.topics() {
        let name = topic.name().to_owned();
        let mut partitions = Vec::new();
        for partition in topic.partitions() {
            let at = (name.clone(), partition.id());
            let (Some(&low), Some(&high)) = (lows.get(&at), highs.get(&at)) else {
                return Err(format!("no offsets for {name}/{}", partition.id()));
            };
            high_of.insert(at, high);
            partitions.push(PartitionView {
                partition: partition.id(),
                low,
                high,
            });
        }
        partitions.sort_by_key(|p| p.partition);
        let messages = partitions.iter().map(|p| p.high - p.low).sum();
        topics.push(TopicView {
            internal: is_internal(&name),
            name,
            partitions,
            messages,
        });
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));

    let list = state
        .admin
        .fetch_group_list(None, TIMEOUT)
        .map_err(|e| format!("groups: {e}"))?;
    let mut groups = Vec::new();
    for info in list.groups() {
        let name = info.name().to_owned();
        let mut assigned: Vec<(String, i32)> = Vec::new();
        for member in info.members() {
            if let Some(bytes) = member.assignment() {
                assigned.extend(parse_assignment(bytes));
            }
        }
        if assigned.is_empty() {
            // No members (or rebalancing): the lag of what it committed before.
            assigned = high_of
                .keys()
                .filter(|(topic, _)| !topic.starts_with("__"))
                .cloned()
                .collect();
        }
        assigned.sort();
        assigned.dedup();
        if !state.group_clients.contains_key(&name) {
            let c: BaseConsumer = client
                .clone()
                .set("group.id", &name)
                .set("enable.auto.commit", "false")
                .create()
                .map_err(|e| format!("client of {name}: {e}"))?;
            state.group_clients.insert(name.clone(), c);
        }
        let group_client = &state.group_clients[&name];
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in &assigned {
            tpl.add_partition(topic, *partition);
        }
        let committed = group_client
            .committed_offsets(tpl, TIMEOUT)
            .map_err(|e| format!("offsets of group {name}: {e}"))?;
        let mut partitions = Vec::new();
        let members_assigned = !info.members().is_empty();
        for element in committed.elements() {
            let committed = match element.offset() {
                Offset::Offset(n) => n,
                _ => -1,
            };
            if committed < 0 && !members_assigned {
                continue;
            }
            let high = high_of
                .get(&(element.topic().to_owned(), element.partition()))
                .copied()
                .unwrap_or(0);
            let at = (element.topic().to_owned(), element.partition());
            let lag_seconds = state
                .history
                .get(&at)
                .map_or(0.0, |h| lag_seconds(h, committed.max(0), now_ms));
            partitions.push(GroupPartition {
                topic: at.0,
                partition: at.1,
                committed,
                lag: (high - committed.max(0)).max(0),
                lag_seconds,
            });
        }
        let lag = partitions.iter().map(|p| p.lag).sum();
        let lag_seconds = partitions.iter().map(|p| p.lag_seconds).fold(0.0, f64::max);
        groups.push(GroupView {
            group: name,
            state: info.state().to_owned(),
            members: info.members().len(),
            lag,
            lag_seconds,
            partitions,
        });
    }
    groups.sort_by(|a, b| a.group.cmp(&b.group));

    let now = Instant::now();
    let total: i64 = topics
        .iter()
        .filter(|t| !t.internal)
        .flat_map(|t| &t.partitions)
        .map(|p| p.high)
        .sum();
    let records_per_second = match state.last_total {
        Some((at, before)) if now > at => (total - before).max(0) as f64 / (now - at).as_secs_f64(),
        _ => 0.0,
    };
    state.last_total = Some((now, total));
    let dead_letters: BTreeMap<String, i64> = topics
        .iter()
        .filter(|t| is_dead_letter_topic(&t.name))
        .map(|t| (t.name.clone(), t.partitions.iter().map(|p| p.high).sum()))
        .collect();

    // Alert rules (docs/alerts.yml).
    let lags: Vec<(String, i64)> = groups.iter().map(|g| (g.group.clone(), g.lag)).collect();
    let alerts = state
        .alerting
        .evaluate(now, &lags, dead_letters.values().sum(), total_errors());

    // The gauges of /metrics.
    let metrics = global();
    for group in &groups {
        metrics
            .consumer_lag
            .get_or_create(&labels(&[("group", &group.group)]))
            .set(group.lag);
        metrics
            .consumer_lag_seconds
            .get_or_create(&labels(&[("group", &group.group)]))
            .set(group.lag_seconds);
    }
    for (topic, depth) in &dead_letters {
        metrics
            .dead_letter_depth
            .get_or_create(&labels(&[("topic", topic)]))
            .set(*depth);
    }
    metrics.records_per_second.set(records_per_second);

    Ok(ClusterView {
        sampled_at: now_ms,
        topics,
        groups,
        records_per_second,
        dead_letters,
        alerts,
        error: None,
    })
}

/// How long ago (seconds before `now_ms`) the record at offset `committed` was written, from
/// a partition's sampled watermarks, as Burrow and kafka-lag-exporter estimate lag in time:
/// the record was written between the last sample whose high watermark did not reach past it
/// and the first that did, at a time interpolated linearly between the two. `0` when the
/// consumer is at the end; when the record is older than the history, the history's age (a
/// lower bound).
pub fn lag_seconds(history: &Watermarks, committed: i64, now_ms: i64) -> f64 {
    let Some(&(_, high)) = history.back() else {
        return 0.0;
    };
    if committed >= high {
        return 0.0;
    }
    // The first sample whose high watermark lies past `committed`.
    let after = history.partition_point(|&(_, h)| h <= committed);
    let written_at = match after.checked_sub(1).map(|i| history[i]) {
        None => history[0].0 as f64,
        // Offsets h0..h1 were written in (t0, t1], spread evenly.
        Some((t0, h0)) => {
            let (t1, h1) = history[after];
            t0 as f64 + (t1 - t0) as f64 * (committed - h0 + 1) as f64 / (h1 - h0) as f64
        }
    };
    ((now_ms as f64 - written_at) / 1000.0).max(0.0)
}

fn total_errors() -> f64 {
    global().errors_seen.get() as f64
}

/// Reads the topic/partition list of a consumer-protocol assignment (version, then
/// `[topic, [partition]]`, then user data).
pub fn parse_assignment(bytes: &[u8]) -> Vec<(String, i32)> {
    fn i16_at(b: &[u8], at: usize) -> Option<i16> {
        Some(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
    }
    fn i32_at(b: &[u8], at: usize) -> Option<i32> {
        Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
    }
    let mut out = Vec::new();
    let mut at = 2; // version
    let Some(topics) = i32_at(bytes, at) else {
        return out;
    };
    at += 4;
    for _ in 0..topics.max(0) {
        let Some(len) = i16_at(bytes, at) else {
            return out;
        };
        at += 2;
        let Some(name) = bytes.get(at..at + len.max(0) as usize) else {
            return out;
        };
        let name = String::from_utf8_lossy(name).into_owned();
        at += len.max(0) as usize;
        let Some(count) = i32_at(bytes, at) else {
            return out;
        };
        at += 4;
        for _ in 0..count.max(0) {
            let Some(partition) = i32_at(bytes, at) else {
                return out;
            };
            at += 4;
            out.push((name.clone(), partition));
        }
    }
    out
}

/// A message as the topic view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Record timestamp (ms).
    pub timestamp: Option<i64>,
    /// Key, as text.
    pub key: Option<String>,
    /// Value, as text (cut at 2000 characters).
    pub value: Option<String>,
    /// Headers, as text.
    pub headers: Vec<(String, String)>,
}

/// The last `limit` messages of each partition of `topic`, newest first. Blocks (call it
/// from a blocking task).
pub fn latest_messages(
    client: &ClientConfig,
    topic: &str,
    limit: i64,
) -> Result<Vec<MessageView>, String> {
    let consumer: BaseConsumer = client
        .clone()
        .set("group.id", "shop-topic-view")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_uncommitted")
        .create()
        .map_err(|e| e.to_string())?;
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(|e| e.to_string())?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!("no topic {topic}"));
    }
    let all: Vec<(&str, i32)> = partitions.iter().map(|p| (topic, *p)).collect();
    let lows = offsets_at(&consumer, &all, Offset::Beginning)?;
    let highs = offsets_at(&consumer, &all, Offset::End)?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0;
    let mut ends = HashMap::new();
    for partition in partitions {
        let at = (topic.to_owned(), partition);
        let (Some(&low), Some(&high)) = (lows.get(&at), highs.get(&at)) else {
            return Err(format!("no offsets for {topic}/{partition}"));
        };
        let from = (high - limit).max(low);
        if from < high {
            tpl.add_partition_offset(topic, partition, Offset::Offset(from))
                .map_err(|e| e.to_string())?;
            remaining += high - from;
            ends.insert(partition, high);
        }
    }
    let mut out = Vec::new();
    if remaining == 0 {
        return Ok(out);
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + TIMEOUT;
    while remaining > 0 && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.map_err(|e| e.to_string())?;
        if message.offset() >= ends.get(&message.partition()).copied().unwrap_or(0) {
            continue;
        }
        remaining -= 1;
        let text = |b: &[u8]| {
            let s = String::from_utf8_lossy(b);
            s.chars().take(2000).collect::<String>()
        };
        out.push(MessageView {
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message.key().map(text),
            value: message.payload().map(text),
            headers: message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(text).unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    out.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then(b.offset.cmp(&a.offset)));
    Ok(out)
}

/// The offset at `position` (`Offset::Beginning` or `Offset::End`) of each of `partitions`,
/// asked in one ListOffsets request per broker.
fn offsets_at(
    client: &BaseConsumer,
    partitions: &[(&str, i32)],
    position: Offset,
) -> Result<HashMap<(String, i32), i64>, String> {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in partitions {
        tpl.add_partition_offset(topic, *partition, position)
            .map_err(|e| e.to_string())?;
    }
    let answered = client
        .offsets_for_times(tpl, TIMEOUT)
        .map_err(|e| format!("offsets: {e}"))?;
    let mut offsets = HashMap::new();
    for element in answered.elements() {
        if let Some(e) = element.error().err() {
            return Err(format!(
                "offsets of {}/{}: {e}",
                element.topic(),
                element.partition()
            ));
        }
        let Offset::Offset(offset) = element.offset() else {
            return Err(format!(
                "offsets of {}/{}: none",
                element.topic(),
                element.partition()
            ));
        };
        offsets.insert((element.topic().to_owned(), element.partition()), offset);
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_in_time_dates_the_first_uncommitted_record_from_the_watermarks() {
        // High watermark 100 at t=0 s, 200 at t=10 s, 200 still at t=20 s (no change, no
        // entry), 300 at t=30 s.
        let history: Watermarks = [(0, 100), (10_000, 200), (30_000, 300)].into();
        let now = 40_000;
        // At the end: no lag.
        assert_eq!(lag_seconds(&history, 300, now), 0.0);
        // Offset 249 is the 50th of the 100 records written in (10 s, 30 s]: written at 20 s.
        assert_eq!(lag_seconds(&history, 249, now), 20.0);
        // Offset 299, the last written before 30 s.
        assert_eq!(lag_seconds(&history, 299, now), 10.0);
        // Offset 100, the first after the first sample: 0.1 s after it.
        assert_eq!(lag_seconds(&history, 100, now), 39.9);
        // Older than the history: at least its age.
        assert_eq!(lag_seconds(&history, 50, now), 40.0);
        assert_eq!(lag_seconds(&Watermarks::new(), 5, now), 0.0);
    }

    #[test]
    fn consumer_protocol_assignments_are_read() {
        let mut bytes = vec![0, 0]; // version 0
        bytes.extend(2i32.to_be_bytes());
        for (topic, partitions) in [("orders", vec![0i32, 3]), ("users", vec![1])] {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for p in partitions {
                bytes.extend(p.to_be_bytes());
            }
        }
        bytes.extend((-1i32).to_be_bytes()); // no user data
        assert_eq!(
            parse_assignment(&bytes),
            vec![
                ("orders".to_owned(), 0),
                ("orders".to_owned(), 3),
                ("users".to_owned(), 1)
            ]
        );
        assert!(parse_assignment(&[0]).is_empty());
        assert!(parse_assignment(&[0, 0, 0, 0, 0, 9, 0, 200]).is_empty());
    }

    #[test]
    fn dead_letter_and_internal_topics_are_told_apart() {
        assert!(is_dead_letter_topic("payment-events-dlq"));
        assert!(is_dead_letter_topic("shop-dead-letters"));
        assert!(!is_dead_letter_topic("payment-events"));
        assert!(is_internal(
            "shop-order-analytics-analytics-orders-changelog"
        ));
        assert!(!is_internal("order-events"));
    }
}
