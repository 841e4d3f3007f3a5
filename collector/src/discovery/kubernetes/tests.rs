//! Unit tests: label building per role from v1 JSON objects, config checks, URLs, line
//! splitting.
#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::build::{self, Store, host_matches, join_host_port, sanitize};
use super::objects::*;
use super::*;

fn node() -> Node {
    serde_json::from_value(json!({
        "kind": "Node", "apiVersion": "v1",
        "metadata": {"name": "n1", "uid": "u-n1", "resourceVersion": "10",
            "labels": {"kubernetes.io/hostname": "n1", "topology.kubernetes.io/zone": "z1"},
            "annotations": {"node.alpha/ttl": "0"}},
        "spec": {"providerID": "aws:///z1/i-1"},
        "status": {
            "addresses": [
                {"type": "Hostname", "address": "n1.local"},
                {"type": "ExternalIP", "address": "203.0.113.1"},
                {"type": "InternalIP", "address": "10.0.0.1"},
                {"type": "InternalIP", "address": "10.0.0.2"}
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}
        }
    }))
    .unwrap()
}

fn pod() -> Pod {
    serde_json::from_value(json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "web-1", "namespace": "prod", "uid": "u-p1", "resourceVersion": "11",
            "labels": {"app": "web", "pod-template-hash": "abc"},
            "annotations": {"prometheus.io/scrape": "true"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Other", "name": "x"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "controller": true}
            ]},
        "spec": {"nodeName": "n1",
            "containers": [
                {"name": "app", "image": "web:1", "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]},
                {"name": "sidecar", "image": "side:2"}
            ],
            "initContainers": [{"name": "init", "image": "init:1", "ports": [{"containerPort": 7000, "protocol": "UDP"}]}]},
        "status": {"phase": "Running", "podIP": "10.1.0.5", "hostIP": "10.0.0.1",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "app", "containerID": "containerd://aaa"}],
            "initContainerStatuses": [{"name": "init", "containerID": "containerd://iii"}]}
    }))
    .unwrap()
}

fn service(kind: &str) -> Service {
    serde_json::from_value(json!({
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"},
            "annotations": {"prometheus.io/port": "9090"}},
        "spec": {"type": kind, "clusterIP": "10.96.0.10", "externalName": "web.example.com",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                      {"name": "metrics", "port": 9090, "protocol": "TCP"}]}
    }))
    .unwrap()
}

fn endpoints() -> Endpoints {
    serde_json::from_value(json!({
        "kind": "Endpoints", "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": "prod", "labels": {"app.kubernetes.io/name": "web"}},
        "subsets": [{
            "addresses": [{"ip": "10.1.0.5", "nodeName": "n1", "hostname": "web-1",
                "targetRef": {"kind": "Pod", "namespace": "prod", "name": "web-1", "uid": "u-p1"}}],
            "notReadyAddresses": [{"ip": "10.1.0.6"}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }]
    }))
    .unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn helpers() {
    assert_eq!(sanitize("app.kubernetes.io/name"), "app_kubernetes_io_name");
    assert_eq!(sanitize("a-b_c9"), "a_b_c9");
    assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
    assert_eq!(join_host_port("fd00::1", 80), "[fd00::1]:80");
    assert!(host_matches("a.b", "a.b"));
    assert!(host_matches("*.example.com", "x.example.com"));
    assert!(!host_matches("*.example.com", "x.y.example.com"));
    assert!(!host_matches("x.example.com", "y.example.com"));
}

#[track_caller]
fn check_address(addrs: &[(&str, &str)], want: Option<&str>) {
    let mut n = Node::default();
    n.status.addresses = addrs
        .iter()
        .map(|(k, a)| NodeAddress {
            kind: k.to_string(),
            address: a.to_string(),
        })
        .collect();
    assert_eq!(build::node_address(&n), want, "{addrs:?}");
}

#[test]
fn node_address_precedence() {
    check_address(&[("Hostname", "h"), ("InternalIP", "1")], Some("1"));
    check_address(&[("ExternalIP", "2"), ("InternalDNS", "d")], Some("d"));
    check_address(&[("ExternalDNS", "e"), ("ExternalIP", "2")], Some("2"));
    check_address(&[("Hostname", "h"), ("LegacyHostIP", "3")], Some("3"));
    check_address(&[("Hostname", "h")], Some("h"));
    check_address(&[], None);
}

#[test]
fn node_role() {
    let mut store = Store::default();
    store.nodes.insert("n1".into(), node());
    let g = build::groups(Role::Node, &store, false);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].source, "node/n1");
    assert_eq!(
        g[0].labels,
        labels(&[
            ("__meta_kubernetes_node_name", "n1"),
            ("__meta_kubernetes_node_provider_id", "aws:///z1/i-1"),
            ("__meta_kubernetes_node_label_kubernetes_io_hostname", "n1"),
            (
                "__meta_kubernetes_node_labelpresent_kubernetes_io_hostname",
                "true"
            ),
            (
                "__meta_kubernetes_node_label_topology_kubernetes_io_zone",
                "z1"
            ),
            (
                "__meta_kubernetes_node_labelpresent_topology_kubernetes_io_zone",
                "true"
            ),
            ("__meta_kubernetes_node_annotation_node_alpha_ttl", "0"),
            (
                "__meta_kubernetes_node_annotationpresent_node_alpha_ttl",
                "true"
            ),
        ])
    );
    assert_eq!(
        g[0].targets,
        vec![labels(&[
            ("__address__", "10.0.0.1:10250"),
            ("instance", "n1"),
            ("__meta_kubernetes_node_address_Hostname", "n1.local"),
            ("__meta_kubernetes_node_address_ExternalIP", "203.0.113.1"),
            ("__meta_kubernetes_node_address_InternalIP", "10.0.0.1"),
        ])]
    );
}

