"""Post-processing applied to every runner's outputs before they are compared (Polygraphy's `--postprocess`).

`top-K[,axis=A]` replaces an output by the indices of its K largest values along axis A (default: the last), in
descending order of value; ties keep the lower index first, so both sides order equal values the same way.
A spec applies to every output (`top-5`) or to one (`out0:top-5`); a named spec wins over the global one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import PolyxError

_TOP_K = re.compile(r"top-(?P<k>\d+)(?:,\s*axis=(?P<axis>-?\d+))?")


@dataclass(frozen=True)
class TopK:
    k: int
    axis: int = -1

    def __call__(self, name: str, array: np.ndarray) -> np.ndarray:
        values = np.asarray(array)
        if values.ndim == 0:
            raise PolyxError(f"--postprocess top-{self.k}: output '{name}' is a scalar; top-K needs an axis")
        if not -values.ndim <= self.axis < values.ndim:
            raise PolyxError(f"--postprocess top-{self.k},axis={self.axis}: output '{name}' has rank {values.ndim}")
        k = min(self.k, values.shape[self.axis])
        order = np.argsort(-values.astype(np.float64), axis=self.axis, kind="stable")
        return np.take(order, np.arange(k), axis=self.axis).astype(np.int64)

    def describe(self) -> str:
        return f"top-{self.k}" + (f",axis={self.axis}" if self.axis != -1 else "")


Postprocess = dict[str, TopK]  # output name -> function; "" for every output


def parse_postprocess(values: list[str] | None) -> Postprocess:
    """`["top-5", "out0:top-3,axis=1"]` -> {"": TopK(5), "out0": TopK(3, 1)}."""
    specs: Postprocess = {}
    for value in values or []:
        text = value.strip()
        name, function = "", text
        if not _TOP_K.fullmatch(text):
            name, _, function = text.rpartition(":")
        match = _TOP_K.fullmatch(function.strip())
        if match is None:
            raise PolyxError(f"--postprocess '{value}': expected [OUTPUT:]top-K[,axis=A] (e.g. top-5, "
                             "out0:top-5,axis=1)")
        if int(match["k"]) < 1:
            raise PolyxError(f"--postprocess '{value}': K must be at least 1")
        specs[name.strip()] = TopK(int(match["k"]), int(match["axis"] or -1))
    return specs


def apply_postprocess(outputs: dict[str, np.ndarray], specs: Postprocess) -> dict[str, np.ndarray]:
    """The outputs with each post-processing function applied; outputs without one are unchanged."""
    if not specs:
        return outputs
    return {name: specs[name](name, array) if name in specs else specs[""](name, array) if "" in specs else array
            for name, array in outputs.items()}


def unknown_outputs(specs: Postprocess, names: set[str]) -> list[str]:
    """Named specs that match no output (a likely typo)."""
    return sorted(name for name in specs if name and name not in names)
