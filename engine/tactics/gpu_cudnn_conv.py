"""cuDNN convolutions (TacticSource.CUDNN): the convolution, its bias, a fused residual add and a fused activation as
ONE cuDNN frontend graph (backends/cudnn_conv.py), which cuDNN's runtime-fusion engines run as one kernel.

Each cuDNN engine is a tactic of its own, `gpu:conv:cudnn_engine<id>` with cuDNN's engine id, as TensorRT makes
each cuDNN engine configuration a tactic: the builder times the first few engines cuDNN's heuristics rank for the
layer, and the plan records the chosen engine's id. At run time the engine is rebuilt for the shapes being run
(with the knobs the heuristics give it there); an installed cuDNN that cannot build it fails with an
ExecutionError naming the layer and the engine, never a silent switch to another engine.

NCHW tensors (contiguous strides), or HWC ones (channels-last, BuilderConfig.channels_last: the graph's X, W,
residual and Y given NHWC strides, the weights prepared KRSC; cuDNN 9 runs its runtime fusions only so), FLOAT and
HALF layers with float32 accumulation (FP32 is IEEE: engines that
would use TF32 are deselected), BF16 layers through the usual float32 widening; 1-D and 2-D convolutions, groups,
strides, dilations, asymmetric padding. Activations cuDNN's pointwise nodes express (ACTIVATIONS) are fused; any
other activation is applied after the graph by the shared epilogue helper.

CuPy and cudnn are imported inside functions: this module is imported on every machine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backends.cudnn_conv import ConvSpec, conv_graph
from ..backends.cudnn_frontend import (
    MAX_ENGINE_ID,
    CudnnPlanError,
    aligned_contiguous,
    device_address,
    is_aligned,
    unavailable_reason,
)
from ..dtypes import DataType
from ..enums import ActivationType, TacticSource, TensorFormat
from ..errors import ExecutionError
from ..ir.epilogue import ACTIVATION, RESIDUAL, Activation, Epilogue, apply_epilogue
from ..tensor_formats import TO_CHANNELS_LAST, empty_in_format, is_channels_last
from .base import TacticContext, stable_tactic_id
from .cpu_conv import ConvGeometry, ConvTactic, conv_geometry
from .gpu_conv_gemm import as_2d
from .registry import register_tactic
from .scratch import carve

_STORAGE = {DataType.FLOAT: "float32", DataType.HALF: "float16"}


def _is_plain(array: Any, layout: TensorFormat) -> bool:
    """Whether `array` lies in memory as the graph's tensors do (C-contiguous NCHW, or NHWC) and is aligned."""
    plain = is_channels_last(array) if layout == TensorFormat.HWC else array.flags.c_contiguous
    return plain and is_aligned(array)


def _in_memory_order(array: Any, layout: TensorFormat, xp: Any) -> Any:
    """`array` laid out as the graph reads it and aligned: itself when it already is, else a copy (NCHW-shaped
    either way; the graph is given its address)."""
    if _is_plain(array, layout):
        return array
    if layout == TensorFormat.LINEAR:
        return aligned_contiguous(array, xp)
    copy = empty_in_format(xp, array.shape, array.dtype, layout)
    xp.copyto(copy, array)
    return copy


def _clip(a: Activation) -> tuple[str, tuple[tuple[str, float], ...]] | None:
    """Clip(lo, hi) is cuDNN's RELU with both clips (slope 0 below the lower clip); only finite, ordered bounds."""
    if not (math.isfinite(a.alpha) and math.isfinite(a.beta) and a.alpha <= a.beta):
        return None
    return "relu", (("lower_clip", a.alpha), ("upper_clip", a.beta))


