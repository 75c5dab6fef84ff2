"""Oversize work is refused before anything is allocated: the builder estimates its trial run's peak at the opt
shapes and raises a BuildError naming the layer and the size (never a raw MemoryError, never a full machine)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as trt
from engine.conformance.harness import parse_onnx
from engine.memory_plan import MEMORY_LIMIT_ENV


def build(model):
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device = "cpu"
    return builder.build_serialized_network(parse_onnx(model), config)


def model_of(nodes, x_shape, inits=()):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_an_input_of_2_to_the_40_rows_is_refused_naming_the_layer() -> None:
    model = model_of([helper.make_node("Relu", ["x"], ["y"], name="relu")], [2**40, 4])
    with pytest.raises(trt.BuildError, match=r"^layer 'relu' \(ACTIVATION\): the trial run at optimization profile 0's "
                                             r"opt shapes would hold 52,776,558,133,248 bytes there \(output 'y' of "
                                             r"shape \[1099511627776, 4\] alone is 17,592,186,044,416\)"):
        build(model)


def test_an_expand_past_the_limit_is_refused(monkeypatch) -> None:
    shape = numpy_helper.from_array(np.array([1000, 1000], np.int64), "shape")
    model = model_of([helper.make_node("Expand", ["x", "shape"], ["y"], name="expand")], [1, 1], [shape])
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(2_000_000))  # the expand's 4 MB output (twice, for timing) is over
    with pytest.raises(trt.BuildError) as info:
        build(model)
    assert str(info.value) == ("layer 'expand' (EXPAND): the trial run at optimization profile 0's opt shapes would "
                               "hold 8,000,004 bytes there (output 'y' of shape [1000, 1000] alone is 4,000,000), "
                               f"more than the 2,000,000 bytes available; use smaller opt shapes or set "
                               f"{MEMORY_LIMIT_ENV}")
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(100_000_000))
    assert build(model) is not None


def test_a_malformed_limit_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(trt.EngineError, match=rf"^{MEMORY_LIMIT_ENV}='lots': expected a number of bytes$"):
        build(model_of([helper.make_node("Relu", ["x"], ["y"], name="relu")], [2, 2]))


@pytest.mark.gpu
def test_a_gpu_build_is_refused_beyond_the_free_device_memory() -> None:
    """2**34 floats (64 GiB) per tensor: more than a GPU has free, far less than 2**40 rows; refused before any
    allocation, naming the GPU."""
    model = model_of([helper.make_node("Relu", ["x"], ["y"], name="relu")], [2**32, 4])
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device = "gpu"
    with pytest.raises(trt.BuildError, match=r"^layer 'relu' \(ACTIVATION\): .* bytes available on the GPU"):
        builder.build_serialized_network(parse_onnx(model), config)
