"""Lazy loaders, as in Polygraphy: each is a small callable object that does its work only when called, and takes
other loaders (or their results) as arguments, so a script composes the whole pipeline first and runs it at the
end. Calling a loader again does the work again.

    build = EngineFromNetwork(NetworkFromOnnxPath("model.onnx"), config=CreateConfig(fp16=True))
    engine = build()                      # parses and builds now
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import engine as trt

from ..build import BuildOptions, ProfileShapes, build_network, parse_onnx_parts
from ..data.files import write_file
from ..errors import PolyxError
from ..runners.onnxrt_runner import create_session

Shape = tuple[int, ...]


def _resolve(value: Any) -> Any:
    """A loader's result: call it when it is a loader, else take the value as it is (Polygraphy's rule)."""
    return value() if callable(value) else value


class NetworkFromOnnxPath:
    """Parses an ONNX file; calling returns (builder, network, parser) as Polygraphy's loader does."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __call__(self) -> tuple[trt.Builder, trt.NetworkDefinition, trt.OnnxParser]:
        if not self.path.is_file():
            raise PolyxError(f"{self.path}: no such file (NetworkFromOnnxPath)")
        return parse_onnx_parts(self.path, trt.Logger(trt.Logger.WARNING))


class Profile(dict):
    """One optimization profile: Profile().add("x", min=(1, 3), opt=(4, 3), max=(8, 3)) (Polygraphy's spelling)."""

    def add(self, name: str, min: Shape, opt: Shape, max: Shape) -> Profile:  # noqa: A002 - Polygraphy's names
        self[name] = (tuple(min), tuple(opt), tuple(max))
        return self


# CreateConfig keyword -> BuildOptions field (Polygraphy's keyword names where Polygraphy has the setting)
_CONFIG_FIELDS = {"fp16": "fp16", "tf32": "tf32", "int8": "int8", "precision_constraints": "precision_constraints",
                  "layer_precisions": "layer_precisions", "builder_optimization_level": "optimization_level",
                  "tactic_sources": "tactic_sources", "device": "device", "load_timing_cache": "load_timing_cache",
                  "save_timing_cache": "save_timing_cache", "load_tactics": "load_tactics",
                  "save_tactics": "save_tactics", "calibration_cache": "calibration_cache",
                  "calib_base_cls": "calib_base_cls", "channels_last": "channels_last"}


