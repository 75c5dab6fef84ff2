"""Refitter (TensorRT 8.6 names): replace the named weights of a refittable engine without rebuilding it.

Weights are named by their ONNX initializer names (a hand-built network: the Constant layer's name);
`get_all_weights()` lists them. New values must have the weight's own dtype and shape. `refit_cuda_engine()` puts
them into the engine, converted as the builder converted them (FP16 builds: the same `astype`), and prepares the
tactics again; since a refittable build never folds these weights (engine/refittable.py), the refitted engine
computes exactly what an engine built from the new weights computes with the same tactics. Refit while no context
of the engine is executing, as in TensorRT.
"""
from __future__ import annotations

import difflib
from typing import Any

import numpy as np

from .dtypes import nptype
from .errors import RefitError
from .logger import Logger, Severity
from .runtime import Engine


class Refitter:
    def __init__(self, engine: Engine, logger: Logger | None = None):
        if not engine.refittable:
            raise RefitError(f"engine '{engine.name}' is not refittable: it was built without BuilderFlag.REFIT, so "
                             "the builder folded its weights into other constants; rebuild it with REFIT "
                             "(polyx convert --refittable)")
        self.engine = engine
        self.logger = logger or engine.logger
        self._weights = engine.refit_table.by_name()
        self._pending: dict[str, np.ndarray] = {}

    def get_all_weights(self) -> list[str]:
        """Names of every refittable weight of the engine, in plan order."""
        return list(self._weights)

    def get_missing_weights(self) -> list[str]:
        """Weights that must still be set before refit_cuda_engine: a stripped engine's weights not set yet (an
        engine that holds its weights misses none: a refit may replace any subset)."""
        return [name for name in self._weights if name in self.engine.missing_weights and name not in self._pending]

    def set_named_weights(self, name: str, weights: Any) -> bool:
        """Give a weight its new value (an array of the weight's dtype and shape; copied, so later changes to
        `weights` do not reach the engine). Raises RefitError naming the weight otherwise."""
        self._pending[name] = np.array(self.check_weights(name, weights), copy=True)
        return True

    def check_weights(self, name: str, weights: Any) -> np.ndarray:
        """`weights` as the array set_named_weights would take (nothing is set), or RefitError naming the weight."""
        entry = self._entry(name)
        expected = np.dtype(nptype(entry.dtype))
        array = np.asarray(weights) if hasattr(weights, "dtype") else np.asarray(weights, dtype=expected)
        if array.dtype != expected or tuple(array.shape) != entry.shape:
            raise RefitError(f"weight '{name}': expected {expected} of shape {list(entry.shape)}, got {array.dtype} "
                             f"of shape {list(array.shape)}")
        return array

    def get_weights_prototype(self, name: str) -> tuple[np.dtype, tuple[int, ...]]:
        """The dtype and shape `set_named_weights(name, ...)` takes."""
        entry = self._entry(name)
        return np.dtype(nptype(entry.dtype)), entry.shape

    def get_named_weights(self, name: str) -> np.ndarray | None:
        """The value set for `name` in this refitter and not yet applied, else None."""
        return self._pending.get(name)

    def _entry(self, name: str):
        entry = self._weights.get(name)
        if entry is None:
            close = difflib.get_close_matches(name, list(self._weights), n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else \
                f" ({len(self._weights)} weights; get_all_weights() lists them)"
            raise RefitError(f"'{name}' is not a refittable weight of engine '{self.engine.name}'{hint}")
        return entry

    def refit_cuda_engine(self) -> bool:
        """Apply the weights set so far. Raises RefitError (naming them) while a stripped engine misses weights."""
        missing = self.get_missing_weights()
        if missing:
            raise RefitError(f"engine '{self.engine.name}': {len(missing)} weights are missing "
                             f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); set them with "
                             "set_named_weights or OnnxParserRefitter.refit_from_file")
        self.engine.replace_weights(self._pending)
        self.logger.log(Severity.INFO, f"refitted engine '{self.engine.name}': {len(self._pending)} weights")
        self._pending = {}
        return True
