"""Where an engine's time goes, in a few lines: the top layers by median time and the share of each layer type,
from a per-layer profile. Shares are of the summed per-layer medians. On a GPU a layer's time is its kernels' GPU time
(replayed as a CUDA graph), so the sum is close to a CUDA-graph run's latency; on the CPU each layer's wall time."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .layer_profile import LayerProfile


@dataclass
class TopLayer:
    name: str
    type: str
    tactic: str
    source: str | None
    median_ms: float
    share: float               # of the summed layer medians, 0..1


@dataclass
class TypeShare:
    type: str
    layers: int
    median_ms: float           # summed over the layers of this type
    share: float


@dataclass
class ProfileSummary:
    runs: int
    layers: int
    total_ms: float            # summed per-layer medians
    top: list[TopLayer]        # slowest first
    by_type: list[TypeShare]   # largest share first

    def to_json(self) -> dict:
        return {"runs": self.runs, "layers": self.layers, "total_ms": self.total_ms,
                "top": [asdict(layer) for layer in self.top], "by_type": [asdict(share) for share in self.by_type]}


def summarize_profile(profile: LayerProfile, top: int) -> ProfileSummary:
    """The `top` slowest layers by median time (ties keep execution order) and every layer type's share."""
    if top < 0:
        raise ValueError(f"top must be >= 0, got {top}")
    total = sum(layer.median_ms for layer in profile.layers)

    def share(ms: float) -> float:
        return ms / total if total > 0 else 0.0

    ordered = sorted(profile.layers, key=lambda layer: -layer.median_ms)
    top_layers = [TopLayer(layer.name, layer.type, layer.tactic, layer.source, layer.median_ms,
                           share(layer.median_ms)) for layer in ordered[:top]]
    per_type: dict[str, list[float]] = {}
    for layer in profile.layers:
        per_type.setdefault(layer.type, []).append(layer.median_ms)
    by_type = [TypeShare(kind, len(times), sum(times), share(sum(times))) for kind, times in per_type.items()]
    by_type.sort(key=lambda item: -item.median_ms)
    return ProfileSummary(runs=profile.runs, layers=len(profile.layers), total_ms=total, top=top_layers,
                          by_type=by_type)
