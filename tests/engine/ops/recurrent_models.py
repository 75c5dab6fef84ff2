"""Test helper: one-node ONNX LSTM / GRU / RNN models with random weights (initializers) and their feeds."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
OUTPUTS = {"LSTM": ["Y", "Y_h", "Y_c"], "GRU": ["Y", "Y_h"], "RNN": ["Y", "Y_h"]}
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


def recurrent_model(op: str, seq: int = 5, batch: int = 3, size: int = 4, hidden: int = 6,
                    direction: str = "forward", layout: int = 0, lengths: list[int] | None = None,
                    initial: bool = False, peepholes: bool = False, bias: bool = True, seed: int = 0,
                    dtype=np.float32, **attrs) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """One `op` node with random weights as initializers; X, sequence_lens and the initial states are graph
    inputs. Returns the model and its feeds."""
    rng = np.random.default_rng(seed)
    dirs, gates = DIRECTIONS[direction], GATES[op]
    x_shape = (batch, seq, size) if layout else (seq, batch, size)
    state = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    y_shape = (batch, seq, dirs, hidden) if layout else (seq, dirs, batch, hidden)
    feeds = {"X": rng.standard_normal(x_shape).astype(dtype)}
    weights = {"W": rng.standard_normal((dirs, gates * hidden, size)) * 0.5,
               "R": rng.standard_normal((dirs, gates * hidden, hidden)) * 0.5}
    names = ["X", "W", "R", ""]
    if bias:
        weights["B"] = rng.standard_normal((dirs, 2 * gates * hidden)) * 0.5
        names[3] = "B"
    names.append("")
    if lengths is not None:
        feeds["sequence_lens"] = np.array(lengths, np.int32)
        names[4] = "sequence_lens"
    names.append("")
    if initial:
        feeds["initial_h"] = rng.standard_normal(state).astype(dtype)
        names[5] = "initial_h"
    if op == "LSTM":
        names += ["", ""]
        if initial:
            feeds["initial_c"] = rng.standard_normal(state).astype(dtype)
            names[6] = "initial_c"
        if peepholes:
            weights["P"] = rng.standard_normal((dirs, 3 * hidden)) * 0.5
            names[7] = "P"
    while names[-1] == "":
        names.pop()
    if layout:
        attrs["layout"] = layout
    node = helper.make_node(op, names, OUTPUTS[op], name=f"{op.lower()}_node", hidden_size=hidden,
                            direction=direction, **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                      for n, v in feeds.items()],
        [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape)
         for o, shape in zip(OUTPUTS[op], [y_shape, state, state])],
        initializer=[numpy_helper.from_array(v.astype(dtype), k) for k, v in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), feeds
