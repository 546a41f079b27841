//! The user service: customers register and change their details; every change is a
//! `UserRegistered` / `UserUpdated` on `user-events` (keyed by user id), published through
//! the outbox. Other services keep the views they need from those events (the notification
//! channels their preferences, the analytics app its customer table). Mounted on the order
//! API (:8081):
//!
//! * `POST /users` (JWT; the token's subject registers itself, admins anyone):
//!   `{"name", "email", "phone", "country", "preferences": {"email", "sms"}}`;
//! * `GET /notifications?user=` (JWT): the messages sent to a customer, newest first.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::app::Service;
use crate::auth::{Authenticated, HasJwtKeys, JwtKeys};
use crate::crypto::FieldCipher;
use crate::db::{text, Database};
use crate::events::{topics, Envelope, Preferences, UserEvent};
use crate::http::{ApiError, JsonBody};
use crate::outbox::{self, OutboxRelay};

/// The user service's state.
#[derive(Clone)]
pub struct UserService {
    db: Database,
    /// Where the notification service records what it sent (`sent_notifications`).
    notifications: Database,
    keys: JwtKeys,
    relay: OutboxRelay,
    cipher: FieldCipher,
}

impl HasJwtKeys for UserService {
    fn jwt_keys(&self) -> &JwtKeys {
        &self.keys
    }
}

/// Body of `POST /users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// Admins may register someone else.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// Phone number (E.164).
    pub phone: String,
    /// Country code.
    pub country: String,
    /// Channels the customer wants.
    #[serde(default)]
    pub preferences: Preferences,
}

/// A sent message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentNotification {
    /// `email` or `sms`.
    pub channel: String,
    /// Address or number it went to.
    pub contact: String,
    /// Subject.
    pub subject: String,
    /// Text.
    pub body: String,
}

impl UserService {
    /// The service over `db`; `cipher` decrypts the contacts of sent notifications, which
    /// it reads from `db` too unless [`with_notifications`](Self::with_notifications) says
    /// where.
    pub fn new(db: Database, keys: JwtKeys, relay: OutboxRelay, cipher: FieldCipher) -> Self {
        UserService {
            notifications: db.clone(),
            db,
            keys,
            relay,
            cipher,
        }
    }

    /// Reads sent notifications from `notifications` (the notification service's database).
    pub fn with_notifications(mut self, notifications: Database) -> Self {
        self.notifications = notifications;
        self
    }

    /// The HTTP routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/users", post(register))
            .route("/notifications", get(notifications))
            .with_state(self)
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

async fn register(
    State(service): State<UserService>,
    caller: Authenticated,
    JsonBody(body): JsonBody<Register>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let user_id = match &body.user_id {
        Some(user) if user != &caller.0.sub => {
            caller.require_admin()?;
            user.clone()
        }
        _ => caller.0.sub.clone(),
    };
    if body.name.trim().is_empty() {
        return Err(invalid("name must not be empty"));
    }
    let at = body.email.find('@');
    if !matches!(at, Some(i) if i > 0 && i + 1 < body.email.len()) {
        return Err(invalid(format!("{:?} is not an email address", body.email)));
    }
    let digits = body.phone.trim_start_matches('+');
    if !body.phone.starts_with('+')
        || !(6..=15).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid("phone must be in E.164 form, like +31612345678"));
    }
    if body.country.len() != 2 || !body.country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            "country must be an ISO 3166-1 alpha-2 code, like NL",
        ));
    }
    let event = Envelope::new(UserEvent::UserRegistered {
        user_id: user_id.clone(),
        name: body.name.trim().to_owned(),
        email: body.email.clone(),
        phone: body.phone.clone(),
        country: body.country.clone(),
        preferences: body.preferences.clone(),
    });
    let internal = |e| ApiError::internal("registering the user", e);
    let mut tx = service.db.pool().begin().await.map_err(internal)?;
    outbox::enqueue(&mut tx, Service::User, topics::USERS, &user_id, &event)
        .await
        .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    service.relay.notify();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "user_id": user_id, "event_id": event.event_id })),
    ))
}

/// `?user=` of `GET /notifications`.
#[derive(Debug, Deserialize)]
struct NotificationsQuery {
    user: Option<String>,
}

async fn notifications(
    State(service): State<UserService>,
    caller: Authenticated,
    Query(query): Query<NotificationsQuery>,
) -> Result<Json<Vec<SentNotification>>, ApiError> {
    let user = query.user.unwrap_or_else(|| caller.0.sub.clone());
    caller.require_user_or_admin(&user)?;
    let rows = sqlx::query(
        "SELECT channel, contact, subject, body FROM sent_notifications WHERE customer_id = $1
         ORDER BY sent_at DESC LIMIT 200",
    )
    .bind(&user)
    .fetch_all(service.notifications.reader())
    .await
    .map_err(|e| ApiError::internal("reading notifications", e))?;
    let mut sent = Vec::with_capacity(rows.len());
    for row in &rows {
        let contact = service
            .cipher
            .decrypt(&text(row, "contact"))
            .map_err(|e| ApiError::internal("decrypting a contact", e))?;
        sent.push(SentNotification {
            channel: text(row, "channel"),
            contact,
            subject: text(row, "subject"),
            body: text(row, "body"),
        });
    }
    Ok(Json(sent))
}
