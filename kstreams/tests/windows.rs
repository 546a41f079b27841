//! Window semantics through the TestDriver: boundaries, grace, late records, hopping,
//! sliding and session windows, final-only emission and the wall-clock close.

use std::collections::BTreeMap;
use std::time::Duration;

use kstreams::config::StreamsConfig;
use kstreams::dsl::*;
use kstreams::serde::DefaultSerde;
use kstreams::testing::{TestDriver, TestInputTopic, TestOutputTopic};
use proptest::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type Out = TestOutputTopic<String, Option<i64>>;

/// Builds `input → group_by_key → <window> → count → "out"` with keys rendered as
/// `key@start-end`.
fn count_topology(
    window: impl FnOnce(KGroupedStream<String, String>) -> KTable<Windowed<String>, i64>,
    suppress: Option<Suppressed>,
) -> (TestDriver, TestInputTopic<String, String>, Out) {
    windowed_topology(window, suppress)
}

/// Builds `input → group_by_key → <window> → [suppress] → "out"` for input values of type
/// `V`, with keys rendered as `key@start-end`.
fn windowed_topology<V: Data + DefaultSerde>(
    window: impl FnOnce(KGroupedStream<String, V>) -> KTable<Windowed<String>, i64>,
    suppress: Option<Suppressed>,
) -> (TestDriver, TestInputTopic<String, V>, Out) {
    let builder = StreamsBuilder::new();
    let mut table = window(builder.stream::<String, V>("input").group_by_key());
    if let Some(s) = suppress {
        table = table.suppress(s);
    }
    table
        .to_stream()
        .map(|w, c| (format!("{}@{}-{}", w.key, w.window.start, w.window.end), c))
        .to("out");
    let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("windows")).unwrap();
    let input = driver.create_input_topic::<String, V>("input");
    let out = driver.create_output_topic::<String, Option<i64>>("out");
    (driver, input, out)
}

fn kv(k: &str, v: Option<i64>) -> (String, Option<i64>) {
    (k.to_string(), v)
}

#[test]
fn tumbling_window_boundaries_are_start_inclusive_end_exclusive() {
    let (_d, input, out) = count_topology(
        |g| {
            g.windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(100)))
                .count()
        },
        None,
    );
    for t in [0, 9, 10, 19, 20] {
        input.pipe_input_at("a".into(), "x".into(), t);
    }
    assert_eq!(
        out.read_key_values_to_list(),
        vec![
            kv("a@0-10", Some(1)),
            kv("a@0-10", Some(2)),
            kv("a@10-20", Some(1)),
            kv("a@10-20", Some(2)),
            kv("a@20-30", Some(1)),
        ]
    );
}

#[test]
fn out_of_order_records_within_grace_are_counted_late_ones_dropped() {
    let (driver, input, out) = count_topology(
        |g| {
            g.windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
                .count()
        },
        None,
    );
    input.pipe_input_at("a".into(), "x".into(), 12); // stream time 12
    input.pipe_input_at("a".into(), "x".into(), 3); // window [0,10) closes at 15: accepted
    input.pipe_input_at("a".into(), "x".into(), 15); // stream time 15: [0,10) now closed
    input.pipe_input_at("a".into(), "x".into(), 4); // late: dropped and counted
    assert_eq!(
        out.read_key_values_to_list(),
        vec![
            kv("a@10-20", Some(1)),
            kv("a@0-10", Some(1)),
            kv("a@10-20", Some(2))
        ]
    );
    assert_eq!(driver.metrics().late_records_dropped, 1);
    let store = driver.window_store::<String, i64>("KSTREAM-AGGREGATE-STATE-STORE-0000000001");
    let store = store.expect("windowed count store");
    assert_eq!(store.fetch(&"a".to_string(), 0).unwrap(), Some(1));
    assert_eq!(store.fetch(&"a".to_string(), 10).unwrap(), Some(2));
}

