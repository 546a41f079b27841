//! The record collector: a stream thread's producer, plain (at-least-once) or transactional
//! (exactly-once), and what the broker acknowledged.
//!
//! Every record a thread's tasks produce — outputs, repartition and changelog records,
//! dead-letter records — goes through one collector. Delivery reports tell it the offsets of
//! changelog records (what a checkpoint records) and the records the broker refused (what the
//! production error policy decides about).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, TopicPartitionList};

use crate::error::StreamsError;
use crate::processor::Headers;
use crate::runtime::task::ProducerRecord;

use super::kafka;
use super::served_producer::ServedProducer;

/// Delivery opaque of changelog records, whose offsets are tracked.
const CHANGELOG: usize = 1;

/// A record the broker did not accept.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryFailure {
    pub topic: String,
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Headers,
    pub timestamp: i64,
    pub error: String,
}

/// What delivery reports told, shared with librdkafka's delivery thread.
#[derive(Default)]
pub(crate) struct Deliveries {
    /// Highest acknowledged offset per changelog topic and partition.
    changelog_offsets: Mutex<HashMap<String, BTreeMap<i32, i64>>>,
    failures: Mutex<Vec<DeliveryFailure>>,
    pub acknowledged: AtomicU64,
}

pub(crate) struct CollectorContext {
    deliveries: Arc<Deliveries>,
}

impl ClientContext for CollectorContext {}

impl ProducerContext for CollectorContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        match result {
            Ok(message) => {
                self.deliveries.acknowledged.fetch_add(1, Ordering::Relaxed);
                if opaque == CHANGELOG {
                    let mut offsets = self
                        .deliveries
                        .changelog_offsets
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    let topic = match offsets.get_mut(message.topic()) {
                        Some(t) => t,
                        None => offsets.entry(message.topic().to_string()).or_default(),
                    };
                    let offset = topic.entry(message.partition()).or_insert(-1);
                    *offset = (*offset).max(message.offset());
                }
            }
            Err((error, message)) => {
                let mut headers = Headers::new();
                if let Some(h) = message.headers() {
                    for header in h.iter() {
                        match header.value {
                            Some(v) => headers.add(header.key, v),
                            None => headers.add_null(header.key),
                        };
                    }
                }
                self.deliveries
                    .failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(DeliveryFailure {
                        topic: message.topic().to_string(),
                        partition: message.partition(),
                        key: message.key().map(<[u8]>::to_vec),
                        value: message.payload().map(<[u8]>::to_vec),
                        headers,
                        timestamp: message.timestamp().to_millis().unwrap_or(0),
                        error: error.to_string(),
                    });
            }
        }
    }
}

/// How a transaction call failed.
#[derive(Debug)]
pub(crate) enum TxnError {
    /// The transaction must be aborted; the producer can go on after that.
    Abortable(String),
    /// The producer cannot be used any more (fenced by a newer instance, or broken).
    Fatal(String),
}

impl TxnError {
    fn from(e: KafkaError) -> TxnError {
        match &e {
            KafkaError::Transaction(t) if t.is_fatal() => TxnError::Fatal(e.to_string()),
            _ => TxnError::Abortable(e.to_string()),
        }
    }
}

/// Runs a transaction call, repeating it while librdkafka says the same call may succeed
/// later (a coordinator moving, a broker briefly away, a timeout).
fn retrying(mut call: impl FnMut() -> Result<(), KafkaError>) -> Result<(), TxnError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match call() {
            Ok(()) => return Ok(()),
            Err(KafkaError::Transaction(t))
                if t.is_retriable() && std::time::Instant::now() < deadline =>
            {
                tracing::debug!("retrying a transaction call: {t}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(TxnError::from(e)),
        }
    }
}

impl std::fmt::Display for TxnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxnError::Abortable(e) => write!(f, "transaction failed (aborting): {e}"),
            TxnError::Fatal(e) => write!(f, "transactional producer failed: {e}"),
        }
    }
}

/// Why a record could not be handed to the producer.
#[derive(Debug)]
pub(crate) enum SendError {
    /// librdkafka refused the record itself (too large, unknown partition, ...).
    Rejected(String),
    /// The producer or its transaction failed.
    Producer(StreamsError),
}

