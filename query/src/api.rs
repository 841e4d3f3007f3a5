//! The Prometheus HTTP API (`/api/v1/*`) as an axum [`Router`].
//!
//! Parameters come from the query string and, for `POST`, from a form body, as in Prometheus.
//! Responses use the JSON envelope of [`pharos_model::api::Response`]; errors map to Prometheus'
//! status codes (400 `bad_data`, 422 `execution`, 503 `timeout`, 500 `internal`). Engine work runs
//! on tokio's blocking pool, at most [`MAX_CONCURRENT_QUERIES`] at a time (the rest queue).
//!
//! The bytes follow Prometheus 2.42 (see [`json`]): the golden test in
//! `tests/integration/api_golden.rs` compares every endpoint with the real Prometheus. Responses
//! are gzip-compressed when the client accepts it, as Prometheus does. Large answers (query
//! results, series, label lists, `/federate`) are streamed with chunked transfer encoding and
//! compressed as they are written (see [`stream`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::{Form, Router};
use pharos_model::api::{
    ErrorType, QueryData, Response, TargetsData, TargetsProvider, days_from_civil,
};
use pharos_model::storage::{Admin, Queryable, SelectHints};
use pharos_model::{Labels, Matcher};
use serde::Serialize;

use crate::ast::ValueType;
use crate::engine::{Engine, EngineOptions, EvalError};
use crate::parser;

pub mod json;
pub mod stream;

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
    /// Rule groups and alerts for `/api/v1/rules` and `/api/v1/alerts` (none: empty lists).
    pub rules: Option<Arc<dyn crate::rules::json::RulesProvider>>,
    /// Outcome of the latest configuration (re)load, for `/api/v1/status/runtimeinfo`.
    pub reload: Arc<ReloadStatus>,
    /// The storage's admin operations (`/api/v1/admin/tsdb/*`, with `--web.enable-admin-api`);
    /// snapshots go to `snapshots/` under the `storage.tsdb.path` flag.
    pub admin: Option<Arc<dyn Admin>>,
}

/// The state the handlers share: the caller's [`ApiState`] and the query queue.
struct Inner {
    st: ApiState,
    /// Limits the queries evaluated at once; the others wait for a permit.
    queries: tokio::sync::Semaphore,
}

impl std::ops::Deref for Inner {
    type Target = ApiState;
    fn deref(&self) -> &ApiState {
        &self.st
    }
}

type Shared = Arc<Inner>;

/// Queries evaluated at once unless the flags say otherwise (`query.max-concurrency`, whose
/// default in Prometheus is also 20); more wait in a queue.
pub const MAX_CONCURRENT_QUERIES: usize = 20;
/// Most points a range query may return per series, as in Prometheus.
const MAX_POINTS: i64 = 11_000;
/// Default bounds of metadata queries without `start`/`end`.
const MIN_TIME: i64 = i64::MIN / 4;
const MAX_TIME: i64 = i64::MAX / 4;

