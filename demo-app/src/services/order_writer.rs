//! Group commit of new orders: `POST /orders` hands its order to one writer task, which
//! stores every order waiting at that moment in one database transaction (one multi-row
//! statement each for the idempotency claims, the orders and their `OrderCreated` outbox
//! rows) and answers each request when that transaction has committed.
//!
//! Under light load a batch is one order and nothing waits longer than before; under heavy
//! load the API's writes cost a few statements per batch instead of four or five per order,
//! so they stop queueing for the database's one writer (SQLite) behind each other and the
//! consumers. A batch that fails is retried order by order, so a request fails only for its
//! own reason.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::app::Service;
use crate::db::{placeholders, text, Database, MAX_ROWS_PER_STATEMENT};
use crate::outbox;

/// The most orders one transaction stores.
const MAX_BATCH: usize = 500;

/// A new order to store, with its `OrderCreated` event.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// The order id.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// The request's `Idempotency-Key` and the hash of its body, if it had one.
    pub idempotency: Option<(String, String)>,
    /// `CREATED`.
    pub status: &'static str,
    /// The exact total, as text.
    pub total: String,
    /// Currency.
    pub currency: String,
    /// A/B variant.
    pub variant: String,
    /// The priced lines, as JSON.
    pub items: String,
    /// When it was placed (ms since the epoch).
    pub created_at: i64,
    /// Its `OrderCreated`, for the outbox.
    pub event: outbox::Pending,
}

/// What became of an order handed to the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Stored, its event in the outbox.
    Created,
    /// Not stored: its idempotency key was claimed by another request first.
    KeyTaken,
}

type Reply = oneshot::Sender<Result<Stored, String>>;

/// The handle requests store their orders through (cheap to clone).
#[derive(Clone, Debug)]
pub struct OrderWriter {
    queue: mpsc::Sender<(NewOrder, Reply)>,
    transactions: Arc<AtomicU64>,
}

impl OrderWriter {
    /// Starts the writer task on `db` (inside a Tokio runtime); it ends when every handle
    /// is dropped.
    pub fn spawn(db: Database) -> OrderWriter {
        let (queue, requests) = mpsc::channel(4 * MAX_BATCH);
        let transactions = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(db, requests, transactions.clone()));
        OrderWriter {
            queue,
            transactions,
        }
    }

    /// How many transactions have stored orders so far.
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    /// Stores `order`; returns once its transaction committed.
    pub async fn store(&self, order: NewOrder) -> Result<Stored, String> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((order, reply))
            .await
            .map_err(|_| "the order writer stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the order writer stopped".to_owned())?
    }
}

