//! PromQL parse errors (position and message) against the real Prometheus 2.42: the same bad
//! queries to both `/api/v1/query`, the `error` fields compared.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Pharos, enc, free_port, get};

/// Bad queries whose errors match Prometheus' exactly.
const SAME: &[&str] = &[
    "rate(foo)",
    "foo{",
    "foo{a=\"b\"",
    "sum(foo) by",
    "1 +",
    "foo[5m",
    "foo[5x]",
    "foo[5mx]",
    "foo[5m5]",
    "foo[5m:1x]",
    "foo[1m:5m:1m]",
    "foo[5]",
    "rate(foo[5m]",
    "foo @ bar",
    "unknown_fn(foo)",
    "sum by (a) (foo) by (b)",
    "foo offset",
    "foo offset 5x",
    "\"abc",
    "{}",
    "foo{a=~\"(\"}",
    "1 + \"a\"",
    "foo and 1",
    "rate(foo[5m], 1)",
    "histogram_quantile(foo)",
    "foo[5m][1m]",
    "topk(foo, bar)",
    "-\"a\"",
    "foo{a=\"b\",}}",
    "}",
    "foo)",
    "(1))",
    "5x",
    "0x1g",
    "2.5.",
    "abs(foo) bool",
    "count_values(1, foo)",
    "label_replace(x, \"a\", 1, \"c\", \"d\")",
    "round(x, \"a\")",
    "abs(rate(x[5m]), foo)",
    // Regular expressions: Go's RE2 syntax rules and texts.
    "up{a=~\"a**\"}",
    "up{a=~\"a++\"}",
    "up{a=~\"x{2}{3}\"}",
    "up{a=~\"*a\"}",
    "up{a=~\"a|*\"}",
    "up{a=~\"a)\"}",
    "up{a=~\"[a\"}",
    "up{a=~\"[z-a]\"}",
    "up{a=~\"[[:foo:]]\"}",
    "up{a=~\"a{2,1}\"}",
    "up{a=~\"a{1001}\"}",
    "up{a!~\"\\\\p{Foo}\"}",
    "up{a=~\"(?<n>a)\"}",
    "up{a=~\"(?z)\"}",
    "up{a=~\"(?P<>a)\"}",
    "up{a=~\"\\\\8\"}",
    "up{a=~\"\\\\y\"}",
    "up{a=~\"\\\\Q\"}",
    "up{a=~\"[\\\\x{110000}]\"}",
];

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn error_of(addr: &str, q: &str) -> String {
    let (_, body) = get(addr, &format!("/api/v1/query?query={}&time=1000", enc(q))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["error"].as_str().unwrap_or("<no error>").to_string()
}

#[test]
fn parse_errors_match_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yml");
    std::fs::write(&cfg, "global: {}\n").unwrap();
    let prom_addr = format!("127.0.0.1:{}", free_port());
    let _prom = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("start prometheus (Debian package `prometheus`)"),
    );
    let p = Pharos::start(
        free_port(),
        &[
            &format!("--config.file={}", cfg.display()),
            &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            "--exporter.listen-address=off",
        ],
        &dir.path().join("pharos.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !get(&prom_addr, "/-/ready").is_ok_and(|(s, _)| s == 200) {
        assert!(Instant::now() < deadline, "prometheus did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut differ = Vec::new();
    for q in SAME {
        let (want, got) = (error_of(&prom_addr, q), error_of(&p.web, q));
        if want != got {
            differ.push(format!("{q}\n  Prometheus: {want}\n  Pharos:     {got}"));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}
