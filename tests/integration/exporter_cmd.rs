//! `pharos exporter` as a process: node_exporter's collector switches (`--collector.<name>`,
//! `--no-collector.<name>`, `--collector.disable-defaults`) and the `--path.*` roots, over the
//! fixture tree of `exporters/tests/fixtures`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{free_port, get};

struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `pharos exporter` on the fixture tree with `flags` and returns the collectors its first
/// scrape reports in `node_scrape_collector_success`, and the whole text.
fn collectors_run(flags: &[&str]) -> (BTreeSet<String>, String) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("exporters/tests/fixtures");
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_pharos"))
        .arg("exporter")
        .arg(format!("--web.listen-address={addr}"))
        .arg(format!("--path.procfs={}", fixtures.join("proc").display()))
        .arg(format!("--path.sysfs={}", fixtures.join("sys").display()))
        .arg(format!("--path.rootfs={}", fixtures.join("root").display()))
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pharos exporter");
    let mut exporter = Exporter(child);
    for _ in 0..600 {
        if let Ok((200, text)) = get(&addr, "/metrics") {
            let ran = text
                .lines()
                .filter_map(|l| l.strip_prefix("node_scrape_collector_success{collector=\""))
                .filter_map(|l| l.split_once('"'))
                .map(|(name, _)| name.to_string())
                .collect();
            return (ran, text);
        }
        if let Ok(Some(status)) = exporter.0.try_wait() {
            panic!("pharos exporter {flags:?} exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("pharos exporter {flags:?} did not answer on {addr}");
}

#[test]
fn disable_defaults_runs_only_the_named_collectors() {
    let (ran, text) = collectors_run(&[
        "--collector.disable-defaults",
        "--collector.loadavg",
        "--collector.netclass",
    ]);
    assert_eq!(ran, BTreeSet::from(["loadavg".into(), "netclass".into()]));
    assert!(text.contains("\nnode_load1 0.71\n"), "{text}");
    assert!(
        text.contains("node_network_mtu_bytes{device=\"eth0\"} 1400\n"),
        "{text}"
    );
}

#[test]
fn no_collector_disables_one() {
    let (ran, text) = collectors_run(&["--no-collector.cpu", "--no-collector.container"]);
    assert!(
        !ran.contains("cpu") && !ran.contains("container"),
        "{ran:?}"
    );
    for on in [
        "meminfo",
        "loadavg",
        "netclass",
        "netdev",
        "filesystem",
        "time",
    ] {
        assert!(ran.contains(on), "{on} missing from {ran:?}");
    }
    assert!(!text.contains("node_cpu_seconds_total"), "{text}");
}

#[test]
fn unknown_collector_flag_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_pharos"))
        .args(["exporter", "--collector.nosuch"])
        .output()
        .expect("run pharos");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--collector.nosuch"), "{err}");
}
