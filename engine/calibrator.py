"""INT8 calibrators (TensorRT's IInt8Calibrator family) and the calibration cache in TensorRT's text format.

A calibrator hands the builder batches (`get_batch(names)` returns one array per input, or None when done); the
builder runs the FP32 network on them (engine/calibration.py) and each algorithm turns the absolute values seen in
a tensor into its dynamic range `amax` (the INT8 scale is amax / 127):
- MinMax (IInt8MinMaxCalibrator): the largest absolute value.
- Entropy (IInt8EntropyCalibrator2, and IInt8EntropyCalibrator the same here): the threshold whose 128-level
  quantization of the |x| histogram diverges least (KL divergence) from the histogram itself, as TensorRT describes
  its entropy calibration.
- Legacy (IInt8LegacyCalibrator): the `get_quantile()` quantile of |x|.
The cache is TensorRT's: a first line naming version and algorithm, then one `name: <hex of the big-endian float32
scale>` line per tensor, so caches move between TensorRT and polyx.
"""
from __future__ import annotations

import math
import struct
from enum import IntEnum

import numpy as np

from .errors import BuildError

HISTOGRAM_BINS = 2048
QUANTIZED_LEVELS = 128
CACHE_VERSION = "TRT-8601"


class CalibrationAlgoType(IntEnum):
    LEGACY_CALIBRATION = 0
    ENTROPY_CALIBRATION = 1
    ENTROPY_CALIBRATION_2 = 2
    MINMAX_CALIBRATION = 3


CACHE_ALGORITHM_NAMES = {
    CalibrationAlgoType.LEGACY_CALIBRATION: "LegacyCalibration",
    CalibrationAlgoType.ENTROPY_CALIBRATION: "EntropyCalibration",
    CalibrationAlgoType.ENTROPY_CALIBRATION_2: "EntropyCalibration2",
    CalibrationAlgoType.MINMAX_CALIBRATION: "MinMaxCalibration",
}


class IInt8Calibrator:
    """Subclass one of the calibrators below and implement `get_batch_size`, `get_batch`, and optionally the cache
    methods (return None from `read_calibration_cache` to calibrate)."""

    algorithm = CalibrationAlgoType.ENTROPY_CALIBRATION_2

    def get_batch_size(self) -> int:
        return 1

    def get_batch(self, names: list[str]):
        """One host array per name (in that order), or None when there are no more batches."""
        raise NotImplementedError

    def read_calibration_cache(self) -> bytes | None:
        return None

    def write_calibration_cache(self, cache: bytes) -> None:
        return None

    def get_algorithm(self) -> CalibrationAlgoType:
        return self.algorithm


class IInt8EntropyCalibrator2(IInt8Calibrator):
    algorithm = CalibrationAlgoType.ENTROPY_CALIBRATION_2


class IInt8EntropyCalibrator(IInt8Calibrator):
    algorithm = CalibrationAlgoType.ENTROPY_CALIBRATION


class IInt8MinMaxCalibrator(IInt8Calibrator):
    algorithm = CalibrationAlgoType.MINMAX_CALIBRATION


class IInt8LegacyCalibrator(IInt8Calibrator):
    algorithm = CalibrationAlgoType.LEGACY_CALIBRATION

    def get_quantile(self) -> float:
        return 0.9999

    def get_regression_cutoff(self) -> float:
        """TensorRT's legacy calibrator fits a regression up to this fraction; here the quantile alone sets the
        range, so this method is not read (kept so TensorRT subclasses run unchanged)."""
        return 1.0


