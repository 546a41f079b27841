//! `shop`: runs the e-commerce demo. See `demo-app/README.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use demo_app::app::{Shop, ShopConfig};
use demo_app::auth::{JwtKeys, Role};

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
    /// The order API's address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    order_api: SocketAddr,
    /// The inventory API's address.
    #[arg(long, default_value = "127.0.0.1:8082")]
    inventory_api: SocketAddr,
    /// Orders per second the traffic simulator places (0 turns it off).
    #[arg(long, default_value_t = 2.0)]
    orders_per_second: f64,
    /// Customers the simulator plays.
    #[arg(long, default_value_t = 50)]
    simulated_customers: usize,
    /// Extra librdkafka settings for every client, `key=value` (e.g. security.protocol=SASL_SSL).
    #[arg(long = "kafka-config", value_parser = key_value)]
    kafka_config: Vec<(String, String)>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
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
            .unwrap_or_else(|| format!("sqlite://{}", cli.data_dir.join("shop.db").display()));
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
    let mut config = ShopConfig::embedded(&cli.data_dir);
    config.bootstrap_servers = cli.bootstrap_servers.clone();
    config.database_url = cli.database_url.clone();
    config.jwt_secret = cli.jwt_secret.clone();
    config.order_api_addr = cli.order_api;
    config.inventory_api_addr = cli.inventory_api;
    config.simulator.orders_per_second = cli.orders_per_second;
    config.simulator.customers = cli.simulated_customers;
    config.kafka_overrides = cli.kafka_config.clone();
    let shop = match Shop::start(config).await {
        Ok(shop) => shop,
        Err(e) => {
            eprintln!("shop cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("shop is running:");
    println!(
        "  kafka        {} ({})",
        shop.bootstrap_servers,
        if cli.bootstrap_servers.is_some() {
            "external"
        } else {
            "embedded tansu on SQLite"
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
    println!("  order API    http://{}/orders", shop.order_api);
    println!("  inventory    http://{}/products", shop.inventory_api);
    if cli.orders_per_second > 0.0 {
        println!(
            "  simulator    {} customers, {} orders/s (--orders-per-second 0 to stop it)",
            cli.simulated_customers, cli.orders_per_second
        );
    }
    println!("  a token      cargo run -p demo-app -- token <user> [--role admin]");
    let _ = tokio::signal::ctrl_c().await;
    println!("stopping");
    shop.stop().await;
    std::process::ExitCode::SUCCESS
}
