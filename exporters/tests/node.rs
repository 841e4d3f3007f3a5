//! Node collectors against the hand-written fixture tree in `tests/fixtures/`, the exporter's
//! scrape bookkeeping, the HTTP router and one scrape of the real machine.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use pharos_exporters::node::{self, filesystem, sockstat, uname};
use pharos_exporters::{Collector, Exporter, MetricFamily, Options};
use pharos_model::expfmt::write_text;

fn fixtures() -> Options {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    Options {
        procfs: root.join("proc"),
        sysfs: root.join("sys"),
        rootfs: root.join("root"),
        ..Options::default()
    }
}

fn render(families: &[MetricFamily]) -> String {
    let mut s = String::new();
    write_text(&mut s, families);
    s
}

/// Runs `c` alone through an exporter and returns its text without the scrape bookkeeping.
fn scrape(c: Box<dyn Collector>) -> String {
    let exporter = Exporter::with_collectors(vec![c]);
    let families: Vec<MetricFamily> = exporter
        .gather()
        .into_iter()
        .filter(|f| !f.name.starts_with("node_scrape_collector_"))
        .collect();
    render(&families)
}

#[track_caller]
fn check(c: Box<dyn Collector>, want: &str) {
    let got = scrape(c);
    assert_eq!(got, want, "got:\n{got}");
}

fn by_name(name: &str) -> Box<dyn Collector> {
    node::build(name, &fixtures()).expect("known collector")
}

#[test]
fn cpu() {
    check(
        by_name("cpu"),
        r#"# HELP node_cpu_guest_seconds_total Seconds the CPUs spent in guests (VMs) for each mode.
# TYPE node_cpu_guest_seconds_total counter
node_cpu_guest_seconds_total{cpu="0",mode="nice"} 0.02
node_cpu_guest_seconds_total{cpu="0",mode="user"} 0.4
node_cpu_guest_seconds_total{cpu="1",mode="nice"} 0
node_cpu_guest_seconds_total{cpu="1",mode="user"} 0
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 283.73
node_cpu_seconds_total{cpu="0",mode="iowait"} 2.38
node_cpu_seconds_total{cpu="0",mode="irq"} 0
node_cpu_seconds_total{cpu="0",mode="nice"} 0.5
node_cpu_seconds_total{cpu="0",mode="softirq"} 0.19
node_cpu_seconds_total{cpu="0",mode="steal"} 0.09
node_cpu_seconds_total{cpu="0",mode="system"} 20
node_cpu_seconds_total{cpu="0",mode="user"} 123.76
node_cpu_seconds_total{cpu="1",mode="idle"} 282.81
node_cpu_seconds_total{cpu="1",mode="iowait"} 1.08
node_cpu_seconds_total{cpu="1",mode="irq"} 0
node_cpu_seconds_total{cpu="1",mode="nice"} 0.5
node_cpu_seconds_total{cpu="1",mode="softirq"} 0.32
node_cpu_seconds_total{cpu="1",mode="steal"} 0.09
node_cpu_seconds_total{cpu="1",mode="system"} 19
node_cpu_seconds_total{cpu="1",mode="user"} 126.24
"#,
    );
}

#[test]
fn meminfo() {
    check(
        by_name("meminfo"),
        r#"# HELP node_memory_Active_anon_bytes Memory information field Active_anon_bytes.
# TYPE node_memory_Active_anon_bytes gauge
node_memory_Active_anon_bytes 1.589248e+06
# HELP node_memory_HugePages_Free Memory information field HugePages_Free.
# TYPE node_memory_HugePages_Free gauge
node_memory_HugePages_Free 2
# HELP node_memory_HugePages_Total Memory information field HugePages_Total.
# TYPE node_memory_HugePages_Total gauge
node_memory_HugePages_Total 0
# HELP node_memory_Hugepagesize_bytes Memory information field Hugepagesize_bytes.
# TYPE node_memory_Hugepagesize_bytes gauge
node_memory_Hugepagesize_bytes 2.097152e+06
# HELP node_memory_Inactive_file_bytes Memory information field Inactive_file_bytes.
# TYPE node_memory_Inactive_file_bytes gauge
node_memory_Inactive_file_bytes 2.03624448e+09
# HELP node_memory_MemFree_bytes Memory information field MemFree_bytes.
# TYPE node_memory_MemFree_bytes gauge
node_memory_MemFree_bytes 2.2083518464e+10
# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.
# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes 2.5325268992e+10
"#,
    );
}