class AbsHistogram:
    """|x| over [0, limit) in HISTOGRAM_BINS bins; the limit doubles (merging bin pairs) when a batch exceeds it, so
    batches stream through without being kept."""

    def __init__(self):
        self.counts = np.zeros(HISTOGRAM_BINS, np.float64)
        self.limit = 0.0
        self.amax = 0.0

    def add(self, values: np.ndarray) -> None:
        magnitudes = np.abs(np.asarray(values, np.float64)).ravel()
        magnitudes = magnitudes[np.isfinite(magnitudes)]
        if magnitudes.size == 0:
            return
        batch_max = float(magnitudes.max())
        self.amax = max(self.amax, batch_max)
        if self.limit == 0.0:
            self.limit = batch_max if batch_max > 0 else 1.0
        while batch_max > self.limit:
            self.counts = np.concatenate([self.counts.reshape(-1, 2).sum(axis=1), np.zeros(HISTOGRAM_BINS // 2)])
            self.limit *= 2
        self.counts += np.histogram(magnitudes, bins=HISTOGRAM_BINS, range=(0.0, self.limit))[0]

    @property
    def bin_width(self) -> float:
        return self.limit / HISTOGRAM_BINS


def entropy_threshold(histogram: AbsHistogram) -> float:
    """The amax minimizing KL(P || Q), P the histogram clipped at the threshold, Q its 128-level quantization."""
    counts = histogram.counts.copy()
    counts[0] = counts[1]  # exact zeros (ReLU outputs, padding) would dominate the divergence otherwise
    last = int(np.nonzero(counts)[0][-1]) + 1 if counts.any() else 0
    if last <= QUANTIZED_LEVELS:
        return histogram.amax
    best, best_bins = math.inf, last
    for bins in range(QUANTIZED_LEVELS, last + 1):
        reference = counts[:bins].copy()
        reference[-1] += counts[bins:].sum()  # outliers clip into the last bin
        starts = np.linspace(0, bins, QUANTIZED_LEVELS + 1).astype(int)[:-1]
        used = counts[:bins] > 0
        sums, nonzero = np.add.reduceat(counts[:bins], starts), np.add.reduceat(used.astype(np.float64), starts)
        chunk = np.repeat(np.arange(QUANTIZED_LEVELS), np.diff(np.append(starts, bins)))
        candidate = np.where(used, sums[chunk] / np.maximum(nonzero[chunk], 1), 0.0)
        divergence = _kl(reference, candidate)
        if divergence < best:
            best, best_bins = divergence, bins
    return min((best_bins + 0.5) * histogram.bin_width, histogram.amax)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    p = p / p.sum()
    q = q / q.sum() if q.sum() > 0 else q
    mask = p > 0
    if np.any(q[mask] == 0):
        return math.inf
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def quantile_threshold(histogram: AbsHistogram, quantile: float) -> float:
    cumulative = np.cumsum(histogram.counts)
    if cumulative[-1] == 0:
        return histogram.amax
    index = int(np.searchsorted(cumulative, quantile * cumulative[-1]))
    return min((index + 1) * histogram.bin_width, histogram.amax)


def dynamic_range(histogram: AbsHistogram, calibrator: IInt8Calibrator) -> float:
    algorithm = calibrator.get_algorithm()
    if algorithm == CalibrationAlgoType.MINMAX_CALIBRATION:
        return histogram.amax
    if algorithm == CalibrationAlgoType.LEGACY_CALIBRATION:
        return quantile_threshold(histogram, float(calibrator.get_quantile()))
    return entropy_threshold(histogram)


def write_cache(algorithm: CalibrationAlgoType, ranges: dict[str, float]) -> bytes:
    """TensorRT's text cache: `TRT-8601-EntropyCalibration2`, then `name: 3c23d70a` (big-endian float32 scale)."""
    lines = [f"{CACHE_VERSION}-{CACHE_ALGORITHM_NAMES[CalibrationAlgoType(algorithm)]}"]
    for name, amax in ranges.items():
        lines.append(f"{name}: {struct.pack('>f', amax / 127.0).hex()}")
    return ("\n".join(lines) + "\n").encode()


def read_cache(data: bytes, source: str = "calibration cache") -> dict[str, float]:
    """{tensor name: amax} from a TensorRT-format cache; BuildError naming the line for anything malformed."""
    try:
        text = bytes(data).decode("ascii")
    except (UnicodeDecodeError, TypeError):
        raise BuildError(f"{source}: not a TensorRT calibration cache (not ASCII text)") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("TRT-"):
        raise BuildError(f"{source}: the first line must name the TensorRT version and algorithm "
                         f"(e.g. '{CACHE_VERSION}-EntropyCalibration2'), got {lines[0][:60] if lines else 'nothing'!r}")
    ranges = {}
    for number, line in enumerate(lines[1:], start=2):
        name, sep, value = line.rpartition(":")
        try:
            scale = struct.unpack(">f", bytes.fromhex(value.strip()))[0] if sep else math.nan
        except (ValueError, struct.error):
            scale = math.nan
        if not name or not math.isfinite(scale) or scale < 0:
            raise BuildError(f"{source}: line {number} {line[:80]!r} is not 'tensor_name: <8 hex digits of a "
                             "non-negative float32 scale>'")
        if scale == 0:
            raise BuildError(f"{source}: line {number}: tensor '{name.strip()}' has scale 0, which quantizes "
                             "every value to 0 (calibrate again, or give it a dynamic range)")
        ranges[name.strip()] = scale * 127.0
    return ranges
