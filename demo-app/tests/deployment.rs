//! The docker-compose deployment as separate processes on this machine: `shop broker` alone,
//! every compose service a `shop --role ...` process on it, sharing the local PostgreSQL
//! server (a database of its own) and Redis (a key prefix of its own), as the compose file
//! wires them. Payment and the streams apps run twice; one of each is SIGKILLed while orders
//! flow, and the survivors must finish the dead peer's work: every order final, the
//! analytics tables exact (exactly-once across the takeover).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::TestDatabase;
use demo_app::auth::JwtKeys;
use demo_app::load::{self, LoadConfig};
use sqlx::Row;

const JWT_SECRET: &str = "deployment-test-secret";

/// A `shop` process and the lines it printed.
struct Process {
    name: &'static str,
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Process {
    fn spawn(name: &'static str, args: &[String]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shop"))
            .args(args)
            .env("RUST_LOG", "warn,demo_app=info,shop=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process {
            name,
            child: Some(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a printed line containing `marker` and returns the rest of it after the
    /// marker, trimmed.
    fn wait_for(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        if let Some(line) = self.seen.iter().find(|l| l.contains(marker)) {
            return after(line, marker);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(marker).then(|| after(&line, marker));
                    self.seen.push(line);
                    if let Some(rest) = found {
                        return rest;
                    }
                }
                Err(_) => panic!(
                    "{} never printed {marker:?}; it printed:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
    }

    /// SIGTERM, and the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on a child we spawned, with a valid signal number.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0);
        child.wait().expect("reaped")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn after(line: &str, marker: &str) -> String {
    let start = line.find(marker).expect("contains the marker") + marker.len();
    line[start..].trim().to_owned()
}

/// The flags every service of the deployment shares (compose's `x-shop-env`).
fn shared(bootstrap: &str, db: &str, redis: &str, prefix: &str, dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--bootstrap-servers",
        bootstrap,
        "--database-url",
        db,
        "--redis-url",
        redis,
        "--cache-prefix",
        prefix,
        "--jwt-secret",
        JWT_SECRET,
        "--orders-per-second",
        "0",
        "--order-api",
        "127.0.0.1:0",
        "--inventory-api",
        "127.0.0.1:0",
        "--dashboard",
        "127.0.0.1:0",
        "--topic-view",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
        "--data-dir",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.push(dir.display().to_string());
    // A dead member's partitions move after 6 s instead of librdkafka's 45 s default.
    for setting in ["session.timeout.ms=6000", "heartbeat.interval.ms=500"] {
        args.push("--kafka-config".into());
        args.push(setting.into());
    }
    args
}

fn with_roles(mut args: Vec<String>, roles: &[&str]) -> Vec<String> {
    for role in roles {
        args.push("--role".into());
        args.push((*role).into());
    }
    args
}

/// The sum of every sample of the metrics at `addr` whose name starts with `prefix`.
async fn metric(addr: &str, prefix: &str) -> f64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivors_finish_the_work_of_killed_payment_and_streams_processes() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create("shop_deployment").await;
    let redis =
        std::env::var("SHOP_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("deploy-{}:", uuid::Uuid::new_v4().simple());

    let mut broker = Process::spawn(
        "broker",
        &[
            "--data-dir".into(),
            dir.path().join("broker-host").display().to_string(),
            "broker".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ],
    );
    let bootstrap = broker.wait_for("kstreams development broker on");
    let bootstrap = bootstrap.split_whitespace().next().unwrap().to_owned();
    let base = |name: &str| shared(&bootstrap, &db.url, &redis, &prefix, &dir.path().join(name));

    // As docker-compose.yml runs them, with payment and the streams apps twice.
    let mut order = Process::spawn("order", &with_roles(base("order"), &["order", "user"]));
    let order_api = order
        .wait_for("order API    http://")
        .replace("/orders", "");
    let mut inventory = Process::spawn("inventory", &with_roles(base("inventory"), &["inventory"]));
    let inventory_api = inventory
        .wait_for("inventory    http://")
        .replace("/products", "");
    let mut others = Vec::new();
    for (name, roles) in [
        ("shipping", &["shipping"][..]),
        ("notification", &["notification"][..]),
        ("audit", &["audit"][..]),
    ] {
        let mut process = Process::spawn(name, &with_roles(base(name), roles));
        process.wait_for("services");
        others.push(process);
    }
    let streams_roles = ["analytics", "inventory-monitor", "fraud", "dashboard"];
    let mut payment_a = Process::spawn("payment-a", &with_roles(base("payment-a"), &["payment"]));
    let mut payment_b = Process::spawn("payment-b", &with_roles(base("payment-b"), &["payment"]));
    let mut streams_a = Process::spawn("streams-a", &with_roles(base("streams-a"), &streams_roles));
    let mut streams_b = Process::spawn("streams-b", &with_roles(base("streams-b"), &streams_roles));
    let payment_a_metrics = payment_a
        .wait_for("metrics      http://")
        .replace("/metrics", "");
    payment_b.wait_for("services");
    let streams_a_metrics = streams_a
        .wait_for("metrics      http://")
        .replace("/metrics", "");
    assert!(
        streams_a.wait_for("guarantee").starts_with("exactly-once"),
        "the streams apps detect transactions on the broker"
    );
    streams_b.wait_for("services");

    let keys = JwtKeys::new(JWT_SECRET.as_bytes());
    let order_api = format!("http://{order_api}");
    let config = |seconds| LoadConfig {
        order_api: order_api.clone(),
        inventory_api: Some(format!("http://{inventory_api}")),
        rate: 10.0,
        duration: Duration::from_secs(seconds),
        customers: 40,
        ..Default::default()
    };

    // Both payment processes and both streams processes get partitions and work.
    let first = load::run(&config(8), &keys).await.unwrap();
    assert!(first.accepted > 0, "{first}");
    let check = load::check(&order_api, &keys, &first, Duration::from_secs(120))
        .await
        .unwrap();
    assert!(check.ok(), "before the kills: {check}");
    let paid_by_a = metric(
        &payment_a_metrics,
        "shop_records_handled_total{group=\"payment-service\"",
    )
    .await;
    let analysed_by_a = metric(
        &streams_a_metrics,
        "shop_order_analytics_kstreams_records_consumed",
    )
    .await;
    assert!(
        paid_by_a > 0.0,
        "payment-a handled no payment request: it held no partition"
    );
    assert!(
        analysed_by_a > 0.0,
        "streams-a's analytics consumed nothing: it held no task"
    );

    // Orders keep coming while one payment and one streams process die without a word.
    let second_run = tokio::spawn({
        let config = config(12);
        let keys = keys.clone();
        async move { load::run(&config, &keys).await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    payment_a.kill();
    streams_a.kill();
    let second = second_run.await.unwrap().unwrap();
    let check = load::check(&order_api, &keys, &second, Duration::from_secs(180))
        .await
        .unwrap();
    assert!(check.ok(), "after the kills: {check}");

    // Analytics saw every order exactly once: the enriched orders and the hourly totals
    // the sink wrote (the survivor's output after the takeover included) match the API.
    let accepted: BTreeMap<String, String> = first
        .orders
        .iter()
        .chain(&second.orders)
        .map(|(customer, order)| (order.clone(), customer.clone()))
        .collect();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (analysed, hourly) = loop {
        let analysed: i64 = sqlx::query("SELECT COUNT(*) AS n FROM analytics_orders")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get("n");
        let hourly: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(orders), 0) AS BIGINT) AS n FROM analytics_sales \
             WHERE granularity = 'hour' AND dimension = 'total'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("n");
        if (analysed as usize == accepted.len() && hourly as usize == accepted.len())
            || Instant::now() > deadline
        {
            break (analysed, hourly);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        analysed as usize,
        accepted.len(),
        "orders in analytics_orders"
    );
    assert_eq!(
        hourly as usize,
        accepted.len(),
        "orders in the hourly totals"
    );

    // A clean stop is clean: SIGTERM ends a process with success.
    let status = payment_b.terminate();
    assert!(status.success(), "payment-b on SIGTERM: {status}");
    pool.close().await;
    drop((order, inventory, others, streams_b, broker));
    db.drop_database().await;
}
