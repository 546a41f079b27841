//! The order service: the REST API customers place orders through (:8081).
//!
//! * `POST /orders` (JWT): prices the items from the catalog, stores the order as `CREATED`
//!   and, in the same database transaction, puts `OrderCreated` (v2, keyed by customer id)
//!   in the outbox (orders placed at the same moment share a transaction:
//!   [`order_writer`](super::order_writer)). An `Idempotency-Key` header makes a repeated request return the first
//!   order and emit nothing; the same key with a different body is a 422.
//! * `GET /orders/{id}` and `GET /orders?user=` (JWT; customers see only their own orders).
//!
//! Unknown products, empty orders and zero quantities are 422s that change nothing.
//!
//! It also drives the order state machine ([`OrderStatus::can_become`]) from
//! `inventory-events`, `payment-events` and `shipping-events` (group `order-service`): each
//! transition updates the row only from the expected state and emits `OrderStatusChanged`;
//! a reservation also emits `PaymentRequested`. Redelivered events change nothing.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::app::Service;
use crate::auth::{Authenticated, HasJwtKeys, JwtKeys};
use crate::consumer::{HandleError, Incoming, Tx, Writer};
use crate::db::{first_times, rows_in};
use crate::db::{text, Database};
use crate::events::{
    topics, Address, Envelope, InventoryEvent, OrderEvent, OrderItem, OrderStatus, PaymentEvent,
    ShippingEvent,
};
use crate::http::{ApiError, JsonBody};
use crate::outbox::{self, OutboxRelay};
use crate::services::order_writer::{NewOrder, OrderWriter, Stored};

/// The most lines and units one order may have.
const MAX_LINES: usize = 50;
const MAX_QUANTITY: u32 = 1_000;

/// The consumer group (and dedup name) of the state machine.
pub const GROUP: &str = "order-service";

/// The order service's state.
#[derive(Clone)]
pub struct OrderService {
    db: Database,
    keys: JwtKeys,
    relay: OutboxRelay,
    writer: OrderWriter,
}

impl HasJwtKeys for OrderService {
    fn jwt_keys(&self) -> &JwtKeys {
        &self.keys
    }
}

/// One requested line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    /// Product id.
    pub product_id: String,
    /// Units.
    pub quantity: u32,
}

/// The body of `POST /orders`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// What to order.
    pub items: Vec<LineRequest>,
    /// Where to ship.
    #[serde(default)]
    pub shipping_address: Option<Address>,
    /// Device fingerprint.
    #[serde(default)]
    pub device_id: Option<String>,
    /// Admins may order for a customer; customers always order for themselves.
    #[serde(default)]
    pub customer_id: Option<String>,
}

/// An order as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    /// The order id.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// Current status.
    pub status: OrderStatus,
    /// Exact total.
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// Currency.
    pub currency: String,
    /// A/B variant.
    pub variant: String,
    /// Lines with their prices.
    pub items: Vec<OrderItem>,
    /// Why it was cancelled or rejected.
    pub reason: Option<String>,
}

/// The price a customer of `variant` pays for a product listed at `list_price`: variant B
/// (the pricing experiment) gets 5% off each unit, rounded to the cent.
pub fn variant_price(variant: &str, list_price: Decimal) -> Decimal {
    if variant == "B" {
        (list_price * Decimal::new(95, 2)).round_dp(2)
    } else {
        list_price
    }
}

