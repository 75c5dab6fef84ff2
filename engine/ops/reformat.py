"""Reformat layers: precision conversions the builder inserts where FP16 and FP32 layers meet (never imported
from ONNX; listed by `inspect model` like TensorRT's reformat layers)."""
from __future__ import annotations

from ..dtypes import DataType, nptype
from ..enums import LayerType
from .base import register_layer


def _infer(layer, inputs):
    return [(inputs[0].shape, DataType(layer.params["to_type"]))]


def _compute(layer, inputs, xp):
    return [inputs[0].astype(nptype(DataType(layer.params["to_type"])))]


register_layer(LayerType.REFORMAT, _infer, _compute)
