"""Optimization profiles at run time: an engine with two profiles (a dynamic batch and a shape input `k` each with
its own range), queried with get_tensor_profile_shape / get_tensor_profile_values, run from two threads at once
with one context per profile (results against NumPy float64), and the errors for a profile index out of range
and for shapes or shape-input values outside the active profile."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as trt
from engine.container import pack, unpack
from engine.plan import FORMAT_VERSION, MAGIC

RNG = np.random.default_rng(21)
W = RNG.standard_normal((16, 8)).astype(np.float32)
B = RNG.standard_normal(8).astype(np.float32)
# profile: (x min/opt/max, k min/opt/max)
PROFILES = [(((1, 16), (2, 16), (4, 16)), ((1,), (2,), (3,))),
            (((8, 16), (12, 16), (16, 16)), ((4,), (6,), (8,)))]


def topk_model() -> bytes:
    """y = x @ W + B; (values, indices) = TopK(y, k) along the last axis, largest first."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "B"], ["y"]),
             helper.make_node("TopK", ["y", "k"], ["values", "indices"], axis=-1)]
    graph = helper.make_graph(
        nodes, "topk", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16]),
                        helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("indices", TensorProto.INT64, None)],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def build_plan(device: str = "cpu") -> bytes:
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    parser = trt.OnnxParser(network, builder.logger)
    assert parser.parse(topk_model()), parser.errors_text()
    config = builder.create_builder_config()
    config.device = device
    config.builder_optimization_level = 0
    for x_shapes, k_values in PROFILES:
        profile = builder.create_optimization_profile()
        profile.set_shape("x", *x_shapes)
        profile.set_shape_input("k", *k_values)
        config.add_optimization_profile(profile)
    return builder.build_serialized_network(network, config)


@pytest.fixture(scope="module")
def plan() -> bytes:
    return build_plan()


@pytest.fixture
def engine(plan) -> trt.Engine:
    return trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan)


def reference(x: np.ndarray, k: int) -> np.ndarray:
    """The k largest values of x @ W + B per row, largest first, in float64."""
    y = x.astype(np.float64) @ W.astype(np.float64) + B
    return -np.sort(-y, axis=-1)[:, :k]


def check(outputs: dict[str, np.ndarray], x: np.ndarray, k: int) -> None:
    expected = reference(x, k)
    assert outputs["values"].shape == expected.shape
    np.testing.assert_allclose(outputs["values"], expected, rtol=1e-5, atol=1e-5)
    y = x.astype(np.float64) @ W + B
    np.testing.assert_allclose(np.take_along_axis(y, outputs["indices"], axis=-1), expected, rtol=1e-5, atol=1e-5)


def test_profile_queries(engine) -> None:
    assert engine.num_optimization_profiles == 2
    for index, (x_shapes, k_values) in enumerate(PROFILES):
        assert engine.get_tensor_profile_shape("x", index) == x_shapes
        assert engine.get_tensor_profile_shape("k", index) == ((1,), (1,), (1,))  # a shape input's own shape
        assert engine.get_tensor_profile_values(index, "k") == k_values
        assert engine.get_tensor_profile_values("k", index) == k_values  # either argument order
    assert engine.is_shape_inference_io("k") and not engine.is_shape_inference_io("x")


@pytest.mark.parametrize("index", [2, -1, 1.0, True])
def test_profile_index_out_of_range_names_the_count(engine, index) -> None:
    message = rf"optimization profile {index!r} does not exist \(engine 'topk' has 2: 0\.\.1\)"
    with pytest.raises(trt.ExecutionError, match=message):
        engine.get_tensor_profile_shape("x", index)
    with pytest.raises(trt.ExecutionError, match=message):
        engine.get_tensor_profile_values(index, "k")
    with pytest.raises(trt.ExecutionError, match=message):
        engine.create_execution_context().set_optimization_profile_async(index, 0)


def test_profile_queries_name_a_wrong_tensor(engine) -> None:
    with pytest.raises(trt.ExecutionError, match="'values' is an output of engine 'topk'"):
        engine.get_tensor_profile_shape("values", 0)
    with pytest.raises(trt.ExecutionError, match=r"'x' is not a shape input of engine 'topk' \(shape inputs: "
                                                 r"\['k'\]\)"):
        engine.get_tensor_profile_values(0, "x")
    with pytest.raises(trt.ExecutionError, match="'nope' is not an input or output"):
        engine.get_tensor_profile_shape("nope", 0)


def test_one_context_per_profile_from_two_threads(engine) -> None:
    run_one_context_per_profile_from_two_threads(engine)


@pytest.mark.gpu
def test_gpu_one_context_per_profile_from_two_threads() -> None:
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(build_plan("gpu"))
    run_one_context_per_profile_from_two_threads(engine)


