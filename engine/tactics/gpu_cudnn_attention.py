"""gpu:attention:cudnn_sdpa (TacticSource.CUDNN): the ATTENTION layer as cuDNN's fused flash attention, one
frontend `sdpa` graph (backends/cudnn_sdpa.py) the builder times against the NVRTC flash kernel and the cuBLAS +
softmax tactic (tactics/gpu_attention.py).

What cuDNN's fused attention takes, and so what the tactic accepts (any other layer is refused with the reason and
left to the other tactics):
- HALF and BF16 layers (float32 softmax and accumulation); FLOAT layers are refused: cuDNN has no FP32 flash path.
- head dims (D and Dv) that are multiples of 8, at most 128, each operand's head dim contiguous (stride 1) in its
  stored layout. The layer's operand permutations (the Transposes the fusion rule absorbed) become the graph
  tensors' strides: nothing is copied.
- the mask: a constant mask that is exactly the top-left causal pattern (0 on and below the diagonal, -inf or at
  most CAUSAL_MASKED above: exp of that underflows to 0 in float32) becomes cuDNN's own causal mask with no bias
  read; any other mask is an additive bias of dims (B, H, Sq, Sk) whose strides are 0 where it broadcasts.
- fully masked rows: ONNX's softmax makes a row masked entirely with -inf NaN (0 under `nan_to_zero`, the export's
  IsNaN guard), and cuDNN does not document what its kernel writes there. So a layer with a mask (other than the
  causal one, which never masks a whole row) has the graph write its softmax statistics too (float32 per query
  row, in the workspace): they are -inf or NaN exactly for such rows, and one small kernel (kernels/attention.cu
  fill_unweighted_rows_u16, one thread per row) writes NaN, or 0 under nan_to_zero, into those rows of the output.

The graph is cached per spec (shapes, strides, type, scale, mask kind); its plan is built at the first run at a
shape (before any CUDA-graph capture) and its workspace is declared to the builder. CuPy and cudnn are imported
inside functions: this module is imported on every machine.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends.cudnn_frontend import (
    CudnnPlanError,
    aligned_contiguous,
    contiguous_strides,
    device_address,
    is_aligned,
    unavailable_reason,
)
from ..backends.cudnn_sdpa import SdpaSpec, Strides, sdpa_graph
from ..dtypes import DataType
from ..enums import TacticSource
from ..errors import EngineError, ExecutionError
from ..evaluator import is_static
from ..ops.attention import attention_dims, attention_perms, attention_scale
from ..ops.masked_softmax import check_mask_shape
from .base import TacticContext, stable_tactic_id
from .gpu_attention import AttentionTactic
from .registry import register_tactic
from .scratch import carve, total_bytes

_STORAGE = {DataType.HALF: "float16", DataType.BF16: "bfloat16"}
MAX_HEAD_DIM = 128
HEAD_DIM_MULTIPLE = 8
# Masked entries of a constant causal mask at or below this (or -inf) are what cuDNN's causal mask computes: their
# exp underflows to 0 in float32 whenever the scaled scores of a row span less than about 9,900.
CAUSAL_MASKED = -1e4
def operand_strides(shape: tuple[int, ...], perm: tuple[int, ...], inverse: bool = False) -> Strides:
    """Element strides of a C-contiguous stored operand over its logical (batch, head, row, dim) axes: logical =
    transpose(stored, perm), or stored = transpose(logical, perm) with `inverse` (the output). A rank-3 operand is
    one batch (its batch stride is the operand's size: cuDNN wants no zero stride there)."""
    stored = contiguous_strides(shape)
    strides = [0] * len(perm)
    for position, axis in enumerate(perm):
        if inverse:
            strides[axis] = stored[position]
        else:
            strides[position] = stored[axis]
    if len(strides) == 3:
        strides = [math.prod(max(int(d), 1) for d in shape)] + strides
    return tuple(strides)


def _is_causal(value: np.ndarray, sq: int, sk: int) -> bool:
    """Whether a constant mask is exactly the top-left causal pattern over (Sq, Sk), the same for every batch and
    head."""
    if value.ndim < 2 or value.shape[-2:] != (sq, sk) or math.prod(value.shape[:-2]) != 1:
        return False
    m = value.reshape(sq, sk).astype(np.float64)
    visible = np.tril(np.ones((sq, sk), bool))
    return bool(np.all(m[visible] == 0) and np.all(m[~visible] <= CAUSAL_MASKED))


def sdpa_spec(layer, shapes: list[tuple[int, ...]], mask_value: np.ndarray | None, dtype: DataType
              ) -> SdpaSpec | str:
    """The cuDNN graph the layer needs at stored operand `shapes` (q, k, v and the mask's when there is one), or
    why cuDNN's fused attention cannot take it."""
    q_shape, k_shape, v_shape = shapes[:3]
    mask_shape = shapes[3] if len(shapes) > 3 else None
    leading, sq, sk, d, dv = attention_dims(layer, q_shape, k_shape, v_shape)
    if any(n < 0 for n in leading + (sq, sk, d, dv)):
        return "the shapes must be concrete"
    if min(leading + (sq, sk, d, dv)) == 0:
        return "an empty attention (no heads, queries, keys or dims) is left to the other tactics"
    for what, n in (("q and k", d), ("v", dv)):
        if n % HEAD_DIM_MULTIPLE or n > MAX_HEAD_DIM:
            return (f"the head dim of {what} is {n}: cuDNN's fused attention takes multiples of "
                    f"{HEAD_DIM_MULTIPLE} up to {MAX_HEAD_DIM}")
    perms = attention_perms(layer, len(q_shape))
    strides = {}
    for name, shape in (("q", q_shape), ("k", k_shape), ("v", v_shape), ("out", None)):
        key = f"{name}_perm"
        if shape is None:  # the output: stored = transpose(logical, out_perm)
            logical = leading + (sq, dv)
            strides[name] = operand_strides(tuple(logical[a] for a in perms[key]), perms[key], inverse=True)
        else:
            strides[name] = operand_strides(shape, perms[key])
        if strides[name][-1] != 1:
            return (f"the head dim of {name} lies at stride {strides[name][-1]} in its stored layout ({key} "
                    f"{list(perms[key])}): cuDNN's fused attention reads it contiguously")
    batch, heads = (1, leading[0]) if len(leading) == 1 else leading
    causal, bias = False, None
    if mask_shape is not None:
        check_mask_shape(layer, mask_shape, leading + (sq, sk))
        if mask_value is not None:
            causal = _is_causal(np.asarray(mask_value, dtype=np.float64), sq, sk)
        if not causal:
            dims = (1,) * (4 - len(mask_shape)) + tuple(mask_shape)
            bias, step = [0, 0, 0, 0], 1
            for axis in range(3, -1, -1):
                bias[axis] = 0 if dims[axis] == 1 else step
                step *= dims[axis]
            bias = tuple(bias)
    return SdpaSpec(dims=(batch, heads, sq, sk, d, dv), q_strides=strides["q"], k_strides=strides["k"],
                    v_strides=strides["v"], o_strides=strides["out"], dtype=_STORAGE[dtype],
                    scale=attention_scale(layer), causal=causal, bias_strides=bias, stats=bias is not None)


def _scratch(graph) -> list:
    """cuDNN's workspace, then the softmax statistics when the graph writes them (float32 per query row)."""
    b, h, sq = graph.spec.dims[:3]
    return [((graph.workspace_bytes,), np.uint8), ((b * h * sq if graph.spec.stats else 0,), np.float32)]


# 16-bit patterns written into rows a mask filled with -inf: NaN (as Softmax gives) or 0 (nan_to_zero)
_NAN_BITS = {"float16": 0x7E00, "bfloat16": 0x7FC0}


def fill_unweighted_rows(stats: Any, dst: Any, spec: SdpaSpec, nan_to_zero: bool, xp: Any) -> None:
    """Rows of the C-contiguous output `dst` whose softmax statistic is -inf or NaN (every score masked with -inf)
    get NaN, or 0 with `nan_to_zero`; on NumPy arrays (CPU tests with a stand-in frontend) the same by indexing."""
    b, h, sq, _, _, dv = spec.dims
    fill = 0 if nan_to_zero else _NAN_BITS[spec.dtype]
    os_b, os_h, os_s, _ = spec.o_strides
    if xp is np:
        flat = dst.reshape(-1).view(np.uint16)
        for row in np.flatnonzero(~(stats > -np.inf)):
            r, head, batch = row % sq, (row // sq) % h, row // (sq * h)
            start = batch * os_b + head * os_h + r * os_s
            flat[start:start + dv] = fill
        return
    from ..backends.nvrtc import kernel, launch_1d

    grid, block = launch_1d(b * h * sq)
    kernel("attention", "fill_unweighted_rows_u16")(
        grid, block, (stats, dst, np.uint16(fill), np.int64(b * h * sq), np.int32(h), np.int32(sq), np.int32(dv),
                      np.int64(os_b), np.int64(os_h), np.int64(os_s)))


def _mask_value(ctx: TacticContext) -> np.ndarray | None:
    mask = ctx.inputs[3] if len(ctx.inputs) > 3 else None
    return None if mask is None or mask.value is None else np.asarray(mask.value).astype(np.float64)


class CudnnSdpaAttention(AttentionTactic):
    name = "gpu:attention:cudnn_sdpa"
    id = stable_tactic_id(name)
    source = TacticSource.CUDNN
    # Behind the NVRTC flash kernel when nothing is timed; cuDNN's competes when timed. Building its plan may
    # compile a kernel: not worth it when the choice is not timed.
    heuristic_rank = 30
    min_optimization_level = 1

    def unavailable(self) -> str | None:
        return unavailable_reason()

    def _spec(self, ctx: TacticContext) -> SdpaSpec | str:
        return sdpa_spec(ctx.layer, [tuple(info.shape) for info in ctx.inputs if info is not None],
                         _mask_value(ctx), ctx.inputs[0].dtype)

    def supports(self, ctx: TacticContext) -> bool | str:
        reason = unavailable_reason()
        if reason is not None:
            return reason
        dtype = ctx.inputs[0].dtype
        if dtype not in _STORAGE or ctx.outputs[0].dtype != dtype:
            return (f"cuDNN's fused flash attention runs HALF and BF16 layers, not {dtype.value} (FLOAT layers "
                    "take the flash or cuBLAS tactics)")
        if not all(is_static(info.shape) for info in ctx.inputs if info is not None):
            return "the shapes must be concrete"
        try:
            spec = self._spec(ctx)
        except EngineError as exc:
            return str(exc)
        if isinstance(spec, str):
            return spec
        try:
            sdpa_graph(spec)
        except CudnnPlanError as exc:
            return str(exc)
        return True

    def workspace_bytes(self, ctx: TacticContext) -> int:
        """The plan's workspace at ctx's shapes; raises CudnnPlanError where it cannot run there (the builder then
        leaves the tactic out: it asks at the profile's max shapes too)."""
        if unavailable_reason() is not None:
            return 0
        spec = self._spec(ctx)
        if isinstance(spec, str):
            raise CudnnPlanError(f"at q shape {list(ctx.inputs[0].shape)}: {spec}")
        try:
            return total_bytes(_scratch(sdpa_graph(spec)))
        except CudnnPlanError as exc:
            raise CudnnPlanError(f"at q shape {list(ctx.inputs[0].shape)}: {exc}") from exc

    def prepare(self, ctx: TacticContext) -> dict:
        self.require_available(ctx, "cuDNN")
        state = super().prepare(ctx)
        state.update(dtype=ctx.inputs[0].dtype, mask_value=_mask_value(ctx), graphs={})
        return state

    def _graph_for(self, state: dict, shapes: list[tuple[int, ...]]):
        """The built graph for these operand shapes; the first run at a shape builds it, before any capture."""
        key = tuple(shapes)
        entry = state["graphs"].get(key)
        if entry is None:
            spec = sdpa_spec(state["layer"], shapes, state["mask_value"], state["dtype"])
            try:
                if isinstance(spec, str):
                    raise CudnnPlanError(spec)
                entry = state["graphs"][key] = sdpa_graph(spec)
            except CudnnPlanError as exc:
                raise ExecutionError(f"layer '{state['layer'].name}': tactic {self.name} cannot run at q shape "
                                     f"{list(shapes[0])}: {exc}; rebuild the plan for these shapes") from exc
        return entry

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        out = outputs[0]
        found = self.operands(state, inputs, out, xp)
        if found is None:
            return
        operands = [aligned_contiguous(x, xp) for x in found[0]]
        mask = inputs[3] if len(inputs) > 3 else None
        shapes = [tuple(x.shape) for x in operands] + ([] if mask is None else [tuple(mask.shape)])
        graph = self._graph_for(state, shapes)
        pointers = {name: device_address(x) for name, x in zip("qkv", operands)}
        if graph.spec.bias_strides is not None:
            mask = aligned_contiguous(mask, xp)
            pointers["bias"] = device_address(mask)
        plain = out.flags.c_contiguous and is_aligned(out)
        dst = out if plain else xp.empty(out.shape, out.dtype)
        pointers["o"] = device_address(dst)
        space, stats = carve(workspace, _scratch(graph), xp)
        if graph.spec.stats:
            pointers["stats"] = device_address(stats)
        graph.execute(pointers, device_address(space) if graph.workspace_bytes else 0)
        if graph.spec.stats:
            fill_unweighted_rows(stats, dst, graph.spec, state["nan_to_zero"], xp)
        if dst is not out:
            xp.copyto(out, dst)


register_tactic(CudnnSdpaAttention())
