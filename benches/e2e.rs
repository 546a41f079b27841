//! End-to-end throughput on a broker: one in-process broker (tansu on SQLite, with the
//! testkit's transaction support), one generated input topic, and in one run, one after the
//! other:
//!
//! * `raw pipe` — the ceiling: an rdkafka consumer → producer loop that copies each record;
//! * `kstreams stateless` — `stream(in).map_values(..).to(out)`, at-least-once;
//! * `kstreams stateless, exactly-once` — the same with transactions;
//! * `kstreams windowed count (memory)` / `(RocksDB)` — one-minute tumbling counts per key;
//! * `raw changelog read` vs `kstreams restore` — reading the RocksDB count's changelog with
//!   a plain consumer, against a new instance restoring its store from it.
//!
//! Every pipeline has its own consumer group and output topic and commits every 100 ms; a
//! run ends when its output topic holds every record. Prints records/s and the ratios the
//! targets are set on.
//!
//! ```text
//! cargo bench --bench e2e                 # 200,000 records
//! E2E_RECORDS=50000 cargo bench --bench e2e
//! ```

use std::time::{Duration, Instant};

use kstreams::config::{ProcessingGuarantee, StreamsConfig};
use kstreams::dsl::{Materialized, StreamsBuilder, TimeWindows};
use kstreams::kafka::{KafkaStreams, State};
use kstreams::state::StoreType;
use kstreams::topology::Topology;
use kstreams_testkit::EmbeddedBroker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

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
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = metadata.topics()[0].partitions().len() as i32;
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_or(0, |(lo, hi)| hi - lo)
        })
        .sum()
}

/// Waits until `topic` holds `expected` records (records, not transaction markers: a
/// read_committed count would be exact, watermarks include one marker per transaction and
/// partition, so exactly-once runs are checked against the consumed input instead).
fn await_records(bootstrap: &str, topic: &str, expected: i64, started: Instant) -> Duration {
    loop {
        if total_records(bootstrap, topic) >= expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
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

fn config(bootstrap: &str, app: &str, state: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new(app)
        .with_bootstrap_servers(bootstrap)
        .with_commit_interval(Duration::from_millis(100))
        .with_state_dir(state)
}

fn stateless(output: &str) -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("e2e-input")
        .map_values(|v| v.to_uppercase())
        .to(output);
    builder.build().expect("topology")
}

fn windowed(output: &str, store: &str, store_type: StoreType) -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("e2e-input")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            Duration::from_secs(3600),
        ))
        .count_with(Materialized::named(store).with_store_type(store_type))
        .to_stream()
        .to(output);
    builder.build().expect("topology")
}

/// Runs a topology until its output holds `records` records.
fn run(
    bootstrap: &str,
    topology: &Topology,
    config: StreamsConfig,
    output: &str,
    records: i64,
) -> Duration {
    let started = Instant::now();
    let exactly_once = config.processing_guarantee == ProcessingGuarantee::ExactlyOnce;
    let group = config.application_id.clone();
    let mut streams = KafkaStreams::new(topology, config);
    streams.start().expect("start");
    let elapsed = if exactly_once {
        // Watermarks count transaction markers too: wait for the input to be committed.
        await_committed(bootstrap, &group, records, started)
    } else {
        await_records(bootstrap, output, records, started)
    };
    streams.close();
    elapsed
}

