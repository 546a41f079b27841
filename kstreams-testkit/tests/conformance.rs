//! The in-process brokers pass the conformance checks they are used for.

use std::rc::Rc;

use kstreams_testkit::conformance::{check, Options};
use kstreams_testkit::{EmbeddedBroker, MockKafka};

#[test]
fn embedded_broker_conforms_including_transactions() {
    let broker = EmbeddedBroker::start().expect("broker starts");
    let report = check(broker.bootstrap_servers(), &Options::default());
    assert!(report.passed(), "{report}");
    let names: Vec<&str> = report.checks.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "topic configs on creation",
            "end offsets and ordered reads",
            "consumer group offsets",
            "transactions commit and abort",
            "read_committed hides aborted records",
            "an open transaction holds back read_committed readers",
            "re-initialising a transactional.id fences the old producer",
            "transactional consumer offsets apply on commit only",
            "a crashed producer's transaction is aborted on re-init",
            "overlapping transactions of two producers stay apart",
        ],
        "{report}"
    );
}

#[test]
fn embedded_broker_keeps_its_data_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data/broker");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], kstreams_testkit::free_port().unwrap()));
    {
        let broker = EmbeddedBroker::start_with(&file, addr).unwrap();
        broker.create_topic("kept", 1, &[]).unwrap();
        let options = Options {
            transactions: false,
            topic_configs: false,
            ..Options::default()
        };
        assert!(check(broker.bootstrap_servers(), &options).passed());
    }
    assert!(file.exists());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], kstreams_testkit::free_port().unwrap()));
    let broker = EmbeddedBroker::start_with(&file, addr).unwrap();
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some("kept"), std::time::Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        metadata.topics()[0].partitions().len(),
        1,
        "topic survived the restart"
    );
}

#[test]
fn mock_cluster_runs_transactions_but_does_not_isolate_aborted_records() {
    let mock = Rc::new(MockKafka::start(1).expect("mock cluster"));
    let creator = mock.clone();
    let options = Options {
        topic_configs: false,
        // The mock's missing isolation already fails the basic check; the exactly-once
        // checks (fencing, offsets, crash recovery) need what it lacks as well.
        exactly_once: false,
        create_topic: Some(Box::new(move |name, partitions| {
            creator
                .create_topic(name, partitions)
                .map_err(|e| e.to_string())
        })),
        ..Options::default()
    };
    let report = check(&mock.bootstrap_servers(), &options);
    let results: Vec<(&str, bool)> = report
        .checks
        .iter()
        .map(|(name, r)| (*name, r.is_ok()))
        .collect();
    // librdkafka's mock cluster runs transactions but does not filter aborted records for
    // read_committed consumers: exactly-once tests on it must check isolation themselves.
    assert_eq!(
        results,
        vec![
            ("end offsets and ordered reads", true),
            ("consumer group offsets", true),
            ("transactions commit and abort", true),
            ("read_committed hides aborted records", false),
        ],
        "{report}"
    );
}

mod transactions {
    //! The embedded broker's transaction state survives a restart, and it aborts abandoned
    //! transactions after their timeout.

    use std::time::{Duration, Instant};

    use kstreams_testkit::EmbeddedBroker;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

    const TIMEOUT: Duration = Duration::from_secs(30);

    fn uuid_suffix() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    fn producer(
        broker: &EmbeddedBroker,
        id: &str,
        timeout_ms: u32,
    ) -> ThreadedProducer<DefaultProducerContext> {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("transactional.id", id)
            .set("transaction.timeout.ms", timeout_ms.to_string())
            .set("message.timeout.ms", timeout_ms.to_string())
            .create()
            .unwrap();
        producer.init_transactions(TIMEOUT).unwrap();
        producer
    }

    fn send(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, values: &[&str]) {
        producer.begin_transaction().unwrap();
        for value in values {
            producer
                .send(
                    BaseRecord::<str, str>::to(topic)
                        .partition(0)
                        .payload(value),
                )
                .map_err(|(e, _)| e)
                .unwrap();
        }
        producer.flush(TIMEOUT).unwrap();
    }

