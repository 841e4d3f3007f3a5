#!/usr/bin/env python3
"""Head memory per active series, Pharos and Prometheus 2.42 side by side on the same series.

Generates (and caches) the node/pod dataset of `bench/dataset.py` for N series x S samples at
15 s, then for each system, one at a time on a fresh temp data dir on 127.0.0.1: starts it, waits
until it is idle, reads its RSS (and Prometheus' `go_memstats_heap_inuse_bytes`), sends every
series over remote_write (the same request bodies as `bench/bench.py`), waits until it is idle
again, reads them again and checks the head holds all N series. Prints bytes per series: RSS growth
for every system, Go heap in use for Prometheus. All N series stay in the head (S samples at 15 s
span far less than a 2 h block), so the growth is the head's memory for N active series with S
samples each.

    python3 bench/head_memory.py --series 100000 --samples 120 \\
        --pharos before=/tmp/pharos-before --pharos after=target/release/pharos

Several `--pharos NAME=PATH` compare builds in the same run. Standard library only.
"""

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import dataset  # noqa: E402

ROOT = bench.ROOT


def metrics(system):
    """{name: value} of the unlabelled samples of `/metrics`."""
    out = {}
    with urllib.request.urlopen(system.url + "/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("#") or "{" in line:
                continue
            parts = line.split()
            if len(parts) >= 2:
                try:
                    out[parts[0]] = float(parts[1])
                except ValueError:
                    pass
    return out


def head_series(system, m):
    """Series in the head, from the system's own metric."""
    for k in ("prometheus_tsdb_head_series", "pharos_tsdb_head_series"):
        if k in m:
            return int(m[k])
    return None


def quiet(system, secs):
    """Waits `secs` and then until the process is idle (< 0.03 cores for 3 s)."""
    bench.settle(system, secs, max_wait=max(120, secs * 4))


def restart(kind, sysdir, binary):
    """Starts `kind` again on the data dir it had (bench.System would start from an empty one)."""
    rmtree, makedirs = bench.shutil.rmtree, bench.os.makedirs
    bench.shutil.rmtree = lambda *a, **k: None
    bench.os.makedirs = lambda p, *a, **k: makedirs(p, exist_ok=True)
    try:
        return bench.System(kind, sysdir, binary)
    finally:
        bench.shutil.rmtree, bench.os.makedirs = rmtree, makedirs


def measure(kind, label, binary, workdir, ds_dir, meta, args):
    """Runs one system through the phases; returns its figures."""
    sysdir = os.path.join(workdir, label)
    os.makedirs(sysdir, exist_ok=True)
    s = bench.System(kind, sysdir, binary)
    try:
        quiet(s, args.idle)
        m0 = metrics(s)
        rss0, _ = s.mem()
        bench.log(f"{label}: idle RSS {rss0 >> 20} MiB; sending {meta['series']:,} series")
        wall, sent, errors = bench.send_all(s, ds_dir, meta)
        quiet(s, args.idle)
        m1 = metrics(s)
        rss1, hwm = s.mem()
        n = meta["series"]
        res = {
            "rss_before": rss0, "rss_after": rss1, "rss_peak": hwm,
            "rss_bytes_per_series": (rss1 - rss0) / n,
            "head_series": head_series(s, m1), "samples_sent": sent, "errors": errors[:5],
            "send_s": wall,
        }
        h0 = m0.get("go_memstats_heap_inuse_bytes", 0)
        if "go_memstats_heap_inuse_bytes" in m1:
            h0, h1 = m0["go_memstats_heap_inuse_bytes"], m1["go_memstats_heap_inuse_bytes"]
            res["heap_inuse_before"], res["heap_inuse_after"] = h0, h1
            res["heap_inuse_bytes_per_series"] = (h1 - h0) / n
        bench.log(f"{label}: RSS {rss0 >> 20} -> {rss1 >> 20} MiB = {res['rss_bytes_per_series']:.0f} B/series"
                  + (f", Go heap in use {res['heap_inuse_bytes_per_series']:.0f} B/series"
                     if "heap_inuse_bytes_per_series" in res else "")
                  + f"; head series {res['head_series']}, {len(errors)} errors, {wall:.0f} s to send")
        if res["head_series"] != n or errors:
            raise RuntimeError(f"{label}: head holds {res['head_series']} of {n} series, errors {errors[:3]}")
    finally:
        s.stop()
    # Restarted on the same data, the head is rebuilt from the WAL alone: the growth over the
    # idle RSS of the empty start is the head's, without what the remote-write path keeps.
    s = restart(kind, sysdir, binary)
    try:
        quiet(s, args.idle)
        m2 = metrics(s)
        rss2, _ = s.mem()
        res["restart_rss"] = rss2
        res["restart_rss_bytes_per_series"] = (rss2 - rss0) / n
        res["restart_head_series"] = head_series(s, m2)
        if "go_memstats_heap_inuse_bytes" in m2:
            res["restart_heap_inuse_bytes_per_series"] = (m2["go_memstats_heap_inuse_bytes"] - h0) / n
        bench.log(f"{label}: restarted, head rebuilt from the WAL: RSS {rss2 >> 20} MiB ="
                  f" {res['restart_rss_bytes_per_series']:.0f} B/series over the empty start"
                  + (f", Go heap in use {res['restart_heap_inuse_bytes_per_series']:.0f} B/series"
                     if "restart_heap_inuse_bytes_per_series" in res else "")
                  + f"; head series {res['restart_head_series']}")
        return res
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=100000, help="active series (default 100000)")
    ap.add_argument("--samples", type=int, default=120, help="samples per series (default 120)")
    ap.add_argument("--interval", type=int, default=15, help="sample interval, seconds (default 15)")
    ap.add_argument("--pharos", action="append", default=[],
                    help="NAME=PATH of a pharos binary (repeatable; default target/release/pharos)")
    ap.add_argument("--idle", type=float, default=5, help="seconds to wait before each reading")
    ap.add_argument("--cache", default=os.path.join(ROOT, "target", "bench"), help="dataset cache dir")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--keep", default=None,
                    help="work in this (new) dir and keep it: the data dirs, e.g. for"
                         " `tsdb/examples/head_memory.rs replay DIR`")
    args = ap.parse_args()
    pharos = [p.split("=", 1) if "=" in p else ("pharos", p) for p in args.pharos] or [
        ("pharos", os.path.join(ROOT, "target", "release", "pharos"))]
    pharos = [(n, os.path.abspath(p) if os.sep in p else p) for n, p in pharos]

    # Samples end at a fixed hour in the past, recent enough for Prometheus to accept them.
    end_s = int(time.time()) // 3600 * 3600
    hours = args.samples * args.interval / 3600
    ds_dir = os.path.join(args.cache, f"headmem-{args.series}s-{args.samples}x{args.interval}-{end_s}")
    if not os.path.exists(os.path.join(ds_dir, "meta.json")):
        bench.log(f"dataset: generating {args.series} series x {args.samples} samples")
        meta = dataset.generate(ds_dir + ".tmp", args.series, hours, args.interval, end_s * 1000, 2,
                                window_steps=args.samples)
        shutil.rmtree(ds_dir, ignore_errors=True)
        os.rename(ds_dir + ".tmp", ds_dir)
    with open(os.path.join(ds_dir, "meta.json")) as f:
        meta = json.load(f)
    bench.log(f"dataset: {meta['series']:,} series, {meta['samples']:,} samples ({ds_dir})")

    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": bench.machine(),
               "series": meta["series"], "samples": meta["samples"], "systems": {}}
    if args.keep:
        os.makedirs(args.keep)
    with (contextlib.nullcontext(args.keep) if args.keep
          else tempfile.TemporaryDirectory(prefix="headmem-")) as work:
        runs = [("prometheus", "prometheus", None)] + [("pharos", n, p) for n, p in pharos]
        for kind, label, binary in runs:
            results["systems"][label] = measure(kind, label, binary, work, ds_dir, meta, args)

    prom = results["systems"]["prometheus"]
    print(f"\n{meta['series']:,} active series x {args.samples} samples, bytes per series")
    for title, rss, heap in [("after remote_write ingestion", "rss_bytes_per_series", "heap_inuse_bytes_per_series"),
                             ("restarted, head rebuilt from the WAL", "restart_rss_bytes_per_series",
                              "restart_heap_inuse_bytes_per_series")]:
        print(f"\n{title}:\n")
        print("| system | RSS growth | Go heap in use | vs Prometheus RSS | vs Prometheus heap |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for label, r in results["systems"].items():
            h = r.get(heap)
            print(f"| {label} | {r[rss]:.0f} | {h:.0f} |" if h else f"| {label} | {r[rss]:.0f} | – |", end="")
            print(f" {r[rss] / prom[rss]:.2f}x | {r[rss] / prom[heap]:.2f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
