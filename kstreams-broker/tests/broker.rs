//! The broker as librdkafka clients see it: produce and fetch, offsets by time, configs,
//! idempotent and transactional producers, data kept across a restart, and a SIGKILL that
//! loses no acknowledged record.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kstreams_broker::{Broker, BrokerConfig};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

fn start(dir: &std::path::Path) -> Broker {
    Broker::start(BrokerConfig::new(dir)).expect("broker starts")
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = client(bootstrap).create().unwrap();
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = futures_block(admin.create_topics(&[topic], &AdminOptions::new())).unwrap();
    for result in results {
        result.unwrap();
    }
}

fn futures_block<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> ThreadedProducer<DefaultProducerContext> {
    let mut config = client(bootstrap);
    config.set("linger.ms", "5");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().unwrap()
}

/// Reads `topic`'s partitions from the beginning until `count` records arrived.
fn read(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    committed: bool,
) -> Vec<(i32, i64, String)> {
    read_with(bootstrap, topic, partitions, count, committed, &[])
}

/// [`read`] with `extra` consumer settings.
fn read_with(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    committed: bool,
    extra: &[(&str, &str)],
) -> Vec<(i32, i64, String)> {
    let mut config = client(bootstrap);
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config
        .set("group.id", "reader")
        .set("enable.auto.commit", "false")
        .set(
            "isolation.level",
            if committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "read {} of {count}: {out:?}",
            out.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            out.push((
                message.partition(),
                message.offset(),
                String::from_utf8(message.payload().unwrap().to_vec()).unwrap(),
            ));
        }
    }
    // Nothing more than expected arrives.
    let quiet = Instant::now() + Duration::from_millis(500);
    while Instant::now() < quiet {
        if let Some(message) = consumer.poll(Duration::from_millis(50)) {
            let message = message.unwrap();
            panic!("unexpected record at offset {}", message.offset());
        }
    }
    out
}

#[test]
fn records_come_back_in_order_with_exact_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let bootstrap = broker.bootstrap_servers().to_string();
    create_topic(&bootstrap, "orders", 2, &[]);
    let producer = producer(&bootstrap, &[]);
    for i in 0..1000 {
        producer
            .send(
                BaseRecord::to("orders")
                    .partition(i % 2)
                    .key(&format!("k{i}"))
                    .payload(&format!("v{i}")),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let records = read(&bootstrap, "orders", 2, 1000, false);
    let mut by_partition: HashMap<i32, Vec<(i64, String)>> = HashMap::new();
    for (p, o, v) in records {
        by_partition.entry(p).or_default().push((o, v));
    }
    for p in 0..2 {
        let expected: Vec<(i64, String)> = (0..500)
            .map(|n| (n as i64, format!("v{}", n * 2 + p)))
            .collect();
        assert_eq!(by_partition[&p], expected, "partition {p}");
    }
    let consumer: BaseConsumer = client(&bootstrap).create().unwrap();
    let (low, high) = consumer
        .fetch_watermarks("orders", 0, Duration::from_secs(5))
        .unwrap();
    assert_eq!((low, high), (0, 500));
}

#[test]
fn offsets_are_found_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let bootstrap = broker.bootstrap_servers().to_string();
    create_topic(&bootstrap, "timed", 1, &[]);
    let producer = producer(&bootstrap, &[]);
    for (i, ts) in [1_000i64, 2_000, 3_000, 2_500, 5_000].iter().enumerate() {
        producer
            .send(
                BaseRecord::to("timed")
                    .key("k")
                    .payload(&format!("v{i}"))
                    .timestamp(*ts),
            )
            .unwrap();
        // One batch each, so a batch's max timestamp is not enough to answer.
        producer.flush(Duration::from_secs(10)).unwrap();
    }
    let consumer: BaseConsumer = client(&bootstrap).create().unwrap();
    let lookup = |ts: i64| {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset("timed", 0, Offset::Offset(ts))
            .unwrap();
        let found = consumer
            .offsets_for_times(list, Duration::from_secs(5))
            .unwrap();
        found.elements()[0].offset()
    };
    assert_eq!(lookup(0), Offset::Offset(0));
    assert_eq!(lookup(2_200), Offset::Offset(2));
    assert_eq!(lookup(3_000), Offset::Offset(2));
    assert_eq!(lookup(4_000), Offset::Offset(4));
    assert_eq!(lookup(6_000), Offset::End);
}

