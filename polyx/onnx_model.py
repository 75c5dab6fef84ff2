"""Reading ONNX models the way every polyx command does: one-line errors naming the file, and the graph inputs'
declared shapes and dtypes (what the data loader generates inputs for)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx

from .errors import PolyxError


def load_onnx(path: str | os.PathLike) -> onnx.ModelProto:
    if not Path(path).is_file():
        raise PolyxError(f"{path}: no such file")
    try:
        return onnx.load(os.fspath(path))
    except Exception as exc:  # noqa: BLE001 - protobuf raises many types for a damaged file
        raise PolyxError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None


def graph_inputs(model: onnx.ModelProto) -> dict[str, tuple[tuple, np.dtype]]:
    """{input name: (shape with -1 for dynamic dims, dtype)}, initializers excluded."""
    initializers = {init.name for init in model.graph.initializer}
    meta = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
        meta[value.name] = (shape, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)))
    return meta
