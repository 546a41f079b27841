//! The transactional outbox: events are written to the `outbox` table in the same database
//! transaction as the change they describe, and [`OutboxRelay`] publishes them to Kafka.
//!
//! A service therefore never commits a change without its event, nor publishes an event for
//! a change that rolled back. The relay deletes a row only after the broker acknowledged its
//! record, so a crash in between publishes it again: delivery is at-least-once, and consumers
//! deduplicate on the event id every envelope carries.
//!
//! Each row names the service that wrote it, and each process's relay publishes only the
//! rows of the services it runs (so a service's Kafka credentials, and its topic ACLs, are
//! all its relay needs). Per service, one relay publishes at a time: the holder of that
//! service's `outbox_relay` lease row, renewed before each batch and taken over by another
//! process once it has not been renewed for [`LEASE`]. Without it, a service scaled out with
//! `--role` over one database would publish each row once per process — consumers that
//! deduplicate would not notice, but the streams apps (which count orders and revenue) would
//! count twice. One publisher per service also keeps its rows in insertion order. A process
//! that stops cleanly gives its leases up ([`OutboxRelay::release`]); a restarted process
//! with the same identity (host and data directory) takes its own leases back at once.
//!
//! A relay publishes up to 1,000 rows at a time and deletes them once the broker has
//! acknowledged them. On SQLite it reads and publishes the next batch while the last one is
//! deleted (the rows after it in rowid order, which the one writer hands out in commit
//! order), so the relay does not wait for the writer between batches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use sqlx::{Any, Row, Transaction};
use tokio::sync::Notify;

use crate::app::Service;
use crate::db::{text, Database};
use crate::events::{Envelope, Event};
use crate::producer::Producer;

/// Adds `event` for `topic` under `key` to the outbox, inside `tx`, as written by `source`
/// (whose relay publishes it).
pub async fn enqueue<E: Event>(
    tx: &mut Transaction<'_, Any>,
    source: Service,
    topic: &'static str,
    key: &str,
    event: &Envelope<E>,
) -> sqlx::Result<()> {
    enqueue_with_headers(tx, source, topic, key, event, &[]).await
}

/// An event to enqueue with [`enqueue_rows`].
#[derive(Debug, Clone)]
pub struct Pending {
    event_id: String,
    topic: &'static str,
    key: String,
    payload: String,
    headers: Option<String>,
}

impl Pending {
    /// `event` for `topic` under `key`.
    pub fn new<E: Event>(topic: &'static str, key: &str, event: &Envelope<E>) -> Pending {
        Pending {
            event_id: event.event_id.to_string(),
            topic,
            key: key.to_owned(),
            payload: String::from_utf8(event.to_bytes()).expect("JSON is UTF-8"),
            headers: None,
        }
    }

    /// A copy of `event` to `topic` (a dead-letter topic, say) with record headers, as
    /// [`enqueue_with_headers`] writes it.
    pub fn with_headers<E: Event>(
        topic: &'static str,
        key: &str,
        event: &Envelope<E>,
        headers: &[(String, String)],
    ) -> Pending {
        let mut pending = Pending::new(topic, key, event);
        if !headers.is_empty() {
            pending.event_id = format!("{}@{topic}", event.event_id);
            pending.headers = Some(serde_json::to_string(headers).expect("serializable"));
        }
        pending
    }
}

/// Adds `rows` to the outbox inside `tx`, in order, as written by `source`: one statement
/// per [`MAX_ROWS_PER_STATEMENT`](crate::db::MAX_ROWS_PER_STATEMENT) rows.
pub async fn enqueue_rows(
    tx: &mut Transaction<'_, Any>,
    source: Service,
    rows: &[Pending],
) -> sqlx::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    crate::db::insert_rows(
        tx,
        "INSERT INTO outbox (event_id, source, topic, record_key, payload, headers, created_at)",
        "",
        7,
        rows,
        |q, row| {
            q.bind(&row.event_id)
                .bind(source.name())
                .bind(row.topic)
                .bind(&row.key)
                .bind(&row.payload)
                .bind(row.headers.clone())
                .bind(now)
        },
    )
    .await?;
    Ok(())
}

/// [`enqueue`] with record headers (the row's id is then the event's id and the topic, so a
/// copy of an event to a dead-letter topic has a row of its own).
pub async fn enqueue_with_headers<E: Event>(
    tx: &mut Transaction<'_, Any>,
    source: Service,
    topic: &'static str,
    key: &str,
    event: &Envelope<E>,
    headers: &[(String, String)],
) -> sqlx::Result<()> {
    enqueue_rows(
        tx,
        source,
        &[Pending::with_headers(topic, key, event, headers)],
    )
    .await
}

