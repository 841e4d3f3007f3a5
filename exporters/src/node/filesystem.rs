//! `filesystem`: size and usage of mounted file systems, `node_filesystem_*{device,fstype,mountpoint}`.
//!
//! Mounts come from `/proc/1/mounts` (the host's mount namespace when the exporter runs in a
//! container with `hostPID`), falling back to `/proc/mounts`, filtered with node_exporter's
//! default mount-point and file-system-type exclusions. Sizes come from a [`StatFs`] source.
//!
//! Differences from node_exporter: `unsafe` is denied in this workspace, so `statvfs(2)` is
//! reached through `sysinfo` ([`SysinfoStatFs`]), which reports total and available bytes but
//! neither free bytes (including root's reserve) nor inode counts: `node_filesystem_free_bytes`,
//! `node_filesystem_files` and `node_filesystem_files_free` are only exported by sources that
//! know them. sysinfo also skips tmpfs, NFS/CIFS and mounts under `/run`, so those mounts are
//! not reported at all (rather than reported with `device_error 1`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::{bad, read, under};
use crate::{Collector, Options, Result};

/// What `statvfs(2)` says about one mounted file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStats {
    /// Total size in bytes (`f_blocks * f_frsize`).
    pub size: u64,
    /// Free bytes including root's reserve (`f_bfree * f_frsize`), if known.
    pub free: Option<u64>,
    /// Bytes available to unprivileged users (`f_bavail * f_frsize`).
    pub avail: u64,
    /// Total inodes (`f_files`), if known.
    pub files: Option<u64>,
    /// Free inodes (`f_ffree`), if known.
    pub files_free: Option<u64>,
    /// Mounted read-only.
    pub readonly: bool,
}

/// A source of file system statistics, refreshed once per scrape.
pub trait StatFs: Send {
    /// Statistics of every file system the source can see, by mount point in the exporter's
    /// own mount namespace (`<rootfs>/<mount point>`).
    fn stats(&mut self) -> HashMap<PathBuf, FsStats>;
}

/// Fixed statistics (tests, or a source computed elsewhere).
impl StatFs for HashMap<PathBuf, FsStats> {
    fn stats(&mut self) -> HashMap<PathBuf, FsStats> {
        self.clone()
    }
}

/// [`StatFs`] through `sysinfo::Disks` (which calls `statvfs(2)` for us).
#[derive(Debug, Default)]
pub struct SysinfoStatFs {
    /// Created on first use; `None` while sysinfo cannot list disks.
    disks: Option<sysinfo::Disks>,
}

impl StatFs for SysinfoStatFs {
    fn stats(&mut self) -> HashMap<PathBuf, FsStats> {
        if self.disks.is_none() {
            match sysinfo::Disks::new() {
                Ok(d) => self.disks = Some(d),
                Err(e) => tracing::warn!(error = %e, "sysinfo cannot list disks"),
            }
        }
        let Some(disks) = self.disks.as_mut() else {
            return HashMap::new();
        };
        // Re-list every scrape: mounts come and go.
        disks.refresh(true);
        disks
            .iter()
            .map(|d| {
                (
                    d.mount_point().to_path_buf(),
                    FsStats {
                        size: d.total_space(),
                        free: None,
                        avail: d.available_space(),
                        files: None,
                        files_free: None,
                        readonly: d.is_read_only(),
                    },
                )
            })
            .collect()
    }
}

/// The `filesystem` collector.
pub struct Filesystem {
    mounts: [PathBuf; 2],
    rootfs: PathBuf,
    source: Box<dyn StatFs>,
}

impl std::fmt::Debug for Filesystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filesystem")
            .field("mounts", &self.mounts)
            .field("rootfs", &self.rootfs)
            .finish_non_exhaustive()
    }
}

impl Filesystem {
    /// Reads `<procfs>/1/mounts` (or `<procfs>/mounts`) and stats through sysinfo.
    pub fn new(opts: &Options) -> Self {
        Self::with_source(opts, Box::new(SysinfoStatFs::default()))
    }

    /// Like [`new`](Self::new) with another statistics source.
    pub fn with_source(opts: &Options, source: Box<dyn StatFs>) -> Self {
        Self {
            mounts: [opts.procfs.join("1/mounts"), opts.procfs.join("mounts")],
            rootfs: opts.rootfs.clone(),
            source,
        }
    }
}

/// node_exporter's default `--collector.filesystem.mount-points-exclude`:
/// `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`.
pub fn mount_point_excluded(mp: &str) -> bool {
    let Some(rest) = mp.strip_prefix('/') else {
        return false;
    };
    let exact_or_below = |dir: &str| {
        rest.strip_prefix(dir)
            .is_some_and(|r| r.is_empty() || r.starts_with('/'))
    };
    // `dir/.+` then `$` or `/`: anything strictly below `dir`.
    let strictly_below = |dir: &str| rest.strip_prefix(dir).is_some_and(|r| !r.is_empty());
    exact_or_below("dev")
        || exact_or_below("proc")
        || exact_or_below("sys")
        || strictly_below("run/credentials/")
        || strictly_below("var/lib/docker/")
        || strictly_below("var/lib/containers/storage/")
}

