"""Tactic lookups for the builder and runtime: the registry with the built-in tactics in it.

The built-ins are registered on first lookup, not on import, so a tactic a user registers before any build keeps
its place ahead of them. Only this module imports builtin.py; the registry it fills never imports it back.
"""
from __future__ import annotations

from ..enums import LayerType
from ..errors import EngineError
from .base import Tactic
from .registry import registered_tactic, registered_tactics


def tactics_for(layer_type: LayerType, backend: str) -> list[Tactic]:
    from . import builtin  # noqa: F401 - registers the built-in tactics on first use

    return registered_tactics(layer_type, backend)


def tactic_by_id(tactic_id: int) -> Tactic:
    from . import builtin  # noqa: F401

    tactic = registered_tactic(tactic_id)
    if tactic is None:
        raise EngineError(f"no tactic with id 0x{int(tactic_id):08x} is registered (a plan built with a plugin or "
                          "custom tactic needs it registered before loading)")
    return tactic


def tactic_source_name(tactic_id: int) -> str | None:
    """The TacticSource name of a tactic (`inspect` shows it): None for kernels of no source (reference, CPU and
    our other GPU kernels), "unknown" for a tactic not registered in this process."""
    from . import builtin  # noqa: F401

    tactic = registered_tactic(tactic_id)
    if tactic is None:
        return "unknown"
    return None if tactic.source is None else tactic.source.name
