//! `kubernetes_sd_configs`: targets from the Kubernetes API, as Prometheus 2.42 discovers them.
//!
//! Roles `node`, `pod`, `service`, `endpoints`, `endpointslice` (`discovery.k8s.io/v1`) and
//! `ingress` (`networking.k8s.io/v1`). For each resource a role needs (endpoints and
//! endpointslices also need services and pods; `attach_metadata: {node: true}` adds nodes) and each watched namespace, a task lists the objects
//! (`GET /api/v1/namespaces/<ns>/pods?labelSelector=..&fieldSelector=..`), then watches from the
//! list's `resourceVersion` (`?watch=true`, one JSON event per line: `ADDED`, `MODIFIED`,
//! `DELETED`, `BOOKMARK`, `ERROR`). A watch that ends is resumed from the last version seen; a
//! `410 Gone` (as a status or an `ERROR` event) or any error re-lists, errors after a backoff
//! that doubles from 1s up to 30s. Once every list has completed, the groups of all objects are
//! rebuilt ([`build`]) after each batch of events and handed on when they changed.
//!
//! Connection: `api_server` with `basic_auth`, `authorization` or `bearer_token(_file)`, or,
//! without `api_server`, the in-cluster service account ([`InCluster`]: `https` to
//! `KUBERNETES_SERVICE_HOST:PORT`, verified with the account's `ca.crt`, with its token). `http`
//! and `https` API servers are supported; `tls_config` applies as for scrapes ([`crate::tls`]).

pub mod build;
pub mod objects;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use self::build::Store;
use self::objects::{List, ObjectMeta, Status, WatchEvent};
use super::TargetGroup;
use crate::auth::{Authorization, BasicAuth, HttpClientConfig, TlsConfig};
use crate::{Error, Result};

/// The kind of object whose targets are discovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// One target per node (kubelet address).
    Node,
    /// One target per declared container port of every pod.
    Pod,
    /// One target per endpoint address and port.
    Endpoints,
    /// One target per service port.
    Service,
    /// One target per endpoint address and port of every EndpointSlice.
    EndpointSlice,
    /// One target per ingress rule host and path.
    Ingress,
}

impl Role {
    /// The name used in configs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Pod => "pod",
            Role::Endpoints => "endpoints",
            Role::Service => "service",
            Role::EndpointSlice => "endpointslice",
            Role::Ingress => "ingress",
        }
    }

    /// The roles whose `selectors` apply to this role's watches.
    fn allowed_selectors(self) -> &'static [Role] {
        match self {
            Role::Endpoints => &[Role::Pod, Role::Service, Role::Endpoints],
            Role::EndpointSlice => &[Role::Pod, Role::Service, Role::EndpointSlice],
            Role::Node => &[Role::Node],
            Role::Pod => &[Role::Pod],
            Role::Service => &[Role::Service],
            Role::Ingress => &[Role::Ingress],
        }
    }
}

/// `namespaces`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    /// Namespaces to watch (all when empty and `own_namespace` is false).
    #[serde(default)]
    pub names: Vec<String>,
    /// Also the namespace Pharos runs in (read from the service account's `namespace` file).
    #[serde(default)]
    pub own_namespace: bool,
}

/// One `selectors` entry: label and field selectors passed to the API server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// The role whose objects are selected.
    pub role: Role,
    /// A label selector (`app=web`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// A field selector (`metadata.name=x`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// `attach_metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachMetadata {
    /// Add the node name and node labels to pod targets (roles `pod` and `endpoints`).
    #[serde(default)]
    pub node: bool,
}

/// One `kubernetes_sd_configs` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSdConfig {
    /// The role.
    pub role: Role,
    /// API server URL; empty: in-cluster (service account).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_server: String,
    /// Namespaces to watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Namespaces>,
    /// Selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<Selector>,
    /// Extra metadata on targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_metadata: Option<AttachMetadata>,
    /// A kubeconfig file (not supported: use `api_server` and credentials).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kubeconfig_file: String,
    /// `basic_auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// `authorization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// Legacy bearer token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bearer_token: String,
    /// Legacy bearer token file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bearer_token_file: String,
    /// `tls_config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    /// Follow redirects (true).
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
}