#[test]
fn hopping_windows_put_a_record_in_every_window_that_contains_it() {
    let (_d, input, out) = count_topology(
        |g| {
            g.windowed_by(TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(5)))
                .count()
        },
        None,
    );
    input.pipe_input_at("a".into(), "x".into(), 7);
    assert_eq!(
        out.read_key_values_to_list(),
        vec![kv("a@0-10", Some(1)), kv("a@5-15", Some(1))]
    );
}

#[test]
fn suppress_emits_one_final_result_when_the_window_closes() {
    let (_d, input, out) = count_topology(
        |g| {
            g.windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
                .count()
        },
        Some(Suppressed::until_window_closes()),
    );
    for t in [1, 2, 8, 12] {
        input.pipe_input_at("a".into(), "x".into(), t);
    }
    assert!(
        out.is_empty(),
        "nothing is final before stream time reaches 10 + 5"
    );
    input.pipe_input_at("b".into(), "x".into(), 14);
    assert!(out.is_empty());
    input.pipe_input_at("b".into(), "x".into(), 15);
    assert_eq!(out.read_key_values_to_list(), vec![kv("a@0-10", Some(3))]);
    input.pipe_input_at("b".into(), "x".into(), 40);
    assert_eq!(
        out.read_key_values_to_list(),
        vec![kv("a@10-20", Some(1)), kv("b@10-20", Some(2))]
    );
}

#[test]
fn wall_clock_close_emits_final_results_of_an_idle_partition() {
    let (driver, input, out) = count_topology(
        |g| {
            g.windowed_by(TimeWindows::of_size_with_no_grace(ms(1000)))
                .count()
        },
        Some(Suppressed::until_window_closes().with_wall_clock_close(ms(100))),
    );
    input.pipe_input_at("a".into(), "x".into(), 100);
    input.pipe_input_at("a".into(), "x".into(), 200);
    driver.advance_wall_clock_time(ms(500)).unwrap();
    assert!(out.is_empty(), "effective time 700 < window end 1000");
    driver.advance_wall_clock_time(ms(400)).unwrap();
    assert_eq!(out.read_key_values_to_list(), vec![kv("a@0-1000", Some(2))]);
    // A record for the window already emitted is late, not a second final result.
    input.pipe_input_at("a".into(), "x".into(), 300);
    assert_eq!(driver.metrics().late_records_dropped, 1);
    input.pipe_input_at("a".into(), "x".into(), 2500);
    assert!(out.is_empty());
}

#[test]
fn sessions_merge_when_a_record_bridges_them() {
    let (driver, input, out) = count_topology(
        |g| {
            g.windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(ms(5)))
                .count_with_name("sessions")
        },
        None,
    );
    input.pipe_input_at("a".into(), "x".into(), 0);
    input.pipe_input_at("a".into(), "x".into(), 10);
    input.pipe_input_at("a".into(), "x".into(), 5); // within 5 of both: merges them
    assert_eq!(
        out.read_key_values_to_list(),
        vec![
            kv("a@0-0", Some(1)),
            kv("a@10-10", Some(1)),
            kv("a@0-0", None),
            kv("a@10-10", None),
            kv("a@0-10", Some(3)),
        ]
    );
    let sessions = driver.session_store::<String, i64>("sessions").unwrap();
    let all = sessions.fetch(&"a".to_string()).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].start, all[0].end, all[0].value), (0, 10, 3));
    // Stream time 20: a record at 2 would only join the session [0,10], which ended before
    // 20 - 0 grace: late.
    input.pipe_input_at("a".into(), "x".into(), 20);
    input.pipe_input_at("a".into(), "x".into(), 2);
    assert_eq!(driver.metrics().late_records_dropped, 1);
}

