//! Interactive queries: read an application's state stores while it runs, and find which
//! instance holds a key.
//!
//! Two instances of one application (same application id, so one consumer group) count page
//! views per page into the store `views-per-page`. Each instance owns one of the two
//! partitions, so each store holds only its partition's pages. For each page, instance A's
//! `query_metadata_for_key` says which partition holds it and which instance (by its
//! `application_server`, the address it publishes) runs that partition; the query then goes
//! to that instance's `store(..).get(..)`. In a deployment that hop is an HTTP or RPC call to
//! the host; here both instances live in one process, so it is a lookup by host name. Exits
//! non-zero if a page is routed to the wrong instance or a count is wrong.
//!
//! ```text
//! cargo run --example interactive_queries
//! ```

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use kstreams::dsl::{Materialized, StreamsBuilder};
use kstreams::kafka::{KafkaStreams, State};
use kstreams::BoxError;

const STORE: &str = "views-per-page";
const HOSTS: [&str; 2] = ["instance-a:8080", "instance-b:8080"];

fn main() -> Result<(), BoxError> {
    common::header(
        "Interactive queries",
        "Two instances split the state; each key is routed to the instance that holds it.",
    );
    let broker = common::start_broker(&[("page-views", 2)])?;
    let bootstrap = broker.bootstrap_servers();

    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("page-views")
        .group_by_key()
        .count_with(Materialized::named(STORE));
    let topology = builder.build()?;

    // Two instances of the application, as two processes would run them.
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let mut instances = BTreeMap::new();
    for (host, dir) in HOSTS.iter().zip(&dirs) {
        let mut config = common::streams_config(bootstrap, "page-views-app", dir.path());
        config.application_server = Some(host.to_string());
        let mut streams = KafkaStreams::new(&topology, config);
        streams.start()?;
        instances.insert(host.to_string(), streams);
    }
    common::wait_until("each instance to own one partition", || {
        instances
            .values()
            .all(|s| s.local_tasks().len() == 1 && s.state() == State::Running)
    })?;
    for (host, streams) in &instances {
        println!("{host} runs tasks {:?}", streams.local_tasks());
    }

    let views = [
        ("/home", 5),
        ("/cart", 2),
        ("/checkout", 1),
        ("/search", 4),
        ("/help", 3),
        ("/about", 1),
    ];
    let producer = common::producer(bootstrap)?;
    println!("\nInput (topic `page-views`, key page):");
    for (page, count) in views {
        println!("  {page:<10} {count} views");
        for n in 0..count {
            common::send(
                &producer,
                "page-views",
                page,
                format!("user-{n}").as_bytes(),
                None,
            )?;
        }
    }
    let expected: BTreeMap<String, i64> = views.iter().map(|(p, c)| (p.to_string(), *c)).collect();
    common::wait_until("the counts in the stores", || {
        let mut all = BTreeMap::new();
        for streams in instances.values() {
            match streams.store::<String, i64>(STORE).and_then(|s| s.all()) {
                Ok(entries) => all.extend(entries),
                Err(_) => return false,
            }
        }
        all == expected
    })?;

    println!("\nWhat each instance holds locally:");
    for (host, streams) in &instances {
        println!(
            "  {host}: {:?}",
            streams.store::<String, i64>(STORE)?.all()?
        );
    }

    println!("\nQueries, asked at {} and routed by key:", HOSTS[0]);
    let asked = &instances[HOSTS[0]];
    for (page, count) in &expected {
        let meta = asked.query_metadata_for_key(STORE, page)?;
        let host = meta
            .host
            .clone()
            .ok_or("every instance publishes its host")?;
        let owner = &instances[&host];
        let answer = owner.store::<String, i64>(STORE)?.get(page)?;
        let elsewhere: Vec<&String> = instances
            .iter()
            .filter(|(h, s)| {
                **h != host
                    && matches!(
                        s.store::<String, i64>(STORE).and_then(|st| st.get(page)),
                        Ok(Some(_))
                    )
            })
            .map(|(h, _)| h)
            .collect();
        println!(
            "  {page:<10} partition {} on {host} (local to A: {:<5}) -> {answer:?}",
            meta.partition, meta.local
        );
        assert_eq!(
            answer,
            Some(*count),
            "{page}: the owner answers with the count"
        );
        assert!(
            elsewhere.is_empty(),
            "{page}: only its owner holds it, not {elsewhere:?}"
        );
    }
    for streams in instances.values_mut() {
        streams.close();
    }
    println!("\nOK: {} pages, each found on exactly one of 2 instances via query_metadata_for_key, with the right count", expected.len());
    Ok(())
}