#[test]
fn loadavg() {
    check(
        by_name("loadavg"),
        r#"# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 0.71
# HELP node_load15 15m load average.
# TYPE node_load15 gauge
node_load15 0.33
# HELP node_load5 5m load average.
# TYPE node_load5 gauge
node_load5 0.72
"#,
    );
}

#[test]
fn stat() {
    check(
        by_name("stat"),
        r#"# HELP node_boot_time_seconds Node boot time, in unixtime.
# TYPE node_boot_time_seconds gauge
node_boot_time_seconds 1.795791515e+09
# HELP node_context_switches_total Total number of context switches.
# TYPE node_context_switches_total counter
node_context_switches_total 333163
# HELP node_forks_total Total number of forks.
# TYPE node_forks_total counter
node_forks_total 9117
# HELP node_intr_total Total number of interrupts serviced.
# TYPE node_intr_total counter
node_intr_total 244657
# HELP node_procs_blocked Number of processes blocked waiting for I/O to complete.
# TYPE node_procs_blocked gauge
node_procs_blocked 1
# HELP node_procs_running Number of processes in runnable state.
# TYPE node_procs_running gauge
node_procs_running 3
"#,
    );
}

#[test]
fn uname() {
    check(
        Box::new(uname::Uname::with_machine(&fixtures(), "x86_64")),
        r##"# HELP node_uname_info Labeled system information as provided by the uname system call.
# TYPE node_uname_info gauge
node_uname_info{domainname="(none)",machine="x86_64",nodename="node-1",release="6.1.0-13-amd64",sysname="Linux",version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)"} 1
"##,
    );
}

#[test]
fn os() {
    check(
        by_name("os"),
        r#"# HELP node_os_info A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.
# TYPE node_os_info gauge
node_os_info{build_id="",id="ubuntu",id_like="debian",image_id="",image_version="",name="Ubuntu",pretty_name="Ubuntu 22.04.3 LTS",variant="",variant_id="",version="22.04.3 LTS (Jammy Jellyfish)",version_codename="jammy",version_id="22.04"} 1
# HELP node_os_version Metric containing the major.minor part of the OS version.
# TYPE node_os_version gauge
node_os_version{id="ubuntu",id_like="debian",name="Ubuntu"} 22.04
"#,
    );
}

#[test]
fn filefd() {
    check(
        by_name("filefd"),
        r#"# HELP node_filefd_allocated File descriptor statistics: allocated.
# TYPE node_filefd_allocated gauge
node_filefd_allocated 320
# HELP node_filefd_maximum File descriptor statistics: maximum.
# TYPE node_filefd_maximum gauge
node_filefd_maximum 2.470938e+06
"#,
    );
}

#[test]
fn pressure() {
    check(
        by_name("pressure"),
        r#"# HELP node_pressure_cpu_waiting_seconds_total Total time in seconds that processes have waited for CPU time
# TYPE node_pressure_cpu_waiting_seconds_total counter
node_pressure_cpu_waiting_seconds_total 13.008889
# HELP node_pressure_io_stalled_seconds_total Total time in seconds no process could make progress due to IO congestion
# TYPE node_pressure_io_stalled_seconds_total counter
node_pressure_io_stalled_seconds_total 2.2988359999999997
# HELP node_pressure_io_waiting_seconds_total Total time in seconds that processes have waited due to IO congestion
# TYPE node_pressure_io_waiting_seconds_total counter
node_pressure_io_waiting_seconds_total 2.484579
# HELP node_pressure_memory_stalled_seconds_total Total time in seconds no process could make progress due to memory congestion
# TYPE node_pressure_memory_stalled_seconds_total counter
node_pressure_memory_stalled_seconds_total 5e-06
# HELP node_pressure_memory_waiting_seconds_total Total time in seconds that processes have waited for memory
# TYPE node_pressure_memory_waiting_seconds_total counter
node_pressure_memory_waiting_seconds_total 1.7e-05
"#,
    );
}

