"""The frame both HTML error charts draw (per ONNX tensor and per engine layer): a plot area whose y axis is the
relative error on a log10 scale, one grid line per decade, and the run's rtol as a dashed red line."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .text import num

LEFT, RIGHT, TOP = 70, 20, 20


@dataclass(frozen=True)
class LogErrorAxes:
    width: int
    height: int
    plot_w: int
    plot_h: int
    lo: int  # decades shown: 1e{lo} .. 1e{hi}
    hi: int
    left: int = LEFT
    top: int = TOP

    def y(self, value: float) -> float:
        """The y of a relative error (0 at the bottom, inf at the top, the rest clamped to the decades shown)."""
        if value <= 0:
            return self.top + self.plot_h
        if math.isinf(value):
            return self.top
        return self.top + self.plot_h * (self.hi - min(max(math.log10(value), self.lo), self.hi)) / (self.hi - self.lo)


def log_error_axes(errors: Sequence[float], rtol: float, width: int, height: int, bottom: int,
                   label: str) -> tuple[LogErrorAxes, list[str]]:
    """The axes fitted to `errors` (a decade of margin each way, at least two decades) and the SVG drawn so far:
    the opening tag (with `label` for screen readers), the plot area, the decade grid and the rtol line."""
    finite = [e for e in errors if 0 < e < math.inf]
    lo = math.floor(math.log10(min(finite + [rtol or 1e-5]))) - 1
    hi = max(math.ceil(math.log10(max(finite + [rtol or 1e-5]))) + 1, lo + 2)
    axes = LogErrorAxes(width, height, width - LEFT - RIGHT, height - TOP - bottom, lo, hi)
    left, top, plot_w, plot_h = axes.left, axes.top, axes.plot_w, axes.plot_h
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
           f"aria-label='{label}'>",
           f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='#fafafa' stroke='#999'/>"]
    for decade in range(lo, hi + 1):
        y = axes.y(10.0 ** decade)
        svg.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e5e5e5'/>"
                   f"<text x='{left - 6}' y='{y + 4:.1f}' font-size='11' text-anchor='end'>1e{decade}</text>")
    if rtol > 0:
        y = axes.y(rtol)
        svg.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{y:.1f}' y2='{y:.1f}' stroke='#cf222e' "
                   f"stroke-dasharray='6,4'/><text x='{left + plot_w - 4}' y='{y - 4:.1f}' font-size='11' "
                   f"text-anchor='end' fill='#cf222e'>rtol {num(rtol)}</text>")
    return axes, svg
