//! The broker's own throughput with librdkafka clients, one run, figures for
//! docs/BENCHMARKS.md:
//!
//! * one producer writing `N` records of 100 bytes (default 1,000,000; `BROKER_BENCH_RECORDS`);
//! * one consumer reading them all from offset 0 — a consumer `N` records behind;
//! * one consumer at the tail, reading records as a producer writes them;
//!
//! `cargo bench --workspace --all-features --bench throughput` (from the workspace root:
//! `-p kstreams-broker`).

use std::time::{Duration, Instant};

use kstreams_broker::{Broker, BrokerConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn producer(bootstrap: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap()
}

fn produce(bootstrap: &str, topic: &str, count: usize) -> Duration {
    let producer = producer(bootstrap);
    let payload = [b'x'; 100];
    let started = Instant::now();
    for i in 0..count {
        let key = (i as u64).to_be_bytes();
        loop {
            match producer.send(BaseRecord::to(topic).key(&key[..]).payload(&payload[..])) {
                Ok(()) => break,
                Err((_, record)) => {
                    drop(record);
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    started.elapsed()
}

fn consume(bootstrap: &str, topic: &str, count: usize) -> Duration {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let started = Instant::now();
    let mut seen = 0;
    while seen < count {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            message.unwrap();
            seen += 1;
        }
    }
    started.elapsed()
}

fn rate(count: usize, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

fn main() {
    let count: usize = std::env::var("BROKER_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig::new(dir.path())).unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();

    let took = produce(&bootstrap, "behind", count);
    println!(
        "produce          {count} records  {:>8.2} s  {:>10.0} records/s",
        took.as_secs_f64(),
        rate(count, took)
    );
    let took = consume(&bootstrap, "behind", count);
    let behind = rate(count, took);
    println!(
        "consume behind   {count} records  {:>8.2} s  {:>10.0} records/s",
        took.as_secs_f64(),
        behind
    );
    // At the tail: the consumer reads while the producer writes.
    let tail = std::thread::spawn({
        let bootstrap = bootstrap.clone();
        move || consume(&bootstrap, "tail", count)
    });
    std::thread::sleep(Duration::from_millis(500));
    let produced = produce(&bootstrap, "tail", count);
    let took = tail.join().unwrap();
    let at_tail = rate(count, took);
    println!(
        "consume at tail  {count} records  {:>8.2} s  {:>10.0} records/s (producer {:.0} records/s)",
        took.as_secs_f64(),
        at_tail,
        rate(count, produced)
    );
    println!("behind / tail    {:.2}", behind / at_tail);
}
