//! The payment service: takes `PaymentRequested` from `payment-events` (group
//! `payment-service`) and charges a simulated gateway.
//!
//! * The gateway ([`Gateway`]) has a configurable latency and failure rate (failures are
//!   "gateway unavailable", which may pass on a retry) and declines test cards: customers
//!   whose id starts with `declined-`.
//! * Each request is tried up to [`MAX_ATTEMPTS`] times with exponential backoff; a
//!   [`CircuitBreaker`] opens after repeated consecutive failures and makes the service wait
//!   out the cool-down instead of hammering a gateway that is down.
//! * Orders flagged by fraud detection are not charged until an admin decides
//!   ([`payment_holds`](super::payment_holds)); a request waits until it is a moment old
//!   (`with_screening`) so the fraud score is in before it is charged.
//! * Authorized: `PaymentAuthorized`. Declined: `PaymentFailed` (the order is cancelled) and
//!   the request to `payment-events-dlq`. Still unavailable after every attempt: the request to
//!   `payment-events-dlq` only, the order waits; `shop dlq-replay` moves such requests back
//!   to `payment-events` once the gateway is healthy. Dead-lettered requests keep their key
//!   and value and get `dlq.*` headers with the reason.

use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Message};

use super::payment_holds::Decision;
use crate::app::Service;
use crate::consumer::{HandleError, Handler, Incoming, Tx};
use crate::db::{first_time, first_times, Database};
use crate::events::{topics, Envelope, PaymentEvent};
use crate::outbox::{self, OutboxRelay};
use crate::producer::Producer;

/// The consumer group (and dedup name) of the service.
pub const GROUP: &str = "payment-service";

/// Attempts per payment request while the gateway is unavailable (50 ms before the second,
/// doubling: 750 ms in all); at the default 2% failure rate one request in 300 million is
/// dead-lettered as unavailable.
pub const MAX_ATTEMPTS: u32 = 5;

/// Settings of the simulated gateway.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Fraction of calls that fail with "gateway unavailable", 0.0..=1.0.
    pub failure_rate: f64,
    /// Latency of one call.
    pub latency: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            failure_rate: 0.02,
            latency: Duration::from_millis(5),
        }
    }
}

/// What the gateway answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// Money taken.
    Authorized,
    /// The card was refused; retrying will not help.
    Declined(String),
    /// The gateway could not be reached; a retry may work.
    Unavailable(String),
}

/// A simulated payment gateway.
#[derive(Debug)]
pub struct Gateway {
    config: Mutex<GatewayConfig>,
    rng: Mutex<StdRng>,
}

impl Gateway {
    /// A gateway with `config`.
    pub fn new(config: GatewayConfig) -> Self {
        Gateway {
            config: Mutex::new(config),
            // Seeded: a run's failures are reproducible.
            rng: Mutex::new(StdRng::seed_from_u64(0x2545_f491_4f6c_dd1d)),
        }
    }

    /// Changes the failure rate and latency at run time (chaos scenarios).
    pub fn reconfigure(&self, config: GatewayConfig) {
        *self.config.lock().expect("gateway config") = config;
    }

    fn roll(&self) -> f64 {
        self.rng.lock().expect("gateway rng").random()
    }

    /// Charges `customer_id`.
    pub async fn charge(&self, customer_id: &str) -> Charge {
        let config = self.config.lock().expect("gateway config").clone();
        tokio::time::sleep(config.latency).await;
        if self.roll() < config.failure_rate {
            return Charge::Unavailable("gateway unavailable (simulated)".into());
        }
        if customer_id.starts_with("declined-") {
            return Charge::Declined("card declined (test card)".into());
        }
        Charge::Authorized
    }
}

/// Opens after `threshold` consecutive failures; while open, callers wait out `cool_down`
/// before one trial call (half-open) decides whether it closes again.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cool_down: Duration,
    state: Mutex<(u32, Option<Instant>)>,
}

