//! API tests: the router served on 127.0.0.1:0, requests as raw HTTP/1.1.

use std::net::SocketAddr;

use pharos_model::api::{Target, TargetHealth};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::engine::tests::load;

struct Targets;

impl TargetsProvider for Targets {
    fn active_targets(&self) -> Vec<Target> {
        vec![Target {
            discovered_labels: BTreeMap::from([("__address__".into(), "h:9100".into())]),
            labels: BTreeMap::from([("job".into(), "node".into())]),
            scrape_pool: "node".into(),
            scrape_url: "http://h:9100/metrics".into(),
            global_url: "http://h:9100/metrics".into(),
            last_error: String::new(),
            last_scrape: "2024-01-01T00:00:00.000Z".into(),
            last_scrape_duration: 0.01,
            health: TargetHealth::Up,
            scrape_interval: "15s".into(),
            scrape_timeout: "10s".into(),
        }]
    }
}

async fn serve() -> SocketAddr {
    serve_with(&[]).await
}

/// Serves the test data with `extra` flags added to the state.
async fn serve_with(extra: &[(&str, &str)]) -> SocketAddr {
    let mut db = load(
        60_000,
        &[
            (r#"up{job="node", instance="a"}"#, "1 1 1 1 1"),
            (r#"up{job="prom", instance="b"}"#, "0 0 0 0 0"),
        ],
    );
    // Recent samples for /federate (which looks back from now).
    let recent = pharos_model::now_ms() - 10_000;
    for (l, v) in [
        (
            Labels::from_pairs(&[("__name__", "fresh"), ("job", "x")]),
            2.5,
        ),
        (Labels::from_pairs(&[("__name__", "Anew"), ("A", "1")]), 1.0),
        (
            Labels::from_pairs(&[("__name__", "fresh"), ("job", "gone")]),
            pharos_model::STALE_NAN,
        ),
    ] {
        db.series
            .push((l, vec![pharos_model::Sample { t: recent, v }]));
    }
    serve_db(db, extra).await
}

/// Serves `db` with `extra` flags added to the state.
async fn serve_db(db: crate::engine::tests::Mem, extra: &[(&str, &str)]) -> SocketAddr {
    let state = ApiState {
        queryable: Arc::new(db),
        engine: Arc::new(Engine::new(EngineOptions::default())),
        targets: Arc::new(Targets),
        build: BuildInfo {
            version: "0.1.0".into(),
            go_version: "rustc 1.95".into(),
            ..BuildInfo::default()
        },
        config_yaml: Arc::new(RwLock::new("global: {}\n".into())),
        flags: BTreeMap::from([("web.listen-address".into(), ":9090".into())])
            .into_iter()
            .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .collect(),
        start_time_ms: 0,
        rules: None,
        reload: Arc::new(ReloadStatus::new(0)),
        admin: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    addr
}

async fn call(addr: SocketAddr, method: &str, path: &str, form: Option<&str>) -> (u16, Json) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(b) = form {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let status: u16 = text[9..12].parse().unwrap();
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    (
        status,
        serde_json::from_str(body).unwrap_or(Json::String(body.to_string())),
    )
}

#[track_caller]
fn check(got: (u16, Json), status: u16, want: Json) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1, want);
}

#[tokio::test]
async fn queries() {
    let a = serve().await;
    check(
        call(
            a,
            "GET",
            "/api/v1/query?query=up%7Bjob%3D%22node%22%7D&time=120",
            None,
        )
        .await,
        200,
        json!({"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","instance":"a","job":"node"},"value":[120,"1"]}]}}),
    );
    check(
        call(
            a,
            "POST",
            "/api/v1/query",
            Some("query=1%2B1&time=1970-01-01T00:01:00.5Z"),
        )
        .await,
        200,
        json!({"status":"success","data":{"resultType":"scalar","result":[60.5,"2"]}}),
    );
    check(
        call(
            a,
            "GET",
            "/api/v1/query_range?query=sum(up)&start=0&end=120&step=1m",
            None,
        )
        .await,
        200,
        json!({"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[0,"1"],[60,"1"],[120,"1"]]}]}}),
    );
    check(
        call(a, "GET", "/api/v1/query?query=sum(", None).await,
        400,
        json!({"status":"error","errorType":"bad_data",
            "error":"invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"}),
    );
    check(
        call(a, "GET", "/api/v1/query?query=up&time=yesterday", None).await,
        400,
        json!({"status":"error","errorType":"bad_data",
            "error":"invalid parameter \"time\": Invalid time value for 'time': cannot parse \"yesterday\" to a valid timestamp"}),
    );
    check(
        call(
            a,
            "GET",
            "/api/v1/query_range?query=up&start=0&end=100000&step=1",
            None,
        )
        .await,
        400,
        json!({"status":"error","errorType":"bad_data",
            "error":"exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"}),
    );
    check(
        call(
            a,
            "GET",
            "/api/v1/query_range?query=up&start=10&end=0&step=1",
            None,
        )
        .await,
        400,
        json!({"status":"error","errorType":"bad_data",
            "error":"invalid parameter \"end\": end timestamp must not be before start time"}),
    );
    check(
        call(
            a,
            "GET",
            "/api/v1/query_range?query=up%5B5m%5D&start=0&end=10&step=1",
            None,
        )
        .await,
        400,
        json!({"status":"error","errorType":"bad_data",
            "error":"invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"}),
    );
    check(
        call(a, "GET", "/api/v1/query?query=up&timeout=0s", None).await,
        503,
        json!({"status":"error","errorType":"timeout",
            "error":"query timed out in query execution"}),
    );
    check(
        call(a, "GET", "/api/v1/query?query=up&timeout=never", None).await,
        400,
        json!({"status":"error","errorType":"bad_data",
            "error":"invalid parameter \"timeout\": cannot parse \"never\" to a valid duration"}),
    );
    check(
        call(
            a,
            "GET",
            "/api/v1/query?query=up%20%2B%20on()%20up&time=60",
            None,
        )
        .await,
        422,
        json!({"status":"error","errorType":"execution",
            "error":"found duplicate series for the match group {} on the right hand-side of the operation: [{__name__=\"up\", instance=\"b\", job=\"prom\"}, {__name__=\"up\", instance=\"a\", job=\"node\"}];many-to-many matching not allowed: matching labels must be unique on one side"}),
    );
}

#[tokio::test]
async fn metadata_endpoints() {
    let a = serve().await;
    check(
        call(
            a,
            "GET",
            "/api/v1/series?match[]=up%7Bjob%3D%22prom%22%7D",
            None,
        )
        .await,
        200,
        json!({"status":"success","data":[{"__name__":"up","instance":"b","job":"prom"}]}),
    );
    check(
        call(a, "GET", "/api/v1/series", None).await,
        400,
        json!({"status":"error","errorType":"bad_data","error":"no match[] parameter provided"}),
    );
    check(
        call(a, "POST", "/api/v1/labels", Some("match%5B%5D=up")).await,
        200,
        json!({"status":"success","data":["__name__","instance","job"]}),
    );
    check(
        call(a, "GET", "/api/v1/label/job/values", None).await,
        200,
        json!({"status":"success","data":["gone","node","prom","x"]}),
    );
    check(
        call(
            a,
            "GET",
            "/api/v1/label/job/values?match[]=up%7Binstance%3D%22a%22%7D",
            None,
        )
        .await,
        200,
        json!({"status":"success","data":["node"]}),
    );
    check(
        call(a, "GET", "/api/v1/metadata", None).await,
        200,
        json!({"status":"success","data":{}}),
    );
    check(
        call(a, "GET", "/api/v1/rules", None).await,
        200,
        json!({"status":"success","data":{"groups":[]}}),
    );
    check(
        call(a, "GET", "/api/v1/alerts", None).await,
        200,
        json!({"status":"success","data":{"alerts":[]}}),
    );
    check(
        call(a, "GET", "/api/v1/query_exemplars?query=up", None).await,
        200,
        json!({"status":"success","data":[]}),
    );
    check(
        call(a, "GET", "/api/v1/status/config", None).await,
        200,
        json!({"status":"success","data":{"yaml":"global: {}\n"}}),
    );
    check(
        call(a, "GET", "/api/v1/status/flags", None).await,
        200,
        json!({"status":"success","data":{"web.listen-address":":9090"}}),
    );
    let (s, b) = call(a, "GET", "/api/v1/status/buildinfo", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["goVersion"], "rustc 1.95");
    let (s, b) = call(a, "GET", "/api/v1/status/runtimeinfo", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["startTime"], "1970-01-01T00:00:00Z");
    let (s, b) = call(a, "GET", "/api/v1/targets", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["activeTargets"][0]["scrapePool"], "node");
    let (_, b) = call(a, "GET", "/api/v1/targets?state=dropped", None).await;
    assert_eq!(b["data"]["activeTargets"], json!([]));
}

#[tokio::test]
async fn federation() {
    let a = serve().await;
    let (s, body) = call(
        a,
        "GET",
        "/federate?match[]=%7Bjob%3D~%22.%2B%22%7D&match[]=Anew",
        None,
    )
    .await;
    assert_eq!(s, 200);
    let Json::String(text) = body else {
        panic!("{body}")
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], "# TYPE Anew untyped");
    assert!(
        lines[1].starts_with("Anew{A=\"1\",instance=\"\"} 1 "),
        "{text}"
    );
    assert_eq!(lines[2], "# TYPE fresh untyped");
    assert!(
        lines[3].starts_with("fresh{job=\"x\",instance=\"\"} 2.5 "),
        "{text}"
    );
    let (s, _) = call(a, "GET", "/federate?match[]=%7B", None).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn tsdb_status() {
    let a = serve().await;
    let (s, b) = call(a, "GET", "/api/v1/status/tsdb", None).await;
    assert_eq!(s, 200, "{b}");
    let d = &b["data"];
    // Only the three recent series count (the `up` ones are from 1970); the stale one too,
    // since its marker is a sample.
    assert_eq!(d["headStats"]["numSeries"], 3, "{d}");
    assert_eq!(
        d["seriesCountByMetricName"][0],
        json!({"name": "fresh", "value": 2})
    );
    assert_eq!(
        d["labelValueCountByLabelName"][0],
        json!({"name": "__name__", "value": 2})
    );
    assert_eq!(
        d["seriesCountByLabelValuePair"][0],
        json!({"name": "__name__=fresh", "value": 2})
    );
}

#[test]
fn times_and_durations() {
    assert_eq!(parse_time("1435781451.781"), Some(1_435_781_451_781));
    assert_eq!(
        parse_time("2015-07-01T20:10:51.781Z"),
        Some(1_435_781_451_781)
    );
    assert_eq!(
        parse_time("2015-07-01T22:10:51+02:00"),
        Some(1_435_781_451_000)
    );
    assert_eq!(parse_time("2015-07-01"), None);
    assert_eq!(parse_time("NaN"), None);
    assert_eq!(parse_duration_param("15"), Some(15_000));
    assert_eq!(parse_duration_param("0.5"), Some(500));
    assert_eq!(parse_duration_param("1m30s"), Some(90_000));
    assert_eq!(parse_duration_param("x"), None);
}

#[test]
fn go_time_rounding() {
    #[track_caller]
    fn check(s: &str, want: Option<i64>) {
        assert_eq!(parse_time(s), want, "{s}");
    }
    // Go rounds the fraction to ms with math.Round, then truncates to whole nanoseconds.
    check("1672532100.78", Some(1_672_532_100_780));
    check("0.0005", Some(1));
    check("1.0004", Some(1000));
    check("-1.5", Some(-1500));
    check("-0.57", Some(-570));
    check("1e3", Some(1_000_000));
    check("1672531200.333", Some(1_672_531_200_333));
    check("2023-01-01T00:30:00.5+01:00", Some(1_672_529_400_500));
    check("inf", None);
}

#[test]
fn go_duration_truncation() {
    #[track_caller]
    fn check(s: &str, want: Option<i64>) {
        assert_eq!(parse_duration_param(s), want, "{s}");
    }
    // 33.3 s is 33299999999.999996 ns in float64: Go keeps 33299999999 ns, i.e. 33299 ms.
    check("33.3", Some(33_299));
    check("14.4", Some(14_400));
    check("-5", Some(-5000));
    check("0.0005", Some(0));
    check("5m", Some(300_000));
    check("1e300", None);
}

/// A raw request with extra headers; returns status, headers and body bytes.
async fn raw(addr: SocketAddr, req: &str) -> (u16, String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    (
        head[9..12].parse().unwrap(),
        head,
        buf[split + 4..].to_vec(),
    )
}

#[tokio::test]
async fn gzip_when_accepted() {
    let a = serve().await;
    let req = |enc: &str| {
        format!(
            "GET /api/v1/labels HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAccept-Encoding: {enc}\r\n\r\n"
        )
    };
    let (status, head, body) = raw(a, &req("gzip, deflate")).await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-encoding: gzip"),
        "{head}"
    );
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain)
        .unwrap();
    assert_eq!(
        plain,
        r#"{"status":"success","data":["A","__name__","instance","job"]}"#
    );
    for enc in ["identity", "gzip;q=0"] {
        let (_, head, body) = raw(a, &req(enc)).await;
        assert!(
            !head.to_ascii_lowercase().contains("content-encoding"),
            "{head}"
        );
        assert!(body.starts_with(b"{\"status\""), "{enc}");
    }
}

