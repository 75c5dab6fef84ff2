"""Runs a built polyx engine: one execution context per activation."""
from __future__ import annotations

import numpy as np

import engine as trt
from engine.dtypes import nptype

from .base import InputMeta, Runner


class EngineRunner(Runner):
    name = "engine"

    def __init__(self, engine: trt.Engine, name: str = "engine", profile_index: int = 0):
        super().__init__()
        self.engine = engine
        self.name = name
        self.profile_index = profile_index  # the optimization profile every inference uses
        self.context: trt.ExecutionContext | None = None

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