/// Waits until a group has committed every input record.
fn await_committed(bootstrap: &str, group: &str, records: i64, started: Instant) -> Duration {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    loop {
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition("e2e-input", p);
        }
        let committed: i64 = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .map(|c| {
                c.elements()
                    .iter()
                    .map(|e| match e.offset() {
                        Offset::Offset(o) => o,
                        _ => 0,
                    })
                    .sum()
            })
            .unwrap_or(0);
        if committed >= records {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(900));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a topic from the beginning to its end with a plain consumer.
fn raw_read(bootstrap: &str, topic: &str) -> (i64, Duration) {
    let total = total_records(bootstrap, topic);
    let started = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "e2e-raw-reader")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut read = 0;
    while read < total {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m.expect("message");
            read += 1;
        }
    }
    (read, started.elapsed())
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is ignored.
    let records: i64 = std::env::var("E2E_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let broker = EmbeddedBroker::start().expect("broker");
    let bootstrap = broker.bootstrap_servers().to_string();
    let outputs = [
        "e2e-raw-output",
        "e2e-stateless-output",
        "e2e-eos-output",
        "e2e-window-memory-output",
        "e2e-window-rocksdb-output",
    ];
    for topic in std::iter::once("e2e-input").chain(outputs) {
        broker.create_topic(topic, PARTITIONS, &[]).expect("topic");
    }
    let input = producer(&bootstrap);
    let load = Instant::now();
    let base = 1_700_000_000_000i64;
    for i in 0..records {
        let key = format!("customer-{:05}", i % 10_000);
        let value = format!("{{\"order\":{i},\"amount\":{}}}", i % 997);
        send(
            &input,
            BaseRecord::to("e2e-input")
                .key(key.as_bytes())
                .payload(value.as_bytes())
                // 50 records per second of event time: windows open, fill and close.
                .timestamp(base + i * 20),
        );
    }
    input.flush(Duration::from_secs(120)).expect("flush");
    let loaded = load.elapsed();
    assert_eq!(total_records(&bootstrap, "e2e-input"), records);
    let state = tempfile::tempdir().expect("state dir");
    let dir = |name: &str| state.path().join(name);

    let raw = raw_pipe(&bootstrap, records);
    let alos = run(
        &bootstrap,
        &stateless("e2e-stateless-output"),
        config(&bootstrap, "e2e-stateless", &dir("stateless")),
        "e2e-stateless-output",
        records,
    );
    let eos = run(
        &bootstrap,
        &stateless("e2e-eos-output"),
        config(&bootstrap, "e2e-eos", &dir("eos"))
            .with_processing_guarantee(ProcessingGuarantee::ExactlyOnce),
        "e2e-eos-output",
        records,
    );
    let window_memory = run(
        &bootstrap,
        &windowed(
            "e2e-window-memory-output",
            "window-memory",
            StoreType::InMemory,
        ),
        config(&bootstrap, "e2e-window-memory", &dir("window-memory")),
        "e2e-window-memory-output",
        records,
    );
    let window_rocks = run(
        &bootstrap,
        &windowed(
            "e2e-window-rocksdb-output",
            "window-rocksdb",
            StoreType::RocksDb,
        ),
        config(&bootstrap, "e2e-window-rocksdb", &dir("window-rocksdb")),
        "e2e-window-rocksdb-output",
        records,
    );
    // Restore: the RocksDB count's changelog, read raw, then restored by a new instance
    // with an empty state directory.
    let changelog = "e2e-window-rocksdb-window-rocksdb-changelog";
    let (changelog_records, raw_read_time) = raw_read(&bootstrap, changelog);
    let restore_started = Instant::now();
    let mut restorer = KafkaStreams::new(
        &windowed(
            "e2e-window-rocksdb-output",
            "window-rocksdb",
            StoreType::RocksDb,
        ),
        config(&bootstrap, "e2e-window-rocksdb", &dir("restore")),
    );
    restorer.start().expect("start");
    assert!(restorer.wait_for_state(State::Running, Duration::from_secs(900)));
    let restore_wall = restore_started.elapsed();
    let restored = restorer.metrics().restored_records as i64;
    let restore_rate = restorer
        .metrics()
        .restore_rates
        .get("window-rocksdb")
        .copied()
        .unwrap_or(0.0);
    restorer.close();
    assert_eq!(
        restored, changelog_records,
        "the whole changelog was restored"
    );

    let rate = |d: Duration| records as f64 / d.as_secs_f64();
    let raw_read_rate = changelog_records as f64 / raw_read_time.as_secs_f64();
    println!("end-to-end on tansu (SQLite), {records} records, {PARTITIONS} partitions, commit every 100 ms");
    println!(
        "{:<40} {:>10} {:>14} {:>8}",
        "pipeline", "seconds", "records/s", "ratio"
    );
    let row = |name: &str, d: Duration, per_second: f64, ratio: Option<f64>| {
        println!(
            "{name:<40} {:>10.2} {per_second:>14.0} {:>8}",
            d.as_secs_f64(),
            ratio.map_or(String::new(), |r| format!("{r:.2}"))
        );
    };
    row("produce input", loaded, rate(loaded), None);
    row("raw pipe (ceiling)", raw, rate(raw), Some(1.0));
    row(
        "kstreams stateless, at-least-once",
        alos,
        rate(alos),
        Some(rate(alos) / rate(raw)),
    );
    row(
        "kstreams stateless, exactly-once",
        eos,
        rate(eos),
        Some(rate(eos) / rate(alos)),
    );
    row(
        "kstreams windowed count, in memory",
        window_memory,
        rate(window_memory),
        Some(rate(window_memory) / rate(raw)),
    );
    row(
        "kstreams windowed count, RocksDB",
        window_rocks,
        rate(window_rocks),
        Some(rate(window_rocks) / rate(raw)),
    );
    row(
        "raw changelog read",
        raw_read_time,
        raw_read_rate,
        Some(1.0),
    );
    row(
        "kstreams restore (store, of the read)",
        restore_wall,
        restore_rate,
        Some(restore_rate / raw_read_rate),
    );
    println!();
    println!("ratios: stateless/raw {:.2} (target >= 0.80), exactly-once/at-least-once {:.2} (>= 0.80), windowed RocksDB/raw {:.2} (>= 0.50), restore/raw read {:.2} (>= 0.50)",
        rate(alos) / rate(raw),
        rate(eos) / rate(alos),
        rate(window_rocks) / rate(raw),
        restore_rate / raw_read_rate);
    println!(
        "changelog records: {changelog_records}; restore wall time incl. group join: {:.2}s",
        restore_wall.as_secs_f64()
    );
}
