//! Recording and alerting rules: evaluation at one timestamp and alert state.

use std::collections::BTreeMap;
use std::sync::Mutex;

use pharos_model::storage::Queryable;
use pharos_model::{Labels, METRIC_NAME};

use super::file::{RuleDesc, duration_field};
use super::template::{self, Data};
use super::{Error, Result};
use crate::ast::Expr;
use crate::{Engine, Value, parser};

/// How long a resolved alert is kept (and re-sent as resolved), as in Prometheus.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60_000;

/// What a rule's evaluation needs.
pub struct EvalContext<'a> {
    /// The PromQL engine.
    pub engine: &'a Engine,
    /// Where queries read.
    pub queryable: &'a dyn Queryable,
    /// External labels (templates' `$externalLabels`, added to notifications).
    pub external_labels: &'a BTreeMap<String, String>,
    /// Pharos' external URL (templates' `$externalURL`, `generatorURL`).
    pub external_url: &'a str,
}

impl EvalContext<'_> {
    /// Evaluates `expr` at `t` as an instant vector (a scalar becomes one sample without labels).
    pub fn query(&self, expr: &Expr, t: i64) -> std::result::Result<Vec<(Labels, f64)>, String> {
        match self.engine.instant(self.queryable, expr, t) {
            Ok(Value::Vector(v)) => Ok(v
                .into_iter()
                .map(|e| (std::sync::Arc::unwrap_or_clone(e.metric), e.v))
                .collect()),
            Ok(Value::Scalar(s)) => Ok(vec![(Labels::empty(), s.v)]),
            Ok(other) => Err(format!(
                "rule result is not a vector or scalar: {:?}",
                other.into_query_data()
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The `query` template function at time `t`.
    pub fn query_text(&self, q: &str, t: i64) -> std::result::Result<Vec<(Labels, f64)>, String> {
        let e = parser::parse(q).map_err(|e| e.to_string())?;
        self.query(&e, t)
    }
}

/// Health of a rule after its last evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// Not evaluated yet.
    #[default]
    Unknown,
    /// The last evaluation succeeded.
    Ok,
    /// The last evaluation failed.
    Err,
}

impl Health {
    /// `unknown`, `ok` or `err`, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// Outcome of a rule's last evaluation.
#[derive(Debug, Clone, Default)]
pub struct RuleStatus {
    /// Health.
    pub health: Health,
    /// The error of the last evaluation, if it failed.
    pub last_error: Option<String>,
    /// When it was last evaluated (ms), 0 if never.
    pub last_eval: i64,
    /// How long the last evaluation took (s).
    pub eval_seconds: f64,
    /// Failed evaluations so far.
    pub failures: u64,
    /// Evaluations so far.
    pub evaluations: u64,
}

/// A recording rule.
#[derive(Debug)]
pub struct RecordingRule {
    /// The series name written.
    pub name: String,
    /// The expression as written.
    pub query: String,
    expr: Expr,
    /// Labels added (overwriting).
    pub labels: BTreeMap<String, String>,
    /// Last evaluation.
    pub status: Mutex<RuleStatus>,
}

impl RecordingRule {
    /// Evaluates at `t`: the samples to write.
    pub fn eval(&self, ctx: &EvalContext<'_>, t: i64, limit: usize) -> Result<Vec<(Labels, f64)>> {
        let v = ctx.query(&self.expr, t).map_err(Error::Eval)?;
        let mut out = Vec::with_capacity(v.len());
        let mut seen = std::collections::HashSet::new();
        for (l, x) in v {
            let mut b = l.builder();
            b.set(METRIC_NAME, self.name.clone());
            for (k, val) in &self.labels {
                b.set(k.clone(), val.clone());
            }
            let l = b.build();
            if !seen.insert(l.clone()) {
                return Err(Error::Eval(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                ));
            }
            out.push((l, x));
        }
        if limit > 0 && out.len() > limit {
            return Err(Error::Eval(format!(
                "exceeded limit of {limit} with {} series",
                out.len()
            )));
        }
        Ok(out)
    }
}

/// State of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    /// Resolved (kept for a while to send resolved notifications).
    Inactive,
    /// Active for less than `for`.
    Pending,
    /// Active for at least `for`.
    Firing,
}

impl AlertState {
    /// `inactive`, `pending` or `firing`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of an alerting rule (one label set).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Identifying labels (with `alertname`).
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: Labels,
    /// State.
    pub state: AlertState,
    /// Value of the sample that last made it active.
    pub value: f64,
    /// When it became active (ms).
    pub active_at: i64,
    /// When it started firing (ms), 0 if never.
    pub fired_at: i64,
    /// When it was resolved (ms), 0 if not.
    pub resolved_at: i64,
    /// When it was last sent (ms), 0 if never.
    pub last_sent_at: i64,
    /// Until when the last notification is valid (ms).
    pub valid_until: i64,
    /// Since when it has been kept firing by `keep_firing_for` (ms), 0 if not.
    pub keep_firing_since: i64,
}

impl Alert {
    fn needs_sending(&self, ts: i64, resend_delay: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if self.resolved_at > self.last_sent_at || self.last_sent_at == 0 {
            return true;
        }
        self.last_sent_at + resend_delay < ts
    }
}

/// An alert handed to the notifier, with Prometheus' `startsAt`/`endsAt`.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Labels,
    /// `startsAt` (ms): when the alert started firing.
    pub starts_at: i64,
    /// `endsAt` (ms): the resolution time, or how long this notification stays valid.
    pub ends_at: i64,
    /// Link back to the expression in Pharos.
    pub generator_url: String,
}

/// Mutable state of an alerting rule.
#[derive(Debug, Default)]
pub struct AlertingState {
    /// Active (pending, firing, recently resolved) alerts by labels.
    pub active: BTreeMap<Labels, Alert>,
    /// Whether the `for` state was restored (until then `ALERTS_FOR_STATE` is not written).
    pub restored: bool,
    /// Last evaluation.
    pub status: RuleStatus,
}

/// An alerting rule.
#[derive(Debug)]
pub struct AlertingRule {
    /// The alert name.
    pub name: String,
    /// The expression as written.
    pub query: String,
    expr: Expr,
    /// `for` (ms).
    pub hold_ms: i64,
    /// `keep_firing_for` (ms).
    pub keep_firing_ms: i64,
    /// Label templates.
    pub labels: BTreeMap<String, String>,
    /// Annotation templates.
    pub annotations: BTreeMap<String, String>,
    /// State.
    pub state: Mutex<AlertingState>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AlertingRule {
    /// Locks the state.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, AlertingState> {
        lock(&self.state)
    }

    /// The labels of `ALERTS`/`ALERTS_FOR_STATE` for `a`.
    fn series_labels(a: &Alert, name: &str, state: Option<AlertState>) -> Labels {
        let mut b = a.labels.builder();
        b.set(METRIC_NAME, name);
        if let Some(s) = state {
            b.set("alertstate", s.as_str());
        }
        b.build()
    }

    /// Evaluates at `t`, updates the alerts and returns the `ALERTS`/`ALERTS_FOR_STATE`
    /// samples to write.
    pub fn eval(&self, ctx: &EvalContext<'_>, t: i64, limit: usize) -> Result<Vec<(Labels, f64)>> {
        let res = ctx.query(&self.expr, t).map_err(Error::Eval)?;
        let tname = format!("__alert_{}", self.name);
        let qf = |q: &str| ctx.query_text(q, t);
        let mut fresh: BTreeMap<Labels, Alert> = BTreeMap::new();
        for (metric, v) in res {
            let data = Data {
                labels: metric
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
                external_labels: ctx.external_labels.clone(),
                external_url: ctx.external_url.to_string(),
                value: v,
            };
            let mut b = metric.without_metric_name().builder();
            for (k, tv) in &self.labels {
                b.set(k.clone(), template::expand(&tname, tv, &data, &qf));
            }
            b.set("alertname", self.name.clone());
            let labels = b.build();
            let annotations = Labels::new(
                self.annotations
                    .iter()
                    .map(|(k, tv)| pharos_model::Label {
                        name: k.clone(),
                        value: template::expand(&tname, tv, &data, &qf),
                    })
                    .collect(),
            );
            if fresh.contains_key(&labels) {
                return Err(Error::Eval(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                ));
            }
            fresh.insert(
                labels.clone(),
                Alert {
                    labels,
                    annotations,
                    state: AlertState::Pending,
                    value: v,
                    active_at: t,
                    fired_at: 0,
                    resolved_at: 0,
                    last_sent_at: 0,
                    valid_until: 0,
                    keep_firing_since: 0,
                },
            );
        }
        let mut st = self.lock();
        let present: std::collections::HashSet<Labels> = fresh.keys().cloned().collect();
        for (k, a) in fresh {
            match st.active.get_mut(&k) {
                Some(old) if old.state != AlertState::Inactive => {
                    old.value = a.value;
                    old.annotations = a.annotations;
                }
                _ => {
                    st.active.insert(k, a);
                }
            }
        }
        let restored = st.restored;
        let mut out = Vec::new();
        let mut num_active = 0usize;
        let hold = self.hold_ms;
        let keep = self.keep_firing_ms;
        st.active.retain(|k, a| {
            if !present.contains(k) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep > 0 {
                    if a.keep_firing_since == 0 {
                        a.keep_firing_since = t;
                    }
                    keep_firing = t - a.keep_firing_since < keep;
                }
                if !keep_firing {
                    if a.state == AlertState::Pending
                        || (a.resolved_at != 0 && t - a.resolved_at > RESOLVED_RETENTION_MS)
                    {
                        return false;
                    }
                    if a.state != AlertState::Inactive {
                        a.state = AlertState::Inactive;
                        a.resolved_at = t;
                    }
                    return true;
                }
            } else if a.state == AlertState::Firing {
                a.keep_firing_since = 0;
            }
            num_active += 1;
            if a.state == AlertState::Pending && t - a.active_at >= hold {
                a.state = AlertState::Firing;
                a.fired_at = t;
            }
            out.push((Self::series_labels(a, "ALERTS", Some(a.state)), 1.0));
            if restored {
                out.push((
                    Self::series_labels(a, "ALERTS_FOR_STATE", None),
                    a.active_at.div_euclid(1000) as f64,
                ));
            }
            true
        });
        if limit > 0 && num_active > limit {
            st.active.clear();
            return Err(Error::Eval(format!(
                "exceeded limit of {limit} with {num_active} alerts"
            )));
        }
        Ok(out)
    }

    /// The alerts to notify at `t` (firing ones due for a resend, and resolved ones), marking
    /// them sent.
    pub fn due_notifications(
        &self,
        t: i64,
        resend_delay: i64,
        interval: i64,
        external_url: &str,
    ) -> Vec<Notification> {
        let url = format!(
            "{}{}",
            external_url.trim_end_matches('/'),
            template::table_link(&self.query)
        );
        let mut st = self.lock();
        let mut out = Vec::new();
        for a in st.active.values_mut() {
            if !a.needs_sending(t, resend_delay) {
                continue;
            }
            a.last_sent_at = t;
            a.valid_until = t + 4 * resend_delay.max(interval);
            out.push(Notification {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: a.fired_at,
                ends_at: if a.resolved_at != 0 {
                    a.resolved_at
                } else {
                    a.valid_until
                },
                generator_url: url.clone(),
            });
        }
        out
    }

    /// The rule's state: the highest state of its alerts.
    pub fn rule_state(&self) -> AlertState {
        self.lock()
            .active
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }
}

