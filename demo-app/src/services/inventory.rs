//! The inventory service: stock levels and reservations, REST on :8082.
//!
//! It consumes `order-events` (group `inventory-service`):
//! * `OrderCreated` reserves every line or none, in one database transaction with the
//!   event's dedup record and its outgoing events: `InventoryReserved` (or
//!   `ReservationFailed`: unknown product, not enough stock) and one `StockLevelChanged` per
//!   product whose level moved;
//! * `OrderStatusChanged` to a cancelled or rejected state releases the order's reservation
//!   (`ReservationReleased`), to `SHIPPED` consumes it (the units left the warehouse).
//!
//! The records of a poll are applied in chunks of up to 200, in order, with a fixed number
//! of statements per chunk: the stock and reservations the chunk touches are read once,
//! the events are applied to them in memory, and the changes are written back with one
//! multi-row statement per table (`apply_chunk`).
//!
//! REST: `GET /products`, `GET /products/{id}` (any valid token), `POST
//! /products/{id}/restock` with `{"quantity": n}` (admin).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Row, Transaction};

use crate::app::Service;
use crate::auth::{Authenticated, HasJwtKeys, JwtKeys};
use crate::consumer::{HandleError, Incoming, Tx, Writer};
use crate::db::{first_times, placeholders, rows_in, text, Database};
use crate::events::{topics, Envelope, InventoryEvent, OrderEvent, OrderItem, OrderStatus};
use crate::http::{ApiError, JsonBody};
use crate::outbox::{self, OutboxRelay};

/// The consumer group (and dedup name) of the service.
pub const GROUP: &str = "inventory-service";

/// The inventory service's state.
#[derive(Clone)]
pub struct InventoryService {
    db: Database,
    keys: JwtKeys,
    relay: OutboxRelay,
}

impl HasJwtKeys for InventoryService {
    fn jwt_keys(&self) -> &JwtKeys {
        &self.keys
    }
}

/// A product's stock as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockView {
    /// Product id.
    pub product_id: String,
    /// Name.
    pub name: String,
    /// Price of one unit.
    pub unit_price: String,
    /// Units that can be ordered.
    pub available: i64,
    /// Units held by open orders.
    pub reserved: i64,
    /// Low-stock threshold.
    pub threshold: i64,
}

/// Body of `POST /products/{id}/restock`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restock {
    /// Units to add, 1..=100000.
    pub quantity: i64,
}

impl InventoryService {
    /// The service over `db`.
    pub fn new(db: Database, keys: JwtKeys, relay: OutboxRelay) -> Self {
        InventoryService { db, keys, relay }
    }

    /// The HTTP routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/products", get(list_products))
            .route("/products/{id}", get(get_product))
            .route("/products/{id}/restock", post(restock))
            .route("/health", get(|| async { "ok" }))
            .with_state(self)
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn stock_event(tx: &mut Transaction<'_, Any>, product_id: &str) -> sqlx::Result<()> {
    let row =
        sqlx::query("SELECT available, reserved, threshold FROM products WHERE product_id = $1")
            .bind(product_id)
            .fetch_one(&mut **tx)
            .await?;
    let event = Envelope::new(InventoryEvent::StockLevelChanged {
        product_id: product_id.to_owned(),
        available: row.try_get("available")?,
        reserved: row.try_get("reserved")?,
        threshold: row.try_get("threshold")?,
    });
    outbox::enqueue(
        tx,
        Service::Inventory,
        topics::INVENTORY,
        product_id,
        &event,
    )
    .await
}

/// A product's stock while a chunk of events is applied to it.
struct Stock {
    available: i64,
    reserved: i64,
    threshold: i64,
    /// `(available, reserved)` as read from the database.
    stored: (i64, i64),
}

/// A line of an order's reservation while a chunk is applied.
struct Line {
    product_id: String,
    quantity: i64,
    status: &'static str,
    /// Its status in the database; `None` for a line this chunk creates.
    stored: Option<&'static str>,
}

const HELD: &str = "HELD";
const RELEASED: &str = "RELEASED";
const SHIPPED: &str = "SHIPPED";

fn line_status(status: &str) -> Option<&'static str> {
    [HELD, RELEASED, SHIPPED].into_iter().find(|s| *s == status)
}