/// The A/B checkout variant of a customer: a stable hash, so a customer always sees the same.
pub fn variant_of(customer_id: &str) -> &'static str {
    let digest = Sha256::digest(customer_id.as_bytes());
    if digest[0] % 2 == 0 {
        "A"
    } else {
        "B"
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl OrderService {
    /// The service over `db`, checking tokens with `keys`, publishing through `relay`.
    /// Starts its order writer ([`OrderWriter`]), so it is called inside a Tokio runtime.
    pub fn new(db: Database, keys: JwtKeys, relay: OutboxRelay) -> Self {
        let writer = OrderWriter::spawn(db.clone());
        OrderService {
            db,
            keys,
            relay,
            writer,
        }
    }

    /// The HTTP routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/orders", post(place_order).get(list_orders))
            .route("/orders/{id}", get(get_order))
            .route("/health", get(|| async { "ok" }))
            .with_state(self)
    }

    /// The transition a record of `inventory-events`, `payment-events` or `shipping-events`
    /// asks for: (event id, order id, next status, reason).
    fn transition_of(record: &Incoming) -> Result<Option<Transition>, HandleError> {
        let transition = |id: uuid::Uuid, order_id, next, reason| {
            Some(Transition {
                event_id: id.to_string(),
                order_id,
                next,
                reason,
            })
        };
        Ok(match record.topic.as_str() {
            topics::INVENTORY => {
                let envelope = Envelope::<InventoryEvent>::from_bytes(&record.payload)?;
                match envelope.event {
                    InventoryEvent::InventoryReserved { order_id, .. } => {
                        transition(envelope.event_id, order_id, OrderStatus::Reserved, None)
                    }
                    InventoryEvent::ReservationFailed {
                        order_id, reason, ..
                    } => transition(
                        envelope.event_id,
                        order_id,
                        OrderStatus::Cancelled,
                        Some(reason),
                    ),
                    _ => None,
                }
            }
            topics::PAYMENTS => {
                let envelope = Envelope::<PaymentEvent>::from_bytes(&record.payload)?;
                match envelope.event {
                    PaymentEvent::PaymentAuthorized { order_id, .. } => {
                        transition(envelope.event_id, order_id, OrderStatus::Paid, None)
                    }
                    PaymentEvent::PaymentFailed {
                        order_id, reason, ..
                    } => transition(
                        envelope.event_id,
                        order_id,
                        OrderStatus::Cancelled,
                        Some(format!("payment failed: {reason}")),
                    ),
                    PaymentEvent::PaymentRequested { .. } => None,
                }
            }
            topics::SHIPPING => {
                let envelope = Envelope::<ShippingEvent>::from_bytes(&record.payload)?;
                match envelope.event {
                    ShippingEvent::ShipmentCreated { order_id, .. } => {
                        transition(envelope.event_id, order_id, OrderStatus::Shipped, None)
                    }
                    ShippingEvent::ShipmentDelivered { order_id, .. } => {
                        transition(envelope.event_id, order_id, OrderStatus::Delivered, None)
                    }
                }
            }
            _ => None,
        })
    }

    /// Applies the transitions `records` ask for, in order, in `tx`: each moves its order
    /// only where the state machine allows it from the order's state at that point, and
    /// enqueues `OrderStatusChanged` (and `PaymentRequested` on reservation). A chunk costs
    /// a handful of statements whatever its size: one marks the events processed (and says
    /// which were new), one reads the orders, one updates them, one fills the outbox.
    async fn apply_transitions(
        &self,
        tx: &mut Tx<'_>,
        records: &[&Incoming],
    ) -> Result<(), HandleError> {
        let mut transitions = Vec::new();
        for record in records {
            if let Some(transition) = Self::transition_of(record)? {
                transitions.push(transition);
            }
        }
        let ids: Vec<&str> = transitions.iter().map(|t| t.event_id.as_str()).collect();
        let mut new = first_times(tx, GROUP, &ids).await?;
        // Taken on first use: an event twice in one chunk counts once.
        transitions.retain(|t| new.remove(&t.event_id));
        if transitions.is_empty() {
            return Ok(());
        }
        let order_ids: Vec<&str> = transitions.iter().map(|t| t.order_id.as_str()).collect();
        let rows = rows_in(
            tx,
            "SELECT order_id, customer_id, status, total, currency FROM orders",
            "order_id",
            order_ids,
            "",
        )
        .await?;
        let mut orders: HashMap<String, OrderState> = HashMap::new();
        for row in rows {
            let order_id = text(&row, "order_id");
            let Some(status) = OrderStatus::parse(&text(&row, "status")) else {
                return Err(HandleError::Unprocessable(format!(
                    "order {order_id} has a bad status"
                )));
            };
            orders.insert(
                order_id,
                OrderState {
                    customer_id: text(&row, "customer_id"),
                    stored: status,
                    status,
                    reason: None,
                    total: text(&row, "total"),
                    currency: text(&row, "currency"),
                },
            );
        }
        let mut outbox_rows = Vec::new();
        for Transition {
            order_id,
            next,
            reason,
            ..
        } in transitions
        {
            let Some(order) = orders.get_mut(&order_id) else {
                tracing::warn!(order_id, "event for an unknown order");
                continue;
            };
            if !order.status.can_become(next) {
                tracing::debug!(order_id, current = ?order.status, ?next, "transition not allowed; ignored");
                continue;
            }
            let changed = Envelope::new(OrderEvent::OrderStatusChanged {
                order_id: order_id.clone(),
                customer_id: order.customer_id.clone(),
                from: order.status,
                to: next,
                reason: reason.clone(),
            });
            outbox_rows.push(outbox::Pending::new(
                topics::ORDERS,
                &order.customer_id,
                &changed,
            ));
            if next == OrderStatus::Reserved {
                let amount: Decimal = order.total.parse().map_err(|e| {
                    HandleError::Unprocessable(format!("order {order_id} total: {e}"))
                })?;
                let request = Envelope::new(PaymentEvent::PaymentRequested {
                    order_id: order_id.clone(),
                    customer_id: order.customer_id.clone(),
                    amount,
                    currency: order.currency.clone(),
                });
                outbox_rows.push(outbox::Pending::new(topics::PAYMENTS, &order_id, &request));
            }
            order.status = next;
            order.reason = reason;
        }
        let moved: Vec<(&String, &OrderState)> = orders
            .iter()
            .filter(|(_, order)| order.status != order.stored)
            .collect();
        if !moved.is_empty() {
            // One statement: each moved order to its new state, only from the state read.
            let n = moved.len();
            let sql = format!(
                "UPDATE orders SET status = v.column2, reason = v.column3, updated_at = $1 \
                 FROM (VALUES {}) AS v \
                 WHERE orders.order_id = v.column1 AND orders.status = v.column4",
                (0..n)
                    .map(|i| format!(
                        "(${}, ${}, ${}, ${})",
                        4 * i + 2,
                        4 * i + 3,
                        4 * i + 4,
                        4 * i + 5
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let sql = crate::db::for_connection(tx, &sql);
            let mut update = sqlx::query(&sql).bind(now_ms());
            for (order_id, order) in &moved {
                update = update
                    .bind(order_id.as_str())
                    .bind(order.status.as_str())
                    .bind(order.reason.clone())
                    .bind(order.stored.as_str());
            }
            let updated = update.execute(&mut **tx).await?.rows_affected();
            if updated != n as u64 {
                // Another writer moved one of them since it was read: start over.
                return Err(HandleError::Transient(format!(
                    "{} of {n} orders changed while their events were applied",
                    n as u64 - updated
                )));
            }
        }
        outbox::enqueue_rows(tx, Service::Order, &outbox_rows).await?;
        Ok(())
    }

    async fn load(&self, order_id: &str) -> Result<Option<OrderView>, ApiError> {
        let row = sqlx::query(
            "SELECT order_id, customer_id, status, total, currency, variant, items, reason
             FROM orders WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(self.db.reader())
        .await
        .map_err(|e| ApiError::internal("reading the order", e))?;
        row.map(|row| view(&row)).transpose()
    }
}

fn view(row: &sqlx::any::AnyRow) -> Result<OrderView, ApiError> {
    let status = text(row, "status");
    Ok(OrderView {
        order_id: text(row, "order_id"),
        customer_id: text(row, "customer_id"),
        status: OrderStatus::parse(&status)
            .ok_or_else(|| ApiError::internal("reading the order", "bad status"))?,
        total: text(row, "total")
            .parse()
            .map_err(|e| ApiError::internal("reading the order", e))?,
        currency: text(row, "currency"),
        variant: text(row, "variant"),
        items: serde_json::from_str(&text(row, "items"))
            .map_err(|e| ApiError::internal("reading the order", e))?,
        reason: row.try_get::<Option<String>, _>("reason").ok().flatten(),
    })
}

async fn place_order(
    State(service): State<OrderService>,
    caller: Authenticated,
    headers: HeaderMap,
    JsonBody(request): JsonBody<PlaceOrder>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    let customer_id = match &request.customer_id {
        Some(customer) if customer != &caller.0.sub => {
            caller.require_admin()?;
            customer.clone()
        }
        _ => caller.0.sub.clone(),
    };
    if request.items.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "an order needs at least one item",
        ));
    }
    if request.items.len() > MAX_LINES {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("an order has at most {MAX_LINES} lines"),
        ));
    }
    // Merge repeated products; check quantities.
    let mut wanted = BTreeMap::<String, u32>::new();
    for line in &request.items {
        if line.quantity == 0 || line.quantity > MAX_QUANTITY {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "quantity of {} must be between 1 and {MAX_QUANTITY}",
                    line.product_id
                ),
            ));
        }
        *wanted.entry(line.product_id.clone()).or_default() += line.quantity;
    }
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => match value.to_str() {
            Ok(key) if !key.is_empty() && key.len() <= 200 => Some(key.to_owned()),
            _ => {
                return Err(ApiError::bad_request(
                    "Idempotency-Key must be 1 to 200 visible ASCII characters",
                ))
            }
        },
    };
    let request_hash = {
        let canonical = serde_json::to_vec(&(&customer_id, &wanted, &request.shipping_address))
            .expect("serializable");
        format!("{:x}", Sha256::digest(canonical))
    };
    if let Some(key) = &idempotency_key {
        if let Some(existing) = replay(&service, &customer_id, key, &request_hash).await? {
            return Ok((StatusCode::OK, Json(existing)));
        }
    }

    // Price the lines from the catalog, at the customer's A/B variant's prices.
    let variant = variant_of(&customer_id).to_owned();
    let mut items = Vec::with_capacity(wanted.len());
    let mut total = Decimal::ZERO;
    for (product_id, quantity) in &wanted {
        let row = sqlx::query("SELECT unit_price FROM products WHERE product_id = $1")
            .bind(product_id)
            .fetch_optional(service.db.reader())
            .await
            .map_err(|e| ApiError::internal("reading the catalog", e))?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("unknown product {product_id}"),
                )
            })?;
        let list_price: Decimal = text(&row, "unit_price")
            .parse()
            .map_err(|e| ApiError::internal("reading the catalog", e))?;
        let unit_price = variant_price(&variant, list_price);
        total += unit_price * Decimal::from(*quantity);
        items.push(OrderItem {
            product_id: product_id.clone(),
            quantity: *quantity,
            unit_price,
        });
    }

    let order_id = format!("o-{}", uuid::Uuid::new_v4().simple());
    let event = Envelope::new(OrderEvent::OrderCreated {
        order_id: order_id.clone(),
        customer_id: customer_id.clone(),
        items: items.clone(),
        total,
        currency: "EUR".into(),
        variant: variant.clone(),
        shipping_address: request.shipping_address.clone(),
        device_id: request.device_id.clone(),
    });
    let stored = service
        .writer
        .store(NewOrder {
            order_id: order_id.clone(),
            customer_id: customer_id.clone(),
            idempotency: idempotency_key
                .clone()
                .map(|key| (key, request_hash.clone())),
            status: OrderStatus::Created.as_str(),
            total: total.to_string(),
            currency: "EUR".into(),
            variant: variant.clone(),
            items: serde_json::to_string(&items).expect("serializable"),
            created_at: now_ms(),
            event: outbox::Pending::new(topics::ORDERS, &customer_id, &event),
        })
        .await
        .map_err(|e| ApiError::internal("storing the order", e))?;
    if stored == Stored::KeyTaken {
        // A concurrent request with the same key won the race.
        let key = idempotency_key
            .as_deref()
            .expect("only a keyed order loses its key");
        return match replay(&service, &customer_id, key, &request_hash).await? {
            Some(existing) => Ok((StatusCode::OK, Json(existing))),
            None => Err(ApiError::new(
                StatusCode::CONFLICT,
                "a request with this Idempotency-Key is in progress",
            )),
        };
    }
    service.relay.notify();
    let metrics = crate::metrics::global();
    let by_variant = crate::metrics::labels(&[("variant", &variant)]);
    metrics.orders_created.get_or_create(&by_variant).inc();
    metrics
        .revenue_cents
        .get_or_create(&by_variant)
        .inc_by(crate::streams::cents(total).max(0) as u64);
    Ok((
        StatusCode::CREATED,
        Json(OrderView {
            order_id,
            customer_id,
            status: OrderStatus::Created,
            total,
            currency: "EUR".into(),
            variant,
            items,
            reason: None,
        }),
    ))
}