fn default_true() -> bool {
    true
}

impl KubernetesSdConfig {
    /// The HTTP client part.
    pub fn http(&self) -> HttpClientConfig {
        HttpClientConfig {
            basic_auth: self.basic_auth.clone(),
            authorization: self.authorization.clone(),
            bearer_token: self.bearer_token.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            tls_config: self.tls_config.clone(),
            follow_redirects: self.follow_redirects,
        }
    }

    /// The checks Prometheus makes at load, plus what this build cannot do (kubeconfig files).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(format!("kubernetes_sd_configs: {m}")));
        if !self.kubeconfig_file.is_empty() {
            if !self.api_server.is_empty() {
                return bad("cannot use 'kubeconfig_file' and 'api_server' simultaneously".into());
            }
            return bad(format!(
                "kubeconfig_file {:?} is not supported; use api_server and credentials",
                self.kubeconfig_file
            ));
        }
        self.http().validate()?;
        if self.api_server.is_empty() {
            let default = HttpClientConfig {
                follow_redirects: true,
                ..HttpClientConfig::default()
            };
            if self.http() != default {
                return bad(
                    "to use custom HTTP client configuration please provide the 'api_server' URL explicitly"
                        .into(),
                );
            }
        } else {
            let url = reqwest::Url::parse(&self.api_server).map_err(|e| {
                Error::InvalidConfig(format!(
                    "kubernetes_sd_configs: api_server {:?}: {e}",
                    self.api_server
                ))
            })?;
            match url.scheme() {
                "http" | "https" => {}
                s => {
                    return bad(format!(
                        "api_server {:?}: scheme {s:?} is not http or https",
                        self.api_server
                    ));
                }
            }
        }
        if !self.api_server.is_empty() && self.namespaces.as_ref().is_some_and(|n| n.own_namespace)
        {
            return bad(
                "cannot use 'api_server' and 'namespaces.own_namespace' simultaneously".into(),
            );
        }
        let mut seen = BTreeSet::new();
        for s in &self.selectors {
            if !seen.insert(s.role) {
                return bad(format!("duplicated selector role: {}", s.role.name()));
            }
            let allowed = self.role.allowed_selectors();
            if !allowed.contains(&s.role) {
                let names: Vec<&str> = allowed.iter().map(|r| r.name()).collect();
                return bad(format!(
                    "{} role supports only {} selectors",
                    self.role.name(),
                    names.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// Where the in-cluster connection comes from: `KUBERNETES_SERVICE_HOST`/`_PORT` and the service
/// account's token and namespace files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InCluster {
    /// `KUBERNETES_SERVICE_HOST`.
    pub host: Option<String>,
    /// `KUBERNETES_SERVICE_PORT`.
    pub port: Option<String>,
    /// The bearer token file, read at every request.
    pub token_file: PathBuf,
    /// The file naming the namespace Pharos runs in (`own_namespace`).
    pub namespace_file: PathBuf,
    /// The CA bundle the API server's certificate is verified with.
    pub ca_file: PathBuf,
}

const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

impl InCluster {
    /// From the environment and the standard service account mount.
    pub fn from_env() -> Self {
        Self {
            host: std::env::var("KUBERNETES_SERVICE_HOST").ok(),
            port: std::env::var("KUBERNETES_SERVICE_PORT").ok(),
            token_file: PathBuf::from(SERVICE_ACCOUNT).join("token"),
            namespace_file: PathBuf::from(SERVICE_ACCOUNT).join("namespace"),
            ca_file: PathBuf::from(SERVICE_ACCOUNT).join("ca.crt"),
        }
    }

    /// The namespace Pharos runs in.
    fn own_namespace(&self) -> Result<String> {
        std::fs::read_to_string(&self.namespace_file)
            .map(|s| s.trim().to_string())
            .map_err(|e| Error::Io {
                context: format!(
                    "kubernetes_sd_configs: own_namespace: reading {}",
                    self.namespace_file.display()
                ),
                source: e,
            })
    }
}

/// The namespaces to watch, sorted and unique; empty: all.
fn watched_namespaces(cfg: &KubernetesSdConfig, env: &InCluster) -> Result<Vec<String>> {
    let mut namespaces = Vec::new();
    if let Some(ns) = &cfg.namespaces {
        namespaces.extend(ns.names.iter().cloned());
        if ns.own_namespace {
            namespaces.push(env.own_namespace()?);
        }
    }
    namespaces.sort();
    namespaces.dedup();
    Ok(namespaces)
}

/// A resource a role watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Node,
    Pod,
    Service,
    Endpoints,
    EndpointSlice,
    Ingress,
}

impl Kind {
    /// API group path and plural name.
    fn path(self) -> (&'static str, &'static str) {
        match self {
            Kind::Node => ("/api/v1", "nodes"),
            Kind::Pod => ("/api/v1", "pods"),
            Kind::Service => ("/api/v1", "services"),
            Kind::Endpoints => ("/api/v1", "endpoints"),
            Kind::EndpointSlice => ("/apis/discovery.k8s.io/v1", "endpointslices"),
            Kind::Ingress => ("/apis/networking.k8s.io/v1", "ingresses"),
        }
    }

    /// The selector role that filters this resource.
    fn selector_role(self) -> Role {
        match self {
            Kind::Node => Role::Node,
            Kind::Pod => Role::Pod,
            Kind::Service => Role::Service,
            Kind::Endpoints => Role::Endpoints,
            Kind::EndpointSlice => Role::EndpointSlice,
            Kind::Ingress => Role::Ingress,
        }
    }

    fn decode(self, v: serde_json::Value) -> serde_json::Result<Object> {
        Ok(match self {
            Kind::Node => Object::Node(serde_json::from_value(v)?),
            Kind::Pod => Object::Pod(serde_json::from_value(v)?),
            Kind::Service => Object::Service(serde_json::from_value(v)?),
            Kind::Endpoints => Object::Endpoints(serde_json::from_value(v)?),
            Kind::EndpointSlice => Object::EndpointSlice(serde_json::from_value(v)?),
            Kind::Ingress => Object::Ingress(serde_json::from_value(v)?),
        })
    }
}

/// A decoded object of any watched kind.
#[derive(Debug, Clone)]
enum Object {
    Node(objects::Node),
    Pod(objects::Pod),
    Service(objects::Service),
    Endpoints(objects::Endpoints),
    EndpointSlice(objects::EndpointSlice),
    Ingress(objects::Ingress),
}

impl Object {
    fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Node(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::Endpoints(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Ingress(o) => &o.metadata,
        }
    }
}

/// What a watch task reports to the aggregator.
#[derive(Debug)]
enum Update {
    /// A full list of `kind` in one namespace (`None`: all, or cluster-scoped).
    Replace(Kind, Option<String>, Vec<Object>),
    /// An object added or modified.
    Upsert(Object),
    /// An object deleted.
    Delete(Object),
}

impl Store {
    /// Forgets the objects of `kind` in `ns` (all namespaces: `None`).
    fn clear(&mut self, kind: Kind, ns: Option<&str>) {
        fn drop_ns<T>(map: &mut BTreeMap<String, T>, ns: Option<&str>) {
            match ns {
                None => map.clear(),
                Some(ns) => map.retain(|k, _| k.split_once('/').map(|(n, _)| n) != Some(ns)),
            }
        }
        match kind {
            Kind::Node => drop_ns(&mut self.nodes, ns),
            Kind::Pod => drop_ns(&mut self.pods, ns),
            Kind::Service => drop_ns(&mut self.services, ns),
            Kind::Endpoints => drop_ns(&mut self.endpoints, ns),
            Kind::EndpointSlice => drop_ns(&mut self.endpointslices, ns),
            Kind::Ingress => drop_ns(&mut self.ingresses, ns),
        }
    }

    fn apply(&mut self, u: Update) {
        match u {
            Update::Replace(kind, ns, items) => {
                self.clear(kind, ns.as_deref());
                for o in items {
                    self.apply(Update::Upsert(o));
                }
            }
            Update::Upsert(o) => match o {
                Object::Node(o) => {
                    self.nodes.insert(o.metadata.name.clone(), o);
                }
                Object::Pod(o) => {
                    self.pods.insert(o.metadata.key(), o);
                }
                Object::Service(o) => {
                    self.services.insert(o.metadata.key(), o);
                }
                Object::Endpoints(o) => {
                    self.endpoints.insert(o.metadata.key(), o);
                }
                Object::EndpointSlice(o) => {
                    self.endpointslices.insert(o.metadata.key(), o);
                }
                Object::Ingress(o) => {
                    self.ingresses.insert(o.metadata.key(), o);
                }
            },
            Update::Delete(o) => match o {
                Object::Node(o) => {
                    self.nodes.remove(&o.metadata.name);
                }
                Object::Pod(o) => {
                    self.pods.remove(&o.metadata.key());
                }
                Object::Service(o) => {
                    self.services.remove(&o.metadata.key());
                }
                Object::Endpoints(o) => {
                    self.endpoints.remove(&o.metadata.key());
                }
                Object::EndpointSlice(o) => {
                    self.endpointslices.remove(&o.metadata.key());
                }
                Object::Ingress(o) => {
                    self.ingresses.remove(&o.metadata.key());
                }
            },
        }
    }
}

/// First and longest wait after a failed list or watch.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
/// `timeoutSeconds` asked of the API server for each watch; the client gives up 30s later.
const WATCH_TIMEOUT: Duration = Duration::from_secs(300);

/// What one discovery needs at run time, shared by its watch tasks.
#[derive(Debug)]
struct Conn {
    /// The API server's URL (its host rewritten to `tls_config.server_name`, see
    /// [`crate::tls::Endpoint`]).
    base: reqwest::Url,
    /// The `Host` header to send when `base` was rewritten.
    host: Option<String>,
    http: HttpClientConfig,
    client: reqwest::Client,
    selectors: Vec<Selector>,
}

/// A running `kubernetes_sd_configs` entry: resolved connection, namespaces and role.
#[derive(Debug, Clone)]
pub struct Discovery {
    role: Role,
    attach_node: bool,
    /// Watched namespaces; empty: all.
    namespaces: Vec<String>,
    conn: Arc<Conn>,
}

impl Discovery {
    /// Resolves the connection (explicit `api_server` or in-cluster from `env`) and the
    /// namespaces. Fails for in-cluster configs outside a cluster, when `own_namespace` cannot be
    /// read, and when a TLS file (`tls_config`, the in-cluster `ca.crt`) cannot be loaded.
    pub fn new(cfg: &KubernetesSdConfig, env: &InCluster) -> Result<Self> {
        cfg.validate()?;
        let (base, http) = if cfg.api_server.is_empty() {
            let (Some(host), Some(port)) = (&env.host, &env.port) else {
                return Err(Error::InvalidConfig(
                    "kubernetes_sd_configs: unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined".into(),
                ));
            };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            let url = format!("https://{host}:{port}");
            let http = HttpClientConfig {
                bearer_token_file: env.token_file.display().to_string(),
                tls_config: Some(TlsConfig {
                    ca_file: env.ca_file.display().to_string(),
                    ..TlsConfig::default()
                }),
                ..HttpClientConfig::default()
            };
            (url, http)
        } else {
            (cfg.api_server.clone(), cfg.http())
        };
        let written = base;
        let base = reqwest::Url::parse(&written).map_err(|e| {
            Error::InvalidConfig(format!(
                "kubernetes_sd_configs: api_server {written:?}: {e}"
            ))
        })?;
        let namespaces = watched_namespaces(cfg, env)?;
        let (b, endpoint) =
            crate::tls::sni_builder(http.tls_config.as_ref(), &base).map_err(|e| match e {
                Error::InvalidConfig(m) => Error::InvalidConfig(format!(
                    "kubernetes_sd_configs: api_server {written:?}: {m}"
                )),
                other => other,
            })?;
        let mut b = b
            .user_agent(concat!("Pharos/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10));
        if !cfg.follow_redirects {
            b = b.redirect(reqwest::redirect::Policy::none());
        }
        let client = b.build().map_err(|e| Error::HttpClient(e.to_string()))?;
        Ok(Self {
            role: cfg.role,
            attach_node: cfg.attach_metadata.as_ref().is_some_and(|a| a.node),
            namespaces,
            conn: Arc::new(Conn {
                base: endpoint.url,
                host: endpoint.host,
                http,
                client,
                selectors: cfg.selectors.clone(),
            }),
        })
    }

    /// The resources this role watches.
    fn kinds(&self) -> Vec<Kind> {
        let mut k = match self.role {
            Role::Node => vec![Kind::Node],
            Role::Pod => vec![Kind::Pod],
            Role::Service => vec![Kind::Service],
            Role::Endpoints => vec![Kind::Endpoints, Kind::Service, Kind::Pod],
            Role::EndpointSlice => vec![Kind::EndpointSlice, Kind::Service, Kind::Pod],
            Role::Ingress => vec![Kind::Ingress],
        };
        let with_pods = matches!(self.role, Role::Pod | Role::Endpoints | Role::EndpointSlice);
        if self.attach_node && with_pods {
            k.push(Kind::Node);
        }
        k
    }

    /// Lists and watches until dropped, calling `sink` with the full set of groups once every
    /// resource has been listed and after every change.
    pub async fn run(self, mut sink: impl FnMut(Vec<TargetGroup>) + Send + 'static) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        let mut pending = BTreeSet::new();
        for kind in self.kinds() {
            let scopes: Vec<Option<String>> = if kind == Kind::Node || self.namespaces.is_empty() {
                vec![None]
            } else {
                self.namespaces.iter().cloned().map(Some).collect()
            };
            for ns in scopes {
                pending.insert((kind, ns.clone()));
                tasks.spawn(watch_loop(self.conn.clone(), kind, ns, tx.clone()));
            }
        }
        drop(tx);
        let mut store = Store::default();
        let mut last: Option<Vec<TargetGroup>> = None;
        while let Some(u) = rx.recv().await {
            let mut batch = vec![u];
            while let Ok(u) = rx.try_recv() {
                batch.push(u);
            }
            for u in batch {
                if let Update::Replace(kind, ns, _) = &u {
                    pending.remove(&(*kind, ns.clone()));
                }
                store.apply(u);
            }
            if !pending.is_empty() {
                continue;
            }
            let groups = build::groups(self.role, &store, self.attach_node);
            if last.as_ref() != Some(&groups) {
                sink(groups.clone());
                last = Some(groups);
            }
        }
    }
}

/// How a watch ended.
enum WatchEnd {
    /// The server closed the stream: watch again from the last version.
    Closed,
    /// The version is too old (410 Gone): list again.
    Gone,
}

/// List, then watch, forever; errors back off (doubling until a watch runs to its end) and
/// re-list.
async fn watch_loop(
    conn: Arc<Conn>,
    kind: Kind,
    ns: Option<String>,
    tx: mpsc::UnboundedSender<Update>,
) {
    let mut backoff = BACKOFF.0;
    loop {
        let mut rv = match list(&conn, kind, ns.as_deref()).await {
            Ok((items, rv)) => {
                if tx.send(Update::Replace(kind, ns.clone(), items)).is_err() {
                    return;
                }
                rv
            }
            Err(e) => {
                tracing::error!("kubernetes_sd: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
                continue;
            }
        };
        loop {
            match watch(&conn, kind, ns.as_deref(), &mut rv, &tx).await {
                Ok(WatchEnd::Closed) => {
                    if tx.is_closed() {
                        return;
                    }
                    // A watch that ran to its end: the server is healthy again.
                    backoff = BACKOFF.0;
                }
                Ok(WatchEnd::Gone) => {
                    tracing::debug!(
                        ?kind,
                        "kubernetes_sd: resource version {rv} gone, listing again"
                    );
                    break;
                }
                Err(e) => {
                    tracing::error!("kubernetes_sd: {e}; listing again in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF.1);
                    break;
                }
            }
        }
    }
}

/// The URL of a list or watch of `kind` in `ns`, with the selectors for that kind.
fn resource_url(conn: &Conn, kind: Kind, ns: Option<&str>) -> reqwest::Url {
    let (group, plural) = kind.path();
    let path = match ns {
        Some(ns) => format!("{group}/namespaces/{ns}/{plural}"),
        None => format!("{group}/{plural}"),
    };
    let mut url = conn.base.clone();
    let prefix = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{prefix}{path}"));
    {
        let mut q = url.query_pairs_mut();
        if let Some(s) = conn
            .selectors
            .iter()
            .find(|s| s.role == kind.selector_role())
        {
            if !s.label.is_empty() {
                q.append_pair("labelSelector", &s.label);
            }
            if !s.field.is_empty() {
                q.append_pair("fieldSelector", &s.field);
            }
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    url
}

/// A GET with credentials and `Accept: application/json`.
async fn get(
    conn: &Conn,
    url: reqwest::Url,
    timeout: Duration,
) -> std::result::Result<reqwest::Response, String> {
    let shown = url.to_string();
    let mut req = conn.client.get(url);
    if let Some(h) = &conn.host {
        req = req.header(reqwest::header::HOST, h);
    }
    let req = conn
        .http
        .apply(req)
        .map_err(|e| e.to_string())?
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(timeout);
    req.send()
        .await
        .map_err(|e| format!("GET {shown}: {}", chain(&e)))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Lists `kind` in `ns`: the objects and the version to watch from.
async fn list(
    conn: &Conn,
    kind: Kind,
    ns: Option<&str>,
) -> std::result::Result<(Vec<Object>, String), String> {
    let url = resource_url(conn, kind, ns);
    let shown = url.to_string();
    let resp = get(conn, url, Duration::from_secs(60)).await?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("GET {shown}: reading body: {}", chain(&e)))?;
    if !status.is_success() {
        let msg = serde_json::from_slice::<Status>(&body)
            .map(|s| s.message)
            .unwrap_or_default();
        return Err(format!(
            "GET {shown}: server returned HTTP status {status}: {msg}"
        ));
    }
    let list: List<serde_json::Value> =
        serde_json::from_slice(&body).map_err(|e| format!("GET {shown}: decoding list: {e}"))?;
    let mut items = Vec::with_capacity(list.items.len());
    for v in list.items {
        match kind.decode(v) {
            Ok(o) => items.push(o),
            Err(e) => tracing::warn!("kubernetes_sd: GET {shown}: skipping undecodable item: {e}"),
        }
    }
    Ok((items, list.metadata.resource_version))
}

/// Watches from `rv`, sending events and advancing `rv`, until the stream ends.
async fn watch(
    conn: &Conn,
    kind: Kind,
    ns: Option<&str>,
    rv: &mut String,
    tx: &mpsc::UnboundedSender<Update>,
) -> std::result::Result<WatchEnd, String> {
    let mut url = resource_url(conn, kind, ns);
    url.query_pairs_mut()
        .append_pair("watch", "true")
        .append_pair("resourceVersion", rv)
        .append_pair("allowWatchBookmarks", "true")
        .append_pair("timeoutSeconds", &WATCH_TIMEOUT.as_secs().to_string());
    let shown = url.to_string();
    let mut resp = get(conn, url, WATCH_TIMEOUT + Duration::from_secs(30)).await?;
    let status = resp.status();
    if status == reqwest::StatusCode::GONE {
        return Ok(WatchEnd::Gone);
    }
    if !status.is_success() {
        return Err(format!("GET {shown}: server returned HTTP status {status}"));
    }
    let mut lines = LineBuffer::default();
    let mut events = 0usize;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            // A timeout or reset ends this watch like a close; the next one resumes from `rv`.
            Err(e) if e.is_timeout() => return Ok(WatchEnd::Closed),
            Err(e) => return Err(format!("GET {shown}: reading watch stream: {}", chain(&e))),
        };
        for line in lines.push(&chunk) {
            events += 1;
            if let Some(end) =
                handle_event(kind, &line, rv, tx).map_err(|e| format!("GET {shown}: {e}"))?
            {
                return Ok(end);
            }
        }
    }
    if events == 0 {
        // A server that ends watches at once must not make this a busy loop.
        tokio::time::sleep(BACKOFF.0).await;
    }
    Ok(WatchEnd::Closed)
}

/// Applies one watch line; `Some` ends the watch.
fn handle_event(
    kind: Kind,
    line: &[u8],
    rv: &mut String,
    tx: &mpsc::UnboundedSender<Update>,
) -> std::result::Result<Option<WatchEnd>, String> {
    let ev: WatchEvent =
        serde_json::from_slice(line).map_err(|e| format!("decoding watch event: {e}"))?;
    if ev.kind == "ERROR" {
        let st: Status = serde_json::from_value(ev.object).unwrap_or_default();
        if st.code == 410 {
            return Ok(Some(WatchEnd::Gone));
        }
        return Err(format!("watch error {}: {}", st.code, st.message));
    }
    if ev.kind == "BOOKMARK" {
        if let Some(v) = ev
            .object
            .pointer("/metadata/resourceVersion")
            .and_then(|v| v.as_str())
        {
            *rv = v.to_string();
        }
        return Ok(None);
    }
    let obj = kind
        .decode(ev.object)
        .map_err(|e| format!("decoding {} object: {e}", ev.kind))?;
    if !obj.meta().resource_version.is_empty() {
        *rv = obj.meta().resource_version.clone();
    }
    let u = match ev.kind.as_str() {
        "ADDED" | "MODIFIED" => Update::Upsert(obj),
        "DELETED" => Update::Delete(obj),
        other => {
            tracing::warn!("kubernetes_sd: ignoring watch event of type {other:?}");
            return Ok(None);
        }
    };
    if tx.send(u).is_err() {
        return Ok(Some(WatchEnd::Closed));
    }
    Ok(None)
}

/// Splits a byte stream into lines, whatever the chunk boundaries.
#[derive(Debug, Default)]
struct LineBuffer {
    /// The unfinished line.
    buf: Vec<u8>,
}

impl LineBuffer {
    /// The complete non-blank lines that `chunk` finishes. Only the new bytes are searched for
    /// line ends, so a large object arriving in many chunks costs linear time.
    fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            self.buf.extend_from_slice(&rest[..=i]);
            rest = &rest[i + 1..];
            let line = std::mem::take(&mut self.buf);
            if line.iter().any(|b| !b.is_ascii_whitespace()) {
                out.push(line);
            }
        }
        self.buf.extend_from_slice(rest);
        out
    }
}

#[cfg(test)]
mod tests;
