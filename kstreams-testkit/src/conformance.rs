//! Checks that a broker does what kstreams relies on: topic configs on creation, exact end
//! offsets, ordered reads, consumer-group offset commits, and (optionally) transactions with
//! `read_committed` isolation and what exactly-once processing needs of them: the last stable
//! offset, fencing by `transactional.id`, transactional consumer offsets, recovery from a
//! crashed producer and overlapping transactions of several producers.
//!
//! ```no_run
//! use kstreams_testkit::conformance::{check, Options};
//! let report = check("localhost:9092", &Options::default());
//! assert!(report.passed(), "{report}");
//! ```

use std::fmt;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerGroupMetadata};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

/// Creates a topic of this many partitions, for brokers without the admin API.
///
/// ```
/// use std::sync::Arc;
/// use kstreams_testkit::{conformance::TopicCreator, MockKafka};
/// let kafka = Arc::new(MockKafka::start(1).unwrap());
/// let mock = kafka.clone();
/// let create: TopicCreator =
///     Box::new(move |name, partitions| mock.create_topic(name, partitions).map_err(|e| e.to_string()));
/// create("conformance-topic", 2).unwrap();
/// ```
pub type TopicCreator = Box<dyn Fn(&str, i32) -> Result<(), String>>;

/// What to check.
///
/// ```
/// use std::time::Duration;
/// use kstreams_testkit::conformance::Options;
/// // A cluster without transactions: check offsets, groups and topic configs only.
/// let options = Options { transactions: false, exactly_once: false, ..Options::default() };
/// assert!(options.topic_configs);
/// assert_eq!(options.timeout, Duration::from_secs(30));
/// ```
pub struct Options {
    /// Create topics through the admin API with configs and read the configs back.
    pub topic_configs: bool,
    /// Check transactions (commit, abort, `read_committed`).
    pub transactions: bool,
    /// With `transactions`, also check what exactly-once processing relies on: open
    /// transactions hold back `read_committed` readers, a re-initialised `transactional.id`
    /// fences the old producer and aborts its transaction, transactional offsets apply on
    /// commit only, a crashed producer's transaction is aborted (also the second of an
    /// epoch), and two producers' overlapping transactions on one partition stay apart.
    pub exactly_once: bool,
    /// Creates a topic when the broker cannot through the admin API (the mock cluster).
    pub create_topic: Option<TopicCreator>,
    /// How long one check may wait for the broker.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            topic_configs: true,
            transactions: true,
            exactly_once: true,
            create_topic: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The outcome of each check, from [`check`].
///
/// ```
/// use kstreams_testkit::conformance::Report;
/// let report = Report { checks: vec![("offsets", Ok(())), ("compaction", Err("no config".into()))] };
/// let failed: Vec<_> = report.checks.iter().filter(|(_, r)| r.is_err()).map(|(n, _)| *n).collect();
/// assert_eq!(failed, ["compaction"]);
/// ```
pub struct Report {
    /// `(check, Ok or the reason it failed)`, in the order run.
    pub checks: Vec<(&'static str, Result<(), String>)>,
}

impl Report {
    /// True when every check passed.
    ///
    /// ```
    /// use kstreams_testkit::conformance::Report;
    /// let report = Report { checks: vec![("offsets", Ok(())), ("groups", Err("timed out".into()))] };
    /// assert!(!report.passed());
    /// ```
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|(_, r)| r.is_ok())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, result) in &self.checks {
            match result {
                Ok(()) => writeln!(f, "ok    {name}")?,
                Err(e) => writeln!(f, "FAIL  {name}: {e}")?,
            }
        }
        Ok(())
    }
}

struct Checker<'a> {
    bootstrap: &'a str,
    options: &'a Options,
    runtime: tokio::runtime::Runtime,
    suffix: String,
}

fn err(e: impl fmt::Display) -> String {
    e.to_string()
}

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

