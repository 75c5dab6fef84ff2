"""Write the small example models of the README's quick start into examples/models/ (onnx.helper + NumPy only).

    python examples/make_models.py            # writes examples/models/{cnn,transformer,custom_op}.onnx

- cnn.onnx: image classifier. input [batch, 3, 32, 32] -> Conv/BatchNorm/Relu stem, one residual block
  (Conv/BatchNorm/Relu, Conv/BatchNorm, Add, Relu), MaxPool, Conv (stride 2), GlobalAveragePool, Flatten, Gemm
  -> logits [batch, 10].
- transformer.onnx: one pre-LayerNorm encoder block. x [batch, seq, 64] (seq dynamic) -> LayerNorm, multi-head
  self-attention (4 heads: MatMul Q/K/V, Reshape/Transpose, scaled MatMul, Softmax, MatMul), residual Add,
  LayerNorm, MLP with erf-GELU, residual Add -> y [batch, seq, 64].
- custom_op.onnx: a small conv net with one node of a custom op (`com.example::ClipNorm`), which the engine does
  not support: the model `polyx inspect capability` splits into supported and unsupported parts.

Weights are seeded, so running the script again writes byte-identical files.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
MODELS_DIR = Path(__file__).resolve().parent / "models"


class GraphBuilder:
    """Nodes and initializers under unique, readable names."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def weight(self, name: str, shape: tuple[int, ...], scale: float | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        scale = (1.0 / np.sqrt(fan_in)) if scale is None else scale
        return self.constant(name, self.rng.standard_normal(shape) * scale)

    def constant(self, name: str, value, dtype=np.float32) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, domain: str = "", **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, domain=domain, **attrs))
        return name

    def model(self, name: str, inputs, outputs, domains: tuple[tuple[str, int], ...] = (),
              value_info=()) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers, value_info=value_info)
        opsets = [helper.make_opsetid("", OPSET)] + [helper.make_opsetid(d, v) for d, v in domains]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="polyx examples/make_models.py")
        model.ir_version = 8  # readable by onnxruntime releases older than the installed onnx
        return model

    # Layers made of several nodes
    def conv_bn(self, x: str, name: str, c_in: int, c_out: int, kernel: int = 3, stride: int = 1,
                relu: bool = True) -> str:
        w = self.weight(f"{name}.weight", (c_out, c_in, kernel, kernel))
        y = self.node("Conv", [x, w], f"{name}", kernel_shape=[kernel, kernel], strides=[stride, stride],
                      pads=[kernel // 2] * 4)
        bn = [self.constant(f"{name}_bn.{p}", v) for p, v in (
            ("scale", self.rng.uniform(0.5, 1.5, c_out)), ("bias", self.rng.uniform(-0.2, 0.2, c_out)),
            ("mean", self.rng.uniform(-0.2, 0.2, c_out)), ("var", self.rng.uniform(0.5, 1.5, c_out)))]
        y = self.node("BatchNormalization", [y, *bn], f"{name}_bn", epsilon=1e-5)
        return self.node("Relu", [y], f"{name}_relu") if relu else y

    def linear(self, x: str, name: str, d_in: int, d_out: int) -> str:
        y = self.node("MatMul", [x, self.weight(f"{name}.weight", (d_in, d_out), 1.0 / np.sqrt(d_in))], name)
        return self.node("Add", [y, self.constant(f"{name}.bias", self.rng.uniform(-0.1, 0.1, d_out))], f"{name}_bias")

    def layer_norm(self, x: str, name: str, dim: int) -> str:
        gamma = self.constant(f"{name}.weight", self.rng.uniform(0.8, 1.2, dim))
        beta = self.constant(f"{name}.bias", self.rng.uniform(-0.1, 0.1, dim))
        return self.node("LayerNormalization", [x, gamma, beta], name, axis=-1, epsilon=1e-5)


def make_cnn() -> onnx.ModelProto:
    g = GraphBuilder(seed=1)
    x = g.conv_bn("input", "stem", 3, 16)
    y = g.conv_bn(x, "block1_conv1", 16, 16)
    y = g.conv_bn(y, "block1_conv2", 16, 16, relu=False)
    y = g.node("Relu", [g.node("Add", [y, x], "block1_add")], "block1_relu")
    y = g.node("MaxPool", [y], "pool", kernel_shape=[2, 2], strides=[2, 2])
    y = g.conv_bn(y, "down_conv", 16, 32, stride=2)
    y = g.node("Flatten", [g.node("GlobalAveragePool", [y], "gap")], "flatten", axis=1)
    g.node("Gemm", [y, g.weight("fc.weight", (10, 32)), g.constant("fc.bias", np.zeros(10))], "logits", transB=1)
    return g.model("cnn", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])])


