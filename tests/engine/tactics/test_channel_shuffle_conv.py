"""A ShuffleNet-style channel shuffle before a grouped convolution: the shuffle's Reshape leaves the conv's input
channels unknown in the build-time shapes the plan records. Every CPU convolution tactic the builder may pick must
then also prepare and run at load — the builder prepares its choice exactly as the runtime does. Values are
checked against onnxruntime."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as trt
from engine.conformance.harness import parse_onnx
from engine.enums import LayerType
from engine.tactics import register_tactic, tactics_for, unregister_tactic
from engine.tactics.base import stable_tactic_id
from engine.tactics.cpu_conv import Im2colGemm

CHANNELS, GROUPS, SIZE = 8, 2, 6


def shufflenet_block():
    """x (N,C,H,W) → grouped 3x3 conv → channel shuffle (Shape/Gather/Concat → Reshape (N,G,C/G,H,W) → Transpose
    → Reshape (N,-1,H,W)) → grouped 1x1 conv, as torchvision's ShuffleNet-V2 exports it (batch dim dynamic)."""
    rng = np.random.default_rng(7)
    w1 = rng.standard_normal((CHANNELS, CHANNELS // GROUPS, 3, 3)).astype(np.float32) * 0.3
    w2 = rng.standard_normal((CHANNELS, CHANNELS // GROUPS, 1, 1)).astype(np.float32) * 0.3
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
             numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([GROUPS, CHANNELS // GROUPS, SIZE, SIZE], np.int64), "rest"),
             numpy_helper.from_array(np.array([-1, SIZE, SIZE], np.int64), "flat_rest")]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", group=GROUPS, pads=[1, 1, 1, 1]),
        helper.make_node("Shape", ["c1"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="batch", axis=0),
        helper.make_node("Concat", ["n", "rest"], ["split_shape"], name="split_shape", axis=0),
        helper.make_node("Reshape", ["c1", "split_shape"], ["split"], name="split"),
        helper.make_node("Transpose", ["split"], ["shuffled"], name="shuffle", perm=[0, 2, 1, 3, 4]),
        helper.make_node("Concat", ["n", "flat_rest"], ["flat_shape"], name="flat_shape", axis=0),
        helper.make_node("Reshape", ["shuffled", "flat_shape"], ["merged"], name="merge"),
        helper.make_node("Conv", ["merged", "w2"], ["y"], name="conv2", group=GROUPS),
    ]
    graph = helper.make_graph(nodes, "shuffle", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                              ["N", CHANNELS, SIZE, SIZE])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class Pick(trt.IAlgorithmSelector):
    """Choose `tactic` for layer conv2 (when it is a candidate); record what conv2 was offered."""

    def __init__(self, tactic: str):
        self.tactic, self.offered = tactic, []

    def select_algorithms(self, context, choices):
        if context.name != "conv2":
            return list(range(len(choices)))
        self.offered = [c.tactic_name for c in choices]
        picked = [i for i, c in enumerate(choices) if c.tactic_name == self.tactic]
        return picked or list(range(len(choices)))

    def report_algorithms(self, contexts, choices):
        pass


@pytest.mark.parametrize("tactic", [t.name for t in tactics_for(LayerType.CONVOLUTION, "cpu")])
def test_every_offered_conv_tactic_runs_after_a_channel_shuffle(tactic: str) -> None:
    model = shufflenet_block()
    network = parse_onnx(model)
    assert [tuple(layer.get_output(0).shape) for layer in network.layers if layer.name == "conv2"] == \
        [(-1, CHANNELS, -1, -1)]  # the conv's input channels are not known at build time
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device = "cpu"
    config.builder_optimization_level = 0
    config.algorithm_selector = selector = Pick(tactic)
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, CHANNELS, SIZE, SIZE), (2, CHANNELS, SIZE, SIZE), (4, CHANNELS, SIZE, SIZE))
    config.add_optimization_profile(profile)
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(
        builder.build_serialized_network(network, config))
    chosen = {row["name"]: row["tactic"] for row in engine.layer_info()}["conv2"]
    assert chosen == tactic if tactic in selector.offered else chosen in selector.offered
    x = np.random.default_rng(1).standard_normal((3, CHANNELS, SIZE, SIZE)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    np.testing.assert_allclose(engine.create_execution_context().execute({"x": x})["y"], expected, rtol=1e-4,
                               atol=1e-5)


class NeedsStaticChannels(Im2colGemm):
    """A tactic whose supports() accepts the layer at the concrete opt shapes but whose prepare() needs the input
    channel count in the plan's shapes — the ShuffleNet bug's shape, kept as a guard for any future tactic."""

    name = "test:conv:needs_static_channels"
    id = stable_tactic_id(name)
    heuristic_rank = -1000  # the first choice at optimization level 0

    def prepare(self, ctx):
        if ctx.inputs[0].shape[1] < 0:
            raise ValueError("can only specify one unknown dimension")
        return super().prepare(ctx)


def test_a_tactic_that_cannot_prepare_from_the_plans_shapes_is_never_chosen() -> None:
    tactic = register_tactic(NeedsStaticChannels())
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        config = builder.create_builder_config()
        config.device = "cpu"
        config.builder_optimization_level = 0
        profile = builder.create_optimization_profile()
        profile.set_shape("x", (1, CHANNELS, SIZE, SIZE), (2, CHANNELS, SIZE, SIZE), (4, CHANNELS, SIZE, SIZE))
        config.add_optimization_profile(profile)
        model = shufflenet_block()
        engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(
            builder.build_serialized_network(parse_onnx(model), config))
    finally:
        unregister_tactic(tactic)
    chosen = {row["name"]: row["tactic"] for row in engine.layer_info()}
    assert chosen["conv1"] == NeedsStaticChannels.name  # its input channels are static: the tactic works there
    assert chosen["conv2"] == "cpu:conv:pointwise_gemm"  # the next by heuristic rank for a 1x1 convolution
    x = np.random.default_rng(2).standard_normal((2, CHANNELS, SIZE, SIZE)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    np.testing.assert_allclose(engine.create_execution_context().execute({"x": x})["y"], expected, rtol=1e-4,
                               atol=1e-5)
