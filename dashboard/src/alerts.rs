//! The Alerts and Rules pages, and the firing alerts shown on Home.
//!
//! Both pages read [`DataSource::rules`]: the `data` of Prometheus' `/api/v1/rules` (groups of
//! recording and alerting rules, the alerting rules with their active alerts). It is parsed here
//! leniently (missing fields take defaults), so the answer of Pharos' own rule manager and of a
//! remote Prometheus-compatible API read the same. Labels, annotations, expressions and errors are
//! text nodes and attribute values, which Leptos escapes: an annotation can carry no markup.
//!
//! - `GET /alerts` (`?state=firing|pending|inactive` filters): every alerting rule with its state,
//!   its definition and its active alerts (labels, state, active since, value, annotations).
//! - `GET /rules`: every group (file, interval, last evaluation, evaluation time) with each rule's
//!   expression, health, last error, last evaluation and evaluation time.

use std::collections::BTreeMap;

use leptos::either::Either;
use leptos::prelude::*;
use pharos_model::api::format_value;
use serde::Deserialize;

use crate::DataSource;
use crate::time::{format_ago, format_datetime, parse_refresh, parse_rfc3339};
use crate::ui::{Chrome, document, query_string};

/// Query parameters of the Alerts and Rules pages.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AlertsQuery {
    /// Alerts page: only rules in this state (`firing`, `pending`, `inactive`).
    pub state: Option<String>,
    /// Auto-refresh: `off`, `5s`, `15s`, `1m`.
    pub refresh: Option<String>,
    /// `dark` or `light`.
    pub theme: Option<String>,
}

impl AlertsQuery {
    fn chrome(&self, base: &Chrome) -> Chrome {
        Chrome {
            refresh_s: parse_refresh(self.refresh.as_deref()),
            theme: Chrome::theme_param(self.theme.as_deref()).or(base.theme),
            ..base.clone()
        }
    }
}

/// A rule group as in `/api/v1/rules`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Group {
    /// The group name.
    pub name: String,
    /// The file it was loaded from.
    pub file: String,
    /// The rules in file order.
    pub rules: Vec<Rule>,
    /// Evaluation interval in seconds.
    pub interval: f64,
    /// Seconds the last evaluation of the whole group took.
    pub evaluation_time: f64,
    /// When the group was last evaluated (RFC 3339; Go's zero time before the first).
    pub last_evaluation: String,
}

/// A recording or alerting rule as in `/api/v1/rules`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Rule {
    /// `alerting` or `recording`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The alert name or the recorded series name.
    pub name: String,
    /// The PromQL expression.
    pub query: String,
    /// Alerting rules: `inactive`, `pending` or `firing`.
    pub state: String,
    /// Alerting rules: `for` in seconds.
    pub duration: f64,
    /// Alerting rules: `keep_firing_for` in seconds.
    pub keep_firing_for: f64,
    /// Labels (templates for alerting rules).
    pub labels: BTreeMap<String, String>,
    /// Alerting rules: annotation templates.
    pub annotations: BTreeMap<String, String>,
    /// Alerting rules: the pending and firing alerts.
    pub alerts: Vec<Alert>,
    /// `ok`, `err` or `unknown`.
    pub health: String,
    /// The error of the last evaluation.
    pub last_error: Option<String>,
    /// Seconds the last evaluation took.
    pub evaluation_time: f64,
    /// When the rule was last evaluated.
    pub last_evaluation: String,
}

/// An active alert as in `/api/v1/rules` and `/api/v1/alerts`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Alert {
    /// Labels, templates expanded.
    pub labels: BTreeMap<String, String>,
    /// Annotations, templates expanded.
    pub annotations: BTreeMap<String, String>,
    /// `pending` or `firing`.
    pub state: String,
    /// When it became active (RFC 3339).
    pub active_at: Option<String>,
    /// The value of the expression, as the API writes it (`1e+00`).
    pub value: String,
}

/// The groups of a `/api/v1/rules` `data` object (`{"groups": [...]}`).
pub fn parse_groups(data: serde_json::Value) -> Result<Vec<Group>, String> {
    #[derive(Deserialize)]
    struct Data {
        #[serde(default)]
        groups: Vec<Group>,
    }
    serde_json::from_value::<Data>(data)
        .map(|d| d.groups)
        .map_err(|e| format!("cannot read the rules: {e}"))
}