/// Producer settings kstreams sets unless `client_overrides` set them (under either of
/// librdkafka's names): Kafka Streams' `linger.ms` (a record waits up to 100 ms for its
/// batch to fill; a commit flushes at once) and lz4 batches.
const PRODUCER_DEFAULTS: [(&str, &str, &str); 2] = [
    ("linger.ms", "queue.buffering.max.ms", "100"),
    ("compression.type", "compression.codec", "lz4"),
];

/// A stream thread's producer settings: `client`'s, then [`PRODUCER_DEFAULTS`] where
/// `client` has none, then those kstreams needs, which always win.
fn producer_config(
    client: &ClientConfig,
    transactional_id: Option<&str>,
    transaction_timeout: Duration,
) -> ClientConfig {
    let mut config = client.clone();
    for (key, alias, value) in PRODUCER_DEFAULTS {
        if config.get(key).is_none() && config.get(alias).is_none() {
            config.set(key, value);
        }
    }
    config
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("acks", "all");
    if let Some(id) = transactional_id {
        config.set("transactional.id", id).set(
            "transaction.timeout.ms",
            transaction_timeout.as_millis().to_string(),
        );
    }
    config
}

/// A stream thread's producer.
pub(crate) struct RecordCollector {
    producer: ServedProducer<CollectorContext>,
    deliveries: Arc<Deliveries>,
    transactional: bool,
    in_transaction: bool,
    timeout: Duration,
}

impl RecordCollector {
    /// A producer for `client`; with a transactional id, an initialized transactional one
    /// (which fences any older producer of the same id and aborts its open transaction).
    pub(crate) fn new(
        client: &ClientConfig,
        transactional_id: Option<&str>,
        transaction_timeout: Duration,
    ) -> Result<Self, StreamsError> {
        let deliveries = Arc::new(Deliveries::default());
        let config = producer_config(client, transactional_id, transaction_timeout);
        let producer = ServedProducer::new(
            &config,
            CollectorContext {
                deliveries: deliveries.clone(),
            },
        )
        .map_err(kafka)?;
        let timeout = Duration::from_secs(60);
        if transactional_id.is_some() {
            producer.init_transactions(timeout).map_err(kafka)?;
        }
        Ok(RecordCollector {
            producer,
            deliveries,
            transactional: transactional_id.is_some(),
            in_transaction: false,
            timeout,
        })
    }

