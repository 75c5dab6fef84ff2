"""Optimization profiles: the min/opt/max shape range of each dynamic input (TensorRT semantics)."""
from __future__ import annotations

from collections.abc import Sequence

from .errors import ShapeError

Shape = tuple[int, ...]


class OptimizationProfile:
    """Engines are built for inputs whose shapes lie within [min, max]; tactics are timed at `opt`."""

    def __init__(self):
        self._shapes: dict[str, tuple[Shape, Shape, Shape]] = {}
        self._shape_values: dict[str, tuple[Shape, Shape, Shape]] = {}

    def set_shape(self, input: str, min: Sequence[int], opt: Sequence[int], max: Sequence[int]) -> None:
        lo, mid, hi = (tuple(int(d) for d in s) for s in (min, opt, max))
        if not (len(lo) == len(mid) == len(hi)):
            raise ShapeError(f"profile for '{input}': min {lo}, opt {mid} and max {hi} must have the same rank")
        for a, b, c in zip(lo, mid, hi):
            if a < 0 or not a <= b <= c:
                raise ShapeError(f"profile for '{input}': need 0 <= min <= opt <= max in every dimension, "
                                 f"got min {lo}, opt {mid}, max {hi}")
        self._shapes[input] = (lo, mid, hi)

    def get_shape(self, input: str) -> tuple[Shape, Shape, Shape] | None:
        return self._shapes.get(input)

    def set_shape_input(self, input: str, min: Sequence[int], opt: Sequence[int], max: Sequence[int]) -> None:
        """Value range of a shape-tensor input (an input whose values become shapes): min <= opt <= max element
        by element, the three of one length."""
        lo, mid, hi = (tuple(v.item() if hasattr(v, "item") else v for v in s) for s in (min, opt, max))
        if not len(lo) == len(mid) == len(hi):
            raise ShapeError(f"profile for shape input '{input}': min {lo}, opt {mid} and max {hi} must have the "
                             "same number of values")
        if any(not a <= b <= c for a, b, c in zip(lo, mid, hi)):
            raise ShapeError(f"profile for shape input '{input}': need min <= opt <= max for every value, got min "
                             f"{lo}, opt {mid}, max {hi}")
        self._shape_values[input] = (lo, mid, hi)

    def get_shape_input(self, input: str):
        return self._shape_values.get(input)

    @property
    def inputs(self) -> list[str]:
        return list(self._shapes)

    def to_json(self) -> dict:
        return {name: [list(s) for s in shapes] for name, shapes in self._shapes.items()}

    @classmethod
    def from_json(cls, data: dict) -> OptimizationProfile:
        profile = cls()
        for name, (lo, mid, hi) in data.items():
            profile.set_shape(name, lo, mid, hi)
        return profile

    def __bool__(self) -> bool:
        return bool(self._shapes or self._shape_values)

    def __repr__(self) -> str:
        return f"OptimizationProfile({self._shapes})"
