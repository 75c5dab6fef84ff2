"""Plugins: registration checks, several implementations timed as tactics, plans that name (never carry) plugins,
the ONNX parser's fallback to plugins, and clear errors for broken plugin code. Values are checked against NumPy in
float64."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import engine as trt
from engine.conformance.harness import run_onnx

ALPHA = 0.25


class LeakyClip(trt.Plugin):
    """y = clip(leaky_relu(x, alpha), -limit, limit), two ways; the second output is the count of clipped values."""

    plugin_type = "LeakyClip"
    plugin_namespace = "tests"
    num_outputs = 2
    calls: list[str] = []

    def infer(self, inputs):
        return [(inputs[0].shape, inputs[0].dtype), ((1,), trt.DataType.INT64)]

    def _finish(self, y, xp):
        limit = self.fields["limit"]
        return [xp.clip(y, -limit, limit), xp.asarray([(xp.abs(y) > limit).sum()], dtype=xp.int64)]

    @trt.plugin_implementation("where")
    def by_where(self, inputs, xp):
        LeakyClip.calls.append("where")
        x = inputs[0]
        return self._finish(xp.where(x > 0, x, x * xp.float32(self.fields["alpha"])), xp)

    @trt.plugin_implementation("maximum", backends=("cpu",))
    def by_maximum(self, inputs, xp):
        LeakyClip.calls.append("maximum")
        x = inputs[0]
        return self._finish(xp.maximum(x, x * xp.float32(self.fields["alpha"])), xp)


def leaky_clip_reference(x: np.ndarray, limit: float) -> tuple[np.ndarray, int]:
    y = np.where(x > 0, x.astype(np.float64), x.astype(np.float64) * ALPHA)
    return np.clip(y, -limit, limit), int((np.abs(y) > limit).sum())


@pytest.fixture
def leaky_clip():
    LeakyClip.calls.clear()
    trt.register_plugin(LeakyClip)
    yield LeakyClip
    trt.get_plugin_registry().deregister(LeakyClip)


class Only(trt.IAlgorithmSelector):
    """Keeps only the tactics whose name contains `word`."""

    def __init__(self, word: str):
        self.word = word

    def select_algorithms(self, context, choices):
        return [i for i, c in enumerate(choices) if self.word in c.tactic_name] or list(range(len(choices)))


def build(limit: float = 1.5, selector=None, level: int = 3) -> bytes:
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    x = network.add_input("x", trt.DataType.FLOAT, (2, 3, 4))
    doubled = network.add_elementwise(x, x, trt.ElementWiseOperation.SUM, name="double").get_output(0)
    layer = network.add_plugin([doubled], LeakyClip(alpha=np.float32(ALPHA), limit=limit), name="leaky_clip")
    layer.get_output(0).name, layer.get_output(1).name = "y", "clipped"
    network.mark_output(layer.get_output(0))
    network.mark_output(layer.get_output(1))
    config = builder.create_builder_config()
    config.device = "cpu"
    config.builder_optimization_level = level
    if selector is not None:
        config.algorithm_selector = selector
    return builder.build_serialized_network(network, config)


def run_plan(plan: bytes, x: np.ndarray) -> tuple[dict[str, np.ndarray], str]:
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan)
    tactic = next(info["tactic"] for info in engine.layer_info() if info["name"] == "leaky_clip")
    return engine.create_execution_context().execute({"x": x}), tactic


X = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)


@pytest.mark.parametrize("implementation", ["where", "maximum"])
def test_each_implementation_is_a_tactic_and_computes_the_plugin(leaky_clip, implementation) -> None:
    outputs, tactic = run_plan(build(selector=Only(implementation)), X)
    assert tactic == f"cpu_plugin_LeakyClip_{implementation}"
    assert LeakyClip.calls[-1] == implementation
    expected, clipped = leaky_clip_reference(2 * X, 1.5)
    np.testing.assert_allclose(outputs["y"], expected, rtol=1e-6, atol=1e-7)
    assert outputs["clipped"].tolist() == [clipped] and clipped > 0


def test_the_builder_times_every_implementation(leaky_clip) -> None:
    run_plan(build(), X)
    # Timing ran both implementations before the one chosen ran the inference.
    assert {"where", "maximum"} <= set(LeakyClip.calls)


def test_plan_names_the_plugin_and_stores_its_fields(leaky_clip) -> None:
    plan = build(limit=0.5)
    assert b"LeakyClip" in plan and b"by_where" not in plan  # by name, never code
    outputs, _ = run_plan(plan, X)
    np.testing.assert_allclose(outputs["y"], leaky_clip_reference(2 * X, 0.5)[0], rtol=1e-6, atol=1e-7)


def test_a_plan_whose_plugin_is_not_registered_is_refused(leaky_clip) -> None:
    plan = build()
    trt.get_plugin_registry().deregister(LeakyClip)
    with pytest.raises(trt.EngineError, match=r"plugin tests::LeakyClip version 1 is not registered"):
        trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan)


def test_registering_again_replaces_the_plugin_and_its_tactics(leaky_clip) -> None:
    trt.register_plugin(LeakyClip)  # a reloaded plugin module: no duplicate tactic ids
    assert trt.get_plugin_registry().plugin_creator_list.count(("tests", "LeakyClip", "1")) == 1
    outputs, _ = run_plan(build(), X)
    np.testing.assert_allclose(outputs["y"], leaky_clip_reference(2 * X, 1.5)[0], rtol=1e-6, atol=1e-7)


def test_fields_must_be_storable_in_a_plan() -> None:
    with pytest.raises(trt.EngineError, match=r"field 'limit'.*cannot be stored in a plan"):
        LeakyClip(alpha=0.1, limit=object())
    with pytest.raises(trt.EngineError, match=r"field 'alpha'"):
        LeakyClip(alpha=float("nan"), limit=1.0)


@pytest.mark.parametrize("body, message", [
    ({"plugin_type": ""}, "plugin_type must be a non-empty string"),
    ({"plugin_type": "NoInfer", "compute": lambda self, inputs, xp: inputs}, r"does not implement infer"),
    ({"plugin_type": "NoCompute", "infer": lambda self, inputs: []}, r"neither compute"),
    ({"plugin_type": "Zero", "num_outputs": 0, "infer": lambda self, inputs: []}, "num_outputs"),
])
def test_broken_plugin_classes_are_refused_at_registration(body, message) -> None:
    with pytest.raises(trt.EngineError, match=message):
        trt.register_plugin(type("Broken", (trt.Plugin,), body))


def test_a_plugin_returning_the_wrong_shape_names_the_layer() -> None:
    @trt.register_plugin
    class Liar(trt.Plugin):
        plugin_type = "Liar"

        def infer(self, inputs):
            return [(inputs[0].shape, inputs[0].dtype)]

        def compute(self, inputs, xp):
            return [inputs[0].reshape(-1)]

    try:
        model = _plugin_model("Liar", {})
        with pytest.raises(trt.EngineError, match=r"layer 'custom'.*Liar.*shape \(6,\).*infer\(\) said \(2, 3\)"):
            run_onnx(model, {"x": np.ones((2, 3), np.float32)})
    finally:
        trt.get_plugin_registry().deregister(Liar)


def _plugin_model(op_type: str, attrs: dict, domain: str = "com.example") -> onnx.ModelProto:
    node = helper.make_node(op_type, ["x"], ["y"], name="custom", domain=domain, **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(domain, 1)])


class ScaleV1(trt.Plugin):
    plugin_type = "Scale"

    def infer(self, inputs):
        return [(inputs[0].shape, inputs[0].dtype)]

    def compute(self, inputs, xp):
        return [inputs[0] * xp.float32(self.fields["factor"])]


class ScaleV2(ScaleV1):
    plugin_version = "2"

    def compute(self, inputs, xp):
        return [inputs[0] * xp.float32(self.fields["factor"]) + xp.float32(1)]


@pytest.fixture
def scale_plugins():
    for cls in (ScaleV1, ScaleV2):
        trt.register_plugin(cls)
    yield
    for cls in (ScaleV1, ScaleV2):
        trt.get_plugin_registry().deregister(cls)


@pytest.mark.parametrize("attrs, offset", [({}, 1.0), ({"plugin_version": "1"}, 0.0), ({"plugin_version": "2"}, 1.0)])
def test_the_parser_imports_a_custom_op_as_the_plugin_its_attributes_select(scale_plugins, attrs, offset) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = run_onnx(_plugin_model("Scale", {"factor": 3.0, **attrs}), {"x": x})["y"]
    np.testing.assert_array_equal(y, x.astype(np.float64) * 3 + offset)


def test_the_parser_names_a_plugin_version_that_is_not_registered(scale_plugins) -> None:
    parser = trt.OnnxParser(trt.Builder(trt.Logger(trt.Logger.ERROR)).create_network(),
                            trt.Logger(trt.Logger.ERROR))
    assert not parser.parse(_plugin_model("Scale", {"factor": 3.0, "plugin_version": "7"}).SerializeToString())
    message = str(parser.get_error(0))
    assert "custom" in message and "no registered plugin 'Scale' matches plugin_version='7'" in message


def test_the_parser_names_the_node_when_the_plugin_refuses_its_attributes() -> None:
    @trt.register_plugin
    class Picky(ScaleV1):
        plugin_type = "Picky"

        def __init__(self, **fields):
            if "factor" not in fields:
                raise ValueError("needs a factor")
            super().__init__(**fields)

    try:
        parser = trt.OnnxParser(trt.Builder(trt.Logger(trt.Logger.ERROR)).create_network(),
                                trt.Logger(trt.Logger.ERROR))
        assert not parser.parse(_plugin_model("Picky", {}).SerializeToString())
        message = str(parser.get_error(0))
        assert "custom" in message and "needs a factor" in message
    finally:
        trt.get_plugin_registry().deregister(Picky)


@pytest.mark.gpu
def test_plugin_implementations_run_on_the_gpu(leaky_clip) -> None:
    import cupy

    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    x = network.add_input("x", trt.DataType.FLOAT, (2, 3, 4))
    layer = network.add_plugin([x], LeakyClip(alpha=ALPHA, limit=1.5), name="leaky_clip")
    layer.get_output(0).name = "y"
    network.mark_output(layer.get_output(0))
    config = builder.create_builder_config()
    config.device = "gpu"
    engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
    info = next(i for i in engine.layer_info() if i["name"] == "leaky_clip")
    assert info["tactic"] == "gpu_plugin_LeakyClip_where"  # the only implementation declared for the GPU
    y = engine.create_execution_context().execute({"x": cupy.asarray(X)})["y"]  # execute returns host arrays
    np.testing.assert_allclose(y, leaky_clip_reference(X, 1.5)[0], rtol=1e-6, atol=1e-7)
