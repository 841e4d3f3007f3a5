//! `filesystem`: size and usage of mounted file systems, `node_filesystem_*{device,fstype,mountpoint}`.
//!
//! Mounts come from `<procfs>/1/mounts` (the host's mount namespace when the exporter runs in a
//! container with `hostPID`), falling back to `<procfs>/mounts` when that file does not exist,
//! filtered with node_exporter's default mount-point and file-system-type exclusions. Each
//! remaining mount is asked for its statistics through a [`StatFs`] source, at
//! `<rootfs>/<mount point>`; the `mountpoint` label has the rootfs prefix stripped.
//!
//! The real source, [`Statvfs`], calls `statvfs(2)` through rustix (safe bindings; `unsafe` is
//! denied in this workspace): size = `f_blocks * f_frsize`, free = `f_bfree * f_frsize`,
//! avail = `f_bavail * f_frsize`, files = `f_files`, files_free = `f_ffree`, readonly from
//! `ST_RDONLY`. A mount whose statistics cannot be read is still reported, with
//! `node_filesystem_device_error 1` and no other sample, as node_exporter does. Like
//! node_exporter, a `statvfs` call that does not return within [`Statvfs::timeout`] (a hung NFS
//! server) marks the mount as stuck: it reports `device_error 1` without a new call until the
//! pending one returns.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::{bad, read, under};
use crate::{Collector, Options, Result};

/// What `statvfs(2)` says about one mounted file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStats {
    /// Total size in bytes (`f_blocks * f_frsize`).
    pub size: u64,
    /// Free bytes including root's reserve (`f_bfree * f_frsize`).
    pub free: u64,
    /// Bytes available to unprivileged users (`f_bavail * f_frsize`).
    pub avail: u64,
    /// Total inodes (`f_files`).
    pub files: u64,
    /// Free inodes (`f_ffree`).
    pub files_free: u64,
    /// Mounted read-only (`ST_RDONLY` in `f_flag`).
    pub readonly: bool,
}

impl From<&rustix::fs::StatVfs> for FsStats {
    fn from(st: &rustix::fs::StatVfs) -> Self {
        // Saturating: a corrupt or synthetic file system must not panic the exporter.
        let bytes = |blocks: u64| blocks.saturating_mul(st.f_frsize);
        Self {
            size: bytes(st.f_blocks),
            free: bytes(st.f_bfree),
            avail: bytes(st.f_bavail),
            files: st.f_files,
            files_free: st.f_ffree,
            readonly: st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
        }
    }
}

/// A source of file system statistics.
pub trait StatFs: Send {
    /// Statistics of the file system mounted at `path`, a path in the exporter's own mount
    /// namespace (`<rootfs>/<mount point>`). An error is reported as
    /// `node_filesystem_device_error 1` for that mount.
    fn stat(&mut self, path: &Path) -> io::Result<FsStats>;
}

/// Fixed statistics by path (tests, or a source computed elsewhere); a path not in the map is
/// a `NotFound` error.
impl StatFs for std::collections::HashMap<PathBuf, FsStats> {
    fn stat(&mut self, path: &Path) -> io::Result<FsStats> {
        self.get(path).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no statistics for {}", path.display()),
            )
        })
    }
}

/// [`StatFs`] through `statvfs(2)`, each call on its own thread so that a hung mount cannot
/// block the scrape for longer than [`timeout`](Self::timeout).
#[derive(Debug, Clone)]
pub struct Statvfs {
    /// How long one `statvfs` call may take before the mount is reported as stuck
    /// (node_exporter's `--collector.filesystem.mount-timeout`, 5s by default).
    pub timeout: Duration,
    /// Paths whose call timed out and has not returned yet.
    stuck: Arc<Mutex<HashSet<PathBuf>>>,
}

impl Default for Statvfs {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            stuck: Arc::default(),
        }
    }
}

fn statvfs(path: &Path) -> io::Result<FsStats> {
    rustix::fs::statvfs(path)
        .map(|st| FsStats::from(&st))
        .map_err(io::Error::from)
}

