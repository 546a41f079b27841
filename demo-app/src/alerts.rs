//! The shop's alert rules: `docs/alerts.yml`, the Prometheus rules file docker-compose's
//! Prometheus loads, read by the dashboard too (compiled in) and evaluated on the cluster
//! monitor's samples with Prometheus' semantics: a rule's condition must hold at every
//! evaluation for its `for:` duration before the alert fires (until then it is pending), and
//! the alert clears at the first evaluation where the condition is false.
//!
//! The dashboard evaluates the rules it knows by name — `ConsumerLagHigh`,
//! `DeadLetterGrowth`, `ErrorRateHigh` — taking each one's threshold (the number after `>`),
//! range (`[5m]`) and `for:` from the file; a rules file with another rule is refused, so the
//! file and the dashboard cannot drift apart.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The rules file, as shipped (`docs/alerts.yml`).
pub const RULES_FILE: &str = include_str!("../../docs/alerts.yml");

/// An alert that fires now.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Alert {
    /// The rule (`ConsumerLagHigh`, `DeadLetterGrowth`, `ErrorRateHigh`).
    pub rule: String,
    /// What it is about (a group or topic).
    pub subject: String,
    /// A sentence.
    pub message: String,
}

/// Why a rules file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Not YAML of the Prometheus rules format.
    #[error("not a Prometheus rules file: {0}")]
    Format(String),
    /// A rule the dashboard does not evaluate.
    #[error("the dashboard does not evaluate rule {0}")]
    UnknownRule(String),
    /// A rule the dashboard needs is missing.
    #[error("rule {0} is missing")]
    Missing(&'static str),
    /// A rule's expression or duration cannot be read.
    #[error("rule {rule}: {reason}")]
    Rule {
        /// The rule.
        rule: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
struct File {
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(default, rename = "for")]
    for_: Option<String>,
}

/// The rules' thresholds and durations, as the file gives them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertRules {
    /// `ConsumerLagHigh`: a group more records behind than this...
    pub max_lag: i64,
    /// ...for this long.
    pub lag_for: Duration,
    /// `DeadLetterGrowth`: records dead-lettered within this range...
    pub dead_letter_range: Duration,
    /// ...more than this many...
    pub max_dead_letters: i64,
    /// ...for this long.
    pub dead_letter_for: Duration,
    /// `ErrorRateHigh`: handling errors per minute (over `error_range`) above this...
    pub max_errors_per_minute: f64,
    /// The range the error rate is taken over.
    pub error_range: Duration,
    /// ...for this long.
    pub errors_for: Duration,
}

impl Default for AlertRules {
    /// The rules of [`RULES_FILE`].
    fn default() -> Self {
        AlertRules::parse(RULES_FILE).expect("docs/alerts.yml is a valid rules file")
    }
}

impl AlertRules {
    /// Reads a Prometheus rules file with the three rules the dashboard evaluates.
    pub fn parse(yaml: &str) -> Result<AlertRules, RulesError> {
        let file: File =
            serde_norway::from_str(yaml).map_err(|e| RulesError::Format(e.to_string()))?;
        let mut rules: BTreeMap<String, Rule> = BTreeMap::new();
        for rule in file.groups.into_iter().flat_map(|g| g.rules) {
            if !["ConsumerLagHigh", "DeadLetterGrowth", "ErrorRateHigh"]
                .contains(&rule.alert.as_str())
            {
                return Err(RulesError::UnknownRule(rule.alert));
            }
            rules.insert(rule.alert.clone(), rule);
        }
        let get = |name: &'static str| rules.get(name).ok_or(RulesError::Missing(name));
        let (lag, dead, errors) = (
            get("ConsumerLagHigh")?,
            get("DeadLetterGrowth")?,
            get("ErrorRateHigh")?,
        );
        Ok(AlertRules {
            max_lag: lag.threshold()? as i64,
            lag_for: lag.for_duration()?,
            dead_letter_range: dead.range()?,
            max_dead_letters: dead.threshold()? as i64,
            dead_letter_for: dead.for_duration()?,
            // `rate(...[1m]) * 60 > 30`: per second times 60, so the threshold is per minute.
            max_errors_per_minute: errors.threshold()?,
            error_range: errors.range()?,
            errors_for: errors.for_duration()?,
        })
    }
}

