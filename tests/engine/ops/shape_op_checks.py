"""Test helpers for the shape and tensor-manipulation ops: ONNX backend cases whose shape operands are graph
inputs, and small multi-node models with dynamic dims checked against onnxruntime."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import SimpleNamespace

import numpy as np
import onnx
from backend_cases import run_case
from onnx import helper, numpy_helper
from onnx_node_check import assert_same, run_ort

from engine.conformance.harness import run_onnx


def run_case_frozen(case) -> None:
    """run_case, with every 0-D input and every 1-D integer input made an initializer first: these cases feed
    shape operands (Range bounds, OneHot depth, Reshape shape, ...) as graph inputs, whose values the builder
    does not take yet (TensorRT's set_shape_input)."""
    for frozen in _frozen_cases(case):
        run_case(frozen, freeze=False)


def _frozen_cases(case) -> Iterator[SimpleNamespace]:
    names = [i.name for i in case.model.graph.input]
    for inputs, expected in case.data_sets:
        values = dict(zip(names, inputs))
        shape_operands = {k: np.asarray(v) for k, v in values.items()
                          if np.ndim(v) == 0 or (np.ndim(v) == 1 and np.asarray(v).dtype.kind in "iu")}
        model = onnx.ModelProto.FromString(case.model.SerializeToString())
        model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in shape_operands.items())
        kept = [i for i in model.graph.input if i.name not in shape_operands]
        del model.graph.input[:]
        model.graph.input.extend(kept)
        data_set = ([values[i.name] for i in kept], expected)
        yield SimpleNamespace(name=case.name, model=model, data_sets=[data_set], rtol=case.rtol, atol=case.atol)


def graph_model(nodes: Sequence[onnx.NodeProto], inputs: dict[str, tuple[int, Sequence[int | str]]],
                outputs: Sequence[str], initializers: dict[str, np.ndarray] | None = None,
                opset: int = 17) -> onnx.ModelProto:
    """A model of `nodes`; `inputs` maps name -> (ONNX elem type, dims with strings for dynamic dims)."""
    graph = helper.make_graph(
        list(nodes), "g", [helper.make_tensor_value_info(n, t, d) for n, (t, d) in inputs.items()],
        [onnx.ValueInfoProto(name=o) for o in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset <= 17 else 10
    return model


def check_model_against_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray], rtol: float = 1e-6,
                            atol: float = 1e-6) -> list[np.ndarray]:
    """Run `model` through the engine and onnxruntime and assert every output agrees; returns the engine's."""
    outputs = run_onnx(model, feeds)
    actual = [outputs[o.name] for o in model.graph.output]
    for got, want in zip(actual, run_ort(model, feeds)):
        assert_same(np.asarray(got), want, rtol, atol)
    return actual
