//! Holding an aggregation's updates back until the next commit: Kafka Streams' record cache
//! as downstream processors see it.
//!
//! An aggregation whose store is cached forwards the update of a key (or of a key's window)
//! not when the record arrives but at the next commit ([`Processor::flush`]), or earlier
//! when the held updates outgrow the store's cache bound. Updates of one key in between
//! collapse into one: the value the key had at its last forward as `old`, the latest value,
//! timestamp and headers as the rest. Downstream — a suppression buffer, a sink, a join —
//! sees one update per key per commit instead of one per record, and an output topic gets
//! the same. With caching off (`store_cache_max_bytes = 0`) every update is forwarded at
//! once. The test driver commits after every record, so there every update is forwarded.
//!
//! Held updates go out least recently updated first, as Kafka Streams' cache evicts: every
//! update then arrives after those whose last change came before it, so a processor that
//! keeps time by the timestamps it receives (`suppress`) sees a window's last update before
//! any later record's that closes the window.
//!
//! [`Processor::flush`]: crate::processor::Processor::flush

use lru::LruCache;

use crate::error::BoxError;
use crate::processor::{Headers, ProcessorContext, Record};

use super::ops::Change;

/// Bookkeeping bytes counted per held update on top of its id and record.
const ENTRY_OVERHEAD: usize = 48;

/// The updates an aggregation holds back, least recently updated first.
pub(crate) struct ForwardCache<K, V> {
    /// `0`: forward every update at once.
    max_bytes: usize,
    bytes: usize,
    /// Update id (the encoded key, and for windows the window start) → the held update.
    held: LruCache<Vec<u8>, Record<K, Change<V>>>,
}

impl<K: Clone + 'static, V: Clone + 'static> ForwardCache<K, V> {
    /// Holds back at most about `max_bytes` of updates; `0` holds back nothing.
    pub(crate) fn new(max_bytes: usize) -> Self {
        ForwardCache {
            max_bytes,
            bytes: 0,
            held: LruCache::unbounded(),
        }
    }

