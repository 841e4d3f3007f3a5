//! A rule group: its rules evaluated in order at one timestamp, results appended with staleness
//! markers, alert `for` state restored after a restart.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use pharos_model::storage::{Appendable, SelectHints};
use pharos_model::{Labels, MatchOp, Matcher, STALE_NAN, is_stale_nan};

use super::file::{GroupDesc, duration_field};
use super::rule::{EvalContext, Notification, Rule};
use super::{Error, Result};

/// Timing of a group's last evaluation.
#[derive(Debug, Clone, Default)]
pub struct GroupStatus {
    /// When it was last evaluated (ms), 0 if never.
    pub last_eval: i64,
    /// How long that took (s).
    pub eval_seconds: f64,
    /// Evaluations that started later than their slot (missed iterations).
    pub missed: u64,
}

/// A group of rules.
#[derive(Debug)]
pub struct Group {
    /// Name, unique in its file.
    pub name: String,
    /// The file it came from.
    pub file: String,
    /// Evaluation interval (ms).
    pub interval_ms: i64,
    /// Series/alert limit per rule (0: none).
    pub limit: usize,
    /// The rules in evaluation order.
    pub rules: Vec<Rule>,
    /// Series each rule wrote at its last successful evaluation (for staleness markers).
    written: Mutex<Vec<HashSet<Labels>>>,
    /// Timing.
    pub status: Mutex<GroupStatus>,
}

/// Options of restoring alerts' `for` state.
#[derive(Debug, Clone, Copy)]
pub struct RestoreOptions {
    /// How long Pharos may have been down for the state to be restored (Prometheus: 1h).
    pub outage_tolerance_ms: i64,
    /// Least time an alert stays pending after a restart (Prometheus: 10m).
    pub grace_period_ms: i64,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            outage_tolerance_ms: 3_600_000,
            grace_period_ms: 600_000,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Group {
    /// Builds a group from its (validated) description.
    pub fn from_desc(d: &GroupDesc, file: &str, default_interval_ms: i64) -> Result<Group> {
        let interval = match duration_field(&d.interval).map_err(|e| Error::Load {
            file: file.to_string(),
            msg: e,
        })? {
            0 => default_interval_ms,
            i => i,
        };
        let rules = d
            .rules
            .iter()
            .map(Rule::from_desc)
            .collect::<Result<Vec<_>>>()
            .map_err(|e| Error::Load {
                file: file.to_string(),
                msg: e.to_string(),
            })?;
        Ok(Group {
            name: d.name.clone(),
            file: file.to_string(),
            interval_ms: interval.max(1),
            limit: d.limit,
            written: Mutex::new(vec![HashSet::new(); rules.len()]),
            rules,
            status: Mutex::new(GroupStatus::default()),
        })
    }

    /// Takes over the state of `old` (same file and name) for every rule that is the same in
    /// both: alerts, health and the series written (so staleness markers stay right).
    pub fn copy_state(&self, old: &Group) {
        *lock(&self.status) = lock(&old.status).clone();
        let old_written = lock(&old.written).clone();
        let mut written = lock(&self.written);
        let mut used = vec![false; old.rules.len()];
        for (i, r) in self.rules.iter().enumerate() {
            let Some(j) = old
                .rules
                .iter()
                .enumerate()
                .position(|(j, o)| !used[j] && o.same_as(r))
            else {
                continue;
            };
            used[j] = true;
            if let Some(w) = old_written.get(j) {
                written[i] = w.clone();
            }
            match (r, &old.rules[j]) {
                (Rule::Alerting(n), Rule::Alerting(o)) => {
                    let o = o.lock();
                    let mut n = n.lock();
                    n.active = o.active.clone();
                    n.restored = o.restored;
                    n.status = o.status.clone();
                }
                (Rule::Recording(n), Rule::Recording(o)) => {
                    let s = lock(&o.status).clone();
                    *lock(&n.status) = s;
                }
                _ => {}
            }
        }
    }

    /// Marks every alerting rule as restored (`ALERTS_FOR_STATE` is written from then on).
    pub fn set_restored(&self) {
        for r in &self.rules {
            if let Rule::Alerting(a) = r {
                a.lock().restored = true;
            }
        }
    }

    /// Evaluates every rule at `t`, appends the results through `app` and returns the alert
    /// notifications due (`resend_delay` in ms). A failing rule records its error; the others
    /// go on.
    pub fn eval(
        &self,
        ctx: &EvalContext<'_>,
        app: &dyn Appendable,
        t: i64,
        resend_delay: i64,
    ) -> Vec<Notification> {
        let started = Instant::now();
        let mut notifications = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let rs = Instant::now();
            let res = match rule {
                Rule::Recording(r) => r.eval(ctx, t, self.limit),
                Rule::Alerting(r) => r.eval(ctx, t, self.limit),
            };
            let mut err = None;
            match res {
                Ok(samples) => {
                    if let Err(e) = self.append(app, i, &samples, t) {
                        err = Some(e);
                    }
                }
                Err(e) => {
                    tracing::warn!(group = %self.name, rule = %rule.name(), error = %e, "rule evaluation failed");
                    err = Some(e.to_string());
                }
            }
            rule.set_status(t, rs.elapsed().as_secs_f64(), err);
            if let Rule::Alerting(a) = rule {
                notifications.extend(a.due_notifications(
                    t,
                    resend_delay,
                    self.interval_ms,
                    ctx.external_url,
                ));
            }
        }
        let mut st = lock(&self.status);
        st.last_eval = t;
        st.eval_seconds = started.elapsed().as_secs_f64();
        notifications
    }

