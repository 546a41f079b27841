//! Wiring: the broker (embedded or external), the database, topics and the services.
//!
//! [`Shop::start`] brings up what [`ShopConfig`] asks for and returns handles the binary and
//! the tests use. With no `bootstrap_servers` it starts the embedded Kafka-protocol broker
//! (tansu on SQLite, in `data_dir`), so the whole shop runs with nothing installed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use tokio::task::JoinHandle;

use crate::auth::JwtKeys;
use crate::consumer::{self, Handler, DEAD_LETTERS};
use crate::db::{Database, DbError};
use crate::events::{topics, Channel};
use crate::outbox::OutboxRelay;
use crate::services::audit::{self, AuditService};
use crate::services::catalog;
use crate::services::inventory::{self, InventoryService};
use crate::services::notification::NotificationService;
use crate::services::order::{self, OrderService};
use crate::services::payment::{self, Gateway, GatewayConfig, PaymentService};
use crate::services::shipping::{self, ShippingService};
use crate::services::user::UserService;
use crate::simulator::{self, SimulatorConfig};

/// What to run and where.
#[derive(Clone, Debug)]
pub struct ShopConfig {
    /// An external cluster; `None` starts the embedded broker on `embedded_broker_addr`.
    pub bootstrap_servers: Option<String>,
    /// Where the embedded broker listens.
    pub embedded_broker_addr: SocketAddr,
    /// Database URL; `None` is the SQLite file `<data_dir>/shop.db`.
    pub database_url: Option<String>,
    /// Embedded broker data, SQLite database, state stores.
    pub data_dir: PathBuf,
    /// HS256 key of the APIs' JWTs.
    pub jwt_secret: String,
    /// The order API's address.
    pub order_api_addr: SocketAddr,
    /// The inventory API's address.
    pub inventory_api_addr: SocketAddr,
    /// librdkafka settings for every client (security, ...).
    pub kafka_overrides: Vec<(String, String)>,
    /// The simulated payment gateway.
    pub gateway: GatewayConfig,
    /// How long the simulated carrier takes to deliver.
    pub delivery_delay: Duration,
    /// Simulated customers placing orders.
    pub simulator: SimulatorConfig,
}

impl ShopConfig {
    /// Everything local on the default ports, data under `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        ShopConfig {
            bootstrap_servers: None,
            embedded_broker_addr: ([127, 0, 0, 1], 9092).into(),
            database_url: None,
            data_dir: data_dir.into(),
            jwt_secret: "shop-demo-secret-change-me".into(),
            order_api_addr: ([127, 0, 0, 1], 8081).into(),
            inventory_api_addr: ([127, 0, 0, 1], 8082).into(),
            kafka_overrides: Vec::new(),
            gateway: GatewayConfig::default(),
            delivery_delay: Duration::from_secs(5),
            simulator: SimulatorConfig::default(),
        }
    }

    /// Everything on ephemeral ports (for tests and side-by-side runs).
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Self::embedded(data_dir);
        config.embedded_broker_addr = ([127, 0, 0, 1], 0).into();
        config.order_api_addr = ([127, 0, 0, 1], 0).into();
        config.inventory_api_addr = ([127, 0, 0, 1], 0).into();
        config.simulator.orders_per_second = 0.0;
        config
    }
}

