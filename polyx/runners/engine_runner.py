"""Runs a built polyx engine: one execution context per activation. It takes an engine, or a loader (any callable
returning one, e.g. the scripting API's EngineFromNetwork) that is called once, when the engine is first needed."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

import engine as trt
from engine.dtypes import nptype

from ..errors import PolyxError
from .base import InputMeta, Runner


class EngineRunner(Runner):
    name = "engine"

    def __init__(self, engine: trt.Engine | Callable[[], trt.Engine], name: str = "engine", profile_index: int = 0):
        super().__init__()
        self._engine_source = engine
        self._engine = engine if isinstance(engine, trt.Engine) else None
        self.name = name
        self.profile_index = profile_index  # the optimization profile every inference uses
        self.context: trt.ExecutionContext | None = None

    @property
    def engine(self) -> trt.Engine:
        if self._engine is None:
            engine = self._engine_source() if callable(self._engine_source) else self._engine_source
            if not isinstance(engine, trt.Engine):
                raise PolyxError(f"runner '{self.name}': expected an engine or a loader returning one, got a "
                                 f"{type(engine).__name__}")
            self._engine = engine
        return self._engine

    def input_metadata(self) -> InputMeta:
        meta = {}
        for index in range(self.engine.num_io_tensors):
            tensor = self.engine.get_tensor_name(index)
            if self.engine.get_tensor_mode(tensor) == trt.TensorIOMode.INPUT:
                dtype = np.dtype(nptype(self.engine.get_tensor_dtype(tensor)))
                meta[tensor] = (self.engine.get_tensor_shape(tensor), dtype)
        return meta

    def _activate(self) -> None:
        self.context = self.engine.create_execution_context()
        self.context.set_optimization_profile_async(self.profile_index)

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = self.input_metadata()
        outputs = self.context.execute({name: feeds[name] for name in inputs if name in feeds})
        return {name: np.asarray(array) for name, array in outputs.items()}

    def _deactivate(self) -> None:
        self.context = None
