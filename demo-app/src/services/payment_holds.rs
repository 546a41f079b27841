//! The payment service's fraud holds: orders the fraud detection app flagged are not
//! charged until an admin decides.
//!
//! A `FraudAlert` on `notification-events` records a hold (`FLAGGED`). When the order's
//! `PaymentRequested` comes, the payment service parks it (`HELD`) instead of charging. An
//! admin lists holds with `GET /payments/holds` and decides with
//! `POST /payments/holds/{order id}/release` (the request is charged: it is sent to
//! `payment-events` again) or `.../reject` (`PaymentFailed`, so the order is cancelled and its
//! stock released). An alert that comes after the payment was already charged is kept as
//! `LATE`, for review only. Every change is one database transaction with its events in the
//! outbox.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use crate::app::Service;
use crate::auth::{Authenticated, HasJwtKeys, JwtKeys};
use crate::consumer::{HandleError, Incoming, Tx, Writer};
use crate::db::{first_time, text, Database};
use crate::events::{topics, Envelope, NotificationEvent, PaymentEvent};
use crate::http::ApiError;
use crate::outbox::{self, OutboxRelay};

/// A hold as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Hold {
    /// The order.
    pub order_id: String,
    /// Its customer.
    pub customer_id: String,
    /// The fraud score.
    pub score: i64,
    /// Why it was flagged.
    pub reasons: Vec<String>,
    /// `FLAGGED`, `HELD`, `RELEASED`, `REJECTED` or `LATE`.
    pub status: String,
    /// When the alert came (ms).
    pub created_at: i64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The consumer group that records holds: apart from the one charging payments, so an
/// alert is recorded while a request waits out its screening time.
pub const GROUP: &str = "payment-fraud-holds";

/// Records holds from `notification-events` (group [`GROUP`]) in the consumer's database.
#[derive(Clone, Copy, Debug, Default)]
pub struct HoldRecorder;

impl Writer for HoldRecorder {
    /// Most records of `notification-events` are not fraud alerts and cost no statement, so
    /// a chunk is large: one transaction per 200 records, not per 25.
    const RECORDS_PER_TRANSACTION: usize = 200;

    async fn write(&self, tx: &mut Tx<'_>, records: &[&Incoming]) -> Result<(), HandleError> {
        for record in records {
            record_alert(tx, GROUP, record).await?;
        }
        Ok(())
    }
}

/// Records the hold of a `FraudAlert` (other notifications are not the payment service's).
pub async fn record_alert(
    tx: &mut Tx<'_>,
    group: &str,
    record: &Incoming,
) -> Result<(), HandleError> {
    let envelope = Envelope::<NotificationEvent>::from_bytes(&record.payload)?;
    let NotificationEvent::FraudAlert {
        customer_id,
        order_id,
        score,
        reasons,
    } = &envelope.event
    else {
        return Ok(());
    };
    if !first_time(tx, group, &envelope.event_id.to_string()).await? {
        return Ok(());
    }
    let charged = sqlx::query("SELECT status FROM payments WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    sqlx::query(
        "INSERT INTO payment_holds (order_id, customer_id, score, reasons, status, request, \
         created_at) VALUES ($1, $2, $3, $4, $5, NULL, $6) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(customer_id)
    .bind(i64::from(*score))
    .bind(serde_json::to_string(reasons).expect("strings serialize"))
    .bind(if charged { "LATE" } else { "FLAGGED" })
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What to do with a payment request, given its order's hold.
pub enum Decision {
    /// No hold (or released): charge it.
    Charge,
    /// Flagged: parked until an admin decides.
    Held,
    /// Rejected by an admin: fail it.
    Rejected,
}

/// The status of `order_id`'s hold (`FLAGGED`, `HELD`, `RELEASED`, ...), if it has one.
pub async fn hold_status<'e, E>(executor: E, order_id: &str) -> sqlx::Result<Option<String>>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    Ok(
        sqlx::query("SELECT status FROM payment_holds WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(executor)
            .await?
            .map(|row| text(&row, "status")),
    )
}

/// Whether a hold in `status` keeps its order from being charged: flagged and waiting, held,
/// or rejected (what [`decide`] does not answer with [`Decision::Charge`]).
pub fn stops_charge(status: Option<&str>) -> bool {
    matches!(status, Some("FLAGGED" | "HELD" | "REJECTED"))
}

/// Looks up the hold of `order_id`, parking `request` (its JSON) when the order is flagged.
pub async fn decide(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
    request: &str,
) -> sqlx::Result<Decision> {
    let status = hold_status(&mut **tx, order_id).await?;
    Ok(match status.as_deref() {
        Some("FLAGGED") | Some("HELD") => {
            sqlx::query(
                "UPDATE payment_holds SET status = 'HELD', request = $1 WHERE order_id = $2",
            )
            .bind(request)
            .bind(order_id)
            .execute(&mut **tx)
            .await?;
            Decision::Held
        }
        Some("REJECTED") => Decision::Rejected,
        _ => Decision::Charge,
    })
}

/// The admin API of holds.
#[derive(Clone)]
pub struct HoldsApi {
    db: Database,
    keys: JwtKeys,
    relay: OutboxRelay,
}

impl HasJwtKeys for HoldsApi {
    fn jwt_keys(&self) -> &JwtKeys {
        &self.keys
    }
}

impl HoldsApi {
    /// The API over `db`.
    pub fn new(db: Database, keys: JwtKeys, relay: OutboxRelay) -> Self {
        HoldsApi { db, keys, relay }
    }

    /// `GET /payments/holds`, `POST /payments/holds/{id}/release|reject` (admin only).
    pub fn router(self) -> Router {
        Router::new()
            .route("/payments/holds", get(list))
            .route("/payments/holds/{order_id}/release", post(release))
            .route("/payments/holds/{order_id}/reject", post(reject))
            .with_state(self)
    }
}

fn hold_of(row: &sqlx::any::AnyRow) -> Hold {
    Hold {
        order_id: text(row, "order_id"),
        customer_id: text(row, "customer_id"),
        score: row.try_get("score").unwrap_or_default(),
        reasons: serde_json::from_str(&text(row, "reasons")).unwrap_or_default(),
        status: text(row, "status"),
        created_at: row.try_get("created_at").unwrap_or_default(),
    }
}

const COLUMNS: &str = "order_id, customer_id, score, reasons, status, request, created_at";

/// Every hold, newest first.
pub async fn holds(db: &Database) -> sqlx::Result<Vec<Hold>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM payment_holds ORDER BY created_at DESC, order_id"
    ))
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(hold_of).collect())
}

