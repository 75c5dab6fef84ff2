"""Crafted plans with a recomputed checksum (damage the SHA-256 cannot catch): every one is refused at load with a
PlanFormatError naming the field, before any buffer is read or any kernel runs (docs/guarantees.md)."""
from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as trt
from engine.conformance.harness import parse_onnx

PREFIX = struct.Struct("<8sIQ")
RNG = np.random.default_rng(5)
W = RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)
B = RNG.standard_normal(3).astype(np.float32)


@pytest.fixture(scope="module")
def plan() -> bytes:
    """x (N,2,5,5) → Conv 3x3 pad 1 (W, B) → Softmax over channels; tensors x=0, w=1, b=2, c=3, y=4."""
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Softmax", ["c"], ["y"], name="softmax", axis=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(W, "w"), numpy_helper.from_array(B, "b")])
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device = "cpu"
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 2, 5, 5), (2, 2, 5, 5), (4, 2, 5, 5))
    config.add_optimization_profile(profile)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return builder.build_serialized_network(parse_onnx(model), config)


def reseal(plan: bytes, edit) -> bytes:
    """Apply `edit` to the JSON header (it may return a replacement) and recompute the checksum."""
    magic, version, header_len = PREFIX.unpack_from(plan)
    header = json.loads(plan[PREFIX.size:PREFIX.size + header_len])
    start = PREFIX.size + header_len
    buffers = plan[start + (-start) % 64:-32]
    replaced = edit(header)
    body = json.dumps(header if replaced is None else replaced, separators=(",", ":")).encode()
    head = PREFIX.pack(magic, version, len(body)) + body
    payload = head + b"\0" * ((-len(head)) % 64) + buffers
    return payload + hashlib.sha256(payload).digest()


def load(data: bytes) -> trt.Engine:
    return trt.Runtime(trt.Logger(trt.Logger.INTERNAL_ERROR)).deserialize_cuda_engine(data)


def setter(*path, value):
    """An edit that sets header[path...] = value; a key "@name" picks the list entry of that name."""
    def edit(header):
        target = header
        for key in path[:-1]:
            target = next(entry for entry in target if entry["name"] == key[1:]) \
                if isinstance(key, str) and key.startswith("@") else target[key]
        target[path[-1]] = value
    return edit


