"""Constant and Identity layers; ONNX Constant, Identity, Dropout (inference: identity) and Optional-free no-ops."""
from __future__ import annotations

import numpy as np

from ..dtypes import from_numpy
from ..enums import LayerType
from ..errors import UnsupportedCategory
from .base import onnx_op, register_layer, same_as_input


def _infer_constant(layer, inputs):
    weights = layer.params["weights"]
    return [(tuple(weights.shape), from_numpy(weights.dtype))]


def _compute_constant(layer, inputs, xp):
    weights = layer.params["weights"]
    return [weights if xp is np else xp.asarray(weights)]


def _compute_identity(layer, inputs, xp):
    return [inputs[0]]


register_layer(LayerType.CONSTANT, _infer_constant, _compute_constant)
register_layer(LayerType.IDENTITY, same_as_input(0), _compute_identity)


@onnx_op("Constant")
def import_constant(ctx):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if ctx.has_attr(key):
            value = ctx.attr(key)
            dtype = {"value_float": np.float32, "value_floats": np.float32,
                     "value_int": np.int64, "value_ints": np.int64}.get(key)
            return [ctx.constant(np.asarray(value, dtype=dtype), name=ctx.layer_name())]
    if ctx.has_attr("sparse_value"):
        ctx.unsupported("sparse_value constants are not supported", UnsupportedCategory.ATTRIBUTE)
    ctx.unsupported("string constants are not supported", UnsupportedCategory.DTYPE)


@onnx_op("Identity")
def import_identity(ctx):
    return [ctx.network.add_identity(ctx.input(0), name=ctx.layer_name()).get_output(0)]


@onnx_op("Dropout")
def import_dropout(ctx):
    """Inference-mode dropout: output = input; the optional mask output is all true."""
    if ctx.input(2) is not None:
        training = ctx.const(2)
        if training is None or bool(training):
            ctx.unsupported("training_mode must be a constant false for inference", UnsupportedCategory.OTHER)
    out = ctx.network.add_identity(ctx.input(0), name=ctx.layer_name()).get_output(0)
    if ctx.num_outputs > 1 and ctx.node.output[1]:
        from ..enums import ElementWiseOperation

        eq = ctx.network.add_elementwise(out, out, ElementWiseOperation.EQUAL, name=ctx.layer_name("mask"))
        ones = ctx.network.add_elementwise(eq.get_output(0), eq.get_output(0), ElementWiseOperation.OR,
                                           name=ctx.layer_name("mask_or"))
        return [out, ones.get_output(0)]
    return [out]
