"""Unit tests of the benchmark's encoder and dataset generator: `python3 bench/test_bench.py`."""

import os
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset  # noqa: E402
import remote_write as rw  # noqa: E402


class Encoding(unittest.TestCase):
    def test_varint(self):
        for n, want in [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02")]:
            with self.subTest(n=n):
                self.assertEqual(rw.varint(n), want)

    def test_snappy_literal_round_trip(self):
        for size in [0, 1, 59, 60, 61, 255, 256, 257, 65535, 65536, 65537, 200_000]:
            with self.subTest(size=size):
                data = bytes((i * 7) % 251 for i in range(size))
                self.assertEqual(rw.snappy_decode(rw.snappy_literal(data)), data)

    def test_write_request_round_trip(self):
        labels = [("__name__", "up"), ("job", "x")]
        samples = rw.encode_sample(rw.varint(1_700_000_000_000), 1.5) + rw.encode_sample(
            rw.varint(1_700_000_015_000), float("inf"))
        body = rw.snappy_literal(rw.encode_series(rw.encode_labels(labels), samples))
        self.assertEqual(rw.decode_write_request(body),
                         [({"__name__": "up", "job": "x"},
                           [(1_700_000_000_000, 1.5), (1_700_000_015_000, float("inf"))])])


class Dataset(unittest.TestCase):
    def generate(self, d):
        return dataset.generate(d, 600, 0.5, 15, 1_700_000_000_000, 2)

    def test_deterministic_complete_and_in_order(self):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            ma, mb = self.generate(a), self.generate(b)
            self.assertEqual(ma["sha256"], mb["sha256"])
            self.assertEqual(ma["samples"], ma["series"] * ma["steps"])
            seen, samples, last_t = set(), 0, {}
            for sh in range(ma["shards"]):
                prev_w = 0
                for w, n, body in dataset.read_requests(os.path.join(a, f"shard-{sh}.bin")):
                    self.assertGreaterEqual(w, prev_w)
                    prev_w = w
                    got = rw.decode_write_request(body)
                    self.assertEqual(n, sum(len(s) for _, s in got))
                    for labels, ss in got:
                        key = tuple(sorted(labels.items()))
                        seen.add(key)
                        samples += len(ss)
                        for t, _ in ss:
                            self.assertGreater(t, last_t.get(key, 0), key)  # oldest first per series
                            self.assertEqual(t % 1000, 0)
                            last_t[key] = t
            self.assertEqual(len(seen), ma["series"])
            self.assertEqual(samples, ma["samples"])
            names = {dict(k)["__name__"] for k in seen}
            self.assertEqual(sorted(names), ma["names"])
            for want in ["node_cpu_seconds_total", "kube_pod_info", "container_cpu_usage_seconds_total",
                         "http_request_duration_seconds_bucket", "node_load1"]:
                self.assertIn(want, names)

    def test_histogram_buckets_are_cumulative(self):
        with tempfile.TemporaryDirectory() as d:
            self.generate(d)
            buckets = {}
            for w, n, body in dataset.read_requests(os.path.join(d, "shard-0.bin")):
                for labels, ss in rw.decode_write_request(body):
                    if labels["__name__"] == "http_request_duration_seconds_bucket":
                        inst = (labels["instance"], labels["handler"], labels["code"])
                        le = float(labels["le"])
                        for t, v in ss:
                            buckets.setdefault((inst, t), []).append((le, v))
            self.assertTrue(buckets)
            for key, bs in buckets.items():
                vals = [v for _, v in sorted(bs)]
                self.assertEqual(vals, sorted(vals), key)


if __name__ == "__main__":
    unittest.main()
