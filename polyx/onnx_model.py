"""The graph inputs' declared shapes and dtypes (what the data loader generates inputs for). ONNX files are read
with engine.onnx_file.load_onnx_file, whose ParseError the CLI prints as one line naming the file."""
from __future__ import annotations

import numpy as np
import onnx


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
