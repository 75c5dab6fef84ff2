"""Vertical fusions.

- Convolution + Scale(per channel) → one convolution with rescaled weights (BatchNormalization folding).
- {Convolution, Deconvolution, MatrixMultiply, ElementWise, Scale, Normalization} + Activation → the producer
  gets `params["fused_activation"]`, applied in place right after its kernel (no extra buffer, no extra step).

A tensor the user marked as an output is never fused away.
"""
from __future__ import annotations

import numpy as np

from ..enums import ActivationType, LayerType, ScaleMode
from ..network import Layer, NetworkDefinition, Tensor

ACTIVATION_HOSTS = (LayerType.CONVOLUTION, LayerType.DECONVOLUTION, LayerType.MATRIX_MULTIPLY, LayerType.ELEMENTWISE,
                    LayerType.SCALE, LayerType.NORMALIZATION)


def _single_consumer(network_users: dict[int, list[Layer]], tensor: Tensor) -> Layer | None:
    users = network_users.get(id(tensor), [])
    if len(users) != 1 or tensor.is_network_output:
        return None
    return users[0]


def _const(tensor: Tensor | None) -> np.ndarray | None:
    if tensor is None or tensor.producer is None or tensor.producer.type != LayerType.CONSTANT:
        return None
    return tensor.producer.params["weights"]


def _record(host: Layer, fused: Layer) -> None:
    host.metadata.setdefault("fused_from", [host.name])
    host.metadata["fused_from"].append(fused.name)


def fuse_conv_scale(network: NetworkDefinition) -> list[str]:
    fused = []
    users = network.consumers()
    for conv in list(network.layers):
        if conv.type != LayerType.CONVOLUTION or conv.params.get("fused_activation"):
            continue
        scale_layer = _single_consumer(users, conv.outputs[0])
        if scale_layer is None or scale_layer.type != LayerType.SCALE or scale_layer.inputs[0] is not conv.outputs[0]:
            continue
        p = scale_layer.params
        if p.get("mode") != ScaleMode.CHANNEL or p.get("channel_axis", 1) != 1:
            continue
        kernel, bias = _const(conv.inputs[1]), (_const(conv.inputs[2]) if len(conv.inputs) > 2 else None)
        if kernel is None or (len(conv.inputs) > 2 and conv.inputs[2] is not None and bias is None):
            continue
        extra = (scale_layer.inputs + [None, None, None])[1:4]
        shift, scale, power = (_const(t) for t in extra)
        if any(t is not None and v is None for t, v in zip(extra, (shift, scale, power))):
            continue
        if power is not None and not np.all(power == 1):
            continue
        k = kernel.shape[0]
        scale_v = np.broadcast_to(np.asarray(1.0 if scale is None else scale, np.float64).ravel(), (k,))
        shift_v = np.broadcast_to(np.asarray(0.0 if shift is None else shift, np.float64).ravel(), (k,))
        bias_v = np.zeros(k, np.float64) if bias is None else bias.astype(np.float64)
        new_kernel = (kernel.astype(np.float64) * scale_v.reshape((k,) + (1,) * (kernel.ndim - 1))).astype(kernel.dtype)
        new_bias = (bias_v * scale_v + shift_v).astype(kernel.dtype)
        kernel_layer = network.add_constant(new_kernel.shape, new_kernel, name=f"{conv.name}.kernel_fused")
        bias_layer = network.add_constant(new_bias.shape, new_bias, name=f"{conv.name}.bias_fused")
        # add_constant appends at the end; constants must precede their user.
        network.layers.remove(kernel_layer)
        network.layers.remove(bias_layer)
        at = network.layers.index(conv)
        network.layers[at:at] = [kernel_layer, bias_layer]
        conv.inputs[1] = kernel_layer.outputs[0]
        while len(conv.inputs) < 3:
            conv.inputs.append(None)
        conv.inputs[2] = bias_layer.outputs[0]
        _take_outputs(network, conv, scale_layer)
        _record(conv, scale_layer)
        fused.append(scale_layer.name)
        users = network.consumers()
    return fused


def _take_outputs(network: NetworkDefinition, host: Layer, fused: Layer) -> None:
    """The host layer now produces the fused layer's output tensor (keeping its name); the fused layer goes."""
    old = host.outputs[0]
    new = fused.outputs[0]
    new.producer = host
    host.outputs[0] = new
    old.producer = None
    network.remove_layers({id(fused)})


def fuse_activations(network: NetworkDefinition) -> list[str]:
    fused = []
    users = network.consumers()
    for host in list(network.layers):
        if host.type not in ACTIVATION_HOSTS or host.params.get("fused_activation") or len(host.outputs) != 1:
            continue
        if not host.outputs[0].dtype.is_floating:
            continue
        act = _single_consumer(users, host.outputs[0])
        if act is None or act.type != LayerType.ACTIVATION:
            continue
        host.params["fused_activation"] = {"activation_type": ActivationType(act.params["activation_type"]).value,
                                           "alpha": act.params.get("alpha", 0.0), "beta": act.params.get("beta", 0.0)}
        _take_outputs(network, host, act)
        _record(host, act)
        fused.append(act.name)
        users = network.consumers()
    return fused
