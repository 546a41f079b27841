//! JWT authentication and roles for the shop's HTTP APIs.
//!
//! Tokens are HS256 JWTs signed with the key from config (`--jwt-secret`, `SHOP_JWT_SECRET`).
//! Claims: `sub` (the user id), `role` (`customer` or `admin`) and `exp`. Handlers take an
//! [`Authenticated`] argument; a missing, malformed, expired or wrongly signed token is a 401,
//! a valid token without the needed role a 403, both as `{"error": "..."}`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::http::ApiError;

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Places and reads their own orders.
    Customer,
    /// Everything, including other customers' orders and stock changes.
    Admin,
}

/// The claims of a shop token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The user's role.
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// Signs and checks tokens with one HS256 key.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    /// Keys from a shared secret.
    pub fn new(secret: &[u8]) -> Self {
        JwtKeys {
            encoding: Arc::new(EncodingKey::from_secret(secret)),
            decoding: Arc::new(DecodingKey::from_secret(secret)),
        }
    }

    /// A token for `user` with `role`, valid for `ttl`.
    pub fn issue(&self, user: &str, role: Role, ttl: std::time::Duration) -> String {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            + ttl.as_secs();
        let claims = Claims {
            sub: user.to_owned(),
            role,
            exp,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, format!("invalid token: {e}")))
    }
}

/// The caller of a request, from its `Authorization: Bearer <jwt>` header.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Claims);

impl Authenticated {
    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this needs the admin role",
            ))
        }
    }

    /// 403 unless the caller is `user` or an admin.
    pub fn require_user_or_admin(&self, user: &str) -> Result<(), ApiError> {
        if self.0.role == Role::Admin || self.0.sub == user {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "customers can only see their own orders",
            ))
        }
    }
}

/// State that can hand out the JWT keys (the service's app state).
pub trait HasJwtKeys {
    /// The keys tokens are checked with.
    fn jwt_keys(&self) -> &JwtKeys;
}

impl<S> FromRequestParts<S> for Authenticated
where
    S: HasJwtKeys + Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::new(StatusCode::UNAUTHORIZED, "missing Authorization header")
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
        state.jwt_keys().verify(token.trim()).map(Authenticated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tokens_round_trip_and_bad_ones_are_401() {
        let keys = JwtKeys::new(b"secret");
        let token = keys.issue("c-1", Role::Customer, Duration::from_secs(60));
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.sub, "c-1");
        assert_eq!(claims.role, Role::Customer);

        let other = JwtKeys::new(b"other secret");
        assert_eq!(
            other.verify(&token).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            keys.verify("not.a.jwt").unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "c-1".into(),
                role: Role::Admin,
                exp: 1_000,
            },
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert_eq!(
            keys.verify(&expired).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn roles_gate_what_a_caller_may_do() {
        let customer = Authenticated(Claims {
            sub: "c-1".into(),
            role: Role::Customer,
            exp: u64::MAX,
        });
        let admin = Authenticated(Claims {
            sub: "ops".into(),
            role: Role::Admin,
            exp: u64::MAX,
        });
        assert!(customer.require_user_or_admin("c-1").is_ok());
        assert_eq!(
            customer.require_user_or_admin("c-2").unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            customer.require_admin().unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert!(admin.require_admin().is_ok());
        assert!(admin.require_user_or_admin("c-2").is_ok());
    }
}
