//! What the broker examples share: an in-process broker with its topics, a producer, a
//! consumer that reads a number of records within a timeout, and a streams configuration
//! for a quick demo.
//!
//! Each example includes this file with `#[path = "common/mod.rs"] mod common;` and uses
//! the parts it needs. Everything runs on [`EmbeddedBroker`]: a real Kafka-protocol broker
//! (the kstreams development broker) inside the process, on an ephemeral port, gone when the example ends.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use kstreams::config::StreamsConfig;
use kstreams::kafka::{KafkaStreams, State};
use kstreams::topology::Topology;
use kstreams::BoxError;
use kstreams_testkit::EmbeddedBroker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message};

/// How long an example waits for records or for an application to start.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Consumer-group settings that make groups form and fail over in seconds.
pub const FAST_GROUPS: [(&str, &str); 2] = [
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "300"),
];

/// Prints the example's title and what it shows.
pub fn header(title: &str, what: &str) {
    println!("=== {title} ===");
    println!("{what}\n");
}

/// Starts an in-process broker and creates `(topic, partitions)`.
pub fn start_broker(topics: &[(&str, i32)]) -> Result<EmbeddedBroker, BoxError> {
    let broker = EmbeddedBroker::start()?;
    for (topic, partitions) in topics {
        broker.create_topic(topic, *partitions, &[])?;
    }
    println!(
        "Broker at {} with topics {:?}\n",
        broker.bootstrap_servers(),
        topics
    );
    Ok(broker)
}

/// A producer that partitions keys like the Java client and kstreams (murmur2).
pub fn producer(bootstrap: &str) -> Result<ThreadedProducer<DefaultProducerContext>, BoxError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()?)
}

/// Sends one record (with an explicit timestamp when given) and waits until the broker
/// has it.
pub fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &str,
    value: &[u8],
    timestamp: Option<i64>,
) -> Result<(), BoxError> {
    let mut record = BaseRecord::to(topic).key(key).payload(value);
    if let Some(ts) = timestamp {
        record = record.timestamp(ts);
    }
    producer.send(record).map_err(|(e, _)| e)?;
    producer.flush(TIMEOUT)?;
    Ok(())
}

/// Sends a value as JSON.
pub fn send_json<T: serde::Serialize>(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &str,
    value: &T,
    timestamp: Option<i64>,
) -> Result<(), BoxError> {
    send(producer, topic, key, &serde_json::to_vec(value)?, timestamp)
}

/// A consumer in group `group`, subscribed to `topics`, reading from the beginning.
pub fn consumer(bootstrap: &str, group: &str, topics: &[&str]) -> Result<BaseConsumer, BoxError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest");
    for (k, v) in FAST_GROUPS {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create()?;
    consumer.subscribe(topics)?;
    Ok(consumer)
}

/// Reads `n` records, or fails after [`TIMEOUT`].
pub fn read_n(consumer: &BaseConsumer, n: usize) -> Result<Vec<OwnedMessage>, BoxError> {
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    while out.len() < n {
        if Instant::now() >= deadline {
            return Err(format!("timed out after reading {} of {n} records", out.len()).into());
        }
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            out.push(message?.detach());
        }
    }
    Ok(out)
}

/// Reads whatever arrives within `quiet`: to check that nothing more comes.
pub fn drain(consumer: &BaseConsumer, quiet: Duration) -> Result<Vec<OwnedMessage>, BoxError> {
    let until = Instant::now() + quiet;
    let mut out = Vec::new();
    while Instant::now() < until {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            out.push(message?.detach());
        }
    }
    Ok(out)
}

/// A streams configuration for a demo: fast groups, commits every 100 ms, state in
/// `state_dir`.
pub fn streams_config(bootstrap: &str, application_id: &str, state_dir: &Path) -> StreamsConfig {
    let mut config = StreamsConfig::new(application_id)
        .with_bootstrap_servers(bootstrap)
        .with_commit_interval(Duration::from_millis(100))
        .with_state_dir(state_dir);
    for (k, v) in FAST_GROUPS {
        config = config.with_client_override(k, v);
    }
    config
}

/// Starts an application and waits until it runs.
pub fn start_streams(topology: &Topology, config: StreamsConfig) -> Result<KafkaStreams, BoxError> {
    let mut streams = KafkaStreams::new(topology, config);
    streams.start()?;
    if !streams.wait_for_state(State::Running, TIMEOUT) {
        return Err(format!("application not running: {:?}", streams.error()).into());
    }
    Ok(streams)
}

/// Waits until `check` holds, polling every 50 ms, or fails after [`TIMEOUT`].
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) -> Result<(), BoxError> {
    let deadline = Instant::now() + TIMEOUT;
    while !check() {
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The key as UTF-8 (empty when there is none).
pub fn key_str(m: &OwnedMessage) -> String {
    String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned()
}

/// The value as UTF-8, `None` for a tombstone.
pub fn value_str(m: &OwnedMessage) -> Option<String> {
    m.payload().map(|p| String::from_utf8_lossy(p).into_owned())
}

/// The value as kstreams' `i64` (8 bytes big-endian), `None` for a tombstone.
pub fn value_i64(m: &OwnedMessage) -> Option<i64> {
    m.payload()
        .and_then(|p| p.try_into().ok())
        .map(i64::from_be_bytes)
}
