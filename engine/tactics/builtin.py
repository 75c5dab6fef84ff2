"""Registers the built-in tactics: a reference tactic per layer type and backend, plus every tactic module named
cpu_*.py (and gpu_*.py, which import CuPy lazily) in this package."""
from __future__ import annotations

import importlib
import os
import pkgutil

from .. import ops  # noqa: F401 - layer implementations must be registered first
from ..ops.base import LAYER_IMPLS
from .reference import ReferenceTactic
from .registry import register_tactic

BACKENDS = ("cpu", "gpu")

for _layer_type in LAYER_IMPLS:
    for _backend in BACKENDS:
        register_tactic(ReferenceTactic(_layer_type, _backend))

for _module in sorted(m.name for m in pkgutil.iter_modules([os.path.dirname(__file__)])):
    if _module.startswith(("cpu_", "gpu_")):
        importlib.import_module(f"{__package__}.{_module}")