#[tokio::test]
async fn limits_and_warnings() {
    let a = serve().await;
    check(
        call(a, "GET", "/api/v1/labels?limit=2", None).await,
        200,
        json!({"status":"success","data":["A","__name__"],
            "warnings":["results truncated due to limit"]}),
    );
    check(
        call(a, "GET", "/api/v1/label/job/values?limit=5", None).await,
        200,
        json!({"status":"success","data":["gone","node","prom","x"]}),
    );
    check(
        call(a, "POST", "/api/v1/series", Some("match%5B%5D=up&limit=1")).await,
        200,
        json!({"status":"success","data":[{"__name__":"up","instance":"a","job":"node"}],
            "warnings":["results truncated due to limit"]}),
    );
    check(
        call(a, "GET", "/api/v1/query?query=up&time=120&limit=1", None).await,
        200,
        json!({"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","instance":"a","job":"node"},"value":[120,"1"]}]},
            "warnings":["results truncated due to limit"]}),
    );
    check(
        call(a, "GET", "/api/v1/labels?limit=-1", None).await,
        400,
        json!({"status":"error","errorType":"bad_data",
            "error":"invalid parameter \"limit\": limit must be non-negative"}),
    );
    check(
        call(a, "GET", "/api/v1/labels?limit=x", None).await,
        400,
        json!({"status":"error","errorType":"bad_data",
            "error":"invalid parameter \"limit\": strconv.Atoi: parsing \"x\": invalid syntax"}),
    );
}

