//! # kstreams
//!
//! Kafka Streams-grade stream processing for Rust: a typed DSL ([`dsl`]), a Processor API
//! ([`processor`]), state stores ([`state`]), and an in-memory [`TestDriver`](testing::TestDriver)
//! that runs the same [`Topology`](topology::Topology) with no broker.
//!
//! ```
//! use kstreams::config::StreamsConfig;
//! use kstreams::dsl::StreamsBuilder;
//! use kstreams::testing::TestDriver;
//!
//! // Word count.
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream::<Option<String>, String>("text")
//!     .flat_map_values(|line| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
//!     .group_by(|_, word| word.clone())
//!     .count()
//!     .to_stream()
//!     .to("word-counts");
//! let topology = builder.build().unwrap();
//!
//! let driver = TestDriver::new(&topology, StreamsConfig::new("word-count")).unwrap();
//! let text = driver.create_input_topic::<Option<String>, String>("text");
//! let counts = driver.create_output_topic::<String, Option<i64>>("word-counts");
//! text.pipe_input_at(None, "to be or not to be".into(), 0);
//! let latest = counts.read_key_values_to_map();
//! assert_eq!(latest["to"], Some(2));
//! assert_eq!(latest["not"], Some(1));
//! ```
//!
//! Module map: [`serde`] turns typed keys and values into bytes; [`dsl`] builds topologies;
//! [`processor`] is the lower-level API every operator is built on; [`state`] holds stores;
//! [`topology`] describes what was built; [`testing`] runs it in memory; [`config`] and
//! [`error`] are shared by all.

pub mod config;
pub mod dsl;
pub mod error;
pub mod kafka;
pub mod processor;
mod runtime;
pub mod serde;
pub mod state;
pub mod testing;
pub mod topology;

pub use error::{BoxError, StreamsError, TopologyError};
/// The Prometheus client [`KafkaStreams::register_metrics`](kafka::KafkaStreams::register_metrics)
/// registers into, re-exported so applications use the same version.
pub use prometheus_client;
pub use runtime::TaskMetrics;

/// Header names kstreams writes on dead-letter records (the names of Kafka Streams'
/// KIP-1034). See [`KStream::try_map_values`](dsl::KStream::try_map_values) for an example.
pub mod dead_letter {
    pub use crate::runtime::task::{
        DLQ_ERROR_KIND as ERROR_KIND, DLQ_ERROR_MESSAGE as ERROR_MESSAGE,
        DLQ_ERROR_OFFSET as ERROR_OFFSET, DLQ_ERROR_PARTITION as ERROR_PARTITION,
        DLQ_ERROR_PROCESSOR as ERROR_PROCESSOR, DLQ_ERROR_TOPIC as ERROR_TOPIC,
    };
}
