"""A ResNet-18-style ONNX model built with onnx.helper (random weights, dynamic batch), for CPU benchmarks and
tests on machines without torchvision. Same structure as torchvision's resnet18: 7x7/2 stem, max pool, four
stages of two basic blocks (3x3 conv-BN-ReLU twice, 1x1/2 projection on downsampling), global pool, FC."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class _Graph:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def weight(self, base: str, array: np.ndarray) -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv_bn(self, x: str, cin: int, cout: int, k: int, stride: int, relu: bool) -> str:
        w = self.weight("w", self.rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k)))
        conv = self.name("conv")
        self.nodes.append(helper.make_node("Conv", [x, w], [conv], name=conv, kernel_shape=[k, k],
                                           strides=[stride, stride], pads=[k // 2] * 4))
        bn = self.name("bn")
        params = [self.weight("gamma", 1 + 0.1 * self.rng.standard_normal(cout)),
                  self.weight("beta", 0.1 * self.rng.standard_normal(cout)),
                  self.weight("mean", 0.1 * self.rng.standard_normal(cout)),
                  self.weight("var", 1 + 0.1 * self.rng.random(cout))]
        self.nodes.append(helper.make_node("BatchNormalization", [conv, *params], [bn], name=bn))
        if not relu:
            return bn
        out = self.name("relu")
        self.nodes.append(helper.make_node("Relu", [bn], [out], name=out))
        return out

    def basic_block(self, x: str, cin: int, cout: int, stride: int) -> str:
        y = self.conv_bn(x, cin, cout, 3, stride, relu=True)
        y = self.conv_bn(y, cout, cout, 3, 1, relu=False)
        shortcut = x if stride == 1 and cin == cout else self.conv_bn(x, cin, cout, 1, stride, relu=False)
        add, out = self.name("add"), self.name("relu")
        self.nodes.append(helper.make_node("Add", [y, shortcut], [add], name=add))
        self.nodes.append(helper.make_node("Relu", [add], [out], name=out))
        return out


def resnet18_style(num_classes: int = 1000, seed: int = 0, width: int = 64) -> onnx.ModelProto:
    g = _Graph(seed)
    x = g.conv_bn("input", 3, width, 7, 2, relu=True)
    pool = g.name("maxpool")
    g.nodes.append(helper.make_node("MaxPool", [x], [pool], name=pool, kernel_shape=[3, 3], strides=[2, 2],
                                    pads=[1, 1, 1, 1]))
    x, cin = pool, width
    for stage, cout in enumerate([width, width * 2, width * 4, width * 8]):
        for block in range(2):
            x = g.basic_block(x, cin, cout, 2 if stage > 0 and block == 0 else 1)
            cin = cout
    gap, flat = g.name("gap"), g.name("flatten")
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], [gap], name=gap))
    g.nodes.append(helper.make_node("Flatten", [gap], [flat], name=flat))
    fc_w = g.weight("fc_w", g.rng.standard_normal((num_classes, cin)) * 0.01)
    fc_b = g.weight("fc_b", np.zeros(num_classes))
    g.nodes.append(helper.make_node("Gemm", [flat, fc_w, fc_b], ["output"], name="fc", transB=1))
    graph = helper.make_graph(
        g.nodes, "resnet18_style",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", num_classes])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model
