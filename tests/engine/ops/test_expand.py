"""EXPAND and TILE layers; ONNX Expand and Tile, including shapes/repeats computed from dynamic dims."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx import TensorProto, helper
from shape_op_checks import check_model_against_ort, graph_model

from engine.conformance.harness import parse_onnx
from engine.dtypes import DataType
from engine.enums import LayerType
from engine.ops.base import TensorInfo, layer_impl

RNG = np.random.default_rng(7)
F = TensorProto.FLOAT


@pytest.mark.parametrize("case", cases_for({"Expand", "Tile"}), ids=lambda c: c.name)
def test_backend_cases(case):
    run_case(case)


def test_expand_to_runtime_shape_of_another_input():
    """Expand(x, Shape(y)): the mask-broadcast pattern of attention exports."""
    nodes = [helper.make_node("Shape", ["y"], ["s"]), helper.make_node("Expand", ["x", "s"], ["z"])]
    model = graph_model(nodes, {"x": (F, [1, "n", 1]), "y": (F, ["b", "n", 4])}, ["z"])
    assert parse_onnx(model).find_tensor("z").shape == (-1, -1, -1)
    x = RNG.standard_normal((1, 3, 1)).astype(np.float32)
    check_model_against_ort(model, {"x": x, "y": np.zeros((2, 3, 4), np.float32)})


def test_expand_with_ones_keeps_larger_dims_and_grows_rank():
    x = RNG.integers(0, 9, (3, 1)).astype(np.int64)
    model = graph_model([helper.make_node("Expand", ["x", "shape"], ["z"])], {"x": (TensorProto.INT64, ["a", 1])},
                        ["z"], {"shape": np.array([2, 1, 5])})
    assert parse_onnx(model).find_tensor("z").shape == (2, -1, 5)
    check_model_against_ort(model, {"x": x})


def test_tile_repeats_from_shape():
    nodes = [helper.make_node("Shape", ["r"], ["reps"]), helper.make_node("Tile", ["x", "reps"], ["z"])]
    model = graph_model(nodes, {"x": (F, [2, "n"]), "r": (F, ["p", "q"])}, ["z"])
    check_model_against_ort(model, {"x": RNG.standard_normal((2, 3)).astype(np.float32),
                                    "r": np.zeros((3, 2), np.float32)})


def test_infer_with_unknown_shape_values():
    expand = layer_impl(LayerType.EXPAND).infer(None, [TensorInfo((4, 1), DataType.FLOAT),
                                                       TensorInfo((3,), DataType.INT64)])
    assert expand == [((-1, 4, -1), DataType.FLOAT)]
    tile = layer_impl(LayerType.TILE).infer(None, [TensorInfo((4, -1), DataType.HALF),
                                                   TensorInfo((2,), DataType.INT64, np.array([2, 0]))])
    assert tile == [((8, 0), DataType.HALF)]
