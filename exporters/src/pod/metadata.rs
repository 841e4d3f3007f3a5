//! Pod and container names for the IDs found in cgroup paths.
//!
//! [`Source::Kubelet`] reads what the kubelet and the container runtime leave on the node (paths
//! under the host's root file system):
//! 1. the OCI bundle of each container, whose `config.json` annotations carry the pod name,
//!    namespace and UID, the container name, the image and whether it is the pod sandbox:
//!    containerd `run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/config.json`, CRI-O
//!    `run/containers/storage/overlay-containers/<id>/userdata/config.json` (or under
//!    `var/lib/containers/storage`);
//! 2. failing that, the kubelet's log layout: `var/log/containers/<pod>_<namespace>_<container>-
//!    <id>.log` and `var/log/pods/<namespace>_<pod>_<uid>/` (no image there).
//!
//! [`Source::PodList`] reads a `PodList` JSON document (`GET /pods` of the kubelet's read-only
//! port, or `GET /api/v1/pods?fieldSelector=spec.nodeName=<node>` of the API server) from a file or
//! a plain-HTTP URL (e.g. through `kubectl proxy`); it is re-read when an ID is unknown, at most
//! once per scrape.
//!
//! What a container ID resolves to never changes, so results are cached until the ID stops
//! appearing in the cgroup tree.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// Where pod and container names come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    /// No names: only `id` (the cgroup path) is filled in.
    None,
    /// Files of the kubelet and the container runtime under the host's root file system.
    #[default]
    Kubelet,
    /// A PodList JSON document at this file path or `http://` URL.
    PodList(String),
}

impl std::str::FromStr for Source {
    type Err = String;

    /// `none`, `kubelet`, or a PodList location (`http://host:port/path` or a file path).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Source::None),
            "kubelet" => Ok(Source::Kubelet),
            "" => Err("empty metadata source (want none, kubelet, a URL or a file)".into()),
            s if s.starts_with("https://") => Err(format!(
                "{s}: https is not supported; use the kubelet's read-only port or kubectl proxy"
            )),
            s => Ok(Source::PodList(s.to_string())),
        }
    }
}

/// Names of one container (or pod sandbox).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Pod UID.
    pub pod_uid: String,
    /// Container name (`""` for a containerd sandbox, `POD` for a CRI-O one, as the kubelet
    /// reports them).
    pub container: String,
    /// Image reference.
    pub image: String,
}

/// Names of one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// The cache of resolved names.
#[derive(Debug)]
pub struct Resolver {
    source: Source,
    rootfs: PathBuf,
    containers: HashMap<String, Container>,
    pods: HashMap<String, Pod>,
}

impl Resolver {
    /// A resolver reading `source`; kubelet and runtime paths are taken below `rootfs`.
    pub fn new(source: Source, rootfs: &Path) -> Self {
        Self {
            source,
            rootfs: rootfs.to_path_buf(),
            containers: HashMap::new(),
            pods: HashMap::new(),
        }
    }

    /// Resolves what is not cached yet of `container_ids` and `pod_uids` and forgets IDs that
    /// are no longer present. Returns a description of a failure of the metadata source (the
    /// scrape goes on without names).
    pub fn refresh(
        &mut self,
        container_ids: &HashSet<&str>,
        pod_uids: &HashSet<&str>,
    ) -> Option<String> {
        self.containers
            .retain(|k, _| container_ids.contains(k.as_str()));
        self.pods.retain(|k, _| pod_uids.contains(k.as_str()));
        let missing_c: Vec<&str> = container_ids
            .iter()
            .copied()
            .filter(|id| !self.containers.contains_key(*id))
            .collect();
        let missing_p = pod_uids.iter().any(|u| !self.pods.contains_key(*u));
        if missing_c.is_empty() && !missing_p {
            return None;
        }
        match self.source.clone() {
            Source::None => None,
            Source::Kubelet => {
                self.load_kubelet(&missing_c, pod_uids);
                None
            }
            Source::PodList(loc) => match fetch(&loc) {
                Ok(text) => self
                    .load_pod_list(&text)
                    .err()
                    .map(|e| format!("{loc}: {e}")),
                Err(e) => Some(format!("{loc}: {e}")),
            },
        }
    }

