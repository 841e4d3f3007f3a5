//! The configuration shipped for clusters (deploy/kubernetes/prometheus.yml with
//! deploy/rules/pharos.rules.yml next to it, as the ConfigMap mounts them) passes `pharos check
//! config` and Prometheus 2.42's `promtool check config`, and a broken copy fails both. Debian's
//! Prometheus is built without Kubernetes discovery, so promtool gets a copy whose
//! `kubernetes_sd_configs` are swapped for `static_configs` (everything else, relabeling included,
//! is checked as shipped).

use std::path::Path;
use std::process::Command;

/// `config` with every `kubernetes_sd_configs` replaced by a static target (for Debian's promtool).
fn without_kubernetes_sd(config: &str) -> String {
    let mut v: serde_json::Value = serde_norway::from_str(config).unwrap();
    for job in v["scrape_configs"].as_array_mut().unwrap() {
        let job = job.as_object_mut().unwrap();
        if job.remove("kubernetes_sd_configs").is_some() {
            job.insert(
                "static_configs".into(),
                serde_json::json!([{"targets": ["10.0.0.1:9100"]}]),
            );
        }
    }
    serde_norway::to_string(&v).unwrap()
}

/// Runs `prog check config prometheus.yml` in `dir` (for promtool without kubernetes_sd):
/// (success, stdout + stderr).
fn check(dir: &Path, prog: &str) -> (bool, String) {
    let config = std::fs::read_to_string(dir.join("prometheus.yml")).unwrap();
    let file = if prog == "promtool" {
        std::fs::write(dir.join("promtool.yml"), without_kubernetes_sd(&config)).unwrap();
        "promtool.yml"
    } else {
        "prometheus.yml"
    };
    let out = Command::new(prog)
        .args(["check", "config", file])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e} (apt-get install prometheus)"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn shipped_cluster_config_passes_pharos_and_promtool() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let tmp = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(root.join("kubernetes/prometheus.yml")).unwrap();
    std::fs::write(tmp.path().join("prometheus.yml"), &config).unwrap();
    std::fs::copy(
        root.join("rules/pharos.rules.yml"),
        tmp.path().join("pharos.rules.yml"),
    )
    .unwrap();
    for prog in ["promtool", env!("CARGO_BIN_EXE_pharos")] {
        let (ok, out) = check(tmp.path(), prog);
        assert!(ok, "{prog}: {out}");
        assert!(out.contains("SUCCESS"), "{prog}: {out}");
        assert!(out.contains("13 rules found"), "{prog}: {out}");
    }
    // An unknown relabel action is refused by both.
    let broken = config.replacen("action: keep", "action: kept", 1);
    assert_ne!(broken, config);
    std::fs::write(tmp.path().join("prometheus.yml"), broken).unwrap();
    for prog in ["promtool", env!("CARGO_BIN_EXE_pharos")] {
        let (ok, out) = check(tmp.path(), prog);
        assert!(!ok, "{prog} accepted a bad action: {out}");
        assert!(out.contains("kept"), "{prog}: {out}");
    }
}