#[test]
fn vmstat() {
    check(
        by_name("vmstat"),
        r#"# HELP node_vmstat_oom_kill /proc/vmstat information field oom_kill.
# TYPE node_vmstat_oom_kill untyped
node_vmstat_oom_kill 2
# HELP node_vmstat_pgfault /proc/vmstat information field pgfault.
# TYPE node_vmstat_pgfault untyped
node_vmstat_pgfault 9.097287e+06
# HELP node_vmstat_pgmajfault /proc/vmstat information field pgmajfault.
# TYPE node_vmstat_pgmajfault untyped
node_vmstat_pgmajfault 875
# HELP node_vmstat_pgpgin /proc/vmstat information field pgpgin.
# TYPE node_vmstat_pgpgin untyped
node_vmstat_pgpgin 1.044081e+06
# HELP node_vmstat_pgpgout /proc/vmstat information field pgpgout.
# TYPE node_vmstat_pgpgout untyped
node_vmstat_pgpgout 1.840592e+06
# HELP node_vmstat_pswpin /proc/vmstat information field pswpin.
# TYPE node_vmstat_pswpin untyped
node_vmstat_pswpin 0
# HELP node_vmstat_pswpout /proc/vmstat information field pswpout.
# TYPE node_vmstat_pswpout untyped
node_vmstat_pswpout 0
"#,
    );
}

/// Asserts that every line of `want` is a line of `c`'s output and none of `absent` occurs.
#[track_caller]
fn check_lines(c: Box<dyn Collector>, want: &[&str], absent: &[&str]) {
    let got = scrape(c);
    for w in want {
        assert!(got.lines().any(|l| l == *w), "missing {w:?} in:\n{got}");
    }
    for a in absent {
        assert!(!got.contains(a), "unexpected {a:?} in:\n{got}");
    }
}

