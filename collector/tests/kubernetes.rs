//! kubernetes_sd against a fake API server on 127.0.0.1 that serves v1 list responses and watch
//! streams (JSON lines) from an in-memory object store with resource versions. Every watch
//! returns the events after its version and then ends, so each round trip also exercises a
//! dropped watch; `compact` makes old versions answer 410 Gone (as a status or an `ERROR`
//! event), forcing a re-list.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use pharos_collector::ScrapeManager;
use pharos_collector::config::Config;
use pharos_collector::discovery::TargetGroup;
use pharos_collector::discovery::kubernetes::{Discovery, InCluster, KubernetesSdConfig};
use pharos_model::is_stale_nan;
use serde_json::{Value, json};
use tokio::sync::mpsc;

// ---------- the fake API server ----------

#[derive(Default)]
struct ApiState {
    rv: u64,
    /// (plural, namespace/name) -> object.
    objects: BTreeMap<(String, String), Value>,
    /// (version, plural, namespace, event).
    events: Vec<(u64, String, String, Value)>,
    /// Watches from versions below this get 410 Gone (0: none).
    min_rv: u64,
    /// Answer Gone as an `ERROR` event in a 200 stream instead of an HTTP 410.
    gone_as_event: bool,
    /// Request URIs with their Authorization header.
    requests: Vec<(String, String)>,
    /// Answer this many more requests with 500.
    fail: u32,
}

#[derive(Clone, Default)]
struct Api(Arc<Mutex<ApiState>>);

fn meta(o: &Value) -> (String, String) {
    let m = &o["metadata"];
    (
        m["namespace"].as_str().unwrap_or("").to_string(),
        m["name"].as_str().unwrap().to_string(),
    )
}

impl Api {
    fn put(&self, plural: &str, mut obj: Value) {
        let mut s = self.0.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let (ns, name) = meta(&obj);
        let key = (plural.to_string(), format!("{ns}/{name}"));
        let kind = if s.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        s.objects.insert(key, obj.clone());
        s.events
            .push((rv, plural.into(), ns, json!({"type": kind, "object": obj})));
    }

    fn delete(&self, plural: &str, ns: &str, name: &str) {
        let mut s = self.0.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        let mut obj = s
            .objects
            .remove(&(plural.to_string(), format!("{ns}/{name}")))
            .unwrap();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        s.events.push((
            rv,
            plural.into(),
            ns.into(),
            json!({"type": "DELETED", "object": obj}),
        ));
    }

    /// Deletes an object and forgets history at once: the deletion is in no event, and every
    /// watch from an older version is answered with 410 Gone, so only a re-list can see it.
    fn delete_compacted(&self, plural: &str, ns: &str, name: &str, as_event: bool) {
        let mut s = self.0.lock().unwrap();
        s.objects
            .remove(&(plural.to_string(), format!("{ns}/{name}")))
            .unwrap();
        s.rv += 1;
        s.min_rv = s.rv;
        s.gone_as_event = as_event;
    }

    fn requests(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap().requests.clone()
    }
}

/// `labelSelector=k=v` (one equality, enough for the tests).
fn selected(o: &Value, q: &BTreeMap<String, String>) -> bool {
    match q.get("labelSelector").and_then(|s| s.split_once('=')) {
        Some((k, v)) => o["metadata"]["labels"][k].as_str() == Some(v),
        None => true,
    }
}

