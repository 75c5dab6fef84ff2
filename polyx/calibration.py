"""INT8 calibration from the command line: a calibrator over the run's input data (or generated inputs), of the
class `--calib-base-cls` names, with a cache file that is read when it exists (no calibration then) and written
after a calibrating build otherwise, as Polygraphy's `--calibration-cache` does."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

import numpy as np

import engine as trt

from .data.files import write_file
from .errors import PolyxError

# Polygraphy's spellings (TensorRT's class names without the IInt8 prefix), any case.
CALIBRATOR_CLASSES = {
    "entropycalibrator2": trt.IInt8EntropyCalibrator2,
    "entropycalibrator": trt.IInt8EntropyCalibrator,
    "minmaxcalibrator": trt.IInt8MinMaxCalibrator,
    "legacycalibrator": trt.IInt8LegacyCalibrator,
}


def calibrator_class(name: str) -> type:
    key = name.lower().removeprefix("iint8")
    if key not in CALIBRATOR_CLASSES:
        raise PolyxError(f"--calib-base-cls '{name}': unknown calibrator (valid: EntropyCalibrator2, "
                         "EntropyCalibrator, MinMaxCalibrator, LegacyCalibrator)")
    return CALIBRATOR_CLASSES[key]


class _DataCalibrator:
    """get_batch over a list of {input name: array}; the cache lives in a file (or nowhere). With `progress`
    (polyx.report.progress_factory), a bar over the `total` batches runs while the builder asks for them."""

    def __init__(self, batches: Iterable[dict[str, np.ndarray]], cache_path: Path | None,
                 progress: Callable[[str, int | None], AbstractContextManager] | None = None,
                 total: int | None = None):
        self.batches = iter(batches)
        self.cache_path = cache_path
        self._progress, self._total = progress, total
        self._bar: ExitStack | None = None
        self._advance: Callable[[], None] | None = None

    def get_batch(self, names):
        if self._bar is None and self._progress is not None:
            self._bar = ExitStack()
            self._advance = self._bar.enter_context(self._progress("Calibrating (INT8)", self._total))
        batch = next(self.batches, None)
        if batch is None:
            self.close_progress()
            return None
        missing = [name for name in names if name not in batch]
        if missing:
            raise PolyxError(f"calibration data has no input {missing[0]!r} (it has {sorted(batch)})")
        if self._advance is not None:
            self._advance()
        return [batch[name] for name in names]

    def close_progress(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = self._advance = None

    def read_calibration_cache(self):
        if self.cache_path is not None and self.cache_path.is_file():
            return self.cache_path.read_bytes()
        return None

    def write_calibration_cache(self, cache: bytes) -> None:
        if self.cache_path is None or self.cache_path.is_file():
            return  # a cache that was read is an input of this build: never rewritten
        write_file(self.cache_path, cache)


def make_calibrator(base_name: str, batches: Iterable[dict[str, np.ndarray]], cache_path: Path | None,
                    progress: Callable[[str, int | None], AbstractContextManager] | None = None,
                    total: int | None = None):
    """An instance of the named TensorRT calibrator class reading `batches`."""
    base = calibrator_class(base_name)
    return type(f"Polyx{base.__name__[5:]}", (_DataCalibrator, base), {})(batches, cache_path, progress, total)
