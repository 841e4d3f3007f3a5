//! Rule groups evaluated against the in-memory store: recording rules, alert states, `ALERTS`,
//! staleness, notifications, limits, errors and the restoration of `for` state.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;

use pharos_model::{Labels, is_stale_nan};
use pharos_query::rules::file::parse_rule_file;
use pharos_query::rules::group::{Group, RestoreOptions};
use pharos_query::rules::json::{RulesFilter, alerts_data, rules_data};
use pharos_query::rules::memstore::MemStore;
use pharos_query::rules::rule::{EvalContext, Notification};
use pharos_query::{Engine, EngineOptions};

const RULES: &str = r#"
groups:
- name: g
  interval: 10s
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
    labels:
      source: rule
  - alert: InstanceDown
    expr: up == 0
    for: 30s
    labels:
      severity: page
      copied: '{{ $labels.job }}'
    annotations:
      summary: 'Instance {{ $labels.instance }} down'
      value: '{{ $value }}'
"#;

struct Env {
    store: MemStore,
    engine: Engine,
    ext: BTreeMap<String, String>,
}

impl Env {
    fn new() -> Self {
        Env {
            store: MemStore::new(),
            engine: Engine::new(EngineOptions::default()),
            ext: BTreeMap::new(),
        }
    }

    fn group(&self, text: &str) -> Group {
        let rf = parse_rule_file(text, Path::new("r.yml")).unwrap();
        let g = Group::from_desc(&rf.groups[0], "r.yml", 60_000).unwrap();
        g.set_restored();
        g
    }

    fn eval(&self, g: &Group, t: i64) -> Vec<Notification> {
        let ctx = EvalContext {
            engine: &self.engine,
            queryable: &self.store,
            external_labels: &self.ext,
            external_url: "http://pharos:9090",
        };
        g.eval(&ctx, &self.store, t, 60_000)
    }

    fn up(&self, instance: &str, t: i64, v: f64) {
        self.store.add(
            &Labels::from_pairs(&[("__name__", "up"), ("job", "node"), ("instance", instance)]),
            t,
            v,
        );
    }

    /// Samples of series named `name` at `t`: labels rendered as text, value.
    fn at(&self, name: &str, t: i64) -> Vec<(String, f64)> {
        self.store
            .dump()
            .into_iter()
            .filter(|(l, _)| l.metric_name() == Some(name))
            .filter_map(|(l, s)| s.iter().find(|x| x.t == t).map(|x| (l.to_string(), x.v)))
            .collect()
    }
}