    /// What a read_committed reader sees: up to `expected` records within the timeout, then
    /// anything more within a second.
    fn read_committed(broker: &EmbeddedBroker, topic: &str, expected: usize) -> Vec<String> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("isolation.level", "read_committed")
            .set("group.id", format!("reader-{}", uuid_suffix()))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut values = Vec::new();
        let mut deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message.unwrap();
                values.push(String::from_utf8_lossy(message.payload().unwrap()).into_owned());
                if values.len() == expected {
                    deadline = Instant::now() + Duration::from_secs(1);
                }
            }
        }
        values
    }

    #[test]
    fn an_open_transaction_is_aborted_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("broker");
        let port = kstreams_testkit::free_port().unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        {
            let broker = EmbeddedBroker::start_with(&file, addr).unwrap();
            broker.create_topic("restart", 1, &[]).unwrap();
            let first = producer(&broker, "restart-app", 60_000);
            send(&first, "restart", &["committed"]);
            first.commit_transaction(TIMEOUT).unwrap();
            // The second transaction of the epoch is open when producer and broker stop.
            send(&first, "restart", &["open-at-crash"]);
        }
        let addr =
            std::net::SocketAddr::from(([127, 0, 0, 1], kstreams_testkit::free_port().unwrap()));
        let broker = EmbeddedBroker::start_with(&file, addr).unwrap();
        assert_eq!(
            read_committed(&broker, "restart", 1),
            ["committed"],
            "the transaction open when the broker stopped was aborted when it started"
        );
        let second = producer(&broker, "restart-app", 60_000);
        send(&second, "restart", &["after-restart"]);
        second.commit_transaction(TIMEOUT).unwrap();
        assert_eq!(
            read_committed(&broker, "restart", 2),
            ["committed", "after-restart"]
        );
    }

    #[test]
    fn an_abandoned_transaction_is_aborted_after_its_timeout() {
        let broker = EmbeddedBroker::start().unwrap();
        broker.create_topic("abandoned", 1, &[]).unwrap();
        let abandoned = producer(&broker, "abandoned-app", 2_000);
        send(&abandoned, "abandoned", &["abandoned"]);
        let other = producer(&broker, "other-app", 60_000);
        send(&other, "abandoned", &["other"]);
        other.commit_transaction(TIMEOUT).unwrap();
        let started = Instant::now();
        assert_eq!(read_committed(&broker, "abandoned", 1), ["other"]);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the abandoned transaction was aborted within its timeout and a few seconds"
        );
        // The broker fenced the abandoned producer when it aborted its transaction.
        let error = abandoned.commit_transaction(TIMEOUT).unwrap_err();
        assert!(
            matches!(&error, rdkafka::error::KafkaError::Transaction(e) if e.is_fatal()),
            "{error}"
        );
    }
}

/// Each fetched record carries its own headers, as the producer wrote them.
#[test]
fn embedded_broker_keeps_each_records_headers() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Header, Headers, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{ClientConfig, Message};
    use std::time::{Duration, Instant};

    let broker = EmbeddedBroker::start().expect("broker starts");
    broker.create_topic("with-headers", 1, &[]).unwrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .create()
        .unwrap();
    for i in 0..300 {
        let value = format!("record-{i}");
        producer
            .send(
                BaseRecord::to("with-headers")
                    .key("k")
                    .payload(&value)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "n",
                        value: Some(&i.to_string()),
                    })),
            )
            .unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", "header-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["with-headers"]).unwrap();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < 300 && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.unwrap();
        let headers = message.headers().expect("headers");
        assert_eq!(headers.count(), 1);
        let n = headers.get(0);
        assert_eq!(n.key, "n");
        assert_eq!(n.value, Some(message.offset().to_string().as_bytes()));
        assert_eq!(
            message.payload(),
            Some(format!("record-{}", message.offset()).as_bytes())
        );
        seen += 1;
    }
    assert_eq!(seen, 300);
}