/// The groups from the data source: `Ok(None)` when it has no rules to show.
fn load(ds: &dyn DataSource) -> Result<Option<Vec<Group>>, String> {
    ds.rules().map(parse_groups).transpose()
}

/// An alert value as the API writes it (`1e+00`) in the API's plain form (`1`).
fn value_text(v: &str) -> String {
    v.parse::<f64>()
        .map_or_else(|_| v.to_string(), format_value)
}

/// `2024-01-02 03:04:05 (5m 3s ago)`, or `never` for Go's zero time and unparsable times.
fn when(now_ms: i64, t: &str) -> String {
    match parse_rfc3339(t) {
        Some(ms) if ms > 0 => format!("{} ({})", format_datetime(ms), format_ago(now_ms, ms)),
        _ => "never".into(),
    }
}

/// Seconds as `12.3 ms`, `1.5 s`.
fn seconds_text(s: f64) -> String {
    if s < 1.0 {
        format!("{:.3} ms", s * 1000.0)
    } else {
        format!("{s:.3} s")
    }
}

/// A `for` duration in seconds as `5m`, `1h30m`, `0s`.
fn duration_text(s: f64) -> String {
    pharos_model::api::format_duration((s * 1000.0).round() as i64)
}

/// Colours of the `pending` badge (the style sheet has none).
const PENDING_STYLE: &str = "background:#fff8c5;color:#7d4e00";

/// The badge of an alert or rule state.
fn state_badge(state: &str) -> impl IntoView + use<> {
    let (class, style) = match state {
        "firing" | "err" => ("badge down", None),
        "pending" => ("badge", Some(PENDING_STYLE)),
        "ok" => ("badge up", None),
        _ => ("badge unknown", None),
    };
    let text = if state.is_empty() { "unknown" } else { state }.to_string();
    view! { <span class=class style=style>{text}</span> }
}

fn labels_view(labels: &BTreeMap<String, String>) -> impl IntoView + use<> {
    labels
        .iter()
        .map(|(k, v)| view! { <span class="label">{format!("{k}=\"{v}\"")}</span> " " })
        .collect_view()
}

fn annotations_view(ann: &BTreeMap<String, String>) -> impl IntoView + use<> {
    let items = ann
        .iter()
        .map(|(k, v)| {
            view! {
                <dt>{k.clone()}</dt>
                <dd style="white-space:pre-wrap">{v.clone()}</dd>
            }
        })
        .collect_view();
    view! { <dl class="kv">{items}</dl> }
}

