//! The load test: orders at a fixed rate for a fixed time against a running shop, then a
//! check that every accepted order reached a final state exactly once.
//!
//! Open loop: a request starts every `1/rate` seconds whether or not earlier ones have
//! answered (up to `max_in_flight`), so a slow shop shows up as latency, not as a lower
//! offered rate. Latencies go into an HDR histogram (percentiles to the microsecond). The
//! customers are new for every run (`load-<run>-<n>`), so the check can list exactly their
//! orders through the order API (admin token) and compare with what was accepted.
//! `shop load` prints a progress bar and the report; the `shop_load` benchmark and the
//! chaos scenarios use [`run`] and [`check`] directly.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;

use crate::auth::{JwtKeys, Role};
use crate::events::OrderStatus;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Base URL of the order API (`http://127.0.0.1:8081`).
    pub order_api: String,
    /// Base URL of the inventory API, to restock before the run (none: no restock).
    pub inventory_api: Option<String>,
    /// Orders per second.
    pub rate: f64,
    /// How long.
    pub duration: Duration,
    /// Distinct customers.
    pub customers: usize,
    /// Requests in flight at most.
    pub max_in_flight: usize,
    /// Print a progress bar to stderr.
    pub progress: bool,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            order_api: "http://127.0.0.1:8081".into(),
            inventory_api: Some("http://127.0.0.1:8082".into()),
            rate: 100.0,
            duration: Duration::from_secs(10),
            customers: 1000,
            max_in_flight: 2000,
            progress: false,
        }
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The run's id (its customers are `load-<run>-<n>`).
    pub run: String,
    /// Requests sent.
    pub sent: u64,
    /// Orders accepted (201).
    pub accepted: u64,
    /// Answers by status code for the others, or `transport` for no answer.
    pub failures: BTreeMap<String, u64>,
    /// Requests not sent because `max_in_flight` were waiting.
    pub skipped: u64,
    /// Seconds from the first request to the last answer.
    pub elapsed_secs: f64,
    /// Accepted orders per second over the run.
    pub throughput: f64,
    /// Latency of accepted orders.
    pub latency: Latency,
    /// The accepted orders: `(customer, order id)`.
    #[serde(skip)]
    pub orders: Vec<(String, String)>,
}

/// The outcome of [`check`].
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Accepted orders.
    pub accepted: usize,
    /// In a final state (delivered, cancelled, rejected).
    pub finished: usize,
    /// Final states by status.
    pub by_status: BTreeMap<String, usize>,
    /// Accepted but not found.
    pub lost: Vec<String>,
    /// Orders of the run's customers that were never accepted (a duplicate or a ghost).
    pub unexpected: Vec<String>,
    /// Not final when the check gave up.
    pub unfinished: Vec<String>,
    /// Seconds from the start of the check (the end of the load run) to this report: when
    /// it is OK, how long the last accepted order took to become final, to within one pass
    /// over the customers' orders.
    pub elapsed_secs: f64,
}

impl CheckReport {
    /// Every accepted order finished, none lost, none extra.
    pub fn ok(&self) -> bool {
        self.finished == self.accepted && self.lost.is_empty() && self.unexpected.is_empty()
    }
}

