//! The JSON of `/api/v1/rules` and `/api/v1/alerts` (Prometheus' shapes) and the trait the API
//! reads it through.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::gofmt::format_e;
use super::group::{Group, labels_map};
use super::rule::{Alert, AlertState, Rule};

/// Formats ms as Go's `time.Time` JSON (RFC 3339, fraction without trailing zeros); 0 is Go's
/// zero time.
pub fn go_time(ms: i64) -> String {
    if ms == 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    rfc3339_trimmed(ms)
}

/// RFC 3339 with the fraction's trailing zeros trimmed (Go's `RFC3339Nano`).
pub fn rfc3339_trimmed(ms: i64) -> String {
    let s = pharos_model::api::format_rfc3339(ms);
    // "...:05.120Z" -> "...:05.12Z"; "...:05.000Z" -> "...:05Z"
    match s.rsplit_once('.') {
        Some((head, frac)) => {
            let digits = frac.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() {
                format!("{head}Z")
            } else {
                format!("{head}.{digits}Z")
            }
        }
        None => s,
    }
}

/// One alert in the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertJson {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// `pending` or `firing`.
    pub state: String,
    /// When it became active.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub active_at: Option<String>,
    /// Since when `keep_firing_for` keeps it firing.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub keep_firing_since: Option<String>,
    /// The value, as Go's `%e` shortest form (`1e+00`).
    pub value: String,
}

impl AlertJson {
    /// From an alert.
    pub fn from_alert(a: &Alert) -> Self {
        Self {
            labels: labels_map(&a.labels),
            annotations: labels_map(&a.annotations),
            state: a.state.as_str().to_string(),
            active_at: Some(rfc3339_trimmed(a.active_at)),
            keep_firing_since: (a.keep_firing_since != 0)
                .then(|| rfc3339_trimmed(a.keep_firing_since)),
            value: format_e(a.value, None),
        }
    }
}

/// `data` of `/api/v1/alerts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AlertsData {
    /// Pending and firing alerts.
    pub alerts: Vec<AlertJson>,
}

/// One rule in `/api/v1/rules`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RuleJson {
    /// An alerting rule.
    Alerting(AlertingRuleJson),
    /// A recording rule.
    Recording(RecordingRuleJson),
}

/// An alerting rule in the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertingRuleJson {
    /// `inactive`, `pending` or `firing`.
    pub state: String,
    /// The alert name.
    pub name: String,
    /// The expression.
    pub query: String,
    /// `for` in seconds.
    pub duration: f64,
    /// `keep_firing_for` in seconds.
    pub keep_firing_for: f64,
    /// Label templates.
    pub labels: BTreeMap<String, String>,
    /// Annotation templates.
    pub annotations: BTreeMap<String, String>,
    /// Active alerts.
    pub alerts: Vec<AlertJson>,
    /// `ok`, `err` or `unknown`.
    pub health: String,
    /// The last error.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_error: Option<String>,
    /// Seconds the last evaluation took.
    pub evaluation_time: f64,
    /// When it was last evaluated.
    pub last_evaluation: String,
}

/// A recording rule in the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordingRuleJson {
    /// The series name.
    pub name: String,
    /// The expression.
    pub query: String,
    /// Labels added.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub labels: BTreeMap<String, String>,
    /// `ok`, `err` or `unknown`.
    pub health: String,
    /// The last error.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_error: Option<String>,
    /// Seconds the last evaluation took.
    pub evaluation_time: f64,
    /// When it was last evaluated.
    pub last_evaluation: String,
}

/// One group in `/api/v1/rules`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GroupJson {
    /// The group name.
    pub name: String,
    /// Its file.
    pub file: String,
    /// Its rules.
    pub rules: Vec<RuleJson>,
    /// Interval in seconds.
    pub interval: f64,
    /// The limit (0: none).
    pub limit: usize,
    /// Seconds the last evaluation took.
    pub evaluation_time: f64,
    /// When it was last evaluated.
    pub last_evaluation: String,
}

/// `data` of `/api/v1/rules`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RulesData {
    /// The groups.
    pub groups: Vec<GroupJson>,
}

