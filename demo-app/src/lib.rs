//! shop: an e-commerce system built on kstreams.
//!
//! Services talk only through Kafka topics ([`events::topics`]); each owns its tables in the
//! shared database ([`db`]) and publishes through a transactional outbox ([`outbox`]). The
//! HTTP APIs share [`http`]'s JSON errors and [`auth`]'s JWT roles. [`app`] wires everything
//! up on an embedded broker and database, or on real infrastructure.

pub mod alerts;
pub mod app;
pub mod auth;
pub mod cache;
pub mod chaos;
pub mod consumer;
pub mod crypto;
pub mod dashboard;
pub mod db;
pub mod events;
pub mod http;
pub mod load;
pub mod metrics;
pub mod monitor;
pub mod outbox;
pub mod producer;
pub mod services;
pub mod simulator;
pub mod streams;
pub mod topic_view;
