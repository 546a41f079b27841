//! kstreams on a real Kafka-protocol broker (tansu, in process): a word count end to end,
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
    config.commit_interval = Duration::from_millis(100);
    config.client_overrides = vec![
        ("session.timeout.ms".into(), "6000".into()),
        ("heartbeat.interval.ms".into(), "300".into()),
    ];
    config
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