async fn handle(
    State(api): State<Api>,
    uri: Uri,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> axum::response::Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    api.0.lock().unwrap().requests.push((uri.to_string(), auth));
    {
        let mut s = api.0.lock().unwrap();
        if s.fail > 0 {
            s.fail -= 1;
            let status = json!({"kind": "Status", "code": 500, "message": "etcd unavailable"});
            return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(status)).into_response();
        }
    }
    let path = uri.path();
    if path == "/version" {
        return axum::Json(json!({"major": "1", "minor": "26", "gitVersion": "v1.26.0"}))
            .into_response();
    }
    let rest = path
        .strip_prefix("/api/v1/")
        .or_else(|| path.strip_prefix("/apis/networking.k8s.io/v1/"))
        .or_else(|| path.strip_prefix("/apis/discovery.k8s.io/v1/"))
        .unwrap_or("");
    let parts: Vec<&str> = rest.split('/').collect();
    let (ns, plural) = match parts.as_slice() {
        ["namespaces", ns, plural] => (Some(ns.to_string()), plural.to_string()),
        [plural] => (None, plural.to_string()),
        _ => return (StatusCode::NOT_FOUND, "no such path").into_response(),
    };
    let in_ns = |o_ns: &str| ns.as_deref().is_none_or(|n| n == o_ns);
    if q.get("watch").map(String::as_str) != Some("true") {
        let s = api.0.lock().unwrap();
        let items: Vec<Value> = s
            .objects
            .iter()
            .filter(|((p, k), o)| {
                *p == plural && in_ns(k.split('/').next().unwrap()) && selected(o, &q)
            })
            .map(|(_, o)| o.clone())
            .collect();
        let body = json!({"kind": "List", "apiVersion": "v1",
            "metadata": {"resourceVersion": s.rv.to_string()}, "items": items});
        return axum::Json(body).into_response();
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    loop {
        {
            let s = api.0.lock().unwrap();
            if from < s.min_rv {
                let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": format!("too old resource version: {from}"), "reason": "Expired", "code": 410});
                if s.gone_as_event {
                    let line = json!({"type": "ERROR", "object": status}).to_string() + "\n";
                    return line.into_response();
                }
                return (StatusCode::GONE, axum::Json(status)).into_response();
            }
            let lines: String = s
                .events
                .iter()
                .filter(|(rv, p, n, e)| {
                    *rv > from && *p == plural && in_ns(n) && selected(&e["object"], &q)
                })
                .map(|(_, _, _, e)| e.to_string() + "\n")
                .collect();
            if !lines.is_empty() {
                return lines.into_response();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn serve_api(api: Api) -> String {
    let app = axum::Router::new().fallback(handle).with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

// ---------- objects in their v1 shapes ----------

fn pod(ns: &str, name: &str, app: &str, ip: &str, port: u16) -> Value {
    json!({"kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"), "labels": {"app": app}},
        "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "img:1",
            "ports": [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip, "hostIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}]}})
}

fn service(ns: &str, name: &str, scrape: bool, port: u16) -> Value {
    let ann = if scrape {
        json!({"prometheus.io/scrape": "true"})
    } else {
        json!({})
    };
    json!({"kind": "Service", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "annotations": ann},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.9",
            "ports": [{"name": "metrics", "port": port, "protocol": "TCP"}]}})
}

fn endpoints(ns: &str, name: &str, pod: &str, ip: &str, port: u16) -> Value {
    json!({"kind": "Endpoints", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns},
        "subsets": [{"addresses": [{"ip": ip, "nodeName": "n1",
                "targetRef": {"kind": "Pod", "namespace": ns, "name": pod}}],
            "ports": [{"name": "metrics", "port": port, "protocol": "TCP"}]}]})
}

fn node(name: &str, ip: &str) -> Value {
    json!({"kind": "Node", "apiVersion": "v1",
        "metadata": {"name": name, "labels": {"role": "worker"}},
        "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}})
}

// ---------- helpers ----------

fn no_cluster() -> InCluster {
    InCluster {
        host: None,
        port: None,
        token_file: "/nonexistent".into(),
        namespace_file: "/nonexistent".into(),
        ca_file: "/nonexistent".into(),
    }
}

/// Starts a discovery; its updates arrive on the returned channel.
fn start(yaml: &str) -> mpsc::UnboundedReceiver<Vec<TargetGroup>> {
    let cfg: KubernetesSdConfig = serde_norway::from_str(yaml).unwrap();
    let d = Discovery::new(&cfg, &no_cluster()).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(d.run(move |g| {
        let _ = tx.send(g);
    }));
    rx
}

/// Waits (up to 10s) for an update satisfying `cond`.
async fn next_where(
    rx: &mut mpsc::UnboundedReceiver<Vec<TargetGroup>>,
    what: &str,
    cond: impl Fn(&[TargetGroup]) -> bool,
) -> Vec<TargetGroup> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(g)) if cond(&g) => return g,
            Ok(Some(_)) => {}
            _ => panic!("timed out waiting for {what}"),
        }
    }
}

fn addresses(groups: &[TargetGroup]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|g| g.targets.iter().map(|t| t["__address__"].clone()))
        .collect()
}

