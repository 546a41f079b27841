//! The consumer loop every database-writing service runs: one consumer group per service,
//! records handled in partition order, offsets committed only after their changes are
//! (at-least-once), and records that can never be handled moved to the dead-letter topic
//! `shop-dead-letters` with the reason in their headers, so nothing is lost and the partition
//! keeps moving. Handlers make redelivery harmless by recording the event id in
//! `processed_events` in the same transaction as their change ([`crate::db`]).
//!
//! Work is done per poll, not per record:
//!
//! 1. The loop takes every record the consumer has fetched (up to [`MAX_BATCH`]; one at a
//!    time while chaos degrades the service, see [`crate::chaos`]).
//! 2. [`Handler::prepare`] runs for all of them at once: the waits and calls that are not
//!    database work (a payment gateway, fraud screening) overlap instead of queueing.
//! 3. [`Handler::apply_all`] applies them in order, in one database transaction per
//!    [`Handler::RECORDS_PER_TRANSACTION`] records (one statement for many records where the
//!    handler can).
//!    When a chunk fails, nothing of it is kept and its records are applied one by one, each
//!    in a transaction of its own, so one bad record never holds back its neighbours.
//! 4. The offsets of the batch are committed.
//!
//! Services with nothing to prepare implement [`Writer`] (every `Writer` is a `Handler`);
//! the payment service implements [`Handler`] for its screening wait and gateway call.
//!
//! What a failure does depends on its kind ([`HandleError`]): a record that is not a
//! readable event is dead-lettered at once; one that a constraint or bad data refuses is
//! retried [`MAX_ATTEMPTS`] times, then dead-lettered; a failure that looks transient (the
//! connection, a lock or serialization conflict; see `From<sqlx::Error>`) is retried with
//! backoff [`MAX_TRANSIENT_ATTEMPTS`] times, then dead-lettered if the database answers
//! meanwhile, or waited out if it does not (the partition waits; nothing is dead-lettered
//! because the database is down). Every failed attempt counts in
//! `shop_handle_errors_total{group, kind}`, every dead letter in `shop_dead_lettered_total`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::chaos::{Delivery, Faults};
use crate::db::Database;
use crate::events::EventError;
use crate::metrics::labels;
use crate::producer::Producer;

/// The dead-letter topic of records no service could read.
pub const DEAD_LETTERS: &str = "shop-dead-letters";

/// The most records handled as one batch (one poll's worth).
pub const MAX_BATCH: usize = 2000;

/// The most records applied in one database transaction by a handler that applies them
/// one by one: a batch is split so the connection is never held long (SQLite has one
/// writer, and the APIs share it).
pub const MAX_TRANSACTION: usize = 25;

/// How often a record that the database refuses ([`HandleError::Unprocessable`]) is tried
/// before it is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 5;

/// How often a record whose failure looks transient ([`HandleError::Transient`]) is tried
/// before the loop asks whether the database answers: if it does, the record is
/// dead-lettered (kind `transient`); if not, the partition waits for the database and the
/// count starts again. With the backoff (100 ms doubling to 5 s) that is about 25 s.
pub const MAX_TRANSIENT_ATTEMPTS: u32 = 8;

/// How many records of a batch are prepared at the same time.
const PREPARE_CONCURRENCY: usize = 512;

/// The database transaction records are applied in.
pub type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// How handling a record failed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The record is not a readable event: dead-letter it and move on.
    #[error(transparent)]
    Poison(#[from] EventError),
    /// The record is read but refused (a constraint, data that contradicts the database):
    /// tried again a few times ([`MAX_ATTEMPTS`]), then dead-lettered.
    #[error("{0}")]
    Unprocessable(String),
    /// Something that will work later (the database or broker is unavailable): retry the
    /// same record until it does.
    #[error("{0}")]
    Transient(String),
}