impl CircuitBreaker {
    /// A breaker opening after `threshold` failures for `cool_down`.
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        CircuitBreaker {
            threshold,
            cool_down,
            state: Mutex::new((0, None)),
        }
    }

    /// How long to wait before calling (zero when closed or the cool-down is over).
    pub fn wait_time(&self) -> Duration {
        let state = self.state.lock().expect("breaker");
        match state.1 {
            Some(opened) => self.cool_down.saturating_sub(opened.elapsed()),
            None => Duration::ZERO,
        }
    }

    /// Whether the breaker is open now.
    pub fn is_open(&self) -> bool {
        !self.wait_time().is_zero()
    }

    /// Records a call's outcome.
    pub fn record(&self, success: bool) {
        let mut state = self.state.lock().expect("breaker");
        if success {
            *state = (0, None);
        } else {
            state.0 += 1;
            if state.0 >= self.threshold {
                if state.1.is_none() {
                    tracing::warn!("payment gateway circuit opened after {} failures", state.0);
                }
                state.1 = Some(Instant::now());
            }
        }
    }
}

/// The payment service's state.
#[derive(Clone)]
pub struct PaymentService {
    db: Database,
    relay: OutboxRelay,
    gateway: Arc<Gateway>,
    breaker: Arc<CircuitBreaker>,
    screening: Duration,
}

impl PaymentService {
    /// The service over `db` charging `gateway`.
    pub fn new(db: Database, relay: OutboxRelay, gateway: Arc<Gateway>) -> Self {
        PaymentService {
            db,
            relay,
            gateway,
            breaker: Arc::new(CircuitBreaker::new(5, Duration::from_secs(2))),
            screening: Duration::ZERO,
        }
    }

    /// Charges a request only once it is `screening` old, so that fraud detection (which
    /// scores the order when it is created, in parallel with the reservation) has had time
    /// to flag it. The requests of a poll wait together, so this adds latency, not a lower
    /// rate.
    pub fn with_screening(mut self, screening: Duration) -> Self {
        self.screening = screening;
        self
    }

    /// The gateway (to reconfigure it).
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Charges `customer_id`, up to [`MAX_ATTEMPTS`] times while the gateway is unavailable,
    /// waiting while the circuit breaker is open; the last answer and the attempts made.
    async fn charge(&self, customer_id: &str) -> (Charge, u32) {
        let mut attempts = 0;
        let mut backoff = Duration::from_millis(50);
        loop {
            let wait = self.breaker.wait_time();
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            attempts += 1;
            let charge = self.gateway.charge(customer_id).await;
            self.breaker
                .record(!matches!(charge, Charge::Unavailable(_)));
            match charge {
                Charge::Unavailable(_) if attempts < MAX_ATTEMPTS => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                other => return (other, attempts),
            }
        }
    }

    /// Everything about a request that is not a database change: its screening wait,
    /// whether it was decided before (a redelivery) or its order is held, and the charge.
    /// Runs for a whole batch of requests at once, so their waits overlap.
    async fn prepare_request(&self, record: &Incoming) -> Result<Preparation, HandleError> {
        let envelope = Envelope::<PaymentEvent>::from_bytes(&record.payload)?;
        let PaymentEvent::PaymentRequested {
            order_id,
            customer_id,
            ..
        } = &envelope.event
        else {
            return Ok(Preparation::Skip);
        };
        let age = (chrono::Utc::now() - envelope.occurred_at)
            .to_std()
            .unwrap_or_default();
        if age < self.screening {
            tokio::time::sleep(self.screening - age).await;
        }
        let decided = sqlx::query(
            "SELECT 1 AS one FROM processed_events WHERE consumer = $1 AND event_id = $2",
        )
        .bind(GROUP)
        .bind(envelope.event_id.to_string())
        .fetch_optional(self.db.reader())
        .await?
        .is_some();
        if decided {
            return Ok(Preparation::Skip);
        }
        let hold = super::payment_holds::hold_status(self.db.reader(), order_id).await?;
        if super::payment_holds::stops_charge(hold.as_deref()) {
            return Ok(Preparation::Held);
        }
        let (outcome, attempts) = self.charge(customer_id).await;
        Ok(Preparation::Charged { outcome, attempts })
    }