CASES = [
    (lambda h: [h], r"^plan: header must be a JSON object, got list$"),
    (setter("buffers", value=[]), r"^plan: 'buffers' must be an object, got list$"),
    (setter("buffers", "const2", "offset", value=-64),
     r"^plan: buffer 'const2': offset must be a non-negative integer, got -64$"),
    (setter("buffers", "const2", "offset", value=8), r"^plan: buffer 'const2': offset 8 is not aligned to 64 bytes$"),
    (setter("buffers", "const2", "offset", value=192),
     r"^plan: buffer 'const2' at offset 192 overlaps buffer 'const1', which ends at 216$"),
    (setter("buffers", "const2", "nbytes", value=8),
     r"^plan: buffer 'const2': nbytes 8 does not match shape \[3\] of <f4 \(12 bytes\)$"),
    (setter("buffers", "const2", "dtype", value="<c8"), r"^plan: buffer 'const2': dtype '<c8' is not one of \["),
    (setter("buffers", "const2", "dtype", value="<i4"),
     r"^plan: buffer 'const2': int32 of shape \[3\] does not match tensor 'b' \(FLOAT \[3\]\)$"),
    (setter("buffers", "const2", "shape", value=[3, -1]),
     r"^plan: buffer 'const2': shape must be a list of non-negative integers, got \[3, -1\]$"),
    (setter("buffers", "const2", "extra", value=1), r"^plan: buffer 'const2' must be an object with offset, nbytes"),
    (setter("layers", "@conv", "inputs", value=[0, 1, 99]),
     r"^plan: layer 'conv' inputs: tensor index 99 is not in 0\.\.4$"),
    (setter("layers", "@softmax", "outputs", value=[-1]),
     r"^plan: layer 'softmax' outputs: tensor index -1 is not in 0\.\.4$"),
    (setter("outputs", value=[7]), r"^plan: 'outputs': tensor index 7 is not in 0\.\.4$"),
    (setter("inputs", value=["x"]), r"^plan: 'inputs': tensor index 'x' is not in 0\.\.4$"),
    (setter("layers", "@conv", "params", "stride_nd", value=[0, 0]),
     r"^plan: layer 'conv' \(CONVOLUTION\): its params or inputs are invalid \("),
    (setter("layers", "@conv", "params", "stride_nd", value=[2, 2]),
     r"^plan: layer 'conv' \(CONVOLUTION\) output 'c': shape \[-1, 3, 5, 5\] in the plan, the layer makes "
     r"\[-1, 3, 3, 3\]$"),
    (setter("tensors", 0, "dtype", value="HALF"),
     r"^plan: layer 'conv' \(CONVOLUTION\) output 'c': dtype FLOAT in the plan, the layer makes HALF$"),
    (setter("tensors", 4, "dtype", value="INT32"),
     r"^plan: layer 'softmax' \(SOFTMAX\) output 'y': dtype INT32 in the plan, the layer makes FLOAT$"),
    (setter("tensors", 0, "dtype", value="COMPLEX"), r"^plan: tensors\[0\] \('x'\) dtype: 'COMPLEX' is not a known"),
    (setter("tensors", 0, "shape", value="abc"), r"^plan: tensors\[0\] \('x'\) shape: must be null or a list of dims"),
    (setter("tensors", 1, "shape", value=[3, 2, 3, 4]),
     r"^plan: buffer 'const1': float32 of shape \[3, 2, 3, 3\] does not match tensor 'w'"),
    (setter("layers", "@conv", "host", value="no"), r"^plan: layer 'conv' host: must be true or false, got 'no'$"),
    (setter("layers", "@softmax", "outputs", value=[3]),
     r"^plan: layer 'softmax' outputs: tensor 3 is produced twice \(or is a network input\)$"),
    (setter("layers", "@conv", "tactic_names", value=[]),
     r"^plan: layer 'conv' tactic_names: must be a list of strings as long as tactic_ids$"),
    (setter("layers", "@conv", "tactic_names", value=[7]),
     r"^plan: layer 'conv' tactic_names: must be a list of strings as long as tactic_ids$"),
    (setter("meta", value=[]), r"^plan: 'meta' must be an object, got list$"),
    (setter("layers", "@conv", "host", value=True),
     r"^plan: layer 'conv' host: True in the plan, but the layer runs on the device$"),
    (setter("meta", "profiles", value=[{"x": 3}]), r"^plan: meta profiles\[0\] 'x': must be \[min, opt, max\] shapes"),
    (setter("meta", "profiles", value=[{"z": [[1], [1], [1]]}]), r"^plan: meta profiles\[0\] 'z': is not an input"),
    (setter("meta", "shape_input_values", value={}), r"^plan: meta 'shape_input_values': must be a list, got dict$"),
    (setter("meta", "shape_input_values", value=[{"x": [[1], [1], [1]]}]),
     r"^plan: meta shape_input_values\[0\] 'x': is not a shape input of the plan$"),
    (setter("layers", "@conv", "params", "num_groups", value=3),
     r"^plan: layer 'conv' \(CONVOLUTION\): its params or inputs are invalid \(EngineError: input has 2 channels"),
    (setter("layers", "@softmax", "output_types", value={"0": "HALF"}),
     r"^plan: layer 'softmax' \(SOFTMAX\) output 'y': dtype FLOAT in the plan, the layer makes HALF$"),
    (setter("layers", "@softmax", "output_types", value={"1": "FLOAT"}),
     r"^plan: layer 'softmax' output_types: must map output positions to known data types"),
    (setter("layers", "@conv", "params", "padding_mode", value="NOPE"),
     r"^plan: layer 'conv' params\.padding_mode: 'NOPE' is not a PaddingMode$"),
    (setter("layers", "@conv", "params", "pre_padding", value=[-3, -3]),
     r"^plan: layer 'conv' \(CONVOLUTION\) output 'c': shape \[-1, 3, 5, 5\] in the plan, the layer makes "),
    (setter("layers", "@conv", "params", "int8", value={"input_scale": 0.0, "weight_scales": [0.1, 0.1, 0.1]}),
     r"^plan: layer 'conv' params\.int8\.input_scale: must be a positive finite number, got 0\.0$"),
    (setter("layers", "@conv", "params", "int8", value={"input_scale": 0.1, "weight_scales": [0.1, float("inf")]}),
     r"^plan: layer 'conv' params\.int8\.weight_scales: must be positive finite numbers"),
    (setter("layers", "@conv", "params", "int8", value={"input_scale": 0.1, "weight_scales": [1],
                                                        "residual_scale": -1}),
     r"^plan: layer 'conv' params\.int8\.residual_scale: must be a positive finite number, got -1$"),
    (setter("layers", "@softmax", "params", "int8", value={"input_scales": [float("nan")]}),
     r"^plan: layer 'softmax' params\.int8\.input_scales: must hold one positive finite number \(or null\) per "
     r"input, 1, got \[nan\]$"),
    (setter("layers", "@softmax", "params", "int8", value={"input_scales": [0.1, 0.1]}),
     r"^plan: layer 'softmax' params\.int8\.input_scales: must hold one positive finite number \(or null\) per "),
    (setter("layers", "@softmax", "params", "int8", value={"scale": 0.1}),
     r"^plan: layer 'softmax' params\.int8: must be an object with keys among"),
]


@pytest.mark.parametrize("edit, message", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_crafted_header_is_refused_naming_the_field(plan: bytes, edit, message: str) -> None:
    with pytest.raises(trt.PlanFormatError, match=message):
        load(reseal(plan, edit))


def test_the_untampered_plan_loads_and_runs(plan: bytes) -> None:
    assert reseal(plan, lambda header: None)[:PREFIX.size] == plan[:PREFIX.size]
    engine = load(reseal(plan, lambda header: None))
    x = RNG.standard_normal((3, 2, 5, 5)).astype(np.float32)
    y = engine.create_execution_context().execute({"x": x})["y"]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # (N, 2, 5, 5, 3, 3)
    c = np.einsum("nchwij,ocij->nohw", windows, W.astype(np.float64)) + B.reshape(1, 3, 1, 1)
    e = np.exp(c - c.max(axis=1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_an_empty_buffer_packed_before_another_loads() -> None:
    """pack gives a 0-byte array the offset of the next buffer; names sort the other way round here."""
    from engine.container import pack, unpack

    data = pack(b"POLYXTST", 1, {}, {"b_empty": np.zeros((0, 3), np.float32), "a_next": np.ones(1, np.float32)})
    _, arrays = unpack(data, b"POLYXTST", 1, "test")
    assert arrays["b_empty"].shape == (0, 3) and arrays["a_next"].tolist() == [1.0]
