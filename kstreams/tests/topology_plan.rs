//! Partition counts of internal topics, as the runtime will create them.

use std::collections::BTreeMap;

use kstreams::dsl::*;
use kstreams::TopologyError;

fn counts(pairs: &[(&str, i32)]) -> impl Fn(&str) -> Option<i32> {
    let map: BTreeMap<String, i32> = pairs.iter().map(|(t, p)| (t.to_string(), *p)).collect();
    move |t| map.get(t).copied()
}

#[test]
fn repartition_topics_follow_their_writer_or_their_join_partner() {
    let builder = StreamsBuilder::new();
    // orders (8 partitions) rekeyed and joined with users (4): the repartition topic takes 4.
    let users = builder.table::<String, String>("users", Materialized::named("users-store"));
    builder
        .stream::<String, String>("orders")
        .select_key(|_, user| user.clone())
        .join(&users, |o, u| format!("{o}{u}"))
        .group_by_key()
        .count_with(Materialized::named("per-user"));
    // words (3) grouped by a new key: repartition and changelog follow the writer.
    builder
        .stream::<String, String>("words")
        .group_by(|_, w| w.clone())
        .count_with(Materialized::named("word-counts"));
    // An explicit count wins.
    builder
        .stream::<String, String>("clicks")
        .select_key(|_, v| v.clone())
        .repartition_with(
            Repartitioned::default()
                .with_name("clicks-by-page")
                .with_partitions(5),
        )
        .group_by_key()
        .count_with(Materialized::named("per-page"));
    let topology = builder.build().unwrap();
    let plan = topology
        .internal_topic_partitions(counts(&[
            ("orders", 8),
            ("users", 4),
            ("words", 3),
            ("clicks", 2),
        ]))
        .unwrap();
    let join_repartition: Vec<_> = plan
        .keys()
        .filter(|k| k.starts_with("KSTREAM-JOIN-REPARTITION"))
        .collect();
    assert_eq!(join_repartition.len(), 1, "{plan:?}");
    assert_eq!(plan[join_repartition[0]], 4);
    assert_eq!(plan["users-store-changelog"], 4);
    assert_eq!(
        plan["per-user-changelog"], 4,
        "group_by_key after the join keeps the key"
    );
    assert_eq!(plan["word-counts-repartition"], 3);
    assert_eq!(plan["word-counts-changelog"], 3);
    assert_eq!(plan["clicks-by-page-repartition"], 5);
    assert_eq!(plan["per-page-changelog"], 5);
    let described = topology.describe();
    let requested: Vec<_> = described
        .internal_topics
        .iter()
        .filter_map(|t| t.partitions.map(|p| (t.name.as_str(), p)))
        .collect();
    assert_eq!(requested, vec![("clicks-by-page-repartition", 5)]);
}

#[test]
fn a_missing_source_topic_is_reported_by_name() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("words")
        .group_by(|_, w| w.clone())
        .count();
    let topology = builder.build().unwrap();
    assert_eq!(
        topology.internal_topic_partitions(|_| None),
        Err(TopologyError::MissingSourceTopic("words".into()))
    );
}

#[test]
fn zero_partitions_is_rejected_when_the_topology_is_built() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .repartition_with(Repartitioned::default().with_name("x").with_partitions(0))
        .to("out");
    assert!(matches!(
        builder.build(),
        Err(TopologyError::InvalidName { .. })
    ));
}
