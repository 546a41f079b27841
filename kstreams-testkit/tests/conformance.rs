//! The in-process brokers pass the conformance checks they are used for.

use std::rc::Rc;

use kstreams_testkit::conformance::{check, Options};
use kstreams_testkit::{EmbeddedBroker, MockKafka};

#[test]
fn embedded_tansu_broker_conforms_except_for_transactions() {
    let broker = EmbeddedBroker::start().expect("broker starts");
    let options = Options {
        transactions: false,
        ..Options::default()
    };
    let report = check(broker.bootstrap_servers(), &options);
    assert!(report.passed(), "{report}");
    assert_eq!(report.checks.len(), 3);
}

#[test]
fn embedded_broker_keeps_its_data_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data/tansu.db");
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