impl Checker<'_> {
    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.bootstrap)
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "300");
        config
    }

    fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<(), String> {
        if let Some(create) = &self.options.create_topic {
            return create(name, partitions);
        }
        let admin: AdminClient<DefaultClientContext> = self.client().create().map_err(err)?;
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        let results = self
            .runtime
            .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
            .map_err(err)?;
        for r in results {
            r.map_err(|(t, code)| format!("create {t}: {code}"))?;
        }
        Ok(())
    }

    fn topic_configs(&self) -> Result<(), String> {
        let topic = format!("conformance-compacted-{}", self.suffix);
        self.create_topic(&topic, 1, &[("cleanup.policy", "compact")])?;
        let admin: AdminClient<DefaultClientContext> = self.client().create().map_err(err)?;
        let resources = self
            .runtime
            .block_on(
                admin.describe_configs(&[ResourceSpecifier::Topic(&topic)], &AdminOptions::new()),
            )
            .map_err(err)?;
        let resource = resources
            .into_iter()
            .next()
            .ok_or("no config resource returned")?
            .map_err(err)?;
        let policy = resource
            .get("cleanup.policy")
            .and_then(|e| e.value.clone())
            .ok_or("cleanup.policy missing from the topic's configs")?;
        if policy != "compact" {
            return Err(format!("cleanup.policy is `{policy}`, expected `compact`"));
        }
        Ok(())
    }

    fn produce(
        &self,
        topic: &str,
        partition: i32,
        count: usize,
        transactional: Option<&str>,
    ) -> Result<ThreadedProducer<DefaultProducerContext>, String> {
        let mut config = self.client();
        config.set("enable.idempotence", "true").set("acks", "all");
        if let Some(id) = transactional {
            config.set("transactional.id", id);
        }
        let producer: ThreadedProducer<DefaultProducerContext> = config.create().map_err(err)?;
        if transactional.is_some() {
            producer
                .init_transactions(self.options.timeout)
                .map_err(err)?;
            producer.begin_transaction().map_err(err)?;
        }
        for i in 0..count {
            let key = format!("k{i}");
            let value = format!("v{i}");
            producer
                .send(
                    BaseRecord::to(topic)
                        .partition(partition)
                        .key(&key)
                        .payload(&value),
                )
                .map_err(|(e, _)| err(e))?;
        }
        producer.flush(self.options.timeout).map_err(err)?;
        Ok(producer)
    }

    fn read(&self, consumer: &BaseConsumer, count: usize) -> Result<Vec<(i64, String)>, String> {
        let deadline = Instant::now() + self.options.timeout;
        let mut out = Vec::new();
        while out.len() < count {
            if Instant::now() > deadline {
                return Err(format!(
                    "read {} of {count} records before the timeout",
                    out.len()
                ));
            }
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message.map_err(err)?;
                let value = message
                    .payload()
                    .map(|p| String::from_utf8_lossy(p).into_owned());
                out.push((message.offset(), value.unwrap_or_default()));
            }
        }
        Ok(out)
    }

    fn end_offsets_and_ordered_reads(&self) -> Result<(), String> {
        let topic = format!("conformance-offsets-{}", self.suffix);
        self.create_topic(&topic, 2, &[])?;
        let _flushed = self.produce(&topic, 1, 10, None)?;
        let consumer: BaseConsumer = self
            .client()
            .set("group.id", format!("conformance-reader-{}", self.suffix))
            .create()
            .map_err(err)?;
        let (low, high) = consumer
            .fetch_watermarks(&topic, 1, self.options.timeout)
            .map_err(err)?;
        if (low, high) != (0, 10) {
            return Err(format!(
                "watermarks of partition 1 are ({low}, {high}), expected (0, 10)"
            ));
        }
        let (_, empty) = consumer
            .fetch_watermarks(&topic, 0, self.options.timeout)
            .map_err(err)?;
        if empty != 0 {
            return Err(format!("empty partition 0 has end offset {empty}"));
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 1, Offset::Beginning)
            .map_err(err)?;
        consumer.assign(&tpl).map_err(err)?;
        let records = self.read(&consumer, 10)?;
        let expected: Vec<(i64, String)> = (0..10).map(|i| (i, format!("v{i}"))).collect();
        if records != expected {
            return Err(format!("read {records:?}, expected {expected:?}"));
        }
        Ok(())
    }

    fn group_offsets(&self) -> Result<(), String> {
        let topic = format!("conformance-group-{}", self.suffix);
        let group = format!("conformance-group-{}", self.suffix);
        self.create_topic(&topic, 1, &[])?;
        let _flushed = self.produce(&topic, 0, 5, None)?;
        let group_consumer = || -> Result<BaseConsumer, String> {
            self.client()
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest")
                .set("partition.assignment.strategy", "range")
                .create()
                .map_err(err)
        };
        let consumer = group_consumer()?;
        consumer.subscribe(&[&topic]).map_err(err)?;
        self.read(&consumer, 5)?;
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(&topic, 0, Offset::Offset(5))
            .map_err(err)?;
        consumer.commit(&offsets, CommitMode::Sync).map_err(err)?;
        drop(consumer);
        let second = group_consumer()?;
        let mut wanted = TopicPartitionList::new();
        wanted.add_partition(&topic, 0);
        let committed = second
            .committed_offsets(wanted, self.options.timeout)
            .map_err(err)?;
        let offset = committed
            .find_partition(&topic, 0)
            .map(|p| p.offset())
            .ok_or("no committed offset returned")?;
        if offset != Offset::Offset(5) {
            return Err(format!(
                "committed offset is {offset:?}, expected Offset(5)"
            ));
        }
        Ok(())
    }

    /// Produces 3 records in an aborted transaction, then 2 in a committed one.
    fn transactional_writes(&self, topic: &str) -> Result<(), String> {
        self.create_topic(topic, 1, &[])?;
        let aborted = self.produce(topic, 0, 3, Some(&format!("conformance-a-{}", self.suffix)))?;
        aborted
            .abort_transaction(self.options.timeout)
            .map_err(err)?;
        let committed =
            self.produce(topic, 0, 2, Some(&format!("conformance-c-{}", self.suffix)))?;
        committed
            .commit_transaction(self.options.timeout)
            .map_err(err)?;
        Ok(())
    }

    fn transactional_reader(&self, topic: &str) -> Result<BaseConsumer, String> {
        let consumer: BaseConsumer = self
            .client()
            .set("isolation.level", "read_committed")
            .set(
                "group.id",
                format!("conformance-txn-reader-{}", self.suffix),
            )
            .create()
            .map_err(err)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .map_err(err)?;
        consumer.assign(&tpl).map_err(err)?;
        Ok(consumer)
    }

    fn transactions_commit_and_abort(&self) -> Result<(), String> {
        let topic = format!("conformance-txn-{}", self.suffix);
        self.transactional_writes(&topic)?;
        let consumer = self.transactional_reader(&topic)?;
        // Whatever the isolation, the committed records are readable after the aborted ones.
        let records = self.read(&consumer, 2)?;
        if records.is_empty() {
            return Err("no record readable after commit".into());
        }
        let consumer: BaseConsumer = self.client().create().map_err(err)?;
        let (_, high) = consumer
            .fetch_watermarks(&topic, 0, self.options.timeout)
            .map_err(err)?;
        if high < 5 {
            return Err(format!("end offset {high} after 5 transactional records"));
        }
        Ok(())
    }

    fn read_committed_isolation(&self) -> Result<(), String> {
        let topic = format!("conformance-iso-{}", self.suffix);
        self.transactional_writes(&topic)?;
        let consumer = self.transactional_reader(&topic)?;
        let records = self.read(&consumer, 2)?;
        let values: Vec<&str> = records.iter().map(|(_, v)| v.as_str()).collect();
        if values != ["v0", "v1"] || records[0].0 < 3 {
            return Err(format!(
                "read_committed saw {records:?}, expected the committed v0, v1 after the 3 aborted records"
            ));
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            return Err(format!(
                "read_committed saw an aborted record at offset {}",
                m.offset()
            ));
        }
        Ok(())
    }
    /// An initialised transactional producer.
    fn txn_producer(&self, id: &str) -> Result<TxnProducer, String> {
        let producer: TxnProducer = self
            .client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("transactional.id", format!("{id}-{}", self.suffix))
            .create()
            .map_err(err)?;
        producer
            .init_transactions(self.options.timeout)
            .map_err(|e| format!("init_transactions of {id}: {e}"))?;
        Ok(producer)
    }

    /// Sends `values` (as keys and values) to partition 0 and flushes.
    fn send(&self, producer: &TxnProducer, topic: &str, values: &[&str]) -> Result<(), String> {
        for value in values {
            producer
                .send(
                    BaseRecord::to(topic)
                        .partition(0)
                        .key(*value)
                        .payload(*value),
                )
                .map_err(|(e, _)| err(e))?;
        }
        producer.flush(self.options.timeout).map_err(err)
    }

    /// Sends `values` in a transaction of its own, committed.
    fn committed_txn(
        &self,
        producer: &TxnProducer,
        topic: &str,
        values: &[&str],
    ) -> Result<(), String> {
        producer.begin_transaction().map_err(err)?;
        self.send(producer, topic, values)?;
        producer
            .commit_transaction(self.options.timeout)
            .map_err(|e| format!("commit of {values:?}: {e}"))
    }

    /// Reads exactly `expected` (values, in order) and then nothing more for a second.
    fn expect_values(&self, consumer: &BaseConsumer, expected: &[&str]) -> Result<(), String> {
        let records = self.read(consumer, expected.len())?;
        let values: Vec<&str> = records.iter().map(|(_, v)| v.as_str()).collect();
        if values != expected {
            return Err(format!(
                "read_committed saw {records:?}, expected {expected:?}"
            ));
        }
        self.expect_nothing(consumer, Duration::from_secs(1))
            .map_err(|e| format!("after {expected:?}: {e}"))
    }

    fn expect_nothing(&self, consumer: &BaseConsumer, wait: Duration) -> Result<(), String> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message.map_err(err)?;
                let value = message.payload().map(String::from_utf8_lossy);
                return Err(format!(
                    "read_committed saw {value:?} at offset {}",
                    message.offset()
                ));
            }
        }
        Ok(())
    }

    /// The end offset a `read_committed` client sees (the last stable offset).
    fn stable_end(&self, topic: &str) -> Result<i64, String> {
        let consumer: BaseConsumer = self
            .client()
            .set("isolation.level", "read_committed")
            .create()
            .map_err(err)?;
        let (_, high) = consumer
            .fetch_watermarks(topic, 0, self.options.timeout)
            .map_err(err)?;
        Ok(high)
    }

    /// A consumer of `group` that has not joined it, for its group metadata and offsets.
    ///
    /// It reads committed offsets `read_uncommitted`: a `read_committed` consumer asks for
    /// stable offsets only (KIP-447), and Kafka answers `UNSTABLE_OFFSET_COMMIT` until the
    /// transaction holding a pending offset ends, so librdkafka would wait instead of
    /// showing the offset committed before it.
    fn group_member(&self, group: &str) -> Result<(BaseConsumer, ConsumerGroupMetadata), String> {
        let consumer: BaseConsumer = self
            .client()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_uncommitted")
            .create()
            .map_err(err)?;
        let metadata = consumer
            .group_metadata()
            .ok_or("no consumer group metadata")?;
        Ok((consumer, metadata))
    }

    fn send_offset(
        &self,
        producer: &TxnProducer,
        metadata: &ConsumerGroupMetadata,
        topic: &str,
        offset: i64,
    ) -> Result<(), String> {
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(topic, 0, Offset::Offset(offset))
            .map_err(err)?;
        producer
            .send_offsets_to_transaction(&offsets, metadata, self.options.timeout)
            .map_err(|e| format!("send_offsets_to_transaction({offset}): {e}"))
    }

    /// The group's committed offset of partition 0, `None` if it has none.
    fn committed(&self, member: &BaseConsumer, topic: &str) -> Result<Option<i64>, String> {
        let mut wanted = TopicPartitionList::new();
        wanted.add_partition(topic, 0);
        let committed = member
            .committed_offsets(wanted, self.options.timeout)
            .map_err(err)?;
        match committed.find_partition(topic, 0).map(|p| p.offset()) {
            Some(Offset::Offset(offset)) => Ok(Some(offset)),
            Some(Offset::Invalid) | None => Ok(None),
            Some(other) => Err(format!("committed offset {other:?}")),
        }
    }

    fn expect_committed(
        &self,
        member: &BaseConsumer,
        topic: &str,
        expected: Option<i64>,
        when: &str,
    ) -> Result<(), String> {
        let committed = self.committed(member, topic)?;
        if committed != expected {
            return Err(format!(
                "{when}: the group's committed offset is {committed:?}, expected {expected:?}"
            ));
        }
        Ok(())
    }

    fn open_transaction_holds_back_readers(&self) -> Result<(), String> {
        let topic = format!("conformance-open-{}", self.suffix);
        self.create_topic(&topic, 1, &[])?;
        let producer = self.txn_producer("conformance-open")?;
        // Offset 0 and its commit marker at 1; the open transaction is the epoch's second.
        self.committed_txn(&producer, &topic, &["c0"])?;
        producer.begin_transaction().map_err(err)?;
        self.send(&producer, &topic, &["t0", "t1"])?;
        // A plain record after the open transaction's (offset 4): not stable yet either.
        let _plain = self.produce(&topic, 0, 1, None)?;
        let reader = self.transactional_reader(&topic)?;
        self.expect_values(&reader, &["c0"])
            .map_err(|e| format!("while a transaction was open: {e}"))?;
        let stable = self.stable_end(&topic)?;
        if stable != 2 {
            return Err(format!(
                "read_committed end offset {stable} while the transaction from offset 2 was open"
            ));
        }
        producer
            .commit_transaction(self.options.timeout)
            .map_err(err)?;
        self.expect_values(&reader, &["t0", "t1", "v0"])?;
        // ... and the commit marker at 5.
        let stable = self.stable_end(&topic)?;
        if stable != 6 {
            return Err(format!(
                "read_committed end offset {stable} after the commit, expected 6"
            ));
        }
        Ok(())
    }

    fn reinit_fences_old_producer(&self) -> Result<(), String> {
        let topic = format!("conformance-fence-{}", self.suffix);
        self.create_topic(&topic, 1, &[])?;
        let old = self.txn_producer("conformance-fence")?;
        old.begin_transaction().map_err(err)?;
        self.send(&old, &topic, &["z0", "z1", "z2"])?;
        let new = self.txn_producer("conformance-fence")?;
        self.committed_txn(&new, &topic, &["n0"])?;
        match old.commit_transaction(self.options.timeout) {
            Ok(()) => return Err("the fenced producer committed its transaction".into()),
            Err(KafkaError::Transaction(e)) if e.is_fatal() => {}
            Err(e)
                if matches!(
                    e.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::Fenced
                            | RDKafkaErrorCode::ProducerFenced
                            | RDKafkaErrorCode::InvalidProducerEpoch
                    )
                ) => {}
            Err(e) => {
                return Err(format!(
                    "the fenced producer's commit failed with {e}, not fenced"
                ))
            }
        }
        let reader = self.transactional_reader(&topic)?;
        self.expect_values(&reader, &["n0"])
    }

    fn transactional_offsets(&self) -> Result<(), String> {
        let topic = format!("conformance-txn-offsets-{}", self.suffix);
        let group = format!("conformance-txn-offsets-{}", self.suffix);
        self.create_topic(&topic, 1, &[])?;
        let (member, metadata) = self.group_member(&group)?;
        let producer = self.txn_producer("conformance-offsets")?;
        for (offset, commit) in [(5, true), (8, false), (9, true)] {
            producer.begin_transaction().map_err(err)?;
            self.send(&producer, &topic, &[&format!("o{offset}")])?;
            self.send_offset(&producer, &metadata, &topic, offset)?;
            let before = (offset != 5).then_some(5);
            self.expect_committed(
                &member,
                &topic,
                before,
                &format!("before ending the transaction of offset {offset}"),
            )?;
            if commit {
                producer
                    .commit_transaction(self.options.timeout)
                    .map_err(err)?;
            } else {
                producer
                    .abort_transaction(self.options.timeout)
                    .map_err(err)?;
            }
            let after = if commit { offset } else { 5 };
            self.expect_committed(
                &member,
                &topic,
                Some(after),
                &format!(
                    "after {} the transaction of offset {offset}",
                    if commit { "committing" } else { "aborting" }
                ),
            )?;
        }
        let reader = self.transactional_reader(&topic)?;
        self.expect_values(&reader, &["o5", "o9"])
    }

    fn crashed_transaction_aborted(&self) -> Result<(), String> {
        let topic = format!("conformance-crash-{}", self.suffix);
        let group = format!("conformance-crash-{}", self.suffix);
        self.create_topic(&topic, 1, &[])?;
        let (member, metadata) = self.group_member(&group)?;
        // Crash in the first transaction of an epoch.
        let first = self.txn_producer("conformance-crash")?;
        first.begin_transaction().map_err(err)?;
        self.send(&first, &topic, &["a0", "a1"])?;
        self.send_offset(&first, &metadata, &topic, 1)?;
        drop(first);
        // Restart: one committed transaction, then a crash in the second one.
        let second = self.txn_producer("conformance-crash")?;
        self.committed_txn(&second, &topic, &["b0"])?;
        second.begin_transaction().map_err(err)?;
        self.send(&second, &topic, &["c0", "c1"])?;
        self.send_offset(&second, &metadata, &topic, 2)?;
        drop(second);
        // Restart again: committed work, with offsets, must go through.
        let third = self.txn_producer("conformance-crash")?;
        third.begin_transaction().map_err(err)?;
        self.send(&third, &topic, &["d0"])?;
        self.send_offset(&third, &metadata, &topic, 3)?;
        third
            .commit_transaction(self.options.timeout)
            .map_err(err)?;
        self.expect_committed(&member, &topic, Some(3), "after the crashes and a commit")?;
        let reader = self.transactional_reader(&topic)?;
        self.expect_values(&reader, &["b0", "d0"])
    }

    fn overlapping_transactions(&self) -> Result<(), String> {
        let topic = format!("conformance-overlap-{}", self.suffix);
        let group = format!("conformance-overlap-{}", self.suffix);
        self.create_topic(&topic, 1, &[])?;
        let (member, metadata) = self.group_member(&group)?;
        let a = self.txn_producer("conformance-overlap-a")?;
        let b = self.txn_producer("conformance-overlap-b")?;
        a.begin_transaction().map_err(err)?;
        self.send(&a, &topic, &["a0"])?;
        b.begin_transaction().map_err(err)?;
        self.send(&b, &topic, &["b0"])?;
        self.send_offset(&a, &metadata, &topic, 1)?;
        a.commit_transaction(self.options.timeout).map_err(err)?;
        self.expect_committed(
            &member,
            &topic,
            Some(1),
            "after A committed while B was open",
        )?;
        // A's next transaction overlaps B's, which commits first; then A aborts.
        a.begin_transaction().map_err(err)?;
        self.send(&a, &topic, &["a1"])?;
        self.send_offset(&a, &metadata, &topic, 2)?;
        b.commit_transaction(self.options.timeout).map_err(err)?;
        self.expect_committed(
            &member,
            &topic,
            Some(1),
            "after B committed while A's second transaction was open",
        )?;
        let reader = self.transactional_reader(&topic)?;
        self.expect_values(&reader, &["a0", "b0"])
            .map_err(|e| format!("while A's second transaction was open: {e}"))?;
        a.abort_transaction(self.options.timeout).map_err(err)?;
        self.expect_committed(&member, &topic, Some(1), "after A aborted")?;
        self.committed_txn(&a, &topic, &["a2"])?;
        self.expect_values(&reader, &["a2"])
    }
}

