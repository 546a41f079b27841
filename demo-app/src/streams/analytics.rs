//! Order analytics: the kstreams app behind the dashboard's sales charts and the analytics
//! tables.
//!
//! ```text
//! user-events ──aggregate──▶ customers (table) ─┐
//! order-events ─OrderCreated─▶ placed ──left join┴─▶ enriched ─▶ analytics-enriched-orders
//!                                  enriched ─flat_map (total, product:*, variant:*)─▶ repartition (once)
//!                                    ├─ tumbling 1 h      ─▶ sales-hourly  ─┐
//!                                    └─ hopping 1 min/10 s ─▶ sales-minute ─┴▶ analytics-sales
//! order-events ─select_key(order id)─▶ repartition ─aggregate─▶ orders (table)
//!                                    ├─ group_by status  ─count─────▶ order-status-counts
//!                                    └─ group_by variant ─aggregate─▶ variant-conversion
//! ```
//!
//! Orders and user events are both keyed by customer id on topics with the same partition
//! count, so the join needs no repartitioning. [`AnalyticsSink`] writes the two output
//! topics into the `analytics_orders` and `analytics_sales` tables with idempotent upserts,
//! so redelivery (at-least-once) changes nothing. Every store can also be queried live
//! through [`StreamsApp::with`](super::StreamsApp::with).

use std::time::Duration;

use kstreams::dsl::{
    Consumed, Grouped, Materialized, Produced, Repartitioned, StreamsBuilder, TimeWindows,
};
use kstreams::serde::Serdes;
use kstreams::topology::Topology;
use kstreams::TopologyError;
use serde::{Deserialize, Serialize};

use super::{amount, cents, event_time, events};
use crate::consumer::{HandleError, Incoming, Tx, Writer};
use crate::events::{topics, OrderEvent, OrderStatus, UserEvent};

/// The application id (consumer group, prefix of its internal topics).
pub const APPLICATION_ID: &str = "shop-order-analytics";
/// Customer profiles built from `user-events`: customer id → [`Customer`].
pub const CUSTOMERS_STORE: &str = "analytics-customers";
/// Sales per dimension and hour: `Windowed<dimension>` → [`Sales`].
pub const SALES_HOURLY_STORE: &str = "analytics-sales-hourly";
/// Sales per dimension in one-minute windows advancing by ten seconds.
pub const SALES_MINUTE_STORE: &str = "analytics-sales-minute";
/// Every order's latest state: order id → [`OrderSummary`].
pub const ORDERS_STORE: &str = "analytics-orders";
/// How many orders are in each status: status → count.
pub const STATUS_COUNTS_STORE: &str = "analytics-order-status-counts";
/// Conversion per A/B variant: variant → [`VariantStats`].
pub const VARIANTS_STORE: &str = "analytics-variant-conversion";
/// Output: orders joined with their customer, keyed by order id.
pub const ENRICHED_TOPIC: &str = "analytics-enriched-orders";
/// Output: a sales window's latest totals at each commit (the aggregation's write cache
/// collapses the updates in between), keyed by `granularity|dimension|window start`.
pub const SALES_TOPIC: &str = "analytics-sales";
/// The sink's consumer group.
pub const SINK_GROUP: &str = "analytics-sink";

/// Hourly sales windows.
pub const HOUR: Duration = Duration::from_secs(3600);
/// The live chart's window.
pub const MINUTE: Duration = Duration::from_secs(60);
/// How far the live chart's window advances.
pub const MINUTE_ADVANCE: Duration = Duration::from_secs(10);
/// How late an order may arrive and still count in its window.
pub const GRACE: Duration = Duration::from_secs(30);

/// What analytics knows about a customer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Display name.
    pub name: String,
    /// Country code.
    pub country: String,
}

/// An order as placed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedOrder {
    /// The order id.
    pub order_id: String,
    /// Who placed it.
    pub customer_id: String,
    /// Total in cents.
    pub total_cents: i64,
    /// Its currency.
    pub currency: String,
    /// The A/B variant it was placed under.
    pub variant: String,
    /// `(product id, quantity, line total in cents)`.
    pub lines: Vec<(String, u32, i64)>,
    /// When it was placed (ms).
    pub placed_at: i64,
}

/// An order with its customer, as written to [`ENRICHED_TOPIC`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrichedOrder {
    /// The order.
    #[serde(flatten)]
    pub order: PlacedOrder,
    /// The customer's name, when the customer is known.
    pub customer_name: Option<String>,
    /// The customer's country, when known.
    pub customer_country: Option<String>,
}