/// What a chunk of `order-events` does to stock and reservations, worked out in memory
/// from the rows it touches (read once, up front) and written back with a few statements.
#[derive(Default)]
struct Chunk {
    products: HashMap<String, Stock>,
    /// Every order's lines, for the orders of the chunk.
    lines: HashMap<String, Vec<Line>>,
    outbox: Vec<outbox::Pending>,
}

impl Chunk {
    /// Reserves every line of the order or none (`ReservationFailed` with the reason).
    fn reserve(&mut self, order_id: &str, customer_id: &str, items: &[OrderItem]) {
        if self
            .lines
            .get(order_id)
            .is_some_and(|lines| !lines.is_empty())
        {
            tracing::warn!(
                order_id,
                "order already has a reservation; OrderCreated ignored"
            );
            return;
        }
        // Repeated products count together.
        let mut wanted: Vec<(&str, i64)> = Vec::new();
        for item in items {
            match wanted.iter_mut().find(|(id, _)| *id == item.product_id) {
                Some((_, quantity)) => *quantity += i64::from(item.quantity),
                None => wanted.push((&item.product_id, i64::from(item.quantity))),
            }
        }
        let shortfall =
            wanted.iter().find_map(
                |&(product_id, quantity)| match self.products.get(product_id) {
                    None => Some(format!("unknown product {product_id}")),
                    Some(stock) if stock.available < quantity => Some(format!(
                        "only {} of {product_id} in stock, {quantity} ordered",
                        stock.available
                    )),
                    Some(_) => None,
                },
            );
        if let Some(reason) = shortfall {
            let event = Envelope::new(InventoryEvent::ReservationFailed {
                order_id: order_id.to_owned(),
                customer_id: customer_id.to_owned(),
                reason,
            });
            self.outbox
                .push(outbox::Pending::new(topics::INVENTORY, order_id, &event));
            return;
        }
        let lines = self.lines.entry(order_id.to_owned()).or_default();
        for (product_id, quantity) in wanted {
            let stock = self.products.get_mut(product_id).expect("checked above");
            stock.available -= quantity;
            stock.reserved += quantity;
            lines.push(Line {
                product_id: product_id.to_owned(),
                quantity,
                status: HELD,
                stored: None,
            });
            self.outbox.push(stock_changed(product_id, stock));
        }
        let event = Envelope::new(InventoryEvent::InventoryReserved {
            order_id: order_id.to_owned(),
            customer_id: customer_id.to_owned(),
            items: items.to_vec(),
        });
        self.outbox
            .push(outbox::Pending::new(topics::INVENTORY, order_id, &event));
    }

    /// Moves the order's held lines to `status`: `RELEASED` gives the units back (and
    /// emits `ReservationReleased`), `SHIPPED` takes them out of the warehouse.
    fn end_hold(&mut self, order_id: &str, customer_id: &str, status: &'static str) {
        let Some(lines) = self.lines.get_mut(order_id) else {
            return;
        };
        let mut ended = false;
        for line in lines.iter_mut().filter(|line| line.status == HELD) {
            line.status = status;
            ended = true;
            let Some(stock) = self.products.get_mut(&line.product_id) else {
                // Read with the order's lines; a reservation of a product since deleted.
                continue;
            };
            stock.reserved -= line.quantity;
            if status == RELEASED {
                stock.available += line.quantity;
            }
            self.outbox.push(stock_changed(&line.product_id, stock));
        }
        if ended && status == RELEASED {
            let event = Envelope::new(InventoryEvent::ReservationReleased {
                order_id: order_id.to_owned(),
                customer_id: customer_id.to_owned(),
            });
            self.outbox
                .push(outbox::Pending::new(topics::INVENTORY, order_id, &event));
        }
    }
}

fn stock_changed(product_id: &str, stock: &Stock) -> outbox::Pending {
    let event = Envelope::new(InventoryEvent::StockLevelChanged {
        product_id: product_id.to_owned(),
        available: stock.available,
        reserved: stock.reserved,
        threshold: stock.threshold,
    });
    outbox::Pending::new(topics::INVENTORY, product_id, &event)
}

