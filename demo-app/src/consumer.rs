//! The consumer loop every database-writing service runs: one consumer group per service,
//! records handled in partition order, offsets committed only after the handler succeeded
//! (at-least-once), transient failures retried with backoff, and records that can never be
//! handled (not an event of the topic, unknown schema version) moved to the dead-letter topic
//! `shop-dead-letters` with the reason in their headers, so nothing is lost and the partition
//! keeps moving. Handlers make redelivery harmless by recording the event id in
//! `processed_events` in the same transaction as their change ([`crate::db`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};

use crate::chaos::{Delivery, Faults};
use crate::events::EventError;
use crate::metrics::labels;

/// The dead-letter topic of records no service could read.
pub const DEAD_LETTERS: &str = "shop-dead-letters";

/// How handling a record failed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The record is not a readable event: dead-letter it and move on.
    #[error(transparent)]
    Poison(#[from] EventError),
    /// Something that may work later (database, broker): retry the same record.
    #[error("{0}")]
    Transient(String),
}

impl From<sqlx::Error> for HandleError {
    fn from(e: sqlx::Error) -> Self {
        HandleError::Transient(format!("database: {e}"))
    }
}

/// A service that handles the records of its consumer group.
pub trait Handler: Send + Sync + 'static {
    /// Handles one record.
    fn handle(&self, record: Incoming) -> impl Future<Output = Result<(), HandleError>> + Send;
}

/// A record as handlers see it (owned, so a handler's future borrows nothing).
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Topic it came from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub payload: Vec<u8>,
}

/// Runs `handler` over `topics` in group `group` until the task is dropped.
///
/// `faults` are the chaos faults of the service ([`crate::chaos`]).
pub async fn run<H, F>(
    client: ClientConfig,
    group: &str,
    topics: &[&str],
    dead_letters: FutureProducer,
    faults: Arc<Faults>,
    handler: H,
) where
    H: Fn(Incoming) -> F,
    F: Future<Output = Result<(), HandleError>>,
{
    let consumer: StreamConsumer = match client
        .clone()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range")
        .create()
    {
        Ok(consumer) => consumer,
        Err(e) => {
            tracing::error!(group, "cannot create consumer: {e}");
            return;
        }
    };
    if let Err(e) = consumer.subscribe(topics) {
        tracing::error!(group, "cannot subscribe to {topics:?}: {e}");
        return;
    }
    loop {
        let message = match consumer.recv().await {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(group, "consumer error: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut backoff = Duration::from_millis(100);
        let metrics = crate::metrics::global();
        loop {
            if faults.before_record().await == Delivery::Drop {
                // Lost in transit (chaos): as if fetched again after a timeout.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let incoming = Incoming {
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().unwrap_or_default().to_vec(),
            };
            match handler(incoming).await {
                Ok(()) => {
                    metrics
                        .records_handled
                        .get_or_create(&labels(&[("group", group), ("topic", message.topic())]))
                        .inc();
                    break;
                }
                Err(HandleError::Poison(reason)) => {
                    metrics
                        .handle_errors
                        .get_or_create(&labels(&[("group", group), ("kind", "poison")]))
                        .inc();
                    metrics.errors_seen.inc();
                    match dead_letter(&dead_letters, group, &message, &reason.to_string()).await {
                        Ok(()) => {
                            metrics
                                .dead_lettered
                                .get_or_create(&labels(&[("group", group)]))
                                .inc();
                            break;
                        }
                        Err(e) => tracing::warn!(group, "cannot dead-letter a record: {e}"),
                    }
                }
                Err(HandleError::Transient(e)) => {
                    metrics
                        .handle_errors
                        .get_or_create(&labels(&[("group", group), ("kind", "transient")]))
                        .inc();
                    metrics.errors_seen.inc();
                    tracing::warn!(
                        group,
                        topic = message.topic(),
                        "retrying in {backoff:?}: {e}"
                    );
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        if let Err(e) = consumer.commit_message(&message, CommitMode::Async) {
            tracing::warn!(group, "commit failed (the record may be redelivered): {e}");
        }
    }
}

/// Copies `message` to [`DEAD_LETTERS`] with its source and `reason` in headers.
async fn dead_letter(
    producer: &FutureProducer,
    group: &str,
    message: &BorrowedMessage<'_>,
    reason: &str,
) -> Result<(), String> {
    tracing::warn!(
        group,
        topic = message.topic(),
        partition = message.partition(),
        offset = message.offset(),
        "dead-lettering: {reason}"
    );
    let partition = message.partition().to_string();
    let offset = message.offset().to_string();
    let mut headers = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for header in original.iter() {
            headers = headers.insert(header);
        }
    }
    headers = headers
        .insert(Header {
            key: "dlq.source.topic",
            value: Some(message.topic()),
        })
        .insert(Header {
            key: "dlq.source.partition",
            value: Some(&partition),
        })
        .insert(Header {
            key: "dlq.source.offset",
            value: Some(&offset),
        })
        .insert(Header {
            key: "dlq.consumer.group",
            value: Some(group),
        })
        .insert(Header {
            key: "dlq.error.kind",
            value: Some("deserialization"),
        })
        .insert(Header {
            key: "dlq.error.message",
            value: Some(reason),
        });
    let mut record = FutureRecord::<[u8], [u8]>::to(DEAD_LETTERS).headers(headers);
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    if let Some(payload) = message.payload() {
        record = record.payload(payload);
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map(|_| ())
        .map_err(|(e, _)| e.to_string())
}