#[test]
fn topic_configs_are_kept_and_described() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let bootstrap = broker.bootstrap_servers().to_string();
    create_topic(&bootstrap, "compacted", 3, &[("cleanup.policy", "compact")]);
    let admin: AdminClient<DefaultClientContext> = client(&bootstrap).create().unwrap();
    let described = futures_block(admin.describe_configs(
        &[ResourceSpecifier::Topic("compacted")],
        &AdminOptions::new(),
    ))
    .unwrap();
    let resource = described[0].as_ref().unwrap();
    let entry = resource.get("cleanup.policy").unwrap();
    assert_eq!(entry.value.as_deref(), Some("compact"));
    assert!(!entry.is_default);
    let retention = resource.get("retention.ms").unwrap();
    assert!(retention.is_default);
    // A second create of the same name is refused.
    let again = futures_block(admin.create_topics(
        &[NewTopic::new("compacted", 1, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))
    .unwrap();
    assert!(matches!(
        &again[0],
        Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
    ));
    let metadata = admin
        .inner()
        .fetch_metadata(Some("compacted"), Duration::from_secs(5))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 3);
    // AlterConfigs replaces the topic's configs with the ones given.
    let altered = futures_block(
        admin.alter_configs(
            &[
                rdkafka::admin::AlterConfig::new(ResourceSpecifier::Topic("compacted"))
                    .set("retention.ms", "1000"),
            ],
            &AdminOptions::new(),
        ),
    )
    .unwrap();
    assert!(altered[0].is_ok(), "{altered:?}");
    let described = futures_block(admin.describe_configs(
        &[ResourceSpecifier::Topic("compacted")],
        &AdminOptions::new(),
    ))
    .unwrap();
    let resource = described[0].as_ref().unwrap();
    assert_eq!(
        resource.get("retention.ms").unwrap().value.as_deref(),
        Some("1000")
    );
    assert!(resource.get("cleanup.policy").unwrap().is_default);
}

#[test]
fn idempotent_producers_write_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let bootstrap = broker.bootstrap_servers().to_string();
    create_topic(&bootstrap, "idem", 1, &[]);
    let producer = producer(&bootstrap, &[("enable.idempotence", "true")]);
    for i in 0..200 {
        producer
            .send(BaseRecord::to("idem").key("k").payload(&format!("v{i}")))
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let records = read(&bootstrap, "idem", 1, 200, false);
    let values: Vec<String> = records.into_iter().map(|(_, _, v)| v).collect();
    let expected: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
    assert_eq!(values, expected);
}

#[test]
fn read_committed_skips_aborted_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let bootstrap = broker.bootstrap_servers().to_string();
    create_topic(&bootstrap, "txn", 1, &[]);
    let producer = producer(&bootstrap, &[("transactional.id", "t-1")]);
    producer.init_transactions(Duration::from_secs(10)).unwrap();
    for (commit, values) in [(true, ["a", "b"]), (false, ["x", "y"]), (true, ["c", "d"])] {
        producer.begin_transaction().unwrap();
        for v in values {
            producer
                .send(BaseRecord::to("txn").key("k").payload(v))
                .unwrap();
        }
        if commit {
            producer
                .commit_transaction(Duration::from_secs(10))
                .unwrap();
        } else {
            producer.flush(Duration::from_secs(10)).unwrap();
            producer.abort_transaction(Duration::from_secs(10)).unwrap();
        }
    }
    let committed: Vec<String> = read(&bootstrap, "txn", 1, 4, true)
        .into_iter()
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!(committed, ["a", "b", "c", "d"]);
    let everything: Vec<String> = read(&bootstrap, "txn", 1, 6, false)
        .into_iter()
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!(everything, ["a", "b", "x", "y", "c", "d"]);
}