    /// The names of container `id`, if known.
    pub fn container(&self, id: &str) -> Option<&Container> {
        self.containers.get(id)
    }

    /// The names of pod `uid`, if known.
    pub fn pod(&self, uid: &str) -> Option<&Pod> {
        self.pods.get(uid)
    }

    fn load_kubelet(&mut self, missing: &[&str], pod_uids: &HashSet<&str>) {
        let mut unresolved = Vec::new();
        for id in missing {
            match self.bundle(id) {
                Some(c) => self.insert(id, c),
                None => unresolved.push(*id),
            }
        }
        if !unresolved.is_empty() {
            self.load_log_names(&unresolved);
        }
        if pod_uids.iter().any(|u| !self.pods.contains_key(*u)) {
            self.load_pod_logs();
        }
    }

    fn insert(&mut self, id: &str, c: Container) {
        if !c.pod_uid.is_empty() && !c.pod.is_empty() {
            self.pods.entry(c.pod_uid.clone()).or_insert_with(|| Pod {
                namespace: c.namespace.clone(),
                name: c.pod.clone(),
            });
        }
        self.containers.insert(id.to_string(), c);
    }

    /// The annotations of the container's OCI bundle (containerd or CRI-O).
    fn bundle(&self, id: &str) -> Option<Container> {
        let candidates = [
            format!("run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}/config.json"),
            format!("run/containers/storage/overlay-containers/{id}/userdata/config.json"),
            format!("var/lib/containers/storage/overlay-containers/{id}/userdata/config.json"),
        ];
        for rel in candidates {
            let Ok(text) = std::fs::read_to_string(self.rootfs.join(&rel)) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                tracing::debug!(path = %rel, "container bundle config is not JSON");
                continue;
            };
            let a = |k: &str| {
                v.get("annotations")
                    .and_then(|a| a.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            // containerd's CRI plugin.
            if !a("io.kubernetes.cri.sandbox-uid").is_empty() {
                let sandbox = a("io.kubernetes.cri.container-type") == "sandbox";
                return Some(Container {
                    namespace: a("io.kubernetes.cri.sandbox-namespace"),
                    pod: a("io.kubernetes.cri.sandbox-name"),
                    pod_uid: a("io.kubernetes.cri.sandbox-uid"),
                    container: if sandbox {
                        String::new()
                    } else {
                        a("io.kubernetes.cri.container-name")
                    },
                    image: a("io.kubernetes.cri.image-name"),
                });
            }
            // CRI-O.
            if !a("io.kubernetes.pod.uid").is_empty() {
                return Some(Container {
                    namespace: a("io.kubernetes.pod.namespace"),
                    pod: a("io.kubernetes.pod.name"),
                    pod_uid: a("io.kubernetes.pod.uid"),
                    container: a("io.kubernetes.container.name"),
                    image: a("io.kubernetes.cri-o.ImageName"),
                });
            }
        }
        None
    }

    /// `var/log/containers/<pod>_<namespace>_<container>-<id>.log` (names cannot hold `_`).
    fn load_log_names(&mut self, ids: &[&str]) {
        let Ok(entries) = std::fs::read_dir(self.rootfs.join("var/log/containers")) else {
            return;
        };
        let wanted: HashSet<&str> = ids.iter().copied().collect();
        for e in entries.flatten() {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let Some((pod, ns, container, id)) = parse_log_name(&name) else {
                continue;
            };
            if wanted.contains(id) {
                let c = Container {
                    namespace: ns.to_string(),
                    pod: pod.to_string(),
                    pod_uid: String::new(),
                    container: container.to_string(),
                    image: String::new(),
                };
                self.containers.insert(id.to_string(), c);
            }
        }
    }

    /// `var/log/pods/<namespace>_<pod>_<uid>/`.
    fn load_pod_logs(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.rootfs.join("var/log/pods")) else {
            return;
        };
        for e in entries.flatten() {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let mut parts = name.splitn(3, '_');
            if let (Some(ns), Some(pod), Some(uid)) = (parts.next(), parts.next(), parts.next()) {
                self.pods.entry(uid.to_string()).or_insert_with(|| Pod {
                    namespace: ns.to_string(),
                    name: pod.to_string(),
                });
            }
        }
    }

