//! Wiring: the broker (embedded or external), the database, topics and the services.
//!
//! [`Shop::start`] brings up what [`ShopConfig`] asks for and returns handles the binary and
//! the tests use. With no `bootstrap_servers` it starts the embedded Kafka-protocol broker
//! (the kstreams development broker, data in `data_dir/broker`), so the whole shop runs with
//! nothing installed.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::producer::Producer;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use tokio::task::JoinHandle;

use kstreams::config::ProcessingGuarantee;

use crate::auth::JwtKeys;
use crate::cache::{Cache, CacheError};
use crate::chaos::{Chaos, Faults};
use crate::consumer::{self, Handler, DEAD_LETTERS};
use crate::crypto::FieldCipher;
use crate::dashboard::Dashboard;
use crate::db::{Database, DbError};
use crate::events::{topics, Channel};
use crate::metrics::MetricsRegistry;
use crate::monitor::{AlertRules, ClusterMonitor};
use crate::outbox::OutboxRelay;
use crate::services::audit::{self, AuditService};
use crate::services::catalog;
use crate::services::inventory::{self, InventoryService};
use crate::services::notification::NotificationService;
use crate::services::order::{self, OrderService};
use crate::services::payment::{self, Gateway, GatewayConfig, PaymentService};
use crate::services::payment_holds::{self, HoldRecorder, HoldsApi};
use crate::services::shipping::{self, ShippingService};
use crate::services::user::UserService;
use crate::simulator::{self, SimulatorConfig};
use crate::streams::analytics::{self, AnalyticsSink};
use crate::streams::fraud::{self, FraudRules};
use crate::streams::inventory_monitor::{self, MonitorRules};
use crate::streams::{self, StreamsApp, StreamsSettings};
use crate::topic_view::TopicView;

/// A part of the shop that can run alone (`--role`), or with the others in one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Service {
    /// Order API (:8081) and the order state machine.
    Order,
    /// User API (on the order API's address).
    User,
    /// Inventory API (:8082) and reservations.
    Inventory,
    /// Payments against the simulated gateway, fraud holds.
    Payment,
    /// Shipping quotes and the simulated carrier.
    Shipping,
    /// Email and SMS notifications.
    Notification,
    /// The tamper-evident audit log.
    Audit,
    /// The order analytics streams app and its database sink.
    Analytics,
    /// The inventory monitoring streams app and its cache mirror.
    InventoryMonitor,
    /// The fraud detection streams app.
    Fraud,
    /// The traffic simulator.
    Simulator,
    /// The live dashboard (:3000), with the cluster monitor.
    Dashboard,
    /// The topic view (:8080), with the cluster monitor.
    TopicView,
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 13] = [
        Service::Order,
        Service::User,
        Service::Inventory,
        Service::Payment,
        Service::Shipping,
        Service::Notification,
        Service::Audit,
        Service::Analytics,
        Service::InventoryMonitor,
        Service::Fraud,
        Service::Simulator,
        Service::Dashboard,
        Service::TopicView,
    ];

    /// The services that publish events (through the outbox).
    pub const PUBLISHERS: [Service; 5] = [
        Service::Order,
        Service::User,
        Service::Inventory,
        Service::Payment,
        Service::Shipping,
    ];

    /// Its name on the command line and on the dashboard.
    pub fn name(self) -> &'static str {
        match self {
            Service::Order => "order",
            Service::User => "user",
            Service::Inventory => "inventory",
            Service::Payment => "payment",
            Service::Shipping => "shipping",
            Service::Notification => "notification",
            Service::Audit => "audit",
            Service::Analytics => "analytics",
            Service::InventoryMonitor => "inventory-monitor",
            Service::Fraud => "fraud",
            Service::Simulator => "simulator",
            Service::Dashboard => "dashboard",
            Service::TopicView => "topic-view",
        }
    }
}

