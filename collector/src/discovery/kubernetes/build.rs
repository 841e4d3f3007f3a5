//! From cached Kubernetes objects to target groups with Prometheus' `__meta_kubernetes_*` labels.
//!
//! One function per role, pure over a [`Store`]; group sources are `node/<name>`,
//! `pod/<ns>/<name>`, `svc/<ns>/<name>`, `endpoints/<ns>/<name>`, `endpointslice/<ns>/<name>` and `ingress/<ns>/<name>` as in
//! Prometheus. Label and annotation names are sanitized (every character outside `[a-zA-Z0-9_]`
//! becomes `_`) and get a `..._labelpresent_*` / `..._annotationpresent_*` companion set to
//! `true`.

use std::collections::BTreeMap;

use super::Role;
use super::objects::{
    Container, ContainerPort, ContainerStatus, EndpointAddress, EndpointPort, EndpointSlice,
    Endpoints, Ingress, Node, ObjectMeta, Pod, Service,
};
use crate::discovery::TargetGroup;

const META: &str = "__meta_kubernetes_";
const NAMESPACE: &str = "__meta_kubernetes_namespace";
const ADDRESS: &str = "__address__";

/// The objects seen by the watches of one discovery, keyed by `namespace/name` (nodes: by name).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Store {
    /// Nodes.
    pub nodes: BTreeMap<String, Node>,
    /// Pods.
    pub pods: BTreeMap<String, Pod>,
    /// Services.
    pub services: BTreeMap<String, Service>,
    /// Endpoints.
    pub endpoints: BTreeMap<String, Endpoints>,
    /// Ingresses.
    pub ingresses: BTreeMap<String, Ingress>,
    /// EndpointSlices.
    pub endpointslices: BTreeMap<String, EndpointSlice>,
}

type LabelSet = BTreeMap<String, String>;

/// The target groups of `role` from the objects in `store`; `attach_node` adds the labels of a
/// pod's node (pod and endpoints roles, `attach_metadata: {node: true}`).
pub fn groups(role: Role, store: &Store, attach_node: bool) -> Vec<TargetGroup> {
    match role {
        Role::Node => store.nodes.values().filter_map(node_group).collect(),
        Role::Pod => store
            .pods
            .values()
            .map(|p| pod_group(p, store, attach_node))
            .collect(),
        Role::Service => store.services.values().map(service_group).collect(),
        Role::Endpoints => store
            .endpoints
            .values()
            .map(|e| endpoints_group(e, store, attach_node))
            .collect(),
        Role::Ingress => store.ingresses.values().map(ingress_group).collect(),
        Role::EndpointSlice => store
            .endpointslices
            .values()
            .map(|e| endpointslice_group(e, store, attach_node))
            .collect(),
    }
}

/// Every character outside `[a-zA-Z0-9_]` replaced by `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `host:port`, with brackets around IPv6 hosts (Go's `net.JoinHostPort`).
pub fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn set(ls: &mut LabelSet, name: &str, value: impl Into<String>) {
    ls.insert(name.to_string(), value.into());
}

/// `__meta_kubernetes_<kind>_name` and the label/annotation families of an object.
fn object_meta_labels(ls: &mut LabelSet, meta: &ObjectMeta, kind: &str) {
    set(ls, &format!("{META}{kind}_name"), meta.name.clone());
    add_map(ls, kind, "label", &meta.labels);
    add_map(ls, kind, "annotation", &meta.annotations);
}

fn add_map(ls: &mut LabelSet, kind: &str, what: &str, map: &BTreeMap<String, String>) {
    for (k, v) in map {
        let n = sanitize(k);
        ls.insert(format!("{META}{kind}_{what}_{n}"), v.clone());
        ls.insert(format!("{META}{kind}_{what}present_{n}"), "true".into());
    }
}

/// The address Prometheus scrapes a node at: the first address of the first type present in
/// the order InternalIP, InternalDNS, ExternalIP, ExternalDNS, LegacyHostIP, Hostname.
pub fn node_address(node: &Node) -> Option<&str> {
    const ORDER: [&str; 6] = [
        "InternalIP",
        "InternalDNS",
        "ExternalIP",
        "ExternalDNS",
        "LegacyHostIP",
        "Hostname",
    ];
    ORDER.iter().find_map(|kind| {
        node.status
            .addresses
            .iter()
            .find(|a| a.kind == *kind)
            .map(|a| a.address.as_str())
    })
}

