"""Example plugins for the engine, loaded with `--plugins examples/plugins/example_plugins.py`.

- ClipNorm (examples/models/custom_op.onnx's custom op): scales each pixel's channel vector so that its L2 norm is at
  most `max_norm`: y = x * min(1, max_norm / ||x||), the norm over axis 1.
- ErfGelu: GELU in the erf form exporters write as five nodes (Div, Erf, Add, Mul, Mul); its pattern lets
  `polyx plugin match/replace` swap those for one node. Two implementations (through erf and through erfc), which
  the builder times against each other as tactics.
"""
from __future__ import annotations

import math

import onnx_graphsurgeon as gs

import engine


@engine.register_plugin
class ClipNorm(engine.Plugin):
    plugin_type = "ClipNorm"

    def infer(self, inputs):
        return [(inputs[0].shape, inputs[0].dtype)]

    def compute(self, inputs, xp):
        x = inputs[0]
        norm = xp.sqrt((x.astype(xp.float32) ** 2).sum(axis=1, keepdims=True))
        factor = xp.minimum(xp.float32(1), xp.float32(self.fields.get("max_norm", 1.0)) / xp.maximum(norm, 1e-12))
        return [(x * factor).astype(x.dtype)]


def _special(xp):
    """scipy.special on the CPU (NumPy arrays), cupyx.scipy.special on the GPU (CuPy arrays)."""
    if xp.__name__ == "cupy":
        import cupyx.scipy.special as special
    else:
        import scipy.special as special
    return special


def _is_constant(node, index: int, value: float) -> bool:
    tensor = node.inputs[index]
    return isinstance(tensor, gs.Constant) and tensor.values.size == 1 and \
        math.isclose(float(tensor.values.reshape(-1)[0]), value, rel_tol=1e-6)


@engine.register_plugin
class ErfGelu(engine.Plugin):
    plugin_type = "ErfGelu"

    def infer(self, inputs):
        return [(inputs[0].shape, inputs[0].dtype)]

    @engine.plugin_implementation("erf")
    def by_erf(self, inputs, xp):
        x = inputs[0]
        return [(0.5 * x * (1 + _special(xp).erf(x / math.sqrt(2)))).astype(x.dtype)]

    @engine.plugin_implementation("erfc")
    def by_erfc(self, inputs, xp):
        # The same function through erfc, which loses no digits where 1 + erf(x) nearly cancels (x << 0).
        x = inputs[0]
        return [(0.5 * x * _special(xp).erfc(-x / math.sqrt(2))).astype(x.dtype)]

    @classmethod
    def pattern(cls):
        p = gs.GraphPattern()
        x = p.variable()
        div = p.add("div", "Div", inputs=[x, p.constant()], check_func=lambda n: _is_constant(n, 1, math.sqrt(2)))
        erf = p.add("erf", "Erf", inputs=[div])
        add = p.add("add", "Add", inputs=[erf, p.constant()], check_func=lambda n: _is_constant(n, 1, 1.0))
        mul = p.add("mul", "Mul", inputs=[x, add])
        out = p.add("half", "Mul", inputs=[mul, p.constant()], check_func=lambda n: _is_constant(n, 1, 0.5))
        p.set_output_tensors([out])
        return p
