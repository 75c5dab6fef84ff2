"""The GPU backend's bfloat16 paths, on the CPU: steps and the eager (control-flow) run with a NumPy stand-in for
CuPy. On the GPU a BF16 tensor is a uint16 array of its bits; host operands (a Range bound, a Pad value) stay NumPy
arrays of ml_dtypes.bfloat16. The stand-in keeps both apart as CuPy does: its device arrays are a NumPy subclass,
and its widen/narrow "kernels" refuse a plain NumPy array with CuPy's own TypeError. So each test fails here the
way the conformance cases failed on the H100 (Range and Pad: `TypeError: Unsupported type numpy.ndarray`; the
expanded Range: a trip count computed from the bits, giving 1 value instead of 2). The `gpu` tests at the end run
the real cases on CuPy."""
from __future__ import annotations

import functools
import types
import warnings

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.backend.test.case import node

import engine.bfloat16 as bfloat16
from engine.bfloat16 import GPU_BFLOAT16_STORAGE, widened_run
from engine.conformance.harness import parse_onnx, run_onnx
from engine.eager_execution import run_eagerly
from engine.enums import LayerType
from engine.graph import lower
from engine.ir import graph_from_network
from engine.tactics.reference import ReferenceTactic


class DeviceArray(np.ndarray):
    """An array 'on the device' of the stand-in."""


def device(array: np.ndarray) -> DeviceArray:
    """A host array as the GPU backend stores it (bfloat16 as its uint16 bits)."""
    array = np.asarray(array)
    if array.dtype == ml_dtypes.bfloat16:
        array = array.view(np.uint16)
    return np.array(array, copy=True).view(DeviceArray)


def _device_only(*arrays) -> None:
    for a in arrays:
        if not isinstance(a, DeviceArray):
            raise TypeError(f"Unsupported type {type(a)}")  # what a CuPy ElementwiseKernel says


def _widen(bits):
    _device_only(bits)
    return (bits.astype(np.uint32) << 16).view(np.float32).view(DeviceArray)


def _narrow(x, bits):
    _device_only(x, bits)
    bits[...] = np.asarray(x, dtype=np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)


def _device_empty(shape, dtype=np.float32):
    return np.empty(shape, dtype=dtype).view(DeviceArray)


def _on_device(function):
    """A NumPy function whose array results are the stand-in's device arrays, as CuPy's are."""
    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        result = function(*args, **kwargs)
        return result.view(DeviceArray) if isinstance(result, np.ndarray) else result
    return wrapped


def _without_bfloat16(function):
    """A constructor that refuses the bfloat16 dtype, which CuPy does not have."""
    @functools.wraps(function)
    def wrapped(*args, dtype=None, **kwargs):
        if dtype is not None and np.dtype(dtype) == ml_dtypes.bfloat16:
            raise TypeError("Unsupported dtype bfloat16")
        return function(*args, dtype=dtype, **kwargs)
    return wrapped


FAKE_CUPY = types.ModuleType("fake_cupy")  # NumPy's functions, but not `np`: the code takes its GPU branches
FAKE_CUPY.__dict__.update({name: _on_device(value) if callable(value) and not isinstance(value, type) else value
                           for name, value in vars(np).items() if not name.startswith("_")})
FAKE_CUPY.empty = _device_empty
for _name in ("empty", "full", "eye", "zeros", "ones", "arange", "asarray", "array"):
    setattr(FAKE_CUPY, _name, _without_bfloat16(getattr(FAKE_CUPY, _name)))


@pytest.fixture
def fake_gpu(monkeypatch):
    """The stand-in's conversion kernels in place of the CuPy ones."""
    monkeypatch.setattr(bfloat16, "_KERNELS", [_widen, _narrow])
    return FAKE_CUPY


def bits_as_bfloat16(array) -> np.ndarray:
    return np.asarray(array).view(np.uint16).view(ml_dtypes.bfloat16)


def only_layer(model, layer_type: LayerType):
    (layer,) = [lay for lay in parse_onnx(model).layers if lay.type == layer_type]
    return layer


def run_widened_reference(layer, inputs, outputs, in_positions, out_positions, xp):
    tactic = ReferenceTactic(layer.type, "gpu")
    state = tactic.prepare(types.SimpleNamespace(layer=layer))
    widened_run(tactic.run, None, (in_positions, out_positions))(state, inputs, outputs, None, xp)


