"""Activation memory planning: tensors whose lifetimes do not overlap share memory.

Lifetimes are step intervals [first write, last read]. Offsets come from a greedy best-fit: largest tensors
first, each at the lowest aligned offset that does not collide with an already placed tensor alive at the same
time. The builder reports the planned peak against the naive sum at the profile's max shapes; the runtime
reruns the same placement for the actual shapes (cheap, cached per shape set). Not a graph pass: it plans the
step list's buffers, after tactics are chosen.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .dtypes import nptype
from .enums import LayerType
from .graph import LoweredGraph

ALIGNMENT = 256


@dataclass(frozen=True)
class MemoryPlan:
    offsets: list[int]
    peak_bytes: int
    naive_bytes: int


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def plan_activation_memory(sizes: Sequence[int], lifetimes: Sequence[tuple[int, int]]) -> MemoryPlan:
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], lifetimes[i][0], i))
    offsets = [0] * len(sizes)
    placed: list[int] = []
    peak = 0
    for i in order:
        size = _align(max(int(sizes[i]), 1))
        start, end = lifetimes[i]
        busy = sorted((offsets[j], offsets[j] + _align(max(int(sizes[j]), 1))) for j in placed
                      if not (lifetimes[j][1] < start or end < lifetimes[j][0]))
        offset = 0
        for lo, hi in busy:
            if offset + size <= lo:
                break
            offset = max(offset, hi)
        offsets[i] = offset
        placed.append(i)
        peak = max(peak, offset + size)
    return MemoryPlan(offsets, peak, sum(_align(max(int(s), 1)) for s in sizes))


def device_lifetimes(graph: LoweredGraph) -> dict[int, tuple[int, int]]:
    """[first step, last step] of each device-resident intermediate tensor, by step index in `graph.layers`.
    Network inputs and outputs live in user buffers and host/constant tensors live on the host: not planned."""
    excluded = set(graph.inputs) | set(graph.outputs)
    life: dict[int, list[int]] = {}
    for step, spec in enumerate(graph.layers):
        if spec.host or spec.layer.type == LayerType.CONSTANT:
            continue
        for out in spec.outputs:
            if out not in excluded:
                life[out] = [step, step]
        for i in spec.inputs:
            if i is not None and i in life:
                life[i][1] = step
    return {k: (v[0], v[1]) for k, v in life.items()}


def tensor_nbytes(graph: LoweredGraph, shapes, index: int) -> int:
    return int(np.prod(shapes[index], dtype=np.int64)) * np.dtype(nptype(graph.tensors[index].dtype)).itemsize


def plan_graph_memory(graph: LoweredGraph, shapes, lifetimes: dict[int, tuple[int, int]]) -> tuple[list[int],
                                                                                                   MemoryPlan]:
    """The planned tensors (by index) and their placement for these concrete shapes."""
    planned = sorted(lifetimes)
    return planned, plan_activation_memory([tensor_nbytes(graph, shapes, i) for i in planned],
                                           [lifetimes[i] for i in planned])