/// Why the shop could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The embedded broker failed.
    #[error("embedded broker: {0}")]
    Broker(String),
    /// A Kafka client failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbError),
    /// Seeding the catalog failed.
    #[error("seeding the catalog: {0}")]
    Seed(#[from] sqlx::Error),
    /// An address was taken.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running shop.
pub struct Shop {
    /// `bootstrap.servers` of the cluster in use.
    pub bootstrap_servers: String,
    /// The database.
    pub db: Database,
    /// The JWT keys of the APIs.
    pub keys: JwtKeys,
    /// Where the order API listens.
    pub order_api: SocketAddr,
    /// Where the inventory API listens.
    pub inventory_api: SocketAddr,
    /// The simulated payment gateway (reconfigurable at run time).
    pub gateway: Arc<Gateway>,
    /// The Kafka client settings every service uses.
    pub client: ClientConfig,
    broker: Option<kstreams_testkit::EmbeddedBroker>,
    tasks: Vec<JoinHandle<()>>,
}

impl Shop {
    /// Starts the shop.
    pub async fn start(config: ShopConfig) -> Result<Shop, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StartError::Broker(e.to_string()))?;
        let (bootstrap_servers, broker) = match &config.bootstrap_servers {
            Some(servers) => (servers.clone(), None),
            None => {
                let file = config.data_dir.join("broker.db");
                let addr = config.embedded_broker_addr;
                let broker = tokio::task::spawn_blocking(move || {
                    kstreams_testkit::EmbeddedBroker::start_with(&file, addr)
                })
                .await
                .map_err(|e| StartError::Broker(e.to_string()))?
                .map_err(|e| StartError::Broker(e.to_string()))?;
                (broker.bootstrap_servers().to_owned(), Some(broker))
            }
        };
        let client = client_config(&bootstrap_servers, &config.kafka_overrides);
        create_topics(&client).await?;

        let database_url = config
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", config.data_dir.join("shop.db").display()));
        let db = Database::connect(&database_url).await?;
        catalog::seed(&db).await?;

        let producer: FutureProducer = client
            .clone()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()?;
        let relay = OutboxRelay::new(db.clone(), producer.clone());
        let keys = JwtKeys::new(config.jwt_secret.as_bytes());
        let mut tasks = vec![tokio::spawn(relay.clone().run())];

        let orders = OrderService::new(db.clone(), keys.clone(), relay.clone());
        let users = UserService::new(db.clone(), keys.clone(), relay.clone());
        let (order_api, task) = serve(
            config.order_api_addr,
            orders.clone().router().merge(users.router()),
        )
        .await?;
        tasks.push(task);
        tasks.push(spawn_consumer(
            &client,
            &producer,
            order::GROUP,
            &[topics::INVENTORY, topics::PAYMENTS, topics::SHIPPING],
            orders,
        ));

        let payments = PaymentService::new(
            db.clone(),
            relay.clone(),
            Arc::new(Gateway::new(config.gateway.clone())),
        );
        let gateway = payments.gateway().clone();
        tasks.push(spawn_consumer(
            &client,
            &producer,
            payment::GROUP,
            &[topics::PAYMENTS],
            payments,
        ));

        let shipping = ShippingService::new(db.clone(), relay.clone(), config.delivery_delay);
        tasks.push(tokio::spawn(shipping.clone().run_carrier()));
        tasks.push(spawn_consumer(
            &client,
            &producer,
            shipping::GROUP,
            &[topics::ORDERS],
            shipping,
        ));

        for channel in [Channel::Email, Channel::Sms] {
            let notifications = NotificationService::new(db.clone(), channel);
            let group = notifications.group();
            tasks.push(spawn_consumer(
                &client,
                &producer,
                group,
                &[topics::USERS, topics::ORDERS, topics::NOTIFICATIONS],
                notifications,
            ));
        }

        let all: Vec<&'static str> = topics::ALL
            .iter()
            .map(|(name, _)| *name)
            .chain([DEAD_LETTERS])
            .collect();
        tasks.push(spawn_consumer(
            &client,
            &producer,
            audit::GROUP,
            &all,
            AuditService::new(db.clone()),
        ));

        let inventory = InventoryService::new(db.clone(), keys.clone(), relay);
        let (inventory_api, task) =
            serve(config.inventory_api_addr, inventory.clone().router()).await?;
        tasks.push(task);
        tasks.push(spawn_consumer(
            &client,
            &producer,
            inventory::GROUP,
            &[topics::ORDERS],
            inventory,
        ));

        tasks.push(tokio::spawn(simulator::run(
            config.simulator.clone(),
            order_api,
            keys.clone(),
        )));

        Ok(Shop {
            bootstrap_servers,
            db,
            keys,
            order_api,
            inventory_api,
            gateway,
            client,
            broker,
            tasks,
        })
    }

    /// Stops every service and the embedded broker.
    pub async fn stop(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // Wait until every task's future is dropped: a consumer closes (leaves its group,
        // commits) when dropped, which needs the broker, so the broker goes last.
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Some(broker) = self.broker.take() {
            // Its runtime must be dropped outside ours.
            let _ = tokio::task::spawn_blocking(move || drop(broker)).await;
        }
    }
}

/// Runs `handler` as consumer group `group` over `topics` on a task of its own.
fn spawn_consumer<H: Handler>(
    client: &ClientConfig,
    producer: &FutureProducer,
    group: &'static str,
    topics: &[&'static str],
    handler: H,
) -> JoinHandle<()> {
    let (client, producer, topics) = (client.clone(), producer.clone(), topics.to_vec());
    tokio::spawn(async move {
        consumer::run(client, group, &topics, producer, |record| {
            handler.handle(record)
        })
        .await
    })
}

/// A client config for `bootstrap` with the overrides applied.
pub fn client_config(bootstrap: &str, overrides: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (key, value) in overrides {
        config.set(key, value);
    }
    config
}

async fn create_topics(client: &ClientConfig) -> Result<(), StartError> {
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let new: Vec<NewTopic<'_>> = topics::ALL
        .iter()
        .chain(&[(DEAD_LETTERS, 1)])
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&new, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(StartError::Broker(format!(
                    "creating topic {topic}: {code}"
                )))
            }
        }
    }
    Ok(())
}

async fn serve(
    addr: SocketAddr,
    router: axum::Router,
) -> Result<(SocketAddr, JoinHandle<()>), StartError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr, source })?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("HTTP server on {local} stopped: {e}");
        }
    });
    Ok((local, task))
}
