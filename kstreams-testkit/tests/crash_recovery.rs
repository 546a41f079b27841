//! Crash recovery on a real broker: a child process running the application is killed with
//! SIGKILL at random points while input flows, and restarted.
//!
//! * Exactly-once: after the last restart the output topic, read with `read_committed`, holds
//!   per key exactly the updates a run without crashes produces (the same topology on the
//!   `TestDriver`): no update lost, none repeated, even though state is rebuilt from
//!   changelogs and repartition topics are re-read after every crash.
//! * At-least-once: every input record reaches the output at least once.
//! * A SIGTERM makes the application commit and stop cleanly.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::*;
use kstreams::config::{ProcessingGuarantee, StreamsConfig};
use kstreams::dsl::StreamsBuilder;
use kstreams::kafka::KafkaStreams;
use kstreams::testing::TestDriver;
use kstreams::topology::Topology;
use kstreams_testkit::EmbeddedBroker;
use rdkafka::producer::{BaseRecord, Producer};

const CHILD: &str = "KSTREAMS_CRASH_CHILD";
const PARTITIONS: i32 = 3;
const KEYS: usize = 12;

/// Running sums per key, through a repartition topic and a changelogged store.
fn sums() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("amounts")
        .group_by(|key, _| key.clone())
        .reduce(|a, b| a + b)
        .to_stream()
        .to("sums");
    builder.build().unwrap()
}

/// Every amount times ten, stateless.
fn tens() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("amounts")
        .map_values(|v| v * 10)
        .to("tens");
    builder.build().unwrap()
}

fn topology(name: &str) -> Topology {
    match name {
        "sums" => sums(),
        "tens" => tens(),
        other => panic!("unknown topology {other}"),
    }
}

/// The application of the child process: `bootstrap|guarantee|state dir|app id|topology`.
/// Runs until killed, or until SIGTERM makes it commit and stop.
#[test]
#[ignore = "run as a child process by the crash tests"]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    // RUST_LOG=kstreams=debug shows what the application does between kills.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let parts: Vec<&str> = spec.split('|').collect();
    let [bootstrap, guarantee, state_dir, app, name] = parts[..] else {
        panic!("bad child spec {spec}");
    };
    let guarantee = match guarantee {
        "eos" => ProcessingGuarantee::ExactlyOnce,
        _ => ProcessingGuarantee::AtLeastOnce,
    };
    let config = config(bootstrap, app, std::path::Path::new(state_dir))
        .with_processing_guarantee(guarantee);
    let mut streams = KafkaStreams::new(&topology(name), config);
    // Signals first: a SIGTERM that arrives while `start` creates topics and joins the
    // group still shuts down cleanly instead of killing the process.
    streams.shutdown_on_signals().unwrap();
    streams.start().unwrap();
    streams.wait();
    assert!(streams.error().is_none(), "{:?}", streams.error());
}

fn input(records: usize) -> Vec<(String, i64)> {
    (0..records)
        .map(|i| (format!("k{:02}", i % KEYS), (i % 7 + 1) as i64))
        .collect()
}

/// Runs the application in a child process that is killed `kills` times while `records`
/// records are produced, then stopped with SIGTERM once it has committed everything.
///
/// Input flows from a thread of its own at a steady rate. Each child runs until it has
/// committed something, then is killed at a random moment 0.5-3 s later; the next one
/// starts after the group's session timeout, so the broker has dropped the dead member (a
/// crashed process restarting, not two processes overlapping).
fn run_with_crashes(
    broker: &EmbeddedBroker,
    guarantee: &str,
    app: &str,
    name: &str,
    records: &[(String, i64)],
    kills: usize,
    seed: u64,
) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let bootstrap = broker.bootstrap_servers().to_string();
    let state = tempfile::tempdir().unwrap();
    let spec = format!(
        "{bootstrap}|{guarantee}|{}|{app}|{name}",
        state.path().display()
    );
    let env = [(CHILD, spec)];
    let mut rng = Rng(seed);
    let feeder = {
        let (bootstrap, records) = (bootstrap.clone(), records.to_vec());
        let chunks = (kills * 6 + 4).max(8);
        std::thread::spawn(move || {
            let producer = producer(&bootstrap);
            for chunk in records.chunks(records.len().div_ceil(chunks)) {
                for (k, v) in chunk {
                    producer
                        .send(
                            BaseRecord::to("amounts")
                                .key(k.as_str())
                                .payload(&v.to_be_bytes()[..]),
                        )
                        .unwrap();
                }
                producer.flush(Duration::from_secs(30)).unwrap();
                std::thread::sleep(Duration::from_millis(1000));
            }
        })
    };
    let progress = || -> i64 {
        committed(&bootstrap, app, "amounts", PARTITIONS)
            .iter()
            .map(|o| (*o).max(0))
            .sum()
    };
    let mut child = spawn_child("crash_child", &env);
    for _ in 0..kills {
        let before = progress();
        let deadline = Instant::now() + Duration::from_secs(60);
        while progress() <= before {
            assert!(Instant::now() < deadline, "no progress after a restart");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(rng.between(500, 3000)));
        signal(&child, SIGKILL);
        child.wait().unwrap();
        // FAST_GROUPS' session timeout, and a margin.
        std::thread::sleep(Duration::from_millis(7000));
        child = spawn_child("crash_child", &env);
    }
    feeder.join().unwrap();
    // Wait until the application has committed every input record, then stop it cleanly.
    let ends = end_offsets(&bootstrap, "amounts", PARTITIONS);
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed(&bootstrap, app, "amounts", PARTITIONS) != ends {
        assert!(
            Instant::now() < deadline,
            "committed {:?}, end {ends:?}",
            committed(&bootstrap, app, "amounts", PARTITIONS)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    signal(&child, SIGTERM);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the application did not stop cleanly: {status}"
    );
}