fn node_group(node: &Node) -> Option<TargetGroup> {
    let mut labels = LabelSet::new();
    set(
        &mut labels,
        "__meta_kubernetes_node_provider_id",
        node.spec.provider_id.clone(),
    );
    object_meta_labels(&mut labels, &node.metadata, "node");
    let Some(addr) = node_address(node) else {
        tracing::warn!(node = %node.metadata.name, "kubernetes_sd: no node address found");
        return None;
    };
    let mut t = LabelSet::new();
    set(
        &mut t,
        ADDRESS,
        join_host_port(addr, node.status.daemon_endpoints.kubelet_endpoint.port),
    );
    set(&mut t, "instance", node.metadata.name.clone());
    // The first address of each type.
    for a in node.status.addresses.iter().rev() {
        t.insert(
            format!("{META}node_address_{}", sanitize(&a.kind)),
            a.address.clone(),
        );
    }
    Some(TargetGroup {
        source: format!("node/{}", node.metadata.name),
        targets: vec![t],
        labels,
    })
}

/// The node name and node labels of a pod's node, if that node is known.
fn node_labels_of(ls: &mut LabelSet, store: &Store, node_name: &str) {
    if let Some(node) = store.nodes.get(node_name) {
        set(ls, "__meta_kubernetes_node_name", node_name);
        add_map(ls, "node", "label", &node.metadata.labels);
    }
}

/// The labels of a pod shared by its targets (namespace excluded).
fn pod_labels(pod: &Pod) -> LabelSet {
    let mut ls = LabelSet::new();
    set(
        &mut ls,
        "__meta_kubernetes_pod_name",
        pod.metadata.name.clone(),
    );
    set(
        &mut ls,
        "__meta_kubernetes_pod_ip",
        pod.status.pod_ip.clone(),
    );
    let ready = pod
        .status
        .conditions
        .iter()
        .find(|c| c.kind == "Ready")
        .map_or_else(|| "unknown".to_string(), |c| c.status.to_lowercase());
    set(&mut ls, "__meta_kubernetes_pod_ready", ready);
    set(
        &mut ls,
        "__meta_kubernetes_pod_phase",
        pod.status.phase.clone(),
    );
    set(
        &mut ls,
        "__meta_kubernetes_pod_node_name",
        pod.spec.node_name.clone(),
    );
    set(
        &mut ls,
        "__meta_kubernetes_pod_host_ip",
        pod.status.host_ip.clone(),
    );
    set(
        &mut ls,
        "__meta_kubernetes_pod_uid",
        pod.metadata.uid.clone(),
    );
    if let Some(owner) = pod
        .metadata
        .owner_references
        .iter()
        .find(|o| o.controller == Some(true))
    {
        if !owner.kind.is_empty() {
            set(
                &mut ls,
                "__meta_kubernetes_pod_controller_kind",
                owner.kind.clone(),
            );
        }
        if !owner.name.is_empty() {
            set(
                &mut ls,
                "__meta_kubernetes_pod_controller_name",
                owner.name.clone(),
            );
        }
    }
    add_map(&mut ls, "pod", "label", &pod.metadata.labels);
    add_map(&mut ls, "pod", "annotation", &pod.metadata.annotations);
    ls
}

fn container_id(statuses: &[ContainerStatus], name: &str) -> String {
    statuses
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.container_id.clone())
        .unwrap_or_default()
}

fn container_labels(t: &mut LabelSet, c: &Container) {
    set(t, "__meta_kubernetes_pod_container_name", c.name.clone());
    set(t, "__meta_kubernetes_pod_container_image", c.image.clone());
}

/// The `__meta_kubernetes_pod_container_*` labels of the container declaring `port` (as in
/// Prometheus, the last container declaring it wins); `protocol` picks the protocol label's value.
fn declared_port_labels(
    t: &mut LabelSet,
    pod: &Pod,
    port: i64,
    protocol: impl FnOnce(&ContainerPort) -> String,
) {
    let mut declared = pod.spec.containers.iter().filter_map(|c| {
        c.ports
            .iter()
            .find(|cp| cp.container_port == port)
            .map(|cp| (c, cp))
    });
    if let Some((c, cp)) = declared.next_back() {
        container_labels(t, c);
        set(
            t,
            "__meta_kubernetes_pod_container_port_name",
            cp.name.clone(),
        );
        set(
            t,
            "__meta_kubernetes_pod_container_port_number",
            port.to_string(),
        );
        set(
            t,
            "__meta_kubernetes_pod_container_port_protocol",
            protocol(cp),
        );
    }
}