    /// Appends one rule's samples and staleness markers for the series it no longer writes.
    fn append(
        &self,
        app: &dyn Appendable,
        i: usize,
        samples: &[(Labels, f64)],
        t: i64,
    ) -> std::result::Result<(), String> {
        let mut a = app.appender();
        let mut now = HashSet::with_capacity(samples.len());
        let mut rejected = 0usize;
        for (l, v) in samples {
            match a.append(None, l, t, *v) {
                Ok(_) => {}
                Err(e) if e.is_sample_rejection() => rejected += 1,
                Err(e) => {
                    let _ = a.rollback();
                    return Err(format!("cannot append rule result: {e}"));
                }
            }
            now.insert(l.clone());
        }
        let mut written = lock(&self.written);
        if let Some(prev) = written.get(i) {
            for l in prev.difference(&now) {
                match a.append(None, l, t, STALE_NAN) {
                    Ok(_) => {}
                    Err(e) if e.is_sample_rejection() => {}
                    Err(e) => {
                        let _ = a.rollback();
                        return Err(format!("cannot append staleness marker: {e}"));
                    }
                }
            }
        }
        a.commit()
            .map_err(|e| format!("cannot commit rule result: {e}"))?;
        if rejected > 0 {
            tracing::warn!(group = %self.name, rejected, "rule results rejected by storage (out of order or duplicate)");
        }
        if let Some(w) = written.get_mut(i) {
            *w = now;
        }
        Ok(())
    }

    /// Restores the `active_at` of alerts from the newest `ALERTS_FOR_STATE` samples within the
    /// outage tolerance, as Prometheus does after a restart, then marks the rules restored.
    pub fn restore_for_state(&self, ctx: &EvalContext<'_>, t: i64, opts: RestoreOptions) {
        let min_t = t - opts.outage_tolerance_ms;
        let q = match ctx.queryable.querier(min_t, t) {
            Ok(q) => q,
            Err(e) => {
                tracing::error!(group = %self.name, error = %e, "cannot restore alert state");
                self.set_restored();
                return;
            }
        };
        for r in &self.rules {
            let Rule::Alerting(rule) = r else { continue };
            let hold = rule.hold_ms;
            let mut st = rule.lock();
            st.restored = true;
            if hold < opts.grace_period_ms {
                continue;
            }
            for a in st.active.values_mut() {
                let mut b = a.labels.builder();
                b.set(pharos_model::METRIC_NAME, "ALERTS_FOR_STATE");
                let want = b.build();
                let matchers: Vec<Matcher> = want
                    .iter()
                    .filter_map(|l| Matcher::new(MatchOp::Eq, &l.name, &l.value).ok())
                    .collect();
                let hints = SelectHints {
                    start: min_t,
                    end: t,
                    step: 0,
                    func: None,
                };
                let Ok(set) = q.select(&matchers, &hints) else {
                    continue;
                };
                let Some(mut s) = set.into_iter().find(|s| s.labels == want) else {
                    continue;
                };
                let mut last = None;
                while let Some(x) = s.samples.next() {
                    last = Some(x);
                }
                let Some(last) = last.filter(|x| !is_stale_nan(x.v)) else {
                    continue;
                };
                let down_at = last.t.div_euclid(1000) * 1000;
                let mut restored = (last.v as i64) * 1000;
                let spent = down_at - restored;
                let remaining = hold - spent;
                if remaining <= 0 {
                    // It was firing already; keep the old active time.
                } else if remaining < opts.grace_period_ms {
                    restored = t + opts.grace_period_ms - hold;
                } else {
                    restored += t - down_at;
                }
                a.active_at = restored;
                tracing::debug!(alert = %a.labels, active_at = restored, "restored alert for-state");
            }
        }
    }

    /// The alerting rules' active alerts, for the API.
    pub fn alerts(&self) -> Vec<super::rule::Alert> {
        let mut out = Vec::new();
        for r in &self.rules {
            if let Rule::Alerting(a) = r {
                out.extend(
                    a.lock()
                        .active
                        .values()
                        .filter(|a| a.state != super::rule::AlertState::Inactive)
                        .cloned(),
                );
            }
        }
        out
    }
}

/// A helper for tests and `pharos test rules`: the groups of several files.
pub fn groups_from_files(
    files: &[(String, super::file::RuleFile)],
    default_interval_ms: i64,
) -> Result<Vec<Group>> {
    let mut out = Vec::new();
    for (path, rf) in files {
        for g in &rf.groups {
            out.push(Group::from_desc(g, path, default_interval_ms)?);
        }
    }
    Ok(out)
}

/// Labels as a map (for templates and JSON).
pub fn labels_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}