/// What an `order-events` record asks of the inventory.
enum Request {
    Reserve {
        order_id: String,
        customer_id: String,
        items: Vec<OrderItem>,
    },
    EndHold {
        order_id: String,
        customer_id: String,
        status: &'static str,
    },
}

impl Request {
    fn order_id(&self) -> &str {
        match self {
            Request::Reserve { order_id, .. } | Request::EndHold { order_id, .. } => order_id,
        }
    }
}

/// The request of `record` with its event id; `None` for events that do not change stock.
fn request_of(record: &Incoming) -> Result<Option<(String, Request)>, HandleError> {
    let envelope = Envelope::<OrderEvent>::from_bytes(&record.payload)?;
    let request = match envelope.event {
        OrderEvent::OrderCreated {
            order_id,
            customer_id,
            items,
            ..
        } => Request::Reserve {
            order_id,
            customer_id,
            items,
        },
        OrderEvent::OrderStatusChanged {
            order_id,
            customer_id,
            to,
            ..
        } => {
            let status = match to {
                OrderStatus::Cancelled | OrderStatus::Rejected => RELEASED,
                OrderStatus::Shipped => SHIPPED,
                _ => return Ok(None),
            };
            Request::EndHold {
                order_id,
                customer_id,
                status,
            }
        }
    };
    Ok(Some((envelope.event_id.to_string(), request)))
}

/// Applies a chunk of `order-events` records in order, in `tx`, with a fixed number of
/// statements whatever its size: one marks the events processed (and says which are new),
/// two read the orders' reservations and the products they touch (locked on PostgreSQL,
/// where several instances may reserve the same product), then one statement each writes
/// the products, the new reservation lines, the ended ones, and the outbox.
async fn apply_chunk(
    tx: &mut Tx<'_>,
    postgres: bool,
    records: &[&Incoming],
) -> Result<(), HandleError> {
    let mut requests = Vec::new();
    for record in records {
        if let Some(request) = request_of(record)? {
            requests.push(request);
        }
    }
    let ids: Vec<&str> = requests.iter().map(|(id, _)| id.as_str()).collect();
    let mut new = first_times(tx, GROUP, &ids).await?;
    // Taken on first use: an event twice in one chunk counts once.
    requests.retain(|(id, _)| new.remove(id));
    if requests.is_empty() {
        return Ok(());
    }
    let mut chunk = Chunk::default();

    let order_ids: Vec<&str> = requests.iter().map(|(_, r)| r.order_id()).collect();
    let lines = rows_in(
        tx,
        "SELECT order_id, product_id, quantity, status FROM reservations",
        "order_id",
        order_ids,
        " ORDER BY order_id, product_id",
    )
    .await?;
    for row in lines {
        let status = text(&row, "status");
        let status = line_status(&status).ok_or_else(|| {
            HandleError::Unprocessable(format!("a reservation has a bad status {status}"))
        })?;
        chunk
            .lines
            .entry(text(&row, "order_id"))
            .or_default()
            .push(Line {
                product_id: text(&row, "product_id"),
                quantity: row.try_get("quantity")?,
                status,
                stored: Some(status),
            });
    }

    let mut product_ids: Vec<&str> = Vec::new();
    for (_, request) in &requests {
        if let Request::Reserve { items, .. } = request {
            product_ids.extend(items.iter().map(|item| item.product_id.as_str()));
        }
    }
    product_ids.extend(
        chunk
            .lines
            .values()
            .flatten()
            .map(|line| line.product_id.as_str()),
    );
    // Locked on PostgreSQL (in key order, so two instances cannot deadlock).
    let rows = rows_in(
        tx,
        "SELECT product_id, available, reserved, threshold FROM products",
        "product_id",
        product_ids,
        if postgres {
            " ORDER BY product_id FOR UPDATE"
        } else {
            ""
        },
    )
    .await?;
    for row in rows {
        let (available, reserved) = (row.try_get("available")?, row.try_get("reserved")?);
        chunk.products.insert(
            text(&row, "product_id"),
            Stock {
                available,
                reserved,
                threshold: row.try_get("threshold")?,
                stored: (available, reserved),
            },
        );
    }

    for (_, request) in &requests {
        match request {
            Request::Reserve {
                order_id,
                customer_id,
                items,
            } => chunk.reserve(order_id, customer_id, items),
            Request::EndHold {
                order_id,
                customer_id,
                status,
            } => chunk.end_hold(order_id, customer_id, status),
        }
    }
    chunk.write(tx).await
}

