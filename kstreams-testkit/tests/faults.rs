//! Faults injected with librdkafka's mock cluster: a broker that goes down, slow round trips,
//! and transaction requests that fail. The application must ride them out: keep running,
//! abort and retry failed transactions, and lose no record.
//!
//! The mock cluster cannot check exactly-once itself (it keeps no transactional offsets and
//! shows aborted records to `read_committed` readers, see `conformance.rs`), so these tests
//! check survival and completeness; exactness is checked on the embedded broker
//! (`crash_recovery.rs`).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use kstreams::config::ProcessingGuarantee;
use kstreams::dsl::StreamsBuilder;
use kstreams::kafka::{KafkaStreams, State};
use kstreams::topology::Topology;
use kstreams_testkit::MockKafka;
use rdkafka::types::RDKafkaApiKey;
use rdkafka::types::RDKafkaRespErr;

fn tens() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("amounts")
        .map_values(|v| v * 10)
        .to("tens");
    builder.build().unwrap()
}

fn send_amounts(bootstrap: &str, from: i64, to: i64) {
    let records: Vec<(String, [u8; 8])> = (from..to)
        .map(|i| (format!("k{}", i % 5), i.to_be_bytes()))
        .collect();
    let refs: Vec<(&str, &[u8])> = records.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
    produce(bootstrap, "amounts", &refs);
}

/// Reads `tens` until every value of `0..count` (times ten) has arrived at least once.
fn await_all(bootstrap: &str, count: i64, streams: &KafkaStreams) {
    let consumer = partition_reader(bootstrap, "tens", 2, false);
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while (seen.len() as i64) < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} values; state {:?}, error {:?}",
            seen.len(),
            streams.state(),
            streams.error()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap().detach();
            seen.insert(value_i64(&m).unwrap() / 10);
        }
    }
    assert_eq!(seen, (0..count).collect::<HashSet<_>>());
}

fn start(
    mock: &MockKafka,
    app: &str,
    guarantee: ProcessingGuarantee,
) -> (KafkaStreams, tempfile::TempDir) {
    mock.create_topology_topics(&tens(), app, 2).unwrap();
    let state = tempfile::tempdir().unwrap();
    let config =
        config(&mock.bootstrap_servers(), app, state.path()).with_processing_guarantee(guarantee);
    let mut streams = KafkaStreams::new(&tens(), config);
    streams.start().unwrap();
    assert!(
        streams.wait_for_state(State::Running, Duration::from_secs(60)),
        "{:?}",
        streams.error()
    );
    (streams, state)
}

#[test]
fn a_broker_outage_is_ridden_out_without_losing_records() {
    let mock = MockKafka::start(1).unwrap();
    let (mut streams, _state) = start(&mock, "outage-app", ProcessingGuarantee::AtLeastOnce);
    let bootstrap = mock.bootstrap_servers();
    send_amounts(&bootstrap, 0, 200);
    await_all(&bootstrap, 200, &streams);
    mock.cluster().broker_down(1).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    mock.cluster().broker_up(1).unwrap();
    send_amounts(&bootstrap, 200, 400);
    await_all(&bootstrap, 400, &streams);
    assert_ne!(streams.state(), State::Error, "{:?}", streams.error());
    streams.close();
}

#[test]
fn slow_round_trips_slow_exactly_once_down_but_do_not_break_it() {
    let mock = MockKafka::start(1).unwrap();
    let (mut streams, _state) = start(&mock, "latency-app", ProcessingGuarantee::ExactlyOnce);
    let bootstrap = mock.bootstrap_servers();
    mock.cluster()
        .broker_round_trip_time(1, Duration::from_millis(150))
        .unwrap();
    send_amounts(&bootstrap, 0, 300);
    await_all(&bootstrap, 300, &streams);
    assert!(streams.metrics().commits > 0);
    assert_ne!(streams.state(), State::Error, "{:?}", streams.error());
    streams.close();
}

#[test]
fn failed_transactions_are_aborted_and_processing_resumes() {
    let mock = MockKafka::start(1).unwrap();
    let (mut streams, _state) = start(&mock, "abort-app", ProcessingGuarantee::ExactlyOnce);
    let bootstrap = mock.bootstrap_servers();
    send_amounts(&bootstrap, 0, 100);
    await_all(&bootstrap, 100, &streams);
    // The next transactional offset commits fail with an error that requires an abort.
    mock.cluster().request_errors(
        RDKafkaApiKey::TxnOffsetCommit,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID,
        ],
    );
    send_amounts(&bootstrap, 100, 300);
    let deadline = Instant::now() + Duration::from_secs(60);
    while streams.metrics().aborted_transactions == 0 {
        assert!(
            Instant::now() < deadline,
            "no transaction was aborted: {:?} {:?}",
            streams.metrics(),
            streams.error()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    await_all(&bootstrap, 300, &streams);
    assert_ne!(streams.state(), State::Error, "{:?}", streams.error());
    streams.close();
}
