//! The shipping service: ships paid orders (group `shipping-service` on `order-events`).
//!
//! Every new order gets a quote (carrier and cost, [`quote`]) in the service's own
//! `shipments` table; when it becomes `PAID` it ships (`ShipmentCreated`, tracking number); the simulated carrier delivers it after the configured delay, when a
//! ticker finds the shipment due and emits `ShipmentDelivered`. Both steps are database
//! transactions with their events in the outbox, so a restart loses no shipment.
//!
//! The records of a poll are applied in chunks of up to 200 with a fixed number of
//! statements per chunk (the chunk's shipments are read once, changed in memory and written
//! back with multi-row statements), and the carrier delivers every due shipment in one.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::app::Service;
use crate::consumer::{HandleError, Incoming, Tx, Writer};
use crate::db::{first_times, list, rows_in, text, Database};
use crate::events::{topics, Envelope, OrderEvent, OrderStatus, ShippingEvent};
use crate::outbox::{self, OutboxRelay};

/// The consumer group (and dedup name) of the service.
pub const GROUP: &str = "shipping-service";

/// Carrier and cost for an order of `total`: free express over 200, standard otherwise.
pub fn quote(total: Decimal) -> (&'static str, Decimal) {
    if total >= Decimal::from(200) {
        ("DHL Express", Decimal::ZERO)
    } else {
        ("PostNL", Decimal::from_str("4.95").expect("literal"))
    }
}

/// The shipping service's state.
#[derive(Clone)]
pub struct ShippingService {
    db: Database,
    relay: OutboxRelay,
    delivery_delay: Duration,
}

impl ShippingService {
    /// The service over `db`; the carrier delivers after `delivery_delay`.
    pub fn new(db: Database, relay: OutboxRelay, delivery_delay: Duration) -> Self {
        ShippingService {
            db,
            relay,
            delivery_delay,
        }
    }