impl Chunk {
    /// Writes what the chunk changed.
    async fn write(&self, tx: &mut Tx<'_>) -> Result<(), HandleError> {
        let moved: Vec<(&String, &Stock)> = self
            .products
            .iter()
            .filter(|(_, stock)| (stock.available, stock.reserved) != stock.stored)
            .collect();
        if !moved.is_empty() {
            // One statement: each moved product to its new levels (the values joined by
            // product id; a VALUES list's columns are column1, column2, ... in both
            // databases).
            let sql = format!(
                "UPDATE products SET available = v.column2, reserved = v.column3 \
                 FROM (VALUES {}) AS v WHERE products.product_id = v.column1",
                placeholders(moved.len(), 3)
            );
            let sql = crate::db::for_connection(tx, &sql);
            let mut update = sqlx::query(&sql);
            for (product_id, stock) in &moved {
                update = update
                    .bind(product_id.as_str())
                    .bind(stock.available)
                    .bind(stock.reserved);
            }
            update.execute(&mut **tx).await?;
        }

        let created: Vec<(&String, &Line)> = self
            .lines
            .iter()
            .flat_map(|(order_id, lines)| lines.iter().map(move |line| (order_id, line)))
            .filter(|(_, line)| line.stored.is_none())
            .collect();
        let now = now_ms();
        crate::db::insert_rows(
            tx,
            "INSERT INTO reservations (order_id, product_id, quantity, status, created_at)",
            "",
            5,
            &created,
            |q, (order_id, line)| {
                q.bind(order_id.as_str())
                    .bind(&line.product_id)
                    .bind(line.quantity)
                    .bind(line.status)
                    .bind(now)
            },
        )
        .await?;

        // Held lines end together: one status per order.
        let ended: Vec<(&String, &'static str, u64)> = self
            .lines
            .iter()
            .filter_map(|(order_id, lines)| {
                let ended: Vec<&Line> = lines
                    .iter()
                    .filter(|line| line.stored == Some(HELD) && line.status != HELD)
                    .collect();
                Some((order_id, ended.first()?.status, ended.len() as u64))
            })
            .collect();
        if !ended.is_empty() {
            let sql = format!(
                "UPDATE reservations SET status = v.column2 FROM (VALUES {}) AS v \
                 WHERE reservations.order_id = v.column1 AND reservations.status = 'HELD'",
                placeholders(ended.len(), 2)
            );
            let sql = crate::db::for_connection(tx, &sql);
            let mut update = sqlx::query(&sql);
            for (order_id, status, _) in &ended {
                update = update.bind(order_id.as_str()).bind(*status);
            }
            let expected: u64 = ended.iter().map(|(_, _, n)| n).sum();
            let updated = update.execute(&mut **tx).await?.rows_affected();
            if updated != expected {
                // Another writer ended one of them since it was read: start over.
                return Err(HandleError::Transient(format!(
                    "{updated} of {expected} held lines ended; reservations changed while \
                     their events were applied"
                )));
            }
        }
        outbox::enqueue_rows(tx, Service::Inventory, &self.outbox).await?;
        Ok(())
    }
}

fn stock_view(row: &sqlx::any::AnyRow) -> StockView {
    StockView {
        product_id: text(row, "product_id"),
        name: text(row, "name"),
        unit_price: text(row, "unit_price"),
        available: row.try_get("available").unwrap_or_default(),
        reserved: row.try_get("reserved").unwrap_or_default(),
        threshold: row.try_get("threshold").unwrap_or_default(),
    }
}

async fn list_products(
    State(service): State<InventoryService>,
    _caller: Authenticated,
) -> Result<Json<Vec<StockView>>, ApiError> {
    let rows = sqlx::query(
        "SELECT product_id, name, unit_price, available, reserved, threshold FROM products
         ORDER BY product_id",
    )
    .fetch_all(service.db.reader())
    .await
    .map_err(|e| ApiError::internal("reading stock", e))?;
    Ok(Json(rows.iter().map(stock_view).collect()))
}

async fn get_product(
    State(service): State<InventoryService>,
    _caller: Authenticated,
    Path(product_id): Path<String>,
) -> Result<Json<StockView>, ApiError> {
    let row = sqlx::query(
        "SELECT product_id, name, unit_price, available, reserved, threshold FROM products
         WHERE product_id = $1",
    )
    .bind(&product_id)
    .fetch_optional(service.db.reader())
    .await
    .map_err(|e| ApiError::internal("reading stock", e))?
    .ok_or_else(|| ApiError::not_found(format!("no product {product_id}")))?;
    Ok(Json(stock_view(&row)))
}

async fn restock(
    State(service): State<InventoryService>,
    caller: Authenticated,
    Path(product_id): Path<String>,
    JsonBody(body): JsonBody<Restock>,
) -> Result<Json<StockView>, ApiError> {
    caller.require_admin()?;
    if !(1..=100_000).contains(&body.quantity) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "quantity must be between 1 and 100000",
        ));
    }
    let internal = |e| ApiError::internal("restocking", e);
    let mut tx = service.db.pool().begin().await.map_err(internal)?;
    let updated =
        sqlx::query("UPDATE products SET available = available + $1 WHERE product_id = $2")
            .bind(body.quantity)
            .bind(&product_id)
            .execute(&mut *tx)
            .await
            .map_err(internal)?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::not_found(format!("no product {product_id}")));
    }
    stock_event(&mut tx, &product_id).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    service.relay.notify();
    get_product(State(service), caller, Path(product_id)).await
}

