//! Property tests: stream and table aggregations against a plain reference model, on random
//! inputs with updates and tombstones.

use std::collections::BTreeMap;

use kstreams::config::StreamsConfig;
use kstreams::dsl::*;
use kstreams::state::KeyValueStore;
use kstreams::testing::TestDriver;
use proptest::prelude::*;

fn key(k: u8) -> String {
    format!("k{k}")
}

/// Last emitted value per key of a table's change stream.
fn last_emitted(driver: &TestDriver, topic: &str) -> BTreeMap<String, Option<i64>> {
    driver
        .create_output_topic::<String, Option<i64>>(topic)
        .read_key_values_to_list()
        .into_iter()
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn stream_count_reduce_aggregate_match_the_model(
        records in prop::collection::vec((0u8..6, -50i64..50), 0..80),
    ) {
        let b = StreamsBuilder::new();
        let grouped = b.stream::<String, i64>("in").group_by_key();
        grouped.count_with(Materialized::named("count")).to_stream().to("count-out");
        grouped.reduce_with(|a, v| a + v, Materialized::named("sum")).to_stream().to("sum-out");
        grouped
            .aggregate_with(|| 0i64, |_, v, agg| agg.max(v) + 1, Materialized::named("agg"))
            .to_stream()
            .to("agg-out");
        let d = TestDriver::new(&b.build().unwrap(), StreamsConfig::new("model")).unwrap();
        let input = d.create_input_topic::<String, i64>("in");

        let (mut count, mut sum, mut agg) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for (i, &(k, v)) in records.iter().enumerate() {
            input.pipe_input_at(key(k), v, i as i64);
            *count.entry(key(k)).or_insert(0i64) += 1;
            *sum.entry(key(k)).or_insert(0i64) += v;
            let a = agg.entry(key(k)).or_insert(0i64);
            *a = (*a).max(v) + 1;
        }
        for (store, model, topic) in [("count", &count, "count-out"), ("sum", &sum, "sum-out"), ("agg", &agg, "agg-out")] {
            let s: KeyValueStore<String, i64> = d.key_value_store(store).unwrap();
            let actual: BTreeMap<String, i64> = s.all().unwrap().into_iter().collect();
            prop_assert_eq!(&actual, model, "store {}", store);
            let emitted = last_emitted(&d, topic);
            let expected: BTreeMap<String, Option<i64>> = model.iter().map(|(k, v)| (k.clone(), Some(*v))).collect();
            prop_assert_eq!(emitted, expected, "output {}", topic);
        }
    }

    #[test]
    fn table_group_by_count_and_sum_match_the_model(
        // (row key, Some(group, amount) = upsert | None = tombstone)
        updates in prop::collection::vec((0u8..8, prop::option::weighted(0.8, (0u8..3, 0i64..100))), 0..80),
    ) {
        let b = StreamsBuilder::new();
        let table = b.table::<String, String>("rows", Materialized::default());
        let by_group = table.group_by(|_, v| {
            let (group, amount) = v.split_once(':').expect("group:amount");
            (group.to_string(), amount.parse::<i64>().expect("amount"))
        });
        by_group.count_with(Materialized::named("group-count")).to_stream().to("count-out");
        by_group
            .aggregate_with(|| 0i64, |_, v, agg| agg + v, |_, v, agg| agg - v, Materialized::named("group-sum"))
            .to_stream()
            .to("sum-out");
        let d = TestDriver::new(&b.build().unwrap(), StreamsConfig::new("table-model")).unwrap();
        let input = d.create_input_topic::<String, Option<String>>("rows");

        let mut rows: BTreeMap<String, (String, i64)> = BTreeMap::new();
        let mut touched = std::collections::BTreeSet::new();
        for (i, (row, update)) in updates.iter().enumerate() {
            let value = update.map(|(g, a)| format!("g{g}:{a}"));
            input.pipe_input_at(key(*row), value, i as i64);
            if let Some(old) = rows.get(&key(*row)) {
                touched.insert(old.0.clone());
            }
            match update {
                Some((g, a)) => {
                    touched.insert(format!("g{g}"));
                    rows.insert(key(*row), (format!("g{g}"), *a));
                }
                None => {
                    rows.remove(&key(*row));
                }
            }
        }
        // Groups ever touched keep an aggregate (a count of 0 stays, as in Kafka Streams).
        let mut count: BTreeMap<String, i64> = touched.iter().map(|g| (g.clone(), 0)).collect();
        let mut sum = count.clone();
        for (group, amount) in rows.values() {
            *count.get_mut(group).unwrap() += 1;
            *sum.get_mut(group).unwrap() += amount;
        }
        for (store, model, topic) in [("group-count", &count, "count-out"), ("group-sum", &sum, "sum-out")] {
            let s: KeyValueStore<String, i64> = d.key_value_store(store).unwrap();
            let actual: BTreeMap<String, i64> = s.all().unwrap().into_iter().collect();
            prop_assert_eq!(&actual, model, "store {}", store);
            let emitted = last_emitted(&d, topic);
            let expected: BTreeMap<String, Option<i64>> = model.iter().map(|(k, v)| (k.clone(), Some(*v))).collect();
            prop_assert_eq!(emitted, expected, "output {}", topic);
        }
    }
}