#[tokio::test]
async fn timeouts_and_admin() {
    let a = serve().await;
    check(
        call(a, "GET", "/api/v1/query?query=up&time=120&timeout=0", None).await,
        503,
        json!({"status":"error","errorType":"timeout",
            "error":"query timed out in query execution"}),
    );
    check(
        call(a, "POST", "/api/v1/admin/tsdb/snapshot", Some("")).await,
        500,
        json!({"status":"error","errorType":"unavailable","error":"admin APIs disabled"}),
    );
    let (status, head, body) = raw(
        a,
        "GET /api/v1/nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        (status, body.as_slice()),
        (404, &b"404 page not found\n"[..])
    );
    assert!(head.contains("text/plain; charset=utf-8"), "{head}");
}

#[tokio::test]
async fn queries_queue_beyond_the_limit() {
    // More concurrent queries than slots: all finish (the extra ones waited), none fails.
    let a = serve().await;
    let one = serve_with(&[("query.max-concurrency", "1")]).await;
    let calls = (0..MAX_CONCURRENT_QUERIES * 2).map(|i| {
        let a = if i % 2 == 0 { a } else { one };
        tokio::spawn(async move {
            call(
                a,
                "GET",
                "/api/v1/query_range?query=sum(up)&start=0&end=240&step=1",
                None,
            )
            .await
        })
    });
    for c in calls.collect::<Vec<_>>() {
        let (status, body) = c.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
}

#[test]
fn snapshot_names_as_prometheus() {
    // 2023-01-02T03:04:05Z
    let name = snapshot_name(1_672_628_645_123);
    assert_eq!(&name[..17], "20230102T030405Z-", "{name}");
    assert_eq!(name.len(), 33, "{name}");
    assert!(
        name[17..]
            .bytes()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
        "{name}"
    );
    // Go's rand.Int63: the top bit is never set.
    assert!(name.as_bytes()[17] <= b'7', "{name}");
    assert_ne!(name, snapshot_name(1_672_628_645_123));
}

/// `n` series `big{i="…",pad="…"}` with a sample every minute for two hours up to `end`.
fn big_db(n: usize, end: i64) -> crate::engine::tests::Mem {
    let mut db = load(60_000, &[]);
    for i in 0..n {
        let l = Labels::from_pairs(&[
            ("__name__", "big".to_string()),
            ("i", format!("{i:05}")),
            ("pad", format!("<{}>&", "x".repeat(300 + i % 200))),
        ]);
        let samples = (0..=120)
            .map(|k| pharos_model::Sample {
                t: end - (120 - k) * 60_000,
                v: i as f64 * 0.1 + k as f64 / 7.0,
            })
            .collect();
        db.series.push((l, samples));
    }
    db
}

/// Decodes a chunked transfer-encoded body.
#[track_caller]
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap(), 16).unwrap();
        b = &b[eol + 2..];
        if size == 0 {
            assert_eq!(b, b"\r\n", "trailer");
            return out;
        }
        out.extend_from_slice(&b[..size]);
        assert_eq!(&b[size..size + 2], b"\r\n");
        b = &b[size + 2..];
    }
}