/// The API routes with `state` applied.
pub fn router(state: ApiState) -> Router {
    // `--query.max-concurrency`, as the binary records it in the flags.
    let slots = state
        .flags
        .get("query.max-concurrency")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(MAX_CONCURRENT_QUERIES);
    let state: Shared = Arc::new(Inner {
        st: state,
        queries: tokio::sync::Semaphore::new(slots),
    });
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/query_exemplars", get(exemplars).post(exemplars))
        .route("/api/v1/format_query", get(format_query).post(format_query))
        .route(
            "/api/v1/series",
            get(series).post(series).delete(drop_series),
        )
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/targets/metadata", get(targets_metadata))
        .route("/api/v1/alertmanagers", get(alertmanagers))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/status/config", get(config))
        .route("/api/v1/status/flags", get(flags))
        .route("/api/v1/status/runtimeinfo", get(runtimeinfo))
        .route("/api/v1/status/tsdb", get(tsdb_status))
        .route("/api/v1/status/walreplay", get(walreplay))
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(admin_delete_series).put(admin_delete_series),
        )
        .route(
            "/api/v1/admin/tsdb/clean_tombstones",
            post(admin_clean_tombstones).put(admin_clean_tombstones),
        )
        .route(
            "/api/v1/admin/tsdb/snapshot",
            post(admin_snapshot).put(admin_snapshot),
        )
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
        .route("/federate", get(federate))
        .layer(middleware::from_fn(gzip))
        .layer(middleware::from_fn(go_http))
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

    fn unavailable(msg: impl Into<String>) -> Self {
        Self {
            kind: ErrorType::Unavailable,
            msg: msg.into(),
        }
    }

    /// The status code Prometheus 2.42 answers with: it has no case for `unavailable`, which
    /// therefore falls to 500 like `internal`.
    fn status(&self) -> StatusCode {
        match self.kind {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Canceled => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::Internal | ErrorType::Unavailable => StatusCode::INTERNAL_SERVER_ERROR,
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
        tracing::debug!(error = %self.msg, "api error");
        let status = self.status();
        let mut out = Vec::with_capacity(self.msg.len() + 64);
        out.extend_from_slice(b"{\"status\":\"error\",\"errorType\":");
        let kind = serde_json::to_value(self.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        json::write_str(&mut out, &kind);
        out.extend_from_slice(b",\"error\":");
        json::write_str(&mut out, &self.msg);
        out.push(b'}');
        json_response(status, out)
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// A success envelope serialized as Prometheus does (see [`json`]).
#[derive(Debug)]
pub struct GoJson<T>(Response<T>);

impl<T: Serialize> IntoResponse for GoJson<T> {
    fn into_response(self) -> HttpResponse {
        let mut out = Vec::new();
        match json::write_serde(&mut out, &self.0) {
            Ok(()) => json_response(StatusCode::OK, out),
            Err(e) => ApiError::internal(format!("error marshaling response: {e}")).into_response(),
        }
    }
}

type ApiResult<T> = Result<GoJson<T>, ApiError>;

fn ok<T>(data: T) -> ApiResult<T> {
    Ok(GoJson(Response::success(data)))
}

/// Answers with a JSON body written by `write`, streamed when large (see [`stream`]).
async fn streamed_json(
    write: impl FnOnce(&mut stream::ChunkWriter) -> std::io::Result<()> + Send + 'static,
) -> HttpResponse {
    stream::respond("application/json", write, |e| {
        ApiError::internal(format!("error marshaling response: {e}")).into_response()
    })
    .await
}

/// A query result with `warnings` (written by hand: these are the large responses).
async fn ok_query(data: QueryData, warnings: Vec<String>) -> HttpResponse {
    streamed_json(move |w| {
        std::io::Write::write_all(w, b"{\"status\":\"success\",\"data\":")?;
        json::write_query_data(w, &data)?;
        let mut out = Vec::new();
        write_warnings(&mut out, &warnings);
        out.push(b'}');
        std::io::Write::write_all(w, &out)
    })
    .await
}

/// A success envelope with warnings, serialized as [`GoJson`] does but streamed when large.
async fn ok_streamed<T: Serialize + Send + 'static>(
    data: T,
    warnings: Vec<String>,
) -> HttpResponse {
    let mut r = Response::success(data);
    r.warnings = warnings;
    streamed_json(move |w| json::write_serde(w, &r).map_err(std::io::Error::other)).await
}

fn write_warnings(out: &mut Vec<u8>, warnings: &[String]) {
    if warnings.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"warnings\":[");
    for (i, w) in warnings.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_str(out, w);
    }
    out.push(b']');
}

/// What Prometheus' HTTP layer adds around the handlers: CORS headers for browsers (its default
/// `--web.cors.origin` accepts any origin), `204` to `OPTIONS` pre-flight requests, and Go's
/// plain-text `405 Method Not Allowed`.
async fn go_http(req: Request, next: Next) -> HttpResponse {
    let has_origin = req.headers().contains_key(header::ORIGIN);
    let mut resp = if req.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let resp = next.run(req).await;
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED
            && !resp.headers().contains_key(header::CONTENT_TYPE)
        {
            let mut r = (
                StatusCode::METHOD_NOT_ALLOWED,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                "Method Not Allowed\n",
            )
                .into_response();
            if let Some(allow) = resp.headers().get(header::ALLOW) {
                r.headers_mut().insert(header::ALLOW, allow.clone());
            }
            r
        } else {
            resp
        }
    };
    if has_origin {
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Accept, Authorization, Content-Type, Origin"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        // Prometheus' default origin pattern `.*` answers with `*`.
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Date"),
        );
    }
    resp
}

/// Headers of a gzip-compressed answer: the encoding, no length (it changed), `Vary`.
fn mark_gzipped(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
}

