//! The dashboard in a real browser: headless Chromium (Debian's, driven over the DevTools
//! protocol) loads the page from a shop with its traffic simulator on, the WebSocket
//! connects, the numbers change while it watches, and a screenshot is taken
//! (`$CARGO_TARGET_TMPDIR/dashboard.png`, and into `$SHOP_SCREENSHOT_DIR` when set); then
//! the same for the topic view (`topic-view.png`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use demo_app::app::Shop;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

mod common;

struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct DevTools {
    socket: Socket,
    next_id: u64,
}

impl DevTools {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::Text(request.to_string().into()))
            .await
            .unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .expect("DevTools answers")
                .expect("the DevTools socket is open")
                .unwrap();
            if let Message::Text(text) = message {
                let answer: Value = serde_json::from_str(&text).unwrap();
                if answer["id"] == id {
                    assert!(answer.get("error").is_none(), "{method}: {answer}");
                    return answer["result"].clone();
                }
            }
        }
    }

    /// Captures the page as a PNG into `$CARGO_TARGET_TMPDIR/<name>` (and into
    /// `$SHOP_SCREENSHOT_DIR` when set, which is how docs/screenshots is refreshed).
    async fn screenshot(&mut self, name: &str) {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}: a PNG");
        assert!(
            png.len() > 20_000,
            "{name}: a page with content, not a blank one"
        );
        std::fs::write(
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name),
            &png,
        )
        .unwrap();
        if let Ok(dir) = std::env::var("SHOP_SCREENSHOT_DIR") {
            std::fs::write(std::path::Path::new(&dir).join(name), &png).unwrap();
        }
    }

    async fn text_of(&mut self, selector: &str) -> String {
        let expression = format!(
            "(document.querySelector({selector:?}) || {{textContent: ''}}).textContent.trim()"
        );
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        result["result"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_shows_live_numbers_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::shop_config(dir.path());
    config.simulator.orders_per_second = 5.0;
    config.simulator.customers = 40;
    let shop = Shop::start(config).await.unwrap();
    let url = format!("http://{}/", shop.dashboard.unwrap());

    let port = free_port();
    let profile = tempfile::tempdir().unwrap();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let _browser = Browser(
        Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--no-first-run",
                "--window-size=1400,1300",
                &format!("--remote-debugging-port={port}"),
                &format!("--user-data-dir={}", profile.path().display()),
                &url,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromium} (apt-get install chromium): {e}")),
    );

    // The page's DevTools endpoint.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let debugger = loop {
        let pages: Option<Vec<Value>> = match http
            .get(format!("http://127.0.0.1:{port}/json/list"))
            .send()
            .await
        {
            Ok(response) => response.json().await.ok(),
            Err(_) => None,
        };
        let found = pages.unwrap_or_default().into_iter().find(|p| {
            p["type"] == "page" && p["url"].as_str().is_some_and(|u| u.starts_with(&url))
        });
        if let Some(page) = found {
            break page["webSocketDebuggerUrl"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "Chromium never opened {url}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (socket, _) = tokio_tungstenite::connect_async(debugger).await.unwrap();
    let mut tools = DevTools { socket, next_id: 0 };

    // Live over the WebSocket, and the order count moves while we watch.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let connection = tools.text_of("#connection").await;
        let orders: i64 = tools
            .text_of("#orders-total")
            .await
            .trim_end_matches("placed")
            .trim()
            .parse()
            .unwrap_or(0);
        if connection == "live" && orders > 0 {
            break orders;
        }
        assert!(
            Instant::now() < deadline,
            "the page never went live with orders (connection {connection:?}, orders {orders})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let later = loop {
        let orders: i64 = tools
            .text_of("#orders-total")
            .await
            .trim_end_matches("placed")
            .trim()
            .parse()
            .unwrap_or(0);
        if orders > first {
            break orders;
        }
        assert!(
            Instant::now() < deadline,
            "the order count stayed at {first}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(later > first);
    // The other panels fill in too: stock levels, the chart's library, the services.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stock = tools.text_of("#stock").await;
        let services = tools.text_of("#services").await;
        let charts = tools
            .call(
                "Runtime.evaluate",
                json!({"expression": "typeof Chart", "returnByValue": true}),
            )
            .await;
        if stock.contains("SKU-") && services.contains("payment") {
            assert_eq!(
                charts["result"]["value"], "function",
                "the vendored Chart.js loads"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stock {stock:?}, services {services:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    tools.screenshot("dashboard.png").await;

    // The topic view (:8080 in the demo): every shop topic with its offsets, and the
    // consumer groups with their lag.
    let topics = format!("http://{}/", shop.topic_view.unwrap());
    tools.call("Page.navigate", json!({ "url": topics })).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = tools.text_of("body").await;
        if body.contains("order-events")
            && body.contains("payment-events-dlq")
            && body.contains("lag")
        {
            break;
        }
        assert!(Instant::now() < deadline, "topic view: {body:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tools.screenshot("topic-view.png").await;
    drop(tools);
    shop.stop().await;
}