fn pod_group(pod: &Pod, store: &Store, attach_node: bool) -> TargetGroup {
    let source = format!("pod/{}", pod.metadata.key());
    // A pod without an IP (pending, evicted) has an empty group.
    if pod.status.pod_ip.is_empty() {
        return TargetGroup {
            source,
            ..TargetGroup::default()
        };
    }
    let mut labels = pod_labels(pod);
    set(&mut labels, NAMESPACE, pod.metadata.namespace.clone());
    if attach_node {
        node_labels_of(&mut labels, store, &pod.spec.node_name);
    }
    let mut targets = Vec::new();
    {
        let all = pod
            .spec
            .containers
            .iter()
            .map(|c| (c, false))
            .chain(pod.spec.init_containers.iter().map(|c| (c, true)));
        for (c, init) in all {
            let statuses = if init {
                &pod.status.init_container_statuses
            } else {
                &pod.status.container_statuses
            };
            let id = container_id(statuses, &c.name);
            let mut base = LabelSet::new();
            container_labels(&mut base, c);
            set(&mut base, "__meta_kubernetes_pod_container_id", id);
            set(
                &mut base,
                "__meta_kubernetes_pod_container_init",
                init.to_string(),
            );
            if c.ports.is_empty() {
                // No declared port: one target at the bare pod IP, for relabeling to complete.
                let mut t = base;
                set(&mut t, ADDRESS, pod.status.pod_ip.clone());
                targets.push(t);
                continue;
            }
            for p in &c.ports {
                let mut t = base.clone();
                set(
                    &mut t,
                    ADDRESS,
                    join_host_port(&pod.status.pod_ip, p.container_port),
                );
                set(
                    &mut t,
                    "__meta_kubernetes_pod_container_port_name",
                    p.name.clone(),
                );
                set(
                    &mut t,
                    "__meta_kubernetes_pod_container_port_number",
                    p.container_port.to_string(),
                );
                set(
                    &mut t,
                    "__meta_kubernetes_pod_container_port_protocol",
                    p.protocol.clone(),
                );
                targets.push(t);
            }
        }
    }
    TargetGroup {
        source,
        targets,
        labels,
    }
}

/// The labels a service gives to its own targets and to its endpoints' targets.
fn service_labels(svc: &Service) -> LabelSet {
    let mut ls = LabelSet::new();
    set(&mut ls, NAMESPACE, svc.metadata.namespace.clone());
    object_meta_labels(&mut ls, &svc.metadata, "service");
    ls
}

fn service_group(svc: &Service) -> TargetGroup {
    let targets = svc
        .spec
        .ports
        .iter()
        .map(|p| {
            let mut t = LabelSet::new();
            let host = format!("{}.{}.svc", svc.metadata.name, svc.metadata.namespace);
            set(&mut t, ADDRESS, join_host_port(&host, p.port));
            set(
                &mut t,
                "__meta_kubernetes_service_port_name",
                p.name.clone(),
            );
            set(
                &mut t,
                "__meta_kubernetes_service_port_number",
                p.port.to_string(),
            );
            set(
                &mut t,
                "__meta_kubernetes_service_port_protocol",
                p.protocol.clone(),
            );
            set(
                &mut t,
                "__meta_kubernetes_service_type",
                svc.spec.kind.clone(),
            );
            if svc.spec.kind == "ExternalName" {
                set(
                    &mut t,
                    "__meta_kubernetes_service_external_name",
                    svc.spec.external_name.clone(),
                );
            } else {
                set(
                    &mut t,
                    "__meta_kubernetes_service_cluster_ip",
                    svc.spec.cluster_ip.clone(),
                );
            }
            if svc.spec.kind == "LoadBalancer" {
                set(
                    &mut t,
                    "__meta_kubernetes_service_loadbalancer_ip",
                    svc.spec.load_balancer_ip.clone(),
                );
            }
            t
        })
        .collect();
    TargetGroup {
        source: format!("svc/{}", svc.metadata.key()),
        targets,
        labels: service_labels(svc),
    }
}

