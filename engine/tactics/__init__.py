"""Tactics: interchangeable implementations of one layer type, chosen per layer by timing at build time."""
from .base import Tactic, TacticContext
from .catalog import tactic_by_id, tactics_for
from .registry import register_tactic, unregister_tactic

__all__ = ["Tactic", "TacticContext", "register_tactic", "tactic_by_id", "tactics_for", "unregister_tactic"]
