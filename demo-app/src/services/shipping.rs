//! The shipping service: ships paid orders (group `shipping-service` on `order-events`).
//!
//! Every new order gets a quote (carrier and cost, [`quote`]) in the service's own
//! `shipments` table; when it becomes `PAID` it ships (`ShipmentCreated`, tracking number); the simulated carrier delivers it after the configured delay, when a
//! ticker finds the shipment due and emits `ShipmentDelivered`. Both steps are database
//! transactions with their events in the outbox, so a restart loses no shipment.

use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::app::Service;
use crate::consumer::{HandleError, Incoming, Tx, Writer};
use crate::db::{first_time, text, Database};
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

    /// Handles one `order-events` record: `OrderCreated` quotes the shipment (the service
    /// keeps what it needs of the order itself), `PAID` ships it.
    async fn apply_event(&self, tx: &mut Tx<'_>, record: &Incoming) -> Result<(), HandleError> {
        let envelope = Envelope::<OrderEvent>::from_bytes(&record.payload)?;
        // Only these concern shipping; the rest are skipped without a statement.
        let relevant = matches!(
            &envelope.event,
            OrderEvent::OrderCreated { .. }
                | OrderEvent::OrderStatusChanged {
                    to: OrderStatus::Paid,
                    ..
                }
        );
        if !relevant || !first_time(tx, GROUP, &envelope.event_id.to_string()).await? {
            return Ok(());
        }
        match &envelope.event {
            OrderEvent::OrderCreated {
                order_id,
                customer_id,
                total,
                ..
            } => {
                let (carrier, cost) = quote(*total);
                sqlx::query(
                    "INSERT INTO shipments (order_id, customer_id, carrier, cost, tracking,
                                            deliver_at, status)
                     VALUES ($1, $2, $3, $4, NULL, NULL, 'QUOTED') ON CONFLICT DO NOTHING",
                )
                .bind(order_id)
                .bind(customer_id)
                .bind(carrier)
                .bind(cost.to_string())
                .execute(&mut **tx)
                .await?;
            }
            OrderEvent::OrderStatusChanged {
                order_id,
                customer_id,
                to: OrderStatus::Paid,
                ..
            } => {
                let Some(row) = sqlx::query(
                    "SELECT carrier, cost FROM shipments WHERE order_id = $1 AND status = 'QUOTED'",
                )
                .bind(order_id)
                .fetch_optional(&mut **tx)
                .await?
                else {
                    tracing::warn!(order_id, "paid order without a quote; not shipped");
                    return Ok(());
                };
                let tracking = format!("TRK{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
                let deliver_at = chrono::Utc::now().timestamp_millis()
                    + i64::try_from(self.delivery_delay.as_millis()).unwrap_or(i64::MAX);
                sqlx::query(
                    "UPDATE shipments SET status = 'SHIPPED', tracking = $1, deliver_at = $2
                     WHERE order_id = $3",
                )
                .bind(&tracking)
                .bind(deliver_at)
                .bind(order_id)
                .execute(&mut **tx)
                .await?;
                let event = Envelope::new(ShippingEvent::ShipmentCreated {
                    order_id: order_id.clone(),
                    customer_id: customer_id.clone(),
                    carrier: text(&row, "carrier"),
                    cost: text(&row, "cost").parse().unwrap_or_default(),
                    tracking,
                });
                outbox::enqueue(tx, Service::Shipping, topics::SHIPPING, order_id, &event).await?;
            }
            _ => {}
        }
        Ok(())
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

    async fn deliver_due(&self) -> sqlx::Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        let due = sqlx::query(
            "SELECT order_id, customer_id FROM shipments
             WHERE status = 'SHIPPED' AND deliver_at <= $1 LIMIT 1000",
        )
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        if due.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.pool().begin().await?;
        for row in &due {
            let order_id = text(row, "order_id");
            let updated = sqlx::query(
                "UPDATE shipments SET status = 'DELIVERED' WHERE order_id = $1 AND status = 'SHIPPED'",
            )
            .bind(&order_id)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 1 {
                let event = Envelope::new(ShippingEvent::ShipmentDelivered {
                    order_id: order_id.clone(),
                    customer_id: text(row, "customer_id"),
                });
                outbox::enqueue(
                    &mut tx,
                    Service::Shipping,
                    topics::SHIPPING,
                    &order_id,
                    &event,
                )
                .await?;
            }
        }
        tx.commit().await?;
        self.relay.notify();
        Ok(())
    }
}

impl Writer for ShippingService {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_orders_ship_free_by_express() {
        assert_eq!(quote(Decimal::from(250)), ("DHL Express", Decimal::ZERO));
        assert_eq!(quote(Decimal::from(20)).0, "PostNL");
        assert_eq!(quote(Decimal::from(20)).1.to_string(), "4.95");
    }
}