#[test]
fn netdev() {
    check_lines(
        by_name("netdev"),
        &[
            "# HELP node_network_receive_bytes_total Network device statistic receive_bytes.",
            "# TYPE node_network_receive_bytes_total counter",
            r#"node_network_receive_bytes_total{device="eth0"} 9.0653617e+07"#,
            r#"node_network_receive_bytes_total{device="lo"} 63165"#,
            r#"node_network_receive_packets_total{device="eth0"} 5958"#,
            r#"node_network_receive_errs_total{device="eth0"} 1"#,
            r#"node_network_receive_drop_total{device="eth0"} 2"#,
            r#"node_network_receive_fifo_total{device="eth0"} 3"#,
            r#"node_network_receive_frame_total{device="eth0"} 4"#,
            r#"node_network_receive_compressed_total{device="eth0"} 5"#,
            r#"node_network_receive_multicast_total{device="eth0"} 6"#,
            r#"node_network_receive_nohandler_total{device="eth0"} 13"#,
            r#"node_network_transmit_bytes_total{device="eth0"} 463196"#,
            r#"node_network_transmit_packets_total{device="eth0"} 5592"#,
            r#"node_network_transmit_errs_total{device="eth0"} 7"#,
            r#"node_network_transmit_drop_total{device="eth0"} 8"#,
            r#"node_network_transmit_fifo_total{device="eth0"} 9"#,
            r#"node_network_transmit_colls_total{device="eth0"} 10"#,
            r#"node_network_transmit_carrier_total{device="eth0"} 11"#,
            r#"node_network_transmit_compressed_total{device="eth0"} 12"#,
        ],
        // lo has no rx_nohandler file in the fixture.
        &[r#"node_network_receive_nohandler_total{device="lo"}"#],
    );
}

#[test]
fn diskstats() {
    check_lines(
        by_name("diskstats"),
        &[
            "# HELP node_disk_read_bytes_total The total number of bytes read successfully.",
            "# TYPE node_disk_io_now gauge",
            "# HELP node_disk_flush_requests_total The total number of flush requests completed successfully",
            r#"node_disk_reads_completed_total{device="vda"} 27185"#,
            r#"node_disk_reads_merged_total{device="vda"} 4582"#,
            r#"node_disk_read_bytes_total{device="vda"} 1.069144064e+09"#,
            r#"node_disk_read_time_seconds_total{device="vda"} 6.242"#,
            r#"node_disk_writes_completed_total{device="vda"} 5764"#,
            r#"node_disk_writes_merged_total{device="vda"} 23798"#,
            r#"node_disk_written_bytes_total{device="vda"} 1.884766208e+09"#,
            r#"node_disk_write_time_seconds_total{device="vda"} 33.968"#,
            r#"node_disk_io_now{device="vda"} 0"#,
            r#"node_disk_io_time_seconds_total{device="vda"} 4.548"#,
            r#"node_disk_io_time_weighted_seconds_total{device="vda"} 40.548"#,
            r#"node_disk_discards_completed_total{device="vda"} 4707"#,
            r#"node_disk_discards_merged_total{device="vda"} 8"#,
            r#"node_disk_discarded_sectors_total{device="vda"} 139056"#,
            r#"node_disk_discard_time_seconds_total{device="vda"} 0.323"#,
            r#"node_disk_flush_requests_total{device="vda"} 617"#,
            r#"node_disk_flush_requests_time_seconds_total{device="vda"} 0.014"#,
            // An old kernel's 11 columns: only those families get a sample.
            r#"node_disk_io_now{device="dm-0"} 1"#,
            r#"node_disk_io_time_weighted_seconds_total{device="dm-0"} 0.06"#,
            r#"node_disk_info{device="vda",major="254",minor="0",model="QEMU_HARDDISK",path="pci-0000:00:05.0",revision="2.5+",serial="QM00001",wwn="0x5000c500a1b2c3d4"} 1"#,
            r#"node_disk_info{device="dm-0",major="253",minor="0",model="",path="",revision="",serial="",wwn=""} 1"#,
        ],
        &[
            r#"device="vda1""#,
            r#"device="loop0""#,
            r#"node_disk_discards_completed_total{device="dm-0"}"#,
        ],
    );
}

#[test]
fn sockstat() {
    check_lines(
        Box::new(sockstat::Sockstat::with_page_size(&fixtures(), 4096)),
        &[
            "# HELP node_sockstat_sockets_used Number of IPv4 sockets in use.",
            "node_sockstat_sockets_used 14",
            "# HELP node_sockstat_TCP_inuse Number of TCP sockets in state inuse.",
            "# TYPE node_sockstat_TCP_inuse gauge",
            "node_sockstat_TCP_inuse 2",
            "node_sockstat_TCP_orphan 0",
            "node_sockstat_TCP_tw 2",
            "node_sockstat_TCP_alloc 4",
            "node_sockstat_TCP_mem 182",
            "# HELP node_sockstat_TCP_mem_bytes Number of TCP sockets in state mem_bytes.",
            "node_sockstat_TCP_mem_bytes 745472",
            "node_sockstat_UDP_mem_bytes 12288",
            "node_sockstat_FRAG_memory 0",
            "node_sockstat_TCP6_inuse 5",
            "node_sockstat_FRAG6_memory 0",
        ],
        &["node_sockstat_FRAG_memory_bytes"],
    );
}

#[test]
fn sockstat_without_ipv6() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("net")).expect("mkdir");
    std::fs::write(dir.path().join("net/sockstat"), "sockets: used 3\n").expect("write");
    let opts = Options {
        procfs: dir.path().to_path_buf(),
        ..Options::default()
    };
    check(
        Box::new(sockstat::Sockstat::with_page_size(&opts, 4096)),
        "# HELP node_sockstat_sockets_used Number of IPv4 sockets in use.\n\
         # TYPE node_sockstat_sockets_used gauge\nnode_sockstat_sockets_used 3\n",
    );
}

