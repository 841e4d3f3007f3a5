"""Deterministic, realistic benchmark dataset, encoded as remote_write requests.

The series mix is what a small Kubernetes cluster sends:
- node_exporter metrics per node: CPU seconds per cpu and mode (0.01 s resolution counters),
  memory gauges (page multiples), disk and network byte counters, load averages (full-precision
  decimals);
- classic histograms (`http_request_duration_seconds_bucket/_sum/_count`) per service instance,
  handler and code;
- cAdvisor container metrics for ~1 pod per 10 series (CPU seconds with nanosecond decimals,
  working set, network bytes, restarts) with kubelet's long `id`/`name`/`image` labels, and one
  `kube_pod_info` per pod from kube-state-metrics.

Every series carries `cluster="bench"`. Samples are `interval` apart; each target has a fixed
offset of whole seconds inside the interval (as scrapes are spread), so every sample timestamp is
a whole second. The same arguments give the same values; timestamps are relative to `end`.
"""

import hashlib
import json
import os
import random
import struct

from remote_write import encode_labels, snappy_literal, varint

SEED = 20240601
NAMESPACES = (
    ["kube-system", "monitoring", "ingress-nginx", "cert-manager", "logging"]
    + [f"team-{c}" for c in "abcdefghijklmno"]
)
DEPLOYS = ["api", "web", "worker", "cache", "db-proxy", "auth", "search", "billing", "cron", "queue"]
CPU_MODES = {
    "idle": 0.62, "user": 0.22, "system": 0.08, "iowait": 0.02,
    "irq": 0.004, "softirq": 0.012, "nice": 0.002, "steal": 0.001,
}
BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]

_DOUBLE = struct.Struct("<d")
_PRE = b"\x12\x10\x09"  # Sample field, length 16, field 1 (double)
_MID = b"\x10"  # field 2 (int64 timestamp), a 6-byte varint for 2^35 <= t < 2^42 ms


def _hex(rng, n):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _alnum(rng, n):
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


class Source:
    """Series generated together: `labels` (one list of pairs per series), a target offset (ms),
    and `gen(rng, n)` -> one list of `n` values per series."""

    def __init__(self, labels, offset_ms, gen):
        self.labels = [sorted(ls) for ls in labels]
        self.offset = offset_ms
        self.gen = gen


def counter(start, per_step, decimals=None, multiple=None, burst=1.0):
    state = [start]

    def gen(rng, n):
        v = state[0]
        out = []
        for _ in range(n):
            inc = per_step * (0.5 + rng.random()) * (burst * rng.random() * 2 if burst != 1.0 else 1.0)
            if multiple:
                inc = multiple * int(inc / multiple)
            v += inc
            if decimals is not None:
                v = round(v, decimals)
            out.append(v)
        state[0] = v
        return [out]

    return gen


def gauge_walk(start, step, lo, hi, multiple=1):
    state = [start]

    def gen(rng, n):
        v = state[0]
        out = []
        for _ in range(n):
            v += multiple * int(step * (rng.random() - 0.5) / multiple)
            v = min(max(v, lo), hi)
            out.append(float(v))
        state[0] = v
        return [out]

    return gen


def constant(v):
    def gen(rng, n):
        return [[v] * n]

    return gen


def load_avg(target, alpha):
    state = [target]

    def gen(rng, n):
        v = state[0]
        out = []
        for _ in range(n):
            v = v * (1 - alpha) + alpha * target * 2 * rng.random()
            out.append(v)
        state[0] = v
        return [out]

    return gen


def histogram(rate, mean_latency, cdf):
    counts = [0] * len(cdf)
    state = [0.0, 0]

    def gen(rng, n):
        cols = [[] for _ in range(len(cdf) + 2)]
        for _ in range(n):
            reqs = int(rate * (0.5 + rng.random()))
            prev = 0
            for i, p in enumerate(cdf):
                # cumulative: bucket i holds at least bucket i-1
                c = prev if p <= 0 else max(prev, int(reqs * min(1.0, p * (0.95 + 0.1 * rng.random()))))
                if i == len(cdf) - 1:
                    c = reqs
                counts[i] += c
                prev = c
                cols[i].append(float(counts[i]))
            state[0] = round(state[0] + reqs * mean_latency * (0.9 + 0.2 * rng.random()), 6)
            state[1] += reqs
            cols[-2].append(state[0])
            cols[-1].append(float(state[1]))
        return cols

    return gen