kstreams::json_serde!(PlacedOrder, EnrichedOrder, SalesRow);

/// Sales of one dimension in one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sales {
    /// Orders.
    pub orders: i64,
    /// Units sold.
    pub units: i64,
    /// Revenue in cents.
    pub revenue_cents: i64,
}

impl std::ops::Add for Sales {
    type Output = Sales;
    fn add(self, other: Sales) -> Sales {
        Sales {
            orders: self.orders + other.orders,
            units: self.units + other.units,
            revenue_cents: self.revenue_cents + other.revenue_cents,
        }
    }
}

/// One window's sales as written to [`SALES_TOPIC`] and the `analytics_sales` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesRow {
    /// `hour` or `minute`.
    pub granularity: String,
    /// `total`, `product:<id>` or `variant:<name>`.
    pub dimension: String,
    /// Window start (ms).
    pub window_start: i64,
    /// Window end (ms, exclusive).
    pub window_end: i64,
    /// The sales.
    #[serde(flatten)]
    pub sales: Sales,
}

/// The latest state of an order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    /// Who placed it.
    pub customer_id: String,
    /// Its A/B variant (empty until its `OrderCreated` is seen).
    pub variant: String,
    /// Total in cents.
    pub total_cents: i64,
    /// Its status.
    pub status: String,
    /// When it last changed (ms).
    pub updated_at: i64,
}

impl OrderSummary {
    /// Paid, shipped or delivered: the checkout converted.
    pub fn converted(&self) -> bool {
        matches!(self.status.as_str(), "PAID" | "SHIPPED" | "DELIVERED")
    }
}

/// Conversion of one A/B variant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantStats {
    /// Orders placed under it.
    pub orders: i64,
    /// Of those, paid (or further).
    pub converted: i64,
    /// Revenue of the converted orders, in cents.
    pub revenue_cents: i64,
}

impl VariantStats {
    fn apply(mut self, order: &OrderSummary, sign: i64) -> Self {
        self.orders += sign;
        if order.converted() {
            self.converted += sign;
            self.revenue_cents += sign * order.total_cents;
        }
        self
    }
}

fn placed(event: &OrderEvent, at: i64) -> Option<PlacedOrder> {
    match event {
        OrderEvent::OrderCreated {
            order_id,
            customer_id,
            items,
            total,
            currency,
            variant,
            ..
        } => Some(PlacedOrder {
            order_id: order_id.clone(),
            customer_id: customer_id.clone(),
            total_cents: cents(*total),
            currency: currency.clone(),
            variant: variant.clone(),
            lines: items
                .iter()
                .map(|item| {
                    let line = item.unit_price * rust_decimal::Decimal::from(item.quantity);
                    (item.product_id.clone(), item.quantity, cents(line))
                })
                .collect(),
            placed_at: at,
        }),
        OrderEvent::OrderStatusChanged { .. } => None,
    }
}

/// The sales an order adds to each of its dimensions.
fn sales_lines(order: &PlacedOrder) -> Vec<(String, Sales)> {
    let units: i64 = order.lines.iter().map(|(_, q, _)| i64::from(*q)).sum();
    let mut lines = vec![
        (
            "total".to_owned(),
            Sales {
                orders: 1,
                units,
                revenue_cents: order.total_cents,
            },
        ),
        (
            format!("variant:{}", order.variant),
            Sales {
                orders: 1,
                units,
                revenue_cents: order.total_cents,
            },
        ),
    ];
    for (product, quantity, line_cents) in &order.lines {
        lines.push((
            format!("product:{product}"),
            Sales {
                orders: 1,
                units: i64::from(*quantity),
                revenue_cents: *line_cents,
            },
        ));
    }
    lines
}

