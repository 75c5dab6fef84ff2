"""Plugins: user-defined layers (TensorRT's IPluginV2DynamicExt and TensorRT 10's Python plugins, on our engine).

A plugin class declares `plugin_type`, `plugin_version`, `plugin_namespace`, how many outputs it has, and the
JSON-able `fields` it is created from; it implements `infer(inputs) -> [(shape, dtype)]` (shape and type
inference) and either `compute(inputs, xp)` or several methods marked `@plugin_implementation(name, backends)`.
Each implementation becomes a tactic of the plugin's layers (engine/tactics/plugin_tactic.py), so the builder times
them against each other like any layer's kernels; `xp` is NumPy on the CPU and CuPy on the GPU.

A plan stores a plugin layer by name + version + namespace and its fields, never code: loading a plan whose plugin is
not registered is refused, naming it. The ONNX parser imports a node whose op type names a registered plugin as that
plugin (attributes become fields; `plugin_version`/`plugin_namespace` attributes pick among registered ones).
A plugin may also declare `pattern()` (an onnx-graphsurgeon GraphPattern of the subgraph it replaces) and
`fields_from_match(mapping)`, which `polyx plugin match/replace` use.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .enums import LayerType
from .errors import EngineError
from .ops.base import TensorInfo, register_layer

_IMPLEMENTATION_MARK = "_polyx_plugin_implementation"
BACKENDS = ("cpu", "gpu")


def plugin_implementation(name: str, backends: Sequence[str] = BACKENDS) -> Callable:
    """Method decorator: one implementation `(self, inputs, xp) -> [arrays]` of a plugin, a tactic of its layers."""
    unknown = [b for b in backends if b not in BACKENDS]
    if not name or unknown or not backends:
        raise EngineError(f"plugin_implementation({name!r}, backends={list(backends)!r}): give a name and backends "
                          f"from {list(BACKENDS)}")

    def mark(fn: Callable) -> Callable:
        setattr(fn, _IMPLEMENTATION_MARK, (str(name), tuple(backends)))
        return fn

    return mark


class Plugin:
    plugin_type: str = ""
    plugin_version: str = "1"
    plugin_namespace: str = ""
    num_outputs: int = 1

    def __init__(self, **fields: Any):
        self.fields = plugin_fields(type(self), fields)

    def infer(self, inputs: list[TensorInfo | None]) -> list[tuple[tuple[int, ...], Any]]:
        """(shape, DataType) of each output from the inputs' TensorInfo (-1 for a dim unknown at build time)."""
        raise NotImplementedError

    def compute(self, inputs: list[Any], xp: Any) -> list[Any]:
        """The outputs as arrays of `xp` (NumPy or CuPy). Plugins with `@plugin_implementation` methods need not
        override it: it runs the first implementation."""
        implementations = type(self).implementations()
        if not implementations:
            raise EngineError(f"plugin {plugin_key_text(type(self))} implements neither compute() nor any "
                              "@plugin_implementation method")
        return next(iter(implementations.values()))[0](self, inputs, xp)

    def supports(self, inputs: list[TensorInfo | None], implementation: str, backend: str) -> bool | str:
        """Whether one implementation can run these inputs on this backend (True, or why not): TensorRT's
        supportsFormatCombination. Default: every implementation runs everything it is declared for."""
        return True

    @classmethod
    def implementations(cls) -> dict[str, tuple[Callable, tuple[str, ...]]]:
        """{name: (method, backends)} of the `@plugin_implementation` methods, in definition order."""
        found: dict[str, tuple[Callable, tuple[str, ...]]] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                mark = getattr(attr, _IMPLEMENTATION_MARK, None)
                if mark is not None:
                    found[mark[0]] = (attr, mark[1])
        return found

    @classmethod
    def pattern(cls) -> Any:
        """An onnx_graphsurgeon.GraphPattern of the subgraph this plugin replaces, or None (`polyx plugin match`)."""
        return None

    @classmethod
    def fields_from_match(cls, mapping: Any) -> dict[str, Any]:
        """The plugin's fields for one match of `pattern()` (a gs PatternMapping)."""
        return {}


