//! In-process Kafka-protocol brokers for kstreams tests, examples and demos, and a broker
//! conformance check.
//!
//! * [`EmbeddedBroker`] runs [tansu](https://tansu.io) in this process on SQLite storage: a
//!   real Kafka-protocol broker on a local port that any Kafka client can use. It supports
//!   topic creation with configs, consumer groups and offsets, but not transactions
//!   (tansu 0.6 does not route `EndTxn`).
//! * [`MockKafka`] wraps librdkafka's mock cluster: transactions and fault injection (broker
//!   down, latency, request errors), but no topic configs (topics are created up front), and
//!   `read_committed` consumers still see records of aborted transactions.
//! * [`conformance`] checks what kstreams relies on from a broker, against either of these or
//!   any external cluster (`cargo run -p kstreams-testkit --bin conformance -- <bootstrap>`).

pub mod conformance;
mod embedded;
mod mock;

pub use embedded::EmbeddedBroker;
pub use mock::MockKafka;

/// Why a test broker could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A local file or socket operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The broker failed to start or serve.
    #[error("broker: {0}")]
    Broker(String),
    /// A Kafka client call failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The broker did not become ready in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16, TestkitError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
