"""Deliberately wrong tactics and small models for the `polyx debug` tests."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import engine as trt
from engine.config import resolve_device
from engine.tactics import tactics_for, unregister_tactic


class WrongTactic(trt.Tactic):
    """Runs the layer type's reference kernel on corrupted data: `corrupt(inputs) -> inputs`. Its heuristic rank 0
    makes it win at builder optimization level 0, wherever `eligible(ctx)` allows it."""

    heuristic_rank = 0

    def __init__(self, layer_type: trt.LayerType, name: str, corrupt: Callable[[list], list],
                 eligible: Callable[[trt.TacticContext], bool] = lambda ctx: True):
        self.layer_type = layer_type
        self.name = name
        self.id = 0
        self.corrupt = corrupt
        self.eligible = eligible
        # Wrong on whichever device the builds target (POLYX_DEVICE=gpu runs these tests on the GPU).
        self.backend = resolve_device(None)
        self.reference = next(t for t in tactics_for(layer_type, self.backend) if "_reference_" in t.name)

    def supports(self, ctx):
        return self.eligible(ctx)

    def prepare(self, ctx):
        return self.reference.prepare(ctx)

    def run(self, state, inputs, outputs, workspace, xp):
        self.reference.run(state, self.corrupt(list(inputs)), outputs, workspace, xp)


def drop_last_input_channel(inputs: list) -> list:
    """Zero channel (axis 1) C-1 of the first input: a conv that forgets its last input channel."""
    x = inputs[0].copy()
    x[:, -1] = 0
    return [x, *inputs[1:]]


def drop_last_reduction_row(inputs: list) -> list:
    """Zero the last row of a MatMul's second operand: it forgets the last term of every dot product."""
    b = inputs[1].copy()
    b[..., -1, :] = 0
    return [inputs[0], b, *inputs[2:]]


@contextmanager
def registered(tactic: trt.Tactic) -> Iterator[trt.Tactic]:
    trt.register_tactic(tactic)
    try:
        yield tactic
    finally:
        unregister_tactic(tactic)


def make_overflow_model(path: Path, features: int = 64) -> Path:
    """x -> fc1 -> bias1 -> relu1 -> sigmoid1 -> fc_big -> softmax -> fc3 -> tanh -> y.

    fc_big's outputs are about 1e5, beyond FP16's 65504: in FP16 they become inf and softmax NaN. Both fc_big
    (which produces them) and softmax (which reads them) must run in FP32; the other layers are harmless."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((features, features)) * 0.3).astype(np.float32), "w1"),
             numpy_helper.from_array((rng.standard_normal(features) * 0.1).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.uniform(1000, 3000, (features, features)).astype(np.float32), "w_big"),
             numpy_helper.from_array((rng.standard_normal((features, 16)) * 0.3).astype(np.float32), "w3")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"),
             helper.make_node("Add", ["h1", "b1"], ["h1b"], name="bias1"),
             helper.make_node("Relu", ["h1b"], ["a1"], name="relu1"),
             helper.make_node("Sigmoid", ["a1"], ["s1"], name="sigmoid1"),
             helper.make_node("MatMul", ["s1", "w_big"], ["big"], name="fc_big"),
             helper.make_node("Softmax", ["big"], ["p"], name="softmax", axis=-1),
             helper.make_node("MatMul", ["p", "w3"], ["h3"], name="fc3"),
             helper.make_node("Tanh", ["h3"], ["y"], name="tanh")]
    graph = helper.make_graph(nodes, "overflow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, features])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def make_chain_model(path: Path, features: int = 16) -> Path:
    """x -> fc1 -> bias1 -> relu1 -> softmax -> fc2 -> sigmoid2 -> scale -> y: softmax sits in the middle."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((features, features)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal(features).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.standard_normal((features, features)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.array(3.0, np.float32), "three")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"),
             helper.make_node("Add", ["h1", "b1"], ["h1b"], name="bias1"),
             helper.make_node("Relu", ["h1b"], ["a1"], name="relu1"),
             helper.make_node("Softmax", ["a1"], ["p"], name="softmax", axis=-1),
             helper.make_node("MatMul", ["p", "w2"], ["h2"], name="fc2"),
             helper.make_node("Sigmoid", ["h2"], ["s2"], name="sigmoid2"),
             helper.make_node("Mul", ["s2", "three"], ["y"], name="scale")]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, features])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, features])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def reverse_last_axis(inputs: list) -> list:
    """Read the first input backwards along its last axis: a kernel with a wrong index."""
    return [inputs[0][..., ::-1].copy(), *inputs[1:]]