/// Compresses the body with gzip when the client accepts it (as Prometheus' API does).
async fn gzip(req: Request, next: Next) -> HttpResponse {
    let accepts = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|e| {
                let mut it = e.split(';');
                it.next()
                    .is_some_and(|n| n.trim().eq_ignore_ascii_case("gzip"))
                    && it.all(|q| q.trim() != "q=0")
            })
        });
    let resp = next.run(req).await;
    if !accepts || resp.headers().contains_key(header::CONTENT_ENCODING) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    if axum::body::HttpBody::size_hint(&body).exact().is_none() {
        // A streamed body: compress its pieces as they come.
        mark_gzipped(&mut parts.headers);
        let z = axum::body::Body::from_stream(stream::GzipStream::new(body));
        return HttpResponse::from_parts(parts, z);
    }
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::internal(format!("cannot read response body: {e}")).into_response();
        }
    };
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let compressed = std::io::Write::write_all(&mut enc, &bytes).and_then(|()| enc.finish());
    match compressed {
        Ok(z) => {
            mark_gzipped(&mut parts.headers);
            HttpResponse::from_parts(parts, axum::body::Body::from(z))
        }
        Err(e) => ApiError::internal(format!("cannot compress response: {e}")).into_response(),
    }
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
        let query: Vec<(String, String)> = Query::try_from_uri(req.uri())
            .map(|Query(q)| q)
            .map_err(|e| ApiError::bad_data(format!("error parsing query string: {e}")))?;
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        // As Go's Request.ParseForm: body parameters of POST/PUT/PATCH come first, so a single
        // value (`FormValue`) is taken from the body when both carry it.
        let mut out = Vec::new();
        if matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) && is_form {
            let Form(body): Form<Vec<(String, String)>> = Form::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_data(format!("error parsing form: {e}")))?;
            out.extend(body);
        }
        out.extend(query);
        Ok(Params(out))
    }
}

/// Parses a time as Prometheus does: Unix seconds (float, rounded to the millisecond the way
/// Go's `math.Modf`/`math.Round` do it) or RFC 3339; returns ms.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return None;
        }
        let secs = f.trunc();
        let frac = ((f - secs) * 1000.0).round() / 1000.0;
        // Nanoseconds as Go's int64 conversion truncates them, then floor to ms as
        // timestamp.FromTime does after time.Unix normalises them.
        let total_ns = (secs as i128) * 1_000_000_000 + (frac * 1e9) as i128;
        let ms = total_ns.div_euclid(1_000_000);
        return i64::try_from(ms).ok();
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

/// Parses a duration as Prometheus' API does: float seconds (to whole nanoseconds, truncated,
/// then to whole milliseconds, truncated, as the engine sees it) or a PromQL duration such as
/// `1m30s`; returns ms.
pub fn parse_duration_param(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        let ns = f * 1e9;
        if !ns.is_finite() || ns.abs() >= i64::MAX as f64 {
            return None;
        }
        return Some((ns as i64) / 1_000_000);
    }
    parser::parse_duration(s)
}

/// An optional time parameter (Prometheus' `parseTimeParam`: its errors say which value failed).
fn time_param(p: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match p.get(name) {
        None | Some("") => Ok(default),
        Some(v) => parse_time(v).ok_or_else(|| {
            ApiError::invalid_param(
                name,
                format!("Invalid time value for '{name}': cannot parse {v:?} to a valid timestamp"),
            )
        }),
    }
}

/// A required time parameter (Prometheus' `parseTime`).
fn required_time(p: &Params, name: &str) -> Result<i64, ApiError> {
    let v = p.get(name).unwrap_or("");
    parse_time(v).ok_or_else(|| {
        ApiError::invalid_param(name, format!("cannot parse {v:?} to a valid timestamp"))
    })
}

/// The optional `limit` parameter (0 or absent: no limit).
fn limit_param(p: &Params) -> Result<usize, ApiError> {
    match p.get("limit") {
        None | Some("") => Ok(0),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            Ok(_) => Err(ApiError::invalid_param(
                "limit",
                "limit must be non-negative",
            )),
            Err(_) => Err(ApiError::invalid_param(
                "limit",
                format!("strconv.Atoi: parsing {v:?}: invalid syntax"),
            )),
        },
    }
}

/// Truncates `v` to `limit` entries (0: all), with the warning Prometheus gives.
fn apply_limit<T>(v: &mut Vec<T>, limit: usize) -> Vec<String> {
    if limit > 0 && v.len() > limit {
        v.truncate(limit);
        vec!["results truncated due to limit".to_string()]
    } else {
        Vec::new()
    }
}