/// Gets `path` (with gzip when `gzip`) and checks that the answer is streamed: chunked, without
/// a content-length, and (decoded) exactly `want`.
#[track_caller]
fn check_streamed(got: (u16, String, Vec<u8>), gzip: bool, want: &[u8]) {
    let (status, head, body) = got;
    let h = head.to_ascii_lowercase();
    assert_eq!(status, 200, "{head}");
    assert!(h.contains("transfer-encoding: chunked"), "{head}");
    assert!(!h.contains("content-length"), "{head}");
    assert_eq!(h.contains("content-encoding: gzip"), gzip, "{head}");
    let mut body = dechunk(&body);
    if gzip {
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain)
            .unwrap();
        body = plain;
    }
    assert!(body.len() > 2 * stream::CHUNK, "only {} bytes", body.len());
    assert!(
        body == want,
        "streamed body differs from the unstreamed rendering"
    );
}

fn get(path: &str, gzip: bool) -> String {
    let enc = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{enc}\r\n")
}

#[tokio::test]
async fn large_answers_stream() {
    let end = pharos_model::now_ms() / 1000 * 1000 - 30_000;
    let a = serve_db(big_db(400, end), &[]).await;
    let db = big_db(400, end);

    // query_range: the envelope around the engine's result, as rendered in one piece.
    let (start, step) = (end - 7_200_000, 60_000);
    let expr = parser::parse("big * 2").unwrap();
    let data = Engine::new(EngineOptions::default())
        .range(&db, &expr, start, end, step)
        .unwrap()
        .into_query_data();
    let mut want = b"{\"status\":\"success\",\"data\":".to_vec();
    json::write_query_data(&mut want, &data).unwrap();
    want.push(b'}');
    let path = format!(
        "/api/v1/query_range?query=big%20*%202&start={}&end={}&step=60",
        start as f64 / 1000.0,
        end as f64 / 1000.0
    );
    for gzip in [false, true] {
        check_streamed(raw(a, &get(&path, gzip)).await, gzip, &want);
    }

    // series: as serde renders the whole list.
    let all: BTreeSet<Labels> = db.series.iter().map(|(l, _)| l.clone()).collect();
    let all: Vec<Labels> = all.into_iter().collect();
    let mut want = Vec::new();
    json::write_serde(&mut want, &Response::success(&all)).unwrap();
    for gzip in [false, true] {
        check_streamed(
            raw(a, &get("/api/v1/series?match[]=big", gzip)).await,
            gzip,
            &want,
        );
    }

    // /federate: the text format of one family, written at once.
    let mut fam = pharos_model::expfmt::MetricFamily::new(
        "big",
        "",
        pharos_model::expfmt::MetricType::Untyped,
    );
    for l in &all {
        let last = db
            .series
            .iter()
            .find(|(x, _)| x == l)
            .unwrap()
            .1
            .last()
            .unwrap();
        fam.samples.push(pharos_model::expfmt::MetricSample {
            name: "big".into(),
            labels: federated_labels(l),
            value: last.v,
            timestamp: Some(last.t),
        });
    }
    let mut text = String::new();
    pharos_model::expfmt::write_text(&mut text, &[fam]);
    for gzip in [false, true] {
        check_streamed(
            raw(a, &get("/federate?match[]=big", gzip)).await,
            gzip,
            text.as_bytes(),
        );
    }

    // Small answers stay one body with a content-length.
    let (status, head, body) = raw(a, &get("/api/v1/query?query=count(big)", false)).await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
    assert!(body.starts_with(b"{\"status\":\"success\""));

    // Errors found before the first byte keep their status codes.
    let path = format!(
        "/api/v1/query_range?query=big%20%2B%20on()%20big&start={}&end={}&step=60",
        start / 1000,
        end / 1000
    );
    for gzip in [false, true] {
        let (status, head, body) = raw(a, &get(&path, gzip)).await;
        assert_eq!(status, 422, "{head}");
        assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
        let body = if gzip {
            let mut plain = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain)
                .unwrap();
            plain
        } else {
            body
        };
        let j: Json = serde_json::from_slice(&body).unwrap();
        assert_eq!(j["errorType"], "execution", "{j}");
    }
    let (status, _, _) = raw(
        a,
        &get("/api/v1/query_range?query=big&start=0&end=1&step=0", false),
    )
    .await;
    assert_eq!(status, 400);
}
