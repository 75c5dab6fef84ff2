"""`layer.precision = INT8` under the precision-constraint flags: a requested pointwise layer with ranges runs as an
INT8 layer (checked against a float64 NumPy reference of the quantized arithmetic), Q/DQ reformats sit at its
precision boundaries; an OBEY'd INT8 layer that cannot be INT8 is a build error naming the layer and why; PREFER
falls back to float with a warning; without a flag the request is ignored with a warning."""
from __future__ import annotations

import numpy as np
import pytest

import engine as trt

RNG = np.random.default_rng(5)
SHAPE = (2, 3, 4)
AMAX = {"x": 3.0, "y": 2.0, "sum": 4.0}


class Messages(trt.Logger):
    def __init__(self):
        super().__init__(trt.Logger.WARNING)
        self.warnings: list[str] = []

    def log(self, severity, msg):
        if severity <= trt.Logger.WARNING:
            self.warnings.append(msg)


def add_then_softmax(ranges=AMAX, op_layer="add", marked_sum=False):
    """x + y → softmax → out, with dynamic ranges on the named tensors; the layer `op_layer` asks for INT8."""
    net = trt.NetworkDefinition()
    x, y = net.add_input("x", trt.DataType.FLOAT, SHAPE), net.add_input("y", trt.DataType.FLOAT, SHAPE)
    add = net.add_elementwise(x, y, trt.ElementWiseOperation.SUM, name="add")
    add.get_output(0).name = "sum"
    soft = net.add_softmax(add.get_output(0), name="softmax")
    net.mark_output(soft.get_output(0))
    if marked_sum:
        net.mark_output(add.get_output(0))
    tensors = {"x": x, "y": y, "sum": add.get_output(0)}
    for name, amax in ranges.items():
        tensors[name].set_dynamic_range(-amax, amax)
    {"add": add, "softmax": soft}[op_layer].precision = trt.DataType.INT8
    return net


def build(net, constraint=trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS, int8=True, logger=None):
    logger = logger or Messages()
    builder = trt.Builder(logger)
    config = builder.create_builder_config()
    if int8:
        config.set_flag(trt.BuilderFlag.INT8)
    if constraint is not None:
        config.set_flag(constraint)
    plan = builder.build_serialized_network(net, config)
    return trt.Runtime(logger).deserialize_cuda_engine(plan)


def quantized(a: np.ndarray, amax: float) -> np.ndarray:
    scale = np.float32(amax / 127.0)
    return np.clip(np.rint(a.astype(np.float64) / scale), -128, 127) * np.float64(scale)


def softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_an_obeyed_int8_add_runs_in_int8_between_q_and_dq_reformats() -> None:
    engine = build(add_then_softmax())
    rows = [(r["name"], r["type"], r["precision"]) for r in engine.layer_info() if not r["host"]]
    kinds = [(t, p) for _, t, p in rows]
    assert kinds == [("QUANTIZE", "FLOAT"), ("QUANTIZE", "FLOAT"), ("ELEMENTWISE", "INT8"), ("DEQUANTIZE", "FLOAT"),
                     ("SOFTMAX", "FLOAT")], rows
    x = (RNG.standard_normal(SHAPE) * 1.5).astype(np.float32)
    y = (RNG.standard_normal(SHAPE) * 1.0).astype(np.float32)
    (got,) = engine.create_execution_context().execute({"x": x, "y": y}).values()
    want = softmax(quantized(quantized(x, 3.0) + quantized(y, 2.0), 4.0))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    float_result = softmax(x.astype(np.float64) + y)
    assert np.max(np.abs(float_result - want)) > 1e-4  # the reference differs from float: the check has teeth


@pytest.mark.parametrize("case, message", [
    (dict(op_layer="softmax"), r"layer 'softmax' \(SOFTMAX\): precision INT8 is required .* SOFTMAX layers have no "
                               "INT8 implementation"),
    (dict(ranges={"x": 3.0, "y": 2.0}), "layer 'add' .* no dynamic range for 'sum'"),
    (dict(marked_sum=True), "layer 'add' .* its output is a network output"),
])
def test_an_obeyed_int8_layer_that_cannot_be_int8_is_a_build_error(case, message) -> None:
    with pytest.raises(trt.BuildError, match=message):
        build(add_then_softmax(**case))


def test_without_the_int8_flag_an_obeyed_int8_layer_says_so() -> None:
    with pytest.raises(trt.BuildError, match="layer 'add' .* INT8 is not enabled"):
        build(add_then_softmax(), int8=False)


def test_prefer_falls_back_to_float_with_a_warning() -> None:
    logger = Messages()
    engine = build(add_then_softmax(op_layer="softmax"), constraint=trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS,
                   logger=logger)
    (soft,) = [r for r in engine.layer_info() if r["name"] == "softmax"]
    assert soft["precision"] == "FLOAT"
    assert any("layer 'softmax': precision INT8 preferred" in w and "runs in float" in w for w in logger.warnings)


def test_without_a_constraint_flag_the_request_is_ignored_with_a_warning() -> None:
    logger = Messages()
    engine = build(add_then_softmax(), constraint=None, logger=logger)
    assert all(r["precision"] == "FLOAT" for r in engine.layer_info() if not r["host"])
    assert any("layer 'add': precision INT8 is ignored without OBEY" in w for w in logger.warnings)
