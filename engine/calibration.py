"""Implicit INT8 calibration: run the FP32 network over the calibrator's batches and histogram |x| per tensor.

The network runs on the host with the op registry's reference kernels (the FP32 values the builder's other
tactics reproduce), one node at a time, each intermediate released after its last reader. Thresholds are computed
only for the tensors the ImplicitQuantization pass asks for (`DynamicRanges.get`), since the entropy search costs
a few milliseconds per tensor.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .calibrator import AbsHistogram, IInt8Calibrator, dynamic_range
from .dtypes import nptype
from .enums import LayerType
from .errors import BuildError
from .ir import Graph
from .ops.base import layer_impl


class DynamicRanges:
    """amax per tensor name: from a cache or user-set ranges (`fixed`), else computed from histograms on demand.
    `used` records what was asked for, which is what the builder writes back to the calibration cache."""

    def __init__(self, fixed: dict[str, float] | None = None, histograms: dict[str, AbsHistogram] | None = None,
                 calibrator: IInt8Calibrator | None = None):
        self.fixed = dict(fixed or {})
        self.histograms = histograms or {}
        self.calibrator = calibrator
        self.used: dict[str, float] = {}

    def get(self, name: str) -> float | None:
        if name in self.used:
            return self.used[name]
        amax = self.fixed.get(name)
        if amax is None and name in self.histograms and self.histograms[name].amax > 0:
            amax = dynamic_range(self.histograms[name], self.calibrator)
        if amax is not None and amax > 0:
            self.used[name] = float(amax)
            return float(amax)
        return None


def calibrate(graph: Graph, calibrator: IInt8Calibrator) -> dict[str, AbsHistogram]:
    """Histograms of every floating tensor the graph computes, over all of the calibrator's batches."""
    names = [v.name for v in graph.inputs]
    histograms: dict[str, AbsHistogram] = {}
    batches = 0
    while True:
        try:
            batch = calibrator.get_batch(names)
        except Exception as exc:
            raise BuildError(f"the INT8 calibrator's get_batch raised {type(exc).__name__}: {exc}") from exc
        if batch is None or (isinstance(batch, (list, tuple)) and not batch):
            break
        feeds = _checked_batch(graph, batch)
        for name, value in _run_on_host(graph, feeds):
            if value.dtype.kind == "f":
                histograms.setdefault(name, AbsHistogram()).add(value)
        batches += 1
    if batches == 0:
        raise BuildError("the INT8 calibrator returned no batch (get_batch gave None at once): calibration needs at "
                         "least one batch")
    return histograms


def _checked_batch(graph: Graph, batch: Any) -> dict[int, np.ndarray]:
    if not isinstance(batch, (list, tuple)) or len(batch) != len(graph.inputs):
        raise BuildError(f"the INT8 calibrator's get_batch must return one array per network input "
                         f"({[v.name for v in graph.inputs]}), got {type(batch).__name__}")
    feeds = {}
    for value, array in zip(graph.inputs, batch):
        array = np.asarray(array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else array)
        expected = np.dtype(nptype(value.dtype))
        if array.dtype != expected:
            raise BuildError(f"calibration batch for input '{value.name}': dtype {array.dtype}, the network "
                             f"expects {expected}")
        shape = value.shape or ()
        if array.ndim != len(shape) or any(d >= 0 and d != a for d, a in zip(shape, array.shape)):
            raise BuildError(f"calibration batch for input '{value.name}': shape {array.shape} does not fit the "
                             f"network's {tuple(shape)}")
        feeds[id(value)] = array
    return feeds


def _run_on_host(graph: Graph, feeds: dict[int, np.ndarray]):
    """Yield (tensor name, value) for every tensor the graph computes, in order, with reference kernels."""
    last_read = {id(v): i for i, node in enumerate(graph.nodes) for v in node.inputs if v is not None}
    keep = {id(v) for v in graph.outputs}
    values = dict(feeds)
    for value in graph.inputs:
        yield value.name, values[id(value)]
    with np.errstate(all="ignore"):
        for step, node in enumerate(graph.nodes):
            if node.type == LayerType.CONSTANT:
                values[id(node.outputs[0])] = node.params["weights"]
                continue
            ins = [None if v is None else values[id(v)] for v in node.inputs]
            for value, array in zip(node.outputs, layer_impl(node.type).compute(node, ins, np)):
                values[id(value)] = np.asarray(array)
                yield value.name, values[id(value)]
            for v in node.inputs:
                if v is not None and last_read.get(id(v)) == step and id(v) not in keep:
                    values.pop(id(v), None)