impl Rule {
    fn error(&self, reason: impl Into<String>) -> RulesError {
        RulesError::Rule {
            rule: self.alert.clone(),
            reason: reason.into(),
        }
    }

    /// The number after the expression's `>`.
    fn threshold(&self) -> Result<f64, RulesError> {
        let (_, number) = self
            .expr
            .rsplit_once('>')
            .ok_or_else(|| self.error("no `> threshold` in its expression"))?;
        number
            .trim()
            .parse()
            .map_err(|_| self.error(format!("threshold {number:?} is not a number")))
    }

    /// The range selector of the expression (`[5m]`).
    fn range(&self) -> Result<Duration, RulesError> {
        let start = self
            .expr
            .find('[')
            .ok_or_else(|| self.error("no range selector in its expression"))?;
        let end = self.expr[start..]
            .find(']')
            .ok_or_else(|| self.error("unclosed range selector"))?;
        duration(&self.expr[start + 1..start + end]).ok_or_else(|| self.error("bad range"))
    }

    fn for_duration(&self) -> Result<Duration, RulesError> {
        match &self.for_ {
            None => Ok(Duration::ZERO),
            Some(text) => duration(text).ok_or_else(|| self.error(format!("bad for: {text}"))),
        }
    }
}

/// A Prometheus duration of one unit: `30s`, `1m`, `2h`.
fn duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => return Some(Duration::from_millis(number)),
        "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        "d" => number * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

/// Evaluates the rules on successive samples, remembering what it needs between them.
pub struct Alerting {
    rules: AlertRules,
    /// Since when each (rule, subject)'s condition has held.
    pending: HashMap<(&'static str, String), Instant>,
    dead_letter_history: Vec<(Instant, i64)>,
    error_history: Vec<(Instant, f64)>,
}

impl Alerting {
    /// Nothing pending yet.
    pub fn new(rules: AlertRules) -> Self {
        Alerting {
            rules,
            pending: HashMap::new(),
            dead_letter_history: Vec::new(),
            error_history: Vec::new(),
        }
    }