    /// Forwards the update `change` of the key (or window) `id` at the next flush, merged
    /// with the update of `id` held since the last one; or now, when nothing is held back.
    /// `key` makes the record's key, only when no update of `id` is held.
    pub(crate) fn forward(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        id: &[u8],
        key: impl FnOnce() -> K,
        change: Change<V>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<(), BoxError> {
        let update = |key, change, headers| Record {
            key,
            value: change,
            timestamp,
            headers,
        };
        if self.max_bytes == 0 {
            return ctx.forward(update(key(), change, headers));
        }
        // A lookup makes the held update the most recently updated one.
        match self.held.get_mut(id) {
            Some(held) => {
                // The same key: keep it, and the old value of the first held update.
                held.value.new = change.new;
                held.timestamp = timestamp;
                held.headers = headers;
            }
            None => {
                self.bytes +=
                    id.len() + std::mem::size_of::<Record<K, Change<V>>>() + ENTRY_OVERHEAD;
                self.held.push(id.to_vec(), update(key(), change, headers));
            }
        }
        if self.bytes > self.max_bytes {
            self.flush(ctx)?;
        }
        Ok(())
    }

    /// Forwards every held update, least recently updated first. An update that was created
    /// and deleted since the last flush (no old, no new value) is dropped. When a downstream
    /// processor fails, the rest are still forwarded and the first error is returned.
    pub(crate) fn flush(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), BoxError> {
        self.bytes = 0;
        let mut first_error = None;
        while let Some((_, update)) = self.held.pop_lru() {
            if update.value.new.is_none() && update.value.old.is_none() {
                continue;
            }
            if let Err(error) = ctx.forward(update) {
                match first_error {
                    None => first_error = Some(error),
                    Some(_) => tracing::warn!(
                        processor = ctx.processor_name(),
                        "forwarding a held update failed: {error}"
                    ),
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Change, ENTRY_OVERHEAD};
    use crate::config::StreamsConfig;
    use crate::dsl::{Materialized, StreamsBuilder, Suppressed, TimeWindows, Windowed};
    use crate::processor::{Headers, Record};
    use crate::runtime::task::{ConsumerRecord, Task, TaskEnv};
    use crate::state::StoreSettings;
    use crate::testing::TestDriver;
    use crate::topology::Topology;

    /// Counts `words` by key into `counts`, and totals the counts, through a repartition
    /// topic and a table aggregation that subtracts each count's old value, into `total`.
    fn counts() -> Topology {
        let builder = StreamsBuilder::new();
        let counts = builder
            .stream::<String, String>("words")
            .group_by_key()
            .count();
        counts
            .to_stream()
            .map(|k, n: Option<i64>| (k, n.unwrap_or(-1).to_string()))
            .to("counts");
        counts
            .group_by(|_, n| ("all".to_string(), *n))
            .reduce(|a, b| a + b, |a, b| a - b)
            .to_stream()
            .map(|k, n: Option<i64>| (k, n.unwrap_or(-1).to_string()))
            .to("total");
        builder.build().unwrap()
    }

    /// The tasks of every sub-topology, committed by hand as a stream thread does.
    struct Tasks {
        tasks: Vec<Task>,
        readers: HashMap<String, usize>,
        offset: i64,
        /// Records of topics no task reads, as (topic, key, value).
        out: Vec<(String, String, String)>,
    }

    impl Tasks {
        fn new(cache_bytes: usize) -> Tasks {
            Tasks::of(&counts(), cache_bytes)
        }

        fn of(topology: &Topology, cache_bytes: usize) -> Tasks {
            let mut config = StreamsConfig::new("fwd");
            config.store_cache_max_bytes = cache_bytes;
            let settings = StoreSettings::new(&config);
            let env = TaskEnv {
                settings: &settings,
                directory: None,
            };
            let mut tasks = Vec::new();
            let mut readers = HashMap::new();
            for sub in 0..topology.inner.subtopologies.len() {
                let task = Task::new(&topology.inner, sub, 0, &config, 0, &[], &env).unwrap();
                for topic in task.source_topics() {
                    readers.insert(topic.to_string(), sub);
                }
                tasks.push(task);
            }
            Tasks {
                tasks,
                readers,
                offset: 0,
                out: Vec::new(),
            }
        }

        fn pipe(&mut self, task: usize, topic: Arc<str>, key: Vec<u8>, value: Vec<u8>, ts: i64) {
            self.offset += 1;
            self.tasks[task]
                .process(ConsumerRecord {
                    topic,
                    partition: 0,
                    offset: self.offset,
                    timestamp: ts,
                    key: Some(key),
                    value: Some(value),
                    headers: Headers::new(),
                })
                .unwrap();
            self.route(task);
        }

        fn word(&mut self, word: &str, ts: i64) {
            self.pipe(0, "words".into(), word.into(), b"x".to_vec(), ts);
        }

        /// Sends a task's output to the task that reads it, or to `out`.
        fn route(&mut self, task: usize) {
            for record in self.tasks[task].take_output() {
                match self.readers.get(&*record.topic) {
                    Some(&reader) => {
                        let (key, value) = (record.key.unwrap(), record.value.unwrap());
                        self.pipe(reader, record.topic, key, value, record.timestamp);
                    }
                    None if record.topic.ends_with("-changelog") => {}
                    None => self.out.push((
                        record.topic.to_string(),
                        String::from_utf8(record.key.unwrap()).unwrap(),
                        String::from_utf8(record.value.unwrap()).unwrap(),
                    )),
                }
            }
        }

        /// Commits every task, upstream first.
        fn commit(&mut self) {
            for task in 0..self.tasks.len() {
                self.tasks[task].flush_stores().unwrap();
                self.route(task);
            }
        }

        fn take(&mut self, topic: &str) -> Vec<(String, String)> {
            let (taken, kept) = std::mem::take(&mut self.out)
                .into_iter()
                .partition(|(t, _, _)| t == topic);
            self.out = kept;
            taken.into_iter().map(|(_, k, v)| (k, v)).collect()
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cached_aggregations_forward_one_update_per_key_at_commit() {
        let mut tasks = Tasks::new(1 << 20);
        for (t, word) in ["a", "a", "b", "a"].into_iter().enumerate() {
            tasks.word(word, t as i64);
        }
        assert!(tasks.take("counts").is_empty(), "held until the commit");
        tasks.commit();
        // Least recently updated first, each with its latest count.
        assert_eq!(tasks.take("counts"), pairs(&[("b", "1"), ("a", "3")]));
        assert_eq!(tasks.take("total"), pairs(&[("all", "4")]));

        tasks.word("a", 10);
        tasks.commit();
        assert_eq!(tasks.take("counts"), pairs(&[("a", "4")]));
        // The total took out a's count at its last forward (3), not at an earlier update.
        assert_eq!(tasks.take("total"), pairs(&[("all", "5")]));

        tasks.commit();
        assert!(tasks.out.is_empty(), "nothing new, nothing forwarded");
    }

    #[test]
    fn without_a_cache_every_update_is_forwarded_at_once() {
        let mut tasks = Tasks::new(0);
        tasks.word("a", 0);
        tasks.word("a", 1);
        assert_eq!(tasks.take("counts"), pairs(&[("a", "1"), ("a", "2")]));
        assert_eq!(tasks.take("total"), pairs(&[("all", "1"), ("all", "2")]));
    }

    #[test]
    fn a_store_without_caching_forwards_every_update_at_once() {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("words")
            .group_by_key()
            .count_with(Materialized::named("direct").with_caching_disabled())
            .to_stream()
            .map(|k, n: Option<i64>| (k, n.unwrap_or(-1).to_string()))
            .to("counts");
        let mut tasks = Tasks::of(&builder.build().unwrap(), 1 << 20);
        tasks.word("a", 0);
        tasks.word("a", 1);
        assert_eq!(tasks.take("counts"), pairs(&[("a", "1"), ("a", "2")]));
    }

    #[test]
    fn held_updates_are_forwarded_when_they_outgrow_the_cache() {
        // Room for two held updates of a one-byte key, not three.
        let entry = 1 + std::mem::size_of::<Record<String, Change<i64>>>() + ENTRY_OVERHEAD;
        let mut tasks = Tasks::new(2 * entry + entry / 2);
        tasks.word("a", 0);
        tasks.word("b", 1);
        tasks.word("a", 2);
        assert!(tasks.take("counts").is_empty());
        tasks.word("c", 3);
        assert_eq!(
            tasks.take("counts"),
            pairs(&[("b", "1"), ("a", "2"), ("c", "1")])
        );
    }

    /// A window updated again after an earlier flush put it in the suppression buffer is
    /// emitted once, with its last count: its held update reaches `suppress` before the
    /// update that closes the window, although another key's held update came first.
    #[test]
    fn suppress_emits_each_window_once_when_its_updates_were_held() {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("words")
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(
                10,
            )))
            .count()
            .suppress(Suppressed::until_window_closes())
            .to_stream()
            .map(|w, n| {
                let n = n.unwrap_or(-1).to_string();
                (format!("{}@{}", w.key, w.window.start), n)
            })
            .to("finals");
        let entry = 9 + std::mem::size_of::<Record<Windowed<String>, Change<i64>>>();
        let entry = entry + ENTRY_OVERHEAD;
        let mut tasks = Tasks::of(&builder.build().unwrap(), 2 * entry + entry / 2);
        for (word, t) in [("a", 1), ("b", 2), ("c", 3)] {
            tasks.word(word, t); // the third outgrows the cache: a, b, c are buffered
        }
        tasks.word("e", 5);
        tasks.word("a", 6); // a@0 again, held after e@0
        tasks.word("d", 12); // closes [0, 10) for the aggregation
        tasks.commit();
        let mut finals = tasks.take("finals");
        finals.sort();
        assert_eq!(
            finals,
            pairs(&[("a@0", "2"), ("b@0", "1"), ("c@0", "1"), ("e@0", "1")])
        );
    }

    #[test]
    fn the_test_driver_forwards_every_update() {
        let driver = TestDriver::new(&counts(), StreamsConfig::new("fwd")).unwrap();
        let words = driver.create_input_topic::<String, String>("words");
        for t in [1, 2, 3] {
            words.pipe_input_at("a".into(), "x".into(), t);
        }
        let counts = driver.create_output_topic::<String, String>("counts");
        assert_eq!(counts.read_values_to_list(), vec!["1", "2", "3"]);
    }
}