def plugin_key(cls: type[Plugin]) -> tuple[str, str, str]:
    return (str(cls.plugin_namespace), str(cls.plugin_type), str(cls.plugin_version))


def plugin_key_text(cls_or_key: type[Plugin] | tuple[str, str, str]) -> str:
    namespace, name, version = plugin_key(cls_or_key) if isinstance(cls_or_key, type) else cls_or_key
    return f"{namespace + '::' if namespace else ''}{name} version {version}"


def plugin_fields(cls: type[Plugin], fields: dict[str, Any]) -> dict[str, Any]:
    """The fields as plain JSON values (NumPy arrays and scalars become lists and numbers): what a plan stores.
    Anything else (objects, NaN/inf, non-string keys) is refused, naming the plugin and the field."""
    plain: dict[str, Any] = {}
    for name, value in fields.items():
        value = value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise EngineError(f"plugin {plugin_key_text(cls)}: field {name!r} = {value!r:.80} cannot be stored in a "
                              f"plan (fields must be numbers, strings, booleans or lists of them; {exc})") from None
        plain[str(name)] = value
    return plain


class PluginRegistry:
    """Plugins by (namespace, type, version), and the tactics made from their implementations."""

    def __init__(self):
        self._plugins: dict[tuple[str, str, str], type[Plugin]] = {}
        self._tactics: dict[tuple[str, str, str], list[Any]] = {}

    def register(self, cls: type[Plugin]) -> type[Plugin]:
        _check_plugin_class(cls)
        key = plugin_key(cls)
        if key in self._plugins:  # registering again (a reloaded module) replaces the class and its tactics
            self.deregister(self._plugins[key])
        from .tactics.plugin_tactic import register_plugin_tactics

        self._plugins[key] = cls
        self._tactics[key] = register_plugin_tactics(cls)
        return cls

    def deregister(self, cls: type[Plugin]) -> None:
        from .tactics.registry import unregister_tactic

        key = plugin_key(cls)
        if self._plugins.get(key) is cls:
            del self._plugins[key]
            for tactic in self._tactics.pop(key, []):
                unregister_tactic(tactic)

    def get(self, plugin_type: str, version: str | None = None, namespace: str | None = None) -> type[Plugin] | None:
        """The plugin of this type; without version/namespace, the highest version in any namespace (the empty
        namespace first)."""
        matches = [cls for (ns, name, ver), cls in self._plugins.items() if name == plugin_type
                   and (version is None or ver == str(version)) and (namespace is None or ns == str(namespace))]
        if not matches:
            return None
        return max(matches, key=lambda c: (c.plugin_namespace == "", _version_order(c.plugin_version)))

    @property
    def plugin_creator_list(self) -> list[tuple[str, str, str]]:
        """(namespace, type, version) of every registered plugin, sorted."""
        return sorted(self._plugins)

    @property
    def all_plugins(self) -> list[type[Plugin]]:
        return [self._plugins[key] for key in sorted(self._plugins)]


def _version_order(version: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in str(version).split("."))


