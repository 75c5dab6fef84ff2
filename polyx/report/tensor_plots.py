"""Per-tensor pictures written while tensors are compared (so a streamed `--mark-all` never keeps the arrays):
an error heatmap and an error-distribution plot, as self-contained SVG (no plotting library needed).

Heatmap: the tensor viewed as rows x columns (last dimension as columns, the others flattened into rows), pooled to
at most 64 x 64 cells by the maximum, absolute error on the left and relative error on the right, colour on a log
scale from the smallest to the largest nonzero error. Error metrics: the number of elements per decade of
absolute and of relative error, with the tolerance marked (Polygraphy's --save-error-metrics-plot shows the same).
"""
from __future__ import annotations

import html
import math
import re
from pathlib import Path

import numpy as np

from ..compare.comparator import TensorComparison
from ..compare.plot_options import PlotOptions
from ..compare.statistics import differences
from ..data.files import write_file

MAX_CELLS = 64
CELL = 6


class TensorPlotter:
    """Called by the Comparator with both arrays of each compared tensor; writes the pictures asked for."""

    def __init__(self, options: PlotOptions):
        self.options = options
        self.written: list[Path] = []

    def __call__(self, comparison: TensorComparison, reference: np.ndarray, candidate: np.ndarray) -> None:
        if comparison.problem:
            return
        absolute, relative = differences(reference, candidate)
        stem = f"{_safe(comparison.name)}_iter{comparison.iteration}.svg"
        for folder, render in ((self.options.heatmaps, heatmap_svg), (self.options.error_metrics, error_metrics_svg)):
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / stem
                write_file(path, render(comparison, absolute, relative))
                self.written.append(path)


def heatmap_svg(comparison: TensorComparison, absolute: np.ndarray, relative: np.ndarray) -> str:
    panels = [("absolute error", _pooled(absolute)), ("relative error", _pooled(relative))]
    rows, cols = panels[0][1].shape
    width, height = 2 * (cols * CELL + 40) + 20, rows * CELL + 70
    svg = [_header(width, height, f"error heatmap of {comparison.name}"),
           _text(10, 16, f"{comparison.name} (iteration {comparison.iteration}): shape {comparison.reference_shape}, "
                         f"max abs {_num(comparison.max_absolute)}, max rel {_num(comparison.max_relative)}", 12)]
    for panel, (title, grid) in enumerate(panels):
        left = 10 + panel * (cols * CELL + 50)
        svg.append(_text(left, 36, f"{title} (max per cell, log colour)", 11))
        lo, hi = _log_range(grid)
        for r in range(rows):
            for c in range(cols):
                svg.append(f"<rect x='{left + c * CELL}' y='{44 + r * CELL}' width='{CELL}' height='{CELL}' "
                           f"fill='{_colour(grid[r, c], lo, hi)}'/>")
        finite = grid[np.isfinite(grid)]
        top = float(finite.max()) if finite.size else 0.0
        note = " (black: inf/NaN)" if finite.size < grid.size else ""
        svg.append(_text(left, 58 + rows * CELL, f"0 .. {_num(top)}{note}", 10))
    svg.append("</svg>")
    return "".join(svg)


def error_metrics_svg(comparison: TensorComparison, absolute: np.ndarray, relative: np.ndarray) -> str:
    width, height, bar_h = 720, 260, 170
    svg = [_header(width, height, f"error distribution of {comparison.name}"),
           _text(10, 16, f"{comparison.name} (iteration {comparison.iteration}): elements per decade of error; "
                         f"atol {_num(comparison.atol)}, rtol {_num(comparison.rtol)}", 12)]
    for panel, (title, errors, tolerance) in enumerate((("absolute error", absolute, comparison.atol),
                                                        ("relative error", relative, comparison.rtol))):
        left = 40 + panel * 350
        edges, counts = _decades(errors)
        most = max(counts.max() if counts.size else 1, 1)
        bar_w = 300 / max(len(counts), 1)
        svg.append(_text(left, 36, title, 11))
        for i, count in enumerate(counts):
            h = bar_h * count / most
            colour = "#cf222e" if edges[i] >= tolerance > 0 else "#1a7f37"
            svg.append(f"<rect x='{left + i * bar_w:.1f}' y='{44 + bar_h - h:.1f}' width='{bar_w * 0.9:.1f}' "
                       f"height='{h:.1f}' fill='{colour}'><title>{int(count)} element(s) in "
                       f"[{_num(edges[i])}, {_num(edges[i + 1])})</title></rect>")
        svg.append(_text(left, 60 + bar_h, f"{_num(edges[0])} .. {_num(edges[-1])} (log bins; red: >= tolerance)",
                         10))
    svg.append("</svg>")
    return "".join(svg)


def _pooled(errors: np.ndarray) -> np.ndarray:
    """The error array as a 2-D grid of at most MAX_CELLS x MAX_CELLS cells, each the maximum of its block."""
    grid = np.nan_to_num(np.asarray(errors, np.float64), nan=np.inf, posinf=np.inf)
    grid = grid.reshape(1, -1) if grid.ndim < 2 else grid.reshape(-1, grid.shape[-1])
    rows, cols = grid.shape
    rstep, cstep = max(1, math.ceil(rows / MAX_CELLS)), max(1, math.ceil(cols / MAX_CELLS))
    padded = np.full((math.ceil(rows / rstep) * rstep, math.ceil(cols / cstep) * cstep), 0.0)
    padded[:rows, :cols] = grid
    return padded.reshape(padded.shape[0] // rstep, rstep, padded.shape[1] // cstep, cstep).max(axis=(1, 3))


def _log_range(grid: np.ndarray) -> tuple[float, float]:
    finite = grid[np.isfinite(grid) & (grid > 0)]
    if finite.size == 0:
        return -math.inf, -math.inf
    return math.log10(finite.min()), math.log10(finite.max())


def _colour(value: float, lo: float, hi: float) -> str:
    """White for 0, then light yellow to dark red on a log scale; black for inf/NaN."""
    if not math.isfinite(value):
        return "#000000"
    if value <= 0 or lo == -math.inf:
        return "#ffffff"
    t = 1.0 if hi == lo else (math.log10(value) - lo) / (hi - lo)
    r, g, b = 255 - int(80 * t), int(235 * (1 - t)), int(120 * (1 - t))
    return f"#{r:02x}{g:02x}{b:02x}"


def _decades(errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(errors, np.float64).ravel()
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return np.array([0.0, 1.0]), np.zeros(1)
    lo, hi = math.floor(math.log10(values.min())), math.ceil(math.log10(values.max()))
    edges = 10.0 ** np.arange(lo, max(hi, lo + 1) + 1)
    counts, _ = np.histogram(values, bins=edges)
    return edges, counts


def _header(width: int, height: int, label: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
            f"aria-label='{html.escape(label, quote=True)}'><rect width='100%' height='100%' fill='#ffffff'/>")


def _text(x: float, y: float, text: str, size: int) -> str:
    return f"<text x='{x}' y='{y}' font-size='{size}' font-family='sans-serif'>{html.escape(text)}</text>"


def _num(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3g}"


def _safe(name: str) -> str:
    """A file name for a tensor name (ONNX names may hold '/', ':' and other characters)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "tensor"