/// What to run and where.
#[derive(Clone, Debug)]
pub struct ShopConfig {
    /// An external cluster; `None` starts the embedded broker on `embedded_broker_addr`.
    pub bootstrap_servers: Option<String>,
    /// Where the embedded broker listens.
    pub embedded_broker_addr: SocketAddr,
    /// Database URL; `None` is the SQLite file `<data_dir>/shop.db`.
    pub database_url: Option<String>,
    /// Redis URL; `None` is the in-process cache.
    pub redis_url: Option<String>,
    /// Prefix of the shop's cache keys.
    pub cache_prefix: String,
    /// Embedded broker data, SQLite database, state stores.
    pub data_dir: PathBuf,
    /// HS256 key of the APIs' JWTs.
    pub jwt_secret: String,
    /// Key of the encryption at rest of contact details ([`crate::crypto`]).
    pub encryption_key: String,
    /// The order API's address.
    pub order_api_addr: SocketAddr,
    /// The inventory API's address.
    pub inventory_api_addr: SocketAddr,
    /// The dashboard's address.
    pub dashboard_addr: SocketAddr,
    /// The topic view's address.
    pub topic_view_addr: SocketAddr,
    /// An extra address serving only `/metrics` (for processes without an API).
    pub metrics_addr: Option<SocketAddr>,
    /// librdkafka settings for every client (security, ...).
    pub kafka_overrides: Vec<(String, String)>,
    /// The simulated payment gateway.
    pub gateway: GatewayConfig,
    /// How long the simulated carrier takes to deliver.
    pub delivery_delay: Duration,
    /// How old a payment request must be before it is charged (fraud screening; see
    /// [`PaymentService::with_screening`]).
    pub payment_screening: Duration,
    /// Simulated customers placing orders.
    pub simulator: SimulatorConfig,
    /// What runs in this process.
    pub services: BTreeSet<Service>,
    /// The fraud detection rules.
    pub fraud_rules: FraudRules,
    /// The inventory monitor's rules.
    pub monitor_rules: MonitorRules,
    /// How often the streams apps commit (and forward out of their store caches).
    pub streams_commit_interval: Duration,
    /// Force a processing guarantee instead of detecting one.
    pub processing_guarantee: Option<ProcessingGuarantee>,
}