#[test]
fn alert_goes_pending_firing_resolved() {
    let env = Env::new();
    let g = env.group(RULES);
    let s = 1000;
    env.up("a", 0, 1.0);
    env.up("b", 0, 0.0);
    assert!(env.eval(&g, 0).is_empty(), "pending alerts are not sent");
    assert_eq!(
        env.at("ALERTS", 0),
        [(
            r#"ALERTS{alertname="InstanceDown", alertstate="pending", copied="node", instance="b", job="node", severity="page"}"#.to_string(),
            1.0
        )]
    );
    assert_eq!(
        env.at("ALERTS_FOR_STATE", 0),
        [(
            r#"ALERTS_FOR_STATE{alertname="InstanceDown", copied="node", instance="b", job="node", severity="page"}"#.to_string(),
            0.0
        )]
    );
    assert_eq!(
        env.at("job:up:sum", 0),
        [(r#"job:up:sum{job="node", source="rule"}"#.to_string(), 1.0)]
    );
    let a = alerts_data(&[std::sync::Arc::new(env.group(RULES))]);
    assert!(a.alerts.is_empty());

    // Still pending at 20s; firing at 30s (for: 30s), sent once with startsAt = fired time.
    for t in [10 * s, 20 * s] {
        env.up("b", t, 0.0);
        assert!(env.eval(&g, t).is_empty());
    }
    env.up("b", 30 * s, 0.0);
    let n = env.eval(&g, 30 * s);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].starts_at, 30 * s);
    assert_eq!(n[0].ends_at, 30 * s + 4 * 60 * s);
    assert_eq!(n[0].annotations.get("summary"), Some("Instance b down"));
    assert_eq!(n[0].annotations.get("value"), Some("0"));
    assert_eq!(
        n[0].generator_url,
        "http://pharos:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
    );
    assert!(env.at("ALERTS", 30 * s)[0].0.contains("firing"));
    // Not re-sent within the resend delay, re-sent after it.
    env.up("b", 40 * s, 0.0);
    assert!(env.eval(&g, 40 * s).is_empty());
    env.up("b", 100 * s, 0.0);
    assert_eq!(env.eval(&g, 100 * s).len(), 1);

    let groups = [std::sync::Arc::new(g)];
    let json = serde_json::to_value(alerts_data(&groups)).unwrap();
    assert_eq!(json["alerts"][0]["state"], "firing");
    assert_eq!(json["alerts"][0]["activeAt"], "1970-01-01T00:00:00Z");
    assert_eq!(json["alerts"][0]["value"], "0e+00");
    assert_eq!(json["alerts"][0]["labels"]["severity"], "page");
    let rules = serde_json::to_value(rules_data(&groups, &RulesFilter::default())).unwrap();
    let r = &rules["groups"][0];
    assert_eq!(r["name"], "g");
    assert_eq!(r["file"], "r.yml");
    assert_eq!(r["interval"], 10.0);
    assert_eq!(r["rules"][0]["type"], "recording");
    assert_eq!(r["rules"][0]["health"], "ok");
    assert_eq!(r["rules"][0]["query"], "sum by (job) (up)");
    assert_eq!(r["rules"][1]["type"], "alerting");
    assert_eq!(r["rules"][1]["state"], "firing");
    assert_eq!(r["rules"][1]["duration"], 30.0);
    assert_eq!(r["rules"][1]["lastEvaluation"], "1970-01-01T00:01:40Z");
    let only_rec = rules_data(
        &groups,
        &RulesFilter {
            alerting: Some(false),
            ..Default::default()
        },
    );
    assert_eq!(only_rec.groups[0].rules.len(), 1);

    // The condition clears: resolved notification with endsAt = resolution time, stale ALERTS.
    let g = &groups[0];
    env.up("b", 110 * s, 1.0);
    let n = env.eval(g, 110 * s);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].ends_at, 110 * s);
    assert_eq!(n[0].starts_at, 30 * s);
    let stale = env.at("ALERTS", 110 * s);
    assert_eq!(stale.len(), 1);
    assert!(is_stale_nan(stale[0].1));
    assert!(alerts_data(&groups).alerts.is_empty());
    // Resolved alerts are re-sent each resend interval until dropped after 15 minutes.
    env.up("b", 120 * s, 1.0);
    assert!(env.eval(g, 120 * s).is_empty());
    env.up("b", 200 * s, 1.0);
    assert_eq!(env.eval(g, 200 * s).len(), 1);
    env.up("b", 1000 * s, 1.0);
    assert_eq!(env.eval(g, 1000 * s).len(), 1);
    env.up("b", 1100 * s, 1.0);
    assert!(
        env.eval(g, 1100 * s).is_empty(),
        "dropped 15m after resolution"
    );
    assert!(g.rules[1].status().last_error.is_none());
}

#[test]
fn pending_alert_that_clears_is_dropped_silently() {
    let env = Env::new();
    let g = env.group(RULES);
    env.up("b", 0, 0.0);
    env.eval(&g, 0);
    env.up("b", 10_000, 1.0);
    assert!(env.eval(&g, 10_000).is_empty());
    assert!(alerts_data(&[std::sync::Arc::new(g)]).alerts.is_empty());
}

#[test]
fn keep_firing_for_holds_the_alert() {
    let env = Env::new();
    let g = env.group(
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    keep_firing_for: 30s\n",
    );
    env.up("a", 0, 0.0);
    assert_eq!(env.eval(&g, 0).len(), 1, "for: 0 fires at once");
    env.up("a", 10_000, 1.0);
    env.eval(&g, 10_000);
    env.up("a", 30_000, 1.0);
    env.eval(&g, 30_000);
    assert_eq!(env.at("ALERTS", 30_000).len(), 1);
    assert!(!is_stale_nan(env.at("ALERTS", 30_000)[0].1));
    env.up("a", 40_000, 1.0);
    let n = env.eval(&g, 40_000);
    assert_eq!(n.len(), 1);
    assert_eq!(
        n[0].ends_at, 40_000,
        "resolved once keep_firing_for ran out"
    );
}