/// Builds the order analytics topology.
pub fn topology() -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    let string = Serdes::string;

    // Customers: a table folded from user events (registered, then updated).
    let customers = builder
        .stream_with(
            topics::USERS,
            Consumed::with(string(), events::<UserEvent>()).with_timestamp_extractor(event_time),
        )
        .group_by_key_with(Grouped::with(string(), events::<UserEvent>()))
        .aggregate_with(
            Customer::default,
            |_, event, mut customer| {
                if let UserEvent::UserRegistered { name, country, .. } = event.event {
                    customer = Customer { name, country };
                }
                customer
            },
            Materialized::with(string(), Serdes::postcard()).with_name(CUSTOMERS_STORE),
        );

    let orders = builder.stream_with(
        topics::ORDERS,
        Consumed::with(string(), events::<OrderEvent>()).with_timestamp_extractor(event_time),
    );

    // Enrichment: placed orders (keyed by customer id) joined with the customer table.
    let enriched = orders
        .flat_map_values(|event| placed(&event.event, event.occurred_at.timestamp_millis()))
        .left_join(&customers, |order, customer: Option<&Customer>| {
            EnrichedOrder {
                order,
                customer_name: customer.map(|c| c.name.clone()),
                customer_country: customer.map(|c| c.country.clone()),
            }
        });
    enriched
        .select_key(|_, enriched| enriched.order.order_id.clone())
        .to_with(ENRICHED_TOPIC, Produced::with(string(), Serdes::json()));

    // Sales per dimension, in hourly and in sliding one-minute windows.
    // One repartition topic (keyed by dimension) feeds both window sizes.
    let by_dimension = enriched
        .flat_map(|_, enriched| sales_lines(&enriched.order))
        .repartition_with(
            Repartitioned::with(string(), Serdes::postcard::<Sales>())
                .with_name("sales-by-dimension"),
        )
        .group_by_key_with(Grouped::with(string(), Serdes::postcard::<Sales>()));
    let windowed = [
        (
            "hour",
            TimeWindows::of_size_and_grace(HOUR, GRACE),
            SALES_HOURLY_STORE,
        ),
        (
            "minute",
            TimeWindows::of_size_and_grace(MINUTE, GRACE).advance_by(MINUTE_ADVANCE),
            SALES_MINUTE_STORE,
        ),
    ];
    for (granularity, windows, store) in windowed {
        by_dimension
            .windowed_by(windows)
            .aggregate_with(
                Sales::default,
                |_, sales, total| total + sales,
                Materialized::with(string(), Serdes::postcard()).with_name(store),
            )
            .to_stream()
            .flat_map(move |windowed, sales| {
                sales.map(|sales| {
                    let row = SalesRow {
                        granularity: granularity.to_owned(),
                        dimension: windowed.key.clone(),
                        window_start: windowed.window.start,
                        window_end: windowed.window.end,
                        sales,
                    };
                    (
                        format!("{granularity}|{}|{}", windowed.key, windowed.window.start),
                        row,
                    )
                })
            })
            .to_with(SALES_TOPIC, Produced::with(string(), Serdes::json()));
    }

    // Every order's state, keyed by order id, and what it adds up to.
    let order_table = orders
        .select_key(|_, event| event.event.order_id().to_owned())
        .repartition_with(
            Repartitioned::with(string(), events::<OrderEvent>()).with_name("orders-by-id"),
        )
        .group_by_key_with(Grouped::with(string(), events::<OrderEvent>()))
        .aggregate_with(
            OrderSummary::default,
            |_, event, mut order| {
                let at = event.occurred_at.timestamp_millis();
                match event.event {
                    OrderEvent::OrderCreated {
                        customer_id,
                        total,
                        variant,
                        ..
                    } => {
                        order.customer_id = customer_id;
                        order.variant = variant;
                        order.total_cents = cents(total);
                        if order.status.is_empty() {
                            order.status = OrderStatus::Created.as_str().to_owned();
                        }
                    }
                    OrderEvent::OrderStatusChanged {
                        customer_id, to, ..
                    } => {
                        order.customer_id = customer_id;
                        order.status = to.as_str().to_owned();
                    }
                }
                order.updated_at = order.updated_at.max(at);
                order
            },
            Materialized::with(string(), Serdes::postcard()).with_name(ORDERS_STORE),
        );
    order_table
        .group_by_with(
            |_, order| (order.status.clone(), order.clone()),
            Grouped::with(string(), Serdes::postcard::<OrderSummary>()).with_name("by-status"),
        )
        .count_with(Materialized::with(string(), Serdes::i64()).with_name(STATUS_COUNTS_STORE));
    order_table
        .filter(|_, order| !order.variant.is_empty())
        .group_by_with(
            |_, order| (order.variant.clone(), order.clone()),
            Grouped::with(string(), Serdes::postcard::<OrderSummary>()).with_name("by-variant"),
        )
        .aggregate_with(
            VariantStats::default,
            |_, order, stats| stats.apply(&order, 1),
            |_, order, stats| stats.apply(&order, -1),
            Materialized::with(string(), Serdes::postcard()).with_name(VARIANTS_STORE),
        );

    builder.build()
}