/// How often an idle relay looks for rows its services' other processes wrote.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// How long a relay's lease lasts unless renewed; a stand-by relay takes over after it.
pub const LEASE: Duration = Duration::from_secs(15);

/// How often a relay renews its leases, and a stand-by relay tries to take them.
const RENEW: Duration = Duration::from_secs(5);

/// The most rows one batch publishes.
const BATCH: i64 = 1000;

/// What the relay carries from one batch to the next: on SQLite, the batch being cleared
/// while the next is published, and the position after which the next batch's rows are.
#[derive(Default)]
struct Pipeline {
    cursor: Option<i64>,
    clearing: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl Pipeline {
    /// Waits for the clear in flight; a failed one forgets the cursor, so its rows are
    /// published again (consumers drop repeats by event id).
    async fn settle(&mut self) -> Result<(), String> {
        let Some(clearing) = self.clearing.take() else {
            return Ok(());
        };
        let cleared = clearing
            .await
            .map_err(|e| format!("clearing the outbox: {e}"))
            .and_then(|cleared| cleared);
        if cleared.is_err() {
            self.cursor = None;
        }
        cleared
    }
}

/// Publishes the outbox rows of some services, oldest first, for each service while it
/// holds that service's lease.
#[derive(Clone)]
pub struct OutboxRelay {
    db: Database,
    producer: Producer,
    wake: Arc<Notify>,
    holder: Arc<str>,
    sources: Arc<[Service]>,
}

impl OutboxRelay {
    /// A relay from `db` to the cluster `producer` writes to, for the rows of `sources`,
    /// leasing as `holder` (the process's identity: relays of one identity share leases).
    pub fn new(
        db: Database,
        producer: Producer,
        holder: impl Into<String>,
        sources: impl IntoIterator<Item = Service>,
    ) -> Self {
        let mut sources: Vec<Service> = sources.into_iter().collect();
        sources.sort();
        sources.dedup();
        OutboxRelay {
            db,
            producer,
            wake: Arc::new(Notify::new()),
            holder: holder.into().into(),
            sources: sources.into(),
        }
    }

    /// The services whose rows this relay publishes.
    pub fn sources(&self) -> &[Service] {
        &self.sources
    }

