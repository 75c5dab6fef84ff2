"""Scaled dot-product attention as one cuDNN frontend graph (`graph.sdpa`, cuDNN's fused flash attention), for the
ATTENTION layer's cuDNN tactic (tactics/gpu_cudnn_attention.py).

One graph per SdpaSpec: the logical (batch, heads, rows, dims) operands given by dims + element strides (so the
layer's operand permutations become strides, nothing is copied), the storage type, the scale, and the mask as
either cuDNN's own causal mask or an additive bias broadcast through zero strides. cuDNN's heuristics (modes A,
then FALLBACK) rank engine configurations; the first backend engine that builds is kept (entries that name no
backend engine, the frontend's Python engines, are left out as for convolutions: they need packages the GPU machine
lacks). The frontend import, the libcudnn preload and the per-thread handles are backends/cudnn_frontend.py's.

Nothing here imports cudnn or CuPy at module import: every machine imports this module.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from .cudnn_frontend import MAX_ENGINE_ID, CudnnPlanError, GraphCache, frontend, thread_handle, version_string

Strides = tuple[int, int, int, int]


@dataclass(frozen=True)
class SdpaSpec:
    """What one cuDNN SDPA graph is built for: (batch, heads, Sq, Sk, D, Dv), element strides of the logical q
    (B, H, Sq, D), k (B, H, Sk, D), v (B, H, Sk, Dv) and output (B, H, Sq, Dv), the storage type ("float16" or
    "bfloat16"; float32 softmax and accumulation), the scale, cuDNN's top-left causal mask, and an additive bias
    of dims (B, H, Sq, Sk) with `bias_strides` (0 along the axes the mask broadcasts over), or None. With `stats`,
    the graph also writes its softmax statistics (float32 (B, H, Sq, 1), contiguous): they tell which rows a mask
    filled with -inf."""

    dims: tuple[int, int, int, int, int, int]
    q_strides: Strides
    k_strides: Strides
    v_strides: Strides
    o_strides: Strides
    dtype: str
    scale: float
    causal: bool
    bias_strides: Strides | None
    stats: bool = False


class SdpaGraph:
    """One spec's graph and the plan of the first backend engine that builds; executed with the calling thread's
    handle bound to the current CuPy stream (capturable: the plan is built before any capture)."""

    def __init__(self, spec: SdpaSpec):
        cudnn = frontend()
        self.spec = spec
        self._lock = threading.Lock()
        io = cudnn.data_type.HALF if spec.dtype == "float16" else cudnn.data_type.BFLOAT16
        fp32 = cudnn.data_type.FLOAT
        graph = cudnn.pygraph(io_data_type=io, intermediate_data_type=fp32, compute_data_type=fp32,
                              handle=thread_handle())
        b, h, sq, sk, d, dv = spec.dims
        self.tensors: dict[str, Any] = {
            "q": graph.tensor(name="Q", dim=[b, h, sq, d], stride=list(spec.q_strides), data_type=io),
            "k": graph.tensor(name="K", dim=[b, h, sk, d], stride=list(spec.k_strides), data_type=io),
            "v": graph.tensor(name="V", dim=[b, h, sk, dv], stride=list(spec.v_strides), data_type=io)}
        options: dict[str, Any] = {}
        if spec.bias_strides is not None:
            self.tensors["bias"] = graph.tensor(name="Bias", dim=[b, h, sq, sk], stride=list(spec.bias_strides),
                                                data_type=io)
            options["bias"] = self.tensors["bias"]
        # is_inference=False is what asks for the statistics (frontends before generate_stats= know only it)
        o, stats = graph.sdpa(name="sdpa", q=self.tensors["q"], k=self.tensors["k"], v=self.tensors["v"],
                              attn_scale=spec.scale, is_inference=not spec.stats, use_causal_mask=spec.causal,
                              **options)
        o.set_output(True).set_dim([b, h, sq, dv]).set_stride(list(spec.o_strides)).set_data_type(io)
        self.tensors["o"] = o
        if spec.stats:
            stats.set_output(True).set_dim([b, h, sq, 1]).set_stride([h * sq, sq, 1, 1]).set_data_type(fp32)
            self.tensors["stats"] = stats
        graph.validate()
        graph.build_operation_graph()
        graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
        graph.check_support()
        self.graph = graph
        self.engine_id, self.index = self._first_engine_that_builds()
        self.workspace_bytes = int(graph.get_workspace_size_plan_at_index(self.index))

    def _first_engine_that_builds(self) -> tuple[int, int]:
        failures = []
        for index in range(self.graph.get_execution_plan_count()):
            try:
                engine_id, _knobs = self.graph.get_engine_and_knobs_at_index(index)
            except NotImplementedError:
                continue  # a frontend (Python) engine or a delegating entry: no backend engine to run
            if not 0 <= int(engine_id) < MAX_ENGINE_ID:
                continue
            try:
                self.graph.build_plan_at_index(index)
            except Exception as exc:  # noqa: BLE001 - a decline skips the entry
                failures.append(f"engine {int(engine_id)}: {type(exc).__name__}: {exc}")
                continue
            return int(engine_id), index
        raise CudnnPlanError(f"cuDNN {version_string()} builds no engine for this attention graph"
                             + (f" ({'; '.join(failures)})" if failures else " (its heuristics propose none)"))

    def execute(self, pointers: dict[str, int], workspace: int) -> None:
        """Enqueue the plan on the current CuPy stream; `pointers` maps "q", "k", "v", "o", and "bias" and
        "stats" when the graph has them, to device addresses."""
        import cupy

        cudnn = frontend()
        handle = thread_handle()
        pack = {self.tensors[name]: int(pointer) for name, pointer in pointers.items() if name in self.tensors}
        with self._lock:
            cudnn.set_stream(handle, cupy.cuda.get_current_stream().ptr)
            self.graph.execute_plan_at_index(pack, int(workspace), self.index, handle)


SDPA_GRAPHS = GraphCache("attention")


def sdpa_graph(spec: SdpaSpec) -> SdpaGraph:
    """The attention graph for `spec` (GraphCache.get)."""
    return SDPA_GRAPHS.get(spec, SdpaGraph)
