//! The errors kstreams reports, one enum per boundary.
//!
//! [`TopologyError`] is what a wrong topology definition gets when it is built;
//! [`StreamsError`] is what running a topology can fail with. Processor code returns a
//! [`BoxError`], so `?` works on any error, and the runtime wraps it with the name of the
//! processor it came from.

use crate::serde::SerdeError;
use crate::state::StoreError;

/// Any error a user processor or closure returns.
///
/// ```
/// use kstreams::BoxError;
/// // `?` converts any error, and a string becomes one with `.into()`.
/// fn parse_cents(text: &str) -> Result<i64, BoxError> {
///     let cents: i64 = text.trim().parse()?;
///     if cents < 0 {
///         return Err(format!("negative amount {cents}").into());
///     }
///     Ok(cents)
/// }
/// assert_eq!(parse_cents(" 250 ").unwrap(), 250);
/// assert_eq!(parse_cents("abc").unwrap_err().to_string(), "invalid digit found in string");
/// assert_eq!(parse_cents("-5").unwrap_err().to_string(), "negative amount -5");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A topology that cannot be built as defined.
///
/// ```
/// use kstreams::dsl::{Materialized, StreamsBuilder};
/// use kstreams::TopologyError;
/// let builder = StreamsBuilder::new();
/// let clicks = builder.stream::<String, String>("clicks").group_by_key();
/// clicks.count_with(Materialized::named("counts"));
/// clicks.count_with(Materialized::named("counts")); // the same store name again
/// let err = builder.build().err();
/// assert_eq!(err, Some(TopologyError::StoreAlreadyRegistered("counts".into())));
/// let message = err.map(|e| e.to_string());
/// assert_eq!(message.as_deref(), Some("state store `counts` is already defined"));
///
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("clicks").group_by_key()
///     .count_with(Materialized::named("clicks/user")); // `/` is not allowed in topic names
/// let err = builder.build().err();
/// assert!(matches!(err, Some(TopologyError::InvalidName { name, .. }) if name == "clicks/user"));
/// assert_eq!(StreamsBuilder::new().build().err(), Some(TopologyError::NoSources));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// Two sources read the same topic.
    #[error("topic `{0}` is already read by another source")]
    TopicAlreadyRegistered(String),
    /// Two stores (or a store and a store builder) share a name.
    #[error("state store `{0}` is already defined")]
    StoreAlreadyRegistered(String),
    /// A processor names a store that no builder defines.
    #[error("processor `{processor}` uses state store `{store}`, which is not defined")]
    UnknownStore { processor: String, store: String },
    /// Topics that are joined have different partition counts, so equal keys would not
    /// meet in one task.
    #[error(
        "topics joined with each other must have the same number of partitions, but have {0:?}"
    )]
    NotCopartitioned(Vec<(String, i32)>),
    /// A source topic does not exist.
    #[error("source topic `{0}` does not exist")]
    MissingSourceTopic(String),
    /// The topology has no source.
    #[error("the topology has no source topic")]
    NoSources,
    /// A name given to an operator is not a legal Kafka topic or store name.
    #[error("invalid name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },
}

/// A failure while running a topology.
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, processor::Headers};
/// use kstreams::{testing::TestDriver, StreamsError};
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, i64>("amounts").to("amounts-copy");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("e")).unwrap();
/// // Three bytes are no 8-byte i64, and the default policy is to fail.
/// let (key, bad) = (Some(&b"k"[..]), Some(&b"abc"[..]));
/// let err = driver.pipe_raw("amounts", key, bad, 0, Headers::new()).unwrap_err();
/// assert!(matches!(err, StreamsError::Deserialization { ref topic, part: "value", offset: 0, .. }
///     if topic == "amounts"));
/// let err = driver.pipe_raw("prices", key, None, 0, Headers::new()).unwrap_err();
/// assert!(matches!(err, StreamsError::UnknownTopic(ref topic) if topic == "prices"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// A record's key or value could not be deserialized and the handler said fail.
    #[error(
        "cannot deserialize the {part} of the record at {topic}-{partition}@{offset}: {source}"
    )]
    Deserialization {
        topic: String,
        partition: i32,
        offset: i64,
        part: &'static str,
        #[source]
        source: SerdeError,
    },
    /// A key or value could not be serialized for a sink, changelog or repartition topic.
    #[error("cannot serialize the {part} of a record for topic `{topic}`: {source}")]
    Serialization {
        topic: String,
        part: &'static str,
        #[source]
        source: SerdeError,
    },
    /// A processor returned an error and the handler said fail.
    #[error("processor `{processor}` failed: {source}")]
    Processing {
        processor: String,
        #[source]
        source: BoxError,
    },
    /// A state store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record arrived for a topic that no source of the topology reads.
    #[error("unknown topic `{0}`: no source of the topology reads it")]
    UnknownTopic(String),
    /// The topology definition is wrong.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The Kafka client, broker or configuration failed.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The configuration cannot work (see [`StreamsConfig::validate`]).
    ///
    /// [`StreamsConfig::validate`]: crate::config::StreamsConfig::validate
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Any other runtime failure.
    #[error("{0}")]
    Other(String),
}

impl StreamsError {
    /// Wraps an error from a processor, keeping errors that already name one.
    pub(crate) fn from_processor(processor: &str, err: BoxError) -> Self {
        match err.downcast::<StreamsError>() {
            Ok(inner) => *inner,
            Err(err) => StreamsError::Processing {
                processor: processor.to_string(),
                source: err,
            },
        }
    }
}