impl ShopConfig {
    /// Everything local on the default ports, data under `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        ShopConfig {
            bootstrap_servers: None,
            embedded_broker_addr: ([127, 0, 0, 1], 9092).into(),
            database_url: None,
            redis_url: None,
            cache_prefix: "shop:".into(),
            data_dir: data_dir.into(),
            jwt_secret: "shop-demo-secret-change-me".into(),
            encryption_key: "shop-demo-encryption-key-change-me".into(),
            order_api_addr: ([127, 0, 0, 1], 8081).into(),
            inventory_api_addr: ([127, 0, 0, 1], 8082).into(),
            dashboard_addr: ([127, 0, 0, 1], 3000).into(),
            topic_view_addr: ([127, 0, 0, 1], 8080).into(),
            metrics_addr: None,
            kafka_overrides: Vec::new(),
            gateway: GatewayConfig::default(),
            delivery_delay: Duration::from_secs(5),
            payment_screening: Duration::from_millis(1500),
            simulator: SimulatorConfig::default(),
            services: Service::ALL.into_iter().collect(),
            fraud_rules: FraudRules::default(),
            monitor_rules: MonitorRules::default(),
            streams_commit_interval: Duration::from_secs(1),
            processing_guarantee: None,
        }
    }

    /// Everything on ephemeral ports (for tests and side-by-side runs).
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Self::embedded(data_dir);
        config.embedded_broker_addr = ([127, 0, 0, 1], 0).into();
        config.order_api_addr = ([127, 0, 0, 1], 0).into();
        config.inventory_api_addr = ([127, 0, 0, 1], 0).into();
        config.dashboard_addr = ([127, 0, 0, 1], 0).into();
        config.topic_view_addr = ([127, 0, 0, 1], 0).into();
        config.simulator.orders_per_second = 0.0;
        config
    }

    /// Whether `service` runs in this process.
    pub fn runs(&self, service: Service) -> bool {
        self.services.contains(&service)
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
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Seeding the catalog failed.
    #[error("seeding the catalog: {0}")]
    Seed(#[from] sqlx::Error),
    /// A streams app failed to start.
    #[error("streams app {app}: {source}")]
    Streams {
        /// Its application id.
        app: &'static str,
        /// Why.
        source: kstreams::StreamsError,
    },
    /// An address was taken.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The audit log's and the notification service's databases. On the default SQLite they are
/// files of their own beside `shop.db` (`audit.db`, `notifications.db`): they write a row
/// for nearly every event, and SQLite has one writer per file, so in one file their writes
/// would queue with the order pipeline's (at 1,000 orders/s the pipeline then fell minutes
/// behind; with them apart it keeps up). Neither joins with another service's tables. On
/// PostgreSQL, or with a `--database-url` given, they share the one database.
pub async fn side_databases(
    config: &ShopConfig,
    db: &Database,
) -> Result<(Database, Database), DbError> {
    if config.database_url.is_some() {
        return Ok((db.clone(), db.clone()));
    }
    let file = |name: &str| format!("sqlite://{}", config.data_dir.join(name).display());
    Ok((
        Database::connect(&file("audit.db")).await?,
        Database::connect(&file("notifications.db")).await?,
    ))
}

/// A running shop.
pub struct Shop {
    /// `bootstrap.servers` of the cluster in use.
    pub bootstrap_servers: String,
    /// The database.
    pub db: Database,
    /// The audit log's database: on the default SQLite a file of its own (`audit.db`), on
    /// PostgreSQL (or a given SQLite URL) the same as [`db`](Shop::db).
    pub audit_db: Database,
    /// The notification service's database (`notifications.db`), as [`audit_db`](Shop::audit_db).
    pub notifications_db: Database,
    /// The cache (Redis or in-process).
    pub cache: Cache,
    /// The JWT keys of the APIs.
    pub keys: JwtKeys,
    /// Where the order API listens, when it runs here.
    pub order_api: Option<SocketAddr>,
    /// Where the inventory API listens, when it runs here.
    pub inventory_api: Option<SocketAddr>,
    /// Where the dashboard listens, when it runs here.
    pub dashboard: Option<SocketAddr>,
    /// Where the topic view listens, when it runs here.
    pub topic_view: Option<SocketAddr>,
    /// Where `/metrics` alone is served, when asked for.
    pub metrics_addr: Option<SocketAddr>,
    /// The simulated payment gateway (reconfigurable at run time).
    pub gateway: Arc<Gateway>,
    /// The Kafka client settings every service uses.
    pub client: ClientConfig,
    /// The guarantee the streams apps run with.
    pub guarantee: ProcessingGuarantee,
    /// The streams apps running here.
    pub streams: Vec<Arc<StreamsApp>>,
    /// What runs here.
    pub services: BTreeSet<Service>,
    /// The chaos faults of this process's services.
    pub chaos: Chaos,
    /// This process's metrics.
    pub metrics: MetricsRegistry,
    broker: Option<kstreams_broker::Broker>,
    relay: OutboxRelay,
    tasks: Vec<JoinHandle<()>>,
}

impl Shop {
    /// Starts the shop.
    pub async fn start(config: ShopConfig) -> Result<Shop, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StartError::Broker(e.to_string()))?;
        let (bootstrap_servers, broker) = match &config.bootstrap_servers {
            Some(servers) => (servers.clone(), None),
            None => {
                let broker_config =
                    kstreams_broker::BrokerConfig::new(config.data_dir.join("broker"))
                        .with_listener(config.embedded_broker_addr);
                let broker = tokio::task::spawn_blocking(move || {
                    kstreams_broker::Broker::start(broker_config)
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
        let (audit_db, notifications_db) = side_databases(&config, &db).await?;
        let cache = match &config.redis_url {
            Some(url) => Cache::redis(url, &config.cache_prefix).await?,
            None => Cache::in_memory(&config.cache_prefix),
        };

        // Keys are hashed as Kafka's Java clients and kstreams hash them (murmur2), so the
        // streams apps' repartition topics are co-partitioned with the services' topics.
        let producer = Producer::new(
            client
                .clone()
                .set("enable.idempotence", "true")
                .set("linger.ms", "5")
                .set("partitioner", "murmur2_random"),
        )?;
        // The relay publishes the outbox rows of the services running here.
        let relay = OutboxRelay::new(
            db.clone(),
            producer.clone(),
            relay_holder(&config.data_dir),
            Service::PUBLISHERS
                .into_iter()
                .filter(|service| config.runs(*service)),
        );
        let keys = JwtKeys::new(config.jwt_secret.as_bytes());
        let mut tasks = Vec::new();
        if !relay.sources().is_empty() {
            tasks.push(tokio::spawn(relay.clone().run()));
        }
        let chaos = Chaos::new();
        let cipher = FieldCipher::new(&config.encryption_key);
        let metrics = MetricsRegistry::new();

        // The order API: orders, users and the admin's fraud holds.
        let orders = OrderService::new(db.clone(), keys.clone(), relay.clone());
        let mut order_router = axum::Router::new();
        if config.runs(Service::Order) {
            order_router = order_router
                .merge(orders.clone().router())
                .merge(HoldsApi::new(db.clone(), keys.clone(), relay.clone()).router());
            tasks.push(spawn_consumer(
                &client,
                &producer,
                &db,
                chaos.faults(Service::Order),
                order::GROUP,
                &[topics::INVENTORY, topics::PAYMENTS, topics::SHIPPING],
                orders,
            ));
        }
        if config.runs(Service::User) {
            order_router = order_router.merge(
                UserService::new(db.clone(), keys.clone(), relay.clone(), cipher.clone())
                    .with_notifications(notifications_db.clone())
                    .router(),
            );
        }
        let order_api = if config.runs(Service::Order) || config.runs(Service::User) {
            let (addr, task) =
                serve(config.order_api_addr, order_router.merge(metrics.router())).await?;
            tasks.push(task);
            Some(addr)
        } else {
            None
        };

        let gateway = Arc::new(Gateway::new(config.gateway.clone()));
        if config.runs(Service::Payment) {
            let payments = PaymentService::new(db.clone(), relay.clone(), gateway.clone())
                .with_screening(config.payment_screening);
            tasks.push(spawn_consumer(
                &client,
                &producer,
                &db,
                chaos.faults(Service::Payment),
                payment::GROUP,
                &[topics::PAYMENTS],
                payments,
            ));
            tasks.push(spawn_consumer(
                &client,
                &producer,
                &db,
                chaos.faults(Service::Payment),
                payment_holds::GROUP,
                &[topics::NOTIFICATIONS],
                HoldRecorder,
            ));
        }

        if config.runs(Service::Shipping) {
            let shipping = ShippingService::new(db.clone(), relay.clone(), config.delivery_delay);
            tasks.push(tokio::spawn(shipping.clone().run_carrier()));
            tasks.push(spawn_consumer(
                &client,
                &producer,
                &db,
                chaos.faults(Service::Shipping),
                shipping::GROUP,
                &[topics::ORDERS],
                shipping,
            ));
        }

        if config.runs(Service::Notification) {
            for channel in [Channel::Email, Channel::Sms] {
                let notifications = NotificationService::new(channel, cipher.clone());
                let group = notifications.group();
                tasks.push(spawn_consumer(
                    &client,
                    &producer,
                    &notifications_db,
                    chaos.faults(Service::Notification),
                    group,
                    &[topics::USERS, topics::ORDERS, topics::NOTIFICATIONS],
                    notifications,
                ));
            }
        }

        if config.runs(Service::Audit) {
            let all: Vec<&'static str> = topics::ALL
                .iter()
                .map(|(name, _)| *name)
                .chain([DEAD_LETTERS])
                .collect();
            tasks.push(spawn_consumer(
                &client,
                &producer,
                &audit_db,
                chaos.faults(Service::Audit),
                audit::GROUP,
                &all,
                AuditService::new(cipher.clone()),
            ));
        }

        let inventory_api = if config.runs(Service::Inventory) {
            let inventory = InventoryService::new(db.clone(), keys.clone(), relay.clone());
            let router = inventory.clone().router().merge(metrics.router());
            let (addr, task) = serve(config.inventory_api_addr, router).await?;
            tasks.push(task);
            tasks.push(spawn_consumer(
                &client,
                &producer,
                &db,
                chaos.faults(Service::Inventory),
                inventory::GROUP,
                &[topics::ORDERS],
                inventory,
            ));
            Some(addr)
        } else {
            None
        };

        // The streams apps: exactly-once where the cluster has transactions.
        let wants_streams = [
            Service::Analytics,
            Service::InventoryMonitor,
            Service::Fraud,
        ]
        .iter()
        .any(|s| config.runs(*s));
        let guarantee = match config.processing_guarantee {
            Some(guarantee) => guarantee,
            None if wants_streams => {
                let probe = client.clone();
                tokio::task::spawn_blocking(move || streams::detect_guarantee(&probe))
                    .await
                    .unwrap_or(ProcessingGuarantee::AtLeastOnce)
            }
            None => ProcessingGuarantee::AtLeastOnce,
        };
        let settings = StreamsSettings {
            bootstrap_servers: bootstrap_servers.clone(),
            state_dir: config.data_dir.join("streams"),
            guarantee,
            client_overrides: config.kafka_overrides.clone(),
            commit_interval: config.streams_commit_interval,
        };
        let mut apps = Vec::new();
        if config.runs(Service::Analytics) {
            let app =
                start_app(analytics::APPLICATION_ID, analytics::topology(), &settings).await?;
            apps.push(app);
            tasks.push(spawn_consumer(
                &client,
                &producer,
                &db,
                chaos.faults(Service::Analytics),
                analytics::SINK_GROUP,
                &[analytics::ENRICHED_TOPIC, analytics::SALES_TOPIC],
                AnalyticsSink,
            ));
        }
        if config.runs(Service::InventoryMonitor) {
            let topology = inventory_monitor::topology(config.monitor_rules);
            let app = start_app(inventory_monitor::APPLICATION_ID, topology, &settings).await?;
            tasks.push(tokio::spawn(inventory_monitor::mirror_to_cache(
                app.clone(),
                cache.clone(),
            )));
            apps.push(app);
        }
        if config.runs(Service::Fraud) {
            let topology = fraud::topology(config.fraud_rules.clone());
            apps.push(start_app(fraud::APPLICATION_ID, topology, &settings).await?);
        }

        for app in &apps {
            metrics.register_streams(app.clone());
        }

        // Operators: the cluster monitor, the dashboard, the topic view, /metrics.
        let guarantee_name = match guarantee {
            ProcessingGuarantee::ExactlyOnce => "exactly-once",
            ProcessingGuarantee::AtLeastOnce => "at-least-once",
        };
        let (mut dashboard_addr, mut topic_view_addr, mut metrics_addr) = (None, None, None);
        if config.runs(Service::Dashboard) || config.runs(Service::TopicView) {
            let monitor = ClusterMonitor::new(&client, AlertRules::default());
            let view = monitor.view();
            tasks.push(tokio::spawn(monitor.run(Duration::from_secs(2))));
            if config.runs(Service::Dashboard) {
                let dashboard = Dashboard::new(
                    apps.clone(),
                    view.clone(),
                    config.services.iter().copied().collect(),
                    chaos.clone(),
                    keys.clone(),
                    guarantee_name,
                );
                for task in dashboard.tasks() {
                    tasks.push(tokio::spawn(task));
                }
                let router = dashboard.router().merge(metrics.router());
                let (addr, task) = serve(config.dashboard_addr, router).await?;
                tasks.push(task);
                dashboard_addr = Some(addr);
            }
            if config.runs(Service::TopicView) {
                let router = TopicView::new(view, client.clone()).router();
                let (addr, task) = serve(config.topic_view_addr, router).await?;
                tasks.push(task);
                topic_view_addr = Some(addr);
            }
        }
        if let Some(addr) = config.metrics_addr {
            let (addr, task) = serve(addr, metrics.router()).await?;
            tasks.push(task);
            metrics_addr = Some(addr);
        }

        if config.runs(Service::Simulator) && config.simulator.orders_per_second > 0.0 {
            let target = config.simulator.target.clone().unwrap_or_else(|| {
                format!("http://{}", order_api.unwrap_or(config.order_api_addr))
            });
            tasks.push(tokio::spawn(simulator::run(
                config.simulator.clone(),
                target,
                keys.clone(),
            )));
        }

        Ok(Shop {
            bootstrap_servers,
            db,
            audit_db,
            notifications_db,
            cache,
            keys,
            order_api,
            inventory_api,
            dashboard: dashboard_addr,
            topic_view: topic_view_addr,
            metrics_addr,
            gateway,
            client,
            guarantee,
            streams: apps,
            services: config.services.clone(),
            chaos,
            metrics,
            broker,
            relay,
            tasks,
        })
    }

    /// The streams app `application_id`, when it runs here.
    pub fn streams_app(&self, application_id: &str) -> Option<&Arc<StreamsApp>> {
        self.streams
            .iter()
            .find(|app| app.application_id == application_id)
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
        // The relay's task has stopped: hand its lease to a stand-by process at once.
        if let Err(e) = self.relay.release().await {
            tracing::warn!("{e}");
        }
        for app in self.streams.drain(..) {
            let _ = tokio::task::spawn_blocking(move || app.close()).await;
        }
        if let Some(broker) = self.broker.take() {
            // Its runtime must be dropped outside ours.
            let _ = tokio::task::spawn_blocking(move || drop(broker)).await;
        }
    }
}

/// The outbox relay's lease identity: this host and the data directory, so a restarted
/// process takes its own lease back at once while other processes (other hosts, or other
/// data directories here) wait for it to expire.
fn relay_holder(data_dir: &std::path::Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    format!("{host}:{}", dir.display())
}

async fn start_app(
    app: &'static str,
    topology: Result<kstreams::topology::Topology, kstreams::TopologyError>,
    settings: &StreamsSettings,
) -> Result<Arc<StreamsApp>, StartError> {
    let topology = topology.map_err(|e| StartError::Streams {
        app,
        source: e.into(),
    })?;
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || StreamsApp::start(app, topology, &settings))
        .await
        .map_err(|e| StartError::Streams {
            app,
            source: kstreams::StreamsError::Other(e.to_string()),
        })?
        .map(Arc::new)
        .map_err(|source| StartError::Streams { app, source })
}

/// Runs `handler` as consumer group `group` over `topics` on a task of its own, with the
/// chaos faults of `faults`.
fn spawn_consumer<H: Handler>(
    client: &ClientConfig,
    producer: &Producer,
    db: &Database,
    faults: Arc<Faults>,
    group: &'static str,
    topics: &[&'static str],
    handler: H,
) -> JoinHandle<()> {
    let (client, producer, db, topics) = (
        client.clone(),
        producer.clone(),
        db.clone(),
        topics.to_vec(),
    );
    tokio::spawn(async move {
        consumer::run(client, group, &topics, db, producer, faults, handler).await
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
        .chain(&[
            (DEAD_LETTERS, 1),
            (analytics::ENRICHED_TOPIC, 4),
            (analytics::SALES_TOPIC, 4),
        ])
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The clients accept TLS and SASL-over-TLS settings: librdkafka refuses them at
    /// creation when it was built without OpenSSL.
    #[test]
    fn kafka_clients_take_tls_and_sasl_settings() {
        let overrides: Vec<(String, String)> = [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "shop"),
            ("sasl.password", "secret"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let config = client_config("127.0.0.1:1", &overrides);
        let producer: Result<rdkafka::producer::BaseProducer, _> = config.create();
        assert!(producer.is_ok(), "{:?}", producer.err());
        let mut tls = client_config("127.0.0.1:1", &[]);
        tls.set("security.protocol", "SSL");
        let consumer: Result<rdkafka::consumer::BaseConsumer, _> =
            tls.set("group.id", "g").create();
        assert!(consumer.is_ok(), "{:?}", consumer.err());
    }
}