/// Places orders at `config.rate` for `config.duration`.
pub async fn run(config: &LoadConfig, keys: &JwtKeys) -> Result<LoadReport, String> {
    if config.rate.is_nan()
        || config.rate <= 0.0
        || config.duration.is_zero()
        || config.customers == 0
    {
        return Err("rate, duration and customers must be positive".into());
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(config.max_in_flight)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    if let Some(inventory) = &config.inventory_api {
        restock(&http, inventory, keys).await?;
    }
    let customers: Arc<Vec<(String, String)>> = Arc::new(
        (0..config.customers)
            .map(|i| {
                let id = format!("load-{run}-{i:05}");
                let token = keys.issue(&id, Role::Customer, Duration::from_secs(24 * 3600));
                (id, token)
            })
            .collect(),
    );
    let histogram = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
    ));
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let in_flight = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let total = (config.rate * config.duration.as_secs_f64()).round() as u64;
    let bar = config.progress.then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} orders {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let interval = Duration::from_secs_f64(1.0 / config.rate);
    let started = Instant::now();
    let mut skipped = 0;
    let mut handles = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        if in_flight.load(Ordering::Relaxed) >= config.max_in_flight as u64 {
            skipped += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        handles.push(tokio::spawn({
            let (http, customers, histogram, accepted, failures, in_flight, done) = (
                http.clone(),
                customers.clone(),
                histogram.clone(),
                accepted.clone(),
                failures.clone(),
                in_flight.clone(),
                done.clone(),
            );
            let base = config.order_api.clone();
            let bar = bar.clone();
            async move {
                let (customer, token) = &customers[n as usize % customers.len()];
                let product = ["SKU-CABLE", "SKU-MOUSE", "SKU-WEBCAM"][n as usize % 3];
                let sent = Instant::now();
                let answer = http
                    .post(format!("{base}/orders"))
                    .bearer_auth(token)
                    .header("Idempotency-Key", format!("load-{n}"))
                    .json(&json!({"items": [{"product_id": product, "quantity": 1}],
                              "device_id": format!("{customer}-device")}))
                    .send()
                    .await;
                let latency = sent.elapsed();
                match answer {
                    Ok(response) if response.status() == reqwest::StatusCode::CREATED => {
                        let body: serde_json::Value = response.json().await.unwrap_or_default();
                        if let Some(id) = body["order_id"].as_str() {
                            accepted
                                .lock()
                                .expect("accepted")
                                .push((customer.clone(), id.to_owned()));
                        }
                        let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
                        let _ = histogram.lock().expect("histogram").record(micros);
                    }
                    Ok(response) => {
                        *failures
                            .lock()
                            .expect("failures")
                            .entry(response.status().as_u16().to_string())
                            .or_default() += 1;
                    }
                    Err(_) => {
                        *failures
                            .lock()
                            .expect("failures")
                            .entry("transport".into())
                            .or_default() += 1;
                    }
                }
                in_flight.fetch_sub(1, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Relaxed);
                if let Some(bar) = bar {
                    bar.inc(1);
                }
            }
        }));
        if let Some(bar) = &bar {
            if n % 50 == 0 {
                let h = histogram.lock().expect("histogram");
                bar.set_message(format!(
                    "· {} in flight · p50 {:.1} ms · p99 {:.1} ms",
                    in_flight.load(Ordering::Relaxed),
                    h.value_at_quantile(0.5) as f64 / 1000.0,
                    h.value_at_quantile(0.99) as f64 / 1000.0
                ));
            }
        }
    }
    for handle in handles {
        let _ = handle.await;
    }
    if let Some(bar) = &bar {
        bar.finish();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let histogram = histogram.lock().expect("histogram").clone();
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let orders = std::mem::take(&mut *accepted.lock().expect("accepted"));
    let failures = failures.lock().expect("failures").clone();
    Ok(LoadReport {
        run,
        sent: done.load(Ordering::Relaxed),
        accepted: orders.len() as u64,
        failures,
        skipped,
        elapsed_secs: elapsed,
        throughput: orders.len() as f64 / elapsed.max(1e-9),
        latency: Latency {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            p999: ms(0.999),
            max: histogram.max() as f64 / 1000.0,
        },
        orders,
    })
}

async fn restock(http: &reqwest::Client, inventory: &str, keys: &JwtKeys) -> Result<(), String> {
    let admin = keys.issue("load-test", Role::Admin, Duration::from_secs(600));
    for product in ["SKU-CABLE", "SKU-MOUSE", "SKU-WEBCAM"] {
        let response = http
            .post(format!("{inventory}/products/{product}/restock"))
            .bearer_auth(&admin)
            .json(&json!({"quantity": 100_000}))
            .send()
            .await
            .map_err(|e| format!("restocking {product}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("restocking {product}: {}", response.status()));
        }
    }
    Ok(())
}

/// Waits up to `timeout` for every order of `report` to reach a final state, reading the
/// run's customers' orders through the order API; reports what finished, what is missing
/// and what should not be there.
pub async fn check(
    order_api: &str,
    keys: &JwtKeys,
    report: &LoadReport,
    timeout: Duration,
) -> Result<CheckReport, String> {
    let http = reqwest::Client::new();
    let admin = keys.issue("load-check", Role::Admin, Duration::from_secs(3600));
    let accepted: HashSet<&str> = report.orders.iter().map(|(_, o)| o.as_str()).collect();
    let customers: Vec<&str> = {
        let mut c: Vec<&str> = report.orders.iter().map(|(c, _)| c.as_str()).collect();
        c.sort();
        c.dedup();
        c
    };
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut unexpected = Vec::new();
        for chunk in customers.chunks(32) {
            let lists = futures::future::join_all(chunk.iter().map(|customer| {
                let http = http.clone();
                let admin = admin.clone();
                async move {
                    http.get(format!("{order_api}/orders"))
                        .query(&[("user", customer)])
                        .bearer_auth(&admin)
                        .send()
                        .await?
                        .json::<Vec<serde_json::Value>>()
                        .await
                }
            }))
            .await;
            for list in lists {
                for order in list.map_err(|e| format!("listing orders: {e}"))? {
                    let id = order["order_id"].as_str().unwrap_or_default().to_owned();
                    let status = order["status"].as_str().unwrap_or_default().to_owned();
                    if !accepted.contains(id.as_str()) {
                        unexpected.push(id.clone());
                    }
                    seen.insert(id, status);
                }
            }
        }
        let is_final = |s: &str| OrderStatus::parse(s).is_some_and(OrderStatus::is_final);
        let mut by_status = BTreeMap::new();
        for status in seen.values().filter(|s| is_final(s)) {
            *by_status.entry(status.clone()).or_default() += 1;
        }
        let lost: Vec<String> = accepted
            .iter()
            .filter(|id| !seen.contains_key(**id))
            .map(|id| (*id).to_owned())
            .collect();
        let unfinished: Vec<String> = seen
            .iter()
            .filter(|(id, s)| accepted.contains(id.as_str()) && !is_final(s))
            .map(|(id, _)| id.clone())
            .collect();
        let finished = seen
            .iter()
            .filter(|(id, s)| accepted.contains(id.as_str()) && is_final(s))
            .count();
        let report = CheckReport {
            accepted: accepted.len(),
            finished,
            by_status,
            lost,
            unexpected,
            unfinished,
            elapsed_secs: started.elapsed().as_secs_f64(),
        };
        if report.ok() || Instant::now() >= deadline {
            return Ok(report);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "load run {}", self.run)?;
        writeln!(
            f,
            "  sent {} · accepted {} · skipped {} · failures {:?}",
            self.sent, self.accepted, self.skipped, self.failures
        )?;
        writeln!(
            f,
            "  {:.1} orders/s over {:.1} s",
            self.throughput, self.elapsed_secs
        )?;
        write!(
            f,
            "  latency ms: p50 {:.2} · p90 {:.2} · p99 {:.2} · p99.9 {:.2} · max {:.2}",
            self.latency.p50,
            self.latency.p90,
            self.latency.p99,
            self.latency.p999,
            self.latency.max
        )
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "check: {} accepted, {} finished {:?}, {} lost, {} unexpected, {} unfinished — {} \
             after {:.1} s",
            self.accepted,
            self.finished,
            self.by_status,
            self.lost.len(),
            self.unexpected.len(),
            self.unfinished.len(),
            if self.ok() { "OK" } else { "FAILED" },
            self.elapsed_secs
        )
    }
}