#[test]
fn sliding_windows_cover_every_distinct_set_of_close_records() {
    let (_d, input, out) = count_topology(
        |g| {
            g.windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
                ms(10),
                ms(100),
            ))
            .count()
        },
        None,
    );
    input.pipe_input_at("a".into(), "x".into(), 5);
    // A record earlier than the time difference: its window would start before 0, so it
    // goes into [0, difference], as in Kafka Streams.
    assert_eq!(out.read_key_values_to_list(), vec![kv("a@0-10", Some(1))]);
    input.pipe_input_at("a".into(), "x".into(), 12);
    // The window ending at 12 holds both; the window right after 5 holds only 12.
    assert_eq!(
        out.read_key_values_to_list(),
        vec![kv("a@2-12", Some(2)), kv("a@6-16", Some(1))]
    );
    input.pipe_input_at("a".into(), "x".into(), 8); // out of order, within grace
    assert_eq!(
        out.read_key_values_to_list(),
        vec![
            kv("a@0-10", Some(2)),
            kv("a@2-12", Some(3)),
            kv("a@6-16", Some(2)),
            kv("a@9-19", Some(1)),
        ]
    );
}

#[test]
fn suppressed_sessions_emit_only_the_final_merged_session() {
    let (_d, input, out) = count_topology(
        |g| {
            g.windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(ms(5)))
                .count()
        },
        Some(Suppressed::until_window_closes()),
    );
    input.pipe_input_at("a".into(), "x".into(), 0);
    input.pipe_input_at("a".into(), "x".into(), 3); // session [0,3]
    input.pipe_input_at("a".into(), "x".into(), 8); // extends it to [0,8]
    input.pipe_input_at("b".into(), "x".into(), 13);
    assert!(
        out.is_empty(),
        "[0,8] can still grow until stream time passes 8 + 5"
    );
    input.pipe_input_at("b".into(), "x".into(), 14);
    assert_eq!(out.read_key_values_to_list(), vec![kv("a@0-8", Some(3))]);
}

#[test]
fn a_session_accepts_records_until_stream_time_passes_its_end_plus_gap_plus_grace() {
    let (driver, input, out) = count_topology(
        |g| {
            g.windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(ms(5)))
                .count()
        },
        None,
    );
    input.pipe_input_at("a".into(), "x".into(), 0);
    input.pipe_input_at("b".into(), "x".into(), 3); // stream time 3
                                                    // Joins [0,0]: the merged session [0,2] ends before stream time, but not before
                                                    // stream time - gap - grace, so it still counts (Kafka Streams' close time).
    input.pipe_input_at("a".into(), "x".into(), 2);
    input.pipe_input_at("c".into(), "x".into(), 100); // stream time 100
    input.pipe_input_at("d".into(), "x".into(), 96); // a new session ending at 96 >= 95
    input.pipe_input_at("e".into(), "x".into(), 94); // ends before 100 - 5: late
    let latest: BTreeMap<_, _> = out.read_key_values_to_list().into_iter().collect();
    assert_eq!(latest["a@0-2"], Some(2));
    assert_eq!(latest["d@96-96"], Some(1));
    assert!(!latest.contains_key("e@94-94"));
    assert_eq!(driver.metrics().late_records_dropped, 1);
}

/// `input → group_by_key → <window> → reduce(product) → "out"`, keys `key@start-end`.
fn product_topology(
    window: impl FnOnce(KGroupedStream<String, i64>) -> KTable<Windowed<String>, i64>,
) -> (TestDriver, TestInputTopic<String, i64>, Out) {
    windowed_topology(window, None)
}

#[test]
fn session_reduce_starts_from_the_first_value() {
    let (_d, input, out) = product_topology(|g| {
        g.windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(ms(10)))
            .reduce(|product, v| product * v)
    });
    input.pipe_input_at("a".into(), 3, 0);
    input.pipe_input_at("a".into(), 4, 20); // a second session
    input.pipe_input_at("a".into(), 5, 10); // bridges both: 3 * 4 merged, times 5
    let latest: BTreeMap<_, _> = out.read_key_values_to_list().into_iter().collect();
    assert_eq!(latest["a@0-0"], None, "merged away");
    assert_eq!(latest["a@0-20"], Some(60));
}