def bf16_model(op: str, inputs, output_shape, initializers=(), opset=21, **attrs):
    graph = helper.make_graph(
        [helper.make_node(op, [name for name, _ in inputs], ["y"], name="n", **attrs)], "g",
        [helper.make_tensor_value_info(name, TensorProto.BFLOAT16 if shape is not None else TensorProto.INT64,
                                       shape or []) for name, shape in inputs
         if name not in {t.name for t in initializers}],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, output_shape)], list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_range_with_host_bfloat16_bounds_runs_on_the_gpu_stand_in(fake_gpu) -> None:
    model = bf16_model("Range", [("start", []), ("limit", []), ("delta", [])], [None])
    bounds = [np.array(v, dtype=ml_dtypes.bfloat16) for v in (1.5, 4.0, 0.75)]  # host operands, as on the GPU
    out = _device_empty((4,), GPU_BFLOAT16_STORAGE)
    run_widened_reference(only_layer(model, LayerType.FILL), bounds, [out], (0, 1, 2), (0,), fake_gpu)
    # 1.5 + i * 0.75 for i < ceil(2.5 / 0.75) = 4, every value exact in bfloat16
    np.testing.assert_array_equal(bits_as_bfloat16(out).astype(np.float32), [1.5, 2.25, 3.0, 3.75])


@pytest.mark.parametrize("op", ["ConstantOfShape", "EyeLike"])
def test_bfloat16_fills_are_made_without_a_bfloat16_array_on_the_gpu_stand_in(fake_gpu, op) -> None:
    """ConstantOfShape with a bfloat16 value, EyeLike to bfloat16: the kernel makes float32, the step rounds."""
    if op == "ConstantOfShape":
        value = helper.make_tensor("value", TensorProto.BFLOAT16, [1], [-2.75])  # exact in bfloat16
        model = bf16_model(op, [("shape", None)], [2, 3], value=value)
        inputs, widened, expected = [np.array([2, 3], np.int64)], (), np.full((2, 3), -2.75)
    else:
        model = bf16_model(op, [("x", [2, 3])], [2, 3], k=1, dtype=TensorProto.BFLOAT16)
        inputs, widened, expected = [device(np.zeros((2, 3), ml_dtypes.bfloat16))], (0,), np.eye(2, 3, k=1)
    out = _device_empty((2, 3), GPU_BFLOAT16_STORAGE)
    run_widened_reference(only_layer(model, LayerType.FILL), inputs, [out], widened, (0,), fake_gpu)
    np.testing.assert_array_equal(bits_as_bfloat16(out).astype(np.float64), expected)


def test_pad_with_a_host_bfloat16_value_runs_on_the_gpu_stand_in(fake_gpu) -> None:
    pads = helper.make_tensor("pads", TensorProto.INT64, [4], [0, 1, 0, 2])
    model = bf16_model("Pad", [("x", [2, 2]), ("pads", None), ("value", [])], [2, 5], [pads])
    x = np.array([[1.0, -2.0], [0.5, 3.0]], dtype=ml_dtypes.bfloat16)
    value = np.array(-np.inf, dtype=ml_dtypes.bfloat16)  # the attention expansion pads its bias with -inf
    out = _device_empty((2, 5), GPU_BFLOAT16_STORAGE)
    run_widened_reference(only_layer(model, LayerType.PADDING), [device(x), None, value], [out], (0, 2), (0,),
                          fake_gpu)
    inf = -np.inf
    np.testing.assert_array_equal(bits_as_bfloat16(out).astype(np.float32),
                                  [[inf, 1.0, -2.0, inf, inf], [inf, 0.5, 3.0, inf, inf]])


def test_a_data_dependent_layer_keeps_its_outputs_when_widened(fake_gpu) -> None:
    """NonZero of a bfloat16 input: its output, which the kernel sizes, must reach the step; -0.0 (bits 0x8000)
    is zero although its bits are not."""
    model = bf16_model("NonZero", [("x", [5])], [1, None])
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64
    x = np.array([0.0, -0.0, 2.0, 0.0, -1.5], dtype=ml_dtypes.bfloat16)
    outputs = [None]
    run_widened_reference(only_layer(model, LayerType.NON_ZERO), [device(x)], outputs, (0,), (), fake_gpu)
    np.testing.assert_array_equal(outputs[0], [[2, 4]])


