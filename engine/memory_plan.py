"""Activation memory planning: tensors whose lifetimes do not overlap share memory.

Lifetimes are step intervals [first write, last read]. Offsets come from a greedy best-fit: largest tensors
first, each at the lowest aligned offset that does not collide with an already placed tensor alive at the same
time. The builder reports the planned peak against the naive sum at the profile's max shapes; the runtime
reruns the same placement for the actual shapes (cheap, cached per shape set). Not a graph pass: it plans the
step list's buffers, after tactics are chosen.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .dtypes import nptype
from .enums import LayerType
from .errors import EngineError
from .graph import LoweredGraph
from .shuffle_views import view_roots

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
    Network inputs and outputs live in user buffers and host/constant tensors live on the host: not planned. A view
    layer's output (engine/shuffle_views.py) gets no storage: reading it keeps its root tensor alive instead."""
    excluded = set(graph.inputs) | set(graph.outputs)
    roots = view_roots(graph)
    life: dict[int, list[int]] = {}
    for step, spec in enumerate(graph.layers):
        if spec.host or spec.layer.type == LayerType.CONSTANT:
            continue
        for out in spec.outputs:
            if out not in excluded and out not in roots:
                life[out] = [step, step]
        for i in spec.inputs:
            i = roots.get(i, i)
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


# Bytes a build's trial run (or polyx's generated inputs) may allocate on the host; unset: the memory available
# now. Oversize work is refused with an error naming the layer or tensor before anything is allocated.
MEMORY_LIMIT_ENV = "POLYX_MEMORY_LIMIT"


def host_memory_limit() -> int:
    """$POLYX_MEMORY_LIMIT (bytes) when set, else MemAvailable from /proc/meminfo, else the free physical pages
    (no limit where neither can be read)."""
    text = os.environ.get(MEMORY_LIMIT_ENV)
    if text:
        try:
            return int(text)
        except ValueError:
            raise EngineError(f"{MEMORY_LIMIT_ENV}={text!r}: expected a number of bytes") from None
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return sys.maxsize


def device_memory_limit() -> int:
    """$POLYX_MEMORY_LIMIT (bytes) when set, else the GPU memory free now plus what CuPy's pool holds unused (the
    trial run of a GPU build allocates there)."""
    if os.environ.get(MEMORY_LIMIT_ENV):
        return host_memory_limit()
    import cupy

    free, _total = cupy.cuda.runtime.memGetInfo()
    return int(free) + int(cupy.get_default_memory_pool().free_bytes())


def tensor_bytes(graph: LoweredGraph, index: int, shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.float64)) * np.dtype(nptype(graph.tensors[index].dtype)).itemsize


def trial_run_peak(graph: LoweredGraph, shapes: Sequence[Sequence[int] | None]) -> tuple[int, int]:
    """(peak bytes, layer index at the peak) of a run that allocates each device layer's outputs (twice: the
    timing sweep gives candidates buffers of their own) and frees tensors after their last use. Computed in
    float64 element counts, so absurd shapes cannot overflow."""
    last_use = {i: step for step, spec in enumerate(graph.layers) for i in spec.inputs if i is not None}
    keep = set(graph.outputs)
    live = sum(tensor_bytes(graph, i, shapes[i]) for i in graph.inputs if shapes[i] is not None)
    peak, at = live, 0
    for step, spec in enumerate(graph.layers):
        if spec.host or spec.layer.type == LayerType.CONSTANT:
            continue
        outputs = sum(tensor_bytes(graph, o, shapes[o]) for o in spec.outputs if shapes[o] is not None)
        live += outputs
        if live + outputs > peak:
            peak, at = live + outputs, step
        for i in spec.inputs:
            if i is not None and last_use.get(i) == step and i not in keep and shapes[i] is not None:
                live -= tensor_bytes(graph, i, shapes[i])
    return peak, at