impl From<sqlx::Error> for HandleError {
    /// Sorts a database error by whether trying again can help: the connection, the pool,
    /// I/O, lock and serialization conflicts, resource exhaustion and an operator's
    /// shutdown are [`Transient`](HandleError::Transient); what the database says about the
    /// data or the statement (constraints, invalid values such as a NUL byte in a
    /// PostgreSQL string, conversions, a missing row) is
    /// [`Unprocessable`](HandleError::Unprocessable).
    fn from(e: sqlx::Error) -> Self {
        let transient = match &e {
            sqlx::Error::Database(db) => match db.code() {
                Some(code) => is_transient_code(&code),
                None => true,
            },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Configuration(_) => true,
            _ => false,
        };
        if transient {
            HandleError::Transient(format!("database: {e}"))
        } else {
            HandleError::Unprocessable(format!("database: {e}"))
        }
    }
}

/// Whether a database error code is worth a retry: PostgreSQL's SQLSTATE classes 08
/// (connection), 40 (transaction rollback: serialization failure, deadlock), 53
/// (insufficient resources), 57 (operator intervention), 58 (system error) and 55P03 (lock
/// not available); SQLite's (extended) result codes whose primary code is BUSY, LOCKED,
/// NOMEM, IOERR, FULL, CANTOPEN or PROTOCOL. A SQLSTATE is five characters; SQLite's codes
/// are numbers below 10,000.
fn is_transient_code(code: &str) -> bool {
    if code.len() < 5 {
        let Ok(sqlite) = code.parse::<u32>() else {
            return true;
        };
        // SQLITE_NOMEM 7, BUSY 5, LOCKED 6, IOERR 10, FULL 13, CANTOPEN 14, PROTOCOL 15.
        return matches!(sqlite & 0xff, 5 | 6 | 7 | 10 | 13 | 14 | 15);
    }
    matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58")) || code == "55P03"
}

/// A service that handles the records of its consumer group.
pub trait Handler: Send + Sync + 'static {
    /// The most records applied in one transaction. Handlers that apply a chunk with a
    /// few multi-row statements ([`apply_all`](Handler::apply_all)) take more, since a
    /// bigger chunk costs them no more statements and fewer waits for the connection.
    const RECORDS_PER_TRANSACTION: usize = MAX_TRANSACTION;

    /// What [`prepare`](Handler::prepare) hands to [`apply`](Handler::apply) (`()` for
    /// handlers that only write to the database). Cloned when a transaction is retried.
    type Prepared: Clone + Send + Sync + 'static;

    /// The part of handling a record that is not a database change and may take time
    /// (waiting, calling a gateway). Runs outside any transaction, for every record of a
    /// batch at the same time, before any of them is applied.
    fn prepare(
        &self,
        record: &Incoming,
    ) -> impl Future<Output = Result<Self::Prepared, HandleError>> + Send;

    /// Applies one record in `tx`. Records are applied in partition order.
    fn apply(
        &self,
        tx: &mut Tx<'_>,
        record: &Incoming,
        prepared: Self::Prepared,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// Applies a chunk of records in order in `tx`. The default applies them one by one; a
    /// handler that can write a chunk with fewer statements (multi-row inserts) overrides
    /// it. When it fails, nothing of the chunk is kept and its records go through
    /// [`apply`](Handler::apply) one at a time.
    fn apply_all(
        &self,
        tx: &mut Tx<'_>,
        records: &[(&Incoming, Self::Prepared)],
    ) -> impl Future<Output = Result<(), HandleError>> + Send {
        async move {
            for (record, prepared) in records {
                self.apply(tx, record, prepared.clone()).await?;
            }
            Ok(())
        }
    }

    /// Called after a transaction with applied records committed (to wake the outbox relay).
    fn committed(&self) {}
}

