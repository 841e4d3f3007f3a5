//! `pharos query EXPR`: evaluates PromQL from the terminal and prints a table.
//!
//! Against a running server (`--server URL`, any Prometheus-compatible API: Pharos, Prometheus,
//! VictoriaMetrics) or directly against a data directory (`--storage.tsdb.path DIR`, opened with
//! the in-process engine; the directory must not be in use by a running server). Without
//! `--start`/`--end`/`--step` the query is an instant query at `--time` (default: now); with any
//! of them it is a range query (defaults: the last hour ending now, about 60 points).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use pharos_model::api::{QueryData, format_rfc3339 as format_time};

/// Flags of `pharos query`.
#[derive(Debug, Args, Clone)]
pub struct QueryArgs {
    /// The PromQL expression.
    #[arg(value_name = "EXPR")]
    pub expr: String,
    /// Base URL of a Prometheus-compatible API to query.
    #[arg(
        long = "server",
        value_name = "URL",
        default_value = "http://127.0.0.1:9090",
        conflicts_with = "tsdb_path"
    )]
    pub server: String,
    /// Query this data directory in-process instead of a server.
    #[arg(long = "storage.tsdb.path", value_name = "DIR")]
    pub tsdb_path: Option<PathBuf>,
    /// Evaluation time of an instant query: RFC 3339, Unix seconds, `now` or `now-<duration>`.
    #[arg(long = "time", value_name = "TIME", conflicts_with_all = ["start", "end", "step"])]
    pub time: Option<String>,
    /// Start of a range query (same formats as --time; default: end - 1h).
    #[arg(long = "start", value_name = "TIME")]
    pub start: Option<String>,
    /// End of a range query (default: now).
    #[arg(long = "end", value_name = "TIME")]
    pub end: Option<String>,
    /// Step of a range query: a duration (`15s`, `1m`) or seconds (default: (end - start) / 60).
    #[arg(long = "step", value_name = "DURATION")]
    pub step: Option<String>,
    /// Query timeout.
    #[arg(long = "timeout", value_name = "DURATION", default_value = "2m",
          value_parser = parse_timeout)]
    pub timeout: Duration,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let ms = pharos_model::parse_duration_ms(s)?;
    u64::try_from(ms)
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .ok_or_else(|| "timeout must be positive".to_string())
}

/// What to evaluate, times in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parses a time: Unix seconds (fractions allowed), RFC 3339, `now` or `now-<duration>`.
pub(crate) fn parse_time(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(d) = s.strip_prefix("now-") {
        return Ok(now - pharos_model::parse_duration_ms(d)?);
    }
    pharos_query::api::parse_time(s).ok_or_else(|| {
        format!("cannot parse {s:?} as a time (RFC 3339, Unix seconds, now or now-<duration>)")
    })
}

fn parse_step(s: &str) -> Result<i64, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs > 0.0 {
            return Ok((secs * 1000.0).round().max(1.0) as i64);
        }
        return Err(format!("step {s:?} must be positive"));
    }
    let ms = pharos_model::parse_duration_ms(s)?;
    if ms <= 0 {
        return Err(format!("step {s:?} must be positive"));
    }
    Ok(ms)
}

fn when(args: &QueryArgs, now: i64) -> Result<When, String> {
    if args.start.is_none() && args.end.is_none() && args.step.is_none() {
        let t = match &args.time {
            Some(t) => parse_time(t, now)?,
            None => now,
        };
        return Ok(When::Instant(t));
    }
    let end = match &args.end {
        Some(e) => parse_time(e, now)?,
        None => now,
    };
    let start = match &args.start {
        Some(s) => parse_time(s, now)?,
        None => end - 3_600_000,
    };
    if end < start {
        return Err("end time must not be before start time".into());
    }
    let step = match &args.step {
        Some(s) => parse_step(s)?,
        None => ((end - start) / 60).max(1000),
    };
    Ok(When::Range { start, end, step })
}

/// Runs `pharos query`; prints the table to stdout.
pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    let when = when(&args, now_ms()).map_err(anyhow::Error::msg)?;
    let data = match &args.tsdb_path {
        Some(dir) => {
            let (dir, expr, timeout) = (dir.clone(), args.expr.clone(), args.timeout);
            tokio::task::spawn_blocking(move || query_dir(&dir, &expr, when, timeout))
                .await
                .context("query task failed")??
        }
        None => query_server(&args.server, &args.expr, when, args.timeout).await?,
    };
    print!("{}", table(&data));
    Ok(())
}