    pub(crate) fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Starts a transaction unless one is open (exactly-once only).
    pub(crate) fn ensure_transaction(&mut self) -> Result<(), TxnError> {
        if self.transactional && !self.in_transaction {
            self.producer.begin_transaction().map_err(TxnError::from)?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Hands one record to the producer, waiting while its queue is full.
    pub(crate) fn send(&mut self, record: &ProducerRecord) -> Result<(), SendError> {
        self.ensure_transaction()
            .map_err(|e| SendError::Producer(StreamsError::Kafka(e.to_string())))?;
        let mut headers = None;
        if !record.headers.is_empty() {
            let mut h = OwnedHeaders::new_with_capacity(record.headers.len());
            for header in record.headers.iter() {
                h = h.insert(Header {
                    key: &header.key,
                    value: header.value.as_deref(),
                });
            }
            headers = Some(h);
        }
        let opaque = if record.topic.ends_with("-changelog") {
            CHANGELOG
        } else {
            0
        };
        let mut base: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&record.topic, opaque).timestamp(record.timestamp);
        if let Some(h) = headers {
            base = base.headers(h);
        }
        if let Some(k) = &record.key {
            base = base.key(k.as_slice());
        }
        if let Some(v) = &record.value {
            base = base.payload(v.as_slice());
        }
        if let Some(p) = record.partition {
            base = base.partition(p);
        }
        loop {
            match self.producer.send(base) {
                Ok(()) => return Ok(()),
                Err((e, returned))
                    if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                {
                    // Delivery reports free the queue; they are served on another thread.
                    std::thread::sleep(Duration::from_millis(1));
                    base = returned;
                }
                Err((e, _)) => {
                    return Err(match e.rdkafka_error_code() {
                        Some(
                            RDKafkaErrorCode::MessageSizeTooLarge
                            | RDKafkaErrorCode::UnknownPartition
                            | RDKafkaErrorCode::UnknownTopic
                            | RDKafkaErrorCode::InvalidRecord,
                        ) => SendError::Rejected(format!("producing to `{}`: {e}", record.topic)),
                        _ => SendError::Producer(kafka(format!(
                            "producing to `{}`: {e}",
                            record.topic
                        ))),
                    })
                }
            }
        }
    }

    /// Waits until every record sent so far is acknowledged or failed.
    pub(crate) fn flush(&self) -> Result<(), StreamsError> {
        self.producer.flush(self.timeout).map_err(kafka)
    }

    /// The records the broker refused since the last call.
    pub(crate) fn take_failures(&self) -> Vec<DeliveryFailure> {
        std::mem::take(
            &mut *self
                .deliveries
                .failures
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// The next offset after the last acknowledged record of a changelog partition.
    pub(crate) fn changelog_end(&self, topic: &str, partition: i32) -> Option<i64> {
        self.deliveries
            .changelog_offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .and_then(|p| p.get(&partition))
            .map(|o| o + 1)
    }

    /// Records acknowledged so far.
    pub(crate) fn acknowledged(&self) -> u64 {
        self.deliveries.acknowledged.load(Ordering::Relaxed)
    }

    /// Commits the open transaction with the consumer offsets of what it processed.
    pub(crate) fn commit_transaction(
        &mut self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), TxnError> {
        if offsets.count() > 0 {
            self.ensure_transaction()?;
        }
        if !self.in_transaction {
            return Ok(());
        }
        if offsets.count() > 0 {
            retrying(|| {
                self.producer
                    .send_offsets_to_transaction(offsets, group, self.timeout)
            })?;
        }
        retrying(|| self.producer.commit_transaction(self.timeout))?;
        self.in_transaction = false;
        Ok(())
    }

    /// Aborts the open transaction, if any: none of its records become visible to
    /// `read_committed` readers, and its offsets are not committed.
    pub(crate) fn abort_transaction(&mut self) -> Result<(), TxnError> {
        if !self.in_transaction {
            return Ok(());
        }
        self.in_transaction = false;
        retrying(|| self.producer.abort_transaction(self.timeout))?;
        // Reports of aborted records are not failures of records that will be reprocessed.
        self.take_failures();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_overrides_replace_the_producer_defaults_but_not_the_required_settings() {
        let timeout = Duration::from_secs(10);
        let plain = producer_config(&ClientConfig::new(), None, timeout);
        assert_eq!(plain.get("linger.ms"), Some("100"));
        assert_eq!(plain.get("compression.type"), Some("lz4"));
        assert_eq!(plain.get("transactional.id"), None);

        let mut client = ClientConfig::new();
        client
            .set("linger.ms", "5")
            .set("compression.type", "zstd")
            .set("enable.idempotence", "false")
            .set("acks", "1");
        let overridden = producer_config(&client, Some("app-1"), timeout);
        assert_eq!(overridden.get("linger.ms"), Some("5"));
        assert_eq!(overridden.get("compression.type"), Some("zstd"));
        assert_eq!(overridden.get("enable.idempotence"), Some("true"));
        assert_eq!(overridden.get("acks"), Some("all"));
        assert_eq!(overridden.get("transactional.id"), Some("app-1"));
        assert_eq!(overridden.get("transaction.timeout.ms"), Some("10000"));

        // librdkafka's other names for the same settings count as overrides too.
        let mut aliased = ClientConfig::new();
        aliased
            .set("queue.buffering.max.ms", "20")
            .set("compression.codec", "none");
        let aliased = producer_config(&aliased, None, timeout);
        assert_eq!(aliased.get("linger.ms"), None);
        assert_eq!(aliased.get("compression.type"), None);
        assert_eq!(aliased.get("queue.buffering.max.ms"), Some("20"));
    }
}