impl StatFs for Statvfs {
    fn stat(&mut self, path: &Path) -> io::Result<FsStats> {
        let stuck_err = || {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "statvfs({}) did not return within {:?}",
                    path.display(),
                    self.timeout
                ),
            )
        };
        if self
            .stuck
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(path)
        {
            return Err(stuck_err());
        }
        let (tx, rx) = mpsc::channel();
        let owned = path.to_path_buf();
        let stuck = Arc::clone(&self.stuck);
        let spawned = std::thread::Builder::new()
            .name("statvfs".into())
            .spawn(move || {
                // The receiver may be gone (timed out): then the result is just dropped.
                let _ = tx.send(statvfs(&owned));
                // Done: no longer stuck (no-op unless the caller timed out and marked it).
                stuck
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&owned);
            });
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "cannot spawn statvfs thread, calling inline");
            return statvfs(path);
        }
        match rx.recv_timeout(self.timeout) {
            Ok(r) => r,
            Err(_) => {
                // Under the lock, the thread either already sent (take the result) or will
                // remove the mark only after we set it.
                let mut stuck = self.stuck.lock().unwrap_or_else(PoisonError::into_inner);
                if let Ok(r) = rx.try_recv() {
                    return r;
                }
                tracing::warn!(path = %path.display(), timeout = ?self.timeout,
                    "statvfs is taking too long, mount marked as stuck");
                stuck.insert(path.to_path_buf());
                Err(stuck_err())
            }
        }
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
    /// Reads `<procfs>/1/mounts` (or `<procfs>/mounts`) and calls `statvfs(2)` ([`Statvfs`]).
    pub fn new(opts: &Options) -> Self {
        Self::with_source(opts, Box::new(Statvfs::default()))
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
            let labels = [
                ("device", m.device.as_str()),
                ("fstype", m.fstype.as_str()),
                ("mountpoint", shown.as_str()),
            ];
            let st = match self.source.stat(&stat_path) {
                Ok(st) => st,
                Err(e) => {
                    tracing::debug!(path = %stat_path.display(), error = %e,
                        "statvfs failed, reporting device_error");
                    device_error.push(&labels, 1.0);
                    continue;
                }
            };
            size.push(&labels, st.size as f64);
            free.push(&labels, st.free as f64);
            avail.push(&labels, st.avail as f64);
            files.push(&labels, st.files as f64);
            files_free.push(&labels, st.files_free as f64);
            // node_exporter looks at the `ro` mount option; ST_RDONLY says the same for the
            // file system (and also catches a read-only bind of a read-write mount).
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
    fn stats_from_statvfs() {
        #[track_caller]
        fn check(frsize: u64, blocks: u64, ro: bool, want: FsStats) {
            let st = rustix::fs::StatVfs {
                f_bsize: 1 << 20,
                f_frsize: frsize,
                f_blocks: blocks,
                f_bfree: blocks / 2,
                f_bavail: blocks / 4,
                f_files: 1000,
                f_ffree: 600,
                f_favail: 500,
                f_fsid: 7,
                f_flag: if ro {
                    rustix::fs::StatVfsMountFlags::RDONLY | rustix::fs::StatVfsMountFlags::NOSUID
                } else {
                    rustix::fs::StatVfsMountFlags::NOSUID
                },
                f_namemax: 255,
            };
            assert_eq!(FsStats::from(&st), want);
        }
        // Bytes use the fragment size, not the preferred I/O size f_bsize.
        let base = FsStats {
            size: 4096 * 100,
            free: 4096 * 50,
            avail: 4096 * 25,
            files: 1000,
            files_free: 600,
            readonly: false,
        };
        check(4096, 100, false, base);
        check(
            4096,
            100,
            true,
            FsStats {
                readonly: true,
                ..base
            },
        );
        // Absurd counts saturate instead of overflowing.
        let max = FsStats {
            size: u64::MAX,
            free: u64::MAX,
            avail: u64::MAX,
            ..base
        };
        check(4096, u64::MAX, false, max);
    }

    #[test]
    fn statvfs_real_paths() {
        let mut src = Statvfs::default();
        let root = src.stat(Path::new("/")).expect("statvfs /");
        assert!(root.size > 0 && root.size >= root.free && root.free >= root.avail);
        assert!(root.files >= root.files_free);
        let err = src
            .stat(Path::new("/no/such/mount/point"))
            .expect_err("missing path");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn statvfs_stuck_mount_reported_until_it_returns() {
        let mut src = Statvfs {
            timeout: Duration::from_secs(5),
            ..Statvfs::default()
        };
        let p = PathBuf::from("/");
        src.stuck
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(p.clone());
        let err = src.stat(&p).expect_err("stuck mount");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        src.stuck
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&p);
        assert!(src.stat(&p).is_ok());
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