#[test]
fn filesystem() {
    let opts = fixtures();
    let stat = |size: u64, avail, readonly| filesystem::FsStats {
        size,
        free: size / 2,
        avail,
        files: 100,
        files_free: 40,
        readonly,
    };
    let mut stats = HashMap::new();
    stats.insert(opts.rootfs.clone(), stat(25_325_268_992, 400, false));
    stats.insert(opts.rootfs.join("mnt/my data"), stat(2000, 0, false));
    stats.insert(
        opts.rootfs.join("var/lib/docker/overlay2/x"),
        stat(1, 1, false),
    );
    // /run has no statistics (statvfs failed): device_error 1 and no other sample. The
    // excluded /proc, /sys and /var/lib/docker/... and the overlay type are not reported; the
    // duplicate / line is reported once; /mnt/my data is read-only by its `ro` option.
    check(
        Box::new(filesystem::Filesystem::with_source(&opts, Box::new(stats))),
        r#"# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/vda1",fstype="ext4",mountpoint="/"} 400
node_filesystem_avail_bytes{device="/dev/vdb",fstype="xfs",mountpoint="/mnt/my data"} 0
# HELP node_filesystem_device_error Whether an error occurred while getting statistics for the given device.
# TYPE node_filesystem_device_error gauge
node_filesystem_device_error{device="/dev/vda1",fstype="ext4",mountpoint="/"} 0
node_filesystem_device_error{device="/dev/vdb",fstype="xfs",mountpoint="/mnt/my data"} 0
node_filesystem_device_error{device="tmpfs",fstype="tmpfs",mountpoint="/run"} 1
# HELP node_filesystem_files Filesystem total file nodes.
# TYPE node_filesystem_files gauge
node_filesystem_files{device="/dev/vda1",fstype="ext4",mountpoint="/"} 100
node_filesystem_files{device="/dev/vdb",fstype="xfs",mountpoint="/mnt/my data"} 100
# HELP node_filesystem_files_free Filesystem total free file nodes.
# TYPE node_filesystem_files_free gauge
node_filesystem_files_free{device="/dev/vda1",fstype="ext4",mountpoint="/"} 40
node_filesystem_files_free{device="/dev/vdb",fstype="xfs",mountpoint="/mnt/my data"} 40
# HELP node_filesystem_free_bytes Filesystem free space in bytes.
# TYPE node_filesystem_free_bytes gauge
node_filesystem_free_bytes{device="/dev/vda1",fstype="ext4",mountpoint="/"} 1.2662634496e+10
node_filesystem_free_bytes{device="/dev/vdb",fstype="xfs",mountpoint="/mnt/my data"} 1000
# HELP node_filesystem_readonly Filesystem read-only status.
# TYPE node_filesystem_readonly gauge
node_filesystem_readonly{device="/dev/vda1",fstype="ext4",mountpoint="/"} 0
node_filesystem_readonly{device="/dev/vdb",fstype="xfs",mountpoint="/mnt/my data"} 1
# HELP node_filesystem_size_bytes Filesystem size in bytes.
# TYPE node_filesystem_size_bytes gauge
node_filesystem_size_bytes{device="/dev/vda1",fstype="ext4",mountpoint="/"} 2.5325268992e+10
node_filesystem_size_bytes{device="/dev/vdb",fstype="xfs",mountpoint="/mnt/my data"} 2000
"#,
    );
}

