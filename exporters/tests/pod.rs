//! The `container` collector against fixture trees of each cgroup layout under
//! `tests/fixtures/cgroup/<layout>/` (`sys/fs/cgroup`, `proc`, the host root with runtime and
//! kubelet files), compared with golden files `want.prom` next to them. Run with
//! `PHAROS_UPDATE_GOLDEN=1` to rewrite the golden files after a deliberate change.

use std::path::{Path, PathBuf};

use pharos_exporters::pod::cgroup::{Hierarchies, Mode, Source};
use pharos_exporters::pod::metadata;
use pharos_exporters::{Exporter, Options, pod};
use pharos_model::expfmt::{self, write_text};

fn fixture(layout: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cgroup")
        .join(layout)
}

fn options(root: &Path, metadata: metadata::Source) -> Options {
    Options {
        procfs: root.join("proc"),
        sysfs: root.join("sys"),
        rootfs: root.join("root"),
        metadata,
        ..Options::default()
    }
}

/// One scrape of the `container` collector alone, without the duration line.
fn scrape(opts: &Options) -> String {
    let c = pod::build("container", opts).expect("container collector");
    let families: Vec<_> = Exporter::with_collectors(vec![c])
        .gather()
        .into_iter()
        .filter(|f| f.name != "node_scrape_collector_duration_seconds")
        .collect();
    let mut s = String::new();
    write_text(&mut s, &families);
    s
}

#[track_caller]
fn golden(layout: &str, metadata: metadata::Source) -> String {
    let root = fixture(layout);
    let got = scrape(&options(&root, metadata));
    let path = root.join("want.prom");
    if std::env::var_os("PHAROS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).expect("write golden file");
    }
    let want = std::fs::read_to_string(&path).expect("read golden file");
    assert_eq!(got, want, "{layout}: got:\n{got}");
    // Every golden output is valid text format.
    expfmt::parse(&got, expfmt::Format::Text).expect("parses");
    got
}

#[test]
fn v1_cgroupfs_containerd() {
    let got = golden("v1", metadata::Source::Kubelet);
    let c1 = "a".repeat(64);
    // Names from containerd's bundle annotations; the sandbox has no container name.
    let want = format!(
        "container_memory_working_set_bytes{{container=\"nginx\",id=\"/kubepods/burstable/\
         pod1b2c3d4e-aaaa-bbbb-cccc-0123456789ab/{c1}\",image=\"docker.io/library/nginx:1.25\",\
         name=\"{c1}\",namespace=\"shop\",pod=\"web-5d8f7\"}} 0\n"
    );
    assert!(got.contains(&want), "{want}");
    assert!(got.contains("node_scrape_collector_success{collector=\"container\"} 1\n"));
}

#[test]
fn v2_systemd_crio() {
    let got = golden("v2", metadata::Source::Kubelet);
    assert!(got.contains("container=\"grafana\""));
    assert!(got.contains("node_scrape_collector_success{collector=\"container\"} 1\n"));
}

#[test]
fn hybrid_systemd_containerd_podlist() {
    let list = fixture("hybrid").join("podlist.json");
    let got = golden(
        "hybrid",
        metadata::Source::PodList(list.to_string_lossy().into_owned()),
    );
    assert!(got.contains("node_scrape_collector_success{collector=\"container\"} 1\n"));
}

#[test]
fn none() {
    let got = golden("none", metadata::Source::Kubelet);
    assert_eq!(
        got,
        "# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.\n\
         # TYPE node_scrape_collector_success gauge\n\
         node_scrape_collector_success{collector=\"container\"} 0\n"
    );
}

#[test]
fn layouts_are_detected() {
    #[track_caller]
    fn check(layout: &str, mode: Mode, memory: Option<&str>, cpuacct: Option<&str>) {
        let root = fixture(layout).join("sys/fs/cgroup");
        let h = Hierarchies::detect(&root);
        assert_eq!(h.mode, mode, "{layout}");
        let rel = |s: &Option<Source>| {
            s.as_ref().map(|s| match s {
                Source::V1(p) => format!("v1:{}", p.strip_prefix(&root).unwrap_or(p).display()),
                Source::V2(p) => format!("v2:{}", p.strip_prefix(&root).unwrap_or(p).display()),
            })
        };
        assert_eq!(rel(&h.memory).as_deref(), memory, "{layout} memory");
        assert_eq!(rel(&h.cpuacct).as_deref(), cpuacct, "{layout} cpuacct");
    }
    check("v1", Mode::V1, Some("v1:memory"), Some("v1:cpu,cpuacct"));
    check("v2", Mode::V2, Some("v2:"), Some("v2:"));
    check(
        "hybrid",
        Mode::Hybrid,
        Some("v1:memory"),
        Some("v1:cpuacct"),
    );
    check("none", Mode::None, None, None);
}

