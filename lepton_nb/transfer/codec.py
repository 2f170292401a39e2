"""Bytes on the wire between hosts: lz4 (default) or zstd; fp16 / int8 only when asked.

Lossless codecs give the same bytes back. ``fp16`` casts float arrays to
half precision; ``int8`` stores each 4096-value chunk as int8 with a float32
scale (error at most scale/2 per element).
"""

from __future__ import annotations

from typing import Any

import numpy as np

CODECS = ("lz4", "zstd", "fp16", "int8")
INT8_CHUNK = 4096


def check_codec(name: str) -> str:
    """Validate a codec name; raise ValueError saying which exist."""
    if name not in CODECS:
        raise ValueError(f"unknown compression {name!r}: use one of {', '.join(CODECS)}")
    return name


def encode(arr: np.ndarray, codec: str) -> dict[str, Any]:
    """Compress a contiguous array; returns a payload dict for :func:`decode`."""
    check_codec(codec)
    if codec in ("fp16", "int8") and arr.dtype.kind != "f":
        codec = "lz4"  # lossy codecs only apply to floats; others stay exact
    if codec == "fp16":
        raw, extra = arr.astype(np.float16).tobytes(), {}
        codec_bytes = _lz4(raw)
        return {"codec": "fp16", "data": codec_bytes, **extra}
    if codec == "int8":
        flat = arr.reshape(-1).astype(np.float32)
        pad = (-flat.size) % INT8_CHUNK
        chunks = np.concatenate([flat, np.zeros(pad, np.float32)]).reshape(-1, INT8_CHUNK)
        scale = np.abs(chunks).max(axis=1) / 127.0
        safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
        q = np.rint(chunks / safe[:, None]).clip(-127, 127).astype(np.int8)
        return {"codec": "int8", "data": _lz4(q.tobytes()), "scale": safe.tobytes(), "n": flat.size}
    view = memoryview(arr.reshape(-1)).cast("B") if arr.nbytes else b""
    if codec == "zstd":
        import zstandard

        return {
            "codec": "zstd",
            "data": zstandard.ZstdCompressor(level=3, threads=-1).compress(view),
        }
    return {"codec": "lz4", "data": _lz4(view)}


def _lz4(data: Any) -> bytes:
    import lz4.frame

    return lz4.frame.compress(data, compression_level=0)


def decode(payload: dict[str, Any], dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Rebuild the array that :func:`encode` compressed."""
    import lz4.frame

    codec = payload["codec"]
    if codec == "zstd":
        import zstandard

        raw = zstandard.ZstdDecompressor().decompress(payload["data"])
    else:
        raw = lz4.frame.decompress(payload["data"])
    if codec == "fp16":
        return np.frombuffer(raw, np.float16).astype(np.dtype(dtype)).reshape(shape)
    if codec == "int8":
        q = np.frombuffer(raw, np.int8).reshape(-1, INT8_CHUNK).astype(np.float32)
        scale = np.frombuffer(payload["scale"], np.float32)
        flat = (q * scale[:, None]).reshape(-1)[: payload["n"]]
        return flat.astype(np.dtype(dtype)).reshape(shape)
    return np.frombuffer(bytearray(raw), np.dtype(dtype)).reshape(shape)