def build_sources(num_series, interval_s, seed=SEED):
    """The sources of a dataset of about `num_series` series."""
    rng = random.Random(seed)
    step = interval_s
    pods = max(1, round(num_series * 0.1))
    nodes = max(1, round(num_series / 500))
    base = [("cluster", "bench")]
    srcs = []

    def off():
        return 1000 * rng.randrange(interval_s) if interval_s > 1 else 0

    node_names = [f"node-{i:03d}" for i in range(nodes)]
    for node in node_names:
        o = off()
        inst = base + [("job", "node"), ("instance", f"{node}:9100")]
        for cpu in range(4):
            for mode, share in CPU_MODES.items():
                srcs.append(Source([inst + [("__name__", "node_cpu_seconds_total"), ("cpu", str(cpu)), ("mode", mode)]],
                                   o, counter(rng.uniform(1e5, 1e6), share * step * rng.uniform(0.5, 1.5), decimals=2)))
        total = 4096 * rng.randrange(4_000_000, 16_000_000)
        srcs.append(Source([inst + [("__name__", "node_memory_MemTotal_bytes")]], o, constant(float(total))))
        for name, frac in [("MemAvailable", 0.5), ("MemFree", 0.2), ("Cached", 0.25), ("Buffers", 0.02), ("Active", 0.4)]:
            mid = int(total * frac)
            srcs.append(Source([inst + [("__name__", f"node_memory_{name}_bytes")]], o,
                               gauge_walk(mid, total * 0.002, mid // 2, min(total, mid * 3 // 2), multiple=4096)))
        for dev in ["sda", "nvme0n1"]:
            for d, rate in [("read", 2e5), ("written", 8e5)]:
                srcs.append(Source([inst + [("__name__", f"node_disk_{d}_bytes_total"), ("device", dev)]], o,
                                   counter(float(512 * rng.randrange(10**8)), rate * step, multiple=512, burst=3.0)))
        for dev in ["eth0", "cni0"]:
            for d, rate in [("receive", 3e6), ("transmit", 1e6)]:
                srcs.append(Source([inst + [("__name__", f"node_network_{d}_bytes_total"), ("device", dev)]], o,
                                   counter(float(rng.randrange(10**12)), rate * step, multiple=1)))
        for name, alpha in [("node_load1", 0.2), ("node_load5", 0.05), ("node_load15", 0.017)]:
            srcs.append(Source([inst + [("__name__", name)]], o, load_avg(rng.uniform(0.2, 3.0), alpha)))

    kubelet_off = {n: off() for n in node_names}
    ksm = base + [("job", "kube-state-metrics"), ("instance", "10.96.0.20:8080")]
    ksm_off = off()
    pod_series = []
    for p in range(pods):
        ns = NAMESPACES[p % len(NAMESPACES)]
        dep = DEPLOYS[(p // len(NAMESPACES)) % len(DEPLOYS)]
        rs = _alnum(rng, 10)
        pod = f"{dep}-{rs}-{_alnum(rng, 5)}"
        node = node_names[p % nodes]
        uid = f"{_hex(rng, 8)}-{_hex(rng, 4)}-{_hex(rng, 4)}-{_hex(rng, 4)}-{_hex(rng, 12)}"
        pod_series.append(Source([ksm + [
            ("__name__", "kube_pod_info"), ("namespace", ns), ("pod", pod), ("node", node),
            ("host_ip", f"10.0.{p % nodes}.1"), ("pod_ip", f"10.244.{p // 250}.{p % 250 + 2}"),
            ("uid", uid), ("created_by_kind", "ReplicaSet"), ("created_by_name", f"{dep}-{rs}"),
        ]], ksm_off, constant(1.0)))
        kub = base + [("job", "kubelet"), ("instance", node), ("metrics_path", "/metrics/cadvisor")]
        podl = [("namespace", ns), ("pod", pod)]
        containers = [dep] + (["istio-proxy"] if p % 2 == 0 else [])
        for c in containers:
            cid = _hex(rng, 64)
            cl = kub + podl + [
                ("container", c), ("id", f"/kubepods/burstable/pod{uid}/{cid}"),
                ("image", f"registry.example.com/{ns}/{c}:v1.{rng.randrange(40)}.{rng.randrange(10)}"),
                ("name", f"k8s_{c}_{pod}_{ns}_{uid}_0"),
            ]
            o = kubelet_off[node]
            srcs_c = [
                Source([cl + [("__name__", "container_cpu_usage_seconds_total"), ("cpu", "total")]], o,
                       counter(rng.uniform(100, 1e5), step * rng.uniform(0.005, 0.4))),
                Source([cl + [("__name__", "container_memory_working_set_bytes")]], o,
                       gauge_walk(4096 * rng.randrange(5000, 500000), 4096 * 200, 4096 * 2000, 4096 * 800000, 4096)),
                Source([cl + [("__name__", "kube_pod_container_status_restarts_total")]], ksm_off,
                       counter(float(rng.randrange(3)), 0.0)),
            ]
            pod_series.extend(srcs_c)
        for d, rate in [("receive", 2e4), ("transmit", 1e4)]:
            pod_series.append(Source([kub + podl + [("__name__", f"container_network_{d}_bytes_total"),
                                                     ("interface", "eth0")]], kubelet_off[node],
                                     counter(float(rng.randrange(10**10)), rate * step * rng.uniform(0.1, 3))))
    srcs.extend(pod_series)

    count = sum(len(s.labels) for s in srcs)
    h = 0
    while count + 14 <= num_series or h == 0:
        svc = DEPLOYS[h % len(DEPLOYS)]
        inst = base + [("job", svc), ("instance", f"{svc}-{h // len(DEPLOYS)}:8080")]
        handler = ["/api/v1/items", "/api/v1/users", "/healthz", "/login"][h % 4]
        code = "200" if h % 3 else "500"
        lat = rng.uniform(0.01, 0.4)
        cdf = [min(1.0, (float(b) / lat) ** 1.5 / (1 + (float(b) / lat) ** 1.5)) for b in BUCKETS[:-1]] + [1.0]
        labels = [inst + [("__name__", "http_request_duration_seconds_bucket"), ("handler", handler), ("code", code),
                          ("le", le)] for le in BUCKETS]
        labels.append(inst + [("__name__", "http_request_duration_seconds_sum"), ("handler", handler), ("code", code)])
        labels.append(inst + [("__name__", "http_request_duration_seconds_count"), ("handler", handler), ("code", code)])
        srcs.append(Source(labels, off(), histogram(rng.uniform(1, 200) * step, lat, cdf)))
        count += 14
        h += 1
    return srcs


def generate(out_dir, num_series, hours, interval_s, end_ms, shards, window_steps=40, series_per_request=50,
             seed=SEED):
    """Writes `shard-<i>.bin` files of requests (u32 window, u32 samples,
    u32 length, snappy body) in time
    order, and `meta.json`. Returns the meta dict."""
    os.makedirs(out_dir, exist_ok=True)
    srcs = build_sources(num_series, interval_s, seed)
    rng = random.Random(seed + 1)
    interval_ms = interval_s * 1000
    steps = int(hours * 3600 // interval_s)
    start_ms = end_ms - steps * interval_ms  # first sample at start_ms + offset
    if not ((1 << 35) <= start_ms and end_ms + interval_ms < (1 << 42)):
        raise ValueError("timestamps must be between 2^35 and 2^42 ms")
    labels_pb = [[encode_labels(ls) for ls in s.labels] for s in srcs]
    files = [open(os.path.join(out_dir, f"shard-{i}.bin"), "wb") for i in range(shards)]
    pending = [[] for _ in range(shards)]
    pending_n = [0] * shards
    requests = [0] * shards
    total_samples = 0
    digest = hashlib.sha256()
    min_t, max_t = None, None

    window = 0

    def flush(sh):
        if not pending[sh]:
            return
        body = snappy_literal(b"".join(pending[sh]))
        digest.update(body)
        files[sh].write(struct.pack("<III", window, pending_n[sh], len(body)))
        files[sh].write(body)
        requests[sh] += 1
        pending[sh].clear()
        pending_n[sh] = 0

    series_idx = 0
    for window, w0 in enumerate(range(0, steps, window_steps)):
        n = min(window_steps, steps - w0)
        ts_cache = {}
        series_idx = 0
        for si, s in enumerate(srcs):
            tsv = ts_cache.get(s.offset)
            if tsv is None:
                tsv = [_MID + varint(start_ms + s.offset + (w0 + k) * interval_ms) for k in range(n)]
                ts_cache[s.offset] = tsv
                t0 = start_ms + s.offset + w0 * interval_ms
                t1 = start_ms + s.offset + (w0 + n - 1) * interval_ms
                min_t = t0 if min_t is None else min(min_t, t0)
                max_t = t1 if max_t is None else max(max_t, t1)
            cols = s.gen(rng, n)
            for lp, vals in zip(labels_pb[si], cols):
                samples = b"".join([_PRE + _DOUBLE.pack(v) + t for v, t in zip(vals, tsv)])
                ts_body = lp + samples
                sh = series_idx % shards
                pending[sh].append(b"\x0a" + varint(len(ts_body)) + ts_body)
                pending_n[sh] += n
                total_samples += n
                series_idx += 1
                if len(pending[sh]) >= series_per_request:
                    flush(sh)
        for sh in range(shards):
            flush(sh)
    for f in files:
        f.close()
    meta = {
        "series": series_idx, "samples": total_samples, "steps": steps, "interval_s": interval_s,
        "hours": hours, "start_ms": start_ms, "end_ms": end_ms, "min_t": min_t, "max_t": max_t,
        "names": sorted({dict(ls)["__name__"] for s in srcs for ls in s.labels}),
        "shards": shards, "requests": requests, "window_steps": window_steps,
        "series_per_request": series_per_request, "seed": seed, "sha256": digest.hexdigest(),
        "bytes": sum(os.path.getsize(os.path.join(out_dir, f"shard-{i}.bin")) for i in range(shards)),
    }
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def read_requests(path):
    """Yields (window, samples, body) of a shard file."""
    with open(path, "rb") as f:
        while True:
            head = f.read(12)
            if len(head) < 12:
                return
            w, n, length = struct.unpack("<III", head)
            yield w, n, f.read(length)
