"""Models and helpers for the surgeon tests: the shared exports (skipped when absent) and small hand-built graphs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from shared_model_cases import MODELS

SHARED_MODELS = MODELS  # ../shared/models, or POLYX_MODELS_DIR
STATIC_SHAPES = {"gpt2_tiny": {"input_ids": [2, 16]},
                 "bert_tiny": {"input_ids": [2, 16], "attention_mask": [2, 16]}}


def shared_model(name: str) -> Path:
    path = SHARED_MODELS / f"{name}.onnx"
    if not path.is_file():
        pytest.skip(f"shared model {path} is not available")
    return path


def text_feeds(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids in [0, 1000) and an attention mask with some padding."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape in shapes.items():
        if "mask" in name:
            mask = np.ones(shape, np.int64)
            mask[0, shape[1] // 2:] = 0
            feeds[name] = mask
        else:
            feeds[name] = rng.integers(0, 1000, size=shape).astype(np.int64)
    return feeds


def run_ort(model: onnx.ModelProto | Path, feeds: dict[str, np.ndarray], outputs: list[str] | None = None,
            optimize: bool = False) -> dict[str, np.ndarray]:
    """onnxruntime outputs by name; without `optimize` no graph rewrites, so results are bit-comparable."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    names = outputs or [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy that also exposes intermediate tensors `names` as graph outputs (types from shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {v.name: v for v in inferred.graph.value_info}
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.output.extend(infos[name] for name in names)
    return copy


def make_unsupported_op_model() -> onnx.ModelProto:
    """x[2,8] → Mul → Floor → DynamicQuantizeLinear (unsupported, as in TensorRT 8.6; deterministic in onnxruntime)
    → Cast → ReduceSum → Add(back onto the Mul output) → Relu.

    The Add reads both a supported tensor from before the DynamicQuantizeLinear and one computed after it.
    """
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["a"], name="mul"),
        helper.make_node("Floor", ["a"], ["floored"], name="floor"),
        helper.make_node("DynamicQuantizeLinear", ["floored"], ["quantized", "q_scale", "q_zero_point"],
                         name="quantize"),
        helper.make_node("Cast", ["quantized"], ["quantized_f"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("ReduceSum", ["quantized_f"], ["total"], keepdims=0, name="reduce_sum"),
        helper.make_node("Mul", ["total", "scale"], ["scaled"], name="scale"),
        helper.make_node("Add", ["a", "scaled"], ["b"], name="add"),
        helper.make_node("Relu", ["b"], ["y"], name="relu"),
    ]
    inits = [numpy_helper.from_array(np.array(2, np.float32), "two"),
             numpy_helper.from_array(np.array(0.01, np.float32), "scale")]
    graph = helper.make_graph(nodes, "unsupported_op_model",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def make_custom_op_model() -> onnx.ModelProto:
    """x → Relu → custom.Swizzle (declared output type) → Sigmoid → y, plus a Transpose branch the engine takes."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Swizzle", ["r"], ["s"], name="swizzle", domain="custom", mode=3),
             helper.make_node("Sigmoid", ["s"], ["y"], name="sigmoid"),
             helper.make_node("Transpose", ["r"], ["t"], name="transpose", perm=[1, 0])]
    graph = helper.make_graph(nodes, "custom_model", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 6]),
                               helper.make_tensor_value_info("t", TensorProto.FLOAT, [6, 4])],
                              value_info=[helper.make_tensor_value_info("s", TensorProto.FLOAT, [4, 6])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)])
    onnx.checker.check_model(model)
    return model


def make_cyclic_model() -> onnx.ModelProto:
    """a = Add(x, c); c = Relu(a): a cycle."""
    nodes = [helper.make_node("Add", ["x", "c"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["c"], name="relu")]
    graph = helper.make_graph(nodes, "cycle", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def make_checker_failing_model() -> onnx.ModelProto:
    """Relu given two inputs: onnx.checker rejects it."""
    nodes = [helper.make_node("Relu", ["x", "x"], ["y"], name="bad_relu")]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def make_conv_custom_conv_model() -> onnx.ModelProto:
    """x[1,3,8,8] → Conv → Relu → custom.Mystery (no schema, so no shape inference) → Conv → Relu → y."""
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Mystery", ["r1"], ["f1"], name="mystery", domain="custom"),
             helper.make_node("Conv", ["f1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["y"], name="relu2")]
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
             for name, shape in (("w1", (4, 3, 3, 3)), ("b1", (4,)), ("w2", (2, 4, 3, 3)), ("b2", (2,)))]
    graph = helper.make_graph(nodes, "conv_custom_conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)])
    onnx.checker.check_model(model)
    return model
