//! `kstreams-broker`: the single-node development broker on a port, with its data in a
//! directory, for several processes to share.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use kstreams_broker::{Broker, BrokerConfig};

/// A single-node Kafka-protocol broker for development (no replication).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Where topics and metadata are kept (created when missing).
    #[arg(long, default_value = "broker-data")]
    data_dir: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// The host name clients are told to connect to (default: the listen address).
    #[arg(long)]
    advertised_host: Option<String>,
    /// Refuse unknown topics instead of creating them on first use.
    #[arg(long)]
    no_auto_create_topics: bool,
    /// Partitions of automatically created topics.
    #[arg(long, default_value_t = 1)]
    num_partitions: i32,
}

fn main() {
    let args = Args::parse();
    let mut config = BrokerConfig::new(&args.data_dir)
        .with_listener(args.listen)
        .with_auto_create_topics(!args.no_auto_create_topics);
    config.advertised_host = args.advertised_host;
    config.default_partitions = args.num_partitions;
    let broker = match Broker::start(config) {
        Ok(broker) => broker,
        Err(e) => {
            eprintln!("kstreams-broker: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "kstreams-broker listening on {} with data in {}",
        broker.bootstrap_servers(),
        broker.data_dir().display()
    );
    broker.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
}
