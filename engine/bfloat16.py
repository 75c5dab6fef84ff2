"""bfloat16 layers: every tactic runs them in float32, and each output is rounded to bfloat16 once.

No kernel reads bfloat16 directly. A layer that reads or writes BF16 tensors (a BF16-precision layer of a
BuilderFlag.BF16 build, or a layer of a model typed bfloat16) is shown to its tactics as a FLOAT layer
(`widened_context`), so every FP32 tactic — reference, CPU and GPU — can take it; its step (`widened_run`) widens
the bfloat16 inputs to float32, runs the tactic and its epilogue in float32 and rounds the outputs to bfloat16 when
storing them. That is what a GPU kernel with bfloat16 storage and float32 accumulation computes: one rounding per
layer output. Layers whose job is the dtype itself (Cast, Reformat) and those that read only shapes keep their
bfloat16 tensors.

bfloat16 arrays are ml_dtypes.bfloat16 NumPy arrays; GPU engines refuse BF16 tensors for now (CuPy has no
bfloat16 array type; builder.py), so these steps run only on the CPU.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .dtypes import DataType
from .enums import LayerType
from .ir.epilogue import Epilogue, apply_epilogue
from .ops.base import TensorInfo

# Layers whose kernel converts dtypes or reads only shapes: they take bfloat16 tensors as they are.
KEEPS_BFLOAT16 = frozenset({LayerType.CAST, LayerType.REFORMAT, LayerType.SHAPE, LayerType.CONSTANT})


def bfloat16_positions(layer_type: LayerType, input_dtypes: Sequence[DataType | None],
                       output_dtypes: Sequence[DataType]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(input positions, output positions) holding BF16 tensors of a layer that runs widened; None when the layer
    runs on its own tensors (no BF16 tensor, or a layer in KEEPS_BFLOAT16)."""
    if layer_type in KEEPS_BFLOAT16:
        return None
    ins = tuple(p for p, d in enumerate(input_dtypes) if d == DataType.BF16)
    outs = tuple(p for p, d in enumerate(output_dtypes) if d == DataType.BF16)
    return (ins, outs) if ins or outs else None


def widened_info(info: TensorInfo | None) -> TensorInfo | None:
    """A BF16 tensor as its tactic sees it: FLOAT, with a known value widened to float32."""
    if info is None or info.dtype != DataType.BF16:
        return info
    value = None if info.value is None else np.asarray(info.value).astype(np.float32)
    return TensorInfo(info.shape, DataType.FLOAT, value)


def widened_run(run: Any, epilogue: Epilogue | None, positions: tuple[tuple[int, ...], tuple[int, ...]]) -> Any:
    """A step's run function for a widened layer: bfloat16 inputs to float32, the tactic and the epilogue in
    float32, outputs rounded to bfloat16. Takes over the epilogue, so the step must carry none."""
    in_positions, out_positions = positions

    def run_widened(state, inputs, outputs, workspace, xp) -> None:
        inputs = list(inputs)
        for p in in_positions:
            if inputs[p] is not None:
                inputs[p] = inputs[p].astype(np.float32)
        wide = list(outputs)
        for p in out_positions:
            wide[p] = np.empty(outputs[p].shape, dtype=np.float32)
        run(state, inputs, wide, workspace, xp)
        if epilogue is not None:
            apply_epilogue(epilogue, wide[0], inputs, xp)
        for p in out_positions:
            np.copyto(outputs[p], wide[p], casting="unsafe")  # rounds to nearest even

    return run_widened