/// The table of active alerts: labels, state, active since, value, annotations.
fn alerts_table(alerts: &[Alert], now_ms: i64) -> impl IntoView + use<> {
    let rows = alerts
        .iter()
        .map(|a| {
            let since = a
                .active_at
                .as_deref()
                .map_or_else(|| "-".to_string(), |t| when(now_ms, t));
            view! {
                <tr class="alert">
                    <td>{labels_view(&a.labels)}</td>
                    <td>{state_badge(&a.state)}</td>
                    <td class="num">{since}</td>
                    <td class="num">{value_text(&a.value)}</td>
                    <td>{annotations_view(&a.annotations)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-wrap">
            <table>
                <thead>
                    <tr>
                        <th>"Labels"</th>
                        <th>"State"</th>
                        <th>"Active since"</th>
                        <th>"Value"</th>
                        <th>"Annotations"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

/// The state of an alerting rule: the API's, or derived from its alerts when a source leaves it
/// out.
fn rule_state(r: &Rule) -> &str {
    if !r.state.is_empty() {
        return &r.state;
    }
    if r.alerts.iter().any(|a| a.state == "firing") {
        "firing"
    } else if r.alerts.is_empty() {
        "inactive"
    } else {
        "pending"
    }
}

/// Link to Explore with `expr`.
fn explore_link(expr: &str) -> String {
    format!("/graph{}", query_string(&[("expr".into(), expr.into())]))
}

/// One alerting rule: a `<details>` (open unless inactive) with its definition and alerts.
fn alert_rule_view(group: &Group, r: &Rule, now_ms: i64) -> impl IntoView + use<> {
    let state = rule_state(r).to_string();
    let open = state != "inactive";
    let count = format!("({} active)", r.alerts.len());
    let mut def = vec![view! { <dt>"expr"</dt><dd><a href=explore_link(&r.query)><code class="expr">{r.query.clone()}</code></a></dd> }.into_any()];
    if r.duration > 0.0 {
        def.push(view! { <dt>"for"</dt><dd>{duration_text(r.duration)}</dd> }.into_any());
    }
    if r.keep_firing_for > 0.0 {
        def.push(
            view! { <dt>"keep_firing_for"</dt><dd>{duration_text(r.keep_firing_for)}</dd> }
                .into_any(),
        );
    }
    if !r.labels.is_empty() {
        def.push(view! { <dt>"labels"</dt><dd>{labels_view(&r.labels)}</dd> }.into_any());
    }
    for (k, v) in &r.annotations {
        def.push(
            view! { <dt>{format!("annotations.{k}")}</dt><dd style="white-space:pre-wrap">{v.clone()}</dd> }
                .into_any(),
        );
    }
    let error = r
        .last_error
        .clone()
        .filter(|e| !e.is_empty())
        .map(|e| view! { <div class="error">{format!("Last evaluation failed: {e}")}</div> });
    let alerts = if r.alerts.is_empty() {
        Either::Left(view! { <p class="muted">"No active alerts."</p> })
    } else {
        Either::Right(alerts_table(&r.alerts, now_ms))
    };
    let where_ = format!("{} > {}", group.file, group.name);
    view! {
        <details class="rule" data-state=state.clone() open=open>
            <summary>
                {state_badge(&state)} " " <strong>{r.name.clone()}</strong> " "
                <span class="muted">{count} " · " {where_}</span>
            </summary>
            <dl class="kv">{def}</dl>
            {error}
            {alerts}
            <p class="muted">{format!("Last evaluation: {}", when(now_ms, &r.last_evaluation))}</p>
        </details>
    }
}

fn unavailable(msg: String) -> impl IntoView {
    view! { <p class="muted">{msg}</p> }
}

const NO_RULES: &str = "No rules are loaded. Add rule files to `rule_files` in the configuration.";

/// `GET /alerts`: the alerting rules, firing first, with their alerts.
pub fn alerts_page(ds: &dyn DataSource, q: &AlertsQuery, chrome: &Chrome, now_ms: i64) -> String {
    let chrome = q.chrome(chrome);
    let groups = match load(ds) {
        Err(e) => {
            let c = view! { <h1>"Alerts"</h1> <div class="error">{e}</div> };
            return document("Alerts", "/alerts", &chrome, c);
        }
        Ok(None) => {
            let c = view! { <h1>"Alerts"</h1> {unavailable("This data source serves no rules.".into())} };
            return document("Alerts", "/alerts", &chrome, c);
        }
        Ok(Some(g)) => g,
    };
    let mut rules: Vec<(&Group, &Rule)> = groups
        .iter()
        .flat_map(|g| g.rules.iter().map(move |r| (g, r)))
        .filter(|(_, r)| r.kind == "alerting")
        .collect();
    let count = |s: &str| rules.iter().filter(|(_, r)| rule_state(r) == s).count();
    let (firing, pending, inactive) = (count("firing"), count("pending"), count("inactive"));
    let rank = |r: &Rule| match rule_state(r) {
        "firing" => 0,
        "pending" => 1,
        _ => 2,
    };
    // Stable: within a state, file and group order stays.
    rules.sort_by_key(|(_, r)| rank(r));
    let filter = q.state.clone().filter(|s| !s.is_empty());
    if let Some(f) = &filter {
        rules.retain(|(_, r)| rule_state(r) == f);
    }
    let tab = |state: &str, text: String| {
        let active = filter.as_deref() == Some(state) || (state.is_empty() && filter.is_none());
        let href = if state.is_empty() {
            "/alerts".to_string()
        } else {
            format!("/alerts{}", query_string(&[("state".into(), state.into())]))
        };
        view! { <a href=href class=if active { "active" } else { "" }>{text}</a> }
    };
    let body = if rules.is_empty() {
        let msg = if groups.is_empty() {
            NO_RULES.to_string()
        } else {
            "No alerting rules match.".to_string()
        };
        Either::Left(unavailable(msg))
    } else {
        Either::Right(
            rules
                .iter()
                .map(|(g, r)| alert_rule_view(g, r, now_ms))
                .collect_view(),
        )
    };
    let content = view! {
        <h1>"Alerts"</h1>
        <div class="summary">
            <span class="badge down">{format!("{firing} firing")}</span>
            <span class="badge" style=PENDING_STYLE>{format!("{pending} pending")}</span>
            <span class="badge unknown">{format!("{inactive} inactive")}</span>
        </div>
        <div class="ranges">
            {tab("", "All".into())}
            {tab("firing", "Firing".into())}
            {tab("pending", "Pending".into())}
            {tab("inactive", "Inactive".into())}
        </div>
        {body}
    };
    document("Alerts", "/alerts", &chrome, content)
}

/// One rule of the Rules page as a table row.
fn rule_row(r: &Rule, now_ms: i64) -> impl IntoView + use<> {
    let kind = if r.kind == "alerting" {
        "alert"
    } else {
        "record"
    };
    let mut def = vec![
        view! { <div><span class="muted">{format!("{kind}: ")}</span><strong>{r.name.clone()}</strong></div> }
            .into_any(),
        view! { <div><span class="muted">"expr: "</span><a href=explore_link(&r.query)><code class="expr">{r.query.clone()}</code></a></div> }
            .into_any(),
    ];
    if r.duration > 0.0 {
        def.push(
            view! { <div><span class="muted">"for: "</span>{duration_text(r.duration)}</div> }
                .into_any(),
        );
    }
    if !r.labels.is_empty() {
        def.push(
            view! { <div><span class="muted">"labels: "</span>{labels_view(&r.labels)}</div> }
                .into_any(),
        );
    }
    for (k, v) in &r.annotations {
        def.push(
            view! { <div><span class="muted">{format!("{k}: ")}</span>{v.clone()}</div> }
                .into_any(),
        );
    }
    let health = if r.health.is_empty() {
        "unknown".to_string()
    } else {
        r.health.clone()
    };
    view! {
        <tr class="rule">
            <td>{def}</td>
            <td>{state_badge(&health)}</td>
            <td class="err">{r.last_error.clone().unwrap_or_default()}</td>
            <td class="num">{when(now_ms, &r.last_evaluation)}</td>
            <td class="num">{seconds_text(r.evaluation_time)}</td>
        </tr>
    }
}

/// `GET /rules`: every rule group and rule with health and evaluation times.
pub fn rules_page(ds: &dyn DataSource, q: &AlertsQuery, chrome: &Chrome, now_ms: i64) -> String {
    let chrome = q.chrome(chrome);
    let groups = match load(ds) {
        Err(e) => {
            let c = view! { <h1>"Rules"</h1> <div class="error">{e}</div> };
            return document("Rules", "/rules", &chrome, c);
        }
        Ok(None) => {
            let c = view! { <h1>"Rules"</h1> {unavailable("This data source serves no rules.".into())} };
            return document("Rules", "/rules", &chrome, c);
        }
        Ok(Some(g)) => g,
    };
    let body = if groups.is_empty() {
        Either::Left(unavailable(NO_RULES.into()))
    } else {
        Either::Right(
            groups
                .iter()
                .map(|g| {
                    let rows = g.rules.iter().map(|r| rule_row(r, now_ms)).collect_view();
                    let info = format!(
                        "{} · every {} · last evaluation {} · took {}",
                        g.file,
                        duration_text(g.interval),
                        when(now_ms, &g.last_evaluation),
                        seconds_text(g.evaluation_time)
                    );
                    view! {
                        <section class="group">
                            <h2>{g.name.clone()}</h2>
                            <p class="muted">{info}</p>
                            <div class="table-wrap">
                                <table>
                                    <thead>
                                        <tr>
                                            <th>"Rule"</th>
                                            <th>"State"</th>
                                            <th>"Error"</th>
                                            <th>"Last evaluation"</th>
                                            <th>"Evaluation time"</th>
                                        </tr>
                                    </thead>
                                    <tbody>{rows}</tbody>
                                </table>
                            </div>
                        </section>
                    }
                })
                .collect_view(),
        )
    };
    let content = view! { <h1>"Rules"</h1> {body} };
    document("Rules", "/rules", &chrome, content)
}

/// The firing alerts for the Home page (nothing when none fire or there are no rules).
pub fn firing_on_home(ds: &dyn DataSource, now_ms: i64) -> impl IntoView + use<> {
    let firing: Vec<Alert> = load(ds)
        .ok()
        .flatten()
        .unwrap_or_default()
        .into_iter()
        .flat_map(|g| g.rules)
        .flat_map(|r| r.alerts)
        .filter(|a| a.state == "firing")
        .collect();
    (!firing.is_empty()).then(|| {
        view! {
            <h2><a href="/alerts?state=firing">"Firing alerts"</a></h2>
            {alerts_table(&firing, now_ms)}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharos_model::api::{MatrixSeries, QueryData, Target};
    use serde_json::json;

    const NOW: i64 = 1_700_000_000_000;

    struct Fake(Option<serde_json::Value>);

    impl DataSource for Fake {
        fn query_range(
            &self,
            _: &str,
            _: i64,
            _: i64,
            _: i64,
        ) -> std::result::Result<Vec<MatrixSeries>, String> {
            Ok(Vec::new())
        }
        fn query(&self, _: &str, _: i64) -> std::result::Result<QueryData, String> {
            Ok(QueryData::Vector(Vec::new()))
        }
        fn targets(&self) -> Vec<Target> {
            Vec::new()
        }
        fn rules(&self) -> Option<serde_json::Value> {
            self.0.clone()
        }
    }

    /// Rules data as Pharos' `/api/v1/rules` returns it: a firing rule whose annotation holds
    /// markup, a pending one, an inactive one with an error, and a recording rule.
    fn sample() -> serde_json::Value {
        json!({"groups": [{
            "name": "node", "file": "/etc/pharos/rules.yml", "interval": 15.0, "limit": 0,
            "evaluationTime": 0.0021, "lastEvaluation": "2023-11-14T22:13:15.5Z",
            "rules": [
                {"type": "alerting", "state": "firing", "name": "NodeDown",
                 "query": "up{job=\"node\"} == 0", "duration": 300.0, "keepFiringFor": 0.0,
                 "labels": {"severity": "page"},
                 "annotations": {"summary": "{{ $labels.instance }} <b>down</b>"},
                 "alerts": [{"labels": {"alertname": "NodeDown", "instance": "n1:9100"},
                             "annotations": {"summary": "n1 <script>alert(1)</script> & down"},
                             "state": "firing", "activeAt": "2023-11-14T22:00:00Z",
                             "value": "0e+00"}],
                 "health": "ok", "evaluationTime": 0.001,
                 "lastEvaluation": "2023-11-14T22:13:15.5Z"},
                {"type": "alerting", "state": "pending", "name": "HighCPU", "query": "cpu > 0.9",
                 "duration": 600.0, "keepFiringFor": 0.0, "labels": {}, "annotations": {},
                 "alerts": [{"labels": {"alertname": "HighCPU"}, "annotations": {},
                             "state": "pending", "activeAt": "2023-11-14T22:12:00Z",
                             "value": "9.5e-01"}],
                 "health": "ok", "evaluationTime": 0.0, "lastEvaluation": "2023-11-14T22:13:15Z"},
                {"type": "alerting", "state": "inactive", "name": "Broken", "query": "x / on() y",
                 "duration": 0.0, "keepFiringFor": 0.0, "labels": {}, "annotations": {},
                 "alerts": [], "health": "err", "lastError": "many-to-many matching not allowed",
                 "evaluationTime": 0.0, "lastEvaluation": "0001-01-01T00:00:00Z"},
                {"type": "recording", "name": "job:up:sum", "query": "sum by (job) (up)",
                 "health": "ok", "evaluationTime": 0.0004,
                 "lastEvaluation": "2023-11-14T22:13:15Z"}
            ]
        }]})
    }

    #[track_caller]
    fn check(html: &str, has: &[&str], not: &[&str]) {
        for h in has {
            assert!(html.contains(h), "missing {h:?} in {html}");
        }
        for n in not {
            assert!(!html.contains(n), "unexpected {n:?} in {html}");
        }
    }

    fn alerts(ds: &Fake, state: Option<&str>) -> String {
        let q = AlertsQuery {
            state: state.map(str::to_string),
            ..AlertsQuery::default()
        };
        alerts_page(ds, &q, &Chrome::default(), NOW)
    }

    #[test]
    fn alerts_page_shows_states_values_and_escaped_annotations() {
        let ds = Fake(Some(sample()));
        let html = alerts(&ds, None);
        check(
            &html,
            &[
                "<h1>Alerts</h1>",
                "1 firing",
                "1 pending",
                "1 inactive",
                "data-state=\"firing\"",
                "NodeDown",
                "<span class=\"label\">alertname=\"NodeDown\"</span>",
                "n1 &lt;script&gt;alert(1)&lt;/script&gt; &amp; down",
                // The rule's template, also escaped.
                "{{ $labels.instance }} &lt;b&gt;down&lt;/b&gt;",
                "2023-11-14 22:00:00",
                "13m 20s ago",
                ">0</td>",
                ">0.95</td>",
                "5m",
                "Last evaluation failed: many-to-many matching not allowed",
                "href=\"/graph?expr=up%7Bjob%3D%22node%22%7D%20%3D%3D%200\"",
                "href=\"/alerts\" class=\"active\"",
            ],
            &["<script>alert(1)", "<b>down"],
        );
        // Firing before pending before inactive.
        let at = |s: &str| html.find(s).unwrap();
        assert!(at("data-state=\"firing\"") < at("data-state=\"pending\""));
        assert!(at("data-state=\"pending\"") < at("data-state=\"inactive\""));
        // Inactive rules are folded; recording rules are not alerts.
        check(&html, &[], &["job:up:sum"]);

        let html = alerts(&ds, Some("pending"));
        check(
            &html,
            &["HighCPU", "class=\"active\">Pending"],
            &["data-state=\"firing\"", "data-state=\"inactive\""],
        );
    }

    #[test]
    fn rules_page_shows_health_errors_and_evaluation() {
        let ds = Fake(Some(sample()));
        let html = rules_page(&ds, &AlertsQuery::default(), &Chrome::default(), NOW);
        check(
            &html,
            &[
                "<h1>Rules</h1>",
                "<h2>node</h2>",
                "/etc/pharos/rules.yml · every 15s · last evaluation 2023-11-14 22:13:15 (4.5s ago)",
                "took 2.100 ms",
                "job:up:sum",
                "sum by (job) (up)",
                "many-to-many matching not allowed",
                "class=\"badge down\">err</span>",
                "class=\"badge up\">ok</span>",
                "never",
                "0.400 ms",
                "severity=\"page\"",
            ],
            &["<b>down"],
        );
    }

    #[test]
    fn empty_missing_and_malformed_rules() {
        #[track_caller]
        fn check_both(ds: Fake, has: &str) {
            let q = AlertsQuery::default();
            check(&alerts_page(&ds, &q, &Chrome::default(), NOW), &[has], &[]);
            check(&rules_page(&ds, &q, &Chrome::default(), NOW), &[has], &[]);
        }
        check_both(Fake(None), "This data source serves no rules.");
        check_both(Fake(Some(json!({"groups": []}))), "No rules are loaded.");
        check_both(Fake(Some(json!({"groups": 3}))), "cannot read the rules:");
    }

    #[test]
    fn firing_alerts_on_home() {
        let html = firing_on_home(&Fake(Some(sample())), NOW).to_html();
        check(&html, &["Firing alerts", "n1:9100"], &["HighCPU"]);
        let none = firing_on_home(&Fake(None), NOW).to_html();
        check(&none, &[], &["Firing alerts"]);
    }

    #[test]
    fn values_and_durations() {
        #[track_caller]
        fn check(got: String, want: &str) {
            assert_eq!(got, want);
        }
        check(value_text("1e+00"), "1");
        check(value_text("1.5e-01"), "0.15");
        check(value_text("NaN"), "NaN");
        check(value_text("+Inf"), "+Inf");
        check(value_text("weird"), "weird");
        check(duration_text(5400.0), "1h30m");
        check(duration_text(0.0), "0s");
        check(when(NOW, "0001-01-01T00:00:00Z"), "never");
        check(when(NOW, ""), "never");
    }
}