/// When the request's `timeout` runs out (none: the engine's own timeout applies).
fn deadline_for(p: &Params) -> Result<Option<std::time::Instant>, ApiError> {
    let Some(t) = p.get("timeout").filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    // Float seconds keep their nanoseconds here (a timeout of 0.000001 is 1µs, not 0).
    let ns = match t.parse::<f64>() {
        Ok(f) if (f * 1e9).is_finite() && (f * 1e9).abs() < i64::MAX as f64 => {
            Some((f * 1e9) as i64)
        }
        Ok(_) => None,
        Err(_) => parser::parse_duration(t).map(|ms| ms.saturating_mul(1_000_000)),
    };
    let ns = ns.ok_or_else(|| {
        ApiError::invalid_param("timeout", format!("cannot parse {t:?} to a valid duration"))
    })?;
    Ok(Some(
        std::time::Instant::now() + Duration::from_nanos(ns.max(0) as u64),
    ))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("query task failed: {e}")))?
}

/// Runs `f` with an engine once a query slot is free. As in Prometheus, a request whose
/// `timeout` runs out while queued fails "in query queue", one that has run out when its turn
/// comes fails "in query execution", and the engine reports later timeouts itself.
async fn evaluate<T: Send + 'static>(
    st: &Shared,
    deadline: Option<std::time::Instant>,
    f: impl FnOnce(&Engine) -> Result<T, EvalError> + Send + 'static,
) -> Result<T, ApiError> {
    let timed_out = |stage: &'static str| ApiError::from(EvalError::Timeout(stage));
    let permit = match deadline {
        Some(d) => tokio::time::timeout_at(d.into(), st.queries.acquire())
            .await
            .map_err(|_| timed_out("query queue"))?,
        None => st.queries.acquire().await,
    };
    let _permit = permit.map_err(|e| ApiError::internal(format!("query queue closed: {e}")))?;
    let engine = match deadline {
        None => (*st.engine).clone(),
        Some(d) => {
            let left = d.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(timed_out("query execution"));
            }
            let base = st.engine.options();
            Engine::new(EngineOptions {
                timeout: base.timeout.min(left),
                ..base.clone()
            })
        }
    };
    blocking(move || Ok(f(&engine)?)).await
}

async fn query(State(st): State<Shared>, p: Params) -> Result<HttpResponse, ApiError> {
    let t = time_param(&p, "time", pharos_model::now_ms())?;
    let deadline = deadline_for(&p)?;
    let q = p.get("query").unwrap_or("").to_string();
    let expr = parser::parse(&q).map_err(|e| ApiError::invalid_param("query", e))?;
    let limit = limit_param(&p)?;
    let st2 = st.clone();
    let started = std::time::Instant::now();
    let v = evaluate(&st, deadline, move |e| e.instant(&*st2.queryable, &expr, t)).await?;
    tracing::debug!(query = %q, t, elapsed = ?started.elapsed(), "instant query");
    let mut data = v.into_query_data();
    let warnings = match &mut data {
        QueryData::Vector(v) => apply_limit(v, limit),
        QueryData::Matrix(m) => apply_limit(m, limit),
        _ => Vec::new(),
    };
    Ok(ok_query(data, warnings).await)
}

async fn query_range(State(st): State<Shared>, p: Params) -> Result<HttpResponse, ApiError> {
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
    let deadline = deadline_for(&p)?;
    let q = p.get("query").unwrap_or("").to_string();
    // Unlike instant queries, Prometheus does not name the parameter in these errors.
    let expr = parser::parse(&q).map_err(|e| ApiError::bad_data(e.to_string()))?;
    match expr.value_type() {
        ValueType::Scalar | ValueType::Vector => {}
        t => {
            return Err(ApiError::bad_data(format!(
                "invalid expression type \"{t}\" for range query, must be Scalar or instant Vector"
            )));
        }
    }
    let limit = limit_param(&p)?;
    let st2 = st.clone();
    let started = std::time::Instant::now();
    let v = evaluate(&st, deadline, move |e| {
        e.range(&*st2.queryable, &expr, start, end, step)
    })
    .await?;
    tracing::debug!(query = %q, start, end, step, elapsed = ?started.elapsed(), "range query");
    let mut data = v.into_query_data();
    let warnings = match &mut data {
        QueryData::Matrix(m) => apply_limit(m, limit),
        _ => Vec::new(),
    };
    Ok(ok_query(data, warnings).await)
}

