#!/usr/bin/env python3
"""Side-by-side benchmark of Pharos, Prometheus and VictoriaMetrics on the same data.

Run through `bench/run` (installs the reference systems, builds Pharos in release mode). Phases:
1. generate the dataset (cached by its parameters) as remote_write requests;
2. per system, one at a time: start on a fresh data dir, ingest over remote_write oldest first,
   wait until background work (head compaction, merges) is done, read CPU and RSS from /proc;
3. verify every sample arrived (count_over_time per window);
4. query_range latency with all three running, systems alternating, median of several runs;
5. stop (VictoriaMetrics: /internal/force_flush first) and measure the data dirs;
6. scrape path: synthetic targets at 1 s; 7. exporter vs node_exporter.
Prints a markdown table and writes results.json and results.md to the output dir.
"""

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEMS = ["pharos", "prometheus", "victoriametrics"]
NAMES = {"pharos": "Pharos", "prometheus": "Prometheus", "victoriametrics": "VictoriaMetrics"}

QUERIES = [
    ("rate + sum by", 'sum by (mode) (rate(node_cpu_seconds_total[5m]))'),
    ("avg_over_time", 'avg by (namespace) (avg_over_time(container_memory_working_set_bytes[5m]))'),
    ("histogram_quantile",
     'histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))'),
    ("topk", 'topk(10, sum by (namespace, pod) (rate(container_cpu_usage_seconds_total[5m])))'),
    ("group_left join",
     'sum by (node) (rate(container_cpu_usage_seconds_total[5m])'
     ' * on (namespace, pod) group_left (node) kube_pod_info)'),
    ("regex selector",
     'sum by (namespace) (container_memory_working_set_bytes{namespace=~"team-.*|kube-.*",pod=~"(api|web)-.*"})'),
]
RANGES = [("1h", 3600, 15), ("24h", 86400, 120)]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- /proc ---------------------------------------------------------------------------------------


def cpu_seconds(pid):
    """utime + stime of a process (all threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def mem(pid):
    """(VmRSS, VmHWM) in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


def dir_size(path):
    """(bytes on disk, apparent bytes) of a directory tree."""
    disk = apparent = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            disk += st.st_blocks * 512
            apparent += st.st_size
    return disk, apparent


def blocks_stats(path):
    """(bytes, samples) of the persisted blocks (sub-directories with a meta.json)."""
    size = samples = 0
    for name in os.listdir(path):
        meta = os.path.join(path, name, "meta.json")
        if os.path.isfile(meta):
            with open(meta) as f:
                samples += json.load(f).get("stats", {}).get("numSamples", 0)
            size += dir_size(os.path.join(path, name))[0]
    return size, samples


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        memtotal = int(f.readline().split()[1]) * 1024
    return {"cpu": model, "cores": os.cpu_count(), "mem_gib": round(memtotal / 2**30, 1),
            "kernel": platform.release(), "load_at_start": os.getloadavg()}


class QueryError(Exception):
    """A query answered with an error."""


# --- the systems -----------------------------------------------------------------------------------