#[test]
fn pod_role() {
    let mut store = Store::default();
    store.pods.insert("prod/web-1".into(), pod());
    let g = build::groups(Role::Pod, &store, false);
    assert_eq!(g[0].source, "pod/prod/web-1");
    assert_eq!(
        g[0].labels,
        labels(&[
            ("__meta_kubernetes_namespace", "prod"),
            ("__meta_kubernetes_pod_name", "web-1"),
            ("__meta_kubernetes_pod_ip", "10.1.0.5"),
            ("__meta_kubernetes_pod_ready", "false"),
            ("__meta_kubernetes_pod_phase", "Running"),
            ("__meta_kubernetes_pod_node_name", "n1"),
            ("__meta_kubernetes_pod_host_ip", "10.0.0.1"),
            ("__meta_kubernetes_pod_uid", "u-p1"),
            ("__meta_kubernetes_pod_controller_kind", "ReplicaSet"),
            ("__meta_kubernetes_pod_controller_name", "web-abc"),
            ("__meta_kubernetes_pod_label_app", "web"),
            ("__meta_kubernetes_pod_labelpresent_app", "true"),
            ("__meta_kubernetes_pod_label_pod_template_hash", "abc"),
            (
                "__meta_kubernetes_pod_labelpresent_pod_template_hash",
                "true"
            ),
            (
                "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
                "true"
            ),
            (
                "__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape",
                "true"
            ),
        ])
    );
    let port = |addr: &str, name: &str, num: &str| {
        labels(&[
            ("__address__", addr),
            ("__meta_kubernetes_pod_container_name", "app"),
            ("__meta_kubernetes_pod_container_image", "web:1"),
            ("__meta_kubernetes_pod_container_id", "containerd://aaa"),
            ("__meta_kubernetes_pod_container_init", "false"),
            ("__meta_kubernetes_pod_container_port_name", name),
            ("__meta_kubernetes_pod_container_port_number", num),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
        ])
    };
    assert_eq!(
        g[0].targets,
        vec![
            port("10.1.0.5:8080", "http", "8080"),
            port("10.1.0.5:9090", "metrics", "9090"),
            // No ports: the bare pod IP.
            labels(&[
                ("__address__", "10.1.0.5"),
                ("__meta_kubernetes_pod_container_name", "sidecar"),
                ("__meta_kubernetes_pod_container_image", "side:2"),
                ("__meta_kubernetes_pod_container_id", ""),
                ("__meta_kubernetes_pod_container_init", "false"),
            ]),
            labels(&[
                ("__address__", "10.1.0.5:7000"),
                ("__meta_kubernetes_pod_container_name", "init"),
                ("__meta_kubernetes_pod_container_image", "init:1"),
                ("__meta_kubernetes_pod_container_id", "containerd://iii"),
                ("__meta_kubernetes_pod_container_init", "true"),
                ("__meta_kubernetes_pod_container_port_name", ""),
                ("__meta_kubernetes_pod_container_port_number", "7000"),
                ("__meta_kubernetes_pod_container_port_protocol", "UDP"),
            ]),
        ]
    );
    // attach_metadata.node: the node's name and labels on the group.
    store.nodes.insert("n1".into(), node());
    let g = build::groups(Role::Pod, &store, true);
    assert_eq!(g[0].labels["__meta_kubernetes_node_name"], "n1");
    assert_eq!(
        g[0].labels["__meta_kubernetes_node_label_topology_kubernetes_io_zone"],
        "z1"
    );
    assert!(
        !g[0]
            .labels
            .contains_key("__meta_kubernetes_node_annotation_node_alpha_ttl")
    );
    // No IP yet: an empty group.
    let mut p = pod();
    p.status.pod_ip.clear();
    store.pods.insert("prod/web-1".into(), p);
    let g = build::groups(Role::Pod, &store, false);
    assert_eq!(g[0].source, "pod/prod/web-1");
    assert!(g[0].targets.is_empty() && g[0].labels.is_empty());
}

