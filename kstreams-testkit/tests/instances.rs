//! Instances that come and go: three instances of one application run as child processes,
//! each with its own state directory, and are started, stopped with SIGTERM, SIGKILLed and
//! restarted on a random schedule while input flows. Then every instance but one is down,
//! and that survivor alone must finish every input record — the work of the peers that
//! crashed included — within a bound (session timeout + transaction timeout + restore).
//!
//! The topology has what makes takeover hard: a repartition topic, a changelogged running
//! sum per key, and a one-minute windowed count behind `suppress` (a changelogged buffer).
//! Under exactly-once, the `read_committed` output shows each running sum only growing and
//! ending at the true sum, and each closed window exactly once with its true count. Under
//! at-least-once nothing is lost. The same schedule also runs on librdkafka's mock cluster,
//! so a cause in our broker would show as a difference.
//!
//! The schedule comes from a seed, printed at the start; `KSTREAMS_CHAOS_SEED=<seed>` replays
//! it.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use kstreams::config::ProcessingGuarantee;
use kstreams::dsl::{StreamsBuilder, Suppressed, TimeWindows};
use kstreams::kafka::KafkaStreams;
use kstreams::topology::Topology;
use kstreams_testkit::{EmbeddedBroker, MockKafka};
use rdkafka::producer::{BaseRecord, Producer};

const CHILD: &str = "KSTREAMS_INSTANCE_CHILD";
const PARTITIONS: i32 = 3;
const KEYS: usize = 12;
const INSTANCES: usize = 3;
/// Event time of the first record (a minute boundary) and between two records.
const T0: i64 = 1_700_000_040_000;
const STEP_MS: i64 = 20;
const WINDOW_MS: i64 = 60_000;
/// How long the schedule runs while input flows.
const SCHEDULE: Duration = Duration::from_secs(20);
/// Input records per second.
const RATE: u64 = 600;

/// Running sums per key and one-minute counts per key, final results only.
fn topology() -> Topology {
    let builder = StreamsBuilder::new();
    let events = builder.stream::<String, i64>("events");
    events
        .group_by(|key, _| key.clone())
        .reduce(|a, b| a + b)
        .to_stream()
        .to("sums");
    events
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(
            WINDOW_MS as u64,
        )))
        .count()
        .suppress(Suppressed::until_window_closes())
        .to_stream()
        .map(|w, n| (format!("{}@{}", w.key, w.window.start), n.unwrap_or(-1)))
        .to("window-counts");
    builder.build().unwrap()
}

/// An instance of the application: `bootstrap|guarantee|state dir|app id`. Runs until
/// killed, or until SIGTERM makes it commit and stop.
#[test]
#[ignore = "run as a child process by the instance tests"]
fn instance_child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [bootstrap, guarantee, state_dir, app] = parts[..] else {
        panic!("bad child spec {spec}");
    };
    let guarantee = match guarantee {
        "eos" => ProcessingGuarantee::ExactlyOnce,
        _ => ProcessingGuarantee::AtLeastOnce,
    };
    let config = config(bootstrap, app, std::path::Path::new(state_dir))
        .with_processing_guarantee(guarantee);
    let mut streams = KafkaStreams::new(&topology(), config);
    streams.shutdown_on_signals().unwrap();
    streams.start().unwrap();
    streams.wait();
    assert!(streams.error().is_none(), "{:?}", streams.error());
}