#[test]
fn without_kubernetes_names_only_id_is_set() {
    let got = scrape(&options(&fixture("v1"), metadata::Source::None));
    assert!(!got.contains("namespace=\"shop\""));
    assert!(got.contains("container_processes{container=\"\",id=\"/kubepods\",image=\"\",name=\"\",namespace=\"\",pod=\"\"} 3\n"));
}

/// Malformed and new-format files skip the metric, report success 0 and keep everything else.
#[test]
fn bad_files_skip_the_metric_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cg = dir.path().join("sys/fs/cgroup");
    let a = cg.join("a");
    std::fs::create_dir_all(&a).expect("mkdir");
    let files = [
        (cg.join("cgroup.controllers"), "cpu memory io\n"),
        (cg.join("cgroup.procs"), "1\n"),
        (a.join("cgroup.procs"), "7\nnot-a-pid\n"),
        (
            a.join("cpu.stat"),
            "usage_usec 2000000\nuser_usec\nsystem_usec x\nnew_field 1\n",
        ),
        (a.join("cpu.max"), "bogus\n"),
        (a.join("memory.current"), "12x\n"),
        (a.join("memory.max"), "max\n"),
        (a.join("memory.stat"), "anon 5\nfile\n"),
        (a.join("io.stat"), "garbage line\n8:0 rbytes=9 wbytes=zz\n"),
    ];
    for (p, text) in files {
        std::fs::write(p, text).expect("write");
    }
    let got = scrape(&options(dir.path(), metadata::Source::None));
    let l = "{container=\"\",id=\"/a\",image=\"\",name=\"\",namespace=\"\",pod=\"\"}";
    for line in [
        "container_cpu_usage_seconds_total{container=\"\",cpu=\"total\",id=\"/a\",image=\"\",name=\"\",namespace=\"\",pod=\"\"} 2\n".to_string(),
        format!("container_memory_rss{l} 5\n"),
        format!("container_spec_memory_limit_bytes{l} 0\n"),
        format!("container_processes{l} 1\n"),
        "node_scrape_collector_success{collector=\"container\"} 0\n".to_string(),
    ] {
        assert!(got.contains(&line), "missing {line:?} in:\n{got}");
    }
    for absent in [
        "container_memory_usage_bytes",
        "container_spec_cpu_period",
        "container_memory_working_set_bytes",
    ] {
        assert!(!got.contains(absent), "{absent} in:\n{got}");
    }
}

/// The collector finds this machine's real cgroups (whatever their layout) without errors.
#[test]
fn real_machine() {
    let got = scrape(&Options::default());
    let h = Hierarchies::detect(Path::new("/sys/fs/cgroup"));
    if h.mode == Mode::None {
        return;
    }
    assert!(
        got.contains("node_scrape_collector_success{collector=\"container\"} 1\n"),
        "{:?}: {got}",
        h.mode
    );
    assert!(
        got.contains("container_cpu_usage_seconds_total{container=\"\",cpu=\"total\",id=\"/\"")
    );
    expfmt::parse(&got, expfmt::Format::Text).expect("parses");
}

/// The PodList is fetched over plain HTTP, like the kubelet's read-only port serves it.
#[test]
fn pod_list_over_http() {
    use std::io::{Read, Write};
    let body = std::fs::read_to_string(fixture("hybrid").join("podlist.json")).expect("read");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut buf).expect("read request");
            assert!(n > 0, "request ended early");
            req.extend_from_slice(&buf[..n]);
        }
        let req = String::from_utf8_lossy(&req).into_owned();
        write!(
            s,
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{body}"
        )
        .expect("write");
        req
    });
    let url = format!("http://{addr}/pods");
    let got = scrape(&options(&fixture("hybrid"), url.parse().expect("source")));
    let req = server.join().expect("server thread");
    assert!(req.starts_with("GET /pods HTTP/1.0\r\n"), "{req}");
    assert_eq!(
        got,
        std::fs::read_to_string(fixture("hybrid").join("want.prom")).expect("golden")
    );
}
