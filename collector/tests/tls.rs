//! TLS end to end: a CA, server and client certificates made with the `openssl` CLI, a small
//! https server (tokio-rustls) on 127.0.0.1, and scrapes, remote_write and kubernetes_sd against
//! it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pharos_collector::ScrapeManager;
use pharos_collector::config::Config;
use pharos_collector::config::GlobalConfig;
use pharos_collector::discovery::TargetGroup;
use pharos_collector::discovery::kubernetes::{Discovery, InCluster, KubernetesSdConfig};
use pharos_collector::remote::{RemoteWrite, RemoteWriteConfig};
use pharos_model::Labels;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

mod pki;
use pki::Pki;

// ---------- an https server ----------

/// One request the server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    authorization: String,
    /// The `Host` header.
    host: String,
    /// The server name the client sent in its TLS ClientHello (SNI), if any.
    sni: Option<String>,
    client_cert: bool,
    body_len: usize,
}

type Handler = fn(&str, &str) -> Option<(u16, &'static str, String)>;

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

/// Serves https on 127.0.0.1 with the `server` certificate; with `require_client_cert`, only
/// clients with a certificate signed by `ca` get through. `handler` answers (status,
/// content type, body), `None` keeps the connection open without answering (a quiet watch).
async fn serve_https(pki: &Pki, require_client_cert: bool, handler: Handler) -> (u16, Log) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki.path("server.crt"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(pki.path("ca.crt")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(certs, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Log::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let log = log2.clone();
            tokio::spawn(async move {
                // Handshake failures (a client rejecting our certificate) end here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let client_cert = tls.get_ref().1.peer_certificates().is_some();
                let sni = tls.get_ref().1.server_name().map(str::to_string);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.lines();
                let mut first = lines.next().unwrap_or("").split(' ');
                let method = first.next().unwrap_or("").to_string();
                let target = first.next().unwrap_or("").to_string();
                let mut length = 0;
                let mut authorization = String::new();
                let mut host = String::new();
                for l in lines {
                    if let Some((k, v)) = l.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        } else if k.eq_ignore_ascii_case("authorization") {
                            authorization = v.trim().to_string();
                        } else if k.eq_ignore_ascii_case("host") {
                            host = v.trim().to_string();
                        }
                    }
                }
                while buf.len() < head_end + length {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                log.0.lock().unwrap().push(Seen {
                    method: method.clone(),
                    target: target.clone(),
                    authorization,
                    host,
                    sni,
                    client_cert,
                    body_len: length,
                });
                let Some((status, content_type, body)) = handler(&method, &target) else {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, log)
}

fn metrics_handler(method: &str, target: &str) -> Option<(u16, &'static str, String)> {
    Some(match (method, target) {
        ("GET", "/metrics") => (200, "text/plain; version=0.0.4", "m 42\n".to_string()),
        ("POST", "/api/v1/write") => (204, "text/plain", String::new()),
        _ => (404, "text/plain", "not found\n".to_string()),
    })
}

// ---------- storage ----------

mod mem;
use mem::Mem;

impl Mem {
    /// The latest value of the series whose labels print as `series`.
    fn last(&self, series: &str) -> Option<f64> {
        let d = self.0.lock().unwrap();
        d.iter()
            .find(|(l, _)| l.to_string() == series)
            .and_then(|(_, s)| s.last().map(|x| x.1))
    }
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

// ---------- scrapes ----------

/// One job per `tls_config`, all scraping the same https target every second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_scrapes_follow_tls_config() {
    let pki = Pki::new();
    let (port, log) = serve_https(&pki, false, metrics_handler).await;
    let (mtls_port, mtls_log) = serve_https(&pki, true, metrics_handler).await;
    let job = |name: &str, port: u16, tls: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config: {tls}\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        )
    };
    let mut yaml = String::from("global: {scrape_interval: 1s}\nscrape_configs:\n");
    let ca = pki.p("ca.crt");
    let other = pki.p("other.crt");
    let (cert, key) = (pki.p("client.crt"), pki.p("client.key"));
    for (name, port, tls) in [
        ("ca_file", port, format!("{{ca_file: '{ca}'}}")),
        ("wrong_ca", port, format!("{{ca_file: '{other}'}}")),
        ("insecure", port, "{insecure_skip_verify: true}".to_string()),
        ("system_roots", port, "{}".to_string()),
        (
            "server_name",
            port,
            format!("{{ca_file: '{ca}', server_name: metrics.test}}"),
        ),
        (
            "wrong_server_name",
            port,
            format!("{{ca_file: '{ca}', server_name: elsewhere.test}}"),
        ),
        (
            "tls13",
            port,
            format!("{{ca_file: '{ca}', min_version: TLS13}}"),
        ),
        (
            "client_cert",
            mtls_port,
            format!("{{ca_file: '{ca}', cert_file: '{cert}', key_file: '{key}'}}"),
        ),
        ("no_client_cert", mtls_port, format!("{{ca_file: '{ca}'}}")),
    ] {
        yaml.push_str(&job(name, port, &tls));
    }
    let cfg = Config::from_yaml(&yaml).unwrap();
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    let up = |job: &str, port: u16| {
        mem.last(&format!(
            r#"up{{instance="127.0.0.1:{port}", job="{job}"}}"#
        ))
    };
    let all = [
        ("ca_file", port, 1.0, ""),
        (
            "wrong_ca",
            port,
            0.0,
            "invalid peer certificate: UnknownIssuer",
        ),
        ("insecure", port, 1.0, ""),
        (
            "system_roots",
            port,
            0.0,
            "invalid peer certificate: UnknownIssuer",
        ),
        ("server_name", port, 1.0, ""),
        (
            "wrong_server_name",
            port,
            0.0,
            "certificate not valid for name",
        ),
        ("tls13", port, 1.0, ""),
        ("client_cert", mtls_port, 1.0, ""),
        (
            "no_client_cert",
            mtls_port,
            0.0,
            "received fatal alert: CertificateRequired",
        ),
    ];
    wait_for("every job scraped once", || {
        all.iter().all(|(job, port, _, _)| up(job, *port).is_some())
    })
    .await;
    let targets = m.targets();
    for (job, port, want_up, want_err) in all {
        assert_eq!(up(job, port), Some(want_up), "up of {job}");
        let t = targets.iter().find(|t| t.scrape_pool == job).unwrap();
        assert_eq!(t.scrape_url, format!("https://127.0.0.1:{port}/metrics"));
        if want_up == 1.0 {
            assert_eq!(t.last_error, "", "{job}");
            assert_eq!(
                mem.last(&format!(r#"m{{instance="127.0.0.1:{port}", job="{job}"}}"#)),
                Some(42.0),
                "{job}"
            );
        } else {
            assert!(!t.last_error.is_empty(), "{job}");
            assert!(
                t.last_error.contains(want_err),
                "{job}: {:?} lacks {want_err:?}",
                t.last_error
            );
        }
    }
    // The server_name job's scrapes sent it as SNI, with the URL's host in the Host header;
    // the other jobs sent no SNI (an IP URL).
    let seen = log.all();
    let mut snis: Vec<Option<String>> = seen.iter().map(|s| s.sni.clone()).collect();
    snis.sort();
    snis.dedup();
    assert_eq!(snis, [None, Some("metrics.test".to_string())]);
    for s in &seen {
        assert_eq!(s.host, format!("127.0.0.1:{port}"), "{s:?}");
    }
    // The mTLS server saw only requests that carried the client certificate.
    let seen = mtls_log.all();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|s| s.client_cert), "{seen:?}");

    // Unusable TLS files reject a reload, naming the job and the file; the old config keeps
    // running.
    for (tls, want) in [
        (
            "{ca_file: /nonexistent/ca.pem}".to_string(),
            "job \"bad\": tls_config: ca_file /nonexistent/ca.pem",
        ),
        (
            format!("{{cert_file: '{cert}'}}"),
            "specified without client key file",
        ),
        (
            format!("{{ca_file: '{}'}}", pki.p("server.ext")),
            "no PEM certificate found",
        ),
    ] {
        let bad =
            Config::from_yaml(&format!("scrape_configs:\n{}", job("bad", port, &tls))).unwrap();
        let e = m
            .apply(&bad.global, &bad.scrape_configs)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e} lacks {want}");
    }
    assert_eq!(m.targets().len(), all.len());
    m.stop().await;
}

// ---------- remote_write ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_over_https_with_client_cert() {
    let pki = Pki::new();
    let (port, log) = serve_https(&pki, true, metrics_handler).await;
    let cfg: RemoteWriteConfig = serde_norway::from_str(&format!(
        "url: https://localhost:{port}/api/v1/write\ntls_config: {{ca_file: '{}', cert_file: '{}', key_file: '{}'}}\nqueue_config: {{batch_send_deadline: 100ms}}\n",
        pki.p("ca.crt"),
        pki.p("client.crt"),
        pki.p("client.key")
    ))
    .unwrap();
    let rw = RemoteWrite::new();
    rw.apply(&GlobalConfig::default(), std::slice::from_ref(&cfg))
        .unwrap();
    let tee = rw.tee(Arc::new(Mem::default()));
    let mut a = tee.appender();
    a.append(None, &Labels::from_pairs(&[("__name__", "x")]), 1000, 1.5)
        .unwrap();
    a.commit().unwrap();
    wait_for("a remote write request", || {
        log.all()
            .iter()
            .any(|s| s.method == "POST" && s.target == "/api/v1/write")
    })
    .await;
    let seen = log.all();
    let s = seen.iter().find(|s| s.method == "POST").unwrap();
    assert!(s.client_cert);
    assert!(s.body_len > 0);
    rw.stop().await;
}