/// A rule of a group.
#[derive(Debug)]
pub enum Rule {
    /// Writes a series.
    Recording(RecordingRule),
    /// Keeps alerts.
    Alerting(AlertingRule),
}

impl Rule {
    /// Builds a rule from its (validated) description.
    pub fn from_desc(d: &RuleDesc) -> Result<Rule> {
        let expr = parser::parse(&d.expr)
            .map_err(|e| Error::Eval(format!("could not parse expression: {e}")))?;
        if let Some(rec) = &d.record {
            return Ok(Rule::Recording(RecordingRule {
                name: rec.clone(),
                query: expr.to_string(),
                expr,
                labels: d.labels.clone(),
                status: Mutex::new(RuleStatus::default()),
            }));
        }
        let name = d.alert.clone().unwrap_or_default();
        Ok(Rule::Alerting(AlertingRule {
            name,
            query: expr.to_string(),
            expr,
            hold_ms: duration_field(&d.for_).map_err(Error::Eval)?,
            keep_firing_ms: duration_field(&d.keep_firing_for).map_err(Error::Eval)?,
            labels: d.labels.clone(),
            annotations: d.annotations.clone(),
            state: Mutex::new(AlertingState::default()),
        }))
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        match self {
            Rule::Recording(r) => &r.name,
            Rule::Alerting(r) => &r.name,
        }
    }

