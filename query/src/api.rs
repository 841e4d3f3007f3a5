//! The Prometheus HTTP API (`/api/v1/*`) as an axum [`Router`].
//!
//! Parameters come from the query string and, for `POST`, from a form body, as in Prometheus.
//! Responses use the JSON envelope of [`pharos_model::api::Response`]; errors map to Prometheus'
//! status codes (400 `bad_data`, 422 `execution`, 503 `timeout`, 500 `internal`). Engine work runs
//! on tokio's blocking pool.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use axum::{Form, Json, Router};
use pharos_model::api::{ErrorType, Response, TargetsData, TargetsProvider, days_from_civil};
use pharos_model::storage::{Queryable, SelectHints};
use pharos_model::{Labels, Matcher};
use serde::Serialize;

use crate::ast::ValueType;
use crate::engine::{Engine, EngineOptions, EvalError};
use crate::parser;

/// Build information for `/api/v1/status/buildinfo`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    /// Version, e.g. `0.1.0`.
    pub version: String,
    /// VCS revision.
    pub revision: String,
    /// VCS branch.
    pub branch: String,
    /// Who built it.
    pub build_user: String,
    /// When it was built.
    pub build_date: String,
    /// The compiler (Prometheus reports the Go version; Pharos reports `rustc` version text).
    pub go_version: String,
}

/// Everything the API handlers need.
pub struct ApiState {
    /// The storage to query.
    pub queryable: Arc<dyn Queryable>,
    /// The PromQL engine.
    pub engine: Arc<Engine>,
    /// Current scrape targets.
    pub targets: Arc<dyn TargetsProvider>,
    /// Build information.
    pub build: BuildInfo,
    /// The loaded configuration file, for `/api/v1/status/config`.
    pub config_yaml: Arc<RwLock<String>>,
    /// Command-line flags, for `/api/v1/status/flags`.
    pub flags: BTreeMap<String, String>,
    /// Process start time (ms).
    pub start_time_ms: i64,
}

type Shared = Arc<ApiState>;

/// Most points a range query may return per series, as in Prometheus.
const MAX_POINTS: i64 = 11_000;
/// Default bounds of metadata queries without `start`/`end`.
const MIN_TIME: i64 = i64::MIN / 4;
const MAX_TIME: i64 = i64::MAX / 4;

/// The API routes with `state` applied.
pub fn router(state: ApiState) -> Router {
    let state: Shared = Arc::new(state);
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/query_exemplars", get(exemplars).post(exemplars))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/status/config", get(config))
        .route("/api/v1/status/flags", get(flags))
        .route("/api/v1/status/runtimeinfo", get(runtimeinfo))
        .route("/api/v1/status/tsdb", get(tsdb_status))
        .route("/federate", get(federate))
        .with_state(state)
}

/// An API error: its Prometheus type and message.
#[derive(Debug)]
pub struct ApiError {
    kind: ErrorType,
    msg: String,
}

impl ApiError {
    fn bad_data(msg: impl Into<String>) -> Self {
        Self {
            kind: ErrorType::BadData,
            msg: msg.into(),
        }
    }

    fn invalid_param(name: &str, err: impl std::fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter {name:?}: {err}"))
    }

    fn internal(msg: impl Into<String>) -> Self {
        Self {
            kind: ErrorType::Internal,
            msg: msg.into(),
        }
    }
}

impl From<EvalError> for ApiError {
    fn from(e: EvalError) -> Self {
        let kind = match &e {
            EvalError::Timeout(_) => ErrorType::Timeout,
            EvalError::Storage(_) => ErrorType::Internal,
            EvalError::Execution(_) | EvalError::TooManySamples(_) => ErrorType::Execution,
        };
        Self {
            kind,
            msg: e.to_string(),
        }
    }
}

impl From<pharos_model::storage::Error> for ApiError {
    fn from(e: pharos_model::storage::Error) -> Self {
        Self::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> HttpResponse {
        let status = StatusCode::from_u16(self.kind.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        tracing::debug!(error = %self.msg, "api error");
        (status, Json(Response::<()>::error(self.kind, self.msg))).into_response()
    }
}

type ApiResult<T> = Result<Json<Response<T>>, ApiError>;

fn ok<T>(data: T) -> ApiResult<T> {
    Ok(Json(Response::success(data)))
}

/// Request parameters: the query string plus, for a form `POST`, the body.
pub struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let mut out: Vec<(String, String)> = Query::try_from_uri(req.uri())
            .map(|Query(q)| q)
            .map_err(|e| ApiError::bad_data(format!("error parsing query string: {e}")))?;
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if req.method() == Method::POST && is_form {
            let Form(body): Form<Vec<(String, String)>> = Form::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_data(format!("error parsing form: {e}")))?;
            out.extend(body);
        }
        Ok(Params(out))
    }
}

