"""Compare the engine as built, layer by layer, streaming: no tensor is marked as an output and nothing is rebuilt.

For each set of inputs the tensors to compare (every layer-boundary tensor of the engine that has an ONNX tensor of
the same name) are split into chunks whose onnxruntime values fit `budget_bytes`. Per chunk, onnxruntime computes
that chunk's reference tensors; then the engine runs with a debug listener that, right after the layer writing a
chunk tensor, copies it to the host, compares it with its reference and lets both go. What is held at any time is
one chunk of reference tensors plus the engine tensor being compared. A model whose tensors all fit the budget
takes one onnxruntime run and one engine run per iteration; a tighter budget trades runs for memory.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.dtypes import nptype
from engine.enums import TensorIOMode

from ..errors import PolyxError
from ..runners.onnxrt_intermediates import OnnxrtIntermediates
from .comparator import Comparator, TensorComparison
from .engine_provenance import EngineProvenance

DEFAULT_BUDGET_BYTES = 1 << 30


@dataclass
class StreamStats:
    """How the comparison ran: chunks and runs per iteration, and the most reference bytes held at once."""

    chunks: int = 0
    engine_runs: int = 0
    onnxrt_runs: int = 0
    peak_held_bytes: int = 0


@dataclass
class EngineLayerComparison:
    comparisons: list[TensorComparison] = field(default_factory=list)
    stats: StreamStats = field(default_factory=StreamStats)
    not_in_onnxrt: list[str] = field(default_factory=list)  # boundary tensors onnxruntime cannot output
    stopped_early: bool = False  # fail_fast stopped at the first failed tensor


class _StopAtFailure(Exception):
    """Raised by the listener after the first failed tensor with `fail_fast`: the engine run ends there."""


class _ComparingListener:
    """Compares each watched engine tensor with its reference as soon as the engine writes it, then drops both."""

    def __init__(self, backend: Any, reference: dict[str, np.ndarray], compare: Callable[[str, Any, Any], None],
                 stats: StreamStats, quantized: dict[str, tuple[str, float]]):
        self.backend, self.reference, self.compare, self.stats = backend, reference, compare, stats
        self.quantized = quantized
        self.held = sum(a.nbytes for a in reference.values())

    def process_debug_tensor(self, name: str, array: Any, layer: str) -> None:
        onnx_name, scale = self.quantized.get(name, (name, None))
        expected = self.reference.pop(onnx_name, None)
        if expected is None:
            return
        value = np.asarray(self.backend.to_host(array))
        if scale is not None:  # an INT8 layer's stored output: compare the values it stands for
            value = value.astype(np.float32) * np.float32(scale)
        self.stats.peak_held_bytes = max(self.stats.peak_held_bytes, self.held + value.nbytes)
        self.compare(onnx_name, expected, value)
        self.held -= expected.nbytes


def compare_engine_layers(engine: Any, model_path: str | os.PathLike, provenance: EngineProvenance,
                          feeds: list[dict[str, np.ndarray]], comparator: Comparator, runners: tuple[str, str],
                          skip: set[str] = frozenset(), budget_bytes: int = DEFAULT_BUDGET_BYTES,
                          providers: tuple[str, ...] = ("CPUExecutionProvider",), profile_index: int = 0,
                          on_tensor: Callable[[], None] | None = None,
                          fail_fast: bool = False) -> EngineLayerComparison:
    """Compare every layer-boundary tensor of `engine` (except `skip`, e.g. the already compared model outputs)
    with onnxruntime's value of the same ONNX tensor, for each iteration of `feeds`. `fail_fast`: stop at the
    first tensor over tolerance (the rest of that engine run, later chunks and iterations are skipped)."""
    if budget_bytes <= 0:
        raise PolyxError(f"the memory budget for intermediate tensors must be > 0 bytes, got {budget_bytes}")
    result = EngineLayerComparison()
    boundary = [t for group in provenance.layers for t in group.outputs if provenance.onnx_name(t) not in skip and (
        t in provenance.quantized or (t in provenance.placements and provenance.placements[t].where == "boundary"))]
    context = engine.create_execution_context()
    context.set_optimization_profile_async(profile_index)
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [name for name in names if engine.get_tensor_mode(name) == TensorIOMode.INPUT]
    with OnnxrtIntermediates(model_path, providers) as onnxrt:
        result.not_in_onnxrt = [t for t in boundary if provenance.onnx_name(t) not in onnxrt.available]
        wanted = [t for t in boundary if provenance.onnx_name(t) in onnxrt.available]
        for iteration, iteration_feeds in enumerate(feeds):
            engine_feeds = {name: iteration_feeds[name] for name in inputs if name in iteration_feeds}
            for name, array in engine_feeds.items():
                context.set_input_shape(name, array.shape)
            chunks = _chunks(wanted, context.debug_tensor_shapes(), budget_bytes)
            result.stats.chunks = max(result.stats.chunks, len(chunks))

            def compare(name: str, expected: np.ndarray, value: np.ndarray, iteration: int = iteration) -> None:
                comparison = comparator.compare_tensor(name, expected, value, iteration, runners)
                result.comparisons.append(comparison)
                if on_tensor is not None:
                    on_tensor()
                if fail_fast and not comparison.passed:
                    raise _StopAtFailure

            for chunk in chunks:
                reference = onnxrt.run(iteration_feeds, [provenance.onnx_name(t) for t in chunk])
                result.stats.onnxrt_runs += 1
                listener = _ComparingListener(engine.backend, reference, compare, result.stats, provenance.quantized)
                context.set_debug_listener(listener, chunk)
                result.stats.engine_runs += 1
                try:
                    with np.errstate(all="ignore"):
                        context.execute(engine_feeds)
                except _StopAtFailure:
                    result.stopped_early = True
                    break
                if reference:  # a tensor the engine did not hand over (should not happen: it was at a boundary)
                    raise PolyxError(f"engine tensor(s) {', '.join(reference)} were not produced by any layer")
            context.set_debug_listener(None)
            if result.stopped_early:
                break
    order = {provenance.onnx_name(name): index for index, name in enumerate(boundary)}
    result.comparisons.sort(key=lambda c: (c.iteration, order[c.name]))
    return result


def _chunks(names: list[str], shapes: dict[str, tuple[tuple[int, ...], Any]], budget: int) -> list[list[str]]:
    """Consecutive runs of `names` whose reference tensors (at least float32-wide) fit `budget` bytes; a tensor
    larger than the budget is a chunk of its own."""
    chunks: list[list[str]] = [[]]
    used = 0
    for name in names:
        shape, dtype = shapes[name]
        size = int(np.prod(shape, dtype=np.int64)) * max(np.dtype(nptype(dtype)).itemsize, 4)
        if chunks[-1] and used + size > budget:
            chunks.append([])
            used = 0
        chunks[-1].append(name)
        used += size
    return [chunk for chunk in chunks if chunk]