/// A [`Handler`] with nothing to prepare: it only writes records to the database. Every
/// `Writer` is a `Handler`.
pub trait Writer: Send + Sync + 'static {
    /// As [`Handler::RECORDS_PER_TRANSACTION`]: writers that write a chunk with a few
    /// multi-row statements take more.
    const RECORDS_PER_TRANSACTION: usize = MAX_TRANSACTION;

    /// Writes `records` in order in `tx`: a chunk, or a single record when a failed chunk
    /// is retried record by record.
    fn write(
        &self,
        tx: &mut Tx<'_>,
        records: &[&Incoming],
    ) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// As [`Handler::committed`].
    fn committed(&self) {}
}

impl<W: Writer> Handler for W {
    const RECORDS_PER_TRANSACTION: usize = <W as Writer>::RECORDS_PER_TRANSACTION;

    type Prepared = ();

    async fn prepare(&self, _: &Incoming) -> Result<(), HandleError> {
        Ok(())
    }

    async fn apply(&self, tx: &mut Tx<'_>, record: &Incoming, _: ()) -> Result<(), HandleError> {
        self.write(tx, &[record]).await
    }

    async fn apply_all(
        &self,
        tx: &mut Tx<'_>,
        records: &[(&Incoming, ())],
    ) -> Result<(), HandleError> {
        let records: Vec<&Incoming> = records.iter().map(|(record, _)| *record).collect();
        self.write(tx, &records).await
    }

    fn committed(&self) {
        Writer::committed(self);
    }
}

