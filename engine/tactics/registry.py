"""The tactic registry: every registered tactic, by (layer type, backend) and by id.

Users and tests register extra tactics through `register_tactic`; that is how a deliberately wrong kernel is injected
to exercise `polyx debug tactics`. This module knows nothing of the built-in tactics (builtin.py registers them
through it), so lookups that need them go through catalog.py.
"""
from __future__ import annotations

from ..enums import LayerType
from ..errors import EngineError
from .base import Tactic, stable_tactic_id

_REGISTRY: dict[tuple[LayerType, str], list[Tactic]] = {}
_BY_ID: dict[int, Tactic] = {}


def register_tactic(tactic: Tactic, replace: bool = False) -> Tactic:
    """Add a tactic to the registry. Ids must be unique; `replace=True` swaps a tactic with the same id."""
    if not tactic.id:
        tactic.id = stable_tactic_id(f"{tactic.backend}:{tactic.layer_type.value}:{tactic.name}")
    existing = _BY_ID.get(tactic.id)
    if existing is not None:
        if not replace:
            raise EngineError(f"tactic id 0x{tactic.id:08x} is already used by {existing.name!r}")
        unregister_tactic(existing)
    _REGISTRY.setdefault((LayerType(tactic.layer_type), tactic.backend), []).append(tactic)
    _BY_ID[tactic.id] = tactic
    return tactic


def unregister_tactic(tactic: Tactic) -> None:
    """Remove a tactic (tests use this to clean up injected tactics)."""
    bucket = _REGISTRY.get((LayerType(tactic.layer_type), tactic.backend), [])
    if tactic in bucket:
        bucket.remove(tactic)
    if _BY_ID.get(tactic.id) is tactic:
        del _BY_ID[tactic.id]


def registered_tactics(layer_type: LayerType, backend: str) -> list[Tactic]:
    """The tactics registered so far for one layer type and backend, in registration order."""
    return list(_REGISTRY.get((LayerType(layer_type), backend), []))


def registered_tactic(tactic_id: int) -> Tactic | None:
    """The tactic registered so far under this id, or None."""
    return _BY_ID.get(int(tactic_id))
