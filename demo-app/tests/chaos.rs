//! Chaos under load: while orders arrive at a fixed rate, the payment service's broker
//! traffic is slowed and partly dropped, and the shipping service is stopped; afterwards
//! every accepted order has reached a final state, none lost, none twice.

use std::time::Duration;

use demo_app::app::{Service, Shop};
use demo_app::load::{self, LoadConfig};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_or_duplicated_under_faults() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::shop_config(dir.path());
    config.services.retain(|s| {
        !matches!(
            s,
            Service::Analytics | Service::Fraud | Service::Dashboard | Service::TopicView
        )
    });
    let shop = Shop::start(config).await.unwrap();
    shop.chaos.faults(Service::Payment).degrade_for(
        Duration::from_millis(20),
        0.3,
        Duration::from_secs(4),
    );
    shop.chaos
        .faults(Service::Shipping)
        .stop_for(Duration::from_secs(3));
    assert!(shop.chaos.active().contains_key("payment"));
    let load_config = LoadConfig {
        order_api: format!("http://{}", shop.order_api.unwrap()),
        inventory_api: shop.inventory_api.map(|a| format!("http://{a}")),
        rate: 20.0,
        duration: Duration::from_secs(3),
        customers: 15,
        ..LoadConfig::default()
    };
    let report = load::run(&load_config, &shop.keys).await.unwrap();
    assert_eq!(report.accepted, 60, "{report}");
    assert!(report.failures.is_empty(), "{report}");
    let check = load::check(
        &load_config.order_api,
        &shop.keys,
        &report,
        Duration::from_secs(90),
    )
    .await
    .unwrap();
    assert!(check.ok(), "{check}");
    assert_eq!(check.by_status.get("DELIVERED"), Some(&60), "{check}");
    // The faults had their effect: payment's deliveries were delayed and some dropped (and
    // fetched again), shipping's records waited for its stop to end.
    let (payment, shipping) = (
        shop.chaos.faults(Service::Payment),
        shop.chaos.faults(Service::Shipping),
    );
    assert!(payment.delayed() > 0, "payment was never slowed");
    assert!(payment.dropped() > 0, "no payment delivery was dropped");
    assert!(
        shipping.held() > 0,
        "no shipping record waited for the stop"
    );
    assert!(
        shop.chaos.active().is_empty(),
        "every fault ended by itself"
    );
    shop.stop().await;
}