fn query_dir(
    dir: &std::path::Path,
    expr: &str,
    when: When,
    timeout: Duration,
) -> anyhow::Result<QueryData> {
    if !dir.is_dir() {
        bail!("no data directory at {}", dir.display());
    }
    let expr = pharos_query::parser::parse(expr).map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = pharos_tsdb::Db::open(
        dir,
        pharos_tsdb::Options {
            // Reading must not delete anything.
            retention: Duration::ZERO,
            ..Default::default()
        },
    )
    .with_context(|| format!("cannot open storage at {}", dir.display()))?;
    let engine = pharos_query::Engine::new(pharos_query::EngineOptions {
        timeout,
        ..Default::default()
    });
    let value = match when {
        When::Instant(t) => engine.instant(&db, &expr, t),
        When::Range { start, end, step } => engine.range(&db, &expr, start, end, step),
    };
    let closed = db.close();
    let value = value?;
    closed.with_context(|| format!("closing storage at {}", dir.display()))?;
    Ok(value.into_query_data())
}

async fn query_server(
    server: &str,
    expr: &str,
    when: When,
    timeout: Duration,
) -> anyhow::Result<QueryData> {
    let secs = |ms: i64| format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
    let base = server.trim_end_matches('/');
    let timeout_s = format!("{}s", timeout.as_secs_f64());
    let (url, params) = match when {
        When::Instant(t) => (
            format!("{base}/api/v1/query"),
            vec![
                ("query", expr.to_string()),
                ("time", secs(t)),
                ("timeout", timeout_s),
            ],
        ),
        When::Range { start, end, step } => (
            format!("{base}/api/v1/query_range"),
            vec![
                ("query", expr.to_string()),
                ("start", secs(start)),
                ("end", secs(end)),
                ("step", secs(step)),
                ("timeout", timeout_s),
            ],
        ),
    };
    pharos_collector::tls::install_provider();
    let client = reqwest::Client::builder()
        .timeout(timeout + Duration::from_secs(5))
        .build()
        .context("cannot build the HTTP client")?;
    let form = params
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let body = client
        .post(&url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?
        .text()
        .await
        .with_context(|| format!("cannot read the answer of {url}"))?;
    let v: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("{url} did not answer with JSON: {body:.200}"))?;
    if v["status"] != "success" {
        bail!(
            "{} ({})",
            v["error"].as_str().unwrap_or("unknown error"),
            v["errorType"].as_str().unwrap_or("error")
        );
    }
    serde_json::from_value(v["data"].clone())
        .with_context(|| format!("unexpected result shape from {url}"))
}

