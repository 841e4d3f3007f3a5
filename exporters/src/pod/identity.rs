//! Pod UID and container ID from a cgroup path, as the kubelet lays cgroups out.
//!
//! cgroupfs driver (containerd, CRI-O, Docker):
//! `/kubepods/burstable/pod<uid>/<container-id>`, `/kubepods/pod<uid>/crio-<container-id>`.
//! systemd driver: `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid with _
//! for ->.slice/cri-containerd-<id>.scope` (CRI-O: `crio-<id>.scope`, Docker: `docker-<id>.scope`).
//! CRI-O's `crio-conmon-<id>` cgroups hold the monitor process, not the container.

/// What a cgroup path says about Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The pod UID (with dashes) when the path is a pod cgroup or lies below one.
    pub pod_uid: Option<String>,
    /// The container ID (64 hex digits) when the path is a container cgroup inside a pod.
    pub container_id: Option<String>,
}

impl Identity {
    /// True for the pod-level cgroup itself (a pod UID but no container).
    pub fn is_pod(&self) -> bool {
        self.pod_uid.is_some() && self.container_id.is_none()
    }
}

/// Reads the pod UID and container ID out of cgroup path `id` (`/kubepods/...`). Only the
/// component right after the pod's may name a container; deeper cgroups are plain cgroups and get
/// neither (their counters are already part of the container's).
pub fn parse(id: &str) -> Identity {
    let mut it = id.split('/').filter(|c| !c.is_empty());
    let mut pod_uid = None;
    for c in it.by_ref() {
        if let Some(uid) = pod_component(c) {
            pod_uid = Some(uid);
            break;
        }
    }
    let Some(pod_uid) = pod_uid else {
        return Identity::default();
    };
    let container = it.next();
    if it.next().is_some() {
        // Below a container: not the container itself.
        return Identity::default();
    }
    match container {
        None => Identity {
            pod_uid: Some(pod_uid),
            container_id: None,
        },
        Some(c) => match container_component(c) {
            Some(cid) => Identity {
                pod_uid: Some(pod_uid),
                container_id: Some(cid.to_string()),
            },
            None => Identity::default(),
        },
    }
}

/// `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid_with_underscores>.slice` (systemd).
fn pod_component(c: &str) -> Option<String> {
    let raw = if let Some(slice) = c.strip_suffix(".slice") {
        let (_, uid) = slice.rsplit_once("-pod")?;
        if !slice.starts_with("kubepods") {
            return None;
        }
        uid.replace('_', "-")
    } else {
        c.strip_prefix("pod")?.to_string()
    };
    is_uid(&raw).then_some(raw)
}

/// A pod UID: 36 characters of hex digits and dashes (a UUID), or 32 hex digits (the config hash
/// static pods get as UID).
fn is_uid(s: &str) -> bool {
    let ok_chars = s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    ok_chars && (s.len() == 36 || (s.len() == 32 && !s.contains('-')))
}

/// `<id>`, `cri-containerd-<id>.scope`, `crio-<id>.scope`, `crio-<id>`, `docker-<id>.scope`.
fn container_component(c: &str) -> Option<&str> {
    let c = c.strip_suffix(".scope").unwrap_or(c);
    if c.starts_with("crio-conmon-") {
        return None;
    }
    let id = ["cri-containerd-", "crio-", "docker-", "containerd-"]
        .iter()
        .find_map(|p| c.strip_prefix(p))
        .unwrap_or(c);
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "1b2c3d4e-aaaa-bbbb-cccc-0123456789ab";

    #[track_caller]
    fn check(path: &str, uid: Option<&str>, cid: Option<&str>) {
        let got = parse(path);
        assert_eq!(
            (got.pod_uid.as_deref(), got.container_id.as_deref()),
            (uid, cid),
            "{path}"
        );
    }

    #[test]
    fn layouts() {
        check("/", None, None);
        check("/kubepods", None, None);
        check("/kubepods/burstable", None, None);
        check("/system.slice/containerd.service", None, None);
        check(&format!("/kubepods/pod{UID}"), Some(UID), None);
        check(&format!("/kubepods/burstable/pod{UID}"), Some(UID), None);
        check(
            &format!("/kubepods/besteffort/pod{UID}/{CID}"),
            Some(UID),
            Some(CID),
        );
        check(
            &format!("/kubepods/pod{UID}/crio-{CID}"),
            Some(UID),
            Some(CID),
        );
        check(&format!("/kubepods/pod{UID}/crio-conmon-{CID}"), None, None);
        check(&format!("/kubepods/pod{UID}/{CID}/sub"), None, None);
        check(&format!("/kubepods/pod{UID}/notanid"), None, None);
        let us = UID.replace('-', "_");
        check(
            &format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{us}.slice"),
            Some(UID),
            None,
        );
        check(
            &format!("/kubepods.slice/kubepods-pod{us}.slice/cri-containerd-{CID}.scope"),
            Some(UID),
            Some(CID),
        );
        check(
            &format!("/kubepods.slice/kubepods-pod{us}.slice/crio-{CID}.scope"),
            Some(UID),
            Some(CID),
        );
        check(
            &format!("/kubepods.slice/kubepods-pod{us}.slice/docker-{CID}.scope"),
            Some(UID),
            Some(CID),
        );
        // Static pods: the UID is a 32-digit config hash.
        check(
            "/kubepods/burstable/pod6b4ae1e0e1c2d3f4a5b6c7d8e9f00112",
            Some("6b4ae1e0e1c2d3f4a5b6c7d8e9f00112"),
            None,
        );
        // Not kubelet's: a user slice that happens to contain "-pod".
        check("/user.slice/user-pod1000.slice", None, None);
        check("/podman", None, None);
    }
}
