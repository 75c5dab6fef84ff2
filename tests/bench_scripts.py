"""Loading a script of bench/ by its path, as `python bench/NAME.py` runs it (the tests of its CPU-safe parts)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench_script(name: str) -> ModuleType:
    """bench/NAME.py as module NAME, registered in sys.modules first: dataclasses look their module up there while
    a class is created."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