/// Output values per key, in offset order.
fn per_key(messages: &[rdkafka::message::OwnedMessage]) -> BTreeMap<String, Vec<Option<i64>>> {
    let mut out: BTreeMap<String, Vec<Option<i64>>> = BTreeMap::new();
    for m in messages {
        out.entry(key_str(m)).or_default().push(value_i64(m));
    }
    out
}

/// Whether `part` is `whole` with some elements left out, in order.
fn is_subsequence(part: &[Option<i64>], whole: &[Option<i64>]) -> bool {
    let mut whole = whole.iter();
    part.iter().all(|p| whole.any(|w| w == p))
}

/// With the write cache on (the default), the sums forward one update per key per commit, so
/// the output is the no-crash output with the updates in between commits left out: per key,
/// a subsequence of it (each sum once: the sums only grow) that ends at the same final sum.
/// A record processed twice would show as a sum the no-crash run never had, one lost as a
/// wrong final sum, an output written twice as a repeated sum.
#[test]
fn exactly_once_output_matches_the_no_crash_output_after_random_kills() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("amounts", PARTITIONS, &[]).unwrap();
    broker.create_topic("sums", PARTITIONS, &[]).unwrap();
    let records = input(1800);
    run_with_crashes(
        &broker,
        "eos",
        "crash-eos",
        "sums",
        &records,
        3,
        0x5eed_1234,
    );

    // The run without crashes: the same topology and input on the test driver.
    let driver = TestDriver::new(&sums(), StreamsConfig::new("crash-eos")).unwrap();
    let input_topic = driver.create_input_topic::<String, i64>("amounts");
    for (k, v) in &records {
        input_topic.pipe_input(k.clone(), *v);
    }
    let expected: BTreeMap<String, Vec<Option<i64>>> = {
        let mut out: BTreeMap<String, Vec<Option<i64>>> = BTreeMap::new();
        for (k, v) in driver
            .create_output_topic::<String, Option<i64>>("sums")
            .read_key_values_to_list()
        {
            out.entry(k).or_default().push(v);
        }
        out
    };
    let total: usize = expected.values().map(Vec::len).sum();
    assert_eq!(total, records.len());

    let finals: BTreeMap<String, Option<i64>> = expected
        .iter()
        .map(|(k, sums)| (k.clone(), *sums.last().unwrap()))
        .collect();
    let consumer = partition_reader(broker.bootstrap_servers(), "sums", PARTITIONS, true);
    let mut read = read_until(&consumer, Duration::from_secs(60), |m| {
        let last: BTreeMap<String, Option<i64>> = per_key(m)
            .into_iter()
            .map(|(k, sums)| (k, *sums.last().unwrap()))
            .collect();
        last == finals
    });
    read.extend(drain(&consumer, Duration::from_secs(2)));
    let read = per_key(&read);
    assert_eq!(
        read.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (key, sums) in &read {
        assert_eq!(sums.last(), expected[key].last(), "final sum of {key}");
        assert!(
            is_subsequence(sums, &expected[key]),
            "read_committed sums of {key} are not the no-crash sums with some left out:\n{sums:?}\nvs\n{:?}",
            expected[key]
        );
    }
}

#[test]
fn at_least_once_loses_nothing_after_random_kills() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("amounts", PARTITIONS, &[]).unwrap();
    broker.create_topic("tens", PARTITIONS, &[]).unwrap();
    // Unique values, so every input record can be found in the output.
    let records: Vec<(String, i64)> = (0..1500)
        .map(|i| (format!("k{:02}", i % KEYS), i as i64))
        .collect();
    run_with_crashes(&broker, "alos", "crash-alos", "tens", &records, 3, 0xa105);

    let consumer = partition_reader(broker.bootstrap_servers(), "tens", PARTITIONS, false);
    let mut read = read_until(&consumer, Duration::from_secs(60), |m| {
        m.len() >= records.len()
    });
    read.extend(drain(&consumer, Duration::from_secs(2)));
    let seen: HashMap<(String, i64), usize> = read.iter().fold(HashMap::new(), |mut acc, m| {
        *acc.entry((key_str(m), value_i64(m).unwrap())).or_default() += 1;
        acc
    });
    let missing: Vec<&(String, i64)> = records
        .iter()
        .filter(|(k, v)| !seen.contains_key(&(k.clone(), v * 10)))
        .collect();
    assert!(
        missing.is_empty(),
        "lost {} records: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

#[test]
fn sigterm_commits_and_stops_cleanly() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("amounts", PARTITIONS, &[]).unwrap();
    broker.create_topic("tens", PARTITIONS, &[]).unwrap();
    let records = input(300);
    // No kills: the child is only stopped with SIGTERM after committing, which
    // run_with_crashes checks (exit status 0, offsets committed to the end).
    run_with_crashes(&broker, "alos", "sigterm-app", "tens", &records, 0, 1);
    let consumer = partition_reader(broker.bootstrap_servers(), "tens", PARTITIONS, false);
    let read = read_until(&consumer, Duration::from_secs(30), |m| {
        m.len() >= records.len()
    });
    assert_eq!(read.len(), records.len());
    // A clean stop leaves nothing to repeat: a new instance processes nothing again.
    let state = tempfile::tempdir().unwrap();
    let mut again = KafkaStreams::new(
        &tens(),
        config(broker.bootstrap_servers(), "sigterm-app", state.path()),
    );
    again.start().unwrap();
    assert!(again.wait_for_state(kstreams::kafka::State::Running, Duration::from_secs(60)));
    assert!(drain(&consumer, Duration::from_secs(2)).is_empty());
    again.close();
}
