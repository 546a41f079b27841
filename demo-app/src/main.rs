//! `shop`: runs the e-commerce demo. See `demo-app/README.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use demo_app::app::{Service, Shop, ShopConfig};
use demo_app::auth::{JwtKeys, Role};
use demo_app::chaos::Scenario;

/// shop: an e-commerce system on kstreams.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Kafka bootstrap servers; without, an embedded broker listens on 127.0.0.1:9092.
    #[arg(long, env = "SHOP_BOOTSTRAP_SERVERS")]
    bootstrap_servers: Option<String>,
    /// Database URL (`postgres://...`); without, an SQLite file in the data directory.
    #[arg(long, env = "SHOP_DATABASE_URL")]
    database_url: Option<String>,
    /// Redis URL (`redis://127.0.0.1:6379`) for the stock-level cache; without, an
    /// in-process cache.
    #[arg(long, env = "SHOP_REDIS_URL")]
    redis_url: Option<String>,
    /// Prefix of the shop's keys in the cache (several shops can share one Redis).
    #[arg(long, env = "SHOP_CACHE_PREFIX", default_value = "shop:")]
    cache_prefix: String,
    /// Run only this service (repeat for several); without, every service runs here.
    #[arg(long = "role", value_enum)]
    roles: Vec<Service>,
    /// Fraud detection rules as JSON (fields of `FraudRules`; missing ones keep defaults).
    #[arg(long, env = "SHOP_FRAUD_RULES")]
    fraud_rules: Option<PathBuf>,
    /// Where the embedded broker, the SQLite database and state stores keep their data.
    #[arg(long, env = "SHOP_DATA_DIR", default_value = "shop-data")]
    data_dir: PathBuf,
    /// HS256 key of the APIs' JWTs.
    #[arg(
        long,
        env = "SHOP_JWT_SECRET",
        default_value = "shop-demo-secret-change-me"
    )]
    jwt_secret: String,
    /// Key of the encryption at rest of customers' email and phone (32 bytes in base64, or
    /// a passphrase).
    #[arg(
        long,
        env = "SHOP_ENCRYPTION_KEY",
        default_value = "shop-demo-encryption-key-change-me"
    )]
    encryption_key: String,
    /// The order API's address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    order_api: SocketAddr,
    /// The inventory API's address.
    #[arg(long, default_value = "127.0.0.1:8082")]
    inventory_api: SocketAddr,
    /// The dashboard's address.
    #[arg(long, default_value = "127.0.0.1:3000")]
    dashboard: SocketAddr,
    /// The topic view's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    topic_view: SocketAddr,
    /// Also serve `/metrics` alone here (for a process without an API).
    #[arg(long, env = "SHOP_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Orders per second the traffic simulator places (0 turns it off).
    #[arg(long, default_value_t = 2.0)]
    orders_per_second: f64,
    /// The order API the simulator calls (`http://order:8081`); without, this process's.
    #[arg(long, env = "SHOP_SIMULATOR_TARGET")]
    simulator_target: Option<String>,
    /// Customers the simulator plays.
    #[arg(long, default_value_t = 1000)]
    simulated_customers: usize,
    /// Extra librdkafka settings for every client, `key=value` (e.g. security.protocol=SASL_SSL).
    #[arg(long = "kafka-config", value_parser = key_value)]
    kafka_config: Vec<(String, String)>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves the embedded development broker alone (data in `<data-dir>/broker`, as the
    /// all-in-one shop keeps it), so that `--role` processes started with
    /// `--bootstrap-servers` share it. A single node without replication; see
    /// `kstreams-broker`'s documentation.
    Broker {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:9092")]
        listen: SocketAddr,
    },
    /// Prints a JWT for a user, to call the APIs with `Authorization: Bearer <token>`.
    Token {
        /// The user id (`sub`).
        user: String,
        /// `customer` or `admin`.
        #[arg(long, default_value = "customer")]
        role: String,
        /// Validity in hours.
        #[arg(long, default_value_t = 24)]
        hours: u64,
    },
    /// Moves payment requests that failed because the gateway was unavailable from
    /// `payment-events-dlq` back to `payment-events` (needs `--bootstrap-servers`, or a
    /// running embedded shop on 127.0.0.1:9092).
    DlqReplay,
    /// Recomputes the audit log's hash chain and reports the first entry that does not
    /// match (exit code 1), or how many entries are intact.
    AuditVerify,
    /// Places orders at a fixed rate for a fixed time against a running shop (127.0.0.1
    /// by default), reports throughput and latency percentiles, then checks that every
    /// accepted order reached a final state exactly once (exit code 1 otherwise). Through
    /// the run and the check it reads the topic view's `/api/cluster` every second and
    /// reports each consumer group's largest lag in seconds.
    Load {
        /// Orders per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Distinct customers.
        #[arg(long, default_value_t = 1000)]
        customers: usize,
        /// How long the check waits for orders to finish, in seconds.
        #[arg(long, default_value_t = 120)]
        check_timeout: u64,
    },
    /// Starts a chaos scenario on a running shop's dashboard, optionally with a load run
    /// during it and the lost-or-duplicated check after it.
    Chaos {
        #[command(subcommand)]
        scenario: ChaosCommand,
        /// The dashboard of the shop.
        #[arg(long, global = true, default_value = "http://127.0.0.1:3000")]
        dashboard_url: String,
        /// Orders per second to place during the scenario (0: none).
        #[arg(long, global = true, default_value_t = 0.0)]
        load_rate: f64,
        /// For how many seconds.
        #[arg(long, global = true, default_value_t = 20)]
        load_seconds: u64,
    },
}