/// Percent-encodes a form value (`application/x-www-form-urlencoded`).
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Renders a result as an aligned text table.
fn table(data: &QueryData) -> String {
    let mut rows: Vec<[String; 3]> = Vec::new();
    let header = |c: &str| ["SERIES".to_string(), c.to_string(), "TIME".to_string()];
    match data {
        QueryData::Scalar(p) => {
            rows.push(["SCALAR".into(), "VALUE".into(), "TIME".into()]);
            rows.push([
                String::new(),
                pharos_model::api::format_value(p.v),
                format_time(p.t),
            ]);
        }
        QueryData::String(s) => {
            rows.push(["STRING".into(), String::new(), "TIME".into()]);
            rows.push([s.s.clone(), String::new(), format_time(s.t)]);
        }
        QueryData::Vector(v) => {
            rows.push(header("VALUE"));
            for s in v {
                rows.push([
                    s.metric.to_string(),
                    pharos_model::api::format_value(s.value.v),
                    format_time(s.value.t),
                ]);
            }
        }
        QueryData::Matrix(m) => {
            rows.push(header("VALUE"));
            for s in m {
                for (i, p) in s.values.iter().enumerate() {
                    let name = if i == 0 {
                        s.metric.to_string()
                    } else {
                        String::new()
                    };
                    rows.push([name, pharos_model::api::format_value(p.v), format_time(p.t)]);
                }
            }
        }
    }
    let w0 = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r[1].chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for r in &rows {
        let line = format!("{:<w0$}  {:>w1$}  {}", r[0], r[1], r[2]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let n = rows.len().saturating_sub(1);
    if matches!(data, QueryData::Vector(_) | QueryData::Matrix(_)) {
        let series = match data {
            QueryData::Matrix(m) => m.len(),
            _ => n,
        };
        out.push_str(&format!(
            "({series} series{})\n",
            if matches!(data, QueryData::Matrix(_)) {
                format!(", {n} points")
            } else {
                String::new()
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharos_model::Labels;
    use pharos_model::api::{MatrixSeries, Point, VectorSample};

    #[test]
    fn times() {
        #[track_caller]
        fn check(input: &str, want: Result<i64, ()>) {
            assert_eq!(
                parse_time(input, 1_000_000).map_err(|_| ()),
                want,
                "{input}"
            );
        }
        check("now", Ok(1_000_000));
        check("now-1m", Ok(940_000));
        check("1700000000", Ok(1_700_000_000_000));
        check("1700000000.5", Ok(1_700_000_000_500));
        check("2023-11-14T22:13:20Z", Ok(1_700_000_000_000));
        check("2023-11-14T22:13:20.25Z", Ok(1_700_000_000_250));
        check("2023-11-15T00:13:20+02:00", Ok(1_700_000_000_000));
        check("1970-01-01T00:00:00Z", Ok(0));
        check("2024-02-29T12:00:00Z", Ok(1_709_208_000_000));
        check("2023-13-01T00:00:00Z", Err(()));
        check("yesterday", Err(()));
        check("2023-11-14T22:13:20", Err(()));
        assert_eq!(format_time(1_700_000_000_250), "2023-11-14T22:13:20.250Z");
        assert_eq!(format_time(1_709_208_000_000), "2024-02-29T12:00:00.000Z");
        assert_eq!(format_time(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn instant_or_range() {
        let args =
            |time: Option<&str>, start: Option<&str>, end: Option<&str>, step: Option<&str>| {
                QueryArgs {
                    expr: "up".into(),
                    server: String::new(),
                    tsdb_path: None,
                    time: time.map(String::from),
                    start: start.map(String::from),
                    end: end.map(String::from),
                    step: step.map(String::from),
                    timeout: Duration::from_secs(1),
                }
            };
        let now = 7_200_000;
        assert_eq!(
            when(&args(None, None, None, None), now),
            Ok(When::Instant(now))
        );
        assert_eq!(
            when(&args(Some("60"), None, None, None), now),
            Ok(When::Instant(60_000))
        );
        assert_eq!(
            when(&args(None, None, None, Some("1m")), now),
            Ok(When::Range {
                start: 3_600_000,
                end: now,
                step: 60_000
            })
        );
        assert_eq!(
            when(&args(None, Some("0"), Some("600"), None), now),
            Ok(When::Range {
                start: 0,
                end: 600_000,
                step: 10_000
            })
        );
        assert!(when(&args(None, Some("600"), Some("0"), None), now).is_err());
        assert!(when(&args(None, None, None, Some("0s")), now).is_err());
    }

    #[test]
    fn tables() {
        let l = Labels::from_pairs(&[("__name__", "up"), ("job", "node")]);
        let v = QueryData::Vector(vec![VectorSample {
            metric: l.clone(),
            value: Point { t: 0, v: 1.0 },
        }]);
        assert_eq!(
            table(&v),
            "SERIES          VALUE  TIME\n\
             up{job=\"node\"}      1  1970-01-01T00:00:00.000Z\n(1 series)\n"
        );
        let m = QueryData::Matrix(vec![MatrixSeries {
            metric: l,
            values: vec![
                Point { t: 0, v: 0.5 },
                Point {
                    t: 1000,
                    v: f64::NAN,
                },
            ],
        }]);
        assert_eq!(
            table(&m),
            "SERIES          VALUE  TIME\n\
             up{job=\"node\"}    0.5  1970-01-01T00:00:00.000Z\n\
             \x20                 NaN  1970-01-01T00:00:01.000Z\n(1 series, 2 points)\n"
        );
        let s = QueryData::Scalar(Point { t: 0, v: 2.0 });
        assert_eq!(
            table(&s),
            "SCALAR  VALUE  TIME\n            2  1970-01-01T00:00:00.000Z\n"
        );
    }
}