/// node_exporter's default `--collector.filesystem.fs-types-exclude`.
pub fn fs_type_excluded(fstype: &str) -> bool {
    matches!(
        fstype,
        "autofs"
            | "binfmt_misc"
            | "bpf"
            | "cgroup"
            | "cgroup2"
            | "configfs"
            | "debugfs"
            | "devpts"
            | "devtmpfs"
            | "fusectl"
            | "hugetlbfs"
            | "iso9660"
            | "mqueue"
            | "nsfs"
            | "overlay"
            | "proc"
            | "procfs"
            | "pstore"
            | "rpc_pipefs"
            | "securityfs"
            | "selinuxfs"
            | "squashfs"
            | "sysfs"
            | "tracefs"
    )
}

/// Decodes the octal escapes (`\040` for a space) the kernel writes in mounts files.
pub fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One usable line of a mounts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Source device (`/dev/vda1`, `tmpfs`).
    pub device: String,
    /// Mount point as listed (unescaped).
    pub mount_point: String,
    /// File system type.
    pub fstype: String,
    /// Mounted with the `ro` option.
    pub readonly: bool,
}

/// Parses `/proc/<pid>/mounts`.
pub fn parse_mounts(path: &Path, text: &str) -> Result<Vec<Mount>> {
    let mut mounts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let [device, mount_point, fstype, options, ..] = fields[..] else {
            return Err(bad(path, i + 1, "fewer than 4 fields"));
        };
        mounts.push(Mount {
            device: unescape_octal(device),
            mount_point: unescape_octal(mount_point),
            fstype: fstype.to_string(),
            readonly: options.split(',').any(|o| o == "ro"),
        });
    }
    Ok(mounts)
}

impl Collector for Filesystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        let (path, text) = match read(&self.mounts[0]) {
            Ok(t) => (&self.mounts[0], t),
            Err(e) if e.is_not_found() => (&self.mounts[1], read(&self.mounts[1])?),
            Err(e) => return Err(e),
        };
        let mounts = parse_mounts(path, &text)?;
        let stats = self.source.stats();
        let gauge = |name: &str, help: &str| MetricFamily::new(name, help, MetricType::Gauge);
        let mut size = gauge("node_filesystem_size_bytes", "Filesystem size in bytes.");
        let mut free = gauge(
            "node_filesystem_free_bytes",
            "Filesystem free space in bytes.",
        );
        let mut avail = gauge(
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
        );
        let mut files = gauge("node_filesystem_files", "Filesystem total file nodes.");
        let mut files_free = gauge(
            "node_filesystem_files_free",
            "Filesystem total free file nodes.",
        );
        let mut readonly = gauge("node_filesystem_readonly", "Filesystem read-only status.");
        let mut device_error = gauge(
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
        );
        let root = self.rootfs.to_string_lossy();
        let root = root.trim_end_matches('/');
        let mut seen = HashSet::new();
        for m in mounts {
            // Like node_exporter's --path.rootfs: the label drops the rootfs prefix when the
            // mounts file shows it, and statistics are taken at the path below rootfs.
            let shown = match m.mount_point.strip_prefix(root) {
                Some("") => "/".to_string(),
                Some(rest) if rest.starts_with('/') => rest.to_string(),
                _ => m.mount_point.clone(),
            };
            let stat_path = under(&self.rootfs, &shown);
            if mount_point_excluded(&shown) || fs_type_excluded(&m.fstype) {
                continue;
            }
            if !seen.insert((m.device.clone(), shown.clone(), m.fstype.clone())) {
                continue;
            }
            let Some(st) = stats.get(&stat_path) else {
                tracing::debug!(mountpoint = %m.mount_point, fstype = %m.fstype,
                    "no statistics for mount point, skipped");
                continue;
            };
            let labels = [
                ("device", m.device.as_str()),
                ("fstype", m.fstype.as_str()),
                ("mountpoint", shown.as_str()),
            ];
            size.push(&labels, st.size as f64);
            avail.push(&labels, st.avail as f64);
            if let Some(v) = st.free {
                free.push(&labels, v as f64);
            }
            if let Some(v) = st.files {
                files.push(&labels, v as f64);
            }
            if let Some(v) = st.files_free {
                files_free.push(&labels, v as f64);
            }
            let ro = st.readonly || m.readonly;
            readonly.push(&labels, if ro { 1.0 } else { 0.0 });
            device_error.push(&labels, 0.0);
        }
        out.extend([size, free, avail, files, files_free, readonly, device_error]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_point_exclusion() {
        #[track_caller]
        fn check(mp: &str, want: bool) {
            assert_eq!(mount_point_excluded(mp), want, "{mp}");
        }
        check("/", false);
        check("/dev", true);
        check("/dev/shm", true);
        check("/devices", false);
        check("/proc", true);
        check("/sys/fs/cgroup", true);
        check("/run", false);
        check("/run/credentials", false);
        check("/run/credentials/x.service", true);
        check("/var/lib/docker", false);
        check("/var/lib/docker/overlay2/abc/merged", true);
        check("/var/lib/containers/storage/overlay", true);
        check("/home", false);
    }

    #[test]
    fn octal_escapes() {
        #[track_caller]
        fn check(input: &str, want: &str) {
            assert_eq!(unescape_octal(input), want);
        }
        check("/mnt/my\\040disk", "/mnt/my disk");
        check("/a\\011b\\134c", "/a\tb\\c");
        check("/plain", "/plain");
        check("/trailing\\04", "/trailing\\04");
        check("\\", "\\");
    }
}
