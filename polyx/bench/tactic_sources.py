"""Which tactic source (cuBLAS, JIT convolutions, ...) each device layer of a built engine uses: how much of an
engine a `--tactic-sources` mask or a new source actually reaches, read from the engine's layer info the way
`inspect model` shows it."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from engine.tactics.catalog import tactic_source_name

NO_SOURCE = "none"  # a kernel of no source (reference, CPU and our other GPU kernels): always available


def layer_tactic_source(row: dict[str, Any]) -> str | None:
    """The TacticSource name of one `Engine.layer_info()` row's tactic; None for a host layer or a kernel of no
    source ("unknown" for a tactic not registered in this process)."""
    if not row or row.get("host") or not row.get("tactic_id"):
        return None
    return tactic_source_name(row["tactic_id"])


def count_layers_by_source(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Device layers per tactic source, most used first ("none": kernels of no source); host layers are left out,
    so the counts add up to the engine's device layers."""
    counts = Counter(layer_tactic_source(row) or NO_SOURCE for row in rows if not row.get("host"))
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
