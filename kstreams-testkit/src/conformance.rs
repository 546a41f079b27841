//! Checks that a broker does what kstreams relies on: topic configs on creation, exact end
//! offsets, ordered reads, consumer-group offset commits, and (optionally) transactions with
//! `read_committed` isolation.
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
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// Creates a topic of this many partitions, for brokers without the admin API.
pub type TopicCreator = Box<dyn Fn(&str, i32) -> Result<(), String>>;

/// What to check.
pub struct Options {
    /// Create topics through the admin API with configs and read the configs back.
    pub topic_configs: bool,
    /// Check transactions (commit, abort, `read_committed`).
    pub transactions: bool,
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
            create_topic: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The outcome of each check.
pub struct Report {
    /// `(check, Ok or the reason it failed)`, in the order run.
    pub checks: Vec<(&'static str, Result<(), String>)>,
}

impl Report {
    /// True when every check passed.
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
}

/// Runs every check against the broker at `bootstrap`.
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
    }
    Report { checks }
}