#[test]
fn service_role() {
    let mut store = Store::default();
    store
        .services
        .insert("prod/web".into(), service("ClusterIP"));
    let g = build::groups(Role::Service, &store, false);
    assert_eq!(g[0].source, "svc/prod/web");
    assert_eq!(
        g[0].labels,
        labels(&[
            ("__meta_kubernetes_namespace", "prod"),
            ("__meta_kubernetes_service_name", "web"),
            ("__meta_kubernetes_service_label_app", "web"),
            ("__meta_kubernetes_service_labelpresent_app", "true"),
            (
                "__meta_kubernetes_service_annotation_prometheus_io_port",
                "9090"
            ),
            (
                "__meta_kubernetes_service_annotationpresent_prometheus_io_port",
                "true"
            ),
        ])
    );
    assert_eq!(
        g[0].targets[1],
        labels(&[
            ("__address__", "web.prod.svc:9090"),
            ("__meta_kubernetes_service_port_name", "metrics"),
            ("__meta_kubernetes_service_port_number", "9090"),
            ("__meta_kubernetes_service_port_protocol", "TCP"),
            ("__meta_kubernetes_service_type", "ClusterIP"),
            ("__meta_kubernetes_service_cluster_ip", "10.96.0.10"),
        ])
    );
    store
        .services
        .insert("prod/web".into(), service("ExternalName"));
    let t = &build::groups(Role::Service, &store, false)[0].targets[0];
    assert_eq!(
        t["__meta_kubernetes_service_external_name"],
        "web.example.com"
    );
    assert!(!t.contains_key("__meta_kubernetes_service_cluster_ip"));
    assert!(!t.contains_key("__meta_kubernetes_service_loadbalancer_ip"));
    let mut lb = service("LoadBalancer");
    lb.spec.load_balancer_ip = "198.51.100.7".into();
    store.services.insert("prod/web".into(), lb);
    let t = &build::groups(Role::Service, &store, false)[0].targets[0];
    assert_eq!(
        t["__meta_kubernetes_service_loadbalancer_ip"],
        "198.51.100.7"
    );
    assert_eq!(t["__meta_kubernetes_service_cluster_ip"], "10.96.0.10");
}