fn endpoints_group(eps: &Endpoints, store: &Store, attach_node: bool) -> TargetGroup {
    let ns = &eps.metadata.namespace;
    let mut labels = LabelSet::new();
    set(&mut labels, NAMESPACE, ns.clone());
    set(
        &mut labels,
        "__meta_kubernetes_endpoints_name",
        eps.metadata.name.clone(),
    );
    if let Some(svc) = store.services.get(&eps.metadata.key()) {
        labels.extend(service_labels(svc));
    }
    add_map(&mut labels, "endpoints", "label", &eps.metadata.labels);

    let mut targets = Vec::new();
    // Pods seen behind an address, with the ports already covered by a target.
    let mut seen: BTreeMap<String, (&Pod, Vec<i64>)> = BTreeMap::new();
    let mut add = |addr: &EndpointAddress, port: &EndpointPort, ready: &str| {
        let mut t = LabelSet::new();
        set(&mut t, ADDRESS, join_host_port(&addr.ip, port.port));
        set(
            &mut t,
            "__meta_kubernetes_endpoint_port_name",
            port.name.clone(),
        );
        set(
            &mut t,
            "__meta_kubernetes_endpoint_port_protocol",
            port.protocol.clone(),
        );
        set(&mut t, "__meta_kubernetes_endpoint_ready", ready);
        if let Some(r) = &addr.target_ref {
            set(
                &mut t,
                "__meta_kubernetes_endpoint_address_target_kind",
                r.kind.clone(),
            );
            set(
                &mut t,
                "__meta_kubernetes_endpoint_address_target_name",
                r.name.clone(),
            );
        }
        if let Some(n) = &addr.node_name {
            set(&mut t, "__meta_kubernetes_endpoint_node_name", n.clone());
            if attach_node {
                node_labels_of(&mut t, store, n);
            }
        }
        if !addr.hostname.is_empty() {
            set(
                &mut t,
                "__meta_kubernetes_endpoint_hostname",
                addr.hostname.clone(),
            );
        }
        let pod = addr
            .target_ref
            .as_ref()
            .filter(|r| r.kind == "Pod")
            .and_then(|r| store.pods.get(&format!("{}/{}", r.namespace, r.name)));
        if let Some(pod) = pod {
            seen.entry(pod.metadata.key())
                .or_insert((pod, Vec::new()))
                .1
                .push(port.port);
            t.extend(pod_labels(pod));
            declared_port_labels(&mut t, pod, port.port, |_| port.protocol.clone());
        }
        targets.push(t);
    };
    for ss in &eps.subsets {
        for port in &ss.ports {
            for a in &ss.addresses {
                add(a, port, "true");
            }
            for a in &ss.not_ready_addresses {
                add(a, port, "false");
            }
        }
    }
    // Container ports of the seen pods that no endpoint port covers get a target each too.
    targets.extend(uncovered_ports(&seen));
    TargetGroup {
        source: format!("endpoints/{}", eps.metadata.key()),
        targets,
        labels,
    }
}

/// The label a slice names its service with.
const SERVICE_NAME: &str = "kubernetes.io/service-name";

fn endpointslice_group(eps: &EndpointSlice, store: &Store, attach_node: bool) -> TargetGroup {
    let ns = &eps.metadata.namespace;
    let mut labels = LabelSet::new();
    set(&mut labels, NAMESPACE, ns.clone());
    set(
        &mut labels,
        "__meta_kubernetes_endpointslice_name",
        eps.metadata.name.clone(),
    );
    set(
        &mut labels,
        "__meta_kubernetes_endpointslice_address_type",
        eps.address_type.clone(),
    );
    if let Some(svc) = eps
        .metadata
        .labels
        .get(SERVICE_NAME)
        .and_then(|name| store.services.get(&format!("{ns}/{name}")))
    {
        labels.extend(service_labels(svc));
    }
    let mut targets = Vec::new();
    let mut seen: BTreeMap<String, (&Pod, Vec<i64>)> = BTreeMap::new();
    for ep in &eps.endpoints {
        for port in &eps.ports {
            for addr in &ep.addresses {
                let mut t = LabelSet::new();
                let a = match port.port {
                    Some(p) => join_host_port(addr, p),
                    None => addr.clone(),
                };
                set(&mut t, ADDRESS, a);
                let opt = |t: &mut LabelSet, name: &str, v: &Option<String>| {
                    if let Some(v) = v {
                        set(t, name, v.clone());
                    }
                };
                opt(
                    &mut t,
                    "__meta_kubernetes_endpointslice_port_name",
                    &port.name,
                );
                opt(
                    &mut t,
                    "__meta_kubernetes_endpointslice_port_protocol",
                    &port.protocol,
                );
                if let Some(p) = port.port {
                    set(
                        &mut t,
                        "__meta_kubernetes_endpointslice_port",
                        p.to_string(),
                    );
                }
                opt(
                    &mut t,
                    "__meta_kubernetes_endpointslice_port_app_protocol",
                    &port.app_protocol,
                );
                let c = &ep.conditions;
                for (name, v) in [
                    ("ready", c.ready),
                    ("serving", c.serving),
                    ("terminating", c.terminating),
                ] {
                    if let Some(v) = v {
                        set(
                            &mut t,
                            &format!("{META}endpointslice_endpoint_conditions_{name}"),
                            v.to_string(),
                        );
                    }
                }
                opt(
                    &mut t,
                    "__meta_kubernetes_endpointslice_endpoint_hostname",
                    &ep.hostname,
                );
                if let Some(r) = &ep.target_ref {
                    set(
                        &mut t,
                        "__meta_kubernetes_endpointslice_address_target_kind",
                        r.kind.clone(),
                    );
                    set(
                        &mut t,
                        "__meta_kubernetes_endpointslice_address_target_name",
                        r.name.clone(),
                    );
                }
                for (k, v) in &ep.deprecated_topology {
                    let n = sanitize(k);
                    t.insert(
                        format!("{META}endpointslice_endpoint_topology_{n}"),
                        v.clone(),
                    );
                    t.insert(
                        format!("{META}endpointslice_endpoint_topology_present_{n}"),
                        "true".into(),
                    );
                }
                if attach_node && let Some(n) = &ep.node_name {
                    node_labels_of(&mut t, store, n);
                }
                let pod = ep
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind == "Pod")
                    .and_then(|r| store.pods.get(&format!("{}/{}", r.namespace, r.name)));
                if let Some(pod) = pod {
                    let covered = &mut seen
                        .entry(pod.metadata.key())
                        .or_insert((pod, Vec::new()))
                        .1;
                    covered.extend(port.port);
                    t.extend(pod_labels(pod));
                    if let Some(number) = port.port {
                        declared_port_labels(&mut t, pod, number, |cp| cp.protocol.clone());
                    }
                }
                targets.push(t);
            }
        }
    }
    targets.extend(uncovered_ports(&seen));
    TargetGroup {
        source: format!("endpointslice/{}", eps.metadata.key()),
        targets,
        labels,
    }
}

