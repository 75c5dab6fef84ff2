"""Seeded input generation (Polygraphy's DataLoader idea): same seed, same inputs, on every machine.

Defaults: floats uniform in [0, 1), integers in [0, 1] (safe as indices and masks), booleans random; ranges per
input with `val_ranges` ({name: (lo, hi)}; the name "" sets the default for all inputs). Dynamic dimensions take
`shapes[name]` or else 1. A user script (`file.py:function`) can supply the feeds instead.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Iterator

import numpy as np

from engine.memory_plan import MEMORY_LIMIT_ENV, host_memory_limit

from ..errors import PolyxError
from ..user_script import load_function, script_path

InputMeta = dict[str, tuple[tuple, np.dtype]]


class DataLoader:
    def __init__(self, input_meta: InputMeta, seed: int = 1, val_ranges: dict[str, tuple[float, float]] | None = None,
                 iterations: int = 1, shapes: dict[str, tuple[int, ...]] | None = None, script: str | None = None):
        self.input_meta = {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in input_meta.items()}
        self.seed = int(seed)
        self.val_ranges = dict(val_ranges or {})
        self.iterations = int(iterations)
        self.shapes = {k: tuple(v) for k, v in (shapes or {}).items()}
        self.script = script
        for name in list(self.val_ranges) + list(self.shapes):
            if name and name not in self.input_meta:
                raise PolyxError(f"'{name}' is not an input of the model (inputs: {', '.join(self.input_meta)})")
        for name, (lo, hi) in self.val_ranges.items():
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise PolyxError(f"value range for '{name or 'all inputs'}': bounds must be finite numbers, got "
                                 f"[{lo}, {hi}]")
            if lo > hi:
                raise PolyxError(f"value range for '{name or 'all inputs'}': low {lo} is above high {hi}")
        if self.iterations < 1:
            raise PolyxError(f"iterations must be >= 1, got {self.iterations}")

    def shape_of(self, name: str) -> tuple[int, ...]:
        declared = self.input_meta[name][0]
        if name in self.shapes:
            shape = self.shapes[name]
            if len(shape) != len(declared) or any(d not in (-1, None) and d != s for d, s in zip(declared, shape)):
                raise PolyxError(f"input '{name}': shape {shape} does not match the model's {declared}")
            return shape
        return tuple(1 if d in (-1, None) else int(d) for d in declared)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        if self.script:
            yield from self._from_script()
            return
        for iteration in range(self.iterations):
            yield {name: self._generate(name, iteration) for name in self.input_meta}

    def __len__(self) -> int:
        return self.iterations

    def _generate(self, name: str, iteration: int) -> np.ndarray:
        shape, dtype = self.shape_of(name), self.input_meta[name][1]
        # NumPy draws in 64-bit before the cast: count both, and refuse before allocating.
        needed = int(np.prod(shape, dtype=np.float64)) * (8 + dtype.itemsize)
        limit = host_memory_limit()
        if needed > limit:
            raise PolyxError(f"input '{name}': generating shape {list(shape)} of {dtype} needs {needed:,} bytes, more "
                             f"than the {limit:,} available (pass smaller shapes, or set {MEMORY_LIMIT_ENV})")
        rng = np.random.default_rng([self.seed, zlib.crc32(name.encode()), iteration])
        floating = dtype.kind == "f" or dtype.name == "bfloat16"  # ml_dtypes' bfloat16 has kind "V"
        lo, hi = self.val_ranges.get(name, self.val_ranges.get("", (0.0, 1.0) if floating else (0, 1)))
        if floating:
            return rng.uniform(lo, hi, size=shape).astype(dtype)
        if dtype.kind == "b":
            return rng.integers(0, 2, size=shape).astype(bool)
        return rng.integers(int(np.floor(lo)), int(np.floor(hi)) + 1, size=shape).astype(dtype)

    def _from_script(self) -> Iterator[dict[str, np.ndarray]]:
        fn = load_function(self.script, "data loader script")
        path = script_path(self.script)
        for index, feeds in enumerate(fn()):
            if not isinstance(feeds, dict):
                raise PolyxError(f"data loader script {path}: iteration {index} is a {type(feeds).__name__}, "
                                 "expected a dict of input name -> array")
            yield {name: np.asarray(value) for name, value in feeds.items()}
