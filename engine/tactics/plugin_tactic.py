"""Tactics made from a plugin's implementations: each `@plugin_implementation` (or `compute`) of a registered plugin
is a tactic of the plugin's layers on each backend it names, so the builder times them like built-in kernels and a
plan records which one ran (by a stable id derived from namespace, type, version, implementation and backend)."""
from __future__ import annotations

from typing import Any

from ..enums import LayerType
from ..errors import EngineError
from .base import Tactic, TacticContext, stable_tactic_id
from .registry import register_tactic

BACKENDS = ("cpu", "gpu")


class PluginTactic(Tactic):
    layer_type = LayerType.PLUGIN_V2
    heuristic_rank = 40  # ahead of the reference tactic, which runs `compute` only for plugins without these

    def __init__(self, plugin_cls: type, implementation: str, method: Any, backend: str):
        from ..plugin import plugin_key, plugin_key_text

        self.plugin_cls = plugin_cls
        self.key = plugin_key(plugin_cls)
        self.implementation = implementation
        self.method = method
        self.backend = backend
        self.name = f"{backend}_plugin_{plugin_cls.plugin_type}_{implementation}"
        self.id = stable_tactic_id(f"{backend}:plugin:{plugin_key_text(plugin_cls)}:{implementation}")

    def supports(self, ctx: TacticContext) -> bool | str:
        from ..plugin import instantiate, layer_plugin_key

        if layer_plugin_key(ctx.layer) != self.key:
            return "another plugin"
        return instantiate(ctx.layer).supports(list(ctx.inputs), self.implementation, self.backend)

    def prepare(self, ctx: TacticContext) -> Any:
        from ..plugin import instantiate

        return ctx.layer, instantiate(ctx.layer)

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..plugin import checked_outputs

        layer, plugin = state
        results = checked_outputs(layer, self.method(plugin, list(inputs), xp), self.plugin_cls, self.implementation)
        for i, (out, result) in enumerate(zip(outputs, results)):
            if out is None:
                continue
            result = xp.asarray(result)
            if tuple(result.shape) != tuple(out.shape):
                raise EngineError(f"layer '{layer.name}': plugin {self.plugin_cls.plugin_type} implementation "
                                  f"{self.implementation!r} returned output {i} of shape {tuple(result.shape)}, its "
                                  f"infer() said {tuple(out.shape)}")
            xp.copyto(out, result, casting="unsafe")


def register_plugin_tactics(plugin_cls: type) -> list[PluginTactic]:
    """One tactic per implementation and backend; a plugin without `@plugin_implementation` methods has one,
    `compute`, on both backends. (The reference tactic leaves plugin layers to these.)"""
    implementations = plugin_cls.implementations() or {"compute": (plugin_cls.compute, BACKENDS)}
    tactics = [PluginTactic(plugin_cls, name, method, backend)
               for name, (method, backends) in implementations.items() for backend in backends]
    return [register_tactic(t, replace=True) for t in tactics]
