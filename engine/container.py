"""The one binary container behind plans and timing caches: magic, format version, JSON header, raw
little-endian array buffers, SHA-256 trailer. Nothing in it can execute code when loaded (no pickle)."""
from __future__ import annotations

import hashlib
import json
import math
import struct
from typing import Any

import numpy as np

from .errors import PlanFormatError

_ALIGN = 64
_PREFIX = struct.Struct("<8sIQ")  # magic, format version, header length


def pack(magic: bytes, version: int, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """Serialize `header` (JSON-able) and named arrays. The header gains a 'buffers' table."""
    arrays = arrays or {}
    table, chunks, offset = {}, [], 0
    for name, array in arrays.items():
        data = np.asarray(array, order="C")  # keeps 0-D arrays 0-D (ascontiguousarray does not)
        if data.dtype.byteorder == ">":
            data = data.byteswap().view(data.dtype.newbyteorder("<"))
        raw = data.tobytes()
        table[name] = {"offset": offset, "nbytes": len(raw), "dtype": data.dtype.str.replace(">", "<"),
                       "shape": list(data.shape)}
        pad = (-len(raw)) % _ALIGN
        chunks.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    body = json.dumps(_encode_nonfinite({**header, "buffers": table}), separators=(",", ":"), sort_keys=True,
                      allow_nan=False).encode("utf-8")
    head = _PREFIX.pack(magic, version, len(body)) + body
    head += b"\0" * ((-len(head)) % _ALIGN)
    payload = head + b"".join(chunks)
    return payload + hashlib.sha256(payload).digest()


def unpack(data: bytes, magic: bytes, version: int, what: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Inverse of `pack`; raises PlanFormatError naming `what` for any mismatch or damage."""
    data = bytes(data)
    if len(data) < _PREFIX.size + 32:
        raise PlanFormatError(f"{what}: file is too short ({len(data)} bytes) to be a polyx {what}")
    file_magic, file_version, header_len = _PREFIX.unpack_from(data)
    if file_magic != magic:
        raise PlanFormatError(f"{what}: not a polyx {what} (bad magic {file_magic!r}, expected {magic!r})")
    if file_version != version:
        raise PlanFormatError(f"{what}: format version {file_version} is not supported (this build reads version "
                              f"{version}); rebuild it with this version of polyx")
    payload, digest = data[:-32], data[-32:]
    if hashlib.sha256(payload).digest() != digest:
        raise PlanFormatError(f"{what}: checksum mismatch: the file is corrupted or truncated")
    try:
        header = json.loads(payload[_PREFIX.size:_PREFIX.size + header_len].decode("utf-8"),
                            object_hook=_decode_nonfinite)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanFormatError(f"{what}: header is not valid JSON ({exc})") from None
    start = _PREFIX.size + header_len
    start += (-start) % _ALIGN
    arrays = {}
    for name, entry in header.get("buffers", {}).items():
        lo = start + entry["offset"]
        hi = lo + entry["nbytes"]
        if hi > len(payload):
            raise PlanFormatError(f"{what}: buffer {name!r} lies outside the file")
        dtype = np.dtype(entry["dtype"])
        if dtype.hasobject:
            raise PlanFormatError(f"{what}: buffer {name!r} has an object dtype, which is never allowed")
        arrays[name] = np.frombuffer(payload, dtype=dtype, count=entry["nbytes"] // max(dtype.itemsize, 1),
                                     offset=lo).reshape(entry["shape"])
    return header, arrays


def _encode_nonfinite(value: Any) -> Any:
    """Strict JSON has no inf/nan: write them as {"$float": "inf" | "-inf" | "nan"}."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if isinstance(value, dict):
        return {k: _encode_nonfinite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_nonfinite(v) for v in value]
    return value


def _decode_nonfinite(obj: dict) -> Any:
    if len(obj) == 1 and "$float" in obj:
        return float(obj["$float"])
    return obj
