//! The network side: the [`Broker`] handle with its own runtime, the accept loop, request
//! framing, `ApiVersions`, and dispatch of every request to the part of the broker that
//! answers it. Requests on one connection are answered in order, one at a time, as Kafka
//! does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::groups::GroupCoordinator;
use crate::meta::MetaLog;
use crate::topics::Topics;
use crate::txn::TxnCoordinator;
use crate::{admin, data, BrokerConfig, BrokerError};

/// Largest request the broker reads (Kafka's `socket.request.max.bytes`).
const MAX_REQUEST_BYTES: usize = 100 << 20;

/// The requests the broker answers, with the versions it speaks (each also within what
/// `kafka-protocol` can decode).
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
];

fn supported(key: ApiKey) -> Option<(i16, i16)> {
    let (_, min, max) = SUPPORTED.iter().find(|(k, _, _)| *k == key)?;
    let valid = key.valid_versions();
    let (min, max) = ((*min).max(valid.min), (*max).min(valid.max));
    (min <= max).then_some((min, max))
}

/// What every request handler shares.
pub(crate) struct Shared {
    pub config: BrokerConfig,
    pub host: String,
    pub port: i32,
    pub topics: Arc<Topics>,
    pub groups: GroupCoordinator,
    pub txn: TxnCoordinator,
    /// Bumped whenever a log grows or a transaction ends: long-polling fetches wait on it.
    pub changed: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Shared {
    pub fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A running broker, stopped when dropped.
///
/// ```no_run
/// use kstreams_broker::{Broker, BrokerConfig};
/// let broker = Broker::start(BrokerConfig::new("broker-data")).unwrap();
/// println!("bootstrap.servers={}", broker.bootstrap_servers());
/// drop(broker); // stops it; the data stays in broker-data/
/// ```
pub struct Broker {
    bootstrap: String,
    data_dir: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Broker {
    /// Opens the data directory (creating it), binds the listener and serves on a runtime
    /// of its own.
    ///
    /// ```no_run
    /// let dir = tempfile::tempdir().unwrap();
    /// let broker = kstreams_broker::Broker::start(kstreams_broker::BrokerConfig::new(dir.path())).unwrap();
    /// assert!(broker.bootstrap_servers().starts_with("127.0.0.1:"));
    /// ```
    pub fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("kstreams-broker")
            .enable_all()
            .build()?;
        let std_listener = std::net::TcpListener::bind(config.listener)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let data_dir = std::path::absolute(config.data_dir())?;
        let shared = {
            let _entered = runtime.enter();
            build(config, addr)?
        };
        let bootstrap = format!("{}:{}", shared.host, shared.port);
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        runtime.spawn(shared.groups.clone().run_timers());
        runtime.spawn(shared.txn.clone().run_timeouts());
        runtime.spawn(accept_loop(listener, shared));
        Ok(Broker {
            bootstrap,
            data_dir,
            runtime: Some(runtime),
        })
    }

    /// `host:port` for `bootstrap.servers`.
    ///
    /// ```no_run
    /// let broker = kstreams_broker::Broker::start(kstreams_broker::BrokerConfig::new("d")).unwrap();
    /// let servers = broker.bootstrap_servers();
    /// # let _ = servers;
    /// ```
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The data directory.
    ///
    /// ```no_run
    /// let broker = kstreams_broker::Broker::start(kstreams_broker::BrokerConfig::new("d")).unwrap();
    /// assert!(broker.data_dir().ends_with("d"));
    /// ```
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Runs `future` on the broker's runtime (for admin calls from synchronous code; not
    /// from inside another Tokio runtime).
    ///
    /// ```no_run
    /// let broker = kstreams_broker::Broker::start(kstreams_broker::BrokerConfig::new("d")).unwrap();
    /// let answer = broker.block_on(async { 40 + 2 });
    /// assert_eq!(answer, 42);
    /// ```
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("running until dropped")
            .block_on(future)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn build(config: BrokerConfig, addr: SocketAddr) -> Result<Arc<Shared>, BrokerError> {
    let data_dir = config.data_dir().to_path_buf();
    std::fs::create_dir_all(&data_dir)?;
    let (meta, state) = MetaLog::open(&data_dir)?;
    let topics = Arc::new(Topics::open(
        data_dir.join("topics"),
        config.segment_bytes,
        meta.clone(),
        &state,
    )?);
    let groups = GroupCoordinator::new(
        meta.clone(),
        state.offsets.clone(),
        config.group_initial_rebalance_delay,
    );
    let (changed, _) = tokio::sync::watch::channel(0u64);
    let changed = Arc::new(changed);
    let txn = TxnCoordinator::open(
        &state,
        meta,
        topics.clone(),
        groups.clone(),
        config.max_transaction_timeout,
        changed.clone(),
    )?;
    let host = config
        .advertised_host
        .clone()
        .unwrap_or_else(|| addr.ip().to_string());
    Ok(Arc::new(Shared {
        config,
        host,
        port: addr.port() as i32,
        topics,
        groups,
        txn,
        changed,
    }))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of file descriptors, a connection reset before accept, ...
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, peer, shared.clone()));
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut read = tokio::io::BufReader::with_capacity(64 << 10, read);
    let client_host = format!("/{}", peer.ip());
    loop {
        let Ok(len) = read.read_i32().await else {
            return;
        };
        if len < 0 || len as usize > MAX_REQUEST_BYTES {
            return;
        }
        let mut frame = vec![0u8; len as usize];
        if read.read_exact(&mut frame).await.is_err() {
            return;
        }
        match handle(&shared, Bytes::from(frame), &client_host).await {
            Ok(Some(response)) => {
                if write.write_all(&response).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
            // A request the broker cannot read ends the connection, as in Kafka.
            Err(_) => return,
        }
    }
}

/// A response frame: size, header, body.
fn frame<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> anyhow::Result<BytesMut> {
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let header_version = key.response_header_version(version);
    let size = header.compute_size(header_version)? + body.compute_size(version)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    Ok(buf)
}

fn api_versions(error: i16) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error;
    for (key, _, _) in SUPPORTED {
        if let Some((min, max)) = supported(*key) {
            let mut version = ApiVersion::default();
            version.api_key = *key as i16;
            version.min_version = min;
            version.max_version = max;
            response.api_keys.push(version);
        }
    }
    response
}

async fn handle(
    shared: &Shared,
    mut buf: Bytes,
    client_host: &str,
) -> anyhow::Result<Option<BytesMut>> {
    if buf.len() < 8 {
        anyhow::bail!("short request");
    }
    let key = ApiKey::try_from(i16::from_be_bytes([buf[0], buf[1]]))
        .map_err(|_| anyhow::anyhow!("unknown api key"))?;
    let version = i16::from_be_bytes([buf[2], buf[3]]);
    let correlation_id = i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let Some((min, max)) = supported(key) else {
        anyhow::bail!("unsupported api {key:?}");
    };
    if version < min || version > max {
        if key == ApiKey::ApiVersions {
            // Answered at version 0, so the client can read which versions there are.
            let response =
                api_versions(kafka_protocol::error::ResponseError::UnsupportedVersion.code());
            return Ok(Some(frame(key, 0, correlation_id, &response)?));
        }
        anyhow::bail!("unsupported version {version} of {key:?}");
    }
    let header = RequestHeader::decode(&mut buf, key.request_header_version(version))?;
    let client_id = header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    macro_rules! answer {
        ($body:expr) => {
            Ok(Some(frame(key, version, correlation_id, &$body)?))
        };
    }
    macro_rules! request {
        ($t:ty) => {
            <$t>::decode(&mut buf, version)?
        };
    }
    match key {
        ApiKey::ApiVersions => answer!(api_versions(0)),
        ApiKey::Produce => {
            let req = request!(ProduceRequest);
            let acks = req.acks;
            let response = data::produce(shared, req, version);
            if acks == 0 {
                Ok(None)
            } else {
                answer!(response)
            }
        }
        ApiKey::Fetch => {
            let req = request!(FetchRequest);
            answer!(data::fetch(shared, req, version).await)
        }
        ApiKey::ListOffsets => {
            let req = request!(ListOffsetsRequest);
            answer!(data::list_offsets(shared, req, version))
        }
        ApiKey::Metadata => {
            let req = request!(MetadataRequest);
            answer!(admin::metadata(shared, req, version))
        }
        ApiKey::FindCoordinator => {
            let req = request!(FindCoordinatorRequest);
            answer!(admin::find_coordinator(shared, req, version))
        }
        ApiKey::CreateTopics => {
            let req = request!(CreateTopicsRequest);
            answer!(admin::create_topics(shared, req, version))
        }
        ApiKey::DeleteTopics => {
            let req = request!(DeleteTopicsRequest);
            answer!(admin::delete_topics(shared, req, version))
        }
        ApiKey::CreatePartitions => {
            let req = request!(CreatePartitionsRequest);
            answer!(admin::create_partitions(shared, req, version))
        }
        ApiKey::DeleteRecords => {
            let req = request!(DeleteRecordsRequest);
            answer!(admin::delete_records(shared, req, version))
        }
        ApiKey::DescribeConfigs => {
            let req = request!(DescribeConfigsRequest);
            answer!(admin::describe_configs(shared, req, version))
        }
        ApiKey::AlterConfigs => {
            let req = request!(AlterConfigsRequest);
            answer!(admin::alter_configs(shared, req, version))
        }
        ApiKey::IncrementalAlterConfigs => {
            let req = request!(IncrementalAlterConfigsRequest);
            answer!(admin::incremental_alter_configs(shared, req, version))
        }
        ApiKey::DescribeCluster => {
            let req = request!(DescribeClusterRequest);
            answer!(admin::describe_cluster(shared, req, version))
        }
        ApiKey::JoinGroup => {
            let req = request!(JoinGroupRequest);
            answer!(
                shared
                    .groups
                    .join_group(req, version, &client_id, client_host)
                    .await
            )
        }
        ApiKey::SyncGroup => {
            let req = request!(SyncGroupRequest);
            answer!(shared.groups.sync_group(req, version).await)
        }
        ApiKey::Heartbeat => {
            let req = request!(HeartbeatRequest);
            answer!(shared.groups.heartbeat(req, version))
        }
        ApiKey::LeaveGroup => {
            let req = request!(LeaveGroupRequest);
            answer!(shared.groups.leave_group(req, version))
        }
        ApiKey::OffsetCommit => {
            let req = request!(OffsetCommitRequest);
            answer!(shared.groups.offset_commit(req, version))
        }
        ApiKey::OffsetFetch => {
            let req = request!(OffsetFetchRequest);
            answer!(shared.groups.offset_fetch(req, version))
        }
        ApiKey::DescribeGroups => {
            let req = request!(DescribeGroupsRequest);
            answer!(shared.groups.describe_groups(req, version))
        }
        ApiKey::ListGroups => {
            let req = request!(ListGroupsRequest);
            answer!(shared.groups.list_groups(req, version))
        }
        ApiKey::DeleteGroups => {
            let req = request!(DeleteGroupsRequest);
            answer!(shared.groups.delete_groups(req, version))
        }
        ApiKey::InitProducerId => {
            let req = request!(InitProducerIdRequest);
            answer!(shared.txn.init_producer_id(req, version))
        }
        ApiKey::AddPartitionsToTxn => {
            let req = request!(AddPartitionsToTxnRequest);
            answer!(shared.txn.add_partitions(req, version))
        }
        ApiKey::AddOffsetsToTxn => {
            let req = request!(AddOffsetsToTxnRequest);
            answer!(shared.txn.add_offsets(req, version))
        }
        ApiKey::EndTxn => {
            let req = request!(EndTxnRequest);
            answer!(shared.txn.end_txn(req, version))
        }
        ApiKey::TxnOffsetCommit => {
            let req = request!(TxnOffsetCommitRequest);
            answer!(data::txn_offset_commit(shared, req, version))
        }
        other => anyhow::bail!("unrouted api {other:?}"),
    }
}

/// Waits until `deadline` or until the broker's data changes, whichever comes first.
pub(crate) async fn wait_for_change(
    receiver: &mut tokio::sync::watch::Receiver<u64>,
    deadline: Instant,
) {
    let _ = tokio::time::timeout_at(deadline.into(), receiver.changed()).await;
}
