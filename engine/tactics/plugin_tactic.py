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
        self.plugin_cls = plugin_cls
        self.key = (str(plugin_cls.plugin_namespace), str(plugin_cls.plugin_type), str(plugin_cls.plugin_version))
        namespace, plugin_type, version = self.key
        self.implementation = implementation
        self.method = method
        self.backend = backend
        self.name = f"{backend}_plugin_{plugin_type}_{implementation}"
        self.id = stable_tactic_id(f"{backend}:plugin:{namespace + '::' if namespace else ''}{plugin_type} version "
                                   f"{version}:{implementation}")

    def supports(self, ctx: TacticContext) -> bool | str:
        p = ctx.layer.params
        if (str(p.get("plugin_namespace", "")), str(p.get("plugin_type")), str(p.get("plugin_version"))) != self.key:
            return "another plugin"
        return self._plugin(ctx.layer).supports(list(ctx.inputs), self.implementation, self.backend)

    def prepare(self, ctx: TacticContext) -> Any:
        return ctx.layer, self._plugin(ctx.layer)

    def _plugin(self, layer) -> Any:
        """The plugin object of a layer this tactic runs (its class is this tactic's: the key matched)."""
        try:
            return self.plugin_cls(**layer.params["fields"])
        except EngineError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code: reported with the layer named
            raise EngineError(f"layer '{layer.name}': plugin {self.plugin_cls.plugin_type} refused its fields "
                              f"{layer.params['fields']}: {type(exc).__name__}: {exc}") from None

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        layer, plugin = state
        results = self.method(plugin, list(inputs), xp)
        expected = self.plugin_cls.num_outputs
        if not isinstance(results, (list, tuple)) or len(results) != expected:
            raise EngineError(f"layer '{layer.name}': plugin {self.plugin_cls.plugin_type} implementation "
                              f"{self.implementation!r} returned {type(results).__name__}, expected a list of "
                              f"{expected} arrays")
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