class CreateConfig:
    """The builder settings: fp16, tf32, int8, profiles=[Profile...], precision_constraints ("obey" | "prefer"),
    layer_precisions={layer: "fp32"}, memory_pool_limits={"workspace": bytes}, builder_optimization_level,
    tactic_sources=["cublas", ...], device ("auto" | "cpu" | "gpu"), load/save_timing_cache, load/save_tactics,
    calibration_cache, calib_base_cls, channels_last (False | True | "auto"). Unknown keywords are refused by name."""

    def __init__(self, profiles: list[Profile] | None = None, memory_pool_limits: dict[Any, int] | None = None,
                 **settings: Any):
        unknown = sorted(set(settings) - set(_CONFIG_FIELDS))
        if unknown:
            raise PolyxError(f"CreateConfig: unknown setting '{unknown[0]}' (known: "
                             f"{', '.join(['profiles', 'memory_pool_limits', *_CONFIG_FIELDS])})")
        values = {_CONFIG_FIELDS[key]: value for key, value in settings.items()}
        for key in ("load_timing_cache", "save_timing_cache", "load_tactics", "save_tactics", "calibration_cache"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        values["workspace_bytes"] = _workspace(memory_pool_limits)
        shaped = [ProfileShapes({n: s[0] for n, s in p.items()}, {n: s[1] for n, s in p.items()},
                                {n: s[2] for n, s in p.items()}) for p in profiles or []]
        if shaped:
            values.update(min_shapes=shaped[0].min, opt_shapes=shaped[0].opt, max_shapes=shaped[0].max,
                          extra_profiles=shaped[1:])
        self.options = BuildOptions(**values)
        self.options.validate()

    def __repr__(self) -> str:
        default = BuildOptions()
        changed = [f"{f.name}={getattr(self.options, f.name)!r}" for f in fields(BuildOptions)
                   if getattr(self.options, f.name) != getattr(default, f.name)]
        return f"CreateConfig({', '.join(changed)})"


def _workspace(limits: dict[Any, int] | None) -> int | None:
    """{"workspace": n} or {trt.MemoryPoolType.WORKSPACE: n} -> n; other pools are refused (the engine has none)."""
    workspace = None
    for pool, size in (limits or {}).items():
        name = pool.name if hasattr(pool, "name") else str(pool)
        if name.upper() != "WORKSPACE":
            raise PolyxError(f"CreateConfig: memory pool '{name}' is not a pool of the engine (pools: workspace)")
        workspace = int(size)
    return workspace


class EngineFromNetwork:
    """Builds an engine from a network loader (NetworkFromOnnxPath), its (builder, network, parser) result or a
    NetworkDefinition, with a CreateConfig (default settings when None); calling returns the engine."""

    def __init__(self, network: Callable | tuple | trt.NetworkDefinition, config: CreateConfig | None = None):
        self.network = network
        self.config = config

    def build(self) -> tuple[trt.Engine, bytes]:
        value = _resolve(self.network)
        network = value[1] if isinstance(value, tuple) else value
        if not isinstance(network, trt.NetworkDefinition):
            raise PolyxError(f"EngineFromNetwork: expected a network or a loader returning (builder, network, "
                             f"parser), got a {type(network).__name__}")
        parser = value[2] if isinstance(value, tuple) and len(value) > 2 else None
        nodes = len(parser.model.graph.node) if parser is not None and parser.model is not None else 0
        options = (self.config or CreateConfig()).options
        engine, plan, _ = build_network(network, options, trt.Logger(trt.Logger.WARNING), onnx_nodes=nodes)
        return engine, plan

    def __call__(self) -> trt.Engine:
        return self.build()[0]


class EngineBytesFromNetwork(EngineFromNetwork):
    """As EngineFromNetwork, but calling returns the serialized plan (bytes)."""

    def __call__(self) -> bytes:  # type: ignore[override]
        return self.build()[1]


class BytesFromPath:
    """Reads a file; calling returns its bytes."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __call__(self) -> bytes:
        if not self.path.is_file():
            raise PolyxError(f"{self.path}: no such file (BytesFromPath)")
        return self.path.read_bytes()


class EngineFromBytes:
    """Deserializes a plan from bytes or a loader of bytes (BytesFromPath, EngineBytesFromNetwork); a damaged or
    foreign plan is a one-line PlanFormatError."""

    def __init__(self, serialized_engine: bytes | Callable[[], bytes]):
        self.serialized_engine = serialized_engine

    def __call__(self) -> trt.Engine:
        plan = _resolve(self.serialized_engine)
        if not isinstance(plan, (bytes, bytearray, memoryview)):
            raise PolyxError(f"EngineFromBytes: expected bytes or a loader returning bytes, got a "
                             f"{type(plan).__name__}")
        return trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)


class SaveEngine:
    """Saves the engine of a loader (or an engine) to `path` (written beside it, then renamed; never over a file
    the script read through these loaders); calling returns the engine, so it chains into a runner."""

    def __init__(self, engine: trt.Engine | Callable[[], trt.Engine], path: str | os.PathLike):
        self.engine = engine
        self.path = Path(path)

    def __call__(self) -> trt.Engine:
        engine = _resolve(self.engine)
        if not isinstance(engine, trt.Engine):
            raise PolyxError(f"SaveEngine: expected an engine or a loader returning one, got a {type(engine).__name__}")
        write_file(self.path, engine.serialize())
        return engine


class SessionFromOnnx:
    """An onnxruntime session for a model path or ModelProto; providers as onnxruntime names them."""

    def __init__(self, model: str | os.PathLike | Any,
                 providers: list[str] | tuple[str, ...] = ("CPUExecutionProvider",)):
        self.model = model
        self.providers = tuple(providers)

    def __call__(self):
        if not isinstance(self.model, (str, os.PathLike)) or Path(self.model).is_file():
            return create_session(self.model, self.providers)
        raise PolyxError(f"{self.model}: no such file (SessionFromOnnx)")