#[test]
fn sliding_reduce_starts_from_the_first_value() {
    let (_d, input, out) = product_topology(|g| {
        g.windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(ms(10)))
            .reduce(|product, v| product * v)
    });
    input.pipe_input_at("a".into(), 3, 100);
    input.pipe_input_at("a".into(), 4, 105);
    let latest: BTreeMap<_, _> = out.read_key_values_to_list().into_iter().collect();
    assert_eq!(latest["a@90-100"], Some(3));
    assert_eq!(latest["a@95-105"], Some(12));
    assert_eq!(latest["a@101-111"], Some(4));
}

#[test]
fn time_window_reduce_starts_from_the_first_value() {
    let (_d, input, out) = product_topology(|g| {
        g.windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
            .reduce(|product, v| product * v)
    });
    input.pipe_input_at("a".into(), 3, 1);
    input.pipe_input_at("a".into(), 4, 2);
    assert_eq!(
        out.read_key_values_to_list().pop(),
        Some(kv("a@0-10", Some(12)))
    );
}

trait CountWithName<K> {
    fn count_with_name(&self, name: &str) -> KTable<Windowed<K>, i64>;
}

impl CountWithName<String> for SessionWindowedKStream<String, String> {
    fn count_with_name(&self, name: &str) -> KTable<Windowed<String>, i64> {
        self.aggregate_with(
            || 0,
            |_, _, c| c + 1,
            |_, a, b| a + b,
            Materialized::named(name),
        )
    }
}

/// Reference model of a windowed sum with grace: per key and window start.
fn model(
    records: &[(u8, i64, i64)],
    size: i64,
    advance: i64,
    grace: i64,
) -> (BTreeMap<(String, i64), i64>, u64) {
    let mut sums = BTreeMap::new();
    let mut observed = i64::MIN;
    let mut late = 0;
    for &(key, t, v) in records {
        observed = observed.max(t);
        let close = observed - grace;
        let mut accepted = false;
        let mut start = ((t - size + advance).max(0) / advance) * advance;
        while start <= t {
            if start + size > close {
                accepted = true;
                *sums.entry((format!("k{key}"), start)).or_insert(0) += v;
            }
            start += advance;
        }
        if !accepted {
            late += 1;
        }
    }
    (sums, late)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn windowed_sum_matches_reference_model(
        records in prop::collection::vec((0u8..4, 0i64..200, -5i64..20), 1..60),
        size in 5i64..40,
        advance_div in 1i64..4,
        grace in 0i64..30,
    ) {
        let advance = (size / advance_div).max(1);
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, i64>("input")
            .group_by_key()
            .windowed_by(
                TimeWindows::of_size_and_grace(ms(size as u64), ms(grace as u64))
                    .advance_by(ms(advance as u64)),
            )
            .aggregate_with(|| 0i64, |_, v, agg| agg + v, Materialized::named("sums"));
        let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("p")).unwrap();
        let input = driver.create_input_topic::<String, i64>("input");
        for &(k, t, v) in &records {
            input.pipe_input_at(format!("k{k}"), v, t);
        }
        let (expected, late) = model(&records, size, advance, grace);
        let store = driver.window_store::<String, i64>("sums").unwrap();
        let actual: BTreeMap<(String, i64), i64> =
            store.all().unwrap().into_iter().map(|(k, s, v)| ((k, s), v)).collect();
        // The store may already have expired windows older than its retention; compare the
        // windows it still holds, and require that every window it dropped is closed.
        let observed = records.iter().map(|r| r.1).max().unwrap();
        for (key, value) in &expected {
            match actual.get(key) {
                Some(v) => prop_assert_eq!(v, value, "window {:?}", key),
                None => prop_assert!(key.1 + size + grace <= observed, "open window {:?} missing", key),
            }
        }
        for key in actual.keys() {
            prop_assert!(expected.contains_key(key), "unexpected window {:?}", key);
        }
        prop_assert_eq!(driver.metrics().late_records_dropped, late);
    }
}