    /// The status of its last evaluation.
    pub fn status(&self) -> RuleStatus {
        match self {
            Rule::Recording(r) => lock(&r.status).clone(),
            Rule::Alerting(r) => r.lock().status.clone(),
        }
    }

    /// Records the outcome of an evaluation.
    pub fn set_status(&self, t: i64, secs: f64, err: Option<String>) {
        let apply = |s: &mut RuleStatus| {
            s.last_eval = t;
            s.eval_seconds = secs;
            s.evaluations += 1;
            s.health = if err.is_some() {
                Health::Err
            } else {
                Health::Ok
            };
            if err.is_some() {
                s.failures += 1;
            }
            s.last_error = err.clone();
        };
        match self {
            Rule::Recording(r) => apply(&mut lock(&r.status)),
            Rule::Alerting(r) => apply(&mut r.lock().status),
        }
    }

    /// True if both rules are the same rule (same kind, name, expression, labels, annotations,
    /// durations): state carries over across reloads only then.
    pub fn same_as(&self, other: &Rule) -> bool {
        match (self, other) {
            (Rule::Recording(a), Rule::Recording(b)) => {
                a.name == b.name && a.query == b.query && a.labels == b.labels
            }
            (Rule::Alerting(a), Rule::Alerting(b)) => {
                a.name == b.name
                    && a.query == b.query
                    && a.labels == b.labels
                    && a.annotations == b.annotations
                    && a.hold_ms == b.hold_ms
                    && a.keep_firing_ms == b.keep_firing_ms
            }
            _ => false,
        }
    }
}