async fn run(
    db: Database,
    mut requests: mpsc::Receiver<(NewOrder, Reply)>,
    transactions: Arc<AtomicU64>,
) {
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let orders: Vec<&NewOrder> = batch.iter().map(|(order, _)| order).collect();
        transactions.fetch_add(1, Ordering::Relaxed);
        match store_batch(&db, &orders).await {
            Ok(stored) => {
                for ((_, reply), stored) in batch.into_iter().zip(stored) {
                    let _ = reply.send(Ok(stored));
                }
            }
            Err(e) if batch.len() > 1 => {
                tracing::warn!(
                    "storing {} orders failed, storing them one by one: {e}",
                    batch.len()
                );
                for (order, reply) in batch {
                    let result = store_batch(&db, &[&order])
                        .await
                        .map(|mut stored| stored.remove(0))
                        .map_err(|e| e.to_string());
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// Stores `orders` in one transaction; what became of each, in order.
async fn store_batch(db: &Database, orders: &[&NewOrder]) -> sqlx::Result<Vec<Stored>> {
    let mut tx = db.pool().begin().await?;
    // The claims that won: a key already taken, or taken by an earlier order of this
    // batch, is not.
    let claims: Vec<&NewOrder> = orders
        .iter()
        .copied()
        .filter(|order| order.idempotency.is_some())
        .collect();
    let mut won: HashSet<String> = HashSet::new();
    for rows in claims.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO idempotency_keys (customer_id, idempotency_key, request_hash, order_id) \
             VALUES {} ON CONFLICT DO NOTHING RETURNING order_id",
            placeholders(rows.len(), 4)
        );
        let sql = crate::db::for_connection(&tx, &sql);
        let mut insert = sqlx::query(&sql);
        for order in rows {
            let (key, hash) = order.idempotency.as_ref().expect("filtered");
            insert = insert
                .bind(&order.customer_id)
                .bind(key)
                .bind(hash)
                .bind(&order.order_id);
        }
        won.extend(
            insert
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| text(row, "order_id")),
        );
    }
    let stored: Vec<Stored> = orders
        .iter()
        .map(|order| {
            if order.idempotency.is_none() || won.contains(&order.order_id) {
                Stored::Created
            } else {
                Stored::KeyTaken
            }
        })
        .collect();
    let kept: Vec<&NewOrder> = orders
        .iter()
        .zip(&stored)
        .filter(|(_, stored)| **stored == Stored::Created)
        .map(|(order, _)| *order)
        .collect();
    crate::db::insert_rows(
        &mut tx,
        "INSERT INTO orders (order_id, customer_id, status, total, currency, variant, items, reason, created_at, updated_at)",
        "",
        10,
        &kept,
        |q, order| q.bind(&order.order_id).bind(&order.customer_id).bind(order.status).bind(&order.total).bind(&order.currency).bind(&order.variant).bind(&order.items).bind(None::<String>).bind(order.created_at).bind(order.created_at),
    )
    .await?;
    let events: Vec<outbox::Pending> = kept.iter().map(|order| order.event.clone()).collect();
    outbox::enqueue_rows(&mut tx, Service::Order, &events).await?;
    tx.commit().await?;
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;
    use sqlx::Row;

    use super::*;
    use crate::events::{topics, Envelope, OrderEvent};

    fn order(n: usize, customer: &str, key: Option<&str>) -> NewOrder {
        let order_id = format!("o-{n}");
        let event = Envelope::new(OrderEvent::OrderCreated {
            order_id: order_id.clone(),
            customer_id: customer.into(),
            items: Vec::new(),
            total: Decimal::ONE,
            currency: "EUR".into(),
            variant: "A".into(),
            shipping_address: None,
            device_id: None,
        });
        NewOrder {
            order_id,
            customer_id: customer.into(),
            idempotency: key.map(|k| (k.to_owned(), "hash".to_owned())),
            status: "CREATED",
            total: "1".into(),
            currency: "EUR".into(),
            variant: "A".into(),
            items: "[]".into(),
            created_at: 0,
            event: outbox::Pending::new(topics::ORDERS, customer, &event),
        }
    }

    async fn count(db: &Database, table: &str) -> i64 {
        sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get("n")
    }

    /// Many concurrent requests are stored in fewer transactions than orders (batches),
    /// each with its event; of two requests with the same key only the first is stored,
    /// and a key stored earlier is taken.
    #[tokio::test]
    async fn concurrent_orders_are_stored_in_batches_once_per_key() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        let writer = OrderWriter::spawn(db.clone());
        assert_eq!(
            writer.store(order(0, "c-1", Some("k-0"))).await.unwrap(),
            Stored::Created
        );
        // Hold the one connection so that the requests queue up behind it.
        let held = db.pool().acquire().await.unwrap();
        let mut answers = Vec::new();
        for n in 1..=100 {
            let key = match n {
                1 => Some("k-0"),     // stored before
                2 | 3 => Some("k-2"), // the same key twice in a batch
                _ => None,
            };
            let writer = writer.clone();
            let order = order(n, "c-1", key);
            answers.push(tokio::spawn(async move { writer.store(order).await }));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(held);
        let mut stored = Vec::new();
        for answer in answers {
            stored.push(answer.await.unwrap().unwrap());
        }
        assert_eq!(stored[0], Stored::KeyTaken, "k-0 was stored before");
        assert_eq!(stored[1], Stored::Created);
        assert_eq!(stored[2], Stored::KeyTaken, "k-2 went to the first request");
        assert!(stored[3..].iter().all(|s| *s == Stored::Created));
        assert_eq!(count(&db, "orders").await, 99);
        assert_eq!(count(&db, "outbox").await, 99);
        assert_eq!(count(&db, "idempotency_keys").await, 2);
        assert!(
            writer.transactions() < 10,
            "{} transactions for 101 orders",
            writer.transactions()
        );
    }
}