def test_a_data_dependent_bfloat16_output_is_stored_as_bits(fake_gpu) -> None:
    """A tactic that sizes a bfloat16 output itself (no array given): the widened run makes the stored one."""
    def run(state, inputs, outputs, workspace, xp):
        outputs[0] = np.array([0.1, 1.0, 3.0], dtype=np.float32).view(DeviceArray)

    outputs = [None]
    widened_run(run, None, ((), (0,)))(None, [], outputs, None, fake_gpu)
    assert outputs[0].dtype == GPU_BFLOAT16_STORAGE
    np.testing.assert_array_equal(bits_as_bfloat16(outputs[0]),
                                  np.array([0.1, 1.0, 3.0], dtype=np.float32).astype(ml_dtypes.bfloat16))


@functools.cache
def conformance_case(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnx's case generators warn about their own overflows
        (case,) = [c for c in node.collect_testcases(None) if c.name == name]
    return case


class FakeGpuBackend:
    xp = FAKE_CUPY

    @staticmethod
    def to_device(array):
        return device(array)

    @staticmethod
    def allocate(nbytes):
        return _device_empty((nbytes,), np.uint8)


def test_expanded_range_trial_counts_in_values_not_bits(fake_gpu) -> None:
    """The Loop of Range's expansion runs limit - start over delta times, computed from bfloat16 inputs; on the
    bits (1: 0x3F80, 5: 0x40A0, 2: 0x4000) the count came out 1, not 2."""
    case = conformance_case("test_range_bfloat16_type_positive_delta_expanded")
    graph = lower(graph_from_network(parse_onnx(case.model)))
    inputs = dict(zip(graph.inputs, (device(a) for a in case.data_sets[0][0])))
    slots, shapes, _ = run_eagerly(graph, None, "gpu", FakeGpuBackend, inputs, {})
    (output,) = graph.outputs
    assert shapes[output] == (2,), f"trial run gave shape {shapes[output]} for Range(1, 5, 2)"
    assert slots[output].dtype == GPU_BFLOAT16_STORAGE
    np.testing.assert_array_equal(bits_as_bfloat16(slots[output]).astype(np.float32), [1.0, 3.0])


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["test_range_bfloat16_type_positive_delta",
                                  "test_range_bfloat16_type_positive_delta_expanded"])
def test_bfloat16_range_cases_on_gpu(name: str) -> None:
    case = conformance_case(name)
    feeds = dict(zip([i.name for i in case.model.graph.input], case.data_sets[0][0]))
    (actual,) = run_onnx(case.model, feeds, device="gpu").values()
    (expected,) = case.data_sets[0][1]
    assert actual.dtype == ml_dtypes.bfloat16, f"{name}: output dtype {actual.dtype}"
    np.testing.assert_array_equal(actual.astype(np.float32), expected.astype(np.float32), err_msg=name)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["test_attention_4d_padded_kv_bf16_expanded",
                                  "test_attention_4d_causal_padded_kv_bf16_expanded"])
def test_bfloat16_padded_attention_cases_build_and_run_on_gpu(name: str) -> None:
    """These fail only by bfloat16 rounding (engine/conformance/expected.py): the CPU engine is within 1.25
    bfloat16 ULPs (2**-7 relative) of the expected values; the GPU sums in another order, so allow it 2 ULPs from
    the CPU engine and 3 from the expected values. A wrong padding value (0 for -inf) is off by far more."""
    case = conformance_case(name)
    feeds = dict(zip([i.name for i in case.model.graph.input], case.data_sets[0][0]))
    (gpu,) = run_onnx(case.model, feeds, device="gpu").values()
    (cpu,) = run_onnx(case.model, feeds, device="cpu").values()
    (expected,) = case.data_sets[0][1]
    assert gpu.shape == expected.shape, f"{name}: shape {gpu.shape}, expected {expected.shape}"
    wide = expected.astype(np.float64)
    np.testing.assert_allclose(gpu.astype(np.float64), wide, rtol=3 * 2.0 ** -7, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(gpu.astype(np.float64), cpu.astype(np.float64), rtol=2 * 2.0 ** -7, atol=1e-6,
                               err_msg=f"{name}: GPU vs CPU engine")
