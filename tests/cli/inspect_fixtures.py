"""Real artifacts for the `inspect` tests: a small ONNX model (conv + shape arithmetic + gemm), its FP16 plan
built through the engine API, and the tactic replay recorded during that build."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from shared_model_cases import MODELS

import engine as trt
from polyx.tactic_replay import TacticRecorder

SHARED_MODELS = MODELS  # ../shared/models, or POLYX_MODELS_DIR


def small_model() -> onnx.ModelProto:
    """x[N,3,8,8] -> Conv(pads 1) -> Relu -> GlobalAveragePool -> Reshape to [N, -1] via Shape/Gather -> Gemm."""
    rng = np.random.default_rng(0)
    initializers = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "conv.weight"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "conv.bias"),
        numpy_helper.from_array(rng.standard_normal((10, 4)).astype(np.float32), "fc.weight"),
        numpy_helper.from_array(np.linspace(-1, 1, 10).astype(np.float32), "fc.bias"),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["conv_out"], name="conv", pads=[1, 1, 1, 1],
                         strides=[1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv_out"], ["relu_out"], name="relu"),
        helper.make_node("GlobalAveragePool", ["relu_out"], ["pool_out"], name="pool"),
        helper.make_node("Shape", ["pool_out"], ["pool_shape"], name="shape"),
        helper.make_node("Gather", ["pool_shape", "zero"], ["batch"], name="gather_batch", axis=0),
        helper.make_node("Unsqueeze", ["batch"], ["batch_1d"], name="unsqueeze_batch", axes=[0]),
        helper.make_node("Concat", ["batch_1d", "minus_one"], ["flat_shape"], name="concat_shape", axis=0),
        helper.make_node("Reshape", ["pool_out", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["y"], name="fc", transB=1, alpha=1.0),
    ]
    graph = helper.make_graph(nodes, "small_cnn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)], producer_name="inspect-test",
                              producer_version="1.0")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def build_plan(model_path: Path, fp16: bool = True) -> tuple[bytes, TacticRecorder]:
    """Level-0 build with a (1, 2, 4) batch profile; the recorder holds the tactic chosen for each layer."""
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(str(model_path)), [parser.get_error(i) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    config.device = "cpu"
    config.builder_optimization_level = 0
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # inspect shows tactics only for DETAILED plans
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape("x", min=(1, 3, 8, 8), opt=(2, 3, 8, 8), max=(4, 3, 8, 8))
    config.add_optimization_profile(profile)
    recorder = TacticRecorder()
    config.algorithm_selector = recorder
    return builder.build_serialized_network(network, config), recorder