class System:
    """One running server process with its data dir."""

    def __init__(self, name, workdir, pharos_bin, scrape_cfg=None):
        self.name = name
        self.dir = os.path.join(workdir, name)
        self.data = os.path.join(self.dir, "data")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.data)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        addr = f"127.0.0.1:{self.port}"
        cfg = os.path.join(self.dir, "config.yml")
        with open(cfg, "w") as f:
            f.write(scrape_cfg or "global:\n  scrape_interval: 15s\nscrape_configs: []\n")
        if name == "pharos":
            cmd = [pharos_bin, "server", f"--config.file={cfg}", f"--storage.tsdb.path={self.data}",
                   f"--web.listen-address={addr}", "--exporter.listen-address=off",
                   "--web.enable-remote-write-receiver", "--log.level=warn"]
            self.ready = "/-/ready"
        elif name == "prometheus":
            cmd = ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={self.data}",
                   f"--web.listen-address={addr}", "--web.enable-remote-write-receiver", "--log.level=warn"]
            self.ready = "/-/ready"
        else:
            cmd = ["victoria-metrics", f"-storageDataPath={self.data}", f"-httpListenAddr={addr}",
                   "-loggerLevel=WARN", "-retentionPeriod=1y", "-search.disableCache"]
            if scrape_cfg:
                cmd.append(f"-promscrape.config={cfg}")
            self.ready = "/health"
        self.log = open(os.path.join(self.dir, "stdout.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)
        self.pid = self.proc.pid
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + self.ready, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"{name} not ready on {self.url} after 60 s; see {self.log.name}")
            time.sleep(0.2)

    def cpu(self):
        return cpu_seconds(self.pid)

    def mem(self):
        return mem(self.pid)

    def query(self, path, params, timeout=600):
        if self.name == "victoriametrics":
            params = dict(params, nocache="1")
        body = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(self.url + path, data=body,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raise QueryError(f"{self.name}: {path} {params.get('query')!r}: HTTP {e.code}: "
                             f"{e.read()[:500].decode(errors='replace')}") from e
        dt = time.perf_counter() - t0
        return dt, json.loads(raw)

    def flush(self):
        if self.name == "victoriametrics":
            urllib.request.urlopen(self.url + "/internal/force_flush", timeout=120).read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


# --- ingestion -------------------------------------------------------------------------------------


def send_all(system, ds_dir, meta):
    """Sends every shard file, shards in parallel, all shards finishing window w before any starts
    window w+1 (oldest first). Returns (seconds, samples sent, errors)."""
    shards = meta["shards"]
    barrier = threading.Barrier(shards)
    sent = [0] * shards
    errors = []

    def worker(sh):
        conn = http.client.HTTPConnection("127.0.0.1", system.port, timeout=300)
        headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                   "X-Prometheus-Remote-Write-Version": "0.1.0", "User-Agent": "pharos-bench"}
        current = 0
        for w, n, body in dataset.read_requests(os.path.join(ds_dir, f"shard-{sh}.bin")):
            while w > current:
                barrier.wait()
                current += 1
            for attempt in range(5):
                try:
                    conn.request("POST", "/api/v1/write", body=body, headers=headers)
                    r = conn.getresponse()
                    msg = r.read()
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", system.port, timeout=300)
                    status, msg = 0, str(e).encode()
                else:
                    status = r.status
                if 200 <= status < 300:
                    sent[sh] += n
                    break
                if 400 <= status < 500:
                    errors.append(f"HTTP {status}: {msg[:300]!r}")
                    break
                time.sleep(0.5 * (attempt + 1))
            else:
                errors.append(f"gave up after 5 attempts: {status} {msg[:300]!r}")
        total_windows = -(-meta["steps"] // meta["window_steps"])
        while current < total_windows - 1:
            barrier.wait()
            current += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(shards)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, sum(sent), errors


def settle(system, min_wait, max_wait=240, idle_cores=0.03):
    """Waits at least `min_wait` s and until the process used < `idle_cores` for 3 s in a row."""
    t0 = time.time()
    quiet = 0
    last = system.cpu()
    while time.time() - t0 < max_wait:
        time.sleep(1)
        now = system.cpu()
        quiet = quiet + 1 if now - last < idle_cores else 0
        last = now
        if quiet >= 3 and time.time() - t0 >= min_wait:
            break
    return time.time() - t0


def ingest(system, ds_dir, meta, args):
    log(f"{system.name}: ingesting {meta['samples']:,} samples")
    rss_peak_sampled = [0]
    done = threading.Event()

    def sampler():
        while not done.is_set():
            try:
                rss_peak_sampled[0] = max(rss_peak_sampled[0], system.mem()[0])
            except OSError:
                return
            done.wait(0.25)

    st = threading.Thread(target=sampler)
    st.start()
    cpu0 = system.cpu()
    wall, sent, errors = send_all(system, ds_dir, meta)
    cpu_ingest = system.cpu() - cpu0
    system.flush()
    waited = settle(system, args.settle)
    cpu_total = system.cpu() - cpu0
    done.set()
    st.join()
    rss, hwm = system.mem()
    res = {
        "wall_s": wall, "samples_sent": sent, "errors": errors[:20], "error_count": len(errors),
        "cpu_s_during_send": cpu_ingest, "cpu_s_with_background": cpu_total, "settle_s": waited,
        "cpu_s_per_million": cpu_total / (meta["samples"] / 1e6),
        "throughput_samples_per_s": meta["samples"] / wall,
        "peak_rss_bytes": max(hwm, rss_peak_sampled[0]), "steady_rss_bytes": rss,
    }
    log(f"{system.name}: {wall:.1f}s wall, {cpu_total:.1f} CPU s, peak RSS {res['peak_rss_bytes'] >> 20} MiB,"
        f" {len(errors)} errors")
    return res


def verify(system, meta):
    """Counts the stored samples and series with count_over_time over windows that split the data
    between sample timestamps (all whole seconds: windows end at .5 s). One sum per metric name:
    count_over_time drops the name, and series differing only by it would collide."""
    window_ms = 2 * 3600 * 1000
    w = f"{window_ms // 1000}s"
    t = meta["start_ms"] - 500
    total = 0
    series = 0

    def one(agg, t):
        q = " + ".join(f'{agg}(count_over_time({{__name__="{n}",cluster="bench"}}[{w}]))' for n in meta["names"])
        _, r = system.query("/api/v1/query", {"query": q, "time": f"{t / 1000:.3f}"})
        res = r["data"]["result"]
        return int(float(res[0]["value"][1])) if res else 0

    while t < meta["max_t"]:
        t += window_ms
        total += one("sum", t)
        series = max(series, one("count", t))
    ok = total == meta["samples"] and series == meta["series"]
    log(f"{system.name}: verify {total:,}/{meta['samples']:,} samples, {series}/{meta['series']} series"
        f" -> {'ok' if ok else 'MISMATCH'}")
    return {"samples_found": total, "series_found": series, "complete": ok}


def query_bench(systems, meta, runs):
    """{system: {query/range: {median_ms, runs_ms, series}}}, systems alternating run by run."""
    out = {s.name: {} for s in systems}
    end = meta["max_t"] / 1000
    for label, q in QUERIES:
        for rname, secs, step in RANGES:
            key = f"{label} ({rname})"
            params = {"query": q, "start": f"{end - secs:.3f}", "end": f"{end:.3f}", "step": str(step)}
            times = {s.name: [] for s in systems}
            series = {}
            for s in systems:  # warm-up, not timed
                try:
                    _, r = s.query("/api/v1/query_range", params)
                    series[s.name] = len(r["data"]["result"])
                except (OSError, ValueError, KeyError, QueryError) as e:
                    series[s.name] = f"error: {e}"
                    log(str(e))
            for i in range(runs):
                order = systems[i % len(systems):] + systems[:i % len(systems)]
                for s in order:
                    try:
                        dt, _ = s.query("/api/v1/query_range", params)
                        times[s.name].append(dt * 1000)
                    except (OSError, ValueError, QueryError) as e:
                        log(f"{s.name}: {key}: {e}")
            for s in systems:
                t = times[s.name]
                out[s.name][key] = {"median_ms": statistics.median(t) if t else None, "runs_ms": t,
                                    "series": series[s.name]}
            log(f"query {key}: " + ", ".join(
                f"{s.name} {out[s.name][key]['median_ms'] or 0:.1f} ms ({series[s.name]} series)" for s in systems))
    return out


# --- scrape path -----------------------------------------------------------------------------------


def target_bodies(i, per_target):
    """Two exposition bodies of one synthetic target (alternated so counters move)."""
    bodies = []
    for variant in range(2):
        lines = []
        fams = max(1, per_target // 10)
        for f in range(fams):
            name = f"app_requests_{f}_total"
            lines.append(f"# HELP {name} Requests handled by component {f}.")
            lines.append(f"# TYPE {name} counter")
            for k in range(10):
                v = 1000 * (i + 1) + 37 * f + k + variant * (k + 1)
                lines.append(f'{name}{{handler="/api/v{k}",method="GET",code="200"}} {v}')
        bodies.append(("\n".join(lines) + "\n").encode())
    return bodies, fams * 10


class Targets:
    """`n` HTTP servers on free ports serving synthetic metrics; counts requests."""

    def __init__(self, n, per_target):
        self.count = 0
        self.lock = threading.Lock()
        self.servers = []
        self.samples_per_target = 0
        outer = self
        for i in range(n):
            bodies, self.samples_per_target = target_bodies(i, per_target)

            class H(BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"
                state = {"i": 0, "bodies": bodies}

                def do_GET(self):
                    with outer.lock:
                        outer.count += 1
                        self.state["i"] += 1
                        body = self.state["bodies"][self.state["i"] % 2]
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *a):
                    pass

            srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
            srv.daemon_threads = True
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            self.servers.append(srv)

    def addresses(self):
        return [f"127.0.0.1:{s.server_address[1]}" for s in self.servers]

    def close(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()


def scrape_bench(workdir, pharos_bin, args):
    targets = Targets(args.targets, args.target_samples)
    cfg = ("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: synthetic\n"
           "    static_configs:\n      - targets: [" + ", ".join(f"'{a}'" for a in targets.addresses()) + "]\n")
    out = {}
    try:
        for name in SYSTEMS:
            s = System(name, os.path.join(workdir, "scrape"), pharos_bin, scrape_cfg=cfg)
            try:
                time.sleep(args.scrape_warmup)
                with targets.lock:
                    c0 = targets.count
                cpu0 = s.cpu()
                time.sleep(args.scrape_seconds)
                cpu = s.cpu() - cpu0
                with targets.lock:
                    scrapes = targets.count - c0
                rss, hwm = s.mem()
            finally:
                s.stop()
            samples = scrapes * targets.samples_per_target
            out[name] = {"scrapes": scrapes, "samples": samples, "cpu_s": cpu,
                         "cpu_us_per_sample": cpu / samples * 1e6 if samples else None,
                         "rss_bytes": rss, "peak_rss_bytes": hwm,
                         "expected_scrapes": args.targets * args.scrape_seconds}
            log(f"scrape {name}: {scrapes} scrapes, {cpu:.2f} CPU s, RSS {rss >> 20} MiB")
    finally:
        targets.close()
    return out


# --- exporter --------------------------------------------------------------------------------------


def exporter_bench(workdir, pharos_bin, args):
    out = {}
    for name, cmd in [
        ("pharos", [pharos_bin, "exporter", "--log.level=warn"]),
        ("node_exporter", ["prometheus-node-exporter", "--log.level=warn"]),
    ]:
        port = free_port()
        d = os.path.join(workdir, "exporter", name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "stdout.log"), "w") as lf:
            p = subprocess.Popen(cmd + [f"--web.listen-address=127.0.0.1:{port}"], stdout=lf,
                                 stderr=subprocess.STDOUT)
            try:
                url = f"http://127.0.0.1:{port}/metrics"
                deadline = time.time() + 30
                while True:
                    try:
                        urllib.request.urlopen(url, timeout=5).read()
                        break
                    except OSError:
                        if time.time() > deadline or p.poll() is not None:
                            raise RuntimeError(f"{name} exporter did not answer on {url}")
                        time.sleep(0.2)
                for _ in range(3):
                    urllib.request.urlopen(url, timeout=30).read()
                cpu0 = cpu_seconds(p.pid)
                lat, samples, size = [], 0, 0
                for _ in range(args.exporter_scrapes):
                    t0 = time.perf_counter()
                    body = urllib.request.urlopen(url, timeout=30).read()
                    lat.append((time.perf_counter() - t0) * 1000)
                    samples = sum(1 for ln in body.split(b"\n") if ln and not ln.startswith(b"#"))
                    size = len(body)
                    time.sleep(args.exporter_pause)
                cpu = cpu_seconds(p.pid) - cpu0
                rss, hwm = mem(p.pid)
            finally:
                p.terminate()
                p.wait(timeout=30)
        out[name] = {"cpu_ms_per_scrape": cpu / args.exporter_scrapes * 1000,
                     "cpu_us_per_sample": cpu / args.exporter_scrapes / samples * 1e6 if samples else None,
                     "samples_per_scrape": samples, "bytes_per_scrape": size, "rss_bytes": rss,
                     "peak_rss_bytes": hwm, "median_latency_ms": statistics.median(lat)}
        log(f"exporter {name}: {out[name]['cpu_ms_per_scrape']:.2f} CPU ms/scrape, {samples} samples,"
            f" RSS {rss >> 20} MiB")
    return out


# --- the table -------------------------------------------------------------------------------------


def fmt(v, digits=3):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def table(results):
    rows = []

    def row(figure, vals, target=None, check=None):
        p, pr, vm = vals
        r1 = p / pr if p is not None and pr else None
        r2 = p / vm if p is not None and vm else None
        met = "—"
        if check is not None and r1 is not None:
            met = "yes" if check(r1, r2) else "**no**"
        rows.append({"figure": figure, "pharos": p, "prometheus": pr, "victoriametrics": vm,
                     "pharos_over_prometheus": r1, "pharos_over_victoriametrics": r2,
                     "target": target or "", "met": met})

    ing = results.get("ingest", {})
    if ing:
        g = lambda k, f=lambda x: x: [f(ing[s][k]) if s in ing else None for s in SYSTEMS]  # noqa: E731
        row("Ingestion CPU s per million samples (incl. background work)", g("cpu_s_per_million"),
            "≤0.25x Prom, <VM", lambda a, b: a <= 0.25 and (b is None or b < 1))
        row("Ingestion wall throughput, samples/s (higher is better)", g("throughput_samples_per_s"))
        row("Peak RSS while ingesting, MiB", g("peak_rss_bytes", lambda x: x / 2**20),
            "≤0.3x Prom", lambda a, b: a <= 0.3)
        row("Steady RSS after ingesting, MiB", g("steady_rss_bytes", lambda x: x / 2**20))
    disk = results.get("disk", {})
    if disk:
        row("Persisted bytes/sample (data dir after flush and stop)",
            [disk[s]["bytes_per_sample"] if s in disk else None for s in SYSTEMS],
            "≤0.5x Prom, <VM", lambda a, b: a <= 0.5 and (b is None or b < 1))
        row("Bytes/sample in persisted blocks only (no WAL)",
            [disk[s].get("block_bytes_per_sample") if s in disk else None for s in SYSTEMS])
    qs = results.get("queries", {})
    if qs:
        for label, _ in QUERIES:
            for rname, _, _ in RANGES:
                key = f"{label} ({rname})"
                vals = [qs[s][key]["median_ms"] if s in qs else None for s in SYSTEMS]
                if rname == "24h":
                    row(f"query_range {key}, median ms", vals, "≤0.2x Prom, ≤VM",
                        lambda a, b: a <= 0.2 and (b is None or b <= 1))
                else:
                    row(f"query_range {key}, median ms", vals)
    sc = results.get("scrape", {})
    if sc:
        row("Scrape path CPU µs per scraped sample",
            [sc[s]["cpu_us_per_sample"] if s in sc else None for s in SYSTEMS])
        row("Scrape path RSS, MiB", [sc[s]["rss_bytes"] / 2**20 if s in sc else None for s in SYSTEMS])
    ex = results.get("exporter", {})
    if ex:
        e = lambda k, f=lambda x: x: [f(ex["pharos"][k]), f(ex["node_exporter"][k]), None]  # noqa: E731
        row("Exporter CPU ms per scrape (Prometheus column: node_exporter)", e("cpu_ms_per_scrape"),
            "≤0.5x node_exporter", lambda a, b: a <= 0.5)
        row("Exporter RSS, MiB (Prometheus column: node_exporter)", e("rss_bytes", lambda x: x / 2**20),
            "≤0.5x node_exporter", lambda a, b: a <= 0.5)
        row("Exporter samples per scrape (Prometheus column: node_exporter)", e("samples_per_scrape"))
    lines = ["| Figure | Pharos | Prometheus | VictoriaMetrics | Pharos/Prom | Pharos/VM | Target | Met |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['figure']} | {fmt(r['pharos'])} | {fmt(r['prometheus'])} | {fmt(r['victoriametrics'])}"
                     f" | {fmt(r['pharos_over_prometheus'], 2)} | {fmt(r['pharos_over_victoriametrics'], 2)}"
                     f" | {r['target']} | {r['met']} |")
    return rows, "\n".join(lines)


# --- main ------------------------------------------------------------------------------------------


def versions(pharos_bin):
    """Version lines of the binaries; the Debian package version where a binary prints none."""
    out = {}
    for name, cmd, pkg in [("pharos", [pharos_bin, "--version"], None),
                           ("prometheus", ["prometheus", "--version"], "prometheus"),
                           ("victoriametrics", ["victoria-metrics", "-version"], "victoria-metrics"),
                           ("node_exporter", ["prometheus-node-exporter", "--version"], "prometheus-node-exporter")]:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            lines = (r.stdout + r.stderr).strip().splitlines()
            if not lines and pkg:
                r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True,
                                   timeout=30)
                lines = [f"{pkg} {r.stdout.strip()} (Debian package)"]
            out[name] = lines[0] if lines else "unknown"
        except (OSError, subprocess.SubprocessError) as e:
            out[name] = f"unknown ({e})"
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=10000, help="number of series (default 10000)")
    ap.add_argument("--hours", type=float, default=24, help="hours of data (default 24)")
    ap.add_argument("--interval", type=int, default=15, help="sample interval, seconds (default 15)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1000 series x 2 h, short phases")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench"), help="work and output dir")
    ap.add_argument("--pharos", default=os.path.join(ROOT, "target", "release", "pharos"))
    ap.add_argument("--runs", type=int, default=5, help="timed runs per query and system")
    ap.add_argument("--settle", type=float, default=65,
                    help="minimum seconds to wait after ingesting before reading CPU (background work)")
    ap.add_argument("--targets", type=int, default=100, help="synthetic scrape targets")
    ap.add_argument("--target-samples", type=int, default=500, help="samples per synthetic target")
    ap.add_argument("--scrape-seconds", type=float, default=60)
    ap.add_argument("--scrape-warmup", type=float, default=10)
    ap.add_argument("--exporter-scrapes", type=int, default=100)
    ap.add_argument("--exporter-pause", type=float, default=0.2, help="seconds between exporter scrapes")
    ap.add_argument("--shards", type=int, default=2, help="parallel remote_write connections")
    ap.add_argument("--skip", default="", help="comma-separated phases to skip: ingest,scrape,exporter")
    ap.add_argument("--end", type=int, default=None, help="dataset end, unix seconds (default: this hour)")
    args = ap.parse_args()
    if args.quick:
        args.series, args.hours, args.runs, args.settle = 1000, 2, 3, 2
        args.targets, args.target_samples, args.scrape_seconds, args.scrape_warmup = 10, 200, 8, 4
        args.exporter_scrapes, args.exporter_pause = 20, 0.1
    args.out = os.path.abspath(args.out)
    args.pharos = os.path.abspath(args.pharos) if os.sep in args.pharos else args.pharos
    skip = set(filter(None, args.skip.split(",")))
    os.makedirs(args.out, exist_ok=True)
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": machine(),
               "args": vars(args), "versions": versions(args.pharos)}

    if "ingest" not in skip:
        end_s = args.end or int(time.time()) // 3600 * 3600
        ds_dir = os.path.join(args.out, f"dataset-{args.series}s-{args.hours:g}h-{args.interval}i-{end_s}-{args.shards}")
        meta_path = os.path.join(ds_dir, "meta.json")
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
            log(f"dataset: reusing {ds_dir}")
        else:
            log(f"dataset: generating {args.series} series x {args.hours} h at {args.interval} s")
            t0 = time.time()
            meta = dataset.generate(ds_dir + ".tmp", args.series, args.hours, args.interval, end_s * 1000,
                                    args.shards)
            shutil.rmtree(ds_dir, ignore_errors=True)
            os.rename(ds_dir + ".tmp", ds_dir)
            log(f"dataset: {meta['samples']:,} samples, {meta['series']} series in {time.time() - t0:.0f}s")
        results["dataset"] = meta
        systems = []
        results["ingest"], results["verify"], results["disk"] = {}, {}, {}
        try:
            for name in SYSTEMS:
                s = System(name, args.out, args.pharos)
                systems.append(s)
                results["ingest"][name] = ingest(s, ds_dir, meta, args)
            for s in systems:
                results["verify"][s.name] = verify(s, meta)
            results["queries"] = query_bench(systems, meta, args.runs)
        finally:
            for s in systems:
                try:
                    s.flush()
                except OSError as e:
                    log(f"{s.name}: flush failed: {e}")
                rc = s.stop()
                disk, apparent = dir_size(s.data)
                bbytes, bsamples = blocks_stats(s.data)
                results["disk"][s.name] = {
                    "exit_code": rc, "data_dir_bytes": disk, "data_dir_apparent_bytes": apparent,
                    "bytes_per_sample": disk / meta["samples"],
                    "block_bytes": bbytes, "block_samples": bsamples,
                    "block_bytes_per_sample": bbytes / bsamples if bsamples else None,
                }
                log(f"{s.name}: data dir {disk / 2**20:.1f} MiB, {disk / meta['samples']:.3f} bytes/sample")
    if "scrape" not in skip:
        results["scrape"] = scrape_bench(args.out, args.pharos, args)
    if "exporter" not in skip:
        results["exporter"] = exporter_bench(args.out, args.pharos, args)

    rows, md = table(results)
    results["table"] = rows
    results["machine"]["load_at_end"] = os.getloadavg()
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    log(f"wrote {os.path.join(args.out, 'results.json')} and results.md")
    bad = [s for s, v in results.get("verify", {}).items() if not v["complete"]]
    if bad:
        log(f"incomplete ingestion in: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
