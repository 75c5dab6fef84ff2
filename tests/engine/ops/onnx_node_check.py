"""Test helpers: build a one-node ONNX model, run it through the engine and through onnxruntime, compare."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from engine.conformance.harness import run_onnx


def node_model(op_type: str, inputs: Sequence[str], values: dict[str, np.ndarray], *, constants: Sequence[str] = (),
               attrs: dict | None = None, opset: int = 17, num_outputs: int = 1) -> onnx.ModelProto:
    """One `op_type` node reading `inputs` ('' = omitted optional input). Names in `constants` become
    initializers, the other names graph inputs of the dtype and shape of `values[name]`."""
    graph_inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(values[name].dtype),
                                                  values[name].shape)
                    for name in dict.fromkeys(inputs) if name and name not in constants]
    initializers = [numpy_helper.from_array(values[name], name) for name in constants]
    outputs = [f"y{i}" for i in range(num_outputs)]
    node = helper.make_node(op_type, list(inputs), outputs, **(attrs or {}))
    graph = helper.make_graph([node], op_type.lower(), graph_inputs, [onnx.ValueInfoProto(name=o) for o in outputs],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset <= 17 else 10
    return model


def feeds_of(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {i.name: values[i.name] for i in model.graph.input}


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def run_engine(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    outputs = run_onnx(model, feeds)
    return [outputs[o.name] for o in model.graph.output]


def assert_same(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    """Same dtype and shape; floats within tolerance (NaN where NaN), everything else exactly equal."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(actual, expected)


def check_against_ort(op_type: str, inputs: Sequence[str], values: dict[str, np.ndarray], *, rtol: float = 1e-6,
                      atol: float = 1e-6, **model_kwargs) -> list[np.ndarray]:
    """Run one node through the engine and onnxruntime; assert the outputs agree. Returns the engine outputs."""
    model = node_model(op_type, inputs, values, **model_kwargs)
    feeds = feeds_of(model, values)
    actual = run_engine(model, feeds)
    for got, want in zip(actual, run_ort(model, feeds)):
        assert_same(got, want, rtol, atol)
    return actual


def check_against_float64_reference(op_type: str, inputs: Sequence[str], values: dict[str, np.ndarray], *,
                                    rtol: float = 1e-6, atol: float = 1e-6, **model_kwargs) -> list[np.ndarray]:
    """Like check_against_ort, but the reference is onnx's ReferenceEvaluator run on the float inputs upcast to
    float64 (then cast back): exact where onnxruntime lacks a kernel for the dtype (float16/float64 variants)."""
    model = node_model(op_type, inputs, values, **model_kwargs)
    feeds = feeds_of(model, values)
    actual = run_engine(model, feeds)
    wide = {name: v.astype(np.float64) if v.dtype.kind == "f" else v for name, v in values.items()}
    wide_model = node_model(op_type, inputs, wide, **model_kwargs)
    with np.errstate(all="ignore"):  # the reference evaluates both branches of its np.where formulas
        expected = ReferenceEvaluator(wide_model).run(None, feeds_of(wide_model, wide))
    # The reference ran in float64: its float outputs stand for the model's own float type (the inputs' one), which
    # the engine must return — cast to that, not to whatever the engine returned, so a wrong dtype fails.
    narrow = {v.dtype for v in values.values() if v.dtype.kind == "f"}
    for got, want in zip(actual, expected):
        want = np.asarray(want)
        if want.dtype == np.float64 and len(narrow) == 1:
            want = want.astype(next(iter(narrow)))
        assert_same(got, want, rtol, atol)
    return actual