// ---------- kubernetes_sd ----------

fn k8s_handler(method: &str, target: &str) -> Option<(u16, &'static str, String)> {
    if method != "GET" || !target.starts_with("/api/v1/pods") {
        return Some((404, "text/plain", "not found\n".into()));
    }
    if target.contains("watch=true") {
        return None;
    }
    let pod = serde_json::json!({"kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "web-1", "namespace": "prod", "uid": "uid-web-1", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "img:1",
            "ports": [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": "10.1.2.3", "hostIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}]}});
    let list = serde_json::json!({"kind": "PodList", "apiVersion": "v1",
        "metadata": {"resourceVersion": "7"}, "items": [pod]});
    Some((200, "application/json", list.to_string()))
}

async fn first_groups(d: Discovery) -> Vec<TargetGroup> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(d.run(move |g| {
        let _ = tx.send(g);
    }));
    let g = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("discovery within 10s")
        .unwrap();
    task.abort();
    g
}

fn addresses(groups: &[TargetGroup]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|g| g.targets.iter().map(|t| t["__address__"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_sd_in_cluster_and_https_api_server() {
    let pki = Pki::new();
    let (port, log) = serve_https(&pki, false, k8s_handler).await;
    // In cluster: https to KUBERNETES_SERVICE_HOST:PORT, the account's ca.crt and token.
    let sa = tempfile::tempdir().unwrap();
    std::fs::write(sa.path().join("token"), "sa-token\n").unwrap();
    std::fs::write(sa.path().join("namespace"), "prod\n").unwrap();
    std::fs::copy(pki.path("ca.crt"), sa.path().join("ca.crt")).unwrap();
    let env = InCluster {
        host: Some("127.0.0.1".into()),
        port: Some(port.to_string()),
        token_file: sa.path().join("token"),
        namespace_file: sa.path().join("namespace"),
        ca_file: sa.path().join("ca.crt"),
    };
    let cfg: KubernetesSdConfig = serde_norway::from_str("role: pod").unwrap();
    let groups = first_groups(Discovery::new(&cfg, &env).unwrap()).await;
    assert_eq!(addresses(&groups), ["10.1.2.3:9100"]);
    let seen = log.all();
    assert!(
        seen.iter()
            .any(|s| s.target.starts_with("/api/v1/pods") && s.authorization == "Bearer sa-token"),
        "{seen:?}"
    );

    // An explicit https api_server with tls_config.
    let cfg: KubernetesSdConfig = serde_norway::from_str(&format!(
        "role: pod\napi_server: https://localhost:{port}\nbearer_token: t\ntls_config: {{ca_file: '{}'}}\n",
        pki.p("ca.crt")
    ))
    .unwrap();
    let groups = first_groups(Discovery::new(&cfg, &InCluster::from_env()).unwrap()).await;
    assert_eq!(addresses(&groups), ["10.1.2.3:9100"]);
}

// ---------- server_name as SNI ----------

/// `tls_config.server_name` is sent in the handshake (SNI) and verified, while the connection
/// goes to the URL's address and the `Host` header stays the URL's; without it, an IP URL sends
/// no SNI (as Go's and rustls' clients do).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_name_is_sent_as_sni() {
    let pki = Pki::new();
    let (port, log) = serve_https(&pki, false, metrics_handler).await;
    let ca = pki.p("ca.crt");
    let write = |tls: &str| -> RemoteWriteConfig {
        serde_norway::from_str(&format!(
            "url: https://127.0.0.1:{port}/api/v1/write\ntls_config: {tls}\nqueue_config: {{batch_send_deadline: 100ms}}\n"
        ))
        .unwrap()
    };
    let rw = RemoteWrite::new();
    let configs = [
        write(&format!("{{ca_file: '{ca}', server_name: metrics.test}}")),
        write(&format!("{{ca_file: '{ca}'}}")),
    ];
    rw.apply(&GlobalConfig::default(), &configs).unwrap();
    let tee = rw.tee(Arc::new(Mem::default()));
    let mut a = tee.appender();
    a.append(None, &Labels::from_pairs(&[("__name__", "x")]), 1000, 1.5)
        .unwrap();
    a.commit().unwrap();
    let posts = || {
        log.all()
            .into_iter()
            .filter(|s| s.method == "POST")
            .collect::<Vec<_>>()
    };
    wait_for("two remote write requests", || posts().len() >= 2).await;
    let mut snis: Vec<Option<String>> = posts().into_iter().map(|s| s.sni).collect();
    snis.sort();
    snis.dedup();
    assert_eq!(snis, [None, Some("metrics.test".to_string())]);
    for s in posts() {
        assert_eq!(s.host, format!("127.0.0.1:{port}"), "{s:?}");
    }
    rw.stop().await;

    // kubernetes_sd: the API server is reached at its address, with the configured SNI.
    let (port, log) = serve_https(&pki, false, k8s_handler).await;
    let cfg: KubernetesSdConfig = serde_norway::from_str(&format!(
        "role: pod\napi_server: https://127.0.0.1:{port}\ntls_config: {{ca_file: '{ca}', server_name: metrics.test}}\n"
    ))
    .unwrap();
    let groups = first_groups(Discovery::new(&cfg, &InCluster::from_env()).unwrap()).await;
    assert_eq!(addresses(&groups), ["10.1.2.3:9100"]);
    let seen = log.all();
    assert!(!seen.is_empty());
    for s in &seen {
        assert_eq!(s.sni.as_deref(), Some("metrics.test"), "{s:?}");
        assert_eq!(s.host, format!("127.0.0.1:{port}"), "{s:?}");
    }
}

/// The rewriting behind it, case by case.
#[test]
fn sni_endpoints() {
    #[track_caller]
    fn check(url: &str, server_name: &str, want_url: &str, want_host: Option<&str>) {
        let tls = pharos_collector::auth::TlsConfig {
            server_name: server_name.into(),
            insecure_skip_verify: true,
            ..Default::default()
        };
        let (_, ep) =
            pharos_collector::tls::sni_builder(Some(&tls), &reqwest::Url::parse(url).unwrap())
                .unwrap();
        assert_eq!(ep.url.as_str(), want_url, "{url} {server_name}");
        assert_eq!(ep.host.as_deref(), want_host, "{url} {server_name}");
    }
    check(
        "https://10.0.0.1:8443/m?x=1",
        "a.test",
        "https://a.test:8443/m?x=1",
        Some("10.0.0.1:8443"),
    );
    check(
        "https://[::1]/m",
        "a.test",
        "https://a.test/m",
        Some("[::1]"),
    );
    check(
        "https://node-1:10250/metrics",
        "kubelet",
        "https://kubelet:10250/metrics",
        Some("node-1:10250"),
    );
    // Nothing to do: plain http, no server_name, the same name, an IP server_name.
    check("http://10.0.0.1:80/m", "a.test", "http://10.0.0.1/m", None);
    check("https://10.0.0.1/m", "", "https://10.0.0.1/m", None);
    check("https://A.test/m", "a.test", "https://a.test/m", None);
    check("https://a.test/m", "10.0.0.2", "https://a.test/m", None);
}
