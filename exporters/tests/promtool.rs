//! `promtool check metrics` (Debian package `prometheus`, installed by `.ci/run`) over the
//! exporter's output: the node collectors on the fixture tree, the `container` collector's golden
//! outputs for every cgroup layout, and one scrape of this machine with every collector.
//!
//! The one lint accepted is promtool's snake_case rule for the `node_memory_*` names that mirror
//! `/proc/meminfo` fields (`node_memory_MemTotal_bytes`): node_exporter 1.5 uses exactly these
//! names, and dashboards depend on them, so promtool reports the same lines for node_exporter.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use pharos_exporters::{Exporter, Options};

const PROMTOOL: &str = "/usr/bin/promtool";

/// promtool's problems with `text` that are not the accepted meminfo naming lint.
fn lint(text: &str) -> Vec<String> {
    assert!(
        Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing: install the Debian package prometheus (see .ci/run)"
    );
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let problems: Vec<String> = report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !accepted(l))
        .map(str::to_string)
        .collect();
    // Exit code 3 means lint problems only; anything else non-zero is a parse failure.
    let code = out.status.code();
    assert!(
        code == Some(0) || (code == Some(3) && report.lines().count() > 0),
        "promtool failed ({:?}): {report}",
        out.status
    );
    if code == Some(0) {
        assert!(problems.is_empty(), "{problems:?}");
    }
    problems
}

/// The snake_case lint for a meminfo-derived name, e.g.
/// `node_memory_MemTotal_bytes metric names should be written in 'snake_case' not 'camelCase'`.
fn accepted(line: &str) -> bool {
    line.strip_suffix(" metric names should be written in 'snake_case' not 'camelCase'")
        .is_some_and(|name| name.starts_with("node_memory_") && !name.contains(' '))
}

#[track_caller]
fn check_clean(what: &str, text: &str) {
    assert!(!text.is_empty(), "{what}: empty output");
    let problems = lint(text);
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

#[test]
fn accepted_lint_is_narrow() {
    #[track_caller]
    fn check(line: &str, want: bool) {
        assert_eq!(accepted(line), want, "{line:?}");
    }
    check(
        "node_memory_MemTotal_bytes metric names should be written in 'snake_case' not 'camelCase'",
        true,
    );
    check(
        "container_memoryRss metric names should be written in 'snake_case' not 'camelCase'",
        false,
    );
    check(
        "node_memory_MemTotal_bytes counter metrics should have \"_total\" suffix",
        false,
    );
}

#[test]
fn node_collectors_on_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let opts = Options {
        procfs: root.join("proc"),
        sysfs: root.join("sys"),
        rootfs: root.join("root"),
        ..Options::default()
    };
    let text = Exporter::new(opts).render();
    assert!(text.contains("node_memory_MemTotal_bytes"));
    check_clean("fixtures", &text);
}

#[test]
fn container_collector_golden_outputs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cgroup");
    for layout in ["v1", "v2", "hybrid", "none"] {
        let path = dir.join(layout).join("want.prom");
        let text = std::fs::read_to_string(&path).expect("golden file");
        check_clean(&path.display().to_string(), &text);
    }
}

#[test]
fn this_machine_every_collector() {
    let text = Exporter::new(Options::default()).render();
    check_clean("this machine", &text);
}