    /// Records what became of a request, in `tx`.
    async fn apply_request(
        &self,
        tx: &mut Tx<'_>,
        record: &Incoming,
        prepared: Preparation,
    ) -> Result<(), HandleError> {
        if let Preparation::Skip = prepared {
            return Ok(());
        }
        let envelope = Envelope::<PaymentEvent>::from_bytes(&record.payload)?;
        let PaymentEvent::PaymentRequested {
            order_id,
            customer_id,
            amount,
            ..
        } = &envelope.event
        else {
            return Ok(());
        };
        let event_id = envelope.event_id.to_string();
        let (outcome, attempts) = match prepared {
            Preparation::Skip => return Ok(()),
            Preparation::Charged { outcome, attempts } => (outcome, attempts),
            Preparation::Held => {
                // Flagged by fraud detection: parked, or failed when an admin rejected it.
                let request = String::from_utf8_lossy(&record.payload);
                match super::payment_holds::decide(tx, order_id, &request).await? {
                    Decision::Held => {
                        if first_time(tx, GROUP, &event_id).await? {
                            record_payment(tx, order_id, customer_id, amount, "HELD", 0).await?;
                        }
                        return Ok(());
                    }
                    Decision::Rejected => {
                        if first_time(tx, GROUP, &event_id).await? {
                            let event = Envelope::new(PaymentEvent::PaymentFailed {
                                order_id: order_id.clone(),
                                customer_id: customer_id.clone(),
                                reason: "rejected after fraud review".into(),
                                attempts: 0,
                            });
                            publish(tx, order_id, &event).await?;
                            record_payment(tx, order_id, customer_id, amount, "REJECTED", 0)
                                .await?;
                        }
                        return Ok(());
                    }
                    // Released by an admin since it was prepared (rare): charged now.
                    Decision::Charge => self.charge(customer_id).await,
                }
            }
        };
        match &outcome {
            Charge::Authorized => {
                if !first_time(tx, GROUP, &event_id).await? {
                    return Ok(());
                }
                let event = Envelope::new(PaymentEvent::PaymentAuthorized {
                    order_id: order_id.clone(),
                    customer_id: customer_id.clone(),
                    amount: *amount,
                    attempts,
                });
                publish(tx, order_id, &event).await?;
                record_payment(tx, order_id, customer_id, amount, "AUTHORIZED", attempts).await?;
            }
            Charge::Declined(reason) => {
                if !first_time(tx, GROUP, &event_id).await? {
                    return Ok(());
                }
                let event = Envelope::new(PaymentEvent::PaymentFailed {
                    order_id: order_id.clone(),
                    customer_id: customer_id.clone(),
                    reason: reason.clone(),
                    attempts,
                });
                publish(tx, order_id, &event).await?;
                dead_letter(tx, order_id, &envelope, "declined", reason, attempts).await?;
                record_payment(tx, order_id, customer_id, amount, "DECLINED", attempts).await?;
            }
            Charge::Unavailable(reason) => {
                // Not marked processed: a replay of this request must be charged again.
                dead_letter(tx, order_id, &envelope, "unavailable", reason, attempts).await?;
            }
        }
        Ok(())
    }
}

/// Records the payment service's decision on an order (`payments`, one row per order).
/// Adds one of this service's `payment-events` records to the outbox, inside `tx`.
async fn publish(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    order_id: &str,
    event: &Envelope<PaymentEvent>,
) -> sqlx::Result<()> {
    outbox::enqueue(tx, Service::Payment, topics::PAYMENTS, order_id, event).await
}

