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
//! REST: `GET /products`, `GET /products/{id}` (any valid token), `POST
//! /products/{id}/restock` with `{"quantity": n}` (admin).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Row, Transaction};

use crate::app::Service;
use crate::auth::{Authenticated, HasJwtKeys, JwtKeys};
use crate::consumer::{HandleError, Incoming, Tx, Writer};
use crate::db::{first_time, text, Database};
use crate::events::{topics, Envelope, InventoryEvent, OrderEvent, OrderStatus};
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

    /// Applies one `order-events` record in `tx`.
    async fn apply_event(&self, tx: &mut Tx<'_>, record: &Incoming) -> Result<(), HandleError> {
        let envelope = Envelope::<OrderEvent>::from_bytes(&record.payload)?;
        // Only these change stock; the rest are skipped without a statement.
        let relevant = match &envelope.event {
            OrderEvent::OrderCreated { .. } => true,
            OrderEvent::OrderStatusChanged { to, .. } => matches!(
                to,
                OrderStatus::Cancelled | OrderStatus::Rejected | OrderStatus::Shipped
            ),
        };
        if !relevant || !first_time(tx, GROUP, &envelope.event_id.to_string()).await? {
            return Ok(());
        }
        match &envelope.event {
            OrderEvent::OrderCreated {
                order_id,
                customer_id,
                items,
                ..
            } => reserve(tx, order_id, customer_id, items).await?,
            OrderEvent::OrderStatusChanged {
                order_id,
                customer_id,
                to,
                ..
            } => match to {
                OrderStatus::Cancelled | OrderStatus::Rejected => {
                    release(tx, order_id, customer_id).await?
                }
                OrderStatus::Shipped => {
                    settle(tx, order_id).await?;
                }
                _ => {}
            },
        }
        Ok(())
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

async fn reserve(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
    customer_id: &str,
    items: &[crate::events::OrderItem],
) -> sqlx::Result<()> {
    let mut shortfall = None;
    for item in items {
        let row = sqlx::query("SELECT available FROM products WHERE product_id = $1")
            .bind(&item.product_id)
            .fetch_optional(&mut **tx)
            .await?;
        match row {
            None => {
                shortfall = Some(format!("unknown product {}", item.product_id));
                break;
            }
            Some(row) => {
                let available: i64 = row.try_get("available")?;
                if available < i64::from(item.quantity) {
                    shortfall = Some(format!(
                        "only {available} of {} in stock, {} ordered",
                        item.product_id, item.quantity
                    ));
                    break;
                }
            }
        }
    }
    if let Some(reason) = shortfall {
        let event = Envelope::new(InventoryEvent::ReservationFailed {
            order_id: order_id.to_owned(),
            customer_id: customer_id.to_owned(),
            reason,
        });
        return outbox::enqueue(tx, Service::Inventory, topics::INVENTORY, order_id, &event).await;
    }
    for item in items {
        let quantity = i64::from(item.quantity);
        sqlx::query(
            "UPDATE products SET available = available - $1, reserved = reserved + $1
             WHERE product_id = $2",
        )
        .bind(quantity)
        .bind(&item.product_id)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO reservations (order_id, product_id, quantity, status, created_at)
             VALUES ($1, $2, $3, 'HELD', $4)",
        )
        .bind(order_id)
        .bind(&item.product_id)
        .bind(quantity)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
        stock_event(tx, &item.product_id).await?;
    }
    let event = Envelope::new(InventoryEvent::InventoryReserved {
        order_id: order_id.to_owned(),
        customer_id: customer_id.to_owned(),
        items: items.to_vec(),
    });
    outbox::enqueue(tx, Service::Inventory, topics::INVENTORY, order_id, &event).await
}

/// The held lines of an order, marked `status`.
async fn take_held(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
    status: &str,
) -> sqlx::Result<Vec<(String, i64)>> {
    let rows = sqlx::query(
        "SELECT product_id, quantity FROM reservations WHERE order_id = $1 AND status = 'HELD'",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query("UPDATE reservations SET status = $1 WHERE order_id = $2 AND status = 'HELD'")
        .bind(status)
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    rows.iter()
        .map(|row| Ok((text(row, "product_id"), row.try_get("quantity")?)))
        .collect()
}

async fn release(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
    customer_id: &str,
) -> sqlx::Result<()> {
    let held = take_held(tx, order_id, "RELEASED").await?;
    if held.is_empty() {
        return Ok(());
    }
    for (product_id, quantity) in &held {
        sqlx::query(
            "UPDATE products SET available = available + $1, reserved = reserved - $1
             WHERE product_id = $2",
        )
        .bind(quantity)
        .bind(product_id)
        .execute(&mut **tx)
        .await?;
        stock_event(tx, product_id).await?;
    }
    let event = Envelope::new(InventoryEvent::ReservationReleased {
        order_id: order_id.to_owned(),
        customer_id: customer_id.to_owned(),
    });
    outbox::enqueue(tx, Service::Inventory, topics::INVENTORY, order_id, &event).await
}

async fn settle(tx: &mut Transaction<'_, Any>, order_id: &str) -> sqlx::Result<()> {
    for (product_id, quantity) in take_held(tx, order_id, "SHIPPED").await? {
        sqlx::query("UPDATE products SET reserved = reserved - $1 WHERE product_id = $2")
            .bind(quantity)
            .bind(&product_id)
            .execute(&mut **tx)
            .await?;
        stock_event(tx, &product_id).await?;
    }
    Ok(())
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
    async fn write(&self, tx: &mut Tx<'_>, records: &[&Incoming]) -> Result<(), HandleError> {
        for record in records {
            self.apply_event(tx, record).await?;
        }
        Ok(())
    }

    fn committed(&self) {
        self.relay.notify();
    }
}
