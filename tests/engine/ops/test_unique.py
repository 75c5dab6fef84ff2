"""UNIQUE layers and the ONNX Unique importer: the backend cases, onnxruntime on all four outputs, hand-computed
cases, the data-dependent machinery (stages, output allocator, a plan round trip) and the errors."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx import TensorProto, helper
from onnx_node_check import check_against_ort, node_model, run_ort

import engine as trt
from engine.conformance.harness import build_engine_for_feeds, parse_onnx, run_onnx
from engine.container import pack, unpack
from engine.dtypes import DataType
from engine.enums import LayerType
from engine.errors import ParseError, PlanFormatError
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo, layer_impl
from engine.plan import FORMAT_VERSION, MAGIC

RNG = np.random.default_rng(41)


@pytest.mark.parametrize("case", cases_for(["Unique"]), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)  # test_unique_bfloat16_sorted_without_axis included


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("is_sorted", [1, 0])
def test_all_four_outputs_match_onnxruntime(dtype, axis, is_sorted):
    x = RNG.integers(0, 3, (4, 6)).astype(dtype)
    x[2] = x[0]  # a repeated row and a repeated column, so slices repeat along both axes
    x[:, 4] = x[:, 1]
    attrs = {"sorted": is_sorted} | ({} if axis is None else {"axis": axis})
    y, first, inverse, counts = check_against_ort("Unique", ["x"], {"x": x}, attrs=attrs, opset=11, num_outputs=4)
    assert counts.sum() == (x.size if axis is None else x.shape[axis])


def test_unsorted_slices_by_hand():
    """Columns of x along axis 1, in order of first occurrence: c0 = (1, 2), c1 = (0, 0), c2 = c0, c3 = (1, 3)."""
    x = np.array([[1, 0, 1, 1], [2, 0, 2, 3]], np.float32)
    y, first, inverse, counts = check_against_ort("Unique", ["x"], {"x": x}, attrs={"axis": 1, "sorted": 0},
                                                  opset=11, num_outputs=4)
    np.testing.assert_array_equal(y, [[1, 0, 1], [2, 0, 3]])
    np.testing.assert_array_equal(first, [0, 1, 3])
    np.testing.assert_array_equal(inverse, [0, 1, 0, 2])
    np.testing.assert_array_equal(counts, [2, 1, 1])


def test_the_docs_example_by_hand():
    """docs/dynamic-shapes.md: x = [5, 5, 1, 7, 1, 5], sorted=0."""
    x = np.array([5, 5, 1, 7, 1, 5], np.int64)
    y, first, inverse, counts = check_against_ort("Unique", ["x"], {"x": x}, attrs={"sorted": 0}, opset=11,
                                                  num_outputs=4)
    for actual, expected in zip((y, first, inverse, counts), ([5, 1, 7], [0, 2, 3], [0, 0, 1, 2, 1, 0], [3, 2, 1])):
        np.testing.assert_array_equal(actual, expected)


def test_bfloat16_values_compare_as_values():
    """-0.0 and 0.0 are one value (as in float32); 1.0 repeats. Sorted: -1.5, 0, 1."""
    import ml_dtypes

    x = np.array([1.0, -0.0, 0.0, -1.5, 1.0], dtype=ml_dtypes.bfloat16)
    model = node_model("Unique", ["x"], {"x": x.astype(np.float32)}, opset=11, num_outputs=4)
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.BFLOAT16
    outputs = run_onnx(model, {"x": x})
    y, first, inverse, counts = (outputs[f"y{i}"] for i in range(4))
    assert y.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(y.astype(np.float32), [-1.5, 0.0, 1.0])
    np.testing.assert_array_equal(first, [3, 1, 0])
    np.testing.assert_array_equal(inverse, [2, 1, 1, 0, 2])
    np.testing.assert_array_equal(counts, [1, 2, 2])


def test_build_time_shapes_and_upper_bound():
    network = NetworkDefinition()
    x = network.add_input("x", DataType.FLOAT, (3, 5))
    layer = network.add_unique(x, axis=1)
    assert [layer.get_output(i).shape for i in range(4)] == [(3, -1), (-1,), (5,), (-1,)]
    assert [layer.get_output(i).dtype for i in range(4)] == [DataType.FLOAT] + [DataType.INT64] * 3
    impl = layer_impl(LayerType.UNIQUE)
    assert not impl.static_output_shape
    assert impl.upper_bound(layer, [TensorInfo((3, 5), DataType.FLOAT)]) == [
        ((3, 5), DataType.FLOAT), ((5,), DataType.INT64), ((5,), DataType.INT64), ((5,), DataType.INT64)]
    flat = network.add_unique(x)
    assert impl.upper_bound(flat, [TensorInfo((3, 5), DataType.FLOAT)])[0] == ((15,), DataType.FLOAT)


def counts_then_scale_model():
    """y = Unique(x).Y * 2 and the counts, after the data-dependent layer (a second stage)."""
    graph = helper.make_graph(
        [helper.make_node("Unique", ["x"], ["u", "", "", "counts"], sorted=0),
         helper.make_node("Mul", ["u", "two"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, None),
         helper.make_tensor_value_info("counts", TensorProto.INT64, None)],
        [helper.make_tensor("two", TensorProto.INT64, [], [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])


def build(model, lengths):
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device = "cpu"
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (lengths[0],), (lengths[1],), (lengths[2],))
    config.add_optimization_profile(profile)
    return builder.build_serialized_network(parse_onnx(model), config)


def test_a_small_integer_input_is_data_not_a_shape_input_and_sizes_change_per_run():
    """An INT64 input of up to 16 values would otherwise be a shape input (values fixed by the profile) and the
    Unique a host layer that nothing runs. Here each execution finds another count, through a plan round trip."""
    model = counts_then_scale_model()
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(build(model, (1, 6, 12)))
    assert engine.get_tensor_shape("y") == (-1,)
    context = engine.create_execution_context()
    for x in (np.array([5, 5, 1, 7, 1, 5]), np.array([3]), np.arange(12)[::-1] % 4):
        expected = run_ort(model, {"x": x})
        actual = context.execute({"x": x})
        np.testing.assert_array_equal(actual["y"], expected[0])
        np.testing.assert_array_equal(actual["counts"], expected[1])


def test_output_allocator_receives_the_count():
    model = counts_then_scale_model()
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(build(model, (1, 6, 12)))
    context = engine.create_execution_context()
    x = np.array([4, 4, 4, 9, 2, 9], np.int64)
    allocator = trt.HostOutputAllocator()
    context.set_input_shape("x", x.shape)
    context.set_tensor_address("x", x)
    for name in ("y", "counts"):
        context.set_output_allocator(name, allocator)
    assert context.execute_async_v3(0)
    np.testing.assert_array_equal(allocator.result("y", np.int64), [8, 18, 4])
    np.testing.assert_array_equal(allocator.result("counts", np.int64), [3, 2, 1])
    assert context.get_tensor_shape("counts") == (3,)


def test_axis_out_of_range_is_a_parse_error_naming_the_node():
    model = node_model("Unique", ["x"], {"x": np.zeros((2, 3), np.float32)}, attrs={"axis": 2}, opset=11,
                       num_outputs=4)
    model.graph.node[0].name = "uniq"
    with pytest.raises(ParseError, match=r"uniq.*Unique.*axis 2 is out of range for rank 2"):
        parse_onnx(model)


def test_sorted_other_than_0_or_1_is_a_parse_error():
    model = node_model("Unique", ["x"], {"x": np.zeros(3, np.float32)}, attrs={"sorted": 2}, opset=11, num_outputs=4)
    with pytest.raises(ParseError, match="sorted must be 0 or 1, got 2"):
        parse_onnx(model)


def with_unique_param(plan: bytes, key: str, value) -> bytes:
    """The plan re-packed with the Unique layer's params[key] set to `value` (a crafted, well-sealed plan)."""
    header, arrays = unpack(plan, MAGIC, FORMAT_VERSION, "plan")
    (entry,) = [e for e in header["layers"] if e["type"] == "UNIQUE"]
    entry["params"][key] = value
    return pack(MAGIC, FORMAT_VERSION, header, arrays)


