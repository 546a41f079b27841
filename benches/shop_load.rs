//! The shop under load: orders at a fixed rate for a fixed time through the order API of
//! the one-process shop (embedded broker, SQLite, every service and streams app), then the
//! check that every accepted order reached a final state exactly once.
//!
//! ```text
//! cargo bench --workspace --all-features --bench shop_load            # 1,000 orders/s, 30 s
//! SHOP_LOAD_RATE=200 SHOP_LOAD_SECONDS=10 cargo bench --workspace --all-features --bench shop_load
//! ```
//!
//! Prints throughput (accepted orders per second), latency percentiles of `POST /orders`,
//! and how long the pipeline took to finish every order after the last request (or how
//! many were final when the check gave up, `SHOP_LOAD_CHECK_SECONDS`, 600 by default). It
//! fails only if an order was lost or duplicated.

use std::time::{Duration, Instant};

use demo_app::app::{Shop, ShopConfig};
use demo_app::load::{self, LoadConfig};
use demo_app::services::payment::GatewayConfig;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rate: f64 = env_or("SHOP_LOAD_RATE", 1000.0);
    let seconds: u64 = env_or("SHOP_LOAD_SECONDS", 30);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = ShopConfig::ephemeral(dir.path());
    config.gateway = GatewayConfig {
        failure_rate: 0.0,
        latency: Duration::from_millis(2),
    };
    config.delivery_delay = Duration::from_secs(1);
    let shop = Shop::start(config).await.expect("the shop starts");
    let load_config = LoadConfig {
        order_api: format!("http://{}", shop.order_api.expect("the order API runs")),
        inventory_api: shop.inventory_api.map(|a| format!("http://{a}")),
        rate,
        duration: Duration::from_secs(seconds),
        customers: 1000,
        progress: true,
        ..LoadConfig::default()
    };
    println!(
        "shop_load: {rate} orders/s for {seconds} s, streams apps {:?}",
        shop.guarantee
    );
    let report = load::run(&load_config, &shop.keys)
        .await
        .expect("the load run");
    println!("{report}");
    let drained = Instant::now();
    let check_seconds: u64 = env_or("SHOP_LOAD_CHECK_SECONDS", 600);
    let check = load::check(
        &load_config.order_api,
        &shop.keys,
        &report,
        Duration::from_secs(check_seconds),
    )
    .await
    .expect("the check");
    println!("{check}");
    if check.finished == check.accepted {
        println!(
            "  every order final {:.1} s after the last request",
            drained.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "  {} of {} orders final when the check gave up, {:.1} s after the last request",
            check.finished,
            check.accepted,
            drained.elapsed().as_secs_f64()
        );
    }
    shop.stop().await;
    // Unfinished orders are a throughput figure; lost or extra ones are a bug.
    assert!(
        check.lost.is_empty() && check.unexpected.is_empty(),
        "orders lost or duplicated"
    );
}
