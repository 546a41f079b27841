//! The traffic simulator: customers who register and place orders through the public APIs,
//! at a fixed rate, so the demo has something to show the moment it starts.
//!
//! It goes through HTTP like any client (JWTs minted with the shop's key), so everything it
//! does is what a real client could do: a population of customers (one in twenty with a
//! test card that is declined, one in twenty-five a fraudster, some wanting SMS), one to
//! three lines per order from the catalog, an `Idempotency-Key` on every order.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};
use std::time::Duration;

use serde_json::json;

use crate::auth::{JwtKeys, Role};
use crate::services::catalog::PRODUCTS;

/// Settings of the simulator.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Orders per second; 0 turns the simulator off.
    pub orders_per_second: f64,
    /// How many customers it simulates.
    pub customers: usize,
    /// Base URL of the order API it calls; `None`: the order API of its own process.
    pub target: Option<String>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            orders_per_second: 2.0,
            customers: 1000,
            target: None,
        }
    }
}

/// The simulator's random numbers: seeded, so runs are reproducible.
type Rng = StdRng;

/// The id of simulated customer `i`: every twentieth has a declined test card, and every
/// twenty-fifth behaves like a fraudster (bursts of expensive orders from ever new devices
/// to ever new addresses), which fraud detection should catch.
pub fn customer_id(i: usize) -> String {
    if i % 20 == 19 {
        format!("declined-sim-{i:04}")
    } else if i % 25 == 24 {
        format!("risky-sim-{i:04}")
    } else {
        format!("sim-{i:04}")
    }
}

/// A simulated customer's next order: lines, device, shipping address.
fn order_body(id: &str, i: usize, rng: &mut Rng) -> serde_json::Value {
    let city = ["Amsterdam", "Berlin", "Paris", "Boston"][i % 4];
    if id.starts_with("risky-") {
        let n: u64 = rng.random();
        return json!({
            "items": [{"product_id": "SKU-CHAIR", "quantity": 3}, {"product_id": "SKU-MONITOR", "quantity": 2}],
            "device_id": format!("device-{n:x}"),
            "shipping_address": {"line1": format!("{} Dock Rd", n % 1000), "city": "Lagos",
                                 "postal_code": format!("{:05}", n % 100_000), "country": "NG"},
        });
    }
    let lines = 1 + rng.random_range(0..3);
    let items: Vec<_> = (0..lines)
        .map(|_| {
            let (product, ..) = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
            json!({"product_id": product, "quantity": 1 + rng.random_range(0..2)})
        })
        .collect();
    // Customers mostly order from their own phone; now and then from another device.
    let device = if rng.random_range(0..30) == 0 {
        format!("{id}-laptop")
    } else {
        format!("{id}-phone")
    };
    json!({
        "items": items,
        "device_id": device,
        "shipping_address": {"line1": format!("{} Main St", i + 1), "city": city,
                             "postal_code": format!("{:05}", 10_000 + i), "country": "NL"},
    })
}

/// Runs against the order API at `base` (`http://127.0.0.1:8081`) until the task is
/// dropped.
pub async fn run(config: SimulatorConfig, base: String, keys: JwtKeys) {
    if config.orders_per_second <= 0.0 || config.customers == 0 {
        return;
    }
    let http = reqwest::Client::new();
    let tokens: Vec<(String, String)> = (0..config.customers)
        .map(|i| {
            let id = customer_id(i);
            let token = keys.issue(&id, Role::Customer, Duration::from_secs(365 * 24 * 3600));
            (id, token)
        })
        .collect();
    for (i, (id, token)) in tokens.iter().enumerate() {
        let country = ["NL", "DE", "FR", "US"][i % 4];
        let body = json!({
            "name": format!("Simulated customer {i}"),
            "email": format!("{id}@example.com"),
            "phone": format!("+3160000{i:04}"),
            "country": country,
            "preferences": {"email": true, "sms": i % 3 == 0},
        });
        if let Err(e) = http
            .post(format!("{base}/users"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
        {
            tracing::warn!("simulator: registering {id}: {e}");
        }
    }
    let mut rng = Rng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / config.orders_per_second));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut placed: u64 = 0;
    loop {
        ticker.tick().await;
        let i = rng.random_range(0..tokens.len());
        let (id, token) = &tokens[i];
        let body = order_body(id, i, &mut rng);
        placed += 1;
        let request = http
            .post(format!("{base}/orders"))
            .bearer_auth(token)
            .header(
                "Idempotency-Key",
                format!("sim-{placed}-{}", rng.random::<u64>()),
            )
            .json(&body);
        match request.send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::debug!(customer = %id, status = %response.status(), "simulated order refused")
            }
            Err(e) => tracing::warn!("simulator: placing an order: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_customers_keep_their_device_and_address_and_fraudsters_do_not() {
        let mut rng = Rng::seed_from_u64(7);
        let a = order_body("sim-0001", 1, &mut rng);
        let b = order_body("sim-0001", 1, &mut rng);
        assert_eq!(a["shipping_address"], b["shipping_address"]);
        let risky: Vec<_> = (0..3)
            .map(|_| order_body("risky-sim-0024", 24, &mut rng))
            .collect();
        assert_ne!(risky[0]["device_id"], risky[1]["device_id"]);
        assert_ne!(risky[1]["shipping_address"], risky[2]["shipping_address"]);
        assert_eq!(customer_id(24), "risky-sim-0024");
    }

    #[test]
    fn one_in_twenty_customers_has_a_declined_card() {
        let declined = (0..100)
            .filter(|i| customer_id(*i).starts_with("declined-"))
            .count();
        assert_eq!(declined, 5);
    }
}