/// Parses a time as Prometheus does: Unix seconds (float) or RFC 3339.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return None;
        }
        return Some((f * 1000.0).round() as i64);
    }
    parse_rfc3339(s)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` into ms.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        let padded: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = padded.parse().ok()?;
    }
    let offset_s = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6
            && tz.is_ascii()
            && (tz.starts_with('+') || tz.starts_with('-'))
            && &tz[3..4] == ":" =>
        {
            let oh: i64 = tz[1..3].parse().ok()?;
            let om: i64 = tz[4..6].parse().ok()?;
            let off = oh * 3600 + om * 60;
            if tz.starts_with('-') { -off } else { off }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(secs * 1000 + ms)
}

/// Parses a duration: float seconds or a PromQL duration such as `1m30s`; returns ms.
pub fn parse_duration_param(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = f * 1000.0;
        if !ms.is_finite() || ms.abs() > i64::MAX as f64 {
            return None;
        }
        return Some(ms.round() as i64);
    }
    parser::parse_duration(s)
}

fn time_param(p: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match p.get(name) {
        None | Some("") => Ok(default),
        Some(v) => parse_time(v).ok_or_else(|| {
            ApiError::invalid_param(name, format!("cannot parse {v:?} to a valid timestamp"))
        }),
    }
}

fn required_time(p: &Params, name: &str) -> Result<i64, ApiError> {
    let v = p.get(name).unwrap_or("");
    parse_time(v).ok_or_else(|| {
        ApiError::invalid_param(name, format!("cannot parse {v:?} to a valid timestamp"))
    })
}

/// An engine honouring the request's `timeout` (never longer than the configured one).
fn engine_for(st: &ApiState, p: &Params) -> Result<Engine, ApiError> {
    let Some(t) = p.get("timeout").filter(|t| !t.is_empty()) else {
        return Ok((*st.engine).clone());
    };
    let ms = parse_duration_param(t).ok_or_else(|| {
        ApiError::invalid_param("timeout", format!("cannot parse {t:?} to a valid duration"))
    })?;
    let base = st.engine.options();
    let timeout = base.timeout.min(Duration::from_millis(ms.max(0) as u64));
    Ok(Engine::new(EngineOptions {
        timeout,
        ..base.clone()
    }))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("query task failed: {e}")))?
}

async fn query(State(st): State<Shared>, p: Params) -> ApiResult<pharos_model::api::QueryData> {
    let q = p.get("query").unwrap_or("").to_string();
    let expr = parser::parse(&q).map_err(|e| ApiError::invalid_param("query", e))?;
    let t = time_param(&p, "time", pharos_model::now_ms())?;
    let engine = engine_for(&st, &p)?;
    let st2 = st.clone();
    let started = std::time::Instant::now();
    let v = blocking(move || Ok(engine.instant(&*st2.queryable, &expr, t)?)).await?;
    tracing::debug!(query = %q, t, elapsed = ?started.elapsed(), "instant query");
    ok(v.into_query_data())
}

async fn query_range(
    State(st): State<Shared>,
    p: Params,
) -> ApiResult<pharos_model::api::QueryData> {
    let start = required_time(&p, "start")?;
    let end = required_time(&p, "end")?;
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step_s = p.get("step").unwrap_or("");
    let step = parse_duration_param(step_s).ok_or_else(|| {
        ApiError::invalid_param(
            "step",
            format!("cannot parse {step_s:?} to a valid duration"),
        )
    })?;
    if step <= 0 {
        return Err(ApiError::invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let q = p.get("query").unwrap_or("").to_string();
    let expr = parser::parse(&q).map_err(|e| ApiError::invalid_param("query", e))?;
    match expr.value_type() {
        ValueType::Scalar | ValueType::Vector => {}
        t => {
            return Err(ApiError::invalid_param(
                "query",
                format!(
                    "invalid expression type \"{t}\" for range query, must be Scalar or instant Vector"
                ),
            ));
        }
    }
    let engine = engine_for(&st, &p)?;
    let st2 = st.clone();
    let started = std::time::Instant::now();
    let v = blocking(move || Ok(engine.range(&*st2.queryable, &expr, start, end, step)?)).await?;
    tracing::debug!(query = %q, start, end, step, elapsed = ?started.elapsed(), "range query");
    ok(v.into_query_data())
}

fn matcher_sets(p: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    p.all("match[]")
        .into_iter()
        .map(|m| parser::parse_metric_selector(m).map_err(|e| ApiError::bad_data(e.to_string())))
        .collect()
}

async fn series(State(st): State<Shared>, p: Params) -> ApiResult<Vec<Labels>> {
    let sets = matcher_sets(&p)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let start = time_param(&p, "start", MIN_TIME)?;
    let end = time_param(&p, "end", MAX_TIME)?;
    let out = blocking(move || {
        let q = st.queryable.querier(start, end)?;
        let mut all = BTreeSet::new();
        for m in &sets {
            let hints = SelectHints {
                start,
                end,
                step: 0,
                func: Some("series".into()),
            };
            for s in q.select(m, &hints)? {
                all.insert(s.labels);
            }
        }
        Ok(all.into_iter().collect())
    })
    .await?;
    ok(out)
}

async fn labels(State(st): State<Shared>, p: Params) -> ApiResult<Vec<String>> {
    let sets = matcher_sets(&p)?;
    let start = time_param(&p, "start", MIN_TIME)?;
    let end = time_param(&p, "end", MAX_TIME)?;
    let out = blocking(move || {
        let q = st.queryable.querier(start, end)?;
        let mut all = BTreeSet::new();
        if sets.is_empty() {
            all.extend(q.label_names(&[])?);
        }
        for m in &sets {
            all.extend(q.label_names(m)?);
        }
        Ok(all.into_iter().collect())
    })
    .await?;
    ok(out)
}

async fn label_values(
    State(st): State<Shared>,
    Path(name): Path<String>,
    p: Params,
) -> ApiResult<Vec<String>> {
    let valid = {
        let mut c = name.chars();
        matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !valid {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let sets = matcher_sets(&p)?;
    let start = time_param(&p, "start", MIN_TIME)?;
    let end = time_param(&p, "end", MAX_TIME)?;
    let out = blocking(move || {
        let q = st.queryable.querier(start, end)?;
        let mut all = BTreeSet::new();
        if sets.is_empty() {
            all.extend(q.label_values(&name, &[])?);
        }
        for m in &sets {
            all.extend(q.label_values(&name, m)?);
        }
        Ok(all.into_iter().collect())
    })
    .await?;
    ok(out)
}

async fn targets(State(st): State<Shared>, p: Params) -> ApiResult<TargetsData> {
    let state = p.get("state").unwrap_or("").to_ascii_lowercase();
    let show_active = matches!(state.as_str(), "" | "any" | "active");
    let mut data = TargetsData::default();
    if show_active {
        data.active_targets = st.targets.active_targets();
    }
    ok(data)
}

async fn metadata() -> ApiResult<BTreeMap<String, serde_json::Value>> {
    ok(BTreeMap::new())
}

async fn exemplars() -> ApiResult<Vec<serde_json::Value>> {
    ok(Vec::new())
}

async fn rules() -> ApiResult<serde_json::Value> {
    ok(serde_json::json!({ "groups": [] }))
}

async fn alerts() -> ApiResult<serde_json::Value> {
    ok(serde_json::json!({ "alerts": [] }))
}

async fn buildinfo(State(st): State<Shared>) -> ApiResult<BuildInfo> {
    ok(st.build.clone())
}

async fn config(State(st): State<Shared>) -> ApiResult<serde_json::Value> {
    let yaml = st.config_yaml.read().map(|s| s.clone()).unwrap_or_default();
    ok(serde_json::json!({ "yaml": yaml }))
}

async fn flags(State(st): State<Shared>) -> ApiResult<BTreeMap<String, String>> {
    ok(st.flags.clone())
}

async fn runtimeinfo(State(st): State<Shared>) -> ApiResult<serde_json::Value> {
    let start = pharos_model::api::format_rfc3339(st.start_time_ms);
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let procs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let retention = st
        .flags
        .get("storage.tsdb.retention.time")
        .cloned()
        .unwrap_or_else(|| "15d".to_string());
    ok(serde_json::json!({
        "startTime": start,
        "CWD": cwd,
        "reloadConfigSuccess": true,
        "lastConfigTime": start,
        "corruptionCount": 0,
        "goroutineCount": 0,
        "GOMAXPROCS": procs,
        "GOMEMLIMIT": 0,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": retention,
    }))
}

/// How far back `/api/v1/status/tsdb` looks: roughly what Prometheus keeps in its head block.
const HEAD_WINDOW_MS: i64 = 3 * 3_600_000;

/// One `{name, value}` row of the TSDB status.
#[derive(Debug, Serialize, PartialEq)]
struct Stat {
    name: String,
    value: u64,
}

/// The ten largest entries, largest first (ties by name).
fn top10(m: BTreeMap<String, u64>) -> Vec<Stat> {
    let mut v: Vec<Stat> = m
        .into_iter()
        .map(|(name, value)| Stat { name, value })
        .collect();
    v.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
    v.truncate(10);
    v
}

/// `/api/v1/status/tsdb`: cardinality statistics of the series with samples in the last
/// [`HEAD_WINDOW_MS`], in Prometheus' shape (`chunkCount` is not known through `Queryable`
/// and is reported as 0).
async fn tsdb_status(State(st): State<Shared>) -> ApiResult<serde_json::Value> {
    let now = pharos_model::now_ms();
    let data = blocking(move || {
        let start = now - HEAD_WINDOW_MS;
        let q = st.queryable.querier(start, now)?;
        let all = Matcher::new(pharos_model::MatchOp::Re, pharos_model::METRIC_NAME, ".+")
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let hints = SelectHints {
            start,
            end: now,
            step: 0,
            func: Some("series".into()),
        };
        let (mut by_metric, mut pairs) = (BTreeMap::new(), BTreeMap::new());
        let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let (mut num_series, mut num_pairs) = (0u64, 0u64);
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        for mut s in q.select(&[all], &hints)? {
            let mut any = false;
            while let Some(x) = s.samples.next() {
                min_t = min_t.min(x.t);
                max_t = max_t.max(x.t);
                any = true;
            }
            if !any {
                continue;
            }
            num_series += 1;
            *by_metric
                .entry(s.labels.metric_name().unwrap_or("").to_string())
                .or_insert(0) += 1;
            for l in s.labels.iter() {
                num_pairs += 1;
                *pairs.entry(format!("{}={}", l.name, l.value)).or_insert(0) += 1;
                values
                    .entry(l.name.clone())
                    .or_default()
                    .insert(l.value.clone());
            }
        }
        let value_counts = values
            .iter()
            .map(|(k, v)| (k.clone(), v.len() as u64))
            .collect();
        let memory = values
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().map(|s| s.len() as u64).sum()))
            .collect();
        let (min_t, max_t) = if num_series == 0 {
            (0, 0)
        } else {
            (min_t, max_t)
        };
        Ok(serde_json::json!({
            "headStats": {
                "numSeries": num_series,
                "numLabelPairs": num_pairs,
                "chunkCount": 0,
                "minTime": min_t,
                "maxTime": max_t,
            },
            "seriesCountByMetricName": top10(by_metric),
            "labelValueCountByLabelName": top10(value_counts),
            "memoryInBytesByLabelName": top10(memory),
            "seriesCountByLabelValuePair": top10(pairs),
        }))
    })
    .await?;
    ok(data)
}

/// `/federate`: the newest sample (within the lookback delta) of every series matching any
/// `match[]`, in the text format, grouped by metric name, with timestamps.
async fn federate(State(st): State<Shared>, p: Params) -> Result<HttpResponse, ApiError> {
    let sets = match matcher_sets(&p) {
        Ok(s) => s,
        Err(e) => return Ok((StatusCode::BAD_REQUEST, e.msg).into_response()),
    };
    let now = pharos_model::now_ms();
    let lookback = st.engine.options().lookback_delta.as_millis() as i64;
    let text = blocking(move || {
        let q = st.queryable.querier(now - lookback, now)?;
        // Keyed by (name, labels) so each family's lines are contiguous.
        let mut latest: BTreeMap<(String, Labels), (i64, f64)> = BTreeMap::new();
        for m in &sets {
            let hints = SelectHints {
                start: now - lookback,
                end: now,
                step: 0,
                func: Some("series".into()),
            };
            for mut s in q.select(m, &hints)? {
                let mut last = None;
                while let Some(x) = s.samples.next() {
                    if x.t <= now {
                        last = Some(x);
                    }
                }
                if let Some(x) = last.filter(|x| !pharos_model::is_stale_nan(x.v)) {
                    let name = s.labels.metric_name().unwrap_or("").to_string();
                    latest.insert((name, s.labels), (x.t, x.v));
                }
            }
        }
        let mut families: Vec<pharos_model::expfmt::MetricFamily> = Vec::new();
        for ((name, labels), (t, v)) in latest {
            if families.last().is_none_or(|f| f.name != name) {
                families.push(pharos_model::expfmt::MetricFamily::new(
                    name.clone(),
                    "",
                    pharos_model::expfmt::MetricType::Untyped,
                ));
            }
            if let Some(f) = families.last_mut() {
                f.samples.push(pharos_model::expfmt::MetricSample {
                    name,
                    labels: labels
                        .iter()
                        .filter(|l| l.name != pharos_model::METRIC_NAME)
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect(),
                    value: v,
                    timestamp: Some(t),
                });
            }
        }
        let mut out = String::new();
        pharos_model::expfmt::write_text(&mut out, &families);
        Ok(out)
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

#[cfg(test)]
mod tests;