/// `/api/v1/format_query`: the expression printed in PromQL's canonical form.
async fn format_query(p: Params) -> ApiResult<String> {
    let q = p.get("query").unwrap_or("");
    let expr = parser::parse(q).map_err(|e| ApiError::invalid_param("query", e))?;
    ok(expr.to_string())
}

/// Parses every `match[]`; `param` names the parameter in errors (Prometheus does so for
/// `/series` only).
fn matcher_sets(p: &Params, param: bool) -> Result<Vec<Vec<Matcher>>, ApiError> {
    p.all("match[]")
        .into_iter()
        .map(|m| matcher_set(m, param))
        .collect()
}

/// Parses one `match[]` (see [`matcher_sets`]).
fn matcher_set(m: &str, param: bool) -> Result<Vec<Matcher>, ApiError> {
    let wrap = |e: String| {
        if param {
            ApiError::invalid_param("match[]", e)
        } else {
            ApiError::bad_data(e)
        }
    };
    match parser::parse_metric_selector(m) {
        Ok(ms) => Ok(ms),
        Err(e)
            if e.to_string()
                .contains("must contain at least one non-empty matcher") =>
        {
            Err(wrap(
                "match[] must contain at least one non-empty matcher".into(),
            ))
        }
        Err(e) => Err(wrap(e.to_string())),
    }
}