/// A record as handlers see it (owned, so a handler's future borrows nothing).
#[derive(Debug, Clone, Default)]
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
    /// Its headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Incoming {
    fn from_message(message: &BorrowedMessage<'_>) -> Incoming {
        Incoming {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers: message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// Runs `handler` over `topics` in group `group` until the task is dropped.
///
/// `faults` are the chaos faults of the service ([`crate::chaos`]).
pub async fn run<H: Handler>(
    client: ClientConfig,
    group: &str,
    topics: &[&str],
    db: Database,
    dead_letters: Producer,
    faults: Arc<Faults>,
    handler: H,
) {
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
    let batch_handler = Batches {
        db,
        handler,
        group,
        dead_letters,
    };
    let mut committed = Committed::default();
    loop {
        // The first record waits; the rest of the batch is what is already fetched.
        let mut batch = match tokio::time::timeout(IDLE_COMMIT, consumer.recv()).await {
            Ok(Ok(message)) => vec![Incoming::from_message(&message)],
            Ok(Err(e)) => {
                tracing::warn!(group, "consumer error: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(_) => {
                // Idle: the position may still have moved past transaction markers.
                committed.commit(&consumer, group, &[]);
                continue;
            }
        };
        let limit = if faults.is_degraded() { 1 } else { MAX_BATCH };
        while batch.len() < limit {
            match consumer.recv().now_or_never() {
                Some(Ok(message)) => batch.push(Incoming::from_message(&message)),
                Some(Err(e)) => {
                    tracing::warn!(group, "consumer error: {e}");
                    break;
                }
                None => break,
            }
        }
        for _ in &batch {
            while faults.before_record().await == Delivery::Drop {
                // Lost in transit (chaos): as if fetched again after a timeout.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let started = std::time::Instant::now();
        batch_handler.handle(&batch).await;
        tracing::debug!(group, records = batch.len(), elapsed = ?started.elapsed(), "batch handled");
        committed.commit(&consumer, group, &batch);
    }
}

/// How long a consumer waits for a record before it commits a position that moved without
/// one (past transaction markers).
const IDLE_COMMIT: Duration = Duration::from_secs(1);

/// What a consumer loop has committed, by partition.
#[derive(Default)]
struct Committed(BTreeMap<(String, i32), i64>);

impl Committed {
    /// Commits, after `batch` was handled, the consumer's position where it is past what was
    /// committed: every record the consumer handed out is handled by then, and the
    /// position is also past the transaction markers it skipped (a marker follows every
    /// transaction of an exactly-once writer, such as the streams apps; committing only
    /// the offset after the last record would leave the group one marker short of the end,
    /// a lag that never clears on a quiet topic). Without positions, the offsets after the
    /// batch's records.
    fn commit(&mut self, consumer: &StreamConsumer, group: &str, batch: &[Incoming]) {
        let mut next = next_offsets(batch);
        if let Ok(positions) = consumer.position() {
            for e in positions.elements() {
                if let Offset::Offset(n) = e.offset() {
                    let at = next
                        .entry((e.topic().to_owned(), e.partition()))
                        .or_insert(n);
                    *at = (*at).max(n);
                }
            }
        }
        let mut list = TopicPartitionList::new();
        for (at, offset) in next {
            if self.0.get(&at).is_some_and(|c| *c >= offset) {
                continue;
            }
            list.add_partition_offset(&at.0, at.1, Offset::Offset(offset))
                .expect("a valid offset");
            self.0.insert(at, offset);
        }
        if list.count() == 0 {
            return;
        }
        if let Err(e) = consumer.commit(&list, CommitMode::Async) {
            tracing::warn!(group, "commit failed (records may be redelivered): {e}");
        }
    }
}

/// The offsets to commit after `batch`: one past the last record of each partition.
fn next_offsets(batch: &[Incoming]) -> BTreeMap<(String, i32), i64> {
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for record in batch {
        let offset = next
            .entry((record.topic.clone(), record.partition))
            .or_insert(record.offset + 1);
        *offset = (*offset).max(record.offset + 1);
    }
    next
}

/// Why a record is dead-lettered.
struct Rejection {
    kind: &'static str,
    reason: String,
}

/// Handles batches for one consumer group.
struct Batches<'g, H> {
    db: Database,
    handler: H,
    group: &'g str,
    dead_letters: Producer,
}

impl<H: Handler> Batches<'_, H> {
    /// Handles `batch` completely: every record is applied or dead-lettered when this
    /// returns.
    async fn handle(&self, batch: &[Incoming]) {
        let mut prepared = Vec::with_capacity(batch.len());
        for group in batch.chunks(PREPARE_CONCURRENCY) {
            let preparations: Vec<_> = group.iter().map(|r| self.handler.prepare(r)).collect();
            prepared.extend(futures::future::join_all(preparations).await);
        }
        let mut work: Vec<Work<'_, H::Prepared>> = batch.iter().zip(prepared).collect();
        // Runs of prepared records go in chunks; a record whose preparation failed goes
        // alone, in its place, so the partition's order holds.
        let mut start = 0;
        for i in 0..=work.len() {
            if i < work.len() && work[i].1.is_ok() {
                continue;
            }
            for chunk in work[start..i].chunks_mut(H::RECORDS_PER_TRANSACTION) {
                self.apply_chunk(chunk).await;
            }
            if let Some(failed) = work.get_mut(i) {
                let failure = match &failed.1 {
                    Err(e) => Failure::of(e),
                    Ok(_) => unreachable!("only failed preparations end a run"),
                };
                self.apply_alone(failed, failure).await;
            }
            start = i + 1;
        }
    }

    /// Applies `chunk` (every record prepared) in one transaction; when a record fails,
    /// nothing of the chunk is kept and its records are applied one by one instead.
    async fn apply_chunk(&self, chunk: &mut [Work<'_, H::Prepared>]) {
        let mut backoff = Backoff::new();
        loop {
            let records: Vec<(&Incoming, H::Prepared)> = chunk
                .iter()
                .filter_map(|(record, prepared)| Some((*record, prepared.as_ref().ok()?.clone())))
                .collect();
            match self.try_chunk(&records).await {
                Ok(()) => {
                    self.after_commit(chunk);
                    return;
                }
                Err(ChunkError::Record(_)) if chunk.len() > 1 => break,
                Err(ChunkError::Record(failure)) => {
                    self.apply_alone(&mut chunk[0], failure).await;
                    return;
                }
                Err(ChunkError::Transaction(e)) => {
                    // Beginning or committing failed: the database itself; nothing of the
                    // chunk is in it, and the whole chunk is tried again.
                    self.count_error("transient");
                    tracing::warn!(group = self.group, "retrying in {:?}: {e}", backoff.peek());
                    backoff.wait().await;
                }
            }
        }
        for work in chunk.iter_mut() {
            let prepared = work.1.as_ref().ok().cloned().expect("prepared");
            match self.apply_one(work.0, prepared).await {
                Ok(()) => self.after_commit(std::slice::from_ref(work)),
                Err(failure) => self.apply_alone(work, failure).await,
            }
        }
    }

    /// One transaction over `records`.
    async fn try_chunk(&self, records: &[(&Incoming, H::Prepared)]) -> Result<(), ChunkError> {
        let transaction = |e: sqlx::Error| ChunkError::Transaction(e.to_string());
        let mut tx = self.db.pool().begin().await.map_err(transaction)?;
        if let Err(e) = self.handler.apply_all(&mut tx, records).await {
            let _ = tx.rollback().await;
            return Err(ChunkError::Record(Failure::of(&e)));
        }
        tx.commit().await.map_err(transaction)
    }

    /// Handles one record that failed with `failure` in a transaction of its own until it
    /// is applied or rejected: prepared again when preparing failed, retried with backoff.
    async fn apply_alone(&self, work: &mut Work<'_, H::Prepared>, failure: Failure) {
        let record = work.0;
        let mut backoff = Backoff::new();
        let mut refusals = 0;
        let mut transient = 0;
        let mut attempt = Err(failure);
        loop {
            let mut error = String::new();
            let rejection = match attempt {
                Ok(()) => {
                    self.after_commit(std::slice::from_ref(work));
                    return;
                }
                Err(Failure::Poison(reason)) => Some(Rejection {
                    kind: "deserialization",
                    reason,
                }),
                Err(Failure::Unprocessable(e)) => {
                    refusals += 1;
                    self.count_error("unprocessable");
                    let rejection = (refusals >= MAX_ATTEMPTS).then(|| Rejection {
                        kind: "unprocessable",
                        reason: format!("refused {refusals} times: {e}"),
                    });
                    error = e;
                    rejection
                }
                Err(Failure::Transient(e)) => {
                    transient += 1;
                    self.count_error("transient");
                    let rejection = if transient < MAX_TRANSIENT_ATTEMPTS {
                        None
                    } else if self.database_answers().await {
                        // The database works, only this record keeps failing.
                        Some(Rejection {
                            kind: "transient",
                            reason: format!(
                                "failed {transient} times while the database answered: {e}"
                            ),
                        })
                    } else {
                        // An outage: the partition waits for the database, however long.
                        transient = 0;
                        None
                    };
                    error = e;
                    rejection
                }
            };
            if let Some(rejection) = rejection {
                self.dead_letter(record, &rejection).await;
                return;
            }
            tracing::warn!(
                group = self.group,
                topic = record.topic,
                offset = record.offset,
                "retrying a record in {:?}: {error}",
                backoff.peek()
            );
            backoff.wait().await;
            if matches!(
                work.1,
                Err(HandleError::Transient(_) | HandleError::Unprocessable(_))
            ) {
                work.1 = self.handler.prepare(record).await;
            }
            attempt = match &work.1 {
                Ok(prepared) => self.apply_one(record, prepared.clone()).await,
                Err(e) => Err(Failure::of(e)),
            };
        }
    }

    /// Whether the database answers a trivial query within 5 s.
    async fn database_answers(&self) -> bool {
        let ping = sqlx::query("SELECT 1").execute(self.db.pool());
        matches!(
            tokio::time::timeout(Duration::from_secs(5), ping).await,
            Ok(Ok(_))
        )
    }

    async fn apply_one(&self, record: &Incoming, prepared: H::Prepared) -> Result<(), Failure> {
        let attempt = async {
            let mut tx = self.db.pool().begin().await?;
            self.handler.apply(&mut tx, record, prepared).await?;
            tx.commit().await?;
            Ok::<(), HandleError>(())
        };
        attempt.await.map_err(|e| Failure::of(&e))
    }

    /// After a commit of `applied`: the handler's hook and the metrics.
    fn after_commit(&self, applied: &[Work<'_, H::Prepared>]) {
        self.handler.committed();
        let metrics = crate::metrics::global();
        for (record, _) in applied {
            metrics
                .records_handled
                .get_or_create(&labels(&[("group", self.group), ("topic", &record.topic)]))
                .inc();
        }
    }

    fn count_error(&self, kind: &str) {
        let metrics = crate::metrics::global();
        metrics
            .handle_errors
            .get_or_create(&labels(&[("group", self.group), ("kind", kind)]))
            .inc();
        metrics.errors_seen.inc();
    }

    /// Copies `record` to [`DEAD_LETTERS`], retrying until the broker takes it.
    async fn dead_letter(&self, record: &Incoming, rejection: &Rejection) {
        let mut backoff = Backoff::new();
        loop {
            match dead_letter(&self.dead_letters, self.group, record, rejection).await {
                Ok(()) => {
                    crate::metrics::global()
                        .dead_lettered
                        .get_or_create(&labels(&[("group", self.group)]))
                        .inc();
                    return;
                }
                Err(e) => {
                    tracing::warn!(group = self.group, "cannot dead-letter a record: {e}");
                    backoff.wait().await;
                }
            }
        }
    }
}

/// A record and what preparing it gave.
type Work<'r, P> = (&'r Incoming, Result<P, HandleError>);

/// Why a chunk's transaction was not committed.
enum ChunkError {
    /// A record failed (which one is not known: handlers may write a chunk at once).
    Record(Failure),
    /// Beginning or committing the transaction failed.
    Transaction(String),
}

/// A [`HandleError`] as text, kept across attempts.
enum Failure {
    Poison(String),
    Unprocessable(String),
    Transient(String),
}

impl Failure {
    fn of(e: &HandleError) -> Failure {
        match e {
            HandleError::Poison(e) => Failure::Poison(e.to_string()),
            HandleError::Unprocessable(e) => Failure::Unprocessable(e.clone()),
            HandleError::Transient(e) => Failure::Transient(e.clone()),
        }
    }
}

/// Exponential backoff from 100 ms to 5 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(Duration::from_millis(100))
    }

    fn peek(&self) -> Duration {
        self.0
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }
}

/// Copies `record` to [`DEAD_LETTERS`] with its source and the rejection in headers.
async fn dead_letter(
    producer: &Producer,
    group: &str,
    record: &Incoming,
    rejection: &Rejection,
) -> Result<(), String> {
    tracing::warn!(
        group,
        topic = record.topic,
        partition = record.partition,
        offset = record.offset,
        "dead-lettering: {}",
        rejection.reason
    );
    let partition = record.partition.to_string();
    let offset = record.offset.to_string();
    let mut headers = OwnedHeaders::new();
    for (key, value) in &record.headers {
        headers = headers.insert(Header {
            key,
            value: value.as_deref(),
        });
    }
    headers = headers
        .insert(Header {
            key: "dlq.source.topic",
            value: Some(&record.topic),
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
            value: Some(rejection.kind),
        })
        .insert(Header {
            key: "dlq.error.message",
            value: Some(&rejection.reason),
        });
    let mut out = FutureRecord::<[u8], [u8]>::to(DEAD_LETTERS)
        .headers(headers)
        .payload(&record.payload);
    if let Some(key) = &record.key {
        out = out.key(key);
    }
    producer
        .send(out, Duration::from_secs(30))
        .await
        .map(|_| ())
        .map_err(|(e, _)| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use rdkafka::consumer::BaseConsumer;
    use sqlx::Row;

    use super::*;

    /// Writes each record's offset into `processed_events` (consumer `test`), then fails
    /// as told; counts attempts and how many prepares overlapped.
    #[derive(Default)]
    struct Recorder {
        refused: BTreeSet<i64>,
        poison: BTreeSet<i64>,
        failing_prepare_once: BTreeSet<i64>,
        attempts: Mutex<HashMap<i64, u32>>,
        prepares: Mutex<HashMap<i64, u32>>,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl Handler for Arc<Recorder> {
        type Prepared = i64;

        async fn prepare(&self, record: &Incoming) -> Result<i64, HandleError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let tries = {
                let mut prepares = self.prepares.lock().unwrap();
                let tries = prepares.entry(record.offset).or_default();
                *tries += 1;
                *tries
            };
            if self.poison.contains(&record.offset) {
                let bad = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
                return Err(EventError::Malformed(bad).into());
            }
            if self.failing_prepare_once.contains(&record.offset) && tries == 1 {
                return Err(HandleError::Transient("gateway timeout".into()));
            }
            Ok(record.offset)
        }

        async fn apply(
            &self,
            tx: &mut Tx<'_>,
            _: &Incoming,
            offset: i64,
        ) -> Result<(), HandleError> {
            *self.attempts.lock().unwrap().entry(offset).or_default() += 1;
            sqlx::query("INSERT INTO processed_events (consumer, event_id) VALUES ('test', $1)")
                .bind(offset.to_string())
                .execute(&mut **tx)
                .await?;
            if self.refused.contains(&offset) {
                return Err(HandleError::Unprocessable(format!("{offset} is refused")));
            }
            Ok(())
        }
    }

    fn records(n: i64) -> Vec<Incoming> {
        (0..n)
            .map(|offset| Incoming {
                topic: "t".into(),
                partition: 0,
                offset,
                key: Some(b"k".to_vec()),
                payload: format!("record {offset}").into_bytes(),
                headers: vec![("trace".into(), Some(b"abc".to_vec()))],
            })
            .collect()
    }

    async fn applied(db: &Database) -> Vec<i64> {
        let mut offsets: Vec<i64> =
            sqlx::query("SELECT event_id FROM processed_events WHERE consumer = 'test'")
                .fetch_all(db.pool())
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<String, _>("event_id").parse().unwrap())
                .collect();
        offsets.sort();
        offsets
    }

    /// The dead letters' (source offset, kind, message), read from the broker.
    fn dead_letters(bootstrap: &str, expected: usize) -> Vec<(i64, String, String)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "dead-letter-reader")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[DEAD_LETTERS]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut found = Vec::new();
        while found.len() < expected && std::time::Instant::now() < deadline {
            let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let header = |name: &str| {
                let headers = message.headers().expect("headers");
                headers
                    .iter()
                    .find(|h| h.key == name)
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            assert_eq!(header("trace"), "abc", "the record's own headers are kept");
            found.push((
                header("dlq.source.offset").parse().unwrap(),
                header("dlq.error.kind"),
                header("dlq.error.message"),
            ));
        }
        found.sort();
        found
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_prepares_together_and_a_bad_record_is_dead_lettered_alone() {
        let broker = tokio::task::spawn_blocking(kstreams_testkit::EmbeddedBroker::start)
            .await
            .unwrap()
            .unwrap();
        let bootstrap = broker.bootstrap_servers().to_owned();
        let producer =
            Producer::new(ClientConfig::new().set("bootstrap.servers", &bootstrap)).unwrap();
        let db = Database::connect("sqlite::memory:").await.unwrap();
        let recorder = Arc::new(Recorder {
            refused: [7].into(),
            poison: [3].into(),
            failing_prepare_once: [11].into(),
            ..Recorder::default()
        });
        let batches = Batches {
            db: db.clone(),
            handler: recorder.clone(),
            group: "test-group",
            dead_letters: producer,
        };
        // More than one transaction's worth, so the batch is split.
        let batch = records(MAX_TRANSACTION as i64 + 50);
        batches.handle(&batch).await;

        // Every good record applied, the refused one's writes rolled back.
        let expected: Vec<i64> = (0..batch.len() as i64)
            .filter(|o| *o != 3 && *o != 7)
            .collect();
        assert_eq!(applied(&db).await, expected);
        let attempts = recorder.attempts.lock().unwrap().clone();
        assert_eq!(
            attempts[&7],
            1 + MAX_ATTEMPTS,
            "the refused record is tried in its chunk, then MAX_ATTEMPTS times alone"
        );
        assert!(
            !attempts.contains_key(&3),
            "a poison record is never applied"
        );
        assert_eq!(
            attempts[&4], 2,
            "its chunk's records are applied again one by one"
        );
        assert_eq!(attempts[&60], 1, "other chunks are applied once");
        assert_eq!(
            recorder.prepares.lock().unwrap()[&11],
            2,
            "a record whose preparation failed is prepared again"
        );
        assert!(
            recorder.most_in_flight.load(Ordering::SeqCst) > 1,
            "preparations overlap"
        );

        let letters = dead_letters(&bootstrap, 2);
        assert_eq!(letters.len(), 2, "{letters:?}");
        assert_eq!(
            (letters[0].0, letters[0].1.as_str()),
            (3, "deserialization")
        );
        assert!(letters[0].2.contains("malformed"), "{}", letters[0].2);
        assert_eq!((letters[1].0, letters[1].1.as_str()), (7, "unprocessable"));
        assert!(letters[1].2.contains("7 is refused"), "{}", letters[1].2);
        // The broker's runtime is dropped outside this one.
        tokio::task::spawn_blocking(move || drop(broker))
            .await
            .unwrap();
    }

    #[test]
    fn offsets_to_commit_are_one_past_each_partitions_last_record() {
        let mut batch = records(3);
        batch.push(Incoming {
            partition: 1,
            offset: 40,
            ..batch[0].clone()
        });
        let offsets: Vec<((String, i32), i64)> = next_offsets(&batch).into_iter().collect();
        assert_eq!(
            offsets,
            vec![(("t".to_owned(), 0), 3), (("t".to_owned(), 1), 41)]
        );
    }

    #[tokio::test]
    async fn constraint_violations_are_unprocessable_and_outages_transient() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        let insert = || {
            sqlx::query("INSERT INTO processed_events (consumer, event_id) VALUES ('c', 'e')")
                .execute(db.pool())
        };
        insert().await.unwrap();
        let duplicate = insert().await.unwrap_err();
        assert!(
            matches!(HandleError::from(duplicate), HandleError::Unprocessable(_)),
            "a unique violation will not pass on a retry"
        );
        assert!(matches!(
            HandleError::from(sqlx::Error::PoolTimedOut),
            HandleError::Transient(_)
        ));
        assert!(matches!(
            HandleError::from(sqlx::Error::Decode("bad".into())),
            HandleError::Unprocessable(_)
        ));
    }

    #[tokio::test]
    async fn database_errors_are_sorted_by_whether_a_retry_can_help() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        let missing = sqlx::query("SELECT * FROM no_such_table")
            .execute(db.pool())
            .await
            .unwrap_err();
        assert!(matches!(
            HandleError::from(missing),
            HandleError::Unprocessable(_)
        ));
        let negative = sqlx::query(
            "INSERT INTO products (product_id, name, unit_price, available, reserved, threshold) \
             VALUES ('p', 'p', '1', -1, 0, 0)",
        )
        .execute(db.pool())
        .await
        .unwrap_err();
        assert!(matches!(
            HandleError::from(negative),
            HandleError::Unprocessable(_)
        ));
        // PostgreSQL's SQLSTATEs and SQLite's (extended) result codes.
        for transient in [
            "08006", "40001", "40P01", "53300", "57P01", "55P03", "5", "517", "6", "10",
        ] {
            assert!(is_transient_code(transient), "{transient}");
        }
        for refused in ["22021", "23505", "23514", "42P01", "1", "19", "2067", "275"] {
            assert!(!is_transient_code(refused), "{refused}");
        }
    }
}