fn seed() -> u64 {
    let seed = std::env::var("KSTREAMS_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("instance schedule seed {seed} (replay with KSTREAMS_CHAOS_SEED={seed})");
    seed
}

/// What happened to the instances, for the failure message.
struct Instances {
    env: Vec<Vec<(&'static str, String)>>,
    running: Vec<Option<Child>>,
    log: Vec<String>,
    started: Instant,
}

impl Instances {
    fn start(&mut self, i: usize) {
        if self.running[i].is_none() {
            self.note(format!("start {i}"));
            self.running[i] = Some(spawn_child("instance_child", &self.env[i]));
        }
    }

    fn stop(&mut self, i: usize, sig: i32) {
        if let Some(mut child) = self.running[i].take() {
            self.note(format!(
                "{} {i}",
                if sig == SIGKILL { "SIGKILL" } else { "SIGTERM" }
            ));
            signal(&child, sig);
            let status = child.wait().unwrap();
            if sig == SIGTERM {
                assert!(
                    status.success(),
                    "instance {i} did not stop cleanly: {status}\n{}",
                    self.log.join("\n")
                );
            }
        }
    }

    fn note(&mut self, what: String) {
        let line = format!("{:>6.1}s {what}", self.started.elapsed().as_secs_f64());
        eprintln!("{line}");
        self.log.push(line);
    }
}

/// A failed test kills the instances it leaves running.
impl Drop for Instances {
    fn drop(&mut self) {
        for child in self.running.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Input record `i`: key, amount, timestamp.
fn record(i: u64) -> (String, i64, i64) {
    (
        format!("k{:02}", i as usize % KEYS),
        (i % 7 + 1) as i64,
        T0 + i as i64 * STEP_MS,
    )
}

/// Runs the schedule; returns how many input records were produced (the closing records
/// excluded). Leaves one instance running, which has committed every input record.
fn run_schedule(bootstrap: &str, guarantee: &str, app: &str, seed: u64) -> (u64, Instances) {
    let states: Vec<tempfile::TempDir> = (0..INSTANCES)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let env = states
        .iter()
        .map(|s| {
            vec![(
                CHILD,
                format!("{bootstrap}|{guarantee}|{}|{app}", s.path().display()),
            )]
        })
        .collect();
    // The state directories must outlive the children: leak them into the process's end.
    std::mem::forget(states);
    let mut instances = Instances {
        env,
        running: (0..INSTANCES).map(|_| None).collect(),
        log: Vec::new(),
        started: Instant::now(),
    };
    let feeder = {
        let bootstrap = bootstrap.to_string();
        std::thread::spawn(move || {
            let producer = producer(&bootstrap);
            let started = Instant::now();
            let mut i = 0u64;
            while started.elapsed() < SCHEDULE {
                let due = started.elapsed().as_millis() as u64 * RATE / 1000;
                while i < due {
                    let (key, amount, ts) = record(i);
                    producer
                        .send(
                            BaseRecord::to("events")
                                .key(&key)
                                .payload(&amount.to_be_bytes()[..])
                                .timestamp(ts),
                        )
                        .unwrap();
                    i += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            producer.flush(Duration::from_secs(30)).unwrap();
            i
        })
    };
    let mut rng = Rng(seed);
    instances.start(0);
    while instances.started.elapsed() < SCHEDULE {
        std::thread::sleep(Duration::from_millis(rng.between(1500, 4000)));
        let i = rng.between(0, INSTANCES as u64) as usize;
        match (instances.running[i].is_some(), rng.between(0, 3)) {
            (false, _) => instances.start(i),
            (true, 0) => instances.stop(i, SIGTERM),
            (true, _) => instances.stop(i, SIGKILL),
        }
    }
    let produced = feeder.join().unwrap();
    // Close every window: a record an hour later on each partition (stream time is per
    // partition), under keys of their own so the sums of the input keys stay as they are.
    let producer = producer(bootstrap);
    for p in 0..PARTITIONS {
        producer
            .send(
                BaseRecord::to("events")
                    .partition(p)
                    .key(&format!("close-{p}"))
                    .payload(&0i64.to_be_bytes()[..])
                    .timestamp(T0 + 3_600_000),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    // The survivor: the lowest instance still running, or 0. Every other one is killed.
    let survivor = (0..INSTANCES)
        .find(|i| instances.running[*i].is_some())
        .unwrap_or(0);
    for i in 0..INSTANCES {
        if i != survivor {
            instances.stop(i, SIGKILL);
        }
    }
    instances.start(survivor);
    instances.note(format!("{survivor} is the survivor"));
    // Session timeout (6 s) + transaction timeout (10 s) + restore, with a margin.
    let bound = Duration::from_secs(90);
    let ends = end_offsets(bootstrap, "events", PARTITIONS);
    let deadline = Instant::now() + bound;
    loop {
        let done = committed(bootstrap, app, "events", PARTITIONS);
        if done == ends {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "the survivor did not finish within {bound:?}: committed {done:?}, end {ends:?}\nschedule (seed {seed}):\n{}",
                instances.log.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    instances.note("every input record committed".into());
    (produced, instances)
}

/// The true sums and closed windows' counts of the first `produced` records.
fn expected(produced: u64) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let mut sums = BTreeMap::new();
    let mut windows = BTreeMap::new();
    for i in 0..produced {
        let (key, amount, ts) = record(i);
        *sums.entry(key.clone()).or_insert(0) += amount;
        let start = ts - ts.rem_euclid(WINDOW_MS);
        *windows.entry(format!("{key}@{start}")).or_insert(0) += 1;
    }
    (sums, windows)
}

fn per_key(messages: &[rdkafka::message::OwnedMessage]) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for m in messages {
        out.entry(key_str(m))
            .or_default()
            .push(value_i64(m).unwrap());
    }
    out
}

/// Reads `topic` until every expected key has a value at least its expected value (the
/// last one under exactly-once; any, under at-least-once, where a record processed again
/// after a crash can count into a window the first attempt already emitted).
fn read_outputs(
    bootstrap: &str,
    topic: &str,
    read_committed: bool,
    expected: &BTreeMap<String, i64>,
    log: &[String],
) -> BTreeMap<String, Vec<i64>> {
    let consumer = partition_reader(bootstrap, topic, PARTITIONS, read_committed);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut read = Vec::new();
    let reached = |values: Option<&Vec<i64>>, expected: i64| match values {
        Some(values) if read_committed => values.last().is_some_and(|last| *last >= expected),
        Some(values) => values.iter().any(|v| *v >= expected),
        None => false,
    };
    loop {
        let seen = per_key(&read);
        if expected.iter().all(|(k, v)| reached(seen.get(k), *v)) {
            break;
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = expected
                .iter()
                .filter(|(k, v)| !reached(seen.get(*k), **v))
                .take(5)
                .map(|(k, v)| (k, v, seen.get(k)))
                .collect();
            panic!(
                "{topic} incomplete, e.g. (key, expected, read) {missing:?}\n{}",
                log.join("\n")
            );
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            read.push(m.unwrap().detach());
        }
    }
    read.extend(drain(&consumer, Duration::from_secs(2)));
    per_key(&read)
}

fn stop_all(mut instances: Instances) {
    for i in 0..INSTANCES {
        instances.stop(i, SIGTERM);
    }
}

#[test]
fn exactly_once_survivor_finishes_crashed_peers_work() {
    let broker = EmbeddedBroker::start().unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    for topic in ["events", "sums", "window-counts"] {
        broker.create_topic(topic, PARTITIONS, &[]).unwrap();
    }
    let seed = seed();
    let (produced, instances) = run_schedule(&bootstrap, "eos", "instances-eos", seed);
    let (sums, windows) = expected(produced);
    let log = instances.log.clone();
    let read = read_outputs(&bootstrap, "sums", true, &sums, &log);
    for (key, values) in read.iter().filter(|(k, _)| sums.contains_key(*k)) {
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "the sums of {key} do not only grow (a record counted twice, or an update repeated): {values:?}\n{}",
            log.join("\n")
        );
        assert_eq!(
            values.last(),
            sums.get(key),
            "final sum of {key}\n{}",
            log.join("\n")
        );
    }
    let read = read_outputs(&bootstrap, "window-counts", true, &windows, &log);
    let closed: HashMap<&String, &Vec<i64>> = read
        .iter()
        .filter(|(k, _)| windows.contains_key(*k))
        .collect();
    assert_eq!(closed.len(), windows.len());
    for (window, count) in &windows {
        assert_eq!(
            read[window],
            vec![*count],
            "window {window}: once, with its true count\n{}",
            log.join("\n")
        );
    }
    stop_all(instances);
}

/// Under at-least-once a record may count twice after a crash, never zero times.
fn check_nothing_lost(bootstrap: &str, produced: u64, instances: Instances) {
    let (sums, windows) = expected(produced);
    let log = instances.log.clone();
    let read = read_outputs(bootstrap, "sums", false, &sums, &log);
    for (key, sum) in &sums {
        assert!(
            read[key].iter().any(|s| s >= sum),
            "{key}: {:?} < {sum}",
            read[key]
        );
    }
    let read = read_outputs(bootstrap, "window-counts", false, &windows, &log);
    for (window, count) in &windows {
        assert!(
            read[window].iter().any(|c| c >= count),
            "window {window}: {:?} < {count}",
            read[window]
        );
    }
    stop_all(instances);
}

#[test]
fn at_least_once_survivor_loses_nothing() {
    let broker = EmbeddedBroker::start().unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    for topic in ["events", "sums", "window-counts"] {
        broker.create_topic(topic, PARTITIONS, &[]).unwrap();
    }
    let (produced, instances) = run_schedule(&bootstrap, "alos", "instances-alos", seed());
    check_nothing_lost(&bootstrap, produced, instances);
}

/// The same schedule on librdkafka's mock cluster (at-least-once: the mock does not isolate
/// aborted records, so exactly-once output cannot be checked there).
#[test]
fn at_least_once_survivor_loses_nothing_on_the_mock_cluster() {
    let mock = MockKafka::start(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    mock.create_topology_topics(&topology(), "instances-mock", PARTITIONS)
        .unwrap();
    let (produced, instances) = run_schedule(&bootstrap, "alos", "instances-mock", seed());
    check_nothing_lost(&bootstrap, produced, instances);
}