/// Targets for the container ports of seen pods that no endpoint port covers.
fn uncovered_ports(seen: &BTreeMap<String, (&Pod, Vec<i64>)>) -> Vec<LabelSet> {
    let mut out = Vec::new();
    for (pod, covered) in seen.values() {
        for c in &pod.spec.containers {
            for cp in &c.ports {
                if covered.contains(&cp.container_port) {
                    continue;
                }
                let mut t = pod_labels(pod);
                set(
                    &mut t,
                    ADDRESS,
                    join_host_port(&pod.status.pod_ip, cp.container_port),
                );
                container_labels(&mut t, c);
                set(
                    &mut t,
                    "__meta_kubernetes_pod_container_port_name",
                    cp.name.clone(),
                );
                set(
                    &mut t,
                    "__meta_kubernetes_pod_container_port_number",
                    cp.container_port.to_string(),
                );
                set(
                    &mut t,
                    "__meta_kubernetes_pod_container_port_protocol",
                    cp.protocol.clone(),
                );
                out.push(t);
            }
        }
    }
    out
}

/// True if a TLS host `pattern` (exact, or `*.` followed by the host's other labels) covers
/// `host`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == host {
        return true;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    p.first() == Some(&"*") && p.len() == h.len() && p[1..] == h[1..]
}

fn ingress_group(ing: &Ingress) -> TargetGroup {
    let mut labels = LabelSet::new();
    set(&mut labels, NAMESPACE, ing.metadata.namespace.clone());
    if let Some(c) = &ing.spec.ingress_class_name {
        set(
            &mut labels,
            "__meta_kubernetes_ingress_class_name",
            c.clone(),
        );
    }
    object_meta_labels(&mut labels, &ing.metadata, "ingress");
    let mut targets = Vec::new();
    for rule in &ing.spec.rules {
        let tls = ing
            .spec
            .tls
            .iter()
            .flat_map(|t| &t.hosts)
            .any(|p| host_matches(p, &rule.host));
        let scheme = if tls { "https" } else { "http" };
        let paths: Vec<String> = match &rule.http {
            None => vec!["/".into()],
            Some(h) => h
                .paths
                .iter()
                .map(|p| {
                    if p.path.is_empty() {
                        "/".into()
                    } else {
                        p.path.clone()
                    }
                })
                .collect(),
        };
        for path in paths {
            let mut t = LabelSet::new();
            set(&mut t, ADDRESS, rule.host.clone());
            set(&mut t, "__meta_kubernetes_ingress_scheme", scheme);
            set(&mut t, "__meta_kubernetes_ingress_host", rule.host.clone());
            set(&mut t, "__meta_kubernetes_ingress_path", path);
            targets.push(t);
        }
    }
    TargetGroup {
        source: format!("ingress/{}", ing.metadata.key()),
        targets,
        labels,
    }
}