    /// One evaluation at `now`: each group's lag in records, the records in every
    /// dead-letter topic, the handling errors counted so far. Returns the alerts that fire.
    pub fn evaluate(
        &mut self,
        now: Instant,
        lags: &[(String, i64)],
        dead_letters: i64,
        errors: f64,
    ) -> Vec<Alert> {
        let rules = self.rules;
        let mut holding: Vec<(&'static str, String, Duration, String)> = Vec::new();
        for (group, lag) in lags {
            if *lag > rules.max_lag {
                holding.push((
                    "ConsumerLagHigh",
                    group.clone(),
                    rules.lag_for,
                    format!("{group} is {lag} records behind (limit {})", rules.max_lag),
                ));
            }
        }

        self.dead_letter_history.push((now, dead_letters));
        self.dead_letter_history
            .retain(|(t, _)| now.duration_since(*t) <= rules.dead_letter_range);
        let oldest = self
            .dead_letter_history
            .first()
            .map_or(dead_letters, |e| e.1);
        if dead_letters - oldest > rules.max_dead_letters {
            holding.push((
                "DeadLetterGrowth",
                "dead-letter topics".into(),
                rules.dead_letter_for,
                format!(
                    "{} records dead-lettered in the last {} s",
                    dead_letters - oldest,
                    rules.dead_letter_range.as_secs()
                ),
            ));
        }

        self.error_history.push((now, errors));
        self.error_history
            .retain(|(t, _)| now.duration_since(*t) <= rules.error_range);
        if let Some(&(at, oldest)) = self.error_history.first() {
            let seconds = now.duration_since(at).as_secs_f64();
            // A rate needs two samples; like Prometheus, over the time they span.
            let per_minute = if seconds > 0.0 {
                (errors - oldest) / seconds * 60.0
            } else {
                0.0
            };
            if per_minute > rules.max_errors_per_minute {
                holding.push((
                    "ErrorRateHigh",
                    "consumers".into(),
                    rules.errors_for,
                    format!(
                        "{per_minute:.0} handling errors per minute (limit {})",
                        rules.max_errors_per_minute
                    ),
                ));
            }
        }

        // Pending until the condition has held for the rule's `for:`; cleared when it does
        // not hold.
        let mut pending = HashMap::new();
        let mut firing = Vec::new();
        for (rule, subject, hold_for, message) in holding {
            let key = (rule, subject);
            let since = self.pending.get(&key).copied().unwrap_or(now);
            if now.duration_since(since) >= hold_for {
                firing.push(Alert {
                    rule: rule.to_owned(),
                    subject: key.1.clone(),
                    message,
                });
            }
            pending.insert(key, since);
        }
        self.pending = pending;
        firing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_file_gives_the_thresholds() {
        let rules = AlertRules::default();
        assert_eq!(
            rules,
            AlertRules {
                max_lag: 1000,
                lag_for: Duration::from_secs(60),
                dead_letter_range: Duration::from_secs(300),
                max_dead_letters: 0,
                dead_letter_for: Duration::ZERO,
                max_errors_per_minute: 30.0,
                error_range: Duration::from_secs(60),
                errors_for: Duration::from_secs(60),
            }
        );
    }

    #[test]
    fn a_rules_file_the_dashboard_cannot_follow_is_refused() {
        let other = RULES_FILE.replace("ErrorRateHigh", "DiskFull");
        assert!(matches!(
            AlertRules::parse(&other),
            Err(RulesError::UnknownRule(rule)) if rule == "DiskFull"
        ));
        let bad_for = RULES_FILE.replacen("for: 1m", "for: soon", 1);
        assert!(matches!(
            AlertRules::parse(&bad_for),
            Err(RulesError::Rule { .. })
        ));
    }

    /// Each rule of the shipped file, driven through its condition: pending for its `for:`,
    /// then firing, then cleared once the condition stops holding.
    #[test]
    fn each_rule_fires_after_its_for_and_clears() {
        let mut alerting = Alerting::new(AlertRules::default());
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let rules_at = |alerts: Vec<Alert>| -> Vec<String> {
            alerts
                .into_iter()
                .map(|a| format!("{} {}", a.rule, a.subject))
                .collect()
        };
        let lag = |n: i64| vec![("payments".to_owned(), n), ("audit".to_owned(), 5)];

        // Lag over 1000: pending for a minute, then firing, cleared below it.
        assert!(alerting.evaluate(at(0), &lag(5000), 0, 0.0).is_empty());
        assert!(alerting.evaluate(at(30), &lag(5000), 0, 0.0).is_empty());
        assert_eq!(
            rules_at(alerting.evaluate(at(60), &lag(5000), 0, 0.0)),
            ["ConsumerLagHigh payments"]
        );
        assert!(alerting.evaluate(at(70), &lag(10), 0, 0.0).is_empty());
        // Over again: pending from the start.
        assert!(alerting.evaluate(at(80), &lag(5000), 0, 0.0).is_empty());
        assert!(alerting.evaluate(at(90), &lag(10), 0, 0.0).is_empty());

        // A dead letter fires at once (no for:) and clears when the 5-minute range no longer
        // holds the growth.
        assert_eq!(
            rules_at(alerting.evaluate(at(100), &lag(0), 2, 0.0)),
            ["DeadLetterGrowth dead-letter topics"]
        );
        assert_eq!(alerting.evaluate(at(300), &lag(0), 2, 0.0).len(), 1);
        assert!(alerting.evaluate(at(401), &lag(0), 2, 0.0).is_empty());

        // 60 errors a minute (limit 30) for a minute: fires; errors stop: clears once the
        // one-minute range holds no growth.
        let mut errors = 0.0;
        let mut fired_at = None;
        for s in (410..=480).step_by(10) {
            errors += 10.0;
            let alerts = rules_at(alerting.evaluate(at(s), &lag(0), 2, errors));
            if fired_at.is_none() && alerts == ["ErrorRateHigh consumers"] {
                fired_at = Some(s);
            }
        }
        // The rate is over the samples of the last minute: from 410 s (against the sample
        // at 401 s, no errors yet) it is above 30 a minute, and 60 s later it fires.
        assert_eq!(fired_at, Some(470));
        assert_eq!(alerting.evaluate(at(500), &lag(0), 2, errors).len(), 1);
        assert!(alerting.evaluate(at(541), &lag(0), 2, errors).is_empty());
    }
}