/// Mount points listed under the rootfs (the exporter sees the host's mounts through
/// `--path.rootfs`) are labelled without the prefix and statted below it; `/proc/1/mounts`
/// missing (hidepid) falls back to `/proc/mounts`.
#[test]
fn filesystem_rootfs_prefix_and_mounts_fallback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = dir.path().join("host");
    let procfs = dir.path().join("proc");
    std::fs::create_dir_all(rootfs.join("data")).expect("mkdir");
    std::fs::create_dir_all(&procfs).expect("mkdir");
    let r = rootfs.display();
    std::fs::write(
        procfs.join("mounts"),
        format!(
            "/dev/sda1 {r} ext4 rw 0 0\n/dev/sdb {r}/data xfs rw 0 0\n\
             /dev/sdc /elsewhere ext4 rw 0 0\nproc {r}/proc proc rw 0 0\n"
        ),
    )
    .expect("write");
    let opts = Options {
        procfs,
        rootfs: rootfs.clone(),
        ..Options::default()
    };
    let st = filesystem::FsStats {
        size: 10,
        free: 5,
        avail: 4,
        files: 3,
        files_free: 2,
        readonly: true,
    };
    let stats: HashMap<_, _> = [(rootfs.clone(), st), (rootfs.join("data"), st)].into();
    check_lines(
        Box::new(filesystem::Filesystem::with_source(&opts, Box::new(stats))),
        &[
            r#"node_filesystem_size_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 10"#,
            r#"node_filesystem_size_bytes{device="/dev/sdb",fstype="xfs",mountpoint="/data"} 10"#,
            r#"node_filesystem_readonly{device="/dev/sdb",fstype="xfs",mountpoint="/data"} 1"#,
            // Not below the rootfs: the label keeps the path, statted at <rootfs>/elsewhere.
            r#"node_filesystem_device_error{device="/dev/sdc",fstype="ext4",mountpoint="/elsewhere"} 1"#,
        ],
        &[r#"mountpoint="/proc""#, &format!("mountpoint=\"{r}")],
    );
}

#[test]
fn time() {
    check_lines(
        by_name("time"),
        &[
            "# HELP node_time_seconds System time in seconds since epoch (1970).",
            "# TYPE node_time_seconds gauge",
            "# HELP node_time_zone_offset_seconds System time zone offset in seconds.",
            "# TYPE node_time_zone_offset_seconds gauge",
            r#"node_time_clocksource_available_info{clocksource="acpi_pm",device="0"} 1"#,
            r#"node_time_clocksource_available_info{clocksource="hpet",device="0"} 1"#,
            r#"node_time_clocksource_available_info{clocksource="tsc",device="0"} 1"#,
            r#"node_time_clocksource_current_info{clocksource="tsc",device="0"} 1"#,
        ],
        &[],
    );
    let got = scrape(by_name("time"));
    let now: f64 = got
        .lines()
        .find_map(|l| l.strip_prefix("node_time_seconds "))
        .and_then(|v| v.parse().ok())
        .expect("node_time_seconds sample");
    let want = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    assert!(
        (want - now).abs() < 60.0,
        "node_time_seconds {now}, clock {want}"
    );
}

/// Every collector over an empty tree: success 0, no panic, no other output.
#[test]
fn missing_files_report_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        procfs: dir.path().join("proc"),
        sysfs: dir.path().join("sys"),
        rootfs: dir.path().join("root"),
        ..Options::default()
    };
    let exporter = Exporter::new(opts);
    let text = exporter.render();
    for name in Exporter::collector_names() {
        // `time` needs no file: the clock always works.
        let want = if *name == "time" { 1 } else { 0 };
        let line = format!("node_scrape_collector_success{{collector=\"{name}\"}} {want}");
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(!text.contains("node_cpu_seconds_total"));
}

