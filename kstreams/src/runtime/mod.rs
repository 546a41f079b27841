//! Running topologies: tasks, the nodes inside them, and (with the Kafka runtime) the threads
//! that drive tasks from a consumer group.
//!
//! A [`Task`](task::Task) is one partition of one sub-topology: its processors, its stores and
//! its clocks. The test driver and the Kafka runtime both feed tasks raw records and collect
//! what they produce, so a topology behaves the same on both.

pub(crate) mod node;
pub(crate) mod task;

pub use task::TaskMetrics;
