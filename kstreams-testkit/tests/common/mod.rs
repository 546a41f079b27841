//! Helpers shared by the broker tests: clients with fast group settings, producing, reading
//! until a condition holds, and child processes that run an application.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use kstreams::config::StreamsConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// Client settings that make groups form and fail over quickly in tests.
pub const FAST_GROUPS: [(&str, &str); 2] = [
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "300"),
];

/// A configuration for tests: fast groups, a short commit interval, its own state directory.
pub fn config(bootstrap: &str, application_id: &str, state_dir: &Path) -> StreamsConfig {
    let mut config = StreamsConfig::new(application_id)
        .with_bootstrap_servers(bootstrap)
        .with_commit_interval(Duration::from_millis(100))
        .with_state_dir(state_dir);
    for (k, v) in FAST_GROUPS {
        config = config.with_client_override(k, v);
    }
    config
}

/// A consumer of `topic` from the beginning, in its own group.
pub fn reader(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest");
    for (k, v) in FAST_GROUPS {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create().unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

/// A consumer assigned every partition of `topic` from the beginning, without a group.
pub fn partition_reader(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    read_committed: bool,
) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("partition-reader-{topic}"))
        .set("enable.auto.commit", "false")
        .set(
            "isolation.level",
            if read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    consumer
}

pub fn producer(bootstrap: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

/// Produces records and waits until they are acknowledged.
pub fn produce<K: AsRef<[u8]> + ?Sized, V: AsRef<[u8]> + ?Sized>(
    bootstrap: &str,
    topic: &str,
    records: &[(&K, &V)],
) {
    let producer = producer(bootstrap);
    for (k, v) in records {
        producer
            .send(BaseRecord::to(topic).key(k.as_ref()).payload(v.as_ref()))
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Reads until `done` holds for what was read, or fails after `timeout`.
pub fn read_until(
    consumer: &BaseConsumer,
    timeout: Duration,
    mut done: impl FnMut(&[OwnedMessage]) -> bool,
) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while !done(&out) {
        assert!(
            Instant::now() < deadline,
            "timed out after reading {} records",
            out.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            out.push(m.unwrap().detach());
        }
    }
    out
}

/// Reads whatever arrives within `quiet`.
pub fn drain(consumer: &BaseConsumer, quiet: Duration) -> Vec<OwnedMessage> {
    let until = Instant::now() + quiet;
    let mut out = Vec::new();
    while Instant::now() < until {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            out.push(m.unwrap().detach());
        }
    }
    out
}

pub fn key_str(m: &OwnedMessage) -> String {
    String::from_utf8(m.key().unwrap_or_default().to_vec()).unwrap()
}

pub fn value_i64(m: &OwnedMessage) -> Option<i64> {
    m.payload()
        .map(|p| i64::from_be_bytes(p.try_into().expect("8-byte value")))
}

/// The latest value of every key.
pub fn latest_i64(messages: &[OwnedMessage]) -> HashMap<String, Option<i64>> {
    messages
        .iter()
        .map(|m| (key_str(m), value_i64(m)))
        .collect()
}

/// The sum of the end offsets of a topic's partitions.
pub fn end_offsets(bootstrap: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .collect()
}

/// The offsets a group committed for a topic's partitions (-1 where none, or all -1 when
/// the broker did not answer in time: callers poll until they see what they wait for).
///
/// It reads as `read_uncommitted`: a `read_committed` reader asks for stable offsets, which
/// the broker refuses (and librdkafka retries until its timeout) while a transaction holds
/// offsets of the group, as one does for up to its timeout after its producer was killed.
/// Offsets of an open transaction are not applied until it commits, so what comes back is
/// the committed state either way.
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("isolation.level", "read_uncommitted")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = match consumer.committed_offsets(tpl, Duration::from_secs(10)) {
        Ok(committed) => committed,
        Err(e) => {
            eprintln!("reading {group}'s committed offsets: {e} (polling again)");
            return vec![-1; partitions as usize];
        }
    };
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            },
        )
        .collect()
}

/// Runs the test `name` of this test binary in a child process, with `env` set: the way a
/// test runs an application it can kill.
pub fn spawn_child(name: &str, env: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command.args([
        "--exact",
        name,
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().unwrap()
}

/// Sends a signal to a child process.
pub fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on a child we spawned, with a valid signal number, touches no memory.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill({}, {signal}) failed", child.id());
}

#[allow(unused_imports)]
pub use libc::{SIGKILL, SIGTERM};

/// A deterministic pseudo-random sequence (xorshift), for reproducible "random" timings.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}