async fn record_payment(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    order_id: &str,
    customer_id: &str,
    amount: &rust_decimal::Decimal,
    status: &str,
    attempts: u32,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO payments (order_id, customer_id, amount, status, attempts, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO UPDATE SET \
         status = excluded.status, attempts = excluded.attempts, updated_at = excluded.updated_at",
    )
    .bind(order_id)
    .bind(customer_id)
    .bind(amount.to_string())
    .bind(status)
    .bind(i64::from(attempts))
    .bind(chrono::Utc::now().timestamp_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn dead_letter(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    order_id: &str,
    request: &Envelope<PaymentEvent>,
    kind: &str,
    reason: &str,
    attempts: u32,
) -> sqlx::Result<()> {
    let row = dead_letter_row(order_id, request, kind, reason, attempts);
    outbox::enqueue_rows(tx, Service::Payment, &[row]).await
}

/// `request`'s copy to `payment-events-dlq`, with the reason in its headers.
fn dead_letter_row(
    order_id: &str,
    request: &Envelope<PaymentEvent>,
    kind: &str,
    reason: &str,
    attempts: u32,
) -> outbox::Pending {
    let headers = vec![
        ("dlq.source.topic".to_owned(), topics::PAYMENTS.to_owned()),
        ("dlq.error.kind".to_owned(), kind.to_owned()),
        ("dlq.error.message".to_owned(), reason.to_owned()),
        ("dlq.attempts".to_owned(), attempts.to_string()),
    ];
    outbox::Pending::with_headers(topics::PAYMENTS_DLQ, order_id, request, &headers)
}

/// Moves every request in `payment-events-dlq` that was dead-lettered because the gateway was
/// unavailable back to `payment-events` (declined ones stay: a retry cannot help). Reads
/// until the end of the topic as of the call; committed offsets (group
/// `payment-dlq-replay`) make a second run move only what arrived since. Returns how many
/// records were moved.
pub async fn replay_dead_letters(client: &ClientConfig) -> Result<usize, String> {
    let consumer: StreamConsumer = client
        .clone()
        .set("group.id", "payment-dlq-replay")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|e| e.to_string())?;
    let producer = Producer::new(client.clone().set("enable.idempotence", "true"))
        .map_err(|e| e.to_string())?;
    let (low, high) = consumer
        .fetch_watermarks(topics::PAYMENTS_DLQ, 0, Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    // Where an earlier replay stopped: nothing to read when it got to the end.
    let mut partition = rdkafka::TopicPartitionList::new();
    partition.add_partition(topics::PAYMENTS_DLQ, 0);
    let committed = consumer
        .committed_offsets(partition, Duration::from_secs(10))
        .map_err(|e| e.to_string())?
        .elements()
        .first()
        .and_then(|e| match e.offset() {
            rdkafka::Offset::Offset(n) => Some(n),
            _ => None,
        })
        .unwrap_or(low);
    if high <= low.max(committed) {
        return Ok(0);
    }
    consumer
        .subscribe(&[topics::PAYMENTS_DLQ])
        .map_err(|e| e.to_string())?;
    let mut moved = 0;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .map_err(|_| "timed out reading the dead-letter topic".to_owned())?
            .map_err(|e| e.to_string())?;
        let kind = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == "dlq.error.kind")
                .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
        });
        if kind.as_deref() == Some("unavailable") {
            let mut record = FutureRecord::<[u8], [u8]>::to(topics::PAYMENTS).headers(
                OwnedHeaders::new().insert(Header {
                    key: "dlq.replayed",
                    value: Some("true"),
                }),
            );
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e.to_string())?;
            moved += 1;
        }
        consumer
            .commit_message(&message, CommitMode::Sync)
            .map_err(|e| e.to_string())?;
        if message.offset() + 1 >= high {
            return Ok(moved);
        }
    }
}

/// What preparing a payment request found out, for the transaction that records it.
#[derive(Debug, Clone)]
pub enum Preparation {
    /// Not a request, or decided before (a redelivery): nothing to do.
    Skip,
    /// Its order is flagged by fraud detection: parked or failed, decided in the transaction.
    Held,
    /// Charged: the gateway's last answer after `attempts` tries.
    Charged {
        /// The answer.
        outcome: Charge,
        /// Tries made.
        attempts: u32,
    },
}

impl Handler for PaymentService {
    const RECORDS_PER_TRANSACTION: usize = 200;

    type Prepared = Preparation;

    async fn prepare(&self, record: &Incoming) -> Result<Preparation, HandleError> {
        self.prepare_request(record).await
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        record: &Incoming,
        prepared: Preparation,
    ) -> Result<(), HandleError> {
        self.apply_request(tx, record, prepared).await
    }

    /// Applies a chunk: requests charged in preparation (the common case) are recorded
    /// with four statements for the whole chunk (the dedup rows, the outbox, the payments);
    /// a chunk with a held order goes record by record, since a hold's decision reads and
    /// writes its row.
    async fn apply_all(
        &self,
        tx: &mut Tx<'_>,
        records: &[(&Incoming, Preparation)],
    ) -> Result<(), HandleError> {
        if records
            .iter()
            .any(|(_, prepared)| matches!(prepared, Preparation::Held))
        {
            for (record, prepared) in records {
                self.apply_request(tx, record, prepared.clone()).await?;
            }
            return Ok(());
        }
        record_charges(tx, records).await
    }

    fn committed(&self) {
        self.relay.notify();
    }
}

