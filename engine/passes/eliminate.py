"""Dead-layer and no-op-layer elimination."""
from __future__ import annotations

from ..enums import LayerType
from ..network import NetworkDefinition


def remove_dead_layers(network: NetworkDefinition) -> list[str]:
    """Drop layers that no network output depends on. Returns their names."""
    live: set[int] = {id(t) for t in network.outputs}
    keep: set[int] = set()
    for layer in reversed(network.layers):
        if any(id(t) in live for t in layer.outputs):
            keep.add(id(layer))
            live.update(id(t) for t in layer.inputs if t is not None)
    dead = [layer for layer in network.layers if id(layer) not in keep]
    network.remove_layers({id(layer) for layer in dead})
    return [layer.name for layer in dead]


def _is_noop(layer) -> bool:
    if layer.type == LayerType.IDENTITY:
        return layer.inputs[0].dtype == layer.outputs[0].dtype
    if layer.type in (LayerType.CAST, LayerType.REFORMAT):
        return layer.inputs[0].dtype == layer.outputs[0].dtype
    if layer.type == LayerType.SHUFFLE:
        p = layer.params
        src, dst = layer.inputs[0].shape, layer.outputs[0].shape
        static_same = src is not None and src == dst and all(d >= 0 for d in src)
        no_perm = all(p.get(k) in (None, list(range(len(src or ())))) for k in ("first_transpose", "second_transpose"))
        return static_same and no_perm
    return False


def remove_noop_layers(network: NetworkDefinition) -> list[str]:
    """Bypass layers that do nothing (Identity, same-type Cast, reshape to the same static shape).

    A layer whose output the user marked is kept: marked tensors must stay observable by name.
    """
    removed = []
    for layer in list(network.layers):
        if not _is_noop(layer):
            continue
        src, dst = layer.inputs[0], layer.outputs[0]
        if dst.is_network_output:
            continue
        network.replace_uses(dst, src)
        network.remove_layers({id(layer)})
        removed.append(layer.name)
    return removed