def make_transformer(dim: int = 64, heads: int = 4, hidden: int = 128) -> onnx.ModelProto:
    g = GraphBuilder(seed=2)
    head_dim = dim // heads
    split_heads = g.constant("heads_shape", [0, -1, heads, head_dim], np.int64)  # 0: copy batch; -1: seq
    merge_heads = g.constant("merged_shape", [0, -1, dim], np.int64)
    h = g.layer_norm("x", "ln1", dim)
    q, k, v = (g.node("Transpose", [g.node("Reshape", [g.linear(h, f"attn_{p}", dim, dim), split_heads],
                                           f"attn_{p}_split")], f"attn_{p}_heads", perm=perm)
               for p, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])))
    scores = g.node("Mul", [g.node("MatMul", [q, k], "attn_scores"),
                            g.constant("attn_scale", 1.0 / np.sqrt(head_dim))], "attn_scaled")
    probs = g.node("Softmax", [scores], "attn_softmax", axis=-1)
    context = g.node("Transpose", [g.node("MatMul", [probs, v], "attn_context")], "attn_context_t", perm=[0, 2, 1, 3])
    context = g.node("Reshape", [context, merge_heads], "attn_merge")
    h = g.node("Add", ["x", g.linear(context, "attn_out", dim, dim)], "residual1")
    m = g.linear(g.layer_norm(h, "ln2", dim), "mlp_fc1", dim, hidden)
    # GELU, erf form as exporters write it: 0.5 * m * (1 + erf(m / sqrt(2)))
    erf = g.node("Erf", [g.node("Div", [m, g.constant("sqrt2", np.sqrt(2.0))], "gelu_div")], "gelu_erf")
    gelu = g.node("Mul", [g.node("Mul", [m, g.node("Add", [erf, g.constant("one", 1.0)], "gelu_add")], "gelu_mul"),
                          g.constant("half", 0.5)], "gelu")
    g.node("Add", [h, g.linear(gelu, "mlp_fc2", hidden, dim)], "y")
    return g.model("transformer_block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", dim])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", dim])])


def make_custom_op() -> onnx.ModelProto:
    g = GraphBuilder(seed=3)
    y = g.conv_bn("input", "conv1", 3, 8)
    # a custom op: no kernel anywhere
    y_custom = g.node("ClipNorm", [y], "clip_norm", domain="com.example", max_norm=1.0)
    y = g.conv_bn(y_custom, "conv2", 8, 8)
    g.node("GlobalAveragePool", [y], "pooled")
    return g.model("custom_op", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
                   [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", 8, 1, 1])],
                   domains=(("com.example", 1),),
                   # The custom op's output type, so shape inference reaches the supported nodes after it.
                   value_info=[helper.make_tensor_value_info(y_custom, TensorProto.FLOAT, ["batch", 8, 16, 16])])


MODELS = {"cnn": make_cnn, "transformer": make_transformer, "custom_op": make_custom_op}


def write_models(directory: Path = MODELS_DIR) -> list[Path]:
    """Write every example model into `directory` (created if missing); returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in MODELS.items():
        model = make()
        onnx.checker.check_model(model, full_check=name != "custom_op")  # no schema exists for the custom op
        path = directory / f"{name}.onnx"
        onnx.save(model, path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output-dir", type=Path, default=MODELS_DIR, help="default: examples/models")
    for path in write_models(parser.parse_args().output_dir):
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