#[test]
fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = start(dir.path());
        let bootstrap = broker.bootstrap_servers().to_string();
        create_topic(&bootstrap, "kept", 1, &[("retention.ms", "-1")]);
        let producer = producer(&bootstrap, &[]);
        for i in 0..10 {
            producer
                .send(BaseRecord::to("kept").key("k").payload(&format!("v{i}")))
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    }
    let broker = start(dir.path());
    let bootstrap = broker.bootstrap_servers().to_string();
    let values: Vec<String> = read(&bootstrap, "kept", 1, 10, false)
        .into_iter()
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!(values.len(), 10);
    assert_eq!(values[9], "v9");
    // New records continue the offsets.
    let producer = producer(&bootstrap, &[]);
    producer
        .send(BaseRecord::to("kept").key("k").payload("v10"))
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let records = read(&bootstrap, "kept", 1, 11, false);
    assert_eq!(records[10].1, 10);
}

/// A producer that dies inside a transaction (never ends it, never comes back with its
/// transactional id) must not hold `read_committed` readers back for ever: the broker aborts
/// the transaction once it outlives its `transaction.timeout.ms`. (tansu 0.6 stored the
/// timeout but never acted on it, so an instance SIGKILLed mid-transaction pinned the last
/// stable offset of its partitions until the same transactional id returned.)
#[test]
fn an_abandoned_transaction_is_aborted_after_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let bootstrap = broker.bootstrap_servers().to_string();
    create_topic(&bootstrap, "abandoned", 1, &[]);
    let dead = producer(
        &bootstrap,
        &[
            ("transactional.id", "dead"),
            ("transaction.timeout.ms", "2000"),
        ],
    );
    dead.init_transactions(Duration::from_secs(10)).unwrap();
    dead.begin_transaction().unwrap();
    dead.send(BaseRecord::to("abandoned").key("k").payload("x"))
        .unwrap();
    dead.flush(Duration::from_secs(10)).unwrap();
    // Gone without a word: no EndTxn, no close (dropping would run librdkafka's shutdown).
    std::mem::forget(dead);

    let alive = producer(&bootstrap, &[("transactional.id", "alive")]);
    alive.init_transactions(Duration::from_secs(10)).unwrap();
    alive.begin_transaction().unwrap();
    alive
        .send(BaseRecord::to("abandoned").key("k").payload("y"))
        .unwrap();
    alive.commit_transaction(Duration::from_secs(10)).unwrap();

    // `read` waits up to 30 s for "y", which lies behind the open transaction, and then
    // checks that nothing else (the abandoned "x") arrives.
    let committed: Vec<String> = read(&bootstrap, "abandoned", 1, 1, true)
        .into_iter()
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!(committed, ["y"]);
}

/// A batch larger than the fetch's byte budget is still returned when it is the first of
/// the response (Kafka's KIP-74), so a partition never stalls on a large record. (tansu 0.6
/// returned nothing for a partition whose next record did not fit what was left of the
/// budget.)
#[test]
fn a_record_larger_than_the_fetch_budget_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let bootstrap = broker.bootstrap_servers().to_string();
    create_topic(&bootstrap, "large", 3, &[]);
    let producer = producer(&bootstrap, &[("compression.type", "none")]);
    let big = "b".repeat(50_000);
    for i in 0..15 {
        producer
            .send(
                BaseRecord::to("large")
                    .partition(i % 3)
                    .key("k")
                    .payload(&format!("{i}:{big}")),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let budget = [
        ("message.max.bytes", "1000"),
        ("fetch.max.bytes", "1000"),
        ("max.partition.fetch.bytes", "1000"),
    ];
    let mut read: Vec<i32> = read_with(&bootstrap, "large", 3, 15, false, &budget)
        .into_iter()
        .map(|(_, _, v)| v.split(':').next().unwrap().parse().unwrap())
        .collect();
    read.sort();
    assert_eq!(read, (0..15).collect::<Vec<_>>());
}