    /// Delivers due shipments until the task is dropped.
    pub async fn run_carrier(self) {
        loop {
            if let Err(e) = self.deliver_due().await {
                tracing::warn!("carrier: {e}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Delivers the shipments that are due (up to 1,000 at a time) in one transaction.
    async fn deliver_due(&self) -> sqlx::Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        let due = sqlx::query(
            "SELECT order_id FROM shipments
             WHERE status = 'SHIPPED' AND deliver_at <= $1 LIMIT 1000",
        )
        .bind(now)
        .fetch_all(self.db.reader())
        .await?;
        if due.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.pool().begin().await?;
        // Only those still SHIPPED: another process's carrier may have delivered some.
        let sql = format!(
            "UPDATE shipments SET status = 'DELIVERED' \
             WHERE status = 'SHIPPED' AND order_id IN ({}) RETURNING order_id, customer_id",
            list(1, due.len())
        );
        let sql = crate::db::for_connection(&tx, &sql);
        let mut update = sqlx::query(&sql);
        for row in &due {
            update = update.bind(text(row, "order_id"));
        }
        let delivered: Vec<outbox::Pending> = update
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                let order_id = text(row, "order_id");
                let event = Envelope::new(ShippingEvent::ShipmentDelivered {
                    order_id: order_id.clone(),
                    customer_id: text(row, "customer_id"),
                });
                outbox::Pending::new(topics::SHIPPING, &order_id, &event)
            })
            .collect();
        outbox::enqueue_rows(&mut tx, Service::Shipping, &delivered).await?;
        tx.commit().await?;
        self.relay.notify();
        Ok(())
    }

    /// Applies a chunk of `order-events` records in order, in `tx`, with a fixed number of
    /// statements whatever its size: one marks the events processed (and says which are
    /// new), one reads the chunk's shipments, one inserts the new ones, one ships the
    /// quoted ones, one fills the outbox.
    async fn apply_chunk(&self, tx: &mut Tx<'_>, records: &[&Incoming]) -> Result<(), HandleError> {
        let mut requests = Vec::new();
        for record in records {
            let envelope = Envelope::<OrderEvent>::from_bytes(&record.payload)?;
            let event_id = envelope.event_id.to_string();
            match envelope.event {
                OrderEvent::OrderCreated {
                    order_id,
                    customer_id,
                    total,
                    ..
                } => requests.push((event_id, order_id, customer_id, Some(total))),
                OrderEvent::OrderStatusChanged {
                    order_id,
                    customer_id,
                    to: OrderStatus::Paid,
                    ..
                } => requests.push((event_id, order_id, customer_id, None)),
                // The rest do not concern shipping; skipped without a statement.
                OrderEvent::OrderStatusChanged { .. } => {}
            }
        }
        let ids: Vec<&str> = requests.iter().map(|r| r.0.as_str()).collect();
        let mut new = first_times(tx, GROUP, &ids).await?;
        // Taken on first use: an event twice in one chunk counts once.
        requests.retain(|r| new.remove(&r.0));
        if requests.is_empty() {
            return Ok(());
        }
        let order_ids: Vec<&str> = requests.iter().map(|r| r.1.as_str()).collect();
        let rows = rows_in(
            tx,
            "SELECT order_id, customer_id, carrier, cost, status FROM shipments",
            "order_id",
            order_ids,
            "",
        )
        .await?;
        let mut shipments: HashMap<String, Shipment> = HashMap::new();
        for row in rows {
            let status = text(&row, "status");
            shipments.insert(
                text(&row, "order_id"),
                Shipment {
                    customer_id: text(&row, "customer_id"),
                    carrier: text(&row, "carrier"),
                    cost: text(&row, "cost"),
                    quoted: status == "QUOTED",
                    tracking: None,
                    deliver_at: 0,
                    stored: true,
                },
            );
        }
        let deliver_at = chrono::Utc::now().timestamp_millis()
            + i64::try_from(self.delivery_delay.as_millis()).unwrap_or(i64::MAX);
        let mut outbox_rows = Vec::new();
        for (_, order_id, customer_id, total) in requests {
            match total {
                Some(total) => {
                    // A quote, unless the order has a shipment already.
                    let (carrier, cost) = quote(total);
                    shipments.entry(order_id).or_insert(Shipment {
                        customer_id,
                        carrier: carrier.to_owned(),
                        cost: cost.to_string(),
                        quoted: true,
                        tracking: None,
                        deliver_at: 0,
                        stored: false,
                    });
                }
                None => {
                    let Some(shipment) = shipments.get_mut(&order_id).filter(|s| s.quoted) else {
                        tracing::warn!(order_id, "paid order without a quote; not shipped");
                        continue;
                    };
                    let tracking =
                        format!("TRK{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
                    let event = Envelope::new(ShippingEvent::ShipmentCreated {
                        order_id: order_id.clone(),
                        customer_id,
                        carrier: shipment.carrier.clone(),
                        cost: shipment.cost.parse().unwrap_or_default(),
                        tracking: tracking.clone(),
                    });
                    outbox_rows.push(outbox::Pending::new(topics::SHIPPING, &order_id, &event));
                    shipment.quoted = false;
                    shipment.tracking = Some(tracking);
                    shipment.deliver_at = deliver_at;
                }
            }
        }

        let created: Vec<(&String, &Shipment)> =
            shipments.iter().filter(|(_, s)| !s.stored).collect();
        crate::db::insert_rows(
            tx,
            "INSERT INTO shipments (order_id, customer_id, carrier, cost, tracking, deliver_at, status)",
            " ON CONFLICT DO NOTHING",
            7,
            &created,
            |q, (order_id, s)| q.bind(order_id.as_str()).bind(&s.customer_id).bind(&s.carrier).bind(&s.cost).bind(s.tracking.clone()).bind(s.tracking.as_ref().map(|_| s.deliver_at)).bind(if s.quoted { "QUOTED" } else { "SHIPPED" }),
        )
        .await?;
        let shipped: Vec<(&String, &Shipment)> = shipments
            .iter()
            .filter(|(_, s)| s.stored && s.tracking.is_some())
            .collect();
        if !shipped.is_empty() {
            let sql = format!(
                "UPDATE shipments SET status = 'SHIPPED', deliver_at = $1, tracking = v.column2 \
                 FROM (VALUES {}) AS v \
                 WHERE shipments.order_id = v.column1 AND shipments.status = 'QUOTED'",
                (0..shipped.len())
                    .map(|i| format!("(${}, ${})", 2 * i + 2, 2 * i + 3))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let sql = crate::db::for_connection(tx, &sql);
            let mut update = sqlx::query(&sql).bind(deliver_at);
            for (order_id, s) in &shipped {
                update = update.bind(order_id.as_str()).bind(s.tracking.clone());
            }
            let updated = update.execute(&mut **tx).await?.rows_affected();
            if updated != shipped.len() as u64 {
                // Another writer shipped one of them since it was read: start over.
                return Err(HandleError::Transient(format!(
                    "{updated} of {} quoted shipments shipped; shipments changed while their \
                     events were applied",
                    shipped.len()
                )));
            }
        }
        outbox::enqueue_rows(tx, Service::Shipping, &outbox_rows).await?;
        Ok(())
    }
}

/// An order's shipment while a chunk of events is applied to it.
struct Shipment {
    customer_id: String,
    carrier: String,
    cost: String,
    /// Quoted and not yet shipped.
    quoted: bool,
    /// Set when this chunk ships it.
    tracking: Option<String>,
    deliver_at: i64,
    /// Whether the database has it (else this chunk quoted it).
    stored: bool,
}

impl Writer for ShippingService {
    const RECORDS_PER_TRANSACTION: usize = 200;

    async fn write(&self, tx: &mut Tx<'_>, records: &[&Incoming]) -> Result<(), HandleError> {
        self.apply_chunk(tx, records).await
    }

    fn committed(&self) {
        self.relay.notify();
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;

    fn record(event: OrderEvent) -> Incoming {
        Incoming {
            topic: topics::ORDERS.into(),
            payload: Envelope::new(event).to_bytes(),
            ..Incoming::default()
        }
    }

    fn created(order_id: &str, total: i64) -> Incoming {
        record(OrderEvent::OrderCreated {
            order_id: order_id.into(),
            customer_id: "c-1".into(),
            items: Vec::new(),
            total: Decimal::from(total),
            currency: "EUR".into(),
            variant: "A".into(),
            shipping_address: None,
            device_id: None,
        })
    }

    fn paid(order_id: &str) -> Incoming {
        record(OrderEvent::OrderStatusChanged {
            order_id: order_id.into(),
            customer_id: "c-1".into(),
            from: OrderStatus::Reserved,
            to: OrderStatus::Paid,
            reason: None,
        })
    }

    /// `(order, status, has tracking)` of every shipment, and the outbox's event types.
    async fn state(db: &Database) -> (Vec<(String, String, bool)>, Vec<String>) {
        let shipments =
            sqlx::query("SELECT order_id, status, tracking FROM shipments ORDER BY order_id")
                .fetch_all(db.pool())
                .await
                .unwrap()
                .iter()
                .map(|row| {
                    (
                        row.get("order_id"),
                        row.get("status"),
                        row.get::<Option<String>, _>("tracking").is_some(),
                    )
                })
                .collect();
        let events = sqlx::query("SELECT payload FROM outbox ORDER BY rowid")
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| {
                let payload: serde_json::Value =
                    serde_json::from_str(&row.get::<String, _>("payload")).unwrap();
                format!("{} {}", payload["type"], payload["order_id"]).replace('"', "")
            })
            .collect();
        (shipments, events)
    }

    /// Chunks of events quote and ship in order (an order quoted and paid in one chunk
    /// ships; a redelivered payment and a payment without a quote ship nothing), and the
    /// carrier delivers every due shipment once.
    #[tokio::test]
    async fn chunks_quote_and_ship_and_the_carrier_delivers_once() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        let producer = crate::producer::Producer::new(
            rdkafka::ClientConfig::new().set("bootstrap.servers", "127.0.0.1:1"),
        )
        .unwrap();
        let relay = OutboxRelay::new(db.clone(), producer, "test", [Service::Shipping]);
        let service = ShippingService::new(db.clone(), relay, Duration::ZERO);
        let apply = |records: Vec<Incoming>| {
            let (db, service) = (db.clone(), service.clone());
            async move {
                let refs: Vec<&Incoming> = records.iter().collect();
                let mut tx = db.pool().begin().await.unwrap();
                service.apply_chunk(&mut tx, &refs).await.unwrap();
                tx.commit().await.unwrap();
            }
        };
        let paid_b = paid("o-b");
        apply(vec![created("o-a", 20), paid("o-a"), created("o-b", 300)]).await;
        apply(vec![
            paid_b.clone(),
            paid_b,
            paid("o-c"),
            created("o-a", 20),
        ])
        .await;
        let s = |s: &str| s.to_owned();
        let (shipments, events) = state(&db).await;
        assert_eq!(
            shipments,
            [
                (s("o-a"), s("SHIPPED"), true),
                (s("o-b"), s("SHIPPED"), true)
            ]
        );
        assert_eq!(events, ["ShipmentCreated o-a", "ShipmentCreated o-b"]);
        let carrier: String = sqlx::query("SELECT carrier FROM shipments WHERE order_id = 'o-b'")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get("carrier");
        assert_eq!(carrier, "DHL Express", "the quote of o-b's total");

        service.deliver_due().await.unwrap();
        service.deliver_due().await.unwrap();
        let (shipments, mut events) = state(&db).await;
        assert!(
            shipments.iter().all(|s| s.1 == "DELIVERED"),
            "{shipments:?}"
        );
        events[2..].sort();
        assert_eq!(
            events[2..],
            [s("ShipmentDelivered o-a"), s("ShipmentDelivered o-b")]
        );
    }

    #[test]
    fn big_orders_ship_free_by_express() {
        assert_eq!(quote(Decimal::from(250)), ("DHL Express", Decimal::ZERO));
        assert_eq!(quote(Decimal::from(20)).0, "PostNL");
        assert_eq!(quote(Decimal::from(20)).1.to_string(), "4.95");
    }
}