/// The largest lag in time each consumer group showed while [`LagSampler`] ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LagReport {
    /// Samples read.
    pub samples: u64,
    /// Group → the largest `lag_seconds` the monitor reported for it.
    pub max_lag_seconds: BTreeMap<String, f64>,
    /// Why sampling failed, the last time it did.
    pub error: Option<String>,
}

/// Reads the topic view's `/api/cluster` (the monitor's last sample, taken every 2 s) once a
/// second and keeps each consumer group's largest lag in time, until stopped.
pub struct LagSampler {
    report: Arc<Mutex<LagReport>>,
    task: tokio::task::JoinHandle<()>,
}

impl LagSampler {
    /// Starts sampling `topic_view` (`http://127.0.0.1:8080`).
    pub fn start(topic_view: &str) -> Self {
        let report = Arc::new(Mutex::new(LagReport::default()));
        let url = format!("{}/api/cluster", topic_view.trim_end_matches('/'));
        let shared = report.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let sample = async {
                    let view: serde_json::Value = http
                        .get(&url)
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    Ok::<_, reqwest::Error>(view)
                }
                .await;
                let mut report = shared.lock().expect("lag report");
                match sample {
                    Ok(view) => {
                        report.samples += 1;
                        for group in view["groups"].as_array().into_iter().flatten() {
                            let (Some(name), Some(lag)) =
                                (group["group"].as_str(), group["lag_seconds"].as_f64())
                            else {
                                continue;
                            };
                            let max = report.max_lag_seconds.entry(name.to_owned()).or_default();
                            *max = max.max(lag);
                        }
                    }
                    Err(e) => report.error = Some(format!("{url}: {e}")),
                }
            }
        });
        LagSampler { report, task }
    }

    /// Stops sampling; what it saw.
    pub fn stop(self) -> LagReport {
        self.task.abort();
        self.report.lock().expect("lag report").clone()
    }
}

impl std::fmt::Display for LagReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "largest consumer lag in seconds ({} samples):",
            self.samples
        )?;
        for (group, lag) in &self.max_lag_seconds {
            write!(f, "\n  {group:40} {lag:7.1}")?;
        }
        if let Some(e) = &self.error {
            write!(f, "\n  (last sampling error: {e})")?;
        }
        Ok(())
    }
}
