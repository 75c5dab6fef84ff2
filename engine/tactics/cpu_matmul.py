"""CPU matrix-multiply and einsum tactics.

- batched_matmul: xp.matmul on the (transposed) views, broadcasting batch dims: one BLAS call per batch matrix.
- flattened_gemm: when only the first operand has batch dims, they are folded into its rows so the whole layer
  is ONE large GEMM (A (B*M, K) @ B (K, N)), which BLAS runs far better than B small ones.
- constant_weight_gemm: a build-time constant second operand is prepared once: transposed to a contiguous
  (K, N) matrix in the compute dtype with alpha folded in, and beta*bias pre-scaled; then one flattened GEMM.
- einsum_direct: EINSUM evaluated without contraction-path optimisation (no temporaries, better for small or
  single-operand equations) next to the reference's optimised path.

float16 layers compute in float32 and write float16 outputs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DataType
from ..enums import LayerType, MatrixOperation
from ..ops.matmul import apply_matrix_op, drop_vector_dims
from .base import Tactic, TacticContext, stable_tactic_id
from .registry import register_tactic


class MatmulTactic(Tactic):
    layer_type = LayerType.MATRIX_MULTIPLY
    backend = "cpu"

    def supports(self, ctx: TacticContext) -> bool | str:
        if not ctx.inputs[0].dtype.is_floating:
            return f"data type {ctx.inputs[0].dtype.value} is not float"
        return self.supports_shapes(ctx)

    def supports_shapes(self, ctx: TacticContext) -> bool | str:
        return True

    def prepare(self, ctx: TacticContext) -> dict:
        p = ctx.layer.params
        return {"op0": MatrixOperation(p["op0"]), "op1": MatrixOperation(p["op1"]), "alpha": p.get("alpha", 1.0),
                "beta": p.get("beta", 1.0), "half": ctx.inputs[0].dtype == DataType.HALF}

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        a, b = inputs[0], inputs[1]
        bias = inputs[2] if len(inputs) > 2 else None
        out = outputs[0]
        if state["half"]:
            a, b = a.astype(xp.float32), b.astype(xp.float32)
        y = self.product(state, a, b, xp)
        if state["alpha"] != 1:
            y *= y.dtype.type(state["alpha"])
        if bias is not None and state["beta"] != 0:
            y += bias * y.dtype.type(state["beta"]) if state["beta"] != 1 else bias
        xp.copyto(out, drop_vector_dims(y, state["op0"], state["op1"]), casting="unsafe")

    def product(self, state: dict, a: Any, b: Any, xp: Any) -> Any:
        raise NotImplementedError


class BatchedMatmul(MatmulTactic):
    name = "cpu:matmul:batched_matmul"
    id = stable_tactic_id(name)
    heuristic_rank = 30

    def product(self, state, a, b, xp):
        return xp.matmul(apply_matrix_op(a, state["op0"], True), apply_matrix_op(b, state["op1"], False))


def _fold_rows(a: Any, op0: MatrixOperation, k: int) -> Any:
    """First operand as one (rows, K) matrix: its batch dims folded into the rows (copies only if strided)."""
    return apply_matrix_op(a, op0, True).reshape(-1, k)


class FlattenedGemm(MatmulTactic):
    name = "cpu:matmul:flattened_gemm"
    id = stable_tactic_id(name)
    heuristic_rank = 20

    def supports_shapes(self, ctx):
        op0, op1 = MatrixOperation(ctx.layer.params["op0"]), MatrixOperation(ctx.layer.params["op1"])
        if op0 == MatrixOperation.TRANSPOSE:
            return "a transposed first operand cannot be folded into rows"
        if op1 == MatrixOperation.VECTOR or len(ctx.inputs[1].shape) != 2:
            return "the second operand is not a single matrix"
        return True

    def product(self, state, a, b, xp):
        b = apply_matrix_op(b, state["op1"], False)
        lead = a.shape[:-1] if state["op0"] == MatrixOperation.NONE else a.shape[:-1] + (1,)
        return xp.matmul(_fold_rows(a, state["op0"], b.shape[0]), b).reshape(*lead, b.shape[1])


class ConstantWeightGemm(FlattenedGemm):
    name = "cpu:matmul:constant_weight_gemm"
    id = stable_tactic_id(name)
    heuristic_rank = 10

    def supports_shapes(self, ctx):
        if ctx.inputs[1].value is None:
            return "the second operand is not a build-time constant"
        if len(ctx.inputs) > 2 and ctx.inputs[2] is not None and ctx.inputs[2].value is None:
            return "the bias is not a build-time constant"
        return super().supports_shapes(ctx)

    def prepare(self, ctx):
        state = super().prepare(ctx)
        dtype = np.float64 if ctx.inputs[0].dtype == DataType.DOUBLE else np.float32
        b = apply_matrix_op(np.asarray(ctx.inputs[1].value, dtype=np.float64), state["op1"], False)
        state["weights"] = np.ascontiguousarray(b * state["alpha"], dtype=dtype)
        bias = ctx.inputs[2].value if len(ctx.inputs) > 2 and ctx.inputs[2] is not None else None
        state["bias"] = None if bias is None or state["beta"] == 0 else \
            np.asarray(bias * state["beta"], dtype=dtype)
        return state

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        a, out = inputs[0], outputs[0]
        if state["half"]:
            a = a.astype(xp.float32)
        weights = state["weights"]
        folded = _fold_rows(a, state["op0"], weights.shape[0])
        target = out.reshape(-1, weights.shape[1])
        y = xp.matmul(folded, weights, out=target) if target.dtype == weights.dtype else xp.matmul(folded, weights)
        if state["bias"] is not None:
            y += state["bias"]
        if y is not target:
            xp.copyto(target, y, casting="unsafe")


class EinsumDirect(Tactic):
    name = "cpu:einsum:direct"
    id = stable_tactic_id(name)
    layer_type = LayerType.EINSUM
    backend = "cpu"
    heuristic_rank = 40

    def prepare(self, ctx):
        return {"equation": ctx.layer.params["equation"], "half": ctx.inputs[0].dtype == DataType.HALF}

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        arrays = [a.astype(xp.float32) for a in inputs] if state["half"] else inputs
        xp.copyto(outputs[0], xp.einsum(state["equation"], *arrays, optimize=False), casting="unsafe")


for _tactic in (BatchedMatmul(), FlattenedGemm(), ConstantWeightGemm(), EinsumDirect()):
    register_tactic(_tactic)