/// Records the charges of a chunk of prepared requests (none of them held), in order.
async fn record_charges(
    tx: &mut Tx<'_>,
    records: &[(&Incoming, Preparation)],
) -> Result<(), HandleError> {
    let mut charged = Vec::new();
    for (record, prepared) in records {
        let Preparation::Charged { outcome, attempts } = prepared else {
            continue;
        };
        let envelope = Envelope::<PaymentEvent>::from_bytes(&record.payload)?;
        if matches!(envelope.event, PaymentEvent::PaymentRequested { .. }) {
            charged.push((envelope, outcome, *attempts));
        }
    }
    // Decisions are recorded once; an unavailable gateway decides nothing (a replay of the
    // request must be charged again).
    let decided: Vec<String> = charged
        .iter()
        .filter(|(_, outcome, _)| !matches!(outcome, Charge::Unavailable(_)))
        .map(|(envelope, _, _)| envelope.event_id.to_string())
        .collect();
    let ids: Vec<&str> = decided.iter().map(String::as_str).collect();
    let mut new = first_times(tx, GROUP, &ids).await?;
    let mut outbox_rows = Vec::new();
    let mut payments: Vec<PaymentRow> = Vec::new();
    for (envelope, outcome, attempts) in &charged {
        let PaymentEvent::PaymentRequested {
            order_id,
            customer_id,
            amount,
            ..
        } = &envelope.event
        else {
            continue;
        };
        // Taken on first use: a request twice in one chunk is decided once.
        let first = new.remove(&envelope.event_id.to_string());
        let (event, status) = match outcome {
            Charge::Authorized if first => (
                PaymentEvent::PaymentAuthorized {
                    order_id: order_id.clone(),
                    customer_id: customer_id.clone(),
                    amount: *amount,
                    attempts: *attempts,
                },
                "AUTHORIZED",
            ),
            Charge::Declined(reason) if first => {
                let failed = PaymentEvent::PaymentFailed {
                    order_id: order_id.clone(),
                    customer_id: customer_id.clone(),
                    reason: reason.clone(),
                    attempts: *attempts,
                };
                outbox_rows.push(outbox::Pending::new(
                    topics::PAYMENTS,
                    order_id,
                    &Envelope::new(failed),
                ));
                outbox_rows.push(dead_letter_row(
                    order_id, envelope, "declined", reason, *attempts,
                ));
                payments.retain(|p| p.order_id != *order_id);
                payments.push(PaymentRow::new(
                    order_id,
                    customer_id,
                    amount,
                    "DECLINED",
                    *attempts,
                ));
                continue;
            }
            Charge::Unavailable(reason) => {
                outbox_rows.push(dead_letter_row(
                    order_id,
                    envelope,
                    "unavailable",
                    reason,
                    *attempts,
                ));
                continue;
            }
            // Decided before (a redelivery).
            _ => continue,
        };
        outbox_rows.push(outbox::Pending::new(
            topics::PAYMENTS,
            order_id,
            &Envelope::new(event),
        ));
        // One row per order: the last decision of the chunk.
        payments.retain(|p| p.order_id != *order_id);
        payments.push(PaymentRow::new(
            order_id,
            customer_id,
            amount,
            status,
            *attempts,
        ));
    }
    outbox::enqueue_rows(tx, Service::Payment, &outbox_rows).await?;
    let now = chrono::Utc::now().timestamp_millis();
    crate::db::insert_rows(
        tx,
        "INSERT INTO payments (order_id, customer_id, amount, status, attempts, updated_at)",
        " ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, attempts = excluded.attempts, updated_at = excluded.updated_at",
        6,
        &payments,
        |q, row| q.bind(&row.order_id).bind(&row.customer_id).bind(&row.amount).bind(row.status).bind(i64::from(row.attempts)).bind(now),
    )
    .await?;
    Ok(())
}

/// A row of `payments` to write.
struct PaymentRow {
    order_id: String,
    customer_id: String,
    amount: String,
    status: &'static str,
    attempts: u32,
}

