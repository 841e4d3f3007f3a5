"""Prometheus remote_write 1.0 encoding with the standard library only.

A `WriteRequest` is protobuf (prompb: WriteRequest{1: repeated TimeSeries}, TimeSeries{1: repeated
Label, 2: repeated Sample}, Label{1: name, 2: value}, Sample{1: double value, 2: int64 timestamp})
compressed with the snappy *block* format. The snappy encoder here emits literal runs only: a valid
snappy stream that every decoder accepts, larger on the wire than a real compressor's output (the
receivers' decompression is then a copy). The bodies are the same for all systems.
"""

import struct

_DOUBLE = struct.Struct("<d")


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def encode_labels(labels) -> bytes:
    """The `labels` part of a TimeSeries, for (name, value) pairs sorted by name."""
    return b"".join(
        field_bytes(1, field_bytes(1, k.encode()) + field_bytes(2, v.encode()))
        for k, v in labels
    )


def encode_sample(ts_varint: bytes, v: float) -> bytes:
    """One `samples` field of a TimeSeries; `ts_varint` is `varint(ts_ms)`."""
    body = b"\x09" + _DOUBLE.pack(v) + b"\x10" + ts_varint
    return b"\x12" + varint(len(body)) + body


def encode_series(labels_pb: bytes, samples_pb: bytes) -> bytes:
    """One `timeseries` field of a WriteRequest."""
    return field_bytes(1, labels_pb + samples_pb)


def snappy_literal(data: bytes) -> bytes:
    """Snappy block format: uncompressed length, then literal elements of at most 64 KiB."""
    out = [varint(len(data))]
    step = 1 << 16
    for i in range(0, len(data), step):
        chunk = data[i : i + step]
        n = len(chunk) - 1
        if n < 60:
            out.append(bytes([n << 2]))
        elif n < 1 << 8:
            out.append(bytes([60 << 2, n]))
        else:
            out.append(bytes([61 << 2]) + n.to_bytes(2, "little"))
        out.append(chunk)
    return b"".join(out)


# --- decoding, for the self-test -----------------------------------------------------------


def _read_varint(buf: bytes, i: int):
    shift = 0
    n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def snappy_decode(buf: bytes) -> bytes:
    """Decodes a snappy block made of literals and copies."""
    total, i = _read_varint(buf, 0)
    out = bytearray()
    while i < len(buf):
        tag = buf[i]
        i += 1
        kind = tag & 3
        if kind == 0:
            n = tag >> 2
            if n >= 60:
                k = n - 59
                n = int.from_bytes(buf[i : i + k], "little")
                i += k
            n += 1
            out += buf[i : i + n]
            i += n
        else:
            if kind == 1:
                length = ((tag >> 2) & 7) + 4
                off = ((tag >> 5) << 8) | buf[i]
                i += 1
            elif kind == 2:
                length = (tag >> 2) + 1
                off = int.from_bytes(buf[i : i + 2], "little")
                i += 2
            else:
                length = (tag >> 2) + 1
                off = int.from_bytes(buf[i : i + 4], "little")
                i += 4
            for _ in range(length):
                out.append(out[-off])
    if len(out) != total:
        raise ValueError(f"snappy: decoded {len(out)} bytes, header says {total}")
    return bytes(out)


def _fields(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 2:
            n, i = _read_varint(buf, i)
            yield num, buf[i : i + n]
            i += n
        elif wt == 1:
            yield num, buf[i : i + 8]
            i += 8
        elif wt == 0:
            v, i = _read_varint(buf, i)
            yield num, v
        else:
            raise ValueError(f"protobuf: unsupported wire type {wt}")


def decode_write_request(body: bytes):
    """[(labels dict, [(ts, value)])] of a snappy-compressed WriteRequest."""
    out = []
    for num, ts_buf in _fields(snappy_decode(body)):
        if num != 1:
            continue
        labels, samples = {}, []
        for f, sub in _fields(ts_buf):
            if f == 1:
                kv = dict(_fields(sub))
                labels[kv[1].decode()] = kv[2].decode()
            elif f == 2:
                kv = dict(_fields(sub))
                samples.append((kv.get(2, 0), _DOUBLE.unpack(kv.get(1, bytes(8)))[0]))
        out.append((labels, samples))
    return out
