"""The one binary container behind plans and timing caches: magic, format version, JSON header, raw
little-endian array buffers, SHA-256 trailer. Nothing in it can execute code when loaded (no pickle)."""
from __future__ import annotations

import hashlib
import json
import math
import struct
from typing import Any

import ml_dtypes
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
        table[name] = {"offset": offset, "nbytes": len(raw), "dtype": _dtype_name(data.dtype),
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
    if not isinstance(header, dict):
        raise PlanFormatError(f"{what}: header must be a JSON object, got {type(header).__name__}")
    start = _PREFIX.size + header_len
    start += (-start) % _ALIGN
    if start > len(payload):
        raise PlanFormatError(f"{what}: header length {header_len} runs past the end of the file")
    table = header.get("buffers", {})
    if not isinstance(table, dict):
        raise PlanFormatError(f"{what}: 'buffers' must be an object, got {type(table).__name__}")
    arrays = {}
    data_size, previous_end, previous = len(payload) - start, 0, None
    # By offset, empty buffers first: pack gives a 0-byte array the offset of the buffer after it.
    entries = sorted(((_check_buffer_entry(name, entry, what), name) for name, entry in table.items()),
                     key=lambda item: (item[0]["offset"], item[0]["nbytes"]))
    for entry, name in entries:
        offset, nbytes, dtype = entry["offset"], entry["nbytes"], _dtype_of(entry["dtype"])
        if offset + nbytes > data_size:
            raise PlanFormatError(f"{what}: buffer {name!r} (offset {offset}, {nbytes} bytes) lies outside the data "
                                  f"area of {data_size} bytes")
        if offset < previous_end:
            raise PlanFormatError(f"{what}: buffer {name!r} at offset {offset} overlaps buffer {previous!r}, which "
                                  f"ends at {previous_end}")
        previous_end, previous = offset + nbytes, name
        arrays[name] = np.frombuffer(payload, dtype=dtype, count=nbytes // dtype.itemsize,
                                     offset=start + offset).reshape(entry["shape"])
    return header, arrays


# Array dtypes a container may hold: numbers and booleans, little-endian (or byte-sized); never objects.
# bfloat16 (ml_dtypes) is written by name: its NumPy type string "<V2" would read back as raw bytes.
_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
_ALLOWED_DTYPES = frozenset(np.dtype(t).str for t in (
    np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
    np.float16, np.float32, np.float64)) | {"bfloat16"}


def _dtype_name(dtype: np.dtype) -> str:
    return "bfloat16" if dtype == _BFLOAT16 else dtype.str.replace(">", "<")


def _dtype_of(name: str) -> np.dtype:
    return _BFLOAT16 if name == "bfloat16" else np.dtype(name)


def _check_buffer_entry(name: str, entry: Any, what: str) -> dict[str, Any]:
    """One entry of the buffers table, field by field: exactly offset, nbytes, dtype and shape; the offset
    aligned; a known dtype; nbytes equal to the shape's element count times the item size."""
    if not isinstance(entry, dict) or set(entry) != {"offset", "nbytes", "dtype", "shape"}:
        raise PlanFormatError(f"{what}: buffer {name!r} must be an object with offset, nbytes, dtype and shape, "
                              f"got {entry!r:.200}")
    for key in ("offset", "nbytes"):
        value = entry[key]
        if not _is_int(value) or value < 0:
            raise PlanFormatError(f"{what}: buffer {name!r}: {key} must be a non-negative integer, got {value!r}")
    if entry["offset"] % _ALIGN:
        raise PlanFormatError(f"{what}: buffer {name!r}: offset {entry['offset']} is not aligned to {_ALIGN} bytes")
    if entry["dtype"] not in _ALLOWED_DTYPES:
        raise PlanFormatError(f"{what}: buffer {name!r}: dtype {entry['dtype']!r} is not one of "
                              f"{sorted(_ALLOWED_DTYPES)}")
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise PlanFormatError(f"{what}: buffer {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    expected = math.prod(shape) * _dtype_of(entry["dtype"]).itemsize
    if entry["nbytes"] != expected:
        raise PlanFormatError(f"{what}: buffer {name!r}: nbytes {entry['nbytes']} does not match shape {shape} of "
                              f"{entry['dtype']} ({expected} bytes)")
    return entry


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