async fn list(
    State(api): State<HoldsApi>,
    caller: Authenticated,
) -> Result<Json<Vec<Hold>>, ApiError> {
    caller.require_admin()?;
    holds(&api.db)
        .await
        .map(Json)
        .map_err(|e| ApiError::internal("listing holds", e))
}

async fn release(
    State(api): State<HoldsApi>,
    caller: Authenticated,
    Path(order_id): Path<String>,
) -> Result<Json<Hold>, ApiError> {
    decide_by_admin(api, caller, order_id, "RELEASED").await
}

async fn reject(
    State(api): State<HoldsApi>,
    caller: Authenticated,
    Path(order_id): Path<String>,
) -> Result<Json<Hold>, ApiError> {
    decide_by_admin(api, caller, order_id, "REJECTED").await
}

async fn decide_by_admin(
    api: HoldsApi,
    caller: Authenticated,
    order_id: String,
    verdict: &str,
) -> Result<Json<Hold>, ApiError> {
    caller.require_admin()?;
    let internal = |e| ApiError::internal("deciding a hold", e);
    let mut tx = api.db.pool().begin().await.map_err(internal)?;
    // The decision is the guarded update itself: of two admins deciding at once, the second
    // finds the hold decided (on PostgreSQL it waits for the first's row lock, then its
    // condition no longer holds), so a parked request is charged or failed once.
    let row = sqlx::query(&format!(
        "UPDATE payment_holds SET status = $1 \
         WHERE order_id = $2 AND status IN ('FLAGGED', 'HELD') RETURNING {COLUMNS}"
    ))
    .bind(verdict)
    .bind(&order_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(internal)?;
    let Some(row) = row else {
        drop(tx);
        return Err(
            match hold_status(api.db.pool(), &order_id)
                .await
                .map_err(internal)?
            {
                None => ApiError::not_found(format!("no hold for order {order_id}")),
                Some(status) => ApiError::new(
                    StatusCode::CONFLICT,
                    format!("the hold of {order_id} is {status} already"),
                ),
            },
        );
    };
    let hold = hold_of(&row);
    let request: Option<String> = row.try_get("request").ok().flatten();
    if let Some(request) = request {
        // The parked request: charge it now (as a new event: the old one is processed) or
        // fail it.
        let parked = Envelope::<PaymentEvent>::from_bytes(request.as_bytes())
            .map_err(|e| ApiError::internal("reading the parked request", e))?;
        let event = if verdict == "RELEASED" {
            Envelope::new(parked.event)
        } else {
            let PaymentEvent::PaymentRequested { customer_id, .. } = parked.event else {
                return Err(ApiError::internal("the parked request", "is not a request"));
            };
            Envelope::new(PaymentEvent::PaymentFailed {
                order_id: order_id.clone(),
                customer_id,
                reason: "rejected after fraud review".into(),
                attempts: 0,
            })
        };
        outbox::enqueue(&mut tx, Service::Order, topics::PAYMENTS, &order_id, &event)
            .await
            .map_err(internal)?;
    }
    tx.commit().await.map_err(internal)?;
    api.relay.notify();
    Ok(Json(hold))
}