/// The order an earlier request with `key` created, or `None` if the key is new; a 422 if
/// the key was used for a different request.
async fn replay(
    service: &OrderService,
    customer_id: &str,
    key: &str,
    request_hash: &str,
) -> Result<Option<OrderView>, ApiError> {
    let row = sqlx::query(
        "SELECT request_hash, order_id FROM idempotency_keys
         WHERE customer_id = $1 AND idempotency_key = $2",
    )
    .bind(customer_id)
    .bind(key)
    .fetch_optional(service.db.reader())
    .await
    .map_err(|e| ApiError::internal("reading idempotency keys", e))?;
    let Some(row) = row else { return Ok(None) };
    if text(&row, "request_hash") != request_hash {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "this Idempotency-Key was used for a different request",
        ));
    }
    service.load(&text(&row, "order_id")).await
}

async fn get_order(
    State(service): State<OrderService>,
    caller: Authenticated,
    Path(order_id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let order = service
        .load(&order_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order {order_id}")))?;
    caller.require_user_or_admin(&order.customer_id)?;
    Ok(Json(order))
}

/// `?user=` of `GET /orders`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    user: Option<String>,
}

async fn list_orders(
    State(service): State<OrderService>,
    caller: Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<OrderView>>, ApiError> {
    let user = query.user.unwrap_or_else(|| caller.0.sub.clone());
    caller.require_user_or_admin(&user)?;
    let rows = sqlx::query(
        "SELECT order_id, customer_id, status, total, currency, variant, items, reason
         FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 100",
    )
    .bind(&user)
    .fetch_all(service.db.reader())
    .await
    .map_err(|e| ApiError::internal("reading orders", e))?;
    rows.iter().map(view).collect::<Result<_, _>>().map(Json)
}

impl Writer for OrderService {
    const RECORDS_PER_TRANSACTION: usize = 200;

    async fn write(&self, tx: &mut Tx<'_>, records: &[&Incoming]) -> Result<(), HandleError> {
        self.apply_transitions(tx, records).await
    }

    fn committed(&self) {
        self.relay.notify();
    }
}

/// A status change an event asks for.
struct Transition {
    event_id: String,
    order_id: String,
    next: OrderStatus,
    reason: Option<String>,
}

/// An order while a chunk of transitions is applied to it.
struct OrderState {
    customer_id: String,
    /// Its status in the database.
    stored: OrderStatus,
    /// Its status after the transitions so far.
    status: OrderStatus,
    reason: Option<String>,
    total: String,
    currency: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk of transitions: several for one order apply in order, a redelivered event
    /// and a transition the state machine refuses change nothing, an unknown order is
    /// skipped, and the outbox gets each change once.
    #[tokio::test]
    async fn a_chunk_of_events_moves_each_order_through_the_state_machine_in_order() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        for (id, status) in [("o-1", "CREATED"), ("o-2", "PAID")] {
            sqlx::query(
                "INSERT INTO orders (order_id, customer_id, status, total, currency, variant, \
                 items, reason, created_at, updated_at) \
                 VALUES ($1, 'c-1', $2, '10.00', 'EUR', 'A', '[]', NULL, 0, 0)",
            )
            .bind(id)
            .bind(status)
            .execute(db.pool())
            .await
            .unwrap();
        }
        let producer = crate::producer::Producer::new(
            rdkafka::ClientConfig::new().set("bootstrap.servers", "127.0.0.1:1"),
        )
        .unwrap();
        let relay = OutboxRelay::new(db.clone(), producer, "test", [Service::Order]);
        let service = OrderService::new(db.clone(), JwtKeys::new(b"k"), relay);
        let reserved = Envelope::new(InventoryEvent::InventoryReserved {
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            items: Vec::new(),
        });
        let paid = |order: &str| {
            Envelope::new(PaymentEvent::PaymentAuthorized {
                order_id: order.into(),
                customer_id: "c-1".into(),
                amount: Decimal::TEN,
                attempts: 1,
            })
        };
        let record = |topic: &str, payload: Vec<u8>| Incoming {
            topic: topic.into(),
            payload,
            ..Incoming::default()
        };
        let records = [
            record(topics::INVENTORY, reserved.to_bytes()),
            record(topics::INVENTORY, reserved.to_bytes()), // redelivered
            record(topics::PAYMENTS, paid("o-1").to_bytes()),
            record(topics::PAYMENTS, paid("o-2").to_bytes()), // PAID cannot become PAID
            record(topics::PAYMENTS, paid("o-unknown").to_bytes()),
        ];
        let refs: Vec<&Incoming> = records.iter().collect();
        let mut tx = db.pool().begin().await.unwrap();
        service.apply_transitions(&mut tx, &refs).await.unwrap();
        tx.commit().await.unwrap();

        let status = |id: &'static str| {
            let db = db.clone();
            async move {
                sqlx::query("SELECT status FROM orders WHERE order_id = $1")
                    .bind(id)
                    .fetch_one(db.pool())
                    .await
                    .unwrap()
                    .get::<String, _>("status")
            }
        };
        assert_eq!(status("o-1").await, "PAID");
        assert_eq!(status("o-2").await, "PAID");
        let outbox: Vec<(String, String)> =
            sqlx::query("SELECT topic, payload FROM outbox ORDER BY rowid")
                .fetch_all(db.pool())
                .await
                .unwrap()
                .iter()
                .map(|row| (row.get("topic"), row.get("payload")))
                .collect();
        let kinds: Vec<(&str, bool)> = outbox
            .iter()
            .map(|(topic, payload)| (topic.as_str(), payload.contains("\"to\":\"PAID\"")))
            .collect();
        assert_eq!(
            kinds,
            [
                (topics::ORDERS, false),   // CREATED -> RESERVED
                (topics::PAYMENTS, false), // its PaymentRequested
                (topics::ORDERS, true),    // RESERVED -> PAID
            ]
        );
        // Applying the same chunk again changes nothing.
        let mut tx = db.pool().begin().await.unwrap();
        service.apply_transitions(&mut tx, &refs).await.unwrap();
        tx.commit().await.unwrap();
        let rows: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbox")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get("n");
        assert_eq!(rows, 3);
    }

    #[test]
    fn variant_b_pays_five_percent_less_to_the_cent() {
        use std::str::FromStr;
        let price = |s| Decimal::from_str(s).unwrap();
        assert_eq!(variant_price("A", price("24.99")), price("24.99"));
        assert_eq!(variant_price("B", price("24.99")), price("23.74"));
        assert_eq!(variant_price("B", price("9.99")), price("9.49"));
        assert_eq!(variant_price("B", price("319.00")), price("303.05"));
    }

    #[test]
    fn variants_are_stable_and_both_occur() {
        assert_eq!(variant_of("c-1"), variant_of("c-1"));
        let variants: std::collections::BTreeSet<_> =
            (0..50).map(|i| variant_of(&format!("c-{i}"))).collect();
        assert_eq!(variants.len(), 2);
    }
}