# ActivationType -> (pointwise builder of the cuDNN graph, its parameters) or None when it cannot be expressed.
ACTIVATIONS = {
    ActivationType.RELU: lambda a: ("relu", ()),
    ActivationType.LEAKY_RELU: lambda a: ("relu", (("negative_slope", a.alpha),)),
    ActivationType.CLIP: _clip,
    ActivationType.SIGMOID: lambda a: ("sigmoid", ()),
    ActivationType.TANH: lambda a: ("tanh", ()),
    ActivationType.GELU_ERF: lambda a: ("gelu", ()),
    ActivationType.GELU_TANH: lambda a: ("gelu_approx_tanh", ()),
}


def fused_activation(activation: Activation | None) -> tuple[str, tuple[tuple[str, float], ...]] | None:
    """The cuDNN pointwise form of a fused activation, None when there is none or cuDNN cannot express it."""
    if activation is None or activation.type not in ACTIVATIONS:
        return None
    return ACTIVATIONS[activation.type](activation)


def fusion_levels(bias: bool, residual: bool, activation: tuple[str, tuple[tuple[str, float], ...]] | None
                  ) -> list[tuple[bool, bool, tuple[str, tuple[tuple[str, float], ...]] | None]]:
    """(bias, residual, activation) inside the graph, most fused first. cuDNN 9's runtime-fusion engines want NHWC
    (on an H200 every NCHW graph with a residual or an activation was declined), so a layer falls back to conv +
    bias, then the bare convolution; what the graph leaves out runs after it (bias, residual, activation, in that
    order, as the fused graph would)."""
    levels = [(bias, residual, activation)]
    if residual or activation is not None:
        levels.append((bias, False, None))
    if bias:
        levels.append((False, False, None))
    return levels