impl PaymentRow {
    fn new(
        order_id: &str,
        customer_id: &str,
        amount: &rust_decimal::Decimal,
        status: &'static str,
        attempts: u32,
    ) -> Self {
        PaymentRow {
            order_id: order_id.to_owned(),
            customer_id: customer_id.to_owned(),
            amount: amount.to_string(),
            status,
            attempts,
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;

    /// A chunk of charged requests: authorized, declined (failed and dead-lettered),
    /// unavailable (dead-lettered only, nothing decided), and the authorized one again (a
    /// redelivery: nothing more). One payments row per decided order, the outbox in order.
    #[tokio::test]
    async fn a_chunk_of_charges_is_recorded_once_in_order() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        let request = |order: &str| {
            Envelope::new(PaymentEvent::PaymentRequested {
                order_id: order.into(),
                customer_id: "c-1".into(),
                amount: rust_decimal::Decimal::TEN,
                currency: "EUR".into(),
            })
        };
        let record = |event: &Envelope<PaymentEvent>| Incoming {
            topic: topics::PAYMENTS.into(),
            payload: event.to_bytes(),
            ..Incoming::default()
        };
        let charged = |outcome: Charge| Preparation::Charged {
            outcome,
            attempts: 2,
        };
        let (a, b, c) = (request("o-a"), request("o-b"), request("o-c"));
        let records = [record(&a), record(&b), record(&c), record(&a)];
        let chunk = [
            (&records[0], charged(Charge::Authorized)),
            (
                &records[1],
                charged(Charge::Declined("card refused".into())),
            ),
            (&records[2], charged(Charge::Unavailable("timeout".into()))),
            (&records[3], charged(Charge::Authorized)),
        ];
        let mut tx = db.pool().begin().await.unwrap();
        record_charges(&mut tx, &chunk).await.unwrap();
        tx.commit().await.unwrap();

        let outbox: Vec<(String, String, Option<String>)> =
            sqlx::query("SELECT topic, payload, headers FROM outbox ORDER BY rowid")
                .fetch_all(db.pool())
                .await
                .unwrap()
                .iter()
                .map(|row| {
                    let payload: serde_json::Value =
                        serde_json::from_str(&row.get::<String, _>("payload")).unwrap();
                    let kind = format!("{} {}", payload["type"], payload["order_id"]);
                    (row.get("topic"), kind.replace('"', ""), row.get("headers"))
                })
                .collect();
        let kinds: Vec<(&str, &str)> = outbox
            .iter()
            .map(|(topic, kind, _)| (topic.as_str(), kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (topics::PAYMENTS, "PaymentAuthorized o-a"),
                (topics::PAYMENTS, "PaymentFailed o-b"),
                (topics::PAYMENTS_DLQ, "PaymentRequested o-b"),
                (topics::PAYMENTS_DLQ, "PaymentRequested o-c"),
            ]
        );
        let headers = outbox[3].2.as_deref().unwrap();
        assert!(
            headers.contains("unavailable") && headers.contains("timeout"),
            "{headers}"
        );
        let payments: Vec<(String, String, i64)> =
            sqlx::query("SELECT order_id, status, attempts FROM payments ORDER BY order_id")
                .fetch_all(db.pool())
                .await
                .unwrap()
                .iter()
                .map(|row| (row.get("order_id"), row.get("status"), row.get("attempts")))
                .collect();
        assert_eq!(
            payments,
            [
                ("o-a".into(), "AUTHORIZED".into(), 2),
                ("o-b".into(), "DECLINED".into(), 2)
            ]
        );
    }

    #[test]
    fn the_breaker_opens_after_the_threshold_and_closes_on_success() {
        let breaker = CircuitBreaker::new(3, Duration::from_millis(200));
        breaker.record(false);
        breaker.record(false);
        assert!(!breaker.is_open());
        breaker.record(false);
        assert!(breaker.is_open());
        assert!(breaker.wait_time() <= Duration::from_millis(200));
        std::thread::sleep(Duration::from_millis(220));
        assert!(!breaker.is_open(), "half-open after the cool-down");
        breaker.record(true);
        breaker.record(false);
        assert!(!breaker.is_open(), "a success resets the count");
    }

    #[tokio::test]
    async fn the_gateway_declines_test_cards_and_fails_at_its_rate() {
        let gateway = Gateway::new(GatewayConfig {
            failure_rate: 0.0,
            latency: Duration::ZERO,
        });
        assert_eq!(gateway.charge("c-1").await, Charge::Authorized);
        assert!(matches!(
            gateway.charge("declined-1").await,
            Charge::Declined(_)
        ));
        gateway.reconfigure(GatewayConfig {
            failure_rate: 0.5,
            latency: Duration::ZERO,
        });
        let mut unavailable = 0;
        for _ in 0..1000 {
            if matches!(gateway.charge("c-1").await, Charge::Unavailable(_)) {
                unavailable += 1;
            }
        }
        assert!((350..650).contains(&unavailable), "{unavailable}");
    }
}
