"""The runner interface: activate once (sessions, contexts), infer many times, deactivate to release."""
from __future__ import annotations

import time

import numpy as np

from ..errors import PolyxError

InputMeta = dict[str, tuple[tuple, np.dtype]]


class Runner:
    """Subclasses implement `_activate`, `_infer` and `_deactivate`; this class keeps state and timing."""

    name = "runner"

    def __init__(self) -> None:
        self.is_active = False
        self.last_inference_ms = 0.0

    def activate(self) -> None:
        if self.is_active:
            raise PolyxError(f"runner '{self.name}' is already active")
        self._activate()
        self.is_active = True

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference; returns {output name: NumPy array}."""
        if not self.is_active:
            raise PolyxError(f"runner '{self.name}' must be activated before infer()")
        start = time.perf_counter()
        with np.errstate(all="ignore"):  # NaN/Inf are reported by --validate and the comparison, not as warnings
            outputs = self._infer(feeds)
        self.last_inference_ms = (time.perf_counter() - start) * 1e3
        return outputs

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate()
            self.is_active = False

    def input_metadata(self) -> InputMeta:
        """{input name: (shape with -1 for dynamic dims, NumPy dtype)}."""
        raise NotImplementedError

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc_info) -> None:
        self.deactivate()

    def _activate(self) -> None:
        raise NotImplementedError

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _deactivate(self) -> None:
        raise NotImplementedError
