"""Bytes on the wire between hosts: lz4 (default) or zstd; fp16 / int8 only when asked.

Arrays are compressed with Blosc2 (``blosc2``): the bytes of each element are
shuffled into planes first (bit planes for floats), so the slowly changing
high bytes of numerical data compress even where plain lz4 finds nothing,
and every core is used. Large arrays go in chunks of :data:`CHUNK_BYTES`, each
its own buffer on the wire, decompressed straight into the destination.

Lossless codecs give the same bytes back. ``fp16`` casts float arrays to
half precision; ``int8`` stores each 4096-value chunk as int8 with a float32
scale (error at most scale/2 per element).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

CODECS = ("lz4", "zstd", "fp16", "int8")
INT8_CHUNK = 4096
#: Bytes of array per compressed chunk (Blosc2 takes at most 2 GB at a time).
CHUNK_BYTES = 64 << 20


def check_codec(name: str) -> str:
    """Validate a codec name; raise ValueError saying which exist."""
    if name not in CODECS:
        raise ValueError(f"unknown compression {name!r}: use one of {', '.join(CODECS)}")
    return name


def _blosc() -> Any:
    import blosc2

    return blosc2


def _pack(flat: np.ndarray, codec: str) -> list[bytes]:
    """Compress a contiguous 1-d array in chunks (lz4 or zstd inside Blosc2)."""
    blosc2 = _blosc()
    size = max(1, flat.dtype.itemsize)
    shuffle = blosc2.Filter.BITSHUFFLE if flat.dtype.kind == "f" else blosc2.Filter.SHUFFLE
    name = blosc2.Codec.ZSTD if codec == "zstd" else blosc2.Codec.LZ4
    raw = flat.reshape(-1).view(np.uint8)
    step = max(size, CHUNK_BYTES // size * size)
    threads = os.cpu_count() or 1
    return [
        blosc2.compress2(raw[i : i + step], typesize=size, codec=name, clevel=1,
                         filters=[shuffle], nthreads=threads)  # fmt: skip
        for i in range(0, raw.size, step)
    ] or [b""]


def _unpack(chunks: list[bytes], out: np.ndarray) -> None:
    """Decompress ``chunks`` into the uint8 array ``out``, in place."""
    blosc2 = _blosc()
    pos = 0
    for chunk in chunks:
        if not chunk:
            continue
        n = blosc2.get_cbuffer_sizes(chunk)[0]
        blosc2.decompress2(chunk, dst=out[pos : pos + n].data)
        pos += n
    if pos != out.size:
        raise ValueError(f"corrupt payload: {pos} bytes decompressed, {out.size} expected")


def encode(arr: np.ndarray, codec: str) -> dict[str, Any]:
    """Compress a contiguous array; returns a payload dict for :func:`decode`."""
    check_codec(codec)
    if codec in ("fp16", "int8") and arr.dtype.kind != "f":
        codec = "lz4"  # lossy codecs only apply to floats; others stay exact
    if codec == "fp16":
        return {"codec": "fp16", "chunks": _pack(arr.reshape(-1).astype(np.float16), "lz4")}
    if codec == "int8":
        flat = arr.reshape(-1).astype(np.float32)
        pad = (-flat.size) % INT8_CHUNK
        chunks = np.concatenate([flat, np.zeros(pad, np.float32)]).reshape(-1, INT8_CHUNK)
        scale = np.abs(chunks).max(axis=1) / 127.0
        safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
        q = np.rint(chunks / safe[:, None]).clip(-127, 127).astype(np.int8)
        return {"codec": "int8", "chunks": _pack(q.reshape(-1), "lz4"), "scale": safe.tobytes(),
                "n": flat.size}  # fmt: skip
    return {"codec": codec, "chunks": _pack(arr.reshape(-1), codec)}


def payload_bytes(payload: dict[str, Any]) -> int:
    """Bytes a payload puts on the wire."""
    return sum(len(c) for c in payload["chunks"]) + len(payload.get("scale", b""))


def decode_into(payload: dict[str, Any], dtype: str, shape: tuple[int, ...], out: np.ndarray) -> None:
    """Rebuild the array that :func:`encode` compressed into ``out`` (uint8, its exact size)."""
    codec = payload["codec"]
    if codec in ("lz4", "zstd"):
        _unpack(payload["chunks"], out)
        return
    out.view(np.dtype(dtype)).reshape(shape)[...] = decode(payload, dtype, shape)


def decode(payload: dict[str, Any], dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Rebuild the array that :func:`encode` compressed (a new, writable array)."""
    codec = payload["codec"]
    n = int(np.prod(shape, dtype=np.int64))
    if codec == "fp16":
        half = np.empty(n, np.float16)
        _unpack(payload["chunks"], half.view(np.uint8))
        return half.astype(np.dtype(dtype)).reshape(shape)
    if codec == "int8":
        count = payload["n"] + (-payload["n"]) % INT8_CHUNK
        q = np.empty(count, np.int8)
        _unpack(payload["chunks"], q.view(np.uint8))
        scale = np.frombuffer(payload["scale"], np.float32)
        flat = (q.reshape(-1, INT8_CHUNK).astype(np.float32) * scale[:, None]).reshape(-1)
        return flat[: payload["n"]].astype(np.dtype(dtype)).reshape(shape)
    out = np.empty(n, np.dtype(dtype))
    _unpack(payload["chunks"], out.view(np.uint8))
    return out.reshape(shape)


def detach(ops: list[tuple]) -> tuple[list[tuple], list[bytes]]:
    """``ops`` with each payload's chunks replaced by indices into the returned list of buffers.

    Sent as a top-level list, each buffer goes on the wire as its own frame,
    never copied into a pickle.
    """
    blobs: list[bytes] = []

    def strip(payload: dict[str, Any]) -> dict[str, Any]:
        out = dict(payload)
        out["chunks"] = list(range(len(blobs), len(blobs) + len(payload["chunks"])))
        blobs.extend(payload["chunks"])
        return out

    out: list[tuple] = []
    for op in ops:
        if op[0] == "bytes":
            out.append(op[:3] + (strip(op[3]),) + op[4:])
        elif op[0] == "unpack":
            items = [(i, key, strip(p), meta) for i, key, p, meta in op[2]]
            out.append((op[0], op[1], items, op[3]))
        else:
            out.append(op)
    return out, blobs


def reattach(payload: dict[str, Any], blobs: list[Any]) -> dict[str, Any]:
    """A payload whose chunks were :func:`detach`-ed, with its buffers back."""
    return dict(payload, chunks=[blobs[i] for i in payload["chunks"]])
