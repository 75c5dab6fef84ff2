"""Convolutions with fused epilogues as cuDNN frontend graphs.

CuPy has no cuDNN bindings, so the frontend's Python graph API is the way in (loaded by backends/cudnn_frontend.py).
One graph per convolution geometry (shapes, data type, padding, strides, dilations, groups, which epilogue parts):
conv_fprop, then bias, residual add and activation as pointwise nodes, so cuDNN's runtime-fusion engines run them
as one kernel where they can. cuDNN's heuristics (modes A, then FALLBACK) rank engine configurations; each engine is
a tactic of its own (tactics/gpu_cudnn_conv.py), identified by cuDNN's engine id, which is what a plan records.

Nothing here imports cudnn or CuPy at module import: every machine imports this module.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from .cudnn_frontend import (
    MAX_ENGINE_ID,
    CudnnPlanError,
    GraphCache,
    contiguous_strides,
    frontend,
    thread_handle,
    version_string,
)

# Engines built and timed per convolution: the first this many distinct engines of the heuristics' ranking that
# build (each build may compile a runtime-fusion kernel, so the count bounds build time).
CANDIDATE_ENGINES = 4
# Numerical notes of engines left out (names of cudnn.numerical_note; those a cuDNN lacks are skipped). FP32 layers
# are IEEE as everywhere in the engine (FP32 engines match onnxruntime within 1e-4): no TF32 tensor cores, no
# down-converted inputs, no FFT or Winograd transforms. FP16 layers accumulate in float32.
FP32_EXCLUDED_NOTES = ("TENSOR_CORE", "DOWN_CONVERT_INPUTS", "FFT", "WINOGRAD", "WINOGRAD_TILE_4x4",
                       "WINOGRAD_TILE_6x6", "WINOGRAD_TILE_13x13")
FP16_EXCLUDED_NOTES = ("REDUCED_PRECISION_REDUCTION",)


@dataclass(frozen=True)
class ConvSpec:
    """What one cuDNN graph is built for: NCHW-ordered tensors of these shapes (contiguous, or channels-last
    throughout; weights KCRS with C the channels per group, so cuDNN reads the groups from X's and W's channels),
    storage type `dtype`
    ("float32" or "float16", float32 accumulation), the window, and the fused epilogue: a bias, a residual
    (same shape as the output) and an activation (the name of a pointwise builder of cudnn.pygraph with its
    keyword parameters)."""

    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    dtype: str
    pre: tuple[int, ...]
    post: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    bias: bool
    residual: bool
    activation: tuple[str, tuple[tuple[str, float], ...]] | None
    # X, W, the residual and Y channels-last (NHWC / KRSC memory, the dims still NCHW-ordered: how the frontend
    # expresses layouts): what cuDNN's runtime-fusion and FP16 tensor-core engines want (tensor_formats.py)
    channels_last: bool = False


def channels_last_strides(shape: tuple[int, ...]) -> list[int]:
    """Element strides of an NCHW-ordered 4-D tensor stored N, H, W, C (the channels innermost)."""
    n, c, h, w = (max(int(d), 1) for d in shape)
    return [h * w * c, 1, w * c, c]


class ConvGraph:
    """One spec's cuDNN graph, its heuristics' ranking and the engine plans built so far (by engine id).

    A plan is built once (before any CUDA-graph capture: the first run at a shape builds) and then executed by
    index with the calling thread's handle bound to the current CuPy stream."""

    def __init__(self, spec: ConvSpec):
        cudnn = frontend()
        self.spec = spec
        self._lock = threading.Lock()
        io = cudnn.data_type.HALF if spec.dtype == "float16" else cudnn.data_type.FLOAT
        fp32 = cudnn.data_type.FLOAT
        graph = cudnn.pygraph(io_data_type=io, intermediate_data_type=fp32, compute_data_type=fp32,
                              handle=thread_handle())
        strides = channels_last_strides if spec.channels_last else contiguous_strides
        self.tensors: dict[str, Any] = {
            "x": graph.tensor(name="X", dim=list(spec.x_shape), stride=strides(spec.x_shape), data_type=io),
            "w": graph.tensor(name="W", dim=list(spec.w_shape), stride=strides(spec.w_shape), data_type=io)}
        y = graph.conv_fprop(image=self.tensors["x"], weight=self.tensors["w"], pre_padding=list(spec.pre),
                             post_padding=list(spec.post), stride=list(spec.strides),
                             dilation=list(spec.dilations), compute_data_type=fp32, name="conv")
        maps = spec.w_shape[0]
        if spec.bias:
            self.tensors["bias"] = graph.tensor(name="B", dim=[1, maps, 1, 1], stride=[maps, 1, 1, 1],
                                                data_type=io)
            y = graph.bias(input=y, bias=self.tensors["bias"], name="bias")
        if spec.residual:
            self.tensors["residual"] = graph.tensor(name="R", dim=list(spec.y_shape), stride=strides(spec.y_shape),
                                                    data_type=io)
            y = graph.add(a=y, b=self.tensors["residual"], name="residual")
        if spec.activation is not None:
            op, params = spec.activation
            y = getattr(graph, op)(input=y, name="activation", **dict(params))
        y.set_output(True).set_data_type(io)
        y.set_dim(list(spec.y_shape)).set_stride(strides(spec.y_shape))
        self.tensors["y"] = y
        graph.validate()
        graph.build_operation_graph()
        graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
        names = FP32_EXCLUDED_NOTES if io == fp32 else FP16_EXCLUDED_NOTES
        graph.deselect_numeric_notes([getattr(cudnn.numerical_note, name) for name in names
                                      if hasattr(cudnn.numerical_note, name)])
        graph.check_support()
        self.graph = graph
        self._ranking: list[tuple[int, int]] | None = None  # (engine id, plan index), heuristics order
        self._built: dict[int, int] = {}  # engine id -> plan index
        self._failures: dict[int, str] = {}  # engine id -> why it did not build

    def ranking(self) -> list[tuple[int, int]]:
        """(engine id, plan index) of every backend engine configuration the heuristics proposed, best first.
        Entries that name no backend engine (the frontend's own Python engines, a delegating entry) are left out:
        they need packages the GPU machine lacks and do not record a replayable identity."""
        if self._ranking is None:
            ranking = []
            for index in range(self.graph.get_execution_plan_count()):
                try:
                    engine_id, _knobs = self.graph.get_engine_and_knobs_at_index(index)
                except NotImplementedError:
                    continue
                if 0 <= int(engine_id) < MAX_ENGINE_ID:
                    ranking.append((int(engine_id), index))
            self._ranking = ranking
        return self._ranking

    def _try_build(self, engine_id: int, index: int) -> bool:
        try:
            self.graph.build_plan_at_index(index)
        except Exception as exc:  # noqa: BLE001 - a decline (not supported, deselected by a note) skips the entry
            self._failures[engine_id] = f"{type(exc).__name__}: {exc}"
            return False
        self._built[engine_id] = index
        return True

    def candidate_engines(self) -> list[int]:
        """The first CANDIDATE_ENGINES distinct engines of the ranking that build (each at its best-ranked
        configuration), best first."""
        with self._lock:
            for engine_id, index in self.ranking():
                if len(self._built) >= CANDIDATE_ENGINES:
                    break
                if engine_id not in self._built and engine_id not in self._failures:
                    self._try_build(engine_id, index)
            ranked = dict.fromkeys(engine_id for engine_id, _ in self.ranking())
            return [engine_id for engine_id in ranked if engine_id in self._built][:CANDIDATE_ENGINES]

    def plan_index(self, engine_id: int, ranked_only: bool = False) -> int | None:
        """The built plan of `engine_id`: the heuristics' configurations of that engine in order, else (unless
        `ranked_only`, which answers None) the engine with its default knobs (the frontend's replay entry). Raises
        CudnnPlanError naming the engine."""
        with self._lock:
            if engine_id in self._built:
                return self._built[engine_id]
            for candidate, index in self.ranking():
                if candidate == engine_id and self._try_build(engine_id, index):
                    return index
            if ranked_only:
                return None
            try:
                self.graph.create_execution_plan(engine_id, {})
                index = self.graph.get_execution_plan_count() - 1
            except Exception as exc:  # noqa: BLE001
                self._failures[engine_id] = f"{type(exc).__name__}: {exc}"
            else:
                if self._try_build(engine_id, index):
                    return index
            proposed = sorted({e for e, _ in self.ranking()})
            raise CudnnPlanError(f"cuDNN {version_string()} cannot build engine {engine_id} for this convolution "
                                 f"({self._failures.get(engine_id, 'not proposed')}; its heuristics propose "
                                 f"engines {proposed})")

    def workspace_bytes(self, engine_id: int) -> int:
        index = self.plan_index(engine_id)
        with self._lock:
            return int(self.graph.get_workspace_size_plan_at_index(index))

    def execute(self, engine_id: int, pointers: dict[str, int], workspace: int) -> None:
        """Enqueue the engine's plan on the current CuPy stream; `pointers` maps "x", "w", "bias", "residual", "y"
        (those in the graph) to device addresses."""
        import cupy

        cudnn = frontend()
        index = self.plan_index(engine_id)
        handle = thread_handle()
        pack = {self.tensors[name]: int(pointer) for name, pointer in pointers.items() if name in self.tensors}
        with self._lock:
            cudnn.set_stream(handle, cupy.cuda.get_current_stream().ptr)
            self.graph.execute_plan_at_index(pack, int(workspace), index, handle)


CONV_GRAPHS = GraphCache("convolution")


def conv_graph(spec: ConvSpec) -> ConvGraph:
    """The convolution graph for `spec` (GraphCache.get)."""
    return CONV_GRAPHS.get(spec, ConvGraph)