#[test]
fn malformed_input_fails_the_collector_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("loadavg"), "0.5 nope 1\n").expect("write");
    std::fs::write(dir.path().join("meminfo"), "MemTotal: 10 kB\nBroken line\n").expect("write");
    std::fs::write(dir.path().join("stat"), "cpu0 1 2 x\n").expect("write");
    let opts = Options {
        procfs: dir.path().to_path_buf(),
        ..Options::default()
    };
    let exporter = Exporter::with_collectors(
        ["loadavg", "meminfo", "cpu", "time"]
            .iter()
            .filter_map(|n| node::build(n, &opts))
            .collect(),
    );
    let text = exporter.render();
    for (name, ok) in [("loadavg", 0), ("meminfo", 0), ("cpu", 0), ("time", 1)] {
        let line = format!("node_scrape_collector_success{{collector=\"{name}\"}} {ok}");
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    // A failing collector's partial output is dropped.
    assert!(!text.contains("node_memory_MemTotal_bytes"), "{text}");
    assert!(!text.contains("node_load1 "), "{text}");
}

#[test]
fn scrape_bookkeeping_and_order() {
    let exporter = Exporter::new(fixtures());
    let families = exporter.gather();
    let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "families sorted by name");
    let text = render(&families);
    assert!(text.contains(
        "# HELP node_scrape_collector_duration_seconds node_exporter: Duration of a collector scrape.\n\
         # TYPE node_scrape_collector_duration_seconds gauge\n"
    ));
    assert!(text.contains(
        "# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.\n\
         # TYPE node_scrape_collector_success gauge\n"
    ));
    for name in [
        "cpu",
        "meminfo",
        "loadavg",
        "stat",
        "os",
        "diskstats",
        "netdev",
        "vmstat",
    ] {
        let line = format!("node_scrape_collector_success{{collector=\"{name}\"}} 1");
        assert!(text.lines().any(|l| l == line), "missing {line:?}");
    }
}

#[test]
fn collectors_can_be_disabled() {
    let mut opts = fixtures();
    opts.collectors.insert("cpu".into(), false);
    opts.collectors.insert("no-such-collector".into(), true);
    let text = Exporter::new(opts).render();
    assert!(!text.contains("collector=\"cpu\""));
    assert!(!text.contains("node_cpu_seconds_total"));
    assert!(text.contains("node_load1 0.71\n"));
    assert!(Exporter::collector_names().contains(&"filesystem"));
}

/// One scrape of this machine: the main families exist and every line has the text format's
/// shape (`# HELP`/`# TYPE` comments or `name{labels} value`).
#[test]
fn real_machine() {
    let text = Exporter::new(Options::default()).render();
    for family in [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_load1",
        "node_boot_time_seconds",
        "node_uname_info",
        "node_time_seconds",
        "node_network_receive_bytes_total",
        "node_scrape_collector_success",
    ] {
        assert!(
            text.contains(&format!("\n# TYPE {family} ")),
            "missing family {family}"
        );
    }
    let mut samples = 0;
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or(line.strip_prefix("# TYPE "))
        {
            assert!(rest.split_once(' ').is_some(), "bad comment {line:?}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let value_ok = value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value);
        assert!(value_ok, "bad value in {line:?}");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels in {line:?}");
        }
        samples += 1;
    }
    assert!(samples > 50, "only {samples} samples");
}

#[tokio::test]
async fn http_router() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let exporter = Arc::new(Exporter::new(fixtures()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        axum::serve(listener, pharos_exporters::router(exporter))
            .await
            .expect("serve");
    });
    let get = |path: &'static str| async move {
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        conn.write_all(req.as_bytes()).await.expect("write");
        let mut resp = String::new();
        conn.read_to_string(&mut resp).await.expect("read");
        resp
    };
    let metrics = get("/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("content-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nnode_load1 0.71\n"), "{metrics}");
    let landing = get("/").await;
    assert!(landing.starts_with("HTTP/1.1 200"), "{landing}");
    assert!(landing.contains("text/html"), "{landing}");
    assert!(landing.contains("href=\"metrics\""), "{landing}");
    let missing = get("/nope").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    server.abort();
}