#[test]
fn endpoints_role() {
    let mut store = Store::default();
    store.endpoints.insert("prod/web".into(), endpoints());
    // Without the service and pod known: endpoint labels only.
    let g = build::groups(Role::Endpoints, &store, false);
    assert_eq!(g[0].source, "endpoints/prod/web");
    assert_eq!(
        g[0].labels,
        labels(&[
            ("__meta_kubernetes_namespace", "prod"),
            ("__meta_kubernetes_endpoints_name", "web"),
            (
                "__meta_kubernetes_endpoints_label_app_kubernetes_io_name",
                "web"
            ),
            (
                "__meta_kubernetes_endpoints_labelpresent_app_kubernetes_io_name",
                "true"
            ),
        ])
    );
    assert_eq!(
        g[0].targets,
        vec![
            labels(&[
                ("__address__", "10.1.0.5:8080"),
                ("__meta_kubernetes_endpoint_port_name", "http"),
                ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
                ("__meta_kubernetes_endpoint_ready", "true"),
                ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
                ("__meta_kubernetes_endpoint_address_target_name", "web-1"),
                ("__meta_kubernetes_endpoint_node_name", "n1"),
                ("__meta_kubernetes_endpoint_hostname", "web-1"),
            ]),
            labels(&[
                ("__address__", "10.1.0.6:8080"),
                ("__meta_kubernetes_endpoint_port_name", "http"),
                ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
                ("__meta_kubernetes_endpoint_ready", "false"),
            ]),
        ]
    );
    // With the service and the pod: service labels on the group, pod and container labels on
    // the pod's target, and a target for the pod's uncovered container port 9090.
    store
        .services
        .insert("prod/web".into(), service("ClusterIP"));
    store.pods.insert("prod/web-1".into(), pod());
    store.nodes.insert("n1".into(), node());
    let g = build::groups(Role::Endpoints, &store, true);
    assert_eq!(g[0].labels["__meta_kubernetes_service_name"], "web");
    assert_eq!(g[0].labels["__meta_kubernetes_service_label_app"], "web");
    let t = &g[0].targets;
    assert_eq!(t.len(), 3);
    assert_eq!(t[0]["__meta_kubernetes_pod_name"], "web-1");
    assert_eq!(t[0]["__meta_kubernetes_pod_container_name"], "app");
    assert_eq!(t[0]["__meta_kubernetes_pod_container_port_name"], "http");
    assert_eq!(t[0]["__meta_kubernetes_pod_container_port_number"], "8080");
    assert_eq!(
        t[0]["__meta_kubernetes_node_label_kubernetes_io_hostname"],
        "n1"
    );
    assert!(!t[0].contains_key("__meta_kubernetes_namespace"));
    assert!(!t[1].contains_key("__meta_kubernetes_pod_name"));
    assert_eq!(t[2]["__address__"], "10.1.0.5:9090");
    assert_eq!(t[2]["__meta_kubernetes_pod_container_port_name"], "metrics");
    assert_eq!(t[2]["__meta_kubernetes_pod_ready"], "false");
    assert!(!t[2].contains_key("__meta_kubernetes_endpoint_ready"));
    // Two containers declaring the endpoint's port: the last one names it.
    let mut p = pod();
    let mut second = p.spec.containers[0].clone();
    second.name = "app2".into();
    p.spec.containers.push(second);
    store.pods.insert("prod/web-1".into(), p);
    let g = build::groups(Role::Endpoints, &store, false);
    assert_eq!(
        g[0].targets[0]["__meta_kubernetes_pod_container_name"],
        "app2"
    );
}

#[test]
fn ingress_role() {
    let ing: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "prod", "labels": {"a": "b"}},
        "spec": {"ingressClassName": "nginx",
            "tls": [{"hosts": ["*.example.com"]}],
            "rules": [
                {"host": "www.example.com", "http": {"paths": [{"path": "/app", "pathType": "Prefix"}, {"path": ""}]}},
                {"host": "other.org"}
            ]}
    }))
    .unwrap();
    let mut store = Store::default();
    store.ingresses.insert("prod/web".into(), ing);
    let g = build::groups(Role::Ingress, &store, false);
    assert_eq!(g[0].source, "ingress/prod/web");
    assert_eq!(
        g[0].labels,
        labels(&[
            ("__meta_kubernetes_namespace", "prod"),
            ("__meta_kubernetes_ingress_name", "web"),
            ("__meta_kubernetes_ingress_class_name", "nginx"),
            ("__meta_kubernetes_ingress_label_a", "b"),
            ("__meta_kubernetes_ingress_labelpresent_a", "true"),
        ])
    );
    let t = |host: &str, scheme: &str, path: &str| {
        labels(&[
            ("__address__", host),
            ("__meta_kubernetes_ingress_host", host),
            ("__meta_kubernetes_ingress_scheme", scheme),
            ("__meta_kubernetes_ingress_path", path),
        ])
    };
    assert_eq!(
        g[0].targets,
        vec![
            t("www.example.com", "https", "/app"),
            t("www.example.com", "https", "/"),
            t("other.org", "http", "/"),
        ]
    );
}

