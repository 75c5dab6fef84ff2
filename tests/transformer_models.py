"""Small transformer pieces as ONNX models made with onnx.helper, and onnxruntime as their reference: the CPU
fusion tests (tests/engine/test_transformer_fusions.py) and the GPU ones (tests/gpu/test_attention_kernels.py)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import engine as trt

RNG = np.random.default_rng(5)
B, S, E, H = 2, 7, 16, 2
DH = E // H


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def projection(prefix: str, x: str, nodes: list, inits: list, perm: list[int]) -> str:
    """x @ W + b, reshaped to (B, S, H, DH) and transposed by `perm`."""
    inits += [init(f"{prefix}_w", RNG.standard_normal((E, E)).astype(np.float32) / 4),
              init(f"{prefix}_b", RNG.standard_normal(E).astype(np.float32) / 4)]
    nodes += [helper.make_node("MatMul", [x, f"{prefix}_w"], [f"{prefix}_mm"]),
              helper.make_node("Add", [f"{prefix}_mm", f"{prefix}_b"], [f"{prefix}_lin"]),
              helper.make_node("Reshape", [f"{prefix}_lin", "heads_shape"], [f"{prefix}_4d"]),
              helper.make_node("Transpose", [f"{prefix}_4d"], [f"{prefix}_t"], perm=perm)]
    return f"{prefix}_t"


def attention_model(style: str) -> onnx.ModelProto:
    """bert: Mul(q, s) @ Mul(k^T, s) + padding mask → Softmax → @ v, back to (B, S, E), Add(x) → LayerNorm.
    gpt2: (q @ Transpose(k)) / sqrt(DH) + causal mask → Softmax → @ v, back to (B, S, E)."""
    nodes, inits = [], [init("heads_shape", np.array([0, 0, H, DH], np.int64)),
                        init("merge_shape", np.array([0, 0, E], np.int64))]
    q = projection("q", "x", nodes, inits, [0, 2, 1, 3])
    v = projection("v", "x", nodes, inits, [0, 2, 1, 3])
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [B, S, E])]
    if style == "bert":
        k = projection("k", "x", nodes, inits, [0, 2, 3, 1])
        inits.append(init("root_scale", np.array(DH ** -0.25, np.float32)))
        nodes += [helper.make_node("Mul", [q, "root_scale"], ["q_scaled"]),
                  helper.make_node("Mul", [k, "root_scale"], ["k_scaled"]),
                  helper.make_node("MatMul", ["q_scaled", "k_scaled"], ["scores"]),
                  helper.make_node("Add", ["scores", "mask"], ["masked"])]
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [B, 1, 1, S]))
    else:
        k4 = projection("k", "x", nodes, inits, [0, 2, 1, 3])
        causal = np.where(np.tril(np.ones((S, S))) > 0, 0.0, -np.inf).astype(np.float32)
        inits += [init("sqrt_d", np.array(np.sqrt(DH), np.float32)), init("causal", causal)]
        nodes += [helper.make_node("Transpose", [k4], ["k_swapped"], perm=[0, 1, 3, 2]),
                  helper.make_node("MatMul", [q, "k_swapped"], ["scores"]),
                  helper.make_node("Div", ["scores", "sqrt_d"], ["scaled"]),
                  helper.make_node("Add", ["scaled", "causal"], ["masked"])]
    nodes += [helper.make_node("Softmax", ["masked"], ["probs"], axis=-1),
              helper.make_node("MatMul", ["probs", v], ["context"]),
              helper.make_node("Transpose", ["context"], ["context_t"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["context_t", "merge_shape"], ["merged"])]
    if style == "bert":
        inits += [init("gamma", RNG.uniform(0.5, 1.5, E).astype(np.float32)),
                  init("beta", RNG.standard_normal(E).astype(np.float32))]
        nodes += [helper.make_node("Add", ["merged", "x"], ["residual"]),
                  helper.make_node("LayerNormalization", ["residual", "gamma", "beta"], ["y"], axis=-1)]
    else:
        nodes.append(helper.make_node("Identity", ["merged"], ["y"]))
    graph = helper.make_graph(nodes, style, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def pre_ln_model() -> onnx.ModelProto:
    """s = x + r; y = LayerNorm(s) + s (the sum is the next residual), and a lone masked softmax z."""
    nodes = [helper.make_node("Add", ["x", "r"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "gamma", "beta"], ["n"], axis=-1, epsilon=1e-6),
             helper.make_node("Add", ["n", "s"], ["y"]),
             helper.make_node("Add", ["x", "mask"], ["masked"]),
             helper.make_node("Softmax", ["masked"], ["z"], axis=-1)]
    inits = [init("gamma", RNG.uniform(0.5, 1.5, E).astype(np.float32)),
             init("beta", RNG.standard_normal(E).astype(np.float32)),
             init("mask", np.where(RNG.random((1, E)) < 0.3, -1e9, 0.0).astype(np.float32))]
    graph = helper.make_graph(nodes, "pre_ln", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [B, S, E])
                                                for n in ("x", "r")],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "z")], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def build_plan(model: onnx.ModelProto, profile: dict | None = None, fp16: bool = False, device: str = "cpu") -> bytes:
    """The serialized engine of `model` on `device` (FP16 allowed when `fp16`; `profile`: name -> (min, opt, max))."""
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(model.SerializeToString()), parser.errors_text()
    config = builder.create_builder_config()
    config.device = device
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if profile:
        shapes = builder.create_optimization_profile()
        for name, triple in profile.items():
            shapes.set_shape(name, *triple)
        config.add_optimization_profile(shapes)
    return builder.build_serialized_network(network, config)


def bert_feeds() -> dict:
    mask = np.zeros((B, 1, 1, S), np.float32)
    mask[1, ..., 4:] = -10000.0  # the second sequence has three padding tokens
    return {"x": RNG.standard_normal((B, S, E)).astype(np.float32), "mask": mask}


