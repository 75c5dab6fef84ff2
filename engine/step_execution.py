"""Running a binding's steps: the hot loop, with what observes it, and the stages after data-dependent layers.

The loop is flat, with no lookups, one call per device layer, and names the layer that failed. Its observers
(an ExecutionContext's settings) cost nothing when they are off: a profiler's per-layer times, a synchronization
after every layer (BuilderFlag.DEBUG engines), NVTX ranges, a debug listener that sees the watched tensors.

A profiler on a GPU engine gets each layer's GPU time by default: after the layer ran, its kernels are replayed as
a CUDA graph and timed (`backend.time_runs`, as the builder times tactics). The layer's wall time around a
synchronization, the other choice, also counts the host's Python that enqueues it, which on a GPU is often more
than the kernels and would say little about where the GPU's time goes. A layer's outputs are the same after the
replays: a step never writes memory it reads (engine/memory_plan.py gives no two tensors of one step the same
bytes). Data-dependent layers (NonZero, NMS: they read their output sizes back to the host, which no graph
captures, and they replace their output arrays) report their synchronized wall time.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from .binding import Binding, next_stage
from .debug_listener import IDebugListener
from .enums import LayerType
from .errors import ExecutionError
from .profiler import IProfiler
from .steps import run_step

if TYPE_CHECKING:
    from .cuda_engine import Engine


@dataclass(frozen=True)
class StepObservers:
    """What watches a run layer by layer."""

    profiler: IProfiler | None = None
    debug_sync: bool = False  # synchronize after every layer: a GPU fault names its layer
    nvtx: tuple | None = None  # (push, pop) of an NVTX range per layer (nvtx_ranges.layer_ranges)
    listener: IDebugListener | None = None
    watched: frozenset[int] | set[int] = frozenset()  # the tensor indices reported to the listener
    device_time: bool = True  # a profiler on a GPU engine gets each layer's GPU time (module docstring)


# Replays of a layer timed for the profiler: the median of these is its reported time.
PROFILE_REPLAYS = 3


def run_steps(engine: Engine, binding: Binding, slots: list[Any], host_outputs: list, stream: Any,
              observers: StepObservers) -> None:
    """The hot loop: no name lookups, one call per device layer. A failing layer is named in the error.
    `host_outputs`: (user buffer, known value) pairs of outputs known without running, copied at the end."""
    backend, profiler, debug_sync, nvtx = engine.backend, observers.profiler, observers.debug_sync, observers.nvtx
    xp, workspace = backend.xp, binding.workspace
    replay = profiler is not None and observers.device_time and backend.supports_cuda_graphs
    listener, watched = observers.listener, observers.watched
    if listener is not None:
        _report_host_tensors(engine, listener, watched, slots)
    for step in binding.steps:
        start = time.perf_counter() if profiler is not None else 0.0
        if nvtx is not None:
            nvtx[0](step.name)
        try:
            run_step(step, slots, workspace, xp)
            if debug_sync:
                backend.synchronize(stream)
        except Exception as exc:
            raise ExecutionError(f"layer '{step.name}': {type(exc).__name__}: {exc}") from exc
        finally:
            if nvtx is not None:
                nvtx[1]()
        if replay and not step.data_dependent:
            samples = backend.time_runs(partial(run_step, step, slots, workspace, xp), PROFILE_REPLAYS)
            profiler.report_layer_time(step.name, statistics.median(samples))
        elif profiler is not None:
            backend.synchronize(stream)
            profiler.report_layer_time(step.name, (time.perf_counter() - start) * 1e3)
        if listener is not None:
            tensors = engine.graph.tensors
            for o in step.outputs:
                if o in watched:
                    listener.process_debug_tensor(tensors[o].name, slots[o], step.name)
    for array, value in host_outputs:
        xp.copyto(array, value, casting="unsafe")


def run_stages(engine: Engine, binding: Binding, slots: list[Any], host_outputs: list, stream: Any,
               observers: StepObservers) -> dict[int, Any]:
    """Run stage after stage: each ends with a data-dependent layer whose output sizes pick the next one. Returns
    the outputs sized only after such a layer ran, by tensor index (their values in the context's memory)."""
    graph = engine.graph
    stage, data_shapes = binding, {}
    while True:
        run_steps(engine, stage, slots, [], stream, observers)
        if stage.pending is None:
            break
        for o in graph.layers[stage.pending].outputs:
            data_shapes[o] = tuple(int(d) for d in slots[o].shape)
        stage = next_stage(engine, stage, data_shapes)
        for i, value in enumerate(stage.slots):
            if value is not None and slots[i] is None:
                slots[i] = value
    xp = engine.backend.xp
    for array, value in host_outputs:
        xp.copyto(array, value, casting="unsafe")
    return {i: slots[i] for i in binding.late}


def _report_host_tensors(engine: Engine, listener: IDebugListener, watched: frozenset[int] | set[int],
                         slots: list[Any]) -> None:
    """Host layers (shape arithmetic) ran when the input shapes were bound; their outputs go first."""
    graph = engine.graph
    for spec in graph.layers:
        if spec.host and spec.layer.type != LayerType.CONSTANT:
            for o in spec.outputs:
                if o in watched and slots[o] is not None:
                    listener.process_debug_tensor(graph.tensors[o].name, slots[o], spec.layer.name)