def run_one_context_per_profile_from_two_threads(engine) -> None:
    """Both contexts run at the same time (a barrier starts them together), each at shapes and k values only its
    profile allows; every result is checked against NumPy."""
    contexts = [engine.create_execution_context() for _ in PROFILES]
    contexts[1].set_optimization_profile_async(1, 0)
    assert [c.active_optimization_profile for c in contexts] == [0, 1]
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []
    runs = [0, 0]

    def work(index: int) -> None:
        rng = np.random.default_rng(index)
        (x_min, _, x_max), (k_min, _, k_max) = PROFILES[index]
        try:
            barrier.wait(timeout=30)
            for _ in range(12):
                batch = int(rng.integers(x_min[0], x_max[0] + 1))
                k = int(rng.integers(k_min[0], k_max[0] + 1))
                x = rng.standard_normal((batch, 16)).astype(np.float32)
                check(contexts[index].execute({"x": x, "k": np.array([k], np.int64)}), x, k)
                runs[index] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert runs == [12, 12]


def test_switching_profiles_on_one_context(engine) -> None:
    context = engine.create_execution_context()
    x_small, x_large = RNG.standard_normal((3, 16)).astype(np.float32), RNG.standard_normal((9, 16)).astype(np.float32)
    check(context.execute({"x": x_small, "k": np.array([2])}), x_small, 2)
    context.set_optimization_profile_async(1, 0)
    check(context.execute({"x": x_large, "k": np.array([7])}), x_large, 7)
    context.set_optimization_profile_async(0, 0)
    check(context.execute({"x": x_small, "k": np.array([3])}), x_small, 3)


def test_shapes_and_values_outside_the_active_profile_name_the_tensor(engine) -> None:
    context = engine.create_execution_context()
    large = RNG.standard_normal((9, 16)).astype(np.float32)
    with pytest.raises(trt.ShapeError, match=r"input 'x': shape \(9, 16\) is outside optimization profile 0 "
                                             r"\(min \(1, 16\), max \(4, 16\)\)"):
        context.execute({"x": large, "k": np.array([2])})
    with pytest.raises(trt.ShapeError, match=r"shape input 'k': values \[6\] are outside optimization profile 0 "
                                             r"\(min \[1\], max \[3\]\)"):
        context.execute({"x": large[:2], "k": np.array([6])})
    # A shape set under profile 1, then a switch to profile 0: the next execution checks it again.
    context.set_optimization_profile_async(1, 0)
    context.set_input_shape("x", (9, 16))
    context.set_optimization_profile_async(0, 0)
    k = np.array([3])
    values, indices = np.empty((9, 3), np.float32), np.empty((9, 3), np.int64)
    for name, array in (("x", large), ("k", k), ("values", values), ("indices", indices)):
        context.set_tensor_address(name, array)
    with pytest.raises(trt.ShapeError, match=r"input 'x': shape \(9, 16\) is outside optimization profile 0"):
        context.execute_async_v3(0)
    context.set_optimization_profile_async(1, 0)
    with pytest.raises(trt.ShapeError, match=r"shape input 'k': values \[3\] are outside optimization profile 1"):
        context.execute_async_v3(0)
    values, indices = np.empty((9, 6), np.float32), np.empty((9, 6), np.int64)
    for name, array in (("k", np.array([6])), ("values", values), ("indices", indices)):
        context.set_tensor_address(name, array)
    context.execute_async_v3(0)
    check({"values": values, "indices": indices}, large, 6)


def test_set_shape_input_checks_its_range() -> None:
    profile = trt.OptimizationProfile()
    with pytest.raises(trt.ShapeError, match=r"shape input 'k': need min <= opt <= max .* min \(4,\), opt \(2,\)"):
        profile.set_shape_input("k", [4], [2], [8])
    with pytest.raises(trt.ShapeError, match=r"shape input 'k': min \(1,\), opt \(2, 2\) and max \(3,\) must have "
                                             "the same number of values"):
        profile.set_shape_input("k", [1], [2, 2], [3])


def test_plan_shape_input_ranges_are_validated(plan) -> None:
    header, arrays = unpack(plan, MAGIC, FORMAT_VERSION, "plan")
    cases = [(lambda m: m["shape_input_values"][1].update(k=[[4], [6]]), r"'k': must be \[min, opt, max\]"),
             (lambda m: m["shape_input_values"][0].update(k=[[3], [2], [1]]), "min <= opt <= max"),
             (lambda m: m["shape_input_values"][0].update(x=[[1], [1], [1]]), "'x': is not a shape input")]
    for edit, message in cases:
        changed = {**header, "meta": {**header["meta"], "shape_input_values": [dict(p) for p in
                                                                               header["meta"]["shape_input_values"]]}}
        edit(changed["meta"])
        with pytest.raises(trt.PlanFormatError, match=message):
            trt.Runtime().deserialize_cuda_engine(pack(MAGIC, FORMAT_VERSION, changed, arrays))


def test_docs_profiles_example_runs(capsys) -> None:
    """docs/guarantees.md's profiles example, as written, from the repository root."""
    import os
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "guarantees.md").read_text()
    code = re.search(r"```python\n(.*?)```", text[text.index("## Optimization profiles at run time"):], re.S)[1]
    cwd = os.getcwd()
    os.chdir(root)
    try:
        exec(compile(code, "docs/guarantees.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "((8, 3, 32, 32), (16, 3, 32, 32), (32, 3, 32, 32))"
    assert out[1] in ("{0: (3, 10), 1: (20, 10)}", "{1: (20, 10), 0: (3, 10)}")
    assert out[2].startswith("input 'input': shape (20, 3, 32, 32) is outside optimization profile 0")
