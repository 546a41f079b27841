//! In-process Kafka-protocol brokers for kstreams tests, examples and demos, and a broker
//! conformance check.
//!
//! * [`EmbeddedBroker`] runs the development broker ([`kstreams_broker`]) in this process: a
//!   real Kafka-protocol broker on a local port that any Kafka client can use, with topic
//!   creation with configs, consumer groups and offsets, and transactions (`read_committed`
//!   consumers see only committed records), so exactly-once tests run on it.
//! * [`MockKafka`] wraps librdkafka's mock cluster: transactions and fault injection (broker
//!   down, latency, request errors), but no topic configs (topics are created up front), and
//!   `read_committed` consumers still see records of aborted transactions (the mock writes no
//!   transaction markers), so it cannot check exactly-once output.
//! * [`conformance`] checks what kstreams relies on from a broker, against either of these or
//!   any external cluster (`cargo run -p kstreams-testkit --bin conformance -- <bootstrap>`).

pub mod conformance;
mod embedded;
mod mock;

pub use embedded::EmbeddedBroker;
pub use mock::MockKafka;

/// Why a test broker could not be started or used.
///
/// ```
/// use kstreams_testkit::{EmbeddedBroker, TestkitError};
/// let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let data = std::env::temp_dir().join("testkit-error-example");
/// let Err(err) = EmbeddedBroker::start_with(&data, taken.local_addr().unwrap()) else {
///     panic!("the port is taken");
/// };
/// assert!(matches!(err, TestkitError::Io(_)), "{err}");
/// ```
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
///
/// ```
/// let port = kstreams_testkit::free_port().unwrap();
/// let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
/// assert_eq!(listener.local_addr().unwrap().port(), port);
/// ```
pub fn free_port() -> Result<u16, TestkitError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
