"""What a builder pass is: an object that edits the Graph, says whether it changed it, and names what it did.

`requires` lists the passes that must have run before this one (a fusion that reads a folded constant needs
folding first); the pipeline checks that order once, when it is made.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..ir import Graph
from ..logger import Severity


@dataclass
class PassContext:
    """Build settings the passes read. `constraints`: 'obey' | 'prefer' | 'none' (precision constraints)."""

    fp16: bool = False
    bf16: bool = False
    # STRONGLY_TYPED networks: every layer runs in the float type its tensors have; nothing is converted
    strongly_typed: bool = False
    constraints: str = "none"
    log: Callable[[int, str], None] = field(default=lambda severity, message: None)
    # INT8 dynamic ranges by tensor name (calibration.DynamicRanges) for implicit quantization; None: no INT8
    dynamic_ranges: Any = None
    # Merge elementwise/activation/unary chains into POINTWISE nodes (passes/pointwise_fusion.py)
    pointwise_fusion: bool = False
    # Run convolution chains channels-last (passes/tensor_formats.py); `runs_channels_last(node)`: whether some
    # tactic of the build device runs that node on HWC tensors (the builder asks its tactic registry)
    channels_last: bool = False
    runs_channels_last: Callable[[Any], bool] = field(default=lambda node: False)
    # BuilderConfig.channels_last "auto" (engine/channels_last_choice.py): convert only the chains whose first node
    # has one of these names (None: every chain); the pass lists every chain it found in `format_chains`
    channels_last_only: frozenset[str] | None = None
    format_chains: list[Any] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.log(Severity.WARNING, message)


class Pass:
    """Subclasses set `name` (the build summary's key) and implement `run`."""

    name: str = "pass"
    requires: tuple[str, ...] = ()

    def run(self, graph: Graph, ctx: PassContext) -> dict[str, list[str]]:
        """Edit `graph`; return {summary key: names of the nodes it changed} (all lists empty: nothing changed).
        Most passes report under their own name; a pass applying several rules reports one key per rule."""
        raise NotImplementedError