@pytest.mark.parametrize("key, value, message", [
    ("sorted", "yes", "Unique 'sorted' must be true or false, got 'yes'"),
    ("axis", [0], r"Unique axis must be an integer or None, got \[0\]"),
    ("axis", 3, "Unique axis 3 is out of range for rank 1")])
def test_a_tampered_plan_param_is_refused_naming_the_layer(key, value, message):
    plan = build(counts_then_scale_model(), (1, 6, 12))
    runtime = trt.Runtime(trt.Logger(trt.Logger.INTERNAL_ERROR))
    assert runtime.deserialize_cuda_engine(with_unique_param(plan, "sorted", False)) is not None  # the edit itself
    with pytest.raises(PlanFormatError, match=f"Unique_0.*{message}"):
        runtime.deserialize_cuda_engine(with_unique_param(plan, key, value))


@pytest.mark.gpu
@pytest.mark.parametrize("axis", [None, 1])
@pytest.mark.parametrize("is_sorted", [True, False])
def test_unique_on_gpu_matches_numpy(axis, is_sorted):
    x = RNG.integers(0, 4, (3, 40)).astype(np.float32)
    x[:, 7] = x[:, 3]
    model = node_model("Unique", ["x"], {"x": x}, opset=11, num_outputs=4,
                       attrs={"sorted": int(is_sorted)} | ({} if axis is None else {"axis": axis}))
    engine = build_engine_for_feeds(parse_onnx(model), {"x": x}, device="gpu")
    actual = engine.create_execution_context().execute({"x": x})
    expected = run_ort(model, {"x": x})
    for i, want in enumerate(expected):
        np.testing.assert_array_equal(actual[f"y{i}"], want, err_msg=f"output {i} (axis={axis}, sorted={is_sorted})")


@pytest.mark.gpu
def test_bfloat16_unique_on_gpu_matches_the_cpu_engine():
    """A BF16 Unique on the GPU: uint16 bits widened to float32, Y (sized by the data) rounded back to bits."""
    import ml_dtypes

    x = np.array([2.5, -0.0, 0.0, -1.5, 2.5, 7.0], dtype=ml_dtypes.bfloat16)
    model = node_model("Unique", ["x"], {"x": x.astype(np.float32)}, opset=11, num_outputs=4)
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.BFLOAT16
    gpu = run_onnx(model, {"x": x}, device="gpu")
    cpu = run_onnx(model, {"x": x}, device="cpu")
    assert gpu["y0"].dtype == ml_dtypes.bfloat16, f"GPU Y dtype {gpu['y0'].dtype}"
    for name in ("y0", "y1", "y2", "y3"):
        np.testing.assert_array_equal(np.asarray(gpu[name], np.float32), np.asarray(cpu[name], np.float32),
                                      err_msg=f"output {name}: GPU vs CPU engine")
    np.testing.assert_array_equal(cpu["y0"].astype(np.float32), [-1.5, 0.0, 2.5, 7.0])
