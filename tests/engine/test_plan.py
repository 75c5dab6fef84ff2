"""The plan file: round trip, and every kind of damage raising PlanFormatError with a message saying what is wrong."""
from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as trt
from engine.conformance.harness import parse_onnx
from engine.plan import FORMAT_VERSION

ENGINE_DIR = Path(__file__).resolve().parents[2] / "engine"
RNG = np.random.default_rng(3)
W = RNG.standard_normal((12, 5)).astype(np.float32)
PREFIX = struct.Struct("<8sIQ")


def reshape_matmul_model():
    """x (N,3,4) → Reshape to (N, 12) via Shape/Gather/Unsqueeze/Concat (host shape arithmetic at run time)
    → MatMul W → Softmax: it exercises host layers, constants, enum params and dynamic dims in the plan."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsqueeze"),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"], name="reshape"),
        helper.make_node("MatMul", ["flat", "W"], ["logits"], name="matmul"),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
             numpy_helper.from_array(W, "W")]
    graph = helper.make_graph(nodes, "reshape_matmul", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                     ["N", 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def build_plan(fp16: bool = False) -> bytes:
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device = "cpu"
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 4), (2, 3, 4), (6, 3, 4))
    config.add_optimization_profile(profile)
    return builder.build_serialized_network(parse_onnx(reshape_matmul_model()), config)


@pytest.fixture(scope="module")
def plan() -> bytes:
    return build_plan()


def load(data: bytes) -> trt.Engine:
    return trt.Runtime(trt.Logger(trt.Logger.INTERNAL_ERROR)).deserialize_cuda_engine(data)


def reseal(plan: bytes, edit) -> bytes:
    """Edit the JSON header and write a plan with a valid checksum: damage the checksum alone cannot catch."""
    magic, version, header_len = PREFIX.unpack_from(plan)
    header = json.loads(plan[PREFIX.size:PREFIX.size + header_len])
    start = PREFIX.size + header_len
    buffers = plan[start + (-start) % 64:-32]
    edit(header)
    body = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    head = PREFIX.pack(magic, version, len(body)) + body
    payload = head + b"\0" * ((-len(head)) % 64) + buffers
    return payload + hashlib.sha256(payload).digest()


def test_round_trip_gives_identical_outputs(plan: bytes, tmp_path: Path) -> None:
    engine = load(plan)
    path = tmp_path / "model.plan"
    path.write_bytes(engine.serialize())
    reloaded = load(path.read_bytes())
    assert reloaded.serialize() == plan
    assert reloaded.meta["profiles"] == engine.meta["profiles"] == [{"x": [[1, 3, 4], [2, 3, 4], [6, 3, 4]]}]
    assert [r["tactic_id"] for r in reloaded.layer_info()] == [r["tactic_id"] for r in engine.layer_info()]
    assert reseal(plan, lambda header: None) == plan
    session = ort.InferenceSession(reshape_matmul_model().SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in (1, 6):
        x = RNG.standard_normal((batch, 3, 4)).astype(np.float32)
        first = engine.create_execution_context().execute({"x": x})["y"]
        second = reloaded.create_execution_context().execute({"x": x})["y"]
        np.testing.assert_array_equal(first, second)
        np.testing.assert_allclose(first, session.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_fp16_plan_round_trip_keeps_half_weights() -> None:
    data = build_plan(fp16=True)
    engine = load(data)
    floating = [a.dtype for a in engine.graph.constants.values() if a.dtype.kind == "f"]
    assert floating == [np.dtype(np.float16)]  # the FP32 copy of the weights is not kept
    fp32_dead = load(build_plan()).meta["passes"]["dead_layer_elimination"]
    assert engine.meta["passes"]["dead_layer_elimination"] == fp32_dead + 1  # the FP32 weights the FP16 copy replaced
    assert load(engine.serialize()).serialize() == data
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    a = engine.create_execution_context().execute({"x": x})["y"]
    b = load(data).create_execution_context().execute({"x": x})["y"]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("where", ["header", "weights", "checksum"])
def test_flipped_byte_is_detected(plan: bytes, where: str) -> None:
    header_len = PREFIX.unpack_from(plan)[2]
    index = {"header": PREFIX.size + header_len // 2, "weights": len(plan) - 32 - 8, "checksum": len(plan) - 1}[where]
    damaged = bytearray(plan)
    damaged[index] ^= 0x01
    with pytest.raises(trt.PlanFormatError, match="plan: checksum mismatch: the file is corrupted or truncated"):
        load(bytes(damaged))


@pytest.mark.parametrize("keep", [0, 10, 52, 100, -1, -33])
def test_truncated_plan_is_detected(plan: bytes, keep: int) -> None:
    data = plan[:keep]
    message = "file is too short" if len(data) < PREFIX.size + 32 else "checksum mismatch"
    with pytest.raises(trt.PlanFormatError, match=message):
        load(data)


def test_wrong_magic(plan: bytes) -> None:
    with pytest.raises(trt.PlanFormatError, match=re.escape("not a polyx plan (bad magic b'NOTAPLAN', "
                                                            "expected b'POLYXPLN')")):
        load(b"NOTAPLAN" + plan[8:])


def test_timing_cache_is_not_a_plan() -> None:
    with pytest.raises(trt.PlanFormatError, match="not a polyx plan"):
        load(trt.TimingCache().serialize())


@pytest.mark.parametrize("other", [FORMAT_VERSION - 1, FORMAT_VERSION + 1], ids=["older", "newer"])
def test_other_format_version(plan: bytes, other: int) -> None:
    data = bytearray(plan)
    struct.pack_into("<I", data, 8, other)
    with pytest.raises(trt.PlanFormatError,
                       match=f"plan: format version {other} is not supported .*reads version {FORMAT_VERSION}"):
        load(bytes(data))


@pytest.mark.parametrize("size", [1, 100, 5000])
def test_garbage_bytes(size: int) -> None:
    with pytest.raises(trt.PlanFormatError, match="plan: (file is too short|not a polyx plan)"):
        load(np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes())


def test_empty_and_onnx_files_are_rejected() -> None:
    with pytest.raises(trt.PlanFormatError, match=r"file is too short \(0 bytes\)"):
        load(b"")
    with pytest.raises(trt.PlanFormatError, match="bad magic"):
        load(reshape_matmul_model().SerializeToString())


def _drop_layers(header):
    del header["layers"]


def _object_dtype(header):
    next(iter(header["buffers"].values()))["dtype"] = "|O"


def _buffer_outside(header):
    next(iter(header["buffers"].values()))["offset"] = 1 << 30


def _unknown_layer_type(header):
    header["layers"][-1]["type"] = "NO_SUCH_LAYER"


def _negative_residual(header):
    header["layers"][-1]["epilogue"] = {"residual": -1, "activation": None, "output_scale": None}


def _residual_past_the_inputs(header):
    header["layers"][-1]["epilogue"] = {"residual": 5, "activation": None, "output_scale": None}


def _unknown_activation(header):
    header["layers"][-1]["epilogue"] = {"residual": None, "activation": {"type": "NOPE", "alpha": 0, "beta": 0},
                                         "output_scale": None}


def _epilogue_with_extra_field(header):
    header["layers"][-1]["epilogue"] = {"residual": None, "activation": None, "output_scale": None,
                                         "bias": 1}


@pytest.mark.parametrize("edit, message", [
    (_drop_layers, r"plan: 'layers': must be a list, got NoneType"),
    (_negative_residual, r"layer 'softmax': epilogue residual must be an input position or null, got -1"),
    (_residual_past_the_inputs, r"layer 'softmax': epilogue residual 5 is not one of its 1 inputs"),
    (_unknown_activation, r"'NOPE' is not a valid ActivationType"),
    (_epilogue_with_extra_field,
     r"layer 'softmax': epilogue must be an object with 'residual', 'activation' and 'output_scale'"),
    (_object_dtype, r"plan: buffer 'const\d+': dtype '\|O' is not one of \["),
    (_buffer_outside, r"plan: buffer 'const\d+' \(offset 1073741824, \d+ bytes\) lies outside the data area"),
    (_unknown_layer_type, r"plan: layer 'softmax' type: 'NO_SUCH_LAYER' is not a known layer type"),
])
def test_consistent_but_malformed_header(plan: bytes, edit, message: str) -> None:
    with pytest.raises(trt.PlanFormatError, match=message):
        load(reseal(plan, edit))


def test_no_pickle_in_engine_sources() -> None:
    """Plans and caches must never execute code when loaded: no pickle module, no allow_pickle=True, and every
    np.load says allow_pickle=False."""
    sources = sorted(ENGINE_DIR.rglob("*.py"))
    assert len(sources) > 20
    offenders = []
    for path in sources:
        text = path.read_text()
        if re.search(r"^\s*(import|from)\s+(c?pickle|dill|cloudpickle|shelve|marshal)\b", text, re.M) or \
                re.search(r"\bpickle\.(loads?|dumps?)\b|allow_pickle\s*=\s*True", text):
            offenders.append(str(path))
        for call in re.findall(r"np\.load\([^)]*\)", text):
            if "allow_pickle=False" not in call:
                offenders.append(f"{path}: {call}")
    assert offenders == []


@pytest.mark.parametrize("entry, message", [
    ([], r"expected \{tactic, timings_ms, source\}"),
    ({"tactic": "7", "timings_ms": {"7": 1.0}}, r"'tactic' must be a tactic id"),
    ({"tactic": 7, "timings_ms": {"7": -1.0}}, r"timings_ms\['7'\] must map a tactic id to milliseconds"),
    ({"tactic": 7, "timings_ms": {"x": 1.0}}, r"timings_ms\['x'\]"),
    ({"tactic": 7, "timings_ms": {"8": 1.0}}, r"the chosen tactic 7 has no timing"),
    ({"tactic": 7, "timings_ms": {"7": 1.0}, "source": 3}, r"'source' must be a TacticSource name"),
    ({"tactic": 7, "timings_ms": {"7": 1.0}, "extra": 1}, r"unknown field\(s\) \['extra'\]"),
])
def test_a_crafted_timing_cache_entry_is_refused_naming_it(entry, message) -> None:
    from engine.container import pack
    from engine.timing_cache import FORMAT_VERSION, MAGIC

    data = pack(MAGIC, FORMAT_VERSION, {"entries": {"abc123": entry}})
    with pytest.raises(trt.PlanFormatError, match=rf"timing cache entry 'abc123': {message}"):
        trt.TimingCache.deserialize(data)


def test_timing_cache_round_trip_keeps_sources() -> None:
    cache = trt.TimingCache()
    cache.update("k1", {7: 0.5, 9: 0.25}, 9, "CUBLAS")
    cache.update("k2", {3: 1.0}, 3)
    again = trt.TimingCache.deserialize(cache.serialize())
    assert again.entries == {"k1": {"tactic": 9, "timings_ms": {"7": 0.5, "9": 0.25}, "source": "CUBLAS"},
                             "k2": {"tactic": 3, "timings_ms": {"3": 1.0}, "source": None}}