def conv_spec(g: ConvGeometry, dtype: str, bias: bool, residual: bool,
              activation: tuple[str, tuple[tuple[str, float], ...]] | None, channels_last: bool = False) -> ConvSpec:
    """The cuDNN graph a 2-D geometry (as_2d) needs: NCHW input, KCRS weights of C/groups channels (or all of them
    channels-last)."""
    return ConvSpec(x_shape=(g.batch, g.channels, *g.in_sizes),
                    w_shape=(g.maps, g.channels // g.groups, *g.kernel),
                    y_shape=(g.batch, g.maps, *g.out_sizes), dtype=dtype, pre=tuple(g.pre), post=tuple(g.post),
                    strides=tuple(g.strides), dilations=tuple(g.dilations), bias=bias, residual=residual,
                    activation=activation, channels_last=channels_last)


def _level_specs(g: ConvGeometry, dtype: str, bias: bool, residual: bool,
                 activation: tuple[str, tuple[tuple[str, float], ...]] | None, channels_last: bool) -> list[ConvSpec]:
    return [conv_spec(g, dtype, *level, channels_last) for level in fusion_levels(bias, residual, activation)]


@dataclass(frozen=True)
class GraphEntry:
    """One input shape's built graph: the level of fusion the engine builds there, and what runs after it."""

    graph: Any
    workspace_bytes: int
    bias_in_graph: bool
    residual: int | None  # the residual's input position when the graph adds it
    after: Epilogue | None  # the residual and activation the graph leaves out


class CudnnConv(ConvTactic):
    """One cuDNN engine, built per input shape as a fused conv graph."""

    backend = "gpu"
    source = TacticSource.CUDNN
    absorbs = frozenset({RESIDUAL, ACTIVATION})
    # Behind our GEMM and NVRTC convolutions when nothing is timed: cuDNN's engines compete when timed.
    heuristic_rank = 30
    # Building a cuDNN plan may compile a runtime-fusion kernel: not worth it when the choice is not timed.
    min_optimization_level = 1
    formats = frozenset({TensorFormat.LINEAR, TensorFormat.HWC})

    def __init__(self, engine_id: int):
        self.engine_id = engine_id
        self.name = f"gpu:conv:cudnn_engine{engine_id}"
        self.id = stable_tactic_id(self.name)

    def unavailable(self) -> str | None:
        return unavailable_reason()

    def supports(self, ctx: TacticContext) -> bool | str:
        reason = unavailable_reason()
        if reason is not None:
            return reason
        x, y = ctx.inputs[0], ctx.outputs[0]
        if ctx.channels_last and (x.shape is None or len(x.shape) != 4):
            return "HWC tensors are 4-D: a 2-D convolution"
        if x.dtype not in _STORAGE or y.dtype != x.dtype:
            return f"the cuDNN graph runs FLOAT or HALF layers with outputs of the input type, not " \
                   f"{x.dtype.value} -> {y.dtype.value}"
        ok = super().supports(ctx)
        if ok is not True:
            return ok
        try:
            candidates = conv_graph(self.spec(ctx)).candidate_engines()
        except CudnnPlanError as exc:
            return str(exc)
        if self.engine_id not in candidates:
            # no engine id here: the builder logs the tactic's name, and one line for all engines refused alike
            return f"this cuDNN engine is not among the engines ranked first for this layer that build ({candidates})"
        return True

    def supports_geometry(self, g: ConvGeometry) -> bool | str:
        if len(g.kernel) not in (1, 2):
            return f"the cuDNN graph handles 1-D and 2-D convolutions, not {len(g.kernel)}-D"
        if min(g.pre + g.post) < 0:
            return "negative padding (cropping) is not a cuDNN convolution"
        return True

    def geometry(self, ctx: TacticContext) -> ConvGeometry:
        return as_2d(super().geometry(ctx))

    def level_specs(self, ctx: TacticContext) -> list[ConvSpec]:
        """The layer's graphs at its shapes, most fused first (fusion_levels)."""
        has_bias = len(ctx.inputs) > 2 and ctx.inputs[2] is not None
        return _level_specs(self.geometry(ctx), _STORAGE[ctx.inputs[0].dtype], has_bias,
                            ctx.epilogue.residual is not None, fused_activation(ctx.epilogue.activation),
                            ctx.channels_last)

    def spec(self, ctx: TacticContext) -> ConvSpec:
        """The most fused graph for which some cuDNN engine builds: the level whose engines are the candidates."""
        specs = self.level_specs(ctx)
        for spec in specs[:-1]:
            try:
                if conv_graph(spec).candidate_engines():
                    return spec
            except CudnnPlanError:
                continue
        return specs[-1]

    def built_level(self, specs: list[ConvSpec]) -> tuple[ConvSpec, Any]:
        """The graph this engine runs: the most fused of `specs` among whose heuristics' configurations it builds
        (at the shapes the builder timed, the level `spec` gives), else the most fused it builds at with its default
        knobs. Chosen per input shape, the same way when the builder times the engine and when it runs, so a plan's
        engine runs the graph it was timed on (deciding it once, from a plan's -1 dims, fell back to the bare
        convolution, which that engine may not build). Raises CudnnPlanError with the bare convolution's reason."""
        graphs, reason = [], None
        for spec in specs:
            try:
                graph = conv_graph(spec)
            except CudnnPlanError as exc:
                reason = exc
                continue
            if graph.plan_index(self.engine_id, ranked_only=True) is not None:
                return spec, graph
            graphs.append((spec, graph))
        for spec, graph in graphs:
            try:
                graph.plan_index(self.engine_id)
                return spec, graph
            except CudnnPlanError as exc:
                reason = exc
        raise reason

    def workspace_bytes(self, ctx: TacticContext) -> int:
        """The engine's workspace at ctx's shapes; raises CudnnPlanError where it cannot run there (the builder
        then leaves the tactic out: it asks at the profile's max shapes too)."""
        if unavailable_reason() is not None:
            return 0
        try:
            _, graph = self.built_level(self.level_specs(ctx))
            return graph.workspace_bytes(self.engine_id)
        except CudnnPlanError as exc:
            raise CudnnPlanError(f"at input shape {list(ctx.inputs[0].shape)}: {exc}") from exc

    def prepare(self, ctx: TacticContext) -> dict:
        self.require_available(ctx, "cuDNN")
        import cupy

        storage = np.dtype(_STORAGE[ctx.inputs[0].dtype])
        w = np.asarray(ctx.inputs[1].value)
        bias = ctx.inputs[2].value if len(ctx.inputs) > 2 and ctx.inputs[2] is not None else None
        channels_last = ctx.channels_last
        return {
            # KRSC memory for a channels-last graph (its W strides say so), KCRS otherwise
            "w": cupy.asarray(np.ascontiguousarray(w.transpose(TO_CHANNELS_LAST) if channels_last else w,
                                                   dtype=storage)),
            "channels_last": channels_last,
            "bias": None if bias is None else cupy.asarray(np.asarray(bias, dtype=storage).reshape(-1)),
            "layer": ctx.layer, "kernel_shape": w.shape, "dtype": storage.name,
            "epilogue": ctx.epilogue,  # its residual (an input position) and activation: in the graph, or after it
            "graphs": {},  # input shape -> GraphEntry
        }

    def _graph_for(self, state: dict, shape: tuple[int, ...]) -> GraphEntry:
        """The built graph for an input shape; the first run at a shape builds it, before any CUDA-graph capture."""
        entry = state["graphs"].get(shape)
        if entry is None:
            g = as_2d(conv_geometry(state["layer"], shape, state["kernel_shape"]))
            epilogue = state["epilogue"]
            try:
                spec, graph = self.built_level(_level_specs(
                    g, state["dtype"], state["bias"] is not None, epilogue.residual is not None,
                    fused_activation(epilogue.activation), state["channels_last"]))
                after = Epilogue(residual=None if spec.residual else epilogue.residual,
                                 activation=None if spec.activation is not None else epilogue.activation)
                entry = state["graphs"][shape] = GraphEntry(graph, graph.workspace_bytes(self.engine_id), spec.bias,
                                                            epilogue.residual if spec.residual else None,
                                                            None if after.empty else after)
            except CudnnPlanError as exc:
                raise ExecutionError(f"layer '{state['layer'].name}': tactic {self.name} (the plan's cuDNN engine) "
                                     f"cannot run at input shape {list(shape)}: {exc}; rebuild the plan with the "
                                     "cuDNN installed here") from exc
        return entry

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        layout = TensorFormat.HWC if state["channels_last"] else TensorFormat.LINEAR
        x, out = _in_memory_order(inputs[0], layout, xp), outputs[0]
        entry = self._graph_for(state, tuple(x.shape))
        y = out if _is_plain(out, layout) else empty_in_format(xp, out.shape, out.dtype, layout)
        pointers = {"x": device_address(x), "w": device_address(state["w"]), "y": device_address(y)}
        if entry.bias_in_graph:
            pointers["bias"] = device_address(state["bias"])
        if entry.residual is not None:
            residual = inputs[entry.residual]
            if residual.shape != y.shape or residual.dtype != y.dtype:
                widened = empty_in_format(xp, y.shape, y.dtype, layout)
                xp.copyto(widened, xp.broadcast_to(residual, y.shape), casting="unsafe")
                residual = widened
            residual = _in_memory_order(residual, layout, xp)  # kept referenced until the graph is enqueued
            pointers["residual"] = device_address(residual)
        space = carve(workspace, [((entry.workspace_bytes,), np.uint8)], xp)[0] if entry.workspace_bytes else None
        entry.graph.execute(self.engine_id, pointers, 0 if space is None else device_address(space))
        if state["bias"] is not None and not entry.bias_in_graph:
            xp.add(y, state["bias"].reshape((1, -1) + (1,) * (y.ndim - 2)), out=y)
        if entry.after is not None:
            apply_epilogue(entry.after, y, inputs, xp)
        if y is not out:
            xp.copyto(out, y)


for _engine_id in range(MAX_ENGINE_ID):
    register_tactic(CudnnConv(_engine_id))