    /// Fills the caches from a PodList JSON document.
    pub fn load_pod_list(&mut self, text: &str) -> Result<(), String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let items = v
            .get("items")
            .and_then(Value::as_array)
            .ok_or("no \"items\" array (not a PodList)")?;
        let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        for pod in items {
            let meta = pod.get("metadata");
            let uid = s(meta.and_then(|m| m.get("uid")));
            let p = Pod {
                namespace: s(meta.and_then(|m| m.get("namespace"))),
                name: s(meta.and_then(|m| m.get("name"))),
            };
            if uid.is_empty() {
                continue;
            }
            let status = pod.get("status");
            for key in [
                "initContainerStatuses",
                "containerStatuses",
                "ephemeralContainerStatuses",
            ] {
                let Some(list) = status.and_then(|st| st.get(key)).and_then(Value::as_array) else {
                    continue;
                };
                for cs in list {
                    let full = s(cs.get("containerID"));
                    // "containerd://<id>", "cri-o://<id>", "docker://<id>".
                    let id = full.rsplit("://").next().unwrap_or_default();
                    if id.is_empty() {
                        continue;
                    }
                    self.containers.insert(
                        id.to_string(),
                        Container {
                            namespace: p.namespace.clone(),
                            pod: p.name.clone(),
                            pod_uid: uid.clone(),
                            container: s(cs.get("name")),
                            image: s(cs.get("image")),
                        },
                    );
                }
            }
            self.pods.insert(uid, p);
        }
        Ok(())
    }
}

/// Splits `<pod>_<namespace>_<container>-<id>.log`.
fn parse_log_name(name: &str) -> Option<(&str, &str, &str, &str)> {
    let stem = name.strip_suffix(".log")?;
    let (rest, id) = stem.rsplit_once('-')?;
    let mut parts = rest.splitn(3, '_');
    let (pod, ns, container) = (parts.next()?, parts.next()?, parts.next()?);
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some((pod, ns, container, id))
}

/// Reads a PodList from a file or a plain `http://` URL (HTTP/1.0, 5 s timeouts, 64 MiB limit).
fn fetch(loc: &str) -> Result<String, String> {
    let Some(rest) = loc.strip_prefix("http://") else {
        return std::fs::read_to_string(loc).map_err(|e| e.to_string());
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let timeout = Duration::from_secs(5);
    let addrs = std::net::ToSocketAddrs::to_socket_addrs(&addr).map_err(|e| e.to_string())?;
    let mut last = String::from("no address");
    for a in addrs {
        let mut s = match std::net::TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => s,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {hostport}\r\nAccept: application/json\r\n\r\n");
        s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        s.take(64 << 20)
            .read_to_end(&mut body)
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8(body).map_err(|_| "response is not UTF-8".to_string())?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or("malformed HTTP response")?;
        let status = head.split_ascii_whitespace().nth(1).unwrap_or_default();
        if status != "200" {
            return Err(format!("HTTP status {status}"));
        }
        return Ok(body.to_string());
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names() {
        let id = "a".repeat(64);
        assert_eq!(
            parse_log_name(&format!("web-7d9f_shop_nginx-{id}.log")),
            Some(("web-7d9f", "shop", "nginx", id.as_str()))
        );
        assert_eq!(parse_log_name("web_shop_nginx-abc.log"), None);
        assert_eq!(parse_log_name("garbage"), None);
    }

    #[test]
    fn sources() {
        assert_eq!("none".parse(), Ok(Source::None));
        assert_eq!("kubelet".parse(), Ok(Source::Kubelet));
        assert_eq!(
            "http://127.0.0.1:10255/pods".parse(),
            Ok(Source::PodList("http://127.0.0.1:10255/pods".into()))
        );
        assert!("https://kubernetes.default.svc".parse::<Source>().is_err());
    }
}
