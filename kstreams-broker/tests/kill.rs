//! The `kstreams-broker` binary killed with SIGKILL while producers write: every record it
//! acknowledged is there after a restart on the same data directory, in order, once.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The broker process, killed when the test ends, failed or not.
struct BrokerProcess(Child);

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_broker(data: &std::path::Path, port: u16) -> BrokerProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_kstreams-broker"))
        .args(["--data-dir", &data.display().to_string()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Ready when it accepts connections.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    BrokerProcess(child)
}

/// Notes the value of every record the broker acknowledged.
struct Acks(Arc<Mutex<BTreeSet<u64>>>);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(message) = result {
            let value = u64::from_be_bytes(message.payload().unwrap().try_into().unwrap());
            self.0.lock().unwrap().insert(value);
        }
    }
}

#[test]
fn a_killed_broker_keeps_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = spawn_broker(dir.path(), port);
    let bootstrap = format!("127.0.0.1:{port}");
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let producer: ThreadedProducer<Acks> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "5000")
        .create_with_context(Acks(acked.clone()))
        .unwrap();
    // Write until well over a thousand records are acknowledged, then kill the broker while
    // the producer keeps sending.
    let mut sent = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 5_000 {
        assert!(Instant::now() < deadline, "no acknowledgements");
        let value = sent.to_be_bytes();
        if producer
            .send(BaseRecord::to("kept").key("k").payload(&value[..]))
            .is_ok()
        {
            sent += 1;
        }
        if sent.is_multiple_of(100) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // SAFETY: kill(2) on our own child process touches no memory.
    assert_eq!(
        unsafe { libc::kill(broker.0.id() as i32, libc::SIGKILL) },
        0
    );
    broker.0.wait().unwrap();
    let before_kill: BTreeSet<u64> = acked.lock().unwrap().clone();
    // What is still in flight fails (the broker is gone); nothing more is acknowledged.
    let _ = producer.flush(Duration::from_secs(6));
    drop(producer);
    let acknowledged = acked.lock().unwrap().clone();
    assert!(acknowledged.len() >= before_kill.len());

    let _broker = spawn_broker(dir.path(), port);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "after-kill")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (_, high) = consumer
        .fetch_watermarks("kept", 0, Duration::from_secs(10))
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition_offset("kept", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&list).unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (values.len() as i64) < high {
        assert!(Instant::now() < deadline, "read {} of {high}", values.len());
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            assert_eq!(
                message.offset(),
                values.len() as i64,
                "offsets without gaps"
            );
            values.push(u64::from_be_bytes(
                message.payload().unwrap().try_into().unwrap(),
            ));
        }
    }
    let kept: BTreeSet<u64> = values.iter().copied().collect();
    assert_eq!(kept.len(), values.len(), "a record stored twice");
    let lost: Vec<&u64> = acknowledged.difference(&kept).take(10).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but gone after the kill: {lost:?} ({} acknowledged, {} kept)",
        acknowledged.len(),
        kept.len()
    );
    // In the order they were sent.
    assert!(values.windows(2).all(|w| w[0] < w[1]));
}
