//! Durable state on a real broker: RocksDB stores restored from their changelogs, checkpoints
//! that limit a restart to the changelog tail, and interactive queries (reads, key routing,
//! change feeds) that agree with the output topics.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use kstreams::dsl::{Materialized, StreamsBuilder, TimeWindows};
use kstreams::kafka::{KafkaStreams, State};
use kstreams::state::StoreType;
use kstreams::topology::Topology;
use kstreams_testkit::EmbeddedBroker;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::Message;

const STORE: &str = "word-counts-store";

fn word_count() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<Option<String>, String>("lines")
        .flat_map_values(|line| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone())
        .count_with(Materialized::named(STORE))
        .to_stream()
        .to("counts");
    builder.build().unwrap()
}

fn lines(bootstrap: &str, lines: &[&str]) {
    let records: Vec<(String, &str)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("line-{i}"), *l))
        .collect();
    let refs: Vec<(&str, &str)> = records.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    produce(bootstrap, "lines", &refs);
}

fn expected_counts(all: &[&str]) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    for word in all.iter().flat_map(|l| l.split_whitespace()) {
        *counts.entry(word.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

fn start(
    broker: &EmbeddedBroker,
    app: &str,
    state: &std::path::Path,
    server: Option<&str>,
) -> KafkaStreams {
    let mut config =
        config(broker.bootstrap_servers(), app, state).with_default_store_type(StoreType::RocksDb);
    config.application_server = server.map(str::to_string);
    let mut streams = KafkaStreams::new(&word_count(), config);
    streams.start().unwrap();
    assert!(
        streams.wait_for_state(State::Running, Duration::from_secs(60)),
        "{:?}",
        streams.error()
    );
    streams
}

/// Waits until the store of `streams` holds `expected` exactly.
fn await_store(streams: &KafkaStreams, expected: &HashMap<String, i64>) -> Vec<(String, i64)> {
    let store = streams.store::<String, i64>(STORE).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let all = store.all().unwrap();
        let map: HashMap<String, i64> = all.iter().cloned().collect();
        if &map == expected {
            return all;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "store holds {map:?}, expected {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn broker() -> EmbeddedBroker {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("lines", 2, &[]).unwrap();
    broker.create_topic("counts", 2, &[]).unwrap();
    broker
}

#[test]
fn wiping_the_state_directory_restores_the_same_state_from_the_changelog() {
    let broker = broker();
    let state = tempfile::tempdir().unwrap();
    let text = ["the quick brown fox", "jumps over the lazy dog", "the end"];
    lines(broker.bootstrap_servers(), &text);
    let mut first = start(&broker, "wipe-app", state.path(), None);
    let before = await_store(&first, &expected_counts(&text));
    first.close();
    assert!(state.path().join("wipe-app").exists());

    std::fs::remove_dir_all(state.path()).unwrap();
    let restarted = start(&broker, "wipe-app", state.path(), None);
    let after = restarted
        .store::<String, i64>(STORE)
        .unwrap()
        .all()
        .unwrap();
    assert_eq!(after, before, "state restored from the changelog alone");
    assert!(restarted.metrics().restored_records > 0);
}

#[test]
fn a_restart_with_a_checkpoint_replays_only_the_changelog_tail() {
    let broker = broker();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let changelog = format!("tail-app-{STORE}-changelog");
    let first = ["alpha beta gamma", "alpha beta", "alpha"];
    lines(broker.bootstrap_servers(), &first);
    let mut a = start(&broker, "tail-app", dir_a.path(), None);
    await_store(&a, &expected_counts(&first));
    a.close();
    let after_a: i64 = end_offsets(broker.bootstrap_servers(), &changelog, 2)
        .iter()
        .sum();

    // Another instance, with its own (empty) state directory, takes the next input: the
    // changelog grows while the first instance's checkpoint stays where it was.
    let second = ["delta epsilon", "alpha zeta eta theta"];
    lines(broker.bootstrap_servers(), &second);
    let mut b = start(&broker, "tail-app", dir_b.path(), None);
    let all: Vec<&str> = first.iter().chain(second.iter()).copied().collect();
    await_store(&b, &expected_counts(&all));
    assert_eq!(
        b.metrics().restored_records as i64,
        after_a,
        "an empty state directory restores the whole changelog"
    );
    b.close();
    let after_b: i64 = end_offsets(broker.bootstrap_servers(), &changelog, 2)
        .iter()
        .sum();
    assert!(after_b > after_a);

    let a = start(&broker, "tail-app", dir_a.path(), None);
    assert_eq!(
        a.metrics().restored_records as i64,
        after_b - after_a,
        "only the records written after the checkpoint are restored"
    );
    await_store(&a, &expected_counts(&all));
}

#[test]
fn interactive_queries_agree_with_the_output_topic_and_route_keys() {
    let broker = broker();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let text = [
        "one two three four five six seven eight nine ten",
        "two three four five six seven",
        "three four five",
        "four",
    ];
    let a = start(&broker, "iq-app", dir_a.path(), Some("127.0.0.1:7001"));
    let b = start(&broker, "iq-app", dir_b.path(), Some("127.0.0.1:7002"));
    // Both instances run until each owns one partition.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while a.local_tasks().len() != 2 || b.local_tasks().len() != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?} / {:?}",
            a.local_tasks(),
            b.local_tasks()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(a.wait_for_state(State::Running, Duration::from_secs(30)));
    assert!(b.wait_for_state(State::Running, Duration::from_secs(30)));
    lines(broker.bootstrap_servers(), &text);
    let expected = expected_counts(&text);

    // The output topic's latest record per key, and the partition it went to.
    let consumer = reader(broker.bootstrap_servers(), "iq-reader", "counts");
    let mut latest: HashMap<String, (i64, i32)> = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while expected
        .iter()
        .any(|(w, c)| latest.get(w).map(|l| l.0) != Some(*c))
    {
        assert!(std::time::Instant::now() < deadline, "{latest:?}");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap().detach();
            latest.insert(key_str(&m), (value_i64(&m).unwrap(), m.partition()));
        }
    }
    let (store_a, store_b) = (
        a.store::<String, i64>(STORE).unwrap(),
        b.store::<String, i64>(STORE).unwrap(),
    );
    for (word, (count, partition)) in &latest {
        let local = [store_a.get(word).unwrap(), store_b.get(word).unwrap()];
        assert_eq!(
            local.iter().flatten().collect::<Vec<_>>(),
            vec![count],
            "{word}: exactly one instance holds the latest count"
        );
        let meta = a.query_metadata_for_key(STORE, word).unwrap();
        assert_eq!(meta.partition, *partition, "{word}: the key's partition");
        let owner = if local[0].is_some() {
            "127.0.0.1:7001"
        } else {
            "127.0.0.1:7002"
        };
        assert_eq!(
            meta.host.as_deref(),
            Some(owner),
            "{word}: routed to its host"
        );
        assert_eq!(meta.local, local[0].is_some());
    }
    let mut everything = store_a.all().unwrap();
    everything.extend(store_b.all().unwrap());
    let from_stores: HashMap<String, i64> = everything.into_iter().collect();
    let from_topic: HashMap<String, i64> = latest.into_iter().map(|(w, (c, _))| (w, c)).collect();
    assert_eq!(from_stores, from_topic);
}

#[test]
fn a_tables_changes_arrive_as_an_async_stream() {
    let broker = broker();
    let state = tempfile::tempdir().unwrap();
    let streams = start(&broker, "feed-app", state.path(), None);
    let mut changes = streams.subscribe::<String, i64>(STORE).unwrap();
    lines(
        broker.bootstrap_servers(),
        &["apple", "apple banana", "apple"],
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        futures::executor::block_on(async {
            while let Some(change) = changes.next().await {
                if tx.send(change.unwrap()).is_err() {
                    break;
                }
            }
        })
    });
    let mut apples = Vec::new();
    let mut bananas = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while apples.len() < 3 || bananas.is_empty() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let change = rx.recv_timeout(left).expect("changes in time");
        assert!(change.timestamp.is_some());
        match change.key.as_str() {
            "apple" => apples.push(change.value),
            "banana" => bananas.push(change.value),
            other => panic!("unexpected key {other}"),
        }
    }
    assert_eq!(apples, vec![Some(1), Some(2), Some(3)]);
    assert_eq!(bananas, vec![Some(1)]);
    // Without an application_server the instance still knows the keys it holds itself.
    let meta = streams
        .query_metadata_for_key(STORE, &"apple".to_string())
        .unwrap();
    assert!(meta.local, "{meta:?}");
    assert_eq!(meta.host, None);

    // Closing the application ends the stream (the feeding thread sees `None` and exits).
    let mut streams = streams;
    let mut second = streams.subscribe::<String, i64>(STORE).unwrap();
    streams.close();
    assert!(futures::executor::block_on(second.next()).is_none());
}

