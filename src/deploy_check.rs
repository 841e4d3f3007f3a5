//! Tests of the Kubernetes manifests under `deploy/`: every `pharos` container's arguments parse
//! with this binary's command line, the server mounts the ConfigMap the kustomization makes where
//! `--config.file` points, and the ClusterRole lets kubernetes_sd list and watch what the shipped
//! configuration discovers. (The configuration itself is checked by `pharos check config` and
//! promtool in tests/integration/deploy.rs, and run against a fake API server in
//! collector/tests/kubernetes.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use clap::{CommandFactory, FromArgMatches};
use serde::Deserialize;
use serde_json::Value;

use crate::{Cli, with_collector_flags};

const MANIFESTS: [(&str, &str); 2] = [
    (
        "deploy/kubernetes/server.yaml",
        include_str!("../deploy/kubernetes/server.yaml"),
    ),
    (
        "deploy/kubernetes/exporter-daemonset.yaml",
        include_str!("../deploy/kubernetes/exporter-daemonset.yaml"),
    ),
];
const KUSTOMIZATION: &str = include_str!("../deploy/kustomization.yaml");
const CONFIG: &str = include_str!("../deploy/kubernetes/prometheus.yml");

/// Every document of every manifest.
fn objects() -> Vec<Value> {
    let mut out = Vec::new();
    for (name, text) in MANIFESTS {
        for doc in serde_norway::Deserializer::from_str(text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            if !v.is_null() {
                out.push(v);
            }
        }
    }
    out
}

fn of_kind(kind: &str) -> Vec<Value> {
    objects()
        .into_iter()
        .filter(|o| o["kind"] == kind)
        .collect()
}

/// The pharos containers of the workloads: (workload name, pod spec, container).
fn pharos_containers() -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    for o in objects() {
        let spec = &o["spec"]["template"]["spec"];
        for c in spec["containers"].as_array().into_iter().flatten() {
            if c["image"].as_str().unwrap_or("").starts_with("pharos") {
                out.push((
                    o["metadata"]["name"].as_str().unwrap().to_string(),
                    spec.clone(),
                    c.clone(),
                ));
            }
        }
    }
    out
}

fn args(c: &Value) -> Vec<String> {
    c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn container_arguments_parse() {
    let found = pharos_containers();
    let names: Vec<&str> = found.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["pharos", "pharos-exporter"]);
    for (name, _, c) in &found {
        let argv: Vec<String> = std::iter::once("pharos".to_string())
            .chain(args(c))
            .collect();
        let m = with_collector_flags(Cli::command())
            .try_get_matches_from(&argv)
            .unwrap_or_else(|e| panic!("{name}: {argv:?}: {e}"));
        Cli::from_arg_matches(&m).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // A wrong flag would be caught.
    let bad = ["pharos", "server", "--storage.tsdb.retention=15d"];
    assert!(
        with_collector_flags(Cli::command())
            .try_get_matches_from(bad)
            .is_err()
    );
}

#[test]
fn server_mounts_the_generated_config_where_it_reads_it() {
    let (_, spec, c) = pharos_containers().remove(0);
    let config_file = args(&c)
        .iter()
        .find_map(|a| a.strip_prefix("--config.file=").map(str::to_string))
        .unwrap();
    let (dir, file) = config_file.rsplit_once('/').unwrap();
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("nothing mounted at {dir}"));
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let cm = volume["configMap"]["name"].as_str().unwrap();
    let k: Value = serde_norway::from_str(KUSTOMIZATION).unwrap();
    let generated = k["configMapGenerator"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == cm)
        .unwrap_or_else(|| panic!("the kustomization makes no ConfigMap {cm}"));
    assert_eq!(k["generatorOptions"]["disableNameSuffixHash"], true);
    let files: Vec<&str> = generated["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    // The config file and every rule file it names are in the ConfigMap (keys = file names).
    let base = |p: &str| p.rsplit('/').next().unwrap().to_string();
    let keys: Vec<String> = files.iter().map(|f| base(f)).collect();
    assert!(keys.contains(&file.to_string()), "{keys:?}");
    let cfg: Value = serde_norway::from_str(CONFIG).unwrap();
    for r in cfg["rule_files"].as_array().unwrap() {
        assert!(keys.contains(&r.as_str().unwrap().to_string()), "{r}");
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    for f in files {
        assert!(root.join(f).is_file(), "{f}");
    }
    for r in k["resources"].as_array().unwrap() {
        assert!(root.join(r.as_str().unwrap()).is_file(), "{r}");
    }
    // The server runs under the service account the ClusterRole is bound to.
    let binding = &of_kind("ClusterRoleBinding")[0];
    assert_eq!(
        binding["subjects"][0]["name"], spec["serviceAccountName"],
        "{binding}"
    );
}

#[test]
fn cluster_role_allows_what_kubernetes_sd_watches() {
    let cfg: Value = serde_norway::from_str(CONFIG).unwrap();
    let role = &of_kind("ClusterRole")[0];
    let allowed = |resource: &str, verb: &str| {
        role["rules"].as_array().unwrap().iter().any(|r| {
            r["apiGroups"].as_array().unwrap().iter().any(|g| g == "")
                && r["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == resource)
                && r["verbs"].as_array().unwrap().iter().any(|x| x == verb)
        })
    };
    let mut roles = 0;
    for job in cfg["scrape_configs"].as_array().unwrap() {
        for sd in job["kubernetes_sd_configs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            roles += 1;
            // What Prometheus' discovery of each role lists and watches.
            let needs: &[&str] = match sd["role"].as_str().unwrap() {
                "node" => &["nodes"],
                "pod" => &["pods"],
                "service" => &["services"],
                "endpoints" => &["endpoints", "services", "pods"],
                other => panic!("role {other} not covered by this test"),
            };
            for res in needs {
                for verb in ["list", "watch"] {
                    assert!(allowed(res, verb), "{verb} {res} for {}", job["job_name"]);
                }
            }
        }
    }
    assert_eq!(roles, 3);
}
