//! kstreams on a real Kafka-protocol broker (the development broker, in process): a word count end to end,
//! and a restart that continues from committed offsets and restored state.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kstreams::config::StreamsConfig;
use kstreams::dsl::StreamsBuilder;
use kstreams::kafka::{KafkaStreams, State};
use kstreams_testkit::EmbeddedBroker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message};

/// A consumer of `topic` from the beginning, in its own group.
fn reader(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

fn word_count() -> kstreams::topology::Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<Option<String>, String>("text-input")
        .flat_map_values(|line| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone())
        .count()
        .to_stream()
        .to("word-counts");
    builder.build().unwrap()
}

fn config(bootstrap: &str) -> StreamsConfig {
    let mut config = StreamsConfig::new("wordcount-e2e");
    config.bootstrap_servers = bootstrap.to_string();
    config.commit_interval = Some(Duration::from_millis(100));
    config.client_overrides = vec![
        ("session.timeout.ms".into(), "6000".into()),
        ("heartbeat.interval.ms".into(), "300".into()),
    ];
    // Each instance its own state directory, as separate processes would have.
    config.state_dir = std::env::temp_dir().join(format!("kstreams-e2e-{}", uuid_like()));
    config
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn produce(bootstrap: &str, lines: &[&str]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for (i, line) in lines.iter().enumerate() {
        let key = format!("line-{i}");
        producer
            .send(BaseRecord::to("text-input").key(&key).payload(*line))
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// Reads `word-counts` until the latest count of every expected word is as expected.
fn await_counts<W: AsRef<str> + std::fmt::Debug>(
    consumer: &BaseConsumer,
    latest: &mut HashMap<String, i64>,
    expected: &HashMap<W, i64>,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while expected
        .iter()
        .any(|(w, c)| latest.get(w.as_ref()) != Some(c))
    {
        assert!(
            Instant::now() < deadline,
            "counts so far {latest:?}, expected {expected:?}"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let word = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            let count = i64::from_be_bytes(message.payload().unwrap().try_into().unwrap());
            latest.insert(word, count);
        }
    }
}

#[test]
fn word_count_runs_on_a_broker_and_resumes_after_a_restart() {
    let broker = EmbeddedBroker::start().unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    broker.create_topic("text-input", 2, &[]).unwrap();
    broker.create_topic("word-counts", 2, &[]).unwrap();
    let topology = word_count();

    let reader = reader(&bootstrap, "word-count-reader", "word-counts");
    let mut latest = HashMap::new();

    produce(&bootstrap, &["to be or not to be", "that is the question"]);
    let mut streams = KafkaStreams::new(&topology, config(&bootstrap));
    let states = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = states.clone();
    streams.set_state_listener(move |_, new| seen.lock().unwrap().push(new));
    streams.start().unwrap();
    await_counts(
        &reader,
        &mut latest,
        &HashMap::from([("to", 2), ("be", 2), ("question", 1)]),
    );
    assert_eq!(streams.state(), State::Running);
    streams.close();
    assert_eq!(streams.state(), State::NotRunning);
    assert!(states.lock().unwrap().contains(&State::Running));

    // The internal topics were created with the source topics' partition count.
    let metadata = reader
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let partitions: HashMap<&str, usize> = metadata
        .topics()
        .iter()
        .map(|t| (t.name(), t.partitions().len()))
        .collect();
    assert_eq!(
        partitions.get("wordcount-e2e-KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition"),
        Some(&2),
        "{partitions:?}"
    );
    assert_eq!(
        partitions.get("wordcount-e2e-KSTREAM-AGGREGATE-STATE-STORE-0000000003-changelog"),
        Some(&2)
    );

    // A new instance restores the counts from the changelog and resumes after the
    // committed offsets: "to" goes from 2 to 3, not to 1 (lost state) or 5 (replayed input).
    produce(&bootstrap, &["to err is human"]);
    let mut restarted = KafkaStreams::new(&topology, config(&bootstrap));
    restarted.start().unwrap();
    let final_counts = HashMap::from([
        ("to", 3),
        ("be", 2),
        ("or", 1),
        ("not", 1),
        ("that", 1),
        ("is", 2),
        ("the", 1),
        ("question", 1),
        ("err", 1),
        ("human", 1),
    ]);
    await_counts(&reader, &mut latest, &final_counts);
    restarted.close();
    // close() flushed and committed everything: nothing else may arrive (a replay would
    // push "to" past 3).
    let quiet = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet {
        if let Some(message) = reader.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            panic!(
                "unexpected update after close: {:?}",
                message.key().map(String::from_utf8_lossy)
            );
        }
    }
    let expected: HashMap<String, i64> = final_counts
        .iter()
        .map(|(w, c)| (w.to_string(), *c))
        .collect();
    assert_eq!(latest, expected);
}

#[test]
fn poison_records_go_to_the_dead_letter_topic_while_processing_continues() {
    use kstreams::config::ErrorPolicy;
    use rdkafka::message::Headers as _;

    let broker = EmbeddedBroker::start().unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    broker.create_topic("amounts", 1, &[]).unwrap();
    broker.create_topic("doubled", 1, &[]).unwrap();
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("amounts")
        .map_values(|v| v * 2)
        .to("doubled");
    let topology = builder.build().unwrap();
    let mut config = config(&bootstrap).deserialization_policy(ErrorPolicy::DeadLetter);
    config.application_id = "poison-e2e".into();

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let good = 21i64.to_be_bytes();
    producer
        .send(BaseRecord::to("amounts").key("a").payload(&good[..]))
        .unwrap();
    producer
        .send(BaseRecord::to("amounts").key("bad").payload("not a long"))
        .unwrap();
    producer
        .send(BaseRecord::to("amounts").key("b").payload(&good[..]))
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();

    let mut streams = KafkaStreams::new(&topology, config);
    streams.start().unwrap();
    let read = |topic: &str, count: usize| {
        let consumer = reader(&bootstrap, &format!("reader-{topic}"), topic);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut out = Vec::new();
        while out.len() < count {
            assert!(
                Instant::now() < deadline,
                "read {} of {count} from {topic}",
                out.len()
            );
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                out.push(m.unwrap().detach());
            }
        }
        out
    };
    let doubled = read("doubled", 2);
    let values: Vec<i64> = doubled
        .iter()
        .map(|m| i64::from_be_bytes(m.payload().unwrap().try_into().unwrap()))
        .collect();
    assert_eq!(values, vec![42, 42]);
    let dead = read("poison-e2e-dlq", 1);
    assert_eq!(dead[0].key(), Some(&b"bad"[..]));
    assert_eq!(dead[0].payload(), Some(&b"not a long"[..]));
    let headers = dead[0].headers().unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(
        header(kstreams::dead_letter::ERROR_TOPIC).as_deref(),
        Some("amounts")
    );
    assert_eq!(
        header(kstreams::dead_letter::ERROR_OFFSET).as_deref(),
        Some("1")
    );
    assert_eq!(
        header(kstreams::dead_letter::ERROR_KIND).as_deref(),
        Some("deserialization")
    );
    streams.close();
}

#[test]
fn two_instances_split_the_partitions_and_hand_over_state_exactly() {
    let broker = EmbeddedBroker::start().unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    broker.create_topic("text-input", 4, &[]).unwrap();
    broker.create_topic("word-counts", 4, &[]).unwrap();
    let topology = word_count();
    let mut app = config(&bootstrap);
    app.application_id = "wordcount-scale".into();
    let reader = reader(&bootstrap, "scale-reader", "word-counts");
    let mut latest = HashMap::new();
    let mut expected: HashMap<String, i64> = HashMap::new();
    let feed = |lines: &[&str], expected: &mut HashMap<String, i64>| {
        produce(&bootstrap, lines);
        for word in lines.iter().flat_map(|l| l.split_whitespace()) {
            *expected.entry(word.to_string()).or_insert(0) += 1;
        }
    };

    let mut first = KafkaStreams::new(&topology, app.clone());
    first.start().unwrap();
    feed(&["alpha beta gamma delta", "alpha beta"], &mut expected);
    await_counts(&reader, &mut latest, &expected);

    assert_eq!(
        first.local_tasks().len(),
        8,
        "2 sub-topologies x 4 partitions"
    );

    let mut second = KafkaStreams::new(&topology, app.clone());
    second.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.local_tasks().len() != 4 || second.local_tasks().len() != 4 {
        assert!(
            Instant::now() < deadline,
            "tasks {:?} / {:?}",
            first.local_tasks(),
            second.local_tasks()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (a, b) = (first.local_tasks(), second.local_tasks());
    assert!(
        a.iter().all(|t| !b.contains(t)),
        "each task runs once: {a:?} / {b:?}"
    );
    // The range assignor gives partition p of both sub-topologies' topics to one member.
    let partitions = |tasks: &[kstreams::processor::TaskId]| {
        let mut p: Vec<i32> = tasks.iter().map(|t| t.partition).collect();
        p.sort();
        p.dedup();
        p
    };
    assert_eq!(
        partitions(&a).len() + partitions(&b).len(),
        4,
        "{a:?} / {b:?}"
    );
    feed(
        &["alpha gamma epsilon", "zeta eta theta iota"],
        &mut expected,
    );
    await_counts(&reader, &mut latest, &expected);

    // Stopping one moves its tasks, with their state, to the other.
    first.close();
    let deadline = Instant::now() + Duration::from_secs(60);
    while second.local_tasks().len() != 8 {
        assert!(
            Instant::now() < deadline,
            "tasks {:?}",
            second.local_tasks()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    feed(
        &["alpha beta gamma delta epsilon zeta eta theta iota"],
        &mut expected,
    );
    await_counts(&reader, &mut latest, &expected);
    second.close();
    let quiet = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet {
        if let Some(message) = reader.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let word = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            let count = i64::from_be_bytes(message.payload().unwrap().try_into().unwrap());
            latest.insert(word, count);
        }
    }
    assert_eq!(
        latest, expected,
        "every count exact after scaling out and in"
    );
}

#[test]
fn a_stream_joins_a_global_table_on_a_broker() {
    let broker = EmbeddedBroker::start().unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    broker
        .create_topic("products", 3, &[("cleanup.policy", "compact")])
        .unwrap();
    broker.create_topic("order-lines", 2, &[]).unwrap();
    broker.create_topic("named-lines", 2, &[]).unwrap();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    for (id, name) in [("p1", "kettle"), ("p2", "teapot"), ("p3", "mug")] {
        producer
            .send(BaseRecord::to("products").key(id).payload(name))
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let builder = StreamsBuilder::new();
    let products = builder.global_table::<String, String>(
        "products",
        kstreams::dsl::Materialized::named("products-store"),
    );
    builder
        .stream::<String, String>("order-lines")
        .join_global(
            &products,
            |_, product| product.clone(),
            |_, name| name.clone(),
        )
        .to("named-lines");
    let mut app = config(&bootstrap);
    app.application_id = "global-e2e".into();
    let mut streams = KafkaStreams::new(&builder.build().unwrap(), app);
    streams.start().unwrap();
    // The global store is filled before start() returns.
    let store = streams.store::<String, String>("products-store").unwrap();
    assert_eq!(
        store.get(&"p2".to_string()).unwrap().as_deref(),
        Some("teapot")
    );
    for (order, product) in [("o1", "p3"), ("o2", "p1"), ("o3", "p9"), ("o4", "p2")] {
        producer
            .send(BaseRecord::to("order-lines").key(order).payload(product))
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let consumer = reader(&bootstrap, "global-reader", "named-lines");
    let mut named = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while named.len() < 3 {
        assert!(Instant::now() < deadline, "{named:?}");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            named.insert(
                String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
            );
        }
    }
    let expected: HashMap<String, String> = [("o1", "mug"), ("o2", "kettle"), ("o4", "teapot")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        named, expected,
        "o3 has no product and is dropped by the inner join"
    );
    // The global table keeps up with its topic while the application runs.
    producer
        .send(BaseRecord::to("products").key("p9").payload("saucer"))
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.get(&"p9".to_string()).unwrap().is_none() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    streams.close();
}

#[test]
fn records_the_broker_cannot_take_are_dead_lettered_with_their_source() {
    use kstreams::config::ErrorPolicy;
    use rdkafka::message::Headers as _;

    let broker = EmbeddedBroker::start().unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    broker.create_topic("sizes", 1, &[]).unwrap();
    broker.create_topic("blown-up", 1, &[]).unwrap();
    let builder = StreamsBuilder::new();
    // A value of n becomes n KiB: "2000" is larger than the producer's message.max.bytes.
    builder
        .stream::<String, String>("sizes")
        .map_values(|v| "x".repeat(v.parse::<usize>().unwrap_or(0) * 1024))
        .to("blown-up");
    let mut app = config(&bootstrap).production_policy(ErrorPolicy::DeadLetter);
    app.application_id = "production-e2e".into();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    for (k, v) in [("small", "1"), ("huge", "2000"), ("tiny", "2")] {
        producer
            .send(BaseRecord::to("sizes").key(k).payload(v))
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let mut streams = KafkaStreams::new(&builder.build().unwrap(), app);
    streams.start().unwrap();
    let out = reader(&bootstrap, "blown-reader", "blown-up");
    let mut sizes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sizes.len() < 2 {
        assert!(Instant::now() < deadline);
        if let Some(m) = out.poll(Duration::from_millis(100)) {
            sizes.push(m.unwrap().payload().unwrap().len());
        }
    }
    assert_eq!(
        sizes,
        vec![1024, 2048],
        "processing went on past the failed record"
    );
    let dlq = reader(&bootstrap, "blown-dlq-reader", "production-e2e-dlq");
    let dead = loop {
        assert!(Instant::now() < deadline);
        if let Some(m) = dlq.poll(Duration::from_millis(100)) {
            break m.unwrap().detach();
        }
    };
    assert_eq!(dead.key(), Some(&b"huge"[..]), "the source record's key");
    assert_eq!(
        dead.payload(),
        Some(&b"2000"[..]),
        "the source record's value"
    );
    let headers = dead.headers().unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(
        header(kstreams::dead_letter::ERROR_KIND).as_deref(),
        Some("production")
    );
    assert_eq!(
        header(kstreams::dead_letter::ERROR_TOPIC).as_deref(),
        Some("sizes")
    );
    assert_eq!(
        header(kstreams::dead_letter::ERROR_OFFSET).as_deref(),
        Some("1")
    );
    assert!(header(kstreams::dead_letter::ERROR_MESSAGE)
        .unwrap()
        .contains("blown-up"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while streams.metrics().dead_lettered_records != 1 {
        assert!(Instant::now() < deadline, "{:?}", streams.metrics());
        std::thread::sleep(Duration::from_millis(100));
    }
    streams.close();
}

#[test]
fn metrics_are_exported_in_prometheus_format() {
    let broker = EmbeddedBroker::start().unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    broker.create_topic("text-input", 2, &[]).unwrap();
    broker.create_topic("word-counts", 2, &[]).unwrap();
    let mut app = config(&bootstrap);
    app.application_id = "metrics-e2e".into();
    let mut streams = KafkaStreams::new(&word_count(), app);
    streams.start().unwrap();
    produce(&bootstrap, &["a b c", "a b", "a"]);
    let reader = reader(&bootstrap, "metrics-reader", "word-counts");
    let mut latest = HashMap::new();
    await_counts(
        &reader,
        &mut latest,
        &HashMap::from([("a", 3), ("b", 2), ("c", 1)]),
    );
    // Rates, lag and task counters are published about once a second.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let snapshot = streams.metrics();
        if snapshot.records_consumed >= 9
            && snapshot.records_produced > 0
            && snapshot.commits > 0
            && !snapshot.consumer_lag.is_empty()
        {
            assert!(snapshot.consumer_lag.values().all(|lag| *lag >= 0));
            break;
        }
        assert!(Instant::now() < deadline, "{snapshot:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = streams.metrics_text();
    for series in [
        "kstreams_records_consumed_total{thread=\"metrics-e2e-StreamThread-1\"}",
        "kstreams_records_produced_total",
        "kstreams_records_consumed_rate",
        "kstreams_process_latency_seconds_bucket",
        "kstreams_commit_latency_seconds_count",
        "kstreams_consumer_lag{",
        "kstreams_rebalances_total",
        "kstreams_dead_lettered_records_total",
        "kstreams_dropped_records_total",
        "kstreams_active_tasks",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
    // The same series in an application's own registry.
    let mut registry = kstreams::prometheus_client::registry::Registry::default();
    streams.register_metrics(&mut registry);
    let mut own = String::new();
    kstreams::prometheus_client::encoding::text::encode(&mut own, &registry).unwrap();
    assert!(own.contains("kstreams_records_consumed_total"));
    streams.close();
}

/// Kafka Streams commits every 100 ms under exactly-once unless told otherwise; with a 30 s
/// default the broker would abort every transaction (10 s timeout) before its commit, and a
/// `read_committed` reader would never see an output.
#[test]
fn exactly_once_with_default_settings_commits_its_outputs() {
    use kstreams::config::ProcessingGuarantee;

    let broker = EmbeddedBroker::start().unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    broker.create_topic("eos-default-in", 1, &[]).unwrap();
    broker.create_topic("eos-default-out", 1, &[]).unwrap();
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("eos-default-in")
        .map_values(|v| v.to_uppercase())
        .to("eos-default-out");
    // Only what a user must set: no commit interval, no transaction timeout.
    let config = StreamsConfig::new("eos-default")
        .with_bootstrap_servers(&bootstrap)
        .with_processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .with_state_dir(std::env::temp_dir().join(format!("kstreams-e2e-{}", uuid_like())));
    assert_eq!(
        config.effective_commit_interval(),
        Duration::from_millis(100)
    );
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    producer
        .send(BaseRecord::to("eos-default-in").key("k").payload("hello"))
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();

    let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    streams.start().unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "eos-default-reader")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&["eos-default-out"]).unwrap();
    // Under the old 30 s default nothing ever committed; 25 s is well past one default
    // commit interval of 100 ms and short of the first 30 s commit attempt.
    let deadline = Instant::now() + Duration::from_secs(25);
    let value = loop {
        assert!(
            Instant::now() < deadline,
            "no committed output; state {:?}, error {:?}",
            streams.state(),
            streams.error()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            break m.unwrap().payload().map(|p| p.to_vec());
        }
    };
    assert_eq!(value.as_deref(), Some(&b"HELLO"[..]));
    assert_eq!(streams.state(), State::Running);
    streams.close();
}

#[test]
fn start_refuses_a_commit_interval_the_transaction_timeout_would_abort() {
    use kstreams::config::ProcessingGuarantee;
    use kstreams::error::StreamsError;

    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("in").to("out");
    // No broker is needed: the configuration is checked before any client is made.
    let config = StreamsConfig::new("eos-too-slow")
        .with_bootstrap_servers("127.0.0.1:1")
        .with_processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .with_commit_interval(Duration::from_secs(30));
    let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    match streams.start() {
        Err(StreamsError::InvalidConfig(message)) => {
            assert!(message.contains("transaction timeout"), "{message}")
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    assert_eq!(streams.state(), State::Error);
}

/// A running application's session store answers by key and by time range; asking for a
/// store of another kind as a session store is refused at once.
#[test]
fn session_stores_are_queryable_on_a_running_application() {
    use kstreams::dsl::{Materialized, SessionWindows};
    use kstreams::state::StoreError;

    let broker = EmbeddedBroker::start().unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    broker.create_topic("visits-in", 1, &[]).unwrap();
    let builder = StreamsBuilder::new();
    let clicks = builder.stream::<String, String>("visits-in").group_by_key();
    clicks
        .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(
            Duration::from_millis(100),
        ))
        // Kept an hour: by default a session store keeps sessions for gap + grace only.
        .count_with(Materialized::named("visits").with_retention(Duration::from_secs(3600)));
    clicks.count_with(Materialized::named("clicks-total"));
    let mut config = config(&bootstrap);
    config.application_id = "sessions-e2e".into();
    let mut streams = KafkaStreams::new(&builder.build().unwrap(), config);
    streams.start().unwrap();

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    for (user, t) in [
        ("ann", 1_000),
        ("ann", 1_040),
        ("bob", 1_050),
        ("ann", 5_000),
    ] {
        producer
            .send(
                BaseRecord::to("visits-in")
                    .key(user)
                    .payload("/")
                    .timestamp(t),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let ann = loop {
        assert!(
            Instant::now() < deadline,
            "no sessions; {:?}",
            streams.error()
        );
        if let Ok(visits) = streams.session_store::<String, i64>("visits") {
            let sessions: Vec<(i64, i64, i64)> = visits
                .fetch(&"ann".to_string())
                .unwrap()
                .iter()
                .map(|s| (s.start, s.end, s.value))
                .collect();
            if sessions.len() == 2 {
                break sessions;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ann, vec![(1_000, 1_040, 2), (5_000, 5_000, 1)]);
    let visits = streams.session_store::<String, i64>("visits").unwrap();
    let late: Vec<i64> = visits
        .find_sessions(&"ann".to_string(), 2_000, 6_000)
        .unwrap()
        .iter()
        .map(|s| s.start)
        .collect();
    assert_eq!(late, vec![5_000]);
    assert!(matches!(
        streams.session_store::<String, i64>("clicks-total"),
        Err(StoreError::WrongKind { .. })
    ));
    streams.close();
}