#[test]
fn netclass() {
    // eth0 is up with every attribute; ifb0 is down, hides carrier and friends (the kernel
    // answers EINVAL) and has an unparsable speed; bonding_masters is a plain file, not a device.
    check(
        by_name("netclass"),
        r#"# HELP node_network_address_assign_type Network device property: address_assign_type
# TYPE node_network_address_assign_type gauge
node_network_address_assign_type{device="eth0"} 0
node_network_address_assign_type{device="ifb0"} 1
# HELP node_network_carrier Network device property: carrier
# TYPE node_network_carrier gauge
node_network_carrier{device="eth0"} 1
# HELP node_network_carrier_changes_total Network device property: carrier_changes_total
# TYPE node_network_carrier_changes_total counter
node_network_carrier_changes_total{device="eth0"} 2
# HELP node_network_carrier_down_changes_total Network device property: carrier_down_changes_total
# TYPE node_network_carrier_down_changes_total counter
node_network_carrier_down_changes_total{device="eth0"} 1
# HELP node_network_carrier_up_changes_total Network device property: carrier_up_changes_total
# TYPE node_network_carrier_up_changes_total counter
node_network_carrier_up_changes_total{device="eth0"} 1
# HELP node_network_device_id Network device property: device_id
# TYPE node_network_device_id gauge
node_network_device_id{device="eth0"} 0
# HELP node_network_dormant Network device property: dormant
# TYPE node_network_dormant gauge
node_network_dormant{device="eth0"} 0
# HELP node_network_flags Network device property: flags
# TYPE node_network_flags gauge
node_network_flags{device="eth0"} 4099
node_network_flags{device="ifb0"} 130
# HELP node_network_iface_id Network device property: iface_id
# TYPE node_network_iface_id gauge
node_network_iface_id{device="eth0"} 4
node_network_iface_id{device="ifb0"} 2
# HELP node_network_iface_link Network device property: iface_link
# TYPE node_network_iface_link gauge
node_network_iface_link{device="eth0"} 4
node_network_iface_link{device="ifb0"} 2
# HELP node_network_iface_link_mode Network device property: iface_link_mode
# TYPE node_network_iface_link_mode gauge
node_network_iface_link_mode{device="eth0"} 0
# HELP node_network_info Non-numeric data from /sys/class/net/<iface>, value is always 1.
# TYPE node_network_info gauge
node_network_info{address="02:fc:00:00:00:01",broadcast="ff:ff:ff:ff:ff:ff",device="eth0",duplex="full",ifalias="",operstate="up"} 1
node_network_info{address="72:67:98:47:68:a2",broadcast="ff:ff:ff:ff:ff:ff",device="ifb0",duplex="",ifalias="uplink \"a\"",operstate="down"} 1
# HELP node_network_mtu_bytes Network device property: mtu_bytes
# TYPE node_network_mtu_bytes gauge
node_network_mtu_bytes{device="eth0"} 1400
node_network_mtu_bytes{device="ifb0"} 1500
# HELP node_network_name_assign_type Network device property: name_assign_type
# TYPE node_network_name_assign_type gauge
node_network_name_assign_type{device="eth0"} 1
# HELP node_network_net_dev_group Network device property: net_dev_group
# TYPE node_network_net_dev_group gauge
node_network_net_dev_group{device="eth0"} 0
# HELP node_network_protocol_type Network device property: protocol_type
# TYPE node_network_protocol_type gauge
node_network_protocol_type{device="eth0"} 1
node_network_protocol_type{device="ifb0"} 1
# HELP node_network_speed_bytes Network device property: speed_bytes
# TYPE node_network_speed_bytes gauge
node_network_speed_bytes{device="eth0"} 1.25e+09
# HELP node_network_transmit_queue_length Network device property: transmit_queue_length
# TYPE node_network_transmit_queue_length gauge
node_network_transmit_queue_length{device="eth0"} 1000
node_network_transmit_queue_length{device="ifb0"} 32
# HELP node_network_up Value is 1 if operstate is 'up', 0 otherwise.
# TYPE node_network_up gauge
node_network_up{device="eth0"} 1
node_network_up{device="ifb0"} 0
"#,
    );
}
