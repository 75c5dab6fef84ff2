"""Which per-tensor pictures a comparison writes (`--save-heatmaps DIR`, `--save-error-metrics-plot DIR`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class PlotOptions:
    heatmaps: Path | None = None       # folder for one error heatmap (SVG) per compared tensor and iteration
    error_metrics: Path | None = None  # folder for one error-distribution plot (SVG) per compared tensor and iteration

    @property
    def any(self) -> bool:
        return self.heatmaps is not None or self.error_metrics is not None
