//! Word count: lines of text → words → `group_by` word → `count` → `to_stream().to(..)`.
//!
//! Runs on the in-memory `TestDriver` (no broker), prints the topology, the inputs, every
//! count update written to `word-counts`, and the final contents of the count store; exits
//! non-zero (panics) if any count is not what it should be.
//!
//! ```text
//! cargo run --example word_count
//! ```

use std::collections::BTreeMap;

use kstreams::config::StreamsConfig;
use kstreams::dsl::StreamsBuilder;
use kstreams::testing::TestDriver;

fn main() {
    // 1. Build the topology.
    let builder = StreamsBuilder::new();
    let counts = builder
        .stream::<Option<String>, String>("text")
        .flat_map_values(|line| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone())
        .count();
    counts.to_stream().to("word-counts");
    let store_name = counts
        .queryable_store_name()
        .expect("count() materializes its result")
        .to_string();
    let topology = builder.build().expect("valid topology");
    println!("{}", topology.describe());

    // 2. Run it on the test driver.
    let driver = TestDriver::new(&topology, StreamsConfig::new("word-count")).expect("driver");
    let text = driver.create_input_topic::<Option<String>, String>("text");
    let output = driver.create_output_topic::<String, Option<i64>>("word-counts");

    let lines = [
        "To be or not to be",
        "that is the question",
        "To sleep perchance to dream",
    ];
    println!("Input (topic `text`):");
    for (i, line) in lines.iter().enumerate() {
        println!("  t={i:<3} {line:?}");
        text.pipe_input_at(None, line.to_string(), i as i64);
    }

    // 3. Every update the count table emitted, in order.
    println!("\nOutput (topic `word-counts`):");
    let updates = output.read_key_values_to_list();
    for (word, count) in &updates {
        println!("  {word:<10} -> {count:?}");
    }
    let latest: BTreeMap<String, Option<i64>> = updates.into_iter().collect();

    // 4. The state store behind the count.
    println!("\nStore `{store_name}`:");
    let store = driver
        .key_value_store::<String, i64>(&store_name)
        .expect("count store");
    let stored: BTreeMap<String, i64> = store.all().expect("store scan").into_iter().collect();
    for (word, count) in &stored {
        println!("  {word:<10} = {count}");
    }

    // 5. Check what this example claims.
    let expected: BTreeMap<String, i64> = [
        ("to", 4),
        ("be", 2),
        ("or", 1),
        ("not", 1),
        ("that", 1),
        ("is", 1),
        ("the", 1),
        ("question", 1),
        ("sleep", 1),
        ("perchance", 1),
        ("dream", 1),
    ]
    .into_iter()
    .map(|(w, c)| (w.to_string(), c))
    .collect();
    assert_eq!(stored, expected, "store contents");
    let latest: BTreeMap<String, i64> = latest
        .into_iter()
        .map(|(w, c)| (w, c.expect("counts are never deleted")))
        .collect();
    assert_eq!(latest, expected, "latest count per word on `word-counts`");
    println!(
        "\nOK: {} distinct words, `to` counted 4 times",
        stored.len()
    );
}
