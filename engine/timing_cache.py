"""Timing cache: tactic timings keyed by layer signature (type, params, shapes, dtypes, precision, device).

A rebuild that finds every key in the cache times nothing and picks the same tactics. Serialized with the
shared container (magic, version, JSON, SHA-256), never pickle.
"""
from __future__ import annotations

import hashlib
import json
import math
import threading
from typing import Any

from .container import pack, unpack
from .errors import PlanFormatError

MAGIC = b"POLYXTC\0"
FORMAT_VERSION = 1


def layer_signature(layer_type: str, params: dict[str, Any], input_infos: list[Any], precision: str,
                    device: str, epilogue: dict[str, Any] | None = None, formats: list[str] | None = None) -> str:
    """A stable hash of everything that affects which tactic is fastest (never the weight values); the epilogue
    counts, since a tactic that absorbs it saves a pass over the output; so do the tensor formats of a
    channels-last layer (None for all-LINEAR layers, whose keys stay as they were)."""
    desc = {
        "type": str(layer_type),
        "params": {k: v for k, v in sorted(params.items()) if k != "weights"},
        "epilogue": epilogue,
        "inputs": [None if i is None else [list(i.shape) if i.shape is not None else None, str(i.dtype),
                                           i.value is not None] for i in input_infos],
        "precision": str(precision),
        "device": device,
    }
    if formats is not None:
        desc["formats"] = formats
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()[:32]


class TimingCache:
    def __init__(self, entries: dict[str, dict[str, Any]] | None = None):
        self.entries: dict[str, dict[str, Any]] = dict(entries or {})
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def query(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self.entries.get(key)
            if entry is None:
                self.misses += 1
            else:
                self.hits += 1
            return entry

    def update(self, key: str, timings: dict[int, float], chosen: int, source: str | None = None) -> None:
        """Record one layer's timings and choice; `source` is the chosen tactic's TacticSource name (None: a
        kernel of no source), which `inspect` shows."""
        with self._lock:
            self.entries[key] = {"tactic": int(chosen), "timings_ms": {str(k): float(v) for k, v in timings.items()},
                                 "source": source}

    def combine(self, other: TimingCache, ignore_mismatch: bool = False) -> bool:
        with self._lock:
            for key, value in other.entries.items():
                self.entries.setdefault(key, value)
        return True

    def reset(self) -> bool:
        with self._lock:
            self.entries.clear()
        return True

    def serialize(self) -> bytes:
        return pack(MAGIC, FORMAT_VERSION, {"entries": self.entries})

    @classmethod
    def deserialize(cls, data: bytes) -> TimingCache:
        header, _ = unpack(data, MAGIC, FORMAT_VERSION, "timing cache")
        entries = header.get("entries", {})
        if not isinstance(entries, dict):
            raise PlanFormatError("timing cache: 'entries' must be an object")
        for key, entry in entries.items():
            _check_entry(key, entry)
        return cls(entries)

    def __len__(self) -> int:
        return len(self.entries)


def _check_entry(key: str, entry: Any) -> None:
    """One entry, field by field: a crafted cache is refused naming the entry, never trusted."""
    where = f"timing cache entry {key[:40]!r}"
    if not isinstance(entry, dict) or not isinstance(entry.get("timings_ms"), dict):
        raise PlanFormatError(f"{where}: expected {{tactic, timings_ms, source}}")
    if not isinstance(entry.get("tactic"), int) or isinstance(entry.get("tactic"), bool) or entry["tactic"] < 0:
        raise PlanFormatError(f"{where}: 'tactic' must be a tactic id (a non-negative integer)")
    for tactic, ms in entry["timings_ms"].items():
        if not tactic.isdigit() or not isinstance(ms, (int, float)) or isinstance(ms, bool) or \
                not math.isfinite(ms) or ms < 0:
            raise PlanFormatError(f"{where}: timings_ms[{tactic!r}] must map a tactic id to milliseconds >= 0")
    if str(entry["tactic"]) not in entry["timings_ms"]:
        raise PlanFormatError(f"{where}: the chosen tactic {entry['tactic']} has no timing")
    if not isinstance(entry.get("source"), (str, type(None))):
        raise PlanFormatError(f"{where}: 'source' must be a TacticSource name or null")
    unknown = set(entry) - {"tactic", "timings_ms", "source"}
    if unknown:
        raise PlanFormatError(f"{where}: unknown field(s) {sorted(unknown)}")