/// Runs every check against the broker at `bootstrap`.
///
/// ```no_run
/// use kstreams_testkit::conformance::{check, Options};
/// let report = check("kafka-1.internal:9092", &Options::default());
/// for (name, result) in &report.checks {
///     println!("{name}: {}", result.as_ref().map_or_else(|e| e.clone(), |_| "ok".into()));
/// }
/// assert!(report.passed());
/// ```
pub fn check(bootstrap: &str, options: &Options) -> Report {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return Report {
                checks: vec![("runtime", Err(e.to_string()))],
            }
        }
    };
    let checker = Checker {
        bootstrap,
        options,
        runtime,
        suffix: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
    };
    let mut checks = Vec::new();
    if options.topic_configs {
        checks.push(("topic configs on creation", checker.topic_configs()));
    }
    checks.push((
        "end offsets and ordered reads",
        checker.end_offsets_and_ordered_reads(),
    ));
    checks.push(("consumer group offsets", checker.group_offsets()));
    if options.transactions {
        checks.push((
            "transactions commit and abort",
            checker.transactions_commit_and_abort(),
        ));
        checks.push((
            "read_committed hides aborted records",
            checker.read_committed_isolation(),
        ));
        if options.exactly_once {
            checks.push((
                "an open transaction holds back read_committed readers",
                checker.open_transaction_holds_back_readers(),
            ));
            checks.push((
                "re-initialising a transactional.id fences the old producer",
                checker.reinit_fences_old_producer(),
            ));
            checks.push((
                "transactional consumer offsets apply on commit only",
                checker.transactional_offsets(),
            ));
            checks.push((
                "a crashed producer's transaction is aborted on re-init",
                checker.crashed_transaction_aborted(),
            ));
            checks.push((
                "overlapping transactions of two producers stay apart",
                checker.overlapping_transactions(),
            ));
        }
    }
    Report { checks }
}