/// Writes the analytics outputs into the database: `analytics_orders` (one row per order)
/// and `analytics_sales` (one row per granularity, dimension and window). Upserts keyed by
/// the natural key make a redelivered record harmless.
#[derive(Clone, Copy, Debug, Default)]
pub struct AnalyticsSink;

fn malformed(e: serde_json::Error) -> HandleError {
    HandleError::Poison(crate::events::EventError::Malformed(e))
}

impl Writer for AnalyticsSink {
    const RECORDS_PER_TRANSACTION: usize = 500;

    /// Upserts a chunk with one statement per table: rows for the same key collapse first
    /// into what upserting them one by one would leave (an order keeps its first values and
    /// its latest customer details; a window its latest sales).
    async fn write(&self, tx: &mut Tx<'_>, records: &[&Incoming]) -> Result<(), HandleError> {
        let mut orders: Vec<EnrichedOrder> = Vec::new();
        let mut sales: Vec<SalesRow> = Vec::new();
        for record in records {
            match record.topic.as_str() {
                ENRICHED_TOPIC => {
                    let row: EnrichedOrder =
                        serde_json::from_slice(&record.payload).map_err(malformed)?;
                    match orders
                        .iter_mut()
                        .find(|o| o.order.order_id == row.order.order_id)
                    {
                        Some(first) => {
                            first.customer_name = row.customer_name;
                            first.customer_country = row.customer_country;
                        }
                        None => orders.push(row),
                    }
                }
                SALES_TOPIC => {
                    let row: SalesRow =
                        serde_json::from_slice(&record.payload).map_err(malformed)?;
                    sales.retain(|r| {
                        (&r.granularity, &r.dimension, r.window_start)
                            != (&row.granularity, &row.dimension, row.window_start)
                    });
                    sales.push(row);
                }
                other => {
                    return Err(HandleError::Unprocessable(format!(
                        "analytics sink subscribed to an unexpected topic {other}"
                    )))
                }
            }
        }
        crate::db::insert_rows(
            tx,
            "INSERT INTO analytics_orders (order_id, customer_id, customer_name, customer_country, variant, total, currency, items, placed_at)",
            " ON CONFLICT (order_id) DO UPDATE SET customer_name = excluded.customer_name, customer_country = excluded.customer_country",
            9,
            &orders,
            |q, row| q.bind(&row.order.order_id).bind(&row.order.customer_id).bind(&row.customer_name).bind(&row.customer_country).bind(&row.order.variant).bind(amount(row.order.total_cents).to_string()).bind(&row.order.currency).bind(row.order.lines.len() as i64).bind(row.order.placed_at),
        )
        .await?;
        crate::db::insert_rows(
            tx,
            "INSERT INTO analytics_sales (granularity, dimension, window_start, window_end, orders, units, revenue)",
            " ON CONFLICT (granularity, dimension, window_start) DO UPDATE SET orders = excluded.orders, units = excluded.units, revenue = excluded.revenue",
            7,
            &sales,
            |q, row| q.bind(&row.granularity).bind(&row.dimension).bind(row.window_start).bind(row.window_end).bind(row.sales.orders).bind(row.sales.units).bind(amount(row.sales.revenue_cents).to_string()),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use kstreams::config::StreamsConfig;
    use kstreams::testing::TestDriver;
    use rust_decimal::Decimal;

    use super::*;
    use crate::events::{Envelope, OrderItem, Preferences};
    use crate::streams::EventSerde;

    fn driver() -> TestDriver {
        TestDriver::new(&topology().unwrap(), StreamsConfig::new(APPLICATION_ID)).unwrap()
    }

    fn at(event: Envelope<OrderEvent>, millis: i64) -> Envelope<OrderEvent> {
        let mut event = event;
        event.occurred_at = chrono::DateTime::from_timestamp_millis(millis).unwrap();
        event
    }

    fn created(
        order: &str,
        customer: &str,
        variant: &str,
        lines: &[(&str, u32, &str)],
    ) -> OrderEvent {
        let items: Vec<OrderItem> = lines
            .iter()
            .map(|(product, quantity, price)| OrderItem {
                product_id: (*product).into(),
                quantity: *quantity,
                unit_price: Decimal::from_str(price).unwrap(),
            })
            .collect();
        let total = items
            .iter()
            .map(|i| i.unit_price * Decimal::from(i.quantity))
            .sum();
        OrderEvent::OrderCreated {
            order_id: order.into(),
            customer_id: customer.into(),
            items,
            total,
            currency: "EUR".into(),
            variant: variant.into(),
            shipping_address: None,
            device_id: None,
        }
    }

    fn changed(order: &str, customer: &str, from: OrderStatus, to: OrderStatus) -> OrderEvent {
        OrderEvent::OrderStatusChanged {
            order_id: order.into(),
            customer_id: customer.into(),
            from,
            to,
            reason: None,
        }
    }

    #[test]
    fn orders_are_enriched_windowed_and_tracked() {
        let driver = driver();
        let users = driver.create_input_topic_with(
            topics::USERS,
            Serdes::string(),
            std::sync::Arc::new(EventSerde::<UserEvent>(std::marker::PhantomData)),
        );
        let orders = driver.create_input_topic_with(
            topics::ORDERS,
            Serdes::string(),
            events::<OrderEvent>(),
        );
        let enriched = driver.create_output_topic_with(
            ENRICHED_TOPIC,
            Serdes::string(),
            Serdes::json::<EnrichedOrder>(),
        );
        let sales = driver.create_output_topic_with(
            SALES_TOPIC,
            Serdes::string(),
            Serdes::json::<SalesRow>(),
        );

        users.pipe_input_at(
            "c-1".into(),
            Envelope::new(UserEvent::UserRegistered {
                user_id: "c-1".into(),
                name: "Ann".into(),
                email: "ann@example.com".into(),
                phone: "+100".into(),
                country: "NL".into(),
                preferences: Preferences::default(),
            }),
            0,
        );
        let t0 = 3_600_000 * 10; // 10:00
        let send = |customer: &str, event: OrderEvent, millis: i64| {
            orders.pipe_input_at(customer.into(), at(Envelope::new(event), millis), millis)
        };
        send(
            "c-1",
            created(
                "o-1",
                "c-1",
                "A",
                &[("SKU-1", 2, "10.00"), ("SKU-2", 1, "5.50")],
            ),
            t0 + 1_000,
        );
        send(
            "c-2",
            created("o-2", "c-2", "B", &[("SKU-1", 1, "10.00")]),
            t0 + 2_000,
        );
        send(
            "c-1",
            changed("o-1", "c-1", OrderStatus::Created, OrderStatus::Reserved),
            t0 + 3_000,
        );
        send(
            "c-1",
            changed("o-1", "c-1", OrderStatus::Reserved, OrderStatus::Paid),
            t0 + 4_000,
        );

        // Enrichment: the known customer is joined, the unknown one left empty.
        let enriched = enriched.read_key_values_to_map();
        assert_eq!(enriched["o-1"].customer_name.as_deref(), Some("Ann"));
        assert_eq!(enriched["o-1"].customer_country.as_deref(), Some("NL"));
        assert_eq!(enriched["o-1"].order.total_cents, 2550);
        assert_eq!(enriched["o-2"].customer_name, None);

        // Hourly sales per dimension.
        let hourly = driver
            .window_store::<String, Sales>(SALES_HOURLY_STORE)
            .unwrap();
        let total = hourly.fetch(&"total".to_owned(), t0).unwrap().unwrap();
        assert_eq!(
            total,
            Sales {
                orders: 2,
                units: 4,
                revenue_cents: 3550
            }
        );
        let sku1 = hourly
            .fetch(&"product:SKU-1".to_owned(), t0)
            .unwrap()
            .unwrap();
        assert_eq!(sku1.units, 3);
        assert_eq!(sku1.revenue_cents, 3000);
        let b = hourly.fetch(&"variant:B".to_owned(), t0).unwrap().unwrap();
        assert_eq!(b.revenue_cents, 1000);

        // The one-minute windows hop by ten seconds: an order at 10:00:01 is in six of them.
        let minute = driver
            .window_store::<String, Sales>(SALES_MINUTE_STORE)
            .unwrap();
        let windows = minute
            .fetch_range(&"variant:A".to_owned(), t0 - 60_000, t0 + 60_000)
            .unwrap();
        assert_eq!(windows.len(), 6, "{windows:?}");
        assert!(windows.iter().all(|(_, s)| s.revenue_cents == 2550));

        // The sales topic carries the latest row of every window.
        let rows = sales.read_key_values_to_map();
        let row = &rows[&format!("hour|total|{t0}")];
        assert_eq!(row.sales.orders, 2);
        assert_eq!(row.window_end, t0 + 3_600_000);

        // Order states, status counts and A/B conversion.
        let orders_store = driver
            .timestamped_key_value_store::<String, OrderSummary>(ORDERS_STORE)
            .unwrap();
        let o1 = orders_store.get(&"o-1".to_owned()).unwrap().unwrap().value;
        assert_eq!(o1.status, "PAID");
        assert_eq!(o1.variant, "A");
        let counts = driver
            .timestamped_key_value_store::<String, i64>(STATUS_COUNTS_STORE)
            .unwrap();
        assert_eq!(counts.get(&"PAID".to_owned()).unwrap().unwrap().value, 1);
        assert_eq!(counts.get(&"CREATED".to_owned()).unwrap().unwrap().value, 1);
        assert_eq!(
            counts.get(&"RESERVED".to_owned()).unwrap().unwrap().value,
            0
        );
        let variants = driver
            .timestamped_key_value_store::<String, VariantStats>(VARIANTS_STORE)
            .unwrap();
        assert_eq!(
            variants.get(&"A".to_owned()).unwrap().unwrap().value,
            VariantStats {
                orders: 1,
                converted: 1,
                revenue_cents: 2550
            }
        );
        assert_eq!(
            variants.get(&"B".to_owned()).unwrap().unwrap().value,
            VariantStats {
                orders: 1,
                converted: 0,
                revenue_cents: 0
            }
        );
    }

    #[test]
    fn unreadable_order_events_go_to_the_dead_letter_topic() {
        use kstreams::config::ErrorPolicy;
        let config =
            StreamsConfig::new(APPLICATION_ID).deserialization_policy(ErrorPolicy::DeadLetter);
        let driver = TestDriver::new(&topology().unwrap(), config.clone()).unwrap();
        let raw = driver.create_input_topic_with(topics::ORDERS, Serdes::string(), Serdes::bytes());
        raw.pipe_input_at("c-1".into(), b"{not json".to_vec(), 1);
        let dlq = driver.create_output_topic_with(
            &config.dead_letter_topic(),
            Serdes::bytes(),
            Serdes::bytes(),
        );
        let record = dlq.read_record().expect("a dead letter");
        assert_eq!(record.value, b"{not json".to_vec());
        assert!(record
            .headers
            .last_str(kstreams::dead_letter::ERROR_MESSAGE)
            .unwrap_or_default()
            .contains("malformed"));
    }

    /// A chunk with several rows for one key leaves what upserting them one by one leaves:
    /// an order its first values with its latest customer details, a window its latest
    /// sales.
    #[tokio::test]
    async fn the_sink_collapses_rows_of_one_key_as_upserts_would() {
        use sqlx::Row;
        let db = crate::db::Database::connect("sqlite::memory:")
            .await
            .unwrap();
        let order = |total_cents, name: Option<&str>| EnrichedOrder {
            order: PlacedOrder {
                order_id: "o-1".into(),
                customer_id: "c-1".into(),
                total_cents,
                currency: "EUR".into(),
                variant: "A".into(),
                lines: vec![("SKU".into(), 1, total_cents)],
                placed_at: 5,
            },
            customer_name: name.map(str::to_owned),
            customer_country: None,
        };
        let sales = |orders| SalesRow {
            granularity: "hour".into(),
            dimension: "total".into(),
            window_start: 0,
            window_end: 3_600_000,
            sales: Sales {
                orders,
                units: orders,
                revenue_cents: 100 * orders,
            },
        };
        let record = |topic: &str, payload: Vec<u8>| Incoming {
            topic: topic.into(),
            payload,
            ..Incoming::default()
        };
        let records = [
            record(
                ENRICHED_TOPIC,
                serde_json::to_vec(&order(1000, None)).unwrap(),
            ),
            record(SALES_TOPIC, serde_json::to_vec(&sales(1)).unwrap()),
            record(
                ENRICHED_TOPIC,
                serde_json::to_vec(&order(999, Some("Ada"))).unwrap(),
            ),
            record(SALES_TOPIC, serde_json::to_vec(&sales(2)).unwrap()),
        ];
        let refs: Vec<&Incoming> = records.iter().collect();
        let mut tx = db.pool().begin().await.unwrap();
        AnalyticsSink.write(&mut tx, &refs).await.unwrap();
        tx.commit().await.unwrap();
        let row = sqlx::query("SELECT customer_name, total FROM analytics_orders")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(
            row.get::<Option<String>, _>("customer_name").as_deref(),
            Some("Ada")
        );
        assert_eq!(row.get::<String, _>("total"), "10.00");
        let row = sqlx::query("SELECT orders, revenue FROM analytics_sales")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(row.get::<i64, _>("orders"), 2);
        assert_eq!(row.get::<String, _>("revenue"), "2.00");
    }
}