async fn series(State(st): State<Shared>, p: Params) -> Result<HttpResponse, ApiError> {
    if p.get("match[]").is_none() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let start = time_param(&p, "start", MIN_TIME)?;
    let end = time_param(&p, "end", MAX_TIME)?;
    let sets = matcher_sets(&p, true)?;
    let limit = limit_param(&p)?;
    let mut out: Vec<Labels> = blocking(move || {
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
    let warnings = apply_limit(&mut out, limit);
    Ok(ok_streamed(out, warnings).await)
}

async fn labels(State(st): State<Shared>, p: Params) -> Result<HttpResponse, ApiError> {
    let start = time_param(&p, "start", MIN_TIME)?;
    let end = time_param(&p, "end", MAX_TIME)?;
    let sets = matcher_sets(&p, false)?;
    let limit = limit_param(&p)?;
    let mut out: Vec<String> = blocking(move || {
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
    let warnings = apply_limit(&mut out, limit);
    Ok(ok_streamed(out, warnings).await)
}

async fn label_values(
    State(st): State<Shared>,
    Path(name): Path<String>,
    p: Params,
) -> Result<HttpResponse, ApiError> {
    let valid = {
        let mut c = name.chars();
        matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !valid {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let start = time_param(&p, "start", MIN_TIME)?;
    let end = time_param(&p, "end", MAX_TIME)?;
    let sets = matcher_sets(&p, false)?;
    let limit = limit_param(&p)?;
    let mut out: Vec<String> = blocking(move || {
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
    let warnings = apply_limit(&mut out, limit);
    Ok(ok_streamed(out, warnings).await)
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

/// `/api/v1/targets/metadata`: Pharos keeps no per-target metadata yet, so the list is empty;
/// the parameters are validated as Prometheus does.
async fn targets_metadata(p: Params) -> ApiResult<Vec<serde_json::Value>> {
    limit_param(&p)?;
    if let Some(m) = p.get("match_target").filter(|m| !m.is_empty()) {
        parser::parse_metric_selector(m).map_err(|e| ApiError::bad_data(e.to_string()))?;
    }
    ok(Vec::new())
}

/// `data` of `/api/v1/alertmanagers`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertmanagersData {
    active_alertmanagers: Vec<serde_json::Value>,
    dropped_alertmanagers: Vec<serde_json::Value>,
}

async fn alertmanagers() -> ApiResult<AlertmanagersData> {
    ok(AlertmanagersData::default())
}

async fn metadata() -> ApiResult<BTreeMap<String, serde_json::Value>> {
    ok(BTreeMap::new())
}

/// `/api/v1/query_exemplars`: Pharos stores no exemplars; the parameters and the query are
/// validated as Prometheus does and the list is empty.
async fn exemplars(p: Params) -> ApiResult<Vec<serde_json::Value>> {
    let start = time_param(&p, "start", MIN_TIME)?;
    let end = time_param(&p, "end", MAX_TIME)?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start timestamp",
        ));
    }
    parser::parse(p.get("query").unwrap_or("")).map_err(|e| ApiError::bad_data(e.to_string()))?;
    ok(Vec::new())
}

/// `/api/v1/rules` with `type` (`alert`/`record`), `rule_name[]`, `rule_group[]`, `file[]`.
async fn rules(State(st): State<Shared>, p: Params) -> ApiResult<crate::rules::json::RulesData> {
    let alerting = match p.get("type").unwrap_or("").to_ascii_lowercase().as_str() {
        "" => None,
        "alert" => Some(true),
        "record" => Some(false),
        t => {
            return Err(ApiError::invalid_param(
                "type",
                format!("not supported value {t:?}"),
            ));
        }
    };
    let filter = crate::rules::json::RulesFilter {
        alerting,
        rule_names: p
            .all("rule_name[]")
            .into_iter()
            .map(str::to_string)
            .collect(),
        group_names: p
            .all("rule_group[]")
            .into_iter()
            .map(str::to_string)
            .collect(),
        files: p.all("file[]").into_iter().map(str::to_string).collect(),
    };
    ok(st
        .rules
        .as_ref()
        .map(|r| r.rule_groups(&filter))
        .unwrap_or_default())
}

/// `/api/v1/alerts`: pending and firing alerts.
async fn alerts(State(st): State<Shared>) -> ApiResult<crate::rules::json::AlertsData> {
    ok(st.rules.as_ref().map(|r| r.alerts()).unwrap_or_default())
}

/// Whether the admin endpoints are on (`--web.enable-admin-api`, seen in the flags).
fn admin_enabled(st: &ApiState) -> Result<(), ApiError> {
    match st.flags.get("web.enable-admin-api").map(String::as_str) {
        Some("true") => Ok(()),
        _ => Err(ApiError::unavailable("admin APIs disabled")),
    }
}

/// The storage's admin operations, when the admin API is on.
fn admin_storage(st: &ApiState) -> Result<Arc<dyn Admin>, ApiError> {
    admin_enabled(st)?;
    st.admin
        .clone()
        .ok_or_else(|| ApiError::unavailable("admin APIs disabled"))
}

/// `POST|PUT /api/v1/admin/tsdb/delete_series`: tombstones for the samples of the series of
/// each `match[]` between `start` and `end` (default: all time); `204 No Content`.
async fn admin_delete_series(
    State(st): State<Shared>,
    p: Params,
) -> Result<HttpResponse, ApiError> {
    let admin = admin_storage(&st)?;
    if p.get("match[]").is_none() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let start = time_param(&p, "start", MIN_TIME)?;
    let end = time_param(&p, "end", MAX_TIME)?;
    // As Prometheus: one `match[]` after the other, so those before a bad one are deleted.
    let sets: Vec<String> = p.all("match[]").into_iter().map(str::to_string).collect();
    blocking(move || {
        for m in &sets {
            let m = matcher_set(m, true)?;
            admin
                .delete_series(start, end, &m)
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST|PUT /api/v1/admin/tsdb/clean_tombstones`: rewrites the data without the deleted
/// samples; `204 No Content`.
async fn admin_clean_tombstones(State(st): State<Shared>) -> Result<HttpResponse, ApiError> {
    let admin = admin_storage(&st)?;
    blocking(move || {
        admin
            .clean_tombstones()
            .map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `data` of `/api/v1/admin/tsdb/snapshot`.
#[derive(Debug, Serialize)]
struct SnapshotData {
    name: String,
}

/// A snapshot's directory name as Prometheus makes it: the UTC time as `YYYYMMDDTHHMMSSZ`, a
/// dash and 16 hex digits of a random non-negative 63-bit number.
fn snapshot_name(now_ms: i64) -> String {
    use std::hash::{BuildHasher, Hasher};
    let secs = now_ms.div_euclid(1000);
    let (y, mo, d) = pharos_model::api::civil_from_days(secs.div_euclid(86_400));
    let tod = secs.rem_euclid(86_400);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now_ms);
    let r = h.finish() >> 1;
    format!(
        "{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z-{r:016x}",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// `POST|PUT /api/v1/admin/tsdb/snapshot` (`skip_head`): writes a snapshot to
/// `<data>/snapshots/<name>` and answers its name.
async fn admin_snapshot(State(st): State<Shared>, p: Params) -> ApiResult<SnapshotData> {
    let admin = admin_storage(&st)?;
    const TRUE: [&str; 6] = ["1", "t", "T", "true", "TRUE", "True"];
    const FALSE: [&str; 6] = ["0", "f", "F", "false", "FALSE", "False"];
    let skip_head = match p.get("skip_head").unwrap_or("") {
        "" => false,
        v if TRUE.contains(&v) => true,
        v if FALSE.contains(&v) => false,
        v => {
            return Err(ApiError::invalid_param(
                "skip_head",
                format!(
                    "unable to parse boolean: strconv.ParseBool: parsing {v:?}: invalid syntax"
                ),
            ));
        }
    };
    let data_dir = std::path::PathBuf::from(
        st.flags
            .get("storage.tsdb.path")
            .map(String::as_str)
            .unwrap_or("data/"),
    );
    let name = snapshot_name(pharos_model::now_ms());
    let snapdir = data_dir.join("snapshots").join(&name);
    blocking(move || {
        std::fs::create_dir_all(&snapdir)
            .map_err(|e| ApiError::internal(format!("create snapshot directory: {e}")))?;
        admin
            .snapshot(&snapdir, skip_head)
            .map_err(|e| ApiError::internal(format!("create snapshot: {e}")))
    })
    .await?;
    ok(SnapshotData { name })
}

/// `data` of `/api/v1/status/walreplay`: the WAL segments replayed at start-up.
#[derive(Debug, Default, Serialize)]
struct WalReplay {
    min: u64,
    max: u64,
    current: u64,
}

/// `/api/v1/status/walreplay`: the server answers only once storage is open, so the replay is
/// over; the segment numbers are not known through `Queryable` and are reported as 0.
async fn walreplay() -> ApiResult<WalReplay> {
    ok(WalReplay::default())
}

/// `DELETE /api/v1/series`: not implemented, in the words of Prometheus 2.42.
async fn drop_series() -> Result<HttpResponse, ApiError> {
    Err(ApiError::internal("not implemented"))
}

/// Unknown `/api/v1/...` paths: Go's plain-text 404.
async fn not_found() -> HttpResponse {
    (
        StatusCode::NOT_FOUND,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        "404 page not found\n",
    )
        .into_response()
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

/// `data` of `/api/v1/status/runtimeinfo`, fields in Prometheus 2.42's order.
#[derive(Debug, Serialize)]
#[allow(non_snake_case)]
struct RuntimeInfo {
    #[serde(rename = "startTime")]
    start_time: String,
    CWD: String,
    #[serde(rename = "reloadConfigSuccess")]
    reload_config_success: bool,
    #[serde(rename = "lastConfigTime")]
    last_config_time: String,
    #[serde(rename = "corruptionCount")]
    corruption_count: i64,
    #[serde(rename = "goroutineCount")]
    goroutine_count: i64,
    GOMAXPROCS: usize,
    GOGC: String,
    GODEBUG: String,
    #[serde(rename = "storageRetention")]
    storage_retention: String,
}

/// The outcome of the latest configuration (re)load: `reloadConfigSuccess` and `lastConfigTime`
/// of `/api/v1/status/runtimeinfo` (and the server's `pharos_config_last_reload_*` metrics).
#[derive(Debug)]
pub struct ReloadStatus {
    success: std::sync::atomic::AtomicBool,
    last_success_ms: std::sync::atomic::AtomicI64,
}

impl ReloadStatus {
    /// A status for a configuration loaded successfully at `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        Self {
            success: std::sync::atomic::AtomicBool::new(true),
            last_success_ms: std::sync::atomic::AtomicI64::new(now_ms),
        }
    }

    /// Records the outcome of a reload attempted at `now_ms`.
    pub fn record(&self, ok: bool, now_ms: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.success.store(ok, Relaxed);
        if ok {
            self.last_success_ms.store(now_ms, Relaxed);
        }
    }

    /// Whether the latest (re)load succeeded.
    pub fn success(&self) -> bool {
        self.success.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// When the configuration was last loaded successfully, in ms.
    pub fn last_success_ms(&self) -> i64 {
        self.last_success_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// RFC 3339 with the fraction trimmed of trailing zeros, as Go's `time.Time` marshals.
fn go_time(ms: i64) -> String {
    let s = pharos_model::api::format_rfc3339(ms);
    match s.strip_suffix('Z').and_then(|x| x.rsplit_once('.')) {
        Some((whole, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                format!("{whole}Z")
            } else {
                format!("{whole}.{frac}Z")
            }
        }
        None => s,
    }
}

async fn runtimeinfo(State(st): State<Shared>) -> ApiResult<RuntimeInfo> {
    let start = go_time(st.start_time_ms);
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
    ok(RuntimeInfo {
        start_time: start.clone(),
        CWD: cwd,
        reload_config_success: st.reload.success(),
        last_config_time: go_time(st.reload.last_success_ms()),
        corruption_count: 0,
        goroutine_count: 0,
        GOMAXPROCS: procs,
        GOGC: String::new(),
        GODEBUG: String::new(),
        storage_retention: retention,
    })
}

/// How far back `/api/v1/status/tsdb` looks: roughly what Prometheus keeps in its head block.
const HEAD_WINDOW_MS: i64 = 3 * 3_600_000;

/// One `{name, value}` row of the TSDB status.
#[derive(Debug, Serialize, PartialEq)]
struct Stat {
    name: String,
    value: u64,
}

/// `headStats` of the TSDB status.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HeadStats {
    num_series: u64,
    num_label_pairs: u64,
    chunk_count: u64,
    min_time: i64,
    max_time: i64,
}

/// `data` of `/api/v1/status/tsdb`, fields in Prometheus' order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TsdbStatus {
    head_stats: HeadStats,
    series_count_by_metric_name: Vec<Stat>,
    label_value_count_by_label_name: Vec<Stat>,
    memory_in_bytes_by_label_name: Vec<Stat>,
    series_count_by_label_value_pair: Vec<Stat>,
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
async fn tsdb_status(State(st): State<Shared>) -> ApiResult<TsdbStatus> {
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
        Ok(TsdbStatus {
            head_stats: HeadStats {
                num_series,
                num_label_pairs: num_pairs,
                chunk_count: 0,
                min_time: min_t,
                max_time: max_t,
            },
            series_count_by_metric_name: top10(by_metric),
            label_value_count_by_label_name: top10(value_counts),
            memory_in_bytes_by_label_name: top10(memory),
            series_count_by_label_value_pair: top10(pairs),
        })
    })
    .await?;
    ok(data)
}

/// The labels of a federated sample: without `__name__`, and with an empty `instance` label
/// appended when the series has none (so the federating server does not attach its own), as
/// Prometheus does.
fn federated_labels(labels: &Labels) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = labels
        .iter()
        .filter(|l| l.name != pharos_model::METRIC_NAME)
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    if !out.iter().any(|(n, _)| n == "instance") {
        out.push(("instance".to_string(), String::new()));
    }
    out
}

/// `/federate`: the newest sample (within the lookback delta) of every series matching any
/// `match[]`, in the text format, grouped by metric name, with timestamps.
async fn federate(State(st): State<Shared>, p: Params) -> Result<HttpResponse, ApiError> {
    let sets = match matcher_sets(&p, false) {
        Ok(s) => s,
        // Go's http.Error: the message and a newline, as plain text.
        Err(e) => return Ok((StatusCode::BAD_REQUEST, format!("{}\n", e.msg)).into_response()),
    };
    let now = pharos_model::now_ms();
    let lookback = st.engine.options().lookback_delta.as_millis() as i64;
    let latest = blocking(move || {
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
        Ok(latest)
    })
    .await?;
    // Written one family at a time, streamed when large.
    let write = move |w: &mut stream::ChunkWriter| {
        use pharos_model::expfmt::{MetricFamily, MetricSample, MetricType, write_text};
        let mut text = String::new();
        let mut family: Option<MetricFamily> = None;
        for ((name, labels), (t, v)) in latest {
            if let Some(f) = family.take_if(|f| f.name != name) {
                write_text(&mut text, std::slice::from_ref(&f));
                std::io::Write::write_all(w, text.as_bytes())?;
                text.clear();
            }
            let f = family
                .get_or_insert_with(|| MetricFamily::new(name.clone(), "", MetricType::Untyped));
            f.samples.push(MetricSample {
                name,
                labels: federated_labels(&labels),
                value: v,
                timestamp: Some(t),
            });
        }
        if let Some(f) = family {
            write_text(&mut text, std::slice::from_ref(&f));
            std::io::Write::write_all(w, text.as_bytes())?;
        }
        Ok(())
    };
    Ok(
        stream::respond("text/plain; version=0.0.4; charset=utf-8", write, |e| {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        })
        .await,
    )
}

#[cfg(test)]
mod tests;
