"""Plugins: user-defined layers (TensorRT's IPluginV2DynamicExt, in Python).

A plugin class declares `plugin_type`, `plugin_version`, the JSON-able `fields` it is created from, and
implements `infer(inputs) -> [(shape, dtype)]` and `compute(inputs, xp) -> [arrays]`. Registered classes are
found by name + version when a plan is loaded (the plan stores only the name, version and fields), and by the
ONNX parser for nodes whose op type names a registered plugin (the "fallback plugin importer"): the node's
attributes become the fields.
"""
from __future__ import annotations

from typing import Any

from .enums import LayerType
from .errors import EngineError
from .ops.base import TensorInfo, register_layer


class Plugin:
    plugin_type: str = ""
    plugin_version: str = "1"
    num_outputs: int = 1

    def __init__(self, **fields: Any):
        self.fields = dict(fields)

    def infer(self, inputs: list[TensorInfo | None]) -> list[tuple[tuple[int, ...], Any]]:
        raise NotImplementedError

    def compute(self, inputs: list[Any], xp: Any) -> list[Any]:
        raise NotImplementedError


class PluginRegistry:
    def __init__(self):
        self._plugins: dict[tuple[str, str], type[Plugin]] = {}

    def register(self, cls: type[Plugin]) -> type[Plugin]:
        if not cls.plugin_type:
            raise EngineError(f"plugin class {cls.__name__} has no plugin_type")
        self._plugins[(cls.plugin_type, str(cls.plugin_version))] = cls
        return cls

    def deregister(self, cls: type[Plugin]) -> None:
        self._plugins.pop((cls.plugin_type, str(cls.plugin_version)), None)

    def get(self, plugin_type: str, version: str | None = None) -> type[Plugin] | None:
        if version is not None:
            return self._plugins.get((plugin_type, str(version)))
        matches = [cls for (name, _), cls in sorted(self._plugins.items()) if name == plugin_type]
        return matches[-1] if matches else None

    @property
    def plugin_creator_list(self) -> list[tuple[str, str]]:
        return sorted(self._plugins)


_REGISTRY = PluginRegistry()


def get_plugin_registry() -> PluginRegistry:
    return _REGISTRY


def register_plugin(cls: type[Plugin]) -> type[Plugin]:
    """Class decorator: make a plugin available to networks, the ONNX parser and plan loading."""
    return _REGISTRY.register(cls)


def plugin_layer_params(plugin: Plugin) -> tuple[dict[str, Any], int]:
    if not isinstance(plugin, Plugin):
        raise EngineError(f"add_plugin expects a Plugin instance, got {type(plugin).__name__}")
    params = {"plugin_type": plugin.plugin_type, "plugin_version": str(plugin.plugin_version),
              "fields": plugin.fields}
    return params, int(plugin.num_outputs)


def _instantiate(layer) -> Plugin:
    params = layer.params
    cls = _REGISTRY.get(params["plugin_type"], params["plugin_version"])
    if cls is None:
        raise EngineError(f"layer '{layer.name}': plugin {params['plugin_type']!r} version "
                          f"{params['plugin_version']!r} is not registered (register it before building or loading)")
    return cls(**params["fields"])


def _infer(layer, inputs):
    return _instantiate(layer).infer(inputs)


def _compute(layer, inputs, xp):
    return _instantiate(layer).compute(inputs, xp)


register_layer(LayerType.PLUGIN_V2, _infer, _compute)
