"""The engine's input and output tensors by name and dtype, in the engine's IO order (TensorRT-style queries)."""
from __future__ import annotations

import numpy as np

import engine as trt
from engine.dtypes import nptype


def io_names(engine: trt.Engine, mode: trt.TensorIOMode) -> list[str]:
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    return [name for name in names if engine.get_tensor_mode(name) == mode]


def tensor_dtype(engine: trt.Engine, name: str) -> np.dtype:
    return np.dtype(nptype(engine.get_tensor_dtype(name)))


def input_meta(engine: trt.Engine) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{input: (build-time shape with -1 for dynamic dims, dtype)}: what the data loader needs."""
    return {name: (engine.get_tensor_shape(name), tensor_dtype(engine, name))
            for name in io_names(engine, trt.TensorIOMode.INPUT)}