def _check_plugin_class(cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise EngineError(f"register_plugin expects a subclass of engine.Plugin, got {cls!r}")
    for attr in ("plugin_type", "plugin_version", "plugin_namespace"):
        value = getattr(cls, attr)
        if not isinstance(value, (str, int)) or (attr != "plugin_namespace" and not str(value)):
            raise EngineError(f"plugin class {cls.__name__}: {attr} must be a non-empty string, got {value!r}")
    if not isinstance(cls.num_outputs, int) or cls.num_outputs < 1:
        raise EngineError(f"plugin class {cls.__name__}: num_outputs must be a positive int, got {cls.num_outputs!r}")
    if cls.infer is Plugin.infer:
        raise EngineError(f"plugin class {cls.__name__} does not implement infer(inputs) (shape and type inference)")
    if cls.compute is Plugin.compute and not cls.implementations():
        raise EngineError(f"plugin class {cls.__name__} implements neither compute(inputs, xp) nor any "
                          "@plugin_implementation method")


_REGISTRY = PluginRegistry()


def get_plugin_registry() -> PluginRegistry:
    return _REGISTRY


def register_plugin(cls: type[Plugin]) -> type[Plugin]:
    """Class decorator: make a plugin available to networks, the ONNX parser, the builder's timing and plan loading."""
    return _REGISTRY.register(cls)


def plugin_layer_params(plugin: Plugin) -> tuple[dict[str, Any], int]:
    if not isinstance(plugin, Plugin):
        raise EngineError(f"add_plugin expects a Plugin instance, got {type(plugin).__name__}")
    namespace, name, version = plugin_key(type(plugin))
    params = {"plugin_type": name, "plugin_version": version, "plugin_namespace": namespace,
              "fields": plugin_fields(type(plugin), plugin.fields)}
    return params, int(plugin.num_outputs)


def layer_plugin_key(layer) -> tuple[str, str, str]:
    params = layer.params
    return (str(params.get("plugin_namespace", "")), str(params["plugin_type"]), str(params["plugin_version"]))


def layer_plugin_class(layer) -> type[Plugin]:
    """The registered class of a plugin layer; a clear error naming the layer and plugin when there is none."""
    namespace, name, version = layer_plugin_key(layer)
    cls = _REGISTRY.get(name, version, namespace)
    if cls is None:
        raise EngineError(f"layer '{layer.name}': plugin {plugin_key_text((namespace, name, version))} is not "
                          "registered (register it with engine.register_plugin, or polyx --plugins FILE.py, before "
                          "building or loading)")
    return cls


def instantiate(layer) -> Plugin:
    cls = layer_plugin_class(layer)
    try:
        return cls(**layer.params["fields"])
    except EngineError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code: any exception is reported with the layer named
        raise EngineError(f"layer '{layer.name}': plugin {plugin_key_text(cls)} refused its fields "
                          f"{layer.params['fields']}: {type(exc).__name__}: {exc}") from None


def _infer(layer, inputs):
    plugin = instantiate(layer)
    outputs = plugin.infer(inputs)
    return _checked_infer(layer, type(plugin), outputs)


def _checked_infer(layer, cls: type[Plugin], outputs: Any) -> list:
    from .dtypes import DataType

    if not isinstance(outputs, (list, tuple)) or len(outputs) != cls.num_outputs:
        raise EngineError(f"layer '{layer.name}': plugin {plugin_key_text(cls)}.infer returned {outputs!r:.120}, "
                          f"expected a list of {cls.num_outputs} (shape, DataType) pairs")
    checked = []
    for i, item in enumerate(outputs):
        shape, dtype = item if isinstance(item, (list, tuple)) and len(item) == 2 else (None, None)
        if not isinstance(dtype, DataType) or shape is not None and not all(
                isinstance(d, (int, np.integer)) and d >= -1 for d in shape):
            raise EngineError(f"layer '{layer.name}': plugin {plugin_key_text(cls)}.infer output {i} is {item!r:.80}, "
                              "expected (shape as ints >= -1, DataType)")
        checked.append((None if shape is None else tuple(int(d) for d in shape), dtype))
    return checked


def _compute(layer, inputs, xp):
    plugin = instantiate(layer)
    return checked_outputs(layer, plugin.compute(inputs, xp), type(plugin), "compute")


def checked_outputs(layer, outputs: Any, cls: type[Plugin], implementation: str) -> list:
    if not isinstance(outputs, (list, tuple)) or len(outputs) != cls.num_outputs:
        raise EngineError(f"layer '{layer.name}': plugin {plugin_key_text(cls)} implementation {implementation!r} "
                          f"returned {type(outputs).__name__}, expected a list of {cls.num_outputs} arrays")
    return list(outputs)


def plugin_refusal(layer) -> str | None:
    """Why a plan's plugin layer cannot load here (not registered), or None."""
    try:
        layer_plugin_class(layer)
    except EngineError as exc:
        return str(exc)
    return None


register_layer(LayerType.PLUGIN_V2, _infer, _compute)