    /// Tells the relay there is something new (it also looks every 200 ms).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Publishes until the task is dropped; stands by for the services whose lease another
    /// process holds.
    pub async fn run(self) {
        let mut led: Vec<Service> = Vec::new();
        let mut renewed: Option<Instant> = None;
        let mut pipeline = Pipeline::default();
        loop {
            if renewed.is_none_or(|at| at.elapsed() >= RENEW) {
                match self.acquire().await {
                    Ok(now_led) => {
                        if renewed.is_none() || now_led != led {
                            let standing_by: Vec<&str> = self
                                .sources
                                .iter()
                                .filter(|s| !now_led.contains(s))
                                .map(|s| s.name())
                                .collect();
                            tracing::info!(
                                holder = %self.holder,
                                publishing = ?now_led.iter().map(|s| s.name()).collect::<Vec<_>>(),
                                standing_by = ?standing_by,
                                "outbox relay"
                            );
                        }
                        if now_led != led {
                            // Another set of services: its rows are read from the start.
                            let _ = pipeline.settle().await;
                            pipeline.cursor = None;
                        }
                        led = now_led;
                        renewed = Some(Instant::now());
                    }
                    Err(e) => {
                        tracing::warn!("outbox relay: {e}; retrying");
                        led.clear();
                        renewed = None;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            if led.is_empty() {
                tokio::time::sleep(RENEW).await;
                continue;
            }
            match self.publish_batch(&led, &mut pipeline).await {
                Ok(0) => {
                    // Woken at once by this process's services; rows another process wrote
                    // for a service whose lease this one holds wait up to IDLE_POLL.
                    let _ = tokio::time::timeout(IDLE_POLL, self.wake.notified()).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("outbox relay: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Takes or renews the lease of each of its services; returns those it now holds (the
    /// others' leases are held by another process and have not expired).
    pub async fn acquire(&self) -> Result<Vec<Service>, String> {
        let now = chrono::Utc::now().timestamp_millis();
        let expires = now + LEASE.as_millis() as i64;
        let mut led = Vec::new();
        for source in self.sources.iter() {
            // One statement, so two relays racing for an expired lease cannot both win: the
            // database serializes the upserts of the one row, and the loser's WHERE sees
            // the winner's fresh lease.
            let taken = sqlx::query(
                "INSERT INTO outbox_relay (name, holder, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                     expires_at = excluded.expires_at
                 WHERE outbox_relay.holder = excluded.holder OR outbox_relay.expires_at < $4",
            )
            .bind(source.name())
            .bind(self.holder.as_ref())
            .bind(expires)
            .bind(now)
            .execute(self.db.pool())
            .await
            .map_err(|e| format!("taking the relay lease of {}: {e}", source.name()))?;
            if taken.rows_affected() == 1 {
                led.push(*source);
            }
        }
        Ok(led)
    }

    /// Gives its leases up, so stand-by relays take over at once. Call it after the relay's
    /// task has stopped.
    pub async fn release(&self) -> Result<(), String> {
        sqlx::query("DELETE FROM outbox_relay WHERE holder = $1")
            .bind(self.holder.as_ref())
            .execute(self.db.pool())
            .await
            .map(|_| ())
            .map_err(|e| format!("releasing the relay leases: {e}"))
    }

    /// Publishes up to [`BATCH`] rows of `sources`; returns how many. Does not look at the
    /// leases: [`run`] publishes only the services whose lease it holds.
    ///
    /// [`run`]: OutboxRelay::run
    async fn publish_batch(
        &self,
        sources: &[Service],
        pipeline: &mut Pipeline,
    ) -> Result<usize, String> {
        if sources.is_empty() {
            return Ok(0);
        }
        let rows = self.select(sources, pipeline.cursor).await?;
        if rows.is_empty() && pipeline.cursor.is_some() {
            // Everything after the cursor is out: once the last clear is done, look from
            // the start again (a row may have reused a cleared row's rowid).
            pipeline.settle().await?;
            pipeline.cursor = None;
            return Ok(self.select(sources, None).await?.len().min(1));
        }
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
        // Only the rows before the first failure are cleared: the failed row and every later
        // one stay and are published again (consumers drop repeats by event id), so no row
        // is cleared while an earlier one is still waiting.
        let failure = results.iter().position(Result::is_err);
        let published = failure.unwrap_or(rows.len());
        let ids: Vec<String> = rows[..published]
            .iter()
            .map(|row| text(row, "event_id"))
            .collect();
        if self.db.is_postgres() {
            self.clear(&ids).await?;
        } else if let Some(last) = published.checked_sub(1) {
            // SQLite: the next batch is read and published while this one is cleared. Its
            // rows come after this batch's in rowid order: the one writer assigns rowids in
            // commit order, above every row still there (these are, until cleared).
            pipeline.settle().await?;
            pipeline.cursor = rows[last].try_get::<i64, _>("position").ok();
            let relay = self.clone();
            pipeline.clearing = Some(tokio::spawn(async move { relay.clear(&ids).await }));
        }
        match failure {
            Some(i) => Err(results
                .into_iter()
                .nth(i)
                .and_then(Result::err)
                .unwrap_or_default()),
            None => Ok(published),
        }
    }

    /// Up to [`BATCH`] rows of `sources` in insertion order (a PostgreSQL sequence,
    /// SQLite's rowid), after `cursor` when given.
    async fn select(
        &self,
        sources: &[Service],
        cursor: Option<i64>,
    ) -> Result<Vec<sqlx::any::AnyRow>, String> {
        let position = if self.db.is_postgres() {
            "seq"
        } else {
            "rowid"
        };
        let after = match cursor {
            Some(_) => format!(" AND {position} > ${}", sources.len() + 1),
            None => String::new(),
        };
        let statement = format!(
            "SELECT event_id, topic, record_key, payload, headers, created_at, \
             {position} AS position FROM outbox WHERE source IN ({}){after} \
             ORDER BY {position} LIMIT ${}",
            crate::db::list(1, sources.len()),
            sources.len() + 1 + usize::from(cursor.is_some())
        );
        let statement = self.db.sql(&statement);
        let mut query = sqlx::query(&statement);
        for source in sources {
            query = query.bind(source.name());
        }
        if let Some(cursor) = cursor {
            query = query.bind(cursor);
        }
        // Read beside the writer (on SQLite a read-only connection sees every committed
        // row), so the relay does not queue for the one writer to look.
        query
            .bind(BATCH)
            .fetch_all(self.db.reader())
            .await
            .map_err(|e| format!("reading the outbox: {e}"))
    }

    /// Deletes the rows `ids`, in one statement (one transaction, one commit).
    async fn clear(&self, ids: &[String]) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        let statement = format!(
            "DELETE FROM outbox WHERE event_id IN ({})",
            crate::db::list(1, ids.len())
        );
        let statement = self.db.sql(&statement);
        let mut query = sqlx::query(&statement);
        for id in ids {
            query = query.bind(id);
        }
        query
            .execute(self.db.pool())
            .await
            .map(|_| ())
            .map_err(|e| format!("clearing the outbox: {e}"))
    }
}
