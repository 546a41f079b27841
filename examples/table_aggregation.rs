//! Table aggregation: a KTable of user → region, re-grouped by region, with a `count` and an
//! `aggregate` (the sorted list of users) per region.
//!
//! The input topic carries updates and a tombstone. When a user moves, the table aggregation
//! first subtracts the user from the old region, then adds them to the new one, so the old
//! region's count goes down. A tombstone (`null` value) removes the user from their region.
//!
//! Runs on the in-memory `TestDriver`, prints the topology, inputs, outputs and stores, and
//! exits non-zero (panics) if a result is not as described.
//!
//! ```text
//! cargo run --example table_aggregation
//! ```

use std::collections::BTreeMap;

use kstreams::config::StreamsConfig;
use kstreams::dsl::{Materialized, StreamsBuilder};
use kstreams::testing::TestDriver;

/// Adds a user to a comma-separated, sorted list.
fn add_user(list: String, user: &str) -> String {
    let mut users: Vec<&str> = list.split(',').filter(|u| !u.is_empty()).collect();
    users.push(user);
    users.sort_unstable();
    users.join(",")
}

/// Removes a user from a comma-separated list.
fn remove_user(list: String, user: &str) -> String {
    list.split(',')
        .filter(|u| !u.is_empty() && *u != user)
        .collect::<Vec<_>>()
        .join(",")
}

fn main() {
    // 1. Build: table(user → region) → group_by(region) → count + aggregate.
    let builder = StreamsBuilder::new();
    let users = builder.table::<String, String>("user-regions", Materialized::named("users"));
    let by_region = users.group_by(|user, region| (region.clone(), user.clone()));
    by_region
        .count_with(Materialized::named("region-counts"))
        .to_stream()
        .to("region-counts");
    by_region
        .aggregate_with(
            String::new,
            |_region, user, list| add_user(list, &user),
            |_region, user, list| remove_user(list, &user),
            Materialized::named("region-users"),
        )
        .to_stream()
        .to("region-users");
    let topology = builder.build().expect("valid topology");
    println!("{}", topology.describe());

    // 2. Run it.
    let driver = TestDriver::new(&topology, StreamsConfig::new("regions")).expect("driver");
    let input = driver.create_input_topic::<String, Option<String>>("user-regions");
    let counts = driver.create_output_topic::<String, Option<i64>>("region-counts");
    let lists = driver.create_output_topic::<String, Option<String>>("region-users");

    let updates: [(&str, Option<&str>, &str); 5] = [
        ("alice", Some("eu"), "alice joins eu"),
        ("bob", Some("us"), "bob joins us"),
        ("carol", Some("eu"), "carol joins eu"),
        ("alice", Some("us"), "alice moves eu -> us"),
        ("bob", None, "bob is deleted (tombstone)"),
    ];
    let mut count_updates = Vec::new();
    for (t, (user, region, what)) in updates.iter().enumerate() {
        println!("Input t={t}: {user} -> {region:?}   ({what})");
        input.pipe_input_at(user.to_string(), region.map(str::to_string), t as i64);
        let step_counts = counts.read_key_values_to_list();
        for (region, count) in &step_counts {
            println!("    region-counts: {region} -> {count:?}");
        }
        for (region, list) in lists.read_key_values_to_list() {
            println!("    region-users:  {region} -> {list:?}");
        }
        count_updates.push(step_counts);
    }

    // 3. Stores.
    let table: BTreeMap<String, String> = driver
        .key_value_store::<String, String>("users")
        .expect("users store")
        .all()
        .expect("scan")
        .into_iter()
        .collect();
    let region_counts: BTreeMap<String, i64> = driver
        .key_value_store::<String, i64>("region-counts")
        .expect("count store")
        .all()
        .expect("scan")
        .into_iter()
        .collect();
    let region_users: BTreeMap<String, String> = driver
        .key_value_store::<String, String>("region-users")
        .expect("aggregate store")
        .all()
        .expect("scan")
        .into_iter()
        .collect();
    println!("\nStore `users`:         {table:?}");
    println!("Store `region-counts`: {region_counts:?}");
    println!("Store `region-users`:  {region_users:?}");

    // 4. Check the claims.
    // alice's move first decrements eu (2 -> 1), then increments us (1 -> 2).
    assert_eq!(
        count_updates[3],
        vec![("eu".to_string(), Some(1)), ("us".to_string(), Some(2))],
        "a move subtracts from the old group, then adds to the new one"
    );
    // bob's tombstone decrements us (2 -> 1).
    assert_eq!(count_updates[4], vec![("us".to_string(), Some(1))]);
    let expect = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(table, expect(&[("alice", "us"), ("carol", "eu")]));
    assert_eq!(
        region_counts,
        BTreeMap::from([("eu".to_string(), 1), ("us".to_string(), 1)])
    );
    assert_eq!(region_users, expect(&[("eu", "carol"), ("us", "alice")]));
    println!("\nOK: alice's move decremented eu to 1; bob's tombstone decremented us to 1");
}
