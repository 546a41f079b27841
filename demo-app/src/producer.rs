//! The services' Kafka producer: a future per record, resolved by its delivery report.
//!
//! It is rdkafka's `FutureProducer` rebuilt on [`kstreams::kafka::ServedProducer`], whose
//! delivery reports are served by a thread woken by librdkafka. rdkafka's own polls on a
//! 100 ms timer and spins through the last fraction of a millisecond of every poll, which
//! costs an idle shop about 1% of a core per producer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use kstreams::kafka::ServedProducer;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{DeliveryResult, Message, OwnedMessage, Timestamp, ToBytes};
use rdkafka::producer::future_producer::{Delivery, OwnedDeliveryResult};
use rdkafka::producer::{BaseRecord, FutureRecord, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

/// Resolves each record's future from its delivery report.
struct Resolver;

impl ClientContext for Resolver {}

impl ProducerContext for Resolver {
    type DeliveryOpaque = Box<oneshot::Sender<OwnedDeliveryResult>>;

    fn delivery(&self, result: &DeliveryResult<'_>, reply: Self::DeliveryOpaque) {
        let owned = match result {
            Ok(message) => Ok(Delivery {
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message.timestamp(),
            }),
            Err((error, message)) => Err((error.clone(), message.detach())),
        };
        // The sender's future may have been dropped; then nobody waits for the report.
        let _ = reply.send(owned);
    }
}

/// A producer whose [`send`](Producer::send) returns once the broker acknowledged (or
/// refused) the record. Clones share one librdkafka client.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<ServedProducer<Resolver>>,
}

impl Producer {
    /// A producer with `config`'s settings.
    pub fn new(config: &ClientConfig) -> KafkaResult<Self> {
        Ok(Producer {
            inner: Arc::new(ServedProducer::new(config, Resolver)?),
        })
    }

    /// Sends `record` and waits for its delivery report; while librdkafka's queue is full it
    /// tries again for up to `queue_timeout`. The result is rdkafka's, as its
    /// `FutureProducer::send` returns it (the refused record comes back whole).
    #[allow(clippy::result_large_err)]
    pub async fn send<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: Duration,
    ) -> OwnedDeliveryResult
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let started = Instant::now();
        let (reply, delivered) = oneshot::channel();
        let mut base = BaseRecord {
            topic: record.topic,
            partition: record.partition,
            payload: record.payload,
            key: record.key,
            timestamp: record.timestamp,
            headers: record.headers,
            delivery_opaque: Box::new(reply),
        };
        loop {
            match self.inner.send(base) {
                Ok(()) => {
                    return delivered
                        .await
                        .unwrap_or_else(|_| Err((KafkaError::Canceled, empty(record.topic))))
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                    if started.elapsed() < queue_timeout =>
                {
                    base = returned;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((error, returned)) => {
                    let message = OwnedMessage::new(
                        returned.payload.map(|p| p.to_bytes().to_vec()),
                        returned.key.map(|k| k.to_bytes().to_vec()),
                        returned.topic.to_owned(),
                        returned
                            .timestamp
                            .map_or(Timestamp::NotAvailable, Timestamp::CreateTime),
                        returned.partition.unwrap_or(-1),
                        0,
                        returned.headers,
                    );
                    return Err((error, message));
                }
            }
        }
    }

    /// Waits until every record sent so far is acknowledged or refused.
    pub fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        self.inner.flush(timeout)
    }
}

/// A message with only its topic, for a report that never came (the client went away).
fn empty(topic: &str) -> OwnedMessage {
    OwnedMessage::new(
        None,
        None,
        topic.to_owned(),
        Timestamp::NotAvailable,
        -1,
        -1,
        None,
    )
}