#[derive(Debug, Subcommand)]
enum ChaosCommand {
    /// Stops a service (its consumers) for some seconds.
    Stop {
        /// The service: payment, shipping, inventory, order, notification, audit, analytics.
        service: String,
        /// Seconds.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Adds latency to a service's broker traffic and drops a fraction of it.
    Degrade {
        /// The service.
        service: String,
        /// Added latency per record, ms.
        #[arg(long, default_value_t = 200)]
        latency_ms: u64,
        /// Fraction of deliveries dropped, 0..=1.
        #[arg(long, default_value_t = 0.2)]
        drop_rate: f64,
        /// Seconds.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// Kills a streams app instance and starts it again.
    Restart {
        /// shop-order-analytics, shop-inventory-monitor or shop-fraud-detection.
        application_id: String,
    },
    /// Ends every fault.
    Clear,
}

async fn load_and_check(
    config: &demo_app::load::LoadConfig,
    keys: &JwtKeys,
    check_timeout: Duration,
    topic_view: Option<&str>,
) -> std::process::ExitCode {
    // Lag in time per consumer group, through the run and its check.
    let lag = topic_view.map(demo_app::load::LagSampler::start);
    let report = match demo_app::load::run(config, keys).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("load run failed: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{report}");
    let check = demo_app::load::check(&config.order_api, keys, &report, check_timeout).await;
    if let Some(lag) = lag {
        println!("{}", lag.stop());
    }
    match check {
        Ok(check) => {
            println!("{check}");
            if check.ok() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("check failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn print_summary(cli: &Cli, shop: &Shop) {
    println!("shop is running:");
    println!(
        "  kafka        {} ({})",
        shop.bootstrap_servers,
        if cli.bootstrap_servers.is_some() {
            "external"
        } else {
            "the embedded kstreams development broker"
        }
    );
    println!(
        "  database     {}",
        if shop.db.is_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    println!("  cache        {}", shop.cache.kind());
    let services: Vec<&str> = shop.services.iter().map(|s| s.name()).collect();
    println!("  services     {}", services.join(", "));
    if let Some(addr) = shop.order_api {
        println!("  order API    http://{addr}/orders");
    }
    if let Some(addr) = shop.inventory_api {
        println!("  inventory    http://{addr}/products");
    }
    if let Some(addr) = shop.dashboard {
        println!("  dashboard    http://{addr}/");
    }
    if let Some(addr) = shop.topic_view {
        println!("  topic view   http://{addr}/");
    }
    if let Some(addr) = shop.metrics_addr {
        println!("  metrics      http://{addr}/metrics");
    }
    if !shop.streams.is_empty() {
        let apps: Vec<&str> = shop
            .streams
            .iter()
            .map(|app| app.application_id.as_str())
            .collect();
        println!("  streams apps {}", apps.join(", "));
        println!(
            "  guarantee    {}",
            match shop.guarantee {
                kstreams::config::ProcessingGuarantee::ExactlyOnce =>
                    "exactly-once (the cluster runs transactions)",
                kstreams::config::ProcessingGuarantee::AtLeastOnce =>
                    "at-least-once (no transactions on this cluster); sinks are idempotent",
            }
        );
    }
    if shop.services.contains(&Service::Simulator) && cli.orders_per_second > 0.0 {
        println!(
            "  simulator    {} customers, {} orders/s (--orders-per-second 0 to stop it)",
            cli.simulated_customers, cli.orders_per_second
        );
    }
    println!("  a token      cargo run -p demo-app -- token <user> [--role admin]");
}

/// `shop broker`: the development broker alone, until Ctrl-C or SIGTERM.
async fn serve_broker(data_dir: &std::path::Path, listen: SocketAddr) -> std::process::ExitCode {
    let config = kstreams_broker::BrokerConfig::new(data_dir.join("broker")).with_listener(listen);
    let started = tokio::task::spawn_blocking(move || kstreams_broker::Broker::start(config))
        .await
        .map_err(|e| e.to_string())
        .and_then(|started| started.map_err(|e| e.to_string()));
    let broker = match started {
        Ok(broker) => broker,
        Err(e) => {
            eprintln!("the broker cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "kstreams development broker on {} with data in {}",
        broker.bootstrap_servers(),
        broker.data_dir().display()
    );
    println!(
        "  start services with: shop --bootstrap-servers {} --role <service>",
        broker.bootstrap_servers()
    );
    shutdown_signal().await;
    println!("stopping");
    // The broker's runtime must be dropped outside this one.
    let _ = tokio::task::spawn_blocking(move || drop(broker)).await;
    std::process::ExitCode::SUCCESS
}

/// Ctrl-C, or SIGTERM (what `docker stop` and process managers send): either stops the
/// process cleanly, so its consumers leave their groups at once instead of after the
/// session timeout.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,demo_app=info,shop=info,kstreams=info".into()),
        )
        .init();
    let cli = Cli::parse();
    if let Some(Command::Token { user, role, hours }) = &cli.command {
        let role = match role.as_str() {
            "customer" => Role::Customer,
            "admin" => Role::Admin,
            other => {
                eprintln!("unknown role {other:?}: use customer or admin");
                return std::process::ExitCode::from(2);
            }
        };
        let keys = JwtKeys::new(cli.jwt_secret.as_bytes());
        println!(
            "{}",
            keys.issue(user, role, Duration::from_secs(hours * 3600))
        );
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(Command::Broker { listen }) = &cli.command {
        return serve_broker(&cli.data_dir, *listen).await;
    }
    if let Some(Command::DlqReplay) = &cli.command {
        let bootstrap = cli
            .bootstrap_servers
            .clone()
            .unwrap_or_else(|| "127.0.0.1:9092".into());
        let client = demo_app::app::client_config(&bootstrap, &cli.kafka_config);
        return match demo_app::services::payment::replay_dead_letters(&client).await {
            Ok(moved) => {
                println!("moved {moved} payment requests back to payment-events");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("replay failed: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::AuditVerify) = &cli.command {
        let url = cli
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", cli.data_dir.join("audit.db").display()));
        let db = match demo_app::db::Database::connect(&url).await {
            Ok(db) => db,
            Err(e) => {
                eprintln!("{e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        return match demo_app::services::audit::verify(&db).await {
            Ok(demo_app::services::audit::Verification::Intact(n)) => {
                println!("audit log intact: {n} entries");
                std::process::ExitCode::SUCCESS
            }
            Ok(demo_app::services::audit::Verification::Broken { seq, reason }) => {
                println!("audit log BROKEN at entry {seq}: {reason}");
                std::process::ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("cannot read the audit log: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Load {
        rate,
        seconds,
        customers,
        check_timeout,
    }) = &cli.command
    {
        let config = demo_app::load::LoadConfig {
            order_api: format!("http://{}", cli.order_api),
            inventory_api: Some(format!("http://{}", cli.inventory_api)),
            rate: *rate,
            duration: Duration::from_secs(*seconds),
            customers: *customers,
            progress: true,
            ..Default::default()
        };
        let keys = JwtKeys::new(cli.jwt_secret.as_bytes());
        let topic_view = format!("http://{}", cli.topic_view);
        return load_and_check(
            &config,
            &keys,
            Duration::from_secs(*check_timeout),
            Some(&topic_view),
        )
        .await;
    }
    if let Some(Command::Chaos {
        scenario,
        dashboard_url,
        load_rate,
        load_seconds,
    }) = &cli.command
    {
        let keys = JwtKeys::new(cli.jwt_secret.as_bytes());
        let scenario = match scenario {
            ChaosCommand::Stop { service, seconds } => Scenario::Stop {
                service: service.clone(),
                seconds: *seconds,
            },
            ChaosCommand::Degrade {
                service,
                latency_ms,
                drop_rate,
                seconds,
            } => Scenario::Degrade {
                service: service.clone(),
                latency_ms: *latency_ms,
                drop_rate: *drop_rate,
                seconds: *seconds,
            },
            ChaosCommand::Restart { application_id } => Scenario::RestartStreams {
                application_id: application_id.clone(),
            },
            ChaosCommand::Clear => Scenario::Clear,
        };
        let admin = keys.issue("chaos-cli", Role::Admin, Duration::from_secs(600));
        let answer = reqwest::Client::new()
            .post(format!("{dashboard_url}/api/chaos"))
            .bearer_auth(admin)
            .json(&scenario)
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => {
                println!("started: {}", response.text().await.unwrap_or_default())
            }
            Ok(response) => {
                let status = response.status();
                eprintln!(
                    "refused ({status}): {}",
                    response.text().await.unwrap_or_default()
                );
                return std::process::ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("cannot reach the dashboard at {dashboard_url}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
        if *load_rate > 0.0 {
            let config = demo_app::load::LoadConfig {
                order_api: format!("http://{}", cli.order_api),
                inventory_api: Some(format!("http://{}", cli.inventory_api)),
                rate: *load_rate,
                duration: Duration::from_secs(*load_seconds),
                progress: true,
                ..Default::default()
            };
            let topic_view = format!("http://{}", cli.topic_view);
            return load_and_check(&config, &keys, Duration::from_secs(180), Some(&topic_view))
                .await;
        }
        return std::process::ExitCode::SUCCESS;
    }
    let mut config = ShopConfig::embedded(&cli.data_dir);
    config.bootstrap_servers = cli.bootstrap_servers.clone();
    config.database_url = cli.database_url.clone();
    config.redis_url = cli.redis_url.clone();
    config.cache_prefix = cli.cache_prefix.clone();
    config.jwt_secret = cli.jwt_secret.clone();
    config.encryption_key = cli.encryption_key.clone();
    config.order_api_addr = cli.order_api;
    config.inventory_api_addr = cli.inventory_api;
    config.dashboard_addr = cli.dashboard;
    config.topic_view_addr = cli.topic_view;
    config.metrics_addr = cli.metrics_addr;
    config.simulator.orders_per_second = cli.orders_per_second;
    config.simulator.customers = cli.simulated_customers;
    config.simulator.target = cli.simulator_target.clone();
    config.kafka_overrides = cli.kafka_config.clone();
    if !cli.roles.is_empty() {
        config.services = cli.roles.iter().copied().collect();
    }
    if let Some(path) = &cli.fraud_rules {
        match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        {
            Ok(rules) => config.fraud_rules = rules,
            Err(e) => {
                eprintln!("cannot read fraud rules from {}: {e}", path.display());
                return std::process::ExitCode::from(2);
            }
        }
    }
    let shop = match Shop::start(config).await {
        Ok(shop) => shop,
        Err(e) => {
            eprintln!("shop cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    print_summary(&cli, &shop);
    shutdown_signal().await;
    println!("stopping");
    shop.stop().await;
    std::process::ExitCode::SUCCESS
}
