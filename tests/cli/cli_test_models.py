"""Models and helpers shared by the CLI tests: the shared model files (skipped when absent) and a small MLP."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from shared_model_cases import MODELS

from polyx.cli.app import main

SHARED_MODELS = MODELS  # ../shared/models, or POLYX_MODELS_DIR


def shared_model(name: str) -> Path:
    path = SHARED_MODELS / f"{name}.onnx"
    if not path.is_file():
        pytest.skip(f"shared model {path} is not available")
    return path


def make_mlp(path: Path, hidden: int = 64, features: int = 32, classes: int = 10) -> Path:
    """x[batch, features] -> fc1 (MatMul) -> bias1 (Add) -> relu -> fc2 (MatMul) -> softmax -> probs."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((features, hidden)).astype(np.float32) * 0.3, "w1"),
             numpy_helper.from_array(rng.standard_normal(hidden).astype(np.float32) * 0.1, "b1"),
             numpy_helper.from_array(rng.standard_normal((hidden, classes)).astype(np.float32) * 0.3, "w2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"),
             helper.make_node("Add", ["h1", "b1"], ["h1b"], name="bias1"),
             helper.make_node("Relu", ["h1b"], ["a1"], name="relu"),
             helper.make_node("MatMul", ["a1", "w2"], ["logits"], name="fc2"),
             helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", classes])]
    graph = helper.make_graph(nodes, "mlp", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """polyx ARGS in-process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