/// Which rules `/api/v1/rules` returns (`type`, `rule_name[]`, `rule_group[]`, `file[]`).
#[derive(Debug, Clone, Default)]
pub struct RulesFilter {
    /// Only alerting (`Some(true)`) or recording (`Some(false)`) rules.
    pub alerting: Option<bool>,
    /// Rule names to keep (all if empty).
    pub rule_names: Vec<String>,
    /// Group names to keep (all if empty).
    pub group_names: Vec<String>,
    /// Files to keep (all if empty).
    pub files: Vec<String>,
}

/// Serves rules and alerts to the API (the rule manager implements it).
pub trait RulesProvider: Send + Sync {
    /// The loaded groups, in file then group order.
    fn rule_groups(&self, filter: &RulesFilter) -> RulesData;
    /// Pending and firing alerts.
    fn alerts(&self) -> AlertsData;
}

/// The JSON of `groups` with `filter` applied (groups left without rules are dropped when a
/// rule filter is given, as in Prometheus).
pub fn rules_data(groups: &[std::sync::Arc<Group>], filter: &RulesFilter) -> RulesData {
    let mut out = Vec::new();
    for g in groups {
        if !filter.group_names.is_empty() && !filter.group_names.contains(&g.name) {
            continue;
        }
        if !filter.files.is_empty() && !filter.files.contains(&g.file) {
            continue;
        }
        let mut rules = Vec::new();
        for r in &g.rules {
            if !filter.rule_names.is_empty() && !filter.rule_names.iter().any(|n| n == r.name()) {
                continue;
            }
            let st = r.status();
            match r {
                Rule::Alerting(a) => {
                    if filter.alerting == Some(false) {
                        continue;
                    }
                    let alerts: Vec<AlertJson> = a
                        .lock()
                        .active
                        .values()
                        .filter(|x| x.state != AlertState::Inactive)
                        .map(AlertJson::from_alert)
                        .collect();
                    rules.push(RuleJson::Alerting(AlertingRuleJson {
                        state: a.rule_state().as_str().to_string(),
                        name: a.name.clone(),
                        query: a.query.clone(),
                        duration: a.hold_ms as f64 / 1000.0,
                        keep_firing_for: a.keep_firing_ms as f64 / 1000.0,
                        labels: a.labels.clone(),
                        annotations: a.annotations.clone(),
                        alerts,
                        health: st.health.as_str().to_string(),
                        last_error: st.last_error.clone(),
                        evaluation_time: st.eval_seconds,
                        last_evaluation: go_time(st.last_eval),
                    }));
                }
                Rule::Recording(rr) => {
                    if filter.alerting == Some(true) {
                        continue;
                    }
                    rules.push(RuleJson::Recording(RecordingRuleJson {
                        name: rr.name.clone(),
                        query: rr.query.clone(),
                        labels: rr.labels.clone(),
                        health: st.health.as_str().to_string(),
                        last_error: st.last_error.clone(),
                        evaluation_time: st.eval_seconds,
                        last_evaluation: go_time(st.last_eval),
                    }));
                }
            }
        }
        let filtered = filter.alerting.is_some() || !filter.rule_names.is_empty();
        if filtered && rules.is_empty() {
            continue;
        }
        let gs = g.status.lock().map(|s| s.clone()).unwrap_or_default();
        out.push(GroupJson {
            name: g.name.clone(),
            file: g.file.clone(),
            rules,
            interval: g.interval_ms as f64 / 1000.0,
            limit: g.limit,
            evaluation_time: gs.eval_seconds,
            last_evaluation: go_time(gs.last_eval),
        });
    }
    RulesData { groups: out }
}

/// The JSON of the active alerts of `groups`.
pub fn alerts_data(groups: &[std::sync::Arc<Group>]) -> AlertsData {
    AlertsData {
        alerts: groups
            .iter()
            .flat_map(|g| g.alerts())
            .map(|a| AlertJson::from_alert(&a))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_times() {
        assert_eq!(go_time(0), "0001-01-01T00:00:00Z");
        assert_eq!(go_time(1_500), "1970-01-01T00:00:01.5Z");
        assert_eq!(go_time(2_000), "1970-01-01T00:00:02Z");
        assert_eq!(go_time(1_123), "1970-01-01T00:00:01.123Z");
    }
}
