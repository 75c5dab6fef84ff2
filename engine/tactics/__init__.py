"""Tactics: interchangeable implementations of one layer type, chosen per layer by timing at build time."""
from .base import Tactic, TacticContext, register_tactic, tactic_by_id, tactics_for

__all__ = ["Tactic", "TacticContext", "register_tactic", "tactic_by_id", "tactics_for"]
