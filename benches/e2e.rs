//! End-to-end throughput on a broker: one in-process tansu broker, one generated input topic,
//! and in one run, one after the other:
//!
//! * `raw pipe` — the ceiling: an rdkafka consumer → producer loop that copies each record;
//! * `kstreams stateless` — `stream(in).map_values(..).to(out)` on `KafkaStreams`
//!   (at-least-once, commit interval 100 ms);
//!
//! each reading the whole input with its own consumer group and writing its own output
//! topic. A run ends when the output topic holds every record. Prints a table of records/s
//! and the ratio to the raw pipe.
//!
//! ```text
//! cargo bench --bench e2e                 # 200,000 records
//! E2E_RECORDS=50000 cargo bench --bench e2e
//! ```

use std::time::{Duration, Instant};

use kstreams::config::StreamsConfig;
use kstreams::dsl::StreamsBuilder;
use kstreams::kafka::KafkaStreams;
use kstreams_testkit::EmbeddedBroker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message};

const PARTITIONS: i32 = 4;

fn producer(bootstrap: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer")
}

fn send(producer: &ThreadedProducer<DefaultProducerContext>, record: BaseRecord<'_, [u8], [u8]>) {
    let mut record = record;
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                std::thread::sleep(Duration::from_millis(2));
                record = r;
            }
            Err((e, _)) => panic!("produce failed: {e}"),
        }
    }
}

fn total_records(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    (0..PARTITIONS)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_or(0, |(lo, hi)| hi - lo)
        })
        .sum()
}

fn await_records(bootstrap: &str, topic: &str, expected: i64, started: Instant) -> Duration {
    loop {
        if total_records(bootstrap, topic) >= expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{topic} never reached {expected} records"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn raw_pipe(bootstrap: &str, records: i64) -> Duration {
    let started = Instant::now();
    let out = producer(bootstrap);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "e2e-raw-pipe")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .create()
        .expect("consumer");
    consumer.subscribe(&["e2e-input"]).expect("subscribe");
    let mut copied = 0;
    while copied < records {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("message");
            let mut record = BaseRecord::to("e2e-raw-output")
                .timestamp(message.timestamp().to_millis().unwrap_or(0));
            if let Some(k) = message.key() {
                record = record.key(k);
            }
            if let Some(v) = message.payload() {
                record = record.payload(v);
            }
            send(&out, record);
            copied += 1;
        }
    }
    out.flush(Duration::from_secs(60)).expect("flush");
    await_records(bootstrap, "e2e-raw-output", records, started)
}

fn kstreams_stateless(bootstrap: &str, records: i64) -> Duration {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("e2e-input")
        .map_values(|v| v.to_uppercase())
        .to("e2e-kstreams-output");
    let topology = builder.build().expect("topology");
    let mut config = StreamsConfig::new("e2e-kstreams");
    config.bootstrap_servers = bootstrap.to_string();
    config.commit_interval = Duration::from_millis(100);
    let started = Instant::now();
    let mut streams = KafkaStreams::new(&topology, config);
    streams.start().expect("start");
    let elapsed = await_records(bootstrap, "e2e-kstreams-output", records, started);
    streams.close();
    elapsed
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is ignored.
    let records: i64 = std::env::var("E2E_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let broker = EmbeddedBroker::start().expect("broker");
    let bootstrap = broker.bootstrap_servers().to_string();
    for topic in ["e2e-input", "e2e-raw-output", "e2e-kstreams-output"] {
        broker.create_topic(topic, PARTITIONS, &[]).expect("topic");
    }
    let input = producer(&bootstrap);
    let load = Instant::now();
    for i in 0..records {
        let key = format!("customer-{:05}", i % 10_000);
        let value = format!("{{\"order\":{i},\"amount\":{}}}", i % 997);
        send(
            &input,
            BaseRecord::to("e2e-input")
                .key(key.as_bytes())
                .payload(value.as_bytes()),
        );
    }
    input.flush(Duration::from_secs(120)).expect("flush");
    let loaded = load.elapsed();
    assert_eq!(total_records(&bootstrap, "e2e-input"), records);

    let raw = raw_pipe(&bootstrap, records);
    let stateless = kstreams_stateless(&bootstrap, records);
    let rate = |d: Duration| records as f64 / d.as_secs_f64();
    println!("end-to-end on tansu (SQLite), {records} records, {PARTITIONS} partitions");
    println!(
        "{:<24} {:>10} {:>14} {:>8}",
        "pipeline", "seconds", "records/s", "ratio"
    );
    println!(
        "{:<24} {:>10.2} {:>14.0} {:>8}",
        "produce input",
        loaded.as_secs_f64(),
        rate(loaded),
        ""
    );
    println!(
        "{:<24} {:>10.2} {:>14.0} {:>8.2}",
        "raw pipe (ceiling)",
        raw.as_secs_f64(),
        rate(raw),
        1.0
    );
    println!(
        "{:<24} {:>10.2} {:>14.0} {:>8.2}",
        "kstreams stateless",
        stateless.as_secs_f64(),
        rate(stateless),
        rate(stateless) / rate(raw)
    );
}
