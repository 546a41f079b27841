//! docker-compose.yml, checked without Docker: valid against the Compose specification's
//! JSON schema, and in step with the code (every role, flag and variable it passes exists).

use std::collections::BTreeSet;

use demo_app::app::Service;
use serde_json::Value;

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docker-compose.yml"
    ))
    .expect("docker-compose.yml at the repository root");
    serde_norway::from_str(&text).expect("docker-compose.yml is YAML")
}

#[test]
fn the_compose_file_follows_the_compose_specification() {
    let schema: Value = serde_json::from_str(include_str!("../assets/vendor/compose-spec.json"))
        .expect("the vendored schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let compose = compose();
    let errors: Vec<String> = validator
        .iter_errors(&compose)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    // The schema catches structure; a service with a typo in a key would pass as an
    // extension only if it started with x-, so check a broken file fails.
    let mut broken = compose.clone();
    broken["services"]["order"]["ports"] = Value::String("8081".into());
    assert!(!validator.is_valid(&broken));
}

#[test]
fn the_compose_file_is_in_step_with_the_code() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    for name in ["kafka", "kafka-ui", "postgres", "redis", "prometheus"] {
        assert!(services.contains_key(name), "no {name} service");
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_shop"))
        .arg("--help")
        .output()
        .expect("the shop binary runs");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let known_roles: BTreeSet<&str> = Service::ALL.iter().map(|s| s.name()).collect();
    let mut roles = BTreeSet::new();
    for (name, service) in services {
        if service["image"] != "shop:latest" {
            continue;
        }
        let command: Vec<&str> = service["command"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has a command"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for pair in command.windows(2) {
            if pair[0] == "--role" {
                assert!(
                    known_roles.contains(pair[1]),
                    "{name}: unknown role {}",
                    pair[1]
                );
                roles.insert(pair[1]);
            }
        }
        for flag in command.iter().filter(|a| a.starts_with("--")) {
            assert!(help.contains(flag), "{name}: `shop` has no flag {flag}");
        }
        for variable in service["environment"].as_object().unwrap().keys() {
            if variable.starts_with("SHOP_") {
                assert!(
                    help.contains(variable.as_str()),
                    "{name}: `shop` reads no {variable}"
                );
            }
        }
    }
    // Every service of the shop runs somewhere, except the topic view (Kafka UI is there).
    let missing: Vec<&str> = known_roles
        .iter()
        .filter(|r| !roles.contains(*r) && **r != "topic-view")
        .copied()
        .collect();
    assert!(missing.is_empty(), "roles no container runs: {missing:?}");
    // Prometheus scrapes every shop container.
    let prometheus = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docker/prometheus.yml"
    ))
    .unwrap();
    for (name, service) in services {
        if service["image"] == "shop:latest" {
            assert!(
                prometheus.contains(&format!("{name}:9464")),
                "Prometheus does not scrape {name}"
            );
        }
    }
}