impl Writer for InventoryService {
    const RECORDS_PER_TRANSACTION: usize = 200;

    async fn write(&self, tx: &mut Tx<'_>, records: &[&Incoming]) -> Result<(), HandleError> {
        apply_chunk(tx, self.db.is_postgres(), records).await
    }

    fn committed(&self) {
        self.relay.notify();
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;

    fn item(product_id: &str, quantity: u32) -> OrderItem {
        OrderItem {
            product_id: product_id.into(),
            quantity,
            unit_price: Decimal::ONE,
        }
    }

    fn created(order_id: &str, items: Vec<OrderItem>) -> Envelope<OrderEvent> {
        Envelope::new(OrderEvent::OrderCreated {
            order_id: order_id.into(),
            customer_id: "c-1".into(),
            items,
            total: Decimal::ONE,
            currency: "EUR".into(),
            variant: "A".into(),
            shipping_address: None,
            device_id: None,
        })
    }

    fn changed(order_id: &str, from: OrderStatus, to: OrderStatus) -> Envelope<OrderEvent> {
        Envelope::new(OrderEvent::OrderStatusChanged {
            order_id: order_id.into(),
            customer_id: "c-1".into(),
            from,
            to,
            reason: None,
        })
    }

    fn record(event: &Envelope<OrderEvent>) -> Incoming {
        Incoming {
            topic: topics::ORDERS.into(),
            payload: event.to_bytes(),
            ..Incoming::default()
        }
    }

    async fn apply(db: &Database, records: &[Incoming]) {
        let refs: Vec<&Incoming> = records.iter().collect();
        let mut tx = db.pool().begin().await.unwrap();
        apply_chunk(&mut tx, false, &refs).await.unwrap();
        tx.commit().await.unwrap();
    }

    async fn stock(db: &Database, product_id: &str) -> (i64, i64) {
        let row = sqlx::query("SELECT available, reserved FROM products WHERE product_id = $1")
            .bind(product_id)
            .fetch_one(db.pool())
            .await
            .unwrap();
        (row.get("available"), row.get("reserved"))
    }

    async fn lines(db: &Database) -> Vec<(String, String, i64, String)> {
        sqlx::query(
            "SELECT order_id, product_id, quantity, status FROM reservations \
             ORDER BY order_id, product_id",
        )
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.get("order_id"),
                row.get("product_id"),
                row.get("quantity"),
                row.get("status"),
            )
        })
        .collect()
    }

    /// The outbox as `(kind, key, available, reserved)`, oldest first.
    async fn outbox(db: &Database) -> Vec<(String, String, i64, i64)> {
        sqlx::query("SELECT record_key, payload FROM outbox ORDER BY rowid")
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| {
                let payload: String = row.get("payload");
                let event: serde_json::Value = serde_json::from_str(&payload).unwrap();
                let kind = event["type"].as_str().unwrap_or("?").to_owned();
                (
                    kind,
                    row.get("record_key"),
                    event["available"].as_i64().unwrap_or(-1),
                    event["reserved"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    }

    /// One chunk: an order reserves (a repeated product counted together), a second finds
    /// too little left and reserves nothing, a third is created and cancelled within the
    /// chunk, a redelivered event changes nothing; the next chunk ships the first order.
    /// Stock, reservation lines and the outbox's events (in order, with the levels after
    /// each change) are what record-by-record handling gives.
    #[tokio::test]
    async fn a_chunk_reserves_releases_and_settles_in_order() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        for (id, available) in [("P-1", 10), ("P-2", 5)] {
            sqlx::query(
                "INSERT INTO products (product_id, name, unit_price, available, reserved, \
                 threshold) VALUES ($1, $1, '1.00', $2, 0, 2)",
            )
            .bind(id)
            .bind(available)
            .execute(db.pool())
            .await
            .unwrap();
        }
        let first = created("o-1", vec![item("P-1", 3), item("P-2", 1), item("P-1", 2)]);
        let too_many = created("o-2", vec![item("P-1", 4), item("P-2", 5)]);
        let third = created("o-3", vec![item("P-2", 2)]);
        let cancelled = changed("o-3", OrderStatus::Created, OrderStatus::Cancelled);
        let unknown = created("o-4", vec![item("P-9", 1)]);
        apply(
            &db,
            &[
                record(&first),
                record(&first),
                record(&too_many),
                record(&third),
                record(&cancelled),
                record(&unknown),
            ],
        )
        .await;
        assert_eq!(stock(&db, "P-1").await, (5, 5));
        assert_eq!(stock(&db, "P-2").await, (4, 1));
        let s = |s: &str| s.to_owned();
        assert_eq!(
            lines(&db).await,
            [
                (s("o-1"), s("P-1"), 5, s("HELD")),
                (s("o-1"), s("P-2"), 1, s("HELD")),
                (s("o-3"), s("P-2"), 2, s("RELEASED")),
            ]
        );
        let stock_changed = |key: &str, a, r| (s("StockLevelChanged"), s(key), a, r);
        let about = |kind: &str, key: &str| (s(kind), s(key), -1, -1);
        assert_eq!(
            outbox(&db).await,
            [
                stock_changed("P-1", 5, 5),
                stock_changed("P-2", 4, 1),
                about("InventoryReserved", "o-1"),
                about("ReservationFailed", "o-2"),
                stock_changed("P-2", 2, 3),
                about("InventoryReserved", "o-3"),
                stock_changed("P-2", 4, 1),
                about("ReservationReleased", "o-3"),
                about("ReservationFailed", "o-4"),
            ]
        );

        // The next chunk: o-1 ships (the units leave), o-3's second cancellation finds
        // nothing held, o-1 redelivered changes nothing.
        let shipped = changed("o-1", OrderStatus::Paid, OrderStatus::Shipped);
        let cancelled_again = changed("o-3", OrderStatus::Created, OrderStatus::Cancelled);
        apply(
            &db,
            &[record(&shipped), record(&cancelled_again), record(&first)],
        )
        .await;
        assert_eq!(stock(&db, "P-1").await, (5, 0));
        assert_eq!(stock(&db, "P-2").await, (4, 0));
        let statuses: Vec<String> = lines(&db).await.into_iter().map(|l| l.3).collect();
        assert_eq!(statuses, ["SHIPPED", "SHIPPED", "RELEASED"]);
        let events = outbox(&db).await;
        assert_eq!(
            events[9..],
            [stock_changed("P-1", 5, 0), stock_changed("P-2", 4, 0)]
        );
    }
}