// ---------- tests ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_role_lists_watches_and_relists() {
    let api = Api::default();
    api.put("pods", pod("prod", "a", "web", "10.1.0.1", 8080));
    api.put("pods", pod("prod", "db", "db", "10.1.0.9", 5432));
    api.put("pods", pod("dev", "x", "web", "10.2.0.1", 8080));
    let url = serve_api(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0k3n\n").unwrap();
    let mut rx = start(&format!(
        "role: pod\napi_server: {url}\nnamespaces: {{names: [prod]}}\nselectors: [{{role: pod, label: 'app=web'}}]\nauthorization: {{credentials_file: '{}'}}\n",
        token.display()
    ));
    // The list: only the selected pod of the watched namespace.
    let g = next_where(&mut rx, "list", |_| true).await;
    assert_eq!(addresses(&g), ["10.1.0.1:8080"]);
    assert_eq!(g[0].source, "pod/prod/a");
    assert_eq!(g[0].labels["__meta_kubernetes_pod_ready"], "true");
    assert_eq!(g[0].labels["__meta_kubernetes_namespace"], "prod");
    // ADDED, MODIFIED, DELETED through the watch.
    api.put("pods", pod("prod", "b", "web", "10.1.0.2", 8080));
    next_where(&mut rx, "added pod", |g| addresses(g).len() == 2).await;
    api.put("pods", pod("prod", "b", "web", "10.1.0.3", 9090));
    let g = next_where(&mut rx, "modified pod", |g| {
        addresses(g).contains(&"10.1.0.3:9090".to_string())
    })
    .await;
    assert_eq!(addresses(&g), ["10.1.0.1:8080", "10.1.0.3:9090"]);
    api.delete("pods", "prod", "a");
    next_where(&mut rx, "deleted pod", |g| {
        addresses(g) == ["10.1.0.3:9090"]
    })
    .await;
    // Events in other namespaces or not selected are not seen; a later selected change is.
    api.put("pods", pod("dev", "y", "web", "10.2.0.2", 8080));
    api.put("pods", pod("prod", "db2", "db", "10.1.0.8", 5432));
    api.put("pods", pod("prod", "c", "web", "10.1.0.4", 8080));
    let g = next_where(&mut rx, "pod c", |g| addresses(g).len() == 2).await;
    assert_eq!(addresses(&g), ["10.1.0.3:9090", "10.1.0.4:8080"]);
    // History compacted (410 Gone as HTTP status, then as an ERROR event): a re-list picks
    // up the current state, including changes made meanwhile.
    for as_event in [false, true] {
        let lists_before = api
            .requests()
            .iter()
            .filter(|(u, _)| !u.contains("watch=true"))
            .count();
        api.delete_compacted("pods", "prod", "c", as_event);
        next_where(&mut rx, "relisted state", |g| {
            addresses(g) == ["10.1.0.3:9090"]
        })
        .await;
        api.put("pods", pod("prod", "c", "web", "10.1.0.4", 8080));
        next_where(&mut rx, "pod c again", |g| addresses(g).len() == 2).await;
        let lists_after = api
            .requests()
            .iter()
            .filter(|(u, _)| !u.contains("watch=true"))
            .count();
        assert!(lists_after > lists_before, "no re-list after 410");
    }
    let reqs = api.requests();
    assert!(
        reqs.iter().all(|(_, auth)| auth == "Bearer t0k3n"),
        "{reqs:?}"
    );
    assert_eq!(
        reqs[0].0,
        "/api/v1/namespaces/prod/pods?labelSelector=app%3Dweb"
    );
    assert!(
        reqs.iter().any(|(u, _)| u.starts_with(
            "/api/v1/namespaces/prod/pods?labelSelector=app%3Dweb&watch=true&resourceVersion="
        )),
        "{reqs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_lists_are_retried() {
    let api = Api::default();
    api.put("nodes", node("n1", "10.0.0.1"));
    api.0.lock().unwrap().fail = 2;
    let url = serve_api(api.clone()).await;
    let mut rx = start(&format!("role: node\napi_server: {url}\n"));
    let g = next_where(&mut rx, "list after two failures", |_| true).await;
    assert_eq!(addresses(&g), ["10.0.0.1:10250"]);
    let lists = api
        .requests()
        .iter()
        .filter(|(u, _)| u == "/api/v1/nodes")
        .count();
    assert_eq!(lists, 3);
    // A failed watch: listed again (after a backoff), then watched again.
    api.0.lock().unwrap().fail = 1;
    api.put("nodes", node("n2", "10.0.0.2"));
    next_where(&mut rx, "n2", |g| addresses(g).len() == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpointslice_and_ingress_roles() {
    let api = Api::default();
    api.put("services", service("prod", "web", true, 80));
    api.put(
        "endpointslices",
        json!({"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"name": "web-abc", "namespace": "prod", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": true}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}),
    );
    api.put(
        "ingresses",
        json!({"kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"rules": [{"host": "www.example.com"}]}}),
    );
    let url = serve_api(api.clone()).await;
    let mut slices = start(&format!("role: endpointslice\napi_server: {url}\n"));
    let mut ingresses = start(&format!("role: ingress\napi_server: {url}\n"));
    let g = next_where(&mut slices, "slices", |_| true).await;
    assert_eq!(addresses(&g), ["10.1.0.5:8080"]);
    assert_eq!(
        g[0].labels["__meta_kubernetes_service_annotation_prometheus_io_scrape"],
        "true"
    );
    assert_eq!(
        g[0].targets[0]["__meta_kubernetes_endpointslice_endpoint_conditions_ready"],
        "true"
    );
    let g = next_where(&mut ingresses, "ingresses", |_| true).await;
    assert_eq!(addresses(&g), ["www.example.com"]);
    // The service's labels follow the service.
    api.put("services", service("prod", "web", false, 80));
    next_where(&mut slices, "service changed", |g| {
        !g[0]
            .labels
            .contains_key("__meta_kubernetes_service_annotation_prometheus_io_scrape")
    })
    .await;
    api.delete("endpointslices", "prod", "web-abc");
    next_where(&mut slices, "slice deleted", |g| g.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_and_service_roles() {
    let api = Api::default();
    api.put("nodes", node("n1", "10.0.0.1"));
    api.put("services", service("prod", "web", true, 80));
    let url = serve_api(api.clone()).await;
    let mut nodes = start(&format!("role: node\napi_server: {url}\n"));
    let mut services = start(&format!(
        "role: service\napi_server: {url}\nbasic_auth: {{username: u, password: p}}\n"
    ));
    let g = next_where(&mut nodes, "nodes", |_| true).await;
    assert_eq!(addresses(&g), ["10.0.0.1:10250"]);
    assert_eq!(g[0].targets[0]["instance"], "n1");
    assert_eq!(g[0].labels["__meta_kubernetes_node_label_role"], "worker");
    let g = next_where(&mut services, "services", |_| true).await;
    assert_eq!(addresses(&g), ["web.prod.svc:80"]);
    api.put("nodes", node("n2", "10.0.0.2"));
    api.delete("services", "prod", "web");
    next_where(&mut nodes, "second node", |g| addresses(g).len() == 2).await;
    next_where(&mut services, "service gone", |g| g.is_empty()).await;
    assert!(
        api.requests()
            .iter()
            .any(|(u, a)| u.starts_with("/api/v1/services") && a == "Basic dTpw")
    );
}

// ---------- through the scrape manager ----------

mod mem;
use mem::Mem;

impl Mem {
    fn samples(&self, series: &str) -> Vec<(i64, f64)> {
        let d = self.0.lock().unwrap();
        d.iter()
            .find(|(l, _)| l.to_string() == series)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }
}

async fn serve_metrics(body: &'static str) -> u16 {
    let app =
        axum::Router::new().route("/metrics", axum::routing::get(move || async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_role_targets_are_relabelled_and_scraped() {
    let port = serve_metrics("m 7\n").await;
    let other = serve_metrics("m 8\n").await;
    let api = Api::default();
    api.put("pods", pod("prod", "web-1", "web", "127.0.0.1", port));
    api.put("services", service("prod", "web", true, port));
    api.put(
        "endpoints",
        endpoints("prod", "web", "web-1", "127.0.0.1", port),
    );
    // Not annotated for scraping: dropped by relabeling.
    api.put("pods", pod("prod", "db-1", "db", "127.0.0.1", other));
    api.put("services", service("prod", "db", false, other));
    api.put(
        "endpoints",
        endpoints("prod", "db", "db-1", "127.0.0.1", other),
    );
    let url = serve_api(api.clone()).await;
    let cfg = Config::from_yaml(&format!(
        r#"global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: k8s
    kubernetes_sd_configs:
      - role: endpoints
        api_server: {url}
        namespaces: {{names: [prod]}}
    relabel_configs:
      - {{source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape], regex: 'true', action: keep}}
      - {{source_labels: [__meta_kubernetes_endpoint_ready], regex: 'true', action: keep}}
      - {{source_labels: [__meta_kubernetes_namespace], target_label: namespace}}
      - {{source_labels: [__meta_kubernetes_pod_name], target_label: pod}}
      - {{source_labels: [__meta_kubernetes_pod_container_port_name], target_label: port}}
"#
    ))
    .unwrap();
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    wait_for("one target", || m.targets().len() == 1).await;
    let t = &m.targets()[0];
    assert_eq!(t.labels["pod"], "web-1");
    assert_eq!(t.labels["namespace"], "prod");
    assert_eq!(t.labels["port"], "metrics");
    assert_eq!(t.scrape_url, format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(t.discovered_labels["__meta_kubernetes_service_name"], "web");
    let series = format!(
        r#"m{{instance="127.0.0.1:{port}", job="k8s", namespace="prod", pod="web-1", port="metrics"}}"#
    );
    wait_for("scraped sample", || !mem.samples(&series).is_empty()).await;
    assert_eq!(mem.samples(&series)[0].1, 7.0);
    // The service loses its annotation: the target goes, its series get staleness markers.
    api.put("services", service("prod", "web", false, port));
    wait_for("no targets", || m.targets().is_empty()).await;
    wait_for("stale marker", || {
        mem.samples(&series)
            .last()
            .is_some_and(|s| is_stale_nan(s.1))
    })
    .await;
    // An https API server whose CA file is missing is refused at load, naming the file.
    let bad = Config::from_yaml(
        "scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs: [{role: pod, api_server: 'https://k:6443', tls_config: {ca_file: /nonexistent/ca.pem}}]\n",
    )
    .unwrap();
    let bad = m
        .apply(&bad.global, &bad.scrape_configs)
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("api_server \"https://k:6443\": tls_config: ca_file /nonexistent/ca.pem"),
        "{bad}"
    );
    m.stop().await;
}

/// Reads one request head; returns its path and query.
async fn read_request(sock: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        sock.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    head.split(' ').nth(1).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_on_an_open_watch_stream_apply_as_they_arrive() {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut rx = start(&format!("role: node\napi_server: {url}\n"));
    // The list.
    let (mut sock, _) = listener.accept().await.unwrap();
    assert_eq!(read_request(&mut sock).await, "/api/v1/nodes");
    let list = json!({"kind": "NodeList", "metadata": {"resourceVersion": "5"},
        "items": [node("n1", "10.0.0.1")]})
    .to_string();
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{list}",
        list.len()
    );
    sock.write_all(resp.as_bytes()).await.unwrap();
    drop(sock);
    let g = next_where(&mut rx, "list", |_| true).await;
    assert_eq!(addresses(&g), ["10.0.0.1:10250"]);
    // The watch: a body without length, written event by event while the stream stays open.
    let (mut sock, _) = listener.accept().await.unwrap();
    let path = read_request(&mut sock).await;
    assert!(
        path.starts_with("/api/v1/nodes?watch=true&resourceVersion=5&allowWatchBookmarks=true"),
        "{path}"
    );
    sock.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut n2 = node("n2", "10.0.0.2");
    n2["metadata"]["resourceVersion"] = json!("6");
    let line = json!({"type": "ADDED", "object": n2}).to_string() + "\n";
    sock.write_all(line.as_bytes()).await.unwrap();
    next_where(&mut rx, "n2 added", |g| addresses(g).len() == 2).await;
    // A bookmark, then an event split mid-line across writes.
    let bookmark = json!({"type": "BOOKMARK", "object": {"kind": "Node", "metadata": {"resourceVersion": "8"}}});
    sock.write_all((bookmark.to_string() + "\n").as_bytes())
        .await
        .unwrap();
    let mut n1 = node("n1", "10.0.0.1");
    n1["metadata"]["resourceVersion"] = json!("9");
    let line = json!({"type": "DELETED", "object": n1}).to_string() + "\n";
    let (a, b) = line.split_at(line.len() / 2);
    sock.write_all(a.as_bytes()).await.unwrap();
    sock.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    sock.write_all(b.as_bytes()).await.unwrap();
    let g = next_where(&mut rx, "n1 deleted", |g| addresses(g).len() == 1).await;
    assert_eq!(addresses(&g), ["10.0.0.2:10250"]);
    // The stream drops: the next watch resumes from the last version seen.
    drop(sock);
    let (mut sock, _) = listener.accept().await.unwrap();
    let path = read_request(&mut sock).await;
    assert!(path.contains("watch=true&resourceVersion=9&"), "{path}");
}

/// The configuration shipped for clusters (deploy/kubernetes/prometheus.yml), pointed at the fake
/// API server: the exporter DaemonSet's pods become `node` targets named after their node,
/// annotated pods and service endpoints are scraped at their annotated ports, the rest is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_cluster_config_finds_the_exporters_and_annotated_pods() {
    let api = Api::default();
    let exporter = |node: &str, ip: &str| {
        json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": format!("pharos-exporter-{node}"), "namespace": "monitoring",
                "uid": format!("uid-exp-{node}"), "labels": {"app.kubernetes.io/name": "pharos-exporter"}},
            "spec": {"nodeName": node, "hostNetwork": true, "containers": [{"name": "exporter", "image": "pharos:latest",
                "ports": [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": ip, "hostIP": ip,
                "conditions": [{"type": "Ready", "status": "True"}]}})
    };
    api.put("pods", exporter("n1", "10.0.0.1"));
    api.put("pods", exporter("n2", "10.0.0.2"));
    let mut app = pod("shop", "api-7", "api", "10.1.0.7", 8080);
    app["metadata"]["annotations"] = json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9102", "prometheus.io/path": "/stats"});
    api.put("pods", app);
    // Not annotated; and annotated but finished.
    api.put("pods", pod("shop", "db-1", "db", "10.1.0.8", 5432));
    let mut done = pod("shop", "job-1", "job", "10.1.0.9", 8080);
    done["metadata"]["annotations"] = json!({"prometheus.io/scrape": "true"});
    done["status"]["phase"] = json!("Succeeded");
    api.put("pods", done);
    api.put(
        "services",
        service("kube", "kube-state-metrics", true, 8080),
    );
    api.put(
        "endpoints",
        endpoints("kube", "kube-state-metrics", "ksm-1", "10.1.0.20", 8080),
    );
    let url = serve_api(api.clone()).await;
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/kubernetes/prometheus.yml"),
    )
    .unwrap();
    // The collector reads the scrape part (the binary reads the rest; `pharos check config` and
    // promtool check the whole file in the binary's tests).
    let scrape = &shipped[shipped.find("scrape_configs:").unwrap()..];
    let yaml = scrape.replace(
        "\n      - role: ",
        &format!("\n      - api_server: {url}\n        role: "),
    );
    assert_eq!(
        yaml.matches("api_server").count(),
        3,
        "every kubernetes_sd_configs entry"
    );
    let cfg = Config::from_yaml(&yaml).unwrap();
    let m = ScrapeManager::new(Arc::new(Mem::default()));
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    wait_for("five targets", || m.targets().len() == 5).await;
    let mut got: Vec<(String, String, String)> = m
        .targets()
        .iter()
        .map(|t| {
            let l = |k: &str| t.labels.get(k).map_or("", |v| v.as_str()).to_string();
            (
                l("job"),
                t.scrape_url.clone(),
                format!(
                    "instance={} node={} namespace={} pod={} service={}",
                    l("instance"),
                    l("node"),
                    l("namespace"),
                    l("pod"),
                    l("service")
                ),
            )
        })
        .collect();
    got.sort();
    let want = [
        (
            "kubernetes-pods",
            "http://10.1.0.7:9102/stats",
            "instance=10.1.0.7:9102 node=n1 namespace=shop pod=api-7 service=",
        ),
        (
            "kubernetes-service-endpoints",
            "http://10.1.0.20:8080/metrics",
            "instance=10.1.0.20:8080 node= namespace=kube pod= service=kube-state-metrics",
        ),
        (
            "node",
            "http://10.0.0.1:9100/metrics",
            "instance=n1 node=n1 namespace= pod= service=",
        ),
        (
            "node",
            "http://10.0.0.2:9100/metrics",
            "instance=n2 node=n2 namespace= pod= service=",
        ),
        (
            "pharos",
            "http://localhost:9090/metrics",
            "instance=localhost:9090 node= namespace= pod= service=",
        ),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);
    // The node job lists only the monitoring namespace's exporter pods, by label.
    let reqs = api.requests();
    assert!(
        reqs.iter().any(
            |(u, _)| u.starts_with("/api/v1/namespaces/monitoring/pods?")
                && u.contains("labelSelector=app.kubernetes.io%2Fname%3Dpharos-exporter")
        ),
        "{reqs:?}"
    );
    m.stop().await;
}