#[test]
fn failing_rule_records_error_and_others_run() {
    let env = Env::new();
    let g = env.group(
        "groups:\n- name: g\n  rules:\n  - record: bad\n    expr: up + on() group_left up\n  - record: good\n    expr: vector(1)\n",
    );
    env.up("a", 0, 1.0);
    env.up("b", 0, 1.0);
    env.eval(&g, 0);
    let st = g.rules[0].status();
    assert_eq!(st.health.as_str(), "err");
    assert_eq!(st.failures, 1);
    assert!(
        st.last_error.unwrap().contains("many-to-many") || g.rules[0].status().last_error.is_some()
    );
    assert_eq!(g.rules[1].status().health.as_str(), "ok");
    assert_eq!(env.at("good", 0).len(), 1);
    let json = serde_json::to_value(rules_data(
        &[std::sync::Arc::new(g)],
        &RulesFilter::default(),
    ))
    .unwrap();
    assert_eq!(json["groups"][0]["rules"][0]["health"], "err");
    assert!(json["groups"][0]["rules"][0]["lastError"].is_string());
    assert!(json["groups"][0]["rules"][1].get("lastError").is_none());
}

#[test]
fn limits_and_duplicate_labelsets() {
    let env = Env::new();
    env.up("a", 0, 1.0);
    env.up("b", 0, 1.0);
    let g = env.group("groups:\n- name: g\n  limit: 1\n  rules:\n  - record: r\n    expr: up\n  - alert: A\n    expr: up\n");
    env.eval(&g, 0);
    assert_eq!(
        g.rules[0].status().last_error.as_deref(),
        Some("exceeded limit of 1 with 2 series")
    );
    assert_eq!(
        g.rules[1].status().last_error.as_deref(),
        Some("exceeded limit of 1 with 2 alerts")
    );
    let g = env.group("groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    labels:\n      instance: x\n");
    env.eval(&g, 0);
    assert_eq!(
        g.rules[0].status().last_error.as_deref(),
        Some("vector contains metrics with the same labelset after applying rule labels")
    );
}

#[test]
fn recording_rule_series_go_stale() {
    let env = Env::new();
    let g = env.group("groups:\n- name: g\n  rules:\n  - record: r\n    expr: up > 0\n");
    env.up("a", 0, 1.0);
    env.eval(&g, 0);
    assert_eq!(env.at("r", 0).len(), 1);
    env.up("a", 10_000, 0.0);
    env.eval(&g, 10_000);
    let s = env.at("r", 10_000);
    assert_eq!(s.len(), 1);
    assert!(is_stale_nan(s[0].1));
}

#[test]
fn for_state_is_restored_after_restart() {
    // Before the "restart": the alert was active since t=0 and Pharos went down at 5m.
    let env = Env::new();
    let text = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    for: 30m\n";
    let m = 60_000;
    let g = env.group(text);
    for i in 0..=5 {
        env.up("a", i * m, 0.0);
        env.eval(&g, i * m);
    }
    // Restart at 10m: a fresh group evaluates (pending since 10m), then restores.
    let g2 = {
        let rf = parse_rule_file(text, Path::new("r.yml")).unwrap();
        Group::from_desc(&rf.groups[0], "r.yml", 60_000).unwrap()
    };
    env.up("a", 10 * m, 0.0);
    env.eval(&g2, 10 * m);
    assert!(
        env.at("ALERTS_FOR_STATE", 10 * m).is_empty(),
        "not written before restore"
    );
    let ctx = EvalContext {
        engine: &env.engine,
        queryable: &env.store,
        external_labels: &env.ext,
        external_url: "",
    };
    g2.restore_for_state(&ctx, 10 * m, RestoreOptions::default());
    // Active since 0, down 5m..10m: the 5m of downtime do not count, so active_at = 5m.
    let alerts = g2.alerts();
    assert_eq!(alerts[0].active_at, 5 * m);
    // Fires at 35m, not at 40m (fresh) nor 30m (downtime counted).
    for i in [20, 34] {
        env.up("a", i * m, 0.0);
        assert!(env.eval(&g2, i * m).is_empty(), "{i}m");
    }
    env.up("a", 35 * m, 0.0);
    assert_eq!(env.eval(&g2, 35 * m).len(), 1);
    assert_eq!(env.at("ALERTS_FOR_STATE", 35 * m)[0].1, 300.0);
}
