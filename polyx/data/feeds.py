"""The inputs a command feeds, from one of three sources: saved files (`--load-inputs`, several chained), a
data-loader script (`--data-loader-script`), or the seeded DataLoader (`--seed`, `--val-range`, `--iterations`).
One definition for what `run` compares on and what `run --int8` / `convert --int8` calibrate on."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PolyxError
from .files import load_tensors
from .loader import DataLoader, InputMeta
from .polygraphy_format import iteration_files

Feeds = dict[str, np.ndarray]


@dataclass
class DataOptions:
    """Where a command's inputs come from; generated unless `load_inputs` or `script` is given."""

    seed: int = 1
    val_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    iterations: int = 1
    script: str | None = None  # FILE.py:FUNCTION
    load_inputs: Path | list[Path] | None = None  # several files: their iterations chained


def command_feeds(data: DataOptions, input_meta: InputMeta, shapes: dict[str, tuple[int, ...]]) -> list[Feeds]:
    """Every iteration of inputs, checked against the model's inputs (names, dtypes, ranks, fixed dims)."""
    if data.load_inputs is None:
        feeds = list(DataLoader(input_meta, seed=data.seed, val_ranges=data.val_ranges, iterations=data.iterations,
                                shapes=shapes, script=data.script))
        if not feeds and data.script:
            raise PolyxError(f"data loader script {data.script}: yielded no iterations")
        return feeds
    feeds, source = load_chain(data.load_inputs)
    if not feeds:
        raise PolyxError(f"{source}: holds no iterations")
    for index, iteration in enumerate(feeds):
        where = f"{source}: iteration {index}"
        for name in iteration:
            if name not in input_meta:
                raise PolyxError(f"{where}: '{name}' is not an input of the model (inputs: {', '.join(input_meta)})")
        for name, (shape, dtype) in input_meta.items():
            if name not in iteration:
                raise PolyxError(f"{where}: input '{name}' is missing")
            array = iteration[name]
            if array.dtype != dtype:
                raise PolyxError(f"{where}: input '{name}' has dtype {array.dtype}, the model expects {dtype}")
            if array.ndim != len(shape) or any(d >= 0 and d != s for d, s in zip(shape, array.shape)):
                raise PolyxError(f"{where}: input '{name}' has shape {list(array.shape)}, the model expects "
                                 f"{[d if d >= 0 else '?' for d in shape]}")
    return feeds


def given_paths(value: Path | list[Path] | None) -> list[Path]:
    return [] if value is None else [Path(value)] if isinstance(value, (str, Path)) else [Path(p) for p in value]


def data_files(value: Path | list[Path] | None) -> list[Path]:
    """The files of the paths, a directory standing for its per-iteration files (Polygraphy's streamed form)."""
    return [file for path in given_paths(value) for file in iteration_files(path)]


def load_chain(value: Path | list[Path], runner: str | None = None) -> tuple[list[Feeds], str]:
    """The iterations of one file, or of several files one after another; and the files' names for messages."""
    files = data_files(value)
    return [it for file in files for it in load_tensors(file, runner)], ", ".join(str(p) for p in given_paths(value))
