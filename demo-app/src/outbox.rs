//! The transactional outbox: events are written to the `outbox` table in the same database
//! transaction as the change they describe, and [`OutboxRelay`] publishes them to Kafka.
//!
//! A service therefore never commits a change without its event, nor publishes an event for
//! a change that rolled back. The relay deletes a row only after the broker acknowledged its
//! record, so a crash in between publishes it again: delivery is at-least-once, and consumers
//! deduplicate on the event id every envelope carries.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::{Any, Row, Transaction};
use tokio::sync::Notify;

use crate::db::{text, Database};
use crate::events::{Envelope, Event};

/// Adds `event` for `topic` under `key` to the outbox, inside `tx`.
pub async fn enqueue<E: Event>(
    tx: &mut Transaction<'_, Any>,
    topic: &str,
    key: &str,
    event: &Envelope<E>,
) -> sqlx::Result<()> {
    enqueue_with_headers(tx, topic, key, event, &[]).await
}

/// [`enqueue`] with record headers.
pub async fn enqueue_with_headers<E: Event>(
    tx: &mut Transaction<'_, Any>,
    topic: &str,
    key: &str,
    event: &Envelope<E>,
    headers: &[(String, String)],
) -> sqlx::Result<()> {
    // The row id: the event's id, or (for a copy of an event to another topic, such as a
    // dead-letter topic) the id and the topic.
    let row_id = if headers.is_empty() {
        event.event_id.to_string()
    } else {
        format!("{}@{topic}", event.event_id)
    };
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, record_key, payload, headers, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(row_id)
    .bind(topic)
    .bind(key)
    .bind(String::from_utf8(event.to_bytes()).expect("JSON is UTF-8"))
    .bind(if headers.is_empty() {
        None
    } else {
        Some(serde_json::to_string(headers).expect("serializable"))
    })
    .bind(chrono::Utc::now().timestamp_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Publishes outbox rows, oldest first.
#[derive(Clone)]
pub struct OutboxRelay {
    db: Database,
    producer: FutureProducer,
    wake: Arc<Notify>,
}

impl OutboxRelay {
    /// A relay from `db` to the cluster `producer` writes to.
    pub fn new(db: Database, producer: FutureProducer) -> Self {
        OutboxRelay {
            db,
            producer,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Tells the relay there is something new (it also looks every 200 ms).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Publishes until the task is dropped.
    pub async fn run(self) {
        loop {
            match self.publish_batch().await {
                Ok(0) => {
                    let _ = tokio::time::timeout(Duration::from_millis(200), self.wake.notified())
                        .await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("outbox relay: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Publishes up to 500 rows; returns how many.
    pub async fn publish_batch(&self) -> Result<usize, String> {
        let rows = sqlx::query(
            "SELECT event_id, topic, record_key, payload, headers, created_at FROM outbox
             ORDER BY created_at, event_id LIMIT 500",
        )
        .fetch_all(self.db.pool())
        .await
        .map_err(|e| format!("reading the outbox: {e}"))?;
        if rows.is_empty() {
            return Ok(0);
        }
        let sends = rows.iter().map(|row| {
            let topic = text(row, "topic");
            let key = text(row, "record_key");
            let payload = text(row, "payload");
            let timestamp = row.try_get::<i64, _>("created_at").unwrap_or_default();
            let headers: Vec<(String, String)> = row
                .try_get::<Option<String>, _>("headers")
                .ok()
                .flatten()
                .and_then(|json| serde_json::from_str(&json).ok())
                .unwrap_or_default();
            let producer = self.producer.clone();
            async move {
                let mut kafka_headers = OwnedHeaders::new();
                for (name, value) in &headers {
                    kafka_headers = kafka_headers.insert(Header {
                        key: name,
                        value: Some(value),
                    });
                }
                producer
                    .send(
                        FutureRecord::to(&topic)
                            .key(&key)
                            .payload(&payload)
                            .headers(kafka_headers)
                            .timestamp(timestamp),
                        Duration::from_secs(30),
                    )
                    .await
                    .map_err(|(e, _)| format!("publishing to {topic}: {e}"))
            }
        });
        let results = futures::future::join_all(sends).await;
        let mut published = 0;
        for (row, result) in rows.iter().zip(results) {
            result?;
            sqlx::query("DELETE FROM outbox WHERE event_id = $1")
                .bind(text(row, "event_id"))
                .execute(self.db.pool())
                .await
                .map_err(|e| format!("clearing the outbox: {e}"))?;
            published += 1;
        }
        Ok(published)
    }
}