#[track_caller]
fn check_config(yaml: &str, want: std::result::Result<(), &str>) {
    let c: KubernetesSdConfig = serde_norway::from_str(yaml).unwrap();
    match (c.validate(), want) {
        (Ok(()), Ok(())) => {}
        (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{e} lacks {w}"),
        (got, want) => panic!("{yaml}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn config_checks() {
    check_config("role: pod", Ok(()));
    check_config("role: pod\napi_server: http://127.0.0.1:8001", Ok(()));
    check_config(
        "role: endpoints\napi_server: http://k:8001/prefix\nbasic_auth: {username: u, password: p}\nselectors:\n- {role: pod, label: 'a=b'}\n- {role: service, field: 'metadata.name=x'}\n",
        Ok(()),
    );
    check_config("role: pod\napi_server: https://k:6443", Ok(()));
    check_config(
        "role: pod\napi_server: https://k:6443\ntls_config: {insecure_skip_verify: true}",
        Ok(()),
    );
    check_config(
        "role: pod\napi_server: ftp://k",
        Err("is not http or https"),
    );
    check_config("role: pod\napi_server: 'not a url'", Err("api_server"));
    check_config(
        "role: pod\nbearer_token: x",
        Err("please provide the 'api_server' URL explicitly"),
    );
    check_config(
        "role: pod\nkubeconfig_file: /k\napi_server: http://k",
        Err("cannot use 'kubeconfig_file' and 'api_server' simultaneously"),
    );
    check_config(
        "role: pod\napi_server: http://k\nnamespaces: {own_namespace: true}",
        Err("cannot use 'api_server' and 'namespaces.own_namespace' simultaneously"),
    );
    check_config(
        "role: pod\nkubeconfig_file: /k",
        Err("kubeconfig_file \"/k\" is not supported"),
    );
    check_config(
        "role: endpointslice\nselectors: [{role: endpointslice, label: a=b}, {role: pod}]",
        Ok(()),
    );
    check_config(
        "role: endpointslice\nselectors: [{role: endpoints}]",
        Err("endpointslice role supports only pod, service, endpointslice selectors"),
    );
    check_config(
        "role: pod\nselectors:\n- {role: pod}\n- {role: pod}\n",
        Err("duplicated selector role: pod"),
    );
    check_config(
        "role: pod\nselectors:\n- {role: node}\n",
        Err("pod role supports only pod selectors"),
    );
    check_config(
        "role: endpoints\nselectors:\n- {role: ingress}\n",
        Err("endpoints role supports only pod, service, endpoints selectors"),
    );
    check_config(
        "role: pod\napi_server: http://k\nbasic_auth: {username: u}\nbearer_token: x",
        Err("at most one of basic_auth"),
    );
    assert!(serde_norway::from_str::<KubernetesSdConfig>("role: pods").is_err());
    assert!(serde_norway::from_str::<KubernetesSdConfig>("role: pod\nnamespace: {}").is_err());
}

fn env(dir: &std::path::Path) -> InCluster {
    InCluster {
        host: Some("10.96.0.1".into()),
        port: Some("443".into()),
        token_file: dir.join("token"),
        namespace_file: dir.join("namespace"),
        ca_file: dir.join("ca.crt"),
    }
}

#[test]
fn connections() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("namespace"), "monitoring\n").unwrap();
    let cfg = |yaml: &str| serde_norway::from_str::<KubernetesSdConfig>(yaml).unwrap();
    // In cluster: the service host over https with the account's token, verified with the
    // account's ca.crt, which must be loadable.
    let e = Discovery::new(&cfg("role: pod"), &env(dir.path())).unwrap_err();
    let ca = dir.path().join("ca.crt");
    assert!(
        e.to_string().contains(&format!(
            "api_server \"https://10.96.0.1:443\": tls_config: ca_file {}",
            ca.display()
        )),
        "{e}"
    );
    std::fs::write(&ca, "not a certificate\n").unwrap();
    let e = Discovery::new(&cfg("role: pod"), &env(dir.path())).unwrap_err();
    assert!(e.to_string().contains("no PEM certificate found"), "{e}");
    let outside = InCluster {
        host: None,
        port: None,
        ..env(dir.path())
    };
    let e = Discovery::new(&cfg("role: pod"), &outside).unwrap_err();
    assert!(
        e.to_string()
            .contains("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined")
    );
    // Namespaces: names plus own namespace (in cluster only, as in Prometheus), sorted and
    // unique.
    assert_eq!(
        watched_namespaces(
            &cfg("role: pod\nnamespaces: {names: [b, monitoring], own_namespace: true}"),
            &env(dir.path())
        )
        .unwrap(),
        ["b", "monitoring"]
    );
    let missing = InCluster {
        namespace_file: dir.path().join("nope"),
        ..env(dir.path())
    };
    let e = watched_namespaces(
        &cfg("role: pod\nnamespaces: {own_namespace: true}"),
        &missing,
    )
    .unwrap_err();
    assert!(e.to_string().contains("own_namespace: reading"), "{e}");
    let d = Discovery::new(
        &cfg("role: pod\napi_server: http://127.0.0.1:1/k8s/\nnamespaces: {names: [b, a, b]}\nselectors: [{role: pod, label: 'app in (a,b)', field: 'spec.nodeName=n1'}]"),
        &env(dir.path()),
    )
    .unwrap();
    assert_eq!(d.namespaces, ["a", "b"]);
    assert_eq!(
        resource_url(&d.conn, Kind::Pod, Some("b")).as_str(),
        "http://127.0.0.1:1/k8s/api/v1/namespaces/b/pods?labelSelector=app+in+%28a%2Cb%29&fieldSelector=spec.nodeName%3Dn1"
    );
    assert_eq!(
        resource_url(&d.conn, Kind::Node, None).as_str(),
        "http://127.0.0.1:1/k8s/api/v1/nodes"
    );
    assert_eq!(
        resource_url(&d.conn, Kind::Ingress, Some("b")).as_str(),
        "http://127.0.0.1:1/k8s/apis/networking.k8s.io/v1/namespaces/b/ingresses"
    );
    // Endpoints watch services and pods too; attach_metadata adds nodes.
    let d = Discovery::new(
        &cfg("role: endpoints\napi_server: http://k\nattach_metadata: {node: true}"),
        &env(dir.path()),
    )
    .unwrap();
    assert_eq!(
        d.kinds(),
        [Kind::Endpoints, Kind::Service, Kind::Pod, Kind::Node]
    );
}

#[test]
fn lines_across_chunks() {
    let mut b = LineBuffer::default();
    assert!(b.push(b"{\"a\":").is_empty());
    assert_eq!(b.push(b"1}\n\n{\"b\"").len(), 1);
    let l = b.push(b":2}\n{\"c\":3}\n");
    assert_eq!(l, vec![b"{\"b\":2}\n".to_vec(), b"{\"c\":3}\n".to_vec()]);
    assert!(b.push(b"").is_empty());
}

#[test]
fn store_replace_is_per_namespace() {
    let mut s = Store::default();
    let mut p = pod();
    s.apply(Update::Replace(
        Kind::Pod,
        Some("prod".into()),
        vec![Object::Pod(p.clone())],
    ));
    p.metadata.namespace = "dev".into();
    s.apply(Update::Replace(
        Kind::Pod,
        Some("dev".into()),
        vec![Object::Pod(p.clone())],
    ));
    assert_eq!(
        s.pods.keys().collect::<Vec<_>>(),
        ["dev/web-1", "prod/web-1"]
    );
    s.apply(Update::Replace(Kind::Pod, Some("prod".into()), vec![]));
    assert_eq!(s.pods.keys().collect::<Vec<_>>(), ["dev/web-1"]);
    s.apply(Update::Delete(Object::Pod(p)));
    assert!(s.pods.is_empty());
}

#[test]
fn endpointslice_role() {
    let slice: EndpointSlice = serde_json::from_value(json!({
        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"name": "web-x1", "namespace": "prod",
            "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.1.0.5"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "hostname": "web-1", "nodeName": "n1", "deprecatedTopology": {"topology.kubernetes.io/zone": "z1"},
             "targetRef": {"kind": "Pod", "namespace": "prod", "name": "web-1"}},
            {"addresses": ["10.1.0.6"], "conditions": {}}
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]
    }))
    .unwrap();
    let empty: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "e", "namespace": "prod"}, "addressType": "IPv4",
        "endpoints": null, "ports": null
    }))
    .unwrap();
    assert!(empty.ports.is_empty() && empty.endpoints.is_empty());
    let mut store = Store::default();
    store.endpointslices.insert("prod/web-x1".into(), slice);
    store
        .services
        .insert("prod/web".into(), service("ClusterIP"));
    store.pods.insert("prod/web-1".into(), pod());
    store.nodes.insert("n1".into(), node());
    let g = build::groups(Role::EndpointSlice, &store, true);
    assert_eq!(g[0].source, "endpointslice/prod/web-x1");
    assert_eq!(
        g[0].labels["__meta_kubernetes_endpointslice_name"],
        "web-x1"
    );
    assert_eq!(
        g[0].labels["__meta_kubernetes_endpointslice_address_type"],
        "IPv4"
    );
    assert_eq!(g[0].labels["__meta_kubernetes_service_name"], "web");
    let t = &g[0].targets;
    assert_eq!(t.len(), 3);
    let mut want = labels(&[
        ("__address__", "10.1.0.5:8080"),
        ("__meta_kubernetes_endpointslice_port_name", "http"),
        ("__meta_kubernetes_endpointslice_port_protocol", "TCP"),
        ("__meta_kubernetes_endpointslice_port", "8080"),
        ("__meta_kubernetes_endpointslice_port_app_protocol", "http"),
        (
            "__meta_kubernetes_endpointslice_endpoint_conditions_ready",
            "true",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_conditions_serving",
            "true",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_conditions_terminating",
            "false",
        ),
        ("__meta_kubernetes_endpointslice_endpoint_hostname", "web-1"),
        ("__meta_kubernetes_endpointslice_address_target_kind", "Pod"),
        (
            "__meta_kubernetes_endpointslice_address_target_name",
            "web-1",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_topology_topology_kubernetes_io_zone",
            "z1",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_topology_present_topology_kubernetes_io_zone",
            "true",
        ),
        ("__meta_kubernetes_node_name", "n1"),
        ("__meta_kubernetes_node_label_kubernetes_io_hostname", "n1"),
        (
            "__meta_kubernetes_node_labelpresent_kubernetes_io_hostname",
            "true",
        ),
        (
            "__meta_kubernetes_node_label_topology_kubernetes_io_zone",
            "z1",
        ),
        (
            "__meta_kubernetes_node_labelpresent_topology_kubernetes_io_zone",
            "true",
        ),
        ("__meta_kubernetes_pod_container_name", "app"),
        ("__meta_kubernetes_pod_container_image", "web:1"),
        ("__meta_kubernetes_pod_container_port_name", "http"),
        ("__meta_kubernetes_pod_container_port_number", "8080"),
        ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
    ]);
    // Plus the pod's own labels, as in the pod role.
    let mut p = Store::default();
    p.pods.insert("prod/web-1".into(), pod());
    let pod_group = &build::groups(Role::Pod, &p, false)[0];
    want.extend(
        pod_group
            .labels
            .iter()
            .filter(|(k, _)| *k != "__meta_kubernetes_namespace")
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    assert_eq!(t[0], want);
    // Conditions not reported: no condition labels.
    assert_eq!(
        t[1],
        labels(&[
            ("__address__", "10.1.0.6:8080"),
            ("__meta_kubernetes_endpointslice_port_name", "http"),
            ("__meta_kubernetes_endpointslice_port_protocol", "TCP"),
            ("__meta_kubernetes_endpointslice_port", "8080"),
            ("__meta_kubernetes_endpointslice_port_app_protocol", "http"),
        ])
    );
    // The pod's other container port.
    assert_eq!(t[2]["__address__"], "10.1.0.5:9090");
    assert_eq!(t[2]["__meta_kubernetes_pod_container_port_name"], "metrics");
}