#[test]
fn a_windowed_count_on_rocksdb_is_exact_and_queryable() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("clicks", 2, &[]).unwrap();
    broker.create_topic("clicks-per-minute", 2, &[]).unwrap();
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("clicks")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            Duration::from_secs(3600),
        ))
        .count_with(Materialized::named("clicks-windows").with_store_type(StoreType::RocksDb))
        .to_stream()
        .map(|w, c| (format!("{}@{}", w.key, w.window.start), c))
        .to("clicks-per-minute");
    let topology = builder.build().unwrap();
    let producer = producer(broker.bootstrap_servers());
    let base = 1_700_000_000_000i64 / 60_000 * 60_000;
    // user → click times (ms after base)
    let clicks = [
        ("ann", 0),
        ("ann", 10_000),
        ("bob", 20_000),
        ("ann", 61_000),
        ("bob", 59_999),
        ("ann", 125_000),
    ];
    for (user, at) in clicks {
        producer
            .send(
                BaseRecord::to("clicks")
                    .key(user)
                    .payload("click")
                    .timestamp(base + at),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut streams = KafkaStreams::new(
        &topology,
        config(broker.bootstrap_servers(), "windowed-app", state.path()),
    );
    streams.start().unwrap();
    let consumer = reader(
        broker.bootstrap_servers(),
        "windowed-reader",
        "clicks-per-minute",
    );
    let per_key = |out: &[rdkafka::message::OwnedMessage]| {
        let mut per_key: HashMap<String, Vec<i64>> = HashMap::new();
        for m in out {
            per_key
                .entry(key_str(m))
                .or_default()
                .push(value_i64(m).unwrap());
        }
        per_key
    };
    let finals: HashMap<String, i64> = [
        (format!("ann@{base}"), 2),
        (format!("bob@{base}"), 2),
        (format!("ann@{}", base + 60_000), 1),
        (format!("ann@{}", base + 120_000), 1),
    ]
    .into_iter()
    .collect();
    let last = |per_key: HashMap<String, Vec<i64>>| -> HashMap<String, i64> {
        per_key
            .into_iter()
            .map(|(k, counts)| (k, *counts.last().unwrap()))
            .collect()
    };
    let mut out = read_until(&consumer, Duration::from_secs(60), |m| {
        last(per_key(m)) == finals
    });
    out.extend(drain(&consumer, Duration::from_secs(1)));
    // The write cache forwards one update per window per commit: each window's counts are
    // its counts record by record (1, 2, ...) with those in between commits left out.
    for (window, counts) in per_key(&out) {
        assert_eq!(
            counts.last(),
            Some(&finals[&window]),
            "{window}: {counts:?}"
        );
        assert!(
            counts.windows(2).all(|pair| pair[0] < pair[1]) && counts[0] >= 1,
            "{window}: each count once, growing: {counts:?}"
        );
    }
    assert_eq!(last(per_key(&out)), finals, "nothing else");
    let windows = streams
        .window_store::<String, i64>("clicks-windows")
        .unwrap();
    assert_eq!(
        windows
            .fetch(&"ann".to_string(), base, base + 600_000)
            .unwrap(),
        vec![(base, 2), (base + 60_000, 1), (base + 120_000, 1)]
    );
    assert_eq!(windows.fetch_all(base, base).unwrap().len(), 2);
    streams.close();
    // The payloads were strings: the counts were serialized by the windowed count itself.
    assert!(out.iter().all(|m| m.payload().is_some()));
}

/// A window buffered by `suppress` before a restart is emitted, once it closes, by an
/// instance that restored the buffer from its changelog (the suppression buffer is read
/// again only after the restore, never from what `init` saw).
#[test]
fn suppressed_windows_buffered_before_a_restart_are_emitted_after_the_restore() {
    use kstreams::dsl::Suppressed;
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("visits", 1, &[]).unwrap();
    broker.create_topic("visits-final", 1, &[]).unwrap();
    let topology = || {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("visits")
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
            .count_with(Materialized::named("visit-windows").with_store_type(StoreType::RocksDb))
            .suppress(Suppressed::until_window_closes())
            .to_stream()
            .map(|w, count| (format!("{}@{}", w.key, w.window.start), count))
            .to("visits-final");
        builder.build().unwrap()
    };
    let base = 1_700_000_000_000i64 / 60_000 * 60_000;
    let visit = |producer: &rdkafka::producer::ThreadedProducer<_>, user: &str, at: i64| {
        producer
            .send(
                BaseRecord::to("visits")
                    .key(user)
                    .payload("visit")
                    .timestamp(base + at),
            )
            .unwrap();
    };
    let producer = producer(broker.bootstrap_servers());
    for (user, at) in [("ann", 0), ("ann", 10_000), ("bob", 20_000)] {
        visit(&producer, user, at);
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    // The first instance buffers the open window and stops.
    let first_dir = tempfile::tempdir().unwrap();
    let mut first = KafkaStreams::new(
        &topology(),
        config(broker.bootstrap_servers(), "suppress-app", first_dir.path()),
    );
    first.start().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while committed(broker.bootstrap_servers(), "suppress-app", "visits", 1) != [3] {
        assert!(std::time::Instant::now() < deadline, "never committed");
        std::thread::sleep(Duration::from_millis(100));
    }
    first.close();

    // A new instance with an empty state directory restores the buffer; a later visit
    // closes the window.
    let second_dir = tempfile::tempdir().unwrap();
    let mut second = KafkaStreams::new(
        &topology(),
        config(
            broker.bootstrap_servers(),
            "suppress-app",
            second_dir.path(),
        ),
    );
    second.start().unwrap();
    assert!(second.wait_for_state(State::Running, Duration::from_secs(60)));
    assert!(
        second.metrics().restored_records > 0,
        "the buffer was restored"
    );
    visit(&producer, "carol", 61_000);
    producer.flush(Duration::from_secs(10)).unwrap();

    let consumer = reader(
        broker.bootstrap_servers(),
        "suppress-reader",
        "visits-final",
    );
    let out = read_until(&consumer, Duration::from_secs(60), |m| m.len() >= 2);
    let finals: HashMap<String, i64> = out
        .iter()
        .map(|m| (key_str(m), value_i64(m).unwrap()))
        .collect();
    let expected: HashMap<String, i64> = [(format!("ann@{base}"), 2), (format!("bob@{base}"), 1)]
        .into_iter()
        .collect();
    assert_eq!(finals, expected, "the restored window's final counts");
    assert!(
        drain(&consumer, Duration::from_secs(1)).is_empty(),
        "carol's window is still open"
    );
    second.close();
}
