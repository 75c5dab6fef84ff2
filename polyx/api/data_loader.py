"""The scripting API's DataLoader (Polygraphy's arguments): seeded inputs made by polyx's own generator, with the
input names, shapes and dtypes taken from the first runner unless `input_metadata` gives them. The same seed,
shapes and ranges give the same values as `polyx run`."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..data.loader import DataLoader as SeededInputs
from ..errors import PolyxError

InputMeta = dict[str, tuple[tuple, np.dtype]]


class TensorMetadata(dict):
    """{name: (shape, dtype)}; .add(name, dtype, shape) as in Polygraphy. A None dtype or shape is taken from the
    runner (e.g. only fixing the shape of a dynamic input)."""

    def add(self, name: str, dtype=None, shape=None) -> TensorMetadata:
        self[name] = (None if shape is None else tuple(shape), None if dtype is None else np.dtype(dtype))
        return self


class DataLoader:
    """`DataLoader(iterations=2, val_range=(0, 1), input_metadata=TensorMetadata().add("x", None, (4, 32)))`.
    val_range: one (lo, hi) for every input, or {name: (lo, hi)} ("" sets the default)."""

    def __init__(self, seed: int = 1, iterations: int = 1, input_metadata: TensorMetadata | None = None,
                 val_range: tuple[float, float] | dict[str, tuple[float, float]] | None = None):
        self.seed = seed
        self.iterations = iterations
        self.input_metadata = TensorMetadata(input_metadata or {})
        if val_range is None:
            self.val_ranges = {}
        elif isinstance(val_range, dict):
            self.val_ranges = {name: (float(lo), float(hi)) for name, (lo, hi) in val_range.items()}
        else:
            lo, hi = val_range
            self.val_ranges = {"": (float(lo), float(hi))}
        if iterations < 1:
            raise PolyxError(f"DataLoader: iterations must be >= 1, got {iterations}")

    def feeds(self, runner_meta: InputMeta) -> Iterator[dict[str, np.ndarray]]:
        """The inputs for a runner whose inputs are `runner_meta` ({name: (shape with -1, dtype)})."""
        unknown = sorted(set(self.input_metadata) - set(runner_meta))
        if unknown:
            raise PolyxError(f"DataLoader: input_metadata names '{unknown[0]}', which is not an input of the model "
                             f"(inputs: {', '.join(runner_meta)})")
        meta, shapes = {}, {}
        for name, (shape, dtype) in runner_meta.items():
            given_shape, given_dtype = self.input_metadata.get(name, (None, None))
            meta[name] = (tuple(shape), given_dtype if given_dtype is not None else dtype)
            if given_shape is not None:
                shapes[name] = given_shape
        return iter(SeededInputs(meta, seed=self.seed, val_ranges=self.val_ranges, iterations=self.iterations,
                                 shapes=shapes))
